/* tests/fuzz_json.c - libFuzzer harness for json.c and the server's request
 * checking. First byte: bit 0-1 the mode, the rest the nesting limit.
 *   mode 0/1: json_parse; a parsed tree is walked (counts, strings,
 *             keys) and written back with the writer, and that text must
 *             parse to the same tree. The input bytes as a string literal
 *             (jb_str) must always parse back.
 *   mode 2/3: the body of POST /v1/chat/completions (2) or
 *             /v1/images/edits (3) through serve.c's parse_job: a job, or an
 *             error with a 4xx status and a message.
 * Any crash, sanitizer report or broken invariant is a finding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "../serve.c" /* parse_job and its helpers are static */

static void write_value(jbuf *b, const json_value *v) {
    switch (v->type) {
    case JSON_NULL: jb_puts(b, "null"); break;
    case JSON_BOOL: jb_puts(b, v->boolean ? "true" : "false"); break;
    case JSON_NUMBER: jb_printf(b, "%.17g", v->number); break;
    case JSON_STRING: jb_str(b, v->str, v->len); break;
    default:
        jb_puts(b, v->type == JSON_ARRAY ? "[" : "{");
        for (const json_value *e = v->child; e; e = e->next) {
            if (e != v->child) jb_puts(b, ",");
            if (v->type == JSON_OBJECT) {
                jb_str(b, e->key, e->key_len);
                jb_puts(b, ":");
            }
            write_value(b, e);
        }
        jb_puts(b, v->type == JSON_ARRAY ? "]" : "}");
    }
}

/* structure checks; returns the number of values */
static size_t walk(const json_value *v, int in_object, int depth, int max_depth) {
    if (depth > max_depth || (in_object != (v->key != NULL))) abort();
    if (v->key && v->key[v->key_len]) abort();
    if (v->type == JSON_STRING && (!v->str || v->str[v->len])) abort();
    size_t count = 1, n = 0;
    if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) {
        for (const json_value *e = v->child; e; e = e->next, n++)
            count += walk(e, v->type == JSON_OBJECT, depth + 1, max_depth);
        if (n != v->len) abort();
    }
    return count;
}

static int same(const json_value *a, const json_value *b) {
    if (a->type != b->type || a->key_len != b->key_len ||
        (a->key && memcmp(a->key, b->key, a->key_len)))
        return 0;
    switch (a->type) {
    case JSON_BOOL: return a->boolean == b->boolean;
    case JSON_NUMBER: return a->number == b->number;
    case JSON_STRING: return a->len == b->len && !memcmp(a->str, b->str, a->len);
    case JSON_ARRAY:
    case JSON_OBJECT:
        if (a->len != b->len) return 0;
        for (const json_value *x = a->child, *y = b->child; x; x = x->next, y = y->next)
            if (!same(x, y)) return 0;
        return 1;
    default: return 1;
    }
}

static void fuzz_json(const char *buf, size_t n, int max_depth) {
    json_limits lim = {max_depth, 5000};
    json_doc d;
    char err[200];
    if (json_parse(buf, n, &lim, &d, err, sizeof err) == 0) {
        if (!d.root || walk(d.root, 0, 0, max_depth) > lim.max_values) abort();
        jbuf w = {0};
        write_value(&w, d.root);
        json_limits big = {max_depth, 5000};
        json_doc d2;
        if (w.oom || json_parse(w.p, w.n, &big, &d2, err, sizeof err) || !same(d.root, d2.root))
            abort();
        json_free(&d2);
        jb_free(&w);
        json_free(&d);
    } else if (d.root || !strstr(err, "invalid JSON at byte")) {
        abort();
    }
    /* any bytes, written as a string literal, read back as valid JSON */
    jbuf s = {0};
    jb_str(&s, buf, n);
    if (json_parse(s.p, s.n, NULL, &d, err, sizeof err) || d.root->type != JSON_STRING) abort();
    json_free(&d);
    jb_free(&s);
    size_t k = utf8_complete_prefix(buf, n);
    if (k > n || k + 3 < n) abort();
}

static void fuzz_request(const char *buf, size_t n, int api) {
    if (!S.c.max_image_side) { /* the server's defaults; a tiny context */
        S.c.max_image_side = 4096;
        S.c.max_image_pixels = 16LL << 20;
        S.c.steps = 4;
        S.c.width = S.c.height = 64;
        S.c.cfg = 7.5f;
        S.c.image_cfg = 1.5f;
        S.n_ctx = 2048;
        S.has_edit = 1;
    }
    reqerr e = {0, ""};
    job *j = parse_job(api, buf, n, &e);
    if (j) {
        if (j->n_turns < 1 || j->n_img > MAX_IMAGES || j->turns[j->n_turns - 1].role != ROLE_USER)
            abort();
        for (int t = 0; t < j->n_turns; t++)
            if (!j->turns[t].text || j->turns[t].img0 + j->turns[t].n_img > j->n_img) abort();
        if (j->o.width % 8 || j->o.height % 8 || j->o.max_new_tokens < 1 ||
            j->o.max_new_tokens > S.n_ctx)
            abort();
        job_free(j);
    } else if (e.status < 400 || e.status > 599 || !e.msg[0]) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] & 3, max_depth = 1 + (data[0] >> 2) % 40;
    char *buf = malloc(size - 1 ? size - 1 : 1); /* exact size: overreads are caught */
    memcpy(buf, data + 1, size - 1);
    if (mode < 2)
        fuzz_json(buf, size - 1, max_depth);
    else
        fuzz_request(buf, size - 1, mode == 2 ? API_CHAT : API_IMAGES_EDIT);
    free(buf);
    return 0;
}
