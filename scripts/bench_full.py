#!/usr/bin/env python3
"""Whole-model benchmarks at the real SEED-X sizes, seedx.c beside PyTorch, and the
full-size converter rehearsal. Random weights of the real shapes in the official files
(make_fullsize.py), converted by our converter; PyTorch loads the same official files.

    bench_full.py run     [--dir D] [--groups unet,unet8,vae,vit,llm] [--runs 3]
                          [--seedx ./seedx] [--compare BIN] [--llm-layers 4] [--keep]
    bench_full.py convert [--dir D] [--dtypes f16,bf16] [--llm-layers 10] [--keep]
    bench_full.py table   D/runs/STAMP      (the table of a run, also of an interrupted one)

D is $SEEDX_FULLSIZE_DIR (pretrained/ official files, gguf/ converted files, runs/
logs and results). Files are made when missing and, without --keep, deleted when their
group is done (the disk cannot hold every group at once: see README).

run: for each group, jobs alternate round by round (C, PyTorch, C, ...) so every
configuration sees the same machine state; each job is its own process, timed by the
tool itself (compute only: the C tools' own timings, PyTorch's perf_counter around the
call) with the process's peak RSS (wait4). The table gives the median of --runs with
min/max, peak RSS, the ratio to PyTorch F32 on the same task, and max-rel
(max|x - ref| / max|ref|) of each output against PyTorch F32. The load average is
recorded around every job. The matrix of jobs is the table MATRIX below: a new weight
type or compute path is one entry in C_VARIANTS and the groups' "c" lists.

convert: the rehearsal of convert.py --pretrained at real size, one component at a
time (make its official files, convert them for each --dtypes, record wall time and
the converter's peak RSS, delete), so peak disk is the largest component's sources plus
one output (the 8-channel UNet step: 10.3 + 10.5 + 5.1 GB).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import make_fullsize as mf  # noqa: E402

SDXL = mf.SDXL
PY = sys.executable
BENCH_MATMUL = os.path.join(ROOT, "build", "tests", "bench_matmul")  # its --peaks: the same run's FMA peak

# ----------------------------------------------------------------- the matrix of runs
# C variants: name -> (GGUF type, extra CLI args before the command's own, extra env).
# "W": weights of type W, --compute f32 (the component tools' default); "W+bf16":
# the same file with --compute bf16 (bfloat16 products, float32 sums).
C_VARIANTS = {w + c: (w, ["--compute", "bf16"] if c else ["--compute", "f32"], {})
              for w in ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_k") for c in ("", "+bf16")}
C_VARIANTS["f32@avx2"] = ("f32", ["--compute", "f32"], {"SEEDX_SIMD": "avx2"})  # the AVX2 kernels on this CPU
# PyTorch modes: f32, or bf16 autocast (what torch.autocast("cpu", bfloat16) gives)
TORCH_MODES = ("f32", "bf16")
# group -> official components, C variants, PyTorch modes, tasks
MATRIX = {
    "unet": dict(official=("unet", "scheduler"), c=("f32", "f32@avx2", "f16", "bf16", "f32+bf16", "f16+bf16",
                                                   "bf16+bf16"),
                 torch=("f32", "bf16"), tasks=("fwd", "cfg"), cfg_c=("f16", "bf16+bf16")),
    "unet8": dict(official=("unet", "scheduler", "detokenizer2"), c=("f16",), torch=("f32",), tasks=("fwd8",)),
    "vae": dict(official=("vae",), c=("f32", "f16", "f16+bf16"), torch=("f32", "bf16"), tasks=("decode", "tiled")),
    "vit": dict(official=("vit",), c=("f32", "f16", "f16+bf16"), torch=("f32", "bf16"), tasks=("tile", "grid")),
    "llm": dict(official=("llm", "tokenizer"), c=("f32", "f16", "bf16", "f16+bf16", "q8_0", "q4_0", "q4_k"),
                torch=("f32", "bf16"), tasks=("prefill", "gen", "hidden")),
    # the whole 40-layer 13B LLM in the types that fit this machine's RAM, written straight in the
    # quantized layout (make_quant_model.py; its 52 GB of official F32 shards do not fit the disk);
    # PyTorch needs 52 GB (F32) or 26 GB (bf16) for it: not run
    "llm40": dict(official=(), c=("q8_0+bf16", "q4_0+bf16", "q4_k+bf16"), torch=(), tasks=("prefill", "gen")),
}
TASK_LABEL = {
    "fwd": "UNet forward, 128x128 latent, t=500, 64x2048 context",
    "cfg": "UNet CFG step (2 evaluations + Euler), 128x128",
    "fwd8": "8-channel UNet forward (stage 2), 128x128, t=500",
    "decode": "VAE decode 1024x1024",
    "tiled": "VAE decode 1024x1024, tiled 512",
    "tile": "ViT-bigG + pool, one 448 tile",
    "grid": "ViT-bigG + pool, 2x2 grid (5 tiles)",
    "prefill": "LLM prefill, 600 tokens",
    "prefill40": "13B LLM (40 layers) prefill, 600 tokens",
    "gen40": "13B LLM (40 layers) decode, 32 tokens (s per token)",
    "gen": "LLM decode, 32 tokens (s per token)",
    "hidden": "LLM final hidden states, 64 tokens (numerics only)",
}
UNET_T, CFG, TIME_IDS = 500, 7.5, [1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0]
N_PREFILL, N_DECODE, N_HIDDEN = 600, 32, 64


# ----------------------------------------------------------------- processes
def run_proc(cmd, log, env=None, cwd=ROOT, cpu=False):
    """Runs cmd under /usr/bin/time (its maximum resident set is the command's own, not
    this Python's as a fork would report), stdout+stderr to log; returns
    (rc, wall s, peak RSS bytes, output), and the process's CPU seconds (user + system,
    all threads) after them when cpu."""
    tf = log + ".time"
    t0 = time.time()
    with open(log, "w") as f:
        rc = subprocess.call(["/usr/bin/time", "-f", "%U %S\n%M", "-o", tf] + cmd, stdout=f, stderr=subprocess.STDOUT,
                             cwd=cwd, env=dict(os.environ, **(env or {})))
    wall = time.time() - t0
    with open(log, errors="replace") as f:
        out = f.read()
    rss, cpus = 0, 0.0
    if os.path.exists(tf):
        with open(tf) as f:
            tt = f.read()
        m = re.findall(r"^(\d+)$", tt, re.M)
        rss = int(m[-1]) * 1024 if m else 0
        c = re.findall(r"^([0-9.]+) ([0-9.]+)$", tt, re.M)
        cpus = float(c[-1][0]) + float(c[-1][1]) if c else 0.0
        os.remove(tf)
    return (rc, wall, rss, out, cpus) if cpu else (rc, wall, rss, out)


def free_gb(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / 1e9


def rm(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


# ----------------------------------------------------------------- official files, GGUFs
class Cache:
    """SEEDX_FULLSIZE_DIR: pretrained/ (official files), gguf/ (converted), inputs/, runs/.
    scale "tiny" puts everything under tiny/ (a quick check of this script)."""

    def __init__(self, d, llm_layers, scale="full", log=print):
        self.root = d
        d = os.path.join(d, "tiny") if scale == "tiny" else d
        self.dir, self.pre = d, os.path.join(d, "pretrained")
        self.gg = os.path.join(d, "gguf")
        self.inputs = os.path.join(d, "inputs")
        for x in (self.pre, self.gg, self.inputs):
            os.makedirs(x, exist_ok=True)
        self.llm_layers, self.log, self.scale = llm_layers, log, scale
        self.cfg = mf.Config(scale, llm_layers)
        self.plan = mf.Plan(self.cfg, "seed-x-i")
        self.converted = []  # (output, component, dtype, wall, rss, bytes)

    def gguf_name(self, group, wt):
        if group == "llm":
            return os.path.join(self.gg, f"llm{self.cfg.llm['num_hidden_layers']}_{wt}.gguf")
        return os.path.join(self.gg, f"{group}_{wt}.gguf")

    def official_paths(self, comp):
        p = [os.path.join(self.pre, rel) for rel, _, _, _ in self.plan.files(comp)]
        extra = {"llm": "seed_x_i/llm/config.json", "unet": f"{SDXL}/unet/config.json",
                 "vae": f"{SDXL}/vae/config.json", "scheduler": f"{SDXL}/scheduler/scheduler_config.json",
                 "tokenizer": f"{mf.TOKENIZER_DIR}/tokenizer.model"}
        if comp in extra:
            p.append(os.path.join(self.pre, extra[comp]))
        return p

    def llm_matches(self):
        cj = os.path.join(self.pre, "seed_x_i", "llm", "config.json")
        if not os.path.exists(cj):
            return False
        with open(cj) as f:
            return json.load(f)["num_hidden_layers"] == self.plan.cfg.llm["num_hidden_layers"]

    def official(self, comp):
        if all(os.path.exists(p) for p in self.official_paths(comp)) and (comp != "llm" or self.llm_matches()):
            return
        if comp == "llm":
            rm(os.path.join(self.pre, "seed_x_i", "llm"))
        t0 = time.time()
        self.log(f"-- writing the official {comp} files (make_fullsize.py)")
        argv = [self.pre, "--components", comp]
        if self.llm_layers:
            argv += ["--llm-layers", str(self.llm_layers)]
        mf.main(argv + ["--scale", self.scale])
        self.log(f"   {comp}: {time.time() - t0:.0f} s")

    def drop_official(self, comp):
        for p in self.official_paths(comp):
            rm(p)
        if comp in ("llm", "tokenizer"):
            rm(os.path.join(self.pre, "seed_x_i", "llm") if comp == "llm" else
               os.path.join(self.pre, mf.TOKENIZER_DIR))

    def convert(self, argv, out, comp, dtype):
        """Runs `convert.py argv` as its own process; records wall time and peak RSS."""
        log = out + ".log"
        rc, wall, rss, text = run_proc([PY, os.path.join(HERE, "convert.py")] + argv, log)
        if rc != 0:
            raise SystemExit(f"convert.py {' '.join(argv)} failed ({rc}):\n{text[-2000:]}")
        size = os.path.getsize(out)
        self.converted.append((os.path.basename(out), comp, dtype, wall, rss, size))
        self.log(f"   converted {os.path.basename(out)}: {wall:.0f} s, peak RSS {rss / 1e9:.2f} GB, "
                 f"{size / 1e9:.2f} GB")
        rm(log)

    def llm40(self, wt):
        """The 40-layer LLM in type wt and its tokenizer: DIR/llm40/WT/{llm,tokenizer}.gguf,
        written by make_quant_model.py --llm-only when missing."""
        d = os.path.join(self.root, "llm40", wt)
        if not os.path.exists(os.path.join(d, "llm.gguf")):
            t0 = time.time()
            self.log(f"-- writing the 40-layer {wt} LLM (make_quant_model.py)")
            rc, wall, rss, text = run_proc([PY, os.path.join(HERE, "make_quant_model.py"), d, "--dtype", wt,
                                            "--llm-layers", "40", "--llm-only"], d + ".log")
            if rc != 0:
                raise SystemExit(f"make_quant_model.py {d} failed ({rc}):\n{text[-2000:]}")
            self.log(f"   llm40 {wt}: {time.time() - t0:.0f} s")
        return os.path.join(d, "llm.gguf"), os.path.join(d, "tokenizer.gguf")

    def gguf(self, group, wt):
        """The converted file of a bench group in GGUF type wt (made when missing)."""
        pre, sd = self.pre, os.path.join(self.pre, SDXL)
        st2 = os.path.join(pre, "seed_detokenizer", "second_stage", "pytorch_model.bin")
        out = self.gguf_name(group, wt)
        if os.path.exists(out):
            return out
        v = self.cfg.vit
        argv = {"unet": ["unet", os.path.join(sd, "unet"), out, "--scheduler", os.path.join(sd, "scheduler")],
                "unet8": ["unet", os.path.join(sd, "unet"), out, "--detokenizer", st2,
                          "--scheduler", os.path.join(sd, "scheduler")],
                "vae": ["vae", os.path.join(sd, "vae"), out],
                "vit": ["vit", os.path.join(pre, "QwenViT", "qwen_vit_G.pt"), out, "--heads", str(v["heads"]),
                        "--image-size", str(v["image_size"])],
                "llm": ["llm", os.path.join(pre, "seed_x_i", "llm"), out]}[group]
        self.convert(argv + ["--dtype", wt], out, group, wt)
        return out

    def tokenizer_gguf(self):
        out = os.path.join(self.gg, "tokenizer.gguf")
        if not os.path.exists(out):
            self.convert(["tokenizer", os.path.join(self.pre, mf.TOKENIZER_DIR), out], out, "tokenizer", "-")
        return out


# ----------------------------------------------------------------- inputs
def llm_text(n_tokens):
    """A prompt of exactly n_tokens with bos: 'hello' is one SentencePiece piece."""
    return " ".join(["hello"] * (n_tokens - 1))


def make_inputs(cache):
    import torch
    d = cache.inputs
    if os.path.exists(os.path.join(d, "done")):
        return
    g = torch.Generator().manual_seed(0)

    def save(name, t):
        np.save(os.path.join(d, name), t.numpy().astype(np.float32))
    u = cache.cfg.unet
    cdim = u["cross_attention_dim"]
    pdim = u["projection_class_embeddings_input_dim"] - 6 * u["addition_time_embed_dim"]
    save("unet_x.npy", torch.randn(1, 4, 128, 128, generator=g))
    save("unet_x8.npy", torch.randn(1, 8, 128, 128, generator=g))
    save("ctx.npy", torch.randn(1, 64, cdim, generator=g))
    save("pooled.npy", torch.randn(1, pdim, generator=g))
    save("neg_ctx.npy", torch.zeros(1, 64, cdim))
    save("neg_pooled.npy", torch.zeros(1, pdim))
    save("noise.npy", torch.randn(1, 4, 128, 128, generator=g))
    save("vae_latents.npy", torch.randn(1, 4, 128, 128, generator=g))
    open(os.path.join(d, "done"), "w").close()


def inp(cache, name):
    return os.path.join(cache.inputs, name)


# ----------------------------------------------------------------- C jobs
def c_jobs(cache, group, variant, exe, threads, rundir, tag=""):
    """[(job id, argv, env, parse, outputs {task: npy})] of one C variant of a group."""
    wt, extra, env = C_VARIANTS[variant]
    base = [exe, "--threads", str(threads)] + extra
    name = f"c{tag}-{variant}"
    o = lambda t: os.path.join(rundir, f"{group}.{t}.{name}.npy")  # noqa: E731
    jobs = []
    if group in ("unet", "unet8"):
        g = cache.gguf(group, wt)
        x = inp(cache, "unet_x8.npy" if group == "unet8" else "unet_x.npy")
        task = "fwd8" if group == "unet8" else "fwd"
        jobs.append((f"{group}.{task}.{name}", base + ["unet", "forward", "-m", g, "--sample", x, "--ctx",
                     inp(cache, "ctx.npy"), "--pooled", inp(cache, "pooled.npy"), "--t", str(UNET_T),
                     "-o", o(task)], env, {task: r"unet forward .*?: ([0-9.]+)s"}, {task: o(task)}))
        if group == "unet" and variant in MATRIX["unet"]["cfg_c"]:  # the CFG step for a few variants
            jobs.append((f"unet.cfg.{name}", base + ["unet", "sample", "-m", g, "--ctx", inp(cache, "ctx.npy"),
                         "--pooled", inp(cache, "pooled.npy"), "--neg-ctx", inp(cache, "neg_ctx.npy"),
                         "--neg-pooled", inp(cache, "neg_pooled.npy"), "--steps", "1", "--cfg", str(CFG),
                         "--size", "1024", "--noise", inp(cache, "noise.npy"), "-o", o("cfg")], env,
                         {"cfg": r"([0-9.]+)s/step|step 1/1[^\n]*?([0-9.]+)s"}, {"cfg": o("cfg")}))
    elif group == "vae":
        g = cache.gguf("vae", wt)
        for task, more in (("decode", []), ("tiled", ["--tiling", "--tile", "512"])):
            jobs.append((f"vae.{task}.{name}", base + ["vae", "decode", "-m", g, "--latents",
                         inp(cache, "vae_latents.npy"), "-o", o(task)[:-4] + ".png", "--raw", o(task)] + more,
                         env, {task: r"latents, ([0-9.]+)s"}, {task: o(task)}))
    elif group == "vit":
        g = cache.gguf("vit", wt)
        for task, tiles in (("tile", 1), ("grid", 5)):
            jobs.append((f"vit.{task}.{name}", base + ["vit", "-m", g, "--random", "7", "--tiles", str(tiles),
                         "-o", o(task)], env, {task: r"\(([0-9.]+)s, "}, {task: o(task)}))
    elif group in ("llm", "llm40"):
        g, tok = cache.llm40(wt) if group == "llm40" else (cache.gguf("llm", wt), cache.tokenizer_gguf())
        jobs.append((f"{group}.run.{name}", base + ["lm", "-m", g, "--tokenizer", tok, "-p", llm_text(N_PREFILL),
                     "-n", str(N_DECODE), "--ctx", str(N_PREFILL + N_DECODE + 8)], env,
                     {"prefill": r"prefill (\d+) tokens in ([0-9.]+) s",
                      "gen": r"decode (\d+) tokens in ([0-9.]+) s"}, {}))
    if group == "llm":
        tr = os.path.join(rundir, f"trace.{name}")
        jobs.append((f"llm.hidden.{name}", [exe, "--threads", str(threads), "--trace", tr] + extra +
                     ["lm", "-m", g, "--tokenizer", tok, "-p", llm_text(N_HIDDEN), "-n", "1"], env,
                     {}, {"hidden": os.path.join(tr, "model.norm.npy")}))
    return jobs


def parse_c(out, patterns, wall):
    """{task: seconds} from a C tool's own timing lines (LLM decode: per token)."""
    res = {}
    for task, pat in patterns.items():
        m = re.search(pat, out)
        if not m:
            res[task] = wall
            continue
        g = [x for x in m.groups() if x is not None]
        if task in ("prefill", "gen"):
            n, s = int(g[0]), float(g[1])
            res[task] = s / n if task == "gen" else s
            res[task + "_n"] = n
        else:
            res[task] = float(g[-1])
    return res


