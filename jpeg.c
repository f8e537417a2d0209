/* jpeg.c - JPEG decoder: sequential and progressive, Huffman and arithmetic
 * coding, 8-bit, 1/3/4 components, any integral sampling factors, restart
 * intervals. It gives exactly the pixels Pillow 9.4 gets from its
 * libjpeg-turbo with default settings:
 *   - the islow IDCT as libjpeg-turbo's AVX2/SSE2 code computes it (the
 *     jidctint.c algorithm in 16-bit lanes: identical to the C code for
 *     ordinary data, saturating where the C code wraps on corrupt data),
 *   - "fancy" triangular upsampling for 2:1 ratios (h2v1, h1v2, h2v2) and
 *     plain replication for other integral ratios (or components <= 2
 *     samples wide), edges replicated, as libjpeg-turbo's jdsample.c picks,
 *   - YCbCr->RGB / YCCK->CMYK with 16-bit fixed-point tables (jdcolor.c),
 *   - colour space guessed like jdapimin.c (JFIF, Adobe APP14 transform,
 *     component ids), CMYK inverted as Pillow's "CMYK;I" raw mode does,
 *   - block smoothing of progressive images whose low AC coefficients are
 *     not fully refined (jdcoefct.c),
 *   - corrupt data handled like libjpeg (which only warns, so Pillow returns
 *     an image): bad codes, premature markers, lost restart markers; and
 *     refused where libjpeg stops (truncated files, bad tables/markers).
 *
 * Decoding runs in three stages: entropy decoding (sequential scans go
 * straight through the IDCT into per-component sample planes; progressive
 * scans accumulate coefficients, transformed once all scans are read),
 * then per output row: upsampling of every component and colour conversion.
 *
 * Public API (prototypes below; sx_jpeg_decode also in image_io.h):
 *   sx_jpeg_decode           pixels in Pillow's mode (L / RGB / CMYK)
 *   sx_jpeg_info             size and component count from the header only
 *   sx_jpeg_exif_orientation EXIF Orientation tag (1..8, 1 when absent)
 * Limits: more than 16384 px a side or 256 MP is refused. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_io.h"
#include "sx_core.h"

int sx_jpeg_decode(const uint8_t *buf, size_t n, const char *name, sx_image *out,
                   int *pil_channels);
int sx_jpeg_info(const uint8_t *buf, size_t n, const char *name, int *w, int *h,
                 int *channels);
int sx_jpeg_exif_orientation(const uint8_t *buf, size_t n);

#define JPG_MAX_SIDE 16384
#define JPG_MAX_PIXELS (256ull * 1024 * 1024)

/* zig-zag index -> natural (row-major) index */
static const uint8_t jzz[64] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,  7,  14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

/* ---- Huffman tables ------------------------------------------------------ */

#define HUFF_FAST 9
typedef struct {
    int defined, valid, from_dht; /* from_dht: not one of the default tables */
    uint8_t bits[17]; /* number of codes of each length 1..16 */
    uint8_t vals[256];
    int nvals;
    /* derived */
    uint8_t fast_len[1 << HUFF_FAST]; /* 0: code longer than HUFF_FAST */
    uint8_t fast_sym[1 << HUFF_FAST];
    int32_t maxcode[18]; /* largest code of length l, -1 if none */
    int32_t valoff[17];  /* vals index of the first code of length l, minus that code */
} jhuff;

/* Standard tables of JPEG Annex K.3 (libjpeg-turbo installs them for table
 * slots 0 and 1 when a file has no DHT, as motion-JPEG frames do). */
