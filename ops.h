/* ops.h - the kernel layer: every numeric operation the model files use.
 *
 * Model files (vit.c, llama.c, unet.c, vae.c, seedx.c) call only these
 * functions; they contain no intrinsics. Each op has a scalar reference
 * (ops.c) and, where it matters, SIMD versions (ops_avx2.c, ops_avx512.c,
 * ops_neon.c) selected at run time (SEEDX_SIMD=scalar|avx2|avx512 forces).
 * Every op gives bit-identical results for any thread count: each output
 * element is computed by one thread in a fixed order.
 *
 * Layout: activations are float32 row-major. "Token" tensors are [T, C];
 * "image" tensors are [C, H, W] (one sample; callers loop over batch). */
#ifndef SEEDX_OPS_H
#define SEEDX_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "half.h"
#include "simd.h"
#include "wtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- weights ----
 * A weight handle is how model files hand a matrix to the kernel layer. The
 * kernel layer may pre-pack it (layout, type) and model files never look
 * inside. Logical shape is always [N, K] (nn.Linear's [out, in]); trans=1
 * says the stored matrix is [K, N] (e.g. Qwen's `proj`, used as x @ proj). */
typedef struct sx_weight {
    int type;          /* an entry of the type table (wtype.h) */
    int trans;         /* 0: stored [N,K] row-major; 1: stored [K,N] (float types) */
    int64_t N, K;
    int64_t ld;        /* elements between stored rows (K, or N if trans);
                        * a multiple of the type's block */
    const void *data;
    const char *name;  /* for error messages; may be NULL */
    const void *packed; /* kernel-layer private: the matrix packed once for the kernels */
    int64_t packed_n0; /* kernel-layer private: first packed column of this view */
} sx_weight;

/* ---- compute type of the matrix products ----
 * F32:  exact float32 (the reference `make test` checks against PyTorch).
 * BF16: matmul inputs (activations and weights) rounded to bfloat16, sums
 *       in float32 (PyTorch's CPU bf16 autocast contract); bias, activation,
 *       residual add, norms, softmax and everything else stay float32. Runs
 *       on AMX tiles, AVX512_BF16, or float32 FMAs on the rounded inputs.
 * Weights looked up with sx_weight_get while BF16 is set are packed once
 * into the tile layout (owned by the container, its mapped pages given back
 * to the OS); F32 then reads the stored matrix again (still exact). */
enum { SX_COMPUTE_DEFAULT = 0, SX_COMPUTE_F32 = 1, SX_COMPUTE_BF16 = 2 };
int sx_set_compute(int mode); /* SX_COMPUTE_F32 (initial) or SX_COMPUTE_BF16 */
int sx_compute(void);
const char *sx_compute_name(int mode); /* "f32", "bf16" */
int sx_compute_from_name(const char *name); /* -1 if unknown */
/* 1 if the current SIMD path runs BF16 on BF16 instructions (AMX tiles or
 * AVX512_BF16), where it is the fast path; else it runs on float32 FMAs. */
int sx_compute_bf16_native(void);
const char *sx_compute_bf16_kernel(void); /* "amx", "avx512bf16", "avx2-fma", ... */

/* Run-time weight type for every matrix looked up from now on, converted at
 * load from what the file stores (copy owned by the container, with the
 * converter's bytes), or -1 to use the stored type (default). SX_F32,
 * SX_F16, SX_BF16 apply to every matrix; SX_Q8_0, SX_Q4_0, SX_Q4_K to the
 * matrices the quantization policy names (quant.h: the LLM's and ViT's
 * layer matrices and the token embeddings; lm_head Q8_0), the others keep
 * their stored type. */
int sx_set_weight_dtype(int type);
/* Looks up a [N,K] matrix in the container (any storage type) and wraps it. */
int sx_weight_get(sx_gguf *g, const char *name, int64_t N, int64_t K, sx_weight *w);
/* Same, for a stored [K,N] matrix used as x @ W (logical [N,K]). */
int sx_weight_get_t(sx_gguf *g, const char *name, int64_t K, int64_t N, sx_weight *w);
/* Wraps an F32 buffer as a weight, e.g. a conv kernel viewed [Cout, Cin*kh*kw]. */
sx_weight sx_weight_f32(const float *data, int64_t N, int64_t K);
/* Wraps an [N, K] buffer of any type of the table (rows of K, packed). */
sx_weight sx_weight_typed(const void *data, int type, int64_t N, int64_t K);
/* Row r of W (K values) as float32, e.g. a token embedding (not for trans). */
int sx_weight_row(const sx_weight *w, int64_t r, float *out);
/* Packs w once for the current compute type into a buffer the caller owns
 * (for weights that are not in a container: tests, benches); w->packed is
 * set, sx_weight_unpack frees it. Does nothing for quantized weights (their
 * kernels read them as stored), nor where F32 compute packs per call. */
int sx_weight_pack(sx_weight *w);
void sx_weight_unpack(sx_weight *w);
/* A row range [n0, n0+n) of a weight (e.g. one of q/k/v in a fused proj). */
sx_weight sx_weight_rows(const sx_weight *w, int64_t n0, int64_t n);

/* ---- activations applied element by element (also as a matmul epilogue) ---- */
enum { SX_ACT_NONE = 0, SX_ACT_GELU, SX_ACT_GELU_TANH, SX_ACT_SILU };

/* ---- matmul ----
 * Y[M,N] = X[M,K] . W^T (+ bias[N]). X, Y float32 with row strides ldx, ldy
 * (in elements). Multi-threaded over M and N. Y must not alias X. */
int sx_matmul(float *Y, const float *X, const sx_weight *W, const float *bias, int64_t M);
int sx_matmul_ld(float *Y, int64_t ldy, const float *X, int64_t ldx, const sx_weight *W,
                 const float *bias, int64_t M);
/* What happens to each output element t = (X W^T)[m, n] before it is
 * stored, while it is still in cache (saves passes over Y):
 *   t += bias[n];  t = act(t);  Y[m, n] = (accumulate ? Y[m, n] : 0) + t
 * in that order and with the same arithmetic as the separate ops, so a
 * fused call gives the same bytes as sx_matmul + sx_gelu/sx_silu + sx_add. */
typedef struct sx_epilogue {
    const float *bias; /* [N] or NULL */
    int act;           /* SX_ACT_* */
    int accumulate;    /* 1: add into Y (residual connections) */
    int compute;       /* SX_COMPUTE_*: this call's compute type; 0: sx_compute() */
} sx_epilogue;
int sx_matmul_ep(float *Y, int64_t ldy, const float *X, int64_t ldx, const sx_weight *W,
                 const sx_epilogue *ep, int64_t M);
/* F32 GEMMs whose weight fits the last-level cache (at most 8 MB as
 * float32, e.g. the UNet's 640-column projections) run as blocks of a few
 * rows of X that pack their own rows (ops_gemm.c, matmul_cached_w): on 1
 * (default), 0 off (tests compare it with the general path: same bytes). */
int sx_set_gemm_cached_w(int on);

/* ---- attention ----
 * Scaled dot-product attention over heads. q/k/v/o are float32 with a
 * per-token stride and a per-head stride (in elements), so fused or
 * per-head-interleaved projections are read in place. Head h of q uses kv
 * head h / (n_heads / n_kv_heads) (GQA). Causal: query i attends keys
 * j <= i + causal_offset (causal_offset = Tk - Tq with a KV cache).
 * Computed in tiles of queries: scratch does not grow as Tq*Tk*heads. */
typedef struct sx_attn {
    int n_heads, n_kv_heads, head_dim;
    int64_t q_tok, q_head; /* strides of q */
    int64_t k_tok, k_head;
    int64_t v_tok, v_head;
    int64_t o_tok, o_head;
    float scale;           /* usually 1/sqrt(head_dim) */
    int causal;
    int64_t causal_offset;
} sx_attn;
int sx_attention(const sx_attn *a, float *o, const float *q, const float *k, const float *v,
                 int64_t Tq, int64_t Tk);

/* ---- normalisation (y may equal x) ---- */
/* LayerNorm over the last dim of [rows, dim]; w/b may be NULL (no affine). */
void sx_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows,
                  int64_t dim, float eps);
/* RMSNorm (Llama): y = w * x / sqrt(mean(x^2) + eps). */
void sx_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t dim, float eps);
/* GroupNorm of one [C, HW] sample; w/b per channel (may be NULL). */
int sx_groupnorm(float *y, const float *x, const float *w, const float *b, int64_t C,
                 int64_t HW, int groups, float eps);
