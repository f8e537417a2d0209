"""llm: Hugging Face Llama folder (config.json + .bin or .safetensors shards) -> GGUF.

    python scripts/convert.py llm HF_DIR OUT.gguf [--dtype f32|f16|bf16]

HF_DIR is what LlamaForCausalLM.save_pretrained writes: config.json and
pytorch_model.bin / pytorch_model-0000k-of-0000n.bin (+ pytorch_model.bin.index.json)
or model.safetensors / model-0000k-of-0000n.safetensors (+ model.safetensors.index.json).
Tensors keep their original names (model.layers.0.self_attn.q_proj.weight, ...),
in a canonical order (embed_tokens, layers by index, norm, lm_head), so a sharded and
an unsharded save of the same model give byte-identical files. Rotary inv_freq
buffers are skipped. Matrices are stored in --dtype (default f16); 1-D tensors (norm
weights) always stay F32. With a quantized --dtype (q8_0, q4_0, q4_k) the matrices the
policy of scripts/quant_ref.py names are quantized (lm_head q8_0) and the others F16.
Metadata:

  seedx.llm.hidden, .layers, .heads, .kv_heads, .ffn, .vocab,
  seedx.llm.max_position_embeddings, .rms_eps, .rope_theta (10000 when absent),
  seedx.llm.bos_id, .eos_id, .pad_id (-1 when absent), seedx.llm.source_dtype

Streaming: nothing is loaded whole. Torch zip checkpoints are read with a restricted
unpickler that only records (storage, offset, shape, stride) for each tensor (it also
refuses any pickled object other than tensors and dicts); tensor bytes are then read
straight from the uncompressed zip member in slices, converted and appended to the
output. Safetensors are read by offset the same way. Peak memory is a few slices
(4 Mi elements each), independent of the checkpoint and tensor sizes. Old non-zip torch
pickles fall back to torch.load of one shard at a time.
"""
import collections
import glob
import json
import os
import pickle
import re
import struct
import zipfile

import numpy as np

import quant_ref

from sxgguf import ALIGN, GGUF_MAGIC, T_U32, TYPES, _s, _val

SLICE = 4 << 20  # elements per conversion slice (16 MiB of float32)

NP_DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64}


def add_args(p):
    p.add_argument("src", help="Hugging Face model folder (config.json + weight shards)")
    p.add_argument("out", help="output .gguf")
    p.add_argument("--dtype", choices=["f32", "f16", "bf16"] + list(quant_ref.QUANT_TYPES), default="f16",
                   help="storage type of the matrices (default f16)")


