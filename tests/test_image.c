/* tests/test_image.c - image_io.c + png.c against Pillow 9.4.0 / torchvision
 * 0.15.2 / diffusers 0.25.0 (fixtures from scripts/fixtures_image.py) and the
 * shared test images and references. */
#include <dirent.h>
#include <stdint.h>

#include "image_io.h"
#include "test.h"

#define FIX "tests/fixtures/image/"

/* ---- SHA-256 (FIPS 180-4), for comparing pixels with Pillow's digests ---- */
typedef struct { uint32_t h[8]; uint8_t buf[64]; uint64_t len; } sha256_ctx;
static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
static void sha_block(sha256_ctx *c, const uint8_t *p) {
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t A = c->h[0], B = c->h[1], C = c->h[2], D = c->h[3], E = c->h[4], F = c->h[5], G = c->h[6], H = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = H + (ROR(E, 6) ^ ROR(E, 11) ^ ROR(E, 25)) + ((E & F) ^ (~E & G)) + K256[i] + w[i];
        uint32_t t2 = (ROR(A, 2) ^ ROR(A, 13) ^ ROR(A, 22)) + ((A & B) ^ (A & C) ^ (B & C));
        H = G; G = F; F = E; E = D + t1; D = C; C = B; B = A; A = t1 + t2;
    }
    a[0] = A; a[1] = B; a[2] = C; a[3] = D; a[4] = E; a[5] = F; a[6] = G; a[7] = H;
    for (int i = 0; i < 8; i++) c->h[i] += a[i];
}
static void sha256_hex(const uint8_t *p, size_t n, char hex[65]) {
    sha256_ctx c = {{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}, {0}, 0};
    size_t i = 0;
    for (; i + 64 <= n; i += 64) sha_block(&c, p + i);
    uint8_t last[128] = {0};
    size_t r = n - i;
    memcpy(last, p + i, r);
    last[r] = 0x80;
    size_t tot = r + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int k = 0; k < 8; k++) last[tot - 1 - k] = (uint8_t)(bits >> (8 * k));
    sha_block(&c, last);
    if (tot == 128) sha_block(&c, last + 64);
    for (int k = 0; k < 8; k++) snprintf(hex + 8 * k, 9, "%08x", c.h[k]);
}

/* ---- helpers ---- */
static char *slurp_text(const char *path) {
    uint8_t *b;
    size_t n;
    if (sx_read_file(path, &b, &n)) return NULL;
    char *s = realloc(b, n + 1);
    s[n] = 0;
    return s;
}
static void path_of(char *out, size_t n, const char *rel) {
    if (!strncmp(rel, "images/", 7) || !strncmp(rel, "reference/", 10))
        snprintf(out, n, "%s/data/%s", t_shared(), rel);
    else
        snprintf(out, n, FIX "%s", rel);
}
static float *read_f32(const char *path, size_t *count) {
    uint8_t *b;
    size_t n;
    if (sx_read_file(path, &b, &n)) return NULL;
    *count = n / 4;
    return (float *)b;
}
/* The synthetic any-res test picture (same formula as fixtures_image.py). */
static void make_pattern(int w, int h, sx_image *im) {
    im->w = w;
    im->h = h;
    im->channels = 3;
    im->data = malloc((size_t)w * h * 3);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            uint8_t *p = im->data + (y * w + x) * 3;
            p[0] = (uint8_t)((x * 7 + y * 3) % 256);
            p[1] = (uint8_t)(((x ^ y) * 5) % 256);
            p[2] = (uint8_t)((x * y / 97) % 256);
        }
}
static size_t sample_idx(size_t j, size_t total) { return (size_t)(((uint64_t)j * 2654435761ull) % total); }