static const uint8_t k3_dc_lum_bits[17] = {0, 0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t k3_dc_chr_bits[17] = {0, 0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0};
static const uint8_t k3_dc_vals[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const uint8_t k3_ac_lum_bits[17] = {0, 0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d};
static const uint8_t k3_ac_lum_vals[162] = {
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51,
    0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1,
    0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18,
    0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
    0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57,
    0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75,
    0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92,
    0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8,
    0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2,
    0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa};
static const uint8_t k3_ac_chr_bits[17] = {0, 0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77};
static const uint8_t k3_ac_chr_vals[162] = {
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07,
    0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09,
    0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25,
    0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38,
    0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56,
    0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74,
    0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba,
    0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6,
    0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2,
    0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa};

/* Builds the canonical code from bits/vals; returns -1 if the counts
 * describe an impossible code (more codes of a length than fit). */
static int huff_build(jhuff *t) {
    int code = 0, k = 0;
    memset(t->fast_len, 0, sizeof t->fast_len);
    for (int l = 1; l <= 16; l++) {
        t->valoff[l] = k - code;
        for (int i = 0; i < t->bits[l]; i++, k++, code++) {
            if (code >= (1 << l)) return -1; /* more codes than fit in l bits */
            if (l <= HUFF_FAST) {
                int shift = HUFF_FAST - l;
                for (int j = 0; j < (1 << shift); j++) {
                    t->fast_len[(code << shift) | j] = (uint8_t)l;
                    t->fast_sym[(code << shift) | j] = t->vals[k];
                }
            }
        }
        t->maxcode[l] = t->bits[l] ? code - 1 : -1;
        if (code >= (1 << l)) return -1; /* all-ones code used: libjpeg refuses it */
        code <<= 1;
    }
    t->maxcode[17] = INT32_MAX;
    return 0;
}

static void huff_std(jhuff *t, const uint8_t *bits, const uint8_t *vals, int nvals) {
    memcpy(t->bits, bits, 17);
    memcpy(t->vals, vals, (size_t)nvals);
    t->nvals = nvals;
    t->defined = 1;
    t->valid = huff_build(t) == 0;
}

/* ---- entropy-coded segment bit reader ---------------------------------- */

typedef struct {
    const uint8_t *buf;
    size_t n, pos;     /* next byte to read */
    uint64_t acc;      /* next bits, MSB first */
    int nbits;         /* valid bits in acc */
    int hit;           /* a marker (or the end of the file) was reached */
    size_t marker_pos; /* offset of the marker's 0xFF (n at end of file) */
    int fake;          /* zero bits appended after the marker */
} jbits;

static void bits_refill(jbits *b) {
    while (b->nbits <= 56) {
        unsigned c = 0;
        if (b->hit) {
            b->fake += 8;
        } else if (b->pos >= b->n) {
            b->hit = 1;
            b->marker_pos = b->n;
            b->fake += 8;
        } else {
            c = b->buf[b->pos];
            if (c != 0xFF) {
                b->pos++;
            } else {
                size_t q = b->pos + 1;
                while (q < b->n && b->buf[q] == 0xFF) q++;
                if (q < b->n && b->buf[q] == 0) {
                    b->pos = q + 1; /* stuffed 0xFF 0x00: a data byte 0xFF */
                } else {
                    b->hit = 1;
                    b->marker_pos = q < b->n ? q - 1 : b->n;
                    b->fake += 8;
                    c = 0;
                }
            }
        }
        b->acc |= (uint64_t)c << (56 - b->nbits);
        b->nbits += 8;
    }
}

static inline unsigned bits_get(jbits *b, int n) { /* n in 1..16, nbits >= n */
    unsigned v = (unsigned)(b->acc >> (64 - n));
    b->acc <<= n;
    b->nbits -= n;
    return v;
}

/* value of an n-bit magnitude category (JPEG F.2.2.1 EXTEND) */
static inline int bits_extend(jbits *b, int s) {
    if (s == 0) return 0;
    unsigned v = bits_get(b, s);
    return v < (1u << (s - 1)) ? (int)v - (1 << s) + 1 : (int)v;
}

/* Decodes one Huffman symbol; -1 on an invalid code. Needs nbits >= 16. */
static inline int huff_decode(jbits *b, const jhuff *t) {
    unsigned look = (unsigned)(b->acc >> (64 - HUFF_FAST));
    int l = t->fast_len[look];
    if (l) {
        b->acc <<= l;
        b->nbits -= l;
        return t->fast_sym[look];
    }
    unsigned c16 = (unsigned)(b->acc >> 48);
    for (l = HUFF_FAST + 1; l <= 16; l++) {
        int32_t code = (int32_t)(c16 >> (16 - l));
        if (code <= t->maxcode[l]) {
            b->acc <<= l;
            b->nbits -= l;
            int idx = t->valoff[l] + code;
            return idx >= 0 && idx < t->nvals ? t->vals[idx] : -1;
        }
    }
    return -1;
}

/* ---- decoder state ------------------------------------------------------ */

/* arithmetic decoder state (see the arithmetic decoding section) */
typedef struct jarith_s {
    const uint8_t *buf;
    size_t n, pos;
    int64_t c, a;
    int ct;            /* -16 at (re)start: two bytes are read first */
    int hit;           /* marker or end of file reached: zeros from now on */
    size_t marker_pos;
    uint8_t dc_stats[16][64], ac_stats[16][256], fixed_bin;
    int dc_ctx[4];
    int last_dc[4];
    int err;           /* corrupt data seen: rest of the restart interval empty */
} jarith;

typedef struct {
    int id, h, v, tq;
    int cw, ch;       /* samples of this component (libjpeg's downsampled size) */
    int nbw, nbh;     /* blocks covering cw x ch */
    int bw, bh;       /* blocks in the MCU-padded layout (coefficient/plane size) */
    uint8_t *plane;   /* bw*8 x bh*8 samples */
    size_t stride;
    int16_t *coef;    /* progressive: bw*bh*64 coefficients, natural order */
    int coef_bits[10]; /* progressive: Al of the last scan of zig-zag coefs 0..9, -1 none */
    int prev_bits[10]; /* the same before the last scan that had this component */
    int32_t qt[64];   /* quantisation table latched at the component's first scan */
    int qlatched;
    int dc_pred;
    int td, ta;       /* Huffman table slots of the current scan */
    int upmode, hr, vr;
} jcomp;

typedef struct {
    const char *name;
    const uint8_t *buf;
    size_t n;
    int w, h, nc, progressive, sof_seen;
    int hmax, vmax, mcux, mcuy;
    jcomp c[4];
    uint16_t qt[4][64]; /* natural order */
    int qdef[4];
    jhuff dc[4], ac[4];
    int restart;
    int nscans;          /* scans started so far */
    int last_good_imcu;  /* iMCU row where the latest scan's data last was intact */
    int arith;                        /* SOF9/SOF10: arithmetic coding */
    uint8_t dac_l[16], dac_u[16], dac_k[16]; /* DAC conditioning (defaults 0, 1, 5) */
    jarith *ae;
    int jfif, adobe, adobe_transform;
    int eobrun;
} jdec;

#define JERR(d, ...) jerr_(d, __VA_ARGS__)
static int jerr_(const jdec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int jerr_(const jdec *d, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sx_err("%s: %s", d->name, msg);
}

/* ---- islow IDCT (libjpeg's jidctint.c arithmetic) ------------------------ */

#define FIX_0_298631336 2446
#define FIX_0_390180644 3196
#define FIX_0_541196100 4433
#define FIX_0_765366865 6270
#define FIX_0_899976223 7373
#define FIX_1_175875602 9633
#define FIX_1_501321110 12299
#define FIX_1_847759065 15137
#define FIX_1_961570560 16069
#define FIX_2_053119869 16819
#define FIX_2_562915447 20995
#define FIX_3_072711026 25172

/* The IDCT Pillow runs is libjpeg-turbo's AVX2 (or SSE2) version of the
 * islow algorithm: the same constants and descaling as jidctint.c, computed
 * in 16-bit lanes with 32-bit products. For every ordinary image it equals
 * the C code; on corrupt data with huge coefficients it differs, so this is
 * written the SIMD way: dequantised coefficients, sums of two of them and the
 * pass-1 outputs wrap or saturate to 16 bits, results saturate to 0..255
 * (the C code wraps around its range-limit table instead). */
static inline int16_t sat16(int32_t v) { return (int16_t)(v < -32768 ? -32768 : v > 32767 ? 32767 : v); }
static inline int16_t wrap16(int32_t v) { return (int16_t)(uint16_t)(uint32_t)v; }
static inline uint8_t out8(int32_t v) { /* saturate to int16, then to int8, + 128 */
    return (uint8_t)(v < -128 ? 0 : v > 127 ? 255 : v + 128);
}

/* One 8-point pass over 8 lanes at once (written as lane loops so the
 * compiler can vectorise them): in[8*k + lane] is frequency k of a lane,
 * o[8*x + lane] its spatial output x, descaled by `shift` (not saturated). */
static inline void idct8x8(const int16_t *in, int32_t *o, int shift) {
    int32_t t10[8], t11[8], t12[8], t13[8], o0[8], o1[8], o2[8], o3[8];
    const int32_t rnd = 1 << (shift - 1);
    for (int l = 0; l < 8; l++) {
        int32_t i0 = in[l], i1 = in[8 + l], i2 = in[16 + l], i3 = in[24 + l], i4 = in[32 + l],
                i5 = in[40 + l], i6 = in[48 + l], i7 = in[56 + l];
        int32_t tmp3 = i2 * (FIX_0_541196100 + FIX_0_765366865) + i6 * FIX_0_541196100;
        int32_t tmp2 = i2 * FIX_0_541196100 + i6 * (FIX_0_541196100 - FIX_1_847759065);
        int32_t tmp0 = (int32_t)(int16_t)(i0 + i4) * 8192, tmp1 = (int32_t)(int16_t)(i0 - i4) * 8192;
        t10[l] = tmp0 + tmp3 + rnd;
        t13[l] = tmp0 - tmp3 + rnd;
        t11[l] = tmp1 + tmp2 + rnd;
        t12[l] = tmp1 - tmp2 + rnd;
        int32_t z3 = (int16_t)(i7 + i3), z4 = (int16_t)(i5 + i1);
        int32_t z3p = z3 * (FIX_1_175875602 - FIX_1_961570560) + z4 * FIX_1_175875602;
        int32_t z4p = z3 * FIX_1_175875602 + z4 * (FIX_1_175875602 - FIX_0_390180644);
        o0[l] = i7 * (FIX_0_298631336 - FIX_0_899976223) - i1 * FIX_0_899976223 + z3p;
        o1[l] = i5 * (FIX_2_053119869 - FIX_2_562915447) - i3 * FIX_2_562915447 + z4p;
        o3[l] = -i7 * FIX_0_899976223 + i1 * (FIX_1_501321110 - FIX_0_899976223) + z4p;
        o2[l] = -i5 * FIX_2_562915447 + i3 * (FIX_3_072711026 - FIX_2_562915447) + z3p;
    }
    /* 32-bit wrap-around like the SIMD adds (none happens for sane data) */
#define DS(a, b) ((int32_t)((uint32_t)(a) + (uint32_t)(b)) >> shift)
#define DD(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) >> shift)
    for (int l = 0; l < 8; l++) {
        o[l] = DS(t10[l], o3[l]);
        o[56 + l] = DD(t10[l], o3[l]);
        o[8 + l] = DS(t11[l], o2[l]);
        o[48 + l] = DD(t11[l], o2[l]);
        o[16 + l] = DS(t12[l], o1[l]);
        o[40 + l] = DD(t12[l], o1[l]);
        o[24 + l] = DS(t13[l], o0[l]);
        o[32 + l] = DD(t13[l], o0[l]);
    }
#undef DS
#undef DD
}

static void idct_islow(const int16_t *in, const int32_t *q, uint8_t *out, size_t stride) {
    int16_t deq[64], wst[64]; /* wst: pass-1 output transposed (wst[8*x + y] = row y, col x) */
    int32_t o[64];
    uint64_t acrows = 0; /* AC rows 1..7 of the whole block */
    for (int k = 8; k < 64; k += 4) {
        uint64_t w;
        memcpy(&w, in + k, 8);
        acrows |= w;
    }
    if (!acrows) { /* the SIMD shortcut: (coef * q) << 2 in 16 bits */
        for (int c = 0; c < 8; c++) {
            int16_t v = wrap16((int32_t)wrap16((int32_t)in[c] * q[c]) * 4);
            for (int r = 0; r < 8; r++) wst[8 * c + r] = v;
        }
    } else {
        for (int k = 0; k < 64; k++) deq[k] = (int16_t)(in[k] * q[k]);
        idct8x8(deq, o, 11); /* pass 1: columns are the lanes */
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++) wst[8 * x + y] = sat16(o[8 * y + x]);
    }
    idct8x8(wst, o, 18); /* pass 2: rows are the lanes; o[8*x + y] */
    for (int y = 0; y < 8; y++) {
        uint8_t *op = out + (size_t)y * stride;
        for (int x = 0; x < 8; x++) op[x] = out8(o[8 * x + y]);
    }
}

/* ---- marker segments ---------------------------------------------------- */

static inline unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }

/* DQT and DHT are checked the way libjpeg reads them: `len` is the declared
 * payload length, only `avail` bytes of it may be in the file (a segment cut
 * by the end of the file, met after a single-scan image was complete).
 * Returns 0, 1 if the data ran out first, -1 on an error. Any nonzero
 * precision nibble means 16-bit values, as in libjpeg. */
static int parse_dqt(jdec *d, const uint8_t *p, size_t len, size_t avail) {
    while (len > 0) {
        if (avail < 1) return 1;
        int pq = p[0] >> 4, tq = p[0] & 15;
        size_t need = 1 + (pq ? 128 : 64);
        if (tq > 3) return JERR(d, "DQT: bad table id %d (0..3 expected)", tq);
        if (len < need) return JERR(d, "DQT: bad segment length (table %d needs %zu more bytes)", tq, need - len);
        if (avail < need) return 1;
        for (int k = 0; k < 64; k++)
            d->qt[tq][jzz[k]] = (uint16_t)(pq ? be16(p + 1 + 2 * k) : p[1 + k]);
        d->qdef[tq] = 1;
        p += need;
        len -= need;
        avail -= need;
    }
    return 0;
}

/* Tables are stored as read; whether they form a valid code is checked
 * when a scan uses them (libjpeg ignores bad tables that no scan uses). */
static int parse_dht(jdec *d, const uint8_t *p, size_t len, size_t avail) {
    while (len > 16) {
        if (avail < 17) return 1;
        int tc = p[0] >> 4, th = p[0] & 15;
        if (tc > 1 || th > 3) return JERR(d, "DHT: bad table class/id 0x%02x", p[0]);
        jhuff *t = tc ? &d->ac[th] : &d->dc[th];
        int total = 0;
        uint8_t bits[17] = {0};
        for (int l = 1; l <= 16; l++) total += (bits[l] = p[l]);
        if (total > 256 || (size_t)total > len - 17)
            return JERR(d, "DHT: bad symbol count %d for %s table %d", total, tc ? "AC" : "DC", th);
        if (avail < 17 + (size_t)total) return 1;
        memcpy(t->bits, bits, sizeof bits);
        memcpy(t->vals, p + 17, (size_t)total);
        t->nvals = total;
        t->defined = t->from_dht = 1;
        t->valid = huff_build(t) == 0;
        p += 17 + total;
        len -= 17 + (size_t)total;
        avail -= 17 + (size_t)total;
    }
    if (len != 0) return JERR(d, "DHT: bad segment length (%zu bytes left over)", len);
    return 0;
}

static int parse_sof(jdec *d, const uint8_t *p, size_t len, int marker) {
    if (d->sof_seen) return JERR(d, "more than one SOF marker");
    d->sof_seen = 1;
    if (len < 6) return JERR(d, "SOF%d: segment too short", marker - 0xC0);
    if (p[0] != 8) return JERR(d, "unsupported JPEG data precision %d (only 8-bit)", p[0]);
    d->h = (int)be16(p + 1);
    d->w = (int)be16(p + 3);
    d->nc = p[5];
    if (len != 6 + 3 * (size_t)d->nc) return JERR(d, "SOF%d: bad segment length %zu", marker - 0xC0, len + 2);
    if (d->w == 0 || d->h == 0)
        return JERR(d, "empty image %dx%d (height 0 with DNL is not supported)", d->w, d->h);
    if (d->nc != 1 && d->nc != 3 && d->nc != 4)
        return JERR(d, "cannot handle %d-component images (1, 3 or 4 supported)", d->nc);
    if (d->w > JPG_MAX_SIDE || d->h > JPG_MAX_SIDE ||
        (uint64_t)d->w * (uint64_t)d->h > JPG_MAX_PIXELS)
        return JERR(d, "image is %dx%d: larger than the %d px a side / 256 MP limit "
                       "(decompression bomb?)", d->w, d->h, JPG_MAX_SIDE);
    d->hmax = d->vmax = 1;
    for (int i = 0; i < d->nc; i++) {
        jcomp *c = &d->c[i];
        c->id = p[6 + 3 * i];
        c->h = p[7 + 3 * i] >> 4;
        c->v = p[7 + 3 * i] & 15;
        c->tq = p[8 + 3 * i];
        if (c->h < 1 || c->h > 4 || c->v < 1 || c->v > 4)
            return JERR(d, "bad sampling factors %dx%d for component %d", c->h, c->v, i);
        if (c->tq > 3) return JERR(d, "bad quantisation table id %d for component %d", c->tq, i);
        if (c->h > d->hmax) d->hmax = c->h;
        if (c->v > d->vmax) d->vmax = c->v;
    }
    d->mcux = (d->w + 8 * d->hmax - 1) / (8 * d->hmax);
    d->mcuy = (d->h + 8 * d->vmax - 1) / (8 * d->vmax);
    for (int i = 0; i < d->nc; i++) {
        jcomp *c = &d->c[i];
        c->cw = (int)(((int64_t)d->w * c->h + d->hmax - 1) / d->hmax);
        c->ch = (int)(((int64_t)d->h * c->v + d->vmax - 1) / d->vmax);
        c->nbw = (c->cw + 7) / 8;
        c->nbh = (c->ch + 7) / 8;
        c->bw = d->mcux * c->h;
        c->bh = d->mcuy * c->v;
        c->stride = (size_t)c->bw * 8;
        for (int k = 0; k < 10; k++) c->coef_bits[k] = -1;
        /* upsampling method, as libjpeg-turbo's jinit_upsampler selects it */
        if (d->hmax % c->h || d->vmax % c->v)
            return JERR(d, "unsupported fractional sampling: component %d is %dx%d, maximum %dx%d",
                        i, c->h, c->v, d->hmax, d->vmax);
        c->hr = d->hmax / c->h;
        c->vr = d->vmax / c->v;
        if (c->hr == 1 && c->vr == 1) c->upmode = 0;                  /* full size */
        else if (c->hr == 2 && c->vr == 1 && c->cw > 2) c->upmode = 1; /* h2v1 fancy */
        else if (c->hr == 1 && c->vr == 2) c->upmode = 2;              /* h1v2 fancy */
        else if (c->hr == 2 && c->vr == 2 && c->cw > 2) c->upmode = 3; /* h2v2 fancy */
        else c->upmode = 4;                                            /* replication */
    }
    d->progressive = marker == 0xC2 || marker == 0xCA;
    d->arith = marker == 0xC9 || marker == 0xCA;
    if (d->arith) {
        d->ae = sx_calloc(1, sizeof *d->ae, "JPEG arithmetic decoder");
        if (!d->ae) return sx_err_prefix("%s: ", d->name);
        d->ae->fixed_bin = 113;
    }
    for (int i = 0; i < d->nc; i++) {
        jcomp *c = &d->c[i];
        size_t plane = (size_t)c->bw * 8 * (size_t)c->bh * 8;
        c->plane = sx_malloc(plane, "JPEG component plane");
        if (!c->plane) return sx_err_prefix("%s: ", d->name);
        /* blocks no scan reaches decode as all-zero coefficients: grey 128 */
        memset(c->plane, 128, plane);
        if (d->progressive) {
            c->coef = sx_calloc((size_t)c->bw * c->bh * 64, sizeof(int16_t), "JPEG coefficients");
            if (!c->coef) return sx_err_prefix("%s: ", d->name);
        }
    }
    return 0;
}

/* ---- scans -------------------------------------------------------------- */

typedef struct {
    int ns, ci[4];
    int ss, se, ah, al;
} jscan;

/* Corrupt entropy data is handled the way libjpeg-turbo handles it (so the
 * pixels stay Pillow's, which only warns): an invalid Huffman code consumes
 * 17 bits and decodes as symbol 0; a run past the end of the block lands on
 * coefficient 63 (jdhuff.c's padded natural-order table); data that ends at a
 * marker is continued with zero bits, and the rest of that restart interval
 * is left empty (sequential: grey blocks; progressive: unchanged). Only the
 * end of the file inside a scan (truncation) is an error, as in Pillow. */

/* zig-zag -> natural order, padded with 63 for runs past the end */
static inline int zz_at(int k) { return k < 64 ? jzz[k] : 63; }

static inline int huff_sym(jbits *b, const jhuff *t) {
    int s = huff_decode(b, t);
    if (s < 0) { /* no code of 16 bits or less: libjpeg drops 17 bits, symbol 0 */
        b->acc <<= 17;
        b->nbits -= 17;
        s = 0;
    }
    return s;
}

static inline void dc_only_block(jcomp *c, const int16_t *blk, int bx, int by) {
    uint8_t *dst = c->plane + (size_t)by * 8 * c->stride + (size_t)bx * 8;
    /* idct_islow's two shortcuts: 16-bit (coef * q) << 2, then (w + 16) >> 5 */
    int32_t w = wrap16((int32_t)wrap16((int32_t)blk[0] * c->qt[0]) * 4);
    uint8_t v = out8((w + 16) >> 5);
    for (int r = 0; r < 8; r++) memset(dst + (size_t)r * c->stride, v, 8);
}

/* sequential: one whole block, then IDCT into the component plane; with
 * skip (no data left in this restart interval) an all-zero block */
static void decode_block_seq(jdec *d, jbits *b, jcomp *c, int bx, int by, int skip) {
    int16_t blk[64];
    memset(blk, 0, sizeof blk);
    int nz = 0;
    if (!skip) {
        if (b->nbits < 32) bits_refill(b);
        int s = huff_sym(b, &d->dc[c->td]); /* DC symbols are <= 15 (checked per scan) */
        /* libjpeg lets the predictor wrap around in 32 bits */
        c->dc_pred = (int)(uint32_t)((uint32_t)c->dc_pred + (uint32_t)bits_extend(b, s));
        blk[0] = (int16_t)(uint16_t)(uint32_t)c->dc_pred;
        const jhuff *ac = &d->ac[c->ta];
        for (int k = 1; k < 64; k++) {
            if (b->nbits < 32) bits_refill(b);
            int rs = huff_sym(b, ac);
            int r = rs >> 4;
            s = rs & 15;
            if (s) {
                k += r;
                int v = bits_extend(b, s);
                blk[zz_at(k)] = (int16_t)v;
                nz |= v;
            } else {
                if (r != 15) break;
                k += 15;
            }
        }
    }
    if (bx < c->nbw && by < c->nbh) {
        if (nz)
            idct_islow(blk, c->qt, c->plane + (size_t)by * 8 * c->stride + (size_t)bx * 8,
                       c->stride);
        else
            dc_only_block(c, blk, bx, by);
    }
}

/* progressive: one block of the current scan into its coefficients */
static int decode_block_prog(jdec *d, jbits *b, jcomp *c, const jscan *sc, int16_t *blk) {
    if (b->nbits < 32) bits_refill(b);
    if (sc->ss == 0) { /* DC scan */
        if (sc->ah == 0) {
            int diff = bits_extend(b, huff_sym(b, &d->dc[c->td]));
            int64_t dc = (int64_t)c->dc_pred + diff;
            if (dc > INT_MAX || dc < INT_MIN) /* libjpeg's jdphuff.c refuses this too */
                return JERR(d, "corrupt data: DC coefficient overflow near offset %zu", b->pos);
            c->dc_pred = (int)dc;
            blk[0] = (int16_t)(uint16_t)((uint32_t)dc << sc->al);
        } else if (bits_get(b, 1)) {
            blk[0] = (int16_t)(uint16_t)((uint16_t)blk[0] | (1u << sc->al));
        }
        return 0;
    }
    const jhuff *ac = &d->ac[c->ta];
    if (sc->ah == 0) { /* AC first pass */
        if (d->eobrun > 0) {
            d->eobrun--;
            return 0;
        }
        for (int k = sc->ss; k <= sc->se; k++) {
            if (b->nbits < 32) bits_refill(b);
            int rs = huff_sym(b, ac);
            int r = rs >> 4, s = rs & 15;
            if (s) {
                k += r;
                blk[zz_at(k)] = (int16_t)(uint16_t)((uint32_t)bits_extend(b, s) << sc->al);
            } else if (r == 15) {
                k += 15;
            } else {
                d->eobrun = (1 << r) - 1;
                if (r) d->eobrun += (int)bits_get(b, r);
                break;
            }
        }
        return 0;
    }
    /* AC refinement (JPEG G.1.2.3) */
    int p1 = 1 << sc->al, m1 = -(1 << sc->al);
    int k = sc->ss;
    if (d->eobrun == 0) {
        for (; k <= sc->se; k++) {
            if (b->nbits < 32) bits_refill(b);
            int rs = huff_sym(b, ac);
            int r = rs >> 4, s = rs & 15, val = 0;
            if (s) {
                val = bits_get(b, 1) ? p1 : m1; /* s != 1 is corrupt; libjpeg treats it as 1 */
            } else if (r != 15) {
                d->eobrun = 1 << r;
                if (r) d->eobrun += (int)bits_get(b, r);
                break;
            }
            /* skip r zero coefficients, refining the non-zero ones passed */
            do {
                int16_t *cp = blk + zz_at(k);
                if (*cp) {
                    if (b->nbits < 8) bits_refill(b);
                    if (bits_get(b, 1) && (*cp & p1) == 0)
                        *cp = (int16_t)(uint16_t)(uint32_t)(*cp + (*cp >= 0 ? p1 : m1));
                } else {
                    if (--r < 0) break;
                }
                k++;
            } while (k <= sc->se);
            if (val) blk[zz_at(k)] = (int16_t)val;
        }
    }
    if (d->eobrun > 0) {
        for (; k <= sc->se; k++) {
            int16_t *cp = blk + zz_at(k);
            if (*cp) {
                if (b->nbits < 8) bits_refill(b);
                if (bits_get(b, 1) && (*cp & p1) == 0)
                    *cp = (int16_t)(uint16_t)(uint32_t)(*cp + (*cp >= 0 ? p1 : m1));
            }
        }
        d->eobrun--;
    }
    return 0;
}

/* ---- arithmetic decoding (JPEG Annex D/F, as libjpeg-turbo's jdarith.c) -- */

/* Table D.2 per state: Qe << 16 | next state after MPS << 8 | MPS switch << 7
 * | next state after LPS; state 113 is the fixed 0.5 estimate of T.851. */
static const uint32_t arith_tab[114] = {
    0x5a1d0181, 0x2586020e, 0x11140310, 0x080b0412, 0x03d80514, 0x01da0617,
    0x00e50719, 0x006f081c, 0x0036091e, 0x001a0a21, 0x000d0b23, 0x00060c09,
    0x00030d0a, 0x00010d0c, 0x5a7f0f8f, 0x3f251024, 0x2cf21126, 0x207c1227,
    0x17b91328, 0x1182142a, 0x0cef152b, 0x09a1162d, 0x072f172e, 0x055c1830,
    0x04061931, 0x03031a33, 0x02401b34, 0x01b11c36, 0x01441d38, 0x00f51e39,
    0x00b71f3b, 0x008a203c, 0x0068213e, 0x004e223f, 0x003b2320, 0x002c0921,
    0x5ae125a5, 0x484c2640, 0x3a0d2741, 0x2ef12843, 0x261f2944, 0x1f332a45,
    0x19a82b46, 0x15182c48, 0x11772d49, 0x0e742e4a, 0x0bfb2f4b, 0x09f8304d,
    0x0861314e, 0x0706324f, 0x05cd3330, 0x04de3432, 0x040f3532, 0x03633633,
    0x02d43734, 0x025c3835, 0x01f83936, 0x01a43a37, 0x01603b38, 0x01253c39,
    0x00f63d3a, 0x00cb3e3b, 0x00ab3f3d, 0x008f203d, 0x5b1241c1, 0x4d044250,
    0x412c4351, 0x37d84452, 0x2fe84553, 0x293c4654, 0x23794756, 0x1edf4857,
    0x1aa94957, 0x174e4a48, 0x14244b48, 0x119c4c4a, 0x0f6b4d4a, 0x0d514e4b,
    0x0bb64f4d, 0x0a40304d, 0x583251d0, 0x4d1c5258, 0x438e5359, 0x3bdd545a,
    0x34ee555b, 0x2eae565c, 0x299a575d, 0x25164756, 0x557059d8, 0x4ca95a5f,
    0x44d95b60, 0x3e225c61, 0x38245d63, 0x32b45e63, 0x2e17565d, 0x56a860df,
    0x4f466165, 0x47e56266, 0x41cf6367, 0x3c3d6468, 0x375e5d63, 0x52316669,
    0x4c0f676a, 0x4639686b, 0x415e6367, 0x56276ae9, 0x50e76b6c, 0x4b85676d,
    0x55976d6e, 0x504f6b6f, 0x5a106fee, 0x55226d70, 0x59eb6ff0, 0x5a1d7171,
};


static int arith_byte(jarith *e) {
    if (e->hit) return 0;
    if (e->pos >= e->n) {
        e->hit = 1;
        e->marker_pos = e->n;
        return 0;
    }
    int v = e->buf[e->pos++];
    if (v != 0xFF) return v;
    while (e->pos < e->n && e->buf[e->pos] == 0xFF) e->pos++;
    if (e->pos >= e->n) {
        e->hit = 1;
        e->marker_pos = e->n;
        return 0;
    }
    if (e->buf[e->pos] == 0) {
        e->pos++;
        return 0xFF;
    }
    e->hit = 1; /* a marker: arithmetic decoding goes on with zero data */
    e->marker_pos = e->pos - 1;
    return 0;
}

static int arith_decode(jarith *e, uint8_t *st) {
    while (e->a < 0x8000) { /* renormalise, reading bytes as needed (D.2.6) */
        if (--e->ct < 0) {
            e->c = (e->c << 8) | arith_byte(e);
            if ((e->ct += 8) < 0 && ++e->ct == 0) e->a = 0x8000;
        }
        e->a <<= 1;
    }
    int sv = *st;
    int64_t qe = arith_tab[sv & 0x7F];
    int nl = (int)(qe & 0xFF), nm = (int)((qe >> 8) & 0xFF);
    qe >>= 16;
    int64_t t = e->a - qe;
    e->a = t;
    t <<= e->ct;
    if (e->c >= t) {
        e->c -= t;
        if (e->a < qe) {
            e->a = qe;
            *st = (uint8_t)((sv & 0x80) ^ nm);
        } else {
            e->a = qe;
            *st = (uint8_t)((sv & 0x80) ^ nl);
            sv ^= 0x80;
        }
    } else if (e->a < 0x8000) {
        if (e->a < qe) {
            *st = (uint8_t)((sv & 0x80) ^ nl);
            sv ^= 0x80;
        } else {
            *st = (uint8_t)((sv & 0x80) ^ nm);
        }
    }
    return sv >> 7;
}

static void arith_reset(jarith *e, const jdec *d, const jscan *sc, int progressive) {
    for (int i = 0; i < sc->ns; i++) {
        const jcomp *c = &d->c[sc->ci[i]];
        if (!progressive || (sc->ss == 0 && sc->ah == 0)) {
            memset(e->dc_stats[c->td], 0, 64);
            e->last_dc[i] = 0;
            e->dc_ctx[i] = 0;
        }
        if (!progressive || sc->ss) memset(e->ac_stats[c->ta], 0, 256);
    }
    e->c = 0;
    e->a = 0;
    e->ct = -16;
    e->err = 0;
}

/* DC difference (F.1.4.4.1 / F.2.4.1): updates last_dc[si]; -1 on overflow */
static int arith_dc(jarith *e, const jdec *d, int si, int tbl) {
    uint8_t *st = e->dc_stats[tbl] + e->dc_ctx[si];
    if (arith_decode(e, st) == 0) {
        e->dc_ctx[si] = 0;
        return 0;
    }
    int sign = arith_decode(e, st + 1), m, v;
    st += 2 + sign;
    if ((m = arith_decode(e, st)) != 0) {
        st = e->dc_stats[tbl] + 20;
        while (arith_decode(e, st)) {
            if ((m <<= 1) == 0x8000) return -1;
            st++;
        }
    }
    if (m < (int)((1L << d->dac_l[tbl]) >> 1)) e->dc_ctx[si] = 0;
    else if (m > (int)((1L << d->dac_u[tbl]) >> 1)) e->dc_ctx[si] = 12 + sign * 4;
    else e->dc_ctx[si] = 4 + sign * 4;
    v = m;
    st += 14;
    while (m >>= 1)
        if (arith_decode(e, st)) v |= m;
    v += 1;
    if (sign) v = -v;
    e->last_dc[si] = (e->last_dc[si] + v) & 0xffff;
    return 0;
}

/* AC coefficients ss..se (F.2.4.2), value << al; -1 on corrupt data */
static int arith_ac(jarith *e, const jdec *d, int tbl, int ss, int se, int al, int16_t *blk) {
    for (int k = ss; k <= se; k++) {
        uint8_t *st = e->ac_stats[tbl] + 3 * (k - 1);
        if (arith_decode(e, st)) break; /* end of block */
        while (arith_decode(e, st + 1) == 0) {
            st += 3;
            if (++k > se) return -1;
        }
        int sign = arith_decode(e, &e->fixed_bin), m, v;
        st += 2;
        if ((m = arith_decode(e, st)) != 0 && arith_decode(e, st)) {
            m <<= 1;
            st = e->ac_stats[tbl] + (k <= d->dac_k[tbl] ? 189 : 217);
            while (arith_decode(e, st)) {
                if ((m <<= 1) == 0x8000) return -1;
                st++;
            }
        }
        v = m;
        st += 14;
        while (m >>= 1)
            if (arith_decode(e, st)) v |= m;
        v += 1;
        if (sign) v = -v;
        blk[jzz[k]] = (int16_t)(uint16_t)((unsigned)v << al);
    }
    return 0;
}

/* AC refinement (G.1.3.3 with arithmetic coding) */
static int arith_ac_refine(jarith *e, int tbl, int ss, int se, int al, int16_t *blk) {
    int p1 = 1 << al, m1 = -(1 << al), kex;
    for (kex = se; kex > 0; kex--)
        if (blk[jzz[kex]]) break;
    for (int k = ss; k <= se; k++) {
        uint8_t *st = e->ac_stats[tbl] + 3 * (k - 1);
        if (k > kex && arith_decode(e, st)) break;
        for (;;) {
            int16_t *cp = blk + jzz[k];
            if (*cp) {
                if (arith_decode(e, st + 2))
                    *cp = (int16_t)(uint16_t)(uint32_t)(*cp + (*cp < 0 ? m1 : p1));
                break;
            }
            if (arith_decode(e, st + 1)) {
                *cp = (int16_t)(arith_decode(e, &e->fixed_bin) ? m1 : p1);
                break;
            }
            st += 3;
            if (++k > se) return -1;
        }
    }
    return 0;
}

/* One block of an arithmetic-coded scan; si = index of the component in the
 * scan. Corrupt data (a magnitude or run overflow) sets e->err: like
 * libjpeg, the block keeps what was decoded so far and the rest of the
 * restart interval is left empty. */
static void arith_block(jdec *d, jarith *e, jcomp *c, int si, const jscan *sc, int bx, int by) {
    if (!d->progressive) {
        int16_t blk[64];
        memset(blk, 0, sizeof blk);
        if (!e->err) {
            if (arith_dc(e, d, si, c->td)) {
                e->err = 1;
            } else {
                blk[0] = (int16_t)(uint16_t)e->last_dc[si];
                if (arith_ac(e, d, c->ta, 1, 63, 0, blk)) e->err = 1;
            }
        }
        if (bx < c->nbw && by < c->nbh)
            idct_islow(blk, c->qt, c->plane + (size_t)by * 8 * c->stride + (size_t)bx * 8,
                       c->stride);
        return;
    }
    int16_t *blk = c->coef + ((size_t)by * c->bw + bx) * 64;
    if (sc->ss == 0) {
        if (sc->ah == 0) {
            if (e->err) return;
            if (arith_dc(e, d, si, c->td)) e->err = 1;
            else blk[0] = (int16_t)(uint16_t)((unsigned)e->last_dc[si] << sc->al);
        } else if (arith_decode(e, &e->fixed_bin)) { /* libjpeg has no error state here */
            blk[0] = (int16_t)(uint16_t)((uint16_t)blk[0] | (1u << sc->al));
        }
    } else if (!e->err) {
        if (sc->ah == 0 ? arith_ac(e, d, c->ta, sc->ss, sc->se, sc->al, blk)
                        : arith_ac_refine(e, c->ta, sc->ss, sc->se, sc->al, blk))
            e->err = 1;
    }
}

/* Finds the next marker at or after `pos` (skipping stray bytes, as libjpeg
 * does with a warning); returns its offset (of the 0xFF) or n at the end. */
static size_t next_marker(const uint8_t *buf, size_t n, size_t pos) {
    for (; pos + 1 < n; pos++) {
        if (buf[pos] != 0xFF) continue;
        size_t q = pos + 1;
        while (q < n && buf[q] == 0xFF) q++;
        if (q >= n) return n;
        if (buf[q] != 0) return q - 1;
        pos = q;
    }
    return n;
}

/* A restart boundary (libjpeg's read_restart_marker + jpeg_resync_to_restart):
 * mp is the next marker. The expected RSTn, or one too far off, is swallowed
 * (*consumed = 1, *mp moves past it); a non-RST marker or one of the next two
 * RSTs is left in place (*consumed = 0: the interval decodes as empty); an
 * earlier RST or an invalid marker is skipped. Only the end of the file is an
 * error. */
static int restart_marker(jdec *d, size_t *mp, int desired, int *consumed) {
    size_t at = *mp;
    for (;;) {
        if (at >= d->n)
            return JERR(d, "truncated entropy data at offset %zu (expected RST%d marker)", d->n, desired);
        int m = d->buf[at + 1], action;
        if (m == 0xD0 + desired) action = 1;
        else if (m < 0xC0) action = 2;
        else if (m < 0xD0 || m > 0xD7) action = 3;
        else if (m == 0xD0 + ((desired + 1) & 7) || m == 0xD0 + ((desired + 2) & 7)) action = 3;
        else if (m == 0xD0 + ((desired + 7) & 7) || m == 0xD0 + ((desired + 6) & 7)) action = 2;
        else action = 1;
        if (action == 1) {
            *mp = at + 2;
            *consumed = 1;
            return 0;
        }
        if (action == 3) {
            *mp = at;
            *consumed = 0;
            return 0;
        }
        at = next_marker(d->buf, d->n, at + 2);
    }
}

static int decode_scan_arith(jdec *d, const jscan *sc, size_t *pos);

/* Decodes one scan whose entropy data starts at *pos; leaves *pos at the
 * marker that follows it. */
static int decode_scan(jdec *d, const jscan *sc, size_t *pos) {
    if (d->arith) return decode_scan_arith(d, sc, pos);
    jbits b = {d->buf, d->n, *pos, 0, 0, 0, 0, 0};
    d->eobrun = 0;
    for (int i = 0; i < sc->ns; i++) d->c[sc->ci[i]].dc_pred = 0;
    int64_t total, per_row;
    jcomp *c0 = &d->c[sc->ci[0]];
    if (sc->ns == 1) {
        per_row = c0->nbw;
        total = (int64_t)c0->nbw * c0->nbh;
    } else {
        per_row = d->mcux;
        total = (int64_t)d->mcux * d->mcuy;
    }
    int rst_next = 0, empty = 0; /* empty: data of this restart interval ran out */
    for (int64_t m = 0; m < total; m++) {
        if (!empty) /* as libjpeg's consume_data, before the restart is read */
            d->last_good_imcu = (int)(sc->ns == 1 ? (m / per_row) / c0->v : m / per_row);
        if (d->restart && m > 0 && m % d->restart == 0) { /* restart marker */
            size_t mp = b.hit ? b.marker_pos : next_marker(d->buf, d->n, b.pos);
            int consumed;
            if (restart_marker(d, &mp, rst_next, &consumed)) return -1;
            rst_next = (rst_next + 1) & 7;
            b.acc = 0;
            b.nbits = b.fake = 0;
            if (consumed) {
                b.pos = mp;
                b.hit = 0;
                empty = 0;
            } else {
                b.hit = 1;
                b.marker_pos = mp;
            }
            d->eobrun = 0;
            for (int i = 0; i < sc->ns; i++) d->c[sc->ci[i]].dc_pred = 0;
        }
        int mx = (int)(m % per_row), my = (int)(m / per_row);
        if (sc->ns == 1) {
            jcomp *c = c0;
            if (!d->progressive) decode_block_seq(d, &b, c, mx, my, empty);
            else if (!empty && decode_block_prog(d, &b, c, sc, c->coef + ((size_t)my * c->bw + mx) * 64))
                return -1;
        } else {
            for (int i = 0; i < sc->ns; i++) {
                jcomp *c = &d->c[sc->ci[i]];
                for (int yy = 0; yy < c->v; yy++)
                    for (int xx = 0; xx < c->h; xx++) {
                        int bx = mx * c->h + xx, by = my * c->v + yy;
                        if (!d->progressive) decode_block_seq(d, &b, c, bx, by, empty);
                        else if (!empty && decode_block_prog(d, &b, c, sc, c->coef + ((size_t)by * c->bw + bx) * 64))
                            return -1;
                    }
            }
        }
        if (b.fake > b.nbits) { /* bits past the end of the data were used */
            if (b.marker_pos >= b.n)
                return JERR(d, "truncated entropy data at offset %zu (file ends inside a scan)", b.n);
            empty = 1; /* libjpeg warns "premature end of data segment" and goes on */
        }
    }
    if (b.hit && b.marker_pos >= b.n) /* libjpeg would wait for more data */
        return JERR(d, "truncated entropy data at offset %zu (file ends inside a scan)", b.n);
    *pos = b.hit ? b.marker_pos : next_marker(d->buf, d->n, b.pos);
    return 0;
}

static int decode_scan_arith(jdec *d, const jscan *sc, size_t *pos) {
    jarith *e = d->ae;
    e->buf = d->buf;
    e->n = d->n;
    e->pos = *pos;
    e->hit = 0;
    arith_reset(e, d, sc, d->progressive);
    jcomp *c0 = &d->c[sc->ci[0]];
    int64_t per_row = sc->ns == 1 ? c0->nbw : d->mcux;
    int64_t total = sc->ns == 1 ? (int64_t)c0->nbw * c0->nbh : (int64_t)d->mcux * d->mcuy;
    int rst_next = 0;
    for (int64_t m = 0; m < total; m++) {
        d->last_good_imcu = (int)(sc->ns == 1 ? (m / per_row) / c0->v : m / per_row);
        if (d->restart && m > 0 && m % d->restart == 0) {
            size_t mp = e->hit ? e->marker_pos : next_marker(d->buf, d->n, e->pos);
            int consumed;
            if (restart_marker(d, &mp, rst_next, &consumed)) return -1;
            rst_next = (rst_next + 1) & 7;
            if (consumed) {
                e->pos = mp;
                e->hit = 0;
            } else {
                e->hit = 1;
                e->marker_pos = mp;
            }
            arith_reset(e, d, sc, d->progressive);
        }
        int mx = (int)(m % per_row), my = (int)(m / per_row);
        if (sc->ns == 1) {
            arith_block(d, e, c0, 0, sc, mx, my);
        } else {
            for (int i = 0; i < sc->ns; i++) {
                jcomp *c = &d->c[sc->ci[i]];
                for (int yy = 0; yy < c->v; yy++)
                    for (int xx = 0; xx < c->h; xx++) arith_block(d, e, c, i, sc, mx * c->h + xx, my * c->v + yy);
            }
        }
    }
    /* zero data after a marker is legal in arithmetic coding, but not past
     * the end of the file */
    if (e->hit && e->marker_pos >= d->n)
        return JERR(d, "truncated entropy data at offset %zu (file ends inside a scan)", d->n);
    *pos = e->hit ? e->marker_pos : next_marker(d->buf, d->n, e->pos);
    return 0;
}

static int parse_sos(jdec *d, const uint8_t *p, size_t len, jscan *sc) {
    if (!d->sof_seen) return JERR(d, "SOS marker before the SOF marker");
    if (len < 1) return JERR(d, "SOS: segment too short");
    sc->ns = p[0];
    if (sc->ns < 1 || sc->ns > 4 || len != 4 + 2 * (size_t)sc->ns)
        return JERR(d, "SOS: bad component count %d or length %zu", sc->ns, len + 2);
    int used[4] = {0, 0, 0, 0}, blocks = 0;
    for (int i = 0; i < sc->ns; i++) {
        int id = p[1 + 2 * i], tabs = p[2 + 2 * i], ci = -1;
        for (int j = 0; j < d->nc; j++)
            if (d->c[j].id == id && !used[j]) {
                ci = j;
                break;
            }
        if (ci < 0) return JERR(d, "SOS: component id %d not in frame (or repeated)", id);
        used[ci] = 1;
        sc->ci[i] = ci;
        jcomp *c = &d->c[ci];
        c->td = tabs >> 4;
        c->ta = tabs & 15;
        blocks += c->h * c->v;
        if (!c->qlatched) { /* libjpeg keeps the table in force at the first scan */
            if (!d->qdef[c->tq]) return JERR(d, "quantisation table %d used but not defined", c->tq);
            for (int k = 0; k < 64; k++) c->qt[k] = d->qt[c->tq][k];
            c->qlatched = 1;
        }
    }
    if (sc->ns > 1 && blocks > 10) return JERR(d, "SOS: %d blocks per MCU (at most 10)", blocks);
    sc->ss = p[1 + 2 * sc->ns];
    sc->se = p[2 + 2 * sc->ns];
    sc->ah = p[3 + 2 * sc->ns] >> 4;
    sc->al = p[3 + 2 * sc->ns] & 15;
    if (d->progressive) {
        int bad = sc->ss == 0 ? sc->se != 0 : (sc->se < sc->ss || sc->se > 63 || sc->ns != 1);
        if (bad || (sc->ah && sc->al != sc->ah - 1) || sc->al > 13)
            return JERR(d, "bad progressive scan parameters Ss=%d Se=%d Ah=%d Al=%d (%d components)",
                        sc->ss, sc->se, sc->ah, sc->al, sc->ns);
        for (int i = 0; i < sc->ns; i++) { /* jdphuff.c/jdarith.c start_pass bookkeeping */
            jcomp *c = &d->c[sc->ci[i]];
            int hi = sc->se > 9 ? 9 : sc->se;
            for (int k = sc->ss < 1 ? sc->ss : 1; k <= (hi > 9 ? hi : 9); k++)
                c->prev_bits[k] = d->nscans > 0 ? c->coef_bits[k] : 0;
            for (int k = sc->ss; k <= hi; k++) c->coef_bits[k] = sc->al;
        }
    }
    /* Huffman tables needed by this scan must exist; DC symbols must be <= 15 */
    for (int i = 0; i < sc->ns && !d->arith; i++) {
        jcomp *c = &d->c[sc->ci[i]];
        int need_dc = !d->progressive || (sc->ss == 0 && sc->ah == 0);
        int need_ac = !d->progressive || sc->ss > 0;
        /* table ids are only checked when the scan uses the table, as in libjpeg */
        if ((need_dc && c->td > 3) || (need_ac && c->ta > 3))
            return JERR(d, "SOS: Huffman table %d used but not defined (0..3 exist)", need_dc && c->td > 3 ? c->td : c->ta);
        /* libjpeg-turbo supplies the default tables to sequential decoding only */
        if (need_dc && d->progressive && !d->dc[c->td].from_dht)
            return JERR(d, "DC Huffman table %d used but not defined", c->td);
        if (need_ac && d->progressive && !d->ac[c->ta].from_dht)
            return JERR(d, "AC Huffman table %d used but not defined", c->ta);
        if (need_dc) {
            if (!d->dc[c->td].defined) return JERR(d, "DC Huffman table %d used but not defined", c->td);
            if (!d->dc[c->td].valid) return JERR(d, "DHT: invalid code lengths in DC table %d", c->td);
            for (int k = 0; k < d->dc[c->td].nvals; k++)
                if (d->dc[c->td].vals[k] > 15) return JERR(d, "bad DC Huffman table %d (symbol %d > 15)", c->td, d->dc[c->td].vals[k]);
        }
        if (need_ac && !d->ac[c->ta].defined) return JERR(d, "AC Huffman table %d used but not defined", c->ta);
        if (need_ac && !d->ac[c->ta].valid) return JERR(d, "DHT: invalid code lengths in AC table %d", c->ta);
    }
    return 0;
}

/* ---- output: IDCT of progressive coefficients, upsampling, colour -------- */

/* ---- block smoothing of incompletely refined progressive images ----------
 * libjpeg-turbo (do_block_smoothing, on by default) estimates the first AC
 * coefficients that are not known to full precision from the DC values of
 * the 5x5 neighbouring blocks (and the DC itself when no AC data came at
 * all). It only matters for progressive files whose scans leave some of
 * zig-zag coefficients 1..9 unrefined; the arithmetic here is jdcoefct.c's
 * decompress_smooth_data, including its edge handling. */

static int smoothing_ok(const jdec *d) {
    static const int pos[10] = {0, 1, 8, 16, 9, 2, 3, 10, 17, 24};
    int useful = 0;
    for (int i = 0; i < d->nc; i++) {
        const jcomp *c = &d->c[i];
        if (!c->qlatched) return 0;
        for (int k = 0; k < 10; k++)
            if (c->qt[pos[k]] == 0) return 0;
        if (c->coef_bits[0] < 0) return 0;
        for (int k = 1; k < 10; k++) useful |= c->coef_bits[k] != 0;
    }
    return useful;
}

static int smooth_pred(int64_t num, int64_t q, int al) {
    int pred = (int)(((q << 7) + (num >= 0 ? num : -num)) / (q << 8));
    if (al > 0 && pred >= (1 << al)) pred = (1 << al) - 1;
    return num >= 0 ? pred : -pred;
}

static void idct_smooth(jdec *d) {
    for (int ci = 0; ci < d->nc; ci++) {
        jcomp *c = &d->c[ci];
        /* rows past the point where the last scan's data ran out use the
         * state before that scan */
        int prev[10];
        for (int k = 0; k < 10; k++) prev[k] = d->nscans > 1 ? c->prev_bits[k] : -1;
        int64_t q00 = c->qt[0], q01 = c->qt[1], q10 = c->qt[8], q20 = c->qt[16], q11 = c->qt[9],
                q02 = c->qt[2], q03 = c->qt[3], q12 = c->qt[10], q21 = c->qt[17], q30 = c->qt[24];
        int last = d->mcuy - 1, lastcol = c->nbw - 1;
        for (int im = 0; im <= last; im++) {
            const int *cb = im > d->last_good_imcu ? prev : c->coef_bits;
            int change_dc = 1;
            for (int k = 1; k < 10; k++) change_dc &= cb[k] == -1;
            int brows = c->v;
            if (im == last) {
                brows = c->nbh % c->v;
                if (brows == 0) brows = c->v;
            }
            for (int br = 0; br < brows; br++) {
                int r = im * c->v + br;
                int rp = (br > 0 || im > 0) ? r - 1 : r;
                int rpp = (br > 1 || im > 1) ? r - 2 : rp;
                int rn = (br < brows - 1 || im < last) ? r + 1 : r;
                int rnn = (br < brows - 2 || im + 1 < last) ? r + 2 : rn;
                const int16_t *row[5];
                int rr[5] = {rpp, rp, r, rn, rnn};
                for (int k = 0; k < 5; k++) row[k] = c->coef + (size_t)rr[k] * c->bw * 64;
                int D[5][5]; /* D[row][col]: libjpeg's DC01..DC25 */
                for (int k = 0; k < 5; k++)
                    for (int j = 0; j < 5; j++) D[k][j] = row[k][0];
                for (int bx = 0; bx <= lastcol; bx++) {
                    int16_t w[64];
                    memcpy(w, c->coef + ((size_t)r * c->bw + bx) * 64, sizeof w);
                    if (bx == 0 && bx < lastcol)
                        for (int k = 0; k < 5; k++) D[k][3] = row[k][64];
                    if (bx + 1 < lastcol)
                        for (int k = 0; k < 5; k++) D[k][4] = row[k][(size_t)(bx + 2) * 64];
#define DC(n) ((int64_t)D[((n) - 1) / 5][((n) - 1) % 5])
                    int al;
                    if ((al = cb[1]) != 0 && w[1] == 0)
                        w[1] = (int16_t)smooth_pred(q00 * (change_dc ?
                            (-DC(1) - DC(2) + DC(4) + DC(5) - 3 * DC(6) + 13 * DC(7) - 13 * DC(9) +
                             3 * DC(10) - 3 * DC(11) + 38 * DC(12) - 38 * DC(14) + 3 * DC(15) -
                             3 * DC(16) + 13 * DC(17) - 13 * DC(19) + 3 * DC(20) - DC(21) - DC(22) +
                             DC(24) + DC(25)) :
                            (-7 * DC(11) + 50 * DC(12) - 50 * DC(14) + 7 * DC(15))), q01, al);
                    if ((al = cb[2]) != 0 && w[8] == 0)
                        w[8] = (int16_t)smooth_pred(q00 * (change_dc ?
                            (-DC(1) - 3 * DC(2) - 3 * DC(3) - 3 * DC(4) - DC(5) - DC(6) + 13 * DC(7) +
                             38 * DC(8) + 13 * DC(9) - DC(10) + DC(16) - 13 * DC(17) - 38 * DC(18) -
                             13 * DC(19) + DC(20) + DC(21) + 3 * DC(22) + 3 * DC(23) + 3 * DC(24) +
                             DC(25)) :
                            (-7 * DC(3) + 50 * DC(8) - 50 * DC(18) + 7 * DC(23))), q10, al);
                    if ((al = cb[3]) != 0 && w[16] == 0)
                        w[16] = (int16_t)smooth_pred(q00 * (change_dc ?
                            (DC(3) + 2 * DC(7) + 7 * DC(8) + 2 * DC(9) - 5 * DC(12) - 14 * DC(13) -
                             5 * DC(14) + 2 * DC(17) + 7 * DC(18) + 2 * DC(19) + DC(23)) :
                            (-DC(3) + 13 * DC(8) - 24 * DC(13) + 13 * DC(18) - DC(23))), q20, al);
                    if ((al = cb[4]) != 0 && w[9] == 0)
                        w[9] = (int16_t)smooth_pred(q00 * (change_dc ?
                            (-DC(1) + DC(5) + 9 * DC(7) - 9 * DC(9) - 9 * DC(17) + 9 * DC(19) +
                             DC(21) - DC(25)) :
                            (DC(10) + DC(16) - 10 * DC(17) + 10 * DC(19) - DC(2) - DC(20) + DC(22) -
                             DC(24) + DC(4) - DC(6) + 10 * DC(7) - 10 * DC(9))), q11, al);
                    if ((al = cb[5]) != 0 && w[2] == 0)
                        w[2] = (int16_t)smooth_pred(q00 * (change_dc ?
                            (2 * DC(7) - 5 * DC(8) + 2 * DC(9) + DC(11) + 7 * DC(12) - 14 * DC(13) +
                             7 * DC(14) + DC(15) + 2 * DC(17) - 5 * DC(18) + 2 * DC(19)) :
                            (-DC(11) + 13 * DC(12) - 24 * DC(13) + 13 * DC(14) - DC(15))), q02, al);
                    if (change_dc) {
                        if ((al = cb[6]) != 0 && w[3] == 0)
                            w[3] = (int16_t)smooth_pred(q00 * (DC(7) - DC(9) + 2 * DC(12) - 2 * DC(14) + DC(17) - DC(19)), q03, al);
                        if ((al = cb[7]) != 0 && w[10] == 0)
                            w[10] = (int16_t)smooth_pred(q00 * (DC(7) - 3 * DC(8) + DC(9) - DC(17) + 3 * DC(18) - DC(19)), q12, al);
                        if ((al = cb[8]) != 0 && w[17] == 0)
                            w[17] = (int16_t)smooth_pred(q00 * (DC(7) - DC(9) - 3 * DC(12) + 3 * DC(14) + DC(17) - DC(19)), q21, al);
                        if ((al = cb[9]) != 0 && w[24] == 0)
                            w[24] = (int16_t)smooth_pred(q00 * (DC(7) + 2 * DC(8) + DC(9) - DC(17) - 2 * DC(18) - DC(19)), q30, al);
                        w[0] = (int16_t)smooth_pred(q00 *
                            (-2 * DC(1) - 6 * DC(2) - 8 * DC(3) - 6 * DC(4) - 2 * DC(5) - 6 * DC(6) +
                             6 * DC(7) + 42 * DC(8) + 6 * DC(9) - 6 * DC(10) - 8 * DC(11) +
                             42 * DC(12) + 152 * DC(13) + 42 * DC(14) - 8 * DC(15) - 6 * DC(16) +
                             6 * DC(17) + 42 * DC(18) + 6 * DC(19) - 6 * DC(20) - 2 * DC(21) -
                             6 * DC(22) - 8 * DC(23) - 6 * DC(24) - 2 * DC(25)), q00, 0);
                    }
#undef DC
                    if (r < c->nbh)
                        idct_islow(w, c->qt, c->plane + (size_t)r * 8 * c->stride + (size_t)bx * 8,
                                   c->stride);
                    for (int k = 0; k < 5; k++) { /* slide the window one block right */
                        D[k][0] = D[k][1];
                        D[k][1] = D[k][2];
                        D[k][2] = D[k][3];
                        D[k][3] = D[k][4];
                    }
                }
            }
        }
    }
}

/* One output row of component c, upsampled to full width (>= d->w samples
 * written into tmp, or a pointer into the plane for full-size components). */
static const uint8_t *upsample_row(const jdec *d, const jcomp *c, int y, uint8_t *tmp) {
    const uint8_t *pl = c->plane;
    size_t st = c->stride;
    int cw = c->cw;
    switch (c->upmode) {
    case 0:
        return pl + (size_t)y * st;
    case 1: { /* h2v1: 3/4 nearer + 1/4 further sample */
        const uint8_t *in = pl + (size_t)y * st;
        uint8_t *o = tmp;
        o[0] = in[0];
        o[1] = (uint8_t)((in[0] * 3 + in[1] + 2) >> 2);
        for (int x = 1; x < cw - 1; x++) {
            int v = in[x] * 3;
            o[2 * x] = (uint8_t)((v + in[x - 1] + 1) >> 2);
            o[2 * x + 1] = (uint8_t)((v + in[x + 1] + 2) >> 2);
        }
        o[2 * cw - 2] = (uint8_t)((in[cw - 1] * 3 + in[cw - 2] + 1) >> 2);
        o[2 * cw - 1] = in[cw - 1];
        return tmp;
    }
    case 2: { /* h1v2: vertical triangle, bias 1 above / 2 below */
        int r = y >> 1, nb = (y & 1) ? (r + 1 < c->ch ? r + 1 : c->ch - 1) : (r > 0 ? r - 1 : 0);
        int bias = (y & 1) ? 2 : 1;
        const uint8_t *a = pl + (size_t)r * st, *b = pl + (size_t)nb * st;
        for (int x = 0; x < cw; x++) tmp[x] = (uint8_t)((a[x] * 3 + b[x] + bias) >> 2);
        return tmp;
    }
    case 3: { /* h2v2: 9/16, 3/16, 3/16, 1/16 */
        int r = y >> 1, nb = (y & 1) ? (r + 1 < c->ch ? r + 1 : c->ch - 1) : (r > 0 ? r - 1 : 0);
        const uint8_t *a = pl + (size_t)r * st, *b = pl + (size_t)nb * st;
        uint8_t *o = tmp;
        int this_ = a[0] * 3 + b[0], next = a[1] * 3 + b[1], last;
        o[0] = (uint8_t)((this_ * 4 + 8) >> 4);
        o[1] = (uint8_t)((this_ * 3 + next + 7) >> 4);
        last = this_;
        this_ = next;
        for (int x = 1; x < cw - 1; x++) {
            next = a[x + 1] * 3 + b[x + 1];
            o[2 * x] = (uint8_t)((this_ * 3 + last + 8) >> 4);
            o[2 * x + 1] = (uint8_t)((this_ * 3 + next + 7) >> 4);
            last = this_;
            this_ = next;
        }
        o[2 * cw - 2] = (uint8_t)((this_ * 3 + last + 8) >> 4);
        o[2 * cw - 1] = (uint8_t)((this_ * 4 + 7) >> 4);
        return tmp;
    }
    default: { /* integral replication */
        const uint8_t *in = pl + (size_t)(y / c->vr) * st;
        int hr = c->hr;
        for (int x = 0; x < d->w; x++) tmp[x] = in[x / hr];
        return tmp;
    }
    }
}

typedef struct {
    jdec *d;
    uint8_t *out;
    int mode; /* 0 grey, 1 YCbCr->RGB, 2 RGB copy, 3 YCCK->CMYK;I, 4 CMYK;I */
    int cr_r[256], cb_b[256];
    int32_t cr_g[256], cb_g[256];
    uint8_t rgb_clamp[1024];
    int nthreads;
    uint8_t *tmp; /* per thread: 4 rows of 2*(w+16) */
    size_t tmp_stride;
} jout;

static inline uint8_t clamp255(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }


static void output_rows(void *ctx, int64_t y0, int64_t y1, int tid) {
    jout *o = ctx;
    jdec *d = o->d;
    int w = d->w;
    uint8_t *tmp = o->tmp + (size_t)tid * 4 * o->tmp_stride;
    for (int64_t y = y0; y < y1; y++) {
        const uint8_t *row[4];
        for (int i = 0; i < d->nc; i++)
            row[i] = upsample_row(d, &d->c[i], (int)y, tmp + (size_t)i * o->tmp_stride);
        uint8_t *dst = o->out + (size_t)y * w * (size_t)(d->nc);
        switch (o->mode) {
        case 0:
            memcpy(dst, row[0], (size_t)w);
            break;
        case 1:
            for (int x = 0; x < w; x++) {
                int yy = row[0][x] + 384, cb = row[1][x], cr = row[2][x];
                dst[3 * x] = o->rgb_clamp[yy + o->cr_r[cr]];
                dst[3 * x + 1] = o->rgb_clamp[yy + (int)((o->cb_g[cb] + o->cr_g[cr]) >> 16)];
                dst[3 * x + 2] = o->rgb_clamp[yy + o->cb_b[cb]];
            }
            break;
        case 2:
            for (int x = 0; x < w; x++) {
                dst[3 * x] = row[0][x];
                dst[3 * x + 1] = row[1][x];
                dst[3 * x + 2] = row[2][x];
            }
            break;
        case 3: /* libjpeg's YCCK->CMYK, then Pillow's inversion */
            for (int x = 0; x < w; x++) {
                int yy = row[0][x], cb = row[1][x], cr = row[2][x];
                dst[4 * x] = (uint8_t)(255 - clamp255(255 - (yy + o->cr_r[cr])));
                dst[4 * x + 1] = (uint8_t)(255 - clamp255(255 - (yy + (int)((o->cb_g[cb] + o->cr_g[cr]) >> 16))));
                dst[4 * x + 2] = (uint8_t)(255 - clamp255(255 - (yy + o->cb_b[cb])));
                dst[4 * x + 3] = (uint8_t)(255 - row[3][x]);
            }
            break;
        default:
            for (int x = 0; x < w; x++)
                for (int i = 0; i < 4; i++) dst[4 * x + i] = (uint8_t)(255 - row[i][x]);
            break;
        }
    }
}

static void idct_task(void *ctx, int64_t b0, int64_t b1, int tid) {
    (void)tid;
    jdec *d = ctx;
    for (int64_t r = b0; r < b1; r++) { /* r indexes (component, block row) pairs */
        int64_t acc = 0;
        for (int i = 0; i < d->nc; i++) {
            jcomp *c = &d->c[i];
            if (r < acc + c->nbh) {
                int by = (int)(r - acc);
                for (int bx = 0; bx < c->nbw; bx++)
                    idct_islow(c->coef + ((size_t)by * c->bw + bx) * 64, c->qt,
                               c->plane + (size_t)by * 8 * c->stride + (size_t)bx * 8, c->stride);
                break;
            }
            acc += c->nbh;
        }
    }
}

static int make_output(jdec *d, sx_image *out) {
    jout o;
    memset(&o, 0, sizeof o);
    o.d = d;
    /* clamp table for y + chroma term, index offset 384 (-384..639 covers
     * the -227..482 that YCbCr->RGB can produce) */
    for (int i = 0; i < 1024; i++) o.rgb_clamp[i] = clamp255(i - 384);
    if (d->nc == 1) o.mode = 0;
    else if (d->nc == 3) {
        int rgb;
        if (d->jfif) rgb = 0;
        else if (d->adobe) rgb = d->adobe_transform == 0;
        else rgb = d->c[0].id == 'R' && d->c[1].id == 'G' && d->c[2].id == 'B';
        o.mode = rgb ? 2 : 1;
    } else {
        /* Adobe transform 0: plain CMYK; any other value: YCCK; no marker: CMYK */
        o.mode = d->adobe && d->adobe_transform != 0 ? 3 : 4;
    }
    for (int i = 0; i < 256; i++) { /* jdcolor.c build_ycc_rgb_table, SCALEBITS 16 */
        int64_t x = i - 128;
        o.cr_r[i] = (int)((91881 * x + 32768) >> 16);  /* FIX(1.40200) */
        o.cb_b[i] = (int)((116130 * x + 32768) >> 16); /* FIX(1.77200) */
        o.cr_g[i] = (int32_t)(-46802 * x);             /* -FIX(0.71414) */
        o.cb_g[i] = (int32_t)(-22554 * x + 32768);     /* -FIX(0.34414) + ONE_HALF */
    }
    size_t npix = (size_t)d->w * (size_t)d->h;
    out->data = sx_malloc(npix * (size_t)d->nc, "JPEG output pixels");
    if (!out->data) return sx_err_prefix("%s: ", d->name);
    o.out = out->data;
    o.nthreads = sx_threads_count();
    if (o.nthreads < 1) o.nthreads = 1;
    o.tmp_stride = (size_t)d->w * 2 + 64;
    o.tmp = sx_malloc(o.tmp_stride * 4 * (size_t)o.nthreads, "JPEG row buffers");
    if (!o.tmp) {
        free(out->data);
        out->data = NULL;
        return sx_err_prefix("%s: ", d->name);
    }
    sx_parallel_for(d->h, 64, output_rows, &o);
    free(o.tmp);
    out->w = d->w;
    out->h = d->h;
    out->channels = d->nc;
    return 0;
}

/* ---- driver ------------------------------------------------------------- */

static void jdec_free(jdec *d) {
    free(d->ae);
    d->ae = NULL;
    for (int i = 0; i < 4; i++) {
        free(d->c[i].plane);
        free(d->c[i].coef);
        d->c[i].plane = NULL;
        d->c[i].coef = NULL;
    }
}

/* Walks the marker segments. With info_only, stops after the SOF. */
static int jpeg_run(jdec *d, int info_only) {
    const uint8_t *buf = d->buf;
    size_t n = d->n;
    if (n < 2 || buf[0] != 0xFF || buf[1] != 0xD8) {
        if (n == 0) return JERR(d, "empty file (0 bytes)");
        return JERR(d, "not a JPEG file: starts with 0x%02x 0x%02x", buf[0], n > 1 ? buf[1] : 0);
    }
    for (int i = 0; i < 16; i++) {
        d->dac_l[i] = 0;
        d->dac_u[i] = 1;
        d->dac_k[i] = 5;
    }
    huff_std(&d->dc[0], k3_dc_lum_bits, k3_dc_vals, 12);
    huff_std(&d->dc[1], k3_dc_chr_bits, k3_dc_vals, 12);
    huff_std(&d->ac[0], k3_ac_lum_bits, k3_ac_lum_vals, 162);
    huff_std(&d->ac[1], k3_ac_chr_bits, k3_ac_chr_vals, 162);
    size_t pos = 2;
    int scans = 0;
    /* A sequential image whose first scan holds every component is output
     * while that scan is decoded; libjpeg then reads on to EOI, and Pillow
     * keeps the image even if that runs into the end of the file (but not if
     * it meets a fatal error, such as another scan). */
    int output_done = 0;
    for (;;) {
        /* find the next marker, skipping stray bytes and 0xFF fill */
        size_t mp = next_marker(buf, n, pos);
        if (mp >= n && output_done) return 0;
        if (mp >= n) {
            if (!d->sof_seen) return JERR(d, "missing SOF marker (no image frame before the end of the file)");
            if (!scans) return JERR(d, "missing SOS marker (no scan data before the end of the file)");
            return JERR(d, "missing EOI marker: file truncated after %d scan%s", scans, scans > 1 ? "s" : "");
        }
        int m = buf[mp + 1];
        pos = mp + 2;
        if (m == 0xD9) { /* EOI */
            if (!d->sof_seen) return JERR(d, "missing SOF marker (EOI at offset %zu)", mp);
            if (!scans) return JERR(d, "missing SOS marker (EOI at offset %zu without image data)", mp);
            return 0;
        }
        if (m == 0xD8) return JERR(d, "unexpected second SOI marker at offset %zu", mp);
        if ((m >= 0xD0 && m <= 0xD7) || m == 0x01) continue; /* stray RSTn / TEM: no length */
        if (m == 0xDA && output_done)
            return JERR(d, "second scan at offset %zu in a single-scan image (EOI expected)", mp);
        /* markers libjpeg refuses before reading their length */
        if (m < 0xC0 || (m >= 0xF0 && m <= 0xFD) || m == 0xDE || m == 0xDF)
            return JERR(d, "unknown marker 0xFF%02X at offset %zu", m, mp);
        if (m == 0xC3 || (m >= 0xC5 && m <= 0xC8) || m == 0xCB || (m >= 0xCD && m <= 0xCF)) {
            static const char *what[16] = {"", "", "", "lossless", "", "differential sequential",
                                           "differential progressive", "differential lossless", "JPG extension",
                                           "", "", "arithmetic-coded lossless", "", "differential arithmetic-coded sequential",
                                           "differential arithmetic-coded progressive",
                                           "differential arithmetic-coded lossless"};
            return JERR(d, "unsupported JPEG process: SOF%d (%s)", m - 0xC0, what[m - 0xC0]);
        }
        if (pos + 2 > n) {
            if (output_done) return 0;
            return JERR(d, "truncated marker segment 0xFF%02X at offset %zu", m, mp);
        }
        size_t len = be16(buf + pos);
        if (len < 2) return JERR(d, "bad length %zu of marker segment 0xFF%02X at offset %zu", len, m, mp);
        if (pos + len > n) {
            if (output_done) { /* libjpeg would parse what it has, then wait */
                int rc = 0;
                if (m == 0xC4) rc = parse_dht(d, buf + pos + 2, len - 2, n - pos - 2);
                if (m == 0xDB) rc = parse_dqt(d, buf + pos + 2, len - 2, n - pos - 2);
                if (m == 0xDD && len != 4) return JERR(d, "DRI: bad segment length %zu", len);
                if ((m == 0xC0 || m == 0xC1 || m == 0xC2 || m == 0xC9 || m == 0xCA) && n - pos >= 8)
                    return JERR(d, "more than one SOF marker");
                return rc < 0 ? -1 : 0;
            }
            return JERR(d, "truncated marker segment 0xFF%02X at offset %zu (%zu bytes, %zu left)", m, mp, len, n - pos);
        }
        const uint8_t *p = buf + pos + 2;
        size_t plen = len - 2;
        pos += len;
        switch (m) {
        case 0xC0: case 0xC1: case 0xC2: case 0xC9: case 0xCA:
            if (parse_sof(d, p, plen, m)) return -1;
            if (info_only) return 0;
            break;
        case 0xC4:
            if (parse_dht(d, p, plen, plen)) return -1;
            break;
        case 0xCC: /* DAC: arithmetic conditioning */
            for (size_t i = 0; i + 1 < plen; i += 2) {
                int idx = p[i], val = p[i + 1];
                if (idx >= 32) return JERR(d, "DAC: bad table index %d", idx);
                if (idx >= 16) {
                    d->dac_k[idx - 16] = (uint8_t)val;
                } else {
                    d->dac_l[idx] = (uint8_t)(val & 15);
                    d->dac_u[idx] = (uint8_t)(val >> 4);
                    if (d->dac_l[idx] > d->dac_u[idx]) return JERR(d, "DAC: bad value 0x%02x", val);
                }
            }
            if (plen & 1) return JERR(d, "DAC: bad segment length %zu", plen + 2);
            break;
        case 0xDB:
            if (parse_dqt(d, p, plen, plen)) return -1;
            break;
        case 0xDD:
            if (plen != 2) return JERR(d, "DRI: bad segment length %zu", plen + 2);
            d->restart = (int)be16(p);
            break;
        case 0xDC: /* DNL: ignored by libjpeg (a zero height is refused at SOF) */
            break;
        case 0xDA: {
            jscan sc;
            if (parse_sos(d, p, plen, &sc)) return -1;
            d->nscans++;
            if (decode_scan(d, &sc, &pos)) return -1;
            if (!scans && !d->progressive && sc.ns == d->nc) output_done = 1;
            scans++;
            break;
        }
        case 0xE0:
            if (plen >= 14 && !memcmp(p, "JFIF\0", 5)) d->jfif = 1;
            break;
        case 0xEE:
            if (plen >= 12 && !memcmp(p, "Adobe", 5)) {
                d->adobe = 1;
                d->adobe_transform = p[11];
            }
            break;
        default:
            if (m < 0xE0 || (m > 0xEF && m != 0xFE)) /* libjpeg knows no other markers */
                return JERR(d, "unknown marker 0xFF%02X at offset %zu", m, mp);
            break; /* APPn, COM: skipped */
        }
    }
}

int sx_jpeg_decode(const uint8_t *buf, size_t n, const char *name, sx_image *out,
                   int *pil_channels) {
    if (!out) return sx_err("sx_jpeg_decode: out is NULL");
    memset(out, 0, sizeof *out);
    if (pil_channels) *pil_channels = 0;
    if (!buf && n) return sx_err("sx_jpeg_decode: buf is NULL");
    jdec *d = sx_calloc(1, sizeof *d, "JPEG decoder");
    if (!d) return -1;
    d->name = name ? name : "<jpeg>";
    d->buf = buf;
    d->n = n;
    int rc = jpeg_run(d, 0);
    if (rc == 0) {
        if (d->progressive && smoothing_ok(d)) {
            idct_smooth(d);
        } else if (d->progressive) {
            int64_t rows = 0;
            for (int i = 0; i < d->nc; i++) rows += d->c[i].nbh;
            sx_parallel_for(rows, 8, idct_task, d);
        }
        rc = make_output(d, out);
    }
    jdec_free(d);
    free(d);
    if (rc == 0 && pil_channels) *pil_channels = out->channels;
    return rc;
}

int sx_jpeg_info(const uint8_t *buf, size_t n, const char *name, int *w, int *h, int *channels) {
    jdec *d = sx_calloc(1, sizeof *d, "JPEG decoder");
    if (!d) return -1;
    d->name = name ? name : "<jpeg>";
    d->buf = buf;
    d->n = buf ? n : 0;
    /* header only: parse_sof allocates planes, so do it by hand */
    int rc = -1;
    size_t pos = 2;
    if (d->n < 2 || buf[0] != 0xFF || buf[1] != 0xD8) {
        rc = JERR(d, "not a JPEG file");
    } else {
        for (;;) {
            size_t mp = next_marker(buf, d->n, pos);
            if (mp >= d->n || buf[mp + 1] == 0xD9 || buf[mp + 1] == 0xDA) {
                rc = JERR(d, "missing SOF marker");
                break;
            }
            int m = buf[mp + 1];
            pos = mp + 2;
            if ((m >= 0xD0 && m <= 0xD8) || m == 0x01) continue;
            if (pos + 2 > d->n) { rc = JERR(d, "truncated marker segment at offset %zu", mp); break; }
            size_t len = be16(buf + pos);
            if (len < 2 || pos + len > d->n) { rc = JERR(d, "truncated marker segment at offset %zu", mp); break; }
            if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
                if (len < 8) { rc = JERR(d, "SOF segment too short"); break; }
                if (w) *w = (int)be16(buf + pos + 5);
                if (h) *h = (int)be16(buf + pos + 3);
                if (channels) *channels = buf[pos + 7];
                rc = 0;
                break;
            }
            pos += len;
        }
    }
    free(d);
    return rc;
}

