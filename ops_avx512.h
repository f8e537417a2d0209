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

/* A 16 x 16 transpose of 32-bit words in registers: r[n] = row n in, r[j] =
 * column j out. Pairs of words, then pairs of pairs, then 128-bit lanes. */
static inline __attribute__((always_inline)) void transpose16_u32(__m512i r[16]) {
    __m512i t[16];
    _Pragma("GCC unroll 8") for (int n = 0; n < 16; n += 2) {
        t[n] = _mm512_unpacklo_epi32(r[n], r[n + 1]);
        t[n + 1] = _mm512_unpackhi_epi32(r[n], r[n + 1]);
    }
    _Pragma("GCC unroll 4") for (int n = 0; n < 16; n += 4) {
        r[n] = _mm512_unpacklo_epi64(t[n], t[n + 2]);
        r[n + 1] = _mm512_unpackhi_epi64(t[n], t[n + 2]);
        r[n + 2] = _mm512_unpacklo_epi64(t[n + 1], t[n + 3]);
        r[n + 3] = _mm512_unpackhi_epi64(t[n + 1], t[n + 3]);
    }
    /* 128-bit lanes: row group g (rows 4g..4g+3) lane l holds words 4l + c
     * of those rows in r[4g + c]; gather lane l of the four groups */
    _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {
        __m512i a = _mm512_shuffle_i32x4(r[c], r[4 + c], 0x88); /* lanes 0,2 | 0,2 */
        __m512i b = _mm512_shuffle_i32x4(r[c], r[4 + c], 0xdd); /* lanes 1,3 | 1,3 */
        __m512i e = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0x88);
        __m512i f = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0xdd);
        t[c] = _mm512_shuffle_i32x4(a, e, 0x88);      /* lane 0 of groups 0..3 */
        t[4 + c] = _mm512_shuffle_i32x4(b, f, 0x88);  /* lane 1 */
        t[8 + c] = _mm512_shuffle_i32x4(a, e, 0xdd);  /* lane 2 */
        t[12 + c] = _mm512_shuffle_i32x4(b, f, 0xdd); /* lane 3 */
    }
    _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) r[j] = t[j];
}

#endif
