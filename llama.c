/* llama.c - Llama-2 causal LM (transformers 4.30.2 LlamaForCausalLM) with a
 * KV cache, input-embedding forward, and generation.
 *
 * Module map (PyTorch names, D = hidden, H = heads, KV = kv heads,
 * hd = head dim, F = ffn):
 *   model.embed_tokens            ids -> [T, D]
 *   model.layers.i                [T, D] -> [T, D]
 *     .input_layernorm            RMSNorm(eps), weight [D]
 *     .self_attn.{q,k,v}_proj     [T, D] -> [T, H*hd] / [T, KV*hd]
 *     .self_attn.rotary_emb       rotate-half RoPE on q, k at positions n_past..
 *     attention                   causal softmax(q k^T / sqrt(hd)) v, GQA
 *     .self_attn.o_proj           [T, H*hd] -> [T, D], + residual
 *     .post_attention_layernorm   RMSNorm
 *     .mlp                        down(silu(gate(x)) * up(x)), + residual
 *   model.norm                    RMSNorm -> hidden_states[-1]
 *   lm_head                       [T, D] -> [T, vocab]
 * The KV cache holds rotated keys and values: [layer][n_ctx][KV*hd]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"
#include "sx_core.h"

/* ======================================================================
 * loading
 * ====================================================================== */
static int meta_pos(sx_gguf *g, const char *key, int64_t *v) {
    if (sx_meta_int(g, key, v) != 0) return -1;
    if (*v <= 0 || *v > ((int64_t)1 << 31))
        return sx_err("%s: metadata %s = %lld is out of range", sx_gguf_path(g), key,
                      (long long)*v);
    return 0;
}

static int read_config(sx_gguf *g, sx_llama_config *c) {
    memset(c, 0, sizeof *c);
    if (meta_pos(g, "seedx.llm.hidden", &c->hidden) ||
        meta_pos(g, "seedx.llm.layers", &c->n_layers) ||
        meta_pos(g, "seedx.llm.heads", &c->n_heads) || meta_pos(g, "seedx.llm.ffn", &c->ffn) ||
        meta_pos(g, "seedx.llm.vocab", &c->vocab) ||
        meta_pos(g, "seedx.llm.max_position_embeddings", &c->max_pos))
        return -1;
    c->n_kv_heads = c->n_heads;
    if (sx_meta_has(g, "seedx.llm.kv_heads") && meta_pos(g, "seedx.llm.kv_heads", &c->n_kv_heads))
        return -1;
    double eps, theta;
    if (sx_meta_float(g, "seedx.llm.rms_eps", &eps) != 0) return -1;
    theta = sx_meta_float_or(g, "seedx.llm.rope_theta", 10000.0);
    c->rms_eps = (float)eps;
    c->rope_theta = (float)theta;
    c->bos_id = sx_meta_int_or(g, "seedx.llm.bos_id", -1);
    c->eos_id = sx_meta_int_or(g, "seedx.llm.eos_id", -1);
    c->pad_id = sx_meta_int_or(g, "seedx.llm.pad_id", -1);
    if (c->hidden % c->n_heads != 0 || (c->hidden / c->n_heads) % 2 != 0)
        return sx_err("%s: seedx.llm.hidden %lld is not divisible into %lld heads of even size",
                      sx_gguf_path(g), (long long)c->hidden, (long long)c->n_heads);
    if (c->n_heads % c->n_kv_heads != 0)
        return sx_err("%s: seedx.llm.heads %lld is not a multiple of seedx.llm.kv_heads %lld",
                      sx_gguf_path(g), (long long)c->n_heads, (long long)c->n_kv_heads);
    if (!(eps > 0 && eps < 1) || !(theta > 1))
        return sx_err("%s: bad seedx.llm.rms_eps %g or rope_theta %g", sx_gguf_path(g), eps, theta);
    c->head_dim = c->hidden / c->n_heads;
    return 0;
}

