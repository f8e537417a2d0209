/* attn_f32.h - the F32 layouts of the flash-attention kernel sets on
 * AVX2 and AVX-512 (attn_avx2.c, attn_avx512.c; included only by files
 * compiled with AVX2 flags). With RT rows per register tile and QT queries
 * per tile:
 *   packed kv head: keys [ceil(Tk/RT)][D][RT] (keys past Tk are 0), then
 *                   values [ceil(D/RT)][Tk][RT] (dims past D are 0)
 *   query tile:     [D][QT] (lanes past nq are 0)
 *   O^T:            [ceil(D/RT)*RT][QT] */
#ifndef SEEDX_ATTN_F32_H
#define SEEDX_ATTN_F32_H

#include <string.h>

#include "ops_avx2.h"
#include "ops_impl.h"

static inline int64_t attn_kfloats(int64_t Tk, int D, int rt) { return (Tk + rt - 1) / rt * rt * D; }

static inline size_t attn_kv_bytes(int64_t Tk, int D, int rt) {
    return sizeof(float) * (size_t)(attn_kfloats(Tk, D, rt) + ((int64_t)D + rt - 1) / rt * rt * Tk);
}

static inline void attn_pack_kv(void *dst, const sx_attn_kv *kv, int D, int64_t j0, int64_t j1,
                                int rt) {
    float *kp = dst, *vp = kp + attn_kfloats(kv->Tk, D, rt);
    for (int64_t j = j0; j < j1; j += rt)
        transpose_scaled(kp + j * D, rt, kv->k + j * kv->ldk, kv->ldk, rt,
                         (int)(j1 - j < rt ? j1 - j : rt), D, NULL);
    for (int d0 = 0; d0 < D; d0 += rt) {
        float *p = vp + (int64_t)d0 * kv->Tk;
        int n = D - d0 < rt ? D - d0 : rt;
        for (int64_t j = j0; j < j1; j++) {
            memcpy(p + j * rt, kv->v + j * kv->ldv + d0, sizeof(float) * (size_t)n);
            for (int r = n; r < rt; r++) p[j * rt + r] = 0.0f;
        }
    }
}

static inline void attn_pack_q(void *dst, const float *q, int64_t ldq, int nq, int D, int qt) {
    transpose_scaled(dst, qt, q, ldq, qt, nq, D, NULL);
}

static inline void attn_finish(float *o, int64_t ldo, const float *ot, const float *l, int nq, int D,
                               int qt) {
    float inv[SX_ATTN_QT_MAX];
    for (int i = 0; i < qt; i++) inv[i] = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
    transpose_scaled(o, ldo, ot, qt, D, D, nq, inv);
}

#endif
