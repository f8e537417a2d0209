/* ops_impl.h - private to the kernel layer: the per-ISA kernel table that
 * ops.c dispatches through. ops_avx2.c / ops_avx512.c / ops_neon.c fill one
 * each; ops.c holds the scalar reference. */
#ifndef SEEDX_OPS_IMPL_H
#define SEEDX_OPS_IMPL_H

#include <stdint.h>

typedef struct sx_kernels {
    const char *name;
    int mr, nr; /* micro-tile of the GEMM: mr rows of X, nr rows of W */
    /* C[mr,nr] (row stride ldc) = (load_c ? C : 0) + A.B over kc steps, where
     * A is packed [kc][mr] and B packed [kc][nr]. */
    void (*ukr)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int load_c);
    /* y[r*ldy + n] = bias[n] + dot(x[r*ldx + 0..K), W row n) for r < m (m <= 4),
     * n in [n0, n1); W rows of `type` (F32/F16/BF16) with row stride ld. */
    void (*gemv)(float *y, int64_t ldy, const float *x, int64_t ldx, int m, const void *w, int type,
                 int64_t ld, int64_t n0, int64_t n1, int64_t K, const float *bias);
    void (*f16_to_f32)(float *y, const uint16_t *x, int64_t n);
    void (*bf16_to_f32)(float *y, const uint16_t *x, int64_t n);
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

#define SX_GEMV_MAX_M 4

#endif
