/* tests/bench_vae.c - SDXL VAE decode speed and memory (make bench).
 *
 * 1. Per-layer timing at SDXL shapes with sxrand weights (F32): every distinct
 *    resnet / conv of the decoder is timed once on a 64x64 (resnets, convs) crop
 *    and scaled by pixel count (convolutions and norms are linear in pixels);
 *    the mid-block attention is timed at its real 128x128 (16384 tokens). The
 *    sum over the decoder's layer list is the extrapolated 1024x1024 decode
 *    time. scripts/bench_vae_torch.py does the same in PyTorch.
 * 2. With SEEDX_VAE_GGUF=path (an SDXL-shaped VAE, e.g. written by
 *    `scripts/bench_vae_torch.py --write-gguf`), a real decode of a
 *    SEEDX_VAE_SIZE (default 1024) square image: tiled (SEEDX_VAE_TILE px
 *    tiles, default 512) first, then untiled, with time and peak RSS after
 *    each (peak RSS only grows, so the tiled number comes first);
 *    SEEDX_VAE_MODE=tiled|untiled runs only that one (and skips part 1, so
 *    that the peak RSS is the decode's own).
 * The buffer-size estimate of the untiled peak is printed as well. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seedx.h"
#include "vae.h"

static float *rnd(int64_t n, uint64_t seed, float lo, float hi) {
    float *p = malloc(sizeof(float) * (size_t)n);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    sx_rand_uniform(p, n, seed, lo, hi);
    return p;
}

static sx_norm norm(int c, uint64_t s) {
    return (sx_norm){.w = rnd(c, s, 0.5f, 1.5f), .b = rnd(c, s + 1, -0.1f, 0.1f), .dim = c,
                     .groups = 32, .eps = 1e-6f};
}

static void make_resnet(sx_resnet *r, int cin, int cout, uint64_t s) {
    memset(r, 0, sizeof *r);
    r->cin = cin;
    r->cout = cout;
    float a1 = 0.05f, a2 = 0.05f;
    r->norm1 = norm(cin, s + 0);
    float *w1 = rnd((int64_t)cout * cin * 9, s + 2, -a1, a1);
    r->conv1 = sx_conv_f32(w1, rnd(cout, s + 3, -0.1f, 0.1f), cin, cout, 3, 1, 1);
    r->norm2 = norm(cout, s + 4);
    float *w2 = rnd((int64_t)cout * cout * 9, s + 6, -a2, a2);
    r->conv2 = sx_conv_f32(w2, rnd(cout, s + 7, -0.1f, 0.1f), cout, cout, 3, 1, 1);
    if (cin != cout) {
        float *w3 = rnd((int64_t)cout * cin, s + 8, -0.05f, 0.05f);
        r->conv_shortcut = sx_conv_f32(w3, rnd(cout, s + 9, -0.1f, 0.1f), cin, cout, 1, 1, 0);
    }
}

static void free_resnet(sx_resnet *r) {
    const void *p[] = {r->norm1.w, r->norm1.b, r->conv1.w.data, r->conv1.b, r->norm2.w,
                       r->norm2.b, r->conv2.w.data, r->conv2.b, r->conv_shortcut.w.data,
                       r->conv_shortcut.b};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free((void *)p[i]);
}

/* seconds per pixel of one resnet cin->cout, measured on S x S */
static double time_resnet(int cin, int cout, int S) {
    sx_resnet r;
    make_resnet(&r, cin, cout, 1000);
    float *x = rnd((int64_t)cin * S * S, 7, -1, 1);
    float *y = malloc(sizeof(float) * (size_t)cout * S * S);
    sx_arena ws = {0};
    sx_resnet_forward(&r, y, x, S, S, NULL, &ws); /* warm-up */
    double t0 = sx_time();
    if (sx_resnet_forward(&r, y, x, S, S, NULL, &ws) != 0) fprintf(stderr, "%s\n", sx_errmsg());
    double dt = sx_time() - t0;
    sx_arena_free(&ws);
    free(y);
    free(x);
    free_resnet(&r);
    return dt / ((double)S * S);
}

