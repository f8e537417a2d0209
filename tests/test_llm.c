/* tests/test_llm.c - llama.c against transformers 4.30.2 (fixtures from
 * scripts/fixtures_llm.py: tiny Llamas saved by save_pretrained and converted
 * by scripts/convert_llm.py; expected values from LlamaForCausalLM / RefLlama). */
#include "test.h"
#include "llama.h"

#define FX "tests/fixtures/llm/"

static sx_gguf *open_fx(const char *name) {
    sx_gguf *g = NULL;
    if (sx_gguf_open(name, &g) != 0) fprintf(stderr, "  %s\n", sx_errmsg());
    return g;
}

/* metadata int array -> int32 (count in *n) */
static int32_t *meta_ids(sx_gguf *g, const char *key, int64_t *n) {
    int et;
    uint64_t cnt;
    if (sx_meta_arr(g, key, &et, &cnt) != 0) return NULL;
    int32_t *v = malloc(sizeof(int32_t) * (cnt ? cnt : 1));
    for (uint64_t i = 0; i < cnt; i++) {
        int64_t x = 0;
        sx_meta_arr_int(g, key, i, &x);
        v[i] = (int32_t)x;
    }
    *n = (int64_t)cnt;
    return v;
}

typedef struct {
    sx_llama *m;
    sx_gguf *e;
    int32_t *ids;
    int64_t P;
} mha_fx;

static int load_mha(mha_fx *f) {
    memset(f, 0, sizeof *f);
    if (sx_llama_load(FX "tiny_mha.gguf", &f->m) != 0) {
        fprintf(stderr, "  %s\n", sx_errmsg());
        return -1;
    }
    f->e = open_fx(FX "expected_mha.gguf");
    if (!f->e) return -1;
    f->ids = meta_ids(f->e, "llm.prompt_ids", &f->P);
    return f->ids ? 0 : -1;
}

static void free_mha(mha_fx *f) {
    sx_llama_free(f->m);
    sx_gguf_close(f->e);
    free(f->ids);
}

static void test_config(void) {
    sx_llama *m;
    CHECK_OK(sx_llama_load(FX "tiny_mha.gguf", &m));
    if (!m) return;
    const sx_llama_config *c = &m->cfg;
    CHECK(c->hidden == 64 && c->n_layers == 3 && c->n_heads == 4 && c->n_kv_heads == 4);
    CHECK(c->ffn == 172 && c->vocab == 32330 && c->max_pos == 512 && c->head_dim == 16);
    CHECK(fabsf(c->rms_eps - 1e-5f) < 1e-12f && c->rope_theta == 10000.0f);
    CHECK(c->bos_id == 1 && c->eos_id == 2 && c->pad_id == 0);
    CHECK(m->lm_head.type == SX_BF16);
    sx_llama_free(m);
    CHECK_OK(sx_llama_load(FX "tiny_gqa_f32.gguf", &m));
    if (!m) return;
    CHECK(m->cfg.n_kv_heads == 2 && m->cfg.rope_theta == 50000.0f && m->cfg.vocab == 512);
    CHECK(fabsf(m->cfg.rms_eps - 1e-6f) < 1e-13f);
    sx_llama_free(m);
}

