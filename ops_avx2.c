/* ops_avx2.c - AVX2+FMA+F16C kernels (see ops_impl.h for what each does).
 * GEMM micro-tile 6x16: 12 ymm accumulators. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "half.h"
#include "ops_impl.h"
#include "ops_avx2.h"

#define MR 6
#define NR 16

static void ukr(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int load_c) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
#define LD(i, r0, r1)                                                                        \
    r0 = load_c ? _mm256_loadu_ps(c + (i) * ldc) : _mm256_setzero_ps();                      \
    r1 = load_c ? _mm256_loadu_ps(c + (i) * ldc + 8) : _mm256_setzero_ps();
    LD(0, c00, c01) LD(1, c10, c11) LD(2, c20, c21) LD(3, c30, c31) LD(4, c40, c41)
    LD(5, c50, c51)
#undef LD
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), av;
#define STEP(i, r0, r1)                                                                      \
    av = _mm256_broadcast_ss(a + i);                                                         \
    r0 = _mm256_fmadd_ps(av, b0, r0);                                                        \
    r1 = _mm256_fmadd_ps(av, b1, r1);
        STEP(0, c00, c01) STEP(1, c10, c11) STEP(2, c20, c21) STEP(3, c30, c31)
        STEP(4, c40, c41) STEP(5, c50, c51)
#undef STEP
        a += MR;
        b += NR;
    }
#define ST(i, r0, r1)                                                                        \
    _mm256_storeu_ps(c + (i) * ldc, r0);                                                     \
    _mm256_storeu_ps(c + (i) * ldc + 8, r1);
    ST(0, c00, c01) ST(1, c10, c11) ST(2, c20, c21) ST(3, c30, c31) ST(4, c40, c41)
    ST(5, c50, c51)
#undef ST
}

/* ukr_x: B panels in F32/F16/BF16 (widened in registers), the first R rows
 * of A (R a constant in each instance: 6, 4, 2, 1). */
static inline __attribute__((always_inline)) __m256 ldb(const void *b, int bt, int64_t off) {
    if (bt == SX_F32) return _mm256_loadu_ps((const float *)b + off);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)b + off));
    if (bt == SX_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline __attribute__((always_inline)) void ukr_rows(int R, int bt, int64_t kc, const float *a,
                                                           const void *b, float *c, int64_t ldc,
                                                           int load_c) {
    __m256 acc[MR][2];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        acc[r][0] = load_c ? _mm256_loadu_ps(c + r * ldc) : _mm256_setzero_ps();
        acc[r][1] = load_c ? _mm256_loadu_ps(c + r * ldc + 8) : _mm256_setzero_ps();
    }
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = ldb(b, bt, k * NR), b1 = ldb(b, bt, k * NR + 8);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            __m256 av = _mm256_broadcast_ss(a + k * MR + r);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        _mm256_storeu_ps(c + r * ldc, acc[r][0]);
        _mm256_storeu_ps(c + r * ldc + 8, acc[r][1]);
    }
}

#define UKR_TYPE(name, BT)                                                                    \
    static void name(int64_t kc, const float *a, const void *b, int rows, float *c, int64_t ldc, \
                     int load_c) {                                                            \
        if (rows > 4) ukr_rows(MR, BT, kc, a, b, c, ldc, load_c);                             \
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

static inline __m256 load8(const void *w, int type, int64_t k) {
    if (type == SX_F32) return _mm256_loadu_ps((const float *)w + k);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + k));
    if (type == SX_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float wval(const void *w, int type, int64_t k) {
    if (type == SX_F32) return ((const float *)w)[k];
    if (type == SX_F16) return sx_f16_to_f32(((const uint16_t *)w)[k]);
    return sx_bf16_to_f32(((const uint16_t *)w)[k]);
}

/* One row of X against 4 rows of W at a time (four weight streams in flight). */
static inline void gemv1x4(float *y, const float *x, const void *w, int type, size_t ldw, int64_t n,
                           int64_t K, const float *bias) {
    const char *r[4];
    for (int j = 0; j < 4; j++) r[j] = (const char *)w + (size_t)(n + j) * ldw;
    /* two accumulators per row (16 partial sums, as the general path) */
    __m256 a[4][2];
    for (int j = 0; j < 4; j++) a[j][0] = a[j][1] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
        for (int j = 0; j < 4; j++) {
            a[j][0] = _mm256_fmadd_ps(x0, load8(r[j], type, k), a[j][0]);
            a[j][1] = _mm256_fmadd_ps(x1, load8(r[j], type, k + 8), a[j][1]);
        }
    }
    float s[4];
    for (int j = 0; j < 4; j++) s[j] = hsum(_mm256_add_ps(a[j][0], a[j][1]));
    for (int j = 0; j < 4; j++) {
        for (int64_t kk = k; kk < K; kk++) s[j] += x[kk] * wval(r[j], type, kk);
        y[n + j] = s[j] + (bias ? bias[n + j] : 0.0f);
    }
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
        __m256 acc[SX_GEMV_MAX_M][2];
        for (int r = 0; r < m; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
            __m256 w0 = load8(wr, type, k), w1 = load8(wr, type, k + 8);
            for (int r = 0; r < m; r++) {
                acc[r][0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * lx + k), w0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * lx + k + 8), w1, acc[r][1]);
            }
        }
        for (int r = 0; r < m; r++) {
            float s = hsum(_mm256_add_ps(acc[r][0], acc[r][1]));
            for (int64_t kk = k; kk < K; kk++) s += x[r * lx + kk] * wval(wr, type, kk);
            y[r * ldy + n] = s + (bias ? bias[n] : 0.0f);
        }
    }
}
void sx_f16_to_f32_avx2(float *y, const void *xv, int64_t n) {
    const uint16_t *x = xv;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) y[i] = sx_f16_to_f32(x[i]);
}

