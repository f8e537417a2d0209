#!/usr/bin/env python3
"""Fixtures for the weight container (gguf.c, tests/test_gguf.c).

Writes, with our writer scripts/sxgguf.py:
  tests/fixtures/gguf/roundtrip.gguf           every tensor type (F32 F16 BF16 Q8_0 Q4_0),
                                               1-D..4-D odd shapes, names longer than 64
                                               bytes, every metadata type incl. string,
                                               typed, empty and nested arrays
  tests/fixtures/gguf/roundtrip_expected.gguf  for each tensor above, the float32 values
                                               a reader must produce (dequantised here in
                                               numpy from the bytes the PyPI reader returns)
and copies roundtrip.gguf into the fuzz corpus tests/fuzz/gguf/.

Then reads roundtrip.gguf back with the PyPI `gguf` package's GGUFReader and
asserts that names, shapes, types, sizes and metadata values match what was
written: our files must be readable by the reference Python implementation.

The metadata values below are repeated in tests/test_gguf.c (they are inputs).
Deterministic: a fixed seed; rerunning gives byte-identical files."""
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sxgguf  # noqa: E402
from sxgguf import (Arr, F64, U32, Val, T_ARR, T_BOOL, T_F32, T_F64, T_I16, T_I32,  # noqa: E402
                    T_I64, T_I8, T_STR, T_U16, T_U32, T_U64, T_U8)

OUT = os.path.join("tests", "fixtures", "gguf")
FUZZ = os.path.join("tests", "fuzz", "gguf")

# A real SDXL (diffusers) key longer than 64 bytes, and an artificial 300-byte one.
LONG_NAME = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0.weight.long.key"
VERY_LONG_NAME = "very." + "long." * 58 + "name"


def metadata():
    return {
        "general.name": "roundtrip",
        "test.u8": Val(T_U8, 200),
        "test.i8": Val(T_I8, -100),
        "test.u16": Val(T_U16, 60000),
        "test.i16": Val(T_I16, -30000),
        "test.u32": U32(4000000000),
        "test.i32": Val(T_I32, -2000000000),
        "test.f32": 0.15625,
        "test.bool": True,
        "test.bool_false": False,
        "test.string": 'h\u00e9llo "gguf"\n',
        "test.string_nul": "a\x00b",
        "test.string_empty": "",
        "test.u64": Val(T_U64, 2**63 + 5),  # does not fit int64
        "test.u64_small": Val(T_U64, 123),
        "test.i64": -(2**40) - 1,
        "test.f64": F64(0.1),
        "test.arr.u8": Arr(T_U8, [1, 2, 255]),
        "test.arr.i8": Arr(T_I8, [-128, 0, 127]),
        "test.arr.u16": Arr(T_U16, [65535, 7]),
        "test.arr.i16": Arr(T_I16, [-32768, 32767]),
        "test.arr.u32": Arr(T_U32, [4294967295, 0]),
        "test.arr.i32": [3, -4, 5],  # plain int list -> i32 array
        "test.arr.u64": Arr(T_U64, [2**64 - 1, 9]),
        "test.arr.i64": Arr(T_I64, [-(2**62), 2**62]),
        "test.arr.f32": [0.5, -1.25, 3.0],  # plain float list -> f32 array
        "test.arr.f64": Arr(T_F64, [0.1, -2.5]),
        "test.arr.bool": [True, False, True],
        "test.arr.str": ["alpha", "", "\u00fcber", "x" * 100],
        "test.arr.empty": Arr(T_I32, []),
        "test.arr.long": list(range(100)),
        "test.arr.nested": Arr(T_ARR, [Arr(T_I32, [1, 2]), Arr(T_STR, ["in", "ner"]),
                                       Arr(T_ARR, [Arr(T_U8, [])]), Arr(T_F32, [1.5])]),
        "test.key.longer.than.sixty.four.bytes.for.the.metadata.section.xyz": Val(T_BOOL, 1),
    }


