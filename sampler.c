/* sampler.c - EulerDiscreteScheduler and DPMSolverMultistepScheduler (diffusers
 * 0.25.0), the SDXL and SEED-X edit guidance loops, and torch-compatible Gaussian
 * noise.
 *
 * Scheduler arithmetic follows diffusers: numpy float64 where set_timesteps uses
 * numpy (spacing, interpolation, Karras sigmas), float32 where it uses torch
 * tensors (betas, cumprod, sigma table, scale_model_input, step), so timesteps and
 * sigmas agree with diffusers to float rounding. The guidance loops evaluate the
 * UNet once per branch. */
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sx_core.h"

/* ======================================================================
 * schedulers: configuration and noise schedule
 * ====================================================================== */
static int meta_str_is(const sx_gguf *g, const char *key, const char *def, const char *want,
                       int *is) {
    const char *s = def;
    size_t len = strlen(def);
    if (g && sx_meta_has(g, key) && sx_meta_str(g, key, &s, &len) != 0) return -1;
    *is = len == strlen(want) && memcmp(s, want, len) == 0;
    return 0;
}

enum { SPACING_LEADING, SPACING_LINSPACE, SPACING_TRAILING };

typedef struct sched_cfg {
    const char *path;
    int64_t N, offset; /* num_train_timesteps, steps_offset */
    double beta_start, beta_end;
    int scaled, spacing, karras;
} sched_cfg;

static int sched_config(const sx_gguf *g, int kind, int karras, sched_cfg *c) {
    const char *P = g ? sx_gguf_path(g) : "(SDXL defaults)";
    memset(c, 0, sizeof *c);
    c->path = P;
    c->N = g ? sx_meta_int_or(g, "seedx.scheduler.num_train_timesteps", 1000) : 1000;
    c->offset = g ? sx_meta_int_or(g, "seedx.scheduler.steps_offset", 1) : 1;
    c->beta_start = g ? sx_meta_float_or(g, "seedx.scheduler.beta_start", 0.00085) : 0.00085;
    c->beta_end = g ? sx_meta_float_or(g, "seedx.scheduler.beta_end", 0.012) : 0.012;
    if (c->N < 2 || c->N > 100000)
        return sx_err("%s: num_train_timesteps %lld out of range", P, (long long)c->N);
    int scaled, lin, leading, linspace, trailing, eps_pred, interp_lin;
    if (meta_str_is(g, "seedx.scheduler.beta_schedule", "scaled_linear", "scaled_linear", &scaled) ||
        meta_str_is(g, "seedx.scheduler.beta_schedule", "scaled_linear", "linear", &lin) ||
        meta_str_is(g, "seedx.scheduler.timestep_spacing", "leading", "leading", &leading) ||
        meta_str_is(g, "seedx.scheduler.timestep_spacing", "leading", "linspace", &linspace) ||
        meta_str_is(g, "seedx.scheduler.timestep_spacing", "leading", "trailing", &trailing) ||
        meta_str_is(g, "seedx.scheduler.prediction_type", "epsilon", "epsilon", &eps_pred) ||
        meta_str_is(g, "seedx.scheduler.interpolation_type", "linear", "linear", &interp_lin))
        return -1;
    if (!scaled && !lin) return sx_err("%s: beta_schedule must be linear or scaled_linear", P);
    if (!leading && !linspace && !trailing)
        return sx_err("%s: timestep_spacing must be leading, linspace or trailing", P);
    if (!eps_pred) return sx_err("%s: only prediction_type epsilon is supported", P);
    /* interpolation_type is an Euler option (DPM's from_config ignores it) */
    if (kind == SX_SAMPLER_EULER && !interp_lin)
        return sx_err("%s: only interpolation_type linear is supported", P);
    if (g && sx_meta_int_or(g, "seedx.scheduler.rescale_betas_zero_snr", 0))
        return sx_err("%s: zero-SNR rescaling (rescale_betas_zero_snr) is not supported", P);
    if (karras != SX_KARRAS_CONFIG && karras != SX_KARRAS_ON && karras != SX_KARRAS_OFF)
        return sx_err("scheduler: bad Karras option %d", karras);
    c->scaled = scaled;
    c->spacing = leading ? SPACING_LEADING : linspace ? SPACING_LINSPACE : SPACING_TRAILING;
    c->karras = karras == SX_KARRAS_CONFIG
                    ? (g && sx_meta_int_or(g, "seedx.scheduler.use_karras_sigmas", 0) != 0)
                    : karras == SX_KARRAS_ON;
    return 0;
}

