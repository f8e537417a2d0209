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

/* Every '<loc-(\d+)>' in [s, e) -> box `nb` (first four values kept, the
 * count of all of them in counts[nb]) when nb < max_boxes. */
static void store_box(const char *s, const char *e, int (*boxes)[4], int *counts, int max_boxes,
                      int nb) {
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
        store_box(s, e, boxes, counts, max_boxes, nb++);
        p = e + strlen("<box_end>");
    }
    return nb;
}

/* The SEED-X base detection script puts <box_start> in the prompt and
 * parses re.findall('(.*?)<box_end>', text): every run of text before a
 * <box_end> (not crossing a newline), and in it every '<loc-(\d+)>'. */
int sx_seedx_extract_boxes_open(const char *text, int (*boxes)[4], int *counts, int max_boxes) {
    const char *p = text;
    int nb = 0;
    for (;;) {
        const char *e = strstr(p, "<box_end>");
        if (!e) break;
        const char *s = p;
        for (const char *q = p; q < e; q++)
            if (*q == '\n') s = q + 1;
        store_box(s, e, boxes, counts, max_boxes, nb++);
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

/* ======================================================================
 * The model: a directory of containers written by scripts/convert.py
 *   tokenizer.gguf  vit.gguf  agent.gguf  llm.gguf
 *   detokenizer.gguf  unet.gguf           (de-tokenizer stage 1, 4-channel UNet)
 *   detokenizer_edit.gguf  unet_edit.gguf (stage 2, 8-channel UNet; SEED-X-Edit
 *                                          and reconstruction with a condition)
 *   vae.gguf
 * Components are opened when first needed and released after their stage,
 * so the peak memory is that of the largest stage, not of the sum.
 * ====================================================================== */
#include "llama.h"
#include "sampler.h"
#include "unet.h"
#include "vae.h"
#include "vit.h"

#include <sys/stat.h>
#include <unistd.h>

struct sx_seedx {
    char dir[1024];
    sx_tokenizer *tok;
    sx_seedx_tokens tk;
    /* agent: input/output resamplers and the tile position embedding */
    sx_gguf *agent_g;
    sx_resampler in_rs, out_rs;
    const float *patch_pos_embed; /* [4, D] */
    int64_t n_img_tokens;         /* 64 */
    /* cached ViT features of the all-zero (CLIP-normalised) image: the
     * de-tokenizer's negative; depends only on weights */
    float *zero_feat;
    int64_t zero_n, vit_out;
};

static int seedx_path(const sx_seedx *m, const char *file, char *out, size_t n) {
    snprintf(out, n, "%s/%s", m->dir, file);
    struct stat st;
    if (stat(out, &st) != 0)
        return sx_err("%s: missing model file %s (convert it with scripts/convert.py)", m->dir, file);
    return 0;
}

int sx_seedx_has(const sx_seedx *m, const char *file) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", m->dir, file);
    struct stat st;
    return stat(p, &st) == 0;
}

int sx_seedx_open(const char *dir, sx_seedx **out) {
    if (!dir || !out) return sx_err("sx_seedx_open: NULL argument");
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return sx_err("%s: not a model directory (see README: converting weights)", dir);
    sx_seedx *m = sx_calloc(1, sizeof *m, "model");
    if (!m) return -1;
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    char p[1200];
    if (seedx_path(m, "tokenizer.gguf", p, sizeof p) || sx_tokenizer_open(p, &m->tok) ||
        sx_seedx_tokens_init(m->tok, &m->tk)) {
        sx_seedx_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void sx_seedx_free(sx_seedx *m) {
    if (!m) return;
    sx_tokenizer_free(m->tok);
    sx_resampler_free(&m->in_rs);
    sx_resampler_free(&m->out_rs);
    sx_gguf_close(m->agent_g);
    free(m->zero_feat);
    free(m);
}

const sx_tokenizer *sx_seedx_tokenizer(const sx_seedx *m) { return m->tok; }
const sx_seedx_tokens *sx_seedx_special(const sx_seedx *m) { return &m->tk; }
/* Width of the image feature rows spliced into the LLM (0 before the agent
 * is loaded, i.e. before the first sx_seedx_encode_images). */
int64_t sx_seedx_feat_width(const sx_seedx *m) { return m->in_rs.embed_dim; }

static int load_agent(sx_seedx *m) {
    if (m->agent_g) return 0;
    char p[1200];
    if (seedx_path(m, "agent.gguf", p, sizeof p) || sx_gguf_open(p, &m->agent_g)) return -1;
    int hin = (int)sx_meta_int_or(m->agent_g, "seedx.agent.input_heads", 32);
    int hout = (int)sx_meta_int_or(m->agent_g, "seedx.agent.output_heads", 32);
    float eps = (float)sx_meta_float_or(m->agent_g, "seedx.agent.eps", 1e-5);
    if (sx_resampler_load(m->agent_g, "input_resampler.", hin, eps, &m->in_rs) ||
        sx_resampler_load(m->agent_g, "output_resampler.", hout, eps, &m->out_rs)) {
        sx_err_prefix("%s: ", p);
        return -1;
    }
    snprintf(m->in_rs.name, sizeof m->in_rs.name, "input_resampler");
    snprintf(m->out_rs.name, sizeof m->out_rs.name, "output_resampler");
    if (!(m->patch_pos_embed = sx_get_f32(m->agent_g, "patch_pos_embed", 2, 4LL, m->in_rs.embed_dim)))
        return -1;
    m->n_img_tokens = m->in_rs.n_queries;
    if (m->out_rs.n_queries != m->n_img_tokens || m->n_img_tokens > m->tk.n_img)
        return sx_err("%s: resamplers have %lld / %lld queries, tokenizer %d image tokens", p,
                      (long long)m->in_rs.n_queries, (long long)m->out_rs.n_queries, m->tk.n_img);
    return 0;
}

/* ---- vision: images -> LLM-width features -------------------------------
 * Each image goes through any-res tiling, the ViT, the input resampler, and
 * gets its tile's position embedding added:
 *   feats [tiles*64, D] in prompt order (tiles row-major, thumbnail last). */
int sx_seedx_encode_images(sx_seedx *m, const sx_image *images, int n_images, const char *grids,
                           float **feats, int64_t *n_rows, int *tiles_per_image) {
    *feats = NULL;
    *n_rows = 0;
    if (n_images <= 0) return 0;
    if (load_agent(m)) return -1;
    char p[1200];
    sx_vit *vit = NULL;
    if (seedx_path(m, "vit.gguf", p, sizeof p) || sx_vit_open(p, &vit)) return -1;
    int64_t Q = m->n_img_tokens, D = m->in_rs.embed_dim, E = vit->c.output_dim;
    int64_t S = vit->c.image_size, VQ = vit->c.n_queries;
    if (m->in_rs.kv_dim != E) {
        sx_vit_free(vit);
        return sx_err("%s: input_resampler takes %lld-wide features, the ViT gives %lld", m->dir,
                      (long long)m->in_rs.kv_dim, (long long)E);
    }
    float *out = NULL;
    int64_t rows = 0;
    int rc = -1;
    for (int i = 0; i < n_images; i++) {
        sx_anyres ar;
        memset(&ar, 0, sizeof ar);
        if (sx_anyres_preprocess(&images[i], grids, &ar)) goto fail;
        if (tiles_per_image) tiles_per_image[i] = ar.n;
        float *vf = sx_malloc(sizeof(float) * (size_t)(ar.n * VQ * E), "ViT features");
        float *nf = realloc(out, sizeof(float) * (size_t)((rows + ar.n * Q) * D));
        if (!vf || !nf) {
            free(vf);
            sx_anyres_free(&ar);
            if (nf) out = nf;
            sx_err("out of memory for image features");
            goto fail;
        }
        out = nf;
        /* visual_encoder(image_tensor): [n,3,448,448] -> [n,256,4096] */
        if (sx_vit_forward(vit, ar.pixels, ar.n, S, vf) ||
            sx_resampler_forward(&m->in_rs, vf, ar.n, VQ, out + rows * D)) {
            free(vf);
            sx_anyres_free(&ar);
            goto fail;
        }
        /* + rel_pos_embed = [x, y, 1-x, 1-y]/2 @ patch_pos_embed, per tile */
        float *rel = sx_malloc(sizeof(float) * (size_t)D, "rel pos");
        if (!rel) {
            free(vf);
            sx_anyres_free(&ar);
            goto fail;
        }
        for (int t = 0; t < ar.n; t++) {
            sx_seedx_patch_pos(m->patch_pos_embed, D, ar.pos[2 * t], ar.pos[2 * t + 1], rel);
            sx_add_row(out + (rows + (int64_t)t * Q) * D, rel, Q, D);
        }
        int64_t sh[3] = {ar.n, Q, D};
        sx_tracef(out + rows * D, 3, sh, "image_embeds_lm.%d", i);
        rows += ar.n * Q;
        free(rel);
        free(vf);
        sx_anyres_free(&ar);
    }
    *feats = out;
    *n_rows = rows;
    rc = 0;
fail:
    if (rc) free(out);
    sx_vit_free(vit);
    return rc;
}

/* ViT features of the all-zero input tensor (the de-tokenizer's negative),
 * [256, E]; computed once and kept. */
static int zero_image_features(sx_seedx *m, const float **feat, int64_t *n, int64_t *E) {
    if (!m->zero_feat) {
        char p[1200];
        sx_vit *vit = NULL;
        if (seedx_path(m, "vit.gguf", p, sizeof p) || sx_vit_open(p, &vit)) return -1;
        int64_t S = vit->c.image_size;
        float *zeros = sx_calloc((size_t)(3 * S * S), sizeof(float), "zero image");
        float *f = sx_malloc(sizeof(float) * (size_t)(vit->c.n_queries * vit->c.output_dim),
                             "zero-image features");
        int rc = (!zeros || !f) ? -1 : sx_vit_forward(vit, zeros, 1, S, f);
        m->zero_n = vit->c.n_queries;
        m->vit_out = vit->c.output_dim;
        free(zeros);
        sx_vit_free(vit);
        if (rc) {
            free(f);
            return -1;
        }
        m->zero_feat = f;
    }
    *feat = m->zero_feat;
    *n = m->zero_n;
    *E = m->vit_out;
    return 0;
}

/* ViT features of one image through the reconstruction transform
 * (torchvision Resize((448,448)) bilinear + CLIP normalise): [256, E]. */
static int image_features_448(sx_seedx *m, const sx_image *im, float **feat, int64_t *n,
                              int64_t *E) {
    char p[1200];
    sx_vit *vit = NULL;
    if (seedx_path(m, "vit.gguf", p, sizeof p) || sx_vit_open(p, &vit)) return -1;
    int64_t S = vit->c.image_size;
    float *px = sx_malloc(sizeof(float) * (size_t)(3 * S * S), "pixels");
    float *f = sx_malloc(sizeof(float) * (size_t)(vit->c.n_queries * vit->c.output_dim), "features");
    int rc = -1;
    if (px && f && S == 448 && sx_clip_preprocess_448(im, px) == 0)
        rc = sx_vit_forward(vit, px, 1, S, f);
    else if (px && f && S != 448)
        sx_err("%s: the reconstruction transform is 448x448, the ViT takes %lld", p, (long long)S);
    *n = vit->c.n_queries;
    *E = vit->c.output_dim;
    free(px);
    sx_vit_free(vit);
    if (rc) {
        free(f);
        return -1;
    }
    *feat = f;
    return 0;
}

/* ---- options ------------------------------------------------------------ */
void sx_seedx_opts_default(sx_seedx_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_new_tokens = 512;
    o->temperature = 0; /* greedy, as the official code */
    o->top_p = 1;
    o->steps = 50;
    o->cfg = 7.5f;
    o->image_cfg = 1.5f;
    o->width = o->height = 1024;
    o->seed = 42;
    o->rng = SX_RNG_TORCH_CPU;
    o->sampler = SX_SAMPLER_EULER;
    o->karras = SX_KARRAS_CONFIG;
}

void sx_seedx_reply_free(sx_seedx_reply *r) {
    if (!r) return;
    free(r->ids);
    free(r->text);
    free(r->clean);
    free(r->img_gen_feat);
    free(r->boxes);
    free(r->box_counts);
    memset(r, 0, sizeof *r);
}

/* ---- the LLM turn --------------------------------------------------------
 * ContinuousLVLM.generate: embed the prompt, overwrite the rows between
 * image openers and closers with the image features (in order), greedy
 * decode with the image-token processor, then gather the final-norm hidden
 * states of every generated image's 64 tokens and run the output resampler. */
typedef struct {
    const sx_seedx *m;
    int64_t n_gen;
} proc_ctx;

static int image_rule_cb(void *user, const int32_t *ids, int64_t n_ids, float *logits,
                         int64_t vocab) {
    proc_ctx *pc = user;
    sx_seedx_image_token_rule(&pc->m->tk, (int)pc->m->n_img_tokens, n_ids ? ids[n_ids - 1] : -1,
                              logits, vocab);
    return 0;
}

int sx_seedx_generate(sx_seedx *m, const int *prompt_ids, int64_t P, const float *feats,
                      int64_t n_feat_rows, const sx_seedx_opts *o, sx_seedx_reply *r) {
    memset(r, 0, sizeof *r);
    if (!m || !prompt_ids || P <= 0 || !o) return sx_err("sx_seedx_generate: bad arguments");
    if (load_agent(m)) return -1;
    char p[1200];
    sx_llama *llm = NULL;
    sx_llama_ctx *ctx = NULL;
    if (seedx_path(m, "llm.gguf", p, sizeof p) || sx_llama_load(p, &llm)) return -1;
    int64_t D = llm->cfg.hidden, Q = m->n_img_tokens, maxn = o->max_new_tokens;
    int rc = -1;
    float *emb = NULL, *hid = NULL;
    int32_t *ids32 = NULL, *gen = NULL;
    int64_t *pos = NULL;
    if (m->in_rs.embed_dim != D || m->out_rs.kv_dim != D) {
        sx_err("%s: agent width %lld / %lld does not match the LLM's %lld", m->dir,
               (long long)m->in_rs.embed_dim, (long long)m->out_rs.kv_dim, (long long)D);
        goto out;
    }
    if (P + maxn > llm->cfg.max_pos) {
        sx_err("prompt of %lld tokens + %lld new tokens exceeds the context of %lld", (long long)P,
               (long long)maxn, (long long)llm->cfg.max_pos);
        goto out;
    }
    emb = sx_malloc(sizeof(float) * (size_t)(P * D), "prompt embeddings");
    ids32 = sx_malloc(sizeof(int32_t) * (size_t)P, "prompt ids");
    pos = sx_malloc(sizeof(int64_t) * (size_t)P, "image positions");
    gen = sx_malloc(sizeof(int32_t) * (size_t)(maxn > 0 ? maxn : 1), "generated ids");
    hid = sx_malloc(sizeof(float) * (size_t)((P + maxn) * D), "hidden states");
    if (!emb || !ids32 || !pos || !gen || !hid) goto out;
    for (int64_t i = 0; i < P; i++) ids32[i] = prompt_ids[i];
    if (sx_llama_embed(llm, ids32, P, emb)) goto out;
    /* input_embeds[ids_cmp_mask] = image_embeds_lm.view(-1, dim) */
    int64_t np = sx_seedx_cmp_positions(&m->tk, prompt_ids, P, pos, P);
    if (np != n_feat_rows) {
        sx_err("the prompt has %lld image-token positions but %lld image feature rows were given "
               "(%lld images)",
               (long long)np, (long long)n_feat_rows, (long long)(n_feat_rows / (Q ? Q : 1)));
        goto out;
    }
    for (int64_t i = 0; i < np; i++) memcpy(emb + pos[i] * D, feats + i * D, sizeof(float) * D);
    int64_t se[2] = {P, D};
    sx_trace("input_embeds", emb, 2, se);
    if (sx_llama_ctx_new(llm, P + maxn, SX_F32, &ctx)) goto out;
    if (o->prefill_progress) sx_llama_ctx_set_progress(ctx, o->prefill_progress, o->prefill_progress_user);
    sx_llama_gen g;
    sx_llama_gen_defaults(llm, &g);
    g.max_new_tokens = maxn;
    g.temperature = o->temperature;
    g.top_k = o->top_k;
    g.top_p = o->top_p;
    g.seed = o->seed;
    g.eos_id = m->tk.eos;
    proc_ctx pc = {m, 0};
    g.processor = image_rule_cb;
    g.processor_user = &pc;
    g.on_token = o->on_token;
    g.on_token_user = o->on_token_user;
    int64_t n = 0;
    if (sx_llama_generate(ctx, emb, ids32, P, &g, gen, &n, hid)) goto out;
    r->ids = sx_malloc(sizeof(int32_t) * (size_t)(n ? n : 1), "reply ids");
    if (!r->ids) goto out;
    memcpy(r->ids, gen, sizeof(int32_t) * (size_t)n);
    r->n_ids = n;
    /* H[j] = hidden state while reading generated token j = hid row P + j */
    int *keep = sx_malloc(sizeof(int) * (size_t)(n ? n : 1), "text ids");
    if (!keep) goto out;
    int n_img = 0;
    for (int64_t j = 0; j < n; j++)
        if (gen[j] == m->tk.img_close && j >= Q) n_img++;
    if (n_img) {
        float *h = sx_malloc(sizeof(float) * (size_t)(n_img * Q * D), "image hidden states");
        r->img_gen_feat =
            sx_malloc(sizeof(float) * (size_t)(n_img * Q * m->out_rs.embed_dim), "img_gen_feat");
        if (!h || !r->img_gen_feat) {
            free(h);
            free(keep);
            goto out;
        }
        int k = 0;
        for (int64_t j = 0; j < n; j++)
            if (gen[j] == m->tk.img_close && j >= Q) {
                memcpy(h + (int64_t)k * Q * D, hid + (P + j - Q) * D, sizeof(float) * (size_t)(Q * D));
                k++;
            }
        int64_t sh[3] = {n_img, Q, D};
        sx_trace("img_gen_hidden", h, 3, sh);
        int e = sx_resampler_forward(&m->out_rs, h, n_img, Q, r->img_gen_feat);
        free(h);
        if (e) {
            free(keep);
            goto out;
        }
        int64_t so[3] = {n_img, Q, m->out_rs.embed_dim};
        sx_trace("img_gen_feat", r->img_gen_feat, 3, so);
        r->n_images = n_img;
        r->feat_tokens = Q;
        r->feat_dim = m->out_rs.embed_dim;
    }
    /* text = decode(generated ids minus the image spans and <img>) */
    int64_t nk = 0;
    for (int64_t j = 0; j < n; j++) {
        int in_span = 0;
        for (int64_t e2 = j + 1; e2 <= j + Q && e2 < n; e2++)
            if (gen[e2] == m->tk.img_close && e2 >= Q && j >= e2 - Q) in_span = 1;
        if (!in_span && gen[j] != m->tk.img_open) keep[nk++] = gen[j];
    }
    if (sx_detokenize(m->tok, keep, (size_t)nk, 0, &r->text, NULL)) {
        free(keep);
        goto out;
    }
    free(keep);
    if (!(r->clean = sx_seedx_strip_tags(r->text))) goto out;
    /* boxes from the text with tags: SEED-X-I answers <box_start>..<box_end>;
     * the base model's detection prompt ends with <box_start> itself */
    int open = prompt_ids[P - 1] == m->tk.box_start;
    int nb = open ? sx_seedx_extract_boxes_open(r->text, NULL, NULL, 0)
                  : sx_seedx_extract_boxes(r->text, NULL, NULL, 0);
    if (nb > 0) {
        r->boxes = sx_malloc(sizeof(int[4]) * (size_t)nb, "boxes");
        r->box_counts = sx_malloc(sizeof(int) * (size_t)nb, "boxes");
        if (!r->boxes || !r->box_counts) goto out;
        r->n_boxes = open ? sx_seedx_extract_boxes_open(r->text, r->boxes, r->box_counts, nb)
                          : sx_seedx_extract_boxes(r->text, r->boxes, r->box_counts, nb);
    }
    rc = 0;
out:
    if (rc) sx_seedx_reply_free(r);
    sx_llama_ctx_free(ctx);
    sx_llama_free(llm);
    free(emb);
    free(ids32);
    free(pos);
    free(gen);
    free(hid);
    return rc;
}

/* ---- de-tokenizer: features -> pixels -----------------------------------
 * SDXLAdapter.generate / SDXLAdapterWithLatentImage.generate: ResamplerXLV2
 * on the positive and negative features, SDXL time ids for the output size,
 * Euler (or DPM-Solver++) sampling with CFG through the UNet (2-way; 3-way
 * with an image latent for stage 2), VAE decode, uint8 conversion. */
int sx_seedx_detokenize(sx_seedx *m, const float *pos_feat, int64_t n_pos, const float *neg_feat,
                        int64_t n_neg, int stage2, const sx_image *condition,
                        const sx_seedx_opts *o, sx_image *out) {
    if (!m || !pos_feat || !neg_feat || !o || !out) return sx_err("sx_seedx_detokenize: bad arguments");
    memset(out, 0, sizeof *out);
    char p[1200];
    const char *detok_file = stage2 ? "detokenizer_edit.gguf" : "detokenizer.gguf";
    const char *unet_file = stage2 ? "unet_edit.gguf" : "unet.gguf";
    sx_gguf *dg = NULL;
    sx_detok dt;
    memset(&dt, 0, sizeof dt);
    sx_unet *unet = NULL;
    sx_vae *vae = NULL;
    sx_sched sch;
    memset(&sch, 0, sizeof sch);
    float *pe = NULL, *ne = NULL, *pp = NULL, *np_ = NULL, *lat = NULL, *img = NULL, *cimg = NULL,
          *clat = NULL;
    int rc = -1;
    if (o->width <= 0 || o->height <= 0 || o->width % 8 || o->height % 8) {
        sx_err("output size %dx%d: both sides must be positive multiples of 8", o->width, o->height);
        goto out;
    }
    /* 1. ResamplerXLV2 -> prompt embeds [64, 2048] + pooled [1280], pos and neg */
    if (seedx_path(m, detok_file, p, sizeof p) || sx_gguf_open(p, &dg) ||
        sx_detok_load(dg, "resampler.", &dt))
        goto out;
    int64_t Qd = dt.n_queries, W = dt.out1 + dt.out2;
    pe = sx_malloc(sizeof(float) * (size_t)(Qd * W), "prompt embeds");
    ne = sx_malloc(sizeof(float) * (size_t)(Qd * W), "negative prompt embeds");
    pp = sx_malloc(sizeof(float) * (size_t)dt.out2, "pooled");
    np_ = sx_malloc(sizeof(float) * (size_t)dt.out2, "negative pooled");
    if (!pe || !ne || !pp || !np_) goto out;
    if (sx_detok_forward(&dt, pos_feat, n_pos, pe, pp) ||
        sx_detok_forward(&dt, neg_feat, n_neg, ne, np_))
        goto out;
    int64_t s2[2] = {Qd, W};
    sx_trace("prompt_embeds", pe, 2, s2);
    sx_trace("negative_prompt_embeds", ne, 2, s2);
    sx_detok_free(&dt);
    sx_gguf_close(dg);
    dg = NULL;
    /* 2. condition image latent (stage 2): resize to the output size (1024 in
     * the official scripts), [-1,1], VAE encoder mean (not scaled) */
    int64_t h = o->height / 8, w = o->width / 8;
    if (seedx_path(m, "vae.gguf", p, sizeof p) || sx_vae_load(p, &vae)) goto out;
    if (stage2 && condition) {
        sx_image rs;
        memset(&rs, 0, sizeof rs);
        cimg = sx_malloc(sizeof(float) * (size_t)(3 * o->width * o->height), "condition image");
        clat = sx_malloc(sizeof(float) * (size_t)(4 * h * w), "condition latent");
        if (!cimg || !clat) goto out;
        if (sx_image_resize(condition, o->width, o->height, SX_RESIZE_BICUBIC, &rs)) goto out;
        for (int64_t c = 0; c < 3; c++)
            for (int64_t i = 0; i < (int64_t)o->width * o->height; i++)
                cimg[c * o->width * o->height + i] = rs.data[i * 3 + c] / 255.0f * 2.0f - 1.0f;
        sx_image_free(&rs);
        if (sx_vae_encode(vae, cimg, 3, o->height, o->width, o->vae_tiling, clat, NULL)) goto out;
        int64_t sl[3] = {4, h, w};
        sx_trace("image_latents", clat, 3, sl);
    }
    /* 3. sampler (Euler, or DPM-Solver++) + CFG through the UNet */
    if (seedx_path(m, unet_file, p, sizeof p) || sx_unet_load(p, &unet)) goto out;
    if (sx_sched_init(&sch, sx_unet_gguf(unet), o->steps, o->sampler, o->karras)) goto out;
    lat = sx_malloc(sizeof(float) * (size_t)(4 * h * w), "latents");
    if (!lat) goto out;
    if (o->init_latents)
        memcpy(lat, o->init_latents, sizeof(float) * (size_t)(4 * h * w));
    else if (sx_randn(lat, 4 * h * w, o->seed, o->rng))
        goto out;
    sx_cond cond = {pe, Qd, pp, {(float)o->height, (float)o->width, 0, 0, (float)o->height, (float)o->width}};
    sx_cond unc = {ne, Qd, np_, {(float)o->height, (float)o->width, 0, 0, (float)o->height, (float)o->width}};
    int e = stage2 ? sx_sample_edit(unet, &sch, lat, h, w, &cond, &unc, clat, o->cfg, o->image_cfg,
                                    o->progress, o->progress_user, NULL)
                   : sx_sample_cfg(unet, &sch, lat, h, w, &cond, &unc, o->cfg, o->progress,
                                   o->progress_user, NULL);
    if (e) goto out;
    int64_t sl[3] = {4, h, w};
    sx_trace("latents", lat, 3, sl);
    sx_unet_free(unet);
    unet = NULL;
    /* 4. VAE decode and diffusers' postprocess */
    img = sx_malloc(sizeof(float) * (size_t)(3 * o->width * o->height), "image");
    if (!img || sx_vae_decode(vae, lat, 4, h, w, o->vae_tiling, img) ||
        sx_vae_to_rgb8(img, 3, o->height, o->width, out))
        goto out;
    rc = 0;
out:
    sx_detok_free(&dt);
    sx_gguf_close(dg);
    sx_unet_free(unet);
    sx_vae_free(vae);
    sx_sched_free(&sch);
    free(pe), free(ne), free(pp), free(np_), free(lat), free(img), free(cimg), free(clat);
    return rc;
}

/* T2I / edit de-tokenization of LLM output: positive = img_gen_feat [64, E],
 * negative = ViT(zero image) average-pooled 256 -> 64 tokens (vit_down). */
int sx_seedx_decode_generated(sx_seedx *m, const float *img_gen_feat, int stage2,
                              const sx_image *condition, const sx_seedx_opts *o, sx_image *out) {
    const float *z;
    int64_t nz, E;
    if (zero_image_features(m, &z, &nz, &E)) return -1;
    if (load_agent(m)) return -1;
    if (m->out_rs.embed_dim != E)
        return sx_err("%s: output_resampler gives %lld-wide features, the de-tokenizer's negative "
                      "(ViT) is %lld",
                      m->dir, (long long)m->out_rs.embed_dim, (long long)E);
    float *neg = sx_malloc(sizeof(float) * (size_t)(nz / 4 * E), "negative features");
    if (!neg) return -1;
    int rc = sx_vit_down(neg, z, nz, E);
    if (!rc)
        rc = sx_seedx_detokenize(m, img_gen_feat, m->n_img_tokens, neg, nz / 4, stage2, condition,
                                 o, out);
    free(neg);
    return rc;
}

/* eval_seed_x_detokenizer(_with_condition).py: image -> ViT (256 tokens,
 * un-pooled) -> de-tokenizer, negative = ViT(zero image) un-pooled. */
int sx_seedx_reconstruct(sx_seedx *m, const sx_image *image, const sx_image *condition,
                         const sx_seedx_opts *o, sx_image *out) {
    float *f = NULL;
    const float *z;
    int64_t n, E, nz, Ez;
    if (image_features_448(m, image, &f, &n, &E)) return -1;
    int rc = zero_image_features(m, &z, &nz, &Ez);
    if (!rc)
        rc = sx_seedx_detokenize(m, f, n, z, nz, condition != NULL, condition, o, out);
    free(f);
    return rc;
}

/* ---- prompts -------------------------------------------------------------
 * The official scripts' templates; {IMG} is the image blocks of all images,
 * {TEXT} the user's text:
 *   SEED-X-I / -Edit        '[INST] {IMG}{TEXT} [/INST]\n'  (eval_img2text_seed_x_i.py,
 *                             eval_text2img_seed_x_i.py with TEXT 'Generate an image: ...',
 *                             eval_img2edit_seed_x_edit.py)
 *   SEED-X base, question   'Question: {IMG}{TEXT}\nAnswer:'  (eval_img2text_seed_x.py)
 *   SEED-X base, detection  '{IMG}{TEXT} [[ <box_start>'     (same script)
 *   SEED-X base, T2I        '{TEXT}<img>'                     (eval_text2img_seed_x.py) */
const char *sx_seedx_template(const char *name) {
    if (!strcmp(name, "seed-x-i") || !strcmp(name, "seed-x-edit")) return "[INST] {IMG}{TEXT} [/INST]\n";
    if (!strcmp(name, "seed-x")) return "Question: {IMG}{TEXT}\nAnswer:";
    if (!strcmp(name, "seed-x-detect")) return "{IMG}{TEXT} [[ <box_start>";
    if (!strcmp(name, "seed-x-t2i")) return "{TEXT}<img>";
    return NULL;
}

/* bos + tokens of the template filled in. n_images images with tiles[i]
 * any-res images each. */
int sx_seedx_build_prompt_t(const sx_seedx *m, const char *tmpl, const char *text, const int *tiles,
                            int n_images, int **ids, int64_t *n) {
    if (!tmpl || !strstr(tmpl, "{TEXT}"))
        return sx_err("prompt template must contain {TEXT}: '%s'", tmpl ? tmpl : "(null)");
    if (n_images > 0 && !strstr(tmpl, "{IMG}"))
        return sx_err("prompt template has no {IMG} for %d image(s)", n_images);
    size_t cap = strlen(text) + strlen(tmpl) + 16;
    char **blocks = sx_calloc((size_t)(n_images > 0 ? n_images : 1), sizeof(char *), "blocks");
    if (!blocks) return -1;
    int rc = -1;
    for (int i = 0; i < n_images; i++) {
        if (!(blocks[i] = sx_seedx_image_block(tiles[i], m->n_img_tokens ? (int)m->n_img_tokens : 64)))
            goto out;
        cap += strlen(blocks[i]);
    }
    char *s = sx_malloc(cap, "prompt");
    if (!s) goto out;
    size_t o = 0;
    for (const char *p = tmpl; *p;) {
        if (!strncmp(p, "{IMG}", 5)) {
            for (int i = 0; i < n_images; i++) o += (size_t)sprintf(s + o, "%s", blocks[i]);
            p += 5;
        } else if (!strncmp(p, "{TEXT}", 6)) {
            o += (size_t)sprintf(s + o, "%s", text);
            p += 6;
        } else {
            s[o++] = *p++;
        }
    }
    s[o] = 0;
    int *t = NULL;
    size_t nt = 0;
    if (sx_tokenize(m->tok, s, strlen(s), 0, &t, &nt) == 0) {
        *ids = sx_malloc(sizeof(int) * (nt + 1), "prompt ids");
        if (*ids) {
            (*ids)[0] = m->tk.bos;
            memcpy(*ids + 1, t, sizeof(int) * nt);
            *n = (int64_t)nt + 1;
            rc = 0;
        }
        free(t);
    }
    free(s);
out:
    for (int i = 0; i < n_images; i++) free(blocks[i]);
    free(blocks);
    return rc;
}

int sx_seedx_build_prompt(const sx_seedx *m, const char *text, const int *tiles, int n_images,
                          int **ids, int64_t *n) {
    return sx_seedx_build_prompt_t(m, sx_seedx_template("seed-x-i"), text, tiles, n_images, ids, n);
}

/* ======================================================================
 * Command line: seedx chat | generate | edit | reconstruct | ground
 * ====================================================================== */
typedef struct {
    const char *model, *prompt, *out, *cond, *grids, *tmpl;
    const char *images[16];
    int n_images, verbose, force_image;
    const char *mode;
    sx_seedx_opts o;
} cli_args;

static void cli_usage(const char *cmd) {
    fprintf(stderr,
            "usage: seedx %s -m MODEL_DIR [options]\n"
            "  -m DIR            model directory (scripts/convert.py --pretrained ... --out DIR)\n"
            "  -p TEXT           prompt / question / caption / instruction\n"
            "  --image FILE      input image (repeatable for chat)\n"
            "  --condition FILE  condition image (reconstruct)\n"
            "  -o FILE           output image (.png or .ppm)\n"
            "  -n N              max new tokens (default 512; generate: 120)\n"
            "  --temp T --top-p P --top-k K   sampling (default greedy, as the official code)\n"
            "  --seed S          noise / sampling seed (default 42)\n"
            "  --rng torch-cpu|torch-cuda     noise generator (default torch-cpu)\n"
            "  --steps N --cfg G --image-cfg G --size WxH   diffusion (50, 7.5, 1.5, 1024x1024)\n"
            "  --grids LIST      any-res candidates, e.g. 1x1,2x2 (default: the official 8)\n"
            "  --vae-tiling      tiled VAE (bounded memory)\n"
            "  --dtype T         f32|f16|bf16: every weight matrix in type T, converted at load\n"
            "                    (default: as the model files store them); activations stay f32\n"
            "  --force-image     end the prompt with <img> (SEED-X base text-to-image)\n"
            "  --template T      seed-x-i (default: '[INST] {IMG}{TEXT} [/INST]\\n') or seed-x (the base\n"
            "                    model's 'Question: ..\\nAnswer:', detection '.. [[ <box_start>',\n"
            "                    text-to-image '{TEXT}<img>'), or a literal template with {IMG} {TEXT}\n"
            "  -q                no per-stage timing / peak memory summary on stderr\n",
            cmd);
}

static int cli_parse(const char *cmd, int argc, char **argv, cli_args *a) {
    memset(a, 0, sizeof *a);
    a->mode = cmd;
    a->verbose = 1; /* per-stage timing and peak RSS on stderr; -q turns it off */
    sx_seedx_opts_default(&a->o);
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV                                                                            \
    if (!v) {                                                                            \
        fprintf(stderr, "seedx %s: %s needs a value\n", cmd, k);                         \
        return 2;                                                                        \
    }                                                                                    \
    i++;
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            cli_usage(cmd);
            return 1;
        } else if (!strcmp(k, "-m")) {
            NEEDV a->model = v;
        } else if (!strcmp(k, "-p")) {
            NEEDV a->prompt = v;
        } else if (!strcmp(k, "-o")) {
            NEEDV a->out = v;
        } else if (!strcmp(k, "--image")) {
            NEEDV if (a->n_images == 16) {
                fprintf(stderr, "seedx %s: at most 16 images\n", cmd);
                return 2;
            }
            a->images[a->n_images++] = v;
        } else if (!strcmp(k, "--condition")) {
            NEEDV a->cond = v;
        } else if (!strcmp(k, "--grids")) {
            NEEDV a->grids = v;
        } else if (!strcmp(k, "-n")) {
            NEEDV a->o.max_new_tokens = atoll(v);
        } else if (!strcmp(k, "--temp")) {
            NEEDV a->o.temperature = (float)atof(v);
        } else if (!strcmp(k, "--top-p")) {
            NEEDV a->o.top_p = (float)atof(v);
        } else if (!strcmp(k, "--top-k")) {
            NEEDV a->o.top_k = atoi(v);
        } else if (!strcmp(k, "--seed")) {
            NEEDV a->o.seed = strtoull(v, NULL, 10);
        } else if (!strcmp(k, "--rng")) {
            NEEDV if (sx_rng_parse(v, &a->o.rng)) {
                fprintf(stderr, "seedx %s: %s\n", cmd, sx_errmsg());
                return 2;
            }
        } else if (!strcmp(k, "--steps")) {
            NEEDV a->o.steps = atoi(v);
        } else if (!strcmp(k, "--cfg")) {
            NEEDV a->o.cfg = (float)atof(v);
        } else if (!strcmp(k, "--image-cfg")) {
            NEEDV a->o.image_cfg = (float)atof(v);
        } else if (!strcmp(k, "--size")) {
            NEEDV if (sscanf(v, "%dx%d", &a->o.width, &a->o.height) != 2) {
                fprintf(stderr, "seedx %s: --size wants WxH, got '%s'\n", cmd, v);
                return 2;
            }
        } else if (!strcmp(k, "--dtype")) {
            NEEDV int t = !strcmp(v, "f32") ? SX_F32 : !strcmp(v, "f16") ? SX_F16 : !strcmp(v, "bf16") ? SX_BF16 : -2;
            if (t == -2 || sx_set_weight_dtype(t)) {
                fprintf(stderr, "seedx %s: --dtype wants f32, f16 or bf16, got '%s'\n", cmd, v);
                return 2;
            }
        } else if (!strcmp(k, "--vae-tiling")) {
            a->o.vae_tiling = 1;
        } else if (!strcmp(k, "--template")) {
            NEEDV a->tmpl = v;
        } else if (!strcmp(k, "--force-image")) {
            a->force_image = 1;
        } else if (!strcmp(k, "-v")) {
            a->verbose = 1;
        } else if (!strcmp(k, "-q")) {
            a->verbose = 0;
        } else {
            fprintf(stderr, "seedx %s: unknown option '%s'\n", cmd, k);
            cli_usage(cmd);
            return 2;
        }
#undef NEEDV
    }
    if (!a->model) {
        fprintf(stderr, "seedx %s: -m MODEL_DIR is required\n", cmd);
        return 2;
    }
    if (a->o.steps <= 0 || a->o.max_new_tokens <= 0) {
        fprintf(stderr, "seedx %s: --steps and -n must be positive\n", cmd);
        return 2;
    }
    a->o.grids = a->grids;
    return 0;
}

static int stream_token(void *user, int32_t id) {
    const sx_seedx *m = user;
    const sx_seedx_tokens *t = sx_seedx_special(m);
    if (id == t->eos || (id >= t->img[0] && id <= t->img[t->n_img - 1]) || id == t->img_open ||
        id == t->img_close)
        return 0;
    size_t n;
    const char *s = sx_token_str(sx_seedx_tokenizer(m), id, &n);
    if (!s) return 0;
    /* SentencePiece pieces: U+2581 is a space; <0x0A> style byte pieces */
    for (size_t i = 0; i < n; i++) {
        if (i + 2 < n && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 &&
            (unsigned char)s[i + 2] == 0x81) {
            fputc(' ', stdout);
            i += 2;
        } else if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x') {
            fputc((int)strtol(s + 3, NULL, 16), stdout);
            break;
        } else {
            fputc(s[i], stdout);
        }
    }
    fflush(stdout);
    return 0;
}

