/* tests/test_unet.c - unet.c against diffusers 0.25.0 / PyTorch 2.0.1
 * (tests/fixtures/unet/, made by scripts/fixtures_unet.py):
 *   - the tiny SDXL-structured UNet (4 and 8 input channels, converted by
 *     scripts/convert_unet.py; the 8-channel one is a --detokenizer --overlay file
 *     loaded over the 4-channel conversion) at t = 999, 500, 1 and on a non-square
 *     latent; thread-count determinism;
 *   - real-shape layers with sxrand weights: a 1280-channel BasicTransformerBlock
 *     on 1024 tokens with a 64x2048 context, a 320-channel ResnetBlock2D on 128x128;
 *   - bad inputs: wrong channels / latent size / context width / pooled size,
 *     missing and mis-shaped tensors. */
#include "test.h"
#include "unet.h"

#define FIX "tests/fixtures/unet/"

static sx_gguf *IO;
static sx_unet *U4, *U8;

/* the conditioning of a forward: context [t, d], pooled [pd], time ids */
#define COND(c, t, d, p, pd, ti)                                                                  \
    (&(sx_unet_cond){.context = (c), .n_ctx = (t), .ctx_dim = (d), .pooled = (p),                 \
                     .pooled_dim = (pd), .time_ids = (ti)})

static const float *F_(sx_gguf *g, const char *name, int64_t *n) {
    const sx_tensor *t = sx_gguf_find(g, name);
    if (!t) {
        fprintf(stderr, "  fixture tensor '%s' missing\n", name);
        return NULL;
    }
    if (n) *n = t->nelem;
    return sx_get_f32(g, name, t->ndim, t->shape);
}

static void test_load(void) {
    CHECK_OK(sx_gguf_open(FIX "io.gguf", &IO));
    CHECK_OK(sx_unet_load(FIX "tiny_unet.gguf", &U4));
    const char *files[2] = {FIX "tiny_unet8_overlay.gguf", FIX "tiny_unet.gguf"};
    CHECK_OK(sx_unet_load_files(files, 2, &U8));
    if (U4) {
        const sx_unet_config *c = sx_unet_get_config(U4);
        CHECK(c->in_channels == 4 && c->n_blocks == 3 && c->block_out[1] == 64);
        CHECK(c->tlayers[1] == 1 && c->tlayers[2] == 2 && c->heads[1] == 4 && c->heads[2] == 8);
        CHECK(c->pooled_dim == 32 && c->add_time_dim == 8 && c->cross_dim == 64);
    }
    if (U8) CHECK(sx_unet_get_config(U8)->in_channels == 8);
}

static void fwd_case(sx_unet *u, const char *tag, int cin) {
    if (!IO || !u) {
        CHECK(0);
        return;
    }
    const float *ctx = F_(IO, "fwd.ctx", NULL), *pooled = F_(IO, "fwd.pooled", NULL);
    const float *tids = F_(IO, "fwd.time_ids", NULL);
    char nm[64];
    snprintf(nm, sizeof nm, "%s.x", tag);
    const float *x = F_(IO, nm, NULL);
    if (!ctx || !pooled || !tids || !x) {
        CHECK(0);
        return;
    }
    float out[4 * 16 * 16];
    const int ts[3] = {999, 500, 1};
    for (int k = 0; k < 3; k++) {
        snprintf(nm, sizeof nm, "%s.t%d.eps", tag, ts[k]);
        const float *ref = F_(IO, nm, NULL);
        CHECK_OK(sx_unet_forward(u, x, cin, 16, 16, (float)ts[k], COND(ctx, 9, 64, pooled, 32, tids), out));
        if (ref) CHECK_CLOSE(nm, out, ref, 4 * 16 * 16, 1e-4);
    }
}

static void test_forward_4ch(void) { fwd_case(U4, "fwd4", 4); }
static void test_forward_8ch(void) { fwd_case(U8, "fwd8", 8); }

static void test_forward_nonsquare(void) {
    if (!IO || !U4) {
        CHECK(0);
        return;
    }
    const float *ctx = F_(IO, "fwd.ctx", NULL), *pooled = F_(IO, "fwd.pooled", NULL);
    const float *tids = F_(IO, "fwd.time_ids", NULL), *x = F_(IO, "fwd4r.x", NULL);
    const float *ref = F_(IO, "fwd4r.eps", NULL);
    float out[4 * 16 * 24];
    CHECK_OK(sx_unet_forward(U4, x, 4, 16, 24, 500.0f, COND(ctx, 9, 64, pooled, 32, tids), out));
    if (ref) CHECK_CLOSE("fwd4r 16x24", out, ref, 4 * 16 * 24, 1e-4);
}

