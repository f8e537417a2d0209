/* unet.c - SDXL UNet2DConditionModel (diffusers 0.25.0) forward on the CPU.
 *
 * Mirrors diffusers' unet_2d_condition.py / unet_2d_blocks.py / resnet.py /
 * transformer_2d.py / attention.py for the configurations convert_unet.py
 * accepts (DownBlock2D / CrossAttnDownBlock2D down path, UNetMidBlock2DCrossAttn,
 * UpBlock2D / CrossAttnUpBlock2D up path, positional time embedding, optional
 * text_time added embedding). One sample [C, H, W] per call. All sizes come
 * from metadata seedx.unet.*; "heads" is the resolved head count (SDXL's
 * config calls it attention_head_dim; head dim = channels / heads).
 * ResnetBlock2D and the attention projections are nn.c's. */
#include "unet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sx_core.h"

/* down_blocks.i (DownBlock2D / CrossAttnDownBlock2D) and up_blocks.i
 * (UpBlock2D / CrossAttnUpBlock2D): resnets, attentions when cross-attention
 * is on, and the block's resampler. */
typedef struct unet_block {
    int n;                           /* resnets (and attentions) */
    sx_resnet *resnets;
    sx_unet_transformer *attentions; /* NULL: no cross-attention */
    int has_sampler;
    sx_conv_layer sampler;           /* downsamplers.0.conv (3x3, stride 2) or upsamplers.0.conv */
} unet_block;

struct sx_unet {
    sx_unet_config c;
    sx_gguf *g;  /* metadata (the first file) */
    sx_src src;  /* tensors: each from the first file that has it */
    int own_g;
    sx_linear time_linear_1, time_linear_2; /* time_embedding */
    sx_linear add_linear_1, add_linear_2;   /* add_embedding (text_time) */
    sx_conv_layer conv_in;
    unet_block down[SX_UNET_MAX_BLOCKS];
    sx_resnet mid_resnets[2];
    sx_unet_transformer mid_attention;
    unet_block up[SX_UNET_MAX_BLOCKS];
    sx_norm conv_norm_out;
    sx_conv_layer conv_out;
};
_Static_assert(SX_UNET_MAX_FILES <= SX_SRC_MAX, "an overlay stack must fit an sx_src");

/* ======================================================================
 * loading
 * ====================================================================== */
static int meta_arr_ints(sx_gguf *g, const char *key, int *v, int n) {
    int et;
    uint64_t cnt;
    if (sx_meta_arr(g, key, &et, &cnt) != 0) return -1;
    if ((int64_t)cnt != n)
        return sx_err("%s: metadata '%s' has %llu entries, expected %d", sx_gguf_path(g), key,
                      (unsigned long long)cnt, n);
    for (int i = 0; i < n; i++) {
        int64_t x;
        if (sx_meta_arr_int(g, key, (uint64_t)i, &x) != 0) return -1;
        if (x <= 0 || x > (1 << 24))
            return sx_err("%s: metadata '%s'[%d] = %lld is out of range", sx_gguf_path(g), key, i,
                          (long long)x);
        v[i] = (int)x;
    }
    return 0;
}

static int meta_i(sx_gguf *g, const char *key, int *v, int lo, int hi) {
    int64_t x;
    if (sx_meta_int(g, key, &x) != 0) return -1;
    if (x < lo || x > hi)
        return sx_err("%s: metadata '%s' = %lld is out of range [%d, %d]", sx_gguf_path(g), key,
                      (long long)x, lo, hi);
    *v = (int)x;
    return 0;
}

static int str_eq(sx_gguf *g, const char *key, uint64_t i, const char *want) {
    const char *s;
    size_t len;
    if (sx_meta_arr_str(g, key, i, &s, &len) != 0) return -1;
    return len == strlen(want) && memcmp(s, want, len) == 0;
}

