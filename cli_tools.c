/* cli_tools.c - `seedx` subcommands that run one component on its own, for
 * inspecting files and checking a component against its PyTorch reference
 * outside the SEED-X pipeline:
 *   inspect   list a GGUF file's metadata and tensors
 *   image     decode / convert / any-res tiles
 *   tokenize  text <-> token ids
 *   vit       Qwen-VL ViT (+ attention pool) on one image, feature stats
 *   lm        Llama text completion, streamed
 *   unet      SDXL UNet forward, torch-compatible noise, Euler / DPM-Solver++ + CFG sampling
 *   vae       SDXL VAE decode / encode / roundtrip
 * Front-end code (cli.h): parses argv, prints, and calls the library. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* ======================================================================
 * seedx inspect [--all] FILE.gguf|DIR ...
 * ====================================================================== */

/* A name as is, with control bytes escaped (names are not quoted). */
static void print_name(FILE *f, const char *s) {
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 32 || ch == 127) fprintf(f, "\\x%02x", ch);
        else fputc(ch, f);
    }
}

/* A gguf-dump-like listing: header, metadata (index, key, type, value),
 * tensor table, totals. */
static int print_gguf(const sx_gguf *g, FILE *f, int all) {
    int64_t n_kv = sx_gguf_n_kv(g), n_t = sx_gguf_n_tensors(g);
    fprintf(f, "%s: GGUF v%u, %lld key/values, %lld tensors, alignment %zu, data at offset %llu, "
               "%zu bytes\n", sx_gguf_path(g), sx_gguf_version(g), (long long)n_kv, (long long)n_t,
            sx_gguf_alignment(g), (unsigned long long)sx_gguf_data_offset(g), sx_gguf_file_size(g));
    fprintf(f, "metadata:\n");
    int kw = 8;
    for (int64_t i = 0; i < n_kv; i++) {
        int l = (int)strlen(sx_gguf_key_at(g, i));
        if (l > kw) kw = l < 48 ? l : 48;
    }
    for (int64_t i = 0; i < n_kv; i++) {
        const char *key = sx_gguf_key_at(g, i);
        int type = sx_gguf_kv_type(g, key), et;
        uint64_t n;
        char ty[32];
        if (type == SX_GGUF_ARRAY && sx_meta_arr(g, key, &et, &n) == 0)
            snprintf(ty, sizeof ty, "%s[%llu]", sx_gguf_kv_type_name(et), (unsigned long long)n);
        else
            snprintf(ty, sizeof ty, "%s", sx_gguf_kv_type_name(type));
        char *val = sx_gguf_kv_text(g, i, all);
        if (!val) return -1;
        fprintf(f, "  %5lld  ", (long long)i);
        print_name(f, key);
        fprintf(f, "%*s  %-10s %s\n", kw - (int)strlen(key) > 0 ? kw - (int)strlen(key) : 0, "", ty,
                val);
        free(val);
    }
    fprintf(f, "tensors:\n  %5s  %-5s  %-24s %14s %14s  %s\n", "#", "type", "shape", "bytes",
            "offset", "name");
    uint64_t total = 0;
    int64_t params = 0;
    for (int64_t i = 0; i < n_t; i++) {
        const sx_tensor *t = sx_gguf_tensor_at(g, i);
        char shape[128];
        size_t o = (size_t)snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->ndim; d++)
            o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%lld", d ? "," : "",
                                  (long long)t->shape[d]);
        snprintf(shape + o, sizeof shape - o, "]");
        fprintf(f, "  %5lld  %-5s  %-24s %14zu %14llu  ", (long long)i, sx_type_name(t->type),
                shape, t->nbytes, (unsigned long long)t->offset);
        print_name(f, t->name);
        fputc('\n', f);
        total += t->nbytes;
        params += t->nelem;
    }
    fprintf(f, "total: %lld tensors, %lld elements, %llu bytes, %.2f bits per weight\n",
            (long long)n_t, (long long)params, (unsigned long long)total,
            params ? 8.0 * (double)total / (double)params : 0.0);
    /* per type: tensors, elements, bytes and its bits per weight */
    for (int k = 0; sx_wtype_at(k); k++) {
        const sx_wtype *w = sx_wtype_at(k);
        int64_t nt = 0, ne = 0;
        uint64_t nbytes = 0;
        for (int64_t i = 0; i < n_t; i++) {
            const sx_tensor *t = sx_gguf_tensor_at(g, i);
            if (t->type != w->type) continue;
            nt++, ne += t->nelem, nbytes += t->nbytes;
        }
        if (nt)
            fprintf(f, "  %-5s %6lld tensors %14lld elements %14llu bytes (%.2f bits per weight)\n",
                    w->name, (long long)nt, (long long)ne, (unsigned long long)nbytes, sx_type_bpw(w->type));
    }
    return ferror(f) ? sx_err("%s: write error while printing", sx_gguf_path(g)) : 0;
}

static int inspect_usage(FILE *f) {
    fprintf(f, "usage: seedx inspect [--all] FILE.gguf|DIR ...\n"
               "Prints a GGUF file's metadata (key, type, value) and its tensor table (index,\n"
               "type, shape in PyTorch order, bytes, offset, name). A directory lists every\n"
               "*.gguf in it, sorted by name. Arrays and long strings are shortened unless\n"
               "--all is given.\n");
    return f == stdout ? 0 : 2;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int inspect_file(const char *path, int all, int *first) {
    sx_gguf *g;
    if (!*first) fputc('\n', stdout);
    *first = 0;
    if (sx_gguf_open(path, &g) != 0) {
        fflush(stdout);
        fprintf(stderr, "seedx inspect: %s\n", sx_errmsg());
        return 1;
    }
    int rc = print_gguf(g, stdout, all);
    if (rc) fprintf(stderr, "seedx inspect: %s\n", sx_errmsg());
    sx_gguf_close(g);
    return rc ? 1 : 0;
}

static int inspect_dir(const char *dir, int all, int *first) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "seedx inspect: %s: cannot open directory: %s\n", dir, strerror(errno));
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".gguf")) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) { rc = 1; break; }
            names = nn;
        }
        size_t dl = strlen(dir);
        char *p = malloc(dl + l + 2);
        if (!p) { rc = 1; break; }
        snprintf(p, dl + l + 2, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", e->d_name);
        names[n++] = p;
    }
    closedir(d);
    if (rc) fprintf(stderr, "seedx inspect: out of memory listing %s\n", dir);
    if (n == 0 && !rc) {
        fprintf(stderr, "seedx inspect: %s: no *.gguf files\n", dir);
        rc = 1;
    }
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        rc |= inspect_file(names[i], all, first);
        free(names[i]);
    }
    free(names);
    return rc;
}

