/* sx_core.h - the bottom floor of seedx.c: errors, checked allocation, the
 * thread pool, tracing, .npy files and clocks. Every other file builds on
 * these; they depend on nothing but libc and pthreads (seedx_core.c,
 * threads.c).
 *
 * Conventions used by every function in the library:
 *   - functions that can fail return int: 0 on success, -1 on failure; on
 *     failure a message saying what and where went wrong is stored per
 *     thread and read with sx_errmsg().
 *   - tensors are float32, row-major, shapes given in PyTorch order. */
#ifndef SEEDX_CORE_H
#define SEEDX_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors (seedx_core.c) ------------------------------------------- */
/* Formats a message into the calling thread's error buffer; returns -1 so
 * that `return sx_err("...")` reads naturally. The buffer holds 2047 bytes:
 * a longer message keeps its start and its end around " ... ". */
int sx_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefixes the current message with more context ("loading vit: " + msg). */
int sx_err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *sx_errmsg(void);
void sx_err_clear(void);

/* Checked allocation: returns NULL and sets an error naming `what`. */
void *sx_malloc(size_t n, const char *what);
void *sx_calloc(size_t n, size_t size, const char *what);

/* ---- strings (seedx_core.c) ------------------------------------------
 * A string that grows as it is appended to, for text built from user input
 * (prompts, paths, listings): sx_str b = {0}; then sx_str_add/adds/addf;
 * b.s is NUL-terminated (NULL until something is added), b.len its length;
 * sx_str_free(&b) when done. After a failed allocation the string stays as
 * it was, every later call returns -1 and b.oom is set. */
typedef struct sx_str {
    char *s;
    size_t len, cap;
    int oom;
} sx_str;
int sx_str_add(sx_str *b, const char *s, size_t n);
int sx_str_adds(sx_str *b, const char *s);
int sx_str_addf(sx_str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sx_str_free(sx_str *b);
/* printf into a malloc'd string of the right size; NULL (error set) on failure. */
char *sx_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Index of the first NaN or infinity among x[0..n), -1 when all are finite. */
int64_t sx_nonfinite_at(const float *x, int64_t n);
/* 0 when x[0..n) is finite, else an error naming `what` (a stage, a tensor)
 * and the first bad value. */
int sx_check_finite(const char *what, const float *x, int64_t n);

/* ---- threads (threads.c) ---------------------------------------------- */
/* Creates the pool. n <= 0: SEEDX_THREADS, else the online CPU count.
 * Calling it again with another count rebuilds the pool. Programs start
 * with sx_init (seedx.h), which also picks the SIMD path; this call alone
 * only sizes the pool. */
int sx_threads_init(int n);
int sx_threads_count(void);
/* Runs fn(ctx, begin, end, tid) over [0, n) in chunks of `chunk` items that
 * workers claim from a shared atomic counter. tid in [0, sx_threads_count())
 * indexes per-thread scratch. Returns when all chunks are done. Nested calls
 * from inside a task run serially on the calling thread. */
typedef void (*sx_task_fn)(void *ctx, int64_t begin, int64_t end, int tid);
void sx_parallel_for(int64_t n, int64_t chunk, sx_task_fn fn, void *ctx);
/* fn runs on each worker thread before it exits and on the main thread at
 * process exit: the kernel layer frees its per-thread scratch there. */
void sx_threads_on_exit(void (*fn)(void));

/* ---- cancellation (seedx_core.c) --------------------------------------
 * One stop check per thread. The long loops poll it at their boundaries
 * (every layer of an LLM prompt pass, every generated token, every
 * denoising step) and fail with a "cancelled" error when it returns
 * nonzero. A front-end that must stop work early (a server whose client
 * went away) installs its check on the thread that runs the model; NULL
 * removes it. Threads without a check are never stopped. */
typedef int (*sx_stop_fn)(void *user);
void sx_set_stop_check(sx_stop_fn fn, void *user);
int sx_stop_requested(void);

/* ---- tracing (seedx_core.c) ------------------------------------------- */
/* When SEEDX_TRACE=dir is set (or sx_trace_set_dir was called), writes
 * dir/<name>.npy (float32, the given PyTorch-order shape). No-op otherwise.
 * Names are PyTorch module paths, e.g. "transformer.resblocks.3.mlp".
 * SEEDX_TRACE_ONLY=name,name,... restricts it to those names. */
void sx_trace_set_dir(const char *dir);
int sx_trace_enabled(void);
void sx_trace(const char *name, const float *x, int ndim, const int64_t *shape);
/* printf-style name helper: sx_tracef(x, 2, shape, "blocks.%d.attn", i) */
void sx_tracef(const float *x, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* float32 C-order .npy files (what the trace writes; what the CLI tools
 * take as tensors). Write goes to a temporary name and is renamed. Read:
 * version 1-3, at most 4 dims, *data malloc'd. */
int sx_npy_write(const char *path, const float *x, int ndim, const int64_t *shape);
int sx_npy_read(const char *path, float **data, int *ndim, int64_t shape[4], int64_t *count);

/* Monotonic wall clock in seconds; peak resident set size in bytes. */
double sx_time(void);
size_t sx_peak_rss(void);

#ifdef __cplusplus
}
#endif
#endif
