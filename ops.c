/* ops.c - the kernel layer: scalar reference kernels, SIMD dispatch, and the
 * drivers (GEMM blocking and threading, attention tiling, conv via im2col)
 * shared by every ISA. Per-ISA inner kernels live in ops_<isa>.c behind the
 * table in ops_impl.h. */
#include <math.h>
#include <stdio.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "ops_impl.h"
#include "seedx.h"

/* ======================================================================
 * float16 / bfloat16
 * ====================================================================== */
float sx_f16_to_f32(uint16_t h) {
    uint32_t s = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0) {
        if (m == 0) {
            u = s;
        } else { /* subnormal: renormalise */
            e = 127 - 15 + 1;
            while (!(m & 0x400)) {
                m <<= 1;
                e--;
            }
            m &= 0x3ff;
            u = s | (e << 23) | (m << 13);
        }
    } else if (e == 31) {
        u = s | 0x7f800000u | (m << 13);
    } else {
        u = s | ((e + 127 - 15) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t sx_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t s = (u >> 16) & 0x8000;
    int32_t e = (int32_t)((u >> 23) & 0xff);
    uint32_t m = u & 0x7fffff;
    if (e == 255) return (uint16_t)(s | 0x7c00 | (m ? 0x200 : 0));
    int32_t ne = e - 127 + 15;
    if (ne >= 31) return (uint16_t)(s | 0x7c00);
    if (ne <= 0) { /* subnormal or zero */
        if (ne < -10) return (uint16_t)s;
        m |= 0x800000;
        int shift = 14 - ne;
        uint32_t hm = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (hm & 1))) hm++;
        return (uint16_t)(s | hm);
    }
    uint32_t hm = m >> 13, rem = m & 0x1fff;
    uint32_t r = s | ((uint32_t)ne << 10) | hm;
    if (rem > 0x1000 || (rem == 0x1000 && (hm & 1))) r++; /* may carry into exponent: correct */
    return (uint16_t)r;
}

float sx_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t sx_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static void f16_to_f32_scalar(float *y, const uint16_t *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = sx_f16_to_f32(x[i]);
}
static void bf16_to_f32_scalar(float *y, const uint16_t *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = sx_bf16_to_f32(x[i]);
}

/* ======================================================================
 * scalar reference kernels
 * ====================================================================== */
#define SC_MR 4
#define SC_NR 8
static void ukr_scalar(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                       int load_c) {
    float acc[SC_MR][SC_NR];
    for (int i = 0; i < SC_MR; i++)
        for (int j = 0; j < SC_NR; j++) acc[i][j] = load_c ? c[i * ldc + j] : 0.0f;
    for (int64_t k = 0; k < kc; k++) {
        const float *ak = a + k * SC_MR, *bk = b + k * SC_NR;
        for (int i = 0; i < SC_MR; i++)
            for (int j = 0; j < SC_NR; j++) acc[i][j] += ak[i] * bk[j];
    }
    for (int i = 0; i < SC_MR; i++)
        for (int j = 0; j < SC_NR; j++) c[i * ldc + j] = acc[i][j];
}

static float load_w(const void *w, int type, int64_t i) {
    switch (type) {
    case SX_F16: return sx_f16_to_f32(((const uint16_t *)w)[i]);
    case SX_BF16: return sx_bf16_to_f32(((const uint16_t *)w)[i]);
    default: return ((const float *)w)[i];
    }
}

static void gemv_scalar(float *y, int64_t ldy, const float *x, int64_t ldx, int m, const void *w,
                        int type, int64_t ld, int64_t n0, int64_t n1, int64_t K,
                        const float *bias) {
    size_t es = type == SX_F32 ? 4 : 2;
    for (int64_t n = n0; n < n1; n++) {
        const char *wr = (const char *)w + (size_t)n * (size_t)ld * es;
        for (int r = 0; r < m; r++) {
            float s = 0;
            for (int64_t k = 0; k < K; k++) s += x[r * ldx + k] * load_w(wr, type, k);
            y[r * ldy + n] = s + (bias ? bias[n] : 0.0f);
        }
    }
}

static void softmax_row_scalar(float *x, int64_t n, float scale) {
    float mx = -INFINITY, s = 0;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    float m = mx * scale;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] * scale - m);
        s += x[i];
    }
    float inv = 1.0f / s;
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

const sx_kernels sx_kernels_scalar = {"scalar",           SC_MR,          SC_NR,
                                      ukr_scalar,         gemv_scalar,    f16_to_f32_scalar,
                                      bf16_to_f32_scalar, softmax_row_scalar};

/* ======================================================================
 * SIMD selection
 * ====================================================================== */
static const sx_kernels *K_ = &sx_kernels_scalar;
static int simd_level = SX_SIMD_SCALAR;

const char *sx_simd_name(int level) {
    switch (level) {
    case SX_SIMD_SCALAR: return "scalar";
    case SX_SIMD_AVX2: return "avx2";
    case SX_SIMD_AVX512: return "avx512";
    case SX_SIMD_NEON: return "neon";
    }
    return "?";
}

static const sx_kernels *kernels_for(int level) {
    switch (level) {
    case SX_SIMD_SCALAR: return &sx_kernels_scalar;
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
    case SX_SIMD_AVX2: return &sx_kernels_avx2;
    case SX_SIMD_AVX512: return &sx_kernels_avx512;
#endif
#if defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
    case SX_SIMD_NEON: return &sx_kernels_neon;
#endif
    }
    return NULL;
}

#if defined(__x86_64__)
/* CPUID feature bits, plus the OS's consent (XCR0) to save the wider
 * register state. */
static int x86_has(int level) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return 0;
    unsigned xlo, xhi;
    __asm__("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    (void)xhi;
    if ((xlo & 6) != 6) return 0; /* XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
    int avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    if (level == SX_SIMD_AVX2) return avx2 && fma && f16c;
    if (level == SX_SIMD_AVX512)
        return avx2 && fma && f16c && avx512f && avx512dq && avx512bw && avx512vl &&
               (xlo & 0xe6) == 0xe6; /* opmask, ZMM_Hi256, Hi16_ZMM state */
    return 0;
}
#endif

