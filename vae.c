/* vae.c - SDXL's AutoencoderKL as diffusers 0.25.0 runs it (float32).
 *
 * Decoder: post_quant_conv 1x1 -> decoder.conv_in 3x3 -> mid_block (resnet,
 * attention, resnet) -> up_blocks (layers_per_block+1 resnets, then nearest x2
 * + conv 3x3 except in the last block) -> conv_norm_out (GroupNorm) -> SiLU ->
 * conv_out 3x3.
 * Encoder: conv_in 3x3 -> down_blocks (layers_per_block resnets, then a 3x3
 * stride-2 conv on the input zero-padded by one row at the bottom and one
 * column at the right, except in the last block) -> mid_block -> GroupNorm ->
 * SiLU -> conv_out 3x3 (2*latent channels) -> quant_conv 1x1 -> moments
 * [mean | logvar].
 * Every GroupNorm in the VAE uses eps 1e-6 (from the container metadata).
 *
 * Functions return newly allocated activations and free their inputs as soon
 * as they are dead, so the peak of an untiled decode is about three of the
 * largest activation buffers (see the report in tests/bench_vae.c). */
#include "vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sx_core.h"

/* ---------------------------------------------------------------------------
 * small helpers
 * ------------------------------------------------------------------------- */
static float *alloc_f(int64_t n, const char *what) {
    if (n <= 0) n = 1;
    return sx_malloc((size_t)n * sizeof(float), what);
}

/* GroupNorm(groups) over [C, HW] (+ SiLU); both kernels are threaded. */
static int group_norm(float *y, const float *x, const float *w, const float *b, int64_t C,
                      int64_t HW, int groups, float eps, int silu) {
    if (sx_groupnorm(y, x, w, b, C, HW, groups, eps)) return sx_err_prefix("vae: ");
    if (silu) sx_silu(y, y, C * HW);
    return 0;
}

/* conv: 3x3 pad 1 (k=3), 1x1 (k=1), or the downsampler (down=1: 3x3 stride 2
 * on the input padded right/bottom by one). Output newly allocated unless y. */
static float *conv_fwd(const sx_vae_conv *c, const float *x, int64_t H, int64_t W, int down,
                       int64_t *Ho, int64_t *Wo, float *y) {
    sx_conv p = {c->cin, c->cout, c->k, c->k, 1, 0, 0, 0, 0};
    if (down) {
        p.stride = 2;
        p.pad_b = p.pad_r = 1;
    } else {
        p.pad_t = p.pad_l = p.pad_b = p.pad_r = c->k / 2;
    }
    int64_t ho = (H + p.pad_t + p.pad_b - p.kh) / p.stride + 1;
    int64_t wo = (W + p.pad_l + p.pad_r - p.kw) / p.stride + 1;
    if (H + p.pad_t + p.pad_b < p.kh || W + p.pad_l + p.pad_r < p.kw || ho <= 0 || wo <= 0) {
        sx_err("vae: %lldx%lld input too small for conv '%s'", (long long)H, (long long)W,
               c->w.name ? c->w.name : "?");
        return NULL;
    }
    float *out = y ? y : alloc_f((int64_t)c->cout * ho * wo, "vae conv output");
    if (!out) return NULL;
    if (sx_conv2d(out, x, H, W, &p, &c->w, c->b, Ho, Wo) != 0) {
        if (!y) free(out);
        return NULL;
    }
    return out;
}

/* ---------------------------------------------------------------------------
 * layers
 * ------------------------------------------------------------------------- */

/* ResnetBlock2D: x [cin,H,W] -> [cout,H,W]:
 *   h = conv1(silu(norm1(x))); h = conv2(silu(norm2(h))); out = shortcut(x) + h */
int sx_vae_resnet_forward(const sx_vae_resnet *r, const float *x, int64_t H, int64_t W, float **y) {
    if (!r || !x || !y || H <= 0 || W <= 0 || r->cin <= 0 || r->cout <= 0 ||
        (r->cin != r->cout && !r->has_shortcut))
        return sx_err("sx_vae_resnet_forward: bad arguments (cin %d, cout %d)", r ? r->cin : 0,
                      r ? r->cout : 0);
    *y = NULL;
    int64_t HW = H * W;
    sx_vae_conv c1 = {r->cin, r->cout, 3, r->conv1, r->conv1_b};
    sx_vae_conv c2 = {r->cout, r->cout, 3, r->conv2, r->conv2_b};
    float *t = alloc_f((int64_t)r->cin * HW, "vae resnet norm1");
    if (!t) return -1;
    if (group_norm(t, x, r->norm1_w, r->norm1_b, r->cin, HW, r->groups, r->eps, 1) != 0) {
        free(t);
        return -1;
    }
    float *h = conv_fwd(&c1, t, H, W, 0, NULL, NULL, NULL); /* conv1: [cout,H,W] */
    free(t);
    if (!h) return -1;
    if (group_norm(h, h, r->norm2_w, r->norm2_b, r->cout, HW, r->groups, r->eps, 1) != 0) {
        free(h);
        return -1;
    }
    float *out = conv_fwd(&c2, h, H, W, 0, NULL, NULL, NULL); /* conv2 */
    if (!out) {
        free(h);
        return -1;
    }
    if (r->has_shortcut) { /* conv_shortcut 1x1 into h's buffer (same size) */
        sx_vae_conv cs = {r->cin, r->cout, 1, r->shortcut, r->shortcut_b};
        if (!conv_fwd(&cs, x, H, W, 0, NULL, NULL, h)) {
            free(h);
            free(out);
            return -1;
        }
        sx_add(out, h, out, (int64_t)r->cout * HW); /* input + hidden (torch order) */
    } else {
        sx_add(out, x, out, (int64_t)r->cout * HW);
    }
    free(h);
    *y = out;
    return 0;
}

