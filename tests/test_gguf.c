/* tests/test_gguf.c - the weight container (gguf.c).
 *
 * roundtrip.gguf is written by scripts/fixtures_gguf.py with our Python
 * writer (and checked there with the PyPI gguf reader); roundtrip_expected.gguf
 * holds the float32 values numpy dequantises from the same bytes. Corrupt
 * files are made here from the valid bytes, in a private temp directory. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

#define FIX "tests/fixtures/gguf/roundtrip.gguf"
#define FIX_EXP "tests/fixtures/gguf/roundtrip_expected.gguf"
#define LONG_NAME "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0.weight.long.key"

static char tmpdir[64];
static int tmp_seq;

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)sz;
    return b;
}

/* Writes bytes to a new file in tmpdir (mkstemp) and returns its path. */
static const char *put_tmp(const void *b, size_t n) {
    static char path[128];
    snprintf(path, sizeof path, "%s/case%03d_XXXXXX", tmpdir, tmp_seq++);
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    const uint8_t *p = b;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w <= 0) break;
        done += (size_t)w;
    }
    close(fd);
    return path;
}

static int n_fail_cases;

/* The file must not open; the message must name the file and contain `what`. */
static void expect_fail_path(const char *path, const char *what, const char *label) {
    sx_gguf *g = (sx_gguf *)(uintptr_t)1;
    sx_err_clear();
    int rc = sx_gguf_open(path, &g);
    const char *m = sx_errmsg();
    CHECKF(rc == -1 && g == NULL, "%s: opened (rc %d)", label, rc);
    CHECKF(strstr(m, path) != NULL, "%s: message lacks the path: %s", label, m);
    CHECKF(!what || strstr(m, what) != NULL, "%s: message lacks '%s': %s", label, what, m);
    if (getenv("SEEDX_TEST_VERBOSE")) printf("    %-28s %s\n", label, m);
    if (rc == 0) sx_gguf_close(g);
    else n_fail_cases++;
}

static void expect_fail(const uint8_t *b, size_t n, const char *what, const char *label) {
    const char *path = put_tmp(b, n);
    CHECKF(path != NULL, "mkstemp: %s", strerror(errno));
    if (path) {
        expect_fail_path(path, what, label);
        unlink(path);
    }
}

/* ---- locating fields in the valid bytes -------------------------------- */

static uint8_t *fix;
static size_t fix_n;

/* Offset of the u64 length in front of the string s (key or tensor name). */
static size_t str_at(const uint8_t *b, size_t n, const char *s) {
    size_t l = strlen(s);
    for (size_t i = 0; i + 8 + l <= n; i++) {
        uint64_t len;
        memcpy(&len, b + i, 8);
        if (len == l && !memcmp(b + i + 8, s, l)) return i;
    }
    fprintf(stderr, "string '%s' not in fixture\n", s);
    exit(1);
}
/* Tensor info fields of tensor `name`. */
static size_t ndim_at(const char *name) { return str_at(fix, fix_n, name) + 8 + strlen(name); }
static size_t dim_at(const char *name, int d) { return ndim_at(name) + 4 + 8 * (size_t)d; }
static size_t type_at(const char *name) {
    uint32_t nd;
    memcpy(&nd, fix + ndim_at(name), 4);
    return ndim_at(name) + 4 + 8 * nd;
}
static size_t offset_at(const char *name) { return type_at(name) + 4; }
/* The value type and the value of key/value `key`. */
static size_t kvtype_at(const char *key) { return str_at(fix, fix_n, key) + 8 + strlen(key); }
static size_t kvval_at(const char *key) { return kvtype_at(key) + 4; }

static uint8_t *copy_fix(void) {
    uint8_t *b = malloc(fix_n);
    memcpy(b, fix, fix_n);
    return b;
}
static void put32(uint8_t *b, size_t at, uint32_t v) { memcpy(b + at, &v, 4); }
static void put64(uint8_t *b, size_t at, uint64_t v) { memcpy(b + at, &v, 8); }

/* A copy with one u32/u64 patched, expected to fail with `what`. */
static void case32(size_t at, uint32_t v, const char *what, const char *label) {
    uint8_t *b = copy_fix();
    put32(b, at, v);
    expect_fail(b, fix_n, what, label);
    free(b);
}
static void case64(size_t at, uint64_t v, const char *what, const char *label) {
    uint8_t *b = copy_fix();
    put64(b, at, v);
    expect_fail(b, fix_n, what, label);
    free(b);
}

/* ---- round trip ---------------------------------------------------------- */

static int same_f32(const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t x, y;
        memcpy(&x, a + i, 4);
        memcpy(&y, b + i, 4);
        if (x != y && !(isnan(a[i]) && isnan(b[i]))) return 0;
    }
    return 1;
}

