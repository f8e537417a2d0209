/* tests/test_drift.c - how far the BF16 compute type moves whole modules,
 * measured against PyTorch 2.0.1 on the same inputs (tests/fixtures/bf16/
 * drift.gguf, scripts/fixtures_bf16.py): PyTorch float32 is the reference;
 * PyTorch's CPU bf16 autocast is the yardstick. For each module:
 *   ours F32  vs torch F32: the exact path, within the parity bound;
 *   ours BF16 vs torch F32: no larger than torch bf16-autocast vs torch F32
 *                           (max-rel and rms-rel), the goal of the issue.
 * Weights are regenerated here with sxrand (F16-rounded, stored as F16 like
 * the converted model files). A case is a name (the fixture prefix) and a
 * function that builds the module with our structs and runs it; add a module
 * by adding a case (and its PyTorch side to scripts/fixtures_bf16.py). */
#include "ops_impl.h"
#include "test.h"

static sx_gguf *FX;

/* parameter `name` of module m, as the fixture script generated it, as F16 bits
 * (matrices) or float32 (vectors); NULL if the fixture does not list it */
static int64_t param_index(const char *m, const char *name, uint64_t *seed) {
    char key[64];
    int64_t s;
    snprintf(key, sizeof key, "%s.seed", m);
    if (sx_meta_int(FX, key, &s) != 0) return -1;
    *seed = (uint64_t)s;
    snprintf(key, sizeof key, "%s.params", m);
    uint64_t n;
    int et;
    if (sx_meta_arr(FX, key, &et, &n) != 0) return -1;
    for (uint64_t i = 0; i < n; i++) {
        const char *str;
        size_t len;
        sx_meta_arr_str(FX, key, i, &str, &len);
        if (len == strlen(name) && !memcmp(str, name, len)) return (int64_t)i;
    }
    fprintf(stderr, "  %s: parameter %s not in the fixture\n", m, name);
    return -1;
}

static float *pvec(const char *m, const char *name, int64_t n) {
    uint64_t seed;
    int64_t j = param_index(m, name, &seed);
    if (j < 0) return NULL;
    int w = strlen(name) >= 6 && !strcmp(name + strlen(name) - 6, "weight");
    float *v = malloc(sizeof(float) * (size_t)n);
    sx_rand_uniform(v, n, seed + (uint64_t)j, w ? 0.8f : -0.1f, w ? 1.2f : 0.1f);
    for (int64_t i = 0; i < n; i++) v[i] = sx_f16_to_f32(sx_f32_to_f16(v[i]));
    return v;
}

/* a [N, K] matrix as F16; the buffers of a case are kept in `keep` */
typedef struct {
    void *p[64];
    int n;
} keep_t;

typedef struct {
    const char *m, *name;
    int64_t N, K;
    uint16_t *out;
    int ok;
} mat_job;

static void mat_task(void *ctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    mat_job *J = ctx;
    for (int64_t i = b; i < e; i++) {
        mat_job *j = &J[i];
        uint64_t seed;
        int64_t idx = param_index(j->m, j->name, &seed);
        if (idx < 0) continue;
        int64_t n = j->N * j->K;
        float *v = malloc(sizeof(float) * (size_t)n);
        float a = (float)(1.0 / sqrt((double)j->K));
        sx_rand_uniform(v, n, seed + (uint64_t)idx, -a, a);
        j->out = malloc(2 * (size_t)n);
        for (int64_t k = 0; k < n; k++) j->out[k] = sx_f32_to_f16(v[k]);
        free(v);
        j->ok = 1;
    }
}

/* generates the listed matrices in parallel (one per task) */
static int gen_mats(mat_job *jobs, int n, keep_t *kp) {
    sx_parallel_for(n, 1, mat_task, jobs);
    int ok = 1;
    for (int i = 0; i < n; i++) {
        ok = ok && jobs[i].ok;
        kp->p[kp->n++] = jobs[i].out;
    }
    return ok;
}

static sx_weight f16w(const mat_job *j) {
    sx_weight w = sx_weight_f32(NULL, j->N, j->K);
    w.type = SX_F16;
    w.data = j->out;
    w.name = j->name;
    return w;
}


static float *vkeep(keep_t *kp, float *v) {
    kp->p[kp->n++] = v;
    return v;
}

static int meta_dims(const char *m, int64_t *d, int n) {
    char key[64];
    snprintf(key, sizeof key, "%s.dims", m);
    for (int i = 0; i < n; i++)
        if (sx_meta_arr_int(FX, key, (uint64_t)i, &d[i]) != 0) return -1;
    return 0;
}

static float *input(const char *m, uint64_t add, int64_t n) {
    char key[64];
    int64_t s = 0;
    snprintf(key, sizeof key, "%s.seed", m);
    sx_meta_int(FX, key, &s);
    float *x = malloc(sizeof(float) * (size_t)n);
    sx_rand_uniform(x, n, (uint64_t)s + add, -1, 1);
    return x;
}