int sx_cmd_inspect(int argc, char **argv) {
    int all = 0, npaths = 0, rc = 0, first = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return inspect_usage(stdout);
        if (!strcmp(argv[i], "--all")) all = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "seedx inspect: unknown option '%s'\n", argv[i]);
            return inspect_usage(stderr);
        } else
            npaths++;
    }
    if (!npaths) return inspect_usage(stderr);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--all")) continue;
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) rc |= inspect_dir(argv[i], all, &first);
        else rc |= inspect_file(argv[i], all, &first);
    }
    return rc;
}

/* ======================================================================
 * seedx image info|convert|tiles
 * ====================================================================== */
static void image_usage(FILE *f) {
    fprintf(f, "usage:\n"
               "  seedx image info FILE                      format, size, Pillow mode\n"
               "  seedx image convert IN OUT [--resize WxH] [--filter bicubic|bilinear] [--exif-rotate]\n"
               "                                             OUT: .png, .ppm or .pgm\n"
               "  seedx image tiles IN --out DIR [--grids 1x1,2x1,...] [--keep-ratio] [--exif-rotate]\n"
               "                                             SEED-X any-res tiles as PNGs + positions.txt\n");
}

int sx_cmd_image(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        image_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "info")) {
        if (argc != 3) {
            image_usage(stderr);
            return 2;
        }
        uint8_t *b;
        size_t n;
        sx_native_image nat;
        const char *fmt;
        if (sx_read_file(argv[2], &b, &n) || sx_image_decode_native(b, n, argv[2], &nat, &fmt)) {
            fprintf(stderr, "seedx image: %s\n", sx_errmsg());
            free(b);
            return 1;
        }
        int o = sx_exif_orientation(b, n);
        free(b);
        printf("%s: %s %dx%d mode %s", argv[2], fmt, nat.w, nat.h, sx_mode_name(nat.mode));
        if (o != 1) printf(" exif-orientation %d (not applied unless --exif-rotate)", o);
        printf("\n");
        sx_native_free(&nat);
        return 0;
    }
    if (!strcmp(sub, "convert")) {
        const char *in = NULL, *outp = NULL;
        int rw = 0, rh = 0, filter = SX_RESIZE_BICUBIC, exif = 0;
        for (int i = 2; i < argc; i++) {
            if (!strcmp(argv[i], "--exif-rotate")) {
                exif = 1;
            } else if (!strcmp(argv[i], "--resize") && i + 1 < argc) {
                if (sscanf(argv[++i], "%dx%d", &rw, &rh) != 2 || rw <= 0 || rh <= 0) {
                    fprintf(stderr, "seedx image: --resize wants WxH, got '%s'\n", argv[i]);
                    return 2;
                }
            } else if (!strcmp(argv[i], "--filter") && i + 1 < argc) {
                i++;
                if (!strcmp(argv[i], "bicubic")) filter = SX_RESIZE_BICUBIC;
                else if (!strcmp(argv[i], "bilinear")) filter = SX_RESIZE_BILINEAR;
                else {
                    fprintf(stderr, "seedx image: --filter must be bicubic or bilinear, got '%s'\n", argv[i]);
                    return 2;
                }
            } else if (argv[i][0] == '-' && argv[i][1]) {
                fprintf(stderr, "seedx image: unknown option '%s'\n", argv[i]);
                return 2;
            } else if (!in) {
                in = argv[i];
            } else if (!outp) {
                outp = argv[i];
            } else {
                image_usage(stderr);
                return 2;
            }
        }
        if (!in || !outp) {
            image_usage(stderr);
            return 2;
        }
        sx_image im, r;
        if (sx_image_load_rgb_ex(in, exif, &im)) {
            fprintf(stderr, "seedx image: %s\n", sx_errmsg());
            return 1;
        }
        if (rw) {
            if (sx_image_resize(&im, rw, rh, filter, &r)) {
                fprintf(stderr, "seedx image: %s\n", sx_errmsg());
                sx_image_free(&im);
                return 1;
            }
            sx_image_free(&im);
            im = r;
        }
        int rc = sx_image_save(outp, &im);
        sx_image_free(&im);
        if (rc) {
            fprintf(stderr, "seedx image: %s\n", sx_errmsg());
            return 1;
        }
        return 0;
    }
    if (!strcmp(sub, "tiles")) {
        const char *in = NULL, *dir = NULL, *grids = NULL;
        int exif = 0, keep = 0;
        for (int i = 2; i < argc; i++) {
            if (!strcmp(argv[i], "--out") && i + 1 < argc) dir = argv[++i];
            else if (!strcmp(argv[i], "--exif-rotate")) exif = 1;
            else if (!strcmp(argv[i], "--keep-ratio")) keep = 1;
            else if (!strcmp(argv[i], "--grids") && i + 1 < argc) grids = argv[++i];
            else if (argv[i][0] == '-' && argv[i][1]) {
                fprintf(stderr, "seedx image: unknown option '%s'\n", argv[i]);
                return 2;
            } else if (!in) in = argv[i];
            else {
                image_usage(stderr);
                return 2;
            }
        }
        if (!in || !dir) {
            image_usage(stderr);
            return 2;
        }
        sx_image im;
        sx_anyres a;
        if (sx_image_load_rgb_ex(in, exif, &im) || sx_anyres_preprocess_ex(&im, grids, keep, &a)) {
            fprintf(stderr, "seedx image: %s\n", sx_errmsg());
            return 1;
        }
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "seedx image: cannot create %s: %s\n", dir, strerror(errno));
            sx_image_free(&im);
            sx_anyres_free(&a);
            return 1;
        }
        size_t dl = strlen(dir) + 64;
        char *path = malloc(dl);
        char *txt = malloc(256 + 64 * (size_t)a.n);
        int rc = path && txt ? 0 : 1;
        size_t tl = 0;
        if (!rc)
            tl += (size_t)sprintf(txt, "# %s %dx%d -> grid %dx%d (%dx%d px), %d images (tiles row-major, "
                                       "global thumbnail last)\n# file x y\n", in, im.w, im.h, a.grid_w,
                                  a.grid_h, a.grid_w * SX_ANYRES_BASE, a.grid_h * SX_ANYRES_BASE, a.n);
        for (int t = 0; t < a.n && !rc; t++) {
            const char *base = t == a.n - 1 ? "thumbnail" : "tile";
            snprintf(path, dl, "%s/%s_%02d.png", dir, base, t);
            if (sx_image_save(path, &a.tiles[t])) rc = 1;
            tl += (size_t)sprintf(txt + tl, "%s_%02d.png %.9g %.9g\n", base, t, a.pos[2 * t], a.pos[2 * t + 1]);
        }
        if (!rc) {
            snprintf(path, dl, "%s/positions.txt", dir);
            if (sx_write_file_atomic(path, (const uint8_t *)txt, tl)) rc = 1;
        }
        if (rc) fprintf(stderr, "seedx image: %s\n", sx_errmsg());
        else printf("%s: %dx%d -> grid %dx%d, wrote %d PNGs and positions.txt to %s\n", in, im.w, im.h,
                    a.grid_w, a.grid_h, a.n, dir);
        free(path);
        free(txt);
        sx_image_free(&im);
        sx_anyres_free(&a);
        return rc;
    }
    fprintf(stderr, "seedx image: unknown subcommand '%s'\n", sub);
    image_usage(stderr);
    return 2;
}

