"""vit: Qwen-VL visual encoder (qwen_vit_G.pt or a Qwen-VL-Chat folder) -> GGUF.

    python scripts/convert.py vit SRC OUT.gguf [--dtype f32|f16|bf16]
                                  [--config CFG] [--heads H] [--image-size S]

SRC is either
  - the state dict SEED-X's src/tools/reload_qwen_vit.py writes (qwen_vit_G.pt:
    torch.save of Qwen-VL-Chat's transformer.visual, keys without prefix), or
  - a Qwen-VL-Chat Hugging Face folder (pytorch_model*.bin or *.safetensors,
    sharded with an index or single); keys under `transformer.visual.` are taken
    and the prefix stripped. Its config.json "visual" entry gives the config.
Tensors keep their original names. Checkpoints are read tensor by tensor
(scripts/sxckpt.py), so memory stays at one slice of one tensor.

Hyperparameters (metadata seedx.vit.*): patch_size, width, layers, mlp_width,
output_dim, n_queries and pos_grid come from tensor shapes; heads and image_size
cannot be inferred and come from --heads/--image-size, else from --config (the
SEED-X yaml configs/visual_encoder/qwen_vitg_448.yaml, or a JSON with the same
keys, or a Qwen-VL config.json), else from the HF folder's config.json, else
the qwen_vitg_448.yaml values when the shapes are those of ViT-bigG (width 1664).
pool_heads = output_dim // 128 and ln_eps = 1e-6, as the official class computes.

--dtype applies to the matrices (conv1, attention/MLP/pool projections, proj); a
quantized --dtype (q8_0, q4_0, q4_k) quantizes the blocks' matrices (scripts/quant_ref.py
policy) and stores the other matrices F16;
norm weights, biases, positional tables and the pool queries stay float32.
The official file holds bfloat16 values, so --dtype bf16 is lossless for it.
"""
import json
import math
import os

import quant_ref
import sxckpt
from sxgguf import WEIGHT_TYPES, write_gguf_stream

PREFIX = "transformer.visual."
# configs/visual_encoder/qwen_vitg_448.yaml (SEED-X)
VITG_448 = dict(heads=16, image_size=448, layers=48, mlp_ratio=4.9231, output_dim=4096,
                patch_size=14, width=1664)
F32_ALWAYS = ("positional_embedding", "attn_pool.query", "attn_pool.pos_embed")


def add_args(p):
    p.add_argument("src", help="qwen_vit_G.pt (state dict) or a Qwen-VL-Chat folder")
    p.add_argument("out", help="output .gguf")
    p.add_argument("--dtype", choices=WEIGHT_TYPES, default="f32",
                   help="storage type of the matrices (default f32)")
    p.add_argument("--config", help="SEED-X visual encoder yaml / JSON / Qwen-VL config.json")
    p.add_argument("--heads", type=int, help="attention heads of the ViT blocks")
    p.add_argument("--image-size", type=int, help="input size the model was trained for")


# ---------------------------------------------------------------- reading
def read_file(path):
    return sxckpt.read_file(path)


def read_hf_folder(folder):
    """Visual tensors of a Qwen-VL-Chat folder, prefix stripped."""
    tens = sxckpt.read_folder(folder, sxckpt.HF_LAYOUTS, want=lambda k: k.startswith(PREFIX))
    out = {}
    for k, t in tens.items():
        out[k[len(PREFIX):]] = t.view(name=k[len(PREFIX):])
    if not out:
        raise ValueError(f"{folder}: no tensors named {PREFIX}*")
    return out


def load_config(path):
    with open(path) as f:
        text = f.read()
    if path.endswith(".json"):
        c = json.loads(text)
        return c.get("visual", c)
    c = {}  # the flat `key: value` yaml the SEED-X configs use
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        if ":" not in line or line.startswith((" ", "\t")):
            continue
        k, v = (s.strip() for s in line.split(":", 1))
        k = k.strip('"')
        try:
            c[k] = int(v)
        except ValueError:
            try:
                c[k] = float(v)
            except ValueError:
                c[k] = v
    return c


