/* cli.c - the SEED-X modes of `seedx`: chat (one shot, or a multi-turn
 * REPL), ground, generate, edit, reconstruct, and the demo that runs them
 * all on the committed tiny model. Front-end code (cli.h): it parses argv,
 * streams tokens and progress to the terminal, times the stages, and calls
 * the library's SEED-X API (seedx.h) for everything else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* ---- progress of the diffusion loop (cli.h) ----------------------------- */
void cli_progress(void *ud, int step, int n_steps, float t, const float *latents) {
    (void)t;
    (void)latents;
    const cli_progress_bar *pb = ud;
    double el = pb ? sx_time() - pb->t0 : 0;
    int done = step + 1, w = 30, fill = n_steps > 0 ? done * w / n_steps : w;
    double per = done > 0 ? el / done : 0, eta = per * (n_steps - done);
    char bar[64];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    fprintf(stderr, "\r%s %3d/%d [%s] %.1fs/step, ETA %dm%02ds ", pb && pb->label ? pb->label : "sampling",
            done, n_steps, bar, per, (int)(eta / 60), (int)eta % 60);
    if (done == n_steps) fprintf(stderr, "\n");
    fflush(stderr);
}

/* ======================================================================
 * options shared by chat | ground | generate | edit | reconstruct
 * ====================================================================== */
typedef struct {
    const char *model, *prompt, *out, *cond, *grids, *tmpl;
    const char *images[16];
    int n_images, verbose, force_image;
    const char *mode;
    sx_seedx_opts o;
} cli_args;

static void cli_usage(const char *cmd) {
    fprintf(stderr,
            "usage: seedx %s -m MODEL_DIR [options]\n"
            "  -m DIR            model directory (scripts/convert.py --pretrained ... --out DIR)\n"
            "  -p TEXT           prompt / question / caption / instruction\n"
            "  --image FILE      input image (repeatable for chat)\n"
            "  --condition FILE  condition image (reconstruct)\n"
            "  -o FILE           output image (.png or .ppm)\n"
            "  -n N              max new tokens (default 512; generate: 120)\n"
            "  --temp T --top-p P --top-k K   sampling (default greedy, as the official code)\n"
            "  --seed S          noise / sampling seed (default 42)\n"
            "  --rng torch-cpu|torch-cuda     noise generator (default torch-cpu)\n"
            "  --steps N --cfg G --image-cfg G --size WxH   diffusion (50, 7.5, 1.5, 1024x1024)\n"
            "  --sampler S       euler (default, the official sampler) or dpmpp2m (DPM-Solver++(2M),\n"
            "                    ~20-25 steps)\n"
            "  --karras          Karras sigmas (either sampler)\n"
            "  --grids LIST      any-res candidates, e.g. 1x1,2x2 (default: the official 8)\n"
            "  --vae-tiling      tiled VAE (bounded memory)\n"
            "  --dtype T         f32|f16|bf16: every weight matrix in type T; q8_0|q4_0|q4_k: the\n"
            "                    LLM's and ViT's matrices quantized (README); converted at load\n"
            "                    (default: as the model files store them); activations stay f32\n"
            "  --force-image     end the prompt with <img> (SEED-X base text-to-image)\n"
            "  --template T      seed-x-i (default: '[INST] {IMG}{TEXT} [/INST]\\n') or seed-x (the base\n"
            "                    model's 'Question: ..\\nAnswer:', detection '.. [[ <box_start>',\n"
            "                    text-to-image '{TEXT}<img>'), or a literal template with {IMG} {TEXT}\n"
            "  -q                no per-stage timing / peak memory summary on stderr\n",
            cmd);
}

