/* seedx.h - public API of seedx.c, a plain-C implementation of SEED-X
 * (arXiv 2404.14396).
 *
 * Conventions used by every function in the library:
 *   - functions that can fail return int: 0 on success, -1 on failure; on
 *     failure a message saying what and where went wrong is stored per
 *     thread and read with sx_errmsg().
 *   - tensors are float32, row-major, shapes given in PyTorch order.
 *   - all sizes come from the weight container's metadata; nothing about a
 *     model's width or depth is hard-coded.
 *   - the library never writes to stdout; it writes the files it is asked
 *     to (images, .npy, traces). Progress and tokens reach the caller
 *     through callbacks (sx_seedx_opts).
 *
 * This header is the umbrella: the SEED-X pipeline below, and every layer
 * under it by including its header. Floors, each using only those below it:
 *   core        sx_core.h (errors, threads, tracing, .npy, clocks), half.h
 *   container   gguf.h           kernels   ops.h
 *   components  tokenizer.h image_io.h vit.h llama.h detokenizer.h unet.h
 *               sampler.h vae.h
 *   pipeline    seedx.h (this file)
 * A program calls sx_init once, then opens models and runs them. */
#ifndef SEEDX_H
#define SEEDX_H

#include <stddef.h>
#include <stdint.h>

#define SEEDX_VERSION "0.1.0"

#include "sx_core.h"
#include "gguf.h"
#include "ops.h"
#include "tokenizer.h"
#include "image_io.h"
#include "vit.h"
#include "llama.h"
#include "detokenizer.h"
#include "unet.h"
#include "sampler.h"
#include "vae.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the library's entry point (seedx.c) -------------------------------
 * Picks the SIMD path of the kernel layer (SEEDX_SIMD forces one), then
 * creates the thread pool (threads <= 0: SEEDX_THREADS, else the online CPU
 * count). Call it once before anything else; sx_threads_init may resize
 * the pool later. */
int sx_init(int threads);

/* ---- SEED-X agent logic (seedx.c) ------------------------------------- */
#define SX_SEEDX_MAX_IMG_TOKENS 100
#define SX_SEEDX_MAX_LOC_TOKENS 224

/* The special token ids SEED-X uses, looked up by name in the tokenizer. */
typedef struct sx_seedx_tokens {
    int bos, eos;
    int img_open, img_close, patch_open, patch_close; /* <img> </img> <patch> </patch> */
    int box_start, box_end;
    int img[SX_SEEDX_MAX_IMG_TOKENS], n_img; /* <img_00000> ... */
    int loc[SX_SEEDX_MAX_LOC_TOKENS], n_loc; /* <loc-0> ... */
} sx_seedx_tokens;
int sx_seedx_tokens_init(const sx_tokenizer *tok, sx_seedx_tokens *t);

/* The image-token string of a prompt for n_images any-res images (tiles
 * then the global thumbnail). malloc'd; NULL on error. */
char *sx_seedx_image_block(int n_images, int tokens_per_image);
/* ids_cmp_mask as positions (at most max_pos stored); returns the count. */
int64_t sx_seedx_cmp_positions(const sx_seedx_tokens *t, const int *ids, int64_t n, int64_t *pos,
                               int64_t max_pos);
/* rel_pos of a tile centred at (x, y): [x, y, 1-x, 1-y]/2 @ P[4, D]. */
void sx_seedx_patch_pos(const float *P, int64_t D, float x, float y, float *out);
/* SEED-X's AutoImageTokenGenerationProcessor on one row of scores. */
void sx_seedx_image_token_rule(const sx_seedx_tokens *t, int n_gen_tokens, int last_id,
                               float *scores, int64_t n_vocab);
/* re.sub('<[^>]*>', '', text); malloc'd. */
char *sx_seedx_strip_tags(const char *text);
/* extract_box of the official scripts; returns the number of boxes. */
int sx_seedx_extract_boxes(const char *text, int (*boxes)[4], int *counts, int max_boxes);
/* extract_box of the base model's detection script ('(.*?)<box_end>'). */
int sx_seedx_extract_boxes_open(const char *text, int (*boxes)[4], int *counts, int max_boxes);
/* A box (x_center, y_center, w, h on the 224 grid) as pixel corners. */
void sx_seedx_box_rect(const int box[4], int W, int H, int rect[4]);

