/* ops_avx2.h - AVX2 helpers shared by the kernel files compiled with the
 * AVX2 (or AVX-512) flags: exp for the softmax, blocked transposes. */
#ifndef SEEDX_OPS_AVX2_H
#define SEEDX_OPS_AVX2_H

#include <immintrin.h>

/* The reduction x = n ln2 + r (Cody-Waite, ln2 in two parts) and the
 * degree-6 polynomial p = e^r shared by the SIMD exps: P is the intrinsics'
 * prefix (_mm256, _mm512), ROUND its round-to-nearest; sets n and p. */
#define SX_EXP_REDUCE(P, ROUND, x, n, p)                                                           \
    do {                                                                                           \
        n = ROUND(P##_mul_ps(x, P##_set1_ps(1.44269504088896341f)),                                \
                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);                                  \
        __typeof__(x) r_ = P##_fnmadd_ps(n, P##_set1_ps(0.693359375f), x);                         \
        r_ = P##_fnmadd_ps(n, P##_set1_ps(-2.12194440e-4f), r_);                                   \
        p = P##_set1_ps(1.9875691500e-4f);                                                         \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(1.3981999507e-3f));                                    \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(8.3334519073e-3f));                                    \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(4.1665795894e-2f));                                    \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(1.6666665459e-1f));                                    \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(5.0000001201e-1f));                                    \
        p = P##_fmadd_ps(p, P##_mul_ps(r_, r_), P##_add_ps(r_, P##_set1_ps(1.0f)));                \
    } while (0)

/* exp(x) for the softmax: exact 0 below -87.3 (as the AVX-512 path). */
static inline __m256 exp256(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ), n, p;
    x = _mm256_max_ps(x, lo);
    SX_EXP_REDUCE(_mm256, _mm256_round_ps, x, n, p);
    /* 2^n: n in [-126, 0] here, build the exponent bits directly */
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

/* In-register transpose of the 8x8 block r[0..7]. */
static inline void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

/* dst[c][r] (row stride ldd) = r < nr ? src[r][c] * (sc ? sc[c] : 1) : 0
 * for r < rows, c < cols (src row stride lds): 8x8 or 4x8 blocks in
 * registers, scalar edges. */
static inline void transpose_scaled(float *dst, int64_t ldd, const float *src, int64_t lds,
                                    int rows, int nr, int cols, const float *sc) {
    for (int r0 = 0; r0 < rows;) {
        int h = rows - r0 >= 8 ? 8 : rows - r0 >= 4 ? 4 : rows - r0; /* rows of this band */
        int c0 = 0;
        for (; h >= 4 && c0 + 8 <= cols; c0 += 8) {
            __m256 v[8], s = sc ? _mm256_loadu_ps(sc + c0) : _mm256_set1_ps(1.0f);
            for (int i = 0; i < h; i++)
                v[i] = r0 + i < nr ? _mm256_mul_ps(_mm256_loadu_ps(src + (r0 + i) * lds + c0), s)
                                   : _mm256_setzero_ps();
            if (h == 8) {
                transpose8(v);
                for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + (c0 + i) * ldd + r0, v[i]);
            } else { /* 4 rows: columns c and c+4 in the halves of u[c] */
                __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
                __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
                __m256 u[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xee),
                               _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xee)};
                for (int i = 0; i < 4; i++) {
                    _mm_storeu_ps(dst + (c0 + i) * ldd + r0, _mm256_castps256_ps128(u[i]));
                    _mm_storeu_ps(dst + (c0 + i + 4) * ldd + r0, _mm256_extractf128_ps(u[i], 1));
                }
            }
        }
        for (int c = c0; c < cols; c++)
            for (int r = r0; r < r0 + h; r++)
                dst[c * ldd + r] = r < nr ? src[r * lds + c] * (sc ? sc[c] : 1.0f) : 0.0f;
        r0 += h;
    }
}

#endif
