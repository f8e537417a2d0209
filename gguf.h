/* gguf.h - the weight container: GGUF version 3, read with mmap.
 *
 * Every model file and test fixture of seedx.c is one GGUF file. Tensor
 * names are the ORIGINAL checkpoint key names; shapes are presented in
 * PyTorch order (GGUF stores dims fastest-first; the reader reverses them).
 * Hyperparameters live in metadata ("seedx.vit.width", ...). */
#ifndef SEEDX_GGUF_H
#define SEEDX_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "wtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Tensor types (SX_F32, SX_Q4_0, ...), their names and sizes: wtype.h. */
#define SX_MAX_DIMS 4

typedef struct sx_tensor {
    const char *name;
    int type;
    int ndim;
    int64_t shape[SX_MAX_DIMS]; /* PyTorch order: shape[0] is the slowest */
    int64_t nelem;
    size_t nbytes;
    uint64_t offset; /* from the start of the data section */
    const void *data;
} sx_tensor;

/* Metadata value types (GGUF's ids). */
enum {
    SX_GGUF_U8 = 0, SX_GGUF_I8 = 1, SX_GGUF_U16 = 2, SX_GGUF_I16 = 3,
    SX_GGUF_U32 = 4, SX_GGUF_I32 = 5, SX_GGUF_F32 = 6, SX_GGUF_BOOL = 7,
    SX_GGUF_STRING = 8, SX_GGUF_ARRAY = 9, SX_GGUF_U64 = 10, SX_GGUF_I64 = 11,
    SX_GGUF_F64 = 12,
};

typedef struct sx_gguf sx_gguf;

/* Opens and validates a file (magic, version, counts, string lengths, tensor
 * offsets/sizes inside the file, alignment, dims > 0, overflow). On failure
 * returns -1 with an error naming the file and the field. */
int sx_gguf_open(const char *path, sx_gguf **out);
void sx_gguf_close(sx_gguf *g);
const char *sx_gguf_path(const sx_gguf *g);
uint32_t sx_gguf_version(const sx_gguf *g);
size_t sx_gguf_alignment(const sx_gguf *g);

/* --- tensors --- */
int64_t sx_gguf_n_tensors(const sx_gguf *g);
const sx_tensor *sx_gguf_tensor_at(const sx_gguf *g, int64_t i);
/* NULL when absent; sets no error. */
const sx_tensor *sx_gguf_find(const sx_gguf *g, const char *name);
/* Checked lookup: type must be in type_mask (SX_TYPE_BIT(..) | ...), the
 * tensor must have ndim dims and shape[d] == dims[d] for each d (-1: any).
 * NULL on failure with a message such as
 *   model.gguf: tensor 'blocks.0.attn.qkv.weight' has shape [4992,1664],
 *   expected [4992,1600]
 * Call sites write the expected shape with SX_SHAPE:
 *   sx_tensor_get(g, "conv1.weight", SX_ANY_FLOAT, SX_SHAPE(W, 3, P, P)) */
const sx_tensor *sx_tensor_get(const sx_gguf *g, const char *name, unsigned type_mask,
                               int ndim, const int64_t *dims);
/* As sx_tensor_get, returning the tensor converted to float32. The pointer
 * is into the mapping when the tensor is F32 (and 4-byte aligned), else a
 * converted copy owned by g (freed by sx_gguf_close). */
const float *sx_get_f32(sx_gguf *g, const char *name, int ndim, const int64_t *dims);
/* SX_SHAPE(a, b, ...) stands for the two arguments `ndim, dims` above: the
 * number of dims and the array (const int64_t[]){a, b, ...}, every dim
 * converted to int64_t whatever its type. */
#define SX_SHAPE(...)                                                                      \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]) {         \
        __VA_ARGS__                                                                        \
    }
/* t converted to another storage type (F32, F16, BF16, Q8_0, Q4_0, Q4_K;
 * rows = the last dimension, a multiple of the type's block): a copy owned
 * by g (until sx_gguf_close), with the converter's bytes; t's mapped pages
 * are released. Fails (naming the tensor) on NaN/Inf values. */
const void *sx_gguf_tensor_as(sx_gguf *g, const sx_tensor *t, int type);
/* A zeroed, 64-byte aligned buffer of `bytes` attached to tensor t under
 * slot (0 .. SX_GGUF_SLOTS-1), owned by g and freed by sx_gguf_close: the
 * kernel layer keeps a matrix's packed form there. *created (may be NULL)
 * says whether this call made it (1) or returned the existing one of the
 * same size (0). NULL on failure, with an error. */
#define SX_GGUF_SLOTS 2
void *sx_gguf_tensor_buffer(sx_gguf *g, const sx_tensor *t, int slot, size_t bytes, int *created);
/* Gives the mapped pages wholly inside tensor t back to the OS
 * (madvise(MADV_DONTNEED)): they stop counting in the resident set and are
 * read from the file again if touched later. */
void sx_gguf_tensor_release(sx_gguf *g, const sx_tensor *t);
/* Converts any tensor type to float32 into dst (t->nelem floats). */
int sx_tensor_to_f32(const sx_tensor *t, float *dst);

/* --- metadata --- */
int64_t sx_gguf_n_kv(const sx_gguf *g);
const char *sx_gguf_key_at(const sx_gguf *g, int64_t i);
int sx_gguf_kv_type(const sx_gguf *g, const char *key); /* -1 if absent */
int sx_meta_has(const sx_gguf *g, const char *key);
/* Required values: error (naming file and key) when absent or of a type
 * that cannot be converted (ints accept any integer type and bool; floats
 * accept f32/f64 and integers). */
int sx_meta_int(const sx_gguf *g, const char *key, int64_t *out);
int sx_meta_float(const sx_gguf *g, const char *key, double *out);
int sx_meta_str(const sx_gguf *g, const char *key, const char **s, size_t *len);
/* Optional values with a default. */
int64_t sx_meta_int_or(const sx_gguf *g, const char *key, int64_t def);
double sx_meta_float_or(const sx_gguf *g, const char *key, double def);
/* Arrays: element type and count; numeric elements via sx_meta_arr_int /
 * _float (index checked), strings via sx_meta_arr_str. */
int sx_meta_arr(const sx_gguf *g, const char *key, int *elem_type, uint64_t *n);
int sx_meta_arr_int(const sx_gguf *g, const char *key, uint64_t i, int64_t *out);
int sx_meta_arr_float(const sx_gguf *g, const char *key, uint64_t i, double *out);
int sx_meta_arr_str(const sx_gguf *g, const char *key, uint64_t i, const char **s,
                    size_t *len);
/* Raw pointer to a numeric array's packed elements (little-endian, GGUF
 * element type), for bulk reads such as the tokenizer's scores. */
const void *sx_meta_arr_data(const sx_gguf *g, const char *key);

/* --- for listings (`seedx inspect`) --- */
/* Metadata value i as text: numbers, "strings" (quotes, backslashes and
 * control bytes escaped), [arrays] (nested ones too). Unless all, strings
 * are cut after 120 bytes and arrays after 8 items (", ... N more").
 * malloc'd; NULL on error. */
char *sx_gguf_kv_text(const sx_gguf *g, int64_t i, int all);
/* "u8", "i32", "f32", "bool", "str", "arr", ... ("?" if unknown). */
const char *sx_gguf_kv_type_name(int type);
/* File offset of the data section; size of the file in bytes. */
uint64_t sx_gguf_data_offset(const sx_gguf *g);
size_t sx_gguf_file_size(const sx_gguf *g);

#ifdef __cplusplus
}
#endif
#endif
