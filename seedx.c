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
    sx_str b = {0};
    for (int i = 0; i < n_images; i++) {
        int global = i == n_images - 1;
        sx_str_adds(&b, global ? "<img>" : "<patch>");
        for (int k = 0; k < tokens_per_image; k++) sx_str_addf(&b, "<img_%05d>", k);
        sx_str_adds(&b, global ? "</img>" : "</patch>");
    }
    if (b.oom) sx_str_free(&b);
    return b.s;
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
    char *dir;
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
    unsigned checked;   /* model_files[i] already found to hold its component: bit i */
    int64_t max_pos;    /* the LLM's context (max_position_embeddings), 0 until read */
};

/* The files of a model directory and the component each must hold, known by
 * the prefix of the metadata keys its converter writes (scripts/convert_*.py);
 * in_channels: the UNet's input channels (4, or 8 for the stage-2 UNet). */
static const struct {
    const char *file, *prefix, *what;
    int in_channels;
} model_files[] = {
    {"tokenizer.gguf", "seedx.tokenizer.", "a tokenizer", 0},
    {"vit.gguf", "seedx.vit.", "a ViT", 0},
    {"agent.gguf", "seedx.agent.", "the agent (resamplers)", 0},
    {"llm.gguf", "seedx.llm.", "an LLM", 0},
    {"detokenizer.gguf", "seedx.detok.", "a de-tokenizer", 0},
    {"detokenizer_edit.gguf", "seedx.detok.", "a de-tokenizer", 0},
    {"unet.gguf", "seedx.unet.", "a UNet", 4},
    {"unet_edit.gguf", "seedx.unet.", "a UNet", 8},
    {"vae.gguf", "seedx.vae.", "a VAE", 0},
};
#define N_MODEL_FILES (int)(sizeof model_files / sizeof model_files[0])

/* What a container holds, from its first seedx.<component>.* key. */
static const char *component_of(const sx_gguf *g) {
    static const struct { const char *prefix, *what; } kinds[] = {
        {"seedx.tokenizer.", "a tokenizer"}, {"seedx.vit.", "a ViT"},
        {"seedx.agent.", "the agent (resamplers)"}, {"seedx.llm.", "an LLM"},
        {"seedx.detok.", "a de-tokenizer"}, {"seedx.unet.", "a UNet"},
        {"seedx.scheduler.", "a UNet"}, {"seedx.vae.", "a VAE"},
    };
    for (int64_t i = 0; i < sx_gguf_n_kv(g); i++)
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            if (!strncmp(sx_gguf_key_at(g, i), kinds[k].prefix, strlen(kinds[k].prefix)))
                return kinds[k].what;
    return NULL;
}

/* Checks that dir/file exists and holds the component model_files says,
 * once per file and model: "unet.gguf is a VAE, expected a UNet". */
static int check_file(sx_seedx *m, const char *file, const char *path) {
    int i = 0;
    while (i < N_MODEL_FILES && strcmp(model_files[i].file, file)) i++;
    struct stat st;
    if (stat(path, &st) != 0)
        return sx_err("%s: missing model file %s (convert it with scripts/convert.py)", m->dir, file);
    if (i == N_MODEL_FILES || (m->checked >> i & 1)) return 0;
    sx_gguf *g;
    if (sx_gguf_open(path, &g)) return -1;
    const char *is = component_of(g);
    int rc = 0;
    if (!is)
        rc = sx_err("%s: %s has no seedx.* metadata: not written by scripts/convert.py, expected %s",
                    m->dir, file, model_files[i].what);
    else if (strcmp(is, model_files[i].what))
        rc = sx_err("%s: %s is %s, expected %s (metadata %s*)", m->dir, file, is,
                    model_files[i].what, model_files[i].prefix);
    else if (model_files[i].in_channels) {
        int64_t c = sx_meta_int_or(g, "seedx.unet.in_channels", -1);
        if (c != model_files[i].in_channels)
            rc = sx_err("%s: %s is a %lld-channel UNet, expected the %d-channel %s UNet", m->dir,
                        file, (long long)c, model_files[i].in_channels,
                        model_files[i].in_channels == 8 ? "stage-2 (edit)" : "stage-1");
    }
    sx_gguf_close(g);
    if (rc == 0) m->checked |= 1u << i;
    return rc;
}

