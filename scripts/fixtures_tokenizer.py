#!/usr/bin/env python3
"""Fixtures for tokenizer.c (tests/fixtures/tokenizer/).

1. Builds a SEED-X-style tokenizer folder with transformers 4.30.2: the real
   Llama-2 tokenizer.model + pad "<unk>" + the 330 SEED-X added tokens (ids
   32000..32329 of seedx_added_tokens_instamanip.json; InstaManip's own
   32330+ are dropped), save_pretrained, then checks that from_pretrained puts
   every token at the id the spec lists. A plain folder holds only tokenizer.model.
2. Converts both with our converter -> seedx_tokenizer.gguf, plain_tokenizer.gguf,
   and checks the converter's tables against the loaded transformers tokenizer.
   Two small-vocabulary variants (variant_special.gguf, variant_nofb.gguf, see
   build_variants) cover special-token strip flags, Trie.split corner cases,
   add_eos_token, clean-up and the no-byte-fallback path; bad/*.gguf are tiny
   containers broken in one way each.
3. Writes cases.gguf: a corpus of strings with the ids of
   encode(text, add_special_tokens=False) for both tokenizers, decode
   expectations (skip_special_tokens False/True) for those ids and for random id
   sequences, invalid-UTF-8 byte strings (see sp_replace), the variants' cases,
   and the CLI test's expectations.
Deterministic: fixed seeds, no dependence on hash order.
"""
import json
import os
import random
import shutil
import sys
import tempfile
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import sentencepiece as spm  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaTokenizer  # noqa: E402

import convert_tokenizer  # noqa: E402
from sxgguf import write_gguf  # noqa: E402

SHARED = os.path.join(ROOT, "tests")  # tests/data: the test data the repo carries
DATA = os.path.join(SHARED, "data", "tokenizer")
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")

assert transformers.__version__ == "4.30.2", transformers.__version__
assert spm.__version__ == "0.1.99", spm.__version__


def build_folders(tmp):
    model = os.path.join(DATA, "tokenizer.model")
    with open(os.path.join(DATA, "seedx_added_tokens_instamanip.json"), encoding="utf-8") as f:
        table = json.load(f)
    added = [t for t, i in sorted(table.items(), key=lambda x: x[1]) if i < 32330]
    assert len(added) == 330
    # the spec's order (section 3.1)
    spec = ([f"<img_{i:05d}>" for i in range(100)] + ["<img>", "</img>", "<patch>", "</patch>"]
            + [f"<loc-{i}>" for i in range(224)] + ["<box_start>", "<box_end>"])
    assert added == spec, "added-token table does not match the spec order"
    tok = LlamaTokenizer(model, legacy=False)
    tok.pad_token = "<unk>"
    assert tok.add_tokens(added) == 330
    sx = os.path.join(tmp, "cvlm_llama2_tokenizer_100img_and_224loc_addpatch")
    tok.save_pretrained(sx)
    plain = os.path.join(tmp, "plain")
    os.makedirs(plain)
    shutil.copy(model, os.path.join(plain, "tokenizer.model"))
    t_sx = LlamaTokenizer.from_pretrained(sx)
    t_plain = LlamaTokenizer.from_pretrained(plain)
    for i, t in enumerate(spec):
        assert t_sx.convert_tokens_to_ids(t) == 32000 + i, t
    assert len(t_sx) == 32330 and len(t_plain) == 32000
    return sx, plain, t_sx, t_plain, spec


VAR_ADDED = ["xq_1", "xq_100", "[CLS]", "@@a", "@@abc", "b@@", "c@@d", "@@", "blowing", "lower", "ab",
             "猫猫", "x y", " pad ", "<tag>", "<ta", "ag>"]


