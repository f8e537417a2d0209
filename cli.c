/* cli.c - the front-end of `seedx` (cli.h): the option parser every command
 * uses, the progress bars, the chat REPL's input handling, and the SEED-X
 * modes: chat (one shot, or a multi-turn REPL), ground, generate, edit,
 * reconstruct, and the demo that runs them all on the committed tiny model.
 * It parses argv, checks everything it can before the first expensive stage
 * (numbers, output paths, model files, memory, prompt length: the library's
 * sx_seedx_check*), streams tokens and progress to the terminal, times the
 * stages, and calls the library's SEED-X API (seedx.h) for the rest. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

cli_common cli_g;
const char *cli_prog = "seedx";
int cli_args_only;

/* ======================================================================
 * the option parser
 * ====================================================================== */
int cli_common_opts(cli_opt *o) {
    const cli_opt common[] = {
        {"--threads", CLI_INT, &cli_g.threads, "N", "worker threads (default: SEEDX_THREADS, else all CPUs)", 1, 4096, NULL},
        {"--compute", CLI_CHOICE, &cli_g.compute, "T", "matrix products in float32, or bfloat16 inputs with float32\nsums (default: bf16 for the SEED-X modes on CPUs with BF16\ninstructions, else f32; `seedx version` says which)", 0, 0, "default|f32|bf16"},
        {"--trace", CLI_STR, &cli_g.trace, "DIR", "write every module's output as DIR/<module>.npy", 0, 0, NULL},
        {"-q", CLI_FLAG, &cli_g.quiet, NULL, "quiet: no progress bars, per-step lines or timings", 0, 0, NULL},
    };
    _Static_assert(sizeof common / sizeof common[0] <= CLI_N_COMMON, "CLI_N_COMMON (cli.h)");
    int n = (int)(sizeof common / sizeof common[0]);
    if (o) memcpy(o, common, sizeof common);
    return n;
}

/* "-5", "-0.5": a negative number */
static int is_negative_number(const char *s) {
    return s[0] == '-' && ((s[1] >= '0' && s[1] <= '9') || (s[1] == '.' && s[2] >= '0' && s[2] <= '9'));
}

/* A whole integer (optional sign, decimal digits, nothing else). */
static int parse_ll(const char *v, long long *out) {
    if (!((v[0] >= '0' && v[0] <= '9') || ((v[0] == '-' || v[0] == '+') && v[1] >= '0' && v[1] <= '9')))
        return -1;
    char *e;
    errno = 0;
    long long x = strtoll(v, &e, 10);
    if (errno || *e) return -1;
    *out = x;
    return 0;
}

/* A whole finite number (strtod: decimal, exponent, hex float). */
static int parse_real(const char *v, double *out) {
    if (!v[0] || v[0] == ' ' || v[0] == '\t' || v[0] == '\n') return -1;
    char *e;
    errno = 0;
    double x = strtod(v, &e);
    if (*e || e == v || !isfinite(x)) return -1;
    *out = x;
    return 0;
}

int cli_value(const char *cmd, const cli_opt *o, const char *v) {
    long long i;
    double d;
    switch (o->type) {
    case CLI_FLAG:
        *(int *)o->dst = 1;
        return 0;
    case CLI_STR:
        *(const char **)o->dst = v;
        return 0;
    case CLI_MULTI: {
        cli_list *l = o->dst;
        if (l->n == CLI_LIST_MAX) {
            fprintf(stderr, "%s: at most %d %s options\n", cmd, CLI_LIST_MAX, o->name);
            return 2;
        }
        l->v[l->n++] = v;
        return 0;
    }
    case CLI_INT:
    case CLI_I64:
        if (parse_ll(v, &i) || (double)i < o->min || (double)i > o->max) {
            fprintf(stderr, "%s: %s wants an integer from %.0f to %.0f, got '%s'\n", cmd, o->name,
                    o->min, o->max, v);
            return 2;
        }
        if (o->type == CLI_INT) *(int *)o->dst = (int)i;
        else *(int64_t *)o->dst = (int64_t)i;
        return 0;
    case CLI_U64: {
        char *e;
        errno = 0;
        unsigned long long u = (v[0] >= '0' && v[0] <= '9') ? strtoull(v, &e, 10) : 0;
        if (!(v[0] >= '0' && v[0] <= '9') || errno || *e) {
            fprintf(stderr, "%s: %s wants a whole number from 0 to %llu, got '%s'\n", cmd, o->name,
                    (unsigned long long)UINT64_MAX, v);
            return 2;
        }
        *(uint64_t *)o->dst = (uint64_t)u;
        return 0;
    }
    case CLI_FLOAT:
    case CLI_DOUBLE:
        if (parse_real(v, &d) || d < o->min || d > o->max) {
            fprintf(stderr, "%s: %s wants a finite number from %g to %g, got '%s'\n", cmd, o->name,
                    o->min, o->max, v);
            return 2;
        }
        if (o->type == CLI_FLOAT) *(float *)o->dst = (float)d;
        else *(double *)o->dst = d;
        return 0;
    case CLI_SIZE: {
        const char *x = strpbrk(v, "xX");
        long long w = 0, h = 0;
        int ok = x && x > v;
        if (ok) {
            size_t l = (size_t)(x - v);
            char *ws = malloc(l + 1);
            ok = ws != NULL;
            if (ok) {
                memcpy(ws, v, l);
                ws[l] = 0;
                ok = parse_ll(ws, &w) == 0 && parse_ll(x + 1, &h) == 0;
                free(ws);
            }
        }
        if (!ok || w < o->min || w > o->max || h < o->min || h > o->max) {
            fprintf(stderr, "%s: %s wants WxH with W and H from %.0f to %.0f (e.g. 1024x1024), got '%s'\n",
                    cmd, o->name, o->min, o->max, v);
            return 2;
        }
        ((int *)o->dst)[0] = (int)w;
        ((int *)o->dst)[1] = (int)h;
        return 0;
    }
    case CLI_CHOICE: {
        const char *c = o->choices;
        size_t vl = strlen(v);
        for (int k = 0; c && *c; k++) {
            const char *bar = strchr(c, '|');
            size_t cl = bar ? (size_t)(bar - c) : strlen(c);
            if (cl == vl && !strncmp(c, v, cl)) {
                *(int *)o->dst = k;
                return 0;
            }
            c = bar ? bar + 1 : c + cl;
        }
        fprintf(stderr, "%s: %s wants one of %s, got '%s'\n", cmd, o->name, o->choices, v);
        return 2;
    }
    }
    return 2;
}

static const cli_opt *find_opt(const cli_opt *opts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(opts[i].name, name)) return &opts[i];
    return NULL;
}

