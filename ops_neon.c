/* ops_neon.c - AArch64 Advanced SIMD (NEON) kernels (see ops_impl.h for what
 * each does): the sx_kernels table (GEMM micro-kernel, its variant on weight
 * panels packed at load in F32/F16/BF16, softmax row) and the float types'
 * GEMV and conversions named in wtype.c. NEON is part of the
 * base ARMv8-A ISA, so this file is built with no extra flags; the optional
 * extensions (dot product, FP16 arithmetic, BF16) are detected in simd.c
 * (sx_cpu_flags) and are not used here.
 *
 * GEMM micro-tile 12x8 (mr x nr): 24 accumulators (12 rows of C x 2
 * registers of 4 floats), 3 registers of A and 2 of B per k step: 29 of the
 * 32 vector registers. Every FMA multiplies a B register by one lane of an A
 * register (FMLA by element), so A needs no broadcasts: per k step 5 vector
 * loads feed 24 FMAs (192 flops). 8x12 uses the same registers, but nr must
 * divide the driver's 256-column blocks, and 8 also divides the attention
 * head dims (64, 104, 128, 512) so no edge tiles: 12 does neither. */
#include <arm_neon.h>
#include <math.h>

#define SX_NEON_F32_VEC /* the vector macros of ops_neon.h, for act_f32.h */
#include "half.h"
#include "ops_impl.h"
#include "ops_neon.h"

/* gcc's pre-allocation scheduler hoists every load of a GEMV step ahead of
 * the FMAs, which needs more than 32 registers and spills accumulators to
 * the stack on each iteration; out-of-order cores reorder anyway, so this
 * file keeps source order (no spills in any inner loop). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

#define MR 12
#define NR 8

/* (unformatted: clang-format breaks the unrolled macro rows apart) */
// clang-format off
static void ukr(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int load_c) {
#define LD(i)                                                                                  \
    float32x4_t c##i##l = load_c ? vld1q_f32(c + (i) * ldc) : vdupq_n_f32(0.0f);                \
    float32x4_t c##i##h = load_c ? vld1q_f32(c + (i) * ldc + 4) : vdupq_n_f32(0.0f);
    LD(0) LD(1) LD(2) LD(3) LD(4) LD(5) LD(6) LD(7) LD(8) LD(9) LD(10) LD(11)
#undef LD
    for (int64_t k = 0; k < kc; k++) {
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4);
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4), a2 = vld1q_f32(a + 8);
#define STEP(i, av, lane)                                                                      \
    c##i##l = vfmaq_laneq_f32(c##i##l, b0, av, lane);                                          \
    c##i##h = vfmaq_laneq_f32(c##i##h, b1, av, lane);
        STEP(0, a0, 0) STEP(1, a0, 1) STEP(2, a0, 2) STEP(3, a0, 3)
        STEP(4, a1, 0) STEP(5, a1, 1) STEP(6, a1, 2) STEP(7, a1, 3)
        STEP(8, a2, 0) STEP(9, a2, 1) STEP(10, a2, 2) STEP(11, a2, 3)
#undef STEP
        a += MR;
        b += NR;
    }
#define ST(i)                                                                                  \
    vst1q_f32(c + (i) * ldc, c##i##l);                                                         \
    vst1q_f32(c + (i) * ldc + 4, c##i##h);
    ST(0) ST(1) ST(2) ST(3) ST(4) ST(5) ST(6) ST(7) ST(8) ST(9) ST(10) ST(11)
#undef ST
}
// clang-format on

/* ---- weight rows as F32: 8 values at k in two registers ----
 * F16 by the FCVTL conversion (base ARMv8), BF16 by widening with a 16-bit
 * left shift (the bf16 bits are the top half of the f32); F16/BF16 rows may
 * sit at odd addresses in a file, so they are loaded as bytes. A quantized
 * type adds its own row kernel (see the note above sx_kernels_neon). */
static inline void load8(const void *w, int type, int64_t k, float32x4_t *lo, float32x4_t *hi) {
    if (type == SX_F32) {
        *lo = vld1q_f32((const float *)w + k);
        *hi = vld1q_f32((const float *)w + k + 4);
        return;
    }
    uint16x8_t h = vreinterpretq_u16_u8(vld1q_u8((const uint8_t *)w + 2 * k));
    if (type == SX_F16) {
        float16x8_t f = vreinterpretq_f16_u16(h);
        *lo = vcvt_f32_f16(vget_low_f16(f));
        *hi = vcvt_high_f32_f16(f);
    } else {
        *lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
        *hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
    }
}

/* one weight (the K % 16 tail), converted inline: no calls in the GEMV
 * functions, so the accumulators never cross one */
static inline float wval(const void *w, int type, int64_t k) {
    if (type == SX_F32) return ((const float *)w)[k];
    const uint8_t *p = (const uint8_t *)w + 2 * k;
    uint16x4_t h = vdup_n_u16((uint16_t)(p[0] | p[1] << 8));
    if (type == SX_F16) return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(h)), 0);
    return vgetq_lane_f32(vreinterpretq_f32_u32(vshll_n_u16(h, 16)), 0);
}

