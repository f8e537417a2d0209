/* act_f32.h - the row kernels of the SIMD kernel sets around the GEMM
 * (sx_kernels.act_row, .epilogue_row, .pack_a, .layernorm_row, .values_row):
 * activations, the fused epilogue, the packing of X's row panels, LayerNorm,
 * attention's weighted sum of value rows (decode).
 * Written once over the vector macros the including file defines (and its
 * transpose_scaled, unless it has its own pack_a: ACT_F32_OWN_PACK_A): V, VL,
 * V_LOAD, V_STORE, V_SET1, V_ADD, V_SUB, V_MUL, V_DIV, V_FMA(a, b, c) =
 * a*b + c, V_MIN, V_NEG, V_ABS, V_SEL_LT(x, y, a, b) = x < y ? a : b, and
 * V_EXP (exp of arguments <= 88; 0 or a denormal far below the float range);
 * for LayerNorm's double sums VD, VDL lanes, VD_ZERO, VD_SET1, VD_ADD, VD_SUB,
 * VD_MUL, VD_HSUM and VD_LOAD_PS (VDL floats widened to doubles).
 *
 * GELU (exact, erf form): 0.5 v (1 + erf(v / sqrt 2)) = 0.5 v Phi2(x) with
 * x = v / sqrt 2 and Phi2(x) = 1 + erf(x) = erfc(-x):
 *   |x| < 0.75:  Phi2 = 1 + x Q(x^2), Q of degree 5 (erf(x)/x, relative
 *                error 1.4e-9 in double on the interval);
 *   |x| >= 0.75: r = erfc(|x|) = t P(t) exp(-x^2), t = 1 / (1 + 0.3275911|x|)
 *                (the substitution of Abramowitz & Stegun 7.1.26), P of
 *                degree 9 (relative error 4.1e-9 in double); Phi2 = r for
 *                x < 0, 2 - r otherwise. x^2 = hi + lo exactly (one FMA), and
 *                exp(-hi - lo) = exp(-hi) (1 - lo).
 * Q and P were fitted for this file (least squares on Chebyshev nodes,
 * Lawson-reweighted toward minimax, against mpmath's erf/erfc; float32
 * coefficients). Against erfc in double, |result - exact| / |v| <= 1.2e-7
 * for float inputs in [-14, 14] (the scalar set's erff form: 1.1e-7); below
 * v = -5.5 the result is a tiny number where the erff form gives 0.
 * SiLU: v / (1 + exp(min(-v, 88))), the conv prologue's expression.
 * GELU (tanh form): the scalar expression, element by element (no SEED-X
 * model spends time in it). Every element takes the same arithmetic
 * wherever it sits in the row: a partial vector at the end goes through a
 * padded copy. */
#ifndef SEEDX_ACT_F32_H
#define SEEDX_ACT_F32_H

#include <math.h>
#include <string.h>

#include "ops_impl.h"

static inline V act_gelu_v(V v) {
    const V one = V_SET1(1.0f), x = V_MUL(v, V_SET1(0.70710678118654752f)), s = V_ABS(x);
    /* small |x|: 1 + x Q(x^2) */
    V u = V_MUL(x, x), q = V_SET1(-6.74951879773289e-4f);
    q = V_FMA(q, u, V_SET1(5.114346276968718e-3f));
    q = V_FMA(q, u, V_SET1(-2.6834625750780106e-2f));
    q = V_FMA(q, u, V_SET1(1.1283376812934875e-1f));
    q = V_FMA(q, u, V_SET1(-3.761261999607086e-1f));
    q = V_FMA(q, u, V_SET1(1.1283791065216064f));
    V small = V_FMA(x, q, one);
    /* large |x|: erfc(|x|) = t P(t) exp(-x^2) */
    V t = V_DIV(one, V_FMA(V_SET1(0.3275911f), s, one)), p = V_SET1(5.667607486e-02f);
    p = V_FMA(p, t, V_SET1(-3.171261251e-01f));
    p = V_FMA(p, t, V_SET1(6.273472905e-01f));
    p = V_FMA(p, t, V_SET1(-5.600440502e-01f));
    p = V_FMA(p, t, V_SET1(5.013663173e-01f));
    p = V_FMA(p, t, V_SET1(-5.038015172e-02f));
    p = V_FMA(p, t, V_SET1(2.059513628e-01f));
    p = V_FMA(p, t, V_SET1(1.656357795e-01f));
    p = V_FMA(p, t, V_SET1(1.857944131e-01f));
    p = V_FMA(p, t, V_SET1(1.847790331e-01f));
    V hi = V_MUL(s, s), lo = V_FMA(s, s, V_NEG(hi));
    V e = V_EXP(V_NEG(hi));
    e = V_FMA(V_NEG(lo), e, e);
    V r = V_MUL(V_MUL(t, p), e);
    V large = V_SEL_LT(x, V_SET1(0.0f), r, V_SUB(V_SET1(2.0f), r));
    V phi2 = V_SEL_LT(s, V_SET1(0.75f), small, large);
    return V_MUL(V_MUL(V_SET1(0.5f), v), phi2);
}