static void test_roundtrip_values(void) {
    sx_gguf *g = NULL, *e = NULL;
    CHECK_OK(sx_gguf_open(FIX, &g));
    CHECK_OK(sx_gguf_open(FIX_EXP, &e));
    if (!g || !e) goto done;
    CHECK(sx_gguf_version(g) == 3);
    CHECK(sx_gguf_alignment(g) == 64);
    CHECK(!strcmp(sx_gguf_path(g), FIX));
    CHECK(sx_gguf_n_tensors(g) == 11 && sx_gguf_n_tensors(e) == 11);
    int seen[5] = {0};
    for (int64_t i = 0; i < sx_gguf_n_tensors(e); i++) {
        const sx_tensor *x = sx_gguf_tensor_at(e, i);
        const sx_tensor *t = sx_gguf_find(g, x->name);
        CHECKF(t != NULL, "%s missing", x->name);
        if (!t) continue;
        CHECK(t == sx_gguf_tensor_at(g, i)); /* same order */
        CHECKF(t->ndim == x->ndim && !memcmp(t->shape, x->shape, sizeof t->shape[0] * t->ndim),
               "%s shape", t->name);
        CHECK(t->nelem == x->nelem);
        CHECK(t->nbytes == sx_type_nbytes(t->type, t->nelem));
        CHECK(t->offset % 64 == 0);
        float *y = calloc((size_t)t->nelem, 4);
        CHECK_OK(sx_tensor_to_f32(t, y));
        CHECKF(same_f32(y, x->data, t->nelem), "%s (%s) values differ from numpy", t->name,
               sx_type_name(t->type));
        const float *z = sx_get_f32(g, t->name, t->ndim, t->shape);
        CHECKF(z && same_f32(z, x->data, t->nelem), "%s sx_get_f32: %s", t->name, sx_errmsg());
        if (t->type == SX_F32) CHECK(z == t->data); /* no copy for F32 */
        else CHECK(z != t->data && z == sx_get_f32(g, t->name, t->ndim, t->shape));
        free(y);
        switch (t->type) {
        case SX_F32: seen[0]++; break;
        case SX_F16: seen[1]++; break;
        case SX_BF16: seen[2]++; break;
        case SX_Q8_0: seen[3]++; break;
        case SX_Q4_0: seen[4]++; break;
        }
    }
    CHECK(seen[0] == 3 && seen[1] == 2 && seen[2] == 2 && seen[3] == 2 && seen[4] == 2);
    /* types and PyTorch-order shapes as written by the fixture script */
    static const struct { const char *name; int type, ndim; int64_t s[4]; } want[] = {
        {"a.f32_1d", SX_F32, 1, {7}},          {"a.f32_4d", SX_F32, 4, {2, 3, 5, 7}},
        {"a.f16_2d", SX_F16, 2, {13, 3}},      {"a.bf16_3d", SX_BF16, 3, {2, 3, 5}},
        {"a.q8_0_2d", SX_Q8_0, 2, {3, 64}},    {"a.q8_0_3d", SX_Q8_0, 3, {2, 2, 32}},
        {"a.q4_0_1d", SX_Q4_0, 1, {96}},       {"a.q4_0_4d", SX_Q4_0, 4, {1, 2, 1, 32}},
        {LONG_NAME, SX_F16, 2, {5, 3}},        {"\xc3\xbcnicode.bias", SX_BF16, 1, {3}},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        const sx_tensor *t = sx_gguf_find(g, want[k].name);
        CHECKF(t && t->type == want[k].type && t->ndim == want[k].ndim &&
                   !memcmp(t->shape, want[k].s, 8 * (size_t)want[k].ndim),
               "%s: type/shape", want[k].name);
    }
    CHECK(strlen(LONG_NAME) > 64);
    int longest = 0;
    for (int64_t i = 0; i < sx_gguf_n_tensors(g); i++)
        if ((int)strlen(sx_gguf_tensor_at(g, i)->name) > longest)
            longest = (int)strlen(sx_gguf_tensor_at(g, i)->name);
    CHECK(longest == 299);
    /* known values: special floats survive F16/BF16; a zero Q8_0 block */
    const float *h = sx_get_f32(g, "a.f16_2d", SX_SHAPE(13, 3));
    CHECK(h && h[0] == 65504.0f && h[1] == 0 && signbit(h[1]) && isinf(h[4]) && h[4] > 0 &&
          isinf(h[5]) && h[5] < 0 && isnan(h[6]) && h[2] > 0 && h[2] < 1e-7f);
    const float *q = sx_get_f32(g, "a.q8_0_2d", SX_SHAPE(3, 64));
    int zero = 1;
    for (int j = 96; j < 128 && q; j++) zero &= q[j] == 0;
    CHECK(q && zero);
done:
    sx_gguf_close(g);
    sx_gguf_close(e);
}

