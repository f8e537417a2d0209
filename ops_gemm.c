/* ops_gemm.c - weights and the matrix multiply: Y = X W^T (+ bias).
 * Weight handles wrap container tensors of any type of the type table
 * (wtype.c); the GEMM converts them to float32 panels while packing, the
 * GEMV (few rows of X) reads them in place through the type's kernel. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_impl.h"
#include "ops.h"
#include "quant.h"
#include "sx_core.h"

static int64_t prod_from(const sx_tensor *t, int d) {
    int64_t p = 1;
    for (int i = d; i < t->ndim; i++) p *= t->shape[i];
    return p;
}

static void shape_str(char *buf, size_t n, const sx_tensor *t) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* Run-time weight type: -1 = as stored. */
static int weight_override = -1;

int sx_set_weight_dtype(int type) {
    const sx_wtype *t = sx_wtype_of(type);
    if (type != -1 && (!t || !t->storage))
        return sx_err("weight type must be F32, F16, BF16, Q8_0, Q4_0 or Q4_K (got %s)",
                      sx_type_name(type));
    weight_override = type;
    return 0;
}

/* BF16 compute: the matrix packed once in the tile layout, in a buffer the
 * container owns; the mapped pages of the stored matrix are then given back
 * (the packed copy replaces them; F32 compute would read them again). */
static int pack_in_container(sx_gguf *g, const sx_tensor *t, sx_weight *w) {
    int bf16 = sx_compute() == SX_COMPUTE_BF16, nr = sx_kernels_cur()->nr, created;
    if (!bf16 && !sx_kernels_cur()->ukr_x) return 0; /* this path packs per call */
    size_t bytes = bf16 ? sx_packed_bytes(w) : sx_panels_bytes(w, nr);
    void *buf = sx_gguf_tensor_buffer(g, t, bf16 ? 0 : 1, bytes, &created);
    if (!buf) return -1;
    const sx_packed *pk = buf;
    if (!created && pk->layout == (bf16 ? SX_PACK_BF16 : SX_PACK_PANELS) && pk->K == w->K &&
        pk->trans == w->trans && pk->type == (bf16 ? SX_BF16 : w->type) && (bf16 || pk->nr == nr)) {
        w->packed = pk; /* looked up before (e.g. a shared matrix) */
        w->packed_n0 = 0;
        return 0;
    }
    if ((bf16 ? sx_pack_weight_bf16(w, buf) : sx_pack_weight_panels(w, buf, nr)) != 0) return -1;
    sx_gguf_tensor_release(g, t);
    return 0;
}

static int weight_from(sx_gguf *g, const char *name, int64_t d0, int64_t d1, int trans,
                       sx_weight *w) {
    const sx_tensor *t = sx_gguf_find(g, name);
    if (!t) return sx_err("%s: tensor '%s' not found", sx_gguf_path(g), name);
    char sh[128];
    shape_str(sh, sizeof sh, t);
    const sx_wtype *wt = sx_wtype_of(t->type);
    if (!wt || !wt->storage)
        return sx_err("%s: tensor '%s' has type %s, which this build cannot multiply",
                      sx_gguf_path(g), name, sx_type_name(t->type));
    if (t->ndim < 2 || t->shape[0] != d0 || prod_from(t, 1) != d1)
        return sx_err("%s: tensor '%s' has shape %s, expected [%lld,%lld]%s", sx_gguf_path(g), name,
                      sh, (long long)d0, (long long)d1,
                      t->ndim > 2 ? " (trailing dims flattened)" : "");
    if (wt->quantized && trans)
        return sx_err("%s: tensor '%s' is %s but used transposed (x @ W): store it as F32/F16/BF16",
                      sx_gguf_path(g), name, wt->name);
    if (d1 % wt->block)
        return sx_err("%s: tensor '%s' (%s) has rows of %lld, not a multiple of its block of %lld",
                      sx_gguf_path(g), name, wt->name, (long long)d1, (long long)wt->block);
    memset(w, 0, sizeof *w);
    w->type = t->type;
    w->trans = trans;
    w->N = trans ? d1 : d0;
    w->K = trans ? d0 : d1;
    w->ld = d1;
    w->data = t->data;
    w->name = t->name;
    /* run-time type: float types apply to every matrix; a quantized type to
     * the matrices the policy quantizes (quant.h), the others stay as stored */
    int to =
        weight_override >= 0 ? sx_quant_type_for(name, t->ndim, t->shape, weight_override) : -1;
    if (trans && to >= 0 && sx_wtype_of(to)->quantized) to = -1;
    if (to >= 0 && to != t->type) {
        if (!(w->data = sx_gguf_tensor_as(g, t, to))) return -1;
        w->type = to;
    }
    /* quantized weights (stored, or converted above) are never packed: the
     * integer GEMV streams them at decode, GEMMs dequantize them per call */
    if (!sx_wtype_of(w->type)->quantized) return pack_in_container(g, t, w);
    return 0;
}

int sx_weight_get(sx_gguf *g, const char *name, int64_t N, int64_t K, sx_weight *w) {
    return weight_from(g, name, N, K, 0, w);
}

int sx_weight_get_t(sx_gguf *g, const char *name, int64_t K, int64_t N, sx_weight *w) {
    return weight_from(g, name, K, N, 1, w);
}

sx_weight sx_weight_f32(const float *data, int64_t N, int64_t K) {
    sx_weight w;
    memset(&w, 0, sizeof w);
    w.type = SX_F32;
    w.N = N;
    w.K = K;
    w.ld = K;
    w.data = data;
    return w;
}

sx_weight sx_weight_typed(const void *data, int type, int64_t N, int64_t K) {
    sx_weight w = sx_weight_f32(NULL, N, K);
    w.type = type;
    w.data = data;
    return w;
}

/* Bytes from one stored row of w to the next. */
static size_t row_bytes(const sx_weight *w) { return sx_type_nbytes(w->type, w->ld); }

int sx_weight_row(const sx_weight *w, int64_t r, float *out) {
    if (!w || !w->data || !out || w->trans || r < 0 || r >= w->N)
        return sx_err("sx_weight_row: bad arguments (weight '%s', row %lld)",
                      w && w->name ? w->name : "?", (long long)r);
    const sx_wtype *wt = sx_wtype_of(w->type);
    if (!wt) return sx_err("sx_weight_row: weight '%s' has unknown type", w->name ? w->name : "?");
    sx_wtype_kernels_of(wt).to_f32(
        out, (const char *)w->data + (size_t)r * sx_type_nbytes(w->type, w->ld), w->K);
    return 0;
}