int cli_parse(const cli_spec *s, int argc, char **argv) {
    cli_opt common[CLI_N_COMMON];
    int nc = cli_common_opts(common), n_pos = 0, only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int positional = only_pos || a[0] != '-' || !a[1] || (s->neg_positional && is_negative_number(a));
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (positional) {
            if (n_pos >= s->max_pos) {
                fprintf(stderr, "%s: unexpected argument '%s' (%s --help)\n", s->name, a, s->name);
                return 2;
            }
            s->pos[n_pos++] = a;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli_help(stdout, s);
            return 1;
        }
        const cli_opt *o = find_opt(s->opts, s->n_opts, a);
        if (!o) o = find_opt(common, nc, a);
        if (!o) {
            fprintf(stderr, "%s: unknown option '%s' (%s --help lists them)\n", s->name, a, s->name);
            return 2;
        }
        const char *v = NULL;
        if (o->type != CLI_FLAG) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: %s needs a value (%s)\n", s->name, a, o->arg ? o->arg : "VALUE");
                return 2;
            }
            v = argv[++i];
        }
        int rc = cli_value(s->name, o, v);
        if (rc) return rc;
    }
    if (s->n_pos) *s->n_pos = n_pos;
    if (n_pos < s->min_pos) {
        fprintf(stderr, "%s: missing arguments\nusage: %s\n", s->name, s->usage);
        return 2;
    }
    return 0;
}

static void help_rows(FILE *f, const cli_opt *o, int n) {
    for (int i = 0; i < n; i++) {
        char head[64];
        snprintf(head, sizeof head, "%s%s%s", o[i].name, o[i].type == CLI_FLAG ? "" : " ",
                 o[i].type == CLI_FLAG ? "" : o[i].arg ? o[i].arg : "VALUE");
        fprintf(f, "  %-20s ", head);
        if (strlen(head) > 20) fprintf(f, "\n  %-20s ", "");
        for (const char *h = o[i].help; *h; h++) {
            fputc(*h, f);
            if (*h == '\n') fprintf(f, "  %-20s ", "");
        }
        if (o[i].type == CLI_INT || o[i].type == CLI_I64 || o[i].type == CLI_SIZE)
            fprintf(f, " [%.0f..%.0f]", o[i].min, o[i].max);
        else if (o[i].type == CLI_FLOAT || o[i].type == CLI_DOUBLE)
            fprintf(f, " [%g..%g]", o[i].min, o[i].max);
        else if (o[i].type == CLI_CHOICE)
            fprintf(f, " (%s)", o[i].choices);
        fputc('\n', f);
    }
}

void cli_help(FILE *f, const cli_spec *s) {
    fprintf(f, "usage: %s\n", s->usage);
    if (s->about) fprintf(f, "%s\n", s->about);
    if (s->n_opts) {
        fprintf(f, "options:\n");
        help_rows(f, s->opts, s->n_opts);
    }
    cli_opt common[CLI_N_COMMON];
    int nc = cli_common_opts(common);
    fprintf(f, "common options (also before the command):\n");
    help_rows(f, common, nc);
    fprintf(f, "  %-20s this help\n", "-h, --help");
}

int cli_apply_common(const char *cmd) {
    if (cli_g.threads && cli_g.threads != sx_threads_count() && sx_threads_init(cli_g.threads)) {
        fprintf(stderr, "%s: %s\n", cmd, sx_errmsg());
        return 2;
    }
    if (cli_g.trace) sx_trace_set_dir(cli_g.trace);
    if (cli_g.compute && sx_set_compute(cli_g.compute)) {
        fprintf(stderr, "%s: %s\n", cmd, sx_errmsg());
        return 2;
    }
    return 0;
}

int cli_apply_dtype(const char *cmd, int choice) {
    if (choice < 0) return 0;
    const char *c = CLI_DTYPES;
    for (int i = 0; i < choice && c; i++) {
        c = strchr(c, '|');
        if (c) c++;
    }
    char name[16];
    size_t n = c ? strcspn(c, "|") : 0;
    snprintf(name, sizeof name, "%.*s", (int)n, c ? c : "");
    int t = sx_type_from_name(name);
    if (t < 0 || sx_set_weight_dtype(t)) {
        fprintf(stderr, "%s: --dtype %s: %s\n", cmd, name,
                t < 0 ? "not a weight type" : sx_errmsg());
        return 2;
    }
    return 0;
}

/* cli_parse + cli_apply_common: 0 go on, -1 after --help, else the exit status. */
static int parse_args(const cli_spec *s, int argc, char **argv) {
    int rc = cli_parse(s, argc, argv);
    if (rc == 1) return -1;
    if (rc) return rc;
    return cli_args_only ? 0 : cli_apply_common(s->name);
}

/* ======================================================================
 * progress: one bar format, one duration format
 * ====================================================================== */
/* "12.3s", "4m05s", "2h07m" */
static const char *fmt_dur(double s, char *buf, size_t n) {
    if (!(s >= 0)) s = 0;
    if (s < 60) snprintf(buf, n, "%.1fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    return buf;
}

void cli_bar_update(cli_progress_bar *b, int64_t done, int64_t total) {
    if (!b || total <= 0) return;
    if (done == 0) { /* a stage that says when it starts gets its own clock */
        b->t0 = sx_time();
        return;
    }
    if (cli_g.quiet) return;
    int tty = isatty(2);
    if (!tty && !b->plain) return;
    double el = sx_time() - b->t0, eta = done > 0 ? el * (double)(total - done) / (double)done : 0;
    char e1[32], e2[32], bar[32];
    int w = 30, fill = (int)(done * w / total);
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    fprintf(stderr, "%s%-8s %4lld/%lld [%s] %s, ETA %s%s", tty ? "\r" : "", b->label ? b->label : "",
            (long long)done, (long long)total, bar, fmt_dur(el, e1, sizeof e1),
            fmt_dur(eta, e2, sizeof e2), tty ? " " : "\n");
    if (tty && done >= total) fputc('\n', stderr);
    fflush(stderr);
}

void cli_progress(void *ud, int step, int n_steps, float t, const float *latents) {
    (void)t;
    (void)latents;
    cli_bar_update(ud, step + 1, n_steps);
}

void cli_progress_count(void *ud, int64_t done, int64_t total) { cli_bar_update(ud, done, total); }

/* ======================================================================
 * the chat REPL's input
 * ====================================================================== */
const char cli_repl_commands[] =
    "commands: /image PATH  attach an image to the next message\n"
    "          /reset       forget the conversation and the images\n"
    "          /help        this list\n"
    "          /quit        leave (also /exit, or the end of input)\n"
    "a line starting with // sends the text with one leading / (\"//usr\" sends \"/usr\")\n";

long cli_read_line(FILE *f, char **buf, size_t *cap) {
    ssize_t n = getline(buf, cap, f);
    if (n < 0) return -1;
    if (n && (*buf)[n - 1] == '\n') n--;
    if (n && (*buf)[n - 1] == '\r') n--;
    (*buf)[n] = 0;
    return (long)n;
}

repl_line cli_repl_classify(const char *line, size_t n) {
    repl_line r = {REPL_EMPTY, NULL, NULL};
    if (memchr(line, 0, n)) {
        r.kind = REPL_BAD;
        r.why = "the line holds a NUL byte; nothing was sent";
        return r;
    }
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i == n) return r;
    if (line[0] != '/' || (n > 1 && line[1] == '/')) {
        r.kind = REPL_MESSAGE;
        r.arg = line[0] == '/' ? line + 1 : line;
        return r;
    }
    size_t w = 1;
    while (w < n && line[w] != ' ' && line[w] != '\t') w++;
    const char *rest = line + w;
    while (*rest == ' ' || *rest == '\t') rest++;
#define IS(cmd) (w == strlen(cmd) && !strncmp(line, cmd, w))
    if (IS("/quit") || IS("/exit")) r.kind = REPL_QUIT;
    else if (IS("/reset")) r.kind = REPL_RESET;
    else if (IS("/help") || IS("/?")) r.kind = REPL_HELP;
    else if (IS("/image")) {
        r.kind = *rest ? REPL_IMAGE : REPL_BAD;
        r.arg = rest;
        r.why = *rest ? NULL : "/image needs a path";
    } else {
        r.kind = REPL_BAD;
        r.why = "unknown command";
    }
#undef IS
    if (r.kind != REPL_BAD && r.kind != REPL_IMAGE && *rest) {
        r.kind = REPL_BAD;
        r.why = "this command takes no argument";
    }
    return r;
}

