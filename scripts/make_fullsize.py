#!/usr/bin/env python3
"""Writes a random-weight SEED-X in the OFFICIAL on-disk layout, shapes, dtypes and
file formats (what the SEED-X README tells users to download into pretrained/):

    OUT/QwenViT/qwen_vit_G.pt                              torch.save state dict, bfloat16   3.87 GB
    OUT/seed_x_i/agent/pytorch_model.bin                   torch.save state dict, float32    0.86 GB
    OUT/seed_x_i/llm/ config.json generation_config.json   transformers 4.30.2 save_pretrained:
        pytorch_model-0000k-of-00006.bin + index.json      10 GB shards, float32            52.1 GB
    OUT/seed_detokenizer/first_stage/pytorch_model.bin     resampler.* + unet.*to_k/to_v     2.43 GB
    OUT/seed_detokenizer/second_stage/pytorch_model.bin    resampler.* + 8-channel unet.*   10.5 GB
    OUT/cvlm_llama2_tokenizer_100img_and_224loc_addpatch/  the SEED-X tokenizer folder
    OUT/stable-diffusion-xl-base-1.0/unet/                 config.json + diffusion_pytorch_model.safetensors (fp32, 10.3 GB)
    OUT/stable-diffusion-xl-base-1.0/vae/                  config.json + diffusion_pytorch_model.safetensors (fp32, 0.33 GB)
    OUT/stable-diffusion-xl-base-1.0/scheduler/            scheduler_config.json

    .venv/bin/python scripts/make_fullsize.py OUT [--variant seed-x-i|seed-x|seed-x-edit]
        [--scale full|tiny] [--components all|vit,agent,llm,...] [--llm-layers N]
        [--llm-dtype float32|bfloat16] [--list] [--check]

Key names, shapes and their order come from the official classes built on the meta
device (transformers' LlamaForCausalLM, diffusers' UNet2DConditionModel and
AutoencoderKL, the faithful transcriptions of Qwen-VL's VisionTransformerWithAttnPool /
Resampler and SEED-X's ResamplerXLV2 in ref_vit.py / ref_detok.py), with the released
configs (--scale full) or the tiny configs of make_tiny_seedx.py (--scale tiny: same
code path, small shapes). Files are written by scripts/sxckpt.py's writers, one tensor
(one 4 Mi-element slice) in memory at a time, so peak RSS is ~0.3 GB at any size.

Values: deterministic, from the shared counter-based generator (sxrand.py), stream
crc32("<component>/<key>"), scaled like the modules' init so activations stay finite:
matrices / conv kernels / embedding tables U(-a, a) with a = sqrt(3 / fan_in) (unit
gain; fan_in = numel / rows; ResamplerXLV2's latents use their width), norm weights
U(0.8, 1.2), biases U(-0.1, 0.1); the fixed tables are computed as the modules compute
them (the resamplers' 2-D sin-cos pos_embed, Llama's rotary inv_freq). Every value is
rounded to bfloat16 (except inv_freq, which PyTorch loads and uses as is), so a BF16
conversion is lossless and F32/F16/BF16 runs see the same weights.

--components picks what to write (default all): tokenizer, vit, agent, llm,
detokenizer1, detokenizer2, unet, vae, scheduler (sdxl = unet,vae,scheduler). The
full-size rehearsal writes one component, converts it and deletes it (see README).
--llm-layers N writes an N-layer LLM (real layer shapes, config says N) when 52 GB of
float32 shards do not fit the disk; --llm-dtype bfloat16 halves them (not the released
dtype). --list prints every file with its tensor count, parameters and size without
writing. --check opens what exists under OUT with the official loading code (torch.load,
transformers / diffusers from_pretrained, the tokenizer) and compares sampled values
with the generator.
"""
import argparse
import collections
import json
import math
import os
import shutil
import sys
import time
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import sxckpt  # noqa: E402
import sxrand  # noqa: E402

VARIANTS = {"seed-x": "seed_x", "seed-x-i": "seed_x_i", "seed-x-edit": "seed_x_edit"}
TOKENIZER_DIR = "cvlm_llama2_tokenizer_100img_and_224loc_addpatch"
SDXL = "stable-diffusion-xl-base-1.0"
COMPONENTS = ("tokenizer", "vit", "agent", "llm", "detokenizer1", "detokenizer2", "unet", "vae",
              "scheduler")