/* ======================================================================
 * seedx tokenize -m MODEL [--bos] [--pieces] TEXT | --decode [--skip-special] ID...
 * ====================================================================== */
static void tokenize_usage(FILE *f) {
    fprintf(f,
            "usage: seedx tokenize -m MODEL [--bos] [--pieces] TEXT\n"
            "       seedx tokenize -m MODEL --decode [--skip-special] ID...\n"
            "  Prints the ids of tokenizer.encode(TEXT, add_special_tokens=False) on one line\n"
            "  (--bos prepends bos, --pieces prints the token strings instead), or with --decode\n"
            "  the text of tokenizer.decode(IDS). TEXT '-' reads stdin verbatim.\n"
            "  MODEL: a model directory (holding tokenizer.gguf) or a tokenizer .gguf file.\n");
}

static int read_stdin(char **buf, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    if (!p) return sx_err("out of memory reading stdin");
    for (;;) {
        if (n == cap) {
            char *q = realloc(p, cap * 2);
            if (!q) {
                free(p);
                return sx_err("out of memory reading stdin");
            }
            p = q;
            cap *= 2;
        }
        size_t r = fread(p + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) break;
    }
    if (ferror(stdin)) {
        free(p);
        return sx_err("error reading stdin");
    }
    *buf = p;
    *len = n;
    return 0;
}

int sx_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL;
    int bos = 0, pieces = 0, decode = 0, skip = 0;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(a, "--bos")) bos = 1;
        else if (!strcmp(a, "--pieces")) pieces = 1;
        else if (!strcmp(a, "--decode")) decode = 1;
        else if (!strcmp(a, "--skip-special")) skip = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            tokenize_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (a[0] == '-' && a[1] && !(decode && (a[1] >= '0' && a[1] <= '9'))) {
            fprintf(stderr, "seedx tokenize: unknown option '%s'\n", a);
            tokenize_usage(stderr);
            return 2;
        } else break;
    }
    if (!model) {
        fprintf(stderr, "seedx tokenize: -m MODEL is required\n");
        tokenize_usage(stderr);
        return 2;
    }
    if (!decode && argc - i != 1) {
        fprintf(stderr, "seedx tokenize: expected exactly one TEXT argument (use '-' for stdin)\n");
        return 2;
    }
    sx_tokenizer *tok;
    if (sx_tokenizer_open(model, &tok)) {
        fprintf(stderr, "seedx tokenize: %s\n", sx_errmsg());
        return 1;
    }
    int rc = 1;
    int *ids = NULL;
    size_t n = 0;
    char *buf = NULL;
    if (decode) {
        n = (size_t)(argc - i);
        ids = malloc((n + 1) * sizeof *ids);
        if (!ids) {
            fprintf(stderr, "seedx tokenize: out of memory\n");
            goto out;
        }
        for (size_t k = 0; k < n; k++) {
            const char *s = argv[i + (int)k];
            char *end;
            errno = 0;
            long v = strtol(s, &end, 10);
            if (!*s || *end || errno || v < -2147483647L || v > 2147483647L) {
                fprintf(stderr, "seedx tokenize: '%s' is not a token id\n", s);
                rc = 2;
                goto out;
            }
            ids[k] = (int)v;
        }
        size_t len;
        if (sx_detokenize(tok, ids, n, skip, &buf, &len)) {
            fprintf(stderr, "seedx tokenize: %s\n", sx_errmsg());
            goto out;
        }
        fwrite(buf, 1, len, stdout);
        fputc('\n', stdout);
        rc = 0;
    } else {
        const char *text = argv[i];
        size_t len = strlen(text);
        if (!strcmp(text, "-")) {
            if (read_stdin(&buf, &len)) {
                fprintf(stderr, "seedx tokenize: %s\n", sx_errmsg());
                goto out;
            }
            text = buf;
        }
        if (sx_tokenize(tok, text, len, bos, &ids, &n)) {
            fprintf(stderr, "seedx tokenize: %s\n", sx_errmsg());
            goto out;
        }
        for (size_t k = 0; k < n; k++) {
            if (k) fputc(' ', stdout);
            if (pieces) {
                size_t pl;
                const char *p = sx_token_str(tok, ids[k], &pl);
                fwrite(p, 1, pl, stdout);
            } else {
                printf("%d", ids[k]);
            }
        }
        fputc('\n', stdout);
        rc = 0;
    }
out:
    free(ids);
    free(buf);
    sx_tokenizer_free(tok);
    if (fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "seedx tokenize: write error\n");
        rc = 1;
    }
    return rc;
}

/* ======================================================================
 * seedx vit -m VIT.gguf [--image F | --zero | --random SEED] [--size S]
 *                [--filter bilinear|bicubic] [--tiles N] [-o OUT.npy]
 * Encodes an image as SEED-X's processor prepares it (configs/processer/
 * qwen_448_transform.yaml: Pillow bilinear resize to S x S, /255, CLIP mean/std;
 * --filter bicubic = qwen_visual.py's own image_transform) and prints stats.
 * ====================================================================== */

static int vit_usage(FILE *f) {
    fprintf(f, "usage: seedx vit -m VIT.gguf [--image FILE | --zero | --random SEED] [--size S]\n"
               "                 [--filter bilinear|bicubic] [--tiles N] [-o OUT.npy]\n"
               "Runs the Qwen-VL visual encoder on one image, on an all-zero input or on uniform\n"
               "random pixels in [-2,2], and prints statistics of the [N, n_queries, output_dim]\n"
               "features; -o saves them as float32 .npy. The image is resized to S x S with\n"
               "Pillow's filter (default bilinear as SEED-X's qwen_448_transform; bicubic as\n"
               "qwen_visual.py's image_transform), scaled to [0,1] and CLIP-normalised.\n"
               "S defaults to the model's image_size; --tiles repeats the input N times.\n");
    return 2;
}

