"""Quantized GGUF weight types in numpy, bit-identical to the C reference (quant.c).

    quantize(a, ttype, name)      float32 values -> bytes ('q8_0', 'q4_0', 'q4_k');
                                  raises ValueError naming the tensor on NaN/Inf
    dequantize(raw, ttype)        bytes -> float32 (the C to_f32, same products)
    quant_type_for(name, shape, want)   the per-tensor policy (C: sx_quant_type_for)
    storage_type(name, shape, want)     what a converter writes: the policy's type,
                                  or 'f16' for a tensor the policy keeps in float
    nbytes(ttype, n), BLOCK, QUANT_TYPES

Layouts (llama.cpp / GGUF, little-endian; bits per weight 8.5, 4.5, 4.5):
  Q8_0  32 values / 34 bytes: f16 d, int8 q[32]                 x = d*q
  Q4_0  32 values / 18 bytes: f16 d, 16 bytes of nibbles, q[j] low nibble of byte j,
        q[j+16] high nibble                                     x = d*(q-8)
  Q4_K 256 values / 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales sc[8] and
        mins m[8], 128 bytes of nibbles (chunk c of 64 values: low nibbles of bytes
        32c..32c+31 are values 64c.., high nibbles values 64c+32..)
                                                                x = (d*sc[j])*q - dmin*m[j]

The quantizers follow llama.cpp's published reference rounding (ggml-quants.c,
quantize_row_{q8_0,q4_0,q4_K}_ref; nearest_int; make_qkx2_quants), evaluated in
float32 one operation at a time (no fused multiply-add), sums in element order:
  Q8_0  d = max|x|/127, q = roundf(x * (1/d))
  Q4_0  d = (first value of largest |x|) / -8, q = min(15, trunc(x * (1/d) + 8.5))
  Q4_K  per 32-value sub-block a weighted least-squares fit of (scale, min) over 21
        stretched grids (weights rms + |x|); scales and mins to 6 bits against their
        maxima (d, dmin in f16); codes recomputed against the stored scales.
Where llama.cpp's C is undefined (1/d overflows, then inf/NaN converted to int: d is
below 2^-126/4 and stored as f16 zero, so the values are 0 anyway) the codes are those
of zero: Q8_0 q = 0, Q4_0 q = 8.

The policy (which tensors are quantized; the same function as quant.h's
sx_quant_type_for, checked by tests/test_quant.c against fixtures made from this one):
  - want: the LLM's decoder matrices model.layers.N.self_attn.{q,k,v,o}_proj.weight,
    model.layers.N.mlp.{gate,up,down}_proj.weight, the token embeddings
    model.embed_tokens.weight (llama.cpp quantizes token_embd with the base type), and
    the ViT's block matrices transformer.resblocks.N.attn.{in,out}_proj.weight,
    transformer.resblocks.N.mlp.{c_fc,c_proj}.weight;
  - lm_head.weight: q8_0 (llama.cpp gives the output matrix more bits than the body,
    Q6_K for its 4-bit types; our next type up is Q8_0);
  - a row length that is not a multiple of the block: q4_k -> q8_0 (llama.cpp also
    falls back to a better type); q8_0 / q4_0 rows not a multiple of 32 stay float;
  - everything else stays float (f16 in a quantized conversion): 1-D tensors (norms,
    biases), positional embeddings and queries, the ViT's patch conv, attention pool
    and proj (a resampler, and proj is used transposed), the agent's input/output
    resamplers, the de-tokenizer, the UNet (every conv) and the VAE. They are small
    next to the 13B LLM (the agent is ~0.1 B parameters, the resamplers' errors would
    feed every image token) and the convs / VAE run as GEMMs where weight bytes do not
    decide the speed.
"""
import re

import numpy as np

QUANT_TYPES = ("q8_0", "q4_0", "q4_k")
BLOCK = {"f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18),
         "q4_k": (256, 144)}  # (values, bytes) per block

_LLM = re.compile(r"model\.layers\.[0-9]+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight")
_VIT = re.compile(r"transformer\.resblocks\.[0-9]+\.(attn\.(in|out)_proj|mlp\.(c_fc|c_proj))\.weight")

