/* vit.c - the Qwen-VL visual encoder of SEED-X (ViT-bigG/14 + attention pool)
 * and the generic Qwen Resampler.
 *
 * Mirrors SEED-X src/models/tokenizer/qwen_visual.py:
 *   VisionTransformerWithAttnPool.forward: conv1 -> + get_abs_pos(positional_embedding)
 *   -> ln_pre -> transformer.resblocks.* -> attn_pool (Resampler) -> ln_post -> @ proj
 * Trace names (SEEDX_TRACE) are the PyTorch module paths, batch-first
 * ([N, T, C]) as scripts/ref_vit.py returns them.
 *
 * Details that are easy to get wrong (all checked by tests/test_vit.c):
 *  - blocks: attn.in_proj output is viewed per head as [q_h | k_h | v_h]
 *    (3*head_dim columns per head), not [Q;K;V]; the attn_pool's
 *    nn.MultiheadAttention uses the stacked [Wq;Wk;Wv] layout instead.
 *  - every LayerNorm of the ViT, the pool's included, has eps 1e-6 (metadata);
 *    the agent's resamplers use 1e-5 (their caller passes it).
 *  - positions: get_abs_pos resizes 16x16 tables bicubically (A = -0.75) to the
 *    actual grid; the pool adds positions to queries and keys, never values;
 *    the sin-cos table encodes the column index in its first half.
 *  - the output is x @ proj (proj stored [in, out]), no bias; conv1 has no bias.
 *  - GELU is the exact erf form. */
#include "vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sx_core.h"

/* floor(sqrt(n)) for n >= 0, exact */
static int64_t isqrt64(int64_t n) {
    if (n <= 0) return 0;
    int64_t r = (int64_t)sqrt((double)n);
    while (r * r > n) r--;
    while ((r + 1) * (r + 1) <= n) r++;
    return r;
}

/* ======================================================================
 * positional tables
 * ====================================================================== */
int sx_abs_pos(float *out, const float *table, int64_t rows, int64_t C, int64_t n_tokens) {
    if (!out || !table || rows <= 0 || C <= 0 || n_tokens <= 0)
        return sx_err("get_abs_pos: bad arguments (rows %lld, dim %lld, tokens %lld)",
                      (long long)rows, (long long)C, (long long)n_tokens);
    int64_t s = isqrt64(rows), t = isqrt64(n_tokens);
    if (s * s != rows) return sx_err("get_abs_pos: table of %lld rows is not a square grid", (long long)rows);
    if (t * t != n_tokens)
        return sx_err("get_abs_pos: %lld tokens do not form a square grid", (long long)n_tokens);
    if (s == t) {
        memcpy(out, table, sizeof(float) * (size_t)(rows * C));
        return 0;
    }
    /* [s*s, C] -> [C, s, s] -> bicubic [C, t, t] -> [t*t, C] */
    float *a = sx_malloc(sizeof(float) * (size_t)(C * (rows + n_tokens)), "get_abs_pos scratch");
    if (!a) return -1;
    float *b = a + C * rows;
    sx_transpose(a, table, rows, C);
    sx_interp_bicubic(b, a, C, s, s, t, t);
    sx_transpose(out, b, C, n_tokens);
    free(a);
    return 0;
}

int sx_sincos_2d(float *out, int64_t dim, int64_t grid) {
    if (!out || dim <= 0 || dim % 4 || grid <= 0)
        return sx_err("sincos_2d: dim %lld must be a positive multiple of 4, grid %lld positive",
                      (long long)dim, (long long)grid);
    int64_t q = dim / 4; /* each of sin(x), cos(x), sin(y), cos(y) */
    for (int64_t r = 0; r < grid; r++)
        for (int64_t c = 0; c < grid; c++) {
            float *o = out + (r * grid + c) * dim;
            for (int64_t i = 0; i < q; i++) {
                /* float32 as numpy computes it: omega = 1 / 10000 ** (i / (D/4)) */
                float w = 1.0f / powf(10000.0f, (float)i / (float)q);
                float ax = (float)c * w, ay = (float)r * w;
                o[i] = sinf(ax);
                o[q + i] = cosf(ax);
                o[2 * q + i] = sinf(ay);
                o[3 * q + i] = cosf(ay);
            }
        }
    return 0;
}

/* ======================================================================
 * Resampler
 * ====================================================================== */
