/* tests/test_install.c - `make install` and the library on its own.
 *
 * make test installs into $SEEDX_TEST_BUILD/install-test and builds
 * tests/example_api.c against the installed headers and libseedx.a only
 * (Makefile). Here: the installed tree is complete, the installed seedx runs
 * its demo from another directory (it finds the tiny model next to itself),
 * and the example program runs comprehension and text-to-image. */
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

static char prefix[600];

/* The command that runs a program of this build: empty, or the emulator
 * under tests/run_emulated.sh (make test-aarch64). */
static const char *run_with(void) {
    const char *e = getenv("SEEDX_TEST_EXEC");
    return e ? e : "";
}

static int is_file(const char *dir, const char *name) {
    char p[1200];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* Every quoted #include of the installed headers, followed from seedx.h, is
 * installed too; the binary, the library and the tiny model are in place. */
static void test_installed_tree(void) {
    char inc[800];
    snprintf(inc, sizeof inc, "%s/include/seedx", prefix);
    const char *todo[32] = {"seedx.h"};
    int n = 1;
    for (int i = 0; i < n; i++) {
        CHECKF(is_file(inc, todo[i]), "%s/%s not installed", inc, todo[i]);
        char p[1200], line[512];
        snprintf(p, sizeof p, "%s/%s", inc, todo[i]);
        FILE *f = fopen(p, "r");
        if (!f) continue;
        while (fgets(line, sizeof line, f)) {
            char h[128];
            if (sscanf(line, "#include \"%127[^\"]\"", h) != 1) continue;
            int seen = 0;
            for (int k = 0; k < n; k++) seen |= !strcmp(todo[k], h);
            if (!seen && n < 32) todo[n++] = strdup(h);
        }
        fclose(f);
    }
    CHECKF(n >= 12, "seedx.h reaches only %d headers", n);
    for (int i = 1; i < n; i++) free((char *)todo[i]);
    char d[800];
    snprintf(d, sizeof d, "%s/bin", prefix);
    CHECK(is_file(d, "seedx"));
    snprintf(d, sizeof d, "%s/lib", prefix);
    CHECK(is_file(d, "libseedx.a"));
    const char *model[] = {"tokenizer.gguf", "vit.gguf", "agent.gguf", "llm.gguf",
                           "detokenizer.gguf", "unet.gguf", "vae.gguf", "detokenizer_edit.gguf",
                           "unet_edit.gguf"};
    snprintf(d, sizeof d, "%s/share/seedx/tiny-model", prefix);
    for (size_t i = 0; i < sizeof model / sizeof model[0]; i++)
        CHECKF(is_file(d, model[i]), "%s/%s", d, model[i]);
}

static void check_png(const char *dir, const char *name, int w, int h) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    sx_image im;
    CHECKF(sx_image_load_rgb(p, &im) == 0, "%s", sx_errmsg());
    CHECKF(im.w == w && im.h == h, "%s: %dx%d, expected %dx%d", p, im.w, im.h, w, h);
    sx_image_free(&im);
}

/* cd / && PREFIX/bin/seedx demo -o DIR: every stage ok, every image written. */
static void test_installed_demo(void) {
    /* all six modes again (test_seedx_e2e has them): minutes under emulation */
    if (t_skip_emulated("the installed seedx's demo")) return;
    char out[800], cmd[4096];
    snprintf(out, sizeof out, "%s/install-demo-out", prefix);
    snprintf(cmd, sizeof cmd, "rm -rf %s && cd / && %s %s/bin/seedx demo -o %s > %s.log 2>&1", out,
             run_with(), prefix, out, out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "grep -q '^demo: 6 of 6 stages ok' %s.log", out);
    CHECKF(system(cmd) == 0, "see %s.log", out);
    snprintf(cmd, sizeof cmd, "grep -q 'SEED-X from %s/share/seedx/tiny-model ' %s.log", prefix,
             out);
    CHECKF(system(cmd) == 0, "the demo did not use the installed model (see %s.log)", out);
    check_png(out, "input.png", 640, 480);
    check_png(out, "ground.png", 640, 480);
    const char *gen[] = {"generate.png", "edit.png", "reconstruct.png", "reconstruct_cond.png"};
    for (size_t i = 0; i < sizeof gen / sizeof gen[0]; i++) check_png(out, gen[i], 64, 64);
}

/* The example program (built against the installed tree) from another
 * directory: a non-empty answer and a 64x64 image. */
static void test_example_api(void) {
    char out[800], cmd[4096];
    char *bld = realpath(t_build(), NULL);
    char *img = realpath("tests/fixtures/seedx_e2e/img_a.png", NULL);
    CHECK(bld && img);
    snprintf(out, sizeof out, "%s/example_api.png", prefix);
    remove(out);
    snprintf(cmd, sizeof cmd,
             "cd / && %s %s/tests/example_api %s/share/seedx/tiny-model %s %s > %s.log 2>&1",
             run_with(), bld, prefix, img, out, out);
    free(bld);
    free(img);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "grep -q '^answer ([1-9][0-9]* tokens): ..*' %s.log", out);
    CHECKF(system(cmd) == 0, "no answer (see %s.log)", out);
    check_png(prefix, "example_api.png", 64, 64);
}

int main(void) {
    TEST_INIT();
    char *bld = realpath(t_build(), NULL);
    if (!bld || strlen(bld) > 400) return fprintf(stderr, "bad build directory %s\n", t_build()), 1;
    snprintf(prefix, sizeof prefix, "%s/install-test", bld);
    free(bld);
    RUN(test_installed_tree);
    RUN(test_installed_demo);
    RUN(test_example_api);
    return TEST_DONE();
}
