/* tests/bench_matmul.c - GFLOP/s of sx_matmul at SEED-X's real shapes, per
 * SIMD path, weight type and thread count, next to this machine's measured
 * F32 FMA peak (an FMA-only loop timed in the same run), so the figure can be
 * read as flop/cycle even while the clock drifts:
 *   flop/cycle = 64 * GFLOP/s / measured AVX-512 peak (64 = 2 FMA ports x 16
 *   lanes x 2 flop per core).
 * Then attention (vs the GEMM and torch SDPA) and every UNet/VAE/ViT conv
 * (vs torch conv2d), with PyTorch run beside us by scripts/bench_kernels_torch.py.
 * Usage: build/tests/bench_matmul [--quick] [--attention] [--conv] [--fused]
 *   (--attention / --conv / --fused (the resnet's norm -> SiLU -> conv): only
 *   those rows; --quick: fewer shapes) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "seedx.h"

#if defined(__x86_64__)
/* 2 FMA pipes x 4-cycle latency: 12 independent accumulators keep both busy. */
__attribute__((target("avx512f"))) static double fma_peak_1thread(void) {
    __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2),
           a3 = _mm512_set1_ps(3), a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5),
           a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7), a8 = _mm512_set1_ps(8),
           a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
    const long iters = 20000000;
    double t0 = sx_time();
    for (long it = 0; it < iters; it++) {
#define F(r) r = _mm512_fmadd_ps(r, m, c);
        F(a0) F(a1) F(a2) F(a3) F(a4) F(a5) F(a6) F(a7) F(a8) F(a9) F(a10) F(a11)
#undef F
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5));
    }
    double dt = sx_time() - t0;
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    if (_mm512_reduce_add_ps(s) == 12345.0f) printf(" ");
    return (double)iters * 12 * 16 * 2 / dt / 1e9;
}
#endif

typedef struct { const char *what; int64_t M, N, K; } shape;

#if defined(__x86_64__)
static void peak_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)b, (void)e;
    ((double *)ctx)[tid] = fma_peak_1thread();
}
#endif

/* FMA peak of t threads measured now (the clock and the other tenants of
 * this machine change it from minute to minute). */
static double peak_now(int t) {
    double r[256] = {0}, s = 0;
#if defined(__x86_64__)
    if (!sx_simd_supported(SX_SIMD_AVX512)) return 0;
    sx_threads_init(t);
    sx_parallel_for(t, 1, peak_task, r);
    for (int i = 0; i < t; i++) s += r[i];
#else
    (void)t;
#endif
    return s;
}

static double run(const shape *s, int type, int reps) {
    float *x = malloc(sizeof(float) * s->M * s->K), *y = malloc(sizeof(float) * s->M * s->N);
    float *wf = malloc(sizeof(float) * s->N * s->K);
    uint16_t *wh = malloc(2 * (size_t)s->N * s->K);
    sx_rand_uniform(x, s->M * s->K, 1, -1, 1);
    sx_rand_uniform(wf, s->N * s->K, 2, -1, 1);
    sx_weight w = sx_weight_f32(wf, s->N, s->K);
    if (type != SX_F32) {
        for (int64_t i = 0; i < s->N * s->K; i++)
            wh[i] = type == SX_F16 ? sx_f32_to_f16(wf[i]) : sx_f32_to_bf16(wf[i]);
        w.type = type;
        w.data = wh;
    }
    sx_matmul(y, x, &w, NULL, s->M); /* warm-up */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = sx_time();
        sx_matmul(y, x, &w, NULL, s->M);
        double dt = sx_time() - t0;
        if (dt < best) best = dt;
    }
    free(x), free(y), free(wf), free(wh);
    return 2.0 * s->M * s->N * s->K / best / 1e9;
}

/* ---- the PyTorch side of the attention and conv rows ----
 * scripts/bench_kernels_torch.py as a coprocess: one request line out, the
 * best time in seconds back, so PyTorch runs right beside our kernel in the
 * same rounds. Absent (no .venv): the PyTorch columns stay empty. */
typedef struct {
    FILE *to, *from;
    pid_t pid;
} torch_proc;

