/* image_io.c - images in and out, Pillow-exact conversion and resizing, and
 * SEED-X any-resolution preprocessing.
 *
 *   file bytes --(png.c / jpeg.c / PPM here)--> native Pillow mode
 *              --sx_native_to_rgb (Pillow Convert.c)--> 8-bit RGB
 *              --sx_image_resize (Pillow Resample.c, BICUBIC/BILINEAR)-->
 *              --sx_anyres_preprocess (SEED-X src/inference/any_res.py)--> tiles
 *              --ToTensor + CLIP Normalize (torchvision)--> float [N,3,448,448]
 *
 * Formats are recognised by their magic bytes, never by the file name. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_io.h"
#include "sx_core.h"

#define MAX_SIDE 16384
#define MAX_PIXELS (256ll * 1024 * 1024)

/* ======================================================================
 * basics
 * ====================================================================== */
void sx_image_free(sx_image *im) {
    if (!im) return;
    free(im->data);
    im->data = NULL;
    im->w = im->h = im->channels = 0;
}

static int image_alloc(sx_image *im, int w, int h, int c, const char *what) {
    im->w = w;
    im->h = h;
    im->channels = c;
    im->data = sx_malloc((size_t)w * (size_t)h * (size_t)c, what);
    return im->data ? 0 : -1;
}

static int check_image(const sx_image *im, const char *fn) {
    if (!im || !im->data) return sx_err("%s: NULL image", fn);
    if (im->w <= 0 || im->h <= 0 || im->channels < 1 || im->channels > 4)
        return sx_err("%s: invalid image %dx%d with %d channels", fn, im ? im->w : 0, im ? im->h : 0,
                      im ? im->channels : 0);
    return 0;
}

int sx_image_copy(const sx_image *src, sx_image *out) {
    if (!out) return sx_err("sx_image_copy: NULL output");
    memset(out, 0, sizeof *out);
    if (check_image(src, "sx_image_copy")) return -1;
    if (image_alloc(out, src->w, src->h, src->channels, "image copy")) return -1;
    memcpy(out->data, src->data, (size_t)src->w * (size_t)src->h * (size_t)src->channels);
    return 0;
}

/* PIL Image.crop for a box inside the image. */
int sx_image_crop(const sx_image *src, int x, int y, int w, int h, sx_image *out) {
    if (!out) return sx_err("sx_image_crop: NULL output");
    memset(out, 0, sizeof *out);
    if (check_image(src, "sx_image_crop")) return -1;
    if (x < 0 || y < 0 || w <= 0 || h <= 0 || x > src->w - w || y > src->h - h)
        return sx_err("sx_image_crop: box (%d,%d,%dx%d) is outside the %dx%d image", x, y, w, h, src->w,
                      src->h);
    if (image_alloc(out, w, h, src->channels, "crop")) return -1;
    size_t c = (size_t)src->channels;
    for (int r = 0; r < h; r++)
        memcpy(out->data + (size_t)r * (size_t)w * c,
               src->data + ((size_t)(y + r) * (size_t)src->w + (size_t)x) * c, (size_t)w * c);
    return 0;
}

const char *sx_mode_name(sx_mode m) {
    static const char *names[] = {"1", "L", "LA", "P", "I", "RGB", "RGBA", "CMYK"};
    return (unsigned)m < sizeof names / sizeof names[0] ? names[m] : "?";
}

int sx_read_file(const char *path, uint8_t **buf, size_t *n) {
    if (!path || !buf || !n) return sx_err("sx_read_file: NULL argument");
    *buf = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return sx_err("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return sx_err("%s: not a regular file", path);
    }
    size_t sz = (size_t)st.st_size;
    uint8_t *b = sx_malloc(sz, path);
    if (!b) {
        fclose(f);
        return -1;
    }
    if (sz && fread(b, 1, sz, f) != sz) {
        int e = ferror(f);
        fclose(f);
        free(b);
        return sx_err("%s: read error%s", path, e ? "" : " (file shrank while reading)");
    }
    fclose(f);
    *buf = b;
    *n = sz;
    return 0;
}

/* The name sx_write_file_atomic writes before renaming: PATH.tmpPID. */
static char *tmp_name(const char *path) { return sx_strf("%s.tmp%ld", path, (long)getpid()); }

