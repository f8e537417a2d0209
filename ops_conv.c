/* ops_conv.c - 2-D convolution as an implicit GEMM writing the [Cout, P]
 * output (P = Ho*Wo pixels):
 *   Y[co][p] = sum_k W[co][k] X[k][p],  k = (ci, ky, kx),
 *   X[k][p] = x[ci][oy*s + ky - pad_t][ox*s + kx - pad_l] (0 outside).
 * The weights are packed once per call into mr-channel panels [K][mr] (the
 * broadcast operand of the micro-kernel, sx_conv_kernels in ops_impl.h,
 * converted to F32). The output is cut in blocks of pixels x channels, the
 * tasks of the thread pool, and each block runs over the input channels in
 * slices. X is never materialised: per slice, the band of input rows under
 * the block is copied once, zero-padded (and, for stride s > 1, split into
 * s column phases, so that every kernel tap reads a contiguous run), and
 * the micro-kernel reads the shifted runs of every tap in place. A 1x1
 * convolution reads x itself (X = x). Outputs narrower than one register
 * tile (small test models) gather nr-pixel panels of X across output rows. Every output element is
 * a running sum over k in order, so neither the blocks, the slices, the path nor the thread count
 * change its bytes. */
#include <string.h>

#include "half.h"
#include "ops_impl.h"
#include "ops.h"
#include "sx_core.h"

#ifndef CONV_KC
/* rows of k per slice: 1024 (113 input channels of a 3x3) rather than 256
 * took the 3x3 convs 1-4% faster on AMD Zen 4 (AVX-512 and AVX2; the
 * block's sums go through memory once per slice; the band of a slice,
 * 0.3-0.4 MB, stays in its 1 MB L2): README, "Benchmarks" */
#define CONV_KC 1024
#endif
#ifndef CONV_PB
#define CONV_PB 512 /* output pixels per block (about) */
#endif
#define CONV_BW 128 /* columns of a block in a wide output */
#ifndef CONV_PF
#define CONV_PF 4 /* input channels prefetched ahead while copying bands */
#endif

/* ======================================================================
 * scalar reference micro-kernel
 * ====================================================================== */
#define SC_MR 4
#define SC_NR 8
static void sc_ukr(int nci, int ntaps, const int64_t *toff, const float *a, const float *x,
                   int64_t cs, float *c, int64_t ldc, int load_c) {
    float acc[SC_MR][SC_NR];
    for (int r = 0; r < SC_MR; r++)
        for (int j = 0; j < SC_NR; j++) acc[r][j] = load_c ? c[r * ldc + j] : 0.0f;
    for (int ci = 0; ci < nci; ci++, x += cs)
        for (int t = 0; t < ntaps; t++, a += SC_MR) {
            const float *xr = x + toff[t];
            for (int r = 0; r < SC_MR; r++)
                for (int j = 0; j < SC_NR; j++) acc[r][j] += a[r] * xr[j];
        }
    for (int r = 0; r < SC_MR; r++)
        for (int j = 0; j < SC_NR; j++) c[r * ldc + j] = acc[r][j];
}

static void sc_store(float *y, int64_t ldy, const float *c, int64_t ldc, const float *bias,
                     int rows, int cols, int accumulate) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) {
            float t = c[r * ldc + j] + (bias ? bias[r] : 0.0f);
            y[r * ldy + j] = accumulate ? y[r * ldy + j] + t : t;
        }
}

static void sc_prologue(float *v, int64_t n, float mean, float rstd, float w, float b, int silu) {
    for (int64_t i = 0; i < n; i++) {
        float t = (v[i] - mean) * rstd * w + b;
        v[i] = silu ? sx_act1(t, SX_ACT_SILU) : t;
    }
}

static void sc_pack_w(float *dst, const float *w, int64_t ldw, int n, int64_t K) {
    for (int64_t k = 0; k < K; k++, dst += SC_MR)
        for (int r = 0; r < SC_MR; r++) dst[r] = r < n ? w[r * ldw + k] : 0.0f;
}

void sx_conv_pack_w_panels(float *dst, int mr, const void *pdata, int type, int pnr, int64_t K,
                           int64_t c0, int n) {
    for (int r = 0; r < mr; r++) {
        int64_t c = c0 + r, base = c / pnr * pnr * K + c % pnr; /* element (c, k): base + k*pnr */
        for (int64_t k = 0; k < K; k++) {
            float v = 0.0f;
            if (r < n) {
                int64_t i = base + k * pnr;
                v = type == SX_F32   ? ((const float *)pdata)[i]
                    : type == SX_F16 ? sx_f16_to_f32(((const uint16_t *)pdata)[i])
                                     : sx_bf16_to_f32(((const uint16_t *)pdata)[i]);
            }
            dst[k * mr + r] = v;
        }
    }
}

