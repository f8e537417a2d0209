/* tests/test_jpeg.c - the JPEG decoder against Pillow 9.4 / libjpeg-turbo.
 *
 * - every JPEG in the shared data (images/jpeg, images/photo, images/misc)
 *   decoded and compared with the Pillow/libjpeg-turbo references in
 *   shared/data/reference/jpeg (per-file max and mean abs difference; fails
 *   above 1), CMYK files against Pillow's CMYK bytes (tests/fixtures/jpeg);
 * - the generated fixtures of scripts/fixtures_jpeg.py (odd sampling
 *   factors, non-interleaved scans, restarts, progressive, CMYK/YCCK,
 *   16-bit tables, ...) against Pillow's decode of the same files;
 * - corrupt files, every truncation of small files and many of big ones,
 *   single-byte corruptions and fuzzer finds: clean errors naming the file;
 * - decompression-bomb limits and EXIF orientation. */
#include <stdint.h>

#include "image_io.h"
#include "test.h"

int sx_jpeg_decode(const uint8_t *buf, size_t n, const char *name, sx_image *out,
                   int *pil_channels);
int sx_jpeg_info(const uint8_t *buf, size_t n, const char *name, int *w, int *h,
                 int *channels);
int sx_jpeg_exif_orientation(const uint8_t *buf, size_t n);

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
    if (b && sz > 0 && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = sz > 0 ? (size_t)sz : 0;
    return b;
}

/* PGM (P5), PPM (P6) or PAM (P7, DEPTH 1/3/4), maxval 255 */
static int read_pnm(const char *path, sx_image *im) {
    size_t n;
    uint8_t *b = read_all(path, &n);
    if (!b) return -1;
    int w = 0, h = 0, c = 0, maxv = 0;
    size_t pos = 0;
    if (n > 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6')) {
        c = b[1] == '5' ? 1 : 3;
        int vals[3], k = 0;
        pos = 2;
        while (k < 3 && pos < n) {
            while (pos < n && (b[pos] == ' ' || b[pos] == '\n' || b[pos] == '\r' || b[pos] == '\t')) pos++;
            if (pos < n && b[pos] == '#') {
                while (pos < n && b[pos] != '\n') pos++;
                continue;
            }
            int v = 0;
            while (pos < n && b[pos] >= '0' && b[pos] <= '9') v = v * 10 + (b[pos++] - '0');
            vals[k++] = v;
        }
        pos++; /* single whitespace */
        w = vals[0];
        h = vals[1];
        maxv = vals[2];
    } else if (n > 2 && b[0] == 'P' && b[1] == '7') {
        char line[128];
        pos = 3;
        for (;;) {
            size_t l = 0;
            while (pos < n && b[pos] != '\n' && l < sizeof line - 1) line[l++] = (char)b[pos++];
            line[l] = 0;
            pos++;
            if (!strcmp(line, "ENDHDR") || pos >= n) break;
            sscanf(line, "WIDTH %d", &w);
            sscanf(line, "HEIGHT %d", &h);
            sscanf(line, "DEPTH %d", &c);
            sscanf(line, "MAXVAL %d", &maxv);
        }
    }
    size_t need = (size_t)w * h * c;
    if (maxv != 255 || w <= 0 || h <= 0 || pos + need > n) {
        free(b);
        return -1;
    }
    im->w = w;
    im->h = h;
    im->channels = c;
    im->data = malloc(need);
    memcpy(im->data, b + pos, need);
    free(b);
    return 0;
}

