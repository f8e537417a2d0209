/* tests/test_core.c - the foundation: thread pool, errors, tracing, SIMD
 * selection, and that the binary links nothing beyond libc/libm/pthreads. */
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

static atomic_int hits[10000];
static atomic_int tids_seen[256];

static void mark(void *ctx, int64_t b, int64_t e, int tid) {
    (void)ctx;
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&hits[i], 1);
    atomic_fetch_add(&tids_seen[tid], 1);
}

static void test_parallel_for_covers_once(void) {
    for (int nt = 1; nt <= 3; nt++) {
        sx_threads_init(nt);
        for (int64_t n = 0; n < 10000; n = n * 3 + 7) {
            for (int64_t i = 0; i < n; i++) atomic_store(&hits[i], 0);
            sx_parallel_for(n, 1 + n / 50, mark, NULL);
            int bad = 0;
            for (int64_t i = 0; i < n; i++) bad += atomic_load(&hits[i]) != 1;
            CHECKF(bad == 0, "threads %d n %lld: %d items not run exactly once", nt, (long long)n, bad);
        }
    }
    sx_threads_init(0);
}

static void nested_inner(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    atomic_int *c = ctx;
    atomic_fetch_add(c, (int)(e - b));
}
static void nested_outer(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    for (int64_t i = b; i < e; i++) sx_parallel_for(100, 7, nested_inner, ctx);
}

static void test_nested_parallel_for(void) {
    atomic_int c = 0;
    sx_threads_init(2);
    sx_parallel_for(20, 1, nested_outer, &c);
    CHECKF(atomic_load(&c) == 2000, "nested total %d", atomic_load(&c));
    sx_threads_init(0);
}

static void test_env_threads(void) {
    setenv("SEEDX_THREADS", "abc", 1);
    CHECK(sx_threads_init(0) != 0);
    CHECK(strstr(sx_errmsg(), "SEEDX_THREADS") != NULL);
    setenv("SEEDX_THREADS", "3", 1);
    CHECK_OK(sx_threads_init(0));
    CHECK(sx_threads_count() == 3);
    unsetenv("SEEDX_THREADS");
    sx_threads_init(0);
}

static void test_errors(void) {
    CHECK(sx_err("tensor '%s' has shape [%d]", "x", 3) == -1);
    CHECK(strcmp(sx_errmsg(), "tensor 'x' has shape [3]") == 0);
    sx_err_prefix("loading %s: ", "vit.gguf");
    CHECK(strcmp(sx_errmsg(), "loading vit.gguf: tensor 'x' has shape [3]") == 0);
    CHECK(sx_malloc((size_t)-1 / 2, "a huge buffer") == NULL);
    CHECK(strstr(sx_errmsg(), "a huge buffer") != NULL);
    CHECK(sx_calloc((size_t)-1 / 2, 16, "overflowing") == NULL);
    CHECK(strstr(sx_errmsg(), "overflow") != NULL);
}

static void test_simd_selection(void) {
    CHECK(sx_simd_supported(SX_SIMD_SCALAR));
    setenv("SEEDX_SIMD", "scalar", 1);
    CHECK_OK(sx_simd_init());
    CHECK(sx_simd_level() == SX_SIMD_SCALAR);
    setenv("SEEDX_SIMD", "nonsense", 1);
    CHECK(sx_simd_init() != 0);
    CHECK(strstr(sx_errmsg(), "nonsense") != NULL);
    unsetenv("SEEDX_SIMD");
    CHECK_OK(sx_simd_init());
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        CHECK(sx_simd_level() == SX_SIMD_AVX512 || sx_simd_level() == SX_SIMD_AMX);
#endif
}

