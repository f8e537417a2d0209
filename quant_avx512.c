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
#include "ops_avx512.h"
#include "ops_impl.h"
#include "quant_x86.h"
#include "simd.h"

#define VNNI __attribute__((target("avx512vnni")))
#define BF16I __attribute__((target("avx512bf16")))

/* two ymm -> one zmm */
static inline __m512i cat256(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* ---- dequantization (bit-identical to quant.c) ----
 * the 32 values of block j (Q8_0, Q4_0) or sub-block j (Q4_K) of a row, as
 * two zmm (used by to_f32 and pack16) */
static inline __attribute__((always_inline)) void q8_0_vals(const uint8_t *row, int64_t j,
                                                            __m512 *a, __m512 *b) {
    const uint8_t *p = row + j * SX_Q8_0_BYTES;
    __m512 d = _mm512_set1_ps(f16at(p));
    __m128i lo = _mm_loadu_si128((const __m128i *)(p + 2)),
            hi = _mm_loadu_si128((const __m128i *)(p + 18));
    *a = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), d);
    *b = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), d);
}
static inline __attribute__((always_inline)) void q4_0_vals(const uint8_t *row, int64_t j,
                                                            __m512 *a, __m512 *b) {
    const uint8_t *p = row + j * SX_Q4_0_BYTES;
    __m512 d = _mm512_set1_ps(f16at(p));
    __m128i q = _mm_loadu_si128((const __m128i *)(p + 2)), lo4 = _mm_set1_epi8(15);
    __m512i e = _mm512_set1_epi32(8);
    __m512i lo = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_and_si128(q, lo4)), e);
    __m512i hi =
        _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(q, 4), lo4)), e);
    *a = _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d);
    *b = _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d);
}
static inline __attribute__((always_inline)) void q4_k_vals(const uint8_t *row, int64_t j,
                                                            __m512 *a, __m512 *b) {
    const uint8_t *p = row + (j / 8) * SX_Q4_K_BYTES;
    int sb = (int)(j % 8), sc, m;
    sx_q4_k_scale_min(p + 4, sb, &sc, &m);
    __m512 dl = _mm512_set1_ps(f16at(p) * (float)sc), ml = _mm512_set1_ps(f16at(p + 2) * (float)m);
    __m128i lo4 = _mm_set1_epi8(15);
    const uint8_t *q = p + 16 + 32 * (sb / 2);
    __m128i q0 = _mm_loadu_si128((const __m128i *)q),
            q1 = _mm_loadu_si128((const __m128i *)(q + 16));
    if (sb & 1) q0 = _mm_srli_epi16(q0, 4), q1 = _mm_srli_epi16(q1, 4);
    __m512 c0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(q0, lo4)));
    __m512 c1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(q1, lo4)));
    *a = _mm512_sub_ps(_mm512_mul_ps(dl, c0), ml);
    *b = _mm512_sub_ps(_mm512_mul_ps(dl, c1), ml);
}

/* n values (a multiple of the block) as floats, 32 at a time */
#define TO_F32(name, VALS)                                                                         \
    void name(float *y, const void *x, int64_t n) {                                                \
        for (int64_t j = 0; j < n / 32; j++, y += 32) {                                            \
            __m512 a, b;                                                                           \
            VALS((const uint8_t *)x, j, &a, &b);                                                   \
            _mm512_storeu_ps(y, a);                                                                \
            _mm512_storeu_ps(y + 16, b);                                                           \
        }                                                                                          \
    }
TO_F32(sx_q8_0_to_f32_avx512, q8_0_vals)
TO_F32(sx_q4_0_to_f32_avx512, q4_0_vals)
TO_F32(sx_q4_k_to_f32_avx512, q4_k_vals)

/* ---- the BF16 GEMM's B panels straight from the codes (wtype.h: pack16) ----
 * Per block of 32 values and each of the 16 rows: dequantize into two zmm
 * (the to_f32 kernels' helpers above), round to bfloat16, pair the
 * halves into 16 words of k pairs; then the 16 rows' words are transposed
 * into the panel. Bit-identical to to_f32 + sx_f32_to_bf16 + the transpose,
 * without the float row and the bfloat16 rows in between. The rounding is
 * vcvtne2ps2bf16 when the BF16 kernel in use has BF16 instructions: it
 * treats denormal inputs as zero, which dequantized values never are (each
 * is zero or an integer multiple of 2^-24); otherwise integer steps, as
 * sx_bf16_from_f32_avx512 (about 40% more packing time). */
static inline __m512i bf16_round16(__m512 x) { /* in the low half of each lane */
    __m512i u = _mm512_castps_si512(x), hi = _mm512_srli_epi32(u, 16);
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                             _mm512_and_si512(hi, _mm512_set1_epi32(1)))),
        16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
}
/* values 0..15 (a) and 16..31 (b) -> word j = bf16(v[2j]) | bf16(v[2j+1]) << 16 */
static inline __m512i bf16_pairs_int(__m512 a, __m512 b) {
    const __m512i even =
        _mm512_set_epi16(62, 60, 58, 56, 54, 52, 50, 48, 46, 44, 42, 40, 38, 36, 34, 32, 30, 28, 26,
                         24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    return _mm512_permutex2var_epi16(bf16_round16(a), even, bf16_round16(b));
}
BF16I static inline __m512i bf16_pairs_bf16(__m512 a, __m512 b) {
    return (__m512i)_mm512_cvtne2ps_pbh(b, a);
}

/* the 16 rows' next 16 words r[n] -> the panel at d: d[16 w + n] = word w of row n */
static inline __attribute__((always_inline)) void panel_store16(uint32_t *d, __m512i r[16]) {
    transpose16_u32(r);
#pragma GCC unroll 16
    for (int w = 0; w < 16; w++) _mm512_storeu_si512(d + 16 * w, r[w]);
}
/* d[16 j + n] = word j of row n, j < K / 2: ROW(row, block j) gives the 16
 * words of block j of a row */
#define PACK16(fname, ROW, ATTR)                                                                   \
    ATTR static void fname(uint32_t *d, const void *const *rows, int64_t K) {                      \
        for (int64_t j = 0; j < K / 32; j++, d += 256) {                                           \
            __m512i r[16];                                                                         \
            _Pragma("GCC unroll 16") for (int n = 0; n < 16; n++) r[n] =                           \
                ROW((const uint8_t *)rows[n], j);                                                  \
            panel_store16(d, r);                                                                   \
        }                                                                                          \
    }
/* the exported kernel: the rounding the BF16 kernel in use needs */
#define PACK16_PICK(name, f_int, f_bf16)                                                           \
    void name(uint32_t *d, const void *const *rows, int64_t K) {                                   \
        (sx_bf16_kernels_cur()->native && sx_simd_has_avx512bf16() ? f_bf16 : f_int)(d, rows, K);  \
    }
/* Q8_0: dequantized per value, rounded, paired */
#define Q8_0_ROW(name, PAIRS, ATTR)                                                                \
    ATTR static inline __attribute__((always_inline)) __m512i name(const uint8_t *row,             \
                                                                   int64_t j) {                    \
        __m512 a, b;                                                                               \
        q8_0_vals(row, j, &a, &b);                                                                 \
        return PAIRS(a, b);                                                                        \
    }
Q8_0_ROW(q8_0_row_int, bf16_pairs_int, )
Q8_0_ROW(q8_0_row_bf16, bf16_pairs_bf16, BF16I)
PACK16(q8_0_pack_int, q8_0_row_int, )
PACK16(q8_0_pack_bf16, q8_0_row_bf16, BF16I)
PACK16_PICK(sx_q8_0_pack16_avx512, q8_0_pack_int, q8_0_pack_bf16)

/* The 4-bit types by table: a block's (Q4_0) or sub-block's (Q4_K) 32
 * values take at most 16 distinct values, one per code, so each row's 16
 * values are dequantized as floats (the same multiply, and subtract, as
 * q4_0_vals / q4_k_vals), rounded to bfloat16 and its 32 codes look them up
 * with one word permute (vpermw reads the low 5 bits of each index word).
 * The same bits as the per-value path above; one thread, [5120 x 13824]:
 * see the README ("Prefill: the 4-bit types by table"). */
static inline __m256i bf16_table_int(__m512 t) { /* 16 floats -> 16 bfloat16 */
    return _mm512_cvtepi32_epi16(bf16_round16(t));
}
BF16I static inline __m256i bf16_table_bf16(__m512 t) {
    return (__m256i)_mm512_cvtneps_pbh(t);
}
/* Q4_0 block j of row p: value i < 16 is code (byte i & 15), i >= 16 code
 * (byte i - 16 >> 4); table[c] = (c - 8) * d */
#define Q4_0_LUT(name, TABLE, ATTR)                                                                \
    ATTR static inline __attribute__((always_inline)) __m512i name(const uint8_t *row,             \
                                                                   int64_t j) {                    \
        const uint8_t *p = row + j * SX_Q4_0_BYTES;                                                \
        const __m512 c8 = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);  \
        __m512i tab = _mm512_castsi256_si512(TABLE(_mm512_mul_ps(c8, _mm512_set1_ps(f16at(p)))));  \
        __m128i q = _mm_loadu_si128((const __m128i *)(p + 2));                                     \
        __m512i c = _mm512_cvtepu8_epi16(                                                          \
            _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1));          \
        return _mm512_permutexvar_epi16(_mm512_and_si512(c, _mm512_set1_epi16(15)), tab);          \
    }
Q4_0_LUT(q4_0_row_int, bf16_table_int, )
Q4_0_LUT(q4_0_row_bf16, bf16_table_bf16, BF16I)
PACK16(q4_0_pack_int, q4_0_row_int, )
PACK16(q4_0_pack_bf16, q4_0_row_bf16, BF16I)
PACK16_PICK(sx_q4_0_pack16_avx512, q4_0_pack_int, q4_0_pack_bf16)

