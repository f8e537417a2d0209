/* ops_avx512.c - AVX-512F kernels (see ops_impl.h for what each does).
 * GEMM micro-tile 12x32: 24 zmm accumulators, two B loads and twelve
 * broadcasts of A per k step. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "half.h"
#include "ops_impl.h"
#include "ops_avx512.h"

#define MR 12
#define NR 32

static void ukr(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int load_c) {
    __m512 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    __m512 c60, c61, c70, c71, c80, c81, c90, c91, ca0, ca1, cb0, cb1;
#define LD(i, r0, r1)                                                                        \
    r0 = load_c ? _mm512_loadu_ps(c + (i) * ldc) : _mm512_setzero_ps();                      \
    r1 = load_c ? _mm512_loadu_ps(c + (i) * ldc + 16) : _mm512_setzero_ps();
    LD(0, c00, c01) LD(1, c10, c11) LD(2, c20, c21) LD(3, c30, c31) LD(4, c40, c41)
    LD(5, c50, c51) LD(6, c60, c61) LD(7, c70, c71) LD(8, c80, c81) LD(9, c90, c91)
    LD(10, ca0, ca1) LD(11, cb0, cb1)
#undef LD
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), av;
#define STEP(i, r0, r1)                                                                      \
    av = _mm512_set1_ps(a[i]);                                                               \
    r0 = _mm512_fmadd_ps(av, b0, r0);                                                        \
    r1 = _mm512_fmadd_ps(av, b1, r1);
        STEP(0, c00, c01) STEP(1, c10, c11) STEP(2, c20, c21) STEP(3, c30, c31)
        STEP(4, c40, c41) STEP(5, c50, c51) STEP(6, c60, c61) STEP(7, c70, c71)
        STEP(8, c80, c81) STEP(9, c90, c91) STEP(10, ca0, ca1) STEP(11, cb0, cb1)
#undef STEP
        a += MR;
        b += NR;
    }
#define ST(i, r0, r1)                                                                        \
    _mm512_storeu_ps(c + (i) * ldc, r0);                                                     \
    _mm512_storeu_ps(c + (i) * ldc + 16, r1);
    ST(0, c00, c01) ST(1, c10, c11) ST(2, c20, c21) ST(3, c30, c31) ST(4, c40, c41)
    ST(5, c50, c51) ST(6, c60, c61) ST(7, c70, c71) ST(8, c80, c81) ST(9, c90, c91)
    ST(10, ca0, ca1) ST(11, cb0, cb1)
#undef ST
}

/* ukr_x: B panels in F32/F16/BF16 (widened in registers), the first R rows
 * of A (R a constant in each instance: 12, 8, 4, 2, 1). */
static inline __attribute__((always_inline)) __m512 ldb(const void *b, int bt, int64_t off) {
    if (bt == SX_F32) return _mm512_loadu_ps((const float *)b + off);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)b + off));
    if (bt == SX_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline __attribute__((always_inline)) void ukr_rows(int R, int bt, int64_t kc, const float *a,
                                                           const void *b, float *c, int64_t ldc,
                                                           int load_c) {
    __m512 acc[MR][2];
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
        acc[r][0] = load_c ? _mm512_loadu_ps(c + r * ldc) : _mm512_setzero_ps();
        acc[r][1] = load_c ? _mm512_loadu_ps(c + r * ldc + 16) : _mm512_setzero_ps();
    }
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = ldb(b, bt, k * NR), b1 = ldb(b, bt, k * NR + 16);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            __m512 av = _mm512_set1_ps(a[k * MR + r]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
        _mm512_storeu_ps(c + r * ldc, acc[r][0]);
        _mm512_storeu_ps(c + r * ldc + 16, acc[r][1]);
    }
}

#define UKR_TYPE(name, BT)                                                                    \
    static void name(int64_t kc, const float *a, const void *b, int rows, float *c, int64_t ldc, \
                     int load_c) {                                                            \
        if (rows > 8) ukr_rows(MR, BT, kc, a, b, c, ldc, load_c);                             \
        else if (rows > 4) ukr_rows(8, BT, kc, a, b, c, ldc, load_c);                         \
        else if (rows > 2) ukr_rows(4, BT, kc, a, b, c, ldc, load_c);                         \
        else if (rows > 1) ukr_rows(2, BT, kc, a, b, c, ldc, load_c);                         \
        else ukr_rows(1, BT, kc, a, b, c, ldc, load_c);                                       \
    }
