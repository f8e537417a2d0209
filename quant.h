/* quant.h - quantized weight types (private to the kernel layer): GGUF's
 * Q8_0, Q4_0 and Q4_K block layouts, the activation formats of their integer
 * dot products (Q8_0, Q8_K), and the policy saying which tensors are
 * quantized. The type table (wtype.c) names these kernels; quant.c holds the
 * scalar reference, quant_<isa>.c the SIMD paths.
 *
 * Block layouts (little-endian, bit-compatible with llama.cpp / gguf-py):
 *   Q8_0  32 values,  34 bytes: f16 d, int8 q[32];             x = d*q
 *   Q4_0  32 values,  18 bytes: f16 d, u8 qs[16], q[j] = low nibble of
 *         qs[j], q[j+16] = high nibble;                           x = d*(q-8)
 *   Q4_K 256 values, 144 bytes: f16 d, f16 dmin, u8 scales[12] (eight 6-bit
 *         scales sc[j] and mins m[j], packed as below), u8 qs[128]: value
 *         64c+l is the low nibble of qs[32c+l], value 64c+32+l the high one
 *         (c = 0..3, l = 0..31); sub-block j = values 32j..32j+31;
 *                                                  x = (d*sc[j])*q - dmin*m[j]
 *         scales: j < 4: sc[j] = s[j] & 63, m[j] = s[j+4] & 63;
 *                 j >= 4: sc[j] = (s[j+4] & 15) | (s[j-4] >> 6) << 4,
 *                         m[j]  = (s[j+4] >> 4) | (s[j]   >> 6) << 4.
 *   Q8_K 256 values, 292 bytes (activations only): f32 d, int8 q[256],
 *         int16 bsums[16] (sums of q over groups of 16);          x = d*q
 * Bits per weight: Q8_0 8.5, Q4_0 4.5, Q4_K 4.5. */
#ifndef SEEDX_QUANT_H
#define SEEDX_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wtype.h"

#define SX_QK         32  /* values per Q8_0 / Q4_0 block */
#define SX_QKK        256 /* values per Q4_K / Q8_K super-block */
#define SX_Q8_0_BYTES 34
#define SX_Q4_0_BYTES 18
#define SX_Q4_K_BYTES 144
#define SX_Q8_K_BYTES 292

/* ---- scalar reference (quant.c) ----
 * Quantizers follow llama.cpp's reference rounding (quantize_row_*_ref) so
 * that the converter (scripts/quant_ref.py), the run-time conversion and
 * llama.cpp produce the same bytes; see quant.c for the one place where
 * llama.cpp's C is undefined and what we do instead. */
void sx_q8_0_to_f32(float *y, const void *x, int64_t n);
void sx_q8_0_from_f32(void *y, const float *x, int64_t n);
void sx_q4_0_to_f32(float *y, const void *x, int64_t n);
void sx_q4_0_from_f32(void *y, const float *x, int64_t n);
void sx_q4_k_to_f32(float *y, const void *x, int64_t n);
void sx_q4_k_from_f32(void *y, const float *x, int64_t n);
void sx_q8_k_to_f32(float *y, const void *x, int64_t n);
void sx_q8_k_from_f32(void *y, const float *x, int64_t n);

#define SX_QGEMV_DECL(isa)                                                                         \
    void sx_gemv_q8_0_##isa(float *y, int64_t ldy, const void *x, size_t ldx, int m,               \
                            const void *w, size_t ldw, int64_t n0, int64_t n1, int64_t K,          \
                            const float *bias);                                                    \
    void sx_gemv_q4_0_##isa(float *y, int64_t ldy, const void *x, size_t ldx, int m,               \
                            const void *w, size_t ldw, int64_t n0, int64_t n1, int64_t K,          \
                            const float *bias);                                                    \
    void sx_gemv_q4_k_##isa(float *y, int64_t ldy, const void *x, size_t ldx, int m,               \
                            const void *w, size_t ldw, int64_t n0, int64_t n1, int64_t K,          \
                            const float *bias);
SX_QGEMV_DECL(scalar)

