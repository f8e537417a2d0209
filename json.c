/* json.c - JSON parser with limits and a small writer (see json.h). */
#include "json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================
 * parser
 * ====================================================================== */
#define BLOCK_VALUES 256
typedef struct block {
    struct block *next;
    json_value v[BLOCK_VALUES];
} block;

typedef struct {
    const unsigned char *s;
    size_t n, i;
    const json_limits *lim;
    size_t n_values;
    block *blocks;
    size_t used; /* values used in blocks (the head block) */
    char *str;   /* decoded strings: capacity n + 1 (a literal never decodes longer) */
    size_t str_n;
    char *err;
    size_t errn;
} parser;

static int fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parser *p, const char *fmt, ...) {
    if (!p->err || !p->errn) return -1;
    int k = snprintf(p->err, p->errn, "invalid JSON at byte %zu: ", p->i);
    if (k >= 0 && (size_t)k < p->errn) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + k, p->errn - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static json_value *new_value(parser *p, json_type t) {
    if (p->n_values >= p->lim->max_values) {
        fail(p, "more than %zu values", p->lim->max_values);
        return NULL;
    }
    if (!p->blocks || p->used == BLOCK_VALUES) {
        block *b = malloc(sizeof *b);
        if (!b) {
            fail(p, "out of memory");
            return NULL;
        }
        b->next = p->blocks;
        p->blocks = b;
        p->used = 0;
    }
    json_value *v = &p->blocks->v[p->used++];
    memset(v, 0, sizeof *v);
    v->type = t;
    p->n_values++;
    return v;
}

static void skip_ws(parser *p) {
    while (p->i < p->n) {
        unsigned char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

static int hex4(const unsigned char *s, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = s[k];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16) return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid shortest-form UTF-8 sequence at s[0..n) (no
 * surrogates, <= U+10FFFF), or 0 if there is none. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    unsigned cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (len > n) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* A string literal at p->i (on the opening quote) -> decoded copy. */
static int parse_string(parser *p, const char **out, size_t *out_len) {
    p->i++; /* opening quote */
    char *o = p->str + p->str_n, *start = o;
    for (;;) {
        if (p->i >= p->n) return fail(p, "unterminated string");
        unsigned char c = p->s[p->i];
        if (c == '"') {
            p->i++;
            break;
        }
        if (c < 0x20) return fail(p, "control character 0x%02x in a string", c);
        if (c == '\\') {
            if (p->i + 1 >= p->n) return fail(p, "unterminated escape");
            unsigned char e = p->s[p->i + 1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                static const char to[] = "\"\\/\b\f\n\r\t";
                *o++ = to[simple - "\"\\/bfnrt"];
                p->i += 2;
                continue;
            }
            if (e != 'u') return fail(p, "bad escape '\\%c'", e >= 0x20 && e < 0x7F ? e : '?');
            unsigned cp, lo;
            if (p->i + 6 > p->n || hex4(p->s + p->i + 2, &cp)) return fail(p, "bad \\u escape");
            p->i += 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(p, "lone low surrogate \\u%04x", cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p->i + 6 > p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u' ||
                    hex4(p->s + p->i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return fail(p, "high surrogate \\u%04x without its low half", cp);
                p->i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o += put_utf8(o, cp);
            continue;
        }
        size_t k = utf8_seq(p->s + p->i, p->n - p->i);
        if (!k) return fail(p, "invalid UTF-8 in a string");
        memcpy(o, p->s + p->i, k);
        o += k;
        p->i += k;
    }
    *o++ = 0;
    *out = start;
    *out_len = (size_t)(o - start) - 1;
    p->str_n += (size_t)(o - start);
    return 0;
}

static int parse_number(parser *p, json_value *v) {
    size_t b = p->i;
    const unsigned char *s = p->s;
#define DIGITS()                                                                                   \
    do {                                                                                           \
        size_t d0 = p->i;                                                                          \
        while (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9') p->i++;                            \
        if (p->i == d0) return fail(p, "digit expected in a number");                              \
    } while (0)
    if (p->i < p->n && s[p->i] == '-') p->i++;
    if (p->i < p->n && s[p->i] == '0') {
        p->i++;
        if (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9')
            return fail(p, "leading zero in a number");
    } else {
        DIGITS();
    }
    if (p->i < p->n && s[p->i] == '.') {
        p->i++;
        DIGITS();
    }
    if (p->i < p->n && (s[p->i] == 'e' || s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (s[p->i] == '+' || s[p->i] == '-')) p->i++;
        DIGITS();
    }
#undef DIGITS
    size_t len = p->i - b;
    if (len > JSON_MAX_NUMBER_CHARS) {
        p->i = b;
        return fail(p, "number longer than %d characters", JSON_MAX_NUMBER_CHARS);
    }
    char buf[JSON_MAX_NUMBER_CHARS + 1];
    memcpy(buf, s + b, len);
    buf[len] = 0;
    v->number = strtod(buf, NULL);
    if (!isfinite(v->number)) {
        p->i = b;
        return fail(p, "number out of range");
    }
    return 0;
}

static int parse_value(parser *p, int depth, json_value **out);

/* '[' or '{' at p->i: elements until the closer. */
static int parse_container(parser *p, int depth, json_value *v) {
    int obj = v->type == JSON_OBJECT;
    char close = obj ? '}' : ']';
    if (depth >= p->lim->max_depth) return fail(p, "nesting deeper than %d", p->lim->max_depth);
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        return 0;
    }
    json_value **tail = &v->child;
    for (;;) {
        const char *key = NULL;
        size_t klen = 0;
        if (obj) {
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != '"')
                return fail(p, "member name (a string) expected");
            if (parse_string(p, &key, &klen)) return -1;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':')
                return fail(p, "':' expected after a member name");
            p->i++;
        }
        json_value *e;
        if (parse_value(p, depth + 1, &e)) return -1;
        e->key = key;
        e->key_len = klen;
        *tail = e;
        tail = &e->next;
        v->len++;
        skip_ws(p);
        if (p->i >= p->n)
            return fail(p, "unexpected end inside %s", obj ? "an object" : "an array");
        if (p->s[p->i] == ',') {
            p->i++;
            skip_ws(p);
            continue;
        }
        if (p->s[p->i] == close) {
            p->i++;
            return 0;
        }
        return fail(p, "',' or '%c' expected", close);
    }
}

static int literal(parser *p, const char *word) {
    size_t k = strlen(word);
    if (p->n - p->i < k || memcmp(p->s + p->i, word, k)) return fail(p, "unexpected character");
    p->i += k;
    return 0;
}

static int parse_value(parser *p, int depth, json_value **out) {
    skip_ws(p);
    if (p->i >= p->n) return fail(p, "value expected");
    unsigned char c = p->s[p->i];
    json_type t = c == '{'               ? JSON_OBJECT
                  : c == '['             ? JSON_ARRAY
                  : c == '"'             ? JSON_STRING
                  : c == 't' || c == 'f' ? JSON_BOOL
                  : c == 'n'             ? JSON_NULL
                                         : JSON_NUMBER;
    if (t == JSON_NUMBER && c != '-' && (c < '0' || c > '9'))
        return fail(p, "unexpected character '%c'", c >= 0x20 && c < 0x7F ? c : '?');
    json_value *v = new_value(p, t);
    if (!v) return -1;
    *out = v;
    switch (t) {
    case JSON_OBJECT:
    case JSON_ARRAY: return parse_container(p, depth, v);
    case JSON_STRING: return parse_string(p, &v->str, &v->len);
    case JSON_BOOL: v->boolean = c == 't'; return literal(p, c == 't' ? "true" : "false");
    case JSON_NULL: return literal(p, "null");
    default: return parse_number(p, v);
    }
}

int json_parse(const char *text, size_t n, const json_limits *lim, json_doc *doc, char *err,
               size_t errn) {
    static const json_limits def = JSON_LIMITS_DEFAULT;
    memset(doc, 0, sizeof *doc);
    if (err && errn) err[0] = 0;
    parser p = {
        (const unsigned char *)text, n, 0, lim ? lim : &def, 0, NULL, 0, NULL, 0, err, errn};
    if (!text && n) return fail(&p, "no input");
    p.str = malloc(n + 1);
    if (!p.str) return fail(&p, "out of memory");
    json_value *root = NULL;
    int rc = parse_value(&p, 0, &root);
    if (rc == 0) {
        skip_ws(&p);
        if (p.i != p.n) rc = fail(&p, "data after the JSON value");
    }
    doc->blocks = p.blocks;
    doc->strings = p.str;
    if (rc) {
        json_free(doc);
        return -1;
    }
    doc->root = root;
    return 0;
}

void json_free(json_doc *doc) {
    if (!doc) return;
    for (block *b = doc->blocks; b;) {
        block *nx = b->next;
        free(b);
        b = nx;
    }
    free(doc->strings);
    memset(doc, 0, sizeof *doc);
}

const json_value *json_get(const json_value *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT || !key) return NULL;
    size_t k = strlen(key);
    const json_value *found = NULL;
    for (const json_value *e = obj->child; e; e = e->next)
        if (e->key_len == k && !memcmp(e->key, key, k)) found = e;
    return found;
}

const json_value *json_get_type(const json_value *obj, const char *key, json_type t) {
    const json_value *v = json_get(obj, key);
    return v && v->type == t ? v : NULL;
}

const char *json_type_name(json_type t) {
    static const char *names[] = {"null",     "a boolean", "a number",
                                  "a string", "an array",  "an object"};
    return (unsigned)t < 6 ? names[t] : "?";
}

/* ======================================================================
 * writer
 * ====================================================================== */
static int jb_reserve(jbuf *b, size_t extra) {
    if (b->oom) return -1;
    if (b->n + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) {
        if (cap > ((size_t)1 << 40)) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    char *q = realloc(b->p, cap);
    if (!q) {
        b->oom = 1;
        return -1;
    }
    b->p = q;
    b->cap = cap;
    return 0;
}

void jb_free(jbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

void jb_put(jbuf *b, const char *s, size_t n) {
    if (jb_reserve(b, n)) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void jb_puts(jbuf *b, const char *s) {
    jb_put(b, s, strlen(s));
}

void jb_printf(jbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0 || jb_reserve(b, (size_t)k)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

void jb_str(jbuf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    jb_put(b, "\"", 1);
    size_t run = 0; /* start of the pending run of bytes copied as they are */
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        const char *esc = NULL;
        char tmp[8];
        size_t k = 1;
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20 || c == 0x7F) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            esc = tmp;
        } else if (c >= 0x80 && !(k = utf8_seq(u + i, n - i))) {
            esc = "\xEF\xBF\xBD"; /* U+FFFD for a byte that starts no valid character */
            k = 1;
        }
        if (esc) {
            jb_put(b, s + run, i - run);
            jb_puts(b, esc);
            run = i + k;
        }
        i += k;
    }
    jb_put(b, s + run, n - run);
    jb_put(b, "\"", 1);
}

void jb_float(jbuf *b, float v) {
    if (!isfinite(v)) {
        jb_puts(b, "null");
        return;
    }
    char t[32];
    for (int prec = 6; prec <= 9; prec++) { /* shortest %g that reads back exactly */
        snprintf(t, sizeof t, "%.*g", prec, (double)v);
        if (strtof(t, NULL) == v) break;
    }
    jb_puts(b, t);
}

size_t utf8_complete_prefix(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    /* look back at most 3 bytes for the start of a multi-byte character */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = u[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? n - back : n;
    }
    return n;
}
