#!/usr/bin/env python3
"""PyTorch timing of the same ViT-bigG pieces tests/bench_vit.c times, on this
machine, with scripts/ref_vit.py modules (the official computation):
  block: ref_vit.Block(1664, 16 heads, MLP 8192) on 1024 tokens (a 448 tile);
  pool:  attn_pool Resampler(16x16 queries, 4096, 32 heads, kv 1664) + ln_post + @ proj.
448 tile = 48 x block + pool (extrapolated, as in bench_vit.c).
F32, and BF16 autocast (torch.autocast("cpu", torch.bfloat16)), per thread count.
Wall and process CPU seconds are printed; on a shared machine CPU seconds /
threads ("tile cpu/thr") approximates the unloaded wall time.
    .venv/bin/python scripts/bench_vit_torch.py [--threads 1,2] [--repeat 1]
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_vit  # noqa: E402

W, H, MLP, E, PH, T = 1664, 16, 8192, 4096, 32, 1024


def block_flops(t=T):
    return 2.0 * t * (W * 3 * W + W * W + 2.0 * W * MLP) + 4.0 * t * t * W


def pool_flops(t=T):
    return 2.0 * t * (W * E + 2.0 * E * E) + 4.0 * 256 * t * E + 2.0 * 256 * E * E * 2


CPU = {}


def timed(fn, repeat):
    """best wall seconds of repeat runs; CPU['last'] = process CPU seconds of that run
    (on a shared machine CPU time / threads approximates an unloaded wall time)"""
    best = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        dt = time.perf_counter() - t0
        if dt < best:
            best, CPU["last"] = dt, time.process_time() - c0
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeat", type=int, default=1)
    a = p.parse_args()
    torch.manual_seed(0)
    blk = ref_vit.Block(W, H, MLP, 1e-6).eval()
    pool = ref_vit.Resampler(16, E, PH, kv_dim=W, eps=1e-6).eval()
    ln_post = torch.nn.LayerNorm(E, eps=1e-6)
    proj = torch.randn(E, E) * E ** -0.5
    with torch.no_grad():
        for m in (blk, pool):
            for n, q in m.named_parameters():
                if q.ndim == 2 and n != "pos_embed":
                    q.normal_(0, q.shape[1] ** -0.5)
    x = torch.randn(T, 1, W)

    def run_block():
        with torch.no_grad():
            return blk(x)

    def run_pool():
        with torch.no_grad():
            return ln_post(pool(x.transpose(0, 1))) @ proj

    print(f"torch {torch.__version__}: block {block_flops() / 1e9:.1f} GFLOP, pool {pool_flops() / 1e9:.1f} GFLOP")
    print(f"{'mode':<14} {'threads':>7} {'block s':>9} {'cpu s':>9} {'pool s':>9} {'cpu s':>9} "
          f"{'448 tile s':>11} {'tile cpu/thr':>13}")
    for nt in (int(s) for s in a.threads.split(",")):
        torch.set_num_threads(nt)
        for mode in ("f32", "bf16-autocast"):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "f32"):
                tb = timed(run_block, a.repeat)
                cb = CPU["last"]
                tp = timed(run_pool, a.repeat)
                cp = CPU["last"]
            print(f"{mode:<14} {nt:>7} {tb:>9.3f} {cb:>9.3f} {tp:>9.3f} {cp:>9.3f} {48 * tb + tp:>11.1f} "
                  f"{(48 * cb + cp) / nt:>13.1f}", flush=True)

if __name__ == "__main__":
    main()