# ---------------------------------------------------------------- hyperparameters
def _shape(tensors, name):
    if name not in tensors:
        raise ValueError(f"tensor '{name}' missing from the checkpoint")
    return tensors[name].shape


def infer_config(tensors, cfg):
    """Sizes from shapes, checked against cfg (dict with heads/image_size/...)."""
    w = _shape(tensors, "conv1.weight")
    if len(w) != 4 or w[1] != 3 or w[2] != w[3]:
        raise ValueError(f"tensor 'conv1.weight' has shape {list(w)}, expected [width,3,p,p]")
    width, patch = w[0], w[2]
    blocks = {int(k.split(".")[2]) for k in tensors if k.startswith("transformer.resblocks.")}
    layers = len(blocks)
    if blocks != set(range(layers)) or layers == 0:
        raise ValueError(f"transformer.resblocks indices are not 0..n-1: {sorted(blocks)}")
    mlp_width = _shape(tensors, "transformer.resblocks.0.mlp.c_fc.weight")[0]
    q = _shape(tensors, "attn_pool.query")
    n_queries, output_dim = q[0], q[1]
    pos = _shape(tensors, "positional_embedding")[0]
    pos_grid = int(math.isqrt(pos))
    if pos_grid * pos_grid != pos or int(math.isqrt(n_queries)) ** 2 != n_queries:
        raise ValueError(f"positional_embedding rows {pos} / queries {n_queries} are not square")
    known = dict(patch_size=patch, width=width, layers=layers, output_dim=output_dim,
                 n_queries=n_queries)
    for k, v in known.items():
        if k in cfg and int(cfg[k]) != v:
            raise ValueError(f"config says {k} = {cfg[k]} but the tensors say {v}")
    if "mlp_ratio" in cfg and int(width * float(cfg["mlp_ratio"])) != mlp_width:
        raise ValueError(f"config mlp_ratio {cfg['mlp_ratio']} gives MLP width "
                         f"{int(width * float(cfg['mlp_ratio']))}, tensors have {mlp_width}")
    heads = cfg.get("heads")
    image_size = cfg.get("image_size")
    if heads is None and width == VITG_448["width"]:
        heads = VITG_448["heads"]
    if image_size is None and width == VITG_448["width"]:
        image_size = VITG_448["image_size"]
    if heads is None or image_size is None:
        raise ValueError("heads / image_size cannot be inferred from the tensors: pass --heads and "
                         "--image-size or --config")
    heads, image_size = int(heads), int(image_size)
    if heads <= 0 or width % heads:
        raise ValueError(f"width {width} is not divisible by heads {heads}")
    pool_heads = output_dim // 128
    if pool_heads <= 0 or output_dim % pool_heads:
        raise ValueError(f"output_dim {output_dim}: pool heads output_dim // 128 = {pool_heads} unusable")
    return dict(image_size=image_size, patch_size=patch, width=width, layers=layers, heads=heads,
                mlp_width=mlp_width, mlp_ratio=float(cfg.get("mlp_ratio", mlp_width / width)),
                output_dim=output_dim, n_queries=n_queries, pool_heads=pool_heads,
                pos_grid=pos_grid, ln_eps=1e-6)


def read_source(src, config=None, heads=None, image_size=None):
    """({name: sxckpt.Tensor}, hyperparameters) of a .pt file or a Qwen-VL-Chat folder."""
    cfg = {}
    if not os.path.exists(src):
        raise FileNotFoundError(f"{src}: no such file or folder")
    if os.path.isdir(src):
        tensors = read_hf_folder(src)
        cj = os.path.join(src, "config.json")
        if os.path.exists(cj):
            cfg.update(load_config(cj))
    else:
        tensors = read_file(src)
        if any(k.startswith(PREFIX) for k in tensors):  # a whole-model file
            tensors = {k[len(PREFIX):]: t.view(name=k[len(PREFIX):]) for k, t in tensors.items()
                   if k.startswith(PREFIX)}
    if config:
        cfg.update(load_config(config))
    if heads:
        cfg["heads"] = heads
    if image_size:
        cfg["image_size"] = image_size
    return tensors, infer_config(tensors, cfg)


