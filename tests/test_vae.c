/* tests/test_vae.c - vae.c against diffusers 0.25.0 (fixtures from
 * scripts/fixtures_vae.py): tiny AutoencoderKL decode / encode / tiled
 * decode and encode / uint8 postprocess, F16 and BF16 storage drift, real-shape
 * layers with sxrand weights, bad input. */
#include "test.h"
#include "vae.h"

#define FIX "tests/fixtures/vae/"

static sx_gguf *io_g, *rs_g;

static const float *fx(sx_gguf *g, const char *name, int64_t n) {
    const sx_tensor *t = sx_gguf_find(g, name);
    if (!t || t->nelem != n) {
        fprintf(stderr, "  fixture tensor %s missing or has %lld elements, expected %lld\n", name,
                t ? (long long)t->nelem : -1LL, (long long)n);
        return NULL;
    }
    return sx_get_f32(g, name, t->ndim, t->shape);
}

static sx_vae *load(const char *dt) {
    char p[256];
    snprintf(p, sizeof p, FIX "tiny_vae.%s.gguf", dt);
    sx_vae *v = NULL;
    if (sx_vae_load(p, &v) != 0) fprintf(stderr, "  load %s: %s\n", p, sx_errmsg());
    return v;
}

/* ---- tiny model ------------------------------------------------------- */
static void test_tiny_decode(void) {
    sx_vae *v = load("f32");
    CHECK(v);
    if (!v) return;
    CHECK(sx_vae_factor(v) == 2 && v->cfg.n_blocks == 2 && v->cfg.block_out[1] == 64);
    CHECK(fabsf(v->cfg.scaling_factor - 0.13025f) < 1e-7f);
    const float *lat = fx(io_g, "dec.latents", 4 * 24 * 20), *exp = fx(io_g, "dec.image", 3 * 48 * 40);
    float *img = malloc(sizeof(float) * 3 * 48 * 40);
    if (lat && exp) {
        CHECK_OK(sx_vae_decode(v, lat, 4, 24, 20, 0, img));
        CHECK_CLOSE("decode f32", img, exp, 3 * 48 * 40, 1e-4);
        /* tiling requested but the latent fits in one 32x32 tile: same path */
        float *img2 = malloc(sizeof(float) * 3 * 48 * 40);
        CHECK_OK(sx_vae_decode(v, lat, 4, 24, 20, 1, img2));
        CHECK(memcmp(img, img2, sizeof(float) * 3 * 48 * 40) == 0);
        free(img2);
    }
    free(img);
    sx_vae_free(v);
}

static void test_tiny_encode(void) {
    sx_vae *v = load("f32");
    CHECK(v);
    if (!v) return;
    const float *x = fx(io_g, "enc.image", 3 * 48 * 40), *em = fx(io_g, "enc.mean", 4 * 24 * 20),
                *el = fx(io_g, "enc.logvar", 4 * 24 * 20);
    float *m = malloc(sizeof(float) * 4 * 24 * 20), *l = malloc(sizeof(float) * 4 * 24 * 20);
    if (x && em && el) {
        CHECK_OK(sx_vae_encode(v, x, 3, 48, 40, 0, m, l));
        CHECK_CLOSE("encode mean (= mode, the edit latent)", m, em, 4 * 24 * 20, 1e-4);
        CHECK_CLOSE("encode logvar", l, el, 4 * 24 * 20, 1e-4);
        /* logvar optional */
        float *m2 = malloc(sizeof(float) * 4 * 24 * 20);
        CHECK_OK(sx_vae_encode(v, x, 3, 48, 40, 0, m2, NULL));
        CHECK(memcmp(m, m2, sizeof(float) * 4 * 24 * 20) == 0);
        free(m2);
    }
    free(m);
    free(l);
    sx_vae_free(v);
}