/* seconds per output pixel of a 3x3 conv cin->cout */
static double time_conv(int cin, int cout, int S) {
    float *w = rnd((int64_t)cout * cin * 9, 11, -0.05f, 0.05f), *b = rnd(cout, 12, -0.1f, 0.1f);
    sx_weight sw = sx_weight_f32(w, cout, (int64_t)cin * 9);
    float *x = rnd((int64_t)cin * S * S, 13, -1, 1), *y = malloc(sizeof(float) * (size_t)cout * S * S);
    sx_conv c = {cin, cout, 3, 3, 1, 1, 1, 1, 1};
    sx_conv2d(y, x, S, S, &c, &sw, b, NULL, NULL);
    double t0 = sx_time();
    sx_conv2d(y, x, S, S, &c, &sw, b, NULL, NULL);
    double dt = sx_time() - t0;
    free(w), free(b), free(x), free(y);
    return dt / ((double)S * S);
}

static double time_attn(int C, int S) {
    sx_vae_attn a;
    memset(&a, 0, sizeof a);
    a.group_norm = norm(C, 1);
    sx_linear *ls[4] = {&a.mha.q, &a.mha.k, &a.mha.v, &a.mha.o};
    for (int k = 0; k < 4; k++)
        *ls[k] = sx_linear_f32(rnd((int64_t)C * C, 3 + k, -0.07f, 0.07f), C, C,
                               rnd(C, 9 + k, -0.1f, 0.1f));
    sx_mha_init(&a.mha, 1);
    float *x = rnd((int64_t)C * S * S, 20, -1, 1);
    sx_arena ws = {0};
    double t0 = sx_time();
    if (sx_vae_attn_forward(&a, x, x, S, S, &ws) != 0) fprintf(stderr, "%s\n", sx_errmsg());
    double dt = sx_time() - t0;
    sx_arena_free(&ws);
    free(x);
    free((void *)a.group_norm.w), free((void *)a.group_norm.b);
    for (int k = 0; k < 4; k++) free((void *)ls[k]->w.data), free((void *)ls[k]->b);
    return dt;
}

int main(void) {
    if (sx_init(0) != 0) {
        fprintf(stderr, "%s\n", sx_errmsg());
        return 1;
    }
    printf("vae bench: simd %s, %d threads\n", sx_simd_name(sx_simd_level()), sx_threads_count());
    double mb = 1024.0 * 1024.0;
    if (getenv("SEEDX_VAE_MODE") && getenv("SEEDX_VAE_GGUF")) goto full; /* memory run only */
    const int S = 64;
    const double px128 = 128.0 * 128, px256 = 256.0 * 256, px512 = 512.0 * 512, px1k = 1024.0 * 1024;
    double r512 = time_resnet(512, 512, S), r512_256 = time_resnet(512, 256, S);
    double r256 = time_resnet(256, 256, S), r256_128 = time_resnet(256, 128, S);
    double r128 = time_resnet(128, 128, S);
    double c512 = time_conv(512, 512, S), c256 = time_conv(256, 256, S);
    double cout3 = time_conv(128, 3, S), cin4 = time_conv(4, 512, S);
    double att = time_attn(512, 128);
    printf("per-layer (measured at %dx%d, per megapixel): resnet 512: %.2fs, 512->256: %.2fs, "
           "256: %.2fs, 256->128: %.2fs, 128: %.2fs; conv3x3 512: %.2fs, 256: %.2fs\n",
           S, S, r512 * 1e6, r512_256 * 1e6, r256 * 1e6, r256_128 * 1e6, r128 * 1e6, c512 * 1e6,
           c256 * 1e6);
    printf("mid-block attention 512ch x 16384 tokens: %.2fs (measured at full size)\n", att);
    struct { const char *what; double t; } parts[] = {
        {"conv_in 4->512 @128", cin4 * px128},
        {"mid resnets 2x512 @128", 2 * r512 * px128},
        {"mid attention @128", att},
        {"up0 3 resnets 512 @128", 3 * r512 * px128},
        {"up0 upsample conv 512 @256", c512 * px256},
        {"up1 3 resnets 512 @256", 3 * r512 * px256},
        {"up1 upsample conv 512 @512", c512 * px512},
        {"up2 resnet 512->256 + 2x256 @512", (r512_256 + 2 * r256) * px512},
        {"up2 upsample conv 256 @1024", c256 * px1k},
        {"up3 resnet 256->128 + 2x128 @1024", (r256_128 + 2 * r128) * px1k},
        {"conv_out 128->3 @1024", cout3 * px1k},
    };
    double total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        printf("  %-36s %7.2fs\n", parts[i].what, parts[i].t);
        total += parts[i].t;
    }
    printf("extrapolated 1024x1024 decode (F32): %.1fs\n", total);
    /* untiled peak estimate: the largest resnet step, up3.resnets.0 at 1024^2:
     * input 256ch + norm1 copy 256ch + conv1 out 128ch (+ conv2 out 128ch after
     * the norm copy is freed); and the up2 upsampler: 256ch@512 + 256ch@1024 x2 */
    double res_peak = (256.0 + 256.0 + 128.0) * px1k * 4 / mb;
    double up_peak = (256.0 * px512 + 2 * 256.0 * px1k) * 4 / mb;
    printf("untiled 1024x1024 activation peak estimate: %.0f MB (upsampler step %.0f MB, resnet "
           "step %.0f MB) + weights 335 MB (F32)\n",
           res_peak > up_peak ? res_peak : up_peak, up_peak, res_peak);

