"""The official checkpoint formats, read and written tensor by tensor (no torch needed).

Readers give {name: Tensor} without loading any tensor data: a Tensor knows where
its bytes are (file, offset, dtype, shape, strides) and streams them in slices, so a
converter holds one slice (SLICE elements) at a time whatever the checkpoint size
(the de-tokenizer's second stage is a single 10.5 GB pickle).

  read_file(path)            .bin/.pt/.pth (torch zip, or the legacy pre-1.6 format) or
                             .safetensors; a {"state_dict": {...}} wrapper is unwrapped
  read_folder(dir, layouts)  a Hugging Face / diffusers folder: sharded with an index json,
                             a single file, or numbered shards without an index
  Tensor.slices()            float32 ndarrays (flat, row-major) of at most SLICE elements
  Tensor.encoded(ttype)      the tensor's bytes in GGUF type ttype, slice by slice
  Tensor.load()              the whole tensor as a float32 ndarray (small tensors, tests)

Torch pickles are read by a restricted unpickler that builds no torch objects and runs
no code: it accepts only what a state dict is made of (dicts, tensors, storages,
parameters) and refuses any other global.

Writers (make_fullsize.py) produce the same formats from a table of
(name, shape, dtype) with the data arriving tensor by tensor:

  TorchZipWriter      what torch.save(state_dict) writes (zip, 64-byte aligned records,
                      zip64 past 4 GB)
  SafetensorsWriter   what safetensors.torch.save_file writes
  hf_shards(...)      transformers' save_pretrained sharding rule (max_shard_size)
"""
import collections
import glob
import json
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np

SLICE = 4 << 20  # elements per slice (16 MiB of float32)

ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int64": 8, "int32": 4,
            "int16": 2, "int8": 1, "uint8": 1, "bool": 1}
FLOATS = ("float32", "float16", "bfloat16", "float64")
_NP = {"float32": "<f4", "float16": "<f2", "float64": "<f8", "int64": "<i8", "int32": "<i4",
       "int16": "<i2", "int8": "i1", "uint8": "u1", "bool": "?", "bfloat16": "<u2"}
# torch storage classes (torch.save pickles them as globals `torch.<Name>`)
STORAGES = {"FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
            "DoubleStorage": "float64", "LongStorage": "int64", "IntStorage": "int32",
            "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
            "BoolStorage": "bool"}
STORAGE_OF = {v: k for k, v in STORAGES.items()}
# safetensors dtype names
ST_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
             "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
             "BOOL": "bool"}
ST_NAME = {v: k for k, v in ST_DTYPES.items()}


