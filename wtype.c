/* wtype.c - the table of storage types (see wtype.h) and the scalar
 * reference conversions. The SIMD kernels of each type live in
 * ops_<isa>.c and are named here, one row per type. */
#include <ctype.h>
#include <string.h>

#include "half.h"
#include "ops_impl.h"
#include "quant.h"
#include "sx_core.h"
#include "wtype.h"

/* ---- scalar reference conversions ------------------------------------ */

static void f32_to_f32(float *y, const void *x, int64_t n) { memcpy(y, x, (size_t)n * sizeof *y); }
static void f32_from_f32(void *y, const float *x, int64_t n) { memcpy(y, x, (size_t)n * sizeof *x); }

/* F16/BF16 rows may sit at odd addresses inside a file: read bytes. */
static void f16_to_f32(float *y, const void *x, int64_t n) {
    const uint8_t *p = x;
    for (int64_t i = 0; i < n; i++) y[i] = sx_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
}
static void f16_from_f32(void *y, const float *x, int64_t n) {
    uint8_t *p = y;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = sx_f32_to_f16(x[i]);
        p[2 * i] = (uint8_t)h;
        p[2 * i + 1] = (uint8_t)(h >> 8);
    }
}
static void bf16_to_f32(float *y, const void *x, int64_t n) {
    const uint8_t *p = x;
    for (int64_t i = 0; i < n; i++) y[i] = sx_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
}
static void bf16_from_f32(void *y, const float *x, int64_t n) {
    uint8_t *p = y;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = sx_f32_to_bf16(x[i]);
        p[2 * i] = (uint8_t)h;
        p[2 * i + 1] = (uint8_t)(h >> 8);
    }
}

/* ---- the table -------------------------------------------------------- */

#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
#define X86(f) f
#else
#define X86(f) NULL
#endif
#if defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
#define ARM(f) f
#else
#define ARM(f) NULL
#endif