sx_weight sx_weight_rows(const sx_weight *w, int64_t n0, int64_t n) {
    sx_weight r = *w;
    r.N = n;
    /* a packed view when the rows start on a 32-column block of the layout */
    const sx_packed *pk = w->packed;
    if (pk && (w->packed_n0 + n0) % (pk->layout == SX_PACK_BF16 ? 32 : pk->nr) == 0 &&
        w->packed_n0 + n0 + n <= pk->N)
        r.packed_n0 = w->packed_n0 + n0;
    else
        r.packed = NULL, r.packed_n0 = 0;
    if (w->trans) /* float types only: columns of the stored [K, N] matrix */
        r.data = (const char *)w->data + sx_type_nbytes(w->type, n0);
    else
        r.data = (const char *)w->data + (size_t)n0 * row_bytes(w);
    return r;
}

/* ======================================================================
 * GEMM: Y[M,N] = X[M,K] W^T + bias
 *   1. pack X into mr-row panels [M/mr][K][mr] and W into nr-row panels
 *      [N/nr][K][nr] (converting F16/BF16 to F32), each once per call and
 *      in parallel over panels;
 *   2. tasks = (MC rows) x (NC columns) blocks claimed by threads; inside a
 *      task, for each KC slice, the micro-kernel runs over the nr-panels
 *      (kept in L1) and mr-panels (in L2).
 *   Each output element is summed over k in the same order whatever the
 *   thread count. W is processed in column slabs so the packed copy stays
 *   below GEMM_B_MAX floats; X in row slabs likewise.
 *   A W of at most GEMM_CACHED_W bytes as float32 (the UNet's 640-column
 *   projections, its 1280 x 1280 ones) goes another way (matmul_cached_w):
 *   the tasks are blocks of a few rows of X, each packing its rows of one k
 *   slice into an L2-sized buffer right before it uses them, and all of W
 *   (float32, F16/BF16 panels widened once per call) is read from the
 *   last-level cache.
 * ====================================================================== */
#ifndef GEMM_KC
#define GEMM_KC 2048
#endif
#ifndef GEMM_MC_ROWS
#define GEMM_MC_ROWS 384 /* MC: rows of X per block, rounded down to whole mr-panels */
#endif
#define GEMM_NC 256
/* floats of packed W per slab (2 MB: still in the cache when the tasks read
 * it; 32 MB slabs of weights converted per call went to DRAM and back) */
#define GEMM_B_MAX ((int64_t)1 << 19)
#define GEMM_A_MAX ((int64_t)8 << 20)
/* matmul_cached_w: W up to this many bytes as float32 (a quarter of a 32 MB
 * L3); a task's packed rows of one k slice take up to GEMM_XT_BYTES (in L2
 * beside the sums and the W panel being read; 64-256 KB measured alike).
 * 4096 x 640 x 2560, F16 weights packed at load, AMD Zen 4, 1 thread:
 * 103-105 -> 110-111 GFLOP/s per CPU-second on AVX2 and AVX-512 (before, the
 * up-front packing wrote and re-read 4096 x 2560 floats through DRAM, 5% of
 * the time, and the kernel ran at ~90% of the peak on them); weights of
 * 13-54 MB this way ran 5-25% slower. README, "Benchmarks". */
#ifndef GEMM_CACHED_W
#define GEMM_CACHED_W ((int64_t)8 << 20)
#endif
#ifndef GEMM_XT_BYTES
#define GEMM_XT_BYTES ((int64_t)128 << 10)
#endif

typedef struct {
    float *Y;
    int64_t ldy;
    const float *ap; /* packed X panels */
    const void *bp;  /* packed W panels, elements of btype */
    const float *bias;
    int64_t M, N, K, mc, nc, n_mblk, n_nblk;
    const sx_kernels *k;
    int64_t bK; /* K of the packed-W layout (panel stride / nr); 0: K */
    int act, accumulate; /* epilogue (bias is above) */
    _Atomic int failed;
    int btype; /* SX_F32, or F16/BF16 panels packed at load (ukr_x) */
    const float *X; /* matmul_cached_w: X itself (ap unused), packed by the tasks */
    int64_t ldx;
} gemm_job;

/* The epilogue on a block of finished sums c[rows][cols] (row stride ldc):
 * y = (accumulate ? y : 0) + act(c + bias), in the order of the separate ops
 * (the activation by the kernel set's act_row, as sx_gelu/sx_silu). */
void sx_gemm_epilogue(float *y, int64_t ldy, const float *c, int64_t ldc, int64_t rows,
                      int64_t cols, const float *bias, int act, int accumulate) {
    const sx_kernels *k = sx_kernels_cur();
    for (int64_t i = 0; i < rows; i++) {
        float *yr = y + i * ldy;
        const float *cr = c + i * ldc;
        if (!bias && !act && !accumulate) {
            if (yr != cr) memcpy(yr, cr, sizeof(float) * (size_t)cols);
        } else {
            k->epilogue_row(yr, cr, bias, cols, act, accumulate);
        }
    }
}

typedef struct {
    float *dst;
    const float *X;
    int64_t ldx, M, K;
    const sx_weight *W;
    int64_t n0, N;
    int r;
    const sx_kernels *k;
    _Atomic int failed; /* a thread could not get its conversion buffer */
} pack_job;

/* X rows [p*mr, p*mr+mr) -> dst[p][K][mr] (zero rows past M), one row
 * panel per item (the kernel set's pack_a) */
static void pack_a_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    pack_job *J = ctx;
    int mr = J->r;
    for (int64_t p = b; p < e; p++) {
        int nrow = (int)(J->M - p * mr < mr ? J->M - p * mr : mr);
        J->k->pack_a(J->dst + p * mr * J->K, J->X + p * mr * J->ldx, J->ldx, nrow, mr, J->K);
    }
}

/* W rows [n0 + p*nr, +nr) -> dst[p][K][nr] as F32 (zero rows past N).
 * Rows are converted by their type's kernel, PACK_KB columns (rounded up to
 * whole blocks) at a time, into a small F32 block, then copied in k order. */
