/* quant_neon.c - NEON integer GEMV of the Q8_0 and Q4_0 weight types
 * (quant.h) against Q8_0 activations. A block's 32 products are summed in
 * int32, exactly: with SDOT (vdotq_s32) when the CPU has the dot-product
 * extension (sx_simd_vnni(): hwcap asimddp, SEEDX_VNNI=0 switches it off),
 * otherwise with widening multiplies (vmull_s8, |product| <= 2^14) and
 * pairwise accumulation into int32 (vpadalq_s16). The float part is
 * quant.c's: per block, in block order, s += (float)isum * (dw * da), so
 * both variants give the scalar reference's bits. Q4_K and the
 * dequantization / activation quantizers use the scalar kernels (wtype.c's
 * NEON column leaves them NULL). */
#include <arm_neon.h>
#include <string.h>

#include "half.h"
#include "ops_impl.h"
#include "quant.h"

#if defined(__clang__)
#define DOTPROD __attribute__((target("dotprod")))
#else
#define DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif
#define INLINE static inline __attribute__((always_inline))

static inline float f16at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return sx_f16_to_f32(h);
}

/* The 32 codes of a weight block as two int8x16: Q8_0 as stored; Q4_0 the
 * low nibbles (values 0..15) and the high ones (16..31), minus 8. */
INLINE void codes(const uint8_t *q, const int Q4, int8x16_t *c0, int8x16_t *c1) {
    if (Q4) {
        uint8x16_t v = vld1q_u8(q);
        *c0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(15))), vdupq_n_s8(8));
        *c1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), vdupq_n_s8(8));
    } else {
        *c0 = vld1q_s8((const int8_t *)q);
        *c1 = vld1q_s8((const int8_t *)q + 16);
    }
}

DOTPROD INLINE int32_t dot32_sdot(int8x16_t w0, int8x16_t w1, const int8_t *a) {
    int32x4_t s = vdotq_s32(vdupq_n_s32(0), w0, vld1q_s8(a));
    return vaddvq_s32(vdotq_s32(s, w1, vld1q_s8(a + 16)));
}

INLINE int32_t dot32_plain(int8x16_t w0, int8x16_t w1, const int8_t *a) {
    int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
    int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(w0), vget_low_s8(a0)));
    s = vpadalq_s16(s, vmull_high_s8(w0, a0));
    s = vpadalq_s16(s, vmull_s8(vget_low_s8(w1), vget_low_s8(a1)));
    return vaddvq_s32(vpadalq_s16(s, vmull_high_s8(w1, a1)));
}

/* y[r][n] = bias[n] + sum over blocks b (in order) of isum_b * (dw_b * da_b)
 * for rows r < m of x, weight rows [n0, n1) */
#define GEMV_Q32(name, ATTR, DOT)                                                                  \
    ATTR static void name(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,  \
                          size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias,        \
                          const int Q4) {                                                          \
        const size_t wb = Q4 ? SX_Q4_0_BYTES : SX_Q8_0_BYTES;                                      \
        const int64_t nb = K / SX_QK;                                                              \
        for (int64_t n = n0; n < n1; n++) {                                                        \
            const uint8_t *wr = (const uint8_t *)w + (size_t)n * ldw;                              \
            for (int r = 0; r < m; r++) {                                                          \
                const uint8_t *a = (const uint8_t *)x + (size_t)r * ldx;                           \
                float s = 0.0f;                                                                    \
                for (int64_t b = 0; b < nb; b++) {                                                 \
                    const uint8_t *wp = wr + (size_t)b * wb, *ap = a + (size_t)b * SX_Q8_0_BYTES;  \
                    int8x16_t c0, c1;                                                              \
                    codes(wp + 2, Q4, &c0, &c1);                                                   \
                    int32_t i = DOT(c0, c1, (const int8_t *)(ap + 2));                             \
                    s += (float)i * (f16at(wp) * f16at(ap));                                       \
                }                                                                                  \
                y[r * ldy + n] = s + (bias ? bias[n] : 0.0f);                                      \
            }                                                                                      \
        }                                                                                          \
    }
GEMV_Q32(gemv_q32_sdot, DOTPROD, dot32_sdot)
GEMV_Q32(gemv_q32_plain, , dot32_plain)

/* the entries of wtype.c's NEON column: Q8_0 (Q4 = 0) and Q4_0 (Q4 = 1) */
#define GEMV_ENTRY(name, Q4)                                                                       \
    void name(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w, size_t ldw,  \
              int64_t n0, int64_t n1, int64_t K, const float *bias) {                              \
        (sx_simd_vnni() ? gemv_q32_sdot : gemv_q32_plain)(y, ldy, x, ldx, m, w, ldw, n0, n1, K,    \
                                                          bias, Q4);                               \
    }
GEMV_ENTRY(sx_gemv_q8_0_neon, 0)
GEMV_ENTRY(sx_gemv_q4_0_neon, 1)
