/* conv_avx2.c - the convolution micro-kernel on AVX2+FMA (see
 * sx_conv_kernels in ops_impl.h): 6 output channels x 16 pixels, 12 ymm
 * accumulators; per k step two loads of X (unaligned: shifted input rows)
 * and six broadcasts of the packed weights. */
#include <immintrin.h>

#include "ops_avx2.h"
#include "ops.h"
#include "ops_impl.h"

#define MR 6
#define NV 2 /* ymm per row: NR = 8 * NV pixels */
#define NR (8 * NV)

#define V          __m256
#define VL         8
#define V_LOAD     _mm256_loadu_ps
#define V_STORE    _mm256_storeu_ps
#define V_FMA      _mm256_fmadd_ps
#define V_BCAST(p) _mm256_broadcast_ss(p)
#define V_ZERO     _mm256_setzero_ps
#define V_SET1     _mm256_set1_ps
#define V_ADD      _mm256_add_ps
#define V_SUB      _mm256_sub_ps
#define V_MUL      _mm256_mul_ps
#define V_DIV      _mm256_div_ps
#define V_MIN      _mm256_min_ps
#define V_NEG(x)   _mm256_sub_ps(_mm256_setzero_ps(), x)
#define V_EXP      exp256
#define CONV_F32_PLAIN_EDGES
#include "conv_f32.h"

const sx_conv_kernels sx_conv_avx2 = CONV_F32_KERNELS("avx2");