/* Softmax over the last dim of [rows, dim], in place. */
void sx_softmax(float *x, int64_t rows, int64_t dim);

/* ---- activations / elementwise (in place allowed) ---- */
void sx_gelu(float *y, const float *x, int64_t n);      /* exact: 0.5x(1+erf(x/sqrt2)) */
void sx_gelu_tanh(float *y, const float *x, int64_t n); /* tanh approximation */
void sx_silu(float *y, const float *x, int64_t n);
/* GEGLU (diffusers' GEGLU after its projection) in place on rows of 2F
 * floats [value | gate]: gate <- value * gelu(gate), the exact GELU of
 * sx_gelu; the result is the second half of each row (row stride 2F). */
void sx_geglu(float *x, int64_t rows, int64_t F);
void sx_add(float *y, const float *a, const float *b, int64_t n);
void sx_mul(float *y, const float *a, const float *b, int64_t n);
void sx_scale(float *y, const float *x, float s, int64_t n);
/* y[r, :] += b[:] for each of rows rows (bias broadcast). */
void sx_add_row(float *y, const float *b, int64_t rows, int64_t dim);
/* y[c, :] += b[c] for [C, HW] (per-channel broadcast). */
void sx_add_channel(float *y, const float *b, int64_t C, int64_t HW);
/* Transpose [R, C] -> [C, R]. */
void sx_transpose(float *y, const float *x, int64_t R, int64_t C);

