/* sampler.h - the Euler and DPM-Solver++(2M) schedulers (diffusers 0.25.0),
 * classifier-free guidance loops (SDXL 2-way, SEED-X edit 3-way) and
 * torch-compatible noise. */
#ifndef SEEDX_SAMPLER_H
#define SEEDX_SAMPLER_H

#include <stdint.h>

#include "gguf.h"
#include "unet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- schedulers ----
 * Two samplers, each exactly as diffusers 0.25.0 implements it:
 *   SX_SAMPLER_EULER    EulerDiscreteScheduler (the official SEED-X / SDXL sampler, 50 steps);
 *   SX_SAMPLER_DPMPP_2M DPMSolverMultistepScheduler with its defaults (algorithm_type
 *                       dpmsolver++, solver_order 2, solver_type midpoint, lower_order_final,
 *                       no euler_at_final), as DPMSolverMultistepScheduler.from_config() of
 *                       the container's scheduler config builds it.
 * Config from metadata seedx.scheduler.* (written by convert_unet.py --scheduler);
 * absent keys (or g == NULL) take SDXL-base-1.0's scheduler_config.json values:
 * scaled_linear betas 0.00085..0.012 over 1000 steps, epsilon prediction, linear
 * interpolation, "leading" spacing, steps_offset 1, no Karras sigmas. Supported:
 * beta_schedule linear/scaled_linear, timestep_spacing linspace/leading/trailing,
 * epsilon prediction, linear interpolation (Euler), Karras sigmas on or off (others -> error).
 * karras: SX_KARRAS_CONFIG takes the container's use_karras_sigmas, SX_KARRAS_ON / _OFF
 * override it (diffusers' from_config(config, use_karras_sigmas=...)). */
enum { SX_SAMPLER_EULER = 0, SX_SAMPLER_DPMPP_2M = 1 };
enum { SX_KARRAS_CONFIG = 0, SX_KARRAS_ON = 1, SX_KARRAS_OFF = -1 };

typedef struct sx_sched {
    int kind;   /* SX_SAMPLER_* */
    int karras; /* 1 if Karras sigmas are in use */
    int n_steps;
    float *timesteps;       /* [n_steps]: the UNet's timestep argument */
    float *sigmas;          /* [n_steps + 1]: sigma before each step, then the final one */
    float init_noise_sigma; /* initial latents = noise * init_noise_sigma */
    /* DPM-Solver++(2M) multistep state (diffusers' model_outputs / lower_order_nums) */
    int next_step;  /* the step sx_sched_step expects next */
    float *x0_prev; /* [n_state]: the previous step's data prediction */
    float *x0_cur;  /* [n_state] */
    int64_t n_state;
} sx_sched;

/* "euler" | "dpmpp2m" */
int sx_sampler_parse(const char *name, int *kind);
const char *sx_sampler_name(int kind);
int sx_sched_init(sx_sched *s, const sx_gguf *g, int n_steps, int kind, int karras);
void sx_sched_free(sx_sched *s);
/* scale_model_input for step i: Euler y = x / sqrt(sigma_i^2 + 1); DPM y = x (y may equal x) */
void sx_sched_scale_input(const sx_sched *s, int i, float *y, const float *x, int64_t n);
/* step i: x (the latents, n values) in place from the UNet's (guided) eps. Euler: any i;
 * DPM-Solver++: steps 0..n_steps-1 in order (step 0 restarts; it keeps the previous data
 * prediction of n values between steps). */
int sx_sched_step(sx_sched *s, int i, float *x, const float *eps, int64_t n);

/* Latent size of a px_h x px_w image for a VAE that downsamples by `factor` (8 for
 * SDXL): error unless both are positive multiples of factor (as diffusers' image
 * processor requires). */
int sx_latent_size(int64_t px_h, int64_t px_w, int factor, int64_t *h, int64_t *w);

/* ---- guidance loops ----
 * One conditioning: context [T, cross_dim], pooled [pooled_dim], 6 SDXL time ids
 * (orig_h, orig_w, crop_top, crop_left, target_h, target_w). */
typedef struct sx_cond {
    const float *ctx;
    int64_t T;
    const float *pooled;
    float time_ids[6];
} sx_cond;

/* Called after every step with the step index (0-based), step count, the step's
 * timestep and the latents after the step. */
typedef void (*sx_progress_fn)(void *ud, int step, int n_steps, float t, const float *latents);

/* SDXL pipeline loop: latents [4, h, w] holds the initial noise on entry (it is
 * multiplied by init_noise_sigma, as the pipeline does with given latents) and
 * the final latents on return. Each step: eps_u, eps_c = UNet(scaled x, uncond /
 * cond); eps = eps_u + gs*(eps_c - eps_u); scheduler step. gs <= 1: cond only.
 * history (optional) receives the latents after every step [n_steps, 4, h, w]. */
int sx_sample_cfg(sx_unet *u, sx_sched *s, float *latents, int64_t h, int64_t w,
                  const sx_cond *cond, const sx_cond *uncond, float gs, sx_progress_fn cb, void *ud,
                  float *history);

/* SEED-X edit pipeline loop (8-channel UNet): branches text = (cond, image latent),
 * image = (uncond, image latent), uncond = (uncond, zeros); UNet input per branch
 * = [scaled x (4 ch), image latent (4 ch)]. Guidance as the pipeline computes it
 * in x0 space: x0_k = x - sigma*eps_k; x0 = x0_u + gs*(x0_t - x0_i) + igs*(x0_i - x0_u);
 * eps = (x0 - x) / -sigma, sigma = the sigma of the first step with this step's timestep
 * (the pipeline's lookup; for DPM-Solver++ too, whose step then takes that eps).
 * image_latent NULL = zeros (no condition image).
 * Without guidance (gs <= 1 or igs < 1): one branch (cond, image latent). */
int sx_sample_edit(sx_unet *u, sx_sched *s, float *latents, int64_t h, int64_t w,
                   const sx_cond *cond, const sx_cond *uncond, const float *image_latent, float gs,
                   float igs, sx_progress_fn cb, void *ud, float *history);

/* ---- torch-compatible noise ----
 * SX_RNG_TORCH_CPU: torch.randn(n, generator=torch.Generator().manual_seed(seed))
 *   bit for bit as PyTorch 2.0.1 computes it on an x86 CPU with AVX2/AVX-512
 *   (mt19937; n >= 16: 24-bit uniforms + Box-Muller in blocks of 16 with the
 *   avx_mathfun log/sincos approximations; n < 16: double-precision Box-Muller).
 * SX_RNG_TORCH_CUDA: torch.randn(n, generator=torch.Generator('cuda').manual_seed(seed),
 *   device='cuda') for a fresh generator: a CPU port of Philox4x32-10 + curand's
 *   Box-Muller with torch's element -> (thread, call, component) mapping. The mapping
 *   depends on the GPU once n exceeds its resident threads: cuda_threads =
 *   multiProcessorCount * maxThreadsPerMultiProcessor; 0 = one wave (every GPU with
 *   >= n resident threads, e.g. any data-centre / RTX 3080+ GPU for SDXL's 65536-value
 *   latent). Checked (tests/test_sampler.c) against GPU outputs published in PyTorch
 *   issues #158398, #62467, #97097 (incl. a multi-wave RTX A4000 case) and #143086
 *   (A100 and H100 tails), printed to 4 decimals, plus the values documented in
 *   AUTOMATIC1111's modules/rng_philox.py; agreement is to float rounding, not bit-exact
 *   (the GPU's logf/sinf are not reproduced). The official pipeline draws the latent in
 *   fp16 (`seedx unet sample` rounds torch-cuda noise to fp16 likewise). */
enum { SX_RNG_TORCH_CPU = 0, SX_RNG_TORCH_CUDA = 1 };
int sx_rng_parse(const char *name, int *kind); /* "torch-cpu" | "torch-cuda" */
int sx_randn_torch_cpu(float *y, int64_t n, uint64_t seed);
int sx_randn_torch_cuda(float *y, int64_t n, uint64_t seed, int64_t cuda_threads);
/* Elements [first, first+count) of that n-element tensor into y[count]. */
int sx_randn_torch_cuda_range(float *y, int64_t n, int64_t first, int64_t count, uint64_t seed,
                              int64_t cuda_threads);
int sx_randn(float *y, int64_t n, uint64_t seed, int kind);

#ifdef __cplusplus
}
#endif
#endif
