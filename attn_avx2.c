/* attn_avx2.c - the flash-attention inner kernels on AVX2+FMA (see
 * sx_attn_kernels in ops_impl.h; layouts in attn_f32.h), as attn_avx512.c
 * with ymm registers: a query tile is QT = 8*QV queries; the register tile
 * is RT rows x QT lanes (RT*QV accumulators), RT = 6 (12 accumulators). */
#include <immintrin.h>
#include <math.h>

#include "attn_f32.h"
#include "ops_impl.h"

#ifndef ATTN2_QV
#define ATTN2_QV 2
#endif
#ifndef ATTN2_RT
#define ATTN2_RT 6
#endif
#define QV ATTN2_QV
#define QT (8 * QV)
#define RT ATTN2_RT

static size_t q_bytes(int D) { return sizeof(float) * (size_t)D * QT; }
static void pack_q(void *dst, const float *q, int64_t ldq, int nq, int D) {
    attn_pack_q(dst, q, ldq, nq, D, QT);
}
static void finish(float *o, int64_t ldo, const float *ot, const float *l, int nq, int D) {
    attn_finish(o, ldo, ot, l, nq, D, QT);
}

/* c[RT][QT] = (alpha ? alpha .* c : 0) + sum_k a[k][0..RT) (x) b[k][0..QT)
 * (a: RT floats per step, b: QT). */
static inline void tile(int64_t kc, const float *a, const float *b, float *c, const float *alpha) {
    __m256 acc[RT][QV];
#pragma GCC unroll 8
    for (int r = 0; r < RT; r++)
#pragma GCC unroll 4
        for (int v = 0; v < QV; v++)
            acc[r][v] = alpha ? _mm256_mul_ps(_mm256_loadu_ps(alpha + 8 * v),
                                              _mm256_loadu_ps(c + r * QT + 8 * v))
                              : _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++, a += RT, b += QT) {
        __m256 bv[QV];
#pragma GCC unroll 4
        for (int v = 0; v < QV; v++) bv[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 8
        for (int r = 0; r < RT; r++) {
            __m256 av = _mm256_broadcast_ss(a + r);
#pragma GCC unroll 4
            for (int v = 0; v < QV; v++) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < RT; r++)
#pragma GCC unroll 4
        for (int v = 0; v < QV; v++) _mm256_storeu_ps(c + r * QT + 8 * v, acc[r][v]);
}

static size_t kv_bytes(int64_t Tk, int D) { return attn_kv_bytes(Tk, D, RT); }
static void pack_kv(void *dst, const sx_attn_kv *kv, int D, int64_t j0, int64_t j1) {
    attn_pack_kv(dst, kv, D, j0, j1, RT);
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

/* The online-softmax block (see sx_attn_kernels.softmax); `masked` is a
 * constant in each instance, so the common unmasked block has no compares. */
static inline void softmax_block(float *st, int64_t nk, const int32_t *vis, float scale, float *m,
                                 float *l, float *alpha, int masked) {
    __m256i vi[QV];
    __m256 mx[QV], sum[QV], msafe[QV];
    const __m256 ninf = _mm256_set1_ps(-INFINITY), sc = _mm256_set1_ps(scale);
    for (int v = 0; v < QV; v++) {
        vi[v] = masked ? _mm256_loadu_si256((const __m256i *)(vis + 8 * v)) : _mm256_setzero_si256();
        mx[v] = ninf;
        sum[v] = _mm256_setzero_ps();
    }
    for (int64_t j = 0; j < nk; j++) {
        __m256i jv = _mm256_set1_epi32((int)j);
        for (int v = 0; v < QV; v++) {
            __m256 s = _mm256_loadu_ps(st + j * QT + 8 * v), t = _mm256_max_ps(mx[v], s);
            mx[v] = masked ? _mm256_blendv_ps(mx[v], t, _mm256_castsi256_ps(_mm256_cmpgt_epi32(vi[v], jv)))
                           : t;
        }
    }
    for (int v = 0; v < QV; v++) {
        __m256 mo = _mm256_loadu_ps(m + 8 * v);
        __m256 mn = _mm256_max_ps(mo, _mm256_mul_ps(mx[v], sc));
        msafe[v] = _mm256_blendv_ps(mn, _mm256_setzero_ps(), _mm256_cmp_ps(mn, ninf, _CMP_EQ_OQ));
        _mm256_storeu_ps(alpha + 8 * v, exp256(_mm256_sub_ps(mo, msafe[v])));
        _mm256_storeu_ps(m + 8 * v, mn);
    }
    for (int64_t j = 0; j < nk; j++) {
        __m256i jv = _mm256_set1_epi32((int)j);
        for (int v = 0; v < QV; v++) {
            float *p = st + j * QT + 8 * v;
            __m256 e = exp256(_mm256_fmsub_ps(_mm256_loadu_ps(p), sc, msafe[v]));
            if (masked) e = _mm256_and_ps(e, _mm256_castsi256_ps(_mm256_cmpgt_epi32(vi[v], jv)));
            _mm256_storeu_ps(p, e);
            sum[v] = _mm256_add_ps(sum[v], e);
        }
    }
    for (int v = 0; v < QV; v++)
        _mm256_storeu_ps(l + 8 * v, _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(alpha + 8 * v),
                                                                _mm256_loadu_ps(l + 8 * v)),
                                                  sum[v]));
}

static void softmax(float *st, int64_t nk, const int32_t *vis, float scale, float *m, float *l,
                    float *alpha) {
    if (vis) softmax_block(st, nk, vis, scale, m, l, alpha, 1);
    else softmax_block(st, nk, NULL, scale, m, l, alpha, 0);
}

const sx_attn_kernels sx_attn_avx2 = {
    .name = "avx2", .qt = QT, .kt = RT, .dt = RT,
    .kv_bytes = kv_bytes, .pack_kv = pack_kv, .q_bytes = q_bytes, .pack_q = pack_q, .scores = scores, .values = values, .softmax = softmax,
    .finish = finish};