/* The GEMV loops below are written once and instantiated per weight type and
 * row count (both compile-time constants at each call in gemv()), so the
 * per-type loads are inlined and the unrolled accumulators stay in
 * registers. */
#define INLINE static inline __attribute__((always_inline))

/* ukr_x: B panels in F32/F16/BF16 (widened in registers as the GEMV rows
 * are), the first R rows of A (R a constant in each instance: 12, 8, 4, 2,
 * 1); per output the same FMAs in the same k order as ukr */
INLINE void ukr_rows(const int R, const int bt, int64_t kc, const float *a, const void *b, float *c,
                     int64_t ldc, int load_c) {
    float32x4_t acc[MR][2];
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
        acc[r][0] = load_c ? vld1q_f32(c + r * ldc) : vdupq_n_f32(0.0f);
        acc[r][1] = load_c ? vld1q_f32(c + r * ldc + 4) : vdupq_n_f32(0.0f);
    }
    for (int64_t k = 0; k < kc; k++) {
        float32x4_t b0, b1;
        load8(b, bt, k * NR, &b0, &b1);
#pragma GCC unroll 12
        for (int r = 0; r < R; r++) {
            acc[r][0] = vfmaq_n_f32(acc[r][0], b0, a[k * MR + r]);
            acc[r][1] = vfmaq_n_f32(acc[r][1], b1, a[k * MR + r]);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
        vst1q_f32(c + r * ldc, acc[r][0]);
        vst1q_f32(c + r * ldc + 4, acc[r][1]);
    }
}

#define UKR_TYPE(name, BT)                                                                         \
    static void name(int64_t kc, const float *a, const void *b, int rows, float *c, int64_t ldc,   \
                     int load_c) {                                                                 \
        if (rows > 8)                                                                              \
            ukr_rows(MR, BT, kc, a, b, c, ldc, load_c);                                            \
        else if (rows > 4)                                                                         \
            ukr_rows(8, BT, kc, a, b, c, ldc, load_c);                                             \
        else if (rows > 2)                                                                         \
            ukr_rows(4, BT, kc, a, b, c, ldc, load_c);                                             \
        else if (rows > 1)                                                                         \
            ukr_rows(2, BT, kc, a, b, c, ldc, load_c);                                             \
        else                                                                                       \
            ukr_rows(1, BT, kc, a, b, c, ldc, load_c);                                             \
    }
UKR_TYPE(ukr_f32, SX_F32)
UKR_TYPE(ukr_f16, SX_F16)
UKR_TYPE(ukr_bf16, SX_BF16)

static void ukr_x(int64_t kc, const float *a, const void *b, int btype, int rows, float *c,
                  int64_t ldc, int load_c) {
    if (btype == SX_F32 && rows == MR)
        ukr(kc, a, b, c, ldc, load_c);
    else if (btype == SX_F32)
        ukr_f32(kc, a, b, rows, c, ldc, load_c);
    else if (btype == SX_F16)
        ukr_f16(kc, a, b, rows, c, ldc, load_c);
    else
        ukr_bf16(kc, a, b, rows, c, ldc, load_c);
}

/* Sum of the 8 lanes of (lo, hi) in the order of the AVX2 path's
 * horizontal sum (hsum in ops_avx2.c), so the two paths give the same bits. */
static inline float hsum8(float32x4_t lo, float32x4_t hi) {
    float32x4_t u = vaddq_f32(lo, hi);
    return vpadds_f32(vadd_f32(vget_low_f32(u), vget_high_f32(u)));
}