/* sigma(t) = sqrt((1 - alphas_cumprod) / alphas_cumprod), t = 0..N-1, in float32 as diffusers'
 * tensors: betas = linspace(start, end, N) (torch's two-sided formula), squared for
 * scaled_linear; alphas_cumprod = cumprod(1 - beta) (double accumulator, float store).
 * torch 2.0.1's own table differs in the last bit for ~20% of the entries: its linspace kernel
 * is compiled with fused multiply-adds and its float32 sqrt is not correctly rounded. */
static void sigma_table(const sched_cfg *c, float *tab) {
    int64_t N = c->N;
    float st = c->scaled ? (float)sqrt(c->beta_start) : (float)c->beta_start;
    float en = c->scaled ? (float)sqrt(c->beta_end) : (float)c->beta_end;
    float step = (en - st) / (float)(N - 1);
    double acc = 1.0;
    for (int64_t i = 0; i < N; i++) {
        float b = i < N / 2 ? st + step * (float)i : en - step * (float)(N - 1 - i);
        if (c->scaled) b = b * b;
        float a = 1.0f - b;
        acc *= (double)a;
        float ac = (float)acc;
        tab[i] = sqrtf((1.0f - ac) / ac);
    }
}

/* element k of np.linspace(0, stop, num) (float64) */
static double np_linspace(double stop, int64_t num, int64_t k) {
    if (num == 1) return 0.0;
    if (k == num - 1) return stop;
    return (double)k * (stop / (double)(num - 1));
}

/* np.arange(start, 0, -step) for start, step > 0: its length, and element i (numpy fills
 * start + i*d with d = (start - step) - start, from the first two values) */
static int64_t np_arange_down_len(double start, double step) {
    return (int64_t)ceil((0.0 - start) / -step);
}
static double np_arange_down(double start, double step, int64_t i) {
    double a1 = start - step;
    return i == 0 ? start : i == 1 ? a1 : start + (double)i * (a1 - start);
}

/* np.interp(t, arange(N), tab) */
static double interp_sigma(const float *tab, int64_t N, double t) {
    double tc = t < 0 ? 0 : t > (double)(N - 1) ? (double)(N - 1) : t;
    int64_t j = (int64_t)floor(tc);
    double fr = tc - (double)j;
    return j + 1 < N && fr > 0 ? tab[j] + (tab[j + 1] - (double)tab[j]) * fr : tab[j];
}

/* diffusers' _convert_to_karras: sigma_i^(1/rho) evenly spaced from sigma_max to sigma_min,
 * rho = 7 (float64) */
static double karras_sigma(double smin, double smax, int n, int i) {
    const double rho = 7.0;
    double lo = pow(smin, 1.0 / rho), hi = pow(smax, 1.0 / rho);
    return pow(hi + np_linspace(1.0, n, i) * (lo - hi), rho);
}

/* diffusers' _sigma_to_t: t linear in log sigma between the two training steps around it.
 * log_tab = log of the float32 sigma table, kept in float32 as numpy does. */
static double sigma_to_t(double sigma, const float *log_tab, int64_t N) {
    double ls = log(sigma > 1e-10 ? sigma : 1e-10);
    int64_t lo = 0; /* the last j with log_tab[j] <= ls (argmax of the cumsum), else 0 */
    for (int64_t j = 0; j < N; j++)
        if (ls - (double)log_tab[j] >= 0) lo = j;
    if (lo > N - 2) lo = N - 2;
    float low = log_tab[lo], high = log_tab[lo + 1];
    double w = ((double)low - ls) / (double)(low - high); /* low - high in float32 */
    w = w < 0 ? 0 : w > 1 ? 1 : w;
    return (1.0 - w) * (double)lo + w * (double)(lo + 1);
}

/* Timesteps of set_timesteps before any Karras conversion, as doubles. Euler spaces n points,
 * DPM n + 1 points and drops the last (t = 0); trailing and DPM's linspace values are rounded
 * half to even as numpy does. */
