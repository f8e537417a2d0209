"""Fixtures for image_io.c / png.c (tests/test_image.c), from Pillow 9.4.0,
torchvision 0.15.2 and diffusers 0.25.0 in the reference venv.

Writes tests/fixtures/image/:
  crafted/*.png      small PNGs made here with Python's zlib for cases the shared
                     PngSuite files do not cover (16-bit grey above/below 255,
                     short palettes with out-of-range indices, Adam7 at odd sizes
                     for every colour type/depth, stored/fixed deflate blocks,
                     IDAT split in 1-byte chunks, every filter type)
  decode.txt         "path w h pil_mode sha256(Image.open(p).convert('RGB').tobytes())"
                     for every PNG in tests/data/images and crafted/
  resize.txt         "src w h filter sha256" of Pillow Image.resize on RGB
  anyres.txt         SEED-X any-res cases on a synthetic pattern image (formula
                     shared with the C test): grid, rule A/B picks, positions,
                     sha256 of every 448 tile (uint8) and of the float tensor
  anyres_samples.f32 512 float32 samples per case of torchvision's
                     [N,3,448,448] tensor (index formula shared with the C test)
  prep.txt/.f32      reconstruction path (Resize((448,448)) bilinear + CLIP
                     normalize) and editing path (resize 1024 bicubic +
                     VaeImageProcessor) samples
  encode_sizes.txt   size of Pillow's PNG (default settings) for a few images

Deterministic: running it twice gives identical files. If ./seedx exists, our
PNG encoder's output is also decoded by Pillow and compared (round trip)."""
import hashlib
import io
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "image")
SHARED = os.path.join(ROOT, "tests")  # tests/data: the test data the repo carries
DATA = os.path.join(SHARED, "data")

BASE = 448
GRIDS = ["1x1", "1x2", "1x3", "2x1", "3x1", "1x4", "4x1", "2x2"]
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
NSAMPLES = 512