int sx_llama_load_gguf(sx_gguf *g, sx_llama **out) {
    if (!g || !out) return sx_err("sx_llama_load: NULL argument");
    *out = NULL;
    sx_llama *m = sx_calloc(1, sizeof *m, "llama model");
    if (!m) return -1;
    sx_llama_config *c = &m->cfg;
    if (read_config(g, c) != 0) goto fail;
    int64_t D = c->hidden, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    m->layers = sx_calloc((size_t)c->n_layers, sizeof *m->layers, "llama layers");
    if (!m->layers) goto fail;
    if (sx_weight_get(g, "model.embed_tokens.weight", c->vocab, D, &m->tok_embd) != 0) goto fail;
    m->norm = sx_get_f32(g, "model.norm.weight", SX_SHAPE(D));
    if (!m->norm) goto fail;
    if (sx_weight_get(g, "lm_head.weight", c->vocab, D, &m->lm_head) != 0) goto fail;
    char name[160];
#define P_(suffix) (snprintf(name, sizeof name, "model.layers.%lld." suffix, (long long)i), name)
    for (int64_t i = 0; i < c->n_layers; i++) {
        sx_llama_layer *L = &m->layers[i];
        if (!(L->attn_norm = sx_get_f32(g, P_("input_layernorm.weight"), SX_SHAPE(D))) ||
            !(L->ffn_norm = sx_get_f32(g, P_("post_attention_layernorm.weight"), SX_SHAPE(D))) ||
            sx_weight_get(g, P_("self_attn.q_proj.weight"), qd, D, &L->wq) ||
            sx_weight_get(g, P_("self_attn.k_proj.weight"), kvd, D, &L->wk) ||
            sx_weight_get(g, P_("self_attn.v_proj.weight"), kvd, D, &L->wv) ||
            sx_weight_get(g, P_("self_attn.o_proj.weight"), D, qd, &L->wo) ||
            sx_weight_get(g, P_("mlp.gate_proj.weight"), c->ffn, D, &L->gate) ||
            sx_weight_get(g, P_("mlp.up_proj.weight"), c->ffn, D, &L->up) ||
            sx_weight_get(g, P_("mlp.down_proj.weight"), D, c->ffn, &L->down))
            goto fail;
    }
    {
        int64_t i = c->n_layers;
        if (sx_gguf_find(g, P_("input_layernorm.weight"))) {
            sx_err("%s: has tensors for layer %lld but seedx.llm.layers = %lld", sx_gguf_path(g),
                   (long long)i, (long long)c->n_layers);
            goto fail;
        }
    }
#undef P_
    *out = m;
    return 0;
fail:
    sx_err_prefix("loading LLM: ");
    free(m->layers);
    free(m);
    return -1;
}

sx_llama_layer sx_llama_layer_wrap(const sx_llama_config *c, const float *attn_norm,
                                   const float *ffn_norm, void *const w[7], int type) {
    int64_t D = c->hidden, KV = c->n_kv_heads * c->head_dim, F = c->ffn;
    return (sx_llama_layer){.attn_norm = attn_norm,
                            .wq = sx_weight_typed(w[0], type, D, D),
                            .wk = sx_weight_typed(w[1], type, KV, D),
                            .wv = sx_weight_typed(w[2], type, KV, D),
                            .wo = sx_weight_typed(w[3], type, D, D),
                            .ffn_norm = ffn_norm,
                            .gate = sx_weight_typed(w[4], type, F, D),
                            .up = sx_weight_typed(w[5], type, F, D),
                            .down = sx_weight_typed(w[6], type, D, F)};
}

int sx_llama_load(const char *path, sx_llama **out) {
    if (!path || !out) return sx_err("sx_llama_load: NULL argument");
    *out = NULL;
    sx_gguf *g;
    if (sx_gguf_open(path, &g) != 0) return -1;
    if (sx_llama_load_gguf(g, out) != 0) {
        sx_gguf_close(g);
        return -1;
    }
    (*out)->g = g;
    return 0;
}

void sx_llama_free(sx_llama *m) {
    if (!m) return;
    if (m->g) sx_gguf_close(m->g);
    free(m->layers);
    free(m);
}