static void progress_plain(void *ud, int step, int n_steps, float t, const float *lat) {
    (void)lat;
    double *t0 = ud;
    fprintf(stderr, "denoise step %d/%d (t=%g) %.1fs\n", step + 1, n_steps, t, sx_time() - *t0);
}

static sx_progress_bar bar;
static double plain_t0;

/* prefill progress: a bar with ETA on a TTY (stderr), nothing otherwise */
static void prefill_bar(void *ud, int64_t done, int64_t total) {
    double t0 = *(double *)ud, el = sx_time() - t0;
    int w = 30, f = (int)(w * done / (total ? total : 1));
    double eta = done ? el * (double)(total - done) / (double)done : 0;
    fprintf(stderr, "\rprefill %3lld%% [%.*s%.*s] %.1fs, ETA %.1fs", (long long)(100 * done / total), f,
            "##############################", w - f, "..............................", el, eta);
    if (done == total) fputc('\n', stderr);
}
static double prefill_t0;

static void set_progress(sx_seedx_opts *o, const char *label) {
    if (isatty(2)) {
        bar.t0 = sx_time();
        bar.label = label;
        o->progress = sx_progress_stderr;
        o->progress_user = &bar;
    } else {
        plain_t0 = sx_time();
        o->progress = progress_plain;
        o->progress_user = &plain_t0;
    }
}

