/* tests/test_detok.c - ResamplerXLV2 (the de-tokenizer adapter) against the
 * PyTorch transcription (scripts/ref_detok.py) on a tiny random model that
 * went through scripts/convert.py detokenizer. */
#include "test.h"
#include "detokenizer.h"

static sx_gguf *E;

static const float *X(const char *name) {
    const sx_tensor *t = sx_gguf_find(E, name);
    if (!t) {
        fprintf(stderr, "  fixture tensor '%s' missing\n", name);
        return NULL;
    }
    return sx_get_f32(E, name, t->ndim, t->shape);
}

static void run_case(const char *model, int n, double tol) {
    sx_gguf *g = NULL;
    sx_detok d;
    CHECK_OK(sx_gguf_open(model, &g));
    if (!g) return;
    CHECK_OK(sx_detok_load(g, "resampler.", &d));
    CHECK(d.dim == 64 && d.depth == 2 && d.heads == 4 && d.dim_head == 16 && d.n_queries == 8 &&
          d.embed_dim == 48 && d.out1 == 24 && d.out2 == 40 && d.ff_dim == 256);
    char nm[128];
    snprintf(nm, sizeof nm, "x%d", n);
    const float *x = X(nm);
    float pe[8 * 64], pooled[40];
    CHECK_OK(sx_detok_forward(&d, x, n, pe, pooled));
    snprintf(nm, sizeof nm, "x%d.resampler.prompt_embeds", n);
    CHECK_CLOSE(nm, pe, X(nm), 8 * 64, tol);
    snprintf(nm, sizeof nm, "x%d.resampler.unet_attnpool", n);
    CHECK_CLOSE(nm, pooled, X(nm), 40, tol);
    sx_detok_free(&d);
    sx_gguf_close(g);
}

static void test_f32_matches_pytorch(void) {
    run_case("tests/fixtures/detok/detok_f32.gguf", 12, 1e-5);
    run_case("tests/fixtures/detok/detok_f32.gguf", 33, 1e-5);
}

/* F16 weights vs the F32 PyTorch reference: drift bounded */
static void test_f16_drift(void) {
    run_case("tests/fixtures/detok/detok_f16.gguf", 33, 2e-3);
}

/* The run-time weight type (sx_set_weight_dtype, the CLI's --dtype) turns the
 * F32 file into exactly what the F16 conversion gives. */
static void test_runtime_weight_dtype(void) {
    sx_gguf *g32 = NULL, *g16 = NULL;
    sx_detok a, b;
    float pa[8 * 64], pb[8 * 64], qa[40], qb[40];
    CHECK_OK(sx_set_weight_dtype(SX_F16));
    CHECK_OK(sx_gguf_open("tests/fixtures/detok/detok_f32.gguf", &g32));
    CHECK_OK(sx_detok_load(g32, "resampler.", &a));
    sx_set_weight_dtype(-1);
    CHECK(a.proj_in.w.type == SX_F16 && a.layers[0].to_kv.w.type == SX_F16);
    CHECK_OK(sx_gguf_open("tests/fixtures/detok/detok_f16.gguf", &g16));
    CHECK_OK(sx_detok_load(g16, "resampler.", &b));
    CHECK_OK(sx_detok_forward(&a, X("x33"), 33, pa, qa));
    CHECK_OK(sx_detok_forward(&b, X("x33"), 33, pb, qb));
    CHECK(!memcmp(pa, pb, sizeof pa) && !memcmp(qa, qb, sizeof qa));
    CHECK(sx_set_weight_dtype(SX_Q8_K) != 0); /* activations only */
    CHECK(sx_set_weight_dtype(99) != 0);
    /* a quantized run-time type leaves the de-tokenizer's matrices as stored
     * (the policy of quant.h quantizes only the LLM and the ViT) */
    sx_detok c;
    CHECK_OK(sx_set_weight_dtype(SX_Q8_0));
    CHECK_OK(sx_detok_load(g32, "resampler.", &c));
    sx_set_weight_dtype(-1);
    CHECK(c.proj_in.w.type == SX_F32 && c.layers[0].to_kv.w.type == SX_F32);
    sx_detok_free(&c);
    sx_detok_free(&a);
    sx_detok_free(&b);
    sx_gguf_close(g32);
    sx_gguf_close(g16);
}

static void test_trace_names_match_reference(void) {
    char dir[] = "/tmp/seedx_detok_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    sx_trace_set_dir(dir);
    run_case("tests/fixtures/detok/detok_f32.gguf", 12, 1e-5);
    sx_trace_set_dir("");
    const char *names[] = {"resampler.proj_in", "resampler.layers.0.0", "resampler.layers.1.1",
                           "resampler.norm_out"};
    for (int i = 0; i < 4; i++) {
        char path[300], ref[128];
        snprintf(path, sizeof path, "%s/%s.npy", dir, names[i]);
        FILE *f = fopen(path, "rb");
        CHECKF(f != NULL, "%s not traced", names[i]);
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        snprintf(ref, sizeof ref, "x12.%s", names[i]);
        const sx_tensor *t = sx_gguf_find(E, ref);
        CHECK(t && sz == 128 + (long)t->nelem * 4);
        if (t && sz == 128 + (long)t->nelem * 4) {
            float *buf = malloc(t->nelem * 4);
            fseek(f, 128, SEEK_SET);
            CHECK(fread(buf, 4, t->nelem, f) == (size_t)t->nelem);
            CHECK_CLOSE(names[i], buf, X(ref), t->nelem, 1e-5);
            free(buf);
        }
        fclose(f);
        remove(path);
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

static void test_vit_down(void) {
    float y[64 * 12];
    CHECK_OK(sx_vit_down(y, X("vitdown.x"), 256, 12));
    CHECK_CLOSE("vit_down", y, X("vitdown.y"), 64 * 12, 1e-6);
    CHECK(sx_vit_down(y, X("vitdown.x"), 255, 12) != 0);
}

static void test_bad_container(void) {
    sx_gguf *g = NULL;
    sx_detok d;
    CHECK_OK(sx_gguf_open("tests/fixtures/detok/bad_shape.gguf", &g));
    if (!g) return;
    CHECK(sx_detok_load(g, "resampler.", &d) != 0);
    CHECKF(strstr(sx_errmsg(), "resampler.layers.1.0.to_kv.weight") &&
               strstr(sx_errmsg(), "[100,64]") && strstr(sx_errmsg(), "[128,64]"),
           "message: %s", sx_errmsg());
    CHECK(sx_detok_load(g, "nothing.", &d) != 0);
    CHECK(strstr(sx_errmsg(), "nothing.latents") != NULL);
    sx_gguf_close(g);
}

int main(void) {
    TEST_INIT();
    if (sx_gguf_open("tests/fixtures/detok/expected.gguf", &E) != 0) {
        fprintf(stderr, "%s\n", sx_errmsg());
        return 1;
    }
    RUN(test_f32_matches_pytorch);
    RUN(test_f16_drift);
    RUN(test_runtime_weight_dtype);
    RUN(test_trace_names_match_reference);
    RUN(test_vit_down);
    RUN(test_bad_container);
    sx_gguf_close(E);
    return TEST_DONE();
}
