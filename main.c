/* main.c - the `seedx` command line: global options, then dispatch to the
 * subcommands (cli.h: SEED-X modes in cli.c, component tools in
 * cli_tools.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int sx_cmd_version(int argc, char **argv);
int sx_cmd_serve(int argc, char **argv); /* serve.c */

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} cmds[] = {
    {"demo", sx_cmd_demo, "run every mode on the committed tiny model (outputs in demo-out/)"},
    {"chat", sx_cmd_chat, "SEED-X: talk about images (one shot with -p, else a REPL)"},
    {"ground", sx_cmd_ground, "SEED-X: find things in an image, print and draw the boxes"},
    {"generate", sx_cmd_generate, "SEED-X: text to image"},
    {"edit", sx_cmd_edit, "SEED-X-Edit: edit an image by instruction"},
    {"reconstruct", sx_cmd_reconstruct, "SEED-X de-tokenizer: image -> ViT features -> image"},
    {"version", sx_cmd_version, "print version, SIMD path and threads"},
    {"inspect", sx_cmd_inspect, "list a GGUF file's metadata and tensors (or every *.gguf in a dir)"},
    {"image", sx_cmd_image, "image info|convert|tiles: decode, resize, SEED-X any-res tiles"},
    {"tokenize", sx_cmd_tokenize, "text -> token ids (or --decode ids -> text)"},
    {"vit", sx_cmd_vit, "encode an image with the Qwen-VL ViT (+attn pool), print feature stats"},
    {"lm", sx_cmd_lm, "text completion with a Llama checkpoint (streamed, tokens/s)"},
    {"vae", sx_cmd_vae, "SDXL VAE: decode latents (.npy) to PNG, encode an image, roundtrip"},
    {"unet", sx_cmd_unet, "SDXL UNet: forward, torch-compatible randn, Euler+CFG sampling"},
    {"serve", sx_cmd_serve, "SEED-X behind a local HTTP API (OpenAI conventions) and a web page"},
    /* @@commands: add one line per subcommand above this marker */
};

static int sx_cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("seedx %s\nsimd: %s\nthreads: %d\n", SEEDX_VERSION, sx_simd_name(sx_simd_level()),
           sx_threads_count());
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: seedx [--threads N] [--trace DIR] COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-12s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "\nenvironment: SEEDX_THREADS, SEEDX_SIMD=scalar|avx2|avx512, SEEDX_TRACE=dir\n"
               "`seedx COMMAND --help` describes a command.\n");
}

int main(int argc, char **argv) {
    int threads = 0;
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[i + 1]);
            if (threads <= 0) {
                fprintf(stderr, "seedx: --threads needs a positive number, got '%s'\n", argv[i + 1]);
                return 2;
            }
            i += 2;
        } else if (!strcmp(argv[i], "--trace") && i + 1 < argc) {
            sx_trace_set_dir(argv[i + 1]); /* same as SEEDX_TRACE=DIR */
            i += 2;
        } else if (!strcmp(argv[i], "--version")) {
            argv[i] = "version";
            break;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "seedx: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    if (sx_init(threads) != 0) {
        fprintf(stderr, "seedx: %s\n", sx_errmsg());
        return 1;
    }
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++)
        if (!strcmp(argv[i], cmds[c].name)) return cmds[c].fn(argc - i, argv + i);
    fprintf(stderr, "seedx: unknown command '%s'\n", argv[i]);
    usage(stderr);
    return 2;
}
