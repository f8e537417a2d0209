/* ops_impl.h - private to the kernel layer.
 *
 * Two kinds of per-ISA kernels:
 *   - sx_kernels: what does not depend on a weight type (the GEMM
 *     micro-kernel on packed float32 panels, the softmax row), one table per
 *     path, filled by ops.c (scalar) and ops_<isa>.c;
 *   - per weight type (conversion, GEMV): named in the type table of
 *     wtype.c, declared below, defined in ops.c (scalar) and ops_<isa>.c.
 * ops.c, ops_gemm.c, ops_attn.c and ops_conv.c are the drivers (blocking,
 * threading) shared by every ISA. */
#ifndef SEEDX_OPS_IMPL_H
#define SEEDX_OPS_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "simd.h"
#include "wtype.h"

typedef struct sx_kernels {
    const char *name;
    int mr, nr; /* micro-tile of the GEMM: mr rows of X, nr rows of W */
    /* C[mr,nr] (row stride ldc) = (load_c ? C : 0) + A.B over kc steps, where
     * A is packed [kc][mr] and B packed [kc][nr]. */
    void (*ukr)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int load_c);
    /* In place x = softmax(scale * x) over n values (n >= 1, scale > 0);
     * -inf entries become 0. */
    void (*softmax_row)(float *x, int64_t n, float scale);
} sx_kernels;

extern const sx_kernels sx_kernels_scalar;
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
extern const sx_kernels sx_kernels_avx2;
extern const sx_kernels sx_kernels_avx512;
#endif
#if defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
extern const sx_kernels sx_kernels_neon;
#endif
/* The table of the current path (simd.c). */
const sx_kernels *sx_kernels_cur(void);

/* ---- per-type kernels (see sx_gemv_fn / sx_to_f32_fn in wtype.h) ---- */
#define SX_GEMV_DECL(isa)                                                                     \
    void sx_gemv_f32_##isa(float *y, int64_t ldy, const void *x, size_t ldx, int m,           \
                           const void *w, size_t ldw, int64_t n0, int64_t n1, int64_t K,       \
                           const float *bias);                                                \
    void sx_gemv_f16_##isa(float *y, int64_t ldy, const void *x, size_t ldx, int m,           \
                           const void *w, size_t ldw, int64_t n0, int64_t n1, int64_t K,       \
                           const float *bias);                                                \
    void sx_gemv_bf16_##isa(float *y, int64_t ldy, const void *x, size_t ldx, int m,          \
                            const void *w, size_t ldw, int64_t n0, int64_t n1, int64_t K,      \
                            const float *bias);
SX_GEMV_DECL(scalar)
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
SX_GEMV_DECL(avx2)
SX_GEMV_DECL(avx512)
void sx_f16_to_f32_avx2(float *y, const void *x, int64_t n);
void sx_bf16_to_f32_avx2(float *y, const void *x, int64_t n);
void sx_f16_to_f32_avx512(float *y, const void *x, int64_t n);
void sx_bf16_to_f32_avx512(float *y, const void *x, int64_t n);
#endif

/* One activation on one value: the exact expressions of sx_gelu,
 * sx_gelu_tanh and sx_silu (fused epilogues must match them bit for bit). */
#include <math.h>
static inline float sx_act1(float v, int act) {
    switch (act) {
    case 1: /* SX_ACT_GELU */ return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    case 2: /* SX_ACT_GELU_TANH */
        return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    case 3: /* SX_ACT_SILU */ return v / (1.0f + expf(-v));
    default: return v;
    }
}

/* ---- single-thread GEMM building blocks (ops_gemm.c), for callers that
 * run many small products inside one parallel task (attention) ---- */
struct sx_weight;
/* W rows [n0, n0+N) -> nr-column panels [ceil(N/nr)][K][nr] (zero-padded);
 * -1 if out of memory. */
int sx_gemm_pack_b(float *dst, const struct sx_weight *W, int64_t n0, int64_t N, int64_t K);
/* y[M, N] (row stride ldy) = x[M, K] . B^T with B pre-packed as above
 * (panel stride bK*nr floats; bK = 0: K); ap: scratch of ceil(M/mr)*mr*K. */
void sx_gemm_prepacked(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M,
                       const float *bp, int64_t N, int64_t K, int64_t bK, float *ap);

/* ---- per-thread scratch (ops.c) ----
 * Buffers grown on demand and kept: fresh large mallocs are mmap'ed and
 * every page faults on first touch, which costs as much as the arithmetic of
 * the small GEMMs inside attention. One slot per use: */
enum {
    SX_SCR_GEMM_A,  /* packed X panels */
    SX_SCR_GEMM_B,  /* packed W panels */
    SX_SCR_ATTN_S,  /* attention scores */
    SX_SCR_CONV_COL, /* im2col rows */
    SX_SCR_CONV_OUT, /* conv GEMM output */
    SX_SCR_ATTN_KV, /* attention's pre-packed keys and values */
    SX_SCR_ACT,     /* quantized activations of the integer GEMV */
    SX_SCR_PACK,    /* one block of converted weight rows while packing */
    SX_SCR_EPI,     /* matmul sums awaiting an accumulating epilogue */
    SX_SCR_QPREP,   /* quantized GEMV: activations rearranged for the kernel */
    SX_SCR_N
};
/* n floats of 64-byte aligned scratch of the calling thread; NULL if out of
 * memory. The contents are not kept between different uses of a slot. */
float *sx_scratch(int slot, size_t n);

#endif
