"""Fixtures of the BF16 compute type -> tests/fixtures/bf16/:
1. weights.gguf: matrices of every float storage type (and Q8_0) to pack at
   load, sxrand values (the test regenerates them to check).
2. drift.gguf: whole modules at real shapes with sxrand weights (rounded to
   F16, as the converted model files hold them) run by PyTorch 2.0.1 in
   float32 and under CPU bf16 autocast on the same inputs; a subset of the
   output rows of each (tests/test_drift.c runs our F32 and BF16 paths and
   compares both errors). Per module <m>: <m>.dims, <m>.params (parameter
   names in generation order: value i of parameter j is
   sxrand.uniform(n, <m>.seed + j) in [-1/sqrt(fan_in), +] for matrices,
   [0.8, 1.2] for norm weights, [-0.1, 0.1] else, then F16-rounded), <m>.rows,
   <m>.y_f32, <m>.y_bf16; inputs sxrand.uniform(seed + 1000 (+1001 context), -1, 1).
Deterministic: fixed seeds."""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import sxrand  # noqa: E402
from sxgguf import write_gguf  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "bf16")

# (name, rows, cols, type, seed): values sxrand.uniform(rows*cols, seed, -0.5, 0.5)
WEIGHTS = [("w.f32", 100, 70, "f32", 1), ("w.f16", 64, 130, "f16", 2), ("w.bf16", 48, 66, "bf16", 3),
           ("w.q8_0", 40, 64, "q8_0", 4), ("w.t", 70, 100, "f32", 5), ("w.big", 256, 512, "f32", 6)]


def weights():
    T = []
    for name, r, c, t, seed in WEIGHTS:
        T.append((name, sxrand.uniform(r * c, seed, -0.5, 0.5).reshape(r, c), t))
    write_gguf(os.path.join(OUT, "weights.gguf"), {"seedx.fixture": "bf16.weights"}, T)


def fill(module, seed):
    """sxrand values for every parameter of module (see the docstring), F16-rounded."""
    import torch
    names = []
    for j, (name, p) in enumerate(module.named_parameters()):
        n = p.numel()
        if p.dim() >= 2:
            a = 1.0 / np.sqrt(np.prod(p.shape[1:]))
            lo, hi = -a, a
        elif name.endswith("weight"):
            lo, hi = 0.8, 1.2
        else:
            lo, hi = -0.1, 0.1
        v = sxrand.uniform(n, seed + j, lo, hi).astype(np.float16).astype(np.float32)
        with torch.no_grad():
            p.copy_(torch.from_numpy(v.reshape(p.shape)))
        names.append(name)
    return names


def run_both(module, *inputs):
    """(float32 output, bf16-autocast output) as float32 numpy arrays"""
    import torch
    with torch.no_grad():
        y32 = module(*inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y16 = module(*inputs)
    pick = (lambda y: y[0] if isinstance(y, tuple) else y)
    return pick(y32).float().numpy(), pick(y16).float().numpy()


def drift():
    import torch
    import ref_llm
    import ref_vit
    from diffusers.models.attention import BasicTransformerBlock
    torch.set_num_threads(2)
    T, meta = [], {"seedx.fixture": "bf16.drift", "seedx.fixture.torch": torch.__version__}

    def add(m, names, seed, dims, y32, y16, rows):
        meta[m + ".params"] = names
        meta[m + ".seed"] = seed
        meta[m + ".dims"] = dims
        meta[m + ".rows"] = rows
        T.append((m + ".y_f32", np.ascontiguousarray(y32[rows]), "f32"))
        T.append((m + ".y_bf16", np.ascontiguousarray(y16[rows]), "f32"))
        e = np.abs(y16[rows] - y32[rows]).max() / np.abs(y32[rows]).max()
        print(f"  {m}: torch bf16 autocast vs f32 max-rel {e:.3g}")

    # ViT-bigG block: width 1664, 16 heads, MLP 8192, 1024 tokens (a 448 tile)
    W, H, MLP, L, seed = 1664, 16, 8192, 1024, 9100
    blk = ref_vit.Block(W, H, MLP, 1e-6).eval()
    names = fill(blk, seed)
    x = torch.from_numpy(sxrand.uniform(L * W, seed + 1000, -1, 1).reshape(L, 1, W))
    y32, y16 = run_both(blk, x)
    add("vit", names, seed, [W, H, MLP, L], y32[:, 0], y16[:, 0], list(range(0, L, 32)) + [L - 1])
    del blk

    # Llama-2-13B decoder layer, 64-token prefill (positions 0..63)
    D, Hq, F, Tl, seed = 5120, 40, 13824, 64, 9200
    cfg = dict(hidden=D, layers=1, heads=Hq, kv_heads=Hq, ffn=F, vocab=1, eps=1e-5, theta=10000.0,
               max_pos=2048)
    lay = ref_llm.decoder_layer(cfg).eval()
    names = fill(lay, seed)
    x = torch.from_numpy(sxrand.uniform(Tl * D, seed + 1000, -1, 1).reshape(1, Tl, D))
    y32, y16 = run_both(lay, x)
    add("llama", names, seed, [D, Hq, F, Tl], y32[0], y16[0], list(range(0, Tl, 4)) + [Tl - 1])
    del lay

    # SDXL BasicTransformerBlock at 1280 channels (a 32x32 latent), 77 context tokens
    C, Hu, Cc, Tu, Tc, seed = 1280, 20, 2048, 1024, 77, 9300
    tb = BasicTransformerBlock(C, Hu, C // Hu, cross_attention_dim=Cc, activation_fn="geglu",
                               attention_bias=False, norm_elementwise_affine=True, norm_type="layer_norm",
                               norm_eps=1e-5).eval()
    names = fill(tb, seed)
    x = torch.from_numpy(sxrand.uniform(Tu * C, seed + 1000, -1, 1).reshape(1, Tu, C))
    ctx = torch.from_numpy(sxrand.uniform(Tc * Cc, seed + 1001, -1, 1).reshape(1, Tc, Cc))

    class WithCtx(torch.nn.Module):
        def __init__(self, b):
            super().__init__()
            self.b = b

        def forward(self, h):
            return self.b(h, encoder_hidden_states=ctx)

    y32, y16 = run_both(WithCtx(tb), x)
    add("unet", names, seed, [C, Hu, Cc, Tu, Tc], y32[0], y16[0], list(range(0, Tu, 32)) + [Tu - 1])
    write_gguf(os.path.join(OUT, "drift.gguf"), meta, T)


def main():
    os.makedirs(OUT, exist_ok=True)
    weights()
    drift()


if __name__ == "__main__":
    main()