static int err_r(const sx_resampler *r, const char *what) {
    return sx_err("resampler '%s': %s", r->name, what);
}

int sx_resampler_init(sx_resampler *r) {
    if (!r) return sx_err("sx_resampler_init: NULL resampler");
    int64_t Q = r->n_queries, E = r->embed_dim;
    if (!r->query || !r->pos_embed || !r->in_proj_bias || !r->out_proj_bias || !r->ln_q_w ||
        !r->ln_q_b || !r->ln_kv_w || !r->ln_kv_b || !r->wq.data || !r->wk.data || !r->wv.data ||
        !r->out_proj.data || (r->has_kv_proj && !r->kv_proj.data))
        return err_r(r, "a weight is not set");
    if (Q <= 0 || E <= 0 || r->kv_dim <= 0 || r->n_heads <= 0 || E % r->n_heads)
        return sx_err("resampler '%s': bad sizes: %lld queries, dim %lld, kv dim %lld, %d heads",
                      r->name, (long long)Q, (long long)E, (long long)r->kv_dim, r->n_heads);
    if (r->grid * r->grid != Q) return err_r(r, "queries do not form a square grid");
    if (!r->has_kv_proj && r->kv_dim != E) return err_r(r, "kv_dim != embed_dim needs kv_proj");
    if (r->wq.N != E || r->wq.K != E || r->wk.N != E || r->wk.K != E || r->wv.N != E ||
        r->wv.K != E || r->out_proj.N != E || r->out_proj.K != E ||
        (r->has_kv_proj && (r->kv_proj.N != E || r->kv_proj.K != r->kv_dim)))
        return err_r(r, "weight shapes do not match the sizes");
    free(r->q);
    r->q = sx_malloc(sizeof(float) * (size_t)(2 * Q * E), "resampler queries");
    if (!r->q) return -1;
    /* q = Wq (ln_q(query) + pos_embed) + bq: the same for every input, done once */
    float *t = r->q + Q * E;
    sx_layernorm(t, r->query, r->ln_q_w, r->ln_q_b, Q, E, r->eps);
    sx_add(t, t, r->pos_embed, Q * E);
    if (sx_matmul(r->q, t, &r->wq, r->in_proj_bias, Q) != 0) {
        free(r->q);
        r->q = NULL;
        return sx_err_prefix("resampler '%s': ", r->name);
    }
    float *q = realloc(r->q, sizeof(float) * (size_t)(Q * E));
    if (q) r->q = q;
    return 0;
}

int sx_resampler_prepare(sx_resampler *r, int64_t n_kv) {
    if (!r || !r->pos_embed) return sx_err("sx_resampler_prepare: resampler not loaded");
    if (r->key_pos_n == n_kv && r->key_pos) return 0;
    float *t = sx_malloc(sizeof(float) * (size_t)(n_kv > 0 ? n_kv : 1) * (size_t)r->embed_dim,
                         "resampler key positions");
    if (!t) return -1;
    if (sx_abs_pos(t, r->pos_embed, r->n_queries, r->embed_dim, n_kv) != 0) {
        free(t);
        return sx_err_prefix("resampler '%s': ", r->name);
    }
    free(r->key_pos);
    r->key_pos = t;
    r->key_pos_n = n_kv;
    return 0;
}

void sx_resampler_free(sx_resampler *r) {
    if (!r) return;
    free(r->q);
    free(r->key_pos);
    r->q = r->key_pos = NULL;
    r->key_pos_n = 0;
}

static const float *vec(sx_gguf *g, const char *prefix, const char *key, int64_t n) {
    char name[256];
    snprintf(name, sizeof name, "%s%s", prefix, key);
    return sx_get_f32(g, name, SX_SHAPE(n));
}