/* Q4_K: per row and super-block the 8 sub-blocks' d * scale and dmin * min
 * (as q4_k_vals: f16 times the integer as float); sub-block s of the row
 * then has table[c] = dl[s] * c - ml[s], its codes the low (s even) or high
 * (s odd) nibbles of 32 bytes */
static inline __attribute__((always_inline)) void q4_k_factors(const uint8_t *p, float *dl,
                                                               float *ml) {
    uint64_t scb, mb;
    sx_q4_k_scales_mins(p + 4, &scb, &mb);
    __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)scb)));
    __m256 m = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mb)));
    _mm256_storeu_ps(dl, _mm256_mul_ps(_mm256_set1_ps(f16at(p)), sc));
    _mm256_storeu_ps(ml, _mm256_mul_ps(_mm256_set1_ps(f16at(p + 2)), m));
}
#define PACK16_Q4_K(fname, TABLE, ATTR)                                                            \
    ATTR static void fname(uint32_t *d, const void *const *rows, int64_t K) {                      \
        const __m512 c16 = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);   \
        float dl[16][8], ml[16][8];                                                                \
        for (int64_t j = 0; j < K / 32; j++, d += 256) {                                           \
            int64_t off = (j / 8) * SX_Q4_K_BYTES;                                                 \
            int sb = (int)(j % 8);                                                                 \
            if (sb == 0)                                                                           \
                for (int n = 0; n < 16; n++)                                                       \
                    q4_k_factors((const uint8_t *)rows[n] + off, dl[n], ml[n]);                    \
            __m512i r[16];                                                                         \
            _Pragma("GCC unroll 16") for (int n = 0; n < 16; n++) {                                \
                const uint8_t *q = (const uint8_t *)rows[n] + off + 16 + 32 * (sb / 2);            \
                __m512 t = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dl[n][sb]), c16),            \
                                         _mm512_set1_ps(ml[n][sb]));                               \
                __m512i c = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)q));          \
                c = sb & 1 ? _mm512_srli_epi16(c, 4) : _mm512_and_si512(c, _mm512_set1_epi16(15)); \
                r[n] = _mm512_permutexvar_epi16(c, _mm512_castsi256_si512(TABLE(t)));              \
            }                                                                                      \
            panel_store16(d, r);                                                                   \
        }                                                                                          \
    }
PACK16_Q4_K(q4_k_pack_int, bf16_table_int, )
PACK16_Q4_K(q4_k_pack_bf16, bf16_table_bf16, BF16I)
PACK16_PICK(sx_q4_k_pack16_avx512, q4_k_pack_int, q4_k_pack_bf16)

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
        for (int k = 0; k < 16; k++)
            mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)));
        float amax = _mm512_reduce_max_ps(mx), vmax = 0.0f, d = 0.0f;
        int16_t bs[16];
        if (amax == 0.0f || !isfinite(amax)) {
            memset(p + 4, 0, SX_QKK);
            memset(bs, 0, sizeof bs);
        } else {
            __m512 am = _mm512_set1_ps(amax);
            for (int k = 0; k < 16; k++) { /* the first value of largest magnitude */
                __mmask16 e =
                    _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)), am, _CMP_EQ_OQ);
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

/* ---- GEMV ----
 * Per call, each activation row is rearranged once into per-thread scratch
 * (cheap next to the weight rows it meets): block scales as floats, codes
 * in the order the kernel reads them and, for Q4_0, minus each block's sum
 * of codes. u8 x s8 needs an unsigned operand, so an offset is undone by
 * sums of the activation codes (corr_*):
 *   Q8_0 + VNNI: dpbusd(-128*sum(a), w ^ 0x80, a) = sum(w*a) per lane, the
 *                lane's 4 codes summed where they are used (w+128 >= 0);
 *   Q4_0, full windows of 16 blocks: dpbusd(0, q, a) per lane (q in 0..15),
 *                the window's 64 lanes summed to one int32 per block
 *                (q4_0_win_sums: packssdw + pmaddwd, exact), plus the
 *                block's -8*sum(a): sum((q-8)*a), then one float FMA per
 *                block (one lane each, "window order"; 1.08x the per-lane
 *                form below on Zen 4 with VNNI, 1.3x without, weights in L2);
 *   Q4_0, the last partial window: dpbusd(-2*sum(a), q, a) per lane, the 4
 *                lanes of a block starting from a quarter of the block's
 *                -8*sum(a), an exact integer, adding up to sum((q-8)*a);
 *   Q8_0 without VNNI: maddubs(|w|, sign(a, w)), as AVX2 (|w| <= 128).
 * Block scales: 16 weight scales (f16, one per 34 or 18 bytes) are picked
 * out of the weight vectors by word permutes (win_scales), converted and
 * multiplied by the activations' 16 scales at once; each block's product
 * then enters a float FMA per lane (per block in Q4_0's full windows). Each
 * weight row serves all the m activation rows of the call, one weight row
 * after the other (the matrix is read as one sequential stream). */
/* minus the sum of each block's codes -> cs[nbp] (zero-padded; |sum| <= 32 * 128) */
static void block_sums(const uint8_t *x, int64_t nb, int64_t nbp, int16_t *cs) {
    for (int64_t b = 0; b < nbp; b++)
        cs[b] = b < nb ? (int16_t)-hsum_i32(lane_sums(
                             _mm256_loadu_si256((const __m256i *)(x + b * SX_Q8_0_BYTES + 2))))
                       : 0;
}
/* Q4_0: the corrections of the 16 blocks from b0 (cs * 2); Q8_0: none */
static inline __m512i win_corr(const int16_t *cs, int64_t b0, int Q4) {
    if (!Q4) return _mm512_setzero_si512();
    return _mm512_slli_epi32(_mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(cs + b0))),
                             1);
}
/* Q8_0 activation row (nb blocks) -> da[nbp] (zero-padded to 16), codes
 * [nb*32] */
static void prep_q8_0(const uint8_t *x, int64_t nb, int64_t nbp, float *da, int8_t *a) {
    for (int64_t b = 0; b < nbp; b++) da[b] = b < nb ? f16at(x + b * SX_Q8_0_BYTES) : 0.0f;
    for (int64_t b = 0; b < nb; b++)
        _mm256_storeu_si256((__m256i *)(a + b * 32),
                            _mm256_loadu_si256((const __m256i *)(x + b * SX_Q8_0_BYTES + 2)));
}

/* ... for Q4_0 weights: groups of 4 blocks g: lo[g] = values 0..15 of the 4
 * blocks, hi[g] = values 16..31; blocks past the last full group stay in x */
static void prep_q4_0(const uint8_t *x, int64_t nb, int64_t nbp, float *da, int8_t *lo,
                      int8_t *hi) {
    for (int64_t b = 0; b < nbp; b++) da[b] = b < nb ? f16at(x + b * SX_Q8_0_BYTES) : 0.0f;
    for (int64_t g = 0; g < nb / 4; g++)
        for (int i = 0; i < 4; i++) {
            const uint8_t *q = x + (4 * g + i) * SX_Q8_0_BYTES + 2;
            __m128i l = _mm_loadu_si128((const __m128i *)q),
                    h = _mm_loadu_si128((const __m128i *)(q + 16));
            _mm_storeu_si128((__m128i *)(lo + g * 64 + 16 * i), l);
            _mm_storeu_si128((__m128i *)(hi + g * 64 + 16 * i), h);
        }
}

/* w . a for two Q8_0 blocks (lanes 0-7: first, 8-15: second) */
static inline __m512i dot64_plain(__m512i w, __m512i a, __m512i c) {
    (void)c;
    __m512i aw = _mm512_abs_epi8(w);
    __m512i sa = _mm512_mask_sub_epi8(a, _mm512_movepi8_mask(w), _mm512_setzero_si512(), a);
    return _mm512_madd_epi16(_mm512_maddubs_epi16(aw, sa), _mm512_set1_epi16(1));
}
VNNI static inline __m512i dot64_vnni(__m512i w, __m512i a, __m512i c) {
    return _mm512_dpbusd_epi32(c, _mm512_xor_si512(w, _mm512_set1_epi8((char)0x80)), a);
}

/* (q-8) . a for four Q4_0 blocks (4 lanes each) from the nibbles v */
static inline __m512i dot4x_plain(__m512i v, const int8_t *lo, const int8_t *hi, __m512i c) {
    __m512i l = _mm512_and_si512(v, _mm512_set1_epi8(15));
    __m512i h = _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(15));
    __m512i p = _mm512_add_epi16(_mm512_maddubs_epi16(l, _mm512_loadu_si512(lo)),
                                 _mm512_maddubs_epi16(h, _mm512_loadu_si512(hi)));
    return _mm512_add_epi32(_mm512_madd_epi16(p, _mm512_set1_epi16(1)), c);
}
VNNI static inline __m512i dot4x_vnni(__m512i v, const int8_t *lo, const int8_t *hi, __m512i c) {
    __m512i l = _mm512_and_si512(v, _mm512_set1_epi8(15));
    __m512i h = _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(15));
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c, l, _mm512_loadu_si512(lo)), h,
                               _mm512_loadu_si512(hi));
}

/* The lane corrections of the dots above: Q4_0: the window's 16 block
 * corrections cw (win_corr) moved to the lanes of their blocks (idx);
 * Q8_0 with VNNI: -128 * the sum of the lane's 4 codes of a, from a itself
 * (the block corrections, tried too, made the prefill tiles 6-9% slower:
 * four more registers held); dot64_plain needs none. */
static inline __m512i corr_plain(int Q4, __m512i idx, __m512i cw, __m512i a) {
    (void)a;
    return Q4 ? _mm512_permutexvar_epi32(idx, cw) : _mm512_setzero_si512();
}
VNNI static inline __m512i corr_vnni(int Q4, __m512i idx, __m512i cw, __m512i a) {
    if (Q4) return _mm512_permutexvar_epi32(idx, cw);
    return _mm512_sub_epi32(
        _mm512_setzero_si512(),
        _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80), a));
}