GROUPS = {"all": COMPONENTS, "sdxl": ("unet", "vae", "scheduler")}

# ----------------------------------------------------------------- the released configs
# configs/visual_encoder/qwen_vitg_448.yaml
FULL_VIT = dict(image_size=448, patch_size=14, width=1664, layers=48, heads=16, mlp_ratio=4.9231,
                n_queries=256, output_dim=4096)
# seed_x*/llm/config.json (transformers 4.30.2)
FULL_LLM = dict(vocab_size=32330, hidden_size=5120, intermediate_size=13824, num_hidden_layers=40,
                num_attention_heads=40, num_key_value_heads=40, max_position_embeddings=2048,
                rms_norm_eps=1e-05, initializer_range=0.02, bos_token_id=1, eos_token_id=2,
                pad_token_id=0, pretraining_tp=2)
# configs/clm_models/agent_seed_x*.yaml
FULL_AGENT = dict(input_resampler=dict(grid_size=8, embed_dim=5120, num_heads=32, kv_dim=4096),
                  output_resampler=dict(grid_size=8, embed_dim=4096, num_heads=32, kv_dim=5120))
# configs/sdxl_adapter/*.yaml
FULL_DETOK = dict(dim=1024, depth=4, dim_head=64, heads=16, num_queries=64, embedding_dim=4096,
                  output1_dim=768, output2_dim=1280, ff_mult=4, normalize=False)
# stable-diffusion-xl-base-1.0/unet/config.json (diffusers 0.19.0.dev0 wrote it)
SDXL_UNET_JSON = collections.OrderedDict([
    ("_class_name", "UNet2DConditionModel"), ("_diffusers_version", "0.19.0.dev0"),
    ("act_fn", "silu"), ("addition_embed_type", "text_time"), ("addition_embed_type_num_heads", 64),
    ("addition_time_embed_dim", 256), ("attention_head_dim", [5, 10, 20]),
    ("block_out_channels", [320, 640, 1280]), ("center_input_sample", False),
    ("class_embed_type", None), ("class_embeddings_concat", False), ("conv_in_kernel", 3),
    ("conv_out_kernel", 3), ("cross_attention_dim", 2048), ("cross_attention_norm", None),
    ("down_block_types", ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]),
    ("downsample_padding", 1), ("dual_cross_attention", False), ("encoder_hid_dim", None),
    ("encoder_hid_dim_type", None), ("flip_sin_to_cos", True), ("freq_shift", 0), ("in_channels", 4),
    ("layers_per_block", 2), ("mid_block_only_cross_attention", None), ("mid_block_scale_factor", 1),
    ("mid_block_type", "UNetMidBlock2DCrossAttn"), ("norm_eps", 1e-05), ("norm_num_groups", 32),
    ("num_attention_heads", None), ("num_class_embeds", None), ("only_cross_attention", False),
    ("out_channels", 4), ("projection_class_embeddings_input_dim", 2816),
    ("resnet_out_scale_factor", 1.0), ("resnet_skip_time_act", False),
    ("resnet_time_scale_shift", "default"), ("sample_size", 128), ("time_cond_proj_dim", None),
    ("time_embedding_act_fn", None), ("time_embedding_dim", None),
    ("time_embedding_type", "positional"), ("timestep_post_act", None),
    ("transformer_layers_per_block", [1, 2, 10]),
    ("up_block_types", ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]),
    ("upcast_attention", None), ("use_linear_projection", True)])
# stable-diffusion-xl-base-1.0/vae/config.json
SDXL_VAE_JSON = collections.OrderedDict([
    ("_class_name", "AutoencoderKL"), ("_diffusers_version", "0.20.0.dev0"), ("act_fn", "silu"),
    ("block_out_channels", [128, 256, 512, 512]),
    ("down_block_types", ["DownEncoderBlock2D"] * 4), ("force_upcast", True), ("in_channels", 3),
    ("latent_channels", 4), ("layers_per_block", 2), ("norm_num_groups", 32), ("out_channels", 3),
    ("sample_size", 1024), ("scaling_factor", 0.13025), ("up_block_types", ["UpDecoderBlock2D"] * 4)])