int sx_resampler_load(sx_gguf *g, const char *prefix, int n_heads, float eps, sx_resampler *r) {
    if (!g || !prefix || !r) return sx_err("sx_resampler_load: NULL argument");
    memset(r, 0, sizeof *r);
    size_t pl = strlen(prefix);
    if (pl + 40 > 256) return sx_err("sx_resampler_load: prefix '%s' too long", prefix);
    snprintf(r->name, sizeof r->name, "%.*s", (int)(pl && prefix[pl - 1] == '.' ? pl - 1 : pl), prefix);
    char n[256];
    snprintf(n, sizeof n, "%squery", prefix);
    const sx_tensor *tq = sx_tensor_get(g, n, SX_ANY_FLOAT, SX_SHAPE(-1, -1));
    if (!tq) return -1;
    int64_t Q = tq->shape[0], E = tq->shape[1];
    r->n_queries = Q;
    r->embed_dim = E;
    r->grid = isqrt64(Q);
    r->n_heads = n_heads;
    r->eps = eps;
    if (r->grid * r->grid != Q)
        return sx_err("%s: tensor '%s' has %lld rows, not a square grid of queries",
                      sx_gguf_path(g), n, (long long)Q);
    if (n_heads <= 0 || E % n_heads)
        return sx_err("%s: resampler '%s': %d heads do not divide the width %lld", sx_gguf_path(g),
                      r->name, n_heads, (long long)E);
    if (!(r->query = sx_get_f32(g, n, SX_SHAPE(Q, E)))) return -1;
    snprintf(n, sizeof n, "%spos_embed", prefix);
    if (!(r->pos_embed = sx_get_f32(g, n, SX_SHAPE(Q, E)))) return -1;
    snprintf(n, sizeof n, "%skv_proj.weight", prefix);
    const sx_tensor *tk = sx_gguf_find(g, n);
    r->kv_dim = E;
    if (tk) { /* nn.Identity when kv_dim == embed_dim: no tensor */
        if (!sx_tensor_get(g, n, SX_ANY_FLOAT, SX_SHAPE(E, -1))) return -1;
        r->kv_dim = tk->shape[1];
        r->has_kv_proj = 1;
        if (sx_weight_get(g, n, E, r->kv_dim, &r->kv_proj) != 0) return -1;
    }
    sx_weight in;
    snprintf(n, sizeof n, "%sattn.in_proj_weight", prefix);
    if (sx_weight_get(g, n, 3 * E, E, &in) != 0) return -1;
    r->wq = sx_weight_rows(&in, 0, E);
    r->wk = sx_weight_rows(&in, E, E);
    r->wv = sx_weight_rows(&in, 2 * E, E);
    snprintf(n, sizeof n, "%sattn.out_proj.weight", prefix);
    if (sx_weight_get(g, n, E, E, &r->out_proj) != 0) return -1;
    if (!(r->in_proj_bias = vec(g, prefix, "attn.in_proj_bias", 3 * E)) ||
        !(r->out_proj_bias = vec(g, prefix, "attn.out_proj.bias", E)) ||
        !(r->ln_q_w = vec(g, prefix, "ln_q.weight", E)) || !(r->ln_q_b = vec(g, prefix, "ln_q.bias", E)) ||
        !(r->ln_kv_w = vec(g, prefix, "ln_kv.weight", E)) || !(r->ln_kv_b = vec(g, prefix, "ln_kv.bias", E)))
        return -1;
    return sx_resampler_init(r);
}