/* 70-token prompt: logits (4 rows + argmax of all 70) and hidden_states[-1] */
static void test_mha_prompt(void) {
    mha_fx f;
    if (load_mha(&f) != 0) {
        CHECK(0);
        free_mha(&f);
        return;
    }
    int64_t P = f.P, D = 64, V = 32330;
    CHECK(P == 70);
    float *emb = malloc(sizeof(float) * P * D), *hid = malloc(sizeof(float) * P * D);
    float *lg = malloc(sizeof(float) * P * V);
    sx_llama_ctx *c;
    CHECK_OK(sx_llama_ctx_new(f.m, 0, SX_F32, &c));
    CHECK(sx_llama_ctx_n_ctx(c) == 512);
    CHECK_OK(sx_llama_embed(f.m, f.ids, P, emb));
    CHECK_OK(sx_llama_forward_embeds(c, emb, P, SX_LLAMA_LOGITS_ALL, lg, hid));
    CHECK(sx_llama_ctx_n_past(c) == P);
    const float *eh = sx_get_f32(f.e, "hidden", SX_SHAPE(P, D));
    const float *el = sx_get_f32(f.e, "logits_rows", SX_SHAPE(4, V));
    const float *am = sx_get_f32(f.e, "argmax", SX_SHAPE(P));
    int64_t nr;
    int32_t *rows = meta_ids(f.e, "llm.rows", &nr);
    if (eh) CHECK_CLOSE("hidden_states[-1]", hid, eh, P * D, 1e-5);
    if (el && rows)
        for (int64_t r = 0; r < nr; r++)
            CHECK_CLOSE("logits row", lg + rows[r] * V, el + r * V, V, 1e-5);
    if (am) {
        int same = 0;
        for (int64_t t = 0; t < P; t++) {
            int64_t best = 0;
            for (int64_t i = 1; i < V; i++)
                if (lg[t * V + i] > lg[t * V + best]) best = i;
            same += best == (int64_t)am[t];
        }
        CHECKF(same == P, "argmax agrees at %d of %lld positions", same, (long long)P);
    }
    /* one thread vs the pool: should be bit-identical (design card). Today
     * sx_attention picks its query-block size from sx_threads_count(), and a block
     * of <= 8 queries goes through the GEMV path (another summation order than the
     * GEMM), so SIMD results differ by ~1 ulp: closeness is checked, bits printed. */
    float *h1 = malloc(sizeof(float) * P * D);
    CHECK_OK(sx_threads_init(1));
    sx_llama_ctx_reset(c);
    CHECK_OK(sx_llama_forward_embeds(c, emb, P, SX_LLAMA_LOGITS_NONE, NULL, h1));
    CHECK_CLOSE("1 thread vs pool", h1, hid, P * D, 1e-6);
    CHECK_OK(sx_threads_init(0));
    printf("    1 thread vs %d: %s\n", sx_threads_count(),
           memcmp(h1, hid, sizeof(float) * P * D) ? "NOT bit-identical" : "bit-identical");
    free(h1);
    /* LAST mode gives the last row of ALL */
    float *last = malloc(sizeof(float) * V);
    sx_llama_ctx_reset(c);
    CHECK_OK(sx_llama_forward_embeds(c, emb, P, SX_LLAMA_LOGITS_LAST, last, NULL));
    CHECK_CLOSE("LAST vs ALL logits", last, lg + (P - 1) * V, V, 1e-6);
    /* forward_ids == embed + forward_embeds; a bad id leaves the cache alone */
    float *h3 = malloc(sizeof(float) * P * D);
    sx_llama_ctx_reset(c);
    CHECK_OK(sx_llama_forward_ids(c, f.ids, P, SX_LLAMA_LOGITS_NONE, NULL, h3));
    CHECK(memcmp(h3, hid, sizeof(float) * P * D) == 0);
    int32_t badid[2] = {1, 40000};
    CHECK(sx_llama_forward_ids(c, badid, 2, SX_LLAMA_LOGITS_NONE, NULL, NULL) == -1);
    CHECK(sx_llama_ctx_n_past(c) == P);
    free(h3);
    free(last), free(rows), free(emb), free(hid), free(lg);
    sx_llama_ctx_free(c);
    free_mha(&f);
}

/* 20 positions' embeddings replaced by given vectors (inputs_embeds) */
static float *spliced(mha_fx *f) {
    int64_t P = f->P, D = 64, n;
    float *emb = malloc(sizeof(float) * P * D);
    sx_llama_embed(f->m, f->ids, P, emb);
    int64_t s0 = sx_meta_int_or(f->e, "llm.span_start", 0),
            sl = sx_meta_int_or(f->e, "llm.span_len", 0);
    const float *vec = sx_get_f32(f->e, "span_vectors", SX_SHAPE(sl, D));
    if (vec) memcpy(emb + s0 * D, vec, sizeof(float) * sl * D);
    (void)n;
    return emb;
}

