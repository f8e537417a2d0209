/* tests/test_nn.c - the shared layers (nn.c) on their own:
 *   - the scratch arena: alignment, marks, reuse without growth, earlier
 *     blocks kept when chunks are added, consolidation, bad requests;
 *   - loaders by module path on the tiny UNet fixture: shapes checked and the
 *     tensor named in errors, 1x1 convs accepted as linear layers (3x3 not),
 *     missing tensors, GroupNorm groups, attention heads;
 *   - the layers give the bytes of the kernel-op sequence they stand for
 *     (ResnetBlock2D with a shortcut and a time embedding: on the scalar
 *     path, within 1e-6 on the SIMD ones; attention with the residual added
 *     in the epilogue). Their numerics against PyTorch are the
 *     model tests' (test_unet, test_vae, test_vit, test_detok). */
#include "test.h"
#include "nn.h"

#define UNET "tests/fixtures/unet/tiny_unet.gguf"

static int err_has(const char *s) { return strstr(sx_errmsg(), s) != NULL; }

static sx_gguf *G; /* the tiny UNet */

static void test_arena(void) {
    sx_arena a = {0};
    CHECK(sx_arena_bytes(&a) == 0);
    sx_arena_mark m0 = sx_arena_top(&a);
    float *p0 = sx_arena_floats(&a, 0, "empty");
    float *p1 = sx_arena_floats(&a, 1001, "p1");
    float *p2 = sx_arena_floats(&a, 7, "p2");
    CHECK(p0 && p1 && p2 && p1 != p0 && p2 != p1);
    CHECK(((uintptr_t)p0 | (uintptr_t)p1 | (uintptr_t)p2) % 64 == 0);
    for (int i = 0; i < 1001; i++) p1[i] = (float)i;
    /* a request larger than any chunk adds one; the blocks below stay */
    sx_arena_mark m1 = sx_arena_top(&a);
    float *big = sx_arena_floats(&a, (int64_t)3 << 20, "big");
    CHECK(big != NULL && (uintptr_t)big % 64 == 0);
    if (big) big[((int64_t)3 << 20) - 1] = 1.0f;
    int kept = 1;
    for (int i = 0; i < 1001; i++) kept &= p1[i] == (float)i;
    CHECK(kept);
    /* the same pattern again after a release: same memory, no growth */
    size_t bytes = sx_arena_bytes(&a);
    sx_arena_release(&a, m1);
    CHECK(sx_arena_floats(&a, (int64_t)3 << 20, "big") == big);
    sx_arena_release(&a, m0);
    CHECK(sx_arena_floats(&a, 0, "empty") == p0 && sx_arena_floats(&a, 1001, "p1") == p1);
    CHECK(sx_arena_bytes(&a) == bytes);
    /* from the bottom, a request larger than the first chunk replaces it and
     * the free chunks after it by one chunk of that size */
    sx_arena_release(&a, m0);
    float *huge = sx_arena_floats(&a, (int64_t)5 << 20, "huge");
    CHECK(huge != NULL && sx_arena_bytes(&a) == ((size_t)5 << 20) * sizeof(float));
    /* bad requests */
    CHECK(sx_arena_floats(&a, -1, "negative") == NULL && err_has("negative"));
    CHECK(sx_arena_floats(NULL, 4, "no arena") == NULL);
    sx_arena_free(&a);
    CHECK(sx_arena_bytes(&a) == 0 && a.n_chunks == 0);
    sx_arena_free(&a); /* twice: harmless */
}

