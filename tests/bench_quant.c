/* tests/bench_quant.c - quantized weights at Llama-2-13B shapes (SEED-X's LLM):
 * the decode GEMV (M = 1) of each matrix shape, and decode ms/token for F16,
 * BF16, Q8_0, Q4_0 and Q4_K with 1 and 2 threads, each next to the
 * read-bandwidth roofline for ITS bytes measured in the same run, and prefill
 * tokens/s for a 600-token prompt.
 *
 *   GEMV         = one [N, K] matrix times one vector, for q/k/v/o (5120 x
 *                  5120), gate/up (13824 x 5120), down (5120 x 13824) and
 *                  lm_head (32330 x 5120); copies of the matrix cycled so that
 *                  more than 512 MB is read per pass (no cache holds it); the
 *                  weight bytes per second as a % of the streaming read rate;
 *   decode/token = 40/L x (L distinct 13B decoder layers, one token at context
 *                  600, F32 KV cache) + lm_head GEMV; L copies of the layer so
 *                  that the weights streamed per token exceed 1.5 GB (no cache
 *                  holds them); best of --reps steps;
 *   roofline     = bytes one decode step reads (40 x (layer weights + its KV
 *                  cache) + lm_head) / read bandwidth;
 *   read rate    = the rate at which the same thread count sums a 1 GiB
 *                  buffer of 64-bit words (2 MiB tasks taken dynamically, 4
 *                  independent sums per thread): what the memory system
 *                  delivers to a plain sequential read, no cache reuse. One
 *                  pass before each timed pass (GEMV or step), so both see
 *                  the same load, plus 8 passes per thread count at the
 *                  start; a row's roofline uses the best pass so far of its
 *                  thread count (the host is shared: a pass that was slowed
 *                  down says nothing about the memory), and the summary at
 *                  the end recomputes every decode row's % roof with the
 *                  best pass of the whole run and adds "% paired": the
 *                  median over the steps of each step against the one pass
 *                  just before it (the memory rate of this host moves by 2x
 *                  between phases of seconds to minutes: the best pass of
 *                  the run can come from another phase than a type's steps);
 *   prefill      = 40 x (one layer, 600 tokens) + lm_head (last row), 2 threads;
 *   --parts:     the decode step's matrix-vector products and attention
 *                  one at a time (bench_parts), 2 threads;
 *   --prefill-cpu: 600 tokens through one 13B layer (the context's chunks of
 *                  256 rows), 1 thread, CPU ms, best of --reps, per type.
 * lm_head gets the policy's type (quant.h: Q8_0 for the quantized types).
 * Weights are random (sx_rand_uniform); quantized with the reference quantizers.
 *
 * Usage: build/tests/bench_quant [--quick] [--types f16,q8_0,...] [--reps N]
 *                                [--compute f32|bf16] [--no-gemv] [--no-decode]
 *                                [--prefill-mm] [--prefill-cpu] [--parts]
 *   --quick: decode and GEMV with 2 threads only, no prefill;
 *   --compute bf16: float matrices packed for the BF16 kernels as `seedx chat`
 *   does by default on CPUs with BF16 instructions (quantized ones are never
 *   packed: the same rows as with f32). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llama.h"
#include "quant.h"
#include "seedx.h"

#define D   5120
#define F   13824
#define V   32330
#define NL  40
#define CTX 600

/* ---- streaming read bandwidth ---- */
typedef struct {
    const uint64_t *buf;
    int64_t per; /* words per chunk */
    uint64_t sink[64];
} bw_job;

static void bw_task(void *ctx, int64_t b, int64_t e, int tid) {
    bw_job *j = ctx;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t c = b; c < e; c++) {
        const uint64_t *p = j->buf + c * j->per;
        for (int64_t i = 0; i < j->per; i += 4) {
            s0 += p[i];
            s1 += p[i + 1];
            s2 += p[i + 2];
            s3 += p[i + 3];
        }
    }
    j->sink[tid & 63] += s0 ^ s1 ^ s2 ^ s3;
}

/* the best read rate seen so far per thread count (GB/s) */
static double bw_best[3];

/* best of `passes` passes over 1 GiB with the current thread count, GB/s;
 * also the best so far of that thread count, into *so_far */
