/* tests/test_tokenizer.c - tokenizer.c against transformers 4.30.2 / sentencepiece.
 * Fixtures: scripts/fixtures_tokenizer.py (tests/fixtures/tokenizer/). */
#include <stdint.h>
#include <unistd.h>

#include "test.h"
#include "tokenizer.h"

#define FX "tests/fixtures/tokenizer/"

static sx_tokenizer *tok_sx, *tok_plain;
static sx_gguf *cases;

static int arr_i(const char *key, uint64_t i) {
    int64_t v = 0;
    if (sx_meta_arr_int(cases, key, i, &v)) {
        fprintf(stderr, "  %s\n", sx_errmsg());
        exit(1);
    }
    return (int)v;
}

static uint64_t arr_len(const char *key) {
    uint64_t n = 0;
    if (sx_meta_arr(cases, key, NULL, &n)) {
        fprintf(stderr, "  %s\n", sx_errmsg());
        exit(1);
    }
    return n;
}

static void print_ids(const char *what, const int *ids, size_t n) {
    fprintf(stderr, "    %s:", what);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* encodes every text of `textkey` and compares with ids[off[i]..off[i+1]) */
static void check_encode(sx_tokenizer *tok, const char *textkey, const char *offkey,
                         const char *idskey, int also_bos, const char *label) {
    uint64_t n = arr_len(textkey);
    CHECK(arr_len(offkey) == n + 1);
    int pass = 0, fail = 0;
    for (uint64_t c = 0; c < n; c++) {
        const char *s;
        size_t len;
        CHECK_OK(sx_meta_arr_str(cases, textkey, c, &s, &len));
        int a = arr_i(offkey, c), b = arr_i(offkey, c + 1);
        int *ids = NULL;
        size_t nid = 0;
        int ok = sx_tokenize(tok, s, len, 0, &ids, &nid) == 0 && nid == (size_t)(b - a);
        for (size_t k = 0; ok && k < nid; k++) ok = ids[k] == arr_i(idskey, (uint64_t)a + k);
        if (ok && also_bos) { /* encode(text) = [bos] + encode(text, add_special_tokens=False) */
            int *ids2 = NULL;
            size_t n2 = 0;
            ok = sx_tokenize(tok, s, len, 1, &ids2, &n2) == 0 && n2 == nid + 1 &&
                 ids2[0] == sx_tokenizer_bos(tok) && !memcmp(ids2 + 1, ids, nid * sizeof *ids);
            free(ids2);
        }
        if (ok) {
            pass++;
        } else {
            if (fail < 5) {
                fprintf(stderr, "  %s case %llu: '%.*s'\n", label, (unsigned long long)c,
                        (int)(len < 120 ? len : 120), s);
                print_ids("got", ids, nid);
                int *exp = malloc(sizeof(int) * (size_t)(b - a + 1));
                for (int k = a; k < b; k++) exp[k - a] = arr_i(idskey, (uint64_t)k);
                print_ids("exp", exp, (size_t)(b - a));
                free(exp);
            }
            fail++;
        }
        free(ids);
    }
    printf("    %s: %d/%llu strings token-identical\n", label, pass, (unsigned long long)n);
    CHECKF(fail == 0, "%d of %llu %s strings differ", fail, (unsigned long long)n, label);
}

static void test_corpus_seedx(void) {
    CHECK(arr_len("enc.text") >= 1000);
    check_encode(tok_sx, "enc.text", "enc.off", "enc.ids", 1, "seedx corpus");
}

static void test_corpus_plain_llama(void) {
    check_encode(tok_plain, "plain.text", "plain.off", "plain.ids", 1, "plain Llama-2 corpus");
}

static void test_invalid_utf8(void) {
    /* sentencepiece rule: each malformed byte = one U+FFFD (see tokenizer.h) */
    check_encode(tok_sx, "inv.text", "inv.off", "inv.ids", 0, "invalid UTF-8");
    /* the same as encoding the text with U+FFFD written out */
    int *a, *b;
    size_t na, nb;
    CHECK_OK(sx_tokenize(tok_sx, "x\xff\xe7\x8cy", 5, 0, &a, &na));
    CHECK_OK(sx_tokenize(tok_sx, "x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdy", 11, 0, &b, &nb));
    CHECK(na == nb && !memcmp(a, b, na * sizeof *a));
    free(a);
    free(b);
    /* random byte strings: always ids in range, and decode accepts them */
    static const char *frag[] = {"<img>", "</img>", "<loc-1", "2>", "<", ">", " ", "\n", "a", "\xe7",
                                 "\x8c", "\xab", "\xff", "\xf0\x9f", "\xc3", "\x80", "\xe2\x96\x81", "<s>"};
    uint32_t seed = 7;
    int bad = 0;
    for (int it = 0; it < 3000; it++) {
        char buf[256];
        size_t len = 0;
        seed = seed * 1664525u + 1013904223u;
        int nf = (int)(seed >> 24) % 24;
        for (int k = 0; k < nf; k++) {
            seed = seed * 1664525u + 1013904223u;
            const char *f = frag[(seed >> 16) % (sizeof frag / sizeof frag[0])];
            size_t fl = strlen(f);
            memcpy(buf + len, f, fl);
            len += fl;
        }
        int *ids;
        size_t n;
        if (sx_tokenize(tok_sx, buf, len, it & 1, &ids, &n)) {
            bad++;
            continue;
        }
        for (size_t k = 0; k < n; k++) bad += ids[k] < 0 || ids[k] >= sx_tokenizer_n_vocab(tok_sx);
        char *txt;
        if (sx_detokenize(tok_sx, ids, n, it & 2, &txt, NULL)) bad++;
        else free(txt);
        free(ids);
    }
    CHECKF(bad == 0, "%d random inputs misbehaved", bad);
}

/* *.inp / *.out of tests/data/tokenizer: raw sentencepiece ids, no bos */
static void check_vocab_file(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/data/tokenizer/%s.inp", t_shared(), name);
    FILE *fi = fopen(path, "rb");
    snprintf(path, sizeof path, "%s/data/tokenizer/%s.out", t_shared(), name);
    FILE *fo = fopen(path, "rb");
    CHECKF(fi && fo, "cannot open %s(.inp)", path);
    if (!fi || !fo) {
        if (fi) fclose(fi);
        if (fo) fclose(fo);
        return;
    }
    static char inp[1 << 20];
    size_t n = fread(inp, 1, sizeof inp - 1, fi);
    inp[n] = 0;
    fclose(fi);
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t sl = strlen(sep), pos = 0;
    int ncase = 0, pass = 0;
    static char line[1 << 16];
    while (pos < n) {
        char *e = strstr(inp + pos, sep);
        if (!e) break;
        size_t len = (size_t)(e - (inp + pos));
        if (!fgets(line, sizeof line, fo)) {
            CHECKF(0, "%s.out has fewer lines than cases", name);
            break;
        }
        int exp[4096], ne = 0;
        for (char *p = line; ne < 4096;) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p) break;
            exp[ne++] = (int)v;
            p = end;
        }
        int *ids;
        size_t nid;
        int ok = sx_tokenize(tok_plain, inp + pos, len, 0, &ids, &nid) == 0 && nid == (size_t)ne &&
                 !memcmp(ids, exp, nid * sizeof *ids);
        if (!ok) {
            fprintf(stderr, "  %s case %d: '%.*s'\n", name, ncase, (int)len, inp + pos);
            print_ids("got", ids, nid);
            print_ids("exp", exp, (size_t)ne);
        }
        pass += ok;
        ncase++;
        free(ids);
        pos += len + sl;
    }
    fclose(fo);
    printf("    %s: %d/%d cases\n", name, pass, ncase);
    CHECK(ncase >= 39);
    CHECK(pass == ncase);
}

