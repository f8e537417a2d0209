/* tokenizer.c - transformers 4.30.2 slow LlamaTokenizer, token for token.
 *
 * encode(text, add_special_tokens) in 4.30.2 is
 *   1. PreTrainedTokenizer.tokenize: split the text on the "no-split" tokens
 *      (added tokens + special tokens) with transformers' Trie.split, whose
 *      exact matching procedure is ported below (trie_split);
 *   2. strip whitespace (str.isspace) from the text pieces touching a
 *      no-split token: both sides for plain added tokens, per the AddedToken
 *      lstrip/rstrip flags for special tokens (the converter resolved these);
 *   3. every remaining text piece goes through SentencePiece on its own,
 *      dummy prefix "▁" included ("</img>Describe" -> </img>, ▁Describe);
 *   4. bos/eos when add_special_tokens.
 * SentencePiece encode (sentencepiece 0.1.99, identity normalizer):
 *   normalize: empty input -> nothing; else "▁" + text with ' ' -> "▁", each
 *   invalid UTF-8 byte -> U+FFFD (one byte consumed);
 *   BPE: symbols = UTF-8 characters; repeatedly merge the adjacent pair whose
 *   concatenation is a NORMAL piece with the highest score (ties: leftmost),
 *   with a priority queue of candidate pairs and a linked list of symbols
 *   (stale queue entries are recognised by their length, as bpe_model.cc
 *   does) -> O(n log n);
 *   a final symbol that is not a piece is unknown: byte fallback emits its
 *   UTF-8 bytes as <0xXX> pieces (without byte fallback, runs of unknown
 *   symbols become one unk id).
 * decode(ids, skip_special_tokens) in 4.30.2 (_decode + Llama's
 *   convert_tokens_to_string): drop all_special_ids when skipping; added
 *   tokens are their own chunks; the runs between them go through Llama's
 *   convert_tokens_to_string, where special tokens (bos/eos/unk/pad) are
 *   pasted literally (with a " " before the preceding text unless at the run
 *   start or after another special) and the other pieces go through
 *   SentencePiece decode (▁ -> ' ', the leading ▁ of the first piece dropped,
 *   byte pieces assembled, each invalid byte -> U+FFFD, unknown ->
 *   unk_surface); chunks are joined with single spaces;
 *   clean_up_tokenization_spaces if the config says so. */
#include "tokenizer.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sx_core.h"

enum { PT_NORMAL = 1, PT_UNKNOWN = 2, PT_CONTROL = 3, PT_USER = 4, PT_UNUSED = 5, PT_BYTE = 6 };

/* open-addressing hash map: byte string -> int. A slot holds the key's
 * index + 1 (low 32 bits, 0 = empty) and 32 bits of its hash (high bits), so
 * most misses never touch the strings. */
typedef struct {
    uint64_t *slot;
    size_t cap; /* power of two */
} hmap;

typedef struct {
    uint32_t cp;
    int child, sibling; /* first child, next sibling (-1 = none) */
    int end;            /* 1 if a no-split token ends here */
} tnode;

struct sx_tokenizer {
    int n_vocab, n_base;
    char *blob;       /* all token strings */
    size_t *tok_off;  /* [n_vocab+1] offsets into blob */
    float *score;     /* [n_vocab] */
    unsigned char *type;    /* [n_vocab] piece type */
    unsigned char *special; /* [n_vocab] all_special_ids */
    int bos, eos, unk, pad;
    int add_bos, add_eos, add_dummy_prefix, byte_fallback, clean_up;
    char *unk_surface;
    size_t unk_surface_len;
    int byte_id[256];
    hmap base_map; /* base pieces (all types) -> id */
    hmap bpe_map;  /* NORMAL pieces -> id (merge candidates) */
    uint64_t *pairs; /* set of adjacent code-point pairs inside NORMAL pieces */
    size_t pairs_cap;  /* power of two; empty slot = 0 */
    /* no-split tokens */
    int n_ns;
    char *ns_blob;
    size_t *ns_off; /* [n_ns+1] */
    int *ns_id;
    unsigned char *ns_lstrip, *ns_rstrip;
    hmap ns_map; /* string -> index */
    tnode *trie;
    int n_trie;
};

/* ---------------------------------------------------------------- helpers */
static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

typedef struct {
    const char *blob;
    const size_t *off;
} keyset;

static int hmap_build(hmap *m, keyset ks, const int *which, int n_which) {
    size_t cap = 16;
    while (cap < 4 * (size_t)n_which + 4) cap <<= 1;
    m->slot = sx_calloc(cap, sizeof *m->slot, "tokenizer hash map");
    if (!m->slot) return -1;
    m->cap = cap;
    for (int w = 0; w < n_which; w++) {
        int k = which[w];
        const char *s = ks.blob + ks.off[k];
        size_t len = ks.off[k + 1] - ks.off[k];
        uint64_t h = fnv1a(s, len), tag = h >> 32 << 32;
        size_t i = (size_t)h & (cap - 1);
        int dup = 0;
        for (; m->slot[i]; i = (i + 1) & (cap - 1)) {
            int o = (int)(uint32_t)m->slot[i] - 1;
            if ((m->slot[i] & ~0xffffffffull) == tag && ks.off[o + 1] - ks.off[o] == len &&
                !memcmp(ks.blob + ks.off[o], s, len)) {
                dup = 1; /* first occurrence wins */
                break;
            }
        }
        if (!dup) m->slot[i] = tag | ((uint64_t)k + 1);
    }
    return 0;
}

