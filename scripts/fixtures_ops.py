"""Kernel-layer fixtures: inputs and PyTorch 2.0.1 outputs for every op in
ops.h on odd, non-multiple-of-block shapes -> tests/fixtures/ops/ops.gguf."""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sxgguf import write_gguf, f32_to_bf16_bits  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "ops", "ops.gguf")
torch.manual_seed(0)
rng = np.random.default_rng(1234)
T = []  # (name, array, type)
meta = {"seedx.fixture": "ops", "seedx.fixture.torch": torch.__version__}


def add(name, a, t="f32"):
    T.append((name, np.ascontiguousarray(a), t))


def rnd(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def bf16_round(a):
    return (f32_to_bf16_bits(a).astype(np.uint32) << 16).view(np.float32)


# matmul Y = X W^T + b for W in f32/f16/bf16; also the transposed storage (x @ P)
cases = []
for M in (1, 7, 65):
    for K in (3, 129):
        for N in (1, 31, 257):
            for wt in ("f32", "f16", "bf16"):
                cases.append((M, K, N, wt))
meta["ops.matmul.cases"] = [f"{M}.{K}.{N}.{wt}" for M, K, N, wt in cases]
# x, w, b come from the counter-based generator the C test shares
# (sx_rand_uniform == sxrand.uniform: stream 1000 + 3*i, +1, +2 for case i),
# so only the PyTorch result is stored.
from sxrand import uniform  # noqa: E402
for i, (M, K, N, wt) in enumerate(cases):
    p = f"matmul.{M}.{K}.{N}.{wt}"
    x = uniform(M * K, 1000 + 3 * i, -1.0, 1.0).reshape(M, K)
    w = uniform(N * K, 1001 + 3 * i, -0.3, 0.3).reshape(N, K)
    b = uniform(N, 1002 + 3 * i, -1.0, 1.0)
    if wt == "f16":
        w = w.astype(np.float16).astype(np.float32)
    elif wt == "bf16":
        w = bf16_round(w)
    y = F.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)).numpy()
    add(p + ".y", y)
# x @ P with P stored [K, N] (Qwen's proj)
x, P = rnd(33, 70), rnd(70, 45, scale=0.2)
add("matmul_t.x", x); add("matmul_t.p", P); add("matmul_t.y", (torch.from_numpy(x) @ torch.from_numpy(P)).numpy())

# attention: (name, Tq, Tk, heads, kv_heads, head_dim, causal)
att = [("self", 65, 65, 3, 3, 20, 0), ("causal", 37, 37, 4, 2, 16, 1),
       ("cache", 5, 41, 4, 4, 8, 1), ("cross", 7, 129, 2, 2, 40, 0), ("decode", 1, 300, 5, 1, 64, 1)]