/* ---- decoding ---- */
static void test_png_decode_matches_pillow(void) {
    char *txt = slurp_text(FIX "decode.txt");
    CHECK(txt != NULL);
    if (!txt) return;
    int n_ok = 0, n_files = 0;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char rel[256], mode[16], hex[80];
        int w, h;
        if (sscanf(line, "%255s %d %d %15s %79s", rel, &w, &h, mode, hex) != 5) {
            if (strstr(line, "error:")) { /* Pillow refuses the file: so must we */
                sscanf(line, "%255s", rel);
                char p[512];
                path_of(p, sizeof p, rel);
                sx_image im;
                int rc = sx_image_load_rgb(p, &im);
                CHECKF(rc != 0, "%s: Pillow refuses it, we decoded it", rel);
                if (!rc) sx_image_free(&im);
            }
            continue;
        }
        char p[512];
        path_of(p, sizeof p, rel);
        n_files++;
        int corrupt = strstr(rel, "/corrupt/") != NULL;
        uint8_t *b;
        size_t n;
        if (sx_read_file(p, &b, &n)) {
            CHECKF(0, "%s", sx_errmsg());
            continue;
        }
        sx_native_image nat;
        int rc = sx_png_decode(b, n, p, &nat);
        free(b);
        if (corrupt) { /* xcsn0g01: Pillow skips the IDAT CRC; we check it */
            CHECKF(rc != 0 && strstr(sx_errmsg(), "CRC"), "%s: expected a CRC error, got '%s'", rel,
                   rc ? sx_errmsg() : "success");
            if (!rc) sx_native_free(&nat);
            continue;
        }
        if (rc) {
            CHECKF(0, "%s: %s", rel, sx_errmsg());
            continue;
        }
        CHECKF(!strcmp(sx_mode_name(nat.mode), mode), "%s: mode %s, Pillow says %s", rel,
               sx_mode_name(nat.mode), mode);
        sx_image rgb;
        CHECK_OK(sx_native_to_rgb(&nat, &rgb));
        sx_native_free(&nat);
        CHECKF(rgb.w == w && rgb.h == h, "%s: size %dx%d vs %dx%d", rel, rgb.w, rgb.h, w, h);
        char got[65];
        sha256_hex(rgb.data, (size_t)rgb.w * rgb.h * 3, got);
        CHECKF(!strcmp(got, hex), "%s: RGB bytes differ from Pillow's (sha256 %s vs %s)", rel, got, hex);
        if (!strcmp(got, hex)) n_ok++;
        sx_image_free(&rgb);
    }
    free(txt);
    if (getenv("SEEDX_TEST_VERBOSE")) printf("    %d of %d PNGs bit-identical to Pillow\n", n_ok, n_files);
    CHECK(n_files >= 90);
}

/* Every corrupt file: a clean error naming the file and the problem. */
static void test_corrupt_files(void) {
    static const struct { const char *file, *what; } exp[] = {
        {"xs1n0g01.png", "signature"},   {"xcrn0g04.png", "signature"},
        {"xc1n0g08.png", "colour type"}, {"xd0n2c08.png", "bit depth"},
        {"xhdn0g08.png", "CRC"},         {"xcsn0g01.png", "CRC"},
        {"xdtn0g01.png", "no IDAT"},     {"x_unexpected_eof.png", "chunk"},
        {"x_issue214.png", "size"},      {"truncated_image.png", "truncated"},
        {"broken_data_stream.png", "CRC"}, {"empty.jpg", "empty"},
    };
    char dir[512];
    snprintf(dir, sizeof dir, "%s/data/images/corrupt", t_shared());
    DIR *d = opendir(dir);
    CHECKF(d != NULL, "cannot open %s", dir);
    if (!d) return;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        sx_image im;
        int rc = sx_image_load_rgb(p, &im);
        CHECKF(rc != 0, "%s: decoded a corrupt file", e->d_name);
        if (rc == 0) {
            sx_image_free(&im);
            continue;
        }
        count++;
        const char *m = sx_errmsg();
        CHECKF(strstr(m, e->d_name) != NULL, "%s: message does not name the file: %s", e->d_name, m);
        for (size_t i = 0; i < sizeof exp / sizeof exp[0]; i++)
            if (!strcmp(exp[i].file, e->d_name))
                CHECKF(strstr(m, exp[i].what) != NULL, "%s: expected '%s' in: %s", e->d_name, exp[i].what, m);
        if (getenv("SEEDX_TEST_VERBOSE")) printf("    %s\n", m);
    }
    closedir(d);
    CHECK(count >= 15);
    /* a WebP named .jpeg: detected by magic bytes, refused cleanly */
    char p[512];
    snprintf(p, sizeof p, "%s/data/images/misc/cat_dog.jpeg", t_shared());
    sx_image im;
    CHECK(sx_image_load_rgb(p, &im) != 0);
    CHECKF(strstr(sx_errmsg(), "WEBP") && strstr(sx_errmsg(), "cat_dog.jpeg"), "%s", sx_errmsg());
}