int sx_llama_embed(const sx_llama *m, const int32_t *ids, int64_t n, float *out) {
    if (!m || (!ids && n) || (!out && n) || n < 0) return sx_err("sx_llama_embed: bad arguments");
    if (!m->tok_embd.data) return sx_err("sx_llama_embed: model has no embedding table");
    int64_t D = m->cfg.hidden;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab)
            return sx_err("sx_llama_embed: token id %d at position %lld is outside the vocabulary "
                          "[0, %lld)",
                          ids[i], (long long)i, (long long)m->cfg.vocab);
    for (int64_t i = 0; i < n; i++)
        if (sx_weight_row(&m->tok_embd, ids[i], out + i * D) != 0) return -1;
    return 0;
}

/* ======================================================================
 * context
 * ====================================================================== */
struct sx_llama_ctx {
    const sx_llama *m;
    int64_t n_ctx, n_past, chunk;
    int kv_type;
    /* [n_layers][n_kv_heads][n_ctx][head_dim], F32 or F16: one head's keys
     * (values) are adjacent, so a decode step reads each as one stream
     * (rows by position would make it a 512-byte read every 20 KB at 13B:
     * attention of one 13B layer at context 600, 2 threads, 1.2 -> 0.8 ms) */
    void *k, *v;
    float *kf, *vf; /* F16 cache only: F32 copies of one layer, [n_kv_heads][Tk][head_dim] */
    float *x, *xn, *q, *att, *gt, *up, *kt, *vt; /* scratch for `chunk` rows */
    float *logit_row;                            /* [vocab] */
    int tracing; /* this forward writes SEEDX_TRACE files (prompt pass only) */
    sx_llama_progress_fn progress; /* multi-token passes: after each layer */
    void *progress_ud;
};

void sx_llama_ctx_set_progress(sx_llama_ctx *c, sx_llama_progress_fn fn, void *ud) {
    if (!c) return;
    c->progress = fn;
    c->progress_ud = ud;
}

static void free_scratch(sx_llama_ctx *c) {
    free(c->x), free(c->xn), free(c->q), free(c->att), free(c->gt), free(c->up);
    free(c->kt), free(c->vt);
    c->x = c->xn = c->q = c->att = c->gt = c->up = c->kt = c->vt = NULL;
}

static int alloc_scratch(sx_llama_ctx *c, int64_t ch) {
    const sx_llama_config *g = &c->m->cfg;
    size_t D = (size_t)g->hidden, qd = (size_t)(g->n_heads * g->head_dim),
           kvd = (size_t)(g->n_kv_heads * g->head_dim), F = (size_t)g->ffn, n = (size_t)ch;
    free_scratch(c);
    c->x = sx_malloc(sizeof(float) * n * D, "llama scratch");
    c->xn = sx_malloc(sizeof(float) * n * (D > qd ? D : qd), "llama scratch");
    c->q = sx_malloc(sizeof(float) * n * qd, "llama scratch");
    c->att = sx_malloc(sizeof(float) * n * qd, "llama scratch");
    c->gt = sx_malloc(sizeof(float) * n * F, "llama scratch");
    c->up = sx_malloc(sizeof(float) * n * F, "llama scratch");
    c->kt = sx_malloc(sizeof(float) * n * kvd, "llama scratch");
    c->vt = sx_malloc(sizeof(float) * n * kvd, "llama scratch");
    if (!c->x || !c->xn || !c->q || !c->att || !c->gt || !c->up || !c->kt || !c->vt) {
        free_scratch(c);
        return -1;
    }
    c->chunk = ch;
    return 0;
}