/* a linear layer: the F16 matrix of j and a bias vector */
static sx_linear f16lin(const mat_job *j, keep_t *kp, const char *m, const char *bias, int64_t n) {
    return (sx_linear){f16w(j), bias ? vkeep(kp, pvec(m, bias, n)) : NULL};
}

static sx_norm layernorm(keep_t *kp, const char *m, const char *w, const char *b, int64_t n,
                         float eps) {
    return (sx_norm){.w = vkeep(kp, pvec(m, w, n)), .b = vkeep(kp, pvec(m, b, n)), .dim = n,
                     .eps = eps};
}

/* ---- the modules: each runs twice (F32, then BF16) on the same weights;
 * out receives the full output [T, C] ---- */
typedef struct {
    keep_t kp;
    void *mod;
    float *x, *ctx;
    int64_t d[8];
} built;

/* ViT-bigG block (ref_vit.Block): width, heads, mlp, tokens */
static int vit_build(built *b) {
    int64_t *d = b->d;
    if (meta_dims("vit", d, 4)) return -1;
    int64_t W = d[0], M = d[2], L = d[3];
    mat_job mj[] = {{"vit", "attn.in_proj.weight", 3 * W, W, NULL, 0},
                    {"vit", "attn.out_proj.weight", W, W, NULL, 0},
                    {"vit", "mlp.c_fc.weight", M, W, NULL, 0},
                    {"vit", "mlp.c_proj.weight", W, M, NULL, 0}};
    if (!gen_mats(mj, 4, &b->kp)) return -1;
    sx_vit_block *v = calloc(1, sizeof *v);
    b->mod = v;
    v->ln_1 = layernorm(&b->kp, "vit", "ln_1.weight", "ln_1.bias", W, 1e-6f);
    v->ln_2 = layernorm(&b->kp, "vit", "ln_2.weight", "ln_2.bias", W, 1e-6f);
    v->in_proj = f16lin(&mj[0], &b->kp, "vit", "attn.in_proj.bias", 3 * W);
    v->out_proj = f16lin(&mj[1], &b->kp, "vit", "attn.out_proj.bias", W);
    v->c_fc = f16lin(&mj[2], &b->kp, "vit", "mlp.c_fc.bias", M);
    v->c_proj = f16lin(&mj[3], &b->kp, "vit", "mlp.c_proj.bias", W);
    b->x = input("vit", 1000, L * W);
    return v->ln_1.w && v->ln_1.b && v->ln_2.w && v->ln_2.b && v->in_proj.b && v->out_proj.b &&
                   v->c_fc.b && v->c_proj.b
               ? 0
               : -1;
}

static int vit_run(built *b, float *out) {
    int64_t *d = b->d;
    memcpy(out, b->x, sizeof(float) * (size_t)(d[3] * d[0]));
    sx_arena ws = {0};
    int rc = sx_vit_block_forward(b->mod, (int)d[1], out, 1, d[3], -1, &ws);
    sx_arena_free(&ws);
    return rc;
}

/* Llama-2-13B decoder layer (ref_llm.DecoderLayer), T-token prefill */
static int llama_build(built *b) {
    int64_t *d = b->d;
    if (meta_dims("llama", d, 4)) return -1;
    int64_t D = d[0], F = d[2], T = d[3];
    mat_job mj[] = {{"llama", "self_attn.q_proj.weight", D, D, NULL, 0},
                    {"llama", "self_attn.k_proj.weight", D, D, NULL, 0},
                    {"llama", "self_attn.v_proj.weight", D, D, NULL, 0},
                    {"llama", "self_attn.o_proj.weight", D, D, NULL, 0},
                    {"llama", "mlp.gate_proj.weight", F, D, NULL, 0},
                    {"llama", "mlp.up_proj.weight", F, D, NULL, 0},
                    {"llama", "mlp.down_proj.weight", D, F, NULL, 0}};
    if (!gen_mats(mj, 7, &b->kp)) return -1;
    sx_llama_layer *L = calloc(1, sizeof *L);
    sx_llama *m = calloc(1, sizeof *m);
    b->kp.p[b->kp.n++] = L;
    b->mod = m;
    L->attn_norm = vkeep(&b->kp, pvec("llama", "input_layernorm.weight", D));
    L->ffn_norm = vkeep(&b->kp, pvec("llama", "post_attention_layernorm.weight", D));
    L->wq = f16w(&mj[0]), L->wk = f16w(&mj[1]), L->wv = f16w(&mj[2]), L->wo = f16w(&mj[3]);
    L->gate = f16w(&mj[4]), L->up = f16w(&mj[5]), L->down = f16w(&mj[6]);
    m->cfg = (sx_llama_config){.hidden = D, .n_layers = 1, .n_heads = d[1],
                               .n_kv_heads = d[1], .head_dim = D / d[1], .ffn = F, .vocab = 1,
                               .max_pos = 2048, .rms_eps = 1e-5f, .rope_theta = 10000.0f,
                               .bos_id = 1, .eos_id = 2, .pad_id = 0};
    m->layers = L;
    b->x = input("llama", 1000, T * D);
    return L->attn_norm && L->ffn_norm ? 0 : -1;
}

