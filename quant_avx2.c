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
#include "ops_impl.h"
#include "quant_x86.h"

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
            __m256i nib[2];
            q4k_chunk(p, c, nib);
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
        for (int k = 0; k < 32; k++)
            mx = _mm256_max_ps(mx, _mm256_andnot_ps(nz, _mm256_loadu_ps(x + 8 * k)));
        float amax = hmax_f32(mx), vmax = 0.0f, d = 0.0f;
        int16_t bs[16];
        if (amax == 0.0f || !isfinite(amax)) {
            memset(p + 4, 0, SX_QKK);
            memset(bs, 0, sizeof bs);
        } else {
            __m256 am = _mm256_set1_ps(amax);
            for (int k = 0; k < 32; k++) { /* the first value of largest magnitude */
                int msk = _mm256_movemask_ps(_mm256_cmp_ps(
                    _mm256_andnot_ps(nz, _mm256_loadu_ps(x + 8 * k)), am, _CMP_EQ_OQ));
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
                    __m256i v =
                        _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + 32 * g + 8 * k)));
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

/* ---- GEMV ----
 * As in quant_avx512.c: each activation row is rearranged once per call into
 * per-thread scratch (float block scales; for Q4_0 the codes of two blocks
 * in the nibbles' order and, per 4-byte lane and per block, -8 * the sum of
 * its codes), and each weight row serves all the activation rows of the call
 * (q_pairs: the matrix is one stream). */
/* Q8_0 activation row -> da[nbp] (zero-padded), codes [nb*32]; for Q4_0
 * weights also pairs of blocks p: lo[p] = values 0..15 of blocks 2p, 2p+1,
 * hi[p] = values 16..31, corrections [8] (-8 * (lo + hi lane sums)), and the
 * corrections of whole blocks cb[b] (-8 * the block's sum) */
static void prep_q8_0(const uint8_t *x, int64_t nb, int64_t nbp, float *da, int8_t *a, int8_t *lo,
                      int8_t *hi, int32_t *c, int32_t *cb, int Q4) {
    for (int64_t b = 0; b < nbp; b++) da[b] = b < nb ? f16at(x + b * SX_Q8_0_BYTES) : 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *q = x + b * SX_Q8_0_BYTES + 2;
        if (!Q4) {
            memcpy(a + b * 32, q, 32);
            continue;
        }
        if (b / 2 * 2 + 1 >= nb) break; /* an unpaired last block stays in x */
        int64_t p = b / 2, i = b & 1;
        memcpy(lo + p * 32 + 16 * i, q, 16);
        memcpy(hi + p * 32 + 16 * i, q + 16, 16);
        if (i) {
            __m256i l = _mm256_loadu_si256((const __m256i *)(lo + p * 32));
            __m256i h = _mm256_loadu_si256((const __m256i *)(hi + p * 32));
            __m256i sum = _mm256_add_epi32(lane_sums(l), lane_sums(h));
            _mm256_storeu_si256((__m256i *)(c + p * 8),
                                _mm256_mullo_epi32(sum, _mm256_set1_epi32(-8)));
            for (int k = 0; k < 2; k++)
                cb[2 * p + k] = c[p * 8 + 4 * k] + c[p * 8 + 4 * k + 1] + c[p * 8 + 4 * k + 2] +
                                c[p * 8 + 4 * k + 3];
        }
    }
}

/* block scales of weight row wr times the activations', into s[b] for the
 * blocks past the last 8 (Q4_0; q32_pass forms the others' products) */
static inline void row_scales(float *s, uint16_t *h, const uint8_t *wr, size_t wb, int64_t nb,
                              int64_t nbp, const float *da) {
    for (int64_t b = nb / 8 * 8; b < nb; b++) memcpy(&h[b], wr + (size_t)b * wb, 2);
    for (int64_t b = nb; b < nbp; b++) h[b] = 0;
    for (int64_t b = nb / 8 * 8; b < nbp; b += 8)
        _mm256_storeu_ps(s + b,
                         _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + b))),
                                       _mm256_loadu_ps(da + b)));
}

