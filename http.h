/* http.h - the HTTP/1.1 pieces `seedx serve` needs (not part of the
 * library): a request-head parser with limits, reading a request and
 * writing a response on a socket with timeouts, server-sent events, base64
 * and data: URLs.
 *
 * Every connection carries one request and is closed after the response
 * (the server answers "Connection: close"); request bodies need a
 * Content-Length (no chunked uploads). */
#ifndef SEEDX_HTTP_H
#define SEEDX_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* Fixed limits of the request head (the body limit is the server's
 * --max-body). */
#define HTTP_MAX_LINE    8192  /* request line or one header line, bytes */
#define HTTP_MAX_HEAD    32768 /* request line + headers + blank line */
#define HTTP_MAX_HEADERS 64    /* header fields */

typedef struct http_header {
    const char *name, *value; /* point into the request buffer (not NUL-terminated) */
    size_t name_len, value_len;
} http_header;

typedef struct http_request {
    char method[16];
    const char *target; /* origin-form "/path?query" */
    size_t target_len;
    size_t path_len; /* target up to '?' */
    int minor;       /* HTTP/1.minor */
    http_header headers[HTTP_MAX_HEADERS];
    int n_headers;
    size_t head_len;          /* bytes of the head, blank line included */
    long long content_length; /* -1: none */
    int expect_continue;      /* "Expect: 100-continue" */
    const char *body;         /* after http_read_request: content_length bytes */
} http_request;

/* Parses the request head in buf[0..n). Returns 1 when the head is complete
 * (req filled; pointers into buf), 0 when more bytes are needed, -1 when the
 * request is malformed or over a limit: *status is the HTTP status to answer
 * (400, 413, 414, 417, 431, 501, 505) and msg says why. max_body: a
 * Content-Length above it is refused with 413. */
int http_parse_head(const char *buf, size_t n, long long max_body, http_request *req, int *status,
                    char *msg, size_t msgn);
/* Value of the first header `name` (case-insensitive), or NULL. */
const char *http_get_header(const http_request *req, const char *name, size_t *len);
/* Case-insensitive: does the path (query excluded) equal `path`? */
int http_path_is(const http_request *req, const char *path);
const char *http_reason(int status);

/* ---- socket I/O ---------------------------------------------------------
 * Reads one request from fd: the head, then Content-Length body bytes.
 * deadline: sx-style monotonic seconds (http_now()) by which the whole
 * request must have arrived. Returns 0 (req filled; *buf owns the bytes,
 * req->body points into it), or -1 with *status / msg set (408 timeout,
 * 0 = the peer closed or failed before a complete request: answer nothing).
 * When the head asks "Expect: 100-continue", the interim response is sent
 * before the body is read. */
double http_now(void);
int http_read_request(int fd, long long max_body, double deadline, http_request *req, char **buf,
                      int *status, char *msg, size_t msgn);
/* Writes all of p[0..n); each wait for the socket to accept more bytes is
 * at most timeout_s. Returns 0 or -1 (timeout, peer gone). */
int http_write_all(int fd, const void *p, size_t n, double timeout_s);
/* A whole response with Content-Length and "Connection: close".
 * extra_headers: "Name: value\r\n..." or NULL. */
int http_respond(int fd, int status, const char *content_type, const char *extra_headers,
                 const void *body, size_t n, double timeout_s);
/* The head of a server-sent-events response (200, text/event-stream). */
int http_sse_begin(int fd, double timeout_s);
/* Has the peer closed its side or failed (checked without blocking)?
 * Pending request bytes are read and dropped. */
int http_peer_gone(int fd);

/* ---- base64 (RFC 4648, standard alphabet) ----------------------------- */
size_t base64_encoded_len(size_t n); /* without the NUL */
/* out: base64_encoded_len(n) + 1 bytes; NUL-terminated. */
void base64_encode(const uint8_t *in, size_t n, char *out);
/* Decodes in[0..n): ASCII whitespace is skipped, '=' padding optional but
 * must be right if present. *out is malloc'd. Returns 0 or -1 (*why says). */
int base64_decode(const char *in, size_t n, uint8_t **out, size_t *out_n, const char **why);

/* "data:<media type>[;param]*;base64,<data>" -> media type (lower case,
 * parameters dropped) in mt[mtn] and the decoded bytes (*out malloc'd).
 * Only base64 data URLs are accepted. Returns 0 or -1 (*why says). */
int data_url_decode(const char *url, size_t n, char *mt, size_t mtn, uint8_t **out, size_t *out_n,
                    const char **why);

#endif
