/* unet.c - SDXL UNet2DConditionModel (diffusers 0.25.0) forward on the CPU.
 *
 * Mirrors diffusers' unet_2d_condition.py / unet_2d_blocks.py / resnet.py /
 * transformer_2d.py / attention.py for the configurations convert_unet.py
 * accepts (DownBlock2D / CrossAttnDownBlock2D down path, UNetMidBlock2DCrossAttn,
 * UpBlock2D / CrossAttnUpBlock2D up path, positional time embedding, optional
 * text_time added embedding). One sample [C, H, W] per call. All sizes come
 * from metadata seedx.unet.*; "heads" is the resolved head count (SDXL's
 * config calls it attention_head_dim; head dim = channels / heads). */
#include "unet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sx_core.h"

typedef struct ucv { /* Conv2d */
    sx_weight w;
    const float *b;
    sx_conv c;
} ucv;

typedef struct usrc { /* tensor sources: each tensor from the first file that has it */
    sx_gguf *g[SX_UNET_MAX_FILES];
    int n;
} usrc;

static sx_gguf *pick(const usrc *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (sx_gguf_find(s->g[i], name)) return s->g[i];
    return s->g[0]; /* absent everywhere: the first file reports it */
}

struct sx_unet {
    sx_unet_config c;
    sx_gguf *g; /* metadata (the first file) */
    usrc src;
    int own_g;
    ucv conv_in, conv_out;
    sx_weight t_l1, t_l2, a_l1, a_l2; /* time_embedding / add_embedding linear_1, linear_2 */
    const float *t_b1, *t_b2, *a_b1, *a_b2;
    sx_unet_resnet *down_res;         /* [n_blocks * layers_per_block] */
    sx_unet_transformer *down_tf;     /* same indexing; ch == 0 when the block has none */
    ucv down_samp[SX_UNET_MAX_BLOCKS];
    sx_unet_resnet mid_res[2];
    sx_unet_transformer mid_tf;
    sx_unet_resnet *up_res;           /* [n_blocks * (layers_per_block + 1)] */
    sx_unet_transformer *up_tf;
    ucv up_samp[SX_UNET_MAX_BLOCKS];
    const float *out_norm_w, *out_norm_b;
};

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

static int ld_vec(const usrc *g, const char *name, int64_t n, const float **out) {
    *out = sx_get_f32(pick(g, name), name, SX_SHAPE(n));
    return *out ? 0 : -1;
}

static int ld_lin(const usrc *g, const char *name, int64_t N, int64_t K, sx_weight *w) {
    char nm[400];
    snprintf(nm, sizeof nm, "%s.weight", name);
    return sx_weight_get(pick(g, nm), nm, N, K, w);
}

static int ld_linb(const usrc *g, const char *name, int64_t N, int64_t K, sx_weight *w,
                   const float **b) {
    char nm[400];
    snprintf(nm, sizeof nm, "%s.bias", name);
    if (ld_lin(g, name, N, K, w)) return -1;
    return ld_vec(g, nm, N, b);
}

static int ld_norm(const usrc *g, const char *name, int64_t n, const float **w, const float **b) {
    char nm[400];
    snprintf(nm, sizeof nm, "%s.weight", name);
    if (ld_vec(g, nm, n, w)) return -1;
    snprintf(nm, sizeof nm, "%s.bias", name);
    return ld_vec(g, nm, n, b);
}

static int ld_conv(const usrc *g, const char *name, int cin, int cout, int k, int stride, int pad,
                   ucv *cv) {
    char nm[400];
    snprintf(nm, sizeof nm, "%s.weight", name);
    const sx_tensor *t = sx_tensor_get(pick(g, nm), nm, SX_ANY_FLOAT, SX_SHAPE(cout, cin, k, k));
    if (!t) return -1;
    if (sx_weight_get(pick(g, nm), nm, cout, (int64_t)cin * k * k, &cv->w)) return -1;
    snprintf(nm, sizeof nm, "%s.bias", name);
    if (ld_vec(g, nm, cout, &cv->b)) return -1;
    sx_conv c = {cin, cout, k, k, stride, pad, pad, pad, pad};
    cv->c = c;
    return 0;
}