static double read_bw(const uint64_t *buf, int64_t words, int passes, double *so_far) {
    bw_job j = {buf, 1 << 16, {0}};
    double best = 0;
    for (int r = 0; r < passes; r++) {
        double t0 = sx_time();
        sx_parallel_for(words / j.per, 4, bw_task, &j);
        double t = sx_time() - t0, gbs = (double)words * 8 / t / 1e9;
        if (gbs > best) best = gbs;
    }
    int th = sx_threads_count() < 2 ? 1 : 2;
    if (best > bw_best[th]) bw_best[th] = best;
    if (so_far) *so_far = bw_best[th];
    return best;
}

/* ---- weights ---- */
static void *quantize(const float *src, int64_t N, int64_t K, int type);

/* The GEMV rows: each shape in each type, 2 threads (1 and 2 without quick). */
static int bench_gemv(const int *types, int n_types, int quick, int reps, uint64_t *bwbuf,
                      int64_t bw_words) {
    static const struct {
        const char *what;
        int64_t N, K;
    } shapes[] = {{"q/k/v/o_proj", 5120, 5120},
                  {"gate/up_proj", 13824, 5120},
                  {"down_proj", 5120, 13824},
                  {"lm_head", 32330, 5120}};
    printf("\nGEMV, M = 1 (decode); best of %d passes over copies of the matrix\n", reps);
    printf("%-13s %-13s %-5s %3s %9s %6s %10s %9s %9s %7s\n", "matrix", "[N, K]", "type", "thr",
           "MB", "copies", "us/GEMV", "GB/s", "read GB/s", "% read");
    float *x = malloc(sizeof(float) * 13824), *y = malloc(sizeof(float) * 32330);
    if (!x || !y) return -1;
    sx_rand_uniform(x, 13824, 401, -1.0f, 1.0f);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t N = shapes[s].N, K = shapes[s].K;
        float *w32 = malloc(sizeof(float) * (size_t)(N * K));
        if (!w32) return -1;
        sx_rand_uniform(w32, N * K, 402 + (uint64_t)s, -0.02f, 0.02f);
        for (int ti = 0; ti < n_types; ti++) {
            int ty = types[ti];
            size_t nb = sx_type_nbytes(ty, N * K);
            int nc = (int)((512e6 + (double)nb - 1) / (double)nb);
            sx_weight *w = calloc((size_t)nc, sizeof *w);
            if (!w) return -1;
            for (int c = 0; c < nc; c++) {
                void *d = c == 0 ? quantize(w32, N, K, ty) : malloc(nb);
                if (!d) return -1;
                if (c) memcpy(d, w[0].data, nb);
                w[c] = sx_weight_typed(d, ty, N, K);
                if (sx_weight_pack(&w[c]) != 0) return -1; /* only under --compute bf16 */
            }
            char shape[32];
            snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)N, (long long)K);
            for (int th = quick ? 2 : 1; th <= 2; th++) {
                sx_threads_init(th);
                double bw = 0, best = 1e30;
                for (int r = 0; r < reps; r++) { /* interleaved: both see the same load */
                    read_bw(bwbuf, bw_words, 1, &bw);
                    double t0 = sx_time();
                    for (int c = 0; c < nc; c++) sx_matmul(y, x, &w[c], NULL, 1);
                    double t = (sx_time() - t0) / nc;
                    if (t < best) best = t;
                }
                printf("%-13s %-13s %-5s %3d %9.1f %6d %10.0f %9.1f %9.1f %6.0f%%\n", shapes[s].what,
                       shape, sx_type_name(ty), th, (double)nb / 1e6, nc, best * 1e6,
                       (double)nb / best / 1e9, bw, 100.0 * (double)nb / best / 1e9 / bw);
                fflush(stdout);
            }
            for (int c = 0; c < nc; c++) {
                sx_weight_unpack(&w[c]);
                free((void *)w[c].data);
            }
            free(w);
        }
        free(w32);
    }
    free(x), free(y);
    return 0;
}

static double cpu_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Prefill products: [M, K] x [N, K]^T for the four 13B shapes, each type
 * through the integer kernels (sx_set_quant_rows_max: all M), through the
 * int8 GEMM (none; under BF16 compute where the path has it: AVX-512 with
 * VNNI) and through the dequantizing GEMM (sx_set_i8gemm(0)), F16 beside
 * them; best of reps of wall ms
 * and of CPU ms (process CPU time: the host is shared, so a vCPU taken away
 * shows in wall time but not in CPU time). 2 threads. */
