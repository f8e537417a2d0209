"""Pillow / torchvision timings for the work tests/bench_image.c times in C.

usage: bench_image_pillow.py DIR   (creates DIR/bench12mp.png and .jpg once,
4032x3024 made from a shared photo upscaled with a little noise, then prints
one line per task: "pillow TASK WALL_S CPU_S" (median of 3 runs))."""
import io
import os
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "tests")  # tests/data: the test data the repo carries


def med(fn, reps=3):
    """median wall time and the CPU time of that run (the machine may be shared)"""
    ts = []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ts.append((time.perf_counter() - t0, time.process_time() - c0))
    w, c = sorted(ts)[len(ts) // 2]
    return "%.4f %.4f" % (w, c)


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    png, jpg = os.path.join(d, "bench12mp.png"), os.path.join(d, "bench12mp.jpg")
    if not (os.path.exists(png) and os.path.exists(jpg)):
        src = Image.open(os.path.join(SHARED, "data", "images", "photo", "car.jpg")).convert("RGB")
        big = np.asarray(src.resize((4032, 3024), Image.BICUBIC)).astype(np.int16)
        noise = np.random.RandomState(0).randint(-3, 4, size=big.shape)
        img = Image.fromarray(np.clip(big + noise, 0, 255).astype(np.uint8), "RGB")
        img.save(png + ".tmp.png")
        os.replace(png + ".tmp.png", png)
        img.save(jpg + ".tmp.jpg", quality=90)
        os.replace(jpg + ".tmp.jpg", jpg)
    im = Image.open(png).convert("RGB")
    print("pillow decode_png_12mp %s" % med(lambda: Image.open(png).convert("RGB")))
    print("pillow decode_jpeg_12mp %s" % med(lambda: Image.open(jpg).convert("RGB")))
    print("pillow resize_4032x3024_896x448_bicubic %s" % med(lambda: im.resize((896, 448), Image.BICUBIC)))
    print("pillow encode_png_12mp %s" % med(lambda: im.save(io.BytesIO(), "PNG"), reps=1))
    try:
        import torch  # noqa: F401
        from torchvision import transforms
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        import fixtures_image as fx
        tf = transforms.Compose([transforms.Resize((448, 448)), transforms.ToTensor(),
                                 transforms.Normalize(mean=fx.CLIP_MEAN, std=fx.CLIP_STD)])

        def anyres():
            cands = [(int(g[0]) * 448, int(g[2]) * 448) for g in fx.GRIDS]
            a, b = fx.rule_a(im.size, cands), fx.rule_b(im.size, cands)
            (W1, H1), (W2, H2) = cands[a], cands[b]
            W, H = (W2, H2) if W1 * H1 > W2 * H2 else (W1, H1)
            big = im.resize((W, H))
            t = [big.crop((j, i, j + 448, i + 448)) for i in range(0, H, 448) for j in range(0, W, 448)]
            t.append(im.resize((448, 448)))
            return [tf(x) for x in t]
        print("pillow anyres_12mp %s" % med(anyres))
    except ImportError:
        pass


if __name__ == "__main__":
    main()
