/* ops_neon.h - NEON helpers shared by the aarch64 kernel files (ops_neon.c,
 * attn_neon.c, conv_neon.c): the vector exp and blocked transposes. */
#ifndef SEEDX_OPS_NEON_H
#define SEEDX_OPS_NEON_H

#include <arm_neon.h>
#include <stdint.h>

/* exp(x) for x <= 88 (the softmax after max subtraction, SiLU's exp(-v)
 * capped at 88), the method of the x86 paths: Cody-Waite reduction
 * x = n ln2 + r (ln2 split in two), degree-6 polynomial for e^r, times 2^n
 * built in the exponent bits (n in [-126, 127]); exact 0 below -87.3. */
static inline float32x4_t exp4(float32x4_t x) {
    const float32x4_t lo = vdupq_n_f32(-87.3f);
    uint32x4_t under = vcltq_f32(x, lo);
    x = vmaxq_f32(x, lo);
    float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23);
    float32x4_t res = vmulq_f32(p, vreinterpretq_f32_s32(e));
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(res), under));
}

/* In-register transpose of the 4x4 block r[0..3]. */
static inline void transpose4(float32x4_t r[4]) {
    float32x4_t t0 = vtrn1q_f32(r[0], r[1]), t1 = vtrn2q_f32(r[0], r[1]);
    float32x4_t t2 = vtrn1q_f32(r[2], r[3]), t3 = vtrn2q_f32(r[2], r[3]);
    r[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    r[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
    r[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    r[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
}

/* dst[c][r] (row stride ldd) = r < nr ? src[r][c] * (sc ? sc[c] : 1) : 0
 * for r < rows, c < cols (src row stride lds): 4x4 blocks in registers,
 * scalar edges (the same products: one multiply or none). The interface of
 * ops_avx2.h's transpose_scaled, which attn_f32.h and conv_f32.h call. */
static inline void transpose_scaled(float *dst, int64_t ldd, const float *src, int64_t lds,
                                    int rows, int nr, int cols, const float *sc) {
    int r0 = 0;
    for (; r0 + 4 <= rows; r0 += 4) {
        int c0 = 0;
        for (; c0 + 4 <= cols; c0 += 4) {
            float32x4_t v[4], s = sc ? vld1q_f32(sc + c0) : vdupq_n_f32(1.0f);
            for (int i = 0; i < 4; i++)
                v[i] = r0 + i < nr ? vmulq_f32(vld1q_f32(src + (r0 + i) * lds + c0), s)
                                   : vdupq_n_f32(0.0f);
            transpose4(v);
            for (int i = 0; i < 4; i++) vst1q_f32(dst + (c0 + i) * ldd + r0, v[i]);
        }
        for (int c = c0; c < cols; c++)
            for (int r = r0; r < r0 + 4; r++)
                dst[c * ldd + r] = r < nr ? src[r * lds + c] * (sc ? sc[c] : 1.0f) : 0.0f;
    }
    for (int c = 0; c < cols; c++)
        for (int r = r0; r < rows; r++)
            dst[c * ldd + r] = r < nr ? src[r * lds + c] * (sc ? sc[c] : 1.0f) : 0.0f;
}

/* The vector macros of attn_f32.h, conv_f32.h and act_f32.h on q registers,
 * for the files that define SX_NEON_F32_VEC before including this header. */
#ifdef SX_NEON_F32_VEC
#define V              float32x4_t
#define VL             4
#define V_LOAD         vld1q_f32
#define V_STORE        vst1q_f32
#define V_FMA(a, b, c) vfmaq_f32(c, a, b)
#define V_BCAST(p)     vld1q_dup_f32(p)
#define V_ZERO()       vdupq_n_f32(0.0f)
#define V_SET1         vdupq_n_f32
#define V_ADD          vaddq_f32
#define V_SUB          vsubq_f32
#define V_MUL          vmulq_f32
#define V_MAX          vmaxq_f32
#define V_MIN          vminq_f32
#define V_DIV          vdivq_f32
#define V_NEG          vnegq_f32
#define V_ABS          vabsq_f32
#define V_SEL_LT(x, y, a, b) vbslq_f32(vcltq_f32(x, y), a, b)
#define V_EXP          exp4
#endif

#endif
