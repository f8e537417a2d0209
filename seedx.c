/* seedx.c - SEED-X itself: the glue the official inference code puts around
 * the components (SEED-X src/models/mllm/seed_x.py, generation.py and the
 * src/inference scripts).
 *
 * This part holds the agent's token-level logic, which depends only on the
 * tokenizer: the special-token ids, the image-token block of a prompt, the
 * positions whose embeddings are replaced by image features, the tile
 * position embedding, SEED-X's image-token logits processor, and the
 * parsing of generated text (tags, boxes). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seedx.h"
#include "tokenizer.h"

/* ---- special tokens ---------------------------------------------------- */
int sx_seedx_tokens_init(const sx_tokenizer *tok, sx_seedx_tokens *t) {
    if (!tok || !t) return sx_err("sx_seedx_tokens_init: NULL argument");
    memset(t, 0, sizeof *t);
    t->bos = sx_tokenizer_bos(tok);
    t->eos = sx_tokenizer_eos(tok);
    const char *names[] = {"<img>", "</img>", "<patch>", "</patch>", "<box_start>", "<box_end>"};
    int *dst[] = {&t->img_open, &t->img_close, &t->patch_open, &t->patch_close, &t->box_start,
                  &t->box_end};
    for (int i = 0; i < 6; i++)
        if ((*dst[i] = sx_token_id(tok, names[i])) < 0)
            return sx_err("tokenizer has no '%s' token: not a SEED-X tokenizer "
                          "(cvlm_llama2_tokenizer_100img_and_224loc_addpatch)",
                          names[i]);
    char s[32];
    for (t->n_img = 0; t->n_img < SX_SEEDX_MAX_IMG_TOKENS; t->n_img++) {
        snprintf(s, sizeof s, "<img_%05d>", t->n_img);
        int id = sx_token_id(tok, s);
        if (id < 0) break;
        t->img[t->n_img] = id;
    }
    for (t->n_loc = 0; t->n_loc < SX_SEEDX_MAX_LOC_TOKENS; t->n_loc++) {
        snprintf(s, sizeof s, "<loc-%d>", t->n_loc);
        int id = sx_token_id(tok, s);
        if (id < 0) break;
        t->loc[t->n_loc] = id;
    }
    if (t->n_img < 64) return sx_err("tokenizer has only %d <img_xxxxx> tokens, need 64", t->n_img);
    return 0;
}

/* ---- prompt pieces ------------------------------------------------------ */
/* (n_images - 1) x [<patch> <img_00000>..<img_{k-1}> </patch>] followed by
 * <img> <img_00000>..<img_{k-1}> </img> (eval_img2text_seed_x_i.py). */
char *sx_seedx_image_block(int n_images, int tokens_per_image) {
    if (n_images <= 0 || tokens_per_image <= 0 || tokens_per_image > SX_SEEDX_MAX_IMG_TOKENS) {
        sx_err("image block: %d images of %d tokens", n_images, tokens_per_image);
        return NULL;
    }
    size_t per = 9 + 10 + (size_t)tokens_per_image * 11;
    char *s = sx_malloc(per * (size_t)n_images + 1, "image token block");
    if (!s) return NULL;
    size_t o = 0;
    for (int i = 0; i < n_images; i++) {
        int global = i == n_images - 1;
        o += (size_t)sprintf(s + o, "%s", global ? "<img>" : "<patch>");
        for (int k = 0; k < tokens_per_image; k++) o += (size_t)sprintf(s + o, "<img_%05d>", k);
        o += (size_t)sprintf(s + o, "%s", global ? "</img>" : "</patch>");
    }
    return s;
}

/* ids_cmp_mask: positions strictly between the i-th opener (<img> or
 * <patch>) and the i-th closer (</img> or </patch>), pairs in order. */
int64_t sx_seedx_cmp_positions(const sx_seedx_tokens *t, const int *ids, int64_t n, int64_t *pos,
                               int64_t max_pos) {
    int64_t no = 0, nc = 0, np = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] == t->img_open || ids[i] == t->patch_open) {
            /* find the matching (no-th) closer */
            int64_t seen = 0, close = -1;
            for (int64_t j = 0; j < n; j++)
                if (ids[j] == t->img_close || ids[j] == t->patch_close) {
                    if (seen == no) {
                        close = j;
                        break;
                    }
                    seen++;
                }
            no++;
            if (close < 0) continue; /* zip() stops at the shorter list */
            nc++;
            for (int64_t j = i + 1; j < close; j++) {
                if (np < max_pos) pos[np] = j;
                np++;
            }
        }
    }
    (void)nc;
    return np;
}

