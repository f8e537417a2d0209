/* tests/test_seedx_e2e.c - SEED-X end to end on the tiny model of
 * scripts/make_tiny_seedx.py (official on-disk layout, converted by
 * scripts/convert.py), against the PyTorch reference pipeline
 * scripts/ref_seedx.py that follows the official inference scripts.
 * Fixtures: tests/fixtures/seedx_e2e/ (see its README.md). */
#include "test.h"
#include "sampler.h"

#define DIR_ "tests/fixtures/seedx_e2e/"
static sx_seedx *M;

/* The BF16 compute pass (test_bf16_path) reruns the modes with these bounds:
 * features within feat_tol (max-rel) of the reference, images compared with
 * the F32 pass's images (kept in f32_img) instead of the reference. */
static double feat_tol = 1e-4;
static int bf16_pass, ids_must_match = 1;
#define BF16_FEAT_TOL 2e-2
/* |BF16 - F32| of the 8-bit 64x64 images after 4 Euler steps: measured max
 * 7-9 levels, mean 0.85-1.16 (AVX512_BF16, tiny model) */
#define BF16_LEVELS 12
#define BF16_MEAN_LEVELS 1.5
static struct {
    const char *mode;
    uint8_t px[64 * 64 * 3];
} f32_img[8];
static int n_f32_img, bf16_maxd;
static const char *cur_mode;

typedef struct {
    sx_gguf *g;
} fx;

static int fx_open(fx *f, const char *mode) {
    char p[256];
    snprintf(p, sizeof p, DIR_ "%s.gguf", mode);
    if (sx_gguf_open(p, &f->g)) {
        fprintf(stderr, "  %s\n", sx_errmsg());
        return -1;
    }
    return 0;
}

static const float *T(fx *f, const char *name, int64_t *n) {
    const sx_tensor *t = sx_gguf_find(f->g, name);
    if (!t) {
        fprintf(stderr, "  fixture tensor '%s' missing\n", name);
        return NULL;
    }
    if (n) *n = t->nelem;
    return sx_get_f32(f->g, name, t->ndim, t->shape);
}

static int64_t MI(fx *f, const char *key) {
    char k[128];
    snprintf(k, sizeof k, "seedx.e2e.%s", key);
    int64_t v = -1;
    sx_meta_int(f->g, k, &v);
    return v;
}

static const char *MS(fx *f, const char *key) {
    char k[128];
    snprintf(k, sizeof k, "seedx.e2e.%s", key);
    const char *s = NULL;
    size_t n;
    if (sx_meta_str(f->g, k, &s, &n)) return "";
    return s;
}

static int *MA(fx *f, const char *key, int64_t *n) {
    char k[128];
    snprintf(k, sizeof k, "seedx.e2e.%s", key);
    int et;
    uint64_t c;
    if (sx_meta_arr(f->g, k, &et, &c)) return NULL;
    int *v = malloc(sizeof(int) * (c ? c : 1));
    for (uint64_t i = 0; i < c; i++) {
        int64_t x;
        sx_meta_arr_int(f->g, k, i, &x);
        v[i] = (int)x;
    }
    *n = (int64_t)c;
    return v;
}

/* image features -> LLM turn, checked against the reference; returns the
 * reply (0; 2: in the BF16 pass, ids not checked further; free it too) */