/* ---- the SEED-X model (seedx.c) ----------------------------------------
 * A model directory holds the containers written by scripts/convert.py:
 * tokenizer.gguf vit.gguf agent.gguf llm.gguf detokenizer.gguf unet.gguf
 * vae.gguf (+ detokenizer_edit.gguf unet_edit.gguf for editing and
 * conditioned reconstruction). Components are opened when a stage needs
 * them and released after it. */
typedef struct sx_seedx sx_seedx;
typedef int (*sx_seedx_token_fn)(void *user, int32_t id); /* nonzero -> stop */
typedef void (*sx_seedx_progress_fn)(void *ud, int step, int n_steps, float t, const float *latents);

typedef struct sx_seedx_opts {
    int64_t max_new_tokens;   /* 512 (comprehension scripts); 120 in the T2I scripts */
    float temperature;        /* 0: greedy (official) */
    float top_p;
    int top_k;
    uint64_t seed;            /* sampling and initial noise */
    int rng;                  /* SX_RNG_TORCH_CPU / SX_RNG_TORCH_CUDA (sampler.h) */
    int steps;                /* sampler steps (50) */
    int sampler;              /* SX_SAMPLER_EULER (official) / SX_SAMPLER_DPMPP_2M (sampler.h) */
    int karras;               /* SX_KARRAS_CONFIG (the UNet container's) / _ON / _OFF */
    float cfg, image_cfg;     /* guidance 7.5, image guidance 1.5 (edit) */
    int width, height;        /* output size (1024x1024) */
    int vae_tiling;
    const char *grids;        /* any-res candidates, NULL = the official 8 */
    const float *init_latents; /* optional [4, h/8, w/8] noise (tests) */
    sx_seedx_token_fn on_token;
    void *on_token_user;
    sx_seedx_progress_fn progress;
    void *progress_user;
    void (*prefill_progress)(void *ud, int64_t done, int64_t total); /* LLM prompt pass */
    void *prefill_progress_user;
    void (*decode_progress)(void *ud, int64_t done, int64_t total); /* VAE decode */
    void *decode_progress_user;
} sx_seedx_opts;
void sx_seedx_opts_default(sx_seedx_opts *o);

/* ---- checks before any work (seedx.c) -----------------------------------
 * What a front-end calls after parsing a request and before the first
 * expensive stage, so that a bad request costs nothing:
 *
 * sx_seedx_opts_check: the numbers alone. max_new_tokens >= 1; temperature
 *   finite >= 0; top_p in [0, 1]; top_k >= 0; steps in [1, SX_SEEDX_MAX_STEPS];
 *   cfg and image_cfg finite in [0, SX_SEEDX_MAX_CFG]; width and height
 *   multiples of 8 in [8, SX_VAE_MAX_SIDE]; rng, sampler and karras known;
 *   grids parse. */
#define SX_SEEDX_MAX_STEPS 1000
#define SX_SEEDX_MAX_CFG 100.0f
int sx_seedx_opts_check(const sx_seedx_opts *o);
/* The stages a run goes through (or-ed), for sx_seedx_check. */
enum {
    SX_SEEDX_VISION = 1,      /* images -> features: vit.gguf, agent.gguf */
    SX_SEEDX_LLM = 2,         /* an LLM turn: agent.gguf, llm.gguf */
    SX_SEEDX_DECODE = 4,      /* features -> pixels, stage 1: vit.gguf (the negative),
                                 detokenizer.gguf, unet.gguf, vae.gguf */
    SX_SEEDX_DECODE_EDIT = 8, /* stage 2 (edit, reconstruction with a condition):
                                 detokenizer_edit.gguf, unet_edit.gguf, vae.gguf with its encoder */
};
/* sx_seedx_opts_check, then for the stages given: each file present and of
 * the right component (its metadata says what it is: "unet.gguf is a VAE,
 * expected a UNet"); steps within the scheduler's num_train_timesteps;
 * max_new_tokens within the LLM's context; and the output size within
 * memory: sx_seedx_decode_bytes against the machine's RAM, refused with the
 * amount needed and the largest square size that fits. Reads metadata only. */