static int torch_open(torch_proc *t) {
    memset(t, 0, sizeof *t);
    if (access(".venv/bin/python", X_OK) != 0) return -1;
    int in[2], out[2];
    if (pipe(in) || pipe(out)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execl(".venv/bin/python", ".venv/bin/python", "scripts/bench_kernels_torch.py", (char *)NULL);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    signal(SIGPIPE, SIG_IGN); /* a failed coprocess only empties the columns */
    t->to = fdopen(in[1], "w");
    t->from = fdopen(out[0], "r");
    t->pid = pid;
    return t->to && t->from ? 0 : -1;
}

/* Seconds of the request, or -1. */
static double torch_time(torch_proc *t, const char *req) {
    char line[512];
    if (!t->to) return -1;
    fprintf(t->to, "%s\n", req);
    fflush(t->to);
    if (!fgets(line, sizeof line, t->from)) { /* the coprocess is gone */
        fclose(t->to), fclose(t->from);
        t->to = t->from = NULL;
        return -1;
    }
    if (!strncmp(line, "error", 5)) {
        fprintf(stderr, "torch: %s", line);
        return -1;
    }
    return atof(line);
}

static void torch_close(torch_proc *t) {
    if (t->to) fclose(t->to);
    if (t->from) fclose(t->from);
    if (t->pid > 0) waitpid(t->pid, NULL, 0);
}

/* The clock of the attention and conv rows (and of the PyTorch side): with
 * 1 thread the CPU time of the thread, which leaves out the time other
 * processes took the core; with more, wall time. */
static double row_clock(int threads) {
    if (threads > 1) return sx_time();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* sx_attention at the model shapes, timed alternately (best of ATT_REPS
 * rounds) with the F32 GEMM of the same model's projections
 * ([T, H*D] x [H*D, H*D]^T), torch's F.scaled_dot_product_attention and the
 * FMA peak loop on the same threads, so the ratios hold while the clock and
 * the other tenants change. GFLOP/s counts the two products, 4 Tq Tk H D
 * (causal: the visible part only). */
#define ATT_REPS 3
static void bench_attention(torch_proc *tp) {
    struct { const char *what; int64_t Tq, Tk; int H, D, causal; } as[] = {
        {"sdxl 64x64 self-attn", 4096, 4096, 10, 64, 0}, {"sdxl 64x64 cross-attn", 4096, 77, 10, 64, 0},
        {"vit-G block", 1024, 1024, 16, 104, 0},       {"llm prefill 600", 600, 600, 40, 128, 0},
        {"llm prefill 600 causal", 600, 600, 40, 128, 1}, {"vae mid (64x64 latent)", 4096, 4096, 1, 512, 0}};
    int maxt = sx_threads_count();
    printf("\nattention (sx_attention, F32, %s) vs the F32 GEMM [T,HD]x[HD,HD] and torch SDPA, same rounds\n"
           "(1 thread: CPU time of the thread on every side; 2: wall time; peak now: wall time)\n",
           sx_simd_name(sx_simd_level()));
    printf("%-24s %5s %5s %3s %4s %3s %8s %8s %8s %8s %8s %8s\n", "shape", "Tq", "Tk", "H", "D", "thr",
           "GFLOP/s", "GEMM", "of GEMM", "torch", "peak now", "of peak");
    for (size_t i = 0; i < sizeof as / sizeof as[0]; i++) {
        int64_t Tq = as[i].Tq, Tk = as[i].Tk, HD = (int64_t)as[i].H * as[i].D;
        float *q = malloc(4 * Tq * HD), *k = malloc(4 * Tk * HD), *v = malloc(4 * Tk * HD);
        float *o = malloc(4 * Tq * HD), *w = malloc(4 * HD * HD);
        sx_rand_uniform(q, Tq * HD, 1, -1, 1);
        sx_rand_uniform(k, Tk * HD, 2, -1, 1);
        sx_rand_uniform(v, Tk * HD, 3, -1, 1);
        sx_rand_uniform(w, HD * HD, 4, -1, 1);
        sx_weight W = sx_weight_f32(w, HD, HD);
        int hd = as[i].D, H = as[i].H;
        sx_attn a = {H, H, hd, HD, hd, HD, hd, HD, hd, HD, hd, 1.0f / sqrtf((float)hd),
                     as[i].causal, Tk - Tq};
        /* visible (query, key) pairs */
        double pairs = 0;
        for (int64_t r = 0; r < Tq; r++) {
            int64_t n = as[i].causal ? r + Tk - Tq + 1 : Tk;
            pairs += (double)(n < 0 ? 0 : n > Tk ? Tk : n);
        }
        for (int t = 1; t <= maxt; t *= 2) {
            double ba = 1e30, bg = 1e30, bt = 1e30, pk = 0;
            char req[128];
            snprintf(req, sizeof req, "attn %lld %lld %d %d %d %d 1", (long long)Tq, (long long)Tk, H,
                     hd, as[i].causal, t);
            for (int r = 0; r < ATT_REPS; r++) {
                double p = peak_now(t);
                if (p > pk) pk = p;
                sx_threads_init(t);
                double t0 = row_clock(t);
                sx_matmul(o, q, &W, NULL, Tq);
                double t1 = row_clock(t);
                sx_attention(&a, o, q, k, v, Tq, Tk);
                double t2 = row_clock(t);
                if (t1 - t0 < bg) bg = t1 - t0;
                if (t2 - t1 < ba) ba = t2 - t1;
                double tt = torch_time(tp, req);
                if (tt > 0 && tt < bt) bt = tt;
            }
            double ga = 4.0 * pairs * HD / ba / 1e9, gg = 2.0 * Tq * HD * HD / bg / 1e9;
            char tcol[16] = "-";
            if (bt < 1e30) snprintf(tcol, sizeof tcol, "%.1f", 4.0 * pairs * HD / bt / 1e9);
            printf("%-24s %5lld %5lld %3d %4d %3d %8.1f %8.1f %7.0f%% %8s %8.1f %7.0f%%\n", as[i].what,
                   (long long)Tq, (long long)Tk, H, hd, t, ga, gg, 100 * ga / gg, tcol, pk,
                   pk > 0 ? 100 * ga / pk : 0);
            fflush(stdout);
        }
        sx_threads_init(maxt);
        free(q), free(k), free(v), free(o), free(w);
    }
}

/* sx_conv2d at every convolution shape of the SDXL UNet, the SDXL VAE
 * (decoder and encoder) at 1024x1024 and the ViT patchify, next to
 * torch.nn.functional.conv2d (F32) on the same shape, alternately (best of
 * CONV_ROUNDS rounds of 2 runs each). Maps whose conv costs more than
 * CONV_GFLOP are timed on a band of their rows (full width and channels;
 * "rows" says how many of H). */
#define CONV_ROUNDS 2
#define CONV_GFLOP 8.0
typedef struct {
    const char *what;
    int cin, cout, k, s, pt, pl, pb, pr, H, W;
} conv_shape;

static void bench_conv(torch_proc *tp, int quick) {
    static const conv_shape cs[] = {
        /* SDXL UNet, 128x128 latent */
        {"unet conv_in", 4, 320, 3, 1, 1, 1, 1, 1, 128, 128},
        {"unet conv_in (edit)", 8, 320, 3, 1, 1, 1, 1, 1, 128, 128},
        {"unet res 320", 320, 320, 3, 1, 1, 1, 1, 1, 128, 128},
        {"unet down 320", 320, 320, 3, 2, 1, 1, 1, 1, 128, 128},
        {"unet res 320->640", 320, 640, 3, 1, 1, 1, 1, 1, 64, 64},
        {"unet res 640", 640, 640, 3, 1, 1, 1, 1, 1, 64, 64},
        {"unet short 320->640", 320, 640, 1, 1, 0, 0, 0, 0, 64, 64},
        {"unet down 640", 640, 640, 3, 2, 1, 1, 1, 1, 64, 64},
        {"unet res 640->1280", 640, 1280, 3, 1, 1, 1, 1, 1, 32, 32},
        {"unet res 1280", 1280, 1280, 3, 1, 1, 1, 1, 1, 32, 32},
        {"unet short 640->1280", 640, 1280, 1, 1, 0, 0, 0, 0, 32, 32},
        {"unet up res 2560->1280", 2560, 1280, 3, 1, 1, 1, 1, 1, 32, 32},
        {"unet up short 2560->1280", 2560, 1280, 1, 1, 0, 0, 0, 0, 32, 32},
        {"unet up res 1920->1280", 1920, 1280, 3, 1, 1, 1, 1, 1, 32, 32},
        {"unet up short 1920->1280", 1920, 1280, 1, 1, 0, 0, 0, 0, 32, 32},
        {"unet upsample 1280", 1280, 1280, 3, 1, 1, 1, 1, 1, 64, 64},
        {"unet up res 1920->640", 1920, 640, 3, 1, 1, 1, 1, 1, 64, 64},
        {"unet up short 1920->640", 1920, 640, 1, 1, 0, 0, 0, 0, 64, 64},
        {"unet up res 1280->640", 1280, 640, 3, 1, 1, 1, 1, 1, 64, 64},
        {"unet up short 1280->640", 1280, 640, 1, 1, 0, 0, 0, 0, 64, 64},
        {"unet up res 960->640", 960, 640, 3, 1, 1, 1, 1, 1, 64, 64},
        {"unet up short 960->640", 960, 640, 1, 1, 0, 0, 0, 0, 64, 64},
        {"unet upsample 640", 640, 640, 3, 1, 1, 1, 1, 1, 128, 128},
        {"unet up res 960->320", 960, 320, 3, 1, 1, 1, 1, 1, 128, 128},
        {"unet up short 960->320", 960, 320, 1, 1, 0, 0, 0, 0, 128, 128},
        {"unet up res 640->320", 640, 320, 3, 1, 1, 1, 1, 1, 128, 128},
        {"unet up short 640->320", 640, 320, 1, 1, 0, 0, 0, 0, 128, 128},
        {"unet conv_out", 320, 4, 3, 1, 1, 1, 1, 1, 128, 128},
        /* SDXL VAE decoder, 128x128 latent -> 1024x1024 */
        {"vae post_quant_conv", 4, 4, 1, 1, 0, 0, 0, 0, 128, 128},
        {"vae dec conv_in", 4, 512, 3, 1, 1, 1, 1, 1, 128, 128},
        {"vae res 512 @128", 512, 512, 3, 1, 1, 1, 1, 1, 128, 128},
        {"vae res 512 @256", 512, 512, 3, 1, 1, 1, 1, 1, 256, 256},
        {"vae res 512 @512", 512, 512, 3, 1, 1, 1, 1, 1, 512, 512},
        {"vae res 512->256 @512", 512, 256, 3, 1, 1, 1, 1, 1, 512, 512},
        {"vae short 512->256 @512", 512, 256, 1, 1, 0, 0, 0, 0, 512, 512},
        {"vae res 256 @512", 256, 256, 3, 1, 1, 1, 1, 1, 512, 512},
        {"vae res 256 @1024", 256, 256, 3, 1, 1, 1, 1, 1, 1024, 1024},
        {"vae res 256->128 @1024", 256, 128, 3, 1, 1, 1, 1, 1, 1024, 1024},
        {"vae short 256->128 @1024", 256, 128, 1, 1, 0, 0, 0, 0, 1024, 1024},
        {"vae res 128 @1024", 128, 128, 3, 1, 1, 1, 1, 1, 1024, 1024},
        {"vae dec conv_out", 128, 3, 3, 1, 1, 1, 1, 1, 1024, 1024},
        /* SDXL VAE encoder (editing), 1024x1024 -> 128x128 */
        {"vae enc conv_in", 3, 128, 3, 1, 1, 1, 1, 1, 1024, 1024},
        {"vae down 128 @1024", 128, 128, 3, 2, 0, 0, 1, 1, 1024, 1024},
        {"vae res 128->256 @512", 128, 256, 3, 1, 1, 1, 1, 1, 512, 512},
        {"vae short 128->256 @512", 128, 256, 1, 1, 0, 0, 0, 0, 512, 512},
        {"vae down 256 @512", 256, 256, 3, 2, 0, 0, 1, 1, 512, 512},
        {"vae res 256->512 @256", 256, 512, 3, 1, 1, 1, 1, 1, 256, 256},
        {"vae short 256->512 @256", 256, 512, 1, 1, 0, 0, 0, 0, 256, 256},
        {"vae down 512 @256", 512, 512, 3, 2, 0, 0, 1, 1, 256, 256},
        {"vae enc conv_out", 512, 8, 3, 1, 1, 1, 1, 1, 128, 128},
        {"vae quant_conv", 8, 8, 1, 1, 0, 0, 0, 0, 128, 128},
        /* Qwen-VL ViT-bigG patchify, one 448x448 tile */
        {"vit patchify", 3, 1664, 14, 14, 0, 0, 0, 0, 448, 448}};
    static const char *quick_set[] = {"unet res 320", "unet res 640", "unet res 1280", "unet down 320",
                                      "unet short 640->1280", "unet conv_out", "vae res 128 @1024",
                                      "vae dec conv_out", "vit patchify", NULL};
    int maxt = sx_threads_count();
    printf("\nconv (sx_conv2d, F32 weights, %s) vs torch.nn.functional.conv2d (F32), same rounds\n"
           "(1 thread: CPU time of the thread on both sides; 2: wall time; peak now: wall time)\n",
           sx_simd_name(sx_simd_level()));
    printf("%-25s %-15s %9s %3s %8s %8s %8s %8s %8s\n", "conv", "cin->cout kxk/s", "HxW(rows)", "thr",
           "GFLOP/s", "torch", "vs torch", "peak now", "of peak");
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        const conv_shape *c = &cs[i];
        if (quick) {
            int in = 0;
            for (int j = 0; quick_set[j]; j++) in |= !strcmp(quick_set[j], c->what);
            if (!in) continue;
        }
        /* rows timed: halve while the conv costs more than CONV_GFLOP */
        int64_t H = c->H, ho, wo = (c->W + c->pl + c->pr - c->k) / c->s + 1;
        double fl;
        for (;;) {
            ho = (H + c->pt + c->pb - c->k) / c->s + 1;
            fl = 2.0 * c->cout * c->cin * c->k * c->k * ho * wo;
            if (fl <= CONV_GFLOP * 1e9 || H <= 16) break;
            H /= 2;
        }
        int64_t K = (int64_t)c->cin * c->k * c->k;
        float *x = malloc(sizeof(float) * (size_t)(c->cin * H * c->W)), *w = malloc(sizeof(float) * (size_t)(c->cout * K));
        float *b = malloc(sizeof(float) * (size_t)c->cout), *y = malloc(sizeof(float) * (size_t)(c->cout * ho * wo));
        sx_rand_uniform(x, c->cin * H * c->W, 1, -1, 1);
        sx_rand_uniform(w, c->cout * K, 2, -0.05f, 0.05f);
        sx_rand_uniform(b, c->cout, 3, -1, 1);
        sx_weight W = sx_weight_f32(w, c->cout, K);
        sx_conv cv = {c->cin, c->cout, c->k, c->k, c->s, c->pt, c->pl, c->pb, c->pr};
        char shp[32], hw[24];
        snprintf(shp, sizeof shp, "%d->%d %dx%d/%d", c->cin, c->cout, c->k, c->k, c->s);
        snprintf(hw, sizeof hw, H < c->H ? "%dx%d(%lld)" : "%dx%d", c->H, c->W, (long long)H);
        for (int t = 1; t <= maxt; t *= 2) {
            double pk = peak_now(t), bo = 1e30, bt = 1e30;
            char req[160];
            snprintf(req, sizeof req, "conv %d %d %d %d %d %d %d %d %lld %d %d 2", c->cin, c->cout, c->k,
                     c->s, c->pt, c->pl, c->pb, c->pr, (long long)H, c->W, t);
            sx_threads_init(t);
            sx_conv2d(y, x, H, c->W, &cv, &W, b, NULL, NULL); /* warm-up */
            for (int r = 0; r < CONV_ROUNDS; r++) {
                for (int j = 0; j < 2; j++) {
                    double t0 = row_clock(t);
                    sx_conv2d(y, x, H, c->W, &cv, &W, b, NULL, NULL);
                    double dt = row_clock(t) - t0;
                    if (dt < bo) bo = dt;
                }
                double tt = torch_time(tp, req);
                if (tt > 0 && tt < bt) bt = tt;
            }
            double g = fl / bo / 1e9;
            char tcol[16] = "-", rcol[16] = "-";
            if (bt < 1e30) {
                snprintf(tcol, sizeof tcol, "%.1f", fl / bt / 1e9);
                snprintf(rcol, sizeof rcol, "%.2fx", bt / bo);
            }
            printf("%-25s %-15s %9s %3d %8.1f %8s %8s %8.1f %7.0f%%\n", c->what, shp, hw, t, g, tcol, rcol,
                   pk, pk > 0 ? 100 * g / pk : 0);
            fflush(stdout);
        }
        sx_threads_init(maxt);
        free(x), free(w), free(b), free(y);
    }
}

/* The resnets' GroupNorm(32) -> SiLU -> 3x3 conv -> + residual: the separate
 * kernel-layer ops (sx_groupnorm, sx_silu, sx_conv2d, sx_add), the fused
 * sx_conv2d_fused and PyTorch's four ops, alternately (rows cropped as in
 * bench_conv). */
static void bench_gnconv(torch_proc *tp) {
    static const struct { const char *what; int c, H, W; } gs[] = {
        {"unet res 320 @128", 320, 128, 128}, {"unet res 640 @64", 640, 64, 64},
        {"unet res 1280 @32", 1280, 32, 32},  {"vae res 512 @256", 512, 256, 256},
        {"vae res 128 @1024", 128, 1024, 1024}};
    int maxt = sx_threads_count();
    printf("\nresnet GroupNorm(32) -> SiLU -> conv3x3 -> + x: separate ops vs sx_conv2d_fused vs torch (%s)\n"
           "(1 thread: CPU time of the thread on both sides; 2: wall time)\n",
           sx_simd_name(sx_simd_level()));
    printf("%-20s %14s %3s %10s %10s %10s %8s %8s\n", "block", "HxW(rows)", "thr", "separate", "fused",
           "torch", "fused/sep", "vs torch");
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        int C = gs[i].c;
        int64_t H = gs[i].H, W = gs[i].W;
        while (2.0 * C * C * 9 * H * W > CONV_GFLOP * 1e9 && H > 16) H /= 2;
        int64_t n = C * H * W, K = (int64_t)C * 9;
        float *x = malloc(sizeof(float) * n), *h = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
        float *r = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * C * K), *b = malloc(sizeof(float) * C);
        float *gw = malloc(sizeof(float) * C), *gb = malloc(sizeof(float) * C);
        sx_rand_uniform(x, n, 1, -1, 1), sx_rand_uniform(r, n, 2, -1, 1);
        sx_rand_uniform(w, C * K, 3, -0.05f, 0.05f), sx_rand_uniform(b, C, 4, -1, 1);
        sx_rand_uniform(gw, C, 5, 0.5f, 1.5f), sx_rand_uniform(gb, C, 6, -0.5f, 0.5f);
        sx_weight W3 = sx_weight_f32(w, C, K);
        sx_conv cv = {C, C, 3, 3, 1, 1, 1, 1, 1};
        sx_conv_fuse f = {32, 1e-5f, gw, gb, 1, 1};
        char hw[32];
        snprintf(hw, sizeof hw, H < gs[i].H ? "%dx%d(%lld)" : "%dx%d", gs[i].H, gs[i].W, (long long)H);
        for (int t = 1; t <= maxt; t *= 2) {
            double bs = 1e30, bf = 1e30, bt = 1e30;
            char req[128];
            snprintf(req, sizeof req, "gnconv %d %d 32 %lld %lld %d 2", C, C, (long long)H, (long long)W, t);
            sx_threads_init(t);
            for (int rd = 0; rd < CONV_ROUNDS; rd++) {
                for (int j = 0; j < 2; j++) {
                    double t0 = row_clock(t);
                    sx_groupnorm(h, x, gw, gb, C, H * W, 32, 1e-5f);
                    sx_silu(h, h, n);
                    sx_conv2d(y, h, H, W, &cv, &W3, b, NULL, NULL);
                    sx_add(y, r, y, n);
                    double t1 = row_clock(t);
                    memcpy(y, r, sizeof(float) * n);
                    double t2 = row_clock(t);
                    sx_conv2d_fused(y, x, H, W, &cv, &W3, b, &f, NULL, NULL);
                    double t3 = row_clock(t);
                    if (t1 - t0 < bs) bs = t1 - t0;
                    if (t3 - t2 < bf) bf = t3 - t2;
                }
                double tt = torch_time(tp, req);
                if (tt > 0 && tt < bt) bt = tt;
            }
            char tcol[16] = "-", rcol[16] = "-";
            if (bt < 1e30) {
                snprintf(tcol, sizeof tcol, "%.1f ms", 1e3 * bt);
                snprintf(rcol, sizeof rcol, "%.2fx", bt / bf);
            }
            printf("%-20s %14s %3d %7.1f ms %7.1f ms %10s %7.2fx %8s\n", gs[i].what, hw, t, 1e3 * bs,
                   1e3 * bf, tcol, bs / bf, rcol);
            fflush(stdout);
        }
        sx_threads_init(maxt);
        free(x), free(h), free(y), free(r), free(w), free(b), free(gw), free(gb);
    }
}