static int bench_prefill_mm(const int *types, int n_types, int reps) {
    static const struct {
        const char *what;
        int64_t N, K;
    } shapes[] = {
        {"q/k/v/o_proj", 5120, 5120}, {"gate/up_proj", 13824, 5120}, {"down_proj", 5120, 13824}};
    static const int64_t Ms[] = {9, 32, 64, 128, 256, 600};
    const int nM = (int)(sizeof Ms / sizeof Ms[0]);
    sx_threads_init(2);
    printf("\nprefill products Y[M,N] = X[M,K] W^T, 2 threads, best of %d: wall ms / CPU ms\n",
           reps);
    printf("%-13s %-14s %-5s %-7s", "matrix", "[N, K]", "type", "path");
    for (int i = 0; i < nM; i++) printf("   M=%-12lld", (long long)Ms[i]);
    printf("\n");
    float *x = malloc(sizeof(float) * 600 * 13824), *y = malloc(sizeof(float) * 600 * 13824);
    if (!x || !y) return -1;
    sx_rand_uniform(x, 600 * 13824, 501, -1.0f, 1.0f);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t N = shapes[s].N, K = shapes[s].K;
        float *w32 = malloc(sizeof(float) * (size_t)(N * K));
        if (!w32) return -1;
        sx_rand_uniform(w32, N * K, 502 + (uint64_t)s, -0.02f, 0.02f);
        char shape[32];
        snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)N, (long long)K);
        for (int ti = 0; ti < n_types; ti++) {
            int ty = types[ti];
            const sx_wtype *wt = sx_wtype_of(ty);
            if (K % wt->block) continue;
            void *d = quantize(w32, N, K, ty);
            if (!d) return -1;
            sx_weight w = sx_weight_typed(d, ty, N, K);
            if (sx_weight_pack(&w) != 0) return -1; /* float types, under --compute bf16 */
            int i8 = sx_compute() == SX_COMPUTE_BF16 && sx_simd_vec_level() == SX_SIMD_AVX512 &&
                     sx_simd_vnni();
            for (int path = 0; path < (wt->quantized ? 3 : 1); path++) {
                if (path == 1 && !i8) continue;
                sx_set_quant_rows_max(path == 0 ? INT64_MAX : 0);
                sx_set_i8gemm(path == 2 ? 0 : 1);
                printf("%-13s %-14s %-5s %-7s", shapes[s].what, shape, wt->name,
                       !wt->quantized ? "float"
                       : path == 0    ? "integer"
                       : path == 1    ? "int8"
                                      : "dequant");
                for (int i = 0; i < nM; i++) {
                    double bw = 1e30, bc = 1e30;
                    for (int r = 0; r < reps; r++) {
                        double t0 = sx_time(), c0 = cpu_time();
                        if (sx_matmul(y, x, &w, NULL, Ms[i]) != 0) return -1;
                        double t = sx_time() - t0, c = cpu_time() - c0;
                        if (t < bw) bw = t;
                        if (c < bc) bc = c;
                    }
                    printf(" %7.1f / %-7.1f", bw * 1e3, bc * 1e3);
                    fflush(stdout);
                }
                printf("\n");
            }
            sx_set_quant_rows_max(-1);
            sx_set_i8gemm(1);
            sx_weight_unpack(&w);
            free(d);
        }
        free(w32);
    }
    free(x), free(y);
    return 0;
}

static void *quantize(const float *src, int64_t N, int64_t K, int type);

/* Prefill in CPU time: 600 tokens through one 13B decoder layer per type,
 * 1 thread (thread CPU time: what the work costs, whatever else runs). */
