"""Fixtures for tests/test_jpeg.c: JPEG files that exercise the decoder's
corners, each stored with Pillow's decode of it (Image.open(f).tobytes(), in
Pillow's mode L / RGB / CMYK) as a PAM file.

Two kinds of JPEG inputs:
  * written by Pillow's own encoder (libjpeg-turbo): 4:4:4 / 4:2:2 / 4:2:0,
    progressive, optimised Huffman tables, greyscale, CMYK;
  * written by the small baseline encoder below, for what Pillow cannot
    write: any sampling factors (4:4:0, 4:1:1, 3x1, 4x2, chroma sampled
    finer than luma, mixed ratios), non-interleaved sequential scans,
    restart intervals with fill bytes, 16-bit quantisation tables (SOF1),
    YCCK (Adobe transform 2), RGB by Adobe transform 0 or by component ids,
    no DHT segment (the decoder must use the standard tables of Annex K.3),
    and components only 1-3 samples wide (libjpeg then replicates instead
    of interpolating).
  * made from those by libjpeg-turbo's jpegtran (Debian package
    libjpeg-turbo-progs; lossless, so deterministic): arithmetic coding
    (sequential and progressive, with restarts) and progressive Huffman
    versions of the odd-sampling files. Without jpegtran on the machine the
    committed copies of these files are used as they are.
The expected pixels always come from Pillow, never from these encoders.

Also stores Pillow's CMYK bytes for the two CMYK files of the shared data.
Deterministic: running it again gives byte-identical files.
Run: .venv/bin/python scripts/fixtures_jpeg.py   (from the repo root)
"""
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "fixtures", "jpeg")
SHARED = os.path.join(ROOT, "tests")  # tests/data: the test data the repo carries

ZZ = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
      12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
      35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
      58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]

# JPEG Annex K.3 standard Huffman tables (bits[1..16], values)
DC_LUM = ([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], list(range(12)))
DC_CHR = ([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], list(range(12)))
AC_LUM = ([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d], bytes.fromhex(
    "01020300041105122131410613516107227114328191a1082342b1c11552d1f0"
    "2433627282090a161718191a25262728292a3435363738393a434445464748494a"
    "535455565758595a636465666768696a737475767778797a838485868788898a"
    "92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7"
    "c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"))
AC_CHR = ([0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77], bytes.fromhex(
    "000102031104052131061241510761711322328108144291a1b1c109233352f0"
    "156272d10a162434e125f11718191a262728292a35363738393a434445464748494a"
    "535455565758595a636465666768696a737475767778797a82838485868788898a"
    "92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7"
    "c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa"))


def huff_codes(table):
    bits, vals = table
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


class BitWriter:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value, length):
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc = 0
                self.n = 0

    def flush(self):  # pad with 1-bits
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)


def dct_matrix():
    c = np.zeros((8, 8))
    for u in range(8):
        for x in range(8):
            c[u, x] = (np.sqrt(0.125) if u == 0 else 0.5) * np.cos((2 * x + 1) * u * np.pi / 16)
    return c


DCT = dct_matrix()


def category(v):
    v = abs(int(v))
    n = 0
    while v:
        n += 1
        v >>= 1
    return n


def put_value(bw, v, s):
    if s:
        bw.put(v if v >= 0 else v + (1 << s) - 1, s)