/* Decodes `jpg` and compares with `ref`; prints max/mean abs difference. */
static void compare_file(const char *jpg, const char *ref) {
    size_t n;
    uint8_t *b = read_all(jpg, &n);
    CHECKF(b != NULL, "cannot read %s", jpg);
    if (!b) return;
    sx_image im, want;
    int pc = 0;
    int rc = sx_jpeg_decode(b, n, jpg, &im, &pc);
    CHECKF(rc == 0, "%s", sx_errmsg());
    if (rc == 0 && read_pnm(ref, &want) == 0) {
        CHECKF(im.w == want.w && im.h == want.h && im.channels == want.channels && pc == im.channels,
               "%s: got %dx%dx%d, want %dx%dx%d", jpg, im.w, im.h, im.channels, want.w, want.h,
               want.channels);
        if (im.w == want.w && im.h == want.h && im.channels == want.channels) {
            size_t cnt = (size_t)im.w * im.h * im.channels, ndiff = 0;
            int maxd = 0;
            double sum = 0;
            for (size_t i = 0; i < cnt; i++) {
                int dd = abs((int)im.data[i] - (int)want.data[i]);
                if (dd > maxd) maxd = dd;
                sum += dd;
                ndiff += dd != 0;
            }
            const char *base = strrchr(jpg, '/');
            printf("    %-44s %5dx%-5d c=%d  max %d  mean %.6f  (%zu values differ)\n",
                   base ? base + 1 : jpg, im.w, im.h, im.channels, maxd, sum / (double)cnt, ndiff);
            CHECKF(maxd <= 1, "%s: max abs difference %d > 1 vs %s", jpg, maxd, ref);
        }
        free(want.data);
    } else if (rc == 0) {
        CHECKF(0, "cannot read reference %s", ref);
    }
    if (rc == 0) free(im.data);
    free(b);
}

/* ---- SHA-256 (FIPS 180-4), for the MANIFEST's digests of Pillow's RGB bytes */
typedef struct { uint32_t h[8]; uint8_t buf[64]; uint64_t len; size_t fill; } t_sha;
static uint32_t t_ror(uint32_t x, int r) { return x >> r | x << (32 - r); }
static void t_sha_block(t_sha *s, const uint8_t *p) {
    static const uint32_t K[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = t_ror(w[i - 15], 7) ^ t_ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = t_ror(w[i - 2], 17) ^ t_ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(a, s->h, sizeof a);
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = t_ror(a[4], 6) ^ t_ror(a[4], 11) ^ t_ror(a[4], 25);
        uint32_t ch = (a[4] & a[5]) ^ (~a[4] & a[6]);
        uint32_t t1 = a[7] + S1 + ch + K[i] + w[i];
        uint32_t S0 = t_ror(a[0], 2) ^ t_ror(a[0], 13) ^ t_ror(a[0], 22);
        uint32_t mj = (a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]);
        memmove(a + 1, a, 7 * sizeof *a);
        a[4] += t1;
        a[0] = t1 + S0 + mj;
    }
    for (int i = 0; i < 8; i++) s->h[i] += a[i];
}
static void t_sha_init(t_sha *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->fill = 0;
}
static void t_sha_add(t_sha *s, const uint8_t *p, size_t n) {
    s->len += n;
    while (n--) {
        s->buf[s->fill++] = *p++;
        if (s->fill == 64) {
            t_sha_block(s, s->buf);
            s->fill = 0;
        }
    }
}
static void t_sha_hex(t_sha *s, char out[65]) {
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80, z = 0, lenb[8];
    t_sha_add(s, &pad, 1);
    while (s->fill != 56) t_sha_add(s, &z, 1);
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    t_sha_add(s, lenb, 8);
    for (int i = 0; i < 8; i++) snprintf(out + 8 * i, 9, "%08x", s->h[i]);
}

/* Pillow's convert('RGB') of what the decoder gives: L replicated; CMYK by
 * Pillow's cmyk2rgb (x = 255 - k; c' = x - c*x/255 with its rounding). */