/* rel_pos = [x, y, 1-x, 1-y] / 2 @ P, P = patch_pos_embed [4, D] */
void sx_seedx_patch_pos(const float *P, int64_t D, float x, float y, float *out) {
    float c[4] = {x / 2, y / 2, (1 - x) / 2, (1 - y) / 2};
    for (int64_t d = 0; d < D; d++)
        out[d] = c[0] * P[d] + c[1] * P[D + d] + c[2] * P[2 * D + d] + c[3] * P[3 * D + d];
}

/* ---- AutoImageTokenGenerationProcessor (generation.py) ------------------
 * L = [<img>, <img_00000>..<img_{n-1}>, </img>]. If the last id is in
 * L[:-1], its successor in L gets max(scores) + 10; otherwise the scores of
 * L[1:] are set to 0.0 (not -inf: the official quirk, kept). */
void sx_seedx_image_token_rule(const sx_seedx_tokens *t, int n_gen, int last_id, float *scores,
                               int64_t n_vocab) {
    int L[SX_SEEDX_MAX_IMG_TOKENS + 2], nl = 0;
    L[nl++] = t->img_open;
    for (int k = 0; k < n_gen && k < t->n_img; k++) L[nl++] = t->img[k];
    L[nl++] = t->img_close;
    for (int i = 0; i < nl - 1; i++)
        if (L[i] == last_id) {
            float mx = -INFINITY;
            for (int64_t v = 0; v < n_vocab; v++)
                if (scores[v] > mx) mx = scores[v];
            if (L[i + 1] < n_vocab) scores[L[i + 1]] = mx + 10.0f;
            return;
        }
    for (int i = 1; i < nl; i++)
        if (L[i] < n_vocab) scores[L[i]] = 0.0f;
}

/* ---- output text -------------------------------------------------------- */
/* re.sub('<[^>]*>', '', text) */
char *sx_seedx_strip_tags(const char *text) {
    size_t n = strlen(text);
    char *o = sx_malloc(n + 1, "stripped text");
    if (!o) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '<') {
            /* [^>]* may contain '<': the match runs to the first '>' */
            const char *e = strchr(text + i + 1, '>');
            if (e) {
                i = (size_t)(e - text);
                continue;
            }
        }
        o[j++] = text[i];
    }
    o[j] = 0;
    return o;
}

/* extract_box: every '<box_start>(.*?)<box_end>' span, and in it every
 * '<loc-(\d+)>'. Returns the number of boxes (at most max_boxes stored);
 * boxes[i][0..3] are the first four numbers, counts[i] how many there were. */
int sx_seedx_extract_boxes(const char *text, int (*boxes)[4], int *counts, int max_boxes) {
    const char *p = text;
    int nb = 0;
    for (;;) {
        const char *s = strstr(p, "<box_start>");
        if (!s) break;
        s += strlen("<box_start>");
        const char *e = strstr(s, "<box_end>");
        if (!e) break;
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        if (nl) { /* '.' does not match a newline: no box starts here */
            p = s;
            continue;
        }
        int nv = 0;
        for (const char *q = s; q < e;) {
            const char *l = strstr(q, "<loc-");
            if (!l || l >= e) break;
            const char *d = l + 5, *dd = d;
            long v = 0;
            while (dd < e && isdigit((unsigned char)*dd)) v = v * 10 + (*dd++ - '0');
            if (dd > d && dd < e && *dd == '>') {
                if (nb < max_boxes && nv < 4) boxes[nb][nv] = (int)v;
                nv++;
                q = dd + 1;
            } else {
                q = l + 1;
            }
        }
        if (nb < max_boxes) {
            for (int k = nv; k < 4; k++) boxes[nb][k] = 0;
            if (counts) counts[nb] = nv;
        }
        nb++;
        p = e + strlen("<box_end>");
    }
    return nb;
}

/* visualize_bbox: (x_center, y_center, w, h) on a 224 grid -> pixel corners
 * x1 = int(xc - w/2) ... (Python int() truncates toward zero). */
void sx_seedx_box_rect(const int box[4], int W, int H, int rect[4]) {
    double xc = box[0] / 224.0 * W, yc = box[1] / 224.0 * H;
    double bw = box[2] / 224.0 * W, bh = box[3] / 224.0 * H;
    rect[0] = (int)(xc - bw / 2);
    rect[1] = (int)(yc - bh / 2);
    rect[2] = (int)(xc + bw / 2);
    rect[3] = (int)(yc + bh / 2);
}