static void test_metadata(void) {
    sx_gguf *g = NULL;
    CHECK_OK(sx_gguf_open(FIX, &g));
    if (!g) return;
    int64_t v;
    double d;
    const char *s;
    size_t len;
    CHECK(sx_gguf_n_kv(g) == 34);
    CHECK(!strcmp(sx_gguf_key_at(g, 0), "general.alignment"));
    CHECK(sx_gguf_key_at(g, 34) == NULL && sx_gguf_key_at(g, -1) == NULL);
    static const struct { const char *key; int type; int64_t v; } ints[] = {
        {"test.u8", SX_GGUF_U8, 200},           {"test.i8", SX_GGUF_I8, -100},
        {"test.u16", SX_GGUF_U16, 60000},       {"test.i16", SX_GGUF_I16, -30000},
        {"test.u32", SX_GGUF_U32, 4000000000},  {"test.i32", SX_GGUF_I32, -2000000000},
        {"test.bool", SX_GGUF_BOOL, 1},         {"test.bool_false", SX_GGUF_BOOL, 0},
        {"test.u64_small", SX_GGUF_U64, 123},   {"test.i64", SX_GGUF_I64, -(1LL << 40) - 1},
        {"general.alignment", SX_GGUF_U32, 64},
    };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        CHECKF(sx_gguf_kv_type(g, ints[k].key) == ints[k].type, "%s type", ints[k].key);
        v = 0;
        CHECK_OK(sx_meta_int(g, ints[k].key, &v));
        CHECKF(v == ints[k].v, "%s = %lld", ints[k].key, (long long)v);
        CHECK(sx_meta_int_or(g, ints[k].key, 7) == ints[k].v);
        if (ints[k].type != SX_GGUF_BOOL) {
            CHECK_OK(sx_meta_float(g, ints[k].key, &d));
            CHECK(d == (double)ints[k].v);
        }
    }
    CHECK_OK(sx_meta_float(g, "test.f32", &d));
    CHECK(d == 0.15625);
    CHECK_OK(sx_meta_float(g, "test.f64", &d));
    CHECK(d == 0.1);
    CHECK(sx_meta_float_or(g, "test.f64", 5) == 0.1 && sx_meta_float_or(g, "nope", 5) == 5);
    CHECK(sx_meta_int_or(g, "nope", -9) == -9 && sx_meta_int_or(g, "test.string", -9) == -9);
    CHECK_OK(sx_meta_str(g, "test.string", &s, &len));
    CHECK(len == 14 && !strcmp(s, "h\xc3\xa9llo \"gguf\"\n"));
    CHECK_OK(sx_meta_str(g, "test.string_nul", &s, &len));
    CHECK(len == 3 && !memcmp(s, "a\0b", 4));
    CHECK_OK(sx_meta_str(g, "test.string_empty", &s, &len));
    CHECK(len == 0 && s && s[0] == 0);
    CHECK_OK(sx_meta_str(g, "general.name", &s, &len));
    CHECK(!strcmp(s, "roundtrip"));
    CHECK(sx_meta_has(g, "test.key.longer.than.sixty.four.bytes.for.the.metadata.section.xyz"));
    CHECK(!sx_meta_has(g, "test") && sx_gguf_kv_type(g, "test") == -1);

    /* errors name the file and the key */
    CHECK(sx_meta_int(g, "test.u64", &v) == -1 && strstr(sx_errmsg(), "test.u64") &&
          strstr(sx_errmsg(), FIX));
    CHECK(sx_meta_int(g, "missing.key", &v) == -1 && strstr(sx_errmsg(), "'missing.key' not found"));
    CHECK(sx_meta_int(g, "test.string", &v) == -1 && strstr(sx_errmsg(), "has type str"));
    CHECK(sx_meta_float(g, "test.string", &d) == -1);
    CHECK(sx_meta_str(g, "test.u8", &s, &len) == -1 && strstr(sx_errmsg(), "has type u8"));

    /* arrays */
    int et;
    uint64_t n;
    static const struct { const char *key; int et; uint64_t n; int64_t first, last; } arrs[] = {
        {"test.arr.u8", SX_GGUF_U8, 3, 1, 255},
        {"test.arr.i8", SX_GGUF_I8, 3, -128, 127},
        {"test.arr.u16", SX_GGUF_U16, 2, 65535, 7},
        {"test.arr.i16", SX_GGUF_I16, 2, -32768, 32767},
        {"test.arr.u32", SX_GGUF_U32, 2, 4294967295LL, 0},
        {"test.arr.i32", SX_GGUF_I32, 3, 3, 5},
        {"test.arr.i64", SX_GGUF_I64, 2, -(1LL << 62), 1LL << 62},
        {"test.arr.bool", SX_GGUF_BOOL, 3, 1, 1},
        {"test.arr.long", SX_GGUF_I32, 100, 0, 99},
    };
    for (size_t k = 0; k < sizeof arrs / sizeof arrs[0]; k++) {
        CHECK_OK(sx_meta_arr(g, arrs[k].key, &et, &n));
        CHECKF(et == arrs[k].et && n == arrs[k].n, "%s: %d x %llu", arrs[k].key, et,
               (unsigned long long)n);
        int64_t a = 0, b = 0;
        CHECK_OK(sx_meta_arr_int(g, arrs[k].key, 0, &a));
        CHECK_OK(sx_meta_arr_int(g, arrs[k].key, arrs[k].n - 1, &b));
        CHECKF(a == arrs[k].first && b == arrs[k].last, "%s: %lld %lld", arrs[k].key,
               (long long)a, (long long)b);
        CHECK(sx_meta_arr_int(g, arrs[k].key, arrs[k].n, &a) == -1 &&
              strstr(sx_errmsg(), "out of range"));
    }
    CHECK(sx_meta_arr_int(g, "test.arr.u64", 1, &v) == 0 && v == 9);
    CHECK(sx_meta_arr_int(g, "test.arr.u64", 0, &v) == -1); /* 2^64-1 */
    CHECK_OK(sx_meta_arr_float(g, "test.arr.f32", 1, &d));
    CHECK(d == -1.25);
    CHECK_OK(sx_meta_arr_float(g, "test.arr.f64", 0, &d));
    CHECK(d == 0.1);
    CHECK_OK(sx_meta_arr_float(g, "test.arr.i16", 0, &d));
    CHECK(d == -32768);
    CHECK(sx_meta_arr_int(g, "test.arr.f32", 0, &v) == -1 && strstr(sx_errmsg(), "f32"));
    const uint8_t *u8 = sx_meta_arr_data(g, "test.arr.u8");
    CHECK(u8 && u8[0] == 1 && u8[1] == 2 && u8[2] == 255);
    const int32_t *i32 = sx_meta_arr_data(g, "test.arr.long");
    int ok = i32 != NULL;
    for (int k = 0; ok && k < 100; k++) {
        int32_t x;
        memcpy(&x, i32 + k, 4);
        ok = x == k;
    }
    CHECK(ok);
    CHECK(sx_meta_arr_data(g, "test.arr.str") == NULL);
    CHECK(sx_meta_arr_data(g, "test.u8") == NULL && strstr(sx_errmsg(), "expected an array"));
    CHECK_OK(sx_meta_arr(g, "test.arr.str", &et, &n));
    CHECK(et == SX_GGUF_STRING && n == 4);
    static const char *strs[] = {"alpha", "", ("\xc3\xbc" "ber")};
    for (int k = 0; k < 3; k++) {
        CHECK_OK(sx_meta_arr_str(g, "test.arr.str", (uint64_t)k, &s, &len));
        CHECK(!strcmp(s, strs[k]) && len == strlen(strs[k]));
    }
    CHECK_OK(sx_meta_arr_str(g, "test.arr.str", 3, &s, &len));
    CHECK(len == 100 && strspn(s, "x") == 100);
    CHECK(sx_meta_arr_str(g, "test.arr.str", 4, &s, &len) == -1);
    CHECK(sx_meta_arr_str(g, "test.arr.i32", 0, &s, &len) == -1);
    CHECK_OK(sx_meta_arr(g, "test.arr.empty", &et, &n));
    CHECK(et == SX_GGUF_I32 && n == 0);
    CHECK(sx_meta_arr_int(g, "test.arr.empty", 0, &v) == -1);
    CHECK_OK(sx_meta_arr(g, "test.arr.nested", &et, &n));
    CHECK(et == SX_GGUF_ARRAY && n == 4);
    CHECK(sx_meta_arr_int(g, "test.arr.nested", 0, &v) == -1);
    sx_gguf_close(g);
}