/* EXIF Orientation (tag 0x0112 in IFD0 of the first APP1 "Exif" segment). */
int sx_jpeg_exif_orientation(const uint8_t *buf, size_t n) {
    if (!buf || n < 4 || buf[0] != 0xFF || buf[1] != 0xD8) return 1;
    size_t pos = 2;
    while (pos + 4 <= n) {
        if (buf[pos] != 0xFF) return 1;
        int m = buf[pos + 1];
        if (m == 0xFF) { pos++; continue; }
        if (m == 0xD9 || m == 0xDA) return 1;
        if ((m >= 0xD0 && m <= 0xD8) || m == 0x01) { pos += 2; continue; }
        size_t len = be16(buf + pos + 2);
        if (len < 2 || pos + 2 + len > n) return 1;
        const uint8_t *p = buf + pos + 4;
        size_t pl = len - 2;
        if (m == 0xE1 && pl >= 14 && !memcmp(p, "Exif\0\0", 6)) {
            const uint8_t *t = p + 6;
            size_t tl = pl - 6;
            int le;
            if (t[0] == 'I' && t[1] == 'I') le = 1;
            else if (t[0] == 'M' && t[1] == 'M') le = 0;
            else return 1;
#define RD16(q) (le ? (unsigned)(q)[0] | (unsigned)(q)[1] << 8 : (unsigned)(q)[0] << 8 | (unsigned)(q)[1])
#define RD32(q) (le ? (uint32_t)(q)[0] | (uint32_t)(q)[1] << 8 | (uint32_t)(q)[2] << 16 | (uint32_t)(q)[3] << 24 \
                    : (uint32_t)(q)[0] << 24 | (uint32_t)(q)[1] << 16 | (uint32_t)(q)[2] << 8 | (uint32_t)(q)[3])
            if (RD16(t + 2) != 42) return 1;
            uint32_t ifd = RD32(t + 4);
            if (ifd > tl || tl - ifd < 2) return 1;
            unsigned cnt = RD16(t + ifd);
            for (unsigned i = 0; i < cnt; i++) {
                size_t e = (size_t)ifd + 2 + 12 * (size_t)i;
                if (e + 12 > tl) return 1;
                if (RD16(t + e) == 0x0112) {
                    unsigned type = RD16(t + e + 2), v;
                    if (type == 3) v = RD16(t + e + 8);
                    else if (type == 4) v = (unsigned)RD32(t + e + 8);
                    else return 1;
                    return v >= 1 && v <= 8 ? (int)v : 1;
                }
            }
#undef RD16
#undef RD32
            return 1;
        }
        pos += 2 + len;
    }
    return 1;
}