# stable-diffusion-xl-base-1.0/scheduler/scheduler_config.json
SDXL_SCHEDULER_JSON = collections.OrderedDict([
    ("_class_name", "EulerDiscreteScheduler"), ("_diffusers_version", "0.19.0.dev0"),
    ("beta_end", 0.012), ("beta_schedule", "scaled_linear"), ("beta_start", 0.00085),
    ("clip_sample", False), ("interpolation_type", "linear"), ("num_train_timesteps", 1000),
    ("prediction_type", "epsilon"), ("sample_max_value", 1.0), ("set_alpha_to_one", False),
    ("skip_prk_steps", True), ("steps_offset", 1), ("timestep_spacing", "leading"),
    ("trained_betas", None), ("use_karras_sigmas", False)])

# parameter counts of the released files (docs/spec section 9), checked at --scale full
FULL_PARAMS = {"vit": 1935610624, "agent": 215183360, "llm40": 13019243520,
               "detokenizer1": 61245696 + 545587200, "detokenizer2": 61245696 + 2567475204,
               "unet": 2567463684, "vae": 83653863}


class Config:
    """Every shape of one scale: the released values or make_tiny_seedx's tiny ones."""

    def __init__(self, scale, llm_layers=None, llm_dtype="float32"):
        self.scale = scale
        if scale == "full":
            self.vit, self.agent, self.detok = FULL_VIT, FULL_AGENT, FULL_DETOK
            self.llm = dict(FULL_LLM)
            tiny_unet, tiny_vae = {}, {}
            self.max_shard = 10 * 10**9  # save_pretrained's default "10GB"
        else:
            import make_tiny_seedx as t
            self.vit = t.VIT
            self.agent = {k: t.AGENT[k] for k in ("input_resampler", "output_resampler")}
            self.detok = t.DETOK
            self.llm = {k: v for k, v in t.LLM.items()}
            self.llm.update(num_key_value_heads=t.LLM["num_attention_heads"], pretraining_tp=1)
            tiny_unet, tiny_vae = t.UNET, t.VAE
            self.max_shard = 3 * 10**6   # several shards, as the tiny fixture model
        # the config.json contents: the released ones, tiny sizes overriding
        self.unet_json = collections.OrderedDict((k, tiny_unet.get(k, v)) for k, v in SDXL_UNET_JSON.items())
        self.vae_json = collections.OrderedDict((k, tiny_vae.get(k, v)) for k, v in SDXL_VAE_JSON.items())
        self.unet = {k: v for k, v in self.unet_json.items() if not k.startswith("_")}
        self.vae = {k: v for k, v in self.vae_json.items() if not k.startswith("_")}
        if llm_layers:
            self.llm["num_hidden_layers"] = int(llm_layers)
        self.llm_dtype = llm_dtype


def convert_flags(cfg):
    """The head counts `convert.py --pretrained` cannot read from tensor shapes (its
    defaults are the released ones)."""
    return ["--vit-heads", str(cfg.vit["heads"]),
            "--agent-input-heads", str(cfg.agent["input_resampler"]["num_heads"]),
            "--agent-output-heads", str(cfg.agent["output_resampler"]["num_heads"]),
            "--detok-heads", str(cfg.detok["heads"])]


# ----------------------------------------------------------------- key tables (meta device)
def _specs(module, dtype, prefix=""):
    """[(name, shape, dtype)] of module.state_dict() in its order."""
    return [(prefix + k, tuple(v.shape), dtype) for k, v in module.state_dict().items()]


def specs_vit(cfg):
    import torch
    import ref_vit
    with torch.device("meta"):
        m = ref_vit.VisionTransformerWithAttnPool(**cfg.vit)
    return _specs(m, "bfloat16")


def specs_agent(cfg):
    import torch
    import ref_vit
    with torch.device("meta"):
        m = torch.nn.Module()
        m.input_resampler = ref_vit.Resampler(**cfg.agent["input_resampler"])
        m.output_resampler = ref_vit.Resampler(**cfg.agent["output_resampler"])
    e = cfg.agent["input_resampler"]["embed_dim"]
    return _specs(m, "float32") + [("patch_pos_embed", (4, e), "float32")]


