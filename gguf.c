/* gguf.c - the weight container: GGUF v3 (and v2, which has the same
 * little-endian layout) read through a read-only private mmap.
 *
 * File layout (all little-endian):
 *   header   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv     key/values:   string key, u32 type, value
 *   n_tensor tensor infos: string name, u32 n_dims, u64 dims[n_dims]
 *                          (fastest first), u32 type, u64 offset
 *   padding  to general.alignment (u32, default 32)
 *   data     each tensor at data_start + offset (offset aligned)
 * A string is u64 length + bytes (no terminator); an array is u32 element
 * type + u64 count + elements (arrays may nest).
 *
 * sx_gguf_open checks every byte it will ever read, so later accessors
 * never need to: each failure names the file, the field and its offset.
 * Shapes are presented in PyTorch order (GGUF's dims reversed). Lookup of
 * tensors and keys goes through hash tables (SDXL has ~2500 tensors). */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "half.h"
#include "sx_core.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads little-endian files in place; a big-endian host is not supported"
#endif

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ARRAY_DEPTH 8
#define GGUF_NAME_SHOWN 200 /* bytes of a name quoted in an error message */

/* The storage types in mask (SX_TYPE_BIT), by name, joined by sep. */
static const char *type_list(unsigned mask, const char *sep) {
    static _Thread_local char buf[256];
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; sx_wtype_at(i); i++) {
        const sx_wtype *w = sx_wtype_at(i);
        if (w->storage && (mask & SX_TYPE_BIT(w->type)) && o < sizeof buf)
            o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", o ? sep : "", w->name);
    }
    return buf;
}

/* ---- metadata value types -------------------------------------------- */

static const char *kv_type_name(uint32_t t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                  "bool", "str", "arr", "u64", "i64", "f64"};
    return t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static size_t kv_scalar_size(uint32_t t) { /* 0 for string, array, unknown */
    switch (t) {
    case SX_GGUF_U8: case SX_GGUF_I8: case SX_GGUF_BOOL: return 1;
    case SX_GGUF_U16: case SX_GGUF_I16: return 2;
    case SX_GGUF_U32: case SX_GGUF_I32: case SX_GGUF_F32: return 4;
    case SX_GGUF_U64: case SX_GGUF_I64: case SX_GGUF_F64: return 8;
    default: return 0;
    }
}

static int kv_is_int(int t) {
    return t == SX_GGUF_U8 || t == SX_GGUF_I8 || t == SX_GGUF_U16 || t == SX_GGUF_I16 ||
           t == SX_GGUF_U32 || t == SX_GGUF_I32 || t == SX_GGUF_U64 || t == SX_GGUF_I64 ||
           t == SX_GGUF_BOOL;
}

/* Reads a scalar of type t at p (unaligned). Integers into *i (u64 above
 * INT64_MAX sets *big), floats into *f. */
static void kv_read_scalar(const uint8_t *p, int t, int64_t *i, double *f, int *big) {
    int64_t iv = 0;
    double fv = 0;
    if (big) *big = 0;
    switch (t) {
    case SX_GGUF_U8: case SX_GGUF_BOOL: iv = p[0]; break;
    case SX_GGUF_I8: iv = (int8_t)p[0]; break;
    case SX_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); iv = v; break; }
    case SX_GGUF_I16: { int16_t v; memcpy(&v, p, 2); iv = v; break; }
    case SX_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); iv = v; break; }
    case SX_GGUF_I32: { int32_t v; memcpy(&v, p, 4); iv = v; break; }
    case SX_GGUF_U64: {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v > (uint64_t)INT64_MAX && big) *big = 1;
        iv = (int64_t)v;
        fv = (double)v;
        if (f) *f = fv;
        if (i) *i = iv;
        return;
    }
    case SX_GGUF_I64: memcpy(&iv, p, 8); break;
    case SX_GGUF_F32: { float v; memcpy(&v, p, 4); fv = v; break; }
    case SX_GGUF_F64: memcpy(&fv, p, 8); break;
    default: break;
    }
    if (t != SX_GGUF_F32 && t != SX_GGUF_F64) fv = (double)iv;
    if (i) *i = iv;
    if (f) *f = fv;
}

/* ---- the handle ------------------------------------------------------ */

typedef struct gg_kv {
    const char *key;    /* NUL-terminated copy */
    int type;           /* SX_GGUF_* */
    uint64_t off;       /* file offset of the key's length field */
    const uint8_t *val; /* scalar value / array payload (after elem type + count) */
    int elem_type;      /* arrays */
    uint64_t n;         /* arrays: element count */
    const char **strs;  /* STRING: strs[0]; string arrays: n copies (NUL-terminated) */
    size_t *lens;
    size_t val_bytes;   /* bytes of the whole value in the file (for printing) */
} gg_kv;

typedef struct gg_chunk {
    struct gg_chunk *next;
    size_t used, cap;
    char data[];
} gg_chunk;

struct sx_gguf {
    char *path;
    const uint8_t *map;
    size_t size;
    uint32_t version;
    size_t alignment;
    uint64_t data_off;
    int64_t n_kv, n_t;
    gg_kv *kv;
    sx_tensor *t;
    int64_t *kv_hash, *t_hash; /* open addressing: index + 1, 0 = empty */
    size_t kv_cap, t_cap;
    float **conv; /* sx_get_f32 copies, per tensor */
    void **recast; /* sx_gguf_tensor_as copies, per tensor */
    int *recast_type;
    void **packed; /* sx_gguf_tensor_buffer buffers, [slot][tensor] */
    size_t *packed_bytes;
    gg_chunk *chunks;
};

/* Copies len bytes into the handle's string arena and adds a NUL. */
static const char *arena_str(sx_gguf *g, const uint8_t *p, size_t len) {
    gg_chunk *c = g->chunks;
    if (len >= SIZE_MAX / 2) {
        sx_err("%s: string of %zu bytes is too long", g->path, len);
        return NULL;
    }
    if (!c || c->cap - c->used < len + 1) {
        size_t cap = len + 1 > 65536 ? len + 1 : 65536;
        c = sx_malloc(sizeof *c + cap, "gguf strings");
        if (!c) return NULL;
        c->next = g->chunks;
        c->used = 0;
        c->cap = cap;
        g->chunks = c;
    }
    char *s = c->data + c->used;
    if (len) memcpy(s, p, len);
    s[len] = 0;
    c->used += len + 1;
    return s;
}

