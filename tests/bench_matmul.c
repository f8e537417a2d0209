/* tests/bench_matmul.c - the matrix products at SEED-X's real shapes, next to
 * this machine's limits measured in the same run:
 *   peaks:  a dependent add chain (the clock), FMA-only loops (ymm, zmm),
 *           a vdpbf16ps-only loop (AVX512_BF16) and a tile-resident
 *           TDPBF16PS loop (AMX), per thread;
 *   F32:    sx_matmul per SIMD path (avx2, avx512), 1 and 2 threads, and
 *           OpenBLAS's sgemm on the same data (libopenblas.so.0 opened at run
 *           time with OPENBLAS_CORETYPE=SkylakeX unless set: its default picks
 *           SSE3 kernels on recent CPUs; the library never links it);
 *   BF16:   sx_matmul with the BF16 compute type (weights packed once, as at
 *           load), against the matrix unit's peak (AMX or vdpbf16ps);
 *   blocks: a ViT-bigG block and an SDXL 1280-channel transformer block,
 *           F32 vs BF16.
 * The host is shared: other processes take CPU time from ours. Rates are
 * therefore given per CPU-second (flop / process CPU time: what a core does
 * while it runs us) next to wall-clock GFLOP/s; "% peak" compares per-CPU-
 * second rates of the kernel and the peak loop; flop/cycle divides by the
 * clock measured the same way. Each figure is the best of a few runs.
 *   memory: the resident set of a GGUF file's matrices when mapped, then
 *           packed at load (the mapped pages given back).
 *   decode: M = 1 against F16 weights: the GEMV on the stored rows, and the
 *           GEMM kernels streaming the weights packed at load (F32, BF16).
 * Usage: build/tests/bench_matmul [--quick] [--f32] [--bf16] [--decode] [--blocks] [--memory]
 *                                 [--attention]
 *        (no section flag: all sections) */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "ops_impl.h"
#include "seedx.h"