static void test_llamacpp_vocab_cases(void) {
    check_vocab_file("ggml-vocab-llama-spm.gguf");
    check_vocab_file("spm-extra");
}

static void check_decode(int skip) {
    const char *key = skip ? "dec.skip" : "dec.noskip";
    uint64_t n = arr_len(key);
    CHECK(arr_len("dec.off") == n + 1);
    int pass = 0, fail = 0;
    for (uint64_t c = 0; c < n; c++) {
        int a = arr_i("dec.off", c), b = arr_i("dec.off", c + 1);
        int *ids = malloc(sizeof(int) * (size_t)(b - a + 1));
        for (int k = a; k < b; k++) ids[k - a] = arr_i("dec.ids", (uint64_t)k);
        const char *exp;
        size_t elen;
        CHECK_OK(sx_meta_arr_str(cases, key, c, &exp, &elen));
        char *txt = NULL;
        size_t len = 0;
        int ok = sx_detokenize(tok_sx, ids, (size_t)(b - a), skip, &txt, &len) == 0 &&
                 len == elen && !memcmp(txt, exp, len) && txt[len] == 0;
        if (ok) {
            pass++;
        } else {
            if (fail < 5) {
                print_ids("ids", ids, (size_t)(b - a));
                fprintf(stderr, "    got '%.*s'\n    exp '%.*s'\n", (int)len, txt ? txt : "",
                        (int)elen, exp);
            }
            fail++;
        }
        free(txt);
        free(ids);
    }
    printf("    decode skip_special_tokens=%s: %d/%llu identical\n", skip ? "True" : "False", pass,
           (unsigned long long)n);
    CHECKF(fail == 0, "%d decode cases differ", fail);
}

