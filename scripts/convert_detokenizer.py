"""detokenizer: SEED-X de-tokenizer checkpoint (seed_detokenizer/{first,second}_stage/pytorch_model.bin) -> GGUF with the ResamplerXLV2 adapter.

    python scripts/convert.py detokenizer CKPT OUT.gguf [--dtype f32|f16|bf16] [--heads 16]

Keeps the `resampler.*` tensors under their original names (the `unet.*` keys
are the UNet's: see `convert.py unet --detokenizer`). heads / normalize are
not recoverable from tensor shapes; the defaults are the released config
(configs/sdxl_adapter/*.yaml: heads 16, normalize False)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sxckpt  # noqa: E402
from sxgguf import FLOAT_TYPES, write_gguf_stream  # noqa: E402


def add_args(p):
    p.add_argument("ckpt", help="pytorch_model.bin of a SEED-X de-tokenizer stage")
    p.add_argument("out", help="output .gguf")
    p.add_argument("--dtype", default="f32", choices=FLOAT_TYPES)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--normalize", action="store_true", help="the adapter config's normalize: True")
    p.add_argument("--prefix", default="resampler.")


def run(a):
    if not os.path.isfile(a.ckpt):
        raise OSError(f"{a.ckpt}: no such file")
    sd = sxckpt.read_file(a.ckpt)  # tensor by tensor: the second stage is a 10.5 GB pickle
    keys = sorted(k for k in sd if k.startswith(a.prefix))
    if not keys:
        raise KeyError(f"{a.ckpt}: no tensors named '{a.prefix}*' (found e.g. {list(sd)[:3]})")
    need = ["latents", "proj_in.weight", "proj_in.bias", "norm_out.weight", "unet_proj_1.weight",
            "unet_proj_2.weight", "unet_attnpool.positional_embedding", "layers.0.0.to_q.weight"]
    missing = [a.prefix + n for n in need if a.prefix + n not in sd]
    if missing:
        raise KeyError(f"{a.ckpt}: missing {', '.join(missing)}")
    # vectors stay F32 (norms, biases, tables); matrices take --dtype
    tensors = [(k, sd[k], a.dtype if sd[k].ndim == 2 and "positional_embedding" not in k else "f32")
               for k in keys]
    meta = {"general.architecture": "seedx-detokenizer", "seedx.detok.heads": int(a.heads),
            "seedx.detok.normalize": int(bool(a.normalize)), "seedx.detok.eps": 1e-5,
            "seedx.detok.source": os.path.basename(a.ckpt)}
    write_gguf_stream(a.out, meta, tensors)
    print(f"{a.out}: {len(tensors)} tensors ({a.dtype})")