int main(int argc, char **argv) {
    int quick = 0, attention = 0, conv = 0, fused = 0;
    for (int i = 1; i < argc; i++) {
        quick |= !strcmp(argv[i], "--quick");
        attention |= !strcmp(argv[i], "--attention");
        conv |= !strcmp(argv[i], "--conv");
        fused |= !strcmp(argv[i], "--fused");
    }
    torch_proc tp;
    if (attention || conv || fused) { /* only these rows */
        if (sx_threads_init(0) != 0) return 1;
        if (torch_open(&tp)) printf("(no .venv: PyTorch columns left empty)\n");
        if (attention) bench_attention(&tp);
        if (conv) bench_conv(&tp, quick);
        if (conv || fused) bench_gnconv(&tp);
        torch_close(&tp);
        return 0;
    }
    if (sx_threads_init(0) != 0) return 1;
    int maxt = sx_threads_count();
    double peak = 0;
#if defined(__x86_64__)
    if (sx_simd_supported(SX_SIMD_AVX512)) peak = fma_peak_1thread();
#endif
    printf("matmul Y[M,N] = X[M,K] W[N,K]^T; measured 1-thread AVX-512 FMA peak: %.1f GFLOP/s\n", peak);
    printf("%-26s %-6s %-5s %3s %9s %9s %8s %9s\n", "shape (MxNxK)", "simd", "W", "thr", "GFLOP/s",
           "peak now", "of peak", "flop/cyc");
    printf("(peak now = an AVX-512 FMA-only loop on the same threads just before the row;\n"
           " flop/cyc = 64 x GFLOP/s / peak now: flop per cycle per core at the current clock)\n");
    shape shapes[] = {{"vit qkv/out", 1024, 1664, 1664}, {"vit mlp", 1024, 8192, 1664},
                      {"sdxl 64x64 attn", 4096, 640, 640}, {"llm decode", 1, 5120, 5120},
                      {"llm decode ffn", 1, 13824, 5120}};
    int types[3] = {SX_F32, SX_F16, SX_BF16};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        for (int lvl = SX_SIMD_SCALAR; lvl <= SX_SIMD_AVX512; lvl++) {
            if (!sx_simd_supported(lvl)) continue;
            if (lvl == SX_SIMD_SCALAR && (quick || s->M > 1)) continue; /* scalar GEMM: minutes */
            sx_simd_set(lvl);
            for (int ti = 0; ti < 3; ti++) {
                if (quick && ti > 0 && s->M > 1) continue;
                for (int t = 1; t <= maxt; t *= 2) {
                    double pk = peak_now(t);
                    sx_threads_init(t);
                    double g = run(s, types[ti], s->M == 1 ? 20 : 3);
                    char nm[64];
                    snprintf(nm, sizeof nm, "%s %lldx%lldx%lld", s->what, (long long)s->M,
                             (long long)s->N, (long long)s->K);
                    printf("%-26s %-6s %-5s %3d %9.1f %9.1f %7.0f%% %9.1f\n", nm, sx_simd_name(lvl),
                           sx_type_name(types[ti]), t, g, pk, pk > 0 ? 100 * g / pk : 0,
                           pk > 0 ? 64.0 * g / pk : 0);
                    if (s->M == 1) {
                        double bytes = (double)s->N * s->K * (types[ti] == SX_F32 ? 4 : 2);
                        printf("%-26s %-6s %-5s %3d   weight stream %.1f GB/s\n", "", "", "", t,
                               g / (2.0 * s->N * s->K) * bytes);
                    }
                    fflush(stdout);
                }
            }
        }
    }
    sx_threads_init(maxt);
    if (torch_open(&tp)) printf("(no .venv: PyTorch columns left empty)\n");
    bench_attention(&tp);
    bench_conv(&tp, quick);
    bench_gnconv(&tp);
    torch_close(&tp);
    return 0;
}
