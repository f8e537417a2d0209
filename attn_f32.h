/* attn_f32.h - the F32 flash-attention kernels shared by attn_avx2.c,
 * attn_avx512.c and attn_neon.c, written once over the vector macros the
 * including file defines (V: the vector type, VL lanes, V_LOAD, V_STORE,
 * V_MUL, V_FMA, V_BCAST(pointer), V_ZERO and those of the softmax below)
 * with RT rows per register tile and QV vectors (QT = QV*VL queries) per
 * tile; the including file also brings transpose_scaled (ops_avx2.h,
 * ops_neon.h).
 * Layouts:
 *   packed kv head: keys [ceil(Tk/RT)][D][RT] (keys past Tk are 0), then
 *                   values [ceil(D/RT)][Tk][RT] (dims past D are 0)
 *   query tile:     [D][QT] (lanes past nq are 0)
 *   O^T:            [ceil(D/RT)*RT][QT] */
#ifndef SEEDX_ATTN_F32_H
#define SEEDX_ATTN_F32_H

#include <math.h>
#include <string.h>

#include "ops_impl.h"

static inline int64_t attn_kfloats(int64_t Tk, int D, int rt) {
    return (Tk + rt - 1) / rt * rt * D;
}

/* ---- the set's functions (RT, QV, QT and the vector macros defined) ---- */
/* c[RT][QT] = (alpha ? alpha .* c : 0) + sum_k a[k][0..RT) (x) b[k][0..QT)
 * (a: RT floats per step, b: QT). */
