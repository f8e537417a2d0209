"""detokenizer: SEED-X de-tokenizer checkpoint (seed_detokenizer/{first,second}_stage/pytorch_model.bin) -> GGUF with the ResamplerXLV2 adapter.

    python scripts/convert.py detokenizer CKPT OUT.gguf [--dtype f32|f16|bf16] [--heads 16]

Keeps the `resampler.*` tensors under their original names (the `unet.*` keys
are the UNet's: see `convert.py unet --detokenizer`). heads / normalize are
not recoverable from tensor shapes; the defaults are the released config
(configs/sdxl_adapter/*.yaml: heads 16, normalize False)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sxgguf import write_gguf  # noqa: E402


def add_args(p):
    p.add_argument("ckpt", help="pytorch_model.bin of a SEED-X de-tokenizer stage")
    p.add_argument("out", help="output .gguf")
    p.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--normalize", action="store_true", help="the adapter config's normalize: True")
    p.add_argument("--prefix", default="resampler.")


def run(a):
    import torch
    if not os.path.isfile(a.ckpt):
        raise OSError(f"{a.ckpt}: no such file")
    sd = torch.load(a.ckpt, map_location="cpu")
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    keys = sorted(k for k in sd if k.startswith(a.prefix))
    if not keys:
        raise KeyError(f"{a.ckpt}: no tensors named '{a.prefix}*' (found e.g. {list(sd)[:3]})")
    need = ["latents", "proj_in.weight", "proj_in.bias", "norm_out.weight", "unet_proj_1.weight",
            "unet_proj_2.weight", "unet_attnpool.positional_embedding", "layers.0.0.to_q.weight"]
    missing = [a.prefix + n for n in need if a.prefix + n not in sd]
    if missing:
        raise KeyError(f"{a.ckpt}: missing {', '.join(missing)}")
    tensors = []
    for k in keys:
        t = sd[k].detach().to(torch.float32).numpy()
        # vectors stay F32 (norms, biases, tables); matrices take --dtype
        tensors.append((k, t, a.dtype if t.ndim == 2 and "positional_embedding" not in k else "f32"))
    meta = {"general.architecture": "seedx-detokenizer", "seedx.detok.heads": int(a.heads),
            "seedx.detok.normalize": int(bool(a.normalize)), "seedx.detok.eps": 1e-5,
            "seedx.detok.source": os.path.basename(a.ckpt)}
    write_gguf(a.out, meta, tensors)
    print(f"{a.out}: {len(tensors)} tensors ({a.dtype})")