static void test_lookup_errors(void) {
    sx_gguf *g = NULL;
    CHECK_OK(sx_gguf_open(FIX, &g));
    if (!g) return;
    const char *m;
    const sx_tensor *t = sx_tensor_get(g, "a.f32_4d", SX_TYPE_BIT(SX_F32), SX_SHAPE(2, 3, 5, 7));
    CHECK(t && t->nelem == 210);
    CHECK(sx_tensor_get(g, "a.f32_4d", SX_ANY_FLOAT, SX_SHAPE(-1, 3, -1, 7)) == t);
    CHECK(sx_tensor_get(g, "a.f32_4d", SX_ANY_FLOAT, SX_SHAPE(2, 3, 5, 8)) == NULL);
    m = sx_errmsg();
    CHECKF(strstr(m, FIX ": tensor 'a.f32_4d' has shape [2,3,5,7], expected [2,3,5,8]"), "%s", m);
    CHECK(sx_tensor_get(g, "a.f32_1d", SX_ANY_FLOAT, SX_SHAPE(7, -1)) == NULL);
    m = sx_errmsg();
    CHECKF(strstr(m, "'a.f32_1d' has shape [7], expected [7,*]"), "%s", m);
    CHECK(sx_tensor_get(g, "a.f16_2d", SX_TYPE_BIT(SX_F32) | SX_TYPE_BIT(SX_BF16),
                        SX_SHAPE(13, 3)) == NULL);
    m = sx_errmsg();
    CHECKF(strstr(m, FIX ": tensor 'a.f16_2d' has type F16, expected one of F32|BF16"), "%s", m);
    CHECK(sx_tensor_get(g, "a.q4_0_1d", SX_ANY_FLOAT, SX_SHAPE(96)) == NULL);
    CHECKF(strstr(sx_errmsg(), "has type Q4_0, expected one of F32|F16|BF16"), "%s", sx_errmsg());
    CHECK(sx_tensor_get(g, "no.such.tensor", SX_ANY_TYPE, SX_SHAPE(1)) == NULL);
    m = sx_errmsg();
    CHECKF(strstr(m, FIX ": tensor 'no.such.tensor' not found"), "%s", m);
    CHECK(sx_get_f32(g, "no.such.tensor", SX_SHAPE(1)) == NULL);
    CHECK(sx_get_f32(g, "a.q8_0_3d", SX_SHAPE(2, 2, 31)) == NULL);
    CHECKF(strstr(sx_errmsg(), "has shape [2,2,32], expected [2,2,31]"), "%s", sx_errmsg());
    CHECK(sx_tensor_get(g, "a.f32_1d", SX_ANY_TYPE, 0, NULL) == NULL);
    CHECK(sx_tensor_get(g, "a.f32_1d", SX_ANY_TYPE, 1, NULL) == NULL);
    /* dims are int64_t whatever the caller's type: an int stays itself, no wildcard guessing */
    int seven = 7;
    CHECK(sx_tensor_get(g, "a.f32_1d", SX_ANY_TYPE, SX_SHAPE(seven)) != NULL);
    CHECK(sx_tensor_get(g, "a.f32_1d", SX_ANY_TYPE, SX_SHAPE(0xffffffffLL)) == NULL);
    CHECK(sx_tensor_get(g, "a.f32_1d", SX_ANY_TYPE, SX_SHAPE(1, 1, 1, 1, 1)) == NULL);
    CHECK(sx_tensor_get(NULL, "a", SX_ANY_TYPE, SX_SHAPE(1)) == NULL);
    CHECK(sx_gguf_find(g, "no.such.tensor") == NULL && sx_gguf_find(g, NULL) == NULL);
    CHECK(sx_gguf_tensor_at(g, 11) == NULL && sx_gguf_tensor_at(g, -1) == NULL);
    CHECK(sx_tensor_to_f32(NULL, NULL) == -1);
    sx_gguf_close(g);
}

