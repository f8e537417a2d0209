/* tests/test_quant.c - the quantized weight types (quant.h) against their
 * references (fixtures from scripts/fixtures_quant.py):
 *   - round trips: our quantizer's bytes = quant_ref.py's (the converter's),
 *     and our dequantization = the PyPI gguf package's, bit for bit, on
 *     random and adversarial rows, on every SIMD path;
 *   - the policy agrees with the converter's on every listed tensor;
 *   - every kernel on every SIMD path (AVX-512 with and without VNNI) against
 *     the scalar reference: activation quantizers and dequantization
 *     bit-identical, integer GEMV bit-identical where the arithmetic is
 *     integer (block scales of 1), bounded otherwise; any thread count
 *     gives the same bytes;
 *   - run-time quantization (sx_set_weight_dtype) = the converter's bytes;
 *     error of each type against F32 on a tiny Llama (logits max-rel, top-1
 *     agreement over 40 greedy steps, KL of the next-token distribution) and
 *     on a 13B-shaped decoder layer, where our bytes also equal llama.cpp's
 *     reference rounding;
 *   - BF16 compute leaves quantized weights quantized and unpacked, with
 *     logits near F32 compute's;
 *   - bad containers are refused with the tensor's name. */
#include "test.h"
#include "half.h"
#include "llama.h"
#include "ops_impl.h"
#include "quant.h"
#include "seedx.h"

#define FX "tests/fixtures/quant/"

static int levels[4], n_levels;

static sx_gguf *open_fx(const char *path) {
    sx_gguf *g = NULL;
    if (sx_gguf_open(path, &g) != 0) fprintf(stderr, "  %s\n", sx_errmsg());
    return g;
}

/* scripts/fixtures_quant.py sxhash */
static uint64_t sxhash(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = n;
    for (size_t i = 0; i < (n + 7) / 8; i++) {
        uint64_t w = 0;
        for (int k = 0; k < 8 && 8 * i + k < n; k++) w |= (uint64_t)b[8 * i + k] << (8 * k);
        uint64_t z = w + i * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        h += z ^ (z >> 31);
    }
    return h;
}

static int64_t meta_i(sx_gguf *g, const char *key) {
    int64_t v = 0;
    if (sx_meta_int(g, key, &v) != 0) fprintf(stderr, "  %s\n", sx_errmsg());
    return v;
}

static const int qtypes[3] = {SX_Q8_0, SX_Q4_0, SX_Q4_K};

/* ---- round trips on random and adversarial rows ---- */
static void test_rows_roundtrip(void) {
    sx_gguf *g = open_fx(FX "rows.gguf");
    if (!g) {
        CHECK(0);
        return;
    }
    const float *x = sx_get_f32(g, "x", SX_SHAPE(64, 256));
    if (!x) {
        CHECK(0);
        sx_gguf_close(g);
        return;
    }
    int64_t n = 64 * 256;
    float *back = malloc(sizeof(float) * n);
    for (int i = 0; i < 3; i++) {
        const sx_wtype *t = sx_wtype_of(qtypes[i]);
        char nm[32];
        snprintf(nm, sizeof nm, "%s", t->name);
        for (char *c = nm; *c; c++) *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        const sx_tensor *ref = sx_tensor_get(g, nm, SX_TYPE_BIT(t->type), SX_SHAPE(64, 256));
        char nd[40];
        snprintf(nd, sizeof nd, "%s.deq", nm);
        const float *deq = sx_get_f32(g, nd, SX_SHAPE(64, 256));
        if (!ref || !deq) {
            CHECK(0);
            continue;
        }
        size_t nb = sx_type_nbytes(t->type, n);
        uint8_t *q = malloc(nb);
        CHECK_OK(sx_quantize(t->type, q, x, n));
        /* our quantizer = quant_ref.py (the converter), byte for byte */
        size_t bad = 0, bb = t->block_bytes;
        for (size_t b = 0; b < nb / bb; b++)
            bad += memcmp(q + b * bb, (const uint8_t *)ref->data + b * bb, bb) != 0;
        CHECKF(bad == 0, "%s: %zu of %zu blocks differ from quant_ref.py", t->name, bad, nb / bb);
        /* our dequantization = gguf-py's, bit for bit, on every path */
        for (int l = 0; l < n_levels; l++) {
            sx_simd_set(levels[l]);
            sx_wtype_kernels_of(t).to_f32(back, q, n);
            CHECKF(!memcmp(back, deq, sizeof(float) * n),
                   "%s: %s dequantization differs from gguf-py", t->name, sx_simd_name(levels[l]));
            if (sx_wtype_kernels_of(t).from_f32 != t->k[SX_SIMD_SCALAR].from_f32) {
                uint8_t *q2 = malloc(nb);
                sx_wtype_kernels_of(t).from_f32(q2, x, n);
                CHECKF(!memcmp(q, q2, nb), "%s: %s quantizer differs from the scalar one", t->name,
                       sx_simd_name(levels[l]));
                free(q2);
            }
        }
        sx_simd_init();
        t_err e = t_compare(deq, x, n);
        printf("    %-5s rows: bytes = quant_ref.py, values = gguf-py; max abs error %.3g\n",
               t->name, e.max_abs);
        free(q);
    }
    /* Q8_K (activations): SIMD quantizers = scalar, on the same rows */
    const sx_wtype *k8 = sx_wtype_of(SX_Q8_K);
    size_t nb = sx_type_nbytes(SX_Q8_K, n);
    uint8_t *a = malloc(nb), *b = malloc(nb);
    k8->k[SX_SIMD_SCALAR].from_f32(a, x, n);
    for (int l = 0; l < n_levels; l++) {
        sx_simd_set(levels[l]);
        sx_wtype_kernels_of(k8).from_f32(b, x, n);
        CHECKF(!memcmp(a, b, nb), "Q8_K: %s quantizer differs from the scalar one",
               sx_simd_name(levels[l]));
    }
    sx_simd_init();
    free(a), free(b), free(back);
    sx_gguf_close(g);
}

/* ---- the policy = quant_ref.quant_type_for on every listed case ---- */
static void test_policy(void) {
    sx_gguf *g = open_fx(FX "policy.gguf");
    if (!g) {
        CHECK(0);
        return;
    }
    int et;
    uint64_t n;
    CHECK_OK(sx_meta_arr(g, "policy.names", &et, &n));
    int bad = 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        int64_t nd, want, type, shape[4];
        if (sx_meta_arr_str(g, "policy.names", i, &s, &len) ||
            sx_meta_arr_int(g, "policy.ndim", i, &nd) ||
            sx_meta_arr_int(g, "policy.want", i, &want) ||
            sx_meta_arr_int(g, "policy.type", i, &type)) {
            CHECK(0);
            sx_gguf_close(g);
            return;
        }
        for (int d = 0; d < 4; d++) sx_meta_arr_int(g, "policy.shapes", 4 * i + d, &shape[d]);
        char name[200];
        snprintf(name, sizeof name, "%.*s", (int)len, s);
        int got = sx_quant_type_for(name, (int)nd, shape, (int)want);
        if (got != type) {
            bad++;
            fprintf(stderr, "  policy: %s [%lld,%lld] want %s: C %s, converter %s\n", name,
                    (long long)shape[0], (long long)shape[1], sx_type_name((int)want),
                    got < 0 ? "float" : sx_type_name(got),
                    type < 0 ? "float" : sx_type_name((int)type));
        }
    }
    CHECKF(bad == 0 && n > 200, "%d of %llu cases differ", bad, (unsigned long long)n);
    sx_gguf_close(g);
}