int sx_simd_supported(int level) {
    if (!kernels_for(level)) return 0;
#if defined(__x86_64__)
    if (level == SX_SIMD_AVX2 || level == SX_SIMD_AVX512) return x86_has(level);
#endif
    return 1;
}

int sx_simd_set(int level) {
    if (!sx_simd_supported(level))
        return sx_err("SIMD path '%s' is not supported by this CPU or build", sx_simd_name(level));
    K_ = kernels_for(level);
    simd_level = level;
    return 0;
}

int sx_simd_level(void) { return simd_level; }

int sx_simd_init(void) {
    const char *e = getenv("SEEDX_SIMD");
    if (e && *e) {
        for (int l = 0; l <= SX_SIMD_NEON; l++)
            if (!strcmp(e, sx_simd_name(l))) return sx_simd_set(l);
        return sx_err("SEEDX_SIMD='%s': expected scalar, avx2, avx512 or neon", e);
    }
    for (int l = SX_SIMD_NEON; l >= 0; l--)
        if (sx_simd_supported(l)) return sx_simd_set(l);
    return sx_simd_set(SX_SIMD_SCALAR);
}

void sx_f16_to_f32_n(float *y, const uint16_t *x, int64_t n) { K_->f16_to_f32(y, x, n); }
void sx_bf16_to_f32_n(float *y, const uint16_t *x, int64_t n) { K_->bf16_to_f32(y, x, n); }

/* ======================================================================
 * weights
 * ====================================================================== */
static int64_t prod_from(const sx_tensor *t, int d) {
    int64_t p = 1;
    for (int i = d; i < t->ndim; i++) p *= t->shape[i];
    return p;
}

static void shape_str(char *buf, size_t n, const sx_tensor *t) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* Run-time weight type: -1 = as stored. */
static int weight_override = -1;

int sx_set_weight_dtype(int type) {
    if (type != -1 && type != SX_F32 && type != SX_F16 && type != SX_BF16)
        return sx_err("weight type must be F32, F16 or BF16 (got %d)", type);
    weight_override = type;
    return 0;
}

static int weight_from(sx_gguf *g, const char *name, int64_t d0, int64_t d1, int trans,
                       sx_weight *w) {
    const sx_tensor *t = sx_gguf_find(g, name);
    if (!t) return sx_err("%s: tensor '%s' not found", sx_gguf_path(g), name);
    char sh[128];
    shape_str(sh, sizeof sh, t);
    if (t->type != SX_F32 && t->type != SX_F16 && t->type != SX_BF16)
        return sx_err("%s: tensor '%s' has type %s, expected F32, F16 or BF16", sx_gguf_path(g),
                      name, sx_type_name(t->type));
    if (t->ndim < 2 || t->shape[0] != d0 || prod_from(t, 1) != d1)
        return sx_err("%s: tensor '%s' has shape %s, expected [%lld,%lld]%s", sx_gguf_path(g), name,
                      sh, (long long)d0, (long long)d1,
                      t->ndim > 2 ? " (trailing dims flattened)" : "");
    memset(w, 0, sizeof *w);
    w->type = t->type;
    w->trans = trans;
    w->N = trans ? d1 : d0;
    w->K = trans ? d0 : d1;
    w->ld = d1;
    w->data = t->data;
    w->name = t->name;
    if (weight_override >= 0 && weight_override != t->type) {
        if (!(w->data = sx_gguf_tensor_as(g, t, weight_override))) return -1;
        w->type = weight_override;
    }
    return 0;
}

int sx_weight_get(sx_gguf *g, const char *name, int64_t N, int64_t K, sx_weight *w) {
    return weight_from(g, name, N, K, 0, w);
}

int sx_weight_get_t(sx_gguf *g, const char *name, int64_t K, int64_t N, sx_weight *w) {
    return weight_from(g, name, K, N, 1, w);
}

sx_weight sx_weight_f32(const float *data, int64_t N, int64_t K) {
    sx_weight w;
    memset(&w, 0, sizeof w);
    w.type = SX_F32;
    w.N = N;
    w.K = K;
    w.ld = K;
    w.data = data;
    return w;
}

static size_t type_size(int type) { return type == SX_F32 ? 4 : 2; }

/* ======================================================================
 * Per-thread scratch buffers, grown on demand and kept: fresh large
 * mallocs are mmap'ed and every page faults on first touch, which costs as
 * much as the arithmetic for the small GEMMs inside attention.
 * Slots: 0/1 GEMM packs, 2 attention scores, 3/4 conv im2col and output,
 * 5 attention's pre-packed keys and values.
 * ====================================================================== */
#define SX_SCRATCH_SLOTS 6
static _Thread_local float *scr_buf[SX_SCRATCH_SLOTS];
static _Thread_local size_t scr_cap[SX_SCRATCH_SLOTS];

static float *scratch(int slot, size_t n) {
    if (n > scr_cap[slot]) {
        free(scr_buf[slot]);
        size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
        scr_buf[slot] = bytes / sizeof(float) >= n ? aligned_alloc(64, bytes) : NULL;
        scr_cap[slot] = scr_buf[slot] ? n : 0;
    }
    return scr_buf[slot];
}

void sx_ops_thread_cleanup(void) {
    for (int i = 0; i < SX_SCRATCH_SLOTS; i++) {
        free(scr_buf[i]);
        scr_buf[i] = NULL;
        scr_cap[i] = 0;
    }
}

sx_weight sx_weight_rows(const sx_weight *w, int64_t n0, int64_t n) {
    sx_weight r = *w;
    r.N = n;
    r.packed = NULL;
    if (w->trans)
        r.data = (const char *)w->data + (size_t)n0 * type_size(w->type);
    else
        r.data = (const char *)w->data + (size_t)n0 * (size_t)w->ld * type_size(w->type);
    return r;
}