def sha(b):
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------- crafted PNGs
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def filt(rows, bpp, ftypes):
    """Apply PNG filters (list of raw row bytes) -> filtered stream."""
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for y, r in enumerate(rows):
        ft = ftypes[y % len(ftypes)]
        f = bytearray(len(r))
        for i in range(len(r)):
            a = r[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ft == 0:
                p = 0
            elif ft == 1:
                p = a
            elif ft == 2:
                p = b
            elif ft == 3:
                p = (a + b) >> 1
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            f[i] = (r[i] - p) & 255
        out.append(ft)
        out += f
        prev = r
    return bytes(out)


def pack_row(vals, depth):
    if depth >= 8:
        bs = 1 if depth == 8 else 2
        return b"".join(int(v).to_bytes(bs, "big") for v in vals)
    per = 8 // depth
    out = bytearray((len(vals) + per - 1) // per)
    for i, v in enumerate(vals):
        out[i // per] |= int(v) << (8 - depth * (i % per + 1))
    return bytes(out)


def make_png(w, h, ctype, depth, interlace, samples, plte=None, ftypes=(0, 1, 2, 3, 4), level=6,
             split=None, extra=b""):
    """samples: array [h, w, nch] of ints."""
    nch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    bits = nch * depth
    bpp = max(1, bits // 8)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)] if interlace else [(0, 0, 1, 1)]
    raw = b""
    for (x0, y0, dx, dy) in passes:
        xs, ys = list(range(x0, w, dx)), list(range(y0, h, dy))
        if not xs or not ys:
            continue
        rows = [pack_row([samples[y, x, c] for x in xs for c in range(nch)], depth) for y in ys]
        raw += filt(rows, bpp, ftypes)
    z = zlib.compress(raw, level)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace)
    body = chunk(b"IHDR", ihdr) + extra
    if plte is not None:
        body += chunk(b"PLTE", plte)
    if split:
        for i in range(0, len(z), split):
            body += chunk(b"IDAT", z[i:i + split])
    else:
        body += chunk(b"IDAT", z)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")


def crafted():
    rng = np.random.RandomState(1234)
    files = {}
    # every colour type / depth, Adam7, odd sizes, all filters
    combos = [(0, 1), (0, 2), (0, 4), (0, 8), (0, 16), (2, 8), (2, 16), (3, 1), (3, 2), (3, 4), (3, 8),
              (4, 8), (4, 16), (6, 8), (6, 16)]
    for ctype, depth in combos:
        nch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
        for interlace, (w, h) in ((1, (13, 11)), (0, (9, 5))):
            hi = (1 << depth) - 1
            s = rng.randint(0, hi + 1, size=(h, w, nch))
            plte = None
            if ctype == 3:
                npal = min(1 << depth, 200)
                plte = bytes(rng.randint(0, 256, size=3 * npal).astype(np.uint8))
            name = "c%d_d%d_%s.png" % (ctype, depth, "i" if interlace else "n")
            files[name] = make_png(w, h, ctype, depth, interlace, s, plte)
    # 16-bit grey with small values (mode I clips at 255, keeps 0..254 exactly)
    s = rng.randint(0, 300, size=(6, 7, 1))
    files["grey16_small.png"] = make_png(7, 6, 0, 16, 0, s)
    # palette with a short PLTE (5 entries) and indices up to 255: Pillow's ramp shows through
    s = rng.randint(0, 256, size=(8, 8, 1))
    files["pal_short.png"] = make_png(8, 8, 3, 8, 0, s, plte=bytes(range(100, 115)))
    # stored deflate blocks, fixed Huffman (level 1 on tiny data), IDAT split in 1-byte chunks
    s = rng.randint(0, 256, size=(10, 17, 3))
    files["stored.png"] = make_png(17, 10, 2, 8, 0, s, level=0)
    files["split1.png"] = make_png(17, 10, 2, 8, 0, s, split=1)
    files["fixed.png"] = make_png(3, 2, 2, 8, 0, np.zeros((2, 3, 3), int) + 7, level=1)
    # ancillary chunks before IDAT (tEXt, private lowercase), tRNS on RGB
    files["anc.png"] = make_png(17, 10, 2, 8, 0, s, extra=chunk(b"tEXt", b"k\0v") + chunk(b"prVt", b"xyz") +
                                chunk(b"tRNS", b"\0\1\0\2\0\3"))
    # one long row and one tall column (Adam7 passes with empty rows/cols)
    s = rng.randint(0, 256, size=(1, 300, 4))
    files["row300_i.png"] = make_png(300, 1, 6, 8, 1, s)
    s = rng.randint(0, 65536, size=(70, 1, 3))
    files["col70_i16.png"] = make_png(1, 70, 2, 16, 1, s)
    # empty IDAT chunk before the data (fuzzer find: memcpy from a NULL buffer)
    s = rng.randint(0, 256, size=(3, 5, 3))
    good = make_png(5, 3, 2, 8, 0, s)
    files["empty_idat.png"] = good[:33] + chunk(b"IDAT", b"") + good[33:]
    # filter type 5 (invalid) in row 1, all CRCs valid: "unrecognized data stream" in Pillow
    s = rng.randint(0, 256, size=(3, 4, 1))
    good = make_png(4, 3, 0, 8, 0, s, ftypes=(0,), level=0)
    raw = bytearray(zlib.decompress(good[8 + 25 + 8:-12 - 4]))
    raw[5] = 5
    files["bad_filter.png"] = (good[:8 + 25] + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))
    return files


# ---------------------------------------------------------------- any-res (mirrors src/inference/any_res.py)
def pattern(w, h):
    """Synthetic RGB test image; the C test builds the same pixels."""
    x = np.arange(w, dtype=np.int64)[None, :]
    y = np.arange(h, dtype=np.int64)[:, None]
    r = (x * 7 + y * 3) % 256
    g = ((x ^ y) * 5) % 256
    b = (x * y // 97) % 256
    return np.stack([r + 0 * y, g, b + 0 * x], axis=-1).astype(np.uint8)


def rule_a(size, cands):
    ow, oh = size
    best, max_eff, min_waste = None, 0, float("inf")
    for i, (W, H) in enumerate(cands):
        s = min(W / ow, H / oh)
        eff = min(int(ow * s) * int(oh * s), ow * oh)
        waste = W * H - eff
        if eff > max_eff or (eff == max_eff and waste < min_waste):
            max_eff, min_waste, best = eff, waste, i
    return best


def rule_b(size, cands):
    ow, oh = size
    oar, oarea = oh / ow, ow * oh
    best, min_d, min_a = None, float("inf"), float("inf")
    for i, (W, H) in enumerate(cands):
        ar, area = H / W, W * H
        d = max(ar, oar) / min(ar, oar)
        a = max(area, oarea) / min(area, oarea)
        if d < min_d or (d == min_d and a < min_a):
            min_d, min_a, best = d, a, i
    return best


def ties(size, cands):
    """Which tie-break rules were exercised (for the record in anyres.txt)."""
    ow, oh = size
    effs = []
    ds = []
    for W, H in cands:
        s = min(W / ow, H / oh)
        effs.append(min(int(ow * s) * int(oh * s), ow * oh))
        ar, oar = H / W, oh / ow
        ds.append(max(ar, oar) / min(ar, oar))
    a_tie = effs.count(max(effs)) > 1
    b_tie = ds.count(min(ds)) > 1
    return a_tie, b_tie


def resize_and_pad(image, target, keep_ratio):
    """any_res.resize_and_pad_image"""
    import math
    ow, oh = image.size
    tw, th = target
    if not keep_ratio:
        return image.resize((tw, th))
    sw, sh = tw / ow, th / oh
    if sw < sh:
        nw, nh = tw, min(math.ceil(oh * sw), th)
    else:
        nh, nw = th, min(math.ceil(ow * sh), tw)
    r = image.resize((nw, nh))
    out = Image.new("RGB", (tw, th), (0, 0, 0))
    out.paste(r, ((tw - nw) // 2, (th - nh) // 2))
    return out


def anyres_case(w, h, grids, keep_ratio=False):
    import torch
    from torchvision import transforms

    cands = [(int(g.split("x")[0]) * BASE, int(g.split("x")[1]) * BASE) for g in grids]
    ia, ib = rule_a((w, h), cands), rule_b((w, h), cands)
    (W1, H1), (W2, H2) = cands[ia], cands[ib]
    W, H = (W2, H2) if W1 * H1 > W2 * H2 else (W1, H1)
    img = Image.fromarray(pattern(w, h), "RGB")
    big = resize_and_pad(img, (W, H), keep_ratio)
    tiles = [big.crop((j, i, j + BASE, i + BASE)) for i in range(0, H, BASE) for j in range(0, W, BASE)]
    tiles.append(img.resize((BASE, BASE)))
    tf = transforms.Compose([transforms.Resize((BASE, BASE)), transforms.ToTensor(),
                             transforms.Normalize(mean=CLIP_MEAN, std=CLIP_STD)])
    x = torch.stack([tf(t) for t in tiles], 0)
    gw, gh = W // BASE, H // BASE
    xi = (torch.arange(gw).repeat(gh, 1) + 0.5) / gw
    yi = (torch.arange(gh).unsqueeze(1).repeat(1, gw) + 0.5) / gh
    pos = torch.cat([torch.stack([xi, yi], -1).flatten(0, 1), torch.tensor([[0.5, 0.5]])], 0)
    return ia, ib, gw, gh, tiles, x.numpy(), pos.numpy()


def sample_idx(total, n=NSAMPLES):
    return [(j * 2654435761) % total for j in range(n)]


# ---------------------------------------------------------------- main
def main():
    os.makedirs(os.path.join(OUT, "crafted"), exist_ok=True)
    # crafted PNGs
    files = crafted()
    for name, data in sorted(files.items()):
        with open(os.path.join(OUT, "crafted", name), "wb") as f:
            f.write(data)

    # decode digests
    lines = []
    pngs = []
    for sub in ("photo", "png", "corrupt", "misc", "jpeg"):
        d = os.path.join(DATA, "images", sub)
        for fn in sorted(os.listdir(d)):
            pngs.append(("images/%s/%s" % (sub, fn), os.path.join(d, fn)))
    for fn in sorted(files):
        pngs.append(("crafted/" + fn, os.path.join(OUT, "crafted", fn)))
    for rel, path in pngs:
        with open(path, "rb") as f:
            head = f.read(8)
        if head != b"\x89PNG\r\n\x1a\n":
            continue
        try:
            im = Image.open(path)
            mode = im.mode
            rgb = im.convert("RGB")
        except Exception as e:  # noqa: BLE001 - corrupt files: Pillow refuses
            lines.append("%s - - - error:%s" % (rel, type(e).__name__))
            continue
        lines.append("%s %d %d %s %s" % (rel, rgb.size[0], rgb.size[1], mode, sha(rgb.tobytes())))
    with open(os.path.join(OUT, "decode.txt"), "w") as f:
        f.write("# path w h pil_mode sha256(Image.open(path).convert('RGB').tobytes()), Pillow %s\n"
                % Image.__version__)
        f.write("\n".join(lines) + "\n")

    # resize
    rcases = [
        ("images/photo/hopper.png", 37, 211), ("images/photo/hopper.png", 300, 97),
        ("images/photo/hopper.png", 129, 128), ("images/photo/hopper.png", 128, 5),
        ("images/photo/hopper.png", 1, 1), ("images/photo/hopper.png", 448, 448),
        ("images/photo/hopper.png", 1000, 3), ("images/png/PngSuite.png", 255, 257),
        ("images/png/PngSuite.png", 77, 771), ("images/photo/advisor.png", 448, 448),
        ("images/photo/advisor.png", 896, 448), ("images/photo/advisor.png", 333, 1001),
        ("images/photo/advisor.png", 1251, 1083), ("images/photo/advisor.png", 100, 1082),
        ("images/photo/advisor.png", 1024, 1024), ("images/photo/advisor.png", 1252, 1082),
    ]
    rl = []
    for src, w, h in rcases:
        img = Image.open(os.path.join(DATA, src)).convert("RGB")
        for fname, flt in (("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)):
            rl.append("%s %d %d %s %s" % (src, w, h, fname, sha(img.resize((w, h), flt).tobytes())))
    with open(os.path.join(OUT, "resize.txt"), "w") as f:
        f.write("# src w h filter sha256(Image.open(src).convert('RGB').resize((w,h), filter).tobytes())\n")
        f.write("\n".join(rl) + "\n")

    # any-res
    sizes = [(1000, 750), (1920, 1080), (640, 480), (800, 1600), (3000, 1000), (2000, 500),
             (300, 300), (500, 2000), (400, 1300), (448, 448), (896, 448), (1344, 448), (700, 700),
             (1, 1), (5000, 1200), (37, 1500), (1792, 448), (448, 900), (100, 30), (999, 1000)]
    al, samples, seen = [], [], set()
    cases = [(w, h, GRIDS, 0) for (w, h) in sizes] + [(999, 1000, ["1x1"], 0)]
    # keep_ratio=True (resize + centred black padding), not used by the official scripts
    cases += [(1920, 1080, GRIDS, 1), (37, 1500, GRIDS, 1), (700, 701, GRIDS, 1), (100, 30, ["1x1"], 1)]
    for (w, h, grids, keep) in cases:
        if True:
            ia, ib, gw, gh, tiles, x, pos = anyres_case(w, h, grids, bool(keep))
            at, bt = ties((w, h), [(int(g[0]) * BASE, int(g[2]) * BASE) for g in grids])
            seen.add("%dx%d" % (gw, gh))
            idx = sample_idx(x.size)
            flat = x.reshape(-1)
            samples.append(flat[idx].astype(np.float32))
            al.append("%d %d %s %s %s %dx%d %d keep=%d tieA=%d tieB=%d pos=%s tiles=%s tensor=%s" % (
                w, h, ",".join(grids), grids[ia], grids[ib], gw, gh, len(tiles), keep, at, bt,
                ",".join("%.9g" % v for v in pos.reshape(-1)),
                ",".join(sha(t.tobytes())[:16] for t in tiles), sha(x.astype("<f4").tobytes())[:16]))
    assert seen >= set(GRIDS), seen
    with open(os.path.join(OUT, "anyres.txt"), "w") as f:
        f.write("# w h grids ruleA ruleB chosen n keep_ratio tieA tieB pos tile_sha256[:16] tensor_sha256[:16]\n")
        f.write("\n".join(al) + "\n")
    np.concatenate(samples).astype("<f4").tofile(os.path.join(OUT, "anyres_samples.f32"))

    # reconstruction path (Resize((448,448)) bilinear + CLIP) and editing path (1024 bicubic + VAE)
    import torch
    from diffusers.image_processor import VaeImageProcessor
    from torchvision import transforms
    tf = transforms.Compose([transforms.Resize((BASE, BASE)), transforms.ToTensor(),
                             transforms.Normalize(mean=CLIP_MEAN, std=CLIP_STD)])
    vp = VaeImageProcessor()
    pl, ps = [], []
    for src in ("images/photo/advisor.png", "images/photo/hopper.png"):
        img = Image.open(os.path.join(DATA, src)).convert("RGB")
        x = tf(img).numpy()
        ps.append(x.reshape(-1)[sample_idx(x.size)].astype(np.float32))
        pl.append("clip448 %s %s" % (src, sha(x.astype("<f4").tobytes())[:16]))
        with torch.no_grad():
            v = vp.preprocess(img.resize((1024, 1024))).numpy()[0]
        ps.append(v.reshape(-1)[sample_idx(v.size)].astype(np.float32))
        pl.append("vae1024 %s %s" % (src, sha(v.astype("<f4").tobytes())[:16]))
    with open(os.path.join(OUT, "prep.txt"), "w") as f:
        f.write("# path src tensor_sha256[:16]; samples in prep_samples.f32 (%d per line)\n" % NSAMPLES)
        f.write("\n".join(pl) + "\n")
    np.concatenate(ps).astype("<f4").tofile(os.path.join(OUT, "prep_samples.f32"))

    # CMYK -> RGB (Pillow's formula) on a formula image the C test rebuilds
    x = np.arange(256)[None, :].repeat(256, 0)
    y = x.T
    cmyk = np.stack([x, y, (x * y) % 256, (x + 3 * y) % 256], -1).astype(np.uint8)
    rgb = Image.frombytes("CMYK", (256, 256), cmyk.tobytes()).convert("RGB").tobytes()
    with open(os.path.join(OUT, "cmyk.txt"), "w") as f:
        f.write("# sha256 of Image.frombytes('CMYK', (256,256), c=x, m=y, y=x*y%256, k=(x+3y)%256).convert('RGB')\n")
        f.write(sha(rgb) + "\n")

    # EXIF orientation: ImageOps.exif_transpose on the shared JPEGs, and every
    # transpose method on a 5x3 pattern
    from PIL import ImageOps
    xl = []
    for src in ("images/jpeg/hopper_orientation_6.jpg", "images/jpeg/orientation_rectangle.jpg",
                "images/photo/flower.jpg"):
        im = Image.open(os.path.join(DATA, src))
        o = im.getexif().get(0x0112, 1)
        t = ImageOps.exif_transpose(im).convert("RGB")
        xl.append("%s %d %d %d %s" % (src, o, t.size[0], t.size[1], sha(t.tobytes())))
    methods = {2: Image.FLIP_LEFT_RIGHT, 3: Image.ROTATE_180, 4: Image.FLIP_TOP_BOTTOM, 5: Image.TRANSPOSE,
               6: Image.ROTATE_270, 7: Image.TRANSVERSE, 8: Image.ROTATE_90}
    pim = Image.fromarray(pattern(5, 3), "RGB")
    for o in range(2, 9):
        t = pim.transpose(methods[o])
        xl.append("pattern:5x3 %d %d %d %s" % (o, t.size[0], t.size[1], sha(t.tobytes())))
    with open(os.path.join(OUT, "exif.txt"), "w") as f:
        f.write("# src orientation w h sha256(ImageOps.exif_transpose(im).convert('RGB')); pattern rows: "
                "im.transpose(method for orientation)\n")
        f.write("\n".join(xl) + "\n")

    # Pillow PNG sizes (default save) for the encoder size check
    el = []
    for src in ("images/photo/advisor.png", "images/photo/hopper.png", "images/png/PngSuite.png"):
        img = Image.open(os.path.join(DATA, src)).convert("RGB")
        b = io.BytesIO()
        img.save(b, "PNG")
        el.append("%s %d" % (src, len(b.getvalue())))
    b = io.BytesIO()
    Image.fromarray(pattern(640, 480), "RGB").save(b, "PNG")
    el.append("pattern:640x480 %d" % len(b.getvalue()))
    with open(os.path.join(OUT, "encode_sizes.txt"), "w") as f:
        f.write("# src bytes of Pillow's Image.save(PNG) with default settings (RGB)\n")
        f.write("\n".join(el) + "\n")

    # round trip through our encoder (needs ./seedx)
    exe = os.path.join(ROOT, "seedx")
    if os.path.exists(exe):
        with tempfile.TemporaryDirectory() as td:
            for src in ("images/photo/advisor.png", "images/photo/hopper.png", "images/png/basn0g16.png",
                        "images/png/tbbn3p08.png"):
                out = os.path.join(td, "o.png")
                subprocess.run([exe, "image", "convert", os.path.join(DATA, src), out], check=True)
                a = Image.open(os.path.join(DATA, src)).convert("RGB").tobytes()
                b = Image.open(out).convert("RGB").tobytes()
                print("round trip %-32s ours %7d bytes: %s" % (src, os.path.getsize(out),
                                                               "same pixels" if a == b else "DIFFERENT"))
                if a != b:
                    sys.exit("PNG encoder round trip failed for " + src)
    else:
        print("(./seedx not built: skipping the Pillow round trip of our PNG encoder)")
    print("image fixtures written to", OUT)


if __name__ == "__main__":
    main()
