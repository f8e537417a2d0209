/* tests/test_sampler.c - sampler.c against diffusers 0.25.0 / PyTorch 2.0.1
 * (tests/fixtures/unet/{io,rng}.gguf from scripts/fixtures_unet.py):
 *   - Euler scheduler timesteps / sigmas / init_noise_sigma (4 and 50 steps);
 *   - a 4-step SDXL CFG loop (tiny 4-channel UNet) and the SEED-X 3-way edit loop
 *     (tiny 8-channel UNet = overlay over the 4-channel one, with and without a
 *     condition latent): latents after
 *     every step;
 *   - --rng torch-cpu bit-exact vs torch.randn on CPU generators;
 *   - --rng torch-cuda vs GPU outputs published in PyTorch issues (printed to 4
 *     decimals) and the values documented in AUTOMATIC1111's rng_philox.py. */
#include "sampler.h"
#include "test.h"

#define FIX "tests/fixtures/unet/"

static sx_gguf *IO, *RNG;

static const float *F_(sx_gguf *g, const char *name, int64_t *n) {
    const sx_tensor *t = g ? sx_gguf_find(g, name) : NULL;
    if (!t) {
        fprintf(stderr, "  fixture tensor '%s' missing\n", name);
        return NULL;
    }
    if (n) *n = t->nelem;
    return sx_get_f32(g, name, t->ndim, t->shape);
}

static void test_open(void) {
    CHECK_OK(sx_gguf_open(FIX "io.gguf", &IO));
    CHECK_OK(sx_gguf_open(FIX "rng.gguf", &RNG));
}

static void sched_case(const sx_gguf *meta, int n, const char *tag) {
    sx_sched s;
    char nm[64];
    CHECK_OK(sx_sched_init(&s, meta, n, SX_SAMPLER_EULER, SX_KARRAS_CONFIG));
    snprintf(nm, sizeof nm, "%s.timesteps", tag);
    const float *ts = F_(IO, nm, NULL);
    snprintf(nm, sizeof nm, "%s.sigmas", tag);
    const float *sg = F_(IO, nm, NULL);
    snprintf(nm, sizeof nm, "%s.init_noise_sigma", tag);
    const float *ins = F_(IO, nm, NULL);
    if (ts && sg && ins && s.sigmas) {
        for (int i = 0; i < n; i++) CHECKF(ts[i] == s.timesteps[i], "t[%d] %g vs %g", i, s.timesteps[i], ts[i]);
        CHECK_CLOSE(tag, s.sigmas, sg, n + 1, 1e-6);
        CHECK(s.sigmas[n] == 0.0f);
        CHECKF(fabsf(s.init_noise_sigma - ins[0]) <= 1e-6f * ins[0], "init sigma %.8g vs %.8g",
               s.init_noise_sigma, ins[0]);
    } else {
        CHECK(0);
    }
    sx_sched_free(&s);
}

static void test_scheduler(void) {
    sx_unet *u = NULL;
    CHECK_OK(sx_unet_load(FIX "tiny_unet.gguf", &u));
    /* config from the container's seedx.scheduler.* (converted from scheduler_config.json) */
    if (u) sched_case(sx_unet_gguf(u), 4, "sched");
    sched_case(NULL, 50, "sched50"); /* SDXL defaults */
    sx_sched s;
    CHECK(sx_sched_init(&s, NULL, 0, SX_SAMPLER_EULER, SX_KARRAS_CONFIG) == -1);
    CHECK(sx_sched_init(&s, NULL, 1001, SX_SAMPLER_EULER, SX_KARRAS_CONFIG) == -1);
    sx_unet_free(u);
}

typedef struct {
    int calls, last;
} prog;
static void on_step(void *ud, int step, int n, float t, const float *lat) {
    prog *p = ud;
    (void)n;
    (void)t;
    (void)lat;
    p->calls++;
    p->last = step;
}

static void load_cond(sx_cond *c, const char *tag) {
    char nm[64];
    memset(c, 0, sizeof *c);
    snprintf(nm, sizeof nm, "cfg.%s.ctx", tag);
    c->ctx = F_(IO, nm, NULL);
    c->T = 9;
    snprintf(nm, sizeof nm, "cfg.%s.pooled", tag);
    c->pooled = F_(IO, nm, NULL);
    const float *tid = F_(IO, "fwd.time_ids", NULL);
    if (tid) memcpy(c->time_ids, tid, sizeof c->time_ids);
}