static int run_llm_mode(fx *f, const char *grids, sx_seedx_reply *r) {
    const char *imname = MS(f, "image");
    sx_image im;
    memset(&im, 0, sizeof im);
    float *feats = NULL;
    int64_t rows = 0;
    int tiles[1] = {0};
    int nimg = 0;
    if (imname[0]) {
        char p[256];
        snprintf(p, sizeof p, DIR_ "%s", imname);
        CHECK_OK(sx_image_load_rgb(p, &im));
        nimg = 1;
        CHECK_OK(sx_seedx_encode_images(M, &im, 1, grids, &feats, &rows, tiles));
        /* expected: input_resampler + rel_pos, per tile */
        int64_t ne;
        const float *ir = T(f, "input_resampler", &ne), *rp = T(f, "rel_pos", NULL);
        const sx_tensor *it = sx_gguf_find(f->g, "input_resampler");
        int64_t D = it ? it->shape[2] : 0, Q = it ? it->shape[1] : 0;
        CHECK(D > 0 && ne == rows * D);
        if (D > 0 && ne == rows * D && ir && rp) {
            float *exp = malloc(sizeof(float) * ne);
            for (int64_t i = 0; i < ne; i++) exp[i] = ir[i] + rp[(i / (Q * D)) * D + i % D];
            CHECK_CLOSE("image_embeds_lm", feats, exp, ne, feat_tol);
            free(exp);
        }
    }
    int64_t np;
    int *pids = MA(f, "prompt_ids", &np);
    sx_seedx_opts o;
    sx_seedx_opts_default(&o);
    o.max_new_tokens = MI(f, "max_new_tokens");
    int rc = sx_seedx_generate(M, pids, np, feats, rows, &o, r);
    CHECK_OK(rc);
    if (rc == 0 && bf16_pass) { /* greedy ids: asserted only where no near-tie can flip */
        int64_t ng, i = 0;
        int *gen = MA(f, "gen_ids", &ng);
        while (i < ng && i < r->n_ids && r->ids[i] == gen[i]) i++;
        int same = i == ng && r->n_ids == ng;
        printf("    %-10s BF16 greedy ids %s (%s)\n", cur_mode,
               same ? "unchanged" : "differ", ids_must_match ? "asserted" : "near-ties: not asserted");
        if (ids_must_match) CHECKF(same, "%s: BF16 ids differ from step %lld", cur_mode, (long long)i);
        free(gen);
        if (!same || !ids_must_match) rc = 2; /* the text, boxes and features follow the ids */
    }
    if (rc == 0) {
        int64_t ng;
        int *gen = MA(f, "gen_ids", &ng);
        int same = r->n_ids == ng;
        for (int64_t i = 0; same && i < ng; i++) same = r->ids[i] == gen[i];
        CHECKF(same, "generated ids differ from transformers' greedy generate (%lld vs %lld ids)",
               (long long)r->n_ids, (long long)ng);
        CHECKF(!strcmp(r->text, MS(f, "text_raw")), "text_raw:\n  got '%s'\n  exp '%s'", r->text,
               MS(f, "text_raw"));
        CHECKF(!strcmp(r->clean, MS(f, "text")), "text:\n  got '%s'\n  exp '%s'", r->clean,
               MS(f, "text"));
        int has = 0;
        sx_meta_int(f->g, "seedx.e2e.has_img_output", &(int64_t){0});
        int64_t hv = 0;
        sx_meta_int(f->g, "seedx.e2e.has_img_output", &hv);
        has = (int)hv;
        CHECK((r->n_images > 0) == has);
        if (r->n_images && T(f, "img_gen_feat", NULL))
            CHECK_CLOSE("img_gen_feat", r->img_gen_feat, T(f, "img_gen_feat", NULL),
                        r->feat_tokens * r->feat_dim, feat_tol);
        free(gen);
    }
    free(pids);
    free(feats);
    sx_image_free(&im);
    (void)nimg;
    return rc;
}

static void check_image(fx *f, const sx_image *im) {
    int64_t n;
    const float *u8 = T(f, "image_u8", &n);
    CHECK(im->w == 64 && im->h == 64 && n == 64 * 64 * 3);
    if (!u8 || n != (int64_t)im->w * im->h * 3) return;
    if (bf16_pass) { /* against the F32 pass's image of the same mode */
        for (int i = 0; i < n_f32_img; i++) {
            if (strcmp(f32_img[i].mode, cur_mode)) continue;
            int maxd = 0;
            double sum = 0;
            for (int64_t k = 0; k < n; k++) {
                int d = abs((int)im->data[k] - (int)f32_img[i].px[k]);
                if (d > maxd) maxd = d;
                sum += d;
            }
            printf("    %s: BF16 image vs F32 image: max %d level(s), mean %.2f\n", cur_mode, maxd,
                   sum / (double)n);
            CHECKF(sum / (double)n <= BF16_MEAN_LEVELS, "%s: mean difference %.2f levels", cur_mode,
                   sum / (double)n);
            if (maxd > bf16_maxd) bf16_maxd = maxd;
            CHECKF(maxd <= BF16_LEVELS, "%s: BF16 image differs from F32's by %d levels", cur_mode, maxd);
            return;
        }
        CHECKF(0, "%s: no F32 image to compare with", cur_mode);
        return;
    }
    if (n_f32_img < 8) {
        f32_img[n_f32_img].mode = cur_mode;
        memcpy(f32_img[n_f32_img++].px, im->data, (size_t)n);
    }
    int maxd = 0;
    for (int64_t i = 0; i < n; i++) {
        int d = abs((int)im->data[i] - (int)u8[i]);
        if (d > maxd) maxd = d;
    }
    if (getenv("SEEDX_TEST_VERBOSE")) printf("    image_u8 max diff %d level(s)\n", maxd);
    CHECKF(maxd <= 1, "decoded image differs from diffusers' by %d levels", maxd);
}

