"""VAE fixtures -> tests/fixtures/vae/.

tiny_vae.f32.gguf
    A tiny AutoencoderKL (block_out_channels (32, 64), layers_per_block 2,
    latent 4, norm groups 32, sample_size 64, scaling_factor 0.13025) with
    random weights (torch seed 0; norm/attention affine params perturbed so
    they matter), saved by diffusers 0.25.0 as safetensors and converted by
    scripts/convert_vae.py. (F16/BF16 drift: the test rounds the matrices in
    memory exactly as --dtype f16/bf16 would store them.)
tiny_io.gguf
    inputs and diffusers outputs for the tiny model:
      dec.latents [4,24,20] -> dec.image [3,48,40], dec.rgb8 [48,40,3] (u8 as f32)
      enc.image [3,48,40] -> enc.mean / enc.logvar [4,24,20]
      tdec.latents [4,40,56] -> tdec.image [3,80,112] (use_tiling: 2x3 tiles)
      tenc.image [3,96,128] -> tenc.mean / tenc.logvar [4,48,64] (2x3 tiles)
      tdec32.image, tenc32.mean / .logvar: the same with 32 px tiles
      rgb.x [3,8,40] (incl. exact half levels, out-of-range) -> rgb.u8 [8,40,3]
real_shape.gguf
    sxrand real-shape layers (weights regenerated in C from the seeds):
      attn: mid-block attention C=512 on 128x128 (16384 tokens), attn64: the
            same layer on 64x64; output columns t = k*stride (all 512 channels)
      res256: ResnetBlock2D 128->128 at 256x256, res1024: 128->128 at 1024x1024,
      res_sc: 256->128 (conv_shortcut) at 64x64; outputs at pixels k*stride.
Also checked here (not committed): the legacy attention names (query/key/value/
proj_attn, .bin) and the fp16 variant convert to the same tensors.
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_vae  # noqa: E402
import ref_vae  # noqa: E402
import sxrand  # noqa: E402
from sxgguf import write_gguf  # noqa: E402

ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "fixtures", "vae")

TINY = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
            up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[32, 64], layers_per_block=2,
            latent_channels=4, norm_num_groups=32, sample_size=64, scaling_factor=0.13025,
            force_upcast=True)


def make_tiny(folder):
    from diffusers import AutoencoderKL
    torch.manual_seed(0)
    vae = AutoencoderKL(**TINY).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    vae.save_pretrained(folder, safe_serialization=True)
    return vae


def check_legacy_and_fp16(vae, folder, tmp):
    """Legacy attention names in a .bin and the fp16 safetensors variant must
    convert to the same tensors (fp16-rounded for the variant)."""
    meta, ref = convert_vae.build(folder, "f32")
    ref = {k: v for k, v, _ in ref}
    leg = os.path.join(tmp, "legacy")
    os.makedirs(leg)
    shutil.copy(os.path.join(folder, "config.json"), leg)
    back = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    sd = {}
    for k, v in vae.state_dict().items():
        for new, old in back.items():
            if f".attentions.0.{new}." in k:
                k = k.replace(f".attentions.0.{new}.", f".attentions.0.{old}.")
                if v.ndim == 2:
                    v = v[:, :, None, None]  # the oldest checkpoints store 1x1 convs
        sd[k] = v.clone()
    torch.save(sd, os.path.join(leg, "diffusion_pytorch_model.bin"))
    _, got = convert_vae.build(leg, "f32")
    got = {k: v for k, v, _ in got}
    assert sorted(got) == sorted(ref), set(got) ^ set(ref)
    for k in ref:
        assert got[k].shape == ref[k].shape and np.array_equal(got[k], ref[k]), k
    v16 = os.path.join(tmp, "fp16")
    vae.half().save_pretrained(v16, safe_serialization=True, variant="fp16")
    vae.float()
    _, got = convert_vae.build(v16, "f32", variant="fp16")
    got = {k: v for k, v, _ in got}
    for k in ref:
        assert np.array_equal(got[k], ref[k].astype(np.float16).astype(np.float32)), k
    print("legacy names and fp16 variant: ok")


def check_half(folder, f32):
    """--dtype f16/bf16 store every matrix / conv kernel rounded to nearest even
    (what tests/test_vae.c reproduces in memory) and keep 1-d tensors F32."""
    ref = {k: v for k, v, _ in f32}
    for dt in ("f16", "bf16"):
        _, tensors = convert_vae.build(folder, dt)
        n = 0
        for k, v, t in tensors:
            assert np.array_equal(v, ref[k]) and t == (dt if v.ndim >= 2 else "f32"), k
            n += v.ndim >= 2
        assert n == 46, n
    print("--dtype f16/bf16: 46 matrices rounded, vectors kept f32: ok")


def tiny_io(vae):
    rng = np.random.default_rng(7)
    T, meta = [], {"seedx.fixture": "vae.tiny_io", "seedx.fixture.torch": torch.__version__}

    def add(n, a):
        T.append((n, np.ascontiguousarray(a, dtype=np.float32), "f32"))

    lat = rng.standard_normal((4, 24, 20)).astype(np.float32)
    img = ref_vae.decode(vae, lat)
    add("dec.latents", lat)
    add("dec.image", img)
    add("dec.rgb8", ref_vae.postprocess(img).astype(np.float32))
    print("decode: image range", float(img.min()), float(img.max()))

    x = np.tanh(rng.standard_normal((3, 48, 40))).astype(np.float32)
    mean, logvar = ref_vae.encode(vae, x)
    add("enc.image", x)
    add("enc.mean", mean)
    add("enc.logvar", logvar)

    lat = rng.standard_normal((4, 40, 56)).astype(np.float32)
    add("tdec.latents", lat)
    add("tdec.image", ref_vae.decode(vae, lat, tiling=True))
    assert not np.allclose(ref_vae.decode(vae, lat, tiling=True), ref_vae.decode(vae, lat), atol=1e-3)

    # the same latents with 32 px tiles (16 latents; 4x5 tiles): a tile size other
    # than the config's, as the pipeline would pick 512 for SDXL at 1024x1024
    add("tdec32.image", ref_vae.decode(vae, lat, tiling=True, tile=32))

    x = np.tanh(rng.standard_normal((3, 96, 128))).astype(np.float32)
    mean, logvar = ref_vae.encode(vae, x, tiling=True)
    add("tenc.image", x)
    add("tenc.mean", mean)
    add("tenc.logvar", logvar)
    mean, logvar = ref_vae.encode(vae, x, tiling=True, tile=32)
    add("tenc32.mean", mean)
    add("tenc32.logvar", logvar)

    # postprocess edge cases: exact half levels and out-of-range values
    k = np.arange(3 * 8 * 40, dtype=np.float32) % 256
    r = ((k + 0.5) / 255.0).astype(np.float32)
    x = ((r - 0.5) * 2).astype(np.float32).reshape(3, 8, 40)
    x[0, 0, :8] = [-3, -1.0001, -1, 1, 1.0001, 5, 0, -0.0]
    add("rgb.x", x)
    add("rgb.u8", ref_vae.postprocess(x).astype(np.float32))
    return meta, T


def real_shape():
    torch.manual_seed(0)
    T = []
    meta = {"seedx.fixture": "vae.real_shape"}

    def add(n, a):
        T.append((n, np.ascontiguousarray(a, dtype=np.float32), "f32"))

    # mid-block attention, C=512: 128x128 (SDXL's 16384 tokens) and 64x64
    for name, H, stride, seed in [("attn", 128, 257, 100), ("attn64", 64, 131, 150)]:
        C, W = 512, H
        att = ref_vae.attn_sxrand(C, seed)
        x = sxrand.uniform(C * H * W, seed + 50, -1.0, 1.0).reshape(1, C, H, W)
        with torch.no_grad():
            y = att(torch.from_numpy(x))[0].numpy().reshape(C, H * W)
        idx = np.arange(0, H * W, stride)
        meta[f"{name}.dims"] = [C, H, W, seed, seed + 50, stride]
        add(f"{name}.y", y[:, idx])
        print(f"{name}: output range", float(y.min()), float(y.max()))

    for name, cin, cout, H, stride, seed in [("res256", 128, 128, 256, 257, 200),
                                             ("res1024", 128, 128, 1024, 4099, 300),
                                             ("res_sc", 256, 128, 64, 17, 400)]:
        r = ref_vae.resnet_sxrand(cin, cout, seed)
        x = sxrand.uniform(cin * H * H, seed + 50, -2.0, 2.0).reshape(1, cin, H, H)
        with torch.no_grad():
            y = r(torch.from_numpy(x), None)[0].numpy().reshape(cout, H * H)
        idx = np.arange(0, H * H, stride)
        meta[f"{name}.dims"] = [cin, cout, H, H, seed, seed + 50, stride]
        add(f"{name}.y", y[:, idx])
        print(f"{name}: {len(idx)} pixels, output range", float(y.min()), float(y.max()))
    return meta, T


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "vae")
        vae = make_tiny(folder)
        meta, tensors = convert_vae.build(folder, "f32")
        write_gguf(os.path.join(OUT, "tiny_vae.f32.gguf"), meta, tensors)
        check_half(folder, tensors)
        check_legacy_and_fp16(vae, folder, tmp)
        vae = ref_vae.load_vae(folder)  # the saved copy, as a user would load it
        meta, T = tiny_io(vae)
        write_gguf(os.path.join(OUT, "tiny_io.gguf"), meta, T)
    meta, T = real_shape()
    write_gguf(os.path.join(OUT, "real_shape.gguf"), meta, T)
    for f in sorted(os.listdir(OUT)):
        print(f"  {f}: {os.path.getsize(os.path.join(OUT, f))} bytes")


if __name__ == "__main__":
    main()