/* A row's 16 partial sums (q0..q3: k % 16 in 0-3, 4-7, 8-11, 12-15) as the
 * AVX2 path adds its two 8-lane accumulators. */
static inline float sum16(float32x4_t q0, float32x4_t q1, float32x4_t q2, float32x4_t q3) {
    return hsum8(vaddq_f32(q0, q2), vaddq_f32(q1, q3));
}

/* One row of X against 4 rows of W (four weight streams in flight), 16
 * columns per step into 4 accumulators per row. Same summation order as the
 * AVX2 path. */
INLINE void gemv1x4_t(float *y, const float *x, const void *w, const int type, size_t ldw,
                      int64_t n, int64_t K, const float *bias) {
    const char *r[4];
    for (int j = 0; j < 4; j++) r[j] = (const char *)w + (size_t)(n + j) * ldw;
    float32x4_t acc[4][4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = vdupq_n_f32(0.0f);
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) { /* columns k + 8h .. k + 8h + 7 */
            float32x4_t x0 = vld1q_f32(x + k + 8 * h), x1 = vld1q_f32(x + k + 8 * h + 4);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                float32x4_t w0, w1;
                load8(r[j], type, k + 8 * h, &w0, &w1);
                acc[j][2 * h] = vfmaq_f32(acc[j][2 * h], x0, w0);
                acc[j][2 * h + 1] = vfmaq_f32(acc[j][2 * h + 1], x1, w1);
            }
        }
    }
    float s[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) s[j] = sum16(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
    for (int j = 0; j < 4; j++) {
        for (int64_t kk = k; kk < K; kk++) s[j] += x[kk] * wval(r[j], type, kk);
        y[n + j] = s[j] + (bias ? bias[n + j] : 0.0f);
    }
}

/* m rows of X against one row of W at a time: the weights are converted
 * once for all m rows; 16 partial sums per row as above. */
INLINE void gemv_t(float *y, int64_t ldy, const float *x, int64_t ldx, const int m, const void *w,
                   const int type, size_t ldw, int64_t n0, int64_t n1, int64_t K,
                   const float *bias) {
    if (m == 1 && SX_GEMV_1X4(K, type))
        for (; n0 + 4 <= n1; n0 += 4) gemv1x4_t(y, x, w, type, ldw, n0, K, bias);
    for (int64_t n = n0; n < n1; n++) {
        const char *wr = (const char *)w + (size_t)n * ldw;
        float32x4_t acc[SX_GEMV_MAX_M][4];
#pragma GCC unroll 4
        for (int r = 0; r < m; r++)
            acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = vdupq_n_f32(0.0f);
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
            float32x4_t w0, w1, w2, w3;
            load8(wr, type, k, &w0, &w1);
            load8(wr, type, k + 8, &w2, &w3);
#pragma GCC unroll 4
            for (int r = 0; r < m; r++) {
                const float *xr = x + r * ldx + k;
                acc[r][0] = vfmaq_f32(acc[r][0], vld1q_f32(xr), w0);
                acc[r][1] = vfmaq_f32(acc[r][1], vld1q_f32(xr + 4), w1);
                acc[r][2] = vfmaq_f32(acc[r][2], vld1q_f32(xr + 8), w2);
                acc[r][3] = vfmaq_f32(acc[r][3], vld1q_f32(xr + 12), w3);
            }
        }
        float s[SX_GEMV_MAX_M];
#pragma GCC unroll 4
        for (int r = 0; r < m; r++) s[r] = sum16(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
        for (int r = 0; r < m; r++) {
            for (int64_t kk = k; kk < K; kk++) s[r] += x[r * ldx + kk] * wval(wr, type, kk);
            y[r * ldy + n] = s[r] + (bias ? bias[n] : 0.0f);
        }
    }
}

/* One exported GEMV per weight type (wtype.c's table), each with the row
 * count made a constant so every loop above is unrolled for it. x holds
 * float32 rows ldx bytes apart. */