static inline V act_silu_v(V v) {
    return V_DIV(v, V_ADD(V_SET1(1.0f), V_EXP(V_MIN(V_NEG(v), V_SET1(88.0f)))));
}

/* y[i] = act(x[i]) for i < n (y may be x) */
static void act_row(float *y, const float *x, int64_t n, int act) {
    if (act != 1 && act != 3) { /* tanh GELU, or none */
        for (int64_t i = 0; i < n; i++) y[i] = sx_act1(x[i], act);
        return;
    }
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        V v = V_LOAD(x + i);
        V_STORE(y + i, act == 1 ? act_gelu_v(v) : act_silu_v(v));
    }
    if (i < n) {
        float buf[VL];
        memset(buf, 0, sizeof buf);
        memcpy(buf, x + i, sizeof(float) * (size_t)(n - i));
        V v = V_LOAD(buf);
        V_STORE(buf, act == 1 ? act_gelu_v(v) : act_silu_v(v));
        memcpy(y + i, buf, sizeof(float) * (size_t)(n - i));
    }
}

/* y[i] = (accumulate ? y[i] : 0) + act(c[i] + (bias ? bias[i] : 0)), i < n:
 * the arithmetic of the separate ops (act as act_row; a partial vector at
 * the end through a padded copy) */
static inline V epi_v(V t, const float *y, const float *bias, int act, int accumulate) {
    if (bias) t = V_ADD(t, V_LOAD(bias));
    if (act == 1)
        t = act_gelu_v(t);
    else if (act == 3)
        t = act_silu_v(t);
    return accumulate ? V_ADD(V_LOAD(y), t) : t;
}

static void epilogue_row(float *y, const float *c, const float *bias, int64_t n, int act,
                         int accumulate) {
    if (act != 0 && act != 1 && act != 3) { /* tanh GELU: element by element */
        for (int64_t i = 0; i < n; i++) {
            float t = sx_act1(bias ? c[i] + bias[i] : c[i], act);
            y[i] = accumulate ? y[i] + t : t;
        }
        return;
    }
    int64_t i = 0;
    for (; i + VL <= n; i += VL)
        V_STORE(y + i, epi_v(V_LOAD(c + i), y + i, bias ? bias + i : NULL, act, accumulate));
    if (i < n) {
        float bc[VL], by[VL], bb[VL];
        size_t m = sizeof(float) * (size_t)(n - i);
        memset(bc, 0, sizeof bc), memset(by, 0, sizeof by), memset(bb, 0, sizeof bb);
        memcpy(bc, c + i, m);
        if (accumulate) memcpy(by, y + i, m);
        if (bias) memcpy(bb, bias + i, m);
        V_STORE(by, epi_v(V_LOAD(bc), by, bias ? bb : NULL, act, accumulate));
        memcpy(y + i, by, m);
    }
}

#ifndef ACT_F32_OWN_PACK_A
/* X rows [0, rows) (row stride ldx) -> dst[K][mr], rows past `rows` zero:
 * one row panel of the GEMM's A, by blocked transposes */
static void pack_a(float *dst, const float *x, int64_t ldx, int rows, int mr, int64_t K) {
    transpose_scaled(dst, mr, x, ldx, mr, rows, (int)K, NULL);
}
#endif

/* LayerNorm of one row, as sx_layernorm: mean and variance summed in double
 * (two accumulators of VDL lanes: another order than the scalar loop's, the
 * same float mean and rstd but for a last-bit tie), then per element
 * ((x - mean) * rstd) * w + b in float, operation by operation. */