full:;
    const char *path = getenv("SEEDX_VAE_GGUF");
    if (!path || !*path) {
        printf("(set SEEDX_VAE_GGUF=sdxl_vae.gguf for a real 1024x1024 decode with peak memory)\n");
        return 0;
    }
    sx_vae *v;
    if (sx_vae_load(path, &v) != 0) {
        fprintf(stderr, "%s\n", sx_errmsg());
        return 1;
    }
    int64_t f = sx_vae_factor(v);
    int64_t px = getenv("SEEDX_VAE_SIZE") ? atoi(getenv("SEEDX_VAE_SIZE")) : 1024;
    int64_t h = px / f, w = px / f;
    const char *mode = getenv("SEEDX_VAE_MODE") ? getenv("SEEDX_VAE_MODE") : "both";
    float *lat = rnd(v->cfg.latent_channels * h * w, 5, -1, 1);
    float *img = malloc(sizeof(float) * 3 * (size_t)(h * f * w * f));
    printf("rss after load: %.0f MB\n", (double)sx_peak_rss() / mb);
    int ts = getenv("SEEDX_VAE_TILE") ? atoi(getenv("SEEDX_VAE_TILE")) : 512;
    v->tile_sample_size = ts;
    double t0;
    if (strcmp(mode, "untiled")) { /* tiled first: peak RSS only grows */
        t0 = sx_time();
        if (sx_vae_decode(v, lat, v->cfg.latent_channels, h, w, 1, img) != 0)
            fprintf(stderr, "%s\n", sx_errmsg());
        printf("tiled decode (%d px tiles) %lldx%lld: %.1fs, peak RSS %.0f MB\n", ts,
               (long long)(h * f), (long long)(w * f), sx_time() - t0, (double)sx_peak_rss() / mb);
    }
    if (strcmp(mode, "tiled")) {
        t0 = sx_time();
        if (sx_vae_decode(v, lat, v->cfg.latent_channels, h, w, 0, img) != 0)
            fprintf(stderr, "%s\n", sx_errmsg());
        printf("untiled decode %lldx%lld: %.1fs, peak RSS %.0f MB\n", (long long)(h * f),
               (long long)(w * f), sx_time() - t0, (double)sx_peak_rss() / mb);
    }
    free(lat);
    free(img);
    sx_vae_free(v);
    return 0;
}
