#!/usr/bin/env python3
"""A random-weight SEED-X model directory at the REAL shapes, written straight in our
container with quantized weights: what `seedx chat` loads, for memory and speed runs
at 13B scale without the official checkpoints (or the 26 GB of F16 a conversion
would first need).

    python scripts/make_quant_model.py OUT_DIR --dtype q8_0|q4_0|q4_k|f16|bf16 [--llm-layers 40]
                                       [--llm-only]

Writes OUT_DIR/{tokenizer,vit,agent,llm}.gguf (what comprehension reads): the ViT-bigG
(448, width 1664, 48 layers, MLP 8192, attention pool 256 x 4096), the agent's input /
output resamplers (64 queries, 5120 <-> 4096, 32 heads) and Llama-2-13B (5120, 40
layers, 40 heads, FFN 13824, vocab 32330), with the tensor names, shapes, metadata
and per-tensor types the converter writes for --dtype (scripts/quant_ref.py's
policy). The tokenizer is the real SEED-X one (tests/fixtures/seedx_e2e/model).
Quantized blocks hold uniform random codes with a fixed scale (weights ~U(-a, a),
a = 2/sqrt(row length), so activations stay bounded through the 40 layers); float
tensors are norms = 1, biases = 0, the rest N(0, 0.02) (with --dtype f16/bf16 every
matrix, as a float conversion stores them). --llm-only writes tokenizer.gguf and
llm.gguf only (what `seedx lm` reads). Streamed tensor by tensor: about one slice
in memory. Sizes: q8_0 ~16 GB, q4_0 ~8.9 GB; the LLM alone with 4 layers: 0.9 GB
(q4_0) to 3.2 GB (f16). Delete it after use.
"""
import argparse
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import convert_vit  # noqa: E402
import quant_ref  # noqa: E402
from convert_llm import expected_shapes, order_key  # noqa: E402
from sxgguf import GGUFStreamWriter  # noqa: E402

SLICE = 1 << 22
VIT = dict(image_size=448, patch_size=14, width=1664, layers=48, heads=16, mlp_width=8192,
           mlp_ratio=8192 / 1664, output_dim=4096, n_queries=256, pool_heads=32, pos_grid=32,
           ln_eps=1e-6)
LLM = dict(hidden=5120, layers=40, heads=40, kv_heads=40, ffn=13824, vocab=32330, max_pos=4096)
AGENT = dict(queries=64, llm=5120, vit=4096, heads=32)


def f16(v):
    return np.array([v], dtype="<f2").view(np.uint8)


def quant_chunks(rng, shape, ttype):
    """Random blocks of ttype for a [N, K] matrix: codes uniform, scale so that the
    values are ~U(-a, a), a = 2/sqrt(K)."""
    per, bsz = quant_ref.BLOCK[ttype]
    a = 2.0 / np.sqrt(shape[-1])
    n = int(np.prod(shape))
    for s0 in range(0, n, SLICE):
        nb = min(SLICE, n - s0) // per
        b = np.empty((nb, bsz), dtype=np.uint8)
        if ttype == "q8_0":
            b[:, 0:2] = f16(a / 127)
            b[:, 2:] = rng.integers(-127, 128, (nb, 32), dtype=np.int8).view(np.uint8)
        elif ttype == "q4_0":
            b[:, 0:2] = f16(a / 8)
            b[:, 2:] = rng.integers(0, 256, (nb, 16), dtype=np.uint8)
        else:  # q4_k: d*sc*q - dmin*m with sc = m = 32, q ~ U(0, 15): values ~U(-a, a)
            b[:, 0:2] = f16(a / (32 * 7.5))
            b[:, 2:4] = f16(a / 32)
            b[:, 4:16] = [32, 32, 32, 32, 32, 32, 32, 32, 0, 0, 0, 0]
            b[:, 16:] = rng.integers(0, 256, (nb, 128), dtype=np.uint8)
        yield b.tobytes()


def float_chunks(rng, name, shape, ttype):
    n = int(np.prod(shape))
    for s0 in range(0, n, SLICE):
        k = min(SLICE, n - s0)
        if name.endswith(("norm.weight", "ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight",
                          "ln_q.weight", "ln_kv.weight")):
            v = np.ones(k, np.float32)
        elif name.endswith("bias"):
            v = np.zeros(k, np.float32)
        else:
            v = (rng.standard_normal(k) * 0.02).astype(np.float32)
        if ttype == "bf16":  # round to nearest even (finite values)
            u = v.view(np.uint32).astype(np.uint64)
            yield ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()
        else:
            yield v.astype("<f4" if ttype == "f32" else "<f2").tobytes()