/* Decompression-bomb limits come from IHDR, before any allocation. */
static uint8_t *png_with_ihdr(uint32_t w, uint32_t h, size_t *n) {
    uint8_t ihdr[13] = {0};
    for (int i = 0; i < 4; i++) {
        ihdr[i] = (uint8_t)(w >> (24 - 8 * i));
        ihdr[4 + i] = (uint8_t)(h >> (24 - 8 * i));
    }
    ihdr[8] = 8; /* grey 8 */
    static const uint8_t idat[] = {0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01}; /* zlib of 00 00 */
    uint8_t *b = malloc(8 + 25 + 12 + sizeof idat + 12);
    memcpy(b, "\x89PNG\r\n\x1a\n", 8);
    size_t p = 8;
    const struct { const char *t; const uint8_t *d; uint32_t n; } ch[3] = {
        {"IHDR", ihdr, 13}, {"IDAT", idat, sizeof idat}, {"IEND", NULL, 0}};
    for (int c = 0; c < 3; c++) {
        uint32_t L = ch[c].n;
        b[p] = (uint8_t)(L >> 24); b[p + 1] = (uint8_t)(L >> 16); b[p + 2] = (uint8_t)(L >> 8); b[p + 3] = (uint8_t)L;
        memcpy(b + p + 4, ch[c].t, 4);
        if (L) memcpy(b + p + 8, ch[c].d, L);
        uint32_t crc = sx_crc32(0, b + p + 4, L + 4);
        b[p + 8 + L] = (uint8_t)(crc >> 24); b[p + 9 + L] = (uint8_t)(crc >> 16);
        b[p + 10 + L] = (uint8_t)(crc >> 8); b[p + 11 + L] = (uint8_t)crc;
        p += 12 + L;
    }
    *n = p;
    return b;
}
static void test_png_limits(void) {
    size_t n;
    sx_native_image nat;
    uint8_t *b = png_with_ihdr(1, 1, &n);
    CHECK_OK(sx_png_decode(b, n, "one.png", &nat)); /* the helper itself makes a valid file */
    if (nat.data) {
        CHECK(nat.w == 1 && nat.h == 1 && nat.data[0] == 0);
        sx_native_free(&nat);
    }
    free(b);
    uint32_t bad[3][2] = {{16385, 1}, {1, 100000}, {16384, 16385}};
    for (int i = 0; i < 3; i++) {
        b = png_with_ihdr(bad[i][0], bad[i][1], &n);
        CHECK(sx_png_decode(b, n, "bomb.png", &nat) != 0);
        CHECKF(strstr(sx_errmsg(), "limits") && strstr(sx_errmsg(), "bomb.png"), "%s", sx_errmsg());
        free(b);
    }
    /* invalid filter type (crafted with valid CRCs; Pillow refuses it too) */
    sx_image im;
    CHECK(sx_image_load_rgb(FIX "crafted/bad_filter.png", &im) != 0);
    CHECKF(strstr(sx_errmsg(), "filter type 5") != NULL, "%s", sx_errmsg());
    /* within the limits the header passes; 10 bytes of zlib data cannot fill 256 MP: refused before allocating */
    b = png_with_ihdr(16384, 16384, &n);
    CHECK(sx_png_decode(b, n, "big.png", &nat) != 0);
    CHECKF(strstr(sx_errmsg(), "cannot hold") != NULL, "%s", sx_errmsg());
    free(b);
}

/* ---- zlib ---- */
static void test_zlib_round_trip(void) {
    uint32_t s = 12345;
    size_t sizes[] = {0, 1, 100, 70000, 300000};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        uint8_t *src = malloc(n + 1);
        for (int kind = 0; kind < 3; kind++) {
            for (size_t i = 0; i < n; i++) {
                s = s * 1103515245u + 12345u;
                src[i] = kind == 0 ? (uint8_t)(s >> 24)                     /* noise */
                         : kind == 1 ? (uint8_t)("abcabcabd"[i % 9] + (i / 5000)) /* repetitive */
                                     : (uint8_t)((s >> 28) & 3);              /* skewed */
            }
            int levels[] = {0, 1, 6, 9};
            for (int li = 0; li < 4; li++) {
                uint8_t *z;
                size_t zn;
                CHECK_OK(sx_zlib_compress(src, n, levels[li], &z, &zn));
                uint8_t *back = malloc(n + 1);
                CHECK_OK(sx_zlib_decompress(z, zn, back, n, "round trip"));
                CHECKF(n == 0 || !memcmp(back, src, n), "n=%zu kind=%d level=%d", n, kind, levels[li]);
                if (kind == 1 && n >= 70000 && levels[li] == 6) CHECKF(zn < n / 20, "repetitive data: %zu -> %zu", n, zn);
                if (kind == 2 && n >= 70000 && levels[li] == 6) CHECKF(zn < n / 3, "2-bit data: %zu -> %zu", n, zn);
                /* a corrupted stream never crashes and is reported */
                if (zn > 8) {
                    for (int t = 0; t < 20; t++) {
                        s = s * 1103515245u + 12345u;
                        size_t at = 2 + (s >> 8) % (zn - 2);
                        z[at] ^= (uint8_t)(1 << ((s >> 4) & 7));
                        int rc = sx_zlib_decompress(z, zn, back, n, "flipped");
                        if (rc == 0) CHECK(!memcmp(back, src, n)); /* only if the flip was harmless */
                        z[at] ^= (uint8_t)(1 << ((s >> 4) & 7));
                    }
                    CHECK(sx_zlib_decompress(z, zn - 1, back, n, "cut") != 0);
                    if (n) CHECK(sx_zlib_decompress(z, zn, back, n - 1, "short out") != 0);
                }
                free(back);
                free(z);
            }
        }
        free(src);
    }
    /* known vectors: CRC-32 and Adler-32 of "123456789" */
    CHECK(sx_crc32(0, (const uint8_t *)"123456789", 9) == 0xCBF43926u);
    CHECK(sx_adler32(1, (const uint8_t *)"123456789", 9) == 0x091E01DEu);
}