static int read_config(sx_gguf *g, sx_unet_config *c) {
    memset(c, 0, sizeof *c);
    const char *P = sx_gguf_path(g);
    int et;
    uint64_t n;
    if (sx_meta_arr(g, "seedx.unet.block_out_channels", &et, &n) != 0) return -1;
    if (n < 1 || n > SX_UNET_MAX_BLOCKS)
        return sx_err("%s: %llu down blocks (1..%d supported)", P, (unsigned long long)n,
                      SX_UNET_MAX_BLOCKS);
    c->n_blocks = (int)n;
    if (meta_arr_ints(g, "seedx.unet.block_out_channels", c->block_out, c->n_blocks) ||
        meta_arr_ints(g, "seedx.unet.transformer_layers_per_block", c->tlayers, c->n_blocks) ||
        meta_arr_ints(g, "seedx.unet.num_attention_heads", c->heads, c->n_blocks))
        return -1;
    for (int i = 0; i < c->n_blocks; i++) {
        int d = str_eq(g, "seedx.unet.down_block_types", (uint64_t)i, "CrossAttnDownBlock2D");
        int dp = str_eq(g, "seedx.unet.down_block_types", (uint64_t)i, "DownBlock2D");
        int u = str_eq(g, "seedx.unet.up_block_types", (uint64_t)i, "CrossAttnUpBlock2D");
        int up = str_eq(g, "seedx.unet.up_block_types", (uint64_t)i, "UpBlock2D");
        if (d < 0 || dp < 0 || u < 0 || up < 0) return -1;
        if (!(d || dp) || !(u || up))
            return sx_err("%s: block %d: unsupported down/up block type", P, i);
        c->down_attn[i] = d;
        c->up_attn[i] = u;
        if (c->block_out[i] % c->heads[i] != 0)
            return sx_err("%s: block %d: %d channels do not split into %d heads", P, i,
                          c->block_out[i], c->heads[i]);
    }
    if (meta_i(g, "seedx.unet.in_channels", &c->in_channels, 1, 1 << 16) ||
        meta_i(g, "seedx.unet.out_channels", &c->out_channels, 1, 1 << 16) ||
        meta_i(g, "seedx.unet.layers_per_block", &c->layers_per_block, 1, 64) ||
        meta_i(g, "seedx.unet.cross_attention_dim", &c->cross_dim, 1, 1 << 20) ||
        meta_i(g, "seedx.unet.time_embedding_dim", &c->time_embed_dim, 1, 1 << 20) ||
        meta_i(g, "seedx.unet.norm_num_groups", &c->groups, 1, 1 << 16) ||
        meta_i(g, "seedx.unet.conv_in_kernel", &c->conv_in_k, 1, 15) ||
        meta_i(g, "seedx.unet.conv_out_kernel", &c->conv_out_k, 1, 15) ||
        meta_i(g, "seedx.unet.downsample_padding", &c->down_pad, 0, 4) ||
        meta_i(g, "seedx.unet.flip_sin_to_cos", &c->flip_sin_to_cos, 0, 1))
        return -1;
    double e, fs;
    if (sx_meta_float(g, "seedx.unet.norm_eps", &e) || sx_meta_float(g, "seedx.unet.freq_shift", &fs))
        return -1;
    c->eps = (float)e;
    c->freq_shift = (float)fs;
    if (c->conv_in_k % 2 == 0 || c->conv_out_k % 2 == 0)
        return sx_err("%s: even conv_in/conv_out kernels are not supported", P);
    c->time_proj_dim = c->block_out[0];
    if (c->time_proj_dim % 2)
        return sx_err("%s: odd timestep embedding width %d", P, c->time_proj_dim);
    const char *s;
    size_t len;
    if (sx_meta_str(g, "seedx.unet.addition_embed_type", &s, &len) != 0) return -1;
    if (len == 9 && memcmp(s, "text_time", 9) == 0) {
        c->text_time = 1;
        if (meta_i(g, "seedx.unet.addition_time_embed_dim", &c->add_time_dim, 2, 1 << 16) ||
            meta_i(g, "seedx.unet.projection_class_embeddings_input_dim", &c->add_in_dim, 1, 1 << 20))
            return -1;
        c->pooled_dim = c->add_in_dim - 6 * c->add_time_dim;
        if (c->pooled_dim <= 0 || c->add_time_dim % 2)
            return sx_err("%s: projection_class_embeddings_input_dim %d does not fit 6 x %d time ids "
                          "+ a pooled embedding", P, c->add_in_dim, c->add_time_dim);
    } else if (len != 0) {
        return sx_err("%s: addition_embed_type '%.*s' is not supported", P, (int)len, s);
    }
    return 0;
}

static int ld_transformer(const sx_src *s, const char *p, int ch, int heads, int layers,
                          const sx_unet_config *c, sx_unet_transformer *t) {
    char nm[300];
    memset(t, 0, sizeof *t);
    t->n_layers = layers;
#define SUB(fmt, ...) (snprintf(nm, sizeof nm, fmt, __VA_ARGS__), nm)
    /* norm: GroupNorm eps 1e-6; proj_in/out: Linear [C, C] (use_linear_projection) or a 1x1
     * conv [C, C, 1, 1] */
    if (sx_groupnorm_load(s, SUB("%s.norm", p), ch, c->groups, 1e-6f, &t->norm) ||
        sx_linear_load(s, SUB("%s.proj_in", p), ch, ch, SX_BIAS, &t->proj_in) ||
        sx_linear_load(s, SUB("%s.proj_out", p), ch, ch, SX_BIAS, &t->proj_out))
        return -1;
    t->blocks = sx_calloc((size_t)layers, sizeof *t->blocks, "unet transformer blocks");
    if (!t->blocks) return -1;
    for (int k = 0; k < layers; k++) {
        /* transformer_blocks.k: LayerNorms eps 1e-5, attention without q/k/v bias, GEGLU 4x */
        sx_unet_tblock *b = &t->blocks[k];
#define TB(name) SUB("%s.transformer_blocks.%d." name, p, k)
        if (sx_layernorm_load(s, TB("norm1"), ch, 1e-5f, &b->norm1) ||
            sx_layernorm_load(s, TB("norm2"), ch, 1e-5f, &b->norm2) ||
            sx_layernorm_load(s, TB("norm3"), ch, 1e-5f, &b->norm3) ||
            sx_mha_load_diffusers(s, TB("attn1"), ch, ch, heads, SX_NO_BIAS, &b->attn1) ||
            sx_mha_load_diffusers(s, TB("attn2"), ch, c->cross_dim, heads, SX_NO_BIAS, &b->attn2) ||
            sx_linear_load(s, TB("ff.net.0.proj"), 2 * 4 * (int64_t)ch, ch, SX_BIAS, &b->ff_proj) ||
            sx_linear_load(s, TB("ff.net.2"), ch, 4 * (int64_t)ch, SX_BIAS, &b->ff_out))
            return -1;
#undef TB
    }
#undef SUB
    return 0;
}