/* The products of the block scales of weight row wr (nb blocks, stride wb)
 * with the activation scales da, into s[b] for b in [from, nbp) (from a
 * multiple of 16; the kernels take the full windows of 16 blocks before it
 * from the weights directly, win_scales): the f16 scales are first copied
 * out (scalar), then converted 16 at a time, so that no load waits for the
 * small stores just before it. */
static inline void row_scales(float *s, uint16_t *h, const uint8_t *wr, size_t wb, int64_t from,
                              int64_t nb, int64_t nbp, const float *da) {
    for (int64_t b = from; b < nb; b++) memcpy(&h[b], wr + (size_t)b * wb, 2);
    for (int64_t b = nb; b < nbp; b++) h[b] = 0;
    for (int64_t b = from; b < nbp; b += 16)
        _mm512_storeu_ps(
            s + b, _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + b))),
                                 _mm512_loadu_ps(da + b)));
}

/* A full window of 16 weight blocks at p (Q4_0: 288 bytes, Q8_0: 544) read
 * as whole vectors; the f16 words of the blocks are picked out by word
 * permutes (vpermt2w) instead of one scalar load per block:
 *   win_scales: the 16 block scales as floats (Q4_0: scale b is word 9b of
 *     the window, Q8_0: word 17b);
 *   Q4_0 codes: the 64 code bytes of the 4 blocks of group k in value order
 *     (word 9b+1+j of the window is byte pair j of block b's codes), from
 *     the vectors z[k], z[k+1] at bytes 64k and 64k+64 (Q4_0_CODES_IX). */
static inline __m512 win_scales(const uint8_t *p, int Q4) {
    __m512i s;
    if (Q4) { /* blocks 0-7 from bytes [0, 128), blocks 8-15 from [144, 272) */
        const __m512i ix = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 63, 54,
                                            45, 36, 27, 18, 9, 0, 63, 54, 45, 36, 27, 18, 9, 0);
        __m512i a =
            _mm512_permutex2var_epi16(_mm512_loadu_si512(p), ix, _mm512_loadu_si512(p + 64));
        __m512i b =
            _mm512_permutex2var_epi16(_mm512_loadu_si512(p + 144), ix, _mm512_loadu_si512(p + 208));
        s = _mm512_mask_blend_epi16(0xff00, a, b);
    } else { /* blocks 4k..4k+3 from bytes [136k, 136k + 128) */
        const __m512i ix = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 51, 34,
                                            17, 0, 51, 34, 17, 0, 51, 34, 17, 0, 51, 34, 17, 0);
        __m512i q[4];
        /* unrolled, q stays in registers (as a loop, gcc 12 kept q on the stack and
         * the blends reloaded it by masked loads that waited on the stores: 10%
         * of the Q8_0 GEMV in L2) */
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
            q[k] = _mm512_permutex2var_epi16(_mm512_loadu_si512(p + 136 * k), ix,
                                             _mm512_loadu_si512(p + 136 * k + 64));
        s = _mm512_mask_blend_epi16(
            0xf000,
            _mm512_mask_blend_epi16(0x0f00, _mm512_mask_blend_epi16(0x00f0, q[0], q[1]), q[2]),
            q[3]);
    }
    return _mm512_cvtph_ps(_mm512_castsi512_si256(s));
}
/* Full Q4_0 windows go in "window order": lane e of a window's block
 * vectors (scales, scale products, corrections) holds block
 * Q4_0_WIN_ORDER(e) of the window, the order q4_0_win_sums leaves. */
#define Q4_0_WIN_ORDER(e) (4 * ((e) % 4) + (e) / 4)
/* win_scales(p, 1) in window order: word e from a (blocks 0-7 at word 9B)
 * where e % 4 < 2, else from b (blocks 8-15 at word 9(B - 8)) */
static inline __m512 win_scales_q4_0_ord(const uint8_t *p) {
    const __m512i ix = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 63, 27, 63,
                                        27, 54, 18, 54, 18, 45, 9, 45, 9, 36, 0, 36, 0);
    __m512i a = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), ix, _mm512_loadu_si512(p + 64));
    __m512i b =
        _mm512_permutex2var_epi16(_mm512_loadu_si512(p + 144), ix, _mm512_loadu_si512(p + 208));
    return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_mask_blend_epi16(0xcccc, a, b)));
}
/* word 4k + 9b + 1 + j of the pair (z[k], z[k+1]) -> output word 8b + j */
#define Q4_0_CODES_IX                                                                              \
    _mm512_set_epi16(35, 34, 33, 32, 31, 30, 29, 28, 26, 25, 24, 23, 22, 21, 20, 19, 17, 16, 15,   \
                     14, 13, 12, 11, 10, 8, 7, 6, 5, 4, 3, 2, 1)

/* The 4 groups of code vectors of the full Q4_0 window at p (Q4_0_CODES_IX),
 * declared as v0..v3 (named values: gcc 12 kept an array of them on the
 * stack, storing and reloading every vector) */
#define Q4_0_WIN_CODES(p, v0, v1, v2, v3)                                                          \
    const __m512i ix0_ = Q4_0_CODES_IX, four_ = _mm512_set1_epi16(4);                              \
    const __m512i ix1_ = _mm512_add_epi16(ix0_, four_), ix2_ = _mm512_add_epi16(ix1_, four_);      \
    const __m512i z0_ = _mm512_loadu_si512(p), z1_ = _mm512_loadu_si512((p) + 64);                 \
    const __m512i z2_ = _mm512_loadu_si512((p) + 128), z3_ = _mm512_loadu_si512((p) + 192);        \
    const __m512i z4_ = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)((p) + 256)));  \
    const __m512i v0 = _mm512_permutex2var_epi16(z0_, ix0_, z1_);                                  \
    const __m512i v1 = _mm512_permutex2var_epi16(z1_, ix1_, z2_);                                  \
    const __m512i v2 = _mm512_permutex2var_epi16(z2_, ix2_, z3_);                                  \
    const __m512i v3 = _mm512_permutex2var_epi16(z3_, _mm512_add_epi16(ix2_, four_), z4_);

/* The codes of the 4 Q4_0 blocks from wp (at their first code byte), by
 * 128-bit inserts (immediates: no loop, which -O1 would not unroll) */
static inline __attribute__((always_inline)) __m512i q4_0_group_codes(const uint8_t *wp) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)wp));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(wp + SX_Q4_0_BYTES)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(wp + 2 * SX_Q4_0_BYTES)), 2);
    return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(wp + 3 * SX_Q4_0_BYTES)), 3);
}

/* The per-call layout of the Q8_0 / Q4_0 kernels: blocks, blocks padded to
 * 16, groups of 4, bytes per weight block, and the bytes of one prepared
 * activation row: da [nbp] | codes or lo+hi [nb*32]. */
#define Q32_LAYOUT(Q4)                                                                             \
    const int64_t nb = K / SX_QK, nbp = (nb + 15) / 16 * 16, ng = nb / 4;                          \
    const size_t wb = Q4 ? SX_Q4_0_BYTES : SX_Q8_0_BYTES;                                          \
    size_t rowb = al64(4 * (size_t)nbp) + al64(2 * (size_t)nbp) + al64(32 * (size_t)nb);

/* Activation row xr prepared into p (rowb bytes, Q32_LAYOUT); sets the
 * row's pointers */
static inline void prep_row(int Q4, const uint8_t *xr, int64_t nb, int64_t nbp, int64_t ng,
                            uint8_t *p, const float **da, const int16_t **cs, const int8_t **ac,
                            const int8_t **ah) {
    float *d = (float *)p;
    int16_t *c = (int16_t *)(p + al64(4 * (size_t)nbp));
    int8_t *a = (int8_t *)(p + al64(4 * (size_t)nbp) + al64(2 * (size_t)nbp));
    if (Q4)
        prep_q4_0(xr, nb, nbp, d, a, a + 64 * ng);
    else
        prep_q8_0(xr, nb, nbp, d, a);
    if (Q4) { /* full windows of 16 blocks: scales and sums in window order (Q4_0_WIN_ORDER) */
        block_sums(xr, nb, nbp, c);
        for (int64_t w0 = 0; w0 + 16 <= nb; w0 += 16) {
            float td[16];
            int16_t tc[16];
            for (int e = 0; e < 16; e++) td[e] = d[w0 + Q4_0_WIN_ORDER(e)];
            for (int e = 0; e < 16; e++) tc[e] = c[w0 + Q4_0_WIN_ORDER(e)];
            memcpy(d + w0, td, sizeof td);
            memcpy(c + w0, tc, sizeof tc);
        }
    }
    *da = d, *cs = c, *ac = a, *ah = a + 64 * ng;
}

/* The integer sums of a full Q4_0 window, one lane per block (in window
 * order), from the lane sums d0..d3 of its 4 groups (dot4x: lanes 4i..4i+3 of
 * d_k = block i of group k, before the offset): two rounds of packssdw (to
 * int16; exact: |lane| <= 8 * 15 * 127 = 15240, a pair's sum <= 30480) and
 * pmaddwd by ones (adjacent pairs summed) leave lane 4i+k = block 4k+i. One
 * int32 lane and one float FMA per block instead of four. */
static inline __m512i q4_0_win_sums(__m512i d0, __m512i d1, __m512i d2, __m512i d3) {
    const __m512i one = _mm512_set1_epi16(1);
    __m512i a = _mm512_madd_epi16(_mm512_packs_epi32(d0, d1), one);
    __m512i b = _mm512_madd_epi16(_mm512_packs_epi32(d2, d3), one);
    return _mm512_madd_epi16(_mm512_packs_epi32(a, b), one);
}
/* A window's corrections -8 * sum(a) per block (window order) */
static inline __m512i q4_0_win_corr(const int16_t *cs, int64_t b0) {
    return _mm512_slli_epi32(_mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(cs + b0))),
                             3);
}

