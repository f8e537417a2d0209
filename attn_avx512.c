/* attn_avx512.c - the flash-attention inner kernels on AVX-512F (see
 * sx_attn_kernels in ops_impl.h), written once in attn_f32.h over this
 * file's vector macros. A query tile is
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

#define V                     __m512
#define VL                    16
#define V_LOAD                _mm512_loadu_ps
#define V_STORE               _mm512_storeu_ps
#define V_MUL                 _mm512_mul_ps
#define V_FMA                 _mm512_fmadd_ps
#define V_BCAST(p)            _mm512_set1_ps(*(p))
#define V_ZERO                _mm512_setzero_ps
#define V_SET1                _mm512_set1_ps
#define V_ADD                 _mm512_add_ps
#define V_SUB                 _mm512_sub_ps
#define V_MAX                 _mm512_max_ps
#define V_FMSUB               _mm512_fmsub_ps
#define V_EXP                 exp512_u
#define V_EXP_ALPHA           exp512
#define VI                    __m512i
#define VI_LOAD(p)            _mm512_loadu_si512(p)
#define VI_SET1               _mm512_set1_epi32
#define V_IF_LT(j, vis, a, b) _mm512_mask_blend_ps(_mm512_cmplt_epi32_mask(j, vis), b, a)
#define V_NINF_TO_0(x)                                                                             \
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ), x,          \
                         _mm512_setzero_ps())
#include "attn_f32.h"

const sx_attn_kernels sx_attn_avx512 = ATTN_F32_KERNELS("avx512");