static double cpu_now(int thread) {
    struct timespec ts;
    clock_gettime(thread ? CLOCK_THREAD_CPUTIME_ID : CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- peak loops (one thread; rates per CPU-second of that thread) ---- */
#if defined(__x86_64__)
static double clock_ghz(void) {
    const long n = 200000000;
    uint64_t x = 0;
    double t0 = cpu_now(1);
    for (long i = 0; i < n; i += 8)
        __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                         "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
                         : "+r"(x));
    return (double)n / (cpu_now(1) - t0) / 1e9;
}

/* 2 FMA pipes x 4-cycle latency: 12 independent accumulators keep both busy */
#define FMA_LOOP(name, attr, V, SET, FMA, LANES)                                           \
    attr static double name(void) {                                                       \
        V m = SET(0.999999f), c = SET(1e-7f), a0 = SET(0), a1 = SET(1), a2 = SET(2),       \
          a3 = SET(3), a4 = SET(4), a5 = SET(5), a6 = SET(6), a7 = SET(7), a8 = SET(8),    \
          a9 = SET(9), a10 = SET(10), a11 = SET(11);                                       \
        const long iters = 20000000;                                                       \
        double t0 = cpu_now(1);                                                            \
        for (long it = 0; it < iters; it++) {                                              \
            a0 = FMA(a0, m, c), a1 = FMA(a1, m, c), a2 = FMA(a2, m, c), a3 = FMA(a3, m, c); \
            a4 = FMA(a4, m, c), a5 = FMA(a5, m, c), a6 = FMA(a6, m, c), a7 = FMA(a7, m, c); \
            a8 = FMA(a8, m, c), a9 = FMA(a9, m, c), a10 = FMA(a10, m, c);                  \
            a11 = FMA(a11, m, c);                                                          \
            __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), \
                             "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11)); \
        }                                                                                  \
        double dt = cpu_now(1) - t0;                                                       \
        volatile float sink;                                                               \
        V s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;                 \
        sink = s[0];                                                                       \
        (void)sink;                                                                        \
        return (double)iters * 12 * LANES * 2 / dt / 1e9;                                  \
    }
FMA_LOOP(fma_zmm, __attribute__((target("avx512f"))), __m512, _mm512_set1_ps, _mm512_fmadd_ps, 16)
FMA_LOOP(fma_ymm, __attribute__((target("avx2,fma"))), __m256, _mm256_set1_ps, _mm256_fmadd_ps, 8)

/* vdpbf16ps: 32 bf16 products (64 flop) per instruction, 12 chains */
#define DPB(a) a = _mm512_dpbf16_ps(a, m, m)
__attribute__((target("avx512f,avx512bf16"))) static double dpbf16_zmm(void) {
    __m512bh m = (__m512bh)_mm512_set1_epi16(0x3f80);
    __m512 a0 = _mm512_set1_ps(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
           a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const long iters = 10000000;
    double t0 = cpu_now(1);
    for (long it = 0; it < iters; it++) {
        DPB(a0);
        DPB(a1);
        DPB(a2);
        DPB(a3);
        DPB(a4);
        DPB(a5);
        DPB(a6);
        DPB(a7);
        DPB(a8);
        DPB(a9);
        DPB(a10);
        DPB(a11);
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6),
                         "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
    }
    double dt = cpu_now(1) - t0;
    volatile float sink = _mm512_reduce_add_ps(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    (void)sink;
    return (double)iters * 12 * 64 / dt / 1e9;
}

/* AMX: TDPBF16PS on resident tiles, 2x2 accumulators (16384 flop each) */
__attribute__((target("amx-tile,amx-bf16"))) static double amx_tdp(void) {
    static _Thread_local uint16_t src[4][512] __attribute__((aligned(64)));
    struct {
        uint8_t palette, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } __attribute__((packed, aligned(64))) cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
    for (int i = 0; i < 4 * 512; i++) src[i / 512][i % 512] = 0x3c00;
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, src[0], 64);
    _tile_loadd(5, src[1], 64);
    _tile_loadd(6, src[2], 64);
    _tile_loadd(7, src[3], 64);
    const long iters = 400000;
    double t0 = cpu_now(1);
    for (long i = 0; i < iters; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    double dt = cpu_now(1) - t0;
    _tile_stored(0, src[0], 64);
    _tile_release();
    return (double)iters * 4 * 16384 / dt / 1e9;
}
#endif

enum { PK_CLOCK, PK_YMM, PK_ZMM, PK_BF16, PK_AMX, PK_N };
static const char *pk_name[PK_N] = {"clock GHz (add chain)", "FMA ymm GFLOP/s", "FMA zmm GFLOP/s",
                                    "vdpbf16ps zmm GFLOP/s", "AMX TDPBF16PS GFLOP/s"};
static double pk[PK_N]; /* per CPU-second of one thread, best seen */

static double run_peak(int which) {
#if defined(__x86_64__)
    switch (which) {
    case PK_CLOCK: return clock_ghz();
    case PK_YMM: return sx_simd_supported(SX_SIMD_AVX2) ? fma_ymm() : 0;
    case PK_ZMM: return sx_simd_supported(SX_SIMD_AVX512) ? fma_zmm() : 0;
    case PK_BF16: return sx_simd_has_avx512bf16() ? dpbf16_zmm() : 0;
    case PK_AMX: return sx_simd_supported(SX_SIMD_AMX) ? amx_tdp() : 0;
    }
#endif
    (void)which;
    return 0;
}

typedef struct {
    int which;
    double r[256];
} peak_job;

static void peak_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    peak_job *J = ctx;
    for (int64_t i = b; i < e; i++) J->r[i] = run_peak(J->which);
}

/* Measures every peak on t threads at once (best per-thread rate kept). */
static void measure_peaks(int t) {
    sx_threads_init(t);
    for (int w = 0; w < PK_N; w++) {
        peak_job J = {w, {0}};
        sx_parallel_for(t, 1, peak_task, &J);
        for (int i = 0; i < t; i++)
            if (J.r[i] > pk[w]) pk[w] = J.r[i];
    }
}

/* ---- timing ---- */
typedef struct {
    double wall, cpu; /* seconds: wall clock, process CPU time */
} tm2;

typedef void (*work_fn)(void *);

static tm2 best_of(work_fn fn, void *ctx, int reps) {
    tm2 b = {1e30, 1e30};
    for (int r = 0; r < reps; r++) {
        double w0 = sx_time(), c0 = cpu_now(0);
        fn(ctx);
        double w = sx_time() - w0, c = cpu_now(0) - c0;
        if (w < b.wall) b.wall = w;
        if (c < b.cpu) b.cpu = c;
    }
    return b;
}

/* ---- OpenBLAS, opened at run time ---- */
typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *,
                         int, float, float *, int);
static sgemm_fn ob_sgemm;
static void (*ob_threads)(int);
static char *(*ob_core)(void);

static int openblas_open(void) {
    if (!getenv("OPENBLAS_CORETYPE")) setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) return 0;
    ob_sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
    ob_threads = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    ob_core = (char *(*)(void))dlsym(h, "openblas_get_corename");
    return ob_sgemm && ob_threads;
}

