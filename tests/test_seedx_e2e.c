/* tests/test_seedx_e2e.c - SEED-X end to end on the tiny model of
 * scripts/make_tiny_seedx.py (official on-disk layout, converted by
 * scripts/convert.py), against the PyTorch reference pipeline
 * scripts/ref_seedx.py that follows the official inference scripts.
 * Fixtures: tests/fixtures/seedx_e2e/ (see its README.md). */
#include "test.h"
#include "sampler.h"

#define DIR_ "tests/fixtures/seedx_e2e/"
static sx_seedx *M;

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

/* image features -> LLM turn, checked against the reference; returns the reply */
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
            CHECK_CLOSE("image_embeds_lm", feats, exp, ne, 1e-4);
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
                        r->feat_tokens * r->feat_dim, 1e-4);
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
    if (fx_open(&f, mode)) {
        CHECK(0);
        return;
    }
    sx_seedx_reply r;
    if (run_llm_mode(&f, NULL, &r) == 0) sx_seedx_reply_free(&r);
    sx_gguf_close(f.g);
}

static void test_comprehension_1x1(void) { cmp_mode("cmp_1x1"); }
static void test_comprehension_2x1(void) { cmp_mode("cmp_2x1"); }
static void test_comprehension_2x2(void) { cmp_mode("cmp_2x2"); }
static void test_text_to_image_text_only(void) { cmp_mode("t2i"); }

static void test_grounding(void) {
    fx f;
    if (fx_open(&f, "ground")) {
        CHECK(0);
        return;
    }
    sx_seedx_reply r;
    if (run_llm_mode(&f, NULL, &r) == 0) {
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

static void gen_and_decode(const char *mode, int stage2) {
    fx f;
    if (fx_open(&f, mode)) {
        CHECK(0);
        return;
    }
    sx_seedx_reply r;
    if (run_llm_mode(&f, stage2 ? "1x1" : NULL, &r) == 0) {
        CHECK(r.n_images == 1);
        if (r.n_images == 1) {
            sx_seedx_opts o;
            decode_opts(&f, &o);
            /* the injected noise is torch.randn on a CPU generator: ours must match */
            float noise[256];
            CHECK_OK(sx_randn(noise, 256, o.seed, SX_RNG_TORCH_CPU));
            CHECK_CLOSE("noise (torch-cpu randn)", noise, T(&f, "noise", NULL), 256, 0);
            sx_image cond, out;
            memset(&cond, 0, sizeof cond);
            char p[256];
            snprintf(p, sizeof p, DIR_ "%s", MS(&f, "image"));
            if (stage2) CHECK_OK(sx_image_load_rgb(p, &cond));
            int rc = sx_seedx_decode_generated(M, r.img_gen_feat, stage2, stage2 ? &cond : NULL, &o, &out);
            CHECK_OK(rc);
            if (rc == 0) {
                check_image(&f, &out);
                sx_image_free(&out);
            }
            sx_image_free(&cond);
        }
        sx_seedx_reply_free(&r);
    }
    sx_gguf_close(f.g);
}

static void test_text_to_image_forced(void) { gen_and_decode("t2i_forced", 0); }
static void test_editing(void) { gen_and_decode("edit", 1); }

static void recon(const char *mode, int with_cond) {
    fx f;
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
             "printf '/image " DIR_ "%s\\n/unknown-command\\n%s\\n%s\\n' | ./seedx chat -m " DIR_
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
    RUN(test_bad_inputs);
    RUN(test_prompt_templates);
    RUN(test_wrong_variant);
    RUN(test_cli_errors);
    RUN(test_chat_two_turns);
    RUN(test_chat_three_turns);
    RUN(test_chat_repl);
    sx_seedx_free(M);
    return TEST_DONE();
}