/* The 8 lane sums (4 per block, no offset) of the Q4_0 blocks at wp and
 * wp + 18 (their codes) with the activation halves lo, hi */
static inline __m256i q4_0_pair_lanes(const uint8_t *wp, const int8_t *lo, const int8_t *hi) {
    __m256i v =
        _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)wp)),
                                _mm_loadu_si128((const __m128i *)(wp + SX_Q4_0_BYTES)), 1);
    __m256i l = _mm256_and_si256(v, _mm256_set1_epi8(15));
    __m256i h = _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(15));
    __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(l, _mm256_loadu_si256((const __m256i *)lo)),
                                 _mm256_maddubs_epi16(h, _mm256_loadu_si256((const __m256i *)hi)));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}
/* The f16 scales of the 8 Q4_0 blocks at p as floats: one gather of the
 * first 4 bytes of each block (scale and two codes), the scales kept */
static inline __m256 win8_scales(const uint8_t *p) {
    __m256i g = _mm256_i32gather_epi32((const int *)p,
                                       _mm256_setr_epi32(0, 18, 36, 54, 72, 90, 108, 126), 1);
    g = _mm256_and_si256(g, _mm256_set1_epi32(0xffff));
    g = _mm256_permute4x64_epi64(_mm256_packus_epi32(g, g), 0x08);
    return _mm256_cvtph_ps(_mm256_castsi256_si128(g));
}
/* The integer sums of 8 Q4_0 blocks (4 pairs, lane sums d0..d3), one int32
 * per block in block order: packssdw + pmaddwd by ones twice (exact: a lane
 * is at most 8 * 15 * 127 = 15240, a sum of two 30480) leave element 4L + k
 * = block 2k + L; one permute puts block b at element b. */
