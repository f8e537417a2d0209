/* serve.c - `seedx serve`: SEED-X loaded once behind a local HTTP API that
 * follows the OpenAI chat-completions conventions, and a web page.
 * A front-end: it uses only the library's public API (seedx.h).
 *
 * Threads. The main thread accepts connections. Each connection gets a
 * thread that reads and checks one request (http.c, json.c), answers the
 * cheap endpoints itself and turns a model request into a job in a bounded
 * FIFO queue. One worker thread runs the jobs one at a time: the cores are
 * the resource, and the library's thread pool does the parallel work. The
 * connection thread relays its job's output (the whole response, or
 * server-sent events as the worker produces them) and watches its socket:
 * a client that goes away cancels its job, taken out of the queue if it
 * waits, stopped at the next token or denoising step if it runs (the
 * library's per-thread stop check, sx_set_stop_check).
 *
 * Endpoints
 *   GET  /                       the web page (webui.html, embedded)
 *   GET  /health                 status, queue
 *   GET  /v1/models              the model, its modes and defaults
 *   POST /v1/chat/completions    messages with text and image_url parts (data:
 *                                URLs), multi-turn, stream; mode chat | ground |
 *                                generate | edit
 *   POST /v1/images/generations  prompt -> image (b64_json)
 *   POST /v1/images/edits        image (data: URL) + prompt -> image
 *
 * Prompts. A request's messages become a conversation of the library
 * (sx_seedx_conv_*, SEED-X's multi-turn format): build_conversation(). An
 * answer's content is its turn text (tags kept), so a client that sends the
 * history back continues the conversation exactly. */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "cli.h"
#include "json.h"
#include "seedx.h"

/* ---- fixed limits --------------------------------------------------------- */
#define MAX_IMAGES   16        /* images per request (as the CLI) */
#define MAX_MESSAGES 256       /* messages per request */
#define MAX_TEXT     (1 << 20) /* bytes of text per request */
#define JSON_DEPTH   32        /* JSON nesting */
#define JSON_VALUES  100000    /* JSON values per request */
#define MAX_OUT_SIDE 4096      /* generated image side, pixels */
#define MODEL_ID     "seed-x"
#define IMAGE_TOKENS 64 /* image tokens of a generated image (progress events) */

/* ---- the web page, embedded from webui.html ------------------------------
 * Global hidden symbols: the C references then resolve the same way on
 * every target (with local labels, an aarch64 PIE link saw an empty page). */
__asm__(".pushsection .rodata\n"
        ".balign 16\n"
        ".global seedx_webui_start\n"
        ".hidden seedx_webui_start\n"
        "seedx_webui_start:\n"
        ".incbin \"webui.html\"\n"
        ".global seedx_webui_end\n"
        ".hidden seedx_webui_end\n"
        "seedx_webui_end:\n"
        ".byte 0\n"
        ".popsection\n");
extern const char seedx_webui_start[] __attribute__((visibility("hidden")));
extern const char seedx_webui_end[] __attribute__((visibility("hidden")));

/* ---- configuration --------------------------------------------------------- */
typedef struct {
    const char *model, *host, *grids;
    int port, max_queue, max_conns, quiet;
    long long max_body, max_image_pixels;
    int max_image_side;
    double read_timeout, write_timeout;
    /* request defaults */
    int steps, width, height;
    float cfg, image_cfg;
    int64_t max_tokens; /* 0: the mode's default (as the CLI) */
} serve_cfg;

enum { API_CHAT, API_IMAGES_GENERATE, API_IMAGES_EDIT };
enum { MODE_CHAT, MODE_GROUND, MODE_GENERATE, MODE_EDIT };
static const char *const mode_names[] = {"chat", "ground", "generate", "edit"};
enum { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };
enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

/* One image of a request: the encoded bytes (decoded by the worker) and
 * where it came from, for error messages. */
typedef struct {
    uint8_t *bytes;
    size_t n;
    int w, h;
    char where[48];
} req_image;

typedef struct {
    int role;
    char *text;
    int img0, n_img; /* this turn's images: img[img0 .. img0+n_img) */
} turn;

typedef struct job {
    /* the request, checked by the connection thread */
    int api, mode, stream, force_image, base_template;
    turn turns[MAX_MESSAGES];
    int n_turns;
    req_image img[MAX_IMAGES];
    int n_img;
    sx_seedx_opts o;
    char grids[64];
    char id[48];
    long long created;
    /* shared with the worker, under S.mu */
    int state;
    int status;        /* 0 undecided; 200 once output began (stream) or done */
    jbuf out;          /* response body, or SSE bytes not yet sent */
    atomic_int cancel; /* the client went away */
    pthread_cond_t cv;
    struct job *next;
} job;

static struct {
    serve_cfg c;
    sx_seedx *m;
    int64_t n_ctx;
    int has_edit;
    int loopback, port;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, conn_cv;
    job *head, *tail;
    int n_waiting, running, n_conns;
    long long n_requests, n_jobs;
    double job_seconds; /* running mean of a job's duration */
    atomic_int stopping;
    int wake_pipe[2];
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
    if (S.c.quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* ======================================================================
 * errors as JSON: {"error": {"message", "type", "code"}}
 * ====================================================================== */
typedef struct {
    int status;
    char msg[600];
} reqerr;

static int rerr(reqerr *e, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rerr(reqerr *e, int status, const char *fmt, ...) {
    e->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *error_type(int status) {
    return status == 503 ? "server_busy" : status >= 500 ? "server_error" : "invalid_request_error";
}

static void error_json(jbuf *b, int status, const char *msg) {
    jb_puts(b, "{\"error\":{\"message\":");
    jb_str(b, msg, strlen(msg));
    jb_printf(b, ",\"type\":\"%s\",\"code\":%d}}", error_type(status), status);
}

static void send_error_t(int fd, int status, const char *msg, const char *extra, double timeout) {
    jbuf b = {0};
    error_json(&b, status, msg);
    http_respond(fd, status, "application/json", extra, b.p, b.n, timeout);
    jb_free(&b);
}

static void send_error(int fd, int status, const char *msg, const char *extra) {
    send_error_t(fd, status, msg, extra, S.c.write_timeout);
}

/* ======================================================================
 * request checking (connection thread): JSON -> job
 * ====================================================================== */
/* Optional number `key` in [lo, hi] (integral if asked); absent or null
 * keeps *out. */
static int opt_num(const json_value *o, const char *key, double lo, double hi, int integral,
                   double *out, reqerr *e) {
    const json_value *v = json_get(o, key);
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type != JSON_NUMBER)
        return rerr(e, 400, "'%s' must be a number, got %s", key, json_type_name(v->type));
    if (integral && v->number != floor(v->number))
        return rerr(e, 400, "'%s' must be an integer", key);
    if (v->number < lo || v->number > hi)
        return rerr(e, 400, "'%s' = %g is outside [%g, %g]", key, v->number, lo, hi);
    *out = v->number;
    return 0;
}

static int opt_float(const json_value *o, const char *key, double lo, double hi, float *dst,
                     reqerr *e) {
    double v = *dst;
    if (opt_num(o, key, lo, hi, 0, &v, e)) return -1;
    *dst = (float)v;
    return 0;
}

static int opt_int(const json_value *o, const char *key, double lo, double hi, int *dst,
                   reqerr *e) {
    double v = *dst;
    if (opt_num(o, key, lo, hi, 1, &v, e)) return -1;
    *dst = (int)v;
    return 0;
}

static int opt_bool(const json_value *o, const char *key, int *out, reqerr *e) {
    const json_value *v = json_get(o, key);
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type != JSON_BOOL) return rerr(e, 400, "'%s' must be true or false", key);
    *out = v->boolean;
    return 0;
}

static int opt_str(const json_value *o, const char *key, const char **out, reqerr *e) {
    const json_value *v = json_get(o, key);
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type != JSON_STRING) return rerr(e, 400, "'%s' must be a string", key);
    *out = v->str;
    return 0;
}

/* Width and height of a PNG or JPEG from its header, before any decoding. */
static int image_dims(const uint8_t *b, size_t n, int *w, int *h, const char **why) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (n >= 24 && !memcmp(b, sig, 8) && !memcmp(b + 12, "IHDR", 4)) {
        uint32_t W = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
        uint32_t H = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
        if (W == 0 || H == 0 || W > 1u << 30 || H > 1u << 30) return *why = "bad PNG size", -1;
        *w = (int)W, *h = (int)H;
        return 0;
    }
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8) {
        int ch;
        if (sx_jpeg_info(b, n, "image", w, h, &ch)) return *why = sx_errmsg(), -1;
        return 0;
    }
    return *why = "neither a PNG nor a JPEG", -1;
}