/* ---- rotary embedding (HF Llama, rotate_half layout) ----
 * x: [T, n_heads, head_dim] with token stride tok_stride; token t has
 * position pos0 + t. inv_freq_i = 1/theta^(2i/head_dim) in float32. */
void sx_rope(float *x, int64_t T, int n_heads, int head_dim, int64_t tok_stride,
             int64_t head_stride, int64_t pos0, float theta);

/* ---- convolution ----
 * One [Cin, H, W] sample -> [Cout, Ho, Wo]. Weight logical shape
 * [Cout, Cin*kh*kw] (PyTorch's [Cout, Cin, kh, kw] flattened). Zero padding
 * top/left/bottom/right (diffusers' asymmetric downsample pad is 0,0,1,1).
 * Ho = (H + pt + pb - kh) / stride + 1. */
typedef struct sx_conv {
    int cin, cout, kh, kw, stride;
    int pad_t, pad_l, pad_b, pad_r;
} sx_conv;
int sx_conv2d(float *y, const float *x, int64_t H, int64_t W, const sx_conv *c,
              const sx_weight *w, const float *bias, int64_t *Ho, int64_t *Wo);

/* The same convolution with the resnets' norm -> SiLU in front and the
 * residual add behind, fused: the normalised input is never stored (nor
 * the conv output before the add):
 *   y = (accumulate ? y : 0) + (conv(act(groupnorm(x))) + bias)
 * with GroupNorm over the cin input channels (groups > 0; gn_w / gn_b per
 * channel, may be NULL) and act = SiLU if silu. Bit-identical to
 * sx_groupnorm, sx_silu, sx_conv2d and sx_add in sequence on the scalar
 * path; the SIMD paths use their own exp in the SiLU (within 1e-6 of it). */
typedef struct sx_conv_fuse {
    int groups;
    float eps;
    const float *gn_w, *gn_b;
    int silu;
    int accumulate;
} sx_conv_fuse;
int sx_conv2d_fused(float *y, const float *x, int64_t H, int64_t W, const sx_conv *c,
                    const sx_weight *w, const float *bias, const sx_conv_fuse *f, int64_t *Ho,
                    int64_t *Wo);

/* ---- resampling ---- */
/* torch.nn.functional.interpolate(mode="bicubic", align_corners=False) of a
 * [C, h, w] grid to [C, oh, ow] (A = -0.75, edge-clamped taps). */
void sx_interp_bicubic(float *y, const float *x, int64_t C, int64_t h, int64_t w, int64_t oh,
                       int64_t ow);
/* Nearest-neighbour x2 upsample of [C, H, W] -> [C, 2H, 2W]. */
void sx_upsample_nearest2x(float *y, const float *x, int64_t C, int64_t H, int64_t W);
/* Average pooling along tokens: [L, D] -> [L/k, D] (avg_pool1d over the token
 * axis with kernel = stride = k; L % k == 0). */
void sx_avgpool_tokens(float *y, const float *x, int64_t L, int64_t D, int64_t k);

/* ---- type conversion (scalar ones: half.h) ---- */
void sx_f16_to_f32_n(float *y, const uint16_t *x, int64_t n);
void sx_bf16_to_f32_n(float *y, const uint16_t *x, int64_t n);

/* Frees the calling thread's kernel scratch buffers (the pool's workers
 * call it before they exit; the main thread at exit). */
void sx_ops_thread_cleanup(void);

/* ---- deterministic test data ----
 * Counter-based uniform/normal values shared with scripts/sxrand.py, so
 * real-shape tests can regenerate large random weights on both sides instead
 * of committing them: value i of stream `seed` is a pure function of (seed, i). */
void sx_rand_uniform(float *y, int64_t n, uint64_t seed, float lo, float hi);

#ifdef __cplusplus
}
#endif
#endif