/* The `rows` kernel of the table (wtype.h) from a type's gemv: groups of
 * SX_GEMV_MAX_M rows of x, each against the weight rows [n0, n1). What the
 * kernel layer runs when a path has no `rows` kernel of its own. */
void sx_qrows_by_gemv(sx_gemv_fn gemv, float *y, int64_t ldy, const void *x, size_t ldx, int m,
                      const void *w, size_t ldw, int64_t n0, int64_t n1, int64_t K,
                      const float *bias);

/* ---- the int8 GEMM (prefill with quantized weights; ops_gemm.c) ----
 * Y[M, N] = X . W^T with X quantized to Q8_0 per row (blocks of 32) and the
 * weights' codes as int8: output (m, n) adds, block by block in k order,
 *     acc = fma((float)isum_b, ws_b * da_b, acc)
 *     acc = fma(-ml_b, dsa_b, acc)                      (Q4_K only)
 * with isum_b the exact integer sum over the block of the activation codes
 * times the weight codes (Q8_0: q; Q4_0: q - 8; Q4_K: q of the sub-block),
 * ws_b the weight block's scale as a float (Q4_K: d * sc, as dequantizing
 * computes it), ml_b Q4_K's dmin * m, da_b the activation block's scale and
 * dsa_b = da_b * (float)(the sum of its codes); acc starts at 0. Every path
 * computes these steps, so the outputs are the same bits on each.
 * B panel (sx_i8pack_fn): per 16 weight rows and block, SX_I8_PANEL_BYTES:
 * 8 groups of 64 bytes (group g: the int8 codes 4g..4g+3 of rows 0..15, 4
 * bytes per row), 16 floats ws, 16 int32 128 * (sum of the row's 32
 * codes) (the kernel takes the activations as u8 = code + 128), 16 floats
 * ml (zeros but for Q4_K).
 * A rows (prepared per call): the K activation codes + 128 as u8, the
 * K / 32 block scales as floats (and dsa, for Q4_K).
 * The micro-kernel: SX_I8_MR rows x 32 columns (two panels) over nblk
 * blocks, dsa NULL for types without mins; c[r * ldc + j] for r < rows,
 * j < cols: stored (load: the sums continue from what c holds). */
#define SX_I8_MR          6
#define SX_I8_PANEL_BYTES 704
#define SX_I8_WS          512 /* offsets in a panel block: the weight scales, */
#define SX_I8_CORR        576 /* the 128 x code sums */
#define SX_I8_ML          640 /* and Q4_K's dmin * m */
typedef void (*sx_i8_ukr_fn)(int64_t nblk, const uint8_t *const *a, const float *const *da,
                             const float *const *dsa, int rows, const uint8_t *b0,
                             const uint8_t *b1, int cols, float *c, int64_t ldc, int load);
void sx_i8_ukr_scalar(int64_t nblk, const uint8_t *const *a, const float *const *da,
                      const float *const *dsa, int rows, const uint8_t *b0, const uint8_t *b1,
                      int cols, float *c, int64_t ldc, int load);
void sx_q8_0_i8pack(uint8_t *d, const void *const *rows, int nrows, int64_t b0, int64_t nblk);
void sx_q4_0_i8pack(uint8_t *d, const void *const *rows, int nrows, int64_t b0, int64_t nblk);
void sx_q4_k_i8pack(uint8_t *d, const void *const *rows, int nrows, int64_t b0, int64_t nblk);

#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
SX_QGEMV_DECL(avx2)
SX_QGEMV_DECL(avx512)
void sx_qrows_q8_0_avx512(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                          size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias);
void sx_qrows_q4_0_avx512(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                          size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias);
void sx_q8_0_to_f32_avx2(float *y, const void *x, int64_t n);
void sx_q4_0_to_f32_avx2(float *y, const void *x, int64_t n);
void sx_q4_k_to_f32_avx2(float *y, const void *x, int64_t n);
void sx_q8_0_from_f32_avx2(void *y, const float *x, int64_t n);
void sx_q8_k_from_f32_avx2(void *y, const float *x, int64_t n);
void sx_q8_0_pack16_avx512(uint32_t *d, const void *const *rows, int64_t K);
void sx_q8_0_i8pack_avx512(uint8_t *d, const void *const *rows, int nrows, int64_t b0,
                           int64_t nblk);