def llm_config_json(cfg):
    c = collections.OrderedDict([("_name_or_path", "Llama-2-13b-chat-hf"),
                                 ("architectures", ["LlamaForCausalLM"])])
    for k in ("bos_token_id", "eos_token_id"):
        c[k] = cfg.llm[k]
    c.update(hidden_act="silu", hidden_size=cfg.llm["hidden_size"],
             initializer_range=cfg.llm["initializer_range"],
             intermediate_size=cfg.llm["intermediate_size"],
             max_position_embeddings=cfg.llm["max_position_embeddings"], model_type="llama",
             num_attention_heads=cfg.llm["num_attention_heads"],
             num_hidden_layers=cfg.llm["num_hidden_layers"],
             num_key_value_heads=cfg.llm["num_key_value_heads"], pad_token_id=cfg.llm["pad_token_id"],
             pretraining_tp=cfg.llm["pretraining_tp"], rms_norm_eps=cfg.llm["rms_norm_eps"],
             rope_scaling=None, tie_word_embeddings=False, torch_dtype=cfg.llm_dtype,
             transformers_version="4.30.2", use_cache=True, vocab_size=cfg.llm["vocab_size"])
    return c


def specs_llm(cfg):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    c = LlamaConfig(**{k: v for k, v in llm_config_json(cfg).items() if not k.startswith("_")})
    with torch.device("meta"):
        m = LlamaForCausalLM(c)
    return _specs(m, cfg.llm_dtype)


def specs_unet(cfg, in_channels=4, prefix=""):
    import torch
    from diffusers import UNet2DConditionModel
    with torch.device("meta"):
        m = UNet2DConditionModel(**dict(cfg.unet, in_channels=in_channels))
    return _specs(m, "float32", prefix)


def specs_detok(cfg, stage):
    import torch
    import ref_detok
    with torch.device("meta"):
        m = ref_detok.ResamplerXLV2(**cfg.detok)
    res = _specs(m, "float32", "resampler.")
    if stage == 1:  # every attn1/attn2 to_k / to_v of the UNet (stage 1 trained them)
        return res + [s for s in specs_unet(cfg, 4, "unet.") if s[0].endswith(("to_k.weight", "to_v.weight"))]
    return res + specs_unet(cfg, 8, "unet.")


def specs_vae(cfg):
    import torch
    from diffusers import AutoencoderKL
    with torch.device("meta"):
        m = AutoencoderKL(**cfg.vae)
    return _specs(m, "float32")


# ----------------------------------------------------------------- values
def rounded_bf16(a):
    """float32 ndarray -> the nearest bfloat16 values, as float32."""
    return (sxckpt.f32_to_bf16(a).astype(np.uint32) << np.uint32(16)).view(np.float32)


