/* tests/test_cli.c - the command line as a user meets it (issue #12): every
 * rejected argument is rejected at once (no stage ran), inputs of any length
 * (paths, templates, prompts, REPL lines) neither corrupt memory (run under
 * make test-asan) nor get cut, the REPL survives failed turns, NaN/Inf is an
 * error naming its stage, every command has --help and takes the common
 * options before or after its name, the demo prints commands that paste
 * back, and the README's marked example blocks run verbatim.
 *
 * ./seedx runs through sh from the repository root; files go under t_build().
 * The front-end's own functions (cli.h) are linked in (Makefile). */
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "test.h"

#define M_ "tests/fixtures/seedx_e2e/model"
#define I_ "tests/fixtures/seedx_e2e/img_a.png"

typedef struct {
    int rc;
    char *out, *err;
    double secs;
} run_t;

static char *slurp(const char *path) {
    uint8_t *b = NULL;
    size_t n = 0;
    if (sx_read_file(path, &b, &n)) return sx_strf("%s", "");
    char *s = realloc(b, n + 1);
    if (!s) {
        free(b);
        return sx_strf("%s", "");
    }
    s[n] = 0;
    return s;
}

/* Runs `sh -c CMD` (printf-style) with M, I and B (the build dir) set in the
 * shell, stdin from /dev/null unless CMD redirects it; captures stdout and
 * stderr. */
static run_t run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static run_t run(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    if (vasprintf(&cmd, fmt, ap) < 0) cmd = NULL;
    va_end(ap);
    run_t r = {-1, NULL, NULL, 0};
    char *o = sx_strf("%s/cli_out.txt", t_build()), *e = sx_strf("%s/cli_err.txt", t_build());
    char *script = sx_strf("%s/cli_cmd.sh", t_build());
    FILE *f = fopen(script, "w");
    if (f) {
        fprintf(f, "M=%s; I=%s; B=%s\n%s\n", M_, I_, t_build(), cmd);
        fclose(f);
    }
    char *full = sx_strf("sh %s < /dev/null > %s 2> %s", script, o, e);
    double t0 = sx_time();
    int st = system(full);
    r.secs = sx_time() - t0;
    r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = slurp(o);
    r.err = slurp(e);
    free(cmd), free(o), free(e), free(script), free(full);
    return r;
}
static void run_free(run_t *r) {
    free(r->out);
    free(r->err);
}

