/* tests/bench_unet.c - SDXL UNet speed and memory at 1024x1024 (make bench).
 *
 * 1. Per-block timing at SDXL-base shapes (latent 128x128, 64x2048 context) with
 *    sxrand weights stored F16 (convert_unet.py's default): one BasicTransformerBlock
 *    at 1280 ch / 1024 tokens and at 640 ch / 4096 tokens, one ResnetBlock2D C->C at
 *    each level (320 @128^2, 640 @64^2, 1280 @32^2), the Transformer2DModel wrapper
 *    (GroupNorm + proj_in/out, 0 blocks) at both widths. The UNet total is the sum
 *    over its module list: 60 + 10 transformer blocks and 11 wrappers as measured,
 *    every other resnet / sampler conv scaled from the same level's C->C resnet by
 *    its conv FLOPs (stated extrapolation). One CFG step = 2 UNet evaluations.
 *    Printed per SIMD path (avx2, avx512, neon; the scalar path is skipped: ~10x slower)
 *    and thread count (1, all). scripts/bench_unet_torch.py does the same blocks
 *    in PyTorch (F32 and bf16 autocast); bench_unet runs it after its own numbers when
 *    .venv exists (SEEDX_BENCH_TORCH=0 skips it).
 * 2. With SEEDX_UNET_GGUF=path (an SDXL-shaped UNet, e.g. written by
 *    `scripts/bench_unet_torch.py --write-gguf PATH`): one real 1024x1024 forward,
 *    time and peak RSS, next to the size of the weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "seedx.h"
#include "unet.h"

static uint64_t g_seed = 1000;
static void *g_alloc[4096];
static int g_nalloc;

static void *keep(void *p) {
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    if (g_nalloc < 4096) g_alloc[g_nalloc++] = p;
    return p;
}
static void free_all(void) {
    while (g_nalloc) free(g_alloc[--g_nalloc]);
}

static float *vec(int64_t n, float lo, float hi) {
    float *p = keep(malloc(sizeof(float) * (size_t)n));
    sx_rand_uniform(p, n, g_seed++, lo, hi);
    return p;
}
/* F16 [N, K] weight with values in +-1/sqrt(K) */
static sx_weight mat(int64_t N, int64_t K) {
    float *t = malloc(sizeof(float) * (size_t)(N * K));
    uint16_t *h = keep(malloc(sizeof(uint16_t) * (size_t)(N * K)));
    if (!t) exit(1);
    float a = 1.0f / sqrtf((float)K);
    sx_rand_uniform(t, N * K, g_seed++, -a, a);
    for (int64_t i = 0; i < N * K; i++) h[i] = sx_f32_to_f16(t[i]);
    free(t);
    sx_weight w;
    memset(&w, 0, sizeof w);
    w.type = SX_F16;
    w.N = N;
    w.K = K;
    w.ld = K;
    w.data = h;
    return w;
}

static sx_linear lin(int64_t N, int64_t K, int bias) {
    return (sx_linear){mat(N, K), bias ? vec(N, -0.1f, 0.1f) : NULL};
}
static sx_norm norm(int64_t c, int groups, float eps) {
    return (sx_norm){.w = vec(c, 0.8f, 1.2f), .b = vec(c, -0.1f, 0.1f), .dim = c, .groups = groups,
                     .eps = eps};
}
static sx_conv_layer conv3(int c) {
    sx_conv_layer cv = sx_conv_f32(NULL, vec(c, -0.1f, 0.1f), c, c, 3, 1, 1);
    cv.w = mat(c, (int64_t)c * 9);
    return cv;
}