static int hmap_get(const hmap *m, keyset ks, const char *s, size_t len) {
    if (!m->slot) return -1;
    uint64_t h = fnv1a(s, len), tag = h >> 32 << 32;
    for (size_t i = (size_t)h & (m->cap - 1); m->slot[i]; i = (i + 1) & (m->cap - 1)) {
        if ((m->slot[i] & ~0xffffffffull) != tag) continue;
        int o = (int)(uint32_t)m->slot[i] - 1;
        if (ks.off[o + 1] - ks.off[o] == len && !memcmp(ks.blob + ks.off[o], s, len)) return o;
    }
    return -1;
}

/* sentencepiece util.cc DecodeUTF8/IsValidDecodeUTF8: length (1..4) of the
 * valid character at s, 0 if the byte at s is malformed. */
static int utf8_len(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (n >= 2 && (c & 0xE0) == 0xC0) {
        uint32_t cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        if ((s[1] & 0xC0) == 0x80 && cp >= 0x80) return 2;
    } else if (n >= 3 && (c & 0xF0) == 0xE0) {
        uint32_t cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        if ((s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && cp >= 0x800 &&
            !(cp >= 0xD800 && cp < 0xE000))
            return 3;
    } else if (n >= 4 && (c & 0xF8) == 0xF0) {
        uint32_t cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) |
                      (s[3] & 0x3Fu);
        if ((s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 &&
            cp >= 0x10000 && cp <= 0x10FFFF)
            return 4;
    }
    return 0;
}

static uint32_t utf8_cp(const unsigned char *s, int len) {
    switch (len) {
    case 1: return s[0];
    case 2: return ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    case 3: return ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    default:
        return ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) |
               (s[3] & 0x3Fu);
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Adjacent-character pairs. A merge joins two symbols into a NORMAL piece,
 * so it can never span a position whose two characters do not occur next to
 * each other in any NORMAL piece: BPE runs independently (and with a small,
 * cache-friendly queue) on the stretches between such positions, with the
 * same result as one run over the whole text. (Llama-2: 3279 pairs.) */
static uint64_t pair_key(uint32_t a, uint32_t b) { return ((uint64_t)a << 32 | b) + 1; }

static size_t pair_slot(uint64_t k, size_t cap) {
    uint64_t h = k * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

static int pairs_has(const sx_tokenizer *t, uint32_t a, uint32_t b) {
    uint64_t k = pair_key(a, b);
    for (size_t i = pair_slot(k, t->pairs_cap);; i = (i + 1) & (t->pairs_cap - 1)) {
        if (t->pairs[i] == k) return 1;
        if (!t->pairs[i]) return 0;
    }
}

static int pairs_build(sx_tokenizer *t) {
    size_t n = 0;
    for (int id = 0; id < t->n_base; id++)
        if (t->type[id] == PT_NORMAL) n += t->tok_off[id + 1] - t->tok_off[id];
    size_t cap = 64;
    while (cap < 2 * n) cap <<= 1;
    t->pairs = sx_calloc(cap, sizeof *t->pairs, "tokenizer pair set");
    if (!t->pairs) return -1;
    t->pairs_cap = cap;
    for (int id = 0; id < t->n_base; id++) {
        if (t->type[id] != PT_NORMAL) continue;
        const unsigned char *s = (const unsigned char *)t->blob + t->tok_off[id];
        size_t len = t->tok_off[id + 1] - t->tok_off[id];
        uint32_t prev = 0;
        int have = 0;
        for (size_t i = 0; i < len;) {
            int l = utf8_len(s + i, len - i);
            if (!l) break; /* a piece that is not UTF-8 can never be formed from valid text */
            uint32_t c = utf8_cp(s + i, l);
            if (have) {
                uint64_t k = pair_key(prev, c);
                size_t j = pair_slot(k, cap);
                while (t->pairs[j] && t->pairs[j] != k) j = (j + 1) & (cap - 1);
                t->pairs[j] = k;
            }
            prev = c;
            have = 1;
            i += (size_t)l;
        }
    }
    return 0;
}

/* Python str.isspace() (what str.strip() removes). */
static int py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* growable byte / int buffers */
typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static int sb_reserve(sbuf *b, size_t n) { /* room for n more bytes + NUL */
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (b->n + n + 1 > cap) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return sx_err("tokenizer: out of memory (%zu bytes)", cap);
        b->p = p;
        b->cap = cap;
    }
    return 0;
}

static int sb_put(sbuf *b, const void *s, size_t n) {
    if (sb_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

typedef struct {
    int *p;
    size_t n, cap;
} ibuf;

static int ib_put(ibuf *b, int v) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        int *p = realloc(b->p, cap * sizeof *p);
        if (!p) return sx_err("tokenizer: out of memory (%zu ids)", cap);
        b->p = p;
        b->cap = cap;
    }
    b->p[b->n++] = v;
    return 0;
}

static const char kSpace[] = "\xe2\x96\x81"; /* U+2581, SentencePiece's whitespace */

/* ------------------------------------------------------------------- load */
void sx_tokenizer_free(sx_tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->tok_off);
    free(t->score);
    free(t->type);
    free(t->special);
    free(t->unk_surface);
    free(t->base_map.slot);
    free(t->bpe_map.slot);
    free(t->pairs);
    free(t->ns_blob);
    free(t->ns_off);
    free(t->ns_id);
    free(t->ns_lstrip);
    free(t->ns_rstrip);
    free(t->ns_map.slot);
    free(t->trie);
    free(t);
}

static int trie_child(const sx_tokenizer *t, int node, uint32_t cp) {
    for (int c = t->trie[node].child; c >= 0; c = t->trie[c].sibling)
        if (t->trie[c].cp == cp) return c;
    return -1;
}

static int trie_add(sx_tokenizer *t, const char *s, size_t len, int *cap) {
    int node = 0;
    size_t i = 0;
    while (i < len) {
        int l = utf8_len((const unsigned char *)s + i, len - i);
        if (!l) return sx_err("no-split token '%.*s' is not valid UTF-8", (int)len, s);
        uint32_t cp = utf8_cp((const unsigned char *)s + i, l);
        i += (size_t)l;
        int c = trie_child(t, node, cp);
        if (c < 0) {
            if (t->n_trie == *cap) {
                int nc = *cap * 2;
                tnode *p = realloc(t->trie, (size_t)nc * sizeof *p);
                if (!p) return sx_err("tokenizer: out of memory (trie)");
                t->trie = p;
                *cap = nc;
            }
            c = t->n_trie++;
            t->trie[c] = (tnode){cp, -1, t->trie[node].child, 0};
            t->trie[node].child = c;
        }
        node = c;
    }
    if (node) t->trie[node].end = 1; /* Trie.add ignores the empty string */
    return 0;
}

static int meta_bool(const sx_gguf *g, const char *key, int *out) {
    int64_t v;
    if (sx_meta_int(g, key, &v)) return -1;
    *out = v != 0;
    return 0;
}

static int meta_id(const sx_gguf *g, const char *key, int n_vocab, int *out) {
    int64_t v;
    if (sx_meta_int(g, key, &v)) return -1;
    if (v < -1 || v >= n_vocab)
        return sx_err("%s: metadata '%s' = %lld is not a token id (vocab %d)", sx_gguf_path(g), key,
                      (long long)v, n_vocab);
    *out = (int)v;
    return 0;
}

/* string array -> blob + offsets */
static int load_strs(const sx_gguf *g, const char *key, uint64_t n, char **blob, size_t **off) {
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        size_t len;
        if (sx_meta_arr_str(g, key, i, NULL, &len)) return -1;
        total += len;
    }
    *blob = sx_malloc(total + 1, "token strings");
    *off = sx_malloc((n + 1) * sizeof **off, "token offsets");
    if (!*blob || !*off) return -1;
    size_t o = 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        if (sx_meta_arr_str(g, key, i, &s, &len)) return -1;
        (*off)[i] = o;
        if (len) memcpy(*blob + o, s, len);
        o += len;
    }
    (*off)[n] = o;
    (*blob)[o] = 0;
    return 0;
}

