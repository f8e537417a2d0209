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
                    w->name, (long long)nt, (long long)ne, (unsigned long long)nbytes,
                    sx_type_bpw(w->type));
    }
    return ferror(f) ? sx_err("%s: write error while printing", sx_gguf_path(g)) : 0;
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
    const char *paths[256];
    const cli_opt opts[] = {
        {"--all", CLI_FLAG, &all, NULL, "arrays and long strings in full", 0, 0, NULL},
    };
    cli_spec s = {"seedx inspect", "seedx inspect [--all] FILE.gguf|DIR ...",
                  "Prints a GGUF file's metadata (key, type, value) and its tensor table (index,\n"
                  "type, shape in PyTorch order, bytes, offset, name). A directory lists every\n"
                  "*.gguf in it, sorted by name. Arrays and long strings are shortened unless\n"
                  "--all is given.",
                  opts, CLI_COUNT(opts), paths, 1, 256, &npaths, 0};
    CLI_PARSE(&s, argc, argv);
    CLI_GO(&s);
    for (int i = 0; i < npaths; i++) {
        struct stat st;
        if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode)) rc |= inspect_dir(paths[i], all, &first);
        else rc |= inspect_file(paths[i], all, &first);
    }
    return rc;
}

/* ======================================================================
 * seedx image info|convert|tiles
 * ====================================================================== */
static int image_usage(FILE *f) {
    fprintf(f, "usage:\n"
               "  seedx image info FILE                      format, size, Pillow mode\n"
               "  seedx image convert IN OUT [--resize WxH] [--filter bicubic|bilinear] [--exif-rotate]\n"
               "                                             OUT: .png, .ppm or .pgm\n"
               "  seedx image tiles IN --out DIR [--grids 1x1,2x1,...] [--keep-ratio] [--exif-rotate]\n"
               "                                             SEED-X any-res tiles as PNGs + positions.txt\n"
               "`seedx image SUBCOMMAND --help` describes one.\n");
    return f == stdout ? 0 : 2;
}

static int image_info(int argc, char **argv) {
    const char *path[1];
    int n = 0;
    cli_spec s = {"seedx image info", "seedx image info FILE",
                  "Prints the format, the size and Pillow's mode of an image file (and its EXIF\n"
                  "orientation when it has one).",
                  NULL, 0, path, 1, 1, &n, 0};
    CLI_PARSE(&s, argc, argv);
    CLI_GO(&s);
    uint8_t *b = NULL;
    size_t len;
    sx_native_image nat;
    const char *fmt;
    if (sx_read_file(path[0], &b, &len) || sx_image_decode_native(b, len, path[0], &nat, &fmt)) {
        fprintf(stderr, "seedx image: %s\n", sx_errmsg());
        free(b);
        return 1;
    }
    int o = sx_exif_orientation(b, len);
    free(b);
    printf("%s: %s %dx%d mode %s", path[0], fmt, nat.w, nat.h, sx_mode_name(nat.mode));
    if (o != 1) printf(" exif-orientation %d (not applied unless --exif-rotate)", o);
    printf("\n");
    sx_native_free(&nat);
    return 0;
}

static int image_convert(int argc, char **argv) {
    const char *path[2];
    int n = 0, size[2] = {0, 0}, filter = 0, exif = 0;
    const cli_opt opts[] = {
        {"--resize", CLI_SIZE, size, "WxH", "resize with Pillow's filter (bit-exact)", 1, 65536, NULL},
        {"--filter", CLI_CHOICE, &filter, "NAME", "resampling filter (default bicubic)", 0, 0, "bicubic|bilinear"},
        {"--exif-rotate", CLI_FLAG, &exif, NULL, "apply the EXIF orientation first", 0, 0, NULL},
    };
    cli_spec s = {"seedx image convert", "seedx image convert IN OUT [options]",
                  "Decodes IN (PNG, JPEG, PPM), optionally resizes it, writes OUT (.png, .ppm, .pgm).",
                  opts, CLI_COUNT(opts), path, 2, 2, &n, 0};
    CLI_PARSE(&s, argc, argv);
    CLI_GO(&s);
    if (sx_image_check_output(path[1])) {
        fprintf(stderr, "seedx image: %s\n", sx_errmsg());
        return 2;
    }
    sx_image im, r;
    if (sx_image_load_rgb_ex(path[0], exif, &im)) {
        fprintf(stderr, "seedx image: %s\n", sx_errmsg());
        return 1;
    }
    if (size[0]) {
        if (sx_image_resize(&im, size[0], size[1], filter ? SX_RESIZE_BILINEAR : SX_RESIZE_BICUBIC, &r)) {
            fprintf(stderr, "seedx image: %s\n", sx_errmsg());
            sx_image_free(&im);
            return 1;
        }
        sx_image_free(&im);
        im = r;
    }
    int rc = sx_image_save(path[1], &im);
    sx_image_free(&im);
    if (rc) {
        fprintf(stderr, "seedx image: %s\n", sx_errmsg());
        return 1;
    }
    return 0;
}

