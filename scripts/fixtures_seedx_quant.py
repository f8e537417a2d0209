#!/usr/bin/env python3
"""Quantized end-to-end SEED-X fixtures (tests/fixtures/seedx_quant/, read by tests/test_quant.c).

The tiny SEED-X of make_tiny_seedx.py has rows of 16 (LLM) and 157 (ViT MLP) values, which
no 32-value block divides, so the policy would quantize almost nothing. This variant
changes only the widths: LLM hidden 32, FFN 96 (2 heads), ViT MLP 160, the agent's
resamplers follow. It is converted with the one-command converter

    convert.py --pretrained DIR --variant seed-x-i --dtype q8_0   -> model_q8_0/
    convert.py --pretrained DIR --variant seed-x-i --dtype q4_0   -> model_q4_0/ (llm, vit)

(only what comprehension reads is kept: tokenizer, vit, agent, llm; model_q4_0 holds the
two files that differ, the test links the others). Q4_K is not exercised here: rows of
32 or 160 values fall back to Q8_0 (tests/test_quant.c's tiny Llama covers Q4_K).

expected.gguf: the PyTorch reference (scripts/ref_seedx.py, float32 weights = the bf16
values of the checkpoint) for comprehension of img_a.png (grid 1x1) and img_c.png (2x2):
prompt ids, greedy ids, per generated token the top1-top2 margin of the processed
scores, and max |logit| at the prompt end (the scale a flipped near-tie is judged on).
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import make_tiny_seedx as T  # noqa: E402
import ref_seedx  # noqa: E402
from sxgguf import write_gguf  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "seedx_quant")
IMAGES = os.path.join(ROOT, "tests", "fixtures", "seedx_e2e")
KEEP = ("tokenizer.gguf", "vit.gguf", "agent.gguf", "llm.gguf")


def quantizable_config():
    T.LLM.update(hidden_size=32, intermediate_size=96, num_attention_heads=2)
    T.VIT.update(mlp_ratio=5.0)  # MLP width 160
    T.AGENT["input_resampler"].update(embed_dim=32)
    T.AGENT["output_resampler"].update(kv_dim=32)


def convert(pre, out, dtype):
    cfg = T.config()
    a = cfg["agent"]
    r = subprocess.run([sys.executable, os.path.join(HERE, "convert.py"), "--pretrained", pre,
                        "--variant", "seed-x-i", "--out", out, "--dtype", dtype,
                        "--vit-heads", str(cfg["vit"]["heads"]),
                        "--vit-image-size", str(cfg["vit"]["image_size"]),
                        "--agent-input-heads", str(a["input_resampler"]["num_heads"]),
                        "--agent-output-heads", str(a["output_resampler"]["num_heads"]),
                        "--detok-heads", str(cfg["detokenizer"]["heads"])], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"convert.py --pretrained --dtype {dtype} failed:\n" + r.stdout + r.stderr)


def main():
    torch.set_num_threads(2)
    quantizable_config()
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    tmp = tempfile.mkdtemp(prefix="seedx_quant_")
    try:
        pre = T.build(tmp, share_edit=True)
        for dt, keep in (("q8_0", KEEP), ("q4_0", ("vit.gguf", "llm.gguf"))):
            o = os.path.join(tmp, dt)
            convert(pre, o, dt)
            dst = os.path.join(OUT, "model_" + dt)
            os.makedirs(dst)
            for f in keep:
                shutil.copy(os.path.join(o, f), os.path.join(dst, f))
        sx = ref_seedx.SeedX(pre)
        meta, q = {}, "Describe this image briefly."
        for k, img in enumerate(("img_a.png", "img_c.png")):
            im = Image.open(os.path.join(IMAGES, img)).convert("RGB")
            r = sx.comprehend(im, q, max_new_tokens=32)
            meta[f"cmp{k}.image"] = img
            meta[f"cmp{k}.prompt_ids"] = [int(i) for i in r["prompt_ids"]]
            meta[f"cmp{k}.gen_ids"] = [int(i) for i in r["gen_ids"]]
            meta[f"cmp{k}.margins"] = [float(m) for m in r["margins"]]
            lg = r["prompt_logits"]  # the scale of this model's logits
            meta[f"cmp{k}.logit_absmax"] = float(np.abs(lg).max())
            print(f"  {img}: {len(r['gen_ids'])} ids, min margin {min(r['margins']):.3g}, logits at the "
                  f"prompt end |max| {np.abs(lg).max():.3g} std {lg.std():.3g}, text {r['text'][:40]!r}")
        meta["cmp.question"] = q
        meta["cmp.n"] = 2
        write_gguf(os.path.join(OUT, "expected.gguf"), meta, [("unused", np.zeros(1, np.float32), "f32")])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tot = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"tests/fixtures/seedx_quant: {tot / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