static void decode_opts(fx *f, sx_seedx_opts *o) {
    sx_seedx_opts_default(o);
    o->width = o->height = (int)MI(f, "size");
    o->steps = (int)MI(f, "steps");
    o->seed = (uint64_t)MI(f, "noise_seed");
    o->rng = SX_RNG_TORCH_CPU;
}

static void cmp_mode(const char *mode) {
    fx f;
    cur_mode = mode;
    if (fx_open(&f, mode)) {
        CHECK(0);
        return;
    }
    sx_seedx_reply r;
    int rc = run_llm_mode(&f, NULL, &r);
    if (rc == 0 || rc == 2) sx_seedx_reply_free(&r);
    sx_gguf_close(f.g);
}

static void test_comprehension_1x1(void) { cmp_mode("cmp_1x1"); }
static void test_comprehension_2x1(void) { cmp_mode("cmp_2x1"); }
static void test_comprehension_2x2(void) { cmp_mode("cmp_2x2"); }
static void test_text_to_image_text_only(void) { cmp_mode("t2i"); }

static void test_grounding(void) {
    fx f;
    cur_mode = "ground";
    if (fx_open(&f, "ground")) {
        CHECK(0);
        return;
    }
    sx_seedx_reply r;
    int rc = run_llm_mode(&f, NULL, &r);
    if (rc == 2) sx_seedx_reply_free(&r);
    if (rc == 0) {
        int64_t nl, nv;
        int *lens = MA(&f, "box_lengths", &nl), *vals = MA(&f, "boxes", &nv);
        CHECKF(r.n_boxes == MI(&f, "n_boxes"), "%d boxes, expected %lld", r.n_boxes,
               (long long)MI(&f, "n_boxes"));
        int64_t vi = 0;
        for (int b = 0; b < r.n_boxes && b < nl; b++) {
            CHECK(r.box_counts[b] == lens[b]);
            for (int k = 0; k < lens[b] && k < 4 && vi < nv; k++, vi++) CHECK(r.boxes[b][k] == vals[vi]);
        }
        free(lens);
        free(vals);
        sx_seedx_reply_free(&r);
    }
    sx_gguf_close(f.g);
}

/* image features -> de-tokenizer, UNet, VAE -> the image, checked */
static void decode_and_check(fx *f, const float *feat, int stage2) {
    sx_seedx_opts o;
    decode_opts(f, &o);
    sx_image cond, out;
    memset(&cond, 0, sizeof cond);
    char p[256];
    snprintf(p, sizeof p, DIR_ "%s", MS(f, "image"));
    if (stage2) CHECK_OK(sx_image_load_rgb(p, &cond));
    int rc = feat ? sx_seedx_decode_generated(M, feat, stage2, stage2 ? &cond : NULL, &o, &out) : -1;
    CHECK_OK(rc);
    if (rc == 0) {
        check_image(f, &out);
        sx_image_free(&out);
    }
    sx_image_free(&cond);
}

static void gen_and_decode(const char *mode, int stage2) {
    fx f;
    cur_mode = mode;
    if (fx_open(&f, mode)) {
        CHECK(0);
        return;
    }
    sx_seedx_reply r;
    if (run_llm_mode(&f, stage2 ? "1x1" : NULL, &r) == 0) {
        CHECK(r.n_images == 1);
        if (r.n_images == 1) {
            /* the injected noise is torch.randn on a CPU generator: ours must match */
            float noise[256];
            CHECK_OK(sx_randn(noise, 256, (uint64_t)MI(&f, "noise_seed"), SX_RNG_TORCH_CPU));
            CHECK_CLOSE("noise (torch-cpu randn)", noise, T(&f, "noise", NULL), 256, 0);
            decode_and_check(&f, r.img_gen_feat, stage2);
        }
        sx_seedx_reply_free(&r);
    }
    sx_gguf_close(f.g);
}