def sincos_2d(dim, grid):
    """A Resampler's fixed 2-D sin-cos table [grid*grid, dim] (the layout of
    ref_vit.sincos_2d: column index in the first half), in float64 so the
    bf16-rounded table does not depend on the machine's float32 sin/cos."""
    def one(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        ang = np.outer(pos.reshape(-1), omega)
        return np.concatenate([np.sin(ang), np.cos(ang)], axis=1)
    xs, ys = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64))
    return np.concatenate([one(dim // 2, xs), one(dim // 2, ys)], axis=1)


def tables(cfg):
    """Fixed (computed, not random) tensors: name suffix -> fn(shape) -> float32 ndarray."""
    def pos(shape):  # a Resampler's 2-D sin-cos table
        return sincos_2d(shape[1], int(math.isqrt(shape[0]))).astype(np.float32)

    def inv_freq(shape):  # transformers 4.30.2 LlamaRotaryEmbedding, base 10000
        import torch
        dim = 2 * shape[0]
        return (1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))).numpy()
    return {"pos_embed": pos, "rotary_emb.inv_freq": inv_freq}


def init_of(name, shape):
    """(lo, hi) of the uniform init of a random tensor."""
    if len(shape) >= 2:
        fan = shape[-1] if name.endswith("latents") else sxckpt.numel(shape) // shape[0]
        a = math.sqrt(3.0 / fan)
        return -a, a
    if name.endswith("bias"):
        return -0.1, 0.1
    return 0.8, 1.2  # norm weights


def tensor_chunks(tag, name, shape, dtype, fixed):
    """The file bytes of one tensor, slice by slice."""
    n = sxckpt.numel(shape)
    table = None
    for suffix, fn in fixed.items():
        if name.endswith(suffix):
            table = np.ascontiguousarray(fn(shape), dtype=np.float32).reshape(-1)
            if suffix == "pos_embed":
                table = rounded_bf16(table)
    seed = zlib.crc32(f"{tag}/{name}".encode())
    lo, hi = init_of(name, shape)
    for s in range(0, n, sxckpt.SLICE):
        k = min(sxckpt.SLICE, n - s)
        a = table[s:s + k] if table is not None else rounded_bf16(sxrand.uniform(k, seed, lo, hi, start=s))
        if dtype == "bfloat16":
            yield sxckpt.f32_to_bf16(a).tobytes()
        elif dtype == "float16":
            yield a.astype("<f2").tobytes()
        else:
            yield np.ascontiguousarray(a, dtype="<f4").tobytes()


def expected_values(tag, name, shape, fixed, n=4096):
    """The first n values of a tensor as the generator makes them (float32)."""
    out = []
    for c in tensor_chunks(tag, name, shape, "float32", fixed):
        out.append(np.frombuffer(c, "<f4"))
        if sum(x.size for x in out) >= n:
            break
    return np.concatenate(out)[:n]


# ----------------------------------------------------------------- files
def nbytes(specs):
    return sum(sxckpt.numel(s) * sxckpt.ITEMSIZE[d] for _, s, d in specs)


def write_torch(path, specs, tag, fixed):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w = sxckpt.TorchZipWriter(path, specs)
    try:
        for name, shape, dt in specs:
            w.write_tensor(name, tensor_chunks(tag, name, shape, dt, fixed))
        w.close()
    except BaseException:
        w.abort()
        raise


def write_safetensors(path, specs, tag, fixed):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w = sxckpt.SafetensorsWriter(path, specs, {"format": "pt"})
    try:
        for name, shape, dt in w.order:
            w.write_tensor(name, tensor_chunks(tag, name, shape, dt, fixed))
        w.close()
    except BaseException:
        w.abort()
        raise


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def llm_files(cfg, specs):
    """[(file name, specs)] as save_pretrained shards them."""
    shards = sxckpt.hf_shards(specs, cfg.max_shard)
    if len(shards) == 1:
        return [("pytorch_model.bin", shards[0])]
    n = len(shards)
    return [(f"pytorch_model-{i + 1:05d}-of-{n:05d}.bin", s) for i, s in enumerate(shards)]


class Plan:
    """What one component writes: [(relative path, kind, specs, tag)]."""

    def __init__(self, cfg, variant):
        self.cfg, self.sub = cfg, VARIANTS[variant]

    def files(self, comp):
        cfg, sub = self.cfg, self.sub
        if comp == "vit":
            return [("QwenViT/qwen_vit_G.pt", "torch", specs_vit(cfg), "vit")]
        if comp == "agent":
            return [(f"{sub}/agent/pytorch_model.bin", "torch", specs_agent(cfg), f"agent:{sub}")]
        if comp == "llm":
            return [(f"{sub}/llm/{fn}", "torch", s, f"llm:{sub}") for fn, s in llm_files(cfg, specs_llm(cfg))]
        if comp == "detokenizer1":
            return [("seed_detokenizer/first_stage/pytorch_model.bin", "torch", specs_detok(cfg, 1), "detok1")]
        if comp == "detokenizer2":
            return [("seed_detokenizer/second_stage/pytorch_model.bin", "torch", specs_detok(cfg, 2), "detok2")]
        if comp == "unet":
            return [(f"{SDXL}/unet/diffusion_pytorch_model.safetensors", "safetensors", specs_unet(cfg), "unet")]
        if comp == "vae":
            return [(f"{SDXL}/vae/diffusion_pytorch_model.safetensors", "safetensors", specs_vae(cfg), "vae")]
        return []  # tokenizer, scheduler: small JSON / SentencePiece files

    def write(self, out, comp, log=print):
        cfg, sub = self.cfg, self.sub
        fixed = tables(cfg)
        t0 = time.time()
        files = self.files(comp)
        for rel, kind, specs, tag in files:
            p = os.path.join(out, rel)
            (write_torch if kind == "torch" else write_safetensors)(p, specs, tag, fixed)
            log(f"  {rel}: {len(specs)} tensors, {os.path.getsize(p):,d} bytes ({time.time() - t0:.0f} s)")
        if comp == "llm":
            d = os.path.join(out, sub, "llm")
            write_json(os.path.join(d, "config.json"), llm_config_json(cfg))
            write_json(os.path.join(d, "generation_config.json"), collections.OrderedDict([
                ("_from_model_config", True), ("bos_token_id", 1), ("eos_token_id", 2),
                ("pad_token_id", 0), ("temperature", 0.9), ("top_p", 0.6),
                ("transformers_version", "4.30.2")]))
            if len(files) > 1:
                wm = {name: os.path.basename(rel) for rel, _, specs, _ in files for name, _, _ in specs}
                total = sum(nbytes(s) for _, _, s, _ in files)
                with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
                    f.write(json.dumps({"metadata": {"total_size": total}, "weight_map": wm},
                                       indent=2, sort_keys=True) + "\n")
        elif comp == "unet":
            write_json(os.path.join(out, SDXL, "unet", "config.json"), cfg.unet_json)
        elif comp == "vae":
            write_json(os.path.join(out, SDXL, "vae", "config.json"), cfg.vae_json)
        elif comp == "scheduler":
            write_json(os.path.join(out, SDXL, "scheduler", "scheduler_config.json"), SDXL_SCHEDULER_JSON)
            log(f"  {SDXL}/scheduler/scheduler_config.json")
        elif comp == "tokenizer":
            from fixtures_tokenizer import build_folders
            tmp = os.path.join(out, "_tok")
            os.makedirs(tmp, exist_ok=True)
            build_folders(tmp)
            dst = os.path.join(out, TOKENIZER_DIR)
            if os.path.exists(dst):
                shutil.rmtree(dst)
            shutil.move(os.path.join(tmp, TOKENIZER_DIR), dst)
            shutil.rmtree(tmp)
            log(f"  {TOKENIZER_DIR}/")


def component_list(spec):
    out = []
    for c in spec.split(","):
        c = c.strip()
        if c in GROUPS:
            out += list(GROUPS[c])
        elif c in COMPONENTS:
            out.append(c)
        else:
            raise SystemExit(f"make_fullsize.py: unknown component '{c}' (one of {', '.join(COMPONENTS)}, "
                             f"{', '.join(GROUPS)})")
    return list(dict.fromkeys(out))


def list_plan(plan, comps):
    tot = 0
    for comp in comps:
        for rel, kind, specs, _ in plan.files(comp):
            params = sum(sxckpt.numel(s) for n, s, _ in specs if not n.endswith("inv_freq"))
            nb = nbytes(specs)
            tot += nb
            print(f"{rel:60s} {kind:11s} {len(specs):5d} tensors {params:14,d} params {nb / 1e9:8.3f} GB")
    print(f"{'total tensor data':60s} {'':11s} {'':13s} {'':21s} {tot / 1e9:8.3f} GB")


def check_params(plan, comps):
    """At --scale full the parameter counts must be the released ones."""
    if plan.cfg.scale != "full":
        return
    for comp in comps:
        files = plan.files(comp)
        if not files:
            continue
        n = sum(sxckpt.numel(s) for _, _, specs, _ in files for name, s, _ in specs
                if not name.endswith("inv_freq"))
        key = comp
        if comp == "llm":
            if plan.cfg.llm["num_hidden_layers"] != 40:
                continue
            key = "llm40"
        if n != FULL_PARAMS[key]:
            raise SystemExit(f"{comp}: {n} parameters, the released files hold {FULL_PARAMS[key]}")


# ----------------------------------------------------------------- --check
def check(out, plan, comps, log=print):
    """Opens the files with the official loading code and compares sampled values."""
    import torch
    fixed = tables(plan.cfg)
    cfg, sub = plan.cfg, plan.sub

    def same(tag, name, shape, t):
        want = expected_values(tag, name, shape, fixed)
        got = t.detach().float().reshape(-1)[:want.size].numpy()
        if not np.array_equal(got, want):
            raise SystemExit(f"{tag}/{name}: values differ from the generator's")

    def check_state(path, specs, tag, sd):
        names = [n for n, _, _ in specs]
        if list(sd) != names:
            raise SystemExit(f"{path}: keys {list(sd)[:3]}... differ from {names[:3]}...")
        for n, s, dt in specs:
            t = sd[n]
            if tuple(t.shape) != s or str(t.dtype) != "torch." + dt:
                raise SystemExit(f"{path}: '{n}' is {t.dtype} {list(t.shape)}, expected {dt} {list(s)}")
        for n, s, _ in (specs[0], specs[len(specs) // 2], specs[-1]):
            same(tag, n, s, sd[n])

    for comp in comps:
        t0 = time.time()
        if comp == "tokenizer":
            from transformers import LlamaTokenizer
            tok = LlamaTokenizer.from_pretrained(os.path.join(out, TOKENIZER_DIR))
            ids = tok.encode("<img><img_00000></img><box_start><loc-3>", add_special_tokens=False)
            if len(tok) != 32330 or ids != [32100, 32000, 32101, 32328, 32107]:
                raise SystemExit(f"tokenizer: {len(tok)} tokens, ids {ids}")
            log(f"  tokenizer: LlamaTokenizer.from_pretrained: {len(tok)} tokens")
            continue
        if comp == "scheduler":
            from diffusers import EulerDiscreteScheduler
            s = EulerDiscreteScheduler.from_pretrained(os.path.join(out, SDXL, "scheduler"))
            s.set_timesteps(50)
            log(f"  scheduler: EulerDiscreteScheduler.from_pretrained, t0 = {float(s.timesteps[0])}")
            continue
        if comp == "llm":
            from transformers import LlamaConfig, LlamaForCausalLM
            d = os.path.join(out, sub, "llm")
            c = LlamaConfig.from_pretrained(d)
            files = plan.files("llm")
            if cfg.scale == "tiny":
                m = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32)
                check_state(d, [s for _, _, sp, _ in files for s in sp], f"llm:{sub}", m.state_dict())
                log(f"  llm: LlamaForCausalLM.from_pretrained({d}): {c.num_hidden_layers} layers")
            else:  # 52 GB do not fit in RAM: the config, the index and the first and last shards
                for rel, _, specs, tag in (files[0], files[-1]):
                    sd = torch.load(os.path.join(out, rel), map_location="cpu")
                    check_state(rel, specs, tag, sd)
                    del sd
                log(f"  llm: LlamaConfig.from_pretrained ({c.num_hidden_layers} layers, vocab {c.vocab_size}); "
                    f"torch.load of {os.path.basename(files[0][0])} and {os.path.basename(files[-1][0])}")
            continue
        if comp in ("unet", "vae"):
            from diffusers import AutoencoderKL, UNet2DConditionModel
            cls = UNet2DConditionModel if comp == "unet" else AutoencoderKL
            m = cls.from_pretrained(os.path.join(out, SDXL, comp), torch_dtype=torch.float32)
            (rel, _, specs, tag), = plan.files(comp)
            check_state(rel, specs, tag, m.state_dict())
            log(f"  {comp}: {cls.__name__}.from_pretrained: {sum(p.numel() for p in m.parameters()):,d} "
                f"parameters ({time.time() - t0:.0f} s)")
            del m
            continue
        for rel, _, specs, tag in plan.files(comp):
            sd = torch.load(os.path.join(out, rel), map_location="cpu")
            check_state(rel, specs, tag, sd)
            if comp == "vit":  # strict key/shape match against the module (meta: no second copy)
                import ref_vit
                with torch.device("meta"):
                    m = ref_vit.VisionTransformerWithAttnPool(**cfg.vit)
                m.load_state_dict(sd, strict=True)
            log(f"  {comp}: torch.load({rel}): {len(sd)} tensors, "
                f"{sum(v.numel() for v in sd.values()):,d} values ({time.time() - t0:.0f} s)")
            del sd


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="output folder (the official `pretrained/` layout)")
    p.add_argument("--variant", default="seed-x-i", choices=sorted(VARIANTS))
    p.add_argument("--scale", default="full", choices=("full", "tiny"))
    p.add_argument("--components", default="all")
    p.add_argument("--llm-layers", type=int, default=None)
    p.add_argument("--llm-dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--list", action="store_true", help="print the files and sizes, write nothing")
    p.add_argument("--check", action="store_true", help="open what exists with the official libraries")
    a = p.parse_args(argv)
    comps = component_list(a.components)
    plan = Plan(Config(a.scale, a.llm_layers, a.llm_dtype), a.variant)
    check_params(plan, comps)
    if a.list:
        list_plan(plan, comps)
        return 0
    if a.check:
        check(a.out, plan, comps)
        return 0
    os.makedirs(a.out, exist_ok=True)
    for comp in comps:
        print(f"== {comp}", flush=True)
        plan.write(a.out, comp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
