/* seedx.c - SEED-X itself: the glue the official inference code puts around
 * the components (SEED-X src/models/mllm/seed_x.py, generation.py and the
 * src/inference scripts), the top floor of the library (seedx.h).
 *
 * It starts with the library's entry point (sx_init), then the agent's
 * token-level logic, which depends only on the tokenizer: the special-token
 * ids, the image-token block of a prompt, the positions whose embeddings are
 * replaced by image features, the tile position embedding, SEED-X's
 * image-token logits processor, and the parsing of generated text (tags,
 * boxes). The second part runs the model: images -> features -> LLM turn ->
 * de-tokenizer -> pixels. The command line lives in cli.c. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seedx.h"
#include "tokenizer.h"

/* ---- the library's entry point ------------------------------------------ */
int sx_init(int threads) {
    if (sx_simd_init() != 0) return -1;
    sx_threads_on_exit(sx_ops_thread_cleanup);
    return sx_threads_init(threads);
}

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
    if (!(m->patch_pos_embed =
              sx_get_f32(m->agent_g, "patch_pos_embed", SX_SHAPE(4, m->in_rs.embed_dim))))
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

/* The text ids of a reply: generated ids minus each image's span of Q
 * image-query tokens before its </img>, and minus <img> (as the official
 * generate() masks them before decoding). Returns the count written to keep. */