static int cli_parse(const char *cmd, int argc, char **argv, cli_args *a) {
    memset(a, 0, sizeof *a);
    a->mode = cmd;
    a->verbose = 1; /* per-stage timing and peak RSS on stderr; -q turns it off */
    sx_seedx_opts_default(&a->o);
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV                                                                            \
    if (!v) {                                                                            \
        fprintf(stderr, "seedx %s: %s needs a value\n", cmd, k);                         \
        return 2;                                                                        \
    }                                                                                    \
    i++;
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            cli_usage(cmd);
            return 1;
        } else if (!strcmp(k, "-m")) {
            NEEDV a->model = v;
        } else if (!strcmp(k, "-p")) {
            NEEDV a->prompt = v;
        } else if (!strcmp(k, "-o")) {
            NEEDV a->out = v;
        } else if (!strcmp(k, "--image")) {
            NEEDV if (a->n_images == 16) {
                fprintf(stderr, "seedx %s: at most 16 images\n", cmd);
                return 2;
            }
            a->images[a->n_images++] = v;
        } else if (!strcmp(k, "--condition")) {
            NEEDV a->cond = v;
        } else if (!strcmp(k, "--grids")) {
            NEEDV a->grids = v;
        } else if (!strcmp(k, "-n")) {
            NEEDV a->o.max_new_tokens = atoll(v);
        } else if (!strcmp(k, "--temp")) {
            NEEDV a->o.temperature = (float)atof(v);
        } else if (!strcmp(k, "--top-p")) {
            NEEDV a->o.top_p = (float)atof(v);
        } else if (!strcmp(k, "--top-k")) {
            NEEDV a->o.top_k = atoi(v);
        } else if (!strcmp(k, "--seed")) {
            NEEDV a->o.seed = strtoull(v, NULL, 10);
        } else if (!strcmp(k, "--rng")) {
            NEEDV if (sx_rng_parse(v, &a->o.rng)) {
                fprintf(stderr, "seedx %s: %s\n", cmd, sx_errmsg());
                return 2;
            }
        } else if (!strcmp(k, "--steps")) {
            NEEDV a->o.steps = atoi(v);
        } else if (!strcmp(k, "--sampler")) {
            NEEDV if (sx_sampler_parse(v, &a->o.sampler)) {
                fprintf(stderr, "seedx %s: %s\n", cmd, sx_errmsg());
                return 2;
            }
        } else if (!strcmp(k, "--karras")) {
            a->o.karras = SX_KARRAS_ON;
        } else if (!strcmp(k, "--cfg")) {
            NEEDV a->o.cfg = (float)atof(v);
        } else if (!strcmp(k, "--image-cfg")) {
            NEEDV a->o.image_cfg = (float)atof(v);
        } else if (!strcmp(k, "--size")) {
            NEEDV if (sscanf(v, "%dx%d", &a->o.width, &a->o.height) != 2) {
                fprintf(stderr, "seedx %s: --size wants WxH, got '%s'\n", cmd, v);
                return 2;
            }
        } else if (!strcmp(k, "--dtype")) {
            NEEDV int t = sx_type_from_name(v);
            if (t < 0 || sx_set_weight_dtype(t)) {
                fprintf(stderr, "seedx %s: --dtype wants f32, f16, bf16, q8_0, q4_0 or q4_k, got '%s'\n",
                        cmd, v);
                return 2;
            }
        } else if (!strcmp(k, "--vae-tiling")) {
            a->o.vae_tiling = 1;
        } else if (!strcmp(k, "--template")) {
            NEEDV a->tmpl = v;
        } else if (!strcmp(k, "--force-image")) {
            a->force_image = 1;
        } else if (!strcmp(k, "-v")) {
            a->verbose = 1;
        } else if (!strcmp(k, "-q")) {
            a->verbose = 0;
        } else {
            fprintf(stderr, "seedx %s: unknown option '%s'\n", cmd, k);
            cli_usage(cmd);
            return 2;
        }
#undef NEEDV
    }
    if (!a->model) {
        fprintf(stderr, "seedx %s: -m MODEL_DIR is required\n", cmd);
        return 2;
    }
    if (a->o.steps <= 0 || a->o.max_new_tokens <= 0) {
        fprintf(stderr, "seedx %s: --steps and -n must be positive\n", cmd);
        return 2;
    }
    a->o.grids = a->grids;
    return 0;
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

