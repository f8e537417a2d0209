/* ops_impl.h - private to the kernel layer.
 *
 * Two kinds of per-ISA kernels:
 *   - sx_kernels: what does not depend on a weight type (the GEMM
 *     micro-kernel on packed float32 panels, the softmax row), one table per
 *     path, filled by ops.c (scalar) and ops_<isa>.c;
 *   - per weight type (conversion, GEMV): named in the type table of
 *     wtype.c, declared below, defined in ops.c (scalar) and ops_<isa>.c.
 * ops.c, ops_gemm.c, ops_attn.c and ops_conv.c are the drivers (blocking,
 * threading) shared by every ISA. */
#ifndef SEEDX_OPS_IMPL_H
#define SEEDX_OPS_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "simd.h"
#include "wtype.h"

struct sx_weight;
struct sx_epilogue;

typedef struct sx_kernels {
    const char *name;
    int mr, nr; /* micro-tile of the GEMM: mr rows of X, nr rows of W */
    /* C[mr,nr] (row stride ldc) = (load_c ? C : 0) + A.B over kc steps, where
     * A is packed [kc][mr] and B packed [kc][nr]. */
    void (*ukr)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int load_c);
    /* The same product with B's panel in its weight's float type (btype
     * SX_F32, SX_F16 or SX_BF16: weights packed once at load in their own
     * type, widened in registers) and only the first `rows` rows of A
     * meaningful (rows <= mr; A still holds mr rows, C gets mr rows).
     * Same arithmetic as ukr: for each output, k in order, one FMA each
     * (the scalar kernel: multiply, then add). NULL: the path packs every
     * weight to float32 per call. */
    void (*ukr_x)(int64_t kc, const float *a, const void *b, int btype, int rows, float *c,
                  int64_t ldc, int load_c);
    /* In place x = softmax(scale * x) over n values (n >= 1, scale > 0);
     * -inf entries become 0. */
    void (*softmax_row)(float *x, int64_t n, float scale);
    /* y[i] = act(x[i]) for i < n, act an SX_ACT_* (y may be x): the
     * activations of sx_gelu/sx_silu and the GEMM epilogue. The scalar set
     * uses sx_act1 (libm's erff/expf); the SIMD sets their own erf and exp
     * (act_f32.h), the same arithmetic for every element of a row. */
    void (*act_row)(float *y, const float *x, int64_t n, int act);
    /* y[i] = (accumulate ? y[i] : 0) + act(c[i] + (bias ? bias[i] : 0)) for
     * i < n (y may be c): the GEMM's fused epilogue on one row, the same
     * bytes as the separate ops (bias add, act_row, add) */
    void (*epilogue_row)(float *y, const float *c, const float *bias, int64_t n, int act,
                         int accumulate);
    /* rows (<= mr) rows of X, ldx apart -> dst[K][mr] (rows past `rows`
     * zero): one row panel of the GEMM's packed A */
    void (*pack_a)(float *dst, const float *x, int64_t ldx, int rows, int mr, int64_t K);
    /* y = LayerNorm(x) over one row of dim values (w, b may be NULL): the
     * row of sx_layernorm (statistics in double) */
    void (*layernorm_row)(float *y, const float *x, const float *w, const float *b, int64_t dim,
                          float eps);
    /* o[d] = sum_j p[j] v[j * ldv + d] for d < D over the n value rows, in
     * key order, each product then added (0 + p[0] v[0] + p[1] v[1] ...):
     * the weighted sum of one query in attention's direct path, every value
     * row read once, in place; the bytes of the scalar loop on every set */
    void (*values_row)(float *o, const float *p, int64_t n, const float *v, int64_t ldv, int D);
} sx_kernels;

