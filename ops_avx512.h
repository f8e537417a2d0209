/* ops_avx512.h - AVX512 vector math shared by the avx512 kernel files
 * (included only by files compiled with the avx512 flags). */
#ifndef SEEDX_OPS_AVX512_H
#define SEEDX_OPS_AVX512_H

#include <immintrin.h>

#include "ops_avx2.h"

/* exp(x): Cody-Waite reduction x = n ln2 + r, degree-6 polynomial for e^r,
 * scaled by 2^n (scalef: 0 far below the float range, inf above it). x is
 * clamped to -150, where the result is already 0; between -103 and -87.3
 * it is denormal, as expf's. */
static inline __m512 exp512_u(__m512 x) {
    __m512 n, p;
    x = _mm512_max_ps(x, _mm512_set1_ps(-150.0f));
    SX_EXP_REDUCE(_mm512, _mm512_roundscale_ps, x, n, p);
    return _mm512_scalef_ps(p, n);
}

/* exp(x) for x <= 0 (softmax after max subtraction): exact 0 below -87.3
 * (like expf's underflow to 0 at the float range). */
static inline __m512 exp512(__m512 x) {
    __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_LT_OQ);
    return _mm512_maskz_mov_ps((__mmask16)~under, exp512_u(x));
}

#endif
