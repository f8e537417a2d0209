/* quant.c - scalar reference of the quantized weight types (layouts in
 * quant.h): dequantization, llama.cpp's reference quantizers, the
 * activation formats and the integer GEMV, plus the per-tensor policy.
 *
 * Every quantizer here is mirrored bit for bit by scripts/quant_ref.py (the
 * converter), so it is written in plain float32 steps in a fixed order; the
 * build uses -ffp-contract=off, so nothing is fused behind our back. */
#include <math.h>
#include <string.h>

#include "half.h"
#include "quant.h"

static inline float ld_f16(const uint8_t *p) {
    return sx_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}
static inline void st_f16(uint8_t *p, float f) {
    uint16_t h = sx_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* 1/d, or 0 when d is 0 or so small that 1/d overflows. llama.cpp computes
 * `d ? 1/d : 0` and then converts inf/NaN products to integers, which C
 * leaves undefined; such a d (< 2^-126 * 4) is stored as f16 zero, so the
 * block's values are 0 whatever its codes: we make the codes those of 0. */
static inline float inv_or_zero(float d) {
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    return isinf(id) ? 0.0f : id;
}

/* float -> int in [lo, hi] for finite v (NaN -> 0): never undefined. */
static inline int clamp_int(float v, int lo, int hi) {
    if (!(v == v)) return 0;
    if (v <= (float)lo) return lo;
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* llama.cpp's nearest_int: round to nearest even through the float mantissa
 * (exact for |v| < 2^22; beyond, the same wrap-around in C and numpy). */
static inline int nearest_int(float v) {
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* ======================================================================
 * Q8_0
 * ====================================================================== */
void sx_q8_0_to_f32(float *y, const void *x, int64_t n) {
    const uint8_t *p = x;
    for (int64_t b = 0; b < n / SX_QK; b++, p += SX_Q8_0_BYTES) {
        float d = ld_f16(p);
        for (int j = 0; j < SX_QK; j++) y[b * SX_QK + j] = (float)(int8_t)p[2 + j] * d;
    }
}

/* d = max|x| / 127, q = roundf(x / d) computed as x * (1/d). */
void sx_q8_0_from_f32(void *y, const float *x, int64_t n) {
    uint8_t *p = y;
    for (int64_t b = 0; b < n / SX_QK; b++, p += SX_Q8_0_BYTES, x += SX_QK) {
        float amax = 0.0f;
        for (int j = 0; j < SX_QK; j++) {
            float a = fabsf(x[j]);
            if (a > amax) amax = a;
        }
        float d = amax / 127.0f, id = inv_or_zero(d);
        st_f16(p, d);
        for (int j = 0; j < SX_QK; j++)
            p[2 + j] = (uint8_t)(int8_t)clamp_int(roundf(x[j] * id), -127, 127);
    }
}

/* ======================================================================
 * Q4_0
 * ====================================================================== */
void sx_q4_0_to_f32(float *y, const void *x, int64_t n) {
    const uint8_t *p = x;
    for (int64_t b = 0; b < n / SX_QK; b++, p += SX_Q4_0_BYTES) {
        float d = ld_f16(p);
        for (int j = 0; j < 16; j++) {
            y[b * SX_QK + j] = (float)((p[2 + j] & 15) - 8) * d;
            y[b * SX_QK + j + 16] = (float)((p[2 + j] >> 4) - 8) * d;
        }
    }
}

/* d = (the value of largest magnitude, first one on ties) / -8, so that it
 * maps to code 0 (-8 d); q = min(15, trunc(x * (1/d) + 8.5)). */
void sx_q4_0_from_f32(void *y, const float *x, int64_t n) {
    uint8_t *p = y;
    for (int64_t b = 0; b < n / SX_QK; b++, p += SX_Q4_0_BYTES, x += SX_QK) {
        float amax = 0.0f, vmax = 0.0f;
        for (int j = 0; j < SX_QK; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                vmax = x[j];
            }
        float d = vmax / -8.0f, id = inv_or_zero(d);
        st_f16(p, d);
        for (int j = 0; j < 16; j++) {
            int q0 = clamp_int(x[j] * id + 8.5f, 0, 15);
            int q1 = clamp_int(x[j + 16] * id + 8.5f, 0, 15);
            p[2 + j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* ======================================================================
 * Q4_K
 * ====================================================================== */
void sx_q4_k_to_f32(float *y, const void *x, int64_t n) {
    const uint8_t *p = x;
    for (int64_t b = 0; b < n / SX_QKK; b++, p += SX_Q4_K_BYTES, y += SX_QKK) {
        float d = ld_f16(p), dmin = ld_f16(p + 2);
        const uint8_t *s = p + 4, *qs = p + 16;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            sx_q4_k_scale_min(s, j, &sc, &m);
            float dl = d * (float)sc, ml = dmin * (float)m;
            const uint8_t *q = qs + 32 * (j / 2);
            int sh = 4 * (j & 1);
            for (int l = 0; l < 32; l++) y[32 * j + l] = dl * (float)((q[l] >> sh) & 15) - ml;
        }
    }
}

/* One sub-block of 32: codes q in 0..15 and (scale, min) so that
 * x ~ scale*q - min, minimising sum w*(scale*q - min - x)^2. Starts from the
 * range [min(x,0), max(x)] and tries 21 stretched grids (15 + (-1 + 0.1 s)
 * steps over the range, s = 0..20), refitting scale and min by weighted
 * least squares on each grid's codes; keeps the best. This is the search of
 * llama.cpp's quantize_row_q4_K_ref (make_qkx2_quants with rmin -1,
 * rdelta 0.1, 20 steps), in the same float operations. */
static float q4_k_fit(const float *x, const float *w, uint8_t *q, float *min_out) {
    float lo = x[0], hi = x[0], sw = 0.0f, sx = 0.0f;
    for (int i = 0; i < 32; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sw += w[i];
        sx += w[i] * x[i];
    }
    if (lo > 0.0f) lo = 0.0f;
    if (hi == lo) {
        memset(q, 0, 32);
        *min_out = -lo;
        return 0.0f;
    }
    float iscale = 15.0f / (hi - lo), scale = 1.0f / iscale, best = 0.0f;
    for (int i = 0; i < 32; i++) {
        int l = nearest_int(iscale * (x[i] - lo));
        q[i] = (uint8_t)(l < 0 ? 0 : l > 15 ? 15 : l);
        float diff = scale * (float)q[i] + lo - x[i];
        best += w[i] * (diff * diff);
    }
    uint8_t t[32];
    for (int s = 0; s <= 20; s++) {
        iscale = (-1.0f + 0.1f * (float)s + 15.0f) / (hi - lo);
        float sl = 0.0f, sl2 = 0.0f, sxl = 0.0f;
        for (int i = 0; i < 32; i++) {
            int l = nearest_int(iscale * (x[i] - lo));
            l = l < 0 ? 0 : l > 15 ? 15 : l;
            t[i] = (uint8_t)l;
            float wl = w[i] * (float)l;
            sl += wl;
            sl2 += wl * (float)l;
            sxl += wl * x[i];
        }
        float D = sw * sl2 - sl * sl;
        if (!(D > 0.0f)) continue;
        float this_scale = (sw * sxl - sx * sl) / D, this_min = (sl2 * sx - sl * sxl) / D;
        if (this_min > 0.0f) {
            this_min = 0.0f;
            this_scale = sxl / sl2;
        }
        float err = 0.0f;
        for (int i = 0; i < 32; i++) {
            float diff = this_scale * (float)t[i] + this_min - x[i];
            err += w[i] * (diff * diff);
        }
        if (err < best) {
            memcpy(q, t, 32);
            best = err;
            scale = this_scale;
            lo = this_min;
        }
    }
    *min_out = -lo;
    return scale;
}

/* Per super-block: fit each sub-block (weights w = rms(sub-block) + |x|),
 * quantize the eight scales and eight mins to 6 bits against their maxima
 * (d = max_scale/63, dmin = max_min/63, both f16), then recompute every code
 * against the scales as stored: q = nearest((x + dmin*m) / (d*sc)). */
void sx_q4_k_from_f32(void *y, const float *x, int64_t n) {
    uint8_t *p = y;
    for (int64_t b = 0; b < n / SX_QKK; b++, p += SX_Q4_K_BYTES, x += SX_QKK) {
        uint8_t L[SX_QKK];
        float scales[8], mins[8], w[32], max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 8; j++) {
            const float *xs = x + 32 * j;
            float s2 = 0.0f;
            for (int l = 0; l < 32; l++) s2 += xs[l] * xs[l];
            float av = sqrtf(s2 / 32.0f);
            for (int l = 0; l < 32; l++) w[l] = av + fabsf(xs[l]);
            scales[j] = q4_k_fit(xs, w, L + 32 * j, &mins[j]);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        float is = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
        float im = max_min > 0.0f ? 63.0f / max_min : 0.0f;
        uint8_t *s = p + 4;
        memset(s, 0, 12);
        for (int j = 0; j < 8; j++) {
            /* llama.cpp stores nearest_int() in a uint8_t, then takes min(63, .) */
            int ls = (uint8_t)nearest_int(is * scales[j]), lm = (uint8_t)nearest_int(im * mins[j]);
            if (ls > 63) ls = 63;
            if (lm > 63) lm = 63;
            if (j < 4) {
                s[j] |= (uint8_t)ls;
                s[j + 4] |= (uint8_t)lm;
            } else {
                s[j + 4] = (uint8_t)((ls & 15) | (lm & 15) << 4);
                s[j - 4] |= (uint8_t)((ls >> 4) << 6);
                s[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        st_f16(p, max_scale / 63.0f);
        st_f16(p + 2, max_min / 63.0f);
        float d = ld_f16(p), dmin = ld_f16(p + 2);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            sx_q4_k_scale_min(s, j, &sc, &m);
            float dl = d * (float)sc;
            if (dl == 0.0f) continue;
            float ml = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                int v = nearest_int((x[32 * j + l] + ml) / dl);
                L[32 * j + l] = (uint8_t)(v < 0 ? 0 : v > 15 ? 15 : v);
            }
        }
        uint8_t *qs = p + 16;
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
    }
}

/* ======================================================================
 * Q8_K (activations of the Q4_K dot product)
 * ====================================================================== */
void sx_q8_k_to_f32(float *y, const void *x, int64_t n) {
    const uint8_t *p = x;
    for (int64_t b = 0; b < n / SX_QKK; b++, p += SX_Q8_K_BYTES) {
        float d;
        memcpy(&d, p, 4);
        for (int j = 0; j < SX_QKK; j++) y[b * SX_QKK + j] = d * (float)(int8_t)p[4 + j];
    }
}

/* d = -max/127 with max the value of largest magnitude (first on ties), so
 * q = nearest(x * (-127/max)) lies in [-127, 127]; bsums for the Q4_K mins. */
void sx_q8_k_from_f32(void *y, const float *x, int64_t n) {
    uint8_t *p = y;
    for (int64_t b = 0; b < n / SX_QKK; b++, p += SX_Q8_K_BYTES, x += SX_QKK) {
        float amax = 0.0f, vmax = 0.0f;
        for (int j = 0; j < SX_QKK; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                vmax = x[j];
            }
        int8_t *q = (int8_t *)(p + 4);
        int16_t bs[16];
        float d = 0.0f;
        if (amax == 0.0f || !isfinite(amax)) { /* all zeros (or a non-finite input) */
            memset(q, 0, SX_QKK);
        } else {
            float iscale = -127.0f / vmax;
            for (int j = 0; j < SX_QKK; j++) {
                int v = nearest_int(iscale * x[j]);
                q[j] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            }
            d = 1.0f / iscale;
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += q[16 * g + l];
            bs[g] = (int16_t)s;
        }
        memcpy(p, &d, 4);
        memcpy(p + 4 + SX_QKK, bs, sizeof bs);
    }
}

/* ======================================================================
 * GEMV: y[r][n] = bias[n] + dot(x row r, W row n), x in the activation type.
 * Per block the products are summed exactly in integers; the float part is
 * one multiply-add per block (Q8_0, Q4_0) or two per super-block (Q4_K),
 * in block order. The SIMD kernels sum the blocks in another order (vector
 * accumulators; bounded in the tests, bit-identical when every sum is an
 * exact integer).
 * ====================================================================== */
static float dot_q8_0(const uint8_t *w, const uint8_t *a, int64_t nb) {
    float s = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += SX_Q8_0_BYTES, a += SX_Q8_0_BYTES) {
        int32_t i = 0;
        for (int j = 0; j < SX_QK; j++) i += (int8_t)w[2 + j] * (int8_t)a[2 + j];
        s += (float)i * (ld_f16(w) * ld_f16(a));
    }
    return s;
}

static float dot_q4_0(const uint8_t *w, const uint8_t *a, int64_t nb) {
    float s = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += SX_Q4_0_BYTES, a += SX_Q8_0_BYTES) {
        int32_t i = 0;
        for (int j = 0; j < 16; j++)
            i += ((w[2 + j] & 15) - 8) * (int8_t)a[2 + j] +
                 ((w[2 + j] >> 4) - 8) * (int8_t)a[18 + j];
        s += (float)i * (ld_f16(w) * ld_f16(a));
    }
    return s;
}

/* Q4_K x Q8_K, one super-block: isum = sum_j sc[j] * (q . a over sub-block
 * j), msum = sum_j m[j] * (sum of a over sub-block j, from bsums). */
static float dot_q4_k(const uint8_t *w, const uint8_t *a, int64_t nb) {
    float s = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += SX_Q4_K_BYTES, a += SX_Q8_K_BYTES) {
        const int8_t *q8 = (const int8_t *)(a + 4);
        int16_t bs[16];
        memcpy(bs, a + 4 + SX_QKK, sizeof bs);
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            sx_q4_k_scale_min(w + 4, j, &sc, &m);
            const uint8_t *q = w + 16 + 32 * (j / 2);
            int sh = 4 * (j & 1), dot = 0;
            for (int l = 0; l < 32; l++) dot += ((q[l] >> sh) & 15) * q8[32 * j + l];
            isum += sc * dot;
            msum += m * (bs[2 * j] + bs[2 * j + 1]);
        }
        float da;
        memcpy(&da, a, 4);
        s += (da * ld_f16(w)) * (float)isum;
        s -= (da * ld_f16(w + 2)) * (float)msum;
    }
    return s;
}

#define GEMV_Q(name, dot, QB)                                                                      \
    void name(float *y, int64_t ldy, const void *x, size_t ldx, int m, const void *w, size_t ldw,  \
              int64_t n0, int64_t n1, int64_t K, const float *bias) {                              \
        for (int64_t n = n0; n < n1; n++) {                                                        \
            const uint8_t *wr = (const uint8_t *)w + (size_t)n * ldw;                              \
            for (int r = 0; r < m; r++)                                                            \
                y[r * ldy + n] = dot(wr, (const uint8_t *)x + (size_t)r * ldx, K / QB) +           \
                                 (bias ? bias[n] : 0.0f);                                          \
        }                                                                                          \
    }
GEMV_Q(sx_gemv_q8_0_scalar, dot_q8_0, SX_QK)
GEMV_Q(sx_gemv_q4_0_scalar, dot_q4_0, SX_QK)
GEMV_Q(sx_gemv_q4_k_scalar, dot_q4_k, SX_QKK)

void sx_qrows_by_gemv(sx_gemv_fn gemv, float *y, int64_t ldy, const void *x, size_t ldx, int m,
                      const void *w, size_t ldw, int64_t n0, int64_t n1, int64_t K,
                      const float *bias) {
    for (int r0 = 0; r0 < m; r0 += SX_GEMV_MAX_M)
        gemv(y + (int64_t)r0 * ldy, ldy, (const uint8_t *)x + (size_t)r0 * ldx, ldx,
             m - r0 < SX_GEMV_MAX_M ? m - r0 : SX_GEMV_MAX_M, w, ldw, n0, n1, K, bias);
}

/* ======================================================================
 * The policy (see quant.h).
 * ====================================================================== */
/* name == prefix + digits + "." + one of suffixes */
static int layer_name(const char *name, const char *prefix, const char *const *suffixes) {
    size_t lp = strlen(prefix);
    if (strncmp(name, prefix, lp)) return 0;
    const char *p = name + lp;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9') p++;
    if (*p++ != '.') return 0;
    for (int i = 0; suffixes[i]; i++)
        if (!strcmp(p, suffixes[i])) return 1;
    return 0;
}

int sx_quant_type_for(const char *name, int ndim, const int64_t *shape, int want) {
    static const char *const llm[] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                      "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                                      "mlp.gate_proj.weight",    "mlp.up_proj.weight",
                                      "mlp.down_proj.weight",    NULL};
    static const char *const vit[] = {"attn.in_proj.weight", "attn.out_proj.weight",
                                      "mlp.c_fc.weight", "mlp.c_proj.weight", NULL};
    const sx_wtype *t = sx_wtype_of(want);
    if (!t || !t->quantized) return want;
    if (!name || ndim != 2 || !shape) return -1;
    int type;
    if (layer_name(name, "model.layers.", llm) || layer_name(name, "transformer.resblocks.", vit) ||
        !strcmp(name, "model.embed_tokens.weight"))
        type = want;
    else if (!strcmp(name, "lm_head.weight"))
        type = SX_Q8_0;
    else
        return -1;
    if (type == SX_Q4_K && shape[1] % SX_QKK) type = SX_Q8_0;
    return shape[1] % sx_wtype_of(type)->block ? -1 : type;
}

/* ---- the int8 GEMM's scalar reference (quant.h) ---- */
static void i8pack_block(uint8_t *d, const int8_t *const *v, const float *ws, const float *ml,
                         int nrows) {
    for (int n = 0; n < 16; n++) {
        int32_t sum = 0;
        for (int k = 0; k < 32; k++) {
            int8_t q = n < nrows ? v[n][k] : 0;
            d[(k / 4) * 64 + n * 4 + k % 4] = (uint8_t)q;
            sum += q;
        }
        float w = n < nrows ? ws[n] : 0.0f, m = n < nrows && ml ? ml[n] : 0.0f;
        int32_t c = 128 * sum;
        memcpy(d + SX_I8_WS + 4 * n, &w, 4);
        memcpy(d + SX_I8_CORR + 4 * n, &c, 4);
        memcpy(d + SX_I8_ML + 4 * n, &m, 4);
    }
}
void sx_q8_0_i8pack(uint8_t *d, const void *const *rows, int nrows, int64_t b0, int64_t nblk) {
    for (int64_t b = b0; b < b0 + nblk; b++, d += SX_I8_PANEL_BYTES) {
        const int8_t *v[16];
        float ws[16];
        for (int n = 0; n < nrows; n++) {
            const uint8_t *p = (const uint8_t *)rows[n] + b * SX_Q8_0_BYTES;
            ws[n] = ld_f16(p);
            v[n] = (const int8_t *)(p + 2);
        }
        i8pack_block(d, v, ws, NULL, nrows);
    }
}
void sx_q4_0_i8pack(uint8_t *d, const void *const *rows, int nrows, int64_t b0, int64_t nblk) {
    for (int64_t b = b0; b < b0 + nblk; b++, d += SX_I8_PANEL_BYTES) {
        int8_t vals[16][32];
        const int8_t *v[16];
        float ws[16];
        for (int n = 0; n < nrows; n++) {
            const uint8_t *p = (const uint8_t *)rows[n] + b * SX_Q4_0_BYTES;
            ws[n] = ld_f16(p);
            for (int j = 0; j < 16; j++) {
                vals[n][j] = (int8_t)((p[2 + j] & 15) - 8);
                vals[n][j + 16] = (int8_t)((p[2 + j] >> 4) - 8);
            }
            v[n] = vals[n];
        }
        i8pack_block(d, v, ws, NULL, nrows);
    }
}
/* block b = sub-block b % 8 of super-block b / 8 */
void sx_q4_k_i8pack(uint8_t *d, const void *const *rows, int nrows, int64_t b0, int64_t nblk) {
    for (int64_t b = b0; b < b0 + nblk; b++, d += SX_I8_PANEL_BYTES) {
        int8_t vals[16][32];
        const int8_t *v[16];
        float ws[16], ml[16];
        int j = (int)(b % 8);
        for (int n = 0; n < nrows; n++) {
            const uint8_t *p = (const uint8_t *)rows[n] + (b / 8) * SX_Q4_K_BYTES;
            int sc, m;
            sx_q4_k_scale_min(p + 4, j, &sc, &m);
            ws[n] = ld_f16(p) * (float)sc;
            ml[n] = ld_f16(p + 2) * (float)m;
            const uint8_t *q = p + 16 + 32 * (j / 2);
            for (int k = 0; k < 32; k++) vals[n][k] = (int8_t)(j & 1 ? q[k] >> 4 : q[k] & 15);
            v[n] = vals[n];
        }
        i8pack_block(d, v, ws, ml, nrows);
    }
}
void sx_i8_ukr_scalar(int64_t nblk, const uint8_t *const *a, const float *const *da,
                      const float *const *dsa, int rows, const uint8_t *b0, const uint8_t *b1,
                      int cols, float *c, int64_t ldc, int load) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) {
            const uint8_t *bp = j < 16 ? b0 : b1;
            int n = j % 16;
            float acc = load ? c[r * ldc + j] : 0.0f;
            for (int64_t b = 0; b < nblk; b++, bp += SX_I8_PANEL_BYTES) {
                int32_t isum = 0, corr;
                float ws, ml;
                for (int k = 0; k < 32; k++)
                    isum += (int32_t)a[r][b * 32 + k] * (int8_t)bp[(k / 4) * 64 + n * 4 + k % 4];
                memcpy(&corr, bp + SX_I8_CORR + 4 * n, 4);
                memcpy(&ws, bp + SX_I8_WS + 4 * n, 4);
                memcpy(&ml, bp + SX_I8_ML + 4 * n, 4);
                acc = fmaf((float)(isum - corr), ws * da[r][b], acc);
                if (dsa) acc = fmaf(-ml, dsa[r][b], acc);
            }
            c[r * ldc + j] = acc;
        }
}