static void test_decode_noskip(void) { check_decode(0); }
static void test_decode_skip(void) { check_decode(1); }

static void test_decode_clean_up(void) {
    /* clean_up_tokenization_spaces=True (off in SEED-X's config): transformers'
     * replacement list applied to the decoded text */
    uint64_t n = arr_len("clean.text");
    int pass = 0;
    sx_tokenizer_set_clean_up(tok_sx, 1);
    for (uint64_t c = 0; c < n; c++) {
        int a = arr_i("clean.off", c), b = arr_i("clean.off", c + 1);
        int *ids = malloc(sizeof(int) * (size_t)(b - a + 1));
        for (int k = a; k < b; k++) ids[k - a] = arr_i("clean.ids", (uint64_t)k);
        const char *exp;
        size_t elen;
        CHECK_OK(sx_meta_arr_str(cases, "clean.text", c, &exp, &elen));
        char *txt = NULL;
        size_t len = 0;
        int ok = sx_detokenize(tok_sx, ids, (size_t)(b - a), 0, &txt, &len) == 0 && len == elen &&
                 !memcmp(txt, exp, len);
        if (!ok) fprintf(stderr, "    got '%s'\n    exp '%.*s'\n", txt ? txt : "", (int)elen, exp);
        pass += ok;
        free(txt);
        free(ids);
    }
    sx_tokenizer_set_clean_up(tok_sx, 0);
    CHECK(n >= 10);
    CHECKF(pass == (int)n, "%d/%llu clean-up cases", pass, (unsigned long long)n);
}

/* encode (add_special_tokens False and True) + decode (both skip settings) of
 * a small-vocabulary variant against transformers */
static void check_variant(const char *name) {
    char path[256], k_text[64], k_off[64], k_ids[64], k_offs[64], k_idss[64];
    snprintf(path, sizeof path, FX "variant_%s.gguf", name);
    sx_tokenizer *tok;
    CHECK_OK(sx_tokenizer_open(path, &tok));
    if (!tok) return;
    snprintf(k_text, sizeof k_text, "%s.text", name);
    snprintf(k_off, sizeof k_off, "%s.off", name);
    snprintf(k_ids, sizeof k_ids, "%s.ids", name);
    snprintf(k_offs, sizeof k_offs, "%s.off_special", name);
    snprintf(k_idss, sizeof k_idss, "%s.ids_special", name);
    char label[64];
    snprintf(label, sizeof label, "variant %s", name);
    check_encode(tok, k_text, k_off, k_ids, 0, label);
    snprintf(label, sizeof label, "variant %s, add_special_tokens", name);
    /* add_special=1 */
    uint64_t n = arr_len(k_text);
    int fail = 0;
    for (uint64_t c = 0; c < n; c++) {
        const char *s;
        size_t len;
        CHECK_OK(sx_meta_arr_str(cases, k_text, c, &s, &len));
        int a = arr_i(k_offs, c), b = arr_i(k_offs, c + 1);
        int *ids = NULL;
        size_t nid = 0;
        int ok = sx_tokenize(tok, s, len, 1, &ids, &nid) == 0 && nid == (size_t)(b - a);
        for (size_t k = 0; ok && k < nid; k++) ok = ids[k] == arr_i(k_idss, (uint64_t)a + k);
        fail += !ok;
        free(ids);
    }
    printf("    %s: %d/%llu\n", label, (int)(n - (uint64_t)fail), (unsigned long long)n);
    CHECKF(fail == 0, "%s: %d differ", label, fail);
    for (int skip = 0; skip < 2; skip++) {
        char k_d[64], k_do[64], k_t[64];
        snprintf(k_d, sizeof k_d, "%s.dec_ids", name);
        snprintf(k_do, sizeof k_do, "%s.dec_off", name);
        snprintf(k_t, sizeof k_t, "%s.dec_%s", name, skip ? "skip" : "noskip");
        fail = 0;
        for (uint64_t c = 0; c < n; c++) {
            int a = arr_i(k_do, c), b = arr_i(k_do, c + 1);
            int *ids = malloc(sizeof(int) * (size_t)(b - a + 1));
            for (int k = a; k < b; k++) ids[k - a] = arr_i(k_d, (uint64_t)k);
            const char *exp;
            size_t elen, len = 0;
            CHECK_OK(sx_meta_arr_str(cases, k_t, c, &exp, &elen));
            char *txt = NULL;
            int ok = sx_detokenize(tok, ids, (size_t)(b - a), skip, &txt, &len) == 0 && len == elen &&
                     !memcmp(txt, exp, len);
            if (!ok && fail < 3)
                fprintf(stderr, "    %s decode: got '%s' exp '%.*s'\n", name, txt ? txt : "(error)", (int)elen,
                        exp);
            fail += !ok;
            free(txt);
            free(ids);
        }
        printf("    variant %s decode skip=%d: %d/%llu\n", name, skip, (int)(n - (uint64_t)fail),
               (unsigned long long)n);
        CHECKF(fail == 0, "variant %s decode: %d differ", name, fail);
    }
    sx_tokenizer_free(tok);
}

