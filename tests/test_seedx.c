/* tests/test_seedx.c - SEED-X agent logic (seedx.c) against the official
 * scripts' behaviour, computed in scripts/fixtures_seedx.py with the
 * transformers 4.30.2 tokenizer. */
#include "test.h"

static sx_gguf *G;
static sx_tokenizer *TOK;
static sx_seedx_tokens TK;

static const char *S(const char *key) {
    const char *s = NULL;
    size_t n;
    if (sx_meta_str(G, key, &s, &n)) fprintf(stderr, "  %s\n", sx_errmsg());
    return s;
}
static int64_t I(const char *key) {
    int64_t v = -1;
    sx_meta_int(G, key, &v);
    return v;
}
static int64_t AI(const char *key, uint64_t i) {
    int64_t v = -1;
    sx_meta_arr_int(G, key, i, &v);
    return v;
}

static void test_special_tokens(void) {
    CHECK_OK(sx_seedx_tokens_init(TOK, &TK));
    CHECK(TK.img_open == 32100 && TK.img_close == 32101 && TK.patch_open == 32102 &&
          TK.patch_close == 32103 && TK.box_start == 32328 && TK.box_end == 32329);
    CHECK(TK.n_img == 100 && TK.img[0] == 32000 && TK.img[63] == 32063);
    CHECK(TK.n_loc == 224 && TK.loc[0] == 32104 && TK.loc[223] == 32327);
    CHECK(TK.bos == 1 && TK.eos == 2);
}

static void test_prompts_and_cmp_mask(void) {
    int64_t n = I("prompts.n");
    CHECK(n >= 5);
    for (int64_t i = 0; i < n; i++) {
        char k[64];
        snprintf(k, sizeof k, "prompts.%lld.n_images", (long long)i);
        int nimg = (int)I(k);
        char *blk = sx_seedx_image_block(nimg, 64);
        snprintf(k, sizeof k, "prompts.%lld.block", (long long)i);
        CHECK(blk && S(k) && !strcmp(blk, S(k)));
        free(blk);
        /* tokenize the full prompt (bos by hand, as the scripts do) */
        snprintf(k, sizeof k, "prompts.%lld.text", (long long)i);
        const char *text = S(k);
        int *ids = NULL;
        size_t nid = 0;
        CHECK_OK(sx_tokenize(TOK, text, strlen(text), 0, &ids, &nid));
        int *full = malloc(sizeof(int) * (nid + 1));
        full[0] = TK.bos;
        memcpy(full + 1, ids, sizeof(int) * nid);
        snprintf(k, sizeof k, "prompts.%lld.ids", (long long)i);
        int et;
        uint64_t ne;
        CHECK_OK(sx_meta_arr(G, k, &et, &ne));
        CHECK(ne == nid + 1);
        int bad = 0;
        for (uint64_t j = 0; j < ne && j < nid + 1; j++) bad += AI(k, j) != full[j];
        CHECKF(bad == 0, "prompt %lld: %d ids differ", (long long)i, bad);
        int64_t pos[1024];
        int64_t np = sx_seedx_cmp_positions(&TK, full, (int64_t)nid + 1, pos, 1024);
        snprintf(k, sizeof k, "prompts.%lld.cmp", (long long)i);
        CHECK_OK(sx_meta_arr(G, k, &et, &ne));
        CHECKF((uint64_t)np == ne && np == 64 * nimg, "prompt %lld: %lld positions, expected %llu",
               (long long)i, (long long)np, (unsigned long long)ne);
        bad = 0;
        for (int64_t j = 0; j < np && (uint64_t)j < ne; j++) bad += AI(k, (uint64_t)j) != pos[j];
        CHECK(bad == 0);
        free(ids);
        free(full);
    }
}

