/* ops_attn.c - scaled dot-product attention over heads (see sx_attn in
 * ops.h): per (head, block of queries) S = q k^T (scaled, masked), softmax
 * over the keys, o = S v, with the keys and values of each kv head packed
 * once per call and shared by the query blocks. */
#include <string.h>

#include "ops_impl.h"
#include "ops.h"
#include "sx_core.h"

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
    (void)tid;
    attn_job *J = ctx;
    const sx_attn *a = J->a;
    for (int64_t hk = b; hk < e; hk++) {
        sx_weight kw = sx_weight_f32(J->k + hk * a->k_head, J->Tk, a->head_dim);
        kw.ld = a->k_tok;
        sx_gemm_pack_b((float *)J->kp + hk * J->kp_head, &kw, 0, J->Tk, a->head_dim);
        sx_weight vw = sx_weight_f32(J->v + hk * a->v_head, a->head_dim, J->Tk);
        vw.trans = 1; /* stored [Tk, head_dim] with token stride v_tok */
        vw.ld = a->v_tok;
        sx_gemm_pack_b((float *)J->vp + hk * J->vp_head, &vw, 0, a->head_dim, J->Tk);
    }
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
        float *S = sx_scratch(SX_SCR_ATTN_S, (size_t)nq * (size_t)(nk > 0 ? nk : 1));
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
        int mr = sx_kernels_cur()->mr;
        float *ap = NULL;
        if (J->kp) {
            /* S = q k^T [nq, nk] against the pre-packed keys of this kv head */
            ap = sx_scratch(SX_SCR_GEMM_A, (size_t)((nq + mr - 1) / mr * mr) * (size_t)(nk > a->head_dim ? nk : a->head_dim));
            if (!ap) {
                J->failed = 1;
                continue;
            }
            sx_gemm_prepacked(S, nk, qh, a->q_tok, nq, J->kp + hk * J->kp_head, nk, a->head_dim, 0, ap);
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
            if (vis > 0) sx_kernels_cur()->softmax_row(s, vis, a->scale);
            for (int64_t j = vis; j < nk; j++) s[j] = 0.0f;
        }
        if (J->kp) {
            /* o = S v [nq, head_dim]; the value panels hold all Tk keys */
            sx_gemm_prepacked(oh, a->o_tok, S, nk, nq, J->vp + hk * J->vp_head, a->head_dim, nk, J->Tk,
                              ap);
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
        int nr = sx_kernels_cur()->nr;
        J.kp_head = (Tk + nr - 1) / nr * nr * a->head_dim;
        J.vp_head = ((int64_t)a->head_dim + nr - 1) / nr * nr * Tk;
        float *buf = sx_scratch(SX_SCR_ATTN_KV, (size_t)a->n_kv_heads * (size_t)(J.kp_head + J.vp_head));
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