static void sc_pack_w_panels(float *dst, const void *pdata, int type, int pnr, int64_t K,
                             int64_t c0, int n) {
    sx_conv_pack_w_panels(dst, SC_MR, pdata, type, pnr, K, c0, n);
}

const sx_conv_kernels sx_conv_scalar = {.name = "scalar",
                                        .mr = SC_MR,
                                        .nr = SC_NR,
                                        .ukr = sc_ukr,
                                        .pack_w = sc_pack_w,
                                        .pack_w_panels = sc_pack_w_panels,
                                        .store = sc_store,
                                        .prologue = sc_prologue};

const sx_conv_kernels *sx_conv_kernels_cur(void) {
    return SX_F32_SET(sx_conv);
}

/* ======================================================================
 * driver
 * ====================================================================== */
#define CONV_TAPS_MAX 256 /* band path: kernels up to 16x16 */
enum { CONV_BAND, CONV_FLAT, CONV_GATHER };
#define SX_CONV_GROUPS_MAX 1024 /* GroupNorm groups of the fused prologue */

typedef struct {
    const sx_conv *c;
    float *y;
    const float *x, *bias;
    int64_t H, W, Ho, Wo, P, K;
    const float *ap; /* packed weights [ceil(Cout/mr)][K][mr] */
    const sx_weight *w;
    const sx_conv_kernels *ck;
    int mode;   /* CONV_BAND, CONV_FLAT or CONV_GATHER (see sx_conv2d) */
    int direct; /* mode == CONV_BAND */
    /* blocks: band: bh rows x bw columns; else runs of pb pixels; x cb channels */
    int64_t bh, bw, pb, cb, n_pb, n_cb;
    /* direct: a band per slice of nsl channels: [nsl][brows][rs], rs = s phases
     * of ps columns; toff: the taps' offsets in it */
    int64_t nsl, ps, rs, cs, brows;
    int64_t toff[CONV_TAPS_MAX];
    const sx_conv_fuse *f; /* prologue / epilogue (sx_conv2d_fused), or NULL */
    const float *gstat;    /* per group: mean, rstd */
    int64_t cg;            /* input channels per group */
    _Atomic int failed;
} conv_job;

/* The fused prologue on n values of input channel ci. */
static void conv_pre(const conv_job *J, float *v, int64_t n, int64_t ci) {
    const sx_conv_fuse *f = J->f;
    int64_t g = ci / J->cg;
    J->ck->prologue(v, n, J->gstat[2 * g], J->gstat[2 * g + 1], f->gn_w ? f->gn_w[ci] : 1.0f,
                    f->gn_b ? f->gn_b[ci] : 0.0f, f->silu);
}

/* The weight's panels packed at load for the F32 compute type, if any. */
static const sx_packed *conv_panels(const sx_weight *w) {
    const sx_packed *pk = w->packed;
    if (!pk || pk->layout != SX_PACK_PANELS || pk->trans || w->trans || pk->K != w->K ||
        w->packed_n0 + w->N > pk->N ||
        (pk->type != SX_F32 && pk->type != SX_F16 && pk->type != SX_BF16))
        return NULL;
    return pk;
}

/* Weights: channel tiles [b, e) -> panels [K][mr] (channels past Cout are
 * 0), from the stored rows or their F32 conversion. */
static void conv_pack_w_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    conv_job *J = ctx;
    const sx_weight *w = J->w;
    sx_to_f32_fn to_f32 = sx_wtype_kernels_of(sx_wtype_of(w->type)).to_f32;
    int mr = J->ck->mr;
    int64_t K = J->K;
    size_t rb = sx_type_nbytes(w->type, w->ld);
    float *rows =
        w->type == SX_F32 || conv_panels(w) ? NULL : sx_scratch(SX_SCR_PACK, (size_t)(mr * K));
    if (w->type != SX_F32 && !conv_panels(w) && !rows) {
        J->failed = 1;
        return;
    }
    const sx_packed *pk = conv_panels(w);
    for (int64_t t = b; t < e; t++) {
        int n = (int)(J->c->cout - t * mr < mr ? J->c->cout - t * mr : mr);
        if (pk) { /* from the panels packed at load (the stored pages may be given back) */
            J->ck->pack_w_panels((float *)J->ap + t * K * mr, pk->data, pk->type, pk->nr, K,
                                 w->packed_n0 + t * mr, n);
            continue;
        }
        const char *src = (const char *)w->data + (size_t)(t * mr) * rb;
        if (rows)
            for (int r = 0; r < n; r++) to_f32(rows + r * K, src + (size_t)r * rb, K);
        J->ck->pack_w((float *)J->ap + t * K * mr, rows ? rows : (const float *)src,
                      rows ? K : w->ld, n, K);
    }
}