/* ---- GEMM rows ---- */
typedef struct {
    const char *what;
    int64_t M, N, K;
} shape;

typedef struct {
    float *y;
    const float *x;
    sx_weight *w;
    int64_t M;
    int compute;
    int blas;
} mm_job;

static void mm_run(void *ctx) {
    mm_job *J = ctx;
    if (J->blas) { /* row-major Y = X W^T: 101 RowMajor, 111 NoTrans, 112 Trans */
        ob_sgemm(101, 111, 112, (int)J->M, (int)J->w->N, (int)J->w->K, 1.0f, J->x, (int)J->w->K,
                 J->w->data, (int)J->w->K, 0.0f, J->y, (int)J->w->N);
        return;
    }
    sx_epilogue ep = {.compute = J->compute};
    if (sx_matmul_ep(J->y, J->w->N, J->x, J->w->K, J->w, &ep, J->M) != 0)
        fprintf(stderr, "matmul: %s\n", sx_errmsg());
}

static void row(const char *name, const char *path, int t, double flop, tm2 tm, double peak_core) {
    double gw = flop / tm.wall / 1e9, gc = flop / tm.cpu / 1e9; /* gc: per CPU-second */
    printf("%-30s %-11s %3d %9.1f %9.1f %7.0f%% %8.1f\n", name, path, t, gw, gc,
           peak_core > 0 ? 100 * gc / peak_core : 0, pk[PK_CLOCK] > 0 ? gc / pk[PK_CLOCK] : 0);
    fflush(stdout);
}

static void header(const char *title) {
    printf("\n%s\n%-30s %-11s %3s %9s %9s %8s %8s\n", title, "shape (MxNxK)", "path", "thr",
           "GFLOP/s", "per CPU-s", "% peak", "flop/cyc");
}

static int quick;

/* random X, W (as an F32 weight), room for Y, and the row's name */
static sx_weight shape_data(const shape *S, float **x, float **y, float **wf, char *nm, size_t nn) {
    *x = malloc(sizeof(float) * S->M * S->K), *y = malloc(sizeof(float) * S->M * S->N);
    *wf = malloc(sizeof(float) * S->N * S->K);
    sx_rand_uniform(*x, S->M * S->K, 1, -1, 1);
    sx_rand_uniform(*wf, S->N * S->K, 2, -1, 1);
    snprintf(nm, nn, "%s %lldx%lldx%lld", S->what, (long long)S->M, (long long)S->N, (long long)S->K);
    return sx_weight_f32(*wf, S->N, S->K);
}