/* ---- mode conversion ---- */
static void test_cmyk_to_rgb(void) {
    char *txt = slurp_text(FIX "cmyk.txt");
    CHECK(txt != NULL);
    if (!txt) return;
    char *hex = strchr(txt, '\n') + 1;
    hex[64] = 0;
    sx_native_image nat = {256, 256, SX_MODE_CMYK, 4, malloc(256 * 256 * 4), {0}};
    for (int y = 0; y < 256; y++)
        for (int x = 0; x < 256; x++) {
            uint8_t *p = nat.data + ((size_t)y * 256 + x) * 4;
            p[0] = (uint8_t)x;
            p[1] = (uint8_t)y;
            p[2] = (uint8_t)(x * y % 256);
            p[3] = (uint8_t)((x + 3 * y) % 256);
        }
    sx_image rgb;
    CHECK_OK(sx_native_to_rgb(&nat, &rgb));
    char got[65];
    sha256_hex(rgb.data, 256 * 256 * 3, got);
    CHECKF(!strcmp(got, hex), "CMYK->RGB differs from Pillow: %s vs %s", got, hex);
    sx_image_free(&rgb);
    sx_native_free(&nat);
    free(txt);
}

/* ---- resize ---- */
static void test_resize_matches_pillow(void) {
    char *txt = slurp_text(FIX "resize.txt");
    CHECK(txt != NULL);
    if (!txt) return;
    char cur[256] = "";
    sx_image src = {0};
    int cases = 0;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char rel[256], filt[16], hex[80];
        int w, h;
        if (sscanf(line, "%255s %d %d %15s %79s", rel, &w, &h, filt, hex) != 5) continue;
        if (strcmp(rel, cur)) {
            sx_image_free(&src);
            char p[512];
            path_of(p, sizeof p, rel);
            CHECK_OK(sx_image_load_rgb(p, &src));
            snprintf(cur, sizeof cur, "%s", rel);
        }
        if (!src.data) continue;
        sx_image out;
        int f = !strcmp(filt, "bicubic") ? SX_RESIZE_BICUBIC : SX_RESIZE_BILINEAR;
        CHECK_OK(sx_image_resize(&src, w, h, f, &out));
        char got[65];
        sha256_hex(out.data, (size_t)w * h * 3, got);
        CHECKF(out.w == w && out.h == h && !strcmp(got, hex), "%s -> %dx%d %s: differs from Pillow", rel, w,
               h, filt);
        sx_image_free(&out);
        cases++;
    }
    sx_image_free(&src);
    free(txt);
    CHECK(cases >= 30);
}

/* Pillow's 448x448 references in the shared data (PNG sources: exact). */
static void test_resize_shared_references(void) {
    static const struct { const char *src, *ref; int f; } c[] = {
        {"images/photo/advisor.png", "reference/resize/advisor.bicubic448.ppm", SX_RESIZE_BICUBIC},
        {"images/photo/hopper.png", "reference/resize/hopper.bicubic448.ppm", SX_RESIZE_BICUBIC},
        {"images/png/s39n3p04.png", "reference/resize/s39n3p04.bicubic448.ppm", SX_RESIZE_BICUBIC},
        /* JPEG sources: exact as long as jpeg.c stays bit-exact with libjpeg-turbo */
        {"images/photo/car.jpg", "reference/resize/car.bicubic448.ppm", SX_RESIZE_BICUBIC},
        {"images/photo/car.jpg", "reference/resize/car.bilinear448.ppm", SX_RESIZE_BILINEAR},
        {"images/photo/men.jpg", "reference/resize/men.bicubic448.ppm", SX_RESIZE_BICUBIC},
        {"images/jpeg/testorig.jpg", "reference/resize/testorig.bicubic448.ppm", SX_RESIZE_BICUBIC},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char p[512], q[512];
        path_of(p, sizeof p, c[i].src);
        path_of(q, sizeof q, c[i].ref);
        sx_image im, ref, out;
        CHECK_OK(sx_image_load_rgb(p, &im));
        CHECK_OK(sx_image_load_rgb(q, &ref));
        if (!im.data || !ref.data) continue;
        CHECK_OK(sx_image_resize(&im, 448, 448, c[i].f, &out));
        int maxd = 0;
        for (size_t k = 0; k < 448 * 448 * 3; k++) {
            int d = abs((int)out.data[k] - (int)ref.data[k]);
            if (d > maxd) maxd = d;
        }
        CHECKF(maxd == 0, "%s: max abs diff %d vs %s", c[i].src, maxd, c[i].ref);
        sx_image_free(&im);
        sx_image_free(&ref);
        sx_image_free(&out);
    }
}

