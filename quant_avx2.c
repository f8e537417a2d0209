/* quant_avx2.c - AVX2 kernels of the quantized types (quant.h): SIMD
 * dequantization (GEMM packing), activation quantizers, integer GEMV.
 * Integer products use maddubs (u8 x s8 -> s16 pairs) with the sign of the
 * weight moved onto the activation (sign_epi8), so the u8 operand is |w|:
 * |w| <= 128 and |a| <= 127 keep every pair sum below 2^15, so nothing
 * saturates and each block's sum is exact. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "half.h"
#include "quant.h"

static inline float f16at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float hsum_f32(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax_f32(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 32 int8 at p -> 4 x 8 floats */
static inline void i8x32_to_f32(float *y, const uint8_t *p, __m256 d) {
    for (int k = 0; k < 4; k++) {
        __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8 * k)));
        _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(v), d));
    }
}

/* Q4_0 block: 16 bytes of nibbles -> 32 bytes of codes 0..15 in value order */
static inline __m256i nibbles32(const uint8_t *p) {
    __m128i q = _mm_loadu_si128((const __m128i *)p);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_and_si256(v, _mm256_set1_epi8(15));
}

/* roundf (halves away from zero) of values below 2^22 in magnitude:
 * truncate v + copysign(0.49999997, v) */
static inline __m256 round_away(__m256 v) {
    __m256 h = _mm256_or_ps(_mm256_set1_ps(0.49999997f), _mm256_and_ps(v, _mm256_set1_ps(-0.0f)));
    return _mm256_round_ps(_mm256_add_ps(v, h), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
}

/* 4 x 8 int32 in [-127, 127] -> 32 int8 in order */
static inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i v = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* ---- dequantization (bit-identical to quant.c: the same products) ---- */
void sx_q8_0_to_f32_avx2(float *y, const void *x, int64_t n) {
    const uint8_t *p = x;
    for (int64_t b = 0; b < n / SX_QK; b++, p += SX_Q8_0_BYTES, y += SX_QK)
        i8x32_to_f32(y, p + 2, _mm256_set1_ps(f16at(p)));
}

void sx_q4_0_to_f32_avx2(float *y, const void *x, int64_t n) {
    const uint8_t *p = x;
    for (int64_t b = 0; b < n / SX_QK; b++, p += SX_Q4_0_BYTES, y += SX_QK) {
        uint8_t q[32];
        _mm256_storeu_si256((__m256i *)q, _mm256_sub_epi8(nibbles32(p + 2), _mm256_set1_epi8(8)));
        i8x32_to_f32(y, q, _mm256_set1_ps(f16at(p)));
    }
}

void sx_q4_k_to_f32_avx2(float *y, const void *x, int64_t n) {
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
                __m256 dl = _mm256_set1_ps(d * (float)sc), ml = _mm256_set1_ps(dmin * (float)m);
                uint8_t q[32];
                _mm256_storeu_si256((__m256i *)q, nib[h]);
                for (int k = 0; k < 4; k++) {
                    __m256 v = _mm256_cvtepi32_ps(
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8 * k))));
                    _mm256_storeu_ps(y + 64 * c + 32 * h + 8 * k,
                                     _mm256_sub_ps(_mm256_mul_ps(dl, v), ml));
                }
            }
        }
    }
}

/* ---- activation quantizers (bit-identical to quant.c) ---- */
void sx_q8_0_from_f32_avx2(void *yv, const float *x, int64_t n) {
    uint8_t *p = yv;
    const __m256 nz = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / SX_QK; b++, p += SX_Q8_0_BYTES, x += SX_QK) {
        __m256 v[4], mx = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            mx = _mm256_max_ps(mx, _mm256_andnot_ps(nz, v[k]));
        }
        float d = hmax_f32(mx) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        if (isinf(id)) id = 0.0f;
        uint16_t h = sx_f32_to_f16(d);
        memcpy(p, &h, 2);
        __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvttps_epi32(round_away(_mm256_mul_ps(v[k], vid)));
        _mm256_storeu_si256((__m256i *)(p + 2), pack32(q[0], q[1], q[2], q[3]));
    }
}

void sx_q8_k_from_f32_avx2(void *yv, const float *x, int64_t n) {
    uint8_t *p = yv;
    const __m256 nz = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / SX_QKK; b++, p += SX_Q8_K_BYTES, x += SX_QKK) {
        __m256 mx = _mm256_setzero_ps();
        for (int k = 0; k < 32; k++) mx = _mm256_max_ps(mx, _mm256_andnot_ps(nz, _mm256_loadu_ps(x + 8 * k)));
        float amax = hmax_f32(mx), vmax = 0.0f, d = 0.0f;
        int16_t bs[16];
        if (amax == 0.0f || !isfinite(amax)) {
            memset(p + 4, 0, SX_QKK);
            memset(bs, 0, sizeof bs);
        } else {
            __m256 am = _mm256_set1_ps(amax);
            for (int k = 0; k < 32; k++) { /* the first value of largest magnitude */
                int msk = _mm256_movemask_ps(
                    _mm256_cmp_ps(_mm256_andnot_ps(nz, _mm256_loadu_ps(x + 8 * k)), am, _CMP_EQ_OQ));
                if (msk) {
                    vmax = x[8 * k + __builtin_ctz((unsigned)msk)];
                    break;
                }
            }
            float iscale = -127.0f / vmax;
            __m256 vs = _mm256_set1_ps(iscale);
            const __m256i hi = _mm256_set1_epi32(127), lo = _mm256_set1_epi32(-127);
            for (int g = 0; g < 8; g++) { /* 32 values */
                __m256i q[4];
                for (int k = 0; k < 4; k++) {
                    __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + 32 * g + 8 * k)));
                    q[k] = _mm256_max_epi32(_mm256_min_epi32(v, hi), lo);
                }
                bs[2 * g] = (int16_t)hsum_i32(_mm256_add_epi32(q[0], q[1]));
                bs[2 * g + 1] = (int16_t)hsum_i32(_mm256_add_epi32(q[2], q[3]));
                _mm256_storeu_si256((__m256i *)(p + 4 + 32 * g), pack32(q[0], q[1], q[2], q[3]));
            }
            d = 1.0f / iscale;
        }
        memcpy(p, &d, 4);
        memcpy(p + 4 + SX_QKK, bs, sizeof bs);
    }
}