static int alloc_block(unet_block *b, int n, int attn) {
    b->n = n;
    b->resnets = sx_calloc((size_t)n, sizeof *b->resnets, "unet resnets");
    if (attn) b->attentions = sx_calloc((size_t)n, sizeof *b->attentions, "unet attentions");
    return b->resnets && (b->attentions || !attn) ? 0 : -1;
}

static int load_all(sx_unet *u) {
    const sx_src *s = &u->src;
    const sx_unet_config *c = &u->c;
    int n = c->n_blocks, L = c->layers_per_block, ted = c->time_embed_dim;
    char p[160];
    if (sx_conv_load(s, "conv_in", c->in_channels, c->block_out[0], c->conv_in_k, 1,
                     c->conv_in_k / 2, &u->conv_in) ||
        sx_linear_load(s, "time_embedding.linear_1", ted, c->time_proj_dim, SX_BIAS,
                       &u->time_linear_1) ||
        sx_linear_load(s, "time_embedding.linear_2", ted, ted, SX_BIAS, &u->time_linear_2))
        return -1;
    if (c->text_time &&
        (sx_linear_load(s, "add_embedding.linear_1", ted, c->add_in_dim, SX_BIAS,
                        &u->add_linear_1) ||
         sx_linear_load(s, "add_embedding.linear_2", ted, ted, SX_BIAS, &u->add_linear_2)))
        return -1;
    /* channel flow, as the forward pushes/pops skip connections */
    int stack[SX_UNET_MAX_BLOCKS * 66], sp = 0;
    int ch = c->block_out[0];
    stack[sp++] = ch;
    for (int i = 0; i < n; i++) {
        unet_block *b = &u->down[i];
        if (alloc_block(b, L, c->down_attn[i])) return -1;
        for (int j = 0; j < L; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
            if (sx_resnet_load(s, p, ch, c->block_out[i], ted, c->groups, c->eps, &b->resnets[j]))
                return -1;
            ch = c->block_out[i];
            snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
            if (b->attentions &&
                ld_transformer(s, p, ch, c->heads[i], c->tlayers[i], c, &b->attentions[j]))
                return -1;
            stack[sp++] = ch;
        }
        b->has_sampler = i < n - 1;
        if (b->has_sampler) {
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", i);
            if (sx_conv_load(s, p, ch, ch, 3, 2, c->down_pad, &b->sampler)) return -1;
            stack[sp++] = ch;
        }
    }
    if (sx_resnet_load(s, "mid_block.resnets.0", ch, ch, ted, c->groups, c->eps,
                       &u->mid_resnets[0]) ||
        ld_transformer(s, "mid_block.attentions.0", ch, c->heads[n - 1], c->tlayers[n - 1], c,
                       &u->mid_attention) ||
        sx_resnet_load(s, "mid_block.resnets.1", ch, ch, ted, c->groups, c->eps,
                       &u->mid_resnets[1]))
        return -1;
    for (int i = 0; i < n; i++) {
        unet_block *b = &u->up[i];
        int r = n - 1 - i, out = c->block_out[r];
        if (alloc_block(b, L + 1, c->up_attn[i])) return -1;
        for (int j = 0; j <= L; j++) {
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            if (sx_resnet_load(s, p, ch + stack[--sp], out, ted, c->groups, c->eps, &b->resnets[j]))
                return -1;
            ch = out;
            snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
            if (b->attentions &&
                ld_transformer(s, p, ch, c->heads[r], c->tlayers[r], c, &b->attentions[j]))
                return -1;
        }
        b->has_sampler = i < n - 1;
        if (b->has_sampler) {
            snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", i);
            if (sx_conv_load(s, p, ch, ch, 3, 1, 1, &b->sampler)) return -1;
        }
    }
    if (sx_groupnorm_load(s, "conv_norm_out", ch, c->groups, c->eps, &u->conv_norm_out) ||
        sx_conv_load(s, "conv_out", ch, c->out_channels, c->conv_out_k, 1, c->conv_out_k / 2,
                     &u->conv_out))
        return -1;
    return 0;
}

static void free_transformer(sx_unet_transformer *t) { free(t->blocks); }

static void free_block(unet_block *b) {
    for (int j = 0; b->attentions && j < b->n; j++) free_transformer(&b->attentions[j]);
    free(b->attentions);
    free(b->resnets);
}