static void test_resize_same_size_and_errors(void) {
    sx_image im, out;
    make_pattern(31, 17, &im);
    CHECK_OK(sx_image_resize(&im, 31, 17, SX_RESIZE_BICUBIC, &out));
    CHECK(out.data != im.data && !memcmp(out.data, im.data, 31 * 17 * 3));
    sx_image_free(&out);
    CHECK(sx_image_resize(&im, 0, 5, SX_RESIZE_BICUBIC, &out) != 0);
    CHECK(sx_image_resize(&im, 5, 5, 7, &out) != 0);
    CHECK(sx_image_resize(NULL, 5, 5, SX_RESIZE_BICUBIC, &out) != 0);
    sx_image_free(&im);
}

/* ---- any-res ---- */
static int grid_index(const char *grids, const char *g) {
    int res[SX_ANYRES_MAX_GRIDS][2], n, a, b;
    if (sx_anyres_parse_grids(grids, res, &n) || sscanf(g, "%dx%d", &a, &b) != 2) return -2;
    for (int i = 0; i < n; i++)
        if (res[i][0] == a * 448 && res[i][1] == b * 448) return i;
    return -1;
}

static void test_anyres_matches_official(void) {
    char *txt = slurp_text(FIX "anyres.txt");
    size_t ns;
    float *samp = read_f32(FIX "anyres_samples.f32", &ns);
    CHECK(txt && samp);
    if (!txt || !samp) return;
    int k = -1;
    double worst = 0;
    char *save;
    for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        k++;
        int w, h, gw, gh, n, keep, ta, tb;
        char grids[128], ga[16], gb[16], pos[512], tiles[512], tens[32];
        if (sscanf(line, "%d %d %127s %15s %15s %dx%d %d keep=%d tieA=%d tieB=%d pos=%511s tiles=%511s tensor=%31s",
                   &w, &h, grids, ga, gb, &gw, &gh, &n, &keep, &ta, &tb, pos, tiles, tens) != 14) {
            CHECKF(0, "bad anyres.txt line: %.60s", line);
            continue;
        }
        /* selection rules */
        int res[SX_ANYRES_MAX_GRIDS][2], nr;
        CHECK_OK(sx_anyres_parse_grids(grids, res, &nr));
        CHECKF(sx_anyres_rule_a(w, h, (const int(*)[2])res, nr) == grid_index(grids, ga), "%dx%d rule A", w, h);
        CHECKF(sx_anyres_rule_b(w, h, (const int(*)[2])res, nr) == grid_index(grids, gb), "%dx%d rule B", w, h);
        /* full preprocessing */
        sx_image im;
        make_pattern(w, h, &im);
        sx_anyres a;
        CHECK_OK(sx_anyres_preprocess_ex(&im, grids, keep, &a));
        sx_image_free(&im);
        if (!a.pixels) continue;
        CHECKF(a.grid_w == gw && a.grid_h == gh && a.n == n, "%dx%d: grid %dx%d n %d, expected %dx%d n %d", w, h,
               a.grid_w, a.grid_h, a.n, gw, gh, n);
        if (a.n != n) {
            sx_anyres_free(&a);
            continue;
        }
        char *q = pos;
        for (int i = 0; i < 2 * n; i++) {
            float v = strtof(q, &q);
            q++;
            CHECKF(a.pos[i] == v, "%dx%d: pos[%d] %.9g vs %.9g", w, h, i, a.pos[i], v);
        }
        q = tiles;
        for (int t = 0; t < n; t++, q += 17) {
            char got[65];
            sha256_hex(a.tiles[t].data, 448 * 448 * 3, got);
            CHECKF(!strncmp(got, q, 16), "%dx%d: tile %d pixels differ from Pillow's", w, h, t);
        }
        size_t total = (size_t)n * 3 * 448 * 448;
        const float *exp = samp + (size_t)(k) * 512;
        if ((size_t)(k + 1) * 512 > ns) {
            CHECK(0);
            break;
        }
        for (size_t j = 0; j < 512; j++) {
            double d = fabs((double)a.pixels[sample_idx(j, total)] - (double)exp[j]);
            if (d > worst) worst = d;
            CHECKF(d <= 1e-6, "%dx%d: tensor sample %zu: %.9g vs %.9g", w, h, j, a.pixels[sample_idx(j, total)],
                   exp[j]);
        }
        char got[65];
        sha256_hex((const uint8_t *)a.pixels, total * 4, got);
        CHECKF(!strncmp(got, tens, 16), "%dx%d: float tensor not bit-identical to torchvision's", w, h);
        sx_anyres_free(&a);
    }
    k++;
    if (getenv("SEEDX_TEST_VERBOSE")) printf("    %d cases, max |tensor - torchvision| = %.3g\n", k, worst);
    CHECK(k >= 12);
    free(txt);
    free(samp);
}