/* ---- the BF16 GEMM (compute type BF16: matmul inputs rounded to
 * bfloat16, float32 accumulation) ----
 * Operands, K padded with zeros to Kp (a multiple of SX_BF16_KSTEP):
 *   B, the weight, in the "tile layout": panels of 16 output columns (weight
 *     rows), each Kp/2 rows of 64 bytes; row j of a panel holds the k pair
 *     (2j, 2j+1) of its 16 columns, b[j][n][2]. 16 such rows are the B
 *     operand of AMX's TDPBF16PS, one is the operand of AVX512_BF16's
 *     vdpbf16ps. Panel p starts p*16*Kp elements in; N is padded with zero
 *     columns to a multiple of 32 (kernels work on two panels at a time).
 *   A, the activations, in the kernel's a_layout:
 *     SX_BF16_A_ROWS   - bfloat16 rows, lda elements apart (AMX tile rows);
 *     SX_BF16_A_PANELS - panels of mr rows, pair-interleaved: a[j][r][2]
 *                        (one 32-bit broadcast per row and k pair).
 * Arithmetic: every output is c = 0, then for j = 0, 1, ..: c += a.b at
 * k = 2j+1, then at k = 2j, each product exact and each sum rounded to
 * float32 with denormal inputs and results flushed to zero - what
 * vdpbf16ps does. The scalar, AVX2 and AVX-512 kernels reproduce it bit
 * for bit (float32 FMAs under MXCSR DAZ|FTZ); AMX sums a tile's 32-k step
 * in the hardware's own order (tested within a stated bound). */
#define SX_BF16_KSTEP 32 /* K granularity of the layout (one AMX tile row) */
enum { SX_BF16_A_ROWS = 0, SX_BF16_A_PANELS = 1, SX_BF16_A_PANELS_F32 = 2 };
typedef struct sx_bf16_kernels {
    const char *name;
    int mr;       /* rows of A per micro-kernel call */
    int a_layout; /* SX_BF16_A_ROWS, SX_BF16_A_PANELS, or SX_BF16_A_PANELS_F32 (the
                   * panels layout with each bfloat16 widened to float32, for
                   * kernels that multiply with float32 FMAs) */
    int kc;       /* k pairs per micro-kernel call the driver aims for (cache blocking) */
    int native;   /* 1: BF16 instructions (faster than F32); 0: float32 FMAs */
    /* C[mr, 32] (row stride ldc) = (load_c ? C : 0) + A.B over kp k pairs:
     * a - rows layout: row 0 of the block (lda elements between rows);
     *     panels layout: the panel at its first pair (lda unused);
     * b - the first of two panels at its first pair, the second bstride
     *     elements after it.
     * The kernel may read all mr rows of A and write all mr rows of C; only
     * the first `rows` are meaningful (rows past M are zero in A). */
    void (*ukr)(int64_t kp, const void *a, int64_t lda, int rows, const uint16_t *b,
                int64_t bstride, float *c, int64_t ldc, int load_c);
} sx_bf16_kernels;

/* Rounding to the layouts above (ops_bf16.c), single-threaded, for callers
 * that multiply inside their own parallel tasks (attention, convolution):
 *   A: rows [M, K] of x (row stride ldx floats) -> the current BF16
 *      kernel's A layout, M padded with zero rows to a multiple of mr, K with
 *      zeros to Kp; sx_bf16_a_size(M, K) elements (of 2 bytes, or 4 for
 *      the F32 panels layout: use sx_bf16_a_bytes).
 *   B: columns [n0, n0+N) of W -> the tile layout (sx_bf16_b_bytes(N, K)).
 * sx_bf16_gemm_prepacked: y[M, N] (row stride ldy) = A.B as packed above,
 * c: scratch of sx_bf16_c_floats(M, N). Kp = sx_bf16_kpad(K). */
int64_t sx_bf16_kpad(int64_t K);
size_t sx_bf16_a_bytes(const sx_bf16_kernels *kk, int64_t M, int64_t K);
size_t sx_bf16_b_bytes(int64_t N, int64_t K);
size_t sx_bf16_c_floats(const sx_bf16_kernels *kk, int64_t M, int64_t N);
int sx_bf16_pack_a(const sx_bf16_kernels *kk, void *dst, const float *x, int64_t ldx, int64_t M,
                   int64_t K);