static int load_images(const cli_args *a, sx_image *ims) {
    for (int i = 0; i < a->n_images; i++)
        if (sx_image_load_rgb(a->images[i], &ims[i])) {
            for (int j = 0; j < i; j++) sx_image_free(&ims[j]);
            return -1;
        }
    return 0;
}

static int save_image(const char *path, const sx_image *im) {
    if (sx_image_save(path, im)) return -1;
    printf("wrote %s (%dx%d)\n", path, im->w, im->h);
    return 0;
}

static void report(const cli_args *a, double t0) {
    if (a->verbose)
        fprintf(stderr, "total %.2fs, peak RSS %.1f MB\n", sx_time() - t0,
                (double)sx_peak_rss() / 1048576.0);
}

/* One turn on the images and prompt of a; images generated by the model are
 * decoded (stage 2 with the first input image as condition when `edit`). */
/* The prompt template of a mode: --template seed-x-i|seed-x|literal. */
static const char *mode_template(const cli_args *a, const char *mode) {
    if (!a->tmpl || !strcmp(a->tmpl, "seed-x-i") || !strcmp(a->tmpl, "seed-x-edit"))
        return sx_seedx_template("seed-x-i");
    if (!strcmp(a->tmpl, "seed-x"))
        return sx_seedx_template(!strcmp(mode, "ground")     ? "seed-x-detect"
                                 : !strcmp(mode, "generate") ? "seed-x-t2i"
                                                             : "seed-x");
    return a->tmpl;
}