static void test_mha_splice(void) {
    mha_fx f;
    if (load_mha(&f) != 0) {
        CHECK(0);
        free_mha(&f);
        return;
    }
    int64_t P = f.P, D = 64, V = 32330;
    float *emb = spliced(&f), *hid = malloc(sizeof(float) * P * D),
          *lg = malloc(sizeof(float) * P * V);
    sx_llama_ctx *c;
    CHECK_OK(sx_llama_ctx_new(f.m, 0, SX_F32, &c));
    CHECK_OK(sx_llama_forward_embeds(c, emb, P, SX_LLAMA_LOGITS_ALL, lg, hid));
    const float *eh = sx_get_f32(f.e, "hidden2", SX_SHAPE(P, D));
    const float *el = sx_get_f32(f.e, "logits2_rows", SX_SHAPE(2, V));
    int64_t nr;
    int32_t *rows = meta_ids(f.e, "llm.rows2", &nr);
    if (eh) CHECK_CLOSE("hidden_states[-1] (spliced)", hid, eh, P * D, 1e-5);
    if (el && rows)
        for (int64_t r = 0; r < nr; r++)
            CHECK_CLOSE("logits row (spliced)", lg + rows[r] * V, el + r * V, V, 1e-5);
    free(rows), free(emb), free(hid), free(lg);
    sx_llama_ctx_free(c);
    free_mha(&f);
}

/* greedy generation of 40 tokens from the spliced prompt, as HF generate(input_ids,
 * inputs_embeds); hidden states of every input read; then decode-with-cache vs full
 * recompute, chunked prefill vs one chunk, F16 KV cache drift */
static void test_mha_generate(void) {
    mha_fx f;
    if (load_mha(&f) != 0) {
        CHECK(0);
        free_mha(&f);
        return;
    }
    int64_t P = f.P, D = 64, N = 40, ng, n;
    float *emb = spliced(&f);
    int32_t *want = meta_ids(f.e, "llm.gen_ids", &ng), out[40];
    float *gh = malloc(sizeof(float) * (P + N) * D);
    sx_llama_ctx *c;
    CHECK_OK(sx_llama_ctx_new(f.m, 0, SX_F32, &c));
    sx_llama_gen opt;
    sx_llama_gen_defaults(f.m, &opt);
    opt.max_new_tokens = N;
    CHECK(opt.eos_id == 2 && opt.temperature == 0.0f);
    CHECK_OK(sx_llama_generate(c, emb, f.ids, P, &opt, out, &n, gh));
    CHECK(n == 40 && ng == 40);
    int same = 0;
    for (int64_t i = 0; i < n && i < ng; i++) same += out[i] == want[i];
    CHECKF(same == 40, "%d of 40 generated ids equal transformers'", same);
    CHECK(sx_llama_ctx_n_past(c) == P + N - 1);
    const float *egh = sx_get_f32(f.e, "gen_hidden", SX_SHAPE(P + N - 1, D));
    if (egh) CHECK_CLOSE("generate hidden states", gh, egh, (P + N - 1) * D, 1e-5);

    /* full recompute of prompt + generated[:-1] in one pass */
    float *all = malloc(sizeof(float) * (P + N) * D), *h2 = malloc(sizeof(float) * (P + N) * D);
    memcpy(all, emb, sizeof(float) * P * D);
    CHECK_OK(sx_llama_embed(f.m, out, N - 1, all + P * D));
    sx_llama_ctx *c2;
    CHECK_OK(sx_llama_ctx_new(f.m, 0, SX_F32, &c2));
    CHECK_OK(sx_llama_forward_embeds(c2, all, P + N - 1, SX_LLAMA_LOGITS_NONE, NULL, h2));
    CHECK_CLOSE("cache decode vs full recompute", gh, h2, (P + N - 1) * D, 1e-5);
    /* chunked prefill (16 rows per pass: 7 chunks, one partial) */
    sx_llama_ctx_reset(c2);
    CHECK_OK(sx_llama_ctx_set_chunk(c2, 16));
    CHECK_OK(sx_llama_forward_embeds(c2, all, P + N - 1, SX_LLAMA_LOGITS_NONE, NULL, h2));
    CHECK_CLOSE("chunked prefill vs decode", h2, gh, (P + N - 1) * D, 1e-5);
    /* the F16 KV cache */
    sx_llama_ctx *c3;
    CHECK_OK(sx_llama_ctx_new(f.m, 128, SX_F16, &c3));
    CHECK_OK(sx_llama_forward_embeds(c3, all, P + N - 1, SX_LLAMA_LOGITS_NONE, NULL, h2));
    t_err e = t_compare(h2, egh ? egh : gh, (P + N - 1) * D);
    printf("    F16 KV cache: hidden max-rel %.3g\n", e.max_rel);
    CHECK(e.max_rel < 5e-3);
    /* truncate + re-run the tail == original */
    CHECK_OK(sx_llama_ctx_truncate(c2, P));
    CHECK_OK(sx_llama_forward_embeds(c2, all + P * D, N - 1, SX_LLAMA_LOGITS_NONE, NULL, h2));
    CHECK_CLOSE("truncate + re-run", h2, gh + P * D, (N - 1) * D, 1e-5);
    sx_llama_ctx_free(c3);
    sx_llama_ctx_free(c2);
    sx_llama_ctx_free(c);
    free(all), free(h2), free(emb), free(want), free(gh);
    free_mha(&f);
}