static void test_forward_odd_size(void) {
    if (!IO || !U4) {
        CHECK(0);
        return;
    }
    const float *ctx = F_(IO, "fwd.ctx", NULL), *pooled = F_(IO, "fwd.pooled", NULL);
    const float *tids = F_(IO, "fwd.time_ids", NULL), *x = F_(IO, "fwd4o.x", NULL);
    const float *ref = F_(IO, "fwd4o.eps", NULL);
    float out[4 * 18 * 22];
    CHECK_OK(sx_unet_forward(U4, x, 4, 18, 22, 500.0f, COND(ctx, 9, 64, pooled, 32, tids), out));
    if (ref) CHECK_CLOSE("fwd4o 18x22", out, ref, 4 * 18 * 22, 1e-4);
}

static void test_threads_deterministic(void) {
    if (!IO || !U4) {
        CHECK(0);
        return;
    }
    const float *ctx = F_(IO, "fwd.ctx", NULL), *pooled = F_(IO, "fwd.pooled", NULL);
    const float *tids = F_(IO, "fwd.time_ids", NULL), *x = F_(IO, "fwd4.x", NULL);
    static float a[4 * 256], b[4 * 256];
    int nt = sx_threads_count();
    sx_threads_init(1);
    CHECK_OK(sx_unet_forward(U4, x, 4, 16, 16, 500.0f, COND(ctx, 9, 64, pooled, 32, tids), a));
    sx_threads_init(nt > 1 ? nt : 2);
    CHECK_OK(sx_unet_forward(U4, x, 4, 16, 16, 500.0f, COND(ctx, 9, 64, pooled, 32, tids), b));
    sx_threads_init(nt);
    CHECK(memcmp(a, b, sizeof a) == 0);
}

static void test_bad_inputs(void) {
    if (!IO || !U4 || !U8) {
        CHECK(0);
        return;
    }
    const float *ctx = F_(IO, "fwd.ctx", NULL), *pooled = F_(IO, "fwd.pooled", NULL);
    const float *tids = F_(IO, "fwd.time_ids", NULL), *x = F_(IO, "fwd8.x", NULL);
    static float out[8 * 24 * 24];
    /* empty latent */
    CHECK(sx_unet_forward(U4, x, 4, 16, 0, 1.0f, COND(ctx, 9, 64, pooled, 32, tids), out) == -1);
    CHECK(strstr(sx_errmsg(), "latent size 16x0") != NULL);
    /* 8 channels into the 4-channel UNet */
    CHECK(sx_unet_forward(U4, x, 8, 16, 16, 1.0f, COND(ctx, 9, 64, pooled, 32, tids), out) == -1);
    CHECK(strstr(sx_errmsg(), "8 channels") != NULL);
    /* context width */
    CHECK(sx_unet_forward(U8, x, 8, 16, 16, 1.0f, COND(ctx, 9, 32, pooled, 32, tids), out) == -1);
    CHECK(strstr(sx_errmsg(), "cross_attention_dim is 64") != NULL);
    /* pooled size / missing pooled */
    CHECK(sx_unet_forward(U8, x, 8, 16, 16, 1.0f, COND(ctx, 9, 64, pooled, 16, tids), out) == -1);
    CHECK(strstr(sx_errmsg(), "pooled") != NULL);
    CHECK(sx_unet_forward(U8, x, 8, 16, 16, 1.0f, COND(ctx, 9, 64, NULL, 32, tids), out) == -1);
    CHECK(sx_unet_forward(U8, NULL, 8, 16, 16, 1.0f, COND(ctx, 9, 64, pooled, 32, tids), out) == -1);
    /* a container without the UNet's tensors: the fixture io file */
    sx_unet *u = NULL;
    CHECK(sx_unet_load(FIX "io.gguf", &u) == -1 && u == NULL);
    CHECK(strstr(sx_errmsg(), "seedx.unet.block_out_channels") != NULL);
    CHECK(sx_unet_load(FIX "does_not_exist.gguf", &u) == -1);
    /* the overlay alone lacks the base tensors */
    CHECK(sx_unet_load(FIX "tiny_unet8_overlay.gguf", &u) == -1 && u == NULL);
    CHECK(strstr(sx_errmsg(), "not found") != NULL);
    const char *bad[2] = {FIX "tiny_unet8_overlay.gguf", FIX "missing.gguf"};
    CHECK(sx_unet_load_files(bad, 2, &u) == -1 && u == NULL);
    CHECK(sx_unet_load_files(bad, 0, &u) == -1);
}

