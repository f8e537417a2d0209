/* llama.h - the Llama-2 language model at the centre of SEED-X (llama.c).
 *
 * Mirrors transformers 4.30.2 LlamaForCausalLM: token embedding, N decoder
 * layers (RMSNorm -> causal self-attention with HF rotate-half RoPE ->
 * residual; RMSNorm -> SwiGLU MLP -> residual), final RMSNorm, untied
 * lm_head. Grouped-query attention (n_kv_heads < n_heads) is supported.
 *
 * Weights come from a GGUF written by `scripts/convert.py llm` with the
 * original key names (model.layers.0.self_attn.q_proj.weight, ...) and the
 * hyperparameters as seedx.llm.* metadata.
 *
 * A context (sx_llama_ctx) owns a KV cache preallocated for n_ctx positions
 * (default: max_position_embeddings). sx_llama_forward_embeds appends a
 * chunk of input EMBEDDINGS to it (prefill = matrix-matrix work, decode =
 * one row); callers build embeddings with sx_llama_embed and may overwrite
 * rows (SEED-X splices image features in). */
#ifndef SEEDX_LLAMA_H
#define SEEDX_LLAMA_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sx_llama_config {
    int64_t hidden;                 /* seedx.llm.hidden (5120 for 13B) */
    int64_t n_layers;               /* seedx.llm.layers */
    int64_t n_heads;                /* seedx.llm.heads */
    int64_t n_kv_heads;             /* seedx.llm.kv_heads (= heads without GQA) */
    int64_t head_dim;               /* hidden / heads */
    int64_t ffn;                    /* seedx.llm.ffn (intermediate_size) */
    int64_t vocab;                  /* seedx.llm.vocab */
    int64_t max_pos;                /* seedx.llm.max_position_embeddings */
    float rms_eps;                  /* seedx.llm.rms_eps */
    float rope_theta;               /* seedx.llm.rope_theta (10000) */
    int64_t bos_id, eos_id, pad_id; /* -1 when absent */
} sx_llama_config;

/* One decoder layer: model.layers.<i>.* */
typedef struct sx_llama_layer {
    const float *attn_norm;   /* input_layernorm.weight [D] */
    sx_weight wq, wk, wv, wo; /* self_attn.{q,k,v,o}_proj.weight */
    const float *ffn_norm;    /* post_attention_layernorm.weight [D] */
    sx_weight gate, up, down; /* mlp.{gate,up,down}_proj.weight */
} sx_llama_layer;

/* A model. Loaded from a file by sx_llama_load; tests may also fill one by
 * hand (cfg + layers) with in-memory weights: then tok_embd.data may be NULL
 * (no sx_llama_embed), norm NULL (hidden_out is the last layer's output
 * without a final norm) and lm_head.data NULL (no logits). */
typedef struct sx_llama {
    sx_llama_config cfg;
    sx_llama_layer *layers;    /* cfg.n_layers */
    sx_weight tok_embd;        /* model.embed_tokens.weight [vocab, D], rows looked up */
    const float *norm;         /* model.norm.weight [D] */
    sx_weight lm_head;         /* lm_head.weight [vocab, D] */
    sx_gguf *g;                /* owned when loaded from a file */
} sx_llama;

/* A layer over in-memory matrices of one weight type, for a model filled
 * by hand: w = q, k, v, o, gate, up, down projections, each [N, K] as c
 * gives them (rows of K stored one after the other). */
sx_llama_layer sx_llama_layer_wrap(const sx_llama_config *c, const float *attn_norm,
                                   const float *ffn_norm, void *const w[7], int type);

/* Loads path (GGUF from convert.py llm); checks every tensor's shape
 * against the metadata. sx_llama_free also closes the file. */
int sx_llama_load(const char *path, sx_llama **out);
/* Same from an already open container (not owned; must outlive the model). */
int sx_llama_load_gguf(sx_gguf *g, sx_llama **out);
void sx_llama_free(sx_llama *m);

/* Input embeddings for n token ids: out [n, D] (rows of
 * model.embed_tokens.weight as float32). Ids outside [0, vocab) -> error. */
int sx_llama_embed(const sx_llama *m, const int32_t *ids, int64_t n, float *out);