static void test_variant_special_tokens(void) { check_variant("special"); }
static void test_variant_no_byte_fallback(void) { check_variant("nofb"); }

static void test_lookup(void) {
    /* ids of the spec table (section 3.1) and the Llama-2 specials */
    CHECK(sx_tokenizer_n_vocab(tok_sx) == 32330);
    CHECK(sx_tokenizer_n_base(tok_sx) == 32000);
    CHECK(sx_tokenizer_n_vocab(tok_plain) == 32000);
    CHECK(sx_tokenizer_bos(tok_sx) == 1 && sx_tokenizer_eos(tok_sx) == 2);
    CHECK(sx_tokenizer_unk(tok_sx) == 0 && sx_tokenizer_pad(tok_sx) == 0);
    CHECK(sx_tokenizer_pad(tok_plain) == -1);
    CHECK(sx_token_id(tok_sx, "<img_00000>") == 32000);
    CHECK(sx_token_id(tok_sx, "<img_00063>") == 32063);
    CHECK(sx_token_id(tok_sx, "<img>") == 32100);
    CHECK(sx_token_id(tok_sx, "</img>") == 32101);
    CHECK(sx_token_id(tok_sx, "<patch>") == 32102);
    CHECK(sx_token_id(tok_sx, "</patch>") == 32103);
    CHECK(sx_token_id(tok_sx, "<loc-0>") == 32104);
    CHECK(sx_token_id(tok_sx, "<loc-223>") == 32327);
    CHECK(sx_token_id(tok_sx, "<box_start>") == 32328);
    CHECK(sx_token_id(tok_sx, "<box_end>") == 32329);
    CHECK(sx_token_id(tok_sx, "<s>") == 1);
    CHECK(sx_token_id(tok_sx, "<0x0A>") == 13);
    CHECK(sx_token_id(tok_sx, "<loc-224>") == -1);
    CHECK(sx_token_id(tok_plain, "<img>") == -1);
    size_t len;
    const char *s = sx_token_str(tok_sx, 32101, &len);
    CHECK(s && len == 6 && !memcmp(s, "</img>", 6));
    s = sx_token_str(tok_sx, 29871, &len); /* "▁" */
    CHECK(s && len == 3 && !memcmp(s, "\xe2\x96\x81", 3));
    CHECK(sx_token_str(tok_sx, 32330, &len) == NULL && sx_token_str(tok_sx, -1, &len) == NULL);
    CHECK(sx_token_is_special(tok_sx, 0) && sx_token_is_special(tok_sx, 1) &&
          sx_token_is_special(tok_sx, 2));
    CHECK(!sx_token_is_special(tok_sx, 32100) && !sx_token_is_special(tok_sx, 13));
    /* every token string maps back to its id */
    int bad = 0;
    for (int i = 0; i < sx_tokenizer_n_vocab(tok_sx); i++) {
        char buf[256];
        s = sx_token_str(tok_sx, i, &len);
        if (!s || len >= sizeof buf) {
            bad++;
            continue;
        }
        memcpy(buf, s, len);
        buf[len] = 0;
        bad += sx_token_id(tok_sx, buf) != i;
    }
    CHECKF(bad == 0, "%d tokens do not round-trip through sx_token_id", bad);
}

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static void test_bad_input(void) {
    sx_tokenizer *t = (sx_tokenizer *)1;
    /* missing */
    CHECK(sx_tokenizer_open(FX "no_such_file.gguf", &t) == -1 && t == NULL);
    CHECK(strstr(sx_errmsg(), "no_such_file.gguf") != NULL);
    CHECK(sx_tokenizer_open("tests/fixtures", &t) == -1); /* directory without tokenizer.gguf */
    CHECK(strstr(sx_errmsg(), "tokenizer.gguf") != NULL);
    /* a valid GGUF that is not a tokenizer */
    CHECK(sx_tokenizer_open(FX "cases.gguf", &t) == -1);
    CHECK(strstr(sx_errmsg(), "tokenizer.ggml.model") != NULL);
    /* corrupt: truncated, flipped bytes, garbage */
    FILE *f = fopen(FX "seedx_tokenizer.gguf", "rb");
    CHECK(f != NULL);
    if (!f) return;
    static unsigned char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    char tmp[] = "/tmp/sx_tok_badXXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0);
    if (fd < 0) return;
    close(fd);
    const size_t cuts[] = {0, 3, 24, 200, 5000, n / 2, n - 100}; /* the last 64 bytes may be padding */
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        CHECK(write_file(tmp, buf, cuts[i]) == 0);
        t = (sx_tokenizer *)1;
        CHECKF(sx_tokenizer_open(tmp, &t) == -1 && t == NULL, "truncated to %zu opened", cuts[i]);
    }
    /* the string length of the first token (after the header) made huge */
    static unsigned char bad[1 << 20];
    memcpy(bad, buf, n);
    uint32_t seed = 12345;
    int opened = 0;
    for (int trial = 0; trial < 200; trial++) { /* random byte corruption: error or success, no crash */
        memcpy(bad, buf, n);
        for (int k = 0; k < 4; k++) {
            seed = seed * 1664525u + 1013904223u;
            size_t at = (seed >> 8) % 4096;
            bad[at] ^= (unsigned char)(1 + (seed & 0x7f));
        }
        CHECK(write_file(tmp, bad, n) == 0);
        t = NULL;
        if (sx_tokenizer_open(tmp, &t) == 0) {
            opened++;
            int *ids;
            size_t nid;
            if (sx_tokenize(t, "Hello <img> world", 17, 1, &ids, &nid) == 0) free(ids);
            sx_tokenizer_free(t);
        } else {
            CHECK(strlen(sx_errmsg()) > 0);
            if (getenv("SEEDX_TEST_VERBOSE")) printf("    %s\n", sx_errmsg());
        }
    }
    printf("    corrupted copies that still opened: %d/200\n", opened);
    for (size_t i = 0; i < sizeof bad; i++) bad[i] = (unsigned char)(i * 7 + 3);
    CHECK(write_file(tmp, bad, 4096) == 0);
    CHECK(sx_tokenizer_open(tmp, &t) == -1);
    remove(tmp);
    /* containers with one broken table each (scripts/fixtures_tokenizer.py) */
    uint64_t nb = arr_len("bad.files");
    CHECK(nb >= 10);
    for (uint64_t i = 0; i < nb; i++) {
        const char *f, *msg;
        size_t fl, ml;
        CHECK_OK(sx_meta_arr_str(cases, "bad.files", i, &f, &fl));
        CHECK_OK(sx_meta_arr_str(cases, "bad.expect", i, &msg, &ml));
        char p[512], m[256];
        snprintf(p, sizeof p, FX "bad/%.*s", (int)fl, f);
        snprintf(m, sizeof m, "%.*s", (int)ml, msg);
        t = NULL;
        int rc = sx_tokenizer_open(p, &t);
        if (ml == 0) { /* the unbroken one */
            CHECKF(rc == 0, "%s: %s", p, sx_errmsg());
            int *ids;
            size_t nid;
            CHECK_OK(sx_tokenize(t, "a a", 3, 1, &ids, &nid));
            CHECK(nid == 3 && ids[0] == 1 && ids[1] == 261 && ids[2] == 261); /* <s> ▁a ▁a */
            free(ids);
            sx_tokenizer_free(t);
        } else {
            CHECKF(rc == -1 && t == NULL && strstr(sx_errmsg(), m) && strstr(sx_errmsg(), f),
                   "%s: rc %d, message '%s' (expected it to mention '%s')", p, rc, sx_errmsg(), m);
        }
    }
    printf("    %llu broken containers rejected with the expected message\n", (unsigned long long)nb - 1);
    /* decode: ids out of range */
    char *txt = (char *)1;
    int ids1[] = {450, 32330};
    CHECK(sx_detokenize(tok_sx, ids1, 2, 0, &txt, NULL) == -1 && txt == NULL);
    CHECK(strstr(sx_errmsg(), "32330") != NULL);
    int ids2[] = {-1};
    CHECK(sx_detokenize(tok_sx, ids2, 1, 1, &txt, NULL) == -1);
    int ids3[] = {32000};
    CHECK(sx_detokenize(tok_plain, ids3, 1, 0, &txt, NULL) == -1);
    /* NULL arguments */
    int *ids;
    size_t nid;
    CHECK(sx_tokenize(NULL, "a", 1, 0, &ids, &nid) == -1);
    CHECK(sx_tokenize(tok_sx, NULL, 3, 0, &ids, &nid) == -1);
    CHECK(sx_tokenize(tok_sx, "a", 1, 0, NULL, &nid) == -1);
    CHECK(sx_detokenize(tok_sx, NULL, 2, 0, &txt, NULL) == -1);
    CHECK(sx_tokenizer_open(NULL, &t) == -1);
    /* empty input -> zero ids, still a valid pointer */
    CHECK_OK(sx_tokenize(tok_sx, "", 0, 0, &ids, &nid));
    CHECK(ids != NULL && nid == 0);
    free(ids);
    CHECK_OK(sx_detokenize(tok_sx, NULL, 0, 0, &txt, NULL));
    CHECK(txt && txt[0] == 0);
    free(txt);
}