static int spaced_timesteps(const sched_cfg *c, int kind, int n, double *ts) {
    int64_t N = c->N;
    int dpm = kind == SX_SAMPLER_DPMPP_2M;
    if (c->spacing == SPACING_LEADING) {
        int64_t ratio = N / (dpm ? n + 1 : n);
        if (ratio < 1)
            return sx_err(
                "scheduler: %d steps with leading spacing leave no room between timesteps "
                "(num_train_timesteps %lld)",
                n, (long long)N);
        for (int i = 0; i < n; i++)
            ts[i] = (double)((int64_t)((dpm ? n : n - 1) - i) * ratio + c->offset);
    } else if (c->spacing == SPACING_TRAILING) {
        double ratio = (double)N / n;
        int64_t len = np_arange_down_len((double)N, ratio);
        if (len != n)
            return sx_err("scheduler: trailing spacing with %d steps: diffusers 0.25 makes %lld "
                          "timesteps here (numpy arange rounding); choose another step count",
                          n, (long long)len);
        for (int i = 0; i < n; i++) ts[i] = nearbyint(np_arange_down((double)N, ratio, i)) - 1.0;
    } else if (dpm) {
        for (int i = 0; i < n; i++) ts[i] = nearbyint(np_linspace((double)(N - 1), n + 1, n - i));
    } else {
        /* np.linspace(0, N-1, n, dtype=float32)[::-1] */
        for (int i = 0; i < n; i++) ts[i] = (float)np_linspace((double)(N - 1), n, n - 1 - i);
    }
    return 0;
}

const char *sx_sampler_name(int kind) {
    return kind == SX_SAMPLER_EULER ? "euler" : kind == SX_SAMPLER_DPMPP_2M ? "dpmpp2m" : "?";
}

int sx_sampler_parse(const char *name, int *kind) {
    if (!name || !kind) return sx_err("sx_sampler_parse: NULL argument");
    for (int k = SX_SAMPLER_EULER; k <= SX_SAMPLER_DPMPP_2M; k++)
        if (!strcmp(name, sx_sampler_name(k))) {
            *kind = k;
            return 0;
        }
    return sx_err("unknown sampler '%s' (euler or dpmpp2m)", name);
}

void sx_sched_free(sx_sched *s) {
    if (!s) return;
    free(s->timesteps);
    free(s->sigmas);
    free(s->x0_prev);
    free(s->x0_cur);
    memset(s, 0, sizeof *s);
}

int sx_sched_init(sx_sched *s, const sx_gguf *g, int n_steps, int kind, int karras) {
    if (!s) return sx_err("sx_sched_init: NULL argument");
    memset(s, 0, sizeof *s);
    if (kind != SX_SAMPLER_EULER && kind != SX_SAMPLER_DPMPP_2M)
        return sx_err("scheduler: unknown sampler %d", kind);
    sched_cfg c;
    if (sched_config(g, kind, karras, &c)) return -1;
    int64_t N = c.N;
    if (n_steps < 1 || n_steps > N)
        return sx_err("scheduler: %d steps requested, must be in [1, %lld]", n_steps, (long long)N);
    int n = n_steps, dpm = kind == SX_SAMPLER_DPMPP_2M;
    float *tab = sx_malloc(sizeof(float) * (size_t)N * 2, "scheduler sigma table");
    double *ts = sx_malloc(sizeof(double) * (size_t)n, "scheduler timesteps");
    s->timesteps = sx_malloc(sizeof(float) * (size_t)n, "scheduler timesteps");
    s->sigmas = sx_malloc(sizeof(float) * (size_t)(n + 1), "scheduler sigmas");
    if (!tab || !ts || !s->timesteps || !s->sigmas) goto fail;
    float *log_tab = tab + N;
    sigma_table(&c, tab);
    if (spaced_timesteps(&c, kind, n, ts)) goto fail;
    if (c.karras) {
        /* Karras sigmas between the ends of the spaced schedule (Euler) or of the whole training
         * table (DPM); timesteps back through log sigma (rounded to integers for DPM) */
        for (int64_t j = 0; j < N; j++) log_tab[j] = logf(tab[j]);
        double smin = dpm ? tab[0] : interp_sigma(tab, N, ts[n - 1]);
        double smax = dpm ? tab[N - 1] : interp_sigma(tab, N, ts[0]);
        for (int i = 0; i < n; i++) {
            double sg = karras_sigma(smin, smax, n, i);
            double t = sigma_to_t(sg, log_tab, N);
            s->sigmas[i] = (float)sg;
            s->timesteps[i] = (float)(dpm ? nearbyint(t) : t);
        }
    } else {
        for (int i = 0; i < n; i++) {
            s->timesteps[i] = (float)ts[i];
            s->sigmas[i] = (float)interp_sigma(tab, N, ts[i]);
        }
    }
    /* the sigma after the last step: Euler 0; DPM (0.25.0, before final_sigmas_type) the
     * training table's first sigma, or the last Karras sigma repeated */
    s->sigmas[n] = !dpm ? 0.0f : c.karras ? s->sigmas[n - 1] : tab[0];
    if (n > 1 && s->timesteps[0] == s->timesteps[1]) {
        /* diffusers' step() would start at the second occurrence and run past the end */
        sx_err("scheduler: %d steps: the first two timesteps coincide (%g); choose fewer steps", n,
               s->timesteps[0]);
        goto fail;
    }
    if (dpm) {
        s->init_noise_sigma = 1.0f;
    } else {
        float mx = 0;
        for (int i = 0; i <= n; i++)
            if (s->sigmas[i] > mx) mx = s->sigmas[i];
        s->init_noise_sigma = c.spacing == SPACING_LEADING ? sqrtf(mx * mx + 1.0f) : mx;
    }
    s->kind = kind;
    s->karras = c.karras;
    s->n_steps = n;
    free(tab);
    free(ts);
    return 0;
fail:
    free(tab);
    free(ts);
    sx_sched_free(s);
    return -1;
}

