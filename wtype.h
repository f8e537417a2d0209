/* wtype.h - the storage types of tensors and weight matrices: ONE table.
 *
 * Each entry says how a type is laid out (elements per block, bytes per
 * block), how it converts to and from float32 (the scalar reference, which
 * is what the converter in scripts/ computes too), and, per SIMD path, the
 * kernels the kernel layer runs on weights of that type:
 *   to_f32  - a run of elements -> float32 (GEMM packing, loading),
 *   gemv    - y = x . W^T for a few rows of x (decode),
 *   from_f32 - float32 -> this type (activations for the integer GEMV),
 *   rows    - the gemv for any number of rows of x (prefill with quantized
 *             weights), optional per path;
 *   pack16  - 16 weight rows straight into a panel of the BF16 GEMM,
 *             optional per path (without it: to_f32, rounding, transpose).
 * Adding a type is one entry here plus its kernels; the container reader
 * (gguf.c), the kernel layer (ops*.c) and the model files need no change.
 *
 * Values of `type` are ggml's type ids, as GGUF files store them. */
#ifndef SEEDX_WTYPE_H
#define SEEDX_WTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "simd.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    SX_F32 = 0,
    SX_F16 = 1,
    SX_Q4_0 = 2,
    SX_Q8_0 = 8,
    SX_Q4_K = 12,
    SX_Q8_K = 15, /* activations of the Q4_K dot product (not a storage type) */
    SX_BF16 = 30,
};
#define SX_TYPE_BIT(t) (1u << ((t) & 31))
#define SX_ANY_FLOAT (SX_TYPE_BIT(SX_F32) | SX_TYPE_BIT(SX_F16) | SX_TYPE_BIT(SX_BF16))
#define SX_ANY_QUANT (SX_TYPE_BIT(SX_Q8_0) | SX_TYPE_BIT(SX_Q4_0) | SX_TYPE_BIT(SX_Q4_K))
#define SX_ANY_TYPE (SX_ANY_FLOAT | SX_ANY_QUANT)

/* y[0, n) = the values of the n elements at x (n a multiple of the block). */
typedef void (*sx_to_f32_fn)(float *y, const void *x, int64_t n);
/* y = the n floats of x in this type (n a multiple of the block). */
typedef void (*sx_from_f32_fn)(void *y, const float *x, int64_t n);
/* y[r*ldy + j] = bias[j] + dot(row r of x, row j of W) for r < m
 * (m <= SX_GEMV_MAX_M) and j in [n0, n1). x holds the activations in the
 * entry's act_type (float32 for float weights) with row stride ldx bytes;
 * W rows are K elements of this type, ldw bytes apart. bias may be NULL. */
typedef void (*sx_gemv_fn)(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                           size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias);
#define SX_GEMV_MAX_M 4

/* A `rows` kernel has gemv's signature with any m >= 1: y rows r < m for the
 * weight rows [n0, n1) (threads split the weight rows). Each y element must
 * equal bit for bit what the same path's gemv gives for it (the same integer
 * sums and float steps, whatever m and [n0, n1)); the point is to read each
 * weight row's codes once for several rows of x (e.g. tiles of 4 weight rows
 * x 4 activation rows). A path without one gets sx_qrows_by_gemv: gemv on
 * groups of SX_GEMV_MAX_M rows. */
/* The BF16 GEMM's B panel (ops_bf16.c) from 16 weight rows of K elements
 * (K a multiple of the block and of 32): d[16 j + n] = bf16(v_n[2j]) |
 * bf16(v_n[2j+1]) << 16 for j < K/2, v_n the values of rows[n] (to_f32),
 * rounded as sx_f32_to_bf16. Bit-identical to that composition. */
typedef void (*sx_pack16_fn)(uint32_t *d, const void *const *rows, int64_t K);
/* The int8 GEMM's B panel (quant.h) of blocks [b0, b0 + nblk) of nrows <= 16
 * weight rows (rows[n]: the start of row n; rows past nrows: zeros). */