static int run_turn(sx_seedx *m, cli_args *a, const char *text, int edit, int print_text,
                    sx_seedx_reply *r) {
    sx_image ims[16];
    memset(ims, 0, sizeof ims);
    float *feats = NULL;
    int64_t rows = 0, n = 0;
    int tiles[16], rc = -1;
    int *ids = NULL;
    if (load_images(a, ims)) return -1;
    double t = sx_time();
    if (sx_seedx_encode_images(m, ims, a->n_images, a->grids, &feats, &rows, tiles)) goto out;
    if (a->verbose && a->n_images) fprintf(stderr, "vision: %.2fs\n", sx_time() - t);
    /* --force-image: the prompt string ends with <img> (the tokenizer then drops
     * the whitespace before it, as in the official base T2I prompt) */
    const char *tm = mode_template(a, a->mode);
    char tbuf[512];
    size_t tl = strlen(tm);
    if (a->force_image && !(tl >= 5 && !strcmp(tm + tl - 5, "<img>"))) {
        snprintf(tbuf, sizeof tbuf, "%s<img>", tm);
        tm = tbuf;
    }
    if (sx_seedx_build_prompt_t(m, tm, text, tiles, a->n_images, &ids, &n)) goto out;
    if (print_text) {
        a->o.on_token = stream_token;
        a->o.on_token_user = m;
    }
    if (isatty(2)) {
        prefill_t0 = sx_time();
        a->o.prefill_progress = prefill_bar;
        a->o.prefill_progress_user = &prefill_t0;
    }
    t = sx_time();
    if (sx_seedx_generate(m, ids, n, feats, rows, &a->o, r)) goto out;
    if (print_text) {
        printf("\n");
        fflush(stdout);
    }
    if (a->verbose)
        fprintf(stderr, "llm: %lld prompt + %lld new tokens in %.2fs\n", (long long)n,
                (long long)r->n_ids, sx_time() - t);
    rc = 0;
    (void)edit;
out:
    for (int i = 0; i < a->n_images; i++) sx_image_free(&ims[i]);
    free(feats);
    free(ids);
    return rc;
}