static void bench_f32(const shape *sh, int nsh, int maxt) {
    header("F32 GEMM, weights packed once (peak: the FMA loop of the path's register width, per CPU-second)");
    int blas = openblas_open();
    if (blas) printf("(OpenBLAS core: %s)\n", ob_core ? ob_core() : "?");
    else printf("(OpenBLAS: libopenblas.so.0 not found, its rows skipped)\n");
    int levels[2] = {SX_SIMD_AVX2, SX_SIMD_AVX512};
    for (int s = 0; s < nsh; s++) {
        const shape *S = &sh[s];
        float *x, *y, *wf;
        char nm[64];
        sx_weight w = shape_data(S, &x, &y, &wf, nm, sizeof nm);
        double flop = 2.0 * S->M * S->N * S->K;
        int reps = quick ? 2 : 4;
        for (int t = 1; t <= maxt; t *= 2) {
            for (int li = 0; li < 2; li++) {
                sx_threads_init(t);
                if (sx_simd_set(levels[li]) != 0) continue;
                sx_weight wp = w; /* packed once, as at load (panels of this path) */
                sx_weight_pack(&wp);
                mm_job J = {y, x, &wp, S->M, SX_COMPUTE_F32, 0};
                mm_run(&J); /* warm-up */
                row(nm, sx_simd_name(levels[li]), t, flop, best_of(mm_run, &J, reps),
                    li ? pk[PK_ZMM] : pk[PK_YMM]);
                sx_weight_unpack(&wp);
            }
            if (blas) {
                sx_threads_init(1);
                ob_threads(t);
                mm_job J = {y, x, &w, S->M, 0, 1};
                mm_run(&J);
                row(nm, "openblas", t, flop, best_of(mm_run, &J, reps), pk[PK_ZMM]);
            }
        }
        sx_simd_init();
        free(x), free(y), free(wf);
    }
}

/* The BF16 rows on the current path's kernel (AMX where present; with
 * SEEDX_SIMD=avx512, or on CPUs without AMX, AVX512_BF16 or FMAs). */
static void bench_bf16_path(const shape *sh, int nsh, int maxt);

static void bench_bf16(const shape *sh, int nsh, int maxt) {
    int first = sx_simd_level();
    bench_bf16_path(sh, nsh, maxt);
    /* the AVX512_BF16 fallback next to AMX, in the same run */
    if (first == SX_SIMD_AMX && !getenv("SEEDX_SIMD") && sx_simd_set(SX_SIMD_AVX512) == 0) {
        bench_bf16_path(sh, nsh, maxt);
        sx_simd_set(first);
    }
}

static void bench_bf16_path(const shape *sh, int nsh, int maxt) {
    const sx_bf16_kernels *kk = sx_bf16_kernels_cur();
    int amx = !strcmp(kk->name, "amx"), dp = !strcmp(kk->name, "avx512bf16");
    double peak = amx ? pk[PK_AMX] : dp ? pk[PK_BF16] : pk[PK_ZMM];
    char title[200];
    snprintf(title, sizeof title,
             "BF16 GEMM, kernel %s (weights packed once; peak: the %s loop, per CPU-second)", kk->name,
             amx ? "tile-resident TDPBF16PS" : dp ? "vdpbf16ps" : "FMA zmm");
    header(title);
    for (int s = 0; s < nsh; s++) {
        const shape *S = &sh[s];
        float *x, *y, *wf;
        char nm[64];
        sx_weight w = shape_data(S, &x, &y, &wf, nm, sizeof nm);
        sx_set_compute(SX_COMPUTE_BF16);
        double t0 = sx_time(), c0 = cpu_now(0);
        sx_weight_pack(&w);
        double tpack = sx_time() - t0, cpack = cpu_now(0) - c0;
        sx_set_compute(SX_COMPUTE_F32);
        double flop = 2.0 * S->M * S->N * S->K;
        for (int t = 1; t <= maxt; t *= 2) {
            sx_threads_init(t);
            mm_job J = {y, x, &w, S->M, SX_COMPUTE_BF16, 0};
            mm_run(&J);
            row(nm, kk->name, t, flop, best_of(mm_run, &J, quick ? 2 : 3), peak);
        }
        printf("%-30s (packing the weight once: %.3f s, %.3f CPU s)\n", "", tpack, cpack);
        sx_weight_unpack(&w);
        free(x), free(y), free(wf);
    }
}