int sx_cmd_vit(int argc, char **argv) {
    const char *model = NULL, *image = NULL, *outp = NULL;
    int zero = 0, filter = SX_RESIZE_BILINEAR;
    long long seed = -1, size = 0, tiles = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            vit_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--zero")) zero = 1;
        else if (!next) {
            fprintf(stderr, "seedx vit: unknown option or missing value: '%s'\n", a);
            return vit_usage(stderr);
        } else if (!strcmp(a, "-m")) model = argv[++i];
        else if (!strcmp(a, "--image")) image = argv[++i];
        else if (!strcmp(a, "-o")) outp = argv[++i];
        else if (!strcmp(a, "--filter")) {
            i++;
            if (!strcmp(argv[i], "bilinear")) filter = SX_RESIZE_BILINEAR;
            else if (!strcmp(argv[i], "bicubic")) filter = SX_RESIZE_BICUBIC;
            else {
                fprintf(stderr, "seedx vit: --filter must be bilinear or bicubic, got '%s'\n", argv[i]);
                return 2;
            }
        }
        else if (!strcmp(a, "--random") || !strcmp(a, "--size") || !strcmp(a, "--tiles")) {
            char *end;
            long long v = strtoll(argv[++i], &end, 10);
            if (*end || v < 0 || (strcmp(a, "--random") && (v <= 0 || v > 65536))) {
                fprintf(stderr, "seedx vit: bad value '%s' for %s\n", argv[i], a);
                return 2;
            }
            if (!strcmp(a, "--random")) seed = v;
            else if (!strcmp(a, "--size")) size = v;
            else tiles = v;
        } else {
            fprintf(stderr, "seedx vit: unknown option '%s'\n", a);
            return vit_usage(stderr);
        }
    }
    if (!model || (!!image + zero + (seed >= 0)) != 1) return vit_usage(stderr);
    sx_vit *v = NULL;
    float *px = NULL, *out = NULL;
    sx_image im = {0}, rs = {0};
    int rc = 1;
    double t0 = sx_time();
    if (sx_vit_open(model, &v)) goto done;
    double t_load = sx_time() - t0;
    int64_t S = size ? size : v->c.image_size, N = tiles, Q = v->c.n_queries, E = v->c.output_dim;
    int64_t plane = S * S;
    px = sx_calloc((size_t)(N * 3 * plane), sizeof(float), "pixels");
    out = sx_malloc(sizeof(float) * (size_t)(N * Q * E), "features");
    if (!px || !out) goto done;
    if (image) {
        if (sx_image_load_rgb(image, &im) || sx_image_resize(&im, (int)S, (int)S, filter, &rs))
            goto done;
        for (int64_t p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++)
                px[c * plane + p] = ((float)rs.data[p * 3 + c] / 255.0f - v->c.image_mean[c]) / v->c.image_std[c];
    } else if (seed >= 0) {
        sx_rand_uniform(px, 3 * plane, (uint64_t)seed, -2.0f, 2.0f);
    }
    for (int64_t n = 1; n < N; n++) memcpy(px + n * 3 * plane, px, sizeof(float) * (size_t)(3 * plane));
    t0 = sx_time();
    if (sx_vit_forward(v, px, N, S, out)) goto done;
    double t_fwd = sx_time() - t0;
    double sum = 0, sq = 0, mn = INFINITY, mx = -INFINITY;
    int64_t cnt = N * Q * E;
    for (int64_t i = 0; i < cnt; i++) {
        sum += out[i];
        sq += (double)out[i] * out[i];
        if (out[i] < mn) mn = out[i];
        if (out[i] > mx) mx = out[i];
    }
    double mean = sum / (double)cnt;
    printf("model: %s (width %lld, %lld layers, %lld heads -> %lld x %lld), load %.2fs\n", model,
           (long long)v->c.width, (long long)v->c.layers, (long long)v->c.heads, (long long)Q,
           (long long)E, t_load);
    printf("input: %s, [%lld,3,%lld,%lld], grid %lldx%lld\n",
           image ? image : zero ? "zeros" : "random", (long long)N, (long long)S, (long long)S,
           (long long)(S / v->c.patch_size), (long long)(S / v->c.patch_size));
    printf("features [%lld,%lld,%lld]: mean %.6g std %.6g min %.6g max %.6g (%.2fs, %s, %d threads)\n",
           (long long)N, (long long)Q, (long long)E, mean, sqrt(fmax(sq / (double)cnt - mean * mean, 0)),
           mn, mx, t_fwd, sx_simd_name(sx_simd_level()), sx_threads_count());
    printf("token 0: %.6g %.6g %.6g %.6g ...\n", out[0], out[1 % E], out[2 % E], out[3 % E]);
    if (outp) {
        if (sx_npy_write(outp, out, 3, (int64_t[]){N, Q, E})) goto done;
        printf("wrote %s\n", outp);
    }
    rc = 0;
done:
    if (rc) fprintf(stderr, "seedx vit: %s\n", sx_errmsg());
    sx_image_free(&im);
    sx_image_free(&rs);
    free(px);
    free(out);
    sx_vit_free(v);
    return rc;
}

/* ======================================================================
 * seedx lm -m MODEL -p TEXT [-n N] [--temp T --top-p P --top-k K --seed S]
 * ====================================================================== */

static int lm_usage(FILE *f) {
    fprintf(f, "usage: seedx lm -m MODEL -p TEXT [options]\n"
               "  plain text completion with a Llama checkpoint, streamed to stdout.\n"
               "  -m MODEL          directory with llm.gguf + tokenizer.gguf, or an LLM .gguf\n"
               "  --tokenizer FILE  tokenizer .gguf (default: tokenizer.gguf next to the model)\n"
               "  -p TEXT           prompt (bos is prepended)\n"
               "  -n N              max new tokens (default 128)\n"
               "  --temp T          temperature (default 0 = greedy)\n"
               "  --top-k K         top-k filter (default off)\n"
               "  --top-p P         nucleus filter (default off)\n"
               "  --repeat-penalty R  repetition penalty (default 1 = off)\n"
               "  --seed S          sampling seed (default 0)\n"
               "  --ctx N           context length (default: max_position_embeddings)\n"
               "  --kv-f16          keep the KV cache in F16\n"
               "  --dtype T         matrices in f32|f16|bf16, or quantized q8_0|q4_0|q4_k (README),\n"
               "                    converted at load (default: as stored)\n");
    return f == stdout ? 0 : 2;
}

typedef struct {
    const sx_tokenizer *tok;
    int *ids;
    size_t n, n_prompt;
    size_t printed; /* bytes of the decoded continuation already written */
    size_t prompt_len;
    double t_first;
    int32_t eos;
} lm_stream;

static int lm_on_token(void *u, int32_t id) {
    lm_stream *s = u;
    if (s->n == s->n_prompt) s->t_first = sx_time();
    s->ids[s->n++] = id;
    char *txt = NULL;
    size_t len = 0;
    if (sx_detokenize(s->tok, s->ids, s->n, 1, &txt, &len) != 0) return 0;
    /* hold back an incomplete UTF-8 sequence (decoded as U+FFFD at the end) */
    size_t end = len;
    while (end >= 3 && (unsigned char)txt[end - 3] == 0xEF && (unsigned char)txt[end - 2] == 0xBF &&
           (unsigned char)txt[end - 1] == 0xBD)
        end -= 3;
    size_t from = s->prompt_len + s->printed;
    if (end > from) {
        fwrite(txt + from, 1, end - from, stdout);
        fflush(stdout);
        s->printed = end - s->prompt_len;
    }
    free(txt);
    return 0;
}