static void pil_rgb_digest(const sx_image *im, char hex[65]) {
    t_sha s;
    t_sha_init(&s);
    for (size_t i = 0; i < (size_t)im->w * im->h; i++) {
        const uint8_t *p = im->data + i * im->channels;
        uint8_t rgb[3];
        if (im->channels == 1) rgb[0] = rgb[1] = rgb[2] = p[0];
        else if (im->channels == 3) memcpy(rgb, p, 3);
        else {
            int nk = 255 - p[3];
            for (int c = 0; c < 3; c++) {
                int t = p[c] * nk + 128, v = nk - (((t >> 8) + t) >> 8);
                rgb[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
        t_sha_add(&s, rgb, 3);
    }
    t_sha_hex(&s, hex);
}

/* the digest MANIFEST.md lists for `rel` (e.g. "images/photo/car.jpg") */
static int manifest_digest(const char *rel, char hex[65]) {
    char path[1024], line[2048], key[512];
    snprintf(path, sizeof path, "%s/data/MANIFEST.md", t_shared());
    snprintf(key, sizeof key, "| %s | ", rel);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int found = -1;
    int in_digests = 0;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "convert('RGB') digests")) in_digests = 1;
        if (!in_digests || strncmp(line, key, strlen(key))) continue;
        char *last = strrchr(line, '|');
        *last = 0;
        char *h = strrchr(line, '|');
        if (h && sscanf(h + 1, " %64s", hex) == 1 && strlen(hex) == 64) found = 0;
    }
    fclose(f);
    return found;
}

/* every shared JPEG: our decode, converted as Pillow converts it, has the
 * sha256 MANIFEST.md lists for Pillow's convert('RGB') bytes */
static void test_manifest_digests(void) {
    const char *files[] = {
        "images/jpeg/extraneous-data.jpg", "images/jpeg/grayscale_16x24_sampling2x2.jpg",
        "images/jpeg/hopper_16bit_qtables.jpg", "images/jpeg/hopper_gray.jpg",
        "images/jpeg/hopper_orientation_6.jpg", "images/jpeg/iptc.jpg",
        "images/jpeg/jpg-cmyk-1.jpg", "images/jpeg/jpg-progressive.jpg",
        "images/jpeg/jpg-size-15x15.jpg", "images/jpeg/jpg-size-17x17.jpg",
        "images/jpeg/jpg-size-1x1.jpg", "images/jpeg/non-interleaved-mcu.jpg",
        "images/jpeg/orientation_rectangle.jpg", "images/jpeg/pil_sample_cmyk.jpg",
        "images/jpeg/pil_sample_rgb.jpg", "images/jpeg/restarts.jpg", "images/jpeg/testorig.jpg",
        "images/jpeg/testimgari.jpg",
        "images/photo/car.jpg", "images/photo/men.jpg", "images/photo/hopper.jpg",
        "images/photo/flower.jpg"};
    int matched = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[1024], want[65], got[65];
        snprintf(path, sizeof path, "%s/data/%s", t_shared(), files[i]);
        CHECKF(manifest_digest(files[i], want) == 0, "no digest for %s in MANIFEST.md", files[i]);
        size_t n;
        uint8_t *b = read_all(path, &n);
        CHECKF(b != NULL, "cannot read %s", path);
        if (!b) continue;
        sx_image im;
        int rc = sx_jpeg_decode(b, n, path, &im, NULL);
        CHECKF(rc == 0, "%s", sx_errmsg());
        if (rc == 0) {
            pil_rgb_digest(&im, got);
            CHECKF(!strcmp(got, want), "%s: sha256 of RGB bytes %s, Pillow's %s", files[i], got, want);
            matched += !strcmp(got, want);
            free(im.data);
        }
        free(b);
    }
    printf("    %d of %zu files bit-identical to Pillow's convert('RGB') (sha256)\n", matched,
           sizeof files / sizeof *files);
}