static void test_anyres_spec_examples(void) {
    /* spec section 5 examples with the official 8 grids */
    static const struct { int w, h; const char *g; } ex[] = {
        {1000, 750, "2x2"}, {1920, 1080, "2x1"}, {640, 480, "1x1"}, {800, 1600, "1x2"},
        {3000, 1000, "3x1"}, {2000, 500, "4x1"}, {300, 300, "1x1"}};
    int res[SX_ANYRES_MAX_GRIDS][2], n;
    CHECK_OK(sx_anyres_parse_grids(NULL, res, &n));
    CHECK(n == 8);
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++)
        CHECKF(sx_anyres_select(ex[i].w, ex[i].h, (const int(*)[2])res, n) == grid_index(SX_ANYRES_DEFAULT_GRIDS, ex[i].g),
               "%dx%d", ex[i].w, ex[i].h);
    CHECK(sx_anyres_parse_grids("2x", res, &n) != 0);
    CHECK(sx_anyres_parse_grids("1x1;2x2", res, &n) != 0);
    CHECK(sx_anyres_parse_grids("", res, &n) != 0);
}

static void test_recon_and_edit_preprocessing(void) {
    char *txt = slurp_text(FIX "prep.txt");
    size_t ns;
    float *samp = read_f32(FIX "prep_samples.f32", &ns);
    CHECK(txt && samp);
    if (!txt || !samp) return;
    int k = 0;
    char *save;
    for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char kind[16], rel[256], tens[32];
        if (sscanf(line, "%15s %255s %31s", kind, rel, tens) != 3) continue;
        char p[512];
        path_of(p, sizeof p, rel);
        sx_image im;
        CHECK_OK(sx_image_load_rgb(p, &im));
        int is_vae = !strcmp(kind, "vae1024");
        size_t total = is_vae ? 3 * 1024 * 1024 : 3 * 448 * 448;
        float *x = malloc(total * sizeof(float));
        CHECK_OK(is_vae ? sx_vae_preprocess_1024(&im, x) : sx_clip_preprocess_448(&im, x));
        CHECK((size_t)(k + 1) * 512 <= ns);
        double worst = 0;
        for (size_t j = 0; j < 512 && (size_t)(k + 1) * 512 <= ns; j++) {
            double d = fabs((double)x[sample_idx(j, total)] - (double)samp[(size_t)k * 512 + j]);
            if (d > worst) worst = d;
        }
        CHECKF(worst <= 1e-6, "%s %s: max diff %.3g", kind, rel, worst);
        char got[65];
        sha256_hex((const uint8_t *)x, total * 4, got);
        CHECKF(!strncmp(got, tens, 16), "%s %s: tensor not bit-identical to the reference", kind, rel);
        free(x);
        sx_image_free(&im);
        k++;
    }
    CHECK(k == 4);
    free(txt);
    free(samp);
}

/* ---- encoding ---- */
static void test_png_encode_round_trip(void) {
    char *txt = slurp_text(FIX "encode_sizes.txt");
    CHECK(txt != NULL);
    if (!txt) return;
    int cases = 0;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char rel[256];
        long pil;
        if (sscanf(line, "%255s %ld", rel, &pil) != 2) continue;
        sx_image im;
        if (!strncmp(rel, "pattern:", 8)) {
            make_pattern(640, 480, &im);
        } else {
            char p[512];
            path_of(p, sizeof p, rel);
            CHECK_OK(sx_image_load_rgb(p, &im));
        }
        if (!im.data) continue;
        uint8_t *png;
        size_t n;
        CHECK_OK(sx_png_encode(&im, &png, &n));
        sx_image back;
        CHECK_OK(sx_image_decode_rgb(png, n, rel, &back));
        CHECKF(back.w == im.w && back.h == im.h && !memcmp(back.data, im.data, (size_t)im.w * im.h * 3),
               "%s: round trip changed pixels", rel);
        CHECKF((double)n <= 1.15 * (double)pil, "%s: our PNG %zu bytes vs Pillow %ld", rel, n, pil);
        if (getenv("SEEDX_TEST_VERBOSE")) printf("    %-28s ours %8zu  Pillow %8ld  (%.3f)\n", rel, n, pil, (double)n / pil);
        free(png);
        sx_image_free(&back);
        sx_image_free(&im);
        cases++;
    }
    free(txt);
    CHECK(cases == 4);
    /* 1, 2 and 4 channel images, odd sizes */
    for (int c = 1; c <= 4; c++) {
        sx_image im = {13, 7, c, malloc(13 * 7 * 4)};
        for (int i = 0; i < 13 * 7 * c; i++) im.data[i] = (uint8_t)(i * 37 + c);
        uint8_t *png;
        size_t n;
        CHECK_OK(sx_png_encode(&im, &png, &n));
        sx_native_image nat;
        CHECK_OK(sx_png_decode(png, n, "enc.png", &nat));
        static const sx_mode m[5] = {0, SX_MODE_L, SX_MODE_LA, SX_MODE_RGB, SX_MODE_RGBA};
        CHECK(nat.mode == m[c] && nat.w == 13 && nat.h == 7 && !memcmp(nat.data, im.data, 13 * 7 * (size_t)c));
        sx_native_free(&nat);
        free(png);
        sx_image_free(&im);
    }
}

