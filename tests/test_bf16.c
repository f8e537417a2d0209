/* tests/test_bf16.c - the BF16 compute type (sx_set_compute(SX_COMPUTE_BF16)):
 *   - every BF16 kernel the CPU can run (scalar, AVX2 and AVX-512 on float32
 *     FMAs, AVX512_BF16, AMX), plus the AMX kernel with its tile instructions
 *     emulated in C, against an independent reference written here: inputs
 *     rounded to bfloat16, float32 sums in the contract's order. Bit for bit,
 *     except AMX (its own order inside a 32-k step): within
 *     2 K 2^-24 sum_k |a_k b_k| of the reference, the bound of two float32
 *     summation orders of the same K exact products;
 *   - shape edges (M = 1..17, 31, 33, N and K not multiples of the tiles,
 *     K odd, several K slices), strided X and Y, transposed weights, every
 *     storage type of the type table (quantized ones dequantized), the fused
 *     epilogue, packed (at load, in a container) and per-call packed
 *     weights, row views of a packed weight, and identical bytes for 1 and 2
 *     threads. */
#include "ops_impl.h"
#include "test.h"

/* bfloat16 rounding of a float (round to nearest even), as a float */
static float rb(float x) { return sx_bf16_to_f32(sx_f32_to_bf16(x)); }

/* the reference: y[m][n] = epilogue(sum over k pairs j of x.w at 2j+1, then
 * at 2j), inputs rounded to bfloat16, under DAZ|FTZ; the activation by the
 * current path's sx_gelu/sx_silu (the separate ops the epilogue matches) */
static void ref_gemm(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w, int64_t M,
                     int64_t N, int64_t K, const sx_epilogue *ep, float *absdot) {
    unsigned csr = sx_flush_denormals_begin();
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            volatile float s = 0.0f;
            double ad = 0;
            for (int64_t k = 0; k < K; k += 2) {
                if (k + 1 < K) {
                    float p = rb(x[m * ldx + k + 1]) * rb(w[n * K + k + 1]);
                    s = s + p;
                    ad += fabs((double)p);
                }
                float p = rb(x[m * ldx + k]) * rb(w[n * K + k]);
                s = s + p;
                ad += fabs((double)p);
            }
            float t = s;
            if (ep->bias) t += ep->bias[n];
            if (ep->act == SX_ACT_GELU) sx_gelu(&t, &t, 1); /* the current path's activations */
            if (ep->act == SX_ACT_SILU) sx_silu(&t, &t, 1);
            y[m * ldy + n] = ep->accumulate ? y[m * ldy + n] + t : t;
            if (absdot) absdot[m * N + n] = (float)ad;
        }
    sx_flush_denormals_end(csr);
}

/* every BF16 kernel this CPU runs, and the emulated AMX one */
static const sx_bf16_kernels *kern[8];
static int n_kern, kern_level[8];

static void find_kernels(void) {
    int levels[] = {SX_SIMD_SCALAR, SX_SIMD_AVX2, SX_SIMD_AVX512, SX_SIMD_AMX, SX_SIMD_NEON};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        if (!sx_simd_supported(levels[i])) continue;
        sx_simd_set(levels[i]);
        kern_level[n_kern] = levels[i];
        kern[n_kern++] = sx_bf16_kernels_cur();
    }
#if defined(__x86_64__)
    /* the AVX-512 FMA kernel, for AVX-512 CPUs without AVX512_BF16 */
    if (sx_simd_supported(SX_SIMD_AVX512) && sx_simd_has_avx512bf16()) {
        kern_level[n_kern] = SX_SIMD_AVX512;
        kern[n_kern++] = &sx_bf16_kernels_avx512;
    }
#endif
    kern_level[n_kern] = SX_SIMD_SCALAR;
    kern[n_kern++] = &sx_bf16_kernels_amx_emulated;
    sx_simd_init();
}

static void use_kernel(int i) {
    sx_simd_set(kern_level[i]);
    sx_bf16_kernels_override(kern[i]);
}

static void use_default(void) {
    sx_simd_init();
    sx_bf16_kernels_override(NULL);
}

static int exact_kernel(const sx_bf16_kernels *k) { return k->a_layout != SX_BF16_A_ROWS; }

/* got vs the reference: bit for bit, or (AMX) within the bound; counts
 * the outputs off the reference's bits. */
