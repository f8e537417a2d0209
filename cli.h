/* cli.h - the `seedx` command line, shared by its files and linked only
 * into ./seedx (none of this is in libseedx.a):
 *   main.c       dispatch and the global options
 *   cli.c        the option parser, progress bars, the SEED-X modes: chat
 *                (one shot and REPL), ground, generate, edit, reconstruct,
 *                demo
 *   cli_tools.c  one tool per component: inspect, image, tokenize, vit, lm,
 *                unet, vae
 * Each subcommand takes (argc, argv) with argv[0] its own name and returns
 * the process exit status (0 ok, 1 failure, 2 bad usage). */
#ifndef SEEDX_CLI_H
#define SEEDX_CLI_H

#include <stdio.h>

#include "seedx.h"

/* cli.c */
int sx_cmd_chat(int argc, char **argv);
int sx_cmd_generate(int argc, char **argv);
int sx_cmd_edit(int argc, char **argv);
int sx_cmd_reconstruct(int argc, char **argv);
int sx_cmd_ground(int argc, char **argv);
int sx_cmd_demo(int argc, char **argv);
int sx_cmd_version(int argc, char **argv);

/* cli_tools.c */
int sx_cmd_inspect(int argc, char **argv);
int sx_cmd_image(int argc, char **argv);
int sx_cmd_tokenize(int argc, char **argv);
int sx_cmd_vit(int argc, char **argv);
int sx_cmd_lm(int argc, char **argv);
int sx_cmd_unet(int argc, char **argv);
int sx_cmd_vae(int argc, char **argv);

/* ---- the option parser (cli.c), used by every command ------------------
 * A command describes its options as a table of cli_opt rows and calls
 * cli_parse. Adding an option is adding a row: it is parsed, range-checked
 * and listed in --help from that row alone. Values are parsed completely
 * (strtol/strtod end pointer, range, finite): "4x", "nan", "1e99" for an
 * integer, "64x64x64" for a size are refused with a message. */
typedef enum {
    CLI_FLAG,   /* no value: *(int *)dst = 1 */
    CLI_STR,    /* *(const char **)dst = the value */
    CLI_MULTI,  /* repeatable: appended to the cli_list at dst */
    CLI_INT,    /* int in [min, max] */
    CLI_I64,    /* int64_t in [min, max] */
    CLI_U64,    /* uint64_t, decimal digits only (seeds) */
    CLI_FLOAT,  /* float, finite, in [min, max] */
    CLI_DOUBLE, /* double, finite, in [min, max] */
    CLI_SIZE,   /* "WxH" -> int dst[2] = {W, H}, each in [min, max] */
    CLI_CHOICE, /* one of the '|'-separated choices -> *(int *)dst = its index */
} cli_type;

typedef struct cli_opt {
    const char *name;    /* "--steps" or "-n" */
    cli_type type;
    void *dst;
    const char *arg;     /* the value's name in --help ("N", "FILE"); unused for flags */
    const char *help;    /* what it does, with its default */
    double min, max;     /* numbers: the accepted range (shown in --help) */
    const char *choices; /* CLI_CHOICE: "f32|f16|bf16" */
} cli_opt;

#define CLI_COUNT(rows) ((int)(sizeof(rows) / sizeof((rows)[0]))) /* rows of a table */

#define CLI_LIST_MAX 16
typedef struct cli_list {
    const char *v[CLI_LIST_MAX];
    int n;
} cli_list;

/* A command's arguments: name for messages ("seedx image convert"), usage
 * line(s), what it does, its options, its positional arguments (at most
 * max_pos, min_pos required; "-" alone and, with neg_positional, negative
 * numbers count as positional; everything after "--" too). */
typedef struct cli_spec {
    const char *name, *usage, *about;
    const cli_opt *opts;
    int n_opts;
    const char **pos;
    int min_pos, max_pos, *n_pos;
    int neg_positional;
} cli_spec;

/* The options every command takes, before or after the command name
 * (seedx --threads 2 chat ... = seedx chat ... --threads 2). */
typedef struct cli_common {
    int threads;       /* 0: as sx_init chose */
    int compute;       /* SX_COMPUTE_*: 0 (default): the command's own (main.c) */
    const char *trace; /* NULL: SEEDX_TRACE */
    int quiet;         /* -q: no progress, per-step or timing lines */
} cli_common;
extern cli_common cli_g;
extern const char *cli_prog; /* how seedx was invoked (argv[0]), for printed commands */
/* Set by tests and the fuzzer: commands return 0 right after parsing and
 * checking their arguments, before opening any file. */