/* positions.txt of `image tiles`: a header naming the input (any length),
 * then one line per tile. malloc'd, NULL with the error set. */
static char *positions_text(const char *in, const sx_image *im, const sx_anyres *a) {
    sx_str b = {0};
    sx_str_addf(&b, "# %s %dx%d -> grid %dx%d (%dx%d px), %d images (tiles row-major, global thumbnail "
                    "last)\n# file x y\n",
                in, im->w, im->h, a->grid_w, a->grid_h, a->grid_w * SX_ANYRES_BASE,
                a->grid_h * SX_ANYRES_BASE, a->n);
    for (int t = 0; t < a->n; t++)
        sx_str_addf(&b, "%s_%02d.png %.9g %.9g\n", t == a->n - 1 ? "thumbnail" : "tile", t,
                    a->pos[2 * t], a->pos[2 * t + 1]);
    if (b.oom) sx_str_free(&b);
    return b.s;
}

static int image_tiles(int argc, char **argv) {
    const char *path[1], *dir = NULL, *grids = NULL;
    int n = 0, exif = 0, keep = 0;
    const cli_opt opts[] = {
        {"--out", CLI_STR, &dir, "DIR", "where the tiles go (created; required)", 0, 0, NULL},
        {"--grids", CLI_STR, &grids, "LIST", "any-res candidates (default: the official 8)", 0, 0, NULL},
        {"--keep-ratio", CLI_FLAG, &keep, NULL, "resize_and_pad with keep_ratio=True", 0, 0, NULL},
        {"--exif-rotate", CLI_FLAG, &exif, NULL, "apply the EXIF orientation first", 0, 0, NULL},
    };
    cli_spec s = {"seedx image tiles", "seedx image tiles IN --out DIR [options]",
                  "Writes SEED-X's any-res images of IN (tiles row-major, then the global\n"
                  "thumbnail) as PNGs, and positions.txt with each tile's position.",
                  opts, CLI_COUNT(opts), path, 1, 1, &n, 0};
    CLI_PARSE(&s, argc, argv);
    int res[SX_ANYRES_MAX_GRIDS][2], nres;
    if (!dir || sx_anyres_parse_grids(grids, res, &nres)) {
        fprintf(stderr, "seedx image tiles: %s\nusage: %s\n", dir ? sx_errmsg() : "--out DIR is required", s.usage);
        return 2;
    }
    CLI_GO(&s);
    sx_image im;
    sx_anyres a;
    if (sx_image_load_rgb_ex(path[0], exif, &im)) {
        fprintf(stderr, "seedx image: %s\n", sx_errmsg());
        return 1;
    }
    if (sx_anyres_preprocess_ex(&im, grids, keep, &a)) {
        fprintf(stderr, "seedx image: %s\n", sx_errmsg());
        sx_image_free(&im);
        return 1;
    }
    int rc = 0;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        rc = sx_err("cannot create %s: %s", dir, strerror(errno));
    for (int t = 0; t < a.n && !rc; t++) {
        char *p = sx_strf("%s/%s_%02d.png", dir, t == a.n - 1 ? "thumbnail" : "tile", t);
        rc = !p || sx_image_save(p, &a.tiles[t]);
        free(p);
    }
    char *txt = rc ? NULL : positions_text(path[0], &im, &a), *p = NULL;
    if (!rc && (!txt || !(p = sx_strf("%s/positions.txt", dir)) ||
                sx_write_file_atomic(p, (const uint8_t *)txt, strlen(txt))))
        rc = 1;
    if (rc) fprintf(stderr, "seedx image: %s\n", sx_errmsg());
    else printf("%s: %dx%d -> grid %dx%d, wrote %d PNGs and positions.txt to %s\n", path[0], im.w,
                im.h, a.grid_w, a.grid_h, a.n, dir);
    free(p);
    free(txt);
    sx_image_free(&im);
    sx_anyres_free(&a);
    return rc ? 1 : 0;
}

int sx_cmd_image(int argc, char **argv) {
    if (argc < 2) return image_usage(stderr);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) return image_usage(stdout);
    if (!strcmp(argv[1], "info")) return image_info(argc - 1, argv + 1);
    if (!strcmp(argv[1], "convert")) return image_convert(argc - 1, argv + 1);
    if (!strcmp(argv[1], "tiles")) return image_tiles(argc - 1, argv + 1);
    fprintf(stderr, "seedx image: unknown subcommand '%s'\n", argv[1]);
    return image_usage(stderr);
}