static const char *shared_jpegs[] = {
    "images/jpeg/extraneous-data",  "images/jpeg/grayscale_16x24_sampling2x2",
    "images/jpeg/hopper_16bit_qtables", "images/jpeg/hopper_gray",
    "images/jpeg/hopper_orientation_6", "images/jpeg/iptc",
    "images/jpeg/jpg-progressive",  "images/jpeg/jpg-size-15x15",
    "images/jpeg/jpg-size-17x17",   "images/jpeg/jpg-size-1x1",
    "images/jpeg/non-interleaved-mcu", "images/jpeg/orientation_rectangle",
    "images/jpeg/pil_sample_rgb",   "images/jpeg/restarts",
    "images/jpeg/testorig",         "images/jpeg/testimgari",
    "images/photo/men",             "images/photo/hopper",
    "images/photo/flower",
};

static void test_shared_references(void) {
    char jpg[1024], ref[1024];
    for (size_t i = 0; i < sizeof shared_jpegs / sizeof *shared_jpegs; i++) {
        const char *base = strrchr(shared_jpegs[i], '/') + 1;
        snprintf(jpg, sizeof jpg, "%s/data/%s.jpg", t_shared(), shared_jpegs[i]);
        snprintf(ref, sizeof ref, "%s/data/reference/jpeg/%s.ppm", t_shared(), base);
        FILE *f = fopen(ref, "rb");
        if (!f) snprintf(ref, sizeof ref, "%s/data/reference/jpeg/%s.pgm", t_shared(), base);
        else fclose(f);
        compare_file(jpg, ref);
    }
}

/* CMYK files: Pillow's CMYK bytes (its "CMYK;I" inversion of libjpeg's output) */
static void test_shared_cmyk(void) {
    char jpg[1024];
    const char *names[] = {"jpg-cmyk-1", "pil_sample_cmyk"};
    for (int i = 0; i < 2; i++) {
        char ref[256];
        snprintf(jpg, sizeof jpg, "%s/data/images/jpeg/%s.jpg", t_shared(), names[i]);
        snprintf(ref, sizeof ref, "tests/fixtures/jpeg/shared-%s.pam", names[i]);
        compare_file(jpg, ref);
    }
}

/* generated fixtures: tests/fixtures/jpeg/list.txt names "<file>" (a JPEG
 * <file>.jpg whose Pillow decode is <file>.pam) or "<file> sha256 <hex> <w>
 * <h> <c>" (corrupted JPEGs that Pillow decodes: the digest of its bytes) */
static void test_generated_fixtures(void) {
    FILE *f = fopen("tests/fixtures/jpeg/list.txt", "r");
    CHECKF(f != NULL, "missing tests/fixtures/jpeg/list.txt (run scripts/fixtures_jpeg.py)");
    if (!f) return;
    char line[512];
    int count = 0, corrupt = 0, corrupt_same = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        char name[256], want[65], jpg[512];
        int w = 0, h = 0, c = 0;
        if (sscanf(line, "%255s sha256 %64s %d %d %d", name, want, &w, &h, &c) == 5) {
            snprintf(jpg, sizeof jpg, "tests/fixtures/jpeg/%s.jpg", name);
            size_t n;
            uint8_t *b = read_all(jpg, &n);
            CHECKF(b != NULL, "cannot read %s", jpg);
            if (!b) continue;
            sx_image im;
            int rc = sx_jpeg_decode(b, n, jpg, &im, NULL);
            CHECKF(rc == 0, "%s: Pillow decodes it, we fail: %s", jpg, sx_errmsg());
            if (rc == 0) {
                t_sha sh;
                char got[65];
                t_sha_init(&sh);
                t_sha_add(&sh, im.data, (size_t)im.w * im.h * im.channels);
                t_sha_hex(&sh, got);
                CHECKF(im.w == w && im.h == h && im.channels == c && !strcmp(got, want),
                       "%s: %dx%dx%d sha256 %s, Pillow %dx%dx%d %s", jpg, im.w, im.h, im.channels, got,
                       w, h, c, want);
                corrupt_same += !strcmp(got, want);
                free(im.data);
            }
            free(b);
            corrupt++;
            continue;
        }
        char ref[512];
        snprintf(jpg, sizeof jpg, "tests/fixtures/jpeg/%.200s.jpg", line);
        snprintf(ref, sizeof ref, "tests/fixtures/jpeg/%.200s.pam", line);
        compare_file(jpg, ref);
        count++;
    }
    fclose(f);
    printf("    %d corrupted files that Pillow decodes: %d bit-identical\n", corrupt, corrupt_same);
    CHECKF(count >= 40 && corrupt >= 40, "only %d + %d generated fixtures", count, corrupt);
}