/* An image_url: a base64 data: URL of a PNG or JPEG within the size limits. */
static int add_image(job *j, const char *url, size_t n, const char *where, reqerr *e) {
    if (j->n_img >= MAX_IMAGES)
        return rerr(e, 400, "%s: more than %d images in the request", where, MAX_IMAGES);
    if (n < 5 || strncasecmp(url, "data:", 5))
        return rerr(e, 400,
                    "%s: only data: URLs are accepted (data:image/png;base64,...); the server "
                    "fetches nothing",
                    where);
    char mt[64];
    uint8_t *b;
    size_t bn;
    const char *why;
    if (data_url_decode(url, n, mt, sizeof mt, &b, &bn, &why))
        return rerr(e, 400, "%s: bad data: URL: %s", where, why);
    if (strcmp(mt, "image/png") && strcmp(mt, "image/jpeg") && strcmp(mt, "image/jpg")) {
        free(b);
        return rerr(e, 400, "%s: unsupported image type '%s' (PNG or JPEG)", where, mt);
    }
    int w, h;
    if (image_dims(b, bn, &w, &h, &why)) {
        free(b);
        return rerr(e, 400, "%s: image does not decode: %s", where, why);
    }
    if (w > S.c.max_image_side || h > S.c.max_image_side ||
        (long long)w * h > S.c.max_image_pixels) {
        free(b);
        return rerr(
            e, 400,
            "%s: image %dx%d is over the limits (--max-image-side %d, --max-image-pixels %lld)",
            where, w, h, S.c.max_image_side, S.c.max_image_pixels);
    }
    req_image *im = &j->img[j->n_img++];
    im->bytes = b, im->n = bn, im->w = w, im->h = h;
    snprintf(im->where, sizeof im->where, "%s", where);
    return 0;
}

static int text_ok(const json_value *v, const char *where, size_t *total, reqerr *e) {
    if (strlen(v->str) != v->len) return rerr(e, 400, "%s: text contains a NUL character", where);
    *total += v->len;
    if (*total > MAX_TEXT)
        return rerr(e, 400, "more than %d bytes of text in the request", MAX_TEXT);
    return 0;
}

/* One message's content: a string, or an array of text / image_url parts.
 * Images of assistant messages are not part of the prompt (the conversation
 * keeps a turn's answer as text). */
static int parse_content(job *j, const json_value *c, int mi, turn *t, size_t *total, reqerr *e) {
    char where[48];
    jbuf text = {0};
    snprintf(where, sizeof where, "messages[%d].content", mi);
    if (!c) return rerr(e, 400, "%s is required", where);
    if (c->type == JSON_STRING) {
        if (text_ok(c, where, total, e)) return -1;
        jb_put(&text, c->str, c->len);
    } else if (c->type == JSON_ARRAY) {
        int pi = 0;
        for (const json_value *p = c->child; p; p = p->next, pi++) {
            snprintf(where, sizeof where, "messages[%d].content[%d]", mi, pi);
            const json_value *ty = json_get_type(p, "type", JSON_STRING);
            if (!ty) {
                jb_free(&text);
                return rerr(e, 400, "%s: a content part is an object with a 'type'", where);
            }
            if (!strcmp(ty->str, "text")) {
                const json_value *s = json_get_type(p, "text", JSON_STRING);
                if (!s || text_ok(s, where, total, e)) {
                    jb_free(&text);
                    return s ? -1 : rerr(e, 400, "%s: 'text' (a string) is required", where);
                }
                if (text.n) jb_puts(&text, "\n");
                jb_put(&text, s->str, s->len);
            } else if (!strcmp(ty->str, "image_url")) {
                const json_value *u = json_get(p, "image_url");
                if (u && u->type == JSON_OBJECT) u = json_get(u, "url");
                if (!u || u->type != JSON_STRING) {
                    jb_free(&text);
                    return rerr(e, 400, "%s: 'image_url' needs a 'url' string", where);
                }
                if (t->role == ROLE_SYSTEM) {
                    jb_free(&text);
                    return rerr(e, 400, "%s: a system message cannot hold images", where);
                }
                if (t->role == ROLE_USER) {
                    if (add_image(j, u->str, u->len, where, e)) {
                        jb_free(&text);
                        return -1;
                    }
                    t->n_img++;
                }
            } else {
                jb_free(&text);
                return rerr(e, 400, "%s: unknown content part type '%s' (text, image_url)", where,
                            ty->str);
            }
        }
    } else {
        return rerr(e, 400, "%s must be a string or an array of parts", where);
    }
    jb_puts(&text, ""); /* a NUL-terminated buffer even when empty */
    if (text.oom) {
        jb_free(&text);
        return rerr(e, 500, "out of memory");
    }
    t->text = text.p;
    return 0;
}

static int parse_messages(job *j, const json_value *root, reqerr *e) {
    const json_value *ms = json_get(root, "messages");
    if (!ms) return rerr(e, 400, "'messages' is required");
    if (ms->type != JSON_ARRAY || ms->len == 0)
        return rerr(e, 400, "'messages' must be a non-empty array");
    if (ms->len > MAX_MESSAGES) return rerr(e, 400, "more than %d messages", MAX_MESSAGES);
    size_t total = 0;
    int mi = 0;
    for (const json_value *m = ms->child; m; m = m->next, mi++) {
        const json_value *r = json_get_type(m, "role", JSON_STRING);
        if (!r) return rerr(e, 400, "messages[%d]: 'role' (a string) is required", mi);
        turn *t = &j->turns[j->n_turns];
        t->role = !strcmp(r->str, "user")                                     ? ROLE_USER
                  : !strcmp(r->str, "assistant")                              ? ROLE_ASSISTANT
                  : !strcmp(r->str, "system") || !strcmp(r->str, "developer") ? ROLE_SYSTEM
                                                                              : -1;
        if (t->role < 0)
            return rerr(e, 400, "messages[%d]: unknown role '%s' (system, user, assistant)", mi,
                        r->str);
        if (t->role == ROLE_SYSTEM && mi > 0)
            return rerr(e, 400, "messages[%d]: a system message must come first", mi);
        t->img0 = j->n_img;
        if (parse_content(j, json_get(m, "content"), mi, t, &total, e)) return -1;
        j->n_turns++;
    }
    if (j->turns[j->n_turns - 1].role != ROLE_USER)
        return rerr(e, 400, "the last message must be from the user");
    return 0;
}

/* "WxH", both sides positive multiples of 8 */
static int parse_size(const char *s, int *w, int *h, reqerr *e) {
    int a, b;
    char tail;
    if (sscanf(s, "%dx%d%c", &a, &b, &tail) != 2)
        return rerr(e, 400, "'size' must be \"WxH\", e.g. \"1024x1024\", got '%s'", s);
    if (a <= 0 || b <= 0 || a % 8 || b % 8)
        return rerr(e, 400, "size %dx%d: both sides must be positive multiples of 8", a, b);
    if (a > MAX_OUT_SIDE || b > MAX_OUT_SIDE || a > S.c.max_image_side || b > S.c.max_image_side)
        return rerr(e, 400, "size %dx%d: a side is over the limit of %d pixels", a, b,
                    MAX_OUT_SIDE < S.c.max_image_side ? MAX_OUT_SIDE : S.c.max_image_side);
    *w = a, *h = b;
    return 0;
}