static void test_text_to_image_forced(void) { gen_and_decode("t2i_forced", 0); }

/* BF16 pass: the de-tokenizer, UNet and VAE on the reference's image
 * features (whatever the LLM's ids did), against the F32 pass's image */
static void decode_reference_features(const char *mode, int stage2) {
    fx f;
    cur_mode = mode;
    if (fx_open(&f, mode)) {
        CHECK(0);
        return;
    }
    decode_and_check(&f, T(&f, "img_gen_feat", NULL), stage2);
    sx_gguf_close(f.g);
}

static void test_editing(void) { gen_and_decode("edit", 1); }

static void recon(const char *mode, int with_cond) {
    fx f;
    cur_mode = mode;
    if (fx_open(&f, mode)) {
        CHECK(0);
        return;
    }
    sx_seedx_opts o;
    decode_opts(&f, &o);
    sx_image im, out;
    char p[256];
    snprintf(p, sizeof p, DIR_ "%s", MS(&f, "image")[0] ? MS(&f, "image") : "img_a.png");
    CHECK_OK(sx_image_load_rgb(p, &im));
    sx_image cond;
    memset(&cond, 0, sizeof cond);
    if (with_cond) {
        snprintf(p, sizeof p, DIR_ "%s", MS(&f, "condition")[0] ? MS(&f, "condition") : "img_a.png");
        CHECK_OK(sx_image_load_rgb(p, &cond));
    }
    int rc = sx_seedx_reconstruct(M, &im, with_cond ? &cond : NULL, &o, &out);
    CHECK_OK(rc);
    if (rc == 0) {
        check_image(&f, &out);
        sx_image_free(&out);
    }
    sx_image_free(&im);
    sx_image_free(&cond);
    sx_gguf_close(f.g);
}

static void test_reconstruction(void) { recon("recon", 0); }
static void test_reconstruction_with_condition(void) { recon("recon_cond", 1); }

/* Largest |logit change| BF16 compute makes at the last prompt position of
 * a mode (the LLM alone, on the reference's spliced input embeddings),
 * over the ids of prompt_logits_sub. */
static double llm_logit_drift(const char *mode) {
    fx f;
    if (fx_open(&f, mode)) return -1;
    int64_t ne, nl;
    const float *emb = T(&f, "embeds", &ne), *ref = T(&f, "prompt_logits_sub", &nl);
    double worst = -1;
    sx_llama *lm[2] = {NULL, NULL};
    float *lg[2] = {NULL, NULL};
    for (int pass = 0; pass < 2 && emb && ref; pass++) {
        sx_set_compute(pass ? SX_COMPUTE_BF16 : SX_COMPUTE_F32);
        sx_llama_ctx *c = NULL;
        if (sx_llama_load(DIR_ "model/llm.gguf", &lm[pass]) || sx_llama_ctx_new(lm[pass], 0, SX_F32, &c))
            break;
        int64_t D = lm[pass]->cfg.hidden, V = lm[pass]->cfg.vocab;
        lg[pass] = malloc(sizeof(float) * (size_t)V);
        if (sx_llama_forward_embeds(c, emb, ne / D, SX_LLAMA_LOGITS_LAST, lg[pass], NULL) == 0 && pass) {
            worst = 0;
            for (int64_t i = 0; i < nl && i * 8 < V; i++) {
                double d = fabs((double)lg[1][i * 8] - lg[0][i * 8]);
                if (d > worst) worst = d;
            }
        }
        sx_llama_ctx_free(c);
    }
    sx_set_compute(SX_COMPUTE_F32);
    for (int i = 0; i < 2; i++) sx_llama_free(lm[i]), free(lg[i]);
    sx_gguf_close(f.g);
    return worst;
}

/* The BF16 compute type end to end: the model loaded again with BF16
 * compute (every matrix packed at load), the same modes: the greedy ids and
 * texts of every comprehension, grounding and generation mode unchanged,
 * the LLM/resampler features within BF16_FEAT_TOL of the reference, and the
 * generated and reconstructed images within BF16_LEVELS of the F32 pass. */
