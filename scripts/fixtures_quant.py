#!/usr/bin/env python3
"""Fixtures of the quantized weight types (tests/fixtures/quant/, read by tests/test_quant.c).

  rows.gguf         random and adversarial rows (zeros, one huge outlier, denormal and
                    f16-subnormal scales, ties of roundf, constant, negative-only, equal
                    magnitudes of both signs) as F32 'x'; per type T the bytes
                    quant_ref.quantize() gives ('T', stored as type T) and the PyPI gguf
                    package's numpy dequantization of them ('T.deq', F32)
  policy.gguf       the quantization policy on real and synthetic names and shapes:
                    quant_type_for(name, shape, want) for the C side to agree with
  tiny_llama.gguf   a Llama with quantizable shapes (hidden 256, FFN 512, 2 layers, 4 heads,
                    2 kv heads, vocab 512), random bf16-exact weights, converted by
                    convert_llm.py --dtype bf16 (lossless)
  tiny_llama_expected.gguf
                    PyTorch (RefLlama, F32) greedy ids for 40 steps after a 12-token prompt
                    and their logits; per type the converter's (--dtype q8_0|q4_0|q4_k)
                    tensor types and sxhash of their bytes
  layer13b_ref.gguf the 13B decoder layer's 7 matrices of tests/test_llm.c (sxrand, BF16)
                    quantized with llama.cpp's reference rounding: per matrix and type the
                    sxhash of the bytes (Q4_K: the first 256 rows) and the RMS error; the
                    PyPI gguf package's own Q8_0 / Q4_0 quantizers (written to match
                    ggml-quants.c) on the same weights: hash (Q8_0) and differing blocks
  bad_*.gguf        containers the reader must refuse with the tensor's name: a quantized
                    tensor whose data runs past the file, a Q4_0 row of 40 values, a Q4_K
                    row of 32, an unknown type id; also copied to the fuzz corpus
The converter's refusal of NaN/Inf and of values too large for an f16 scale is
checked here (the fixtures are not written if it does not refuse).

sxhash(bytes): little-endian u64 words of the bytes zero-padded to a multiple of 8,
h = n_bytes + sum_i splitmix64(w_i + i * 0x9E3779B97F4A7C15) mod 2^64 (tests/test_quant.c
computes the same).
"""
import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import convert_llm  # noqa: E402
import quant_ref  # noqa: E402
import ref_llm  # noqa: E402
import sxrand  # noqa: E402
from sxgguf import TYPES, f32_to_bf16_bits, write_gguf  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "quant")
FUZZ = os.path.join(ROOT, "tests", "fuzz", "gguf")
GG = None  # the gguf package, imported in main


