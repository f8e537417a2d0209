/* ops_bf16.c - the BF16 compute type: matmul inputs rounded to bfloat16,
 * float32 sums (see ops.h, sx_set_compute). Here: the compute switch, the
 * packing into the tile layout (weights once at load, activations per call),
 * the scalar reference kernel, and the multi-threaded driver shared by every
 * path's kernel (ops_avx2.c, ops_avx512.c, ops_avx512bf16.c, ops_amx.c). */
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "ops_impl.h"
#include "ops.h"
#include "sx_core.h"

/* ---- the switch -------------------------------------------------------- */

static int compute_mode = SX_COMPUTE_F32;

int sx_set_compute(int mode) {
    if (mode != SX_COMPUTE_F32 && mode != SX_COMPUTE_BF16)
        return sx_err("compute type must be f32 or bf16 (got %d)", mode);
    compute_mode = mode;
    return 0;
}

int sx_compute(void) { return compute_mode; }

const char *sx_compute_name(int mode) {
    return mode == SX_COMPUTE_F32 ? "f32" : mode == SX_COMPUTE_BF16 ? "bf16" : "?";
}

int sx_compute_bf16_native(void) { return sx_bf16_kernels_cur()->native; }

const char *sx_compute_bf16_kernel(void) { return sx_bf16_kernels_cur()->name; }

int sx_compute_from_name(const char *name) {
    if (name && !strcmp(name, "f32")) return SX_COMPUTE_F32;
    if (name && !strcmp(name, "bf16")) return SX_COMPUTE_BF16;
    return -1;
}

/* ---- sizes ------------------------------------------------------------- */

int64_t sx_bf16_kpad(int64_t K) { return (K + SX_BF16_KSTEP - 1) / SX_BF16_KSTEP * SX_BF16_KSTEP; }
static int64_t npad(int64_t N) { return (N + 31) / 32 * 32; }
static int64_t mpad(const sx_bf16_kernels *kk, int64_t M) { return (M + kk->mr - 1) / kk->mr * kk->mr; }

size_t sx_bf16_a_bytes(const sx_bf16_kernels *kk, int64_t M, int64_t K) {
    size_t el = kk->a_layout == SX_BF16_A_PANELS_F32 ? 4 : 2;
    return (size_t)mpad(kk, M) * (size_t)sx_bf16_kpad(K) * el;
}

size_t sx_bf16_b_bytes(int64_t N, int64_t K) { return (size_t)npad(N) * (size_t)sx_bf16_kpad(K) * 2; }

size_t sx_bf16_c_floats(const sx_bf16_kernels *kk, int64_t M, int64_t N) {
    return (size_t)mpad(kk, M) * (size_t)npad(N);
}

/* ---- the scalar reference kernel ----------------------------------------
 * A in float32 panels (a[j][r][2]: the bfloat16 values widened); per output
 * the sum over k pairs j of a.b at 2j+1, then at 2j, each rounded to float32
 * (products of two bfloat16 are exact) under DAZ|FTZ. */
#define SCB_MR 4
static float bfv(uint16_t h) { return sx_bf16_to_f32(h); }

__attribute__((noinline)) static void ukr_scalar_body(int64_t kp, const float *a, const uint16_t *b,
                                                      int64_t bstride, float *c, int64_t ldc,
                                                      int load_c) {
    float acc[SCB_MR][32];
    for (int i = 0; i < SCB_MR; i++)
        for (int n = 0; n < 32; n++) acc[i][n] = load_c ? c[i * ldc + n] : 0.0f;
    for (int64_t j = 0; j < kp; j++) {
        const float *aj = a + j * SCB_MR * 2;
        for (int h = 0; h < 2; h++) {
            const uint16_t *bj = b + h * bstride + j * 32;
            for (int i = 0; i < SCB_MR; i++)
                for (int n = 0; n < 16; n++) {
                    float s = acc[i][h * 16 + n];
                    s += aj[2 * i + 1] * bfv(bj[2 * n + 1]);
                    s += aj[2 * i] * bfv(bj[2 * n]);
                    acc[i][h * 16 + n] = s;
                }
        }
    }
    for (int i = 0; i < SCB_MR; i++)
        for (int n = 0; n < 32; n++) c[i * ldc + n] = acc[i][n];
}

