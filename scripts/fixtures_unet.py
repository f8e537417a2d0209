"""UNet / sampler / RNG fixtures -> tests/fixtures/unet/.

tiny_unet.gguf   tiny SDXL-structured UNet2DConditionModel (diffusers 0.25.0, random init seed 0,
                 save_pretrained -> safetensors) converted by scripts/convert_unet.py with the SDXL
                 Euler scheduler config; matrices stored f16 (the model's weights are f16-exact, so
                 the F32 reference is exact for them) to keep the file small.
tiny_unet8_overlay.gguf  convert_unet.py --overlay of the same folder + a SEED-X-style de-tokenizer
                 pytorch_model.bin whose `unet.*` keys hold an 8-input-channel conv_in and new
                 attn1/attn2 to_k/to_v weights (and `resampler.*` keys): loaded over tiny_unet.gguf
                 it is an 8-channel UNet. The full (non-overlay) conversion is checked here to
                 equal base + overlay, then discarded.
io.gguf          forward inputs/outputs (4 and 8 channels, t = 999, 500, 1), a 4-step Euler + CFG
                 loop (2-way, SDXL pipeline math) and a 4-step 3-way edit loop (SEED-X edit pipeline
                 math), latents after every step.
rng.gguf         torch.randn on CPU generators (seeds 0, 42, 2**31+5) for several shapes.
real.gguf        real-shape single layers with sxrand weights: one BasicTransformerBlock (1280 ch,
                 32x32 tokens, 64x2048 context) and one ResnetBlock2D (320 ch, 128x128): subsets of
                 their outputs.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from sxgguf import F64, write_gguf  # noqa: E402
import sxrand  # noqa: E402
import ref_unet  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "unet")

TINY = dict(sample_size=16, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(32, 64, 64), layers_per_block=2, transformer_layers_per_block=(1, 1, 2),
            attention_head_dim=(2, 4, 8), cross_attention_dim=64, use_linear_projection=True,
            addition_embed_type="text_time", addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=32 + 6 * 8, norm_num_groups=32)
T_CTX, POOLED = 9, 32
TIME_IDS = [128.0, 128.0, 0.0, 0.0, 128.0, 128.0]


def f16_exact(m):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, p in sorted(m.named_parameters()):
            if p.ndim > 1:
                p.copy_(p.half().float())
            else:  # make norms/biases non-trivial
                p.add_(torch.randn(p.shape, generator=g) * 0.1)


def convert(args):
    r = subprocess.run([sys.executable, os.path.join(HERE, "convert.py"), "unet"] + args,
                       cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"convert failed: {r.stdout}\n{r.stderr}")


def rnd(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def build_models(tmp):
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel
    torch.manual_seed(0)
    m4 = UNet2DConditionModel(**TINY)
    f16_exact(m4)
    m4.eval()
    d4 = os.path.join(tmp, "unet")
    m4.save_pretrained(d4, safe_serialization=True)
    ds = os.path.join(tmp, "scheduler")
    EulerDiscreteScheduler(**ref_unet.SDXL_SCHEDULER).save_pretrained(ds)
    convert([d4, os.path.join(OUT, "tiny_unet.gguf"), "--dtype", "f16", "--scheduler", ds])

    # SEED-X-style de-tokenizer checkpoint: an 8-channel conv_in (stage 2) and new
    # attn1/attn2 to_k/to_v weights (stage 1) under unet.*, plus resampler.* tensors.
    # Committed as an overlay (only those tensors); the full conversion is checked to equal
    # base + overlay here and then discarded.
    torch.manual_seed(2)
    m8 = UNet2DConditionModel(**dict(TINY, in_channels=8))
    sd8 = m4.state_dict()
    over = {k: v for k, v in m8.state_dict().items()
            if k.startswith("conv_in.") or k.endswith(("to_k.weight", "to_v.weight"))}
    for k in over:
        over[k] = over[k].half().float() if over[k].ndim > 1 else over[k] + 0.1 * torch.randn(over[k].shape)
    sd8.update(over)
    m8.load_state_dict(sd8)
    m8.eval()
    ck = {"unet." + k: v.clone() for k, v in over.items()}
    ck["resampler.latents"] = torch.randn(1, 4, 8)
    ck["resampler.proj_in.weight"] = torch.randn(8, 16)
    pb = os.path.join(tmp, "pytorch_model.bin")
    torch.save(ck, pb)
    res_out = os.path.join(tmp, "resampler.gguf")
    full8 = os.path.join(tmp, "full8.gguf")
    convert([d4, full8, "--dtype", "f16", "--scheduler", ds, "--detokenizer", pb, "--resampler-out", res_out])
    convert([d4, os.path.join(OUT, "tiny_unet8_overlay.gguf"), "--dtype", "f16", "--scheduler", ds,
             "--detokenizer", pb, "--overlay"])
    if not os.path.exists(res_out):
        raise SystemExit("--resampler-out wrote nothing")
    meta_f, full = ref_unet.read_gguf(full8)
    meta_o, ov = ref_unet.read_gguf(os.path.join(OUT, "tiny_unet8_overlay.gguf"))
    _, base = ref_unet.read_gguf(os.path.join(OUT, "tiny_unet.gguf"))
    if set(ov) != set(over) or meta_f["seedx.unet.in_channels"] != 8 or meta_o["seedx.unet.in_channels"] != 8:
        raise SystemExit("overlay conversion: unexpected tensors/metadata")
    for k, v in full.items():
        if not np.array_equal(v, ov[k] if k in ov else base[k]) or not np.array_equal(v, sd8[k].numpy()):
            raise SystemExit(f"full de-tokenizer conversion differs from base + overlay at {k}")
    return m4, m8


def cond(rng, T=T_CTX):
    return (rnd(rng, 1, T, TINY["cross_attention_dim"]), rnd(rng, 1, POOLED),
            np.asarray([TIME_IDS], np.float32))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    rng = np.random.default_rng(7)
    T, meta = [], {"seedx.fixture": "unet", "seedx.fixture.torch": torch.__version__}

    def add(name, a):
        T.append((name, np.ascontiguousarray(np.asarray(a, np.float32)), "f32"))

    tmp = tempfile.mkdtemp(prefix="sx_unet_fix_")
    try:
        m4, m8 = build_models(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- single forwards
    c = cond(rng)
    add("fwd.ctx", c[0][0]); add("fwd.pooled", c[1][0]); add("fwd.time_ids", c[2][0])
    meta["fwd.timesteps"] = [999.0, 500.0, 1.0]
    for name, m, cin in (("fwd4", m4, 4), ("fwd8", m8, 8)):
        x = rnd(rng, 1, cin, 16, 16)
        add(name + ".x", x[0])
        for t in (999, 500, 1):
            eps, _ = ref_unet.run_unet(m, x, float(t), c[0], c[1], c[2], hooks=False)
            add(f"{name}.t{t}.eps", eps[0])
    # a non-square latent (16x24) at t=500
    x = rnd(rng, 1, 4, 16, 24)
    add("fwd4r.x", x[0])
    add("fwd4r.eps", ref_unet.run_unet(m4, x, 500.0, c[0], c[1], c[2], hooks=False)[0][0])

    # a latent that is not a multiple of 4 (144x176 px -> 18x22): diffusers resizes the
    # up-samplers' output to the skip connections' size (forward_upsample_size)
    x = rnd(rng, 1, 4, 18, 22)
    add("fwd4o.x", x[0])
    add("fwd4o.eps", ref_unet.run_unet(m4, x, 500.0, c[0], c[1], c[2], hooks=False)[0][0])

    # ---- 4-step Euler + CFG (2-way)
    n_steps, gs, igs = 4, 7.5, 1.5
    sch = ref_unet.euler(n_steps)
    meta["loop.n_steps"] = n_steps
    meta["loop.gs"] = gs
    meta["loop.igs"] = igs
    add("sched.timesteps", sch.timesteps.numpy())
    add("sched.sigmas", sch.sigmas.numpy())
    add("sched.init_noise_sigma", np.asarray([float(sch.init_noise_sigma)]))
    s50 = ref_unet.euler(50)
    add("sched50.timesteps", s50.timesteps.numpy())
    add("sched50.sigmas", s50.sigmas.numpy())
    add("sched50.init_noise_sigma", np.asarray([float(s50.init_noise_sigma)]))
    cp, cn = cond(rng), cond(rng)
    noise = rnd(rng, 1, 4, 16, 16)
    add("cfg.noise", noise[0])
    for tag, cc in (("cond", cp), ("uncond", cn)):
        add(f"cfg.{tag}.ctx", cc[0][0]); add(f"cfg.{tag}.pooled", cc[1][0])
    add("cfg.latents", ref_unet.cfg_loop(m4, ref_unet.euler(n_steps), noise, cp, cn, gs)[:, 0])
    # ---- 3-way edit guidance (8-channel UNet), with and without a condition image latent
    img = rnd(rng, 1, 4, 16, 16)
    add("edit.image_latent", img[0])
    add("edit.latents", ref_unet.edit_loop(m8, ref_unet.euler(n_steps), noise, cp, cn, img, gs, igs)[:, 0])
    add("edit_noimg.latents", ref_unet.edit_loop(m8, ref_unet.euler(n_steps), noise, cp, cn, None, gs, igs)[:, 0])
    write_gguf(os.path.join(OUT, "io.gguf"), meta, T)

    # ---- torch CPU randn
    T, meta = [], {"seedx.fixture": "unet.rng", "seedx.fixture.torch": torch.__version__}
    seeds = [0, 42, 2**31 + 5]
    shapes = {"big": (1, 4, 128, 128), "small": (2, 4, 16, 16), "n5": (5,), "n17": (17,), "n40": (2, 4, 5)}
    meta["rng.seeds"] = seeds
    meta["rng.shapes"] = list(shapes)
    for s in seeds:
        for sn, shp in shapes.items():
            g = torch.Generator().manual_seed(s)
            a = torch.randn(*shp, generator=g).numpy().reshape(-1)
            if sn == "big":
                add(f"rng.{s}.{sn}.head", a[:4096])
                add(f"rng.{s}.{sn}.tail", a[-64:])
                meta[f"rng.{s}.{sn}.sum"] = F64(a.astype(np.float64).sum())
                # exact checksums of the float32 bit patterns of all 65536 values
                bits = a.view(np.uint32).astype(np.int64)
                meta[f"rng.{s}.{sn}.bitsum"] = int(bits.sum())
                meta[f"rng.{s}.{sn}.bitwsum"] = int((bits * (np.arange(a.size) % 1021 + 1)).sum())
            else:
                add(f"rng.{s}.{sn}", a)
    write_gguf(os.path.join(OUT, "rng.gguf"), meta, T)

    real_fixtures()


# ---- real-shape layers with sxrand weights -------------------------------------------------
def sxrand_fill(mod, base):
    """Parameter i of sorted(named_parameters) gets sxrand stream base+i: norm weights in
    [0.8,1.2], other 1-D tensors in [-0.1,0.1], matrices/kernels in +-1/sqrt(fan_in)."""
    names = []
    with torch.no_grad():
        for i, (n, p) in enumerate(sorted(mod.named_parameters())):
            if p.ndim == 1:
                lo, hi = (0.8, 1.2) if ("norm" in n and n.endswith("weight")) else (-0.1, 0.1)
            else:
                a = 1.0 / np.sqrt(p.numel() // p.shape[0])
                lo, hi = -a, a
            p.copy_(torch.from_numpy(sxrand.uniform(p.numel(), base + i, lo, hi).reshape(p.shape)))
            names.append(n)
    return names


def real_fixtures():
    from diffusers.models.attention import BasicTransformerBlock
    from diffusers.models.resnet import ResnetBlock2D
    T, meta = [], {"seedx.fixture": "unet.real", "seedx.fixture.torch": torch.__version__}

    def add(name, a):
        T.append((name, np.ascontiguousarray(np.asarray(a, np.float32)), "f32"))

    torch.set_num_threads(2)
    # BasicTransformerBlock as SDXL's Transformer2DModel builds it at 1280 channels
    blk = BasicTransformerBlock(1280, 20, 64, cross_attention_dim=2048, activation_fn="geglu",
                                attention_bias=False, norm_elementwise_affine=True, norm_type="layer_norm",
                                norm_eps=1e-5).eval()
    meta["real.tblock.params"] = sxrand_fill(blk, 100)
    x = sxrand.uniform(1024 * 1280, 7, -1, 1).reshape(1, 1024, 1280)
    ctx = sxrand.uniform(64 * 2048, 8, -1, 1).reshape(1, 64, 2048)
    with torch.no_grad():
        y = blk(torch.from_numpy(x), encoder_hidden_states=torch.from_numpy(ctx)).numpy()[0]
    rows = list(range(0, 1024, 16)) + [1023]
    meta["real.tblock.rows"] = rows
    add("real.tblock.y", y[rows])

    res = ResnetBlock2D(in_channels=320, out_channels=320, temb_channels=1280, eps=1e-5, groups=32).eval()
    meta["real.resnet.params"] = sxrand_fill(res, 200)
    x = sxrand.uniform(320 * 128 * 128, 9, -1, 1).reshape(1, 320, 128, 128)
    temb = sxrand.uniform(1280, 10, -1, 1).reshape(1, 1280)
    with torch.no_grad():
        y = res(torch.from_numpy(x), torch.from_numpy(temb)).numpy()[0]
    idx = list(range(0, 128, 9)) + [127]
    meta["real.resnet.idx"] = idx
    add("real.resnet.y", y[:, idx][:, :, idx])
    write_gguf(os.path.join(OUT, "real.gguf"), meta, T)


if __name__ == "__main__":
    main()