static void progress_plain(void *ud, int step, int n_steps, float t, const float *lat) {
    (void)lat;
    double *t0 = ud;
    fprintf(stderr, "denoise step %d/%d (t=%g) %.1fs\n", step + 1, n_steps, t, sx_time() - *t0);
}

static cli_progress_bar bar;
static double plain_t0;

/* prefill progress: a bar with ETA on a TTY (stderr), nothing otherwise */
static void prefill_bar(void *ud, int64_t done, int64_t total) {
    double t0 = *(double *)ud, el = sx_time() - t0;
    int w = 30, f = (int)(w * done / (total ? total : 1));
    double eta = done ? el * (double)(total - done) / (double)done : 0;
    fprintf(stderr, "\rprefill %3lld%% [%.*s%.*s] %.1fs, ETA %.1fs", (long long)(100 * done / total), f,
            "##############################", w - f, "..............................", el, eta);
    if (done == total) fputc('\n', stderr);
}
static double prefill_t0;

static void set_progress(sx_seedx_opts *o, const char *label) {
    if (isatty(2)) {
        bar.t0 = sx_time();
        bar.label = label;
        o->progress = cli_progress;
        o->progress_user = &bar;
    } else {
        plain_t0 = sx_time();
        o->progress = progress_plain;
        o->progress_user = &plain_t0;
    }
}

static int load_images(const cli_args *a, sx_image *ims) {
    for (int i = 0; i < a->n_images; i++)
        if (sx_image_load_rgb(a->images[i], &ims[i])) {
            for (int j = 0; j < i; j++) sx_image_free(&ims[j]);
            return -1;
        }
    return 0;
}

static int save_image(const char *path, const sx_image *im) {
    if (sx_image_save(path, im)) return -1;
    printf("wrote %s (%dx%d)\n", path, im->w, im->h);
    return 0;
}

static void report(const cli_args *a, double t0) {
    if (a->verbose)
        fprintf(stderr, "total %.2fs, peak RSS %.1f MB\n", sx_time() - t0,
                (double)sx_peak_rss() / 1048576.0);
}

/* One turn on the images and prompt of a; images generated by the model are
 * decoded (stage 2 with the first input image as condition when `edit`). */
/* The prompt template of a mode: --template seed-x-i|seed-x|literal. */
static const char *mode_template(const cli_args *a, const char *mode) {
    if (!a->tmpl || !strcmp(a->tmpl, "seed-x-i") || !strcmp(a->tmpl, "seed-x-edit"))
        return sx_seedx_template("seed-x-i");
    if (!strcmp(a->tmpl, "seed-x"))
        return sx_seedx_template(!strcmp(mode, "ground")     ? "seed-x-detect"
                                 : !strcmp(mode, "generate") ? "seed-x-t2i"
                                                             : "seed-x");
    return a->tmpl;
}

static int run_turn(sx_seedx *m, cli_args *a, const char *text, int edit, int print_text,
                    sx_seedx_reply *r) {
    sx_image ims[16];
    memset(ims, 0, sizeof ims);
    float *feats = NULL;
    int64_t rows = 0, n = 0;
    int tiles[16], rc = -1;
    int *ids = NULL;
    if (load_images(a, ims)) return -1;
    double t = sx_time();
    if (sx_seedx_encode_images(m, ims, a->n_images, a->grids, &feats, &rows, tiles)) goto out;
    if (a->verbose && a->n_images) fprintf(stderr, "vision: %.2fs\n", sx_time() - t);
    /* --force-image: the prompt string ends with <img> (the tokenizer then drops
     * the whitespace before it, as in the official base T2I prompt) */
    const char *tm = mode_template(a, a->mode);
    char tbuf[512];
    size_t tl = strlen(tm);
    if (a->force_image && !(tl >= 5 && !strcmp(tm + tl - 5, "<img>"))) {
        snprintf(tbuf, sizeof tbuf, "%s<img>", tm);
        tm = tbuf;
    }
    if (sx_seedx_build_prompt_t(m, tm, text, tiles, a->n_images, &ids, &n)) goto out;
    if (print_text) {
        a->o.on_token = stream_token;
        a->o.on_token_user = m;
    }
    if (isatty(2)) {
        prefill_t0 = sx_time();
        a->o.prefill_progress = prefill_bar;
        a->o.prefill_progress_user = &prefill_t0;
    }
    t = sx_time();
    if (sx_seedx_generate(m, ids, n, feats, rows, &a->o, r)) goto out;
    if (print_text) {
        printf("\n");
        fflush(stdout);
    }
    if (a->verbose)
        fprintf(stderr, "llm: %lld prompt + %lld new tokens in %.2fs\n", (long long)n,
                (long long)r->n_ids, sx_time() - t);
    rc = 0;
    (void)edit;
out:
    for (int i = 0; i < a->n_images; i++) sx_image_free(&ims[i]);
    free(feats);
    free(ids);
    return rc;
}