/* ======================================================================
 * seedx tokenize -m MODEL [--bos] [--pieces] TEXT | --decode [--skip-special] ID...
 * ====================================================================== */
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
    const char *model = NULL, **args = NULL;
    int bos = 0, pieces = 0, decode = 0, skip = 0, n_args = 0;
    const cli_opt opts[] = {
        {"-m", CLI_STR, &model, "MODEL", "a model directory (holding tokenizer.gguf) or a tokenizer .gguf", 0, 0, NULL},
        {"--bos", CLI_FLAG, &bos, NULL, "prepend bos", 0, 0, NULL},
        {"--pieces", CLI_FLAG, &pieces, NULL, "print the token strings instead of the ids", 0, 0, NULL},
        {"--decode", CLI_FLAG, &decode, NULL, "the arguments are ids: print tokenizer.decode(IDS)", 0, 0, NULL},
        {"--skip-special", CLI_FLAG, &skip, NULL, "with --decode: skip special tokens", 0, 0, NULL},
    };
    args = malloc(sizeof(char *) * (size_t)(argc > 0 ? argc : 1));
    if (!args) {
        fprintf(stderr, "seedx tokenize: out of memory\n");
        return 1;
    }
    cli_spec s = {"seedx tokenize", "seedx tokenize -m MODEL [--bos] [--pieces] TEXT\n"
                                    "       seedx tokenize -m MODEL --decode [--skip-special] ID...",
                  "Prints the ids of tokenizer.encode(TEXT, add_special_tokens=False) on one line,\n"
                  "or with --decode the text of tokenizer.decode(IDS). TEXT '-' reads stdin verbatim;\n"
                  "a TEXT starting with '-' goes after '--'.",
                  opts, CLI_COUNT(opts), args, 1, argc, &n_args, 1};
    int prc = cli_parse(&s, argc, argv), rc = 1;
    if (prc == 0 && !model) {
        fprintf(stderr, "seedx tokenize: -m MODEL is required\nusage: %s\n", s.usage);
        prc = 2;
    } else if (prc == 0 && !decode && n_args != 1) {
        fprintf(stderr, "seedx tokenize: expected exactly one TEXT argument (use '-' for stdin)\n");
        prc = 2;
    }
    int *ids = NULL;
    size_t n = 0;
    char *buf = NULL;
    sx_tokenizer *tok = NULL;
    if (prc == 0 && decode) { /* the ids, each a whole number */
        n = (size_t)n_args;
        ids = malloc((n + 1) * sizeof *ids);
        if (!ids) prc = 2;
        for (size_t k = 0; k < n && prc == 0; k++) {
            const char *v = args[k];
            char *end;
            errno = 0;
            long x = strtol(v, &end, 10);
            if (!*v || *end || errno || x < -2147483647L || x > 2147483647L || v[0] == ' ') {
                fprintf(stderr, "seedx tokenize: '%s' is not a token id\n", v);
                prc = 2;
            }
            if (prc == 0) ids[k] = (int)x;
        }
    }
    if (prc || cli_args_only || cli_apply_common(s.name)) {
        free(ids);
        free(args);
        return prc == 1 ? 0 : prc ? prc : cli_args_only ? 0 : 2;
    }
    if (sx_tokenizer_open(model, &tok)) {
        fprintf(stderr, "seedx tokenize: %s\n", sx_errmsg());
        free(ids);
        free(args);
        return 1;
    }
    if (decode) {
        size_t len;
        if (sx_detokenize(tok, ids, n, skip, &buf, &len)) {
            fprintf(stderr, "seedx tokenize: %s\n", sx_errmsg());
            goto out;
        }
        fwrite(buf, 1, len, stdout);
        fputc('\n', stdout);
        rc = 0;
    } else {
        const char *text = args[0];
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
    free(args);
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

int sx_cmd_vit(int argc, char **argv) {
    const char *model = NULL, *image = NULL, *outp = NULL;
    int zero = 0, filter = 0, size = 0, tiles = 1;
    uint64_t rseed = 0;
    const char *random_s = NULL;
    const cli_opt opts[] = {
        {"-m", CLI_STR, &model, "VIT.gguf", "the ViT container (required)", 0, 0, NULL},
        {"--image", CLI_STR, &image, "FILE", "encode this image", 0, 0, NULL},
        {"--zero", CLI_FLAG, &zero, NULL, "encode the all-zero input", 0, 0, NULL},
        {"--random", CLI_STR, &random_s, "SEED", "encode uniform random pixels in [-2,2] (seed: a whole number)", 0, 0, NULL},
        {"--size", CLI_INT, &size, "S", "resize to S x S (default: the model's image_size)", 1, 8192, NULL},
        {"--filter", CLI_CHOICE, &filter, "NAME", "Pillow filter of the resize (default bilinear)", 0, 0, "bilinear|bicubic"},
        {"--tiles", CLI_INT, &tiles, "N", "repeat the input N times (a batch)", 1, 1024, NULL},
        {"-o", CLI_STR, &outp, "OUT.npy", "save the features as float32 .npy", 0, 0, NULL},
    };
    cli_spec s = {"seedx vit", "seedx vit -m VIT.gguf (--image FILE | --zero | --random SEED) [options]",
                  "Runs the Qwen-VL visual encoder on one image, on an all-zero input or on uniform\n"
                  "random pixels in [-2,2], and prints statistics of the [N, n_queries, output_dim]\n"
                  "features. The image is resized to S x S with Pillow's filter (bilinear as SEED-X's\n"
                  "qwen_448_transform; bicubic as qwen_visual.py's image_transform), scaled to [0,1]\n"
                  "and CLIP-normalised.",
                  opts, CLI_COUNT(opts), NULL, 0, 0, NULL, 0};
    CLI_PARSE(&s, argc, argv);
    const cli_opt seed_opt = {"--random", CLI_U64, &rseed, "SEED", "", 0, 0, NULL};
    if (random_s && cli_value(s.name, &seed_opt, random_s)) return 2;
    if (!model || (!!image + zero + !!random_s) != 1) {
        fprintf(stderr, "seedx vit: -m and one of --image, --zero, --random are required\nusage: %s\n", s.usage);
        return 2;
    }
    CLI_GO(&s);
    if (outp && sx_file_check_writable(outp)) {
        fprintf(stderr, "seedx vit: %s\n", sx_errmsg());
        return 2;
    }
    filter = filter ? SX_RESIZE_BICUBIC : SX_RESIZE_BILINEAR;
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
    } else if (random_s) {
        sx_rand_uniform(px, 3 * plane, rseed, -2.0f, 2.0f);
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
    int kv16 = 0, dtype = -1;
    const cli_opt opts[] = {
        {"-m", CLI_STR, &model, "MODEL", "directory with llm.gguf + tokenizer.gguf, or an LLM .gguf", 0, 0, NULL},
        {"--tokenizer", CLI_STR, &tokp, "FILE", "tokenizer .gguf (default: tokenizer.gguf next to the model)", 0, 0, NULL},
        {"-p", CLI_STR, &prompt, "TEXT", "prompt (bos is prepended)", 0, 0, NULL},
        {"-n", CLI_I64, &opt.max_new_tokens, "N", "max new tokens (default 128; generation stops when the\ncontext is full, with a message)", 1, 1 << 24, NULL},
        {"--temp", CLI_FLOAT, &opt.temperature, "T", "temperature (default 0 = greedy)", 0, 100, NULL},
        {"--top-k", CLI_INT, &opt.top_k, "K", "top-k filter (default 0: off)", 0, 1 << 24, NULL},
        {"--top-p", CLI_FLOAT, &opt.top_p, "P", "nucleus filter (default 1: off)", 0, 1, NULL},
        {"--repeat-penalty", CLI_FLOAT, &opt.repetition_penalty, "R", "repetition penalty (default 1 = off)", 0.01, 100, NULL},
        {"--seed", CLI_U64, &opt.seed, "S", "sampling seed (default 0)", 0, 0, NULL},
        {"--ctx", CLI_I64, &n_ctx, "N", "context length (default 0: max_position_embeddings)", 0, 1 << 24, NULL},
        {"--kv-f16", CLI_FLAG, &kv16, NULL, "keep the KV cache in F16", 0, 0, NULL},
        {"--dtype", CLI_CHOICE, &dtype, "T", "matrices converted at load (default: as stored): f32|f16|bf16,\nor quantized q8_0|q4_0|q4_k (README)", 0, 0, CLI_DTYPES},
    };
    cli_spec spec = {"seedx lm", "seedx lm -m MODEL -p TEXT [options]",
                     "Plain text completion with a Llama checkpoint, streamed to stdout.", opts, CLI_COUNT(opts), NULL, 0, 0,
                     NULL, 0};
    CLI_PARSE(&spec, argc, argv);
    if (!model || !prompt) {
        fprintf(stderr, "seedx lm: -m MODEL and -p TEXT are required\nusage: %s\n", spec.usage);
        return 2;
    }
    CLI_GO(&spec);
    if (cli_apply_dtype(spec.name, dtype)) return 2;
    /* llm.gguf and the tokenizer: in MODEL if it is a directory, else MODEL
     * and tokenizer.gguf beside it */
    struct stat st;
    int is_dir = stat(model, &st) == 0 && S_ISDIR(st.st_mode);
    const char *sl = strrchr(model, '/');
    char *llm_path = is_dir ? sx_strf("%s/llm.gguf", model) : sx_strf("%s", model);
    char *tok_path = tokp     ? sx_strf("%s", tokp)
                     : is_dir ? sx_strf("%s/tokenizer.gguf", model)
                     : sl     ? sx_strf("%.*s/tokenizer.gguf", (int)(sl - model), model)
                              : sx_strf("tokenizer.gguf");
    int rc = 1, capped = 0;
    sx_llama *m = NULL;
    sx_tokenizer *tok = NULL;
    sx_llama_ctx *c = NULL;
    sx_gguf *g = NULL;
    int *pids = NULL;
    int32_t *ids32 = NULL, *out = NULL;
    float *emb = NULL;
    lm_stream s;
    memset(&s, 0, sizeof s);
    double t0 = sx_time();
    size_t np;
    int64_t max_pos;
    /* before the weights: the context (metadata) and the prompt's length */
    if (!llm_path || !tok_path || sx_gguf_open(llm_path, &g) ||
        sx_meta_int(g, "seedx.llm.max_position_embeddings", &max_pos) ||
        sx_tokenizer_open(tok_path, &tok) || sx_tokenize(tok, prompt, strlen(prompt), 1, &pids, &np))
        goto done;
    sx_gguf_close(g);
    g = NULL;
    if (n_ctx > max_pos) {
        sx_err("--ctx %lld: more than the model's max_position_embeddings %lld", (long long)n_ctx,
               (long long)max_pos);
        goto done;
    }
    if (n_ctx == 0) n_ctx = max_pos;
    if (np == 0 || (int64_t)np >= n_ctx) {
        sx_err("the prompt is %zu tokens: it needs at least one, and room for one new token in the "
               "context of %lld",
               np, (long long)n_ctx);
        goto done;
    }
    if ((int64_t)np + opt.max_new_tokens > n_ctx) { /* generate up to the context limit */
        opt.max_new_tokens = n_ctx - (int64_t)np;
        capped = 1;
    }
    if (sx_llama_load(llm_path, &m) != 0) goto done;
    if (sx_tokenizer_n_vocab(tok) > m->cfg.vocab) {
        sx_err("%s has %d tokens but the model's vocabulary is %lld", tok_path,
               sx_tokenizer_n_vocab(tok), (long long)m->cfg.vocab);
        goto done;
    }
    int64_t N = opt.max_new_tokens;
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
    if (capped && n_out == N && out[n_out - 1] != opt.eos_id)
        fprintf(stderr, "seedx lm: stopped at the context limit: %lld tokens (prompt %zu + %lld new)\n",
                (long long)n_ctx, np, (long long)n_out);
    rc = 0;
done:
    if (rc) fprintf(stderr, "seedx lm: %s\n", sx_errmsg());
    sx_gguf_close(g);
    free(llm_path);
    free(tok_path);
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
    fprintf(f, "usage: seedx unet forward -m UNET.gguf [-m BASE.gguf] --sample X.npy --ctx CTX.npy [options] -o EPS.npy\n"
               "       seedx unet randn --shape 1,4,128,128 [options] -o NOISE.npy\n"
               "       seedx unet sample -m UNET.gguf --ctx CTX.npy --pooled P.npy [options] -o LATENTS.npy\n"
               "`seedx unet SUBCOMMAND --help` lists the options of each.\n");
    return f == stdout ? 0 : 2;
}

/* "a,b,c": exactly the integers of the list (at most max); -1 if anything else */
static int parse_ints(const char *s, int64_t *v, int max) {
    int n = 0;
    for (; s && *s; n++) {
        char *e;
        errno = 0;
        long long x = (*s == '-' || (*s >= '0' && *s <= '9')) ? strtoll(s, &e, 10) : 0;
        if (!(*s == '-' || (*s >= '0' && *s <= '9')) || e == s || errno || n == max) return -1;
        if (*e && (*e != ',' || !e[1])) return -1;
        v[n] = x;
        s = *e ? e + 1 : e;
    }
    return n;
}

enum { U_FWD = 1, U_RANDN = 2, U_SAMPLE = 4 };

int sx_cmd_unet(int argc, char **argv) {
    if (argc < 2) return unet_usage(stderr);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) return unet_usage(stdout);
    const char *sub = argv[1];
    int which = !strcmp(sub, "forward") ? U_FWD : !strcmp(sub, "randn") ? U_RANDN : !strcmp(sub, "sample") ? U_SAMPLE : 0;
    if (!which) {
        fprintf(stderr, "seedx unet: unknown subcommand '%s'\n", sub);
        return unet_usage(stderr);
    }
    cli_list models = {{0}, 0};
    const char *out = NULL, *sample_p = NULL, *ctx_p = NULL;
    const char *pooled_p = NULL, *nctx_p = NULL, *npooled_p = NULL, *noise_p = NULL, *img_p = NULL;
    const char *tids_s = "1024,1024,0,0,1024,1024", *shape_s = NULL;
    double t = 500, cfg = 7.5, igs = 1.5;
    uint64_t seed = 0;
    int steps = 50, size = 1024, kind = SX_RNG_TORCH_CUDA, sampler = SX_SAMPLER_EULER, karras_on = 0;
    int64_t cuda_threads = 0;
    const struct {
        int subs;
        cli_opt o;
    } rows[] = {
        {U_FWD | U_SAMPLE, {"-m", CLI_MULTI, &models, "UNET.gguf", "the UNet; repeated: an overlay (convert_unet.py --overlay)\nfirst, then its base", 0, 0, NULL}},
        {U_FWD, {"--sample", CLI_STR, &sample_p, "X.npy", "the UNet input [C,h,w] or [1,C,h,w] (required)", 0, 0, NULL}},
        {U_FWD | U_SAMPLE, {"--ctx", CLI_STR, &ctx_p, "CTX.npy", "context [T,D] or [1,T,D] (required)", 0, 0, NULL}},
        {U_FWD | U_SAMPLE, {"--pooled", CLI_STR, &pooled_p, "P.npy", "pooled text embedding (SDXL: required)", 0, 0, NULL}},
        {U_FWD, {"--t", CLI_DOUBLE, &t, "T", "timestep (default 500)", 0, 100000, NULL}},
        {U_FWD | U_SAMPLE, {"--time-ids", CLI_STR, &tids_s, "LIST", "SDXL time ids, 6 integers (default 1024,1024,0,0,1024,1024)", 0, 0, NULL}},
        {U_RANDN, {"--shape", CLI_STR, &shape_s, "LIST", "noise shape, e.g. 1,4,128,128 (required)", 0, 0, NULL}},
        {U_RANDN | U_SAMPLE, {"--seed", CLI_U64, &seed, "S", "noise seed (default 0)", 0, 0, NULL}},
        {U_RANDN | U_SAMPLE, {"--rng", CLI_CHOICE, &kind, "NAME", "torch-cpu: bit-exact CPU generator; torch-cuda: Philox port\n(default torch-cuda, rounded to fp16 in sample as the pipeline)", 0, 0, "torch-cpu|torch-cuda"}},
        {U_RANDN, {"--cuda-threads", CLI_I64, &cuda_threads, "N", "torch-cuda: the launch's thread count (default 0: torch's)", 0, 1 << 30, NULL}},
        {U_SAMPLE, {"--neg-ctx", CLI_STR, &nctx_p, "C.npy", "negative context (default zeros)", 0, 0, NULL}},
        {U_SAMPLE, {"--neg-pooled", CLI_STR, &npooled_p, "P.npy", "negative pooled (default zeros)", 0, 0, NULL}},
        {U_SAMPLE, {"--steps", CLI_INT, &steps, "N", "sampler steps (default 50)", 1, SX_SEEDX_MAX_STEPS, NULL}},
        {U_SAMPLE, {"--sampler", CLI_CHOICE, &sampler, "NAME", "euler (default) or dpmpp2m (DPM-Solver++(2M))", 0, 0, "euler|dpmpp2m"}},
        {U_SAMPLE, {"--karras", CLI_FLAG, &karras_on, NULL, "Karras sigmas (either sampler; default: the container's setting)", 0, 0, NULL}},
        {U_SAMPLE, {"--cfg", CLI_DOUBLE, &cfg, "G", "guidance scale (default 7.5)", 0, SX_SEEDX_MAX_CFG, NULL}},
        {U_SAMPLE, {"--igs", CLI_DOUBLE, &igs, "G", "image guidance scale, 8-channel UNet (default 1.5)", 0, SX_SEEDX_MAX_CFG, NULL}},
        {U_SAMPLE, {"--size", CLI_INT, &size, "PX", "square output size in pixels, a multiple of 8 (default 1024)", 8, 8192, NULL}},
        {U_SAMPLE, {"--noise", CLI_STR, &noise_p, "N.npy", "initial noise instead of drawing it", 0, 0, NULL}},
        {U_SAMPLE, {"--image-latent", CLI_STR, &img_p, "L.npy", "the edit loop's image latent (8-channel UNet)", 0, 0, NULL}},
        {U_FWD | U_RANDN | U_SAMPLE, {"-o", CLI_STR, &out, "OUT.npy", "output .npy (required)", 0, 0, NULL}},
    };
    cli_opt opts[CLI_COUNT(rows)];
    int n_opts = 0;
    for (int i = 0; i < CLI_COUNT(rows); i++)
        if (rows[i].subs & which) opts[n_opts++] = rows[i].o;
    static const char *usages[] = {
        "seedx unet forward -m UNET.gguf [-m BASE.gguf] --sample X.npy --ctx CTX.npy [--pooled P.npy] [options] -o EPS.npy",
        "seedx unet randn --shape 1,4,128,128 [options] -o NOISE.npy",
        "seedx unet sample -m UNET.gguf --ctx CTX.npy --pooled P.npy [options] -o LATENTS.npy"};
    static const char *abouts[] = {
        "One UNet evaluation: eps = UNet(sample, t, context, pooled, time ids).",
        "torch.randn-compatible noise (torch-cuda: Philox port, see sampler.h; torch-cpu:\nbit-exact CPU generator).",
        "Euler or DPM-Solver++(2M) + classifier-free guidance from initial noise (drawn,\nor --noise); an "
        "8-channel UNet runs the SEED-X edit loop (3-way guidance). Negative embeddings\n"
        "default to zeros. Prints a progress bar with ETA."};
    int k = which == U_FWD ? 0 : which == U_RANDN ? 1 : 2;
    char name[32];
    snprintf(name, sizeof name, "seedx unet %s", sub);
    cli_spec spec = {name, usages[k], abouts[k], opts, n_opts, NULL, 0, 0, NULL, 0};
    CLI_PARSE(&spec, argc - 1, argv + 1);
    int64_t sh[4], tid_v[6], dims[4];
    int n_dims = which == U_RANDN ? parse_ints(shape_s, dims, 4) : 0;
    const char *missing = !out                                         ? "-o OUT.npy"
                          : which != U_RANDN && !models.n              ? "-m UNET.gguf"
                          : which != U_RANDN && !ctx_p                 ? "--ctx CTX.npy"
                          : which == U_FWD && !sample_p                ? "--sample X.npy"
                          : which == U_RANDN && n_dims < 1             ? "--shape like 1,4,128,128"
                          : which != U_RANDN && parse_ints(tids_s, tid_v, 6) != 6 ? "--time-ids: 6 integers"
                          : which == U_SAMPLE && size % 8              ? "--size: a multiple of 8"
                                                                       : NULL;
    if (missing) {
        fprintf(stderr, "%s: %s is required\nusage: %s\n", name, missing, spec.usage);
        return 2;
    }
    if (models.n > SX_UNET_MAX_FILES) {
        fprintf(stderr, "%s: at most %d -m files\n", name, SX_UNET_MAX_FILES);
        return 2;
    }
    CLI_GO(&spec);
    if (sx_file_check_writable(out)) {
        fprintf(stderr, "%s: %s\n", name, sx_errmsg());
        return 2;
    }
    int rc = 1;
    sx_unet *u = NULL;
    float *x = NULL, *ctx = NULL, *pooled = NULL, *nctx = NULL, *npooled = NULL, *eps = NULL, *img = NULL;
    sx_sched sch;
    memset(&sch, 0, sizeof sch);
    int nd;
    int64_t cnt;
    float tids[6];
    for (int j = 0; j < 6; j++) tids[j] = (float)tid_v[j];

    if (which == U_RANDN) {
        int64_t total = 1;
        for (int j = 0; j < n_dims; j++) {
            if (dims[j] <= 0 || dims[j] > (1 << 20) || (total *= dims[j]) > ((int64_t)1 << 31)) {
                sx_err("--shape %s: each dimension from 1 to 2^20, at most 2^31 values", shape_s);
                goto fail;
            }
        }
        x = sx_malloc(sizeof(float) * (size_t)total, "noise");
        if (!x) goto fail;
        if ((kind == SX_RNG_TORCH_CUDA ? sx_randn_torch_cuda(x, total, seed, cuda_threads)
                                       : sx_randn_torch_cpu(x, total, seed)) ||
            sx_npy_write(out, x, n_dims, dims))
            goto fail;
        rc = 0;
        goto done;
    }
    if (sx_unet_load_files(models.v, models.n, &u)) goto fail;
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
    if (which == U_FWD) {
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
        sx_unet_cond cond = {.context = ctx, .n_ctx = T, .ctx_dim = D, .pooled = pooled,
                             .pooled_dim = P, .time_ids = tids};
        if (sx_unet_forward(u, x, sh[0], sh[1], sh[2], (float)t, &cond, eps) ||
            sx_check_finite("UNet forward (eps)", eps, c->out_channels * sh[1] * sh[2]))
            goto fail;
        fprintf(stderr, "unet forward %lldx%lld at t=%g: %.2fs\n", (long long)sh[1], (long long)sh[2], t,
                sx_time() - t0);
        int64_t os[4] = {1, c->out_channels, sh[1], sh[2]};
        if (sx_npy_write(out, eps, 4, os)) goto fail;
        rc = 0;
    } else {
        int64_t h, w;
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
        if (sx_sched_init(&sch, sx_unet_gguf(u), steps, sampler, karras_on ? SX_KARRAS_ON : SX_KARRAS_CONFIG))
            goto fail;
        sx_cond cp = {ctx, T, pooled, {0}}, cn = {nctx, T, npooled, {0}};
        memcpy(cp.time_ids, tids, sizeof tids);
        memcpy(cn.time_ids, tids, sizeof tids);
        cli_progress_bar pb = {sx_time(), "unet", 1};
        int r = c->in_channels == 8
                    ? sx_sample_edit(u, &sch, x, h, w, &cp, &cn, img, (float)cfg, (float)igs, cli_progress,
                                     &pb, NULL)
                    : sx_sample_cfg(u, &sch, x, h, w, &cp, &cn, (float)cfg, cli_progress, &pb, NULL);
        if (r || sx_check_finite("UNet sampling (latents)", x, n)) goto fail;
        int64_t os[4] = {1, 4, h, w};
        if (sx_npy_write(out, x, 4, os)) goto fail;
        rc = 0;
    }
    goto done;
fail:
    fprintf(stderr, "%s: %s\n", name, sx_errmsg());
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
    fprintf(f, "usage: seedx vae decode    -m VAE.gguf --latents L.npy -o OUT.png [--raw OUT.npy]\n"
               "       seedx vae encode    -m VAE.gguf --image IN.png -o MEAN.npy [--logvar LV.npy]\n"
               "       seedx vae roundtrip -m VAE.gguf --image IN.png -o OUT.png\n"
               "`seedx vae MODE --help` lists the options of each.\n");
    return f == stdout ? 0 : 2;
}