static int llama_run(built *b, float *out) {
    sx_llama_ctx *c;
    if (sx_llama_ctx_new(b->mod, b->d[3], SX_F32, &c) != 0) return -1;
    int rc = sx_llama_forward_embeds(c, b->x, b->d[3], SX_LLAMA_LOGITS_NONE, NULL, out);
    sx_llama_ctx_free(c);
    return rc;
}

/* SDXL BasicTransformerBlock (diffusers 0.25), 1280 channels, Tc context tokens */
static int unet_build(built *b) {
    int64_t *d = b->d;
    if (meta_dims("unet", d, 5)) return -1;
    int64_t C = d[0], Cc = d[2], T = d[3], Tc = d[4], F = 4 * C;
    mat_job mj[] = {{"unet", "attn1.to_q.weight", C, C, NULL, 0},
                    {"unet", "attn1.to_k.weight", C, C, NULL, 0},
                    {"unet", "attn1.to_v.weight", C, C, NULL, 0},
                    {"unet", "attn1.to_out.0.weight", C, C, NULL, 0},
                    {"unet", "attn2.to_q.weight", C, C, NULL, 0},
                    {"unet", "attn2.to_k.weight", C, Cc, NULL, 0},
                    {"unet", "attn2.to_v.weight", C, Cc, NULL, 0},
                    {"unet", "attn2.to_out.0.weight", C, C, NULL, 0},
                    {"unet", "ff.net.0.proj.weight", 2 * F, C, NULL, 0},
                    {"unet", "ff.net.2.weight", C, F, NULL, 0}};
    if (!gen_mats(mj, 10, &b->kp)) return -1;
    sx_unet_tblock *u = calloc(1, sizeof *u);
    b->mod = u;
    u->norm1 = layernorm(&b->kp, "unet", "norm1.weight", "norm1.bias", C, 1e-5f);
    u->norm2 = layernorm(&b->kp, "unet", "norm2.weight", "norm2.bias", C, 1e-5f);
    u->norm3 = layernorm(&b->kp, "unet", "norm3.weight", "norm3.bias", C, 1e-5f);
    u->attn1.q = f16lin(&mj[0], &b->kp, "unet", NULL, 0);
    u->attn1.k = f16lin(&mj[1], &b->kp, "unet", NULL, 0);
    u->attn1.v = f16lin(&mj[2], &b->kp, "unet", NULL, 0);
    u->attn1.o = f16lin(&mj[3], &b->kp, "unet", "attn1.to_out.0.bias", C);
    u->attn2.q = f16lin(&mj[4], &b->kp, "unet", NULL, 0);
    u->attn2.k = f16lin(&mj[5], &b->kp, "unet", NULL, 0);
    u->attn2.v = f16lin(&mj[6], &b->kp, "unet", NULL, 0);
    u->attn2.o = f16lin(&mj[7], &b->kp, "unet", "attn2.to_out.0.bias", C);
    u->ff_proj = f16lin(&mj[8], &b->kp, "unet", "ff.net.0.proj.bias", 2 * F);
    u->ff_out = f16lin(&mj[9], &b->kp, "unet", "ff.net.2.bias", C);
    b->x = input("unet", 1000, T * C);
    b->ctx = input("unet", 1001, Tc * Cc);
    if (sx_mha_init(&u->attn1, (int)d[1]) || sx_mha_init(&u->attn2, (int)d[1])) return -1;
    return u->norm1.w && u->norm3.b && u->attn1.o.b && u->attn2.o.b && u->ff_proj.b && u->ff_out.b
               ? 0
               : -1;
}

static int unet_run(built *b, float *out) {
    int64_t C = b->d[0], T = b->d[3];
    memcpy(out, b->x, sizeof(float) * (size_t)(T * C));
    sx_arena ws = {0};
    int rc = sx_unet_tblock_forward(b->mod, out, T, b->ctx, b->d[4], &ws);
    sx_arena_free(&ws);
    return rc;
}

typedef struct {
    const char *m; /* fixture prefix */
    const char *what;
    int (*build)(built *);
    int (*run)(built *, float *out);
    int dim_t, dim_c; /* which dims are the tokens and the channels */
    double tol_f32;   /* ours F32 vs torch F32 (max-rel) */
} drift_case;