/* One window of blocks [b0, b0 + cnt) (cnt <= 16) of one (weight row wr,
 * activation row) pair, added to the pair's accumulator acc (per lane) and
 * tail (blocks outside whole vectors). A full window reads the weights as
 * whole vectors (win_scales, Q4_0_CODES_IX); a partial one (the last of a
 * row) takes the scale products sc from row_scales and its codes block by
 * block. Each block's scale product reaches its lanes by a permute of the
 * 16 of the window, except in a full Q4_0 window, whose blocks are one lane
 * each (q4_0_win_sums, window order). ac/ah/da: the activation row prepared
 * (prep_row); xa: the row as Q8_0 (the Q4_0 blocks past the last group of
 * 4). */
#define Q32_WINDOW(fname, DOT2, DOT4, CORR, ATTR)                                                  \
    ATTR static inline __attribute__((always_inline))                                              \
    __m512 fname##_win(const int Q4, __m512 acc, float *tail, const uint8_t *wr, int64_t b0,       \
                       int cnt, int64_t ng, const float *sc, const float *da, const int16_t *cs,   \
                       const int8_t *ac, const int8_t *ah, const uint8_t *xa) {                    \
        const size_t wb = Q4 ? SX_Q4_0_BYTES : SX_Q8_0_BYTES;                                      \
        /* lane -> block of the window: Q4_0 4 lanes per block, Q8_0 8 */                          \
        const __m512i idx0 =                                                                       \
            Q4 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)                 \
               : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);                \
        const uint8_t *p = wr + (size_t)b0 * wb;                                                   \
        const __m512i cw = win_corr(cs, b0, Q4); /* zero-padded to 16 */                           \
        if (cnt == 16) {                                                                           \
            if (Q4) { /* scale products and corrections in window order */                         \
                __m512 s = _mm512_mul_ps(win_scales_q4_0_ord(p), _mm512_loadu_ps(da + b0));        \
                Q4_0_WIN_CODES(p, v0, v1, v2, v3)                                                  \
                const int8_t *lo = ac + b0 * 16, *hi = ah + b0 * 16;                               \
                const __m512i z = _mm512_setzero_si512();                                          \
                __m512i t = q4_0_win_sums(DOT4(v0, lo, hi, z), DOT4(v1, lo + 64, hi + 64, z),      \
                                          DOT4(v2, lo + 128, hi + 128, z),                         \
                                          DOT4(v3, lo + 192, hi + 192, z));                        \
                t = _mm512_add_epi32(t, q4_0_win_corr(cs, b0));                                    \
                acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), s, acc);                              \
            } else {                                                                               \
                __m512 s = _mm512_mul_ps(win_scales(p, Q4), _mm512_loadu_ps(da + b0));             \
                _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {                              \
                    const uint8_t *wp = p + (size_t)(2 * k) * wb + 2;                              \
                    __m512i wv = cat256(_mm256_loadu_si256((const __m256i *)wp),                   \
                                        _mm256_loadu_si256((const __m256i *)(wp + wb)));           \
                    __m512i a = _mm512_loadu_si512(ac + (b0 + 2 * k) * 32);                        \
                    const __m512i ik = _mm512_add_epi32(idx0, _mm512_set1_epi32(2 * k));           \
                    __m512i d = DOT2(wv, a, CORR(0, ik, cw, a));                                   \
                    acc =                                                                          \
                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_permutexvar_ps(ik, s), acc); \
                }                                                                                  \
            }                                                                                      \
            return acc;                                                                            \
        }                                                                                          \
        __m512 sv = _mm512_loadu_ps(sc + b0);                                                      \
        __m512i idx = idx0;                                                                        \
        int j = 0;                                                                                 \
        if (Q4) {                                                                                  \
            int full = b0 + cnt <= 4 * ng ? cnt : (int)(4 * ng - b0);                              \
            for (; j < full; j += 4) {                                                             \
                int64_t g = (b0 + j) / 4;                                                          \
                const uint8_t *wp = p + (size_t)j * wb + 2;                                        \
                __m512i d = DOT4(q4_0_group_codes(wp), ac + g * 64, ah + g * 64,                   \
                                 CORR(1, idx, cw, _mm512_setzero_si512()));                        \
                acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_permutexvar_ps(idx, sv), acc); \
                idx = _mm512_add_epi32(idx, _mm512_set1_epi32(4));                                 \
            }                                                                                      \
            for (; j < cnt; j++) /* blocks past the last group of 4 */                             \
                *tail += (float)dot_q4_0_1(                                                        \
                             p + (size_t)j * wb + 2,                                               \
                             (const int8_t *)(xa + (size_t)(b0 + j) * SX_Q8_0_BYTES + 2)) *        \
                         sc[b0 + j];                                                               \
        } else {                                                                                   \
            for (; j + 2 <= cnt; j += 2) {                                                         \
                const uint8_t *wp = p + (size_t)j * wb + 2;                                        \
                __m512i wv = cat256(_mm256_loadu_si256((const __m256i *)wp),                       \
                                    _mm256_loadu_si256((const __m256i *)(wp + wb)));               \
                __m512i a = _mm512_loadu_si512(ac + (b0 + j) * 32);                                \
                __m512i d = DOT2(wv, a, CORR(0, idx, cw, a));                                      \
                acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_permutexvar_ps(idx, sv), acc); \
                idx = _mm512_add_epi32(idx, _mm512_set1_epi32(2));                                 \
            }                                                                                      \
            for (; j < cnt; j++)                                                                   \
                *tail +=                                                                           \
                    (float)dot_q8_0_1(p + (size_t)j * wb + 2, ac + (b0 + j) * 32) * sc[b0 + j];    \
        }                                                                                          \
        return acc;                                                                                \
    }

/* The lines of the window at p (16 blocks: Q4_0 288 bytes, Q8_0 544),
 * QPF_BYTES ahead */
static inline __attribute__((always_inline)) void prefetch_window(const uint8_t *p, int Q4) {
    if (Q4) {
#pragma GCC unroll 16
        for (int l = 0; l < 5; l++) prefetch_l2(p + 64 * l);
    } else {
#pragma GCC unroll 16
        for (int l = 0; l < 9; l++) prefetch_l2(p + 64 * l);
    }
}

/* One pass: weight row wr against the NR activation rows of the call. NR
 * and Q4 (Q4_0, else Q8_0) are constants at each call, so the accumulators
 * stay in registers. sc[r]: row r's block scale products for the last,
 * partial window (row_scales); the outputs go to y[r * ldy + n]. */
#define GEMV_Q32(fname, DOT2, DOT4, CORR, ATTR)                                                    \
    Q32_WINDOW(fname, DOT2, DOT4, CORR, ATTR)                                                      \
    ATTR static inline __attribute__((always_inline)) void fname##_pass(                           \
        const int NR, const int Q4, float *y, int64_t ldy, const void *x, size_t ldx,              \
        const uint8_t *wr, int64_t n, int64_t nb, int64_t ng, float *const *sc,                    \
        const float *const *da, const int16_t *const *cs, const int8_t *const *ac,                 \
        const int8_t *const *ah, const float *bias) {                                              \
        __m512 acc[MAXR];                                                                          \
        float tail[MAXR];                                                                          \
        _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps(),         \
                                                             tail[r] = 0.0f;                       \
        for (int64_t b0 = 0; b0 < nb; b0 += 16) {                                                  \
            int cnt = nb - b0 < 16 ? (int)(nb - b0) : 16;                                          \
            prefetch_window(wr + (size_t)b0 * (Q4 ? SX_Q4_0_BYTES : SX_Q8_0_BYTES), Q4);           \
            _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) acc[r] =                          \
                fname##_win(Q4, acc[r], &tail[r], wr, b0, cnt, ng, sc[r], da[r], cs[r], ac[r],     \
                            ah[r], (const uint8_t *)x + (size_t)r * ldx);                          \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) y[(int64_t)r * ldy + n] =             \
            (_mm512_reduce_add_ps(acc[r]) + tail[r]) + (bias ? bias[n] : 0.0f);                    \
    }                                                                                              \
    ATTR static void fname(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w, \
                           size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias,       \
                           int Q4) {                                                               \
        Q32_LAYOUT(Q4)                                                                             \
        /* then the scale products of MAXR rows [nbp] and the f16 scales of one weight row */      \
        size_t need = rowb * (size_t)m + MAXR * al64(4 * (size_t)nbp) + al64(2 * (size_t)nbp);     \
        uint8_t *scr = (uint8_t *)sx_scratch(SX_SCR_QPREP, (need + 3) / 4);                        \
        if (!scr) { /* out of memory: the scalar reference needs no scratch */                     \
            (Q4 ? sx_gemv_q4_0_scalar : sx_gemv_q8_0_scalar)(y, ldy, x, ldx, m, w, ldw, n0, n1, K, \
                                                             bias);                                \
            return;                                                                                \
        }                                                                                          \
        const float *da[MAXR];                                                                     \
        const int16_t *cs[MAXR];                                                                   \
        const int8_t *ac[MAXR], *ah[MAXR];                                                         \
        for (int r = 0; r < m; r++)                                                                \
            prep_row(Q4, (const uint8_t *)x + (size_t)r * ldx, nb, nbp, ng,                        \
                     scr + (size_t)r * rowb, &da[r], &cs[r], &ac[r], &ah[r]);                      \
        float *sc[MAXR];                                                                           \
        for (int r = 0; r < MAXR; r++)                                                             \
            sc[r] = (float *)(scr + rowb * (size_t)m + (size_t)r * al64(4 * (size_t)nbp));         \
        uint16_t *h = (uint16_t *)(scr + rowb * (size_t)m + MAXR * al64(4 * (size_t)nbp));         \
        for (int64_t n = n0; n < n1; n++) {                                                        \
            const uint8_t *wr = (const uint8_t *)w + (size_t)n * ldw;                              \
            row_scales(sc[0], h, wr, wb, nb / 16 * 16, nb, nbp, da[0]);                            \
            for (int r = 1; r < m; r++) /* the same weight row: activation row r's products */     \
                for (int64_t b = nb / 16 * 16; b < nbp; b += 16)                                   \
                    _mm512_storeu_ps(sc[r] + b, _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(  \
                                                                  (const __m256i *)(h + b))),      \
                                                              _mm512_loadu_ps(da[r] + b)));        \
            switch (m * 2 + (Q4 != 0)) {                                                           \
                Q32_PASS_CASES(fname, 1)                                                           \
                Q32_PASS_CASES(fname, 2)                                                           \
                Q32_PASS_CASES(fname, 3)                                                           \
                Q32_PASS_CASES(fname, 4)                                                           \
            }                                                                                      \
        }                                                                                          \
    }
