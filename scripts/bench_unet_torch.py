"""PyTorch side of tests/bench_unet.c: the same SDXL UNet blocks at 1024x1024 shapes
(BasicTransformerBlock 1280 ch / 1024 tokens and 640 ch / 4096 tokens, ResnetBlock2D
C->C at 320 @128^2, 640 @64^2, 1280 @32^2, Transformer2DModel wrapper with 0 blocks),
timed in F32 and with bf16 autocast, at 1 and all threads, and extrapolated to one
UNet evaluation with the same module list / FLOP scaling as the C bench.

    .venv/bin/python scripts/bench_unet_torch.py
    .venv/bin/python scripts/bench_unet_torch.py --write-gguf /tmp/sdxl_unet_f16.gguf
        writes an SDXL-base-shaped UNet (diffusers 0.25 key names, seedx.unet.* metadata,
        random F16 weights, ~5.1 GB) for `SEEDX_UNET_GGUF=... build/tests/bench_unet`."""
import argparse
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SDXL = dict(sample_size=128, in_channels=4, out_channels=4,
            down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            block_out_channels=[320, 640, 1280], layers_per_block=2, transformer_layers_per_block=[1, 2, 10],
            attention_head_dim=[5, 10, 20], cross_attention_dim=2048, use_linear_projection=True,
            addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816, norm_num_groups=32, norm_eps=1e-5,
            flip_sin_to_cos=True, freq_shift=0)


def res_macs(cin, cout, hw):
    return hw * (9 * cin * cout + 9 * cout * cout + (cin * cout if cin != cout else 0))


def extrapolate(T):
    hw = [128 * 128, 64 * 64, 32 * 32]
    cc = [320, 640, 1280]
    rate = [T["r"][l] / res_macs(cc[l], cc[l], hw[l]) for l in range(3)]
    R = [(320, 320, 0), (320, 320, 0), (320, 640, 1), (640, 640, 1), (640, 1280, 2), (1280, 1280, 2),
         (1280, 1280, 2), (1280, 1280, 2), (2560, 1280, 2), (2560, 1280, 2), (1920, 1280, 2), (1920, 640, 1),
         (1280, 640, 1), (960, 640, 1), (960, 320, 0), (640, 320, 0), (640, 320, 0)]
    tres = sum(rate[l] * res_macs(a, b, hw[l]) for a, b, l in R)
    tconv = (rate[0] * (hw[0] * 9 * 4 * 320 + hw[0] * 9 * 320 * 4) +
             rate[1] * (hw[1] * 9 * 320 * 320 + hw[1] * 9 * 1280 * 1280) +
             rate[2] * (hw[2] * 9 * 640 * 640) + rate[0] * (hw[0] * 9 * 640 * 640))
    ttf = 60 * T["tb1280"] + 10 * T["tb640"] + 6 * T["w1280"] + 5 * T["w640"]
    return ttf, tres, tconv, ttf + tres + tconv


def timed(fn, autocast):
    with torch.no_grad():
        if autocast:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                t0 = time.time()
                fn()
                return time.time() - t0
        t0 = time.time()
        fn()
        return time.time() - t0


def run_blocks(autocast):
    from diffusers.models.attention import BasicTransformerBlock
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.transformer_2d import Transformer2DModel
    torch.manual_seed(0)
    ctx = torch.randn(1, 64, 2048)
    T = {}
    for D, H, tok, key in ((1280, 20, 1024, "tb1280"), (640, 10, 4096, "tb640")):
        b = BasicTransformerBlock(D, H, 64, cross_attention_dim=2048, activation_fn="geglu",
                                  attention_bias=False, norm_type="layer_norm").eval()
        x = torch.randn(1, tok, D)
        T[key] = timed(lambda: b(x, encoder_hidden_states=ctx), autocast)
    emb = torch.randn(1, 1280)
    T["r"] = []
    for c, s in ((320, 128), (640, 64), (1280, 32)):
        r = ResnetBlock2D(in_channels=c, out_channels=c, temb_channels=1280, eps=1e-5, groups=32).eval()
        x = torch.randn(1, c, s, s)
        T["r"].append(timed(lambda: r(x, emb), autocast))
    for c, s, key in ((640, 64, "w640"), (1280, 32, "w1280")):
        w = Transformer2DModel(num_attention_heads=c // 64, attention_head_dim=64, in_channels=c, num_layers=0,
                               cross_attention_dim=2048, use_linear_projection=True, norm_num_groups=32).eval()
        x = torch.randn(1, c, s, s)
        T[key] = timed(lambda: w(x, encoder_hidden_states=ctx), autocast)
    return T


def write_gguf_sdxl(path):
    from diffusers import UNet2DConditionModel
    from convert_unet import unet_metadata
    from sxgguf import write_gguf
    with torch.device("meta"):
        m = UNet2DConditionModel(**SDXL)
    rng = np.random.default_rng(0)
    tensors = []
    for k, p in m.state_dict().items():
        shape = tuple(p.shape)
        n = int(np.prod(shape))
        if len(shape) <= 1:
            is_norm_w = "norm" in k.rsplit(".", 2)[-2] and k.endswith(".weight")
            a = rng.standard_normal(n, dtype=np.float32) * (0.1 if is_norm_w else 0.02) + (1.0 if is_norm_w else 0.0)
            tensors.append((k, a.reshape(shape).astype(np.float32), "f32"))
        else:
            fan = n // shape[0]
            a = (rng.standard_normal(n, dtype=np.float32) * (1.0 / np.sqrt(fan))).astype(np.float16)
            tensors.append((k, a.reshape(shape), "f16"))
    meta = unet_metadata(dict(SDXL, _class_name="UNet2DConditionModel"))
    write_gguf(path, meta, tensors)
    print(f"wrote {path}: {len(tensors)} tensors")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write-gguf")
    ap.add_argument("--threads", type=int, nargs="*", default=None)
    a = ap.parse_args()
    if a.write_gguf:
        write_gguf_sdxl(a.write_gguf)
        return
    nt = os.cpu_count() or 1
    print("PyTorch %s: SDXL UNet blocks at 1024x1024, extrapolated to one evaluation" % torch.__version__)
    for autocast in (False, True):
        for th in (a.threads or sorted({1, nt})):
            torch.set_num_threads(th)
            T = run_blocks(autocast)
            ttf, tres, tconv, tot = extrapolate(T)
            print("  %-13s %d thread%s" % ("bf16 autocast" if autocast else "F32", th, "s" if th > 1 else ""))
            print("    blocks: tblock1280@1024tok %.3fs  tblock640@4096tok %.3fs  resnet320@128^2 %.3fs  "
                  "resnet640@64^2 %.3fs  resnet1280@32^2 %.3fs  wrapper640 %.3fs  wrapper1280 %.3fs"
                  % (T["tb1280"], T["tb640"], T["r"][0], T["r"][1], T["r"][2], T["w640"], T["w1280"]))
            print("    UNet eval: transformers %.1fs + resnets %.1fs + convs %.1fs = %.1fs => %.1fs per CFG step"
                  % (ttf, tres, tconv, tot, 2 * tot))


if __name__ == "__main__":
    main()