static void make_tblock(sx_unet_tblock *b, int D, int heads, int C) {
    memset(b, 0, sizeof *b);
    b->norm1 = norm(D, 0, 1e-5f), b->norm2 = norm(D, 0, 1e-5f), b->norm3 = norm(D, 0, 1e-5f);
    b->attn1.q = lin(D, D, 0), b->attn1.k = lin(D, D, 0), b->attn1.v = lin(D, D, 0);
    b->attn1.o = lin(D, D, 1);
    b->attn2.q = lin(D, D, 0), b->attn2.k = lin(D, C, 0), b->attn2.v = lin(D, C, 0);
    b->attn2.o = lin(D, D, 1);
    sx_mha_init(&b->attn1, heads);
    sx_mha_init(&b->attn2, heads);
    b->ff_proj = lin(8 * (int64_t)D, D, 1);
    b->ff_out = lin(D, 4 * (int64_t)D, 1);
}

static void make_resnet(sx_resnet *r, int c, int E) {
    memset(r, 0, sizeof *r);
    r->cin = r->cout = c;
    r->norm1 = norm(c, 32, 1e-5f), r->norm2 = norm(c, 32, 1e-5f);
    r->conv1 = conv3(c), r->conv2 = conv3(c);
    r->time_emb_proj = lin(c, E, 1);
}

static void make_wrapper(sx_unet_transformer *t, int c) {
    memset(t, 0, sizeof *t);
    t->norm = norm(c, 32, 1e-6f);
    t->proj_in = lin(c, c, 1);
    t->proj_out = lin(c, c, 1);
    t->n_layers = 0;
}

/* conv MACs of a resnet cin->cout on HW pixels (two 3x3 convs + 1x1 shortcut) */
static double res_macs(double cin, double cout, double hw) {
    return hw * (9 * cin * cout + 9 * cout * cout + (cin != cout ? cin * cout : 0));
}

typedef struct {
    double tb1280, tb640, r[3], w1280, w640;
} timings;

