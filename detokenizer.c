/* detokenizer.c - ResamplerXLV2, the adapter at the front of SEED-X's
 * de-tokenizer (SEED-X src/models/detokenizer/resampler.py).
 *
 *   x [n, 4096] --proj_in--> [n, 1024]
 *   latents [64, 1024] -> 4 x { latents += PerceiverAttention(x, latents)
 *                               latents += FeedForward(latents) }
 *   h = norm_out(latents)
 *   prompt_embeds = [unet_proj_1(h) | unet_proj_2(h)]      [64, 768+1280]
 *   pooled        = AttentionPool2d(h)                      [1280]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detokenizer.h"
#include "sx_core.h"

int sx_detok_load(sx_gguf *g, const char *prefix, sx_detok *d) {
    if (!g || !prefix || !d) return sx_err("sx_detok_load: NULL argument");
    memset(d, 0, sizeof *d);
    char key[256];
#define KEY(...) (snprintf(key, sizeof key, __VA_ARGS__), key)
    /* sizes from the tensors themselves */
#define SHAPE_OF(name, ...)                                                                        \
    sx_tensor_get(g, KEY("%s" name, prefix), SX_ANY_FLOAT, SX_SHAPE(__VA_ARGS__))
    const sx_tensor *t = SHAPE_OF("latents", 1, -1, -1);
    if (!t) return -1;
    d->n_queries = (int)t->shape[1];
    d->dim = (int)t->shape[2];
    if (!(t = SHAPE_OF("proj_in.weight", d->dim, -1))) return -1;
    d->embed_dim = (int)t->shape[1];
    if (!(t = SHAPE_OF("layers.0.1.1.weight", -1, d->dim))) return -1;
    d->ff_dim = (int)t->shape[0];
    if (!(t = SHAPE_OF("unet_proj_1.weight", -1, d->dim))) return -1;
    d->out1 = (int)t->shape[0];
    if (!(t = SHAPE_OF("unet_proj_2.weight", -1, d->dim))) return -1;
    d->out2 = (int)t->shape[0];
    while (sx_gguf_find(g, KEY("%slayers.%d.0.to_q.weight", prefix, d->depth))) d->depth++;
    if (d->depth == 0)
        return sx_err("%s: no '%slayers.0.0.to_q.weight': not a ResamplerXLV2", sx_gguf_path(g),
                      prefix);
    if (!(t = SHAPE_OF("layers.0.0.to_q.weight", -1, d->dim))) return -1;
#undef SHAPE_OF
    int64_t inner = t->shape[0];
    d->heads = (int)sx_meta_int_or(g, "seedx.detok.heads", 16);
    int pool_heads = (int)sx_meta_int_or(g, "seedx.detok.pool_heads", d->heads);
    d->normalize = (int)sx_meta_int_or(g, "seedx.detok.normalize", 0);
    float eps = (float)sx_meta_float_or(g, "seedx.detok.eps", 1e-5);
    if (d->heads <= 0 || inner % d->heads || pool_heads <= 0 || d->dim % pool_heads)
        return sx_err("%s: seedx.detok.heads=%d does not divide the attention width %lld (dim %d)",
                      sx_gguf_path(g), d->heads, (long long)inner, d->dim);
    d->dim_head = (int)(inner / d->heads);

    sx_src s = sx_src_one(g);
    int64_t D = d->dim, Q = d->n_queries;
    if (!(d->latents = sx_get_f32(g, KEY("%slatents", prefix), SX_SHAPE(1, Q, D))) ||
        sx_linear_load(&s, KEY("%sproj_in", prefix), D, d->embed_dim, SX_BIAS, &d->proj_in))
        return -1;
    d->layers = sx_calloc((size_t)d->depth, sizeof *d->layers, "detokenizer layers");
    if (!d->layers) return -1;
    for (int i = 0; i < d->depth; i++) {
        sx_perceiver_layer *L = &d->layers[i];
#define LAYER(name) KEY("%slayers.%d.%s", prefix, i, name)
        if (sx_layernorm_load(&s, LAYER("0.norm1"), D, eps, &L->norm1) ||
            sx_layernorm_load(&s, LAYER("0.norm2"), D, eps, &L->norm2) ||
            sx_linear_load(&s, LAYER("0.to_q"), inner, D, SX_NO_BIAS, &L->to_q) ||
            sx_linear_load(&s, LAYER("0.to_kv"), 2 * inner, D, SX_NO_BIAS, &L->to_kv) ||
            sx_linear_load(&s, LAYER("0.to_out"), D, inner, SX_NO_BIAS, &L->to_out) ||
            sx_layernorm_load(&s, LAYER("1.0"), D, eps, &L->ff_norm) ||
            sx_linear_load(&s, LAYER("1.1"), d->ff_dim, D, SX_NO_BIAS, &L->ff_in) ||
            sx_linear_load(&s, LAYER("1.3"), D, d->ff_dim, SX_NO_BIAS, &L->ff_out))
            goto fail;
#undef LAYER
    }
    sx_mha *P = &d->pool;
    if (sx_layernorm_load(&s, KEY("%snorm_out", prefix), D, eps, &d->norm_out) ||
        sx_linear_load(&s, KEY("%sunet_proj_1", prefix), d->out1, D, SX_BIAS, &d->unet_proj_1) ||
        sx_linear_load(&s, KEY("%sunet_proj_2", prefix), d->out2, D, SX_BIAS, &d->unet_proj_2) ||
        sx_linear_load(&s, KEY("%sunet_attnpool.q_proj", prefix), D, D, SX_BIAS, &P->q) ||
        sx_linear_load(&s, KEY("%sunet_attnpool.k_proj", prefix), D, D, SX_BIAS, &P->k) ||
        sx_linear_load(&s, KEY("%sunet_attnpool.v_proj", prefix), D, D, SX_BIAS, &P->v) ||
        sx_linear_load(&s, KEY("%sunet_attnpool.c_proj", prefix), d->out2, D, SX_BIAS, &P->o) ||
        sx_mha_init(P, pool_heads) ||
        !(d->pool_pos = sx_get_f32(g, KEY("%sunet_attnpool.positional_embedding", prefix),
                                   SX_SHAPE(Q + 1, D))))
        goto fail;