/* the line a stage prints when it has run, if one starts a line of err */
static const char *stage_mark(const char *err) {
    static const char *marks[] = {"vision:", "llm:", "de-tokenizer:", "denoise ", "prefill ", "vae  ",
                                  "total ", "load "};
    for (const char *l = err; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
            if (!strncmp(l, marks[i], strlen(marks[i]))) return marks[i];
    return NULL;
}

/* ---- every rejected argument: at once, with a message, no stage, no file */
static void test_rejected_at_once(void) {
    /* a model whose unet.gguf is the VAE and whose unet_edit.gguf is the
     * 4-channel UNet, another without llm.gguf */
    run_t r = run("rm -rf $B/cli_swap $B/cli_nollm && mkdir -p $B/cli_swap $B/cli_nollm && "
                  "for f in $M/*.gguf; do ln -s \"$PWD/$f\" $B/cli_swap/; ln -s \"$PWD/$f\" $B/cli_nollm/; done && "
                  "ln -sf \"$PWD/$M/vae.gguf\" $B/cli_swap/unet.gguf && "
                  "ln -sf \"$PWD/$M/unet.gguf\" $B/cli_swap/unet_edit.gguf && rm $B/cli_nollm/llm.gguf && "
                  "head -c 30000 /dev/zero | tr '\\0' a > $B/cli_long.txt && "
                  "mkdir -p $B/cli_a_dir.png");
    CHECK(r.rc == 0);
    run_free(&r);
    const struct {
        const char *args, *says;
    } bad[] = {
        {"generate -m $M -p x -o $O --cfg nan", "--cfg"},
        {"generate -m $M -p x -o $O --cfg abc", "--cfg"},
        {"generate -m $M -p x -o $O --cfg inf", "--cfg"},
        {"generate -m $M -p x -o $O --cfg -1", "--cfg"},
        {"generate -m $M -p x -o $O --seed abc", "--seed"},
        {"generate -m $M -p x -o $O --seed -3", "--seed"},
        {"generate -m $M -p x -o $O --steps 4x", "--steps"},
        {"generate -m $M -p x -o $O --steps 1e99", "--steps"},
        {"generate -m $M -p x -o $O --steps 0", "--steps"},
        {"generate -m $M -p x -o $O --steps ''", "--steps"},
        {"generate -m $M -p x -o $O --size 64x64x64", "--size"},
        {"generate -m $M -p x -o $O --size 64", "--size"},
        {"generate -m $M -p x -o $O --size 100x100", "multiples of 8"},
        {"generate -m $M -p x -o $O --size 100000x100000", "--size"},
        {"generate -m $M -p x -o $O --size 16384x16384", "largest square size that fits"},
        {"generate -m $M -p x -o $O -n 0", "-n"},
        {"generate -m $M -p x -o $O -n 5000", "context"},
        {"generate -m $M -p x -o $O --rng torch-gpu", "--rng"},
        {"generate -m $M -p x -o $O --sampler ddim", "--sampler"},
        {"generate -m $M -p x -o $O --dtype f8", "--dtype"},
        {"generate -m $M -p x -o $O --steps", "needs a value"},
        {"generate -m $M -p x -o $O --frobnicate", "unknown option"},
        {"generate -m $M -p x -o $O -v", "unknown option"},
        {"generate -m $M -p x -o $O --image $I", "unknown option '--image'"},
        {"generate -m $M -o $O", "-p"},
        {"generate -m $M -p x -o $B/cli_never.jpg", "unknown output format"},
        {"generate -m $M -p x -o /nonexistent_dir/x.png", "cannot write there"},
        {"generate -m $M -p x -o /proc/x.png", "cannot write there"},
        {"generate -m $M -p x -o $B/cli_a_dir.png", "is a directory"},
        {"generate -m $B/cli_swap -p x -o $O --size 64x64", "unet.gguf is a VAE, expected a UNet"},
        {"edit -m $B/cli_swap --image $I -p x -o $O --size 64x64", "4-channel UNet"},
        {"chat -m $B/cli_nollm -p x", "missing model file llm.gguf"},
        {"generate -m $M -p \"$(cat $B/cli_long.txt)\" -o $O --size 64x64", "context"},
        {"chat -m $M --image $I -p hi --template '{IMG}{IMG}{TEXT}'", "{IMG} once"},
        {"chat -m $M --image $I -p hi --template 'no text'", "{TEXT}"},
        {"chat -m $M --image $I -p '<patch>x</patch>' -n 3", "image-token positions"},
        {"chat -m $M --image $I --image $I -p \"$(cat $B/cli_long.txt)\"", "context"},
        {"chat -m $M --image $I -p x --grids 9x9", "grids"},
        {"chat -m $M --image /no/such.png -p x", "/no/such.png"},
        {"chat -m $M -p x --top-p 5", "--top-p"},
        {"chat -m $M -p x --temp -1", "--temp"},
        {"chat -m $M -p x --top-k -5", "--top-k"},
        {"chat -m /no/such/model -p x", "not a model directory"},
        {"ground -m $M -p x", "--image"},
        {"edit -m $M --image $I -p x -o $O --image-cfg nan", "--image-cfg"},
        {"reconstruct -m $M --image $I -o $O --condition /no/cond.png", "/no/cond.png"},
        {"reconstruct -m $M --image $I -o $O --size 8x16392", "--size"},
        {"--threads 0 version", "--threads"},
        {"version --threads -2", "--threads"},
        {"version --trace", "needs a value"},
        {"lm -m $M -p hi --ctx 99999", "max_position_embeddings"},
        {"lm -m $M -p hi -n 0", "-n"},
        {"lm -m $M -p hi --top-p 1.5", "--top-p"},
        {"vae decode -m $M/vae.gguf --latents x.npy -o $B/cli_never.jpg", "unknown output format"},
        {"vae decode -m $M/vae.gguf --latents x.npy -o $O --tile 0", "--tile"},
        {"unet sample -m $M/unet.gguf --ctx c.npy -o $B/cli_never.npy --cfg nan", "--cfg"},
        {"unet sample -m $M/unet.gguf --ctx c.npy -o $B/cli_never.npy --size 100", "--size"},
        {"unet sample -m $M/unet.gguf --ctx c.npy -o $B/cli_never.npy --time-ids 1,2,3,4,5,6,7", "--time-ids"},
        {"unet randn --shape 1,4,x -o $B/cli_never.npy", "--shape"},
        {"vit -m $M/vit.gguf --random abc", "--random"},
        {"vit -m $M/vit.gguf --zero --size 0", "--size"},
        {"image convert $I $B/cli_never.png --resize 10x", "--resize"},
        {"image convert $I $B/cli_never.gif", "unknown output format"},
        {"image tiles $I --out $B/cli_tiles --grids 0x1", "grids"},
        {"tokenize -m $M --decode 12 abc", "not a token id"},
        {"inspect --frobnicate", "unknown option"},
        {"demo -v", "unknown option"},
        {"serve -m $M --port 80.5", "--port"},
        {"serve -m $M --size 100x100", "multiples of 8"},
        {"serve -m $M --max-body 12k", "--max-body"},
        {"--compute f16 version", "--compute"},
        {"version --compute", "needs a value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = run("O=$B/cli_never.png; rm -f $O; ./seedx %s; rc=$?; test ! -e $O || echo 'OUTPUT FILE "
                "LEFT' >&2; test ! -e $B/cli_never.npy || echo 'OUTPUT FILE LEFT' >&2; exit $rc",
                bad[i].args);
        const char *stage = stage_mark(r.err);
        CHECKF(r.rc != 0 && r.rc != 255, "seedx %s: exit %d", bad[i].args, r.rc);
        CHECKF(strstr(r.err, bad[i].says) != NULL, "seedx %s: stderr lacks '%s':\n%s", bad[i].args,
               bad[i].says, r.err);
        CHECKF(strstr(r.err, "seedx") == r.err, "seedx %s: the message does not start with the command:\n%s",
               bad[i].args, r.err);
        CHECKF(!stage, "seedx %s: a stage ran ('%s'):\n%s", bad[i].args, stage ? stage : "", r.err);
        CHECKF(!strstr(r.err, "OUTPUT FILE LEFT"), "seedx %s left an output file", bad[i].args);
        CHECKF(r.secs < 1.0, "seedx %s: rejected after %.2fs", bad[i].args, r.secs);
        if (getenv("SEEDX_TEST_VERBOSE")) printf("    %.3fs  seedx %s\n      %s", r.secs, bad[i].args, r.err);
        run_free(&r);
    }
}

/* ---- the two overflows of the issue and long inputs everywhere ---------- */
/* A folder under the build dir whose path is about `len` bytes (components of
 * 200), created; malloc'd. */
static char *long_dir(const char *tag, size_t len) {
    sx_str b = {0};
    sx_str_addf(&b, "%s/%s", t_build(), tag);
    mkdir(b.s, 0777);
    while (b.len < len) {
        sx_str_add(&b, "/", 1);
        for (int k = 0; k < 200; k++) sx_str_add(&b, "d", 1);
        mkdir(b.s, 0777);
    }
    return b.s;
}

static void test_long_paths(void) {
    /* image tiles on a ~2000-byte input path: positions.txt names it in full */
    char *d = long_dir("cli_long_in", 2000);
    run_t r = run("cp $I %s/img.png && ./seedx image tiles %s/img.png --out %s/tiles --grids 2x1 > /dev/null && "
                  "cat %s/tiles/positions.txt",
                  d, d, d, d);
    CHECKF(r.rc == 0, "image tiles: %s", r.err);
    CHECK(strstr(r.out, d) != NULL);
    CHECK(strstr(r.out, "\ntile_00.png 0.25 0.5\ntile_01.png 0.75 0.5\nthumbnail_02.png 0.5 0.5\n") != NULL);
    run_free(&r);
    /* -m and -o longer than any fixed buffer the code had (1024-4096) */
    char *m = sx_strf("%s/model", d);
    r = run("ln -sfn \"$PWD/$M\" %s && ./seedx reconstruct -m %s --image $I -o %s/out.png --size 16x16 "
            "--steps 1 -q && test -s %s/out.png && ./seedx lm -m %s -p hi -n 2 -q",
            m, m, d, d, m);
    CHECKF(r.rc == 0, "long -m/-o paths: %s", r.err);
    run_free(&r);
    /* the library on a model directory path near PATH_MAX */
    char *d2 = long_dir("cli_long_m", 3900);
    char *m2 = sx_strf("%s/m", d2);
    r = run("ln -sfn \"$PWD/$M\" %s", m2);
    sx_seedx *sm = NULL;
    CHECK_OK(sx_seedx_open(m2, &sm));
    sx_seedx_opts o;
    sx_seedx_opts_default(&o);
    o.width = o.height = 64;
    CHECK_OK(sm ? sx_seedx_check(sm, SX_SEEDX_LLM | SX_SEEDX_DECODE | SX_SEEDX_DECODE_EDIT, &o) : -1);
    sx_seedx_free(sm);
    run_free(&r);
    free(m2), free(d2), free(m), free(d);
}

/* the prompt-template builder with repeated fields and long text (ASan) */
static void test_template_fields(void) {
    size_t L = 20000;
    char *text = malloc(L + 1);
    for (size_t i = 0; i < L; i++) text[i] = (char)('a' + i % 26);
    text[L] = 0;
    const char *blocks[3] = {"<img>A</img>", "<patch>BB</patch>", "C"};
    /* {TEXT} 7 times: 7 copies; an {IMG} once with 3 blocks; markers cut short stay literal */
    char *s = sx_seedx_fill_template("{TEXT}{TEXT}{TEXT}{TEXT}{TEXT}{TEXT}{TEXT}", text, NULL, 0);
    CHECK(s && strlen(s) == 7 * L);
    free(s);
    s = sx_seedx_fill_template("x{IMG}{TEXT}{TEX}{IMG{TEXT}}", "t", blocks, 3);
    CHECK(s && !strcmp(s, "x<img>A</img><patch>BB</patch>C" "t{TEX}{IMGt}"));
    free(s);
    CHECK(sx_seedx_fill_template("{IMG}{IMG}{TEXT}", "t", blocks, 1) == NULL);
    CHECK(strstr(sx_errmsg(), "once") != NULL);
    CHECK(sx_seedx_fill_template("{IMG}", "t", blocks, 1) == NULL);
    s = sx_seedx_fill_template("{IMG}{IMG}{TEXT}", "t", NULL, 0); /* no images: {IMG} is empty */
    CHECK(s && !strcmp(s, "t"));
    free(s);
    /* the model's builder: ids of 5 x {TEXT} = bos + the ids of the text 5 times */
    sx_seedx *m;
    CHECK_OK(sx_seedx_open(M_, &m));
    if (m) {
        int *ids = NULL, *one = NULL;
        int64_t n = 0;
        size_t n1 = 0;
        char *t5 = sx_strf("%s%s%s%s%s", text, text, text, text, text);
        CHECK_OK(sx_seedx_build_prompt_t(m, "{TEXT}{TEXT}{TEXT}{TEXT}{TEXT}", text, NULL, 0, &ids, &n));
        CHECK_OK(sx_tokenize(sx_seedx_tokenizer(m), t5, strlen(t5), 0, &one, &n1));
        CHECK(ids && one && n == (int64_t)n1 + 1 && !memcmp(ids + 1, one, n1 * sizeof(int)));
        free(ids), free(one), free(t5);
        int tiles[2] = {3, 2};
        ids = NULL;
        CHECK(sx_seedx_build_prompt_t(m, "{IMG}{IMG}{TEXT}", text, tiles, 2, &ids, &n) != 0);
        CHECK(ids == NULL);
        sx_seedx_free(m);
    }
    free(text);
    /* the CLI with both hostile templates of the issue (the overflow ran here) */
    run_t r = run("./seedx chat -m $M --image $I -p hi --template '{IMG}{IMG}{TEXT}' -n 3; "
                  "./seedx chat -m $M -p \"$(head -c 3000 /dev/zero | tr '\\0' x)\" -n 3 --template "
                  "'{TEXT}{TEXT}{TEXT}{TEXT}{TEXT}{TEXT}{TEXT}{TEXT}{TEXT}{TEXT}'; "
                  "./seedx chat -m $M --image $I -p hi -n 3 --force-image --template \"$(head -c 5000 "
                  "/dev/zero | tr '\\0' y){IMG}{TEXT}\" -q");
    CHECKF(strstr(r.err, "{IMG} once") && strstr(r.err, "context"), "%s", r.err);
    CHECKF(r.rc == 0, "a long literal template with --force-image: %s", r.err);
    run_free(&r);
}

/* sx_err keeps the start and the end of a message longer than its buffer,
 * cut on UTF-8 characters */
static void test_error_truncation(void) {
    sx_str b = {0};
    for (int i = 0; i < 3000; i++) sx_str_adds(&b, "\xc3\xa9"); /* U+00E9, 2 bytes */
    sx_err("%s: cannot open: the reason", b.s);
    const char *e = sx_errmsg();
    size_t n = strlen(e);
    CHECK(n < 2048 && n > 1500);
    CHECK(strstr(e, " ... ") != NULL);
    CHECK(n > 20 && !strcmp(e + n - 20, &"cannot open: the reason"[3]));
    int valid = 1; /* every byte of a 2-byte character comes in a pair */
    for (const unsigned char *p = (const unsigned char *)e; *p; p++)
        if (*p == 0xc3) valid &= p[1] == 0xa9, p++;
        else valid &= *p < 0x80;
    CHECK(valid);
    sx_err_prefix("%s: ", b.s);
    CHECK(strlen(sx_errmsg()) < 2048 && strstr(sx_errmsg(), "the reason") != NULL);
    sx_str_free(&b);
}

/* ---- the REPL --------------------------------------------------------- */
static void test_repl_lines(void) {
    const char *in = "/image\n/foo bar\n\n  \nhello\r\n//usr\n/quit now\n/reset\n/image  a b.png\n/help\n/exit";
    FILE *f = fmemopen((void *)in, strlen(in), "r");
    char *line = NULL;
    size_t cap = 0;
    repl_kind want[] = {REPL_BAD, REPL_BAD, REPL_EMPTY, REPL_EMPTY, REPL_MESSAGE, REPL_MESSAGE,
                        REPL_BAD, REPL_RESET, REPL_IMAGE, REPL_HELP, REPL_QUIT};
    long n;
    int k = 0;
    while (f && (n = cli_read_line(f, &line, &cap)) >= 0 && k < 11) {
        repl_line l = cli_repl_classify(line, (size_t)n);
        CHECKF(l.kind == want[k], "line %d '%s': kind %d, want %d", k, line, l.kind, want[k]);
        if (k == 4) CHECK(!strcmp(l.arg, "hello"));
        if (k == 5) CHECK(!strcmp(l.arg, "/usr"));
        if (k == 8) CHECK(!strcmp(l.arg, "a b.png"));
        k++;
    }
    CHECK(k == 11);
    if (f) fclose(f);
    repl_line l = cli_repl_classify("ab\0cd", 5);
    CHECK(l.kind == REPL_BAD && strstr(l.why, "NUL"));
    free(line);
}

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

static void test_repl_session(void) {
    /* a 100 kB line is one message (one context error, not 13 turns); a NUL
     * is refused; /image without a path and /frob answer with the commands;
     * after the failed turn (image attached) the next question gets the same
     * answer as in a session where the failure never happened */
    run_t r = run("{ echo /image; echo /frob; echo /image $I; head -c 100000 /dev/zero | tr '\\0' q; echo; "
                  "printf 'a\\000b\\n'; echo 'what is it?'; } > $B/cli_repl_a.txt; "
                  "./seedx chat -m $M -n 6 --grids 1x1 -q < $B/cli_repl_a.txt");
    run_t c = run("printf '/image %%s\\nwhat is it?\\n' $I | ./seedx chat -m $M -n 6 --grids 1x1 -q");
    CHECKF(r.rc == 0 && c.rc == 0, "%s / %s", r.err, c.err);
    CHECKF(count(r.err, "context") == 1, "%s", r.err);
    CHECK(count(r.err, "the conversation is as it was before this message; 1 image(s) still attached") == 1);
    CHECK(count(r.err, "/image needs a path") == 1 && count(r.err, "unknown command: /frob") == 1);
    CHECK(count(r.err, "NUL byte") == 1);
    CHECK(count(r.err, "commands: /image PATH") == 3);
    CHECKF(strlen(r.out) > 1 && !strcmp(r.out, c.out), "answer after a failed turn:\n'%s'\nclean session:\n'%s'",
           r.out, c.out);
    CHECK(count(r.err, "(image attached") == 1);
    run_free(&r);
    run_free(&c);
}

/* ---- NaN / Inf: an error naming the stage, no image --------------------- */
static void test_nonfinite_stages(void) {
    sx_seedx *m;
    CHECK_OK(sx_seedx_open(M_, &m));
    sx_image im, out;
    CHECK_OK(sx_image_load_rgb(I_, &im));
    sx_seedx_opts o;
    sx_seedx_opts_default(&o);
    o.width = o.height = 64;
    o.steps = 2;
    float lat[4 * 8 * 8];
    for (int i = 0; i < 4 * 64; i++) lat[i] = i == 77 ? NAN : 0.1f;
    o.init_latents = lat;
    CHECK(sx_seedx_reconstruct(m, &im, NULL, &o, &out) != 0);
    CHECKF(strstr(sx_errmsg(), "UNet sampling") && strstr(sx_errmsg(), "step 1 of 2"), "%s", sx_errmsg());
    o.init_latents = NULL;
    o.cfg = INFINITY; /* the library refuses it itself */
    CHECK(sx_seedx_reconstruct(m, &im, NULL, &o, &out) != 0);
    CHECK(strstr(sx_errmsg(), "guidance") != NULL);
    sx_image_free(&im);
    sx_seedx_free(m);
    /* the tools: NaN latents -> VAE decode error, no PNG; NaN context -> UNet */
    float nan4[4 * 4 * 4], ctx[2 * 64], pooled[32];
    for (int i = 0; i < 64; i++) nan4[i] = i == 5 ? NAN : 0.0f;
    for (int i = 0; i < 128; i++) ctx[i] = i == 3 ? INFINITY : 0.5f;
    for (int i = 0; i < 32; i++) pooled[i] = 0.1f;
    char *p1 = sx_strf("%s/cli_nan_lat.npy", t_build()), *p2 = sx_strf("%s/cli_inf_ctx.npy", t_build()),
         *p3 = sx_strf("%s/cli_pooled.npy", t_build());
    CHECK_OK(sx_npy_write(p1, nan4, 3, (int64_t[]){4, 4, 4}));
    CHECK_OK(sx_npy_write(p2, ctx, 2, (int64_t[]){2, 64}));
    CHECK_OK(sx_npy_write(p3, pooled, 1, (int64_t[]){32}));
    run_t r = run("rm -f $B/cli_nan.png $B/cli_nan.npy; ./seedx vae decode -m $M/vae.gguf --latents %s -o "
                  "$B/cli_nan.png -q; test ! -e $B/cli_nan.png && ./seedx unet sample -m $M/unet.gguf --ctx %s "
                  "--pooled %s --size 32 --steps 2 -o $B/cli_nan.npy -q; test ! -e $B/cli_nan.npy",
                  p1, p2, p3);
    CHECKF(r.rc == 0, "an output file was written: %s", r.err);
    CHECKF(strstr(r.err, "seedx vae decode: VAE decode (pixels)") && strstr(r.err, "NaN"), "%s", r.err);
    CHECKF(strstr(r.err, "seedx unet sample: UNet sampling (latents)"), "%s", r.err);
    run_free(&r);
    free(p1), free(p2), free(p3);
}

/* ---- seedx lm stops at the context with a message ----------------------- */
static void test_lm_context(void) {
    run_t r = run("./seedx lm -m $M -p hi -n 500 --ctx 40 -q");
    CHECKF(r.rc == 0 && strstr(r.err, "stopped at the context limit: 40 tokens (prompt 2 + 38 new)"), "%s",
           r.err);
    run_free(&r);
}

/* ---- --help everywhere; every option it lists is accepted --------------- */
static void test_help_and_options(void) {
    const char *cmds[] = {"demo", "chat", "ground", "generate", "edit", "reconstruct", "version",
                          "inspect", "image", "image info", "image convert", "image tiles", "tokenize",
                          "vit", "lm", "vae", "vae decode", "vae encode", "vae roundtrip", "unet",
                          "unet forward", "unet randn", "unet sample", "serve"};
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        run_t r = run("./seedx %s --help", cmds[c]);
        CHECKF(r.rc == 0 && !strncmp(r.out, "usage:", 6) && !r.err[0], "seedx %s --help: rc %d\n%s%s",
               cmds[c], r.rc, r.out, r.err);
        /* each option the help lists ("  -x ..." / "  --xx ...") is known to the command */
        int listed = 0;
        for (char *l = r.out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
            if (strncmp(l, "  -", 3) || !strncmp(l, "  -h, --help", 12)) continue;
            char opt[40];
            if (sscanf(l, " %39s", opt) != 1) continue;
            listed++;
            /* two unknown options after it: nothing runs, whatever its kind */
            run_t o = run("./seedx %s %s --zz-unknown --zz-unknown", cmds[c], opt);
            char *said = sx_strf("unknown option '%s'", opt);
            CHECKF(o.rc == 2 && !strstr(o.err, said), "seedx %s: %s listed but refused:\n%s", cmds[c], opt,
                   o.err);
            free(said);
            run_free(&o);
        }
        CHECKF(listed >= 3 || !strcmp(cmds[c], "image") || !strcmp(cmds[c], "vae") ||
                   !strcmp(cmds[c], "unet"),
               "seedx %s --help lists %d options", cmds[c], listed);
        run_free(&r);
    }
    run_t r = run("./seedx --help && ./seedx image convert --help | grep -q -- --resize");
    CHECK(r.rc == 0 && strstr(r.out, "usage: seedx"));
    run_free(&r);
}