int sx_bf16_pack_b(uint16_t *dst, const struct sx_weight *W, int64_t n0, int64_t N, int64_t K);
void sx_bf16_gemm_prepacked(const sx_bf16_kernels *kk, float *y, int64_t ldy, const void *a,
                            int64_t M, const uint16_t *b, int64_t N, int64_t K, float *c);

/* Float32 arithmetic with denormal inputs read as zero and denormal results
 * flushed to zero (MXCSR DAZ|FTZ on x86, FPCR.FZ on aarch64), as the BF16 dot-product
 * instructions compute; restored by sx_flush_denormals_end. */
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
static inline unsigned sx_flush_denormals_begin(void) {
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);
    return csr;
}
static inline void sx_flush_denormals_end(unsigned csr) { _mm_setcsr(csr); }
#elif defined(__aarch64__)
/* FPCR.FZ (bit 24): denormal inputs and results of float32 arithmetic
 * flushed to zero */
static inline unsigned sx_flush_denormals_begin(void) {
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr)::"memory");
    __asm__ volatile("msr fpcr, %0" ::"r"(fpcr | (1u << 24)) : "memory");
    return (unsigned)fpcr;
}
static inline void sx_flush_denormals_end(unsigned csr) {
    __asm__ volatile("msr fpcr, %0" ::"r"((uint64_t)csr) : "memory");
}
#else
static inline unsigned sx_flush_denormals_begin(void) { return 0; }
static inline void sx_flush_denormals_end(unsigned csr) { (void)csr; }
#endif

/* What sx_weight.packed points to: a matrix packed once, at load, for the
 * compute type of that moment:
 *   SX_PACK_BF16   - the tile layout above (ops_bf16.c), bfloat16;
 *   SX_PACK_PANELS - the float32 GEMM's B layout, panels of nr columns
 *                    [ceil(N/nr)][K][nr], in the weight's own float type
 *                    (F32, F16 or BF16: the same bytes as the stored matrix),
 *                    for the path whose kernels have that nr (ops_gemm.c). */
enum { SX_PACK_BF16 = 1, SX_PACK_PANELS = 2 };
typedef struct sx_packed {
    int layout;         /* SX_PACK_* */
    int trans;          /* of the weight it was packed from */
    int type, nr;       /* PANELS: element type, panel width */
    int64_t N, K, Kp;   /* N: columns packed (BF16: a multiple of 32, zero past the weight's) */
    const void *data;
} sx_packed;
/* F32 compute: bytes of w packed in panels of nr, and the packing (into buf,
 * 64-byte aligned; w->packed points at it). Multi-threaded. */
size_t sx_panels_bytes(const struct sx_weight *w, int nr);
int sx_pack_weight_panels(struct sx_weight *w, void *buf, int nr);
/* The BF16 matrix product (ops_bf16.c): sx_matmul_ep with BF16 compute. */
int sx_matmul_bf16(float *Y, int64_t ldy, const float *X, int64_t ldx, const struct sx_weight *W,
                   const struct sx_epilogue *ep, int64_t M);
/* Packs w in the tile layout into buf (sx_packed_bytes(w) bytes, 64-byte
 * aligned) and points w->packed at it. Multi-threaded. */
size_t sx_packed_bytes(const struct sx_weight *w);
int sx_pack_weight_bf16(struct sx_weight *w, void *buf);
/* The epilogue of the GEMM drivers (ops_gemm.c): y = (accumulate ? y : 0)
 * + act(c + bias) over a block of rows x cols. */
void sx_gemm_epilogue(float *y, int64_t ldy, const float *c, int64_t ldc, int64_t rows,
                      int64_t cols, const float *bias, int act, int accumulate);

extern const sx_bf16_kernels sx_bf16_kernels_scalar;
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
extern const sx_bf16_kernels sx_bf16_kernels_avx2;
extern const sx_bf16_kernels sx_bf16_kernels_avx512;
extern const sx_bf16_kernels sx_bf16_kernels_avx512bf16;
extern const sx_bf16_kernels sx_bf16_kernels_amx;
#endif
#if defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
extern const sx_bf16_kernels sx_bf16_kernels_neon;
#endif
/* The AMX kernel with the tile instructions computed in C (ops_amxemu.c):
 * tests run the AMX code path on any CPU with it. */