static int arr_n(const sx_gguf *g, const char *key, uint64_t want, uint64_t *n) {
    int et;
    if (sx_meta_arr(g, key, &et, n)) return -1;
    if (want != UINT64_MAX && *n != want)
        return sx_err("%s: metadata '%s' has %llu entries, expected %llu", sx_gguf_path(g), key,
                      (unsigned long long)*n, (unsigned long long)want);
    return 0;
}

static int from_gguf(const sx_gguf *g, sx_tokenizer *t) {
    const char *path = sx_gguf_path(g);
    const char *model;
    size_t mlen;
    if (sx_meta_str(g, "tokenizer.ggml.model", &model, &mlen)) return -1;
    if (mlen != 5 || memcmp(model, "llama", 5))
        return sx_err("%s: tokenizer.ggml.model is '%.*s', expected 'llama' (SentencePiece BPE)", path,
                      (int)mlen, model);
    uint64_t n;
    if (arr_n(g, "tokenizer.ggml.tokens", UINT64_MAX, &n)) return -1;
    if (n < 1 || n > 0x7fffffff) return sx_err("%s: bad vocabulary size %llu", path, (unsigned long long)n);
    t->n_vocab = (int)n;
    int64_t nb;
    if (sx_meta_int(g, "seedx.tokenizer.n_base", &nb)) return -1;
    if (nb < 1 || nb > (int64_t)n)
        return sx_err("%s: seedx.tokenizer.n_base = %lld, vocabulary has %llu tokens", path,
                      (long long)nb, (unsigned long long)n);
    t->n_base = (int)nb;
    if (load_strs(g, "tokenizer.ggml.tokens", n, &t->blob, &t->tok_off)) return -1;
    uint64_t m;
    if (arr_n(g, "tokenizer.ggml.scores", n, &m) || arr_n(g, "tokenizer.ggml.token_type", n, &m))
        return -1;
    t->score = sx_malloc(n * sizeof *t->score, "token scores");
    t->type = sx_malloc(n, "token types");
    t->special = sx_calloc(n, 1, "special flags");
    if (!t->score || !t->type || !t->special) return -1;
    int unk_type_id = -1;
    for (uint64_t i = 0; i < n; i++) {
        double s;
        int64_t ty;
        if (sx_meta_arr_float(g, "tokenizer.ggml.scores", i, &s) ||
            sx_meta_arr_int(g, "tokenizer.ggml.token_type", i, &ty))
            return -1;
        t->score[i] = (float)s;
        if (ty < PT_NORMAL || ty > PT_BYTE)
            return sx_err("%s: token %llu has unknown type %lld", path, (unsigned long long)i,
                          (long long)ty);
        if ((int64_t)i < nb && (ty == PT_USER || ty == PT_UNUSED))
            return sx_err("%s: piece %llu has type %s, which this tokenizer does not support", path,
                          (unsigned long long)i, ty == PT_USER ? "user-defined" : "unused");
        if ((int64_t)i < nb && t->tok_off[i + 1] == t->tok_off[i])
            return sx_err("%s: piece %llu is empty", path, (unsigned long long)i);
        if (ty == PT_UNKNOWN && unk_type_id < 0) unk_type_id = (int)i;
        if (ty == PT_BYTE) { /* "<0xXX>": sp_decode reads the byte from the name */
            const char *s = t->blob + t->tok_off[i];
            if (t->tok_off[i + 1] - t->tok_off[i] != 6 || memcmp(s, "<0x", 3) || s[5] != '>' ||
                hexval(s[3]) < 0 || hexval(s[4]) < 0)
                return sx_err("%s: byte piece %llu is '%.*s', expected <0xXX>", path,
                              (unsigned long long)i, (int)(t->tok_off[i + 1] - t->tok_off[i]), s);
        }
        t->type[i] = (unsigned char)ty;
    }
    if (unk_type_id < 0 || unk_type_id >= t->n_base)
        return sx_err("%s: the vocabulary has no unknown piece", path);
    if (meta_id(g, "seedx.tokenizer.bos_id", t->n_vocab, &t->bos) ||
        meta_id(g, "seedx.tokenizer.eos_id", t->n_vocab, &t->eos) ||
        meta_id(g, "seedx.tokenizer.unk_id", t->n_vocab, &t->unk) ||
        meta_id(g, "seedx.tokenizer.pad_id", t->n_vocab, &t->pad) ||
        meta_bool(g, "seedx.tokenizer.add_bos", &t->add_bos) ||
        meta_bool(g, "seedx.tokenizer.add_eos", &t->add_eos) ||
        meta_bool(g, "seedx.tokenizer.add_dummy_prefix", &t->add_dummy_prefix) ||
        meta_bool(g, "seedx.tokenizer.byte_fallback", &t->byte_fallback) ||
        meta_bool(g, "seedx.tokenizer.clean_up_tokenization_spaces", &t->clean_up))
        return -1;
    if ((t->add_bos && t->bos < 0) || (t->add_eos && t->eos < 0))
        return sx_err("%s: add_bos/add_eos set but the tokenizer has no bos/eos token", path);
    const char *us;
    size_t ul;
    if (sx_meta_str(g, "seedx.tokenizer.unk_surface", &us, &ul)) return -1;
    t->unk_surface = sx_malloc(ul + 1, "unk surface");
    if (!t->unk_surface) return -1;
    memcpy(t->unk_surface, us, ul);
    t->unk_surface[ul] = 0;
    t->unk_surface_len = ul;

    /* maps */
    int *which = sx_malloc((size_t)t->n_base * sizeof *which, "tokenizer index");
    if (!which) return -1;
    keyset ks = {t->blob, t->tok_off};
    for (int i = 0; i < t->n_base; i++) which[i] = i;
    int rc = hmap_build(&t->base_map, ks, which, t->n_base);
    int nw = 0;
    for (int i = 0; i < t->n_base; i++)
        if (t->type[i] == PT_NORMAL) which[nw++] = i;
    if (!rc) rc = hmap_build(&t->bpe_map, ks, which, nw);
    free(which);
    if (rc || pairs_build(t)) return -1;
    /* SentencePiece's PieceToId: unknown strings map to the unknown piece */
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        int id = hmap_get(&t->base_map, ks, name, 6);
        t->byte_id[b] = id >= 0 ? id : unk_type_id;
    }
    t->unk = t->unk >= 0 ? t->unk : unk_type_id;

    /* special ids */
    uint64_t ns;
    if (arr_n(g, "seedx.tokenizer.special_ids", UINT64_MAX, &ns)) return -1;
    for (uint64_t i = 0; i < ns; i++) {
        int64_t v;
        if (sx_meta_arr_int(g, "seedx.tokenizer.special_ids", i, &v)) return -1;
        if (v < 0 || v >= (int64_t)n)
            return sx_err("%s: seedx.tokenizer.special_ids[%llu] = %lld is out of range", path,
                          (unsigned long long)i, (long long)v);
        t->special[v] = 1;
    }

    /* no-split tokens + trie */
    uint64_t nn;
    if (arr_n(g, "seedx.tokenizer.no_split", UINT64_MAX, &nn) ||
        arr_n(g, "seedx.tokenizer.no_split_ids", nn, &m) ||
        arr_n(g, "seedx.tokenizer.no_split_lstrip", nn, &m) ||
        arr_n(g, "seedx.tokenizer.no_split_rstrip", nn, &m))
        return -1;
    if (nn > 0x7ffffff) return sx_err("%s: too many no-split tokens", path);
    t->n_ns = (int)nn;
    if (load_strs(g, "seedx.tokenizer.no_split", nn, &t->ns_blob, &t->ns_off)) return -1;
    t->ns_id = sx_malloc((nn + 1) * sizeof *t->ns_id, "no-split ids");
    t->ns_lstrip = sx_malloc(nn + 1, "no-split flags");
    t->ns_rstrip = sx_malloc(nn + 1, "no-split flags");
    int tcap = 256;
    t->trie = sx_malloc((size_t)tcap * sizeof *t->trie, "trie");
    which = sx_malloc((nn + 1) * sizeof *which, "tokenizer index");
    if (!t->ns_id || !t->ns_lstrip || !t->ns_rstrip || !t->trie || !which) {
        free(which);
        return -1;
    }
    t->trie[0] = (tnode){0, -1, -1, 0};
    t->n_trie = 1;
    for (uint64_t i = 0; i < nn; i++) {
        int64_t id, ls, rs;
        if (sx_meta_arr_int(g, "seedx.tokenizer.no_split_ids", i, &id) ||
            sx_meta_arr_int(g, "seedx.tokenizer.no_split_lstrip", i, &ls) ||
            sx_meta_arr_int(g, "seedx.tokenizer.no_split_rstrip", i, &rs)) {
            free(which);
            return -1;
        }
        if (id < 0 || id >= (int64_t)n) {
            free(which);
            return sx_err("%s: seedx.tokenizer.no_split_ids[%llu] = %lld is out of range", path,
                          (unsigned long long)i, (long long)id);
        }
        t->ns_id[i] = (int)id;
        t->ns_lstrip[i] = ls != 0;
        t->ns_rstrip[i] = rs != 0;
        which[i] = (int)i;
        if (trie_add(t, t->ns_blob + t->ns_off[i], t->ns_off[i + 1] - t->ns_off[i], &tcap)) {
            free(which);
            return sx_err_prefix("%s: ", path);
        }
    }
    keyset nks = {t->ns_blob, t->ns_off};
    rc = hmap_build(&t->ns_map, nks, which, (int)nn);
    free(which);
    return rc;
}