def expected_shapes(h):
    W, M, E, P = h["width"], h["mlp_width"], h["output_dim"], h["patch_size"]
    s = {"conv1.weight": (W, 3, P, P), "positional_embedding": (h["pos_grid"] ** 2, W),
         "ln_pre.weight": (W,), "ln_pre.bias": (W,), "ln_post.weight": (E,), "ln_post.bias": (E,),
         "proj": (E, E), "attn_pool.query": (h["n_queries"], E), "attn_pool.pos_embed": (h["n_queries"], E),
         "attn_pool.attn.in_proj_weight": (3 * E, E), "attn_pool.attn.in_proj_bias": (3 * E,),
         "attn_pool.attn.out_proj.weight": (E, E), "attn_pool.attn.out_proj.bias": (E,),
         "attn_pool.ln_q.weight": (E,), "attn_pool.ln_q.bias": (E,),
         "attn_pool.ln_kv.weight": (E,), "attn_pool.ln_kv.bias": (E,)}
    if W != E:
        s["attn_pool.kv_proj.weight"] = (E, W)
    for i in range(h["layers"]):
        p = f"transformer.resblocks.{i}."
        s.update({p + "ln_1.weight": (W,), p + "ln_1.bias": (W,), p + "ln_2.weight": (W,),
                  p + "ln_2.bias": (W,), p + "attn.in_proj.weight": (3 * W, W),
                  p + "attn.in_proj.bias": (3 * W,), p + "attn.out_proj.weight": (W, W),
                  p + "attn.out_proj.bias": (W,), p + "mlp.c_fc.weight": (M, W),
                  p + "mlp.c_fc.bias": (M,), p + "mlp.c_proj.weight": (W, M), p + "mlp.c_proj.bias": (W,)})
    return s


def metadata(h):
    m = {"general.architecture": "seedx-vit", "general.name": "Qwen-VL ViT with attention pool"}
    for k in ("image_size", "patch_size", "width", "layers", "heads", "mlp_width", "output_dim",
              "n_queries", "pool_heads", "pos_grid"):
        m["seedx.vit." + k] = int(h[k])
    m["seedx.vit.mlp_ratio"] = float(h["mlp_ratio"])
    m["seedx.vit.ln_eps"] = float(h["ln_eps"])
    m["seedx.vit.image_mean"] = [0.48145466, 0.4578275, 0.40821073]
    m["seedx.vit.image_std"] = [0.26862954, 0.26130258, 0.27577711]
    return m


def convert(src, out, dtype="f32", config=None, heads=None, image_size=None, quiet=False):
    tensors, h = read_source(src, config, heads, image_size)
    want = expected_shapes(h)
    for k, s in want.items():
        if k not in tensors:
            raise ValueError(f"tensor '{k}' missing from {src}")
        if tuple(tensors[k].shape) != s:
            raise ValueError(f"tensor '{k}' has shape {list(tensors[k].shape)}, expected {list(s)}")
    extra = sorted(set(tensors) - set(want))
    if extra and not quiet:
        print(f"convert vit: note: keeping {len(extra)} extra tensors: {', '.join(extra[:5])}")
    entries = []
    for k in list(want) + extra:
        t = tensors[k]
        tt = "f32" if (len(t.shape) < 2 or k in F32_ALWAYS) else quant_ref.storage_type(k, t.shape, dtype)
        entries.append((k, t, tt))
    write_gguf_stream(out, metadata(h), entries, finite=True)
    if not quiet:
        print(f"wrote {out}: {len(entries)} tensors, {os.path.getsize(out)} bytes, "
              f"width {h['width']} layers {h['layers']} heads {h['heads']} -> "
              f"{h['n_queries']}x{h['output_dim']}")
    return h


def run(args):
    convert(args.src, args.out, args.dtype, args.config, args.heads, args.image_size)