static int decode_images(sx_seedx *m, cli_args *a, const sx_seedx_reply *r, int stage2,
                         const char *out_default) {
    sx_image cond;
    memset(&cond, 0, sizeof cond);
    if (stage2 && a->n_images && sx_image_load_rgb(a->images[0], &cond)) return -1;
    int rc = 0;
    for (int i = 0; i < r->n_images && rc == 0; i++) {
        char path[1100];
        const char *base = a->out ? a->out : out_default;
        if (r->n_images == 1)
            snprintf(path, sizeof path, "%s", base);
        else
            snprintf(path, sizeof path, "%d-%s", i, base);
        sx_image im;
        set_progress(&a->o, "denoise");
        double t = sx_time();
        rc = sx_seedx_decode_generated(m, r->img_gen_feat + (int64_t)i * r->feat_tokens * r->feat_dim,
                                       stage2, stage2 && a->n_images ? &cond : NULL, &a->o, &im);
        if (rc == 0) {
            if (a->verbose) fprintf(stderr, "de-tokenizer: %.2fs\n", sx_time() - t);
            rc = save_image(path, &im);
            sx_image_free(&im);
        }
    }
    sx_image_free(&cond);
    return rc;
}

static int open_model(const char *cmd, const cli_args *a, sx_seedx **m) {
    if (sx_seedx_open(a->model, m)) {
        fprintf(stderr, "seedx %s: %s\n", cmd, sx_errmsg());
        return 1;
    }
    return 0;
}

static int fail(const char *cmd, sx_seedx *m) {
    fprintf(stderr, "seedx %s: %s\n", cmd, sx_errmsg());
    sx_seedx_free(m);
    return 1;
}

/* ======================================================================
 * the modes
 * ====================================================================== */