# ----------------------------------------------------------------- PyTorch jobs
def torch_worker(a):
    """One PyTorch process: load the group's official files, run every task once,
    print {"load": s, task: s, ...} as JSON; outputs saved as npy."""
    import torch
    torch.set_num_threads(a.threads)
    cache = Cache(a.dir, a.llm_layers, a.scale, log=lambda *x: None)
    sd = os.path.join(cache.pre, SDXL)
    ac = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if a.mode == "bf16" else \
        (lambda: torch.autocast("cpu", enabled=False))
    res, out = {}, lambda t: os.path.join(a.rundir, f"{a.group}.{t}.torch-{a.mode}.npy")  # noqa: E731
    ld = lambda n: torch.from_numpy(np.load(inp(cache, n)))  # noqa: E731

    def timed(key, fn):
        with torch.no_grad(), ac():
            t0, c0 = time.perf_counter(), time.process_time()
            r = fn()
            res[key] = time.perf_counter() - t0
            res["cpu_" + key] = time.process_time() - c0  # every thread of the process
        return r
    t0 = time.perf_counter()
    if a.group in ("unet", "unet8"):
        from diffusers import EulerDiscreteScheduler, UNet2DConditionModel
        if a.group == "unet":
            m = UNet2DConditionModel.from_pretrained(os.path.join(sd, "unet"), torch_dtype=torch.float32)
        else:  # SDXLAdapterWithLatentImage: the SDXL UNet with an 8-channel conv_in, stage-2 weights
            from accelerate import init_empty_weights
            from accelerate.utils import set_module_tensor_to_device
            cfg = UNet2DConditionModel.load_config(os.path.join(sd, "unet"))
            with init_empty_weights():
                m = UNet2DConditionModel.from_config(dict(cfg, in_channels=8))
            ck = torch.load(os.path.join(cache.pre, "seed_detokenizer", "second_stage", "pytorch_model.bin"),
                            map_location="cpu")
            for k in [k for k in ck if k.startswith("unet.")]:
                set_module_tensor_to_device(m, k[len("unet."):], "cpu", value=ck.pop(k))
            del ck
        m.eval()
        res["load"] = time.perf_counter() - t0
        ctx, pooled = ld("ctx.npy"), ld("pooled.npy")
        tid = torch.tensor([TIME_IDS])
        x = ld("unet_x8.npy" if a.group == "unet8" else "unet_x.npy")
        task = "fwd8" if a.group == "unet8" else "fwd"
        count = flop_counter(m)
        eps = timed(task, lambda: m(x, UNET_T, encoder_hidden_states=ctx,
                                     added_cond_kwargs={"text_embeds": pooled, "time_ids": tid}).sample)
        res["flop_" + task] = count()
        np.save(out(task), eps.float().numpy())
        if a.group == "unet":
            s = EulerDiscreteScheduler.from_pretrained(os.path.join(sd, "scheduler"))
            s.set_timesteps(1)
            t = s.timesteps[0]
            lat = ld("noise.npy") * s.init_noise_sigma
            c2 = torch.cat([ld("neg_ctx.npy"), ctx])
            p2 = torch.cat([ld("neg_pooled.npy"), pooled])

            def cfg_step():
                xin = s.scale_model_input(torch.cat([lat, lat]), t)
                e = m(xin, t, encoder_hidden_states=c2,
                      added_cond_kwargs={"text_embeds": p2, "time_ids": tid.repeat(2, 1)}).sample
                eu, et = e.chunk(2)
                return s.step(eu + CFG * (et - eu), t, lat).prev_sample
            np.save(out("cfg"), timed("cfg", cfg_step).float().numpy())
    elif a.group == "vae":
        from diffusers import AutoencoderKL
        m = AutoencoderKL.from_pretrained(os.path.join(sd, "vae"), torch_dtype=torch.float32).eval()
        res["load"] = time.perf_counter() - t0
        z = ld("vae_latents.npy") / m.config.scaling_factor
        np.save(out("decode"), timed("decode", lambda: m.decode(z).sample)[0].float().numpy())
        m.enable_tiling()
        m.tile_sample_min_size, m.tile_latent_min_size = 512, 64
        np.save(out("tiled"), timed("tiled", lambda: m.decode(z).sample)[0].float().numpy())
    elif a.group == "vit":
        import ref_vit
        import sxrand
        m = ref_vit.VisionTransformerWithAttnPool(**cache.cfg.vit)
        m.load_state_dict(torch.load(os.path.join(cache.pre, "QwenViT", "qwen_vit_G.pt"), map_location="cpu"))
        m.eval()
        res["load"] = time.perf_counter() - t0
        S = cache.cfg.vit["image_size"]
        px = torch.from_numpy(sxrand.uniform(3 * S * S, 7, -2.0, 2.0).reshape(1, 3, S, S))
        for task, n in (("tile", 1), ("grid", 5)):
            np.save(out(task), timed(task, lambda: m(px.repeat(n, 1, 1, 1))).float().numpy())
    elif a.group == "llm":
        from transformers import LlamaForCausalLM, LlamaTokenizer
        tok = LlamaTokenizer.from_pretrained(os.path.join(cache.pre, mf.TOKENIZER_DIR))
        m = LlamaForCausalLM.from_pretrained(os.path.join(cache.pre, "seed_x_i", "llm"),
                                             torch_dtype=torch.float32, low_cpu_mem_usage=True).eval()
        res["load"] = time.perf_counter() - t0
        ids = torch.tensor([tok.encode(llm_text(N_PREFILL))])
        if ids.shape[1] != N_PREFILL:
            raise SystemExit(f"prompt has {ids.shape[1]} tokens, expected {N_PREFILL}")
        o = timed("prefill", lambda: m(ids, use_cache=True))

        def decode():
            past, nxt = o.past_key_values, o.logits[:, -1:].argmax(-1)
            for _ in range(N_DECODE):
                r = m(nxt, past_key_values=past, use_cache=True)
                past, nxt = r.past_key_values, r.logits[:, -1:].argmax(-1)
        timed("gen", decode)
        res["gen"] /= N_DECODE
        res["prefill_n"], res["gen_n"] = N_PREFILL, N_DECODE
        ids = torch.tensor([tok.encode(llm_text(N_HIDDEN))])
        h = timed("hidden", lambda: m(ids, output_hidden_states=True).hidden_states[-1][0])
        np.save(out("hidden"), h.float().numpy())
    print("RESULT " + json.dumps(res))