/* dir/file, malloc'd, after check_file; NULL with the error set. */
static char *model_file(sx_seedx *m, const char *file) {
    char *p = sx_strf("%s/%s", m->dir, file);
    if (p && check_file(m, file, p)) {
        free(p);
        return NULL;
    }
    return p;
}

/* open_<component>(m, file, &out): the component's loader on its checked
 * file (model_file). */
#define MODEL_OPENER(name, type, loader)                                                     \
    static int name(sx_seedx *m, const char *file, type **out) {                             \
        char *p = model_file(m, file);                                                       \
        int rc = p ? loader(p, out) : -1;                                                    \
        free(p);                                                                             \
        return rc;                                                                           \
    }
MODEL_OPENER(open_gguf, sx_gguf, sx_gguf_open)
MODEL_OPENER(open_vit, sx_vit, sx_vit_open)
MODEL_OPENER(open_llm, sx_llama, sx_llama_load)
MODEL_OPENER(open_unet, sx_unet, sx_unet_load)
MODEL_OPENER(open_vae, sx_vae, sx_vae_load)
#undef MODEL_OPENER

int sx_seedx_has(const sx_seedx *m, const char *file) {
    char *p = sx_strf("%s/%s", m->dir, file);
    struct stat st;
    int has = p && stat(p, &st) == 0;
    free(p);
    return has;
}

int sx_seedx_open(const char *dir, sx_seedx **out) {
    if (!dir || !out) return sx_err("sx_seedx_open: NULL argument");
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return sx_err("%s: not a model directory (see README: converting weights)", dir);
    sx_seedx *m = sx_calloc(1, sizeof *m, "model");
    if (!m) return -1;
    char *p = NULL;
    if (!(m->dir = sx_strf("%s", dir)) || !(p = model_file(m, "tokenizer.gguf")) ||
        sx_tokenizer_open(p, &m->tok) || sx_seedx_tokens_init(m->tok, &m->tk)) {
        free(p);
        sx_seedx_free(m);
        return -1;
    }
    free(p);
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
    free(m->dir);
    free(m);
}

const sx_tokenizer *sx_seedx_tokenizer(const sx_seedx *m) { return m->tok; }
const sx_seedx_tokens *sx_seedx_special(const sx_seedx *m) { return &m->tk; }
/* Width of the image feature rows spliced into the LLM (0 before the agent
 * is loaded, i.e. before the first sx_seedx_encode_images). */
int64_t sx_seedx_feat_width(const sx_seedx *m) { return m->in_rs.embed_dim; }