/* The options every model endpoint takes: OpenAI's and SEED-X's. */
static int parse_options(job *j, const json_value *root, reqerr *e) {
    sx_seedx_opts *o = &j->o;
    sx_seedx_opts_default(o);
    o->steps = S.c.steps;
    o->cfg = S.c.cfg;
    o->image_cfg = S.c.image_cfg;
    o->width = S.c.width, o->height = S.c.height;
    /* max_new_tokens: the CLI's defaults (generate: 120, others 512) unless --max-tokens */
    o->max_new_tokens = S.c.max_tokens ? S.c.max_tokens : j->mode == MODE_GENERATE ? 120 : 512;
    double v;
    const char *s = NULL;
    v = (double)o->max_new_tokens;
    if (opt_num(root, "max_completion_tokens", 1, (double)S.n_ctx, 1, &v, e) ||
        opt_num(root, "max_tokens", 1, (double)S.n_ctx, 1, &v, e))
        return -1;
    o->max_new_tokens = (int64_t)v;
    v = (double)o->seed;
    if (opt_num(root, "seed", 0, 9007199254740992.0, 1, &v, e)) return -1;
    o->seed = (uint64_t)v;
    if (opt_float(root, "temperature", 0, 100, &o->temperature, e) ||
        opt_float(root, "top_p", 0, 1, &o->top_p, e) ||
        opt_int(root, "top_k", 0, 1e6, &o->top_k, e) ||
        opt_int(root, "steps", 1, 1000, &o->steps, e) ||
        opt_float(root, "cfg", 0, 100, &o->cfg, e) ||
        opt_float(root, "image_cfg", 0, 100, &o->image_cfg, e))
        return -1;
    if (opt_str(root, "size", &s, e) || (s && parse_size(s, &o->width, &o->height, e))) return -1;
    v = 1;
    if (opt_num(root, "n", 1, 1, 1, &v, e)) return rerr(e, 400, "'n': one image per request");
    if (opt_bool(root, "stream", &j->stream, e) ||
        opt_bool(root, "force_image", &j->force_image, e))
        return -1;
    s = NULL;
    if (opt_str(root, "template", &s, e)) return -1;
    if (s && strcmp(s, "seed-x-i") && strcmp(s, "seed-x"))
        return rerr(e, 400,
                    "'template' must be \"seed-x-i\" (default) or \"seed-x\" (the base model)");
    j->base_template = s && !strcmp(s, "seed-x");
    s = S.c.grids;
    if (opt_str(root, "grids", &s, e)) return -1;
    if (j->mode == MODE_EDIT && !json_get(root, "grids")) s = "1x1"; /* the edit script's grid */
    if (s) {
        int res[SX_ANYRES_MAX_GRIDS][2], nres;
        if (strlen(s) >= sizeof j->grids || sx_anyres_parse_grids(s, res, &nres))
            return rerr(e, 400, "'grids': %s",
                        strlen(s) >= sizeof j->grids ? "too long" : sx_errmsg());
        snprintf(j->grids, sizeof j->grids, "%s", s);
    }
    o->grids = s;
    int bad = sx_seedx_opts_check(o); /* the checks every front-end shares (seedx.h) */
    o->grids = NULL;
    if (bad) return rerr(e, 400, "%s", sx_errmsg());
    return 0;
}

/* What each mode needs, checked before the request waits in the queue. */
static int check_mode(job *j, reqerr *e) {
    if (j->mode == MODE_EDIT && !S.has_edit)
        return rerr(e, 400,
                    "mode edit: this model has no unet_edit.gguf / detokenizer_edit.gguf "
                    "(convert SEED-X-Edit with --variant seed-x-edit)");
    if (j->mode == MODE_EDIT && j->n_img != 1)
        return rerr(e, 400, "mode edit needs exactly one image, got %d", j->n_img);
    if (j->mode == MODE_GENERATE && j->n_img)
        return rerr(e, 400, "mode generate takes no image (use mode edit)");
    if (j->mode == MODE_GROUND && !j->n_img) return rerr(e, 400, "mode ground needs an image");
    int users = 0;
    for (int t = 0; t < j->n_turns; t++) users += j->turns[t].role == ROLE_USER;
    if (j->force_image && users > 1)
        return rerr(e, 400, "force_image applies to one-turn requests (%d user messages)", users);
    return 0;
}

static void job_free(job *j) {
    if (!j) return;
    for (int i = 0; i < j->n_turns; i++) free(j->turns[i].text);
    for (int i = 0; i < j->n_img; i++) free(j->img[i].bytes);
    jb_free(&j->out);
    pthread_cond_destroy(&j->cv);
    free(j);
}

static job *job_new(int api) {
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &a);
    pthread_condattr_destroy(&a);
    j->api = api;
    j->created = (long long)time(NULL);
    static atomic_llong counter;
    snprintf(j->id, sizeof j->id, "%s-%lld-%lld", api == API_CHAT ? "chatcmpl" : "img", j->created,
             (long long)atomic_fetch_add(&counter, 1));
    return j;
}

/* The body of a model endpoint -> a checked job. */
static job *parse_job(int api, const char *body, size_t n, reqerr *e) {
    json_doc d;
    char jerr[200];
    json_limits lim = {JSON_DEPTH, JSON_VALUES};
    if (json_parse(body, n, &lim, &d, jerr, sizeof jerr)) {
        rerr(e, 400, "%s", jerr);
        return NULL;
    }
    job *j = job_new(api);
    if (!j) {
        json_free(&d);
        rerr(e, 500, "out of memory");
        return NULL;
    }
    const json_value *root = d.root;
    int rc = -1;
    if (root->type != JSON_OBJECT) {
        rerr(e, 400, "the request body must be a JSON object");
        goto out;
    }
    if (api == API_CHAT) {
        const char *mode = "chat";
        if (opt_str(root, "mode", &mode, e)) goto out;
        j->mode = -1;
        for (int k = 0; k < 4; k++)
            if (!strcmp(mode, mode_names[k])) j->mode = k;
        if (j->mode < 0) {
            rerr(e, 400, "unknown mode '%s' (chat, ground, generate, edit)", mode);
            goto out;
        }
        if (parse_messages(j, root, e)) goto out;
    } else {
        j->mode = api == API_IMAGES_EDIT ? MODE_EDIT : MODE_GENERATE;
        const json_value *p = json_get(root, "prompt");
        if (!p) {
            rerr(e, 400, "'prompt' is required");
            goto out;
        }
        size_t total = 0;
        if (p->type != JSON_STRING) {
            rerr(e, 400, "'prompt' must be a string");
            goto out;
        }
        if (text_ok(p, "prompt", &total, e)) goto out;
        const char *fmt = NULL;
        if (opt_str(root, "response_format", &fmt, e)) goto out;
        if (fmt && strcmp(fmt, "b64_json")) {
            rerr(e, 400, "'response_format': only \"b64_json\" (the server stores no files)");
            goto out;
        }
        turn *t = &j->turns[j->n_turns++];
        t->role = ROLE_USER;
        if (!(t->text = strdup(p->str))) {
            rerr(e, 500, "out of memory");
            goto out;
        }
        if (api == API_IMAGES_EDIT) {
            const json_value *im = json_get(root, "image");
            if (im && im->type == JSON_ARRAY) im = im->len == 1 ? im->child : NULL;
            if (im && im->type == JSON_OBJECT) im = json_get(im, "url");
            if (!im || im->type != JSON_STRING) {
                rerr(e, 400, "'image' (a data: URL string) is required");
                goto out;
            }
            if (add_image(j, im->str, im->len, "image", e)) goto out;
            t->n_img = 1;
        }
    }
    if (parse_options(j, root, e) || check_mode(j, e)) goto out;
    rc = 0;
out:
    json_free(&d);
    if (rc) {
        job_free(j);
        return NULL;
    }
    return j;
}

/* ======================================================================
 * job output (worker side)
 * ====================================================================== */
static void job_emit(job *j, const char *s, size_t n) {
    pthread_mutex_lock(&S.mu);
    jb_put(&j->out, s, n);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&S.mu);
}

static void sse_send(job *j, jbuf *ev) {
    jbuf b = {0};
    jb_puts(&b, "data: ");
    jb_put(&b, ev->p, ev->n);
    jb_puts(&b, "\n\n");
    job_emit(j, b.p, b.n);
    jb_free(&b);
}

/* An error: the response when no output was sent yet, else an SSE event. */
static void job_error(job *j, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void job_error(job *j, int status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jbuf b = {0};
    error_json(&b, status, msg);
    pthread_mutex_lock(&S.mu);
    int streaming = j->status == 200;
    if (!streaming) {
        j->status = status;
        j->out.n = 0;
    }
    pthread_mutex_unlock(&S.mu);
    if (streaming) {
        sse_send(j, &b);
        job_emit(j, "data: [DONE]\n\n", 14);
    } else {
        job_emit(j, b.p, b.n);
    }
    jb_free(&b);
}

/* The chunk envelope of chat-completion streaming. */
static void chunk_begin(const job *j, jbuf *b) {
    jb_printf(
        b, "{\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":\"%s\",",
        j->id, j->created, MODEL_ID);
}

/* Progress: an SSE event (chat: a chunk with an empty delta). */
static void emit_progress(job *j, const char *stage, int step, int steps) {
    if (!j->stream) return;
    jbuf b = {0};
    if (j->api == API_CHAT) {
        chunk_begin(j, &b);
        jb_puts(&b, "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":null}],");
    } else {
        jb_puts(&b, "{\"type\":\"progress\",");
    }
    jb_printf(&b, "\"progress\":{\"stage\":\"%s\",\"step\":%d,\"steps\":%d}}", stage, step, steps);
    sse_send(j, &b);
    jb_free(&b);
}

