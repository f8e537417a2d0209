/* tests/fuzz_cli.c - libFuzzer harness for what a user types (issue #12).
 * The first byte picks what the rest is:
 *   0: an argv (NUL-separated words) for one of the commands, parsed and
 *      checked with cli_args_only set (nothing is opened or run): the option
 *      parser, the range checks, the library's sx_seedx_opts_check
 *   1: "template\0text\0block\0block..." through sx_seedx_fill_template
 *      (the result must have exactly the length the fields imply) and the
 *      tiny model's sx_seedx_build_prompt_t
 *   2: chat REPL input: lines read with cli_read_line, classified, and the
 *      messages made turns of a conversation on the tiny model
 *      (sx_seedx_conv_user, then an assistant turn), as the REPL does
 *   3: a string through cli_shell_quote, which must unquote back to itself
 * Run from the repository root (make fuzz): the tiny model is read from
 * tests/fixtures/seedx_e2e/model. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static sx_seedx *model;

static const struct {
    int (*fn)(int, char **);
    const char *name, *sub;
} cmds[] = {
    {sx_cmd_chat, "chat", NULL},          {sx_cmd_ground, "ground", NULL},
    {sx_cmd_generate, "generate", NULL},  {sx_cmd_edit, "edit", NULL},
    {sx_cmd_reconstruct, "reconstruct", NULL}, {sx_cmd_demo, "demo", NULL},
    {sx_cmd_version, "version", NULL},    {sx_cmd_inspect, "inspect", NULL},
    {sx_cmd_image, "image", "info"},      {sx_cmd_image, "image", "convert"},
    {sx_cmd_image, "image", "tiles"},     {sx_cmd_image, "image", NULL},
    {sx_cmd_tokenize, "tokenize", NULL},  {sx_cmd_vit, "vit", NULL},
    {sx_cmd_lm, "lm", NULL},              {sx_cmd_unet, "unet", "forward"},
    {sx_cmd_unet, "unet", "randn"},       {sx_cmd_unet, "unet", "sample"},
    {sx_cmd_vae, "vae", "decode"},        {sx_cmd_vae, "vae", "encode"},
    {sx_cmd_vae, "vae", "roundtrip"},
};
#define N_CMDS (sizeof cmds / sizeof cmds[0])

/* data split at NUL bytes into at most max NUL-terminated words (copies) */
static int split(const uint8_t *data, size_t size, char **w, int max) {
    int n = 0;
    size_t i = 0;
    while (n < max && i <= size) {
        size_t j = i;
        while (j < size && data[j]) j++;
        w[n] = malloc(j - i + 1);
        if (!w[n]) abort();
        memcpy(w[n], data + i, j - i);
        w[n][j - i] = 0;
        n++;
        i = j + 1;
    }
    return n;
}

static void fuzz_argv(const uint8_t *data, size_t size) {
    if (!size) return;
    size_t c = data[0] % N_CMDS;
    char *words[64], *argv[68];
    int nw = split(data + 1, size - 1, words, 64), argc = 0;
    argv[argc++] = (char *)cmds[c].name;
    if (cmds[c].sub) argv[argc++] = (char *)cmds[c].sub;
    for (int i = 0; i < nw; i++) argv[argc++] = words[i];
    argv[argc] = NULL;
    memset(&cli_g, 0, sizeof cli_g);
    int rc = cmds[c].fn(argc, argv);
    if (rc < 0 || rc > 2) abort();
    for (int i = 0; i < nw; i++) free(words[i]);
}

static size_t count(const char *s, const char *what) {
    size_t n = 0;
    for (const char *p = s; *p;) {
        if (!strncmp(p, "{IMG}", 5)) n += !strcmp(what, "{IMG}"), p += 5;
        else if (!strncmp(p, "{TEXT}", 6)) n += !strcmp(what, "{TEXT}"), p += 6;
        else p++;
    }
    return n;
}