static void test_cfg_loop(void) {
    sx_unet *u = NULL;
    CHECK_OK(sx_unet_load(FIX "tiny_unet.gguf", &u));
    const float *noise = F_(IO, "cfg.noise", NULL), *ref = F_(IO, "cfg.latents", NULL);
    if (!u || !noise || !ref) {
        CHECK(0);
        sx_unet_free(u);
        return;
    }
    sx_cond c, uc;
    load_cond(&c, "cond");
    load_cond(&uc, "uncond");
    sx_sched s;
    CHECK_OK(sx_sched_init(&s, sx_unet_gguf(u), 4, SX_SAMPLER_EULER, SX_KARRAS_CONFIG));
    float lat[4 * 256], hist[4 * 4 * 256];
    memcpy(lat, noise, sizeof lat);
    prog p = {0, -1};
    CHECK_OK(sx_sample_cfg(u, &s, lat, 16, 16, &c, &uc, 7.5f, on_step, &p, hist));
    CHECK(p.calls == 4 && p.last == 3);
    for (int i = 0; i < 4; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "cfg step %d", i);
        CHECK_CLOSE(nm, hist + i * 1024, ref + i * 1024, 1024, 1e-4);
    }
    CHECK(memcmp(lat, hist + 3 * 1024, sizeof lat) == 0);
    /* wrong UNet for the loop / wrong latent size */
    memcpy(lat, noise, sizeof lat);
    CHECK(sx_sample_edit(u, &s, lat, 16, 16, &c, &uc, NULL, 7.5f, 1.5f, NULL, NULL, NULL) == -1);
    CHECK(strstr(sx_errmsg(), "feeds 8 channels") != NULL);
    CHECK(sx_sample_cfg(u, &s, lat, 16, 0, &c, &uc, 7.5f, NULL, NULL, NULL) == -1);
    CHECK(strstr(sx_errmsg(), "latent size 16x0") != NULL);
    sx_sched_free(&s);
    sx_unet_free(u);
}

static void test_edit_loop(void) {
    sx_unet *u = NULL;
    const char *files[2] = {FIX "tiny_unet8_overlay.gguf", FIX "tiny_unet.gguf"};
    CHECK_OK(sx_unet_load_files(files, 2, &u));
    const float *noise = F_(IO, "cfg.noise", NULL), *img = F_(IO, "edit.image_latent", NULL);
    const float *ref = F_(IO, "edit.latents", NULL), *ref0 = F_(IO, "edit_noimg.latents", NULL);
    if (!u || !noise || !img || !ref || !ref0) {
        CHECK(0);
        sx_unet_free(u);
        return;
    }
    sx_cond c, uc;
    load_cond(&c, "cond");
    load_cond(&uc, "uncond");
    sx_sched s;
    CHECK_OK(sx_sched_init(&s, sx_unet_gguf(u), 4, SX_SAMPLER_EULER, SX_KARRAS_CONFIG));
    float lat[4 * 256], hist[4 * 4 * 256];
    memcpy(lat, noise, sizeof lat);
    CHECK_OK(sx_sample_edit(u, &s, lat, 16, 16, &c, &uc, img, 7.5f, 1.5f, NULL, NULL, hist));
    for (int i = 0; i < 4; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "edit step %d", i);
        CHECK_CLOSE(nm, hist + i * 1024, ref + i * 1024, 1024, 1e-4);
    }
    memcpy(lat, noise, sizeof lat);
    CHECK_OK(sx_sample_edit(u, &s, lat, 16, 16, &c, &uc, NULL, 7.5f, 1.5f, NULL, NULL, hist));
    for (int i = 0; i < 4; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "edit no-image step %d", i);
        CHECK_CLOSE(nm, hist + i * 1024, ref0 + i * 1024, 1024, 1e-4);
    }
    sx_sched_free(&s);
    sx_unet_free(u);
}

/* ---- torch CPU generator ---- */
static void test_rng_torch_cpu(void) {
    const uint64_t seeds[3] = {0, 42, 2147483653ull};
    static float big[4 * 128 * 128];
    for (int k = 0; k < 3; k++) {
        char nm[64];
        uint64_t sd = seeds[k];
        CHECK_OK(sx_randn(big, 4 * 128 * 128, sd, SX_RNG_TORCH_CPU));
        snprintf(nm, sizeof nm, "rng.%llu.big.head", (unsigned long long)sd);
        const float *h = F_(RNG, nm, NULL);
        snprintf(nm, sizeof nm, "rng.%llu.big.tail", (unsigned long long)sd);
        const float *t = F_(RNG, nm, NULL);
        if (h && t) {
            CHECKF(memcmp(big, h, 4096 * 4) == 0, "seed %llu [1,4,128,128] head differs",
                   (unsigned long long)sd);
            CHECKF(memcmp(big + 65536 - 64, t, 64 * 4) == 0, "seed %llu tail differs", (unsigned long long)sd);
        } else {
            CHECK(0);
        }
        double sum = 0, rs;
        int64_t bs = 0, bws = 0, rbs = -1, rbws = -1;
        for (int i = 0; i < 65536; i++) {
            uint32_t b;
            memcpy(&b, &big[i], 4);
            sum += big[i];
            bs += b;
            bws += (int64_t)b * (i % 1021 + 1);
        }
        snprintf(nm, sizeof nm, "rng.%llu.big.bitsum", (unsigned long long)sd);
        CHECK(sx_meta_int(RNG, nm, &rbs) == 0 && bs == rbs);
        snprintf(nm, sizeof nm, "rng.%llu.big.bitwsum", (unsigned long long)sd);
        CHECK(sx_meta_int(RNG, nm, &rbws) == 0 && bws == rbws);
        snprintf(nm, sizeof nm, "rng.%llu.big.sum", (unsigned long long)sd);
        CHECK(sx_meta_float(RNG, nm, &rs) == 0 && fabs(sum - rs) < 1e-6);
        /* the other shapes: [2,4,16,16] and the scalar / tail-recompute paths */
        const char *shp[4] = {"small", "n5", "n17", "n40"};
        for (int j = 0; j < 4; j++) {
            int64_t n;
            snprintf(nm, sizeof nm, "rng.%llu.%s", (unsigned long long)sd, shp[j]);
            const float *r = F_(RNG, nm, &n);
            if (!r) {
                CHECK(0);
                continue;
            }
            CHECK_OK(sx_randn(big, n, sd, SX_RNG_TORCH_CPU));
            CHECKF(memcmp(big, r, (size_t)n * 4) == 0, "%s differs (first %.9g vs %.9g)", nm, big[0], r[0]);
        }
    }
}