/* ---- decode: one row against the weights (memory bound) ---- */
static void bench_decode(int maxt) {
    printf("\ndecode, M = 1 (weights streamed from memory: GB/s of weight bytes)\n%-24s %-5s %-28s %3s %9s %9s\n",
           "shape (NxK)", "W", "kernel", "thr", "GB/s", "GFLOP/s");
    struct { const char *what; int64_t N, K; } sh[] = {{"llm qkvo 5120x5120", 5120, 5120},
                                                        {"llm ffn 13824x5120", 13824, 5120}};
    for (int s = 0; s < 2; s++) {
        int64_t N = sh[s].N, K = sh[s].K;
        float *x = malloc(sizeof(float) * K), *y = malloc(sizeof(float) * N), *wf = malloc(sizeof(float) * N * K);
        uint16_t *wh = malloc(2 * (size_t)(N * K));
        sx_rand_uniform(x, K, 1, -1, 1);
        sx_rand_uniform(wf, N * K, 2, -1, 1);
        for (int64_t i = 0; i < N * K; i++) wh[i] = sx_f32_to_f16(wf[i]);
        for (int v = 0; v < 3; v++) {
            sx_weight w = sx_weight_f32(wf, N, K);
            w.type = SX_F16;
            w.data = wh;
            const char *kn[3] = {"GEMV on the stored rows", "F32: F16 panels (at load)", "BF16: tiles (at load)"};
            int mode = v == 2 ? SX_COMPUTE_BF16 : SX_COMPUTE_F32;
            if (v) {
                sx_set_compute(mode);
                sx_weight_pack(&w);
                sx_set_compute(SX_COMPUTE_F32);
            }
            for (int t = 1; t <= maxt; t *= 2) {
                sx_threads_init(t);
                mm_job J = {y, x, &w, 1, mode, 0};
                mm_run(&J);
                tm2 b = best_of(mm_run, &J, quick ? 5 : 10);
                double bytes = (double)(v ? (v == 2 ? sx_packed_bytes(&w) : sx_panels_bytes(&w, sx_kernels_cur()->nr)) : 2.0 * N * K);
                printf("%-24s %-5s %-28s %3d %9.1f %9.1f\n", sh[s].what, "F16", kn[v], t, bytes / b.wall / 1e9,
                       2.0 * N * K / b.wall / 1e9);
                fflush(stdout);
            }
            if (v) sx_weight_unpack(&w);
        }
        free(x), free(y), free(wf), free(wh);
    }
}

/* ---- real-shape blocks, F32 vs BF16 ---- */
static float *urand(int64_t n, uint64_t seed, float a) {
    float *p = malloc(sizeof(float) * (size_t)n);
    sx_rand_uniform(p, n, seed, -a, a);
    return p;
}

typedef struct {
    int kind; /* 0 ViT block, 1 UNet transformer block */
    sx_vit_block *vb;
    sx_unet_tblock *ub;
    float *x, *x0, *ctx;
    sx_arena ws; /* scratch, kept from run to run */
    int64_t T, n;
} blk_job;

static void blk_run(void *p) {
    blk_job *J = p;
    memcpy(J->x, J->x0, sizeof(float) * (size_t)J->n);
    int rc = J->kind == 0 ? sx_vit_block_forward(J->vb, 16, J->x, 1, J->T, -1, &J->ws)
                          : sx_unet_tblock_forward(J->ub, J->x, J->T, J->ctx, 77, &J->ws);
    if (rc) fprintf(stderr, "block: %s\n", sx_errmsg());
}

static sx_weight wnew(int64_t N, int64_t K, uint64_t seed, float **keep) {
    *keep = urand(N * K, seed, 1.0f / sqrtf((float)K));
    return sx_weight_f32(*keep, N, K);
}

/* a linear layer [N, K] with a bias (bias_seed > 0) */
static sx_linear lnew(int64_t N, int64_t K, uint64_t seed, uint64_t bias_seed, float **keep) {
    sx_linear l = {wnew(N, K, seed, &keep[0]), NULL};
    if (bias_seed) l.b = keep[1] = urand(N, bias_seed, 0.1f);
    return l;
}

static sx_norm nnew(int64_t n, uint64_t seed, float **keep) {
    return (sx_norm){.w = keep[0] = urand(n, seed, 1), .b = keep[1] = urand(n, seed + 1, 0.1f),
                     .dim = n, .eps = 1e-5f};
}

