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

GGUFStreamWriter / write_gguf_stream write the same layout with tensors arriving one
at a time (the converters: one slice of one tensor in memory).
"""
import os
import struct

import numpy as np

import quant_ref

GGUF_MAGIC = 0x46554747
ALIGN = 64
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8, "q4_k": 12, "bf16": 30}
# the --dtype choices of the converters (a new weight type is added here and in quant_ref.BLOCK):
# the LLM and the ViT take every type, the other components the float ones
FLOAT_TYPES = ("f32", "f16", "bf16")
WEIGHT_TYPES = FLOAT_TYPES + quant_ref.QUANT_TYPES


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
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16), as torch's
    .bfloat16(); NaNs become 0x7FC0. uint32 arithmetic: only NaN payloads can wrap."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    u = a.view(np.uint32)
    r = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        r[nan] = 0x7FC0
    return r


def tensor_bytes(arr, ttype, name="?"):
    arr = np.asarray(arr)
    if ttype == "f32":
        return np.ascontiguousarray(arr, dtype="<f4").tobytes()
    if ttype == "f16":
        return np.ascontiguousarray(arr.astype(np.float32).astype("<f2")).tobytes()
    if ttype == "bf16":
        return f32_to_bf16_bits(arr).astype("<u2").tobytes()
    if ttype in quant_ref.QUANT_TYPES:
        return quant_ref.quantize(arr, ttype, name)
    raise ValueError(f"unknown tensor type {ttype}")


def write_gguf(path, metadata, tensors, alignment=ALIGN):
    """tensors: [(name, ndarray, type)], all in memory (fixtures); see write_gguf_stream."""
    tensors = [(n, np.asarray(a), t) for n, a, t in tensors]
    w = GGUFStreamWriter(path, metadata, [(n, a.shape if a.ndim else (1,), t) for n, a, t in tensors],
                         alignment)
    try:
        for n, a, t in tensors:
            w.write_tensor(n, [tensor_bytes(a, t)])
        w.close()
    except BaseException:
        w.abort()
        raise




class GGUFStreamWriter:
    """Writes the same file as write_gguf when the tensor table is known up front
    and the data arrives tensor by tensor in byte chunks (one tensor in memory at
    most, usually one slice). specs: [(name, shape, ttype)]. Written to
    path.tmp, renamed by close(); abort() removes the partial file.

        w = GGUFStreamWriter(path, metadata, specs)
        for name, ...: w.write_tensor(name, chunks)
        w.close()
    """

    def __init__(self, path, metadata, specs, alignment=ALIGN):
        self.path, self.tmp, self.align = path, path + ".tmp", alignment
        head = bytearray()
        head += struct.pack("<IIQQ", GGUF_MAGIC, 3, len(specs), len(metadata) + 1)
        _s(head, "general.alignment")
        head += struct.pack("<II", T_U32, alignment)
        for k, v in metadata.items():
            _s(head, k)
            _val(head, v)
        self.specs, off, seen = [], 0, set()
        for name, shape, ttype in specs:
            if name in seen:
                raise ValueError(f"duplicate tensor name {name}")
            seen.add(name)
            shape = tuple(int(d) for d in shape) if len(shape) else (1,)
            n = 1
            for d in shape:
                n *= d
            _s(head, name)
            head += struct.pack("<I", len(shape))
            for d in reversed(shape):
                head += struct.pack("<Q", d)
            head += struct.pack("<IQ", TYPES[ttype], off)
            nbytes = quant_ref.nbytes(ttype, n)
            self.specs.append((name, off, nbytes))
            off = (off + nbytes + alignment - 1) // alignment * alignment
        self.total = off
        self.f = open(self.tmp, "wb")
        self.f.write(head)
        self.f.write(b"\0" * ((-len(head)) % alignment))
        self.data_start = self.f.tell()
        self.next = 0

    def write_tensor(self, name, chunks):
        want, off, nbytes = self.specs[self.next]
        if name != want:
            raise ValueError(f"tensor '{name}' written out of order (expected '{want}')")
        pos = self.f.tell() - self.data_start
        self.f.write(b"\0" * (off - pos))
        n = 0
        for c in chunks:
            self.f.write(c)
            n += len(c)
        if n != nbytes:
            raise ValueError(f"tensor '{name}': wrote {n} bytes, expected {nbytes}")
        self.next += 1

    def close(self):
        if self.next != len(self.specs):
            raise ValueError(f"only {self.next} of {len(self.specs)} tensors written")
        pos = self.f.tell() - self.data_start
        self.f.write(b"\0" * (self.total - pos))
        self.f.close()
        os.replace(self.tmp, self.path)

    def abort(self):
        try:
            self.f.close()
        finally:
            if os.path.exists(self.tmp):
                os.remove(self.tmp)


def write_gguf_stream(path, metadata, entries, finite=False):
    """entries: [(name, tensor, ttype)] where tensor has .shape and
    .encoded(ttype, finite) (sxckpt.Tensor); tensors are read and written one
    at a time. finite=True refuses NaN/Inf values. Returns the data size."""
    w = GGUFStreamWriter(path, metadata, [(n, t.shape, tt) for n, t, tt in entries])
    try:
        for n, t, tt in entries:
            w.write_tensor(n, t.encoded(tt, finite))
        w.close()
    except BaseException:
        w.abort()
        raise
    return w.total

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
