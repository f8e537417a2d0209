/* conv_avx2.c - the convolution micro-kernel on AVX2+FMA (see
 * sx_conv_kernels in ops_impl.h): 6 output channels x 16 pixels, 12 ymm
 * accumulators; per k step two loads of X (unaligned: shifted input rows)
 * and six broadcasts of the packed weights. */
#include <immintrin.h>

#include "ops_avx2.h"
#include "ops.h"
#include "ops_impl.h"

#define MR 6
#define NV 2 /* ymm per row: NR = 8 * NV pixels */
#define NR (8 * NV)

#define V          __m256
#define VL         8
#define V_LOAD     _mm256_loadu_ps
#define V_STORE    _mm256_storeu_ps
#define V_FMA      _mm256_fmadd_ps
#define V_BCAST(p) _mm256_broadcast_ss(p)
#define V_ZERO     _mm256_setzero_ps
#include "conv_f32.h"

static void pack_w_panels(float *dst, const void *pdata, int type, int pnr, int64_t K, int64_t c0,
                          int n) {
    sx_conv_pack_w_panels(dst, MR, pdata, type, pnr, K, c0, n);
}

/* y = (accumulate ? y : 0) + (c + bias) per row (the right edge one by one) */
static void store(float *y, int64_t ldy, const float *c, int64_t ldc, const float *bias, int rows,
                  int cols, int accumulate) {
    for (int r = 0; r < rows; r++) {
        float b = bias ? bias[r] : 0.0f;
        __m256 bv = _mm256_set1_ps(b);
        int j = 0;
        for (; j + 8 <= cols; j += 8) {
            __m256 t = _mm256_add_ps(_mm256_loadu_ps(c + r * ldc + j), bv);
            if (accumulate) t = _mm256_add_ps(_mm256_loadu_ps(y + r * ldy + j), t);
            _mm256_storeu_ps(y + r * ldy + j, t);
        }
        for (; j < cols; j++) {
            float t = c[r * ldc + j] + b;
            y[r * ldy + j] = accumulate ? y[r * ldy + j] + t : t;
        }
    }
}

/* GroupNorm's affine (the operations of sx_groupnorm, in order), then
 * SiLU as v / (1 + exp(-v)) (exp's argument capped at 88, where it stays
 * finite; the scalar tail as sx_silu) */
static void prologue(float *v, int64_t n, float mean, float rstd, float w, float b, int silu) {
    const __m256 m = _mm256_set1_ps(mean), r = _mm256_set1_ps(rstd), wv = _mm256_set1_ps(w),
                 bv = _mm256_set1_ps(b), one = _mm256_set1_ps(1.0f), cap = _mm256_set1_ps(88.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 t = _mm256_loadu_ps(v + i);
        t = _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(t, m), r), wv), bv);
        if (silu)
            t = _mm256_div_ps(
                t, _mm256_add_ps(
                       one, exp256(_mm256_min_ps(_mm256_sub_ps(_mm256_setzero_ps(), t), cap))));
        _mm256_storeu_ps(v + i, t);
    }
    for (; i < n; i++) {
        float t = (v[i] - mean) * rstd * w + b;
        v[i] = silu ? sx_act1(t, SX_ACT_SILU) : t;
    }
}

const sx_conv_kernels sx_conv_avx2 = CONV_F32_KERNELS("avx2");
