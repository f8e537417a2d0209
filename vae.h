/* vae.h - the SDXL AutoencoderKL (diffusers 0.25.0): latents -> pixels
 * (decoder) and pixels -> latent posterior (encoder, used by the edit path).
 *
 * Layout: one sample, [C, H, W] float32, PyTorch order.
 *
 *   sx_vae_decode  takes the latents as the pipeline holds them (scaled) and
 *                  applies z = latents / scaling_factor (+ shift_factor when the
 *                  config has one) itself, exactly as StableDiffusionXLPipeline
 *                  does before vae.decode(). Output [3, f*h, f*w] in about
 *                  [-1, 1] (f = 2^(number of blocks - 1) = 8 for SDXL).
 *   sx_vae_encode  takes an image in [-1, 1] (VaeImageProcessor.preprocess)
 *                  and returns the posterior mean (= latent_dist.mode(), what
 *                  the SEED-X edit pipeline uses, NOT multiplied by
 *                  scaling_factor) and optionally the clamped logvar.
 *   sx_vae_to_rgb8 is VaeImageProcessor.postprocess: x/2+0.5, clamp [0,1],
 *                  *255, round half to even (numpy .round()), uint8, HWC.
 *
 * Tiling (diffusers' tiled_decode / tiled_encode): tiles of tile_sample_size
 * pixels (tile_sample_size / f latents) overlapping by 1/4, blended linearly
 * (blend_v / blend_h) and cropped. It is used only when the input is larger
 * than one tile, as in diffusers. tile_sample_size defaults to the config's
 * sample_size (1024 for SDXL, so diffusers itself never tiles a 1024x1024
 * image); set vae->tile_sample_size = 512 (or 256) to bound memory at 1024. */
#ifndef SEEDX_VAE_H
#define SEEDX_VAE_H

#include <stdint.h>

#include "gguf.h"
#include "image_io.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SX_VAE_MAX_BLOCKS 8

typedef struct sx_vae_config {
    int in_channels, out_channels, latent_channels; /* 3, 3, 4 */
    int n_blocks;                                    /* 4 */
    int block_out[SX_VAE_MAX_BLOCKS];                /* 128, 256, 512, 512 */
    int layers_per_block;                            /* 2 (decoder blocks have 3 resnets) */
    int norm_groups;                                 /* 32 */
    float norm_eps;                                  /* 1e-6 */
    int mid_attention;                               /* mid_block_add_attention */
    float scaling_factor;                            /* 0.13025 */
    float shift_factor;                              /* 0 unless has_shift */
    int has_shift;
    int force_upcast;
    int sample_size;                                 /* 1024: default tile size in pixels */
} sx_vae_config;

/* ResnetBlock2D (no time embedding): norm1, SiLU, conv1 3x3, norm2, SiLU,
 * conv2 3x3, + (conv_shortcut 1x1 when cin != cout) input. */
typedef struct sx_vae_resnet {
    int cin, cout, groups;
    float eps;
    const float *norm1_w, *norm1_b; /* [cin] */
    sx_weight conv1;                /* [cout, cin*9] */
    const float *conv1_b;           /* [cout] */
    const float *norm2_w, *norm2_b; /* [cout] */
    sx_weight conv2;                /* [cout, cout*9] */
    const float *conv2_b;
    int has_shortcut;
    sx_weight shortcut; /* [cout, cin] */
    const float *shortcut_b;
} sx_vae_resnet;

/* Mid-block Attention: GroupNorm, one head over all H*W tokens (scale
 * 1/sqrt(C)), to_out.0, + residual. */
typedef struct sx_vae_attn {
    int channels, groups;
    float eps;
    const float *norm_w, *norm_b;
    sx_weight q, k, v, o; /* [C, C] */
    const float *q_b, *k_b, *v_b, *o_b;
} sx_vae_attn;