/* the `seedx tokenize` command, compared with corpus fixtures */
static int run_cmd(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    return pclose(p);
}

static const char *meta_s(const char *key, size_t *len) {
    const char *s = "";
    *len = 0;
    CHECK_OK(sx_meta_str(cases, key, &s, len));
    return s;
}

static void test_cli(void) {
    CHECKF(access("./seedx", X_OK) == 0, "./seedx not built");
    static char out[1 << 16], exp[1 << 16], cmd[4096];
    /* stdin, verbatim (the newline inside is kept) */
    const char *txt = "Question: <img><img_00000></img>Describe this.\nAnswer:";
    CHECK(run_cmd("printf 'Question: <img><img_00000></img>Describe this.\\nAnswer:' | "
                  "./seedx tokenize -m " FX "seedx_tokenizer.gguf -",
                  out, sizeof out) == 0);
    int *ids;
    size_t n, len;
    CHECK_OK(sx_tokenize(tok_sx, txt, strlen(txt), 0, &ids, &n));
    size_t o = 0;
    for (size_t i = 0; i < n; i++) o += (size_t)snprintf(exp + o, sizeof exp - o, i ? " %d" : "%d", ids[i]);
    snprintf(exp + o, sizeof exp - o, "\n");
    CHECKF(n > 5 && !strcmp(out, exp), "got '%s' exp '%s'", out, exp);
    free(ids);
    /* --bos: transformers' encode(text) with add_special_tokens=True */
    const char *bt = meta_s("cli.bos_text", &len);
    snprintf(cmd, sizeof cmd, "./seedx tokenize -m " FX "seedx_tokenizer.gguf --bos '%.*s'", (int)len, bt);
    CHECK(run_cmd(cmd, out, sizeof out) == 0);
    o = 0;
    for (uint64_t i = 0; i < arr_len("cli.bos_ids"); i++)
        o += (size_t)snprintf(exp + o, sizeof exp - o, i ? " %d" : "%d", arr_i("cli.bos_ids", i));
    snprintf(exp + o, sizeof exp - o, "\n");
    CHECKF(!strcmp(out, exp), "got '%s' exp '%s'", out, exp);
    /* --pieces: tokenizer.tokenize(text) */
    const char *pt = meta_s("cli.pieces_text", &len);
    snprintf(cmd, sizeof cmd, "./seedx tokenize -m " FX "seedx_tokenizer.gguf --pieces '%.*s'", (int)len, pt);
    CHECK(run_cmd(cmd, out, sizeof out) == 0);
    const char *pe = meta_s("cli.pieces", &len);
    CHECKF(strlen(out) == len + 1 && !memcmp(out, pe, len), "got '%s' exp '%.*s'", out, (int)len, pe);
    /* --decode with and without --skip-special */
    o = (size_t)snprintf(cmd, sizeof cmd, "./seedx tokenize -m " FX "seedx_tokenizer.gguf --decode");
    for (uint64_t i = 0; i < arr_len("cli.dec_ids"); i++)
        o += (size_t)snprintf(cmd + o, sizeof cmd - o, " %d", arr_i("cli.dec_ids", i));
    CHECK(run_cmd(cmd, out, sizeof out) == 0);
    pe = meta_s("cli.dec_noskip", &len);
    CHECKF(strlen(out) == len + 1 && !memcmp(out, pe, len), "got '%s' exp '%.*s'", out, (int)len, pe);
    o = (size_t)snprintf(cmd, sizeof cmd, "./seedx tokenize -m " FX "seedx_tokenizer.gguf --decode --skip-special");
    for (uint64_t i = 0; i < arr_len("cli.dec_ids"); i++)
        o += (size_t)snprintf(cmd + o, sizeof cmd - o, " %d", arr_i("cli.dec_ids", i));
    CHECK(run_cmd(cmd, out, sizeof out) == 0);
    pe = meta_s("cli.dec_skip", &len);
    CHECKF(strlen(out) == len + 1 && !memcmp(out, pe, len), "got '%s' exp '%.*s'", out, (int)len, pe);
    /* errors: exit status != 0 */
    CHECK(run_cmd("./seedx tokenize -m " FX "seedx_tokenizer.gguf --decode 99999 2>/dev/null", out,
                  sizeof out) != 0);
    CHECK(run_cmd("./seedx tokenize -m " FX "seedx_tokenizer.gguf --decode 12x 2>/dev/null", out,
                  sizeof out) != 0);
    CHECK(run_cmd("./seedx tokenize -m " FX "missing.gguf x 2>/dev/null", out, sizeof out) != 0);
    /* -m with a model directory holding tokenizer.gguf */
    char dir[] = "/tmp/sx_tok_dirXXXXXX", cwd[1024], link[1100];
    CHECK(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL);
    snprintf(link, sizeof link, "%s/tokenizer.gguf", dir);
    snprintf(cmd, sizeof cmd, "%s/" FX "seedx_tokenizer.gguf", cwd);
    CHECK(symlink(cmd, link) == 0);
    bt = meta_s("cli.bos_text", &len);
    snprintf(cmd, sizeof cmd, "./seedx tokenize -m %s --bos '%.*s'", dir, (int)len, bt);
    CHECK(run_cmd(cmd, out, sizeof out) == 0);
    o = 0;
    for (uint64_t i = 0; i < arr_len("cli.bos_ids"); i++)
        o += (size_t)snprintf(exp + o, sizeof exp - o, i ? " %d" : "%d", arr_i("cli.bos_ids", i));
    snprintf(exp + o, sizeof exp - o, "\n");
    CHECKF(!strcmp(out, exp), "model dir: got '%s' exp '%s'", out, exp);
    remove(link);
    rmdir(dir);
}

int main(void) {
    TEST_INIT();
    if (sx_tokenizer_open(FX "seedx_tokenizer.gguf", &tok_sx) ||
        sx_tokenizer_open(FX "plain_tokenizer.gguf", &tok_plain) ||
        sx_gguf_open(FX "cases.gguf", &cases)) {
        fprintf(stderr, "cannot load fixtures: %s\n", sx_errmsg());
        return 1;
    }
    RUN(test_lookup);
    RUN(test_corpus_seedx);
    RUN(test_corpus_plain_llama);
    RUN(test_invalid_utf8);
    RUN(test_llamacpp_vocab_cases);
    RUN(test_decode_noskip);
    RUN(test_decode_skip);
    RUN(test_decode_clean_up);
    RUN(test_variant_special_tokens);
    RUN(test_variant_no_byte_fallback);
    RUN(test_bad_input);
    RUN(test_cli);
    sx_tokenizer_free(tok_sx);
    sx_tokenizer_free(tok_plain);
    sx_gguf_close(cases);
    return TEST_DONE();
}