static inline void tile(int64_t kc, const float *a, const float *b, float *c, const float *alpha) {
    V acc[RT][QV];
#pragma GCC unroll 8
    for (int r = 0; r < RT; r++)
#pragma GCC unroll 4
        for (int v = 0; v < QV; v++)
            acc[r][v] =
                alpha ? V_MUL(V_LOAD(alpha + VL * v), V_LOAD(c + r * QT + VL * v)) : V_ZERO();
    for (int64_t k = 0; k < kc; k++, a += RT, b += QT) {
        V bv[QV];
#pragma GCC unroll 4
        for (int v = 0; v < QV; v++) bv[v] = V_LOAD(b + VL * v);
#pragma GCC unroll 8
        for (int r = 0; r < RT; r++) {
            V av = V_BCAST(a + r);
#pragma GCC unroll 4
            for (int v = 0; v < QV; v++) acc[r][v] = V_FMA(av, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < RT; r++)
#pragma GCC unroll 4
        for (int v = 0; v < QV; v++) V_STORE(c + r * QT + VL * v, acc[r][v]);
}

static size_t q_bytes(int D) {
    return sizeof(float) * (size_t)D * QT;
}
static void pack_q(void *dst, const float *q, int64_t ldq, int nq, int D) {
    transpose_scaled(dst, QT, q, ldq, QT, nq, D, NULL);
}
static void finish(float *o, int64_t ldo, const float *ot, const float *l, int nq, int D) {
    float inv[QT];
    for (int i = 0; i < QT; i++) inv[i] = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
    transpose_scaled(o, ldo, ot, QT, D, D, nq, inv);
}

static size_t kv_bytes(int64_t Tk, int D) {
    return sizeof(float) * (size_t)(attn_kfloats(Tk, D, RT) + ((int64_t)D + RT - 1) / RT * RT * Tk);
}

static void pack_kv(void *dst, const sx_attn_kv *kv, int D, int64_t j0, int64_t j1) {
    float *kp = dst, *vp = kp + attn_kfloats(kv->Tk, D, RT);
    for (int64_t j = j0; j < j1; j += RT)
        transpose_scaled(kp + j * D, RT, kv->k + j * kv->ldk, kv->ldk, RT,
                         (int)(j1 - j < RT ? j1 - j : RT), D, NULL);
    for (int d0 = 0; d0 < D; d0 += RT) {
        float *p = vp + (int64_t)d0 * kv->Tk;
        int n = D - d0 < RT ? D - d0 : RT;
        for (int64_t j = j0; j < j1; j++) {
            memcpy(p + j * RT, kv->v + j * kv->ldv + d0, sizeof(float) * (size_t)n);
            for (int r = n; r < RT; r++) p[j * RT + r] = 0.0f;
        }
    }
}

static void scores(float *st, const sx_attn_kv *kv, const void *qp, int64_t k0, int64_t nk, int D) {
    const float *kp = (const float *)kv->packed + k0 * D;
    for (int64_t j = 0; j < nk; j += RT) tile(D, kp + j * D, qp, st + j * QT, NULL);
}

static void values(float *ot, const sx_attn_kv *kv, const float *pt, int64_t k0, int64_t nk, int D,
                   const float *alpha) {
    const float *vp = (const float *)kv->packed + attn_kfloats(kv->Tk, D, RT) + k0 * RT;
    for (int d0 = 0; d0 < D; d0 += RT)
        tile(nk, vp + (int64_t)d0 * kv->Tk, pt, ot + (int64_t)d0 * QT, alpha);
}

/* The online softmax of one block (see sx_attn_kernels.softmax) over the
 * ISA file's vector macros (VI: the int32 vector, VI_LOAD, VI_SET1, V_SET1,
 * V_ADD, V_SUB, V_MAX, V_FMSUB(a, b, c) = a*b - c, V_IF_LT(j, vis, a, b) =
 * j < vis ? a : b per lane, V_NINF_TO_0, V_EXP_ALPHA and V_EXP: exp of the
 * rescale factors and of the scores); `masked` is a constant in each
 * instance, so the common unmasked block has no compares. */
static inline void softmax_block(float *st, int64_t nk, const int32_t *vis, float scale, float *m,
                                 float *l, float *alpha, int masked) {
    VI vi[QV];
    V mx[QV], sum[QV], msafe[QV];
    const V ninf = V_SET1(-INFINITY), sc = V_SET1(scale);
    for (int v = 0; v < QV; v++) {
        vi[v] = masked ? VI_LOAD(vis + VL * v) : VI_SET1(0);
        mx[v] = ninf;
        sum[v] = V_ZERO();
    }
    for (int64_t j = 0; j < nk; j++) {
        VI jv = VI_SET1((int)j);
        for (int v = 0; v < QV; v++) {
            V t = V_MAX(mx[v], V_LOAD(st + j * QT + VL * v));
            mx[v] = masked ? V_IF_LT(jv, vi[v], t, mx[v]) : t;
        }
    }
    for (int v = 0; v < QV; v++) {
        V mo = V_LOAD(m + VL * v), mn = V_MAX(mo, V_MUL(mx[v], sc));
        msafe[v] = V_NINF_TO_0(mn);
        V_STORE(alpha + VL * v, V_EXP_ALPHA(V_SUB(mo, msafe[v])));
        V_STORE(m + VL * v, mn);
    }
    for (int64_t j = 0; j < nk; j++) {
        VI jv = VI_SET1((int)j);
        for (int v = 0; v < QV; v++) {
            float *p = st + j * QT + VL * v;
            V e = V_EXP(V_FMSUB(V_LOAD(p), sc, msafe[v]));
            if (masked) e = V_IF_LT(jv, vi[v], e, V_ZERO());
            V_STORE(p, e);
            sum[v] = V_ADD(sum[v], e);
        }
    }
    for (int v = 0; v < QV; v++)
        V_STORE(l + VL * v, V_ADD(V_MUL(V_LOAD(alpha + VL * v), V_LOAD(l + VL * v)), sum[v]));
}

static void softmax(float *st, int64_t nk, const int32_t *vis, float scale, float *m, float *l,
                    float *alpha) {
    if (vis)
        softmax_block(st, nk, vis, scale, m, l, alpha, 1);
    else
        softmax_block(st, nk, NULL, scale, m, l, alpha, 0);
}

/* The set's table. */
#define ATTN_F32_KERNELS(NAME)                                                                     \
    {                                                                                              \
        .name = NAME, .qt = QT, .kt = RT, .dt = RT, .kv_bytes = kv_bytes, .pack_kv = pack_kv,      \
        .q_bytes = q_bytes, .pack_q = pack_q, .scores = scores, .values = values,                  \
        .softmax = softmax, .finish = finish                                                       \
    }

#endif