static double now(void) { return sx_time(); }
static double cpu_now(void) { /* process CPU time, all threads */
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void run_blocks(timings *T) {
    static const int lvl_c[3] = {320, 640, 1280}, lvl_s[3] = {128, 64, 32};
    sx_arena ws = {0};
    const int E = 1280, C = 2048;
    float *ctx = vec(64 * (int64_t)C, -1, 1);
    /* transformer blocks */
    {
        sx_unet_tblock b;
        make_tblock(&b, 1280, 20, C);
        float *h = vec(1024 * 1280, -1, 1);
        double t0 = now();
        if (sx_unet_tblock_forward(&b, h, 1024, ctx, 64, &ws)) fprintf(stderr, "%s\n", sx_errmsg());
        T->tb1280 = now() - t0;
        make_tblock(&b, 640, 10, C);
        h = vec(4096 * 640, -1, 1);
        t0 = now();
        if (sx_unet_tblock_forward(&b, h, 4096, ctx, 64, &ws)) fprintf(stderr, "%s\n", sx_errmsg());
        T->tb640 = now() - t0;
    }
    /* resnets C->C per level */
    float *emb = vec(E, -1, 1);
    for (int l = 0; l < 3; l++) {
        sx_resnet r;
        int c = lvl_c[l], s = lvl_s[l];
        make_resnet(&r, c, E);
        float *x = vec((int64_t)c * s * s, -1, 1);
        float *y = keep(malloc(sizeof(float) * (size_t)c * s * s));
        double t0 = now();
        if (sx_resnet_forward(&r, y, x, s, s, emb, &ws)) fprintf(stderr, "%s\n", sx_errmsg());
        T->r[l] = now() - t0;
    }
    /* transformer wrappers (GroupNorm + proj_in + proj_out) */
    for (int l = 1; l < 3; l++) {
        sx_unet_transformer t;
        int c = lvl_c[l], s = lvl_s[l];
        make_wrapper(&t, c);
        float *x = vec((int64_t)c * s * s, -1, 1);
        float *y = keep(malloc(sizeof(float) * (size_t)c * s * s));
        double t0 = now();
        if (sx_unet_transformer_forward(&t, y, x, s, s, ctx, 64, NULL, &ws))
            fprintf(stderr, "%s\n", sx_errmsg());
        if (l == 1)
            T->w640 = now() - t0;
        else
            T->w1280 = now() - t0;
    }
    sx_arena_free(&ws);
    free_all();
}

/* SDXL-base module list -> one UNet evaluation (seconds) */
static double extrapolate(const timings *T, int verbose) {
    const double hw[3] = {128 * 128, 64 * 64, 32 * 32};
    const double cc[3] = {320, 640, 1280};
    double rate[3];
    for (int l = 0; l < 3; l++) rate[l] = T->r[l] / res_macs(cc[l], cc[l], hw[l]);
    /* resnets (cin, cout, level) */
    static const int R[][3] = {{320, 320, 0},  {320, 320, 0},  {320, 640, 1},   {640, 640, 1},
                               {640, 1280, 2}, {1280, 1280, 2}, {1280, 1280, 2}, {1280, 1280, 2},
                               {2560, 1280, 2}, {2560, 1280, 2}, {1920, 1280, 2}, {1920, 640, 1},
                               {1280, 640, 1}, {960, 640, 1},   {960, 320, 0},   {640, 320, 0},
                               {640, 320, 0}};
    double tres = 0;
    for (size_t i = 0; i < sizeof R / sizeof *R; i++)
        tres += rate[R[i][2]] * res_macs(R[i][0], R[i][1], hw[R[i][2]]);
    /* convs: conv_in (4->320 @128), down convs (320 @64 out, 640 @32 out), up convs
     * (1280 @64, 640 @128), conv_out (320->4 @128), at their level's resnet MAC rate */
    double tconv = rate[0] * (hw[0] * 9 * 4 * 320 + hw[0] * 9 * 320 * 4) +
                   rate[1] * (hw[1] * 9 * 320 * 320 + hw[1] * 9 * 1280 * 1280) +
                   rate[2] * (hw[2] * 9 * 640 * 640) + rate[0] * (hw[0] * 9 * 640 * 640);
    double ttf = 60 * T->tb1280 + 10 * T->tb640 + 6 * T->w1280 + 5 * T->w640;
    double tot = tres + tconv + ttf;
    if (verbose)
        printf("    blocks: tblock1280@1024tok %.3fs  tblock640@4096tok %.3fs  resnet320@128^2 %.3fs  "
               "resnet640@64^2 %.3fs  resnet1280@32^2 %.3fs  wrapper640 %.3fs  wrapper1280 %.3fs\n"
               "    UNet eval: transformers %.1fs + resnets %.1fs + convs %.1fs = %.1fs\n",
               T->tb1280, T->tb640, T->r[0], T->r[1], T->r[2], T->w640, T->w1280, ttf, tres, tconv, tot);
    return tot;
}

static void real_forward(const char *path) {
    sx_unet *u;
    double t0 = now();
    if (sx_unet_load(path, &u)) {
        fprintf(stderr, "%s\n", sx_errmsg());
        return;
    }
    size_t wbytes = 0;
    sx_gguf *g = sx_unet_gguf(u);
    for (int64_t i = 0; i < sx_gguf_n_tensors(g); i++) wbytes += sx_gguf_tensor_at(g, i)->nbytes;
    const sx_unet_config *c = sx_unet_get_config(u);
    printf("real forward: %s (%.2f GB of weights), load %.1fs\n", path, wbytes / 1e9, now() - t0);
    int64_t h = 128, w = 128;
    float *x = vec((int64_t)c->in_channels * h * w, -1, 1), *ctx = vec(64 * (int64_t)c->cross_dim, -1, 1);
    float *pooled = vec(c->pooled_dim > 0 ? c->pooled_dim : 1, -1, 1);
    float tids[6] = {1024, 1024, 0, 0, 1024, 1024};
    float *eps = keep(malloc(sizeof(float) * (size_t)(c->out_channels * h * w)));
    size_t rss0 = sx_peak_rss();
    t0 = now();
    double c0 = cpu_now();
    sx_unet_cond cond = {.context = ctx, .n_ctx = 64, .ctx_dim = c->cross_dim, .pooled = pooled,
                         .pooled_dim = c->pooled_dim, .time_ids = tids};
    if (sx_unet_forward(u, x, c->in_channels, h, w, 981.0f, &cond, eps))
        fprintf(stderr, "%s\n", sx_errmsg());
    double dt = now() - t0, cpu = cpu_now() - c0;
    size_t rss = sx_peak_rss();
    printf("  1024x1024 forward: %.1fs, %.1f CPU-s (%d threads, %s); peak RSS %.2f GB (before %.2f "
           "GB), "
           "peak minus weights %.2f GB; one CFG step = 2 forwards = %.1fs\n",
           dt, cpu, sx_threads_count(), sx_simd_name(sx_simd_level()), rss / 1e9, rss0 / 1e9,
           ((double)rss - (double)wbytes) / 1e9, 2 * dt);
    sx_unet_free(u);
    free_all();
}

int main(void) {
    if (sx_init(0)) return 1;
    int nt = sx_threads_count();
    const char *real = getenv("SEEDX_UNET_GGUF");
    if (real) {
        real_forward(real);
        return 0;
    }
    printf("SDXL UNet at 1024x1024 (latent 128x128, 64 context tokens), F16 weights, per-block "
           "timing extrapolated to one evaluation (see header)\n");
    int levels[3] = {SX_SIMD_AVX2, SX_SIMD_AVX512, SX_SIMD_NEON};
    for (int li = 0; li < 3; li++) {
        if (!sx_simd_supported(levels[li])) continue;
        sx_simd_set(levels[li]);
        int tc[2] = {1, nt};
        for (int ti = 0; ti < (nt > 1 ? 2 : 1); ti++) {
            sx_threads_init(tc[ti]);
            sx_simd_set(levels[li]);
            timings T;
            run_blocks(&T);
            printf("  %-7s %d thread%s\n", sx_simd_name(levels[li]), tc[ti], tc[ti] > 1 ? "s" : "");
            double e = extrapolate(&T, 1);
            printf("    => %.1fs per UNet eval, %.1fs per CFG step (2 evals), %.0fs for 50 steps; "
                   "edit (3 evals) %.1fs per step\n",
                   e, 2 * e, 100 * e, 3 * e);
        }
    }
    sx_threads_init(nt);
    /* activation memory estimate of one forward at 1024x1024 (float32 buffers of unet.c):
     * 3 work buffers sized by the forward's rule (level 0: 2 x max(320, 640) channels at
     * 128^2), the 9 skip tensors, a resnet's scratch, a transformer block's scratch */
    double big = 2.0 * 640 * 128 * 128;
    double skips = 3 * 320 * 16384.0 + 320 * 4096.0 + 2 * 640 * 4096.0 + 640 * 1024.0 + 2 * 1280 * 1024.0;
    double resnet_scratch = (960 + 320) * 16384.0;
    double tblock = 4096 * 640 * 4.0 + 1024 * 5120.0 + 2 * 640 * 4096.0;
    printf("  activation buffers (estimate): 3 x %.0f MB work + %.0f MB skips + %.0f MB resnet "
           "scratch + %.0f MB transformer scratch = %.2f GB (+ matmul/conv packing scratch)\n",
           big * 4 / 1e6, skips * 4 / 1e6, resnet_scratch * 4 / 1e6, tblock * 4 / 1e6,
           (3 * big + skips + resnet_scratch + tblock) * 4 / 1e9);
    /* the same blocks in PyTorch, in the same run (skipped without the reference venv or
     * with SEEDX_BENCH_TORCH=0) */
    const char *bt = getenv("SEEDX_BENCH_TORCH");
    FILE *py = fopen(".venv/bin/python", "rb");
    if (py && !(bt && !strcmp(bt, "0"))) {
        fclose(py);
        fflush(stdout);
        FILE *p = popen(".venv/bin/python scripts/bench_unet_torch.py 2>&1", "r");
        char line[512];
        while (p && fgets(line, sizeof line, p)) fputs(line, stdout);
        if (p) pclose(p);
    } else if (py) {
        fclose(py);
    }
    return 0;
}
