/* ops.c - the kernel layer's scalar reference kernels and its small ops:
 * norms, softmax, activations, elementwise, RoPE, resampling; plus the
 * per-thread scratch the drivers share. The drivers of the large ops live
 * in ops_gemm.c (weights, matmul), ops_attn.c (attention) and ops_conv.c
 * (convolution); per-ISA inner kernels in ops_<isa>.c behind the tables of
 * ops_impl.h and wtype.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "ops_impl.h"
#include "ops.h"
#include "sx_core.h"

/* ======================================================================
 * scalar reference kernels
 * ====================================================================== */
#define SC_MR 4
#define SC_NR 8
static void ukr_scalar(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                       int load_c) {
    float acc[SC_MR][SC_NR];
    for (int i = 0; i < SC_MR; i++)
        for (int j = 0; j < SC_NR; j++) acc[i][j] = load_c ? c[i * ldc + j] : 0.0f;
    for (int64_t k = 0; k < kc; k++) {
        const float *ak = a + k * SC_MR, *bk = b + k * SC_NR;
        for (int i = 0; i < SC_MR; i++)
            for (int j = 0; j < SC_NR; j++) acc[i][j] += ak[i] * bk[j];
    }
    for (int i = 0; i < SC_MR; i++)
        for (int j = 0; j < SC_NR; j++) c[i * ldc + j] = acc[i][j];
}

/* GEMV on float weights: each output a plain sum over k in order. */
static inline float wval(const void *w, int type, int64_t k) {
    const uint8_t *p = (const uint8_t *)w;
    if (type == SX_F32) {
        float f;
        memcpy(&f, p + 4 * k, 4);
        return f;
    }
    uint16_t h = (uint16_t)(p[2 * k] | p[2 * k + 1] << 8);
    return type == SX_F16 ? sx_f16_to_f32(h) : sx_bf16_to_f32(h);
}

static inline void gemv_float(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,
                              size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias,
                              int type) {
    for (int64_t n = n0; n < n1; n++) {
        const char *wr = (const char *)w + (size_t)n * ldw;
        for (int r = 0; r < m; r++) {
            const float *xr = (const float *)((const char *)x + (size_t)r * ldx);
            float s = 0;
            for (int64_t k = 0; k < K; k++) s += xr[k] * wval(wr, type, k);
            y[r * ldy + n] = s + (bias ? bias[n] : 0.0f);
        }
    }
}
#define GEMV_FLOAT(name, TYPE)                                                                \
    void name(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w,          \
              size_t ldw, int64_t n0, int64_t n1, int64_t K, const float *bias) {              \
        gemv_float(y, ldy, x, ldx, m, w, ldw, n0, n1, K, bias, TYPE);                          \
    }
GEMV_FLOAT(sx_gemv_f32_scalar, SX_F32)
GEMV_FLOAT(sx_gemv_f16_scalar, SX_F16)
GEMV_FLOAT(sx_gemv_bf16_scalar, SX_BF16)

static void softmax_row_scalar(float *x, int64_t n, float scale) {
    float mx = -INFINITY, s = 0;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    float m = mx * scale;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] * scale - m);
        s += x[i];
    }
    float inv = 1.0f / s;
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

/* ukr with B's panel in the weight's float type (F32/F16/BF16) and only
 * `rows` rows of A meaningful (ops_impl.h) */
static void ukr_x_scalar(int64_t kc, const float *a, const void *b, int btype, int rows, float *c,
                         int64_t ldc, int load_c) {
    float acc[SC_MR][SC_NR];
    for (int i = 0; i < SC_MR; i++)
        for (int j = 0; j < SC_NR; j++) acc[i][j] = load_c ? c[i * ldc + j] : 0.0f;
    for (int64_t k = 0; k < kc; k++) {
        const float *ak = a + k * SC_MR;
        float bk[SC_NR];
        for (int j = 0; j < SC_NR; j++) {
            uint16_t h;
            if (btype == SX_F32) {
                bk[j] = ((const float *)b)[k * SC_NR + j];
                continue;
            }
            h = ((const uint16_t *)b)[k * SC_NR + j];
            bk[j] = btype == SX_F16 ? sx_f16_to_f32(h) : sx_bf16_to_f32(h);
        }
        for (int i = 0; i < rows && i < SC_MR; i++)
            for (int j = 0; j < SC_NR; j++) acc[i][j] += ak[i] * bk[j];
    }
    for (int i = 0; i < SC_MR; i++)
        for (int j = 0; j < SC_NR; j++) c[i * ldc + j] = acc[i][j];
}