static int bench_prefill_cpu(const int *types, int n_types, int reps) {
    const int64_t shp[7][2] = {{D, D}, {D, D}, {D, D}, {D, D}, {F, D}, {F, D}, {D, F}};
    float *w32[7], *n1 = malloc(sizeof(float) * D), *n2 = malloc(sizeof(float) * D);
    float *x = malloc(sizeof(float) * CTX * D);
    if (!n1 || !n2 || !x) return -1;
    for (int i = 0; i < 7; i++) {
        w32[i] = malloc(sizeof(float) * (size_t)(shp[i][0] * shp[i][1]));
        if (!w32[i]) return -1;
        sx_rand_uniform(w32[i], shp[i][0] * shp[i][1], 200 + i, -0.02f, 0.02f);
    }
    sx_rand_uniform(n1, D, 301, 0.5f, 1.5f);
    sx_rand_uniform(n2, D, 302, 0.5f, 1.5f);
    sx_rand_uniform(x, (int64_t)CTX * D, 303, -1.0f, 1.0f);
    sx_threads_init(1);
    printf("\nprefill: %d tokens through one 13B layer, 1 thread, compute %s, best of %d: CPU ms\n",
           CTX, sx_compute_name(sx_compute()), reps);
    for (int ti = 0; ti < n_types; ti++) {
        void *w[7];
        for (int i = 0; i < 7; i++)
            if (!(w[i] = quantize(w32[i], shp[i][0], shp[i][1], types[ti]))) return -1;
        sx_llama m;
        memset(&m, 0, sizeof m);
        m.cfg = (sx_llama_config){D, 1, 40, 40, 128, F, V, 2048, 1e-5f, 10000.0f, 1, 2, 0};
        sx_llama_layer L = sx_llama_layer_wrap(&m.cfg, n1, n2, w, types[ti]);
        sx_weight *lw[7] = {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down};
        for (int i = 0; i < 7; i++) /* packed only under --compute bf16 */
            if (sx_weight_pack(lw[i]) != 0) return -1;
        m.layers = &L;
        sx_llama_ctx *c;
        if (sx_llama_ctx_new(&m, CTX, SX_F32, &c) != 0) return -1;
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            sx_llama_ctx_reset(c);
            struct timespec t0, t1;
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
            if (sx_llama_forward_embeds(c, x, CTX, SX_LLAMA_LOGITS_NONE, NULL, NULL) != 0)
                return -1;
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
            double t = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
            if (t < best) best = t;
        }
        printf("%-5s %8.0f\n", sx_type_name(types[ti]), best * 1e3);
        fflush(stdout);
        sx_llama_ctx_free(c);
        for (int i = 0; i < 7; i++) {
            sx_weight_unpack(lw[i]);
            free(w[i]);
        }
    }
    for (int i = 0; i < 7; i++) free(w32[i]);
    free(n1), free(n2), free(x);
    return 0;
}

static void *quantize(const float *src, int64_t N, int64_t K, int type) {
    void *d = malloc(sx_type_nbytes(type, N * K));
    if (d && sx_quantize_rows(type, d, src, N, K) != 0) {
        free(d);
        return NULL;
    }
    return d;
}

/* --parts: the decode step's pieces one at a time, 2 threads: the seven
 * matrix-vector products of a layer and its attention at context 600 (the
 * KV cache as llama.c lays it out, one run per head, and, for comparison,
 * by position: each head's rows a whole token row apart), each over L
 * copies (> 1.5 GB of weights; attention over L layers' caches), best of
 * --reps, ms per token scaled to 40 layers, bytes per second against the
 * best read pass. */