extern int cli_args_only;

/* Parses argv[1..argc) (argv[0] is the command). Returns 0 when parsed,
 * 1 when --help was printed on stdout (the command exits 0), 2 after
 * printing what is wrong on stderr. */
int cli_parse(const cli_spec *s, int argc, char **argv);
void cli_help(FILE *f, const cli_spec *s);
/* One value parsed as option o would be (0, or 2 after a message). */
int cli_value(const char *cmd, const cli_opt *o, const char *v);
/* In a command: parses (returning 0 after --help, 2 on bad arguments), ...
 *   CLI_PARSE(&spec, argc, argv);
 *   ... checks that need no file ...
 *   CLI_GO(&spec);   (returns 0 when cli_args_only, applies cli_g)
 *   ... the work. */
#define CLI_PARSE(spec, argc, argv)                                                          \
    do {                                                                                     \
        int cli_rc_ = cli_parse(spec, argc, argv);                                           \
        if (cli_rc_) return cli_rc_ == 1 ? 0 : cli_rc_;                                      \
    } while (0)
#define CLI_GO(spec)                                                                         \
    do {                                                                                     \
        if (cli_args_only) return 0;                                                         \
        if (cli_apply_common((spec)->name)) return 2;                                        \
    } while (0)
/* Applies cli_g (threads, trace) after a command's cli_parse; 0 or 2. */
int cli_apply_common(const char *cmd);
/* --dtype: the weight types a model can be converted to at load (the
 * choices of a CLI_CHOICE row; q8_0/q4_0/q4_k quantize the LLM's and ViT's
 * matrices, README). cli_apply_dtype sets the type of choice index `choice`
 * (-1: as stored, nothing to do); 0, or 2 after a message. */
#define CLI_DTYPES "f32|f16|bf16|q8_0|q4_0|q4_k"
int cli_apply_dtype(const char *cmd, int choice);
/* The options every command lists under "common options" (out: room for
 * CLI_N_COMMON); returns their count. */
#define CLI_N_COMMON 8
int cli_common_opts(cli_opt *out);

/* ---- progress (cli.c) ---------------------------------------------------
 * One format for every stage on stderr:
 *   "label   12/50 [##########....................] 36.2s, ETA 1m52s"
 * redrawn in place on a terminal; elsewhere one line per update when plain
 * is set (diffusion steps, VAE decode), nothing otherwise; nothing with -q.
 * An update with done = 0 restarts the bar's clock and prints nothing. */
typedef struct cli_progress_bar {
    double t0;
    const char *label;
    int plain;
} cli_progress_bar;
void cli_bar_update(cli_progress_bar *b, int64_t done, int64_t total);
/* sx_progress_fn (sampler.h) on a cli_progress_bar: step + 1 of n_steps. */
void cli_progress(void *ud, int step, int n_steps, float t, const float *latents);
/* LLM prefill / VAE decode progress (done of total) on a cli_progress_bar. */
void cli_progress_count(void *ud, int64_t done, int64_t total);

/* ---- the chat REPL's input (cli.c) ---------------------------------------
 * A line of any length is read with cli_read_line (the newline and a '\r'
 * before it removed; -1 at the end of input) and classified: */
typedef enum {
    REPL_EMPTY,   /* blank: ignored */
    REPL_MESSAGE, /* a question (arg); "//text" sends "/text" */
    REPL_QUIT,    /* /quit, /exit */
    REPL_RESET,   /* /reset */
    REPL_IMAGE,   /* /image PATH (arg) */
    REPL_HELP,    /* /help */
    REPL_BAD,     /* unknown /command, /image without a path, a NUL byte: why */
} repl_kind;
typedef struct repl_line {
    repl_kind kind;
    const char *arg, *why;
} repl_line;
long cli_read_line(FILE *f, char **buf, size_t *cap);
repl_line cli_repl_classify(const char *line, size_t n);
extern const char cli_repl_commands[]; /* the list printed for /help and REPL_BAD */
/* Shell-quotes s for a command line that can be pasted back ('...' when it
 * holds anything but [A-Za-z0-9_./:=,+-@%]); malloc'd. */
char *cli_shell_quote(const char *s);

#endif