int sx_llama_ctx_new(const sx_llama *m, int64_t n_ctx, int kv_type, sx_llama_ctx **out) {
    if (!m || !out) return sx_err("sx_llama_ctx_new: NULL argument");
    *out = NULL;
    if (kv_type != SX_F32 && kv_type != SX_F16)
        return sx_err("sx_llama_ctx_new: KV cache type must be F32 or F16, got %s",
                      sx_type_name(kv_type));
    const sx_llama_config *g = &m->cfg;
    if (n_ctx <= 0) n_ctx = g->max_pos;
    if (n_ctx <= 0 || n_ctx > ((int64_t)1 << 24))
        return sx_err("sx_llama_ctx_new: bad context length %lld", (long long)n_ctx);
    sx_llama_ctx *c = sx_calloc(1, sizeof *c, "llama context");
    if (!c) return -1;
    c->m = m;
    c->n_ctx = n_ctx;
    c->kv_type = kv_type;
    size_t kvd = (size_t)(g->n_kv_heads * g->head_dim), es = kv_type == SX_F32 ? 4 : 2;
    size_t cache = (size_t)g->n_layers * (size_t)n_ctx * kvd * es;
    c->k = sx_malloc(cache, "KV cache (keys)");
    c->v = sx_malloc(cache, "KV cache (values)");
    if (!c->k || !c->v) goto fail;
    if (kv_type == SX_F16) {
        c->kf = sx_malloc((size_t)n_ctx * kvd * sizeof(float), "KV cache F32 view");
        c->vf = sx_malloc((size_t)n_ctx * kvd * sizeof(float), "KV cache F32 view");
        if (!c->kf || !c->vf) goto fail;
    }
    c->logit_row = sx_malloc(sizeof(float) * (size_t)g->vocab, "logits");
    if (!c->logit_row) goto fail;
    /* prefill chunks of up to 1024 rows: a prompt of that length is one pass,
     * so quantized weights are converted for the GEMM once per layer, not per
     * 256 rows (600 tokens through a 13B layer, --compute bf16: within 2% of
     * F16's CPU time instead of 10-20% above); scratch ~233 KB per row at 13B */
    if (alloc_scratch(c, n_ctx < 1024 ? n_ctx : 1024) != 0) goto fail;
    *out = c;
    return 0;
fail:
    sx_err_prefix("llama context for %lld positions: ", (long long)n_ctx);
    sx_llama_ctx_free(c);
    return -1;
}

void sx_llama_ctx_free(sx_llama_ctx *c) {
    if (!c) return;
    free_scratch(c);
    free(c->k), free(c->v), free(c->kf), free(c->vf), free(c->logit_row);
    free(c);
}

void sx_llama_ctx_reset(sx_llama_ctx *c) {
    if (c) c->n_past = 0;
}

int sx_llama_ctx_truncate(sx_llama_ctx *c, int64_t n) {
    if (!c) return sx_err("sx_llama_ctx_truncate: NULL context");
    if (n < 0 || n > c->n_past)
        return sx_err("sx_llama_ctx_truncate: %lld is outside [0, %lld]", (long long)n,
                      (long long)c->n_past);
    c->n_past = n;
    return 0;
}

int64_t sx_llama_ctx_n_past(const sx_llama_ctx *c) {
    return c ? c->n_past : 0;
}
int64_t sx_llama_ctx_n_ctx(const sx_llama_ctx *c) {
    return c ? c->n_ctx : 0;
}

int sx_llama_ctx_set_chunk(sx_llama_ctx *c, int64_t chunk) {
    if (!c || chunk <= 0) return sx_err("sx_llama_ctx_set_chunk: bad chunk size");
    if (chunk > c->n_ctx) chunk = c->n_ctx;
    return alloc_scratch(c, chunk);
}

/* ======================================================================
 * forward
 * ====================================================================== */

