"""PyTorch side of `build/tests/bench_matmul --conv / --attention`: times
torch.nn.functional.conv2d and the attention products on the shapes the C bench
sends, one request per line on stdin, so both sides run right beside each other
in the same run (the machine's clock and its other tenants change from minute
to minute). Each request is answered with one line: the best time in seconds
over `reps` runs (after one warm-up), or "error <message>". The time is wall
time, except with 1 thread: the CPU time of the calling thread (ATen runs a
1-thread op on it), which leaves out the time other processes took the core,
as the C side does.

  conv  cin cout k stride pad_t pad_l pad_b pad_r H W threads reps
  attn  Tq Tk heads head_dim causal threads reps
  gnconv cin cout groups H W threads reps  (the resnets' GroupNorm -> SiLU ->
        3x3 conv -> + residual, as diffusers' ResnetBlock2D runs them)

Attention is F.scaled_dot_product_attention on [1, heads, T, head_dim] (in
torch 2.0.1 on CPU the math path: the full Tq x Tk score matrix). Inputs are
random float32; the padding is applied with F.pad inside the timed call only
when it is asymmetric (the VAE encoder's downsample), as diffusers does."""
import sys
import time

import torch
import torch.nn.functional as F


def best_of(fn, reps):
    clock = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


def conv(a):
    cin, cout, k, s, pt, pl, pb, pr, H, W, threads, reps = map(int, a)
    torch.set_num_threads(threads)
    x = torch.randn(1, cin, H, W)
    w = torch.randn(cout, cin, k, k) * (1.0 / (cin * k * k) ** 0.5)
    b = torch.randn(cout)
    if pt == pb and pl == pr:
        return best_of(lambda: F.conv2d(x, w, b, stride=s, padding=(pt, pl)), reps)
    return best_of(lambda: F.conv2d(F.pad(x, (pl, pr, pt, pb)), w, b, stride=s), reps)


def gnconv(a):
    cin, cout, groups, H, W, threads, reps = map(int, a)
    torch.set_num_threads(threads)
    x, r = torch.randn(1, cin, H, W), torch.randn(1, cout, H, W)
    gw, gb = torch.rand(cin) + 0.5, torch.rand(cin) - 0.5
    w = torch.randn(cout, cin, 3, 3) * (1.0 / (cin * 9) ** 0.5)
    b = torch.randn(cout)
    return best_of(lambda: r + F.conv2d(F.silu(F.group_norm(x, groups, gw, gb, 1e-5)), w, b, padding=1), reps)


def attn(a):
    Tq, Tk, H, D, causal, threads, reps = map(int, a)
    torch.set_num_threads(threads)
    q, k, v = torch.randn(1, H, Tq, D), torch.randn(1, H, Tk, D), torch.randn(1, H, Tk, D)
    return best_of(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal)), reps)


def main():
    with torch.no_grad():
        for line in sys.stdin:
            f = line.split()
            if not f:
                continue
            try:
                t = {"conv": conv, "attn": attn, "gnconv": gnconv}[f[0]](f[1:])
                print(f"{t:.9f}", flush=True)
            except Exception as e:  # noqa: BLE001 - reported to the C side
                print("error " + str(e).replace("\n", " "), flush=True)


if __name__ == "__main__":
    main()