static void ukr_scalar(int64_t kp, const void *a, int64_t lda, int rows, const uint16_t *b,
                       int64_t bstride, float *c, int64_t ldc, int load_c) {
    (void)lda, (void)rows;
    unsigned csr = sx_flush_denormals_begin();
    ukr_scalar_body(kp, a, b, bstride, c, ldc, load_c);
    sx_flush_denormals_end(csr);
}

const sx_bf16_kernels sx_bf16_kernels_scalar = {
    .name = "scalar", .mr = SCB_MR, .a_layout = SX_BF16_A_PANELS_F32, .kc = 128, .ukr = ukr_scalar};

/* ---- packing ------------------------------------------------------------ */

/* float32 -> bfloat16 rows (round to nearest even): the current path's
 * conversion of the type table */
static sx_from_f32_fn bf16_rounder(void) { return sx_wtype_kernels_of(sx_wtype_of(SX_BF16)).from_f32; }

/* A: rows [M, K] of x -> the kernel's layout (zero rows past M, zeros past
 * K), for the mr-row panels [p0, p1). Each row is rounded into a contiguous
 * bfloat16 row (padded to Kp), then its k pairs (32-bit words) are spread
 * to the panel. */
static int pack_a_panels(const sx_bf16_kernels *kk, void *dst, const float *x, int64_t ldx,
                         int64_t M, int64_t K, int64_t p0, int64_t p1) {
    int mr = kk->mr;
    int64_t Kp = sx_bf16_kpad(K), kp = Kp / 2;
    uint16_t *tmp = (uint16_t *)sx_scratch(SX_SCR_PACK, (size_t)Kp / 2 + 16);
    sx_from_f32_fn round_row = bf16_rounder();
    if (!tmp) return -1;
    for (int64_t p = p0; p < p1; p++) {
        for (int r = 0; r < mr; r++) {
            int64_t m = p * mr + r;
            uint16_t *row = kk->a_layout == SX_BF16_A_ROWS ? (uint16_t *)dst + m * Kp : tmp;
            if (m < M) {
                round_row(row, x + m * ldx, K);
                memset(row + K, 0, sizeof *row * (size_t)(Kp - K));
            } else {
                memset(row, 0, sizeof *row * (size_t)Kp);
            }
            if (kk->a_layout == SX_BF16_A_PANELS) {
                uint32_t *d = (uint32_t *)dst + p * mr * kp + r;
                const uint32_t *s = (const uint32_t *)row;
                for (int64_t j = 0; j < kp; j++) d[j * mr] = s[j];
            } else if (kk->a_layout == SX_BF16_A_PANELS_F32) {
                float *d = (float *)dst + p * mr * Kp + 2 * r;
                for (int64_t j = 0; j < kp; j++) {
                    d[j * 2 * mr] = sx_bf16_to_f32(row[2 * j]);
                    d[j * 2 * mr + 1] = sx_bf16_to_f32(row[2 * j + 1]);
                }
            }
        }
    }
    return 0;
}

int sx_bf16_pack_a(const sx_bf16_kernels *kk, void *dst, const float *x, int64_t ldx, int64_t M,
                   int64_t K) {
    return pack_a_panels(kk, dst, x, ldx, M, K, 0, mpad(kk, M) / kk->mr);
}

typedef struct {
    const sx_bf16_kernels *kk;
    void *dst;
    const float *x;
    int64_t ldx, M, K;
    _Atomic int failed;
} apack_job;

static void apack_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    apack_job *J = ctx;
    if (pack_a_panels(J->kk, J->dst, J->x, J->ldx, J->M, J->K, b, e) != 0) J->failed = 1;
}

/* B: columns [n0, n0+N) of W -> the tile layout, 16-column panels [p0, p1)
 * (zero columns past N), k pairs [k0, k0 + kc) of each column (values past
 * W->K are zeros; 2 k0 is a multiple of W's block). Each weight row is
 * converted by its type's kernel and rounded into a contiguous bfloat16 row
 * (padded to 2 kc), whose k pairs (32-bit words) are then spread to the
 * panel; or, where the path has one, the type's pack16 kernel does all of
 * it for 16 rows. Transposed (float) weights: row k of the stored [K, N]
 * matrix gives k of 16 columns. */