/* One decoder layer over T rows of c->x at positions n_past.. (in place). */
static int layer_forward(sx_llama_ctx *c, int64_t li, int64_t T) {
    const sx_llama_config *g = &c->m->cfg;
    const sx_llama_layer *L = &c->m->layers[li];
    int64_t D = g->hidden, hd = g->head_dim, H = g->n_heads, KV = g->n_kv_heads;
    int64_t qd = H * hd, kvd = KV * hd, F = g->ffn, p0 = c->n_past, Tk = p0 + T;
    float *x = c->x, *xn = c->xn;
    int64_t shp[2] = {T, D};

    /* input_layernorm: [T, D] */
    sx_rmsnorm(xn, x, L->attn_norm, T, D, g->rms_eps);
    /* self_attn.{q,k,v}_proj: [T, D] -> [T, qd], [T, kvd] */
    if (sx_matmul(c->q, xn, &L->wq, NULL, T) || sx_matmul(c->kt, xn, &L->wk, NULL, T) ||
        sx_matmul(c->vt, xn, &L->wv, NULL, T))
        return -1;
    /* self_attn.rotary_emb: positions p0 .. p0+T-1 */
    sx_rope(c->q, T, (int)H, (int)hd, qd, hd, p0, g->rope_theta);
    sx_rope(c->kt, T, (int)KV, (int)hd, kvd, hd, p0, g->rope_theta);
    /* the new keys and values into the cache, head by head */
    size_t lay = (size_t)li * (size_t)KV * (size_t)c->n_ctx * (size_t)hd; /* this layer */
    for (int64_t h = 0; h < KV; h++)
        for (int64_t t = 0; t < T; t++) {
            size_t at = lay + ((size_t)h * (size_t)c->n_ctx + (size_t)(p0 + t)) * (size_t)hd;
            const float *ks = c->kt + t * kvd + h * hd, *vs = c->vt + t * kvd + h * hd;
            if (c->kv_type == SX_F32) {
                memcpy((float *)c->k + at, ks, sizeof(float) * (size_t)hd);
                memcpy((float *)c->v + at, vs, sizeof(float) * (size_t)hd);
            } else
                for (int64_t d = 0; d < hd; d++) {
                    ((uint16_t *)c->k)[at + d] = sx_f32_to_f16(ks[d]);
                    ((uint16_t *)c->v)[at + d] = sx_f32_to_f16(vs[d]);
                }
        }
    /* each kv head's Tk keys (values): rows hd apart, heads `head` apart */
    const float *kall, *vall;
    int64_t head = c->n_ctx * hd;
    if (c->kv_type == SX_F32) {
        kall = (const float *)c->k + lay;
        vall = (const float *)c->v + lay;
    } else {
        for (int64_t h = 0; h < KV; h++) {
            size_t at = lay + (size_t)h * (size_t)c->n_ctx * (size_t)hd;
            sx_f16_to_f32_n(c->kf + h * Tk * hd, (const uint16_t *)c->k + at, Tk * hd);
            sx_f16_to_f32_n(c->vf + h * Tk * hd, (const uint16_t *)c->v + at, Tk * hd);
        }
        kall = c->kf;
        vall = c->vf;
        head = Tk * hd;
    }
    /* attention: causal over the Tk cached positions, GQA head mapping */
    sx_attn a = {.n_heads = (int)H,
                 .n_kv_heads = (int)KV,
                 .head_dim = (int)hd,
                 .q_tok = qd,
                 .q_head = hd,
                 .k_tok = hd,
                 .k_head = head,
                 .v_tok = hd,
                 .v_head = head,
                 .o_tok = qd,
                 .o_head = hd,
                 .scale = 1.0f / sqrtf((float)hd),
                 .causal = 1,
                 .causal_offset = p0};
    if (sx_attention(&a, c->att, c->q, kall, vall, T, Tk) != 0) return -1;
    /* self_attn.o_proj: [T, qd] -> [T, D], residual */
    if (sx_matmul(xn, c->att, &L->wo, NULL, T) != 0) return -1;
    if (c->tracing) sx_tracef(xn, 2, shp, "model.layers.%lld.self_attn", (long long)li);
    sx_add(x, x, xn, T * D);
    /* post_attention_layernorm + mlp: down(silu(gate(h)) * up(h)), residual */
    sx_rmsnorm(xn, x, L->ffn_norm, T, D, g->rms_eps);
    sx_epilogue silu = {.act = SX_ACT_SILU};
    if (sx_matmul_ep(c->gt, F, xn, D, &L->gate, &silu, T) || sx_matmul(c->up, xn, &L->up, NULL, T))
        return -1;
    sx_mul(c->gt, c->gt, c->up, T * F);
    if (sx_matmul(xn, c->gt, &L->down, NULL, T) != 0) return -1;
    if (c->tracing) sx_tracef(xn, 2, shp, "model.layers.%lld.mlp", (long long)li);
    sx_add(x, x, xn, T * D);
    if (c->tracing) sx_tracef(x, 2, shp, "model.layers.%lld", (long long)li);
    return 0;
}