static uint64_t hash_bytes(const char *s) { /* FNV-1a */
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static size_t hash_cap(int64_t n) {
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap *= 2;
    return cap;
}

/* Looks name up; returns the index or -1. */
static int64_t hash_find(const int64_t *tab, size_t cap, const char *name,
                         const char *(*key_of)(const sx_gguf *, int64_t), const sx_gguf *g) {
    if (!tab || !name) return -1;
    size_t m = cap - 1, h = (size_t)hash_bytes(name) & m;
    for (;;) {
        int64_t v = tab[h];
        if (!v) return -1;
        if (!strcmp(key_of(g, v - 1), name)) return v - 1;
        h = (h + 1) & m;
    }
}

/* Inserts index i under name; returns the index already holding name, or -1. */
static int64_t hash_insert(int64_t *tab, size_t cap, const char *name, int64_t i,
                           const char *(*key_of)(const sx_gguf *, int64_t), const sx_gguf *g) {
    size_t m = cap - 1, h = (size_t)hash_bytes(name) & m;
    for (;;) {
        int64_t v = tab[h];
        if (!v) {
            tab[h] = i + 1;
            return -1;
        }
        if (!strcmp(key_of(g, v - 1), name)) return v - 1;
        h = (h + 1) & m;
    }
}

static const char *kv_key_of(const sx_gguf *g, int64_t i) { return g->kv[i].key; }
static const char *t_name_of(const sx_gguf *g, int64_t i) { return g->t[i].name; }

/* Quotes at most GGUF_NAME_SHOWN bytes of a name for a message, escaping
 * control bytes. */
static const char *shown(char *buf, size_t cap, const char *s, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < cap; i++) {
        if (i == GGUF_NAME_SHOWN) {
            o += (size_t)snprintf(buf + o, cap - o, "...(%zu bytes)", len);
            break;
        }
        unsigned char ch = (unsigned char)s[i];
        if (ch < 32 || ch == 127 || ch == '\'' || ch == '\\')
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", ch);
        else
            buf[o++] = (char)ch;
    }
    buf[o < cap ? o : cap - 1] = 0;
    return buf;
}

/* ---- the parser ------------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    size_t size, pos;
    const char *path;
    char ctx[GGUF_NAME_SHOWN * 4 + 96]; /* "kv #3 'general.name'", "tensor #5 'x'" */
} gg_cur;

static int cur_need(gg_cur *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos)
        return sx_err("%s: %s: %s at offset %zu runs past end of file (%zu bytes)", c->path,
                      c->ctx, what, c->pos, c->size);
    return 0;
}

