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

/* ---- layer weights (plain structs so tests can fill them in memory) ---- */
typedef struct sx_unet_resnet {          /* ResnetBlock2D */
    int cin, cout, groups;
    float eps;
    const float *norm1_w, *norm1_b, *conv1_b, *temb_b, *norm2_w, *norm2_b, *conv2_b, *short_b;
    sx_weight conv1, temb, conv2, shortcut; /* conv kernels viewed [Cout, Cin*3*3]; temb [Cout, E] */
    int has_shortcut;                       /* 1x1 conv_shortcut when cin != cout */
    int temb_dim;
} sx_unet_resnet;

typedef struct sx_unet_attn {            /* Attention: to_q/to_k/to_v (no bias), to_out.0 */
    sx_weight q, k, v, o;
    const float *o_b;
} sx_unet_attn;

typedef struct sx_unet_tblock {          /* BasicTransformerBlock (layer_norm, GEGLU) */
    int dim, heads, ctx_dim, ff_inner;
    float eps;                           /* LayerNorm eps (1e-5) */
    const float *norm1_w, *norm1_b, *norm2_w, *norm2_b, *norm3_w, *norm3_b;
    sx_unet_attn attn1, attn2;
    sx_weight ff_proj;                   /* [2*ff_inner, dim]: [value | gate] */
    const float *ff_proj_b;
    sx_weight ff_out;                    /* [dim, ff_inner] */
    const float *ff_out_b;
} sx_unet_tblock;

typedef struct sx_unet_transformer {     /* Transformer2DModel (continuous input) */
    int ch, n_layers, groups;
    float eps;                           /* GroupNorm eps (1e-6) */
    const float *norm_w, *norm_b, *proj_in_b, *proj_out_b;
    sx_weight proj_in, proj_out;         /* [C, C] (Linear, or 1x1 conv viewed [C, C]) */
    sx_unet_tblock *blocks;
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

/* eps[out_channels, h, w] = UNet(sample[cin, h, w], timestep, context[T, ctx_dim],
 * pooled[pooled_dim], time_ids[6]); cin, ctx_dim and pooled_dim are checked against
 * the config; pooled/time_ids are ignored (may be NULL) without text_time. Any h, w
 * >= 1 (when not multiples of 2^(n_blocks-1), the up-samplers resize to the skip
 * connection's size, as diffusers does). Traces diffusers module paths (conv_in,
 * down_blocks.1.attentions.0, mid_block, up_blocks.0.resnets.2, ...). */
int sx_unet_forward(sx_unet *u, const float *sample, int64_t cin, int64_t h, int64_t w,
                    float timestep, const float *context, int64_t T, int64_t ctx_dim,
                    const float *pooled, int64_t pooled_dim, const float *time_ids, float *eps);

/* ---- single layers (used by the forward; exposed for real-shape tests/bench) ---- */
/* y[cout, H, W] = resnet(x[cin, H, W], emb_act) where emb_act = SiLU(emb) [temb_dim]. */
int sx_unet_resnet_forward(const sx_unet_resnet *r, float *y, const float *x, int64_t H, int64_t W,
                           const float *emb_act);
/* h[T, dim] updated in place: h += attn1(LN1 h); h += attn2(LN2 h, ctx); h += FF(LN3 h). */
int sx_unet_tblock_forward(const sx_unet_tblock *b, float *h, int64_t T, const float *ctx,
                           int64_t Tc);
/* y[C, H, W] = transformer(x[C, H, W], ctx); trace = module path or NULL. */
int sx_unet_transformer_forward(const sx_unet_transformer *t, float *y, const float *x, int64_t H,
                                int64_t W, const float *ctx, int64_t Tc, const char *trace);

/* Sinusoidal timestep embedding as diffusers get_timestep_embedding computes it in
 * float32: y[dim] (dim even). */
void sx_unet_timestep_embedding(float *y, float t, int dim, int flip_sin_to_cos, float freq_shift);

#ifdef __cplusplus
}
#endif
#endif