meta["ops.attn.cases"] = [a[0] for a in att]
for name, Tq, Tk, H, Hk, D, causal in att:
    q, k, v = rnd(Tq, H, D), rnd(Tk, Hk, D), rnd(Tk, Hk, D)
    qt = torch.from_numpy(q).permute(1, 0, 2)
    kt = torch.from_numpy(k).permute(1, 0, 2).repeat_interleave(H // Hk, dim=0)
    vt = torch.from_numpy(v).permute(1, 0, 2).repeat_interleave(H // Hk, dim=0)
    s = (qt @ kt.transpose(1, 2)) / np.sqrt(D)
    if causal:
        off = Tk - Tq
        mask = torch.arange(Tk)[None, :] > (torch.arange(Tq)[:, None] + off)
        s = s.masked_fill(mask, float("-inf"))
    o = (torch.softmax(s, dim=-1) @ vt).permute(1, 0, 2).contiguous().numpy()
    p = f"attn.{name}"
    add(p + ".q", q); add(p + ".k", k); add(p + ".v", v); add(p + ".o", o)
    meta[p + ".dims"] = [Tq, Tk, H, Hk, D, causal]

# norms and activations
x = rnd(7, 129, scale=3.0) + 1.5
w, b = rnd(129), rnd(129)
add("norm.x", x); add("norm.w", w); add("norm.b", b)
add("layernorm.y", F.layer_norm(torch.from_numpy(x), (129,), torch.from_numpy(w), torch.from_numpy(b), eps=1e-6).numpy())
xt = torch.from_numpy(x)
add("rmsnorm.y", (torch.from_numpy(w) * (xt * torch.rsqrt(xt.pow(2).mean(-1, keepdim=True) + 1e-5))).numpy())
add("softmax.y", torch.softmax(xt, dim=-1).numpy())
g = rnd(64, 7, 9, scale=2.0) + 0.5
gw, gb = rnd(64), rnd(64)
add("groupnorm.x", g); add("groupnorm.w", gw); add("groupnorm.b", gb)
add("groupnorm.y", F.group_norm(torch.from_numpy(g)[None], 32, torch.from_numpy(gw), torch.from_numpy(gb), eps=1e-6)[0].numpy())
a = np.concatenate([np.linspace(-12, 12, 2001, dtype=np.float32), rnd(999, scale=4.0)])
add("act.x", a)
at = torch.from_numpy(a)
add("gelu.y", F.gelu(at).numpy())
add("gelu_tanh.y", F.gelu(at, approximate="tanh").numpy())
add("silu.y", F.silu(at).numpy())

# conv2d cases: (name, cin, cout, k, stride, pads(t,l,b,r), H, W, bias)
conv = [("patchify", 3, 16, 14, 14, (0, 0, 0, 0), 28, 42, 0), ("k3p1", 5, 7, 3, 1, (1, 1, 1, 1), 9, 11, 1),
        ("down", 6, 6, 3, 2, (0, 0, 1, 1), 9, 10, 1), ("k1", 33, 17, 1, 1, (0, 0, 0, 0), 5, 3, 1)]
meta["ops.conv.cases"] = [c[0] for c in conv]
for name, cin, cout, k, s, pads, H, W, hb in conv:
    x, w = rnd(cin, H, W), rnd(cout, cin, k, k, scale=0.2)
    b = rnd(cout) if hb else np.zeros(cout, np.float32)
    xt = F.pad(torch.from_numpy(x)[None], (pads[1], pads[3], pads[0], pads[2]))
    y = F.conv2d(xt, torch.from_numpy(w), torch.from_numpy(b) if hb else None, stride=s)[0].numpy()
    p = f"conv.{name}"
    add(p + ".x", x); add(p + ".w", w); add(p + ".b", b); add(p + ".y", y)
    meta[p + ".dims"] = [cin, cout, k, s, pads[0], pads[1], pads[2], pads[3], H, W, hb]

# bicubic: (name, C, h, w, oh, ow)
bic = [("16to32", 5, 16, 16, 32, 32), ("8to16", 3, 8, 8, 16, 16), ("5x7to7x3", 2, 5, 7, 7, 3)]
meta["ops.bicubic.cases"] = [c[0] for c in bic]
for name, C, h, w_, oh, ow in bic:
    x = rnd(C, h, w_)
    y = F.interpolate(torch.from_numpy(x)[None], size=(oh, ow), mode="bicubic", align_corners=False)[0].numpy()
    add(f"bicubic.{name}.x", x); add(f"bicubic.{name}.y", y)
    meta[f"bicubic.{name}.dims"] = [C, h, w_, oh, ow]

# rotary embedding as transformers 4.30.2's LlamaRotaryEmbedding + apply_rotary_pos_emb
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb  # noqa: E402
Tn, Hn, Dn, pos0 = 9, 3, 16, 5
q = rnd(Tn, Hn, Dn)
rot = LlamaRotaryEmbedding(Dn, max_position_embeddings=64)
qt = torch.from_numpy(q).permute(1, 0, 2)[None]
cos, sin = rot(qt, seq_len=pos0 + Tn)
pos = torch.arange(pos0, pos0 + Tn)[None]
qo, _ = apply_rotary_pos_emb(qt, qt, cos, sin, pos)
add("rope.x", q); add("rope.y", qo[0].permute(1, 0, 2).contiguous().numpy())
meta["rope.dims"] = [Tn, Hn, Dn, pos0]

# pooling and upsampling
x = rnd(256, 12)
add("avgpool.x", x)
add("avgpool.y", F.avg_pool1d(torch.from_numpy(x).T[None], 4, 4)[0].T.contiguous().numpy())
x = rnd(3, 5, 7)
add("upsample.x", x)
add("upsample.y", F.interpolate(torch.from_numpy(x)[None], scale_factor=2.0, mode="nearest")[0].numpy())

# float16 / bfloat16 conversions (numpy/torch rounding)
v = np.concatenate([rnd(4000, scale=100.0), np.array([0, -0.0, 65504, 65520, 1e-8, 6e-8, 3e-5, -7e-6, np.inf, -np.inf, 1e30, 5.96e-8, 2.98e-8], np.float32)])
add("cvt.x", v)
add("cvt.f16", v.astype(np.float16).astype(np.float32))
add("cvt.bf16", torch.from_numpy(v).to(torch.bfloat16).to(torch.float32).numpy())

add("rand.7", uniform(3, 7, -1.0, 1.0))

write_gguf(OUT, meta, T)
print(f"wrote {OUT}: {len(T)} tensors, {os.path.getsize(OUT)} bytes")