#define PACK_KB 64
static void pack_b_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    pack_job *J = ctx;
    const sx_weight *W = J->W;
    const sx_wtype *wt = sx_wtype_of(W->type);
    sx_to_f32_fn to_f32 = sx_wtype_kernels_of(wt).to_f32;
    int nr = J->r;
    size_t rb = row_bytes(W);
    int64_t kbs = (PACK_KB + wt->block - 1) / wt->block * wt->block;
    float *blk = W->type == SX_F32 || W->trans ? NULL : sx_scratch(SX_SCR_PACK, (size_t)(nr * kbs));
    const float *rows[64];
    if (W->type != SX_F32 && !W->trans && !blk) {
        J->failed = 1;
        return;
    }
    for (int64_t p = b; p < e; p++) {
        float *dst = J->dst + p * nr * J->K;
        int64_t c0 = J->n0 + p * nr;
        int cols = (int)(J->N - p * nr < nr ? J->N - p * nr : nr);
        if (!W->trans) {
            for (int64_t k0 = 0; k0 < J->K; k0 += kbs) {
                int64_t kb = J->K - k0 < kbs ? J->K - k0 : kbs;
                for (int j = 0; j < cols; j++) {
                    const char *src = (const char *)W->data + (size_t)(c0 + j) * rb +
                                      sx_type_nbytes(W->type, k0);
                    if (W->type == SX_F32) {
                        rows[j] = (const float *)src;
                    } else {
                        to_f32(blk + j * kbs, src, kb);
                        rows[j] = blk + j * kbs;
                    }
                }
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
                /* a full panel on AVX-512: 16 x 16 transposes (the rows are
                 * evenly spaced: the weight's rows, or the converted block) */
                if ((sx_simd_level() == SX_SIMD_AVX512 || sx_simd_level() == SX_SIMD_AMX) &&
                    cols == nr && nr % 16 == 0 && kb % 16 == 0) {
                    int64_t lds = W->type == SX_F32 ? (int64_t)(rb / sizeof(float)) : kbs;
                    for (int j = 0; j < nr; j += 16)
                        sx_transpose16_u32_avx512((uint32_t *)(dst + k0 * nr + j), nr,
                                                  (const uint32_t *)rows[j], lds, kb);
                    continue;
                }
#endif
                for (int64_t k = 0; k < kb; k++) {
                    float *d = dst + (k0 + k) * nr;
                    for (int j = 0; j < cols; j++) d[j] = rows[j][k];
                    for (int j = cols; j < nr; j++) d[j] = 0.0f;
                }
            }
        } else { /* float types: row k of the stored [K, N] matrix, columns c0.. */
            for (int64_t k = 0; k < J->K; k++) {
                const char *src = (const char *)W->data + (size_t)k * rb + sx_type_nbytes(W->type, c0);
                float *d = dst + k * nr;
                to_f32(d, src, cols);
                for (int j = cols; j < nr; j++) d[j] = 0.0f;
            }
        }
    }
}

/* The weight's panels packed at load, if they are this path's (same nr)
 * and the view starts on a panel; NULL: pack per call. */
static const sx_packed *packed_panels(const sx_weight *W, const sx_kernels *kk) {
    const sx_packed *pk = W->packed;
    if (!pk || pk->layout != SX_PACK_PANELS || pk->nr != kk->nr || !kk->ukr_x || pk->K != W->K ||
        pk->trans != W->trans || W->packed_n0 % pk->nr || W->packed_n0 + W->N > pk->N)
        return NULL;
    return pk;
}

/* W rows [p*nr, p*nr+nr) -> dst[p][K][nr] in W's own float type (zero past
 * N): the panels packed once at load for the F32 compute type. */
typedef struct {
    char *dst;
    const sx_weight *W;
    int nr;
} tpack_job;

static void tpack_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    tpack_job *J = ctx;
    const sx_weight *W = J->W;
    int nr = J->nr;
    size_t es = W->type == SX_F32 ? 4 : 2, rb = row_bytes(W);
    int64_t K = W->K;
    for (int64_t p = b; p < e; p++) {
        char *dst = J->dst + (size_t)(p * nr * K) * es;
        int64_t c0 = p * nr;
        int cols = (int)(W->N - c0 < nr ? W->N - c0 : nr);
        if (cols < nr) memset(dst, 0, (size_t)(nr * K) * es);
        if (W->trans) { /* row k of the stored [K, N] matrix: columns c0.. */
            for (int64_t k = 0; k < K; k++)
                memcpy(dst + (size_t)(k * nr) * es, (const char *)W->data + (size_t)k * rb + c0 * es,
                       (size_t)cols * es);
        } else if (es == 4) {
            for (int j = 0; j < cols; j++) {
                const char *src = (const char *)W->data + (size_t)(c0 + j) * rb;
                for (int64_t k = 0; k < K; k++) memcpy(dst + (size_t)(k * nr + j) * 4, src + 4 * k, 4);
            }
        } else {
            for (int j = 0; j < cols; j++) {
                const char *src = (const char *)W->data + (size_t)(c0 + j) * rb;
                for (int64_t k = 0; k < K; k++) memcpy(dst + (size_t)(k * nr + j) * 2, src + 2 * k, 2);
            }
        }
    }
}

#define PANELS_HDR 64 /* the sx_packed header, then the panels (64-byte aligned) */

size_t sx_panels_bytes(const sx_weight *w, int nr) {
    size_t es = w->type == SX_F32 ? 4 : 2;
    return PANELS_HDR + (size_t)((w->N + nr - 1) / nr * nr) * (size_t)w->K * es;
}

int sx_pack_weight_panels(sx_weight *w, void *buf, int nr) {
    if (w->type != SX_F32 && w->type != SX_F16 && w->type != SX_BF16)
        return sx_err("packing '%s': panels of type %s", w->name ? w->name : "?",
                      sx_type_name(w->type));
    tpack_job J = {(char *)buf + PANELS_HDR, w, nr};
    sx_parallel_for((w->N + nr - 1) / nr, 4, tpack_task, &J);
    sx_packed *pk = buf;
    *pk = (sx_packed){SX_PACK_PANELS, w->trans, w->type, nr, (w->N + nr - 1) / nr * nr, w->K, w->K,
                      J.dst};
    w->packed = pk;
    w->packed_n0 = 0;
    return 0;
}