/* ---- kernels on every path vs the scalar reference ---- */

/* runs fn() on every path, and on avx512 / neon with and without VNNI / SDOT */
#define FOR_PATHS(...)                                                                             \
    for (int l_ = 0; l_ < n_levels; l_++)                                                          \
        for (int v_ = 0; v_ < ((levels[l_] == SX_SIMD_AVX512 || levels[l_] == SX_SIMD_NEON) &&     \
                                       sx_simd_set_vnni(1) == 0                                    \
                                   ? 2                                                             \
                                   : 1);                                                           \
             v_++) {                                                                               \
            sx_simd_set(levels[l_]);                                                               \
            sx_simd_set_vnni(v_);                                                                  \
            char path[32];                                                                         \
            snprintf(path, sizeof path, "%s%s", sx_simd_name(levels[l_]), v_ ? "+vnni" : "");      \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    sx_simd_init();

/* weights [N, K] in +-0.05, activations [M, K] in +-2 with one outlier of
 * 40 at x[xo], bias [N] in +-1 */
static void rand_problem(float *w, float *x, float *bias, int64_t N, int64_t M, int64_t K,
                         uint64_t seed_w, uint64_t seed_x, uint64_t seed_b, int64_t xo) {
    sx_rand_uniform(w, N * K, seed_w, -0.05f, 0.05f);
    sx_rand_uniform(x, M * K, seed_x, -2.0f, 2.0f);
    sx_rand_uniform(bias, N, seed_b, -1, 1);
    x[xo] = 40.0f;
}

/* w quantized to ty as an [N, K] weight (*q: its bytes, to free); 0 when
 * K is not a multiple of ty's block */
static int quant_weight(int ty, const float *w, int64_t N, int64_t K, void **q, sx_weight *W) {
    if (K % sx_wtype_of(ty)->block) return 0;
    *q = malloc(sx_type_nbytes(ty, N * K));
    CHECK_OK(sx_quantize(ty, *q, w, N * K));
    *W = sx_weight_typed(*q, ty, N, K);
    return 1;
}

static void test_gemv_paths(void) {
    const int64_t N = 67, M = 4;
    const int64_t Ks[6] = {32, 96, 160, 256, 1536, 5120}; /* Q4_K: the last three */
    for (int ki = 0; ki < 6; ki++) {
        int64_t K = Ks[ki];
        float *w = malloc(sizeof(float) * N * K), *x = malloc(sizeof(float) * M * K);
        float *ref = malloc(sizeof(float) * M * N), *got = malloc(sizeof(float) * M * N);
        float bias[67];
        rand_problem(w, x, bias, N, M, K, 40 + ki, 50 + ki, 60, 7);
        for (int i = 0; i < 3; i++) {
            int ty = qtypes[i];
            void *q;
            sx_weight W;
            if (!quant_weight(ty, w, N, K, &q, &W)) continue;
            for (int64_t m = 1; m <= M; m++) {
                sx_simd_set(SX_SIMD_SCALAR);
                CHECK_OK(sx_matmul(ref, x, &W, bias, m));
                FOR_PATHS({
                    CHECK_OK(sx_matmul(got, x, &W, bias, m));
                    char nm[80];
                    snprintf(nm, sizeof nm, "%s %s K=%lld M=%lld", path, sx_type_name(ty),
                             (long long)K, (long long)m);
                    /* NEON: the blocks in order, as quant.c (Q4_K: NEON runs quant.c's) */
                    if (levels[l_] == SX_SIMD_NEON)
                        CHECKF(!memcmp(got, ref, sizeof(float) * m * N), "%s: not bit-identical",
                               nm);
                    else
                        CHECK_CLOSE(nm, got, ref, m * N, 2e-6);
                })
            }
            free(q);
        }
        free(w), free(x), free(ref), free(got);
    }
}

/* Many rows of X through the integer kernels (the `rows` kernel of the path,
 * or its GEMV on groups of rows): each row bit-identical to the same path's
 * GEMV of that row alone (M = 1), near the scalar reference, the same
 * bytes with 1 and 2 threads. K with odd tails: Q8_0
 * blocks past a pair and a window of 16, Q4_0 blocks past a group of 4. N
 * not a multiple of 4 (a last partial tile of weight rows). */
static void test_rows_paths(void) {
    const int64_t N = 67, Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 33};
    const int64_t Ks[] = {96, 160, 544, 1120, 256, 1280}, M = 33;
    const int nM = (int)(sizeof Ms / sizeof Ms[0]);
    int nt = sx_threads_count(), checked = 0;
    CHECK_OK(sx_set_quant_rows_max(INT64_MAX));
    for (int ki = 0; ki < 6; ki++) {
        int64_t K = Ks[ki];
        float *w = malloc(sizeof(float) * N * K), *x = malloc(sizeof(float) * M * K);
        float *ref = malloc(sizeof(float) * M * N), *got = malloc(sizeof(float) * M * N);
        float *one = malloc(sizeof(float) * M * N), *two = malloc(sizeof(float) * M * N);
        float bias[67];
        rand_problem(w, x, bias, N, M, K, 90 + ki, 100 + ki, 110, K + 7); /* outlier in row 1 */
        for (int i = 0; i < 3; i++) {
            int ty = qtypes[i];
            void *q;
            sx_weight W;
            if (!quant_weight(ty, w, N, K, &q, &W)) continue;
            sx_simd_set(SX_SIMD_SCALAR);
            CHECK_OK(sx_matmul(ref, x, &W, bias, M));
            FOR_PATHS({
                for (int64_t r = 0; r < M; r++) /* the GEMV of each row alone */
                    CHECK_OK(sx_matmul(one + r * N, x + r * K, &W, bias, 1));
                char nm[80];
                for (int mi = 0; mi < nM; mi++) {
                    int64_t m = Ms[mi];
                    memset(got, 0xff, sizeof(float) * M * N);
                    CHECK_OK(sx_matmul(got, x, &W, bias, m));
                    snprintf(nm, sizeof nm, "%s %s K=%lld M=%lld", path, sx_type_name(ty),
                             (long long)K, (long long)m);
                    CHECKF(!memcmp(got, one, sizeof(float) * m * N),
                           "%s: rows differ from the GEMV's", nm);
                    checked++;
                }
                CHECK_CLOSE(nm, got, ref, M * N, 2e-6);
                sx_threads_init(1);
                CHECK_OK(sx_matmul(one, x, &W, bias, M));
                sx_threads_init(2);
                CHECK_OK(sx_matmul(two, x, &W, bias, M));
                CHECKF(!memcmp(one, two, sizeof(float) * M * N), "%s: 1 and 2 threads differ", nm);
                sx_threads_init(nt);
            })
            free(q);
        }
        free(w), free(x), free(ref), free(got), free(one), free(two);
    }
    CHECK_OK(sx_set_quant_rows_max(-1));
    CHECKF(checked >= 6 * nM * n_levels, "only %d cases", checked);
}

/* For m = 1..M rows of x: the scalar path's W x = the exact sum (in double)
 * with the weights' values wf, and every path gives the scalar bits. */
