/* attn_avx512.c - the flash-attention inner kernels on AVX-512F (see
 * sx_attn_kernels in ops_impl.h): the products and layouts written once in
 * attn_f32.h over this file's vector macros, the online softmax here). A query tile is
 * QT = 16*QV queries, the lanes of QV zmm registers. Both products run a
 * register tile of RT rows x QT lanes (RT*QV accumulators) whose broadcast
 * operand is a packed panel: RT keys (S^T) or RT dims of the values (O^T).
 * RT = 8 divides every head_dim of SEED-X (64, 104, 128, 512). */
#include <immintrin.h>
#include <math.h>

#include "ops_avx2.h"
#include "ops_avx512.h"
#include "ops_impl.h"

#ifndef ATTN512_QV
#define ATTN512_QV 2
#endif
#define QV ATTN512_QV
#define QT (16 * QV)
#define RT 8

#define V          __m512
#define VL         16
#define V_LOAD     _mm512_loadu_ps
#define V_STORE    _mm512_storeu_ps
#define V_MUL      _mm512_mul_ps
#define V_FMA      _mm512_fmadd_ps
#define V_BCAST(p) _mm512_set1_ps(*(p))
#define V_ZERO     _mm512_setzero_ps
#include "attn_f32.h"

/* The online softmax of one block (see sx_attn_kernels.softmax). */
static inline void softmax_block(float *st, int64_t nk, const int32_t *vis, float scale, float *m,
                                 float *l, float *alpha, int masked) {
    __m512i vi[QV];
    __m512 mx[QV], sum[QV], msafe[QV];
    const __m512 ninf = _mm512_set1_ps(-INFINITY), sc = _mm512_set1_ps(scale);
    for (int v = 0; v < QV; v++) {
        vi[v] = masked ? _mm512_loadu_si512(vis + 16 * v) : _mm512_setzero_si512();
        mx[v] = ninf;
        sum[v] = _mm512_setzero_ps();
    }
    for (int64_t j = 0; j < nk; j++) {
        __m512i jv = _mm512_set1_epi32((int)j);
        for (int v = 0; v < QV; v++) {
            __m512 s = _mm512_loadu_ps(st + j * QT + 16 * v);
            mx[v] = masked ? _mm512_mask_max_ps(mx[v], _mm512_cmplt_epi32_mask(jv, vi[v]), mx[v], s)
                           : _mm512_max_ps(mx[v], s);
        }
    }
    for (int v = 0; v < QV; v++) {
        __m512 mo = _mm512_loadu_ps(m + 16 * v);
        __m512 mn = _mm512_max_ps(mo, _mm512_mul_ps(mx[v], sc));
        msafe[v] =
            _mm512_mask_blend_ps(_mm512_cmp_ps_mask(mn, ninf, _CMP_EQ_OQ), mn, _mm512_setzero_ps());
        _mm512_storeu_ps(alpha + 16 * v, exp512(_mm512_sub_ps(mo, msafe[v])));
        _mm512_storeu_ps(m + 16 * v, mn);
    }
    for (int64_t j = 0; j < nk; j++) {
        __m512i jv = _mm512_set1_epi32((int)j);
        for (int v = 0; v < QV; v++) {
            float *p = st + j * QT + 16 * v;
            __m512 e = exp512_u(_mm512_fmsub_ps(_mm512_loadu_ps(p), sc, msafe[v]));
            if (masked) e = _mm512_maskz_mov_ps(_mm512_cmplt_epi32_mask(jv, vi[v]), e);
            _mm512_storeu_ps(p, e);
            sum[v] = _mm512_add_ps(sum[v], e);
        }
    }
    for (int v = 0; v < QV; v++)
        _mm512_storeu_ps(l + 16 * v, _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(alpha + 16 * v),
                                                                 _mm512_loadu_ps(l + 16 * v)),
                                                   sum[v]));
}

const sx_attn_kernels sx_attn_avx512 = ATTN_F32_KERNELS("avx512");