int sx_cmd_chat(int argc, char **argv) {
    cli_args a;
    int e = cli_parse("chat", argc, argv, &a);
    if (e) return e == 1 ? 0 : e;
    double t0 = sx_time();
    sx_seedx *m;
    if (open_model("chat", &a, &m)) return 1;
    sx_seedx_reply r;
    if (a.prompt) { /* one shot */
        if (run_turn(m, &a, a.prompt, 0, 1, &r)) return fail("chat", m);
        int rc = r.n_images ? decode_images(m, &a, &r, sx_seedx_has(m, "unet_edit.gguf") && a.n_images,
                                            "seedx-chat.png")
                            : 0;
        sx_seedx_reply_free(&r);
        if (rc) return fail("chat", m);
        report(&a, t0);
        sx_seedx_free(m);
        return 0;
    }
    /* REPL, multi-turn: each line is a question; "/image PATH" attaches an
     * image to the next question. The conversation (sx_seedx_conv) builds each
     * turn's prompt as SEED-X-I was fine-tuned on conversations: pieces
     * tokenized on their own, "\n" between an answer and the next question,
     * images first in their turn, every image's features kept in order.
     * A turn that fails leaves the conversation as it was. "/reset" forgets
     * it all. */
    char line[8192];
    sx_seedx_conv conv;
    if (sx_seedx_conv_init(&conv, m, mode_template(&a, a.mode))) return fail("chat", m);
    float *pend = NULL; /* features of the images attached for the next question */
    int64_t pend_rows = 0;
    int pending = 0, pend_tiles[16];
    fprintf(stderr, "seedx chat: type a message; /image PATH attaches an image; /reset; /quit\n");
    while (fputs("> ", stderr), fgets(line, sizeof line, stdin)) {
        size_t L = strlen(line);
        while (L && (line[L - 1] == '\n' || line[L - 1] == '\r')) line[--L] = 0;
        if (!L) continue;
        if (!strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            sx_seedx_conv_free(&conv);
            free(pend);
            pend = NULL;
            pend_rows = pending = 0;
            if (sx_seedx_conv_init(&conv, m, mode_template(&a, a.mode))) break;
            continue;
        }
        if (line[0] == '/' && strncmp(line, "/image ", 7)) { /* not a question: never sent */
            fprintf(stderr, "seedx chat: %s: commands are /image PATH, /reset, /quit\n",
                    strcmp(line, "/image") ? "unknown command" : "/image needs a path");
            continue;
        }
        if (!strncmp(line, "/image ", 7)) {
            if (conv.images + pending >= 16) {
                fprintf(stderr, "seedx chat: at most 16 images\n");
                continue;
            }
            sx_image im;
            float *f = NULL;
            int64_t r0 = 0;
            if (sx_image_load_rgb(line + 7, &im)) {
                fprintf(stderr, "seedx chat: %s\n", sx_errmsg());
                continue;
            }
            int e2 = sx_seedx_encode_images(m, &im, 1, a.grids, &f, &r0, &pend_tiles[pending]);
            sx_image_free(&im);
            int64_t D = sx_seedx_feat_width(m);
            float *nf = e2 ? NULL : realloc(pend, sizeof(float) * (size_t)((pend_rows + r0) * D));
            if (!nf) {
                free(f);
                fprintf(stderr, "seedx chat: %s\n", e2 ? sx_errmsg() : "out of memory");
                continue;
            }
            pend = nf;
            memcpy(pend + pend_rows * D, f, sizeof(float) * (size_t)(r0 * D));
            pend_rows += r0;
            free(f);
            pending++;
            fprintf(stderr, "(image attached: %d any-res images)\n", pend_tiles[pending - 1]);
            continue;
        }
        /* this turn: the attached images, then the question */
        sx_seedx_conv_mark mk = sx_seedx_conv_save(&conv);
        int ok = sx_seedx_conv_user(&conv, m, line, pend_tiles, pending, pend, pend_rows) == 0;
        if (ok) {
            a.o.on_token = stream_token;
            a.o.on_token_user = m;
            ok = sx_seedx_generate(m, conv.ids, conv.n, conv.feats, conv.feat_rows, &a.o, &r) == 0;
            printf("\n");
            fflush(stdout);
            if (ok && sx_seedx_conv_reply(&conv, m, &r)) {
                sx_seedx_reply_free(&r);
                ok = 0;
            }
        }
        if (!ok) {
            fprintf(stderr, "seedx chat: %s (the conversation is as before this question)\n",
                    sx_errmsg());
            sx_seedx_conv_rewind(&conv, mk);
            continue;
        }
        free(pend);
        pend = NULL;
        pend_rows = pending = 0;
        if (r.n_images && decode_images(m, &a, &r, 0, "seedx-chat.png"))
            fprintf(stderr, "seedx chat: %s\n", sx_errmsg());
        sx_seedx_reply_free(&r);
    }
    sx_seedx_conv_free(&conv);
    free(pend);
    sx_seedx_free(m);
    return 0;
}

