/* conv_f32.h - the convolution micro-kernel (see sx_conv_kernels in
 * ops_impl.h) shared by conv_avx2.c, conv_avx512.c and conv_neon.c, written
 * once over the vector macros the including file defines (V: the vector
 * type, VL lanes, V_LOAD, V_STORE, V_FMA, V_BCAST(pointer), V_ZERO), with MR
 * output channels x NV vectors of pixels per register tile; the including
 * file also brings transpose_scaled (ops_avx2.h, ops_neon.h). */
#ifndef SEEDX_CONV_F32_H
#define SEEDX_CONV_F32_H

#include "ops_impl.h"

static void ukr(int nci, int ntaps, const int64_t *toff, const float *a, const float *x, int64_t cs,
                float *c, int64_t ldc, int load_c) {
    V acc[MR][NV];
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) acc[r][v] = load_c ? V_LOAD(c + r * ldc + VL * v) : V_ZERO();
            /* one k step: X row xr against the mr weights at a */
#define STEP(xr)                                                                                   \
    do {                                                                                           \
        V b[NV];                                                                                   \
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) b[v] = V_LOAD((xr) + VL * v);         \
        _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) {                                    \
            V av = V_BCAST(a + r);                                                                 \
            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) acc[r][v] =                       \
                V_FMA(av, b[v], acc[r][v]);                                                        \
        }                                                                                          \
        a += MR;                                                                                   \
    } while (0)
    if (ntaps == 1) {
        for (int ci = 0; ci < nci; ci++, x += cs) STEP(x + toff[0]);
    } else if (ntaps == 9) { /* 3x3: the offsets in registers */
        int64_t t0 = toff[0], t1 = toff[1], t2 = toff[2], t3 = toff[3], t4 = toff[4], t5 = toff[5],
                t6 = toff[6], t7 = toff[7], t8 = toff[8];
        for (int ci = 0; ci < nci; ci++, x += cs) {
            STEP(x + t0);
            STEP(x + t1);
            STEP(x + t2);
            STEP(x + t3);
            STEP(x + t4);
            STEP(x + t5);
            STEP(x + t6);
            STEP(x + t7);
            STEP(x + t8);
        }
    } else {
        for (int ci = 0; ci < nci; ci++, x += cs)
            for (int t = 0; t < ntaps; t++) STEP(x + toff[t]);
    }
#undef STEP
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) V_STORE(c + r * ldc + VL * v, acc[r][v]);
}

static void pack_w(float *dst, const float *w, int64_t ldw, int n, int64_t K) {
    transpose_scaled(dst, MR, w, ldw, MR, n, (int)K, NULL);
}

#ifdef CONV_F32_PLAIN_EDGES
/* pack_w_panels (unless the file has its own: CONV_F32_OWN_PACK_W_PANELS),
 * store and prologue for ISAs without masked loads (AVX2, NEON), over V_ADD, V_SUB, V_MUL, V_DIV,
 * V_MIN, V_NEG, V_SET1 and V_EXP (an exp exact to the scalar one's range up to 88). */
#ifndef CONV_F32_OWN_PACK_W_PANELS
static void pack_w_panels(float *dst, const void *pdata, int type, int pnr, int64_t K, int64_t c0,
                          int n) {
    sx_conv_pack_w_panels(dst, MR, pdata, type, pnr, K, c0, n);
}
#endif

/* y = (accumulate ? y : 0) + (c + bias) per row (the right edge one by one) */
static void store(float *y, int64_t ldy, const float *c, int64_t ldc, const float *bias, int rows,
                  int cols, int accumulate) {
    for (int r = 0; r < rows; r++) {
        float b = bias ? bias[r] : 0.0f;
        V bv = V_SET1(b);
        int j = 0;
        for (; j + VL <= cols; j += VL) {
            V t = V_ADD(V_LOAD(c + r * ldc + j), bv);
            if (accumulate) t = V_ADD(V_LOAD(y + r * ldy + j), t);
            V_STORE(y + r * ldy + j, t);
        }
        for (; j < cols; j++) {
            float t = c[r * ldc + j] + b;
            y[r * ldy + j] = accumulate ? y[r * ldy + j] + t : t;
        }
    }
}

/* GroupNorm's affine (the operations of sx_groupnorm, in order), then
 * SiLU as v / (1 + exp(-v)) (exp's argument capped at 88, where it stays
 * finite; the scalar tail as sx_silu) */
static void prologue(float *v, int64_t n, float mean, float rstd, float w, float b, int silu) {
    const V m = V_SET1(mean), r = V_SET1(rstd), wv = V_SET1(w), bv = V_SET1(b), one = V_SET1(1.0f),
            cap = V_SET1(88.0f);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        V t = V_LOAD(v + i);
        t = V_ADD(V_MUL(V_MUL(V_SUB(t, m), r), wv), bv);
        if (silu) t = V_DIV(t, V_ADD(one, V_EXP(V_MIN(V_NEG(t), cap))));
        V_STORE(v + i, t);
    }
    for (; i < n; i++) {
        float t = (v[i] - mean) * rstd * w + b;
        v[i] = silu ? sx_act1(t, SX_ACT_SILU) : t;
    }
}
#endif

/* The set's table (pack_w_panels, store and prologue from the ISA file, or
 * from above with CONV_F32_PLAIN_EDGES). */
#define CONV_F32_KERNELS(NAME)                                                                     \
    {                                                                                              \
        .name = NAME, .mr = MR, .nr = NR, .ukr = ukr, .pack_w = pack_w,                            \
        .pack_w_panels = pack_w_panels, .store = store, .prologue = prologue                       \
    }

#endif
