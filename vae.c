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
 * Memory (nn.h's convention): the layers take their temporaries from one
 * arena per call; between layers each stage writes a new activation of its
 * exact size and frees its input as soon as it is dead, so the peak of an
 * untiled decode is about three of the largest activation buffers (see the
 * report in tests/bench_vae.c). */
#include "vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sx_core.h"

static float *alloc_f(int64_t n, const char *what) {
    if (n <= 0) n = 1;
    return sx_malloc((size_t)n * sizeof(float), what);
}

/* ---------------------------------------------------------------------------
 * layers
 * ------------------------------------------------------------------------- */

/* Attention (mid block): x [C,H,W]; tokens t = H*W rows of C.
 *   n = group_norm(x); q,k,v = to_q/k/v(n^T); o = softmax(q k^T / sqrt(C)) v;
 *   y = to_out.0(o)^T + x */
int sx_vae_attn_forward(const sx_vae_attn *a, float *y, const float *x, int64_t H, int64_t W,
                        sx_arena *ws) {
    if (!a || !y || !x || !ws || H <= 0 || W <= 0 || a->group_norm.dim <= 0)
        return sx_err("sx_vae_attn_forward: bad arguments");
    int64_t C = a->group_norm.dim, T = H * W;
    const sx_linear *ls[4] = {&a->mha.q, &a->mha.k, &a->mha.v, &a->mha.o};
    for (int i = 0; i < 4; i++)
        if (ls[i]->w.N != C || ls[i]->w.K != C || !ls[i]->w.data)
            return sx_err("sx_vae_attn_forward: weight '%s' is [%lld,%lld], expected [%lld,%lld]",
                          ls[i]->w.name ? ls[i]->w.name : "?", (long long)ls[i]->w.N,
                          (long long)ls[i]->w.K, (long long)C, (long long)C);
    sx_arena_mark top = sx_arena_top(ws);
    float *n = sx_arena_floats(ws, C * T, "vae attention norm");
    float *tok = sx_arena_floats(ws, T * C, "vae attention tokens");
    int rc = -1;
    if (!n || !tok || sx_norm_chw(&a->group_norm, n, x, T, SX_ACT_NONE)) goto done;
    sx_transpose(tok, n, C, T);                                       /* [T, C] */
    if (sx_mha_forward(&a->mha, n, tok, T, tok, tok, T, 0, ws)) goto done; /* [T, C] */
    sx_transpose(tok, n, T, C);                                       /* [C, T] */
    sx_add(y, tok, x, C * T);                                         /* + residual */
    rc = 0;
done:
    sx_arena_release(ws, top);
    return rc;
}

/* The activation between stages, x [C, H, W]: the caller's input at first
 * (not owned), then each stage's output. */
typedef struct stage {
    float *x;
    int own;
    int64_t C, H, W;
    sx_arena *ws;
    int trace;
} stage;

/* traces x [1, C, H, W] under a module path (printf-style) */
#define TRACE(s, ...)                                                                              \
    do {                                                                                           \
        if ((s)->trace) sx_tracef((s)->x, 4, (int64_t[]){1, (s)->C, (s)->H, (s)->W}, __VA_ARGS__); \
    } while (0)

/* x = y [C, H, W]; the old x is freed when owned */
static void advance(stage *s, float *y, int own, int64_t C, int64_t H, int64_t W) {
    if (s->own) free(s->x);
    *s = (stage){.x = y, .own = own, .C = C, .H = H, .W = W, .ws = s->ws, .trace = s->trace};
}

/* x = conv(x), or conv(SiLU(norm(x))) fused when norm is given, into dst
 * (the caller's) or a new buffer */
static int conv(stage *s, const sx_norm *norm, const sx_conv_layer *cv, float *dst) {
    int64_t Ho, Wo;
    sx_conv_out_hw(&cv->c, s->H, s->W, &Ho, &Wo);
    if (Ho <= 0 || Wo <= 0)
        return sx_err("vae: %lldx%lld input too small for conv '%s'", (long long)s->H,
                      (long long)s->W, cv->w.name ? cv->w.name : "?");
    float *y = dst ? dst : alloc_f(cv->c.cout * Ho * Wo, "vae activations");
    if (!y) return -1;
    if (norm ? sx_norm_conv_forward(norm, SX_ACT_SILU, cv, y, s->x, s->H, s->W, 0)
             : sx_conv_forward(cv, y, s->x, s->H, s->W, NULL, NULL)) {
        if (!dst) free(y);
        return -1;
    }
    advance(s, y, !dst, cv->c.cout, Ho, Wo);
    return 0;
}

/* x = resnet(x) */
static int resnet(stage *s, const sx_resnet *r) {
    float *y = alloc_f(r->cout * s->H * s->W, "vae activations");
    if (!y || sx_resnet_forward(r, y, s->x, s->H, s->W, NULL, s->ws)) {
        free(y);
        return -1;
    }
    advance(s, y, 1, r->cout, s->H, s->W);
    return 0;
}

/* upsamplers.0: x = conv(nearest x2 (x)); the doubled input is scratch and
 * x is freed before the conv */
static int upsample(stage *s, const sx_conv_layer *cv) {
    sx_arena_mark top = sx_arena_top(s->ws);
    float *u = sx_arena_floats(s->ws, s->C * 4 * s->H * s->W, "vae upsample");
    if (!u) return -1;
    sx_upsample_nearest2x(u, s->x, s->C, s->H, s->W);
    stage t = {.x = u, .C = s->C, .H = 2 * s->H, .W = 2 * s->W, .ws = s->ws, .trace = s->trace};
    advance(s, NULL, 0, 0, 0, 0);
    int rc = conv(&t, NULL, cv, NULL);
    if (!rc) *s = t;
    sx_arena_release(s->ws, top);
    return rc;
}

/* <pfx>.mid_block: resnets.0 -> attentions.0 -> resnets.1 at [C_last, h, w] */
static int mid_block(stage *s, const sx_vae_mid *m, const char *pfx) {
    if (resnet(s, &m->resnets[0])) return sx_err_prefix("%s.mid_block.resnets.0: ", pfx);
    TRACE(s, "%s.mid_block.resnets.0", pfx);
    if (m->has_attn) {
        if (sx_vae_attn_forward(&m->attn, s->x, s->x, s->H, s->W, s->ws))
            return sx_err_prefix("%s.mid_block.attentions.0: ", pfx);
        TRACE(s, "%s.mid_block.attentions.0", pfx);
    }
    if (resnet(s, &m->resnets[1])) return sx_err_prefix("%s.mid_block.resnets.1: ", pfx);
    TRACE(s, "%s.mid_block.resnets.1", pfx);
    TRACE(s, "%s.mid_block", pfx);
    return 0;
}

/* encoder.down_blocks.i: resnets, then the stride-2 conv -> [C, H/2, W/2];
 * decoder.up_blocks.i: resnets, then nearest x2 + conv -> [C, 2H, 2W] */
static int vae_block(stage *s, const sx_vae_block *b, const char *pfx, int i, int up) {
    const char *kind = up ? "up_blocks" : "down_blocks";
    for (int r = 0; r < b->n_resnets; r++) {
        if (resnet(s, &b->resnets[r])) return sx_err_prefix("%s.%d.resnets.%d: ", kind, i, r);
        TRACE(s, "%s.%s.%d.resnets.%d", pfx, kind, i, r);
    }
    if (b->has_sampler) {
        if (up ? upsample(s, &b->sampler) : conv(s, NULL, &b->sampler, NULL))
            return sx_err_prefix("%s.%d.%s.0: ", kind, i, up ? "upsamplers" : "downsamplers");
        TRACE(s, "%s.%s.%d.%s.0", pfx, kind, i, up ? "upsamplers" : "downsamplers");
    }
    TRACE(s, "%s.%s.%d", pfx, kind, i);
    return 0;
}

/* ---------------------------------------------------------------------------
 * decoder: z [L, h, w] (already / scaling_factor) -> image [out, f*h, f*w]
 * written to img. post_quant_conv included.
 * ------------------------------------------------------------------------- */
/* Progress of a decode (sx_vae.progress): steps done of total. */
static void report(const sx_vae *v, int64_t done, int64_t total) {
    if (v->progress) v->progress(v->progress_ud, done, total);
}

/* trace: the whole image (not a tile): tensors are traced and the progress
 * is reported after the mid block, each up block and conv_out. */
static int decode_block(const sx_vae *v, const float *z, int64_t h, int64_t w, float *img,
                        int trace, sx_arena *ws) {
    const sx_vae_coder *d = &v->decoder;
    stage s = {.x = (float *)z, .C = v->cfg.latent_channels, .H = h, .W = w, .ws = ws,
               .trace = trace};
    int rc = -1, n_steps = v->cfg.n_blocks + 2;
    if (trace) report(v, 0, n_steps);
    /* post_quant_conv 1x1: [L, h, w]; decoder.conv_in 3x3: -> [C_last, h, w] */
    if (conv(&s, NULL, &v->post_quant_conv, NULL)) goto done;
    TRACE(&s, "post_quant_conv");
    if (conv(&s, NULL, &d->conv_in, NULL)) goto done;
    TRACE(&s, "decoder.conv_in");
    /* decoder.mid_block */
    if (mid_block(&s, &d->mid_block, "decoder")) goto done;
    if (trace) report(v, 1, n_steps);
    /* decoder.up_blocks.i: [C, H, W] -> [C', 2H, 2W] (the last block keeps the size) */
    for (int i = 0; i < v->cfg.n_blocks; i++) {
        if (vae_block(&s, &d->blocks[i], "decoder", i, 1)) goto done;
        if (trace) report(v, 2 + i, n_steps);
    }
    /* conv_norm_out -> SiLU -> conv_out, fused: [C_0, H, W] -> img [out_channels, H, W] */
    if (conv(&s, &d->conv_norm_out, &d->conv_out, img)) goto done;
    TRACE(&s, "decoder.conv_out");
    TRACE(&s, "decoder");
    if (trace) report(v, n_steps, n_steps);
    rc = 0;
done:
    if (s.own) free(s.x);
    return rc ? sx_err_prefix("vae decode: ") : 0;
}

/* encoder + quant_conv: x [in, H, W] -> moments [2L, H', W'] (allocated). */
static float *encode_block(const sx_vae *v, const float *img, int64_t H, int64_t W, int64_t *Ho,
                           int64_t *Wo, int trace, sx_arena *ws) {
    const sx_vae_coder *e = &v->encoder;
    stage s = {.x = (float *)img, .C = v->cfg.in_channels, .H = H, .W = W, .ws = ws,
               .trace = trace};
    /* encoder.conv_in 3x3: [in, H, W] -> [C_0, H, W] */
    if (conv(&s, NULL, &e->conv_in, NULL)) goto fail;
    TRACE(&s, "encoder.conv_in");
    /* encoder.down_blocks.i: [C, H, W] -> [C', H/2, W/2] (the last block keeps the size) */
    for (int i = 0; i < v->cfg.n_blocks; i++)
        if (vae_block(&s, &e->blocks[i], "encoder", i, 0)) goto fail;
    /* encoder.mid_block */
    if (mid_block(&s, &e->mid_block, "encoder")) goto fail;
    /* conv_norm_out -> SiLU -> conv_out (fused) [2L, H', W'] -> quant_conv 1x1 */
    if (conv(&s, &e->conv_norm_out, &e->conv_out, NULL)) goto fail;
    TRACE(&s, "encoder.conv_out");
    TRACE(&s, "encoder");
    if (conv(&s, NULL, &v->quant_conv, NULL)) goto fail;
    TRACE(&s, "quant_conv");
    *Ho = s.H;
    *Wo = s.W;
    return s.x;
fail:
    if (s.own) free(s.x);
    return NULL;
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
typedef int (*tile_fn)(const sx_vae *v, const float *in, int64_t th, int64_t tw, tile *out,
                       sx_arena *ws);

static int dec_tile(const sx_vae *v, const float *in, int64_t th, int64_t tw, tile *out,
                    sx_arena *ws) {
    int f = sx_vae_factor(v);
    out->h = th * f;
    out->w = tw * f;
    out->d = alloc_f((int64_t)v->cfg.out_channels * out->h * out->w, "vae tile");
    if (!out->d) return -1;
    return decode_block(v, in, th, tw, out->d, 0, ws);
}

static int enc_tile(const sx_vae *v, const float *in, int64_t th, int64_t tw, tile *out,
                    sx_arena *ws) {
    out->d = encode_block(v, in, th, tw, &out->h, &out->w, 0, ws);
    return out->d ? 0 : -1;
}

/* Generic overlap-and-blend driver: the input [Cin, H, W] is cut into tiles of
 * `tin` (stride `stride`), each run through fn to [Cout, ...], blended with
 * the tile above and to the left over `blend` rows/columns and cropped to
 * `limit`; the crops are concatenated into out [Cout, OH, OW]. Only the
 * previous row of tiles is kept. */
static int tiled_run(const sx_vae *v, tile_fn fn, const float *in, int64_t Cin, int64_t H,
                     int64_t W, int64_t tin, int64_t stride, int64_t blend, int64_t limit,
                     int64_t Cout, float *out, int64_t OH, int64_t OW, sx_arena *ws) {
    int64_t nr = (H + stride - 1) / stride, nc = (W + stride - 1) / stride;
    tile *prev = calloc((size_t)nc, sizeof(tile)), *cur = calloc((size_t)nc, sizeof(tile));
    float *crop = alloc_f(Cin * tin * tin, "vae tile input");
    int rc = -1;
    if (!prev || !cur || !crop) {
        sx_err("vae tiling: out of memory");
        goto done;
    }
    int64_t oy = 0;
    if (fn == dec_tile) report(v, 0, nr * nc);
    for (int64_t i = 0; i < nr; i++) {
        int64_t y0 = i * stride, th = H - y0 < tin ? H - y0 : tin, ox = 0, rows = 0;
        for (int64_t j = 0; j < nc; j++) {
            int64_t x0 = j * stride, tw = W - x0 < tin ? W - x0 : tin;
            for (int64_t c = 0; c < Cin; c++)
                for (int64_t y = 0; y < th; y++)
                    memcpy(crop + (c * th + y) * tw, in + (c * H + y0 + y) * W + x0,
                           (size_t)tw * sizeof(float));
            if (fn(v, crop, th, tw, &cur[j], ws) != 0) {
                sx_err_prefix("vae tile (%lld,%lld): ", (long long)i, (long long)j);
                goto done;
            }
            if (fn == dec_tile) report(v, i * nc + j + 1, nr * nc);
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

/* Floats of the untiled decoder's live buffers at their peak for an h x w
 * latent (decode_block: a resnet holds x, the norm copy and conv1's output,
 * then x, h and conv2's output; an upsampler its input and the 4x buffers in
 * and out; the mid attention x, the norm, tokens, q/k/v and the packed
 * keys/values; the latent copy z lives throughout) plus what outlives every
 * step: each thread's attention scratch (a score block of 256 query rows and
 * its packed copy), kept by the kernel layer once grown. */
static double decode_floats(const sx_vae_config *c, double h, double w, int threads) {
    double HW = h * w, C = c->block_out[c->n_blocks - 1], L = c->latent_channels;
    double peak = 2 * L + C;                               /* post_quant_conv, conv_in */
    peak = fmax(peak, 3 * C);                              /* mid resnets */
    if (c->mid_attention) peak = fmax(peak, 8 * C);
    double scratch = c->mid_attention ? 2.0 * 256 * threads * HW : 0;
    peak *= HW;
    double ci = C;
    for (int i = 0; i < c->n_blocks; i++) {
        double co = c->block_out[c->n_blocks - 1 - i];
        for (int r = 0; r < c->layers_per_block + 1; r++, ci = co)
            peak = fmax(peak, fmax(2 * ci + co, ci + 2 * co) * HW);
        if (i < c->n_blocks - 1) { /* upsampler: x, then u and the conv output at 4x */
            peak = fmax(peak, 8 * co * HW);
            HW *= 4;
        }
    }
    return L * h * w + peak + scratch;
}

uint64_t sx_vae_decode_bytes(const sx_vae_config *c, int64_t h, int64_t w, int tiling,
                             int tile_px, int threads) {
    if (!c || c->n_blocks < 1 || h <= 0 || w <= 0) return 0;
    int f = 1 << (c->n_blocks - 1);
    if (threads < 1) threads = 1;
    int64_t ts = tile_px > 0 ? tile_px : c->sample_size, tl = ts / f;
    double fl;
    if (tiling && tl > 0 && (h > tl || w > tl)) { /* one tile + the rows of tiles kept + the crop */
        double nc = (double)((w + tl * 3 / 4 - 1) / (tl * 3 / 4 > 0 ? tl * 3 / 4 : 1));
        fl = decode_floats(c, (double)tl, (double)tl, threads) +
             2 * nc * c->out_channels * (double)ts * (double)ts + (double)c->latent_channels * tl * tl;
    } else {
        fl = decode_floats(c, (double)h, (double)w, threads);
    }
    double bytes = 4 * fl + 2.0 * 48 * 1048576; /* + the conv and GEMM kernels' scratch */
    return bytes >= 1.8e19 ? UINT64_MAX : (uint64_t)bytes;
}

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
    sx_arena ws = {0};
    if (tiling && tile_sizes(vae, &ts, &tl) != 0) {
        rc = -1;
    } else if (tiling && (h > tl || w > tl)) {
        int64_t stride = (int64_t)((double)tl * 0.75), blend = (int64_t)((double)ts * 0.25);
        rc = tiled_run(vae, dec_tile, z, c->latent_channels, h, w, tl, stride, blend, ts - blend,
                       c->out_channels, image, h * f, w * f, &ws);
    } else {
        int64_t shp[4] = {1, c->latent_channels, h, w};
        sx_trace("vae.decode.z", z, 4, shp);
        rc = decode_block(vae, z, h, w, image, 1, &ws);
    }
    sx_arena_free(&ws);
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
    sx_arena ws = {0};
    if (tiling && (H > ts || W > ts)) {
        int64_t stride = (int64_t)((double)ts * 0.75), blend = (int64_t)((double)tl * 0.25);
        mom = alloc_f(2 * L * h * w, "vae moments");
        if (mom && tiled_run(vae, enc_tile, image, channels, H, W, ts, stride, blend, tl - blend,
                             2 * L, mom, h, w, &ws) != 0) {
            free(mom);
            mom = NULL;
        }
    } else {
        int64_t ho, wo;
        mom = encode_block(vae, image, H, W, &ho, &wo, 1, &ws);
        if (!mom) {
            sx_err_prefix("sx_vae_encode: ");
        } else if (ho != h || wo != w) {
            free(mom);
            mom = NULL;
            sx_err("sx_vae_encode: encoder gave %lldx%lld latents, expected %lldx%lld",
                   (long long)wo, (long long)ho, (long long)w, (long long)h);
        }
    }
    sx_arena_free(&ws);
    if (!mom) return -1;
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
static int ld_resnet(const sx_src *s, const sx_vae_config *c, const char *p, int cin, int cout,
                     sx_resnet *r) {
    return sx_resnet_load(s, p, cin, cout, 0, c->norm_groups, c->norm_eps, r);
}

/* <pfx>.mid_block: two resnets [C] and (mid_block_add_attention) the attention */
static int ld_mid(const sx_src *s, const sx_vae_config *c, const char *pfx, int C, sx_vae_mid *m) {
    char n[256];
    memset(m, 0, sizeof *m);
    snprintf(n, sizeof n, "%s.mid_block.resnets.0", pfx);
    if (ld_resnet(s, c, n, C, C, &m->resnets[0])) return -1;
    snprintf(n, sizeof n, "%s.mid_block.resnets.1", pfx);
    if (ld_resnet(s, c, n, C, C, &m->resnets[1])) return -1;
    m->has_attn = c->mid_attention;
    if (!m->has_attn) return 0;
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.query.weight", pfx);
    if (sx_gguf_find(s->g[0], n))
        return sx_err("%s: legacy attention name '%s': re-convert with scripts/convert.py vae "
                      "(it stores to_q/to_k/to_v/to_out.0)",
                      sx_gguf_path(s->g[0]), n);
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.group_norm", pfx);
    if (sx_groupnorm_load(s, n, C, c->norm_groups, c->norm_eps, &m->attn.group_norm)) return -1;
    snprintf(n, sizeof n, "%s.mid_block.attentions.0", pfx);
    return sx_mha_load_diffusers(s, n, C, C, 1, SX_BIAS, &m->attn.mha);
}

/* <pfx>.down_blocks.i / <pfx>.up_blocks.i: n resnets cin -> cout (-> cout),
 * then the block's sampler unless it is the last block */
static int ld_block(const sx_src *s, const sx_vae_config *c, const char *pfx, int i, int n, int cin,
                    int cout, int up, sx_vae_block *b) {
    const char *kind = up ? "up_blocks" : "down_blocks";
    char p[256];
    b->n_resnets = n;
    b->resnets = sx_calloc((size_t)n, sizeof *b->resnets, "vae resnets");
    if (!b->resnets) return -1;
    for (int r = 0; r < n; r++) {
        snprintf(p, sizeof p, "%s.%s.%d.resnets.%d", pfx, kind, i, r);
        if (ld_resnet(s, c, p, r == 0 ? cin : cout, cout, &b->resnets[r])) return -1;
    }
    b->has_sampler = i < c->n_blocks - 1;
    if (!b->has_sampler) return 0;
    snprintf(p, sizeof p, "%s.%s.%d.%s.0.conv", pfx, kind, i, up ? "upsamplers" : "downsamplers");
    if (sx_conv_load(s, p, cout, cout, 3, up ? 1 : 2, up ? 1 : 0, &b->sampler)) return -1;
    if (!up) b->sampler.c.pad_b = b->sampler.c.pad_r = 1; /* F.pad(x, (0, 1, 0, 1)) */
    return 0;
}

static int ld_decoder(const sx_src *s, const sx_vae_config *c, sx_vae_coder *d) {
    int nb = c->n_blocks, last = c->block_out[nb - 1];
    if (sx_conv_load(s, "decoder.conv_in", c->latent_channels, last, 3, 1, 1, &d->conv_in) ||
        ld_mid(s, c, "decoder", last, &d->mid_block))
        return -1;
    for (int i = 0, cin = last; i < nb; cin = c->block_out[nb - 1 - i], i++)
        if (ld_block(s, c, "decoder", i, c->layers_per_block + 1, cin, c->block_out[nb - 1 - i], 1,
                     &d->blocks[i]))
            return -1;
    if (sx_groupnorm_load(s, "decoder.conv_norm_out", c->block_out[0], c->norm_groups, c->norm_eps,
                          &d->conv_norm_out) ||
        sx_conv_load(s, "decoder.conv_out", c->block_out[0], c->out_channels, 3, 1, 1,
                     &d->conv_out))
        return -1;
    return 0;
}

static int ld_encoder(const sx_src *s, const sx_vae_config *c, sx_vae_coder *e) {
    int nb = c->n_blocks, last = c->block_out[nb - 1];
    if (sx_conv_load(s, "encoder.conv_in", c->in_channels, c->block_out[0], 3, 1, 1, &e->conv_in))
        return -1;
    for (int i = 0, cin = c->block_out[0]; i < nb; cin = c->block_out[i], i++)
        if (ld_block(s, c, "encoder", i, c->layers_per_block, cin, c->block_out[i], 0,
                     &e->blocks[i]))
            return -1;
    if (ld_mid(s, c, "encoder", last, &e->mid_block) ||
        sx_groupnorm_load(s, "encoder.conv_norm_out", last, c->norm_groups, c->norm_eps,
                          &e->conv_norm_out) ||
        sx_conv_load(s, "encoder.conv_out", last, 2 * c->latent_channels, 3, 1, 1, &e->conv_out))
        return -1;
    return 0;
}

int sx_vae_read_config(const sx_gguf *g, sx_vae_config *c) {
    if (!g || !c) return sx_err("sx_vae_read_config: NULL argument");
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
    sx_src s = sx_src_one(g);
    int L = 0;
    if (sx_vae_read_config(g, c) != 0) goto fail;
    L = c->latent_channels;
    if (sx_conv_load(&s, "post_quant_conv", L, L, 1, 1, 0, &v->post_quant_conv) ||
        ld_decoder(&s, c, &v->decoder))
        goto fail;
    /* encoder (optional: a decoder-only file can still decode) */
    v->has_encoder = sx_gguf_find(g, "encoder.conv_in.weight") != NULL;
    if (v->has_encoder && (ld_encoder(&s, c, &v->encoder) ||
                           sx_conv_load(&s, "quant_conv", 2 * L, 2 * L, 1, 1, 0, &v->quant_conv)))
        goto fail;
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
        free(vae->encoder.blocks[i].resnets);
        free(vae->decoder.blocks[i].resnets);
    }
    if (vae->owns_g) sx_gguf_close(vae->g);
    free(vae);
}