static int ld_resnet(const usrc *g, const char *p, int cin, int cout, const sx_unet_config *c,
                     sx_unet_resnet *r) {
    char nm[300];
    memset(r, 0, sizeof *r);
    r->cin = cin;
    r->cout = cout;
    r->groups = c->groups;
    r->eps = c->eps;
    r->temb_dim = c->time_embed_dim;
    ucv cv;
#define NM(s) (snprintf(nm, sizeof nm, "%s.%s", p, s), nm)
    if (ld_norm(g, NM("norm1"), cin, &r->norm1_w, &r->norm1_b)) return -1;
    if (ld_conv(g, NM("conv1"), cin, cout, 3, 1, 1, &cv)) return -1;
    r->conv1 = cv.w;
    r->conv1_b = cv.b;
    if (ld_linb(g, NM("time_emb_proj"), cout, c->time_embed_dim, &r->temb, &r->temb_b)) return -1;
    if (ld_norm(g, NM("norm2"), cout, &r->norm2_w, &r->norm2_b)) return -1;
    if (ld_conv(g, NM("conv2"), cout, cout, 3, 1, 1, &cv)) return -1;
    r->conv2 = cv.w;
    r->conv2_b = cv.b;
    if (cin != cout) {
        if (ld_conv(g, NM("conv_shortcut"), cin, cout, 1, 1, 0, &cv)) return -1;
        r->has_shortcut = 1;
        r->shortcut = cv.w;
        r->short_b = cv.b;
    }
#undef NM
    return 0;
}

static int ld_attn(const usrc *g, const char *p, int dim, int kv_dim, sx_unet_attn *a) {
    char nm[300];
    snprintf(nm, sizeof nm, "%s.to_q", p);
    if (ld_lin(g, nm, dim, dim, &a->q)) return -1;
    snprintf(nm, sizeof nm, "%s.to_k", p);
    if (ld_lin(g, nm, dim, kv_dim, &a->k)) return -1;
    snprintf(nm, sizeof nm, "%s.to_v", p);
    if (ld_lin(g, nm, dim, kv_dim, &a->v)) return -1;
    snprintf(nm, sizeof nm, "%s.to_out.0", p);
    return ld_linb(g, nm, dim, dim, &a->o, &a->o_b);
}

static int ld_transformer(const usrc *g, const char *p, int ch, int heads, int layers,
                          const sx_unet_config *c, sx_unet_transformer *t) {
    char nm[300];
    memset(t, 0, sizeof *t);
    t->ch = ch;
    t->groups = c->groups;
    t->eps = 1e-6f; /* Transformer2DModel's GroupNorm */
    t->n_layers = layers;
#define NM(s) (snprintf(nm, sizeof nm, "%s.%s", p, s), nm)
    if (ld_norm(g, NM("norm"), ch, &t->norm_w, &t->norm_b)) return -1;
    /* proj_in/out: Linear [C, C] (use_linear_projection) or 1x1 conv [C, C, 1, 1] */
    if (ld_linb(g, NM("proj_in"), ch, ch, &t->proj_in, &t->proj_in_b)) return -1;
    if (ld_linb(g, NM("proj_out"), ch, ch, &t->proj_out, &t->proj_out_b)) return -1;
    t->blocks = sx_calloc((size_t)layers, sizeof *t->blocks, "unet transformer blocks");
    if (!t->blocks) return -1;
    for (int k = 0; k < layers; k++) {
        sx_unet_tblock *b = &t->blocks[k];
        char q[240];
        snprintf(q, sizeof q, "%s.transformer_blocks.%d", p, k);
#define NQ(s) (snprintf(nm, sizeof nm, "%s.%s", q, s), nm)
        b->dim = ch;
        b->heads = heads;
        b->ctx_dim = c->cross_dim;
        b->ff_inner = ch * 4;
        b->eps = 1e-5f;
        if (ld_norm(g, NQ("norm1"), ch, &b->norm1_w, &b->norm1_b) ||
            ld_norm(g, NQ("norm2"), ch, &b->norm2_w, &b->norm2_b) ||
            ld_norm(g, NQ("norm3"), ch, &b->norm3_w, &b->norm3_b) ||
            ld_attn(g, NQ("attn1"), ch, ch, &b->attn1) ||
            ld_attn(g, NQ("attn2"), ch, c->cross_dim, &b->attn2) ||
            ld_linb(g, NQ("ff.net.0.proj"), 2 * (int64_t)b->ff_inner, ch, &b->ff_proj,
                    &b->ff_proj_b) ||
            ld_linb(g, NQ("ff.net.2"), ch, b->ff_inner, &b->ff_out, &b->ff_out_b))
            return -1;
#undef NQ
    }
#undef NM
    return 0;
}