static int bench_parts(const int *types, int n_types, int reps, uint64_t *bwbuf, int64_t bw_words) {
    const int64_t shp[7][2] = {{D, D}, {D, D}, {D, D}, {D, D}, {F, D}, {F, D}, {D, F}};
    const int64_t H = 40, hd = 128, n_ctx = CTX + 8;
    sx_threads_init(2);
    float *x = malloc(sizeof(float) * F), *y = malloc(sizeof(float) * F),
          *q = malloc(sizeof(float) * D);
    if (!x || !y || !q) return -1;
    sx_rand_uniform(x, F, 501, -1.0f, 1.0f);
    sx_rand_uniform(q, D, 502, -1.0f, 1.0f);
    printf("\ndecode step by parts (2 threads; ms per token = 40 layers; %% read: bytes per second "
           "over "
           "the best read pass)\n");
    printf("%-5s %-32s %9s %10s %8s %7s\n", "type", "part", "GB/token", "ms/token", "GB/s",
           "% read");
    for (int ti = 0; ti < n_types; ti++) {
        int ty = types[ti];
        float *w32 = NULL;
        void *w1[7];
        size_t lbytes = 0;
        for (int i = 0; i < 7; i++) {
            int64_t n = shp[i][0] * shp[i][1];
            float *t = realloc(w32, sizeof(float) * (size_t)n);
            if (!t) return free(w32), -1;
            w32 = t;
            sx_rand_uniform(w32, n, 200 + i, -0.02f, 0.02f);
            if (!(w1[i] = quantize(w32, shp[i][0], shp[i][1], ty))) return -1;
            lbytes += sx_type_nbytes(ty, n);
        }
        free(w32);
        int L = (int)((1.5e9 + (double)lbytes - 1) / (double)lbytes);
        if (L > NL) L = NL;
        sx_weight *w = calloc((size_t)L * 7, sizeof *w);
        size_t kvl = (size_t)H * (size_t)n_ctx * (size_t)hd; /* floats per layer's keys */
        float *kv = malloc(sizeof(float) * kvl * 2 * (size_t)L), *o = malloc(sizeof(float) * D);
        if (!w || !kv || !o) return -1;
        sx_rand_uniform(kv, (int64_t)kvl * 2 * L, 503, -1.0f, 1.0f);
        for (int l = 0; l < L; l++)
            for (int i = 0; i < 7; i++) {
                size_t nb = sx_type_nbytes(ty, shp[i][0] * shp[i][1]);
                void *d = l == 0 ? w1[i] : malloc(nb);
                if (!d) return -1;
                if (l) memcpy(d, w1[i], nb);
                w[l * 7 + i] = sx_weight_typed(d, ty, shp[i][0], shp[i][1]);
            }
        /* parts: 0 q/k/v, 1 o, 2 gate/up, 3 down, 4 attention per head, 5 attention by position */
        static const char *const names[6] = {
            "q/k/v_proj [5120 x 5120] x3",    "o_proj [5120 x 5120]",
            "gate/up_proj [13824 x 5120] x2", "down_proj [5120 x 13824]",
            "attention, KV one run per head", "attention, KV rows by position"};
        double best[6], bytes[6];
        for (int p = 0; p < 6; p++) best[p] = 1e30;
        bytes[0] = 3.0 * (double)sx_type_nbytes(ty, D * D);
        bytes[1] = (double)sx_type_nbytes(ty, D * D);
        bytes[2] = 2.0 * (double)sx_type_nbytes(ty, F * D);
        bytes[3] = (double)sx_type_nbytes(ty, F * D);
        bytes[4] = bytes[5] = 2.0 * CTX * (double)D * 4.0;
        double bw = 0;
        for (int r = 0; r < reps; r++)
            for (int p = 0; p < 6; p++) {
                read_bw(bwbuf, bw_words, 1, &bw);
                double t0 = sx_time();
                for (int l = 0; l < L; l++) {
                    sx_weight *lw = w + l * 7;
                    const float *kl = kv + (size_t)l * 2 * kvl, *vl = kl + kvl;
                    sx_attn a = {.n_heads = (int)H,
                                 .n_kv_heads = (int)H,
                                 .head_dim = (int)hd,
                                 .q_tok = D,
                                 .q_head = hd,
                                 .o_tok = D,
                                 .o_head = hd,
                                 .scale = 1.0f / sqrtf((float)hd),
                                 .causal = 1,
                                 .causal_offset = CTX - 1};
                    if (p == 4) /* llama.c: [head][position][hd] */
                        a.k_tok = a.v_tok = hd, a.k_head = a.v_head = n_ctx * hd;
                    else /* [position][head][hd] */
                        a.k_tok = a.v_tok = D, a.k_head = a.v_head = hd;
                    int rc = 0;
                    switch (p) {
                    case 0:
                        for (int i = 0; i < 3; i++) rc |= sx_matmul(y, x, &lw[i], NULL, 1);
                        break;
                    case 1: rc = sx_matmul(y, x, &lw[3], NULL, 1); break;
                    case 2:
                        rc = sx_matmul(y, x, &lw[4], NULL, 1) | sx_matmul(y, x, &lw[5], NULL, 1);
                        break;
                    case 3: rc = sx_matmul(y, x, &lw[6], NULL, 1); break;
                    default: rc = sx_attention(&a, o, q, kl, vl, 1, CTX); break;
                    }
                    if (rc) return -1;
                }
                double t = (sx_time() - t0) / L;
                if (t < best[p]) best[p] = t;
            }
        double sum_t = 0, sum_b = 0;
        for (int p = 0; p < 6; p++) {
            printf("%-5s %-32s %9.2f %10.1f %8.1f %6.0f%%\n", sx_type_name(ty), names[p],
                   NL * bytes[p] / 1e9, NL * best[p] * 1e3, bytes[p] / best[p] / 1e9,
                   100.0 * bytes[p] / best[p] / 1e9 / bw);
            if (p < 5) sum_t += best[p], sum_b += bytes[p];
        }
        printf("%-5s %-32s %9.2f %10.1f %8.1f %6.0f%%  (read rate %.1f GB/s)\n", sx_type_name(ty),
               "sum (attention: one run per head)", NL * sum_b / 1e9, NL * sum_t * 1e3,
               sum_b / sum_t / 1e9, 100.0 * sum_b / sum_t / 1e9 / bw, bw);
        for (int i = 0; i < L * 7; i++) free((void *)w[i].data);
        free(w), free(kv), free(o);
    }
    free(x), free(y), free(q);
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int quick = 0, reps = 5, gemv = 1, decode = 1, prefill_mm = 0, prefill_cpu = 0, parts = 0;
    int compute = SX_COMPUTE_F32;
    const char *types_arg = "f16,bf16,q8_0,q4_0,q4_k";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--no-gemv"))
            gemv = 0;
        else if (!strcmp(argv[i], "--no-decode"))
            decode = 0;
        else if (!strcmp(argv[i], "--prefill-mm"))
            prefill_mm = 1;
        else if (!strcmp(argv[i], "--prefill-cpu"))
            prefill_cpu = 1;
        else if (!strcmp(argv[i], "--compute") && i + 1 < argc &&
                 (compute = sx_compute_from_name(argv[++i])) > 0)
            continue;
        else if (!strcmp(argv[i], "--types") && i + 1 < argc)
            types_arg = argv[++i];
        else if (!strcmp(argv[i], "--parts"))
            parts = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else
            return fprintf(stderr,
                           "usage: %s [--quick] [--types f16,q8_0,...] [--reps N] [--compute "
                           "f32|bf16] [--no-gemv] [--no-decode] [--prefill-mm] [--prefill-cpu] "
                           "[--parts]\n",
                           argv[0]),
                   2;
    }
    if (sx_init(2) != 0 || sx_set_compute(compute) != 0)
        return fprintf(stderr, "%s\n", sx_errmsg()), 1;
    printf("llama 13B shapes, simd %s%s, compute %s%s%s; decode through L distinct layers x40/L + "
           "lm_head\n",
           sx_simd_name(sx_simd_level()), sx_simd_vnni() ? " (+vnni)" : "", sx_compute_name(compute),
           compute == SX_COMPUTE_BF16 ? ": float matrices packed, kernel " : "",
           compute == SX_COMPUTE_BF16 ? sx_compute_bf16_kernel() : "");
    int types[8], n_types = 0;
    {
        char tb[128];
        snprintf(tb, sizeof tb, "%s", types_arg);
        for (char *tok = strtok(tb, ","); tok && n_types < 8; tok = strtok(NULL, ",")) {
            int ty = sx_type_from_name(tok);
            const sx_wtype *wt = sx_wtype_of(ty);
            if (!wt || !wt->storage) return fprintf(stderr, "unknown type '%s'\n", tok), 2;
            types[n_types++] = ty;
        }
    }
    if (prefill_cpu) {
        if (bench_prefill_cpu(types, n_types, reps) != 0)
            return fprintf(stderr, "prefill: %s\n", sx_errmsg()), 1;
        return 0;
    }
    int64_t bw_words = (1LL << 30) / 8;
    uint64_t *bwbuf = malloc((size_t)bw_words * 8);
    if (!bwbuf) return 1;
    for (int64_t i = 0; i < bw_words; i++) bwbuf[i] = (uint64_t)i;
    for (int th = quick ? 2 : 1; th <= 2; th++) { /* the read rate before anything else */
        sx_threads_init(th);
        read_bw(bwbuf, bw_words, 8, NULL);
    }
    if (prefill_mm && bench_prefill_mm(types, n_types, reps) != 0)
        return fprintf(stderr, "prefill products: %s\n", sx_errmsg()), 1;
    if (parts && bench_parts(types, n_types, reps, bwbuf, bw_words) != 0)
        return fprintf(stderr, "parts: %s\n", sx_errmsg()), 1;
    if (gemv && bench_gemv(types, n_types, quick, reps, bwbuf, bw_words) != 0)
        return fprintf(stderr, "GEMV: %s\n", sx_errmsg()), 1;
    if (!decode) return free(bwbuf), 0;
    printf("\ndecode step (13B: 40 layers + lm_head, context %d)\n", CTX);
    const int64_t shp[7][2] = {{D, D}, {D, D}, {D, D}, {D, D}, {F, D}, {F, D}, {D, F}};
    float *w32[7], *head32 = malloc(sizeof(float) * (size_t)V * D);
    float *n1 = malloc(sizeof(float) * D), *n2 = malloc(sizeof(float) * D);
    int64_t layer_params = 0;
    for (int i = 0; i < 7; i++) {
        int64_t n = shp[i][0] * shp[i][1];
        layer_params += n;
        w32[i] = malloc(sizeof(float) * (size_t)n);
        if (!w32[i]) return fprintf(stderr, "out of memory\n"), 1;
        sx_rand_uniform(w32[i], n, 200 + i, -0.02f, 0.02f);
    }
    if (!head32) return 1;
    sx_rand_uniform(head32, (int64_t)V * D, 300, -0.02f, 0.02f);
    sx_rand_uniform(n1, D, 301, 0.5f, 1.5f);
    sx_rand_uniform(n2, D, 302, 0.5f, 1.5f);
    float *x = malloc(sizeof(float) * (size_t)CTX * D), *lg = malloc(sizeof(float) * V);
    sx_rand_uniform(x, (int64_t)CTX * D, 303, -1.0f, 1.0f);
    if (!x || !lg) return 1;

    printf("%-5s %3s %3s %9s %11s %12s %8s %12s %9s %8s %13s\n", "type", "thr", "L", "bpw",
           "GB/token", "decode ms", "tok/s", "roofline ms", "read GB/s", "% roof", "prefill tok/s");
    double prefill_f16 = 0;
    struct {
        const char *type;
        int th;
        double bytes, dec, paired;
    } done[16];
    int n_done = 0;
    for (int ti = 0; ti < n_types; ti++) {
        int ty = types[ti];
        const sx_wtype *wt = sx_wtype_of(ty);
        int64_t hshape[2] = {V, D};
        int hty = wt->quantized ? sx_quant_type_for("lm_head.weight", 2, hshape, ty) : ty;
        /* one layer in this type, then L copies */
        void *w1[7];
        size_t lbytes = 0;
        for (int i = 0; i < 7; i++) {
            w1[i] = quantize(w32[i], shp[i][0], shp[i][1], ty);
            if (!w1[i]) return fprintf(stderr, "out of memory\n"), 1;
            lbytes += sx_type_nbytes(ty, shp[i][0] * shp[i][1]);
        }
        void *head = quantize(head32, V, D, hty);
        int L = (int)((1.5e9 + (double)lbytes - 1) / (double)lbytes);
        if (L > NL) L = NL;
        sx_llama m;
        memset(&m, 0, sizeof m);
        m.cfg = (sx_llama_config){D, L, 40, 40, 128, F, V, 2048, 1e-5f, 10000.0f, 1, 2, 0};
        sx_llama_layer *layers = calloc((size_t)L, sizeof *layers);
        void **copies = calloc((size_t)L * 7, sizeof *copies);
        if (!head || !layers || !copies) return fprintf(stderr, "out of memory\n"), 1;
        for (int l = 0; l < L; l++) {
            for (int i = 0; i < 7; i++) {
                size_t nb = sx_type_nbytes(ty, shp[i][0] * shp[i][1]);
                copies[l * 7 + i] = l == 0 ? w1[i] : malloc(nb);
                if (!copies[l * 7 + i]) return fprintf(stderr, "out of memory\n"), 1;
                if (l) memcpy(copies[l * 7 + i], w1[i], nb);
            }
            layers[l] = sx_llama_layer_wrap(&m.cfg, n1, n2, copies + l * 7, ty);
            sx_weight *lw[7] = {&layers[l].wq,   &layers[l].wk, &layers[l].wv,  &layers[l].wo,
                                &layers[l].gate, &layers[l].up, &layers[l].down};
            for (int i = 0; i < 7; i++) /* packed only under --compute bf16 */
                if (sx_weight_pack(lw[i]) != 0) return fprintf(stderr, "%s\n", sx_errmsg()), 1;
        }
        m.layers = layers;
        sx_weight lm = sx_weight_typed(head, hty, V, D);
        if (sx_weight_pack(&lm) != 0) return fprintf(stderr, "%s\n", sx_errmsg()), 1;
        double hbytes = (double)sx_type_nbytes(hty, (int64_t)V * D);
        double kv = 2.0 * (CTX + 8) * D * 4.0; /* one layer's F32 keys + values read per token */
        double tok_bytes = NL * ((double)lbytes + kv) + hbytes;
        for (int th = quick ? 2 : 1; th <= 2; th++) {
            sx_threads_init(th);
            sx_llama_ctx *c;
            if (sx_llama_ctx_new(&m, CTX + 8 + reps, SX_F32, &c) != 0)
                return fprintf(stderr, "%s\n", sx_errmsg()), 1;
            /* fill the cache to CTX positions (prefill through the L layers) */
            for (int64_t t0 = 0; t0 < CTX; t0 += 200)
                if (sx_llama_forward_embeds(c, x + t0 * D, 200, SX_LLAMA_LOGITS_NONE, NULL, NULL))
                    return fprintf(stderr, "%s\n", sx_errmsg()), 1;
            double bw = 0, ts[32], pr[32];
            int nr = reps < 32 ? reps : 32;
            for (int s = 0; s < nr; s++) { /* interleaved: both see the same load */
                double bw_s = read_bw(bwbuf, bw_words, 1, &bw);
                double t0 = sx_time();
                sx_llama_forward_embeds(c, x + (int64_t)s * D, 1, SX_LLAMA_LOGITS_NONE, NULL, NULL);
                double tl = sx_time() - t0;
                t0 = sx_time();
                sx_matmul(lg, x + (int64_t)s * D, &lm, NULL, 1);
                ts[s] = (double)NL / L * tl + (sx_time() - t0);
                pr[s] = tok_bytes / (bw_s * 1e9) / ts[s]; /* against the pass just before */
            }
            qsort(ts, (size_t)nr, sizeof *ts, cmp_d);
            qsort(pr, (size_t)nr, sizeof *pr, cmp_d);
            double dec = ts[0], roof = tok_bytes / (bw * 1e9), paired = pr[nr / 2];
            double pre = 0, pre9 = 0;
            if (!quick && th == 2) { /* prefill: CTX tokens through one layer, x40 */
                sx_llama m1 = m;
                m1.cfg.n_layers = 1;
                sx_llama_ctx *c1;
                if (sx_llama_ctx_new(&m1, CTX, SX_F32, &c1) != 0) return 1;
                double t0 = sx_time();
                sx_llama_forward_embeds(c1, x, 9, SX_LLAMA_LOGITS_NONE, NULL, NULL);
                pre9 = NL * (sx_time() - t0);
                sx_llama_ctx_reset(c1);
                t0 = sx_time();
                sx_llama_forward_embeds(c1, x, CTX, SX_LLAMA_LOGITS_NONE, NULL, NULL);
                double tl = sx_time() - t0;
                t0 = sx_time();
                sx_matmul(lg, x, &lm, NULL, 1);
                pre = CTX / (NL * tl + (sx_time() - t0));
                sx_llama_ctx_free(c1);
                if (ty == SX_F16) prefill_f16 = pre;
            }
            if (n_done < 16) {
                done[n_done].type = wt->name;
                done[n_done].th = th;
                done[n_done].bytes = tok_bytes;
                done[n_done].paired = paired;
                done[n_done++].dec = dec;
            }
            printf("%-5s %3d %3d %9.2f %11.2f %12.0f %8.2f %12.0f %9.1f %7.0f%% ", wt->name, th, L,
                   8.0 * tok_bytes / (NL * (double)layer_params + (double)V * D), tok_bytes / 1e9,
                   dec * 1e3, 1.0 / dec, roof * 1e3, bw, 100.0 * roof / dec);
            if (pre > 0)
                printf("%8.2f%s; 9 tokens: %.0f ms", pre,
                       prefill_f16 > 0 && ty != SX_F16
                           ? (pre >= prefill_f16 ? " (>= F16)" : " (< F16)")
                           : "",
                       pre9 * 1e3);
            printf("\n");
            fflush(stdout);
            sx_llama_ctx_free(c);
        }
        for (int l = 0; l < L; l++) {
            sx_weight *lw[7] = {&layers[l].wq,   &layers[l].wk, &layers[l].wv,  &layers[l].wo,
                                &layers[l].gate, &layers[l].up, &layers[l].down};
            for (int i = 0; i < 7; i++) sx_weight_unpack(lw[i]);
        }
        sx_weight_unpack(&lm);
        for (int l = 0; l < L * 7; l++) free(copies[l]);
        free(copies), free(layers), free(head);
    }
    printf("(bpw: bytes per token incl. KV cache over the parameter count; %% roof = roofline ms / "
           "decode ms; prefill: %d tokens, 2 threads; 9 tokens: 40 x one layer, ms)\n",
           CTX);
    printf("\nagainst the best read rate of the run (%.1f GB/s with 1 thread, %.1f with 2):\n",
           bw_best[1], bw_best[2]);
    printf("%-5s %3s %12s %12s %8s %9s\n", "type", "thr", "decode ms", "roofline ms", "% roof",
           "% paired");
    for (int i = 0; i < n_done; i++) {
        double roof = done[i].bytes / (bw_best[done[i].th] * 1e9);
        printf("%-5s %3d %12.0f %12.0f %7.0f%% %8.0f%%\n", done[i].type, done[i].th,
               done[i].dec * 1e3, roof * 1e3, 100.0 * roof / done[i].dec, 100.0 * done[i].paired);
    }
    printf("(%% paired: the median over the steps of each step against the read pass just before "
           "it)\n");
    for (int i = 0; i < 7; i++) free(w32[i]);
    free(head32), free(n1), free(n2), free(x), free(lg), free(bwbuf);
    return 0;
}