void sx_q4_0_i8pack_avx512(uint8_t *d, const void *const *rows, int nrows, int64_t b0,
                           int64_t nblk);
void sx_q4_k_i8pack_avx512(uint8_t *d, const void *const *rows, int nrows, int64_t b0,
                           int64_t nblk);
void sx_i8_ukr_avx512(int64_t nblk, const uint8_t *const *a, const float *const *da,
                      const float *const *dsa, int rows, const uint8_t *b0, const uint8_t *b1,
                      int cols, float *c, int64_t ldc, int load);
void sx_q4_0_pack16_avx512(uint32_t *d, const void *const *rows, int64_t K);
void sx_q4_k_pack16_avx512(uint32_t *d, const void *const *rows, int64_t K);
void sx_q8_0_to_f32_avx512(float *y, const void *x, int64_t n);
void sx_q4_0_to_f32_avx512(float *y, const void *x, int64_t n);
void sx_q4_k_to_f32_avx512(float *y, const void *x, int64_t n);
void sx_q8_0_from_f32_avx512(void *y, const float *x, int64_t n);
void sx_q8_k_from_f32_avx512(void *y, const float *x, int64_t n);
#endif
#if defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
void sx_gemv_q8_0_neon(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                       size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias);
void sx_gemv_q4_0_neon(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                       size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias);
#endif

/* Unpacks the 6-bit scale and min of sub-block j (0..7) of a Q4_K block. */
static inline void sx_q4_k_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* The same for all eight sub-blocks at once, on 32-bit words: bytes 0..7
 * of *sc are sc[0..7], of *m are m[0..7] (the SIMD kernels). */
static inline void sx_q4_k_scales_mins(const uint8_t *s, uint64_t *sc, uint64_t *m) {
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    uint32_t sc_lo = u0 & 0x3f3f3f3fu, m_lo = u1 & 0x3f3f3f3fu;
    uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | ((u0 >> 6) & 0x03030303u) << 4;
    uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 6) & 0x03030303u) << 4;
    *sc = sc_lo | (uint64_t)sc_hi << 32;
    *m = m_lo | (uint64_t)m_hi << 32;
}

/* ---- which tensors are quantized (the one policy; scripts/quant_ref.py
 * quant_type_for() is the same function, checked by tests/test_quant.c) ----
 * For a requested quantized type `want` (SX_Q8_0, SX_Q4_0, SX_Q4_K) and a
 * tensor (checkpoint name, shape in PyTorch order), returns the type it is
 * stored in, or -1: kept in floating point (the converter writes F16, the
 * run-time conversion leaves it as stored). For a float `want` returns want.
 *   - quantized: the LLM's decoder matrices (model.layers.N.self_attn.
 *     {q,k,v,o}_proj.weight, model.layers.N.mlp.{gate,up,down}_proj.weight)
 *     and token embeddings (model.embed_tokens.weight), the ViT's block
 *     matrices (transformer.resblocks.N.attn.{in,out}_proj.weight,
 *     transformer.resblocks.N.mlp.{c_fc,c_proj}.weight): want;
 *   - lm_head.weight: Q8_0 (llama.cpp gives the output matrix more bits than
 *     the body: Q6_K for its 4-bit types; our next type up is Q8_0);
 *   - a row length that is not a multiple of the type's block: Q4_K falls
 *     back to Q8_0 (llama.cpp also falls back to a better type), Q8_0/Q4_0
 *     rows not a multiple of 32 stay float;
 *   - everything else stays float: norms, biases, positional embeddings,
 *     the ViT's patch conv, attention pool and proj, the resamplers of the
 *     agent, the de-tokenizer, the UNet and the VAE. */
int sx_quant_type_for(const char *name, int ndim, const int64_t *shape, int want);

#endif