static void gemm_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    gemm_job *J = ctx;
    const sx_kernels *kk = J->k;
    int mr = kk->mr, nr = kk->nr;
    float tile[16 * 64];
    /* accumulating into Y: the sums go to a block buffer first */
    float *blk = J->accumulate ? sx_scratch(SX_SCR_EPI, (size_t)(J->mc * J->nc)) : NULL;
    /* F16/BF16 panels feeding more than one row tile: each micro-panel is
     * widened to float32 once per k slice and the float32 kernel reads it
     * (the same products: the widening is exact) */
    int widen = J->btype != SX_F32 && J->mc > mr;
    float *wide = widen ? sx_scratch(SX_SCR_WIDE, (size_t)(GEMM_KC * nr)) : NULL;
    sx_to_f32_fn to32 = widen ? sx_wtype_kernels_of(sx_wtype_of(J->btype)).to_f32 : NULL;
    /* matmul_cached_w: the task's rows of one k slice, panels [mc/mr][kc][mr] */
    float *xt = J->X ? sx_scratch(SX_SCR_GEMM_XT, (size_t)(J->mc * GEMM_KC)) : NULL;
    if ((J->accumulate && !blk) || (widen && !wide) || (J->X && !xt)) {
        J->failed = 1;
        return;
    }
    for (int64_t t = b; t < e; t++) {
        int64_t mi = t / J->n_nblk, ni = t % J->n_nblk;
        int64_t m0 = mi * J->mc, n0 = ni * J->nc;
        int64_t mc = J->M - m0 < J->mc ? J->M - m0 : J->mc;
        int64_t nc = J->N - n0 < J->nc ? J->N - n0 : J->nc;
        float *C = blk ? blk : J->Y + m0 * J->ldy + n0;
        int64_t ldc = blk ? J->nc : J->ldy;
        size_t es = J->btype == SX_F32 ? 4 : 2;
        /* K slices of at most GEMM_KC, balanced (a short last slice costs a C
         * round trip for little work; the sums are the same either way) */
        int64_t nsl = (J->K + GEMM_KC - 1) / GEMM_KC, kcs = (J->K + nsl - 1) / nsl;
        for (int64_t k0 = 0; k0 < J->K; k0 += kcs) {
            int64_t kc = J->K - k0 < kcs ? J->K - k0 : kcs;
            if (xt)
                for (int64_t ip = 0; ip < mc; ip += mr)
                    kk->pack_a(xt + ip * kc, J->X + (m0 + ip) * J->ldx + k0, J->ldx,
                               (int)(mc - ip < mr ? mc - ip : mr), mr, kc);
            for (int64_t jp = 0; jp < nc; jp += nr) {
                const void *bpan =
                    (const char *)J->bp + ((n0 + jp) * (J->bK ? J->bK : J->K) + k0 * nr) * es;
                int bt = J->btype;
                if (widen && mc > mr) {
                    to32(wide, bpan, kc * nr);
                    bpan = wide, bt = SX_F32;
                }
                for (int64_t ip = 0; ip < mc; ip += mr) {
                    const float *apan = xt ? xt + ip * kc : J->ap + (m0 + ip) * J->K + k0 * mr;
                    float *c = C + ip * ldc + jp;
                    int rows = (int)(mc - ip < mr ? mc - ip : mr);
                    int cols = (int)(nc - jp < nr ? nc - jp : nr);
                    float *cc = c;
                    int64_t lc = ldc;
                    if (rows < mr || cols < nr) { /* an edge: through a whole tile */
                        for (int i = 0; i < mr; i++)
                            for (int j = 0; j < nr; j++)
                                tile[i * nr + j] =
                                    (k0 > 0 && i < rows && j < cols) ? c[i * ldc + j] : 0.0f;
                        cc = tile, lc = nr;
                    }
                    if (kk->ukr_x)
                        kk->ukr_x(kc, apan, bpan, bt, rows, cc, lc, k0 > 0 || cc == tile);
                    else
                        kk->ukr(kc, apan, (const float *)bpan, cc, lc, k0 > 0 || cc == tile);
                    if (cc == tile)
                        for (int i = 0; i < rows; i++)
                            for (int j = 0; j < cols; j++) c[i * ldc + j] = tile[i * nr + j];
                }
            }
        }
        if (J->bias || J->act || blk)
            sx_gemm_epilogue(J->Y + m0 * J->ldy + n0, J->ldy, C, ldc, mc, nc, J->bias ? J->bias + n0 : NULL,
                     J->act, J->accumulate);
    }
}

/* Quantized weights: up to this many rows of X (-1: the default rule,
 * sx_set_quant_rows_max) go through the integer kernels below instead of
 * the dequantizing GEMM. */
static int64_t quant_rows_max = -1;
#define QROWS_CHUNK_BYTES ((size_t)256 << 10)

int sx_set_quant_rows_max(int64_t m) {
    if (m < -1) return sx_err("sx_set_quant_rows_max: %lld rows", (long long)m);
    quant_rows_max = m;
    return 0;
}

/* The default rule, from the crossovers measured with `bench_quant
 * --prefill-mm` (README, "Quantized weights"): against the F32 GEMM the
 * AVX-512 tiles (a `rows` kernel) win or tie at every M up to 600, the GEMV
 * on groups of 4 rows (paths without one) up to M = 64; against the BF16
 * kernel (2x the F32 GEMM), converting per call in K slices, up to the
 * type's bf16_rows_max (Q8_0 10, Q4_0 20, Q4_K 24: AMD Zen 4, 1 and 2
 * threads, [5120 x 5120] and [13824 x 5120]); against the int8 GEMM (i8:
 * the path has it) up to i8_rows_max (Q8_0 5, Q4_0 8, Q4_K 20: same
 * machine and shapes; README, "Prefill: the int8 GEMM"). */
static int quant_rows(const sx_wtype *wt, int64_t M, int mode, int i8) {
    if (!wt->quantized || M > INT_MAX) return 0;
    if (quant_rows_max >= 0) return M <= quant_rows_max;
    if (mode == SX_COMPUTE_BF16) return M <= (i8 ? wt->i8_rows_max : wt->bf16_rows_max);
    return sx_wtype_kernels_of(wt).rows != NULL || M <= 64;
}

/* GEMV: each task streams a range of weight rows once for up to
 * SX_GEMV_MAX_M rows of X at a time, through the type's kernel. X is given
 * in the type's activation format (float32, or quantized once per call). */
