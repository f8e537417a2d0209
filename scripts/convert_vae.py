"""vae: diffusers AutoencoderKL folder (SDXL VAE) -> GGUF.

    python scripts/convert.py vae VAE_DIR OUT.gguf [--dtype f32|f16|bf16] [--variant fp16]

VAE_DIR is a diffusers `vae` folder: config.json plus the weights as
diffusion_pytorch_model.safetensors, diffusion_pytorch_model.fp16.safetensors
(the fp16 variant, also what the SDXL "fp16-fix" VAE ships) or
diffusion_pytorch_model[.fp16].bin. VAE_DIR may also be the weights file itself
when config.json sits next to it.

Tensor names stay the diffusers keys (encoder.*, decoder.*, quant_conv.*,
post_quant_conv.*). The mid-block attention is always stored under the
current names to_q / to_k / to_v / to_out.0: checkpoints saved with the legacy
names query / key / value / proj_attn are renamed here (as diffusers'
_convert_deprecated_attention_blocks does when it loads them), and 1x1-conv
shaped [C,C,1,1] attention matrices are reshaped to [C,C]. The C loader only
knows the current names.

--dtype sets the storage type of the matrices and conv kernels (ndim >= 2);
biases and norm weights stay float32. Default f32 (diffusers runs the SDXL
VAE in float32: force_upcast).

Metadata (seedx.vae.*): in_channels, out_channels, latent_channels,
block_out_channels [i32], layers_per_block, norm_num_groups, norm_eps (1e-6,
fixed in diffusers' Encoder/Decoder), act_fn, down_block_types,
up_block_types, mid_block_add_attention, scaling_factor, shift_factor (only if
the config has a non-null one), force_upcast, sample_size (tiling tile size in
pixels), source_dtype.
"""
import json
import os

import sxckpt
from sxgguf import FLOAT_TYPES, write_gguf_stream

WEIGHT_FILES = ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"]
LEGACY = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def add_args(p):
    p.add_argument("src", help="diffusers vae folder (config.json + weights) or the weights file")
    p.add_argument("out", help="output .gguf")
    p.add_argument("--dtype", default="f32", choices=FLOAT_TYPES,
                   help="storage type of matrices / conv kernels (default f32)")
    p.add_argument("--variant", default=None, help="prefer diffusion_pytorch_model.<variant>.* (e.g. fp16)")


def _find_weights(src, variant):
    if os.path.isfile(src):
        return os.path.dirname(os.path.abspath(src)), src
    if not os.path.isdir(src):
        raise ValueError(f"{src}: no such folder or file")
    files, _, what = sxckpt.folder_files(src, sxckpt.diffusers_layouts(variant))
    if not files:
        raise ValueError(f"{src}: none of {', '.join(WEIGHT_FILES)} found")
    return src, os.path.join(src, what)


def _load_state(path):
    """Returns {key: sxckpt.Tensor} and the source dtype name(s)."""
    sd = sxckpt.read_file(path)
    return sd, ",".join(sorted({t.dtype for t in sd.values()}))


def rename_legacy(sd):
    """query/key/value/proj_attn -> to_q/to_k/to_v/to_out.0; [C,C,1,1] -> [C,C]."""
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if "attentions" in parts and len(parts) >= 2 and parts[-2] in LEGACY:
            k = ".".join(parts[:-2] + [LEGACY[parts[-2]], parts[-1]])
        if ".attentions." in k and any(s in k for s in (".to_q.", ".to_k.", ".to_v.", ".to_out.0.")) \
                and v.ndim == 4 and v.shape[2:] == (1, 1):
            v = v.view(shape=(v.shape[0], v.shape[1]))
        if k in out:
            raise ValueError(f"key {k} present under both the legacy and the current name")
        out[k] = v.view(name=k)
    return out


def plan(src, dtype="f32", variant=None):
    """(metadata, [(name, sxckpt.Tensor, type)]) of a VAE folder or weights file."""
    folder, wpath = _find_weights(src, variant)
    cpath = os.path.join(folder, "config.json")
    if not os.path.isfile(cpath):
        raise ValueError(f"{cpath}: missing (the VAE config)")
    with open(cpath) as f:
        cfg = json.load(f)
    cls = cfg.get("_class_name", "AutoencoderKL")
    if cls != "AutoencoderKL":
        raise ValueError(f"{cpath}: _class_name is {cls}, expected AutoencoderKL")
    boc = [int(c) for c in cfg.get("block_out_channels", [64])]
    n = len(boc)
    down = list(cfg.get("down_block_types", ["DownEncoderBlock2D"]))
    up = list(cfg.get("up_block_types", ["UpDecoderBlock2D"]))
    if down != ["DownEncoderBlock2D"] * n or up != ["UpDecoderBlock2D"] * n:
        raise ValueError(f"{cpath}: only DownEncoderBlock2D/UpDecoderBlock2D x {n} are supported, got {down} / {up}")
    act = cfg.get("act_fn", "silu")
    if act not in ("silu", "swish"):
        raise ValueError(f"{cpath}: act_fn {act} not supported (silu only)")
    ss = cfg.get("sample_size", 32)
    if isinstance(ss, (list, tuple)):
        ss = ss[0]
    meta = {
        "general.architecture": "seedx.vae",
        "seedx.vae.in_channels": int(cfg.get("in_channels", 3)),
        "seedx.vae.out_channels": int(cfg.get("out_channels", 3)),
        "seedx.vae.latent_channels": int(cfg.get("latent_channels", 4)),
        "seedx.vae.block_out_channels": boc,
        "seedx.vae.layers_per_block": int(cfg.get("layers_per_block", 1)),
        "seedx.vae.norm_num_groups": int(cfg.get("norm_num_groups", 32)),
        "seedx.vae.norm_eps": 1e-6,
        "seedx.vae.act_fn": "silu",
        "seedx.vae.down_block_types": down,
        "seedx.vae.up_block_types": up,
        "seedx.vae.mid_block_add_attention": bool(cfg.get("mid_block_add_attention", True)),
        "seedx.vae.scaling_factor": float(cfg.get("scaling_factor", 0.18215)),
        "seedx.vae.force_upcast": bool(cfg.get("force_upcast", True)),
        "seedx.vae.sample_size": int(ss),
    }
    if cfg.get("shift_factor") is not None:
        meta["seedx.vae.shift_factor"] = float(cfg["shift_factor"])
    sd, src_dtype = _load_state(wpath)
    meta["seedx.vae.source_dtype"] = src_dtype
    sd = rename_legacy(sd)
    tensors = [(k, sd[k], dtype if sd[k].ndim >= 2 else "f32") for k in sorted(sd)]
    return meta, tensors


def build(src, dtype="f32", variant=None):
    """plan() with every tensor loaded as a float32 ndarray."""
    meta, tensors = plan(src, dtype, variant)
    return meta, [(k, t.load(), tt) for k, t, tt in tensors]


def run(args):
    meta, tensors = plan(args.src, args.dtype, args.variant)
    write_gguf_stream(args.out, meta, tensors)
    nparam = sum(t.numel for _, t, _ in tensors)
    print(f"wrote {args.out}: {len(tensors)} tensors, {nparam} parameters ({args.dtype})")