static int decode_images(sx_seedx *m, cli_args *a, const sx_seedx_reply *r, int stage2,
                         const char *out_default) {
    sx_image cond;
    memset(&cond, 0, sizeof cond);
    if (stage2 && a->n_images && sx_image_load_rgb(a->images[0], &cond)) return -1;
    int rc = 0;
    for (int i = 0; i < r->n_images && rc == 0; i++) {
        char path[1100];
        const char *base = a->out ? a->out : out_default;
        if (r->n_images == 1)
            snprintf(path, sizeof path, "%s", base);
        else
            snprintf(path, sizeof path, "%d-%s", i, base);
        sx_image im;
        set_progress(&a->o, "denoise");
        double t = sx_time();
        rc = sx_seedx_decode_generated(m, r->img_gen_feat + (int64_t)i * r->feat_tokens * r->feat_dim,
                                       stage2, stage2 && a->n_images ? &cond : NULL, &a->o, &im);
        if (rc == 0) {
            if (a->verbose) fprintf(stderr, "de-tokenizer: %.2fs\n", sx_time() - t);
            rc = save_image(path, &im);
            sx_image_free(&im);
        }
    }
    sx_image_free(&cond);
    return rc;
}

static int open_model(const char *cmd, const cli_args *a, sx_seedx **m) {
    if (sx_seedx_open(a->model, m)) {
        fprintf(stderr, "seedx %s: %s\n", cmd, sx_errmsg());
        return 1;
    }
    return 0;
}