int sx_llama_forward_embeds(sx_llama_ctx *c, const float *embeds, int64_t T, int logits_mode,
                            float *logits, float *hidden_out) {
    if (!c || !embeds || T <= 0)
        return sx_err("sx_llama_forward_embeds: bad arguments (T=%lld)", (long long)T);
    const sx_llama *m = c->m;
    const sx_llama_config *g = &m->cfg;
    if (logits_mode != SX_LLAMA_LOGITS_NONE && logits_mode != SX_LLAMA_LOGITS_LAST &&
        logits_mode != SX_LLAMA_LOGITS_ALL)
        return sx_err("sx_llama_forward_embeds: bad logits mode %d", logits_mode);
    if (logits_mode != SX_LLAMA_LOGITS_NONE && (!logits || !m->lm_head.data))
        return sx_err("sx_llama_forward_embeds: logits requested but %s",
                      logits ? "the model has no lm_head" : "no output buffer given");
    if (T > c->n_ctx - c->n_past)
        return sx_err("LLM context overflow: %lld cached + %lld new positions exceed the context "
                      "length %lld",
                      (long long)c->n_past, (long long)T, (long long)c->n_ctx);
    int64_t D = g->hidden, V = g->vocab, p_start = c->n_past;
    /* traces cover a whole prompt pass from position 0 (decode steps would
     * overwrite them): one chunk only */
    int single = T <= c->chunk && p_start == 0 && sx_trace_enabled();
    c->tracing = single;
    for (int64_t t0 = 0; t0 < T; t0 += c->chunk) {
        int64_t n = T - t0 < c->chunk ? T - t0 : c->chunk;
        int64_t shp[2] = {n, D};
        memcpy(c->x, embeds + t0 * D, sizeof(float) * (size_t)(n * D));
        if (single) sx_trace("model.embed_tokens", c->x, 2, shp);
        for (int64_t li = 0; li < g->n_layers; li++) {
            if (T > 1 && sx_stop_requested()) { /* decode steps: checked per token */
                c->n_past = p_start;
                return sx_err("cancelled in the prompt pass (layer %lld)", (long long)li);
            }
            if (layer_forward(c, li, n) != 0) {
                c->n_past = p_start;
                return sx_err_prefix("LLM layer %lld: ", (long long)li);
            }
            if (c->progress && T > 1) {
                int64_t n_chunks = (T + c->chunk - 1) / c->chunk;
                c->progress(c->progress_ud, (t0 / c->chunk) * g->n_layers + li + 1,
                            n_chunks * g->n_layers);
            }
        }
        /* model.norm: final RMSNorm = hidden_states[-1] */
        if (m->norm) sx_rmsnorm(c->x, c->x, m->norm, n, D, g->rms_eps);
        if (single) sx_trace("model.norm", c->x, 2, shp);
        if (hidden_out) memcpy(hidden_out + t0 * D, c->x, sizeof(float) * (size_t)(n * D));
        /* lm_head: [n, D] -> [n, vocab] */
        int rc = 0;
        if (logits_mode == SX_LLAMA_LOGITS_ALL)
            rc = sx_matmul(logits + t0 * V, c->x, &m->lm_head, NULL, n);
        else if (logits_mode == SX_LLAMA_LOGITS_LAST && t0 + n == T)
            rc = sx_matmul(logits, c->x + (n - 1) * D, &m->lm_head, NULL, 1);
        if (rc != 0) {
            c->n_past = p_start;
            return -1;
        }
        c->n_past += n;
    }
    if (single && logits_mode == SX_LLAMA_LOGITS_ALL) {
        int64_t shp[2] = {T, V};
        sx_trace("lm_head", logits, 2, shp);
    }
    return 0;
}

