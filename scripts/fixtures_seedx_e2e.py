#!/usr/bin/env python3
"""End-to-end SEED-X fixtures (tests/fixtures/seedx_e2e/), for the C pipeline.

1. make_tiny_seedx.build(): a tiny SEED-X in the official pretrained/ layout (random
   bf16-exact weights, fixed seeds; --share-edit: seed_x_edit = seed_x_i, so one LLM/agent).
2. Converts every component with our converters into seedx_e2e/model/:
   tokenizer.gguf, vit.gguf, agent.gguf, llm.gguf, detokenizer.gguf + unet.gguf (stage 1:
   SDXL base + first-stage to_k/to_v), detokenizer_edit.gguf + unet_edit.gguf (stage 2),
   vae.gguf. The weights are bfloat16 values, so the BF16 containers are lossless (the
   F32 containers would be twice the size for the same numbers; the LLM alone is 4 MB).
3. Runs scripts/ref_seedx.py (the PyTorch reference following the official scripts) for
   every mode and writes <mode>.gguf with the inputs, the settings and every intermediate.
   Input images: img_a.png (320x240 -> grid 1x1), img_b.png (900x450 -> 2x1),
   img_c.png (900x900 -> 2x2). Output images are 64x64 (8x8 latents), 4 Euler steps;
   the official pipeline uses 1024x1024 and 50 steps.
Deterministic: regenerating gives byte-identical files.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import make_tiny_seedx  # noqa: E402
import ref_seedx  # noqa: E402
from sxgguf import write_gguf  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "seedx_e2e")
MODEL = os.path.join(OUT, "model")
STEPS, SIZE = 4, 64
DTYPE = "bf16"   # lossless for these weights (see make_tiny_seedx.py)


def convert(*args):
    r = subprocess.run([sys.executable, os.path.join(HERE, "convert.py")] + [str(a) for a in args],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"convert {args[0]} failed:\n{r.stdout}\n{r.stderr}")
    print(f"  convert {args[0]}: {r.stdout.strip().splitlines()[-1] if r.stdout.strip() else 'ok'}")


def convert_all(pre, cfg):
    os.makedirs(MODEL, exist_ok=True)
    sd = os.path.join(pre, "stable-diffusion-xl-base-1.0")
    st1 = os.path.join(pre, "seed_detokenizer", "first_stage", "pytorch_model.bin")
    st2 = os.path.join(pre, "seed_detokenizer", "second_stage", "pytorch_model.bin")
    m = lambda n: os.path.join(MODEL, n)  # noqa: E731
    convert("tokenizer", os.path.join(pre, cfg["tokenizer_dir"]), m("tokenizer.gguf"))
    convert("vit", os.path.join(pre, "QwenViT", "qwen_vit_G.pt"), m("vit.gguf"), "--dtype", DTYPE,
            "--heads", cfg["vit"]["heads"], "--image-size", cfg["vit"]["image_size"])
    convert("agent", os.path.join(pre, "seed_x_i", "agent", "pytorch_model.bin"), m("agent.gguf"),
            "--dtype", DTYPE, "--input-heads", cfg["agent"]["input_resampler"]["num_heads"],
            "--output-heads", cfg["agent"]["output_resampler"]["num_heads"])
    convert("llm", os.path.join(pre, "seed_x_i", "llm"), m("llm.gguf"), "--dtype", DTYPE)
    h = cfg["detokenizer"]["heads"]
    convert("detokenizer", st1, m("detokenizer.gguf"), "--dtype", DTYPE, "--heads", h)
    convert("detokenizer", st2, m("detokenizer_edit.gguf"), "--dtype", DTYPE, "--heads", h)
    sch = os.path.join(sd, "scheduler")
    convert("unet", os.path.join(sd, "unet"), m("unet.gguf"), "--detokenizer", st1, "--scheduler", sch,
            "--dtype", DTYPE)
    convert("unet", os.path.join(sd, "unet"), m("unet_edit.gguf"), "--detokenizer", st2, "--scheduler", sch,
            "--dtype", DTYPE)
    convert("vae", os.path.join(sd, "vae"), m("vae.gguf"), "--dtype", DTYPE)


def check_one_command_converter(pre, cfg, tmp):
    """`convert.py --pretrained DIR --variant ...` must write the same files as
    the per-component conversions above."""
    out = os.path.join(tmp, "one_command")
    a = cfg["agent"]
    r = subprocess.run([sys.executable, os.path.join(HERE, "convert.py"), "--pretrained", pre,
                        "--variant", "seed-x-i", "--stage2", "--out", out, "--dtype", DTYPE,
                        "--vae-dtype", DTYPE, "--vit-heads", str(cfg["vit"]["heads"]),
                        "--vit-image-size", str(cfg["vit"]["image_size"]),
                        "--agent-input-heads", str(a["input_resampler"]["num_heads"]),
                        "--agent-output-heads", str(a["output_resampler"]["num_heads"]),
                        "--detok-heads", str(cfg["detokenizer"]["heads"])], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("convert.py --pretrained failed:\n" + r.stdout + r.stderr)
    for f in sorted(os.listdir(MODEL)):
        with open(os.path.join(MODEL, f), "rb") as x, open(os.path.join(out, f), "rb") as y:
            if x.read() != y.read():
                raise SystemExit(f"convert.py --pretrained wrote a different {f}")
    print("  convert.py --pretrained: all 9 files identical")


def check_models(sx):
    """Every converted container holds exactly the weights the reference runs with
    (de-tokenizer overrides of the UNets included), so the C side loads the same model."""
    import ref_unet
    llm, agent = sx.mllm()
    pairs = {"vit.gguf": sx.vit.state_dict(), "agent.gguf": agent.state_dict(),
             "llm.gguf": {k: v for k, v in llm.state_dict().items() if not k.endswith("inv_freq")},
             "vae.gguf": sx.vae.state_dict()}
    for stage, u, d in ((1, "unet.gguf", "detokenizer.gguf"), (2, "unet_edit.gguf", "detokenizer_edit.gguf")):
        pairs[u] = sx.adapter(stage).unet.state_dict()
        pairs[d] = {"resampler." + k: v for k, v in sx.adapter(stage).resampler.state_dict().items()}
    for name, ref in pairs.items():
        _, t = ref_unet.read_gguf(os.path.join(MODEL, name))
        if set(t) != set(ref):
            raise SystemExit(f"{name}: tensor names differ from the reference: {sorted(set(t) ^ set(ref))[:6]}")
        for k, v in ref.items():
            if not np.array_equal(t[k], v.float().numpy()):
                raise SystemExit(f"{name}: tensor '{k}' differs from the reference weights")
    print(f"  {len(pairs)} converted containers hold exactly the reference weights")


def images():
    """Deterministic test pictures: random colour blocks (nearest-upscaled), which PNG stores
    in a few KB and which PIL and png.c read identically."""
    rng = np.random.default_rng(1234)
    out = {}
    for name, (w, h, k) in {"img_a.png": (320, 240, 20), "img_b.png": (900, 450, 30),
                            "img_c.png": (900, 900, 30)}.items():
        small = rng.integers(0, 256, (h // k, w // k, 3), dtype=np.uint8)
        big = np.repeat(np.repeat(small, k, axis=0), k, axis=1)
        p = os.path.join(OUT, name)
        Image.fromarray(big).save(p, compress_level=9)
        out[name] = Image.open(p).convert("RGB")
    return out


def noise(seed):
    return torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(seed))


class Case:
    def __init__(self, mode):
        self.mode, self.meta, self.t = mode, {"seedx.e2e.mode": mode}, []

    def m(self, k, v):
        self.meta["seedx.e2e." + k] = v

    def a(self, name, x, t="f32"):
        self.t.append((name, np.ascontiguousarray(np.asarray(x, dtype=np.float32)), t))

    def write(self):
        write_gguf(os.path.join(OUT, self.mode + ".gguf"), self.meta, self.t)
        n = sum(x.size * (2 if t == "f16" else 4) for _, x, t in self.t)
        print(f"  {self.mode}.gguf: {len(self.t)} tensors, {n / 1024:.0f} KiB")


def add_llm(c, r, max_new):
    c.m("prompt", r["prompt"])
    c.m("prompt_ids", [int(i) for i in r["prompt_ids"]])
    c.m("max_new_tokens", int(max_new))
    c.m("gen_ids", [int(i) for i in r["gen_ids"]])
    c.m("text", r["text"])
    c.m("text_raw", r["text_raw"])
    c.m("has_img_output", bool(r["has_img_output"]))
    c.m("min_margin", float(min(r["margins"])))
    lg = r["prompt_logits"]
    c.m("prompt_argmax", int(np.argmax(lg)))
    c.a("embeds", r["embeds"])                          # [P, hidden] spliced LLM input
    c.a("prompt_logits_sub", lg[::8])                   # logits at the prompt end, ids 0, 8, 16, ...
    c.a("prompt_logits_added", lg[32000:])              # ids 32000..32329 (all added tokens)
    if "vit" in r:
        c.m("grid", [int(r["grid"][0]) // 448, int(r["grid"][1]) // 448])
        c.m("patch_pos", [float(v) for v in r["patch_pos"].reshape(-1)])
        c.m("cmp_positions", [int(i) for i in r["cmp_positions"]])
        c.a("pixels_sub", r["pixels"][:, :, ::16, ::16])     # [N,3,28,28] of the CLIP-normalized tiles
        c.a("vit_sub", r["vit"][:, ::8])                     # [N,32,E] ViT tokens 0, 8, ..., 248
        c.a("input_resampler", r["input_resampler"])         # [N,64,hidden] before rel_pos
        c.a("rel_pos", r["rel_pos"])                         # [N,hidden]
    if r["has_img_output"]:
        c.a("gen_hidden", r["gen_hidden"])                   # [n_img,64,hidden] final-norm states
        c.a("img_gen_feat", r["img_gen_feat"])               # [n_img,64,E] output_resampler


def add_detok(c, r, stage, seed):
    c.m("stage", stage)
    c.m("steps", STEPS)
    c.m("size", SIZE)
    c.m("noise_seed", seed)
    c.m("guidance_scale", 7.5)
    if stage == 2:
        c.m("image_guidance_scale", 1.5)
    c.a("noise", r["noise"])                                 # [1,4,8,8] N(0,1), before init_noise_sigma
    c.a("timesteps", r["timesteps"])
    c.a("sigmas", r["sigmas"])
    c.a("time_ids", r["time_ids"])
    din = r["detok_in"]
    if din.shape[1] == 64:
        c.a("vit_neg", din[1])                               # [64,E] ViT(zeros) avg-pooled by 4
    else:
        c.a("detok_in_sub", din[:, ::8])                     # [2,32,E] tokens 0, 8, ... of [pos, neg]
        c.a("recon_pixels_sub", r["recon_pixels"][:, ::16, ::16])
    c.a("prompt_embeds", r["prompt_embeds"])                 # [2,64,ctx] = [pos, neg]
    c.a("pooled", r["pooled"])                               # [2,pooled]
    if "cond_latent" in r:
        c.a("cond_pixels_sub", r["cond_pixels"][:, ::2, ::2])  # [3,S/2,S/2] of the [-1,1] VAE input
        c.a("cond_latent", r["cond_latent"])                 # [1,4,s,s] latent_dist.mode(), unscaled
    c.a("eps0", r["eps0"])                                   # stage 1 [neg,pos]; stage 2 [text,image,uncond]
    c.a("latents", np.asarray(r["latents"])[:, 0])           # [steps,4,s,s] after each step (GGUF has at most 4 dims)
    c.a("image", r["image"])                                 # [3,S,S] VAE output
    c.a("image_u8", r["image_u8"], "f16")                    # [S,S,3] postprocessed 0..255 (exact in F16)


NOTES = {
    "embeds": "LLM input embeddings after splicing the image features [P, hidden]",
    "prompt_logits_sub": "raw logits at the last prompt position, ids 0, 8, 16, ... (before the processor)",
    "prompt_logits_added": "raw logits of ids 32000..32329",
    "pixels_sub": "CLIP-normalized any-res tiles (thumbnail last), every 16th pixel [N,3,28,28]",
    "vit_sub": "ViT output tokens 0, 8, ..., 248 of every tile [N,32,E]",
    "input_resampler": "agent input_resampler output, before rel_pos [N,64,hidden]",
    "rel_pos": "[x, y, 1-x, 1-y]/2 @ patch_pos_embed per tile [N,hidden]",
    "gen_hidden": "final-norm hidden states read at <img_00000>..<img_00063> [n_img,64,hidden]",
    "img_gen_feat": "output_resampler(gen_hidden) [n_img,64,E]",
    "noise": "injected N(0,1) initial latents, before * init_noise_sigma",
    "timesteps": "Euler timesteps", "sigmas": "Euler sigmas (+ final 0)",
    "time_ids": "SDXL add_time_ids (H, W, 0, 0, H, W), same for every branch",
    "vit_neg": "negative de-tokenizer input: ViT(zeros 448x448) avg-pooled by 4 along tokens [64,E]",
    "detok_in_sub": "de-tokenizer input [pos = ViT(image), neg = ViT(zeros)], un-pooled, tokens 0, 8, ... [2,32,E]",
    "recon_pixels_sub": "torchvision Resize((448,448)) bilinear + CLIP normalize of the image, every 16th pixel",
    "prompt_embeds": "ResamplerXLV2 prompt embeds [pos, neg] [2,64,out1+out2]",
    "pooled": "ResamplerXLV2 pooled embeds [pos, neg] [2,out2]",
    "cond_pixels_sub": "VaeImageProcessor.preprocess(condition resized SxS), every 2nd pixel, in [-1,1]",
    "cond_latent": "vae.encode(...).latent_dist.mode() of the condition (not scaled) [1,4,s,s]",
    "eps0": "UNet output at step 0 for the whole CFG batch: stage 1 [neg,pos], stage 2 [text,image,uncond]",
    "latents": "latents after every Euler step [steps,4,s,s]",
    "image": "VAE decode of the last latents (/scaling_factor) [3,S,S]",
    "image_u8": "VaeImageProcessor.postprocess -> uint8 [S,S,3] (stored F16, exact)",
}
# chat_*: metadata only: seedx.e2e.question.<k>, prompt_ids.<k> (decode_llava_data ids of the
# turns so far, without the final eos), gen_ids.<k>, answer.<k> (decoded without a trailing eos),
# llava_ids (the whole conversation with its final eos).


def write_readme(cfg, cases):
    L = ["# SEED-X end-to-end fixtures (generated by scripts/fixtures_seedx_e2e.py; do not edit)", "",
         "model/: the tiny SEED-X of scripts/make_tiny_seedx.py converted with scripts/convert.py "
         f"(--dtype {DTYPE}: the weights are bf16 values, so this is lossless). tiny_seedx.json: its config.",
         f"Output images {SIZE}x{SIZE} (latent {SIZE // 8}x{SIZE // 8}), {STEPS} Euler steps, guidance 7.5 "
         "(edit/recon_cond: + image guidance 1.5). The official scripts use 1024x1024 and 50 steps.",
         "Metadata seedx.e2e.*: prompt, prompt_ids (bos included), max_new_tokens, gen_ids (greedy, with",
         "SEED-X's image-token processor), text_raw (decode of gen_ids minus the 64-token image spans and <img>),",
         "text (tags removed), has_img_output, min_margin (smallest top1-top2 gap of the processed scores),",
         "grid [gw,gh], patch_pos, cmp_positions; ground: boxes / box_lengths / n_boxes; detok: stage,",
         "steps, size, noise_seed, guidance_scale, image_guidance_scale.", "", "| mode | tensors |", "|---|---|"]
    for c in cases:
        L.append(f"| {c.mode} | " + ", ".join(f"{n} {list(x.shape)}" for n, x, _ in c.t) + " |")
    L += ["", "| tensor | meaning |", "|---|---|"] + [f"| {k} | {v} |" for k, v in NOTES.items()]
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("\n".join(L) + "\n")


def llava_ids(tok, turns, n_tiles, instruction_prompt=ref_seedx.TEMPLATE_I, turn_sep="\n"):
    """The id assembly of decode_llava_data (official src/data/sft_clm.py), the
    code SEED-X-I was fine-tuned with on conversations, transcribed for the
    multi-resolution case with the image placed first (as the eval scripts do;
    training draws first/last at random): each piece tokenized on its own
    without special tokens, [bos] + pieces + [eos]."""
    image_tokens = ref_seedx.image_block(n_tiles)
    ids = []
    for idx, content in enumerate(turns):
        if idx % 2 == 0:  # USER
            if idx == 0:
                text = instruction_prompt.format_map({"instruction": image_tokens + content})
            else:
                text = turn_sep + instruction_prompt.format_map({"instruction": content})
        else:             # ASSISTANT
            text = content
        ids.extend(tok.encode(text, add_special_tokens=False))
    return [tok.bos_token_id] + ids + [tok.eos_token_id]


def chat_case(sx, name, image, img_name, questions, max_new):
    """A conversation: each turn's prompt = decode_llava_data ids of the turns so
    far without the final eos; the model's answer (greedy, image-token processor),
    decoded without a trailing eos, becomes the next assistant piece."""
    tok = sx.tok
    pixels, pos, wh = ref_seedx.anyres(image, ref_seedx.ALL_GRIDS, sx.vit_size)
    c = Case(name)
    c.m("image", img_name)
    c.m("turns", len(questions))
    turns = []
    for k, q in enumerate(questions):
        turns.append(q)
        ids = llava_ids(tok, turns, pixels.shape[0])[:-1]
        r = sx.agent_generate(ids, pixels, pos, max_new_tokens=max_new)
        gen = r["gen_ids"]
        keep = [i for i in gen if i != tok.convert_tokens_to_ids(ref_seedx.BOI)]
        assert not r["has_img_output"], "chat fixture: the tiny model generated an image"
        if keep and keep[-1] == tok.eos_token_id:
            keep = keep[:-1]
        answer = tok.decode(keep, skip_special_tokens=False)
        turns.append(answer)
        c.m(f"question.{k}", q)
        c.m(f"prompt_ids.{k}", [int(i) for i in ids])
        c.m(f"gen_ids.{k}", [int(i) for i in gen])
        c.m(f"answer.{k}", answer)
        c.m(f"min_margin.{k}", float(min(r["margins"])))
        print(f"    {name} turn {k}: {len(ids)} prompt ids, answer {answer[:30]!r}, "
              f"min margin {min(r['margins']):.4g}")
    # the whole conversation as decode_llava_data returns it (with the final eos)
    c.m("llava_ids", [int(i) for i in llava_ids(tok, turns, pixels.shape[0])])
    return c


def main():
    torch.set_num_threads(2)
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    tmp = tempfile.mkdtemp(prefix="seedx_e2e_")
    try:
        print("building the tiny SEED-X")
        pre = make_tiny_seedx.build(tmp, share_edit=True)
        cfg = make_tiny_seedx.config()
        convert_all(pre, cfg)
        check_one_command_converter(pre, cfg, tmp)
        sx = ref_seedx.SeedX(pre)
        check_models(sx)
        ims = images()
        cases = []

        for mode, img in (("cmp_1x1", "img_a.png"), ("cmp_2x1", "img_b.png"), ("cmp_2x2", "img_c.png")):
            q = "Describe this image briefly."
            r = sx.comprehend(ims[img], q, max_new_tokens=48)
            c = Case(mode)
            c.m("image", img)
            c.m("question", q)
            add_llm(c, r, 48)
            cases.append((c, r))

        # grounding (eval_img2text_seed_x.py detection flow): first caption giving a box
        for cap in ("In the background there is a car", "There is a dog", "A red ball is on the left",
                    "The window", "A person stands", "There is a tree"):
            r = sx.ground(ims["img_a.png"], cap, max_new_tokens=48)
            if r["boxes"]:
                break
        c = Case("ground")
        c.m("image", "img_a.png")
        c.m("caption", cap)
        c.m("n_boxes", len(r["boxes"]))
        c.m("box_lengths", [len(b) for b in r["boxes"]])
        c.m("boxes", [int(v) for b in r["boxes"] for v in b])
        add_llm(c, r, 48)
        cases.append((c, r))

        cap = "A red cat sitting on a wooden table."
        r = sx.text2image(cap, noise(1), forced=False, steps=STEPS, size=SIZE, max_new_tokens=120)
        c = Case("t2i")
        c.m("caption", cap)
        add_llm(c, r, 120)
        if r["has_img_output"]:
            add_detok(c, r, 1, 1)
        cases.append((c, r))

        r = sx.text2image(cap, noise(2), forced=True, steps=STEPS, size=SIZE, max_new_tokens=120)
        assert r["has_img_output"] and r["img_gen_feat"].shape[0] == 1
        c = Case("t2i_forced")
        c.m("caption", cap)
        add_llm(c, r, 120)
        add_detok(c, r, 1, 2)
        cases.append((c, r))

        ins = "Make it under the sunset"
        r = sx.edit(ims["img_a.png"], ins, noise(3), forced=True, steps=STEPS, size=SIZE, max_new_tokens=80)
        assert r["has_img_output"] and r["img_gen_feat"].shape[0] == 1
        c = Case("edit")
        c.m("image", "img_a.png")
        c.m("instruction", ins)
        add_llm(c, r, 80)
        add_detok(c, r, 2, 3)
        cases.append((c, r))

        r = sx.reconstruct(ims["img_b.png"], noise(4), steps=STEPS, size=SIZE)
        c = Case("recon")
        c.m("image", "img_b.png")
        add_detok(c, r, 1, 4)
        cases.append((c, r))

        r = sx.reconstruct(ims["img_b.png"], noise(5), condition=ims["img_a.png"], steps=STEPS, size=SIZE)
        c = Case("recon_cond")
        c.m("image", "img_b.png")
        c.m("condition", "img_a.png")
        add_detok(c, r, 2, 5)
        cases.append((c, r))

        # multi-turn chat (issue #19): the prompts of turns 2 and 3
        for name, img, qs in (("chat_2turn", "img_a.png", ["Describe this image briefly.", "What colour is it?"]),
                              ("chat_3turn", "img_c.png", ["What is in the picture?", "Where is it?",
                                                           "Tell me more."])):
            c = chat_case(sx, name, ims[img], img, qs, 24)
            cases.append((c, {}))

        write_readme(cfg, [c for c, _ in cases])
        with open(os.path.join(OUT, "tiny_seedx.json"), "w") as f:
            json.dump(cfg, f, indent=1, sort_keys=True)
            f.write("\n")
        for c, r in cases:
            c.write()
            if "gen_ids" in r:
                print(f"    ids[:8] {r['gen_ids'][:8]} text {r['text'][:40]!r} min margin {min(r['margins']):.4g}"
                      + (f" boxes {r['boxes']}" if r.get('boxes') else ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tot = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"tests/fixtures/seedx_e2e: {tot / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