static void test_bf16_path(void) {
    /* the tiny random LLM has near-ties: its smallest top-1/top-2 logit gap
     * over a greedy run goes down to 5e-4, while BF16 moves its logits by
     * ~1e-2 (measured here on the reference's input embeddings); a mode's
     * ids are asserted unchanged where the gap exceeds twice that change */
    const char *modes[] = {"cmp_1x1", "cmp_2x1", "cmp_2x2", "t2i", "ground", "t2i_forced", "edit"};
    int strict[7], n_strict = 0;
    for (int i = 0; i < 7; i++) {
        fx f;
        double mg = -1, dr = llm_logit_drift(modes[i]);
        if (fx_open(&f, modes[i]) == 0) {
            sx_meta_float(f.g, "seedx.e2e.min_margin", &mg);
            sx_gguf_close(f.g);
        }
        CHECKF(dr > 0 && dr < 0.1, "%s: BF16 logit change %.3g", modes[i], dr);
        strict[i] = mg > 2 * dr;
        n_strict += strict[i];
        printf("    %-10s smallest top-2 gap of the greedy steps %.2g, BF16 logit change %.2g\n",
               modes[i], mg, dr);
    }
    CHECK(n_strict >= 1);
    sx_seedx *m32 = M;
    CHECK_OK(sx_set_compute(SX_COMPUTE_BF16));
    if (sx_seedx_open(DIR_ "model", &M) != 0) {
        CHECK_OK(-1);
        M = m32;
        sx_set_compute(SX_COMPUTE_F32);
        return;
    }
    feat_tol = BF16_FEAT_TOL;
    bf16_pass = 1;
    for (int i = 0; i < 7; i++) {
        ids_must_match = strict[i];
        if (!strcmp(modes[i], "ground")) test_grounding();
        else cmp_mode(modes[i]);
    }
    ids_must_match = 1;
    decode_reference_features("t2i_forced", 0);
    decode_reference_features("edit", 1);
    recon("recon", 0);
    recon("recon_cond", 1);
    printf("    BF16 images: at most %d level(s) from the F32 images (bound %d)\n", bf16_maxd,
           BF16_LEVELS);
    CHECK(n_f32_img == 4);
    sx_seedx_free(M);
    M = m32;
    feat_tol = 1e-4;
    bf16_pass = 0;
    CHECK_OK(sx_set_compute(SX_COMPUTE_F32));
}

static void test_bad_inputs(void) {
    sx_seedx *m = NULL;
    CHECK(sx_seedx_open("tests/fixtures/no_such_model", &m) != 0);
    CHECK(strstr(sx_errmsg(), "no_such_model") != NULL);
    CHECK(sx_seedx_open("tests/fixtures/vit", &m) != 0); /* no tokenizer.gguf */
    CHECK(strstr(sx_errmsg(), "tokenizer.gguf") != NULL);
    /* image features that do not match the prompt's image positions */
    int ids[3] = {1, 32100, 32101};
    float feat[32] = {0};
    sx_seedx_reply r;
    sx_seedx_opts o;
    sx_seedx_opts_default(&o);
    o.max_new_tokens = 2;
    CHECK(sx_seedx_generate(M, ids, 3, feat, 1, &o, &r) != 0);
    CHECK(strstr(sx_errmsg(), "image") != NULL);
    /* prompt + new tokens beyond the context */
    o.max_new_tokens = 100000;
    CHECK(sx_seedx_generate(M, ids, 1, NULL, 0, &o, &r) != 0);
    CHECK(strstr(sx_errmsg(), "context") != NULL);
    /* output size not a multiple of 8 */
    sx_seedx_opts_default(&o);
    o.width = 60;
    sx_image im;
    float pos[64 * 128] = {0};
    CHECK(sx_seedx_detokenize(M, pos, 64, pos, 64, 0, NULL, &o, &im) != 0);
    CHECK(strstr(sx_errmsg(), "multiples of 8") != NULL);
}

/* The CLI: a wrong variant, an unwritable output and a missing image all
 * fail with a message and leave no file behind. */
/* The official prompt templates rebuild exactly the prompts the reference
 * pipeline tokenized (SEED-X-I question, base detection, base T2I, edit). */