static int load_all(sx_unet *u) {
    const usrc *g = &u->src;
    const sx_unet_config *c = &u->c;
    int n = c->n_blocks, L = c->layers_per_block;
    char p[160];
    u->down_res = sx_calloc((size_t)n * L, sizeof *u->down_res, "unet down resnets");
    u->down_tf = sx_calloc((size_t)n * L, sizeof *u->down_tf, "unet down transformers");
    u->up_res = sx_calloc((size_t)n * (L + 1), sizeof *u->up_res, "unet up resnets");
    u->up_tf = sx_calloc((size_t)n * (L + 1), sizeof *u->up_tf, "unet up transformers");
    if (!u->down_res || !u->down_tf || !u->up_res || !u->up_tf) return -1;
    int ted = c->time_embed_dim;
    if (ld_conv(g, "conv_in", c->in_channels, c->block_out[0], c->conv_in_k, 1, c->conv_in_k / 2,
                &u->conv_in) ||
        ld_linb(g, "time_embedding.linear_1", ted, c->time_proj_dim, &u->t_l1, &u->t_b1) ||
        ld_linb(g, "time_embedding.linear_2", ted, ted, &u->t_l2, &u->t_b2))
        return -1;
    if (c->text_time && (ld_linb(g, "add_embedding.linear_1", ted, c->add_in_dim, &u->a_l1, &u->a_b1) ||
                         ld_linb(g, "add_embedding.linear_2", ted, ted, &u->a_l2, &u->a_b2)))
        return -1;
    /* channel flow, as the forward pushes/pops skip connections */
    int stack[3 * SX_UNET_MAX_BLOCKS * 66], sp = 0;
    int ch = c->block_out[0];
    stack[sp++] = ch;
    for (int i = 0; i < n; i++) {
        int out = c->block_out[i];
        for (int j = 0; j < L; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
            if (ld_resnet(g, p, ch, out, c, &u->down_res[i * L + j])) return -1;
            ch = out;
            if (c->down_attn[i]) {
                snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
                if (ld_transformer(g, p, ch, c->heads[i], c->tlayers[i], c, &u->down_tf[i * L + j]))
                    return -1;
            }
            stack[sp++] = ch;
        }
        if (i < n - 1) {
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", i);
            if (ld_conv(g, p, ch, ch, 3, 2, c->down_pad, &u->down_samp[i])) return -1;
            stack[sp++] = ch;
        }
    }
    if (ld_resnet(g, "mid_block.resnets.0", ch, ch, c, &u->mid_res[0]) ||
        ld_transformer(g, "mid_block.attentions.0", ch, c->heads[n - 1], c->tlayers[n - 1], c,
                       &u->mid_tf) ||
        ld_resnet(g, "mid_block.resnets.1", ch, ch, c, &u->mid_res[1]))
        return -1;
    for (int i = 0; i < n; i++) {
        int r = n - 1 - i, out = c->block_out[r];
        for (int j = 0; j <= L; j++) {
            int s = stack[--sp];
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            if (ld_resnet(g, p, ch + s, out, c, &u->up_res[i * (L + 1) + j])) return -1;
            ch = out;
            if (c->up_attn[i]) {
                snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
                if (ld_transformer(g, p, ch, c->heads[r], c->tlayers[r], c,
                                   &u->up_tf[i * (L + 1) + j]))
                    return -1;
            }
        }
        if (i < n - 1) {
            snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", i);
            if (ld_conv(g, p, ch, ch, 3, 1, 1, &u->up_samp[i])) return -1;
        }
    }
    if (ld_norm(g, "conv_norm_out", ch, &u->out_norm_w, &u->out_norm_b) ||
        ld_conv(g, "conv_out", ch, c->out_channels, c->conv_out_k, 1, c->conv_out_k / 2,
                &u->conv_out))
        return -1;
    return 0;
}

static void free_tf(sx_unet_transformer *t) {
    if (t) free(t->blocks);
}

