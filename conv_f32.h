/* conv_f32.h - the convolution micro-kernel (see sx_conv_kernels in
 * ops_impl.h) shared by conv_avx2.c and conv_avx512.c, written once over
 * the vector macros the including file defines (V: the vector type, VL
 * lanes, V_LOAD, V_STORE, V_FMA, V_BCAST(pointer), V_ZERO), with MR output
 * channels x NV vectors of pixels per register tile. */
#ifndef SEEDX_CONV_F32_H
#define SEEDX_CONV_F32_H

#include "ops_avx2.h"
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

/* The set's table (pack_w_panels, store and prologue from the ISA file). */
#define CONV_F32_KERNELS(NAME)                                                                     \
    {                                                                                              \
        .name = NAME, .mr = MR, .nr = NR, .ukr = ukr, .pack_w = pack_w,                            \
        .pack_w_panels = pack_w_panels, .store = store, .prologue = prologue                       \
    }

#endif