static void check_template(const char *mode, const char *tmpl, const char *text_key, int grid_tiles) {
    fx f;
    if (fx_open(&f, mode)) {
        CHECK(0);
        return;
    }
    int tiles[1] = {grid_tiles};
    int *ids = NULL;
    int64_t n = 0, ne = 0;
    const char *t = sx_seedx_template(tmpl) ? sx_seedx_template(tmpl) : tmpl;
    CHECK_OK(sx_seedx_build_prompt_t(M, t, MS(&f, text_key), tiles,
                                     grid_tiles ? 1 : 0, &ids, &n));
    int *exp = MA(&f, "prompt_ids", &ne);
    int same = ids && exp && n == ne;
    for (int64_t i = 0; same && i < n; i++) same = ids[i] == exp[i];
    CHECKF(same, "%s: template %s gives %lld ids, the reference prompt has %lld", mode, tmpl,
           (long long)n, (long long)ne);
    free(ids);
    free(exp);
    sx_gguf_close(f.g);
}

static void test_prompt_templates(void) {
    check_template("cmp_1x1", "seed-x-i", "question", 2);
    check_template("cmp_2x2", "seed-x-i", "question", 5);
    check_template("ground", "seed-x-detect", "caption", 2);
    check_template("t2i_forced", "seed-x-t2i", "caption", 0);
    /* the edit fixture forces the image by ending the prompt string with <img> */
    check_template("edit", "[INST] {IMG}{TEXT} [/INST]\n<img>", "instruction", 2);
    CHECK(sx_seedx_template("nonsense") == NULL);
    int *ids;
    int64_t n;
    int tiles[1] = {2};
    CHECK(sx_seedx_build_prompt_t(M, "no text here", "x", tiles, 1, &ids, &n) != 0);
    CHECK(sx_seedx_build_prompt_t(M, "{TEXT} only", "x", tiles, 1, &ids, &n) != 0);
}

/* edit with a model that has no stage-2 de-tokenizer: a clear error */
static void test_wrong_variant(void) {
    char dir[] = "/tmp/seedx_novariant_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    const char *files[] = {"tokenizer.gguf", "vit.gguf", "agent.gguf", "llm.gguf", "detokenizer.gguf",
                           "unet.gguf", "vae.gguf"};
    char cmd[1024];
    for (int i = 0; i < 7; i++) {
        snprintf(cmd, sizeof cmd, "ln -s \"$PWD/" DIR_ "model/%s\" %s/%s", files[i], dir, files[i]);
        CHECK(system(cmd) == 0);
    }
    snprintf(cmd, sizeof cmd,
             "./seedx edit -m %s --image " DIR_ "img_a.png -p x -o %s/out.png > /dev/null 2> %s/err.txt",
             dir, dir, dir);
    CHECK(system(cmd) != 0);
    snprintf(cmd, sizeof cmd, "grep -q 'not a SEED-X-Edit model' %s/err.txt", dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "test ! -e %s/out.png", dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* --compute: both types run a SEED-X mode from the command line; a wrong
 * name is refused */
static void test_cli_compute(void) {
    const char *modes[] = {"f32", "bf16"};
    for (int i = 0; i < 2; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "./seedx --compute %s reconstruct -m " DIR_ "model --image " DIR_ "img_a.png "
                 "-o /tmp/seedx_compute_%s.png --size 64x64 --steps 1 > /dev/null 2>&1 && "
                 "test -s /tmp/seedx_compute_%s.png && rm /tmp/seedx_compute_%s.png",
                 modes[i], modes[i], modes[i], modes[i]);
        CHECKF(system(cmd) == 0, "%s", cmd);
    }
    CHECK(system("./seedx --compute fp8 version > /dev/null 2>&1") != 0);
    CHECK(system("./seedx version | grep -q '^compute: '") == 0);
}

