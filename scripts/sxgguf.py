"""Minimal GGUF v3 writer used by the converter and the fixture generators.

write_gguf(path, metadata, tensors)
  metadata: dict key -> value. Python int -> int64 (or u32 via U32(v)), float -> f32
            (F64(v) for float64), bool, str, list of int/float/str -> array.
            Val(type, v) / Arr(elem_type, items) give any GGUF type explicitly
            (all scalar types, typed and nested arrays).
  tensors:  list of (name, ndarray, type) with type in 'f32','f16','bf16','q8_0','q4_0','q4_k'
            (quantized with scripts/quant_ref.py: llama.cpp's reference rounding);
            arrays are in PyTorch order; GGUF stores dims fastest-first, so the
            dims are written reversed and the C reader reverses them back.
Names are the original checkpoint keys and may exceed 64 bytes.
The file is written to path + '.tmp' and renamed, so no partial file is left.
"""
import os
import struct

import numpy as np

import quant_ref

GGUF_MAGIC = 0x46554747
ALIGN = 64
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8, "q4_k": 12, "bf16": 30}


class U32(int):
    pass


class F64(float):
    pass


class Val:
    """An explicitly typed scalar: Val(T_U8, 7), Val(T_I16, -3), Val(T_U64, 2**63)."""

    def __init__(self, type, value):
        self.type, self.value = type, value


class Arr:
    """An explicitly typed array: Arr(T_U16, [1, 2]); nested arrays are
    Arr(T_ARR, [Arr(...), ...]) and may mix element types per sub-array."""

    def __init__(self, elem_type, items):
        self.elem_type, self.items = elem_type, list(items)


_SCALAR_FMT = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i",
               T_F32: "<f", T_BOOL: "<B", T_U64: "<Q", T_I64: "<q", T_F64: "<d"}


def _payload(b, t, v):
    """Appends the value v of GGUF type t without its type tag."""
    if t == T_STR:
        _s(b, v)
    elif t == T_ARR:
        if not isinstance(v, Arr):
            raise TypeError(f"nested array element must be Arr, got {v!r}")
        b += struct.pack("<IQ", v.elem_type, len(v.items))
        for x in v.items:
            _payload(b, v.elem_type, x)
    elif t in _SCALAR_FMT:
        b += struct.pack(_SCALAR_FMT[t], int(v) if t not in (T_F32, T_F64) else float(v))
    else:
        raise ValueError(f"unknown GGUF value type {t}")


def _s(b, x):
    x = x.encode("utf-8") if isinstance(x, str) else x
    b += struct.pack("<Q", len(x)) + x


def _val(b, v):
    if isinstance(v, Val):
        b += struct.pack("<I", v.type)
        _payload(b, v.type, v.value)
        return
    if isinstance(v, Arr):
        b += struct.pack("<I", T_ARR)
        _payload(b, T_ARR, v)
        return
    if isinstance(v, bool):
        b += struct.pack("<IB", T_BOOL, int(v))
    elif isinstance(v, U32):
        b += struct.pack("<II", T_U32, int(v))
    elif isinstance(v, (int, np.integer)):
        b += struct.pack("<Iq", T_I64, int(v))
    elif isinstance(v, F64):
        b += struct.pack("<Id", T_F64, float(v))
    elif isinstance(v, (float, np.floating)):
        b += struct.pack("<If", T_F32, float(v))
    elif isinstance(v, (str, bytes)):
        b += struct.pack("<I", T_STR)
        _s(b, v)
    elif isinstance(v, (list, tuple, np.ndarray)):
        v = list(v)
        b += struct.pack("<I", T_ARR)
        if all(isinstance(x, (str, bytes)) for x in v) and v:
            b += struct.pack("<IQ", T_STR, len(v))
            for x in v:
                _s(b, x)
        elif all(isinstance(x, (bool, np.bool_)) for x in v) and v:
            b += struct.pack("<IQ", T_BOOL, len(v)) + bytes(int(x) for x in v)
        elif all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in v):
            b += struct.pack("<IQ", T_I32 if all(-2**31 <= x < 2**31 for x in v) else T_I64, len(v))
            b += np.asarray(v, dtype="<i4" if all(-2**31 <= x < 2**31 for x in v) else "<i8").tobytes()
        else:
            b += struct.pack("<IQ", T_F32, len(v)) + np.asarray(v, dtype="<f4").tobytes()
    else:
        raise TypeError(f"unsupported metadata value {v!r}")


def f32_to_bf16_bits(a):
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(a, dtype=np.float32))
    r[nan] = 0x7FC0
    return r


def tensor_bytes(arr, ttype):
    arr = np.asarray(arr)
    if ttype == "f32":
        return np.ascontiguousarray(arr, dtype="<f4").tobytes()
    if ttype == "f16":
        return np.ascontiguousarray(arr.astype(np.float32).astype("<f2")).tobytes()
    if ttype == "bf16":
        return f32_to_bf16_bits(arr).astype("<u2").tobytes()
    if ttype in quant_ref.QUANT_TYPES:
        return quant_ref.quantize(arr, ttype)
    raise ValueError(f"unknown tensor type {ttype}")


def write_gguf(path, metadata, tensors, alignment=ALIGN):
    head = bytearray()
    head += struct.pack("<IIQQ", GGUF_MAGIC, 3, len(tensors), len(metadata) + 1)
    _s(head, "general.alignment")
    head += struct.pack("<II", T_U32, alignment)
    for k, v in metadata.items():
        _s(head, k)
        _val(head, v)
    blobs = []
    off = 0
    seen = set()
    for name, arr, ttype in tensors:
        if name in seen:
            raise ValueError(f"duplicate tensor name {name}")
        seen.add(name)
        arr = np.asarray(arr)
        shape = arr.shape if arr.ndim > 0 else (1,)
        data = tensor_bytes(arr, ttype)
        _s(head, name)
        head += struct.pack("<I", len(shape))
        for d in reversed(shape):
            head += struct.pack("<Q", int(d))
        head += struct.pack("<IQ", TYPES[ttype], off)
        blobs.append((off, data))
        off += len(data)
        off = (off + alignment - 1) // alignment * alignment
    pad = (-len(head)) % alignment
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(head)
        f.write(b"\0" * pad)
        pos = 0
        for o, data in blobs:
            f.write(b"\0" * (o - pos))
            f.write(data)
            pos = o + len(data)
        f.write(b"\0" * (off - pos))
    os.replace(tmp, path)


def read_gguf(path):
    """Tiny reader for fixture scripts: returns (metadata, {name: float32 ndarray})."""
    import gguf  # the PyPI package; doubles as a check that it reads our files
    r = gguf.GGUFReader(path)
    out = {}
    for t in r.tensors:
        shape = tuple(int(x) for x in reversed(list(t.shape)))
        a = np.array(t.data)
        if t.tensor_type == gguf.GGMLQuantizationType.F16:
            a = a.view(np.float16).astype(np.float32)
        elif int(t.tensor_type) == 30:
            a = (a.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        out[t.name] = a.reshape(shape).astype(np.float32)
    return r, out
