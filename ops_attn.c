/* ops_attn.c - scaled dot-product attention over heads (see sx_attn in
 * ops.h) as a flash-attention loop: for each head and tile of queries, the
 * keys and values of its kv head are streamed block by block through
 * scores -> online softmax -> values (sx_attn_kernels in ops_impl.h), so no
 * Tq x Tk matrix is ever stored. The tile and block sizes depend only on the
 * kernel set, never on the thread count: every output element is computed by
 * one thread in one fixed order. A few queries (decode steps) take the
 * direct path: per head, matrix-vector scores, a softmax row, the weighted
 * sum of the value rows (sx_kernels.values_row), reading the keys and values
 * in place. */
#include <math.h>
#include <string.h>

#include "ops_impl.h"
#include "ops.h"
#include "sx_core.h"

/* Keys per block of the online softmax (rounded down to a multiple of the
 * set's kt); the block's scores (ATTN_KB x qt floats) stay in L1. */
#ifndef ATTN_KB
#define ATTN_KB 128
#endif

/* ======================================================================
 * scalar reference kernel set (and the F32 helpers of ops_impl.h)
 * ====================================================================== */
void sx_attn_f32_pack_q(void *dst, const float *q, int64_t ldq, int nq, int D, int qt) {
    float *qp = dst;
    for (int d = 0; d < D; d++) {
        for (int i = 0; i < nq; i++) qp[(int64_t)d * qt + i] = q[i * ldq + d];
        for (int i = nq; i < qt; i++) qp[(int64_t)d * qt + i] = 0.0f;
    }
}

void sx_attn_f32_finish(float *o, int64_t ldo, const float *ot, const float *l, int nq, int D,
                        int qt) {
    for (int i = 0; i < nq; i++) {
        float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
        for (int d = 0; d < D; d++) o[i * ldo + d] = ot[(int64_t)d * qt + i] * inv;
    }
}

#define SC_QT 8
#define SC_KT 4

static size_t sc_q_bytes(int D) {
    return sizeof(float) * (size_t)D * SC_QT;
}
static void sc_pack_q(void *dst, const float *q, int64_t ldq, int nq, int D) {
    sx_attn_f32_pack_q(dst, q, ldq, nq, D, SC_QT);
}
static void sc_finish(float *o, int64_t ldo, const float *ot, const float *l, int nq, int D) {
    sx_attn_f32_finish(o, ldo, ot, l, nq, D, SC_QT);
}

/* st[j][i] = sum_d k_j[d] q_i[d] (keys past Tk: the last key's row) */
static void sc_scores(float *st, const sx_attn_kv *kv, const void *qp, int64_t k0, int64_t nk,
                      int D) {
    const float *q = qp;
    for (int64_t j = 0; j < nk; j++) {
        const float *kr = kv->k + (k0 + j < kv->Tk ? k0 + j : kv->Tk - 1) * kv->ldk;
        float acc[SC_QT] = {0};
        for (int d = 0; d < D; d++)
            for (int i = 0; i < SC_QT; i++) acc[i] += kr[d] * q[d * SC_QT + i];
        for (int i = 0; i < SC_QT; i++) st[j * SC_QT + i] = acc[i];
    }
}

/* ot[d][i] = alpha_i ot[d][i] + sum_j v_j[d] p[j][i] */
static void sc_values(float *ot, const sx_attn_kv *kv, const float *pt, int64_t k0, int64_t nk,
                      int D, const float *alpha) {
    for (int d = 0; d < D; d++) {
        float acc[SC_QT];
        for (int i = 0; i < SC_QT; i++) acc[i] = alpha ? alpha[i] * ot[d * SC_QT + i] : 0.0f;
        for (int64_t j = 0; j < nk; j++) {
            float vj = kv->v[(k0 + j) * kv->ldv + d];
            for (int i = 0; i < SC_QT; i++) acc[i] += vj * pt[j * SC_QT + i];
        }
        for (int i = 0; i < SC_QT; i++) ot[d * SC_QT + i] = acc[i];
    }
}

static void sc_softmax(float *st, int64_t nk, const int32_t *vis, float scale, float *m, float *l,
                       float *alpha) {
    for (int i = 0; i < SC_QT; i++) {
        int64_t n = vis ? vis[i] : nk;
        float mx = -INFINITY;
        for (int64_t j = 0; j < n; j++) mx = fmaxf(mx, st[j * SC_QT + i]);
        float mn = fmaxf(m[i], mx * scale), ms = mn == -INFINITY ? 0.0f : mn, s = 0.0f;
        for (int64_t j = 0; j < nk; j++) {
            float *p = &st[j * SC_QT + i];
            *p = j < n ? expf(fmaf(*p, scale, -ms)) : 0.0f;
            s += *p;
        }
        alpha[i] = expf(m[i] - ms);
        l[i] = alpha[i] * l[i] + s;
        m[i] = mn;
    }
}