static int64_t check_out(const char *what, const sx_bf16_kernels *k, const float *got, int64_t ldg,
                         const float *ref, int64_t ldr, const float *absdot, int64_t M, int64_t N,
                         int64_t K) {
    int64_t off = 0, bad = 0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            float g = got[m * ldg + n], r = ref[m * ldr + n];
            if (!memcmp(&g, &r, sizeof g)) continue;
            off++;
            double bound = 2.0 * (double)K * ldexp(1, -24) * absdot[m * N + n] * 1.0001 + 1e-30;
            if (exact_kernel(k) || !(fabs((double)g - r) <= bound)) {
                if (bad++ < 3)
                    fprintf(stderr, "    %s [%lld,%lld]: got %.9g ref %.9g (bound %.3g)\n", what,
                            (long long)m, (long long)n, g, r, exact_kernel(k) ? 0.0 : bound);
            }
        }
    CHECKF(bad == 0, "%s (%s): %lld of %lld outputs off", what, k->name, (long long)bad,
           (long long)(M * N));
    return off;
}

/* random weights of a storage type, and their float32 values */
static void make_weight(int type, int64_t N, int64_t K, uint64_t seed, void **data, float *wf) {
    size_t bytes = sx_type_nbytes(type, N * K);
    *data = malloc(bytes ? bytes : 1);
    const sx_wtype *t = sx_wtype_of(type);
    if (!t->quantized) {
        sx_rand_uniform(wf, N * K, seed, -0.5f, 0.5f);
        if (type == SX_F32) memcpy(*data, wf, bytes);
        for (int64_t i = 0; i < N * K; i++) {
            if (type == SX_F16) ((uint16_t *)*data)[i] = sx_f32_to_f16(wf[i]);
            if (type == SX_BF16) ((uint16_t *)*data)[i] = sx_f32_to_bf16(wf[i]);
        }
    } else {
        /* bytes below 0x3c: every f16 scale field is finite and < 1 */
        float *u = malloc(sizeof(float) * bytes);
        sx_rand_uniform(u, (int64_t)bytes, seed, 0.0f, 60.0f);
        for (size_t i = 0; i < bytes; i++) ((uint8_t *)*data)[i] = (uint8_t)u[i];
        free(u);
    }
    sx_dequantize(type, wf, *data, N * K);
}