/* Streams begin here: from now on the client gets 200 and events. */
static void begin_output(job *j) {
    if (!j->stream) return;
    pthread_mutex_lock(&S.mu);
    j->status = 200;
    pthread_mutex_unlock(&S.mu);
    if (j->api == API_CHAT) {
        jbuf b = {0};
        chunk_begin(j, &b);
        jb_puts(&b, "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                    "\"finish_reason\":null}]}");
        sse_send(j, &b);
        jb_free(&b);
    }
}

/* ======================================================================
 * the prompt of a conversation
 * ====================================================================== */
/* The request's messages as a conversation of the library (sx_seedx_conv_*,
 * SEED-X's own multi-turn format, decode_llava_data): each user turn with
 * its images - encoded here, in prompt order - and its text, each assistant
 * turn by its text. The template is the mode's: SEED-X-I's
 * "[INST] {IMG}{TEXT} [/INST]\n", or with "template": "seed-x" the base
 * model's question / detection / text-to-image prompt. The last user turn
 * gets the mode's text ("Generate an image: " + text for generate, as the
 * CLI); force_image ends the template with "<img>" (one-turn requests only,
 * checked before). System messages are left out: the format has no system
 * turn. A one-turn request gives the CLI's prompt. Returns 0, or the HTTP
 * status of the failure (sx_errmsg says what). */
static int build_conversation(sx_seedx *m, const job *j, const sx_image *ims, const char *grids,
                              sx_seedx_conv *c) {
    const char *tmpl = sx_seedx_template("seed-x-i");
    if (j->base_template)
        tmpl = sx_seedx_template(j->mode == MODE_GROUND     ? "seed-x-detect"
                                 : j->mode == MODE_GENERATE ? "seed-x-t2i"
                                                            : "seed-x");
    char forced[256];
    size_t tl = strlen(tmpl);
    if (j->force_image && !(tl >= 5 && !strcmp(tmpl + tl - 5, "<img>"))) {
        snprintf(forced, sizeof forced, "%s<img>", tmpl);
        tmpl = forced;
    }
    if (sx_seedx_conv_init(c, m, tmpl)) return 500;
    for (int t = 0; t < j->n_turns; t++) {
        const turn *tu = &j->turns[t];
        if (tu->role == ROLE_SYSTEM) continue;
        if (tu->role == ROLE_ASSISTANT) {
            if (sx_seedx_conv_assistant(c, m, tu->text)) return 400;
            continue;
        }
        int tiles[MAX_IMAGES];
        float *feats = NULL;
        int64_t rows = 0;
        if (tu->n_img &&
            sx_seedx_encode_images(m, ims + tu->img0, tu->n_img, grids, &feats, &rows, tiles)) {
            sx_err_prefix("vision: ");
            return 500;
        }
        const char *text = tu->text;
        char *own = NULL;
        if (t == j->n_turns - 1 && j->mode == MODE_GENERATE && !j->base_template) {
            if (!(own = sx_strf("Generate an image: %s", text))) return 500;
            text = own;
        }
        int rc = sx_seedx_conv_user(c, m, text, tiles, tu->n_img, feats, rows);
        free(own);
        free(feats);
        if (rc) return 400;
    }
    return 0;
}

/* ======================================================================
 * running a job (worker thread)
 * ====================================================================== */
/* Text streaming: after each token the text ids so far (the reply's turn
 * text: image tokens and the final EOS left out, tags kept) are decoded and
 * the part that can no longer change is sent as a delta. Held back: an
 * incomplete UTF-8 character, and a trailing space the tokenizer's clean-up
 * may still remove (" ." " ," " n't" " 's" ...). */
typedef struct {
    job *j;
    const sx_seedx *m;
    int *ids;
    size_t n, cap;
    jbuf sent;    /* text sent so far */
    int diverged; /* a decode changed text already sent: wait for the end */
    int n_img_tokens;
    double t_last_progress;
} streamer;

static size_t stable_len(const char *s, size_t n) {
    n = utf8_complete_prefix(s, n);
    const char *sp = NULL;
    for (size_t i = n; i > 0 && !sp; i--)
        if (s[i - 1] == ' ') sp = s + i - 1;
    if (sp) {
        size_t tail = n - (size_t)(sp - s) - 1;
        static const char *const held[] = {"", "n", "n'", "'", "'v", "'r"};
        for (size_t k = 0; k < sizeof held / sizeof held[0]; k++)
            if (strlen(held[k]) == tail && !memcmp(sp + 1, held[k], tail)) n = (size_t)(sp - s);
    }
    return n;
}

/* Sends text[sent .. len) when text extends what was sent. */
static void send_delta(streamer *st, const char *text, size_t len) {
    if (st->diverged) return;
    if (len < st->sent.n || (st->sent.n && memcmp(text, st->sent.p, st->sent.n))) {
        st->diverged = 1;
        return;
    }
    if (len == st->sent.n) return;
    jbuf b = {0};
    chunk_begin(st->j, &b);
    jb_puts(&b, "\"choices\":[{\"index\":0,\"delta\":{\"content\":");
    jb_str(&b, text + st->sent.n, len - st->sent.n);
    jb_puts(&b, "},\"finish_reason\":null}]}");
    sse_send(st->j, &b);
    jb_free(&b);
    jb_put(&st->sent, text + st->sent.n, len - st->sent.n);
}

static int on_token(void *user, int32_t id) {
    streamer *st = user;
    const sx_seedx_tokens *tk = sx_seedx_special(st->m);
    int is_img =
        id == tk->img_open || (tk->n_img && id >= tk->img[0] && id <= tk->img[tk->n_img - 1]);
    if (is_img) { /* the 64 image tokens: progress (at most 4 events a second), no text */
        double t = http_now();
        if (id != tk->img_open &&
            (++st->n_img_tokens == IMAGE_TOKENS || t - st->t_last_progress > 0.25)) {
            st->t_last_progress = t;
            emit_progress(st->j, "image_tokens", st->n_img_tokens, IMAGE_TOKENS);
        }
        return 0;
    }
    st->n_img_tokens = 0;
    if (!st->j->stream || st->j->api != API_CHAT || id == tk->eos) return 0;
    if (st->n == st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 64;
        int *ni = realloc(st->ids, sizeof(int) * nc);
        if (!ni) return 0;
        st->ids = ni, st->cap = nc;
    }
    st->ids[st->n++] = id;
    char *text = NULL;
    if (sx_detokenize(sx_seedx_tokenizer(st->m), st->ids, st->n, 0, &text, NULL)) return 0;
    send_delta(st, text, stable_len(text, strlen(text)));
    free(text);
    return 0;
}

static void on_prefill(void *ud, int64_t done, int64_t total) {
    streamer *st = ud;
    double t = http_now();
    if (done == total || t - st->t_last_progress > 0.25) { /* at most 4 events a second */
        st->t_last_progress = t;
        emit_progress(st->j, "prefill", (int)done, (int)total);
    }
}

static void on_denoise(void *ud, int step, int n_steps, float t, const float *lat) {
    (void)t, (void)lat;
    emit_progress(ud, "denoise", step + 1, n_steps);
}

/* The status of a job stopped by the stop check. */
static int stopped_status(const job *j) {
    return atomic_load(&j->cancel) ? 499 : atomic_load(&S.stopping) ? 503 : 500;
}

static int stop_check(void *user) {
    const job *j = user;
    return atomic_load(&j->cancel) || atomic_load(&S.stopping);
}

/* "data:image/png;base64,..." of an image */
static int png_data_url(const sx_image *im, jbuf *b) {
    uint8_t *png;
    size_t n;
    if (sx_png_encode(im, &png, &n)) return -1;
    char *s = malloc(base64_encoded_len(n) + 1);
    if (!s) {
        free(png);
        return sx_err("out of memory for base64");
    }
    base64_encode(png, n, s);
    jb_puts(b, "data:image/png;base64,");
    jb_puts(b, s);
    free(s);
    free(png);
    return 0;
}

