/* vit.h - the Qwen-VL visual encoder SEED-X uses (ViT-bigG/14 with an
 * attention-pool resampler; SEED-X src/models/tokenizer/qwen_visual.py
 * VisionTransformerWithAttnPool), and the generic Qwen `Resampler` that is
 * also SEED-X's input and output resampler.
 *
 * Tensors are float32 row-major, PyTorch order. Every size comes from the
 * container (metadata seedx.vit.* written by scripts/convert_vit.py, and
 * tensor shapes); nothing about ViT-bigG is hard-coded. */
#ifndef SEEDX_VIT_H
#define SEEDX_VIT_H

#include <stdint.h>

#include "gguf.h"
#include "nn.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Resampler (qwen_visual.py `Resampler`) ----------------------------
 * grid*grid learned queries cross-attend (nn.MultiheadAttention, one layer)
 * to L input tokens of width kv_dim:
 *   kv  = ln_kv(kv_proj(x))                       kv_proj absent when kv_dim == E
 *   out = MHA(q = ln_q(query) + pos_embed,        pos_embed: fixed [Q,E] table
 *             k = kv + get_abs_pos(pos_embed, L), resized bicubically to L keys
 *             v = kv)                             no positions on values
 * Tensors under a key prefix P ("attn_pool.", "input_resampler.", ...):
 *   P query [Q,E], P pos_embed [Q,E], P kv_proj.weight [E,kv_dim] (optional),
 *   P attn.in_proj_weight [3E,E] (rows Wq;Wk;Wv), P attn.in_proj_bias [3E],
 *   P attn.out_proj.weight [E,E], P attn.out_proj.bias [E],
 *   P ln_q.weight/bias [E], P ln_kv.weight/bias [E].
 * Sizes come from the shapes; heads and the LayerNorm eps (not visible in
 * shapes) are given by the caller. */
typedef struct sx_resampler {
    int64_t n_queries, grid, embed_dim, kv_dim;
    char name[64];                  /* trace prefix, e.g. "attn_pool" */
    const float *query, *pos_embed; /* [Q,E] each */
    sx_linear kv_proj;              /* [E, kv_dim], no bias; w.data NULL: nn.Identity */
    sx_norm ln_q, ln_kv;            /* LayerNorm [E] */
    sx_mha attn;                    /* q/k/v: row blocks Wq;Wk;Wv of in_proj_weight with
                                     * in_proj_bias; o: out_proj */
    /* derived by sx_resampler_init (owned): */
    float *q;                       /* [Q,E] projected queries Wq (ln_q(query) + pos_embed) + bq */
    int64_t key_pos_n;              /* keys the cached table is for (0: none) */
    float *key_pos;                 /* [key_pos_n, E] = get_abs_pos(pos_embed, key_pos_n) */
} sx_resampler;

/* Fills r from tensors named prefix + key and runs sx_resampler_init. The
 * tensors must stay mapped (g open) while r is used. */
int sx_resampler_load(sx_gguf *g, const char *prefix, int n_heads, float eps, sx_resampler *r);
/* Computes the derived data (projected queries) once the weight fields and
 * attn.heads are set; used by sx_resampler_load and by callers filling a
 * zeroed r by hand. */
int sx_resampler_init(sx_resampler *r);
/* Caches the key positional table for n_kv_tokens keys (a perfect square). */
int sx_resampler_prepare(sx_resampler *r, int64_t n_kv_tokens);
/* x [N, n_kv, kv_dim] -> out [N, n_queries, embed_dim]. n_kv must be a
 * perfect square (get_abs_pos); a table not cached by prepare is computed
 * on the fly. */
int sx_resampler_forward(const sx_resampler *r, const float *x, int64_t N, int64_t n_kv,
                         float *out);
void sx_resampler_free(sx_resampler *r); /* frees the derived buffers only */

/* get_abs_pos: a [s*s, C] table resized to [t*t, C] (t*t = n_tokens) with
 * torch bicubic (align_corners=False) on the [C,s,s] grid; a copy if s == t. */
int sx_abs_pos(float *out, const float *table, int64_t rows, int64_t C, int64_t n_tokens);
/* The fixed 2-D sin-cos table of the Resampler ([grid*grid, dim], dim % 4 == 0):
 * row r*grid+c = [sin(c w), cos(c w), sin(r w), cos(r w)], w_i = 10000^(-i/(dim/4)). */
int sx_sincos_2d(float *out, int64_t dim, int64_t grid);

/* ---- ViT blocks --------------------------------------------------------- */
typedef struct sx_vit_block {
    sx_norm ln_1, ln_2;       /* LayerNorm [W] */
    sx_linear in_proj;        /* attn.in_proj [3W, W]; per head h rows q_h | k_h | v_h (3*hd) */
    sx_linear out_proj;       /* attn.out_proj [W, W] */
    sx_linear c_fc;           /* mlp.c_fc [mlp, W] */
    sx_linear c_proj;         /* mlp.c_proj [W, mlp] */
} sx_vit_block;

/* One pre-LN block on x [N*T, W] in place (N sequences of T tokens attend
 * within themselves): x += out_proj(attn(ln_1(x))); x += c_proj(gelu(c_fc(ln_2(x)))).
 * Temporaries from ws (nn.h): N*T*(W + max(4W, mlp)) floats. layer >= 0
 * names traces transformer.resblocks.<layer>(.attn/.mlp). */
int sx_vit_block_forward(const sx_vit_block *b, int heads, float *x, int64_t N, int64_t T,
                         int layer, sx_arena *ws);

/* ---- the encoder -------------------------------------------------------- */
typedef struct sx_vit_config {
    int64_t image_size, patch_size, width, layers, heads, mlp_width;
    int64_t output_dim, n_queries, pool_heads, pos_grid;
    float ln_eps;
    float image_mean[3], image_std[3]; /* CLIP normalisation of the official transform */
} sx_vit_config;

typedef struct sx_vit {
    sx_vit_config c;
    sx_gguf *g;
    int own_g;
    sx_weight conv1;                    /* [W, 3*p*p], no bias */
    const float *positional_embedding;  /* [pos_grid^2, W] */
    sx_norm ln_pre;                     /* [W] */
    sx_vit_block *blocks;               /* [layers] */
    sx_resampler attn_pool;
    sx_norm ln_post;                    /* [E] */
    sx_weight proj;                     /* [E,E] used as x @ proj */
    int64_t pos_grid_n;                 /* grid the cached table is for */
    float *pos;                         /* [grid^2, W] positional table for image_size */
} sx_vit;

/* Loads from an open container (not owned: g must outlive the model). */
int sx_vit_load(sx_gguf *g, sx_vit **out);
/* Opens path and loads; the model owns the container. */
int sx_vit_open(const char *path, sx_vit **out);
void sx_vit_free(sx_vit *v);
/* Output grid side for an S x S input: S / patch_size (conv floor). */
int64_t sx_vit_grid(const sx_vit *v, int64_t S);
/* pixels [N,3,S,S] (CLIP-normalised) -> out [N, n_queries, output_dim].
 * Any S >= patch_size (grid = S / patch; positional tables are resized). */
int sx_vit_forward(const sx_vit *v, const float *pixels, int64_t N, int64_t S, float *out);
/* vit_down (SEED-X's de-tokenizer input): F.avg_pool1d(kernel 4, stride 4)
 * over the token axis, [n, D] -> [n/4, D]; the negative embedding of the
 * LLM-generated path pools a zero image's 256 ViT tokens to 64. */
int sx_vit_down(float *y, const float *x, int64_t n, int64_t D);

#ifdef __cplusplus
}
#endif
#endif
