/* quant_avx512.c - AVX-512 (F/BW/DQ/VL) kernels of the quantized types
 * (quant.h), two blocks of 32 per zmm. The integer GEMV has two variants
 * chosen at run time (sx_simd_vnni()): with AVX512-VNNI, vpdpbusd (u8 x s8,
 * four products summed into an int32, no saturation) for Q8_0/Q4_0 and
 * vpdpwssd (s16 x s16) for Q4_K's scales; without it (e.g. Skylake-X),
 * maddubs + madd as on AVX2. Either way the u8 operand is |w| and the sign
 * of w moves onto the activation, so every block's integer sum is exact. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "half.h"
#include "quant.h"
#include "simd.h"

#define VNNI __attribute__((target("avx512vnni")))

static inline float f16at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* two ymm -> one zmm */
static inline __m512i cat256(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
static inline __m512 cat256ps(__m256 lo, __m256 hi) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}

/* Q4_0 block: 16 bytes of nibbles -> 32 bytes of codes 0..15 in value order */
static inline __m256i nibbles32(const uint8_t *p) {
    __m128i q = _mm_loadu_si128((const __m128i *)p);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_and_si256(v, _mm256_set1_epi8(15));
}

/* ---- dequantization (bit-identical to quant.c) ---- */
static inline void i8x32_to_f32(float *y, __m256i q, __m512 d) {
    __m512 a = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
    __m512 b = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
    _mm512_storeu_ps(y, _mm512_mul_ps(a, d));
    _mm512_storeu_ps(y + 16, _mm512_mul_ps(b, d));
}

void sx_q8_0_to_f32_avx512(float *y, const void *x, int64_t n) {
    const uint8_t *p = x;
    for (int64_t b = 0; b < n / SX_QK; b++, p += SX_Q8_0_BYTES, y += SX_QK)
        i8x32_to_f32(y, _mm256_loadu_si256((const __m256i *)(p + 2)), _mm512_set1_ps(f16at(p)));
}

void sx_q4_0_to_f32_avx512(float *y, const void *x, int64_t n) {
    const uint8_t *p = x;
    for (int64_t b = 0; b < n / SX_QK; b++, p += SX_Q4_0_BYTES, y += SX_QK)
        i8x32_to_f32(y, _mm256_sub_epi8(nibbles32(p + 2), _mm256_set1_epi8(8)),
                     _mm512_set1_ps(f16at(p)));
}

void sx_q4_k_to_f32_avx512(float *y, const void *x, int64_t n) {
    const uint8_t *p = x;
    for (int64_t b = 0; b < n / SX_QKK; b++, p += SX_Q4_K_BYTES, y += SX_QKK) {
        float d = f16at(p), dmin = f16at(p + 2);
        for (int c = 0; c < 4; c++) {
            __m256i qv = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * c));
            __m256i nib[2] = {_mm256_and_si256(qv, _mm256_set1_epi8(15)),
                              _mm256_and_si256(_mm256_srli_epi16(qv, 4), _mm256_set1_epi8(15))};
            for (int h = 0; h < 2; h++) {
                int sc, m;
                sx_q4_k_scale_min(p + 4, 2 * c + h, &sc, &m);
                __m512 dl = _mm512_set1_ps(d * (float)sc), ml = _mm512_set1_ps(dmin * (float)m);
                __m512 a = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(nib[h])));
                __m512 bb = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(nib[h], 1)));
                float *o = y + 64 * c + 32 * h;
                _mm512_storeu_ps(o, _mm512_sub_ps(_mm512_mul_ps(dl, a), ml));
                _mm512_storeu_ps(o + 16, _mm512_sub_ps(_mm512_mul_ps(dl, bb), ml));
            }
        }
    }
}

/* ---- activation quantizers (bit-identical to quant.c) ---- */
/* roundf of values below 2^22 in magnitude: trunc(v + copysign(0.49999997, v)) */
static inline __m512 round_away(__m512 v) {
    __m512 h = _mm512_or_ps(_mm512_set1_ps(0.49999997f), _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));
    return _mm512_roundscale_ps(_mm512_add_ps(v, h), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
}