static int pack_b_panels(uint16_t *dst, const sx_weight *W, int64_t n0, int64_t N, int64_t k0,
                         int64_t kc, int64_t p0, int64_t p1) {
    const sx_wtype *wt = sx_wtype_of(W->type);
    sx_wtype_kernels tk = sx_wtype_kernels_of(wt);
    sx_to_f32_fn to_f32 = tk.to_f32;
    int64_t Kp = 2 * kc, kp = kc, kv0 = 2 * k0;     /* values [kv0, kv0 + Kp) of each column */
    int64_t kn = W->K - kv0 < Kp ? W->K - kv0 : Kp; /* of them in W; the rest are zeros */
    size_t rb = sx_type_nbytes(W->type, W->ld), koff = sx_type_nbytes(W->type, kv0);
    /* scratch: one row as float32 (K, or 16 columns), then the panel's 16
     * rows as bfloat16 (Kp each) */
    float *f = sx_scratch(SX_SCR_PACK, (size_t)(Kp + 8 * Kp + 32));
    sx_from_f32_fn round_row = bf16_rounder();
    if (!f) return -1;
    uint16_t *h = (uint16_t *)(f + Kp + 16);
    for (int64_t p = p0; p < p1; p++) {
        uint32_t *d = (uint32_t *)(dst + p * 16 * Kp);
        int64_t c0 = n0 + p * 16;
        int cols = N - p * 16 < 16 ? (int)(N - p * 16) : 16;
        if (cols < 0) cols = 0;
        if (cols < 16) memset(d, 0, sizeof *d * (size_t)(16 * kp));
        if (!W->trans && tk.pack16 && cols == 16 && kn == Kp) { /* straight from the codes */
            const void *rows[16];
            for (int n = 0; n < 16; n++)
                rows[n] = (const char *)W->data + (size_t)(c0 + n) * rb + koff;
            tk.pack16(d, rows, Kp);
        } else if (!W->trans) {
            for (int n = 0; n < cols; n++) {
                const char *src = (const char *)W->data + (size_t)(c0 + n) * rb + koff;
                const float *row = (const float *)src;
                if (W->type != SX_F32 || ((uintptr_t)src & 3)) {
                    to_f32(f, src, kn);
                    row = f;
                }
                round_row(h + n * Kp, row, kn);
                memset(h + n * Kp + kn, 0, sizeof *h * (size_t)(Kp - kn));
            }
            /* pairs of row n -> column n of the panel, 16 pairs of each row
             * at a time: reads and writes stay in L1 (a whole row at a time
             * wrote one pair per cache line of the panel) */
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
            if (sx_simd_level() == SX_SIMD_AVX512 || sx_simd_level() == SX_SIMD_AMX) {
                memset(h + cols * Kp, 0, sizeof *h * (size_t)((16 - cols) * Kp));
                sx_transpose16_u32_avx512(d, 16, (const uint32_t *)h, kp, kp);
                continue;
            }
#endif
            for (int64_t j0 = 0; j0 < kp; j0 += 16) {
                int64_t jn = kp - j0 < 16 ? kp - j0 : 16;
                for (int n = 0; n < cols; n++) {
                    const uint32_t *s = (const uint32_t *)(h + n * Kp) + j0;
                    for (int64_t j = 0; j < jn; j++) d[(j0 + j) * 16 + n] = s[j];
                }
            }
        } else {
            uint16_t *dh = (uint16_t *)d;
            if (cols < 16 || kn & 1) memset(d, 0, sizeof *d * (size_t)(16 * kp));
            for (int64_t k = 0; k < kn && cols > 0; k++) {
                to_f32(f,
                       (const char *)W->data + (size_t)(kv0 + k) * rb + sx_type_nbytes(W->type, c0),
                       cols);
                round_row(h, f, cols);
                for (int n = 0; n < cols; n++) dh[(k / 2) * 32 + 2 * n + (k & 1)] = h[n];
            }
            for (int64_t k = kn; k < Kp; k++)
                for (int n = 0; n < 16; n++) dh[(k / 2) * 32 + 2 * n + (k & 1)] = 0;
        }
    }
    return 0;
}