static void test_mha_repetition_penalty(void) {
    mha_fx f;
    if (load_mha(&f) != 0) {
        CHECK(0);
        free_mha(&f);
        return;
    }
    int64_t P = f.P, nw, n;
    int32_t *want = meta_ids(f.e, "llm.pen_ids", &nw), out[64];
    float *emb = malloc(sizeof(float) * P * 64);
    sx_llama_embed(f.m, f.ids, P, emb);
    sx_llama_ctx *c;
    CHECK_OK(sx_llama_ctx_new(f.m, 0, SX_F32, &c));
    sx_llama_gen opt;
    sx_llama_gen_defaults(f.m, &opt);
    opt.max_new_tokens = nw;
    opt.repetition_penalty = 1.3f;
    CHECK_OK(sx_llama_generate(c, emb, f.ids, P, &opt, out, &n, NULL));
    CHECK(n == nw);
    int same = 0;
    for (int64_t i = 0; i < n && i < nw; i++) same += out[i] == want[i];
    CHECKF(same == nw, "%d of %lld ids equal transformers' (repetition_penalty 1.3)", same,
           (long long)nw);
    sx_llama_ctx_free(c);
    free(emb), free(want);
    free_mha(&f);
}

/* GQA (2 kv heads), rope theta 50000; F32, then F16/BF16 drift */
static void test_gqa(void) {
    sx_gguf *e = open_fx(FX "expected_gqa.gguf");
    if (!e) {
        CHECK(0);
        return;
    }
    int64_t P, ng, D = 64, V = 512;
    int32_t *ids = meta_ids(e, "llm.prompt_ids", &P), *want = meta_ids(e, "llm.gen_ids", &ng);
    const float *eh = sx_get_f32(e, "hidden", SX_SHAPE(P, D));
    const float *el = sx_get_f32(e, "logits", SX_SHAPE(P, V));
    const float *egh = sx_get_f32(e, "gen_hidden", SX_SHAPE(P + ng - 1, D));
    const char *files[3] = {FX "tiny_gqa_f32.gguf", FX "tiny_gqa_f16.gguf",
                            FX "tiny_gqa_bf16.gguf"};
    const double tol[3] = {1e-5, 5e-3, 3e-2};
    for (int k = 0; k < 3 && eh && el && egh; k++) {
        sx_llama *m;
        if (sx_llama_load(files[k], &m) != 0) {
            CHECKF(0, "%s", sx_errmsg());
            continue;
        }
        float *hid = malloc(sizeof(float) * P * D), *lg = malloc(sizeof(float) * P * V);
        float *emb = malloc(sizeof(float) * P * D), *gh = malloc(sizeof(float) * (P + ng) * D);
        sx_llama_ctx *c;
        CHECK_OK(sx_llama_ctx_new(m, 0, SX_F32, &c));
        CHECK_OK(sx_llama_embed(m, ids, P, emb));
        CHECK_OK(sx_llama_forward_embeds(c, emb, P, SX_LLAMA_LOGITS_ALL, lg, hid));
        t_err eh_ = t_compare(hid, eh, P * D), el_ = t_compare(lg, el, P * V);
        printf("    %-34s hidden max-rel %.3g  logits max-rel %.3g\n", files[k] + strlen(FX),
               eh_.max_rel, el_.max_rel);
        CHECK_CLOSE("GQA hidden_states[-1]", hid, eh, P * D, tol[k]);
        CHECK_CLOSE("GQA logits", lg, el, P * V, tol[k]);
        if (k == 0) {
            int32_t out[64];
            int64_t n;
            sx_llama_gen opt;
            sx_llama_gen_defaults(m, &opt);
            opt.max_new_tokens = 40;
            sx_llama_ctx_reset(c);
            CHECK_OK(sx_llama_generate(c, emb, ids, P, &opt, out, &n, gh));
            int same = n == ng;
            for (int64_t i = 0; same && i < n; i++) same = out[i] == want[i];
            CHECKF(same, "GQA greedy ids differ (%lld vs %lld tokens)", (long long)n,
                   (long long)ng);
            if (same) CHECK_CLOSE("GQA generate hidden", gh, egh, (P + ng - 1) * D, 1e-5);
        }
        sx_llama_ctx_free(c);
        free(hid), free(lg), free(emb), free(gh);
        sx_llama_free(m);
    }
    free(ids), free(want);
    sx_gguf_close(e);
}

