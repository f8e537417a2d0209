"""PyTorch side of tests/bench_vae.c: the same per-layer timings of the SDXL
VAE decoder (diffusers 0.25.0 modules, random weights), the same 1024x1024
extrapolation, in float32 and under bf16 autocast.

    .venv/bin/python scripts/bench_vae_torch.py [--threads 2] [--full] [--write-gguf OUT.gguf]

--full        also runs a real decode (--size px, default 1024; --tile PX for
              diffusers' tiled decode) of an SDXL-config AutoencoderKL (random
              init) and reports its time and peak RSS (this process).
--write-gguf  writes that SDXL-shaped random VAE through scripts/convert_vae.py
              (for SEEDX_VAE_GGUF=... build/tests/bench_vae).
"""
import argparse
import os
import resource
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SDXL_VAE = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512],
                layers_per_block=2, latent_channels=4, norm_num_groups=32, sample_size=1024,
                scaling_factor=0.13025, force_upcast=True)


def timeit(fn, reps=1):
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def bench_layers(dtype_ctx, S=64):
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.attention_processor import Attention

    def resnet(cin, cout):
        r = ResnetBlock2D(in_channels=cin, out_channels=cout, temb_channels=None, eps=1e-6, groups=32).eval()
        x = torch.randn(1, cin, S, S)
        with torch.no_grad(), dtype_ctx():
            return timeit(lambda: r(x, None)) / (S * S)

    def conv(cin, cout):
        c = torch.nn.Conv2d(cin, cout, 3, padding=1).eval()
        x = torch.randn(1, cin, S, S)
        with torch.no_grad(), dtype_ctx():
            return timeit(lambda: c(x)) / (S * S)

    a = Attention(512, heads=1, dim_head=512, eps=1e-6, norm_num_groups=32, residual_connection=True,
                  bias=True, upcast_softmax=True, _from_deprecated_attn_block=True).eval()
    x = torch.randn(1, 512, 128, 128)
    with torch.no_grad(), dtype_ctx():
        t0 = time.perf_counter()
        a(x)
        att = time.perf_counter() - t0
    r512, r512_256, r256, r256_128, r128 = (resnet(512, 512), resnet(512, 256), resnet(256, 256),
                                            resnet(256, 128), resnet(128, 128))
    c512, c256, cout3, cin4 = conv(512, 512), conv(256, 256), conv(128, 3), conv(4, 512)
    px = {128: 128.0 ** 2, 256: 256.0 ** 2, 512: 512.0 ** 2, 1024: 1024.0 ** 2}
    parts = [("conv_in 4->512 @128", cin4 * px[128]), ("mid resnets 2x512 @128", 2 * r512 * px[128]),
             ("mid attention @128", att), ("up0 3 resnets 512 @128", 3 * r512 * px[128]),
             ("up0 upsample conv 512 @256", c512 * px[256]), ("up1 3 resnets 512 @256", 3 * r512 * px[256]),
             ("up1 upsample conv 512 @512", c512 * px[512]),
             ("up2 resnet 512->256 + 2x256 @512", (r512_256 + 2 * r256) * px[512]),
             ("up2 upsample conv 256 @1024", c256 * px[1024]),
             ("up3 resnet 256->128 + 2x128 @1024", (r256_128 + 2 * r128) * px[1024]),
             ("conv_out 128->3 @1024", cout3 * px[1024])]
    print(f"per-layer (measured at {S}x{S}, per megapixel): resnet 512: {r512 * 1e6:.2f}s, "
          f"512->256: {r512_256 * 1e6:.2f}s, 256: {r256 * 1e6:.2f}s, 256->128: {r256_128 * 1e6:.2f}s, "
          f"128: {r128 * 1e6:.2f}s; conv3x3 512: {c512 * 1e6:.2f}s, 256: {c256 * 1e6:.2f}s")
    print(f"mid-block attention 512ch x 16384 tokens: {att:.2f}s (measured at full size)")
    for n, t in parts:
        print(f"  {n:36s} {t:7.2f}s")
    print(f"extrapolated 1024x1024 decode: {sum(t for _, t in parts):.1f}s")


def sdxl_vae():
    from diffusers import AutoencoderKL
    torch.manual_seed(0)
    return AutoencoderKL(**SDXL_VAE).eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--write-gguf", default=None)
    ap.add_argument("--skip-layers", action="store_true")
    ap.add_argument("--size", type=int, default=1024, help="--full image size in pixels")
    ap.add_argument("--tile", type=int, default=0,
                    help="--full: use diffusers' tiled decode with tiles of this many pixels")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.write_gguf:
        import convert_vae
        from sxgguf import write_gguf
        with tempfile.TemporaryDirectory() as tmp:
            sdxl_vae().save_pretrained(tmp, safe_serialization=True)
            meta, tensors = convert_vae.build(tmp, "f32")
            write_gguf(args.write_gguf, meta, tensors)
        print(f"wrote {args.write_gguf}")
    if not args.skip_layers:
        print("== float32")
        bench_layers(lambda: torch.autocast("cpu", enabled=False))
        print("== bf16 autocast")
        bench_layers(lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    if args.full:
        vae = sdxl_vae()
        if args.tile:
            vae.enable_tiling()
            vae.tile_sample_min_size = args.tile
            vae.tile_latent_min_size = args.tile // 8
        z = torch.randn(1, 4, args.size // 8, args.size // 8)
        with torch.no_grad():
            t0 = time.perf_counter()
            vae.decode(z / vae.config.scaling_factor)
            dt = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        kind = f"tiled ({args.tile} px tiles)" if args.tile else "untiled"
        print(f"full {kind} {args.size}x{args.size} decode (F32): {dt:.1f}s, peak RSS {peak:.0f} MB")

if __name__ == "__main__":
    main()