/* ---- GEMV ---- */
/* sum of the 32 products w . a (w signed, |w| <= 128) as 8 int32 lanes */
static inline __m256i dot32(__m256i w, __m256i a) {
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* Q8_0 / Q4_0 weights against Q8_0 activations; Q4 is a constant. One pass
 * over each weight row serves the m activation rows. */
static inline void gemv_q32(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                            size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias,
                            int Q4) {
    const int64_t nb = K / SX_QK;
    const size_t wb = Q4 ? SX_Q4_0_BYTES : SX_Q8_0_BYTES;
    for (int64_t n = n0; n < n1; n++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)n * ldw;
        __m256 acc[SX_GEMV_MAX_M];
        for (int r = 0; r < m; r++) acc[r] = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *wp = wr + (size_t)b * wb;
            __m256i wv = Q4 ? _mm256_sub_epi8(nibbles32(wp + 2), _mm256_set1_epi8(8))
                            : _mm256_loadu_si256((const __m256i *)(wp + 2));
            float dw = f16at(wp);
            for (int r = 0; r < m; r++) {
                const uint8_t *ap = (const uint8_t *)x + (size_t)r * ldx + (size_t)b * SX_Q8_0_BYTES;
                __m256i s = dot32(wv, _mm256_loadu_si256((const __m256i *)(ap + 2)));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dw * f16at(ap)), acc[r]);
            }
        }
        for (int r = 0; r < m; r++) y[r * ldy + n] = hsum_f32(acc[r]) + (bias ? bias[n] : 0.0f);
    }
}

void sx_gemv_q8_0_avx2(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                       size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias) {
    gemv_q32(y, ldy, x, ldx, m, w, ldw, n0, n1, K, bias, 0);
}

void sx_gemv_q4_0_avx2(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                       size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias) {
    gemv_q32(y, ldy, x, ldx, m, w, ldw, n0, n1, K, bias, 1);
}

/* Q4_K x Q8_K: per super-block, the codes of each 32-value sub-block
 * multiply the activations (maddubs: codes <= 15 are unsigned) and then the
 * sub-block's scale (madd); the mins meet the bsums in one more madd. The
 * integer sums are those of quant.c, and so is the float arithmetic after
 * them: bit-identical. */
void sx_gemv_q4_k_avx2(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                       size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias) {
    const int64_t nb = K / SX_QKK;
    const __m256i lo4 = _mm256_set1_epi8(15);
    __m256i pick[8]; /* byte shuffles broadcasting int16 lane j */
    for (int j = 0; j < 8; j++) pick[j] = _mm256_set1_epi16((short)(2 * j | (2 * j + 1) << 8));
    for (int64_t n = n0; n < n1; n++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)n * ldw;
        float s[SX_GEMV_MAX_M] = {0};
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *wp = wr + (size_t)b * SX_Q4_K_BYTES;
            uint64_t scb, mb;
            sx_q4_k_scales_mins(wp + 4, &scb, &mb);
            __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)scb)));
            __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mb));
            __m256i mexp = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
            __m256i q[8], scl[8];
            for (int c = 0; c < 4; c++) {
                __m256i qv = _mm256_loadu_si256((const __m256i *)(wp + 16 + 32 * c));
                q[2 * c] = _mm256_and_si256(qv, lo4);
                q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(qv, 4), lo4);
            }
            for (int j = 0; j < 8; j++) scl[j] = _mm256_shuffle_epi8(sc16, pick[j]);
            float dw = f16at(wp), dmin = f16at(wp + 2);
            for (int r = 0; r < m; r++) {
                const uint8_t *ap = (const uint8_t *)x + (size_t)r * ldx + (size_t)b * SX_Q8_K_BYTES;
                __m256i acc = _mm256_setzero_si256();
                for (int j = 0; j < 8; j++) {
                    __m256i p = _mm256_maddubs_epi16(q[j], _mm256_loadu_si256((const __m256i *)(ap + 4 + 32 * j)));
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, scl[j]));
                }
                __m256i bs = _mm256_loadu_si256((const __m256i *)(ap + 4 + SX_QKK));
                int32_t msum = hsum_i32(_mm256_madd_epi16(bs, mexp));
                float da;
                memcpy(&da, ap, 4);
                s[r] += (da * dw) * (float)hsum_i32(acc);
                s[r] -= (da * dmin) * (float)msum;
            }
        }
        for (int r = 0; r < m; r++) y[r * ldy + n] = s[r] + (bias ? bias[n] : 0.0f);
    }
}