static int load_agent(sx_seedx *m) {
    if (m->agent_g) return 0;
    const char *p = "agent.gguf";
    if (open_gguf(m, p, &m->agent_g)) return -1;
    int hin = (int)sx_meta_int_or(m->agent_g, "seedx.agent.input_heads", 32);
    int hout = (int)sx_meta_int_or(m->agent_g, "seedx.agent.output_heads", 32);
    float eps = (float)sx_meta_float_or(m->agent_g, "seedx.agent.eps", 1e-5);
    if (sx_resampler_load(m->agent_g, "input_resampler.", hin, eps, &m->in_rs) ||
        sx_resampler_load(m->agent_g, "output_resampler.", hout, eps, &m->out_rs)) {
        sx_err_prefix("%s/%s: ", m->dir, p);
        return -1;
    }
    snprintf(m->in_rs.name, sizeof m->in_rs.name, "input_resampler");
    snprintf(m->out_rs.name, sizeof m->out_rs.name, "output_resampler");
    if (!(m->patch_pos_embed =
              sx_get_f32(m->agent_g, "patch_pos_embed", SX_SHAPE(4, m->in_rs.embed_dim))))
        return -1;
    m->n_img_tokens = m->in_rs.n_queries;
    if (m->out_rs.n_queries != m->n_img_tokens || m->n_img_tokens > m->tk.n_img)
        return sx_err("%s/%s: resamplers have %lld / %lld queries, tokenizer %d image tokens", m->dir, p,
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
    sx_vit *vit = NULL;
    if (open_vit(m, "vit.gguf", &vit)) return -1;
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
        sx_vit *vit = NULL;
        if (open_vit(m, "vit.gguf", &vit)) return -1;
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
    sx_vit *vit = NULL;
    if (open_vit(m, "vit.gguf", &vit)) return -1;
    int64_t S = vit->c.image_size;
    float *px = sx_malloc(sizeof(float) * (size_t)(3 * S * S), "pixels");
    float *f = sx_malloc(sizeof(float) * (size_t)(vit->c.n_queries * vit->c.output_dim), "features");
    int rc = -1;
    if (px && f && S == 448 && sx_clip_preprocess_448(im, px) == 0)
        rc = sx_vit_forward(vit, px, 1, S, f);
    else if (px && f && S != 448)
        sx_err("%s/vit.gguf: the reconstruction transform is 448x448, the ViT takes %lld", m->dir,
               (long long)S);
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
    if (sx_seedx_opts_check(o) || load_agent(m)) return -1;
    sx_llama *llm = NULL;
    sx_llama_ctx *ctx = NULL;
    if (open_llm(m, "llm.gguf", &llm)) return -1;
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


/* The sampler's step callback: remembers the first step whose latents are
 * not finite, then calls the caller's progress. */
typedef struct {
    const sx_seedx_opts *o;
    int64_t n;
    int bad_step;
} step_watch;
static void watch_step(void *ud, int step, int n_steps, float t, const float *lat) {
    step_watch *w = ud;
    if (w->bad_step < 0 && lat && sx_nonfinite_at(lat, w->n) >= 0) w->bad_step = step;
    if (w->o->progress) w->o->progress(w->o->progress_user, step, n_steps, t, lat);
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
    if (sx_seedx_opts_check(o)) goto out;
    /* 1. ResamplerXLV2 -> prompt embeds [64, 2048] + pooled [1280], pos and neg */
    if (open_gguf(m, detok_file, &dg) || sx_detok_load(dg, "resampler.", &dt))
        goto out;
    int64_t Qd = dt.n_queries, W = dt.out1 + dt.out2;
    pe = sx_malloc(sizeof(float) * (size_t)(Qd * W), "prompt embeds");
    ne = sx_malloc(sizeof(float) * (size_t)(Qd * W), "negative prompt embeds");
    pp = sx_malloc(sizeof(float) * (size_t)dt.out2, "pooled");
    np_ = sx_malloc(sizeof(float) * (size_t)dt.out2, "negative pooled");
    if (!pe || !ne || !pp || !np_) goto out;
    if (sx_detok_forward(&dt, pos_feat, n_pos, pe, pp) ||
        sx_detok_forward(&dt, neg_feat, n_neg, ne, np_) ||
        sx_check_finite("de-tokenizer resampler (prompt embeds)", pe, Qd * W) ||
        sx_check_finite("de-tokenizer resampler (negative prompt embeds)", ne, Qd * W))
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
    if (open_vae(m, "vae.gguf", &vae)) goto out;
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
        if (sx_vae_encode(vae, cimg, 3, o->height, o->width, o->vae_tiling, clat, NULL) ||
            sx_check_finite("VAE encode of the condition image (latents)", clat, 4 * h * w))
            goto out;
        int64_t sl[3] = {4, h, w};
        sx_trace("image_latents", clat, 3, sl);
    }
    /* 3. sampler (Euler, or DPM-Solver++) + CFG through the UNet */
    if (open_unet(m, unet_file, &unet)) goto out;
    if (sx_sched_init(&sch, sx_unet_gguf(unet), o->steps, o->sampler, o->karras)) goto out;
    lat = sx_malloc(sizeof(float) * (size_t)(4 * h * w), "latents");
    if (!lat) goto out;
    if (o->init_latents)
        memcpy(lat, o->init_latents, sizeof(float) * (size_t)(4 * h * w));
    else if (sx_randn(lat, 4 * h * w, o->seed, o->rng))
        goto out;
    sx_cond cond = {pe, Qd, pp, {(float)o->height, (float)o->width, 0, 0, (float)o->height, (float)o->width}};
    sx_cond unc = {ne, Qd, np_, {(float)o->height, (float)o->width, 0, 0, (float)o->height, (float)o->width}};
    step_watch sw = {o, 4 * h * w, -1};
    int e = stage2 ? sx_sample_edit(unet, &sch, lat, h, w, &cond, &unc, clat, o->cfg, o->image_cfg,
                                    watch_step, &sw, NULL)
                   : sx_sample_cfg(unet, &sch, lat, h, w, &cond, &unc, o->cfg, watch_step, &sw,
                                   NULL);
    if (e) goto out;
    if (sw.bad_step >= 0 || sx_nonfinite_at(lat, 4 * h * w) >= 0) {
        sx_err("UNet sampling: the latents hold NaN or infinity from step %d of %d on (guidance "
               "%g%s; check the weights and the guidance scales)",
               sw.bad_step >= 0 ? sw.bad_step + 1 : o->steps, o->steps, o->cfg,
               stage2 ? ", image guidance given" : "");
        goto out;
    }
    int64_t sl[3] = {4, h, w};
    sx_trace("latents", lat, 3, sl);
    sx_unet_free(unet);
    unet = NULL;
    /* 4. VAE decode and diffusers' postprocess */
    img = sx_malloc(sizeof(float) * (size_t)(3 * o->width * o->height), "image");
    vae->progress = o->decode_progress;
    vae->progress_ud = o->decode_progress_user;
    if (!img || sx_vae_decode(vae, lat, 4, h, w, o->vae_tiling, img) ||
        sx_check_finite("VAE decode (pixels)", img, 3 * (int64_t)o->width * o->height) ||
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

static int count_of(const char *s, const char *what) {
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + strlen(what), what)) n++;
    return n;
}

char *sx_seedx_fill_template(const char *tmpl, const char *text, const char *const *blocks,
                             int n_blocks) {
    if (!tmpl || !text || n_blocks < 0 || (n_blocks > 0 && !blocks)) {
        sx_err("sx_seedx_fill_template: bad arguments");
        return NULL;
    }
    if (!strstr(tmpl, "{TEXT}")) {
        sx_err("prompt template must contain {TEXT}: '%s'", tmpl);
        return NULL;
    }
    int n_img = count_of(tmpl, "{IMG}");
    if (n_blocks > 0 && n_img != 1) {
        sx_err("prompt template must contain {IMG} once for %d image(s), it has %d: '%s'", n_blocks,
               n_img, tmpl);
        return NULL;
    }
    sx_str b = {0};
    sx_str_add(&b, "", 0);
    for (const char *p = tmpl; *p;) {
        if (!strncmp(p, "{IMG}", 5)) {
            for (int i = 0; i < n_blocks; i++) sx_str_adds(&b, blocks[i]);
            p += 5;
        } else if (!strncmp(p, "{TEXT}", 6)) {
            sx_str_adds(&b, text);
            p += 6;
        } else {
            sx_str_add(&b, p++, 1);
        }
    }
    if (b.oom) {
        sx_str_free(&b);
        return NULL;
    }
    return b.s;
}

/* bos + tokens of the template filled in. n_images images with tiles[i]
 * any-res images each. */
int sx_seedx_build_prompt_t(const sx_seedx *m, const char *tmpl, const char *text, const int *tiles,
                            int n_images, int **ids, int64_t *n) {
    if (!m || !tmpl || !text || !ids || !n || n_images < 0 || (n_images > 0 && !tiles))
        return sx_err("sx_seedx_build_prompt_t: bad arguments");
    char **blocks = sx_calloc((size_t)(n_images > 0 ? n_images : 1), sizeof(char *), "blocks");
    if (!blocks) return -1;
    int rc = -1;
    char *s = NULL;
    for (int i = 0; i < n_images; i++)
        if (!(blocks[i] = sx_seedx_image_block(tiles[i], m->n_img_tokens ? (int)m->n_img_tokens : 64)))
            goto out;
    if (!(s = sx_seedx_fill_template(tmpl, text, (const char *const *)blocks, n_images))) goto out;
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
out:
    free(s);
    for (int i = 0; i < n_images; i++) free(blocks[i]);
    free(blocks);
    return rc;
}

int sx_seedx_build_prompt(const sx_seedx *m, const char *text, const int *tiles, int n_images,
                          int **ids, int64_t *n) {
    return sx_seedx_build_prompt_t(m, sx_seedx_template("seed-x-i"), text, tiles, n_images, ids, n);
}

/* ======================================================================
 * Checks before any work: what sx_seedx_check and friends (seedx.h) look
 * at is the request's numbers and the model files' metadata, never their
 * tensors, so a bad request is refused in milliseconds at any model size.
 * ====================================================================== */
int sx_seedx_opts_check(const sx_seedx_opts *o) {
    if (!o) return sx_err("sx_seedx_opts_check: NULL options");
    if (o->max_new_tokens < 1)
        return sx_err("max new tokens %lld: must be at least 1", (long long)o->max_new_tokens);
    if (!isfinite(o->temperature) || o->temperature < 0)
        return sx_err("temperature %g: must be a finite number >= 0 (0: greedy)", o->temperature);
    if (!isfinite(o->top_p) || o->top_p < 0 || o->top_p > 1)
        return sx_err("top-p %g: must be in [0, 1]", o->top_p);
    if (o->top_k < 0) return sx_err("top-k %d: must be >= 0 (0: off)", o->top_k);
    if (o->steps < 1 || o->steps > SX_SEEDX_MAX_STEPS)
        return sx_err("steps %d: must be in [1, %d]", o->steps, SX_SEEDX_MAX_STEPS);
    if (!isfinite(o->cfg) || o->cfg < 0 || o->cfg > SX_SEEDX_MAX_CFG)
        return sx_err("guidance scale %g: must be a finite number in [0, %g]", o->cfg,
                      SX_SEEDX_MAX_CFG);
    if (!isfinite(o->image_cfg) || o->image_cfg < 0 || o->image_cfg > SX_SEEDX_MAX_CFG)
        return sx_err("image guidance scale %g: must be a finite number in [0, %g]", o->image_cfg,
                      SX_SEEDX_MAX_CFG);
    if (o->width < 8 || o->height < 8 || o->width > SX_VAE_MAX_SIDE || o->height > SX_VAE_MAX_SIDE ||
        o->width % 8 || o->height % 8)
        return sx_err("output size %dx%d: width and height must be multiples of 8 from 8 to %d",
                      o->width, o->height, SX_VAE_MAX_SIDE);
    if (o->rng != SX_RNG_TORCH_CPU && o->rng != SX_RNG_TORCH_CUDA)
        return sx_err("unknown noise generator %d", o->rng);
    if (o->sampler != SX_SAMPLER_EULER && o->sampler != SX_SAMPLER_DPMPP_2M)
        return sx_err("unknown sampler %d", o->sampler);
    if (o->karras != SX_KARRAS_CONFIG && o->karras != SX_KARRAS_ON && o->karras != SX_KARRAS_OFF)
        return sx_err("karras setting %d: SX_KARRAS_CONFIG, _ON or _OFF", o->karras);
    int res[SX_ANYRES_MAX_GRIDS][2], nres;
    if (o->grids && sx_anyres_parse_grids(o->grids, res, &nres)) return -1;
    return 0;
}

int sx_seedx_count_tiles(const sx_image *im, const char *grids, int *n) {
    if (!im || !n || im->w <= 0 || im->h <= 0) return sx_err("sx_seedx_count_tiles: bad arguments");
    int res[SX_ANYRES_MAX_GRIDS][2], nres;
    if (sx_anyres_parse_grids(grids, res, &nres)) return -1;
    int k = sx_anyres_select(im->w, im->h, (const int(*)[2])res, nres);
    if (k < 0) return -1;
    *n = (res[k][0] / SX_ANYRES_BASE) * (res[k][1] / SX_ANYRES_BASE) + 1;
    return 0;
}

/* The LLM's context length from llm.gguf's metadata (kept). */
static int llm_context(sx_seedx *m, int64_t *max_pos) {
    if (!m->max_pos) {
        sx_gguf *g;
        if (open_gguf(m, "llm.gguf", &g)) return -1;
        int rc = sx_meta_int(g, "seedx.llm.max_position_embeddings", &m->max_pos);
        sx_gguf_close(g);
        if (rc) return -1;
        if (m->max_pos < 2) return sx_err("%s/llm.gguf: context of %lld tokens", m->dir, (long long)m->max_pos);
    }
    *max_pos = m->max_pos;
    return 0;
}

int sx_seedx_check_prompt(sx_seedx *m, const int *ids, int64_t n_ids, const int *tiles,
                          int n_images, const sx_seedx_opts *o) {
    if (!m || !ids || n_ids < 1 || n_images < 0 || (n_images && !tiles) || !o)
        return sx_err("sx_seedx_check_prompt: bad arguments");
    int64_t Q = m->n_img_tokens ? m->n_img_tokens : 64, rows = 0, ctx;
    for (int i = 0; i < n_images; i++) rows += tiles[i] * Q;
    int64_t np = sx_seedx_cmp_positions(&m->tk, ids, n_ids, NULL, 0);
    if (np != rows)
        return sx_err("the prompt has %lld image-token positions where its %d image(s) need %lld: "
                      "does the text hold <img>, </img>, <patch> or </patch> tags of its own?",
                      (long long)np, n_images, (long long)rows);
    if (llm_context(m, &ctx)) return -1;
    if (n_ids >= ctx)
        return sx_err("the prompt is %lld tokens, the LLM's context %lld: shorten the prompt",
                      (long long)n_ids, (long long)ctx);
    if (n_ids + o->max_new_tokens > ctx)
        return sx_err("the prompt is %lld tokens and up to %lld new ones are asked for: %lld, more "
                      "than the LLM's context of %lld tokens (ask for at most %lld new tokens, or "
                      "shorten the prompt)",
                      (long long)n_ids, (long long)o->max_new_tokens,
                      (long long)(n_ids + o->max_new_tokens), (long long)ctx, (long long)(ctx - n_ids));
    return 0;
}

/* Physical memory of the machine in bytes (0 if unknown). */
static uint64_t ram_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

/* UNet activations for an h x w latent, from unet.gguf's metadata: the skip
 * connections of the down path (conv_in, every resnet and downsampler), the
 * working buffers of the widest level (a transformer block: tokens, q/k/v,
 * attention output, GEGLU 8C: about 16 C per position); *scratch: the
 * attention's per-thread score blocks of 256 queries at the first attention
 * level, which the kernel layer keeps for later stages too. */
static int unet_bytes(sx_seedx *m, const char *file, int64_t h, int64_t w, double *bytes,
                      double *scratch) {
    sx_gguf *g;
    if (open_gguf(m, file, &g)) return -1;
    int et, rc = -1;
    uint64_t nb = 0;
    int64_t lpb = sx_meta_int_or(g, "seedx.unet.layers_per_block", 2), C;
    double hw = (double)h * (double)w, skips = 0, work = 0, attn_t = 0;
    if (sx_meta_arr(g, "seedx.unet.block_out_channels", &et, &nb) || nb < 1 || nb > 16) {
        sx_err_prefix("%s/%s: ", m->dir, file);
        goto out;
    }
    for (uint64_t i = 0; i < nb; i++, hw /= 4) {
        const char *type = "";
        size_t tl = 0;
        if (sx_meta_arr_int(g, "seedx.unet.block_out_channels", i, &C)) goto out;
        if (i == 0) skips += (double)C * hw; /* conv_in */
        skips += (double)(lpb + (i + 1 < nb)) * (double)C * hw;
        work = fmax(work, 16.0 * (double)C * hw);
        if (sx_meta_arr_str(g, "seedx.unet.down_block_types", i, &type, &tl) == 0 && !attn_t &&
            tl >= 9 && !strncmp(type, "CrossAttn", 9))
            attn_t = hw;
    }
    *bytes = 4 * (skips + work);
    *scratch = 4 * 2.0 * 256 * sx_threads_count() * attn_t;
    rc = 0;
out:
    sx_gguf_close(g);
    return rc;
}

/* Bytes of the de-tokenizer stage at W x H given the VAE config (see
 * sx_seedx_decode_bytes). */
static int stage_bytes(sx_seedx *m, const sx_vae_config *vc, int64_t W, int64_t H, int tiling,
                       int stage2, double *bytes) {
    int64_t f = (int64_t)1 << (vc->n_blocks - 1), h = H / f, w = W / f;
    double unet, scratch, px = (double)W * (double)H;
    if (unet_bytes(m, stage2 ? "unet_edit.gguf" : "unet.gguf", h, w, &unet, &scratch)) return -1;
    double lat = 4.0 * vc->latent_channels * (double)h * (double)w;
    double vae = (double)sx_vae_decode_bytes(vc, h, w, tiling, 0, sx_threads_count());
    /* stage 2 encodes the condition at W x H first: about a decode's peak */
    double img = 4 * 3 * px + 3 * px; /* float image + 8-bit copy */
    *bytes = scratch + fmax(unet + 4 * lat, vae + img + 2 * lat);
    if (stage2) *bytes = fmax(*bytes, scratch + vae + 4 * 3 * px + 2 * lat);
    return 0;
}

static int read_vae_config(sx_seedx *m, sx_vae_config *vc) {
    sx_gguf *g;
    if (open_gguf(m, "vae.gguf", &g)) return -1;
    int rc = sx_vae_read_config(g, vc);
    sx_gguf_close(g);
    return rc;
}

int sx_seedx_decode_bytes(sx_seedx *m, const sx_seedx_opts *o, int stage2, uint64_t *bytes) {
    if (!m || !o || !bytes) return sx_err("sx_seedx_decode_bytes: NULL argument");
    sx_vae_config vc;
    double b;
    if (read_vae_config(m, &vc) || stage_bytes(m, &vc, o->width, o->height, o->vae_tiling, stage2, &b))
        return -1;
    *bytes = b >= 1.8e19 ? UINT64_MAX : (uint64_t)b;
    return 0;
}

/* The largest multiple of 64 such that a square output of that side fits
 * in `avail` bytes (0 if none). */
static int64_t largest_square(sx_seedx *m, const sx_vae_config *vc, int tiling, int stage2,
                              double avail) {
    int64_t lo = 0, hi = SX_VAE_MAX_SIDE / 64;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        double b;
        if (stage_bytes(m, vc, mid * 64, mid * 64, tiling, stage2, &b) || b > avail) hi = mid - 1;
        else lo = mid;
    }
    return lo * 64;
}