static void test_types(void) {
    CHECK(!strcmp(sx_type_name(SX_F32), "F32") && !strcmp(sx_type_name(SX_BF16), "BF16") &&
          !strcmp(sx_type_name(SX_Q8_0), "Q8_0") && !strcmp(sx_type_name(SX_Q4_0), "Q4_0") &&
          !strcmp(sx_type_name(3), "?"));
    CHECK(sx_type_nbytes(SX_F32, 7) == 28 && sx_type_nbytes(SX_F16, 7) == 14 &&
          sx_type_nbytes(SX_BF16, 3) == 6 && sx_type_nbytes(SX_Q8_0, 64) == 68 &&
          sx_type_nbytes(SX_Q4_0, 96) == 54);
    CHECK(sx_type_nbytes(SX_Q8_0, 33) == 0 && sx_type_nbytes(SX_F32, -1) == 0 &&
          sx_type_nbytes(99, 4) == 0 && sx_type_nbytes(SX_F32, INT64_MAX) == 0);
    /* hand-made blocks: Q8_0 d=0.5 (f16 0x3800), Q4_0 d=2 (f16 0x4000) */
    uint8_t q8[34] = {0x00, 0x38}, q4[18] = {0x00, 0x40};
    for (int j = 0; j < 32; j++) q8[2 + j] = (uint8_t)(int8_t)(j - 16);
    for (int j = 0; j < 16; j++) q4[2 + j] = (uint8_t)(j | (15 - j) << 4);
    sx_tensor t8 = {.name = "q8", .type = SX_Q8_0, .ndim = 1, .shape = {32}, .nelem = 32,
                    .nbytes = 34, .data = q8};
    sx_tensor t4 = {.name = "q4", .type = SX_Q4_0, .ndim = 1, .shape = {32}, .nelem = 32,
                    .nbytes = 18, .data = q4};
    float y[32];
    CHECK_OK(sx_tensor_to_f32(&t8, y));
    int ok = 1;
    for (int j = 0; j < 32; j++) ok &= y[j] == 0.5f * (float)(j - 16);
    CHECK(ok);
    CHECK_OK(sx_tensor_to_f32(&t4, y));
    ok = 1;
    for (int j = 0; j < 16; j++) ok &= y[j] == 2.0f * (float)(j - 8) && y[j + 16] == 2.0f * (float)(7 - j);
    CHECK(ok);
    t4.nelem = 31;
    CHECK(sx_tensor_to_f32(&t4, y) == -1);
}

/* The listing of `seedx inspect` (front-end) and the metadata text it is made
 * of (sx_gguf_kv_text, library). */
static void test_print(void) {
    sx_gguf *g = NULL;
    CHECK_OK(sx_gguf_open(FIX, &g));
    if (!g) return;
    for (int all = 0; all < 2; all++) {
        /* every value's text, one per line */
        char *vals = calloc(1, 1);
        size_t vn = 0;
        for (int64_t i = 0; i < sx_gguf_n_kv(g) && vals; i++) {
            char *v = sx_gguf_kv_text(g, i, all);
            CHECKF(v != NULL, "%s", sx_errmsg());
            if (!v) continue;
            size_t l = strlen(v);
            char *nv = realloc(vals, vn + l + 2);
            if (nv) {
                memcpy(nv + vn, v, l);
                nv[vn + l] = '\n';
                nv[vn + l + 1] = 0;
                vn += l + 1;
            }
            vals = nv;
            free(v);
        }
        CHECK(vals != NULL);
        if (vals) {
            CHECK(strstr(vals, "\n4000000000\n") != NULL);
            CHECK(strstr(vals, "[\"alpha\", \"\", ") != NULL);
            CHECK(strstr(vals, "\n[[1, 2], [\"in\", \"ner\"], [[]], [1.5]]\n") != NULL);
            if (!all) CHECK(strstr(vals, "\n[0, 1, 2, 3, 4, 5, 6, 7, ... 92 more]\n") != NULL);
            else CHECK(strstr(vals, "97, 98, 99]\n") != NULL && !strstr(vals, "more]"));
        }
        free(vals);
        /* the whole listing, through the command line */
        char out[512], cmd[1024];
        snprintf(out, sizeof out, "%s/test_gguf_inspect.txt", t_build());
        snprintf(cmd, sizeof cmd, "./seedx inspect %s" FIX " > %s", all ? "--all " : "", out);
        CHECK(system(cmd) == 0);
        size_t n = 0;
        char *s = (char *)slurp(out, &n);
        CHECK(s != NULL);
        if (!s) break;
        s[n] = 0;
        remove(out);
        CHECK(strstr(s, "GGUF v3, 34 key/values, 11 tensors, alignment 64") != NULL);
        CHECK(strstr(s, "test.u32") && strstr(s, "4000000000"));
        CHECK(strstr(s, "[\"alpha\", \"\", ") != NULL);
        CHECK(strstr(s, "[[1, 2], [\"in\", \"ner\"], [[]], [1.5]]") != NULL);
        CHECK(strstr(s, "a.f32_4d") && strstr(s, "[2,3,5,7]") && strstr(s, "Q4_0"));
        CHECK(strstr(s, LONG_NAME) != NULL);
        CHECK(strstr(s, "total: 11 tensors, 785 elements, 1476 bytes") != NULL);
        if (!all) CHECK(strstr(s, "[0, 1, 2, 3, 4, 5, 6, 7, ... 92 more]") != NULL);
        else CHECK(strstr(s, "97, 98, 99]") != NULL && !strstr(s, "more]"));
        free(s);
    }
    CHECK(sx_gguf_kv_text(g, sx_gguf_n_kv(g), 0) == NULL);
    sx_gguf_close(g);
}

/* ---- corrupt files ------------------------------------------------------ */

static void test_truncated(void) {
    sx_gguf *g = NULL;
    CHECK_OK(sx_gguf_open(FIX, &g));
    if (!g) return;
    /* the data section starts at the aligned end of the last tensor info;
     * the last byte any tensor needs: */
    size_t hdr = (offset_at("\xc3\xbcnicode.bias") + 8 + 63) / 64 * 64, need = 0;
    for (int64_t i = 0; i < sx_gguf_n_tensors(g); i++) {
        const sx_tensor *t = sx_gguf_tensor_at(g, i);
        if (hdr + t->offset + t->nbytes > need) need = hdr + (size_t)t->offset + t->nbytes;
    }
    sx_gguf_close(g);
    CHECK(hdr == 2880 && need == 4742 && need <= fix_n);
    /* every truncation length before the last tensor byte fails, with the file name */
    int before = n_fail_cases;
    for (size_t len = 0; len < need; len++) {
        char label[48];
        snprintf(label, sizeof label, "truncated at %zu", len);
        expect_fail(fix, len, NULL, label);
    }
    CHECK(n_fail_cases - before == (int)need);
    /* section boundaries say what ran out */
    expect_fail(fix, 23, "too small", "truncated in header");
    expect_fail(fix, 30, "tensor count 11 at offset 8 cannot fit", "truncated in first key");
    expect_fail(fix, kvval_at("test.arr.str") + 20, "past end of file", "truncated in str array");
    expect_fail(fix, ndim_at("a.f32_4d") - 2, "tensor #1", "truncated in tensor name");
    expect_fail(fix, dim_at("a.f32_4d", 2), "tensor #1 'a.f32_4d': dims", "truncated in dims");
    expect_fail(fix, hdr, "data [2880, 2908) runs past end of file (2880 bytes)",
                "truncated after header");
    expect_fail(fix, need - 1, "tensor #10", "truncated in last tensor");
    /* the trailing padding is optional */
    const char *p = put_tmp(fix, need);
    CHECK_OK(sx_gguf_open(p, &g));
    sx_gguf_close(g);
    unlink(p);
}