# ---------------------------------------------------------------- sources
class SrcTensor:
    """One tensor in a checkpoint: where its bytes are, without loading them."""

    def __init__(self, name, dtype, shape, path, offset, array=None):
        self.name, self.dtype, self.shape = name, dtype, tuple(int(d) for d in shape)
        self.path, self.offset, self.array = path, offset, array  # array: fallback only

    @property
    def numel(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def slices(self):
        """Yields float32 ndarrays (flattened, in order) of at most SLICE elements."""
        if self.array is not None:
            a = self.array.reshape(-1)
            for i in range(0, a.size, SLICE):
                yield np.ascontiguousarray(a[i:i + SLICE], dtype=np.float32)
            return
        isz = 2 if self.dtype in ("bfloat16", "float16") else np.dtype(NP_DTYPES[self.dtype]).itemsize
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            left = self.numel
            while left > 0:
                n = min(left, SLICE)
                raw = f.read(n * isz)
                if len(raw) != n * isz:
                    raise ValueError(f"{self.path}: truncated data for tensor '{self.name}'")
                if self.dtype == "bfloat16":
                    a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
                else:
                    a = np.frombuffer(raw, dtype=np.dtype(NP_DTYPES[self.dtype]).newbyteorder("<"))
                    a = a.astype(np.float32)
                yield a
                left -= n

    def raw_slices(self, ttype):
        """Yields the tensor's bytes in GGUF type ttype, slice by slice."""
        same = {("float16", "f16"), ("bfloat16", "bf16"), ("float32", "f32")}
        if self.array is None and (self.dtype, ttype) in same:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                left = self.numel * (4 if ttype == "f32" else 2)
                while left > 0:
                    raw = f.read(min(left, SLICE * 2))
                    if not raw:
                        raise ValueError(f"{self.path}: truncated data for tensor '{self.name}'")
                    yield raw
                    left -= len(raw)
            return
        for a in self.slices():  # SLICE is a multiple of every block: slices hold whole blocks
            if ttype in quant_ref.QUANT_TYPES:
                yield quant_ref.quantize(a, ttype, self.name)
            elif ttype == "f32":
                yield a.astype("<f4").tobytes()
            elif ttype == "f16":
                yield a.astype("<f2").tobytes()
            else:
                yield _bf16_bits(a).tobytes()


def _bf16_bits(a):
    """float32 -> bfloat16 bits, round to nearest even (as torch .bfloat16()),
    in uint32 arithmetic: only NaN payloads can wrap, and NaNs are set apart."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    r = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
    r = r.astype("<u2")
    nan = np.isnan(a)
    if nan.any():
        r[nan] = 0x7FC0
    return r


_STORAGE_DTYPES = {"FloatStorage": "float32", "HalfStorage": "float16",
                   "BFloat16Storage": "bfloat16", "DoubleStorage": "float64"}


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


class _Storage:
    def __init__(self, dtype, key, numel):
        self.dtype, self.key, self.numel = dtype, key, numel


class _LazyRecord:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, hooks=None,
                    metadata=None):
    return _LazyRecord(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    return data


class _LazyUnpickler(pickle.Unpickler):
    """Reads data.pkl of a torch zip checkpoint without creating tensors.
    Only the globals a state dict needs are allowed."""

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name.endswith("Storage"):
            raise ValueError(f"tensor storage type torch.{name} is not a float type")
        raise ValueError(f"refusing to unpickle {module}.{name} (not part of a state dict)")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or pid[0] != "storage":
            raise ValueError(f"unexpected persistent id {pid!r}")
        _, stype, key, _location, numel = pid
        if not isinstance(stype, _StorageType):
            raise ValueError(f"unexpected storage type {stype!r}")
        return _Storage(stype.dtype, str(key), int(numel))


def _zip_member_offset(path, zf, info):
    """Absolute file offset of a stored zip member's data."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{path}: member {info.filename} is compressed")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        h = f.read(30)
        if h[:4] != b"PK\x03\x04":
            raise ValueError(f"{path}: bad zip local header for {info.filename}")
        n_name, n_extra = struct.unpack("<HH", h[26:30])
        return info.header_offset + 30 + n_name + n_extra


def torch_bin_tensors(path):
    """{name: SrcTensor} for a torch checkpoint, reading only its pickle."""
    if not zipfile.is_zipfile(path):
        import torch  # old (non-zip) format: load this one shard whole
        sd = torch.load(path, map_location="cpu")
        out = {}
        for k, v in sd.items():
            a = v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy()
            out[k] = SrcTensor(k, str(a.dtype), a.shape, path, 0, array=a)
        return out
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError(f"{path}: not a torch checkpoint (no single data.pkl)")
        prefix = pkl[0][:-len("data.pkl")]
        try:
            sd = _LazyUnpickler(zf.open(pkl[0])).load()
        except (ValueError, pickle.UnpicklingError, EOFError) as e:
            raise ValueError(f"{path}: {e}") from None
        if not isinstance(sd, dict):
            raise ValueError(f"{path}: checkpoint is not a state dict")
        out = {}
        offs = {}
        for k, r in sd.items():
            if not isinstance(r, _LazyRecord):
                raise ValueError(f"{path}: entry '{k}' is not a tensor")
            st = r.storage
            # contiguous row-major strides required (what save_pretrained writes)
            exp, acc = [], 1
            for d in reversed(r.size):
                exp.append(acc)
                acc *= d
            if tuple(reversed(exp)) != r.stride and acc > 1:
                raise ValueError(f"{path}: tensor '{k}' is not contiguous (stride {r.stride})")
            if r.offset + acc > st.numel:
                raise ValueError(f"{path}: tensor '{k}' runs past its storage")
            if st.key not in offs:
                info = zf.getinfo(f"{prefix}data/{st.key}")
                offs[st.key] = _zip_member_offset(path, zf, info)
            isz = 2 if st.dtype in ("float16", "bfloat16") else np.dtype(NP_DTYPES[st.dtype]).itemsize
            out[k] = SrcTensor(k, st.dtype, r.size, path, offs[st.key] + r.offset * isz)
        return out


_ST_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def safetensors_tensors(path):
    with open(path, "rb") as f:
        hdr = f.read(8)
        if len(hdr) != 8:
            raise ValueError(f"{path}: truncated safetensors header")
        n = struct.unpack("<Q", hdr)[0]
        if n > 100 << 20:
            raise ValueError(f"{path}: safetensors header of {n} bytes is implausible")
        meta = json.loads(f.read(n))
    size = os.path.getsize(path)
    out = {}
    for k, v in meta.items():
        if k == "__metadata__":
            continue
        if v["dtype"] not in _ST_DTYPES:
            raise ValueError(f"{path}: tensor '{k}' has unsupported dtype {v['dtype']}")
        b, e = v["data_offsets"]
        t = SrcTensor(k, _ST_DTYPES[v["dtype"]], v["shape"], path, 8 + n + b)
        isz = 2 if t.dtype in ("float16", "bfloat16") else np.dtype(NP_DTYPES[t.dtype]).itemsize
        if e - b != t.numel * isz or 8 + n + e > size:
            raise ValueError(f"{path}: tensor '{k}' has inconsistent data offsets")
        out[k] = t
    return out


def checkpoint_tensors(src):
    """{name: SrcTensor} over every shard of the folder (prefers safetensors)."""
    def shards(index, single, pattern):
        ip = os.path.join(src, index)
        if os.path.exists(ip):
            with open(ip) as f:
                wm = json.load(f)["weight_map"]
            return sorted(set(wm.values())), wm
        if os.path.exists(os.path.join(src, single)):
            return [single], None
        files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(src, pattern)))
        return files, None

    for index, single, pattern, reader in (
            ("model.safetensors.index.json", "model.safetensors", "model-*-of-*.safetensors",
             safetensors_tensors),
            ("pytorch_model.bin.index.json", "pytorch_model.bin", "pytorch_model-*-of-*.bin",
             torch_bin_tensors)):
        files, wm = shards(index, single, pattern)
        if not files:
            continue
        out = {}
        for fn in files:
            p = os.path.join(src, fn)
            if not os.path.exists(p):
                raise ValueError(f"{src}: shard {fn} named by {index} is missing")
            for k, t in reader(p).items():
                if k in out:
                    raise ValueError(f"{src}: tensor '{k}' appears in two shards")
                out[k] = t
        if wm is not None:
            missing = sorted(set(wm) - set(out))
            if missing:
                raise ValueError(f"{src}: {index} lists '{missing[0]}' but no shard holds it")
        return out
    raise ValueError(f"{src}: no model.safetensors* or pytorch_model*.bin weights found")