static int check_memory(sx_seedx *m, const sx_seedx_opts *o, int stage2) {
    sx_vae_config vc;
    double need, avail = (double)ram_bytes(), gb = 1e9;
    if (read_vae_config(m, &vc) ||
        stage_bytes(m, &vc, o->width, o->height, o->vae_tiling, stage2, &need))
        return -1;
    if (avail <= 0 || need <= avail) return 0;
    int64_t s = largest_square(m, &vc, o->vae_tiling, stage2, avail);
    char *msg = sx_strf("output size %dx%d needs about %.1f GB of memory for the de-tokenizer (UNet "
                        "sampling and VAE decode), more than this machine's %.1f GB",
                        o->width, o->height, need / gb, avail / gb);
    if (!msg) return -1;
    if (o->vae_tiling)
        sx_err("%s; the largest square size that fits is %lldx%lld", msg, (long long)s, (long long)s);
    else {
        int64_t st = largest_square(m, &vc, 1, stage2, avail);
        sx_err("%s; the largest square size that fits is %lldx%lld, %lldx%lld with tiled VAE "
               "decoding (--vae-tiling)",
               msg, (long long)s, (long long)s, (long long)st, (long long)st);
    }
    free(msg);
    return -1;
}

int sx_seedx_check(sx_seedx *m, unsigned stages, const sx_seedx_opts *o) {
    if (!m || !o) return sx_err("sx_seedx_check: NULL argument");
    if (sx_seedx_opts_check(o)) return -1;
    const char *files[8];
    int n = 0;
    if (stages & (SX_SEEDX_VISION | SX_SEEDX_LLM)) files[n++] = "agent.gguf";
    if (stages & (SX_SEEDX_VISION | SX_SEEDX_DECODE | SX_SEEDX_DECODE_EDIT)) files[n++] = "vit.gguf";
    if (stages & SX_SEEDX_LLM) files[n++] = "llm.gguf";
    if (stages & SX_SEEDX_DECODE) files[n++] = "detokenizer.gguf", files[n++] = "unet.gguf";
    if (stages & SX_SEEDX_DECODE_EDIT)
        files[n++] = "detokenizer_edit.gguf", files[n++] = "unet_edit.gguf";
    if (stages & (SX_SEEDX_DECODE | SX_SEEDX_DECODE_EDIT)) files[n++] = "vae.gguf";
    for (int i = 0; i < n; i++) {
        char *p = model_file(m, files[i]);
        if (!p) return -1;
        free(p);
    }
    int64_t ctx;
    if ((stages & SX_SEEDX_LLM) && llm_context(m, &ctx)) return -1;
    if ((stages & SX_SEEDX_LLM) && o->max_new_tokens >= ctx)
        return sx_err("%lld new tokens: the LLM's context is %lld tokens, prompt included",
                      (long long)o->max_new_tokens, (long long)ctx);
    for (int stage2 = 0; stage2 < 2; stage2++) {
        if (!(stages & (stage2 ? SX_SEEDX_DECODE_EDIT : SX_SEEDX_DECODE))) continue;
        sx_gguf *g;
        const char *unet = stage2 ? "unet_edit.gguf" : "unet.gguf";
        if (open_gguf(m, unet, &g)) return -1;
        int64_t N = sx_meta_int_or(g, "seedx.scheduler.num_train_timesteps", 1000);
        sx_gguf_close(g);
        if (o->steps > N)
            return sx_err("%d steps: the scheduler of %s/%s has %lld training timesteps, at most "
                          "that many steps",
                          o->steps, m->dir, unet, (long long)N);
        if (stage2 && open_gguf(m, "vae.gguf", &g) == 0) {
            int enc = sx_gguf_find(g, "encoder.conv_in.weight") != NULL;
            sx_gguf_close(g);
            if (!enc) return sx_err("%s/vae.gguf has no encoder: the condition image cannot be encoded", m->dir);
        } else if (stage2) {
            return -1;
        }
        if (check_memory(m, o, stage2)) return -1;
    }
    return 0;
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