def numel(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def bf16_to_f32(raw_u16):
    """bfloat16 bit patterns (uint16 ndarray) -> float32, exact."""
    return (raw_u16.astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16(a):
    """float32 -> bfloat16 bit patterns, round to nearest even (sxgguf.f32_to_bf16_bits)."""
    from sxgguf import f32_to_bf16_bits
    return f32_to_bf16_bits(a)


# ---------------------------------------------------------------- tensors
class Tensor:
    """One tensor of a checkpoint file: its bytes start at `offset` of `path`,
    elements of `dtype`, laid out with `stride` (elements; None = contiguous)."""

    def __init__(self, name, dtype, shape, path, offset, stride=None, storage_end=None):
        if dtype not in ITEMSIZE:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {dtype}")
        self.name, self.dtype, self.shape = name, dtype, tuple(int(d) for d in shape)
        self.path, self.offset, self.stride = path, int(offset), stride
        self.storage_end = storage_end  # byte offset just past the storage (bounds check)

    def __repr__(self):
        return f"Tensor({self.name!r}, {self.dtype}, {list(self.shape)}, {os.path.basename(self.path)})"

    @property
    def numel(self):
        return numel(self.shape)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def nbytes(self):
        return self.numel * ITEMSIZE[self.dtype]

    def view(self, name=None, shape=None):
        """The same bytes under another name and/or shape (same element count;
        contiguous tensors only when the shape changes)."""
        shape = self.shape if shape is None else tuple(int(d) for d in shape)
        if numel(shape) != self.numel:
            raise ValueError(f"tensor '{self.name}': cannot view {list(self.shape)} as {list(shape)}")
        if shape != self.shape and self.stride is not None:
            raise ValueError(f"tensor '{self.name}': cannot reshape a strided tensor")
        return Tensor(name or self.name, self.dtype, shape, self.path, self.offset,
                      self.stride if shape == self.shape else None, self.storage_end)

    def _raw_chunks(self, n):
        """Native-dtype bytes of at most n elements each, in row-major order."""
        isz = ITEMSIZE[self.dtype]
        if self.stride is None:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                left = self.numel
                while left > 0:
                    k = min(left, n)
                    raw = f.read(k * isz)
                    if len(raw) != k * isz:
                        raise ValueError(f"{self.path}: truncated data for tensor '{self.name}'")
                    yield raw
                    left -= k
            return
        # a strided view: read the span it covers once, then gather
        span = 1 + sum((d - 1) * s for d, s in zip(self.shape, self.stride) if d > 0)
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            raw = f.read(span * isz)
        if len(raw) != span * isz:
            raise ValueError(f"{self.path}: truncated data for tensor '{self.name}'")
        base = np.frombuffer(raw, dtype=_NP[self.dtype])
        v = np.lib.stride_tricks.as_strided(base, shape=self.shape,
                                            strides=[s * isz for s in self.stride])
        flat = np.ascontiguousarray(v).reshape(-1)
        for i in range(0, flat.size, n):
            yield flat[i:i + n].tobytes()

    def slices(self, n=SLICE):
        """float32 ndarrays (flat, row-major) of at most n elements."""
        for raw in self._raw_chunks(n):
            a = np.frombuffer(raw, dtype=_NP[self.dtype])
            yield bf16_to_f32(a) if self.dtype == "bfloat16" else a.astype(np.float32)

    def encoded(self, ttype, finite=False):
        """The tensor's bytes in GGUF type ttype (sxgguf.TYPES), slice by slice.
        Same-type float data is copied as is; finite=True checks every value."""
        from sxgguf import tensor_bytes
        same = {("float32", "f32"), ("float16", "f16"), ("bfloat16", "bf16")}
        if (self.dtype, ttype) in same and not finite:
            yield from self._raw_chunks(SLICE)
            return
        for a in self.slices():
            if finite and not np.isfinite(a).all():
                raise ValueError(f"tensor '{self.name}' has non-finite values")
            yield tensor_bytes(a, ttype, self.name)

    def load(self):
        """The whole tensor as a float32 ndarray of its shape."""
        parts = list(self.slices())
        a = np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, np.float32))
        return np.ascontiguousarray(a, dtype=np.float32).reshape(self.shape)


def _contiguous_stride(shape, stride):
    """True when stride is row-major contiguous for shape (size-1 dims: any stride)."""
    acc = 1
    for d, s in zip(reversed(shape), reversed(stride)):
        if d != 1 and s != acc:
            return False
        acc *= d
    return True


# ---------------------------------------------------------------- torch pickles
class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


class _Storage:
    def __init__(self, dtype, key, numel_):
        self.dtype, self.key, self.numel = dtype, str(key), int(numel_)
        self.offset = None  # absolute file offset of its data, filled in later
        self.view = None    # legacy format: (base _Storage, element offset)


class _Record:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(d) for d in size), tuple(int(s) for s in stride)


def _rebuild_tensor(storage, storage_offset, size, stride, *rest):
    return _Record(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *rest):
    return data


class _Unpickler(pickle.Unpickler):
    """data.pkl of a torch checkpoint, without creating tensors or running code."""

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return _rebuild_parameter
        if module == "torch" and name in STORAGES:
            return _StorageType(STORAGES[name])
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} (not part of a state dict)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if len(pid) == 5:  # zip format: (tag, type, key, location, numel)
            _, stype, key, _loc, n = pid
            view = None
        elif len(pid) == 6:  # legacy: ... + view_metadata
            _, stype, key, _loc, n, view = pid
        else:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"unexpected storage type {stype!r}")
        memo = self.storages
        if key not in memo:
            memo[key] = _Storage(stype.dtype, key, n)
        st = memo[key]
        if view is not None:  # legacy storage view: (view_key, offset, size)
            vkey, voff, vsize = view
            if vkey not in memo:
                v = _Storage(stype.dtype, vkey, vsize)
                v.view = (st, int(voff))
                memo[vkey] = v
            return memo[vkey]
        return st


def _unpickle(f, where):
    u = _Unpickler(f)
    u.storages = {}
    try:
        obj = u.load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{where}: {e}") from None
    return obj, u.storages