/* ---- common options before or after the command, and -q ---------------- */
static void test_common_options(void) {
    run_t r = run("./seedx --threads 3 version && ./seedx version --threads 3 && ./seedx version -q && "
                  "./seedx version --compute f32 && ./seedx --compute bf16 version");
    CHECK(r.rc == 0 && count(r.out, "threads: 3") == 2 && count(r.out, "compute:") == 5);
    run_free(&r);
    r = run("rm -rf $B/cli_trace && ./seedx vit -m $M/vit.gguf --zero --trace $B/cli_trace > /dev/null && "
            "test -s $B/cli_trace/trace_order.txt");
    CHECKF(r.rc == 0, "--trace after the command: %s", r.err);
    run_free(&r);
    /* stderr is not a terminal here: without -q one plain line per step */
    r = run("./seedx reconstruct -m $M --image $I -o $B/cli_q.png --size 16x16 --steps 3");
    run_t q = run("./seedx -q reconstruct -m $M --image $I -o $B/cli_q.png --size 16x16 --steps 3 && "
                  "./seedx reconstruct -m $M --image $I -o $B/cli_q.png --size 16x16 --steps 3 -q");
    CHECKF(r.rc == 0 && count(r.err, "denoise ") == 3 && count(r.err, "vae ") == 6 && strstr(r.err, "total "),
           "%s", r.err);
    CHECKF(q.rc == 0 && !q.err[0], "-q printed: %s", q.err);
    /* one duration format in every bar: "<elapsed>, ETA <eta>" */
    CHECK(strstr(r.err, "s, ETA ") != NULL && count(r.err, ", ETA ") == 9);
    run_free(&r);
    run_free(&q);
}

