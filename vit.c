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
/* get_abs_pos with its scratch from ws */
static int abs_pos(float *out, const float *table, int64_t rows, int64_t C, int64_t n_tokens,
                   sx_arena *ws) {
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
    sx_arena_mark top = sx_arena_top(ws);
    float *a = sx_arena_floats(ws, C * (rows + n_tokens), "get_abs_pos scratch");
    if (!a) return -1;
    float *b = a + C * rows;
    sx_transpose(a, table, rows, C);
    sx_interp_bicubic(b, a, C, s, s, t, t);
    sx_transpose(out, b, C, n_tokens);
    sx_arena_release(ws, top);
    return 0;
}

int sx_abs_pos(float *out, const float *table, int64_t rows, int64_t C, int64_t n_tokens) {
    sx_arena ws = {0};
    int rc = abs_pos(out, table, rows, C, n_tokens, &ws);
    sx_arena_free(&ws);
    return rc;
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
    const sx_mha *m = &r->attn;
    if (!r->query || !r->pos_embed || !m->q.b || !m->k.b || !m->v.b || !m->o.b || !r->ln_q.w ||
        !r->ln_q.b || !r->ln_kv.w || !r->ln_kv.b || !m->q.w.data || !m->k.w.data || !m->v.w.data ||
        !m->o.w.data)
        return err_r(r, "a weight is not set");
    if (Q <= 0 || E <= 0 || r->kv_dim <= 0 || m->heads <= 0 || E % m->heads)
        return sx_err("resampler '%s': bad sizes: %lld queries, dim %lld, kv dim %lld, %d heads",
                      r->name, (long long)Q, (long long)E, (long long)r->kv_dim, m->heads);
    if (r->grid * r->grid != Q) return err_r(r, "queries do not form a square grid");
    if (!r->kv_proj.w.data && r->kv_dim != E) return err_r(r, "kv_dim != embed_dim needs kv_proj");
    if (m->q.w.N != E || m->q.w.K != E || m->k.w.K != E || m->o.w.N != E ||
        r->ln_q.dim != E || r->ln_kv.dim != E ||
        (r->kv_proj.w.data && (r->kv_proj.w.N != E || r->kv_proj.w.K != r->kv_dim)))
        return err_r(r, "weight shapes do not match the sizes");
    if (sx_mha_init(&r->attn, m->heads)) return sx_err_prefix("resampler '%s': ", r->name);
    free(r->q);
    r->q = sx_malloc(sizeof(float) * (size_t)(2 * Q * E), "resampler queries");
    if (!r->q) return -1;
    /* q = Wq (ln_q(query) + pos_embed) + bq: the same for every input, done once */
    float *t = r->q + Q * E;
    sx_norm_rows(&r->ln_q, t, r->query, Q);
    sx_add(t, t, r->pos_embed, Q * E);
    if (sx_linear_forward(&r->attn.q, r->q, t, Q) != 0) {
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

int sx_resampler_load(sx_gguf *g, const char *prefix, int n_heads, float eps, sx_resampler *r) {
    if (!g || !prefix || !r) return sx_err("sx_resampler_load: NULL argument");
    memset(r, 0, sizeof *r);
    size_t pl = strlen(prefix);
    if (pl + 40 > 256) return sx_err("sx_resampler_load: prefix '%s' too long", prefix);
    snprintf(r->name, sizeof r->name, "%.*s", (int)(pl && prefix[pl - 1] == '.' ? pl - 1 : pl), prefix);
    sx_src s = sx_src_one(g);
    char n[256];
    snprintf(n, sizeof n, "%squery", prefix);
    const sx_tensor *tq = sx_tensor_get(g, n, SX_ANY_FLOAT, SX_SHAPE(-1, -1));
    if (!tq) return -1;
    int64_t Q = tq->shape[0], E = tq->shape[1];
    r->n_queries = Q;
    r->embed_dim = E;
    r->grid = isqrt64(Q);
    if (r->grid * r->grid != Q)
        return sx_err("%s: tensor '%s' has %lld rows, not a square grid of queries",
                      sx_gguf_path(g), n, (long long)Q);
    if (n_heads <= 0 || E % n_heads)
        return sx_err("%s: resampler '%s': %d heads do not divide the width %lld", sx_gguf_path(g),
                      r->name, n_heads, (long long)E);
    r->attn.heads = n_heads;
    if (!(r->query = sx_get_f32(g, n, SX_SHAPE(Q, E)))) return -1;
    snprintf(n, sizeof n, "%spos_embed", prefix);
    if (!(r->pos_embed = sx_get_f32(g, n, SX_SHAPE(Q, E)))) return -1;
    snprintf(n, sizeof n, "%skv_proj.weight", prefix);
    const sx_tensor *tk = sx_gguf_find(g, n);
    r->kv_dim = E;
    if (tk) { /* nn.Identity when kv_dim == embed_dim: no tensor */
        if (!sx_tensor_get(g, n, SX_ANY_FLOAT, SX_SHAPE(E, -1))) return -1;
        r->kv_dim = tk->shape[1];
        snprintf(n, sizeof n, "%skv_proj", prefix);
        if (sx_linear_load(&s, n, E, r->kv_dim, SX_NO_BIAS, &r->kv_proj)) return -1;
    }
    /* attn: nn.MultiheadAttention's in_proj_weight [3E, E] = [Wq; Wk; Wv] */
    sx_weight in;
    const float *in_b;
    snprintf(n, sizeof n, "%sattn.in_proj_weight", prefix);
    if (sx_weight_get(g, n, 3 * E, E, &in) != 0 ||
        !(in_b = sx_src_vec(&s, prefix, "attn.in_proj_bias", 3 * E)))
        return -1;
    r->attn.q = (sx_linear){sx_weight_rows(&in, 0, E), in_b};
    r->attn.k = (sx_linear){sx_weight_rows(&in, E, E), in_b + E};
    r->attn.v = (sx_linear){sx_weight_rows(&in, 2 * E, E), in_b + 2 * E};
    snprintf(n, sizeof n, "%sattn.out_proj", prefix);
    if (sx_linear_load(&s, n, E, E, SX_BIAS, &r->attn.o)) return -1;
    snprintf(n, sizeof n, "%sln_q", prefix);
    if (sx_layernorm_load(&s, n, E, eps, &r->ln_q)) return -1;
    snprintf(n, sizeof n, "%sln_kv", prefix);
    if (sx_layernorm_load(&s, n, E, eps, &r->ln_kv)) return -1;
    return sx_resampler_init(r);
}

/* x [N, L, kv_dim] -> out [N, Q, E], temporaries from ws */
static int resampler_run(const sx_resampler *r, const float *x, int64_t N, int64_t L, float *out,
                         sx_arena *ws) {
    if (!r || !r->q || !x || !out) return sx_err("sx_resampler_forward: NULL argument or resampler not initialised");
    if (N <= 0 || L <= 0) return sx_err("resampler '%s': bad batch %lld x %lld tokens", r->name, (long long)N, (long long)L);
    int64_t Q = r->n_queries, E = r->embed_dim, KV = r->kv_dim, M = N * L;
    sx_arena_mark top = sx_arena_top(ws);
    float *kv = sx_arena_floats(ws, M * E, "resampler kv");
    float *kin = sx_arena_floats(ws, M * E, "resampler keys in");
    float *K = sx_arena_floats(ws, M * E, "resampler keys");
    float *ctx = sx_arena_floats(ws, N * Q * E, "resampler attention");
    float *kpos =
        r->key_pos_n == L ? r->key_pos : sx_arena_floats(ws, L * E, "resampler key positions");
    int rc = -1;
    if (!kv || !kin || !K || !ctx || !kpos) goto done;
    /* get_abs_pos(pos_embed, L): the key positions */
    if (kpos != r->key_pos && abs_pos(kpos, r->pos_embed, Q, E, L, ws) != 0) goto done;

    /* <name>.kv_proj: [N*L, KV] -> [N*L, E] (nn.Identity without the tensor) */
    if (r->kv_proj.w.data) {
        if (sx_linear_forward(&r->kv_proj, kv, x, M) != 0) goto done;
        sx_tracef(kv, 3, (int64_t[]){N, L, E}, "%s.kv_proj", r->name);
    } else {
        memcpy(kv, x, sizeof(float) * (size_t)(M * KV));
    }
    /* <name>.ln_kv */
    sx_norm_rows(&r->ln_kv, kv, kv, M);
    sx_tracef(kv, 3, (int64_t[]){N, L, E}, "%s.ln_kv", r->name);

    /* <name>.attn (nn.MultiheadAttention): k = Wk (kv + pos) + bk, v = Wv kv + bv; the
     * projected queries are r->q; each of the N sequences attends on its own */
    for (int64_t n = 0; n < N; n++) sx_add(kin + n * L * E, kv + n * L * E, kpos, L * E);
    if (sx_linear_forward(&r->attn.k, K, kin, M) != 0) goto done;
    float *V = kin; /* reuse */
    if (sx_linear_forward(&r->attn.v, V, kv, M) != 0) goto done;
    sx_attn a = sx_attn_heads(r->attn.heads, (int)(E / r->attn.heads), r->attn.scale);
    for (int64_t n = 0; n < N; n++)
        if (sx_attention(&a, ctx + n * Q * E, r->q, K + n * L * E, V + n * L * E, Q, L) != 0) goto done;
    if (sx_linear_forward(&r->attn.o, out, ctx, N * Q) != 0) goto done;
    sx_tracef(out, 3, (int64_t[]){N, Q, E}, "%s.attn", r->name);
    sx_tracef(out, 3, (int64_t[]){N, Q, E}, "%s", r->name);
    rc = 0;
done:
    if (rc) sx_err_prefix("resampler '%s': ", r->name);
    sx_arena_release(ws, top);
    return rc;
}

int sx_resampler_forward(const sx_resampler *r, const float *x, int64_t N, int64_t L, float *out) {
    sx_arena ws = {0};
    int rc = resampler_run(r, x, N, L, out, &ws);
    sx_arena_free(&ws);
    return rc;
}

/* ======================================================================
 * ViT block
 * ====================================================================== */
int sx_vit_block_forward(const sx_vit_block *b, int heads, float *x, int64_t N, int64_t T,
                         int layer, sx_arena *ws) {
    int64_t W = b ? b->ln_1.dim : 0, mlp = b ? b->c_fc.w.N : 0;
    if (!b || !x || !ws || heads <= 0 || W <= 0 || W % heads || mlp <= 0 || N <= 0 || T <= 0)
        return sx_err("vit block %d: bad arguments (width %lld, heads %d, mlp %lld, %lld x %lld tokens)",
                      layer, (long long)W, heads, (long long)mlp, (long long)N, (long long)T);
    int64_t M = N * T, hd = W / heads;
    sx_arena_mark top = sx_arena_top(ws);
    float *h = sx_arena_floats(ws, M * W, "vit block");
    float *qkv = sx_arena_floats(ws, M * (4 * W > mlp ? 4 * W : mlp), "vit block");
    float *ctx = qkv + M * 3 * W, *f = qkv; /* the attention, then the MLP */
    int rc = -1;
    int64_t shp[3] = {N, T, W};
    if (!h || !qkv) goto done;

    /* .ln_1 -> .attn: in_proj [M,W] -> [M,3W], per head h the columns
     * [3hd*h, 3hd*h+3hd) are q_h | k_h | v_h; read in place through strides */
    sx_norm_rows(&b->ln_1, h, x, M);
    if (sx_linear_forward(&b->in_proj, qkv, h, M) != 0) goto done;
    sx_attn a = {.n_heads = heads, .n_kv_heads = heads, .head_dim = (int)hd,
                 .q_tok = 3 * W, .q_head = 3 * hd, .k_tok = 3 * W, .k_head = 3 * hd,
                 .v_tok = 3 * W, .v_head = 3 * hd, .o_tok = W, .o_head = hd,
                 .scale = 1.0f / sqrtf((float)hd)};
    for (int64_t n = 0; n < N; n++) {
        const float *base = qkv + n * T * 3 * W;
        if (sx_attention(&a, ctx + n * T * W, base, base + hd, base + 2 * hd, T, T) != 0) goto done;
    }
    if (sx_linear_forward(&b->out_proj, h, ctx, M) != 0) goto done; /* heads concatenated */
    if (layer >= 0) sx_tracef(h, 3, shp, "transformer.resblocks.%d.attn", layer);
    sx_add(x, x, h, M * W);

    /* .ln_2 -> .mlp: c_fc [M,W] -> [M,mlp], GELU (erf), c_proj -> [M,W] */
    sx_norm_rows(&b->ln_2, h, x, M);
    if (sx_linear_act(&b->c_fc, f, h, M, SX_ACT_GELU) != 0) goto done;
    if (sx_linear_forward(&b->c_proj, h, f, M) != 0) goto done;
    if (layer >= 0) sx_tracef(h, 3, shp, "transformer.resblocks.%d.mlp", layer);
    sx_add(x, x, h, M * W);
    rc = 0;
done:
    if (rc) sx_err_prefix("transformer.resblocks.%d: ", layer);
    sx_arena_release(ws, top);
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

static int load_block(const sx_src *s, const sx_vit_config *c, int i, sx_vit_block *b) {
    char n[160];
    int64_t W = c->width, M = c->mlp_width;
#define SUB(key) (snprintf(n, sizeof n, "transformer.resblocks.%d.%s", i, key), n)
    if (sx_layernorm_load(s, SUB("ln_1"), W, c->ln_eps, &b->ln_1) ||
        sx_linear_load(s, SUB("attn.in_proj"), 3 * W, W, SX_BIAS, &b->in_proj) ||
        sx_linear_load(s, SUB("attn.out_proj"), W, W, SX_BIAS, &b->out_proj) ||
        sx_layernorm_load(s, SUB("ln_2"), W, c->ln_eps, &b->ln_2) ||
        sx_linear_load(s, SUB("mlp.c_fc"), M, W, SX_BIAS, &b->c_fc) ||
        sx_linear_load(s, SUB("mlp.c_proj"), W, M, SX_BIAS, &b->c_proj))
        return -1;
#undef SUB
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
    sx_src s = sx_src_one(g);
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
        sx_layernorm_load(&s, "ln_pre", W, c->ln_eps, &v->ln_pre))
        goto fail;
    v->blocks = sx_calloc((size_t)c->layers, sizeof *v->blocks, "vit blocks");
    if (!v->blocks) goto fail;
    for (int i = 0; i < c->layers; i++)
        if (load_block(&s, c, i, &v->blocks[i])) goto fail;
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
    if (sx_layernorm_load(&s, "ln_post", E, c->ln_eps, &v->ln_post) ||
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
/* conv1: [3,S,S] -> [W, grid, grid] per image (stride = kernel = patch, no bias) -> tokens
 * x [T, W] (raster order) + get_abs_pos(positional_embedding, T) */
static int embed_patches(const sx_vit *v, const float *pixels, int64_t N, int64_t S, float *x,
                         sx_arena *ws) {
    const sx_vit_config *c = &v->c;
    int64_t P = c->patch_size, W = c->width, grid = S / P, T = grid * grid;
    sx_arena_mark top = sx_arena_top(ws);
    int rc = -1;
    float *conv = sx_arena_floats(ws, N * W * T, "vit conv1");
    /* positions: cached for image_size */
    float *pos = grid == v->pos_grid_n ? v->pos : sx_arena_floats(ws, T * W, "vit positions");
    if (!conv || !pos) goto done;
    if (pos != v->pos && abs_pos(pos, v->positional_embedding, c->pos_grid * c->pos_grid, W, T, ws))
        goto done;
    sx_conv geom = {.cin = 3, .cout = (int)W, .kh = (int)P, .kw = (int)P, .stride = (int)P};
    for (int64_t n = 0; n < N; n++)
        if (sx_conv2d(conv + n * W * T, pixels + n * 3 * S * S, S, S, &geom, &v->conv1, NULL, NULL,
                      NULL))
            goto done;
    sx_tracef(conv, 4, (int64_t[]){N, W, grid, grid}, "conv1");
    for (int64_t n = 0; n < N; n++) {
        sx_transpose(x + n * T * W, conv + n * W * T, W, T);
        sx_add(x + n * T * W, x + n * T * W, pos, T * W);
    }
    rc = 0;
done:
    sx_arena_release(ws, top);
    return rc;
}

int sx_vit_forward(const sx_vit *v, const float *pixels, int64_t N, int64_t S, float *out) {
    if (!v || !pixels || !out) return sx_err("sx_vit_forward: NULL argument");
    const sx_vit_config *c = &v->c;
    int64_t P = c->patch_size, W = c->width, E = c->output_dim, Q = c->n_queries;
    if (N <= 0 || S < P || S > 65536)
        return sx_err("sx_vit_forward: bad input [%lld,3,%lld,%lld] (patch size %lld)", (long long)N,
                      (long long)S, (long long)S, (long long)P);
    int64_t grid = S / P, T = grid * grid, M = N * T;
    sx_arena ws = {0};
    float *x = sx_arena_floats(&ws, M * W, "vit activations");
    float *pooled = sx_arena_floats(&ws, N * Q * E, "vit pooled");
    int rc = -1;
    /* conv1 + positions: [N, 3, S, S] -> [N, T, W]; ln_pre */
    if (!x || !pooled || embed_patches(v, pixels, N, S, x, &ws)) goto done;
    sx_norm_rows(&v->ln_pre, x, x, M);
    sx_tracef(x, 3, (int64_t[]){N, T, W}, "ln_pre");
    /* transformer.resblocks.*: [N, T, W] */
    for (int i = 0; i < c->layers; i++) {
        if (sx_vit_block_forward(&v->blocks[i], (int)c->heads, x, N, T, i, &ws)) goto done;
        sx_tracef(x, 3, (int64_t[]){N, T, W}, "transformer.resblocks.%d", i);
    }
    /* attn_pool: [N, T, W] -> [N, Q, E] */
    if (resampler_run(&v->attn_pool, x, N, T, pooled, &ws)) goto done;
    /* ln_post, x @ proj: [N, Q, E] */
    sx_norm_rows(&v->ln_post, pooled, pooled, N * Q);
    sx_tracef(pooled, 3, (int64_t[]){N, Q, E}, "ln_post");
    if (sx_matmul(out, pooled, &v->proj, NULL, N * Q)) goto done;
    sx_tracef(out, 3, (int64_t[]){N, Q, E}, "output");
    rc = 0;
done:
    if (rc) sx_err_prefix("vit forward: ");
    sx_arena_free(&ws);
    return rc;
}

/* vit_down: [n, D] -> [n/4, D], the mean of every 4 consecutive tokens */
int sx_vit_down(float *y, const float *x, int64_t n, int64_t D) {
    if (!y || !x || n <= 0 || D <= 0 || n % 4)
        return sx_err("vit_down: %lld tokens is not a positive multiple of 4", (long long)n);
    sx_avgpool_tokens(y, x, n, D, 4);
    return 0;
}