/* ---- torch CUDA generator (published GPU outputs) ---- */
typedef struct {
    int64_t idx;
    float v;
} pv;

static void check_cuda(const char *what, uint64_t seed, int64_t n, int64_t threads, float mean,
                       float stdv, const pv *ref, int nref, float tol) {
    for (int i = 0; i < nref; i++) {
        float y = NAN;
        CHECK_OK(sx_randn_torch_cuda_range(&y, n, ref[i].idx, 1, seed, threads));
        float v = y * stdv + mean;
        CHECKF(fabsf(v - ref[i].v) <= tol, "%s: element %lld = %.6f, published %.4f", what,
               (long long)ref[i].idx, v, ref[i].v);
    }
    /* the whole-tensor call agrees with the element-wise one */
    if (n <= 200000) {
        float *all = malloc(sizeof(float) * (size_t)n);
        CHECK_OK(sx_randn_torch_cuda(all, n, seed, threads));
        float y0 = NAN;
        sx_randn_torch_cuda_range(&y0, n, ref[nref - 1].idx, 1, seed, threads);
        CHECK(all[ref[nref - 1].idx] == y0);
        free(all);
    }
}

static void test_rng_torch_cuda(void) {
    /* AUTOMATIC1111 modules/rng_philox.py docstring: Generator(seed=0).randn((3, 4)) */
    const pv a1111[12] = {{0, -0.92466259f}, {1, -0.42534415f}, {2, -2.6438457f}, {3, 0.14518388f},
                          {4, -0.12086647f}, {5, -0.57972564f}, {6, -0.62285122f}, {7, -0.32838709f},
                          {8, -1.07454231f}, {9, -0.36314407f}, {10, -1.67105067f}, {11, 2.26550497f}};
    check_cuda("a1111 seed 0", 0, 12, 0, 0, 1, a1111, 12, 2e-6f);
    /* pytorch/pytorch#158398: randn([1,64,2048], cuda generator seed 42), the first machine's
     * output. The issue does not name the GPU; its last rows fix the element->thread mapping:
     * of all thread counts 256..131072 only 168 blocks (43008 threads = 28 SMs x 1536, an
     * RTX 3060-class GPU) reproduce them. The first rows hold for any GPU. */
    const pv i158398[] = {{0, 0.1940f}, {1, 2.1614f}, {2, -0.1721f}, {2045, 1.4540f}, {2046, -2.7733f},
                          {2047, -0.8932f}, {2048, -0.4574f}, {2049, 0.8063f}, {2050, 0.1580f},
                          {4093, 0.1124f}, {4094, 0.2769f}, {4095, -1.2535f}, {4096, 1.1346f},
                          {4097, -0.6329f}, {4098, -0.9147f}, {6141, -1.0001f}, {6142, -1.1552f},
                          {6143, -0.6955f}, {61 * 2048, -0.4861f}, {61 * 2048 + 1, 0.3358f},
                          {61 * 2048 + 2, 1.0578f}, {62 * 2048 - 3, -0.7282f}, {62 * 2048 - 2, 0.5087f},
                          {62 * 2048 - 1, 0.1318f}, {62 * 2048, 0.7881f}, {62 * 2048 + 1, 0.8339f},
                          {62 * 2048 + 2, -1.1424f}, {63 * 2048 - 3, -0.6297f}, {63 * 2048 - 2, -1.1112f},
                          {63 * 2048 - 1, -0.4091f}, {63 * 2048, -1.2356f}, {63 * 2048 + 1, -0.4083f},
                          {63 * 2048 + 2, -0.4695f}, {64 * 2048 - 3, -0.4841f}, {64 * 2048 - 2, 1.2850f},
                          {64 * 2048 - 1, -0.0282f}};
    check_cuda("pytorch#158398 seed 42", 42, 64 * 2048, 28 * 1536, 0, 1, i158398,
               (int)(sizeof i158398 / sizeof *i158398), 6e-5f);
    /* pytorch/pytorch#62467: empty(1,3,128,128).normal_() seed 43 on an RTX A6000, [..., 0, 0] */
    const pv i62467[3] = {{0, 1.9983f}, {16384, 0.8704f}, {32768, 2.1127f}};
    check_cuda("pytorch#62467 seed 43", 43, 3 * 128 * 128, 84 * 1536, 0, 1, i62467, 3, 6e-5f);
    /* pytorch/pytorch#97097: FloatTensor(1000,100).normal_(5, sqrt 5) seed 14 on an RTX A4000
     * (48 SMs x 1536 threads = 73728 < 100000: elements >= 73728 come from the cos half) */
    const pv i97097[] = {{0, 2.8731f}, {1, 5.2727f}, {2, 2.9889f}, {97, 1.6853f}, {98, 9.6331f},
                         {99, 6.6319f}, {100, 3.9968f}, {101, 3.8097f}, {102, 5.7328f}, {197, 4.4029f},
                         {198, 3.9804f}, {199, 7.4698f}, {200, 6.5552f}, {201, 4.0857f}, {202, 4.2315f},
                         {99700, 8.6297f}, {99701, 2.3137f}, {99702, 6.2596f}, {99797, 7.9358f},
                         {99798, 4.4697f}, {99799, 2.7475f}, {99800, 7.0551f}, {99801, 7.8583f},
                         {99802, 3.9990f}, {99897, 4.1139f}, {99898, 8.9315f}, {99899, 4.2042f},
                         {99900, 2.7337f}, {99901, 2.2106f}, {99902, 7.7815f}, {99997, 8.2207f},
                         {99998, 6.5395f}, {99999, 4.2604f}};
    check_cuda("pytorch#97097 seed 14 (RTX A4000)", 14, 100000, 48 * 1536, 5.0f, sqrtf(5.0f), i97097,
               (int)(sizeof i97097 / sizeof *i97097), 1.2e-4f);
    /* pytorch/pytorch#143086: randn(1, 9483264) seed 1: head on any GPU; tails on an H100 SXM
     * (132 SMs x 2048) and an A100 (108 SMs x 2048) */
    const int64_t N = 49LL * 12 * 112 * 144;
    const pv head[3] = {{0, -0.2963f}, {1, 2.6764f}, {2, -0.1408f}};
    const pv h100[3] = {{N - 3, -0.6970f}, {N - 2, -0.7780f}, {N - 1, 0.3267f}};
    const pv a100[3] = {{N - 3, 0.1549f}, {N - 2, -0.6797f}, {N - 1, -0.1656f}};
    check_cuda("pytorch#143086 head", 1, N, 132 * 2048, 0, 1, head, 3, 6e-5f);
    check_cuda("pytorch#143086 H100 tail", 1, N, 132 * 2048, 0, 1, h100, 3, 6e-5f);
    check_cuda("pytorch#143086 A100 tail", 1, N, 108 * 2048, 0, 1, a100, 3, 6e-5f);
}