def _zip_data_offset(path, f, info):
    """Absolute file offset of a stored zip member's data."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{path}: member {info.filename} is compressed")
    f.seek(info.header_offset)
    h = f.read(30)
    if h[:4] != b"PK\x03\x04":
        raise ValueError(f"{path}: bad zip local header for {info.filename}")
    n_name, n_extra = struct.unpack("<HH", h[26:30])
    return info.header_offset + 30 + n_name + n_extra


def _records(obj, path, finish):
    """Replaces every _Record of a nested dict/list by a Tensor."""
    if isinstance(obj, _Record):
        return finish(obj)
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _records(v, path, finish)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_records(v, path, finish) for v in obj)
    return obj


def _tensor_of(path, name, rec, base_offset, storage_numel):
    st = rec.storage
    isz = ITEMSIZE[st.dtype]
    n = numel(rec.size)
    if n and (rec.offset < 0 or any(s < 0 for s in rec.stride)):
        raise ValueError(f"{path}: tensor '{name}' has a negative offset or stride")
    last = rec.offset + sum((d - 1) * s for d, s in zip(rec.size, rec.stride)) if n else rec.offset
    if n and last >= storage_numel:
        raise ValueError(f"{path}: tensor '{name}' runs past its storage ({storage_numel} elements)")
    stride = None if _contiguous_stride(rec.size, rec.stride) else rec.stride
    return Tensor(name, st.dtype, rec.size, path, base_offset + rec.offset * isz, stride,
                  base_offset + storage_numel * isz)


def _read_torch_zip(path):
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError(f"{path}: not a torch checkpoint (expected one data.pkl, found {len(pkl)})")
        prefix = pkl[0][:-len("data.pkl")]
        if prefix + "byteorder" in zf.namelist() and zf.read(prefix + "byteorder") != b"little":
            raise ValueError(f"{path}: big-endian checkpoint")
        with zf.open(pkl[0]) as pf:
            obj, storages = _unpickle(pf, path)
        for st in storages.values():
            try:
                info = zf.getinfo(f"{prefix}data/{st.key}")
            except KeyError:
                raise ValueError(f"{path}: storage data/{st.key} missing from the archive") from None
            st.offset = _zip_data_offset(path, f, info)
            if info.file_size < st.numel * ITEMSIZE[st.dtype]:
                raise ValueError(f"{path}: storage data/{st.key} holds {info.file_size} bytes, "
                                 f"expected {st.numel * ITEMSIZE[st.dtype]}")
    return obj, lambda name, r: _tensor_of(path, name, r, r.storage.offset, r.storage.numel)


_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


def _read_torch_legacy(path):
    """The pre-1.6 format: magic, protocol, sys_info, the state pickle, the list of
    storage keys, then each storage as <int64 numel><raw bytes> in that order."""
    with open(path, "rb") as f:
        try:
            magic = pickle.load(f)
            if magic != _LEGACY_MAGIC:
                raise ValueError(f"{path}: neither a zip nor a legacy torch checkpoint")
            pickle.load(f)  # protocol version
            pickle.load(f)  # sys_info
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError):
            raise ValueError(f"{path}: neither a zip nor a legacy torch checkpoint") from None
        obj, storages = _unpickle(f, path)
        try:
            keys = pickle.load(f)
        except (pickle.UnpicklingError, EOFError):
            raise ValueError(f"{path}: truncated legacy checkpoint (no storage key list)") from None
        size = os.path.getsize(path)
        for key in keys:
            st = storages.get(str(key))
            if st is None or st.view is not None:
                raise ValueError(f"{path}: storage key {key!r} not referenced by the state")
            (n,) = struct.unpack("<q", f.read(8))
            st.offset = f.tell()
            f.seek(n * ITEMSIZE[st.dtype], 1)
            if n != st.numel or f.tell() > size:
                raise ValueError(f"{path}: storage {key} is truncated or has {n} elements, "
                                 f"expected {st.numel}")

    def finish(name, r):
        st, extra = r.storage, 0
        if st.view is not None:
            st, extra = st.view
        if st.offset is None:
            raise ValueError(f"{path}: storage of tensor '{name}' has no data")
        return _tensor_of(path, name, _Record(st, r.offset + extra, r.size, r.stride), st.offset,
                          st.numel)
    return obj, finish


def read_torch(path):
    """The unpickled object of a torch checkpoint with Tensor leaves."""
    if zipfile.is_zipfile(path):
        obj, finish = _read_torch_zip(path)
    else:
        obj, finish = _read_torch_legacy(path)

    def walk(o, prefix):
        if isinstance(o, _Record):
            return finish(prefix, o)
        if isinstance(o, dict):
            return collections.OrderedDict((k, walk(v, k if not prefix else f"{prefix}.{k}"))
                                           for k, v in o.items())
        return o
    return walk(obj, "")


def state_dict(obj, path):
    """{name: Tensor} of an unpickled checkpoint: a flat dict of tensors, or one
    wrapped as {"state_dict": {...}} (training checkpoints)."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) \
            and not any(isinstance(v, Tensor) for v in obj.values()):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: checkpoint is not a state dict")
    out = collections.OrderedDict()
    for k, v in obj.items():
        if not isinstance(v, Tensor):
            raise ValueError(f"{path}: entry '{k}' is not a tensor")
        v.name = k
        out[k] = v
    return out