#undef KEY
    return 0;
fail:
    sx_detok_free(d);
    return -1;
}

void sx_detok_free(sx_detok *d) {
    if (!d) return;
    free(d->layers);
    d->layers = NULL;
}

/* layers.i.0: latents += PerceiverAttention(x, latents): the queries come from
 * the latents, keys and values from [norm1(x); norm2(latents)] */
static int perceiver_attention(const sx_detok *d, const sx_perceiver_layer *L, const float *x,
                               int64_t n, float *lat, sx_arena *ws) {
    int64_t D = d->dim, Q = d->n_queries, inner = (int64_t)d->heads * d->dim_head;
    sx_arena_mark top = sx_arena_top(ws);
    float *kv_in = sx_arena_floats(ws, (n + Q) * D, "perceiver kv input");
    float *q = sx_arena_floats(ws, Q * inner, "perceiver q");
    float *kv = sx_arena_floats(ws, (n + Q) * 2 * inner, "perceiver k|v");
    float *ctx = sx_arena_floats(ws, Q * inner, "perceiver attention");
    int rc = -1;
    if (!kv_in || !q || !kv || !ctx) goto done;
    sx_norm_rows(&L->norm1, kv_in, x, n);
    sx_norm_rows(&L->norm2, kv_in + n * D, lat, Q);
    if (sx_linear_forward(&L->to_q, q, kv_in + n * D, Q) ||
        sx_linear_forward(&L->to_kv, kv, kv_in, n + Q))
        goto done;
    /* (q d^-1/4)(k d^-1/4)^T = q k^T / sqrt(d); k and v interleaved in to_kv's rows */
    int dh = d->dim_head;
    sx_attn a = {.n_heads = d->heads, .n_kv_heads = d->heads, .head_dim = dh,
                 .q_tok = inner, .q_head = dh, .k_tok = 2 * inner, .k_head = dh,
                 .v_tok = 2 * inner, .v_head = dh, .o_tok = inner, .o_head = dh,
                 .scale = 1.0f / sqrtf((float)dh)};
    if (sx_attention(&a, ctx, q, kv, kv + inner, Q, n + Q) ||
        sx_linear_add(&L->to_out, lat, ctx, Q))
        goto done;
    rc = 0;
done:
    sx_arena_release(ws, top);
    return rc;
}

/* layers.i.1: latents += FeedForward(latents) = Linear(GELU(Linear(LayerNorm))) */
static int feed_forward(const sx_detok *d, const sx_perceiver_layer *L, float *lat, sx_arena *ws) {
    int64_t D = d->dim, Q = d->n_queries;
    sx_arena_mark top = sx_arena_top(ws);
    float *t = sx_arena_floats(ws, Q * D, "feed-forward norm");
    float *ff = sx_arena_floats(ws, Q * d->ff_dim, "feed-forward");
    int rc = -1;
    if (t && ff) {
        sx_norm_rows(&L->ff_norm, t, lat, Q);
        if (!sx_linear_act(&L->ff_in, ff, t, Q, SX_ACT_GELU))
            rc = sx_linear_add(&L->ff_out, lat, ff, Q);
    }
    sx_arena_release(ws, top);
    return rc;
}

