"""agent: SEED-X agent checkpoint (seed_x{,_i,_edit}/agent/pytorch_model.bin) -> GGUF.

    python scripts/convert.py agent CKPT OUT.gguf [--dtype f32|f16|bf16]
           [--input-heads 32] [--output-heads 32]

Keeps the original keys: input_resampler.*, output_resampler.* (Qwen-VL `Resampler`:
query, pos_embed, kv_proj.weight, attn.in_proj_weight/bias, attn.out_proj.weight/bias,
ln_q.*, ln_kv.*) and patch_pos_embed [4, llm_hidden]. Matrices (kv_proj, in_proj_weight,
out_proj.weight) take --dtype; vectors and tables (query, pos_embed, patch_pos_embed,
norms, biases) stay F32. The head counts are not recoverable from shapes: the defaults
are the released configs (configs/clm_models/agent_seed_x*.yaml: 32 and 32).

Metadata: seedx.agent.input_heads, .output_heads, .eps (1e-5: the configs pass no
norm_layer, so nn.LayerNorm's default), .n_queries (64), .input_embed_dim,
.input_kv_dim, .output_embed_dim, .output_kv_dim.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sxckpt  # noqa: E402
from sxgguf import FLOAT_TYPES, write_gguf_stream  # noqa: E402

PARTS = ("query", "pos_embed", "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
         "attn.out_proj.bias", "ln_q.weight", "ln_q.bias", "ln_kv.weight", "ln_kv.bias")


def add_args(p):
    p.add_argument("ckpt", help="agent pytorch_model.bin")
    p.add_argument("out", help="output .gguf")
    p.add_argument("--dtype", default="f32", choices=FLOAT_TYPES)
    p.add_argument("--input-heads", type=int, default=32)
    p.add_argument("--output-heads", type=int, default=32)


def _check_resampler(sd, pre, heads, path):
    for k in PARTS:
        if pre + k not in sd:
            raise KeyError(f"{path}: tensor '{pre + k}' missing")
    Q, E = sd[pre + "query"].shape
    g = math.isqrt(Q)
    if g * g != Q:
        raise ValueError(f"{path}: tensor '{pre}query' has {Q} rows, not a square grid")
    kv = sd[pre + "kv_proj.weight"].shape[1] if pre + "kv_proj.weight" in sd else E
    want = {"pos_embed": (Q, E), "attn.in_proj_weight": (3 * E, E), "attn.in_proj_bias": (3 * E,),
            "attn.out_proj.weight": (E, E), "attn.out_proj.bias": (E,), "ln_q.weight": (E,),
            "ln_q.bias": (E,), "ln_kv.weight": (E,), "ln_kv.bias": (E,)}
    if kv != E:
        want["kv_proj.weight"] = (E, kv)
    for k, s in want.items():
        if tuple(sd[pre + k].shape) != s:
            raise ValueError(f"{path}: tensor '{pre + k}' has shape {list(sd[pre + k].shape)}, expected {list(s)}")
    if heads <= 0 or E % heads:
        raise ValueError(f"{path}: {pre[:-1]} width {E} is not divisible by {heads} heads")
    return Q, E, kv


def run(a):
    if not os.path.isfile(a.ckpt):
        raise OSError(f"{a.ckpt}: no such file")
    sd = sxckpt.read_file(a.ckpt)
    qi, ei, kvi = _check_resampler(sd, "input_resampler.", a.input_heads, a.ckpt)
    qo, eo, kvo = _check_resampler(sd, "output_resampler.", a.output_heads, a.ckpt)
    if "patch_pos_embed" not in sd:
        raise KeyError(f"{a.ckpt}: tensor 'patch_pos_embed' missing")
    if tuple(sd["patch_pos_embed"].shape) != (4, ei):
        raise ValueError(f"{a.ckpt}: tensor 'patch_pos_embed' has shape {list(sd['patch_pos_embed'].shape)}, "
                         f"expected [4, {ei}]")
    if kvo != ei:
        raise ValueError(f"{a.ckpt}: output_resampler kv width {kvo} != input_resampler width {ei} (LLM hidden)")
    if qi != qo:
        raise ValueError(f"{a.ckpt}: input/output resampler query counts differ ({qi} vs {qo})")
    keys = sorted(k for k in sd if k.startswith(("input_resampler.", "output_resampler.")) or k == "patch_pos_embed")
    extra = sorted(set(sd) - set(keys))
    if extra:
        print(f"warning: {a.ckpt}: ignoring {len(extra)} other tensors (e.g. {extra[:3]})")
    mats = ("kv_proj.weight", "attn.in_proj_weight", "attn.out_proj.weight")
    tensors = [(k, sd[k], a.dtype if k.endswith(mats) else "f32") for k in keys]
    meta = {"general.architecture": "seedx-agent",
            "seedx.agent.input_heads": int(a.input_heads), "seedx.agent.output_heads": int(a.output_heads),
            "seedx.agent.eps": 1e-5, "seedx.agent.n_queries": int(qi),
            "seedx.agent.input_embed_dim": int(ei), "seedx.agent.input_kv_dim": int(kvi),
            "seedx.agent.output_embed_dim": int(eo), "seedx.agent.output_kv_dim": int(kvo),
            "seedx.agent.source": os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(a.ckpt))))}
    write_gguf_stream(a.out, meta, tensors)
    print(f"{a.out}: {len(tensors)} tensors ({a.dtype}), input {kvi}->{ei} x{a.input_heads} heads, "
          f"output {kvo}->{eo} x{a.output_heads} heads, {qi} queries")