static void test_corrupt_header(void) {
    uint8_t *b = copy_fix();
    memcpy(b, "GGUX", 4);
    expect_fail(b, fix_n, "bad magic 'GGUX' at offset 0", "wrong magic");
    free(b);
    case32(4, 1, "unsupported GGUF version 1", "version 1");
    case32(4, 4, "unsupported GGUF version 4", "version 4");
    case32(4, 0x03000000u, "big-endian", "big-endian version");
    case64(8, 1ull << 62, "tensor count", "absurd tensor count");
    case64(8, UINT64_MAX, "tensor count", "max tensor count");
    case64(16, 1ull << 62, "kv count", "absurd kv count");
    case64(8, 12, NULL, "one tensor too many");
    case64(16, 35, NULL, "one kv too many");
    case64(16, 33, NULL, "one kv too few");
    /* version 2 has the same layout: accepted */
    b = copy_fix();
    put32(b, 4, 2);
    const char *p = put_tmp(b, fix_n);
    sx_gguf *g = NULL;
    CHECK_OK(sx_gguf_open(p, &g));
    CHECK(g && sx_gguf_version(g) == 2 && sx_gguf_n_tensors(g) == 11);
    sx_gguf_close(g);
    unlink(p);
    free(b);
    /* too small, empty */
    expect_fail(fix, 0, "too small", "empty file");
    expect_fail(fix, 10, "too small", "10-byte file");
}

static void test_corrupt_kv(void) {
    size_t k = str_at(fix, fix_n, "general.name");
    case64(k, 1ull << 40, "key length 1099511627776 at offset", "key length past EOF");
    case64(k, UINT64_MAX, "key length", "key length 2^64-1");
    case64(kvval_at("general.name"), 100000, "string length 100000", "string value past EOF");
    case32(kvtype_at("general.name"), 13, "unknown value type 13", "unknown kv type 13");
    case32(kvtype_at("general.name"), 0xffffffffu, "unknown value type", "unknown kv type max");
    case32(kvval_at("test.arr.i8"), 13, "unknown array element type 13", "unknown array elem");
    case64(kvval_at("test.arr.long") + 4, 1ull << 60, "array of 1152921504606846976 x i32",
           "absurd array count");
    case64(kvval_at("test.arr.str") + 4, 1ull << 40, "array of", "absurd string array count");
    case64(kvval_at("test.arr.str") + 12, 1ull << 50, "string length", "string elem past EOF");
    case64(kvval_at("test.arr.nested") + 4, 1ull << 58, "array of", "absurd nested count");
    case32(kvval_at("test.arr.nested") + 12, 99, "unknown array element type 99",
           "nested elem type");
    uint8_t *b = copy_fix();
    b[kvval_at("test.bool")] = 2;
    expect_fail(b, fix_n, "bool value 2", "bool value 2");
    free(b);
    b = copy_fix();
    b[kvval_at("test.arr.bool") + 12 + 1] = 7;
    expect_fail(b, fix_n, "bool element 1 = 7", "bool array element 7");
    free(b);
    /* keys: duplicates, NUL inside */
    b = copy_fix();
    memcpy(b + str_at(fix, fix_n, "test.i8") + 8, "test.u8", 7);
    expect_fail(b, fix_n, "'test.u8' at offset", "duplicate key");
    CHECKF(strstr(sx_errmsg(), "duplicates kv #2"), "%s", sx_errmsg());
    free(b);
    b = copy_fix();
    b[str_at(fix, fix_n, "test.i8") + 8 + 4] = 0;
    expect_fail(b, fix_n, "NUL", "NUL in key");
    free(b);
    /* general.alignment: not a power of two, zero, wrong type */
    case32(kvval_at("general.alignment"), 48, "'general.alignment' at offset 24 is 48, not a power of two",
           "alignment 48");
    case32(kvval_at("general.alignment"), 0, "not a power of two", "alignment 0");
    case32(kvtype_at("general.alignment"), SX_GGUF_I32, "has type i32, expected u32",
           "alignment type i32");
}

