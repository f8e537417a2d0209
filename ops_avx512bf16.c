/* ops_avx512bf16.c - the BF16 GEMM micro-kernel on AVX512_BF16 (vdpbf16ps:
 * Cooper Lake, Sapphire Rapids without AMX tiles in use, Zen 4). A in
 * bfloat16 panels (a[j][r][2]: one 32-bit broadcast per row and k pair), B in
 * the tile layout (a 64-byte row = the k pair of 16 columns = one operand).
 * The instruction's arithmetic is the contract of ops_impl.h. */
#include <immintrin.h>

#include "ops_impl.h"

#define BMR 12
static inline __attribute__((always_inline)) void rows_kernel(int R, int64_t kp, const uint16_t *a,
                                                              const uint16_t *b, int64_t bstride,
                                                              float *c, int64_t ldc, int load_c) {
    __m512 acc[BMR][2];
    #pragma GCC unroll 16
    for (int r = 0; r < R; r++)
        for (int h = 0; h < 2; h++)
            acc[r][h] = load_c ? _mm512_loadu_ps(c + r * ldc + 16 * h) : _mm512_setzero_ps();
    const uint16_t *b1 = b + bstride;
    const int *ap = (const int *)a;
    for (int64_t j = 0; j < kp; j++) {
        __m512bh w0 = (__m512bh)_mm512_loadu_si512(b + 32 * j);
        __m512bh w1 = (__m512bh)_mm512_loadu_si512(b1 + 32 * j);
        #pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32(ap[j * BMR + r]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, w0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, w1);
        }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < R; r++)
        for (int h = 0; h < 2; h++) _mm512_storeu_ps(c + r * ldc + 16 * h, acc[r][h]);
}

static void ukr(int64_t kp, const void *a, int64_t lda, int rows, const uint16_t *b,
                int64_t bstride, float *c, int64_t ldc, int load_c) {
    (void)lda;
    if (rows > 8)
        rows_kernel(BMR, kp, a, b, bstride, c, ldc, load_c);
    else if (rows > 4)
        rows_kernel(8, kp, a, b, bstride, c, ldc, load_c);
    else if (rows > 2)
        rows_kernel(4, kp, a, b, bstride, c, ldc, load_c);
    else if (rows > 1)
        rows_kernel(2, kp, a, b, bstride, c, ldc, load_c);
    else
        rows_kernel(1, kp, a, b, bstride, c, ldc, load_c);
}

/* kc: 1024 k pairs per call (a 32-column B micro-panel of 128 KB, read from
 * L2): fewer round trips of the sums through C than with 256 (B in L1);
 * on AMD Zen 4 every `bench_matmul --bf16` shape ran at the same or a
 * higher share of the vdpbf16ps peak, +3-9 points on the ViT and LLM
 * shapes (README, "Benchmarks", Matmul) */
const sx_bf16_kernels sx_bf16_kernels_avx512bf16 = {.name = "avx512bf16",
                                                    .mr = BMR,
                                                    .a_layout = SX_BF16_A_PANELS,
                                                    .kc = 1024,
                                                    .native = 1,
                                                    .ukr = ukr};