typedef struct {
    float *Y;
    int64_t ldy;
    const void *X;
    size_t ldx; /* bytes */
    const sx_weight *W;
    sx_gemv_fn gemv, rows; /* rows: the type's kernel for many rows, or NULL */
    const float *bias;
    int64_t M, K;
} gemv_job;

static void gemv_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    gemv_job *J = ctx;
    size_t rb = row_bytes(J->W);
    if (J->rows && J->M > SX_GEMV_MAX_M)
        J->rows(J->Y, J->ldy, J->X, J->ldx, (int)J->M, J->W->data, rb, b, e, J->K, J->bias);
    else
        sx_qrows_by_gemv(J->gemv, J->Y, J->ldy, J->X, J->ldx, (int)J->M, J->W->data, rb, b, e, J->K,
                         J->bias);
}

static int matmul_gemv(float *Y, int64_t ldy, const float *X, int64_t ldx, const sx_weight *W,
                       const sx_epilogue *ep, int64_t M) {
    const sx_wtype *wt = sx_wtype_of(W->type);
    /* with an activation or accumulation, the kernel writes plain sums
     * (+ bias) to a buffer and the epilogue finishes them */
    int post = ep->act || ep->accumulate;
    float *out = post ? sx_scratch(SX_SCR_EPI, (size_t)(M * W->N)) : Y;
    if (!out) return sx_err("sx_matmul: out of memory for '%s'", W->name ? W->name : "?");
    sx_wtype_kernels kt = sx_wtype_kernels_of(wt);
    gemv_job J = {
        out, post ? W->N : ldy, X, (size_t)ldx * sizeof(float), W, kt.gemv, kt.rows, ep->bias, M,
        W->K};
    if (!J.gemv)
        return sx_err("sx_matmul: weight '%s': no matrix-vector kernel for type %s",
                      W->name ? W->name : "?", wt->name);
    if (wt->act_type != SX_F32) { /* quantize the activations once, row by row */
        const sx_wtype *at = sx_wtype_of(wt->act_type);
        sx_from_f32_fn q = at ? sx_wtype_kernels_of(at).from_f32 : NULL;
        size_t rowb = sx_type_nbytes(wt->act_type, W->K);
        if (!q || !rowb)
            return sx_err("sx_matmul: weight '%s' (%s): cannot quantize activations to %s",
                          W->name ? W->name : "?", wt->name, sx_type_name(wt->act_type));
        char *xq = (char *)sx_scratch(SX_SCR_ACT, (rowb * (size_t)M + 3) / 4);
        if (!xq) return sx_err("sx_matmul: out of memory quantizing activations for '%s'", W->name);
        for (int64_t r = 0; r < M; r++) q(xq + (size_t)r * rowb, X + r * ldx, W->K);
        J.X = xq;
        J.ldx = rowb;
    }
    /* Only the scheduling depends on the chunk, not the results. A few rows
     * (decode): 16 tasks per matrix, each a contiguous run of weight rows
     * (one stream); the kernels prepare the activations once per task. Many
     * rows of X: each task's weight rows are read again per group of rows,
     * from the cache if they fit in QROWS_CHUNK_BYTES. */
    int64_t chunk = (W->N + 15) / 16;
    if (M > SX_GEMV_MAX_M) {
        for (chunk = 16; chunk * 64 < W->N && chunk < 256;) chunk *= 2;
        while (chunk > 4 && (size_t)chunk * sx_type_nbytes(W->type, W->K) > QROWS_CHUNK_BYTES)
            chunk /= 2;
    }
    sx_parallel_for(W->N, chunk, gemv_task, &J);
    if (post) sx_gemm_epilogue(Y, ldy, out, W->N, M, W->N, NULL, ep->act, ep->accumulate);
    return 0;
}

/* ---- quantized weights, many rows, BF16 compute: the int8 GEMM ----
 * (quant.h: the arithmetic, the panels and the micro-kernel.) The rows of X
 * are quantized to Q8_0 once per call; column tasks as the BF16 GEMM's with
 * weights converted per call: each packs a K slice of its columns into int8
 * panels (I8_KBLK blocks: 8 panels x 64 x 704 bytes = 352 KB, in L2) and
 * multiplies every row by them, SX_I8_MR rows at a time; the sums carry
 * from slice to slice in Y (or in the task's C block before an epilogue).
 * Each output is computed by one task in block order: the same bits for
 * any thread count. */
static int i8gemm_mode = 1;

int sx_set_i8gemm(int mode) {
    if (mode < 0 || mode > 2) return sx_err("sx_set_i8gemm: mode %d (0, 1 or 2)", mode);
    i8gemm_mode = mode;
    return 0;
}

#define I8_NC    128 /* columns per task (fewer when that leaves a thread under 8 tasks) */
#define I8_KBLK  64  /* blocks per K slice */
#define I8_TASKS 8

typedef struct {
    float *Y;
    int64_t ldy;
    const uint8_t *au; /* [M][K]: activation codes + 128 */
    const float *da;   /* [M][nb]: their block scales */
    const float *dsa;  /* [M][nb]: da * the block's code sum (types with mins), or NULL */
    const sx_weight *W;
    sx_i8pack_fn pack;
    sx_i8_ukr_fn ukr;
    const sx_epilogue *ep;
    int64_t M, N, K, nb, nc;
    _Atomic int failed;
} i8_job;