static void bench_blocks(int maxt) {
    printf("\nblocks with random weights, F32 vs BF16 (BF16: every linear layer; attention, norms F32)\n"
           "%-40s %3s %10s %10s %10s %10s %8s\n", "block", "thr", "F32 wall", "F32 cpu", "BF16 wall",
           "BF16 cpu", "speedup");
    float *keep[64];
    int nk = 0;
    /* ViT-bigG block: width 1664, 16 heads, MLP 8192, 1024 tokens */
    const int64_t W = 1664, MLP = 8192, T = 1024;
    sx_vit_block vb;
    memset(&vb, 0, sizeof vb);
    vb.ln_1 = nnew(W, 3, &keep[nk]), nk += 2;
    vb.ln_2 = nnew(W, 5, &keep[nk]), nk += 2;
    vb.ln_1.eps = vb.ln_2.eps = 1e-6f;
    vb.in_proj = lnew(3 * W, W, 7, 8, &keep[nk]), nk += 2;
    vb.out_proj = lnew(W, W, 9, 10, &keep[nk]), nk += 2;
    vb.c_fc = lnew(MLP, W, 11, 12, &keep[nk]), nk += 2;
    vb.c_proj = lnew(W, MLP, 13, 14, &keep[nk]), nk += 2;
    /* SDXL transformer block at 1280 channels (32x32 latent tokens), 77 context tokens */
    const int64_t D = 1280, C = 2048, F = 5120, TU = 1024;
    sx_unet_tblock ub;
    memset(&ub, 0, sizeof ub);
    ub.norm1 = nnew(D, 15, &keep[nk]), nk += 2;
    ub.norm2 = nnew(D, 17, &keep[nk]), nk += 2;
    ub.norm3 = nnew(D, 19, &keep[nk]), nk += 2;
    ub.attn1.q = lnew(D, D, 21, 0, &keep[nk++]), ub.attn1.k = lnew(D, D, 22, 0, &keep[nk++]);
    ub.attn1.v = lnew(D, D, 23, 0, &keep[nk++]), ub.attn1.o = lnew(D, D, 24, 25, &keep[nk]), nk += 2;
    ub.attn2.q = lnew(D, D, 26, 0, &keep[nk++]), ub.attn2.k = lnew(D, C, 27, 0, &keep[nk++]);
    ub.attn2.v = lnew(D, C, 28, 0, &keep[nk++]), ub.attn2.o = lnew(D, D, 29, 30, &keep[nk]), nk += 2;
    sx_mha_init(&ub.attn1, 20), sx_mha_init(&ub.attn2, 20);
    ub.ff_proj = lnew(2 * F, D, 31, 32, &keep[nk]), nk += 2;
    ub.ff_out = lnew(D, F, 33, 34, &keep[nk]), nk += 2;
    int64_t nmax = T * MLP > TU * 2 * F ? T * MLP : TU * 2 * F;
    blk_job jobs[2] = {{0, &vb, NULL, malloc(sizeof(float) * T * W), urand(T * W, 40, 2), NULL,
                        {0}, T, T * W},
                       {1, NULL, &ub, malloc(sizeof(float) * TU * D), urand(TU * D, 41, 1),
                        urand(77 * C, 42, 1), {0}, TU, TU * D}};
    (void)nmax;
    const char *names[2] = {"ViT-bigG block 1024 tok, 1664/8192", "SDXL tblock 1280ch 1024 tok, ctx 77"};
    sx_weight *vw[] = {&vb.in_proj.w, &vb.out_proj.w, &vb.c_fc.w,  &vb.c_proj.w,  &ub.attn1.q.w,
                       &ub.attn1.k.w, &ub.attn1.v.w,  &ub.attn1.o.w, &ub.attn2.q.w, &ub.attn2.k.w,
                       &ub.attn2.v.w, &ub.attn2.o.w,  &ub.ff_proj.w, &ub.ff_out.w};
    int nw = (int)(sizeof vw / sizeof vw[0]);
    for (int b = 0; b < 2; b++)
        for (int t = 1; t <= maxt; t *= 2) {
            sx_threads_init(t);
            sx_set_compute(SX_COMPUTE_F32);
            blk_run(&jobs[b]);
            tm2 f = best_of(blk_run, &jobs[b], quick ? 1 : 2);
            sx_set_compute(SX_COMPUTE_BF16);
            for (int i = 0; i < nw; i++) sx_weight_pack(vw[i]);
            blk_run(&jobs[b]);
            tm2 h = best_of(blk_run, &jobs[b], quick ? 1 : 2);
            for (int i = 0; i < nw; i++) sx_weight_unpack(vw[i]);
            sx_set_compute(SX_COMPUTE_F32);
            printf("%-40s %3d %9.3fs %9.3fs %9.3fs %9.3fs %7.2fx\n", names[b], t, f.wall, f.cpu,
                   h.wall, h.cpu, f.cpu / h.cpu);
            fflush(stdout);
        }
    for (int i = 0; i < nk; i++) free(keep[i]);
    for (int b = 0; b < 2; b++)
        free(jobs[b].x), free(jobs[b].x0), free(jobs[b].ctx), sx_arena_free(&jobs[b].ws);
}