int sx_resampler_forward(const sx_resampler *r, const float *x, int64_t N, int64_t L, float *out) {
    if (!r || !r->q || !x || !out) return sx_err("sx_resampler_forward: NULL argument or resampler not initialised");
    if (N <= 0 || L <= 0) return sx_err("resampler '%s': bad batch %lld x %lld tokens", r->name, (long long)N, (long long)L);
    int64_t Q = r->n_queries, E = r->embed_dim, KV = r->kv_dim, M = N * L;
    int hd = (int)(E / r->n_heads);
    float *buf = sx_malloc(sizeof(float) * (size_t)(3 * M * E + (r->key_pos_n == L ? 0 : L * E) + N * Q * E),
                           "resampler activations");
    if (!buf) return -1;
    float *kv = buf, *kin = kv + M * E, *K = kin + M * E, *ctx = K + M * E, *kpos = ctx + N * Q * E;
    int rc = -1;
    /* get_abs_pos(pos_embed, L): the key positions */
    if (r->key_pos_n == L) kpos = r->key_pos;
    else if (sx_abs_pos(kpos, r->pos_embed, Q, E, L) != 0) goto done;

    /* <name>.kv_proj: [N*L, KV] -> [N*L, E] (nn.Identity without the tensor) */
    if (r->has_kv_proj) {
        if (sx_matmul(kv, x, &r->kv_proj, NULL, M) != 0) goto done;
        sx_tracef(kv, 3, (int64_t[]){N, L, E}, "%s.kv_proj", r->name);
    } else {
        memcpy(kv, x, sizeof(float) * (size_t)(M * KV));
    }
    /* <name>.ln_kv */
    sx_layernorm(kv, kv, r->ln_kv_w, r->ln_kv_b, M, E, r->eps);
    sx_tracef(kv, 3, (int64_t[]){N, L, E}, "%s.ln_kv", r->name);

    /* <name>.attn (nn.MultiheadAttention): k = Wk (kv + pos) + bk, v = Wv kv + bv */
    for (int64_t n = 0; n < N; n++) sx_add(kin + n * L * E, kv + n * L * E, kpos, L * E);
    if (sx_matmul(K, kin, &r->wk, r->in_proj_bias + E, M) != 0) goto done;
    float *V = kin; /* reuse */
    if (sx_matmul(V, kv, &r->wv, r->in_proj_bias + 2 * E, M) != 0) goto done;
    sx_attn a = {r->n_heads, r->n_heads, hd, E, hd, E, hd, E, hd, E, hd,
                 1.0f / sqrtf((float)hd), 0, 0};
    for (int64_t n = 0; n < N; n++)
        if (sx_attention(&a, ctx + n * Q * E, r->q, K + n * L * E, V + n * L * E, Q, L) != 0) goto done;
    if (sx_matmul(out, ctx, &r->out_proj, r->out_proj_bias, N * Q) != 0) goto done;
    sx_tracef(out, 3, (int64_t[]){N, Q, E}, "%s.attn", r->name);
    sx_tracef(out, 3, (int64_t[]){N, Q, E}, "%s", r->name);
    rc = 0;
done:
    if (rc) sx_err_prefix("resampler '%s': ", r->name);
    free(buf);
    return rc;
}

/* ======================================================================
 * ViT block
 * ====================================================================== */
int64_t sx_vit_block_work(int64_t W, int64_t mlp, int64_t n_tok) {
    return n_tok * (W + (4 * W > mlp ? 4 * W : mlp));
}

int sx_vit_block_forward(const sx_vit_block *b, int64_t W, int heads, int64_t mlp, float eps,
                         float *x, int64_t N, int64_t T, float *work, int layer) {
    if (!b || !x || heads <= 0 || W <= 0 || W % heads || mlp <= 0 || N <= 0 || T <= 0)
        return sx_err("vit block %d: bad arguments (width %lld, heads %d, mlp %lld, %lld x %lld tokens)",
                      layer, (long long)W, heads, (long long)mlp, (long long)N, (long long)T);
    int64_t M = N * T, hd = W / heads;
    float *own = NULL;
    if (!work) {
        work = own = sx_malloc(sizeof(float) * (size_t)sx_vit_block_work(W, mlp, M), "vit block scratch");
        if (!work) return -1;
    }
    float *h = work, *qkv = h + M * W, *ctx = qkv + M * 3 * W, *f = qkv;
    int rc = -1;
    int64_t shp[3] = {N, T, W};

    /* .ln_1 -> .attn: in_proj [M,W] -> [M,3W], per head h the columns
     * [3hd*h, 3hd*h+3hd) are q_h | k_h | v_h; read in place through strides */
    sx_layernorm(h, x, b->ln_1_w, b->ln_1_b, M, W, eps);
    if (sx_matmul(qkv, h, &b->in_proj, b->in_proj_b, M) != 0) goto done;
    sx_attn a = {heads, heads, (int)hd, 3 * W, 3 * hd, 3 * W, 3 * hd, 3 * W, 3 * hd, W, hd,
                 1.0f / sqrtf((float)hd), 0, 0};
    for (int64_t n = 0; n < N; n++) {
        const float *base = qkv + n * T * 3 * W;
        if (sx_attention(&a, ctx + n * T * W, base, base + hd, base + 2 * hd, T, T) != 0) goto done;
    }
    if (sx_matmul(h, ctx, &b->out_proj, b->out_proj_b, M) != 0) goto done; /* heads concatenated */
    if (layer >= 0) sx_tracef(h, 3, shp, "transformer.resblocks.%d.attn", layer);
    sx_add(x, x, h, M * W);

    /* .ln_2 -> .mlp: c_fc [M,W] -> [M,mlp], GELU (erf), c_proj -> [M,W] */
    sx_layernorm(h, x, b->ln_2_w, b->ln_2_b, M, W, eps);
    if (sx_matmul(f, h, &b->c_fc, b->c_fc_b, M) != 0) goto done;
    sx_gelu(f, f, M * mlp);
    if (sx_matmul(h, f, &b->c_proj, b->c_proj_b, M) != 0) goto done;
    if (layer >= 0) sx_tracef(h, 3, shp, "transformer.resblocks.%d.mlp", layer);
    sx_add(x, x, h, M * W);
    rc = 0;
done:
    if (rc) sx_err_prefix("transformer.resblocks.%d: ", layer);
    free(own);
    return rc;
}

