"""Fixtures of the BF16 compute type -> tests/fixtures/bf16/:
1. weights.gguf: matrices of every float storage type (and Q8_0) to pack at
   load, sxrand values (the test regenerates them to check).
Deterministic: fixed seeds."""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import sxrand  # noqa: E402
from sxgguf import write_gguf  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "bf16")

# (name, rows, cols, type, seed): values sxrand.uniform(rows*cols, seed, -0.5, 0.5)
WEIGHTS = [("w.f32", 100, 70, "f32", 1), ("w.f16", 64, 130, "f16", 2), ("w.bf16", 48, 66, "bf16", 3),
           ("w.q8_0", 40, 64, "q8_0", 4), ("w.t", 70, 100, "f32", 5), ("w.big", 256, 512, "f32", 6)]


def weights():
    T = []
    for name, r, c, t, seed in WEIGHTS:
        T.append((name, sxrand.uniform(r * c, seed, -0.5, 0.5).reshape(r, c), t))
    write_gguf(os.path.join(OUT, "weights.gguf"), {"seedx.fixture": "bf16.weights"}, T)


def main():
    os.makedirs(OUT, exist_ok=True)
    weights()


if __name__ == "__main__":
    main()