/* the passes of NR activation rows, Q8_0 and Q4_0 */
#define Q32_PASS_CASES(fname, NR)                                                                  \
    case NR * 2 + 0:                                                                               \
        fname##_pass(NR, 0, y, ldy, x, ldx, wr, n, nb, ng, sc, da, cs, ac, ah, bias);              \
        break;                                                                                     \
    case NR * 2 + 1:                                                                               \
        fname##_pass(NR, 1, y, ldy, x, ldx, wr, n, nb, ng, sc, da, cs, ac, ah, bias);              \
        break;
GEMV_Q32(gemv_q32_plain, dot64_plain, dot4x_plain, corr_plain, )
GEMV_Q32(gemv_q32_vnni, dot64_vnni, dot4x_vnni, corr_vnni, VNNI)

/* an exported Q8_0 / Q4_0 kernel: the VNNI variant where the CPU has it */
#define Q32_ENTRY(name, plain, vnni, Q4)                                                           \
    void name(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w, size_t ldw,  \
              int64_t n0, int64_t n1, int64_t K, const float *bias) {                              \
        (sx_simd_vnni() ? vnni : plain)(y, ldy, x, ldx, m, w, ldw, n0, n1, K, bias, Q4);           \
    }
Q32_ENTRY(sx_gemv_q8_0_avx512, gemv_q32_plain, gemv_q32_vnni, 0)
Q32_ENTRY(sx_gemv_q4_0_avx512, gemv_q32_plain, gemv_q32_vnni, 1)

/* Many activation rows (prefill): tiles of NW weight rows x NA activation
 * rows, each weight vector loaded (and offset or split into nibbles) once
 * for the NA rows, each activation vector once for the NW rows. Every pair
 * does the arithmetic of the pass above in the same order (same integer
 * lanes or, in full Q4_0 windows, block sums; same scale products ws * da,
 * same FMAs, same tail and reduction), so each output is bit-identical to
 * the GEMV's. ws[i]: weight row i's block scales as floats (full Q4_0
 * windows in window order); da/ac/ah[r]: activation row r prepared as for
 * the GEMV (scales, codes or lo/hi). */
#define QROWS_Q32(fname, DOT2, DOT4, CORR, ATTR)                                                   \
    ATTR static inline __attribute__((always_inline)) void fname##_tile(                           \
        const int NW, const int NA, const int Q4, float *y, int64_t ldy, const void *x,            \
        size_t ldx, const uint8_t *const *wr, const int64_t n, int64_t nb, int64_t ng,             \
        const float *const *ws, const float *const *da, const int16_t *const *cs,                  \
        const int8_t *const *ac, const int8_t *const *ah, const float *bias, size_t pfd) {         \
        const size_t wb = Q4 ? SX_Q4_0_BYTES : SX_Q8_0_BYTES;                                      \
        const __m512i idx0 =                                                                       \
            Q4 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)                 \
               : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);                \
        __m512 acc[MAXR][MAXR];                                                                    \
        float tail[MAXR][MAXR];                                                                    \
        _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++)                                       \
            _Pragma("GCC unroll 4") for (int r = 0; r < NA; r++) acc[i][r] = _mm512_setzero_ps(),  \
                                                                 tail[i][r] = 0.0f;                \
        float sv[MAXR * MAXR][16] __attribute__((aligned(64)));                                    \
        for (int64_t b0 = 0; b0 < nb; b0 += 16) {                                                  \
            int cnt = nb - b0 < 16 ? (int)(nb - b0) : 16;                                          \
            if (pfd) /* the next tile's rows into L2 (this window's lines there, + QPF_BYTES) */   \
                _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++)                               \
                    prefetch_window(wr[i] + (size_t)b0 * wb + pfd, Q4);                            \
            _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++)                                   \
                _Pragma("GCC unroll 4") for (int r = 0; r < NA; r++)                               \
                    _mm512_store_ps(sv[i * NA + r], _mm512_mul_ps(_mm512_loadu_ps(ws[i] + b0),     \
                                                                  _mm512_loadu_ps(da[r] + b0)));   \
            if (Q4 && cnt == 16) { /* a full window: as the GEMV's, in window order, groups        \
                                    * 0-1 of every pair first (their pair sums kept in hs), then   \
                                    * 2-3: fewer vectors live beside the tile's sums */            \
                const __m512i z = _mm512_setzero_si512(), one = _mm512_set1_epi16(1);              \
                __m512i hs[MAXR * MAXR];                                                           \
                _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++) {                             \
                    const uint8_t *wp = wr[i] + (size_t)b0 * wb + 2;                               \
                    const __m512i v0 = q4_0_group_codes(wp), v1 = q4_0_group_codes(wp + 4 * wb);   \
                    _Pragma("GCC unroll 4") for (int r = 0; r < NA; r++) {                         \
                        const int8_t *lo = ac[r] + b0 * 16, *hi = ah[r] + b0 * 16;                 \
                        hs[i * NA + r] =                                                           \
                            _mm512_madd_epi16(_mm512_packs_epi32(DOT4(v0, lo, hi, z),              \
                                                                 DOT4(v1, lo + 64, hi + 64, z)),   \
                                              one);                                                \
                    }                                                                              \
                }                                                                                  \
                _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++) {                             \
                    const uint8_t *wp = wr[i] + (size_t)b0 * wb + 2;                               \
                    const __m512i v2 = q4_0_group_codes(wp + 8 * wb);                              \
                    const __m512i v3 = q4_0_group_codes(wp + 12 * wb);                             \
                    _Pragma("GCC unroll 4") for (int r = 0; r < NA; r++) {                         \
                        const int8_t *lo = ac[r] + b0 * 16 + 128, *hi = ah[r] + b0 * 16 + 128;     \
                        __m512i b =                                                                \
                            _mm512_madd_epi16(_mm512_packs_epi32(DOT4(v2, lo, hi, z),              \
                                                                 DOT4(v3, lo + 64, hi + 64, z)),   \
                                              one);                                                \
                        __m512i t = _mm512_madd_epi16(_mm512_packs_epi32(hs[i * NA + r], b), one); \
                        t = _mm512_add_epi32(t, q4_0_win_corr(cs[r], b0));                         \
                        acc[i][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t),                         \
                                                    _mm512_load_ps(sv[i * NA + r]), acc[i][r]);    \
                    }                                                                              \
                }                                                                                  \
                continue;                                                                          \
            }                                                                                      \
            __m512i idx = idx0, cw[MAXR];                                                          \
            _Pragma("GCC unroll 4") for (int r = 0; r < NA; r++) cw[r] = win_corr(cs[r], b0, Q4);  \
            /* steps of 4 blocks (Q4_0, full groups) or 2 (Q8_0) */                                \
            const int step = Q4 ? 4 : 2;                                                           \
            int j = 0, lim = Q4 ? (b0 + cnt <= 4 * ng ? cnt : (int)(4 * ng - b0)) : cnt;           \
            for (; j + step <= lim; j += step) {                                                   \
                int64_t g = (b0 + j) / 4;                                                          \
                __m512i v[MAXR];                                                                   \
                _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++) {                             \
                    const uint8_t *wp = wr[i] + (size_t)(b0 + j) * wb + 2;                         \
                    v[i] = Q4 ? q4_0_group_codes(wp)                                               \
                              : cat256(_mm256_loadu_si256((const __m256i *)wp),                    \
                                       _mm256_loadu_si256((const __m256i *)(wp + wb)));            \
                }                                                                                  \
                _Pragma("GCC unroll 4") for (int r = 0; r < NA; r++) {                             \
                    __m512i a =                                                                    \
                        Q4 ? _mm512_setzero_si512() : _mm512_loadu_si512(ac[r] + (b0 + j) * 32);   \
                    __m512i c = CORR(Q4, idx, cw[r], a);                                           \
                    _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++) {                         \
                        __m512i d =                                                                \
                            Q4 ? DOT4(v[i], ac[r] + g * 64, ah[r] + g * 64, c) : DOT2(v[i], a, c); \
                        acc[i][r] = _mm512_fmadd_ps(                                               \
                            _mm512_cvtepi32_ps(d),                                                 \
                            _mm512_permutexvar_ps(idx, _mm512_load_ps(sv[i * NA + r])),            \
                            acc[i][r]);                                                            \
                    }                                                                              \
                }                                                                                  \
                idx = _mm512_add_epi32(idx, _mm512_set1_epi32(step));                              \
            }                                                                                      \
            for (; j < cnt; j++) /* Q8_0: an odd last block; Q4_0: past the last group of 4 */     \
                _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++)                               \
                    _Pragma("GCC unroll 4") for (int r = 0; r < NA; r++) {                         \
                    const uint8_t *wp = wr[i] + (size_t)(b0 + j) * wb + 2;                         \
                    int32_t d =                                                                    \
                        Q4 ? dot_q4_0_1(wp,                                                        \
                                        (const int8_t *)((const uint8_t *)x + (size_t)r * ldx +    \
                                                         (size_t)(b0 + j) * SX_Q8_0_BYTES + 2))    \
                           : dot_q8_0_1(wp, ac[r] + (b0 + j) * 32);                                \
                    tail[i][r] += (float)d * (ws[i][b0 + j] * da[r][b0 + j]);                      \
                }                                                                                  \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++)                                       \
            _Pragma("GCC unroll 4") for (int r = 0; r < NA; r++) y[r * ldy + n + i] =              \
                (_mm512_reduce_add_ps(acc[i][r]) + tail[i][r]) + (bias ? bias[n + i] : 0.0f);      \
    }                                                                                              \
    ATTR static void fname(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w, \
                           size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias,       \
                           int Q4) {                                                               \
        Q32_LAYOUT(Q4)                                                                             \
        /* MAXR activation rows, then MAXR weight rows' scales [nbp] */                            \
        size_t need = rowb * MAXR + MAXR * al64(4 * (size_t)nbp) + al64(2 * (size_t)nbp);          \
        uint8_t *scr = (uint8_t *)sx_scratch(SX_SCR_QPREP, (need + 3) / 4);                        \
        if (!scr) {                                                                                \
            sx_qrows_by_gemv(Q4 ? sx_gemv_q4_0_scalar : sx_gemv_q8_0_scalar, y, ldy, x, ldx, m, w, \
                             ldw, n0, n1, K, bias);                                                \
            return;                                                                                \
        }                                                                                          \
        const float *da[MAXR], *ws[MAXR];                                                          \
        const int16_t *cs[MAXR];                                                                   \
        const int8_t *ac[MAXR], *ah[MAXR];                                                         \
        float *wsw[MAXR];                                                                          \
        for (int i = 0; i < MAXR; i++)                                                             \
            ws[i] = wsw[i] = (float *)(scr + rowb * MAXR + (size_t)i * al64(4 * (size_t)nbp));     \
        uint16_t *h = (uint16_t *)(scr + rowb * MAXR + MAXR * al64(4 * (size_t)nbp));              \
        for (int r0 = 0; r0 < m; r0 += MAXR) {                                                     \
            int na = m - r0 < MAXR ? m - r0 : MAXR;                                                \
            const uint8_t *xr0 = (const uint8_t *)x + (size_t)r0 * ldx;                            \
            for (int r = 0; r < na; r++) {                                                         \
                prep_row(Q4, xr0 + (size_t)r * ldx, nb, nbp, ng, scr + (size_t)r * rowb, &da[r],   \
                         &cs[r], &ac[r], &ah[r]);                                                  \
            }                                                                                      \
            float *yr = y + (int64_t)r0 * ldy;                                                     \
            for (int64_t n = n0; n < n1;) {                                                        \
                int nw = n1 - n >= MAXR ? MAXR : 1;                                                \
                /* first group of activation rows (the weights come from memory): prefetch the     \
                 * next tile's rows while multiplying these (later groups find them in L2) */      \
                size_t pfd = r0 == 0 && n + 2 * MAXR <= n1 ? (size_t)nw * ldw : 0;                 \
                const uint8_t *wr[MAXR];                                                           \
                for (int i = 0; i < nw; i++) {                                                     \
                    wr[i] = (const uint8_t *)w + (size_t)(n + i) * ldw;                            \
                    /* the block scales as floats: full windows by whole-vector loads */           \
                    int64_t bf = nb / 16 * 16;                                                     \
                    for (int64_t b = 0; b < bf; b += 16)                                           \
                        _mm512_storeu_ps(wsw[i] + b,                                               \
                                         Q4 ? win_scales_q4_0_ord(wr[i] + (size_t)b * wb)          \
                                            : win_scales(wr[i] + (size_t)b * wb, 0));              \
                    for (int64_t b = bf; b < nb; b++) memcpy(&h[b], wr[i] + (size_t)b * wb, 2);    \
                    for (int64_t b = nb; b < nbp; b++) h[b] = 0;                                   \
                    for (int64_t b = bf; b < nbp; b += 16)                                         \
                        _mm512_storeu_ps(wsw[i] + b, _mm512_cvtph_ps(_mm256_loadu_si256(           \
                                                         (const __m256i *)(h + b))));              \
                }                                                                                  \
                switch ((nw == MAXR) * 8 + (na - 1) * 2 + (Q4 != 0)) {                             \
                    QT_CASES(fname, 4, 8)                                                          \
                    QT_CASES(fname, 1, 0)                                                          \
                }                                                                                  \
                n += nw;                                                                           \
            }                                                                                      \
        }                                                                                          \
    }