# ---------------------------------------------------------------- safetensors
def read_safetensors(path):
    with open(path, "rb") as f:
        hdr = f.read(8)
        if len(hdr) != 8:
            raise ValueError(f"{path}: truncated safetensors header")
        n = struct.unpack("<Q", hdr)[0]
        if n > 100 << 20:
            raise ValueError(f"{path}: safetensors header of {n} bytes is implausible")
        try:
            meta = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: bad safetensors header: {e}") from None
    size = os.path.getsize(path)
    out = collections.OrderedDict()
    for k, v in meta.items():
        if k == "__metadata__":
            continue
        if v.get("dtype") not in ST_DTYPES:
            raise ValueError(f"{path}: tensor '{k}' has unsupported dtype {v.get('dtype')}")
        b, e = v["data_offsets"]
        t = Tensor(k, ST_DTYPES[v["dtype"]], v["shape"], path, 8 + n + b)
        if e - b != t.nbytes or b < 0 or 8 + n + e > size:
            raise ValueError(f"{path}: tensor '{k}' has inconsistent data offsets")
        out[k] = t
    return out


def read_file(path):
    """{name: Tensor} of one checkpoint file (.safetensors or a torch pickle)."""
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    return state_dict(read_torch(path), path)


# ---------------------------------------------------------------- folders
# (index json, single file, numbered-shard pattern), in order of preference
HF_LAYOUTS = (("model.safetensors.index.json", "model.safetensors", "model-*-of-*.safetensors"),
              ("pytorch_model.bin.index.json", "pytorch_model.bin", "pytorch_model-*-of-*.bin"))


def diffusers_layouts(variant=None):
    """diffusers weight files, in the order the converters prefer them: the variant's
    (when given), then diffusion_pytorch_model.safetensors, .fp16.safetensors, .bin, .fp16.bin."""
    names = []
    if variant:
        names += [f"diffusion_pytorch_model.{variant}.safetensors", f"diffusion_pytorch_model.{variant}.bin"]
    names += ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
              "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"]
    return tuple((n + ".index.json", n, None) for n in dict.fromkeys(names))


def folder_files(src, layouts=HF_LAYOUTS, want=None):
    """(files, weight_map or None) of the first layout present in src. With an
    index, only the shards holding a key for which want(key) is true are listed."""
    for index, single, pattern in layouts:
        ip = os.path.join(src, index)
        if os.path.exists(ip):
            try:
                with open(ip) as f:
                    wm = json.load(f)["weight_map"]
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{ip}: bad index: {e}") from None
            files = sorted({fn for k, fn in wm.items() if want is None or want(k)})
            return files, wm, index
        if os.path.exists(os.path.join(src, single)):
            return [single], None, single
        if pattern:
            files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(src, pattern)))
            if files:
                return files, None, pattern
    return [], None, None


def read_folder(src, layouts=HF_LAYOUTS, want=None):
    """{name: Tensor} over every shard of a model folder (first layout present)."""
    files, wm, what = folder_files(src, layouts, want)
    if not files:
        names = ", ".join(l[1] for l in layouts)
        raise ValueError(f"{src}: no weights found (looked for {names} and their shards)")
    out = collections.OrderedDict()
    for fn in files:
        p = os.path.join(src, fn)
        if not os.path.exists(p):
            raise ValueError(f"{src}: shard {fn} named by {what} is missing")
        for k, t in read_file(p).items():
            if want is not None and not want(k):
                continue
            if k in out:
                raise ValueError(f"{src}: tensor '{k}' appears in two shards")
            out[k] = t
    if wm is not None:
        missing = sorted(k for k in set(wm) - set(out) if want is None or want(k))
        if missing:
            raise ValueError(f"{src}: {what} lists '{missing[0]}' but no shard holds it")
    return out


