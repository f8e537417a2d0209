/* seedx_core.c - errors, tracing, clocks: the small things every file uses. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sx_core.h"

/* ---- errors: one message buffer per thread ----
 * A message longer than the buffer keeps its head and its tail (where the
 * reason usually is: "<long path>: cannot open: No such file") around " ... ",
 * both cut on UTF-8 character boundaries. */
#define SX_ERR_CAP 2048
static _Thread_local char err_buf[SX_ERR_CAP];

/* Start of the UTF-8 character holding s[i] (i itself when s[i] starts one). */
static size_t utf8_start(const char *s, size_t i) {
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

/* Stores msg[0..n) (not err_buf itself) as the message, shortened as
 * described above. */
static void err_store(const char *msg, size_t n) {
    if (n < SX_ERR_CAP) {
        memcpy(err_buf, msg, n);
        err_buf[n] = 0;
        return;
    }
    static const char mid[] = " ... ";
    size_t m = sizeof mid - 1, room = SX_ERR_CAP - 1 - m;
    size_t head = utf8_start(msg, room / 2), tail = n - (room - room / 2);
    while (tail < n && ((unsigned char)msg[tail] & 0xC0) == 0x80) tail++;
    memcpy(err_buf, msg, head);
    memcpy(err_buf + head, mid, m);
    memcpy(err_buf + head + m, msg + tail, n - tail);
    err_buf[head + m + (n - tail)] = 0;
}

/* vsnprintf into a buffer of the message's own size; NULL if that fails. */
static char *vformat(const char *fmt, va_list ap, size_t *len) {
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
    *len = (size_t)n;
    return s;
}

int sx_err(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n;
    char *s = vformat(fmt, ap, &n);
    va_end(ap);
    if (s) {
        err_store(s, n);
        free(s);
    } else { /* no memory: the head of the message, cut on a character */
        va_start(ap, fmt);
        vsnprintf(err_buf, sizeof err_buf, fmt, ap);
        va_end(ap);
        size_t l = strlen(err_buf);
        if (l == SX_ERR_CAP - 1) err_buf[utf8_start(err_buf, l - 1)] = 0;
    }
    return -1;
}

int sx_err_prefix(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t lp;
    char *pre = vformat(fmt, ap, &lp);
    va_end(ap);
    size_t lo = strlen(err_buf);
    char *all = pre ? malloc(lp + lo + 1) : NULL;
    if (all) {
        memcpy(all, pre, lp);
        memcpy(all + lp, err_buf, lo + 1);
        err_store(all, lp + lo);
    }
    free(pre);
    free(all);
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

/* ---- strings ---- */
int sx_str_add(sx_str *b, const char *s, size_t n) {
    if (b->oom) return -1;
    if (n > SIZE_MAX / 2 - b->len) {
        b->oom = 1;
        return sx_err("string too long (%zu + %zu bytes)", b->len, n);
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return sx_err("out of memory growing a string to %zu bytes", cap);
        }
        b->s = p;
        b->cap = cap;
    }
    if (n) memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
    return 0;
}

int sx_str_adds(sx_str *b, const char *s) { return sx_str_add(b, s, strlen(s)); }

int sx_str_addf(sx_str *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n;
    char *s = vformat(fmt, ap, &n);
    va_end(ap);
    if (!s) {
        b->oom = 1;
        return sx_err("out of memory formatting a string");
    }
    int rc = sx_str_add(b, s, n);
    free(s);
    return rc;
}

void sx_str_free(sx_str *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

char *sx_strf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n;
    char *s = vformat(fmt, ap, &n);
    va_end(ap);
    if (!s) sx_err("out of memory formatting a string");
    return s;
}

int64_t sx_nonfinite_at(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

int sx_check_finite(const char *what, const float *x, int64_t n) {
    int64_t i = sx_nonfinite_at(x, n);
    if (i < 0) return 0;
    return sx_err("%s: value %lld of %lld is %s", what, (long long)i, (long long)n,
                  isnan(x[i]) ? "NaN" : "infinite");
}

/* ---- cancellation: one stop check per thread ---- */
static _Thread_local sx_stop_fn stop_fn;
static _Thread_local void *stop_user;

void sx_set_stop_check(sx_stop_fn fn, void *user) {
    stop_fn = fn;
    stop_user = user;
}

int sx_stop_requested(void) { return stop_fn && stop_fn(stop_user) != 0; }

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

/* ---- .npy files (float32, C order), used by tracing and the CLI tools ---- */
/* Header "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" padded
 * with spaces and a newline so the data starts on a 64-byte boundary. */
static int npy_header(char *out, size_t cap, int ndim, const int64_t *shape, int64_t *count) {
    char hdr[320], shp[256] = "";
    size_t o = 0;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        n *= shape[i];
        o += (size_t)snprintf(shp + o, sizeof shp - o, "%s%lld%s", i ? ", " : "", (long long)shape[i],
                              ndim == 1 ? "," : "");
        if (o >= sizeof shp) return -1;
    }
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", shp);
    int pad = (64 - (10 + hl + 1) % 64) % 64;
    size_t total = 10 + (size_t)hl + (size_t)pad + 1;
    if (total > cap) return -1;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (char)((hl + pad + 1) & 0xff);
    out[9] = (char)((hl + pad + 1) >> 8);
    memcpy(out + 10, hdr, (size_t)hl);
    memset(out + 10 + hl, ' ', (size_t)pad);
    out[10 + hl + pad] = '\n';
    *count = n;
    return (int)total;
}

int sx_npy_write(const char *path, const float *x, int ndim, const int64_t *shape) {
    char hdr[512];
    int64_t n;
    if (!path || !x || ndim < 0 || ndim > 8) return sx_err("sx_npy_write: bad arguments");
    int hl = npy_header(hdr, sizeof hdr, ndim, shape, &n);
    if (hl < 0) return sx_err("%s: shape too long for a .npy header", path);
    char *tmp = sx_strf("%s.tmp", path);
    if (!tmp) return -1;
    FILE *f = fopen(tmp, "wb");
    int rc = -1;
    if (!f) {
        sx_err("%s: cannot write: %s", tmp, strerror(errno));
    } else {
        size_t w1 = fwrite(hdr, 1, (size_t)hl, f), w2 = fwrite(x, sizeof(float), (size_t)n, f);
        if (fclose(f) != 0 || w1 != (size_t)hl || w2 != (size_t)n)
            sx_err("%s: short write", tmp);
        else if (rename(tmp, path) != 0)
            sx_err("%s: cannot rename into place: %s", path, strerror(errno));
        else
            rc = 0;
        if (rc) remove(tmp);
    }
    free(tmp);
    return rc;
}

int sx_npy_read(const char *path, float **data, int *ndim, int64_t shape[4], int64_t *count) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sx_err("%s: cannot open: %s", path, strerror(errno));
    unsigned char pre[12];
    int rc = -1;
    char *h = NULL;
    size_t hoff = 10, hlen = 0;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        sx_err("%s: not a .npy file", path);
        goto done;
    }
    if (pre[6] == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if ((pre[6] == 2 || pre[6] == 3) && fread(pre + 10, 1, 2, f) == 2) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        hoff = 12;
    } else {
        sx_err("%s: unsupported .npy version %d", path, pre[6]);
        goto done;
    }
    if (hlen > 65536 || !(h = malloc(hlen + 1)) || fread(h, 1, hlen, f) != hlen) {
        sx_err("%s: truncated or oversized .npy header", path);
        goto done;
    }
    h[hlen] = 0;
    if (!strstr(h, "'descr': '<f4'") || !strstr(h, "'fortran_order': False")) {
        sx_err("%s: .npy must be little-endian float32 in C order (header: %.100s)", path, h);
        goto done;
    }
    char *s = strstr(h, "'shape': (");
    if (!s) {
        sx_err("%s: .npy header has no shape", path);
        goto done;
    }
    fseek(f, 0, SEEK_END);
    long fsz = ftell(f);
    size_t avail = fsz > 0 && (size_t)fsz >= hoff + hlen ? (size_t)fsz - hoff - hlen : 0;
    int nd = 0;
    int64_t cnt = 1;
    for (s += 10; *s && *s != ')';) {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        char *e;
        errno = 0;
        long long v = strtoll(s, &e, 10);
        if (e == s || errno || v < 0 || nd >= 4) {
            sx_err("%s: bad .npy shape (at most 4 dims)", path);
            goto done;
        }
        if (v > 0 && (uint64_t)cnt > avail / 4 / (uint64_t)v) {
            sx_err("%s: .npy shape needs more data than the file holds", path);
            goto done;
        }
        shape[nd++] = v;
        cnt *= v;
        s = e;
    }
    if ((size_t)cnt * 4 != avail) {
        sx_err("%s: .npy holds %zu data bytes, its shape needs %lld", path, avail, (long long)cnt * 4);
        goto done;
    }
    *data = sx_malloc((size_t)(cnt > 0 ? cnt : 1) * 4, "npy data");
    if (!*data) goto done;
    fseek(f, (long)(hoff + hlen), SEEK_SET);
    if (fread(*data, 4, (size_t)cnt, f) != (size_t)cnt) {
        free(*data);
        *data = NULL;
        sx_err("%s: short read", path);
        goto done;
    }
    *ndim = nd;
    if (count) *count = cnt;
    rc = 0;