char *cli_shell_quote(const char *s) {
    int plain = *s != 0;
    for (const char *p = s; *p && plain; p++)
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("_./:=,+-@%", *p);
    sx_str b = {0};
    if (plain) {
        sx_str_adds(&b, s);
    } else {
        sx_str_add(&b, "'", 1);
        for (const char *p = s; *p; p++)
            if (*p == '\'') sx_str_adds(&b, "'\\''");
            else sx_str_add(&b, p, 1);
        sx_str_add(&b, "'", 1);
    }
    if (b.oom) sx_str_free(&b);
    return b.s;
}

/* ======================================================================
 * the SEED-X modes: chat | ground | generate | edit | reconstruct
 * ====================================================================== */
enum { M_CHAT = 1, M_GROUND = 2, M_GENERATE = 4, M_EDIT = 8, M_RECON = 16 };
#define M_TEXT (M_CHAT | M_GROUND | M_GENERATE | M_EDIT) /* modes with an LLM turn */
#define M_PIX (M_CHAT | M_GENERATE | M_EDIT | M_RECON)   /* modes that may make images */

typedef struct {
    const char *model, *prompt, *out, *cond, *grids, *tmpl;
    cli_list images;
    int force_image, size[2], dtype, rng, karras;
    int mode;
    const char *cmd; /* "seedx generate" */
    sx_seedx_opts o;
} cli_args;

static const char *mode_usage(int mode) {
    switch (mode) {
    case M_CHAT: return "seedx chat -m MODEL_DIR [--image FILE]... [-p TEXT] [options]\n"
                        "  (without -p: a multi-turn REPL reading stdin, the --image files attached to\n"
                        "  its first message)";
    case M_GROUND: return "seedx ground -m MODEL_DIR --image FILE -p TEXT [-o BOXES.png] [options]";
    case M_GENERATE: return "seedx generate -m MODEL_DIR -p CAPTION -o OUT.png [options]";
    case M_EDIT: return "seedx edit -m MODEL_DIR --image FILE -p INSTRUCTION -o OUT.png [options]";
    default: return "seedx reconstruct -m MODEL_DIR --image FILE [--condition FILE] -o OUT.png [options]";
    }
}

/* The options of a mode: the rows of this table whose mask has the mode
 * (at most cap of them). */
static int mode_opts(int mode, cli_args *a, cli_opt *out, int cap) {
    const struct {
        int modes;
        cli_opt o;
    } rows[] = {
        {M_TEXT | M_RECON, {"-m", CLI_STR, &a->model, "DIR", "model directory (scripts/convert.py --out DIR;\nthe tiny one: tests/fixtures/seedx_e2e/model)", 0, 0, NULL}},
        {M_TEXT, {"-p", CLI_STR, &a->prompt, "TEXT", "prompt: question, caption or instruction", 0, 0, NULL}},
        {M_CHAT | M_GROUND | M_EDIT | M_RECON, {"--image", CLI_MULTI, &a->images, "FILE", mode == M_CHAT ? "input image (repeatable)" : "input image", 0, 0, NULL}},
        {M_RECON, {"--condition", CLI_STR, &a->cond, "FILE", "condition image (stage-2 de-tokenizer)", 0, 0, NULL}},
        {M_PIX | M_GROUND, {"-o", CLI_STR, &a->out, "FILE", mode == M_CHAT ? "where an image the model makes goes (.png, .ppm;\ndefault seedx-chat.png)" : mode == M_GROUND ? "the image with the boxes drawn (.png, .ppm)" : "output image (.png, .ppm)", 0, 0, NULL}},
        {M_TEXT, {"-n", CLI_I64, &a->o.max_new_tokens, "N", mode == M_GENERATE ? "max new tokens (default 120)" : "max new tokens (default 512)", 1, 1 << 20, NULL}},
        {M_TEXT, {"--temp", CLI_FLOAT, &a->o.temperature, "T", "sampling temperature (default 0: greedy, as the official code)", 0, 100, NULL}},
        {M_TEXT, {"--top-p", CLI_FLOAT, &a->o.top_p, "P", "nucleus sampling (default 1: off)", 0, 1, NULL}},
        {M_TEXT, {"--top-k", CLI_INT, &a->o.top_k, "K", "top-k sampling (default 0: off)", 0, 1 << 20, NULL}},
        {M_TEXT | M_RECON, {"--seed", CLI_U64, &a->o.seed, "S", "sampling and noise seed (default 42)", 0, 0, NULL}},
        {M_PIX, {"--rng", CLI_CHOICE, &a->rng, "NAME", "noise generator (default torch-cpu)", 0, 0, "torch-cpu|torch-cuda"}},
        {M_PIX, {"--steps", CLI_INT, &a->o.steps, "N", "sampler steps (default 50)", 1, SX_SEEDX_MAX_STEPS, NULL}},
        {M_PIX, {"--sampler", CLI_CHOICE, &a->o.sampler, "NAME", "euler (default, the official sampler) or dpmpp2m\n(DPM-Solver++(2M), ~20-25 steps)", 0, 0, "euler|dpmpp2m"}},
        {M_PIX, {"--karras", CLI_FLAG, &a->karras, NULL, "Karras sigmas (either sampler)", 0, 0, NULL}},
        {M_PIX, {"--cfg", CLI_FLOAT, &a->o.cfg, "G", "guidance scale (default 7.5)", 0, SX_SEEDX_MAX_CFG, NULL}},
        {M_EDIT | M_RECON, {"--image-cfg", CLI_FLOAT, &a->o.image_cfg, "G", "image guidance scale (default 1.5)", 0, SX_SEEDX_MAX_CFG, NULL}},
        {M_PIX, {"--size", CLI_SIZE, a->size, "WxH", "output size (default 1024x1024); multiples of 8, and\nwhat fits in memory (refused with the amount needed)", 8, SX_VAE_MAX_SIDE, NULL}},
        {M_PIX, {"--vae-tiling", CLI_FLAG, &a->o.vae_tiling, NULL, "tiled VAE decode (bounded memory for large sizes)", 0, 0, NULL}},
        {M_CHAT | M_GROUND | M_EDIT, {"--grids", CLI_STR, &a->grids, "LIST", mode == M_EDIT ? "any-res candidates (default 1x1, as the edit script)" : "any-res candidates, e.g. 1x1,2x2 (default: the official 8)", 0, 0, NULL}},
        {M_TEXT, {"--template", CLI_STR, &a->tmpl, "T", "seed-x-i (default: '[INST] {IMG}{TEXT} [/INST]\\n'), seed-x\n(the base model's 'Question: {IMG}{TEXT}\\nAnswer:', detection\n'{IMG}{TEXT} [[ <box_start>', text-to-image '{TEXT}<img>'), or a\nliteral template holding {TEXT} and, with images, {IMG} once", 0, 0, NULL}},
        {M_TEXT, {"--force-image", CLI_FLAG, &a->force_image, NULL, "end the prompt with <img> (SEED-X base text-to-image)", 0, 0, NULL}},
        {M_TEXT | M_RECON, {"--dtype", CLI_CHOICE, &a->dtype, "T", "weights converted at load (default: as stored): f32|f16|bf16\nevery matrix; q8_0|q4_0|q4_k the LLM's and ViT's matrices\nquantized (README); activations stay f32", 0, 0, CLI_DTYPES}},
        /* @@options: add one row per option above this marker */
    };
    int n = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0] && n < cap; i++)
        if (rows[i].modes & mode) out[n++] = rows[i].o;
    return n;
}