static void test_loaders(void) {
    sx_src s = sx_src_one(G);
    sx_linear l;
    CHECK_OK(sx_linear_load(&s, "time_embedding.linear_1", 128, 32, SX_BIAS, &l));
    CHECK(l.w.N == 128 && l.w.K == 32 && l.b != NULL);
    CHECK(sx_linear_load(&s, "time_embedding.linear_1", 128, 64, SX_BIAS, &l) == -1 &&
          err_has("'time_embedding.linear_1.weight' has shape [128,32], expected [128,64]"));
    CHECK(sx_linear_load(&s, "nothing.here", 4, 4, SX_NO_BIAS, &l) == -1 &&
          err_has("'nothing.here.weight' not found"));
    /* a 1x1 convolution is a linear layer; a 3x3 one is not, whatever its size */
    CHECK_OK(sx_linear_load(&s, "down_blocks.1.resnets.0.conv_shortcut", 64, 32, SX_BIAS, &l));
    CHECK(sx_linear_load(&s, "down_blocks.1.resnets.0.conv1", 64, 32 * 9, SX_BIAS, &l) == -1 &&
          err_has("down_blocks.1.resnets.0.conv1.weight"));
    sx_conv_layer cv;
    CHECK_OK(sx_conv_load(&s, "conv_in", 4, 32, 3, 1, 1, &cv));
    CHECK(cv.c.cin == 4 && cv.c.cout == 32 && cv.c.kh == 3 && cv.c.pad_r == 1 && cv.b != NULL);
    CHECK(sx_conv_load(&s, "conv_in", 4, 32, 1, 1, 0, &cv) == -1 && err_has("conv_in.weight") &&
          err_has("expected [32,4,1,1]"));
    sx_norm n;
    CHECK_OK(sx_groupnorm_load(&s, "down_blocks.1.resnets.0.norm2", 64, 32, 1e-5f, &n));
    CHECK(sx_groupnorm_load(&s, "down_blocks.1.resnets.0.norm2", 64, 24, 1e-5f, &n) == -1 &&
          err_has("24 groups"));
    CHECK(sx_layernorm_load(&s, "down_blocks.1.resnets.0.norm2", 32, 1e-5f, &n) == -1 &&
          err_has("norm2.weight"));
    sx_resnet r;
    CHECK_OK(sx_resnet_load(&s, "down_blocks.1.resnets.0", 32, 64, 128, 32, 1e-5f, &r));
    CHECK(r.conv_shortcut.w.data && r.time_emb_proj.w.data && r.norm2.groups == 32);
    CHECK(sx_resnet_load(&s, "down_blocks.1.resnets.0", 32, 64, 256, 32, 1e-5f, &r) == -1 &&
          err_has("time_emb_proj.weight"));
    sx_mha m;
    const char *attn1 = "down_blocks.1.attentions.0.transformer_blocks.0.attn1";
    CHECK_OK(sx_mha_load_diffusers(&s, attn1, 64, 64, 4, SX_NO_BIAS, &m));
    CHECK(m.heads == 4 && m.scale == 0.25f && !m.q.b && m.o.b);
    CHECK(sx_mha_load_diffusers(&s, attn1, 64, 64, 3, SX_NO_BIAS, &m) == -1 &&
          err_has("3 heads do not divide the width 64"));
}

/* ResnetBlock2D = the kernel ops in diffusers' order: byte for byte on the
 * scalar path; on the SIMD paths within 1e-6 (the fused GroupNorm -> SiLU
 * in front of each conv uses their own exp, sx_conv2d_fused); the same
 * bytes for 1 and 2 threads */