int sx_llama_forward_ids(sx_llama_ctx *c, const int32_t *ids, int64_t T, int logits_mode,
                         float *logits, float *hidden_out) {
    if (!c || !ids || T <= 0) return sx_err("sx_llama_forward_ids: bad arguments");
    float *e = sx_malloc(sizeof(float) * (size_t)T * (size_t)c->m->cfg.hidden, "embeddings");
    if (!e) return -1;
    int rc = sx_llama_embed(c->m, ids, T, e);
    if (rc == 0) rc = sx_llama_forward_embeds(c, e, T, logits_mode, logits, hidden_out);
    free(e);
    return rc;
}

/* ======================================================================
 * sampling and generation
 * ====================================================================== */
void sx_llama_gen_defaults(const sx_llama *m, sx_llama_gen *g) {
    memset(g, 0, sizeof *g);
    g->max_new_tokens = 128;
    g->temperature = 0.0f;
    g->top_p = 1.0f;
    g->repetition_penalty = 1.0f;
    g->eos_id = m ? (int32_t)m->cfg.eos_id : -1;
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    float v;
    int32_t i;
} vi_pair;

static int cmp_desc(const void *a, const void *b) {
    const vi_pair *x = a, *y = b;
    if (x->v > y->v) return -1;
    if (x->v < y->v) return 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static int32_t argmax_first(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int32_t)best;
}

int32_t sx_llama_sample(float *logits, int64_t V, const sx_llama_gen *o, uint64_t *rng) {
    if (!o || o->temperature <= 0.0f) return argmax_first(logits, V);
    /* HF warpers in order: temperature, top-k, top-p */
    for (int64_t i = 0; i < V; i++) logits[i] /= o->temperature;
    if (!(o->top_k > 0 && o->top_k < V) && !(o->top_p > 0.0f && o->top_p < 1.0f)) {
        /* plain softmax sampling in index order: no sort needed */
        double mx = logits[argmax_first(logits, V)], z = 0, acc = 0;
        for (int64_t i = 0; i < V; i++) z += exp((double)logits[i] - mx);
        double u = (double)(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0) * z;
        for (int64_t i = 0; i < V; i++) {
            acc += exp((double)logits[i] - mx);
            if (u < acc) return (int32_t)i;
        }
        return argmax_first(logits, V);
    }
    vi_pair *s = malloc(sizeof *s * (size_t)V);
    if (!s) return argmax_first(logits, V);
    for (int64_t i = 0; i < V; i++) s[i] = (vi_pair){logits[i], (int32_t)i};
    qsort(s, (size_t)V, sizeof *s, cmp_desc);
    int64_t keep = V;
    if (o->top_k > 0 && o->top_k < V) {
        float kth = s[o->top_k - 1].v; /* ties with the k-th value are kept (as HF) */
        keep = o->top_k;
        while (keep < V && s[keep].v >= kth) keep++;
    }
    double mx = s[0].v, z = 0;
    for (int64_t i = 0; i < keep; i++) z += exp((double)s[i].v - mx);
    if (o->top_p > 0.0f && o->top_p < 1.0f) {
        /* drop the low tail whose cumulative probability is <= 1 - top_p */
        double tail = 0, lim = 1.0 - (double)o->top_p;
        int64_t k = keep;
        while (k > 1) {
            double p = exp((double)s[k - 1].v - mx) / z;
            if (tail + p > lim) break;
            tail += p;
            k--;
        }
        keep = k;
        z = 0;
        for (int64_t i = 0; i < keep; i++) z += exp((double)s[i].v - mx);
    }
    double u = (double)(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0) * z, acc = 0;
    int32_t pick = s[keep - 1].i;
    for (int64_t i = 0; i < keep; i++) {
        acc += exp((double)s[i].v - mx);
        if (u < acc) {
            pick = s[i].i;
            break;
        }
    }
    free(s);
    return pick;
}