static int64_t text_ids(const sx_seedx *m, const int32_t *gen, int64_t n, int64_t Q, int *keep) {
    int64_t nk = 0;
    for (int64_t j = 0; j < n; j++) {
        int in_span = 0;
        for (int64_t e2 = j + 1; e2 <= j + Q && e2 < n; e2++)
            if (gen[e2] == m->tk.img_close && e2 >= Q && j >= e2 - Q) in_span = 1;
        if (!in_span && gen[j] != m->tk.img_open) keep[nk++] = gen[j];
    }
    return nk;
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
    int64_t nk = text_ids(m, gen, n, Q, keep);
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
 * Multi-turn conversations (see seedx.h): decode_llava_data's rule, each
 * piece tokenized on its own after one BOS.
 * ====================================================================== */
int sx_seedx_conv_init(sx_seedx_conv *c, const sx_seedx *m, const char *tmpl) {
    if (!c || !m) return sx_err("sx_seedx_conv_init: NULL argument");
    memset(c, 0, sizeof *c);
    if (!tmpl) tmpl = sx_seedx_template("seed-x-i");
    if (!strstr(tmpl, "{TEXT}")) return sx_err("conversation template must contain {TEXT}: '%s'", tmpl);
    c->tmpl = strdup(tmpl);
    c->ids = sx_malloc(sizeof(int) * 256, "conversation ids");
    if (!c->tmpl || !c->ids) {
        sx_seedx_conv_free(c);
        return sx_err("out of memory starting a conversation");
    }
    c->cap = 256;
    c->ids[c->n++] = m->tk.bos;
    return 0;
}

void sx_seedx_conv_free(sx_seedx_conv *c) {
    if (!c) return;
    free(c->ids);
    free(c->feats);
    free(c->tmpl);
    memset(c, 0, sizeof *c);
}

/* Appends ids[1..n) (the piece without the BOS the builder put first). */
static int conv_append(sx_seedx_conv *c, const int *ids, int64_t n) {
    if (c->n + n > c->cap) {
        int64_t cap = c->cap;
        while (cap < c->n + n) cap *= 2;
        int *p = realloc(c->ids, sizeof(int) * (size_t)cap);
        if (!p) return sx_err("out of memory growing a conversation to %lld ids", (long long)cap);
        c->ids = p;
        c->cap = cap;
    }
    memcpy(c->ids + c->n, ids + 1, sizeof(int) * (size_t)(n - 1));
    c->n += n - 1;
    return 0;
}

int sx_seedx_conv_user(sx_seedx_conv *c, const sx_seedx *m, const char *text, const int *tiles,
                       int n_images, const float *feats, int64_t rows) {
    if (!c || !c->ids || !m || !text || n_images < 0 || (n_images && (!tiles || !feats)) || rows < 0)
        return sx_err("sx_seedx_conv_user: bad arguments");
    if (n_images && !strstr(c->tmpl, "{IMG}"))
        return sx_err("conversation template '%s' has no {IMG} for the attached image(s)", c->tmpl);
    sx_seedx_conv_mark mk = sx_seedx_conv_save(c);
    /* later turns: turn_sep + template, tokenized as one piece */
    const char *t = c->tmpl;
    char *sep = NULL;
    if (c->user_turns > 0) {
        size_t L = strlen(c->tmpl);
        if (!(sep = sx_malloc(L + 2, "turn template"))) return -1;
        sep[0] = '\n';
        memcpy(sep + 1, c->tmpl, L + 1);
        t = sep;
    }
    int *ids = NULL;
    int64_t n = 0;
    int rc = sx_seedx_build_prompt_t(m, t, text, tiles, n_images, &ids, &n);
    free(sep);
    if (rc == 0) rc = conv_append(c, ids, n);
    free(ids);
    if (rc == 0 && rows > 0) {
        /* the feature width is known once the agent has encoded an image */
        if (!c->D) c->D = sx_seedx_feat_width(m);
        if (c->D <= 0) rc = sx_err("conversation: image features given before any image was encoded");
        if (rc == 0 && c->feat_rows + rows > c->feat_cap) {
            int64_t cap = c->feat_cap ? c->feat_cap : rows;
            while (cap < c->feat_rows + rows) cap *= 2;
            float *p = realloc(c->feats, sizeof(float) * (size_t)(cap * c->D));
            if (!p) rc = sx_err("out of memory keeping %lld image feature rows", (long long)cap);
            else c->feats = p, c->feat_cap = cap;
        }
        if (rc == 0) {
            memcpy(c->feats + c->feat_rows * c->D, feats, sizeof(float) * (size_t)(rows * c->D));
            c->feat_rows += rows;
        }
    }
    if (rc) {
        sx_seedx_conv_rewind(c, mk);
        return -1;
    }
    c->user_turns++;
    c->images += n_images;
    return 0;
}

int sx_seedx_conv_assistant(sx_seedx_conv *c, const sx_seedx *m, const char *text) {
    if (!c || !c->ids || !m || !text) return sx_err("sx_seedx_conv_assistant: bad arguments");
    int *t = NULL;
    size_t nt = 0;
    if (sx_tokenize(m->tok, text, strlen(text), 0, &t, &nt)) return -1;
    /* conv_append skips one leading id: keep the piece whole */
    int *ids = sx_malloc(sizeof(int) * (nt + 1), "answer ids");
    int rc = -1;
    if (ids) {
        /* image/patch brackets in an answer would open comprehension slots
         * that no image fills: an answer carries text only */
        int64_t w = 1;
        const sx_seedx_tokens *k = &m->tk;
        for (size_t i = 0; i < nt; i++)
            if (t[i] != k->img_open && t[i] != k->img_close && t[i] != k->patch_open &&
                t[i] != k->patch_close)
                ids[w++] = t[i];
        ids[0] = m->tk.bos;
        rc = conv_append(c, ids, w);
    }
    free(ids);
    free(t);
    return rc;
}

char *sx_seedx_reply_turn_text(const sx_seedx *m, const sx_seedx_reply *r) {
    if (!m || !r || (r->n_ids && !r->ids)) return sx_err("sx_seedx_reply_turn_text: bad arguments"), NULL;
    int *keep = sx_malloc(sizeof(int) * (size_t)(r->n_ids ? r->n_ids : 1), "answer ids");
    if (!keep) return NULL;
    int64_t nk = text_ids(m, r->ids, r->n_ids, m->n_img_tokens, keep);
    if (nk > 0 && keep[nk - 1] == m->tk.eos) nk--; /* no EOS between turns */
    /* a generated image is not carried into the history: its </img> (and any
     * stray image/patch bracket) would open or close a comprehension slot in
     * the next prompt, with no features to fill it */
    int64_t w = 0;
    for (int64_t i = 0; i < nk; i++)
        if (keep[i] != m->tk.img_close && keep[i] != m->tk.patch_open && keep[i] != m->tk.patch_close)
            keep[w++] = keep[i];
    nk = w;
    char *text = NULL;
    if (sx_detokenize(m->tok, keep, (size_t)nk, 0, &text, NULL)) text = NULL;
    free(keep);
    return text;
}

int sx_seedx_conv_reply(sx_seedx_conv *c, const sx_seedx *m, const sx_seedx_reply *r) {
    if (!c) return sx_err("sx_seedx_conv_reply: bad arguments");
    char *text = sx_seedx_reply_turn_text(m, r);
    int rc = text ? sx_seedx_conv_assistant(c, m, text) : -1;
    free(text);
    return rc;
}

sx_seedx_conv_mark sx_seedx_conv_save(const sx_seedx_conv *c) {
    sx_seedx_conv_mark mk = {c->n, c->feat_rows, c->user_turns, c->images};
    return mk;
}

void sx_seedx_conv_rewind(sx_seedx_conv *c, sx_seedx_conv_mark mk) {
    if (mk.n <= c->n) c->n = mk.n;
    if (mk.feat_rows <= c->feat_rows) c->feat_rows = mk.feat_rows;
    c->user_turns = mk.user_turns;
    c->images = mk.images;
}