typedef struct {
    sx_seedx_reply r;
    char *text; /* the answer as the conversation keeps it (sx_seedx_reply_turn_text) */
    int64_t n_prompt;
    sx_image out[4]; /* generated images (decoded), or the image with boxes */
    int n_out;
    int boxes_image; /* out[0] is the grounding image */
    double t_vision, t_llm, t_decode;
    int finished_by_eos;
} result;

static void result_free(result *res) {
    sx_seedx_reply_free(&res->r);
    free(res->text);
    for (int i = 0; i < res->n_out; i++) sx_image_free(&res->out[i]);
}

/* The model part shared by every endpoint: images -> conversation -> LLM
 * turn -> generated images decoded, or boxes drawn. Errors are reported on
 * the job; output (a stream's 200) begins once the prompt is known to fit. */
static int run_model(job *j, result *res) {
    sx_seedx *m = S.m;
    memset(res, 0, sizeof *res);
    sx_image ims[MAX_IMAGES];
    memset(ims, 0, sizeof ims);
    sx_seedx_conv conv;
    memset(&conv, 0, sizeof conv);
    int rc = -1;
    streamer st = {0};
    st.j = j, st.m = m;
    const char *grids = j->grids[0] ? j->grids : NULL;
    /* 1. the images, decoded */
    for (int i = 0; i < j->n_img; i++)
        if (sx_image_decode_rgb(j->img[i].bytes, j->img[i].n, j->img[i].where, &ims[i])) {
            job_error(j, 400, "%s: image does not decode: %s", j->img[i].where, sx_errmsg());
            goto out;
        }
    /* 2. the conversation (vision runs here), checked against the context */
    double t = http_now();
    int status = build_conversation(m, j, ims, grids, &conv);
    res->t_vision = http_now() - t;
    if (status) {
        job_error(j, stopped_status(j) == 500 ? status : stopped_status(j), "%s%s",
                  status == 400 ? "building the prompt: " : "", sx_errmsg());
        goto out;
    }
    res->n_prompt = conv.n;
    if (conv.n + j->o.max_new_tokens > S.n_ctx) {
        job_error(j, 400,
                  "prompt of %lld tokens + %lld new tokens (max_tokens) exceeds the context of "
                  "%lld tokens",
                  (long long)conv.n, (long long)j->o.max_new_tokens, (long long)S.n_ctx);
        goto out;
    }
    begin_output(j);
    /* 4. the LLM turn, streamed */
    sx_seedx_opts o = j->o;
    o.on_token = on_token;
    o.on_token_user = &st;
    o.prefill_progress = on_prefill;
    o.prefill_progress_user = &st;
    o.progress = on_denoise;
    o.progress_user = j;
    o.grids = grids;
    t = http_now();
    if (sx_seedx_generate(m, conv.ids, conv.n, conv.feats, conv.feat_rows, &o, &res->r)) {
        job_error(j, stopped_status(j), "generation: %s", sx_errmsg());
        goto out;
    }
    res->t_llm = http_now() - t;
    res->finished_by_eos =
        res->r.n_ids > 0 && res->r.ids[res->r.n_ids - 1] == sx_seedx_special(m)->eos;
    if (!(res->text = sx_seedx_reply_turn_text(m, &res->r))) {
        job_error(j, 500, "decoding the answer: %s", sx_errmsg());
        goto out;
    }
    if (j->stream && j->api == API_CHAT)
        send_delta(&st, res->text, strlen(res->text)); /* the rest */
    /* 5. images the model generated -> pixels (stage 2, conditioned on the
     * request's image, when editing, or in chat with an edit model, as the CLI) */
    t = http_now();
    int cond = -1; /* the first image of the last user turn that has one */
    for (int k = 0; k < j->n_turns; k++)
        if (j->turns[k].n_img) cond = j->turns[k].img0;
    int stage2 = j->mode == MODE_EDIT || (j->mode == MODE_CHAT && S.has_edit && cond >= 0);
    for (int i = 0; i < res->r.n_images && i < 4 && j->mode != MODE_GROUND; i++) {
        if (sx_seedx_decode_generated(
                m, res->r.img_gen_feat + (int64_t)i * res->r.feat_tokens * res->r.feat_dim, stage2,
                stage2 && cond >= 0 ? &ims[cond] : NULL, &o, &res->out[i])) {
            job_error(j, stopped_status(j), "de-tokenizer: %s", sx_errmsg());
            goto out;
        }
        res->n_out++;
    }
    /* 6. grounding: the boxes drawn on the image */
    if (j->mode == MODE_GROUND && cond >= 0) {
        res->out[0] = ims[cond];
        memset(&ims[cond], 0, sizeof ims[cond]);
        res->n_out = 1;
        res->boxes_image = 1;
        for (int b = 0; b < res->r.n_boxes; b++)
            if (res->r.box_counts[b] >= 4) {
                int r4[4];
                sx_seedx_box_rect(res->r.boxes[b], res->out[0].w, res->out[0].h, r4);
                sx_image_draw_box(&res->out[0], r4[0], r4[1], r4[2], r4[3],
                                  (const uint8_t[3]){0, 255, 0});
            }
    }
    res->t_decode = http_now() - t;
    rc = 0;
out:
    for (int i = 0; i < j->n_img; i++) sx_image_free(&ims[i]);
    sx_seedx_conv_free(&conv);
    free(st.ids);
    jb_free(&st.sent);
    if (rc) result_free(res);
    return rc;
}

/* "seedx": token ids, the text without tags, timings */
static void seedx_extra(jbuf *b, const result *res) {
    jb_puts(b, "\"seedx\":{\"token_ids\":[");
    for (int64_t i = 0; i < res->r.n_ids; i++) jb_printf(b, "%s%d", i ? "," : "", res->r.ids[i]);
    jb_puts(b, "],\"text_clean\":");
    jb_str(b, res->r.clean, strlen(res->r.clean));
    jb_printf(b, ",\"timings\":{\"vision_s\":%.3f,\"llm_s\":%.3f,\"image_s\":%.3f}}", res->t_vision,
              res->t_llm, res->t_decode);
}

static void boxes_json(jbuf *b, const result *res) {
    jb_puts(b, "\"boxes\":[");
    int first = 1;
    for (int k = 0; k < res->r.n_boxes; k++) {
        if (res->r.box_counts[k] < 4) continue;
        const int *v = res->r.boxes[k];
        int r4[4] = {0, 0, 0, 0};
        if (res->boxes_image) sx_seedx_box_rect(v, res->out[0].w, res->out[0].h, r4);
        jb_printf(b, "%s{\"loc\":[%d,%d,%d,%d],\"box\":[%d,%d,%d,%d]}", first ? "" : ",", v[0],
                  v[1], v[2], v[3], r4[0], r4[1], r4[2], r4[3]);
        first = 0;
    }
    jb_puts(b, "]");
}

static void usage_json(jbuf *b, const result *res) {
    jb_printf(
        b, "\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld},",
        (long long)res->n_prompt, (long long)res->r.n_ids,
        (long long)(res->n_prompt + res->r.n_ids));
}

static int image_parts(jbuf *b, const result *res, int leading_comma) {
    for (int i = 0; i < res->n_out; i++) {
        jb_puts(b, leading_comma || i ? ",{\"type\":\"image_url\",\"image_url\":{\"url\":\""
                                      : "{\"type\":\"image_url\",\"image_url\":{\"url\":\"");
        if (png_data_url(&res->out[i], b)) return -1;
        jb_puts(b, "\"}}");
    }
    return 0;
}