static void i8_task(void *ctx, int64_t t0, int64_t t1, int tid) {
    (void)tid;
    i8_job *J = ctx;
    const int64_t M = J->M, nb = J->nb;
    int post = J->ep->act || J->ep->accumulate;
    size_t rb = row_bytes(J->W), pbytes = (size_t)I8_KBLK * SX_I8_PANEL_BYTES;
    uint8_t *bs = (uint8_t *)sx_scratch(SX_SCR_BF16_B, (size_t)(J->nc / 16) * pbytes / 4);
    float *C = post ? sx_scratch(SX_SCR_BF16_C, (size_t)(M * J->nc)) : NULL;
    if (!bs || (post && !C)) {
        J->failed = 1;
        return;
    }
    for (int64_t t = t0; t < t1; t++) {
        int64_t n0 = t * J->nc, ncnt = J->N - n0 < J->nc ? J->N - n0 : J->nc;
        int np = (int)((ncnt + 15) / 16);
        float *out = post ? C : J->Y + n0;
        int64_t ldo = post ? J->nc : J->ldy;
        for (int64_t k0 = 0; k0 < nb; k0 += I8_KBLK) {
            int64_t kb = nb - k0 < I8_KBLK ? nb - k0 : I8_KBLK;
            for (int p = 0; p < np; p++) { /* 16 weight rows -> a panel of kb blocks */
                const void *rows[16];
                int nr = ncnt - 16 * p < 16 ? (int)(ncnt - 16 * p) : 16;
                for (int n = 0; n < nr; n++)
                    rows[n] = (const char *)J->W->data + (size_t)(n0 + 16 * p + n) * rb;
                J->pack(bs + (size_t)p * (size_t)kb * SX_I8_PANEL_BYTES, rows, nr, k0, kb);
            }
            for (int64_t m = 0; m < M; m += SX_I8_MR) {
                const uint8_t *ar[SX_I8_MR];
                const float *dr[SX_I8_MR], *sr[SX_I8_MR];
                int rows = M - m < SX_I8_MR ? (int)(M - m) : SX_I8_MR;
                for (int r = 0; r < rows; r++) {
                    ar[r] = J->au + (size_t)(m + r) * (size_t)J->K + (size_t)k0 * 32;
                    dr[r] = J->da + (m + r) * nb + k0;
                    sr[r] = J->dsa ? J->dsa + (m + r) * nb + k0 : NULL;
                }
                for (int p = 0; p < np; p += 2) {
                    int cols = ncnt - 16 * p < 32 ? (int)(ncnt - 16 * p) : 32;
                    const uint8_t *b0 = bs + (size_t)p * (size_t)kb * SX_I8_PANEL_BYTES;
                    const uint8_t *b1 = p + 1 < np ? b0 + (size_t)kb * SX_I8_PANEL_BYTES : b0;
                    J->ukr(kb, ar, dr, J->dsa ? sr : NULL, rows, b0, b1, cols,
                           out + m * ldo + 16 * p, ldo, k0 > 0);
                }
            }
        }
        if (post || J->ep->bias)
            sx_gemm_epilogue(J->Y + n0, J->ldy, out, ldo, M, ncnt,
                             J->ep->bias ? J->ep->bias + n0 : NULL, J->ep->act, J->ep->accumulate);
    }
}

/* rows of X -> Q8_0 -> codes + 128, float block scales (and dsa) */
typedef struct {
    const float *X;
    int64_t ldx, K, nb;
    sx_from_f32_fn quant;
    uint8_t *au;
    float *da, *dsa;
} i8_prep_job;

static void i8_prep_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    i8_prep_job *P = ctx;
    uint8_t q[SX_Q8_0_BYTES * 64];
    for (int64_t m = b; m < e; m++)
        for (int64_t k0 = 0; k0 < P->nb; k0 += 64) { /* 64 blocks at a time */
            int64_t n = P->nb - k0 < 64 ? P->nb - k0 : 64;
            P->quant(q, P->X + m * P->ldx + k0 * 32, n * 32);
            for (int64_t j = 0; j < n; j++) {
                const uint8_t *blk = q + j * SX_Q8_0_BYTES;
                uint8_t *dst = P->au + (size_t)m * (size_t)P->K + (size_t)(k0 + j) * 32;
                uint16_t h;
                int32_t sum = 0;
                memcpy(&h, blk, 2);
                float d = sx_f16_to_f32(h);
                P->da[m * P->nb + k0 + j] = d;
                for (int k = 0; k < 32; k++) {
                    dst[k] = (uint8_t)(blk[2 + k] ^ 0x80);
                    sum += (int8_t)blk[2 + k];
                }
                if (P->dsa) P->dsa[m * P->nb + k0 + j] = d * (float)sum;
            }
        }
}

/* the int8 GEMM's kernels for this weight and call, or 0 */
static int i8_kernels(const sx_wtype *wt, int mode, sx_i8pack_fn *pack, sx_i8_ukr_fn *ukr) {
    if (!wt->quantized || !i8gemm_mode) return 0;
    if (i8gemm_mode == 2) {
        *pack = wt->k[SX_SIMD_SCALAR].i8pack;
        *ukr = sx_i8_ukr_scalar;
        return *pack != NULL;
    }
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
    sx_wtype_kernels kt = sx_wtype_kernels_of(wt);
    if (mode == SX_COMPUTE_BF16 && sx_simd_vec_level() == SX_SIMD_AVX512 && sx_simd_vnni() &&
        kt.i8pack) {
        *pack = kt.i8pack;
        *ukr = sx_i8_ukr_avx512;
        return 1;
    }
#else
    (void)mode;
#endif
    return 0;
}

static int matmul_i8(float *Y, int64_t ldy, const float *X, int64_t ldx, const sx_weight *W,
                     const sx_epilogue *ep, int64_t M, sx_i8pack_fn pack, sx_i8_ukr_fn ukr) {
    const char *nm = W->name ? W->name : "?";
    int64_t K = W->K, nb = K / 32;
    sx_from_f32_fn q = sx_wtype_kernels_of(sx_wtype_of(SX_Q8_0)).from_f32;
    uint8_t *au = (uint8_t *)sx_scratch(SX_SCR_ACT, ((size_t)M * (size_t)K + 3) / 4);
    int mins = sx_wtype_of(W->type)->i8_mins;
    float *da = sx_scratch(SX_SCR_QPREP, (size_t)(M * nb) * (mins ? 2 : 1));
    if (!au || !da)
        return sx_err("sx_matmul: out of memory quantizing activations for '%s' (M=%lld K=%lld)",
                      nm, (long long)M, (long long)K);
    i8_prep_job P = {X, ldx, K, nb, q, au, da, mins ? da + M * nb : NULL};
    sx_parallel_for(M, 8, i8_prep_task, &P);
    i8_job J = {.Y = Y,
                .ldy = ldy,
                .au = au,
                .da = da,
                .dsa = P.dsa,
                .W = W,
                .pack = pack,
                .ukr = ukr,
                .ep = ep,
                .M = M,
                .N = W->N,
                .K = K,
                .nb = nb,
                .nc = I8_NC};
    while (J.nc > 32 && (J.N + J.nc - 1) / J.nc < I8_TASKS * sx_threads_count()) J.nc -= 32;
    sx_parallel_for((J.N + J.nc - 1) / J.nc, 1, i8_task, &J);
    if (J.failed) return sx_err("sx_matmul: out of memory converting '%s'", nm);
    return 0;
}