static inline __m256i q4_0_win8_sums(__m256i d0, __m256i d1, __m256i d2, __m256i d3) {
    const __m256i one = _mm256_set1_epi16(1);
    __m256i a = _mm256_madd_epi16(_mm256_packs_epi32(d0, d1), one);
    __m256i b = _mm256_madd_epi16(_mm256_packs_epi32(d2, d3), one);
    return _mm256_permutevar8x32_epi32(_mm256_madd_epi16(_mm256_packs_epi32(a, b), one),
                                       _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* NR (weight row, activation row) pairs; NR and Q4 are constants at each call.
 * Both types form each block's scale product (weight scale x activation
 * scale, the same float product) where they multiply the block: copying a
 * row's scales out in a pass of their own was the row's first touch, a stall
 * on memory per line (AMD Zen 4, K = 13824: half the Q8_0 GEMV's time) or, in
 * L2, a quarter of Q4_0's time in a scalar loop. Q4_0 takes 8 blocks per step
 * (their scales by one gather, win8_scales; two blocks per step with the
 * products formed in the pass were slower); the pairs past the last 8 blocks
 * take theirs from sc (row_scales). */
static inline __attribute__((always_inline)) void
q32_pass(const int NR, const int Q4, float *y, int64_t ldy, const void *x, size_t ldx,
         const uint8_t *const *wr, const int *ai, const int64_t *col, int64_t nb, float *const *sc,
         const float *const *da, const int8_t *const *ac, const int8_t *const *al,
         const int8_t *const *ah, const int32_t *const *cc, const int32_t *const *cb,
         const float *bias) {
    const size_t wb = Q4 ? SX_Q4_0_BYTES : SX_Q8_0_BYTES;
    const __m256i idx2 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    __m256 acc[MAXR];
    float tail[MAXR];
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) acc[i] = _mm256_setzero_ps(),
                                                         tail[i] = 0.0f;
    int64_t b = 0;
    if (Q4) {
        /* 8 blocks at a time: one int32 and one FMA per block (q4_0_win8_sums) */
        for (; b + 8 <= nb; b += 8) {
            /* (the pairs share one weight row, q_pairs) */
            _Pragma("GCC unroll 3") for (int l = 0; l < 3; l++)
                prefetch_l2(wr[0] + (size_t)b * wb + 64 * l);
            /* the weight scales formed here (a scalar copy of them before the row was a
             * quarter of the kernel's time); with several pairs once for their one weight
             * row, alone after the pair's dots (gcc then schedules the gather later: 1.09x
             * in L2 on Zen 4; hoisted, as for NR > 1, it ran at the old speed) */
            const __m256 ws = NR > 1 ? win8_scales(wr[0] + (size_t)b * wb) : _mm256_setzero_ps();
            _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
                const uint8_t *wp = wr[i] + (size_t)b * wb + 2;
                int r = ai[i];
                const int8_t *lo = al[r] + b * 16, *hi = ah[r] + b * 16;
                __m256i t = q4_0_win8_sums(q4_0_pair_lanes(wp, lo, hi),
                                           q4_0_pair_lanes(wp + 2 * wb, lo + 32, hi + 32),
                                           q4_0_pair_lanes(wp + 4 * wb, lo + 64, hi + 64),
                                           q4_0_pair_lanes(wp + 6 * wb, lo + 96, hi + 96));
                t = _mm256_add_epi32(t, _mm256_loadu_si256((const __m256i *)(cb[r] + b)));
                acc[i] = _mm256_fmadd_ps(
                    _mm256_cvtepi32_ps(t),
                    _mm256_mul_ps(NR > 1 ? ws : win8_scales(wp - 2), _mm256_loadu_ps(da[r] + b)),
                    acc[i]);
            }
        }
        for (; b + 2 <= nb; b += 2) { /* pairs past the last 8 blocks: 4 lanes per block */
            prefetch_l2(wr[0] + (size_t)b * wb);
            _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
                const uint8_t *wp = wr[i] + (size_t)b * wb + 2;
                int r = ai[i];
                __m256i d = _mm256_add_epi32(q4_0_pair_lanes(wp, al[r] + b * 16, ah[r] + b * 16),
                                             _mm256_loadu_si256((const __m256i *)(cc[r] + b * 4)));
                __m256 s2 =
                    _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadl_pi(
                                                 _mm_setzero_ps(), (const __m64 *)(sc[i] + b))),
                                             idx2);
                acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), s2, acc[i]);
            }
        }
        for (; b < nb; b++) /* an unpaired last block */
            _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
                const int8_t *xa = (const int8_t *)((const uint8_t *)x + (size_t)ai[i] * ldx +
                                                    (size_t)b * SX_Q8_0_BYTES + 2);
                tail[i] += (float)dot_q4_0_1(wr[i] + (size_t)b * wb + 2, xa) * sc[i][b];
            }
    } else {
        for (; b < nb; b++) {
            prefetch_l2(wr[0] + (size_t)b * wb);
            const float ws = f16at(wr[0] + (size_t)b * wb); /* (one weight row: q_pairs) */
            _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
                __m256i d = dot32(_mm256_loadu_si256((const __m256i *)(wr[i] + (size_t)b * wb + 2)),
                                  _mm256_loadu_si256((const __m256i *)(ac[ai[i]] + b * 32)));
                acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(ws * da[ai[i]][b]),
                                         acc[i]);
            }
        }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) y[(int64_t)ai[i] * ldy + col[i]] =
        (hsum_f32(acc[i]) + tail[i]) + (bias ? bias[col[i]] : 0.0f);
}