/* one case: every kernel, packed per call and (float types) packed once */
static void run_case(int64_t M, int64_t N, int64_t K, int type, int trans, int64_t ldx_extra,
                     int64_t ldy_extra, const sx_epilogue *ep0, int64_t *n_off) {
    int64_t ldx = K + ldx_extra, ldy = N + ldy_extra;
    float *x = malloc(sizeof(float) * (size_t)(M * ldx)), *wf = malloc(sizeof(float) * N * K);
    float *wt = malloc(sizeof(float) * N * K);
    float *ref = malloc(sizeof(float) * M * ldy), *got = malloc(sizeof(float) * M * ldy);
    float *y0 = malloc(sizeof(float) * M * ldy), *absdot = malloc(sizeof(float) * M * N);
    float *bias = malloc(sizeof(float) * N);
    void *wd;
    sx_rand_uniform(x, M * ldx, 11 + (uint64_t)(M * 7 + K), -2.0f, 2.0f);
    sx_rand_uniform(bias, N, 12, -1.0f, 1.0f);
    sx_rand_uniform(y0, M * ldy, 13, -1.0f, 1.0f);
    make_weight(type, N, K, 14 + (uint64_t)(N + K), &wd, wf);
    sx_weight w = sx_weight_f32(wf, N, K);
    w.type = type;
    w.data = wd;
    if (trans) { /* stored [K, N] */
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) wt[k * N + n] = wf[n * K + k];
        w = sx_weight_f32(wt, N, K);
        w.trans = 1;
        w.ld = N;
    }
    sx_epilogue ep = *ep0;
    if (ep.bias) ep.bias = bias;
    ep.compute = SX_COMPUTE_BF16;
    char what[160];
    for (int ki = 0; ki < n_kern; ki++) {
        use_kernel(ki);
        memcpy(ref, y0, sizeof(float) * M * ldy);
        ref_gemm(ref, ldy, x, ldx, wf, M, N, K, &ep, absdot);
        for (int packed = 0; packed < 2; packed++) {
            if (packed && sx_wtype_of(type)->quantized) continue;
            sx_weight wp = w;
            if (packed) {
                sx_set_compute(SX_COMPUTE_BF16);
                CHECK_OK(sx_weight_pack(&wp));
                sx_set_compute(SX_COMPUTE_F32);
            }
            memcpy(got, y0, sizeof(float) * M * ldy);
            snprintf(what, sizeof what, "%lldx%lldx%lld %s%s%s ld+%lld/%lld ep%d%d%d", (long long)M,
                     (long long)N, (long long)K, sx_type_name(type), trans ? " T" : "",
                     packed ? " packed" : "", (long long)ldx_extra, (long long)ldy_extra,
                     ep.bias != NULL, ep.act, ep.accumulate);
            CHECK_OK(sx_matmul_ep(got, ldy, x, ldx, &wp, &ep, M));
            if (!packed && M <= 2 * SX_GEMV_MAX_M && !trans) {
                /* few rows, weight not packed: the float32 GEMV (decode) */
                float *f32 = malloc(sizeof(float) * M * ldy);
                sx_epilogue e32 = ep;
                e32.compute = SX_COMPUTE_F32;
                memcpy(f32, y0, sizeof(float) * M * ldy);
                CHECK_OK(sx_matmul_ep(f32, ldy, x, ldx, &wp, &e32, M));
                CHECKF(!memcmp(got, f32, sizeof(float) * M * ldy), "%s: not the F32 GEMV", what);
                free(f32);
            } else {
                int64_t off = check_out(what, kern[ki], got, ldy, ref, ldy, absdot, M, N, K);
                if (!exact_kernel(kern[ki])) n_off[0] += off, n_off[1] += M * N;
            }
            /* the rest of each Y row is untouched */
            for (int64_t m = 0; m < M; m++)
                CHECKF(!memcmp(got + m * ldy + N, y0 + m * ldy + N, sizeof(float) * ldy_extra),
                       "%s: wrote past N", what);
            if (packed) sx_weight_unpack(&wp);
        }
    }
    use_default();
    free(x), free(wf), free(wt), free(ref), free(got), free(y0), free(absdot), free(bias), free(wd);
}

static int64_t amx_off[2];

static void test_shapes(void) {
    static const sx_epilogue plain;
    for (int64_t M = 1; M <= 17; M++) run_case(M, 33, 70, SX_F32, 0, 0, 0, &plain, amx_off);
    int64_t Ms[] = {31, 33, 64};
    int64_t Ns[] = {1, 16, 32, 47, 64, 100};
    int64_t Ks[] = {1, 2, 31, 32, 33, 63, 64, 65};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 6; b++)
            for (size_t c = 0; c < 8; c++) run_case(Ms[a], Ns[b], Ks[c], SX_F32, 0, 0, 0, &plain, amx_off);
    /* K over several slices of every kernel (kc <= 1024 pairs), odd */
    run_case(40, 70, 2345, SX_F32, 0, 0, 0, &plain, amx_off);
}

static void test_strides_trans_epilogue(void) {
    sx_epilogue ep = {.bias = (const float *)1, .act = SX_ACT_GELU, .accumulate = 1};
    sx_epilogue silu = {.bias = NULL, .act = SX_ACT_SILU, .accumulate = 0};
    static const sx_epilogue plain;
    run_case(21, 45, 77, SX_F32, 0, 5, 3, &plain, amx_off);
    run_case(3, 45, 77, SX_F32, 0, 5, 3, &ep, amx_off);
    run_case(37, 45, 77, SX_F32, 0, 1, 7, &ep, amx_off);
    run_case(37, 45, 77, SX_F16, 0, 0, 0, &silu, amx_off);
    run_case(9, 40, 66, SX_F32, 1, 2, 2, &plain, amx_off);
    run_case(19, 40, 66, SX_BF16, 1, 0, 0, &ep, amx_off);
}

/* every storage type of the table (M >= 9: quantized weights with few rows
 * take the integer GEMV instead) */