#define QT_CALL(fname, NW, NA, Q)                                                                  \
    fname##_tile(NW, NA, Q, yr, ldy, xr0, ldx, wr, n, nb, ng, ws, da, cs, ac, ah, bias, pfd)
#define QT_CASES(fname, NW, base)                                                                  \
    case base + 0: QT_CALL(fname, NW, 1, 0); break;                                                \
    case base + 1: QT_CALL(fname, NW, 1, 1); break;                                                \
    case base + 2: QT_CALL(fname, NW, 2, 0); break;                                                \
    case base + 3: QT_CALL(fname, NW, 2, 1); break;                                                \
    case base + 4: QT_CALL(fname, NW, 3, 0); break;                                                \
    case base + 5: QT_CALL(fname, NW, 3, 1); break;                                                \
    case base + 6: QT_CALL(fname, NW, 4, 0); break;                                                \
    case base + 7: QT_CALL(fname, NW, 4, 1); break;
QROWS_Q32(qrows_q32_plain, dot64_plain, dot4x_plain, corr_plain, )
QROWS_Q32(qrows_q32_vnni, dot64_vnni, dot4x_vnni, corr_vnni, VNNI)
Q32_ENTRY(sx_qrows_q8_0_avx512, qrows_q32_plain, qrows_q32_vnni, 0)
Q32_ENTRY(sx_qrows_q4_0_avx512, qrows_q32_plain, qrows_q32_vnni, 1)

/* Q4_K x Q8_K. Per call, each activation row is rearranged per super-block
 * so that one zmm load meets one zmm of codes: chunk k (sub-blocks a and
 * a+2, a = 0, 1, 4, 5) = [a(sub a) | a(sub a+2)]; plus the sums of the 8
 * sub-blocks (int16) and the scale. Without VNNI the scale of each sub-block
 * multiplies its maddubs pairs (madd) into int32 lanes; with VNNI see
 * q4k_decv. The mins meet the sums in one madd. The integer sums are those
 * of quant.c (the float part is not: see the pass). One weight row at a
 * time, as for Q8_0/Q4_0. */
static inline __m512i q4k_madd(__m512i acc, __m512i p, __m512i s) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p, s));
}

#define Q4K_PREP 292 /* bytes per super-block: 256 codes, 8 int16 sums, f32 scale, pad */
static void prep_q8_k(const uint8_t *x, int64_t nb, uint8_t *p) {
    for (int64_t b = 0; b < nb; b++, x += SX_Q8_K_BYTES, p += Q4K_PREP) {
        for (int k = 0; k < 4; k++) {
            int a = (k >> 1) * 4 + (k & 1);
            memcpy(p + 64 * k, x + 4 + 32 * a, 32);
            memcpy(p + 64 * k + 32, x + 4 + 32 * (a + 2), 32);
        }
        int16_t bs[16], s8[8];
        memcpy(bs, x + 4 + SX_QKK, sizeof bs);
        for (int j = 0; j < 8; j++) s8[j] = (int16_t)(bs[2 * j] + bs[2 * j + 1]);
        memcpy(p + 256, s8, 16);
        memcpy(p + 272, x, 4);
    }
}

/* The integer parts of one super-block, without VNNI: q4k_dec splits the weights wp into
 * the codes of the four zmm chunks and their sub-blocks' scales (int16 lanes)
 * and mins, once per weight row and super-block; q4k_dot meets them with
 * one prepared activation row ap: the int32 lanes whose sum is isum (return)
 * and the 4 of msum. The four products of a super-block go to two
 * accumulators (no long chain). */
