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

static const float *vec(sx_gguf *g, const char *prefix, const char *name, int64_t n) {
    char key[256];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    return sx_get_f32(g, key, SX_SHAPE(n));
}

static int mat(sx_gguf *g, const char *prefix, const char *name, int64_t N, int64_t K,
               sx_weight *w) {
    char key[256];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    return sx_weight_get(g, key, N, K, w);
}

int sx_detok_load(sx_gguf *g, const char *prefix, sx_detok *d) {
    if (!g || !prefix || !d) return sx_err("sx_detok_load: NULL argument");
    memset(d, 0, sizeof *d);
    char key[256];
    /* sizes from the tensors themselves */
    snprintf(key, sizeof key, "%slatents", prefix);
    const sx_tensor *t = sx_tensor_get(g, key, SX_ANY_FLOAT, SX_SHAPE(1, -1, -1));
    if (!t) return -1;
    d->n_queries = (int)t->shape[1];
    d->dim = (int)t->shape[2];
    snprintf(key, sizeof key, "%sproj_in.weight", prefix);
    if (!(t = sx_tensor_get(g, key, SX_ANY_FLOAT, SX_SHAPE(d->dim, -1)))) return -1;
    d->embed_dim = (int)t->shape[1];
    snprintf(key, sizeof key, "%slayers.0.1.1.weight", prefix);
    if (!(t = sx_tensor_get(g, key, SX_ANY_FLOAT, SX_SHAPE(-1, d->dim)))) return -1;
    d->ff_dim = (int)t->shape[0];
    snprintf(key, sizeof key, "%sunet_proj_1.weight", prefix);
    if (!(t = sx_tensor_get(g, key, SX_ANY_FLOAT, SX_SHAPE(-1, d->dim)))) return -1;
    d->out1 = (int)t->shape[0];
    snprintf(key, sizeof key, "%sunet_proj_2.weight", prefix);
    if (!(t = sx_tensor_get(g, key, SX_ANY_FLOAT, SX_SHAPE(-1, d->dim)))) return -1;
    d->out2 = (int)t->shape[0];
    while (1) {
        snprintf(key, sizeof key, "%slayers.%d.0.to_q.weight", prefix, d->depth);
        if (!sx_gguf_find(g, key)) break;
        d->depth++;
    }
    if (d->depth == 0)
        return sx_err("%s: no '%slayers.0.0.to_q.weight': not a ResamplerXLV2", sx_gguf_path(g),
                      prefix);
    snprintf(key, sizeof key, "%slayers.0.0.to_q.weight", prefix);
    if (!(t = sx_tensor_get(g, key, SX_ANY_FLOAT, SX_SHAPE(-1, d->dim)))) return -1;
    int64_t inner = t->shape[0];
    d->heads = (int)sx_meta_int_or(g, "seedx.detok.heads", 16);
    d->pool_heads = (int)sx_meta_int_or(g, "seedx.detok.pool_heads", d->heads);
    d->normalize = (int)sx_meta_int_or(g, "seedx.detok.normalize", 0);
    d->eps = (float)sx_meta_float_or(g, "seedx.detok.eps", 1e-5);
    if (d->heads <= 0 || inner % d->heads || d->pool_heads <= 0 || d->dim % d->pool_heads)
        return sx_err("%s: seedx.detok.heads=%d does not divide the attention width %lld (dim %d)",
                      sx_gguf_path(g), d->heads, (long long)inner, d->dim);
    d->dim_head = (int)(inner / d->heads);

    int64_t D = d->dim, Q = d->n_queries;
    snprintf(key, sizeof key, "%slatents", prefix);
    if (!(d->latents = sx_get_f32(g, key, SX_SHAPE(1, Q, D)))) return -1;
    if (mat(g, prefix, "proj_in.weight", D, d->embed_dim, &d->proj_in) ||
        !(d->proj_in_b = vec(g, prefix, "proj_in.bias", D)))
        return -1;
    d->layers = sx_calloc((size_t)d->depth, sizeof *d->layers, "detokenizer layers");
    if (!d->layers) return -1;
    for (int i = 0; i < d->depth; i++) {
        sx_perceiver_layer *L = &d->layers[i];
        char p[200];
        snprintf(p, sizeof p, "%slayers.%d.", prefix, i);
        if (!(L->norm1_w = vec(g, p, "0.norm1.weight", D)) || !(L->norm1_b = vec(g, p, "0.norm1.bias", D)) ||
            !(L->norm2_w = vec(g, p, "0.norm2.weight", D)) || !(L->norm2_b = vec(g, p, "0.norm2.bias", D)) ||
            mat(g, p, "0.to_q.weight", inner, D, &L->to_q) ||
            mat(g, p, "0.to_kv.weight", 2 * inner, D, &L->to_kv) ||
            mat(g, p, "0.to_out.weight", D, inner, &L->to_out) ||
            !(L->ff_norm_w = vec(g, p, "1.0.weight", D)) || !(L->ff_norm_b = vec(g, p, "1.0.bias", D)) ||
            mat(g, p, "1.1.weight", d->ff_dim, D, &L->ff_in) ||
            mat(g, p, "1.3.weight", D, d->ff_dim, &L->ff_out)) {
            sx_detok_free(d);
            return -1;
        }
    }
    if (!(d->norm_out_w = vec(g, prefix, "norm_out.weight", D)) ||
        !(d->norm_out_b = vec(g, prefix, "norm_out.bias", D)) ||
        mat(g, prefix, "unet_proj_1.weight", d->out1, D, &d->unet_proj_1) ||
        !(d->unet_proj_1_b = vec(g, prefix, "unet_proj_1.bias", d->out1)) ||
        mat(g, prefix, "unet_proj_2.weight", d->out2, D, &d->unet_proj_2) ||
        !(d->unet_proj_2_b = vec(g, prefix, "unet_proj_2.bias", d->out2)) ||
        mat(g, prefix, "unet_attnpool.q_proj.weight", D, D, &d->pool_q) ||
        mat(g, prefix, "unet_attnpool.k_proj.weight", D, D, &d->pool_k) ||
        mat(g, prefix, "unet_attnpool.v_proj.weight", D, D, &d->pool_v) ||
        mat(g, prefix, "unet_attnpool.c_proj.weight", d->out2, D, &d->pool_c) ||
        !(d->pool_q_b = vec(g, prefix, "unet_attnpool.q_proj.bias", D)) ||
        !(d->pool_k_b = vec(g, prefix, "unet_attnpool.k_proj.bias", D)) ||
        !(d->pool_v_b = vec(g, prefix, "unet_attnpool.v_proj.bias", D)) ||
        !(d->pool_c_b = vec(g, prefix, "unet_attnpool.c_proj.bias", d->out2))) {
        sx_detok_free(d);
        return -1;
    }
    snprintf(key, sizeof key, "%sunet_attnpool.positional_embedding", prefix);
    if (!(d->pool_pos = sx_get_f32(g, key, SX_SHAPE(Q + 1, D)))) {
        sx_detok_free(d);
        return -1;
    }
    return 0;
}