# ---------------------------------------------------------------- writers
class _ZipWriter:
    """A stored (uncompressed) zip written member by member, as torch's
    PyTorchStreamWriter lays it out: each member's data 64-byte aligned by an
    'FB' padding extra field, a data descriptor after the data, zip64 records
    when offsets pass 4 GB."""

    ALIGN = 64

    def __init__(self, path):
        self.f = open(path, "wb")
        self.entries = []  # (name, offset, crc, size)

    def begin(self, name):
        nm = name.encode()
        off = self.f.tell()
        pad = (-(off + 30 + len(nm) + 4)) % self.ALIGN
        extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # 'FB' + padding
        self.f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0x0808, 0, 0, 0, 0, 0, 0, len(nm),
                                 len(extra)) + nm + extra)
        self.cur = [name, off, 0, 0]

    def write(self, data):
        self.f.write(data)
        self.cur[2] = zlib.crc32(data, self.cur[2])
        self.cur[3] += len(data)

    def end(self):
        name, off, crc, size = self.cur
        if size >= 0xFFFFFFFF:
            self.f.write(struct.pack("<IIQQ", 0x08074B50, crc, size, size))
        else:
            self.f.write(struct.pack("<IIII", 0x08074B50, crc, size, size))
        self.entries.append((name, off, crc, size))

    def close(self):
        cd_start = self.f.tell()
        for name, off, crc, size in self.entries:
            nm = name.encode()
            z64 = []
            csize = size
            if size >= 0xFFFFFFFF:
                z64 += [size, size]
                csize = 0xFFFFFFFF
            coff = off
            if off >= 0xFFFFFFFF:
                z64.append(off)
                coff = 0xFFFFFFFF
            extra = struct.pack("<HH", 1, 8 * len(z64)) + struct.pack("<%dQ" % len(z64), *z64) if z64 else b""
            self.f.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0x0808, 0, 0, 0, crc,
                                     csize, csize, len(nm), len(extra), 0, 0, 0, 0, coff) + nm + extra)
        cd_end = self.f.tell()
        n, cd_size = len(self.entries), cd_end - cd_start
        if n >= 0xFFFF or cd_start >= 0xFFFFFFFF or cd_size >= 0xFFFFFFFF:
            self.f.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_start))
            self.f.write(struct.pack("<IIQI", 0x07064B50, 0, cd_end, 1))
            self.f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(n, 0xFFFF), min(n, 0xFFFF),
                                     min(cd_size, 0xFFFFFFFF), min(cd_start, 0xFFFFFFFF), 0))
        else:
            self.f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, cd_size, cd_start, 0))
        self.f.close()


def _pickle_state_dict(specs):
    """data.pkl of torch.save(OrderedDict of contiguous tensors), protocol 2;
    tensor i lives in storage key str(i). specs: [(name, shape, dtype)]."""
    out = bytearray(b"\x80\x02")

    def glob_(mod, name):
        out.extend(b"c" + mod.encode() + b"\n" + name.encode() + b"\n")

    def uni(s):
        b = s.encode("utf-8")
        out.extend(b"X" + struct.pack("<I", len(b)) + b)

    def integer(v):
        if 0 <= v < 256:
            out.extend(b"K" + struct.pack("<B", v))
        elif 0 <= v < 65536:
            out.extend(b"M" + struct.pack("<H", v))
        elif -2**31 <= v < 2**31:
            out.extend(b"J" + struct.pack("<i", v))
        else:
            b = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
            out.extend(b"\x8a" + struct.pack("<B", len(b)) + b)

    def tup(vals):
        out.extend(b"(")
        for v in vals:
            integer(v)
        out.extend(b"t")

    glob_("collections", "OrderedDict")
    out.extend(b")R")
    for i, (name, shape, dtype) in enumerate(specs):
        shape = [int(d) for d in shape]
        stride, acc = [], 1
        for d in reversed(shape):
            stride.append(acc)
            acc *= d
        uni(name)
        glob_("torch._utils", "_rebuild_tensor_v2")
        out.extend(b"((")                            # args tuple, persistent id tuple
        uni("storage")
        glob_("torch", STORAGE_OF[dtype])
        uni(str(i))
        uni("cpu")
        integer(numel(shape))
        out.extend(b"tQ")                           # persistent id -> storage
        integer(0)                                   # storage offset
        tup(shape)
        tup(list(reversed(stride)))
        out.extend(b"\x89")                          # requires_grad False
        glob_("collections", "OrderedDict")
        out.extend(b")R")                            # backward hooks
        out.extend(b"tRs")                           # call, setitem
    out.extend(b".")
    return bytes(out)


