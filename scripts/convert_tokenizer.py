"""tokenizer: SentencePiece tokenizer folder (tokenizer.model + HF JSON files) -> GGUF.

    python scripts/convert.py tokenizer SRC_DIR OUT.gguf

SRC_DIR holds tokenizer.model and, when present, added_tokens.json,
special_tokens_map.json and tokenizer_config.json (the layout transformers'
LlamaTokenizer.save_pretrained writes; a plain Llama-2 folder with only
tokenizer.model works too). The JSON files are interpreted the way the slow
transformers 4.30.2 LlamaTokenizer.from_pretrained interprets them, and the
result is stored as plain tables, so the C side never needs those rules:

  tokenizer.ggml.model            "llama"
  tokenizer.ggml.tokens           [str]  every token: the SentencePiece pieces, then the added tokens
  tokenizer.ggml.scores           [f32]  piece scores (0 for added tokens)
  tokenizer.ggml.token_type       [i32]  SentencePiece piece types (1 normal, 2 unknown, 3 control,
                                         4 user-defined, 5 unused, 6 byte); added tokens are 4
  tokenizer.ggml.{bos,eos,unknown,padding}_token_id   (llama.cpp-compatible copies)
  seedx.tokenizer.n_base          number of SentencePiece pieces (ids >= n_base are added tokens)
  seedx.tokenizer.{bos,eos,unk,pad}_id   -1 when absent
  seedx.tokenizer.add_bos / add_eos      what add_special_tokens=True adds
  seedx.tokenizer.add_dummy_prefix, .byte_fallback, .unk_surface      (from the SentencePiece model)
  seedx.tokenizer.clean_up_tokenization_spaces
  seedx.tokenizer.no_split        [str]  transformers' unique_no_split_tokens (text is split on these)
  seedx.tokenizer.no_split_ids    [i32]  their ids
  seedx.tokenizer.no_split_lstrip / _rstrip [bool]  whether the text piece on the left is rstripped /
                                  the piece on the right is lstripped (4.30.2: both for plain added
                                  tokens, the AddedToken flags for special tokens)
  seedx.tokenizer.special_ids     [i32]  all_special_ids (skipped by skip_special_tokens; decoded
                                  literally by LlamaTokenizer.convert_tokens_to_string)

The SentencePiece ModelProto is read with a small protobuf wire-format parser
(no protobuf package needed). Only what the C tokenizer implements is accepted:
BPE model, identity normalizer (no precompiled charsmap), remove_extra_whitespaces
off, whitespace as prefix, no unused or user-defined pieces.
"""
import json
import os
import struct

from sxgguf import U32, write_gguf

# SentencePiece piece types
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def add_args(p):
    p.add_argument("src", help="tokenizer folder (tokenizer.model [+ JSON files])")
    p.add_argument("out", help="output .gguf")