static int cur_u32(gg_cur *c, uint32_t *v, const char *what) {
    if (cur_need(c, 4, what)) return -1;
    memcpy(v, c->p + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int cur_u64(gg_cur *c, uint64_t *v, const char *what) {
    if (cur_need(c, 8, what)) return -1;
    memcpy(v, c->p + c->pos, 8);
    c->pos += 8;
    return 0;
}

/* A string: u64 length then bytes, all inside the file. */
static int cur_str(gg_cur *c, const uint8_t **s, uint64_t *len, const char *what) {
    size_t at = c->pos;
    char w[64];
    snprintf(w, sizeof w, "%s length", what);
    if (cur_u64(c, len, w)) return -1;
    if (*len > c->size - c->pos)
        return sx_err("%s: %s: %s length %llu at offset %zu runs past end of file (%zu bytes)",
                      c->path, c->ctx, what, (unsigned long long)*len, at, c->size);
    *s = c->p + c->pos;
    c->pos += (size_t)*len;
    return 0;
}

/* Validates (and skips) one value of type t at the cursor. */
static int cur_value(gg_cur *c, uint32_t t, int depth) {
    size_t at = c->pos;
    size_t sz = kv_scalar_size(t);
    if (sz) {
        if (cur_need(c, sz, "value")) return -1;
        if (t == SX_GGUF_BOOL && c->p[c->pos] > 1)
            return sx_err("%s: %s: bool value %u at offset %zu is not 0 or 1", c->path, c->ctx,
                          c->p[c->pos], at);
        c->pos += sz;
        return 0;
    }
    if (t == SX_GGUF_STRING) {
        const uint8_t *s;
        uint64_t len;
        return cur_str(c, &s, &len, "string");
    }
    if (t != SX_GGUF_ARRAY)
        return sx_err("%s: %s: unknown value type %u at offset %zu", c->path, c->ctx, t, at);
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return sx_err("%s: %s: arrays nested deeper than %d at offset %zu", c->path, c->ctx,
                      GGUF_MAX_ARRAY_DEPTH, at);
    uint32_t et;
    uint64_t n;
    if (cur_u32(c, &et, "array element type")) return -1;
    if (et > SX_GGUF_F64)
        return sx_err("%s: %s: unknown array element type %u at offset %zu", c->path, c->ctx, et,
                      at);
    if (cur_u64(c, &n, "array length")) return -1;
    size_t esz = kv_scalar_size(et);
    /* the smallest encoding of one element bounds the count by the bytes left */
    size_t min = esz ? esz : et == SX_GGUF_STRING ? 8 : 12;
    if (n > (c->size - c->pos) / min)
        return sx_err("%s: %s: array of %llu x %s at offset %zu runs past end of file (%zu bytes)",
                      c->path, c->ctx, (unsigned long long)n, kv_type_name(et), at, c->size);
    if (esz) {
        if (et == SX_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (c->p[c->pos + i] > 1)
                    return sx_err("%s: %s: bool element %llu = %u at offset %zu is not 0 or 1",
                                  c->path, c->ctx, (unsigned long long)i, c->p[c->pos + i],
                                  c->pos + (size_t)i);
        c->pos += (size_t)n * esz;
        return 0;
    }
    for (uint64_t i = 0; i < n; i++)
        if (cur_value(c, et, depth + 1)) return -1;
    return 0;
}

typedef struct {
    uint64_t start, end;
    int64_t idx;
} gg_span;

static int span_cmp(const void *a, const void *b) {
    const gg_span *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int parse_kvs(sx_gguf *g, gg_cur *c) {
    char nb[GGUF_NAME_SHOWN * 4 + 32];
    for (int64_t i = 0; i < g->n_kv; i++) {
        gg_kv *kv = &g->kv[i];
        const uint8_t *k;
        uint64_t klen;
        snprintf(c->ctx, sizeof c->ctx, "kv #%lld", (long long)i);
        kv->off = c->pos;
        if (cur_str(c, &k, &klen, "key")) return -1;
        shown(nb, sizeof nb, (const char *)k, (size_t)klen);
        snprintf(c->ctx, sizeof c->ctx, "kv #%lld '%s'", (long long)i, nb);
        if (memchr(k, 0, (size_t)klen))
            return sx_err("%s: %s: key at offset %llu contains a NUL byte", g->path, c->ctx,
                          (unsigned long long)kv->off);
        if (!(kv->key = arena_str(g, k, (size_t)klen))) return -1;
        uint32_t t;
        size_t tpos = c->pos;
        if (cur_u32(c, &t, "value type")) return -1;
        if (t > SX_GGUF_F64)
            return sx_err("%s: %s: unknown value type %u at offset %zu", g->path, c->ctx, t, tpos);
        kv->type = (int)t;
        size_t vpos = c->pos;
        if (cur_value(c, t, 0)) return -1;
        kv->val_bytes = c->pos - vpos;
        kv->val = c->p + vpos;
        if (t == SX_GGUF_STRING) {
            uint64_t len;
            memcpy(&len, c->p + vpos, 8);
            kv->strs = sx_malloc(sizeof *kv->strs, "gguf string");
            kv->lens = sx_malloc(sizeof *kv->lens, "gguf string");
            if (!kv->strs || !kv->lens) return -1;
            kv->lens[0] = (size_t)len;
            if (!(kv->strs[0] = arena_str(g, c->p + vpos + 8, (size_t)len))) return -1;
            kv->n = 1;
        } else if (t == SX_GGUF_ARRAY) {
            uint32_t et;
            memcpy(&et, c->p + vpos, 4);
            memcpy(&kv->n, c->p + vpos + 4, 8);
            kv->elem_type = (int)et;
            kv->val = c->p + vpos + 12;
            if (et == SX_GGUF_STRING) {
                kv->strs = sx_calloc((size_t)kv->n, sizeof *kv->strs, "gguf string array");
                kv->lens = sx_calloc((size_t)kv->n, sizeof *kv->lens, "gguf string array");
                if (!kv->strs || !kv->lens) return -1;
                const uint8_t *p = kv->val;
                for (uint64_t j = 0; j < kv->n; j++) {
                    uint64_t len;
                    memcpy(&len, p, 8);
                    kv->lens[j] = (size_t)len;
                    if (!(kv->strs[j] = arena_str(g, p + 8, (size_t)len))) return -1;
                    p += 8 + len;
                }
            }
        }
        int64_t dup = hash_insert(g->kv_hash, g->kv_cap, kv->key, i, kv_key_of, g);
        if (dup >= 0)
            return sx_err("%s: %s at offset %llu duplicates kv #%lld", g->path, c->ctx,
                          (unsigned long long)kv->off, (long long)dup);
    }
    return 0;
}

static int parse_alignment(sx_gguf *g) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = hash_find(g->kv_hash, g->kv_cap, "general.alignment", kv_key_of, g);
    if (i < 0) return 0;
    const gg_kv *kv = &g->kv[i];
    if (kv->type != SX_GGUF_U32)
        return sx_err("%s: kv #%lld 'general.alignment' at offset %llu has type %s, expected u32",
                      g->path, (long long)i, (unsigned long long)kv->off, kv_type_name(kv->type));
    uint32_t a;
    memcpy(&a, kv->val, 4);
    if (a == 0 || (a & (a - 1)))
        return sx_err("%s: kv #%lld 'general.alignment' at offset %llu is %u, not a power of two",
                      g->path, (long long)i, (unsigned long long)kv->off, a);
    g->alignment = a;
    return 0;
}

static int parse_tensor_infos(sx_gguf *g, gg_cur *c) {
    char nb[GGUF_NAME_SHOWN * 4 + 32];
    for (int64_t i = 0; i < g->n_t; i++) {
        sx_tensor *t = &g->t[i];
        const uint8_t *s;
        uint64_t len;
        snprintf(c->ctx, sizeof c->ctx, "tensor #%lld", (long long)i);
        size_t at = c->pos, name_at = c->pos;
        if (cur_str(c, &s, &len, "name")) return -1;
        shown(nb, sizeof nb, (const char *)s, (size_t)len);
        snprintf(c->ctx, sizeof c->ctx, "tensor #%lld '%s'", (long long)i, nb);
        if (memchr(s, 0, (size_t)len))
            return sx_err("%s: %s: name at offset %zu contains a NUL byte", g->path, c->ctx, at);
        if (!(t->name = arena_str(g, s, (size_t)len))) return -1;
        uint32_t nd;
        at = c->pos;
        if (cur_u32(c, &nd, "n_dims")) return -1;
        if (nd < 1 || nd > SX_MAX_DIMS)
            return sx_err("%s: %s: n_dims %u at offset %zu is not in 1..%d", g->path, c->ctx, nd, at,
                          SX_MAX_DIMS);
        t->ndim = (int)nd;
        uint64_t dims[SX_MAX_DIMS];
        int64_t nelem = 1;
        for (uint32_t d = 0; d < nd; d++) {
            at = c->pos;
            if (cur_u64(c, &dims[d], "dims")) return -1;
            if (dims[d] == 0 || dims[d] > (uint64_t)INT64_MAX)
                return sx_err("%s: %s: dim %u (GGUF order) = %llu at offset %zu is not in 1..2^63-1",
                              g->path, c->ctx, d, (unsigned long long)dims[d], at);
            if (__builtin_mul_overflow(nelem, (int64_t)dims[d], &nelem))
                return sx_err("%s: %s: element count overflows (dims at offset %zu)", g->path,
                              c->ctx, at);
        }
        for (uint32_t d = 0; d < nd; d++) t->shape[d] = (int64_t)dims[nd - 1 - d];
        t->nelem = nelem;
        uint32_t type;
        at = c->pos;
        if (cur_u32(c, &type, "type")) return -1;
        const sx_wtype *wt = sx_wtype_of((int)type);
        if (!wt || !wt->storage)
            return sx_err("%s: %s: unknown tensor type %u at offset %zu (known: %s)", g->path,
                          c->ctx, type, at, type_list(~0u, " "));
        t->type = (int)type;
        if (dims[0] % (uint64_t)wt->block)
            return sx_err("%s: %s: row length %llu is not a multiple of %d, as %s needs", g->path,
                          c->ctx, (unsigned long long)dims[0], (int)wt->block,
                          sx_type_name((int)type));
        t->nbytes = sx_type_nbytes((int)type, nelem);
        if (!t->nbytes)
            return sx_err("%s: %s: byte size of %lld elements of %s overflows", g->path, c->ctx,
                          (long long)nelem, sx_type_name((int)type));
        at = c->pos;
        if (cur_u64(c, &t->offset, "data offset")) return -1;
        if (t->offset % g->alignment)
            return sx_err("%s: %s: data offset %llu at offset %zu is not a multiple of the "
                          "alignment %zu", g->path, c->ctx, (unsigned long long)t->offset, at,
                          g->alignment);
        int64_t dup = hash_insert(g->t_hash, g->t_cap, t->name, i, t_name_of, g);
        if (dup >= 0)
            return sx_err("%s: %s: name at offset %zu duplicates tensor #%lld", g->path, c->ctx,
                          name_at, (long long)dup);
    }
    return 0;
}

static int place_tensors(sx_gguf *g) {
    char nb[GGUF_NAME_SHOWN * 4 + 32], nb2[GGUF_NAME_SHOWN * 4 + 32];
    uint64_t size = g->size;
    for (int64_t i = 0; i < g->n_t; i++) {
        sx_tensor *t = &g->t[i];
        uint64_t a = g->data_off + t->offset, b = a + t->nbytes;
        if (t->offset > UINT64_MAX - g->data_off)
            return sx_err("%s: tensor #%lld '%s': data offset %llu runs past end of file (%llu "
                          "bytes)", g->path, (long long)i,
                          shown(nb, sizeof nb, t->name, strlen(t->name)),
                          (unsigned long long)t->offset, (unsigned long long)size);
        if (a > size || t->nbytes > size - a) {
            if (t->nbytes > UINT64_MAX - a) b = UINT64_MAX;
            return sx_err("%s: tensor #%lld '%s': data [%llu, %llu) runs past end of file (%llu "
                          "bytes)", g->path, (long long)i,
                          shown(nb, sizeof nb, t->name, strlen(t->name)), (unsigned long long)a,
                          (unsigned long long)b, (unsigned long long)size);
        }
        t->data = g->map + a;
    }
    if (g->n_t < 2) return 0;
    gg_span *sp = sx_calloc((size_t)g->n_t, sizeof *sp, "gguf tensor spans");
    if (!sp) return -1;
    for (int64_t i = 0; i < g->n_t; i++) {
        sp[i].start = g->t[i].offset;
        sp[i].end = g->t[i].offset + g->t[i].nbytes;
        sp[i].idx = i;
    }
    qsort(sp, (size_t)g->n_t, sizeof *sp, span_cmp);
    int64_t far = 0; /* the span reaching furthest so far */
    for (int64_t i = 1; i < g->n_t; i++) {
        if (sp[i].start < sp[far].end) {
            const sx_tensor *x = &g->t[sp[far].idx], *y = &g->t[sp[i].idx];
            int rc = sx_err("%s: tensor #%lld '%s': data [%llu, %llu) overlaps tensor #%lld '%s' "
                            "data [%llu, %llu)", g->path, (long long)sp[i].idx,
                            shown(nb, sizeof nb, y->name, strlen(y->name)),
                            (unsigned long long)(g->data_off + sp[i].start),
                            (unsigned long long)(g->data_off + sp[i].end), (long long)sp[far].idx,
                            shown(nb2, sizeof nb2, x->name, strlen(x->name)),
                            (unsigned long long)(g->data_off + sp[far].start),
                            (unsigned long long)(g->data_off + sp[far].end));
            free(sp);
            return rc;
        }
        if (sp[i].end > sp[far].end) far = i;
    }
    free(sp);
    return 0;
}

static int parse(sx_gguf *g) {
    gg_cur c = {.p = g->map, .size = g->size, .pos = 0, .path = g->path};
    snprintf(c.ctx, sizeof c.ctx, "header");
    if (g->size < 24)
        return sx_err("%s: file of %zu bytes is too small for a GGUF header (24 bytes)", g->path,
                      g->size);
    if (memcmp(g->map, "GGUF", 4)) {
        char nb[64];
        return sx_err("%s: bad magic '%s' at offset 0 (expected 'GGUF'; not a GGUF file)", g->path,
                      shown(nb, sizeof nb, (const char *)g->map, 4));
    }
    c.pos = 4;
    uint64_t nt, nkv;
    cur_u32(&c, &g->version, "version");
    if (g->version != 2 && g->version != 3)
        return sx_err("%s: unsupported GGUF version %u at offset 4 (expected 3 or 2%s)", g->path,
                      g->version, (g->version & 0xffff) == 0 ? "; a big-endian file?" : "");
    cur_u64(&c, &nt, "tensor count");
    cur_u64(&c, &nkv, "kv count");
    /* a tensor info takes at least 32 bytes, a key/value at least 13:
     * larger counts cannot fit, so reject them before allocating */
    if (nt > (g->size - 24) / 32)
        return sx_err("%s: tensor count %llu at offset 8 cannot fit in a file of %zu bytes", g->path,
                      (unsigned long long)nt, g->size);
    if (nkv > (g->size - 24) / 13)
        return sx_err("%s: kv count %llu at offset 16 cannot fit in a file of %zu bytes", g->path,
                      (unsigned long long)nkv, g->size);
    g->n_t = (int64_t)nt;
    g->n_kv = (int64_t)nkv;
    g->kv = sx_calloc((size_t)nkv, sizeof *g->kv, "gguf key/values");
    g->t = sx_calloc((size_t)nt, sizeof *g->t, "gguf tensors");
    g->kv_cap = hash_cap(g->n_kv);
    g->t_cap = hash_cap(g->n_t);
    g->kv_hash = sx_calloc(g->kv_cap, sizeof *g->kv_hash, "gguf key index");
    g->t_hash = sx_calloc(g->t_cap, sizeof *g->t_hash, "gguf tensor index");
    if (!g->kv || !g->t || !g->kv_hash || !g->t_hash) return -1;
    if (parse_kvs(g, &c) || parse_alignment(g) || parse_tensor_infos(g, &c)) return -1;
    /* the data section starts at the next multiple of the alignment */
    g->data_off = ((uint64_t)c.pos + g->alignment - 1) / g->alignment * g->alignment;
    return place_tensors(g);
}

int sx_gguf_open(const char *path, sx_gguf **out) {
    if (out) *out = NULL;
    if (!path || !out) return sx_err("sx_gguf_open: NULL %s", path ? "out" : "path");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sx_err("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sx_err("%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sx_err("%s: is %s, not a regular file", path,
                      S_ISDIR(st.st_mode) ? "a directory" : "a special file");
    }
    if (st.st_size < 24) {
        close(fd);
        return sx_err("%s: file of %lld bytes is too small for a GGUF header (24 bytes)", path,
                      (long long)st.st_size);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return sx_err("%s: file too large to map", path);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return sx_err("%s: cannot mmap %lld bytes: %s", path,
                                         (long long)st.st_size, strerror(e));
    sx_gguf *g = sx_calloc(1, sizeof *g, "gguf handle");
    size_t plen = strlen(path);
    if (g) g->path = sx_malloc(plen + 1, "gguf path");
    if (!g || !g->path) {
        if (g) free(g);
        munmap(map, (size_t)st.st_size);
        return -1;
    }
    memcpy(g->path, path, plen + 1);
    g->map = map;
    g->size = (size_t)st.st_size;
    if (parse(g) != 0) {
        sx_gguf_close(g);
        return -1;
    }
    *out = g;
    return 0;
}

void sx_gguf_close(sx_gguf *g) {
    if (!g) return;
    if (g->conv) {
        for (int64_t i = 0; i < g->n_t; i++) free(g->conv[i]);
        free(g->conv);
    }
    if (g->recast) {
        for (int64_t i = 0; i < g->n_t; i++) free(g->recast[i]);
        free(g->recast);
        free(g->recast_type);
    }
    if (g->packed) {
        for (int64_t i = 0; i < SX_GGUF_SLOTS * g->n_t; i++) free(g->packed[i]);
        free(g->packed);
        free(g->packed_bytes);
    }
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].strs);
            free(g->kv[i].lens);
        }
    while (g->chunks) {
        gg_chunk *n = g->chunks->next;
        free(g->chunks);
        g->chunks = n;
    }
    free(g->kv);
    free(g->t);
    free(g->kv_hash);
    free(g->t_hash);
    if (g->map) munmap((void *)g->map, g->size);
    free(g->path);
    free(g);
}

const char *sx_gguf_path(const sx_gguf *g) { return g ? g->path : "(null)"; }
uint32_t sx_gguf_version(const sx_gguf *g) { return g ? g->version : 0; }
size_t sx_gguf_alignment(const sx_gguf *g) { return g ? g->alignment : 0; }

/* ---- tensors ----------------------------------------------------------- */

int64_t sx_gguf_n_tensors(const sx_gguf *g) { return g ? g->n_t : 0; }

const sx_tensor *sx_gguf_tensor_at(const sx_gguf *g, int64_t i) {
    if (!g || i < 0 || i >= g->n_t) return NULL;
    return &g->t[i];
}

const sx_tensor *sx_gguf_find(const sx_gguf *g, const char *name) {
    if (!g || !name) return NULL;
    int64_t i = hash_find(g->t_hash, g->t_cap, name, t_name_of, g);
    return i < 0 ? NULL : &g->t[i];
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int d = 0; d < ndim && o < cap; d++) {
        if (shape[d] < 0)
            o += (size_t)snprintf(buf + o, cap - o, "%s*", d ? "," : "");
        else
            o += (size_t)snprintf(buf + o, cap - o, "%s%lld", d ? "," : "", (long long)shape[d]);
    }
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

const sx_tensor *sx_tensor_get(const sx_gguf *g, const char *name, unsigned mask, int ndim,
                               const int64_t *want) {
    char nb[GGUF_NAME_SHOWN * 4 + 32];
    if (!g || !name) {
        sx_err("sx_tensor_get: NULL %s", g ? "name" : "file");
        return NULL;
    }
    shown(nb, sizeof nb, name, strlen(name));
    if (ndim < 1 || ndim > SX_MAX_DIMS) {
        sx_err("%s: tensor '%s': bad ndim argument %d (must be 1..%d)", g->path, nb, ndim,
               SX_MAX_DIMS);
        return NULL;
    }
    if (!want) {
        sx_err("%s: tensor '%s': NULL dims", g->path, nb);
        return NULL;
    }
    const sx_tensor *t = sx_gguf_find(g, name);
    if (!t) {
        sx_err("%s: tensor '%s' not found", g->path, nb);
        return NULL;
    }
    if (!(mask & SX_TYPE_BIT(t->type)) || t->type > 31) {
        const char *types = type_list(mask, "|");
        sx_err("%s: tensor '%s' has type %s, expected one of %s", g->path, nb,
               sx_type_name(t->type), *types ? types : "(none)");
        return NULL;
    }
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        if (want[d] >= 0 && want[d] != t->shape[d]) ok = 0;
    if (!ok) {
        char got[128], exp[128];
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        fmt_shape(exp, sizeof exp, ndim, want);
        sx_err("%s: tensor '%s' has shape %s, expected %s", g->path, nb, got, exp);
        return NULL;
    }
    return t;
}

int sx_tensor_to_f32(const sx_tensor *t, float *dst) {
    if (!t || !dst || !t->data) return sx_err("sx_tensor_to_f32: NULL %s", !t ? "tensor" : !dst ? "dst" : "data");
    int64_t n = t->nelem;
    const uint8_t *p = t->data;
    if (n < 0 || (sx_type_nbytes(t->type, n) == 0 && n != 0))
        return sx_err("tensor '%s': cannot convert %lld elements of type %s (%d)",
                      t->name ? t->name : "?", (long long)n, sx_type_name(t->type), t->type);
    const sx_wtype *wt = sx_wtype_of(t->type);
    if (((uintptr_t)p & 3) == 0) { /* the current SIMD path's conversion */
        sx_wtype_kernels_of(wt).to_f32(dst, p, n);
        return 0;
    }
    return sx_dequantize(t->type, dst, p, n); /* byte-wise reference */
}

const float *sx_get_f32(sx_gguf *g, const char *name, int ndim, const int64_t *dims) {
    const sx_tensor *t = sx_tensor_get(g, name, SX_ANY_TYPE, ndim, dims);
    if (!t) return NULL;
    if (t->type == SX_F32 && ((uintptr_t)t->data & 3) == 0) return t->data;
    int64_t i = t - g->t;
    if (!g->conv && !(g->conv = sx_calloc((size_t)g->n_t, sizeof *g->conv, "gguf f32 copies")))
        return NULL;
    if (g->conv[i]) return g->conv[i];
    char what[GGUF_NAME_SHOWN * 4 + 32];
    float *y = sx_calloc((size_t)t->nelem, sizeof *y, shown(what, sizeof what, t->name, strlen(t->name)));
    if (!y) return NULL;
    if (sx_tensor_to_f32(t, y)) {
        free(y);
        return NULL;
    }
    g->conv[i] = y;
    return y;
}

/* ---- metadata ---------------------------------------------------------- */

int64_t sx_gguf_n_kv(const sx_gguf *g) { return g ? g->n_kv : 0; }

const char *sx_gguf_key_at(const sx_gguf *g, int64_t i) {
    if (!g || i < 0 || i >= g->n_kv) return NULL;
    return g->kv[i].key;
}

static const gg_kv *kv_find(const sx_gguf *g, const char *key) {
    if (!g || !key) return NULL;
    int64_t i = hash_find(g->kv_hash, g->kv_cap, key, kv_key_of, g);
    return i < 0 ? NULL : &g->kv[i];
}

int sx_gguf_kv_type(const sx_gguf *g, const char *key) {
    const gg_kv *kv = kv_find(g, key);
    return kv ? kv->type : -1;
}

int sx_meta_has(const sx_gguf *g, const char *key) { return kv_find(g, key) != NULL; }

/* Finds key or fails with "FILE: metadata key 'K' not found". */
static const gg_kv *kv_need(const sx_gguf *g, const char *key) {
    if (!g || !key) {
        sx_err("gguf metadata: NULL %s", g ? "key" : "file");
        return NULL;
    }
    const gg_kv *kv = kv_find(g, key);
    if (!kv) sx_err("%s: metadata key '%s' not found", g->path, key);
    return kv;
}

int sx_meta_int(const sx_gguf *g, const char *key, int64_t *out) {
    const gg_kv *kv = kv_need(g, key);
    if (!kv) return -1;
    if (!out) return sx_err("%s: sx_meta_int '%s': NULL out", g->path, key);
    if (!kv_is_int(kv->type))
        return sx_err("%s: metadata '%s' has type %s, expected an integer", g->path, key,
                      kv_type_name(kv->type));
    int big;
    kv_read_scalar(kv->val, kv->type, out, NULL, &big);
    if (big) return sx_err("%s: metadata '%s' (u64) does not fit in int64", g->path, key);
    return 0;
}

int sx_meta_float(const sx_gguf *g, const char *key, double *out) {
    const gg_kv *kv = kv_need(g, key);
    if (!kv) return -1;
    if (!out) return sx_err("%s: sx_meta_float '%s': NULL out", g->path, key);
    if (kv->type != SX_GGUF_F32 && kv->type != SX_GGUF_F64 &&
        (!kv_is_int(kv->type) || kv->type == SX_GGUF_BOOL))
        return sx_err("%s: metadata '%s' has type %s, expected a number", g->path, key,
                      kv_type_name(kv->type));
    kv_read_scalar(kv->val, kv->type, NULL, out, NULL);
    return 0;
}

int sx_meta_str(const sx_gguf *g, const char *key, const char **s, size_t *len) {
    const gg_kv *kv = kv_need(g, key);
    if (!kv) return -1;
    if (kv->type != SX_GGUF_STRING)
        return sx_err("%s: metadata '%s' has type %s, expected str", g->path, key,
                      kv_type_name(kv->type));
    if (s) *s = kv->strs[0];
    if (len) *len = kv->lens[0];
    return 0;
}

int64_t sx_meta_int_or(const sx_gguf *g, const char *key, int64_t def) {
    const gg_kv *kv = kv_find(g, key);
    if (!kv || !kv_is_int(kv->type)) return def;
    int64_t v;
    int big;
    kv_read_scalar(kv->val, kv->type, &v, NULL, &big);
    return big ? def : v;
}

double sx_meta_float_or(const sx_gguf *g, const char *key, double def) {
    const gg_kv *kv = kv_find(g, key);
    if (!kv || (kv->type != SX_GGUF_F32 && kv->type != SX_GGUF_F64 &&
                (!kv_is_int(kv->type) || kv->type == SX_GGUF_BOOL)))
        return def;
    double v;
    kv_read_scalar(kv->val, kv->type, NULL, &v, NULL);
    return v;
}

static const gg_kv *arr_need(const sx_gguf *g, const char *key) {
    const gg_kv *kv = kv_need(g, key);
    if (kv && kv->type != SX_GGUF_ARRAY) {
        sx_err("%s: metadata '%s' has type %s, expected an array", g->path, key,
               kv_type_name(kv->type));
        return NULL;
    }
    return kv;
}

int sx_meta_arr(const sx_gguf *g, const char *key, int *elem_type, uint64_t *n) {
    const gg_kv *kv = arr_need(g, key);
    if (!kv) return -1;
    if (elem_type) *elem_type = kv->elem_type;
    if (n) *n = kv->n;
    return 0;
}

static const gg_kv *arr_elem(const sx_gguf *g, const char *key, uint64_t i) {
    const gg_kv *kv = arr_need(g, key);
    if (kv && i >= kv->n) {
        sx_err("%s: metadata '%s': index %llu out of range (array of %llu)", g->path, key,
               (unsigned long long)i, (unsigned long long)kv->n);
        return NULL;
    }
    return kv;
}

int sx_meta_arr_int(const sx_gguf *g, const char *key, uint64_t i, int64_t *out) {
    const gg_kv *kv = arr_elem(g, key, i);
    if (!kv) return -1;
    if (!out) return sx_err("%s: sx_meta_arr_int '%s': NULL out", g->path, key);
    if (!kv_is_int(kv->elem_type))
        return sx_err("%s: metadata '%s' is an array of %s, expected integers", g->path, key,
                      kv_type_name(kv->elem_type));
    int big;
    kv_read_scalar(kv->val + i * kv_scalar_size(kv->elem_type), kv->elem_type, out, NULL, &big);
    if (big)
        return sx_err("%s: metadata '%s'[%llu] (u64) does not fit in int64", g->path, key,
                      (unsigned long long)i);
    return 0;
}

int sx_meta_arr_float(const sx_gguf *g, const char *key, uint64_t i, double *out) {
    const gg_kv *kv = arr_elem(g, key, i);
    if (!kv) return -1;
    if (!out) return sx_err("%s: sx_meta_arr_float '%s': NULL out", g->path, key);
    int et = kv->elem_type;
    if (et != SX_GGUF_F32 && et != SX_GGUF_F64 && (!kv_is_int(et) || et == SX_GGUF_BOOL))
        return sx_err("%s: metadata '%s' is an array of %s, expected numbers", g->path, key,
                      kv_type_name(et));
    kv_read_scalar(kv->val + i * kv_scalar_size(et), et, NULL, out, NULL);
    return 0;
}

int sx_meta_arr_str(const sx_gguf *g, const char *key, uint64_t i, const char **s, size_t *len) {
    const gg_kv *kv = arr_elem(g, key, i);
    if (!kv) return -1;
    if (kv->elem_type != SX_GGUF_STRING)
        return sx_err("%s: metadata '%s' is an array of %s, expected str", g->path, key,
                      kv_type_name(kv->elem_type));
    if (s) *s = kv->strs[i];
    if (len) *len = kv->lens[i];
    return 0;
}

const void *sx_meta_arr_data(const sx_gguf *g, const char *key) {
    const gg_kv *kv = arr_need(g, key);
    if (!kv) return NULL;
    if (!kv_scalar_size((uint32_t)kv->elem_type)) {
        sx_err("%s: metadata '%s' is an array of %s, not of numbers", g->path, key,
               kv_type_name(kv->elem_type));
        return NULL;
    }
    return kv->val;
}

/* ---- metadata as text (what `seedx inspect` lists) --------------------- */

typedef struct { /* growable text; oom set once an allocation failed */
    char *p;
    size_t n, cap;
    int oom;
} txt;

static void txt_put(txt *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void txt_printf(txt *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void txt_printf(txt *b, const char *fmt, ...) {
    char tmp[64]; /* numbers and short escapes only */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) txt_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void txt_str(txt *b, const uint8_t *s, size_t len, size_t max) {
    txt_put(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        if (i == max) {
            txt_printf(b, "\"...(%zu bytes)", len);
            return;
        }
        unsigned char ch = s[i];
        if (ch == '"' || ch == '\\') txt_printf(b, "\\%c", ch);
        else if (ch == '\n') txt_put(b, "\\n", 2);
        else if (ch == '\t') txt_put(b, "\\t", 2);
        else if (ch < 32 || ch == 127) txt_printf(b, "\\x%02x", ch);
        else txt_put(b, (const char *)&s[i], 1);
    }
    txt_put(b, "\"", 1);
}

static void txt_scalar(txt *b, const uint8_t *p, int t) {
    int64_t iv;
    double fv;
    if (t == SX_GGUF_U64) {
        uint64_t v;
        memcpy(&v, p, 8);
        txt_printf(b, "%llu", (unsigned long long)v);
    } else if (t == SX_GGUF_BOOL) {
        txt_put(b, p[0] ? "true" : "false", p[0] ? 4 : 5);
    } else if (t == SX_GGUF_F32 || t == SX_GGUF_F64) {
        kv_read_scalar(p, t, NULL, &fv, NULL);
        txt_printf(b, t == SX_GGUF_F32 ? "%.9g" : "%.17g", fv);
    } else {
        kv_read_scalar(p, t, &iv, NULL, NULL);
        txt_printf(b, "%lld", (long long)iv);
    }
}

/* Returns the end of the (validated) value of type t at p. */
static const uint8_t *skip_value(const uint8_t *p, int t) {
    size_t sz = kv_scalar_size((uint32_t)t);
    if (sz) return p + sz;
    uint64_t len;
    if (t == SX_GGUF_STRING) {
        memcpy(&len, p, 8);
        return p + 8 + len;
    }
    uint32_t et;
    memcpy(&et, p, 4);
    memcpy(&len, p + 4, 8);
    p += 12;
    if ((sz = kv_scalar_size(et))) return p + len * sz;
    for (uint64_t i = 0; i < len; i++) p = skip_value(p, (int)et);
    return p;
}

/* Appends the (validated) value of type t at *pp, advancing *pp. */
static void txt_value(txt *b, const uint8_t **pp, int t, int all) {
    const uint8_t *p = *pp;
    size_t sz = kv_scalar_size((uint32_t)t);
    if (sz) {
        txt_scalar(b, p, t);
        *pp = p + sz;
    } else if (t == SX_GGUF_STRING) {
        uint64_t len;
        memcpy(&len, p, 8);
        txt_str(b, p + 8, (size_t)len, all ? (size_t)-1 : 120);
        *pp = p + 8 + len;
    } else { /* array */
        uint32_t et;
        uint64_t n;
        memcpy(&et, p, 4);
        memcpy(&n, p + 4, 8);
        p += 12;
        uint64_t shown_n = all ? n : n < 8 ? n : 8;
        txt_put(b, "[", 1);
        for (uint64_t i = 0; i < n; i++) {
            if (i == shown_n) {
                for (; i < n; i++) p = skip_value(p, (int)et);
                txt_printf(b, ", ... %llu more", (unsigned long long)(n - shown_n));
                break;
            }
            if (i) txt_put(b, ", ", 2);
            txt_value(b, &p, (int)et, all);
        }
        txt_put(b, "]", 1);
        *pp = p;
    }
}

char *sx_gguf_kv_text(const sx_gguf *g, int64_t i, int all) {
    if (!g || i < 0 || i >= g->n_kv) {
        sx_err("sx_gguf_kv_text: %s", g ? "key index out of range" : "NULL file");
        return NULL;
    }
    const gg_kv *kv = &g->kv[i];
    txt b = {0};
    const uint8_t *p = kv->type == SX_GGUF_ARRAY ? kv->val - 12 : kv->val;
    txt_value(&b, &p, kv->type, all);
    if (b.oom || !b.p) {
        free(b.p);
        sx_err("%s: out of memory formatting metadata '%s'", g->path, kv->key);
        return NULL;
    }
    return b.p;
}

const char *sx_gguf_kv_type_name(int type) { return kv_type_name((uint32_t)type); }
uint64_t sx_gguf_data_offset(const sx_gguf *g) { return g ? g->data_off : 0; }
size_t sx_gguf_file_size(const sx_gguf *g) { return g ? g->size : 0; }

/* Converts rows [b, e) of a tensor (K values per row) to another type:
 * row -> float32 -> the target type, through the kernels of the current SIMD
 * path, which give the reference's bytes (the converter's). Non-finite values fail the job. */
typedef struct {
    const sx_tensor *t;
    int type;
    int64_t K;
    void *out;
    _Atomic int64_t bad_row; /* a row that failed, -1 */
    int bad_kind;            /* 1 NaN/Inf value, 2 scale overflows f16, 3 out of memory */
} recast_job;

static void recast_fail(recast_job *J, int64_t r, int kind) {
    int64_t prev = -1;
    if (atomic_compare_exchange_strong(&J->bad_row, &prev, r)) J->bad_kind = kind;
}

static int all_finite(const float *x, int64_t n) {
    for (int64_t k = 0; k < n; k++)
        if (!isfinite(x[k])) return 0;
    return 1;
}

static void recast_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    recast_job *J = ctx;
    size_t sb = sx_type_nbytes(J->t->type, J->K), db = sx_type_nbytes(J->type, J->K);
    /* the current SIMD path's kernels: bit-identical to the reference (tests) */
    sx_to_f32_fn to_f32 = sx_wtype_kernels_of(sx_wtype_of(J->t->type)).to_f32;
    sx_from_f32_fn from_f32 = sx_wtype_kernels_of(sx_wtype_of(J->type)).from_f32;
    float *row = malloc(sizeof(float) * (size_t)J->K);
    if (!row) {
        recast_fail(J, b, 3);
        return;
    }
    sx_to_f32_fn back = sx_wtype_kernels_of(sx_wtype_of(J->type)).to_f32;
    for (int64_t r = b; r < e; r++) {
        to_f32(row, (const uint8_t *)J->t->data + (size_t)r * sb, J->K);
        if (!all_finite(row, J->K)) {
            recast_fail(J, r, 1);
            break;
        }
        uint8_t *dst = (uint8_t *)J->out + (size_t)r * db;
        from_f32(dst, row, J->K);
        back(row, dst, J->K); /* a block scale past the f16 range reads back as Inf/NaN */
        if (!all_finite(row, J->K)) {
            recast_fail(J, r, 2);
            break;
        }
    }
    free(row);
}

/* A copy of tensor t in another storage type (F32, F16, BF16, Q8_0, Q4_0,
 * Q4_K), owned by g and kept until sx_gguf_close; cached per tensor. Rows
 * (the last dimension) are converted in parallel with the reference
 * conversions, so the bytes are those the converter writes. The mapped pages
 * of the source are released afterwards (MADV_DONTNEED): the copy replaces
 * them in memory. Used by the kernel layer's run-time weight type
 * (sx_set_weight_dtype). */
const void *sx_gguf_tensor_as(sx_gguf *g, const sx_tensor *t, int type) {
    if (!g || !t || t < g->t || t >= g->t + g->n_t)
        return sx_err("sx_gguf_tensor_as: tensor not from this file"), NULL;
    const sx_wtype *wt = sx_wtype_of(type);
    if (!wt || !wt->storage || !wt->k[SX_SIMD_SCALAR].from_f32)
        return sx_err("%s: cannot convert tensor '%s' to %s", g->path, t->name, sx_type_name(type)),
               NULL;
    int64_t K = t->shape[t->ndim - 1], rows = t->nelem / K;
    if (K % wt->block)
        return sx_err(
                   "%s: tensor '%s': rows of %lld values cannot be stored as %s (blocks of %lld)",
                   g->path, t->name, (long long)K, wt->name, (long long)wt->block),
               NULL;
    int64_t i = t - g->t;
    if (!g->recast) {
        g->recast = sx_calloc((size_t)g->n_t, sizeof *g->recast, "gguf converted tensors");
        g->recast_type = sx_calloc((size_t)g->n_t, sizeof *g->recast_type, "gguf converted tensors");
        if (!g->recast || !g->recast_type) return NULL;
    }
    if (g->recast[i] && g->recast_type[i] == type) return g->recast[i];
    void *out = sx_malloc(sx_type_nbytes(type, t->nelem), t->name);
    if (!out) return NULL;
    recast_job J = {t, type, K, out, -1, 0};
    int64_t chunk = wt->block > 1 ? 16 : 256;
    sx_parallel_for(rows, chunk, recast_task, &J);
    if (J.bad_row >= 0) {
        free(out);
        return sx_err("%s: tensor '%s': row %lld %s", g->path, t->name, (long long)J.bad_row,
                      J.bad_kind == 1   ? "has a NaN or Inf value"
                      : J.bad_kind == 2 ? "has values too large for the f16 scales of the type"
                                        : "could not be converted (out of memory)"),
               NULL;
    }
    free(g->recast[i]);
    g->recast[i] = out;
    g->recast_type[i] = type;
    /* drop the source's mapped pages (whole pages inside the tensor only) */
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)t->data + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg;
    uintptr_t hi = ((uintptr_t)t->data + t->nbytes) / (uintptr_t)pg * (uintptr_t)pg;
    if (pg > 0 && hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
    return out;
}

/* Buffers the kernel layer attaches to a tensor (its packed form), owned
 * by g like the converted copies. */
void *sx_gguf_tensor_buffer(sx_gguf *g, const sx_tensor *t, int slot, size_t bytes, int *created) {
    if (created) *created = 0;
    if (!g || !t || t < g->t || t >= g->t + g->n_t || slot < 0 || slot >= SX_GGUF_SLOTS || !bytes)
        return sx_err("sx_gguf_tensor_buffer: bad arguments"), NULL;
    if (!g->packed) {
        g->packed = sx_calloc((size_t)(SX_GGUF_SLOTS * g->n_t), sizeof *g->packed, "gguf packed tensors");
        g->packed_bytes = sx_calloc((size_t)(SX_GGUF_SLOTS * g->n_t), sizeof *g->packed_bytes,
                                    "gguf packed tensors");
        if (!g->packed || !g->packed_bytes) {
            free(g->packed);
            free(g->packed_bytes);
            g->packed = NULL;
            g->packed_bytes = NULL;
            return NULL;
        }
    }
    int64_t i = (int64_t)slot * g->n_t + (t - g->t);
    if (g->packed[i] && g->packed_bytes[i] == bytes) return g->packed[i];
    void *p = NULL;
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded < bytes || posix_memalign(&p, 64, rounded) != 0)
        return sx_err("%s: out of memory for %zu bytes packing tensor '%s'", g->path, bytes, t->name),
               NULL;
    memset(p, 0, rounded);
    free(g->packed[i]);
    g->packed[i] = p;
    g->packed_bytes[i] = bytes;
    if (created) *created = 1;
    return p;
}

void sx_gguf_tensor_release(sx_gguf *g, const sx_tensor *t) {
    if (!g || !t || t < g->t || t >= g->t + g->n_t || !g->map) return;
    const uint8_t *p = t->data;
    if (p < g->map || p + t->nbytes > g->map + g->size) return; /* not in the mapping */
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t b = ((uintptr_t)p + pg - 1) / pg * pg, e = ((uintptr_t)p + t->nbytes) / pg * pg;
    if (e > b) madvise((void *)b, e - b, MADV_DONTNEED);
}
