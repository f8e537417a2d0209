/* tests/bench_llm.c - Llama-2-13B shapes (SEED-X's LLM): decode ms/token and
 * prefill tokens/s, measured on ONE decoder layer (5120 / 40 heads / FFN 13824)
 * plus the real lm_head [32330, 5120], and extrapolated to 40 layers:
 *   decode/token  = 40 x (one layer, 1 token at context 600) + lm_head GEMV
 *   prefill       = 40 x (one layer, 600 tokens in chunks of 256) + lm_head (last row)
 * Weights are random (sx_rand_uniform) in F32, F16 and BF16. The roofline is the
 * bytes one decode step must stream (weights + this layer's KV cache, x40) over
 * 27 GB/s. Compare with scripts/bench_llm_torch.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"
#include "seedx.h"

#define D   5120
#define F   13824
#define V   32330
#define NL  40
#define CTX 600
#define BW  27e9

typedef struct {
    const float *src;
    uint16_t *dst;
    int type;
} conv_job;

static void conv_task(void *ctx, int64_t b, int64_t e, int tid) {
    conv_job *j = ctx;
    (void)tid;
    for (int64_t i = b; i < e; i++)
        j->dst[i] = j->type == SX_F16 ? sx_f32_to_f16(j->src[i]) : sx_f32_to_bf16(j->src[i]);
}

static void *conv(const float *src, int64_t n, int type) {
    if (type == SX_F32) return (void *)src;
    uint16_t *h = malloc(sizeof(uint16_t) * (size_t)n);
    if (!h) return NULL;
    conv_job j = {src, h, type};
    sx_parallel_for(n, 1 << 20, conv_task, &j);
    return h;
}

int main(int argc, char **argv) {
    int ntok = CTX;
    if (argc > 1) ntok = atoi(argv[1]);
    if (sx_init(0) != 0) return 1;
    printf("llama 13B shapes, %d threads, simd %s; 1 layer measured, x%d extrapolated\n",
           sx_threads_count(), sx_simd_name(sx_simd_level()), NL);
    const int64_t shp[7][2] = {{D, D}, {D, D}, {D, D}, {D, D}, {F, D}, {F, D}, {D, F}};
    float *w32[7], *head32, *n1 = malloc(sizeof(float) * D), *n2 = malloc(sizeof(float) * D);
    int64_t layer_params = 0;
    for (int i = 0; i < 7; i++) {
        int64_t n = shp[i][0] * shp[i][1];
        layer_params += n;
        w32[i] = malloc(sizeof(float) * (size_t)n);
        if (!w32[i]) return fprintf(stderr, "out of memory\n"), 1;
        sx_rand_uniform(w32[i], n, 200 + i, -0.01f, 0.01f);
    }
    head32 = malloc(sizeof(float) * (size_t)V * D);
    if (!head32) return 1;
    sx_rand_uniform(head32, (int64_t)V * D, 300, -0.01f, 0.01f);
    sx_rand_uniform(n1, D, 301, 0.5f, 1.5f);
    sx_rand_uniform(n2, D, 302, 0.5f, 1.5f);
    float *x = malloc(sizeof(float) * (size_t)ntok * D), *lg = malloc(sizeof(float) * V);
    sx_rand_uniform(x, (int64_t)ntok * D, 303, -1.0f, 1.0f);
    const int types[3] = {SX_F32, SX_F16, SX_BF16};
    printf("%-5s %12s %12s %12s %14s %16s\n", "type", "layer ms", "lm_head ms", "decode ms/tok",
           "roofline ms", "prefill tok/s");
    for (int ti = 0; ti < 3; ti++) {
        int ty = types[ti];
        size_t es = ty == SX_F32 ? 4 : 2;
        void *w[7], *head = conv(head32, (int64_t)V * D, ty);
        for (int i = 0; i < 7; i++) w[i] = conv(w32[i], shp[i][0] * shp[i][1], ty);
        sx_llama m;
        memset(&m, 0, sizeof m);
        m.cfg = (sx_llama_config){D, 1, 40, 40, 128, F, V, 2048, 1e-5f, 10000.0f, 1, 2, 0};
        sx_llama_layer L = sx_llama_layer_wrap(&m.cfg, n1, n2, w, ty);
        m.layers = &L;
        sx_weight lm = sx_weight_typed(head, ty, V, D);
        sx_llama_ctx *c;
        if (sx_llama_ctx_new(&m, ntok + 64, SX_F32, &c) != 0)
            return fprintf(stderr, "%s\n", sx_errmsg()), 1;
        /* prefill: ntok tokens through one layer */
        double t0 = sx_time();
        if (sx_llama_forward_embeds(c, x, ntok, SX_LLAMA_LOGITS_NONE, NULL, NULL) != 0)
            return fprintf(stderr, "%s\n", sx_errmsg()), 1;
        double t_pre = sx_time() - t0;
        /* decode: one token at a time at context ntok.. */
        int steps = 8;
        t0 = sx_time();
        for (int s = 0; s < steps; s++)
            sx_llama_forward_embeds(c, x + (int64_t)s * D, 1, SX_LLAMA_LOGITS_NONE, NULL, NULL);
        double t_layer = (sx_time() - t0) / steps;
        /* lm_head GEMV */
        sx_matmul(lg, x, &lm, NULL, 1);
        t0 = sx_time();
        for (int s = 0; s < 4; s++) sx_matmul(lg, x + (int64_t)s * D, &lm, NULL, 1);
        double t_head = (sx_time() - t0) / 4;
        double dec = NL * t_layer + t_head;
        double bytes = (double)NL * ((double)layer_params * es + 2.0 * (ntok + 4) * D * 4.0) +
                       (double)V * D * es;
        double pre_total = NL * t_pre + t_head;
        printf("%-5s %12.1f %12.1f %12.0f %14.0f %16.1f\n", sx_type_name(ty), t_layer * 1e3,
               t_head * 1e3, dec * 1e3, bytes / BW * 1e3, ntok / pre_total);
        fflush(stdout);
        sx_llama_ctx_free(c);
        if (ty != SX_F32) {
            for (int i = 0; i < 7; i++) free(w[i]);
            free(head);
        }
    }
    printf(
        "(prefill: %d tokens, one layer %s; roofline = 40 x (layer weights + KV %d pos) + lm_head "
        "bytes / 27 GB/s)\n",
        ntok, "x40", ntok);
    for (int i = 0; i < 7; i++) free(w32[i]);
    free(head32), free(n1), free(n2), free(x), free(lg);
    return 0;
}