static void test_trace_npy(void) {
    char dir[] = "/tmp/seedx_trace_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    sx_trace_set_dir(dir);
    float x[6] = {1, 2, 3, 4, 5, 6.5f};
    int64_t shape[2] = {2, 3};
    sx_tracef(x, 2, shape, "blocks.%d.attn", 3);
    char path[256];
    snprintf(path, sizeof path, "%s/blocks.3.attn.npy", dir);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (f) {
        unsigned char buf[256];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        CHECK(n == 128 + 24); /* 10-byte preamble + header padded to 128, then 6 floats */
        CHECK(memcmp(buf, "\x93NUMPY\x01\x00", 8) == 0);
        int hl = buf[8] | buf[9] << 8;
        CHECK((10 + hl) % 64 == 0);
        CHECK(strstr((char *)buf + 10, "'shape': (2, 3)") != NULL);
        float y[6];
        memcpy(y, buf + 10 + hl, sizeof y);
        CHECK(memcmp(x, y, sizeof y) == 0);
        remove(path);
    }
    char order[300];
    snprintf(order, sizeof order, "%s/trace_order.txt", dir);
    FILE *of = fopen(order, "r");
    CHECK(of != NULL);
    if (of) {
        char line[64] = "";
        CHECK(fgets(line, sizeof line, of) && strcmp(line, "blocks.3.attn\n") == 0);
        fclose(of);
    }
    remove(order);
    CHECK(rmdir(dir) == 0);
    sx_trace_set_dir("");
    CHECK(!sx_trace_enabled());
}

/* The binary links only libc, libm, libpthread (and the loader/vdso). */
static void test_links_only_libc(void) {
    FILE *p = popen("ldd ./seedx 2>&1", "r");
    CHECK(p != NULL);
    if (!p) return;
    char line[512];
    int n = 0, bad = 0;
    while (fgets(line, sizeof line, p)) {
        n++;
        if (strstr(line, "linux-vdso") || strstr(line, "ld-linux") || strstr(line, "libc.so") ||
            strstr(line, "libm.so") || strstr(line, "libpthread.so"))
            continue;
#if defined(__SANITIZE_ADDRESS__)
        /* the sanitizer runtimes of `make test-asan` and what they pull in */
        if (strstr(line, "libasan") || strstr(line, "libubsan") || strstr(line, "libstdc++") ||
            strstr(line, "libgcc_s") || strstr(line, "libdl.so") || strstr(line, "librt.so"))
            continue;
#endif
        bad++;
        fprintf(stderr, "  unexpected dependency: %s", line);
    }
    pclose(p);
    CHECK(n >= 2);
    CHECK(bad == 0);
}

/* `seedx inspect` reads every committed fixture directory. */
static void test_inspect_every_fixture(void) {
    const char *dirs[] = {"ops", "gguf", "tokenizer", "detok", "vit", "llm", "unet", "vae", "seedx",
                          "seedx_e2e", "seedx_e2e/model"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "./seedx inspect tests/fixtures/%s > /dev/null", dirs[i]);
        CHECKF(system(cmd) == 0, "%s", cmd);
    }
    CHECK(system("./seedx inspect tests/fixtures/no_such_dir > /dev/null 2>&1") != 0);
}

/* --trace DIR on the command line writes module outputs like SEEDX_TRACE. */
static void test_trace_flag(void) {
    char dir[] = "/tmp/seedx_tflag_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "./seedx --trace %s reconstruct -m tests/fixtures/seedx_e2e/model --image "
             "tests/fixtures/seedx_e2e/img_a.png -o %s/r.png --size 64x64 --steps 1 > /dev/null 2>&1",
             dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "test -s %s/prompt_embeds.npy && test -s %s/trace_order.txt", dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    TEST_INIT();
    RUN(test_parallel_for_covers_once);
    RUN(test_nested_parallel_for);
    RUN(test_env_threads);
    RUN(test_errors);
    RUN(test_simd_selection);
    RUN(test_trace_npy);
    RUN(test_links_only_libc);
    RUN(test_inspect_every_fixture);
    RUN(test_trace_flag);
    return TEST_DONE();
}
