/* nn.h - the layers several model files share, written once: nn.Linear,
 * nn.Conv2d, LayerNorm / GroupNorm, diffusers' ResnetBlock2D, multi-head
 * attention with separate q/k/v/out projections (diffusers' Attention, the
 * Qwen Resampler's nn.MultiheadAttention, the de-tokenizer's attention pool)
 * and the scratch arena every layer takes its temporaries from.
 *
 * Component floor, below the model files: vit.c, detokenizer.c, unet.c and
 * vae.c build on it; it builds on the kernel layer (ops.h) and the container.
 *
 * Loading: a loader takes the PyTorch module path as key prefix
 * ("down_blocks.1.attentions.0.proj_in") and looks up prefix.weight /
 * prefix.bias with the expected shapes; a missing or mis-shaped tensor gives
 * an error naming the file, the tensor, and the expected and found shapes.
 * Loaded layers point into the container, which must outlive them.
 *
 * Memory convention (vit.c, detokenizer.c, unet.c and vae.c follow it;
 * llama.c's context holds its KV cache and scratch, sized once by
 * sx_llama_ctx_new; the kernel layer keeps per-thread scratch of its own):
 *   - a layer's forward writes its result into `y`, allocated by the caller,
 *     and does not modify its inputs;
 *   - its temporaries come from the caller's sx_arena and are given back
 *     before it returns (the arena's top is where it was): no layer calls
 *     malloc;
 *   - a model's top-level forward (sx_unet_forward, sx_vae_decode,
 *     sx_vit_forward, sx_resampler_forward, sx_detok_forward) makes one arena
 *     for the call, passes it down and frees it at the end. The arena keeps
 *     its memory from layer to layer, so after the first layers of a call it
 *     stops allocating, and a forward never writes to the loaded model (no
 *     scratch lives in it). The activations between layers belong to the model's
 *     forward (the UNet keeps them in its arena; the VAE, whose activations
 *     grow 32-fold along the decoder, gives each stage an output of its exact
 *     size and frees the input). */
#ifndef SEEDX_NN_H
#define SEEDX_NN_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- scratch arena --------------------------------------------------------
 * A stack of float buffers in chunks that are kept until sx_arena_free: a
 * zero-initialised sx_arena is empty and ready. Take with sx_arena_floats,
 * give back everything taken since a mark with sx_arena_release. Memory
 * handed out is 64-byte aligned and uninitialised; under AddressSanitizer
 * the parts not handed out are poisoned. */
typedef struct sx_arena_chunk sx_arena_chunk;
typedef struct sx_arena {
    sx_arena_chunk *chunks;
    int n_chunks, cap_chunks;
    int cur;    /* chunk the top is in */
    size_t off; /* floats used in that chunk */
} sx_arena;
typedef struct sx_arena_mark {
    int chunk;
    size_t off;
} sx_arena_mark;

sx_arena_mark sx_arena_top(const sx_arena *a);
/* n floats (n >= 0); NULL with an error naming `what` when out of memory. */
float *sx_arena_floats(sx_arena *a, int64_t n, const char *what);
void sx_arena_release(sx_arena *a, sx_arena_mark m);
void sx_arena_free(sx_arena *a);
/* Bytes the arena holds (for memory reports). */
size_t sx_arena_bytes(const sx_arena *a);

/* ---- where tensors come from ----------------------------------------------
 * One container, or a stack of them for overlays (the UNet's: a file holding
 * only a de-tokenizer's replaced tensors in front of the SDXL base): each
 * tensor is read from the first file that has it. */
#define SX_SRC_MAX 8
typedef struct sx_src {
    sx_gguf *g[SX_SRC_MAX];
    int n;
} sx_src;
sx_src sx_src_one(sx_gguf *g);
/* The file holding `name` (the first one when none does: it reports it). */
sx_gguf *sx_src_pick(const sx_src *s, const char *name);
/* prefix.weight / prefix.bias of a float vector [n] (a norm's affine
 * parameters, a bias, a learned table). */