void sx_q8_0_from_f32_avx512(void *yv, const float *x, int64_t n) {
    uint8_t *p = yv;
    for (int64_t b = 0; b < n / SX_QK; b++, p += SX_Q8_0_BYTES, x += SX_QK) {
        __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        if (isinf(id)) id = 0.0f;
        uint16_t h = sx_f32_to_f16(d);
        memcpy(p, &h, 2);
        __m512 vid = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvttps_epi32(round_away(_mm512_mul_ps(v0, vid)));
        __m512i q1 = _mm512_cvttps_epi32(round_away(_mm512_mul_ps(v1, vid)));
        _mm_storeu_si128((__m128i *)(p + 2), _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(p + 18), _mm512_cvtsepi32_epi8(q1));
    }
}

void sx_q8_k_from_f32_avx512(void *yv, const float *x, int64_t n) {
    uint8_t *p = yv;
    for (int64_t b = 0; b < n / SX_QKK; b++, p += SX_Q8_K_BYTES, x += SX_QKK) {
        __m512 mx = _mm512_setzero_ps();
        for (int k = 0; k < 16; k++) mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)));
        float amax = _mm512_reduce_max_ps(mx), vmax = 0.0f, d = 0.0f;
        int16_t bs[16];
        if (amax == 0.0f || !isfinite(amax)) {
            memset(p + 4, 0, SX_QKK);
            memset(bs, 0, sizeof bs);
        } else {
            __m512 am = _mm512_set1_ps(amax);
            for (int k = 0; k < 16; k++) { /* the first value of largest magnitude */
                __mmask16 e = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)), am, _CMP_EQ_OQ);
                if (e) {
                    vmax = x[16 * k + __builtin_ctz((unsigned)e)];
                    break;
                }
            }
            float iscale = -127.0f / vmax;
            __m512 vs = _mm512_set1_ps(iscale);
            const __m512i hi = _mm512_set1_epi32(127), lo = _mm512_set1_epi32(-127);
            for (int g = 0; g < 16; g++) {
                __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(vs, _mm512_loadu_ps(x + 16 * g)));
                v = _mm512_max_epi32(_mm512_min_epi32(v, hi), lo);
                bs[g] = (int16_t)_mm512_reduce_add_epi32(v);
                _mm_storeu_si128((__m128i *)(p + 4 + 16 * g), _mm512_cvtepi32_epi8(v));
            }
            d = 1.0f / iscale;
        }
        memcpy(p, &d, 4);
        memcpy(p + 4 + SX_QKK, bs, sizeof bs);
    }
}

/* ---- GEMV ---- */
/* w . a for two blocks (64 products) as 16 int32 lanes (lanes 0-7: first
 * block, 8-15: second); w signed with |w| <= 128, a in [-127, 127]. */
static inline __m512i dot64_plain(__m512i w, __m512i a) {
    __m512i aw = _mm512_abs_epi8(w);
    __m512i sa = _mm512_mask_sub_epi8(a, _mm512_movepi8_mask(w), _mm512_setzero_si512(), a);
    return _mm512_madd_epi16(_mm512_maddubs_epi16(aw, sa), _mm512_set1_epi16(1));
}
VNNI static inline __m512i dot64_vnni(__m512i w, __m512i a) {
    __m512i aw = _mm512_abs_epi8(w);
    __m512i sa = _mm512_mask_sub_epi8(a, _mm512_movepi8_mask(w), _mm512_setzero_si512(), a);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), aw, sa);
}