/* Q8_0 / Q4_0 weights against Q8_0 activations */
static void gemv_q32(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                     size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias, int Q4) {
    const int64_t nb = K / SX_QK, nbp = (nb + 15) / 16 * 16;
    const size_t wb = Q4 ? SX_Q4_0_BYTES : SX_Q8_0_BYTES;
    /* per activation row: da [nbp] | codes or lo+hi [nb*32] | corrections [nb*4] | block
     * corrections [nbp]; then the scale products of MAXR pairs [nbp] and one row's f16
     * scales [nbp] */
    size_t rowb = al64(4 * (size_t)nbp) + al64(32 * (size_t)nb) + al64(16 * (size_t)nb) +
                  al64(4 * (size_t)nbp);
    size_t need = rowb * (size_t)m + MAXR * al64(4 * (size_t)nbp) + al64(2 * (size_t)nbp);
    uint8_t *scr = (uint8_t *)sx_scratch(SX_SCR_QPREP, (need + 3) / 4);
    if (!scr) { /* out of memory: the scalar reference needs no scratch */
        (Q4 ? sx_gemv_q4_0_scalar : sx_gemv_q8_0_scalar)(y, ldy, x, ldx, m, w, ldw, n0, n1, K,
                                                         bias);
        return;
    }
    const float *da[MAXR];
    const int8_t *ac[MAXR], *al[MAXR], *ah[MAXR];
    const int32_t *cc[MAXR], *cb[MAXR];
    for (int r = 0; r < m; r++) {
        uint8_t *p = scr + (size_t)r * rowb;
        float *d = (float *)p;
        int8_t *a = (int8_t *)(p + al64(4 * (size_t)nbp));
        int32_t *c = (int32_t *)(p + al64(4 * (size_t)nbp) + al64(32 * (size_t)nb));
        int32_t *k =
            (int32_t *)(p + al64(4 * (size_t)nbp) + al64(32 * (size_t)nb) + al64(16 * (size_t)nb));
        prep_q8_0((const uint8_t *)x + (size_t)r * ldx, nb, nbp, d, a, a, a + 16 * nb, c, k, Q4);
        da[r] = d, ac[r] = a, al[r] = a, ah[r] = a + 16 * nb, cc[r] = c, cb[r] = k;
    }
    float *sc[MAXR];
    for (int i = 0; i < MAXR; i++)
        sc[i] = (float *)(scr + rowb * (size_t)m + (size_t)i * al64(4 * (size_t)nbp));
    uint16_t *h = (uint16_t *)(scr + rowb * (size_t)m + MAXR * al64(4 * (size_t)nbp));
    for (int64_t n = n0; n < n1; n++) {
        const uint8_t *wr[MAXR];
        int ai[MAXR] = {0};
        int64_t col[MAXR];
        int nr = q_pairs(m, n, w, ldw, wr, ai, col);
        for (int i = 0; i < (Q4 ? nr : 0); i++) { /* Q4_0's scale products (row_scales) */
            if (i == 0) {
                row_scales(sc[i], h, wr[i], wb, nb, nbp, da[ai[i]]);
            } else { /* the same weight row: the scales of activation row i */
                for (int64_t b = nb / 8 * 8; b < nbp; b += 8)
                    _mm256_storeu_ps(
                        sc[i] + b,
                        _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + b))),
                                      _mm256_loadu_ps(da[i] + b)));
            }
        }
#define PASS(NR, Q)                                                                                \
    q32_pass(NR, Q, y, ldy, x, ldx, wr, ai, col, nb, sc, da, ac, al, ah, cc, cb, bias)
        switch (nr * 2 + (Q4 != 0)) {
        case 8: PASS(4, 0); break;
        case 9: PASS(4, 1); break;
        case 6: PASS(3, 0); break;
        case 7: PASS(3, 1); break;
        case 4: PASS(2, 0); break;
        case 5: PASS(2, 1); break;
        case 2: PASS(1, 0); break;
        default: PASS(1, 1); break;
        }
#undef PASS
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
 * integer sums are those of quant.c; their int32 lanes become floats and
 * are multiplied by da * d and da * dmin into two vector accumulators,
 * summed once per pass (a float order of its own, bounded against quant.c
 * in the tests). Weights prefetched as in the AVX-512 kernel. One weight row
 * per pass (q_pairs), its super-blocks' scales unpacked once for the NR pairs. */