void sx_detok_free(sx_detok *d) {
    if (!d) return;
    free(d->layers);
    d->layers = NULL;
}

/* layers.i.0: PerceiverAttention(x, latents) -> [Q, dim] (no residual) */
static int perceiver_attention(const sx_detok *d, const sx_perceiver_layer *L, const float *x,
                               int64_t n, const float *lat, float *out, float *buf) {
    int64_t D = d->dim, Q = d->n_queries, inner = (int64_t)d->heads * d->dim_head;
    float *kv_in = buf;                   /* [n+Q, D]: norm1(x) then norm2(latents) */
    float *q = kv_in + (n + Q) * D;       /* [Q, inner] */
    float *kv = q + Q * inner;            /* [n+Q, 2*inner]: k | v */
    float *ctx = kv + (n + Q) * 2 * inner; /* [Q, inner] */
    sx_layernorm(kv_in, x, L->norm1_w, L->norm1_b, n, D, d->eps);
    sx_layernorm(kv_in + n * D, lat, L->norm2_w, L->norm2_b, Q, D, d->eps);
    if (sx_matmul(q, kv_in + n * D, &L->to_q, NULL, Q) ||
        sx_matmul(kv, kv_in, &L->to_kv, NULL, n + Q))
        return -1;
    /* (q d^-1/4)(k d^-1/4)^T = q k^T / sqrt(d) */
    sx_attn a = {d->heads, d->heads, d->dim_head, inner, d->dim_head, 2 * inner, d->dim_head,
                 2 * inner, d->dim_head, inner, d->dim_head,
                 1.0f / sqrtf((float)d->dim_head), 0, 0};
    if (sx_attention(&a, ctx, q, kv, kv + inner, Q, n + Q)) return -1;
    return sx_matmul(out, ctx, &L->to_out, NULL, Q);
}