int sx_cmd_lm(int argc, char **argv) {
    const char *model = NULL, *tokp = NULL, *prompt = NULL;
    sx_llama_gen opt;
    sx_llama_gen_defaults(NULL, &opt);
    int64_t n_ctx = 0;
    int kv16 = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *e = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return lm_usage(stdout);
        if (!strcmp(a, "--kv-f16")) {
            kv16 = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "seedx lm: option '%s' needs a value\n", a);
            return lm_usage(stderr);
        }
        i++;
        if (!strcmp(a, "-m"))
            model = v;
        else if (!strcmp(a, "--tokenizer"))
            tokp = v;
        else if (!strcmp(a, "-p"))
            prompt = v;
        else if (!strcmp(a, "-n"))
            opt.max_new_tokens = strtoll(v, &e, 10);
        else if (!strcmp(a, "--temp"))
            opt.temperature = strtof(v, &e);
        else if (!strcmp(a, "--top-k"))
            opt.top_k = (int)strtol(v, &e, 10);
        else if (!strcmp(a, "--top-p"))
            opt.top_p = strtof(v, &e);
        else if (!strcmp(a, "--repeat-penalty"))
            opt.repetition_penalty = strtof(v, &e);
        else if (!strcmp(a, "--seed"))
            opt.seed = strtoull(v, &e, 10);
        else if (!strcmp(a, "--ctx"))
            n_ctx = strtoll(v, &e, 10);
        else if (!strcmp(a, "--dtype")) {
            int t = sx_type_from_name(v);
            if (t < 0 || sx_set_weight_dtype(t) != 0) {
                fprintf(stderr, "seedx lm: --dtype wants f32, f16, bf16, q8_0, q4_0 or q4_k, got '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "seedx lm: unknown option '%s'\n", a);
            return lm_usage(stderr);
        }
        if (e && (*e || e == v)) {
            fprintf(stderr, "seedx lm: bad value '%s' for %s\n", v, a);
            return 2;
        }
    }
    if (!model || !prompt) return lm_usage(stderr);
    if (opt.max_new_tokens < 1 || n_ctx < 0) {
        fprintf(stderr, "seedx lm: -n must be >= 1 and --ctx >= 0\n");
        return 2;
    }
    char llm_path[4096], tok_path[4096];
    struct stat st;
    if (stat(model, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(llm_path, sizeof llm_path, "%s/llm.gguf", model);
        snprintf(tok_path, sizeof tok_path, "%s/tokenizer.gguf", model);
    } else {
        snprintf(llm_path, sizeof llm_path, "%s", model);
        const char *sl = strrchr(model, '/');
        int dl = sl ? (int)(sl - model) : 1;
        snprintf(tok_path, sizeof tok_path, "%.*s/tokenizer.gguf", dl, sl ? model : ".");
    }
    if (tokp) snprintf(tok_path, sizeof tok_path, "%s", tokp);

    int rc = 1;
    sx_llama *m = NULL;
    sx_tokenizer *tok = NULL;
    sx_llama_ctx *c = NULL;
    int *pids = NULL;
    int32_t *ids32 = NULL, *out = NULL;
    float *emb = NULL;
    lm_stream s;
    memset(&s, 0, sizeof s);
    double t0 = sx_time();
    if (sx_llama_load(llm_path, &m) != 0 || sx_tokenizer_open(tok_path, &tok) != 0) goto done;
    if (sx_tokenizer_n_vocab(tok) > m->cfg.vocab) {
        sx_err("%s has %d tokens but the model's vocabulary is %lld", tok_path,
               sx_tokenizer_n_vocab(tok), (long long)m->cfg.vocab);
        goto done;
    }
    size_t np;
    if (sx_tokenize(tok, prompt, strlen(prompt), 1, &pids, &np) != 0) goto done;
    if (np == 0) {
        sx_err("the prompt has no tokens");
        goto done;
    }
    int64_t N = opt.max_new_tokens;
    if (n_ctx == 0 && (int64_t)np + N > m->cfg.max_pos) n_ctx = (int64_t)np + N;
    opt.eos_id = (int32_t)m->cfg.eos_id;
    if (sx_llama_ctx_new(m, n_ctx, kv16 ? SX_F16 : SX_F32, &c) != 0) goto done;
    ids32 = sx_malloc(sizeof(int32_t) * np, "prompt ids");
    out = sx_malloc(sizeof(int32_t) * (size_t)N, "generated ids");
    emb = sx_malloc(sizeof(float) * np * (size_t)m->cfg.hidden, "prompt embeddings");
    s.ids = sx_malloc(sizeof(int) * (np + (size_t)N), "ids");
    if (!ids32 || !out || !emb || !s.ids) goto done;
    for (size_t i = 0; i < np; i++) ids32[i] = s.ids[i] = pids[i];
    s.tok = tok;
    s.n = s.n_prompt = np;
    char *ptxt = NULL;
    if (sx_detokenize(tok, s.ids, np, 1, &ptxt, &s.prompt_len) != 0) goto done;
    fputs(ptxt, stdout);
    fflush(stdout);
    free(ptxt);
    if (sx_llama_embed(m, ids32, (int64_t)np, emb) != 0) goto done;
    opt.on_token = lm_on_token;
    opt.on_token_user = &s;
    double t1 = sx_time();
    int64_t n_out = 0;
    if (sx_llama_generate(c, emb, ids32, (int64_t)np, &opt, out, &n_out, NULL) != 0) goto done;
    double t2 = sx_time();
    printf("\n");
    double tp = s.t_first - t1, td = t2 - s.t_first;
    fprintf(stderr,
            "load %.2f s | prefill %zu tokens in %.2f s (%.1f tok/s) | decode %lld tokens in "
            "%.2f s (%.2f tok/s)\n",
            t1 - t0, np, tp, np / (tp > 0 ? tp : 1e-9), (long long)(n_out - 1), td,
            n_out > 1 ? (n_out - 1) / (td > 0 ? td : 1e-9) : 0.0);
    rc = 0;
done:
    if (rc) fprintf(stderr, "seedx lm: %s\n", sx_errmsg());
    free(pids), free(ids32), free(out), free(emb), free(s.ids);
    sx_llama_ctx_free(c);
    sx_tokenizer_free(tok);
    sx_llama_free(m);
    return rc;
}

/* ======================================================================
 * seedx unet forward | randn | sample
 * ====================================================================== */

static int unet_usage(FILE *f) {
    fprintf(f,
            "usage: seedx unet forward -m UNET.gguf [-m BASE.gguf] --sample X.npy --ctx CTX.npy [--pooled P.npy]\n"
            "                          [--t 500] [--time-ids 1024,1024,0,0,1024,1024] -o EPS.npy\n"
            "                          [--trace DIR]\n"
            "       seedx unet randn   --shape 1,4,128,128 [--seed 0] [--rng torch-cuda|torch-cpu]\n"
            "                          [--cuda-threads N] -o NOISE.npy\n"
            "       seedx unet sample  -m UNET.gguf --ctx CTX.npy --pooled P.npy [--neg-ctx C.npy\n"
            "                          --neg-pooled P.npy] [--steps 50] [--cfg 7.5] [--size 1024]\n"
            "                          [--seed 0] [--rng torch-cuda|torch-cpu] [--noise N.npy]\n"
            "                          [--image-latent L.npy] [--igs 1.5] [--sampler euler|dpmpp2m]\n"
            "                          [--karras] -o LATENTS.npy\n"
            "  -m may be repeated: an overlay (convert_unet.py --overlay) first, then its base.\n"
            "  forward: one UNet evaluation (sample [C,h,w] or [1,C,h,w], context [T,D] or [1,T,D]).\n"
            "  randn:   torch.randn-compatible noise (torch-cuda: Philox port, see sampler.h;\n"
            "           torch-cpu: bit-exact CPU generator).\n"
            "  sample:  Euler (or DPM-Solver++(2M), --karras: Karras sigmas) + classifier-free\n"
            "           guidance from initial noise (drawn, or --noise);\n"
            "           an 8-channel UNet runs the SEED-X edit loop (3-way guidance). Negative\n"
            "           embeddings default to zeros. Prints a progress bar with ETA.\n");
    return f == stdout ? 0 : 1;
}

static int parse_ints(const char *s, int64_t *v, int max) {
    int n = 0;
    while (s && *s && n < max) {
        char *e;
        errno = 0;
        long long x = strtoll(s, &e, 10);
        if (e == s || errno) return -1;
        v[n++] = x;
        s = *e == ',' ? e + 1 : e;
        if (*e && *e != ',') return -1;
    }
    return n;
}

int sx_cmd_unet(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
        return unet_usage(argc < 2 ? stderr : stdout);
    if (strcmp(argv[1], "forward") && strcmp(argv[1], "randn") && strcmp(argv[1], "sample")) {
        fprintf(stderr, "seedx unet: unknown subcommand '%s'\n", argv[1]);
        return unet_usage(stderr);
    }
    const char *models[SX_UNET_MAX_FILES];
    int n_models = 0;
    const char *sub = argv[1], *out = NULL, *sample_p = NULL, *ctx_p = NULL;
    const char *pooled_p = NULL, *nctx_p = NULL, *npooled_p = NULL, *noise_p = NULL, *img_p = NULL;
    const char *tids_s = "1024,1024,0,0,1024,1024", *shape_s = NULL, *rng_s = "torch-cuda", *trace = NULL;
    const char *sampler_s = "euler";
    int karras = SX_KARRAS_CONFIG, sampler;
    double t = 500, cfg = 7.5, igs = 1.5;
    long long seed = 0, steps = 50, size = 1024, cuda_threads = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (!strcmp(a, name) && v && (i++, 1))
        if (OPT("-m")) {
            if (n_models == SX_UNET_MAX_FILES) {
                fprintf(stderr, "seedx unet: at most %d -m files\n", SX_UNET_MAX_FILES);
                return 1;
            }
            models[n_models++] = v;
        }
        else if (OPT("-o")) out = v;
        else if (OPT("--sample")) sample_p = v;
        else if (OPT("--ctx")) ctx_p = v;
        else if (OPT("--pooled")) pooled_p = v;
        else if (OPT("--neg-ctx")) nctx_p = v;
        else if (OPT("--neg-pooled")) npooled_p = v;
        else if (OPT("--noise")) noise_p = v;
        else if (OPT("--image-latent")) img_p = v;
        else if (OPT("--time-ids")) tids_s = v;
        else if (OPT("--shape")) shape_s = v;
        else if (OPT("--rng")) rng_s = v;
        else if (OPT("--trace")) trace = v;
        else if (OPT("--t")) t = atof(v);
        else if (OPT("--cfg")) cfg = atof(v);
        else if (OPT("--igs")) igs = atof(v);
        else if (OPT("--seed")) seed = strtoll(v, NULL, 0);
        else if (OPT("--steps")) steps = atoll(v);
        else if (OPT("--size")) size = atoll(v);
        else if (OPT("--cuda-threads")) cuda_threads = atoll(v);
        else if (OPT("--sampler")) sampler_s = v;
        else if (!strcmp(a, "--karras")) karras = SX_KARRAS_ON;
        else {
            fprintf(stderr, "seedx unet: unknown or incomplete option '%s'\n", a);
            return unet_usage(stderr);
        }
#undef OPT
    }
    if (!out) {
        fprintf(stderr, "seedx unet: -o is required\n");
        return unet_usage(stderr);
    }
    if (trace) sx_trace_set_dir(trace);
    int rc = 1, kind;
    sx_unet *u = NULL;
    float *x = NULL, *ctx = NULL, *pooled = NULL, *nctx = NULL, *npooled = NULL, *eps = NULL, *img = NULL;
    sx_sched sch;
    memset(&sch, 0, sizeof sch);
    int nd;
    int64_t sh[4], cnt, tid_v[6];
    float tids[6];
    if (parse_ints(tids_s, tid_v, 6) != 6) {
        fprintf(stderr, "seedx unet: --time-ids needs 6 integers\n");
        return 1;
    }
    for (int k = 0; k < 6; k++) tids[k] = (float)tid_v[k];
    if (sx_rng_parse(rng_s, &kind) || sx_sampler_parse(sampler_s, &sampler)) goto fail;

    if (!strcmp(sub, "randn")) {
        int64_t dims[4];
        int n = parse_ints(shape_s, dims, 4);
        if (n < 1) {
            fprintf(stderr, "seedx unet randn: --shape like 1,4,128,128 is required\n");
            return 1;
        }
        int64_t total = 1;
        for (int k = 0; k < n; k++) {
            if (dims[k] <= 0 || dims[k] > (1 << 20)) {
                fprintf(stderr, "seedx unet randn: bad --shape\n");
                return 1;
            }
            total *= dims[k];
        }
        if (total > ((int64_t)1 << 31)) {
            fprintf(stderr, "seedx unet randn: shape too large\n");
            return 1;
        }
        x = sx_malloc(sizeof(float) * (size_t)total, "noise");
        if (!x) goto fail;
        if ((kind == SX_RNG_TORCH_CUDA ? sx_randn_torch_cuda(x, total, (uint64_t)seed, cuda_threads)
                                       : sx_randn_torch_cpu(x, total, (uint64_t)seed)) ||
            sx_npy_write(out, x, n, dims))
            goto fail;
        rc = 0;
        goto done;
    }
    if (!n_models || !ctx_p) {
        fprintf(stderr, "seedx unet %s: -m and --ctx are required\n", sub);
        return unet_usage(stderr);
    }
    if (sx_unet_load_files(models, n_models, &u)) goto fail;
    const sx_unet_config *c = sx_unet_get_config(u);
    int64_t T, D;
    if (sx_npy_read(ctx_p, &ctx, &nd, sh, &cnt)) goto fail;
    if (nd < 2 || nd > 3 || (nd == 3 && sh[0] != 1)) {
        sx_err("%s: context must be [T, D] or [1, T, D]", ctx_p);
        goto fail;
    }
    T = sh[nd - 2];
    D = sh[nd - 1];
    int64_t P = c->pooled_dim;
    if (c->text_time) {
        if (!pooled_p) {
            sx_err("this UNet needs --pooled (%lld values)", (long long)P);
            goto fail;
        }
        if (sx_npy_read(pooled_p, &pooled, &nd, sh, &cnt)) goto fail;
        P = cnt;
    }
    if (!strcmp(sub, "forward")) {
        if (!sample_p) {
            fprintf(stderr, "seedx unet forward: --sample is required\n");
            goto done;
        }
        if (sx_npy_read(sample_p, &x, &nd, sh, &cnt)) goto fail;
        if (nd == 4 && sh[0] == 1) {
            memmove(sh, sh + 1, 3 * sizeof *sh);
            nd = 3;
        }
        if (nd != 3) {
            sx_err("%s: sample must be [C, h, w] or [1, C, h, w]", sample_p);
            goto fail;
        }
        eps = sx_malloc(sizeof(float) * (size_t)(c->out_channels * sh[1] * sh[2]), "eps");
        if (!eps) goto fail;
        double t0 = sx_time();
        if (sx_unet_forward(u, x, sh[0], sh[1], sh[2], (float)t, ctx, T, D, pooled, P, tids, eps)) goto fail;
        fprintf(stderr, "unet forward %lldx%lld at t=%g: %.2fs\n", (long long)sh[1], (long long)sh[2], t,
                sx_time() - t0);
        int64_t os[4] = {1, c->out_channels, sh[1], sh[2]};
        if (sx_npy_write(out, eps, 4, os)) goto fail;
        rc = 0;
    } else if (!strcmp(sub, "sample")) {
        int64_t h, w;
        if (size > 8192) {
            sx_err("--size %lld: at most 8192 pixels", size);
            goto fail;
        }
        if (sx_latent_size(size, size, 8, &h, &w)) goto fail;
        int64_t n = 4 * h * w;
        nctx = sx_calloc((size_t)(T * D), sizeof(float), "negative context");
        npooled = sx_calloc((size_t)(P > 0 ? P : 1), sizeof(float), "negative pooled");
        x = sx_malloc(sizeof(float) * (size_t)n, "latents");
        if (!nctx || !npooled || !x) goto fail;
        if (nctx_p) {
            float *tmp;
            if (sx_npy_read(nctx_p, &tmp, &nd, sh, &cnt)) goto fail;
            if (cnt != T * D) {
                free(tmp);
                sx_err("%s: negative context has %lld values, expected %lld", nctx_p, (long long)cnt,
                       (long long)(T * D));
                goto fail;
            }
            memcpy(nctx, tmp, sizeof(float) * (size_t)cnt);
            free(tmp);
        }
        if (npooled_p) {
            float *tmp;
            if (sx_npy_read(npooled_p, &tmp, &nd, sh, &cnt)) goto fail;
            if (cnt != P) {
                free(tmp);
                sx_err("%s: negative pooled has %lld values, expected %lld", npooled_p, (long long)cnt,
                       (long long)P);
                goto fail;
            }
            memcpy(npooled, tmp, sizeof(float) * (size_t)cnt);
            free(tmp);
        }
        if (noise_p) {
            float *tmp;
            if (sx_npy_read(noise_p, &tmp, &nd, sh, &cnt)) goto fail;
            if (cnt != n) {
                free(tmp);
                sx_err("%s: noise has %lld values, a %lldx%lld latent needs %lld", noise_p, (long long)cnt,
                       (long long)h, (long long)w, (long long)n);
                goto fail;
            }
            memcpy(x, tmp, sizeof(float) * (size_t)n);
            free(tmp);
        } else {
            if (sx_randn(x, n, (uint64_t)seed, kind)) goto fail;
            /* the official GPU pipeline draws the latent noise in fp16 */
            if (kind == SX_RNG_TORCH_CUDA)
                for (int64_t k = 0; k < n; k++) x[k] = sx_f16_to_f32(sx_f32_to_f16(x[k]));
        }
        if (img_p) {
            if (sx_npy_read(img_p, &img, &nd, sh, &cnt)) goto fail;
            if (cnt != n) {
                sx_err("%s: image latent has %lld values, expected %lld", img_p, (long long)cnt, (long long)n);
                goto fail;
            }
        }
        int st = steps > INT_MAX ? INT_MAX : steps < INT_MIN ? INT_MIN : (int)steps;
        if (sx_sched_init(&sch, sx_unet_gguf(u), st, sampler, karras)) goto fail;
        sx_cond cp = {ctx, T, pooled, {0}}, cn = {nctx, T, npooled, {0}};
        memcpy(cp.time_ids, tids, sizeof tids);
        memcpy(cn.time_ids, tids, sizeof tids);
        cli_progress_bar pb = {sx_time(), "unet"};
        int r = c->in_channels == 8
                    ? sx_sample_edit(u, &sch, x, h, w, &cp, &cn, img, (float)cfg, (float)igs, cli_progress,
                                     &pb, NULL)
                    : sx_sample_cfg(u, &sch, x, h, w, &cp, &cn, (float)cfg, cli_progress, &pb, NULL);
        if (r) goto fail;
        int64_t os[4] = {1, 4, h, w};
        if (sx_npy_write(out, x, 4, os)) goto fail;
        rc = 0;
    } else {
        fprintf(stderr, "seedx unet: unknown subcommand '%s'\n", sub);
        unet_usage(stderr);
    }
    goto done;
fail:
    fprintf(stderr, "seedx unet: %s\n", sx_errmsg());
done:
    sx_sched_free(&sch);
    sx_unet_free(u);
    free(x);
    free(ctx);
    free(pooled);
    free(nctx);
    free(npooled);
    free(eps);
    free(img);
    return rc;
}