static void fuzz_template(const uint8_t *data, size_t size) {
    char *w[6];
    int n = split(data, size, w, 6);
    const char *tmpl = w[0], *text = n > 1 ? w[1] : "";
    int nb = n > 2 ? n - 2 : 0;
    char *s = sx_seedx_fill_template(tmpl, text, (const char *const *)(w + 2), nb);
    size_t ni = count(tmpl, "{IMG}"), nt = count(tmpl, "{TEXT}");
    int valid = nt > 0 && (nb == 0 || ni == 1);
    if (!!s != valid) abort();
    if (s) {
        size_t want = strlen(tmpl) - 5 * ni - 6 * nt + nt * strlen(text);
        for (int i = 0; i < nb; i++) want += ni * strlen(w[2 + i]);
        if (strlen(s) != want) abort();
        free(s);
    }
    /* the tokenized prompt, with 0..2 images of 1..5 any-res images each */
    if (model && strlen(tmpl) + strlen(text) < 2048) {
        int tiles[2] = {1 + (int)(strlen(text) % 5), 1 + (int)(strlen(tmpl) % 5)}, *ids = NULL;
        int64_t k = 0;
        int ni2 = (int)(size % 3);
        if (sx_seedx_build_prompt_t(model, tmpl, text, tiles, ni2, &ids, &k) == 0) {
            if (k < 1 || !ids) abort();
            free(ids);
        } else if (ids) {
            abort();
        }
    }
    for (int i = 0; i < n; i++) free(w[i]);
}

static void fuzz_repl(const uint8_t *data, size_t size) {
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    long n;
    sx_seedx_conv conv;
    if (!model || sx_seedx_conv_init(&conv, model, NULL)) abort();
    while ((n = cli_read_line(f, &line, &cap)) >= 0) {
        repl_line l = cli_repl_classify(line, (size_t)n);
        if ((l.kind == REPL_MESSAGE || l.kind == REPL_IMAGE) &&
            (!l.arg || l.arg < line || l.arg > line + n))
            abort();
        if (l.kind == REPL_BAD && !l.why) abort();
        if (l.kind == REPL_MESSAGE && strlen(l.arg) < 4096 && conv.n < 8192) {
            sx_seedx_conv_mark mk = sx_seedx_conv_save(&conv);
            if (sx_seedx_conv_user(&conv, model, l.arg, NULL, 0, NULL, 0) ||
                sx_seedx_conv_assistant(&conv, model, l.arg + strlen(l.arg) / 2))
                abort();
            if (n & 1) { /* a failed turn: back to before it */
                sx_seedx_conv_rewind(&conv, mk);
                if (conv.n != mk.n) abort();
            }
        }
        if (l.kind == REPL_RESET) {
            sx_seedx_conv_free(&conv);
            if (sx_seedx_conv_init(&conv, model, NULL)) abort();
        }
    }
    free(line);
    sx_seedx_conv_free(&conv);
    fclose(f);
}

/* sh's reading of a word made of plain characters and '...' parts */
static char *unquote(const char *q) {
    size_t n = strlen(q), o = 0;
    char *s = malloc(n + 1);
    if (!s) abort();
    for (size_t i = 0; i < n; i++) {
        if (q[i] == '\'') {
            for (i++; i < n && q[i] != '\''; i++) s[o++] = q[i];
        } else if (q[i] == '\\') {
            s[o++] = q[++i];
        } else {
            s[o++] = q[i];
        }
    }
    s[o] = 0;
    return s;
}

static void fuzz_quote(const uint8_t *data, size_t size) {
    char *w[1];
    split(data, size, w, 1);
    char *q = cli_shell_quote(w[0]);
    if (!q) abort();
    char *back = unquote(q);
    if (strcmp(back, w[0])) abort();
    free(q);
    free(back);
    free(w[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        init = 1;
        /* the commands' messages and --help go nowhere (libFuzzer and the
         * sanitizers keep writing to the real stderr) */
        FILE *null = fopen("/dev/null", "w");
        if (null) stdout = stderr = null;
        sx_init(1);
        cli_args_only = 1;
        if (sx_seedx_open("tests/fixtures/seedx_e2e/model", &model)) model = NULL;
    }
    if (size == 0) return 0;
    switch (data[0] & 3) {
    case 0: fuzz_argv(data + 1, size - 1); break;
    case 1: fuzz_template(data + 1, size - 1); break;
    case 2: fuzz_repl(data + 1, size - 1); break;
    default: fuzz_quote(data + 1, size - 1); break;
    }
    return 0;
}