/* ======================================================================
 * GEMM: Y[M,N] = X[M,K] W^T + bias
 *   1. pack X into mr-row panels [M/mr][K][mr] and W into nr-row panels
 *      [N/nr][K][nr] (converting F16/BF16 to F32), each once per call and
 *      in parallel over panels;
 *   2. tasks = (MC rows) x (NC columns) blocks claimed by threads; inside a
 *      task, for each KC slice, the micro-kernel runs over the nr-panels
 *      (kept in L1) and mr-panels (in L2).
 *   Each output element is summed over k in the same order whatever the
 *   thread count. W is processed in column slabs so the packed copy stays
 *   below GEMM_B_MAX floats; X in row slabs likewise.
 * ====================================================================== */
#ifndef GEMM_KC
#define GEMM_KC 2048
#endif
#ifndef GEMM_MC_PANELS
#define GEMM_MC_PANELS 32 /* MC = 32 * mr rows */
#endif
#define GEMM_NC 256
#define GEMM_B_MAX ((int64_t)8 << 20) /* floats of packed W per slab (32 MB) */
#define GEMM_A_MAX ((int64_t)8 << 20)

typedef struct {
    float *Y;
    int64_t ldy;
    const float *ap, *bp; /* packed panels */
    const float *bias;
    int64_t M, N, K, mc, nc, n_mblk, n_nblk;
    const sx_kernels *k;
    int64_t bK; /* K of the packed-W layout (panel stride / nr); 0: K */
} gemm_job;

typedef struct {
    float *dst;
    const float *X;
    int64_t ldx, M, K;
    const sx_weight *W;
    int64_t n0, N;
    int r;
    const sx_kernels *k;
} pack_job;

/* X rows [p*mr, p*mr+mr) -> dst[p][K][mr] (zero rows past M). Written in
 * k order so the stores are sequential; the mr source rows are read as
 * parallel streams. */
static void pack_a_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    pack_job *J = ctx;
    int mr = J->r;
    const float *rows[32];
    for (int64_t p = b; p < e; p++) {
        float *dst = J->dst + p * mr * J->K;
        int nrow = (int)(J->M - p * mr < mr ? J->M - p * mr : mr);
        for (int r = 0; r < nrow; r++) rows[r] = J->X + (p * mr + r) * J->ldx;
        for (int64_t k = 0; k < J->K; k++) {
            float *d = dst + k * mr;
            for (int r = 0; r < nrow; r++) d[r] = rows[r][k];
            for (int r = nrow; r < mr; r++) d[r] = 0.0f;
        }
    }
}

/* W rows [n0 + p*nr, +nr) -> dst[p][K][nr] as F32 (zero rows past N).
 * F16/BF16 rows are first converted, PACK_KB columns at a time, into a
 * small F32 block (vector conversion), then copied in k order. */
#define PACK_KB 64
static void pack_b_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    pack_job *J = ctx;
    const sx_weight *W = J->W;
    int nr = J->r;
    size_t es = type_size(W->type);
    float blk[64 * PACK_KB];
    const float *rows[64];
    for (int64_t p = b; p < e; p++) {
        float *dst = J->dst + p * nr * J->K;
        int64_t c0 = J->n0 + p * nr;
        int cols = (int)(J->N - p * nr < nr ? J->N - p * nr : nr);
        if (!W->trans) {
            for (int64_t k0 = 0; k0 < J->K; k0 += PACK_KB) {
                int64_t kb = J->K - k0 < PACK_KB ? J->K - k0 : PACK_KB;
                for (int j = 0; j < cols; j++) {
                    const char *src =
                        (const char *)W->data + ((size_t)(c0 + j) * (size_t)W->ld + (size_t)k0) * es;
                    if (W->type == SX_F32) {
                        rows[j] = (const float *)src;
                    } else {
                        if (W->type == SX_F16)
                            J->k->f16_to_f32(blk + j * PACK_KB, (const uint16_t *)src, kb);
                        else
                            J->k->bf16_to_f32(blk + j * PACK_KB, (const uint16_t *)src, kb);
                        rows[j] = blk + j * PACK_KB;
                    }
                }
                for (int64_t k = 0; k < kb; k++) {
                    float *d = dst + (k0 + k) * nr;
                    for (int j = 0; j < cols; j++) d[j] = rows[j][k];
                    for (int j = cols; j < nr; j++) d[j] = 0.0f;
                }
            }
        } else {
            for (int64_t k = 0; k < J->K; k++) {
                const char *src = (const char *)W->data + ((size_t)k * (size_t)W->ld + (size_t)c0) * es;
                float *d = dst + k * nr;
                if (W->type == SX_F32)
                    memcpy(d, src, (size_t)cols * 4);
                else if (W->type == SX_F16)
                    J->k->f16_to_f32(d, (const uint16_t *)src, cols);
                else
                    J->k->bf16_to_f32(d, (const uint16_t *)src, cols);
                for (int j = cols; j < nr; j++) d[j] = 0.0f;
            }
        }
    }
}