int sx_bf16_pack_b(uint16_t *dst, const sx_weight *W, int64_t n0, int64_t N, int64_t K) {
    return pack_b_panels(dst, W, n0, N, 0, sx_bf16_kpad(K) / 2, 0, npad(N) / 16);
}

typedef struct {
    uint16_t *dst;
    const sx_weight *W;
    int64_t n0, N, K;
    _Atomic int failed;
} bpack_job;

static void bpack_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    bpack_job *J = ctx;
    if (pack_b_panels(J->dst, J->W, J->n0, J->N, 0, sx_bf16_kpad(J->K) / 2, b, e) != 0)
        J->failed = 1;
}

/* ---- weights packed once ------------------------------------------------ */

#define PACK_HDR 64 /* the sx_packed header, then the data (64-byte aligned) */

size_t sx_packed_bytes(const sx_weight *w) { return PACK_HDR + sx_bf16_b_bytes(w->N, w->K); }

int sx_pack_weight_bf16(sx_weight *w, void *buf) {
    const sx_wtype *wt = sx_wtype_of(w->type);
    if (!wt || !wt->storage || w->K % wt->block || (wt->quantized && w->trans))
        return sx_err("packing '%s': type %s cannot be packed", w->name ? w->name : "?",
                      sx_type_name(w->type));
    sx_packed *pk = buf;
    uint16_t *data = (uint16_t *)((char *)buf + PACK_HDR);
    bpack_job J = {data, w, 0, w->N, w->K, 0};
    sx_parallel_for(npad(w->N) / 16, 4, bpack_task, &J);
    if (J.failed) return sx_err("packing '%s': out of memory", w->name ? w->name : "?");
    *pk = (sx_packed){SX_PACK_BF16, w->trans, SX_BF16, 32, npad(w->N), w->K, sx_bf16_kpad(w->K), data};
    w->packed = pk;
    w->packed_n0 = 0;
    return 0;
}

int sx_weight_pack(sx_weight *w) {
    if (!w || !w->data) return sx_err("sx_weight_pack: NULL weight");
    int bf16 = sx_compute() == SX_COMPUTE_BF16, nr = sx_kernels_cur()->nr;
    const sx_wtype *wt = sx_wtype_of(w->type);
    /* per call: quantized weights (as at load, ops_gemm.c), and float ones
     * on a path without a packed-panel kernel */
    if (!wt || wt->quantized || (!bf16 && !sx_kernels_cur()->ukr_x)) return 0;
    void *buf = NULL;
    size_t bytes = bf16 ? sx_packed_bytes(w) : sx_panels_bytes(w, nr);
    if (posix_memalign(&buf, 64, bytes) != 0)
        return sx_err("sx_weight_pack: out of memory for %zu bytes ('%s')", bytes,
                      w->name ? w->name : "?");
    if ((bf16 ? sx_pack_weight_bf16(w, buf) : sx_pack_weight_panels(w, buf, nr)) != 0) {
        free(buf);
        return -1;
    }
    return 0;
}

void sx_weight_unpack(sx_weight *w) {
    if (!w) return;
    free((void *)w->packed);
    w->packed = NULL;
    w->packed_n0 = 0;
}

/* ---- the driver ---------------------------------------------------------
 *   1. X rounded into the kernel's A layout (M in slabs, in parallel);
 *   2. tasks = (mc rows) x (nc columns) blocks claimed by threads; inside a
 *      task, for each slice of kc k pairs, the micro-kernel runs over the
 *      32-column B micro-panels (in L1 or L2, by the kernel's kc) and
 *      mr-row A panels (in L2),
 *      summing into a float32 block that the epilogue then writes to Y.
 *      W in the tile layout: packed at load, or packed per call (quantized
 *      weights): then a task is a block of BF16_QNC columns for all rows,
 *      which packs its own columns one K slice at a time (into the thread's
 *      scratch, in L2) and multiplies all rows by the slice, so the call
 *      has no wait between packing and multiplying.
 * Each output is summed over k in the same order whatever the thread count
 * or the blocking. */
#define BF16_A_MAX ((size_t)64 << 20) /* bytes of rounded X per slab */
/* columns of a task with weights packed per call (at most; fewer when
 * that leaves a thread under BF16_QTASKS tasks). With 128 at M = 600 and
 * K = 13824 a product took 4-6% less time than with 64: each task reads
 * all of the rounded X (16.6 MB, from L3), so fewer, wider tasks read it
 * fewer times (README, "Quantized weights") */