typedef struct {
    int32_t forced[3];
    int calls, stop_after, seen;
} cb_state;

/* a SEED-X-like rule: force forced[k] at step k by max + 10 */
static int force_proc(void *u, const int32_t *ids, int64_t n_ids, float *lg, int64_t V) {
    cb_state *s = u;
    (void)ids;
    s->calls++;
    int k = s->calls - 1;
    if (k < 3) {
        float mx = lg[0];
        for (int64_t i = 1; i < V; i++) mx = lg[i] > mx ? lg[i] : mx;
        lg[s->forced[k]] = mx + 10.0f;
    }
    return n_ids < 0; /* never fails */
}

static int stop_cb(void *u, int32_t id) {
    cb_state *s = u;
    (void)id;
    return ++s->seen >= s->stop_after;
}

static void test_sampling(void) {
    mha_fx f;
    if (load_mha(&f) != 0) {
        CHECK(0);
        free_mha(&f);
        return;
    }
    int64_t P = 20, n1, n2, n3;
    float *emb = malloc(sizeof(float) * P * 64);
    sx_llama_embed(f.m, f.ids, P, emb);
    sx_llama_ctx *c;
    CHECK_OK(sx_llama_ctx_new(f.m, 256, SX_F32, &c));
    sx_llama_gen opt;
    sx_llama_gen_defaults(f.m, &opt);
    opt.max_new_tokens = 16;
    int32_t g[16], a[16], b[16];
    CHECK_OK(sx_llama_generate(c, emb, f.ids, P, &opt, g, &n1, NULL));
    /* top-k 1 sampling == greedy */
    opt.temperature = 0.8f;
    opt.top_k = 1;
    opt.seed = 5;
    sx_llama_ctx_reset(c);
    CHECK_OK(sx_llama_generate(c, emb, f.ids, P, &opt, a, &n2, NULL));
    CHECK(n1 == n2 && memcmp(g, a, sizeof(int32_t) * n1) == 0);
    /* same seed -> same ids; another seed -> different ids (high temperature) */
    opt.top_k = 0;
    opt.top_p = 0.95f;
    opt.temperature = 1.5f;
    sx_llama_ctx_reset(c);
    CHECK_OK(sx_llama_generate(c, emb, f.ids, P, &opt, a, &n2, NULL));
    sx_llama_ctx_reset(c);
    CHECK_OK(sx_llama_generate(c, emb, f.ids, P, &opt, b, &n3, NULL));
    CHECK(n2 == n3 && memcmp(a, b, sizeof(int32_t) * n2) == 0);
    opt.seed = 6;
    sx_llama_ctx_reset(c);
    CHECK_OK(sx_llama_generate(c, emb, f.ids, P, &opt, b, &n3, NULL));
    CHECK(memcmp(a, b, sizeof(int32_t) * 16) != 0);
    /* top-p tiny keeps only the best token -> greedy */
    opt.top_p = 1e-6f;
    sx_llama_ctx_reset(c);
    CHECK_OK(sx_llama_generate(c, emb, f.ids, P, &opt, b, &n3, NULL));
    CHECK(n3 == n1 && memcmp(g, b, sizeof(int32_t) * n1) == 0);
    /* without prompt ids (greedy, no penalty) nothing changes */
    sx_llama_gen_defaults(f.m, &opt);
    opt.max_new_tokens = 16;
    sx_llama_ctx_reset(c);
    CHECK_OK(sx_llama_generate(c, emb, NULL, P, &opt, b, &n3, NULL));
    CHECK(n3 == n1 && memcmp(g, b, sizeof(int32_t) * n1) == 0);
    /* processor forcing + on_token stop */
    sx_llama_gen_defaults(f.m, &opt);
    opt.max_new_tokens = 16;
    cb_state s = {{32100, 32000, 32001}, 0, 5, 0};
    opt.processor = force_proc;
    opt.processor_user = &s;
    opt.on_token = stop_cb;
    opt.on_token_user = &s;
    sx_llama_ctx_reset(c);
    CHECK_OK(sx_llama_generate(c, emb, f.ids, P, &opt, a, &n2, NULL));
    CHECK(n2 == 5 && s.calls == 5);
    CHECK(a[0] == 32100 && a[1] == 32000 && a[2] == 32001);
    CHECK(sx_llama_ctx_n_past(c) == P + 4);
    /* sx_llama_sample alone: top-k 2 at temperature 1 picks one of the two best */
    float lg[6] = {0.1f, 3.0f, -1.0f, 2.9f, 0.0f, 1.0f};
    uint64_t rng = 1;
    sx_llama_gen_defaults(f.m, &opt);
    opt.temperature = 1.0f;
    opt.top_k = 2;
    int hits[6] = {0};
    for (int i = 0; i < 200; i++) {
        float t[6];
        memcpy(t, lg, sizeof t);
        hits[sx_llama_sample(t, 6, &opt, &rng)]++;
    }
    CHECK(hits[1] + hits[3] == 200 && hits[1] > 50 && hits[3] > 50);
    sx_llama_ctx_free(c);
    free(emb);
    free_mha(&f);
}