def flop_counter(model):
    """Counts the multiply-add flops (2 per MAC) of the model's next calls: every Linear and Conv2d
    (forward hooks) and every F.scaled_dot_product_attention (QK^T and PV); returns a function that
    removes the hooks and gives the count. GroupNorm, softmax and the elementwise ops are not counted:
    the count is the work the FMA peak applies to."""
    import torch
    import torch.nn.functional as F
    n = [0]

    def lin(mod, i, o):
        n[0] += 2 * i[0].numel() // i[0].shape[-1] * mod.in_features * mod.out_features

    def conv(mod, i, o):
        n[0] += 2 * o.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
    hooks = [mm.register_forward_hook(lin if isinstance(mm, torch.nn.Linear) else conv) for mm in model.modules()
             if isinstance(mm, (torch.nn.Linear, torch.nn.Conv2d))]
    sdpa = F.scaled_dot_product_attention

    def counted(q, k, v, *args, **kw):
        n[0] += 4 * q.numel() // q.shape[-1] * k.shape[-2] * q.shape[-1]
        return sdpa(q, k, v, *args, **kw)
    F.scaled_dot_product_attention = counted

    def done():
        for h in hooks:
            h.remove()
        F.scaled_dot_product_attention = sdpa
        return n[0]
    return done


def torch_job(cache, group, mode, threads, rundir, a):
    argv = [PY, os.path.abspath(__file__), "torch-worker", "--dir", cache.root, "--group", group,
            "--mode", mode, "--threads", str(threads), "--rundir", rundir, "--scale", cache.scale]
    if cache.llm_layers:
        argv += ["--llm-layers", str(cache.llm_layers)]
    outs = {t: os.path.join(rundir, f"{group}.{t}.torch-{mode}.npy") for t in MATRIX[group]["tasks"]}
    return (f"{group}.all.torch-{mode}", argv, {"OMP_NUM_THREADS": str(threads)}, "torch", outs)