static void test_latent_size(void) {
    int64_t h = 0, w = 0;
    CHECK(sx_latent_size(1024, 768, 8, &h, &w) == 0 && h == 128 && w == 96);
    CHECK(sx_latent_size(1000, 1004, 8, &h, &w) == -1);
    CHECK(strstr(sx_errmsg(), "1004x1000") != NULL && strstr(sx_errmsg(), "multiples of 8"));
    CHECK(sx_latent_size(0, 1024, 8, &h, &w) == -1);
}

static void test_rng_parse(void) {
    int k = -1;
    CHECK(sx_rng_parse("torch-cpu", &k) == 0 && k == SX_RNG_TORCH_CPU);
    CHECK(sx_rng_parse("torch-cuda", &k) == 0 && k == SX_RNG_TORCH_CUDA);
    CHECK(sx_rng_parse("philox", &k) == -1 && strstr(sx_errmsg(), "philox"));
}

/* ---- DPM-Solver++(2M) and Karras sigmas (tests/fixtures/sampler/, scripts/fixtures_sampler.py) */
#define SFIX "tests/fixtures/sampler/"

/* tensor "<tag>.<what>" of a fixture */
static const float *Ft(sx_gguf *g, const char *tag, const char *what) {
    char nm[96];
    snprintf(nm, sizeof nm, "%s.%s", tag, what);
    return F_(g, nm, NULL);
}

/* an int array of metadata into v[max]: its length, -1 on error */
static int meta_ints(const sx_gguf *g, const char *key, int64_t *v, int max) {
    int et;
    uint64_t n;
    if (!g || sx_meta_arr(g, key, &et, &n) || n > (uint64_t)max) return -1;
    for (uint64_t i = 0; i < n; i++)
        if (sx_meta_arr_int(g, key, i, &v[i])) return -1;
    return (int)n;
}

/* timesteps / sigmas / init_noise_sigma of set_timesteps(n) for every config, sampler, Karras
 * setting and step count of the fixture, against diffusers */
