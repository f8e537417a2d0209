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


def uniform(n, seed, lo=-1.0, hi=1.0, start=0):
    """Values start .. start+n-1 of stream `seed` (float32 ndarray); a tensor can be
    generated in slices with `start`. Computed in place (the full-size generator
    draws ~18 G values): same results as _splitmix on base + i."""
    base = np.uint64((seed * 0x9E3779B97F4A7C15 + start) & M64)
    z = np.arange(n, dtype=np.uint64)
    t = np.empty_like(z)
    with np.errstate(over="ignore"):
        z += base
        z += np.uint64(0x9E3779B97F4A7C15)
        np.right_shift(z, np.uint64(30), out=t)
        z ^= t
        z *= np.uint64(0xBF58476D1CE4E5B9)
        np.right_shift(z, np.uint64(27), out=t)
        z ^= t
        z *= np.uint64(0x94D049BB133111EB)
        np.right_shift(z, np.uint64(31), out=t)
        z ^= t
        z >>= np.uint64(40)
    u = z.astype(np.float32)
    u *= np.float32(1.0 / 16777216.0)
    u *= np.float32(hi) - np.float32(lo)
    u += np.float32(lo)
    return u
