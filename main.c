/* main.c - the `seedx` command line: the common options (cli.h), then
 * dispatch to the subcommands (SEED-X modes in cli.c, component tools in
 * cli_tools.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int sx_cmd_serve(int argc, char **argv); /* serve.c */

/* fast: the command's default compute type is BF16 where the CPU has BF16
 * instructions (AMX, AVX512_BF16): the SEED-X modes and the server. The component tools
 * default to the exact F32 path (numerics, parity with PyTorch). --compute
 * (a common option, cli.h) overrides it. */
static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
    int fast;
} cmds[] = {
    {"demo", sx_cmd_demo, "run every mode on the committed tiny model (outputs in demo-out/)", 1},
    {"chat", sx_cmd_chat, "SEED-X: talk about images (one shot with -p, else a REPL)", 1},
    {"ground", sx_cmd_ground, "SEED-X: find things in an image, print and draw the boxes", 1},
    {"generate", sx_cmd_generate, "SEED-X: text to image", 1},
    {"edit", sx_cmd_edit, "SEED-X-Edit: edit an image by instruction", 1},
    {"reconstruct", sx_cmd_reconstruct, "SEED-X de-tokenizer: image -> ViT features -> image", 1},
    {"version", sx_cmd_version, "print version, SIMD path, compute type and threads", 0},
    {"inspect", sx_cmd_inspect, "list a GGUF file's metadata and tensors (or every *.gguf in a dir)", 0},
    {"image", sx_cmd_image, "image info|convert|tiles: decode, resize, SEED-X any-res tiles", 0},
    {"tokenize", sx_cmd_tokenize, "text -> token ids (or --decode ids -> text)", 0},
    {"vit", sx_cmd_vit, "encode an image with the Qwen-VL ViT (+attn pool), print feature stats", 0},
    {"lm", sx_cmd_lm, "text completion with a Llama checkpoint (streamed, tokens/s)", 0},
    {"vae", sx_cmd_vae, "SDXL VAE: decode latents (.npy) to PNG, encode an image, roundtrip", 0},
    {"unet", sx_cmd_unet, "SDXL UNet: forward, torch-compatible randn, Euler+CFG sampling", 0},
    {"serve", sx_cmd_serve, "SEED-X behind a local HTTP API (OpenAI conventions) and a web page", 1},
    /* @@commands: add one line per subcommand above this marker */
};

static void usage(FILE *f) {
    fprintf(f, "usage: seedx [--threads N] [--compute f32|bf16] [--trace DIR] [-q] COMMAND [ARGS...]\n\n"
               "--compute: matrix products in exact float32, or with bfloat16 inputs and float32\n"
               "sums (AVX512_BF16: about twice the float32 rate, AMX tiles: more than ten times).\n"
               "Default: bf16 for the SEED-X modes where the CPU has BF16 instructions, f32\n"
               "otherwise and for the component tools (`seedx version` says which).\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-12s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f,
            "\nThe common options --threads N, --compute T, --trace DIR and -q go before or after\n"
            "the command.\n"
            "environment: SEEDX_THREADS, SEEDX_SIMD=scalar|avx2|avx512|amx|neon, SEEDX_TRACE=dir\n"
            "`seedx COMMAND --help` describes a command.\n");
}

int main(int argc, char **argv) {
    cli_prog = argc > 0 ? argv[0] : "seedx";
    /* the common options before the command: parsed up to the first argument
     * that is not an option (the command) */
    const char *rest[1];
    int n_rest = 0, i = 1;
    while (i < argc && argv[i][0] == '-' && argv[i][1]) {
        if (!strcmp(argv[i], "--version")) {
            argv[i] = "version";
            break;
        }
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        cli_opt common[CLI_N_COMMON];
        int nc = cli_common_opts(common), k = 0;
        while (k < nc && strcmp(common[k].name, argv[i])) k++;
        if (k == nc) {
            fprintf(stderr, "seedx: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
        /* one option (with its value) through the parser */
        int take = common[k].type == CLI_FLAG ? 1 : 2;
        if (i + take > argc) take = argc - i;
        char *sub[3] = {"seedx", argv[i], take == 2 ? argv[i + 1] : NULL};
        cli_spec s = {"seedx", "seedx [--threads N] [--trace DIR] [-q] COMMAND [ARGS...]", NULL, NULL, 0,
                      rest, 0, 0, &n_rest, 0};
        int rc = cli_parse(&s, take + 1, sub);
        if (rc) return rc == 1 ? 0 : rc;
        i += take;
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    if (sx_init(cli_g.threads) != 0) {
        fprintf(stderr, "seedx: %s\n", sx_errmsg());
        return 1;
    }
    if (cli_g.trace) sx_trace_set_dir(cli_g.trace); /* same as SEEDX_TRACE=DIR */
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        if (strcmp(argv[i], cmds[c].name)) continue;
        /* the command's compute type unless --compute said (here or after the command) */
        sx_set_compute(cli_g.compute      ? cli_g.compute
                       : cmds[c].fast && sx_compute_bf16_native() ? SX_COMPUTE_BF16
                                                                  : SX_COMPUTE_F32);
        return cmds[c].fn(argc - i, argv + i);
    }
    fprintf(stderr, "seedx: unknown command '%s'\n", argv[i]);
    usage(stderr);
    return 2;
}
