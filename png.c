/* png.c - PNG decoder and encoder with our own zlib: CRC-32, Adler-32,
 * inflate (RFC 1951 + RFC 1950 wrapper) and deflate (LZ77 hash chains, lazy
 * matching, dynamic Huffman blocks).
 *
 * The decoder produces pixels in the mode Pillow 9.4 opens the file in
 * (PngImagePlugin._MODES): grey 1-bit -> "1", 2/4/8-bit -> "L" (scaled with
 * v*0x55 / v*0x11), 16-bit grey -> "I", grey+alpha 8 -> "LA", 16 -> "RGBA",
 * RGB -> "RGB", RGBA -> "RGBA" (16-bit samples keep the high byte), palette ->
 * "P". tRNS, gAMA, bKGD and the other ancillary chunks do not change pixels
 * Pillow returns from .convert('RGB'), so they are skipped (after the CRC). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_io.h"
#include "sx_core.h"

#define PNG_MAX_SIDE 16384
#define PNG_MAX_PIXELS (256ll * 1024 * 1024)

/* ======================================================================
 * CRC-32 (PNG chunks) and Adler-32 (zlib)
 * ====================================================================== */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 255];
}

uint32_t sx_crc32(uint32_t crc, const uint8_t *p, size_t n) {
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    while (n >= 8) { /* slicing-by-8 */
        uint32_t a = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                            (uint32_t)p[3] << 24);
        crc = crc_table[7][a & 255] ^ crc_table[6][(a >> 8) & 255] ^ crc_table[5][(a >> 16) & 255] ^
              crc_table[4][a >> 24] ^ crc_table[3][p[4]] ^ crc_table[2][p[5]] ^
              crc_table[1][p[6]] ^ crc_table[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--) crc = crc_table[0][(crc ^ *p++) & 255] ^ (crc >> 8);
    return ~crc;
}

