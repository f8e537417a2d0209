/* http.c - request parsing, socket I/O with timeouts, SSE, base64 and data:
 * URLs for `seedx serve` (see http.h). */
#include "http.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ======================================================================
 * request head
 * ====================================================================== */
static int lower(int c) {
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int ieq(const char *a, size_t na, const char *b) {
    size_t nb = strlen(b);
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return 0;
    return 1;
}

/* RFC 9110 tchar */
static int is_tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int bad(int *status, char *msg, size_t msgn, int code, const char *fmt, const char *arg) {
    *status = code;
    if (msg && msgn) snprintf(msg, msgn, fmt, arg);
    return -1;
}
#define BAD(code, text) bad(status, msg, msgn, code, "%s", text)

static int parse_request_line(const char *s, size_t n, http_request *req, int *status, char *msg,
                              size_t msgn) {
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i])) i++;
    if (i == 0 || i >= n || s[i] != ' ') return BAD(400, "malformed request line");
    if (i >= sizeof req->method) return BAD(501, "method name too long");
    memcpy(req->method, s, i);
    req->method[i] = 0;
    size_t t0 = ++i;
    while (i < n && s[i] != ' ') {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7F)
            return BAD(400, "control character or space in the request target");
        i++;
    }
    if (i == t0 || i >= n) return BAD(400, "malformed request line");
    req->target = s + t0;
    req->target_len = i - t0;
    if (req->target[0] != '/')
        return BAD(400, "the request target must be a path starting with '/'");
    const char *q = memchr(req->target, '?', req->target_len);
    req->path_len = q ? (size_t)(q - req->target) : req->target_len;
    i++;
    if (n - i != 8 || memcmp(s + i, "HTTP/", 5) || s[i + 5] < '0' || s[i + 5] > '9' ||
        s[i + 6] != '.' || s[i + 7] < '0' || s[i + 7] > '9')
        return BAD(400, "malformed HTTP version in the request line");
    if (s[i + 5] != '1') return BAD(505, "only HTTP/1.x is supported");
    req->minor = s[i + 7] - '0';
    return 0;
}

static int parse_header_line(const char *s, size_t n, http_request *req, long long max_body,
                             int *n_host, int *status, char *msg, size_t msgn) {
    if (s[0] == ' ' || s[0] == '\t') return BAD(400, "obsolete header line folding");
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i])) i++;
    if (i == 0 || i >= n || s[i] != ':') return BAD(400, "malformed header line");
    size_t v0 = i + 1, v1 = n;
    while (v0 < v1 && (s[v0] == ' ' || s[v0] == '\t')) v0++;
    while (v1 > v0 && (s[v1 - 1] == ' ' || s[v1 - 1] == '\t')) v1--;
    for (size_t k = v0; k < v1; k++) {
        unsigned char c = (unsigned char)s[k];
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            return BAD(400, "control character in a header value");
    }
    if (req->n_headers >= HTTP_MAX_HEADERS) return BAD(431, "too many header fields");
    http_header *h = &req->headers[req->n_headers++];
    h->name = s;
    h->name_len = i;
    h->value = s + v0;
    h->value_len = v1 - v0;
    if (ieq(s, i, "content-length")) {
        if (h->value_len == 0) return BAD(400, "empty Content-Length");
        long long v = 0;
        for (size_t k = 0; k < h->value_len; k++) {
            char c = h->value[k];
            if (c < '0' || c > '9') return BAD(400, "Content-Length is not a number");
            if (v > 1000000000000000LL) return BAD(413, "Content-Length too large");
            v = v * 10 + (c - '0');
        }
        if (req->content_length >= 0 && req->content_length != v)
            return BAD(400, "conflicting Content-Length headers");
        req->content_length = v;
        if (v > max_body) {
            *status = 413;
            if (msg && msgn)
                snprintf(msg, msgn,
                         "request body of %lld bytes is over the limit of %lld bytes (--max-body)",
                         v, max_body);
            return -1;
        }
    } else if (ieq(s, i, "transfer-encoding")) {
        return BAD(
            501,
            "Transfer-Encoding (chunked request bodies) is not supported: send Content-Length");
    } else if (ieq(s, i, "expect")) {
        if (!ieq(h->value, h->value_len, "100-continue"))
            return BAD(417, "unsupported Expect header");
        req->expect_continue = 1;
    } else if (ieq(s, i, "host")) {
        (*n_host)++;
    }
    return 0;
}