/* the same for one block (8 lanes) */
static inline __m256i dot32(__m256i w, __m256i a) {
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* codes of block b of a Q8_0 (Q4 = 0) or Q4_0 (Q4 = 1, minus 8) row */
static inline __m256i wcodes(const uint8_t *wp, int Q4) {
    return Q4 ? _mm256_sub_epi8(nibbles32(wp + 2), _mm256_set1_epi8(8))
              : _mm256_loadu_si256((const __m256i *)(wp + 2));
}

/* Q8_0 / Q4_0 weights x Q8_0 activations: two blocks per step; with one
 * activation row, four weight rows at a time (four streams in flight). */
#define GEMV_Q32(fname, DOT, ATTR)                                                                 \
    ATTR static void fname(float *y, int64_t ldy, const void *x, size_t ldx, int m,                 \
                           const void *w, size_t ldw, int64_t n0, int64_t n1, int64_t K,           \
                           const float *bias, int Q4) {                                            \
        const int64_t nb = K / SX_QK;                                                              \
        const size_t wb = Q4 ? SX_Q4_0_BYTES : SX_Q8_0_BYTES;                                      \
        const int R = m == 1 ? 4 : 1; /* weight rows per pass */                                   \
        int64_t n = n0;                                                                            \
        for (; n < n1; n += R) {                                                                   \
            int nr = n1 - n < R ? (int)(n1 - n) : R, ma = m == 1 ? nr : m;                          \
            __m512 acc[4];                                                                         \
            __m256 acc1[4];                                                                        \
            for (int i = 0; i < 4; i++) acc[i] = _mm512_setzero_ps(), acc1[i] = _mm256_setzero_ps(); \
            const uint8_t *wr = (const uint8_t *)w + (size_t)n * ldw;                              \
            int64_t b = 0;                                                                         \
            for (; b + 2 <= nb; b += 2) {                                                          \
                const uint8_t *xa = (const uint8_t *)x + (size_t)b * SX_Q8_0_BYTES;                \
                for (int i = 0; i < ma; i++) {                                                     \
                    /* m == 1: weight row i, activation row 0; else row 0, activation row i */    \
                    const uint8_t *wp = wr + (m == 1 ? (size_t)i * ldw : 0) + (size_t)b * wb;      \
                    const uint8_t *ap = xa + (m == 1 ? 0 : (size_t)i * ldx);                      \
                    __m512i wv = cat256(wcodes(wp, Q4), wcodes(wp + wb, Q4));                       \
                    __m512i av = cat256(_mm256_loadu_si256((const __m256i *)(ap + 2)),             \
                                        _mm256_loadu_si256((const __m256i *)(ap + 36)));           \
                    __m512 sc = cat256ps(_mm256_set1_ps(f16at(wp) * f16at(ap)),                     \
                                         _mm256_set1_ps(f16at(wp + wb) * f16at(ap + 34)));          \
                    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(DOT(wv, av)), sc, acc[i]);         \
                }                                                                                  \
            }                                                                                      \
            for (; b < nb; b++)                                                                    \
                for (int i = 0; i < ma; i++) {                                                     \
                    const uint8_t *wp = wr + (m == 1 ? (size_t)i * ldw : 0) + (size_t)b * wb;      \
                    const uint8_t *ap = (const uint8_t *)x + (m == 1 ? 0 : (size_t)i * ldx) +      \
                                        (size_t)b * SX_Q8_0_BYTES;                                 \
                    __m256i s = dot32(wcodes(wp, Q4), _mm256_loadu_si256((const __m256i *)(ap + 2))); \
                    acc1[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),                               \
                                              _mm256_set1_ps(f16at(wp) * f16at(ap)), acc1[i]);    \
                }                                                                                  \
            for (int i = 0; i < ma; i++) {                                                         \
                float s = _mm512_reduce_add_ps(_mm512_add_ps(acc[i], _mm512_zextps256_ps512(acc1[i]))); \
                int64_t col = m == 1 ? n + i : n;                                                  \
                int row = m == 1 ? 0 : i;                                                          \
                y[row * ldy + col] = s + (bias ? bias[col] : 0.0f);                                \
            }                                                                                      \
        }                                                                                          \
    }
GEMV_Q32(gemv_q32_plain, dot64_plain, )
GEMV_Q32(gemv_q32_vnni, dot64_vnni, VNNI)

void sx_gemv_q8_0_avx512(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                         size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias) {
    (sx_simd_vnni() ? gemv_q32_vnni : gemv_q32_plain)(y, ldy, x, ldx, m, w, ldw, n0, n1, K, bias, 0);
}

void sx_gemv_q4_0_avx512(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                         size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias) {
    (sx_simd_vnni() ? gemv_q32_vnni : gemv_q32_plain)(y, ldy, x, ldx, m, w, ldw, n0, n1, K, bias, 1);
}

/* Q4_K x Q8_K. A zmm holds two 32-value sub-blocks; the scale of each
 * multiplies its maddubs pairs (madd, or vpdpwssd with VNNI) into int32
 * lanes; the mins meet the bsums in one madd. The integer sums and the float
 * arithmetic after them are those of quant.c: bit-identical. */