def write(path, meta, specs, seed):
    rng = np.random.default_rng(seed)
    w = GGUFStreamWriter(path, meta, specs)
    try:
        for name, shape, tt in specs:
            chunks = quant_chunks(rng, shape, tt) if tt in quant_ref.QUANT_TYPES else \
                float_chunks(rng, name, shape, tt)
            w.write_tensor(name, chunks)
        w.close()
    except BaseException:
        w.abort()
        raise
    print(f"  {path}: {len(specs)} tensors, {w.total / 1e9:.2f} GB", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--dtype", required=True, choices=quant_ref.QUANT_TYPES + ("f16", "bf16"))
    p.add_argument("--llm-layers", type=int, default=40)
    p.add_argument("--llm-only", action="store_true", help="tokenizer.gguf and llm.gguf only")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    shutil.copy(os.path.join(ROOT, "tests", "fixtures", "seedx_e2e", "model", "tokenizer.gguf"),
                os.path.join(a.out, "tokenizer.gguf"))
    if not a.llm_only:
        write_vit_agent(a.out, a.dtype)
    write_llm(a.out, a.dtype, a.llm_layers)
    return 0


def write_vit_agent(out, dtype):
    # ViT: float types as convert_vit writes them, matrices by the policy
    h = dict(VIT)
    vs = convert_vit.expected_shapes(h)
    specs = [(k, s, "f32" if (len(s) < 2 or k in convert_vit.F32_ALWAYS) else
              quant_ref.storage_type(k, s, dtype)) for k, s in vs.items()]
    write(os.path.join(out, "vit.gguf"), convert_vit.metadata(h), specs, 1)
    # agent (convert_agent.py: matrices f16 in a quantized conversion, the rest f32)
    Q, E, V_, H = AGENT["queries"], AGENT["llm"], AGENT["vit"], AGENT["heads"]
    specs = []
    for pre, e, kv in (("input_resampler.", E, V_), ("output_resampler.", V_, E)):
        specs += [(pre + "attn.in_proj_bias", (3 * e,), "f32"), (pre + "attn.in_proj_weight", (3 * e, e), "f16"),
                  (pre + "attn.out_proj.bias", (e,), "f32"), (pre + "attn.out_proj.weight", (e, e), "f16"),
                  (pre + "kv_proj.weight", (e, kv), "f16"), (pre + "ln_kv.bias", (e,), "f32"),
                  (pre + "ln_kv.weight", (e,), "f32"), (pre + "ln_q.bias", (e,), "f32"),
                  (pre + "ln_q.weight", (e,), "f32"), (pre + "pos_embed", (Q, e), "f32"),
                  (pre + "query", (Q, e), "f32")]
    specs.append(("patch_pos_embed", (4, E), "f32"))
    specs.sort()
    meta = {"general.architecture": "seedx-agent", "seedx.agent.input_heads": H,
            "seedx.agent.output_heads": H, "seedx.agent.eps": 1e-5, "seedx.agent.n_queries": Q,
            "seedx.agent.input_embed_dim": E, "seedx.agent.input_kv_dim": V_,
            "seedx.agent.output_embed_dim": V_, "seedx.agent.output_kv_dim": E,
            "seedx.agent.source": "random"}
    write(os.path.join(out, "agent.gguf"), meta, specs, 2)


def write_llm(out, dtype, layers):
    cfg = dict(LLM, layers=layers)
    exp = expected_shapes(cfg)
    names = sorted(exp, key=order_key)
    specs = [(k, exp[k], quant_ref.storage_type(k, exp[k], dtype) if len(exp[k]) > 1 else "f32")
             for k in names]
    md = {"general.architecture": "llama", "seedx.llm.hidden": cfg["hidden"],
          "seedx.llm.layers": cfg["layers"], "seedx.llm.heads": cfg["heads"],
          "seedx.llm.kv_heads": cfg["kv_heads"], "seedx.llm.ffn": cfg["ffn"],
          "seedx.llm.vocab": cfg["vocab"], "seedx.llm.max_position_embeddings": cfg["max_pos"],
          "seedx.llm.rms_eps": 1e-5, "seedx.llm.rope_theta": 10000.0, "seedx.llm.bos_id": 1,
          "seedx.llm.eos_id": 2, "seedx.llm.pad_id": 0, "seedx.llm.source_dtype": "random"}
    write(os.path.join(out, "llm.gguf"), md, specs, 3)


if __name__ == "__main__":
    sys.exit(main())
