/* attn_avx2.c - the flash-attention inner kernels on AVX2+FMA (see
 * sx_attn_kernels in ops_impl.h): the products and layouts written once in
 * attn_f32.h over this file's vector macros, the online softmax here), as attn_avx512.c
 * with ymm registers: a query tile is QT = 8*QV queries; the register tile
 * is RT rows x QT lanes (RT*QV accumulators), RT = 6 (12 accumulators). */
#include <immintrin.h>
#include <math.h>

#include "ops_avx2.h"
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

#define V          __m256
#define VL         8
#define V_LOAD     _mm256_loadu_ps
#define V_STORE    _mm256_storeu_ps
#define V_MUL      _mm256_mul_ps
#define V_FMA      _mm256_fmadd_ps
#define V_BCAST(p) _mm256_broadcast_ss(p)
#define V_ZERO     _mm256_setzero_ps
#include "attn_f32.h"

/* The online softmax of one block (see sx_attn_kernels.softmax). */
static inline void softmax_block(float *st, int64_t nk, const int32_t *vis, float scale, float *m,
                                 float *l, float *alpha, int masked) {
    __m256i vi[QV];
    __m256 mx[QV], sum[QV], msafe[QV];
    const __m256 ninf = _mm256_set1_ps(-INFINITY), sc = _mm256_set1_ps(scale);
    for (int v = 0; v < QV; v++) {
        vi[v] =
            masked ? _mm256_loadu_si256((const __m256i *)(vis + 8 * v)) : _mm256_setzero_si256();
        mx[v] = ninf;
        sum[v] = _mm256_setzero_ps();
    }
    for (int64_t j = 0; j < nk; j++) {
        __m256i jv = _mm256_set1_epi32((int)j);
        for (int v = 0; v < QV; v++) {
            __m256 s = _mm256_loadu_ps(st + j * QT + 8 * v), t = _mm256_max_ps(mx[v], s);
            mx[v] = masked ? _mm256_blendv_ps(mx[v], t,
                                              _mm256_castsi256_ps(_mm256_cmpgt_epi32(vi[v], jv)))
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

const sx_attn_kernels sx_attn_avx2 = ATTN_F32_KERNELS("avx2");