/* Attention (mid block): x [C,H,W]; tokens t = H*W rows of C.
 *   n = group_norm(x); q,k,v = to_q/k/v(n^T); o = softmax(q k^T / sqrt(C)) v;
 *   y = to_out.0(o)^T + x */
int sx_vae_attn_forward(const sx_vae_attn *a, float *y, const float *x, int64_t H, int64_t W) {
    if (!a || !y || !x || H <= 0 || W <= 0 || a->channels <= 0)
        return sx_err("sx_vae_attn_forward: bad arguments");
    int64_t C = a->channels, T = H * W;
    const sx_weight *ws[4] = {&a->q, &a->k, &a->v, &a->o};
    for (int i = 0; i < 4; i++)
        if (ws[i]->N != C || ws[i]->K != C || !ws[i]->data)
            return sx_err("sx_vae_attn_forward: weight '%s' is [%lld,%lld], expected [%lld,%lld]",
                          ws[i]->name ? ws[i]->name : "?", (long long)ws[i]->N,
                          (long long)ws[i]->K, (long long)C, (long long)C);
    float *n = alloc_f(C * T, "vae attention norm");
    float *tok = alloc_f(T * C, "vae attention tokens");
    float *qkv = alloc_f(3 * T * C, "vae attention q/k/v");
    int rc = -1;
    if (!n || !tok || !qkv) goto done;
    if (group_norm(n, x, a->norm_w, a->norm_b, C, T, a->groups, a->eps, 0) != 0) goto done;
    sx_transpose(tok, n, C, T); /* [T, C] */
    float *q = qkv, *k = qkv + T * C, *v = qkv + 2 * T * C;
    if (sx_matmul(q, tok, &a->q, a->q_b, T) != 0 || sx_matmul(k, tok, &a->k, a->k_b, T) != 0 ||
        sx_matmul(v, tok, &a->v, a->v_b, T) != 0)
        goto done;
    sx_attn at = {1, 1, (int)C, C, C, C, C, C, C, C, C, (float)(1.0 / sqrt((double)C)), 0, 0};
    if (sx_attention(&at, tok, q, k, v, T, T) != 0) goto done; /* o -> tok */
    if (sx_matmul(q, tok, &a->o, a->o_b, T) != 0) goto done;   /* to_out.0 -> q */
    sx_transpose(n, q, T, C);                                  /* [C, T] */
    sx_add(y, n, x, C * T);                                    /* + residual */
    rc = 0;
done:
    free(n);
    free(tok);
    free(qkv);
    return rc;
}

static float *mid_fwd(const sx_vae_mid *m, float *x, int64_t H, int64_t W, const char *pfx,
                      int trace) {
    int64_t shp[4] = {1, m->res0.cout, H, W};
    float *h;
    int rc = sx_vae_resnet_forward(&m->res0, x, H, W, &h);
    free(x);
    if (rc) return NULL;
    if (trace) sx_tracef(h, 4, shp, "%s.mid_block.resnets.0", pfx);
    if (m->has_attn) {
        if (sx_vae_attn_forward(&m->attn, h, h, H, W) != 0) {
            free(h);
            return NULL;
        }
        if (trace) sx_tracef(h, 4, shp, "%s.mid_block.attentions.0", pfx);
    }
    float *o;
    rc = sx_vae_resnet_forward(&m->res1, h, H, W, &o);
    free(h);
    if (rc) return NULL;
    if (trace) {
        sx_tracef(o, 4, shp, "%s.mid_block.resnets.1", pfx);
        sx_tracef(o, 4, shp, "%s.mid_block", pfx);
    }
    return o;
}

/* ---------------------------------------------------------------------------
 * decoder: z [L, h, w] (already / scaling_factor) -> image [out, f*h, f*w]
 * written to img. post_quant_conv included.
 * ------------------------------------------------------------------------- */
