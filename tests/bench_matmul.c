/* tests/bench_matmul.c - the matrix products at SEED-X's real shapes, next to
 * this machine's limits measured in the same run:
 *   peaks:  a dependent add chain (the clock), FMA-only loops (ymm, zmm;
 *           on aarch64 NEON q registers), a vdpbf16ps-only loop
 *           (AVX512_BF16) and a tile-resident TDPBF16PS loop (AMX), per
 *           thread;
 *   F32:    sx_matmul per SIMD path (avx2, avx512; neon), 1 and 2 threads (for
 *           weights that fit the cache also the general path: "gen"), and
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
 *   attention: sx_attention at the model shapes vs the F32 GEMM of the same
 *           model's projections and torch SDPA; conv: every UNet/VAE/ViT
 *           convolution vs torch.nn.functional.conv2d; fused: the resnets'
 *           GroupNorm -> SiLU -> conv -> + x (PyTorch runs beside us:
 *           scripts/bench_kernels_torch.py).
 * Usage: build/tests/bench_matmul [--quick] [--f32] [--bf16] [--decode] [--blocks] [--memory]
 *                                 [--attention] [--conv] [--fused]
 *        (no section flag: all sections) */
#include <dlfcn.h>
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
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include "ops_impl.h"
#include "seedx.h"

