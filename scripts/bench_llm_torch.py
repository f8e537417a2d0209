#!/usr/bin/env python3
"""PyTorch timing of the same work as tests/bench_llm.c: one Llama-2-13B decoder
layer (5120 / 40 heads / FFN 13824) + the lm_head [32330, 5120], F32 and bf16
autocast, extrapolated to 40 layers:
  decode ms/token = 40 x (layer, 1 token with a KV cache of N) + lm_head
  prefill tok/s   = N / (40 x (layer on N tokens) + lm_head on the last row)
    .venv/bin/python scripts/bench_llm_torch.py [N=600] [threads]"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_llm  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    if len(sys.argv) > 2:
        torch.set_num_threads(int(sys.argv[2]))
    cfg = dict(hidden=5120, layers=1, heads=40, kv_heads=40, ffn=13824, vocab=32330, eps=1e-5,
               theta=10000.0, max_pos=2048)
    torch.manual_seed(0)
    L = ref_llm.decoder_layer(cfg).eval()
    head = torch.nn.Linear(5120, 32330, bias=False)
    x = torch.randn(1, n, 5120)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; 1 layer x40 extrapolated")
    print(f"{'mode':10s} {'layer ms':>10s} {'lm_head ms':>11s} {'decode ms/tok':>14s} {'prefill tok/s':>14s}")
    for mode in ("f32", "bf16-autocast"):
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if mode != "f32" else torch.no_grad()
        with torch.no_grad(), ctx:
            t0 = time.time()
            _, past = L(x)
            t_pre = time.time() - t0
            steps = 8
            t0 = time.time()
            for s in range(steps):
                _, past = L(x[:, s:s + 1], pos0=n + s, past=past)
            t_dec = (time.time() - t0) / steps
            head(x[:, -1:])
            t0 = time.time()
            for _ in range(4):
                head(x[:, -1:])
            t_head = (time.time() - t0) / 4
        print(f"{mode:10s} {t_dec * 1e3:10.1f} {t_head * 1e3:11.1f} {(40 * t_dec + t_head) * 1e3:14.0f} "
              f"{n / (40 * t_pre + t_head):14.1f}")


if __name__ == "__main__":
    main()