const float *sx_src_vec(const sx_src *s, const char *prefix, const char *suffix, int64_t n);

enum { SX_NO_BIAS = 0, SX_BIAS = 1 };

/* ---- nn.Linear: y = x W^T + b ---------------------------------------------- */
typedef struct sx_linear {
    sx_weight w;    /* [out, in] */
    const float *b; /* [out] or NULL */
} sx_linear;
/* prefix.weight [out, in] (or a 1x1 conv's [out, in, 1, 1]), prefix.bias [out]
 * when bias is SX_BIAS. */
int sx_linear_load(const sx_src *s, const char *prefix, int64_t out, int64_t in, int bias,
                   sx_linear *l);
/* A layer over in-memory float32 weights w [out, in] (and b [out] or NULL). */
sx_linear sx_linear_f32(const float *w, int64_t out, int64_t in, const float *b);
/* y[M, out] = x[M, in] W^T + b */
int sx_linear_forward(const sx_linear *l, float *y, const float *x, int64_t M);
/* y = act(x W^T + b) (SX_ACT_*), in the matmul's epilogue */
int sx_linear_act(const sx_linear *l, float *y, const float *x, int64_t M, int act);
/* y += x W^T + b (a residual connection), in the matmul's epilogue */
int sx_linear_add(const sx_linear *l, float *y, const float *x, int64_t M);
/* With row strides (in floats) and the whole epilogue. */
int sx_linear_ld(const sx_linear *l, float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M,
                 int act, int accumulate);

/* ---- nn.Conv2d on one [C, H, W] sample ------------------------------------ */
typedef struct sx_conv_layer {
    sx_conv c;      /* geometry (ops.h) */
    sx_weight w;    /* [cout, cin*kh*kw] */
    const float *b; /* [cout] */
} sx_conv_layer;
/* prefix.weight [cout, cin, k, k], prefix.bias [cout]; square kernel,
 * stride, the same zero padding on every side (set c.pad_* afterwards for
 * asymmetric padding). */
int sx_conv_load(const sx_src *s, const char *prefix, int cin, int cout, int k, int stride,
                 int pad, sx_conv_layer *cv);
/* A layer over in-memory float32 weights w [cout, cin, k, k], b [cout]. */
sx_conv_layer sx_conv_f32(const float *w, const float *b, int cin, int cout, int k, int stride,
                          int pad);
/* Output size of c on an H x W input (<= 0 when the input is too small). */
void sx_conv_out_hw(const sx_conv *c, int64_t H, int64_t W, int64_t *Ho, int64_t *Wo);
/* y[cout, Ho, Wo] = conv(x[cin, H, W]); Ho/Wo may be NULL. */
int sx_conv_forward(const sx_conv_layer *cv, float *y, const float *x, int64_t H, int64_t W,
                    int64_t *Ho, int64_t *Wo);

/* ---- normalisation ----------------------------------------------------------
 * nn.LayerNorm over the last dim of token rows, or nn.GroupNorm over the
 * channels of a [C, H*W] sample; weight and bias [dim]. */
typedef struct sx_norm {
    const float *w, *b;
    int64_t dim;
    int groups; /* 0: LayerNorm */
    float eps;
} sx_norm;
int sx_layernorm_load(const sx_src *s, const char *prefix, int64_t dim, float eps, sx_norm *n);
int sx_groupnorm_load(const sx_src *s, const char *prefix, int64_t C, int groups, float eps,
                      sx_norm *n);
/* LayerNorm: y[rows, dim] = norm(x) (y may equal x). */
void sx_norm_rows(const sx_norm *n, float *y, const float *x, int64_t rows);
/* GroupNorm: y[C, HW] = act(norm(x)) with act SX_ACT_NONE or SX_ACT_SILU
 * (y may equal x). */