# ----------------------------------------------------------------- run
def maxrel(a, b):
    a = np.asarray(a, np.float64).reshape(-1)
    b = np.asarray(b, np.float64).reshape(-1)
    if a.size != b.size:
        return float("nan")
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def run_group(cache, group, a, rundir, results, log):
    spec = MATRIX[group]
    for comp in spec["official"]:
        cache.official(comp)
    if group == "llm":
        make_inputs(cache)
    jobs = []
    cvars = [v for v in spec["c"] if not a.c_variants or v in a.c_variants.split(",")]
    tmodes = [m for m in spec["torch"] if not a.torch_modes or m in a.torch_modes.split(",")]  # "none": no PyTorch
    for v in cvars:
        jobs += [(j, "c") for j in c_jobs(cache, group, v, a.seedx, a.threads, rundir)]
        if a.compare and v in a.compare_variants:  # the second binary: each group's first task only
            jobs += [(j, "c-compare") for j in c_jobs(cache, group, v, a.compare, a.threads, rundir, "base")
                     if j[0].split(".")[1] in (spec["tasks"][0], "run")]
    tj = [(torch_job(cache, group, m, a.threads, rundir, a), "torch") for m in tmodes]
    order, ti = [], 0  # alternate: one PyTorch job after every len(c)/len(torch) C jobs
    step = max(1, len(jobs) // max(1, len(tj)))
    for i, j in enumerate(jobs):
        order.append(j)
        if (i + 1) % step == 0 and ti < len(tj):
            order.append(tj[ti])
            ti += 1
    order += tj[ti:]
    if group in ("unet", "unet8") and os.path.exists(BENCH_MATMUL):  # the floor: FMA/BF16 peaks, same run
        order.insert(0, ((f"{group}.peak", [BENCH_MATMUL, "--peaks"], {}, "peak", {}), "peak"))
    for r in range(a.runs):
        for (jid, argv, env, parse, outs), side in order:
            la0 = os.getloadavg()[0]
            rc, wall, rss, text, cpus = run_proc(argv, os.path.join(rundir, f"{jid}.log"), env, cpu=True)
            la1 = os.getloadavg()[0]
            if rc != 0:
                log(f"   {jid}: FAILED ({rc}), see {rundir}/{jid}.log")
                results.append(dict(job=jid, group=group, side=side, failed=rc, run=r))
                continue
            if parse == "torch":
                m = re.search(r"^RESULT (.*)$", text, re.M)
                t = json.loads(m.group(1)) if m else {}
            elif parse == "peak":  # per-thread GFLOP/s per CPU-second
                t = {k: float(v) for k, v in re.findall(r"^\s+(clock|FMA ymm|FMA zmm|vdpbf16ps zmm)\S* [A-Za-z/ ()]*?"
                                                        r"([0-9.]+)", text, re.M)}
            else:
                t = parse_c(text, parse, wall)
                if len(parse) == 1:  # one task per process: its CPU seconds (with the model's mmap)
                    t["cpu_" + next(iter(parse))] = cpus
            rec = dict(job=jid, group=group, side=side, run=r, wall=wall, rss=rss, load=(la0 + la1) / 2,
                       times=t, outputs=outs, threads=a.threads, env=env)
            results.append(rec)
            with open(os.path.join(rundir, "results.jsonl"), "a") as f:
                f.write(json.dumps(rec) + "\n")
            shown = ", ".join(f"{k} {v:.2f}" + ("" if side == "peak" else "s") for k, v in t.items()
                              if not k.endswith("_n") and not k.startswith(("cpu_", "flop_")))
            shown += "".join(f"; CPU {k[4:]} {v:.1f}s" for k, v in t.items() if k.startswith("cpu_"))
            log(f"   [{r + 1}/{a.runs}] {jid}: {shown}; peak RSS {rss / 1e9:.2f} GB; load {la0:.1f}")


def table(results, header):
    """Markdown table: median/min/max per (task, job), ratio and max-rel to PyTorch F32."""
    rows, peaks, flops = {}, {}, {}
    for r in results:
        if r.get("failed") is not None:
            continue
        if r["side"] == "peak":
            for k, v in r["times"].items():
                peaks.setdefault((r["group"], k), []).append(v)
            continue
        for k, v in r["times"].items():
            if k.startswith("flop_"):
                flops[(r["group"], k[5:])] = v
                if k == "flop_fwd":
                    flops[(r["group"], "cfg")] = 2 * v  # two evaluations in one batch
        variant = r["job"].split(".")[-1]
        for task, v in r["times"].items():
            if task.endswith("_n") or task == "load" or task == "hidden" or task.startswith("cpu_"):
                continue
            if task not in MATRIX[r["group"]]["tasks"]:
                continue
            key = (r["group"], task, variant)
            rows.setdefault(key, dict(times=[], cpu=[], rss=[], load=[], outputs=r["outputs"], side=r["side"],
                                      threads=r.get("threads", 2), avx2=r.get("env", {}).get("SEEDX_SIMD") == "avx2"))
            rows[key]["times"].append(v)
            if "cpu_" + task in r["times"]:
                rows[key]["cpu"].append(r["times"]["cpu_" + task])
            rows[key]["rss"].append(r["rss"])
            rows[key]["load"].append(r["load"])
    ref_out = {}
    for (g, task, variant), d in rows.items():
        if variant == "torch-f32":
            ref_out[(g, task)] = d["outputs"].get(task)
    lines = header + ["", "| task | run | median s | min - max s | n | CPU s | peak RSS GB | x PyTorch F32 | "
                          "x PyTorch F32 (CPU s) | max-rel vs PyTorch F32 | % of peak (wall / CPU s) | load avg |",
                          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    order = {g: i for i, g in enumerate(MATRIX)}
    for key in sorted(rows, key=lambda k: (order[k[0]], k[1], not k[2].startswith("torch"), k[2])):
        g, task, variant = key
        d = rows[key]
        med = statistics.median(d["times"])
        ref = rows.get((g, task, "torch-f32"))
        ratio = f"{med / statistics.median(ref['times']):.2f}" if ref else ""
        cpu = statistics.median(d["cpu"]) if d["cpu"] else None
        cratio = f"{cpu / statistics.median(ref['cpu']):.2f}" if ref and ref["cpu"] and cpu else ""
        mr = ""
        ro, mo = ref_out.get((g, task)), d["outputs"].get(task)
        if ro and mo and os.path.exists(ro) and os.path.exists(mo) and variant != "torch-f32":
            mr = f"{maxrel(np.load(mo), np.load(ro)):.1e}"
        label = TASK_LABEL[task + "40" if g == "llm40" else task]
        pct = ""  # flops / (median wall x threads x the same run's per-thread peak of that arithmetic)
        bf = variant.endswith("+bf16") or variant == "torch-bf16"
        pkk = (g, "vdpbf16ps zmm" if bf else "FMA ymm" if d["avx2"] else "FMA zmm")
        if (g, task) in flops and pkk in peaks:
            pk = statistics.median(peaks[pkk])
            pct = f"{100 * flops[(g, task)] / (med * d['threads'] * pk * 1e9):.0f}%"
            if cpu:  # per CPU-second: what the threads did while they ran (a shared host takes cores away)
                pct += f" / {100 * flops[(g, task)] / (cpu * pk * 1e9):.0f}%"
            pct += " BF16" if bf else " FMA"
        lines.append(f"| {label} | {variant} | {med:.2f} | {min(d['times']):.2f} - {max(d['times']):.2f} | "
                     f"{len(d['times'])} | {f'{cpu:.1f}' if cpu else ''} | {max(d['rss']) / 1e9:.2f} | {ratio} | "
                     f"{cratio} | {mr} | {pct} | "
                     f"{statistics.mean(d['load']):.1f} |")
    # LLM numerics: final hidden states of a 64-token prompt
    hid = [(r["job"].split(".")[-1], r["outputs"].get("hidden")) for r in results
           if r.get("outputs") and r["outputs"].get("hidden") and r.get("failed") is None]
    ref = dict(hid).get("torch-f32")
    if ref and os.path.exists(ref):
        done = set()
        for v, p in hid:
            if v == "torch-f32" or v in done or not os.path.exists(p):
                continue
            done.add(v)
            lines.append(f"| {TASK_LABEL['hidden']} | {v} | | | | | | | | {maxrel(np.load(p), np.load(ref)):.1e} | | |")
    for (g, k), v in sorted(peaks.items()):
        if k != "clock":
            lines.append(f"peak ({g} runs): {k} {statistics.median(v):.1f} GFLOP/s per thread (median of {len(v)})")
    for (g, t), v in sorted(flops.items()):
        lines.append(f"{TASK_LABEL[t]}: {v / 1e12:.3f} TFLOP (Linear + Conv2d + attention products, counted "
                     f"in PyTorch)")
    return lines


def machine_header(a, cache):
    cpu, flags = "?", []
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        cpu = re.search(r"model name\s*:\s*(.*)", info).group(1)
        have = set(re.search(r"^flags\s*:\s*(.*)$", info, re.M).group(1).split())
        flags = [n + ("" if f in have else " NO") for f, n in (("avx2", "AVX2"), ("avx512f", "AVX-512"),
                 ("avx512_bf16", "AVX512_BF16"), ("amx_tile", "AMX"))]
    except (OSError, AttributeError):
        pass
    ver = subprocess.run([a.seedx, "version"], capture_output=True, text=True).stdout.split("\n")
    ver = "; ".join(x.strip() for x in ver if x.startswith(("simd", "compute")))
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [f"bench_full.py run, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit {commit}, "
            f"{os.path.basename(a.seedx)}" + (f" (compare: {a.compare})" if a.compare else ""),
            f"machine: {cpu}, {os.cpu_count()} CPUs ({', '.join(flags)}), {mem:.0f} GiB, {platform.platform()}; "
            f"seedx version: {ver}; "
            f"{a.threads} threads; {a.runs} runs per row; LLM: {cache.llm_layers} of 40 layers "
            f"(real layer shapes and vocabulary)"]


def cmd_run(a):
    cache = Cache(a.dir, a.llm_layers, a.scale)
    a.seedx = os.path.abspath(a.seedx)
    a.compare = os.path.abspath(a.compare) if a.compare else None
    a.compare_variants = a.compare_variants.split(",")
    stamp = datetime.datetime.utcnow().strftime("%Y%m%d-%H%M%S")
    rundir = os.path.join(cache.dir, "runs", stamp)
    os.makedirs(rundir)
    make_inputs(cache)
    results = []
    groups = a.groups.split(",")
    for g in groups:
        if g not in MATRIX:
            raise SystemExit(f"unknown group {g} (one of {', '.join(MATRIX)})")
    for g in groups:
        print(f"== {g} (free disk {free_gb(cache.dir):.0f} GB)", flush=True)
        run_group(cache, g, a, rundir, results, lambda s: print(s, flush=True))
        if not a.keep:
            for v in MATRIX[g]["c"]:
                rm(cache.gguf_name(g, C_VARIANTS[v][0]))
            needed_later = {c for g2 in groups[groups.index(g) + 1:] for c in MATRIX[g2]["official"]}
            for comp in MATRIX[g]["official"]:
                if comp not in needed_later:
                    cache.drop_official(comp)
    lines = table(results, machine_header(a, cache))
    if cache.converted:
        lines += ["", "converter (made for this run): file, wall s, peak RSS GB, output GB"]
        lines += [f"  {o} ({c} {d}): {w:.0f} s, {r / 1e9:.2f} GB, {s / 1e9:.2f} GB" for o, c, d, w, r, s in
                  cache.converted]
    text = "\n".join(lines)
    print("\n" + text)
    with open(os.path.join(rundir, "table.md"), "w") as f:
        f.write(text + "\n")
    print(f"\n(results: {rundir})")


# ----------------------------------------------------------------- convert (make fullsize)
# output file -> official components it reads, in an order that keeps the disk small
REHEARSAL = (("tokenizer.gguf", ("tokenizer",)), ("vit.gguf", ("vit",)), ("agent.gguf", ("agent",)),
             ("llm.gguf", ("llm",)), ("detokenizer.gguf", ("detokenizer1",)),
             ("unet.gguf", ("unet", "scheduler", "detokenizer1")), ("vae.gguf", ("vae",)),
             ("detokenizer_edit.gguf", ("detokenizer2",)),
             ("unet_edit.gguf", ("unet", "scheduler", "detokenizer2")))


def cmd_convert(a):
    import convert
    cache = Cache(a.dir, a.llm_layers, a.scale)
    dtypes = a.dtypes.split(",")
    llm_dtypes = a.llm_dtypes.split(",") if a.llm_dtypes else dtypes
    out = os.path.join(cache.dir, "models")
    os.makedirs(out, exist_ok=True)
    rows, checks, checked = [], [], set()
    files = a.files.split(",") if a.files else [f[:-5] for f, _ in REHEARSAL]
    for i, (fname, comps) in enumerate(REHEARSAL):
        if fname[:-5] not in files:
            continue
        print(f"== {fname} (free disk {free_gb(cache.dir):.0f} GB)", flush=True)
        for c in comps:
            cache.official(c)
            if a.check and c not in checked:  # the official loaders open what was written
                checked.add(c)
                argv = [PY, os.path.join(HERE, "make_fullsize.py"), cache.pre, "--check", "--components", c,
                        "--scale", cache.scale] + (["--llm-layers", str(cache.llm_layers)] if cache.llm_layers else [])
                rc, wall, rss, text = run_proc(argv, os.path.join(cache.dir, f"check-{c}.log"))
                if rc != 0:
                    raise SystemExit(f"make_fullsize.py --check {c} failed:\n{text[-3000:]}")
                said = [ln.strip() for ln in text.splitlines() if ln.startswith("  ")]
                checks.append((c, wall, rss, said[-1] if said else ""))
                print(f"   check {c}: {wall:.0f} s, peak RSS {rss / 1e9:.2f} GB: {checks[-1][3]}", flush=True)
        todo = ["-"] if fname == "tokenizer.gguf" else list(llm_dtypes if fname == "llm.gguf" else dtypes)
        if fname == "vae.gguf" and "f32" not in todo:
            todo.append("f32")  # convert.py --pretrained keeps the VAE in F32 (last: linked below)
        for dt in todo:
            d = os.path.join(out, "seed-x-edit_" + (dt if dt != "-" else "f16"))
            pa = convert.pretrained_parser().parse_args(
                ["--pretrained", cache.pre, "--variant", "seed-x-edit", "--out", d,
                 "--dtype", dt if dt != "-" else "f16", "--vae-dtype", dt if dt != "-" else "f32"]
                + mf.convert_flags(cache.cfg))
            pa.variant, pa.stage2 = "seed-x-i", True  # seed_x_i's agent/llm, both de-tokenizer stages
            _, steps = convert.pretrained_steps(pa)
            st = [s for s in steps if os.path.basename(s[2]) == fname][0]
            os.makedirs(d, exist_ok=True)
            cache.convert(st, st[2], fname[:-5], dt)
            o, comp, dty, wall, rss, size = cache.converted[-1]
            rows.append((fname, dty, wall, rss, size))
            if not a.keep:
                rm(st[2])
            elif fname == "vae.gguf" and dt == "f32":  # every model folder gets the F32 VAE (the default)
                for dt2 in dtypes:
                    d2 = os.path.join(out, "seed-x-edit_" + dt2)
                    os.makedirs(d2, exist_ok=True)
                    if dt2 != "f32":
                        rm(os.path.join(d2, fname))
                        os.link(st[2], os.path.join(d2, fname))
        later = {c for f, cs in REHEARSAL[i + 1:] if f[:-5] in files for c in cs}
        if not a.keep_sources:
            for c in comps:
                if c not in later:
                    cache.drop_official(c)
    lines = [f"bench_full.py convert, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; LLM: "
             f"{cache.llm_layers or 40} layers", "",
             "| output | type | converter wall s | peak RSS GB | output GB |", "|---|---|---|---|---|"]
    lines += [f"| {f} | {d} | {w:.0f} | {r / 1e9:.2f} | {s / 1e9:.2f} |" for f, d, w, r, s in rows]
    if checks:
        lines += ["", "| official files opened by | wall s | peak RSS GB | what |", "|---|---|---|---|"]
        lines += [f"| {c} | {w:.0f} | {r / 1e9:.2f} | {t} |" for c, w, r, t in checks]
    text = "\n".join(lines)
    print("\n" + text)
    os.makedirs(os.path.join(cache.dir, "runs"), exist_ok=True)
    with open(os.path.join(cache.dir, "runs", "convert-%s.md" % datetime.datetime.utcnow().strftime("%Y%m%d-%H%M%S")),
              "w") as f:
        f.write(text + "\n")


# ----------------------------------------------------------------- modes (the rehearsal)
# mode -> ./seedx arguments after "-m MODEL" ({img}: the 2x2-grid image, {out}: the output)
MODES = {
    "comprehension": "chat --image {img} -p 'Describe the image in detail.' -n 32",
    "grounding": "ground --image {img} -p 'Where is the cat?' -n 32 -o {out}",
    "text-to-image": "generate -p 'a cat sitting on a sofa' --force-image -n 66 --steps {steps} --size 1024x1024 "
                     "-o {out}",
    "editing": "edit --image {img} -p 'make the sky red' --force-image -n 66 --steps {steps} --size 1024x1024 "
               "-o {out}",
    "reconstruction": "reconstruct --image {img} --steps {steps} --size 1024x1024 -o {out}",
}
# the modules whose outputs are traced and checked finite (SEEDX_TRACE_ONLY)
TRACED = ("ln_post", "input_resampler", "model.norm", "output_resampler", "resampler.unet_attnpool",
          "prompt_embeds", "image_latents", "conv_out", "decoder.conv_out")


def run_watched(argv, env, log):
    """Runs argv; returns (rc, wall, ru (wait4 rusage), events [(t, stream, line)], rss
    samples [(t, bytes)] of VmRSS every 0.2 s)."""
    import threading
    t0 = time.time()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                         env=dict(os.environ, **env))
    events, samples = [], []

    def reader(stream, name):
        buf = b""
        while True:
            ch = stream.read1(4096) if hasattr(stream, "read1") else stream.read(1)
            if not ch:
                break
            buf += ch
            while b"\n" in buf or (name == "out" and buf):  # stdout: streamed tokens, no newline
                if b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                else:
                    line, buf = buf, b""
                events.append((time.time() - t0, name, line.decode(errors="replace")))
    th = [threading.Thread(target=reader, args=(p.stdout, "out")),
          threading.Thread(target=reader, args=(p.stderr, "err"))]
    for t in th:
        t.start()
    status = f"/proc/{p.pid}/status"
    res = None
    while res is None:
        try:
            with open(status) as f:
                m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
            if m:
                samples.append((time.time() - t0, int(m.group(1)) * 1024))
        except OSError:
            pass
        r = os.wait4(p.pid, os.WNOHANG)
        if r[0] == p.pid:
            res = r
            break
        time.sleep(0.2)
    for t in th:
        t.join()
    wall = time.time() - t0
    rc = os.waitstatus_to_exitcode(res[1])
    with open(log, "w") as f:
        f.writelines(f"{t:9.2f} {n} {ln}\n" for t, n, ln in events)
    return rc, wall, res[2], events, samples


def stages_of(events, wall):
    """[(stage, start, end)] from the CLI's own lines: 'vision:', the first streamed
    token, 'llm:', each 'denoise k/n', the last 'vae k/n', 'de-tokenizer:'."""
    marks, first_tok = [], None
    for t, stream, ln in events:
        if stream == "out" and first_tok is None and marks and marks[-1][0] == "vision" and ln.strip():
            first_tok = t
            marks.append(("prefill + 1st token", t))
        elif ln.startswith("vision:"):
            marks.append(("vision", t))
        elif ln.startswith("llm:"):
            marks.append(("decode" if first_tok is not None else "llm", t))
        elif ln.startswith("denoise"):
            m = re.match(r"denoise\s+(\d+)/(\d+)", ln)
            marks.append((f"UNet step {m.group(1)}" if m else "denoise", t))
        elif ln.startswith("vae"):
            if marks and marks[-1][0] == "VAE decode":
                marks[-1] = ("VAE decode", t)
            else:
                marks.append(("VAE decode", t))
        elif ln.startswith("total"):
            marks.append(("stage end, free", t))
    out, prev = [], 0.0
    for name, t in marks:
        if name == "UNet step 1":  # also what runs before it: the de-tokenizer's resampler, the UNet's
            name = "de-tokenizer start + UNet step 1"  # first page-in, the edit's VAE encode (and the ViT
        out.append((name, prev, t))                     # in reconstruction, which prints no vision line)
        prev = t
    out.append(("write output, exit", prev, wall))
    return out


def cmd_modes(a):
    """Every SEED-X mode on a real-size model folder: per-stage wall time and
    resident set, the process's peak RSS, major page faults, traced modules finite."""
    models = {}
    for spec in a.llm.split(","):  # type=path of an llm.gguf, or type (the folder's own)
        t, _, path = spec.partition("=")
        models[t] = path
    rundir = os.path.join(a.dir, "runs", "modes-" + datetime.datetime.utcnow().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(rundir)
    img = os.path.abspath(a.image)
    rows, lines = [], []
    for lt, path in models.items():
        mdir = a.model
        if path:  # the folder with this llm.gguf in place of its own
            mdir = os.path.join(rundir, "model-" + lt)
            os.makedirs(mdir)
            for f in os.listdir(a.model):
                if f.endswith(".gguf") and f != "llm.gguf":
                    os.symlink(os.path.abspath(os.path.join(a.model, f)), os.path.join(mdir, f))
            os.symlink(os.path.abspath(path), os.path.join(mdir, "llm.gguf"))
        for mode in a.modes.split(","):
            tr = os.path.join(rundir, f"trace-{mode}-{lt}")
            out = os.path.join(rundir, f"{mode}-{lt}.png")
            cmd, rest = MODES[mode].format(img=img, out=out, steps=a.steps).split(" ", 1)
            argv = [os.path.abspath(a.seedx), "--threads", str(a.threads), "--trace", tr, cmd, "-m", mdir] + \
                shlex.split(rest)
            print(f"== {mode}, LLM {lt}: {' '.join(shlex.quote(x) for x in argv)}", flush=True)
            la = os.getloadavg()[0]
            rc, wall, ru, events, samples = run_watched(argv, {"SEEDX_TRACE_ONLY": ",".join(TRACED)},
                                                        os.path.join(rundir, f"{mode}-{lt}.log"))
            if rc != 0:
                print(f"   FAILED ({rc}):\n" + "\n".join(ln for _, _, ln in events[-15:]), flush=True)
                rows.append((mode, lt, "FAILED", wall, 0, 0, 0, "", la))
                continue
            bad, nt = [], 0
            for f in sorted(os.listdir(tr)) if os.path.isdir(tr) else []:
                if f.endswith(".npy"):
                    x = np.load(os.path.join(tr, f))
                    nt += 1
                    if not np.isfinite(x).all():
                        bad.append(f)
            fin = (f"{nt} traced, all finite" if not bad else f"NOT FINITE: {', '.join(bad)}")
            for st, t0, t1 in stages_of(events, wall):
                if st in ("write output, exit", "stage end, free") and t1 - t0 < 0.5:
                    continue
                rs = [b for t, b in samples if t0 <= t <= t1] or [0]
                rows.append((mode, lt, st, t1 - t0, max(rs), ru.ru_maxrss * 1024, ru.ru_majflt, fin, la))
                print(f"   {st}: {t1 - t0:.1f} s, RSS up to {max(rs) / 1e9:.2f} GB", flush=True)
            steps = [t1 - t0 for st, t0, t1 in stages_of(events, wall) if "UNet step" in st]
            ext = ""
            if len(steps) >= 2:
                ext = f"{wall + (50 - len(steps)) * steps[-1]:.0f} s at 50 steps (extrapolated: + {50 - len(steps)} x " \
                      f"the last step)"
            rows.append((mode, lt, "whole run", wall, max(b for _, b in samples) if samples else 0,
                         ru.ru_maxrss * 1024, ru.ru_majflt, fin + ("; " + ext if ext else ""), la))
            print(f"   whole run: {wall:.1f} s, peak RSS {ru.ru_maxrss / 2**20:.2f} GiB, {ru.ru_majflt} major faults; "
                  f"{fin} {ext}", flush=True)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    lines = [f"bench_full.py modes, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit {commit}, model "
             f"{a.model}, {a.threads} threads, default compute, {a.steps} Euler steps at 1024x1024", "",
             "| mode | LLM | stage | wall s | largest RSS in stage GB | process peak RSS GB | major faults | "
             "outputs | load avg |", "|---|---|---|---|---|---|---|---|---|"]
    for mode, lt, st, w, rs, pk, mf_, fin, la in rows:
        if st != "whole run":
            pk, mf_, fin = None, "", ""
        lines.append(f"| {mode} | {lt} | {st} | {w:.1f} | {rs / 1e9:.2f} | {'' if pk is None else f'{pk / 1e9:.2f}'} | "
                     f"{mf_} | {fin} | {la:.1f} |")
    text = "\n".join(lines)
    print("\n" + text)
    with open(os.path.join(rundir, "table.md"), "w") as f:
        f.write(text + "\n")


def cmd_table(a):
    """The table of (possibly interrupted) runs from their results.jsonl; a job of a
    later folder replaces the same job of the earlier ones (e.g. C rows re-measured
    with a newer binary beside PyTorch rows that did not change)."""
    byjob = {}
    for d in a.rundir:
        with open(os.path.join(d, "results.jsonl")) as f:
            runs = [json.loads(line) for line in f if line.strip()]
        for j in {r["job"] for r in runs}:
            byjob[j] = [r for r in runs if r["job"] == j]
    results = [r for rs in byjob.values() for r in rs]
    print("\n".join(table(results, [f"bench_full.py table {' '.join(a.rundir)}"])))


def cmd_fullsize(a):
    """`make fullsize`: the converter rehearsal (every component, each --dtypes; the first type's
    model folder kept, the others deleted once measured; the LLM on --llm-layers layers in
    --llm-dtypes), the 40-layer LLM in --llm-type, then every mode on that folder with that LLM;
    prints the tables."""
    dtypes = a.dtypes.split(",")
    cv = argparse.Namespace(dir=a.dir, threads=a.threads, scale="full", dtypes=a.dtypes, llm_dtypes=None,
                            files=",".join(f[:-5] for f, _ in REHEARSAL if f != "llm.gguf"), llm_layers=None,
                            keep=True, keep_sources=False, check=True)
    cmd_convert(cv)
    # the LLM: its 40 layers are 52 GB of official F32 shards, more than a 75 GB disk holds beside the
    # rest; the converter runs on --llm-layers of them (the real layer shapes; time and disk scale by 40/N)
    cmd_convert(argparse.Namespace(**dict(vars(cv), files="llm", llm_layers=a.llm_layers, keep=False,
                                          llm_dtypes=a.llm_dtypes)))
    models = os.path.join(a.dir, "models")
    for dt in dtypes[1:]:
        rm(os.path.join(models, "seed-x-edit_" + dt))
    llm, _ = Cache(a.dir, None).llm40(a.llm_type)
    mo = argparse.Namespace(dir=a.dir, model=os.path.join(models, "seed-x-edit_" + dtypes[0]),
                            llm=f"{a.llm_type}={llm}", modes=a.modes, image=a.image, steps=a.steps,
                            threads=a.threads, seedx=a.seedx)
    cmd_modes(mo)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = os.environ.get("SEEDX_FULLSIZE_DIR")
    for name in ("run", "convert", "torch-worker"):
        s = sub.add_parser(name)
        s.add_argument("--dir", default=d, required=d is None, help="cache folder ($SEEDX_FULLSIZE_DIR)")
        s.add_argument("--threads", type=int, default=2)
        s.add_argument("--scale", default="full", choices=("full", "tiny"),
                       help="tiny: the same runs on tiny shapes (a check of this script)")
    r = sub.choices["run"]
    r.add_argument("--groups", default=",".join(MATRIX))
    r.add_argument("--runs", type=int, default=3)
    r.add_argument("--seedx", default=os.path.join(ROOT, "seedx"))
    r.add_argument("--compare", help="a second seedx binary (e.g. a baseline build) timed beside")
    r.add_argument("--compare-variants", default="f32,f16", help="its C variants (default f32,f16)")
    r.add_argument("--c-variants", help="only these C variants (default: each group's list in MATRIX)")
    r.add_argument("--torch-modes", help="only these PyTorch modes (default: each group's list)")
    r.add_argument("--llm-layers", type=int, default=4)
    r.add_argument("--keep", action="store_true", help="keep official and converted files")
    c = sub.choices["convert"]
    c.add_argument("--dtypes", default="f16,bf16")
    c.add_argument("--llm-dtypes", help="the LLM's types (default: --dtypes), e.g. q8_0,q4_0")
    c.add_argument("--files", help="only these outputs, e.g. vit,unet (default: every file of the model)")
    c.add_argument("--llm-layers", type=int, default=None)
    c.add_argument("--keep", action="store_true", help="keep the converted files")
    c.add_argument("--keep-sources", action="store_true", help="keep the official files")
    c.add_argument("--no-check", dest="check", action="store_false",
                   help="skip opening the official files with torch / transformers / diffusers")
    w = sub.choices["torch-worker"]
    w.add_argument("--group", required=True)
    w.add_argument("--mode", default="f32", choices=TORCH_MODES)
    w.add_argument("--rundir", required=True)
    w.add_argument("--llm-layers", type=int, default=None)
    mo = sub.add_parser("modes", help="every SEED-X mode on a real-size model folder (the rehearsal)")
    mo.add_argument("--dir", default=d, required=d is None)
    mo.add_argument("--model", required=True, help="a converted seed-x-edit folder")
    mo.add_argument("--llm", default="own", help="TYPE=llm.gguf,... : one run per LLM file (default: the folder's)")
    mo.add_argument("--modes", default=",".join(MODES))
    mo.add_argument("--image", default=os.path.join(ROOT, "tests", "fixtures", "seedx_e2e", "img_c.png"),
                    help="the input image (default: 900x900, a 2x2 grid: 5 ViT tiles)")
    mo.add_argument("--steps", type=int, default=2)
    mo.add_argument("--threads", type=int, default=2)
    mo.add_argument("--seedx", default=os.path.join(ROOT, "seedx"))
    f = sub.add_parser("fullsize", help="make fullsize: convert every component (--dtypes), write the 40-layer "
                       "LLM in --llm-type, run every mode on the first type's folder with it")
    f.add_argument("--dir", default=d, required=d is None, help="cache folder ($SEEDX_FULLSIZE_DIR)")
    f.add_argument("--threads", type=int, default=2)
    f.add_argument("--dtypes", default="f16,bf16", help="converter types; the first one's folder runs the modes")
    f.add_argument("--llm-dtypes", default="q8_0,q4_0", help="the LLM's converter types")
    f.add_argument("--llm-layers", type=int, default=10, help="layers of the LLM the converter rehearses")
    f.add_argument("--llm-type", default="q8_0", help="the 40-layer LLM the modes use (q8_0, q4_0, q4_k)")
    f.add_argument("--modes", default=",".join(MODES))
    f.add_argument("--steps", type=int, default=2)
    f.add_argument("--image", default=mo.get_default("image"))
    f.add_argument("--seedx", default=os.path.join(ROOT, "seedx"))
    t = sub.add_parser("table", help="print the table of a run folder (runs/STAMP) from its results")
    t.add_argument("rundir", nargs="+")
    a = p.parse_args()
    if a.cmd == "table":
        return cmd_table(a)
    os.makedirs(a.dir, exist_ok=True)
    {"run": cmd_run, "convert": cmd_convert, "torch-worker": torch_worker, "modes": cmd_modes,
     "fullsize": cmd_fullsize}[a.cmd](a)


if __name__ == "__main__":
    main()