int sx_cmd_generate(int argc, char **argv) {
    cli_args a;
    int e = cli_parse("generate", argc, argv, &a);
    if (e) return e == 1 ? 0 : e;
    if (!a.prompt || !a.out) {
        fprintf(stderr, "seedx generate: -p CAPTION and -o OUT.png are required\n");
        return 2;
    }
    if (a.n_images) {
        fprintf(stderr, "seedx generate: takes no --image (use edit)\n");
        return 2;
    }
    double t0 = sx_time();
    sx_seedx *m;
    if (open_model("generate", &a, &m)) return 1;
    char text[8192];
    if (a.tmpl && !strcmp(a.tmpl, "seed-x"))
        snprintf(text, sizeof text, "%s", a.prompt); /* '{caption}<img>' */
    else
        snprintf(text, sizeof text, "Generate an image: %s", a.prompt);
    int default_n = 1;
    for (int i = 1; i < argc; i++) default_n &= strcmp(argv[i], "-n") != 0;
    if (default_n) a.o.max_new_tokens = 120;
    sx_seedx_reply r;
    if (run_turn(m, &a, text, 0, 0, &r)) return fail("generate", m);
    if (!r.n_images) {
        fprintf(stderr, "seedx generate: the model answered without an image: \"%s\" "
                        "(try --force-image)\n", r.clean ? r.clean : "");
        sx_seedx_reply_free(&r);
        sx_seedx_free(m);
        return 1;
    }
    int rc = decode_images(m, &a, &r, 0, a.out);
    sx_seedx_reply_free(&r);
    if (rc) return fail("generate", m);
    report(&a, t0);
    sx_seedx_free(m);
    return 0;
}

int sx_cmd_edit(int argc, char **argv) {
    cli_args a;
    int e = cli_parse("edit", argc, argv, &a);
    if (e) return e == 1 ? 0 : e;
    if (!a.prompt || !a.out || a.n_images != 1) {
        fprintf(stderr, "seedx edit: --image IN, -p INSTRUCTION and -o OUT.png are required\n");
        return 2;
    }
    double t0 = sx_time();
    sx_seedx *m;
    if (open_model("edit", &a, &m)) return 1;
    if (!sx_seedx_has(m, "unet_edit.gguf") || !sx_seedx_has(m, "detokenizer_edit.gguf")) {
        fprintf(stderr, "seedx edit: %s is not a SEED-X-Edit model (no unet_edit.gguf / "
                        "detokenizer_edit.gguf; convert with --variant seed-x-edit)\n", a.model);
        sx_seedx_free(m);
        return 1;
    }
    if (!a.grids) a.grids = "1x1"; /* the edit script uses the 1x1 grid only */
    sx_seedx_reply r;
    if (run_turn(m, &a, a.prompt, 1, 0, &r)) return fail("edit", m);
    if (!r.n_images) {
        fprintf(stderr, "seedx edit: the model answered without an image: \"%s\" (try --force-image)\n",
                r.clean ? r.clean : "");
        sx_seedx_reply_free(&r);
        sx_seedx_free(m);
        return 1;
    }
    int rc = decode_images(m, &a, &r, 1, a.out);
    sx_seedx_reply_free(&r);
    if (rc) return fail("edit", m);
    report(&a, t0);
    sx_seedx_free(m);
    return 0;
}

int sx_cmd_reconstruct(int argc, char **argv) {
    cli_args a;
    int e = cli_parse("reconstruct", argc, argv, &a);
    if (e) return e == 1 ? 0 : e;
    if (a.n_images != 1 || !a.out) {
        fprintf(stderr, "seedx reconstruct: --image IN and -o OUT.png are required\n");
        return 2;
    }
    double t0 = sx_time();
    sx_seedx *m;
    if (open_model("reconstruct", &a, &m)) return 1;
    sx_image im, cond, out;
    memset(&cond, 0, sizeof cond);
    if (sx_image_load_rgb(a.images[0], &im)) return fail("reconstruct", m);
    if (a.cond && sx_image_load_rgb(a.cond, &cond)) {
        sx_image_free(&im);
        return fail("reconstruct", m);
    }
    set_progress(&a.o, "denoise");
    int rc = sx_seedx_reconstruct(m, &im, a.cond ? &cond : NULL, &a.o, &out);
    sx_image_free(&im);
    sx_image_free(&cond);
    if (rc == 0) {
        rc = save_image(a.out, &out);
        sx_image_free(&out);
    }
    if (rc) return fail("reconstruct", m);
    report(&a, t0);
    sx_seedx_free(m);
    return 0;
}