/* A copy of tiny_unet.gguf with one tensor renamed / one mis-shaped is made by
 * writing a patched GGUF: simplest is to rename the tensor's name bytes in a
 * copy of the file (same length keeps every offset valid). */
static int patch_copy(const char *src, const char *dst, const char *from, const char *to) {
    FILE *f = fopen(src, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    size_t lf = strlen(from);
    int hits = 0;
    for (long i = 0; i + (long)lf <= n; i++)
        if (memcmp(buf + i, from, lf) == 0) {
            memcpy(buf + i, to, lf);
            hits++;
            break;
        }
    FILE *o = fopen(dst, "wb");
    if (!o) {
        free(buf);
        return -1;
    }
    fwrite(buf, 1, (size_t)n, o);
    fclose(o);
    free(buf);
    return hits == 1 ? 0 : -1;
}

static void test_missing_tensor(void) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s/test_unet_patched.gguf", t_build());
    sx_unet *u = NULL;
    /* rename mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight -> ...to_K... */
    CHECK(patch_copy(FIX "tiny_unet.gguf", tmp, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                     "mid_block.attentions.0.transformer_blocks.0.attn2.to_K.weight") == 0);
    CHECK(sx_unet_load(tmp, &u) == -1 && u == NULL);
    CHECK(strstr(sx_errmsg(), "attn2.to_k.weight") != NULL);
    /* metadata saying 2 input channels while conv_in holds 4 */
    CHECK(patch_copy(FIX "tiny_unet.gguf", tmp, "seedx.unet.cross_attention_dim", "seedx.unet.cross_attention_dix") == 0);
    CHECK(sx_unet_load(tmp, &u) == -1 && u == NULL);
    CHECK(strstr(sx_errmsg(), "cross_attention_dim") != NULL);
    remove(tmp);
}

/* ---- real shapes with sxrand weights ---------------------------------- */
static sx_gguf *RL;

/* Fills the parameter `name` (index i of the fixture's list, stream base+i). */
typedef struct {
    const char *name;
    float *buf;
    int64_t n;
    int kind; /* 0 matrix (fan_in = K), 1 norm weight, 2 other vector */
    int64_t fan_in;
} rparam;

static float *rfill(const char *list_key, int base, const char *name, int64_t n, int kind,
                    int64_t fan_in) {
    uint64_t cnt;
    int et;
    if (sx_meta_arr(RL, list_key, &et, &cnt) != 0) return NULL;
    for (uint64_t i = 0; i < cnt; i++) {
        const char *s;
        size_t len;
        sx_meta_arr_str(RL, list_key, i, &s, &len);
        if (len == strlen(name) && memcmp(s, name, len) == 0) {
            float *b = malloc(sizeof(float) * (size_t)n);
            float lo = -0.1f, hi = 0.1f;
            if (kind == 0) {
                hi = (float)(1.0 / sqrt((double)fan_in));
                lo = -hi;
            } else if (kind == 1) {
                lo = 0.8f;
                hi = 1.2f;
            }
            sx_rand_uniform(b, n, (uint64_t)(base + (int)i), lo, hi);
            return b;
        }
    }
    fprintf(stderr, "  param %s not in %s\n", name, list_key);
    return NULL;
}