/* ======================================================================
 * loading
 * ====================================================================== */
static int meta_pos(sx_gguf *g, const char *key, int64_t *v) {
    if (sx_meta_int(g, key, v) != 0) return -1;
    if (*v <= 0 || *v > (1LL << 30))
        return sx_err("%s: metadata '%s' = %lld is out of range", sx_gguf_path(g), key, (long long)*v);
    return 0;
}

static int load_block(sx_gguf *g, const sx_vit_config *c, int i, sx_vit_block *b) {
    char p[96], n[160];
    int64_t W = c->width, M = c->mlp_width;
    snprintf(p, sizeof p, "transformer.resblocks.%d.", i);
#define V_(field, key, len)                                          \
    do {                                                             \
        snprintf(n, sizeof n, "%s%s", p, key);                       \
        if (!(b->field = sx_get_f32(g, n, SX_SHAPE(len)))) return -1; \
    } while (0)
#define W_(field, key, rows, cols)                                   \
    do {                                                             \
        snprintf(n, sizeof n, "%s%s", p, key);                       \
        if (!sx_tensor_get(g, n, SX_ANY_TYPE, SX_SHAPE(rows, cols)) || \
            sx_weight_get(g, n, rows, cols, &b->field) != 0)         \
            return -1;                                               \
    } while (0)
    V_(ln_1_w, "ln_1.weight", W);
    V_(ln_1_b, "ln_1.bias", W);
    W_(in_proj, "attn.in_proj.weight", 3 * W, W);
    V_(in_proj_b, "attn.in_proj.bias", 3 * W);
    W_(out_proj, "attn.out_proj.weight", W, W);
    V_(out_proj_b, "attn.out_proj.bias", W);
    V_(ln_2_w, "ln_2.weight", W);
    V_(ln_2_b, "ln_2.bias", W);
    W_(c_fc, "mlp.c_fc.weight", M, W);
    V_(c_fc_b, "mlp.c_fc.bias", M);
    W_(c_proj, "mlp.c_proj.weight", W, M);
    V_(c_proj_b, "mlp.c_proj.bias", W);
#undef V_
#undef W_
    return 0;
}

void sx_vit_free(sx_vit *v) {
    if (!v) return;
    sx_resampler_free(&v->attn_pool);
    free(v->blocks);
    free(v->pos);
    if (v->own_g) sx_gguf_close(v->g);
    free(v);
}

