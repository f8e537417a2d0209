/* tests/example_api.c - seedx.c used as a library, through seedx.h only:
 * one image + a question -> text, then text -> a 64x64 image.
 *
 *   cc -I PREFIX/include/seedx example_api.c PREFIX/lib/libseedx.a -lm -lpthread
 *   ./a.out PREFIX/share/seedx/tiny-model IMAGE.png OUT.png
 *
 * make test builds it against the installed headers and library (make install
 * into the build directory) and runs it on the tiny random-weight model, whose
 * answers are noise: the exit status says only that each result is well-formed. */
#include <stdio.h>
#include <stdlib.h>

#include "seedx.h"

static int fail(const char *what) {
    fprintf(stderr, "example_api: %s: %s\n", what, sx_errmsg());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4) return fprintf(stderr, "usage: example_api MODEL_DIR IMAGE OUT.png\n"), 2;
    sx_seedx *m;
    sx_image im, out;
    if (sx_init(0) || sx_seedx_open(argv[1], &m) || sx_image_load_rgb(argv[2], &im))
        return fail("setup");
    sx_seedx_opts o;
    sx_seedx_opts_default(&o); /* greedy, as the official scripts */
    o.max_new_tokens = 16;

    /* comprehension: the image's any-res features are spliced into the prompt */
    float *feats;
    int64_t rows, n;
    int tiles, *ids;
    sx_seedx_reply r = {0};
    if (sx_seedx_encode_images(m, &im, 1, NULL, &feats, &rows, &tiles) ||
        sx_seedx_build_prompt(m, "What is in this image?", &tiles, 1, &ids, &n) ||
        sx_seedx_generate(m, ids, n, feats, rows, &o, &r))
        return fail("comprehension");
    printf("answer (%lld tokens): %s\n", (long long)r.n_ids, r.clean);
    int ok = r.n_ids > 0 && r.text[0] != 0;
    free(feats), free(ids), sx_seedx_reply_free(&r);

    /* text-to-image: a prompt ending in <img> makes the LLM emit the 64 image
     * tokens; their output-resampler features go through the de-tokenizer */
    o.max_new_tokens = 80, o.width = o.height = 64, o.steps = 4;
    const char *t2i = "[INST] {TEXT} [/INST]\n<img>"; /* seed-x-i's template + <img> */
    if (sx_seedx_build_prompt_t(m, t2i, "Generate an image: a red square", NULL, 0, &ids, &n) ||
        sx_seedx_generate(m, ids, n, NULL, 0, &o, &r) || r.n_images < 1 ||
        sx_seedx_decode_generated(m, r.img_gen_feat, 0, NULL, &o, &out) ||
        sx_image_save(argv[3], &out))
        return fail(r.n_images < 1 ? "no image tokens" : "text-to-image");
    printf("image: %dx%d -> %s\n", out.w, out.h, argv[3]);
    ok &= out.w == 64 && out.h == 64 && out.channels == 3;
    free(ids), sx_seedx_reply_free(&r), sx_image_free(&out), sx_image_free(&im);
    sx_seedx_free(m);
    return ok ? 0 : 1;
}