static const sx_wtype table[] = {
    {.type = SX_F32,
     .name = "F32",
     .block = 1,
     .block_bytes = 4,
     .act_type = SX_F32,
     .storage = 1,
     .k = {[SX_SIMD_SCALAR] = {f32_to_f32, f32_from_f32, sx_gemv_f32_scalar, NULL},
           [SX_SIMD_AVX2] = {NULL, NULL, X86(sx_gemv_f32_avx2), NULL},
           [SX_SIMD_AVX512] = {NULL, NULL, X86(sx_gemv_f32_avx512), NULL},
           [SX_SIMD_NEON] = {NULL, NULL, ARM(sx_gemv_f32_neon), NULL}}},
    {.type = SX_F16,
     .name = "F16",
     .block = 1,
     .block_bytes = 2,
     .act_type = SX_F32,
     .storage = 1,
     .k = {[SX_SIMD_SCALAR] = {f16_to_f32, f16_from_f32, sx_gemv_f16_scalar, NULL},
           [SX_SIMD_AVX2] = {X86(sx_f16_to_f32_avx2), NULL, X86(sx_gemv_f16_avx2), NULL},
           [SX_SIMD_AVX512] = {X86(sx_f16_to_f32_avx512), NULL, X86(sx_gemv_f16_avx512), NULL},
           [SX_SIMD_NEON] = {ARM(sx_f16_to_f32_neon), NULL, ARM(sx_gemv_f16_neon), NULL}}},
    {.type = SX_BF16,
     .name = "BF16",
     .block = 1,
     .block_bytes = 2,
     .act_type = SX_F32,
     .storage = 1,
     .k = {[SX_SIMD_SCALAR] = {bf16_to_f32, bf16_from_f32, sx_gemv_bf16_scalar, NULL},
           [SX_SIMD_AVX2] = {X86(sx_bf16_to_f32_avx2), X86(sx_bf16_from_f32_avx2),
                             X86(sx_gemv_bf16_avx2), NULL},
           [SX_SIMD_AVX512] = {X86(sx_bf16_to_f32_avx512), X86(sx_bf16_from_f32_avx512),
                               X86(sx_gemv_bf16_avx512), NULL},
           [SX_SIMD_NEON] = {ARM(sx_bf16_to_f32_neon), ARM(sx_bf16_from_f32_neon),
                             ARM(sx_gemv_bf16_neon), NULL}}},
    /* Quantized types (quant.h: layouts; quant.c, quant_<isa>.c: kernels).
     * The integer GEMV takes the activations quantized to act_type. */
    {.type = SX_Q8_0,
     .name = "Q8_0",
     .block = SX_QK,
     .block_bytes = SX_Q8_0_BYTES,
     .quantized = 1,
     .act_type = SX_Q8_0,
     .storage = 1,
     .bf16_rows_max = 10,
     .i8_rows_max = 5,
     .k = {[SX_SIMD_SCALAR] = {sx_q8_0_to_f32, sx_q8_0_from_f32, sx_gemv_q8_0_scalar, NULL, NULL,
                               sx_q8_0_i8pack},
           [SX_SIMD_AVX2] = {X86(sx_q8_0_to_f32_avx2), X86(sx_q8_0_from_f32_avx2),
                             X86(sx_gemv_q8_0_avx2), NULL},
           [SX_SIMD_AVX512] = {X86(sx_q8_0_to_f32_avx512), X86(sx_q8_0_from_f32_avx512),
                               X86(sx_gemv_q8_0_avx512), X86(sx_qrows_q8_0_avx512),
                               X86(sx_q8_0_pack16_avx512), X86(sx_q8_0_i8pack_avx512)},
           [SX_SIMD_NEON] = {NULL, NULL, ARM(sx_gemv_q8_0_neon), NULL}}},
    {.type = SX_Q4_0,
     .name = "Q4_0",
     .block = SX_QK,
     .block_bytes = SX_Q4_0_BYTES,
     .quantized = 1,
     .act_type = SX_Q8_0,
     .storage = 1,
     .bf16_rows_max = 20,
     .i8_rows_max = 8,
     .k = {[SX_SIMD_SCALAR] = {sx_q4_0_to_f32, sx_q4_0_from_f32, sx_gemv_q4_0_scalar, NULL, NULL,
                               sx_q4_0_i8pack},
           [SX_SIMD_AVX2] = {X86(sx_q4_0_to_f32_avx2), NULL, X86(sx_gemv_q4_0_avx2), NULL},
           [SX_SIMD_AVX512] = {X86(sx_q4_0_to_f32_avx512), NULL, X86(sx_gemv_q4_0_avx512),
                               X86(sx_qrows_q4_0_avx512), X86(sx_q4_0_pack16_avx512),
                               X86(sx_q4_0_i8pack_avx512)},
           [SX_SIMD_NEON] = {NULL, NULL, ARM(sx_gemv_q4_0_neon), NULL}}},
    {.type = SX_Q4_K,
     .name = "Q4_K",
     .block = SX_QKK,
     .block_bytes = SX_Q4_K_BYTES,
     .quantized = 1,
     .act_type = SX_Q8_K,
     .storage = 1,
     .bf16_rows_max = 24,
     .i8_rows_max = 20,
     .i8_mins = 1,
     .k = {[SX_SIMD_SCALAR] = {sx_q4_k_to_f32, sx_q4_k_from_f32, sx_gemv_q4_k_scalar, NULL, NULL,
                               sx_q4_k_i8pack},
           [SX_SIMD_AVX2] = {X86(sx_q4_k_to_f32_avx2), NULL, X86(sx_gemv_q4_k_avx2), NULL},
           [SX_SIMD_AVX512] = {X86(sx_q4_k_to_f32_avx512), NULL, X86(sx_gemv_q4_k_avx512), NULL,
                               X86(sx_q4_k_pack16_avx512), X86(sx_q4_k_i8pack_avx512)}}},
    /* activations only: never in a file, no GEMV of its own */
    {.type = SX_Q8_K,
     .name = "Q8_K",
     .block = SX_QKK,
     .block_bytes = SX_Q8_K_BYTES,
     .quantized = 1,
     .act_type = SX_Q8_K,
     .k = {[SX_SIMD_SCALAR] = {sx_q8_k_to_f32, sx_q8_k_from_f32, NULL, NULL},
           [SX_SIMD_AVX2] = {NULL, X86(sx_q8_k_from_f32_avx2), NULL, NULL},
           [SX_SIMD_AVX512] = {NULL, X86(sx_q8_k_from_f32_avx512), NULL, NULL}}},
};
#define N_TYPES ((int)(sizeof table / sizeof table[0]))