static void check_exact(const char *tn, const sx_weight *W, const float *wf, const float *x,
                        int64_t N, int64_t K, int64_t M) {
    float *ref = malloc(sizeof(float) * M * N), *got = malloc(sizeof(float) * M * N);
    for (int64_t m = 1; m <= M; m++) {
        sx_simd_set(SX_SIMD_SCALAR);
        CHECK_OK(sx_matmul(ref, x, W, NULL, m));
        double worst = 0;
        for (int64_t r = 0; r < m; r++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++) s += (double)x[r * K + k] * wf[n * K + k];
                worst = fmax(worst, fabs(s - ref[r * N + n]));
            }
        CHECKF(worst == 0, "%s scalar: off the exact integer by %g", tn, worst);
        FOR_PATHS({
            CHECK_OK(sx_matmul(got, x, W, NULL, m));
            CHECKF(!memcmp(got, ref, sizeof(float) * m * N), "%s %s M=%lld: not bit-identical",
                   path, tn, (long long)m);
        })
    }
    free(ref), free(got);
}

/* With block scales of exactly 1 (weights: integers whose block maximum is
 * 127 for Q8_0, -8 for Q4_0; activations: integers with block maximum 127)
 * every product and sum is an exact integer: every path, bit-identical. */
static void test_gemv_integer_exact(void) {
    const int64_t N = 37, K = 1024, M = 3;
    float *w8 = malloc(sizeof(float) * N * K), *w4 = malloc(sizeof(float) * N * K);
    float *x = malloc(sizeof(float) * M * K), *u = malloc(sizeof(float) * N * K);
    sx_rand_uniform(u, N * K, 70, 0, 1);
    for (int64_t i = 0; i < N * K; i++) {
        w8[i] = i % 32 == 5 ? 127.0f : floorf(u[i] * 255.0f) - 127.0f;
        w4[i] = i % 32 == 9 ? -8.0f : floorf(u[i] * 16.0f) - 8.0f;
    }
    sx_rand_uniform(u, M * K, 71, 0, 1);
    for (int64_t i = 0; i < M * K; i++)
        x[i] = i % 32 == 3 ? 127.0f : floorf(u[i] * 255.0f) - 127.0f;
    for (int i = 0; i < 2; i++) {
        int ty = qtypes[i];
        void *q = malloc(sx_type_nbytes(ty, N * K));
        CHECK_OK(sx_quantize(ty, q, i ? w4 : w8, N * K));
        sx_weight W = sx_weight_typed(q, ty, N, K);
        check_exact(sx_type_name(ty), &W, i ? w4 : w8, x, N, K, M);
        free(q);
    }
    free(w8), free(w4), free(x), free(u);
}

/* Q4_K the same way, with blocks written by hand: d = dmin = 1, sub-block
 * scales and mins 0..15 (so weights sc * q - m are integers), activations
 * integers with |x| <= 127 and a -127 in every super-block (Q8_K scale
 * exactly +-1). Every partial sum stays below 2^24: exact on every path. */
static void test_gemv_integer_exact_q4_k(void) {
    const int64_t N = 37, K = 1024, M = 3, nb = K / SX_QKK;
    uint8_t *q = malloc(SX_Q4_K_BYTES * N * nb);
    float *wf = malloc(sizeof(float) * N * K), *x = malloc(sizeof(float) * M * K);
    float *u = malloc(sizeof(float) * (N * K + 16 * N * nb));
    sx_rand_uniform(u, N * K + 16 * N * nb, 72, 0, 1);
    for (int64_t bi = 0; bi < N * nb; bi++) {
        uint8_t *blk = q + bi * SX_Q4_K_BYTES;
        int sc[8], mn[8];
        for (int j = 0; j < 8; j++) {
            sc[j] = (int)(u[N * K + 16 * bi + j] * 16.0f);
            mn[j] = (int)(u[N * K + 16 * bi + 8 + j] * 16.0f);
        }
        blk[0] = 0x00, blk[1] = 0x3c, blk[2] = 0x00, blk[3] = 0x3c; /* f16 1.0 twice */
        for (int j = 0; j < 4; j++) { /* 6-bit fields < 16: no high bits to spread */
            blk[4 + j] = (uint8_t)sc[j];
            blk[8 + j] = (uint8_t)mn[j];
            blk[12 + j] = (uint8_t)(sc[4 + j] | mn[4 + j] << 4);
        }
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                const float *ur = u + bi * SX_QKK + 64 * c;
                int lo = (int)(ur[l] * 16.0f), hi = (int)(ur[32 + l] * 16.0f);
                blk[16 + 32 * c + l] = (uint8_t)(lo | hi << 4);
                float *wr = wf + bi * SX_QKK + 64 * c;
                wr[l] = (float)(sc[2 * c] * lo - mn[2 * c]);
                wr[32 + l] = (float)(sc[2 * c + 1] * hi - mn[2 * c + 1]);
            }
    }
    sx_rand_uniform(u, M * K, 73, 0, 1);
    for (int64_t i = 0; i < M * K; i++)
        x[i] = i % SX_QKK == 77 ? -127.0f : floorf(u[i] * 255.0f) - 127.0f;
    sx_weight W = sx_weight_typed(q, SX_Q4_K, N, K);
    check_exact("Q4_K", &W, wf, x, N, K, M);
    free(q), free(wf), free(x), free(u);
}

/* 1 and 2 threads: the same bytes (GEMV and GEMM) */
static void test_threads(void) {
    const int64_t N = 300, K = 768, M = 20;
    float *w = malloc(sizeof(float) * N * K), *x = malloc(sizeof(float) * M * K);
    float *a = malloc(sizeof(float) * M * N), *b = malloc(sizeof(float) * M * N);
    sx_rand_uniform(w, N * K, 80, -0.1f, 0.1f);
    sx_rand_uniform(x, M * K, 81, -1, 1);
    int nt = sx_threads_count();
    for (int i = 0; i < 3; i++) {
        void *q = malloc(sx_type_nbytes(qtypes[i], N * K));
        sx_quantize(qtypes[i], q, w, N * K);
        sx_weight W = sx_weight_typed(q, qtypes[i], N, K);
        for (int64_t m = 1; m <= M; m += 19) {
            sx_threads_init(1);
            CHECK_OK(sx_matmul(a, x, &W, NULL, m));
            sx_threads_init(2);
            CHECK_OK(sx_matmul(b, x, &W, NULL, m));
            CHECKF(!memcmp(a, b, sizeof(float) * m * N), "%s M=%lld differs across threads",
                   sx_type_name(qtypes[i]), (long long)m);
        }
        free(q);
    }
    sx_threads_init(nt);
    free(w), free(x), free(a), free(b);
}

/* ---- the int8 GEMM (quant.h; quantized weights, many rows, BF16 compute) ----
 * Its outputs computed here from the stored blocks, independently of the
 * panels: X quantized to Q8_0, then per output and block of 32 in k order
 * acc = fmaf((float)isum, ws * da, acc) (Q4_K: then fmaf(-ml, da * sum of
 * the activation codes, acc)), + bias. The scalar reference and (with VNNI)
 * the AVX-512 kernels must give these bits for any thread count; and all of
 * them stay near the float32 product. */
