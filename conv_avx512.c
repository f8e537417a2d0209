/* conv_avx512.c - the convolution micro-kernel on AVX-512F (see
 * sx_conv_kernels in ops_impl.h): 12 output channels x 32 pixels, 24 zmm
 * accumulators; per k step two loads of X (unaligned: shifted input rows)
 * and twelve broadcasts of the packed weights. */
#include <immintrin.h>

#include "ops_avx2.h"
#include "ops_avx512.h"
#include "ops_impl.h"

#define MR 12
#define NV 2 /* zmm per row: NR = 16 * NV pixels */
#define NR (16 * NV)

static void ukr(int nci, int ntaps, const int64_t *toff, const float *a, const float *x, int64_t cs,
                float *c, int64_t ldc, int load_c) {
    __m512 acc[MR][NV];
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
            acc[r][v] = load_c ? _mm512_loadu_ps(c + r * ldc + 16 * v) : _mm512_setzero_ps();
    /* one k step: X row xr against the mr weights at a */
#define STEP(xr)                                                                             \
    do {                                                                                     \
        __m512 b[NV];                                                                       \
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_ps((xr) + 16 * v);  \
        _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) {                              \
            __m512 av = _mm512_set1_ps(a[r]);                                                       \
            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) acc[r][v] =                  \
                _mm512_fmadd_ps(av, b[v], acc[r][v]);                                             \
        }                                                                                    \
        a += MR;                                                                             \
    } while (0)
    if (ntaps == 1) {
        for (int ci = 0; ci < nci; ci++, x += cs) STEP(x + toff[0]);
    } else if (ntaps == 9) { /* 3x3: the offsets in registers */
        int64_t t0 = toff[0], t1 = toff[1], t2 = toff[2], t3 = toff[3], t4 = toff[4], t5 = toff[5],
                t6 = toff[6], t7 = toff[7], t8 = toff[8];
        for (int ci = 0; ci < nci; ci++, x += cs) {
            STEP(x + t0);
            STEP(x + t1);
            STEP(x + t2);
            STEP(x + t3);
            STEP(x + t4);
            STEP(x + t5);
            STEP(x + t6);
            STEP(x + t7);
            STEP(x + t8);
        }
    } else {
        for (int ci = 0; ci < nci; ci++, x += cs)
            for (int t = 0; t < ntaps; t++) STEP(x + toff[t]);
    }
#undef STEP
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(c + r * ldc + 16 * v, acc[r][v]);
}

static void pack_w(float *dst, const float *w, int64_t ldw, int n, int64_t K) {
    transpose_scaled(dst, MR, w, ldw, MR, n, (int)K, NULL);
}

/* y = (accumulate ? y : 0) + (c + bias) per row, masked at the right edge */
static void store(float *y, int64_t ldy, const float *c, int64_t ldc, const float *bias, int rows,
                  int cols, int accumulate) {
    for (int r = 0; r < rows; r++) {
        __m512 bv = _mm512_set1_ps(bias ? bias[r] : 0.0f);
        for (int j = 0; j < cols; j += 16) {
            __mmask16 m = cols - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cols - j)) - 1);
            __m512 t = _mm512_add_ps(_mm512_maskz_loadu_ps(m, c + r * ldc + j), bv);
            if (accumulate) t = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + r * ldy + j), t);
            _mm512_mask_storeu_ps(y + r * ldy + j, m, t);
        }
    }
}

/* GroupNorm's affine (the operations of sx_groupnorm, in order), then
 * SiLU as v / (1 + exp(-v)) */
static void prologue(float *v, int64_t n, float mean, float rstd, float w, float b, int silu) {
    const __m512 m = _mm512_set1_ps(mean), r = _mm512_set1_ps(rstd), wv = _mm512_set1_ps(w),
                 bv = _mm512_set1_ps(b), one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 t = _mm512_maskz_loadu_ps(k, v + i);
        t = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(t, m), r), wv), bv);
        if (silu)
            t = _mm512_div_ps(t, _mm512_add_ps(one, exp512_u(_mm512_sub_ps(_mm512_setzero_ps(), t))));
        _mm512_mask_storeu_ps(v + i, k, t);
    }
}

const sx_conv_kernels sx_conv_avx512 = {.name = "avx512", .mr = MR, .nr = NR, .ukr = ukr,
    .pack_w = pack_w, .store = store, .prologue = prologue};