const sx_wtype *sx_wtype_of(int type) {
    for (int i = 0; i < N_TYPES; i++)
        if (table[i].type == type) return &table[i];
    return NULL;
}

const sx_wtype *sx_wtype_at(int i) { return i >= 0 && i < N_TYPES ? &table[i] : NULL; }

const char *sx_type_name(int type) {
    const sx_wtype *t = sx_wtype_of(type);
    return t ? t->name : "?";
}

int sx_type_from_name(const char *name) {
    for (int i = 0; name && i < N_TYPES; i++) {
        const char *a = table[i].name, *b = name;
        while (*a && *b && tolower((unsigned char)*a) == tolower((unsigned char)*b)) a++, b++;
        if (!*a && !*b) return table[i].type;
    }
    return -1;
}

size_t sx_type_nbytes(int type, int64_t n) {
    const sx_wtype *t = sx_wtype_of(type);
    if (!t || n < 0 || n % t->block) return 0;
    uint64_t nb = (uint64_t)(n / t->block);
    if (nb > SIZE_MAX / t->block_bytes) return 0;
    return (size_t)nb * t->block_bytes;
}

double sx_type_bpw(int type) {
    const sx_wtype *t = sx_wtype_of(type);
    return t ? 8.0 * (double)t->block_bytes / (double)t->block : 0.0;
}

sx_wtype_kernels sx_wtype_kernels_of(const sx_wtype *t) {
    sx_wtype_kernels k = t->k[SX_SIMD_SCALAR], s = t->k[sx_simd_vec_level()];
    if (s.to_f32) k.to_f32 = s.to_f32;
    if (s.from_f32) k.from_f32 = s.from_f32;
    if (s.gemv) k.gemv = s.gemv;
    k.rows = s.rows; /* only with this path's own gemv: bit-identical to it */
    k.pack16 = s.pack16;
    k.i8pack = s.i8pack;
    return k;
}

static const sx_wtype *checked(int type, int64_t n, const char *what) {
    const sx_wtype *t = sx_wtype_of(type);
    if (!t) return sx_err("%s: unknown tensor type %d", what, type), NULL;
    if (n < 0 || n % t->block)
        return sx_err("%s: %lld elements of %s: not a multiple of its block of %lld", what,
                      (long long)n, t->name, (long long)t->block),
               NULL;
    return t;
}

int sx_dequantize(int type, float *y, const void *x, int64_t n) {
    const sx_wtype *t = checked(type, n, "sx_dequantize");
    if (!t) return -1;
    t->k[SX_SIMD_SCALAR].to_f32(y, x, n);
    return 0;
}

int sx_quantize(int type, void *y, const float *x, int64_t n) {
    const sx_wtype *t = checked(type, n, "sx_quantize");
    if (!t) return -1;
    if (!t->k[SX_SIMD_SCALAR].from_f32) return sx_err("sx_quantize: no quantizer for %s", t->name);
    t->k[SX_SIMD_SCALAR].from_f32(y, x, n);
    return 0;
}

/* sx_quantize over rows, in parallel (each row is converted by one thread:
 * the same bytes whatever the thread count) */
typedef struct {
    int type;
    void *dst;
    const float *src;
    int64_t K;
} quant_job;

static void quant_rows_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    quant_job *j = ctx;
    size_t rb = sx_type_nbytes(j->type, j->K);
    sx_from_f32_fn q = sx_wtype_of(j->type)->k[SX_SIMD_SCALAR].from_f32;
    for (int64_t r = b; r < e; r++) q((char *)j->dst + (size_t)r * rb, j->src + r * j->K, j->K);
}

int sx_quantize_rows(int type, void *dst, const float *src, int64_t rows, int64_t K) {
    const sx_wtype *t = checked(type, K, "sx_quantize_rows");
    if (!t) return -1;
    if (!t->k[SX_SIMD_SCALAR].from_f32 || rows < 0 || !dst || !src)
        return sx_err("sx_quantize_rows: bad arguments (%s, %lld rows)", t->name, (long long)rows);
    quant_job j = {type, dst, src, K};
    sx_parallel_for(rows, 8, quant_rows_task, &j);
    return 0;
}