def tensors(rng):
    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    f16 = normal(13, 3) * 4
    f16.flat[:9] = [65504.0, -0.0, 6e-8, 1e-5, np.inf, -np.inf, np.nan, 1.0 / 3, -65504.0]
    bf16 = normal(2, 3, 5) * 1000
    bf16.flat[:6] = [np.inf, -np.inf, np.nan, 1e-40, 3e38, -0.0]
    q8 = normal(3, 64)
    q8[1, 32:] = 0  # a block with scale 0
    q4 = normal(96)
    q4[32:64] = 0
    return [
        # names come in pairs of equal length (the C test renames one to the other)
        ("a.f32_1d", normal(7), "f32"),
        ("a.f32_4d", normal(2, 3, 5, 7), "f32"),
        ("a.f16_2d", f16, "f16"),
        ("a.bf16_3d", bf16, "bf16"),
        ("a.q8_0_2d", q8, "q8_0"),
        ("a.q8_0_3d", normal(2, 2, 32) * 0.01, "q8_0"),
        ("a.q4_0_1d", q4, "q4_0"),
        ("a.q4_0_4d", normal(1, 2, 1, 32) * 100, "q4_0"),
        (LONG_NAME, normal(5, 3), "f16"),
        (VERY_LONG_NAME, normal(1, 1, 1), "f32"),
        ("\u00fcnicode.bias", normal(3), "bf16"),
    ]


def dequant(raw, ttype, n):
    """float32 values of n elements of ttype stored in the bytes raw (ggml layouts)."""
    raw = np.frombuffer(bytes(raw), dtype=np.uint8)
    if ttype == "f32":
        return raw.view("<f4").astype(np.float32)
    if ttype == "f16":
        return raw.view("<f2").astype(np.float32)
    if ttype == "bf16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    if ttype == "q8_0":
        b = raw.reshape(-1, 34)
        d = b[:, :2].copy().view("<f2").astype(np.float32)
        q = b[:, 2:].view(np.int8).astype(np.float32)
        return (d * q).reshape(-1)
    if ttype == "q4_0":
        b = raw.reshape(-1, 18)
        d = b[:, :2].copy().view("<f2").astype(np.float32)
        qs = b[:, 2:]
        q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.float32) - 8
        return (d * q).reshape(-1)
    raise ValueError(ttype)


def pypi_reader(path):
    """Opens path with the PyPI gguf package's GGUFReader.

    gguf 0.6.0 (the version pinned now) has two gaps that later releases
    (e.g. 0.10.0) fixed: it insists that general.alignment be u64 although the
    GGUF spec and ggml use u32, and it does not know type 30 (BF16). Only when
    the installed reader has these gaps, they are bridged here: the u32
    alignment field is presented to the check as u64, and BF16 is registered
    as a 2-byte type. Everything else is the package's own parser."""
    import gguf
    from gguf import gguf_reader as gr

    notes = []
    cls = gguf.GGUFReader
    try:
        gguf.GGMLQuantizationType(30)
    except ValueError:
        T = gguf.GGMLQuantizationType
        bf16 = int.__new__(T, 30)
        bf16._name_, bf16._value_ = "BF16", 30
        T._value2member_map_[30] = bf16
        gr.GGML_QUANT_SIZES[bf16] = (1, 2)
        notes.append("registered BF16 (type 30)")
    try:
        return cls(path), notes
    except ValueError as e:
        if "general.alignment" not in str(e):
            raise

    class Compat(cls):
        def _push_field(self, field, skip_sum=False):
            if field.name == "general.alignment" and field.types == [gguf.GGUFValueType.UINT32]:
                parts = list(field.parts)
                parts[-1] = parts[-1].astype(np.uint64)
                field = field._replace(parts=parts, types=[gguf.GGUFValueType.UINT64])
                skip_sum = True  # the offset advance was computed from the real parts
            return super()._push_field(field, skip_sum)

    notes.append("accepted u32 general.alignment")
    return Compat(path), notes


def field_value(f):
    """Python value of a GGUFReader field (scalars, strings, flat arrays)."""
    import gguf
    vt = gguf.GGUFValueType
    if f.types[0] == vt.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    if f.types[0] == vt.ARRAY:
        if len(f.types) > 1 and f.types[1] == vt.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i][0].item() for i in f.data]
    return f.parts[f.data[0]][0].item()


