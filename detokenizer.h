/* detokenizer.h - SEED-X's de-tokenizer adapter: ResamplerXLV2
 * (src/models/detokenizer/resampler.py), which turns 64 or 256 visual
 * features [n, 4096] into SDXL's conditioning: prompt embeddings [64, 2048]
 * (unet_proj_1 | unet_proj_2) and a pooled embedding [1280]. */
#ifndef SEEDX_DETOKENIZER_H
#define SEEDX_DETOKENIZER_H

#include "gguf.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* resampler.layers.i: PerceiverAttention (.0) + FeedForward (.1) */
typedef struct sx_perceiver_layer {
    const float *norm1_w, *norm1_b, *norm2_w, *norm2_b; /* .0.norm1 / .0.norm2 [dim] */
    sx_weight to_q;                                     /* .0.to_q   [inner, dim] */
    sx_weight to_kv;                                    /* .0.to_kv  [2*inner, dim] */
    sx_weight to_out;                                   /* .0.to_out [dim, inner] */
    const float *ff_norm_w, *ff_norm_b;                 /* .1.0 LayerNorm [dim] */
    sx_weight ff_in;                                    /* .1.1 [ff, dim], no bias */
    sx_weight ff_out;                                   /* .1.3 [dim, ff], no bias */
} sx_perceiver_layer;

typedef struct sx_detok {
    /* hyperparameters (from tensor shapes; heads from metadata) */
    int dim, depth, heads, dim_head, n_queries, embed_dim, out1, out2, ff_dim, pool_heads;
    int normalize; /* F.normalize(x) over the token axis before proj_in */
    float eps;     /* LayerNorm eps (nn.LayerNorm default 1e-5) */
    const float *latents;                 /* latents [1, n_queries, dim] */
    sx_weight proj_in;                    /* proj_in [dim, embed_dim] */
    const float *proj_in_b;
    sx_perceiver_layer *layers;           /* depth */
    const float *norm_out_w, *norm_out_b; /* norm_out [dim] */
    sx_weight unet_proj_1, unet_proj_2;   /* [out1, dim], [out2, dim] */
    const float *unet_proj_1_b, *unet_proj_2_b;
    /* unet_attnpool: AttentionPool2d(seq_len=n_queries, dim, heads, out2) */
    const float *pool_pos; /* positional_embedding [n_queries + 1, dim] */
    sx_weight pool_q, pool_k, pool_v, pool_c;
    const float *pool_q_b, *pool_k_b, *pool_v_b, *pool_c_b;
} sx_detok;

/* Loads the adapter from g, tensors under `prefix` (the checkpoint's
 * "resampler."). Metadata: seedx.detok.heads (default 16),
 * seedx.detok.normalize (default 0). */
int sx_detok_load(sx_gguf *g, const char *prefix, sx_detok *d);
void sx_detok_free(sx_detok *d);

/* x [n, embed_dim] -> prompt_embeds [n_queries, out1 + out2], pooled [out2]. */
int sx_detok_forward(const sx_detok *d, const float *x, int64_t n, float *prompt_embeds,
                     float *pooled);

#ifdef __cplusplus
}
#endif
#endif