static int cached_w_on = 1;

int sx_set_gemm_cached_w(int on) {
    if (on != 0 && on != 1) return sx_err("sx_set_gemm_cached_w: %d (0 or 1)", on);
    cached_w_on = on;
    return 0;
}

/* W's columns [n0, n0 + ncnt) -> float32 panels at bp, per call (threads over panels) */
static int pack_b_cols(float *bp, const sx_weight *W, int64_t n0, int64_t ncnt,
                       const sx_kernels *kk) {
    pack_job PB = {bp, NULL, 0, 0, W->K, W, n0, ncnt, kk->nr, kk, 0};
    sx_parallel_for((ncnt + kk->nr - 1) / kk->nr, 2, pack_b_task, &PB);
    if (PB.failed)
        return sx_err("sx_matmul: out of memory converting '%s'", W->name ? W->name : "?");
    return 0;
}

/* F16/BF16 panels [b, e) of nr x K elements -> float32 (matmul_cached_w) */
typedef struct {
    float *dst;
    const uint16_t *src;
    int type;
    int64_t per; /* elements per panel */
} widen_job;

static void widen_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    widen_job *J = ctx;
    sx_wtype_kernels_of(sx_wtype_of(J->type))
        .to_f32(J->dst + b * J->per, J->src + b * J->per, (e - b) * J->per);
}

/* The GEMM for a W that stays in the last-level cache (see the top of this
 * section): tasks of mc rows of X, mc from GEMM_XT_BYTES (at least 4 tasks
 * per thread), all N columns each; W as float32 panels: packed at load
 * (F16/BF16 ones widened here, once), or packed now. Same sums, same order
 * as the general path. */
static int matmul_cached_w(float *Y, int64_t ldy, const float *X, int64_t ldx, const sx_weight *W,
                           const sx_epilogue *ep, int64_t M, const sx_kernels *kk,
                           const sx_packed *pk) {
    int mr = kk->mr, nr = kk->nr;
    int64_t K = W->K, np = (W->N + nr - 1) / nr; /* panels */
    const void *b = NULL;
    if (pk && pk->type == SX_F32) {
        b = (const float *)pk->data + W->packed_n0 * K;
    } else {
        float *bp = sx_scratch(SX_SCR_GEMM_B, (size_t)(np * nr) * (size_t)K);
        if (!bp)
            return sx_err("sx_matmul: out of memory packing '%s' (N=%lld K=%lld)",
                          W->name ? W->name : "?", (long long)W->N, (long long)K);
        if (pk) {
            widen_job WJ = {bp, (const uint16_t *)pk->data + W->packed_n0 * K, pk->type, nr * K};
            sx_parallel_for(np, 1, widen_task, &WJ);
        } else {
            if (pack_b_cols(bp, W, 0, W->N, kk)) return -1;
        }
        b = bp;
    }
    int64_t nsl = (K + GEMM_KC - 1) / GEMM_KC, kcs = (K + nsl - 1) / nsl;
    int64_t mc = GEMM_XT_BYTES / (int64_t)sizeof(float) / kcs / mr * mr;
    if (mc < mr) mc = mr;
    while (mc > mr && (M + mc - 1) / mc < 4 * sx_threads_count()) mc -= mr;
    gemm_job J = {.Y = Y,
                  .ldy = ldy,
                  .bp = b,
                  .bias = ep->bias,
                  .M = M,
                  .N = W->N,
                  .K = K,
                  .mc = mc,
                  .nc = np * nr,
                  .n_mblk = (M + mc - 1) / mc,
                  .n_nblk = 1,
                  .k = kk,
                  .act = ep->act,
                  .accumulate = ep->accumulate,
                  .btype = SX_F32,
                  .X = X,
                  .ldx = ldx};
    sx_parallel_for(J.n_mblk, 1, gemm_task, &J);
    if (J.failed) return sx_err("sx_matmul: out of memory for '%s'", W->name ? W->name : "?");
    return 0;
}

