"""SEED-X agent-logic fixtures (seedx.c): prompts and their ids_cmp_mask,
SEED-X's image-token logits processor, tag stripping, box extraction and the
visualizer's box corners, the tile position embedding — computed the way the
official scripts do (transformers 4.30.2 tokenizer; transcriptions of
generation.py / seed_x.py / eval_img2text_seed_x_i.py) ->
tests/fixtures/seedx/logic.gguf."""
import os
import re
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fixtures_tokenizer import build_folders  # noqa: E402
from sxgguf import write_gguf  # noqa: E402
from sxrand import uniform  # noqa: E402

OUT = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "seedx", "logic.gguf")
BOI, EOI, BOP, EOP, IMG = "<img>", "</img>", "<patch>", "</patch>", "<img_{:05d}>"


def image_block(n, k=64):
    s = ""
    for _ in range(n - 1):
        s += BOP + "".join(IMG.format(i) for i in range(k)) + EOP
    return s + BOI + "".join(IMG.format(i) for i in range(k)) + EOI


def cmp_mask(tok, ids):
    ids = torch.tensor(ids)
    m = torch.zeros_like(ids, dtype=torch.bool)
    boi = torch.where(torch.logical_or(ids == tok.convert_tokens_to_ids(BOI), ids == tok.convert_tokens_to_ids(BOP)))[0].tolist()
    eoi = torch.where(torch.logical_or(ids == tok.convert_tokens_to_ids(EOI), ids == tok.convert_tokens_to_ids(EOP)))[0].tolist()
    for b, e in zip(boi, eoi):
        m[b + 1:e] = True
    return torch.where(m)[0].tolist()


def processor(img_ids, last, scores):
    scores = scores.clone()
    if last in img_ids[:-1]:
        scores[img_ids[img_ids.index(last) + 1]] = scores.max() + 10.0
    else:
        scores[torch.tensor(img_ids[1:])] = 0.0
    return scores


def extract_box(s):
    boxes = re.findall('<box_start>(.*?)<box_end>', s)
    return [[int(n) for n in re.findall(r'<loc-(\d+)>', b)] for b in boxes]


def main():
    tmp = tempfile.mkdtemp()
    _, _, tok, _, _ = build_folders(tmp)
    meta = {"seedx.fixture": "seedx-logic"}
    T = []
    # prompts: SEED-X-I template with 1..5 images, and the editing one
    questions = ["Can I conntect with an advisor on Sunday?", "Describe this image briefly.",
                 "Is there anything in the image that can protect me from catching the flu virus when I go out? Show me the location.",
                 "make it sunset", "What is in the second tile?"]
    prompts = []
    for n, q in zip((1, 2, 3, 5, 2), questions):
        prompts.append((n, "[INST] {instruction} [/INST]\n".format_map({"instruction": image_block(n) + q})))
    prompts.append((1, "Question: " + image_block(1) + "Describe this image briefly.\nAnswer:"))
    meta["prompts.n"] = len(prompts)
    for i, (n, p) in enumerate(prompts):
        ids = [tok.bos_token_id] + tok.encode(p, add_special_tokens=False)
        meta[f"prompts.{i}.text"] = p
        meta[f"prompts.{i}.n_images"] = n
        meta[f"prompts.{i}.ids"] = ids
        meta[f"prompts.{i}.cmp"] = cmp_mask(tok, ids)
        meta[f"prompts.{i}.block"] = image_block(n)
    # processor: scores from sxrand (regenerated in C), last ids of each kind
    img_ids = tok.encode(BOI + "".join(IMG.format(i) for i in range(64)) + EOI, add_special_tokens=False)
    assert len(img_ids) == 66
    V = len(tok)
    # <img>, <img_00000>, <img_00039>, <img_00063>, </img>, bos, a text piece, <img_00080> (not in L)
    lasts = [img_ids[0], img_ids[1], img_ids[40], img_ids[64], img_ids[65], 1, 29871, 32080]
    meta["proc.lasts"] = lasts
    meta["proc.img_ids"] = img_ids
    for c, last in enumerate(lasts):
        lo, hi = (-5.0, 3.0) if c != 6 else (-9.0, -1.0)  # case 6: every logit negative
        s = torch.from_numpy(uniform(V, 100 + c, lo, hi))
        o = processor(img_ids, last, s)
        meta[f"proc.{c}.range"] = [lo, hi]
        T.append((f"proc.{c}.at_L", o[torch.tensor(img_ids)].numpy(), "f32"))
        meta[f"proc.{c}.argmax"] = int(torch.argmax(o))
    # text: strip tags and boxes
    texts = ["Here is a picture.<img><img_00000></img> done</s>", "no tags", "a < b > c <x", "<<a>b>",
             "masks [[ <box_start><loc-12><loc-40><loc-100><loc-200><box_end>] and <box_start><loc-1><loc-2><loc-3><box_end>",
             "<box_start><loc-5>\n<loc-6><loc-7><loc-8><box_end> <box_start><loc-9><loc-10><loc-11><loc-12><box_end>",
             "<box_start><loc-x><loc-3><box_end><box_start><box_end>"]
    meta["text.n"] = len(texts)
    for i, t in enumerate(texts):
        meta[f"text.{i}.in"] = t
        meta[f"text.{i}.stripped"] = re.sub('<[^>]*>', '', t)
        bx = extract_box(t)
        meta[f"text.{i}.n_boxes"] = len(bx)
        meta[f"text.{i}.boxes"] = [v for b in bx for v in (b + [0, 0, 0, 0])[:4]] or [-1]
        meta[f"text.{i}.counts"] = [len(b) for b in bx] or [-1]
    # visualize_bbox corners
    rects = []
    for (b, W, H) in [((112, 112, 224, 224), 640, 480), ((12, 40, 100, 200), 1252, 1082), ((200, 3, 50, 7), 333, 517)]:
        xc, yc, bw, bh = b[0] / 224 * W, b[1] / 224 * H, b[2] / 224 * W, b[3] / 224 * H
        rects.append(list(b) + [W, H, int(xc - bw / 2), int(yc - bh / 2), int(xc + bw / 2), int(yc + bh / 2)])
    meta["rects"] = [v for r in rects for v in r]
    # tile position embedding: torch.mm(cat([pos, 1-pos])/2, P)
    torch.manual_seed(0)
    P = torch.randn(4, 40)
    pos = torch.tensor([[0.25, 0.5], [0.75, 0.5], [0.5, 1 / 6], [0.5, 0.5]])
    T.append(("patch_pos.P", P.numpy(), "f32"))
    T.append(("patch_pos.pos", pos.numpy(), "f32"))
    T.append(("patch_pos.out", torch.mm(torch.cat([pos, 1 - pos], dim=-1) / 2, P).numpy(), "f32"))
    write_gguf(OUT, meta, T)
    print("wrote", OUT, os.path.getsize(OUT))


if __name__ == "__main__":
    main()