int sx_cmd_vae(int argc, char **argv) {
    if (argc < 2) return vae_usage(stderr);
    const char *mode = argv[1], *model = NULL, *lat_p = NULL, *img_p = NULL, *out_p = NULL,
               *raw_p = NULL, *lv_p = NULL;
    int tiling = 0, tile = 0;
    if (!strcmp(mode, "-h") || !strcmp(mode, "--help")) return vae_usage(stdout);
    int dec = !strcmp(mode, "decode"), enc = !strcmp(mode, "encode");
    if (!dec && !enc && strcmp(mode, "roundtrip")) {
        fprintf(stderr, "seedx vae: unknown mode '%s'\n", mode);
        return vae_usage(stderr);
    }
    const cli_opt all[] = {
        {"-m", CLI_STR, &model, "VAE.gguf", "the VAE container (required)", 0, 0, NULL},
        {"--latents", CLI_STR, &lat_p, "L.npy", "latents [4,h,w] or [1,4,h,w] float32 as the pipeline holds them\n(scaled; divided by the config's scaling_factor here)", 0, 0, NULL},
        {"--image", CLI_STR, &img_p, "IN.png", "the image (width and height multiples of 8)", 0, 0, NULL},
        {"-o", CLI_STR, &out_p, enc ? "MEAN.npy" : "OUT.png", enc ? "the posterior mean [4,h,w] (not scaled: the SEED-X edit latent)" : "the decoded 8-bit image (.png, .ppm)", 0, 0, NULL},
        {"--raw", CLI_STR, &raw_p, "OUT.npy", "also the float image [3,8h,8w]", 0, 0, NULL},
        {"--logvar", CLI_STR, &lv_p, "LV.npy", "also the clamped log-variance", 0, 0, NULL},
        {"--tiling", CLI_FLAG, &tiling, NULL, "diffusers' tiled decode/encode (bounded memory)", 0, 0, NULL},
        {"--tile", CLI_INT, &tile, "PX", "tile size in pixels (default: the config's sample_size;\n512 bounds a 1024x1024 decode to well under 1 GB)", 8, 65536, NULL},
    };
    /* decode: -m --latents -o --raw; encode: -m --image -o --logvar; roundtrip: -m --image -o */
    cli_opt opts[CLI_COUNT(all)];
    int n = 0;
    for (int i = 0; i < CLI_COUNT(all); i++) {
        const char *nm = all[i].name;
        if ((!strcmp(nm, "--latents") || !strcmp(nm, "--raw")) && !dec) continue;
        if (!strcmp(nm, "--image") && dec) continue;
        if (!strcmp(nm, "--logvar") && !enc) continue;
        opts[n++] = all[i];
    }
    char name[32];
    snprintf(name, sizeof name, "seedx vae %s", mode);
    cli_spec spec = {name,
                     dec ? "seedx vae decode -m VAE.gguf --latents L.npy -o OUT.png [options]"
                     : enc ? "seedx vae encode -m VAE.gguf --image IN.png -o MEAN.npy [options]"
                           : "seedx vae roundtrip -m VAE.gguf --image IN.png -o OUT.png [options]",
                     dec ? "SDXL VAE decode -> 8-bit image, as diffusers' VaeImageProcessor.postprocess."
                     : enc ? "SDXL VAE encode: image (/255*2-1) -> posterior mean (latent_dist.mode())."
                           : "Encode, scale the mean by scaling_factor, decode.",
                     opts, n, NULL, 0, 0, NULL, 0};
    CLI_PARSE(&spec, argc - 1, argv + 1);
    if (!model || !out_p || (dec ? !lat_p : !img_p)) {
        fprintf(stderr, "%s: -m, %s and -o are required\nusage: %s\n", name, dec ? "--latents" : "--image",
                spec.usage);
        return 2;
    }
    CLI_GO(&spec);
    if ((enc ? sx_file_check_writable(out_p) : sx_image_check_output(out_p)) ||
        (raw_p && sx_file_check_writable(raw_p)) || (lv_p && sx_file_check_writable(lv_p))) {
        fprintf(stderr, "%s: %s\n", name, sx_errmsg());
        return 2;
    }
    sx_vae *v = NULL;
    float *lat = NULL, *img = NULL, *mean = NULL, *lv = NULL;
    sx_image im = {0}, rgb = {0};
    int rc = 1;
    if (sx_vae_load(model, &v) != 0) goto done;
    v->tile_sample_size = tile;
    cli_progress_bar bar = {sx_time(), "vae", 1};
    v->progress = cli_progress_count;
    v->progress_ud = &bar;
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
        int e = !mean || (lv_p && !lv) || sx_vae_encode(v, x, 3, H, W, tiling, mean, lv) != 0 ||
                sx_check_finite("VAE encode (mean)", mean, L * h * w);
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
        if (sx_check_finite("VAE decode (pixels)", img, 3 * h * f * w * f)) goto done;
        if (raw_p && sx_npy_write(raw_p, img, 3, s) != 0) goto done;
        if (sx_vae_to_rgb8(img, 3, h * f, w * f, &rgb) != 0 || sx_image_save(out_p, &rgb) != 0)
            goto done;
    }
    if (!cli_g.quiet)
        fprintf(stderr, "%s: %lldx%lld latents, %.2fs, peak RSS %.0f MB -> %s\n", name, (long long)w,
                (long long)h, sx_time() - t0, (double)sx_peak_rss() / (1024.0 * 1024.0), out_p);
    rc = 0;
done:
    if (rc) fprintf(stderr, "%s: %s\n", name, sx_errmsg());
    free(lat);
    free(img);
    free(mean);
    free(lv);
    sx_image_free(&im);
    sx_image_free(&rgb);
    sx_vae_free(v);
    return rc;
}