def build_variants(tmp):
    """Two small-vocabulary variants (the first 4000 Llama-2 pieces, which is still
    a valid BPE model) for code paths SEED-X's folder does not reach:
    'special': additional special tokens with lstrip/rstrip, eos rstrip, overlapping
               and prefix-sharing added tokens (Trie.split corner cases),
               add_eos_token and clean_up_tokenization_spaces on;
    'nofb':    no byte pieces and byte_fallback off (unknown characters -> one
               unk id per run; decode of unk)."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    m = pb.ModelProto()
    with open(os.path.join(DATA, "tokenizer.model"), "rb") as f:
        m.ParseFromString(f.read())
    del m.pieces[4000:]
    out = {}
    d = os.path.join(tmp, "var_special")
    os.makedirs(d)
    with open(os.path.join(d, "small.model"), "wb") as f:
        f.write(m.SerializeToString())
    tok = LlamaTokenizer(os.path.join(d, "small.model"), add_eos_token=True, clean_up_tokenization_spaces=True,
                         eos_token=transformers.AddedToken("</s>", lstrip=False, rstrip=True))
    tok.add_tokens(VAR_ADDED)
    tok.add_special_tokens({"additional_special_tokens": [
        transformers.AddedToken("<sp_l>", lstrip=True, rstrip=False),
        transformers.AddedToken("<sp_r>", lstrip=False, rstrip=True), "<sp_plain>"]})
    tok.save_pretrained(d)
    os.remove(os.path.join(d, "small.model"))
    out["special"] = (d, LlamaTokenizer.from_pretrained(d))
    d = os.path.join(tmp, "var_nofb")
    os.makedirs(d)
    del m.pieces[3:259]
    m.trainer_spec.byte_fallback = False
    with open(os.path.join(d, "tokenizer.model"), "wb") as f:
        f.write(m.SerializeToString())
    out["nofb"] = (d, LlamaTokenizer.from_pretrained(d))
    return out


def var_corpus(rnd):
    frags = VAR_ADDED + ["<sp_l>", "<sp_r>", "<sp_plain>", "</s>", "<s>", "<unk>", " ", "  ", "\n", "x", "ab", "c",
                         "d", "@", "_", "1", "0", "q", "猫", "é", "🙂", "ß", "the", " cat", ".", " .", " ,", " 's",
                         " n't", "xq_10", "@@ab", "lowing", "blowe", "r"]
    out = ["", "xq_100", "xq_1000", "xq_10", "@@abc@@d", "b@@abc", "@@a@@abc", "c@@@abc", "blower", "blowing lower",
           "a <sp_l> b", "a <sp_r> b", "a <sp_plain> b", "a </s> b", "a <s> b", "<sp_l>  <sp_r>", "猫猫猫",
           "x y x  y", " pad  pad ", "<tag><ta<tag>ag>", "<t<tag>", "Hello , world ! it 's"]
    for _ in range(300):
        out.append("".join(rnd.choice(frags) for _ in range(rnd.randrange(1, 14))))
    return out


def write_bad_containers():
    """Tiny tokenizer containers, each broken in one way, with the part of the
    error message the C loader must give. Returns (files, expected substrings)."""
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["\u2581", "a", "\u2581a"]
    types = [2, 3, 3] + [6] * 256 + [1, 1, 1]
    base = {
        "tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": toks,
        "tokenizer.ggml.scores": [0.0] * 259 + [-1.0, -2.0, -3.0], "tokenizer.ggml.token_type": types,
        "seedx.tokenizer.n_base": len(toks), "seedx.tokenizer.bos_id": 1, "seedx.tokenizer.eos_id": 2,
        "seedx.tokenizer.unk_id": 0, "seedx.tokenizer.pad_id": -1, "seedx.tokenizer.add_bos": True,
        "seedx.tokenizer.add_eos": False, "seedx.tokenizer.add_dummy_prefix": True,
        "seedx.tokenizer.byte_fallback": True, "seedx.tokenizer.unk_surface": " \u2047 ",
        "seedx.tokenizer.clean_up_tokenization_spaces": False,
        "seedx.tokenizer.no_split": ["</s>", "<s>", "<unk>"], "seedx.tokenizer.no_split_ids": [2, 1, 0],
        "seedx.tokenizer.no_split_lstrip": [False] * 3, "seedx.tokenizer.no_split_rstrip": [False] * 3,
        "seedx.tokenizer.special_ids": [1, 2, 0],
    }
    cases = [
        ("ok", {}, ""),
        ("model", {"tokenizer.ggml.model": "gpt2"}, "tokenizer.ggml.model"),
        ("n_base", {"seedx.tokenizer.n_base": 9999}, "n_base"),
        ("special", {"seedx.tokenizer.special_ids": [1, 2, 5000]}, "special_ids"),
        ("byte", {"tokenizer.ggml.tokens": toks[:3] + ["<0xZZ>"] + toks[4:]}, "<0xZZ>"),
        ("ns_len", {"seedx.tokenizer.no_split_ids": [2, 1]}, "no_split_ids"),
        ("ns_id", {"seedx.tokenizer.no_split_ids": [2, 1, 777]}, "no_split_ids"),
        ("missing", {"seedx.tokenizer.add_bos": None}, "seedx.tokenizer.add_bos"),
        ("type", {"tokenizer.ggml.token_type": types[:-1] + [9]}, "type"),
        ("scores", {"tokenizer.ggml.scores": [0.0] * 10}, "tokenizer.ggml.scores"),
        ("bos", {"seedx.tokenizer.bos_id": 262}, "bos_id"),
        ("no_unk", {"tokenizer.ggml.token_type": [1] + types[1:]}, "unknown"),
        ("user_defined", {"tokenizer.ggml.token_type": types[:-1] + [4]}, "user-defined"),
        ("empty_piece", {"tokenizer.ggml.tokens": toks[:-1] + [""]}, "empty"),
        ("tokens_type", {"tokenizer.ggml.tokens": list(range(len(toks)))}, "tokenizer.ggml.tokens"),
        ("ns_utf8", {"seedx.tokenizer.no_split": ["</s>", "<s>", b"<\xff>"]}, "UTF-8"),
    ]
    d = os.path.join(OUT, "bad")
    os.makedirs(d, exist_ok=True)
    files, expect = [], []
    for name, change, msg in cases:
        md = dict(base)
        for k, v in change.items():
            if v is None:
                del md[k]
            else:
                md[k] = v
        write_gguf(os.path.join(d, f"{name}.gguf"), md, [])
        files.append(f"{name}.gguf")
        expect.append(msg)
    return files, expect


def check_converter(md, r, t):
    """The converter's reading of the JSON files must equal transformers' own."""
    assert dict(r["added"]) == t.added_tokens_encoder
    assert r["no_split"] == sorted(t.unique_no_split_tokens), (r["no_split"], t.unique_no_split_tokens)
    assert r["special_ids"] == t.all_special_ids or sorted(set(r["special_ids"])) == sorted(set(t.all_special_ids))
    ext = {str(x): x for x in t.all_special_tokens_extended if isinstance(x, transformers.AddedToken)}
    for s, ls, rs in zip(r["no_split"], r["no_split_lstrip"], r["no_split_rstrip"]):
        e = ext.get(s)
        assert (ls, rs) == ((e.lstrip, e.rstrip) if e is not None else (True, True)), s
    assert r["bos_id"] == t.bos_token_id and r["eos_id"] == t.eos_token_id
    assert r["unk_id"] == t.unk_token_id
    assert r["pad_id"] == (t.pad_token_id if t.pad_token is not None else -1)
    assert r["add_bos"] == t.add_bos_token and r["add_eos"] == t.add_eos_token
    assert r["clean_up"] == t.clean_up_tokenization_spaces
    toks = md["tokenizer.ggml.tokens"]
    assert len(toks) == len(t)
    for i in range(len(t)):
        assert toks[i] == t.convert_ids_to_tokens(i), i
    sp = t.sp_model
    for i in range(sp.get_piece_size()):
        assert md["tokenizer.ggml.scores"][i] == sp.get_score(i)
        ty = md["tokenizer.ggml.token_type"][i]
        assert (ty == 2) == sp.is_unknown(i) and (ty == 3) == sp.is_control(i)
        assert (ty == 6) == sp.is_byte(i) and (ty == 5) == sp.is_unused(i)


# ------------------------------------------------------------------ corpus
def img_block(n):
    """n images: n-1 tiles (<patch>) then the global view (<img>), 64 tokens each."""
    inner = "".join(f"<img_{i:05d}>" for i in range(64))
    return "".join(f"<patch>{inner}</patch>" for _ in range(n - 1)) + f"<img>{inner}</img>"


PY_SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace()]


def corpus(spec_tokens):
    rnd = random.Random(1234)
    out = []
    questions = ["What is in the image?", "How many people are there?",
                 "Where is the red car? Answer with a bounding box.",
                 "Describe the scene in detail.", "图中有什么？", "Is there a dog?",
                 "What color is the man's shirt?", "Read the text on the sign."]
    captions = ["A photo of a cat sitting on a sofa", "a red car parked in front of a house",
                "An astronaut riding a horse on the moon, 4k", "  leading spaces caption",
                "trailing spaces caption   ", "一只可爱的猫", "A sunset over the sea.\nHigh detail"]
    edits = ["Make the sky blue", "Remove the car", "add a hat to the man", "Turn it into a watercolor painting",
             "把背景换成海滩"]
    for n in range(1, 6):
        b = img_block(n)
        out.append(f"Question: {b}Describe this image briefly.\nAnswer:")
        out.append(f"{b}In ths background of the image there is a car [[ <box_start>")
        for q in (questions if n == 1 else questions[n - 2:n]):
            out.append(f"[INST] {b}{q} [/INST]\n")
        out.append(f"[INST] {b}{edits[n % len(edits)]} [/INST]\n")
    for c in captions:
        out.append(f"{c}<img>")
        out.append(f"[INST] Generate an image: {c} [/INST]\n")
    for e in edits:
        out.append(f"[INST] {img_block(1)}{e} [/INST]\n")
    out.append("[INST] " + img_block(1) + "Where is the dog? [/INST]\n")
    # grounding answers
    for _ in range(40):
        locs = "".join(f"<loc-{rnd.randrange(224)}>" for _ in range(4))
        pre = rnd.choice(["", "The car", "The car is at ", "dog: ", "[[ ", "\n"])
        post = rnd.choice(["", ".", " and", "\n", " ]]", "</s>"])
        out.append(f"{pre}<box_start>{locs}<box_end>{post}")
    out.append("<box_start><loc-12><loc-40><loc-100><loc-200><box_end>")
    out.append("<box_start> <loc-12> <loc-40> <loc-100> <loc-200> <box_end>")
    # generated-output-like strings
    gen = "<img>" + "".join(f"<img_{i:05d}>" for i in range(64)) + "</img>"
    out += ["Here is a picture." + gen, "Here is a picture. " + gen + " Done.", gen + "</s>"]
    # text right against added tokens, spaces on either side
    sides = ["", "a", "a ", "a  ", " ", "  ", "\n", "a\n", "\t", "word.", " word", "\u3000", "\xa0", "x\r\n",
             "猫", "é", "🙂"]
    toks = ["<img>", "</img>", "<patch>", "</patch>", "<box_start>", "<box_end>", "<img_00000>",
            "<img_00099>", "<loc-0>", "<loc-223>", "<s>", "</s>", "<unk>"]
    for t in toks:
        for L in sides:
            for R in rnd.sample(sides, 6):
                out.append(L + t + R)
    for t in toks[:6]:
        for a in ["Describe", " Describe", "  Describe", "\nDescribe"]:
            out += [t + a, a + t, a + t + a, t + a + t]
    # every Python whitespace char next to added tokens (str.strip semantics)
    for c in PY_SPACES:
        out += [f"<img>{c}x", f"x{c}<img>", f"{c}<patch>{c}", f"{c}{c}", f"a{c}b"]
    for c in ["\u200b", "\u180e", "\ufeff", "\u2060"]:  # not str.isspace
        out += [f"<img>{c}x", f"x{c}</img>"]
    # whitespace runs
    for k in range(1, 12):
        out += [" " * k, "\t" * k, "\n" * k, "a" + " " * k + "b", " " * k + "a", "a" + " " * k]
    out += ["", " \t\n", "\r\n", "\n\n\n", "a\tb\tc", "line1\nline2\n", "\n\nx\n\n", " \n \n ", "\x0b\x0c"]
    # unicode
    out += ["你好，世界！", "日本語のテキストです。", "한국어 문장입니다", "مرحبا بالعالم", "שלום עולם",
            "Привет, мир!", "Ελληνικά", "हिन्दी भाषा", "ภาษาไทย", "Tiếng Việt có dấu",
            "👨\u200d👩\u200d👧\u200d👦 family", "🏳️\u200d🌈", "👍🏽", "e\u0301 vs é", "a\u0300\u0301\u0302\u0303",
            "Z\u0351\u036b\u0343a\u0322l\u0360g\u0315o", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\U0001F600\U0001F601\U0001F602",
            "\ue000\uf8ff", "\U0010FFFF", "\ufffd", "\ufeffBOM", "\x00nul\x00", "\x01\x02\x1f\x7f",
            "©®™ ½ ¼ °C", "ﬁ ﬂ ﬀ", "Ａｂｃ１２３", "𠀀𠀁 rare CJK", "\u0600\u0601", "▁", "▁▁x", " ▁ ",
            "𓀀𓀁", "ᚠᛇᚻ", "⠓⠑⠇⠇⠕", "∀x∈ℝ: x²≥0", "„Quotes“ «guillemets» ‘single’"]
    # numbers, code, long words
    out += ["0", "1234567890", "3.14159265358979", "-42", "1e-10", "1,000,000", "2024-04-22", "12:30:45",
            "def f(x):\n    return x * 2\n", "int main(void) { return 0; }", "for (i = 0; i < n; i++) {\n\tx[i] = 0;\n}",
            "<div class=\"a\">b</div>", "{\"key\": [1, 2, 3]}", "SELECT * FROM t WHERE a = 'b';",
            "https://example.com/path?q=1&r=2#frag", "user@example.com", "$ ls -la | grep '.c$'",
            "a" * 300, "supercalifragilisticexpialidocious" * 8, "ab" * 200, "🙂" * 50, "猫" * 100,
            "x" + " " * 200 + "y", "Lorem ipsum dolor sit amet, " * 20]
    # look-alikes of added tokens
    out += ["<img_100>", "<loc-224>", "< img>", "<img >", "<IMG>", "<img", "img>", "<<img>>", "<img><img>",
            "</img >", "<loc-012>", "<loc--1>", "<loc-1>2>", "<img_0000>", "<img_000000>", "<patch",
            "<s >", "< s>", "<pad>", "<0x41>", "<0x0A>", "<unk >", "<box_start", "box_end>", "<<<<<",
            ">>>>", "<>", "</>", "<img_00000", "<img_00000><img_00001", "<loc-22<loc-3>", "<im<img>",
            "<img<img>>", "<s></s><unk>", "<s> <s>", "a<s>b", "a </s> b", "<unk><unk>"]
    # random mixtures
    frags = (["the", " cat", " ", "  ", "\n", "\t", ".", ",", "!", "?", "123", "猫", "é", "🙂", "\u200d",
              "مرحبا", "ñ", "\u0301", "<", ">", "_", "-", "img", "loc", "\xa0", "\u3000", "▁"]
             + ["<img>", "</img>", "<patch>", "</patch>", "<box_start>", "<box_end>", "<s>", "</s>"]
             + [rnd.choice(spec_tokens) for _ in range(20)])
    for _ in range(500):
        n = rnd.randrange(1, 25)
        out.append("".join(rnd.choice(frags) for _ in range(n)))
    # random unicode code points (incl. ones absent from the vocab)
    for _ in range(100):
        n = rnd.randrange(1, 12)
        s = ""
        for _ in range(n):
            c = rnd.choice([rnd.randrange(0x20, 0x7F), rnd.randrange(0xA0, 0x800), rnd.randrange(0x800, 0xD800),
                            rnd.randrange(0xE000, 0x10000), rnd.randrange(0x10000, 0x110000), 0x20])
            s += chr(c)
        out.append(s)
    return out


def sp_replace(b):
    """SentencePiece's handling of invalid UTF-8 (normalizer.cc NormalizePrefix +
    util.cc DecodeUTF8): each byte that does not start a valid, shortest-form,
    non-surrogate sequence <= U+10FFFF becomes U+FFFD, consuming one byte."""
    out = []
    i = 0
    while i < len(b):
        c = b[i]
        n = 1 if c < 0x80 else 2 if c >> 5 == 6 else 3 if c >> 4 == 14 else 4 if c >> 3 == 30 else 0
        ok = False
        if n and i + n <= len(b) and all(0x80 <= x < 0xC0 for x in b[i + 1:i + n]):
            try:
                s = b[i:i + n].decode("utf-8")
                ok = len(s) == 1
            except UnicodeDecodeError:
                ok = False
        if ok:
            out.append(s)
            i += n
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


def invalid_cases():
    return [b"a\xffb", b"\xe7\x8c", b"\xe7\x8c\xab\xe7", b"\xed\xa0\x80x", b"\xc0\xafz", b"\xf4\x90\x80\x80",
            b"\x80\x80\x80", b"\xfe\xff", b"ok \xc3", b"\xc3 x", b"\xf0\x9f\x99", b"<img>\xff<img>",
            b"\xff <img> \xff", b"[INST] \xe4\xb8 <patch>", b"\xe2\x96", b"\xe2\x96\x81\xe2\x96",
            bytes(range(0x80, 0x100)), b"\xef\xbf\xbd\xff"]


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sx, plain, t_sx, t_plain, spec = build_folders(tmp)
        md_sx, r_sx = convert_tokenizer.build_metadata(sx)
        md_pl, r_pl = convert_tokenizer.build_metadata(plain)
        check_converter(md_sx, r_sx, t_sx)
        check_converter(md_pl, r_pl, t_plain)
        variants = build_variants(tmp)
        for name, (d, t) in variants.items():
            md_v, r_v = convert_tokenizer.build_metadata(d)
            check_converter(md_v, r_v, t)
        # the fixtures are made by the real converter entry point
        import convert
        for name, (d, t) in variants.items():
            assert convert.main(["tokenizer", d, os.path.join(OUT, f"variant_{name}.gguf")]) == 0
        for src, name in ((sx, "seedx_tokenizer.gguf"), (plain, "plain_tokenizer.gguf")):
            assert convert.main(["tokenizer", src, os.path.join(OUT, name)]) == 0

    sp = t_sx.sp_model
    texts = corpus(spec)
    md = {}
    enc_ids, enc_off, pl_ids, pl_off = [], [0], [], [0]
    for t in texts:
        ids = t_sx.encode(t, add_special_tokens=False)
        assert t_sx.encode(t) == [1] + ids
        enc_ids += ids
        enc_off.append(len(enc_ids))
    md["enc.text"] = [t.encode("utf-8") for t in texts]
    md["enc.off"], md["enc.ids"] = enc_off, enc_ids
    md["plain.off"], md["plain.ids"] = pl_off, pl_ids
    # plain Llama-2 folder (splits only on <s>, </s>, <unk>): the shorter strings
    ptexts = [t for t in texts if len(t) <= 300]
    pl_ids, pl_off = [], [0]
    for t in ptexts:
        pl_ids += t_plain.encode(t, add_special_tokens=False)
        pl_off.append(len(pl_ids))
    md["plain.text"] = [t.encode("utf-8") for t in ptexts]
    md["plain.off"], md["plain.ids"] = pl_off, pl_ids

    # invalid UTF-8: sentencepiece replaces each offending byte by U+FFFD; the
    # transformers pipeline is applied to that replaced text.
    inv = invalid_cases()
    inv_ids, inv_off = [], [0]
    for b in inv:
        fixed = sp_replace(b)
        if "<" not in fixed:
            assert sp.encode(b) == sp.encode(fixed), b  # sp_replace == sentencepiece's own rule
        ids = t_sx.encode(fixed, add_special_tokens=False)
        inv_ids += ids
        inv_off.append(len(inv_ids))
    md["inv.text"], md["inv.off"], md["inv.ids"] = inv, inv_off, inv_ids

    # decode: the corpus ids plus random id sequences
    rnd = random.Random(99)
    seqs = [enc_ids[enc_off[i]:enc_off[i + 1]] for i in range(len(texts))]
    n_all = len(t_sx)
    pools = [list(range(0, 3)), list(range(3, 259)), list(range(32000, n_all)), [29871, 259, 1678, 268],
             [0xE7 + 3, 0x8C + 3, 0xAB + 3, 0xF0 + 3, 0x9F + 3, 0x99 + 3, 0x82 + 3]]
    for k in range(400):
        n = rnd.randrange(0, 30)
        s = []
        for _ in range(n):
            r = rnd.random()
            if r < 0.45:
                s.append(rnd.randrange(n_all))
            else:
                s.append(rnd.choice(rnd.choice(pools)))
        seqs.append(s)
    seqs += [[], [1], [2], [0], [1, 2], [29871], [29871, 29871], [13], [13, 29871, 450], [450, 1, 450],
             [32100, 29871, 32101], [1, 32100, 2], [0, 0, 450, 0], [259, 450], [3 + 0xE7, 3 + 0x8C, 3 + 0xAB],
             [3 + 0xE7, 3 + 0x8C], [3 + 0xFF, 450], [32000, 3 + 0xE7, 32001]]
    d_ids, d_off, d_noskip, d_skip = [], [0], [], []
    for s in seqs:
        d_ids += s
        d_off.append(len(d_ids))
        d_noskip.append(t_sx.decode(s, skip_special_tokens=False).encode("utf-8"))
        d_skip.append(t_sx.decode(s, skip_special_tokens=True).encode("utf-8"))
    md["dec.off"], md["dec.ids"], md["dec.noskip"], md["dec.skip"] = d_off, d_ids, d_noskip, d_skip
    # ids the reference rejects
    for bad in ([n_all], [-1], [450, 40000]):
        try:
            t_sx.decode(bad)
            raise AssertionError(f"decode {bad} did not fail")
        except (IndexError, OverflowError, TypeError):
            pass
    # clean_up_tokenization_spaces=True (not SEED-X's setting, but a config option)
    ctexts = ["Hello , world !", "it 's fine , isn 't it ?", "I 'm here . They 're there .", "we 've done",
              "don n't", "a ' b", " . . .", "<img> . x", "q ?! , .", "Yes !<s> No ?", "x 're 's 've 'm n't"]
    c_ids, c_off, c_txt = [], [0], []
    for t in ctexts:
        ids = t_sx.encode(t, add_special_tokens=False)
        c_ids += ids
        c_off.append(len(c_ids))
        c_txt.append(t_sx.decode(ids, clean_up_tokenization_spaces=True).encode("utf-8"))
    md["clean.off"], md["clean.ids"], md["clean.text"] = c_off, c_ids, c_txt
    # the CLI test's cases
    md["cli.bos_text"] = "<img></img> a"
    md["cli.bos_ids"] = t_sx.encode("<img></img> a")
    md["cli.pieces_text"] = "<box_start>Hi"
    md["cli.pieces"] = " ".join(t_sx.tokenize("<box_start>Hi")).encode("utf-8")
    md["cli.dec_ids"] = [1, 32100, 450, 2]
    md["cli.dec_noskip"] = t_sx.decode([1, 32100, 450, 2]).encode("utf-8")
    md["cli.dec_skip"] = t_sx.decode([1, 32100, 450, 2], skip_special_tokens=True).encode("utf-8")
    # the small-vocabulary variants: encode(add_special_tokens False and True), decode both ways
    rnd = random.Random(7)
    vtexts = var_corpus(rnd)
    for name, (d, t) in variants.items():
        e0, o0, e1, o1, dn, ds = [], [0], [], [0], [], []
        for x in vtexts:
            ids = t.encode(x, add_special_tokens=False)
            e0 += ids
            o0.append(len(e0))
            e1 += t.encode(x)
            o1.append(len(e1))
            # decode: these ids plus a few random ones
            ids = ids + [rnd.randrange(len(t)) for _ in range(rnd.randrange(0, 4))]
            dn.append(t.decode(ids, skip_special_tokens=False).encode("utf-8"))
            ds.append(t.decode(ids, skip_special_tokens=True).encode("utf-8"))
            md.setdefault(f"{name}.dec_ids", []).extend(ids)
            md.setdefault(f"{name}.dec_off", [0]).append(len(md[f"{name}.dec_ids"]))
        md[f"{name}.text"] = [x.encode("utf-8") for x in vtexts]
        md[f"{name}.off"], md[f"{name}.ids"] = o0, e0
        md[f"{name}.off_special"], md[f"{name}.ids_special"] = o1, e1
        md[f"{name}.dec_noskip"], md[f"{name}.dec_skip"] = dn, ds
    md["bad.files"], md["bad.expect"] = write_bad_containers()
    md["info.n_corpus"] = len(texts)
    write_gguf(os.path.join(OUT, "cases.gguf"), md, [])
    print(f"tokenizer fixtures: {len(texts)} corpus strings ({len(enc_ids)} ids), {len(inv)} invalid-UTF-8 "
          f"cases, {len(seqs)} decode cases")


if __name__ == "__main__":
    main()