const sx_attn_kernels sx_attn_scalar = {.name = "scalar",
                                        .qt = SC_QT,
                                        .kt = SC_KT,
                                        .dt = 1,
                                        .q_bytes = sc_q_bytes,
                                        .pack_q = sc_pack_q,
                                        .scores = sc_scores,
                                        .values = sc_values,
                                        .softmax = sc_softmax,
                                        .finish = sc_finish};

const sx_attn_kernels *sx_attn_kernels_cur(void) {
    return SX_F32_SET(sx_attn);
}

/* ======================================================================
 * driver
 * ====================================================================== */
typedef struct {
    const sx_attn *a;
    const sx_attn_kernels *ak;
    float *o;
    const float *q, *k, *v;
    int64_t Tq, Tk, n_qt;
    const char *packed; /* the set's packed kv heads (pack_kv), kv_head bytes each */
    size_t kv_head;
    _Atomic int failed;
} attn_job;

/* One kv head as the kernels see it. */
static sx_attn_kv attn_kv_head(const attn_job *J, int hk) {
    const sx_attn *a = J->a;
    sx_attn_kv kv = {J->k + (int64_t)hk * a->k_head,
                     J->v + (int64_t)hk * a->v_head,
                     a->k_tok,
                     a->v_tok,
                     J->Tk,
                     J->packed ? J->packed + (size_t)hk * J->kv_head : NULL};
    return kv;
}

/* pack tasks: (kv head, chunk of about ATTN_PACK_KEYS keys, a multiple of kt) */
#define ATTN_PACK_KEYS 512
static void attn_pack_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    attn_job *J = ctx;
    int64_t ch = ATTN_PACK_KEYS / J->ak->kt * J->ak->kt, nch = (J->Tk + ch - 1) / ch;
    for (int64_t t = b; t < e; t++) {
        int hk = (int)(t / nch);
        int64_t j0 = t % nch * ch, j1 = j0 + ch < J->Tk ? j0 + ch : J->Tk;
        sx_attn_kv kv = attn_kv_head(J, hk);
        J->ak->pack_kv((char *)J->packed + hk * J->kv_head, &kv, J->a->head_dim, j0, j1);
    }
}

/* keys visible to query i (all Tk, or the causal prefix) */
static int64_t attn_visible(const sx_attn *a, int64_t i, int64_t Tk) {
    if (!a->causal) return Tk;
    int64_t n = i + a->causal_offset + 1;
    return n < 0 ? 0 : n > Tk ? Tk : n;
}

static void attn_tile_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    attn_job *J = ctx;
    const sx_attn *a = J->a;
    const sx_attn_kernels *ak = J->ak;
    int qt = ak->qt, D = a->head_dim, group = a->n_heads / a->n_kv_heads;
    int64_t kb = ATTN_KB / ak->kt * ak->kt;
    int64_t Dp = ((int64_t)D + ak->dt - 1) / ak->dt * ak->dt;
    /* scratch: scores [kb][qt], O^T [Dp][qt], m, l, alpha [qt], packed queries */
    size_t nf = (size_t)(kb * qt + Dp * qt + 3 * qt + 16);
    float *scr = sx_scratch(SX_SCR_ATTN_S, nf + (ak->q_bytes(D) + 3) / 4);
    if (!scr) {
        J->failed = 1;
        return;
    }
    float *st = scr, *ot = st + kb * qt, *m = ot + Dp * qt, *l = m + qt, *alpha = l + qt;
    void *qp = scr + nf;
    int32_t vis[SX_ATTN_QT_MAX];
    for (int64_t t = b; t < e; t++) {
        int h = (int)(t / J->n_qt);
        int64_t q0 = (t % J->n_qt) * qt;
        int nq = (int)(J->Tq - q0 < qt ? J->Tq - q0 : qt);
        sx_attn_kv kv = attn_kv_head(J, h / group);
        float *oh = J->o + q0 * a->o_tok + (int64_t)h * a->o_head;
        ak->pack_q(qp, J->q + q0 * a->q_tok + (int64_t)h * a->q_head, a->q_tok, nq, D);
        for (int i = 0; i < qt; i++) m[i] = -INFINITY, l[i] = 0.0f;
        /* keys seen by the tile's last query; the block loop stops there */
        int64_t nkeys = attn_visible(a, q0 + nq - 1, J->Tk);
        for (int64_t k0 = 0; k0 < nkeys; k0 += kb) {
            int64_t nk = nkeys - k0 < kb ? nkeys - k0 : kb;
            int64_t nks = (nk + ak->kt - 1) / ak->kt * ak->kt;
            ak->scores(st, &kv, qp, k0, nks, D);
            /* a mask where some lane sees fewer than the nks rows */
            int masked = nks > nk || attn_visible(a, q0, J->Tk) < k0 + nk;
            for (int i = 0; masked && i < qt; i++) {
                int64_t n = attn_visible(a, q0 + (i < nq ? i : nq - 1), J->Tk) - k0;
                vis[i] = (int32_t)(n < 0 ? 0 : n > nk ? nk : n);
            }
            ak->softmax(st, nks, masked ? vis : NULL, a->scale, m, l, alpha);
            ak->values(ot, &kv, st, k0, nk, D, k0 ? alpha : NULL);
        }
        if (nkeys == 0) /* no key visible to any query of the tile */
            for (int i = 0; i < nq; i++) memset(oh + i * a->o_tok, 0, sizeof(float) * (size_t)D);
        else
            ak->finish(oh, a->o_tok, ot, l, nq, D);
    }
}