#define BF16_QNC       128
#define BF16_QTASKS    8
#define BF16_NC        256
#define BF16_MC_PANELS 16

typedef struct {
    const sx_bf16_kernels *kk;
    float *Y;
    int64_t ldy;
    const void *a;     /* A slab, rows from 0 */
    const uint16_t *b; /* the panel of column 0 */
    int64_t Kp, M, N, mc, nc, n_nblk;
    const float *bias;
    int act, accumulate;
    float *c;     /* single-thread callers: the C block (NULL: per-thread scratch) */
    _Atomic int failed;
} bf16_job;

/* K pairs per slice: at most about kk->kc, balanced (a short last slice
 * costs a C round trip for little work), a multiple of g pairs (16: an AMX
 * tile; more for weights converted per call, whose slices start on a block) */
static int64_t kslice(const sx_bf16_kernels *kk, int64_t kpt, int64_t g) {
    int64_t nsl = (kpt + kk->kc - 1) / kk->kc;
    return ((kpt + nsl - 1) / nsl + g - 1) / g * g;
}

/* the A layout's mr-row panel at row m (a multiple of mr), k pair k0 */
static inline const char *a_panel(const bf16_job *J, int64_t m, int64_t k0) {
    size_t ael = J->kk->a_layout == SX_BF16_A_PANELS_F32 ? 4 : 2;
    int64_t off =
        J->kk->a_layout == SX_BF16_A_ROWS ? m * J->Kp + 2 * k0 : m * J->Kp + 2 * k0 * J->kk->mr;
    return (const char *)J->a + off * (int64_t)ael;
}

/* One micro-tile: C[rows, cols] at c (row stride ldc) = (load_c ? C : 0) +
 * A.B over kc pairs. The kernel writes all mr rows and 32 columns: straight
 * into c unless c is Y (direct) and the tile is partial, then through tile. */
static inline void micro_tile(const sx_bf16_kernels *kk, int64_t kc, const void *ap, int64_t lda,
                              int rows, int cols, const uint16_t *bp, int64_t bstride, float *c,
                              int64_t ldc, int load_c, int direct, float *tile) {
    int mr = kk->mr;
    if (!direct || (rows == mr && cols == 32)) {
        kk->ukr(kc, ap, lda, rows, bp, bstride, c, ldc, load_c);
        return;
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < 32; j++)
            tile[i * 32 + j] = load_c && i < rows && j < cols ? c[i * ldc + j] : 0.0f;
    kk->ukr(kc, ap, lda, rows, bp, bstride, tile, 32, 1);
    for (int i = 0; i < rows; i++) memcpy(c + i * ldc, tile + i * 32, sizeof(float) * (size_t)cols);
}

static void bf16_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    bf16_job *J = ctx;
    const sx_bf16_kernels *kk = J->kk;
    int mr = kk->mr;
    int64_t kpt = J->Kp / 2, bstride = 16 * J->Kp, kcs = kslice(kk, kpt, 16);
    /* without activation or accumulation the sums go straight to Y (bias
     * added at the end); else to a float32 block the epilogue finishes */
    int direct = !J->act && !J->accumulate;
    float *C = direct ? NULL : J->c ? J->c : sx_scratch(SX_SCR_BF16_C, (size_t)(J->mc * J->nc));
    _Alignas(64) float tile[32 * 32]; /* an edge micro-tile (mr <= 32) */
    if (!direct && !C) {
        J->failed = 1;
        return;
    }
    for (int64_t t = b; t < e; t++) {
        int64_t m0 = t / J->n_nblk * J->mc, n0 = t % J->n_nblk * J->nc;
        int64_t mc = J->M - m0 < J->mc ? J->M - m0 : J->mc;
        int64_t nc = J->N - n0 < J->nc ? J->N - n0 : J->nc;
        float *Cb = direct ? J->Y + m0 * J->ldy + n0 : C;
        int64_t ldc = direct ? J->ldy : J->nc;
        for (int64_t k0 = 0; k0 < kpt; k0 += kcs) {
            int64_t kc = kpt - k0 < kcs ? kpt - k0 : kcs;
            for (int64_t n = 0; n < nc; n += 32) {
                const uint16_t *bp = J->b + (n0 + n) / 16 * bstride + k0 * 32;
                int cols = nc - n < 32 ? (int)(nc - n) : 32;
                for (int64_t m = 0; m < mc; m += mr) {
                    int rows = mc - m < mr ? (int)(mc - m) : mr;
                    micro_tile(kk, kc, a_panel(J, m0 + m, k0), J->Kp, rows, cols, bp, bstride,
                               Cb + m * ldc + n, ldc, k0 > 0, direct, tile);
                }
            }
        }
        if (!direct || J->bias)
            sx_gemm_epilogue(J->Y + m0 * J->ldy + n0, J->ldy, Cb, ldc, mc, nc,
                             J->bias ? J->bias + n0 : NULL, J->act, J->accumulate);
    }
}