static const drift_case cases[] = {
    {"vit", "ViT-bigG block, 1024 tokens", vit_build, vit_run, 3, 0, 2e-5},
    {"llama", "Llama-2-13B layer, 64-token prefill", llama_build, llama_run, 3, 0, 2e-5},
    {"unet", "SDXL transformer block 1280ch, 1024 tokens", unet_build, unet_run, 3, 0, 1e-4},
};

typedef struct {
    double max_rel, rms_rel;
} errs;

static errs err_of(const float *got, const float *ref, int64_t n) {
    double mx = 0, md = 0, sd = 0, sr = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= md)) md = d; /* NaN propagates */
        if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
        sd += d * d;
        sr += (double)ref[i] * ref[i];
    }
    errs e = {mx > 0 ? md / mx : md, sr > 0 ? sqrt(sd / sr) : sqrt(sd)};
    return e;
}

static void run_case(const drift_case *dc) {
    if (t_skip_emulated("a real-shape module, F32 and BF16")) return;
    built b;
    memset(&b, 0, sizeof b);
    CHECKF(dc->build(&b) == 0, "%s: building the module", dc->m);
    int64_t T = b.d[dc->dim_t], C = b.d[dc->dim_c];
    char key[64], rkey[64];
    uint64_t nr = 0;
    int et;
    snprintf(rkey, sizeof rkey, "%s.rows", dc->m);
    CHECK_OK(sx_meta_arr(FX, rkey, &et, &nr));
    snprintf(key, sizeof key, "%s.y_f32", dc->m);
    const float *t32 = sx_get_f32(FX, key, SX_SHAPE((int64_t)nr, C));
    snprintf(key, sizeof key, "%s.y_bf16", dc->m);
    const float *t16 = sx_get_f32(FX, key, SX_SHAPE((int64_t)nr, C));
    float *out = malloc(sizeof(float) * (size_t)(T * C));
    float *o32 = malloc(sizeof(float) * nr * C), *o16 = malloc(sizeof(float) * nr * C);
    if (t32 && t16 && b.mod) {
        for (int pass = 0; pass < 2; pass++) {
            sx_set_compute(pass ? SX_COMPUTE_BF16 : SX_COMPUTE_F32);
            CHECK_OK(dc->run(&b, out));
            for (uint64_t r = 0; r < nr; r++) {
                int64_t row;
                sx_meta_arr_int(FX, rkey, r, &row);
                memcpy((pass ? o16 : o32) + r * C, out + row * C, sizeof(float) * (size_t)C);
            }
        }
        sx_set_compute(SX_COMPUTE_F32);
        errs e32 = err_of(o32, t32, (int64_t)nr * C), e16 = err_of(o16, t32, (int64_t)nr * C);
        errs et = err_of(t16, t32, (int64_t)nr * C);
        printf("    %-44s vs torch F32: ours F32 %.2g | ours BF16 %.3g (rms %.3g) | torch bf16 autocast "
               "%.3g (rms %.3g)\n",
               dc->what, e32.max_rel, e16.max_rel, e16.rms_rel, et.max_rel, et.rms_rel);
        CHECKF(e32.max_rel <= dc->tol_f32, "%s F32: max-rel %.3g > %.3g", dc->m, e32.max_rel, dc->tol_f32);
        CHECKF(e16.max_rel <= et.max_rel, "%s BF16: max-rel %.3g > torch autocast's %.3g", dc->m,
               e16.max_rel, et.max_rel);
        CHECKF(e16.rms_rel <= et.rms_rel, "%s BF16: rms-rel %.3g > torch autocast's %.3g", dc->m,
               e16.rms_rel, et.rms_rel);
        /* and it did round: not the F32 result */
        CHECKF(e16.rms_rel > 4 * e32.rms_rel, "%s BF16: rms-rel %.3g hardly above F32's %.3g", dc->m,
               e16.rms_rel, e32.rms_rel);
    } else {
        CHECKF(0, "%s: fixture outputs missing", dc->m);
    }
    free(out), free(o32), free(o16), free(b.x), free(b.ctx), free(b.mod);
    for (int i = 0; i < b.kp.n; i++) free(b.kp.p[i]);
}

static void test_vit_block(void) { run_case(&cases[0]); }
static void test_llama_layer(void) { run_case(&cases[1]); }
static void test_unet_tblock(void) { run_case(&cases[2]); }

int main(void) {
    TEST_INIT();
    if (sx_gguf_open("tests/fixtures/bf16/drift.gguf", &FX) != 0) {
        fprintf(stderr, "drift fixture: %s\n", sx_errmsg());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    printf("bf16 kernel: %s\n", sx_bf16_kernels_cur()->name);
    RUN(test_vit_block);
    RUN(test_llama_layer);
    RUN(test_unet_tblock);
    sx_gguf_close(FX);
    return TEST_DONE();
}