static int fail(const char *cmd, sx_seedx *m) {
    fprintf(stderr, "seedx %s: %s\n", cmd, sx_errmsg());
    sx_seedx_free(m);
    return 1;
}

int sx_cmd_chat(int argc, char **argv) {
    cli_args a;
    int e = cli_parse("chat", argc, argv, &a);
    if (e) return e == 1 ? 0 : e;
    double t0 = sx_time();
    sx_seedx *m;
    if (open_model("chat", &a, &m)) return 1;
    sx_seedx_reply r;
    if (a.prompt) { /* one shot */
        if (run_turn(m, &a, a.prompt, 0, 1, &r)) return fail("chat", m);
        int rc = r.n_images ? decode_images(m, &a, &r, sx_seedx_has(m, "unet_edit.gguf") && a.n_images,
                                            "seedx-chat.png")
                            : 0;
        sx_seedx_reply_free(&r);
        if (rc) return fail("chat", m);
        report(&a, t0);
        sx_seedx_free(m);
        return 0;
    }
    /* REPL, multi-turn: each line is a question; "/image PATH" attaches an
     * image to the next question. The conversation so far is kept as text
     * ("[INST] ... [/INST]\n answer ") with every earlier image block in place,
     * and each turn runs on the whole history with all images' features
     * spliced in order (computed once per image). "/reset" forgets it all. */
    char line[8192];
    char *hist = strdup("");
    float *feats = NULL;
    int64_t rows = 0;
    int pending = 0, pend_tiles[16];
    int n_total = 0;
    fprintf(stderr, "seedx chat: type a message; /image PATH attaches an image; /reset; /quit\n");
    while (hist && (fputs("> ", stderr), fgets(line, sizeof line, stdin))) {
        size_t L = strlen(line);
        while (L && (line[L - 1] == '\n' || line[L - 1] == '\r')) line[--L] = 0;
        if (!L) continue;
        if (!strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            hist[0] = 0;
            free(feats);
            feats = NULL;
            rows = 0;
            pending = 0;
            n_total = 0;
            continue;
        }
        if (!strncmp(line, "/image ", 7)) {
            if (n_total >= 16) {
                fprintf(stderr, "seedx chat: at most 16 images\n");
                continue;
            }
            sx_image im;
            float *f = NULL;
            int64_t r0 = 0;
            if (sx_image_load_rgb(line + 7, &im) ||
                sx_seedx_encode_images(m, &im, 1, a.grids, &f, &r0, &pend_tiles[pending])) {
                fprintf(stderr, "seedx chat: %s\n", sx_errmsg());
                continue;
            }
            sx_image_free(&im);
            /* feats grows by r0 rows of the LLM width */
            int64_t D = sx_seedx_feat_width(m);
            float *nf = realloc(feats, sizeof(float) * (size_t)((rows + r0) * D));
            if (!nf) {
                free(f);
                fprintf(stderr, "seedx chat: out of memory\n");
                continue;
            }
            feats = nf;
            memcpy(feats + rows * D, f, sizeof(float) * (size_t)(r0 * D));
            rows += r0;
            free(f);
            pending++;
            n_total++;
            fprintf(stderr, "(image attached: %d any-res images)\n", pend_tiles[pending - 1]);
            continue;
        }
        /* this turn's text: image blocks of the newly attached images, then the question */
        size_t cap = strlen(hist) + L + 64;
        char *blocks[16];
        for (int i = 0; i < pending; i++) {
            blocks[i] = sx_seedx_image_block(pend_tiles[i], 64);
            cap += blocks[i] ? strlen(blocks[i]) : 0;
        }
        char *full = malloc(cap);
        if (!full) break;
        size_t o = (size_t)sprintf(full, "%s[INST] ", hist);
        for (int i = 0; i < pending; i++) {
            if (blocks[i]) o += (size_t)sprintf(full + o, "%s", blocks[i]);
            free(blocks[i]);
        }
        sprintf(full + o, "%s [/INST]\n", line);
        pending = 0;
        int *t = NULL, *ids = NULL;
        size_t nt = 0;
        int ok = sx_tokenize(sx_seedx_tokenizer(m), full, strlen(full), 0, &t, &nt) == 0 &&
                 (ids = malloc(sizeof(int) * (nt + 1))) != NULL;
        if (ok) {
            ids[0] = sx_seedx_special(m)->bos;
            memcpy(ids + 1, t, sizeof(int) * nt);
            a.o.on_token = stream_token;
            a.o.on_token_user = m;
            ok = sx_seedx_generate(m, ids, (int64_t)nt + 1, feats, rows, &a.o, &r) == 0;
            printf("\n");
            fflush(stdout);
        }
        free(t);
        free(ids);
        if (!ok) {
            fprintf(stderr, "seedx chat: %s\n", sx_errmsg());
            free(full);
            continue;
        }
        if (r.n_images && decode_images(m, &a, &r, 0, "seedx-chat.png"))
            fprintf(stderr, "seedx chat: %s\n", sx_errmsg());
        /* history += this turn + the answer */
        char *nh = malloc(strlen(full) + strlen(r.text) + 2);
        if (nh) {
            sprintf(nh, "%s%s ", full, r.text);
            free(hist);
            hist = nh;
        }
        free(full);
        sx_seedx_reply_free(&r);
    }
    free(hist);
    free(feats);
    sx_seedx_free(m);
    return 0;
}