int sx_cmd_ground(int argc, char **argv) {
    cli_args a;
    int e = cli_parse("ground", argc, argv, &a);
    if (e) return e == 1 ? 0 : e;
    if (a.n_images != 1 || !a.prompt) {
        fprintf(stderr, "seedx ground: --image FILE and -p TEXT are required\n");
        return 2;
    }
    double t0 = sx_time();
    sx_seedx *m;
    if (open_model("ground", &a, &m)) return 1;
    sx_seedx_reply r;
    if (run_turn(m, &a, a.prompt, 0, 1, &r)) return fail("ground", m);
    sx_image im;
    if (sx_image_load_rgb(a.images[0], &im)) {
        sx_seedx_reply_free(&r);
        return fail("ground", m);
    }
    printf("%d box(es)\n", r.n_boxes);
    for (int i = 0; i < r.n_boxes; i++) {
        int rect[4];
        if (r.box_counts[i] < 4) {
            printf("box %d: %d values (need 4), skipped\n", i, r.box_counts[i]);
            continue;
        }
        sx_seedx_box_rect(r.boxes[i], im.w, im.h, rect);
        printf("box %d: loc (%d, %d, %d, %d) -> pixels x1=%d y1=%d x2=%d y2=%d\n", i, r.boxes[i][0],
               r.boxes[i][1], r.boxes[i][2], r.boxes[i][3], rect[0], rect[1], rect[2], rect[3]);
        sx_image_draw_box(&im, rect[0], rect[1], rect[2], rect[3], (const uint8_t[3]){0, 255, 0});
    }
    int rc = a.out ? save_image(a.out, &im) : 0;
    sx_image_free(&im);
    sx_seedx_reply_free(&r);
    if (rc) return fail("ground", m);
    report(&a, t0);
    sx_seedx_free(m);
    return 0;
}

/* ---- seedx demo: every mode on the committed tiny model ------------------ */
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

/* The tiny model, found next to the running binary: ./seedx at the root of a
 * build tree has it in tests/fixtures/, an installed PREFIX/bin/seedx in
 * PREFIX/share/seedx/tiny-model (make install); last, the current directory
 * as a repository root. */
static int find_demo_model(char *out, size_t n) {
    char bin[4096], near[2][4200];
    const char *cands[3] = {NULL, NULL, "tests/fixtures/seedx_e2e/model"};
    ssize_t l = readlink("/proc/self/exe", bin, sizeof bin - 1);
    char *sl = l > 0 ? (bin[l] = 0, strrchr(bin, '/')) : NULL;
    if (sl) { /* bin: the binary's directory */
        *sl = 0;
        snprintf(near[0], sizeof near[0], "%s/tests/fixtures/seedx_e2e/model", bin);
        snprintf(near[1], sizeof near[1], "%s/../share/seedx/tiny-model", bin);
        cands[0] = near[0];
        cands[1] = near[1];
    }
    for (int i = 0; i < 3; i++) {
        struct stat st;
        char probe[4300];
        if (!cands[i]) continue;
        snprintf(probe, sizeof probe, "%s/llm.gguf", cands[i]);
        if (stat(probe, &st) != 0) continue;
        char *real = realpath(cands[i], NULL);
        snprintf(out, n, "%s", real ? real : cands[i]);
        free(real);
        return 0;
    }
    return -1;
}