/* ======================================================================
 * seedx vae decode|encode|roundtrip
 * ====================================================================== */

/* n floats (at least one), with an error naming `what` on failure */
static float *alloc_floats(int64_t n, const char *what) {
    if (n <= 0) n = 1;
    return sx_malloc((size_t)n * sizeof(float), what);
}

static int vae_usage(FILE *f) {
    fprintf(f,
            "usage: seedx vae decode    -m VAE.gguf --latents L.npy -o OUT.png [--raw OUT.npy]\n"
            "       seedx vae encode    -m VAE.gguf --image IN.png -o MEAN.npy [--logvar LV.npy]\n"
            "       seedx vae roundtrip -m VAE.gguf --image IN.png -o OUT.png\n"
            "       common options: [--tiling] [--tile PX]\n"
            "decode: latents [4,h,w] or [1,4,h,w] float32 as the pipeline holds them (scaled;\n"
            "  divided by the config's scaling_factor here) -> 8-bit PNG, as diffusers'\n"
            "  VaeImageProcessor.postprocess; --raw also saves the float image [3,8h,8w].\n"
            "encode: image (width/height multiples of 8; /255*2-1) -> posterior mean [4,h,w]\n"
            "  (latent_dist.mode(), not multiplied by scaling_factor: the SEED-X edit latent).\n"
            "roundtrip: encode, scale the mean by scaling_factor, decode.\n"
            "--tiling uses diffusers' tiled decode/encode (tiles of --tile pixels, default the\n"
            "  config's sample_size; 512 bounds a 1024x1024 decode to well under 1 GB).\n");
    return f == stdout ? 0 : 2;
}