static inline __attribute__((always_inline)) void
q4k_pass(const int NR, float *y, int64_t ldy, const void *x, size_t ldx, const uint8_t *const *wr,
         const int *ai, const int64_t *col, int64_t nb, const float *bias) {
    const __m256i lo4 = _mm256_set1_epi8(15);
    __m256 acc[MAXR], accm[MAXR];
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) acc[i] = accm[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        /* the pairs share one weight row (q_pairs): its scales and mins unpacked once */
        const uint8_t *wp = wr[0] + (size_t)b * SX_Q4_K_BYTES;
        prefetch_q4_k(wp);
        uint64_t scb, mb;
        sx_q4_k_scales_mins(wp + 4, &scb, &mb);
        const __m256i sc16 =
            _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)scb)));
        const __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mb));
        const __m256i mexp =
            _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
        int32_t f; /* (d, dmin) */
        memcpy(&f, wp, 4);
        const __m128 dmw = _mm_cvtph_ps(_mm_cvtsi32_si128(f));
        _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
            const uint8_t *ap =
                (const uint8_t *)x + (size_t)ai[i] * ldx + (size_t)b * SX_Q8_K_BYTES;
            __m256i e0 = _mm256_setzero_si256(), e1 = _mm256_setzero_si256();
            for (int c = 0; c < 4; c++) {
                __m256i qv = _mm256_loadu_si256((const __m256i *)(wp + 16 + 32 * c));
                __m256i ql = _mm256_and_si256(qv, lo4),
                        qh = _mm256_and_si256(_mm256_srli_epi16(qv, 4), lo4);
                __m256i sl =
                    _mm256_shuffle_epi8(sc16, _mm256_set1_epi16((short)(4 * c | (4 * c + 1) << 8)));
                __m256i sh = _mm256_shuffle_epi8(
                    sc16, _mm256_set1_epi16((short)((4 * c + 2) | (4 * c + 3) << 8)));
                e0 = _mm256_add_epi32(
                    e0, _mm256_madd_epi16(
                            _mm256_maddubs_epi16(
                                ql, _mm256_loadu_si256((const __m256i *)(ap + 4 + 64 * c))),
                            sl));
                e1 = _mm256_add_epi32(
                    e1, _mm256_madd_epi16(
                            _mm256_maddubs_epi16(
                                qh, _mm256_loadu_si256((const __m256i *)(ap + 36 + 64 * c))),
                            sh));
            }
            __m256i bs = _mm256_loadu_si256((const __m256i *)(ap + 4 + SX_QKK));
            __m128 dm = _mm_mul_ps(dmw, _mm_broadcast_ss((const float *)ap));
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(e0, e1)),
                                     _mm256_broadcastss_ps(dm), acc[i]);
            accm[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mexp)),
                                      _mm256_broadcastss_ps(_mm_shuffle_ps(dm, dm, 0x55)), accm[i]);
        }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) y[(int64_t)ai[i] * ldy + col[i]] =
        (hsum_f32(acc[i]) - hsum_f32(accm[i])) + (bias ? bias[col[i]] : 0.0f);
}

void sx_gemv_q4_k_avx2(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                       size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias) {
    const int64_t nb = K / SX_QKK;
    for (int64_t n = n0; n < n1; n++) {
        const uint8_t *wr[MAXR];
        int ai[MAXR];
        int64_t col[MAXR];
        int nr = q_pairs(m, n, w, ldw, wr, ai, col);
        switch (nr) {
        case 4: q4k_pass(4, y, ldy, x, ldx, wr, ai, col, nb, bias); break;
        case 3: q4k_pass(3, y, ldy, x, ldx, wr, ai, col, nb, bias); break;
        case 2: q4k_pass(2, y, ldy, x, ldx, wr, ai, col, nb, bias); break;
        default: q4k_pass(1, y, ldy, x, ldx, wr, ai, col, nb, bias); break;
        }
    }
}