static void test_save_and_ppm(void) {
    sx_image im, back;
    make_pattern(33, 21, &im);
    char paths[2][1024], bmp[1024];
    snprintf(paths[0], sizeof paths[0], "%s/tests/_img_rt.ppm", t_build());
    snprintf(paths[1], sizeof paths[1], "%s/tests/_img_rt.png", t_build());
    snprintf(bmp, sizeof bmp, "%s/tests/_img_rt.bmp", t_build());
    for (int i = 0; i < 2; i++) {
        CHECK_OK(sx_image_save(paths[i], &im));
        CHECK_OK(sx_image_load_rgb(paths[i], &back));
        CHECK(back.data && back.w == 33 && back.h == 21 && !memcmp(back.data, im.data, 33 * 21 * 3));
        sx_image_free(&back);
        remove(paths[i]);
    }
    CHECK(sx_image_save(bmp, &im) != 0);
    CHECK(sx_image_save("/nonexistent-dir/x.png", &im) != 0);
    /* truncated PPM */
    uint8_t *b;
    size_t n;
    CHECK_OK(sx_ppm_encode(&im, &b, &n));
    CHECK(sx_image_decode_rgb(b, n - 1, "cut.ppm", &back) != 0 && strstr(sx_errmsg(), "truncated"));
    free(b);
    sx_image_free(&im);
}

/* ---- EXIF orientation (opt-in, Pillow's ImageOps.exif_transpose) ---- */
static void test_exif_transpose(void) {
    char *txt = slurp_text(FIX "exif.txt");
    CHECK(txt != NULL);
    if (!txt) return;
    int cases = 0;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char rel[256], hex[80];
        int o, w, h;
        if (sscanf(line, "%255s %d %d %d %79s", rel, &o, &w, &h, hex) != 5) continue;
        sx_image im = {0}, t = {0};
        if (!strncmp(rel, "pattern:", 8)) {
            make_pattern(5, 3, &im);
            CHECK_OK(sx_image_exif_transpose(&im, o, &t));
        } else {
            char p[512];
            path_of(p, sizeof p, rel);
            uint8_t *b;
            size_t n;
            CHECK_OK(sx_read_file(p, &b, &n));
            if (!b) continue;
            CHECKF(sx_exif_orientation(b, n) == o, "%s: orientation %d, Pillow %d", rel, sx_exif_orientation(b, n), o);
            free(b);
            CHECK_OK(sx_image_load_rgb_ex(p, 1, &t));
        }
        char got[65] = "";
        if (t.data) sha256_hex(t.data, (size_t)t.w * t.h * 3, got);
        CHECKF(t.w == w && t.h == h && !strcmp(got, hex), "%s orientation %d: differs from Pillow", rel, o);
        sx_image_free(&im);
        sx_image_free(&t);
        cases++;
    }
    CHECK(cases == 10);
    free(txt);
}

/* JPEG through the format dispatch and the mode conversion (L -> RGB, CMYK ->
 * RGB): against the shared libjpeg-turbo/Pillow references, at most +-1. */
static void test_jpeg_through_image_io(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/data/reference/jpeg", t_shared());
    DIR *d = opendir(dir);
    CHECKF(d != NULL, "cannot open %s", dir);
    if (!d) return;
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        size_t L = strlen(e->d_name);
        if (L < 5 || (strcmp(e->d_name + L - 4, ".ppm") && strcmp(e->d_name + L - 4, ".pgm"))) continue;
        char base[256], src[768], ref[768];
        snprintf(base, sizeof base, "%.*s", (int)(L - 4), e->d_name);
        snprintf(ref, sizeof ref, "%s/%s", dir, e->d_name);
        snprintf(src, sizeof src, "%s/data/images/jpeg/%s.jpg", t_shared(), base);
        FILE *f = fopen(src, "rb");
        if (!f) snprintf(src, sizeof src, "%s/data/images/photo/%s.jpg", t_shared(), base);
        else fclose(f);
        sx_image im, r;
        if (sx_image_load_rgb(src, &im) != 0) {
            /* arithmetic coding is optional (issue 4); anything else must decode */
            CHECKF(strstr(sx_errmsg(), "arithmetic") != NULL, "%s", sx_errmsg());
            continue;
        }
        CHECK_OK(sx_image_load_rgb(ref, &r)); /* PGM references come back replicated to RGB */
        if (!r.data) { sx_image_free(&im); continue; }
        CHECKF(im.w == r.w && im.h == r.h, "%s: %dx%d vs %dx%d", base, im.w, im.h, r.w, r.h);
        if (im.w == r.w && im.h == r.h) {
            int maxd = 0;
            double sum = 0;
            size_t np = (size_t)im.w * im.h * 3;
            for (size_t k = 0; k < np; k++) {
                int dd = abs((int)im.data[k] - (int)r.data[k]);
                sum += dd;
                if (dd > maxd) maxd = dd;
            }
            CHECKF(maxd <= 1, "%s: max abs diff %d vs Pillow", base, maxd);
            if (getenv("SEEDX_TEST_VERBOSE")) printf("    %-28s max %d mean %.4f\n", base, maxd, sum / (double)np);
        }
        files++;
        sx_image_free(&im);
        sx_image_free(&r);
    }
    closedir(d);
    CHECK(files >= 18);
}