static void act_row_scalar(float *y, const float *x, int64_t n, int act) {
    for (int64_t i = 0; i < n; i++) y[i] = sx_act1(x[i], act);
}

static void epilogue_row_scalar(float *y, const float *c, const float *bias, int64_t n, int act,
                                int accumulate) {
    for (int64_t j = 0; j < n; j++) {
        float t = c[j];
        if (bias) t += bias[j];
        if (act) t = sx_act1(t, act);
        y[j] = accumulate ? y[j] + t : t;
    }
}

/* written in k order so the stores are sequential; the rows are read as
 * parallel streams */
static void pack_a_scalar(float *dst, const float *x, int64_t ldx, int rows, int mr, int64_t K) {
    for (int64_t k = 0; k < K; k++) {
        float *d = dst + k * mr;
        for (int r = 0; r < rows; r++) d[r] = x[r * ldx + k];
        for (int r = rows; r < mr; r++) d[r] = 0.0f;
    }
}

static void layernorm_row_scalar(float *y, const float *x, const float *w, const float *b,
                                 int64_t dim, float eps) {
    double s = 0, ss = 0;
    for (int64_t i = 0; i < dim; i++) s += x[i];
    double mean = s / (double)dim;
    for (int64_t i = 0; i < dim; i++) {
        double d = x[i] - mean;
        ss += d * d;
    }
    float m = (float)mean, rstd = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
    for (int64_t i = 0; i < dim; i++) {
        float v = (x[i] - m) * rstd;
        if (w) v = v * w[i];
        if (b) v = v + b[i];
        y[i] = v;
    }
}

static void values_row_scalar(float *o, const float *p, int64_t n, const float *v, int64_t ldv,
                              int D) {
    for (int d = 0; d < D; d++) o[d] = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        const float *vj = v + j * ldv;
        float pj = p[j];
        for (int d = 0; d < D; d++) o[d] = o[d] + pj * vj[d];
    }
}

const sx_kernels sx_kernels_scalar = {.name = "scalar",
                                      .layernorm_row = layernorm_row_scalar,
                                      .act_row = act_row_scalar,
                                      .epilogue_row = epilogue_row_scalar,
                                      .pack_a = pack_a_scalar,
                                      .ukr_x = ukr_x_scalar,
                                      .mr = SC_MR,
                                      .nr = SC_NR,
                                      .ukr = ukr_scalar,
                                      .softmax_row = softmax_row_scalar,
                                      .values_row = values_row_scalar};

/* Vector conversions of aligned F16/BF16 arrays (the current path's). */
void sx_f16_to_f32_n(float *y, const uint16_t *x, int64_t n) {
    sx_wtype_kernels_of(sx_wtype_of(SX_F16)).to_f32(y, x, n);
}
void sx_bf16_to_f32_n(float *y, const uint16_t *x, int64_t n) {
    sx_wtype_kernels_of(sx_wtype_of(SX_BF16)).to_f32(y, x, n);
}

/* ======================================================================
 * Per-thread scratch buffers (see ops_impl.h).
 * ====================================================================== */
static _Thread_local float *scr_buf[SX_SCR_N];
static _Thread_local size_t scr_cap[SX_SCR_N];

float *sx_scratch(int slot, size_t n) {
    if (n > scr_cap[slot]) {
        free(scr_buf[slot]);
        size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
        scr_buf[slot] = bytes / sizeof(float) >= n ? aligned_alloc(64, bytes) : NULL;
        scr_cap[slot] = scr_buf[slot] ? n : 0;
    }
    return scr_buf[slot];
}