/* ---- the demo's commands paste back into a shell ------------------------ */
static void test_demo_commands(void) {
    run_t r = run("rm -rf $B/cli_demo && ./seedx demo -o $B/cli_demo");
    CHECKF(r.rc == 0, "demo: %s", r.err);
    /* pasted as printed: the binary's absolute path first (under emulation the
     * emulator's command goes before it; the six runs are skipped there) */
    const char *emu = getenv("SEEDX_TEST_EXEC");
    int paste = !t_skip_emulated("running the demo's six pasted commands");
    int n = 0;
    for (char *l = r.out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, "$ ", 2)) continue;
        size_t len = strcspn(l, "\n");
        char *cmd = sx_strf("%.*s", (int)len - 2, l + 2);
        CHECK(strstr(cmd, "'Describe this image briefly.'") || !strstr(cmd, "Describe"));
        if (paste) {
            run_t p = run("%s %s -q > /dev/null", emu ? emu : "", cmd);
            CHECKF(p.rc == 0, "pasted: %s\n%s", cmd, p.err);
            run_free(&p);
        }
        free(cmd);
        n++;
    }
    CHECK(n == 6);
    run_free(&r);
    /* quoting round trip through sh */
    const char *hostile[] = {"plain", "two words", "it's", "a'b'c", "$HOME", "`x`", "\"q\"", "\\", "", "-n"};
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        char *q = cli_shell_quote(hostile[i]);
        run_t p = run("printf '%%s' %s", q);
        CHECKF(p.rc == 0 && !strcmp(p.out, hostile[i]), "quote of '%s' is %s, sh gives '%s'", hostile[i], q,
               p.out);
        run_free(&p);
        free(q);
    }
}

