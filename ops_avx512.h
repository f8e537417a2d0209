/* ops_avx512.h - AVX512 vector math shared by the avx512 kernel files
 * (included only by files compiled with the avx512 flags). */
#ifndef SEEDX_OPS_AVX512_H
#define SEEDX_OPS_AVX512_H

#include <immintrin.h>

/* exp(x): Cody-Waite reduction x = n ln2 + r, degree-6 polynomial for e^r,
 * scaled by 2^n (scalef: 0 far below the float range, inf above it). x is
 * clamped to -150, where the result is already 0; between -103 and -87.3
 * it is denormal, as expf's. */
static inline __m512 exp512_u(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-150.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* exp(x) for x <= 0 (softmax after max subtraction): exact 0 below -87.3
 * (like expf's underflow to 0 at the float range). */
static inline __m512 exp512(__m512 x) {
    __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_LT_OQ);
    return _mm512_maskz_mov_ps((__mmask16)~under, exp512_u(x));
}

#endif