static void test_tiny_rgb8(void) {
    sx_vae *v = load("f32");
    CHECK(v);
    if (!v) return;
    const int64_t H = 48, W = 40;
    const float *lat = fx(io_g, "dec.latents", 4 * 24 * 20), *exp = fx(io_g, "dec.image", 3 * H * W),
                *u8 = fx(io_g, "dec.rgb8", H * W * 3);
    if (lat && exp && u8) {
        /* full latent -> uint8 path vs diffusers: within 1 level */
        float *img = malloc(sizeof(float) * 3 * H * W);
        sx_image im = {0};
        CHECK_OK(sx_vae_decode(v, lat, 4, 24, 20, 0, img));
        CHECK_OK(sx_vae_to_rgb8(img, 3, H, W, &im));
        CHECK(im.w == W && im.h == H && im.channels == 3);
        int maxd = 0, ndiff = 0;
        for (int64_t i = 0; im.data && i < H * W * 3; i++) {
            int d = abs((int)im.data[i] - (int)u8[i]);
            if (d > maxd) maxd = d;
            ndiff += d != 0;
        }
        CHECKF(maxd <= 1, "max level diff %d", maxd);
        if (getenv("SEEDX_TEST_VERBOSE"))
            printf("    rgb8: max diff %d level, %d of %lld values differ\n", maxd, ndiff,
                   (long long)(H * W * 3));
        sx_image_free(&im);
        /* postprocess alone on diffusers' own floats: exact */
        CHECK_OK(sx_vae_to_rgb8(exp, 3, H, W, &im));
        int bad = 0;
        for (int64_t i = 0; im.data && i < H * W * 3; i++) bad += im.data[i] != (uint8_t)u8[i];
        CHECKF(bad == 0, "%d bytes differ from VaeImageProcessor.postprocess", bad);
        sx_image_free(&im);
        free(img);
    }
    /* half levels and out-of-range values: round half to even like numpy */
    const float *rx = fx(io_g, "rgb.x", 3 * 8 * 40), *ru = fx(io_g, "rgb.u8", 8 * 40 * 3);
    if (rx && ru) {
        sx_image im = {0};
        CHECK_OK(sx_vae_to_rgb8(rx, 3, 8, 40, &im));
        int bad = 0;
        for (int64_t i = 0; im.data && i < 8 * 40 * 3; i++) bad += im.data[i] != (uint8_t)ru[i];
        CHECKF(bad == 0, "%d bytes differ on half-level / out-of-range inputs", bad);
        sx_image_free(&im);
    }
    sx_vae_free(v);
}

static void test_tiny_tiled(void) {
    /* two full decodes: a third of the emulated aarch64 run; the kernels are
     * those of test_tiny_decode, the tiling is portable C */
    if (t_skip_emulated("tiled + untiled decode of an 80x112 image")) return;
    sx_vae *v = load("f32");
    CHECK(v);
    if (!v) return;
    const float *lat = fx(io_g, "tdec.latents", 4 * 40 * 56), *exp = fx(io_g, "tdec.image", 3 * 80 * 112);
    float *img = malloc(sizeof(float) * 3 * 80 * 112);
    if (lat && exp) {
        CHECK_OK(sx_vae_decode(v, lat, 4, 40, 56, 1, img));
        CHECK_CLOSE("tiled decode (2x3 tiles)", img, exp, 3 * 80 * 112, 1e-4);
        /* untiled differs visibly: the blend really happened */
        CHECK_OK(sx_vae_decode(v, lat, 4, 40, 56, 0, img));
        t_err e = t_compare(img, exp, 3 * 80 * 112);
        CHECKF(e.max_rel > 1e-2, "untiled decode is too close to the tiled one (%g)", e.max_rel);
    }
    free(img);
    const float *x = fx(io_g, "tenc.image", 3 * 96 * 128), *em = fx(io_g, "tenc.mean", 4 * 48 * 64),
                *el = fx(io_g, "tenc.logvar", 4 * 48 * 64);
    float *m = malloc(sizeof(float) * 4 * 48 * 64), *l = malloc(sizeof(float) * 4 * 48 * 64);
    if (x && em && el) {
        CHECK_OK(sx_vae_encode(v, x, 3, 96, 128, 1, m, l));
        CHECK_CLOSE("tiled encode mean", m, em, 4 * 48 * 64, 1e-4);
        CHECK_CLOSE("tiled encode logvar", l, el, 4 * 48 * 64, 1e-4);
    }
    /* a tile size other than the config's (32 px = 16 latents, 4x5 / 3x4 tiles) */
    v->tile_sample_size = 32;
    const float *e32 = fx(io_g, "tdec32.image", 3 * 80 * 112), *m32 = fx(io_g, "tenc32.mean", 4 * 48 * 64),
                *l32 = fx(io_g, "tenc32.logvar", 4 * 48 * 64);
    float *img32 = malloc(sizeof(float) * 3 * 80 * 112);
    if (lat && e32) {
        CHECK_OK(sx_vae_decode(v, lat, 4, 40, 56, 1, img32));
        CHECK_CLOSE("tiled decode, 32 px tiles", img32, e32, 3 * 80 * 112, 1e-4);
    }
    if (x && m32 && l32) {
        CHECK_OK(sx_vae_encode(v, x, 3, 96, 128, 1, m, l));
        CHECK_CLOSE("tiled encode mean, 32 px tiles", m, m32, 4 * 48 * 64, 1e-4);
        CHECK_CLOSE("tiled encode logvar, 32 px tiles", l, l32, 4 * 48 * 64, 1e-4);
    }
    free(img32);
    free(m);
    free(l);
    sx_vae_free(v);
}