/* ---- the README's marked example blocks run verbatim -------------------- */
static void test_readme_examples(void) {
    char *readme = slurp("README.md");
    const char *mark = "<!-- test_cli: runs verbatim -->";
    int blocks = 0;
    for (char *p = strstr(readme, mark); p; p = strstr(p + 1, mark)) {
        char *b = strstr(p, "```sh\n"), *e = b ? strstr(b + 6, "\n```") : NULL;
        if (!b || !e) break;
        char *body = sx_strf("%.*s", (int)(e - b - 6), b + 6);
        char *f = sx_strf("%s/cli_readme_%d.sh", t_build(), blocks);
        FILE *fp = fopen(f, "w");
        if (fp) {
            fprintf(fp, "set -e\n%s\n", body);
            fclose(fp);
        }
        /* a scratch folder that looks like the repository root */
        run_t r = run("d=$B/cli_readme; rm -rf $d; mkdir -p $d && ln -s \"$PWD/tests\" \"$PWD/seedx\" $d/ && "
                      "cp %s $d/x.sh && cd $d && sh x.sh",
                      f);
        CHECKF(r.rc == 0, "README block %d:\n%s\nfailed:\n%s", blocks, body, r.err);
        run_free(&r);
        free(body), free(f);
        blocks++;
    }
    CHECKF(blocks >= 2, "%d marked blocks in README.md", blocks);
    free(readme);
}

/* ---- no sprintf/strcpy/strcat into a guessed size anywhere in the tree -- */
static void test_no_unbounded_string_calls(void) {
    run_t r = run("grep -nE '(^|[^a-z_n])(v?sprintf|strcpy|strcat|gets) *\\(' *.c *.h tests/*.c tests/*.h "
                  "| grep -v 'test_cli.c'");
    CHECKF(r.rc == 1 && !r.out[0], "unbounded string calls:\n%s", r.out);
    run_free(&r);
}

int main(void) {
    TEST_INIT();
    RUN(test_rejected_at_once);
    RUN(test_long_paths);
    RUN(test_template_fields);
    RUN(test_error_truncation);
    RUN(test_repl_lines);
    RUN(test_repl_session);
    RUN(test_nonfinite_stages);
    RUN(test_lm_context);
    RUN(test_help_and_options);
    RUN(test_common_options);
    RUN(test_demo_commands);
    RUN(test_readme_examples);
    RUN(test_no_unbounded_string_calls);
    return TEST_DONE();
}
