/* conv_avx512.c - the convolution micro-kernel on AVX-512F (see
 * sx_conv_kernels in ops_impl.h): 12 output channels x 32 pixels, 24 zmm
 * accumulators; per k step two loads of X (unaligned: shifted input rows)
 * and twelve broadcasts of the packed weights. */
#include <immintrin.h>

#include "ops.h"
#include "ops_avx2.h"
#include "ops_avx512.h"
#include "ops_impl.h"

#define MR 12
#define NV 2 /* zmm per row: NR = 16 * NV pixels */
#define NR (16 * NV)

#define V          __m512
#define VL         16
#define V_LOAD     _mm512_loadu_ps
#define V_STORE    _mm512_storeu_ps
#define V_FMA      _mm512_fmadd_ps
#define V_BCAST(p) _mm512_set1_ps(*(p))
#define V_ZERO     _mm512_setzero_ps
#include "conv_f32.h"

/* m (< 16) elements of type `type` from p, widened to float32 (lanes past m 0) */
static inline __m512 load_w(const void *p, int type, int m) {
    __mmask16 k = (__mmask16)((1u << m) - 1);
    if (type == SX_F32) return _mm512_maskz_loadu_ps(k, p);
    __m256i h = _mm256_maskz_loadu_epi16(k, p);
    if (type == SX_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Panel rows from the weight panels: per k, the tile's channels are one run
 * in a weight panel, or two (a tile across two panels). */
static void pack_w_panels(float *dst, const void *pdata, int type, int pnr, int64_t K, int64_t c0,
                          int n) {
    size_t es = type == SX_F32 ? 4 : 2;
    int q = (int)(c0 % pnr), n1 = n < pnr - q ? n : pnr - q, n2 = n - n1;
    const char *p1 = (const char *)pdata + (size_t)(c0 / pnr * pnr * K + q) * es;
    const char *p2 = (const char *)pdata + (size_t)((c0 / pnr + 1) * pnr * K) * es;
    __mmask16 m1 = (__mmask16)((1u << n1) - 1), m2 = (__mmask16)((1u << n2) - 1);
    for (int64_t k = 0; k < K; k++, dst += MR) {
        _mm512_mask_storeu_ps(dst, (__mmask16)((1u << MR) - 1), _mm512_setzero_ps());
        _mm512_mask_storeu_ps(dst, m1, load_w(p1 + (size_t)(k * pnr) * es, type, n1));
        if (n2) _mm512_mask_storeu_ps(dst + n1, m2, load_w(p2 + (size_t)(k * pnr) * es, type, n2));
    }
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
            t = _mm512_div_ps(t,
                              _mm512_add_ps(one, exp512_u(_mm512_sub_ps(_mm512_setzero_ps(), t))));
        _mm512_mask_storeu_ps(v + i, k, t);
    }
}

const sx_conv_kernels sx_conv_avx512 = CONV_F32_KERNELS("avx512");
