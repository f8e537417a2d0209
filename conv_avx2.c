/* conv_avx2.c - the convolution micro-kernel on AVX2+FMA (see
 * sx_conv_kernels in ops_impl.h): 6 output channels x 16 pixels, 12 ymm
 * accumulators; per k step two loads of X (unaligned: shifted input rows)
 * and six broadcasts of the packed weights. */
#include <immintrin.h>
#include <string.h>

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
#define CONV_F32_OWN_PACK_W_PANELS
#include "conv_f32.h"

/* Panel rows from the weight panels: per k, the tile's MR channels are one
 * run in a weight panel, or two (a tile across two panels); F16 runs
 * widened with F16C (exact, as sx_f16_to_f32), BF16 by a shift; stored 8
 * floats at a time, spilling into the next row (masked stores are slow on
 * AMD), the last row exactly. */
static void pack_w_panels(float *dst, const void *pdata, int type, int pnr, int64_t K, int64_t c0,
                          int n) {
    if (type == SX_F32) {
        sx_conv_pack_w_panels(dst, MR, pdata, type, pnr, K, c0, n);
        return;
    }
    int q = (int)(c0 % pnr), n1 = n < pnr - q ? n : pnr - q, n2 = n - n1;
    const uint16_t *p1 = (const uint16_t *)pdata + c0 / pnr * pnr * K + q;
    const uint16_t *p2 = (const uint16_t *)pdata + (c0 / pnr + 1) * pnr * K;
    for (int64_t k = 0; k < K; k++, dst += MR) {
        uint16_t h[8] = {0};
        for (int r = 0; r < n1; r++) h[r] = p1[k * pnr + r];
        for (int r = 0; r < n2; r++) h[n1 + r] = p2[k * pnr + r];
        __m128i hv = _mm_loadu_si128((const __m128i *)h);
        __m256 v = type == SX_F16
                       ? _mm256_cvtph_ps(hv)
                       : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(hv), 16));
        if (k + 1 < K) { /* 8 floats: the 8 - MR past this row are rewritten by the next */
            _mm256_storeu_ps(dst, v);
        } else {
            float t[8];
            _mm256_storeu_ps(t, v);
            memcpy(dst, t, sizeof(float) * MR);
        }
    }
}

const sx_conv_kernels sx_conv_avx2 = CONV_F32_KERNELS("avx2");