class TorchZipWriter:
    """Writes what torch.save(OrderedDict(name -> contiguous tensor)) writes, with
    tensor data arriving one tensor at a time in specs order:

        w = TorchZipWriter(path, [(name, shape, dtype), ...])
        for name, ...: w.write_tensor(name, chunks_of_bytes)
        w.close()

    The archive folder is the file name without its extension, like torch.save."""

    def __init__(self, path, specs):
        self.path, self.tmp = path, path + ".tmp"
        self.specs = [(n, tuple(int(d) for d in s), dt) for n, s, dt in specs]
        for n, _, dt in self.specs:
            if dt not in STORAGE_OF:
                raise ValueError(f"tensor '{n}': dtype {dt} has no torch storage type")
        self.arch = os.path.splitext(os.path.basename(path))[0]
        self.z = _ZipWriter(self.tmp)
        self.z.begin(f"{self.arch}/data.pkl")
        self.z.write(_pickle_state_dict(self.specs))
        self.z.end()
        self.next = 0

    def write_tensor(self, name, chunks):
        want, shape, dt = self.specs[self.next]
        if name != want:
            raise ValueError(f"tensor '{name}' written out of order (expected '{want}')")
        self.z.begin(f"{self.arch}/data/{self.next}")
        for c in chunks:
            self.z.write(c)
        if self.z.cur[3] != numel(shape) * ITEMSIZE[dt]:
            raise ValueError(f"tensor '{name}': wrote {self.z.cur[3]} bytes, expected "
                             f"{numel(shape) * ITEMSIZE[dt]}")
        self.z.end()
        self.next += 1

    def close(self):
        if self.next != len(self.specs):
            raise ValueError(f"{self.path}: only {self.next} of {len(self.specs)} tensors written")
        self.z.begin(f"{self.arch}/version")
        self.z.write(b"3\n")
        self.z.end()
        self.z.close()
        os.replace(self.tmp, self.path)

    def abort(self):
        self.z.f.close()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


class SafetensorsWriter:
    """Writes a .safetensors file (as safetensors.torch.save_file lays it out: data
    ordered by decreasing alignment then name, the header in that order after
    __metadata__ and padded with spaces to 8 bytes);
    tensor data arrives one tensor at a time in that order (see .order)."""

    def __init__(self, path, specs, metadata=None):
        self.path, self.tmp = path, path + ".tmp"
        specs = [(n, tuple(int(d) for d in s), dt) for n, s, dt in specs]
        self.order = sorted(specs, key=lambda s: (-ITEMSIZE[s[2]], s[0]))
        hdr, off = {}, 0
        if metadata is not None:
            hdr["__metadata__"] = metadata
        spans = {}
        for n, s, dt in self.order:
            nb = numel(s) * ITEMSIZE[dt]
            spans[n] = (off, off + nb)
            off += nb
        for n, s, dt in self.order:
            hdr[n] = {"dtype": ST_NAME[dt], "shape": list(s), "data_offsets": list(spans[n])}
        h = json.dumps(hdr, separators=(",", ":")).encode()
        h += b" " * ((-len(h)) % 8)
        self.f = open(self.tmp, "wb")
        self.f.write(struct.pack("<Q", len(h)) + h)
        self.next, self.spans = 0, spans

    def write_tensor(self, name, chunks):
        want = self.order[self.next][0]
        if name != want:
            raise ValueError(f"tensor '{name}' written out of order (expected '{want}')")
        n = 0
        for c in chunks:
            self.f.write(c)
            n += len(c)
        b, e = self.spans[name]
        if n != e - b:
            raise ValueError(f"tensor '{name}': wrote {n} bytes, expected {e - b}")
        self.next += 1

    def close(self):
        if self.next != len(self.order):
            raise ValueError(f"{self.path}: only {self.next} of {len(self.order)} tensors written")
        self.f.close()
        os.replace(self.tmp, self.path)

    def abort(self):
        self.f.close()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


def hf_shards(specs, max_bytes=10 * 10**9):
    """transformers 4.30's shard_checkpoint rule: walk the state dict in order and
    start a new shard when the next tensor would push the current one past
    max_bytes. Returns a list of spec lists."""
    shards, cur, size = [], [], 0
    for s in specs:
        nb = numel(s[1]) * ITEMSIZE[s[2]]
        if cur and size + nb > max_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append(s)
        size += nb
    if cur:
        shards.append(cur)
    return shards