void sx_ops_thread_cleanup(void) {
    for (int i = 0; i < SX_SCR_N; i++) {
        free(scr_buf[i]);
        scr_buf[i] = NULL;
        scr_cap[i] = 0;
    }
}

/* ======================================================================
 * norms, softmax, activations, elementwise
 * ====================================================================== */
#define EW_CHUNK 16384 /* elements per task of the elementwise ops (and rows of ~as many) */

/* Rows are independent: split across the threads in fixed row ranges (the
 * same arithmetic per row whatever the thread count). */
typedef struct {
    float *y;
    const float *x, *w, *b;
    int64_t dim;
    float eps;
} ln_job;

static void ln_task(void *ctx, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const ln_job *J = ctx;
    const sx_kernels *k = sx_kernels_cur();
    for (int64_t r = r0; r < r1; r++)
        k->layernorm_row(J->y + r * J->dim, J->x + r * J->dim, J->w, J->b, J->dim, J->eps);
}

void sx_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows,
                  int64_t dim, float eps) {
    if (rows <= 0 || dim <= 0) return;
    ln_job J = {y, x, w, b, dim, eps};
    sx_parallel_for(rows, dim >= EW_CHUNK ? 1 : EW_CHUNK / dim, ln_task, &J);
}

void sx_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t dim, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        double ss = 0;
        for (int64_t i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        float rs = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
        for (int64_t i = 0; i < dim; i++) yr[i] = (w ? w[i] : 1.0f) * (xr[i] * rs);
    }
}

typedef struct {
    float *y;
    const float *x, *w, *b;
    int64_t cg, HW;
    float eps;
} gn_job;

void sx_groupnorm_stats(const float *x, int64_t n, float eps, float *mean, float *rstd) {
    double s[4] = {0, 0, 0, 0}, ss[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) s[j] += x[i + j];
    for (; i < n; i++) s[i % 4] += x[i];
    double mu = ((s[0] + s[1]) + (s[2] + s[3])) / (double)n;
    for (i = 0; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) {
            double d = x[i + j] - mu;
            ss[j] += d * d;
        }
    for (; i < n; i++) {
        double d = x[i] - mu;
        ss[i % 4] += d * d;
    }
    *mean = (float)mu;
    *rstd = (float)(1.0 / sqrt(((ss[0] + ss[1]) + (ss[2] + ss[3])) / (double)n + (double)eps));
}

/* one group: its statistics, then the per-channel affine */
static void gn_task(void *ctx, int64_t b0, int64_t e0, int tid) {
    (void)tid;
    gn_job *J = ctx;
    int64_t n = J->cg * J->HW;
    for (int64_t g = b0; g < e0; g++) {
        const float *xg = J->x + g * n;
        float *yg = J->y + g * n, m, rstd;
        sx_groupnorm_stats(xg, n, J->eps, &m, &rstd);
        for (int64_t c = 0; c < J->cg; c++) {
            int64_t ch = g * J->cg + c;
            float ww = J->w ? J->w[ch] : 1.0f, bb = J->b ? J->b[ch] : 0.0f;
            for (int64_t i = 0; i < J->HW; i++)
                yg[c * J->HW + i] = (xg[c * J->HW + i] - m) * rstd * ww + bb;
        }
    }
}

int sx_groupnorm(float *y, const float *x, const float *w, const float *b, int64_t C, int64_t HW,
                 int groups, float eps) {
    if (groups <= 0 || C % groups != 0)
        return sx_err("sx_groupnorm: %lld channels not divisible into %d groups", (long long)C,
                      groups);
    gn_job J = {y, x, w, b, C / groups, HW, eps};
    sx_parallel_for(groups, 1, gn_task, &J);
    return 0;
}

void sx_softmax(float *x, int64_t rows, int64_t dim) {
    for (int64_t r = 0; r < rows; r++)
        if (dim > 0) sx_kernels_cur()->softmax_row(x + r * dim, dim, 1.0f);
}