int sx_cmd_generate(int argc, char **argv) {
    cli_args a;
    int e = cli_parse("generate", argc, argv, &a);
    if (e) return e == 1 ? 0 : e;
    if (!a.prompt || !a.out) {
        fprintf(stderr, "seedx generate: -p CAPTION and -o OUT.png are required\n");
        return 2;
    }
    if (a.n_images) {
        fprintf(stderr, "seedx generate: takes no --image (use edit)\n");
        return 2;
    }
    double t0 = sx_time();
    sx_seedx *m;
    if (open_model("generate", &a, &m)) return 1;
    char text[8192];
    if (a.tmpl && !strcmp(a.tmpl, "seed-x"))
        snprintf(text, sizeof text, "%s", a.prompt); /* '{caption}<img>' */
    else
        snprintf(text, sizeof text, "Generate an image: %s", a.prompt);
    int default_n = 1;
    for (int i = 1; i < argc; i++) default_n &= strcmp(argv[i], "-n") != 0;
    if (default_n) a.o.max_new_tokens = 120;
    sx_seedx_reply r;
    if (run_turn(m, &a, text, 0, 0, &r)) return fail("generate", m);
    if (!r.n_images) {
        fprintf(stderr, "seedx generate: the model answered without an image: \"%s\" "
                        "(try --force-image)\n", r.clean ? r.clean : "");
        sx_seedx_reply_free(&r);
        sx_seedx_free(m);
        return 1;
    }
    int rc = decode_images(m, &a, &r, 0, a.out);
    sx_seedx_reply_free(&r);
    if (rc) return fail("generate", m);
    report(&a, t0);
    sx_seedx_free(m);
    return 0;
}

int sx_cmd_edit(int argc, char **argv) {
    cli_args a;
    int e = cli_parse("edit", argc, argv, &a);
    if (e) return e == 1 ? 0 : e;
    if (!a.prompt || !a.out || a.n_images != 1) {
        fprintf(stderr, "seedx edit: --image IN, -p INSTRUCTION and -o OUT.png are required\n");
        return 2;
    }
    double t0 = sx_time();
    sx_seedx *m;
    if (open_model("edit", &a, &m)) return 1;
    if (!sx_seedx_has(m, "unet_edit.gguf") || !sx_seedx_has(m, "detokenizer_edit.gguf")) {
        fprintf(stderr, "seedx edit: %s is not a SEED-X-Edit model (no unet_edit.gguf / "
                        "detokenizer_edit.gguf; convert with --variant seed-x-edit)\n", a.model);
        sx_seedx_free(m);
        return 1;
    }
    if (!a.grids) a.grids = "1x1"; /* the edit script uses the 1x1 grid only */
    sx_seedx_reply r;
    if (run_turn(m, &a, a.prompt, 1, 0, &r)) return fail("edit", m);
    if (!r.n_images) {
        fprintf(stderr, "seedx edit: the model answered without an image: \"%s\" (try --force-image)\n",
                r.clean ? r.clean : "");
        sx_seedx_reply_free(&r);
        sx_seedx_free(m);
        return 1;
    }
    int rc = decode_images(m, &a, &r, 1, a.out);
    sx_seedx_reply_free(&r);
    if (rc) return fail("edit", m);
    report(&a, t0);
    sx_seedx_free(m);
    return 0;
}

int sx_cmd_reconstruct(int argc, char **argv) {
    cli_args a;
    int e = cli_parse("reconstruct", argc, argv, &a);
    if (e) return e == 1 ? 0 : e;
    if (a.n_images != 1 || !a.out) {
        fprintf(stderr, "seedx reconstruct: --image IN and -o OUT.png are required\n");
        return 2;
    }
    double t0 = sx_time();
    sx_seedx *m;
    if (open_model("reconstruct", &a, &m)) return 1;
    sx_image im, cond, out;
    memset(&cond, 0, sizeof cond);
    if (sx_image_load_rgb(a.images[0], &im)) return fail("reconstruct", m);
    if (a.cond && sx_image_load_rgb(a.cond, &cond)) {
        sx_image_free(&im);
        return fail("reconstruct", m);
    }
    set_progress(&a.o, "denoise");
    int rc = sx_seedx_reconstruct(m, &im, a.cond ? &cond : NULL, &a.o, &out);
    sx_image_free(&im);
    sx_image_free(&cond);
    if (rc == 0) {
        rc = save_image(a.out, &out);
        sx_image_free(&out);
    }
    if (rc) return fail("reconstruct", m);
    report(&a, t0);
    sx_seedx_free(m);
    return 0;
}

/* Draws a 2-pixel green rectangle (the official visualizer uses
 * cv2.rectangle(..., (0,255,0), 2)). */