static void test_sched_tables(void) {
    const char *cfgs[4] = {"sdxl", "linspace", "trailing", "linear_leading0"};
    const char *kinds[2] = {"euler", "dpm"};
    for (int c = 0; c < 4; c++) {
        char path[128];
        snprintf(path, sizeof path, SFIX "sched_%s.gguf", cfgs[c]);
        sx_gguf *g = NULL;
        CHECK_OK(sx_gguf_open(path, &g));
        int64_t steps[32];
        int n_steps = meta_ints(g, "fixture.steps", steps, 32);
        if (n_steps < 1) {
            CHECK(0);
            sx_gguf_close(g);
            continue;
        }
        int bad = 0, cases = 0;
        double t_err = 0, sg_err = 0;
        for (int kd = 0; kd < 2; kd++)
            for (int k = 0; k < 2; k++)
                for (int j = 0; j < n_steps; j++) {
                    int n = (int)steps[j];
                    char tag[32];
                    snprintf(tag, sizeof tag, "%s.k%d.%d", kinds[kd], k, n);
                    const float *ts = Ft(g, tag, "timesteps"), *sg = Ft(g, tag, "sigmas");
                    const float *ins = Ft(g, tag, "init_noise_sigma");
                    sx_sched s;
                    if (!ts || !sg || !ins ||
                        sx_sched_init(&s, g, n, kd ? SX_SAMPLER_DPMPP_2M : SX_SAMPLER_EULER,
                                      k ? SX_KARRAS_ON : SX_KARRAS_OFF)) {
                        CHECKF(0, "%s %s k%d n=%d: %s", cfgs[c], kinds[kd], k, n, sx_errmsg());
                        continue;
                    }
                    cases++;
                    for (int i = 0; i < n; i++) {
                        double d = fabs((double)s.timesteps[i] - ts[i]) / fmax(fabs(ts[i]), 1.0);
                        if (d > t_err) t_err = d;
                        /* exact, except Euler's Karras timesteps, which are not rounded: they go
                         * through the log of the sigma table, whose last bits differ (below) */
                        if (d > (kd == 0 && k ? 2e-6 : 0) && bad++ < 5)
                            fprintf(stderr, "  %s %s k%d n=%d: t[%d] %.9g vs %.9g\n", cfgs[c],
                                    kinds[kd], k, n, i, s.timesteps[i], ts[i]);
                    }
                    /* sigmas to float rounding: torch 2.0.1 computes the betas with fused
                     * multiply-adds (its linspace kernel) and the table's sqrt is not correctly
                     * rounded; sigma_table keeps plain float ops */
                    for (int i = 0; i <= n; i++) {
                        double d = fabs((double)s.sigmas[i] - sg[i]) / (sg[i] > 0 ? sg[i] : 1);
                        if (d > sg_err) sg_err = d;
                        if (d > 3e-7 && bad++ < 5)
                            fprintf(stderr, "  %s %s k%d n=%d: sigma[%d] %.9g vs %.9g\n", cfgs[c],
                                    kinds[kd], k, n, i, s.sigmas[i], sg[i]);
                    }
                    if (fabsf(s.init_noise_sigma - ins[0]) > 3e-7f * ins[0] && bad++ < 5)
                        fprintf(stderr, "  %s %s k%d n=%d: init_noise_sigma %.9g vs %.9g\n",
                                cfgs[c], kinds[kd], k, n, s.init_noise_sigma, ins[0]);
                    sx_sched_free(&s);
                }
        CHECKF(bad == 0, "%s: %d mismatches", cfgs[c], bad);
        CHECK(cases == 4 * n_steps);
        if (getenv("SEEDX_TEST_VERBOSE"))
            printf("    sched_%-16s %d cases, max t rel. err %.3g, max sigma rel. err %.3g\n", cfgs[c],
                   cases, t_err, sg_err);
        sx_gguf_close(g);
    }
}
/* case i of the fixture's "fixture.cases" ("kind.kK.N") -> its name, sampler, Karras option, steps */
static int fixture_case(const sx_gguf *g, uint64_t i, char tag[32], int *kind, int *karras, int *n) {
    const char *cs;
    size_t cl;
    int k;
    if (sx_meta_arr_str(g, "fixture.cases", i, &cs, &cl)) return -1;
    snprintf(tag, 32, "%.*s", (int)cl, cs);
    if (sscanf(tag, "dpm.k%d.%d", &k, n) == 2)
        *kind = SX_SAMPLER_DPMPP_2M;
    else if (sscanf(tag, "euler.k%d.%d", &k, n) == 2)
        *kind = SX_SAMPLER_EULER;
    else
        return -1;
    *karras = k ? SX_KARRAS_ON : SX_KARRAS_OFF;
    return 0;
}

/* scheduler.step() alone, fed the fixture's model outputs (SDXL config): latents after every
 * step. Same float32 operations in the same order as diffusers' tensors, so (nearly) exact. */