/* Parses and checks a mode's arguments: 0 go on, -1 --help was printed,
 * else the exit status. */
static int mode_parse(int mode, int argc, char **argv, cli_args *a) {
    static const char *names[] = {"seedx chat", "seedx ground", "seedx generate", "seedx edit",
                                  "seedx reconstruct"};
    memset(a, 0, sizeof *a);
    a->mode = mode;
    a->cmd = names[mode == M_CHAT ? 0 : mode == M_GROUND ? 1 : mode == M_GENERATE ? 2 : mode == M_EDIT ? 3 : 4];
    a->dtype = -1;
    sx_seedx_opts_default(&a->o);
    if (mode == M_GENERATE) a->o.max_new_tokens = 120; /* the T2I scripts */
    a->size[0] = a->o.width;
    a->size[1] = a->o.height;
    cli_opt opts[64];
    int n_pos = 0;
    cli_spec s = {a->cmd, mode_usage(mode), NULL, opts, mode_opts(mode, a, opts, 64), NULL, 0, 0, &n_pos, 0};
    int prc = parse_args(&s, argc, argv);
    if (prc) return prc;
    a->o.width = a->size[0];
    a->o.height = a->size[1];
    a->o.rng = a->rng;
    if (a->karras) a->o.karras = SX_KARRAS_ON;
    if (mode == M_EDIT && !a->grids) a->grids = "1x1"; /* the edit script uses the 1x1 grid only */
    a->o.grids = a->grids;
    const char *missing = !a->model                                  ? "-m MODEL_DIR"
                          : (mode & (M_GROUND | M_GENERATE | M_EDIT)) && !a->prompt ? "-p TEXT"
                          : (mode & (M_GENERATE | M_EDIT | M_RECON)) && !a->out ? "-o OUT.png"
                          : (mode & (M_GROUND | M_EDIT | M_RECON)) && a->images.n != 1 ? "one --image FILE"
                                                                                        : NULL;
    if (missing) {
        fprintf(stderr, "%s: %s is required\nusage: %s\n", a->cmd, missing, mode_usage(mode));
        return 2;
    }
    if (sx_seedx_opts_check(&a->o)) {
        fprintf(stderr, "%s: %s\n", a->cmd, sx_errmsg());
        return 2;
    }
    if (cli_args_only) return 0;
    if (a->out && sx_image_check_output(a->out)) {
        fprintf(stderr, "%s: %s\n", a->cmd, sx_errmsg());
        return 2;
    }
    return cli_apply_dtype(a->cmd, a->dtype);
}

/* ---- what the modes print: streamed tokens, progress, stage times ------- */
/* Writes a generated token's text to stdout as it comes (text only: image
 * tokens and eos are not shown). */
static int stream_token(void *user, int32_t id) {
    const sx_seedx *m = user;
    const sx_seedx_tokens *t = sx_seedx_special(m);
    if (id == t->eos || (id >= t->img[0] && id <= t->img[t->n_img - 1]) || id == t->img_open ||
        id == t->img_close)
        return 0;
    size_t n;
    const char *s = sx_token_str(sx_seedx_tokenizer(m), id, &n);
    if (!s) return 0;
    /* SentencePiece pieces: U+2581 is a space; <0x0A> style byte pieces */
    for (size_t i = 0; i < n; i++) {
        if (i + 2 < n && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 &&
            (unsigned char)s[i + 2] == 0x81) {
            fputc(' ', stdout);
            i += 2;
        } else if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x') {
            fputc((int)strtol(s + 3, NULL, 16), stdout);
            break;
        } else {
            fputc(s[i], stdout);
        }
    }
    fflush(stdout);
    return 0;
}

static cli_progress_bar prefill_bar, denoise_bar, vae_bar;

/* Progress callbacks of every stage of a run: prefill (terminal only),
 * denoising and VAE decode (a line per step elsewhere). */
static void set_progress(sx_seedx_opts *o) {
    double t = sx_time();
    prefill_bar = (cli_progress_bar){t, "prefill", 0};
    denoise_bar = (cli_progress_bar){t, "denoise", 1};
    vae_bar = (cli_progress_bar){t, "vae", 1};
    o->prefill_progress = cli_progress_count;
    o->prefill_progress_user = &prefill_bar;
    o->progress = cli_progress;
    o->progress_user = &denoise_bar;
    o->decode_progress = cli_progress_count;
    o->decode_progress_user = &vae_bar;
}
/* restarts the clocks of the bars of the de-tokenizer stage */
static void restart_bars(void) { denoise_bar.t0 = vae_bar.t0 = sx_time(); }