static void test_real_tblock(void) {
    if (t_skip_emulated("real-shape transformer block, 1280 ch x 1024 tokens")) return;
    if (sx_gguf_open(FIX "real.gguf", &RL) != 0) {
        CHECK_OK(-1);
        return;
    }
    const int D = 1280, C = 2048, F = 5120, Tq = 1024, Tc = 64;
    float *p[24];
    int np = 0;
#define RP(nm, n, kind, fan) (p[np++] = rfill("real.tblock.params", 100, nm, n, kind, fan))
    sx_unet_tblock b;
    memset(&b, 0, sizeof b);
    float *o1b = RP("attn1.to_out.0.bias", D, 2, 0), *o2b = RP("attn2.to_out.0.bias", D, 2, 0);
    float *ffpb = RP("ff.net.0.proj.bias", 2 * F, 2, 0), *ffob = RP("ff.net.2.bias", D, 2, 0);
    b.attn1.q = sx_linear_f32(RP("attn1.to_q.weight", (int64_t)D * D, 0, D), D, D, NULL);
    b.attn1.k = sx_linear_f32(RP("attn1.to_k.weight", (int64_t)D * D, 0, D), D, D, NULL);
    b.attn1.v = sx_linear_f32(RP("attn1.to_v.weight", (int64_t)D * D, 0, D), D, D, NULL);
    b.attn1.o = sx_linear_f32(RP("attn1.to_out.0.weight", (int64_t)D * D, 0, D), D, D, o1b);
    b.attn2.q = sx_linear_f32(RP("attn2.to_q.weight", (int64_t)D * D, 0, D), D, D, NULL);
    b.attn2.k = sx_linear_f32(RP("attn2.to_k.weight", (int64_t)D * C, 0, C), D, C, NULL);
    b.attn2.v = sx_linear_f32(RP("attn2.to_v.weight", (int64_t)D * C, 0, C), D, C, NULL);
    b.attn2.o = sx_linear_f32(RP("attn2.to_out.0.weight", (int64_t)D * D, 0, D), D, D, o2b);
    b.ff_proj = sx_linear_f32(RP("ff.net.0.proj.weight", (int64_t)2 * F * D, 0, D), 2 * F, D, ffpb);
    b.ff_out = sx_linear_f32(RP("ff.net.2.weight", (int64_t)D * F, 0, F), D, F, ffob);
    float *n1w = RP("norm1.weight", D, 1, 0), *n1b = RP("norm1.bias", D, 2, 0);
    float *n2w = RP("norm2.weight", D, 1, 0), *n2b = RP("norm2.bias", D, 2, 0);
#undef RP
    float *n3w = rfill("real.tblock.params", 100, "norm3.weight", D, 1, 0);
    float *n3b = rfill("real.tblock.params", 100, "norm3.bias", D, 2, 0);
    b.norm1 = (sx_norm){.w = n1w, .b = n1b, .dim = D, .eps = 1e-5f};
    b.norm2 = (sx_norm){.w = n2w, .b = n2b, .dim = D, .eps = 1e-5f};
    b.norm3 = (sx_norm){.w = n3w, .b = n3b, .dim = D, .eps = 1e-5f};
    CHECK_OK(sx_mha_init(&b.attn1, 20));
    CHECK_OK(sx_mha_init(&b.attn2, 20));
    int ok = n3w && n3b;
    for (int i = 0; i < np; i++) ok = ok && p[i];
    float *h = malloc(sizeof(float) * (size_t)Tq * D), *ctx = malloc(sizeof(float) * (size_t)Tc * C);
    sx_rand_uniform(h, (int64_t)Tq * D, 7, -1, 1);
    sx_rand_uniform(ctx, (int64_t)Tc * C, 8, -1, 1);
    CHECK(ok);
    if (ok) {
        sx_arena ws = {0};
        CHECK_OK(sx_unet_tblock_forward(&b, h, Tq, ctx, Tc, &ws));
        sx_arena_free(&ws);
        const float *ref = F_(RL, "real.tblock.y", NULL);
        uint64_t nr;
        int et;
        if (ref && sx_meta_arr(RL, "real.tblock.rows", &et, &nr) == 0) {
            float *got = malloc(sizeof(float) * nr * D);
            for (uint64_t r = 0; r < nr; r++) {
                int64_t row;
                sx_meta_arr_int(RL, "real.tblock.rows", r, &row);
                memcpy(got + r * D, h + row * D, sizeof(float) * D);
            }
            CHECK_CLOSE("tblock 1280ch 1024 tokens", got, ref, (int64_t)nr * D, 1e-4);
            free(got);
        } else {
            CHECK(0);
        }
    }
    for (int i = 0; i < np; i++) free(p[i]);
    free(n3w);
    free(n3b);
    free(h);
    free(ctx);
}