static void gemm_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    gemm_job *J = ctx;
    const sx_kernels *kk = J->k;
    int mr = kk->mr, nr = kk->nr;
    float tile[16 * 64];
    for (int64_t t = b; t < e; t++) {
        int64_t mi = t / J->n_nblk, ni = t % J->n_nblk;
        int64_t m0 = mi * J->mc, n0 = ni * J->nc;
        int64_t mc = J->M - m0 < J->mc ? J->M - m0 : J->mc;
        int64_t nc = J->N - n0 < J->nc ? J->N - n0 : J->nc;
        for (int64_t k0 = 0; k0 < J->K; k0 += GEMM_KC) {
            int64_t kc = J->K - k0 < GEMM_KC ? J->K - k0 : GEMM_KC;
            for (int64_t jp = 0; jp < nc; jp += nr) {
                const float *bpan = J->bp + (n0 + jp) * (J->bK ? J->bK : J->K) + k0 * nr;
                for (int64_t ip = 0; ip < mc; ip += mr) {
                    const float *apan = J->ap + (m0 + ip) * J->K + k0 * mr;
                    float *c = J->Y + (m0 + ip) * J->ldy + n0 + jp;
                    if (ip + mr <= mc && jp + nr <= nc) {
                        kk->ukr(kc, apan, bpan, c, J->ldy, k0 > 0);
                    } else {
                        int rows = (int)(mc - ip < mr ? mc - ip : mr);
                        int cols = (int)(nc - jp < nr ? nc - jp : nr);
                        for (int i = 0; i < mr; i++)
                            for (int j = 0; j < nr; j++)
                                tile[i * nr + j] =
                                    (k0 > 0 && i < rows && j < cols) ? c[i * J->ldy + j] : 0.0f;
                        kk->ukr(kc, apan, bpan, tile, nr, 1);
                        for (int i = 0; i < rows; i++)
                            for (int j = 0; j < cols; j++) c[i * J->ldy + j] = tile[i * nr + j];
                    }
                }
            }
        }
        if (J->bias)
            for (int64_t i = 0; i < mc; i++) {
                float *c = J->Y + (m0 + i) * J->ldy + n0;
                for (int64_t j = 0; j < nc; j++) c[j] += J->bias[n0 + j];
            }
    }
}

typedef struct {
    float *Y;
    int64_t ldy;
    const float *X;
    int64_t ldx;
    const sx_weight *W;
    const float *bias;
    int64_t M, K;
} gemv_job;

static void gemv_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    gemv_job *J = ctx;
    for (int64_t m0 = 0; m0 < J->M; m0 += SX_GEMV_MAX_M) {
        int m = (int)(J->M - m0 < SX_GEMV_MAX_M ? J->M - m0 : SX_GEMV_MAX_M);
        K_->gemv(J->Y + m0 * J->ldy, J->ldy, J->X + m0 * J->ldx, J->ldx, m, J->W->data,
                 J->W->type, J->W->ld, b, e, J->K, J->bias);
    }
}

int sx_matmul_ld(float *Y, int64_t ldy, const float *X, int64_t ldx, const sx_weight *W,
                 const float *bias, int64_t M) {
    if (!Y || !X || !W || !W->data)
        return sx_err("sx_matmul: NULL argument (weight '%s')", W && W->name ? W->name : "?");
    if (M < 0 || W->N <= 0 || W->K <= 0 || ldx < W->K || ldy < W->N)
        return sx_err("sx_matmul: bad sizes for weight '%s': M=%lld N=%lld K=%lld ldx=%lld ldy=%lld",
                      W->name ? W->name : "?", (long long)M, (long long)W->N, (long long)W->K,
                      (long long)ldx, (long long)ldy);
    if (W->type != SX_F32 && W->type != SX_F16 && W->type != SX_BF16)
        return sx_err("sx_matmul: weight '%s' has unsupported type %s", W->name ? W->name : "?",
                      sx_type_name(W->type));
    if (M == 0) return 0;
    if (M <= 2 * SX_GEMV_MAX_M && !W->trans) {
        /* matrix-vector: stream each weight row once per 4 rows of X */
        gemv_job J = {Y, ldy, X, ldx, W, bias, M, W->K};
        int64_t chunk = 16;
        while (chunk * 64 < W->N && chunk < 256) chunk *= 2;
        sx_parallel_for(W->N, chunk, gemv_task, &J);
        return 0;
    }
    const sx_kernels *kk = K_;
    int mr = kk->mr, nr = kk->nr;
    int64_t K = W->K;
    /* slabs: rows of X and columns of W whose packed copies fit the caps */
    int64_t ms = (GEMM_A_MAX / K) / mr * mr, ns = (GEMM_B_MAX / K) / nr * nr;
    if (ms < mr) ms = mr;
    if (ns < nr) ns = nr;
    if (ms > M) ms = (M + mr - 1) / mr * mr;
    if (ns > W->N) ns = (W->N + nr - 1) / nr * nr;
    float *ap = scratch(0, (size_t)ms * (size_t)K);
    float *bp = scratch(1, (size_t)ns * (size_t)K);
    if (!ap || !bp)
        return sx_err("sx_matmul: out of memory packing '%s' (M=%lld N=%lld K=%lld)",
                      W->name ? W->name : "?", (long long)M, (long long)W->N, (long long)K);
    for (int64_t m0 = 0; m0 < M; m0 += ms) {
        int64_t mcnt = M - m0 < ms ? M - m0 : ms;
        pack_job PA = {ap, X + m0 * ldx, ldx, mcnt, K, NULL, 0, 0, mr, kk};
        sx_parallel_for((mcnt + mr - 1) / mr, 4, pack_a_task, &PA);
        for (int64_t n0 = 0; n0 < W->N; n0 += ns) {
            int64_t ncnt = W->N - n0 < ns ? W->N - n0 : ns;
            pack_job PB = {bp, NULL, 0, 0, K, W, n0, ncnt, nr, kk};
            sx_parallel_for((ncnt + nr - 1) / nr, 2, pack_b_task, &PB);
            gemm_job J = {Y + m0 * ldy + n0, ldy, ap, bp, bias ? bias + n0 : NULL,
                          mcnt, ncnt, K, (int64_t)GEMM_MC_PANELS * mr, GEMM_NC, 0, 0, kk, 0};
            J.n_mblk = (mcnt + J.mc - 1) / J.mc;
            /* enough tasks for all threads: shrink the blocks (multiples of nr / mr) */
            while (J.nc > nr && J.n_mblk * ((ncnt + J.nc - 1) / J.nc) < 4 * sx_threads_count())
                J.nc -= nr;
            while (J.mc > mr && ((mcnt + J.mc - 1) / J.mc) * ((ncnt + J.nc - 1) / J.nc) <
                                    4 * sx_threads_count())
                J.mc -= mr;
            J.n_mblk = (mcnt + J.mc - 1) / J.mc;
            J.n_nblk = (ncnt + J.nc - 1) / J.nc;
            sx_parallel_for(J.n_mblk * J.n_nblk, 1, gemm_task, &J);
        }
    }
    return 0;
}