UKR_TYPE(ukr_f32, SX_F32)
UKR_TYPE(ukr_f16, SX_F16)
UKR_TYPE(ukr_bf16, SX_BF16)

static void ukr_x(int64_t kc, const float *a, const void *b, int btype, int rows, float *c,
                  int64_t ldc, int load_c) {
    if (btype == SX_F32 && rows == MR) ukr(kc, a, b, c, ldc, load_c);
    else if (btype == SX_F32) ukr_f32(kc, a, b, rows, c, ldc, load_c);
    else if (btype == SX_F16) ukr_f16(kc, a, b, rows, c, ldc, load_c);
    else ukr_bf16(kc, a, b, rows, c, ldc, load_c);
}

static inline __m512 load16(const void *w, int type, int64_t k) {
    if (type == SX_F32) return _mm512_loadu_ps((const float *)w + k);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + k));
    if (type == SX_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline __m512 load16_tail(const void *w, int type, int64_t k, int n) {
    __mmask16 m = (__mmask16)((1u << n) - 1);
    if (type == SX_F32) return _mm512_maskz_loadu_ps(m, (const float *)w + k);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + k);
    if (type == SX_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* One row of X against 4 rows of W at a time: four independent weight
 * streams keep more cache-line fills in flight (decode is bound by memory). */
static inline void gemv1x4(float *y, const float *x, const void *w, int type, size_t ldw, int64_t n,
                           int64_t K, const float *bias) {
    const char *r[4];
    for (int j = 0; j < 4; j++) r[j] = (const char *)w + (size_t)(n + j) * ldw;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 xv = _mm512_loadu_ps(x + k);
        a0 = _mm512_fmadd_ps(xv, load16(r[0], type, k), a0);
        a1 = _mm512_fmadd_ps(xv, load16(r[1], type, k), a1);
        a2 = _mm512_fmadd_ps(xv, load16(r[2], type, k), a2);
        a3 = _mm512_fmadd_ps(xv, load16(r[3], type, k), a3);
    }
    if (k < K) {
        int nn = (int)(K - k);
        __m512 xv = _mm512_maskz_loadu_ps((__mmask16)((1u << nn) - 1), x + k);
        a0 = _mm512_fmadd_ps(xv, load16_tail(r[0], type, k, nn), a0);
        a1 = _mm512_fmadd_ps(xv, load16_tail(r[1], type, k, nn), a1);
        a2 = _mm512_fmadd_ps(xv, load16_tail(r[2], type, k, nn), a2);
        a3 = _mm512_fmadd_ps(xv, load16_tail(r[3], type, k, nn), a3);
    }
    y[n] = _mm512_reduce_add_ps(a0) + (bias ? bias[n] : 0.0f);
    y[n + 1] = _mm512_reduce_add_ps(a1) + (bias ? bias[n + 1] : 0.0f);
    y[n + 2] = _mm512_reduce_add_ps(a2) + (bias ? bias[n + 2] : 0.0f);
    y[n + 3] = _mm512_reduce_add_ps(a3) + (bias ? bias[n + 3] : 0.0f);
}

/* GEMV on float weights; `type` is a constant in each instance below. */
static inline void gemv(float *y, int64_t ldy, const void *xv, size_t ldx, int m, const void *w,
                        size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias, int type) {
    const float *x = xv;
    int64_t lx = (int64_t)(ldx / sizeof(float));
    if (m == 1 && SX_GEMV_1X4(K, type))
        for (; n0 + 4 <= n1; n0 += 4) gemv1x4(y, x, w, type, ldw, n0, K, bias);
    for (int64_t n = n0; n < n1; n++) {
        const char *wr = (const char *)w + (size_t)n * ldw;
        __m512 acc[SX_GEMV_MAX_M][2];
        for (int r = 0; r < m; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
        int64_t k = 0;
        for (; k + 32 <= K; k += 32) {
            __m512 w0 = load16(wr, type, k), w1 = load16(wr, type, k + 16);
            for (int r = 0; r < m; r++) {
                acc[r][0] = _mm512_fmadd_ps(_mm512_loadu_ps(x + r * lx + k), w0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(_mm512_loadu_ps(x + r * lx + k + 16), w1, acc[r][1]);
            }
        }
        for (; k < K; k += 16) {
            int nn = K - k < 16 ? (int)(K - k) : 16;
            __mmask16 mk = (__mmask16)((1u << nn) - 1);
            __m512 w0 = load16_tail(wr, type, k, nn);
            for (int r = 0; r < m; r++)
                acc[r][0] =
                    _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, x + r * lx + k), w0, acc[r][0]);
        }
        for (int r = 0; r < m; r++)
            y[r * ldy + n] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1])) +
                             (bias ? bias[n] : 0.0f);
    }
}
void sx_f16_to_f32_avx512(float *y, const void *xv, int64_t n) {
    const uint16_t *x = xv;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))));
    for (; i < n; i++) y[i] = sx_f16_to_f32(x[i]);
}