/* A tile: n <= nr output pixels from p0 (one output row on the direct
 * path, a run across rows otherwise); xo: its offset in the band. */
typedef struct {
    int64_t p0, xo;
    int n;
} conv_tile;

/* Pixel block blk -> its tiles, and (direct path) its first output row and
 * column and its size in rows and columns. */
static int conv_block_tiles(const conv_job *J, int64_t blk, conv_tile *t, int nr, int64_t *oy0,
                            int64_t *ox0, int64_t *rows, int64_t *cols) {
    int nt = 0;
    if (!J->direct) {
        int64_t p0 = blk * J->pb, np = J->P - p0 < J->pb ? J->P - p0 : J->pb;
        for (int64_t j = 0; j < np; j += nr)
            t[nt++] = (conv_tile){p0 + j, 0, (int)(np - j < nr ? np - j : nr)};
        return nt;
    }
    int64_t bx = (J->Wo + J->bw - 1) / J->bw;
    *oy0 = blk / bx * J->bh, *ox0 = blk % bx * J->bw;
    *rows = J->Ho - *oy0 < J->bh ? J->Ho - *oy0 : J->bh;
    *cols = J->Wo - *ox0 < J->bw ? J->Wo - *ox0 : J->bw;
    for (int64_t r = 0; r < *rows; r++)
        for (int64_t cx = 0; cx < *cols; cx += nr)
            t[nt++] = (conv_tile){(*oy0 + r) * J->Wo + *ox0 + cx, r * J->c->stride * J->rs + cx,
                                  (int)(*cols - cx < nr ? *cols - cx : nr)};
    return nt;
}

/* The band of input channels [ci0, ci0+nch) under output rows [oy0,
 * oy0+rows) and the block's columns from ox0: band row i is input row
 * oy0*s - pad_t + i; in it, phase q's column j is input column
 * ox0*s - pad_l + j*s + q (0 outside the image). */
static void conv_band(float *xb, const conv_job *J, int64_t ci0, int64_t nch, int64_t oy0,
                      int64_t rows, int64_t ox0) {
    const sx_conv *c = J->c;
    int64_t s = c->stride, ps = J->ps, W = J->W;
    int64_t brows = s * (rows - 1) + c->kh, iy0 = oy0 * s - c->pad_t, ix0 = ox0 * s - c->pad_l;
    for (int64_t ci = 0; ci < nch; ci++)
        for (int64_t r = 0; r < brows; r++) {
            float *d = xb + ci * J->cs + r * J->rs;
            int64_t iy = iy0 + r;
            if (iy < 0 || iy >= J->H) {
                memset(d, 0, sizeof(float) * (size_t)J->rs);
                continue;
            }
            const float *src = J->x + ((ci0 + ci) * J->H + iy) * W;
            if (ci + CONV_PF < nch) /* the same row CONV_PF channels ahead (from memory) */
                for (int64_t j = ix0 > 0 ? ix0 : 0; j < ix0 + s * ps && j < W; j += 16)
                    __builtin_prefetch(src + CONV_PF * J->H * W + j);
            for (int64_t q = 0; q < s; q++, d += ps) {
                /* columns j with 0 <= ix0 + j*s + q < W */
                int64_t lo = ix0 + q >= 0 ? 0 : (-(ix0 + q) + s - 1) / s;
                int64_t hi = W - 1 - ix0 - q < 0 ? 0 : (W - 1 - ix0 - q) / s + 1;
                if (lo > ps) lo = ps;
                if (hi > ps) hi = ps;
                if (hi < lo) hi = lo;
                memset(d, 0, sizeof(float) * (size_t)lo);
                if (s == 1)
                    memcpy(d + lo, src + ix0 + lo, sizeof(float) * (size_t)(hi - lo));
                else
                    for (int64_t j = lo; j < hi; j++) d[j] = src[ix0 + j * s + q];
                if (J->f && hi > lo) conv_pre(J, d + lo, hi - lo, ci0 + ci);
                memset(d + hi, 0, sizeof(float) * (size_t)(ps - hi));
            }
        }
}