/* Everything in the fuzz corpus (seeds + any crash input found and fixed):
 * decodes or fails cleanly; what decodes survives an encode/decode round trip. */
static void test_fuzz_corpus(void) {
    DIR *d = opendir("tests/fuzz/png");
    CHECK(d != NULL);
    if (!d) return;
    struct dirent *e;
    int files = 0, decoded = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[512];
        snprintf(p, sizeof p, "tests/fuzz/png/%s", e->d_name);
        sx_image im;
        files++;
        if (sx_image_load_rgb(p, &im) != 0) {
            CHECKF(strstr(sx_errmsg(), e->d_name) != NULL, "%s: error does not name the file: %s", p, sx_errmsg());
            continue;
        }
        decoded++;
        uint8_t *png;
        size_t n;
        sx_image back;
        CHECK_OK(sx_png_encode(&im, &png, &n));
        CHECK_OK(sx_image_decode_rgb(png, n, p, &back));
        CHECKF(back.data && !memcmp(back.data, im.data, (size_t)im.w * im.h * 3), "%s: round trip", p);
        sx_image_free(&back);
        free(png);
        sx_image_free(&im);
    }
    closedir(d);
    CHECK(files >= 50 && decoded >= 40);
}

/* Boxes as the official grounding visualisation draws them: OpenCV 4.9's
 * cv2.rectangle(..., (0, 255, 0), 2) on random backgrounds, every border
 * crossed, degenerate and 1-pixel cases (tests/fixtures/draw/boxes.gguf from
 * scripts/fixtures_draw.py): byte-identical. */
static void test_draw_box_matches_opencv(void) {
    sx_gguf *g = NULL;
    CHECK_OK(sx_gguf_open("tests/fixtures/draw/boxes.gguf", &g));
    if (!g) return;
    int64_t n = sx_meta_int_or(g, "draw.n_cases", 0);
    CHECK(n >= 40);
    const uint8_t green[3] = {0, 255, 0};
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        char key[64];
        int64_t v[6];
        snprintf(key, sizeof key, "draw.case.%lld", (long long)i);
        for (int k = 0; k < 6; k++) CHECK_OK(sx_meta_arr_int(g, key, (uint64_t)k, &v[k]));
        int w = (int)v[0], h = (int)v[1];
        snprintf(key, sizeof key, "draw.%lld.in", (long long)i);
        const float *in = sx_get_f32(g, key, SX_SHAPE(h, w, 3));
        snprintf(key, sizeof key, "draw.%lld.out", (long long)i);
        const float *want = sx_get_f32(g, key, SX_SHAPE(h, w, 3));
        if (!in || !want) {
            CHECKF(0, "case %lld: %s", (long long)i, sx_errmsg());
            continue;
        }
        sx_image im = {w, h, 3, malloc((size_t)w * h * 3)};
        for (int64_t j = 0; j < (int64_t)w * h * 3; j++) im.data[j] = (uint8_t)in[j];
        CHECK_OK(sx_image_draw_box(&im, (int)v[2], (int)v[3], (int)v[4], (int)v[5], green));
        int diff = 0;
        for (int64_t j = 0; j < (int64_t)w * h * 3; j++) diff += im.data[j] != (uint8_t)want[j];
        if (diff) {
            bad++;
            fprintf(stderr, "  case %lld: %dx%d box (%lld,%lld)-(%lld,%lld): %d bytes differ\n",
                    (long long)i, w, h, (long long)v[2], (long long)v[3], (long long)v[4],
                    (long long)v[5], diff);
        }
        free(im.data);
    }
    CHECKF(bad == 0, "%d of %lld boxes differ from OpenCV", bad, (long long)n);
    sx_image gray = {4, 4, 1, (uint8_t[16]){0}};
    CHECK(sx_image_draw_box(&gray, 0, 0, 2, 2, green) != 0);
    sx_gguf_close(g);
}

int main(void) {
    TEST_INIT();
    RUN(test_zlib_round_trip);
    RUN(test_png_decode_matches_pillow);
    RUN(test_corrupt_files);
    RUN(test_png_limits);
    RUN(test_cmyk_to_rgb);
    RUN(test_resize_matches_pillow);
    RUN(test_resize_shared_references);
    RUN(test_resize_same_size_and_errors);
    RUN(test_anyres_spec_examples);
    RUN(test_anyres_matches_official);
    RUN(test_recon_and_edit_preprocessing);
    RUN(test_png_encode_round_trip);
    RUN(test_save_and_ppm);
    RUN(test_exif_transpose);
    RUN(test_jpeg_through_image_io);
    RUN(test_fuzz_corpus);
    RUN(test_draw_box_matches_opencv);
    return TEST_DONE();
}