void sx_sched_scale_input(const sx_sched *s, int i, float *y, const float *x, int64_t n) {
    if (s->kind == SX_SAMPLER_DPMPP_2M) {
        if (y != x) memcpy(y, x, sizeof(float) * (size_t)n);
        return;
    }
    float sg = s->sigmas[i];
    float d = sqrtf(sg * sg + 1.0f);
    for (int64_t k = 0; k < n; k++) y[k] = x[k] / d;
}

/* ======================================================================
 * scheduler steps
 * ====================================================================== */
static void euler_step(const sx_sched *s, int i, float *x, const float *eps, int64_t n) {
    /* pred_x0 = x - sigma*eps; derivative = (x - pred_x0) / sigma; x += derivative * dt */
    float sg = s->sigmas[i], dt = s->sigmas[i + 1] - sg;
    for (int64_t k = 0; k < n; k++) {
        float p = x[k] - sg * eps[k];
        float d = (x[k] - p) / sg;
        x[k] = x[k] + d * dt;
    }
}

/* DPM-Solver's variance-preserving view of sigma: alpha_t = 1/sqrt(sigma^2 + 1),
 * sigma_t = sigma*alpha_t, lambda = log(alpha_t) - log(sigma_t); float32 scalar ops as
 * diffusers' 0-d tensors compute them */
typedef struct vp {
    float alpha, sigma, lambda;
} vp;
static vp vp_of(float sigma) {
    vp v;
    v.alpha = 1.0f / sqrtf(sigma * sigma + 1.0f);
    v.sigma = sigma * v.alpha;
    v.lambda = logf(v.alpha) - logf(v.sigma);
    return v;
}

/* DPMSolverMultistepScheduler.step (dpmsolver++, order 2, midpoint, lower_order_final):
 * data prediction x0 = (x - sigma_s*eps) / alpha_s; first-order update (DDIM) at step 0
 * and, below 15 steps, at the last step; the multistep second-order update otherwise:
 *   x <- (sigma_t/sigma_s0) x - alpha_t (e^-h - 1) D0 - 0.5 alpha_t (e^-h - 1) D1,
 *   h = lambda_t - lambda_s0, r0 = (lambda_s0 - lambda_s1)/h, D0 = x0, D1 = (x0 - x0_prev)/r0 */
static void dpm_step(sx_sched *s, int i, float *x, const float *eps, int64_t n) {
    int N = s->n_steps;
    vp t = vp_of(s->sigmas[i + 1]), s0 = vp_of(s->sigmas[i]);
    float *m0 = s->x0_cur, *m1 = s->x0_prev;
    for (int64_t k = 0; k < n; k++) m0[k] = (x[k] - s0.sigma * eps[k]) / s0.alpha;
    float h = t.lambda - s0.lambda;
    float c_x = t.sigma / s0.sigma, c_d = t.alpha * (expf(-h) - 1.0f);
    int first_order = i == 0 || (i == N - 1 && N < 15);
    if (first_order) {
        for (int64_t k = 0; k < n; k++) x[k] = c_x * x[k] - c_d * m0[k];
    } else if (h != 0.0f) {
        vp s1 = vp_of(s->sigmas[i - 1]);
        float r0 = (s0.lambda - s1.lambda) / h, inv_r0 = 1.0f / r0, c_d1 = 0.5f * c_d;
        for (int64_t k = 0; k < n; k++) {
            float d1 = inv_r0 * (m0[k] - m1[k]);
            x[k] = (c_x * x[k] - c_d * m0[k]) - c_d1 * d1;
        }
    }
    /* h == 0 (the repeated last Karras sigma): diffusers' update reduces to x exactly
     * (sigma ratio 1, e^-0 - 1 = 0, D1 = (1/inf)(m0 - m1) = 0) */
    s->x0_prev = m0;
    s->x0_cur = m1;
}