void sx_unet_free(sx_unet *u) {
    if (!u) return;
    for (int i = 0; i < SX_UNET_MAX_BLOCKS; i++) {
        free_block(&u->down[i]);
        free_block(&u->up[i]);
    }
    free_transformer(&u->mid_attention);
    if (u->own_g)
        for (int i = 0; i < u->src.n; i++) sx_gguf_close(u->src.g[i]);
    free(u);
}

/* The later files must describe the same architecture as the first (an overlay's
 * metadata may differ only in in_channels). */
static int same_arch(sx_gguf *a, sx_gguf *b) {
    static const char *keys[] = {"seedx.unet.block_out_channels", "seedx.unet.transformer_layers_per_block",
                                 "seedx.unet.num_attention_heads"};
    static const char *ikeys[] = {"seedx.unet.layers_per_block", "seedx.unet.cross_attention_dim",
                                  "seedx.unet.norm_num_groups"};
    if (!sx_meta_has(b, "seedx.unet.block_out_channels")) return 0; /* tensors only */
    for (int k = 0; k < 3; k++) {
        int ta, tb;
        uint64_t na, nb;
        if (sx_meta_arr(a, keys[k], &ta, &na) || sx_meta_arr(b, keys[k], &tb, &nb)) return -1;
        for (uint64_t i = 0; i < na && na == nb; i++) {
            int64_t x, y;
            if (sx_meta_arr_int(a, keys[k], i, &x) || sx_meta_arr_int(b, keys[k], i, &y)) return -1;
            if (x != y) nb = na + 1;
        }
        if (na != nb)
            return sx_err("%s and %s describe different UNets ('%s' differs)", sx_gguf_path(a),
                          sx_gguf_path(b), keys[k]);
    }
    for (int k = 0; k < 3; k++)
        if (sx_meta_int_or(a, ikeys[k], -1) != sx_meta_int_or(b, ikeys[k], -1))
            return sx_err("%s and %s describe different UNets ('%s' differs)", sx_gguf_path(a),
                          sx_gguf_path(b), ikeys[k]);
    return 0;
}

static int load_from(sx_gguf *const *gs, int n, sx_unet **out) {
    sx_unet *u = sx_calloc(1, sizeof *u, "unet");
    if (!u) return -1;
    u->g = gs[0];
    for (int i = 0; i < n; i++) u->src.g[i] = gs[i];
    u->src.n = n;
    for (int i = 1; i < n; i++)
        if (same_arch(gs[0], gs[i])) goto fail;
    if (read_config(gs[0], &u->c) != 0 || load_all(u) != 0) goto fail;
    *out = u;
    return 0;
fail:
    sx_err_prefix("loading unet: ");
    sx_unet_free(u);
    return -1;
}

int sx_unet_load_gguf(sx_gguf *g, sx_unet **out) {
    if (!g || !out) return sx_err("sx_unet_load: NULL argument");
    *out = NULL;
    return load_from(&g, 1, out);
}

int sx_unet_load_files(const char *const *paths, int n, sx_unet **out) {
    if (!paths || !out || n < 1 || n > SX_UNET_MAX_FILES)
        return sx_err("sx_unet_load_files: need 1..%d paths", SX_UNET_MAX_FILES);
    *out = NULL;
    sx_gguf *gs[SX_UNET_MAX_FILES];
    for (int i = 0; i < n; i++) {
        if (!paths[i] || sx_gguf_open(paths[i], &gs[i]) != 0) {
            if (!paths[i]) sx_err("sx_unet_load_files: NULL path");
            while (i > 0) sx_gguf_close(gs[--i]);
            return -1;
        }
    }
    if (load_from(gs, n, out) != 0) {
        for (int i = 0; i < n; i++) sx_gguf_close(gs[i]);
        return -1;
    }
    (*out)->own_g = 1;
    return 0;
}

int sx_unet_load(const char *path, sx_unet **out) {
    if (!path || !out) return sx_err("sx_unet_load: NULL argument");
    return sx_unet_load_files(&path, 1, out);
}

const sx_unet_config *sx_unet_get_config(const sx_unet *u) { return u ? &u->c : NULL; }
sx_gguf *sx_unet_gguf(const sx_unet *u) { return u ? u->g : NULL; }

/* ======================================================================
 * layers
 * ====================================================================== */
void sx_unet_timestep_embedding(float *y, float t, int dim, int flip_sin_to_cos, float freq_shift) {
    /* get_timestep_embedding in float32: exponent = -ln(1e4) * k / (half - shift);
     * arg = t * exp(exponent); [sin | cos] (or [cos | sin] with flip_sin_to_cos) */
    int half = dim / 2;
    const float nl = (float)-log(10000.0);
    const float den = (float)half - freq_shift;
    for (int k = 0; k < half; k++) {
        float e = nl * (float)k;
        e = e / den;
        float a = t * expf(e);
        float s = sinf(a), co = cosf(a);
        y[k] = flip_sin_to_cos ? co : s;
        y[half + k] = flip_sin_to_cos ? s : co;
    }
}