/* "stage: 1.23s" and the like on stderr, unless -q */
static void stage_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void stage_line(const char *fmt, ...) {
    if (cli_g.quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void report(double t0) {
    stage_line("total %.2fs, peak RSS %.1f MB\n", sx_time() - t0, (double)sx_peak_rss() / 1048576.0);
}

static int save_image(const char *path, const sx_image *im) {
    if (sx_image_save(path, im)) return -1;
    printf("wrote %s (%dx%d)\n", path, im->w, im->h);
    return 0;
}

/* The prompt template of a mode: --template seed-x-i|seed-x|literal, with
 * <img> appended for --force-image (the tokenizer then drops the whitespace
 * before it, as in the official base T2I prompt). malloc'd. */
static char *mode_template(const cli_args *a) {
    const char *t = a->tmpl;
    if (!t || !strcmp(t, "seed-x-i") || !strcmp(t, "seed-x-edit")) t = sx_seedx_template("seed-x-i");
    else if (!strcmp(t, "seed-x"))
        t = sx_seedx_template(a->mode == M_GROUND ? "seed-x-detect" : a->mode == M_GENERATE ? "seed-x-t2i" : "seed-x");
    size_t l = strlen(t);
    int add = a->force_image && !(l >= 5 && !strcmp(t + l - 5, "<img>"));
    return sx_strf("%s%s", t, add ? "<img>" : "");
}

/* A prepared turn: the input images decoded, their any-res counts and the
 * prompt ids, everything checked against the model before the ViT runs. */
typedef struct {
    sx_image ims[CLI_LIST_MAX];
    int tiles[CLI_LIST_MAX], n;
    int *ids;
    int64_t n_ids;
} cli_turn;

static void turn_free(cli_turn *t) {
    for (int i = 0; i < t->n; i++) sx_image_free(&t->ims[i]);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

static int prepare_turn(sx_seedx *m, const cli_args *a, const char *text, cli_turn *t) {
    memset(t, 0, sizeof *t);
    for (; t->n < a->images.n; t->n++)
        if (sx_image_load_rgb(a->images.v[t->n], &t->ims[t->n]) ||
            sx_seedx_count_tiles(&t->ims[t->n], a->grids, &t->tiles[t->n]))
            return -1;
    char *tm = mode_template(a);
    int rc = !tm || sx_seedx_build_prompt_t(m, tm, text, t->tiles, t->n, &t->ids, &t->n_ids) ||
             sx_seedx_check_prompt(m, t->ids, t->n_ids, t->tiles, t->n, &a->o);
    free(tm);
    return rc ? -1 : 0;
}

/* One turn: images -> features, then the LLM (streaming text when asked). */
static int run_turn(sx_seedx *m, cli_args *a, cli_turn *t, int print_text, sx_seedx_reply *r) {
    float *feats = NULL;
    int64_t rows = 0;
    int got[CLI_LIST_MAX];
    double t0 = sx_time();
    if (sx_seedx_encode_images(m, t->ims, t->n, a->grids, &feats, &rows, got)) return -1;
    if (t->n) stage_line("vision: %.2fs\n", sx_time() - t0);
    if (print_text) {
        a->o.on_token = stream_token;
        a->o.on_token_user = m;
    }
    prefill_bar.t0 = t0 = sx_time();
    int rc = sx_seedx_generate(m, t->ids, t->n_ids, feats, rows, &a->o, r);
    free(feats);
    if (rc) return -1;
    if (print_text) {
        printf("\n");
        fflush(stdout);
    }
    stage_line("llm: %lld prompt + %lld new tokens in %.2fs\n", (long long)t->n_ids,
               (long long)r->n_ids, sx_time() - t0);
    return 0;
}

/* path, or for image i of several: "dir/out.png" -> "dir/out-1.png" */
static char *numbered(const char *path, int i, int n) {
    if (n == 1) return sx_strf("%s", path);
    const char *dot = strrchr(path, '.'), *sl = strrchr(path, '/');
    if (!dot || (sl && dot < sl)) return sx_strf("%s-%d", path, i + 1);
    return sx_strf("%.*s-%d%s", (int)(dot - path), path, i + 1, dot);
}

/* The images the model generated -> pixels (stage 2 with the first input
 * image as condition when stage2). */
static int decode_images(sx_seedx *m, cli_args *a, const sx_seedx_reply *r, int stage2,
                         const char *out) {
    sx_image cond;
    memset(&cond, 0, sizeof cond);
    if (stage2 && a->images.n && sx_image_load_rgb(a->images.v[0], &cond)) return -1;
    int rc = 0;
    for (int i = 0; i < r->n_images && rc == 0; i++) {
        char *path = numbered(out, i, r->n_images);
        sx_image im;
        restart_bars();
        double t = sx_time();
        rc = path ? sx_seedx_decode_generated(m, r->img_gen_feat + (int64_t)i * r->feat_tokens * r->feat_dim,
                                              stage2, stage2 && a->images.n ? &cond : NULL, &a->o, &im)
                  : -1;
        if (rc == 0) {
            stage_line("de-tokenizer: %.2fs\n", sx_time() - t);
            rc = save_image(path, &im);
            sx_image_free(&im);
        }
        free(path);
    }
    sx_image_free(&cond);
    return rc;
}

/* Opens the model and checks it for the stages of the run. */
static int open_model(const cli_args *a, unsigned stages, sx_seedx **m) {
    if (sx_seedx_open(a->model, m) == 0) {
        if ((stages & SX_SEEDX_DECODE_EDIT) && a->mode == M_EDIT &&
            (!sx_seedx_has(*m, "unet_edit.gguf") || !sx_seedx_has(*m, "detokenizer_edit.gguf")))
            sx_err("%s is not a SEED-X-Edit model (no unet_edit.gguf / detokenizer_edit.gguf; "
                   "convert with --variant seed-x-edit)", a->model);
        else if (sx_seedx_check(*m, stages, &a->o) == 0)
            return 0;
    }
    fprintf(stderr, "%s: %s\n", a->cmd, sx_errmsg());
    sx_seedx_free(*m);
    *m = NULL;
    return 1;
}

static int fail(const cli_args *a, sx_seedx *m, cli_turn *t) {
    fprintf(stderr, "%s: %s\n", a->cmd, sx_errmsg());
    if (t) turn_free(t);
    sx_seedx_free(m);
    return 1;
}

/* ======================================================================
 * chat: the REPL
 * ====================================================================== */
/* The conversation (sx_seedx_conv: each turn's prompt built per piece as
 * SEED-X-I was fine-tuned on conversations, every image's features kept in
 * order), the images attached for the next message (their features and
 * any-res counts), and the any-res counts of all images so far (for the
 * prompt check). A message that fails changes none of it. */
typedef struct {
    sx_seedx_conv conv;
    float *pend;
    int64_t pend_rows;
    int pending, n_images, tiles[CLI_LIST_MAX];
} chat_state;

static int chat_start(sx_seedx *m, const cli_args *a, chat_state *st) {
    memset(st, 0, sizeof *st);
    char *tm = mode_template(a);
    int rc = !tm || sx_seedx_conv_init(&st->conv, m, tm) ? -1 : 0;
    free(tm);
    return rc;
}

static void chat_end(chat_state *st) {
    sx_seedx_conv_free(&st->conv);
    free(st->pend);
    memset(st, 0, sizeof *st);
}

static int chat_attach(sx_seedx *m, const cli_args *a, chat_state *st, const char *path) {
    if (st->n_images + st->pending == CLI_LIST_MAX)
        return sx_err("at most %d images in a conversation (/reset)", CLI_LIST_MAX);
    sx_image im;
    float *f = NULL;
    int64_t r0 = 0;
    int tiles;
    if (sx_image_load_rgb(path, &im)) return -1;
    int rc = sx_seedx_encode_images(m, &im, 1, a->grids, &f, &r0, &tiles);
    sx_image_free(&im);
    if (rc) return -1;
    int64_t D = sx_seedx_feat_width(m);
    float *nf = realloc(st->pend, sizeof(float) * (size_t)((st->pend_rows + r0) * D));
    if (!nf) {
        free(f);
        return sx_err("out of memory keeping the image features");
    }
    st->pend = nf;
    memcpy(st->pend + st->pend_rows * D, f, sizeof(float) * (size_t)(r0 * D));
    free(f);
    st->pend_rows += r0;
    st->tiles[st->n_images + st->pending++] = tiles;
    fprintf(stderr, "(image attached: %d any-res images)\n", tiles);
    return 0;
}

/* One message: the turn (the one place the conversation becomes a prompt:
 * sx_seedx_conv_user), checked against the context, the LLM, the answer
 * kept; on any failure the conversation is rewound to before the turn. */
static int chat_message(sx_seedx *m, cli_args *a, chat_state *st, const char *msg) {
    sx_seedx_conv_mark mk = sx_seedx_conv_save(&st->conv);
    sx_seedx_reply r;
    int rc = sx_seedx_conv_user(&st->conv, m, msg, st->tiles + st->n_images, st->pending, st->pend,
                                st->pend_rows);
    if (rc == 0)
        rc = sx_seedx_check_prompt(m, st->conv.ids, st->conv.n, st->tiles, st->n_images + st->pending,
                                   &a->o);
    if (rc == 0) {
        a->o.on_token = stream_token;
        a->o.on_token_user = m;
        prefill_bar.t0 = sx_time();
        rc = sx_seedx_generate(m, st->conv.ids, st->conv.n, st->conv.feats, st->conv.feat_rows, &a->o, &r);
        printf("\n");
        fflush(stdout);
        if (rc == 0 && sx_seedx_conv_reply(&st->conv, m, &r)) {
            sx_seedx_reply_free(&r);
            rc = -1;
        }
    }
    if (rc) {
        sx_seedx_conv_rewind(&st->conv, mk);
        return -1;
    }
    st->n_images += st->pending;
    st->pending = 0;
    st->pend_rows = 0;
    if (r.n_images && decode_images(m, a, &r, 0, a->out ? a->out : "seedx-chat.png"))
        fprintf(stderr, "%s: the answer's image: %s\n", a->cmd, sx_errmsg());
    sx_seedx_reply_free(&r);
    return 0;
}

static int chat_repl(sx_seedx *m, cli_args *a) {
    chat_state st;
    if (chat_start(m, a, &st)) {
        fprintf(stderr, "%s: %s\n", a->cmd, sx_errmsg());
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    long n;
    fprintf(stderr, "seedx chat: type a message; /image PATH attaches an image; /help lists the commands\n");
    for (int i = 0; i < a->images.n; i++) /* --image: attached to the first message */
        if (chat_attach(m, a, &st, a->images.v[i])) {
            fprintf(stderr, "%s: %s\n", a->cmd, sx_errmsg());
            chat_end(&st);
            return 1;
        }
    while ((fputs("> ", stderr), n = cli_read_line(stdin, &line, &cap)) >= 0) {
        repl_line l = cli_repl_classify(line, (size_t)n);
        if (l.kind == REPL_QUIT) break;
        if (l.kind == REPL_EMPTY) continue;
        if (l.kind == REPL_HELP || l.kind == REPL_BAD) {
            if (l.why && line[0] == '/')
                fprintf(stderr, "%s: %s: %.*s\n", a->cmd, l.why, (int)(strcspn(line, " \t") < 200 ? strcspn(line, " \t") : 200), line);
            else if (l.why)
                fprintf(stderr, "%s: %s\n", a->cmd, l.why);
            fputs(cli_repl_commands, stderr);
        } else if (l.kind == REPL_RESET) {
            chat_end(&st);
            if (chat_start(m, a, &st)) break;
            fprintf(stderr, "(conversation and images forgotten)\n");
        } else if (l.kind == REPL_IMAGE) {
            if (chat_attach(m, a, &st, l.arg)) fprintf(stderr, "%s: %s (no image attached)\n", a->cmd, sx_errmsg());
        } else if (chat_message(m, a, &st, l.arg)) {
            fprintf(stderr, "%s: %s\n(the conversation is as it was before this message", a->cmd, sx_errmsg());
            if (st.pending) fprintf(stderr, "; %d image(s) still attached to the next one", st.pending);
            fprintf(stderr, ")\n");
        }
    }
    free(line);
    chat_end(&st);
    return 0;
}

/* ======================================================================
 * the modes
 * ====================================================================== */
int sx_cmd_chat(int argc, char **argv) {
    cli_args a;
    int e = mode_parse(M_CHAT, argc, argv, &a);
    if (e || cli_args_only) return e < 0 ? 0 : e;
    double t0 = sx_time();
    sx_seedx *m;
    set_progress(&a.o);
    if (open_model(&a, SX_SEEDX_LLM | (a.images.n || !a.prompt ? SX_SEEDX_VISION : 0), &m)) return 1;
    if (!a.prompt) {
        int rc = chat_repl(m, &a);
        sx_seedx_free(m);
        return rc;
    }
    cli_turn t;
    sx_seedx_reply r;
    if (prepare_turn(m, &a, a.prompt, &t) || run_turn(m, &a, &t, 1, &r)) return fail(&a, m, &t);
    turn_free(&t);
    int stage2 = sx_seedx_has(m, "unet_edit.gguf") && a.images.n;
    int rc = r.n_images ? decode_images(m, &a, &r, stage2, a.out ? a.out : "seedx-chat.png") : 0;
    sx_seedx_reply_free(&r);
    if (rc) return fail(&a, m, NULL);
    report(t0);
    sx_seedx_free(m);
    return 0;
}

/* generate and edit: one turn that must answer with an image */
static int image_turn(int mode, int argc, char **argv) {
    cli_args a;
    int e = mode_parse(mode, argc, argv, &a);
    if (e || cli_args_only) return e < 0 ? 0 : e;
    double t0 = sx_time();
    sx_seedx *m;
    int edit = mode == M_EDIT;
    set_progress(&a.o);
    if (open_model(&a, SX_SEEDX_LLM | SX_SEEDX_VISION | (edit ? SX_SEEDX_DECODE_EDIT : SX_SEEDX_DECODE), &m))
        return 1;
    /* the T2I scripts ask 'Generate an image: {caption}'; the base model's
     * template '{TEXT}<img>' takes the caption alone */
    char *text = edit || (a.tmpl && !strcmp(a.tmpl, "seed-x")) ? sx_strf("%s", a.prompt)
                                                               : sx_strf("Generate an image: %s", a.prompt);
    cli_turn t;
    memset(&t, 0, sizeof t);
    sx_seedx_reply r;
    int rc = !text || prepare_turn(m, &a, text, &t) || run_turn(m, &a, &t, 0, &r);
    free(text);
    if (rc) return fail(&a, m, &t);
    turn_free(&t);
    if (!r.n_images) {
        fprintf(stderr, "%s: the model answered without an image: \"%s\" (try --force-image)\n", a.cmd,
                r.clean ? r.clean : "");
        sx_seedx_reply_free(&r);
        sx_seedx_free(m);
        return 1;
    }
    rc = decode_images(m, &a, &r, edit, a.out);
    sx_seedx_reply_free(&r);
    if (rc) return fail(&a, m, NULL);
    report(t0);
    sx_seedx_free(m);
    return 0;
}

int sx_cmd_generate(int argc, char **argv) { return image_turn(M_GENERATE, argc, argv); }
int sx_cmd_edit(int argc, char **argv) { return image_turn(M_EDIT, argc, argv); }

int sx_cmd_reconstruct(int argc, char **argv) {
    cli_args a;
    int e = mode_parse(M_RECON, argc, argv, &a);
    if (e || cli_args_only) return e < 0 ? 0 : e;
    double t0 = sx_time();
    sx_image im, cond, out;
    memset(&im, 0, sizeof im);
    memset(&cond, 0, sizeof cond);
    if (sx_image_load_rgb(a.images.v[0], &im) || (a.cond && sx_image_load_rgb(a.cond, &cond))) {
        sx_image_free(&im);
        return fail(&a, NULL, NULL);
    }
    sx_seedx *m;
    set_progress(&a.o);
    int rc = open_model(&a, a.cond ? SX_SEEDX_DECODE_EDIT : SX_SEEDX_DECODE, &m);
    if (rc == 0) {
        restart_bars();
        rc = sx_seedx_reconstruct(m, &im, a.cond ? &cond : NULL, &a.o, &out);
        if (rc == 0) {
            rc = save_image(a.out, &out);
            sx_image_free(&out);
        }
        if (rc) fprintf(stderr, "%s: %s\n", a.cmd, sx_errmsg());
        else report(t0);
        sx_seedx_free(m);
    }
    sx_image_free(&im);
    sx_image_free(&cond);
    return rc ? 1 : 0;
}

int sx_cmd_ground(int argc, char **argv) {
    cli_args a;
    int e = mode_parse(M_GROUND, argc, argv, &a);
    if (e || cli_args_only) return e < 0 ? 0 : e;
    double t0 = sx_time();
    sx_seedx *m;
    set_progress(&a.o);
    if (open_model(&a, SX_SEEDX_LLM | SX_SEEDX_VISION, &m)) return 1;
    cli_turn t;
    sx_seedx_reply r;
    if (prepare_turn(m, &a, a.prompt, &t) || run_turn(m, &a, &t, 1, &r)) return fail(&a, m, &t);
    sx_image *im = &t.ims[0];
    printf("%d box(es)\n", r.n_boxes);
    for (int i = 0; i < r.n_boxes; i++) {
        int rect[4];
        if (r.box_counts[i] < 4) {
            printf("box %d: %d values (need 4), skipped\n", i, r.box_counts[i]);
            continue;
        }
        sx_seedx_box_rect(r.boxes[i], im->w, im->h, rect);
        printf("box %d: loc (%d, %d, %d, %d) -> pixels x1=%d y1=%d x2=%d y2=%d\n", i, r.boxes[i][0],
               r.boxes[i][1], r.boxes[i][2], r.boxes[i][3], rect[0], rect[1], rect[2], rect[3]);
        sx_image_draw_box(im, rect[0], rect[1], rect[2], rect[3], (const uint8_t[3]){0, 255, 0});
    }
    int rc = a.out ? save_image(a.out, im) : 0;
    sx_seedx_reply_free(&r);
    if (rc) return fail(&a, m, &t);
    turn_free(&t);
    report(t0);
    sx_seedx_free(m);
    return 0;
}

int sx_cmd_version(int argc, char **argv) {
    cli_spec s = {"seedx version", "seedx version", "Prints the version, the SIMD path in use and the thread count.",
                  NULL, 0, NULL, 0, 0, NULL, 0};
    CLI_PARSE(&s, argc, argv);
    CLI_GO(&s);
    printf("seedx %s\nsimd: %s\ncpu: %s\nthreads: %d\n", SEEDX_VERSION,
           sx_simd_name(sx_simd_level()), sx_simd_features(), sx_threads_count());
    if (sx_compute_bf16_native())
        printf("compute: bf16 (%s) for chat ground generate edit reconstruct demo serve, f32 for the "
               "others; --compute f32|bf16 chooses\n",
               sx_compute_bf16_kernel());
    else
        printf("compute: f32 (no BF16 instructions: --compute bf16 would round the inputs but run "
               "on float32 FMAs, %s)\n",
               sx_compute_bf16_kernel());
    return 0;
}

/* ======================================================================
 * seedx demo: every mode on the committed tiny model
 * ====================================================================== */
static int write_demo_image(const char *path) {
    /* a 640x480 synthetic scene: sky gradient, a red square, a blue disc */
    sx_image im = {640, 480, 3, NULL};
    im.data = sx_malloc((size_t)640 * 480 * 3, "demo image");
    if (!im.data) return -1;
    for (int y = 0; y < 480; y++)
        for (int x = 0; x < 640; x++) {
            uint8_t *p = im.data + ((size_t)y * 640 + x) * 3;
            p[0] = (uint8_t)(60 + y / 4), p[1] = (uint8_t)(120 + y / 5), p[2] = (uint8_t)(230 - y / 8);
            if (x > 80 && x < 240 && y > 260 && y < 420) p[0] = 210, p[1] = 40, p[2] = 30;
            int dx = x - 470, dy = y - 200;
            if (dx * dx + dy * dy < 90 * 90) p[0] = 30, p[1] = 60, p[2] = 200;
        }
    int rc = sx_image_save(path, &im);
    sx_image_free(&im);
    return rc;
}

/* The running binary's path (malloc'd; NULL if unknown). */
static char *self_exe(void) {
    for (size_t cap = 256; cap <= ((size_t)1 << 20); cap *= 2) {
        char *b = malloc(cap);
        if (!b) return NULL;
        ssize_t l = readlink("/proc/self/exe", b, cap);
        if (l < 0) {
            free(b);
            return NULL;
        }
        if ((size_t)l < cap) {
            b[l] = 0;
            return b;
        }
        free(b);
    }
    return NULL;
}

/* The tiny model, found next to the running binary: ./seedx at the root of a
 * build tree has it in tests/fixtures/, an installed PREFIX/bin/seedx in
 * PREFIX/share/seedx/tiny-model (make install); last, the current directory
 * as a repository root. malloc'd, NULL if not found. */
static char *find_demo_model(void) {
    char *bin = self_exe(), *sl = bin ? strrchr(bin, '/') : NULL, *found = NULL;
    if (sl) *sl = 0; /* bin: the binary's directory */
    char *cands[3] = {sl ? sx_strf("%s/tests/fixtures/seedx_e2e/model", bin) : NULL,
                      sl ? sx_strf("%s/../share/seedx/tiny-model", bin) : NULL,
                      sx_strf("tests/fixtures/seedx_e2e/model")};
    for (int i = 0; i < 3 && !found; i++) {
        struct stat st;
        char *probe = cands[i] ? sx_strf("%s/llm.gguf", cands[i]) : NULL;
        if (probe && stat(probe, &st) == 0) {
            found = realpath(cands[i], NULL);
            if (!found) found = sx_strf("%s", cands[i]);
        }
        free(probe);
    }
    for (int i = 0; i < 3; i++) free(cands[i]);
    free(bin);
    return found;
}

int sx_cmd_demo(int argc, char **argv) {
    const char *model = NULL, *outdir = "demo-out";
    const cli_opt opts[] = {
        {"-m", CLI_STR, &model, "DIR", "the tiny model (default: found next to the seedx binary)", 0, 0, NULL},
        {"-o", CLI_STR, &outdir, "DIR", "where the outputs go (default demo-out)", 0, 0, NULL},
    };
    cli_spec s = {"seedx demo", "seedx demo [-m TINY_MODEL_DIR] [-o DIR]",
                  "Runs every SEED-X mode on the tiny random-weight model committed in\n"
                  "tests/fixtures/seedx_e2e/model (installed as PREFIX/share/seedx/tiny-model),\n"
                  "printing each command so that it can be pasted into a shell.",
                  opts, CLI_COUNT(opts), NULL, 0, 0, NULL, 0};
    CLI_PARSE(&s, argc, argv);
    CLI_GO(&s);
    char *found = NULL;
    if (!model && !(model = found = find_demo_model())) {
        fprintf(stderr, "seedx demo: the tiny model is neither next to the seedx binary (build "
                        "tree or make install) nor in ./tests/fixtures/seedx_e2e/model: pass -m\n");
        return 1;
    }
    struct stat st;
    if (stat(model, &st) != 0) {
        fprintf(stderr, "seedx demo: %s not found: pass -m TINY_MODEL_DIR\n", model);
        free(found);
        return 1;
    }
    mkdir(outdir, 0777);
    enum { IMG, O_GROUND, O_GEN, O_EDIT, O_RECON, O_COND, N_PATHS };
    const char *names[N_PATHS] = {"input.png", "ground.png", "generate.png", "edit.png",
                                  "reconstruct.png", "reconstruct_cond.png"};
    char *path[N_PATHS];
    int ok = 1;
    for (int i = 0; i < N_PATHS; i++) ok &= (path[i] = sx_strf("%s/%s", outdir, names[i])) != NULL;
    if (!ok || write_demo_image(path[IMG])) {
        fprintf(stderr, "seedx demo: %s\n", sx_errmsg());
        for (int i = 0; i < N_PATHS; i++) free(path[i]);
        free(found);
        return 1;
    }
    printf("seedx demo: tiny random-weight SEED-X from %s (outputs are noise-like by design:\n"
           "the weights are random; the point is that every stage runs and matches PyTorch)\n\n",
           model);
    /* tiny settings: 64x64 output, 4 steps; 24 new tokens for text, 80 when the
     * answer must hold an image (64 image tokens + </img>) */
    const char *img = path[IMG];
    struct {
        const char *title;
        int (*fn)(int, char **);
        const char *argv[24];
    } runs[] = {
        {"comprehension (any-res tiles -> ViT -> resampler -> LLM)", sx_cmd_chat,
         {"chat", "-m", model, "--image", img, "-p", "Describe this image briefly.", "-n", "24"}},
        {"grounding (boxes parsed and drawn)", sx_cmd_ground,
         {"ground", "-m", model, "--image", img, "-p", "Where is the red square?", "-o", path[O_GROUND], "-n", "24"}},
        {"text-to-image (LLM image tokens -> de-tokenizer -> SDXL UNet -> VAE)", sx_cmd_generate,
         {"generate", "-m", model, "-p", "a red square under a blue sky", "--force-image", "-o", path[O_GEN],
          "-n", "80", "--size", "64x64", "--steps", "4"}},
        {"editing (SEED-X-Edit, 8-channel UNet, 3-way guidance)", sx_cmd_edit,
         {"edit", "-m", model, "--image", img, "-p", "make it sunset", "--force-image", "-o", path[O_EDIT],
          "-n", "80", "--size", "64x64", "--steps", "4"}},
        {"reconstruction (image -> ViT -> de-tokenizer)", sx_cmd_reconstruct,
         {"reconstruct", "-m", model, "--image", img, "-o", path[O_RECON], "--size", "64x64", "--steps", "4"}},
        {"reconstruction with a condition image", sx_cmd_reconstruct,
         {"reconstruct", "-m", model, "--image", img, "--condition", img, "-o", path[O_COND], "--size",
          "64x64", "--steps", "4"}},
    };
    int failed = 0, n_runs = (int)(sizeof runs / sizeof runs[0]);
    double t0 = sx_time();
    for (int r = 0; r < n_runs; r++) {
        int ac = 0;
        while (runs[r].argv[ac]) ac++;
        printf("== %s\n$ %s", runs[r].title, cli_prog);
        for (int k = 0; k < ac; k++) {
            char *q = cli_shell_quote(runs[r].argv[k]);
            printf(" %s", q ? q : "?");
            free(q);
        }
        printf("\n");
        fflush(stdout);
        double t = sx_time();
        int rc = runs[r].fn(ac, (char **)runs[r].argv);
        printf("-> %s in %.2fs\n\n", rc == 0 ? "ok" : "FAILED", sx_time() - t);
        failed += rc != 0;
    }
    printf("demo: %d of %d stages ok in %.1fs; outputs in %s/\n", n_runs - failed, n_runs,
           sx_time() - t0, outdir);
    for (int i = 0; i < N_PATHS; i++) free(path[i]);
    free(found);
    return failed ? 1 : 0;
}