static void test_types(void) {
    static const sx_epilogue plain;
    for (int i = 0; sx_wtype_at(i); i++) {
        const sx_wtype *t = sx_wtype_at(i);
        if (!t->storage) continue;
        int64_t K = t->block > 64 ? 2 * t->block : 128;
        run_case(20, 35, K, t->type, 0, 3, 0, &plain, amx_off);
        if (!t->quantized) run_case(2, 35, K, t->type, 0, 0, 0, &plain, amx_off);
    }
    /* a weight packed per call by column tasks of 128 (ops_bf16.c), the
     * last task and its last panel partial */
    run_case(20, 2100, 256, SX_Q4_0, 0, 0, 0, &plain, amx_off);
    /* several K slices in a column task (kc <= 1024 pairs; Q4_K's slices
     * whole super-blocks), the sums carried from slice to slice in Y and in
     * the C block of an accumulating epilogue; transposed weights, odd K */
    sx_epilogue ep = {.bias = (const float *)1, .act = SX_ACT_GELU, .accumulate = 1};
    const int qt[3] = {SX_Q8_0, SX_Q4_0, SX_Q4_K};
    for (int i = 0; i < 3; i++) {
        run_case(20, 80, 2304, qt[i], 0, 3, 2, &plain, amx_off);
        run_case(20, 80, 2304, qt[i], 0, 0, 0, &ep, amx_off);
    }
    run_case(20, 40, 2345, SX_F32, 1, 0, 0, &ep, amx_off);
}

/* AMX: say how often its order gave other bits than the reference */
static void test_amx_report(void) {
    printf("    AMX kernels: %lld of %lld outputs differ from the reference's bits (all within "
           "the bound)\n",
           (long long)amx_off[0], (long long)amx_off[1]);
    CHECK(amx_off[1] > 0);
}

/* identical bytes for 1 and 2 threads, every kernel, a shape with many tasks
 * (the weight packed per call: 1 thread takes column tasks of 128, 2
 * threads of 96) */
static void test_threads(void) {
    const int64_t M = 70, N = 1500, K = 301;
    float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K);
    float *y1 = malloc(sizeof(float) * M * N), *y2 = malloc(sizeof(float) * M * N);
    sx_rand_uniform(x, M * K, 21, -1, 1);
    sx_rand_uniform(w, N * K, 22, -1, 1);
    sx_weight wt = sx_weight_f32(w, N, K);
    sx_epilogue ep = {.compute = SX_COMPUTE_BF16};
    int nt = sx_threads_count();
    for (int ki = 0; ki < n_kern; ki++) {
        sx_threads_init(1); /* (re-reads SEEDX_SIMD: choose the kernel after it) */
        use_kernel(ki);
        CHECK_OK(sx_matmul_ep(y1, N, x, K, &wt, &ep, M));
        sx_threads_init(2);
        use_kernel(ki);
        CHECK_OK(sx_matmul_ep(y2, N, x, K, &wt, &ep, M));
        CHECKF(!memcmp(y1, y2, sizeof(float) * M * N), "%s: 1 and 2 threads differ", kern[ki]->name);
    }
    sx_threads_init(nt);
    use_default();
    free(x), free(w), free(y1), free(y2);
}

/* Resident kB of the mapping that contains p (/proc/self/smaps), -1 if
 * unknown. */
static long rss_of_mapping(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0;
    long rss = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (in && sscanf(line, "Rss: %ld kB", &rss) == 1)
            break;
    }
    fclose(f);
    return rss;
}

/* the global switch, packing at load from a container (the F32 path still
 * reads the stored matrix), row views of a packed weight, the mapped pages
 * given back, errors */