int sx_matmul_ep(float *Y, int64_t ldy, const float *X, int64_t ldx, const sx_weight *W,
                 const sx_epilogue *ep, int64_t M) {
    static const sx_epilogue none;
    if (!ep) ep = &none;
    const float *bias = ep->bias;
    if (!Y || !X || !W || !W->data)
        return sx_err("sx_matmul: NULL argument (weight '%s')", W && W->name ? W->name : "?");
    if (M < 0 || W->N <= 0 || W->K <= 0 || ldx < W->K || ldy < W->N)
        return sx_err("sx_matmul: bad sizes for weight '%s': M=%lld N=%lld K=%lld ldx=%lld ldy=%lld",
                      W->name ? W->name : "?", (long long)M, (long long)W->N, (long long)W->K,
                      (long long)ldx, (long long)ldy);
    const sx_wtype *wt = sx_wtype_of(W->type);
    if (!wt || !wt->storage || W->K % wt->block || (wt->quantized && W->trans))
        return sx_err("sx_matmul: weight '%s' has type %s%s, which this build cannot multiply",
                      W->name ? W->name : "?", sx_type_name(W->type),
                      wt && wt->quantized && W->trans ? " stored transposed" : "");
    if (M == 0) return 0;
    if (ep->act < SX_ACT_NONE || ep->act > SX_ACT_SILU)
        return sx_err("sx_matmul: weight '%s': unknown activation %d", W->name ? W->name : "?",
                      ep->act);
    int mode = ep->compute ? ep->compute : sx_compute();
    if (mode != SX_COMPUTE_F32 && mode != SX_COMPUTE_BF16)
        return sx_err("sx_matmul: weight '%s': unknown compute type %d", W->name ? W->name : "?",
                      mode);
    /* quantized weights: the integer kernels (activations quantized once) */
    sx_i8pack_fn i8pack = NULL;
    sx_i8_ukr_fn i8ukr = NULL;
    int i8 = i8_kernels(wt, mode, &i8pack, &i8ukr);
    if (quant_rows(wt, M, mode, i8)) return matmul_gemv(Y, ldy, X, ldx, W, ep, M);
    /* more rows under BF16 compute: the int8 GEMM where the path has one */
    if (i8) return matmul_i8(Y, ldy, X, ldx, W, ep, M, i8pack, i8ukr);
    /* BF16: the tile kernels, for any M when the weight is packed (they
     * stream the packed matrix once, as the GEMV streams the stored one);
     * unpacked weights keep the float32 GEMV for few rows (decode) */
    if (mode == SX_COMPUTE_BF16 && (W->packed || M > 2 * SX_GEMV_MAX_M || W->trans))
        return sx_matmul_bf16(Y, ldy, X, ldx, W, ep, M);
    /* matrix-vector: stream each weight row once per 4 rows of X (a weight
     * packed at load is streamed in its panels by the GEMM's kernels) */
    if (M <= 2 * SX_GEMV_MAX_M && !W->trans && !packed_panels(W, sx_kernels_cur()))
        return matmul_gemv(Y, ldy, X, ldx, W, ep, M);
    const sx_kernels *kk = sx_kernels_cur();
    int mr = kk->mr, nr = kk->nr;
    int64_t K = W->K;
    const sx_packed *pk = packed_panels(W, kk);
    if (cached_w_on && M >= 8 * mr &&
        (W->N + nr - 1) / nr * nr * K * (int64_t)sizeof(float) <= GEMM_CACHED_W)
        return matmul_cached_w(Y, ldy, X, ldx, W, ep, M, kk, pk);
    /* slabs: rows of X and columns of W whose packed copies fit the caps */
    int64_t ms = (GEMM_A_MAX / K) / mr * mr, ns = (GEMM_B_MAX / K) / nr * nr;
    if (pk) ns = W->N; /* packed at load: one slab */
    if (ms < mr) ms = mr;
    if (ns < nr) ns = nr;
    if (ms > M) ms = (M + mr - 1) / mr * mr;
    if (ns > W->N) ns = (W->N + nr - 1) / nr * nr;
    float *ap = sx_scratch(SX_SCR_GEMM_A, (size_t)ms * (size_t)K);
    float *bp = pk ? NULL : sx_scratch(SX_SCR_GEMM_B, (size_t)ns * (size_t)K);
    if (!ap || (!pk && !bp))
        return sx_err("sx_matmul: out of memory packing '%s' (M=%lld N=%lld K=%lld)",
                      W->name ? W->name : "?", (long long)M, (long long)W->N, (long long)K);
    for (int64_t m0 = 0; m0 < M; m0 += ms) {
        int64_t mcnt = M - m0 < ms ? M - m0 : ms;
        pack_job PA = {ap, X + m0 * ldx, ldx, mcnt, K, NULL, 0, 0, mr, kk, 0};
        sx_parallel_for((mcnt + mr - 1) / mr, 4, pack_a_task, &PA);
        for (int64_t n0 = 0; n0 < W->N; n0 += ns) {
            int64_t ncnt = W->N - n0 < ns ? W->N - n0 : ns;
            const void *b = bp;
            int btype = SX_F32;
            if (pk) {
                btype = pk->type;
                b = (const char *)pk->data + (size_t)(W->packed_n0 * K) * (btype == SX_F32 ? 4 : 2);
            } else {
                if (pack_b_cols(bp, W, n0, ncnt, kk)) return -1;
            }
            gemm_job J = {.Y = Y + m0 * ldy + n0,
                          .ldy = ldy,
                          .ap = ap,
                          .bp = b,
                          .bias = bias ? bias + n0 : NULL,
                          .M = mcnt,
                          .N = ncnt,
                          .K = K,
                          .mc = GEMM_MC_ROWS >= mr ? GEMM_MC_ROWS / mr * mr : mr,
                          .nc = GEMM_NC,
                          .k = kk,
                          .act = ep->act,
                          .accumulate = ep->accumulate,
                          .btype = btype};
            J.n_mblk = (mcnt + J.mc - 1) / J.mc;
            /* enough tasks for all threads: shrink the blocks (multiples of nr / mr) */
            while (J.nc > nr && J.n_mblk * ((ncnt + J.nc - 1) / J.nc) < 4 * sx_threads_count())
                J.nc -= nr;
            while (J.mc > mr && ((mcnt + J.mc - 1) / J.mc) * ((ncnt + J.nc - 1) / J.nc) <
                                    4 * sx_threads_count())
                J.mc -= mr;
            J.n_mblk = (mcnt + J.mc - 1) / J.mc;
            J.n_nblk = (ncnt + J.nc - 1) / J.nc;
            sx_parallel_for(J.n_mblk * J.n_nblk, 1, gemm_task, &J);
            if (J.failed)
                return sx_err("sx_matmul: out of memory for '%s'", W->name ? W->name : "?");
        }
    }
    return 0;
}

int sx_matmul_ld(float *Y, int64_t ldy, const float *X, int64_t ldx, const sx_weight *W,
                 const float *bias, int64_t M) {
    sx_epilogue ep = {.bias = bias};
    return sx_matmul_ep(Y, ldy, X, ldx, W, &ep, M);
}

int sx_matmul(float *Y, const float *X, const sx_weight *W, const float *bias, int64_t M) {
    if (!W) return sx_err("sx_matmul: NULL weight");
    return sx_matmul_ld(Y, W->N, X, W->K, W, bias, M);
}


/* ---- single-thread building blocks (attention's per-head products) ---- */

int sx_gemm_pack_b(float *dst, const sx_weight *W, int64_t n0, int64_t N, int64_t K) {
    const sx_kernels *kk = sx_kernels_cur();
    pack_job P = {dst, NULL, 0, 0, K, W, n0, N, kk->nr, kk, 0};
    pack_b_task(&P, 0, (N + kk->nr - 1) / kk->nr, 0);
    return P.failed ? -1 : 0;
}

void sx_gemm_prepacked(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M,
                       const float *bp, int64_t N, int64_t K, int64_t bK, float *ap) {
    const sx_kernels *kk = sx_kernels_cur();
    pack_job PA = {ap, x, ldx, M, K, NULL, 0, 0, kk->mr, kk, 0};
    pack_a_task(&PA, 0, (M + kk->mr - 1) / kk->mr, 0);
    gemm_job G = {.Y = y,
                  .ldy = ldy,
                  .ap = ap,
                  .bp = bp,
                  .M = M,
                  .N = N,
                  .K = K,
                  .mc = M,
                  .nc = N,
                  .n_mblk = 1,
                  .n_nblk = 1,
                  .k = kk,
                  .bK = bK,
                  .btype = SX_F32};
    gemm_task(&G, 0, 1, 0);
}