int sx_sched_step(sx_sched *s, int i, float *x, const float *eps, int64_t n) {
    if (!s || !x || !eps || n <= 0) return sx_err("sx_sched_step: bad argument");
    if (!s->sigmas || i < 0 || i >= s->n_steps)
        return sx_err("scheduler: step %d of %d (not initialised?)", i, s ? s->n_steps : 0);
    if (s->kind == SX_SAMPLER_EULER) {
        euler_step(s, i, x, eps, n);
        return 0;
    }
    if (i == 0) {
        if (n != s->n_state) {
            free(s->x0_prev);
            free(s->x0_cur);
            s->n_state = 0;
            s->x0_prev = sx_malloc(sizeof(float) * (size_t)n, "DPM-Solver state");
            s->x0_cur = sx_malloc(sizeof(float) * (size_t)n, "DPM-Solver state");
            if (!s->x0_prev || !s->x0_cur) return -1;
            s->n_state = n;
        }
    } else if (i != s->next_step || n != s->n_state) {
        return sx_err(
            "scheduler: DPM-Solver++ step %d (%lld values) out of order: expected step %d "
            "(%lld values)",
            i, (long long)n, s->next_step, (long long)s->n_state);
    }
    dpm_step(s, i, x, eps, n);
    s->next_step = i + 1;
    return 0;
}

int sx_latent_size(int64_t px_h, int64_t px_w, int factor, int64_t *h, int64_t *w) {
    if (!h || !w || factor <= 0) return sx_err("sx_latent_size: bad argument");
    if (px_h <= 0 || px_w <= 0 || px_h % factor || px_w % factor || px_h > 65536 || px_w > 65536)
        return sx_err("image size %lldx%lld: width and height must be positive multiples of %d pixels",
                      (long long)px_w, (long long)px_h, factor);
    *h = px_h / factor;
    *w = px_w / factor;
    return 0;
}

/* ======================================================================
 * guidance loops
 * ====================================================================== */
static int check_loop(sx_unet *u, const sx_sched *s, float *lat, int64_t h, int64_t w,
                      const sx_cond *c, const sx_cond *uc, int need_uc, int cin) {
    if (!u || !s || !lat || !c || !c->ctx || (need_uc && (!uc || !uc->ctx)))
        return sx_err("sampler: NULL argument");
    if (!s->sigmas || s->n_steps < 1) return sx_err("sampler: scheduler not initialised");
    const sx_unet_config *cf = sx_unet_get_config(u);
    if (cf->in_channels != cin)
        return sx_err("sampler: this loop feeds %d channels, the UNet takes %d (conv_in)", cin,
                      cf->in_channels);
    if (cf->out_channels != 4)
        return sx_err("sampler: the UNet predicts %d channels, expected 4", cf->out_channels);
    if (h <= 0 || w <= 0) return sx_err("sampler: bad latent size %lldx%lld", (long long)h, (long long)w);
    return 0;
}

/* the pipelines' (scheduler.timesteps == t).nonzero()[0]: the first step with timestep t */
static int first_step_at(const sx_sched *s, float t) {
    int j = 0;
    while (s->timesteps[j] != t) j++;
    return j;
}

static int unet_eval(sx_unet *u, const float *x, int cin, int64_t h, int64_t w, float t,
                     const sx_cond *c, float *eps) {
    const sx_unet_config *cf = sx_unet_get_config(u);
    sx_unet_cond uc = {.context = c->ctx, .n_ctx = c->T, .ctx_dim = cf->cross_dim,
                       .pooled = c->pooled, .pooled_dim = cf->pooled_dim, .time_ids = c->time_ids};
    return sx_unet_forward(u, x, cin, h, w, t, &uc, eps);
}