static void test_real_resnet(void) {
    if (t_skip_emulated("real-shape resnet, 320 ch at 128x128")) return;
    if (!RL) {
        CHECK(0);
        return;
    }
    const int Cc = 320, E = 1280, H = 128;
    const char *L = "real.resnet.params";
    sx_resnet r;
    memset(&r, 0, sizeof r);
    r.cin = r.cout = Cc;
    float *w1 = rfill(L, 200, "conv1.weight", (int64_t)Cc * Cc * 9, 0, Cc * 9);
    float *b1 = rfill(L, 200, "conv1.bias", Cc, 2, 0);
    float *w2 = rfill(L, 200, "conv2.weight", (int64_t)Cc * Cc * 9, 0, Cc * 9);
    float *b2 = rfill(L, 200, "conv2.bias", Cc, 2, 0);
    float *n1w = rfill(L, 200, "norm1.weight", Cc, 1, 0), *n1b = rfill(L, 200, "norm1.bias", Cc, 2, 0);
    float *n2w = rfill(L, 200, "norm2.weight", Cc, 1, 0), *n2b = rfill(L, 200, "norm2.bias", Cc, 2, 0);
    float *tw = rfill(L, 200, "time_emb_proj.weight", (int64_t)Cc * E, 0, E);
    float *tb = rfill(L, 200, "time_emb_proj.bias", Cc, 2, 0);
    int ok = w1 && b1 && w2 && b2 && n1w && n1b && n2w && n2b && tw && tb;
    CHECK(ok);
    float *x = malloc(sizeof(float) * (size_t)Cc * H * H), *y = malloc(sizeof(float) * (size_t)Cc * H * H);
    float *temb = malloc(sizeof(float) * E);
    sx_rand_uniform(x, (int64_t)Cc * H * H, 9, -1, 1);
    sx_rand_uniform(temb, E, 10, -1, 1);
    sx_silu(temb, temb, E); /* the resnet receives SiLU(emb) */
    if (ok) {
        r.conv1 = sx_conv_f32(w1, b1, Cc, Cc, 3, 1, 1);
        r.conv2 = sx_conv_f32(w2, b2, Cc, Cc, 3, 1, 1);
        r.time_emb_proj = sx_linear_f32(tw, Cc, E, tb);
        r.norm1 = (sx_norm){.w = n1w, .b = n1b, .dim = Cc, .groups = 32, .eps = 1e-5f};
        r.norm2 = (sx_norm){.w = n2w, .b = n2b, .dim = Cc, .groups = 32, .eps = 1e-5f};
        sx_arena ws = {0};
        CHECK_OK(sx_resnet_forward(&r, y, x, H, H, temb, &ws));
        sx_arena_free(&ws);
        const float *ref = F_(RL, "real.resnet.y", NULL);
        uint64_t ni;
        int et;
        if (ref && sx_meta_arr(RL, "real.resnet.idx", &et, &ni) == 0) {
            int64_t idx[64];
            for (uint64_t i = 0; i < ni && i < 64; i++) sx_meta_arr_int(RL, "real.resnet.idx", i, &idx[i]);
            float *got = malloc(sizeof(float) * Cc * ni * ni);
            for (int c = 0; c < Cc; c++)
                for (uint64_t a = 0; a < ni; a++)
                    for (uint64_t b = 0; b < ni; b++)
                        got[(c * ni + a) * ni + b] = y[((int64_t)c * H + idx[a]) * H + idx[b]];
            CHECK_CLOSE("resnet 320ch 128x128", got, ref, (int64_t)Cc * ni * ni, 1e-4);
            free(got);
        } else {
            CHECK(0);
        }
    }
    free(w1); free(b1); free(w2); free(b2); free(n1w); free(n1b); free(n2w); free(n2b);
    free(tw); free(tb); free(x); free(y); free(temb);
}

static void test_cleanup(void) {
    sx_unet_free(U4);
    sx_unet_free(U8);
    sx_gguf_close(IO);
    sx_gguf_close(RL);
    U4 = U8 = NULL;
    IO = RL = NULL;
}

int main(void) {
    TEST_INIT();
    RUN(test_load);
    RUN(test_forward_4ch);
    RUN(test_forward_8ch);
    RUN(test_forward_nonsquare);
    RUN(test_forward_odd_size);
    RUN(test_threads_deterministic);
    RUN(test_bad_inputs);
    RUN(test_missing_tensor);
    RUN(test_real_tblock);
    RUN(test_real_resnet);
    RUN(test_cleanup);
    return TEST_DONE();
}