def encode(planes, samp, width, height, qtab, ids=None, restart=0, interleaved=True,
           jfif=True, adobe=None, dht=True, fill_ff=False, sof=0xC0):
    """Baseline-Huffman JPEG of component planes given at their own
    (downsampled) resolution. qtab: per component a 64-entry table (natural
    order); 16-bit DQT when any entry > 255."""
    nc = len(planes)
    ids = ids or list(range(1, nc + 1))
    hmax = max(h for h, v in samp)
    vmax = max(v for h, v in samp)
    mcux = -(-width // (8 * hmax))
    mcuy = -(-height // (8 * vmax))
    comps = []
    for ci in range(nc):
        h, v = samp[ci]
        cw, ch = -(-width * h // hmax), -(-height * v // vmax)
        p = planes[ci]
        assert p.shape == (ch, cw), (p.shape, ch, cw)
        bw, bh = mcux * h, mcuy * v
        pad = np.pad(p.astype(np.float64), ((0, bh * 8 - ch), (0, bw * 8 - cw)), mode="edge")
        tq = min(ci, len(qtab) - 1)
        q = np.array(qtab[tq], dtype=np.float64).reshape(8, 8)
        coef = np.zeros((bh, bw, 64), dtype=np.int64)
        for by in range(bh):
            for bx in range(bw):
                blk = pad[by * 8:by * 8 + 8, bx * 8:bx * 8 + 8] - 128.0
                f = DCT @ blk @ DCT.T
                coef[by, bx] = np.round(f / q).astype(np.int64).reshape(64)[ZZ]
        comps.append(dict(h=h, v=v, cw=cw, ch=ch, coef=coef, tq=tq,
                          td=0 if ci == 0 else 1, id=ids[ci]))
    dcc = [huff_codes(DC_LUM), huff_codes(DC_CHR)]
    acc = [huff_codes(AC_LUM), huff_codes(AC_CHR)]

    def block(bw_, comp, blk, pred):
        diff = int(blk[0]) - pred[0]
        pred[0] = int(blk[0])
        s = category(diff)
        code, ln = dcc[comp["td"]][s]
        bw_.put(code, ln)
        put_value(bw_, diff, s)
        run = 0
        last = max([k for k in range(1, 64) if blk[k] != 0], default=0)
        for k in range(1, last + 1):
            if blk[k] == 0:
                run += 1
                continue
            while run > 15:
                code, ln = acc[comp["td"]][0xF0]
                bw_.put(code, ln)
                run -= 16
            s = category(blk[k])
            assert s <= 10
            code, ln = acc[comp["td"]][(run << 4) | s]
            bw_.put(code, ln)
            put_value(bw_, int(blk[k]), s)
            run = 0
        if last < 63:
            code, ln = acc[comp["td"]][0x00]
            bw_.put(code, ln)

    out = bytearray(b"\xff\xd8")

    def seg(marker, payload):
        if fill_ff:
            out.extend(b"\xff\xff")
        out.extend(bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload)

    if jfif:
        seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    if adobe is not None:
        seg(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00" + bytes([adobe]))
    for t, q in enumerate(qtab):
        wide = max(q) > 255
        body = bytes([(16 if wide else 0) | t])
        for k in range(64):
            body += int(q[ZZ[k]]).to_bytes(2 if wide else 1, "big")
        seg(0xDB, body)
    body = bytes([8]) + height.to_bytes(2, "big") + width.to_bytes(2, "big") + bytes([nc])
    for c in comps:
        body += bytes([c["id"], (c["h"] << 4) | c["v"], c["tq"]])
    seg(sof, body)
    if dht:
        for cls, tabs in ((0, (DC_LUM, DC_CHR)), (1, (AC_LUM, AC_CHR))):
            for t, (bits, vals) in enumerate(tabs):
                seg(0xC4, bytes([(cls << 4) | t]) + bytes(bits) + bytes(vals))
    if restart:
        seg(0xDD, restart.to_bytes(2, "big"))
    scans = [list(range(nc))] if interleaved and nc > 1 else [[i] for i in range(nc)]
    for sc in scans:
        body = bytes([len(sc)])
        for ci in sc:
            body += bytes([comps[ci]["id"], (comps[ci]["td"] << 4) | comps[ci]["td"]])
        seg(0xDA, body + bytes([0, 63, 0]))
        bw_ = BitWriter()
        preds = {ci: [0] for ci in sc}
        if len(sc) > 1:
            units = [(mx, my) for my in range(mcuy) for mx in range(mcux)]
        else:
            c = comps[sc[0]]
            units = [(bx, by) for by in range(-(-c["ch"] // 8)) for bx in range(-(-c["cw"] // 8))]
        rst = 0
        for i, (ux, uy) in enumerate(units):
            if restart and i and i % restart == 0:
                bw_.flush()
                if fill_ff:
                    bw_.out.extend(b"\xff")
                bw_.out.extend(bytes([0xFF, 0xD0 + rst]))
                rst = (rst + 1) & 7
                for ci in sc:
                    preds[ci] = [0]
            for ci in sc:
                c = comps[ci]
                if len(sc) > 1:
                    for yy in range(c["v"]):
                        for xx in range(c["h"]):
                            block(bw_, c, c["coef"][uy * c["v"] + yy, ux * c["h"] + xx], preds[ci])
                else:
                    block(bw_, c, c["coef"][uy, ux], preds[ci])
        bw_.flush()
        out.extend(bw_.out)
    out.extend(b"\xff\xd9")
    return bytes(out)


def content(rng, w, h, phase):
    """smooth gradients + waves + noise, 0..255"""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    v = (128 + 70 * np.sin(x / (2.5 + phase) + phase) * np.cos(y / (3.1 + phase))
         + 40 * (x / max(w - 1, 1) - 0.5) + 30 * (y / max(h - 1, 1) - 0.5)
         + rng.normal(0, 12, (h, w)))
    return np.clip(np.round(v), 0, 255).astype(np.uint8)


def qtable(base, slope, cap=255):
    return [min(cap, base + (slope * (r + c)) // 2) for r in range(8) for c in range(8)]


def write_pam(path, im):
    mode = im.mode
    depth, tupl = {"L": (1, "GRAYSCALE"), "RGB": (3, "RGB"), "CMYK": (4, "CMYK")}[mode]
    hdr = "P7\nWIDTH %d\nHEIGHT %d\nDEPTH %d\nMAXVAL 255\nTUPLTYPE %s\nENDHDR\n" % (
        im.size[0], im.size[1], depth, tupl)
    with open(path, "wb") as f:
        f.write(hdr.encode() + im.tobytes())


def planes_for(rng, samp, w, h):
    hmax = max(a for a, b in samp)
    vmax = max(b for a, b in samp)
    return [content(rng, -(-w * a // hmax), -(-h * b // vmax), 0.7 * i)
            for i, (a, b) in enumerate(samp)]


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240414)
    cases = []  # (name, jpeg bytes)

    # --- Pillow's encoder ---------------------------------------------------
    def pil(name, w, h, mode="RGB", **kw):
        chans = {"L": 1, "RGB": 3, "CMYK": 4}[mode]
        a = np.stack([content(rng, w, h, 0.5 * i) for i in range(chans)], -1)
        im = Image.fromarray(a[..., 0] if chans == 1 else a, mode)
        buf = io.BytesIO()
        im.save(buf, "JPEG", **kw)
        cases.append((name, buf.getvalue()))

    pil("pil_444_q95", 61, 37, subsampling=0, quality=95)
    pil("pil_422_q80", 67, 45, subsampling=1, quality=80)
    pil("pil_420_prog", 75, 53, subsampling=2, quality=85, progressive=True)
    pil("pil_444_prog_opt", 50, 41, subsampling=0, quality=90, progressive=True, optimize=True)
    pil("pil_gray_prog", 45, 29, mode="L", quality=75, progressive=True)
    pil("pil_cmyk", 33, 21, mode="CMYK", quality=90)
    pil("pil_cmyk_prog", 35, 19, mode="CMYK", quality=70, progressive=True)
    pil("pil_420_q30_big", 101, 77, subsampling=2, quality=30)

    # --- the baseline encoder above -------------------------------------------
    q8 = [qtable(3, 2), qtable(4, 3), qtable(4, 3)]

    def own(name, samp, w, h, q=None, **kw):
        planes = planes_for(rng, samp, w, h)
        qt = q if q is not None else q8[:max(1, min(len(samp), 2))]
        cases.append((name, encode(planes, samp, w, h, qt, **kw)))

    own("enc_h1v2_440", [(1, 2), (1, 1), (1, 1)], 37, 29)
    own("enc_h4v1_411", [(4, 1), (1, 1), (1, 1)], 53, 19)
    own("enc_y2x2_c1x2", [(2, 2), (1, 2), (1, 2)], 41, 35)
    own("enc_chroma_finer", [(1, 1), (2, 2), (1, 1)], 29, 23)
    own("enc_y3x1", [(3, 1), (1, 1), (1, 1)], 50, 17)
    own("enc_y4x2", [(4, 2), (1, 1), (1, 1)], 67, 33)
    own("enc_y1x4_c1x2", [(1, 4), (1, 2), (1, 2)], 45, 61)
    own("enc_mixed", [(1, 2), (2, 1), (1, 1)], 31, 27)
    own("enc_420_noninterleaved_rst3", [(2, 2), (1, 1), (1, 1)], 70, 44, interleaved=False, restart=3)
    own("enc_420_rst1_fill", [(2, 2), (1, 1), (1, 1)], 36, 20, restart=1, fill_ff=True)
    own("enc_420_w3", [(2, 2), (1, 1), (1, 1)], 3, 7)
    own("enc_420_w4", [(2, 2), (1, 1), (1, 1)], 4, 9)
    own("enc_420_w5", [(2, 2), (1, 1), (1, 1)], 5, 6)
    own("enc_422_w4", [(2, 1), (1, 1), (1, 1)], 4, 5)
    own("enc_422_w5", [(2, 1), (1, 1), (1, 1)], 5, 5)
    own("enc_ycck_adobe2", [(2, 2), (1, 1), (1, 1), (2, 2)], 39, 25, jfif=False, adobe=2)
    own("enc_cmyk_noadobe_h2", [(2, 1), (1, 1), (1, 1), (1, 1)], 22, 14, jfif=False)
    own("enc_rgb_adobe0", [(1, 1), (1, 1), (1, 1)], 23, 19, jfif=False, adobe=0)
    own("enc_rgb_ids", [(1, 1), (1, 1), (1, 1)], 21, 18, jfif=False, ids=[82, 71, 66])
    own("enc_ycc_odd_ids", [(2, 2), (1, 1), (1, 1)], 19, 17, jfif=False, ids=[7, 9, 200])
    own("enc_no_dht", [(2, 2), (1, 1), (1, 1)], 34, 26, dht=False)
    own("enc_qt16_sof1", [(2, 1), (1, 1), (1, 1)], 40, 24, sof=0xC1,
        q=[qtable(2, 40, 900), qtable(3, 60, 1500)])
    own("enc_gray_2x2_rst2", [(2, 2)], 27, 13, q=[qtable(2, 3)], restart=2)
    own("enc_gray_1x3", [(1, 3)], 9, 30, q=[qtable(2, 3)])

    # --- lossless transcodes by jpegtran ------------------------------------------
    byname = dict(cases)
    transcodes = [
        ("tran_arith_seq_rst2", "enc_h1v2_440", ["-arithmetic", "-restart", "2"]),
        ("tran_arith_prog_420", "pil_420_q30_big", ["-arithmetic", "-progressive"]),
        ("tran_arith_prog_gray", "pil_gray_prog", ["-arithmetic", "-progressive"]),
        ("tran_arith_prog_ycck", "enc_ycck_adobe2", ["-arithmetic", "-progressive"]),
        ("tran_arith_prog_mixed_rst1", "enc_mixed", ["-arithmetic", "-progressive", "-restart", "1"]),
        ("tran_prog_y4x2", "enc_y4x2", ["-progressive"]),
        ("tran_prog_y1x4_rst1", "enc_y1x4_c1x2", ["-progressive", "-restart", "1"]),
        ("tran_prog_ycck_opt", "enc_ycck_adobe2", ["-progressive", "-optimize"]),
        ("tran_prog_gray_1x3", "enc_gray_1x3", ["-progressive"]),
    ]
    # progressive files that stop before full precision: libjpeg's block
    # smoothing then estimates the missing low AC coefficients
    scripts = {
        "partial": "0,1,2: 0-0, 0, 1;\n0: 1-5, 0, 2;\n2: 1-63, 0, 1;\n1: 1-63, 0, 1;\n0: 6-63, 0, 2;\n",
        "dconly": "0,1,2: 0-0, 0, 0;\n",
        "dcrefine_ac12": "0,1,2: 0-0, 0, 2;\n0,1,2: 0-0, 2, 1;\n0: 1-2, 0, 0;\n1: 1-9, 0, 3;\n",
        "gray_partial": "0: 0-0, 0, 0;\n0: 1-1, 0, 1;\n0: 3-63, 0, 0;\n",
    }
    transcodes += [
        ("tran_smooth_partial", "pil_420_q30_big", ["-scans", "partial"]),
        ("tran_smooth_dconly", "pil_420_q30_big", ["-scans", "dconly"]),
        ("tran_smooth_dcrefine_ac12", "enc_y2x2_c1x2", ["-scans", "dcrefine_ac12"]),
        ("tran_smooth_gray_partial", "enc_gray_2x2_rst2", ["-scans", "gray_partial"]),
        ("tran_smooth_y1x4_dconly", "enc_y1x4_c1x2", ["-scans", "dconly"]),
        ("tran_smooth_arith_partial", "enc_mixed", ["-arithmetic", "-scans", "partial"]),
    ]
    jpegtran = shutil.which("jpegtran")
    tmpdir = tempfile.mkdtemp()
    for name, src, args in transcodes:
        path = os.path.join(OUT, name + ".jpg")
        if "-scans" in args:
            i = args.index("-scans") + 1
            script_path = os.path.join(tmpdir, args[i] + ".txt")
            with open(script_path, "w") as f:
                f.write(scripts[args[i]])
            args = args[:i] + [script_path] + args[i + 1:]
        if jpegtran:
            data = subprocess.run([jpegtran, "-copy", "none"] + args, input=byname[src],
                                  stdout=subprocess.PIPE, check=True).stdout
        elif os.path.exists(path):
            with open(path, "rb") as f:
                data = f.read()
        else:
            sys.exit("jpegtran (libjpeg-turbo-progs) is needed to make %s" % path)
        cases.append((name, data))
    shutil.rmtree(tmpdir)

    # corrupted copies: Pillow decodes most of them (libjpeg only warns); the
    # decoder must give the same pixels, and fail where Pillow fails
    crng = np.random.default_rng(4404)
    sources = ["pil_422_q80", "enc_420_noninterleaved_rst3", "enc_420_rst1_fill",
               "pil_420_prog", "tran_prog_y1x4_rst1", "tran_arith_seq_rst2",
               "tran_arith_prog_mixed_rst1", "enc_y2x2_c1x2", "pil_gray_prog", "enc_ycck_adobe2"]
    bad_names = []
    for vi in range(91):
        src = sources[vi % len(sources)]
        data = bytearray(dict(cases)[src])
        start = data.index(b"\xff\xda") + 14  # inside the first scan's data
        end = len(data) - 2
        kind = vi // len(sources) % 7
        if kind == 0:    # a few flipped bits
            for _ in range(1 + vi % 3):
                at = int(crng.integers(start, end))
                data[at] ^= 1 << int(crng.integers(0, 8))
        elif kind == 1:  # random bytes
            for _ in range(1 + vi % 4):
                data[int(crng.integers(start, end))] = int(crng.integers(0, 256))
        elif kind == 2:  # a chunk removed
            at = int(crng.integers(start, end - 8))
            del data[at:at + int(crng.integers(1, 40))]
        elif kind == 3:  # a stray RST or other marker inserted
            at = int(crng.integers(start, end))
            mk = [0xD0 + int(crng.integers(0, 8)), 0xD9, 0xC4, 0xFE][vi % 4]
            data[at:at] = bytes([0xFF, mk])
        elif kind == 4:  # scan data cut short, EOI appended
            at = int(crng.integers(start, end))
            data = data[:at] + b"\xff\xd9"
        elif kind == 5:  # a burst of garbage
            at = int(crng.integers(start, end - 16))
            data[at:at + 16] = crng.integers(0, 256, 16).astype(np.uint8).tobytes()
        else:            # a random byte anywhere, headers included
            data[int(crng.integers(2, end))] = int(crng.integers(0, 256))
        name = "corrupt_%02d_%s" % (vi, src)
        try:
            im = Image.open(io.BytesIO(bytes(data)))
            im.load()
            if max(im.size) > 16384:  # beyond our decompression-bomb limit
                continue
            cases.append((name, bytes(data)))
        except Exception:  # Pillow refuses: so must we
            bad_names.append((name, bytes(data)))

    names = []
    for name, data in cases:
        path = os.path.join(OUT, name + ".jpg")
        with open(path, "wb") as f:
            f.write(data)
        im = Image.open(path)
        im.load()
        if name.startswith("corrupt_"):  # only the digest of Pillow's bytes (saves space)
            names.append("%s sha256 %s %d %d %d" % (name, hashlib.sha256(im.tobytes()).hexdigest(),
                                                    im.size[0], im.size[1], len(im.getbands())))
        else:
            write_pam(os.path.join(OUT, name + ".pam"), im)
            names.append(name)
        print("%-30s %-5s %4dx%-4d %6d bytes" % (name, im.mode, im.size[0], im.size[1], len(data)))
    with open(os.path.join(OUT, "list.txt"), "w") as f:
        f.write("# generated by scripts/fixtures_jpeg.py: <name>.jpg + Pillow's decode <name>.pam,\n"
                "# or <name> sha256 <digest of Pillow's bytes> <w> <h> <channels>\n")
        f.write("\n".join(names) + "\n")

    # regression inputs for bugs found while testing (see crashes.txt):
    # a DHT whose counts claim 3 codes of length 1 (only 2 fit) once made the
    # fast lookup table overflow.
    base = bytearray(byname["enc_420_w5"])
    i = base.index(b"\xff\xc4")
    assert base[i + 5] == 0 and base[i + 6] == 1  # DC table 0: bits[1] = 0, bits[2] = 1
    base[i + 5], base[i + 6] = 3, 0  # 3 codes of length 1 (was 1 of length 2: total +2)
    base[i + 7] -= 2
    regress = [("crash-dht-overflow.jpg", bytes(base), "invalid code lengths")]
    for name, data in bad_names:
        regress.append((name + ".jpg", data, "ERROR"))
    with open(os.path.join(OUT, "crashes.txt"), "w") as f:
        f.write("# <file> <substring the error must contain, ERROR: any error> "
                "(made by scripts/fixtures_jpeg.py; corrupt_*: files Pillow refuses)\n")
        for name, data, msg in regress:
            with open(os.path.join(OUT, name), "wb") as g:
                g.write(data)
            f.write("%s %s\n" % (name, msg))

    # Pillow's CMYK bytes for the shared CMYK files
    for n in ("jpg-cmyk-1", "pil_sample_cmyk"):
        src = os.path.join(SHARED, "data", "images", "jpeg", n + ".jpg")
        if not os.path.exists(src):
            sys.exit("missing shared data file %s (tests/data)" % src)
        im = Image.open(src)
        im.load()
        assert im.mode == "CMYK"
        write_pam(os.path.join(OUT, "shared-%s.pam" % n), im)


if __name__ == "__main__":
    main()
