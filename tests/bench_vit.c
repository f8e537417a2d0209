/* tests/bench_vit.c - speed of the ViT-bigG encoder at real shapes, with
 * sxrand weights held in memory (no model file needed):
 *   block: one transformer block, width 1664, 16 heads, MLP 8192, 1024 tokens
 *          (a 448 tile);
 *   pool:  attn_pool + ln_post + proj, 1024 x 1664 -> 256 x 4096 (32 heads).
 * A 448 tile = conv1 (negligible, 1.0 GFLOP) + 48 blocks + pool; the tile time
 * printed is 48 x block + pool (extrapolated from one measured block).
 * Per SIMD path and thread count. The scalar path is too slow to run a full
 * block here: it is timed on a 256-token block (a 224 tile) and its GFLOP/s
 * are used for the estimate (marked '*'). Wall seconds and process CPU
 * seconds are both printed: on a shared machine, CPU seconds / threads
 * ("tile cpu/thr") approximates the unloaded wall time.
 *   bench_vit [bf16]   (bf16: the weights stored as BF16, as a converted
 *                       --dtype bf16 file would hold them)
 * PyTorch on the same machine: scripts/bench_vit_torch.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "seedx.h"
#include "vit.h"

/* process CPU seconds (all threads): on a shared machine wall time mixes in
 * other jobs; CPU time / threads approximates an unloaded wall time */
static double cpu_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define W 1664
#define H 16
#define MLP 8192
#define E 4096
#define PH 32
#define Q 256

