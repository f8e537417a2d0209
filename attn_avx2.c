/* attn_avx2.c - the flash-attention inner kernels on AVX2+FMA (see
 * sx_attn_kernels in ops_impl.h), written once in attn_f32.h over this
 * file's vector macros, as attn_avx512.c
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

#define V           __m256
#define VL          8
#define V_LOAD      _mm256_loadu_ps
#define V_STORE     _mm256_storeu_ps
#define V_MUL       _mm256_mul_ps
#define V_FMA       _mm256_fmadd_ps
#define V_BCAST(p)  _mm256_broadcast_ss(p)
#define V_ZERO      _mm256_setzero_ps
#define V_SET1      _mm256_set1_ps
#define V_ADD       _mm256_add_ps
#define V_SUB       _mm256_sub_ps
#define V_MAX       _mm256_max_ps
#define V_FMSUB     _mm256_fmsub_ps
#define V_EXP       exp256
#define V_EXP_ALPHA exp256
#define VI          __m256i
#define VI_LOAD(p)  _mm256_loadu_si256((const __m256i *)(p))
#define VI_SET1     _mm256_set1_epi32
#define V_IF_LT(j, vis, a, b)                                                                      \
    _mm256_blendv_ps(b, a, _mm256_castsi256_ps(_mm256_cmpgt_epi32(vis, j)))
#define V_NINF_TO_0(x)                                                                             \
    _mm256_blendv_ps(x, _mm256_setzero_ps(),                                                       \
                     _mm256_cmp_ps(x, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ))
#include "attn_f32.h"

const sx_attn_kernels sx_attn_avx2 = ATTN_F32_KERNELS("avx2");