int sx_matmul(float *Y, const float *X, const sx_weight *W, const float *bias, int64_t M) {
    if (!W) return sx_err("sx_matmul: NULL weight");
    return sx_matmul_ld(Y, W->N, X, W->K, W, bias, M);
}

/* ======================================================================
 * attention: tasks = (head, block of queries); per task S = q k^T (scaled,
 * masked), softmax over keys, o = S v. Scratch: block x Tk floats.
 * ====================================================================== */
#ifndef ATTN_QB_MAX
#define ATTN_QB_MAX 256
#endif
typedef struct {
    const sx_attn *a;
    float *o;
    const float *q, *k, *v;
    int64_t Tq, Tk, qb, n_qb;
    int failed;
    /* pre-packed path: per kv head, keys as nr-column panels [Tk/nr][hd][nr]
     * (B of S = q k^T) and values as [hd/nr][Tk][nr] (B of o = S v) */
    const float *kp, *vp;
    int64_t kp_head, vp_head; /* floats per kv head */
} attn_job;

static void attn_pack_task(void *ctx, int64_t b, int64_t e, int tid) {
    attn_job *J = ctx;
    const sx_attn *a = J->a;
    const sx_kernels *kk = K_;
    int nr = kk->nr;
    for (int64_t hk = b; hk < e; hk++) {
        sx_weight kw = sx_weight_f32(J->k + hk * a->k_head, J->Tk, a->head_dim);
        kw.ld = a->k_tok;
        pack_job PK = {(float *)J->kp + hk * J->kp_head, NULL, 0, 0, a->head_dim, &kw, 0, J->Tk, nr, kk};
        pack_b_task(&PK, 0, (J->Tk + nr - 1) / nr, tid);
        sx_weight vw;
        memset(&vw, 0, sizeof vw);
        vw.type = SX_F32;
        vw.trans = 1;
        vw.N = a->head_dim;
        vw.K = J->Tk;
        vw.ld = a->v_tok;
        vw.data = J->v + hk * a->v_head;
        pack_job PV = {(float *)J->vp + hk * J->vp_head, NULL, 0, 0, J->Tk, &vw, 0, a->head_dim, nr, kk};
        pack_b_task(&PV, 0, (a->head_dim + nr - 1) / nr, tid);
    }
}

/* y[M, N] = x[M, K] . (pre-packed B)^T on the calling thread */
static void gemm_prepacked(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M,
                           const float *bp, int64_t N, int64_t K, int64_t bK, float *ap, int tid) {
    const sx_kernels *kk = K_;
    pack_job PA = {ap, x, ldx, M, K, NULL, 0, 0, kk->mr, kk};
    pack_a_task(&PA, 0, (M + kk->mr - 1) / kk->mr, tid);
    gemm_job G = {y, ldy, ap, bp, NULL, M, N, K, M, N, 1, 1, kk, bK};
    gemm_task(&G, 0, 1, tid);
}

static void attn_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    attn_job *J = ctx;
    const sx_attn *a = J->a;
    int group = a->n_heads / a->n_kv_heads;
    for (int64_t t = b; t < e; t++) {
        int h = (int)(t / J->n_qb);
        int64_t q0 = (t % J->n_qb) * J->qb;
        int64_t nq = J->Tq - q0 < J->qb ? J->Tq - q0 : J->qb;
        int hk = h / group;
        /* keys this block can see */
        int64_t nk = J->Tk;
        if (a->causal) {
            int64_t lim = q0 + nq - 1 + a->causal_offset + 1;
            if (lim < nk) nk = lim < 0 ? 0 : lim;
        }
        float *S = scratch(2, (size_t)nq * (size_t)(nk > 0 ? nk : 1));
        if (!S) {
            J->failed = 1;
            continue;
        }
        const float *qh = J->q + q0 * a->q_tok + (int64_t)h * a->q_head;
        float *oh = J->o + q0 * a->o_tok + (int64_t)h * a->o_head;
        if (nk == 0) {
            for (int64_t i = 0; i < nq; i++) memset(oh + i * a->o_tok, 0, sizeof(float) * a->head_dim);
            continue;
        }
        int mr = K_->mr;
        float *ap = NULL;
        if (J->kp) {
            /* S = q k^T [nq, nk] against the pre-packed keys of this kv head */
            ap = scratch(0, (size_t)((nq + mr - 1) / mr * mr) * (size_t)(nk > a->head_dim ? nk : a->head_dim));
            if (!ap) {
                J->failed = 1;
                continue;
            }
            gemm_prepacked(S, nk, qh, a->q_tok, nq, J->kp + hk * J->kp_head, nk, a->head_dim, 0, ap,
                           tid);
        } else {
            sx_weight kw = sx_weight_f32(J->k + (int64_t)hk * a->k_head, nk, a->head_dim);
            kw.ld = a->k_tok;
            if (sx_matmul_ld(S, nk, qh, a->q_tok, &kw, NULL, nq)) { /* [nq, nk] */
                J->failed = 1;
                continue;
            }
        }
        for (int64_t i = 0; i < nq; i++) {
            float *s = S + i * nk;
            int64_t vis = nk;
            if (a->causal) {
                vis = q0 + i + a->causal_offset + 1;
                if (vis > nk) vis = nk;
                if (vis < 0) vis = 0;
            }
            if (vis > 0) K_->softmax_row(s, vis, a->scale);
            for (int64_t j = vis; j < nk; j++) s[j] = 0.0f;
        }
        if (J->kp) {
            /* o = S v [nq, head_dim]; the value panels hold all Tk keys */
            gemm_prepacked(oh, a->o_tok, S, nk, nq, J->vp + hk * J->vp_head, a->head_dim, nk, J->Tk,
                           ap, tid);
            continue;
        }
        sx_weight vw;
        memset(&vw, 0, sizeof vw);
        vw.type = SX_F32;
        vw.trans = 1;
        vw.N = a->head_dim;
        vw.K = nk;
        vw.ld = a->v_tok;
        vw.data = J->v + (int64_t)hk * a->v_head;
        if (sx_matmul_ld(oh, a->o_tok, S, nk, &vw, NULL, nq)) /* [nq, head_dim] */
            J->failed = 1;
    }
}