int sx_norm_chw(const sx_norm *n, float *y, const float *x, int64_t HW, int act);
/* GroupNorm -> act -> conv in one pass (sx_conv2d_fused; the normalised x
 * is never stored): y[cout, Ho, Wo] (+)= conv(act(norm(x[cin, H, W]))),
 * act SX_ACT_NONE or SX_ACT_SILU; accumulate: added to y (a residual).
 * y must not alias x. */
int sx_norm_conv_forward(const sx_norm *n, int act, const sx_conv_layer *cv, float *y,
                         const float *x, int64_t H, int64_t W, int accumulate);

/* ---- diffusers ResnetBlock2D (resnet.py) ------------------------------------
 *   h = conv1(SiLU(norm1(x)));  h += time_emb_proj(temb) per channel;
 *   h = conv2(SiLU(norm2(h)));  y = shortcut(x) + h
 * with 3x3 convs (pad 1) and shortcut = conv_shortcut (1x1) when the channel
 * count changes, else the identity. The UNet's resnets take a time
 * embedding; the VAE's do not. */
typedef struct sx_resnet {
    int cin, cout;
    sx_norm norm1, norm2;         /* GroupNorm over cin / cout channels */
    sx_conv_layer conv1, conv2;   /* cin -> cout, cout -> cout */
    sx_linear time_emb_proj;      /* [cout, temb_dim]; w.data NULL: none */
    sx_conv_layer conv_shortcut;  /* 1x1 cin -> cout; w.data NULL: identity */
} sx_resnet;
/* temb_dim 0: no time_emb_proj. Checks that conv_shortcut exists exactly
 * when cin != cout. */
int sx_resnet_load(const sx_src *s, const char *prefix, int cin, int cout, int temb_dim,
                   int groups, float eps, sx_resnet *r);
/* y[cout, H, W] = resnet(x[cin, H, W], temb); temb = SiLU(emb) [temb_dim]
 * (NULL without time_emb_proj). y must not alias x. Scratch from ws:
 * cout x (H x W + 1) floats. */
int sx_resnet_forward(const sx_resnet *r, float *y, const float *x, int64_t H, int64_t W,
                      const float *temb, sx_arena *ws);

/* ---- multi-head attention with separate projections --------------------------
 *   y = o(softmax(q(xq) k(xk)^T * scale) v(xv)) over `heads` heads of
 *   inner / heads channels each (q, k, v outputs [T, inner], heads side by side). */
typedef struct sx_mha {
    int heads;
    float scale;          /* 1/sqrt(head dim) */
    sx_linear q, k, v, o; /* q [inner, dq], k/v [inner, dkv], o [dout, inner] */
} sx_mha;
/* diffusers' Attention: prefix.to_q / to_k / to_v ([dim, dim], [dim, kv_dim]
 * x 2; biases when qkv_bias) and prefix.to_out.0 ([dim, dim] + bias). */
int sx_mha_load_diffusers(const sx_src *s, const char *prefix, int64_t dim, int64_t kv_dim,
                          int heads, int qkv_bias, sx_mha *m);
/* Checks heads / shapes and sets scale once the four projections are set. */
int sx_mha_init(sx_mha *m, int heads);
/* y[Tq, dout] = attention (accumulate: y += attention, a residual
 * connection) of queries from xq [Tq, dq] to keys from xk and values from
 * xv [Tk, dkv]. Scratch from ws: (2 Tq + 2 Tk) x inner floats. */
int sx_mha_forward(const sx_mha *m, float *y, const float *xq, int64_t Tq, const float *xk,
                   const float *xv, int64_t Tk, int accumulate, sx_arena *ws);
/* The sx_attn of q, k, v, o laid out [T, heads * head_dim] with the heads
 * side by side (what sx_mha uses). */
sx_attn sx_attn_heads(int heads, int head_dim, float scale);

#ifdef __cplusplus
}
#endif
#endif