static int decode_block(const sx_vae *v, const float *z, int64_t h, int64_t w, float *img,
                        int trace) {
    const sx_vae_config *c = &v->cfg;
    int64_t H = h, W = w;
    int64_t shp[4] = {1, c->latent_channels, H, W};
    float *x = conv_fwd(&v->post_quant_conv, z, H, W, 0, NULL, NULL, NULL);
    if (!x) return sx_err_prefix("vae decode: ");
    if (trace) sx_trace("post_quant_conv", x, 4, shp);
    float *t = conv_fwd(&v->dec_conv_in, x, H, W, 0, NULL, NULL, NULL); /* [C_last,h,w] */
    free(x);
    if (!t) return sx_err_prefix("vae decode: ");
    x = t;
    int64_t C = c->block_out[c->n_blocks - 1];
    shp[1] = C;
    if (trace) sx_trace("decoder.conv_in", x, 4, shp);
    x = mid_fwd(&v->dec_mid, x, H, W, "decoder", trace);
    if (!x) return sx_err_prefix("vae decode: ");
    for (int i = 0; i < c->n_blocks; i++) {
        const sx_vae_up_block *b = &v->up[i];
        for (int r = 0; r < b->n_resnets; r++) { /* up_blocks.i.resnets.r */
            int rc = sx_vae_resnet_forward(&b->resnets[r], x, H, W, &t);
            free(x);
            if (rc) return sx_err_prefix("vae decode: up_blocks.%d.resnets.%d: ", i, r);
            x = t;
            C = b->resnets[r].cout;
            int64_t s[4] = {1, C, H, W};
            if (trace) sx_tracef(x, 4, s, "decoder.up_blocks.%d.resnets.%d", i, r);
        }
        if (b->has_up) { /* upsamplers.0: nearest x2, conv 3x3 */
            float *u = alloc_f(C * 4 * H * W, "vae upsample");
            if (!u) {
                free(x);
                return -1;
            }
            sx_upsample_nearest2x(u, x, C, H, W);
            free(x);
            H *= 2;
            W *= 2;
            x = conv_fwd(&b->up, u, H, W, 0, NULL, NULL, NULL);
            free(u);
            if (!x) return sx_err_prefix("vae decode: up_blocks.%d.upsamplers.0: ", i);
            int64_t s[4] = {1, C, H, W};
            if (trace) sx_tracef(x, 4, s, "decoder.up_blocks.%d.upsamplers.0", i);
        }
        int64_t s[4] = {1, C, H, W};
        if (trace) sx_tracef(x, 4, s, "decoder.up_blocks.%d", i);
    }
    /* conv_norm_out, conv_act, conv_out */
    if (group_norm(x, x, v->dec_norm_w, v->dec_norm_b, C, H * W, c->norm_groups, c->norm_eps, 1)) {
        free(x);
        return -1;
    }
    t = conv_fwd(&v->dec_conv_out, x, H, W, 0, NULL, NULL, img);
    free(x);
    if (!t) return sx_err_prefix("vae decode: conv_out: ");
    int64_t s[4] = {1, c->out_channels, H, W};
    if (trace) {
        sx_trace("decoder.conv_out", img, 4, s);
        sx_trace("decoder", img, 4, s);
    }
    return 0;
}

/* encoder + quant_conv: x [in, H, W] -> moments [2L, H', W'] (allocated). */
static float *encode_block(const sx_vae *v, const float *img, int64_t H, int64_t W, int64_t *Ho,
                           int64_t *Wo, int trace) {
    const sx_vae_config *c = &v->cfg;
    float *x = conv_fwd(&v->enc_conv_in, img, H, W, 0, NULL, NULL, NULL);
    if (!x) return NULL;
    int64_t C = c->block_out[0];
    int64_t shp[4] = {1, C, H, W};
    if (trace) sx_trace("encoder.conv_in", x, 4, shp);
    for (int i = 0; i < c->n_blocks; i++) {
        const sx_vae_down_block *b = &v->down[i];
        for (int r = 0; r < b->n_resnets; r++) { /* down_blocks.i.resnets.r */
            float *t;
            int rc = sx_vae_resnet_forward(&b->resnets[r], x, H, W, &t);
            free(x);
            if (rc) {
                sx_err_prefix("down_blocks.%d.resnets.%d: ", i, r);
                return NULL;
            }
            x = t;
            C = b->resnets[r].cout;
            int64_t s[4] = {1, C, H, W};
            if (trace) sx_tracef(x, 4, s, "encoder.down_blocks.%d.resnets.%d", i, r);
        }
        if (b->has_down) { /* downsamplers.0: pad (0,1,0,1), conv 3x3 stride 2 */
            int64_t h2, w2;
            float *t = conv_fwd(&b->down, x, H, W, 1, &h2, &w2, NULL);
            free(x);
            if (!t) return NULL;
            x = t;
            H = h2;
            W = w2;
            int64_t s[4] = {1, C, H, W};
            if (trace) sx_tracef(x, 4, s, "encoder.down_blocks.%d.downsamplers.0", i);
        }
        int64_t s[4] = {1, C, H, W};
        if (trace) sx_tracef(x, 4, s, "encoder.down_blocks.%d", i);
    }
    x = mid_fwd(&v->enc_mid, x, H, W, "encoder", trace);
    if (!x) return NULL;
    if (group_norm(x, x, v->enc_norm_w, v->enc_norm_b, C, H * W, c->norm_groups, c->norm_eps, 1)) {
        free(x);
        return NULL;
    }
    float *t = conv_fwd(&v->enc_conv_out, x, H, W, 0, NULL, NULL, NULL); /* [2L, H, W] */
    free(x);
    if (!t) return NULL;
    int64_t s[4] = {1, 2 * c->latent_channels, H, W};
    if (trace) {
        sx_trace("encoder.conv_out", t, 4, s);
        sx_trace("encoder", t, 4, s);
    }
    x = conv_fwd(&v->quant_conv, t, H, W, 0, NULL, NULL, NULL);
    free(t);
    if (!x) return NULL;
    if (trace) sx_trace("quant_conv", x, 4, s);
    *Ho = H;
    *Wo = W;
    return x;
}