int sx_vit_load(sx_gguf *g, sx_vit **out) {
    if (!g || !out) return sx_err("sx_vit_load: NULL argument");
    *out = NULL;
    sx_vit *v = sx_calloc(1, sizeof *v, "vit");
    if (!v) return -1;
    v->g = g;
    sx_vit_config *c = &v->c;
    const char *path = sx_gguf_path(g);
    double eps;
    if (meta_pos(g, "seedx.vit.image_size", &c->image_size) || meta_pos(g, "seedx.vit.patch_size", &c->patch_size) ||
        meta_pos(g, "seedx.vit.width", &c->width) || meta_pos(g, "seedx.vit.layers", &c->layers) ||
        meta_pos(g, "seedx.vit.heads", &c->heads) || meta_pos(g, "seedx.vit.mlp_width", &c->mlp_width) ||
        meta_pos(g, "seedx.vit.output_dim", &c->output_dim) || meta_pos(g, "seedx.vit.n_queries", &c->n_queries) ||
        meta_pos(g, "seedx.vit.pool_heads", &c->pool_heads) || meta_pos(g, "seedx.vit.pos_grid", &c->pos_grid) ||
        sx_meta_float(g, "seedx.vit.ln_eps", &eps))
        goto fail;
    c->ln_eps = (float)eps;
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    for (int k = 0; k < 3; k++) {
        double m = mean[k], s = stdv[k];
        if (sx_meta_has(g, "seedx.vit.image_mean") && sx_meta_arr_float(g, "seedx.vit.image_mean", (uint64_t)k, &m)) goto fail;
        if (sx_meta_has(g, "seedx.vit.image_std") && sx_meta_arr_float(g, "seedx.vit.image_std", (uint64_t)k, &s)) goto fail;
        c->image_mean[k] = (float)m;
        c->image_std[k] = (float)s;
    }
    int64_t W = c->width, E = c->output_dim, P = c->patch_size, G = c->pos_grid;
    if (W % c->heads || E % c->pool_heads || !(eps > 0) || c->image_size < P) {
        sx_err("%s: inconsistent metadata: width %lld / heads %lld, output_dim %lld / pool_heads %lld, "
               "ln_eps %g, image_size %lld < patch %lld",
               path, (long long)W, (long long)c->heads, (long long)E, (long long)c->pool_heads, eps,
               (long long)c->image_size, (long long)P);
        goto fail;
    }
    /* conv1 [W,3,p,p] (no bias), positional_embedding, ln_pre */
    if (!sx_tensor_get(g, "conv1.weight", SX_ANY_FLOAT, SX_SHAPE(W, 3, P, P)) ||
        sx_weight_get(g, "conv1.weight", W, 3 * P * P, &v->conv1) ||
        !(v->positional_embedding = sx_get_f32(g, "positional_embedding", SX_SHAPE(G * G, W))) ||
        !(v->ln_pre_w = sx_get_f32(g, "ln_pre.weight", SX_SHAPE(W))) ||
        !(v->ln_pre_b = sx_get_f32(g, "ln_pre.bias", SX_SHAPE(W))))
        goto fail;
    v->blocks = sx_calloc((size_t)c->layers, sizeof *v->blocks, "vit blocks");
    if (!v->blocks) goto fail;
    for (int i = 0; i < c->layers; i++)
        if (load_block(g, c, i, &v->blocks[i])) goto fail;
    /* attn_pool: Resampler(grid, E, E // 128 heads, kv_dim = W), LN eps of the ViT */
    if (!sx_tensor_get(g, "attn_pool.query", SX_ANY_FLOAT, SX_SHAPE(c->n_queries, E))) goto fail;
    if (W != E && !sx_tensor_get(g, "attn_pool.kv_proj.weight", SX_ANY_FLOAT, SX_SHAPE(E, W)))
        goto fail;
    if (sx_resampler_load(g, "attn_pool.", (int)c->pool_heads, c->ln_eps, &v->attn_pool)) goto fail;
    if (v->attn_pool.kv_dim != W) {
        sx_err("%s: attn_pool takes %lld-wide inputs, the ViT width is %lld", path,
               (long long)v->attn_pool.kv_dim, (long long)W);
        goto fail;
    }
    if (!(v->ln_post_w = sx_get_f32(g, "ln_post.weight", SX_SHAPE(E))) ||
        !(v->ln_post_b = sx_get_f32(g, "ln_post.bias", SX_SHAPE(E))) ||
        !sx_tensor_get(g, "proj", SX_ANY_FLOAT, SX_SHAPE(E, E)) ||
        sx_weight_get_t(g, "proj", E, E, &v->proj))
        goto fail;
    /* positional tables for the configured input size */
    int64_t grid = c->image_size / P;
    v->pos = sx_malloc(sizeof(float) * (size_t)(grid * grid * W), "vit positional table");
    if (!v->pos || sx_abs_pos(v->pos, v->positional_embedding, G * G, W, grid * grid)) goto fail;
    v->pos_grid_n = grid;
    if (sx_resampler_prepare(&v->attn_pool, grid * grid)) goto fail;
    *out = v;
    return 0;
fail:
    sx_err_prefix("loading vit: ");
    sx_vit_free(v);
    return -1;
}

int sx_vit_open(const char *path, sx_vit **out) {
    if (!out) return sx_err("sx_vit_open: NULL argument");
    *out = NULL;
    sx_gguf *g;
    if (sx_gguf_open(path, &g)) return -1;
    if (sx_vit_load(g, out)) {
        sx_gguf_close(g);
        return -1;
    }
    (*out)->own_g = 1;
    return 0;
}

int64_t sx_vit_grid(const sx_vit *v, int64_t S) { return v && v->c.patch_size > 0 ? S / v->c.patch_size : 0; }