static void test_image_token_processor(void) {
    int et;
    uint64_t nl;
    CHECK_OK(sx_meta_arr(G, "proc.lasts", &et, &nl));
    int64_t V = sx_tokenizer_n_vocab(TOK);
    float *s = malloc(sizeof(float) * V), *orig = malloc(sizeof(float) * V);
    int L[66];
    for (int j = 0; j < 66; j++) L[j] = (int)AI("proc.img_ids", (uint64_t)j);
    for (uint64_t c = 0; c < nl; c++) {
        char k[64];
        double lo, hi;
        snprintf(k, sizeof k, "proc.%llu.range", (unsigned long long)c);
        sx_meta_arr_float(G, k, 0, &lo);
        sx_meta_arr_float(G, k, 1, &hi);
        sx_rand_uniform(s, V, 100 + c, (float)lo, (float)hi);
        memcpy(orig, s, sizeof(float) * V);
        sx_seedx_image_token_rule(&TK, 64, (int)AI("proc.lasts", c), s, V);
        snprintf(k, sizeof k, "proc.%llu.at_L", (unsigned long long)c);
        const float *exp = sx_get_f32(G, k, SX_SHAPE(66));
        float got[66];
        for (int j = 0; j < 66; j++) got[j] = s[L[j]];
        CHECK_CLOSE(k, got, exp, 66, 0);
        /* nothing else changed, and greedy picks the official argmax */
        int changed = 0, am = 0;
        for (int64_t v = 0; v < V; v++) {
            int inL = 0;
            for (int j = 0; j < 66; j++) inL |= L[j] == v;
            if (!inL && s[v] != orig[v]) changed++;
            if (s[v] > s[am]) am = (int)v;
        }
        CHECK(changed == 0);
        snprintf(k, sizeof k, "proc.%llu.argmax", (unsigned long long)c);
        CHECKF(am == I(k), "case %llu: argmax %d, expected %lld", (unsigned long long)c, am,
               (long long)I(k));
    }
    free(s);
    free(orig);
}

static void test_text_and_boxes(void) {
    int64_t n = I("text.n");
    for (int64_t i = 0; i < n; i++) {
        char k[64];
        snprintf(k, sizeof k, "text.%lld.in", (long long)i);
        const char *in = S(k);
        char *st = sx_seedx_strip_tags(in);
        snprintf(k, sizeof k, "text.%lld.stripped", (long long)i);
        CHECKF(st && !strcmp(st, S(k)), "strip '%s' -> '%s', expected '%s'", in, st, S(k));
        free(st);
        int boxes[8][4], counts[8];
        int nb = sx_seedx_extract_boxes(in, boxes, counts, 8);
        snprintf(k, sizeof k, "text.%lld.n_boxes", (long long)i);
        CHECKF(nb == I(k), "'%s': %d boxes, expected %lld", in, nb, (long long)I(k));
        for (int b = 0; b < nb && b < 8; b++) {
            snprintf(k, sizeof k, "text.%lld.counts", (long long)i);
            CHECK(counts[b] == AI(k, (uint64_t)b));
            snprintf(k, sizeof k, "text.%lld.boxes", (long long)i);
            for (int j = 0; j < 4; j++) CHECK(boxes[b][j] == AI(k, (uint64_t)(b * 4 + j)));
        }
    }
    int et;
    uint64_t nr;
    CHECK_OK(sx_meta_arr(G, "rects", &et, &nr));
    for (uint64_t r = 0; r + 10 <= nr; r += 10) {
        int box[4], rect[4];
        for (int j = 0; j < 4; j++) box[j] = (int)AI("rects", r + j);
        sx_seedx_box_rect(box, (int)AI("rects", r + 4), (int)AI("rects", r + 5), rect);
        for (int j = 0; j < 4; j++) CHECK(rect[j] == AI("rects", r + 6 + j));
    }
}

static void test_patch_pos(void) {
    const float *P = sx_get_f32(G, "patch_pos.P", SX_SHAPE(4, 40));
    const float *pos = sx_get_f32(G, "patch_pos.pos", SX_SHAPE(4, 2));
    const float *exp = sx_get_f32(G, "patch_pos.out", SX_SHAPE(4, 40));
    float out[4 * 40];
    for (int i = 0; i < 4; i++) sx_seedx_patch_pos(P, 40, pos[2 * i], pos[2 * i + 1], out + 40 * i);
    CHECK_CLOSE("patch_pos", out, exp, 160, 1e-6);
}

int main(void) {
    TEST_INIT();
    if (sx_gguf_open("tests/fixtures/seedx/logic.gguf", &G) ||
        sx_tokenizer_open("tests/fixtures/tokenizer/seedx_tokenizer.gguf", &TOK)) {
        fprintf(stderr, "%s\n", sx_errmsg());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_special_tokens);
    RUN(test_prompts_and_cmp_mask);
    RUN(test_image_token_processor);
    RUN(test_text_and_boxes);
    RUN(test_patch_pos);
    sx_tokenizer_free(TOK);
    sx_gguf_close(G);
    return TEST_DONE();
}