/* a decode that must fail with a message naming the file */
static void expect_error(const uint8_t *b, size_t n, const char *name, const char *must_contain) {
    sx_image im;
    sx_err_clear();
    int rc = sx_jpeg_decode(b, n, name, &im, NULL);
    CHECKF(rc != 0, "%s (%zu bytes): decoded although it should fail", name, n);
    if (rc == 0) {
        free(im.data);
        return;
    }
    CHECKF(im.data == NULL, "%s: output left allocated after an error", name);
    CHECKF(strstr(sx_errmsg(), name) != NULL, "error does not name the file: %s", sx_errmsg());
    if (must_contain)
        CHECKF(strstr(sx_errmsg(), must_contain) != NULL, "%s: error '%s' lacks '%s'", name,
               sx_errmsg(), must_contain);
}

static void test_corrupt_files(void) {
    struct { const char *file, *msg; } cases[] = {
        {"images/corrupt/truncated_jpeg.jpg", "truncated"},
        {"images/corrupt/missing-sof.jpg", "truncated marker segment"},
        {"images/corrupt/missing-sos.jpg", "missing SOS"},
        {"images/corrupt/empty.jpg", "empty"},
        {"images/misc/cat_dog.jpeg", "not a JPEG"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/data/%s", t_shared(), cases[i].file);
        size_t n;
        uint8_t *b = read_all(path, &n);
        CHECKF(b != NULL, "cannot read %s", path);
        if (!b) continue;
        expect_error(b, n, path, cases[i].msg);
        sx_err_clear();
        if (!sx_jpeg_decode(b, n, path, &(sx_image){0}, NULL)) CHECK(0);
        printf("    %-40s -> %s\n", cases[i].file, sx_errmsg());
        free(b);
    }
}

/* Every prefix of small files, ~150 prefixes of larger ones: an error each
 * time (libjpeg would wait for more data; Pillow reports a truncated file),
 * never a crash. */
static void test_truncations(void) {
    const char *files[] = {"images/jpeg/jpg-progressive.jpg", "images/jpeg/non-interleaved-mcu.jpg",
                           "images/jpeg/restarts.jpg", "images/jpeg/hopper_gray.jpg",
                           "images/jpeg/testimgari.jpg", "images/jpeg/grayscale_16x24_sampling2x2.jpg",
                           "images/jpeg/pil_sample_cmyk.jpg", "images/photo/men.jpg",
                           "images/photo/car.jpg", "images/jpeg/extraneous-data.jpg"};
    long tested = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/data/%s", t_shared(), files[i]);
        size_t n;
        uint8_t *b = read_all(path, &n);
        CHECKF(b != NULL, "cannot read %s", path);
        if (!b) continue;
        CHECK(n >= 2 && b[n - 2] == 0xFF && b[n - 1] == 0xD9);
        size_t step = n <= 2000 ? 1 : n / 150;
        int fails_before = t_cur_fail_;
        /* the last 8 bytes are spared: a single-scan image whose data is
         * complete may decode without its tail (EOI), in Pillow too */
        for (size_t len = 0; len + 8 < n && t_cur_fail_ - fails_before < 5; len += step) {
            uint8_t *c = malloc(len ? len : 1); /* exact-size copy: ASan sees overreads */
            memcpy(c, b, len);
            expect_error(c, len, path, NULL);
            free(c);
            tested++;
        }
        free(b);
    }
    printf("    %ld truncated inputs rejected\n", tested);
}