static uint16_t *to_bf16(const float *x, int64_t n) {
    uint16_t *b = malloc(sizeof(uint16_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) b[i] = sx_f32_to_bf16(x[i]);
    return b;
}

static float *urand(int64_t n, uint64_t seed, float a) {
    float *p = malloc(sizeof(float) * (size_t)n);
    if (p) sx_rand_uniform(p, n, seed, -a, a);
    return p;
}

static sx_weight wrap(const float *f, int64_t N, int64_t K, int bf16, void **keep) {
    sx_weight w = sx_weight_f32(f, N, K);
    if (bf16) {
        *keep = to_bf16(f, N * K);
        w.type = SX_BF16;
        w.data = *keep;
    }
    return w;
}

static double block_flops(int64_t T) {
    return 2.0 * T * ((double)W * 3 * W + (double)W * W + 2.0 * W * MLP) + 4.0 * T * T * W;
}
static double pool_flops(int64_t T) {
    return 2.0 * T * ((double)W * E + 2.0 * E * E) + 4.0 * Q * T * E + 2.0 * Q * (double)E * E * 2;
}

int main(int argc, char **argv) {
    int bf16 = argc > 1 && !strcmp(argv[1], "bf16");
    if (sx_init(0)) {
        fprintf(stderr, "%s\n", sx_errmsg());
        return 1;
    }
    int max_threads = sx_threads_count();
    void *keep[8] = {0};
    /* block weights */
    float *ln = urand(4 * W, 1, 0.1f), *in = urand(3 * W * W, 2, 0.04f), *inb = urand(3 * W, 3, 0.1f);
    float *op = urand(W * W, 4, 0.04f), *fc = urand((int64_t)MLP * W, 5, 0.04f), *fcb = urand(MLP, 6, 0.1f);
    float *pr = urand((int64_t)W * MLP, 7, 0.01f);
    for (int i = 0; i < 2 * W; i += 2) ln[i] += 1.0f;
    sx_vit_block b = {.ln_1 = {.w = ln, .b = ln + W, .dim = W, .eps = 1e-6f},
                      .ln_2 = {.w = ln + 2 * W, .b = ln + 3 * W, .dim = W, .eps = 1e-6f},
                      .in_proj = {wrap(in, 3 * W, W, bf16, &keep[0]), inb},
                      .out_proj = {wrap(op, W, W, bf16, &keep[1]), inb},
                      .c_fc = {wrap(fc, MLP, W, bf16, &keep[2]), fcb},
                      .c_proj = {wrap(pr, W, MLP, bf16, &keep[3]), inb}};
    /* pool weights */
    float *qry = urand((int64_t)Q * E, 11, 1.0f), *pe = malloc(sizeof(float) * Q * E);
    float *kv = urand((int64_t)E * W, 12, 0.04f), *pin = urand(3LL * E * E, 13, 0.027f);
    float *pinb = urand(3 * E, 14, 0.1f), *pout = urand((int64_t)E * E, 15, 0.027f);
    float *pln = urand(4 * E, 16, 0.1f), *proj = urand((int64_t)E * E, 17, 0.015f);
    sx_sincos_2d(pe, E, 16);
    sx_resampler r;
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "attn_pool");
    r.n_queries = Q;
    r.grid = 16;
    r.embed_dim = E;
    r.kv_dim = W;
    r.attn.heads = PH;
    r.query = qry;
    r.pos_embed = pe;
    r.kv_proj = (sx_linear){wrap(kv, E, W, bf16, &keep[4]), NULL};
    sx_weight inw = wrap(pin, 3 * E, E, bf16, &keep[5]);
    r.attn.q = (sx_linear){sx_weight_rows(&inw, 0, E), pinb};
    r.attn.k = (sx_linear){sx_weight_rows(&inw, E, E), pinb + E};
    r.attn.v = (sx_linear){sx_weight_rows(&inw, 2 * E, E), pinb + 2 * E};
    r.attn.o = (sx_linear){wrap(pout, E, E, bf16, &keep[6]), pinb};
    r.ln_q = r.ln_kv = (sx_norm){.w = pln, .b = pln + E, .dim = E, .eps = 1e-6f};
    sx_weight pw = wrap(proj, E, E, bf16, &keep[7]);
    pw.trans = 1;
    if (sx_resampler_init(&r) || sx_resampler_prepare(&r, 1024)) {
        fprintf(stderr, "%s\n", sx_errmsg());
        return 1;
    }
    int64_t T = 1024;
    float *x = urand(T * W, 21, 2.0f), *x0 = malloc(sizeof(float) * T * W);
    sx_arena ws = {0};
    float *pooled = malloc(sizeof(float) * Q * E), *out = malloc(sizeof(float) * Q * E);
    memcpy(x0, x, sizeof(float) * T * W);

    printf("vit bench: block = 1664 wide, 16 heads, MLP 8192, 1024 tokens (%.1f GFLOP); "
           "pool+ln_post+proj (%.1f GFLOP); weights %s\n",
           block_flops(T) / 1e9, pool_flops(T) / 1e9, bf16 ? "BF16" : "F32");
    printf("%-8s %7s %9s %9s %9s %9s %11s %13s\n", "simd", "threads", "block s", "cpu s", "pool s",
           "cpu s", "448 tile s", "tile cpu/thr");
    for (int lvl = 0; lvl <= SX_SIMD_NEON; lvl++) {
        if (!sx_simd_supported(lvl)) continue;
        for (int nt = 1; nt <= max_threads && nt <= 2; nt++) {
            if (lvl == SX_SIMD_SCALAR && nt < (max_threads < 2 ? max_threads : 2)) continue;
            sx_threads_init(nt);
            sx_simd_set(lvl);
            int64_t tt = lvl == SX_SIMD_SCALAR ? 256 : T;
            memcpy(x, x0, sizeof(float) * T * W);
            double t0 = sx_time(), c0 = cpu_time();
            if (sx_vit_block_forward(&b, H, x, 1, tt, -1, &ws)) {
                fprintf(stderr, "%s\n", sx_errmsg());
                return 1;
            }
            double tb = sx_time() - t0, gf = block_flops(tt) / tb / 1e9, cb = cpu_time() - c0;
            double tp, cp;
            if (lvl == SX_SIMD_SCALAR) { /* estimated at the 256-token block's rate */
                double cf = block_flops(tt) / cb;
                tp = pool_flops(T) / (gf * 1e9);
                tb = block_flops(T) / (gf * 1e9);
                cp = pool_flops(T) / cf;
                cb = block_flops(T) / cf;
            } else {
                t0 = sx_time();
                c0 = cpu_time();
                if (sx_resampler_forward(&r, x, 1, T, pooled)) {
                    fprintf(stderr, "%s\n", sx_errmsg());
                    return 1;
                }
                sx_layernorm(pooled, pooled, pln, pln + E, Q, E, 1e-6f);
                sx_matmul(out, pooled, &pw, NULL, Q);
                tp = sx_time() - t0;
                cp = cpu_time() - c0;
            }
            double tile = 48 * tb + tp;
            printf("%-8s %7d %9.3f %9.3f %9.3f %9.3f %11.1f %13.1f%s\n", sx_simd_name(lvl), nt, tb, cb, tp,
                   cp, tile, (48 * cb + cp) / nt,
                   lvl == SX_SIMD_SCALAR ? "  * (256-token block measured, rest estimated)" : "");
            fflush(stdout);
        }
    }
    sx_simd_init();
    sx_threads_init(max_threads);
    sx_resampler_free(&r);
    sx_arena_free(&ws);
    float *bufs[] = {ln, in, inb, op, fc, fcb, pr, qry, pe, kv, pin, pinb, pout, pln, proj, x, x0, pooled, out};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    for (int i = 0; i < 8; i++) free(keep[i]);
    return 0;
}
