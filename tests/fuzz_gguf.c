/* tests/fuzz_gguf.c - libFuzzer harness for the weight container.
 *
 * Each input is written to a memfd and opened by path (/proc/self/fd/N) like
 * any model file; when it opens, every tensor is converted to float32, every
 * metadata getter runs on every key, and every value is formatted as
 * `seedx inspect` lists it (sx_gguf_kv_text). Seed corpus: tests/fuzz/gguf/ (make fuzz). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "seedx.h"

static void poke_metadata(sx_gguf *g) {
    for (int64_t i = 0; i < sx_gguf_n_kv(g); i++) {
        const char *key = sx_gguf_key_at(g, i);
        int64_t v;
        double d;
        const char *s;
        size_t len;
        int et;
        uint64_t n;
        if (sx_gguf_kv_type(g, key) < 0) abort(); /* every key must be found again */
        sx_meta_int(g, key, &v);
        sx_meta_float(g, key, &d);
        if (sx_meta_str(g, key, &s, &len) == 0 && strlen(s) > len) abort();
        (void)sx_meta_int_or(g, key, 0);
        (void)sx_meta_float_or(g, key, 0);
        if (sx_meta_arr(g, key, &et, &n) == 0 && n) {
            uint64_t idx[3] = {0, n / 2, n - 1};
            for (int k = 0; k < 3; k++) {
                sx_meta_arr_int(g, key, idx[k], &v);
                sx_meta_arr_float(g, key, idx[k], &d);
                if (sx_meta_arr_str(g, key, idx[k], &s, &len) == 0 && strlen(s) > len) abort();
            }
            const uint8_t *p = sx_meta_arr_data(g, key);
            if (p) {
                volatile uint8_t x = p[0];
                (void)x;
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz.gguf", 0);
    if (fd < 0) return 0;
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) break;
        done += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    sx_gguf *g = NULL;
    if (sx_gguf_open(path, &g) == 0) {
        for (int64_t i = 0; i < sx_gguf_n_tensors(g); i++) {
            const sx_tensor *t = sx_gguf_tensor_at(g, i);
            if (sx_gguf_find(g, t->name) != t) abort(); /* names are unique and found */
            float *y = malloc((size_t)t->nelem * sizeof *y);
            if (y) {
                if (sx_tensor_to_f32(t, y) != 0) abort(); /* a validated tensor converts */
                free(y);
            }
            const float *f = sx_get_f32(g, t->name, t->ndim, t->shape);
            if (!f) abort();
        }
        poke_metadata(g);
        for (int64_t k = 0; k < sx_gguf_n_kv(g); k++) { /* walks every value's bytes */
            free(sx_gguf_kv_text(g, k, 1));
            free(sx_gguf_kv_text(g, k, 0));
        }
        sx_gguf_close(g);
    } else if (!strstr(sx_errmsg(), path)) {
        abort(); /* every failure names the file */
    }
    close(fd);
    return 0;
}