/* Elementwise ops: each element's result does not depend on how the range is
 * cut, so large arrays are split across the threads in fixed chunks. */
enum { EW_GELU, EW_GELU_TANH, EW_SILU, EW_ADD, EW_MUL };
typedef struct {
    int op;
    float *y;
    const float *a, *b;
} ew_job;

static void ew_task(void *ctx, int64_t b0, int64_t e0, int tid) {
    (void)tid;
    ew_job *J = ctx;
    float *y = J->y;
    const float *a = J->a, *b = J->b;
    switch (J->op) {
    case EW_GELU: sx_kernels_cur()->act_row(y + b0, a + b0, e0 - b0, SX_ACT_GELU); break;
    case EW_GELU_TANH: sx_kernels_cur()->act_row(y + b0, a + b0, e0 - b0, SX_ACT_GELU_TANH); break;
    case EW_SILU: sx_kernels_cur()->act_row(y + b0, a + b0, e0 - b0, SX_ACT_SILU); break;
    case EW_ADD:
        for (int64_t i = b0; i < e0; i++) y[i] = a[i] + b[i];
        break;
    default:
        for (int64_t i = b0; i < e0; i++) y[i] = a[i] * b[i];
        break;
    }
}

static void ew(int op, float *y, const float *a, const float *b, int64_t n) {
    ew_job J = {op, y, a, b};
    sx_parallel_for(n, EW_CHUNK, ew_task, &J);
}

void sx_gelu(float *y, const float *x, int64_t n) { ew(EW_GELU, y, x, NULL, n); }
void sx_gelu_tanh(float *y, const float *x, int64_t n) { ew(EW_GELU_TANH, y, x, NULL, n); }
void sx_silu(float *y, const float *x, int64_t n) { ew(EW_SILU, y, x, NULL, n); }
void sx_add(float *y, const float *a, const float *b, int64_t n) { ew(EW_ADD, y, a, b, n); }
void sx_mul(float *y, const float *a, const float *b, int64_t n) { ew(EW_MUL, y, a, b, n); }

/* GEGLU on rows [value | gate] of 2F floats: gate <- value * gelu(gate) */
typedef struct {
    float *x;
    int64_t F;
} geglu_job;

static void geglu_task(void *ctx, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const geglu_job *J = ctx;
    const sx_kernels *k = sx_kernels_cur();
    for (int64_t r = r0; r < r1; r++) {
        float *v = J->x + r * 2 * J->F, *g = v + J->F;
        k->act_row(g, g, J->F, SX_ACT_GELU);
        for (int64_t i = 0; i < J->F; i++) g[i] = v[i] * g[i];
    }
}

void sx_geglu(float *x, int64_t rows, int64_t F) {
    if (rows <= 0 || F <= 0) return;
    geglu_job J = {x, F};
    sx_parallel_for(rows, F >= EW_CHUNK ? 1 : EW_CHUNK / F, geglu_task, &J);
}

void sx_scale(float *y, const float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * s;
}

void sx_add_row(float *y, const float *b, int64_t rows, int64_t dim) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < dim; i++) y[r * dim + i] += b[i];
}

void sx_add_channel(float *y, const float *b, int64_t C, int64_t HW) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < HW; i++) y[c * HW + i] += b[c];
}

void sx_transpose(float *y, const float *x, int64_t R, int64_t C) {
    const int64_t B = 32;
    for (int64_t r0 = 0; r0 < R; r0 += B)
        for (int64_t c0 = 0; c0 < C; c0 += B)
            for (int64_t r = r0; r < R && r < r0 + B; r++)
                for (int64_t c = c0; c < C && c < c0 + B; c++) y[c * R + r] = x[r * C + c];
}

/* ======================================================================
 * rotary embedding (HF rotate_half): for i < d/2 with inv_freq_i, angle =
 * pos * inv_freq_i (float32, as HF builds its cos/sin cache):
 *   out[i] = x[i] cos - x[i+d/2] sin; out[i+d/2] = x[i+d/2] cos + x[i] sin
 * ====================================================================== */