extern const sx_bf16_kernels sx_bf16_kernels_amx_emulated;
/* The BF16 kernels of the current path (simd.c). */
const sx_bf16_kernels *sx_bf16_kernels_cur(void);
/* Tests: use k instead of the path's BF16 kernels (NULL: back to the path's). */
void sx_bf16_kernels_override(const sx_bf16_kernels *k);

extern const sx_kernels sx_kernels_scalar;
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
extern const sx_kernels sx_kernels_avx2;
extern const sx_kernels sx_kernels_avx512;
#endif
#if defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
extern const sx_kernels sx_kernels_neon;
#endif
/* The table of the current path (simd.c). */
const sx_kernels *sx_kernels_cur(void);

/* ---- per-type kernels (see sx_gemv_fn / sx_to_f32_fn in wtype.h) ---- */
/* The float GEMVs read four weight rows at a time (one row of X) only when
 * a row holds at least this many bytes: four shorter rows read together
 * are four short streams that the hardware prefetchers do not follow (one
 * head's keys in the KV cache, 600 rows of 512 bytes, 1 thread: 9 GB/s
 * four at a time, 18 GB/s one after the other). The choice depends on the
 * shape only, never on the thread count. */
#define SX_GEMV_1X4_MIN_BYTES 2048
#define SX_GEMV_1X4(K, type)  ((size_t)(K) * ((type) == SX_F32 ? 4u : 2u) >= SX_GEMV_1X4_MIN_BYTES)
#define SX_GEMV_DECL(isa)                                                                     \
    void sx_gemv_f32_##isa(float *y, int64_t ldy, const void *x, size_t ldx, int m,           \
                           const void *w, size_t ldw, int64_t n0, int64_t n1, int64_t K,       \
                           const float *bias);                                                \
    void sx_gemv_f16_##isa(float *y, int64_t ldy, const void *x, size_t ldx, int m,           \
                           const void *w, size_t ldw, int64_t n0, int64_t n1, int64_t K,       \
                           const float *bias);                                                \
    void sx_gemv_bf16_##isa(float *y, int64_t ldy, const void *x, size_t ldx, int m,          \
                            const void *w, size_t ldw, int64_t n0, int64_t n1, int64_t K,      \
                            const float *bias);
SX_GEMV_DECL(scalar)
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
SX_GEMV_DECL(avx2)
SX_GEMV_DECL(avx512)
void sx_f16_to_f32_avx2(float *y, const void *x, int64_t n);
void sx_bf16_to_f32_avx2(float *y, const void *x, int64_t n);
void sx_f16_to_f32_avx512(float *y, const void *x, int64_t n);
void sx_bf16_to_f32_avx512(float *y, const void *x, int64_t n);
void sx_bf16_from_f32_avx2(void *y, const float *x, int64_t n);
void sx_bf16_from_f32_avx512(void *y, const float *x, int64_t n);
#endif
#if defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
SX_GEMV_DECL(neon)
void sx_f16_to_f32_neon(float *y, const void *x, int64_t n);
void sx_bf16_to_f32_neon(float *y, const void *x, int64_t n);
void sx_bf16_from_f32_neon(void *y, const float *x, int64_t n);
#endif

/* One activation on one value: the exact expressions of sx_gelu,
 * sx_gelu_tanh and sx_silu (fused epilogues must match them bit for bit). */
#include <math.h>
static inline float sx_act1(float v, int act) {
    switch (act) {
    case 1: /* SX_ACT_GELU */ return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    case 2: /* SX_ACT_GELU_TANH */
        return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    case 3: /* SX_ACT_SILU */ return v / (1.0f + expf(-v));
    default: return v;
    }
}

/* ---- single-thread GEMM building blocks (ops_gemm.c), for callers that
 * run many small products inside one parallel task (attention) ---- */
struct sx_weight;
/* W rows [n0, n0+N) -> nr-column panels [ceil(N/nr)][K][nr] (zero-padded);
 * -1 if out of memory. */