int sx_tokenizer_from_gguf(const sx_gguf *g, sx_tokenizer **out) {
    if (!g || !out) return sx_err("sx_tokenizer_from_gguf: NULL argument");
    *out = NULL;
    sx_tokenizer *t = sx_calloc(1, sizeof *t, "tokenizer");
    if (!t) return -1;
    if (from_gguf(g, t)) {
        sx_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int sx_tokenizer_open(const char *path, sx_tokenizer **out) {
    if (!path || !out) return sx_err("sx_tokenizer_open: NULL argument");
    *out = NULL;
    struct stat st;
    char buf[4096];
    const char *file = path;
    if (stat(path, &st) != 0) return sx_err("%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        int k = snprintf(buf, sizeof buf, "%s/tokenizer.gguf", path);
        if (k < 0 || (size_t)k >= sizeof buf) return sx_err("%s: path too long", path);
        if (stat(buf, &st) != 0)
            return sx_err("%s: model directory has no tokenizer.gguf (%s)", path, strerror(errno));
        file = buf;
    }
    sx_gguf *g;
    if (sx_gguf_open(file, &g)) return -1;
    int rc = sx_tokenizer_from_gguf(g, out);
    sx_gguf_close(g);
    return rc;
}

int sx_tokenizer_n_vocab(const sx_tokenizer *t) { return t ? t->n_vocab : 0; }
int sx_tokenizer_n_base(const sx_tokenizer *t) { return t ? t->n_base : 0; }
int sx_tokenizer_bos(const sx_tokenizer *t) { return t ? t->bos : -1; }
int sx_tokenizer_eos(const sx_tokenizer *t) { return t ? t->eos : -1; }
int sx_tokenizer_unk(const sx_tokenizer *t) { return t ? t->unk : -1; }
int sx_tokenizer_pad(const sx_tokenizer *t) { return t ? t->pad : -1; }
void sx_tokenizer_set_clean_up(sx_tokenizer *t, int on) {
    if (t) t->clean_up = on != 0;
}

int sx_token_id(const sx_tokenizer *t, const char *s) {
    if (!t || !s) return -1;
    size_t len = strlen(s);
    keyset ks = {t->blob, t->tok_off};
    for (int i = t->n_base; i < t->n_vocab; i++) /* added_tokens_encoder first */
        if (t->tok_off[i + 1] - t->tok_off[i] == len && !memcmp(t->blob + t->tok_off[i], s, len))
            return i;
    return hmap_get(&t->base_map, ks, s, len);
}

const char *sx_token_str(const sx_tokenizer *t, int id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->tok_off[id + 1] - t->tok_off[id];
    return t->blob + t->tok_off[id];
}

int sx_token_is_special(const sx_tokenizer *t, int id) {
    return t && id >= 0 && id < t->n_vocab && t->special[id];
}

/* ------------------------------------------------------ SentencePiece BPE */
typedef struct {
    float score;
    int left, right;
    size_t size;
} bpair;

/* max-heap order of bpe_model.cc's SymbolPairComparator */
static int pair_before(const bpair *a, const bpair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct {
    bpair *h;
    size_t n, cap;
} bheap;

static int heap_push(bheap *q, bpair p) {
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 256;
        bpair *h = realloc(q->h, cap * sizeof *h);
        if (!h) return sx_err("tokenizer: out of memory (merge queue)");
        q->h = h;
        q->cap = cap;
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!pair_before(&p, &q->h[par])) break;
        q->h[i] = q->h[par];
        i = par;
    }
    q->h[i] = p;
    return 0;
}

static bpair heap_pop(bheap *q) {
    bpair top = q->h[0], last = q->h[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && pair_before(&q->h[c + 1], &q->h[c])) c++;
        if (!pair_before(&q->h[c], &last)) break;
        q->h[i] = q->h[c];
        i = c;
    }
    if (q->n) q->h[i] = last;
    return top;
}