# ---------------------------------------------------------------- protobuf
def _varint(b, i):
    v = 0
    shift = 0
    while True:
        if i >= len(b):
            raise ValueError("truncated varint")
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if not c & 0x80:
            return v, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(b):
    """Yields (field_number, wire_type, value) of one protobuf message."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        fn, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            if i + 8 > len(b):
                raise ValueError("truncated fixed64")
            v = b[i:i + 8]
            i += 8
        elif wt == 2:
            n, i = _varint(b, i)
            if i + n > len(b):
                raise ValueError("truncated length-delimited field")
            v = b[i:i + n]
            i += n
        elif wt == 5:
            if i + 4 > len(b):
                raise ValueError("truncated fixed32")
            v = b[i:i + 4]
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        yield fn, wt, v


def _i32(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def read_sentencepiece_model(path):
    """Parses a SentencePiece ModelProto into a dict (proto2 defaults applied)."""
    with open(path, "rb") as f:
        data = f.read()
    m = {"pieces": [], "model_type": 1, "byte_fallback": False, "treat_ws_suffix": False,
         "unk_surface": " \u2047 ", "unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1,
         "norm_name": "", "charsmap": b"", "add_dummy_prefix": True,
         "remove_extra_whitespaces": True, "escape_whitespaces": True, "rule_tsv": "",
         "has_denormalizer": False}
    try:
        for fn, wt, v in _fields(data):
            if fn == 1 and wt == 2:
                piece, score, ptype = b"", 0.0, NORMAL
                for f2, w2, v2 in _fields(v):
                    if f2 == 1 and w2 == 2:
                        piece = v2
                    elif f2 == 2 and w2 == 5:
                        score = struct.unpack("<f", v2)[0]
                    elif f2 == 3 and w2 == 0:
                        ptype = v2
                m["pieces"].append((piece.decode("utf-8"), score, ptype))
            elif fn == 2 and wt == 2:
                for f2, w2, v2 in _fields(v):
                    if f2 == 3 and w2 == 0:
                        m["model_type"] = v2
                    elif f2 == 24 and w2 == 0:
                        m["treat_ws_suffix"] = bool(v2)
                    elif f2 == 35 and w2 == 0:
                        m["byte_fallback"] = bool(v2)
                    elif f2 == 40 and w2 == 0:
                        m["unk_id"] = _i32(v2)
                    elif f2 == 41 and w2 == 0:
                        m["bos_id"] = _i32(v2)
                    elif f2 == 42 and w2 == 0:
                        m["eos_id"] = _i32(v2)
                    elif f2 == 43 and w2 == 0:
                        m["pad_id"] = _i32(v2)
                    elif f2 == 44 and w2 == 2:
                        m["unk_surface"] = v2.decode("utf-8")
            elif fn == 3 and wt == 2:
                for f2, w2, v2 in _fields(v):
                    if f2 == 1 and w2 == 2:
                        m["norm_name"] = v2.decode("utf-8")
                    elif f2 == 2 and w2 == 2:
                        m["charsmap"] = bytes(v2)
                    elif f2 == 3 and w2 == 0:
                        m["add_dummy_prefix"] = bool(v2)
                    elif f2 == 4 and w2 == 0:
                        m["remove_extra_whitespaces"] = bool(v2)
                    elif f2 == 5 and w2 == 0:
                        m["escape_whitespaces"] = bool(v2)
                    elif f2 == 6 and w2 == 2:
                        m["rule_tsv"] = v2.decode("utf-8")
            elif fn == 5 and wt == 2:
                for f2, w2, v2 in _fields(v):
                    if f2 == 2 and w2 == 2 and len(v2) > 0:
                        m["has_denormalizer"] = True
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a SentencePiece model ({e})")
    if not m["pieces"]:
        raise ValueError(f"{path}: not a SentencePiece model (no pieces)")
    return m


def check_supported(m, path):
    def bad(what):
        raise ValueError(f"{path}: {what} is not supported by seedx.c's tokenizer")
    if m["model_type"] != 2:
        bad(f"model_type {m['model_type']} (only BPE = 2)")
    if m["charsmap"] or m["rule_tsv"]:
        bad(f"normalizer '{m['norm_name']}' with a character map (only 'identity')")
    if m["remove_extra_whitespaces"]:
        bad("remove_extra_whitespaces=true")
    if not m["escape_whitespaces"]:
        bad("escape_whitespaces=false")
    if m["treat_ws_suffix"]:
        bad("treat_whitespace_as_suffix=true")
    if m["has_denormalizer"]:
        bad("a denormalizer")
    seen = set()
    for i, (p, _, t) in enumerate(m["pieces"]):
        if t in (UNUSED, USER_DEFINED):
            bad(f"piece {i} '{p}' of type {'unused' if t == UNUSED else 'user-defined'}")
        if t not in (NORMAL, UNKNOWN, CONTROL, BYTE):
            bad(f"piece {i} of type {t}")
        if p in seen or not p:
            raise ValueError(f"{path}: piece {i} '{p}' is empty or duplicated")
        seen.add(p)
    unk = [i for i, (_, _, t) in enumerate(m["pieces"]) if t == UNKNOWN]
    if len(unk) != 1:
        raise ValueError(f"{path}: expected exactly one unknown piece, found {len(unk)}")


# ---------------------------------------------- transformers 4.30.2 semantics
class Tok:
    """A special-token value as transformers holds it: AddedToken (with
    lstrip/rstrip) or a plain str (added=False)."""

    def __init__(self, content, added_token, lstrip=False, rstrip=False):
        self.content, self.added_token, self.lstrip, self.rstrip = content, added_token, lstrip, rstrip


def _tok_from_json(v, wrap_str):
    if v is None:
        return None
    if isinstance(v, str):
        return Tok(v, wrap_str)
    if isinstance(v, dict) and "content" in v:
        return Tok(v["content"], True, bool(v.get("lstrip", False)), bool(v.get("rstrip", False)))
    raise ValueError(f"unsupported special token value {v!r}")


def _load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def resolve(src, m):
    """Mirrors LlamaTokenizer.from_pretrained (transformers 4.30.2) on the JSON files."""
    pieces = [p for p, _, _ in m["pieces"]]
    n_base = len(pieces)
    piece_id = {p: i for i, p in enumerate(pieces)}
    unk_piece_id = m["unk_id"] if 0 <= m["unk_id"] < n_base else 0

    cfg_path = os.path.join(src, "tokenizer_config.json")
    cfg = _load_json(cfg_path) if os.path.exists(cfg_path) else {}
    cls = cfg.get("tokenizer_class")
    if cls not in (None, "LlamaTokenizer", "LlamaTokenizerFast"):
        raise ValueError(f"{cfg_path}: tokenizer_class '{cls}' is not a Llama tokenizer")
    # LlamaTokenizer.__init__: str special tokens are wrapped in AddedToken(lstrip=False, rstrip=False)
    special = {
        "bos_token": _tok_from_json(cfg.get("bos_token", "<s>"), True),
        "eos_token": _tok_from_json(cfg.get("eos_token", "</s>"), True),
        "unk_token": _tok_from_json(cfg.get("unk_token", "<unk>"), True),
        "sep_token": _tok_from_json(cfg.get("sep_token"), False),
        "pad_token": _tok_from_json(cfg.get("pad_token"), True),
        "cls_token": _tok_from_json(cfg.get("cls_token"), False),
        "mask_token": _tok_from_json(cfg.get("mask_token"), False),
    }
    additional = [_tok_from_json(t, False) for t in cfg.get("additional_special_tokens", []) or []]
    # special_tokens_map.json overrides (str values stay plain str there)
    stm_path = os.path.join(src, "special_tokens_map.json")
    if os.path.exists(stm_path):
        for k, v in _load_json(stm_path).items():
            if k == "additional_special_tokens":
                additional = [_tok_from_json(t, False) for t in (v or [])]
            elif k in special:
                special[k] = _tok_from_json(v, False)
    order = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]
    special_ext = [special[k] for k in order if special[k] is not None] + additional
    special_strs = []
    for t in special_ext:
        if t.content not in special_strs:
            special_strs.append(t.content)

    added = {}  # added_tokens_encoder
    no_split = set()

    def to_id(s):
        return added[s] if s in added else piece_id.get(s, unk_piece_id)

    def add_tokens(toks, is_special):
        unk_str = special["unk_token"].content if special["unk_token"] else None
        to_add = []
        for t in toks:
            if t != unk_str and to_id(t) == to_id(unk_str) and t not in to_add:
                to_add.append(t)
        base = n_base + len(added)
        for i, t in enumerate(to_add):
            added[t] = base + i
        no_split.update(toks if is_special else to_add)

    at_path = os.path.join(src, "added_tokens.json")
    if os.path.exists(at_path):
        enc = sorted(_load_json(at_path).items(), key=lambda x: x[1])
        run, run_special = [], None
        for tok, idx in enc:
            cur = n_base + len(added) + len(run)
            if idx != cur:
                raise ValueError(f"{at_path}: non-consecutive added token '{tok}': has index {idx}, "
                                 f"should have {cur}")
            is_sp = tok in special_strs
            if run_special is None or run_special == is_sp:
                run.append(tok)
            else:
                add_tokens(run, run_special)
                run = [tok]
            run_special = is_sp
        if run:
            add_tokens(run, run_special)
    add_tokens(special_strs, True)  # sanitize_special_tokens

    # strip flags used by PreTrainedTokenizer.tokenize
    ext = {}
    for t in special_ext:
        if t.added_token:
            ext[t.content] = t
    ns = sorted(no_split)
    lstrip = [ext[t].lstrip if t in ext else True for t in ns]  # strip the piece on the left
    rstrip = [ext[t].rstrip if t in ext else True for t in ns]  # strip the piece on the right

    def sid(k):
        return to_id(special[k].content) if special[k] is not None else -1

    added_list = sorted(added.items(), key=lambda x: x[1])
    return {
        "n_base": n_base,
        "added": added_list,
        "no_split": ns,
        "no_split_ids": [to_id(t) for t in ns],
        "no_split_lstrip": lstrip,
        "no_split_rstrip": rstrip,
        "special_ids": [to_id(t) for t in special_strs],
        "bos_id": sid("bos_token"), "eos_id": sid("eos_token"),
        "unk_id": sid("unk_token"), "pad_id": sid("pad_token"),
        "add_bos": bool(cfg.get("add_bos_token", True)),
        "add_eos": bool(cfg.get("add_eos_token", False)),
        "clean_up": bool(cfg.get("clean_up_tokenization_spaces", False)),
    }


def build_metadata(src):
    mpath = os.path.join(src, "tokenizer.model")
    if not os.path.isfile(mpath):
        raise ValueError(f"{src}: no tokenizer.model in this folder")
    m = read_sentencepiece_model(mpath)
    check_supported(m, mpath)
    r = resolve(src, m)
    tokens = [p for p, _, _ in m["pieces"]] + [t for t, _ in r["added"]]
    scores = [float(s) for _, s, _ in m["pieces"]] + [0.0] * len(r["added"])
    types = [int(t) for _, _, t in m["pieces"]] + [USER_DEFINED] * len(r["added"])
    md = {
        "general.architecture": "seedx-tokenizer",
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
        "seedx.tokenizer.n_base": r["n_base"],
        "seedx.tokenizer.bos_id": r["bos_id"],
        "seedx.tokenizer.eos_id": r["eos_id"],
        "seedx.tokenizer.unk_id": r["unk_id"],
        "seedx.tokenizer.pad_id": r["pad_id"],
        "seedx.tokenizer.add_bos": r["add_bos"],
        "seedx.tokenizer.add_eos": r["add_eos"],
        "seedx.tokenizer.add_dummy_prefix": bool(m["add_dummy_prefix"]),
        "seedx.tokenizer.byte_fallback": bool(m["byte_fallback"]),
        "seedx.tokenizer.unk_surface": m["unk_surface"],
        "seedx.tokenizer.clean_up_tokenization_spaces": r["clean_up"],
        "seedx.tokenizer.no_split": r["no_split"],
        "seedx.tokenizer.no_split_ids": r["no_split_ids"],
        "seedx.tokenizer.no_split_lstrip": r["no_split_lstrip"],
        "seedx.tokenizer.no_split_rstrip": r["no_split_rstrip"],
        "seedx.tokenizer.special_ids": r["special_ids"],
    }
    for k, v in (("bos", r["bos_id"]), ("eos", r["eos_id"]), ("unknown", r["unk_id"]),
                 ("padding", r["pad_id"])):
        if v >= 0:
            md[f"tokenizer.ggml.{k}_token_id"] = U32(v)
    md["tokenizer.ggml.add_bos_token"] = r["add_bos"]
    md["tokenizer.ggml.add_eos_token"] = r["add_eos"]
    return md, r


def run(args):
    md, r = build_metadata(args.src)
    write_gguf(args.out, md, [])
    print(f"{args.out}: {len(md['tokenizer.ggml.tokens'])} tokens ({r['n_base']} pieces + "
          f"{len(r['added'])} added), {len(r['no_split'])} no-split tokens")