int sx_gemm_pack_b(float *dst, const struct sx_weight *W, int64_t n0, int64_t N, int64_t K);
/* y[M, N] (row stride ldy) = x[M, K] . B^T with B pre-packed as above
 * (panel stride bK*nr floats; bK = 0: K); ap: scratch of ceil(M/mr)*mr*K. */
void sx_gemm_prepacked(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M,
                       const float *bp, int64_t N, int64_t K, int64_t bK, float *ap);

/* GroupNorm's statistics of one group of n values (ops.c): the mean and
 * 1/sqrt(var + eps), both from sums in double (in a fixed order). */
void sx_groupnorm_stats(const float *x, int64_t n, float eps, float *mean, float *rstd);

/* ---- per-thread scratch (ops.c) ----
 * Buffers grown on demand and kept: fresh large mallocs are mmap'ed and
 * every page faults on first touch, which costs as much as the arithmetic of
 * the small GEMMs inside attention. One slot per use: */
enum {
    SX_SCR_GEMM_A,   /* packed X panels */
    SX_SCR_GEMM_XT,  /* a GEMM task's rows of X, packed per k slice (cached weights) */
    SX_SCR_GEMM_B,   /* packed W panels */
    SX_SCR_ATTN_S,   /* attention scores */
    SX_SCR_CONV_COL, /* conv input bands and tile lists */
    SX_SCR_CONV_W,   /* conv weights packed for the micro-kernel */
    SX_SCR_ATTN_KV,  /* attention's pre-packed keys and values */
    SX_SCR_ACT,      /* quantized activations of the integer GEMV */
    SX_SCR_PACK,     /* one block of converted weight rows while packing */
    SX_SCR_EPI,      /* matmul sums awaiting an accumulating epilogue */
    SX_SCR_QPREP,    /* quantized GEMV: activations rearranged for the kernel */
    SX_SCR_BF16_A,   /* activations rounded to the BF16 kernel's A layout */
    SX_SCR_BF16_B,   /* a K slice of a column task's weights, packed per call */
    SX_SCR_BF16_C,   /* a task's float32 sums before the epilogue */
    SX_SCR_WIDE,     /* one F16/BF16 weight micro-panel widened to float32 */
    SX_SCR_N
};
/* n floats of 64-byte aligned scratch of the calling thread; NULL if out of
 * memory. The contents are not kept between different uses of a slot. */
float *sx_scratch(int slot, size_t n);

/* ---- flash attention inner kernels (driven by ops_attn.c) ----
 * A task is one head x one tile of qt queries, run against the keys and
 * values of its kv head block by block. The two products are transposed so
 * that the queries are the vector lanes and the online-softmax statistics
 * of a tile (running max m, sum l, rescale alpha) are lane-wise vectors:
 *   scores:  S^T[j][i] = k_j . q_i                    (j: key, i: query)
 *   softmax: P^T[j][i] = exp(scale S^T[j][i] - m_i)   (online, F32)
 *   values:  O^T[d][i] = alpha_i O^T[d][i] + sum_j v_j[d] P^T[j][i]
 *   finish:  o[i][d] = O^T[d][i] / l_i
 * The scalar set reads keys and values in place; the SIMD sets pack each
 * kv head once per call (pack_kv) into the panels their register tiles
 * read, and every set packs its query tile (pack_q). A BF16 set would
 * convert while packing and round P^T to BF16 inside `values`. Scores,
 * softmax, O^T and l are F32 on every set. */
#define SX_ATTN_QT_MAX 64
typedef struct sx_attn_kv {
    const float *k, *v; /* key / value rows of the kv head */
    int64_t ldk, ldv;   /* token strides */
    int64_t Tk;
    const void *packed; /* the set's copy (pack_kv), else NULL */
} sx_attn_kv;