#define FF_CHUNK 1024 /* tokens per feed-forward slab (bounds the [T, 8C] buffer) */

int sx_unet_tblock_forward(const sx_unet_tblock *b, float *h, int64_t T, const float *ctx,
                           int64_t Tc, sx_arena *ws) {
    if (!b || !h || !ctx || !ws || T <= 0 || Tc <= 0)
        return sx_err("sx_unet_tblock_forward: bad argument");
    int64_t D = b->norm1.dim, F = b->ff_out.w.K;
    int64_t ffT = T < FF_CHUNK ? T : FF_CHUNK;
    sx_arena_mark top = sx_arena_top(ws);
    int rc = -1;
    float *n = sx_arena_floats(ws, T * D, "tblock norm");
    float *ff = sx_arena_floats(ws, ffT * 2 * F, "tblock ff");
    if (!n || !ff) goto done;
    /* attn1: h += attn1(norm1(h)), self-attention */
    sx_norm_rows(&b->norm1, n, h, T);
    if (sx_mha_forward(&b->attn1, h, n, T, n, n, T, 1, ws)) goto done;
    /* attn2: h += attn2(norm2(h), context [Tc, ctx_dim]), cross-attention */
    sx_norm_rows(&b->norm2, n, h, T);
    if (sx_mha_forward(&b->attn2, h, n, T, ctx, ctx, Tc, 1, ws)) goto done;
    /* ff: h += ff.net.2(GEGLU(ff.net.0.proj(norm3(h)))), in token slabs */
    sx_norm_rows(&b->norm3, n, h, T);
    for (int64_t t0 = 0; t0 < T; t0 += ffT) {
        int64_t m = T - t0 < ffT ? T - t0 : ffT;
        if (sx_linear_forward(&b->ff_proj, ff, n + t0 * D, m)) goto done;
        /* [m, 2F] = [value | gate] -> value * gelu(gate) in the gate half */
        sx_geglu(ff, m, F);
        if (sx_linear_ld(&b->ff_out, h + t0 * D, D, ff + F, 2 * F, m, SX_ACT_NONE, 1)) goto done;
    }
    rc = 0;
done:
    sx_arena_release(ws, top);
    return rc;
}

int sx_unet_transformer_forward(const sx_unet_transformer *t, float *y, const float *x, int64_t H,
                                int64_t W, const float *ctx, int64_t Tc, const char *trace,
                                sx_arena *ws) {
    if (!t || !y || !x || !ctx || !ws) return sx_err("sx_unet_transformer_forward: NULL argument");
    int64_t HW = H * W, C = t->norm.dim;
    sx_arena_mark top = sx_arena_top(ws);
    int rc = -1;
    float *a = sx_arena_floats(ws, C * HW, "transformer scratch");
    float *h = sx_arena_floats(ws, C * HW, "transformer tokens");
    /* norm (GroupNorm) -> tokens [HW, C] -> proj_in */
    if (!a || !h || sx_norm_chw(&t->norm, a, x, HW, SX_ACT_NONE)) goto done;
    sx_transpose(y, a, C, HW);
    if (sx_linear_forward(&t->proj_in, h, y, HW)) goto done;
    for (int k = 0; k < t->n_layers; k++) {
        /* transformer_blocks.k: [HW, C] -> [HW, C] */
        if (sx_unet_tblock_forward(&t->blocks[k], h, HW, ctx, Tc, ws)) goto done;
        if (trace && sx_trace_enabled()) {
            int64_t sh[3] = {1, HW, C};
            sx_tracef(h, 3, sh, "%s.transformer_blocks.%d", trace, k);
        }
    }
    /* proj_out -> [C, H, W] + residual */
    if (sx_linear_forward(&t->proj_out, a, h, HW)) goto done;
    sx_transpose(y, a, HW, C);
    sx_add(y, y, x, C * HW);
    rc = 0;
done:
    sx_arena_release(ws, top);
    return rc;
}

/* ======================================================================
 * forward
 * ====================================================================== */
/* F.interpolate(size=(Ho, Wo), mode="nearest") of [C, H, W]: source index
 * min(floor(dst * (float)in / out), in - 1), as PyTorch's CPU kernel computes it. */
static void resize_nearest(float *y, const float *x, int64_t C, int64_t H, int64_t W, int64_t Ho,
                           int64_t Wo) {
    float sh = (float)H / (float)Ho, sw = (float)W / (float)Wo;
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < Ho; i++) {
            int64_t si = (int64_t)floorf((float)i * sh);
            if (si > H - 1) si = H - 1;
            const float *xr = x + (c * H + si) * W;
            float *yr = y + (c * Ho + i) * Wo;
            for (int64_t j = 0; j < Wo; j++) {
                int64_t sj = (int64_t)floorf((float)j * sw);
                yr[j] = xr[sj > W - 1 ? W - 1 : sj];
            }
        }
}

typedef struct skip_t {
    float *x;
    int64_t C, H, W;
    sx_arena_mark below; /* the arena's top before the copy */
} skip_t;

