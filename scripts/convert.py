#!/usr/bin/env python3
"""seedx.c converter: official checkpoints -> GGUF containers.

One command for a whole model directory (what `seedx chat|generate|edit|...`
loads):

    python scripts/convert.py --pretrained DIR --variant seed-x-i|seed-x|seed-x-edit \
                              --out models/seed-x-i [--dtype f16|bf16|f32|q8_0|q4_0|q4_k] [--stage2]

DIR holds the official downloads (SEED-X README): seed_x*/agent + llm,
seed_detokenizer/{first,second}_stage, cvlm_llama2_tokenizer_100img_and_224loc_addpatch,
QwenViT/qwen_vit_G.pt (or Qwen-VL-Chat/), stable-diffusion-xl-base-1.0/{unet,vae,scheduler}.
Every expected file is checked before anything is converted. --stage2 also
converts the second-stage (8-channel) de-tokenizer for the non-edit variants
(needed by `seedx reconstruct --condition`); seed-x-edit always has it.

Or one component at a time:

    python scripts/convert.py COMPONENT ARGS...

Each component lives in scripts/convert_<component>.py and defines
`add_args(parser)` and `run(args)`. Run `python scripts/convert.py -h` for the list.
"""
import argparse
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from sxgguf import WEIGHT_TYPES  # noqa: E402


def components():
    return sorted(f[len("convert_"):-3] for f in os.listdir(HERE)
                  if f.startswith("convert_") and f.endswith(".py"))


VARIANTS = {"seed-x": "seed_x", "seed-x-i": "seed_x_i", "seed-x-edit": "seed_x_edit"}
TOKENIZER_DIR = "cvlm_llama2_tokenizer_100img_and_224loc_addpatch"


def pretrained_steps(a):
    """(files that must exist, [convert.py argv per output file]) of a --pretrained
    conversion; a: the parsed --pretrained options. make fullsize runs the same steps
    one component at a time."""
    pre, sub = a.pretrained, VARIANTS[a.variant]
    fdt = "f16" if a.dtype.startswith("q") else a.dtype  # components that are never quantized
    stage2 = a.stage2 or a.variant == "seed-x-edit"
    sd = os.path.join(pre, "stable-diffusion-xl-base-1.0")
    vit = os.path.join(pre, "QwenViT", "qwen_vit_G.pt")
    if not os.path.exists(vit) and os.path.isdir(os.path.join(pre, "Qwen-VL-Chat")):
        vit = os.path.join(pre, "Qwen-VL-Chat")
    st1 = os.path.join(pre, "seed_detokenizer", "first_stage", "pytorch_model.bin")
    st2 = os.path.join(pre, "seed_detokenizer", "second_stage", "pytorch_model.bin")
    need = [os.path.join(pre, TOKENIZER_DIR, "tokenizer.model"), vit,
            os.path.join(pre, sub, "agent", "pytorch_model.bin"),
            os.path.join(pre, sub, "llm", "config.json"), st1,
            os.path.join(sd, "unet", "config.json"), os.path.join(sd, "vae", "config.json"),
            os.path.join(sd, "scheduler", "scheduler_config.json")]
    if stage2:
        need.append(st2)
    m = lambda n: os.path.join(a.out, n)  # noqa: E731
    steps = [["tokenizer", os.path.join(pre, TOKENIZER_DIR), m("tokenizer.gguf")],
             ["vit", vit, m("vit.gguf"), "--dtype", a.dtype, "--heads", str(a.vit_heads),
              "--image-size", str(a.vit_image_size)],
             ["agent", os.path.join(pre, sub, "agent", "pytorch_model.bin"), m("agent.gguf"),
              "--dtype", fdt, "--input-heads", str(a.agent_input_heads),
              "--output-heads", str(a.agent_output_heads)],
             ["llm", os.path.join(pre, sub, "llm"), m("llm.gguf"), "--dtype", a.dtype],
             ["detokenizer", st1, m("detokenizer.gguf"), "--dtype", fdt, "--heads",
              str(a.detok_heads)],
             ["unet", os.path.join(sd, "unet"), m("unet.gguf"), "--detokenizer", st1, "--scheduler",
              os.path.join(sd, "scheduler"), "--dtype", fdt],
             ["vae", os.path.join(sd, "vae"), m("vae.gguf"), "--dtype", a.vae_dtype]]
    if stage2:
        steps += [["detokenizer", st2, m("detokenizer_edit.gguf"), "--dtype", fdt, "--heads",
                   str(a.detok_heads)],
                  ["unet", os.path.join(sd, "unet"), m("unet_edit.gguf"), "--detokenizer", st2,
                   "--scheduler", os.path.join(sd, "scheduler"), "--dtype", fdt]]
    return need, steps


def pretrained_parser():
    p = argparse.ArgumentParser(prog="convert.py --pretrained")
    p.add_argument("--pretrained", required=True, help="folder with the official downloads")
    p.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--dtype", default="f16", choices=WEIGHT_TYPES,
                   help="q8_0/q4_0/q4_k quantize the LLM's and ViT's matrices (scripts/quant_ref.py "
                        "says which); the other components are then F16")
    p.add_argument("--stage2", action="store_true",
                   help="also convert the 8-channel second-stage de-tokenizer (seed-x-edit: always)")
    # not recoverable from tensor shapes; defaults = the released configs
    # (qwen_vitg_448.yaml, agent_seed_x*.yaml, sdxl_adapter/*.yaml)
    p.add_argument("--vit-heads", type=int, default=16)
    p.add_argument("--vit-image-size", type=int, default=448)
    p.add_argument("--agent-input-heads", type=int, default=32)
    p.add_argument("--agent-output-heads", type=int, default=32)
    p.add_argument("--detok-heads", type=int, default=16)
    p.add_argument("--vae-dtype", default="f32", choices=("f32", "f16", "bf16"),
                   help="SDXL's VAE overflows in fp16 (diffusers upcasts it): f32 by default")
    return p


def convert_pretrained(argv):
    p = pretrained_parser()
    a = p.parse_args(argv)
    need, steps = pretrained_steps(a)
    missing = [n for n in need if not os.path.exists(n)]
    if missing:
        print("convert.py: missing from %s:\n  %s" % (a.pretrained, "\n  ".join(missing)), file=sys.stderr)
        return 1
    os.makedirs(a.out, exist_ok=True)
    for st in steps:
        print("== " + " ".join(st[:1] + [os.path.basename(x) for x in st[1:3]]), flush=True)
        rc = main(st)
        if rc:
            return rc
    print(f"model directory {a.out} ready (seedx inspect {a.out})")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if any(x == "--pretrained" or x.startswith("--pretrained=") for x in argv):
        return convert_pretrained(argv)
    p = argparse.ArgumentParser(prog="convert.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="component", required=True)
    mods = {}
    for c in components():
        m = importlib.import_module("convert_" + c)
        sp = sub.add_parser(c, help=(m.__doc__ or "").strip().split("\n")[0])
        m.add_args(sp)
        mods[c] = m
    args = p.parse_args(argv)
    try:
        mods[args.component].run(args)
    except (OSError, ValueError, KeyError) as e:
        print(f"convert.py {args.component}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
