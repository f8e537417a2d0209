/* unet.h - SDXL UNet2DConditionModel (as diffusers 0.25.0 builds it) on the CPU.
 *
 * The container is written by scripts/convert_unet.py: tensors keep their
 * diffusers names, hyperparameters are metadata seedx.unet.* (nothing about
 * the model's width/depth is hard-coded here). One sample per forward call;
 * classifier-free guidance (sampler.c) calls the forward once per branch. */
#ifndef SEEDX_UNET_H
#define SEEDX_UNET_H

#include <stdint.h>

#include "gguf.h"
#include "nn.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SX_UNET_MAX_BLOCKS 8

typedef struct sx_unet_config {
    int in_channels, out_channels;
    int n_blocks;                            /* down blocks (= up blocks) */
    int block_out[SX_UNET_MAX_BLOCKS];       /* block_out_channels */
    int down_attn[SX_UNET_MAX_BLOCKS];       /* CrossAttnDownBlock2D? */
    int up_attn[SX_UNET_MAX_BLOCKS];         /* CrossAttnUpBlock2D? */
    int layers_per_block;                    /* resnets per down block (up: +1) */
    int tlayers[SX_UNET_MAX_BLOCKS];         /* transformer_layers_per_block, per down block */
    int heads[SX_UNET_MAX_BLOCKS];           /* attention heads, per down block (resolved) */
    int cross_dim;                           /* cross_attention_dim (context width) */
    int time_proj_dim;                       /* sinusoid width = block_out[0] */
    int time_embed_dim;                      /* time MLP width (block_out[0]*4) */
    int text_time;                           /* addition_embed_type == "text_time" */
    int add_time_dim;                        /* addition_time_embed_dim */
    int add_in_dim;                          /* projection_class_embeddings_input_dim */
    int pooled_dim;                          /* add_in_dim - 6*add_time_dim */
    int groups;                              /* norm_num_groups */
    float eps;                               /* norm_eps (resnets, conv_norm_out) */
    int flip_sin_to_cos;
    float freq_shift;
    int conv_in_k, conv_out_k, down_pad;
} sx_unet_config;

/* ---- the UNet's own layers (plain structs so tests can fill them in memory;
 * ResnetBlock2D and the attention projections are nn.h's) ---- */
typedef struct sx_unet_tblock {          /* BasicTransformerBlock (layer_norm, GEGLU) */
    sx_norm norm1, norm2, norm3;         /* LayerNorm [dim], eps 1e-5 */
    sx_mha attn1, attn2;                 /* self-attention; cross-attention to the context */
    sx_linear ff_proj;                   /* ff.net.0.proj [2*ff_inner, dim]: [value | gate] */
    sx_linear ff_out;                    /* ff.net.2 [dim, ff_inner] */
} sx_unet_tblock;

typedef struct sx_unet_transformer {     /* Transformer2DModel (continuous input) */
    sx_norm norm;                        /* GroupNorm [C], eps 1e-6 */
    sx_linear proj_in, proj_out;         /* [C, C] (Linear, or a 1x1 conv viewed [C, C]) */
    int n_layers;
    sx_unet_tblock *blocks;              /* transformer_blocks.* */
} sx_unet_transformer;

typedef struct sx_unet sx_unet;

/* Opens `path` and loads every tensor the config implies (error naming the
 * first missing/mis-shaped tensor). sx_unet_load_gguf borrows an open
 * container (which must outlive the UNet). */
int sx_unet_load(const char *path, sx_unet **out);
int sx_unet_load_gguf(sx_gguf *g, sx_unet **out);
/* A UNet spread over several containers (up to 8): configuration from paths[0], each
 * tensor from the first file that holds it. Used for overlays: convert_unet.py
 * --overlay writes only a de-tokenizer's replaced tensors (e.g. stage 1's to_k/to_v,
 * an 8-channel conv_in), loaded as {overlay.gguf, sdxl_base.gguf}. Later files must
 * describe the same architecture (checked). At most SX_UNET_MAX_FILES files. */
#define SX_UNET_MAX_FILES 8
int sx_unet_load_files(const char *const *paths, int n, sx_unet **out);
void sx_unet_free(sx_unet *u);
const sx_unet_config *sx_unet_get_config(const sx_unet *u);
sx_gguf *sx_unet_gguf(const sx_unet *u); /* the container (metadata: seedx.scheduler.*) */

/* The conditioning of one UNet evaluation (diffusers' encoder_hidden_states
 * and added_cond_kwargs). */
typedef struct sx_unet_cond {
    const float *context;  /* encoder_hidden_states [n_ctx, ctx_dim] */
    int64_t n_ctx, ctx_dim;
    const float *pooled;   /* text_embeds [pooled_dim] (text_time only, else may be NULL) */
    int64_t pooled_dim;
    const float *time_ids; /* time_ids [6] (text_time only) */
} sx_unet_cond;

/* eps[out_channels, h, w] = UNet(sample[cin, h, w], timestep, cond); cin,
 * ctx_dim and pooled_dim are checked against the config. Any h, w >= 1
 * (when not multiples of 2^(n_blocks-1), the up-samplers resize to the skip
 * connection's size, as diffusers does). Traces diffusers module paths
 * (conv_in, down_blocks.1.attentions.0, mid_block, up_blocks.0.resnets.2, ...). */
int sx_unet_forward(const sx_unet *u, const float *sample, int64_t cin, int64_t h, int64_t w,
                    float timestep, const sx_unet_cond *cond, float *eps);

/* ---- single layers (used by the forward; exposed for real-shape tests/bench).
 * Temporaries come from ws (nn.h's memory convention). ---- */
/* h[T, dim] updated in place: h += attn1(LN1 h); h += attn2(LN2 h, ctx); h += FF(LN3 h). */
int sx_unet_tblock_forward(const sx_unet_tblock *b, float *h, int64_t T, const float *ctx,
                           int64_t Tc, sx_arena *ws);
/* y[C, H, W] = transformer(x[C, H, W], ctx); trace = module path or NULL. */
int sx_unet_transformer_forward(const sx_unet_transformer *t, float *y, const float *x, int64_t H,
                                int64_t W, const float *ctx, int64_t Tc, const char *trace,
                                sx_arena *ws);

/* Sinusoidal timestep embedding as diffusers get_timestep_embedding computes it in
 * float32: y[dim] (dim even). */
void sx_unet_timestep_embedding(float *y, float t, int dim, int flip_sin_to_cos, float freq_shift);

#ifdef __cplusplus
}
#endif
#endif