typedef struct sx_attn_kernels {
    const char *name;
    int qt; /* queries per tile (<= SX_ATTN_QT_MAX): rows of S^T and O^T are qt floats */
    int kt; /* `scores` makes S^T rows in multiples of kt keys */
    int dt; /* O^T has head_dim rounded up to a multiple of dt rows */
    /* optional (NULL: none): bytes of one kv head's packed copy; packing of
     * its keys/values [j0, j1) (j0 a multiple of kt) into that copy */
    size_t (*kv_bytes)(int64_t Tk, int D);
    void (*pack_kv)(void *dst, const sx_attn_kv *kv, int D, int64_t j0, int64_t j1);
    /* bytes of one packed query tile; pack_q zero-fills lanes nq..qt-1 */
    size_t (*q_bytes)(int D);
    void (*pack_q)(void *dst, const float *q, int64_t ldq, int nq, int D);
    /* st[nk][qt] = S^T of keys [k0, k0+nk); k0, nk multiples of kt; rows of
     * keys past Tk hold anything finite (the softmax masks them) */
    void (*scores)(float *st, const sx_attn_kv *kv, const void *qp, int64_t k0, int64_t nk, int D);
    /* ot[Dp][qt] = (alpha ? alpha .* ot : 0) + V[k0, k0+nk)^T . pt[nk][qt]
     * (k0 + nk <= Tk) */
    void (*values)(float *ot, const sx_attn_kv *kv, const float *pt, int64_t k0, int64_t nk, int D,
                   const float *alpha);
    /* One block of the online softmax, in place on st[nk][qt]: row j of lane
     * i is visible iff j < vis[i] (vis NULL: all nk rows). With t = scale*s
     * over the visible rows: m' = max(m, max t); alpha = exp(m - m');
     * p = exp(t - m') (0 where not visible); l = alpha l + sum p; m = m'.
     * A lane with no visible row so far keeps m = -inf, l = 0, p = 0. */
    void (*softmax)(float *st, int64_t nk, const int32_t *vis, float scale, float *m, float *l,
                    float *alpha);
    /* o[i][d] = ot[d][i] * (1 / l[i]) for i < nq, d < D (0 where l[i] = 0),
     * o with row stride ldo */
    void (*finish)(float *o, int64_t ldo, const float *ot, const float *l, int nq, int D);
} sx_attn_kernels;

/* The conv panel of output channels c0 .. c0+n-1 from SX_PACK_PANELS
 * weights, one element at a time (ops_conv.c; the scalar and AVX2 sets). */
void sx_conv_pack_w_panels(float *dst, int mr, const void *pdata, int type, int pnr, int64_t K,
                           int64_t c0, int n);

/* d[j*ldd + r] = s[r*lds + j] for 16 rows r and j < n_words (a multiple of
 * 16): 32-bit words (bfloat16 k pairs, floats) of 16 weight rows into the
 * column order of a packed panel (ops_bf16.c and ops_gemm.c do the same
 * word by word on other paths). */
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
void sx_transpose16_u32_avx512(uint32_t *d, int64_t ldd, const uint32_t *s, int64_t lds,
                               int64_t n_words);
#endif

