/* seedx_core.c - errors, tracing, clocks: the small things every file uses. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "seedx.h"

/* ---- errors: one message buffer per thread ---- */
static _Thread_local char err_buf[2048];

int sx_err(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return -1;
}

int sx_err_prefix(const char *fmt, ...) {
    char old[sizeof err_buf], pre[512];
    memcpy(old, err_buf, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    size_t lp = strlen(pre), lo = strlen(old);
    if (lp > sizeof err_buf - 1) lp = sizeof err_buf - 1;
    if (lp + lo > sizeof err_buf - 1) lo = sizeof err_buf - 1 - lp;
    memcpy(err_buf, pre, lp);
    memcpy(err_buf + lp, old, lo);
    err_buf[lp + lo] = 0;
    return -1;
}

const char *sx_errmsg(void) { return err_buf[0] ? err_buf : "no error"; }
void sx_err_clear(void) { err_buf[0] = 0; }

/* Larger requests are refused outright: no real model needs them, and a
 * size computed from a corrupt header must not reach malloc. */
#define SX_ALLOC_MAX ((size_t)1 << 40)

void *sx_malloc(size_t n, const char *what) {
    if (n > SX_ALLOC_MAX) {
        sx_err("refusing to allocate %zu bytes for %s (more than 1 TiB)", n, what ? what : "?");
        return NULL;
    }
    void *p = malloc(n ? n : 1);
    if (!p) sx_err("out of memory allocating %zu bytes for %s", n, what ? what : "?");
    return p;
}

void *sx_calloc(size_t n, size_t size, const char *what) {
    if (size && n > SIZE_MAX / size) {
        sx_err("allocation size overflow for %s (%zu x %zu)", what ? what : "?", n, size);
        return NULL;
    }
    if (n * size > SX_ALLOC_MAX) {
        sx_err("refusing to allocate %zu bytes for %s (more than 1 TiB)", n * size,
               what ? what : "?");
        return NULL;
    }
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) sx_err("out of memory allocating %zu bytes for %s", n * size, what ? what : "?");
    return p;
}

/* ---- clocks ---- */
double sx_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t sx_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024; /* Linux reports KiB */
}

/* ---- tracing: dir/<name>.npy, float32, C order ---- */
static char trace_dir[1024];
static int trace_init_done;

void sx_trace_set_dir(const char *dir) {
    snprintf(trace_dir, sizeof trace_dir, "%s", dir ? dir : "");
    trace_init_done = 1;
    if (trace_dir[0]) mkdir(trace_dir, 0777);
}

int sx_trace_enabled(void) {
    if (!trace_init_done) {
        const char *d = getenv("SEEDX_TRACE");
        sx_trace_set_dir(d ? d : "");
    }
    return trace_dir[0] != 0;
}

void sx_trace(const char *name, const float *x, int ndim, const int64_t *shape) {
    if (!sx_trace_enabled() || !x || ndim < 0 || ndim > 8) return;
    char path[2048], tmp[2100], hdr[256], shp[160] = "";
    snprintf(path, sizeof path, "%s/%s.npy", trace_dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int64_t n = 1;
    size_t o = 0;
    for (int i = 0; i < ndim; i++) {
        n *= shape[i];
        o += (size_t)snprintf(shp + o, sizeof shp - o, "%s%lld%s", i ? ", " : "",
                              (long long)shape[i], ndim == 1 ? "," : "");
    }
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }",
                      shp);
    int total = 10 + hl + 1;
    int pad = (64 - total % 64) % 64;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "seedx: trace: cannot write %s: %s\n", tmp, strerror(errno));
        return;
    }
    unsigned char magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    uint16_t hlen = (uint16_t)(hl + pad + 1);
    magic[8] = (unsigned char)(hlen & 0xff);
    magic[9] = (unsigned char)(hlen >> 8);
    fwrite(magic, 1, 10, f);
    fwrite(hdr, 1, (size_t)hl, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    size_t wr = fwrite(x, sizeof(float), (size_t)n, f);
    if (fclose(f) != 0 || wr != (size_t)n) {
        remove(tmp);
        fprintf(stderr, "seedx: trace: short write to %s\n", tmp);
        return;
    }
    rename(tmp, path);
    /* the order modules ran in, for scripts/compare.py */
    char order[1100];
    snprintf(order, sizeof order, "%s/trace_order.txt", trace_dir);
    FILE *of = fopen(order, "a");
    if (of) {
        fprintf(of, "%s\n", name);
        fclose(of);
    }
}

void sx_tracef(const float *x, int ndim, const int64_t *shape, const char *fmt, ...) {
    if (!sx_trace_enabled()) return;
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    sx_trace(name, x, ndim, shape);
}