# ---------------------------------------------------------------- config
def read_config(src):
    p = os.path.join(src, "config.json")
    if not os.path.exists(p):
        raise ValueError(f"{src}: config.json not found")
    with open(p) as f:
        c = json.load(f)
    act = c.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"{p}: hidden_act '{act}' is not supported (only silu)")
    if c.get("rope_scaling"):
        raise ValueError(f"{p}: rope_scaling {c['rope_scaling']} is not supported")
    heads = int(c["num_attention_heads"])
    kv = c.get("num_key_value_heads")
    cfg = dict(hidden=int(c["hidden_size"]), layers=int(c["num_hidden_layers"]), heads=heads,
               kv_heads=int(kv) if kv is not None else heads, ffn=int(c["intermediate_size"]),
               vocab=int(c["vocab_size"]), max_pos=int(c.get("max_position_embeddings", 2048)),
               rms_eps=float(c.get("rms_norm_eps", 1e-6)),
               rope_theta=float(c.get("rope_theta", 10000.0)),
               tie=bool(c.get("tie_word_embeddings", False)))
    for k in ("bos", "eos", "pad"):
        v = c.get(f"{k}_token_id")
        cfg[k] = int(v) if isinstance(v, int) else -1
    if cfg["hidden"] % heads or heads % cfg["kv_heads"]:
        raise ValueError(f"{p}: hidden_size {cfg['hidden']} / heads {heads} / "
                         f"kv heads {cfg['kv_heads']} are inconsistent")
    return cfg


def expected_shapes(cfg):
    D, F, V = cfg["hidden"], cfg["ffn"], cfg["vocab"]
    hd = D // cfg["heads"]
    kvd = cfg["kv_heads"] * hd
    exp = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,), "lm_head.weight": (V, D)}
    for i in range(cfg["layers"]):
        p = f"model.layers.{i}."
        exp.update({p + "input_layernorm.weight": (D,), p + "post_attention_layernorm.weight": (D,),
                    p + "self_attn.q_proj.weight": (D, D), p + "self_attn.k_proj.weight": (kvd, D),
                    p + "self_attn.v_proj.weight": (kvd, D), p + "self_attn.o_proj.weight": (D, D),
                    p + "mlp.gate_proj.weight": (F, D), p + "mlp.up_proj.weight": (F, D),
                    p + "mlp.down_proj.weight": (D, F)})
    return exp