int sx_sample_cfg(sx_unet *u, sx_sched *s, float *latents, int64_t h, int64_t w,
                  const sx_cond *cond, const sx_cond *uncond, float gs, sx_progress_fn cb, void *ud,
                  float *history) {
    int guided = gs > 1.0f;
    if (check_loop(u, s, latents, h, w, cond, uncond, guided, 4)) return -1;
    int64_t n = 4 * h * w;
    int rc = -1;
    float *x = sx_malloc(sizeof(float) * (size_t)n, "sampler input");
    float *eu = sx_malloc(sizeof(float) * (size_t)n, "sampler eps");
    float *ec = sx_malloc(sizeof(float) * (size_t)n, "sampler eps");
    if (!x || !eu || !ec) goto done;
    for (int64_t k = 0; k < n; k++) latents[k] = latents[k] * s->init_noise_sigma;
    for (int i = 0; i < s->n_steps; i++) {
        float t = s->timesteps[i];
        if (sx_stop_requested()) {
            sx_err("cancelled before step %d of %d", i + 1, s->n_steps);
            goto done;
        }
        sx_sched_scale_input(s, i, x, latents, n);
        if (unet_eval(u, x, 4, h, w, t, cond, ec)) goto done;
        if (guided) {
            if (unet_eval(u, x, 4, h, w, t, uncond, eu)) goto done;
            for (int64_t k = 0; k < n; k++) ec[k] = eu[k] + gs * (ec[k] - eu[k]);
        }
        if (sx_sched_step(s, i, latents, ec, n)) goto done;
        if (history) memcpy(history + (size_t)i * (size_t)n, latents, sizeof(float) * (size_t)n);
        if (cb) cb(ud, i, s->n_steps, t, latents);
    }
    rc = 0;
done:
    if (rc) sx_err_prefix("sampling: ");
    free(x);
    free(eu);
    free(ec);
    return rc;
}

int sx_sample_edit(sx_unet *u, sx_sched *s, float *latents, int64_t h, int64_t w,
                   const sx_cond *cond, const sx_cond *uncond, const float *image_latent, float gs,
                   float igs, sx_progress_fn cb, void *ud, float *history) {
    int guided = gs > 1.0f && igs >= 1.0f;
    if (check_loop(u, s, latents, h, w, cond, uncond, guided, 8)) return -1;
    int64_t n = 4 * h * w;
    int rc = -1;
    float *x = sx_malloc(sizeof(float) * (size_t)(2 * n), "sampler input");
    float *et = sx_malloc(sizeof(float) * (size_t)(3 * n), "sampler eps");
    if (!x || !et) goto done;
    float *ei = et + n, *eu = et + 2 * n;
    for (int64_t k = 0; k < n; k++) latents[k] = latents[k] * s->init_noise_sigma;
    for (int i = 0; i < s->n_steps; i++) {
        float t = s->timesteps[i], sg = s->sigmas[first_step_at(s, t)];
        if (sx_stop_requested()) {
            sx_err("cancelled before step %d of %d", i + 1, s->n_steps);
            goto done;
        }
        /* branch input: [scaled latents | image latent (zeros for the uncond branch)] */
        sx_sched_scale_input(s, i, x, latents, n);
        if (image_latent)
            memcpy(x + n, image_latent, sizeof(float) * (size_t)n);
        else
            memset(x + n, 0, sizeof(float) * (size_t)n);
        if (unet_eval(u, x, 8, h, w, t, cond, et)) goto done;
        if (guided) {
            if (unet_eval(u, x, 8, h, w, t, uncond, ei)) goto done;
            memset(x + n, 0, sizeof(float) * (size_t)n);
            if (unet_eval(u, x, 8, h, w, t, uncond, eu)) goto done;
            for (int64_t k = 0; k < n; k++) {
                float l = latents[k];
                float xt = l - sg * et[k], xi = l - sg * ei[k], xu = l - sg * eu[k];
                float x0 = (xu + gs * (xt - xi)) + igs * (xi - xu);
                et[k] = (x0 - l) / -sg;
            }
        }
        if (sx_sched_step(s, i, latents, et, n)) goto done;
        if (history) memcpy(history + (size_t)i * (size_t)n, latents, sizeof(float) * (size_t)n);
        if (cb) cb(ud, i, s->n_steps, t, latents);
    }
    rc = 0;
done:
    if (rc) sx_err_prefix("sampling (edit): ");
    free(x);
    free(et);
    return rc;
}

/* ======================================================================
 * torch.randn on a CPU generator (PyTorch 2.0.1)
 * ====================================================================== */
typedef struct mt19937 {
    uint32_t st[624];
    int left, next;
} mt19937;

static void mt_seed(mt19937 *m, uint64_t seed) {
    m->st[0] = (uint32_t)(seed & 0xffffffffu);
    for (uint32_t j = 1; j < 624; j++)
        m->st[j] = 1812433253u * (m->st[j - 1] ^ (m->st[j - 1] >> 30)) + j;
    m->left = 1;
    m->next = 0;
}

static uint32_t mt_twist(uint32_t u, uint32_t v) {
    return (((u & 0x80000000u) | (v & 0x7fffffffu)) >> 1) ^ ((v & 1u) ? 0x9908b0dfu : 0u);
}