static void test_errors(void) {
    mha_fx f;
    if (load_mha(&f) != 0) {
        CHECK(0);
        free_mha(&f);
        return;
    }
    float emb[64 * 10];
    int32_t bad[2] = {5, 32330};
    CHECK(sx_llama_embed(f.m, bad, 2, emb) == -1);
    CHECKF(strstr(sx_errmsg(), "token id 32330") && strstr(sx_errmsg(), "[0, 32330)"), "%s",
           sx_errmsg());
    bad[1] = -1;
    CHECK(sx_llama_embed(f.m, bad, 2, emb) == -1);
    sx_llama_ctx *c;
    CHECK_OK(sx_llama_ctx_new(f.m, 8, SX_F32, &c));
    CHECK_OK(sx_llama_embed(f.m, f.ids, 10, emb));
    CHECK_OK(sx_llama_forward_embeds(c, emb, 6, SX_LLAMA_LOGITS_NONE, NULL, NULL));
    CHECK(sx_llama_forward_embeds(c, emb, 3, SX_LLAMA_LOGITS_NONE, NULL, NULL) == -1);
    CHECKF(strstr(sx_errmsg(), "context overflow") && strstr(sx_errmsg(), "8"), "%s", sx_errmsg());
    CHECK(sx_llama_ctx_n_past(c) == 6); /* unchanged */
    CHECK_OK(sx_llama_forward_embeds(c, emb, 2, SX_LLAMA_LOGITS_NONE, NULL, NULL));
    sx_llama_gen opt;
    sx_llama_gen_defaults(f.m, &opt);
    opt.max_new_tokens = 8;
    int32_t out[8];
    int64_t n;
    sx_llama_ctx_reset(c);
    CHECK(sx_llama_generate(c, emb, f.ids, 4, &opt, out, &n, NULL) == -1);
    CHECKF(strstr(sx_errmsg(), "context overflow"), "%s", sx_errmsg());
    CHECK(sx_llama_forward_embeds(c, emb, 1, SX_LLAMA_LOGITS_ALL, NULL, NULL) == -1);
    sx_llama_ctx *c2 = NULL;
    CHECK(sx_llama_ctx_new(f.m, 8, SX_BF16, &c2) == -1 && !c2);
    CHECKF(strstr(sx_errmsg(), "F32 or F16"), "%s", sx_errmsg());
    sx_llama_ctx_free(c);
    free_mha(&f);

    sx_llama *m = NULL;
    CHECK_OK(sx_llama_load(FX "good_small.gguf", &m));
    sx_llama_free(m);
    CHECK(sx_llama_load(FX "bad_ffn.gguf", &m) == -1 && !m);
    CHECKF(strstr(sx_errmsg(), "mlp.gate_proj.weight") && strstr(sx_errmsg(), "[12,8]") &&
               strstr(sx_errmsg(), "expected [16,8]"),
           "%s", sx_errmsg());
    CHECK(sx_llama_load(FX "bad_kv.gguf", &m) == -1);
    CHECKF(strstr(sx_errmsg(), "k_proj.weight") && strstr(sx_errmsg(), "expected [4,8]"), "%s",
           sx_errmsg());
    CHECK(sx_llama_load(FX "bad_layers.gguf", &m) == -1);
    CHECKF(strstr(sx_errmsg(), "layer 1") && strstr(sx_errmsg(), "seedx.llm.layers = 1"), "%s",
           sx_errmsg());
    CHECK(sx_llama_load(FX "expected_mha.gguf", &m) == -1);
    CHECKF(strstr(sx_errmsg(), "seedx.llm.hidden"), "%s", sx_errmsg());
    CHECK(sx_llama_load(FX "does_not_exist.gguf", &m) == -1);
}