static void draw_rect(sx_image *im, const int r[4]) {
    for (int t = 0; t < 2; t++) {
        int x1 = r[0] - (t ? 1 : 0), y1 = r[1] - (t ? 1 : 0), x2 = r[2] + (t ? 1 : 0) - t,
            y2 = r[3] + (t ? 1 : 0) - t;
        for (int x = x1; x <= x2; x++)
            for (int k = 0; k < 2; k++) {
                int y = k ? y2 : y1;
                if (x >= 0 && x < im->w && y >= 0 && y < im->h) {
                    uint8_t *p = im->data + ((size_t)y * im->w + x) * 3;
                    p[0] = 0, p[1] = 255, p[2] = 0;
                }
            }
        for (int y = y1; y <= y2; y++)
            for (int k = 0; k < 2; k++) {
                int x = k ? x2 : x1;
                if (x >= 0 && x < im->w && y >= 0 && y < im->h) {
                    uint8_t *p = im->data + ((size_t)y * im->w + x) * 3;
                    p[0] = 0, p[1] = 255, p[2] = 0;
                }
            }
    }
}

int sx_cmd_ground(int argc, char **argv) {
    cli_args a;
    int e = cli_parse("ground", argc, argv, &a);
    if (e) return e == 1 ? 0 : e;
    if (a.n_images != 1 || !a.prompt) {
        fprintf(stderr, "seedx ground: --image FILE and -p TEXT are required\n");
        return 2;
    }
    double t0 = sx_time();
    sx_seedx *m;
    if (open_model("ground", &a, &m)) return 1;
    sx_seedx_reply r;
    if (run_turn(m, &a, a.prompt, 0, 1, &r)) return fail("ground", m);
    sx_image im;
    if (sx_image_load_rgb(a.images[0], &im)) {
        sx_seedx_reply_free(&r);
        return fail("ground", m);
    }
    printf("%d box(es)\n", r.n_boxes);
    for (int i = 0; i < r.n_boxes; i++) {
        int rect[4];
        if (r.box_counts[i] < 4) {
            printf("box %d: %d values (need 4), skipped\n", i, r.box_counts[i]);
            continue;
        }
        sx_seedx_box_rect(r.boxes[i], im.w, im.h, rect);
        printf("box %d: loc (%d, %d, %d, %d) -> pixels x1=%d y1=%d x2=%d y2=%d\n", i, r.boxes[i][0],
               r.boxes[i][1], r.boxes[i][2], r.boxes[i][3], rect[0], rect[1], rect[2], rect[3]);
        draw_rect(&im, rect);
    }
    int rc = a.out ? save_image(a.out, &im) : 0;
    sx_image_free(&im);
    sx_seedx_reply_free(&r);
    if (rc) return fail("ground", m);
    report(&a, t0);
    sx_seedx_free(m);
    return 0;
}

/* ---- seedx demo: every mode on the committed tiny model ------------------ */
static int write_demo_image(const char *path) {
    /* a 640x480 synthetic scene: sky gradient, a red square, a blue disc */
    sx_image im = {640, 480, 3, NULL};
    im.data = sx_malloc((size_t)640 * 480 * 3, "demo image");
    if (!im.data) return -1;
    for (int y = 0; y < 480; y++)
        for (int x = 0; x < 640; x++) {
            uint8_t *p = im.data + ((size_t)y * 640 + x) * 3;
            p[0] = (uint8_t)(60 + y / 4), p[1] = (uint8_t)(120 + y / 5), p[2] = (uint8_t)(230 - y / 8);
            if (x > 80 && x < 240 && y > 260 && y < 420) p[0] = 210, p[1] = 40, p[2] = 30;
            int dx = x - 470, dy = y - 200;
            if (dx * dx + dy * dy < 90 * 90) p[0] = 30, p[1] = 60, p[2] = 200;
        }
    int rc = sx_image_save(path, &im);
    sx_image_free(&im);
    return rc;
}

int sx_cmd_demo(int argc, char **argv) {
    const char *model = "tests/fixtures/seedx_e2e/model", *outdir = "demo-out";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) outdir = argv[++i];
        else {
            fprintf(stderr, "usage: seedx demo [-m TINY_MODEL_DIR] [--out DIR]\n"
                            "Runs every SEED-X mode on the tiny random-weight model committed in\n"
                            "tests/fixtures/seedx_e2e/model (run from the repository root).\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    struct stat st;
    if (stat(model, &st) != 0) {
        fprintf(stderr, "seedx demo: %s not found: run from the repository root or pass -m\n", model);
        return 1;
    }
    mkdir(outdir, 0777);
    char img[1100], o1[1100], o2[1100], o3[1100], o4[1100], o5[1100];
    snprintf(img, sizeof img, "%s/input.png", outdir);
    snprintf(o1, sizeof o1, "%s/ground.png", outdir);
    snprintf(o2, sizeof o2, "%s/generate.png", outdir);
    snprintf(o3, sizeof o3, "%s/edit.png", outdir);
    snprintf(o4, sizeof o4, "%s/reconstruct.png", outdir);
    snprintf(o5, sizeof o5, "%s/reconstruct_cond.png", outdir);
    if (write_demo_image(img)) {
        fprintf(stderr, "seedx demo: %s\n", sx_errmsg());
        return 1;
    }
    printf("seedx demo: tiny random-weight SEED-X from %s (outputs are noise-like by design:\n"
           "the weights are random; the point is that every stage runs and matches PyTorch)\n\n",
           model);
    /* tiny settings: 64x64 output, 4 steps; 24 new tokens for text, 80 when the
     * answer must hold an image (64 image tokens + </img>) */
    const char *small[] = {"--size", "64x64", "--steps", "4", "-n", "24"};
    struct {
        const char *title;
        const char *argv[24];
    } runs[] = {
        {"comprehension (any-res tiles -> ViT -> resampler -> LLM)",
         {"chat", "-m", model, "--image", img, "-p", "Describe this image briefly.", "-v"}},
        {"grounding (boxes parsed and drawn)",
         {"ground", "-m", model, "--image", img, "-p", "Where is the red square?", "-o", o1, "-v"}},
        {"text-to-image (LLM image tokens -> de-tokenizer -> SDXL UNet -> VAE)",
         {"generate", "-m", model, "-p", "a red square under a blue sky", "--force-image", "-o", o2,
          "-v"}},
        {"editing (SEED-X-Edit, 8-channel UNet, 3-way guidance)",
         {"edit", "-m", model, "--image", img, "-p", "make it sunset", "--force-image", "-o", o3,
          "-v"}},
        {"reconstruction (image -> ViT -> de-tokenizer)",
         {"reconstruct", "-m", model, "--image", img, "-o", o4, "-v"}},
        {"reconstruction with a condition image",
         {"reconstruct", "-m", model, "--image", img, "--condition", img, "-o", o5, "-v"}},
    };
    int failed = 0;
    double t0 = sx_time();
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        const char *av[40];
        int ac = 0;
        for (; runs[r].argv[ac]; ac++) av[ac] = runs[r].argv[ac];
        for (int k = 0; k < 6; k++) av[ac++] = small[k];
        if (!strcmp(av[0], "generate") || !strcmp(av[0], "edit")) av[ac - 1] = "80";
        av[ac] = NULL;
        printf("== %s\n$ seedx", runs[r].title);
        for (int k = 0; k < ac; k++) printf(" %s", av[k]);
        printf("\n");
        fflush(stdout);
        double t = sx_time();
        int (*fn)(int, char **) = !strcmp(av[0], "chat")       ? sx_cmd_chat
                                  : !strcmp(av[0], "ground")   ? sx_cmd_ground
                                  : !strcmp(av[0], "generate") ? sx_cmd_generate
                                  : !strcmp(av[0], "edit")     ? sx_cmd_edit
                                                               : sx_cmd_reconstruct;
        int rc = fn(ac, (char **)av);
        printf("-> %s in %.2fs\n\n", rc == 0 ? "ok" : "FAILED", sx_time() - t);
        failed += rc != 0;
    }
    printf("demo: %d of %zu stages ok in %.1fs; outputs in %s/\n",
           (int)(sizeof runs / sizeof runs[0]) - failed, sizeof runs / sizeof runs[0],
           sx_time() - t0, outdir);
    return failed ? 1 : 0;
}
