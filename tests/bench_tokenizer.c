/* tests/bench_tokenizer.c - encode/decode speed on ~1 MB of mixed text
 * (English, CJK, emoji, code, SEED-X image-token prompts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "seedx.h"
#include "tokenizer.h"

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "tests/fixtures/tokenizer/seedx_tokenizer.gguf";
    sx_tokenizer *tok;
    if (sx_tokenizer_open(path, &tok)) {
        fprintf(stderr, "bench_tokenizer: %s\n", sx_errmsg());
        return 1;
    }
    static const char *parts[] = {
        "The quick brown fox jumps over the lazy dog. ",
        "In the background of the image there is a red car parked near a house.\n",
        "[INST] <img><img_00000><img_00001><img_00002><img_00003></img>Describe this image. [/INST]\n",
        "<box_start><loc-12><loc-40><loc-100><loc-200><box_end> ",
        "日本語のテキストと中文文本，还有한국어. ",
        "emoji \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 and \xf0\x9f\x99\x82 ",
        "int main(void) {\n\tfor (int i = 0; i < 10; i++) printf(\"%d\\n\", i);\n}\n",
        "    indented    text   with\truns  of   spaces    ",
        "supercalifragilisticexpialidocious ",
    };
    const size_t target = 1 << 20;
    char *text = malloc(target + 256);
    size_t n = 0;
    for (unsigned k = 0; n < target; k = k * 1103515245u + 12345u) {
        const char *p = parts[(k >> 16) % (sizeof parts / sizeof parts[0])];
        size_t l = strlen(p);
        memcpy(text + n, p, l);
        n += l;
    }
    int *ids = NULL;
    size_t nid = 0;
    double best = 1e9, best_cpu = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        free(ids);
        clock_t c0 = clock();
        double t0 = sx_time();
        if (sx_tokenize(tok, text, n, 0, &ids, &nid)) {
            fprintf(stderr, "bench_tokenizer: %s\n", sx_errmsg());
            return 1;
        }
        double dt = sx_time() - t0, dc = (double)(clock() - c0) / CLOCKS_PER_SEC;
        if (dt < best) best = dt;
        if (dc < best_cpu) best_cpu = dc;
    }
    printf("encode: %.2f MB -> %zu ids in %.3f s = %.1f MB/s (CPU time %.3f s: %.1f MB/s)\n", n / 1e6,
           nid, best, n / 1e6 / best, best_cpu, n / 1e6 / (best_cpu > 0 ? best_cpu : 1e-9));
    /* one long run without added tokens (a single SentencePiece call) */
    size_t m = 0;
    while (m + 45 < target) {
        memcpy(text + m, parts[0], 45);
        m += 45;
    }
    free(ids);
    double t0 = sx_time();
    if (sx_tokenize(tok, text, m, 0, &ids, &nid)) return 1;
    double dt = sx_time() - t0;
    printf("encode (one %.2f MB piece, no added tokens): %zu ids in %.3f s = %.1f MB/s\n", m / 1e6, nid,
           dt, m / 1e6 / dt);
    char *out;
    size_t olen;
    t0 = sx_time();
    if (sx_detokenize(tok, ids, nid, 0, &out, &olen)) return 1;
    dt = sx_time() - t0;
    printf("decode: %zu ids in %.3f s (round trip %s)\n", nid, dt,
           olen == m && !memcmp(out, text, m) ? "exact" : "differs");
    free(out);
    free(ids);
    free(text);
    sx_tokenizer_free(tok);
    return 0;
}
