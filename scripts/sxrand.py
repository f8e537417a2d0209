"""Counter-based random values shared with the C side (ops.c sx_rand_uniform).

Value i of stream `seed`: z = splitmix64(seed * 0x9E3779B97F4A7C15 + i + 1);
u = (z >> 40) / 2^24 (24 random bits, exact in float32); y = lo + (hi - lo) * u
evaluated in float32. Real-shape tests regenerate big random weights with this
on both sides instead of committing them."""
import numpy as np

M64 = (1 << 64) - 1


def _splitmix(z):
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(n, seed, lo=-1.0, hi=1.0):
    base = np.uint64((seed * 0x9E3779B97F4A7C15) & M64)
    with np.errstate(over="ignore"):
        z = _splitmix(base + np.arange(n, dtype=np.uint64))
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    return np.float32(lo) + (np.float32(hi) - np.float32(lo)) * u