/* the codes of a super-block's four chunks (sub-blocks a and a + 2 each) */
static inline __attribute__((always_inline)) void q4k_codes(const uint8_t *wp, __m512i q[4]) {
    const __m512i lo4 = _mm512_set1_epi8(15);
    __m512i v0 = _mm512_loadu_si512(wp + 16), v1 = _mm512_loadu_si512(wp + 80);
    q[0] = _mm512_and_si512(v0, lo4);
    q[1] = _mm512_and_si512(_mm512_srli_epi16(v0, 4), lo4);
    q[2] = _mm512_and_si512(v1, lo4);
    q[3] = _mm512_and_si512(_mm512_srli_epi16(v1, 4), lo4);
}
typedef struct {
    __m512i q[4], s[4]; /* chunk k's codes; its sub-blocks' scales per int16 lane */
    __m128i m16;        /* the 8 mins */
} q4k_dec_t;
static inline __attribute__((always_inline)) void q4k_dec(const uint8_t *wp, q4k_dec_t *d) {
    /* zmm k holds sub-blocks a(k) and a(k)+2, a = 0, 1, 4, 5: int16 lane selectors */
    const __m512i sel0 = cat256(_mm256_set1_epi16(0), _mm256_set1_epi16(2));
    const __m512i sel1 = cat256(_mm256_set1_epi16(1), _mm256_set1_epi16(3));
    const __m512i sel2 = cat256(_mm256_set1_epi16(4), _mm256_set1_epi16(6));
    const __m512i sel3 = cat256(_mm256_set1_epi16(5), _mm256_set1_epi16(7));
    uint64_t scb, mb;
    sx_q4_k_scales_mins(wp + 4, &scb, &mb);
    __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)scb)));
    d->m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mb));
    q4k_codes(wp, d->q);
    d->s[0] = _mm512_permutexvar_epi16(sel0, sc16);
    d->s[1] = _mm512_permutexvar_epi16(sel1, sc16);
    d->s[2] = _mm512_permutexvar_epi16(sel2, sc16);
    d->s[3] = _mm512_permutexvar_epi16(sel3, sc16);
}
static inline __attribute__((always_inline)) __m512i q4k_dot(const q4k_dec_t *d, const uint8_t *ap,
                                                             __m128i *msum) {
    __m512i e0 = q4k_madd(_mm512_setzero_si512(),
                          _mm512_maddubs_epi16(d->q[0], _mm512_loadu_si512(ap)), d->s[0]);
    __m512i e1 = q4k_madd(_mm512_setzero_si512(),
                          _mm512_maddubs_epi16(d->q[1], _mm512_loadu_si512(ap + 64)), d->s[1]);
    e0 = q4k_madd(e0, _mm512_maddubs_epi16(d->q[2], _mm512_loadu_si512(ap + 128)), d->s[2]);
    e1 = q4k_madd(e1, _mm512_maddubs_epi16(d->q[3], _mm512_loadu_si512(ap + 192)), d->s[3]);
    *msum = _mm_madd_epi16(d->m16, _mm_loadu_si128((const __m128i *)(ap + 256)));
    return _mm512_add_epi32(e0, e1);
}
/* With VNNI: vpdpbusd takes each chunk's codes (u8) times the activations
 * (s8) straight to int32 lanes, 8 per sub-block; packssdw joins chunks k and
 * k+1 (|lane| <= 4 * 15 * 128, exact in int16): in 128-bit lane L four words
 * of sub-block a(k) and four of a(k+1) (L < 2), or of a(k)+2 and a(k+1)+2
 * (L >= 2); one vpdpwssd meets them with the scales spread the same way by
 * one in-lane byte shuffle of the broadcast scale bytes, the second vpdpwssd
 * adding to the first. 8 multiplies and 2 byte shuffles per super-block
 * instead of 8 and 4 word permutes, the same integer sums. One thread, K =
 * 13824, weights in L2: 31.2 -> 35.0 GB/s (with the pass's loop unrolled
 * twice; the two changes alone: +4%, then +8%). */
typedef struct {
    __m512i q[4];     /* chunk k's codes */
    __m512i s01, s45; /* scales for packssdw(chunk 0, chunk 1) and (chunk 2, chunk 3) */
    __m128i m16;      /* the 8 mins */
} q4k_decv_t;
static inline __attribute__((always_inline)) void q4k_decv(const uint8_t *wp, q4k_decv_t *d) {
    /* word i of 128-bit lane L: byte (i < 4 ? b0 : b1) of the scales, zero-extended */
#define Q4KV_SEL(b0, b1)                                                                           \
    _mm_setr_epi8(b0, -1, b0, -1, b0, -1, b0, -1, b1, -1, b1, -1, b1, -1, b1, -1)
    const __m512i sel01 =
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(Q4KV_SEL(0, 1))),
                           _mm256_broadcastsi128_si256(Q4KV_SEL(2, 3)), 1);
    const __m512i sel45 =
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(Q4KV_SEL(4, 5))),
                           _mm256_broadcastsi128_si256(Q4KV_SEL(6, 7)), 1);
#undef Q4KV_SEL
    uint64_t scb, mb;
    sx_q4_k_scales_mins(wp + 4, &scb, &mb);
    __m512i sc8 = _mm512_set1_epi64((long long)scb);
    d->m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mb));
    q4k_codes(wp, d->q);
    d->s01 = _mm512_shuffle_epi8(sc8, sel01);
    d->s45 = _mm512_shuffle_epi8(sc8, sel45);
}
VNNI static inline __attribute__((always_inline)) __m512i
q4k_dotv(const q4k_decv_t *d, const uint8_t *ap, __m128i *msum) {
    const __m512i z = _mm512_setzero_si512();
    __m512i c0 = _mm512_dpbusd_epi32(z, d->q[0], _mm512_loadu_si512(ap));
    __m512i c1 = _mm512_dpbusd_epi32(z, d->q[1], _mm512_loadu_si512(ap + 64));
    __m512i c2 = _mm512_dpbusd_epi32(z, d->q[2], _mm512_loadu_si512(ap + 128));
    __m512i c3 = _mm512_dpbusd_epi32(z, d->q[3], _mm512_loadu_si512(ap + 192));
    __m512i e = _mm512_dpwssd_epi32(z, _mm512_packs_epi32(c0, c1), d->s01);
    *msum = _mm_madd_epi16(d->m16, _mm_loadu_si128((const __m128i *)(ap + 256)));
    return _mm512_dpwssd_epi32(e, _mm512_packs_epi32(c2, c3), d->s45);
}

/* One pass of NR pairs (one weight row against NR activation rows), as the
 * Q8_0/Q4_0 passes; the weight row's super-blocks are decoded once for the
 * NR. Per super-block the int32 lanes of isum and msum become floats and are
 * multiplied by da * d and da * dmin into two vector accumulators (one FMA
 * each, no horizontal sum per super-block); the lanes are summed once per
 * pass. A float order of its own, like the Q8_0/Q4_0
 * kernels (bounded against quant.c in the tests). The weights are
 * prefetched QPF_BYTES ahead (prefetch_q4_k). The super-block loop is
 * unrolled twice (one thread, K = 13824, in L2: +8% with VNNI, +3-7%
 * without). */
#define GEMV_Q4K(fname, DEC_T, DEC, DOT, ATTR)                                                     \
    ATTR static inline __attribute__((always_inline)) void fname##_pass(                           \
        const int NR, float *y, int64_t ldy, const uint8_t *const *wr, const uint8_t *const *ar,   \
        const int *ai, const int64_t *col, int64_t nb, const float *bias) {                        \
        __m512 acc[MAXR];                                                                          \
        __m128 accm[MAXR];                                                                         \
        _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {                                     \
            acc[i] = _mm512_setzero_ps();                                                          \
            accm[i] = _mm_setzero_ps();                                                            \
        }                                                                                          \
        _Pragma("GCC unroll 2") for (int64_t b = 0; b < nb; b++) {                                 \
            /* the pairs share one weight row (q_pairs): decoded once */                           \
            const uint8_t *wp = wr[0] + (size_t)b * SX_Q4_K_BYTES;                                 \
            prefetch_q4_k(wp);                                                                     \
            DEC_T dec;                                                                             \
            DEC(wp, &dec);                                                                         \
            int32_t f; /* (d, dmin) */                                                             \
            memcpy(&f, wp, 4);                                                                     \
            _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {                                 \
                const uint8_t *ap = ar[NR == 1 ? 0 : ai[i]] + (size_t)b * Q4K_PREP;                \
                __m128i mv;                                                                        \
                __m512i e = DOT(&dec, ap, &mv);                                                    \
                __m128 dm = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(f)),                         \
                                       _mm_broadcast_ss((const float *)(ap + 272)));               \
                acc[i] =                                                                           \
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(e), _mm512_broadcastss_ps(dm), acc[i]);     \
                accm[i] =                                                                          \
                    _mm_fmadd_ps(_mm_cvtepi32_ps(mv), _mm_shuffle_ps(dm, dm, 0x55), accm[i]);      \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {                                     \
            __m128 m = _mm_add_ps(accm[i], _mm_movehl_ps(accm[i], accm[i]));                       \
            m = _mm_add_ss(m, _mm_shuffle_ps(m, m, 1));                                            \
            y[(int64_t)ai[i] * ldy + col[i]] =                                                     \
                (_mm512_reduce_add_ps(acc[i]) - _mm_cvtss_f32(m)) + (bias ? bias[col[i]] : 0.0f);  \
        }                                                                                          \
    }                                                                                              \
    ATTR static void fname(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w, \
                           size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias) {     \
        const int64_t nb = K / SX_QKK;                                                             \
        size_t rowb = al64((size_t)nb * Q4K_PREP);                                                 \
        uint8_t *scr = (uint8_t *)sx_scratch(SX_SCR_QPREP, (rowb * (size_t)m + 3) / 4);            \
        if (!scr) {                                                                                \
            sx_gemv_q4_k_scalar(y, ldy, x, ldx, m, w, ldw, n0, n1, K, bias);                       \
            return;                                                                                \
        }                                                                                          \
        const uint8_t *ar[MAXR];                                                                   \
        for (int r = 0; r < m; r++) {                                                              \
            prep_q8_k((const uint8_t *)x + (size_t)r * ldx, nb, scr + r * rowb);                   \
            ar[r] = scr + r * rowb;                                                                \
        }                                                                                          \
        for (int64_t n = n0; n < n1; n++) {                                                        \
            const uint8_t *wr[MAXR];                                                               \
            int ai[MAXR];                                                                          \
            int64_t col[MAXR];                                                                     \
            int nr = q_pairs(m, n, w, ldw, wr, ai, col);                                           \
            switch (nr) {                                                                          \
            case 4: fname##_pass(4, y, ldy, wr, ar, ai, col, nb, bias); break;                     \
            case 3: fname##_pass(3, y, ldy, wr, ar, ai, col, nb, bias); break;                     \
            case 2: fname##_pass(2, y, ldy, wr, ar, ai, col, nb, bias); break;                     \
            default: fname##_pass(1, y, ldy, wr, ar, ai, col, nb, bias); break;                    \
            }                                                                                      \
        }                                                                                          \
    }