/* float32 -> bfloat16, round to nearest even, NaN kept NaN (sx_f32_to_bf16) */
void sx_bf16_from_f32_avx2(void *yv, const float *x, int64_t n) {
    uint16_t *y = yv;
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    const __m256i abs = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i qnan = _mm256_set1_epi32(0x40);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i r2[2];
        for (int h = 0; h < 2; h++) {
            __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i + 8 * h)), hi = _mm256_srli_epi32(u, 16);
            __m256i r = _mm256_srli_epi32(
                _mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(hi, one))), 16);
            __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs), inf); /* both >= 0 */
            r2[h] = _mm256_blendv_epi8(r, _mm256_or_si256(hi, qnan), nan);
        }
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r2[0], r2[1]), 0xd8);
        _mm256_storeu_si256((__m256i *)(y + i), p);
    }
    for (; i < n; i++) y[i] = sx_f32_to_bf16(x[i]);
}

void sx_bf16_to_f32_avx2(float *y, const void *xv, int64_t n) {
    const uint16_t *x = xv;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(
                                    _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i))), 16)));
    for (; i < n; i++) y[i] = sx_bf16_to_f32(x[i]);
}

static void softmax_row(float *x, int64_t n, float scale) {
    __m256 vm = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(vm), _mm256_extractf128_ps(vm, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float mx = _mm_cvtss_f32(h);
    for (; i < n; i++)
        if (x[i] > mx) mx = x[i];
    __m256 sc = _mm256_set1_ps(scale), m = _mm256_set1_ps(mx * scale), s = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sc), m));
        _mm256_storeu_ps(x + i, e);
        s = _mm256_add_ps(s, e);
    }
    float t = hsum(s);
    for (; i < n; i++) {
        x[i] = expf(x[i] * scale - mx * scale);
        t += x[i];
    }
    float inv = 1.0f / t;
    __m256 vi = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vi));
    for (; i < n; i++) x[i] *= inv;
}

#define GEMV_FLOAT(name, TYPE)                                                                \
    void name(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,          \
              size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias) {              \
        gemv(y, ldy, x, ldx, m, w, ldw, n0, n1, K, bias, TYPE);                                \
    }
GEMV_FLOAT(sx_gemv_f32_avx2, SX_F32)
GEMV_FLOAT(sx_gemv_f16_avx2, SX_F16)
GEMV_FLOAT(sx_gemv_bf16_avx2, SX_BF16)

/* sum of the 4 doubles of v */
static inline double hsum_pd(__m256d v) {
    __m128d l = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(l, _mm_unpackhi_pd(l, l)));
}

/* X rows [0, rows) (row stride ldx) -> dst[K][MR], rows past `rows` zero:
 * 8x8 transposes (rows MR.. zero). Each column is stored as 8 floats, its
 * last 8 - MR spilling into the next column's start, which the next store
 * rewrites (masked stores are slow on AMD); the panel's last column is
 * copied exactly. */
#define ACT_F32_OWN_PACK_A
static void pack_a(float *dst, const float *x, int64_t ldx, int rows, int mr, int64_t K) {
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 v[8];
        for (int i = 0; i < 8; i++)
            v[i] = i < rows ? _mm256_loadu_ps(x + i * ldx + k) : _mm256_setzero_ps();
        transpose8(v);
        for (int i = 0; i < 7; i++) _mm256_storeu_ps(dst + (k + i) * mr, v[i]);
        if (k + 8 < K) {
            _mm256_storeu_ps(dst + (k + 7) * mr, v[7]);
        } else {
            float t[8];
            _mm256_storeu_ps(t, v[7]);
            memcpy(dst + (k + 7) * mr, t, sizeof(float) * (size_t)mr);
        }
    }
    for (; k < K; k++)
        for (int r = 0; r < mr; r++) dst[k * mr + r] = r < rows ? x[r * ldx + k] : 0.0f;
}