typedef void (*sx_i8pack_fn)(uint8_t *d, const void *const *rows, int nrows, int64_t b0,
                             int64_t nblk);
typedef struct sx_wtype_kernels {
    sx_to_f32_fn to_f32;
    sx_from_f32_fn from_f32;
    sx_gemv_fn gemv;
    sx_gemv_fn rows;     /* NULL: gemv on groups of rows (never mixed across paths) */
    sx_pack16_fn pack16; /* NULL: to_f32 + rounding + transpose */
    sx_i8pack_fn i8pack; /* int8 GEMM panels (quant.h): the scalar entry is the
                          * reference; a path's own one means the path runs that GEMM */
} sx_wtype_kernels;

typedef struct sx_wtype {
    int type;
    const char *name;
    int64_t block;      /* elements per block (1 for F32/F16/BF16) */
    size_t block_bytes; /* bytes per block */
    int quantized;      /* 1: integer codes with per-block scales */
    int act_type;       /* what gemv takes x as: SX_F32, or the type the
                         * activations are quantized to (Q8_0, Q8_K) */
    int storage;        /* 1: may appear in a model file */
    /* quantized types, under BF16 compute: products with up to this many
     * rows of X run the integer kernels, more rows the BF16 GEMM on tiles
     * converted per call (the crossover measured with the AVX-512 kernels;
     * ops_gemm.c) */
    int bf16_rows_max;
    /* the same where the path has the int8 GEMM (AVX-512 with
     * VNNI), against that GEMM instead (ops_gemm.c) */
    int i8_rows_max;
    int i8_mins; /* 1: the int8 GEMM adds each block's min term (Q4_K) */
    /* per SIMD path; NULL entries fall back to the scalar reference
     * (k[SX_SIMD_SCALAR] is always complete) */
    sx_wtype_kernels k[SX_SIMD_N];
} sx_wtype;

/* The entry for a type id, or NULL if this build does not know it. */
const sx_wtype *sx_wtype_of(int type);
/* Entry i of the table (NULL past the end), for listings and tests. */
const sx_wtype *sx_wtype_at(int i);
/* "F32", "Q4_K", ... or "?". */
const char *sx_type_name(int type);
/* Type id by (case-insensitive) name, -1 if unknown. */
int sx_type_from_name(const char *name);
/* Bytes for n elements of type (n must be a multiple of the block size);
 * 0 for an unknown type or a bad n. */
size_t sx_type_nbytes(int type, int64_t n);
/* Bits per weight: 8 * block_bytes / block. */
double sx_type_bpw(int type);

/* Matrix products with quantized weights and M rows of X: M <= m runs the
 * integer kernels (activations quantized once per call, each weight row read
 * once per group of rows), larger M dequantizes the weights into the float
 * GEMM's panels. m = -1 restores the default rule (ops_gemm.c). Results of
 * the integer path do not depend on M's grouping or the thread count. */
int sx_set_quant_rows_max(int64_t m);
/* Under BF16 compute, more rows than that go through the int8 GEMM (quant.h)
 * where the path has one (AVX-512 with VNNI), else the BF16 GEMM on panels
 * converted per call. mode: 1 (default) as said, 0 never, 2 always through
 * the scalar reference of the int8 GEMM (tests). */
int sx_set_i8gemm(int mode);

/* The kernels of a type for the current SIMD path, with the scalar
 * reference filling any kernel the path does not have. */
sx_wtype_kernels sx_wtype_kernels_of(const sx_wtype *t);

/* Reference conversions of n elements (n a multiple of the block); return
 * -1 with an error for an unknown type or a bad n. Quantization is the
 * reference rounding (what scripts/ computes, bit for bit). */
int sx_dequantize(int type, float *y, const void *x, int64_t n);
int sx_quantize(int type, void *y, const float *x, int64_t n);
/* The same for a [rows, K] matrix, rows converted in parallel (same bytes). */
int sx_quantize_rows(int type, void *y, const float *x, int64_t rows, int64_t K);

#ifdef __cplusplus
}
#endif
#endif
