/* tokenizer.h - the SEED-X text tokenizer: transformers 4.30.2's slow
 * LlamaTokenizer (SentencePiece BPE + added tokens), token for token.
 *
 * The vocabulary, scores, piece types, added tokens and their whitespace
 * rules come from the container written by scripts/convert_tokenizer.py
 * (keys tokenizer.ggml.* and seedx.tokenizer.*); nothing is hard-coded.
 *
 *   sx_tokenizer *tok;
 *   if (sx_tokenizer_open("model_dir", &tok)) die(sx_errmsg());
 *   int *ids; size_t n;
 *   sx_tokenize(tok, prompt, strlen(prompt), 0, &ids, &n);   // add_special_tokens=False
 *   ...; free(ids);
 *   int img = sx_token_id(tok, "<img>");                      // 32100 for SEED-X
 *   sx_tokenizer_free(tok);
 */
#ifndef SEEDX_TOKENIZER_H
#define SEEDX_TOKENIZER_H

#include <stddef.h>

#include "gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sx_tokenizer sx_tokenizer;

/* path: a tokenizer container (.gguf), or a model directory holding
 * tokenizer.gguf. */
int sx_tokenizer_open(const char *path, sx_tokenizer **out);
/* From an open container (copies what it needs; g may be closed afterwards). */
int sx_tokenizer_from_gguf(const sx_gguf *g, sx_tokenizer **out);
void sx_tokenizer_free(sx_tokenizer *tok);

int sx_tokenizer_n_vocab(const sx_tokenizer *tok); /* pieces + added tokens (32330) */
int sx_tokenizer_n_base(const sx_tokenizer *tok);  /* SentencePiece pieces (32000) */
int sx_tokenizer_bos(const sx_tokenizer *tok);     /* -1 when the tokenizer has none */
int sx_tokenizer_eos(const sx_tokenizer *tok);
int sx_tokenizer_unk(const sx_tokenizer *tok);
int sx_tokenizer_pad(const sx_tokenizer *tok);

/* tokenizer.encode(text, add_special_tokens=add_special): text[0..len) is
 * UTF-8 (not NUL-terminated necessarily). add_special adds bos (and eos if
 * the tokenizer config says add_eos_token) - SEED-X scripts pass 0 and
 * prepend bos by hand, which is the same as passing 1.
 * Invalid UTF-8 is handled like SentencePiece does: every byte that does not
 * start a valid shortest-form UTF-8 sequence (no surrogates, <= U+10FFFF)
 * stands for one U+FFFD. *ids is malloc'd (caller frees; non-NULL even when
 * *n == 0). */
int sx_tokenize(const sx_tokenizer *tok, const char *text, size_t len, int add_special, int **ids,
                size_t *n);

/* tokenizer.decode(ids, skip_special_tokens=skip_special) with 4.30.2's
 * defaults (spaces_between_special_tokens=True, clean_up_tokenization_spaces
 * from the tokenizer config). Any id outside [0, n_vocab) is an error.
 * *text is malloc'd and NUL-terminated; *len (optional) its length. */
int sx_detokenize(const sx_tokenizer *tok, const int *ids, size_t n, int skip_special, char **text,
                  size_t *len);
/* Overrides the config's clean_up_tokenization_spaces for sx_detokenize
 * (decode(..., clean_up_tokenization_spaces=on)). */
void sx_tokenizer_set_clean_up(sx_tokenizer *tok, int on);

/* Exact lookup of a token string (added tokens first, then pieces): its id,
 * or -1 (no error set) when there is no such token. */
int sx_token_id(const sx_tokenizer *tok, const char *s);
/* convert_ids_to_tokens(id): the piece / added-token string (not
 * NUL-terminated; *len receives its length), NULL for an id out of range. */
const char *sx_token_str(const sx_tokenizer *tok, int id, size_t *len);
/* 1 if id is one of all_special_ids (bos/eos/unk/pad/additional specials). */
int sx_token_is_special(const sx_tokenizer *tok, int id);

#ifdef __cplusplus
}
#endif
#endif
