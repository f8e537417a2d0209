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
#include "nn.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SX_VAE_MAX_BLOCKS 8
#define SX_VAE_MAX_SIDE 16384 /* pixels: the largest image side decode/encode take */

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

/* The VAE's layers (ResnetBlock2D, Conv2d, GroupNorm and the attention
 * projections are nn.h's; the resnets take no time embedding). */

/* Mid-block Attention (diffusers Attention with group_norm and a residual
 * connection): one head over all H*W tokens, q/k/v with bias. */
typedef struct sx_vae_attn {
    sx_norm group_norm; /* GroupNorm [C] */
    sx_mha mha;         /* to_q / to_k / to_v / to_out.0, [C, C] each */
} sx_vae_attn;

/* DownEncoderBlock2D / UpDecoderBlock2D */
typedef struct sx_vae_block {
    int n_resnets;
    sx_resnet *resnets;
    int has_sampler;
    sx_conv_layer sampler; /* downsamplers.0.conv: 3x3 stride 2 on the input padded right and
                            * bottom by one; upsamplers.0.conv: 3x3 after nearest x2 */
} sx_vae_block;

typedef struct sx_vae_mid { /* UNetMidBlock2D: resnets.0, attentions.0, resnets.1 */
    sx_resnet resnets[2];
    int has_attn;
    sx_vae_attn attn;
} sx_vae_mid;

typedef struct sx_vae_coder { /* diffusers Encoder / Decoder */
    sx_conv_layer conv_in;
    sx_vae_block blocks[SX_VAE_MAX_BLOCKS]; /* down_blocks (encoder) / up_blocks (decoder) */
    sx_vae_mid mid_block;
    sx_norm conv_norm_out;
    sx_conv_layer conv_out; /* encoder: -> 2*latent channels (mean | logvar) */
} sx_vae_coder;

typedef struct sx_vae {
    sx_vae_config cfg;
    sx_gguf *g;     /* owned when loaded with sx_vae_load */
    int owns_g;
    int has_encoder; /* a decoder-only file is accepted (encode then fails) */
    sx_vae_coder encoder, decoder;
    sx_conv_layer quant_conv;      /* 1x1, 2*latent -> 2*latent */
    sx_conv_layer post_quant_conv; /* 1x1, latent -> latent */
    /* tiling (see the header comment); 0 = cfg.sample_size */
    int tile_sample_size;
    /* progress of sx_vae_decode (NULL: none): done of total steps, the steps
     * being the mid block, each up block and conv_out, or each tile when
     * tiled; called with done = 0 when the decode starts */
    void (*progress)(void *ud, int64_t done, int64_t total);
    void *progress_ud;
} sx_vae;

/* The config from a container's seedx.vae.* metadata (checked), without
 * loading any tensor. */
int sx_vae_read_config(const sx_gguf *g, sx_vae_config *c);
/* Peak bytes sx_vae_decode allocates for [latent_channels, h, w] latents
 * (untiled, or with tiling and tiles of tile_px pixels, 0 = sample_size),
 * threads running (the attention scratch is per thread); the caller's output
 * image is not included. An estimate from the buffers the decoder holds. */
uint64_t sx_vae_decode_bytes(const sx_vae_config *c, int64_t h, int64_t w, int tiling,
                             int tile_px, int threads);

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

/* The mid-block attention on x [C, H, W] -> y [C, H, W] (y may equal x),
 * temporaries from ws (nn.h); usable with in-memory weights (real-shape
 * tests). The resnets run with sx_resnet_forward (nn.h). */
int sx_vae_attn_forward(const sx_vae_attn *a, float *y, const float *x, int64_t H, int64_t W,
                        sx_arena *ws);

#ifdef __cplusplus
}
#endif
#endif