/* ---------------------------------------------------------------------------
 * tiling (diffusers AutoencoderKL.tiled_decode / tiled_encode)
 * ------------------------------------------------------------------------- */
typedef struct {
    float *d;
    int64_t h, w; /* spatial size of the tile's output */
} tile;

/* blend_v: the first e rows of b fade in from the last e rows of a (the tile
 * above); e = min(a.h, b.h, extent). Same column -> same width. */
static void blend_v(const tile *a, tile *b, int64_t C, int64_t extent) {
    int64_t e = extent;
    if (a->h < e) e = a->h;
    if (b->h < e) e = b->h;
    for (int64_t y = 0; y < e; y++) {
        double f = (double)y / (double)e;
        float wa = (float)(1.0 - f), wb = (float)f;
        for (int64_t c = 0; c < C; c++) {
            const float *ar = a->d + (c * a->h + a->h - e + y) * a->w;
            float *br = b->d + (c * b->h + y) * b->w;
            for (int64_t x = 0; x < b->w; x++) br[x] = ar[x] * wa + br[x] * wb;
        }
    }
}

/* blend_h: the first e columns of b fade in from the last e columns of a
 * (the tile to the left, same height). */
static void blend_h(const tile *a, tile *b, int64_t C, int64_t extent) {
    int64_t e = extent;
    if (a->w < e) e = a->w;
    if (b->w < e) e = b->w;
    for (int64_t x = 0; x < e; x++) {
        double f = (double)x / (double)e;
        float wa = (float)(1.0 - f), wb = (float)f;
        for (int64_t c = 0; c < C; c++)
            for (int64_t y = 0; y < b->h; y++) {
                const float *ar = a->d + (c * a->h + y) * a->w;
                float *br = b->d + (c * b->h + y) * b->w;
                br[x] = ar[a->w - e + x] * wa + br[x] * wb;
            }
    }
}

/* Runs one tile: in [Cin, th, tw] -> out tile (allocated). */
typedef int (*tile_fn)(const sx_vae *v, const float *in, int64_t th, int64_t tw, tile *out);

static int dec_tile(const sx_vae *v, const float *in, int64_t th, int64_t tw, tile *out) {
    int f = sx_vae_factor(v);
    out->h = th * f;
    out->w = tw * f;
    out->d = alloc_f((int64_t)v->cfg.out_channels * out->h * out->w, "vae tile");
    if (!out->d) return -1;
    return decode_block(v, in, th, tw, out->d, 0);
}

static int enc_tile(const sx_vae *v, const float *in, int64_t th, int64_t tw, tile *out) {
    out->d = encode_block(v, in, th, tw, &out->h, &out->w, 0);
    return out->d ? 0 : -1;
}

/* Generic overlap-and-blend driver: the input [Cin, H, W] is cut into tiles of
 * `tin` (stride `stride`), each run through fn to [Cout, ...], blended with
 * the tile above and to the left over `blend` rows/columns and cropped to
 * `limit`; the crops are concatenated into out [Cout, OH, OW]. Only the
 * previous row of tiles is kept. */
static int tiled_run(const sx_vae *v, tile_fn fn, const float *in, int64_t Cin, int64_t H,
                     int64_t W, int64_t tin, int64_t stride, int64_t blend, int64_t limit,
                     int64_t Cout, float *out, int64_t OH, int64_t OW) {
    int64_t nr = (H + stride - 1) / stride, nc = (W + stride - 1) / stride;
    tile *prev = calloc((size_t)nc, sizeof(tile)), *cur = calloc((size_t)nc, sizeof(tile));
    float *crop = alloc_f(Cin * tin * tin, "vae tile input");
    int rc = -1;
    if (!prev || !cur || !crop) {
        sx_err("vae tiling: out of memory");
        goto done;
    }
    int64_t oy = 0;
    for (int64_t i = 0; i < nr; i++) {
        int64_t y0 = i * stride, th = H - y0 < tin ? H - y0 : tin, ox = 0, rows = 0;
        for (int64_t j = 0; j < nc; j++) {
            int64_t x0 = j * stride, tw = W - x0 < tin ? W - x0 : tin;
            for (int64_t c = 0; c < Cin; c++)
                for (int64_t y = 0; y < th; y++)
                    memcpy(crop + (c * th + y) * tw, in + (c * H + y0 + y) * W + x0,
                           (size_t)tw * sizeof(float));
            if (fn(v, crop, th, tw, &cur[j]) != 0) {
                sx_err_prefix("vae tile (%lld,%lld): ", (long long)i, (long long)j);
                goto done;
            }
            if (i > 0) blend_v(&prev[j], &cur[j], Cout, blend);
            if (j > 0) blend_h(&cur[j - 1], &cur[j], Cout, blend);
            int64_t ch = cur[j].h < limit ? cur[j].h : limit;
            int64_t cw = cur[j].w < limit ? cur[j].w : limit;
            if (oy + ch > OH || ox + cw > OW) {
                sx_err("vae tiling: tiles do not add up to %lldx%lld (tile %lld)", (long long)OH,
                       (long long)OW, (long long)tin);
                goto done;
            }
            for (int64_t c = 0; c < Cout; c++)
                for (int64_t y = 0; y < ch; y++)
                    memcpy(out + (c * OH + oy + y) * OW + ox, cur[j].d + (c * cur[j].h + y) * cur[j].w,
                           (size_t)cw * sizeof(float));
            ox += cw;
            rows = ch;
        }
        if (ox != OW) {
            sx_err("vae tiling: row width %lld != %lld", (long long)ox, (long long)OW);
            goto done;
        }
        oy += rows;
        for (int64_t j = 0; j < nc; j++) {
            free(prev[j].d);
            prev[j] = cur[j];
            cur[j].d = NULL;
        }
    }
    if (oy != OH) {
        sx_err("vae tiling: height %lld != %lld", (long long)oy, (long long)OH);
        goto done;
    }
    rc = 0;
done:
    if (prev)
        for (int64_t j = 0; j < nc; j++) free(prev[j].d);
    if (cur)
        for (int64_t j = 0; j < nc; j++) free(cur[j].d);
    free(prev);
    free(cur);
    free(crop);
    return rc;
}