typedef struct {
    size_t start, len; /* in the normalized buffer; len 0 = merged away */
    int prev, next;
    uint32_t cp; /* the initial character */
} bsym;

typedef struct {
    sbuf norm;
    bsym *sym;
    size_t sym_cap;
    bheap q;
} bpe_work;

static int maybe_add_pair(const sx_tokenizer *t, bpe_work *w, int left, int right) {
    if (left < 0 || right < 0) return 0;
    keyset ks = {t->blob, t->tok_off};
    size_t len = w->sym[left].len + w->sym[right].len;
    int id = hmap_get(&t->bpe_map, ks, w->norm.p + w->sym[left].start, len);
    if (id < 0) return 0;
    return heap_push(&w->q, (bpair){t->score[id], left, right, len});
}

/* Runs the queued merges to completion (bpe_model.cc main loop). */
static int bpe_merge(const sx_tokenizer *t, bpe_work *w) {
    while (w->q.n) {
        bpair top = heap_pop(&w->q);
        bsym *L = &w->sym[top.left], *R = &w->sym[top.right];
        if (L->len == 0 || R->len == 0 || L->len + R->len != top.size) continue; /* stale */
        L->len += R->len;
        L->next = R->next;
        if (R->next >= 0) w->sym[R->next].prev = top.left;
        R->len = 0;
        if (maybe_add_pair(t, w, L->prev, top.left) || maybe_add_pair(t, w, top.left, L->next))
            return -1;
    }
    return 0;
}