int http_parse_head(const char *buf, size_t n, long long max_body, http_request *req, int *status,
                    char *msg, size_t msgn) {
    memset(req, 0, sizeof *req);
    req->content_length = -1;
    *status = 0;
    if (msg && msgn) msg[0] = 0;
    size_t pos = 0;
    int line = 0, n_host = 0;
    for (;;) {
        const char *nl = memchr(buf + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - buf) : n; /* line is buf[pos..end) (+ '\r') */
        size_t len = end - pos;
        if (len > 0 && nl && buf[end - 1] == '\r') len--;
        if (len > HTTP_MAX_LINE)
            return line == 0 ? BAD(414, "request line longer than 8192 bytes")
                             : BAD(431, "header line longer than 8192 bytes");
        if ((nl ? end + 1 : n) > HTTP_MAX_HEAD)
            return BAD(431, "request head larger than 32768 bytes");
        if (!nl) return 0; /* need more bytes */
        const char *s = buf + pos;
        if (memchr(s, '\r', len)) return BAD(400, "bare CR in the request head");
        if (line == 0) {
            if (parse_request_line(s, len, req, status, msg, msgn)) return -1;
        } else if (len == 0) {
            req->head_len = end + 1;
            if (req->minor >= 1 && n_host != 1)
                return BAD(400, n_host ? "more than one Host header"
                                       : "HTTP/1.1 request without a Host header");
            return 1;
        } else if (parse_header_line(s, len, req, max_body, &n_host, status, msg, msgn)) {
            return -1;
        }
        pos = end + 1;
        line++;
    }
}
#undef BAD

const char *http_get_header(const http_request *req, const char *name, size_t *len) {
    for (int i = 0; i < req->n_headers; i++)
        if (ieq(req->headers[i].name, req->headers[i].name_len, name)) {
            if (len) *len = req->headers[i].value_len;
            return req->headers[i].value;
        }
    return NULL;
}

int http_path_is(const http_request *req, const char *path) {
    return ieq(req->target, req->path_len, path);
}

const char *http_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* ======================================================================
 * socket I/O
 * ====================================================================== */
double http_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Waits until fd is readable or the deadline passes: 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, double deadline) {
    for (;;) {
        double left = deadline - http_now();
        if (left <= 0) return 0;
        struct pollfd p = {fd, events, 0};
        int ms = left > 1e6 ? 1000000000 : (int)(left * 1000) + 1;
        int r = poll(&p, 1, ms);
        if (r > 0) return 1;
        if (r == 0) continue; /* re-check the deadline */
        if (errno != EINTR) return -1;
    }
}

int http_read_request(int fd, long long max_body, double deadline, http_request *req, char **bufp,
                      int *status, char *msg, size_t msgn) {
    *bufp = NULL;
    *status = 0;
    size_t cap = 4096, n = 0, scan = 0;
    char *buf = malloc(cap + 1);
    if (!buf) return -1;
    int have_head = 0;
    size_t need = 0; /* total bytes (head + body) once the head is parsed */
    for (;;) {
        if (!have_head) {
            /* parse when a blank line has arrived or a limit is passed */
            int complete = 0;
            for (size_t i = scan ? scan - 1 : 0; i + 1 < n && !complete; i++)
                complete =
                    buf[i] == '\n' &&
                    (buf[i + 1] == '\n' || (buf[i + 1] == '\r' && i + 2 < n && buf[i + 2] == '\n'));
            const char *last_nl = n ? memrchr(buf, '\n', n) : NULL;
            size_t cur_line = last_nl ? n - (size_t)(last_nl - buf) - 1 : n;
            scan = n > 2 ? n - 2 : 0;
            if (complete || n > HTTP_MAX_HEAD || cur_line > HTTP_MAX_LINE + 1) {
                int r = http_parse_head(buf, n, max_body, req, status, msg, msgn);
                if (r < 0) goto fail;
                if (r > 0) {
                    have_head = 1;
                    long long cl = req->content_length > 0 ? req->content_length : 0;
                    need = req->head_len + (size_t)cl;
                    if (need + 1 > cap) {
                        char *nb = realloc(buf, need + 1);
                        if (!nb) {
                            *status = 500;
                            snprintf(msg, msgn, "out of memory for a %lld-byte body", cl);
                            goto fail;
                        }
                        buf = nb;
                        cap = need;
                    }
                    if (req->expect_continue && cl > 0 && n < need) {
                        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                        if (http_write_all(fd, cont, sizeof cont - 1, deadline - http_now()))
                            goto fail;
                    }
                }
            }
        }
        if (have_head && n >= need) break;
        if (n == cap) { /* grow while reading the head */
            size_t nc = cap * 2 > HTTP_MAX_HEAD + 2 ? HTTP_MAX_HEAD + 2 : cap * 2;
            char *nb = nc > cap ? realloc(buf, nc + 1) : NULL;
            if (!nb) goto fail;
            buf = nb;
            cap = nc;
        }
        int w = wait_fd(fd, POLLIN, deadline);
        if (w == 0) {
            *status = 408;
            snprintf(msg, msgn, "the request did not arrive in time (%zu bytes received)", n);
            goto fail;
        }
        if (w < 0) goto fail;
        ssize_t k = recv(fd, buf + n, (have_head ? need : cap) - n, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k <= 0) {
            if (n > 0 && k == 0) {
                *status = 400;
                snprintf(msg, msgn,
                         "connection closed before the request was complete (%zu bytes received)",
                         n);
            }
            goto fail;
        }
        n += (size_t)k;
    }
    buf[need] = 0;
    /* the buffer may have moved since the head was parsed: point into it again */
    if (http_parse_head(buf, req->head_len, max_body, req, status, msg, msgn) != 1) goto fail;
    req->body = buf + req->head_len;
    if (req->content_length < 0) req->content_length = 0;
    *bufp = buf;
    return 0;
fail:
    free(buf);
    return -1;
}