static int tile_sizes(const sx_vae *v, int64_t *ts, int64_t *tl) {
    int f = sx_vae_factor(v);
    int64_t s = v->tile_sample_size > 0 ? v->tile_sample_size : v->cfg.sample_size;
    if (s <= 0 || s % (4 * f) != 0)
        return sx_err("vae tiling: tile size %lld px is not a positive multiple of %d (4 x the "
                      "VAE factor %d)",
                      (long long)s, 4 * f, f);
    *ts = s;
    *tl = (int64_t)((double)s / (double)f); /* int(sample_size / 2**(n-1)) */
    return 0;
}

/* ---------------------------------------------------------------------------
 * public API
 * ------------------------------------------------------------------------- */
int sx_vae_factor(const sx_vae *vae) { return 1 << (vae->cfg.n_blocks - 1); }

#define SX_VAE_MAX_SIDE 16384 /* pixels */

int sx_vae_decode(const sx_vae *vae, const float *latents, int64_t latent_channels, int64_t h,
                  int64_t w, int tiling, float *image) {
    if (!vae || !latents || !image) return sx_err("sx_vae_decode: NULL argument");
    const sx_vae_config *c = &vae->cfg;
    int f = sx_vae_factor(vae);
    if (latent_channels != c->latent_channels)
        return sx_err("sx_vae_decode: latents have %lld channels, the VAE expects %d",
                      (long long)latent_channels, c->latent_channels);
    if (h <= 0 || w <= 0 || h * f > SX_VAE_MAX_SIDE || w * f > SX_VAE_MAX_SIDE)
        return sx_err("sx_vae_decode: latent size %lldx%lld out of range (1..%d per side)",
                      (long long)h, (long long)w, SX_VAE_MAX_SIDE / f);
    /* z = latents / scaling_factor (+ shift_factor), as the pipeline does */
    int64_t n = (int64_t)c->latent_channels * h * w;
    float *z = alloc_f(n, "vae latents");
    if (!z) return -1;
    for (int64_t i = 0; i < n; i++) {
        z[i] = latents[i] / c->scaling_factor;
        if (c->has_shift) z[i] = z[i] + c->shift_factor;
    }
    int rc;
    int64_t ts, tl;
    if (tiling) {
        if (tile_sizes(vae, &ts, &tl) != 0) {
            free(z);
            return -1;
        }
    }
    if (tiling && (h > tl || w > tl)) {
        int64_t stride = (int64_t)((double)tl * 0.75), blend = (int64_t)((double)ts * 0.25);
        rc = tiled_run(vae, dec_tile, z, c->latent_channels, h, w, tl, stride, blend, ts - blend,
                       c->out_channels, image, h * f, w * f);
    } else {
        int64_t shp[4] = {1, c->latent_channels, h, w};
        sx_trace("vae.decode.z", z, 4, shp);
        rc = decode_block(vae, z, h, w, image, 1);
    }
    free(z);
    return rc;
}

int sx_vae_encode(const sx_vae *vae, const float *image, int64_t channels, int64_t H, int64_t W,
                  int tiling, float *mean, float *logvar) {
    if (!vae || !image || !mean) return sx_err("sx_vae_encode: NULL argument");
    const sx_vae_config *c = &vae->cfg;
    int f = sx_vae_factor(vae);
    if (!vae->has_encoder)
        return sx_err("sx_vae_encode: %s has no encoder weights",
                      vae->g ? sx_gguf_path(vae->g) : "the VAE");
    if (channels != c->in_channels)
        return sx_err("sx_vae_encode: image has %lld channels, the VAE expects %d",
                      (long long)channels, c->in_channels);
    if (H <= 0 || W <= 0 || H > SX_VAE_MAX_SIDE || W > SX_VAE_MAX_SIDE || H % f || W % f)
        return sx_err("sx_vae_encode: image size %lldx%lld must be positive multiples of %d "
                      "(the VAE's factor) and at most %d",
                      (long long)W, (long long)H, f, SX_VAE_MAX_SIDE);
    int64_t L = c->latent_channels, h = H / f, w = W / f, ts, tl;
    float *mom = NULL;
    if (tiling && tile_sizes(vae, &ts, &tl) != 0) return -1;
    if (tiling && (H > ts || W > ts)) {
        int64_t stride = (int64_t)((double)ts * 0.75), blend = (int64_t)((double)tl * 0.25);
        mom = alloc_f(2 * L * h * w, "vae moments");
        if (!mom) return -1;
        if (tiled_run(vae, enc_tile, image, channels, H, W, ts, stride, blend, tl - blend, 2 * L,
                      mom, h, w) != 0) {
            free(mom);
            return -1;
        }
    } else {
        int64_t ho, wo;
        mom = encode_block(vae, image, H, W, &ho, &wo, 1);
        if (!mom) return sx_err_prefix("sx_vae_encode: ");
        if (ho != h || wo != w) {
            free(mom);
            return sx_err("sx_vae_encode: encoder gave %lldx%lld latents, expected %lldx%lld",
                          (long long)wo, (long long)ho, (long long)w, (long long)h);
        }
    }
    /* DiagonalGaussianDistribution: mean, logvar = chunk(moments, 2); clamp */
    memcpy(mean, mom, (size_t)(L * h * w) * sizeof(float));
    if (logvar)
        for (int64_t i = 0; i < L * h * w; i++) {
            float lv = mom[L * h * w + i];
            logvar[i] = lv < -30.0f ? -30.0f : lv > 20.0f ? 20.0f : lv;
        }
    free(mom);
    return 0;
}