static void test_cli_errors(void) {
    int rc = system("./seedx edit -m tests/fixtures/seedx_e2e/model --image tests/fixtures/seedx_e2e/img_a.png "
                    "-p x -o /nonexistent_dir/out.png --size 64x64 --steps 1 --force-image -n 70 "
                    "> /dev/null 2> /tmp/seedx_e2e_err.txt");
    CHECK(rc != 0);
    rc = system("./seedx reconstruct -m tests/fixtures/seedx_e2e/model --image /no/such.png -o /tmp/x_never.png "
                "> /dev/null 2>&1");
    CHECK(rc != 0);
    FILE *fp = fopen("/tmp/x_never.png", "rb");
    CHECK(fp == NULL);
    if (fp) fclose(fp);
    rc = system("./seedx generate -m tests/fixtures/seedx_e2e/model -p 'a cat' -o /tmp/seedx_gen_never.png "
                "--size 64x64 --steps 1 -n 5 > /dev/null 2>&1");
    CHECK(rc != 0); /* the random model answers with text only */
    fp = fopen("/tmp/seedx_gen_never.png", "rb");
    CHECK(fp == NULL);
    if (fp) fclose(fp);
}

/* Multi-turn chat (issue #19): the conversation API builds every turn's
 * prompt exactly as SEED-X's decode_llava_data does (per-piece tokenization,
 * "\n" turn separator, BOS once), the answers of each turn equal
 * transformers' greedy generate on those ids, and a failed turn rewinds. */
static int same_ids(const int *a, int64_t na, const int *b, int64_t nb, const char *what, int k) {
    int64_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    if (i == na && na == nb) return 1;
    fprintf(stderr, "  %s turn %d: %lld vs %lld ids, first difference at %lld (%d vs %d)\n", what, k,
            (long long)na, (long long)nb, (long long)i, i < na ? a[i] : -1, i < nb ? b[i] : -1);
    return 0;
}

static void chat_mode(const char *mode) {
    fx f;
    if (fx_open(&f, mode)) {
        CHECK(0);
        return;
    }
    char p[256];
    snprintf(p, sizeof p, DIR_ "%s", MS(&f, "image"));
    sx_image im;
    float *feats = NULL;
    int64_t rows = 0;
    int tiles[1];
    CHECK_OK(sx_image_load_rgb(p, &im));
    CHECK_OK(sx_seedx_encode_images(M, &im, 1, NULL, &feats, &rows, tiles));
    sx_seedx_conv c;
    CHECK_OK(sx_seedx_conv_init(&c, M, NULL));
    int64_t turns = MI(&f, "turns");
    CHECK(turns >= 2);
    for (int k = 0; k < turns; k++) {
        char key[64];
        snprintf(key, sizeof key, "question.%d", k);
        const char *q = MS(&f, key);
        CHECK_OK(sx_seedx_conv_user(&c, M, q, k == 0 ? tiles : NULL, k == 0 ? 1 : 0,
                                    k == 0 ? feats : NULL, k == 0 ? rows : 0));
        int64_t np;
        snprintf(key, sizeof key, "prompt_ids.%d", k);
        int *want = MA(&f, key, &np);
        CHECK(want && same_ids(c.ids, c.n, want, np, mode, k));
        sx_seedx_opts o;
        sx_seedx_opts_default(&o);
        o.max_new_tokens = 24;
        sx_seedx_reply r;
        CHECK_OK(sx_seedx_generate(M, c.ids, c.n, c.feats, c.feat_rows, &o, &r));
        int64_t ng;
        snprintf(key, sizeof key, "gen_ids.%d", k);
        int *gen = MA(&f, key, &ng);
        CHECK(gen && same_ids(r.ids, r.n_ids, gen, ng, "generated", k));
        CHECK_OK(sx_seedx_conv_reply(&c, M, &r));
        sx_seedx_reply_free(&r);
        free(want);
        free(gen);
    }
    /* the whole conversation = decode_llava_data's ids without the final eos */
    int64_t nl;
    int *llava = MA(&f, "llava_ids", &nl);
    CHECK(llava && nl > 1 && same_ids(c.ids, c.n, llava, nl - 1, "whole conversation", (int)turns));
    free(llava);
    /* a turn that failed after its prompt was added rewinds to before it */
    sx_seedx_conv_mark mk = sx_seedx_conv_save(&c);
    int *before = malloc(sizeof(int) * (size_t)c.n);
    memcpy(before, c.ids, sizeof(int) * (size_t)c.n);
    CHECK_OK(sx_seedx_conv_user(&c, M, "one more", tiles, 1, feats, rows));
    CHECK(c.n > mk.n && c.images == 2 && c.feat_rows == 2 * rows);
    sx_seedx_conv_rewind(&c, mk);
    CHECK(c.n == mk.n && c.user_turns == turns && c.images == 1 && c.feat_rows == rows &&
          !memcmp(before, c.ids, sizeof(int) * (size_t)c.n));
    free(before);
    /* an answer with image brackets (a generated image, or a client's history)
     * adds text only: no bracket may open a comprehension slot */
    int64_t n1 = c.n;
    CHECK_OK(sx_seedx_conv_assistant(&c, M, "see <img> here </img> and <patch></patch>"));
    const sx_seedx_tokens *tk = sx_seedx_special(M);
    int brackets = 0;
    for (int64_t i = n1; i < c.n; i++)
        brackets += c.ids[i] == tk->img_open || c.ids[i] == tk->img_close || c.ids[i] == tk->patch_open ||
                    c.ids[i] == tk->patch_close;
    CHECK(c.n == n1 + 3 && brackets == 0); /* "see" "here" "and" */
    /* an image in a later turn with a template that has no {IMG}: refused, nothing changed */
    sx_seedx_conv t;
    CHECK_OK(sx_seedx_conv_init(&t, M, "Q: {TEXT}\nA:"));
    int64_t n0 = t.n;
    CHECK(sx_seedx_conv_user(&t, M, "hi", tiles, 1, feats, rows) != 0 && t.n == n0 && t.user_turns == 0);
    sx_seedx_conv_free(&t);
    sx_seedx_conv_free(&c);
    free(feats);
    sx_image_free(&im);
    sx_gguf_close(f.g);
}
static void test_chat_two_turns(void) { chat_mode("chat_2turn"); }
static void test_chat_three_turns(void) { chat_mode("chat_3turn"); }