void sx_rope(float *x, int64_t T, int n_heads, int head_dim, int64_t tok_stride,
             int64_t head_stride, int64_t pos0, float theta) {
    int half = head_dim / 2;
    float *cs = malloc(sizeof(float) * (size_t)head_dim);
    if (!cs) return;
    for (int64_t t = 0; t < T; t++) {
        float pos = (float)(pos0 + t);
        for (int i = 0; i < half; i++) {
            float inv = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
            float ang = pos * inv;
            cs[i] = cosf(ang);
            cs[half + i] = sinf(ang);
        }
        for (int h = 0; h < n_heads; h++) {
            float *v = x + t * tok_stride + (int64_t)h * head_stride;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half], c = cs[i], s = cs[half + i];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
    }
    free(cs);
}

/* ======================================================================
 * resampling
 * ====================================================================== */
static float cubic_w(float t, int which) {
    /* PyTorch upsample_bicubic2d, A = -0.75: weights for taps -1, 0, 1, 2 */
    const float A = -0.75f;
    float x;
    switch (which) {
    case 0: x = t + 1.0f; return ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A;
    case 1: x = t; return ((A + 2.0f) * x - (A + 3.0f)) * x * x + 1.0f;
    case 2: x = 1.0f - t; return ((A + 2.0f) * x - (A + 3.0f)) * x * x + 1.0f;
    default: x = 2.0f - t; return ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A;
    }
}

static int64_t clampi(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

void sx_interp_bicubic(float *y, const float *x, int64_t C, int64_t h, int64_t w, int64_t oh,
                       int64_t ow) {
    float sh = (float)h / (float)oh, sw = (float)w / (float)ow;
    for (int64_t oy = 0; oy < oh; oy++) {
        float fy = ((float)oy + 0.5f) * sh - 0.5f;
        int64_t iy = (int64_t)floorf(fy);
        float ty = fy - (float)iy, wy[4];
        for (int k = 0; k < 4; k++) wy[k] = cubic_w(ty, k);
        for (int64_t ox = 0; ox < ow; ox++) {
            float fx = ((float)ox + 0.5f) * sw - 0.5f;
            int64_t ix = (int64_t)floorf(fx);
            float tx = fx - (float)ix, wx[4];
            for (int k = 0; k < 4; k++) wx[k] = cubic_w(tx, k);
            for (int64_t c = 0; c < C; c++) {
                const float *xc = x + c * h * w;
                float acc = 0;
                for (int ky = 0; ky < 4; ky++) {
                    const float *row = xc + clampi(iy - 1 + ky, 0, h - 1) * w;
                    float r = 0;
                    for (int kx = 0; kx < 4; kx++) r += row[clampi(ix - 1 + kx, 0, w - 1)] * wx[kx];
                    acc += r * wy[ky];
                }
                y[(c * oh + oy) * ow + ox] = acc;
            }
        }
    }
}

void sx_upsample_nearest2x(float *y, const float *x, int64_t C, int64_t H, int64_t W) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < 2 * H; i++) {
            const float *src = x + (c * H + i / 2) * W;
            float *dst = y + (c * 2 * H + i) * 2 * W;
            for (int64_t j = 0; j < 2 * W; j++) dst[j] = src[j / 2];
        }
}

void sx_avgpool_tokens(float *y, const float *x, int64_t L, int64_t D, int64_t k) {
    for (int64_t o = 0; o < L / k; o++)
        for (int64_t d = 0; d < D; d++) {
            float s = 0;
            for (int64_t j = 0; j < k; j++) s += x[(o * k + j) * D + d];
            y[o * D + d] = s / (float)k;
        }
}

/* ======================================================================
 * deterministic test data (mirrors scripts/sxrand.py)
 * ====================================================================== */
void sx_rand_uniform(float *y, int64_t n, uint64_t seed, float lo, float hi) {
    uint64_t base = seed * 0x9E3779B97F4A7C15ull;
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = base + (uint64_t)i + 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        float u = (float)(z >> 40) * (1.0f / 16777216.0f);
        y[i] = lo + (hi - lo) * u;
    }
}