static void i8_expected(int type, const uint8_t *w, const float *x, int64_t M, int64_t N, int64_t K,
                        const float *bias, float *y) {
    int64_t nb = K / 32;
    size_t rb = sx_type_nbytes(type, K), xb = sx_type_nbytes(SX_Q8_0, K);
    uint8_t *xq = malloc(xb);
    for (int64_t m = 0; m < M; m++) {
        sx_quantize(SX_Q8_0, xq, x + m * K, K);
        for (int64_t n = 0; n < N; n++) {
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *ab = xq + (size_t)b * SX_Q8_0_BYTES, *wb;
                float ws, ml = 0.0f;
                int32_t isum = 0, sa = 0;
                uint16_t h;
                if (type == SX_Q4_K) {
                    wb = w + (size_t)n * rb + (size_t)(b / 8) * SX_Q4_K_BYTES;
                    int j = (int)(b % 8), sc, mn;
                    sx_q4_k_scale_min(wb + 4, j, &sc, &mn);
                    memcpy(&h, wb, 2);
                    ws = sx_f16_to_f32(h) * (float)sc;
                    memcpy(&h, wb + 2, 2);
                    ml = sx_f16_to_f32(h) * (float)mn;
                } else {
                    wb = w + (size_t)n * rb + (size_t)b * sx_type_nbytes(type, 32);
                    memcpy(&h, wb, 2);
                    ws = sx_f16_to_f32(h);
                }
                for (int k = 0; k < 32; k++) {
                    int q;
                    if (type == SX_Q8_0)
                        q = (int8_t)wb[2 + k];
                    else if (type == SX_Q4_0)
                        q = (k < 16 ? wb[2 + k] & 15 : wb[2 + k - 16] >> 4) - 8;
                    else
                        q = (b % 2 ? wb[16 + 32 * (b % 8 / 2) + k] >> 4
                                   : wb[16 + 32 * (b % 8 / 2) + k] & 15);
                    isum += q * (int8_t)ab[2 + k];
                    sa += (int8_t)ab[2 + k];
                }
                memcpy(&h, ab, 2);
                float da = sx_f16_to_f32(h);
                acc = fmaf((float)isum, ws * da, acc);
                if (type == SX_Q4_K) acc = fmaf(-ml, da * (float)sa, acc);
            }
            y[m * N + n] = acc + bias[n];
        }
    }
    free(xq);
}

static void test_i8gemm(void) {
    /* K: one or several slices of 64 blocks (Q4_K: whole super-blocks) */
    const int64_t shapes[][3] = {{7, 40, 64}, {13, 130, 2368}, {25, 16, 32}, {6, 33, 96}};
    const int64_t shapes_k[][3] = {{7, 40, 256}, {13, 130, 2304}, {25, 16, 512}, {6, 33, 768}};
    int simd = sx_simd_vec_level() == SX_SIMD_AVX512 && sx_simd_vnni();
    int nt = sx_threads_count();
    sx_epilogue ep = {.compute = SX_COMPUTE_BF16};
    sx_epilogue epa = {.compute = SX_COMPUTE_BF16, .act = SX_ACT_GELU, .accumulate = 1};
    CHECK_OK(sx_set_quant_rows_max(0)); /* every M through the GEMM */
    for (int t = 0; t < 3; t++) {
        int type = qtypes[t];
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int64_t *sh = type == SX_Q4_K ? shapes_k[s] : shapes[s];
            int64_t M = sh[0], N = sh[1], K = sh[2];
            float *wf = malloc(sizeof(float) * N * K), *x = malloc(sizeof(float) * M * K);
            float *bias = malloc(sizeof(float) * N), *exp_ = malloc(sizeof(float) * M * N);
            float *ref = malloc(sizeof(float) * M * N), *got = malloc(sizeof(float) * M * N);
            float *f32 = malloc(sizeof(float) * M * N), *y0 = malloc(sizeof(float) * M * N);
            uint8_t *w = malloc(sx_type_nbytes(type, N * K));
            sx_rand_uniform(wf, N * K, 90 + (uint64_t)s, -0.5f, 0.5f);
            for (int64_t i = 0; i < N * K; i += 97) wf[i] *= 8.0f; /* outliers */
            sx_rand_uniform(x, M * K, 95 + (uint64_t)s, -1.0f, 1.0f);
            sx_rand_uniform(bias, N, 99, -1.0f, 1.0f);
            sx_rand_uniform(y0, M * N, 98, -1.0f, 1.0f);
            sx_quantize(type, w, wf, N * K);
            sx_dequantize(type, wf, w, N * K);
            sx_weight W = sx_weight_typed(w, type, N, K);
            sx_weight Wf = sx_weight_f32(wf, N, K);
            ep.bias = bias;
            i8_expected(type, w, x, M, N, K, bias, exp_);
            const char *tn = sx_type_name(type);
            /* the scalar reference, then the path's kernels with 1 and 2 threads */
            CHECK_OK(sx_set_i8gemm(2));
            CHECK_OK(sx_matmul_ep(ref, N, x, K, &W, &ep, M));
            CHECKF(!memcmp(ref, exp_, sizeof(float) * M * N), "%s %lldx%lldx%lld: scalar int8 GEMM",
                   tn, (long long)M, (long long)N, (long long)K);
            CHECK_OK(sx_set_i8gemm(1));
            for (int th = 1; th <= 2; th++) {
                sx_threads_init(th);
                memset(got, 0, sizeof(float) * M * N);
                CHECK_OK(sx_matmul_ep(got, N, x, K, &W, &ep, M));
                if (simd)
                    CHECKF(!memcmp(got, exp_, sizeof(float) * M * N),
                           "%s %lldx%lldx%lld, %d threads: AVX-512 int8 GEMM", tn, (long long)M,
                           (long long)N, (long long)K, th);
            }
            /* an accumulating GELU epilogue: the same sums, finished as the float GEMM does */
            epa.bias = bias;
            memcpy(ref, y0, sizeof(float) * M * N);
            memcpy(got, y0, sizeof(float) * M * N);
            sx_gemm_epilogue(ref, N, exp_, N, M, N, NULL, SX_ACT_GELU, 1);
            CHECK_OK(sx_matmul_ep(got, N, x, K, &W, &epa, M));
            if (simd)
                CHECKF(!memcmp(got, ref, sizeof(float) * M * N), "%s %lldx%lldx%lld: epilogue", tn,
                       (long long)M, (long long)N, (long long)K);
            /* near the float32 product of the dequantized weights */
            sx_epilogue e32 = {.bias = bias, .compute = SX_COMPUTE_F32};
            CHECK_OK(sx_matmul_ep(f32, N, x, K, &Wf, &e32, M));
            double mx = 0, ss = 0;
            for (int64_t i = 0; i < M * N; i++) {
                mx = fmax(mx, fabs((double)exp_[i] - f32[i]));
                ss += (double)f32[i] * f32[i];
            }
            double rms = sqrt(ss / (double)(M * N));
            CHECKF(mx > 0 && mx < 0.03 * rms, "%s %lldx%lldx%lld: max error %.3g, rms %.3g", tn,
                   (long long)M, (long long)N, (long long)K, mx, rms);
            if (s == 1)
                printf(
                    "    %s int8 GEMM %lldx%lldx%lld: max |error| vs float32 %.3g (rms %.3g)%s\n",
                    tn, (long long)M, (long long)N, (long long)K, mx, rms,
                    simd ? "; AVX-512 VNNI = scalar, 1 and 2 threads" : "");
            free(wf), free(x), free(bias), free(exp_), free(ref), free(got), free(f32), free(y0),
                free(w);
        }
    }
    sx_threads_init(nt);
    sx_set_quant_rows_max(-1);
    /* the panels alone: the path's packer = the scalar one, from any block
     * (Q4_K: mid super-block too) and with fewer than 16 rows */
    for (int t = 0; t < 3 && simd; t++) {
        const sx_wtype *wt = sx_wtype_of(qtypes[t]);
        sx_i8pack_fn simd_pack = sx_wtype_kernels_of(wt).i8pack;
        const int64_t K = 1024, nblk = 9;
        float *wf = malloc(sizeof(float) * 16 * K);
        uint8_t *w = malloc(sx_type_nbytes(wt->type, 16 * K));
        uint8_t *pa = aligned_alloc(64, nblk * SX_I8_PANEL_BYTES);
        uint8_t *pb = aligned_alloc(64, nblk * SX_I8_PANEL_BYTES);
        sx_rand_uniform(wf, 16 * K, 97, -1.0f, 1.0f);
        sx_quantize(wt->type, w, wf, 16 * K);
        const void *rows[16];
        for (int n = 0; n < 16; n++) rows[n] = w + (size_t)n * sx_type_nbytes(wt->type, K);
        for (int nr = 16; nr >= 5; nr -= 11)
            for (int64_t b0 = 0; b0 <= 3; b0 += 3) {
                memset(pa, 0xa5, nblk * SX_I8_PANEL_BYTES);
                memset(pb, 0x5a, nblk * SX_I8_PANEL_BYTES);
                wt->k[SX_SIMD_SCALAR].i8pack(pa, rows, nr, b0, nblk);
                simd_pack(pb, rows, nr, b0, nblk);
                CHECKF(!memcmp(pa, pb, nblk * SX_I8_PANEL_BYTES),
                       "%s panels, %d rows from block %lld", wt->name, nr, (long long)b0);
            }
        free(wf), free(w), free(pa), free(pb);
    }
}