/* Real shape: one 13B decoder layer (5120, 40 heads, FFN 13824), BF16 weights from
 * sx_rand_uniform (scripts/fixtures_llm.py layer13b), 9 tokens as 5 + 4 through the cache. */
static uint16_t *rand_bf16(int64_t N, int64_t K, uint64_t seed) {
    float *t = malloc(sizeof(float) * N * K);
    uint16_t *h = malloc(sizeof(uint16_t) * N * K);
    float a = 1.0f / sqrtf((float)K);
    sx_rand_uniform(t, N * K, seed, -a, a);
    const uint32_t *u = (const uint32_t *)t; /* round to nearest even (finite values) */
    for (int64_t i = 0; i < N * K; i++)
        h[i] = (uint16_t)((u[i] + 0x7FFFu + ((u[i] >> 16) & 1u)) >> 16);
    free(t);
    return h;
}

typedef struct {
    uint16_t **w;
    const int64_t (*shp)[2];
} gen_job;

static void gen_task(void *ctx, int64_t b, int64_t e, int tid) {
    gen_job *j = ctx;
    (void)tid;
    for (int64_t i = b; i < e; i++)
        j->w[i] = rand_bf16(j->shp[i][0], j->shp[i][1], 101 + (uint64_t)i);
}

static sx_weight bf16w(const uint16_t *d, int64_t N, int64_t K) {
    sx_weight w = sx_weight_f32(NULL, N, K);
    w.type = SX_BF16;
    w.data = d;
    return w;
}