int sx_attention(const sx_attn *a, float *o, const float *q, const float *k, const float *v,
                 int64_t Tq, int64_t Tk) {
    if (!a || !o || !q || !k || !v) return sx_err("sx_attention: NULL argument");
    if (a->n_heads <= 0 || a->n_kv_heads <= 0 || a->head_dim <= 0 ||
        a->n_heads % a->n_kv_heads != 0 || Tq < 0 || Tk < 0)
        return sx_err("sx_attention: bad sizes: heads %d kv_heads %d head_dim %d Tq %lld Tk %lld",
                      a->n_heads, a->n_kv_heads, a->head_dim, (long long)Tq, (long long)Tk);
    if (Tq == 0) return 0;
    /* query blocks: large, so the packed keys are reused by many queries, and
     * the same for any thread count (a block's size decides its GEMM path,
     * hence its summation order) */
    int64_t qb = ATTN_QB_MAX;
    attn_job J = {a, o, q, k, v, Tq, Tk, qb, (Tq + qb - 1) / qb, 0, NULL, NULL, 0, 0};
    /* More than a few queries: pack every kv head's keys and values once, so
     * the query blocks share them (decode steps keep the direct path). */
    if (Tq > 2 * SX_GEMV_MAX_M && Tk > 0) {
        int nr = K_->nr;
        J.kp_head = (Tk + nr - 1) / nr * nr * a->head_dim;
        J.vp_head = ((int64_t)a->head_dim + nr - 1) / nr * nr * Tk;
        float *buf = scratch(5, (size_t)a->n_kv_heads * (size_t)(J.kp_head + J.vp_head));
        if (!buf)
            return sx_err("sx_attention: out of memory packing %lld keys x %d kv heads",
                          (long long)Tk, a->n_kv_heads);
        J.kp = buf;
        J.vp = buf + (int64_t)a->n_kv_heads * J.kp_head;
        sx_parallel_for(a->n_kv_heads, 1, attn_pack_task, &J);
    }
    sx_parallel_for((int64_t)a->n_heads * J.n_qb, 1, attn_task, &J);
    if (J.failed)
        return sx_err("sx_attention: out of memory (%lld queries x %lld keys, %d heads)",
                      (long long)Tq, (long long)Tk, a->n_heads);
    return 0;
}

/* ======================================================================
 * norms, softmax, activations, elementwise
 * ====================================================================== */
void sx_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows,
                  int64_t dim, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        double s = 0, ss = 0;
        for (int64_t i = 0; i < dim; i++) s += xr[i];
        double mean = s / (double)dim;
        for (int64_t i = 0; i < dim; i++) {
            double d = xr[i] - mean;
            ss += d * d;
        }
        float m = (float)mean, rstd = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
        for (int64_t i = 0; i < dim; i++) {
            float v = (xr[i] - m) * rstd;
            if (w) v = v * w[i];
            if (b) v = v + b[i];
            yr[i] = v;
        }
    }
}

void sx_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t dim, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        double ss = 0;
        for (int64_t i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        float rs = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
        for (int64_t i = 0; i < dim; i++) yr[i] = (w ? w[i] : 1.0f) * (xr[i] * rs);
    }
}

typedef struct {
    float *y;
    const float *x, *w, *b;
    int64_t cg, HW;
    float eps;
} gn_job;

/* one group: mean and variance over cg x HW values (double sums), then the
 * per-channel affine */
static void gn_task(void *ctx, int64_t b0, int64_t e0, int tid) {
    (void)tid;
    gn_job *J = ctx;
    int64_t n = J->cg * J->HW;
    for (int64_t g = b0; g < e0; g++) {
        const float *xg = J->x + g * n;
        float *yg = J->y + g * n;
        double s = 0, ss = 0;
        for (int64_t i = 0; i < n; i++) s += xg[i];
        double mean = s / (double)n;
        for (int64_t i = 0; i < n; i++) {
            double d = xg[i] - mean;
            ss += d * d;
        }
        float m = (float)mean, rstd = (float)(1.0 / sqrt(ss / (double)n + (double)J->eps));
        for (int64_t c = 0; c < J->cg; c++) {
            int64_t ch = g * J->cg + c;
            float ww = J->w ? J->w[ch] : 1.0f, bb = J->b ? J->b[ch] : 0.0f;
            for (int64_t i = 0; i < J->HW; i++)
                yg[c * J->HW + i] = (xg[c * J->HW + i] - m) * rstd * ww + bb;
        }
    }
}

int sx_groupnorm(float *y, const float *x, const float *w, const float *b, int64_t C, int64_t HW,
                 int groups, float eps) {
    if (groups <= 0 || C % groups != 0)
        return sx_err("sx_groupnorm: %lld channels not divisible into %d groups", (long long)C,
                      groups);
    gn_job J = {y, x, w, b, C / groups, HW, eps};
    sx_parallel_for(groups, 1, gn_task, &J);
    return 0;
}

void sx_softmax(float *x, int64_t rows, int64_t dim) {
    for (int64_t r = 0; r < rows; r++)
        if (dim > 0) K_->softmax_row(x + r * dim, dim, 1.0f);
}

/* Elementwise ops: each element's result does not depend on how the range is
 * cut, so large arrays are split across the threads in fixed chunks. */
