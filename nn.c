/* nn.c - the shared layers (nn.h): arena, loaders by key prefix, Linear,
 * Conv2d, norms, ResnetBlock2D, multi-head attention. */
#include "nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sx_core.h"

/* ======================================================================
 * arena
 * ====================================================================== */
#if defined(__SANITIZE_ADDRESS__)
#define SX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SX_ASAN 1
#endif
#endif
#ifdef SX_ASAN
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#define POISON(p, n) __asan_poison_memory_region((p), (n) * sizeof(float))
#define UNPOISON(p, n) __asan_unpoison_memory_region((p), (n) * sizeof(float))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct sx_arena_chunk {
    float *p;
    size_t cap; /* floats */
};

#define ARENA_ALIGN 16              /* floats: 64 bytes */
#define ARENA_MIN ((size_t)1 << 18) /* floats in the smallest chunk (1 MB) */

sx_arena_mark sx_arena_top(const sx_arena *a) {
    sx_arena_mark m = {a->cur, a->off};
    return m;
}

/* Replaces the (empty) chunk i by one of at least n floats. */
static int chunk_fit(sx_arena_chunk *c, size_t n, const char *what) {
    if (c->p) UNPOISON(c->p, c->cap);
    free(c->p);
    c->p = NULL;
    c->cap = 0;
    size_t cap = n > ARENA_MIN ? n : ARENA_MIN;
    void *p = NULL;
    if (cap > ((size_t)1 << 40) / sizeof(float) ||
        posix_memalign(&p, ARENA_ALIGN * sizeof(float), cap * sizeof(float)) != 0) {
        sx_err("out of memory allocating %zu bytes of scratch for %s", cap * sizeof(float),
               what ? what : "?");
        return -1;
    }
    c->p = p;
    c->cap = cap;
    POISON(c->p, c->cap);
    return 0;
}