void sx_bf16_to_f32_avx512(float *y, const void *xv, int64_t n) {
    const uint16_t *x = xv;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_castsi512_ps(_mm512_slli_epi32(
                                    _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(x + i))), 16)));
    for (; i < n; i++) y[i] = sx_bf16_to_f32(x[i]);
}

/* float32 -> bfloat16, round to nearest even, NaN kept NaN (sx_f32_to_bf16) */
void sx_bf16_from_f32_avx512(void *yv, const float *x, int64_t n) {
    uint16_t *y = yv;
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
    const __m512i abs = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i qnan = _mm512_set1_epi32(0x40);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_castps_si512(_mm512_loadu_ps(x + i)), hi = _mm512_srli_epi32(u, 16);
        __m512i r = _mm512_srli_epi32(
            _mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(hi, one))), 16);
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, qnan));
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtepi32_epi16(r));
    }
    for (; i < n; i++) y[i] = sx_f32_to_bf16(x[i]);
}

static void softmax_row(float *x, int64_t n, float scale) {
    __m512 vm = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(x + i));
    float mx = _mm512_reduce_max_ps(vm);
    for (; i < n; i++)
        if (x[i] > mx) mx = x[i];
    __m512 sc = _mm512_set1_ps(scale), m = _mm512_set1_ps(mx * scale), s = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), sc), m));
        _mm512_storeu_ps(x + i, e);
        s = _mm512_add_ps(s, e);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp512(_mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), sc), m));
        _mm512_mask_storeu_ps(x + i, k, e);
        s = _mm512_add_ps(s, _mm512_maskz_mov_ps(k, e));
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(s));
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= _mm512_cvtss_f32(inv);
}

#define GEMV_FLOAT(name, TYPE)                                                                \
    void name(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,          \
              size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias) {              \
        gemv(y, ldy, x, ldx, m, w, ldw, n0, n1, K, bias, TYPE);                                \
    }
GEMV_FLOAT(sx_gemv_f32_avx512, SX_F32)
GEMV_FLOAT(sx_gemv_f16_avx512, SX_F16)
GEMV_FLOAT(sx_gemv_bf16_avx512, SX_BF16)

/* the row kernels (act_f32.h) on zmm registers */
#define V                    __m512
#define VL                   16
#define V_LOAD               _mm512_loadu_ps
#define V_STORE              _mm512_storeu_ps
#define V_SET1               _mm512_set1_ps
#define V_ADD                _mm512_add_ps
#define V_SUB                _mm512_sub_ps
#define V_MUL                _mm512_mul_ps
#define V_DIV                _mm512_div_ps
#define V_FMA                _mm512_fmadd_ps
#define V_MIN                _mm512_min_ps
#define V_NEG(x)             _mm512_sub_ps(_mm512_setzero_ps(), x)
#define V_ABS                _mm512_abs_ps
#define V_SEL_LT(x, y, a, b) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, y, _CMP_LT_OQ), b, a)
#define V_EXP                exp512_u
#define VD                   __m512d
#define VDL                  8
#define VD_ZERO              _mm512_setzero_pd
#define VD_SET1              _mm512_set1_pd
#define VD_ADD               _mm512_add_pd
#define VD_SUB               _mm512_sub_pd
#define VD_MUL               _mm512_mul_pd
#define VD_HSUM              _mm512_reduce_add_pd
#define VD_LOAD_PS(p)        _mm512_cvtps_pd(_mm256_loadu_ps(p))
#include "act_f32.h"