F32 = np.float32


def nbytes(ttype, n):
    per, size = BLOCK[ttype]
    if n % per:
        raise ValueError(f"{n} values do not split into {ttype} blocks of {per}")
    return n // per * size


def quant_type_for(name, shape, want):
    """The type tensor `name` (shape in PyTorch order) is stored in when `want` is
    requested, or None: kept in floating point. Float `want`s are returned as is."""
    if want not in QUANT_TYPES:
        return want
    if len(shape) != 2:
        return None
    if _LLM.fullmatch(name) or _VIT.fullmatch(name) or name == "model.embed_tokens.weight":
        t = want
    elif name == "lm_head.weight":
        t = "q8_0"
    else:
        return None
    if t == "q4_k" and shape[1] % 256:
        t = "q8_0"
    return t if shape[1] % BLOCK[t][0] == 0 else None


def storage_type(name, shape, want):
    """What a converter writes for a matrix when --dtype is `want`."""
    t = quant_type_for(name, shape, want)
    return "f16" if t is None else t


# ---------------------------------------------------------------- helpers
def _f16_bytes(v):
    return np.asarray(v, dtype=F32).astype("<f2").view(np.uint8).reshape(-1, 2)


def _f16_values(b):
    return np.ascontiguousarray(b).view("<f2").astype(F32).reshape(-1)


def _inv_or_zero(d):
    with np.errstate(divide="ignore", over="ignore"):
        inv = np.where(d != 0, F32(1) / np.where(d != 0, d, F32(1)), F32(0)).astype(F32)
    inv[np.isinf(inv)] = 0
    return inv


def _roundf(v):
    """C roundf (halves away from zero), exact: |v| + 0.5 in float64."""
    a = np.floor(np.abs(v).astype(np.float64) + 0.5)
    return np.copysign(a, v)


def nearest_int(v):
    """llama.cpp's nearest_int: round half to even through the float mantissa
    (the same bits as C for every float32, NaN and Inf included)."""
    with np.errstate(invalid="ignore", over="ignore"):
        t = (np.asarray(v, dtype=F32) + F32(12582912.0)).astype(F32)
    return (t.view(np.int32) & 0x007FFFFF) - 0x00400000


def _seqsum(a):
    """Sum over the FIRST axis in element order (as the C loops), float32; the
    arrays below are laid out [32, n] so that each step is a contiguous add."""
    s = a[0] + F32(0)  # as C's 0 + a[0] (a -0.0 start becomes +0.0)
    for i in range(1, a.shape[0]):
        s += a[i]
    return s


def _check_finite(a, name):
    if not np.isfinite(a).all():
        bad = int(np.flatnonzero(~np.isfinite(a))[0])
        raise ValueError(f"tensor '{name}': value #{bad} is {a.reshape(-1)[bad]} (NaN/Inf "
                         f"cannot be quantized; the checkpoint is corrupt)")


# ---------------------------------------------------------------- Q8_0
def _q8_0(x):
    x = x.reshape(-1, 32)
    d = (np.abs(x).max(axis=1) / F32(127)).astype(F32)
    q = np.clip(_roundf(x * _inv_or_zero(d)[:, None]), -127, 127).astype(np.int8)
    out = np.empty((x.shape[0], 34), dtype=np.uint8)
    out[:, :2] = _f16_bytes(d)
    out[:, 2:] = q.view(np.uint8)
    return out


def _dq8_0(b):
    b = b.reshape(-1, 34)
    return (b[:, 2:].view(np.int8).astype(F32) * _f16_values(b[:, :2])[:, None]).reshape(-1)


