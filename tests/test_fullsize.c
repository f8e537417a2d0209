/* tests/test_fullsize.c - the full-size generator's tiny twin (issue #16).
 *
 * tests/fixtures/fullsize/model/ is what scripts/fixtures_fullsize.py gets from
 * make_fullsize.py --scale tiny (random weights written in the official on-disk
 * layout: QwenViT .pt, agent .bin, HF llm shards, both de-tokenizer stages, the
 * diffusers unet/vae/scheduler folders) converted by convert.py --pretrained
 * --variant seed-x-edit --dtype bf16; tests/fixtures/fullsize/manifest.txt holds
 * the sha256 of every official and converted file, so `make fixtures` shows any
 * drift of the generator or the converter. Here every mode runs on that model
 * as a user runs it (./seedx from the repository root, --trace on) and each
 * output is checked: exit status, image size, an image that is not one flat
 * colour, text for the LLM modes, and every traced module output finite. */
#include <dirent.h>
#include <math.h>
#include <sys/stat.h>

#include "test.h"

#define M_ "tests/fixtures/fullsize/model"
#define I_ "tests/fixtures/seedx_e2e/img_c.png"

/* Runs ENV ./seedx --trace B/fs_<tag> ARGS > B/fs_<tag>.txt; returns the exit status. */
static int run_mode_env(const char *tag, const char *env, const char *args) {
    char *cmd =
        sx_strf("rm -rf %s/fs_%s && %s ./seedx --threads 2 --trace %s/fs_%s %s > %s/fs_%s.txt 2>&1",
                t_build(), tag, env, t_build(), tag, args, t_build(), tag);
    int st = system(cmd);
    if (st != 0) fprintf(stderr, "    failed (%d): %s\n", st, cmd);
    free(cmd);
    return st;
}
static int run_mode(const char *tag, const char *args) {
    return run_mode_env(tag, "", args);
}

/* Every .npy under the trace folder is finite; returns the number of files
 * (0 when a file is unreadable or has a NaN/Inf, named on stderr). */
static int traces_finite(const char *tag) {
    char *dir = sx_strf("%s/fs_%s", t_build(), tag);
    DIR *d = opendir(dir);
    int n = 0, bad = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".npy")) continue;
        char *p = sx_strf("%s/%s", dir, e->d_name);
        float *x = NULL;
        int nd = 0;
        int64_t shape[4], cnt = 0;
        if (sx_npy_read(p, &x, &nd, shape, &cnt)) {
            fprintf(stderr, "    %s: %s\n", p, sx_errmsg());
            bad = 1;
        }
        for (int64_t i = 0; i < cnt && !bad; i++)
            if (!isfinite(x[i])) {
                fprintf(stderr, "    %s: element %lld is %g\n", p, (long long)i, x[i]);
                bad = 1;
            }
        free(x);
        free(p);
        n++;
    }
    if (d) closedir(d);
    free(dir);
    return bad ? 0 : n;
}

/* The PNG is w x h and not a single flat colour. */
static int image_ok(const char *name, int w, int h) {
    char *p = sx_strf("%s/%s", t_build(), name);
    sx_image im = {0};
    int ok = !sx_image_load_rgb(p, &im) && im.w == w && im.h == h;
    if (ok) {
        int lo = 255, hi = 0;
        for (int64_t i = 0; i < (int64_t)im.w * im.h * 3; i++) {
            lo = im.data[i] < lo ? im.data[i] : lo;
            hi = im.data[i] > hi ? im.data[i] : hi;
        }
        ok = hi - lo > 8;
        if (!ok) fprintf(stderr, "    %s: flat image (%d..%d)\n", p, lo, hi);
    } else {
        fprintf(stderr, "    %s: not a %dx%d image (%dx%d)\n", p, w, h, im.w, im.h);
    }
    sx_image_free(&im);
    free(p);
    return ok;
}

/* The text the LLM mode printed (stdout and stderr) holds more than the command's own lines. */
static int printed_text(const char *tag) {
    char *p = sx_strf("%s/fs_%s.txt", t_build(), tag);
    uint8_t *b = NULL;
    size_t n = 0;
    int ok = !sx_read_file(p, &b, &n) && n > 0;
    free(b);
    free(p);
    return ok;
}

#define SMALL "--size 64x64 --steps 2 -q"

static void test_comprehension(void) {
    CHECK(run_mode("chat", "chat -m " M_ " --image " I_ " -p 'Describe it.' -n 8") == 0);
    CHECK(printed_text("chat"));
    CHECKF(traces_finite("chat") >= 3, "traces of chat");
}

static void test_grounding(void) {
    char *o =
        sx_strf("ground -m " M_ " --image " I_ " -p 'Where?' -n 8 -o %s/fs_ground.png", t_build());
    CHECK(run_mode("ground", o) == 0);
    CHECK(printed_text("ground"));
    CHECK(traces_finite("ground") >= 3);
    free(o);
}

/* An image mode: ARGS -o B/fs_<tag>.png; a 64x64 image that is not flat and at
 * least 5 traced modules, all finite. */
static void image_mode(const char *tag, const char *args) {
    char *o = sx_strf("%s -o %s/fs_%s.png " SMALL, args, t_build(), tag);
    char *png = sx_strf("fs_%s.png", tag);
    CHECKF(run_mode(tag, o) == 0, "%s", tag);
    CHECKF(image_ok(png, 64, 64), "%s", tag);
    CHECKF(traces_finite(tag) >= 5, "%s", tag);
    free(o);
    free(png);
}

static void test_text_to_image(void) {
    image_mode("t2i", "generate -m " M_ " -p 'a cat' --force-image");
}

static void test_editing(void) {
    image_mode("edit", "edit -m " M_ " --image " I_ " -p 'make it red' --force-image");
}

static void test_reconstruction(void) {
    image_mode("rec", "reconstruct -m " M_ " --image " I_);
    image_mode("recc", "reconstruct -m " M_ " --image " I_ " --condition " I_);
}

/* SEEDX_TRACE_ONLY keeps the trace to the named modules (what the real-size
 * rehearsal uses: a whole trace there is tens of GB). */
static void test_trace_only(void) {
    char *o = sx_strf("reconstruct -m " M_ " --image " I_ " -o %s/fs_only.png " SMALL, t_build());
    CHECK(run_mode_env("only", "SEEDX_TRACE_ONLY=ln_post,conv_out,nosuch", o) == 0);
    free(o);
    CHECKF(traces_finite("only") == 2, "%d traced files, want ln_post and conv_out",
           traces_finite("only"));
    char *p = sx_strf("%s/fs_only/conv_out.npy", t_build()),
         *q = sx_strf("%s/fs_only/ln_post.npy", t_build());
    struct stat st;
    CHECK(stat(p, &st) == 0 && stat(q, &st) == 0);
    free(p);
    free(q);
}

int main(void) {
    TEST_INIT();
    RUN(test_comprehension);
    RUN(test_grounding);
    RUN(test_text_to_image);
    RUN(test_editing);
    RUN(test_reconstruction);
    RUN(test_trace_only);
    return TEST_DONE();
}