/* One forward pass: the activation x [C, H, W] and the next one y (each can
 * hold an up block's [x, skip] concatenation), the skip connections (a stack
 * in the arena) and SiLU(emb), which every resnet takes. */
typedef struct run {
    const sx_unet *u;
    const sx_unet_cond *cond;
    sx_arena *ws;
    const float *temb;
    float *x, *y;
    size_t cap; /* floats in x and in y */
    int64_t C, H, W;
    skip_t skip[SX_UNET_MAX_BLOCKS * 66];
    int n_skip;
} run;

/* traces x [1, C, H, W] under a module path (printf-style) */
#define TRACE(r, x, C, ...) sx_tracef((x), 4, (int64_t[]){1, (C), (r)->H, (r)->W}, __VA_ARGS__)

static void swap(run *r) {
    float *t = r->x;
    r->x = r->y;
    r->y = t;
}

/* x = resnet(x, SiLU(emb)) */
static int resnet(run *r, const sx_resnet *rn) {
    if (sx_resnet_forward(rn, r->y, r->x, r->H, r->W, r->temb, r->ws)) return -1;
    swap(r);
    r->C = rn->cout;
    return 0;
}

/* x = transformer(x, context) */
static int transformer(run *r, const sx_unet_transformer *t, const char *name) {
    if (sx_unet_transformer_forward(t, r->y, r->x, r->H, r->W, r->cond->context, r->cond->n_ctx,
                                    name, r->ws))
        return -1;
    swap(r);
    return 0;
}

/* a copy of x onto the skip stack */
static int push_skip(run *r) {
    skip_t *s = &r->skip[r->n_skip];
    if (r->n_skip == (int)(sizeof r->skip / sizeof r->skip[0]))
        return sx_err("unet: more than %d skip connections", r->n_skip);
    *s = (skip_t){.C = r->C, .H = r->H, .W = r->W, .below = sx_arena_top(r->ws)};
    if (!(s->x = sx_arena_floats(r->ws, s->C * s->H * s->W, "unet skip"))) return -1;
    memcpy(s->x, r->x, sizeof(float) * (size_t)(s->C * s->H * s->W));
    r->n_skip++;
    return 0;
}

/* x = cat([x, skip], dim=channels) for a resnet taking cin channels; the
 * skip's memory goes back to the arena */
static int pop_skip(run *r, int cin) {
    if (r->n_skip == 0) return sx_err("unet: no skip connection left");
    skip_t *s = &r->skip[--r->n_skip];
    size_t a = (size_t)(r->C * r->H * r->W), b = (size_t)(s->C * s->H * s->W);
    if (s->H != r->H || s->W != r->W || cin != r->C + s->C || a + b > r->cap)
        return sx_err("unet: the resnet expects %d channels, got %lld + a %lldx%lld skip of %lld",
                      cin, (long long)r->C, (long long)s->H, (long long)s->W, (long long)s->C);
    memcpy(r->x + a, s->x, sizeof(float) * b);
    r->C += s->C;
    sx_arena_release(r->ws, s->below);
    return 0;
}

/* time_proj(t) [time_proj_dim] -> time_embedding [time_embed_dim]
 * (+ add_embedding([text_embeds | time_proj(time_ids)]) with text_time);
 * every resnet takes SiLU(emb), kept at the bottom of the arena. */
static int mlp(const sx_linear *l1, const sx_linear *l2, float *y, const float *x, sx_arena *ws) {
    sx_arena_mark top = sx_arena_top(ws);
    float *hid = sx_arena_floats(ws, l1->w.N, "unet embedding mlp");
    int rc = !hid || sx_linear_act(l1, hid, x, 1, SX_ACT_SILU) || sx_linear_forward(l2, y, hid, 1);
    sx_arena_release(ws, top);
    return rc ? -1 : 0;
}

static int embed_time(run *r, float timestep) {
    const sx_unet *u = r->u;
    const sx_unet_config *c = &u->c;
    int64_t ted = c->time_embed_dim, sh[2] = {1, ted};
    float *temb = sx_arena_floats(r->ws, ted, "unet time embedding");
    if (!temb) return -1;
    sx_arena_mark top = sx_arena_top(r->ws);
    int rc = -1;
    float *emb = sx_arena_floats(r->ws, ted, "unet emb");
    float *tproj = sx_arena_floats(r->ws, c->time_proj_dim, "unet time_proj");
    if (!emb || !tproj) goto done;
    sx_unet_timestep_embedding(tproj, timestep, c->time_proj_dim, c->flip_sin_to_cos,
                               c->freq_shift);
    if (mlp(&u->time_linear_1, &u->time_linear_2, emb, tproj, r->ws)) goto done;
    sx_trace("time_embedding", emb, 2, sh);
    if (c->text_time) {
        /* add_embeds = [pooled | sinusoid(time_ids[0..5])] -> add_embedding */
        float *ain = sx_arena_floats(r->ws, c->add_in_dim, "unet add_embedding input");
        float *aug = sx_arena_floats(r->ws, ted, "unet add_embedding");
        if (!ain || !aug) goto done;
        memcpy(ain, r->cond->pooled, sizeof(float) * (size_t)c->pooled_dim);
        for (int k = 0; k < 6; k++)
            sx_unet_timestep_embedding(ain + c->pooled_dim + k * c->add_time_dim,
                                       r->cond->time_ids[k], c->add_time_dim, c->flip_sin_to_cos,
                                       c->freq_shift);
        if (mlp(&u->add_linear_1, &u->add_linear_2, aug, ain, r->ws)) goto done;
        sx_trace("add_embedding", aug, 2, sh);
        sx_add(emb, emb, aug, ted);
    }
    sx_silu(temb, emb, ted);
    r->temb = temb;
    rc = 0;
done:
    sx_arena_release(r->ws, top);
    return rc;
}

