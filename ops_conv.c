/* ops_conv.c - 2-D convolution as im2col + the parallel GEMM. */
#include "ops_impl.h"
#include "ops.h"
#include "sx_core.h"

/* ======================================================================
 * conv2d as GEMM: the output pixels are cut in chunks; for each chunk the
 * im2col rows [P, Cin*kh*kw] are built (in parallel), multiplied by the
 * kernel viewed [Cout, Cin*kh*kw] (the parallel GEMM) and written back
 * transposed into the [Cout, Ho*Wo] output.
 * ====================================================================== */
#define CONV_COL_MAX ((int64_t)6 << 20) /* floats of im2col per chunk (24 MB) */

typedef struct {
    float *col;
    const float *x;
    int64_t H, W, Wo, p0;
    const sx_conv *c;
} im2col_job;

static void im2col_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    im2col_job *J = ctx;
    const sx_conv *c = J->c;
    int64_t Kd = (int64_t)c->cin * c->kh * c->kw;
    for (int64_t p = b; p < e; p++) {
        int64_t oy = (J->p0 + p) / J->Wo, ox = (J->p0 + p) % J->Wo;
        float *r = J->col + p * Kd;
        for (int ci = 0; ci < c->cin; ci++)
            for (int ky = 0; ky < c->kh; ky++) {
                int64_t iy = oy * c->stride - c->pad_t + ky;
                const float *xr = J->x + ((int64_t)ci * J->H + iy) * J->W;
                int inside_y = iy >= 0 && iy < J->H;
                for (int kx = 0; kx < c->kw; kx++) {
                    int64_t ix = ox * c->stride - c->pad_l + kx;
                    *r++ = (inside_y && ix >= 0 && ix < J->W) ? xr[ix] : 0.0f;
                }
            }
    }
}

typedef struct {
    float *y;
    const float *out;
    int64_t np, cout, HWo, p0;
} scatter_job;

static void conv_scatter_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    scatter_job *J = ctx;
    for (int64_t o = b; o < e; o++)
        for (int64_t p = 0; p < J->np; p++) J->y[o * J->HWo + J->p0 + p] = J->out[p * J->cout + o];
}

int sx_conv2d(float *y, const float *x, int64_t H, int64_t W, const sx_conv *c,
              const sx_weight *w, const float *bias, int64_t *Ho, int64_t *Wo) {
    if (!y || !x || !c || !w) return sx_err("sx_conv2d: NULL argument");
    if (c->cin <= 0 || c->cout <= 0 || c->kh <= 0 || c->kw <= 0 || c->stride <= 0 || c->pad_t < 0 ||
        c->pad_l < 0 || c->pad_b < 0 || c->pad_r < 0)
        return sx_err("sx_conv2d: bad conv parameters for '%s'", w->name ? w->name : "?");
    if (w->N != c->cout || w->K != (int64_t)c->cin * c->kh * c->kw || w->trans)
        return sx_err("sx_conv2d: weight '%s' is [%lld,%lld], expected [%d,%d] (Cout, Cin*%d*%d)",
                      w->name ? w->name : "?", (long long)w->N, (long long)w->K, c->cout,
                      c->cin * c->kh * c->kw, c->kh, c->kw);
    int64_t ho = (H + c->pad_t + c->pad_b - c->kh) / c->stride + 1;
    int64_t wo = (W + c->pad_l + c->pad_r - c->kw) / c->stride + 1;
    if (H <= 0 || W <= 0 || ho <= 0 || wo <= 0)
        return sx_err("sx_conv2d: input %lldx%lld too small for a %dx%d kernel ('%s')",
                      (long long)H, (long long)W, c->kh, c->kw, w->name ? w->name : "?");
    int64_t Kd = w->K, HWo = ho * wo;
    int64_t chunk = CONV_COL_MAX / Kd;
    if (chunk < 64) chunk = 64;
    if (chunk > HWo) chunk = HWo;
    float *col = sx_scratch(SX_SCR_CONV_COL, (size_t)chunk * (size_t)Kd);
    float *out = sx_scratch(SX_SCR_CONV_OUT, (size_t)chunk * (size_t)c->cout);
    if (!col || !out)
        return sx_err("sx_conv2d: out of memory ('%s')", w->name ? w->name : "?");
    int rc = 0;
    for (int64_t p0 = 0; p0 < HWo && rc == 0; p0 += chunk) {
        int64_t np = HWo - p0 < chunk ? HWo - p0 : chunk;
        im2col_job IJ = {col, x, H, W, wo, p0, c};
        sx_parallel_for(np, 16, im2col_task, &IJ);
        rc = sx_matmul_ld(out, c->cout, col, Kd, w, bias, np); /* [np, Cout] */
        scatter_job SJ = {y, out, np, c->cout, HWo, p0};
        sx_parallel_for(c->cout, 8, conv_scatter_task, &SJ);
    }
    if (rc) return rc;
    if (Ho) *Ho = ho;
    if (Wo) *Wo = wo;
    return 0;
}