/* The REPL (seedx chat without -p) runs the same conversation: its streamed
 * answers are the reference's answers of each turn (compared without spaces:
 * streaming prints token pieces, the reference decodes whole answers, and the
 * two differ only in the spaces around added tokens). */
static void test_chat_repl(void) {
    fx f;
    if (fx_open(&f, "chat_2turn")) {
        CHECK(0);
        return;
    }
    char cmd[1024], path[512];
    snprintf(path, sizeof path, "%s/chat_repl.txt", t_build());
    snprintf(cmd, sizeof cmd,
             "printf '/image " DIR_ "%s\\n/unknown-command\\n%s\\n%s\\n' | ./seedx --compute f32 chat -m " DIR_
             "model -n 24 -q > %s 2>/dev/null",
             MS(&f, "image"), MS(&f, "question.0"), MS(&f, "question.1"), path);
    CHECK(system(cmd) == 0);
    FILE *fp = fopen(path, "r");
    CHECK(fp != NULL);
    char line[8192];
    int k = 0;
    while (fp && fgets(line, sizeof line, fp) && k < 2) {
        char key[32], a[8192], b[8192];
        snprintf(key, sizeof key, "answer.%d", k);
        const char *want = MS(&f, key);
        size_t na = 0, nb = 0;
        for (const char *p = line; *p; p++)
            if (*p != ' ' && *p != '\n') a[na++] = *p;
        for (const char *p = want; *p; p++)
            if (*p != ' ') b[nb++] = *p;
        a[na] = b[nb] = 0;
        CHECKF(!strcmp(a, b), "turn %d:\n  got '%s'\n  exp '%s'", k, a, b);
        k++;
    }
    CHECK(k == 2);
    if (fp) fclose(fp);
    remove(path);
    sx_gguf_close(f.g);
}

int main(void) {
    TEST_INIT();
    if (sx_seedx_open(DIR_ "model", &M)) {
        fprintf(stderr, "%s\n", sx_errmsg());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_comprehension_1x1);
    RUN(test_comprehension_2x1);
    RUN(test_comprehension_2x2);
    RUN(test_grounding);
    RUN(test_text_to_image_text_only);
    RUN(test_text_to_image_forced);
    RUN(test_editing);
    RUN(test_reconstruction);
    RUN(test_reconstruction_with_condition);
    RUN(test_bf16_path);
    RUN(test_bad_inputs);
    RUN(test_prompt_templates);
    RUN(test_wrong_variant);
    RUN(test_cli_compute);
    RUN(test_cli_errors);
    RUN(test_chat_two_turns);
    RUN(test_chat_three_turns);
    RUN(test_chat_repl);
    sx_seedx_free(M);
    return TEST_DONE();
}