/* x and y: at level k (size h/2^k, rounded up as the stride-2 convs do) at
 * most twice the widest of block_out[k-1..k+1] channels (an up block's [x,
 * skip] concatenation); conv_in's input at level 0 */
static int alloc_activations(run *r, int64_t h, int64_t w) {
    const sx_unet_config *c = &r->u->c;
    size_t big = (size_t)c->in_channels * (size_t)(h * w);
    for (int k = 0; k < c->n_blocks; k++) {
        size_t m = 0;
        for (int i = k - 1; i <= k + 1; i++)
            if (i >= 0 && i < c->n_blocks && (size_t)c->block_out[i] > m)
                m = (size_t)c->block_out[i];
        int64_t hk = (h + ((int64_t)1 << k) - 1) >> k, wk = (w + ((int64_t)1 << k) - 1) >> k;
        if (2 * m * (size_t)(hk * wk) > big) big = 2 * m * (size_t)(hk * wk);
    }
    r->cap = big;
    r->x = sx_arena_floats(r->ws, (int64_t)big, "unet activations");
    r->y = r->x ? sx_arena_floats(r->ws, (int64_t)big, "unet activations") : NULL;
    return r->y ? 0 : -1;
}

/* down_blocks.i: resnets (+ attentions) [C_{i-1}, H, W] -> [C_i, H, W], then
 * downsamplers.0 (conv 3x3 stride 2) -> [C_i, H/2, W/2] except in the last
 * block; every output is pushed as a skip connection */
static int down_block(run *r, int i) {
    const unet_block *b = &r->u->down[i];
    char nm[96];
    for (int j = 0; j < b->n; j++) {
        if (resnet(r, &b->resnets[j])) return sx_err_prefix("down_blocks.%d.resnets.%d: ", i, j);
        TRACE(r, r->x, r->C, "down_blocks.%d.resnets.%d", i, j);
        if (b->attentions) {
            snprintf(nm, sizeof nm, "down_blocks.%d.attentions.%d", i, j);
            if (transformer(r, &b->attentions[j], nm)) return sx_err_prefix("%s: ", nm);
            TRACE(r, r->x, r->C, "%s", nm);
        }
        if (push_skip(r)) return -1;
    }
    if (b->has_sampler) {
        if (sx_conv_forward(&b->sampler, r->y, r->x, r->H, r->W, &r->H, &r->W))
            return sx_err_prefix("down_blocks.%d.downsamplers.0: ", i);
        swap(r);
        TRACE(r, r->x, r->C, "down_blocks.%d.downsamplers.0", i);
        if (push_skip(r)) return -1;
    }
    TRACE(r, r->x, r->C, "down_blocks.%d", i);
    return 0;
}

/* mid_block (UNetMidBlock2DCrossAttn): resnets.0 -> attentions.0 -> resnets.1 */
static int mid_block(run *r) {
    const sx_unet *u = r->u;
    if (resnet(r, &u->mid_resnets[0])) return sx_err_prefix("mid_block.resnets.0: ");
    TRACE(r, r->x, r->C, "mid_block.resnets.0");
    if (transformer(r, &u->mid_attention, "mid_block.attentions.0"))
        return sx_err_prefix("mid_block.attentions.0: ");
    TRACE(r, r->x, r->C, "mid_block.attentions.0");
    if (resnet(r, &u->mid_resnets[1])) return sx_err_prefix("mid_block.resnets.1: ");
    TRACE(r, r->x, r->C, "mid_block.resnets.1");
    TRACE(r, r->x, r->C, "mid_block");
    return 0;
}

/* up_blocks.i: each resnet takes cat([x, skip]) (the skips in reverse order)
 * -> [C, H, W] (+ attentions), then upsamplers.0 (nearest x2, conv 3x3) ->
 * [C, 2H, 2W] except in the last block */