/* ---- context: KV cache + scratch ---- */
typedef struct sx_llama_ctx sx_llama_ctx;
/* n_ctx <= 0: cfg.max_pos. kv_type: SX_F32 or SX_F16 (cache storage). */
int sx_llama_ctx_new(const sx_llama *m, int64_t n_ctx, int kv_type, sx_llama_ctx **out);
void sx_llama_ctx_free(sx_llama_ctx *c);
/* Forgets the cached positions (n_past = 0). */
void sx_llama_ctx_reset(sx_llama_ctx *c);
/* Drops cached positions >= n (0 <= n <= n_past), e.g. to rewind. */
int sx_llama_ctx_truncate(sx_llama_ctx *c, int64_t n);
int64_t sx_llama_ctx_n_past(const sx_llama_ctx *c);
int64_t sx_llama_ctx_n_ctx(const sx_llama_ctx *c);
/* Progress of multi-token passes (prefill): fn(ud, done, total) after each
 * layer of each chunk; NULL to turn off. */
typedef void (*sx_llama_progress_fn)(void *ud, int64_t done, int64_t total);
void sx_llama_ctx_set_progress(sx_llama_ctx *c, sx_llama_progress_fn fn, void *ud);
/* Prefill chunk size (rows per matrix-matrix pass, default 1024). */
int sx_llama_ctx_set_chunk(sx_llama_ctx *c, int64_t chunk);

enum { SX_LLAMA_LOGITS_NONE = 0, SX_LLAMA_LOGITS_LAST = 1, SX_LLAMA_LOGITS_ALL = 2 };

/* Runs T input embeddings [T, D] at positions n_past .. n_past+T-1,
 * appending their keys/values to the cache (n_past += T).
 *   logits_mode LAST: logits [vocab] of the last position;
 *               ALL:  logits [T, vocab];  NONE: logits unused (may be NULL).
 *   hidden_out [T, D] (optional): final-norm hidden states, i.e.
 *               transformers' hidden_states[-1] (the lm_head input).
 * n_past + T > n_ctx -> error, cache unchanged. */
int sx_llama_forward_embeds(sx_llama_ctx *c, const float *embeds, int64_t T, int logits_mode,
                            float *logits, float *hidden_out);
/* Convenience: embeds ids then forwards them. */
int sx_llama_forward_ids(sx_llama_ctx *c, const int32_t *ids, int64_t T, int logits_mode,
                         float *logits, float *hidden_out);

/* ---- generation ----
 * Per step: logits of the last position -> repetition penalty (over all
 * ids seen: prompt ids + generated) -> processor callback -> choice:
 *   temperature <= 0: greedy argmax (first index on ties; HF do_sample=False)
 *   else: logits / temperature -> top-k -> top-p -> softmax -> sample with a
 *         seeded RNG (deterministic for a given seed and inputs).
 * Stops after max_new_tokens, at eos (eos is returned as the last id), or
 * when on_token returns nonzero. */
typedef int (*sx_llama_logits_fn)(void *user, const int32_t *ids, int64_t n_ids, float *logits,
                                  int64_t vocab);         /* nonzero -> abort with error */
typedef int (*sx_llama_token_fn)(void *user, int32_t id); /* nonzero -> stop */

typedef struct sx_llama_gen {
    int64_t max_new_tokens;
    float temperature;        /* <= 0: greedy */
    int top_k;                /* <= 0: off */
    float top_p;              /* >= 1 or <= 0: off */
    float repetition_penalty; /* 1 (or <= 0): off */
    uint64_t seed;
    int32_t eos_id; /* < 0: never stop on a token */
    sx_llama_logits_fn processor;
    void *processor_user;
    sx_llama_token_fn on_token;
    void *on_token_user;
} sx_llama_gen;
/* Defaults: greedy, max_new_tokens 128, eos from cfg, nothing installed. */
void sx_llama_gen_defaults(const sx_llama *m, sx_llama_gen *g);

/* prompt_embeds [P, D] (P >= 1) are appended to the cache; prompt_ids
 * (P ids, may be NULL) are what the processor / penalty see before the
 * generated ids. out_ids receives up to max_new_tokens ids, *n_out their
 * count. hidden_out (optional, room for P + max_new_tokens rows of D)
 * receives the final-norm state of every input read: P prompt rows, then
 * one row per generated token that was fed back (P + n_out - 1 rows when
 * n_out >= 1, as HF's generate(output_hidden_states=True)
 * hidden_states[step][-1]). Needs n_past + P + max_new_tokens - 1 <= n_ctx
 * (checked up front). */
int sx_llama_generate(sx_llama_ctx *c, const float *prompt_embeds, const int32_t *prompt_ids,
                      int64_t P, const sx_llama_gen *opt, int32_t *out_ids, int64_t *n_out,
                      float *hidden_out);

/* The choice step alone (penalty, processor not included): picks an id
 * from logits [vocab] (modified in place) with opt's temperature/top-k/
 * top-p and the RNG state *rng. */
int32_t sx_llama_sample(float *logits, int64_t vocab, const sx_llama_gen *opt, uint64_t *rng);

#ifdef __cplusplus
}
#endif
#endif