static void run_chat(job *j) {
    result res;
    if (run_model(j, &res)) return;
    const char *finish =
        res.finished_by_eos || res.r.n_ids < j->o.max_new_tokens ? "stop" : "length";
    jbuf b = {0};
    int rc = 0;
    if (j->stream) {
        if (res.n_out) { /* the images as one more delta, content as parts */
            chunk_begin(j, &b);
            jb_puts(&b, "\"choices\":[{\"index\":0,\"delta\":{\"content\":[");
            rc = image_parts(&b, &res, 0);
            jb_puts(&b, "]},\"finish_reason\":null}]}");
            if (!rc) sse_send(j, &b);
            b.n = 0;
        }
        chunk_begin(j, &b);
        jb_printf(&b, "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"%s\"}],", finish);
        usage_json(&b, &res);
        if (j->mode == MODE_GROUND) {
            boxes_json(&b, &res);
            jb_puts(&b, ",");
        }
        jb_puts(&b, "\"text\":");
        jb_str(&b, res.text, strlen(res.text));
        jb_puts(&b, ",");
        seedx_extra(&b, &res);
        jb_puts(&b, "}");
        if (!rc && !b.oom) {
            sse_send(j, &b);
            job_emit(j, "data: [DONE]\n\n", 14);
        }
    } else {
        jb_printf(
            &b, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,\"model\":\"%s\",",
            j->id, j->created, MODEL_ID);
        jb_puts(&b, "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        if (res.n_out) {
            jb_puts(&b, "[{\"type\":\"text\",\"text\":");
            jb_str(&b, res.text, strlen(res.text));
            jb_puts(&b, "}");
            rc = image_parts(&b, &res, 1);
            jb_puts(&b, "]");
        } else {
            jb_str(&b, res.text, strlen(res.text));
        }
        if (j->mode == MODE_GROUND) {
            jb_puts(&b, ",");
            boxes_json(&b, &res);
        }
        jb_printf(&b, "},\"finish_reason\":\"%s\"}],", finish);
        usage_json(&b, &res);
        seedx_extra(&b, &res);
        jb_puts(&b, "}");
        if (!rc && !b.oom) {
            pthread_mutex_lock(&S.mu);
            j->status = 200;
            pthread_mutex_unlock(&S.mu);
            job_emit(j, b.p, b.n);
        }
    }
    if (rc || b.oom)
        job_error(j, 500, "writing the answer: %s", rc ? sx_errmsg() : "out of memory");
    jb_free(&b);
    result_free(&res);
}

static void run_images(job *j) {
    result res;
    if (run_model(j, &res)) return;
    jbuf b = {0};
    if (!res.n_out) {
        job_error(j, 422, "the model answered without an image: \"%s\" (try \"force_image\": true)",
                  res.r.clean);
        result_free(&res);
        return;
    }
    if (j->stream) /* the last event carries the image */
        jb_printf(&b, "{\"type\":\"image_generation.completed\",\"created\":%lld,\"b64_json\":\"",
                  j->created);
    else
        jb_printf(&b, "{\"created\":%lld,\"data\":[{\"b64_json\":\"", j->created);
    jbuf url = {0};
    int rc = png_data_url(&res.out[0], &url);
    if (!rc) jb_puts(&b, url.p + strlen("data:image/png;base64,"));
    jb_free(&url);
    jb_puts(&b, "\",\"revised_prompt\":");
    jb_str(&b, res.r.clean, strlen(res.r.clean));
    jb_puts(&b, j->stream ? "," : "}],");
    seedx_extra(&b, &res);
    jb_puts(&b, "}");
    if (rc || b.oom) {
        job_error(j, 500, "writing the image: %s", rc ? sx_errmsg() : "out of memory");
    } else if (j->stream) {
        sse_send(j, &b);
        job_emit(j, "data: [DONE]\n\n", 14);
    } else {
        pthread_mutex_lock(&S.mu);
        j->status = 200;
        pthread_mutex_unlock(&S.mu);
        job_emit(j, b.p, b.n);
    }
    jb_free(&b);
    result_free(&res);
}

static void *worker_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&S.mu);
    for (;;) {
        while (!S.head && !atomic_load(&S.stopping)) pthread_cond_wait(&S.work_cv, &S.mu);
        if (atomic_load(&S.stopping)) break;
        job *j = S.head;
        S.head = j->next;
        if (!S.head) S.tail = NULL;
        S.n_waiting--;
        S.running = 1;
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&S.mu);
        double t0 = http_now();
        sx_set_stop_check(stop_check, j);
        if (j->api == API_CHAT)
            run_chat(j);
        else
            run_images(j);
        sx_set_stop_check(NULL, NULL);
        double dt = http_now() - t0;
        pthread_mutex_lock(&S.mu);
        S.n_jobs++;
        S.job_seconds += (dt - S.job_seconds) / (double)(S.n_jobs < 8 ? S.n_jobs : 8);
        S.running = 0;
        j->state = JOB_DONE;
        pthread_cond_broadcast(&j->cv);
    }
    /* shutting down: the jobs still waiting get 503 */
    for (job *j = S.head; j; j = j->next) {
        jb_free(&j->out);
        error_json(&j->out, 503, "the server is shutting down");
        j->status = 503;
        j->state = JOB_DONE;
        pthread_cond_broadcast(&j->cv);
    }
    S.head = S.tail = NULL;
    S.n_waiting = 0;
    pthread_mutex_unlock(&S.mu);
    sx_ops_thread_cleanup();
    return NULL;
}

/* ======================================================================
 * connections
 * ====================================================================== */
typedef struct {
    int fd;
} conn;

static int retry_after(void) { /* seconds until a queue slot is likely free */
    double s = S.job_seconds * (S.n_waiting + 1);
    return s < 1 ? 1 : s > 3600 ? 3600 : (int)ceil(s);
}

/* Client gone: a waiting job leaves the queue, a running one is stopped. */
static void cancel_locked(job *j) {
    atomic_store(&j->cancel, 1);
    if (j->state != JOB_QUEUED) return;
    for (job **p = &S.head; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            if (S.tail == j) {
                S.tail = NULL;
                for (job *q = S.head; q; q = q->next) S.tail = q;
            }
            S.n_waiting--;
            break;
        }
    j->state = JOB_DONE;
    j->status = 499;
}

/* Puts the job in the queue and relays its output until it is done.
 * Returns the status sent (499: the client went away). */
static int serve_job(int fd, job *j) {
    pthread_mutex_lock(&S.mu);
    /* full: max_queue requests wait (an idle worker takes one at once) */
    if ((S.n_waiting >= S.c.max_queue && (S.running || S.n_waiting)) || atomic_load(&S.stopping)) {
        int ra = retry_after(), waiting = S.n_waiting;
        pthread_mutex_unlock(&S.mu);
        char extra[64], msg[160];
        snprintf(extra, sizeof extra, "Retry-After: %d\r\n", ra);
        if (atomic_load(&S.stopping))
            snprintf(msg, sizeof msg, "the server is shutting down");
        else
            snprintf(msg, sizeof msg,
                     "the queue is full (%d waiting, --max-queue %d): retry in %d s", waiting,
                     S.c.max_queue, ra);
        send_error(fd, 503, msg, extra);
        return 503;
    }
    j->state = JOB_QUEUED;
    if (S.tail)
        S.tail->next = j;
    else
        S.head = j;
    S.tail = j;
    S.n_waiting++;
    pthread_cond_signal(&S.work_cv);
    int sse = 0, gone = 0;
    jbuf chunk = {0};
    for (;;) {
        if (j->stream && j->status == 200 && j->out.n && !gone) {
            jbuf t = chunk;
            chunk = j->out;
            j->out = t;
            j->out.n = 0;
            pthread_mutex_unlock(&S.mu);
            if (!sse) gone = http_sse_begin(fd, S.c.write_timeout) != 0;
            sse = 1;
            if (!gone) gone = http_write_all(fd, chunk.p, chunk.n, S.c.write_timeout) != 0;
            chunk.n = 0;
            pthread_mutex_lock(&S.mu);
            if (gone) cancel_locked(j);
            continue;
        }
        if (j->state == JOB_DONE) break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 200 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        if (pthread_cond_timedwait(&j->cv, &S.mu, &ts) == ETIMEDOUT && !gone) {
            pthread_mutex_unlock(&S.mu);
            gone = http_peer_gone(fd);
            pthread_mutex_lock(&S.mu);
            if (gone) cancel_locked(j);
        }
    }
    int status = gone ? 499 : j->status ? j->status : 500;
    pthread_mutex_unlock(&S.mu);
    jb_free(&chunk);
    if (!gone && !sse) {
        if (!j->out.n) error_json(&j->out, 500, "no answer was produced");
        http_respond(fd, status, "application/json", NULL, j->out.p, j->out.n, S.c.write_timeout);
    }
    return status;
}

static int header_is(const http_request *req, const char *name, const char *prefix) {
    size_t n;
    const char *v = http_get_header(req, name, &n);
    size_t k = strlen(prefix);
    if (!v || n < k) return 0;
    for (size_t i = 0; i < k; i++)
        if ((v[i] | 0x20) != (prefix[i] | 0x20)) return 0;
    return n == k || v[k] == ';' || v[k] == ' ';
}

/* Bound to loopback: the Host header must name this server (a page of
 * another site that re-points its DNS name to 127.0.0.1 must not read the
 * API's answers). */