/* A 3x3 conv (stride 1 pad 1, or the 2x downsampler: stride 2, pad r/b 1). */
typedef struct sx_vae_conv {
    int cin, cout, k;
    sx_weight w;
    const float *b;
} sx_vae_conv;

typedef struct sx_vae_down_block {
    int n_resnets;
    sx_vae_resnet *resnets;
    int has_down;
    sx_vae_conv down; /* downsamplers.0.conv */
} sx_vae_down_block;

typedef struct sx_vae_up_block {
    int n_resnets;
    sx_vae_resnet *resnets;
    int has_up;
    sx_vae_conv up; /* upsamplers.0.conv (after nearest x2) */
} sx_vae_up_block;

typedef struct sx_vae_mid {
    sx_vae_resnet res0, res1;
    int has_attn;
    sx_vae_attn attn;
} sx_vae_mid;

typedef struct sx_vae {
    sx_vae_config cfg;
    sx_gguf *g;     /* owned when loaded with sx_vae_load */
    int owns_g;
    int has_encoder; /* a decoder-only file is accepted (encode then fails) */
    /* encoder */
    sx_vae_conv enc_conv_in;
    sx_vae_down_block down[SX_VAE_MAX_BLOCKS];
    sx_vae_mid enc_mid;
    const float *enc_norm_w, *enc_norm_b;
    sx_vae_conv enc_conv_out; /* -> 2*latent */
    sx_vae_conv quant_conv;   /* 1x1, 2*latent -> 2*latent */
    /* decoder */
    sx_vae_conv post_quant_conv; /* 1x1, latent -> latent */
    sx_vae_conv dec_conv_in;
    sx_vae_mid dec_mid;
    sx_vae_up_block up[SX_VAE_MAX_BLOCKS];
    const float *dec_norm_w, *dec_norm_b;
    sx_vae_conv dec_conv_out;
    /* tiling (see the header comment); 0 = cfg.sample_size */
    int tile_sample_size;
} sx_vae;

/* Loads a container written by `convert.py vae`. Every tensor's presence,
 * type and shape is checked against the metadata. */
int sx_vae_load(const char *path, sx_vae **out);
/* Same from an open container (not closed by sx_vae_free). */
int sx_vae_load_gguf(sx_gguf *g, sx_vae **out);
void sx_vae_free(sx_vae *vae);

/* Spatial factor between pixels and latents: 2^(n_blocks-1). */
int sx_vae_factor(const sx_vae *vae);

/* latents [latent_channels, h, w] (scaled, as the pipeline holds them) ->
 * image [out_channels, f*h, f*w]. tiling: 1 to use the tiled decoder when the
 * latent is larger than one tile. `image` must hold out_channels*f*h*f*w. */
int sx_vae_decode(const sx_vae *vae, const float *latents, int64_t latent_channels, int64_t h,
                  int64_t w, int tiling, float *image);

/* image [in_channels, H, W] in [-1, 1], H and W multiples of f -> mean
 * [latent_channels, H/f, W/f]; logvar (may be NULL) the same shape, clamped to
 * [-30, 20] as DiagonalGaussianDistribution does. */
int sx_vae_encode(const sx_vae *vae, const float *image, int64_t channels, int64_t H, int64_t W,
                  int tiling, float *mean, float *logvar);

/* diffusers VaeImageProcessor.postprocess of [3, H, W] -> 8-bit RGB. */
int sx_vae_to_rgb8(const float *image, int64_t channels, int64_t H, int64_t W, sx_image *out);

/* Layer forwards (usable with in-memory weights, e.g. for real-shape tests).
 * x [cin, H, W] -> *y newly allocated [cout, H, W] (free()). */
int sx_vae_resnet_forward(const sx_vae_resnet *r, const float *x, int64_t H, int64_t W, float **y);
/* x [C, H, W] -> y [C, H, W] (y may equal x). */
int sx_vae_attn_forward(const sx_vae_attn *a, float *y, const float *x, int64_t H, int64_t W);

#ifdef __cplusplus
}
#endif
#endif