int sx_seedx_check(sx_seedx *m, unsigned stages, const sx_seedx_opts *o);
/* Estimated peak bytes of the de-tokenizer stage at o->width x o->height
 * (stage2: the 8-channel UNet and the condition's VAE encode): the larger of
 * the UNet sampling (skip connections, working buffers, attention scores)
 * and the VAE decode (sx_vae_decode_bytes, tiled when o->vae_tiling) with the
 * image buffers; weights (memory-mapped) not included. */
int sx_seedx_decode_bytes(sx_seedx *m, const sx_seedx_opts *o, int stage2, uint64_t *bytes);
/* How many any-res images (tiles + thumbnail) sx_seedx_encode_images will
 * make of im with these grids, without making them. */
int sx_seedx_count_tiles(const sx_image *im, const char *grids, int *n);
/* A built prompt, before the ViT runs: its image-token positions match the
 * images (tiles[i] any-res images each; text holding <img>/<patch> tags of its
 * own does not), and n_ids + o->max_new_tokens fit the LLM's context. */
int sx_seedx_check_prompt(sx_seedx *m, const int *ids, int64_t n_ids, const int *tiles,
                          int n_images, const sx_seedx_opts *o);

typedef struct sx_seedx_reply {
    int32_t *ids;            /* generated ids */
    int64_t n_ids;
    char *text;              /* decode of the text ids (tags kept, as the scripts get it) */
    char *clean;             /* tags removed (re.sub('<[^>]*>', '', text)) */
    int n_images;            /* images the model generated */
    float *img_gen_feat;     /* [n_images, 64, 4096] output-resampler features */
    int64_t feat_tokens, feat_dim; /* 64, 4096 */
    int n_boxes;
    int (*boxes)[4];         /* <box_start><loc-a>..<loc-d><box_end> values */
    int *box_counts;
} sx_seedx_reply;
void sx_seedx_reply_free(sx_seedx_reply *r);

int sx_seedx_open(const char *dir, sx_seedx **out);
void sx_seedx_free(sx_seedx *m);
int sx_seedx_has(const sx_seedx *m, const char *file);
const sx_tokenizer *sx_seedx_tokenizer(const sx_seedx *m);
const sx_seedx_tokens *sx_seedx_special(const sx_seedx *m);
int64_t sx_seedx_feat_width(const sx_seedx *m);
/* Images -> LLM-width features in prompt order [rows, D] (malloc'd);
 * tiles_per_image[i] receives the any-res image count of image i. */
int sx_seedx_encode_images(sx_seedx *m, const sx_image *images, int n_images, const char *grids,
                           float **feats, int64_t *n_rows, int *tiles_per_image);
/* bos + '[INST] {image blocks}{text} [/INST]\n' */
int sx_seedx_build_prompt(const sx_seedx *m, const char *text, const int *tiles, int n_images,
                          int **ids, int64_t *n);
/* The official templates by name: "seed-x-i" (also -edit), "seed-x" (base
 * model question), "seed-x-detect", "seed-x-t2i"; NULL if unknown. */
const char *sx_seedx_template(const char *name);
/* The template with each {TEXT} replaced by text and its {IMG} by the image
 * blocks one after the other (malloc'd, sized from its inputs). {TEXT} must
 * appear; with n_blocks > 0, {IMG} exactly once. NULL with the error set. */
char *sx_seedx_fill_template(const char *tmpl, const char *text, const char *const *blocks,
                             int n_blocks);
/* bos + template with {IMG} (all image blocks) and {TEXT} filled in. */
int sx_seedx_build_prompt_t(const sx_seedx *m, const char *tmpl, const char *text, const int *tiles,
                            int n_images, int **ids, int64_t *n);
