"""De-tokenizer adapter fixtures: a tiny ResamplerXLV2 with random weights
saved like seed_detokenizer/first_stage/pytorch_model.bin (resampler.* plus a
unet.* key the converter must skip), converted by scripts/convert.py to F32
and F16, with inputs and PyTorch outputs -> tests/fixtures/detok/."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from ref_detok import ResamplerXLV2, trace  # noqa: E402
from sxgguf import write_gguf  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "detok")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)
cfg = dict(dim=64, depth=2, dim_head=16, heads=4, num_queries=8, embedding_dim=48, output1_dim=24,
           output2_dim=40, ff_mult=4, normalize=False)
m = ResamplerXLV2(**cfg).eval()
with torch.no_grad():  # non-trivial norms
    for n, p in m.named_parameters():
        if "norm" in n or n.endswith(".1.0.weight") or n.endswith(".1.0.bias"):
            p.add_(torch.randn_like(p) * 0.2)
sd = {"resampler." + k: v for k, v in m.state_dict().items()}
sd["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"] = torch.randn(8, 8)
tmp = tempfile.mkdtemp()
ck = os.path.join(tmp, "pytorch_model.bin")
torch.save(sd, ck)
for dt in ("f32", "f16"):
    subprocess.run([sys.executable, os.path.join(HERE, "convert.py"), "detokenizer", ck,
                    os.path.join(OUT, f"detok_{dt}.gguf"), "--dtype", dt, "--heads", str(cfg["heads"])],
                   check=True)
T = []
meta = {"seedx.fixture": "detok"}
for n_tok in (12, 33):
    x = torch.randn(1, n_tok, cfg["embedding_dim"])
    tr = trace(m, x)
    T.append((f"x{n_tok}", x[0].numpy(), "f32"))
    for k, v in tr.items():
        T.append((f"x{n_tok}.{k}", v, "f32"))
# vit_down reference: F.avg_pool1d over tokens of [1, 256, 12]
v = torch.randn(1, 256, 12)
T.append(("vitdown.x", v[0].numpy(), "f32"))
T.append(("vitdown.y", torch.nn.functional.avg_pool1d(v.transpose(1, 2), 4, 4).transpose(1, 2)[0].numpy(), "f32"))
write_gguf(os.path.join(OUT, "expected.gguf"), meta, T)
# a broken container: one layer's to_kv has the wrong shape
bad = {k: v for k, v in sd.items() if k.startswith("resampler.")}
bad["resampler.layers.1.0.to_kv.weight"] = torch.randn(100, 64)
write_gguf(os.path.join(OUT, "bad_shape.gguf"), {"seedx.detok.heads": 4},
           [(k, t.numpy(), "f16" if t.ndim == 2 else "f32") for k, t in sorted(bad.items())])
print("detok fixtures written to", OUT)