static void test_sched_steps(void) {
    sx_gguf *g = NULL;
    CHECK_OK(sx_gguf_open(SFIX "steps.gguf", &g));
    int et;
    uint64_t nc = 0;
    if (!g || sx_meta_arr(g, "fixture.cases", &et, &nc)) {
        CHECK(0);
        sx_gguf_close(g);
        return;
    }
    for (uint64_t c = 0; c < nc; c++) {
        char tag[32];
        int kind, karras, n;
        CHECK_OK(fixture_case(g, c, tag, &kind, &karras, &n));
        const float *x0 = Ft(g, tag, "x"), *eps = Ft(g, tag, "eps"), *ref = Ft(g, tag, "latents");
        sx_sched s;
        if (!x0 || !eps || !ref || sx_sched_init(&s, NULL, n, kind, karras)) {
            CHECKF(0, "%s: %s", tag, sx_errmsg());
            continue;
        }
        float x[64];
        memcpy(x, x0, sizeof x);
        double worst = 0;
        for (int i = 0; i < n; i++) {
            CHECK_OK(sx_sched_step(&s, i, x, eps + i * 64, 64));
            t_err e = t_compare(x, ref + i * 64, 64);
            if (e.max_rel > worst || e.nonfinite) worst = e.nonfinite ? INFINITY : e.max_rel;
        }
        if (getenv("SEEDX_TEST_VERBOSE")) printf("    steps %-14s max_rel %.3g\n", tag, worst);
        CHECKF(worst <= 1e-6, "%s: max_rel %.3g", tag, worst);
        /* a DPM run restarts at step 0; steps out of order are refused */
        if (kind == SX_SAMPLER_DPMPP_2M && n > 2) {
            memcpy(x, x0, sizeof x);
            CHECK_OK(sx_sched_step(&s, 0, x, eps, 64));
            CHECK(sx_sched_step(&s, 2, x, eps, 64) == -1 && strstr(sx_errmsg(), "out of order"));
            CHECK(sx_sched_step(&s, 1, x, eps, 32) == -1 && strstr(sx_errmsg(), "out of order"));
            CHECK_OK(sx_sched_step(&s, 1, x, eps + 64, 64));
            t_err e = t_compare(x, ref + 64, 64);
            CHECK(e.max_rel <= 1e-6);
        }
        CHECK(sx_sched_step(&s, n, x, eps, 64) == -1);
        sx_sched_free(&s);
    }
    sx_gguf_close(g);
}

/* The SDXL 2-way CFG loop and the SEED-X 3-way edit loop with DPM-Solver++(2M) (and Euler with
 * Karras sigmas) on the tiny UNets (8x8 latent), config from the UNet container: latents after
 * every step within 1e-5 max-rel of diffusers. */
static void test_dpm_loops(void) {
    sx_gguf *g = NULL;
    sx_unet *u4 = NULL, *u8 = NULL;
    const char *files[2] = {FIX "tiny_unet8_overlay.gguf", FIX "tiny_unet.gguf"};
    CHECK_OK(sx_gguf_open(SFIX "loops.gguf", &g));
    CHECK_OK(sx_unet_load(FIX "tiny_unet.gguf", &u4));
    CHECK_OK(sx_unet_load_files(files, 2, &u8));
    int et;
    uint64_t nc = 0;
    const float *tid = g ? F_(g, "time_ids", NULL) : NULL;
    const float *noise = g ? F_(g, "noise", NULL) : NULL,
                *img = g ? F_(g, "image_latent", NULL) : NULL;
    if (!g || !u4 || !u8 || !tid || !noise || !img || sx_meta_arr(g, "fixture.cases", &et, &nc)) {
        CHECK(0);
        goto out;
    }
    sx_cond c = {F_(g, "cond.ctx", NULL), 9, F_(g, "cond.pooled", NULL), {0}};
    sx_cond uc = {F_(g, "uncond.ctx", NULL), 9, F_(g, "uncond.pooled", NULL), {0}};
    memcpy(c.time_ids, tid, sizeof c.time_ids);
    memcpy(uc.time_ids, tid, sizeof uc.time_ids);
    for (uint64_t ci = 0; ci < nc; ci++) {
        char tag[32], nm[64];
        int kind, karras, n;
        CHECK_OK(fixture_case(g, ci, tag, &kind, &karras, &n));
        char what[96];
        snprintf(what, sizeof what, "the %d-step case %s (the 4-step cases run)", n, tag);
        if (n > 4 && t_skip_emulated(what)) continue;
        for (int edit = 0; edit < 2; edit++) {
            snprintf(nm, sizeof nm, "%s.%s.latents", edit ? "edit" : "cfg", tag);
            const float *ref = F_(g, nm, NULL);
            sx_sched s;
            if (!ref || sx_sched_init(&s, sx_unet_gguf(edit ? u8 : u4), n, kind, karras)) {
                CHECKF(0, "%s: %s", nm, sx_errmsg());
                continue;
            }
            float lat[256], *hist = malloc(sizeof(float) * 256 * (size_t)n);
            memcpy(lat, noise, sizeof lat);
            int rc =
                edit ? sx_sample_edit(u8, &s, lat, 8, 8, &c, &uc, img, 7.5f, 1.5f, NULL, NULL, hist)
                     : sx_sample_cfg(u4, &s, lat, 8, 8, &c, &uc, 7.5f, NULL, NULL, hist);
            CHECKF(rc == 0, "%s: %s", nm, sx_errmsg());
            double worst = 0;
            int worst_step = -1;
            for (int i = 0; rc == 0 && i < n; i++) {
                t_err e = t_compare(hist + i * 256, ref + i * 256, 256);
                if (e.nonfinite || e.max_rel > worst) {
                    worst = e.nonfinite ? INFINITY : e.max_rel;
                    worst_step = i;
                }
            }
            if (getenv("SEEDX_TEST_VERBOSE"))
                printf("    %-4s %-14s max_rel %.3g (step %d)\n", edit ? "edit" : "cfg", tag, worst,
                       worst_step);
            CHECKF(worst <= 1e-5, "%s: max_rel %.3g at step %d", nm, worst, worst_step);
            free(hist);
            sx_sched_free(&s);
        }
    }
out:
    sx_unet_free(u4);
    sx_unet_free(u8);
    sx_gguf_close(g);
}