done:
    free(h);
    fclose(f);
    return rc;
}

/* ---- tracing: dir/<name>.npy, float32, C order ---- */
static char *trace_dir; /* NULL or "": off */
static int trace_init_done;

void sx_trace_set_dir(const char *dir) {
    free(trace_dir);
    trace_dir = dir && *dir ? strdup(dir) : NULL;
    trace_init_done = 1;
    if (trace_dir) mkdir(trace_dir, 0777);
}

int sx_trace_enabled(void) {
    if (!trace_init_done) {
        const char *d = getenv("SEEDX_TRACE");
        sx_trace_set_dir(d ? d : "");
    }
    return trace_dir != NULL;
}

/* SEEDX_TRACE_ONLY=name,name,...: only these modules are written (at full
 * size a whole trace is tens of GB) */
static int trace_wanted(const char *name) {
    const char *only = getenv("SEEDX_TRACE_ONLY");
    if (!only || !*only) return 1;
    size_t n = strlen(name);
    for (const char *p = only; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return 1;
        p += len + (e != NULL);
    }
    return 0;
}

void sx_trace(const char *name, const float *x, int ndim, const int64_t *shape) {
    if (!sx_trace_enabled() || !x || ndim < 0 || ndim > 8 || !name || !trace_wanted(name)) return;
    char *path = sx_strf("%s/%s.npy", trace_dir, name);
    if (!path || sx_npy_write(path, x, ndim, shape) != 0) {
        fprintf(stderr, "seedx: trace: %s\n", sx_errmsg());
        free(path);
        return;
    }
    free(path);
    /* the order modules ran in, for scripts/compare.py */
    char *order = sx_strf("%s/trace_order.txt", trace_dir);
    FILE *of = order ? fopen(order, "a") : NULL;
    if (of) {
        fprintf(of, "%s\n", name);
        fclose(of);
    }
    free(order);
}

void sx_tracef(const float *x, int ndim, const int64_t *shape, const char *fmt, ...) {
    if (!sx_trace_enabled()) return;
    va_list ap;
    va_start(ap, fmt);
    size_t n;
    char *name = vformat(fmt, ap, &n);
    va_end(ap);
    if (name) sx_trace(name, x, ndim, shape);
    free(name);
}
