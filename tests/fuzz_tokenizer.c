/* tests/fuzz_tokenizer.c - libFuzzer harness: arbitrary bytes as text to
 * encode (ids must stay in range and decode must succeed), and as a list of
 * ids to decode (out-of-range ids must be rejected cleanly). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "seedx.h"
#include "tokenizer.h"

static sx_tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok && sx_tokenizer_open("tests/fixtures/tokenizer/seedx_tokenizer.gguf", &tok)) abort();
    if (size == 0) return 0;
    int mode = data[0] & 3;
    data++;
    size--;
    if (mode < 2) {
        int *ids;
        size_t n;
        if (sx_tokenize(tok, (const char *)data, size, mode, &ids, &n)) abort();
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= sx_tokenizer_n_vocab(tok)) abort();
        char *txt;
        if (sx_detokenize(tok, ids, n, 0, &txt, NULL)) abort();
        free(txt);
        free(ids);
    } else {
        size_t n = size / 2;
        int *ids = malloc((n + 1) * sizeof *ids);
        int ok = 1;
        for (size_t i = 0; i < n; i++) {
            ids[i] = (int)(data[2 * i] | data[2 * i + 1] << 8) - 1000; /* some out of range */
            ok &= ids[i] >= 0 && ids[i] < sx_tokenizer_n_vocab(tok);
        }
        char *txt = NULL;
        int rc = sx_detokenize(tok, ids, n, mode == 3, &txt, NULL);
        if ((rc == 0) != ok) abort();
        free(txt);
        free(ids);
    }
    return 0;
}