static uint32_t mt_next(mt19937 *m) {
    if (--m->left == 0) {
        /* regenerate the 624-word state */
        for (int j = 0; j < 624; j++)
            m->st[j] = m->st[(j + 397) % 624] ^ mt_twist(m->st[j], m->st[(j + 1) % 624]);
        m->left = 624;
        m->next = 0;
    }
    uint32_t y = m->st[m->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static float bits_f(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}
static uint32_t f_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

/* Scalar transcriptions of the Cephes-derived log / sincos approximations that
 * PyTorch's AVX2 normal kernel uses (ATen avx_mathfun.h). The wheel's compiler
 * fuses each multiply feeding an add into an FMA (GCC contracts the _mm256_mul_ps /
 * _mm256_add_ps pairs built with -mfma); fmaf() reproduces that, so the results
 * are bit-identical (verified against torch.randn in tests/test_sampler.c). */
static float cephes_logf(float x) {
    int invalid = !(x > 0.0f);
    if (x < bits_f(0x00800000u)) x = bits_f(0x00800000u); /* cut denormals */
    uint32_t b = f_bits(x);
    int32_t ei = (int32_t)(b >> 23) - 0x7f;
    x = bits_f((b & ~0x7f800000u) | f_bits(0.5f)); /* mantissa in [0.5, 1) */
    float e = (float)ei + 1.0f;
    int lt = x < (float)0.707106781186547524;
    float tmp = lt ? x : 0.0f;
    x = x - 1.0f;
    e = e - (lt ? 1.0f : 0.0f);
    x = x + tmp;
    float z = x * x;
    static const float p[9] = {(float)7.0376836292E-2, (float)-1.1514610310E-1, (float)1.1676998740E-1,
                               (float)-1.2420140846E-1, (float)1.4249322787E-1, (float)-1.6668057665E-1,
                               (float)2.0000714765E-1, (float)-2.4999993993E-1, (float)3.3333331174E-1};
    float y = p[0];
    for (int k = 1; k < 9; k++) y = fmaf(y, x, p[k]);
    y = y * x;
    y = fmaf(y, z, e * (float)-2.12194440e-4);
    y = fmaf(-z, 0.5f, y);
    x = fmaf(e, 0.693359375f, x + y);
    return invalid ? NAN : x;
}

static void cephes_sincosf(float x, float *s, float *c) {
    uint32_t sign_sin = f_bits(x) & 0x80000000u;
    x = fabsf(x);
    float y = x * (float)1.27323954473516; /* 4/pi */
    int32_t j = (int32_t)y;                /* truncation */
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sin = (uint32_t)(j & 4) << 29;
    int poly = (j & 2) == 0;
    /* extended-precision range reduction x -= j * pi/4 */
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, (float)-2.4187564849853515625e-4, x);
    x = fmaf(y, (float)-3.77489497744594108e-8, x);
    uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
    sign_sin ^= swap_sin;
    float z = x * x;
    float yc = (float)2.443315711809948E-005; /* cos polynomial */
    yc = fmaf(yc, z, (float)-1.388731625493765E-003);
    yc = fmaf(yc, z, (float)4.166664568298827E-002);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;
    float ys = (float)-1.9515295891E-4; /* sin polynomial */
    ys = fmaf(ys, z, (float)8.3321608736E-3);
    ys = fmaf(ys, z, (float)-1.6666654611E-1);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    float ysin2 = poly ? ys : 0.0f, ysin1 = poly ? 0.0f : yc;
    ys = ys - ysin2;
    yc = yc - ysin1;
    *s = bits_f(f_bits(ysin1 + ysin2) ^ sign_sin);
    *c = bits_f(f_bits(yc + ys) ^ sign_cos);
}

static void normal16(float *d) {
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j], u2 = d[j + 8];
        float r = sqrtf(-2.0f * cephes_logf(u1));
        float th = two_pi * u2, sn, cs;
        cephes_sincosf(th, &sn, &cs);
        d[j] = r * cs;
        d[j + 8] = r * sn;
    }
}

