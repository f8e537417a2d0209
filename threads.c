/* threads.c - one pthread pool, created once. Work is a range [0, n) cut in
 * chunks that threads claim from a shared atomic counter, so a core that
 * runs slow for a while simply claims fewer chunks. The caller works too
 * (tid 0). Results never depend on which thread ran a chunk. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sx_core.h"

#define SX_MAX_THREADS 256

static struct {
    int n; /* threads including the caller */
    pthread_t tid[SX_MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t wake, done_cv;
    _Atomic uint64_t generation; /* bumped for each job */
    uint64_t start_gen;          /* the generation when the workers were started */
    int quit;
    /* current job */
    sx_task_fn fn;
    void *ctx;
    int64_t n_items, chunk;
    atomic_int_fast64_t next;
    atomic_int active; /* workers still inside the job */
} P = {.n = 1, .mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
       .done_cv = PTHREAD_COND_INITIALIZER};

static _Thread_local int in_task; /* nested sx_parallel_for runs serially */
static void (*_Atomic exit_hook)(void); /* sx_threads_on_exit */
static pthread_mutex_t job_mu = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */

static void run_chunks(int tid) {
    for (;;) {
        int64_t b = atomic_fetch_add(&P.next, P.chunk);
        if (b >= P.n_items) break;
        int64_t e = b + P.chunk < P.n_items ? b + P.chunk : P.n_items;
        P.fn(P.ctx, b, e, tid);
    }
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* A thread that has finished its part of a job spins for up to
 * SPIN_SECONDS before it sleeps on the condition variable: a decode step
 * of the 13B LLM is ~300 jobs of 0.1-2 ms, and waking a sleeping thread
 * cost ~45 us per job here (a job of 16 empty tasks on 2 threads: 45 ->
 * 2 us with the spin). Longer idle periods still sleep. */
#define SPIN_SECONDS 200e-6
/* spin while *v == old, for at most SPIN_SECONDS */
static void spin_until_changed(_Atomic uint64_t *v, uint64_t old) {
    double t0 = sx_time();
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (atomic_load_explicit(v, memory_order_relaxed) != old) return;
            cpu_relax();
        }
        if (sx_time() - t0 > SPIN_SECONDS) return;
    }
}

static void *worker(void *arg) {
    int tid = (int)(intptr_t)arg;
    in_task = 1;
    pthread_mutex_lock(&P.mu);
    /* wait for the first job posted after the pool started (a worker that
     * took the last job before it for new would run it again, racing with
     * the caller's next job for its fields) */
    uint64_t seen = P.start_gen;
    for (;;) {
        if (!P.quit && atomic_load(&P.generation) == seen) {
            pthread_mutex_unlock(&P.mu);
            spin_until_changed(&P.generation, seen);
            pthread_mutex_lock(&P.mu);
        }
        while (!P.quit && P.generation == seen) pthread_cond_wait(&P.wake, &P.mu);
        if (P.quit) break;
        seen = P.generation;
        pthread_mutex_unlock(&P.mu);
        run_chunks(tid);
        pthread_mutex_lock(&P.mu);
        if (--P.active == 0) pthread_cond_signal(&P.done_cv);
    }
    pthread_mutex_unlock(&P.mu);
    void (*fn)(void) = exit_hook;
    if (fn) fn();
    return NULL;
}

void sx_threads_on_exit(void (*fn)(void)) { exit_hook = fn; }

static void main_thread_exit(void) {
    void (*fn)(void) = exit_hook;
    if (fn) fn();
}

static void pool_stop(void) {
    if (P.n <= 1) return;
    pthread_mutex_lock(&P.mu);
    P.quit = 1;
    pthread_cond_broadcast(&P.wake);
    pthread_mutex_unlock(&P.mu);
    for (int i = 1; i < P.n; i++) pthread_join(P.tid[i], NULL);
    P.quit = 0;
    P.n = 1;
}

int sx_threads_init(int n) {
    if (n <= 0) {
        const char *e = getenv("SEEDX_THREADS");
        if (e && *e) {
            char *end;
            long v = strtol(e, &end, 10);
            if (*end || v <= 0) return sx_err("SEEDX_THREADS='%s' is not a positive integer", e);
            n = (int)v;
        } else {
            long c = sysconf(_SC_NPROCESSORS_ONLN);
            n = c > 0 ? (int)c : 1;
        }
    }
    if (n > SX_MAX_THREADS) n = SX_MAX_THREADS;
    if (n == P.n) return 0;
    pool_stop();
    static int registered;
    if (!registered) {
        atexit(main_thread_exit); /* runs after pool_stop (reverse order) */
        atexit(pool_stop);
        registered = 1;
    }
    P.start_gen = P.generation; /* (no job runs while the pool is being changed) */
    for (int i = 1; i < n; i++) {
        if (pthread_create(&P.tid[i], NULL, worker, (void *)(intptr_t)i) != 0) {
            P.n = i;
            pool_stop();
            return sx_err("could not start thread %d of %d", i, n);
        }
        P.n = i + 1;
    }
    P.n = n;
    return 0;
}

int sx_threads_count(void) { return P.n; }

void sx_parallel_for(int64_t n, int64_t chunk, sx_task_fn fn, void *ctx) {
    if (n <= 0) return;
    if (chunk <= 0) chunk = 1;
    if (P.n <= 1 || in_task || n <= chunk) {
        int was = in_task;
        in_task = 1;
        for (int64_t b = 0; b < n; b += chunk) fn(ctx, b, b + chunk < n ? b + chunk : n, 0);
        in_task = was;
        return;
    }
    pthread_mutex_lock(&job_mu);
    pthread_mutex_lock(&P.mu);
    P.fn = fn;
    P.ctx = ctx;
    P.n_items = n;
    P.chunk = chunk;
    atomic_store(&P.next, 0);
    P.active = P.n - 1;
    P.generation++;
    pthread_cond_broadcast(&P.wake);
    pthread_mutex_unlock(&P.mu);
    in_task = 1;
    run_chunks(0);
    in_task = 0;
    double t0 = sx_time(); /* the workers' last chunks: spin, then sleep */
    while (atomic_load(&P.active) > 0 && sx_time() - t0 < SPIN_SECONDS)
        for (int i = 0; i < 64 && atomic_load_explicit(&P.active, memory_order_relaxed) > 0; i++)
            cpu_relax();
    pthread_mutex_lock(&P.mu);
    while (P.active > 0) pthread_cond_wait(&P.done_cv, &P.mu);
    pthread_mutex_unlock(&P.mu);
    pthread_mutex_unlock(&job_mu);
}