int sx_detok_forward(const sx_detok *d, const float *x_in, int64_t n, float *prompt_embeds,
                     float *pooled) {
    if (!d || !d->layers || !x_in || n <= 0 || !prompt_embeds || !pooled)
        return sx_err("sx_detok_forward: bad arguments (n=%lld)", (long long)n);
    int64_t D = d->dim, Q = d->n_queries, E = d->embed_dim, inner = (int64_t)d->heads * d->dim_head;
    int64_t F = d->ff_dim > D ? d->ff_dim : D;
    size_t need = (size_t)(n * E)                                   /* normalized x */
                  + (size_t)(n * D)                                 /* proj_in(x) */
                  + (size_t)(Q * D) * 3                             /* latents, tmp, h */
                  + (size_t)((n + Q) * D + Q * inner + (n + Q) * 2 * inner + Q * inner) /* attn */
                  + (size_t)(Q * F)                                 /* ffn */
                  + (size_t)((Q + 1) * D) * 3 + (size_t)(D * 2);    /* pool */
    float *mem = sx_malloc(need * sizeof(float), "detokenizer activations");
    if (!mem) return -1;
    float *xn = mem, *x = xn + n * E, *lat = x + n * D, *tmp = lat + Q * D, *h = tmp + Q * D;
    float *abuf = h + Q * D, *ff = abuf + (n + Q) * D + Q * inner + (n + Q) * 2 * inner + Q * inner;
    float *tok = ff + Q * F, *pk = tok + (Q + 1) * D, *pv = pk + (Q + 1) * D, *pq = pv + (Q + 1) * D;
    float *po = pq + D;
    int rc = -1;

    /* normalize=True: F.normalize(x) (p=2 over dim 1 = the token axis) */
    const float *xs = x_in;
    if (d->normalize) {
        for (int64_t c = 0; c < E; c++) {
            double ss = 0;
            for (int64_t i = 0; i < n; i++) ss += (double)x_in[i * E + c] * x_in[i * E + c];
            float nrm = (float)sqrt(ss);
            if (nrm < 1e-12f) nrm = 1e-12f;
            for (int64_t i = 0; i < n; i++) xn[i * E + c] = x_in[i * E + c] / nrm;
        }
        xs = xn;
    }
    /* proj_in: [n, E] -> [n, D] */
    if (sx_matmul(x, xs, &d->proj_in, d->proj_in_b, n)) goto out;
    int64_t sx[2] = {n, D}, sq[2] = {Q, D};
    sx_trace("resampler.proj_in", x, 2, sx);
    memcpy(lat, d->latents, sizeof(float) * (size_t)(Q * D));
    for (int i = 0; i < d->depth; i++) {
        const sx_perceiver_layer *L = &d->layers[i];
        /* layers.i.0: latents = attn(x, latents) + latents */
        if (perceiver_attention(d, L, x, n, lat, tmp, abuf)) goto out;
        sx_add(lat, lat, tmp, Q * D);
        sx_tracef(lat, 2, sq, "resampler.layers.%d.0", i);
        /* layers.i.1: latents = ff(latents) + latents; ff = LN, Linear, GELU, Linear */
        sx_layernorm(tmp, lat, L->ff_norm_w, L->ff_norm_b, Q, D, d->eps);
        if (sx_matmul(ff, tmp, &L->ff_in, NULL, Q)) goto out;
        sx_gelu(ff, ff, Q * d->ff_dim);
        if (sx_matmul(tmp, ff, &L->ff_out, NULL, Q)) goto out;
        sx_add(lat, lat, tmp, Q * D);
        sx_tracef(lat, 2, sq, "resampler.layers.%d.1", i);
    }
    /* norm_out, then prompt_embeds = [unet_proj_1(h) | unet_proj_2(h)] */
    sx_layernorm(h, lat, d->norm_out_w, d->norm_out_b, Q, D, d->eps);
    sx_trace("resampler.norm_out", h, 2, sq);
    int64_t W = d->out1 + d->out2;
    if (sx_matmul_ld(prompt_embeds, W, h, D, &d->unet_proj_1, d->unet_proj_1_b, Q) ||
        sx_matmul_ld(prompt_embeds + d->out1, W, h, D, &d->unet_proj_2, d->unet_proj_2_b, Q))
        goto out;
    int64_t sp[2] = {Q, W};
    sx_trace("resampler.prompt_embeds", prompt_embeds, 2, sp);

    /* unet_attnpool: tokens [mean(h); h] + pos; only query 0 is kept */
    for (int64_t c = 0; c < D; c++) {
        double s = 0;
        for (int64_t i = 0; i < Q; i++) s += h[i * D + c];
        tok[c] = (float)(s / (double)Q);
    }
    memcpy(tok + D, h, sizeof(float) * (size_t)(Q * D));
    sx_add(tok, tok, d->pool_pos, (Q + 1) * D);
    if (sx_matmul(pq, tok, &d->pool_q, d->pool_q_b, 1) ||
        sx_matmul(pk, tok, &d->pool_k, d->pool_k_b, Q + 1) ||
        sx_matmul(pv, tok, &d->pool_v, d->pool_v_b, Q + 1))
        goto out;
    int hd = d->dim / d->pool_heads;
    sx_attn pa = {d->pool_heads, d->pool_heads, hd, D, hd, D, hd, D, hd, D, hd,
                  1.0f / sqrtf((float)hd), 0, 0};
    if (sx_attention(&pa, po, pq, pk, pv, 1, Q + 1)) goto out;
    if (sx_matmul(pooled, po, &d->pool_c, d->pool_c_b, 1)) goto out;
    int64_t so[1] = {d->out2};
    sx_trace("resampler.unet_attnpool", pooled, 1, so);
    rc = 0;
out:
    free(mem);
    return rc;
}