int sx_llama_generate(sx_llama_ctx *c, const float *prompt_embeds, const int32_t *prompt_ids,
                      int64_t P, const sx_llama_gen *opt, int32_t *out_ids, int64_t *n_out,
                      float *hidden_out) {
    if (!c || !prompt_embeds || P <= 0 || !opt || !n_out || (!out_ids && opt->max_new_tokens > 0) ||
        opt->max_new_tokens < 0)
        return sx_err("sx_llama_generate: bad arguments");
    *n_out = 0;
    const sx_llama *m = c->m;
    int64_t V = m->cfg.vocab, D = m->cfg.hidden, N = opt->max_new_tokens;
    int64_t need = P + (N > 0 ? N - 1 : 0);
    if (need > c->n_ctx - c->n_past)
        return sx_err("LLM context overflow: %lld cached + %lld prompt + %lld new tokens exceed "
                      "the context length %lld",
                      (long long)c->n_past, (long long)P, (long long)N, (long long)c->n_ctx);
    if (prompt_ids)
        for (int64_t i = 0; i < P; i++)
            if (prompt_ids[i] < 0 || prompt_ids[i] >= V)
                return sx_err("sx_llama_generate: prompt id %d at %lld outside [0, %lld)",
                              prompt_ids[i], (long long)i, (long long)V);
    int64_t np = prompt_ids ? P : 0;
    int32_t *ids = sx_malloc(sizeof(int32_t) * (size_t)(np + N + 1), "generated ids");
    unsigned char *seen = sx_calloc((size_t)V, 1, "repetition mask");
    float *emb = sx_malloc(sizeof(float) * (size_t)D, "embedding");
    int rc = -1;
    if (!ids || !seen || !emb) goto done;
    if (np) memcpy(ids, prompt_ids, sizeof(int32_t) * (size_t)np);
    for (int64_t i = 0; i < np; i++) seen[ids[i]] = 1;
    float *lg = c->logit_row;
    if (sx_llama_forward_embeds(c, prompt_embeds, P, SX_LLAMA_LOGITS_LAST, lg, hidden_out) != 0)
        goto done;
    uint64_t rng = opt->seed ^ 0x5EED5EEDull;
    int use_pen = opt->repetition_penalty > 0.0f && opt->repetition_penalty != 1.0f;
    int64_t n = 0;
    while (n < N) {
        if (sx_stop_requested()) {
            sx_err("cancelled after %lld new tokens", (long long)n);
            goto done;
        }
        /* RepetitionPenaltyLogitsProcessor: every id seen so far */
        if (use_pen)
            for (int64_t i = 0; i < V; i++)
                if (seen[i])
                    lg[i] = lg[i] < 0 ? lg[i] * opt->repetition_penalty
                                      : lg[i] / opt->repetition_penalty;
        if (opt->processor && opt->processor(opt->processor_user, ids, np + n, lg, V) != 0) {
            sx_err_prefix("logits processor failed at step %lld: ", (long long)n);
            goto done;
        }
        int32_t id = sx_llama_sample(lg, V, opt, &rng);
        ids[np + n] = id;
        seen[id] = 1;
        out_ids[n++] = id;
        int stop = opt->on_token ? opt->on_token(opt->on_token_user, id) : 0;
        if (stop || id == opt->eos_id || n == N) break;
        /* feed the new token back: model.embed_tokens -> one decode step */
        if (sx_llama_embed(m, &id, 1, emb) != 0) goto done;
        float *h = hidden_out ? hidden_out + (P + n - 1) * D : NULL;
        if (sx_llama_forward_embeds(c, emb, 1, SX_LLAMA_LOGITS_LAST, lg, h) != 0) goto done;
    }
    *n_out = n;
    rc = 0;
done:
    free(ids), free(seen), free(emb);
    return rc;
}