def order_key(name):
    m = re.match(r"model\.layers\.(\d+)\.(.*)", name)
    if name == "model.embed_tokens.weight":
        return (0, 0, name)
    if m:
        return (1, int(m.group(1)), m.group(2))
    if name == "model.norm.weight":
        return (2, 0, name)
    return (3, 0, name)


# ---------------------------------------------------------------- streaming GGUF writer
class GGUFStreamWriter:
    """Writes a GGUF v3 file whose tensor table is known up front and whose
    data arrives tensor by tensor in byte slices. Written to path.tmp, renamed
    by close(); abort() removes the partial file."""

    def __init__(self, path, metadata, specs, alignment=ALIGN):
        self.path, self.tmp, self.align = path, path + ".tmp", alignment
        head = bytearray()
        head += struct.pack("<IIQQ", GGUF_MAGIC, 3, len(specs), len(metadata) + 1)
        _s(head, "general.alignment")
        head += struct.pack("<II", T_U32, alignment)
        for k, v in metadata.items():
            _s(head, k)
            _val(head, v)
        self.specs, off = [], 0
        for name, shape, ttype in specs:
            shape = tuple(shape) if shape else (1,)
            n = 1
            for d in shape:
                n *= d
            _s(head, name)
            head += struct.pack("<I", len(shape))
            for d in reversed(shape):
                head += struct.pack("<Q", int(d))
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


# ---------------------------------------------------------------- main
def convert(src, out, dtype="f16", verbose=True):
    cfg = read_config(src)
    tens = checkpoint_tensors(src)
    tens = {k: v for k, v in tens.items() if not k.endswith("rotary_emb.inv_freq")}
    exp = expected_shapes(cfg)
    if "lm_head.weight" not in tens and cfg["tie"] and "model.embed_tokens.weight" in tens:
        e = tens["model.embed_tokens.weight"]
        tens["lm_head.weight"] = SrcTensor("lm_head.weight", e.dtype, e.shape, e.path, e.offset,
                                           e.array)
    for k, shp in exp.items():
        if k not in tens:
            raise ValueError(f"{src}: tensor '{k}' is missing (config: {cfg['layers']} layers)")
        if tens[k].shape != shp:
            raise ValueError(f"{src}: tensor '{k}' has shape {list(tens[k].shape)}, expected "
                             f"{list(shp)} from config.json")
    extra = sorted(set(tens) - set(exp))
    if extra:
        raise ValueError(f"{src}: unexpected tensor '{extra[0]}' (config.json says "
                         f"{cfg['layers']} layers)")
    names = sorted(tens, key=order_key)
    src_dtypes = sorted({tens[k].dtype for k in names})
    md = {"general.architecture": "llama",
          "seedx.llm.hidden": cfg["hidden"], "seedx.llm.layers": cfg["layers"],
          "seedx.llm.heads": cfg["heads"], "seedx.llm.kv_heads": cfg["kv_heads"],
          "seedx.llm.ffn": cfg["ffn"], "seedx.llm.vocab": cfg["vocab"],
          "seedx.llm.max_position_embeddings": cfg["max_pos"], "seedx.llm.rms_eps": cfg["rms_eps"],
          "seedx.llm.rope_theta": cfg["rope_theta"], "seedx.llm.bos_id": cfg["bos"],
          "seedx.llm.eos_id": cfg["eos"], "seedx.llm.pad_id": cfg["pad"],
          "seedx.llm.source_dtype": ",".join(src_dtypes)}
    specs = [(k, tens[k].shape, quant_ref.storage_type(k, tens[k].shape, dtype)
              if len(tens[k].shape) > 1 else "f32") for k in names]
    w = GGUFStreamWriter(out, md, specs)
    try:
        for k, _, tt in specs:
            w.write_tensor(k, tens[k].raw_slices(tt))
        w.close()
    except BaseException:
        w.abort()
        raise
    if verbose:
        print(f"wrote {out}: {len(specs)} tensors, {w.total / 1e9:.3f} GB of data ({dtype})")
    return cfg


def run(args):
    convert(args.src, args.out, args.dtype)