int sx_write_file_atomic(const char *path, const uint8_t *buf, size_t n) {
    if (!path || (!buf && n)) return sx_err("sx_write_file_atomic: NULL argument");
    char *tmp = tmp_name(path);
    if (!tmp) return -1;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        sx_err("%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    int bad = (n && fwrite(buf, 1, n, f) != n);
    bad |= fclose(f) != 0;
    if (bad) {
        sx_err("%s: write failed: %s", path, strerror(errno));
        remove(tmp);
        free(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        sx_err("%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        remove(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int sx_file_check_writable(const char *path) {
    if (!path || !*path) return sx_err("output path is empty");
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return sx_err("%s: is a directory", path);
    char *tmp = tmp_name(path);
    if (!tmp) return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
    int rc = 0;
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    } else if (errno != EEXIST) {
        rc = sx_err("%s: cannot write there (creating %s: %s)", path, tmp, strerror(errno));
    }
    free(tmp);
    return rc;
}

/* ======================================================================
 * PPM / PGM (binary P6 / P5, maxval 255)
 * ====================================================================== */
static int ppm_token(const uint8_t *b, size_t n, size_t *p, long *v) {
    for (;;) { /* whitespace and # comments */
        while (*p < n && (b[*p] == ' ' || b[*p] == '\t' || b[*p] == '\n' || b[*p] == '\r')) (*p)++;
        if (*p < n && b[*p] == '#') {
            while (*p < n && b[*p] != '\n') (*p)++;
            continue;
        }
        break;
    }
    if (*p >= n || b[*p] < '0' || b[*p] > '9') return -1;
    long x = 0;
    while (*p < n && b[*p] >= '0' && b[*p] <= '9') {
        x = x * 10 + (b[*p] - '0');
        if (x > 100000000) return -1;
        (*p)++;
    }
    *v = x;
    return 0;
}

static int ppm_decode(const uint8_t *b, size_t n, const char *name, sx_native_image *out) {
    int ch = b[1] == '6' ? 3 : 1;
    size_t p = 2;
    long w, h, maxv;
    if (ppm_token(b, n, &p, &w) || ppm_token(b, n, &p, &h) || ppm_token(b, n, &p, &maxv))
        return sx_err("%s: malformed PPM/PGM header", name);
    if (p >= n) return sx_err("%s: PPM/PGM file is truncated after the header", name);
    p++; /* the single whitespace byte before the raster */
    if (w <= 0 || h <= 0) return sx_err("%s: invalid PPM size %ldx%ld", name, w, h);
    if (w > MAX_SIDE || h > MAX_SIDE || (long long)w * h > MAX_PIXELS)
        return sx_err("%s: image %ldx%ld exceeds the decoder limits (%d px a side, %lld MP)", name, w, h,
                      MAX_SIDE, MAX_PIXELS >> 20);
    if (maxv != 255) return sx_err("%s: PPM/PGM maxval %ld is not supported (only 255)", name, maxv);
    size_t need = (size_t)w * (size_t)h * (size_t)ch;
    if (n - p < need)
        return sx_err("%s: PPM/PGM file is truncated (%zu of %zu pixel bytes)", name, n - p, need);
    out->data = sx_malloc(need, "PPM pixels");
    if (!out->data) return -1;
    memcpy(out->data, b + p, need);
    out->w = (int)w;
    out->h = (int)h;
    out->mode = ch == 3 ? SX_MODE_RGB : SX_MODE_L;
    out->bpp = ch;
    return 0;
}

int sx_ppm_encode(const sx_image *im, uint8_t **out, size_t *n) {
    if (check_image(im, "sx_ppm_encode")) return -1;
    if (!out || !n) return sx_err("sx_ppm_encode: NULL output");
    if (im->channels != 3 && im->channels != 1)
        return sx_err("sx_ppm_encode: PPM/PGM needs 3 or 1 channels, got %d", im->channels);
    char hdr[64];
    int hl = snprintf(hdr, sizeof hdr, "P%c\n%d %d\n255\n", im->channels == 3 ? '6' : '5', im->w, im->h);
    size_t px = (size_t)im->w * (size_t)im->h * (size_t)im->channels;
    uint8_t *b = sx_malloc((size_t)hl + px, "PPM file");
    if (!b) return -1;
    memcpy(b, hdr, (size_t)hl);
    memcpy(b + hl, im->data, px);
    *out = b;
    *n = (size_t)hl + px;
    return 0;
}

/* ======================================================================
 * format dispatch
 * ====================================================================== */
static const char *sniff(const uint8_t *b, size_t n) {
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return "PNG";
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "JPEG";
    if (n >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6')) return "PPM";
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return "WEBP";
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return "GIF";
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
    if (n >= 4 && (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4))) return "TIFF";
    return NULL;
}

int sx_image_decode_native(const uint8_t *buf, size_t n, const char *name, sx_native_image *out,
                           const char **format) {
    if (!name) name = "<image>";
    if (!out) return sx_err("%s: NULL output", name);
    memset(out, 0, sizeof *out);
    if (format) *format = NULL;
    if (!buf && n) return sx_err("%s: NULL buffer", name);
    if (n == 0) return sx_err("%s: empty file (0 bytes): not an image", name);
    const char *f = sniff(buf, n);
    if (!f) {
        if (n >= 8 && buf[1] == 'P' && buf[2] == 'N' && buf[3] == 'G')
            return sx_err("%s: corrupt PNG signature (bytes %02x %02x %02x %02x %02x %02x %02x %02x; "
                          "damaged by a text-mode transfer?)", name, buf[0], buf[1], buf[2], buf[3],
                          buf[4], buf[5], buf[6], buf[7]);
        return sx_err("%s: unrecognised image format (first bytes %02x %02x %02x %02x); supported: PNG, "
                      "JPEG, PPM/PGM", name, buf[0], n > 1 ? buf[1] : 0, n > 2 ? buf[2] : 0,
                      n > 3 ? buf[3] : 0);
    }
    if (format) *format = f;
    if (!strcmp(f, "PNG")) return sx_png_decode(buf, n, name, out);
    if (!strcmp(f, "PPM")) return ppm_decode(buf, n, name, out);
    if (!strcmp(f, "JPEG")) {
        sx_image im = {0};
        int pm = 0;
        if (sx_jpeg_decode(buf, n, name, &im, &pm) != 0) return -1;
        if (!im.data || (im.channels != 1 && im.channels != 3 && im.channels != 4)) {
            sx_image_free(&im);
            return sx_err("%s: JPEG decoder returned %d channels", name, im.channels);
        }
        out->w = im.w;
        out->h = im.h;
        out->bpp = im.channels;
        out->mode = im.channels == 1 ? SX_MODE_L : im.channels == 3 ? SX_MODE_RGB : SX_MODE_CMYK;
        out->data = im.data;
        return 0;
    }
    return sx_err("%s: %s images are not supported (the file is %s whatever its name says); "
                  "supported: PNG, JPEG, PPM/PGM", name, f, f);
}

/* Pillow 9.4 Image.convert('RGB') (libImaging/Convert.c) for each mode. */
int sx_native_to_rgb(const sx_native_image *s, sx_image *out) {
    if (!out) return sx_err("sx_native_to_rgb: NULL output");
    memset(out, 0, sizeof *out);
    if (!s || !s->data || s->w <= 0 || s->h <= 0) return sx_err("sx_native_to_rgb: empty image");
    if (image_alloc(out, s->w, s->h, 3, "RGB image")) return -1;
    size_t np = (size_t)s->w * (size_t)s->h;
    const uint8_t *in = s->data;
    uint8_t *o = out->data;
    switch (s->mode) {
    case SX_MODE_1: /* bit2rgb: nonzero -> 255 */
        for (size_t i = 0; i < np; i++) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = in[i] ? 255 : 0;
        break;
    case SX_MODE_L: /* l2rgb */
        for (size_t i = 0; i < np; i++) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = in[i];
        break;
    case SX_MODE_LA: /* la2rgb: grey replicated, alpha dropped */
        for (size_t i = 0; i < np; i++) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = in[2 * i];
        break;
    case SX_MODE_P: /* p2rgb: palette lookup (transparency ignored) */
        for (size_t i = 0; i < np; i++) memcpy(o + 3 * i, s->palette + 3 * (size_t)in[i], 3);
        break;
    case SX_MODE_I: /* i2rgb: clip to 0..255 */
        for (size_t i = 0; i < np; i++) {
            uint16_t v;
            memcpy(&v, in + 2 * i, 2);
            o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = v >= 255 ? 255 : (uint8_t)v;
        }
        break;
    case SX_MODE_RGB:
        memcpy(o, in, np * 3);
        break;
    case SX_MODE_RGBA: /* rgba2rgb: alpha dropped without compositing */
        for (size_t i = 0; i < np; i++) memcpy(o + 3 * i, in + 4 * i, 3);
        break;
    case SX_MODE_CMYK: /* cmyk2rgb: nk - MULDIV255(c, nk), clipped */
        for (size_t i = 0; i < np; i++) {
            int nk = 255 - in[4 * i + 3];
            for (int c = 0; c < 3; c++) {
                int t = in[4 * i + c] * nk + 128;
                int v = nk - (((t >> 8) + t) >> 8);
                o[3 * i + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
        break;
    default:
        sx_image_free(out);
        return sx_err("sx_native_to_rgb: unknown mode %d", (int)s->mode);
    }
    return 0;
}

int sx_image_decode_rgb(const uint8_t *buf, size_t n, const char *name, sx_image *out) {
    if (!out) return sx_err("%s: NULL output", name ? name : "<image>");
    memset(out, 0, sizeof *out);
    sx_native_image nat;
    if (sx_image_decode_native(buf, n, name, &nat, NULL) != 0) return -1;
    if (nat.mode == SX_MODE_RGB) { /* already RGB: hand over the buffer */
        out->w = nat.w;
        out->h = nat.h;
        out->channels = 3;
        out->data = nat.data;
        return 0;
    }
    int rc = sx_native_to_rgb(&nat, out);
    sx_native_free(&nat);
    return rc;
}

int sx_image_load_rgb(const char *path, sx_image *out) {
    if (!out) return sx_err("sx_image_load_rgb: NULL output");
    memset(out, 0, sizeof *out);
    uint8_t *b;
    size_t n;
    if (sx_read_file(path, &b, &n)) return -1;
    int rc = sx_image_decode_rgb(b, n, path, out);
    free(b);
    return rc;
}

/* ---- EXIF orientation ---- */
static int tiff_orientation(const uint8_t *t, size_t n) {
    if (n < 8) return 1;
    int le = t[0] == 'I' && t[1] == 'I';
    if (!le && !(t[0] == 'M' && t[1] == 'M')) return 1;
#define U16(p) (le ? (unsigned)(p)[0] | (unsigned)(p)[1] << 8 : (unsigned)(p)[0] << 8 | (unsigned)(p)[1])
#define U32(p) (le ? (uint32_t)U16(p) | (uint32_t)U16((p) + 2) << 16 : (uint32_t)U16(p) << 16 | (uint32_t)U16((p) + 2))
    if (U16(t + 2) != 42) return 1;
    uint32_t ifd = U32(t + 4);
    if (ifd > n - 2) return 1;
    unsigned cnt = U16(t + ifd);
    for (unsigned i = 0; i < cnt; i++) {
        size_t e = (size_t)ifd + 2 + 12 * (size_t)i;
        if (e + 12 > n) break;
        if (U16(t + e) == 0x0112 && U16(t + e + 2) == 3) {
            unsigned v = U16(t + e + 8);
            return v >= 1 && v <= 8 ? (int)v : 1;
        }
    }
#undef U16
#undef U32
    return 1;
}

int sx_exif_orientation(const uint8_t *b, size_t n) {
    if (!b) return 1;
    if (n >= 4 && b[0] == 0xFF && b[1] == 0xD8) { /* JPEG: marker segments up to SOS */
        size_t p = 2;
        while (p + 4 <= n && b[p] == 0xFF) {
            int m = b[p + 1];
            if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01 || m == 0xFF) {
                p += m == 0xFF ? 1 : 2;
                continue;
            }
            if (m == 0xDA || m == 0xD9) break;
            size_t len = (size_t)b[p + 2] << 8 | b[p + 3];
            if (len < 2 || p + 2 + len > n) break;
            if (m == 0xE1 && len >= 8 && !memcmp(b + p + 4, "Exif\0\0", 6))
                return tiff_orientation(b + p + 10, len - 8);
            p += 2 + len;
        }
        return 1;
    }
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) { /* PNG: eXIf chunk */
        size_t p = 8;
        while (n - p >= 12) {
            size_t len = (size_t)b[p] << 24 | (size_t)b[p + 1] << 16 | (size_t)b[p + 2] << 8 | b[p + 3];
            if (len > n - p - 12) break;
            if (!memcmp(b + p + 4, "eXIf", 4)) return tiff_orientation(b + p + 8, len);
            if (!memcmp(b + p + 4, "IDAT", 4)) break;
            p += 12 + len;
        }
    }
    return 1;
}

/* Image.transpose for the method ImageOps.exif_transpose picks. */
int sx_image_exif_transpose(const sx_image *im, int o, sx_image *out) {
    if (!out) return sx_err("sx_image_exif_transpose: NULL output");
    memset(out, 0, sizeof *out);
    if (check_image(im, "sx_image_exif_transpose")) return -1;
    if (o < 1 || o > 8) return sx_err("sx_image_exif_transpose: orientation %d outside 1..8", o);
    if (o == 1) return sx_image_copy(im, out);
    int w = im->w, h = im->h, swap = o >= 5;
    int ow = swap ? h : w, oh = swap ? w : h;
    if (image_alloc(out, ow, oh, im->channels, "transposed image")) return -1;
    size_t c = (size_t)im->channels;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            switch (o) {
            case 2: sx = w - 1 - x; sy = y; break;                 /* FLIP_LEFT_RIGHT */
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;         /* ROTATE_180 */
            case 4: sx = x; sy = h - 1 - y; break;                 /* FLIP_TOP_BOTTOM */
            case 5: sx = y; sy = x; break;                         /* TRANSPOSE */
            case 6: sx = y; sy = h - 1 - x; break;                 /* ROTATE_270 (90 clockwise) */
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;         /* TRANSVERSE */
            default: sx = w - 1 - y; sy = x; break;                /* 8: ROTATE_90 */
            }
            memcpy(out->data + ((size_t)y * (size_t)ow + (size_t)x) * c,
                   im->data + ((size_t)sy * (size_t)w + (size_t)sx) * c, c);
        }
    return 0;
}

int sx_image_load_rgb_ex(const char *path, int exif_rotate, sx_image *out) {
    if (!out) return sx_err("sx_image_load_rgb_ex: NULL output");
    memset(out, 0, sizeof *out);
    uint8_t *b;
    size_t n;
    if (sx_read_file(path, &b, &n)) return -1;
    int rc = sx_image_decode_rgb(b, n, path, out);
    int o = exif_rotate && rc == 0 ? sx_exif_orientation(b, n) : 1;
    free(b);
    if (rc || o == 1) return rc;
    sx_image t;
    rc = sx_image_exif_transpose(out, o, &t);
    sx_image_free(out);
    if (rc == 0) *out = t;
    return rc;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    if (a < b) return 0;
    for (size_t i = 0; i < b; i++) {
        char c = s[a - b + i];
        if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
        if (c != suf[i]) return 0;
    }
    return 1;
}

/* The writer a path's extension asks for: 'p' PNG, 'm' PPM/PGM, 0 unknown. */
static int out_format(const char *path) {
    return ends_with(path, ".png") ? 'p' : ends_with(path, ".ppm") || ends_with(path, ".pgm") ? 'm' : 0;
}

int sx_image_check_output(const char *path) {
    if (!path) return sx_err("sx_image_check_output: NULL path");
    if (!out_format(path)) return sx_err("%s: unknown output format (use .png, .ppm or .pgm)", path);
    return sx_file_check_writable(path);
}

int sx_image_save(const char *path, const sx_image *im) {
    if (!path) return sx_err("sx_image_save: NULL path");
    if (check_image(im, path)) return -1;
    uint8_t *b = NULL;
    size_t n = 0;
    int rc, fmt = out_format(path);
    if (fmt == 'p')
        rc = sx_png_encode(im, &b, &n);
    else if (fmt == 'm')
        rc = sx_ppm_encode(im, &b, &n);
    else
        return sx_err("%s: unknown output format (use .png, .ppm or .pgm)", path);
    if (rc) return sx_err_prefix("%s: ", path);
    rc = sx_write_file_atomic(path, b, n);
    free(b);
    return rc;
}

/* ======================================================================
 * Resize: Pillow 9.4 libImaging/Resample.c, 8 bits per channel
 * ====================================================================== */
static double filt_bilinear(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}
static double filt_bicubic(double x) { /* Keys kernel with a = -0.5 */
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

#define PREC_BITS 22 /* 32 - 8 - 2 */

typedef struct {
    int ksize;
    int *bounds;  /* [out][2]: first tap, tap count */
    int32_t *kk;  /* [out][ksize] fixed-point weights */
} rs_coeffs;

/* ---- box drawing ------------------------------------------------------
 * OpenCV 4's rectangle() draws the closed polyline (x1,y1) (x2,y1) (x2,y2)
 * (x1,y2) with ThickLine: a segment of non-zero length becomes a convex
 * polygon offset by thickness/2 on either side (for thickness 2 and an
 * axis-aligned segment: exactly one pixel), filled inclusive of its edges;
 * the end of each segment gets a filled circle of radius (thickness+1)/2 = 1,
 * which at that radius is a plus of 5 pixels. So each edge covers the three
 * pixels centred on it, and the outer corner pixels stay undrawn. */
static void put_rect(sx_image *im, int64_t x0, int64_t y0, int64_t x1, int64_t y1, const uint8_t c[3]) {
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 >= im->w) x1 = im->w - 1;
    if (y1 >= im->h) y1 = im->h - 1;
    for (int64_t y = y0; y <= y1; y++)
        for (int64_t x = x0; x <= x1; x++) memcpy(im->data + ((size_t)y * (size_t)im->w + (size_t)x) * 3, c, 3);
}

int sx_image_draw_box(sx_image *im, int x1, int y1, int x2, int y2, const uint8_t rgb[3]) {
    if (!im || !im->data || !rgb || im->channels != 3 || im->w <= 0 || im->h <= 0)
        return sx_err("sx_image_draw_box: needs a non-empty RGB image");
    const int64_t px[4] = {x1, x2, x2, x1}, py[4] = {y1, y1, y2, y2};
    int64_t ax = px[3], ay = py[3]; /* closed: the first segment starts at the last corner */
    for (int i = 0; i < 4; i++) {
        int64_t bx = px[i], by = py[i];
        if (ay == by && ax != bx) /* horizontal */
            put_rect(im, ax < bx ? ax : bx, ay - 1, ax < bx ? bx : ax, ay + 1, rgb);
        else if (ax == bx && ay != by) /* vertical */
            put_rect(im, ax - 1, ay < by ? ay : by, ax + 1, ay < by ? by : ay, rgb);
        put_rect(im, bx - 1, by, bx + 1, by, rgb); /* the round join: a plus */
        put_rect(im, bx, by - 1, bx, by + 1, rgb);
        ax = bx, ay = by;
    }
    return 0;
}

/* precompute_coeffs + normalize_coeffs_8bpc for box (0, in_size). */
static int rs_precompute(int in_size, int out_size, int filter, rs_coeffs *c) {
    double (*fn)(double) = filter == SX_RESIZE_BILINEAR ? filt_bilinear : filt_bicubic;
    double fsupport = filter == SX_RESIZE_BILINEAR ? 1.0 : 2.0;
    double scale = (double)(float)in_size / out_size, filterscale = scale;
    if (filterscale < 1.0) filterscale = 1.0;
    double support = fsupport * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    c->ksize = ksize;
    c->bounds = malloc(sizeof(int) * 2 * (size_t)out_size);
    c->kk = malloc(sizeof(int32_t) * (size_t)ksize * (size_t)out_size);
    double *k = malloc(sizeof(double) * (size_t)ksize);
    if (!c->bounds || !c->kk || !k) {
        free(c->bounds);
        free(c->kk);
        free(k);
        c->bounds = NULL;
        c->kk = NULL;
        return sx_err("out of memory for resize coefficients (%d -> %d)", in_size, out_size);
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = 0.0 + (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        int x;
        for (x = 0; x < xmax; x++) {
            double wv = fn((x + xmin - center + 0.5) * ss);
            k[x] = wv;
            ww += wv;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        int32_t *q = c->kk + (size_t)xx * (size_t)ksize;
        for (x = 0; x < ksize; x++) {
            double v = x < xmax ? k[x] : 0.0;
            q[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PREC_BITS)) : (int32_t)(0.5 + v * (1 << PREC_BITS));
        }
        c->bounds[2 * xx] = xmin;
        c->bounds[2 * xx + 1] = xmax;
    }
    free(k);
    return 0;
}

static inline uint8_t clip8(int32_t v) {
    v >>= PREC_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

typedef struct {
    const sx_image *in;
    sx_image *out;
    const rs_coeffs *c;
    int offset; /* first source row (horizontal pass) */
} rs_job;

static void rs_horiz(void *ctx, int64_t y0, int64_t y1, int tid) {
    (void)tid;
    rs_job *j = ctx;
    int C = j->in->channels, ow = j->out->w, ks = j->c->ksize;
    for (int64_t y = y0; y < y1; y++) {
        const uint8_t *src = j->in->data + (size_t)(y + j->offset) * (size_t)j->in->w * (size_t)C;
        uint8_t *dst = j->out->data + (size_t)y * (size_t)ow * (size_t)C;
        for (int xx = 0; xx < ow; xx++) {
            int xmin = j->c->bounds[2 * xx], xmax = j->c->bounds[2 * xx + 1];
            const int32_t *k = j->c->kk + (size_t)xx * (size_t)ks;
            const uint8_t *s = src + (size_t)xmin * (size_t)C;
            if (C == 3) {
                int32_t s0 = 1 << (PREC_BITS - 1), s1 = s0, s2 = s0;
                for (int x = 0; x < xmax; x++) {
                    s0 += s[3 * x] * k[x];
                    s1 += s[3 * x + 1] * k[x];
                    s2 += s[3 * x + 2] * k[x];
                }
                dst[3 * xx] = clip8(s0);
                dst[3 * xx + 1] = clip8(s1);
                dst[3 * xx + 2] = clip8(s2);
            } else {
                for (int c = 0; c < C; c++) {
                    int32_t s0 = 1 << (PREC_BITS - 1);
                    for (int x = 0; x < xmax; x++) s0 += s[C * x + c] * k[x];
                    dst[C * xx + c] = clip8(s0);
                }
            }
        }
    }
}

static void rs_vert(void *ctx, int64_t y0, int64_t y1, int tid) {
    (void)tid;
    rs_job *j = ctx;
    size_t rowlen = (size_t)j->in->w * (size_t)j->in->channels;
    int ks = j->c->ksize;
    int32_t acc[1024];
    for (int64_t yy = y0; yy < y1; yy++) {
        int ymin = j->c->bounds[2 * yy], ymax = j->c->bounds[2 * yy + 1];
        const int32_t *k = j->c->kk + (size_t)yy * (size_t)ks;
        uint8_t *dst = j->out->data + (size_t)yy * rowlen;
        for (size_t x0 = 0; x0 < rowlen; x0 += 1024) { /* row strips keep the sums in cache */
            size_t nx = rowlen - x0 < 1024 ? rowlen - x0 : 1024;
            for (size_t x = 0; x < nx; x++) acc[x] = 1 << (PREC_BITS - 1);
            for (int y = 0; y < ymax; y++) {
                const uint8_t *s = j->in->data + (size_t)(y + ymin) * rowlen + x0;
                int32_t kv = k[y];
                for (size_t x = 0; x < nx; x++) acc[x] += s[x] * kv;
            }
            for (size_t x = 0; x < nx; x++) dst[x0 + x] = clip8(acc[x]);
        }
    }
}

int sx_image_resize(const sx_image *src, int w, int h, int filter, sx_image *out) {
    if (!out) return sx_err("sx_image_resize: NULL output");
    memset(out, 0, sizeof *out);
    if (check_image(src, "sx_image_resize")) return -1;
    if (filter != SX_RESIZE_BILINEAR && filter != SX_RESIZE_BICUBIC)
        return sx_err("sx_image_resize: unsupported filter %d (use SX_RESIZE_BILINEAR or SX_RESIZE_BICUBIC)",
                      filter);
    if (w <= 0 || h <= 0 || w > MAX_SIDE || h > MAX_SIDE || (long long)w * h > MAX_PIXELS)
        return sx_err("sx_image_resize: invalid target size %dx%d", w, h);
    if (w == src->w && h == src->h) return sx_image_copy(src, out); /* Image.resize returns a copy */
    int need_h = w != src->w, need_v = h != src->h;
    rs_coeffs ch = {0}, cv = {0};
    if (rs_precompute(src->w, w, filter, &ch) || rs_precompute(src->h, h, filter, &cv)) {
        free(ch.bounds);
        free(ch.kk);
        return -1;
    }
    int yfirst = cv.bounds[0], ylast = cv.bounds[2 * h - 2] + cv.bounds[2 * h - 1];
    sx_image tmp = {0};
    const sx_image *cur = src;
    int rc = 0;
    if (need_h) {
        for (int i = 0; i < h; i++) cv.bounds[2 * i] -= yfirst;
        if (image_alloc(&tmp, w, ylast - yfirst, src->channels, "resize intermediate")) {
            rc = -1;
            goto done;
        }
        rs_job j = {src, &tmp, &ch, yfirst};
        sx_parallel_for(tmp.h, 16, rs_horiz, &j);
        cur = &tmp;
    }
    if (need_v) {
        if (image_alloc(out, cur->w, h, src->channels, "resized image")) {
            rc = -1;
            goto done;
        }
        rs_job j = {cur, out, &cv, 0};
        sx_parallel_for(h, 8, rs_vert, &j);
        sx_image_free(&tmp);
    } else {
        *out = tmp; /* horizontal only */
        tmp.data = NULL;
    }
done:
    sx_image_free(&tmp);
    free(ch.bounds);
    free(ch.kk);
    free(cv.bounds);
    free(cv.kk);
    if (rc) sx_image_free(out);
    return rc;
}

/* ======================================================================
 * SEED-X any-resolution preprocessing
 * ====================================================================== */
static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

int sx_anyres_parse_grids(const char *grids, int (*res)[2], int *n) {
    if (!res || !n) return sx_err("sx_anyres_parse_grids: NULL argument");
    if (!grids) grids = SX_ANYRES_DEFAULT_GRIDS;
    const char *p = grids;
    int k = 0;
    while (*p) {
        char *e;
        long a = strtol(p, &e, 10);
        if (e == p || (*e != 'x' && *e != 'X'))
            return sx_err("any-res grids '%s': expected AxB[,AxB...] (e.g. 2x1)", grids);
        p = e + 1;
        long b = strtol(p, &e, 10);
        if (e == p) return sx_err("any-res grids '%s': expected AxB[,AxB...] (e.g. 2x1)", grids);
        if (a < 1 || b < 1 || a > 8 || b > 8)
            return sx_err("any-res grids '%s': grid %ldx%ld outside 1..8", grids, a, b);
        if (k >= SX_ANYRES_MAX_GRIDS)
            return sx_err("any-res grids '%s': more than %d grids", grids, SX_ANYRES_MAX_GRIDS);
        res[k][0] = (int)a * SX_ANYRES_BASE;
        res[k][1] = (int)b * SX_ANYRES_BASE;
        k++;
        p = e;
        if (*p == ',') p++;
        else if (*p) return sx_err("any-res grids '%s': unexpected '%c'", grids, *p);
    }
    if (!k) return sx_err("any-res grids: empty list");
    *n = k;
    return 0;
}

/* select_best_resolution: most effective pixels, then least waste, then first. */
int sx_anyres_rule_a(int w, int h, const int (*res)[2], int n) {
    int best = -1;
    long long max_eff = 0;
    double min_waste = INFINITY;
    for (int i = 0; i < n; i++) {
        double s1 = (double)res[i][0] / w, s2 = (double)res[i][1] / h;
        double scale = s2 < s1 ? s2 : s1; /* Python min(a, b) */
        long long dw = (long long)((double)w * scale), dh = (long long)((double)h * scale);
        long long eff = dw * dh, orig = (long long)w * h;
        if (orig < eff) eff = orig;
        long long waste = (long long)res[i][0] * res[i][1] - eff;
        if (eff > max_eff || (eff == max_eff && (double)waste < min_waste)) {
            max_eff = eff;
            min_waste = (double)waste;
            best = i;
        }
    }
    return best;
}

/* select_best_resolution_v2: closest aspect ratio, then closest area, then first. */
int sx_anyres_rule_b(int w, int h, const int (*res)[2], int n) {
    int best = -1;
    double oar = (double)h / w, oarea = (double)w * h;
    double min_d = INFINITY, min_a = INFINITY;
    for (int i = 0; i < n; i++) {
        double ar = (double)res[i][1] / res[i][0], area = (double)res[i][0] * res[i][1];
        double mx = oar > ar ? oar : ar, mn = oar < ar ? oar : ar;
        double d = mx / mn;
        double amx = oarea > area ? oarea : area, amn = oarea < area ? oarea : area;
        double a = amx / amn;
        if (d < min_d || (d == min_d && a < min_a)) {
            min_d = d;
            min_a = a;
            best = i;
        }
    }
    return best;
}

int sx_anyres_select(int w, int h, const int (*res)[2], int n) {
    if (!res || n <= 0 || w <= 0 || h <= 0) return sx_err("sx_anyres_select: invalid arguments");
    int a = sx_anyres_rule_a(w, h, res, n), b = sx_anyres_rule_b(w, h, res, n);
    if (a < 0 || b < 0) return sx_err("sx_anyres_select: no candidate for %dx%d", w, h);
    if ((long long)res[a][0] * res[a][1] > (long long)res[b][0] * res[b][1]) return b;
    return a;
}

int sx_clip_normalize(const sx_image *im, float *out) {
    if (check_image(im, "sx_clip_normalize")) return -1;
    if (!out) return sx_err("sx_clip_normalize: NULL output");
    if (im->channels != 3) return sx_err("sx_clip_normalize: needs RGB, got %d channels", im->channels);
    size_t np = (size_t)im->w * (size_t)im->h;
    for (int c = 0; c < 3; c++) {
        float lut[256];
        for (int v = 0; v < 256; v++) lut[v] = ((float)v / 255.0f - clip_mean[c]) / clip_std[c];
        float *o = out + (size_t)c * np;
        for (size_t i = 0; i < np; i++) o[i] = lut[im->data[3 * i + (size_t)c]];
    }
    return 0;
}

int sx_clip_preprocess_448(const sx_image *im, float *out) {
    if (check_image(im, "sx_clip_preprocess_448")) return -1;
    if (!out) return sx_err("sx_clip_preprocess_448: NULL output");
    if (im->w == SX_ANYRES_BASE && im->h == SX_ANYRES_BASE) return sx_clip_normalize(im, out);
    sx_image r;
    if (sx_image_resize(im, SX_ANYRES_BASE, SX_ANYRES_BASE, SX_RESIZE_BILINEAR, &r)) return -1;
    int rc = sx_clip_normalize(&r, out);
    sx_image_free(&r);
    return rc;
}

int sx_vae_preprocess_1024(const sx_image *im, float *out) {
    if (check_image(im, "sx_vae_preprocess_1024")) return -1;
    if (!out) return sx_err("sx_vae_preprocess_1024: NULL output");
    if (im->channels != 3) return sx_err("sx_vae_preprocess_1024: needs RGB, got %d channels", im->channels);
    sx_image r;
    if (sx_image_resize(im, 1024, 1024, SX_RESIZE_BICUBIC, &r)) return -1;
    size_t np = 1024 * 1024;
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = 2.0f * ((float)v / 255.0f) - 1.0f;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < np; i++) out[(size_t)c * np + i] = lut[r.data[3 * i + (size_t)c]];
    sx_image_free(&r);
    return 0;
}

void sx_anyres_free(sx_anyres *a) {
    if (!a) return;
    if (a->tiles)
        for (int i = 0; i < a->n; i++) sx_image_free(&a->tiles[i]);
    free(a->tiles);
    free(a->pixels);
    free(a->pos);
    memset(a, 0, sizeof *a);
}

/* resize_and_pad_image: plain resize, or (keep_ratio) aspect-preserving
 * resize pasted centred on a black canvas. */
static int resize_and_pad(const sx_image *im, int tw, int th, int keep_ratio, sx_image *out) {
    if (!keep_ratio) return sx_image_resize(im, tw, th, SX_RESIZE_BICUBIC, out);
    double sw = (double)tw / im->w, sh = (double)th / im->h;
    int nw, nh;
    if (sw < sh) {
        nw = tw;
        double c = ceil((double)im->h * sw);
        nh = c < th ? (int)c : th;
    } else {
        nh = th;
        double c = ceil((double)im->w * sh);
        nw = c < tw ? (int)c : tw;
    }
    sx_image r;
    if (sx_image_resize(im, nw, nh, SX_RESIZE_BICUBIC, &r)) return -1;
    out->data = sx_calloc((size_t)tw * (size_t)th, 3, "padded image");
    if (!out->data) {
        sx_image_free(&r);
        return -1;
    }
    out->w = tw;
    out->h = th;
    out->channels = 3;
    int px = (tw - nw) / 2, py = (th - nh) / 2;
    for (int y = 0; y < nh; y++)
        memcpy(out->data + ((size_t)(y + py) * (size_t)tw + (size_t)px) * 3, r.data + (size_t)y * (size_t)nw * 3,
               (size_t)nw * 3);
    sx_image_free(&r);
    return 0;
}

int sx_anyres_preprocess(const sx_image *im, const char *grids, sx_anyres *out) {
    return sx_anyres_preprocess_ex(im, grids, 0, out);
}

int sx_anyres_preprocess_ex(const sx_image *im, const char *grids, int keep_ratio, sx_anyres *out) {
    if (!out) return sx_err("sx_anyres_preprocess: NULL output");
    memset(out, 0, sizeof *out);
    if (check_image(im, "sx_anyres_preprocess")) return -1;
    if (im->channels != 3) return sx_err("sx_anyres_preprocess: needs RGB, got %d channels", im->channels);
    int res[SX_ANYRES_MAX_GRIDS][2], nres;
    if (sx_anyres_parse_grids(grids, res, &nres)) return -1;
    int k = sx_anyres_select(im->w, im->h, (const int(*)[2])res, nres);
    if (k < 0) return -1;
    const int B = SX_ANYRES_BASE;
    int W = res[k][0], H = res[k][1], gw = W / B, gh = H / B;
    out->grid_w = gw;
    out->grid_h = gh;
    out->n = gw * gh + 1;
    size_t per = (size_t)3 * B * B;
    out->tiles = sx_calloc((size_t)out->n, sizeof(sx_image), "any-res tiles");
    out->pixels = sx_malloc(per * (size_t)out->n * sizeof(float), "any-res pixels");
    out->pos = sx_malloc((size_t)out->n * 2 * sizeof(float), "any-res positions");
    if (!out->tiles || !out->pixels || !out->pos) goto fail;
    /* 1. resize_and_pad_image: keep_ratio=False (official) = image.resize((W,H)), BICUBIC */
    sx_image big;
    if (resize_and_pad(im, W, H, keep_ratio, &big)) goto fail;
    /* 2. divide_to_patches: row-major 448x448 crops */
    for (int r = 0; r < gh; r++)
        for (int c = 0; c < gw; c++) {
            int t = r * gw + c;
            if (sx_image_crop(&big, c * B, r * B, B, B, &out->tiles[t])) {
                sx_image_free(&big);
                goto fail;
            }
            out->pos[2 * t] = ((float)c + 0.5f) / (float)gw;
            out->pos[2 * t + 1] = ((float)r + 0.5f) / (float)gh;
        }
    sx_image_free(&big);
    /* 3. global thumbnail: image.resize((448,448)), last, position (0.5,0.5) */
    if (sx_image_resize(im, B, B, SX_RESIZE_BICUBIC, &out->tiles[out->n - 1])) goto fail;
    out->pos[2 * (out->n - 1)] = 0.5f;
    out->pos[2 * (out->n - 1) + 1] = 0.5f;
    /* 4. image_transform per tile: Resize((448,448)) [no-op], ToTensor, Normalize */
    for (int t = 0; t < out->n; t++)
        if (sx_clip_preprocess_448(&out->tiles[t], out->pixels + per * (size_t)t)) goto fail;
    return 0;
fail:
    sx_err_prefix("any-res preprocessing of a %dx%d image: ", im->w, im->h);
    sx_anyres_free(out);
    return -1;
}