static void test_layer13b(void) {
    if (t_skip_emulated("Llama-2-13B-shape decoder layer")) return;
    sx_gguf *e = open_fx(FX "layer13b.gguf");
    if (!e) {
        CHECK(0);
        return;
    }
    const int64_t D = 5120, F = 13824, T = 9;
    const float *ey = sx_get_f32(e, "out", SX_SHAPE(T, D));
    uint16_t *w[7];
    const int64_t shp[7][2] = {{D, D}, {D, D}, {D, D}, {D, D}, {F, D}, {F, D}, {D, F}};
    gen_job gj = {w, shp}; /* one matrix per task: the threads share the generation */
    sx_parallel_for(7, 1, gen_task, &gj);
    float *n1 = malloc(sizeof(float) * D), *n2 = malloc(sizeof(float) * D);
    float *x = malloc(sizeof(float) * T * D), *y = malloc(sizeof(float) * T * D);
    sx_rand_uniform(n1, D, 108, 0.5f, 1.5f);
    sx_rand_uniform(n2, D, 109, 0.5f, 1.5f);
    sx_rand_uniform(x, T * D, 110, -1.0f, 1.0f);
    sx_llama_layer L = {
        n1, bf16w(w[0], D, D), bf16w(w[1], D, D), bf16w(w[2], D, D), bf16w(w[3], D, D),
        n2, bf16w(w[4], F, D), bf16w(w[5], F, D), bf16w(w[6], D, F)};
    sx_llama m;
    memset(&m, 0, sizeof m);
    m.cfg = (sx_llama_config){D, 1, 40, 40, 128, F, 1, 2048, 1e-5f, 10000.0f, 1, 2, 0};
    m.layers = &L;
    sx_llama_ctx *c;
    CHECK_OK(sx_llama_ctx_new(&m, 16, SX_F32, &c));
    CHECK_OK(sx_llama_forward_embeds(c, x, 5, SX_LLAMA_LOGITS_NONE, NULL, y));
    CHECK_OK(sx_llama_forward_embeds(c, x + 5 * D, 4, SX_LLAMA_LOGITS_NONE, NULL, y + 5 * D));
    if (ey) {
        t_err er = t_compare(y, ey, T * D);
        printf("    13B layer, 9 tokens (5 + 4 cached): max-rel %.3g (max abs %.3g, |ref| %.3g)\n",
               er.max_rel, er.max_abs, er.ref_max);
        CHECK_CLOSE("13B decoder layer", y, ey, T * D, 1e-5);
    }
    sx_llama_ctx_free(c);
    for (int i = 0; i < 7; i++) free(w[i]);
    free(n1), free(n2), free(x), free(y);
    sx_gguf_close(e);
}

int main(void) {
    TEST_INIT();
    RUN(test_config);
    RUN(test_mha_prompt);
    RUN(test_mha_splice);
    RUN(test_mha_generate);
    RUN(test_mha_repetition_penalty);
    RUN(test_gqa);
    RUN(test_sampling);
    RUN(test_errors);
    RUN(test_layer13b);
    return TEST_DONE();
}