/* ---- memory: packing at load replaces the mapped pages ---- */
static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

/* A GGUF v3 file of n F16 matrices [N, K] named w.0, w.1, ... (sxrand values). */
static int write_f16_gguf(const char *path, int n, int64_t N, int64_t K) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint32_t u32;
    uint64_t u64;
    fwrite("GGUF", 1, 4, f);
    u32 = 3, fwrite(&u32, 4, 1, f);
    u64 = (uint64_t)n, fwrite(&u64, 8, 1, f);
    u64 = 0, fwrite(&u64, 8, 1, f); /* no metadata: alignment 32 */
    size_t bytes = (size_t)(N * K) * 2, off = 0;
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "w.%d", i);
        u64 = strlen(name), fwrite(&u64, 8, 1, f), fwrite(name, 1, strlen(name), f);
        u32 = 2, fwrite(&u32, 4, 1, f);
        u64 = (uint64_t)K, fwrite(&u64, 8, 1, f);
        u64 = (uint64_t)N, fwrite(&u64, 8, 1, f);
        u32 = SX_F16, fwrite(&u32, 4, 1, f);
        u64 = off, fwrite(&u64, 8, 1, f);
        off += (bytes + 31) / 32 * 32;
    }
    long pos = ftell(f);
    for (long p = pos; p % 32; p++) fputc(0, f);
    float *v = malloc(sizeof(float) * (size_t)(N * K));
    uint16_t *h = malloc(bytes);
    int ok = v && h;
    for (int i = 0; ok && i < n; i++) {
        sx_rand_uniform(v, N * K, 100 + (uint64_t)i, -0.1f, 0.1f);
        for (int64_t j = 0; j < N * K; j++) h[j] = sx_f32_to_f16(v[j]);
        ok = fwrite(h, 1, bytes, f) == bytes;
        for (size_t p = bytes; p % 32; p++) fputc(0, f);
    }
    free(v), free(h);
    return fclose(f) == 0 && ok ? 0 : -1;
}