/* ---- tiny Llama: converter bytes, error against F32 ---- */
typedef struct {
    double max_rel, kl_mean, kl_max;
    int top1, greedy_same;
} llm_err;

static void softmax_d(const float *l, int64_t n, double *p) {
    double mx = l[0], s = 0;
    for (int64_t i = 1; i < n; i++) mx = fmax(mx, l[i]);
    for (int64_t i = 0; i < n; i++) s += (p[i] = exp((double)l[i] - mx));
    for (int64_t i = 0; i < n; i++) p[i] /= s;
}

static int64_t argmax(const float *l, int64_t n) {
    int64_t b = 0;
    for (int64_t i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

/* logits of the 40 predictions after prompt + gen (teacher forcing), and the
 * model's own greedy ids */
static int run_tiny(sx_llama *m, const int32_t *seq, int64_t P, int64_t S, float *lg,
                    int32_t *greedy) {
    int64_t V = m->cfg.vocab, T = P + S;
    float *all = malloc(sizeof(float) * T * V), *emb = malloc(sizeof(float) * T * m->cfg.hidden);
    sx_llama_ctx *c = NULL;
    int rc = sx_llama_ctx_new(m, T + 8, SX_F32, &c) || sx_llama_embed(m, seq, T, emb) ||
             sx_llama_forward_embeds(c, emb, T, SX_LLAMA_LOGITS_ALL, all, NULL);
    if (!rc) {
        memcpy(lg, all + (P - 1) * V, sizeof(float) * S * V);
        sx_llama_ctx_reset(c);
        sx_llama_gen opt;
        sx_llama_gen_defaults(m, &opt);
        opt.max_new_tokens = S;
        opt.eos_id = -1;
        int64_t n = 0;
        rc = sx_llama_generate(c, emb, seq, P, &opt, greedy, &n, NULL) || n != S;
    }
    sx_llama_ctx_free(c);
    free(all), free(emb);
    return rc;
}

static void test_tiny_llama(void) {
    sx_gguf *e = open_fx(FX "tiny_llama_expected.gguf");
    if (!e) {
        CHECK(0);
        return;
    }
    int et;
    uint64_t np, ng;
    sx_meta_arr(e, "llm.prompt_ids", &et, &np);
    sx_meta_arr(e, "llm.gen_ids", &et, &ng);
    const int64_t P = (int64_t)np, S = (int64_t)ng, V = 512;
    const float *ref_lg = sx_get_f32(e, "logits", SX_SHAPE(S, V));
    int32_t *seq = malloc(sizeof(int32_t) * (P + S)), *greedy = malloc(sizeof(int32_t) * S);
    for (int64_t i = 0; i < P + S; i++) {
        int64_t v = 0;
        sx_meta_arr_int(e, i < P ? "llm.prompt_ids" : "llm.gen_ids", (uint64_t)(i < P ? i : i - P),
                        &v);
        seq[i] = (int32_t)v;
    }
    float *lf = malloc(sizeof(float) * S * V), *lq = malloc(sizeof(float) * S * V);
    double *pf = malloc(sizeof(double) * V), *pq = malloc(sizeof(double) * V);
    /* F32 reference: the BF16 file computed in float32 (lossless weights) */
    sx_llama *m = NULL;
    CHECK_OK(sx_llama_load(FX "tiny_llama.gguf", &m));
    if (!m || !ref_lg) {
        CHECK(0);
        sx_gguf_close(e);
        return;
    }
    CHECK_OK(run_tiny(m, seq, P, S, lf, greedy));
    CHECK_CLOSE("F32 logits vs PyTorch", lf, ref_lg, S * V, 1e-5);
    int same = 0;
    for (int64_t s = 0; s < S; s++) same += greedy[s] == seq[P + s];
    CHECKF(same == S, "F32 greedy ids: %d of %lld equal PyTorch's", same, (long long)S);
    sx_llama_free(m);
    /* per type: run-time quantization = converter bytes; error vs F32 */
    /* bounds: the measured values (README) with room for the SIMD paths'
     * summation orders. This random model has peaked next-token
     * distributions (logits up to 35) and 4-bit weights move them a lot; the
     * order Q8_0 < Q4_K < Q4_0 is asserted too. The 50-row forward runs the
     * integer kernels (activations quantized to Q8_0, as decode does): Q8_0's
     * KL mean 3.4e-3 with float activations became 7.5e-3. */
    const double max_rel_tol[3] = {0.03, 0.45, 0.38}, kl_tol[3] = {1.2e-2, 1.1, 0.55};
    const int top1_min[3] = {38, 24, 28};
    double kl_of[3] = {0};
    const char *tn[3] = {"q8_0", "q4_0", "q4_k"};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(sx_set_weight_dtype(qtypes[i]));
        int rc = sx_llama_load(FX "tiny_llama.gguf", &m);
        sx_set_weight_dtype(-1);
        CHECK_OK(rc);
        if (rc) continue;
        char key[64];
        uint64_t nt;
        snprintf(key, sizeof key, "%s.names", tn[i]);
        sx_meta_arr(e, key, &et, &nt);
        int bad = 0;
        for (uint64_t k = 0; k < nt; k++) {
            const char *s;
            size_t len;
            int64_t type, hash;
            snprintf(key, sizeof key, "%s.names", tn[i]);
            sx_meta_arr_str(e, key, k, &s, &len);
            snprintf(key, sizeof key, "%s.types", tn[i]);
            sx_meta_arr_int(e, key, k, &type);
            snprintf(key, sizeof key, "%s.hashes", tn[i]);
            sx_meta_arr_int(e, key, k, &hash);
            char name[160];
            snprintf(name, sizeof name, "%.*s", (int)len, s);
            const sx_tensor *t = sx_gguf_find(m->g, name);
            const void *d = !t                ? NULL
                            : type == t->type ? t->data
                                              : sx_gguf_tensor_as(m->g, t, (int)type);
            if (!d || sxhash(d, sx_type_nbytes((int)type, t->nelem)) != (uint64_t)hash) {
                bad++;
                fprintf(stderr, "  %s: %s (%s) differs from the converter's\n", tn[i], name,
                        sx_type_name((int)type));
            }
        }
        CHECKF(bad == 0 && nt == 21, "%s: %d of %llu tensors differ from the converter", tn[i], bad,
               (unsigned long long)nt);
        CHECK(m->layers[0].wq.type == qtypes[i] && m->lm_head.type == SX_Q8_0 &&
              m->tok_embd.type == qtypes[i]);
        CHECK_OK(run_tiny(m, seq, P, S, lq, greedy));
        llm_err er = {0};
        t_err te = t_compare(lq, lf, S * V);
        er.max_rel = te.max_rel;
        for (int64_t s = 0; s < S; s++) {
            er.top1 += argmax(lq + s * V, V) == argmax(lf + s * V, V);
            softmax_d(lf + s * V, V, pf);
            softmax_d(lq + s * V, V, pq);
            double kl = 0;
            for (int64_t v = 0; v < V; v++) kl += pf[v] * log(pf[v] / pq[v]);
            er.kl_mean += kl / (double)S;
            er.kl_max = fmax(er.kl_max, kl);
        }
        while (er.greedy_same < S && greedy[er.greedy_same] == seq[P + er.greedy_same])
            er.greedy_same++;
        printf("    tiny llama %s: logits max-rel %.3g, top-1 agreement %d/%lld, KL mean %.3g max "
               "%.3g, "
               "free-running greedy equal for %d/%lld steps\n",
               sx_type_name(qtypes[i]), er.max_rel, er.top1, (long long)S, er.kl_mean, er.kl_max,
               er.greedy_same, (long long)S);
        CHECKF(er.max_rel <= max_rel_tol[i] && er.kl_mean <= kl_tol[i] && er.top1 >= top1_min[i],
               "%s: error past its bounds", tn[i]);
        kl_of[i] = er.kl_mean;
        sx_llama_free(m);
    }
    CHECKF(kl_of[0] < kl_of[2] && kl_of[2] < kl_of[1], "KL: Q8_0 %.3g, Q4_K %.3g, Q4_0 %.3g",
           kl_of[0], kl_of[2], kl_of[1]);
    free(seq), free(greedy), free(lf), free(lq), free(pf), free(pq);
    sx_gguf_close(e);
}

/* ---- BF16 compute (ops.h) with quantized weights: they stay quantized and
 * unpacked (decode runs the integer GEMV, the 50-token forward the BF16
 * GEMM on per-call dequantized panels); logits near F32 compute's ---- */
static void test_bf16_compute(void) {
    const int64_t P = 10, S = 40, V = 512;
    int32_t seq[50], g32[40], gbf[40];
    for (int64_t i = 0; i < P + S; i++) seq[i] = (int32_t)((i * 37 + 11) % V);
    float *l32 = malloc(sizeof(float) * S * V), *lbf = malloc(sizeof(float) * S * V);
    for (int i = 0; i < 3; i++) {
        sx_llama *m32 = NULL, *mbf = NULL;
        CHECK_OK(sx_set_weight_dtype(qtypes[i]));
        CHECK_OK(sx_llama_load(FX "tiny_llama.gguf", &m32));
        CHECK_OK(sx_set_compute(SX_COMPUTE_BF16));
        CHECK_OK(sx_llama_load(FX "tiny_llama.gguf", &mbf));
        sx_set_weight_dtype(-1);
        if (m32 && mbf) {
            CHECK(mbf->layers[0].wq.type == qtypes[i] && !mbf->layers[0].wq.packed &&
                  mbf->layers[1].up.type == qtypes[i] && !mbf->layers[1].up.packed &&
                  mbf->lm_head.type == SX_Q8_0 && !mbf->lm_head.packed);
            /* the 50-row products through the BF16 kernel (dequantized
             * tiles), then (Q8_0, Q4_0 where the path has it) the int8
             * GEMM, not the integer kernels the default rule picks */
            float *li8 = malloc(sizeof(float) * S * V);
            int32_t gi8[40];
            CHECK_OK(sx_set_quant_rows_max(2 * SX_GEMV_MAX_M));
            CHECK_OK(sx_set_i8gemm(0));
            CHECK_OK(run_tiny(mbf, seq, P, S, lbf, gbf));
            CHECK_OK(sx_set_i8gemm(1));
            CHECK_OK(run_tiny(mbf, seq, P, S, li8, gi8));
            sx_set_quant_rows_max(-1);
            sx_set_compute(SX_COMPUTE_F32);
            CHECK_OK(run_tiny(m32, seq, P, S, l32, g32));
            for (int v = 0; v < 2; v++) {
                t_err te = t_compare(v ? li8 : lbf, l32, S * V);
                int same = 0;
                while (same < S && (v ? gi8 : gbf)[same] == g32[same]) same++;
                printf("    %s: BF16 compute (%s) vs F32 compute logits max-rel %.3g; greedy ids "
                       "equal for %d/%lld steps\n",
                       sx_type_name(qtypes[i]), v ? "default: int8 GEMM if any" : "BF16 tiles",
                       te.max_rel, same, (long long)S);
                CHECKF(te.max_rel < 0.05 && te.max_rel > 0, "%s: BF16 compute logits max-rel %.3g",
                       sx_type_name(qtypes[i]), te.max_rel);
            }
            free(li8);
        }
        sx_set_compute(SX_COMPUTE_F32);
        sx_llama_free(m32);
        sx_llama_free(mbf);
    }
    free(l32), free(lbf);
}

/* ---- 13B-shaped layer: llama.cpp's rounding, error vs F32 ---- */
static void test_layer13b(void) {
    if (t_skip_emulated("the 13B-shaped layer")) return;
    sx_gguf *ref = open_fx(FX "layer13b_ref.gguf"),
            *ex = open_fx("tests/fixtures/llm/layer13b.gguf");
    if (!ref || !ex) {
        CHECK(0);
        sx_gguf_close(ref);
        sx_gguf_close(ex);
        return;
    }
    const int64_t D = 5120, F = 13824, T = 9;
    const int64_t shp[7][2] = {{D, D}, {D, D}, {D, D}, {D, D}, {F, D}, {F, D}, {D, F}};
    const char *names[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                            "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                            "mlp.down_proj"};
    float *w[7];
    for (int k = 0; k < 7;
         k++) { /* tests/test_llm.c's weights: U(-a, a), a = K^-1/2, BF16-rounded */
        int64_t N = shp[k][0], K = shp[k][1];
        float a = 1.0f / sqrtf((float)K);
        w[k] = malloc(sizeof(float) * N * K);
        sx_rand_uniform(w[k], N * K, 101 + (uint64_t)k, -a, a);
        for (int64_t i = 0; i < N * K; i++) w[k][i] = sx_bf16_to_f32(sx_f32_to_bf16(w[k][i]));
    }
    const float *ey = sx_get_f32(ex, "out", SX_SHAPE(T, D));
    float *n1 = malloc(sizeof(float) * D), *n2 = malloc(sizeof(float) * D);
    float *x = malloc(sizeof(float) * T * D), *y = malloc(sizeof(float) * T * D);
    sx_rand_uniform(n1, D, 108, 0.5f, 1.5f);
    sx_rand_uniform(n2, D, 109, 0.5f, 1.5f);
    sx_rand_uniform(x, T * D, 110, -1.0f, 1.0f);
    int64_t q4k_rows = meta_i(ref, "layer.q4_k_rows");
    /* measured (README): max-rel of the layer output 6.7e-3 (Q8_0), 6.6e-2 (Q4_0),
     * 5.6e-2 (Q4_K) against PyTorch's F32 */
    const double tol[3] = {1e-2, 9e-2, 7.5e-2};
    double out_err[3] = {0};
    for (int i = 0; i < 3 && ey; i++) {
        int ty = qtypes[i];
        const sx_wtype *t = sx_wtype_of(ty);
        void *q[7];
        int bad = 0;
        double rms_ours = 0, rms_ref = 0;
        for (int k = 0; k < 7; k++) {
            size_t nb = sx_type_nbytes(ty, shp[k][0] * shp[k][1]);
            q[k] = malloc(nb);
            CHECK_OK(sx_quantize_rows(ty, q[k], w[k], shp[k][0], shp[k][1]));
            /* bytes = llama.cpp's reference rounding (Q4_K: the first rows) */
            int64_t rows = ty == SX_Q4_K ? q4k_rows : shp[k][0];
            char key[96], tl[8];
            snprintf(tl, sizeof tl, "%s", ty == SX_Q8_0 ? "q8_0" : ty == SX_Q4_0 ? "q4_0" : "q4_k");
            snprintf(key, sizeof key, "%s.%s.hash", names[k], tl);
            uint64_t h = sxhash(q[k], sx_type_nbytes(ty, rows * shp[k][1]));
            bad += h != (uint64_t)meta_i(ref, key);
            /* weight RMS error of the same rows, ours and the reference's */
            float *deq = malloc(sizeof(float) * rows * shp[k][1]);
            sx_dequantize(ty, deq, q[k], rows * shp[k][1]);
            double s = 0;
            for (int64_t j = 0; j < rows * shp[k][1]; j++) {
                double d = (double)deq[j] - w[k][j];
                s += d * d;
            }
            free(deq);
            rms_ours = fmax(rms_ours, sqrt(s / (double)(rows * shp[k][1])));
            snprintf(key, sizeof key, "%s.%s.rms", names[k], tl);
            double r = 0;
            sx_meta_float(ref, key, &r);
            rms_ref = fmax(rms_ref, r);
        }
        CHECKF(bad == 0, "%s: %d of 7 matrices differ from llama.cpp's reference rounding", t->name,
               bad);
        sx_llama m;
        memset(&m, 0, sizeof m);
        m.cfg = (sx_llama_config){D, 1, 40, 40, 128, F, 1, 2048, 1e-5f, 10000.0f, 1, 2, 0};
        sx_llama_layer L = sx_llama_layer_wrap(&m.cfg, n1, n2, q, ty);
        m.layers = &L;
        sx_llama_ctx *c;
        CHECK_OK(sx_llama_ctx_new(&m, 16, SX_F32, &c));
        CHECK_OK(sx_llama_forward_embeds(c, x, 5, SX_LLAMA_LOGITS_NONE, NULL, y));
        CHECK_OK(sx_llama_forward_embeds(c, x + 5 * D, 4, SX_LLAMA_LOGITS_NONE, NULL, y + 5 * D));
        t_err er = t_compare(y, ey, T * D);
        /* the layer's own contribution (output minus the residual input) */
        double dmax = 0, cmax = 0;
        for (int64_t j = 0; j < T * D; j++) {
            dmax = fmax(dmax, fabs((double)y[j] - ey[j]));
            cmax = fmax(cmax, fabs((double)ey[j] - x[j]));
        }
        printf(
            "    13B layer %s: bytes = llama.cpp reference rounding%s; weight rms %.3g (reference "
            "%.3g); output max-rel %.3g, of the layer's update %.3g\n",
            t->name, ty == SX_Q4_K ? " (first 256 rows)" : "", rms_ours, rms_ref, er.max_rel,
            dmax / cmax);
        CHECKF(fabs(rms_ours - rms_ref) <= 1e-6 * rms_ref, "%s: weight rms %.6g vs reference %.6g",
               t->name, rms_ours, rms_ref);
        CHECKF(er.max_rel <= tol[i], "%s: layer output max-rel %.3g > %.3g", t->name, er.max_rel,
               tol[i]);
        out_err[i] = er.max_rel;
        sx_llama_ctx_free(c);
        for (int k = 0; k < 7; k++) free(q[k]);
    }
    CHECKF(out_err[0] < out_err[2] && out_err[2] < out_err[1],
           "layer error: Q8_0 %.3g, Q4_K %.3g, Q4_0 %.3g", out_err[0], out_err[2], out_err[1]);
    int64_t gd = meta_i(ref, "layer.gguf_py_q4_0_diff_blocks");
    printf(
        "    (gguf-py's own Q4_0 quantizer, which emulates an FMA build, differs in %lld blocks; "
        "its Q8_0 matches)\n",
        (long long)gd);
    for (int k = 0; k < 7; k++) free(w[k]);
    free(n1), free(n2), free(x), free(y);
    sx_gguf_close(ref);
    sx_gguf_close(ex);
}

/* ---- the tiny end-to-end SEED-X, converted with --dtype q8_0 / q4_0 ----
 * Comprehension (ViT -> agent -> LLM greedy) against PyTorch's float32
 * greedy ids (scripts/fixtures_seedx_quant.py). Q8_0 must give the same ids,
 * or flip only a near-tie: the first differing step's reference top1-top2
 * margin is printed and must be below 3% of the model's max |logit| (Q8_0
 * moves logits by up to 1.9% of it on the tiny Llama). Q4_0's changes are
 * reported. */
#define SQ "tests/fixtures/seedx_quant/"
static int cmp_quant(const char *dir, sx_gguf *e, int k, int *first_diff, double *margin,
                     double *scale) {
    sx_seedx *M = NULL;
    char key[64];
    const char *img;
    size_t len;
    snprintf(key, sizeof key, "cmp%d.image", k);
    if (sx_meta_str(e, key, &img, &len) || sx_seedx_open(dir, &M)) return -1;
    char p[256];
    snprintf(p, sizeof p, "tests/fixtures/seedx_e2e/%.*s", (int)len, img);
    sx_image im;
    memset(&im, 0, sizeof im);
    float *feats = NULL;
    int64_t rows = 0, np, ng;
    int tiles[1], et, rc = -1;
    uint64_t cnt;
    snprintf(key, sizeof key, "cmp%d.prompt_ids", k);
    sx_meta_arr(e, key, &et, &cnt);
    np = (int64_t)cnt;
    int *pids = malloc(sizeof(int) * np);
    for (int64_t i = 0; i < np; i++) {
        int64_t v;
        sx_meta_arr_int(e, key, (uint64_t)i, &v);
        pids[i] = (int)v;
    }
    sx_seedx_reply r;
    memset(&r, 0, sizeof r);
    if (!sx_image_load_rgb(p, &im) &&
        !sx_seedx_encode_images(M, &im, 1, NULL, &feats, &rows, tiles)) {
        sx_seedx_opts o;
        sx_seedx_opts_default(&o);
        snprintf(key, sizeof key, "cmp%d.gen_ids", k);
        sx_meta_arr(e, key, &et, &cnt);
        ng = (int64_t)cnt;
        o.max_new_tokens = ng;
        if (!sx_seedx_generate(M, pids, np, feats, rows, &o, &r)) {
            *first_diff = -1;
            for (int64_t i = 0; i < ng && *first_diff < 0; i++) {
                int64_t v;
                sx_meta_arr_int(e, key, (uint64_t)i, &v);
                if (i >= r.n_ids || r.ids[i] != v) *first_diff = (int)i;
            }
            *margin = 0;
            snprintf(key, sizeof key, "cmp%d.logit_absmax", k);
            sx_meta_float(e, key, scale);
            if (*first_diff >= 0) {
                snprintf(key, sizeof key, "cmp%d.margins", k);
                sx_meta_arr_float(e, key, (uint64_t)*first_diff, margin);
            }
            rc = 0;
        }
        sx_seedx_reply_free(&r);
    }
    if (rc) fprintf(stderr, "  %s: %s\n", dir, sx_errmsg());
    free(pids), free(feats);
    sx_image_free(&im);
    sx_seedx_free(M);
    return rc;
}

static void test_seedx_comprehension(void) {
    sx_gguf *e = open_fx(SQ "expected.gguf");
    if (!e) {
        CHECK(0);
        return;
    }
    /* model_q4_0 holds llm and vit; the rest comes from model_q8_0 */
    char dir[256], cmd[1024];
    snprintf(dir, sizeof dir, "%s/seedx_q4_0_XXXXXX", t_build());
    CHECK(mkdtemp(dir) != NULL);
    const char *files[4][2] = {{"tokenizer.gguf", "model_q8_0"},
                               {"agent.gguf", "model_q8_0"},
                               {"llm.gguf", "model_q4_0"},
                               {"vit.gguf", "model_q4_0"}};
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "ln -s \"$PWD/" SQ "%s/%s\" %s/%s", files[i][1], files[i][0], dir,
                 files[i][0]);
        CHECK(system(cmd) == 0);
    }
    for (int k = 0; k < 2; k++) {
        int d8 = -2, d4 = -2;
        double m8 = 0, m4 = 0, sc = 0;
        CHECK_OK(cmp_quant(SQ "model_q8_0", e, k, &d8, &m8, &sc));
        CHECK_OK(cmp_quant(dir, e, k, &d4, &m4, &sc));
        printf("    comprehension %d: Q8_0 %s", k,
               d8 < 0 ? "= F32 greedy ids" : "differs from F32 at step");
        if (d8 >= 0) printf(" %d (reference margin %.3g)", d8, m8);
        printf("; Q4_0 %s", d4 < 0 ? "= F32 greedy ids" : "differs from F32 at step");
        if (d4 >= 0) printf(" %d (reference margin %.3g)", d4, m4);
        printf(" (max |logit| %.3g)\n", sc);
        CHECKF(d8 < 0 || m8 < 0.03 * sc, "Q8_0 flips step %d whose reference margin is %.3g", d8,
               m8);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    sx_gguf_close(e);
}

/* ---- bad containers: refused, naming the tensor ---- */
static void test_bad_files(void) {
    const char *files[4][2] = {{"bad_q8_0_short.gguf", "blk.short.weight"},
                               {"bad_q4_0_row.gguf", "blk.row40.weight"},
                               {"bad_q4_k_row.gguf", "blk.row32.weight"},
                               {"bad_type.gguf", "blk.q5k.weight"}};
    for (int i = 0; i < 4; i++) {
        char p[128];
        snprintf(p, sizeof p, FX "%s", files[i][0]);
        sx_gguf *g = NULL;
        int rc = sx_gguf_open(p, &g);
        CHECKF(rc != 0 && strstr(sx_errmsg(), files[i][1]), "%s: %s", files[i][0],
               rc ? sx_errmsg() : "opened");
        if (rc) printf("    %s: %s\n", files[i][0], sx_errmsg());
        sx_gguf_close(g);
    }
    /* run-time conversion of rows that do not split into blocks: refused */
    sx_gguf *g = open_fx("tests/fixtures/llm/tiny_gqa_f32.gguf");
    if (!g) {
        CHECK(0);
        return;
    }
    const sx_tensor *t = sx_gguf_find(g, "model.layers.0.mlp.down_proj.weight"); /* rows of 172 */
    CHECK(t && !sx_gguf_tensor_as(g, t, SX_Q8_0) && strstr(sx_errmsg(), "down_proj"));
    sx_gguf_close(g);
}

/* ---- the CLI: inspect's types and bits per weight, --dtype at load ---- */
static void test_cli(void) {
    char cmd[2048], out[200];
    snprintf(out, sizeof out, "%.150s/quant_cli.txt", t_build());
    snprintf(cmd, sizeof cmd,
             "./seedx inspect " SQ "model_q8_0/llm.gguf > %s 2>&1 && grep -q "
             "'bits per weight' %s && grep -q 'Q8_0 .*(8.50 bits per weight)' %s && grep -q "
             "'Q8_0   \\[32330,32\\]' %s",
             out, out, out, out);
    CHECKF(system(cmd) == 0, "seedx inspect: types / bits per weight missing (%s)", out);
    snprintf(cmd, sizeof cmd,
             "./seedx lm -m " SQ "model_q8_0 -p 'hello world' -n 3 --dtype q4_0 > %s 2>&1", out);
    CHECKF(system(cmd) == 0, "seedx lm --dtype q4_0 failed (%s)", out);
    snprintf(cmd, sizeof cmd,
             "./seedx chat -m " SQ "model_q8_0 -p x --dtype q5_k > %s 2>&1; "
             "grep -q \"wants one of f32|f16|bf16|q8_0|q4_0|q4_k, got 'q5_k'\" %s",
             out, out);
    CHECKF(system(cmd) == 0, "seedx chat --dtype q5_k: no clear error (%s)", out);
}

int main(void) {
    TEST_INIT();
    for (int l = 0; l < SX_SIMD_N; l++)
        if (sx_simd_supported(l)) levels[n_levels++] = l;
    printf("simd levels:");
    for (int l = 0; l < n_levels; l++) printf(" %s", sx_simd_name(levels[l]));
    printf("%s\n", sx_simd_vnni() ? " (+vnni)" : "");
    RUN(test_rows_roundtrip);
    RUN(test_policy);
    RUN(test_gemv_paths);
    RUN(test_gemv_integer_exact);
    RUN(test_gemv_integer_exact_q4_k);
    RUN(test_rows_paths);
    RUN(test_threads);
    RUN(test_i8gemm);
    RUN(test_tiny_llama);
    RUN(test_bf16_compute);
    RUN(test_seedx_comprehension);
    RUN(test_layer13b);
    RUN(test_bad_files);
    RUN(test_cli);
    return TEST_DONE();
}