/* bad options give clear errors; the Karras setting defaults to the container's */
static void test_sched_options(void) {
    int k = -1;
    CHECK(sx_sampler_parse("euler", &k) == 0 && k == SX_SAMPLER_EULER);
    CHECK(sx_sampler_parse("dpmpp2m", &k) == 0 && k == SX_SAMPLER_DPMPP_2M);
    CHECK(sx_sampler_parse("dpm++", &k) == -1 && strstr(sx_errmsg(), "unknown sampler 'dpm++'") &&
          strstr(sx_errmsg(), "euler or dpmpp2m"));
    CHECK(!strcmp(sx_sampler_name(SX_SAMPLER_DPMPP_2M), "dpmpp2m"));
    sx_sched s;
    for (int kind = 0; kind < 2; kind++) {
        CHECK(sx_sched_init(&s, NULL, 0, kind, 0) == -1 &&
              strstr(sx_errmsg(), "0 steps requested"));
        CHECK(sx_sched_init(&s, NULL, -3, kind, 0) == -1 &&
              strstr(sx_errmsg(), "must be in [1, 1000]"));
        CHECK(sx_sched_init(&s, NULL, 1001, kind, 0) == -1 && strstr(sx_errmsg(), "1001 steps"));
    }
    CHECK(sx_sched_init(&s, NULL, 20, 7, 0) == -1 && strstr(sx_errmsg(), "unknown sampler 7"));
    CHECK(sx_sched_init(&s, NULL, 20, SX_SAMPLER_DPMPP_2M, 2) == -1 &&
          strstr(sx_errmsg(), "Karras option"));
    /* DPM's leading spacing with 1000 of 1000 training steps repeats one timestep: diffusers 0.25
     * cannot run it (Euler's leading spacing can) */
    CHECK(sx_sched_init(&s, NULL, 1000, SX_SAMPLER_DPMPP_2M, 0) == -1 &&
          strstr(sx_errmsg(), "leading spacing"));
    CHECK_OK(sx_sched_init(&s, NULL, 1000, SX_SAMPLER_EULER, 0));
    sx_sched_free(&s);
    CHECK_OK(sx_sched_init(&s, NULL, 999, SX_SAMPLER_DPMPP_2M, 0));
    CHECK(s.n_steps == 999 && s.timesteps[0] == 1000 && s.timesteps[998] == 2);
    sx_sched_free(&s);
    /* the container's use_karras_sigmas (true in sched_trailing.gguf), overridden either way;
     * trailing spacing with 61 steps: numpy's arange gives diffusers 62 timesteps (the last -1) */
    sx_gguf *g = NULL;
    CHECK_OK(sx_gguf_open(SFIX "sched_trailing.gguf", &g));
    if (!g) return;
    const float *t1 = F_(g, "dpm.k1.10.timesteps", NULL), *t0 = F_(g, "dpm.k0.10.timesteps", NULL);
    CHECK_OK(sx_sched_init(&s, g, 10, SX_SAMPLER_DPMPP_2M, SX_KARRAS_CONFIG));
    CHECK(s.karras == 1 && t1 && memcmp(s.timesteps, t1, 10 * sizeof(float)) == 0);
    sx_sched_free(&s);
    CHECK_OK(sx_sched_init(&s, g, 10, SX_SAMPLER_DPMPP_2M, SX_KARRAS_OFF));
    CHECK(s.karras == 0 && t0 && memcmp(s.timesteps, t0, 10 * sizeof(float)) == 0);
    sx_sched_free(&s);
    for (int kind = 0; kind < 2; kind++) {
        CHECK(sx_sched_init(&s, g, 61, kind, SX_KARRAS_OFF) == -1 &&
              strstr(sx_errmsg(), "trailing spacing with 61 steps") && strstr(sx_errmsg(), "62"));
        CHECK_OK(sx_sched_init(&s, g, 60, kind, SX_KARRAS_OFF));
        sx_sched_free(&s);
    }
    /* the loops refuse an uninitialised scheduler */
    memset(&s, 0, sizeof s);
    float x[4] = {0}, e[4] = {0};
    CHECK(sx_sched_step(&s, 0, x, e, 4) == -1 && strstr(sx_errmsg(), "not initialised"));
    sx_gguf_close(g);
}

