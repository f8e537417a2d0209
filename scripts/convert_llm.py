"""llm: Hugging Face Llama folder (config.json + .bin or .safetensors shards) -> GGUF.

    python scripts/convert.py llm HF_DIR OUT.gguf [--dtype f32|f16|bf16]

HF_DIR is what LlamaForCausalLM.save_pretrained writes: config.json and
pytorch_model.bin / pytorch_model-0000k-of-0000n.bin (+ pytorch_model.bin.index.json)
or model.safetensors / model-0000k-of-0000n.safetensors (+ model.safetensors.index.json).
Tensors keep their original names (model.layers.0.self_attn.q_proj.weight, ...),
in a canonical order (embed_tokens, layers by index, norm, lm_head), so a sharded and
an unsharded save of the same model give byte-identical files. Rotary inv_freq
buffers are skipped. Matrices are stored in --dtype (default f16); 1-D tensors (norm
weights) always stay F32. With a quantized --dtype (q8_0, q4_0, q4_k) the matrices the
policy of scripts/quant_ref.py names are quantized (lm_head q8_0) and the others F16.
Metadata:

  seedx.llm.hidden, .layers, .heads, .kv_heads, .ffn, .vocab,
  seedx.llm.max_position_embeddings, .rms_eps, .rope_theta (10000 when absent),
  seedx.llm.bos_id, .eos_id, .pad_id (-1 when absent), seedx.llm.source_dtype

Streaming: nothing is loaded whole (scripts/sxckpt.py reads every format by offset);
peak memory is a few slices of 4 Mi elements, independent of the checkpoint and
tensor sizes.
"""
import json
import os
import re

import quant_ref
import sxckpt
from sxgguf import WEIGHT_TYPES, write_gguf_stream


def add_args(p):
    p.add_argument("src", help="Hugging Face model folder (config.json + weight shards)")
    p.add_argument("out", help="output .gguf")
    p.add_argument("--dtype", choices=WEIGHT_TYPES, default="f16",
                   help="storage type of the matrices (default f16)")


def checkpoint_tensors(src):
    """{name: Tensor} over every shard of the folder (prefers safetensors)."""
    return sxckpt.read_folder(src, sxckpt.HF_LAYOUTS)


# ---------------------------------------------------------------- config
def read_config(src):
    p = os.path.join(src, "config.json")
    if not os.path.exists(p):
        raise ValueError(f"{src}: config.json not found")
    with open(p) as f:
        c = json.load(f)
    act = c.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"{p}: hidden_act '{act}' is not supported (only silu)")
    if c.get("rope_scaling"):
        raise ValueError(f"{p}: rope_scaling {c['rope_scaling']} is not supported")
    heads = int(c["num_attention_heads"])
    kv = c.get("num_key_value_heads")
    cfg = dict(hidden=int(c["hidden_size"]), layers=int(c["num_hidden_layers"]), heads=heads,
               kv_heads=int(kv) if kv is not None else heads, ffn=int(c["intermediate_size"]),
               vocab=int(c["vocab_size"]), max_pos=int(c.get("max_position_embeddings", 2048)),
               rms_eps=float(c.get("rms_norm_eps", 1e-6)),
               rope_theta=float(c.get("rope_theta", 10000.0)),
               tie=bool(c.get("tie_word_embeddings", False)))
    for k in ("bos", "eos", "pad"):
        v = c.get(f"{k}_token_id")
        cfg[k] = int(v) if isinstance(v, int) else -1
    if cfg["hidden"] % heads or heads % cfg["kv_heads"]:
        raise ValueError(f"{p}: hidden_size {cfg['hidden']} / heads {heads} / "
                         f"kv heads {cfg['kv_heads']} are inconsistent")
    return cfg


def expected_shapes(cfg):
    D, F, V = cfg["hidden"], cfg["ffn"], cfg["vocab"]
    hd = D // cfg["heads"]
    kvd = cfg["kv_heads"] * hd
    exp = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,), "lm_head.weight": (V, D)}
    for i in range(cfg["layers"]):
        p = f"model.layers.{i}."
        exp.update({p + "input_layernorm.weight": (D,), p + "post_attention_layernorm.weight": (D,),
                    p + "self_attn.q_proj.weight": (D, D), p + "self_attn.k_proj.weight": (kvd, D),
                    p + "self_attn.v_proj.weight": (kvd, D), p + "self_attn.o_proj.weight": (D, D),
                    p + "mlp.gate_proj.weight": (F, D), p + "mlp.up_proj.weight": (F, D),
                    p + "mlp.down_proj.weight": (D, F)})
    return exp


def order_key(name):
    m = re.match(r"model\.layers\.(\d+)\.(.*)", name)
    if name == "model.embed_tokens.weight":
        return (0, 0, name)
    if m:
        return (1, int(m.group(1)), m.group(2))
    if name == "model.norm.weight":
        return (2, 0, name)
    return (3, 0, name)


# ---------------------------------------------------------------- main
def convert(src, out, dtype="f16", verbose=True):
    cfg = read_config(src)
    tens = checkpoint_tensors(src)
    tens = {k: v for k, v in tens.items() if not k.endswith("rotary_emb.inv_freq")}
    exp = expected_shapes(cfg)
    if "lm_head.weight" not in tens and cfg["tie"] and "model.embed_tokens.weight" in tens:
        e = tens["model.embed_tokens.weight"]
        tens["lm_head.weight"] = e.view(name="lm_head.weight")
    for k, shp in exp.items():
        if k not in tens:
            raise ValueError(f"{src}: tensor '{k}' is missing (config: {cfg['layers']} layers)")
        if tens[k].shape != shp:
            raise ValueError(f"{src}: tensor '{k}' has shape {list(tens[k].shape)}, expected "
                             f"{list(shp)} from config.json")
    extra = sorted(set(tens) - set(exp))
    if extra:
        raise ValueError(f"{src}: unexpected tensor '{extra[0]}' (config.json says "
                         f"{cfg['layers']} layers)")
    names = sorted(tens, key=order_key)
    src_dtypes = sorted({tens[k].dtype for k in names})
    md = {"general.architecture": "llama",
          "seedx.llm.hidden": cfg["hidden"], "seedx.llm.layers": cfg["layers"],
          "seedx.llm.heads": cfg["heads"], "seedx.llm.kv_heads": cfg["kv_heads"],
          "seedx.llm.ffn": cfg["ffn"], "seedx.llm.vocab": cfg["vocab"],
          "seedx.llm.max_position_embeddings": cfg["max_pos"], "seedx.llm.rms_eps": cfg["rms_eps"],
          "seedx.llm.rope_theta": cfg["rope_theta"], "seedx.llm.bos_id": cfg["bos"],
          "seedx.llm.eos_id": cfg["eos"], "seedx.llm.pad_id": cfg["pad"],
          "seedx.llm.source_dtype": ",".join(src_dtypes)}
    specs = [(k, tens[k].shape, quant_ref.storage_type(k, tens[k].shape, dtype)
              if len(tens[k].shape) > 1 else "f32") for k in names]
    total = write_gguf_stream(out, md, [(k, tens[k], tt) for k, _, tt in specs])
    if verbose:
        print(f"wrote {out}: {len(specs)} tensors, {total / 1e9:.3f} GB of data ({dtype})")
    return cfg


def run(args):
    convert(args.src, args.out, args.dtype)