int http_write_all(int fd, const void *p, size_t n, double timeout_s) {
    const char *s = p;
    while (n > 0) {
        if (wait_fd(fd, POLLOUT, http_now() + timeout_s) != 1) return -1;
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (k <= 0) return -1;
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

static const char common_headers[] = "Cache-Control: no-store\r\n"
                                     "X-Content-Type-Options: nosniff\r\n"
                                     "Connection: close\r\n";

int http_respond(int fd, int status, const char *content_type, const char *extra_headers,
                 const void *body, size_t n, double timeout_s) {
    char head[1024];
    int k = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                     status, http_reason(status), content_type, n, common_headers,
                     extra_headers ? extra_headers : "");
    if (k < 0 || (size_t)k >= sizeof head) return -1;
    if (http_write_all(fd, head, (size_t)k, timeout_s)) return -1;
    return n ? http_write_all(fd, body, n, timeout_s) : 0;
}

int http_sse_begin(int fd, double timeout_s) {
    char head[512];
    int k = snprintf(
        head, sizeof head,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n%sX-Accel-Buffering: no\r\n\r\n",
        common_headers);
    return http_write_all(fd, head, (size_t)k, timeout_s);
}

int http_peer_gone(int fd) {
    for (int rounds = 0; rounds < 64; rounds++) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 0);
        if (r < 0) return errno != EINTR;
        if (r == 0) return 0;
        if (p.revents & (POLLERR | POLLNVAL)) return 1;
        char sink[4096];
        ssize_t k = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (k == 0) return 1; /* orderly shutdown by the peer */
        if (k < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
        if (p.revents & POLLHUP) return 1;
    }
    return 0; /* still sending: not gone */
}

/* ======================================================================
 * base64 and data: URLs
 * ====================================================================== */
static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t n) {
    return (n + 2) / 3 * 4;
}

void base64_encode(const uint8_t *in, size_t n, char *out) {
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = b64[v >> 6 & 63];
        out[o++] = b64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64[v >> 18];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64[v >> 18];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = b64[v >> 6 & 63];
        out[o++] = '=';
    }
    out[o] = 0;
}

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int base64_decode(const char *in, size_t n, uint8_t **out, size_t *out_n, const char **why) {
    *out = NULL;
    *out_n = 0;
    uint8_t *o = malloc(n / 4 * 3 + 3);
    if (!o) return *why = "out of memory", -1;
    size_t k = 0, digits = 0, pad = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad) {
            free(o);
            *why = v < 0 ? "a character outside the base64 alphabet" : "data after '=' padding";
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        if (++digits % 4 == 0) {
            o[k++] = (uint8_t)(acc >> 16);
            o[k++] = (uint8_t)(acc >> 8);
            o[k++] = (uint8_t)acc;
            acc = 0;
        }
    }
    size_t rem = digits % 4;
    /* rem 1 is never valid; padding, when given, completes the last quantum */
    if (rem == 1 || (pad && (rem == 0 || rem + pad != 4)) || pad > 2) {
        free(o);
        *why = "bad base64 length or padding";
        return -1;
    }
    if (rem == 2) o[k++] = (uint8_t)(acc >> 4);
    if (rem == 3) {
        o[k++] = (uint8_t)(acc >> 10);
        o[k++] = (uint8_t)(acc >> 2);
    }
    *out = o;
    *out_n = k;
    return 0;
}

int data_url_decode(const char *url, size_t n, char *mt, size_t mtn, uint8_t **out, size_t *out_n,
                    const char **why) {
    *out = NULL;
    *out_n = 0;
    if (mtn) mt[0] = 0;
    if (n < 5 || !ieq(url, 5, "data:")) return *why = "not a data: URL", -1;
    const char *comma = memchr(url, ',', n);
    if (!comma) return *why = "data: URL without ','", -1;
    const char *p = url + 5, *semi = memchr(p, ';', (size_t)(comma - p));
    const char *mt_end = semi ? semi : comma;
    size_t ml = (size_t)(mt_end - p);
    if (ml + 1 > mtn) return *why = "media type too long", -1;
    for (size_t i = 0; i < ml; i++) mt[i] = (char)lower((unsigned char)p[i]);
    mt[ml] = 0;
    /* the last parameter before ',' must be ";base64" */
    if (comma - url < 12 || !ieq(comma - 7, 7, ";base64"))
        return *why = "only base64 data: URLs are accepted (';base64,')", -1;
    return base64_decode(comma + 1, n - (size_t)(comma + 1 - url), out, out_n, why);
}
