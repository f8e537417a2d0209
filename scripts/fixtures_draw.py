#!/usr/bin/env python3
"""Box-drawing fixtures -> tests/fixtures/draw/boxes.gguf.

The official grounding visualisation (visualize_bbox in SEED-X's
src/inference/eval_img2text_seed_x_i.py) draws every box with
cv2.rectangle(image, (x1, y1), (x2, y2), (0, 255, 0), 2) on the BGR image.
For each case: a random background image (so untouched pixels are checked
too), the corners, and OpenCV's result, converted back to RGB. Cases: boxes
inside, crossing each border and every border at once, entirely outside,
degenerate (x1 == x2, y1 == y2, a point), reversed corners, 1-pixel images,
and random boxes over small images.
Metadata: draw.n_cases, draw.case.<i> = [w, h, x1, y1, x2, y2]; tensors
draw.<i>.in / draw.<i>.out: uint8 images [h, w, 3] stored as F16 (exact).
"""
import os
import sys

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from sxgguf import write_gguf  # noqa: E402

OUT = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "draw", "boxes.gguf")


def cases():
    c = [
        (20, 16, 3, 2, 12, 9),      # inside
        (20, 16, -3, 4, 8, 10),     # crosses the left border
        (20, 16, 5, -2, 12, 7),     # top
        (20, 16, 6, 5, 25, 11),     # right
        (20, 16, 2, 9, 14, 16),     # bottom edge exactly on the last row + 1
        (20, 16, 2, 9, 14, 15),     # bottom edge on the last row
        (20, 16, 0, 0, 19, 15),     # the image frame
        (20, 16, -5, -5, 30, 30),   # every border, edges outside
        (20, 16, -1, -1, 20, 16),   # edges one pixel outside
        (20, 16, 30, 3, 40, 9),     # entirely outside
        (20, 16, 7, 3, 7, 12),      # x1 == x2
        (20, 16, 4, 6, 15, 6),      # y1 == y2
        (20, 16, 9, 9, 9, 9),       # a point
        (20, 16, 14, 12, 4, 3),     # reversed corners
        (1, 1, 0, 0, 0, 0),         # 1-pixel image
        (1, 1, -1, -1, 1, 1),
        (1, 1, 0, 0, 5, 5),
        (3, 1, 0, 0, 2, 0),
        (1, 4, 0, 1, 0, 2),
    ]
    rng = np.random.default_rng(77)
    for _ in range(24):
        w, h = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        x = sorted(int(v) for v in rng.integers(-8, w + 8, 2))
        y = sorted(int(v) for v in rng.integers(-8, h + 8, 2))
        c.append((w, h, x[0], y[0], x[1], y[1]))
    return c


def main():
    rng = np.random.default_rng(5)
    meta = {"seedx.fixture": "draw", "seedx.fixture.opencv": cv2.__version__}
    tensors = []
    cs = cases()
    meta["draw.n_cases"] = len(cs)
    for i, (w, h, x1, y1, x2, y2) in enumerate(cs):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        cv2.rectangle(bgr, (x1, y1), (x2, y2), (0, 255, 0), 2)
        out = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        meta[f"draw.case.{i}"] = [w, h, x1, y1, x2, y2]
        tensors.append((f"draw.{i}.in", rgb.astype(np.float32), "f16"))  # 0..255: exact in F16
        tensors.append((f"draw.{i}.out", out.astype(np.float32), "f16"))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    write_gguf(OUT, meta, tensors)
    print(f"wrote {OUT}: {len(cs)} cases (OpenCV {cv2.__version__})")


if __name__ == "__main__":
    main()