/* weights packed per call: task t = columns [t * nc, (t + 1) * nc) of
 * J->job, every row. For each K slice the task packs that slice of its
 * columns (nc x kc pairs: 0.5 MB at 128 x 1024, in L2) and multiplies all
 * rows by it, mr rows at a time; the sums carry from slice to slice in Y
 * (or in the C block, M x nc, before the epilogue). Each output adds its
 * slices in k order, as bf16_task: the same bits. */
typedef struct {
    bf16_job job; /* b, mc, nc unused */
    const sx_weight *W;
    int64_t nc;  /* columns per task */
    int64_t kcs; /* k pairs per slice (a multiple of 16 and of half W's block) */
    _Atomic int failed;
} bf16_cols_job;

static void bf16_cols_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    bf16_cols_job *Q = ctx;
    const bf16_job *J = &Q->job;
    const sx_bf16_kernels *kk = J->kk;
    int mr = kk->mr;
    int64_t kpt = J->Kp / 2, M = J->M;
    int direct = !J->act && !J->accumulate;
    uint16_t *bs = (uint16_t *)sx_scratch(SX_SCR_BF16_B, (size_t)Q->nc * (size_t)Q->kcs);
    float *C = direct ? NULL : sx_scratch(SX_SCR_BF16_C, (size_t)(mpad(kk, M) * Q->nc));
    _Alignas(64) float tile[32 * 32]; /* an edge micro-tile (mr <= 32) */
    if (!bs || (!direct && !C)) {
        Q->failed = 1;
        return;
    }
    for (int64_t t = b; t < e; t++) {
        int64_t n0 = t * Q->nc, ncnt = J->N - n0 < Q->nc ? J->N - n0 : Q->nc;
        float *Cb = direct ? J->Y + n0 : C;
        int64_t ldc = direct ? J->ldy : npad(ncnt);
        for (int64_t k0 = 0; k0 < kpt; k0 += Q->kcs) {
            int64_t kc = kpt - k0 < Q->kcs ? kpt - k0 : Q->kcs;
            /* [ncnt, kc pairs] -> 16-column panels of 2 kc values, 32 kc apart */
            if (pack_b_panels(bs, Q->W, n0, ncnt, k0, kc, 0, npad(ncnt) / 16) != 0) {
                Q->failed = 1;
                return;
            }
            for (int64_t m = 0; m < M; m += mr) {
                const char *ap = a_panel(J, m, k0);
                int rows = M - m < mr ? (int)(M - m) : mr;
                for (int64_t n = 0; n < ncnt; n += 32) {
                    int cols = ncnt - n < 32 ? (int)(ncnt - n) : 32;
                    micro_tile(kk, kc, ap, J->Kp, rows, cols, bs + n / 16 * 32 * kc, 32 * kc,
                               Cb + m * ldc + n, ldc, k0 > 0, direct, tile);
                }
            }
        }
        if (!direct || J->bias)
            sx_gemm_epilogue(J->Y + n0, J->ldy, Cb, ldc, M, ncnt, J->bias ? J->bias + n0 : NULL,
                             J->act, J->accumulate);
    }
}

void sx_bf16_gemm_prepacked(const sx_bf16_kernels *kk, float *y, int64_t ldy, const void *a,
                            int64_t M, const uint16_t *b, int64_t N, int64_t K, float *c) {
    bf16_job J = {kk, y, ldy, a, b, sx_bf16_kpad(K), M, N, mpad(kk, M), npad(N), 1, NULL, 0, 0, c, 0};
    bf16_task(&J, 0, 1, 0);
}