static void test_container_packing(void) {
    sx_gguf *g;
    CHECK_OK(sx_gguf_open("tests/fixtures/bf16/weights.gguf", &g));
    if (!g) return;
    struct { const char *name; int64_t N, K; int trans; uint64_t seed; } ws[] = {
        {"w.f32", 100, 70, 0, 1}, {"w.f16", 64, 130, 0, 2}, {"w.bf16", 48, 66, 0, 3},
        {"w.q8_0", 40, 64, 0, 4}, {"w.t", 100, 70, 1, 5}, {"w.big", 256, 512, 0, 6}};
    const int64_t M = 23;
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
        int64_t N = ws[i].N, K = ws[i].K;
        float *x = malloc(sizeof(float) * M * K), *y = malloc(sizeof(float) * M * N);
        float *yb = malloc(sizeof(float) * M * N), *yf = malloc(sizeof(float) * M * N);
        float *ref = malloc(sizeof(float) * M * N), *wv = malloc(sizeof(float) * N * K);
        sx_rand_uniform(x, M * K, 31, -1, 1);
        sx_weight wf, wb;
        /* F32 compute: float weights packed at load in panels of their own
         * type, the mapped pages given back; the product is the same bytes
         * as with the stored matrix packed per call */
        const sx_tensor *t = sx_gguf_find(g, ws[i].name);
        float *st = malloc(sizeof(float) * N * K);
        CHECK_OK(sx_tensor_to_f32(t, st)); /* (touches the mapped pages) */
        long rss0 = rss_of_mapping(t->data);
        CHECK(sx_compute() == SX_COMPUTE_F32);
        if (ws[i].trans) {
            CHECK_OK(sx_weight_get_t(g, ws[i].name, K, N, &wf));
        } else {
            CHECK_OK(sx_weight_get(g, ws[i].name, N, K, &wf));
        }
        long rss1 = rss_of_mapping(t->data);
        int quant = sx_wtype_of(t->type)->quantized;
        const sx_packed *pf = wf.packed;
        CHECKF(quant ? !pf : pf && pf->layout == SX_PACK_PANELS && pf->type == t->type,
               "%s: F32 packing", ws[i].name);
        CHECK_OK(sx_matmul(yf, x, &wf, NULL, M));
        sx_weight wu = wf;
        wu.packed = NULL;
        CHECK_OK(sx_matmul(y, x, &wu, NULL, M));
        CHECKF(!memcmp(y, yf, sizeof(float) * M * N), "%s: F32 packed vs per call", ws[i].name);
        if (!strcmp(ws[i].name, "w.big")) {
            printf("    w.big: mapping resident %ld kB before packing (F32), %ld kB after\n", rss0, rss1);
            if (rss0 >= 0) CHECKF(rss1 <= rss0 - 400, "rss %ld -> %ld kB", rss0, rss1);
        }
        sx_epilogue bf = {.compute = SX_COMPUTE_BF16};
        CHECK_OK(sx_matmul_ep(yb, N, x, K, &wf, &bf, M)); /* packed per call */
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) wv[n * K + k] = ws[i].trans ? st[k * N + n] : st[n * K + k];
        static const sx_epilogue plain;
        ref_gemm(ref, N, x, K, wv, M, N, K, &plain, NULL);
        if (exact_kernel(sx_bf16_kernels_cur()))
            CHECKF(!memcmp(yb, ref, sizeof(float) * M * N), "%s: per-call packed", ws[i].name);
        CHECK_OK(sx_set_compute(SX_COMPUTE_BF16));
        if (ws[i].trans) {
            CHECK_OK(sx_weight_get_t(g, ws[i].name, K, N, &wb));
        } else {
            CHECK_OK(sx_weight_get(g, ws[i].name, N, K, &wb));
        }
        rss1 = rss_of_mapping(t->data);
        const sx_packed *pb = wb.packed;
        CHECKF(quant ? !pb : pb && pb->layout == SX_PACK_BF16, "%s: BF16 packing", ws[i].name);
        CHECK_OK(sx_matmul(y, x, &wb, NULL, M));
        CHECKF(!memcmp(y, yb, sizeof(float) * M * N), "%s: packed at load vs per call", ws[i].name);
        if (!strcmp(ws[i].name, "w.big")) {
            /* the BF16 packing read the stored matrix again, then gave it back */
            printf("    w.big: mapping resident %ld kB after packing (BF16)\n", rss1);
            if (rss0 >= 0) CHECKF(rss1 <= rss0 - 400, "rss %ld -> %ld kB", rss0, rss1);
            /* a second lookup shares the packed copy */
            sx_weight wb2;
            CHECK_OK(sx_weight_get(g, ws[i].name, N, K, &wb2));
            CHECK(wb2.packed == wb.packed);
            /* row views: on a 32-column block they stay packed, elsewhere not */
            sx_weight v = sx_weight_rows(&wb, 64, 100), u = sx_weight_rows(&wb, 5, 100);
            CHECK(v.packed == wb.packed && u.packed == NULL);
            float *yv = malloc(sizeof(float) * M * 100);
            CHECK_OK(sx_matmul(yv, x, &v, NULL, M));
            for (int64_t m = 0; m < M; m++)
                CHECK(!memcmp(yv + m * 100, y + m * N + 64, sizeof(float) * 100));
            CHECK_OK(sx_matmul(yv, x, &u, NULL, M));
            for (int64_t m = 0; m < M; m++)
                CHECK(!memcmp(yv + m * 100, y + m * N + 5, sizeof(float) * 100));
            free(yv);
        }
        /* F32 again: the packed weight's F32 product is the exact one, from
         * the stored matrix (its pages were given back, and are read again) */
        CHECK_OK(sx_set_compute(SX_COMPUTE_F32));
        CHECK_OK(sx_matmul(y, x, &wb, NULL, M));
        CHECKF(!memcmp(y, yf, sizeof(float) * M * N), "%s: F32 after packing", ws[i].name);
        free(x), free(y), free(yb), free(yf), free(ref), free(wv), free(st);
    }
    float y[4], x[4] = {0};
    sx_weight w = sx_weight_f32(x, 2, 2);
    sx_epilogue bad = {.compute = 7};
    CHECK(sx_matmul_ep(y, 2, x, 2, &w, &bad, 2) != 0);
    CHECK(strstr(sx_errmsg(), "compute") != NULL);
    CHECK(sx_set_compute(5) != 0);
    CHECK(sx_compute() == SX_COMPUTE_F32);
    CHECK(sx_compute_from_name("bf16") == SX_COMPUTE_BF16 && sx_compute_from_name("f32") == SX_COMPUTE_F32);
    CHECK(sx_compute_from_name("fp8") == -1);
    sx_gguf_close(g);
}