/* ---- the direct path for a few queries ---- */
/* o[i] = sum_j p[i][j] v[j] for i < nq over the nk value rows (ldv apart),
 * summed in key order: each value row is read in place (a matrix product
 * with the values as a transposed weight would copy them into panels
 * first), the rows of one head in address order (adjacent in the LLM's KV
 * cache: one stream); the row kernel of the current set, query by query
 * (a head's values stay in L2 for the next query). */
static void values_direct(float *o, int64_t ldo, const float *p, int64_t nq, int64_t nk,
                          const float *v, int64_t ldv, int D) {
    const sx_kernels *kk = sx_kernels_cur();
    for (int64_t i = 0; i < nq; i++) kk->values_row(o + i * ldo, p + i * nk, nk, v, ldv, D);
}

static void attn_direct_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    attn_job *J = ctx;
    const sx_attn *a = J->a;
    int group = a->n_heads / a->n_kv_heads;
    int64_t Tq = J->Tq, nk = attn_visible(a, Tq - 1, J->Tk);
    for (int64_t h = b; h < e; h++) {
        int hk = (int)(h / group);
        const float *qh = J->q + h * a->q_head;
        float *oh = J->o + h * a->o_head;
        if (nk == 0) {
            for (int64_t i = 0; i < Tq; i++)
                memset(oh + i * a->o_tok, 0, sizeof(float) * a->head_dim);
            continue;
        }
        float *S = sx_scratch(SX_SCR_ATTN_S, (size_t)(Tq * nk));
        if (!S) {
            J->failed = 1;
            continue;
        }
        sx_weight kw = sx_weight_f32(J->k + (int64_t)hk * a->k_head, nk, a->head_dim);
        kw.ld = a->k_tok;
        if (sx_matmul_ld(S, nk, qh, a->q_tok, &kw, NULL, Tq)) { /* [Tq, nk] */
            J->failed = 1;
            continue;
        }
        for (int64_t i = 0; i < Tq; i++) {
            float *s = S + i * nk;
            int64_t vis = attn_visible(a, i, nk);
            if (vis > 0) sx_kernels_cur()->softmax_row(s, vis, a->scale);
            for (int64_t j = vis; j < nk; j++) s[j] = 0.0f;
        }
        /* [Tq, head_dim]: the value rows in place, once each */
        values_direct(oh, a->o_tok, S, Tq, nk, J->v + (int64_t)hk * a->v_head, a->v_tok,
                      a->head_dim);
    }
}

int sx_attention(const sx_attn *a, float *o, const float *q, const float *k, const float *v,
                 int64_t Tq, int64_t Tk) {
    if (!a || !o || !q || !k || !v) return sx_err("sx_attention: NULL argument");
    if (a->n_heads <= 0 || a->n_kv_heads <= 0 || a->head_dim <= 0 ||
        a->n_heads % a->n_kv_heads != 0 || Tq < 0 || Tk < 0)
        return sx_err("sx_attention: bad sizes: heads %d kv_heads %d head_dim %d Tq %lld Tk %lld",
                      a->n_heads, a->n_kv_heads, a->head_dim, (long long)Tq, (long long)Tk);
    if (!(a->scale > 0.0f))
        return sx_err("sx_attention: scale %g is not positive", (double)a->scale);
    if (Tq == 0) return 0;
    attn_job J = {a, sx_attn_kernels_cur(), o, q, k, v, Tq, Tk, 0, NULL, 0, 0};
    if (Tq <= 2 * SX_GEMV_MAX_M || Tk == 0) {
        sx_parallel_for(a->n_heads, 1, attn_direct_task, &J);
    } else {
        if (J.ak->pack_kv) { /* the set's copy of every kv head, shared by all tiles */
            J.kv_head = (J.ak->kv_bytes(Tk, a->head_dim) + 63) / 64 * 64;
            J.packed =
                (const char *)sx_scratch(SX_SCR_ATTN_KV, (a->n_kv_heads * J.kv_head + 3) / 4);
            if (!J.packed)
                return sx_err("sx_attention: out of memory packing %lld keys x %d kv heads",
                              (long long)Tk, a->n_kv_heads);
            int64_t ch = ATTN_PACK_KEYS / J.ak->kt * J.ak->kt;
            sx_parallel_for(a->n_kv_heads * ((Tk + ch - 1) / ch), 1, attn_pack_task, &J);
        }
        J.n_qt = (Tq + J.ak->qt - 1) / J.ak->qt;
        sx_parallel_for((int64_t)a->n_heads * J.n_qt, 1, attn_tile_task, &J);
    }
    if (J.failed)
        return sx_err("sx_attention: out of memory (%lld queries x %lld keys, %d heads)",
                      (long long)Tq, (long long)Tk, a->n_heads);
    return 0;
}