enum { EW_GELU, EW_GELU_TANH, EW_SILU, EW_ADD, EW_MUL };
typedef struct {
    int op;
    float *y;
    const float *a, *b;
} ew_job;
#define EW_CHUNK 16384

static void ew_task(void *ctx, int64_t b0, int64_t e0, int tid) {
    (void)tid;
    ew_job *J = ctx;
    float *y = J->y;
    const float *a = J->a, *b = J->b;
    switch (J->op) {
    case EW_GELU:
        for (int64_t i = b0; i < e0; i++) y[i] = 0.5f * a[i] * (1.0f + erff(a[i] * 0.70710678118654752f));
        break;
    case EW_GELU_TANH:
        for (int64_t i = b0; i < e0; i++) {
            float v = a[i];
            y[i] = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
        }
        break;
    case EW_SILU:
        for (int64_t i = b0; i < e0; i++) y[i] = a[i] / (1.0f + expf(-a[i]));
        break;
    case EW_ADD:
        for (int64_t i = b0; i < e0; i++) y[i] = a[i] + b[i];
        break;
    default:
        for (int64_t i = b0; i < e0; i++) y[i] = a[i] * b[i];
        break;
    }
}

static void ew(int op, float *y, const float *a, const float *b, int64_t n) {
    ew_job J = {op, y, a, b};
    sx_parallel_for(n, EW_CHUNK, ew_task, &J);
}

void sx_gelu(float *y, const float *x, int64_t n) { ew(EW_GELU, y, x, NULL, n); }
void sx_gelu_tanh(float *y, const float *x, int64_t n) { ew(EW_GELU_TANH, y, x, NULL, n); }
void sx_silu(float *y, const float *x, int64_t n) { ew(EW_SILU, y, x, NULL, n); }
void sx_add(float *y, const float *a, const float *b, int64_t n) { ew(EW_ADD, y, a, b, n); }
void sx_mul(float *y, const float *a, const float *b, int64_t n) { ew(EW_MUL, y, a, b, n); }

void sx_scale(float *y, const float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * s;
}

void sx_add_row(float *y, const float *b, int64_t rows, int64_t dim) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < dim; i++) y[r * dim + i] += b[i];
}

void sx_add_channel(float *y, const float *b, int64_t C, int64_t HW) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < HW; i++) y[c * HW + i] += b[c];
}

void sx_transpose(float *y, const float *x, int64_t R, int64_t C) {
    const int64_t B = 32;
    for (int64_t r0 = 0; r0 < R; r0 += B)
        for (int64_t c0 = 0; c0 < C; c0 += B)
            for (int64_t r = r0; r < R && r < r0 + B; r++)
                for (int64_t c = c0; c < C && c < c0 + B; c++) y[c * R + r] = x[r * C + c];
}

/* ======================================================================
 * rotary embedding (HF rotate_half): for i < d/2 with inv_freq_i, angle =
 * pos * inv_freq_i (float32, as HF builds its cos/sin cache):
 *   out[i] = x[i] cos - x[i+d/2] sin; out[i+d/2] = x[i+d/2] cos + x[i] sin
 * ====================================================================== */
void sx_rope(float *x, int64_t T, int n_heads, int head_dim, int64_t tok_stride,
             int64_t head_stride, int64_t pos0, float theta) {
    int half = head_dim / 2;
    float *cs = malloc(sizeof(float) * (size_t)head_dim);
    if (!cs) return;
    for (int64_t t = 0; t < T; t++) {
        float pos = (float)(pos0 + t);
        for (int i = 0; i < half; i++) {
            float inv = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
            float ang = pos * inv;
            cs[i] = cosf(ang);
            cs[half + i] = sinf(ang);
        }
        for (int h = 0; h < n_heads; h++) {
            float *v = x + t * tok_stride + (int64_t)h * head_stride;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half], c = cs[i], s = cs[half + i];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
    }
    free(cs);
}

/* ======================================================================
 * conv2d as GEMM: the output pixels are cut in chunks; for each chunk the
 * im2col rows [P, Cin*kh*kw] are built (in parallel), multiplied by the
 * kernel viewed [Cout, Cin*kh*kw] (the parallel GEMM) and written back
 * transposed into the [Cout, Ho*Wo] output.
 * ====================================================================== */
#define CONV_COL_MAX ((int64_t)6 << 20) /* floats of im2col per chunk (24 MB) */

typedef struct {
    float *col;
    const float *x;
    int64_t H, W, Wo, p0;
    const sx_conv *c;
} im2col_job;

static void im2col_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    im2col_job *J = ctx;
    const sx_conv *c = J->c;
    int64_t Kd = (int64_t)c->cin * c->kh * c->kw;
    for (int64_t p = b; p < e; p++) {
        int64_t oy = (J->p0 + p) / J->Wo, ox = (J->p0 + p) % J->Wo;
        float *r = J->col + p * Kd;
        for (int ci = 0; ci < c->cin; ci++)
            for (int ky = 0; ky < c->kh; ky++) {
                int64_t iy = oy * c->stride - c->pad_t + ky;
                const float *xr = J->x + ((int64_t)ci * J->H + iy) * J->W;
                int inside_y = iy >= 0 && iy < J->H;
                for (int kx = 0; kx < c->kw; kx++) {
                    int64_t ix = ox * c->stride - c->pad_l + kx;
                    *r++ = (inside_y && ix >= 0 && ix < J->W) ? xr[ix] : 0.0f;
                }
            }
    }
}

typedef struct {
    float *y;
    const float *out;
    int64_t np, cout, HWo, p0;
} scatter_job;

static void conv_scatter_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    scatter_job *J = ctx;
    for (int64_t o = b; o < e; o++)
        for (int64_t p = 0; p < J->np; p++) J->y[o * J->HWo + J->p0 + p] = J->out[p * J->cout + o];
}