INLINE void gemv_m(float *y, int64_t ldy, const void *xv, size_t ldx, int m, const void *w,
                   size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias,
                   const int type) {
    const float *x = xv;
    int64_t lx = (int64_t)(ldx / sizeof(float));
    switch (m) {
    case 1: gemv_t(y, ldy, x, lx, 1, w, type, ldw, n0, n1, K, bias); break;
    case 2: gemv_t(y, ldy, x, lx, 2, w, type, ldw, n0, n1, K, bias); break;
    case 3: gemv_t(y, ldy, x, lx, 3, w, type, ldw, n0, n1, K, bias); break;
    default: gemv_t(y, ldy, x, lx, 4, w, type, ldw, n0, n1, K, bias); break;
    }
}
#define GEMV_FLOAT(name, TYPE)                                                                     \
    void name(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w, size_t ldw,  \
              int64_t n0, int64_t n1, int64_t K, const float *bias) {                              \
        gemv_m(y, ldy, x, ldx, m, w, ldw, n0, n1, K, bias, TYPE);                                  \
    }
GEMV_FLOAT(sx_gemv_f32_neon, SX_F32)
GEMV_FLOAT(sx_gemv_f16_neon, SX_F16)
GEMV_FLOAT(sx_gemv_bf16_neon, SX_BF16)

/* F16 / BF16 -> F32, 8 values per step (the tail converted the same way) */
INLINE void to_f32_t(float *y, const void *x, int64_t n, const int type) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t lo, hi;
        load8(x, type, i, &lo, &hi);
        vst1q_f32(y + i, lo);
        vst1q_f32(y + i + 4, hi);
    }
    for (; i < n; i++) y[i] = wval(x, type, i);
}
void sx_f16_to_f32_neon(float *y, const void *x, int64_t n) {
    to_f32_t(y, x, n, SX_F16);
}
void sx_bf16_to_f32_neon(float *y, const void *x, int64_t n) {
    to_f32_t(y, x, n, SX_BF16);
}

/* float32 -> bfloat16, round to nearest even, NaN kept NaN (sx_f32_to_bf16):
 * u + 0x7fff + (bit 16 of u), top half; a NaN gets its quiet bit instead */
void sx_bf16_from_f32_neon(void *yv, const float *x, int64_t n) {
    uint16_t *y = yv;
    const uint32x4_t bias = vdupq_n_u32(0x7fff), one = vdupq_n_u32(1);
    const uint32x4_t inf = vdupq_n_u32(0x7f800000), qnan = vdupq_n_u32(0x40);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x4_t h[2];
        for (int j = 0; j < 2; j++) {
            uint32x4_t u = vreinterpretq_u32_f32(vld1q_f32(x + i + 4 * j)), hi = vshrq_n_u32(u, 16);
            uint32x4_t r = vshrq_n_u32(vaddq_u32(u, vaddq_u32(bias, vandq_u32(hi, one))), 16);
            uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffff)), inf);
            h[j] = vmovn_u32(vbslq_u32(nan, vorrq_u32(hi, qnan), r));
        }
        vst1q_u16(y + i, vcombine_u16(h[0], h[1]));
    }
    for (; i < n; i++) y[i] = sx_f32_to_bf16(x[i]);
}

/* 8 values per step in two registers, summed like the AVX2 path's 8 lanes
 * (the exps are the same bits too): the rows come out identical. */
static void softmax_row(float *x, int64_t n, float scale) {
    float32x4_t vm = vdupq_n_f32(-INFINITY);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vm = vmaxq_f32(vm, vld1q_f32(x + i));
    float mx = vmaxvq_f32(vm);
    for (; i < n; i++)
        if (x[i] > mx) mx = x[i];
    float32x4_t sc = vdupq_n_f32(scale), m = vdupq_n_f32(mx * scale);
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
    for (i = 0; i + 8 <= n; i += 8) {
        float32x4_t e0 = exp4(vsubq_f32(vmulq_f32(vld1q_f32(x + i), sc), m));
        float32x4_t e1 = exp4(vsubq_f32(vmulq_f32(vld1q_f32(x + i + 4), sc), m));
        vst1q_f32(x + i, e0);
        vst1q_f32(x + i + 4, e1);
        s0 = vaddq_f32(s0, e0);
        s1 = vaddq_f32(s1, e1);
    }
    float t = hsum8(s0, s1);
    for (; i < n; i++) {
        x[i] = expf(x[i] * scale - mx * scale);
        t += x[i];
    }
    float inv = 1.0f / t;
    for (i = 0; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), inv));
    for (; i < n; i++) x[i] *= inv;
}