/* Row k = (ci, ky, kx) of X for the n pixels from p0 into b[0..nr)
 * (columns n .. nr-1 are 0): the gathered path. */
static void conv_b_row(float *b, const conv_job *J, int64_t ci, int64_t ky, int64_t kx, int64_t p0,
                       int n, int nr) {
    const sx_conv *c = J->c;
    const float *xc = J->x + ci * J->H * J->W;
    for (int j = 0; j < nr; j++) {
        int64_t p = p0 + j, iy = p / J->Wo * c->stride + ky - c->pad_t,
                ix = p % J->Wo * c->stride + kx - c->pad_l;
        b[j] = j < n && iy >= 0 && iy < J->H && ix >= 0 && ix < J->W ? xc[iy * J->W + ix] : 0.0f;
        if (J->f && j < n && iy >= 0 && iy < J->H && ix >= 0 && ix < J->W)
            conv_pre(J, b + j, 1, ci);
    }
}

static void conv_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    conv_job *J = ctx;
    const sx_conv *c = J->c;
    const sx_conv_kernels *ck = J->ck;
    int mr = ck->mr, nr = ck->nr, taps = c->kh * c->kw;
    int64_t P = J->P, K = J->K, ntc_max = J->cb / mr;
    /* per block: slices of nsl channels (direct) or of CONV_KC rows of k */
    int64_t ntp_max = J->direct ? J->bh * ((J->bw + nr - 1) / nr) : (J->pb + nr - 1) / nr;
    int64_t nsl = J->direct ? J->nsl : (K < CONV_KC ? K : CONV_KC), nk = J->direct ? c->cin : K;
    int64_t xfl = J->direct ? nsl * J->cs : J->mode == CONV_FLAT ? nsl * nr : ntp_max * nsl * nr;
    /* per thread: the block's X (band or panels), its sums [ntc][ntp][mr][nr]
     * (contiguous tiles: rows of y a multiple of 4 KB apart would alias in
     * L1) and its tile list */
    int64_t tl_at = (xfl + ntc_max * ntp_max * mr * nr + 15) / 16 * 16;
    float *xb =
        sx_scratch(SX_SCR_CONV_COL, (size_t)(tl_at + ntp_max * (int64_t)sizeof(conv_tile) / 4));
    if (!xb) {
        J->failed = 1;
        return;
    }
    float *cb = xb + xfl;
    conv_tile *tl = (conv_tile *)(xb + tl_at);
    static const int64_t zero = 0;
    for (int64_t t = b; t < e; t++) {
        int64_t c0 = t % J->n_cb * J->cb, nc = c->cout - c0 < J->cb ? c->cout - c0 : J->cb;
        int64_t oy0 = 0, ox0 = 0, rows = 0, cols = 0;
        int ntp = conv_block_tiles(J, t / J->n_cb, tl, nr, &oy0, &ox0, &rows, &cols);
        int ntc = (int)((nc + mr - 1) / mr);
        for (int64_t s0 = 0; s0 < nk; s0 += nsl) {
            int64_t ns = nk - s0 < nsl ? nk - s0 : nsl, k0 = J->direct ? s0 * taps : s0;
            if (J->direct) {
                conv_band(xb, J, s0, ns, oy0, rows, ox0);
            } else if (J->mode == CONV_FLAT) { /* x in place; a partial tile's rows padded */
                if (tl[ntp - 1].n < nr)
                    for (int64_t k = 0; k < ns; k++) {
                        float *d = xb + k * nr;
                        memcpy(d, J->x + (s0 + k) * P + tl[ntp - 1].p0,
                               sizeof(float) * (size_t)tl[ntp - 1].n);
                        memset(d + tl[ntp - 1].n, 0, sizeof(float) * (size_t)(nr - tl[ntp - 1].n));
                    }
            } else { /* panels [ntp][ns][nr] */
                for (int64_t k = 0; k < ns; k++) {
                    int64_t ci = (k0 + k) / taps, ky = (k0 + k) % taps / c->kw,
                            kx = (k0 + k) % c->kw;
                    for (int j = 0; j < ntp; j++)
                        conv_b_row(xb + (j * ns + k) * nr, J, ci, ky, kx, tl[j].p0, tl[j].n, nr);
                }
            }
            int last = s0 + ns >= nk;
            for (int i = 0; i < ntc; i++) {
                const float *a = J->ap + (c0 / mr + i) * K * mr + k0 * mr;
                int64_t o = c0 + (int64_t)i * mr;
                int rws = (int)(nc - i * mr < mr ? nc - i * mr : mr);
                for (int j = 0; j < ntp; j++) {
                    float *ct = cb + ((int64_t)i * ntp + j) * mr * nr;
                    if (J->direct)
                        ck->ukr((int)ns, taps, J->toff, a, xb + tl[j].xo, J->cs, ct, nr, s0 > 0);
                    else if (J->mode == CONV_FLAT && tl[j].n == nr)
                        ck->ukr((int)ns, 1, &zero, a, J->x + s0 * P + tl[j].p0, P, ct, nr, s0 > 0);
                    else if (J->mode == CONV_FLAT)
                        ck->ukr((int)ns, 1, &zero, a, xb, nr, ct, nr, s0 > 0);
                    else
                        ck->ukr((int)ns, 1, &zero, a, xb + j * ns * nr, nr, ct, nr, s0 > 0);
                    if (last) /* the finished tile (+ bias) -> y, while in L1 */
                        ck->store(J->y + o * P + tl[j].p0, P, ct, nr, J->bias ? J->bias + o : NULL,
                                  rws, tl[j].n, J->f && J->f->accumulate);
                }
            }
        }
    }
}