/* The float32 kernel set <prefix>_scalar / _avx2 / _avx512 / _neon of the
 * current SIMD path (AMX runs AVX-512's float32 kernels, as the GEMM does). */
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
#define SX_F32_SET(prefix)                                                                         \
    (sx_simd_level() == SX_SIMD_AVX2     ? &prefix##_avx2                                          \
     : sx_simd_level() == SX_SIMD_AVX512 ? &prefix##_avx512                                        \
     : sx_simd_level() == SX_SIMD_AMX    ? &prefix##_avx512                                        \
                                         : &prefix##_scalar)
#elif defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
#define SX_F32_SET(prefix) (sx_simd_level() == SX_SIMD_NEON ? &prefix##_neon : &prefix##_scalar)
#else
#define SX_F32_SET(prefix) (&prefix##_scalar)
#endif

/* Scalar F32 helpers (ops_attn.c): a query tile as [D][qt]; the finish. */
void sx_attn_f32_pack_q(void *dst, const float *q, int64_t ldq, int nq, int D, int qt);
void sx_attn_f32_finish(float *o, int64_t ldo, const float *ot, const float *l, int nq, int D,
                        int qt);

extern const sx_attn_kernels sx_attn_scalar;
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
extern const sx_attn_kernels sx_attn_avx2;
extern const sx_attn_kernels sx_attn_avx512;
#endif
#if defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
extern const sx_attn_kernels sx_attn_neon;
#endif
/* The set of the current SIMD path (ops_attn.c). */
const sx_attn_kernels *sx_attn_kernels_cur(void);

/* ---- convolution micro-kernels (driven by ops_conv.c) ----
 * One register tile of the implicit GEMM Y[co][p] = sum_k W[co][k] X[k][p]:
 * mr output channels (the broadcast operand: packed weights, mr floats per
 * k) x nr pixels (the vector lanes), with the rows of X read where they lie:
 *   c[r][j] = (load_c ? c[r][j] : 0)
 *           + sum over ci < nci, t < ntaps (in that order) of
 *             a[(ci*ntaps + t)*mr + r] * x[ci*cs + toff[t] + j]
 * (c with row stride ldc): x is a band of the input (ops_conv.c) and toff
 * the offset of each kernel tap in it, so a convolution needs no im2col; a
 * packed panel of X rows is the case ntaps = 1, cs = nr. Each element is a
 * plain running sum over k, so splitting k across calls gives the same
 * bytes. */
typedef struct sx_conv_kernels {
    const char *name;
    int mr, nr;
    void (*ukr)(int nci, int ntaps, const int64_t *toff, const float *a, const float *x, int64_t cs,
                float *c, int64_t ldc, int load_c);
    /* the panel of mr output channels: dst[k][r] = r < n ? w[r*ldw + k] : 0
     * for k < K, r < mr */
    void (*pack_w)(float *dst, const float *w, int64_t ldw, int n, int64_t K);
    /* the same panel from a weight packed at load (SX_PACK_PANELS: panels of
     * pnr columns, element type `type`, data at pdata): output channels
     * (panel columns) c0 .. c0+n-1 */
    void (*pack_w_panels)(float *dst, const void *pdata, int type, int pnr, int64_t K, int64_t c0,
                          int n);
    /* y[r][j] (row stride ldy) = (accumulate ? y[r][j] : 0) + (c[r][j] +
     * (bias ? bias[r] : 0)) for r < rows, j < cols (c with row stride ldc):
     * a finished tile out */
    void (*store)(float *y, int64_t ldy, const float *c, int64_t ldc, const float *bias, int rows,
                  int cols, int accumulate);
    /* In place on n input values of one channel: v = ((v - mean) * rstd) *
     * w + b (the arithmetic of sx_groupnorm), then, if silu, v / (1 +
     * exp(-v)): the prologue of sx_conv2d_fused. The scalar set uses expf
     * (the bytes of sx_groupnorm + sx_silu); the SIMD sets their exp. */
    void (*prologue)(float *v, int64_t n, float mean, float rstd, float w, float b, int silu);
} sx_conv_kernels;

extern const sx_conv_kernels sx_conv_scalar;
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
extern const sx_conv_kernels sx_conv_avx2;
extern const sx_conv_kernels sx_conv_avx512;
#endif
#if defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
extern const sx_conv_kernels sx_conv_neon;
#endif
/* The set of the current SIMD path (ops_conv.c). */
const sx_conv_kernels *sx_conv_kernels_cur(void);

/* Optional CPU features a kernel may branch on (AArch64 hwcaps, simd.c; 0
 * elsewhere): e.g. quantized dot products with vdotq_s32 need SX_CPU_DOTPROD. */
enum {
    SX_CPU_NEON = 1 << 0,
    SX_CPU_DOTPROD = 1 << 1, /* asimddp: SDOT/UDOT */
    SX_CPU_FP16 = 1 << 2,    /* asimdhp: FP16 vector arithmetic */
    SX_CPU_BF16 = 1 << 3,    /* BFDOT/BFMMLA */
    SX_CPU_I8MM = 1 << 4,    /* SMMLA */
    SX_CPU_SVE = 1 << 5,
};
unsigned sx_cpu_flags(void);

#endif