void sx_unet_free(sx_unet *u) {
    if (!u) return;
    int n = u->c.n_blocks, L = u->c.layers_per_block;
    if (u->down_tf)
        for (int i = 0; i < n * L; i++) free_tf(&u->down_tf[i]);
    if (u->up_tf)
        for (int i = 0; i < n * (L + 1); i++) free_tf(&u->up_tf[i]);
    free_tf(&u->mid_tf);
    free(u->down_res);
    free(u->down_tf);
    free(u->up_res);
    free(u->up_tf);
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

int sx_unet_resnet_forward(const sx_unet_resnet *r, float *y, const float *x, int64_t H, int64_t W,
                           const float *emb_act) {
    if (!r || !y || !x || !emb_act) return sx_err("sx_unet_resnet_forward: NULL argument");
    int64_t HW = H * W;
    int rc = -1;
    float *h = sx_malloc(sizeof(float) * (size_t)r->cin * (size_t)HW, "resnet scratch");
    float *t = sx_malloc(sizeof(float) * (size_t)r->cout * (size_t)HW, "resnet scratch");
    float *tp = sx_malloc(sizeof(float) * (size_t)r->cout, "resnet temb");
    if (!h || !t || !tp) goto done;
    sx_conv c3 = {r->cin, r->cout, 3, 3, 1, 1, 1, 1, 1};
    /* norm1 -> SiLU -> conv1: [cin,H,W] -> [cout,H,W] */
    if (sx_groupnorm(h, x, r->norm1_w, r->norm1_b, r->cin, HW, r->groups, r->eps)) goto done;
    sx_silu(h, h, (int64_t)r->cin * HW);
    if (sx_conv2d(t, h, H, W, &c3, &r->conv1, r->conv1_b, NULL, NULL)) goto done;
    /* + time_emb_proj(SiLU(emb)) per channel */
    if (sx_matmul(tp, emb_act, &r->temb, r->temb_b, 1)) goto done;
    sx_add_channel(t, tp, r->cout, HW);
    /* norm2 -> SiLU -> conv2 */
    if (sx_groupnorm(t, t, r->norm2_w, r->norm2_b, r->cout, HW, r->groups, r->eps)) goto done;
    sx_silu(t, t, (int64_t)r->cout * HW);
    c3.cin = r->cout;
    if (sx_conv2d(y, t, H, W, &c3, &r->conv2, r->conv2_b, NULL, NULL)) goto done;
    /* + input (1x1 conv_shortcut when channels change) */
    if (r->has_shortcut) {
        sx_conv c1 = {r->cin, r->cout, 1, 1, 1, 0, 0, 0, 0};
        if (sx_conv2d(t, x, H, W, &c1, &r->shortcut, r->short_b, NULL, NULL)) goto done;
        sx_add(y, t, y, (int64_t)r->cout * HW);
    } else {
        sx_add(y, x, y, (int64_t)r->cout * HW);
    }
    rc = 0;
done:
    free(h);
    free(t);
    free(tp);
    return rc;
}

/* o[Tq, dim] = softmax(q k^T / sqrt(hd)) v over heads (contiguous hd-wide head slices). */
static int mha(float *o, const float *q, const float *k, const float *v, int64_t Tq, int64_t Tk,
               int dim, int heads) {
    int hd = dim / heads;
    sx_attn a;
    memset(&a, 0, sizeof a);
    a.n_heads = a.n_kv_heads = heads;
    a.head_dim = hd;
    a.q_tok = a.k_tok = a.v_tok = a.o_tok = dim;
    a.q_head = a.k_head = a.v_head = a.o_head = hd;
    a.scale = 1.0f / sqrtf((float)hd);
    return sx_attention(&a, o, q, k, v, Tq, Tk);
}

#define FF_CHUNK 1024 /* tokens per feed-forward slab (bounds the [T, 8C] buffer) */

int sx_unet_tblock_forward(const sx_unet_tblock *b, float *h, int64_t T, const float *ctx,
                           int64_t Tc) {
    if (!b || !h || !ctx || T <= 0 || Tc <= 0) return sx_err("sx_unet_tblock_forward: bad argument");
    int64_t D = b->dim, F = b->ff_inner;
    int64_t ffT = T < FF_CHUNK ? T : FF_CHUNK;
    int rc = -1;
    float *n = sx_malloc(sizeof(float) * (size_t)(T * D), "tblock norm");
    float *q = sx_malloc(sizeof(float) * (size_t)(T * D), "tblock q");
    float *kk = sx_malloc(sizeof(float) * (size_t)((T > Tc ? T : Tc) * D), "tblock k");
    float *vv = sx_malloc(sizeof(float) * (size_t)((T > Tc ? T : Tc) * D), "tblock v");
    float *ff = sx_malloc(sizeof(float) * (size_t)(ffT * 2 * F), "tblock ff");
    if (!n || !q || !kk || !vv || !ff) goto done;
    /* attn1: self-attention on norm1(h) */
    sx_layernorm(n, h, b->norm1_w, b->norm1_b, T, D, b->eps);
    if (sx_matmul(q, n, &b->attn1.q, NULL, T) || sx_matmul(kk, n, &b->attn1.k, NULL, T) ||
        sx_matmul(vv, n, &b->attn1.v, NULL, T) || mha(n, q, kk, vv, T, T, b->dim, b->heads) ||
        sx_matmul(q, n, &b->attn1.o, b->attn1.o_b, T))
        goto done;
    sx_add(h, q, h, T * D);
    /* attn2: cross-attention of norm2(h) to the context [Tc, ctx_dim] */
    sx_layernorm(n, h, b->norm2_w, b->norm2_b, T, D, b->eps);
    if (sx_matmul(q, n, &b->attn2.q, NULL, T) || sx_matmul(kk, ctx, &b->attn2.k, NULL, Tc) ||
        sx_matmul(vv, ctx, &b->attn2.v, NULL, Tc) || mha(n, q, kk, vv, T, Tc, b->dim, b->heads) ||
        sx_matmul(q, n, &b->attn2.o, b->attn2.o_b, T))
        goto done;
    sx_add(h, q, h, T * D);
    /* ff: GEGLU(norm3(h)) -> ff.net.2, in token slabs */
    sx_layernorm(n, h, b->norm3_w, b->norm3_b, T, D, b->eps);
    for (int64_t t0 = 0; t0 < T; t0 += ffT) {
        int64_t m = T - t0 < ffT ? T - t0 : ffT;
        if (sx_matmul(ff, n + t0 * D, &b->ff_proj, b->ff_proj_b, m)) goto done;
        /* value * gelu(gate), packed into the first F columns of each row */
        for (int64_t r = 0; r < m; r++) {
            float *row = ff + r * 2 * F;
            float *dst = ff + r * F; /* dst <= row: a forward loop never overwrites unread data */
            sx_gelu(row + F, row + F, F);
            for (int64_t k = 0; k < F; k++) dst[k] = row[k] * row[F + k];
        }
        if (sx_matmul(q + t0 * D, ff, &b->ff_out, b->ff_out_b, m)) goto done;
    }
    sx_add(h, q, h, T * D);
    rc = 0;
done:
    free(n);
    free(q);
    free(kk);
    free(vv);
    free(ff);
    return rc;
}

int sx_unet_transformer_forward(const sx_unet_transformer *t, float *y, const float *x, int64_t H,
                                int64_t W, const float *ctx, int64_t Tc, const char *trace) {
    if (!t || !y || !x || !ctx) return sx_err("sx_unet_transformer_forward: NULL argument");
    int64_t HW = H * W, C = t->ch;
    int rc = -1;
    float *a = sx_malloc(sizeof(float) * (size_t)(C * HW), "transformer scratch");
    float *h = sx_malloc(sizeof(float) * (size_t)(C * HW), "transformer tokens");
    if (!a || !h) goto done;
    /* norm (GroupNorm eps 1e-6) -> tokens [HW, C] -> proj_in */
    if (sx_groupnorm(a, x, t->norm_w, t->norm_b, C, HW, t->groups, t->eps)) goto done;
    sx_transpose(y, a, C, HW);
    if (sx_matmul(h, y, &t->proj_in, t->proj_in_b, HW)) goto done;
    for (int k = 0; k < t->n_layers; k++) {
        /* transformer_blocks.k: [HW, C] -> [HW, C] */
        if (sx_unet_tblock_forward(&t->blocks[k], h, HW, ctx, Tc)) goto done;
        if (trace && sx_trace_enabled()) {
            int64_t sh[3] = {1, HW, C};
            sx_tracef(h, 3, sh, "%s.transformer_blocks.%d", trace, k);
        }
    }
    /* proj_out -> [C, H, W] + residual */
    if (sx_matmul(a, h, &t->proj_out, t->proj_out_b, HW)) goto done;
    sx_transpose(y, a, HW, C);
    sx_add(y, y, x, C * HW);
    rc = 0;
done:
    free(a);
    free(h);
    return rc;
}

/* ======================================================================
 * forward
 * ====================================================================== */
static void trace4(const float *x, int64_t C, int64_t H, int64_t W, const char *fmt, int i, int j) {
    if (!sx_trace_enabled()) return;
    int64_t sh[4] = {1, C, H, W};
    sx_tracef(x, 4, sh, fmt, i, j);
}

static int time_mlp(const sx_weight *l1, const float *b1, const sx_weight *l2, const float *b2,
                    const float *in, float *out, int64_t ted) {
    float *hid = sx_malloc(sizeof(float) * (size_t)ted, "time mlp");
    if (!hid) return -1;
    int rc = sx_matmul(hid, in, l1, b1, 1);
    if (!rc) {
        sx_silu(hid, hid, ted);
        rc = sx_matmul(out, hid, l2, b2, 1);
    }
    free(hid);
    return rc;
}

typedef struct skip_t {
    float *x;
    int64_t c, H, W;
} skip_t;

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

int sx_unet_forward(sx_unet *u, const float *sample, int64_t cin, int64_t h, int64_t w,
                    float timestep, const float *context, int64_t T, int64_t ctx_dim,
                    const float *pooled, int64_t pooled_dim, const float *time_ids, float *eps) {
    if (!u || !sample || !context || !eps) return sx_err("sx_unet_forward: NULL argument");
    const sx_unet_config *c = &u->c;
    int n = c->n_blocks, L = c->layers_per_block;
    if (cin != c->in_channels)
        return sx_err("unet: sample has %lld channels, the UNet takes %d (conv_in)", (long long)cin,
                      c->in_channels);
    if (h <= 0 || w <= 0 || h > (1 << 15) || w > (1 << 15))
        return sx_err("unet: latent size %lldx%lld is out of range (1..32768)", (long long)h,
                      (long long)w);
    if (ctx_dim != c->cross_dim)
        return sx_err("unet: context width is %lld, cross_attention_dim is %d", (long long)ctx_dim,
                      c->cross_dim);
    if (T <= 0 || T > (1 << 20)) return sx_err("unet: bad context length %lld", (long long)T);
    if (c->text_time) {
        if (!pooled || !time_ids)
            return sx_err("unet: text_time embedding needs pooled embeddings and 6 time ids");
        if (pooled_dim != c->pooled_dim)
            return sx_err("unet: pooled embedding has %lld values, the add_embedding expects %d",
                          (long long)pooled_dim, c->pooled_dim);
    }
    int64_t ted = c->time_embed_dim;
    int rc = -1, nsk = 0;
    skip_t sk[3 * SX_UNET_MAX_BLOCKS * 66];
    float *emb = NULL, *x = NULL, *y = NULL, *cat = NULL;
    int64_t H = h, W = w, ch = c->block_out[0];
    /* largest activation: at level r (size h/2^r) at most 2 x the widest of block_out[r-1..r+1]
     * channels (an up block's [x, skip] concatenation); conv_in's input at level 0 */
    size_t big = (size_t)c->in_channels * (size_t)(h * w);
    for (int r = 0; r < n; r++) {
        size_t m = 0;
        for (int k = r - 1; k <= r + 1; k++)
            if (k >= 0 && k < n && (size_t)c->block_out[k] > m) m = (size_t)c->block_out[k];
        int64_t hr = (h + ((int64_t)1 << r) - 1) >> r, wr = (w + ((int64_t)1 << r) - 1) >> r;
        size_t need = 2 * m * (size_t)(hr * wr); /* ceil: stride-2 convs round up */
        if (need > big) big = need;
    }

    /* time_proj -> time_embedding (+ add_embedding(text_time)) ; emb_act = SiLU(emb) */
    emb = sx_malloc(sizeof(float) * (size_t)(3 * ted + c->time_proj_dim + c->add_in_dim + 16),
                    "unet emb");
    x = sx_malloc(sizeof(float) * big, "unet activations");
    y = sx_malloc(sizeof(float) * big, "unet activations");
    cat = sx_malloc(sizeof(float) * big, "unet activations");
    if (!emb || !x || !y || !cat) goto done;
    {
        float *tproj = emb + 3 * ted, *ain = tproj + c->time_proj_dim;
        float *aug = emb + ted, *act = emb + 2 * ted;
        sx_unet_timestep_embedding(tproj, timestep, c->time_proj_dim, c->flip_sin_to_cos,
                                   c->freq_shift);
        if (time_mlp(&u->t_l1, u->t_b1, &u->t_l2, u->t_b2, tproj, emb, ted)) goto done;
        if (sx_trace_enabled()) {
            int64_t sh[2] = {1, ted};
            sx_trace("time_embedding", emb, 2, sh);
        }
        if (c->text_time) {
            /* add_embeds = [pooled | sinusoid(time_ids[0..5])] -> add_embedding */
            memcpy(ain, pooled, sizeof(float) * (size_t)c->pooled_dim);
            for (int k = 0; k < 6; k++)
                sx_unet_timestep_embedding(ain + c->pooled_dim + k * c->add_time_dim, time_ids[k],
                                           c->add_time_dim, c->flip_sin_to_cos, c->freq_shift);
            if (time_mlp(&u->a_l1, u->a_b1, &u->a_l2, u->a_b2, ain, aug, ted)) goto done;
            if (sx_trace_enabled()) {
                int64_t sh[2] = {1, ted};
                sx_trace("add_embedding", aug, 2, sh);
            }
            sx_add(emb, emb, aug, ted);
        }
        sx_silu(act, emb, ted);
    }
    const float *emb_act = emb + 2 * ted;

    /* conv_in: [cin, h, w] -> [block_out[0], h, w] */
    if (sx_conv2d(x, sample, H, W, &u->conv_in.c, &u->conv_in.w, u->conv_in.b, NULL, NULL)) goto done;
    trace4(x, ch, H, W, "conv_in", 0, 0);
#define PUSH()                                                                                 \
    do {                                                                                       \
        sk[nsk].c = ch;                                                                        \
        sk[nsk].H = H;                                                                         \
        sk[nsk].W = W;                                                                         \
        sk[nsk].x = sx_malloc(sizeof(float) * (size_t)(ch * H * W), "unet skip");             \
        if (!sk[nsk].x) goto done;                                                             \
        memcpy(sk[nsk].x, x, sizeof(float) * (size_t)(ch * H * W));                            \
        nsk++;                                                                                 \
    } while (0)
#define SWAP() do { float *s_ = x; x = y; y = s_; } while (0)
    PUSH();
    /* down_blocks.i: resnets (+ attentions) [C_i, H, W], then downsampler -> [C_i, H/2, W/2];
     * every output is pushed as a skip (SDXL: 320 @128^2, 640 @64^2, 1280 @32^2) */
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < L; j++) {
            const sx_unet_resnet *r = &u->down_res[i * L + j];
            if (sx_unet_resnet_forward(r, y, x, H, W, emb_act)) goto done;
            SWAP();
            ch = r->cout;
            trace4(x, ch, H, W, "down_blocks.%d.resnets.%d", i, j);
            if (c->down_attn[i]) {
                char nm[96];
                snprintf(nm, sizeof nm, "down_blocks.%d.attentions.%d", i, j);
                if (sx_unet_transformer_forward(&u->down_tf[i * L + j], y, x, H, W, context, T, nm))
                    goto done;
                SWAP();
                trace4(x, ch, H, W, "down_blocks.%d.attentions.%d", i, j);
            }
            PUSH();
        }
        if (i < n - 1) {
            /* downsamplers.0: conv3x3 stride 2 */
            int64_t Ho, Wo;
            if (sx_conv2d(y, x, H, W, &u->down_samp[i].c, &u->down_samp[i].w, u->down_samp[i].b, &Ho,
                          &Wo))
                goto done;
            SWAP();
            H = Ho;
            W = Wo;
            trace4(x, ch, H, W, "down_blocks.%d.downsamplers.%d", i, 0);
            PUSH();
        }
        trace4(x, ch, H, W, "down_blocks.%d", i, 0);
    }
    /* mid_block: resnets.0 -> attentions.0 -> resnets.1, [C_last, H, W] (SDXL 1280 @32^2) */
    if (sx_unet_resnet_forward(&u->mid_res[0], y, x, H, W, emb_act)) goto done;
    SWAP();
    trace4(x, ch, H, W, "mid_block.resnets.%d", 0, 0);
    if (sx_unet_transformer_forward(&u->mid_tf, y, x, H, W, context, T, "mid_block.attentions.0"))
        goto done;
    SWAP();
    trace4(x, ch, H, W, "mid_block.attentions.%d", 0, 0);
    if (sx_unet_resnet_forward(&u->mid_res[1], y, x, H, W, emb_act)) goto done;
    SWAP();
    trace4(x, ch, H, W, "mid_block.resnets.%d", 1, 0);
    trace4(x, ch, H, W, "mid_block", 0, 0);
    /* up_blocks.i: resnets on cat([x, skip]) along channels -> [C_{n-1-i}, H, W] (+ attentions),
     * then upsampler -> 2H x 2W (SDXL: 1280 @32^2 -> 640 @64^2 -> 320 @128^2) */
    for (int i = 0; i < n; i++) {
        for (int j = 0; j <= L; j++) {
            skip_t s = sk[--nsk];
            const sx_unet_resnet *r = &u->up_res[i * (L + 1) + j];
            size_t a = (size_t)(ch * H * W), b = (size_t)(s.c * H * W);
            if (r->cin != ch + s.c || a + b > big) {
                free(s.x);
                sx_err("unet: up_blocks.%d.resnets.%d expects %d channels, got %lld", i, j, r->cin,
                       (long long)(ch + s.c));
                goto done;
            }
            memcpy(cat, x, sizeof(float) * a);
            memcpy(cat + a, s.x, sizeof(float) * b);
            free(s.x);
            if (sx_unet_resnet_forward(r, x, cat, H, W, emb_act)) goto done;
            ch = r->cout;
            trace4(x, ch, H, W, "up_blocks.%d.resnets.%d", i, j);
            if (c->up_attn[i]) {
                char nm[96];
                snprintf(nm, sizeof nm, "up_blocks.%d.attentions.%d", i, j);
                if (sx_unet_transformer_forward(&u->up_tf[i * (L + 1) + j], y, x, H, W, context, T,
                                                nm))
                    goto done;
                SWAP();
                trace4(x, ch, H, W, "up_blocks.%d.attentions.%d", i, j);
            }
        }
        if (i < n - 1) {
            /* upsamplers.0: nearest x2 -> conv3x3. When the latent is not a multiple of
             * 2^(n-1), diffusers passes the next skip's size (forward_upsample_size) */
            int64_t Ht = sk[nsk - 1].H, Wt = sk[nsk - 1].W;
            if (Ht == 2 * H && Wt == 2 * W)
                sx_upsample_nearest2x(y, x, ch, H, W);
            else
                resize_nearest(y, x, ch, H, W, Ht, Wt);
            H = Ht;
            W = Wt;
            if (sx_conv2d(x, y, H, W, &u->up_samp[i].c, &u->up_samp[i].w, u->up_samp[i].b, NULL, NULL))
                goto done;
            trace4(x, ch, H, W, "up_blocks.%d.upsamplers.%d", i, 0);
        }
        trace4(x, ch, H, W, "up_blocks.%d", i, 0);
    }
    /* conv_norm_out -> SiLU -> conv_out: [C_0, h, w] -> [out_channels, h, w] */
    if (sx_groupnorm(y, x, u->out_norm_w, u->out_norm_b, ch, H * W, c->groups, c->eps)) goto done;
    trace4(y, ch, H, W, "conv_norm_out", 0, 0);
    sx_silu(y, y, ch * H * W);
    if (sx_conv2d(eps, y, H, W, &u->conv_out.c, &u->conv_out.w, u->conv_out.b, NULL, NULL)) goto done;
    trace4(eps, c->out_channels, H, W, "conv_out", 0, 0);
    rc = 0;
#undef PUSH
#undef SWAP
done:
    while (nsk > 0) free(sk[--nsk].x);
    free(emb);
    free(x);
    free(y);
    free(cat);
    return rc;
}
