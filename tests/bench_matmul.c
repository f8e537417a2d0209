/* tests/bench_matmul.c - GFLOP/s of sx_matmul at SEED-X's real shapes, per
 * SIMD path, weight type and thread count, next to this machine's measured
 * F32 FMA peak (an FMA-only loop timed in the same run), so the figure can be
 * read as flop/cycle even while the clock drifts:
 *   flop/cycle = 64 * GFLOP/s / measured AVX-512 peak (64 = 2 FMA ports x 16
 *   lanes x 2 flop per core).
 * Usage: build/tests/bench_matmul [--quick] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* sx_attention at the model shapes: GFLOP/s counts the two GEMMs (4 T^2 H D). */
static void bench_attention(void) {
    struct { const char *what; int64_t T; int H, D; } as[] = {
        {"sdxl 64x64 self-attn", 4096, 10, 64}, {"vit-G block", 1024, 16, 104},
        {"vae mid (64x64 latent)", 4096, 1, 512}, {"llm prefill 600", 600, 40, 128}};
    printf("\nattention (sx_attention, F32)\n%-24s %5s %3s %4s %3s %9s\n", "shape", "T", "H", "D",
           "thr", "GFLOP/s");
    for (size_t i = 0; i < sizeof as / sizeof as[0]; i++) {
        int64_t T = as[i].T, n = T * as[i].H * as[i].D;
        float *q = malloc(4 * n), *k = malloc(4 * n), *v = malloc(4 * n), *o = malloc(4 * n);
        sx_rand_uniform(q, n, 1, -1, 1);
        sx_rand_uniform(k, n, 2, -1, 1);
        sx_rand_uniform(v, n, 3, -1, 1);
        int hd = as[i].D, H = as[i].H;
        sx_attn a = {H, H, hd, (int64_t)H * hd, hd, (int64_t)H * hd, hd, (int64_t)H * hd, hd,
                     (int64_t)H * hd, hd, 1.0f / sqrtf((float)hd), 0, 0};
        for (int t = 1; t <= sx_threads_count() || t == 1; t *= 2) {
            int nt = sx_threads_count();
            sx_threads_init(t);
            double best = 1e30;
            for (int r = 0; r < 3; r++) {
                double t0 = sx_time();
                sx_attention(&a, o, q, k, v, T, T);
                double dt = sx_time() - t0;
                if (dt < best) best = dt;
            }
            printf("%-24s %5lld %3d %4d %3d %9.1f\n", as[i].what, (long long)T, H, hd, t,
                   4.0 * T * T * H * hd / best / 1e9);
            sx_threads_init(nt);
            if (t >= nt) break;
        }
        free(q), free(k), free(v), free(o);
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--attention")) {
        if (sx_init(0) != 0) return 1;
        bench_attention();
        return 0;
    }
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (sx_init(0) != 0) return 1;
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
    bench_attention();
    return 0;
}