const sx_kernels sx_kernels_avx512 = {.name = "avx512",
                                      .mr = MR,
                                      .nr = NR,
                                      .ukr = ukr,
                                      .softmax_row = softmax_row,
                                      .ukr_x = ukr_x,
                                      .act_row = act_row,
                                      .epilogue_row = epilogue_row,
                                      .pack_a = pack_a,
                                      .layernorm_row = layernorm_row,
                                      .values_row = values_row};

/* ---- BF16 GEMM on float32 FMAs (AVX-512 CPUs without AVX512_BF16) ----
 * A in float32 panels (a[j][r][2], widened bfloat16), B in the tile layout:
 * a 64-byte row holds the k pair of 16 columns; its odd elements are the
 * high halves of the 32-bit words (mask), the even ones the low halves
 * (shift left 16). Per output: c += a1*b1, then c += a0*b0, one FMA each
 * (exact products) under DAZ|FTZ: vdpbf16ps's arithmetic. */
#define BMR 12
static inline __attribute__((always_inline)) void bf16_rows(int R, int64_t kp, const float *a,
                                                            const uint16_t *b, int64_t bstride,
                                                            float *c, int64_t ldc, int load_c) {
    __m512 acc[BMR][2];
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    #pragma GCC unroll 16
    for (int r = 0; r < R; r++)
        for (int h = 0; h < 2; h++)
            acc[r][h] = load_c ? _mm512_loadu_ps(c + r * ldc + 16 * h) : _mm512_setzero_ps();
    const uint16_t *b1 = b + bstride;
    for (int64_t j = 0; j < kp; j++) {
        __m512i w0 = _mm512_loadu_si512(b + 32 * j), w1 = _mm512_loadu_si512(b1 + 32 * j);
        __m512 o0 = _mm512_castsi512_ps(_mm512_and_si512(w0, hi));
        __m512 o1 = _mm512_castsi512_ps(_mm512_and_si512(w1, hi));
        #pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            __m512 av = _mm512_set1_ps(a[j * 2 * BMR + 2 * r + 1]);
            acc[r][0] = _mm512_fmadd_ps(av, o0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, o1, acc[r][1]);
        }
        __m512 e0 = _mm512_castsi512_ps(_mm512_slli_epi32(w0, 16));
        __m512 e1 = _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16));
        #pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            __m512 av = _mm512_set1_ps(a[j * 2 * BMR + 2 * r]);
            acc[r][0] = _mm512_fmadd_ps(av, e0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, e1, acc[r][1]);
        }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < R; r++)
        for (int h = 0; h < 2; h++) _mm512_storeu_ps(c + r * ldc + 16 * h, acc[r][h]);
}

static void bf16_ukr(int64_t kp, const void *a, int64_t lda, int rows, const uint16_t *b,
                     int64_t bstride, float *c, int64_t ldc, int load_c) {
    (void)lda;
    unsigned csr = sx_flush_denormals_begin();
    if (rows > 8)
        bf16_rows(BMR, kp, a, b, bstride, c, ldc, load_c);
    else if (rows > 4)
        bf16_rows(8, kp, a, b, bstride, c, ldc, load_c);
    else if (rows > 2)
        bf16_rows(4, kp, a, b, bstride, c, ldc, load_c);
    else if (rows > 1)
        bf16_rows(2, kp, a, b, bstride, c, ldc, load_c);
    else
        bf16_rows(1, kp, a, b, bstride, c, ldc, load_c);
    sx_flush_denormals_end(csr);
}

const sx_bf16_kernels sx_bf16_kernels_avx512 = {.name = "avx512-fma",
                                                .mr = BMR,
                                                .a_layout = SX_BF16_A_PANELS_F32,
                                                .kc = 128,
                                                .ukr = bf16_ukr};

/* 16 x 16 transposes of 32-bit words */
void sx_transpose16_u32_avx512(uint32_t *d, int64_t ldd, const uint32_t *s, int64_t lds,
                               int64_t n_words) {
    for (int64_t j0 = 0; j0 < n_words; j0 += 16) {
        __m512i r[16];
        _Pragma("GCC unroll 16") for (int n = 0; n < 16; n++) r[n] =
            _mm512_loadu_si512(s + n * lds + j0);
        transpose16_u32(r);
        _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++)
            _mm512_storeu_si512(d + (j0 + j) * ldd, r[j]);
    }
}