/* F32 compute with weights packed in panels of their own type (ukr_x):
 * each output is the same bytes as the per-call path's (the GEMM's order
 * does not depend on M), so a few rows (M <= 8, where unpacked weights take
 * the GEMV) equal the first rows of a 13-row product with the unpacked
 * weight. Every path, F32/F16/BF16 weights, plain and transposed. */
static void test_f32_panels(void) {
    const int64_t N = 45, K = 77, MM = 13;
    float *x = malloc(sizeof(float) * MM * K), *wf = malloc(sizeof(float) * N * K);
    float *yu = malloc(sizeof(float) * MM * N), *yp = malloc(sizeof(float) * MM * N);
    uint16_t *wh = malloc(2 * N * K);
    sx_rand_uniform(x, MM * K, 51, -1, 1);
    sx_rand_uniform(wf, N * K, 52, -1, 1);
    int levels[] = {SX_SIMD_SCALAR, SX_SIMD_AVX2, SX_SIMD_AVX512, SX_SIMD_NEON};
    int types[] = {SX_F32, SX_F16, SX_BF16}, n_cmp = 0, n_paths = 0;
    for (size_t li = 0; li < 4; li++) {
        if (!sx_simd_supported(levels[li]) || sx_simd_set(levels[li]) != 0) continue;
        if (!sx_kernels_cur()->ukr_x) continue;
        n_paths++;
        for (int ti = 0; ti < 3; ti++) {
            for (int tr = 0; tr < 2; tr++) {
                if (tr && types[ti] != SX_F32) continue;
                sx_weight w = sx_weight_f32(wf, N, K);
                float *wt = NULL;
                if (types[ti] != SX_F32) {
                    for (int64_t i = 0; i < N * K; i++)
                        wh[i] = types[ti] == SX_F16 ? sx_f32_to_f16(wf[i]) : sx_f32_to_bf16(wf[i]);
                    w.type = types[ti];
                    w.data = wh;
                }
                if (tr) {
                    wt = malloc(sizeof(float) * N * K);
                    for (int64_t n = 0; n < N; n++)
                        for (int64_t k = 0; k < K; k++) wt[k * N + n] = wf[n * K + k];
                    w.data = wt, w.trans = 1, w.ld = N;
                }
                CHECK_OK(sx_matmul(yu, x, &w, NULL, MM));
                sx_weight wp = w;
                CHECK_OK(sx_weight_pack(&wp));
                const sx_packed *pk = wp.packed;
                CHECK(pk && pk->layout == SX_PACK_PANELS && pk->type == types[ti]);
                for (int64_t m = 1; m <= MM; m += (m < 9 ? 1 : 4)) {
                    memset(yp, 0, sizeof(float) * MM * N);
                    CHECK_OK(sx_matmul(yp, x, &wp, NULL, m));
                    n_cmp++;
                    CHECKF(!memcmp(yp, yu, sizeof(float) * m * N), "%s %s%s M=%lld: packed differs",
                           sx_simd_name(levels[li]), sx_type_name(types[ti]), tr ? " T" : "",
                           (long long)m);
                }
                sx_weight_unpack(&wp);
                free(wt);
            }
        }
    }
    sx_simd_init();
    printf("    %d packed products compared on %d paths\n", n_cmp, n_paths);
    CHECK(n_paths >= 1 && n_cmp == n_paths * 4 * 10); /* every path: 4 weights x 10 row counts */
    free(x), free(wf), free(yu), free(yp), free(wh);
}