int sx_vae_to_rgb8(const float *image, int64_t channels, int64_t H, int64_t W, sx_image *out) {
    if (!image || !out) return sx_err("sx_vae_to_rgb8: NULL argument");
    memset(out, 0, sizeof *out);
    if (channels != 3) return sx_err("sx_vae_to_rgb8: image has %lld channels, expected 3",
                                     (long long)channels);
    if (H <= 0 || W <= 0 || H > SX_VAE_MAX_SIDE || W > SX_VAE_MAX_SIDE)
        return sx_err("sx_vae_to_rgb8: bad size %lldx%lld", (long long)W, (long long)H);
    out->data = sx_malloc((size_t)(H * W * 3), "vae rgb8 image");
    if (!out->data) return -1;
    out->w = (int)W;
    out->h = (int)H;
    out->channels = 3;
    for (int64_t c = 0; c < 3; c++)
        for (int64_t i = 0; i < H * W; i++) {
            float v = image[c * H * W + i] / 2.0f + 0.5f; /* denormalize */
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;  /* clamp(0, 1) (NaN -> 0 below) */
            v = nearbyintf(v * 255.0f);                  /* numpy round: half to even */
            out->data[i * 3 + c] = (uint8_t)(v >= 0.0f && v <= 255.0f ? v : 0.0f);
        }
    return 0;
}

/* ---------------------------------------------------------------------------
 * loading
 * ------------------------------------------------------------------------- */
static int get_vec(sx_gguf *g, const char *name, int64_t n, const float **out) {
    *out = sx_get_f32(g, name, SX_SHAPE(n));
    return *out ? 0 : -1;
}

static int get_conv(sx_gguf *g, const char *pfx, int cin, int cout, int k, sx_vae_conv *c) {
    char nw[256], nb[256];
    snprintf(nw, sizeof nw, "%s.weight", pfx);
    snprintf(nb, sizeof nb, "%s.bias", pfx);
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    if (!sx_tensor_get(g, nw, SX_ANY_FLOAT, SX_SHAPE(cout, cin, k, k)))
        return -1;
    if (sx_weight_get(g, nw, cout, (int64_t)cin * k * k, &c->w) != 0) return -1;
    return get_vec(g, nb, cout, &c->b);
}

static int get_norm(sx_gguf *g, const char *pfx, int C, const float **w, const float **b) {
    char nw[256], nb[256];
    snprintf(nw, sizeof nw, "%s.weight", pfx);
    snprintf(nb, sizeof nb, "%s.bias", pfx);
    if (get_vec(g, nw, C, w) != 0) return -1;
    return get_vec(g, nb, C, b);
}

static int get_resnet(sx_gguf *g, const sx_vae_config *c, const char *pfx, int cin, int cout,
                      sx_vae_resnet *r) {
    char n[256];
    sx_vae_conv cv;
    memset(r, 0, sizeof *r);
    r->cin = cin;
    r->cout = cout;
    r->groups = c->norm_groups;
    r->eps = c->norm_eps;
    if (cin % c->norm_groups || cout % c->norm_groups)
        return sx_err("%s: %s has %d/%d channels, not divisible by norm_num_groups %d",
                      sx_gguf_path(g), pfx, cin, cout, c->norm_groups);
    snprintf(n, sizeof n, "%s.norm1", pfx);
    if (get_norm(g, n, cin, &r->norm1_w, &r->norm1_b)) return -1;
    snprintf(n, sizeof n, "%s.conv1", pfx);
    if (get_conv(g, n, cin, cout, 3, &cv)) return -1;
    r->conv1 = cv.w;
    r->conv1_b = cv.b;
    snprintf(n, sizeof n, "%s.norm2", pfx);
    if (get_norm(g, n, cout, &r->norm2_w, &r->norm2_b)) return -1;
    snprintf(n, sizeof n, "%s.conv2", pfx);
    if (get_conv(g, n, cout, cout, 3, &cv)) return -1;
    r->conv2 = cv.w;
    r->conv2_b = cv.b;
    snprintf(n, sizeof n, "%s.conv_shortcut.weight", pfx);
    if (cin != cout) {
        r->has_shortcut = 1;
        snprintf(n, sizeof n, "%s.conv_shortcut", pfx);
        if (get_conv(g, n, cin, cout, 1, &cv)) return -1;
        r->shortcut = cv.w;
        r->shortcut_b = cv.b;
    } else if (sx_gguf_find(g, n)) {
        return sx_err("%s: unexpected tensor '%s' (in and out channels are both %d)",
                      sx_gguf_path(g), n, cin);
    }
    return 0;
}