/* F16 / BF16 storage of the conv kernels and matrices vs the F32 reference.
 * The F32 model's matrices are rounded in memory (round to nearest even, as
 * `convert.py vae --dtype f16|bf16` stores them; biases and norms stay F32),
 * which keeps the fixture set to one model file. */
typedef struct { sx_weight *w[256]; int n; } wlist;
static void wl_add(wlist *L, sx_weight *w) {
    if (w->data && L->n < 256) L->w[L->n++] = w;
}
static void wl_resnet(wlist *L, sx_resnet *r) {
    wl_add(L, &r->conv1.w);
    wl_add(L, &r->conv2.w);
    wl_add(L, &r->conv_shortcut.w); /* when present */
}
static void wl_coder(wlist *L, sx_vae_coder *c, int n_blocks) {
    wl_add(L, &c->conv_in.w);
    wl_add(L, &c->conv_out.w);
    for (int i = 0; i < n_blocks; i++) {
        for (int r = 0; r < c->blocks[i].n_resnets; r++) wl_resnet(L, &c->blocks[i].resnets[r]);
        if (c->blocks[i].has_sampler) wl_add(L, &c->blocks[i].sampler.w);
    }
    sx_vae_mid *m = &c->mid_block;
    wl_resnet(L, &m->resnets[0]);
    wl_resnet(L, &m->resnets[1]);
    if (m->has_attn) {
        wl_add(L, &m->attn.mha.q.w);
        wl_add(L, &m->attn.mha.k.w);
        wl_add(L, &m->attn.mha.v.w);
        wl_add(L, &m->attn.mha.o.w);
    }
}
/* Replaces every matrix of v by an F16 / BF16 copy; returns the copies. */
static uint16_t **requantize(sx_vae *v, int type, int *n_out) {
    wlist L = {{0}, 0};
    wl_add(&L, &v->quant_conv.w);
    wl_add(&L, &v->post_quant_conv.w);
    wl_coder(&L, &v->encoder, v->cfg.n_blocks);
    wl_coder(&L, &v->decoder, v->cfg.n_blocks);
    uint16_t **copies = calloc((size_t)L.n, sizeof *copies);
    for (int i = 0; i < L.n; i++) {
        sx_weight *w = L.w[i];
        int64_t n = w->N * w->K;
        const float *src = w->data;
        copies[i] = malloc(sizeof(uint16_t) * (size_t)n);
        for (int64_t j = 0; j < n; j++)
            copies[i][j] = type == SX_F16 ? sx_f32_to_f16(src[j]) : sx_f32_to_bf16(src[j]);
        w->data = copies[i];
        w->type = type;
        w->packed = NULL; /* the copy packed at load is F32: the kernels read the new data */
        w->packed_n0 = 0;
    }
    *n_out = L.n;
    return copies;
}

static void test_tiny_half(void) {
    const char *names[2] = {"f16", "bf16"};
    const int types[2] = {SX_F16, SX_BF16};
    const double tol[2] = {2e-3, 1.5e-2};
    for (int k = 0; k < 2; k++) {
        sx_vae *v = load("f32");
        CHECK(v);
        if (!v) continue;
        int nw = 0;
        uint16_t **copies = requantize(v, types[k], &nw);
        CHECKF(nw == 46, "%d matrices", nw); /* every conv kernel and attention matrix */
        const float *lat = fx(io_g, "dec.latents", 4 * 24 * 20), *exp = fx(io_g, "dec.image", 3 * 48 * 40);
        const float *x = fx(io_g, "enc.image", 3 * 48 * 40), *em = fx(io_g, "enc.mean", 4 * 24 * 20);
        float *img = malloc(sizeof(float) * 3 * 48 * 40), *m = malloc(sizeof(float) * 4 * 24 * 20);
        char what[64];
        if (lat && exp && x && em) {
            CHECK_OK(sx_vae_decode(v, lat, 4, 24, 20, 0, img));
            snprintf(what, sizeof what, "decode %s weights", names[k]);
            CHECK_CLOSE(what, img, exp, 3 * 48 * 40, tol[k]);
            t_err e = t_compare(img, exp, 3 * 48 * 40);
            CHECKF(e.max_rel > 1e-6, "%s weights give exactly the F32 result: not applied?", names[k]);
            CHECK_OK(sx_vae_encode(v, x, 3, 48, 40, 0, m, NULL));
            snprintf(what, sizeof what, "encode %s weights", names[k]);
            CHECK_CLOSE(what, m, em, 4 * 24 * 20, tol[k]);
        }
        free(img);
        free(m);
        for (int i = 0; i < nw; i++) free(copies[i]);
        free(copies);
        sx_vae_free(v);
    }
}

