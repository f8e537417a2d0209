/* detokenizer.h - SEED-X's de-tokenizer adapter: ResamplerXLV2
 * (src/models/detokenizer/resampler.py), which turns 64 or 256 visual
 * features [n, 4096] into SDXL's conditioning: prompt embeddings [64, 2048]
 * (unet_proj_1 | unet_proj_2) and a pooled embedding [1280]. */
#ifndef SEEDX_DETOKENIZER_H
#define SEEDX_DETOKENIZER_H

#include "gguf.h"
#include "nn.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* resampler.layers.i: PerceiverAttention (.0) + FeedForward (.1) */
typedef struct sx_perceiver_layer {
    sx_norm norm1, norm2; /* .0.norm1 (media) / .0.norm2 (latents), LayerNorm [dim] */
    sx_linear to_q;       /* .0.to_q   [inner, dim], no bias */
    sx_linear to_kv;      /* .0.to_kv  [2*inner, dim]: k | v, no bias */
    sx_linear to_out;     /* .0.to_out [dim, inner], no bias */
    sx_norm ff_norm;      /* .1.0 LayerNorm [dim] */
    sx_linear ff_in;      /* .1.1 [ff, dim], no bias */
    sx_linear ff_out;     /* .1.3 [dim, ff], no bias */
} sx_perceiver_layer;

typedef struct sx_detok {
    /* hyperparameters (from tensor shapes; heads from metadata) */
    int dim, depth, heads, dim_head, n_queries, embed_dim, out1, out2, ff_dim;
    int normalize;                      /* F.normalize(x) over the token axis before proj_in */
    const float *latents;               /* latents [1, n_queries, dim] */
    sx_linear proj_in;                  /* proj_in [dim, embed_dim] */
    sx_perceiver_layer *layers;         /* depth */
    sx_norm norm_out;                   /* norm_out [dim] */
    sx_linear unet_proj_1, unet_proj_2; /* [out1, dim], [out2, dim] */
    /* unet_attnpool: AttentionPool2d(seq_len=n_queries, dim, pool heads, out2) */
    const float *pool_pos; /* positional_embedding [n_queries + 1, dim] */
    sx_mha pool;           /* q_proj / k_proj / v_proj [dim, dim], c_proj [out2, dim] */
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