static void layernorm_row(float *y, const float *x, const float *w, const float *b, int64_t dim,
                          float eps) {
    VD s0 = VD_ZERO(), s1 = VD_ZERO();
    int64_t i = 0;
    for (; i + 2 * VDL <= dim; i += 2 * VDL) {
        s0 = VD_ADD(s0, VD_LOAD_PS(x + i));
        s1 = VD_ADD(s1, VD_LOAD_PS(x + i + VDL));
    }
    double s = VD_HSUM(VD_ADD(s0, s1));
    for (; i < dim; i++) s += x[i];
    double mean = s / (double)dim;
    VD mv = VD_SET1(mean), q0 = VD_ZERO(), q1 = VD_ZERO();
    for (i = 0; i + 2 * VDL <= dim; i += 2 * VDL) {
        VD d0 = VD_SUB(VD_LOAD_PS(x + i), mv), d1 = VD_SUB(VD_LOAD_PS(x + i + VDL), mv);
        q0 = VD_ADD(q0, VD_MUL(d0, d0));
        q1 = VD_ADD(q1, VD_MUL(d1, d1));
    }
    double ss = VD_HSUM(VD_ADD(q0, q1));
    for (; i < dim; i++) {
        double d = x[i] - mean;
        ss += d * d;
    }
    float m = (float)mean, rstd = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
    const V mf = V_SET1(m), rf = V_SET1(rstd);
    for (i = 0; i + VL <= dim; i += VL) {
        V v = V_MUL(V_SUB(V_LOAD(x + i), mf), rf);
        if (w) v = V_MUL(v, V_LOAD(w + i));
        if (b) v = V_ADD(v, V_LOAD(b + i));
        V_STORE(y + i, v);
    }
    for (; i < dim; i++) {
        float v = (x[i] - m) * rstd;
        if (w) v = v * w[i];
        if (b) v = v + b[i];
        y[i] = v;
    }
}

/* Attention's weighted sum of value rows for one query (sx_kernels.values_row):
 * VALUES_VB vectors of o at a time stay in registers while all n rows stream
 * past (one multiply and one add per element and row, in key order: the
 * scalar loop's bytes); dims past the last whole vector column by column. */
#define VALUES_VB 8
static inline __attribute__((always_inline)) void
values_cols(float *o, const float *p, int64_t n, const float *v, int64_t ldv, const int nv) {
    V acc[VALUES_VB];
#pragma GCC unroll 8
    for (int c = 0; c < nv; c++) acc[c] = V_SET1(0.0f);
    for (int64_t j = 0; j < n; j++) {
        const V pj = V_SET1(p[j]);
        const float *vj = v + j * ldv;
#pragma GCC unroll 8
        for (int c = 0; c < nv; c++) acc[c] = V_ADD(acc[c], V_MUL(pj, V_LOAD(vj + VL * c)));
    }
#pragma GCC unroll 8
    for (int c = 0; c < nv; c++) V_STORE(o + VL * c, acc[c]);
}
static void values_row(float *o, const float *p, int64_t n, const float *v, int64_t ldv, int D) {
    int d0 = 0;
    for (; D - d0 >= VALUES_VB * VL; d0 += VALUES_VB * VL)
        values_cols(o + d0, p, n, v + d0, ldv, VALUES_VB);
    switch ((D - d0) / VL) { /* constant vector counts: the accumulators stay in registers */
    case 7: values_cols(o + d0, p, n, v + d0, ldv, 7); break;
    case 6: values_cols(o + d0, p, n, v + d0, ldv, 6); break;
    case 5: values_cols(o + d0, p, n, v + d0, ldv, 5); break;
    case 4: values_cols(o + d0, p, n, v + d0, ldv, 4); break;
    case 3: values_cols(o + d0, p, n, v + d0, ldv, 3); break;
    case 2: values_cols(o + d0, p, n, v + d0, ldv, 2); break;
    case 1: values_cols(o + d0, p, n, v + d0, ldv, 1); break;
    default: break;
    }
    for (int d = d0 + (D - d0) / VL * VL; d < D; d++) {
        float s = 0.0f;
        for (int64_t j = 0; j < n; j++) s = s + p[j] * v[j * ldv + d];
        o[d] = s;
    }
}

#endif
