/* tests/test.h - the tiny test harness every tests/test_*.c uses.
 *
 *   static void test_something(void) { CHECK(x == 1); CHECKF(y < 2, "y=%g", y); }
 *   int main(void) { TEST_INIT(); RUN(test_something); return TEST_DONE(); }
 *
 * Each RUN counts as one test; the program ends with "N passed, M failed".
 * Tests run from the repository root: fixtures are tests/fixtures/<component>/,
 * test images and references are tests/data/ (copied from the workplace's shared
 * data, see tests/data/README.md). Files a test writes go under t_build()
 * ($SEEDX_TEST_BUILD, set by tests/run.sh to the build directory). */
#ifndef SEEDX_TEST_H
#define SEEDX_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seedx.h"

static int t_pass_, t_fail_, t_cur_fail_;
static const char *t_cur_ = "";

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "  %s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__, t_cur_, \
                    #cond);                                                             \
            t_cur_fail_++;                                                              \
        }                                                                               \
    } while (0)
#define CHECKF(cond, ...)                                                               \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "  %s:%d: %s: CHECK(%s) failed: ", __FILE__, __LINE__, t_cur_, \
                    #cond);                                                             \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
            t_cur_fail_++;                                                              \
        }                                                                               \
    } while (0)
/* Checks a library call returned 0, printing sx_errmsg() otherwise. */
#define CHECK_OK(call)                                                                  \
    do {                                                                                \
        if ((call) != 0) {                                                              \
            fprintf(stderr, "  %s:%d: %s: %s failed: %s\n", __FILE__, __LINE__, t_cur_,   \
                    #call, sx_errmsg());                                                \
            t_cur_fail_++;                                                              \
        }                                                                               \
    } while (0)

#define TEST_INIT()                                                                     \
    do {                                                                                \
        if (sx_init(0) != 0) {                                                          \
            fprintf(stderr, "sx_init: %s\n", sx_errmsg());                              \
            return 1;                                                                   \
        }                                                                               \
    } while (0)
#define RUN(fn)                                                                         \
    do {                                                                                \
        t_cur_ = #fn;                                                                   \
        t_cur_fail_ = 0;                                                                \
        double t0_ = sx_time();                                                         \
        fn();                                                                           \
        double dt_ = sx_time() - t0_;                                                   \
        if (t_cur_fail_) {                                                              \
            t_fail_++;                                                                  \
            printf("FAIL %s (%.2fs)\n", #fn, dt_);                                      \
        } else {                                                                        \
            t_pass_++;                                                                  \
            printf("ok   %s (%.2fs)\n", #fn, dt_);                                      \
        }                                                                               \
        fflush(stdout);                                                                 \
    } while (0)
#define TEST_DONE() (printf("%d passed, %d failed\n", t_pass_, t_fail_), t_fail_ ? 1 : 0)

/* Error of got vs expected: max |got-exp| / max |exp| ("max-rel" in the
 * numerics table) and max |got-exp|. */
typedef struct { double max_abs, max_rel, ref_max; int64_t worst; int nonfinite; } t_err;
static inline t_err t_compare(const float *got, const float *exp, int64_t n) {
    t_err e = {0, 0, 0, -1, 0};
    for (int64_t i = 0; i < n; i++) {
        double a = fabs((double)exp[i]);
        if (a > e.ref_max) e.ref_max = a;
        if (!isfinite(got[i])) e.nonfinite++;
        double d = fabs((double)got[i] - (double)exp[i]);
        if (d > e.max_abs || !isfinite(d)) { e.max_abs = d; e.worst = i; }
    }
    e.max_rel = e.ref_max > 0 ? e.max_abs / e.ref_max : e.max_abs;
    return e;
}
/* CHECK that got matches exp within max-rel tol; prints the error either way
 * when SEEDX_TEST_VERBOSE is set. Returns the error. */
#define CHECK_CLOSE(what, got, exp, n, tol)                                             \
    do {                                                                                \
        t_err e_ = t_compare((got), (exp), (n));                                        \
        if (getenv("SEEDX_TEST_VERBOSE"))                                               \
            printf("    %-40s max_abs %.3g max_rel %.3g\n", (what), e_.max_abs, e_.max_rel); \
        CHECKF(e_.nonfinite == 0 && e_.max_rel <= (tol),                                \
               "%s: max_rel %.3g > %.3g (max_abs %.3g at %lld, got %.8g exp %.8g)",     \
               (what), e_.max_rel, (double)(tol), e_.max_abs, (long long)e_.worst,      \
               e_.worst >= 0 ? (double)(got)[e_.worst] : 0.0,                           \
               e_.worst >= 0 ? (double)(exp)[e_.worst] : 0.0);                          \
    } while (0)

/* Under emulation (tests/run_emulated.sh sets SEEDX_TEST_EMULATED=1, e.g.
 * `make test-aarch64`) the real-shape tests and a few that rerun the tiny
 * pipelines many times (tiled VAE decode, the 10/20-step DPM cases, the
 * installed demo, the demo's pasted commands, the server's conversations and
 * client storms), each
 * minutes of emulated arithmetic, are skipped (the native run has them);
 * SEEDX_TEST_SLOW=1 runs them anyway. Returns 1 after saying so when the test is skipped. */
static inline int t_skip_emulated(const char *what) {
    if (!getenv("SEEDX_TEST_EMULATED") || getenv("SEEDX_TEST_SLOW")) return 0;
    printf("    (skipped under emulation: %s)\n", what);
    return 1;
}

/* The folder holding data/ (the test images, references and vocabularies). */
static inline const char *t_shared(void) { return "tests"; }
/* The build directory: scratch files of the tests go there. */
static inline const char *t_build(void) {
    const char *s = getenv("SEEDX_TEST_BUILD");
    return s && *s ? s : "build";
}

#endif