static void test_corrupt_tensors(void) {
    case64(str_at(fix, fix_n, "a.f32_4d"), 1ull << 62, "tensor #1: name length", "name past EOF");
    case32(ndim_at("a.f32_4d"), 0, "tensor #1 'a.f32_4d': n_dims 0 at offset", "n_dims 0");
    case32(ndim_at("a.f32_4d"), 5, "n_dims 5", "n_dims 5");
    case32(ndim_at("a.f32_4d"), 0xffffffffu, "n_dims 4294967295", "n_dims max");
    case64(dim_at("a.f32_4d", 1), 0, "dim 1 (GGUF order) = 0", "zero dim");
    case64(dim_at("a.f32_4d", 0), 1ull << 63, "dim 0 (GGUF order) = 9223372036854775808",
           "dim 2^63");
    uint8_t *b = copy_fix();
    for (int d = 0; d < 4; d++) put64(b, dim_at("a.f32_4d", d), 1ull << 20);
    expect_fail(b, fix_n, "element count overflows", "dims product overflows");
    free(b);
    b = copy_fix();
    put64(b, dim_at("a.f32_4d", 0), 1ull << 31);
    put64(b, dim_at("a.f32_4d", 1), 1ull << 31);
    put64(b, dim_at("a.f32_4d", 2), 1);
    put64(b, dim_at("a.f32_4d", 3), 1);
    expect_fail(b, fix_n, "byte size of 4611686018427387904 elements of F32 overflows",
                "nbytes overflows");
    free(b);
    b = copy_fix();
    put64(b, dim_at("a.f32_4d", 0), 1ull << 20);
    expect_fail(b, fix_n, "runs past end of file", "dims too large for file");
    free(b);
    case32(type_at("a.f32_4d"), 3, "unknown tensor type 3", "tensor type Q4_1");
    case32(type_at("a.f32_4d"), 99, "unknown tensor type 99", "tensor type 99");
    case64(dim_at("a.q8_0_2d", 0), 48, "row length 48 is not a multiple of 32", "Q8_0 row 48");
    case64(dim_at("a.q4_0_1d", 0), 80, "row length 80 is not a multiple of 32", "Q4_0 row 80");
    case64(offset_at("a.f32_4d"), 68, "data offset 68 at offset", "misaligned offset");
    case64(offset_at("a.f32_1d"), 64 * 1000, "tensor #0 'a.f32_1d': data [66880, 66908) runs past end "
           "of file (4800 bytes)", "offset past EOF");
    case64(offset_at("a.f32_1d"), UINT64_MAX - 63, "data offset 18446744073709551552 runs past end",
           "offset 2^64-64");
    case64(offset_at("a.f32_4d"), 0, "tensor #1 'a.f32_4d': data [2880, 3720) overlaps tensor #0 "
           "'a.f32_1d' data [2880, 2908)", "overlap at start");
    case64(offset_at(LONG_NAME), 1600, "overlaps", "overlap inside");
    case64(offset_at("a.q4_0_4d"), 1664 - 64, "overlaps tensor #6", "overlap tail");
    /* duplicate names, NUL in a name */
    b = copy_fix();
    memcpy(b + str_at(fix, fix_n, "a.f32_4d") + 8, "a.f32_1d", 8);
    expect_fail(b, fix_n, "tensor #1 'a.f32_1d': name at offset 1938 duplicates tensor #0", "duplicate name");
    free(b);
    b = copy_fix();
    b[str_at(fix, fix_n, "a.f32_4d") + 8 + 2] = 0;
    expect_fail(b, fix_n, "contains a NUL byte", "NUL in name");
    free(b);
    /* control bytes in a name are escaped in messages */
    b = copy_fix();
    b[str_at(fix, fix_n, "a.f32_4d") + 8 + 1] = '\n';
    put64(b, dim_at("a.f32_4d", 1), 0);
    expect_fail(b, fix_n, "'a\\x0af32_4d'", "newline in name");
    free(b);
}

static void test_not_a_file(void) {
    expect_fail_path("tests/fixtures/gguf/does-not-exist.gguf", "No such file", "nonexistent");
    expect_fail_path(tmpdir, "directory", "directory");
    sx_gguf *g = NULL;
    CHECK(sx_gguf_open(NULL, &g) == -1 && g == NULL);
    CHECK(sx_gguf_open(FIX, NULL) == -1);
    sx_gguf_close(NULL);
    CHECK(n_fail_cases >= 15);
}

/* ---- many tensors: a file built here (alignment 4), every name looked up */