int sx_randn_torch_cpu(float *y, int64_t n, uint64_t seed) {
    if (!y || n < 0) return sx_err("sx_randn_torch_cpu: bad argument");
    mt19937 *m = sx_malloc(sizeof *m, "mt19937");
    if (!m) return -1;
    mt_seed(m, seed);
    if (n >= 16) {
        /* 24-bit uniforms for every element, Box-Muller per block of 16; the last
         * n % 16 values come from 16 fresh uniforms transformed in place */
        for (int64_t i = 0; i < n; i++) y[i] = (float)((double)(mt_next(m) & 0xffffffu) / 16777216.0);
        for (int64_t i = 0; i + 16 <= n; i += 16) normal16(y + i);
        if (n % 16) {
            float *d = y + n - 16;
            for (int i = 0; i < 16; i++) d[i] = (float)((double)(mt_next(m) & 0xffffffu) / 16777216.0);
            normal16(d);
        }
    } else {
        /* at::normal_distribution<double>: pairs (r cos, r sin), the second cached */
        int have = 0;
        double cached = 0;
        for (int64_t i = 0; i < n; i++) {
            if (have) {
                y[i] = (float)cached;
                have = 0;
                continue;
            }
            double u[2];
            for (int k = 0; k < 2; k++) {
                uint64_t hi = mt_next(m), lo = mt_next(m);
                uint64_t r64 = (hi << 32) | lo;
                u[k] = (double)(r64 & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
            }
            double r = sqrt(-2.0 * log1p(-u[1]));
            double th = 2.0 * 3.14159265358979323846 * u[0];
            cached = r * sin(th);
            have = 1;
            y[i] = (float)(r * cos(th));
        }
    }
    free(m);
    return 0;
}

/* ======================================================================
 * torch.randn on a CUDA generator: Philox4x32-10 + curand Box-Muller
 * ====================================================================== */
static void philox10(uint32_t ctr[4], uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * ctr[0], p1 = (uint64_t)0xCD9E8D57u * ctr[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ ctr[1] ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ ctr[3] ^ k1;
        ctr[1] = (uint32_t)p1;
        ctr[3] = (uint32_t)p0;
        ctr[0] = n0;
        ctr[2] = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

int sx_randn_torch_cuda_range(float *y, int64_t n, int64_t first, int64_t count, uint64_t seed,
                              int64_t cuda_threads) {
    if (!y || n < 0 || first < 0 || count < 0 || first + count > n || cuda_threads < 0)
        return sx_err("sx_randn_torch_cuda: bad argument");
    if (count == 0) return 0;
    /* torch: blocks of 256 threads, grid = min(ceil(n/256), resident blocks); thread idx
     * uses Philox subsequence idx; its k-th curand_normal4 call (counter k) yields 4 values
     * for elements idx + stride*(4k + ii), ii = 0..3 (sin/cos of (x,y), sin/cos of (z,w)) */
    int64_t blocks = (n + 255) / 256;
    if (cuda_threads > 0 && cuda_threads / 256 < blocks) blocks = cuda_threads / 256 > 0 ? cuda_threads / 256 : 1;
    int64_t stride = blocks * 256;
    const float inv = 2.3283064e-10f, inv2pi = 2.3283064e-10f * 6.2831855f;
    for (int64_t e = first; e < first + count; e++) {
        int64_t th = e % stride, q = e / stride, k = q / 4;
        int ii = (int)(q % 4);
        uint32_t ctr[4] = {(uint32_t)k, (uint32_t)((uint64_t)k >> 32), (uint32_t)th,
                           (uint32_t)((uint64_t)th >> 32)};
        philox10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
        uint32_t a = ii < 2 ? ctr[0] : ctr[2], b = ii < 2 ? ctr[1] : ctr[3];
        /* curand's Box-Muller (u, v from the 32-bit words; nvcc fuses x*a+b) */
        float u = fmaf((float)a, inv, inv / 2.0f);
        float v = fmaf((float)b, inv2pi, inv2pi / 2.0f);
        float s = sqrtf(-2.0f * logf(u));
        y[e - first] = (ii % 2 == 0 ? sinf(v) : cosf(v)) * s;
    }
    return 0;
}

int sx_randn_torch_cuda(float *y, int64_t n, uint64_t seed, int64_t cuda_threads) {
    return sx_randn_torch_cuda_range(y, n, 0, n, seed, cuda_threads);
}

int sx_rng_parse(const char *name, int *kind) {
    if (!name || !kind) return sx_err("sx_rng_parse: NULL argument");
    if (!strcmp(name, "torch-cpu")) {
        *kind = SX_RNG_TORCH_CPU;
        return 0;
    }
    if (!strcmp(name, "torch-cuda")) {
        *kind = SX_RNG_TORCH_CUDA;
        return 0;
    }
    return sx_err("unknown --rng '%s' (torch-cpu or torch-cuda)", name);
}

int sx_randn(float *y, int64_t n, uint64_t seed, int kind) {
    if (kind == SX_RNG_TORCH_CPU) return sx_randn_torch_cpu(y, n, seed);
    if (kind == SX_RNG_TORCH_CUDA) return sx_randn_torch_cuda(y, n, seed, 0);
    return sx_err("sx_randn: unknown generator %d", kind);
}