static int host_ok(const http_request *req) {
    if (!S.loopback) return 1;
    size_t n;
    const char *h = http_get_header(req, "host", &n);
    if (!h) return req->minor == 0;
    char want[64];
    const char *names[] = {"127.0.0.1", "localhost", "[::1]"};
    for (int i = 0; i < 3; i++) {
        int k = snprintf(want, sizeof want, "%s:%d", names[i], S.port);
        size_t nl = strlen(names[i]);
        if ((n == (size_t)k && !strncasecmp(h, want, n)) ||
            (S.port == 80 && n == nl && !strncasecmp(h, names[i], n)))
            return 1;
    }
    return 0;
}

static void health_json(jbuf *b) {
    pthread_mutex_lock(&S.mu);
    jb_printf(b, "{\"status\":\"ok\",\"model\":");
    jb_str(b, S.c.model, strlen(S.c.model));
    jb_printf(b,
              ",\"running\":%d,\"waiting\":%d,\"max_queue\":%d,\"connections\":%d,\"requests\":%"
              "lld,\"jobs\":%lld}",
              S.running, S.n_waiting, S.c.max_queue, S.n_conns, S.n_requests, S.n_jobs);
    pthread_mutex_unlock(&S.mu);
}

static void models_json(jbuf *b) {
    jb_printf(b,
              "{\"object\":\"list\",\"data\":[{\"id\":\"%s\",\"object\":\"model\",\"created\":0,"
              "\"owned_by\":\"seedx.c\","
              "\"seedx\":{\"path\":",
              MODEL_ID);
    jb_str(b, S.c.model, strlen(S.c.model));
    jb_printf(b, ",\"modes\":[\"chat\",\"ground\",\"generate\"%s],\"context\":%lld,",
              S.has_edit ? ",\"edit\"" : "", (long long)S.n_ctx);
    jb_printf(b, "\"defaults\":{\"steps\":%d,\"size\":\"%dx%d\",\"cfg\":", S.c.steps, S.c.width,
              S.c.height);
    jb_float(b, S.c.cfg);
    jb_puts(b, ",\"image_cfg\":");
    jb_float(b, S.c.image_cfg);
    jb_printf(b, ",\"max_tokens\":%lld},", (long long)S.c.max_tokens);
    jb_printf(b,
              "\"limits\":{\"max_body\":%lld,\"max_image_side\":%d,\"max_image_pixels\":%lld,\"max_"
              "images\":%d,"
              "\"max_messages\":%d,\"max_queue\":%d}}}]}",
              S.c.max_body, S.c.max_image_side, S.c.max_image_pixels, MAX_IMAGES, MAX_MESSAGES,
              S.c.max_queue);
}

static int route(int fd, const http_request *req) {
    static const struct {
        const char *path, *method;
        int api;
    } routes[] = {{"/", "GET", -1},
                  {"/index.html", "GET", -1},
                  {"/health", "GET", -2},
                  {"/v1/models", "GET", -3},
                  {"/v1/chat/completions", "POST", API_CHAT},
                  {"/v1/images/generations", "POST", API_IMAGES_GENERATE},
                  {"/v1/images/edits", "POST", API_IMAGES_EDIT}};
    int r = -1;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (http_path_is(req, routes[i].path)) r = (int)i;
    if (r < 0) {
        send_error(fd, 404, "no such endpoint (see GET /v1/models and the README)", NULL);
        return 404;
    }
    if (!host_ok(req)) {
        send_error(fd, 421, "the Host header does not name this server", NULL);
        return 421;
    }
    if (strcmp(req->method, routes[r].method)) {
        char allow[48];
        snprintf(allow, sizeof allow, "Allow: %s\r\n", routes[r].method);
        send_error(fd, 405, "method not allowed", allow);
        return 405;
    }
    jbuf b = {0};
    switch (routes[r].api) {
    case -1:
        http_respond(
            fd, 200, "text/html; charset=utf-8",
            "Content-Security-Policy: default-src 'self'; img-src 'self' data: blob:; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'\r\n",
            seedx_webui_start, (size_t)(seedx_webui_end - seedx_webui_start), S.c.write_timeout);
        return 200;
    case -2:
    case -3:
        if (routes[r].api == -2)
            health_json(&b);
        else
            models_json(&b);
        http_respond(fd, 200, "application/json", NULL, b.p, b.n, S.c.write_timeout);
        jb_free(&b);
        return 200;
    }
    if (!http_get_header(req, "content-length", NULL)) {
        send_error(fd, 411, "a request body with Content-Length is required", NULL);
        return 411;
    }
    if (!header_is(req, "content-type", "application/json")) {
        send_error(fd, 415, "send the request body as JSON with \"Content-Type: application/json\"",
                   NULL);
        return 415;
    }
    reqerr e = {0, ""};
    job *j = parse_job(routes[r].api, req->body, (size_t)req->content_length, &e);
    if (!j) {
        send_error(fd, e.status, e.msg, NULL);
        return e.status;
    }
    int status = serve_job(fd, j);
    job_free(j);
    return status;
}

/* After an error answered before the whole request was read: stop sending
 * and read what the client still sends (up to a second), so that closing
 * does not reset the connection before the client has read the answer. */
static void drain(int fd) {
    shutdown(fd, SHUT_WR);
    double end = http_now() + 1.0;
    char sink[4096];
    for (double left; (left = end - http_now()) > 0;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0 || recv(fd, sink, sizeof sink, 0) <= 0) break;
    }
}

static void *conn_main(void *arg) {
    conn *c = arg;
    double t0 = http_now();
    http_request req;
    char *buf = NULL, msg[300];
    int status;
    if (http_read_request(c->fd, S.c.max_body, t0 + S.c.read_timeout, &req, &buf, &status, msg,
                          sizeof msg)) {
        if (status) {
            send_error(c->fd, status, msg, NULL);
            drain(c->fd);
        }
        logf_("- - %d %.3fs %s\n", status, http_now() - t0, msg);
    } else {
        pthread_mutex_lock(&S.mu);
        S.n_requests++;
        pthread_mutex_unlock(&S.mu);
        status = route(c->fd, &req);
        logf_("%s %.*s %d %.3fs\n", req.method, (int)(req.path_len < 200 ? req.path_len : 200),
              req.target, status, http_now() - t0);
    }
    free(buf);
    close(c->fd);
    free(c);
    pthread_mutex_lock(&S.mu);
    S.n_conns--;
    pthread_cond_broadcast(&S.conn_cv);
    pthread_mutex_unlock(&S.mu);
    return NULL;
}

/* ======================================================================
 * seedx serve
 * ====================================================================== */
static void on_signal(int sig) {
    (void)sig;
    atomic_store(&S.stopping, 1);
    ssize_t k = write(S.wake_pipe[1], "x", 1);
    (void)k;
}

/* The command line (cli.h's parser, as every command): 0 go on, 1 after
 * --help, 2 after a message. */