def sxhash(b):
    b = bytes(b)
    w = np.frombuffer(b + b"\0" * ((-len(b)) % 8), dtype="<u8")
    with np.errstate(over="ignore"):
        z = w + np.arange(w.size, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        return int((np.uint64(len(b)) + z.sum(dtype=np.uint64)) & np.uint64(2**64 - 1))


def gguf_dequant(raw, ttype):
    """The PyPI gguf package's numpy dequantization."""
    t = {"q8_0": GG.GGMLQuantizationType.Q8_0, "q4_0": GG.GGMLQuantizationType.Q4_0,
         "q4_k": GG.GGMLQuantizationType.Q4_K}[ttype]
    bs = quant_ref.BLOCK[ttype][1]
    return GG.quants.dequantize(np.frombuffer(raw, np.uint8).reshape(-1, bs), t).reshape(-1)


# ---------------------------------------------------------------- rows
def make_rows():
    rng = np.random.default_rng(1234)
    rows = []
    add = rows.append
    add(np.zeros(256))                                            # all zeros
    add(rng.standard_normal(256))                                 # random
    add(rng.uniform(-1, 1, 256) * 0.02)                           # weight-like
    r = rng.standard_normal(256) * 0.01
    r[[3, 77, 130, 255]] = [4e5, -2e5, 1e4, -5e5]                 # huge outliers (f16-safe)
    add(r)
    add(rng.standard_normal(256) * 1e-30)                         # scale underflows f16
    add(rng.standard_normal(256) * 1e-41)                         # f32 denormal values
    add(rng.standard_normal(256) * 3e-3)                          # f16-subnormal scales
    add(np.full(256, 0.75))                                       # constant
    add(-np.abs(rng.standard_normal(256)) - 2)                    # negative only
    r = rng.integers(-3, 4, 256).astype(np.float64)               # equal magnitudes, both signs
    r[::32] = 3
    r[1::32] = -3
    add(r)
    r = np.arange(256) % 32 - 15.5                                # roundf ties: d = 1 blocks
    r[::32] = 127
    add(r)
    r = (np.arange(256) % 16) * 0.5 - 4.0                         # q4_0 .5 ties
    r[::32] = -8
    add(r)
    add(np.concatenate([np.zeros(128), rng.standard_normal(128)]))  # half zero super-blocks
    add(np.where(rng.random(256) < 0.9, 0.0, rng.standard_normal(256)))  # sparse
    r = rng.standard_normal(256)
    r[5] = -0.0
    r[:32] = -0.0                                                 # a block of negative zeros
    add(r)
    for _ in range(49):
        add(rng.standard_normal(256) * rng.uniform(1e-3, 10))
    x = np.stack(rows).astype(np.float32)  # [64, 256]
    tens = [("x", x, "f32")]
    for t in quant_ref.QUANT_TYPES:
        raw = quant_ref.quantize(x, t, "rows")
        deq = gguf_dequant(raw, t)
        assert np.array_equal(deq.view(np.uint32), quant_ref.dequantize(raw, t).view(np.uint32)), t
        tens.append((t, x, t))  # write_gguf quantizes with quant_ref: the same bytes
        tens.append((t + ".deq", deq.reshape(x.shape), "f32"))
    return tens


# ---------------------------------------------------------------- policy
def make_policy():
    cases = []
    for name, shape in [
            ("model.embed_tokens.weight", (32330, 5120)), ("lm_head.weight", (32330, 5120)),
            ("model.layers.0.self_attn.q_proj.weight", (5120, 5120)),
            ("model.layers.39.self_attn.k_proj.weight", (5120, 5120)),
            ("model.layers.7.self_attn.v_proj.weight", (5120, 5120)),
            ("model.layers.12.self_attn.o_proj.weight", (5120, 5120)),
            ("model.layers.3.mlp.gate_proj.weight", (13824, 5120)),
            ("model.layers.3.mlp.up_proj.weight", (13824, 5120)),
            ("model.layers.3.mlp.down_proj.weight", (5120, 13824)),
            ("model.layers.0.input_layernorm.weight", (5120,)), ("model.norm.weight", (5120,)),
            ("model.layers.0.post_attention_layernorm.weight", (5120,)),
            ("transformer.resblocks.0.attn.in_proj.weight", (4992, 1664)),
            ("transformer.resblocks.47.attn.out_proj.weight", (1664, 1664)),
            ("transformer.resblocks.3.mlp.c_fc.weight", (8192, 1664)),
            ("transformer.resblocks.3.mlp.c_proj.weight", (1664, 8192)),
            ("transformer.resblocks.3.attn.in_proj.bias", (4992,)),
            ("transformer.resblocks.3.ln_1.weight", (1664,)),
            ("conv1.weight", (1664, 3, 14, 14)), ("proj", (4096, 4096)),
            ("attn_pool.kv_proj.weight", (4096, 1664)), ("attn_pool.attn.in_proj_weight", (12288, 4096)),
            ("attn_pool.attn.out_proj.weight", (4096, 4096)), ("positional_embedding", (1024, 1664)),
            ("input_resampler.attn.in_proj_weight", (15360, 5120)),
            ("output_resampler.kv_proj.weight", (4096, 5120)),
            ("resampler.layers.0.0.to_q.weight", (1024, 1024)),
            ("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight", (640, 640)),
            ("decoder.up_blocks.0.resnets.0.conv1.weight", (512, 512, 3, 3)),
            # tiny shapes: row lengths that are not multiples of the blocks
            ("model.layers.0.mlp.down_proj.weight", (64, 172)),
            ("model.layers.0.self_attn.q_proj.weight", (16, 16)),
            ("model.layers.0.self_attn.q_proj.weight", (64, 64)),
            ("model.layers.1.mlp.up_proj.weight", (512, 256)),
            ("lm_head.weight", (512, 16)), ("model.embed_tokens.weight", (512, 48)),
            ("transformer.resblocks.0.mlp.c_proj.weight", (32, 157)),
            # near misses of the patterns
            ("model.layers.x.self_attn.q_proj.weight", (64, 64)),
            ("model.layers.0.self_attn.q_proj.bias", (64, 64)),
            ("xmodel.layers.0.mlp.up_proj.weight", (64, 64)),
            ("model.layers.0.mlp.up_proj.weight.extra", (64, 64)),
            ("transformer.resblocks.1.attn.in_proj_weight", (96, 32)),
            ("model.layers.0.mlp.up_proj.weight", (4, 64, 64))]:
        for want in ("q8_0", "q4_0", "q4_k", "f16", "bf16", "f32"):
            got = quant_ref.quant_type_for(name, shape, want)
            cases.append((name, shape, want, -1 if got is None else TYPES[got]))
    meta = {"policy.names": [c[0] for c in cases],
            "policy.ndim": [len(c[1]) for c in cases],
            "policy.shapes": [int(d) for c in cases for d in (tuple(c[1]) + (0,) * 4)[:4]],
            "policy.want": [TYPES[c[2]] for c in cases],
            "policy.type": [c[3] for c in cases]}
    write_gguf(os.path.join(OUT, "policy.gguf"), meta, [])
    return len(cases)


# ---------------------------------------------------------------- tiny Llama
TL = dict(hidden=256, layers=2, heads=4, kv_heads=2, ffn=512, vocab=512, eps=1e-5,
          theta=10000.0, max_pos=512)
PROMPT = [1, 17, 260, 33, 401, 7, 99, 180, 250, 3, 511, 64]
STEPS = 40


def make_tiny_llama(tmp):
    from safetensors.torch import save_file
    torch.manual_seed(11)
    m = ref_llm.RefLlama(TL).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.ndim == 1:
                v = 1.0 + 0.25 * torch.randn(p.shape)
            elif "embed" in name or "lm_head" in name:
                v = 0.5 * torch.randn(p.shape)  # peaked next-token distributions
            else:
                v = torch.randn(p.shape) / np.sqrt(p.shape[1])
            p.copy_(v.bfloat16().float())
    d = os.path.join(tmp, "tiny_llama")
    os.makedirs(d)
    hf = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
          "hidden_size": TL["hidden"], "intermediate_size": TL["ffn"],
          "num_hidden_layers": TL["layers"], "num_attention_heads": TL["heads"],
          "num_key_value_heads": TL["kv_heads"], "vocab_size": TL["vocab"],
          "max_position_embeddings": TL["max_pos"], "rms_norm_eps": TL["eps"],
          "rope_theta": TL["theta"], "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2,
          "pad_token_id": 0, "tie_word_embeddings": False, "torch_dtype": "float32"}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(hf, f, indent=2)
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    convert_llm.convert(d, os.path.join(OUT, "tiny_llama.gguf"), "bf16", verbose=False)
    meta = {}
    for t in quant_ref.QUANT_TYPES:
        o = os.path.join(tmp, f"tiny_{t}.gguf")
        convert_llm.convert(d, o, t, verbose=False)
        r = GG.GGUFReader(o)
        names, types, hashes = [], [], []
        for tt in r.tensors:
            names.append(tt.name)
            types.append(int(tt.tensor_type))
            hashes.append(sxhash(np.asarray(tt.data).tobytes()))
        meta[f"{t}.names"], meta[f"{t}.types"] = names, types
        meta[f"{t}.hashes"] = [h - 2**64 if h >= 2**63 else h for h in hashes]  # as int64
    with torch.no_grad():
        ids = torch.tensor([PROMPT])
        emb = m.model.embed_tokens(ids)
        gen, _ = m.greedy(emb, STEPS)
        full = torch.tensor([PROMPT + list(gen)])
        logits, _, _ = m(input_ids=full)
        lg = logits[0, len(PROMPT) - 1:len(PROMPT) - 1 + STEPS]  # the 40 predictions
    top2 = torch.topk(lg, 2, dim=-1).values
    margin = (top2[:, 0] - top2[:, 1])
    assert lg.argmax(-1).tolist() == list(gen)
    print(f"  tiny llama: greedy margins min {margin.min():.3g} median {margin.median():.3g}, "
          f"logits |max| {lg.abs().max():.3g}")
    meta.update({"llm.prompt_ids": PROMPT, "llm.gen_ids": [int(v) for v in gen]})
    write_gguf(os.path.join(OUT, "tiny_llama_expected.gguf"), meta,
               [("logits", lg.numpy().astype(np.float32), "f32")])
    # the converter refuses NaN/Inf and values past the f16 scales, naming the tensor
    for bad, what in ((float("nan"), "NaN/Inf"), (1e30, "too large")):
        sd2 = dict(sd)
        w = sd2["model.layers.1.mlp.up_proj.weight"].clone()
        w[3, 5] = bad
        sd2["model.layers.1.mlp.up_proj.weight"] = w
        save_file(sd2, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        try:
            convert_llm.convert(d, os.path.join(tmp, "bad.gguf"), "q8_0", verbose=False)
            raise SystemExit(f"convert_llm accepted a {what} value")
        except ValueError as e:
            assert "model.layers.1.mlp.up_proj.weight" in str(e) and what in str(e), str(e)
            assert not os.path.exists(os.path.join(tmp, "bad.gguf"))
            print(f"  converter refuses: {e}")


# ---------------------------------------------------------------- 13B layer
def make_layer13b():
    D, F = 5120, 13824
    mats = [("self_attn.q_proj", (D, D), 101), ("self_attn.k_proj", (D, D), 102),
            ("self_attn.v_proj", (D, D), 103), ("self_attn.o_proj", (D, D), 104),
            ("mlp.gate_proj", (F, D), 105), ("mlp.up_proj", (F, D), 106),
            ("mlp.down_proj", (D, F), 107)]
    meta = {"layer.q4_k_rows": 256}
    gg_q4_0_diff = 0
    for name, shp, seed in mats:
        a = 1.0 / np.sqrt(shp[1])
        w = sxrand.uniform(shp[0] * shp[1], seed, -a, a)
        w = (f32_to_bf16_bits(w).astype(np.uint32) << 16).view(np.float32)
        for t in quant_ref.QUANT_TYPES:
            part = w if t != "q4_k" else w[:256 * shp[1]]
            raw = quant_ref.quantize(part, t, name)
            err = quant_ref.dequantize(raw, t) - part
            h = sxhash(raw)
            meta[f"{name}.{t}.hash"] = h - 2**64 if h >= 2**63 else h
            meta[f"{name}.{t}.rms"] = float(np.sqrt(np.mean(err.astype(np.float64) ** 2)))
            if t == "q8_0":  # gguf-py's quantizer, bit-exact to ggml-quants.c by its own account
                g = GG.quants.quantize(part.reshape(shp), GG.GGMLQuantizationType.Q8_0).tobytes()
                assert g == raw, f"{name}: gguf-py Q8_0 differs from quant_ref"
            if t == "q4_0":  # gguf-py emulates an FMA build of ggml; count where that differs
                g = GG.quants.quantize(part.reshape(shp), GG.GGMLQuantizationType.Q4_0).tobytes()
                gb = np.frombuffer(g, np.uint8).reshape(-1, 18)
                ob = np.frombuffer(raw, np.uint8).reshape(-1, 18)
                gg_q4_0_diff += int((gb != ob).any(axis=1).sum())
        print(f"  13B layer {name}: rms q8_0 {meta[f'{name}.q8_0.rms']:.3g} "
              f"q4_0 {meta[f'{name}.q4_0.rms']:.3g} q4_k {meta[f'{name}.q4_k.rms']:.3g}", flush=True)
    meta["layer.gguf_py_q4_0_diff_blocks"] = gg_q4_0_diff
    print(f"  gguf-py Q4_0 (FMA emulation) differs in {gg_q4_0_diff} blocks of the layer")
    write_gguf(os.path.join(OUT, "layer13b_ref.gguf"), meta, [])


# ---------------------------------------------------------------- bad containers
def raw_gguf(tensors, data_len=None):
    """A minimal GGUF v3 with raw (name, dims (GGUF order), type id, offset) and zero
    data; data_len: bytes of data written (default: enough for every tensor)."""
    head = bytearray(struct.pack("<IIQQ", 0x46554747, 3, len(tensors), 1))
    key = b"general.alignment"
    head += struct.pack("<Q", len(key)) + key + struct.pack("<II", 4, 32)
    for name, dims, tid, off in tensors:
        nb = name.encode()
        head += struct.pack("<Q", len(nb)) + nb + struct.pack("<I", len(dims))
        for d in dims:
            head += struct.pack("<Q", d)
        head += struct.pack("<IQ", tid, off)
    head += b"\0" * ((-len(head)) % 32)
    return bytes(head) + b"\0" * (data_len if data_len is not None else 4096)


def make_bad():
    files = {
        # 64 x 64 Q8_0 needs 4352 bytes; the file holds 1000
        "bad_q8_0_short.gguf": raw_gguf([("blk.short.weight", [64, 64], 8, 0)], 1000),
        # a Q4_0 row of 40 values (not a multiple of 32)
        "bad_q4_0_row.gguf": raw_gguf([("blk.row40.weight", [40, 2], 2, 0)]),
        # a Q4_K row of 32 values (not a multiple of 256)
        "bad_q4_k_row.gguf": raw_gguf([("blk.row32.weight", [32, 8], 12, 0)]),
        # type id 13 (Q5_K): not a type this build knows
        "bad_type.gguf": raw_gguf([("blk.q5k.weight", [256, 2], 13, 0)]),
    }
    os.makedirs(FUZZ, exist_ok=True)
    for n, b in files.items():
        for d in (OUT, FUZZ):
            with open(os.path.join(d, n if d == OUT else "quant_" + n), "wb") as f:
                f.write(b)
    # a well-formed file with every quantized type, for the corpus
    x = sxrand.uniform(2 * 512, 3, -1, 1).reshape(2, 512)
    write_gguf(os.path.join(FUZZ, "quant_types.gguf"), {"k": 1},
               [(t, x, t) for t in quant_ref.QUANT_TYPES])


def main():
    global GG
    import gguf
    GG = gguf
    os.makedirs(OUT, exist_ok=True)
    write_gguf(os.path.join(OUT, "rows.gguf"), {"rows.n": 64}, make_rows())
    print(f"  rows.gguf: 64 rows x 256, {len(quant_ref.QUANT_TYPES)} types, equal to gguf-py")
    print(f"  policy.gguf: {make_policy()} cases")
    tmp = tempfile.mkdtemp(prefix="seedx_quant_fx_")
    try:
        make_tiny_llama(tmp)
    finally:
        shutil.rmtree(tmp)
    make_bad()
    make_layer13b()
    return 0


if __name__ == "__main__":
    sys.exit(main())