/* the row kernels (act_f32.h) on ymm registers */
#define V                    __m256
#define VL                   8
#define V_LOAD               _mm256_loadu_ps
#define V_STORE              _mm256_storeu_ps
#define V_SET1               _mm256_set1_ps
#define V_ADD                _mm256_add_ps
#define V_SUB                _mm256_sub_ps
#define V_MUL                _mm256_mul_ps
#define V_DIV                _mm256_div_ps
#define V_FMA                _mm256_fmadd_ps
#define V_MIN                _mm256_min_ps
#define V_NEG(x)             _mm256_sub_ps(_mm256_setzero_ps(), x)
#define V_ABS(x)             _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)
#define V_SEL_LT(x, y, a, b) _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, y, _CMP_LT_OQ))
#define V_EXP                exp256
#define VD                   __m256d
#define VDL                  4
#define VD_ZERO              _mm256_setzero_pd
#define VD_SET1              _mm256_set1_pd
#define VD_ADD               _mm256_add_pd
#define VD_SUB               _mm256_sub_pd
#define VD_MUL               _mm256_mul_pd
#define VD_HSUM(v)           hsum_pd(v)
#define VD_LOAD_PS(p)        _mm256_cvtps_pd(_mm_loadu_ps(p))
#include "act_f32.h"

const sx_kernels sx_kernels_avx2 = {.name = "avx2",
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

/* ---- BF16 GEMM on float32 FMAs ----
 * A in float32 panels (a[j][r][2], widened bfloat16), B in the tile layout:
 * a 64-byte row holds the k pair of 16 columns; its odd elements are the
 * high halves of the 32-bit words (mask), the even ones the low halves
 * (shift left 16). Per output: c += a1*b1, then c += a0*b0, one FMA each
 * (exact products) under DAZ|FTZ: vdpbf16ps's arithmetic. 6 rows x 16
 * columns at a time (12 accumulators), the two panels one after the other. */
#define BMR 6
static inline __attribute__((always_inline)) void bf16_panel(int R, int64_t kp, const float *a,
                                                             const uint16_t *b, float *c,
                                                             int64_t ldc, int load_c) {
    __m256 acc[BMR][2];
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    #pragma GCC unroll 16
    for (int r = 0; r < R; r++)
        for (int h = 0; h < 2; h++)
            acc[r][h] = load_c ? _mm256_loadu_ps(c + r * ldc + 8 * h) : _mm256_setzero_ps();
    for (int64_t j = 0; j < kp; j++) {
        const __m256i *bj = (const __m256i *)(b + 32 * j);
        __m256 o0 = _mm256_castsi256_ps(_mm256_and_si256(_mm256_loadu_si256(bj), hi));
        __m256 o1 = _mm256_castsi256_ps(_mm256_and_si256(_mm256_loadu_si256(bj + 1), hi));
        #pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            __m256 av = _mm256_broadcast_ss(a + j * 2 * BMR + 2 * r + 1);
            acc[r][0] = _mm256_fmadd_ps(av, o0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, o1, acc[r][1]);
        }
        __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_loadu_si256(bj), 16));
        __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_loadu_si256(bj + 1), 16));
        #pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            __m256 av = _mm256_broadcast_ss(a + j * 2 * BMR + 2 * r);
            acc[r][0] = _mm256_fmadd_ps(av, e0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, e1, acc[r][1]);
        }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < R; r++)
        for (int h = 0; h < 2; h++) _mm256_storeu_ps(c + r * ldc + 8 * h, acc[r][h]);
}

static inline __attribute__((always_inline)) void bf16_rows(int R, int64_t kp, const float *a,
                                                            const uint16_t *b, int64_t bstride,
                                                            float *c, int64_t ldc, int load_c) {
    bf16_panel(R, kp, a, b, c, ldc, load_c);
    bf16_panel(R, kp, a, b + bstride, c + 16, ldc, load_c);
}

static void bf16_ukr(int64_t kp, const void *a, int64_t lda, int rows, const uint16_t *b,
                     int64_t bstride, float *c, int64_t ldc, int load_c) {
    (void)lda;
    unsigned csr = sx_flush_denormals_begin();
    if (rows > 4)
        bf16_rows(BMR, kp, a, b, bstride, c, ldc, load_c);
    else if (rows > 2)
        bf16_rows(4, kp, a, b, bstride, c, ldc, load_c);
    else if (rows > 1)
        bf16_rows(2, kp, a, b, bstride, c, ldc, load_c);
    else
        bf16_rows(1, kp, a, b, bstride, c, ldc, load_c);
    sx_flush_denormals_end(csr);
}

const sx_bf16_kernels sx_bf16_kernels_avx2 = {
    .name = "avx2-fma", .mr = BMR, .a_layout = SX_BF16_A_PANELS_F32, .kc = 128, .ukr = bf16_ukr};