int sx_conv2d(float *y, const float *x, int64_t H, int64_t W, const sx_conv *c,
              const sx_weight *w, const float *bias, int64_t *Ho, int64_t *Wo) {
    if (!y || !x || !c || !w) return sx_err("sx_conv2d: NULL argument");
    if (c->cin <= 0 || c->cout <= 0 || c->kh <= 0 || c->kw <= 0 || c->stride <= 0 || c->pad_t < 0 ||
        c->pad_l < 0 || c->pad_b < 0 || c->pad_r < 0)
        return sx_err("sx_conv2d: bad conv parameters for '%s'", w->name ? w->name : "?");
    if (w->N != c->cout || w->K != (int64_t)c->cin * c->kh * c->kw || w->trans)
        return sx_err("sx_conv2d: weight '%s' is [%lld,%lld], expected [%d,%d] (Cout, Cin*%d*%d)",
                      w->name ? w->name : "?", (long long)w->N, (long long)w->K, c->cout,
                      c->cin * c->kh * c->kw, c->kh, c->kw);
    int64_t ho = (H + c->pad_t + c->pad_b - c->kh) / c->stride + 1;
    int64_t wo = (W + c->pad_l + c->pad_r - c->kw) / c->stride + 1;
    if (H <= 0 || W <= 0 || ho <= 0 || wo <= 0)
        return sx_err("sx_conv2d: input %lldx%lld too small for a %dx%d kernel ('%s')",
                      (long long)H, (long long)W, c->kh, c->kw, w->name ? w->name : "?");
    int64_t Kd = w->K, HWo = ho * wo;
    int64_t chunk = CONV_COL_MAX / Kd;
    if (chunk < 64) chunk = 64;
    if (chunk > HWo) chunk = HWo;
    float *col = scratch(3, (size_t)chunk * (size_t)Kd);
    float *out = scratch(4, (size_t)chunk * (size_t)c->cout);
    if (!col || !out)
        return sx_err("sx_conv2d: out of memory ('%s')", w->name ? w->name : "?");
    int rc = 0;
    for (int64_t p0 = 0; p0 < HWo && rc == 0; p0 += chunk) {
        int64_t np = HWo - p0 < chunk ? HWo - p0 : chunk;
        im2col_job IJ = {col, x, H, W, wo, p0, c};
        sx_parallel_for(np, 16, im2col_task, &IJ);
        rc = sx_matmul_ld(out, c->cout, col, Kd, w, bias, np); /* [np, Cout] */
        scatter_job SJ = {y, out, np, c->cout, HWo, p0};
        sx_parallel_for(c->cout, 8, conv_scatter_task, &SJ);
    }
    if (rc) return rc;
    if (Ho) *Ho = ho;
    if (Wo) *Wo = wo;
    return 0;
}

/* ======================================================================
 * resampling
 * ====================================================================== */
static float cubic_w(float t, int which) {
    /* PyTorch upsample_bicubic2d, A = -0.75: weights for taps -1, 0, 1, 2 */
    const float A = -0.75f;
    float x;
    switch (which) {
    case 0: x = t + 1.0f; return ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A;
    case 1: x = t; return ((A + 2.0f) * x - (A + 3.0f)) * x * x + 1.0f;
    case 2: x = 1.0f - t; return ((A + 2.0f) * x - (A + 3.0f)) * x * x + 1.0f;
    default: x = 2.0f - t; return ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A;
    }
}

static int64_t clampi(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

void sx_interp_bicubic(float *y, const float *x, int64_t C, int64_t h, int64_t w, int64_t oh,
                       int64_t ow) {
    float sh = (float)h / (float)oh, sw = (float)w / (float)ow;
    for (int64_t oy = 0; oy < oh; oy++) {
        float fy = ((float)oy + 0.5f) * sh - 0.5f;
        int64_t iy = (int64_t)floorf(fy);
        float ty = fy - (float)iy, wy[4];
        for (int k = 0; k < 4; k++) wy[k] = cubic_w(ty, k);
        for (int64_t ox = 0; ox < ow; ox++) {
            float fx = ((float)ox + 0.5f) * sw - 0.5f;
            int64_t ix = (int64_t)floorf(fx);
            float tx = fx - (float)ix, wx[4];
            for (int k = 0; k < 4; k++) wx[k] = cubic_w(tx, k);
            for (int64_t c = 0; c < C; c++) {
                const float *xc = x + c * h * w;
                float acc = 0;
                for (int ky = 0; ky < 4; ky++) {
                    const float *row = xc + clampi(iy - 1 + ky, 0, h - 1) * w;
                    float r = 0;
                    for (int kx = 0; kx < 4; kx++) r += row[clampi(ix - 1 + kx, 0, w - 1)] * wx[kx];
                    acc += r * wy[ky];
                }
                y[(c * oh + oy) * ow + ox] = acc;
            }
        }
    }
}

void sx_upsample_nearest2x(float *y, const float *x, int64_t C, int64_t H, int64_t W) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < 2 * H; i++) {
            const float *src = x + (c * H + i / 2) * W;
            float *dst = y + (c * 2 * H + i) * 2 * W;
            for (int64_t j = 0; j < 2 * W; j++) dst[j] = src[j / 2];
        }
}

void sx_avgpool_tokens(float *y, const float *x, int64_t L, int64_t D, int64_t k) {
    for (int64_t o = 0; o < L / k; o++)
        for (int64_t d = 0; d < D; d++) {
            float s = 0;
            for (int64_t j = 0; j < k; j++) s += x[(o * k + j) * D + d];
            y[o * D + d] = s / (float)k;
        }
}

/* ======================================================================
 * deterministic test data (mirrors scripts/sxrand.py)
 * ====================================================================== */
void sx_rand_uniform(float *y, int64_t n, uint64_t seed, float lo, float hi) {
    uint64_t base = seed * 0x9E3779B97F4A7C15ull;
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = base + (uint64_t)i + 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        float u = (float)(z >> 40) * (1.0f / 16777216.0f);
        y[i] = lo + (hi - lo) * u;
    }
}