GEMV_Q4K(gemv_q4k_plain, q4k_dec_t, q4k_dec, q4k_dot, )
GEMV_Q4K(gemv_q4k_vnni, q4k_decv_t, q4k_decv, q4k_dotv, VNNI)

void sx_gemv_q4_k_avx512(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                         size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias) {
    (sx_simd_vnni() ? gemv_q4k_vnni : gemv_q4k_plain)(y, ldy, x, ldx, m, w, ldw, n0, n1, K, bias);
}

/* ---- the int8 GEMM (quant.h): panels and micro-kernel ----
 * A block of 16 rows x 32 int8 codes (one ymm per row) becomes the 8 groups
 * of the panel: rows n and n + 8 share a zmm, and both 256-bit halves go
 * through an 8 x 8 transpose of dwords at once (unpack 32, unpack 64, then
 * 128-bit lanes by permutes). The row sums (x 128) by vpdpbusd with ones. */
VNNI static inline __attribute__((always_inline)) void i8pack_regs(uint8_t *d, const __m256i v[16],
                                                                   __m512 ws, __m512 ml) {
    __m512i z[8], t[8], u[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(v[i]), v[i + 8], 1);
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm512_unpacklo_epi32(z[i], z[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(z[i], z[i + 1]);
    }
    /* rows 0-3 (t0..t3) and 4-7 (t4..t7): u[k] (k < 4) rows 0-3, u[4 + k] rows
     * 4-7 of dword 4 * (lane & 1) + k of the lane's half */
#pragma GCC unroll 2
    for (int q = 0; q < 8; q += 4) {
        u[q + 0] = _mm512_unpacklo_epi64(t[q + 0], t[q + 2]);
        u[q + 1] = _mm512_unpackhi_epi64(t[q + 0], t[q + 2]);
        u[q + 2] = _mm512_unpacklo_epi64(t[q + 1], t[q + 3]);
        u[q + 3] = _mm512_unpackhi_epi64(t[q + 1], t[q + 3]);
    }
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i sum = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        __m512i g0 = _mm512_permutex2var_epi64(u[k], lo, u[4 + k]);
        __m512i g1 = _mm512_permutex2var_epi64(u[k], hi, u[4 + k]);
        sum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(sum, ones, g0), ones, g1);
        _mm512_store_si512(d + 64 * k, g0);
        _mm512_store_si512(d + 64 * (k + 4), g1);
    }
    _mm512_store_ps(d + SX_I8_WS, ws);
    _mm512_store_si512(d + SX_I8_CORR, _mm512_slli_epi32(sum, 7));
    _mm512_store_ps(d + SX_I8_ML, ml);
}
#define I8PACK(fname, TYPE_BYTES, ROWVALS)                                                         \
    VNNI void fname(uint8_t *d, const void *const *rows, int nrows, int64_t b0, int64_t nblk) {    \
        for (int64_t b = b0; b < b0 + nblk; b++, d += SX_I8_PANEL_BYTES) {                         \
            __m256i v[16];                                                                         \
            uint16_t h[16];                                                                        \
            for (int n = 0; n < 16; n++) {                                                         \
                if (n >= nrows) {                                                                  \
                    v[n] = _mm256_setzero_si256(), h[n] = 0;                                       \
                    continue;                                                                      \
                }                                                                                  \
                const uint8_t *p = (const uint8_t *)rows[n] + b * TYPE_BYTES;                      \
                memcpy(&h[n], p, 2);                                                               \
                v[n] = ROWVALS(p + 2);                                                             \
            }                                                                                      \
            i8pack_regs(d, v, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h)),             \
                        _mm512_setzero_ps());                                                      \
        }                                                                                          \
    }
static inline __m256i q8_0_i8vals(const uint8_t *q) {
    return _mm256_loadu_si256((const __m256i *)q);
}
/* Q4_0: value j < 16 low nibble of byte j, j >= 16 high nibble of byte j - 16, minus 8 */
static inline __m256i q4_0_i8vals(const uint8_t *q) {
    __m128i x = _mm_loadu_si128((const __m128i *)q), m = _mm_set1_epi8(15);
    __m256i c = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(x, m)),
                                        _mm_and_si128(_mm_srli_epi16(x, 4), m), 1);
    return _mm256_sub_epi8(c, _mm256_set1_epi8(8));
}
I8PACK(sx_q8_0_i8pack_avx512, SX_Q8_0_BYTES, q8_0_i8vals)
I8PACK(sx_q4_0_i8pack_avx512, SX_Q4_0_BYTES, q4_0_i8vals)
/* Q4_K: block b = sub-block b % 8 of super-block b / 8; ws and ml from
 * q4_k_factors (once per row and super-block) */
VNNI void sx_q4_k_i8pack_avx512(uint8_t *d, const void *const *rows, int nrows, int64_t b0,
                                int64_t nblk) {
    float dl[16][8], ml[16][8], wsb[16], mlb[16];
    const __m256i m15 = _mm256_set1_epi8(15);
    for (int n = nrows; n < 16; n++)
        for (int j = 0; j < 8; j++) dl[n][j] = ml[n][j] = 0.0f;
    for (int64_t b = b0; b < b0 + nblk; b++, d += SX_I8_PANEL_BYTES) {
        int j = (int)(b % 8);
        int64_t off = (b / 8) * SX_Q4_K_BYTES;
        if (j == 0 || b == b0)
            for (int n = 0; n < nrows; n++)
                q4_k_factors((const uint8_t *)rows[n] + off, dl[n], ml[n]);
        __m256i v[16];
        for (int n = 0; n < 16; n++) {
            wsb[n] = dl[n][j], mlb[n] = ml[n][j];
            if (n >= nrows) {
                v[n] = _mm256_setzero_si256();
                continue;
            }
            __m256i q = _mm256_loadu_si256(
                (const __m256i *)((const uint8_t *)rows[n] + off + 16 + 32 * (j / 2)));
            v[n] = _mm256_and_si256(j & 1 ? _mm256_srli_epi16(q, 4) : q, m15);
        }
        i8pack_regs(d, v, _mm512_loadu_ps(wsb), _mm512_loadu_ps(mlb));
    }
}

/* SX_I8_MR rows x 32 columns: per block, 8 groups of one vpdpbusd per row
 * and panel (u8 activations broadcast, int8 weights); then per row and
 * panel the correction, the float conversion and one FMA with ws * da (and
 * for MINS one more with -ml and dsa). */
VNNI static inline __attribute__((always_inline)) void
i8_ukr(const int MINS, int64_t nblk, const uint8_t *const *a, const float *const *da,
       const float *const *dsa, int rows, const uint8_t *b0, const uint8_t *b1, int cols, float *c,
       int64_t ldc, int load) {
    enum { MR = SX_I8_MR };
    const uint8_t *ar[MR];
    const float *dr[MR], *sr[MR];
    for (int r = 0; r < MR; r++) { /* rows past `rows`: row 0 again, not stored */
        ar[r] = a[r < rows ? r : 0];
        dr[r] = da[r < rows ? r : 0];
        sr[r] = MINS ? dsa[r < rows ? r : 0] : NULL;
    }
    __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= 32 ? 0xffff : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0;
    __m512 f[MR][2];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        f[r][0] = load && r < rows ? _mm512_maskz_loadu_ps(m0, c + r * ldc) : _mm512_setzero_ps();
        f[r][1] =
            load && r < rows ? _mm512_maskz_loadu_ps(m1, c + r * ldc + 16) : _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nblk; b++, b0 += SX_I8_PANEL_BYTES, b1 += SX_I8_PANEL_BYTES) {
        __m512i s[MR][2];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) s[r][0] = s[r][1] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m512i w0 = _mm512_load_si512(b0 + 64 * g), w1 = _mm512_load_si512(b1 + 64 * g);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) {
                int32_t q;
                memcpy(&q, ar[r] + b * 32 + 4 * g, 4);
                __m512i av = _mm512_set1_epi32(q);
                s[r][0] = _mm512_dpbusd_epi32(s[r][0], av, w0);
                s[r][1] = _mm512_dpbusd_epi32(s[r][1], av, w1);
            }
        }
        __m512 ws0 = _mm512_load_ps((const float *)(b0 + SX_I8_WS));
        __m512 ws1 = _mm512_load_ps((const float *)(b1 + SX_I8_WS));
        __m512i c0 = _mm512_load_si512(b0 + SX_I8_CORR), c1 = _mm512_load_si512(b1 + SX_I8_CORR);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            __m512 d = _mm512_set1_ps(dr[r][b]);
            f[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s[r][0], c0)),
                                      _mm512_mul_ps(ws0, d), f[r][0]);
            f[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s[r][1], c1)),
                                      _mm512_mul_ps(ws1, d), f[r][1]);
        }
        if (MINS) {
            __m512 ml0 = _mm512_load_ps((const float *)(b0 + SX_I8_ML));
            __m512 ml1 = _mm512_load_ps((const float *)(b1 + SX_I8_ML));
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) {
                __m512 e = _mm512_set1_ps(sr[r][b]);
                f[r][0] = _mm512_fnmadd_ps(ml0, e, f[r][0]);
                f[r][1] = _mm512_fnmadd_ps(ml1, e, f[r][1]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
        if (r < rows) {
            _mm512_mask_storeu_ps(c + r * ldc, m0, f[r][0]);
            _mm512_mask_storeu_ps(c + r * ldc + 16, m1, f[r][1]);
        }
}
VNNI void sx_i8_ukr_avx512(int64_t nblk, const uint8_t *const *a, const float *const *da,
                           const float *const *dsa, int rows, const uint8_t *b0, const uint8_t *b1,
                           int cols, float *c, int64_t ldc, int load) {
    if (dsa)
        i8_ukr(1, nblk, a, da, dsa, rows, b0, b1, cols, c, ldc, load);
    else
        i8_ukr(0, nblk, a, da, dsa, rows, b0, b1, cols, c, ldc, load);
}