/* SentencePiece encode of one text piece s[0..n) (valid UTF-8). */
static int sp_encode(const sx_tokenizer *t, bpe_work *w, const char *s, size_t n, ibuf *out) {
    if (n == 0) return 0; /* Normalizer: empty input stays empty (no dummy prefix) */
    w->norm.n = 0;
    if (n > SIZE_MAX / 4 - 4) return sx_err("tokenizer: text too long");
    if (sb_reserve(&w->norm, 3 * n + 3)) return -1;
    char *q = w->norm.p;
    if (t->add_dummy_prefix) {
        memcpy(q, kSpace, 3);
        q += 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(q, kSpace, 3);
            q += 3;
        } else {
            *q++ = s[i];
        }
    }
    w->norm.n = (size_t)(q - w->norm.p);
    const unsigned char *p = (const unsigned char *)w->norm.p;
    size_t len = w->norm.n;
    if (len > (size_t)0x7fffffff) return sx_err("tokenizer: text piece of %zu bytes is too long", len);
    if (len > w->sym_cap) {
        bsym *ns = realloc(w->sym, len * sizeof *ns);
        if (!ns) return sx_err("tokenizer: out of memory (%zu symbols)", len);
        w->sym = ns;
        w->sym_cap = len;
    }
    /* initial symbols: one per character */
    int ns = 0;
    for (size_t i = 0; i < len;) {
        int l = utf8_len(p + i, len - i);
        if (!l) l = 1; /* cannot happen: the input was made valid */
        w->sym[ns] = (bsym){i, (size_t)l, ns - 1, -1, utf8_cp(p + i, l)};
        if (ns > 0) w->sym[ns - 1].next = ns;
        ns++;
        i += (size_t)l;
    }
    /* merges, one stretch [c0, c1) between unmergeable positions at a time */
    for (int c0 = 0; c0 < ns;) {
        int c1 = c0 + 1;
        while (c1 < ns && pairs_has(t, w->sym[c1 - 1].cp, w->sym[c1].cp)) c1++;
        w->q.n = 0;
        for (int i = c0 + 1; i < c1; i++)
            if (maybe_add_pair(t, w, i - 1, i)) return -1;
        if (bpe_merge(t, w)) return -1;
        c0 = c1;
    }
    /* ids; unknown symbols -> byte pieces (or one unk per run of unknowns) */
    keyset ks = {t->blob, t->tok_off};
    int prev_unk = 0;
    for (int i = 0; i >= 0 && ns > 0; i = w->sym[i].next) {
        const char *piece = w->norm.p + w->sym[i].start;
        size_t pl = w->sym[i].len;
        int id = hmap_get(&t->base_map, ks, piece, pl);
        int is_unk = id < 0 || t->type[id] == PT_UNKNOWN;
        if (is_unk && t->byte_fallback) {
            for (size_t k = 0; k < pl; k++)
                if (ib_put(out, t->byte_id[(unsigned char)piece[k]])) return -1;
        } else {
            if (id < 0) id = t->unk;
            if (!(is_unk && prev_unk) && ib_put(out, id)) return -1;
        }
        prev_unk = is_unk;
    }
    return 0;
}

/* ------------------------------------------------ transformers' Trie.split */
typedef struct {
    size_t start;
    int node;
    int removed;
} tstate;

/* Port of tokenization_utils.Trie.split over code points cp[0..n): appends
 * the cut offsets (code-point indices, in Python's order, final len(text)
 * included) as a malloc'd array *offs. */
static int trie_split(const sx_tokenizer *t, const uint32_t *cp, size_t n, size_t **offs,
                      size_t *n_offs) {
    size_t cap = 16, no = 0;
    size_t *off = malloc(cap * sizeof *off);
    tstate *st = NULL;
    size_t nst = 0, stcap = 0;
    if (!off) return sx_err("tokenizer: out of memory");
#define PUSH_OFF(v)                                                                     \
    do {                                                                                \
        if (no == cap) {                                                                \
            size_t c2 = cap * 2;                                                        \
            size_t *o2 = realloc(off, c2 * sizeof *o2);                                 \
            if (!o2) goto oom;                                                          \
            off = o2;                                                                   \
            cap = c2;                                                                   \
        }                                                                               \
        off[no++] = (v);                                                                \
    } while (0)
    PUSH_OFF(0);
    size_t skip = 0;
    for (size_t cur = 0; cur < n; cur++) {
        if (skip && cur < skip) continue;
        uint32_t ch = cp[cur];
        int reset = 0;
        for (size_t k = 0; k < nst; k++) {
            if (t->trie[st[k].node].end) {
                size_t start = st[k].start, end = 0;
                for (size_t j = 0; j < nst; j++) {
                    size_t ls = st[j].start;
                    int lnode = st[j].node;
                    size_t la;
                    if (ls > start) break;
                    if (ls < start) {
                        la = cur + 1;
                        end = cur + 1;
                    } else {
                        la = cur;
                        end = cur;
                    }
                    if (t->trie[lnode].end) {
                        start = ls;
                        end = la;
                        skip = la;
                    }
                    while (la < n) {
                        int c = trie_child(t, lnode, cp[la]);
                        if (c < 0) break;
                        lnode = c;
                        la++;
                        if (t->trie[lnode].end) {
                            start = ls;
                            end = la;
                            skip = la;
                        }
                        if (la == n) break;
                    }
                }
                PUSH_OFF(start);
                PUSH_OFF(end);
                reset = 1;
                break;
            } else {
                int c = trie_child(t, st[k].node, ch);
                if (c >= 0)
                    st[k].node = c;
                else
                    st[k].removed = 1;
            }
        }
        if (reset) {
            nst = 0;
        } else {
            size_t m = 0;
            for (size_t k = 0; k < nst; k++)
                if (!st[k].removed) st[m++] = st[k];
            nst = m;
        }
        if (cur >= skip) {
            int c = trie_child(t, 0, ch);
            if (c >= 0) {
                if (nst == stcap) {
                    size_t c2 = stcap ? 2 * stcap : 16;
                    tstate *s2 = realloc(st, c2 * sizeof *s2);
                    if (!s2) goto oom;
                    st = s2;
                    stcap = c2;
                }
                st[nst++] = (tstate){cur, c, 0};
            }
        }
    }
    for (size_t k = 0; k < nst; k++) {
        if (t->trie[st[k].node].end) {
            PUSH_OFF(st[k].start);
            PUSH_OFF(n);
            break;
        }
    }
    PUSH_OFF(n);
#undef PUSH_OFF
    free(st);
    *offs = off;
    *n_offs = no;
    return 0;
oom:
    free(st);
    free(off);
    return sx_err("tokenizer: out of memory (trie split)");
}