/* ---- BF16 GEMM on float32 FMAs (compute type BF16; ops_impl.h) ----
 * A in float32 panels (a[j][r][2], widened bfloat16), B in the tile layout:
 * a 64-byte row holds the k pair of 16 columns; the odd elements are the
 * high halves of its 32-bit words (mask), the even ones the low halves
 * (shift left 16). Per output c += a1*b1, then c += a0*b0, one FMA each
 * (exact products) with FPCR.FZ set: the arithmetic of the scalar reference
 * and of the x86 kernels. 6 rows x 16 columns at a time (24 accumulators,
 * 4 B registers), the two panels one after the other. The BF16 extension's
 * BFDOT/BFMMLA are not used: their sums round differently. */
#define BMR 6
INLINE void bf16_panel(const int R, int64_t kp, const float *a, const uint16_t *b, float *c,
                       int64_t ldc, int load_c) {
    float32x4_t acc[BMR][4];
    const uint32x4_t hi = vdupq_n_u32(0xffff0000u);
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++)
            acc[r][q] = load_c ? vld1q_f32(c + r * ldc + 4 * q) : vdupq_n_f32(0.0f);
    for (int64_t j = 0; j < kp; j++) {
        const uint32_t *bj = (const uint32_t *)(b + 32 * j);
        const float *aj = a + j * 2 * BMR;
        float32x4_t w[4];
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++)
            w[q] = vreinterpretq_f32_u32(vandq_u32(vld1q_u32(bj + 4 * q), hi));
#pragma GCC unroll 6
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) acc[r][q] = vfmaq_n_f32(acc[r][q], w[q], aj[2 * r + 1]);
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++)
            w[q] = vreinterpretq_f32_u32(vshlq_n_u32(vld1q_u32(bj + 4 * q), 16));
#pragma GCC unroll 6
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) acc[r][q] = vfmaq_n_f32(acc[r][q], w[q], aj[2 * r]);
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) vst1q_f32(c + r * ldc + 4 * q, acc[r][q]);
}

/* the two 16-column panels one after the other (R a constant in each call) */
static void bf16_ukr(int64_t kp, const void *a, int64_t lda, int rows, const uint16_t *b,
                     int64_t bstride, float *c, int64_t ldc, int load_c) {
    (void)lda;
    unsigned csr = sx_flush_denormals_begin();
    for (int h = 0; h < 2; h++, b += bstride, c += 16) {
        if (rows > 4)
            bf16_panel(BMR, kp, a, b, c, ldc, load_c);
        else if (rows > 2)
            bf16_panel(4, kp, a, b, c, ldc, load_c);
        else if (rows > 1)
            bf16_panel(2, kp, a, b, c, ldc, load_c);
        else
            bf16_panel(1, kp, a, b, c, ldc, load_c);
    }
    sx_flush_denormals_end(csr);
}

const sx_bf16_kernels sx_bf16_kernels_neon = {
    .name = "neon-fma", .mr = BMR, .a_layout = SX_BF16_A_PANELS_F32, .kc = 128, .ukr = bf16_ukr};

/* the row kernels (act_f32.h) on q registers (V macros: ops_neon.h), LayerNorm's
 * double sums on float64x2 */
#define VD                   float64x2_t
#define VDL                  2
#define VD_ZERO()            vdupq_n_f64(0.0)
#define VD_SET1              vdupq_n_f64
#define VD_ADD               vaddq_f64
#define VD_SUB               vsubq_f64
#define VD_MUL               vmulq_f64
#define VD_HSUM              vaddvq_f64
#define VD_LOAD_PS(p)        vcvt_f64_f32(vld1_f32(p))
#include "act_f32.h"

/* Quantized weights (Q8_0/Q4_0/Q4_K) get their row kernels here as
 * sx_gemv_<type>_neon, named in wtype.c's NEON column: x arrives quantized
 * to the entry's act_type (Q8_0 / Q8_K blocks), a block's products are summed
 * in int32 with vdotq_s32 where sx_cpu_flags() has SX_CPU_DOTPROD (that code
 * built with -march=armv8.2-a+dotprod, in its own file) and with
 * vmull_s8/vpadalq_s16 otherwise, then scaled in float per block. */
const sx_kernels sx_kernels_neon = {.name = "neon",
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