def check_with_pypi_gguf(path, tlist, meta):
    import gguf
    r, notes = pypi_reader(path)
    names = [t.name for t in r.tensors]
    want = [n for n, _, _ in tlist]
    assert names == want, (names, want)
    sizes = {"f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18)}
    for t, (name, arr, ttype) in zip(r.tensors, tlist):
        shape = tuple(int(x) for x in reversed(list(t.shape)))
        assert shape == arr.shape, (name, shape, arr.shape)
        assert int(t.tensor_type) == sxgguf.TYPES[ttype], (name, t.tensor_type, ttype)
        blk, bb = sizes[ttype]
        assert int(t.n_bytes) == arr.size // blk * bb, (name, t.n_bytes)
        assert int(t.data_offset) % 64 == 0, (name, t.data_offset)
    # metadata: every key present with the written value (nested arrays: types only)
    for k, v in meta.items():
        f = r.fields[k]
        if isinstance(v, Arr) and v.elem_type == T_ARR:
            assert int(f.types[0]) == T_ARR and int(f.types[1]) == T_ARR, k
            continue
        got = field_value(f)
        exp = v.value if isinstance(v, Val) else v.items if isinstance(v, Arr) else v
        if isinstance(exp, float) or (isinstance(exp, list) and exp and isinstance(exp[0], float)):
            assert np.allclose(np.asarray(got, np.float64), np.asarray(exp, np.float64),
                               rtol=1e-7), (k, got, exp)
        else:
            assert got == exp or (isinstance(exp, bool) and bool(got) == exp) or \
                (isinstance(exp, list) and [type(e)(g) for g, e in zip(got, exp)] == exp), \
                (k, got, exp)
    assert int(field_value(r.fields["general.alignment"])) == 64
    ver = getattr(gguf, "__version__", None)
    if ver is None:
        try:
            from importlib.metadata import version
            ver = version("gguf")
        except Exception:
            ver = "?"
    print(f"  PyPI gguf {ver} GGUFReader reads {path}: {len(names)} tensors, "
          f"{len(r.fields)} fields match" + (f" (compat: {'; '.join(notes)})" if notes else ""))
    return r


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(FUZZ, exist_ok=True)
    rng = np.random.default_rng(20240417)
    meta = metadata()
    tlist = tensors(rng)
    path = os.path.join(OUT, "roundtrip.gguf")
    sxgguf.write_gguf(path, meta, tlist)
    r = check_with_pypi_gguf(path, tlist, meta)

    # expected float32 values, dequantised from the bytes the PyPI reader hands back
    expected = []
    for t, (name, arr, ttype) in zip(r.tensors, tlist):
        vals = dequant(np.asarray(t.data).view(np.uint8).reshape(-1)[: int(t.n_bytes)], ttype,
                       arr.size)
        assert vals.size == arr.size, name
        if ttype in ("f32", "f16", "bf16"):  # float types: equal the numpy casts
            if ttype == "f32":
                ref = arr
            elif ttype == "f16":
                ref = arr.astype(np.float16).astype(np.float32)
            else:
                ref = (sxgguf.f32_to_bf16_bits(arr).astype(np.uint32) << 16).view(np.float32)
            ref = ref.reshape(-1)
            assert np.array_equal(vals, ref, equal_nan=True), name
        else:  # quantised: close to the original (4/8-bit)
            err = np.abs(vals - arr.reshape(-1)).max() / max(np.abs(arr).max(), 1e-30)
            assert err < (0.01 if ttype == "q8_0" else 0.15), (name, err)
        expected.append((name, vals.reshape(arr.shape), "f32"))
    sxgguf.write_gguf(os.path.join(OUT, "roundtrip_expected.gguf"),
                      {"general.name": "roundtrip_expected"}, expected)
    shutil.copyfile(path, os.path.join(FUZZ, "seed_roundtrip.gguf"))
    for f in sorted(os.listdir(OUT)):
        print(f"  {os.path.join(OUT, f)}: {os.path.getsize(os.path.join(OUT, f))} bytes")


if __name__ == "__main__":
    main()