typedef struct { uint8_t *p; size_t n, cap; } buf;
static void put(buf *b, const void *x, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, x, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_s(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

/* Files built here: the default alignment (no general.alignment), alignment
 * 1 with F32/F16 data at odd addresses, arrays nested 8 and 9 deep. */
static void header(buf *b, uint64_t nt, uint64_t nkv) {
    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, nt);
    put_u64(b, nkv);
}

static void test_built_files(void) {
    sx_gguf *g = NULL;
    const char *p;
    /* no general.alignment: data at the next multiple of 32 */
    buf b = {0};
    header(&b, 1, 0);
    put_s(&b, "w");
    put_u32(&b, 1);
    put_u64(&b, 3);
    put_u32(&b, SX_F32);
    put_u64(&b, 0);
    CHECK(b.n == 24 + 9 + 4 + 8 + 4 + 8);
    while (b.n % 32) put(&b, "", 1);
    float w[3] = {1.5f, -2.0f, 3.25f};
    put(&b, w, sizeof w);
    p = put_tmp(b.p, b.n);
    CHECK_OK(sx_gguf_open(p, &g));
    if (g) {
        CHECK(sx_gguf_alignment(g) == 32 && sx_gguf_n_kv(g) == 0);
        const float *x = sx_get_f32(g, "w", SX_SHAPE(3));
        CHECK(x && !memcmp(x, w, sizeof w));
        sx_gguf_close(g);
    }
    unlink(p);
    expect_fail(b.p, b.n - 1, "tensor #0 'w': data [64, 76) runs past end of file (75 bytes)",
                "default alignment, short");
    /* alignment 1: an F32 and an F16 tensor at odd file offsets */
    b.n = 0;
    header(&b, 2, 1);
    put_s(&b, "general.alignment");
    put_u32(&b, SX_GGUF_U32);
    put_u32(&b, 1);
    put_s(&b, "f32");
    put_u32(&b, 1);
    put_u64(&b, 3);
    put_u32(&b, SX_F32);
    put_u64(&b, 0);
    put_s(&b, "f16");
    put_u32(&b, 1);
    put_u64(&b, 2);
    put_u32(&b, SX_F16);
    put_u64(&b, 12);
    size_t data = b.n;
    put(&b, w, sizeof w);
    uint16_t h[2] = {0x3c00, 0xc000}; /* 1, -2 */
    put(&b, h, sizeof h);
    p = put_tmp(b.p, b.n);
    CHECK_OK(sx_gguf_open(p, &g));
    if (g) {
        CHECK(data % 2 == 1 && sx_gguf_alignment(g) == 1);
        const sx_tensor *t = sx_gguf_find(g, "f32");
        const float *x = sx_get_f32(g, "f32", SX_SHAPE(3));
        CHECK(t && ((uintptr_t)t->data & 3) != 0 && x && x != t->data && !memcmp(x, w, sizeof w));
        x = sx_get_f32(g, "f16", SX_SHAPE(2));
        CHECK(x && x[0] == 1.0f && x[1] == -2.0f);
        sx_gguf_close(g);
    }
    unlink(p);
    /* nested arrays: 8 levels open, 9 do not */
    for (int depth = 8; depth <= 9; depth++) {
        b.n = 0;
        header(&b, 0, 1);
        put_s(&b, "deep");
        put_u32(&b, SX_GGUF_ARRAY);
        for (int k = 1; k < depth; k++) {
            put_u32(&b, SX_GGUF_ARRAY);
            put_u64(&b, 1);
        }
        put_u32(&b, SX_GGUF_U8);
        put_u64(&b, 1);
        put(&b, "\x05", 1);
        if (depth == 8) {
            p = put_tmp(b.p, b.n);
            CHECK_OK(sx_gguf_open(p, &g));
            int et = -1;
            uint64_t n = 0;
            CHECK(g && sx_meta_arr(g, "deep", &et, &n) == 0 && et == SX_GGUF_ARRAY && n == 1);
            sx_gguf_close(g);
            unlink(p);
        } else {
            expect_fail(b.p, b.n, "kv #0 'deep': arrays nested deeper than 8", "nested 9 deep");
        }
    }
    free(b.p);
}

static void test_many_tensors(void) {
    enum { N = 3000 };
    buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, N);
    put_u64(&b, 1);
    put_s(&b, "general.alignment");
    put_u32(&b, SX_GGUF_U32);
    put_u32(&b, 4);
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "model.layers.%d.w", i);
        put_s(&b, name);
        put_u32(&b, 1);
        put_u64(&b, 1);
        put_u32(&b, SX_F32);
        put_u64(&b, 4 * (uint64_t)i);
    }
    while (b.n % 4) put(&b, "", 1);
    for (int i = 0; i < N; i++) {
        float v = (float)i * 0.5f;
        put(&b, &v, 4);
    }
    const char *p = put_tmp(b.p, b.n);
    sx_gguf *g = NULL;
    CHECK_OK(sx_gguf_open(p, &g));
    if (g) {
        CHECK(sx_gguf_alignment(g) == 4 && sx_gguf_n_tensors(g) == N);
        int bad = 0;
        for (int i = N - 1; i >= 0; i--) {
            snprintf(name, sizeof name, "model.layers.%d.w", i);
            const float *x = sx_get_f32(g, name, SX_SHAPE(1));
            if (!x || *x != (float)i * 0.5f || sx_gguf_find(g, name) != sx_gguf_tensor_at(g, i))
                bad++;
        }
        CHECKF(bad == 0, "%d lookups wrong", bad);
        CHECK(sx_gguf_find(g, "model.layers.3000.w") == NULL);
        sx_gguf_close(g);
    }
    unlink(p);
    free(b.p);
}

/* The committed fuzz corpus (tests/fuzz/gguf/): every input either opens
 * and converts, or fails with a message naming the file (ASan in test-asan). */
static void test_fuzz_corpus(void) {
    const char *dir = "tests/fuzz/gguf";
    DIR *d = opendir(dir);
    CHECKF(d != NULL, "%s: %s", dir, strerror(errno));
    if (!d) return;
    int n = 0, opened = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        sx_gguf *g = NULL;
        n++;
        if (sx_gguf_open(path, &g) == 0) {
            opened++;
            for (int64_t i = 0; i < sx_gguf_n_tensors(g); i++) {
                const sx_tensor *t = sx_gguf_tensor_at(g, i);
                float *y = malloc((size_t)t->nelem * 4);
                CHECKF(y && sx_tensor_to_f32(t, y) == 0, "%s: %s", path, t->name);
                free(y);
            }
            for (int64_t k = 0; k < sx_gguf_n_kv(g); k++) { /* walks every value's bytes */
                char *v = sx_gguf_kv_text(g, k, 1);
                CHECKF(v != NULL, "%s: %s", path, sx_errmsg());
                free(v);
            }
            sx_gguf_close(g);
        } else {
            CHECKF(strstr(sx_errmsg(), path) != NULL, "%s", sx_errmsg());
        }
    }
    closedir(d);
    CHECK(n >= 1 && opened >= 1); /* at least the seed opens */
    if (getenv("SEEDX_TEST_VERBOSE")) printf("    %d corpus files, %d open\n", n, opened);
}

int main(void) {
    TEST_INIT();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sx_test_gguf_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    fix = slurp(FIX, &fix_n);
    if (!fix) {
        fprintf(stderr, "cannot read %s (run from the repository root)\n", FIX);
        return 1;
    }
    RUN(test_roundtrip_values);
    RUN(test_metadata);
    RUN(test_lookup_errors);
    RUN(test_types);
    RUN(test_print);
    RUN(test_truncated);
    RUN(test_corrupt_header);
    RUN(test_corrupt_kv);
    RUN(test_corrupt_tensors);
    RUN(test_not_a_file);
    RUN(test_built_files);
    RUN(test_many_tensors);
    RUN(test_fuzz_corpus);
    free(fix);
    rmdir(tmpdir);
    return TEST_DONE();
}
