/* tests/fuzz_http.c - libFuzzer harness for http.c: the request-head parser
 * (every pointer it returns lies inside the input, a complete head is
 * complete at its own length and not one byte earlier, errors carry a status
 * and a message), reading a whole request from a socket (http_read_request
 * on a socketpair holding the input), base64 (decode -> encode -> decode is
 * stable) and data: URLs. Any crash, sanitizer report or broken invariant is
 * a finding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"

static int inside(const char *p, size_t n, const char *buf, size_t len) {
    return p >= buf && p + n <= buf + len;
}

static void check_head(const char *buf, size_t n, long long max_body) {
    http_request r;
    int status;
    char msg[200];
    int rc = http_parse_head(buf, n, max_body, &r, &status, msg, sizeof msg);
    if (rc < -1 || rc > 1) abort();
    if (rc == -1) {
        static const int ok[] = {400, 413, 414, 417, 431, 501, 505};
        int found = 0;
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) found |= status == ok[i];
        if (!found || !msg[0]) abort();
        return;
    }
    if (rc == 0) return;
    if (r.head_len == 0 || r.head_len > n || r.head_len > HTTP_MAX_HEAD) abort();
    if (!inside(r.target, r.target_len, buf, r.head_len) || r.path_len > r.target_len ||
        r.target[0] != '/')
        abort();
    if (strlen(r.method) == 0 || strlen(r.method) >= sizeof r.method) abort();
    if (r.content_length > max_body || r.content_length < -1 || r.n_headers > HTTP_MAX_HEADERS)
        abort();
    for (int i = 0; i < r.n_headers; i++)
        if (!inside(r.headers[i].name, r.headers[i].name_len, buf, r.head_len) ||
            !inside(r.headers[i].value, r.headers[i].value_len, buf, r.head_len) ||
            !r.headers[i].name_len)
            abort();
    /* the head is complete exactly at head_len */
    if (http_parse_head(buf, r.head_len, max_body, &r, &status, msg, sizeof msg) != 1) abort();
    if (http_parse_head(buf, r.head_len - 1, max_body, &r, &status, msg, sizeof msg) == 1) abort();
}

static void check_read(const char *buf, size_t n, long long max_body) {
    int sv[2];
    if (n > 60000 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return;
    if (write(sv[0], buf, n) != (ssize_t)n) abort();
    shutdown(sv[0], SHUT_WR);
    http_request r;
    char *req = NULL, msg[300];
    int status;
    int rc = http_read_request(sv[1], max_body, http_now() + 5, &r, &req, &status, msg, sizeof msg);
    if (rc == 0) {
        if (!req || r.content_length < 0 || r.content_length > max_body ||
            r.head_len + (size_t)r.content_length > n || r.body != req + r.head_len ||
            memcmp(req, buf, r.head_len + (size_t)r.content_length))
            abort();
        /* every pointer of the request lies in the buffer it returned */
        if (!inside(r.target, r.target_len, req, r.head_len)) abort();
        for (int i = 0; i < r.n_headers; i++)
            if (!inside(r.headers[i].name, r.headers[i].name_len, req, r.head_len) ||
                !inside(r.headers[i].value, r.headers[i].value_len, req, r.head_len))
                abort();
        free(req);
    } else if (req || status == 408) {
        abort(); /* no buffer on failure; the input is all there, no timeout */
    }
    close(sv[0]);
    close(sv[1]);
}

static void check_base64(const char *buf, size_t n) {
    uint8_t *d, *d2;
    size_t dn, dn2;
    const char *why;
    if (base64_decode(buf, n, &d, &dn, &why)) {
        if (!why || d) abort();
        return;
    }
    char *e = malloc(base64_encoded_len(dn) + 1);
    base64_encode(d, dn, e);
    if (strlen(e) != base64_encoded_len(dn)) abort();
    if (base64_decode(e, strlen(e), &d2, &dn2, &why) || dn2 != dn || memcmp(d, d2, dn)) abort();
    free(d2);
    free(e);
    free(d);
    char mt[64];
    if (data_url_decode(buf, n, mt, sizeof mt, &d, &dn, &why) == 0) {
        if (strlen(mt) >= sizeof mt) abort();
        free(d);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    long long max_body = (long long)(data[0] & 0x0F) << (data[0] >> 4); /* 0 .. 15 << 15 */
    /* an exact-size copy: reading past the end is caught */
    char *buf = malloc(size - 1 ? size - 1 : 1);
    memcpy(buf, data + 1, size - 1);
    check_head(buf, size - 1, max_body);
    if (data[0] & 1) check_read(buf, size - 1, max_body);
    check_base64(buf, size - 1);
    free(buf);
    return 0;
}