static int get_lin(sx_gguf *g, const char *pfx, int C, sx_weight *w, const float **b) {
    char nw[256], nb[256];
    snprintf(nw, sizeof nw, "%s.weight", pfx);
    snprintf(nb, sizeof nb, "%s.bias", pfx);
    if (!sx_tensor_get(g, nw, SX_ANY_FLOAT, SX_SHAPE(C, C))) return -1;
    if (sx_weight_get(g, nw, C, C, w) != 0) return -1;
    return get_vec(g, nb, C, b);
}

static int get_mid(sx_gguf *g, const sx_vae_config *c, const char *pfx, int C, sx_vae_mid *m) {
    char n[256];
    memset(m, 0, sizeof *m);
    snprintf(n, sizeof n, "%s.mid_block.resnets.0", pfx);
    if (get_resnet(g, c, n, C, C, &m->res0)) return -1;
    snprintf(n, sizeof n, "%s.mid_block.resnets.1", pfx);
    if (get_resnet(g, c, n, C, C, &m->res1)) return -1;
    m->has_attn = c->mid_attention;
    if (!m->has_attn) return 0;
    sx_vae_attn *a = &m->attn;
    a->channels = C;
    a->groups = c->norm_groups;
    a->eps = c->norm_eps;
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.query.weight", pfx);
    if (sx_gguf_find(g, n))
        return sx_err("%s: legacy attention name '%s': re-convert with scripts/convert.py vae "
                      "(it stores to_q/to_k/to_v/to_out.0)",
                      sx_gguf_path(g), n);
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.group_norm", pfx);
    if (get_norm(g, n, C, &a->norm_w, &a->norm_b)) return -1;
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.to_q", pfx);
    if (get_lin(g, n, C, &a->q, &a->q_b)) return -1;
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.to_k", pfx);
    if (get_lin(g, n, C, &a->k, &a->k_b)) return -1;
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.to_v", pfx);
    if (get_lin(g, n, C, &a->v, &a->v_b)) return -1;
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.to_out.0", pfx);
    return get_lin(g, n, C, &a->o, &a->o_b);
}

static int read_config(sx_gguf *g, sx_vae_config *c) {
    int64_t v;
    double d;
    const char *path = sx_gguf_path(g);
    memset(c, 0, sizeof *c);
#define META_INT(key, field, lo, hi)                                                         \
    do {                                                                                     \
        if (sx_meta_int(g, "seedx.vae." key, &v) != 0) return -1;                            \
        if (v < (lo) || v > (hi))                                                            \
            return sx_err("%s: seedx.vae." key " = %lld out of range [%d, %d]", path,        \
                          (long long)v, (int)(lo), (int)(hi));                               \
        c->field = (int)v;                                                                   \
    } while (0)
    META_INT("in_channels", in_channels, 1, 64);
    META_INT("out_channels", out_channels, 1, 64);
    META_INT("latent_channels", latent_channels, 1, 256);
    META_INT("layers_per_block", layers_per_block, 1, 16);
    META_INT("norm_num_groups", norm_groups, 1, 1024);
    META_INT("sample_size", sample_size, 1, 1 << 16);
#undef META_INT
    int et;
    uint64_t nb;
    if (sx_meta_arr(g, "seedx.vae.block_out_channels", &et, &nb) != 0) return -1;
    if (nb < 1 || nb > SX_VAE_MAX_BLOCKS)
        return sx_err("%s: seedx.vae.block_out_channels has %llu entries, expected 1..%d", path,
                      (unsigned long long)nb, SX_VAE_MAX_BLOCKS);
    c->n_blocks = (int)nb;
    for (uint64_t i = 0; i < nb; i++) {
        if (sx_meta_arr_int(g, "seedx.vae.block_out_channels", i, &v) != 0) return -1;
        if (v < 1 || v > 65536 || v % c->norm_groups)
            return sx_err("%s: seedx.vae.block_out_channels[%llu] = %lld (must be a positive "
                          "multiple of norm_num_groups %d)",
                          path, (unsigned long long)i, (long long)v, c->norm_groups);
        c->block_out[i] = (int)v;
    }
    if (sx_meta_float(g, "seedx.vae.scaling_factor", &d) != 0) return -1;
    if (!(d > 0) || !isfinite(d))
        return sx_err("%s: seedx.vae.scaling_factor = %g must be > 0", path, d);
    c->scaling_factor = (float)d;
    c->has_shift = sx_meta_has(g, "seedx.vae.shift_factor");
    c->shift_factor = (float)sx_meta_float_or(g, "seedx.vae.shift_factor", 0.0);
    c->norm_eps = (float)sx_meta_float_or(g, "seedx.vae.norm_eps", 1e-6);
    c->mid_attention = (int)sx_meta_int_or(g, "seedx.vae.mid_block_add_attention", 1);
    c->force_upcast = (int)sx_meta_int_or(g, "seedx.vae.force_upcast", 1);
    const char *s;
    size_t sl;
    if (sx_meta_has(g, "seedx.vae.act_fn")) {
        if (sx_meta_str(g, "seedx.vae.act_fn", &s, &sl) != 0) return -1;
        if (!(sl == 4 && memcmp(s, "silu", 4) == 0))
            return sx_err("%s: seedx.vae.act_fn '%.*s' not supported (silu only)", path, (int)sl, s);
    }
    return 0;
}