/* same bytes for 1 and N threads */
static void test_deterministic(void) {
    sx_vae *v = load("f32");
    CHECK(v);
    if (!v) return;
    const float *lat = fx(io_g, "dec.latents", 4 * 24 * 20);
    float *a = malloc(sizeof(float) * 3 * 48 * 40), *b = malloc(sizeof(float) * 3 * 48 * 40);
    int n = sx_threads_count();
    if (lat) {
        CHECK_OK(sx_vae_decode(v, lat, 4, 24, 20, 0, a));
        CHECK_OK(sx_threads_init(1));
        CHECK_OK(sx_vae_decode(v, lat, 4, 24, 20, 0, b));
        CHECK_OK(sx_threads_init(n > 1 ? n : 3));
        CHECK(memcmp(a, b, sizeof(float) * 3 * 48 * 40) == 0);
    }
    free(a);
    free(b);
    sx_vae_free(v);
}

/* ---- real-shape layers, sxrand weights -------------------------------- */
typedef struct { float *buf[12]; int n; } bufs;
static float *rnd(bufs *B, int64_t n, uint64_t seed, float lo, float hi) {
    float *p = malloc(sizeof(float) * (size_t)n);
    if (p) sx_rand_uniform(p, n, seed, lo, hi);
    B->buf[B->n++] = p;
    return p;
}
static void bufs_free(bufs *B) {
    for (int i = 0; i < B->n; i++) free(B->buf[i]);
}
static float bound(int64_t fan_in) { return (float)sqrt(3.0 / (double)fan_in); }

/* mirrors ref_vae.resnet_sxrand */
static void make_resnet(sx_resnet *r, bufs *B, int cin, int cout, uint64_t s) {
    memset(r, 0, sizeof *r);
    r->cin = cin;
    r->cout = cout;
    float a1 = bound((int64_t)cin * 9), a2 = bound((int64_t)cout * 9);
    r->norm1 = (sx_norm){.w = rnd(B, cin, s + 0, 0.5f, 1.5f), .b = rnd(B, cin, s + 1, -0.1f, 0.1f),
                         .dim = cin, .groups = 32, .eps = 1e-6f};
    float *w1 = rnd(B, (int64_t)cout * cin * 9, s + 2, -a1, a1);
    r->conv1 = sx_conv_f32(w1, rnd(B, cout, s + 3, -0.1f, 0.1f), cin, cout, 3, 1, 1);
    r->norm2 = (sx_norm){.w = rnd(B, cout, s + 4, 0.5f, 1.5f), .b = rnd(B, cout, s + 5, -0.1f, 0.1f),
                         .dim = cout, .groups = 32, .eps = 1e-6f};
    float *w2 = rnd(B, (int64_t)cout * cout * 9, s + 6, -a2, a2);
    r->conv2 = sx_conv_f32(w2, rnd(B, cout, s + 7, -0.1f, 0.1f), cout, cout, 3, 1, 1);
    if (cin != cout) {
        float a3 = bound(cin);
        float *w3 = rnd(B, (int64_t)cout * cin, s + 8, -a3, a3);
        r->conv_shortcut = sx_conv_f32(w3, rnd(B, cout, s + 9, -0.1f, 0.1f), cin, cout, 1, 1, 0);
    }
}

