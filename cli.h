/* cli.h - the `seedx` command line, shared by its files and linked only
 * into ./seedx (none of this is in libseedx.a):
 *   main.c       dispatch and the global options (--threads, --trace)
 *   cli.c        the SEED-X modes: chat (one shot and REPL), ground,
 *                generate, edit, reconstruct, demo
 *   cli_tools.c  one tool per component: inspect, image, tokenize, vit, lm,
 *                unet, vae
 * Each subcommand takes (argc, argv) with argv[0] its own name and returns
 * the process exit status (0 ok, 1 failure, 2 bad usage). */
#ifndef SEEDX_CLI_H
#define SEEDX_CLI_H

#include "seedx.h"

/* cli.c */
int sx_cmd_chat(int argc, char **argv);
int sx_cmd_generate(int argc, char **argv);
int sx_cmd_edit(int argc, char **argv);
int sx_cmd_reconstruct(int argc, char **argv);
int sx_cmd_ground(int argc, char **argv);
int sx_cmd_demo(int argc, char **argv);

/* cli_tools.c */
int sx_cmd_inspect(int argc, char **argv);
int sx_cmd_image(int argc, char **argv);
int sx_cmd_tokenize(int argc, char **argv);
int sx_cmd_vit(int argc, char **argv);
int sx_cmd_lm(int argc, char **argv);
int sx_cmd_unet(int argc, char **argv);
int sx_cmd_vae(int argc, char **argv);

/* A diffusion progress callback (sx_progress_fn, sampler.h) drawing
 * "label  12/50 [######......] 3.1s/step, ETA 1m52s" on stderr, one line
 * rewritten in place, a newline after the last step. ud points to a
 * cli_progress_bar whose t0 the caller sets with sx_time() just before
 * sampling (cli.c). */
typedef struct cli_progress_bar {
    double t0;
    const char *label;
} cli_progress_bar;
void cli_progress(void *ud, int step, int n_steps, float t, const float *latents);

#endif