float *sx_arena_floats(sx_arena *a, int64_t n, const char *what) {
    if (!a || n < 0) {
        sx_err("sx_arena_floats: bad request (%lld floats for %s)", (long long)n,
               what ? what : "?");
        return NULL;
    }
    size_t need = ((size_t)n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (need == 0) need = ARENA_ALIGN;
    for (;;) {
        if (a->cur < a->n_chunks) {
            sx_arena_chunk *c = &a->chunks[a->cur];
            if (c->cap - a->off >= need) {
                float *p = c->p + a->off;
                a->off += need;
                UNPOISON(p, (size_t)n);
                return p;
            }
            if (a->off == 0) {
                /* an empty chunk too small for the request: it and the (free)
                 * chunks after it give way to one chunk of the right size, so
                 * the arena holds what the largest requests need, not the sum
                 * of every pattern seen */
                for (int i = a->cur + 1; i < a->n_chunks; i++) {
                    UNPOISON(a->chunks[i].p, a->chunks[i].cap);
                    free(a->chunks[i].p);
                }
                a->n_chunks = a->cur + 1;
                if (chunk_fit(c, need, what)) return NULL;
                continue;
            }
            a->cur++; /* the rest of this chunk stays unused until released */
            a->off = 0;
            continue;
        }
        if (a->n_chunks == a->cap_chunks) {
            int nc = a->cap_chunks ? 2 * a->cap_chunks : 8;
            sx_arena_chunk *cs = realloc(a->chunks, sizeof *cs * (size_t)nc);
            if (!cs) {
                sx_err("out of memory growing the scratch arena for %s", what ? what : "?");
                return NULL;
            }
            a->chunks = cs;
            a->cap_chunks = nc;
        }
        a->chunks[a->n_chunks++] = (sx_arena_chunk){NULL, 0};
    }
}

void sx_arena_release(sx_arena *a, sx_arena_mark m) {
    if (!a || m.chunk > a->cur || (m.chunk == a->cur && m.off > a->off)) return;
    for (int i = m.chunk; i <= a->cur && i < a->n_chunks; i++) {
        size_t from = i == m.chunk ? m.off : 0;
        POISON(a->chunks[i].p + from, a->chunks[i].cap - from);
    }
    a->cur = m.chunk;
    a->off = m.off;
}

void sx_arena_free(sx_arena *a) {
    if (!a) return;
    for (int i = 0; i < a->n_chunks; i++) {
        UNPOISON(a->chunks[i].p, a->chunks[i].cap);
        free(a->chunks[i].p);
    }
    free(a->chunks);
    memset(a, 0, sizeof *a);
}

size_t sx_arena_bytes(const sx_arena *a) {
    size_t b = 0;
    for (int i = 0; a && i < a->n_chunks; i++) b += a->chunks[i].cap * sizeof(float);
    return b;
}

/* ======================================================================
 * tensor sources and keys
 * ====================================================================== */
sx_src sx_src_one(sx_gguf *g) {
    sx_src s = {.g = {g}, .n = 1};
    return s;
}

sx_gguf *sx_src_pick(const sx_src *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (sx_gguf_find(s->g[i], name)) return s->g[i];
    return s->g[0];
}

/* key = prefix + suffix ("down_blocks.0.resnets.1" + ".conv1.weight") */
#define KEY_MAX 320
static int key(char *k, const char *prefix, const char *suffix) {
    int n = snprintf(k, KEY_MAX, "%s%s", prefix, suffix);
    if (n < 0 || n >= KEY_MAX) return sx_err("tensor name '%s%s' is too long", prefix, suffix);
    return 0;
}

const float *sx_src_vec(const sx_src *s, const char *prefix, const char *suffix, int64_t n) {
    char k[KEY_MAX];
    if (key(k, prefix, suffix)) return NULL;
    return sx_get_f32(sx_src_pick(s, k), k, SX_SHAPE(n));
}

/* ======================================================================
 * Linear
 * ====================================================================== */
int sx_linear_load(const sx_src *s, const char *prefix, int64_t out, int64_t in, int bias,
                   sx_linear *l) {
    char k[KEY_MAX];
    memset(l, 0, sizeof *l);
    if (key(k, prefix, ".weight")) return -1;
    sx_gguf *g = sx_src_pick(s, k);
    const sx_tensor *t = sx_gguf_find(g, k);
    /* [out, in], or a 1x1 convolution [out, in, 1, 1] used as a linear layer */
    if (t && t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1) {
        if (!sx_tensor_get(g, k, SX_ANY_TYPE, SX_SHAPE(out, in, 1, 1))) return -1;
    } else if (t && !sx_tensor_get(g, k, SX_ANY_TYPE, SX_SHAPE(out, in))) {
        return -1;
    }
    if (sx_weight_get(g, k, out, in, &l->w)) return -1;
    if (bias && !(l->b = sx_src_vec(s, prefix, ".bias", out))) return -1;
    return 0;
}

sx_linear sx_linear_f32(const float *w, int64_t out, int64_t in, const float *b) {
    return (sx_linear){.w = sx_weight_f32(w, out, in), .b = b};
}

int sx_linear_ld(const sx_linear *l, float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M,
                 int act, int accumulate) {
    sx_epilogue ep = {.bias = l->b, .act = act, .accumulate = accumulate};
    return sx_matmul_ep(y, ldy, x, ldx, &l->w, &ep, M);
}

int sx_linear_forward(const sx_linear *l, float *y, const float *x, int64_t M) {
    return sx_linear_ld(l, y, l->w.N, x, l->w.K, M, SX_ACT_NONE, 0);
}

int sx_linear_act(const sx_linear *l, float *y, const float *x, int64_t M, int act) {
    return sx_linear_ld(l, y, l->w.N, x, l->w.K, M, act, 0);
}

int sx_linear_add(const sx_linear *l, float *y, const float *x, int64_t M) {
    return sx_linear_ld(l, y, l->w.N, x, l->w.K, M, SX_ACT_NONE, 1);
}

/* ======================================================================
 * Conv2d
 * ====================================================================== */
int sx_conv_load(const sx_src *s, const char *prefix, int cin, int cout, int k, int stride,
                 int pad, sx_conv_layer *cv) {
    char n[KEY_MAX];
    memset(cv, 0, sizeof *cv);
    if (key(n, prefix, ".weight")) return -1;
    sx_gguf *g = sx_src_pick(s, n);
    if (!sx_tensor_get(g, n, SX_ANY_FLOAT, SX_SHAPE(cout, cin, k, k)) ||
        sx_weight_get(g, n, cout, (int64_t)cin * k * k, &cv->w) ||
        !(cv->b = sx_src_vec(s, prefix, ".bias", cout)))
        return -1;
    cv->c = sx_conv_f32(NULL, NULL, cin, cout, k, stride, pad).c;
    return 0;
}

sx_conv_layer sx_conv_f32(const float *w, const float *b, int cin, int cout, int k, int stride,
                          int pad) {
    return (sx_conv_layer){.c = {.cin = cin, .cout = cout, .kh = k, .kw = k, .stride = stride,
                                 .pad_t = pad, .pad_l = pad, .pad_b = pad, .pad_r = pad},
                           .w = sx_weight_f32(w, cout, (int64_t)cin * k * k),
                           .b = b};
}

void sx_conv_out_hw(const sx_conv *c, int64_t H, int64_t W, int64_t *Ho, int64_t *Wo) {
    int64_t h = H + c->pad_t + c->pad_b - c->kh, w = W + c->pad_l + c->pad_r - c->kw;
    *Ho = h < 0 || c->stride <= 0 ? 0 : h / c->stride + 1;
    *Wo = w < 0 || c->stride <= 0 ? 0 : w / c->stride + 1;
}

int sx_conv_forward(const sx_conv_layer *cv, float *y, const float *x, int64_t H, int64_t W,
                    int64_t *Ho, int64_t *Wo) {
    return sx_conv2d(y, x, H, W, &cv->c, &cv->w, cv->b, Ho, Wo);
}

/* ======================================================================
 * norms
 * ====================================================================== */
static int norm_load(const sx_src *s, const char *prefix, int64_t dim, int groups, float eps,
                     sx_norm *n) {
    memset(n, 0, sizeof *n);
    n->dim = dim;
    n->groups = groups;
    n->eps = eps;
    if (groups > 0 && dim % groups)
        return sx_err("%s: %lld channels do not split into %d groups", prefix, (long long)dim,
                      groups);
    n->w = sx_src_vec(s, prefix, ".weight", dim);
    n->b = n->w ? sx_src_vec(s, prefix, ".bias", dim) : NULL;
    return n->b ? 0 : -1;
}

int sx_layernorm_load(const sx_src *s, const char *prefix, int64_t dim, float eps, sx_norm *n) {
    return norm_load(s, prefix, dim, 0, eps, n);
}

int sx_groupnorm_load(const sx_src *s, const char *prefix, int64_t C, int groups, float eps,
                      sx_norm *n) {
    if (groups <= 0) return sx_err("%s: %d groups", prefix, groups);
    return norm_load(s, prefix, C, groups, eps, n);
}

void sx_norm_rows(const sx_norm *n, float *y, const float *x, int64_t rows) {
    sx_layernorm(y, x, n->w, n->b, rows, n->dim, n->eps);
}

int sx_norm_chw(const sx_norm *n, float *y, const float *x, int64_t HW, int act) {
    if (sx_groupnorm(y, x, n->w, n->b, n->dim, HW, n->groups, n->eps)) return -1;
    if (act == SX_ACT_SILU) sx_silu(y, y, n->dim * HW);
    else if (act != SX_ACT_NONE) return sx_err("sx_norm_chw: activation %d not supported", act);
    return 0;
}

int sx_norm_conv_forward(const sx_norm *n, int act, const sx_conv_layer *cv, float *y,
                         const float *x, int64_t H, int64_t W, int accumulate) {
    if (!n || !cv || n->groups <= 0 || n->dim != cv->c.cin ||
        (act != SX_ACT_NONE && act != SX_ACT_SILU))
        return sx_err("sx_norm_conv_forward: GroupNorm over %lld channels (%d groups, act %d) "
                      "does not feed conv '%s' (%d input channels)",
                      n ? (long long)n->dim : 0LL, n ? n->groups : 0, act,
                      cv && cv->w.name ? cv->w.name : "?", cv ? cv->c.cin : 0);
    sx_conv_fuse f = {.groups = n->groups,
                      .eps = n->eps,
                      .gn_w = n->w,
                      .gn_b = n->b,
                      .silu = act == SX_ACT_SILU,
                      .accumulate = accumulate};
    return sx_conv2d_fused(y, x, H, W, &cv->c, &cv->w, cv->b, &f, NULL, NULL);
}

/* ======================================================================
 * ResnetBlock2D
 * ====================================================================== */
int sx_resnet_load(const sx_src *s, const char *prefix, int cin, int cout, int temb_dim,
                   int groups, float eps, sx_resnet *r) {
    char p[KEY_MAX];
    memset(r, 0, sizeof *r);
    r->cin = cin;
    r->cout = cout;
#define SUB(name) (snprintf(p, sizeof p, "%s.%s", prefix, name), p)
    if (sx_groupnorm_load(s, SUB("norm1"), cin, groups, eps, &r->norm1) ||
        sx_conv_load(s, SUB("conv1"), cin, cout, 3, 1, 1, &r->conv1) ||
        (temb_dim > 0 &&
         sx_linear_load(s, SUB("time_emb_proj"), cout, temb_dim, SX_BIAS, &r->time_emb_proj)) ||
        sx_groupnorm_load(s, SUB("norm2"), cout, groups, eps, &r->norm2) ||
        sx_conv_load(s, SUB("conv2"), cout, cout, 3, 1, 1, &r->conv2))
        return -1;
    if (cin != cout)
        return sx_conv_load(s, SUB("conv_shortcut"), cin, cout, 1, 1, 0, &r->conv_shortcut);
    char k[KEY_MAX];
    snprintf(k, sizeof k, "%s.conv_shortcut.weight", prefix);
    if (sx_gguf_find(sx_src_pick(s, k), k))
        return sx_err("%s: unexpected tensor '%s' (in and out channels are both %d)",
                      sx_gguf_path(sx_src_pick(s, k)), k, cin);
#undef SUB
    return 0;
}

int sx_resnet_forward(const sx_resnet *r, float *y, const float *x, int64_t H, int64_t W,
                      const float *temb, sx_arena *ws) {
    int has_sc = r && r->conv_shortcut.w.data != NULL;
    if (!r || !y || !x || !ws || H <= 0 || W <= 0 || r->cin <= 0 || r->cout <= 0 ||
        (r->cin != r->cout && !has_sc) || (r->time_emb_proj.w.data && !temb))
        return sx_err("sx_resnet_forward: bad arguments (cin %d, cout %d%s)", r ? r->cin : 0,
                      r ? r->cout : 0,
                      r && r->cin != r->cout && !has_sc ? ", no conv_shortcut" : "");
    int64_t HW = H * W;
    sx_arena_mark top = sx_arena_top(ws);
    int rc = -1;
    /* norm1 -> SiLU -> conv1, fused: [cin, H, W] -> h [cout, H, W] */
    float *h = sx_arena_floats(ws, r->cout * HW, "resnet conv1");
    if (!h || sx_norm_conv_forward(&r->norm1, SX_ACT_SILU, &r->conv1, h, x, H, W, 0)) goto done;
    /* + time_emb_proj(SiLU(emb)) per channel */
    if (r->time_emb_proj.w.data) {
        float *tp = sx_arena_floats(ws, r->cout, "resnet time embedding");
        if (!tp || sx_linear_forward(&r->time_emb_proj, tp, temb, 1)) goto done;
        sx_add_channel(h, tp, r->cout, HW);
    }
    /* the residual first, so that conv2 adds onto it: y = conv_shortcut(x)
     * (1x1) when the channel count changes, else x */
    if (has_sc) {
        if (sx_conv_forward(&r->conv_shortcut, y, x, H, W, NULL, NULL)) goto done;
    } else {
        memcpy(y, x, sizeof(float) * (size_t)(r->cout * HW));
    }
    /* norm2 -> SiLU -> (dropout: identity) -> conv2, fused, + the residual:
     * y = shortcut(x) + conv2(...) (output_scale_factor 1) */
    if (sx_norm_conv_forward(&r->norm2, SX_ACT_SILU, &r->conv2, y, h, H, W, 1)) goto done;
    rc = 0;
done:
    sx_arena_release(ws, top);
    return rc;
}

/* ======================================================================
 * multi-head attention
 * ====================================================================== */
sx_attn sx_attn_heads(int heads, int head_dim, float scale) {
    int64_t inner = (int64_t)heads * head_dim;
    return (sx_attn){.n_heads = heads, .n_kv_heads = heads, .head_dim = head_dim,
                     .q_tok = inner, .q_head = head_dim, .k_tok = inner, .k_head = head_dim,
                     .v_tok = inner, .v_head = head_dim, .o_tok = inner, .o_head = head_dim,
                     .scale = scale};
}

int sx_mha_init(sx_mha *m, int heads) {
    int64_t inner = m->q.w.N;
    if (heads <= 0 || inner % heads)
        return sx_err("attention '%s': %d heads do not divide the width %lld",
                      m->q.w.name ? m->q.w.name : "?", heads, (long long)inner);
    if (m->k.w.N != inner || m->v.w.N != inner || m->k.w.K != m->v.w.K || m->o.w.K != inner)
        return sx_err("attention '%s': projections of different widths (q %lld, k %lld, v %lld, "
                      "out %lld)",
                      m->q.w.name ? m->q.w.name : "?", (long long)inner, (long long)m->k.w.N,
                      (long long)m->v.w.N, (long long)m->o.w.K);
    m->heads = heads;
    m->scale = 1.0f / sqrtf((float)(inner / heads));
    return 0;
}

int sx_mha_load_diffusers(const sx_src *s, const char *prefix, int64_t dim, int64_t kv_dim,
                          int heads, int qkv_bias, sx_mha *m) {
    char p[KEY_MAX];
    memset(m, 0, sizeof *m);
#define SUB(name) (snprintf(p, sizeof p, "%s.%s", prefix, name), p)
    if (sx_linear_load(s, SUB("to_q"), dim, dim, qkv_bias, &m->q) ||
        sx_linear_load(s, SUB("to_k"), dim, kv_dim, qkv_bias, &m->k) ||
        sx_linear_load(s, SUB("to_v"), dim, kv_dim, qkv_bias, &m->v) ||
        sx_linear_load(s, SUB("to_out.0"), dim, dim, SX_BIAS, &m->o))
        return -1;
#undef SUB
    return sx_mha_init(m, heads);
}

int sx_mha_forward(const sx_mha *m, float *y, const float *xq, int64_t Tq, const float *xk,
                   const float *xv, int64_t Tk, int accumulate, sx_arena *ws) {
    if (!m || !y || !xq || !xk || !xv || !ws || Tq <= 0 || Tk <= 0 || m->heads <= 0)
        return sx_err("sx_mha_forward: bad arguments (%lld queries, %lld keys)", (long long)Tq,
                      (long long)Tk);
    int64_t inner = m->q.w.N;
    sx_arena_mark top = sx_arena_top(ws);
    float *q = sx_arena_floats(ws, Tq * inner, "attention q");
    float *k = sx_arena_floats(ws, Tk * inner, "attention k");
    float *v = sx_arena_floats(ws, Tk * inner, "attention v");
    float *o = sx_arena_floats(ws, Tq * inner, "attention output");
    sx_attn a = sx_attn_heads(m->heads, (int)(inner / m->heads), m->scale);
    int rc = -1;
    if (q && k && v && o && !sx_linear_forward(&m->q, q, xq, Tq) &&
        !sx_linear_forward(&m->k, k, xk, Tk) && !sx_linear_forward(&m->v, v, xv, Tk) &&
        !sx_attention(&a, o, q, k, v, Tq, Tk))
        rc = accumulate ? sx_linear_add(&m->o, y, o, Tq) : sx_linear_forward(&m->o, y, o, Tq);
    sx_arena_release(ws, top);
    return rc;
}