static void check_resnet(const char *name) {
    char key[64];
    snprintf(key, sizeof key, "%s.dims", name);
    int64_t d[7];
    for (int i = 0; i < 7; i++) {
        if (sx_meta_arr_int(rs_g, key, (uint64_t)i, &d[i]) != 0) {
            CHECKF(0, "%s", sx_errmsg());
            return;
        }
    }
    int cin = (int)d[0], cout = (int)d[1];
    int64_t H = d[2], W = d[3], HW = H * W, stride = d[6], npx = (HW + stride - 1) / stride;
    snprintf(key, sizeof key, "%s.y", name);
    const float *exp = fx(rs_g, key, cout * npx);
    if (!exp) {
        CHECK(0);
        return;
    }
    bufs B = {{0}, 0};
    sx_resnet r;
    make_resnet(&r, &B, cin, cout, (uint64_t)d[4]);
    float *x = malloc(sizeof(float) * (size_t)(cin * HW)), *y = malloc(sizeof(float) * (size_t)(cout * HW));
    sx_rand_uniform(x, cin * HW, (uint64_t)d[5], -2.0f, 2.0f);
    sx_arena ws = {0};
    CHECK_OK(sx_resnet_forward(&r, y, x, H, W, NULL, &ws));
    sx_arena_free(&ws);
    free(x);
    float *got = malloc(sizeof(float) * (size_t)(cout * npx));
    for (int64_t c = 0; c < cout; c++)
        for (int64_t k = 0; k < npx; k++) got[c * npx + k] = y[c * HW + k * stride];
    char what[96];
    snprintf(what, sizeof what, "resnet %d->%d at %lldx%lld", cin, cout, (long long)H, (long long)W);
    CHECK_CLOSE(what, got, exp, cout * npx, 1e-4);
    free(got);
    free(y);
    bufs_free(&B);
}

static void test_real_resnet(void) {
    if (t_skip_emulated("real-shape resnets")) return;
    check_resnet("res256");
    check_resnet("res_sc");
}

/* the full 1024x1024 128-channel resnet: ~0.6 TFLOP, run when SEEDX_TEST_SLOW=1 */
static void test_real_resnet_1024(void) {
    if (!getenv("SEEDX_TEST_SLOW")) {
        printf("    (skipped: set SEEDX_TEST_SLOW=1 for the 1024x1024 resnet)\n");
        return;
    }
    check_resnet("res1024");
}

static void check_attention(const char *name) {
    char key[64];
    int64_t d[6];
    snprintf(key, sizeof key, "%s.dims", name);
    for (int i = 0; i < 6; i++)
        if (sx_meta_arr_int(rs_g, key, (uint64_t)i, &d[i]) != 0) {
            CHECKF(0, "%s", sx_errmsg());
            return;
        }
    int64_t C = d[0], H = d[1], W = d[2], T = H * W, stride = d[5], nt = (T + stride - 1) / stride;
    uint64_t s = (uint64_t)d[3];
    snprintf(key, sizeof key, "%s.y", name);
    const float *exp = fx(rs_g, key, C * nt);
    if (!exp) {
        CHECK(0);
        return;
    }
    bufs B = {{0}, 0};
    sx_vae_attn a;
    memset(&a, 0, sizeof a);
    float b = bound(C);
    a.group_norm = (sx_norm){.w = rnd(&B, C, s + 0, 0.5f, 1.5f), .b = rnd(&B, C, s + 1, -0.1f, 0.1f),
                             .dim = C, .groups = 32, .eps = 1e-6f};
    sx_linear *ls[4] = {&a.mha.q, &a.mha.k, &a.mha.v, &a.mha.o};
    for (int k = 0; k < 4; k++) {
        float *w = rnd(&B, C * C, s + 2 + 2 * k, -b, b);
        *ls[k] = sx_linear_f32(w, C, C, rnd(&B, C, s + 3 + 2 * k, -0.1f, 0.1f));
    }
    CHECK_OK(sx_mha_init(&a.mha, 1));
    float *x = malloc(sizeof(float) * (size_t)(C * T));
    sx_rand_uniform(x, C * T, (uint64_t)d[4], -1.0f, 1.0f);
    sx_arena ws = {0};
    CHECK_OK(sx_vae_attn_forward(&a, x, x, H, W, &ws)); /* in place */
    sx_arena_free(&ws);
    float *got = malloc(sizeof(float) * (size_t)(C * nt));
    for (int64_t c = 0; c < C; c++)
        for (int64_t k = 0; k < nt; k++) got[c * nt + k] = x[c * T + k * stride];
    char what[96];
    snprintf(what, sizeof what, "mid attention %lldch, %lld tokens", (long long)C, (long long)T);
    CHECK_CLOSE(what, got, exp, C * nt, 1e-4);
    free(got);
    free(x);
    bufs_free(&B);
}

/* 512 channels on 64x64 = 4096 tokens (always); SDXL's 128x128 = 16384 tokens
 * (~0.55 TFLOP) when SEEDX_TEST_SLOW=1 */