/* ----------------------------------------------------------------- encode */
typedef struct {
    size_t a, b; /* code-point range, shrunk by stripping */
} seg;

int sx_tokenize(const sx_tokenizer *t, const char *text, size_t len, int add_special, int **ids,
                size_t *n_ids) {
    if (!t || !ids || !n_ids || (!text && len)) return sx_err("sx_tokenize: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    int rc = -1;
    sbuf clean = {0};   /* valid UTF-8 copy of text */
    uint32_t *cp = NULL;
    size_t *cpo = NULL; /* byte offset of each code point in clean, [ncp+1] */
    size_t *off = NULL, n_off = 0;
    seg *sg = NULL;
    ibuf out = {0};
    bpe_work w = {0};
    /* 1. invalid UTF-8 -> U+FFFD per byte (SentencePiece's normalizer rule) */
    if (sb_put(&clean, "", 0)) goto done;
    size_t ncp = 0;
    for (size_t i = 0; i < len;) {
        int l = utf8_len((const unsigned char *)text + i, len - i);
        if (l) {
            if (sb_put(&clean, text + i, (size_t)l)) goto done;
            i += (size_t)l;
        } else {
            if (sb_put(&clean, "\xef\xbf\xbd", 3)) goto done;
            i++;
        }
        ncp++;
    }
    cp = sx_malloc((ncp + 1) * sizeof *cp, "code points");
    cpo = sx_malloc((ncp + 1) * sizeof *cpo, "code point offsets");
    if (!cp || !cpo) goto done;
    {
        size_t k = 0;
        for (size_t i = 0; i < clean.n;) {
            int l = utf8_len((const unsigned char *)clean.p + i, clean.n - i);
            cpo[k] = i;
            cp[k++] = utf8_cp((const unsigned char *)clean.p + i, l);
            i += (size_t)l;
        }
        cpo[ncp] = clean.n;
    }
    if (add_special && t->add_bos && ib_put(&out, t->bos)) goto done;
    /* 2. split on the no-split tokens (Trie.split + cut_text) */
    if (trie_split(t, cp, ncp, &off, &n_off)) goto done;
    sg = sx_malloc((n_off + 1) * sizeof *sg, "segments");
    if (!sg) goto done;
    size_t nseg = 0;
    {
        size_t start = 0;
        for (size_t i = 0; i < n_off; i++) {
            size_t end = off[i];
            if (start > end || start == end) continue;
            sg[nseg++] = (seg){start, end};
            start = end;
        }
    }
    keyset nks = {t->ns_blob, t->ns_off};
#define SEG_NS(i)                                                                         \
    (sg[i].b > sg[i].a ? hmap_get(&t->ns_map, nks, clean.p + cpo[sg[i].a],               \
                                  cpo[sg[i].b] - cpo[sg[i].a])                             \
                       : -1)
    /* 3. whitespace around no-split tokens (PreTrainedTokenizer.tokenize) */
    for (size_t i = 0; i < nseg; i++) {
        int k = SEG_NS(i);
        if (k < 0) continue;
        if (t->ns_rstrip[k] && i + 1 < nseg && sg[i + 1].b > sg[i + 1].a)
            while (sg[i + 1].a < sg[i + 1].b && py_isspace(cp[sg[i + 1].a])) sg[i + 1].a++;
        if (t->ns_lstrip[k] && i > 0 && sg[i - 1].b > sg[i - 1].a)
            while (sg[i - 1].b > sg[i - 1].a && py_isspace(cp[sg[i - 1].b - 1])) sg[i - 1].b--;
    }
    /* 4. ids */
    for (size_t i = 0; i < nseg; i++) {
        if (sg[i].b == sg[i].a) continue;
        int k = SEG_NS(i);
        if (k >= 0) {
            if (ib_put(&out, t->ns_id[k])) goto done;
        } else if (sp_encode(t, &w, clean.p + cpo[sg[i].a], cpo[sg[i].b] - cpo[sg[i].a], &out)) {
            goto done;
        }
    }
#undef SEG_NS
    if (add_special && t->add_eos && ib_put(&out, t->eos)) goto done;
    if (!out.p && !(out.p = sx_malloc(sizeof *out.p, "token ids"))) goto done; /* non-NULL */
    *ids = out.p;
    *n_ids = out.n;
    out.p = NULL;
    rc = 0;
done:
    free(clean.p);
    free(cp);
    free(cpo);
    free(off);
    free(sg);
    free(out.p);
    free(w.norm.p);
    free(w.sym);
    free(w.q.h);
    return rc;
}

/* ----------------------------------------------------------------- decode */
/* ProcessBytePieces: bytes -> UTF-8 with U+FFFD per malformed byte */
static int flush_bytes(sbuf *o, const unsigned char *b, size_t n) {
    for (size_t i = 0; i < n;) {
        int l = utf8_len(b + i, n - i);
        if (l) {
            if (sb_put(o, b + i, (size_t)l)) return -1;
            i += (size_t)l;
        } else {
            if (sb_put(o, "\xef\xbf\xbd", 3)) return -1;
            i++;
        }
    }
    return 0;
}

/* SentencePieceProcessor::Decode of the pieces ids[0..n) (all base ids). */
static int sp_decode(const sx_tokenizer *t, const int *ids, size_t n, sbuf *o) {
    size_t text_start = o->n;
    sbuf bytes = {0}; /* a run of byte pieces */
    int rc = -1;
    int is_bos_ws = 1, bos_ws_seen = 0;
    for (size_t i = 0; i < n; i++) {
        int id = ids[i];
        if (t->type[id] == PT_BYTE) {
            const char *s = t->blob + t->tok_off[id];
            char v = (char)(hexval(s[3]) * 16 + hexval(s[4])); /* checked at load */
            if (sb_put(&bytes, &v, 1)) goto out;
            continue;
        }
        if (flush_bytes(o, (const unsigned char *)bytes.p, bytes.n)) goto out;
        bytes.n = 0;
        if (bos_ws_seen || o->n > text_start) is_bos_ws = 0;
        bos_ws_seen = 0;
        if (t->type[id] == PT_CONTROL) continue;
        if (t->type[id] == PT_UNKNOWN) {
            if (sb_put(o, t->unk_surface, t->unk_surface_len)) goto out;
            continue;
        }
        const char *s = t->blob + t->tok_off[id];
        size_t len = t->tok_off[id + 1] - t->tok_off[id];
        if (is_bos_ws && t->add_dummy_prefix && len >= 3 && !memcmp(s, kSpace, 3)) {
            s += 3;
            len -= 3;
            bos_ws_seen = 1;
        }
        for (size_t k = 0; k < len;) {
            if (k + 3 <= len && !memcmp(s + k, kSpace, 3)) {
                if (sb_put(o, " ", 1)) goto out;
                k += 3;
            } else {
                if (sb_put(o, s + k, 1)) goto out;
                k++;
            }
        }
    }
    rc = flush_bytes(o, (const unsigned char *)bytes.p, bytes.n);
out:
    free(bytes.p);
    return rc;
}

/* LlamaTokenizer.convert_tokens_to_string over base ids[0..n) */
static int llama_tokens_to_string(const sx_tokenizer *t, const int *ids, size_t n, sbuf *o) {
    size_t run = 0; /* start of current sub-token run */
    int prev_special = 0;
    for (size_t i = 0; i < n; i++) {
        if (t->special[ids[i]]) {
            if (!prev_special && i != 0 && sb_put(o, " ", 1)) return -1;
            if (sp_decode(t, ids + run, i - run, o)) return -1;
            if (sb_put(o, t->blob + t->tok_off[ids[i]], t->tok_off[ids[i] + 1] - t->tok_off[ids[i]]))
                return -1;
            prev_special = 1;
            run = i + 1;
        } else {
            prev_special = 0;
        }
    }
    return sp_decode(t, ids + run, n - run, o);
}

static int clean_up(sbuf *o) {
    static const char *const rules[][2] = {{" .", "."},     {" ?", "?"},     {" !", "!"},
                                           {" ,", ","},     {" ' ", "'"},    {" n't", "n't"},
                                           {" 'm", "'m"},   {" 's", "'s"},   {" 've", "'ve"},
                                           {" 're", "'re"}};
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        const char *from = rules[r][0], *to = rules[r][1];
        size_t fl = strlen(from), tl = strlen(to), w = 0;
        for (size_t i = 0; i < o->n;) { /* str.replace: left to right, non-overlapping */
            if (i + fl <= o->n && !memcmp(o->p + i, from, fl)) {
                memmove(o->p + w, to, tl);
                w += tl;
                i += fl;
            } else {
                o->p[w++] = o->p[i++];
            }
        }
        o->n = w;
        o->p[w] = 0;
    }
    return 0;
}

