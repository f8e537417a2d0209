/* json.h - a small JSON (RFC 8259) parser with limits and a writer, for the
 * `seedx serve` front-end (not part of the library).
 *
 *   json_doc d;
 *   char err[128];
 *   json_limits lim = JSON_LIMITS_DEFAULT;
 *   if (json_parse(body, n, &lim, &d, err, sizeof err)) reply_400(err);
 *   const json_value *m = json_get(d.root, "messages");   // NULL if absent
 *   ...
 *   json_free(&d);
 *
 * The parser is strict: UTF-8 only (strings are validated), no comments,
 * no trailing commas, no leading zeros, no NaN/Infinity, nothing after the
 * value but whitespace. Strings are decoded (escapes, surrogate pairs) into
 * NUL-terminated UTF-8 copies; a string holding \u0000 keeps its length in
 * `len`. Every input byte is looked at once: time and memory are linear in
 * the input, and the limits bound nesting depth (recursion), the number of
 * values, and the length of numbers. */
#ifndef SEEDX_JSON_H
#define SEEDX_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value json_value;
struct json_value {
    json_type type;
    int boolean;     /* JSON_BOOL */
    double number;   /* JSON_NUMBER */
    const char *str; /* JSON_STRING: decoded, NUL-terminated */
    size_t len;      /* JSON_STRING: bytes; ARRAY/OBJECT: elements */
    const char *key; /* member of an object: its decoded name */
    size_t key_len;
    json_value *child; /* ARRAY/OBJECT: first element */
    json_value *next;  /* next element of the parent */
};

typedef struct json_limits {
    int max_depth;     /* arrays/objects nested deeper fail (64) */
    size_t max_values; /* values in the document (1 << 20) */
} json_limits;
#define JSON_LIMITS_DEFAULT                                                                        \
    { 64, (size_t)1 << 20 }
#define JSON_MAX_NUMBER_CHARS 64 /* longer number literals are refused */

typedef struct json_doc {
    json_value *root;
    void *blocks;  /* value blocks (internal) */
    char *strings; /* decoded string bytes (internal) */
} json_doc;

/* Parses text[0..n). Returns 0, or -1 with a message naming the byte
 * offset in err (doc is then empty). */
int json_parse(const char *text, size_t n, const json_limits *lim, json_doc *doc, char *err,
               size_t errn);
void json_free(json_doc *doc);

/* Member `key` of an object (the last one if repeated, as Python and
 * JavaScript do), or NULL. NULL-safe: obj may be NULL or not an object. */
const json_value *json_get(const json_value *obj, const char *key);
/* Typed look-ups: the member if present with that type, else NULL. */
const json_value *json_get_type(const json_value *obj, const char *key, json_type t);
const char *json_type_name(json_type t);

/* ---- writer: a growing byte buffer ------------------------------------ */
typedef struct jbuf {
    char *p;
    size_t n, cap;
    int oom; /* an allocation failed: the content is incomplete */
} jbuf;

void jb_free(jbuf *b);
void jb_put(jbuf *b, const char *s, size_t n);
void jb_puts(jbuf *b, const char *s);
void jb_printf(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal with quotes: escapes ", \, control characters;
 * invalid UTF-8 bytes become U+FFFD, so the output is always valid JSON. */
void jb_str(jbuf *b, const char *s, size_t n);
/* A finite number in the shortest form that reads back to the same float. */
void jb_float(jbuf *b, float v);

/* Length of the longest prefix of s[0..n) that ends on a whole UTF-8
 * character (a streamer holds the rest back until more bytes arrive). */
size_t utf8_complete_prefix(const char *s, size_t n);

#endif