uint32_t sx_adler32(uint32_t adler, const uint8_t *p, size_t n) {
    uint32_t a = adler & 0xffff, b = adler >> 16;
    while (n) {
        size_t k = n < 5552 ? n : 5552; /* largest block without 32-bit overflow */
        n -= k;
        while (k--) {
            a += *p++;
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    return b << 16 | a;
}

/* ======================================================================
 * inflate
 * ====================================================================== */
typedef struct {
    const uint8_t *in;
    size_t n, pos;    /* real input bytes moved into the bit buffer so far */
    uint64_t bits;
    int cnt;          /* valid bits in `bits` */
    int pad;          /* of which the top `pad` bits are zero padding past the end */
} bitrd;

static inline void br_refill(bitrd *b) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (b->n - b->pos >= 8) { /* whole 64-bit load; only the bytes that fit are counted */
        uint64_t v;
        memcpy(&v, b->in + b->pos, 8);
        b->bits |= v << b->cnt;
        b->pos += (size_t)((63 - b->cnt) >> 3);
        b->cnt |= 56;
        return;
    }
#endif
    while (b->cnt <= 56) {
        if (b->pos < b->n) {
            b->bits |= (uint64_t)b->in[b->pos++] << b->cnt;
        } else {
            b->pad += 8; /* zeros; consuming them means the input was truncated */
        }
        b->cnt += 8;
    }
}
static inline uint32_t br_get(bitrd *b, int k) { /* k <= 32, caller refilled */
    uint32_t v = (uint32_t)(b->bits & ((1ull << k) - 1));
    b->bits >>= k;
    b->cnt -= k;
    return v;
}
static inline int br_overrun(const bitrd *b) { return b->cnt < b->pad; }

#define FAST_BITS 10
typedef struct {
    uint16_t fast[1 << FAST_BITS]; /* (sym << 4) | len, 0 = slow path */
    uint16_t count[16];            /* codes per length */
    uint16_t sym[320];             /* symbols sorted by code */
} huff;

/* Builds a canonical Huffman decoder from code lengths; 0 = ok. Incomplete
 * codes are allowed (an unused code is reported when met); over-subscribed
 * ones are not. */
static int huff_build(huff *h, const uint8_t *len, int n) {
    uint16_t offs[16];
    memset(h->count, 0, sizeof h->count);
    memset(h->fast, 0, sizeof h->fast);
    for (int i = 0; i < n; i++) h->count[len[i]]++;
    h->count[0] = 0;
    int left = 1;
    for (int l = 1; l < 16; l++) {
        left <<= 1;
        left -= h->count[l];
        if (left < 0) return -1;
    }
    offs[1] = 0;
    for (int l = 1; l < 15; l++) offs[l + 1] = offs[l] + h->count[l];
    for (int i = 0; i < n; i++)
        if (len[i]) h->sym[offs[len[i]]++] = (uint16_t)i;
    /* fast table: walk codes in canonical order */
    int code = 0, k = 0;
    for (int l = 1; l <= FAST_BITS; l++) {
        for (int j = 0; j < h->count[l]; j++, k++, code++) {
            int rev = 0;
            for (int b = 0; b < l; b++) rev |= ((code >> b) & 1) << (l - 1 - b);
            for (int r = rev; r < (1 << FAST_BITS); r += 1 << l)
                h->fast[r] = (uint16_t)(h->sym[k] << 4 | l);
        }
        code <<= 1;
    }
    return 0;
}

/* Decodes one symbol; -1 on an unused code. Caller refilled (>= 15 bits). */
static inline int huff_decode(bitrd *b, const huff *h) {
    uint16_t e = h->fast[b->bits & ((1u << FAST_BITS) - 1)];
    if (e) {
        b->bits >>= e & 15;
        b->cnt -= e & 15;
        return e >> 4;
    }
    int code = 0, first = 0, index = 0;
    for (int l = 1; l < 16; l++) {
        code |= (int)br_get(b, 1);
        int c = h->count[l];
        if (code - c < first) return h->sym[index + (code - first)];
        index += c;
        first += c;
        first <<= 1;
        code <<= 1;
    }
    return -1;
}

static const uint16_t len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10,  11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                                       33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                                       1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
static const uint8_t clen_order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

int sx_zlib_decompress(const uint8_t *in, size_t n, uint8_t *out, size_t out_n, const char *name) {
    if (!name) name = "zlib stream";
    if (!in || (!out && out_n)) return sx_err("%s: zlib: NULL buffer", name);
    if (n < 6) return sx_err("%s: zlib stream too short (%zu bytes)", name, n);
    int cmf = in[0], flg = in[1];
    if ((cmf & 15) != 8 || (cmf >> 4) > 7)
        return sx_err("%s: zlib header: compression method %d / window %d is not deflate", name,
                      cmf & 15, cmf >> 4);
    if ((cmf * 256 + flg) % 31) return sx_err("%s: zlib header check bits are wrong", name);
    if (flg & 32) return sx_err("%s: zlib stream needs a preset dictionary (not allowed in PNG)", name);

    huff *lit = sx_malloc(2 * sizeof(huff), "inflate tables");
    if (!lit) return -1;
    huff *dst = lit + 1;
    bitrd b = {in, n, 2, 0, 0, 0};
    size_t op = 0;
    int final = 0;
    const char *why = NULL;
    while (!final) {
        br_refill(&b);
        final = (int)br_get(&b, 1);
        int type = (int)br_get(&b, 2);
        if (type == 0) { /* stored */
            int drop = b.cnt & 7;
            br_get(&b, drop);
            if (br_overrun(&b)) { why = "truncated"; break; }
            b.pos -= (size_t)(b.cnt - b.pad) / 8; /* give unread whole bytes back */
            b.bits = 0;
            b.cnt = b.pad = 0;
            if (b.n - b.pos < 4) { why = "truncated"; break; }
            unsigned len = in[b.pos] | in[b.pos + 1] << 8, nlen = in[b.pos + 2] | in[b.pos + 3] << 8;
            b.pos += 4;
            if ((len ^ 0xffff) != nlen) { why = "stored block length check failed"; break; }
            if (b.n - b.pos < len) { why = "truncated"; break; }
            if (out_n - op < len) { why = "too long"; break; }
            memcpy(out + op, in + b.pos, len);
            op += len;
            b.pos += len;
            continue;
        }
        if (type == 3) { why = "invalid block type 3"; break; }
        if (type == 1) {
            uint8_t l[320];
            int i = 0;
            for (; i < 144; i++) l[i] = 8;
            for (; i < 256; i++) l[i] = 9;
            for (; i < 280; i++) l[i] = 7;
            for (; i < 288; i++) l[i] = 8;
            huff_build(lit, l, 288);
            for (i = 0; i < 30; i++) l[i] = 5;
            huff_build(dst, l, 30);
        } else {
            br_refill(&b);
            int hlit = (int)br_get(&b, 5) + 257, hdist = (int)br_get(&b, 5) + 1;
            int hclen = (int)br_get(&b, 4) + 4;
            if (hlit > 286 || hdist > 30) { why = "too many length or distance codes"; break; }
            uint8_t cl[19] = {0}, l[320];
            for (int i = 0; i < hclen; i++) {
                br_refill(&b);
                cl[clen_order[i]] = (uint8_t)br_get(&b, 3);
            }
            if (huff_build(lit, cl, 19)) { why = "bad code-length code"; break; }
            int i = 0;
            while (i < hlit + hdist) {
                br_refill(&b);
                int s = huff_decode(&b, lit);
                if (s < 0) { why = "bad code-length symbol"; break; }
                if (s < 16) {
                    l[i++] = (uint8_t)s;
                    continue;
                }
                int rep, val = 0;
                if (s == 16) {
                    if (i == 0) { why = "repeat with no previous length"; break; }
                    val = l[i - 1];
                    rep = 3 + (int)br_get(&b, 2);
                } else if (s == 17) {
                    rep = 3 + (int)br_get(&b, 3);
                } else {
                    rep = 11 + (int)br_get(&b, 7);
                }
                if (i + rep > hlit + hdist) { why = "code lengths overflow"; break; }
                while (rep--) l[i++] = (uint8_t)val;
            }
            if (why) break;
            if (br_overrun(&b)) { why = "truncated"; break; }
            if (l[256] == 0) { why = "no end-of-block code"; break; }
            if (huff_build(lit, l, hlit) || huff_build(dst, l + hlit, hdist)) {
                why = "over-subscribed Huffman code";
                break;
            }
        }
        /* decode the block's symbols */
        for (;;) {
            if (b.cnt < 48) br_refill(&b); /* 48 bits cover a whole length/distance pair */
            int s = huff_decode(&b, lit);
            if (s < 256) {
                if (s < 0) { why = "invalid literal/length code"; break; }
                if (op >= out_n) { why = "too long"; break; }
                out[op++] = (uint8_t)s;
                continue;
            }
            if (s == 256) break;
            s -= 257;
            if (s >= 29) { why = "invalid length symbol"; break; }
            size_t len = len_base[s] + br_get(&b, len_extra[s]);
            int d = huff_decode(&b, dst);
            if (d < 0 || d >= 30) { why = "invalid distance code"; break; }
            size_t dist = dist_base[d] + br_get(&b, dist_extra[d]);
            if (br_overrun(&b)) { why = "truncated"; break; }
            if (dist > op) { why = "distance too far back"; break; }
            if (out_n - op < len) { why = "too long"; break; }
            uint8_t *o = out + op;
            const uint8_t *src = o - dist;
            if (dist >= 8 && len <= 64) { /* common fast case, non-overlapping 8-byte steps */
                size_t k = 0;
                for (; k + 8 <= len; k += 8) memcpy(o + k, src + k, 8);
                for (; k < len; k++) o[k] = src[k];
            } else {
                for (size_t k = 0; k < len; k++) o[k] = src[k];
            }
            op += len;
        }
        if (why) break;
        if (br_overrun(&b)) { why = "truncated"; break; }
    }
    free(lit);
    if (why) {
        if (!strcmp(why, "truncated"))
            return sx_err("%s: compressed image data is truncated (zlib stream ends early, %zu of %zu "
                          "bytes decoded)", name, op, out_n);
        if (!strcmp(why, "too long"))
            return sx_err("%s: zlib stream inflates to more than the %zu bytes the image needs", name,
                          out_n);
        return sx_err("%s: corrupt zlib stream: %s (at output byte %zu)", name, why, op);
    }
    if (op != out_n)
        return sx_err("%s: image data too short: zlib stream ended after %zu of %zu bytes", name, op,
                      out_n);
    /* Adler-32 trailer after the byte-aligned end */
    size_t p = b.pos - (size_t)(b.cnt - b.pad) / 8;
    if (b.cnt < b.pad || n - p < 4)
        return sx_err("%s: zlib stream is missing its Adler-32 checksum (truncated)", name);
    uint32_t want = (uint32_t)in[p] << 24 | (uint32_t)in[p + 1] << 16 | (uint32_t)in[p + 2] << 8 | in[p + 3];
    uint32_t got = sx_adler32(1, out, out_n);
    if (want != got)
        return sx_err("%s: zlib Adler-32 mismatch (stored %08x, computed %08x): data corrupt", name,
                      want, got);
    return 0;
}

/* ======================================================================
 * deflate
 * ====================================================================== */
typedef struct {
    uint8_t *buf;
    size_t n, cap;
    uint64_t bits;
    int cnt;
    int oom;
} bitwr;

static void bw_put(bitwr *w, uint32_t v, int k) {
    w->bits |= (uint64_t)v << w->cnt;
    w->cnt += k;
    if (w->cnt >= 32) {
        if (w->cap - w->n < 8) {
            size_t nc = w->cap * 2 + 1024;
            uint8_t *nb = realloc(w->buf, nc);
            if (!nb) {
                w->oom = 1;
                w->n = 0;
            } else {
                w->buf = nb;
                w->cap = nc;
            }
        }
        while (w->cnt >= 8) {
            if (!w->oom) w->buf[w->n++] = (uint8_t)w->bits;
            w->bits >>= 8;
            w->cnt -= 8;
        }
    }
}
static void bw_flush_byte(bitwr *w) {
    if (w->cnt & 7) bw_put(w, 0, 8 - (w->cnt & 7));
    bw_put(w, 0, 32); /* forces out whole bytes */
    w->n -= 4 * !w->oom;
}
static void bw_bytes(bitwr *w, const uint8_t *p, size_t k) { /* byte aligned */
    for (size_t i = 0; i < k; i++) bw_put(w, p[i], 8);
}

static inline uint32_t rev_bits(uint32_t c, int l) {
    uint32_t r = 0;
    for (int i = 0; i < l; i++) r |= ((c >> i) & 1) << (l - 1 - i);
    return r;
}

/* Huffman code lengths (<= maxlen) for frequencies; at least one symbol gets
 * a code; codes reversed for LSB-first output. */
static void huff_lengths(const uint32_t *freq, int n, int maxlen, uint8_t *len, uint16_t *code) {
    uint32_t f[320];
    memcpy(f, freq, sizeof(uint32_t) * (size_t)n);
    for (;;) {
        /* simple O(n^2)-free Huffman via two sorted queues */
        int idx[320], m = 0;
        for (int i = 0; i < n; i++)
            if (f[i]) idx[m++] = i;
        memset(len, 0, (size_t)(unsigned)n);
        if (m == 0) {
            len[0] = 1;
            if (n > 1) len[1] = 1;
            break;
        }
        if (m == 1) {
            len[idx[0]] = 1;
            len[idx[0] == 0 ? 1 : 0] = 1; /* a complete two-code set keeps decoders happy */
            break;
        }
        /* sort leaves by frequency (insertion sort is fine for <= 288) */
        for (int i = 1; i < m; i++) {
            int v = idx[i], j = i - 1;
            while (j >= 0 && (f[idx[j]] > f[v] || (f[idx[j]] == f[v] && idx[j] > v))) {
                idx[j + 1] = idx[j];
                j--;
            }
            idx[j + 1] = v;
        }
        uint64_t w[640];
        int parent[640];
        for (int i = 0; i < m; i++) w[i] = f[idx[i]];
        int qa = 0, qb = m, nb = m; /* leaves [0,m), internal nodes [m, nb) */
        while ((m - qa) + (nb - qb) > 1) {
            int pick[2];
            for (int t = 0; t < 2; t++) {
                if (qa < m && (qb >= nb || w[qa] <= w[qb]))
                    pick[t] = qa++;
                else
                    pick[t] = qb++;
            }
            w[nb] = w[pick[0]] + w[pick[1]];
            parent[pick[0]] = parent[pick[1]] = nb;
            nb++;
        }
        int depth[640];
        depth[nb - 1] = 0;
        for (int i = nb - 2; i >= 0; i--) depth[i] = depth[parent[i]] + 1;
        int over = 0;
        for (int i = 0; i < m; i++) {
            len[idx[i]] = (uint8_t)depth[i];
            if (depth[i] > maxlen) over = 1;
        }
        if (!over) break;
        for (int i = 0; i < n; i++) /* flatten the distribution and retry */
            if (f[i]) f[i] = (f[i] >> 1) | 1;
    }
    /* canonical codes */
    uint16_t cnt[16] = {0}, next[16];
    for (int i = 0; i < n; i++) cnt[len[i]]++;
    cnt[0] = 0;
    int c = 0;
    for (int l = 1; l < 16; l++) {
        c = (c + cnt[l - 1]) << 1;
        next[l] = (uint16_t)c;
    }
    for (int i = 0; i < n; i++)
        if (len[i]) code[i] = (uint16_t)rev_bits(next[len[i]]++, len[i]);
}

static int len_sym(int len) { /* 3..258 -> 0..28 */
    int s = 0;
    while (s < 28 && len_base[s + 1] <= len) s++;
    return s;
}
static int dist_sym(int d) {
    int s = 0;
    while (s < 29 && dist_base[s + 1] <= d) s++;
    return s;
}

typedef struct {
    uint16_t litlen; /* literal byte, or 256+length-3 for a match (length 3..258) */
    uint16_t dist;   /* 0 for literals */
} lzsym;

static uint8_t lsym_tab[256];   /* length-3 -> length symbol */
static uint8_t dsym_lo[512];    /* dist-1 < 512 */
static uint8_t dsym_hi[256];    /* (dist-1) >> 7 for larger (up to 32768) */
static pthread_once_t tabs_once = PTHREAD_ONCE_INIT;
static void deflate_tabs(void) {
    for (int l = 3; l <= 258; l++) lsym_tab[l - 3] = (uint8_t)len_sym(l);
    for (int d = 1; d <= 512; d++) dsym_lo[d - 1] = (uint8_t)dist_sym(d);
    for (int i = 0; i < 256; i++) dsym_hi[i] = (uint8_t)dist_sym((i << 7) + 1);
}
static inline int dsym_of(int d) { return d <= 512 ? dsym_lo[d - 1] : dsym_hi[(d - 1) >> 7]; }

/* Emits one block (best of stored / fixed / dynamic) for syms, whose raw
 * bytes are raw[0..rawn). */
static void emit_block(bitwr *w, const lzsym *sy, size_t ns, const uint8_t *raw, size_t rawn, int last) {
    uint32_t lf[288] = {0}, df[30] = {0};
    if (!sy) ns = 0;
    for (size_t i = 0; i < ns; i++) {
        if (sy[i].dist) {
            lf[257 + lsym_tab[sy[i].litlen - 256]]++;
            df[dsym_of(sy[i].dist)]++;
        } else {
            lf[sy[i].litlen]++;
        }
    }
    lf[256] = 1;
    uint8_t ll[288], dl[30];
    uint16_t lc[288], dc[30];
    huff_lengths(lf, 286, 15, ll, lc);
    huff_lengths(df, 30, 15, dl, dc);
    int hlit = 286, hdist = 30;
    while (hlit > 257 && ll[hlit - 1] == 0) hlit--;
    while (hdist > 1 && dl[hdist - 1] == 0) hdist--;
    /* run-length code the lengths */
    uint8_t all[316];
    memcpy(all, ll, (size_t)hlit);
    memcpy(all + hlit, dl, (size_t)hdist);
    int tot = hlit + hdist;
    uint8_t rl[316], rx[316];
    int nr = 0;
    for (int i = 0; i < tot;) {
        int v = all[i], r = 1;
        while (i + r < tot && all[i + r] == v) r++;
        int used = 0;
        if (v == 0 && r >= 3) {
            used = r > 138 ? 138 : r;
            if (used >= 11) { rl[nr] = 18; rx[nr++] = (uint8_t)(used - 11); }
            else { rl[nr] = 17; rx[nr++] = (uint8_t)(used - 3); }
        } else if (v != 0 && r >= 4) {
            rl[nr] = (uint8_t)v; rx[nr++] = 0;
            used = 1 + ((r - 1) > 6 ? 6 : (r - 1));
            rl[nr] = 16; rx[nr++] = (uint8_t)(used - 1 - 3);
        } else {
            rl[nr] = (uint8_t)v; rx[nr++] = 0;
            used = 1;
        }
        i += used;
    }
    uint32_t cf[19] = {0};
    for (int i = 0; i < nr; i++) cf[rl[i]]++;
    uint8_t cl[19];
    uint16_t cc[19];
    huff_lengths(cf, 19, 7, cl, cc);
    int hclen = 19;
    while (hclen > 4 && cl[clen_order[hclen - 1]] == 0) hclen--;

    /* sizes in bits */
    static const uint8_t lextra_by_sym[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                              2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    uint64_t dyn = 17 + 3 * (uint64_t)hclen, fix = 3;
    for (int i = 0; i < nr; i++) dyn += cl[rl[i]] + (rl[i] == 16 ? 2 : rl[i] == 17 ? 3 : rl[i] == 18 ? 7 : 0);
    for (int s = 0; s < 286; s++) {
        uint64_t extra = s >= 257 ? lextra_by_sym[s - 257] : 0;
        dyn += (uint64_t)lf[s] * (ll[s] + extra);
        fix += (uint64_t)lf[s] * ((s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8) + extra);
    }
    for (int s = 0; s < 30; s++) {
        dyn += (uint64_t)df[s] * (dl[s] + dist_extra[s]);
        fix += (uint64_t)df[s] * (5 + dist_extra[s]);
    }
    uint64_t stored = ((uint64_t)rawn + 5 * ((rawn + 65534) / 65535 + (rawn == 0))) * 8 + 10;

    if (!sy || (stored <= dyn && stored <= fix)) { /* sy NULL: stored requested (level 0) */
        size_t off = 0;
        do {
            size_t k = rawn - off > 65535 ? 65535 : rawn - off;
            bw_put(w, (last && off + k == rawn) ? 1 : 0, 1);
            bw_put(w, 0, 2);
            bw_flush_byte(w);
            uint8_t hdr[4] = {(uint8_t)k, (uint8_t)(k >> 8), (uint8_t)~k, (uint8_t)(~k >> 8)};
            bw_bytes(w, hdr, 4);
            bw_bytes(w, raw + off, k);
            off += k;
        } while (off < rawn);
        return;
    }
    uint8_t fl[288], fd[30];
    uint16_t flc[288], fdc[30];
    const uint8_t *L = ll, *D = dl;
    const uint16_t *LC = lc, *DC = dc;
    bw_put(w, (uint32_t)last, 1);
    if (fix < dyn) {
        for (int i = 0; i < 288; i++) fl[i] = (uint8_t)(i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8);
        for (int i = 0; i < 30; i++) fd[i] = 5;
        /* canonical codes for the fixed lengths */
        uint16_t cnt[16] = {0}, next[16];
        for (int i = 0; i < 288; i++) cnt[fl[i]]++;
        int c = 0;
        cnt[0] = 0;
        for (int l = 1; l < 16; l++) { c = (c + cnt[l - 1]) << 1; next[l] = (uint16_t)c; }
        for (int i = 0; i < 288; i++) flc[i] = (uint16_t)rev_bits(next[fl[i]]++, fl[i]);
        for (int i = 0; i < 30; i++) fdc[i] = (uint16_t)rev_bits((uint32_t)i, 5);
        L = fl; D = fd; LC = flc; DC = fdc;
        bw_put(w, 1, 2);
    } else {
        bw_put(w, 2, 2);
        bw_put(w, (uint32_t)(hlit - 257), 5);
        bw_put(w, (uint32_t)(hdist - 1), 5);
        bw_put(w, (uint32_t)(hclen - 4), 4);
        for (int i = 0; i < hclen; i++) bw_put(w, cl[clen_order[i]], 3);
        for (int i = 0; i < nr; i++) {
            bw_put(w, cc[rl[i]], cl[rl[i]]);
            if (rl[i] == 16) bw_put(w, rx[i], 2);
            else if (rl[i] == 17) bw_put(w, rx[i], 3);
            else if (rl[i] == 18) bw_put(w, rx[i], 7);
        }
    }
    for (size_t i = 0; i < ns; i++) {
        if (!sy[i].dist) {
            bw_put(w, LC[sy[i].litlen], L[sy[i].litlen]);
            continue;
        }
        int len = sy[i].litlen - 256 + 3, s = lsym_tab[len - 3];
        bw_put(w, LC[257 + s], L[257 + s]);
        if (len_extra[s]) bw_put(w, (uint32_t)(len - len_base[s]), len_extra[s]);
        int d = sy[i].dist, ds = dsym_of(d);
        bw_put(w, DC[ds], D[ds]);
        if (dist_extra[ds]) bw_put(w, (uint32_t)(d - dist_base[ds]), dist_extra[ds]);
    }
    bw_put(w, LC[256], L[256]);
}

#define WSIZE 32768
#define HBITS 15
#define BLOCK_SYMS 32768

int sx_zlib_compress(const uint8_t *in, size_t n, int level, uint8_t **out, size_t *out_n) {
    if (!out || !out_n || (!in && n)) return sx_err("sx_zlib_compress: NULL argument");
    if (level < 0 || level > 9) level = 6;
    pthread_once(&tabs_once, deflate_tabs);
    /* zlib-like parameters: max chain, lazy threshold, nice length */
    static const int chain_by_level[10] = {0, 4, 8, 16, 32, 64, 128, 256, 1024, 4096};
    static const int nice_by_level[10] = {0, 8, 16, 32, 64, 128, 128, 128, 258, 258};
    int max_chain = chain_by_level[level], nice = nice_by_level[level];
    bitwr w = {0};
    w.cap = n / 2 + 1024;
    w.buf = malloc(w.cap);
    int32_t *head = malloc(sizeof(int32_t) << HBITS);
    int32_t *prev = malloc(sizeof(int32_t) * WSIZE);
    lzsym *sy = malloc(sizeof(lzsym) * (BLOCK_SYMS + 1024)); /* lazy literals may overshoot */
    if (!w.buf || !head || !prev || !sy) {
        free(w.buf); free(head); free(prev); free(sy);
        return sx_err("out of memory in deflate (%zu bytes input)", n);
    }
    bw_put(&w, 0x78, 8);
    bw_put(&w, level >= 7 ? 0xDA : level >= 2 ? 0x9C : 0x01, 8);
    if (level == 0) {
        emit_block(&w, NULL, 0, in, n, 1); /* no symbols: stored always wins */
    } else {
        for (int i = 0; i < (1 << HBITS); i++) head[i] = -1;
        size_t ns = 0, blk_start = 0, i = 0;
#define HASH(p) ((((uint32_t)(p)[0] << 10) ^ ((uint32_t)(p)[1] << 5) ^ (p)[2]) & ((1u << HBITS) - 1))
        /* returns best match length at position p (>= 3 or 0) and its distance */
        int prev_len = 0, prev_dist = 0, have_prev = 0;
        while (i < n) {
            int best = 0, bdist = 0;
            if (i + 3 <= n) {
                uint32_t h = HASH(in + i);
                int32_t cand = head[h];
                prev[i & (WSIZE - 1)] = cand;
                head[h] = (int32_t)i;
                int chain = max_chain;
                if (have_prev && prev_len >= 32) chain >>= 2;
                size_t maxl = n - i < 258 ? n - i : 258;
                while (cand >= 0 && i - (size_t)cand <= WSIZE - 262 && chain--) {
                    const uint8_t *a = in + cand, *b = in + i;
                    if (a[best] == b[best] && a[0] == b[0] && a[1] == b[1]) {
                        size_t l = 2;
                        while (l < maxl && a[l] == b[l]) l++;
                        if ((int)l > best) {
                            best = (int)l;
                            bdist = (int)(i - (size_t)cand);
                            if (best >= nice || (size_t)best == maxl) break;
                        }
                    }
                    int32_t nx = prev[cand & (WSIZE - 1)];
                    if (nx >= cand) break;
                    cand = nx;
                }
                if (best == 3 && bdist > 4096) best = 0; /* far short matches cost more than literals */
                if (best < 3) best = 0;
            }
            if (have_prev) {
                if (best > prev_len) {
                    /* emit previous position as a literal, keep the new match pending */
                    sy[ns].litlen = in[i - 1];
                    sy[ns++].dist = 0;
                    prev_len = best;
                    prev_dist = bdist;
                    i++;
                } else {
                    /* emit the previous match starting at i-1 */
                    sy[ns].litlen = (uint16_t)(256 + prev_len - 3);
                    sy[ns++].dist = (uint16_t)prev_dist;
                    size_t end = i - 1 + (size_t)prev_len;
                    for (size_t j = i + 1; j < end; j++) { /* insert skipped positions */
                        if (j + 3 <= n) {
                            uint32_t h = HASH(in + j);
                            prev[j & (WSIZE - 1)] = head[h];
                            head[h] = (int32_t)j;
                        }
                    }
                    i = end;
                    have_prev = 0;
                }
            } else if (best) {
                have_prev = 1;
                prev_len = best;
                prev_dist = bdist;
                i++;
            } else {
                sy[ns].litlen = in[i];
                sy[ns++].dist = 0;
                i++;
            }
            if (ns >= BLOCK_SYMS && !have_prev) {
                emit_block(&w, sy, ns, in + blk_start, i - blk_start, 0);
                ns = 0;
                blk_start = i;
            }
        }
        if (have_prev) {
            sy[ns].litlen = (uint16_t)(256 + prev_len - 3);
            sy[ns++].dist = (uint16_t)prev_dist;
            i = i - 1 + (size_t)prev_len;
        }
        emit_block(&w, sy, ns, in + blk_start, n - blk_start, 1);
#undef HASH
    }
    bw_flush_byte(&w);
    uint32_t a = sx_adler32(1, in, n);
    uint8_t tr[4] = {(uint8_t)(a >> 24), (uint8_t)(a >> 16), (uint8_t)(a >> 8), (uint8_t)a};
    bw_bytes(&w, tr, 4);
    bw_flush_byte(&w);
    free(head);
    free(prev);
    free(sy);
    if (w.oom) {
        free(w.buf);
        return sx_err("out of memory in deflate output");
    }
    *out = w.buf;
    *out_n = w.n;
    return 0;
}

/* ======================================================================
 * PNG decoder
 * ====================================================================== */
static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint8_t paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return (uint8_t)a;
    if (pb <= pc) return (uint8_t)b;
    return (uint8_t)c;
}

/* Undoes one row's filter in place; prior may be NULL (first row). */
static int unfilter_row(int ft, uint8_t *row, const uint8_t *prior, size_t rb, int bpp) {
    size_t i;
    switch (ft) {
    case 0:
        return 0;
    case 1:
        for (i = (size_t)bpp; i < rb; i++) row[i] = (uint8_t)(row[i] + row[i - (size_t)bpp]);
        return 0;
    case 2:
        if (prior)
            for (i = 0; i < rb; i++) row[i] = (uint8_t)(row[i] + prior[i]);
        return 0;
    case 3:
        for (i = 0; i < rb; i++) {
            int a = i >= (size_t)bpp ? row[i - (size_t)bpp] : 0, b = prior ? prior[i] : 0;
            row[i] = (uint8_t)(row[i] + ((a + b) >> 1));
        }
        return 0;
    case 4:
        for (i = 0; i < rb; i++) {
            int a = i >= (size_t)bpp ? row[i - (size_t)bpp] : 0, b = prior ? prior[i] : 0;
            int c = (prior && i >= (size_t)bpp) ? prior[i - (size_t)bpp] : 0;
            row[i] = (uint8_t)(row[i] + paeth(a, b, c));
        }
        return 0;
    }
    return -1;
}

/* Unpacks one unfiltered row of `w` pixels into the Pillow-mode output row. */
static void unpack_row(const uint8_t *src, int w, int depth, int ctype, uint8_t *dst) {
    int x;
    if (depth < 8) { /* grey or palette, 1/2/4 bit */
        int per = 8 / depth, mask = (1 << depth) - 1;
        for (x = 0; x < w; x++) {
            int v = (src[x / per] >> (8 - depth * (x % per + 1))) & mask;
            if (ctype == 3)
                dst[x] = (uint8_t)v;
            else
                dst[x] = (uint8_t)(depth == 1 ? (v ? 255 : 0) : depth == 2 ? v * 0x55 : v * 0x11);
        }
        return;
    }
    if (depth == 8) {
        static const int ch[7] = {1, 0, 3, 1, 2, 0, 4};
        memcpy(dst, src, (size_t)w * (size_t)ch[ctype]);
        return;
    }
    /* 16-bit */
    switch (ctype) {
    case 0: /* -> I, native uint16 */
        for (x = 0; x < w; x++) {
            uint16_t v = (uint16_t)(src[2 * x] << 8 | src[2 * x + 1]);
            memcpy(dst + 2 * x, &v, 2);
        }
        break;
    case 2:
        for (x = 0; x < 3 * w; x++) dst[x] = src[2 * x];
        break;
    case 4: /* LA;16B -> RGBA */
        for (x = 0; x < w; x++) {
            dst[4 * x] = dst[4 * x + 1] = dst[4 * x + 2] = src[4 * x];
            dst[4 * x + 3] = src[4 * x + 2];
        }
        break;
    case 6:
        for (x = 0; x < 4 * w; x++) dst[x] = src[2 * x];
        break;
    }
}

void sx_native_free(sx_native_image *im) {
    if (!im) return;
    free(im->data);
    im->data = NULL;
    im->w = im->h = 0;
}

int sx_png_decode(const uint8_t *buf, size_t n, const char *name, sx_native_image *out) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (!name) name = "<png>";
    if (!out) return sx_err("%s: sx_png_decode: NULL output", name);
    memset(out, 0, sizeof *out);
    if (!buf) return sx_err("%s: NULL buffer", name);
    if (n < 8 || memcmp(buf, sig, 8) != 0) return sx_err("%s: not a PNG file (bad signature)", name);
    size_t p = 8;
    int have_ihdr = 0, have_plte = 0, have_iend = 0, idat_done = 0, idat_seen = 0;
    uint32_t w = 0, h = 0;
    int depth = 0, ctype = 0, interlace = 0, npal = 0;
    uint8_t pal[768];
    uint8_t *z = NULL;
    size_t zn = 0, zcap = 0;
    int rc = -1;
    while (!have_iend) {
        if (n - p < 12) {
            sx_err("%s: PNG file is truncated (%s)", name,
                   !have_ihdr ? "no IHDR" : !idat_seen ? "before any IDAT" : "no IEND chunk");
            if (have_ihdr && idat_seen) { /* Pillow stops at the end of image data; so do we */
                sx_err_clear();
                break;
            }
            goto fail;
        }
        uint32_t len = be32(buf + p);
        const uint8_t *type = buf + p + 4;
        char tname[5];
        for (int i = 0; i < 4; i++) tname[i] = (type[i] >= 32 && type[i] < 127) ? (char)type[i] : '?';
        tname[4] = 0;
        for (int i = 0; i < 4; i++) {
            int c = type[i];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
                sx_err("%s: invalid PNG chunk type '%s' at offset %zu (file corrupt)", name, tname, p);
                goto fail;
            }
        }
        if (len > 0x7fffffffu || (size_t)len > n - p - 12) {
            if (!memcmp(type, "IDAT", 4) && have_ihdr) {
                sx_err("%s: PNG file is truncated inside an IDAT chunk (chunk at offset %zu claims %u "
                       "bytes, %zu left): image data incomplete", name, p, len, n - p - 8);
            } else {
                sx_err("%s: PNG chunk '%s' at offset %zu claims %u bytes but only %zu remain (file "
                       "truncated or corrupt)", name, tname, p, len, n - p - 8);
            }
            goto fail;
        }
        const uint8_t *d = buf + p + 8;
        uint32_t crc = be32(d + len), calc = sx_crc32(0, buf + p + 4, (size_t)len + 4);
        if (crc != calc) {
            sx_err("%s: CRC mismatch in PNG chunk '%s' at offset %zu (stored %08x, computed %08x): file "
                   "corrupt", name, tname, p, crc, calc);
            goto fail;
        }
        if (!have_ihdr && memcmp(type, "IHDR", 4)) {
            sx_err("%s: first PNG chunk is '%s', expected IHDR", name, tname);
            goto fail;
        }
        if (!memcmp(type, "IHDR", 4)) {
            if (have_ihdr) { sx_err("%s: duplicate IHDR chunk", name); goto fail; }
            if (len != 13) { sx_err("%s: IHDR chunk has length %u, expected 13", name, len); goto fail; }
            w = be32(d);
            h = be32(d + 4);
            depth = d[8];
            ctype = d[9];
            interlace = d[12];
            if (w == 0 || h == 0 || w > 0x7fffffffu || h > 0x7fffffffu) {
                sx_err("%s: invalid PNG image size %ux%u", name, w, h);
                goto fail;
            }
            int ok = 0;
            switch (ctype) {
            case 0: ok = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16; break;
            case 3: ok = depth == 1 || depth == 2 || depth == 4 || depth == 8; break;
            case 2: case 4: case 6: ok = depth == 8 || depth == 16; break;
            default:
                sx_err("%s: invalid PNG colour type %d in IHDR", name, ctype);
                goto fail;
            }
            if (!ok) {
                sx_err("%s: invalid PNG bit depth %d for colour type %d", name, depth, ctype);
                goto fail;
            }
            if (d[10] != 0 || d[11] != 0 || interlace > 1) {
                sx_err("%s: unsupported PNG compression/filter/interlace method %d/%d/%d", name, d[10],
                       d[11], interlace);
                goto fail;
            }
            if (w > PNG_MAX_SIDE || h > PNG_MAX_SIDE || (long long)w * h > PNG_MAX_PIXELS) {
                sx_err("%s: image %ux%u exceeds the decoder limits (%d px a side, %lld MP): refusing "
                       "(possible decompression bomb)", name, w, h, PNG_MAX_SIDE, PNG_MAX_PIXELS >> 20);
                goto fail;
            }
            have_ihdr = 1;
        } else if (!memcmp(type, "PLTE", 4)) {
            if (idat_seen) { sx_err("%s: PLTE chunk after IDAT", name); goto fail; }
            if (len % 3 || len == 0 || len > 768) {
                sx_err("%s: PLTE chunk has invalid length %u", name, len);
                goto fail;
            }
            npal = (int)len / 3;
            memcpy(pal, d, len);
            have_plte = 1;
        } else if (!memcmp(type, "IDAT", 4)) {
            if (idat_done) { sx_err("%s: IDAT chunks are not consecutive", name); goto fail; }
            idat_seen = 1;
            if (zn + len > zcap) {
                size_t nc = zcap * 2 + len + 4096;
                uint8_t *nz = realloc(z, nc);
                if (!nz) { sx_err("%s: out of memory collecting IDAT data", name); goto fail; }
                z = nz;
                zcap = nc;
            }
            if (len) memcpy(z + zn, d, len); /* empty IDAT chunks are legal (z may still be NULL) */
            zn += len;
        } else if (!memcmp(type, "IEND", 4)) {
            have_iend = 1;
        } else {
            if (idat_seen) idat_done = 1;
            if (!(type[0] & 32)) {
                sx_err("%s: unknown critical PNG chunk '%s'", name, tname);
                goto fail;
            }
            /* ancillary: skipped */
        }
        if (memcmp(type, "IDAT", 4) && idat_seen) idat_done = 1;
        p += 12 + (size_t)len;
    }
    if (!idat_seen) { sx_err("%s: PNG file has no IDAT chunk (no image data)", name); goto fail; }
    if (ctype == 3 && !have_plte) { sx_err("%s: palette PNG without a PLTE chunk", name); goto fail; }

    {
        static const int chans[7] = {1, 0, 3, 1, 2, 0, 4};
        int nch = chans[ctype];
        int bits_pp = nch * depth;                   /* bits per pixel in the file */
        int fbpp = bits_pp >= 8 ? bits_pp / 8 : 1;   /* filter byte distance */
        sx_mode mode;
        int obpp;
        switch (ctype) {
        case 0: mode = depth == 1 ? SX_MODE_1 : depth == 16 ? SX_MODE_I : SX_MODE_L; obpp = depth == 16 ? 2 : 1; break;
        case 2: mode = SX_MODE_RGB; obpp = 3; break;
        case 3: mode = SX_MODE_P; obpp = 1; break;
        case 4: mode = depth == 16 ? SX_MODE_RGBA : SX_MODE_LA; obpp = depth == 16 ? 4 : 2; break;
        default: mode = SX_MODE_RGBA; obpp = 4; break;
        }
        /* passes: x0, y0, dx, dy */
        static const int A7[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                     {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
        static const int A1[1][4] = {{0, 0, 1, 1}};
        const int(*pass)[4] = interlace ? A7 : A1;
        int npass = interlace ? 7 : 1;
        size_t total = 0;
        for (int k = 0; k < npass; k++) {
            size_t pw = (w - (uint32_t)pass[k][0] + (uint32_t)pass[k][2] - 1) / (uint32_t)pass[k][2];
            size_t ph = (h - (uint32_t)pass[k][1] + (uint32_t)pass[k][3] - 1) / (uint32_t)pass[k][3];
            if (w <= (uint32_t)pass[k][0]) pw = 0;
            if (h <= (uint32_t)pass[k][1]) ph = 0;
            if (pw && ph) total += ph * (1 + (pw * (size_t)bits_pp + 7) / 8);
        }
        /* deflate expands at most ~1032:1; refuse before allocating for data that cannot fill the image */
        if (total / 1032 > zn + 64) {
            sx_err("%s: %zu bytes of compressed data cannot hold the %ux%u image (%zu bytes): image data "
                   "truncated or missing", name, zn, w, h, total);
            goto fail;
        }
        uint8_t *raw = sx_malloc(total, "PNG image data");
        if (!raw) goto fail;
        if (sx_zlib_decompress(z, zn, raw, total, name) != 0) {
            free(raw);
            goto fail;
        }
        free(z);
        z = NULL;
        out->data = sx_malloc((size_t)w * h * (size_t)obpp, "PNG pixels");
        uint8_t *rowbuf = sx_malloc((size_t)w * (size_t)obpp + 16, "PNG row");
        if (!out->data || !rowbuf) {
            free(raw);
            free(rowbuf);
            goto fail;
        }
        size_t off = 0;
        for (int k = 0; k < npass && rc == -1; k++) {
            size_t pw = w > (uint32_t)pass[k][0] ? (w - (uint32_t)pass[k][0] + (uint32_t)pass[k][2] - 1) / (uint32_t)pass[k][2] : 0;
            size_t ph = h > (uint32_t)pass[k][1] ? (h - (uint32_t)pass[k][1] + (uint32_t)pass[k][3] - 1) / (uint32_t)pass[k][3] : 0;
            if (!pw || !ph) continue;
            size_t rb = (pw * (size_t)bits_pp + 7) / 8;
            const uint8_t *prior = NULL;
            for (size_t y = 0; y < ph; y++) {
                uint8_t *row = raw + off + 1;
                int ft = raw[off];
                if (unfilter_row(ft, row, prior, rb, fbpp) != 0) {
                    sx_err("%s: invalid PNG row filter type %d (row %zu%s): image data corrupt", name,
                           ft, y, interlace ? " of an Adam7 pass" : "");
                    free(raw);
                    free(rowbuf);
                    goto fail;
                }
                size_t oy = (size_t)pass[k][1] + y * (size_t)pass[k][3];
                if (!interlace) {
                    unpack_row(row, (int)w, depth, ctype, out->data + oy * w * (size_t)obpp);
                } else {
                    unpack_row(row, (int)pw, depth, ctype, rowbuf);
                    for (size_t x = 0; x < pw; x++) {
                        size_t ox = (size_t)pass[k][0] + x * (size_t)pass[k][2];
                        memcpy(out->data + (oy * w + ox) * (size_t)obpp, rowbuf + x * (size_t)obpp,
                               (size_t)obpp);
                    }
                }
                prior = row;
                off += 1 + rb;
            }
        }
        free(raw);
        free(rowbuf);
        out->w = (int)w;
        out->h = (int)h;
        out->mode = mode;
        out->bpp = obpp;
        /* Pillow's palette starts as a grey ramp; PLTE overwrites the first entries */
        for (int i = 0; i < 256; i++) out->palette[3 * i] = out->palette[3 * i + 1] = out->palette[3 * i + 2] = (uint8_t)i;
        if (mode == SX_MODE_P) memcpy(out->palette, pal, (size_t)npal * 3);
        rc = 0;
    }
    return 0;
fail:
    free(z);
    sx_native_free(out);
    return rc;
}

/* ======================================================================
 * PNG encoder
 * ====================================================================== */
static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int sx_png_encode_level(const sx_image *im, int level, uint8_t **out, size_t *n) {
    if (!im || !out || !n) return sx_err("sx_png_encode: NULL argument");
    if (!im->data || im->w <= 0 || im->h <= 0 || im->channels < 1 || im->channels > 4)
        return sx_err("sx_png_encode: invalid image %dx%dx%d", im->w, im->h, im->channels);
    if (im->w > PNG_MAX_SIDE || im->h > PNG_MAX_SIDE)
        return sx_err("sx_png_encode: image %dx%d exceeds %d px a side", im->w, im->h, PNG_MAX_SIDE);
    int bpp = im->channels;
    size_t rb = (size_t)im->w * (size_t)bpp;
    size_t rawn = (rb + 1) * (size_t)im->h;
    uint8_t *raw = sx_malloc(rawn, "PNG encoder rows");
    uint8_t *cand = sx_malloc(5 * rb, "PNG filter candidates");
    if (!raw || !cand) {
        free(raw);
        free(cand);
        return -1;
    }
    /* adaptive filtering: per row the filter with the least sum of |signed byte| */
    for (int y = 0; y < im->h; y++) {
        const uint8_t *row = im->data + (size_t)y * rb;
        const uint8_t *up = y ? row - rb : NULL;
        uint64_t best = UINT64_MAX;
        int bf = 0;
        for (int f = 0; f < 5; f++) {
            uint8_t *c = cand + (size_t)f * rb;
            uint64_t sum = 0;
            for (size_t i = 0; i < rb; i++) {
                int a = i >= (size_t)bpp ? row[i - (size_t)bpp] : 0, b = up ? up[i] : 0;
                int cc = (up && i >= (size_t)bpp) ? up[i - (size_t)bpp] : 0;
                int pr = f == 0 ? 0 : f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) >> 1 : paeth(a, b, cc);
                uint8_t v = (uint8_t)(row[i] - pr);
                c[i] = v;
                sum += v < 128 ? v : 256 - v;
            }
            if (sum < best) {
                best = sum;
                bf = f;
            }
        }
        uint8_t *dst = raw + (size_t)y * (rb + 1);
        dst[0] = (uint8_t)bf;
        memcpy(dst + 1, cand + (size_t)bf * rb, rb);
    }
    free(cand);
    uint8_t *zd;
    size_t zdn;
    int rc = sx_zlib_compress(raw, rawn, level, &zd, &zdn);
    free(raw);
    if (rc) return -1;
    size_t total = 8 + 25 + 12 + zdn + 12;
    uint8_t *f = sx_malloc(total, "PNG file");
    if (!f) {
        free(zd);
        return -1;
    }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const uint8_t ctypes[5] = {0, 0, 4, 2, 6};
    memcpy(f, sig, 8);
    uint8_t *q = f + 8;
    put32(q, 13);
    memcpy(q + 4, "IHDR", 4);
    put32(q + 8, (uint32_t)im->w);
    put32(q + 12, (uint32_t)im->h);
    q[16] = 8;
    q[17] = ctypes[bpp];
    q[18] = q[19] = q[20] = 0;
    put32(q + 21, sx_crc32(0, q + 4, 17));
    q += 25;
    put32(q, (uint32_t)zdn);
    memcpy(q + 4, "IDAT", 4);
    memcpy(q + 8, zd, zdn);
    put32(q + 8 + zdn, sx_crc32(0, q + 4, zdn + 4));
    q += 12 + zdn;
    put32(q, 0);
    memcpy(q + 4, "IEND", 4);
    put32(q + 8, sx_crc32(0, q + 4, 4));
    free(zd);
    *out = f;
    *n = total;
    return 0;
}

int sx_png_encode(const sx_image *im, uint8_t **out, size_t *n) {
    return sx_png_encode_level(im, 6, out, n);
}