/* Flipped bytes: must decode or fail cleanly (ASan/UBSan catch the rest). */
static void test_corruptions(void) {
    char path[1024];
    const char *files[] = {"images/jpeg/jpg-progressive.jpg", "images/jpeg/restarts.jpg",
                           "images/jpeg/non-interleaved-mcu.jpg", "images/jpeg/grayscale_16x24_sampling2x2.jpg"};
    long ok = 0, err = 0;
    uint32_t rng = 12345;
    for (size_t fi = 0; fi < sizeof files / sizeof *files; fi++) {
        snprintf(path, sizeof path, "%s/data/%s", t_shared(), files[fi]);
        size_t n;
        uint8_t *b = read_all(path, &n);
        CHECK(b != NULL);
        if (!b) continue;
        uint8_t *c = malloc(n);
        for (int it = 0; it < 1500; it++) {
            memcpy(c, b, n);
            int flips = 1 + it % 3;
            for (int k = 0; k < flips; k++) {
                rng = rng * 1664525u + 1013904223u;
                size_t at = (rng >> 8) % n;
                rng = rng * 1664525u + 1013904223u;
                c[at] = (uint8_t)(it % 2 ? c[at] ^ (1u << ((rng >> 8) & 7)) : (rng >> 16));
            }
            sx_image im;
            if (sx_jpeg_decode(c, n, path, &im, NULL) == 0) {
                CHECK(im.w > 0 && im.h > 0 && im.data);
                free(im.data);
                ok++;
            } else {
                CHECKF(strstr(sx_errmsg(), path) != NULL, "error does not name the file: %s", sx_errmsg());
                err++;
            }
        }
        free(c);
        free(b);
    }
    printf("    corrupted inputs: %ld decoded, %ld rejected\n", ok, err);
}

/* inputs that once crashed the decoder, and corrupted files that Pillow
 * refuses (tests/fixtures/jpeg/crashes.txt: "<file> <substring of the
 * expected error, or ERROR for any error>") */
static void test_crash_regressions(void) {
    FILE *f = fopen("tests/fixtures/jpeg/crashes.txt", "r");
    CHECKF(f != NULL, "missing tests/fixtures/jpeg/crashes.txt");
    if (!f) return;
    char line[512];
    int count = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        char *msg = strchr(line, ' ');
        CHECKF(msg != NULL, "bad line '%s'", line);
        if (!msg) continue;
        *msg++ = 0;
        char path[600];
        snprintf(path, sizeof path, "tests/fixtures/jpeg/%s", line);
        size_t n;
        uint8_t *b = read_all(path, &n);
        CHECKF(b != NULL, "cannot read %s", path);
        if (!b) continue;
        expect_error(b, n, path, strcmp(msg, "ERROR") ? msg : NULL);
        free(b);
        count++;
    }
    fclose(f);
    CHECK(count >= 2);
    printf("    %d inputs rejected as expected\n", count);
}

/* headers that libjpeg (and so Pillow) refuses: refused here too, by name */
static void test_unsupported_headers(void) {
    size_t n;
    uint8_t *b = read_all("tests/fixtures/jpeg/enc_y4x2.jpg", &n);
    CHECK(b != NULL);
    if (!b) return;
    size_t sof = 0;
    for (size_t i = 2; i + 19 < n; i++)
        if (b[i] == 0xFF && b[i + 1] == 0xC0) {
            sof = i;
            break;
        }
    CHECK(sof > 0 && b[sof + 9] == 3 && b[sof + 11] == 0x42);
    uint8_t *m = malloc(n);
    struct { int off, val; const char *msg; } cases[] = {
        {11, 0x43, "blocks per MCU"},     /* Y 4x3 + 2 chroma blocks = 14 > 10 */
        {14, 0x31, "fractional"},         /* Cb 3x1 against Y 4x2 */
        {11, 0x52, "sampling factors"},   /* Y 5x2 */
        {4, 12, "precision 12"},          /* 12-bit samples */
    };
    for (int i = 0; i < 4; i++) {
        memcpy(m, b, n);
        m[sof + cases[i].off] = (uint8_t)cases[i].val;
        expect_error(m, n, "hdr.jpg", cases[i].msg);
    }
    /* a two-component frame: Pillow cannot represent it */
    memcpy(m, b, n);
    m[sof + 2] = 0;
    m[sof + 3] = 14; /* length 2+6+2*3 */
    m[sof + 9] = 2;
    expect_error(m, n, "two.jpg", "2-component");
    /* SOF3 (lossless) */
    memcpy(m, b, n);
    m[sof + 1] = 0xC3;
    expect_error(m, n, "lossless.jpg", "lossless");
    free(m);
    free(b);
}