static inline __m512i q4k_madd(__m512i acc, __m512i p, __m512i s) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p, s));
}
VNNI static inline __m512i q4k_madd_vnni(__m512i acc, __m512i p, __m512i s) {
    return _mm512_dpwssd_epi32(acc, p, s);
}

static inline int hsum256_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

#define GEMV_Q4K(fname, MADD, ATTR)                                                                \
    ATTR static void fname(float *y, int64_t ldy, const void *x, size_t ldx, int m,                 \
                           const void *w, size_t ldw, int64_t n0, int64_t n1, int64_t K,           \
                           const float *bias) {                                                    \
        const int64_t nb = K / SX_QKK;                                                             \
        const __m512i lo4 = _mm512_set1_epi8(15);                                                  \
        /* zmm k holds sub-blocks a(k) and a(k)+2, a = 0, 1, 4, 5: int16 lane selectors */        \
        __m512i sel[4];                                                                            \
        for (int k = 0; k < 4; k++) {                                                              \
            int a = (k >> 1) * 4 + (k & 1);                                                        \
            sel[k] = cat256(_mm256_set1_epi16((short)a), _mm256_set1_epi16((short)(a + 2)));       \
        }                                                                                          \
        for (int64_t n = n0; n < n1; n++) {                                                        \
            const uint8_t *wr = (const uint8_t *)w + (size_t)n * ldw;                              \
            float s[SX_GEMV_MAX_M] = {0};                                                          \
            for (int64_t b = 0; b < nb; b++) {                                                     \
                const uint8_t *wp = wr + (size_t)b * SX_Q4_K_BYTES;                                \
                uint64_t scb, mb;                                                                  \
                sx_q4_k_scales_mins(wp + 4, &scb, &mb);                                            \
                __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)scb))); \
                __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mb));                 \
                __m256i mexp = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16)); \
                __m512i scl[4], q[4];                                                              \
                for (int k = 0; k < 4; k++) scl[k] = _mm512_permutexvar_epi16(sel[k], sc16);       \
                for (int h = 0; h < 2; h++) { /* chunks 2h and 2h+1 */                             \
                    __m512i qv = _mm512_loadu_si512(wp + 16 + 64 * h);                             \
                    q[2 * h] = _mm512_and_si512(qv, lo4);                                          \
                    q[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(qv, 4), lo4);                \
                }                                                                                  \
                float dw = f16at(wp), dmin = f16at(wp + 2);                                        \
                for (int r = 0; r < m; r++) {                                                      \
                    const uint8_t *ap = (const uint8_t *)x + (size_t)r * ldx + (size_t)b * SX_Q8_K_BYTES; \
                    __m512i acc = _mm512_setzero_si512();                                          \
                    for (int k = 0; k < 4; k++) {                                                  \
                        const uint8_t *a0 = ap + 4 + 32 * ((k >> 1) * 4 + (k & 1));                \
                        __m512i av = cat256(_mm256_loadu_si256((const __m256i *)a0),               \
                                            _mm256_loadu_si256((const __m256i *)(a0 + 64)));       \
                        acc = MADD(acc, _mm512_maddubs_epi16(q[k], av), scl[k]);                   \
                    }                                                                              \
                    __m256i bs = _mm256_loadu_si256((const __m256i *)(ap + 4 + SX_QKK));           \
                    int32_t msum = hsum256_i32(_mm256_madd_epi16(bs, mexp));                       \
                    float da;                                                                      \
                    memcpy(&da, ap, 4);                                                            \
                    s[r] += (da * dw) * (float)_mm512_reduce_add_epi32(acc);                       \
                    s[r] -= (da * dmin) * (float)msum;                                             \
                }                                                                                  \
            }                                                                                      \
            for (int r = 0; r < m; r++) y[r * ldy + n] = s[r] + (bias ? bias[n] : 0.0f);           \
        }                                                                                          \
    }
GEMV_Q4K(gemv_q4k_plain, q4k_madd, )
GEMV_Q4K(gemv_q4k_vnni, q4k_madd_vnni, VNNI)

void sx_gemv_q4_k_avx512(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                         size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias) {
    (sx_simd_vnni() ? gemv_q4k_vnni : gemv_q4k_plain)(y, ldy, x, ldx, m, w, ldw, n0, n1, K, bias);
}