int sx_cmd_demo(int argc, char **argv) {
    const char *model = NULL, *outdir = "demo-out";
    char found[4096];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) model = argv[++i];
        else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--out")) && i + 1 < argc)
            outdir = argv[++i];
        else {
            fprintf(stderr, "usage: seedx demo [-m TINY_MODEL_DIR] [-o DIR]\n"
                            "Runs every SEED-X mode on the tiny random-weight model committed in\n"
                            "tests/fixtures/seedx_e2e/model (installed as PREFIX/share/seedx/tiny-model),\n"
                            "found next to the seedx binary; outputs go to DIR (default demo-out).\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    if (!model) {
        if (find_demo_model(found, sizeof found) != 0) {
            fprintf(stderr, "seedx demo: the tiny model is neither next to the seedx binary (build "
                            "tree or make install) nor in ./tests/fixtures/seedx_e2e/model: pass -m\n");
            return 1;
        }
        model = found;
    }
    struct stat st;
    if (stat(model, &st) != 0) {
        fprintf(stderr, "seedx demo: %s not found: pass -m TINY_MODEL_DIR\n", model);
        return 1;
    }
    mkdir(outdir, 0777);
    char img[1100], o1[1100], o2[1100], o3[1100], o4[1100], o5[1100];
    snprintf(img, sizeof img, "%s/input.png", outdir);
    snprintf(o1, sizeof o1, "%s/ground.png", outdir);
    snprintf(o2, sizeof o2, "%s/generate.png", outdir);
    snprintf(o3, sizeof o3, "%s/edit.png", outdir);
    snprintf(o4, sizeof o4, "%s/reconstruct.png", outdir);
    snprintf(o5, sizeof o5, "%s/reconstruct_cond.png", outdir);
    if (write_demo_image(img)) {
        fprintf(stderr, "seedx demo: %s\n", sx_errmsg());
        return 1;
    }
    printf("seedx demo: tiny random-weight SEED-X from %s (outputs are noise-like by design:\n"
           "the weights are random; the point is that every stage runs and matches PyTorch)\n\n",
           model);
    /* tiny settings: 64x64 output, 4 steps; 24 new tokens for text, 80 when the
     * answer must hold an image (64 image tokens + </img>) */
    const char *small[] = {"--size", "64x64", "--steps", "4", "-n", "24"};
    struct {
        const char *title;
        const char *argv[24];
    } runs[] = {
        {"comprehension (any-res tiles -> ViT -> resampler -> LLM)",
         {"chat", "-m", model, "--image", img, "-p", "Describe this image briefly.", "-v"}},
        {"grounding (boxes parsed and drawn)",
         {"ground", "-m", model, "--image", img, "-p", "Where is the red square?", "-o", o1, "-v"}},
        {"text-to-image (LLM image tokens -> de-tokenizer -> SDXL UNet -> VAE)",
         {"generate", "-m", model, "-p", "a red square under a blue sky", "--force-image", "-o", o2,
          "-v"}},
        {"editing (SEED-X-Edit, 8-channel UNet, 3-way guidance)",
         {"edit", "-m", model, "--image", img, "-p", "make it sunset", "--force-image", "-o", o3,
          "-v"}},
        {"reconstruction (image -> ViT -> de-tokenizer)",
         {"reconstruct", "-m", model, "--image", img, "-o", o4, "-v"}},
        {"reconstruction with a condition image",
         {"reconstruct", "-m", model, "--image", img, "--condition", img, "-o", o5, "-v"}},
    };
    int failed = 0;
    double t0 = sx_time();
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        const char *av[40];
        int ac = 0;
        for (; runs[r].argv[ac]; ac++) av[ac] = runs[r].argv[ac];
        for (int k = 0; k < 6; k++) av[ac++] = small[k];
        if (!strcmp(av[0], "generate") || !strcmp(av[0], "edit")) av[ac - 1] = "80";
        av[ac] = NULL;
        printf("== %s\n$ seedx", runs[r].title);
        for (int k = 0; k < ac; k++) printf(" %s", av[k]);
        printf("\n");
        fflush(stdout);
        double t = sx_time();
        int (*fn)(int, char **) = !strcmp(av[0], "chat")       ? sx_cmd_chat
                                  : !strcmp(av[0], "ground")   ? sx_cmd_ground
                                  : !strcmp(av[0], "generate") ? sx_cmd_generate
                                  : !strcmp(av[0], "edit")     ? sx_cmd_edit
                                                               : sx_cmd_reconstruct;
        int rc = fn(ac, (char **)av);
        printf("-> %s in %.2fs\n\n", rc == 0 ? "ok" : "FAILED", sx_time() - t);
        failed += rc != 0;
    }
    printf("demo: %d of %zu stages ok in %.1fs; outputs in %s/\n",
           (int)(sizeof runs / sizeof runs[0]) - failed, sizeof runs / sizeof runs[0],
           sx_time() - t0, outdir);
    return failed ? 1 : 0;
}