static int parse_args(int argc, char **argv, serve_cfg *c) {
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8080;
    c->max_queue = 8;
    c->max_conns = 64;
    c->read_timeout = c->write_timeout = 30;
    c->max_image_side = 4096;
    c->steps = 50;
    c->cfg = 7.5f;
    c->image_cfg = 1.5f;
    int size[2] = {1024, 1024}, dtype = -1;
    int64_t max_body = 32LL << 20, max_pixels = 16LL << 20;
    const cli_opt opts[] = {
        {"-m", CLI_STR, &c->model, "DIR", "model directory (as for seedx chat; required)", 0, 0, NULL},
        {"--host", CLI_STR, &c->host, "H", "address to bind (default 127.0.0.1; loopback only accepts\nHost headers naming it)", 0, 0, NULL},
        {"--port", CLI_INT, &c->port, "N", "port (default 8080; 0: any free port, printed)", 0, 65535, NULL},
        {"--max-queue", CLI_INT, &c->max_queue, "N", "requests waiting for the model (default 8); more: 503 +\nRetry-After", 0, 100000, NULL},
        {"--max-conns", CLI_INT, &c->max_conns, "N", "open connections (default 64); more: 503", 1, 100000, NULL},
        {"--steps", CLI_INT, &c->steps, "N", "request default: sampler steps (default 50)", 1, SX_SEEDX_MAX_STEPS, NULL},
        {"--size", CLI_SIZE, size, "WxH", "request default: output size (default 1024x1024)", 8, SX_VAE_MAX_SIDE, NULL},
        {"--cfg", CLI_FLOAT, &c->cfg, "G", "request default: guidance scale (default 7.5)", 0, SX_SEEDX_MAX_CFG, NULL},
        {"--image-cfg", CLI_FLOAT, &c->image_cfg, "G", "request default: image guidance (default 1.5)", 0, SX_SEEDX_MAX_CFG, NULL},
        {"--max-tokens", CLI_I64, &c->max_tokens, "N", "request default: new tokens (default: 120 for generate,\n512 otherwise, as the CLI)", 1, 1e9, NULL},
        {"--grids", CLI_STR, &c->grids, "LIST", "any-res candidates (default: the official 8; edit: 1x1)", 0, 0, NULL},
        {"--dtype", CLI_CHOICE, &dtype, "T", "weights converted at load (as the CLI)", 0, 0, CLI_DTYPES},
        {"--max-body", CLI_I64, &max_body, "BYTES", "request body (default 33554432 = 32 MiB): 413 above", 1024, 1e12, NULL},
        {"--read-timeout", CLI_DOUBLE, &c->read_timeout, "S", "the whole request must arrive within S seconds\n(default 30): 408", 0.1, 86400, NULL},
        {"--write-timeout", CLI_DOUBLE, &c->write_timeout, "S", "each blocked write may wait S seconds (default 30), then\nthe client counts as gone and its request is cancelled", 0.1, 86400, NULL},
        {"--max-image-side", CLI_INT, &c->max_image_side, "PX", "input image side, read from the header before decoding,\nand output size (default 4096)", 8, 16384, NULL},
        {"--max-image-pixels", CLI_I64, &max_pixels, "N", "input image area (default 16777216)", 64, 268435456, NULL},
    };
    cli_spec spec = {
        "seedx serve", "seedx serve -m MODEL_DIR [options]",
        "SEED-X behind a local HTTP API (OpenAI chat-completions conventions) and a web page at /.\n"
        "A request's own values win over the request defaults; -q: no request log on stderr.\n"
        "Fixed limits: request line / header line 8192 bytes, head 32768 bytes, 64 header fields;\n"
        "JSON nesting 32, 100000 values, numbers of 64 characters; 256 messages, 16 images and\n"
        "1 MiB of text per request; one request per connection (Connection: close).",
        opts, CLI_COUNT(opts), NULL, 0, 0, NULL, 0};
    int rc = cli_parse(&spec, argc, argv);
    if (rc) return rc;
    c->width = size[0], c->height = size[1];
    c->max_body = max_body, c->max_image_pixels = max_pixels;
    c->quiet = cli_g.quiet;
    sx_seedx_opts o; /* the request defaults pass the checks every request passes */
    sx_seedx_opts_default(&o);
    o.steps = c->steps, o.cfg = c->cfg, o.image_cfg = c->image_cfg;
    o.width = c->width, o.height = c->height, o.grids = c->grids;
    const char *bad = !c->model ? "-m MODEL_DIR is required" : sx_seedx_opts_check(&o) ? sx_errmsg()
                      : c->width > c->max_image_side || c->height > c->max_image_side
                          ? "--size is larger than --max-image-side"
                          : NULL;
    if (bad) {
        fprintf(stderr, "seedx serve: %s (seedx serve --help)\n", bad);
        return 2;
    }
    if (cli_args_only) return 0;
    if (cli_apply_common(spec.name)) return 2;
    return cli_apply_dtype("seedx serve", dtype);
}

/* Binds host:port; fills the printable URL. */
static int open_listener(const serve_cfg *c, char *url, size_t urln) {
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    int e = getaddrinfo(c->host, port, &hints, &ai);
    if (e) {
        fprintf(stderr, "seedx serve: --host %s: %s\n", c->host, gai_strerror(e));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) || listen(fd, 128)) {
            fprintf(stderr, "seedx serve: cannot listen on %s:%d: %s\n", c->host, c->port,
                    strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) return -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char hostbuf[64];
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        S.port = ntohs(s6->sin6_port);
        S.loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
        snprintf(hostbuf, sizeof hostbuf, "[%s]", S.loopback ? "::1" : c->host);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        S.port = ntohs(s4->sin_port);
        S.loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
        snprintf(hostbuf, sizeof hostbuf, "%s", c->host);
    }
    snprintf(url, urln, "http://%s:%d/", hostbuf, S.port);
    return fd;
}

/* Opens the model, checks the files each mode needs and reads the LLM's
 * context length. Kept resident: the tokenizer, and once first used the
 * agent's resamplers and the de-tokenizer's zero-image features; the ViT,
 * LLM, de-tokenizer, UNet and VAE containers are mapped per stage (the
 * page cache keeps them warm between requests). */
static int open_model(const serve_cfg *c) {
    if (sx_seedx_open(c->model, &S.m)) return -1;
    static const char *const need[] = {"vit.gguf",         "agent.gguf", "llm.gguf",
                                       "detokenizer.gguf", "unet.gguf",  "vae.gguf"};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!sx_seedx_has(S.m, need[i]))
            return sx_err("%s: missing %s (convert the model with scripts/convert.py)", c->model,
                          need[i]);
    S.has_edit = sx_seedx_has(S.m, "unet_edit.gguf") && sx_seedx_has(S.m, "detokenizer_edit.gguf");
    char *p = sx_strf("%s/llm.gguf", c->model);
    sx_llama *llm;
    int rc = !p || sx_llama_load(p, &llm);
    free(p);
    if (rc) return -1;
    S.n_ctx = llm->cfg.max_pos;
    sx_llama_free(llm);
    return 0;
}

int sx_cmd_serve(int argc, char **argv) {
    int e = parse_args(argc, argv, &S.c);
    if (e || cli_args_only) return e == 1 ? 0 : e;
    if (open_model(&S.c)) {
        fprintf(stderr, "seedx serve: %s\n", sx_errmsg());
        sx_seedx_free(S.m);
        return 1;
    }
    char url[128];
    int lfd = open_listener(&S.c, url, sizeof url);
    if (lfd < 0 || pipe(S.wake_pipe)) {
        if (lfd >= 0) close(lfd);
        sx_seedx_free(S.m);
        return 1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&S.work_cv, &ca);
    pthread_cond_init(&S.conn_cv, &ca);
    pthread_condattr_destroy(&ca);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_t worker;
    if (pthread_create(&worker, NULL, worker_main, NULL)) {
        fprintf(stderr, "seedx serve: cannot start the worker thread\n");
        return 1;
    }
    printf("seedx serve: %s, modes chat ground generate%s, context %lld tokens, %d threads\n"
           "listening on %s  (Ctrl-C stops)\n",
           S.c.model, S.has_edit ? " edit" : "", (long long)S.n_ctx, sx_threads_count(), url);
    fflush(stdout);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 1 << 20);
    while (!atomic_load(&S.stopping)) {
        struct pollfd p[2] = {{lfd, POLLIN, 0}, {S.wake_pipe[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) continue;
        if (!(p[0].revents & POLLIN)) continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                usleep(100000); /* out of fds: let connections finish */
            continue;
        }
        pthread_mutex_lock(&S.mu);
        int full = S.n_conns >= S.c.max_conns;
        if (!full) S.n_conns++;
        pthread_mutex_unlock(&S.mu);
        conn *c = full ? NULL : malloc(sizeof *c);
        pthread_t th;
        if (c) c->fd = fd;
        if (!c || pthread_create(&th, &attr, conn_main, c)) {
            char msg[96];
            snprintf(msg, sizeof msg, "too many connections (--max-conns %d)", S.c.max_conns);
            send_error_t(fd, 503, msg, "Retry-After: 1\r\n",
                         1.0); /* the accept loop must not wait */
            close(fd);
            free(c);
            if (!full) {
                pthread_mutex_lock(&S.mu);
                S.n_conns--;
                pthread_mutex_unlock(&S.mu);
            }
        }
    }
    pthread_attr_destroy(&attr);
    fprintf(stderr, "seedx serve: stopping\n");
    close(lfd);
    pthread_mutex_lock(&S.mu);
    pthread_cond_broadcast(&S.work_cv);
    pthread_mutex_unlock(&S.mu);
    pthread_join(worker, NULL);
    pthread_mutex_lock(&S.mu); /* connections finish: their jobs are done or cancelled */
    while (S.n_conns > 0) pthread_cond_wait(&S.conn_cv, &S.mu);
    pthread_mutex_unlock(&S.mu);
    close(S.wake_pipe[0]);
    close(S.wake_pipe[1]);
    sx_seedx_free(S.m);
    return 0;
}