static void test_real_attention(void) {
    if (t_skip_emulated("real-shape mid attention, 512 ch x 4096 tokens")) return;
    check_attention("attn64");
    if (getenv("SEEDX_TEST_SLOW"))
        check_attention("attn");
    else
        printf("    (set SEEDX_TEST_SLOW=1 for the 16384-token attention)\n");
}

/* ---- bad input --------------------------------------------------------- */
static int err_has(const char *s) { return strstr(sx_errmsg(), s) != NULL; }

static void test_bad_input(void) {
    sx_vae *v = load("f32");
    CHECK(v);
    if (!v) return;
    float *buf = calloc(3 * 64 * 64 * 4, sizeof(float)), *out = calloc(3 * 64 * 64 * 4, sizeof(float));
    CHECK(sx_vae_decode(v, buf, 8, 16, 16, 0, out) == -1 && err_has("8 channels") &&
          err_has("expects 4"));
    CHECK(sx_vae_decode(v, buf, 4, 0, 16, 0, out) == -1 && err_has("latent size"));
    CHECK(sx_vae_decode(v, buf, 4, 16, -3, 0, out) == -1);
    CHECK(sx_vae_decode(v, buf, 4, 100000, 16, 0, out) == -1 && err_has("out of range"));
    CHECK(sx_vae_decode(v, NULL, 4, 16, 16, 0, out) == -1);
    CHECK(sx_vae_encode(v, buf, 4, 32, 32, 0, out, NULL) == -1 && err_has("4 channels"));
    CHECK(sx_vae_encode(v, buf, 3, 33, 32, 0, out, NULL) == -1 && err_has("multiples of 2"));
    CHECK(sx_vae_encode(v, buf, 3, 32, 31, 0, out, NULL) == -1 && err_has("31"));
    v->tile_sample_size = 60; /* not a multiple of 4*2 */
    CHECK(sx_vae_decode(v, buf, 4, 40, 40, 1, out) == -1 && err_has("tile size 60"));
    v->tile_sample_size = 0;
    sx_image im = {0};
    CHECK(sx_vae_to_rgb8(buf, 4, 8, 8, &im) == -1 && err_has("4 channels") && !im.data);
    /* odd latent sizes are valid for the decoder (as in diffusers) */
    CHECK_OK(sx_vae_decode(v, buf, 4, 7, 5, 0, out));
    free(buf);
    free(out);
    sx_vae_free(v);
    /* layer functions */
    sx_resnet r;
    memset(&r, 0, sizeof r);
    r.cin = 64;
    r.cout = 32; /* channel change without conv_shortcut */
    float y[64] = {0}, x[64] = {0}, wq[16] = {0};
    sx_arena ws = {0};
    CHECK(sx_resnet_forward(&r, y, x, 1, 1, NULL, &ws) == -1 && err_has("cin 64"));
    sx_vae_attn a;
    memset(&a, 0, sizeof a);
    a.group_norm.dim = 8;
    a.group_norm.groups = 4;
    a.mha.q = a.mha.k = a.mha.v = a.mha.o = sx_linear_f32(wq, 4, 4, NULL);
    CHECK(sx_vae_attn_forward(&a, x, x, 2, 2, &ws) == -1 && err_has("expected [8,8]"));
    sx_arena_free(&ws);
    /* a container that is not a VAE */
    sx_vae *w = NULL;
    CHECK(sx_vae_load(FIX "tiny_io.gguf", &w) == -1 && !w && err_has("seedx.vae") &&
          err_has("tiny_io.gguf"));
    CHECK(sx_vae_load(FIX "does_not_exist.gguf", &w) == -1 && !w);
}

int main(void) {
    TEST_INIT();
    if (sx_gguf_open(FIX "tiny_io.gguf", &io_g) != 0 || sx_gguf_open(FIX "real_shape.gguf", &rs_g) != 0) {
        fprintf(stderr, "fixtures: %s\n", sx_errmsg());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_tiny_decode);
    RUN(test_tiny_encode);
    RUN(test_tiny_rgb8);
    RUN(test_tiny_tiled);
    RUN(test_tiny_half);
    RUN(test_deterministic);
    RUN(test_bad_input);
    RUN(test_real_resnet);
    RUN(test_real_resnet_1024);
    RUN(test_real_attention);
    sx_gguf_close(io_g);
    sx_gguf_close(rs_g);
    return TEST_DONE();
}