/* ======================================================================
 * forward
 * ====================================================================== */
int sx_vit_forward(const sx_vit *v, const float *pixels, int64_t N, int64_t S, float *out) {
    if (!v || !pixels || !out) return sx_err("sx_vit_forward: NULL argument");
    const sx_vit_config *c = &v->c;
    int64_t P = c->patch_size, W = c->width, E = c->output_dim, Q = c->n_queries;
    if (N <= 0 || S < P || S > 65536)
        return sx_err("sx_vit_forward: bad input [%lld,3,%lld,%lld] (patch size %lld)", (long long)N,
                      (long long)S, (long long)S, (long long)P);
    int64_t grid = S / P, T = grid * grid, M = N * T;
    int64_t work_n = sx_vit_block_work(W, c->mlp_width, M);
    int64_t conv_n = M * W;
    float *x = sx_malloc(sizeof(float) * (size_t)M * (size_t)W, "vit activations");
    float *work = sx_malloc(sizeof(float) * (size_t)(work_n > conv_n + T * W ? work_n : conv_n + T * W),
                            "vit scratch");
    float *pooled = sx_malloc(sizeof(float) * (size_t)(N * Q * E), "vit pooled");
    int rc = -1;
    if (!x || !work || !pooled) goto done;

    /* positions: get_abs_pos(positional_embedding, T), cached for image_size */
    const float *pos = v->pos;
    if (grid != v->pos_grid_n) {
        float *tmp = work + conv_n;
        if (sx_abs_pos(tmp, v->positional_embedding, c->pos_grid * c->pos_grid, W, T)) goto done;
        pos = tmp;
    }
    /* conv1: [3,S,S] -> [W, grid, grid] per tile (stride = kernel = patch, no bias) */
    sx_conv conv = {3, (int)W, (int)P, (int)P, (int)P, 0, 0, 0, 0};
    for (int64_t n = 0; n < N; n++)
        if (sx_conv2d(work + n * W * T, pixels + n * 3 * S * S, S, S, &conv, &v->conv1, NULL, NULL, NULL))
            goto done;
    sx_tracef(work, 4, (int64_t[]){N, W, grid, grid}, "conv1");
    /* [W, T] -> [T, W] tokens (raster order), + positions */
    for (int64_t n = 0; n < N; n++) {
        sx_transpose(x + n * T * W, work + n * W * T, W, T);
        sx_add(x + n * T * W, x + n * T * W, pos, T * W);
    }
    /* ln_pre */
    sx_layernorm(x, x, v->ln_pre_w, v->ln_pre_b, M, W, c->ln_eps);
    sx_tracef(x, 3, (int64_t[]){N, T, W}, "ln_pre");
    /* transformer.resblocks.* */
    for (int i = 0; i < c->layers; i++) {
        if (sx_vit_block_forward(&v->blocks[i], W, (int)c->heads, c->mlp_width, c->ln_eps, x, N, T, work, i))
            goto done;
        sx_tracef(x, 3, (int64_t[]){N, T, W}, "transformer.resblocks.%d", i);
    }
    free(work);
    work = NULL;
    /* attn_pool: [N,T,W] -> [N,Q,E] */
    if (sx_resampler_forward(&v->attn_pool, x, N, T, pooled)) goto done;
    /* ln_post, x @ proj */
    sx_layernorm(pooled, pooled, v->ln_post_w, v->ln_post_b, N * Q, E, c->ln_eps);
    sx_tracef(pooled, 3, (int64_t[]){N, Q, E}, "ln_post");
    if (sx_matmul(out, pooled, &v->proj, NULL, N * Q)) goto done;
    sx_tracef(out, 3, (int64_t[]){N, Q, E}, "output");
    rc = 0;
done:
    if (rc) sx_err_prefix("vit forward: ");
    free(x);
    free(work);
    free(pooled);
    return rc;
}

/* vit_down: [n, D] -> [n/4, D], the mean of every 4 consecutive tokens */
int sx_vit_down(float *y, const float *x, int64_t n, int64_t D) {
    if (!y || !x || n <= 0 || D <= 0 || n % 4)
        return sx_err("vit_down: %lld tokens is not a positive multiple of 4", (long long)n);
    sx_avgpool_tokens(y, x, n, D, 4);
    return 0;
}