int sx_matmul_bf16(float *Y, int64_t ldy, const float *X, int64_t ldx, const sx_weight *W,
                   const sx_epilogue *ep, int64_t M) {
    const sx_bf16_kernels *kk = sx_bf16_kernels_cur();
    const char *nm = W->name ? W->name : "?";
    int mr = kk->mr;
    int64_t K = W->K, Kp = sx_bf16_kpad(K), N = W->N;
    const sx_packed *pk = W->packed;
    if (pk && !(pk->layout == SX_PACK_BF16 && pk->K == K && pk->trans == W->trans &&
                W->packed_n0 % 32 == 0 && W->packed_n0 + N <= pk->N))
        pk = NULL; /* not the tile layout of this view: pack per call */
    size_t ael = kk->a_layout == SX_BF16_A_PANELS_F32 ? 4 : 2;
    /* slabs of rows of X whose rounded copy fits the cap */
    int64_t ms = (int64_t)(BF16_A_MAX / ((size_t)Kp * ael)) / mr * mr;
    if (ms < mr) ms = mr;
    if (ms > mpad(kk, M)) ms = mpad(kk, M);
    void *ap = sx_scratch(SX_SCR_BF16_A, (size_t)ms * (size_t)Kp * ael / 4);
    if (!ap)
        return sx_err("sx_matmul: out of memory rounding to bf16 for '%s' (M=%lld N=%lld K=%lld)",
                      nm, (long long)M, (long long)N, (long long)K);
    for (int64_t m0 = 0; m0 < M; m0 += ms) {
        int64_t mcnt = M - m0 < ms ? M - m0 : ms;
        apack_job PA = {kk, ap, X + m0 * ldx, ldx, mcnt, K, 0};
        sx_parallel_for(mpad(kk, mcnt) / mr, 4, apack_task, &PA);
        if (PA.failed) return sx_err("sx_matmul: out of memory rounding '%s' inputs", nm);
        bf16_job J = {.kk = kk,
                      .Y = Y + m0 * ldy,
                      .ldy = ldy,
                      .a = ap,
                      .Kp = Kp,
                      .M = mcnt,
                      .N = N,
                      .mc = (int64_t)BF16_MC_PANELS * mr,
                      .nc = BF16_NC,
                      .bias = ep->bias,
                      .act = ep->act,
                      .accumulate = ep->accumulate};
        if (!pk) { /* column tasks, each packing its columns */
            /* K slices as bf16_task's, whole blocks of the type too */
            int64_t g = 16, blk = sx_wtype_of(W->type)->block;
            if (blk > 2 * g) g = (blk / 2 + 15) / 16 * 16;
            bf16_cols_job Q = {.job = J, .W = W, .nc = BF16_QNC, .kcs = kslice(kk, Kp / 2, g)};
            while (Q.nc > 32 && (N + Q.nc - 1) / Q.nc < BF16_QTASKS * sx_threads_count())
                Q.nc -= 32;
            sx_parallel_for((N + Q.nc - 1) / Q.nc, 1, bf16_cols_task, &Q);
            if (Q.failed) return sx_err("sx_matmul: out of memory converting '%s'", nm);
            continue;
        }
        J.b = (const uint16_t *)pk->data + W->packed_n0 / 16 * 16 * Kp;
        /* enough tasks for all threads: shrink the blocks (multiples of 32 / mr) */
        int64_t want = 4 * sx_threads_count();
        while (J.nc > 32 && ((mcnt + J.mc - 1) / J.mc) * ((N + J.nc - 1) / J.nc) < want) J.nc -= 32;
        while (J.mc > mr && ((mcnt + J.mc - 1) / J.mc) * ((N + J.nc - 1) / J.nc) < want) J.mc -= mr;
        J.n_nblk = (N + J.nc - 1) / J.nc;
        sx_parallel_for((mcnt + J.mc - 1) / J.mc * J.n_nblk, 1, bf16_task, &J);
        if (J.failed) return sx_err("sx_matmul: out of memory for '%s'", nm);
    }
    return 0;
}