/* unet_attnpool (AttentionPool2d): tokens [mean(h); h] + positional_embedding,
 * attention of the first token only -> c_proj -> pooled [out2] */
static int attention_pool(const sx_detok *d, const float *h, float *pooled, sx_arena *ws) {
    int64_t D = d->dim, Q = d->n_queries;
    sx_arena_mark top = sx_arena_top(ws);
    float *tok = sx_arena_floats(ws, (Q + 1) * D, "attention pool tokens");
    int rc = -1;
    if (tok) {
        for (int64_t c = 0; c < D; c++) {
            double s = 0;
            for (int64_t i = 0; i < Q; i++) s += h[i * D + c];
            tok[c] = (float)(s / (double)Q);
        }
        memcpy(tok + D, h, sizeof(float) * (size_t)(Q * D));
        sx_add(tok, tok, d->pool_pos, (Q + 1) * D);
        rc = sx_mha_forward(&d->pool, pooled, tok, 1, tok, tok, Q + 1, 0, ws);
    }
    sx_arena_release(ws, top);
    return rc;
}

/* x [n, E] -> proj_in(F.normalize(x) when normalize=True, p=2 over the token axis) [n, D] */
static int project_in(const sx_detok *d, const float *x_in, int64_t n, float *x, sx_arena *ws) {
    int64_t E = d->embed_dim;
    if (!d->normalize) return sx_linear_forward(&d->proj_in, x, x_in, n);
    sx_arena_mark top = sx_arena_top(ws);
    float *xn = sx_arena_floats(ws, n * E, "detokenizer normalized input");
    int rc = -1;
    if (xn) {
        for (int64_t c = 0; c < E; c++) {
            double ss = 0;
            for (int64_t i = 0; i < n; i++) ss += (double)x_in[i * E + c] * x_in[i * E + c];
            float nrm = (float)sqrt(ss);
            if (nrm < 1e-12f) nrm = 1e-12f;
            for (int64_t i = 0; i < n; i++) xn[i * E + c] = x_in[i * E + c] / nrm;
        }
        rc = sx_linear_forward(&d->proj_in, x, xn, n);
    }
    sx_arena_release(ws, top);
    return rc;
}

int sx_detok_forward(const sx_detok *d, const float *x_in, int64_t n, float *prompt_embeds,
                     float *pooled) {
    if (!d || !d->layers || !x_in || n <= 0 || !prompt_embeds || !pooled)
        return sx_err("sx_detok_forward: bad arguments (n=%lld)", (long long)n);
    int64_t D = d->dim, Q = d->n_queries, W = d->out1 + d->out2;
    int64_t sx[2] = {n, D}, sq[2] = {Q, D}, sp[2] = {Q, W}, so[1] = {d->out2};
    sx_arena ws = {0};
    float *x = sx_arena_floats(&ws, n * D, "detokenizer input");
    float *lat = sx_arena_floats(&ws, Q * D, "detokenizer latents");
    float *h = sx_arena_floats(&ws, Q * D, "detokenizer output");
    int rc = -1;
    /* proj_in: [n, E] -> [n, D] */
    if (!x || !lat || !h || project_in(d, x_in, n, x, &ws)) goto out;
    sx_trace("resampler.proj_in", x, 2, sx);
    /* layers.i: latents [Q, D] += PerceiverAttention(x, latents); += FeedForward(latents) */
    memcpy(lat, d->latents, sizeof(float) * (size_t)(Q * D));
    for (int i = 0; i < d->depth; i++) {
        if (perceiver_attention(d, &d->layers[i], x, n, lat, &ws)) goto out;
        sx_tracef(lat, 2, sq, "resampler.layers.%d.0", i);
        if (feed_forward(d, &d->layers[i], lat, &ws)) goto out;
        sx_tracef(lat, 2, sq, "resampler.layers.%d.1", i);
    }
    /* norm_out, then prompt_embeds = [unet_proj_1(h) | unet_proj_2(h)] [Q, out1 + out2] */
    sx_norm_rows(&d->norm_out, h, lat, Q);
    sx_trace("resampler.norm_out", h, 2, sq);
    if (sx_linear_ld(&d->unet_proj_1, prompt_embeds, W, h, D, Q, SX_ACT_NONE, 0) ||
        sx_linear_ld(&d->unet_proj_2, prompt_embeds + d->out1, W, h, D, Q, SX_ACT_NONE, 0))
        goto out;
    sx_trace("resampler.prompt_embeds", prompt_embeds, 2, sp);
    /* unet_attnpool: [Q, D] -> pooled [out2] */
    if (attention_pool(d, h, pooled, &ws)) goto out;
    sx_trace("resampler.unet_attnpool", pooled, 1, so);
    rc = 0;
out:
    sx_arena_free(&ws);
    return rc;
}