static void bench_memory(void) {
    const int n = 8;
    const int64_t N = 4096, K = 4096;
    char path[] = "/tmp/seedx_bench_rss_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return;
    close(fd);
    printf("\nmemory: %d F16 matrices [%lld, %lld] (%.0f MB) in a GGUF file, resident set (VmRSS)\n", n,
           (long long)N, (long long)K, n * N * K * 2 / 1e6);
    if (write_f16_gguf(path, n, N, K) != 0) {
        printf("  (could not write %s)\n", path);
        unlink(path);
        return;
    }
    for (int mode = SX_COMPUTE_F32; mode <= SX_COMPUTE_BF16; mode++) {
        sx_gguf *g;
        if (sx_gguf_open(path, &g) != 0) break;
        long r0 = rss_kb();
        for (int i = 0; i < n; i++) { /* every mapped page read, as a load that converts would */
            const sx_tensor *t = sx_gguf_tensor_at(g, i);
            for (size_t b = 0; b < t->nbytes; b += 4096) (void)*(const volatile uint8_t *)((const uint8_t *)t->data + b);
        }
        long r1 = rss_kb();
        sx_set_compute(mode);
        sx_weight w[8];
        double t0 = sx_time(), c0 = cpu_now(0);
        for (int i = 0; i < n; i++) {
            char name[16];
            snprintf(name, sizeof name, "w.%d", i);
            sx_weight_get(g, name, N, K, &w[i]);
        }
        double tp = sx_time() - t0, cp = cpu_now(0) - c0;
        long r2 = rss_kb();
        float *x = malloc(sizeof(float) * 64 * K), *y = malloc(sizeof(float) * 64 * N);
        sx_rand_uniform(x, 64 * K, 1, -1, 1);
        for (int i = 0; i < n; i++) sx_matmul(y, x, &w[i], NULL, 64);
        long r3 = rss_kb();
        printf("  compute %-4s: resident after reading the mapping %+.0f MB; after packing at load "
               "%+.0f MB (%.2f s, %.2f CPU s); after a 64-row product with each %+.0f MB\n",
               sx_compute_name(mode), (r1 - r0) / 1e3, (r2 - r0) / 1e3, tp, cp, (r3 - r0) / 1e3);
        free(x), free(y);
        sx_gguf_close(g);
        sx_set_compute(SX_COMPUTE_F32);
    }
    unlink(path);
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
    int f32 = 0, bf16 = 0, blocks = 0, attn = 0, mem = 0, dec = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--f32")) f32 = 1;
        else if (!strcmp(argv[i], "--bf16")) bf16 = 1;
        else if (!strcmp(argv[i], "--blocks")) blocks = 1;
        else if (!strcmp(argv[i], "--attention")) attn = 1;
        else if (!strcmp(argv[i], "--memory")) mem = 1;
        else if (!strcmp(argv[i], "--decode")) dec = 1;
        else {
            fprintf(stderr, "usage: bench_matmul [--quick] [--f32] [--bf16] [--decode] [--blocks] [--memory] [--attention]\n");
            return 2;
        }
    }
    if (!f32 && !bf16 && !blocks && !attn && !mem && !dec) f32 = bf16 = blocks = attn = mem = dec = 1;
    if (sx_init(0) != 0) return 1;
    int maxt = sx_threads_count() < 2 ? sx_threads_count() : 2;
    printf("bench_matmul: simd %s, BF16 kernel %s, up to %d threads\n", sx_simd_name(sx_simd_level()),
           sx_bf16_kernels_cur()->name, maxt);
    for (int t = 1; t <= maxt; t++) measure_peaks(t);
    printf("peaks per thread, per CPU-second (best over 1 and %d threads):\n", maxt);
    for (int w = 0; w < PK_N; w++)
        if (pk[w] > 0)
            printf("  %-24s %8.2f%s\n", pk_name[w], pk[w],
                   w > 0 && pk[PK_CLOCK] > 0 ? "" : "");
    if (pk[PK_CLOCK] > 0)
        printf("  flop/cycle: FMA ymm %.1f, zmm %.1f, vdpbf16ps %.1f, AMX %.1f\n", pk[PK_YMM] / pk[PK_CLOCK],
               pk[PK_ZMM] / pk[PK_CLOCK], pk[PK_BF16] / pk[PK_CLOCK], pk[PK_AMX] / pk[PK_CLOCK]);
    if (!sx_simd_supported(SX_SIMD_AMX)) printf("  (AMX: not available on this CPU or OS)\n");
    shape all[] = {{"vit qkv/out", 1024, 1664, 1664}, {"vit mlp fc", 1024, 8192, 1664},
                   {"unet attn 64x64", 4096, 640, 640}, {"unet attn 32x32", 1024, 1280, 1280},
                   {"unet geglu proj", 4096, 5120, 640}, {"unet geglu out", 4096, 640, 2560},
                   {"llm prefill qkvo", 256, 5120, 5120}, {"llm prefill ffn", 256, 13824, 5120},
                   {"llm lm_head", 256, 32330, 5120}};
    shape few[] = {{"vit qkv/out", 1024, 1664, 1664}, {"unet attn 64x64", 4096, 640, 640},
                   {"llm prefill qkvo", 256, 5120, 5120}};
    const shape *sh = quick ? few : all;
    int nsh = quick ? 3 : (int)(sizeof all / sizeof all[0]);
    if (f32) bench_f32(sh, nsh, maxt);
    if (bf16) bench_bf16(sh, nsh, maxt);
    if (dec) bench_decode(maxt);
    if (blocks) bench_blocks(maxt);
    if (mem) bench_memory();
    sx_threads_init(0);
    if (attn) bench_attention();
    return 0;
}