/* --sampler / --karras on the command line: `seedx unet sample` gives the DPM loop's latents
 * (fixture), unknown samplers are refused, and `seedx reconstruct` runs DPM-Solver++ end to end */
static void test_cli_sampler(void) {
    sx_gguf *g = NULL;
    CHECK_OK(sx_gguf_open(SFIX "loops.gguf", &g));
    if (!g) return;
    char dir[256], cmd[4096], path[320];
    snprintf(dir, sizeof dir, "%s/sampler_cli", t_build());
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    CHECK(system(cmd) == 0);
    const char *in[5] = {"cond.ctx", "cond.pooled", "uncond.ctx", "uncond.pooled", "noise"};
    const int64_t shp[5][4] = {{9, 64}, {32}, {9, 64}, {32}, {1, 4, 8, 8}};
    const int nd[5] = {2, 1, 2, 1, 4};
    for (int i = 0; i < 5; i++) {
        const float *a = F_(g, in[i], NULL);
        snprintf(path, sizeof path, "%s/%s.npy", dir, in[i]);
        CHECK(a && sx_npy_write(path, a, nd[i], shp[i]) == 0);
    }
    const char *karras[2] = {"", " --karras"};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd,
                 "./seedx unet sample -m " FIX "tiny_unet.gguf --ctx %s/cond.ctx.npy --pooled "
                 "%s/cond.pooled.npy --neg-ctx %s/uncond.ctx.npy --neg-pooled %s/uncond.pooled.npy "
                 "--noise %s/noise.npy --steps 4 --cfg 7.5 --size 64 --time-ids 64,64,0,0,64,64 "
                 "--sampler dpmpp2m%s -o %s/out%d.npy > /dev/null 2>&1",
                 dir, dir, dir, dir, dir, karras[k], dir, k);
        CHECKF(system(cmd) == 0, "%s", cmd);
        snprintf(path, sizeof path, "%s/out%d.npy", dir, k);
        float *out = NULL;
        int n_d;
        int64_t sh[4], cnt = 0;
        char tag[32];
        snprintf(tag, sizeof tag, "cfg.dpm.k%d.4", k);
        const float *ref = Ft(g, tag, "latents");
        CHECK_OK(sx_npy_read(path, &out, &n_d, sh, &cnt));
        if (out && ref && cnt == 256)
            CHECK_CLOSE(tag, out, ref + 3 * 256, 256, 1e-5);
        else
            CHECK(0);
        free(out);
    }
    snprintf(
        cmd, sizeof cmd,
        "./seedx unet sample -m " FIX "tiny_unet.gguf --ctx %s/cond.ctx.npy --pooled "
        "%s/cond.pooled.npy --sampler dpm++ --size 64 -o %s/never.npy > /dev/null 2> %s/err.txt",
        dir, dir, dir, dir);
    CHECK(system(cmd) != 0);
    snprintf(cmd, sizeof cmd,
             "grep -qF -e \"--sampler wants one of euler|dpmpp2m, got 'dpm++'\" %s/err.txt && "
             "test ! -e %s/never.npy",
             dir, dir);
    CHECK(system(cmd) == 0);
    /* the SEED-X front-end: DPM-Solver++ with Karras sigmas through sx_seedx_opts, and a
     * different image than Euler's; a bad --sampler stops before loading anything */
    const char *samplers[2] = {"euler", "dpmpp2m --karras"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "./seedx reconstruct -m tests/fixtures/seedx_e2e/model --image "
                 "tests/fixtures/seedx_e2e/img_a.png -o %s/r%d.png --size 64x64 --steps 3 "
                 "--sampler %s -q > /dev/null 2>&1",
                 dir, i, samplers[i]);
        CHECKF(system(cmd) == 0, "%s", cmd);
    }
    snprintf(cmd, sizeof cmd, "! cmp -s %s/r0.png %s/r1.png", dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd,
             "./seedx generate -m tests/fixtures/seedx_e2e/model -p x -o %s/g.png --sampler heun "
             "> /dev/null 2> %s/err2.txt",
             dir, dir);
    CHECK(system(cmd) != 0);
    snprintf(cmd, sizeof cmd,
             "grep -qF -e \"--sampler wants one of euler|dpmpp2m, got 'heun'\" %s/err2.txt", dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    sx_gguf_close(g);
}

static void test_cleanup(void) {
    sx_gguf_close(IO);
    sx_gguf_close(RNG);
    IO = RNG = NULL;
}

int main(void) {
    TEST_INIT();
    RUN(test_open);
    RUN(test_scheduler);
    RUN(test_cfg_loop);
    RUN(test_edit_loop);
    RUN(test_rng_torch_cpu);
    RUN(test_rng_torch_cuda);
    RUN(test_latent_size);
    RUN(test_rng_parse);
    RUN(test_sched_tables);
    RUN(test_sched_steps);
    RUN(test_dpm_loops);
    RUN(test_sched_options);
    RUN(test_cli_sampler);
    RUN(test_cleanup);
    return TEST_DONE();
}