static void test_limits(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/data/images/photo/hopper.jpg", t_shared());
    size_t n;
    uint8_t *b = read_all(path, &n);
    CHECK(b != NULL);
    if (!b) return;
    size_t sof = 0;
    for (size_t i = 2; i + 9 < n; i++)
        if (b[i] == 0xFF && b[i + 1] == 0xC0) {
            sof = i;
            break;
        }
    CHECK(sof > 0);
    int w = 0, h = 0, c = 0;
    CHECK_OK(sx_jpeg_info(b, n, "hopper", &w, &h, &c));
    CHECK(w == 128 && h == 128 && c == 3);
    uint8_t *m = malloc(n);
    struct { int w, h; const char *msg; } cases[] = {{16385, 128, "16384"}, {128, 20000, "16384"},
                                                      {0, 128, "empty"}, {128, 0, "DNL"}};
    for (int i = 0; i < 4; i++) {
        memcpy(m, b, n);
        m[sof + 5] = (uint8_t)(cases[i].h >> 8);
        m[sof + 6] = (uint8_t)cases[i].h;
        m[sof + 7] = (uint8_t)(cases[i].w >> 8);
        m[sof + 8] = (uint8_t)cases[i].w;
        expect_error(m, n, "bomb.jpg", cases[i].msg);
    }
    /* 16384x16384 is allowed by the limits: this one fails later, as its
     * data ends (end of file, no EOI) long before the image does */
    memcpy(m, b, n);
    m[sof + 5] = m[sof + 7] = 0x40;
    m[sof + 6] = m[sof + 8] = 0;
    expect_error(m, n - 2, "big.jpg", "truncated");
    free(m);
    free(b);
}

static void test_exif_orientation(void) {
    struct { const char *file; int want; } cases[] = {
        {"images/jpeg/hopper_orientation_6.jpg", 6}, {"images/jpeg/orientation_rectangle.jpg", 8},
        {"images/photo/hopper.jpg", 1}, {"images/photo/flower.jpg", 1}, {"images/photo/men.jpg", 1},
        {"images/jpeg/iptc.jpg", 1}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/data/%s", t_shared(), cases[i].file);
        size_t n;
        uint8_t *b = read_all(path, &n);
        CHECK(b != NULL);
        if (!b) continue;
        int o = sx_jpeg_exif_orientation(b, n);
        CHECKF(o == cases[i].want, "%s: orientation %d, want %d", cases[i].file, o, cases[i].want);
        free(b);
    }
    CHECK(sx_jpeg_exif_orientation(NULL, 0) == 1);
}

int main(void) {
    TEST_INIT();
    RUN(test_shared_references);
    RUN(test_manifest_digests);
    RUN(test_shared_cmyk);
    RUN(test_generated_fixtures);
    RUN(test_corrupt_files);
    RUN(test_truncations);
    RUN(test_corruptions);
    RUN(test_crash_regressions);
    RUN(test_unsupported_headers);
    RUN(test_limits);
    RUN(test_exif_orientation);
    return TEST_DONE();
}