static double cpu_now(int thread) {
    struct timespec ts;
    clock_gettime(thread ? CLOCK_THREAD_CPUTIME_ID : CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- peak loops (one thread; rates per CPU-second of that thread) ---- */
#if defined(__x86_64__) || defined(__aarch64__)
#if defined(__x86_64__)
#define ADD1 "add $1, %0\n\t"
#else
#define ADD1 "add %0, %0, #1\n\t"
#endif
/* the clock: a chain of dependent adds, one per cycle */
static double clock_ghz(void) {
    const long n = 200000000;
    uint64_t x = 0;
    double t0 = cpu_now(1);
    for (long i = 0; i < n; i += 8)
        __asm__ volatile(ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 : "+r"(x));
    return (double)n / (cpu_now(1) - t0) / 1e9;
}
#endif

#if defined(__x86_64__)
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
#elif defined(__aarch64__)
// clang-format off
static double fma_neon(void) {
    float32x4_t m = vdupq_n_f32(0.999999f), c = vdupq_n_f32(1e-7f);
#define Z(i) float32x4_t a##i = vdupq_n_f32((float)i);
    Z(0) Z(1) Z(2) Z(3) Z(4) Z(5) Z(6) Z(7) Z(8) Z(9) Z(10) Z(11) Z(12) Z(13) Z(14) Z(15)
#undef Z
    const long iters = 20000000;
    double t0 = cpu_now(1);
    for (long it = 0; it < iters; it++) {
#define F(i) a##i = vfmaq_f32(a##i, c, m);
        F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11) F(12) F(13) F(14) F(15)
#undef F
        __asm__ volatile("" : "+w"(a0), "+w"(a1), "+w"(a2), "+w"(a3), "+w"(a4), "+w"(a5), "+w"(a6), "+w"(a7));
        __asm__ volatile("" : "+w"(a8), "+w"(a9), "+w"(a10), "+w"(a11), "+w"(a12), "+w"(a13), "+w"(a14), "+w"(a15));
    }
    double dt = cpu_now(1) - t0;
    volatile float sink = vaddvq_f32(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 +
                                     a12 + a13 + a14 + a15);
    (void)sink;
    return (double)iters * 16 * 4 * 2 / dt / 1e9;
}
// clang-format on
#endif

enum { PK_CLOCK, PK_YMM, PK_ZMM, PK_BF16, PK_AMX, PK_NEON, PK_N };
static const char *pk_name[PK_N] = {"clock GHz (add chain)", "FMA ymm GFLOP/s",
                                    "FMA zmm GFLOP/s",       "vdpbf16ps zmm GFLOP/s",
                                    "AMX TDPBF16PS GFLOP/s", "FMA neon q GFLOP/s"};
static double pk[PK_N]; /* per CPU-second of one thread, best seen */

/* the FMA peak of a path's register width */
static double vec_peak(int level) {
    switch (level) {
    case SX_SIMD_AVX2: return pk[PK_YMM];
    case SX_SIMD_AVX512:
    case SX_SIMD_AMX: return pk[PK_ZMM];
    case SX_SIMD_NEON: return pk[PK_NEON];
    }
    return 0;
}

static double run_peak(int which) {
#if defined(__x86_64__)
    switch (which) {
    case PK_CLOCK: return clock_ghz();
    case PK_YMM: return sx_simd_supported(SX_SIMD_AVX2) ? fma_ymm() : 0;
    case PK_ZMM: return sx_simd_supported(SX_SIMD_AVX512) ? fma_zmm() : 0;
    case PK_BF16: return sx_simd_has_avx512bf16() ? dpbf16_zmm() : 0;
    case PK_AMX: return sx_simd_supported(SX_SIMD_AMX) ? amx_tdp() : 0;
    }
#elif defined(__aarch64__)
    switch (which) {
    case PK_CLOCK: return clock_ghz();
    case PK_NEON: return sx_simd_supported(SX_SIMD_NEON) ? fma_neon() : 0;
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

/* 1: CPU time of the calling thread (one-thread rows: OpenBLAS's workers,
 * still spinning after its 2-thread rows, count in the process's time) */
static int clock_thread;

static tm2 best_of(work_fn fn, void *ctx, int reps) {
    tm2 b = {1e30, 1e30};
    for (int r = 0; r < reps; r++) {
        double w0 = sx_time(), c0 = cpu_now(clock_thread);
        fn(ctx);
        double w = sx_time() - w0, c = cpu_now(clock_thread) - c0;
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
#if defined(__x86_64__)
    if (!getenv("OPENBLAS_CORETYPE")) setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
#endif
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
#if defined(__aarch64__)
    int levels[] = {SX_SIMD_NEON};
#else
    int levels[] = {SX_SIMD_AVX2, SX_SIMD_AVX512};
#endif
    int nl = (int)(sizeof levels / sizeof levels[0]);
    for (int s = 0; s < nsh; s++) {
        const shape *S = &sh[s];
        float *x, *y, *wf;
        char nm[64];
        sx_weight w = shape_data(S, &x, &y, &wf, nm, sizeof nm);
        double flop = 2.0 * S->M * S->N * S->K;
        int reps = quick ? 2 : 4;
        for (int t = 1; t <= maxt; t *= 2) {
            clock_thread = t == 1;
            for (int li = 0; li < nl; li++) {
                sx_threads_init(t);
                if (sx_simd_set(levels[li]) != 0) continue;
                sx_weight wp = w; /* packed once, as at load (panels of this path) */
                sx_weight_pack(&wp);
                mm_job J = {y, x, &wp, S->M, SX_COMPUTE_F32, 0};
                mm_run(&J); /* warm-up */
                row(nm, sx_simd_name(levels[li]), t, flop, best_of(mm_run, &J, reps),
                    vec_peak(levels[li]));
                if (S->N * S->K * (int64_t)sizeof(float) <= ((int64_t)8 << 20)) {
                    /* W fits the cache (ops_gemm.c, matmul_cached_w): the general path beside */
                    char gp[24];
                    snprintf(gp, sizeof gp, "%s gen", sx_simd_name(levels[li]));
                    sx_set_gemm_cached_w(0);
                    row(nm, gp, t, flop, best_of(mm_run, &J, reps), vec_peak(levels[li]));
                    sx_set_gemm_cached_w(1);
                }
                sx_weight_unpack(&wp);
            }
            if (blas) {
                sx_threads_init(1);
                ob_threads(t);
                mm_job J = {y, x, &w, S->M, 0, 1};
                mm_run(&J);
                row(nm, "openblas", t, flop, best_of(mm_run, &J, reps), vec_peak(levels[nl - 1]));
            }
            clock_thread = 0;
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
    double peak = amx ? pk[PK_AMX] : dp ? pk[PK_BF16] : vec_peak(sx_simd_level());
    char title[200];
    snprintf(title, sizeof title,
             "BF16 GEMM, kernel %s (weights packed once; peak: the %s loop, per CPU-second)",
             kk->name,
             amx  ? "tile-resident TDPBF16PS"
             : dp ? "vdpbf16ps"
                  : "FMA");
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
        execl(".venv/bin/python", ".venv/bin/python", "scripts/bench_kernels_torch.py",
              (char *)NULL);
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

/* One more PyTorch run of req, keeping the best time in *best. */
static void torch_best(torch_proc *t, const char *req, double *best) {
    double tt = torch_time(t, req);
    if (tt > 0 && tt < *best) *best = tt;
}

/* The PyTorch cell (GFLOP/s of `flop`, or ms when flop is 0) and our
 * speed relative to it; "-" when PyTorch did not run. */
static void torch_cells(char *tcol, char *rcol, size_t n, double best, double ours, double flop) {
    snprintf(tcol, n, "-");
    snprintf(rcol, n, "-");
    if (best >= 1e30) return;
    if (flop > 0)
        snprintf(tcol, n, "%.1f", flop / best / 1e9);
    else
        snprintf(tcol, n, "%.1f ms", 1e3 * best);
    snprintf(rcol, n, "%.2fx", best / ours);
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
    return threads > 1 ? sx_time() : cpu_now(1);
}

/* The F32 FMA peak of one core per CPU-second (measured at the start), for
 * the current SIMD path: "% peak" divides a rate per CPU-second by it. */
static double peak_cpu(void) {
    int l = sx_simd_level();
    return l == SX_SIMD_AVX512 || l == SX_SIMD_AMX ? pk[PK_ZMM] : pk[PK_YMM];
}

/* sx_attention at the model shapes, timed alternately (best of ATT_REPS
 * rounds) with the F32 GEMM of the same model's projections
 * ([T, H*D] x [H*D, H*D]^T) and torch's F.scaled_dot_product_attention, so
 * the ratios hold while the clock and the other tenants change. GFLOP/s
 * counts the two products, 4 Tq Tk H D (causal: the visible part only);
 * "of GEMM" and "% peak" compare rates per CPU-second. */
#define ATT_REPS 3
static void bench_attention(torch_proc *tp, int maxt) {
    struct {
        const char *what;
        int64_t Tq, Tk;
        int H, D, causal;
    } as[] = {{"sdxl 64x64 self-attn", 4096, 4096, 10, 64, 0},
              {"sdxl 64x64 cross-attn", 4096, 77, 10, 64, 0},
              {"vit-G block", 1024, 1024, 16, 104, 0},
              {"llm prefill 600", 600, 600, 40, 128, 0},
              {"llm prefill 600 causal", 600, 600, 40, 128, 1},
              {"vae mid (64x64 latent)", 4096, 4096, 1, 512, 0}};
    printf("\nattention (sx_attention, F32, %s) vs the F32 GEMM [T,HD]x[HD,HD] and torch SDPA, "
           "same rounds\n"
           "(per CPU-s: flop / process CPU time; torch and \"vs torch\": 1 thread CPU time of the\n"
           " thread on both sides, 2 threads wall time)\n",
           sx_simd_name(sx_simd_level()));
    printf("%-24s %5s %5s %3s %4s %3s %8s %9s %9s %8s %8s %8s %7s\n", "shape", "Tq", "Tk", "H", "D",
           "thr", "GFLOP/s", "per CPU-s", "GEMM/CPUs", "of GEMM", "torch", "vs torch", "% peak");
    for (size_t i = 0; i < sizeof as / sizeof as[0]; i++) {
        int64_t Tq = as[i].Tq, Tk = as[i].Tk, HD = (int64_t)as[i].H * as[i].D;
        float *q = malloc(4 * Tq * HD), *k = malloc(4 * Tk * HD), *v = malloc(4 * Tk * HD);
        float *o = malloc(4 * Tq * HD), *w = malloc(4 * HD * HD);
        sx_rand_uniform(q, Tq * HD, 1, -1, 1);
        sx_rand_uniform(k, Tk * HD, 2, -1, 1);
        sx_rand_uniform(v, Tk * HD, 3, -1, 1);
        sx_rand_uniform(w, HD * HD, 4, -1, 1);
        sx_weight W = sx_weight_f32(w, HD, HD);
        sx_epilogue ep = {.compute = SX_COMPUTE_F32};
        int hd = as[i].D, H = as[i].H;
        sx_attn a = {
            H,      H, hd, HD, hd, HD, hd, HD, hd, HD, hd, 1.0f / sqrtf((float)hd), as[i].causal,
            Tk - Tq};
        /* visible (query, key) pairs */
        double pairs = 0;
        for (int64_t r = 0; r < Tq; r++) {
            int64_t n = as[i].causal ? r + Tk - Tq + 1 : Tk;
            pairs += (double)(n < 0 ? 0 : n > Tk ? Tk : n);
        }
        double fa = 4.0 * pairs * HD, fg = 2.0 * Tq * HD * HD;
        for (int t = 1; t <= maxt; t++) {
            double aw = 1e30, ac = 1e30, ar = 1e30, gc = 1e30, bt = 1e30;
            char req[128];
            snprintf(req, sizeof req, "attn %lld %lld %d %d %d %d 1", (long long)Tq, (long long)Tk,
                     H, hd, as[i].causal, t);
            sx_threads_init(t);
            for (int r = 0; r < ATT_REPS; r++) {
                double c0 = cpu_now(0);
                sx_matmul_ep(o, HD, q, HD, &W, &ep, Tq);
                double c1 = cpu_now(0), w1 = sx_time(), r1 = row_clock(t);
                sx_attention(&a, o, q, k, v, Tq, Tk);
                double c2 = cpu_now(0), w2 = sx_time(), r2 = row_clock(t);
                if (c1 - c0 < gc) gc = c1 - c0;
                if (c2 - c1 < ac) ac = c2 - c1;
                if (w2 - w1 < aw) aw = w2 - w1;
                if (r2 - r1 < ar) ar = r2 - r1;
                torch_best(tp, req, &bt);
            }
            char tcol[16], rcol[16];
            torch_cells(tcol, rcol, sizeof tcol, bt, ar, fa);
            printf("%-24s %5lld %5lld %3d %4d %3d %8.1f %9.1f %9.1f %7.0f%% %8s %8s %6.0f%%\n",
                   as[i].what, (long long)Tq, (long long)Tk, H, hd, t, fa / aw / 1e9, fa / ac / 1e9,
                   fg / gc / 1e9, 100 * (fa / ac) / (fg / gc), tcol, rcol,
                   peak_cpu() > 0 ? 100 * fa / ac / 1e9 / peak_cpu() : 0);
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
#define CONV_GFLOP  8.0
typedef struct {
    const char *what;
    int cin, cout, k, s, pt, pl, pb, pr, H, W;
} conv_shape;

static void bench_conv(torch_proc *tp, int quick, int maxt) {
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
    static const char *quick_set[] = {"unet res 320",         "unet res 640",
                                      "unet res 1280",        "unet down 320",
                                      "unet short 640->1280", "unet conv_out",
                                      "vae res 128 @1024",    "vae dec conv_out",
                                      "vit patchify",         NULL};
    printf(
        "\nconv (sx_conv2d, F32 weights, %s) vs torch.nn.functional.conv2d (F32), same rounds\n"
        "(GFLOP/s and torch: 1 thread per CPU-second of the thread on both sides, 2 threads wall\n"
        " time; %% peak: per CPU-second vs the FMA peak)\n",
        sx_simd_name(sx_simd_level()));
    printf("%-25s %-15s %9s %3s %8s %8s %8s %7s\n", "conv", "cin->cout kxk/s", "HxW(rows)", "thr",
           "GFLOP/s", "torch", "vs torch", "% peak");
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
        float *x = malloc(sizeof(float) * (size_t)(c->cin * H * c->W)),
              *w = malloc(sizeof(float) * (size_t)(c->cout * K));
        float *b = malloc(sizeof(float) * (size_t)c->cout),
              *y = malloc(sizeof(float) * (size_t)(c->cout * ho * wo));
        sx_rand_uniform(x, c->cin * H * c->W, 1, -1, 1);
        sx_rand_uniform(w, c->cout * K, 2, -0.05f, 0.05f);
        sx_rand_uniform(b, c->cout, 3, -1, 1);
        sx_weight W = sx_weight_f32(w, c->cout, K);
        sx_weight_pack(&W); /* as at load (F32 compute: panels the conv reads its weights from) */
        sx_conv cv = {c->cin, c->cout, c->k, c->k, c->s, c->pt, c->pl, c->pb, c->pr};
        char shp[32], hw[24];
        snprintf(shp, sizeof shp, "%d->%d %dx%d/%d", c->cin, c->cout, c->k, c->k, c->s);
        snprintf(hw, sizeof hw, H < c->H ? "%dx%d(%lld)" : "%dx%d", c->H, c->W, (long long)H);
        for (int t = 1; t <= maxt; t++) {
            double bo = 1e30, bt = 1e30, bc = 1e30;
            char req[160];
            snprintf(req, sizeof req, "conv %d %d %d %d %d %d %d %d %lld %d %d 2", c->cin, c->cout,
                     c->k, c->s, c->pt, c->pl, c->pb, c->pr, (long long)H, c->W, t);
            sx_threads_init(t);
            sx_conv2d(y, x, H, c->W, &cv, &W, b, NULL, NULL); /* warm-up */
            for (int r = 0; r < CONV_ROUNDS; r++) {
                for (int j = 0; j < 2; j++) {
                    double t0 = row_clock(t), c0 = cpu_now(0);
                    sx_conv2d(y, x, H, c->W, &cv, &W, b, NULL, NULL);
                    double dt = row_clock(t) - t0, dc = cpu_now(0) - c0;
                    if (dt < bo) bo = dt;
                    if (dc < bc) bc = dc;
                }
                torch_best(tp, req, &bt);
            }
            double g = fl / bo / 1e9;
            char tcol[16], rcol[16];
            torch_cells(tcol, rcol, sizeof tcol, bt, bo, fl);
            printf("%-25s %-15s %9s %3d %8.1f %8s %8s %6.0f%%\n", c->what, shp, hw, t, g, tcol,
                   rcol, peak_cpu() > 0 ? 100 * fl / bc / 1e9 / peak_cpu() : 0);
            fflush(stdout);
        }
        sx_threads_init(maxt);
        sx_weight_unpack(&W);
        free(x), free(w), free(b), free(y);
    }
}

/* The resnets' GroupNorm(32) -> SiLU -> 3x3 conv -> + residual: the separate
 * kernel-layer ops (sx_groupnorm, sx_silu, sx_conv2d, sx_add), the fused
 * sx_conv2d_fused and PyTorch's four ops, alternately (rows cropped as in
 * bench_conv). */
static void bench_gnconv(torch_proc *tp, int maxt) {
    static const struct {
        const char *what;
        int c, H, W;
    } gs[] = {{"unet res 320 @128", 320, 128, 128},
              {"unet res 640 @64", 640, 64, 64},
              {"unet res 1280 @32", 1280, 32, 32},
              {"vae res 512 @256", 512, 256, 256},
              {"vae res 128 @1024", 128, 1024, 1024}};
    printf("\nresnet GroupNorm(32) -> SiLU -> conv3x3 -> + x: separate ops vs sx_conv2d_fused vs "
           "torch (%s)\n"
           "(1 thread: CPU time of the thread on both sides; 2: wall time)\n",
           sx_simd_name(sx_simd_level()));
    printf("%-20s %14s %3s %10s %10s %10s %8s %8s\n", "block", "HxW(rows)", "thr", "separate",
           "fused", "torch", "fused/sep", "vs torch");
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        int C = gs[i].c;
        int64_t H = gs[i].H, W = gs[i].W;
        while (2.0 * C * C * 9 * H * W > CONV_GFLOP * 1e9 && H > 16) H /= 2;
        int64_t n = C * H * W, K = (int64_t)C * 9;
        float *x = malloc(sizeof(float) * n), *h = malloc(sizeof(float) * n),
              *y = malloc(sizeof(float) * n);
        float *r = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * C * K),
              *b = malloc(sizeof(float) * C);
        float *gw = malloc(sizeof(float) * C), *gb = malloc(sizeof(float) * C);
        sx_rand_uniform(x, n, 1, -1, 1), sx_rand_uniform(r, n, 2, -1, 1);
        sx_rand_uniform(w, C * K, 3, -0.05f, 0.05f), sx_rand_uniform(b, C, 4, -1, 1);
        sx_rand_uniform(gw, C, 5, 0.5f, 1.5f), sx_rand_uniform(gb, C, 6, -0.5f, 0.5f);
        sx_weight W3 = sx_weight_f32(w, C, K);
        sx_weight_pack(&W3);
        sx_conv cv = {C, C, 3, 3, 1, 1, 1, 1, 1};
        sx_conv_fuse f = {32, 1e-5f, gw, gb, 1, 1};
        char hw[32];
        snprintf(hw, sizeof hw, H < gs[i].H ? "%dx%d(%lld)" : "%dx%d", gs[i].H, gs[i].W,
                 (long long)H);
        for (int t = 1; t <= maxt; t++) {
            double bs = 1e30, bf = 1e30, bt = 1e30;
            char req[128];
            snprintf(req, sizeof req, "gnconv %d %d 32 %lld %lld %d 2", C, C, (long long)H,
                     (long long)W, t);
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
                torch_best(tp, req, &bt);
            }
            char tcol[16], rcol[16];
            torch_cells(tcol, rcol, sizeof tcol, bt, bf, 0);
            printf("%-20s %14s %3d %7.1f ms %7.1f ms %10s %7.2fx %8s\n", gs[i].what, hw, t,
                   1e3 * bs, 1e3 * bf, tcol, bs / bf, rcol);
            fflush(stdout);
        }
        sx_threads_init(maxt);
        sx_weight_unpack(&W3);
        free(x), free(h), free(y), free(r), free(w), free(b), free(gw), free(gb);
    }
}

int main(int argc, char **argv) {
    int f32 = 0, bf16 = 0, blocks = 0, attn = 0, mem = 0, dec = 0, conv = 0, fused = 0, peaks = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--peaks")) /* the peak loops only (bench_full.py's floor) */
            peaks = 1;
        else if (!strcmp(argv[i], "--conv"))
            conv = 1;
        else if (!strcmp(argv[i], "--fused"))
            fused = 1;
        else if (!strcmp(argv[i], "--f32")) f32 = 1;
        else if (!strcmp(argv[i], "--bf16")) bf16 = 1;
        else if (!strcmp(argv[i], "--blocks")) blocks = 1;
        else if (!strcmp(argv[i], "--attention")) attn = 1;
        else if (!strcmp(argv[i], "--memory")) mem = 1;
        else if (!strcmp(argv[i], "--decode")) dec = 1;
        else {
            fprintf(
                stderr,
                "usage: bench_matmul [--quick] [--f32] [--bf16] [--decode] [--blocks] [--memory] "
                "[--attention] [--conv] [--fused] [--peaks]\n");
            return 2;
        }
    }
    if (!f32 && !bf16 && !blocks && !attn && !mem && !dec && !conv && !fused && !peaks)
        f32 = bf16 = blocks = attn = mem = dec = conv = fused = 1;
    if (sx_init(0) != 0) return 1;
    int maxt = sx_threads_count() < 2 ? sx_threads_count() : 2;
    printf("bench_matmul: simd %s, BF16 kernel %s, up to %d threads\n", sx_simd_name(sx_simd_level()),
           sx_bf16_kernels_cur()->name, maxt);
    for (int t = 1; t <= maxt; t++) measure_peaks(t);
    printf("peaks per thread, per CPU-second (best over 1 and %d threads):\n", maxt);
    for (int w = 0; w < PK_N; w++) {
        if (pk[w] <= 0) continue;
        printf("  %-24s %8.2f", pk_name[w], pk[w]);
        if (w > 0 && pk[PK_CLOCK] > 0) printf("  (%.1f flop/cycle)", pk[w] / pk[PK_CLOCK]);
        printf("\n");
    }
#if defined(__x86_64__)
    if (!sx_simd_supported(SX_SIMD_AMX)) printf("  (AMX: not available on this CPU or OS)\n");
#endif
    if (peaks) return 0;
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
    if (sx_set_compute(SX_COMPUTE_F32) != 0) return 1;
    torch_proc tp;
    if ((attn || conv || fused) && torch_open(&tp))
        printf("(no .venv: PyTorch columns left empty)\n");
    if (attn) bench_attention(&tp, maxt);
    if (conv) bench_conv(&tp, quick, maxt);
    if (fused) bench_gnconv(&tp, maxt);
    if (attn || conv || fused) torch_close(&tp);
    return 0;
}