static int up_block(run *r, int i) {
    const unet_block *b = &r->u->up[i];
    char nm[96];
    for (int j = 0; j < b->n; j++) {
        if (pop_skip(r, b->resnets[j].cin) || resnet(r, &b->resnets[j]))
            return sx_err_prefix("up_blocks.%d.resnets.%d: ", i, j);
        TRACE(r, r->x, r->C, "up_blocks.%d.resnets.%d", i, j);
        if (b->attentions) {
            snprintf(nm, sizeof nm, "up_blocks.%d.attentions.%d", i, j);
            if (transformer(r, &b->attentions[j], nm)) return sx_err_prefix("%s: ", nm);
            TRACE(r, r->x, r->C, "%s", nm);
        }
    }
    if (b->has_sampler) {
        /* when the latent is not a multiple of 2^(n-1), diffusers resizes to the next
         * skip's size (forward_upsample_size) */
        if (r->n_skip == 0) return sx_err("up_blocks.%d: no skip connection left", i);
        int64_t Ht = r->skip[r->n_skip - 1].H, Wt = r->skip[r->n_skip - 1].W;
        if (Ht == 2 * r->H && Wt == 2 * r->W)
            sx_upsample_nearest2x(r->y, r->x, r->C, r->H, r->W);
        else
            resize_nearest(r->y, r->x, r->C, r->H, r->W, Ht, Wt);
        r->H = Ht;
        r->W = Wt;
        if (sx_conv_forward(&b->sampler, r->x, r->y, r->H, r->W, NULL, NULL))
            return sx_err_prefix("up_blocks.%d.upsamplers.0: ", i);
        TRACE(r, r->x, r->C, "up_blocks.%d.upsamplers.0", i);
    }
    TRACE(r, r->x, r->C, "up_blocks.%d", i);
    return 0;
}

static int check_inputs(const sx_unet *u, const float *sample, int64_t cin, int64_t h, int64_t w,
                        const sx_unet_cond *cond, const float *eps) {
    if (!u || !sample || !cond || !cond->context || !eps)
        return sx_err("sx_unet_forward: NULL argument");
    const sx_unet_config *c = &u->c;
    if (cin != c->in_channels)
        return sx_err("unet: sample has %lld channels, the UNet takes %d (conv_in)", (long long)cin,
                      c->in_channels);
    if (h <= 0 || w <= 0 || h > (1 << 15) || w > (1 << 15))
        return sx_err("unet: latent size %lldx%lld is out of range (1..32768)", (long long)h,
                      (long long)w);
    if (cond->ctx_dim != c->cross_dim)
        return sx_err("unet: context width is %lld, cross_attention_dim is %d",
                      (long long)cond->ctx_dim, c->cross_dim);
    if (cond->n_ctx <= 0 || cond->n_ctx > (1 << 20))
        return sx_err("unet: bad context length %lld", (long long)cond->n_ctx);
    if (c->text_time) {
        if (!cond->pooled || !cond->time_ids)
            return sx_err("unet: text_time embedding needs pooled embeddings and 6 time ids");
        if (cond->pooled_dim != c->pooled_dim)
            return sx_err("unet: pooled embedding has %lld values, the add_embedding expects %d",
                          (long long)cond->pooled_dim, c->pooled_dim);
    }
    return 0;
}

int sx_unet_forward(const sx_unet *u, const float *sample, int64_t cin, int64_t h, int64_t w,
                    float timestep, const sx_unet_cond *cond, float *eps) {
    if (check_inputs(u, sample, cin, h, w, cond, eps)) return -1;
    const sx_unet_config *c = &u->c;
    sx_arena ws = {0};
    run st = {.u = u, .cond = cond, .ws = &ws, .C = c->block_out[0], .H = h, .W = w}, *r = &st;
    int rc = -1;
    /* time_proj -> time_embedding (+ add_embedding) -> SiLU: [time_embed_dim] */
    if (embed_time(r, timestep) || alloc_activations(r, h, w)) goto done;
    /* conv_in: [cin, h, w] -> [block_out[0], h, w], the first skip connection */
    if (sx_conv_forward(&u->conv_in, r->x, sample, h, w, NULL, NULL)) goto done;
    TRACE(r, r->x, r->C, "conv_in");
    if (push_skip(r)) goto done;
    /* down_blocks (SDXL: 320 @128^2 -> 640 @64^2 -> 1280 @32^2) */
    for (int i = 0; i < c->n_blocks; i++)
        if (down_block(r, i)) goto done;
    /* mid_block (SDXL: 1280 @32^2) */
    if (mid_block(r)) goto done;
    /* up_blocks (SDXL: 1280 @32^2 -> 640 @64^2 -> 320 @128^2) */
    for (int i = 0; i < c->n_blocks; i++)
        if (up_block(r, i)) goto done;
    /* conv_norm_out -> SiLU -> conv_out, fused: [block_out[0], h, w] -> [out_channels, h, w]
     * (the normalised map is only written out for the trace) */
    if (sx_trace_enabled()) {
        if (sx_norm_chw(&u->conv_norm_out, r->y, r->x, h * w, SX_ACT_NONE)) goto done;
        TRACE(r, r->y, r->C, "conv_norm_out");
    }
    if (sx_norm_conv_forward(&u->conv_norm_out, SX_ACT_SILU, &u->conv_out, eps, r->x, h, w, 0))
        goto done;
    TRACE(r, eps, c->out_channels, "conv_out");
    rc = 0;
done:
    sx_arena_free(&ws);
    return rc;
}