# ---------------------------------------------------------------- Q4_0
def _q4_0(x):
    x = x.reshape(-1, 32)
    vmax = x[np.arange(x.shape[0]), np.abs(x).argmax(axis=1)]  # first of the largest
    vmax = np.where(vmax == 0, F32(0), vmax).astype(F32)  # C keeps +0 for a zero block
    d = (vmax / F32(-8)).astype(F32)
    v = (x * _inv_or_zero(d)[:, None]).astype(F32) + F32(8.5)
    q = np.clip(np.trunc(v), 0, 15).astype(np.uint8)
    out = np.empty((x.shape[0], 18), dtype=np.uint8)
    out[:, :2] = _f16_bytes(d)
    out[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
    return out


def _dq4_0(b):
    b = b.reshape(-1, 18)
    q = np.concatenate([b[:, 2:] & 15, b[:, 2:] >> 4], axis=1).astype(np.int32) - 8
    return (q.astype(F32) * _f16_values(b[:, :2])[:, None]).reshape(-1)


# ---------------------------------------------------------------- Q4_K
def _q4_k_fit(x, w):
    """x, w: [32, n] (value i of sub-block j at [i, j]). Returns (codes [32, n]
    uint8, scale [n], min [n]) as quant.c's q4_k_fit (llama.cpp
    make_qkx2_quants(32, 15, ..., -1, 0.1, 20, false)). The sums start from 0
    (llama.cpp starts from element 0: the same values)."""
    lo = np.minimum(x.min(axis=0), F32(0))
    hi = x.max(axis=0)
    sw = _seqsum(w)
    sx = _seqsum(w * x)
    flat = hi == lo
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = F32(15) / (hi - lo)
        scale = F32(1) / iscale
        q = np.clip(nearest_int(iscale * (x - lo)), 0, 15).astype(F32)
        diff = scale * q + lo - x
        best = _seqsum(w * (diff * diff))
        for s in range(21):
            isc = (F32(F32(-1) + F32(F32(0.1) * F32(s))) + F32(15)) / (hi - lo)
            t = np.clip(nearest_int(isc * (x - lo)), 0, 15).astype(F32)
            wl = w * t
            sl, sl2, sxl = _seqsum(wl), _seqsum(wl * t), _seqsum(wl * x)
            D = sw * sl2 - sl * sl
            ts = (sw * sxl - sx * sl) / D
            tm = (sl2 * sx - sl * sxl) / D
            pos = tm > 0
            tm[pos] = 0
            ts[pos] = (sxl / sl2)[pos]
            diff = ts * t + tm - x
            err = _seqsum(w * (diff * diff))
            upd = (D > 0) & (err < best) & ~flat
            if upd.any():
                q[:, upd] = t[:, upd]
                best[upd], scale[upd], lo[upd] = err[upd], ts[upd], tm[upd]
    q[:, flat] = 0
    scale[flat] = 0
    return q.astype(np.uint8), scale, -lo


def _q4_k(x, chunk=1024):
    out = np.empty((x.size // 256, 144), dtype=np.uint8)
    for c in range(0, out.shape[0], chunk):  # [32, n] work arrays that stay in cache
        out[c:c + chunk] = _q4_k_blocks(x[c * 256:(c + chunk) * 256])
    return out


def _q4_k_blocks(x):
    x = x.reshape(-1, 256)
    nb = x.shape[0]
    xs = np.ascontiguousarray(x.reshape(-1, 32).T)  # [32, nb*8]
    av = np.sqrt(_seqsum(xs * xs) / F32(32))
    w = av + np.abs(xs)
    L, scales, mins = _q4_k_fit(xs, w)
    L = np.ascontiguousarray(L.T).reshape(nb, 256)
    scales, mins = scales.reshape(nb, 8), mins.reshape(nb, 8)
    max_scale, max_min = scales.max(axis=1), mins.max(axis=1)  # C: +0, raised by larger values
    max_scale = np.where(max_scale > 0, max_scale, F32(0)).astype(F32)
    max_min = np.where(max_min > 0, max_min, F32(0)).astype(F32)
    with np.errstate(divide="ignore"):
        isc = np.where(max_scale > 0, F32(63) / np.where(max_scale > 0, max_scale, 1), F32(0)).astype(F32)
        imn = np.where(max_min > 0, F32(63) / np.where(max_min > 0, max_min, 1), F32(0)).astype(F32)
    ls = np.minimum(nearest_int(isc[:, None] * scales) & 0xFF, 63).astype(np.uint8)
    lm = np.minimum(nearest_int(imn[:, None] * mins) & 0xFF, 63).astype(np.uint8)
    sc = np.zeros((nb, 12), dtype=np.uint8)
    sc[:, 0:4] = ls[:, 0:4] | ((ls[:, 4:8] >> 4) << 6)
    sc[:, 4:8] = lm[:, 0:4] | ((lm[:, 4:8] >> 4) << 6)
    sc[:, 8:12] = (ls[:, 4:8] & 15) | ((lm[:, 4:8] & 15) << 4)
    dh = _f16_bytes((max_scale / F32(63)).astype(F32))
    mh = _f16_bytes((max_min / F32(63)).astype(F32))
    d, dmin = _f16_values(dh), _f16_values(mh)
    dl = (d[:, None] * ls.astype(F32)).astype(F32)  # [nb, 8]
    ml = (dmin[:, None] * lm.astype(F32)).astype(F32)
    xv = x.reshape(nb, 8, 32)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = nearest_int(((xv + ml[:, :, None]).astype(F32) / dl[:, :, None]).astype(F32))
    L = np.where(dl[:, :, None] != 0, np.clip(v, 0, 15), L.reshape(nb, 8, 32)).astype(np.uint8)
    L = L.reshape(nb, 4, 2, 32)
    out = np.empty((nb, 144), dtype=np.uint8)
    out[:, 0:2], out[:, 2:4], out[:, 4:16] = dh, mh, sc
    out[:, 16:] = (L[:, :, 0, :] | (L[:, :, 1, :] << 4)).reshape(nb, 128)
    return out


def q4_k_scales_mins(s):
    """[n, 12] packed bytes -> (sc [n, 8], m [n, 8]) as uint8."""
    s = s.astype(np.uint8)
    sc = np.concatenate([s[:, 0:4] & 63, (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)], axis=1)
    m = np.concatenate([s[:, 4:8] & 63, (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)], axis=1)
    return sc, m


def _dq4_k(b):
    b = b.reshape(-1, 144)
    nb = b.shape[0]
    d, dmin = _f16_values(b[:, 0:2]), _f16_values(b[:, 2:4])
    sc, m = q4_k_scales_mins(b[:, 4:16])
    dl = (d[:, None] * sc.astype(F32)).astype(F32)
    ml = (dmin[:, None] * m.astype(F32)).astype(F32)
    qs = b[:, 16:].reshape(nb, 4, 32)
    q = np.stack([qs & 15, qs >> 4], axis=2).reshape(nb, 8, 32).astype(F32)
    return ((dl[:, :, None] * q).astype(F32) - ml[:, :, None]).astype(F32).reshape(-1)


_Q = {"q8_0": _q8_0, "q4_0": _q4_0, "q4_k": _q4_k}
_DQ = {"q8_0": _dq8_0, "q4_0": _dq4_0, "q4_k": _dq4_k}


def quantize(a, ttype, name="?"):
    """float values (flat, a multiple of the block, in row-major order) -> bytes.
    Refuses NaN/Inf values and blocks whose scale overflows f16 (|x| above about
    8.3e6 for q8_0, 5.2e5 for q4_0), naming the tensor."""
    a = np.ascontiguousarray(a, dtype=F32).reshape(-1)
    nbytes(ttype, a.size)
    _check_finite(a, name)
    with np.errstate(over="ignore"):
        out = _Q[ttype](a)
    scales = out[:, 0:4] if ttype == "q4_k" else out[:, 0:2]
    h = np.ascontiguousarray(scales).view("<u2")
    bad = np.flatnonzero(((h & 0x7C00) == 0x7C00).any(axis=1))
    if bad.size:
        per = BLOCK[ttype][0]
        blk = a[bad[0] * per:(bad[0] + 1) * per]
        raise ValueError(f"tensor '{name}': values {bad[0] * per}..{(bad[0] + 1) * per - 1} reach "
                         f"|x| = {np.abs(blk).max():g}, too large for the f16 scale of {ttype}")
    return out.tobytes()


def dequantize(raw, ttype):
    """bytes of ttype -> float32 values, the same products as quant.c."""
    return _DQ[ttype](np.frombuffer(raw, dtype=np.uint8))