int sx_cmd_vae(int argc, char **argv) {
    if (argc < 2) return vae_usage(stderr);
    const char *mode = argv[1], *model = NULL, *lat_p = NULL, *img_p = NULL, *out_p = NULL,
               *raw_p = NULL, *lv_p = NULL;
    int tiling = 0, tile = 0;
    if (!strcmp(mode, "-h") || !strcmp(mode, "--help")) return vae_usage(stdout);
    if (strcmp(mode, "decode") && strcmp(mode, "encode") && strcmp(mode, "roundtrip")) {
        fprintf(stderr, "seedx vae: unknown mode '%s'\n", mode);
        return vae_usage(stderr);
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return vae_usage(stdout);
        if (!strcmp(a, "--tiling")) {
            tiling = 1;
            continue;
        }
        if (!next) {
            fprintf(stderr, "seedx vae: unknown option or missing value: '%s'\n", a);
            return vae_usage(stderr);
        }
        if (!strcmp(a, "-m")) model = argv[++i];
        else if (!strcmp(a, "--latents")) lat_p = argv[++i];
        else if (!strcmp(a, "--image")) img_p = argv[++i];
        else if (!strcmp(a, "-o")) out_p = argv[++i];
        else if (!strcmp(a, "--raw")) raw_p = argv[++i];
        else if (!strcmp(a, "--logvar")) lv_p = argv[++i];
        else if (!strcmp(a, "--tile")) {
            char *e;
            long v = strtol(argv[++i], &e, 10);
            if (*e || v <= 0 || v > 65536) {
                fprintf(stderr, "seedx vae: bad --tile '%s'\n", argv[i]);
                return 2;
            }
            tile = (int)v;
        } else {
            fprintf(stderr, "seedx vae: unknown option '%s'\n", a);
            return vae_usage(stderr);
        }
    }
    int dec = !strcmp(mode, "decode");
    if (!model || !out_p || (dec ? !lat_p : !img_p)) return vae_usage(stderr);
    sx_vae *v = NULL;
    float *lat = NULL, *img = NULL, *mean = NULL, *lv = NULL;
    sx_image im = {0}, rgb = {0};
    int rc = 1;
    if (sx_vae_load(model, &v) != 0) goto done;
    v->tile_sample_size = tile;
    int64_t f = sx_vae_factor(v), L = v->cfg.latent_channels, h, w;
    double t0 = sx_time();
    if (dec) {
        int nd;
        int64_t s[4];
        if (sx_npy_read(lat_p, &lat, &nd, s, NULL) != 0) goto done;
        if (nd == 4 && s[0] == 1) {
            memmove(s, s + 1, 3 * sizeof s[0]);
            nd = 3;
        }
        if (nd != 3) {
            sx_err("%s: latents must be [C,h,w] or [1,C,h,w], got %d dims", lat_p, nd);
            goto done;
        }
        h = s[1];
        w = s[2];
        if (h <= 0 || w <= 0 || h > 16384 || w > 16384) {
            sx_err("%s: bad latent size %lldx%lld", lat_p, (long long)h, (long long)w);
            goto done;
        }
        img = alloc_floats(3 * h * f * w * f, "vae image");
        if (!img || sx_vae_decode(v, lat, s[0], h, w, tiling, img) != 0) goto done;
    } else {
        if (sx_image_load_rgb(img_p, &im) != 0) goto done;
        int64_t H = im.h, W = im.w;
        float *x = alloc_floats(3 * H * W, "vae input image");
        if (!x) goto done;
        for (int64_t c = 0; c < 3; c++) /* VaeImageProcessor: /255, 2x-1 */
            for (int64_t i = 0; i < H * W; i++) {
                float u = (float)im.data[i * 3 + c] / 255.0f;
                x[c * H * W + i] = 2.0f * u - 1.0f;
            }
        h = H / f;
        w = W / f;
        mean = alloc_floats(L * h * w, "vae mean");
        lv = lv_p ? alloc_floats(L * h * w, "vae logvar") : NULL;
        int e = !mean || (lv_p && !lv) || sx_vae_encode(v, x, 3, H, W, tiling, mean, lv) != 0;
        free(x);
        if (e) goto done;
        int64_t s[3] = {L, h, w};
        if (!strcmp(mode, "encode")) {
            if (sx_npy_write(out_p, mean, 3, s) != 0) goto done;
            if (lv_p && sx_npy_write(lv_p, lv, 3, s) != 0) goto done;
        } else {
            for (int64_t i = 0; i < L * h * w; i++) mean[i] *= v->cfg.scaling_factor;
            img = alloc_floats(3 * h * f * w * f, "vae image");
            if (!img || sx_vae_decode(v, mean, L, h, w, tiling, img) != 0) goto done;
        }
    }
    if (img) {
        int64_t s[3] = {3, h * f, w * f};
        if (raw_p && sx_npy_write(raw_p, img, 3, s) != 0) goto done;
        if (sx_vae_to_rgb8(img, 3, h * f, w * f, &rgb) != 0 || sx_image_save(out_p, &rgb) != 0)
            goto done;
    }
    fprintf(stderr, "seedx vae %s: %lldx%lld latents, %.2fs, peak RSS %.0f MB -> %s\n", mode,
            (long long)w, (long long)h, sx_time() - t0, (double)sx_peak_rss() / (1024.0 * 1024.0),
            out_p);
    rc = 0;
done:
    if (rc) fprintf(stderr, "seedx vae: %s\n", sx_errmsg());
    free(lat);
    free(img);
    free(mean);
    free(lv);
    sx_image_free(&im);
    sx_image_free(&rgb);
    sx_vae_free(v);
    return rc;
}