/* GroupNorm statistics of the fused prologue, one group per item. */
static void conv_stats_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    conv_job *J = ctx;
    int64_t n = J->cg * J->H * J->W;
    for (int64_t g = b; g < e; g++)
        sx_groupnorm_stats(J->x + g * n, n, J->f->eps, (float *)J->gstat + 2 * g,
                           (float *)J->gstat + 2 * g + 1);
}

static int conv2d(float *y, const float *x, int64_t H, int64_t W, const sx_conv *c,
                  const sx_weight *w, const float *bias, const sx_conv_fuse *f, int64_t *Ho,
                  int64_t *Wo) {
    if (!y || !x || !c || !w) return sx_err("sx_conv2d: NULL argument");
    if (c->cin <= 0 || c->cout <= 0 || c->kh <= 0 || c->kw <= 0 || c->stride <= 0 || c->pad_t < 0 ||
        c->pad_l < 0 || c->pad_b < 0 || c->pad_r < 0)
        return sx_err("sx_conv2d: bad conv parameters for '%s'", w->name ? w->name : "?");
    if (w->N != c->cout || w->K != (int64_t)c->cin * c->kh * c->kw || w->trans)
        return sx_err("sx_conv2d: weight '%s' is [%lld,%lld], expected [%d,%d] (Cout, Cin*%d*%d)",
                      w->name ? w->name : "?", (long long)w->N, (long long)w->K, c->cout,
                      c->cin * c->kh * c->kw, c->kh, c->kw);
    const sx_wtype *wt = sx_wtype_of(w->type);
    if (!wt || !wt->storage || w->K % wt->block)
        return sx_err("sx_conv2d: weight '%s' has type %s, which this build cannot use",
                      w->name ? w->name : "?", sx_type_name(w->type));
    if (H <= 0 || W <= 0 || H + c->pad_t + c->pad_b < c->kh || W + c->pad_l + c->pad_r < c->kw)
        return sx_err("sx_conv2d: input %lldx%lld too small for a %dx%d kernel ('%s')",
                      (long long)H, (long long)W, c->kh, c->kw, w->name ? w->name : "?");
    int64_t ho = (H + c->pad_t + c->pad_b - c->kh) / c->stride + 1;
    int64_t wo = (W + c->pad_l + c->pad_r - c->kw) / c->stride + 1;
    const sx_conv_kernels *ck = sx_conv_kernels_cur();
    int mr = ck->mr, nr = ck->nr;
    int64_t K = w->K, P = ho * wo, ntiles = (c->cout + mr - 1) / mr;
    conv_job J;
    memset(&J, 0, sizeof J);
    J.c = c, J.y = y, J.x = x, J.bias = bias, J.H = H, J.W = W, J.Ho = ho, J.Wo = wo, J.P = P;
    J.K = K, J.w = w, J.ck = ck;
    /* band: the general path; flat: 1x1 convolutions read x in place (X is
     * x); gather: outputs narrower than a register tile */
    J.mode = c->kh == 1 && c->kw == 1 && c->stride == 1 && !c->pad_t && !c->pad_l && !c->pad_b &&
                     !c->pad_r && !f
                 ? CONV_FLAT
             : wo >= nr && c->kh * c->kw <= CONV_TAPS_MAX ? CONV_BAND
                                                          : CONV_GATHER;
    J.direct = J.mode == CONV_BAND;
    float gstat[2 * SX_CONV_GROUPS_MAX];
    if (f) { /* the prologue's GroupNorm statistics */
        if (f->groups <= 0 || f->groups > SX_CONV_GROUPS_MAX || c->cin % f->groups)
            return sx_err("sx_conv2d_fused: %d input channels not divisible into %d groups ('%s')",
                          c->cin, f->groups, w->name ? w->name : "?");
        J.f = f, J.gstat = gstat, J.cg = c->cin / f->groups;
        sx_parallel_for(f->groups, 1, conv_stats_task, &J);
    }
    J.ap = sx_scratch(SX_SCR_CONV_W, (size_t)(ntiles * mr * K));
    if (!J.ap) return sx_err("sx_conv2d: out of memory packing '%s'", w->name ? w->name : "?");
    sx_parallel_for(ntiles, 1, conv_pack_w_task, &J);
    if (J.failed)
        return sx_err("sx_conv2d: out of memory converting '%s'", w->name ? w->name : "?");
    /* blocks of about CONV_PB pixels x all channels, smaller while there are
     * fewer than 4 blocks per thread (the blocks never change the sums) */
    J.cb = ntiles * mr;
    J.bw = wo <= 2 * CONV_BW ? wo : CONV_BW;
    J.bh = CONV_PB / J.bw > 0 ? CONV_PB / J.bw : 1;
    J.pb = P < CONV_PB ? (P + nr - 1) / nr * nr : CONV_PB;
    int want = 4 * sx_threads_count();
    for (;;) {
        J.n_pb =
            J.direct ? (ho + J.bh - 1) / J.bh * ((wo + J.bw - 1) / J.bw) : (P + J.pb - 1) / J.pb;
        J.n_cb = (c->cout + J.cb - 1) / J.cb;
        if (J.n_pb * J.n_cb >= want) break;
        if (J.cb >= 8 * mr)
            J.cb = (J.cb / mr + 1) / 2 * mr;
        else if (J.direct && J.bh > 1)
            J.bh = (J.bh + 1) / 2;
        else if (!J.direct && J.pb > 2 * nr)
            J.pb = (J.pb / nr + 1) / 2 * nr;
        else
            break;
    }
    if (J.direct) { /* the band of a slice, the taps' offsets in it */
        int64_t st = c->stride, ntx = (J.bw + nr - 1) / nr;
        J.nsl = CONV_KC / (c->kh * c->kw) > 0 ? CONV_KC / (c->kh * c->kw) : 1;
        if (J.nsl > c->cin) J.nsl = c->cin;
        J.ps = (ntx * nr + (c->kw - 1) / st + 3) / 4 * 4;
        J.rs = st * J.ps;
        J.brows = st * (J.bh - 1) + c->kh;
        /* channel stride: an odd number of 64-byte lines, so that the rows
         * one tile reads from successive channels do not share L1 sets */
        J.cs = (J.brows * J.rs + 15) / 16 * 16;
        if (J.cs / 16 % 2 == 0) J.cs += 16;
        for (int ky = 0; ky < c->kh; ky++)
            for (int kx = 0; kx < c->kw; kx++)
                J.toff[ky * c->kw + kx] = ky * J.rs + kx % st * J.ps + kx / st;
    }
    sx_parallel_for(J.n_pb * J.n_cb, 1, conv_task, &J);
    if (J.failed) return sx_err("sx_conv2d: out of memory ('%s')", w->name ? w->name : "?");
    if (Ho) *Ho = ho;
    if (Wo) *Wo = wo;
    return 0;
}

int sx_conv2d(float *y, const float *x, int64_t H, int64_t W, const sx_conv *c, const sx_weight *w,
              const float *bias, int64_t *Ho, int64_t *Wo) {
    return conv2d(y, x, H, W, c, w, bias, NULL, Ho, Wo);
}

int sx_conv2d_fused(float *y, const float *x, int64_t H, int64_t W, const sx_conv *c,
                    const sx_weight *w, const float *bias, const sx_conv_fuse *f, int64_t *Ho,
                    int64_t *Wo) {
    if (!f) return sx_err("sx_conv2d_fused: NULL fusion parameters");
    return conv2d(y, x, H, W, c, w, bias, f, Ho, Wo);
}