/* ---- multi-turn conversations ------------------------------------------
 * Prompt ids built the way SEED-X-I was fine-tuned on conversations
 * (decode_llava_data in the official src/data/sft_clm.py, the only official
 * code that formats more than one turn): each piece is tokenized on its own,
 * without special tokens, and the ids are concatenated after one BOS:
 *   first user turn   tmpl with {IMG} = its images' blocks, {TEXT} = question
 *   assistant turn    the answer text (no EOS between turns)
 *   later user turns  "\n" + tmpl (turn_sep + instruction_prompt)
 * with tmpl = "[INST] {IMG}{TEXT} [/INST]\n" for SEED-X-I / -Edit. Images go
 * first in their turn, as the official eval scripts place them (the training
 * code puts them first or last at random). The official code has no
 * reference for images attached to later turns, nor for multi-turn with the
 * base model's template ("Question: {IMG}{TEXT}\nAnswer:"): both follow the
 * same per-piece rule here. The conversation keeps its images' LLM-width
 * features in prompt order, so sx_seedx_generate(m, c->ids, c->n, c->feats,
 * c->feat_rows, ...) runs the next turn. */
typedef struct sx_seedx_conv {
    int *ids;           /* BOS + every piece so far */
    int64_t n, cap;
    float *feats;       /* [feat_rows, D] features of every image so far */
    int64_t feat_rows, feat_cap, D; /* D: the LLM width, set by the first image */
    int user_turns, images;
    char *tmpl;         /* the per-turn template */
} sx_seedx_conv;
/* tmpl: NULL or a template with {TEXT} (and {IMG} if images will come). */
int sx_seedx_conv_init(sx_seedx_conv *c, const sx_seedx *m, const char *tmpl);
void sx_seedx_conv_free(sx_seedx_conv *c);
/* A user turn: n_images images already encoded with sx_seedx_encode_images
 * (any-res counts tiles[i], features feats[rows, D], copied) and the text. */
int sx_seedx_conv_user(sx_seedx_conv *c, const sx_seedx *m, const char *text, const int *tiles,
                       int n_images, const float *feats, int64_t rows);
/* An assistant turn from its text (e.g. a client's history), or from the
 * reply sx_seedx_generate gave (its text ids without image spans and
 * without a final EOS, decoded, then tokenized as a piece). A generated
 * image does not enter the history: image/patch brackets are dropped from
 * an answer's ids (they would open comprehension slots no image fills). */
int sx_seedx_conv_assistant(sx_seedx_conv *c, const sx_seedx *m, const char *text);
int sx_seedx_conv_reply(sx_seedx_conv *c, const sx_seedx *m, const sx_seedx_reply *r);
/* That text of a reply: what sx_seedx_conv_reply adds, and what a client
 * holding the history (a server's caller) sends back as the assistant turn.
 * Tags kept; malloc'd, NULL on error. */
char *sx_seedx_reply_turn_text(const sx_seedx *m, const sx_seedx_reply *r);
/* Rewinding: a failed turn leaves the conversation as it was before it. */
typedef struct sx_seedx_conv_mark {
    int64_t n, feat_rows;
    int user_turns, images;
} sx_seedx_conv_mark;
sx_seedx_conv_mark sx_seedx_conv_save(const sx_seedx_conv *c);
void sx_seedx_conv_rewind(sx_seedx_conv *c, sx_seedx_conv_mark mk);

/* One LLM turn on prompt ids with image features spliced in. */
int sx_seedx_generate(sx_seedx *m, const int *prompt_ids, int64_t P, const float *feats,
                      int64_t n_feat_rows, const sx_seedx_opts *o, sx_seedx_reply *r);
/* De-tokenizer: positive/negative ViT-space features -> RGB image.
 * stage2: the 8-channel UNet with the condition image's latent. */
int sx_seedx_detokenize(sx_seedx *m, const float *pos_feat, int64_t n_pos, const float *neg_feat,
                        int64_t n_neg, int stage2, const sx_image *condition,
                        const sx_seedx_opts *o, sx_image *out);
/* img_gen_feat [64, 4096] of a generated image -> RGB (negative: pooled zero image). */
int sx_seedx_decode_generated(sx_seedx *m, const float *img_gen_feat, int stage2,
                              const sx_image *condition, const sx_seedx_opts *o, sx_image *out);
/* Reconstruction: image -> ViT -> de-tokenizer (stage 2 when condition given). */
int sx_seedx_reconstruct(sx_seedx *m, const sx_image *image, const sx_image *condition,
                         const sx_seedx_opts *o, sx_image *out);
#ifdef __cplusplus
}
#endif

#endif