int sx_detokenize(const sx_tokenizer *t, const int *ids, size_t n, int skip_special, char **text,
                  size_t *len) {
    if (!t || !text || (!ids && n)) return sx_err("sx_detokenize: NULL argument");
    *text = NULL;
    if (len) *len = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return sx_err("detokenize: token %zu has id %d, outside the vocabulary [0, %d)", i, ids[i],
                          t->n_vocab);
    int *kept = sx_malloc((n + 1) * sizeof *kept, "token ids");
    if (!kept) return -1;
    size_t nk = 0;
    for (size_t i = 0; i < n; i++)
        if (!(skip_special && t->special[ids[i]])) kept[nk++] = ids[i];
    sbuf o = {0};
    int rc = sb_put(&o, "", 0);
    int chunks = 0;
    size_t run = 0;
    for (size_t i = 0; i <= nk && !rc; i++) {
        if (i < nk && kept[i] < t->n_base) continue;
        if (i > run) { /* a run of pieces -> one sub-text */
            if (chunks++ && sb_put(&o, " ", 1)) rc = -1;
            if (!rc) rc = llama_tokens_to_string(t, kept + run, i - run, &o);
        }
        if (i < nk && !rc) { /* an added token -> its own sub-text */
            if (chunks++ && sb_put(&o, " ", 1)) rc = -1;
            if (!rc)
                rc = sb_put(&o, t->blob + t->tok_off[kept[i]],
                            t->tok_off[kept[i] + 1] - t->tok_off[kept[i]]);
        }
        run = i + 1;
    }
    free(kept);
    if (!rc && t->clean_up) rc = clean_up(&o);
    if (rc) {
        free(o.p);
        return -1;
    }
    *text = o.p;
    if (len) *len = o.n;
    return 0;
}