/* float32 -> bfloat16 of every path's type-table kernel = the scalar
 * reference, bit for bit: ties to even, NaN kept quiet NaN, infinities,
 * denormals, signed zeros, odd lengths */
static void test_rounding(void) {
    const int64_t n = 1037;
    float x[1037];
    uint16_t ref[1037], got[1037];
    sx_rand_uniform(x, n, 61, -3e4f, 3e4f);
    uint32_t special[] = {0x7fc00000u, 0xffc00001u, 0x7f800001u, 0x7f800000u, 0xff800000u, 0x00000001u,
                          0x80400000u, 0x00000000u, 0x80000000u, 0x3f808000u, 0x3f818000u, 0x3f80ffffu,
                          0x7f7fffffu, 0x00ffffffu};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) memcpy(&x[100 + 3 * i], &special[i], 4);
    for (int64_t i = 0; i < n; i++) ref[i] = sx_f32_to_bf16(x[i]);
    int levels[] = {SX_SIMD_SCALAR, SX_SIMD_AVX2, SX_SIMD_AVX512, SX_SIMD_NEON};
    for (size_t li = 0; li < 4; li++) {
        if (!sx_simd_supported(levels[li]) || sx_simd_set(levels[li]) != 0) continue;
        sx_from_f32_fn f = sx_wtype_kernels_of(sx_wtype_of(SX_BF16)).from_f32;
        memset(got, 0, sizeof got);
        f(got, x, n);
        CHECKF(!memcmp(got, ref, sizeof ref), "%s: bf16 rounding differs", sx_simd_name(levels[li]));
    }
    sx_simd_init();
}

/* the single-thread building blocks attention and convolution may use */
static void test_prepacked_api(void) {
    const int64_t M = 19, N = 40, K = 45;
    float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K);
    float *ref = malloc(sizeof(float) * M * N), *got = malloc(sizeof(float) * M * N);
    float *absdot = malloc(sizeof(float) * M * N);
    sx_rand_uniform(x, M * K, 41, -1, 1);
    sx_rand_uniform(w, N * K, 42, -1, 1);
    static const sx_epilogue plain;
    ref_gemm(ref, N, x, K, w, M, N, K, &plain, absdot);
    sx_weight wt = sx_weight_f32(w, N, K);
    for (int ki = 0; ki < n_kern; ki++) {
        const sx_bf16_kernels *kk = kern[ki];
        use_kernel(ki);
        void *a = malloc(sx_bf16_a_bytes(kk, M, K));
        uint16_t *b = malloc(sx_bf16_b_bytes(N, K));
        float *c = malloc(sizeof(float) * sx_bf16_c_floats(kk, M, N));
        CHECK_OK(sx_bf16_pack_a(kk, a, x, K, M, K));
        CHECK_OK(sx_bf16_pack_b(b, &wt, 0, N, K));
        sx_bf16_gemm_prepacked(kk, got, N, a, M, b, N, K, c);
        check_out("prepacked", kk, got, N, ref, N, absdot, M, N, K);
        free(a), free(b), free(c);
    }
    use_default();
    free(x), free(w), free(ref), free(got), free(absdot);
}

int main(void) {
    TEST_INIT();
    /* quantized weights with more than 8 rows through the BF16 kernels, not
     * the integer ones or the int8 GEMM (tests/test_quant.c tests those) */
    sx_set_quant_rows_max(2 * SX_GEMV_MAX_M);
    sx_set_i8gemm(0);
    find_kernels();
    printf("bf16 kernels:");
    for (int i = 0; i < n_kern; i++) printf(" %s", kern[i]->name);
    printf("\n");
    RUN(test_rounding);
    RUN(test_shapes);
    RUN(test_strides_trans_epilogue);
    RUN(test_types);
    RUN(test_amx_report);
    RUN(test_threads);
    RUN(test_container_packing);
    RUN(test_f32_panels);
    RUN(test_prepacked_api);
    return TEST_DONE();
}