static void test_resnet_bytes(void) {
    sx_src s = sx_src_one(G);
    sx_resnet r;
    CHECK_OK(sx_resnet_load(&s, "down_blocks.1.resnets.0", 32, 64, 128, 32, 1e-5f, &r));
    const int64_t H = 9, W = 7, HW = H * W;
    float *x = malloc(sizeof(float) * 32 * HW), *temb = malloc(sizeof(float) * 128);
    float *y = malloc(sizeof(float) * 64 * HW), *ref = malloc(sizeof(float) * 64 * HW);
    float *y2 = malloc(sizeof(float) * 64 * HW);
    float *h = malloc(sizeof(float) * 64 * HW), *t = malloc(sizeof(float) * 64 * HW), tp[64];
    sx_rand_uniform(x, 32 * HW, 5, -2, 2);
    sx_rand_uniform(temb, 128, 6, -1, 1);
    sx_arena ws = {0};
    int nt = sx_threads_count();
    for (int level = SX_SIMD_SCALAR; level <= SX_SIMD_AVX512; level++) {
        if (!sx_simd_supported(level)) continue;
        sx_threads_init(1); /* (re-initialises the SIMD path: set it after) */
        sx_simd_set(level);
        CHECK_OK(sx_resnet_forward(&r, y, x, H, W, temb, &ws));
        CHECK_OK(sx_groupnorm(h, x, r.norm1.w, r.norm1.b, 32, HW, 32, 1e-5f));
        sx_silu(h, h, 32 * HW);
        CHECK_OK(sx_conv2d(t, h, H, W, &r.conv1.c, &r.conv1.w, r.conv1.b, NULL, NULL));
        CHECK_OK(sx_matmul(tp, temb, &r.time_emb_proj.w, r.time_emb_proj.b, 1));
        sx_add_channel(t, tp, 64, HW);
        CHECK_OK(sx_groupnorm(t, t, r.norm2.w, r.norm2.b, 64, HW, 32, 1e-5f));
        sx_silu(t, t, 64 * HW);
        CHECK_OK(sx_conv2d(ref, t, H, W, &r.conv2.c, &r.conv2.w, r.conv2.b, NULL, NULL));
        CHECK_OK(sx_conv2d(h, x, H, W, &r.conv_shortcut.c, &r.conv_shortcut.w, r.conv_shortcut.b,
                           NULL, NULL));
        sx_add(ref, h, ref, 64 * HW);
        if (level == SX_SIMD_SCALAR)
            CHECK(memcmp(y, ref, sizeof(float) * 64 * HW) == 0);
        else
            CHECK_CLOSE(sx_simd_name(level), y, ref, 64 * HW, 1e-6);
        sx_threads_init(2);
        sx_simd_set(level);
        CHECK_OK(sx_resnet_forward(&r, y2, x, H, W, temb, &ws));
        CHECK(memcmp(y, y2, sizeof(float) * 64 * HW) == 0);
    }
    sx_threads_init(nt);
    /* the arena is back where it was; a missing time embedding is refused, as
     * is a GroupNorm that does not match the conv it feeds */
    CHECK(ws.cur == 0 && ws.off == 0);
    CHECK(sx_resnet_forward(&r, y, x, H, W, NULL, &ws) == -1 && err_has("sx_resnet_forward"));
    CHECK(sx_norm_conv_forward(&r.norm2, SX_ACT_SILU, &r.conv1, y, x, H, W, 0) == -1 &&
          err_has("does not feed conv"));
    sx_arena_free(&ws);
    free(x), free(temb), free(y), free(y2), free(ref), free(h), free(t);
}

/* attention with the residual in the epilogue = attention, then an add */
static void test_mha_bytes(void) {
    sx_src s = sx_src_one(G);
    sx_mha m;
    CHECK_OK(sx_mha_load_diffusers(&s, "down_blocks.1.attentions.0.transformer_blocks.0.attn2", 64,
                                   64, 4, SX_NO_BIAS, &m));
    const int64_t Tq = 37, Tk = 9;
    float *xq = malloc(sizeof(float) * Tq * 64), *ctx = malloc(sizeof(float) * Tk * 64);
    float *y = malloc(sizeof(float) * Tq * 64), *ref = malloc(sizeof(float) * Tq * 64);
    float *o = malloc(sizeof(float) * Tq * 64);
    sx_rand_uniform(xq, Tq * 64, 7, -1, 1);
    sx_rand_uniform(ctx, Tk * 64, 8, -1, 1);
    sx_rand_uniform(y, Tq * 64, 9, -1, 1);
    memcpy(ref, y, sizeof(float) * Tq * 64);
    sx_arena ws = {0};
    CHECK_OK(sx_mha_forward(&m, o, xq, Tq, ctx, ctx, Tk, 0, &ws));
    sx_add(ref, ref, o, Tq * 64);
    CHECK_OK(sx_mha_forward(&m, y, xq, Tq, ctx, ctx, Tk, 1, &ws));
    CHECK(memcmp(y, ref, sizeof(float) * Tq * 64) == 0);
    CHECK(sx_mha_forward(&m, y, xq, 0, ctx, ctx, Tk, 0, &ws) == -1);
    sx_arena_free(&ws);
    free(xq), free(ctx), free(y), free(ref), free(o);
}

int main(void) {
    TEST_INIT();
    if (sx_gguf_open(UNET, &G) != 0) {
        fprintf(stderr, "%s\n", sx_errmsg());
        return 1;
    }
    RUN(test_arena);
    RUN(test_loaders);
    RUN(test_resnet_bytes);
    RUN(test_mha_bytes);
    sx_gguf_close(G);
    return TEST_DONE();
}