int sx_vae_load_gguf(sx_gguf *g, sx_vae **out) {
    if (!g || !out) return sx_err("sx_vae_load_gguf: NULL argument");
    *out = NULL;
    sx_vae *v = sx_calloc(1, sizeof *v, "vae");
    if (!v) return -1;
    v->g = g;
    sx_vae_config *c = &v->cfg;
    char n[256];
    if (read_config(g, c) != 0) goto fail;
    int nbk = c->n_blocks, L = c->latent_channels;
    const int *bo = c->block_out;
    /* decoder */
    if (get_conv(g, "post_quant_conv", L, L, 1, &v->post_quant_conv)) goto fail;
    if (get_conv(g, "decoder.conv_in", L, bo[nbk - 1], 3, &v->dec_conv_in)) goto fail;
    if (get_mid(g, c, "decoder", bo[nbk - 1], &v->dec_mid)) goto fail;
    int prev = bo[nbk - 1];
    for (int i = 0; i < nbk; i++) {
        sx_vae_up_block *b = &v->up[i];
        int oc = bo[nbk - 1 - i];
        b->n_resnets = c->layers_per_block + 1;
        b->resnets = sx_calloc((size_t)b->n_resnets, sizeof(sx_vae_resnet), "vae resnets");
        if (!b->resnets) goto fail;
        for (int r = 0; r < b->n_resnets; r++) {
            snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.%d", i, r);
            if (get_resnet(g, c, n, r == 0 ? prev : oc, oc, &b->resnets[r])) goto fail;
        }
        b->has_up = i < nbk - 1;
        snprintf(n, sizeof n, "decoder.up_blocks.%d.upsamplers.0.conv", i);
        if (b->has_up && get_conv(g, n, oc, oc, 3, &b->up)) goto fail;
        prev = oc;
    }
    if (get_norm(g, "decoder.conv_norm_out", bo[0], &v->dec_norm_w, &v->dec_norm_b)) goto fail;
    if (get_conv(g, "decoder.conv_out", bo[0], c->out_channels, 3, &v->dec_conv_out)) goto fail;
    /* encoder (optional: a decoder-only file can still decode) */
    v->has_encoder = sx_gguf_find(g, "encoder.conv_in.weight") != NULL;
    if (v->has_encoder) {
        if (get_conv(g, "encoder.conv_in", c->in_channels, bo[0], 3, &v->enc_conv_in)) goto fail;
        prev = bo[0];
        for (int i = 0; i < nbk; i++) {
            sx_vae_down_block *b = &v->down[i];
            b->n_resnets = c->layers_per_block;
            b->resnets = sx_calloc((size_t)b->n_resnets, sizeof(sx_vae_resnet), "vae resnets");
            if (!b->resnets) goto fail;
            for (int r = 0; r < b->n_resnets; r++) {
                snprintf(n, sizeof n, "encoder.down_blocks.%d.resnets.%d", i, r);
                if (get_resnet(g, c, n, r == 0 ? prev : bo[i], bo[i], &b->resnets[r])) goto fail;
            }
            b->has_down = i < nbk - 1;
            snprintf(n, sizeof n, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            if (b->has_down && get_conv(g, n, bo[i], bo[i], 3, &b->down)) goto fail;
            prev = bo[i];
        }
        if (get_mid(g, c, "encoder", bo[nbk - 1], &v->enc_mid)) goto fail;
        if (get_norm(g, "encoder.conv_norm_out", bo[nbk - 1], &v->enc_norm_w, &v->enc_norm_b))
            goto fail;
        if (get_conv(g, "encoder.conv_out", bo[nbk - 1], 2 * L, 3, &v->enc_conv_out)) goto fail;
        if (get_conv(g, "quant_conv", 2 * L, 2 * L, 1, &v->quant_conv)) goto fail;
    }
    *out = v;
    return 0;
fail:
    v->g = NULL; /* not ours */
    sx_vae_free(v);
    return sx_err_prefix("loading VAE: ");
}

int sx_vae_load(const char *path, sx_vae **out) {
    if (!path || !out) return sx_err("sx_vae_load: NULL argument");
    *out = NULL;
    sx_gguf *g;
    if (sx_gguf_open(path, &g) != 0) return -1;
    if (sx_vae_load_gguf(g, out) != 0) {
        sx_gguf_close(g);
        return -1;
    }
    (*out)->owns_g = 1;
    return 0;
}

void sx_vae_free(sx_vae *vae) {
    if (!vae) return;
    for (int i = 0; i < SX_VAE_MAX_BLOCKS; i++) {
        free(vae->down[i].resnets);
        free(vae->up[i].resnets);
    }
    if (vae->owns_g) sx_gguf_close(vae->g);
    free(vae);
}
