"""Scheduler fixtures -> tests/fixtures/sampler/ (diffusers 0.25.0, PyTorch 2.0.1).

sched_<config>.gguf  a scheduler config as convert_unet.py stores it (seedx.scheduler.*) and, for
                     EulerDiscreteScheduler and DPMSolverMultistepScheduler.from_config(that config)
                     with use_karras_sigmas off / on, the timesteps, sigmas and init_noise_sigma of
                     set_timesteps(n) for several n. Configs: sdxl (SDXL base: scaled_linear,
                     leading, steps_offset 1), linspace, trailing (with use_karras_sigmas true in the
                     config), linear_leading0 (linear betas 0.0001..0.02, leading, steps_offset 0).
steps.gguf           scheduler steps alone (SDXL config): scheduler.step() fed given random model
                     outputs, the latents after every step, for DPM-Solver++(2M) (Karras off / on,
                     1..20 steps: first-order start, lower_order_final below 15 steps, the repeated
                     last Karras sigma) and Euler with Karras sigmas.
loops.gguf           the SDXL 2-way CFG loop and the SEED-X 3-way edit loop (ref_unet.cfg_loop /
                     edit_loop, the pipelines' loop math) with DPM-Solver++(2M) on the tiny UNets of
                     tests/fixtures/unet/ (4-channel; 8-channel = base + overlay) at an 8x8 latent,
                     4/10/20 steps, Karras off / on, plus Euler with Karras sigmas (4 steps):
                     latents after every step.
The tiny UNets are read back from tests/fixtures/unet/*.gguf (made by fixtures_unet.py, run first
if they are missing), so the reference runs exactly the weights and scheduler config the C code
loads.
"""
import os
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from sxgguf import F64, write_gguf  # noqa: E402
import ref_unet  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "sampler")
UNET = os.path.join(ROOT, "tests", "fixtures", "unet")

CONFIGS = {
    "sdxl": dict(ref_unet.SDXL_SCHEDULER),
    "linspace": dict(ref_unet.SDXL_SCHEDULER, timestep_spacing="linspace", steps_offset=0),
    "trailing": dict(ref_unet.SDXL_SCHEDULER, timestep_spacing="trailing", use_karras_sigmas=True),
    "linear_leading0": dict(ref_unet.SDXL_SCHEDULER, beta_schedule="linear", beta_start=0.0001,
                            beta_end=0.02, steps_offset=0),
}
SCHED_STEPS = [1, 2, 3, 4, 7, 10, 14, 15, 20, 25, 48, 50, 100]


def euler(cfg, karras):
    from diffusers import EulerDiscreteScheduler
    return EulerDiscreteScheduler(**dict(cfg, use_karras_sigmas=karras))


def dpm(cfg, karras):
    """What `DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=...)`
    builds from an SDXL pipeline's Euler config: DPM's own options keep their defaults."""
    from diffusers import DPMSolverMultistepScheduler
    s = DPMSolverMultistepScheduler.from_config(euler(cfg, False).config, use_karras_sigmas=karras)
    c = s.config
    assert (c.algorithm_type, c.solver_order, c.solver_type, c.lower_order_final, c.euler_at_final) == \
        ("dpmsolver++", 2, "midpoint", True, False)
    return s


MAKERS = {"euler": euler, "dpm": dpm}


def sched_meta(cfg):
    """seedx.scheduler.* as convert_unet.py writes them (floats as float64 here)."""
    m = {"seedx.scheduler.class": "EulerDiscreteScheduler"}
    for k, v in cfg.items():
        m["seedx.scheduler." + k] = F64(v) if isinstance(v, float) else v
    return m


def sched_fixtures():
    for name, cfg in CONFIGS.items():
        T, meta = [], dict(sched_meta(cfg), **{"seedx.fixture": "sampler.sched",
                                               "seedx.fixture.torch": torch.__version__})
        meta["fixture.steps"] = SCHED_STEPS
        for kind, make in MAKERS.items():
            for k in (0, 1):
                for n in SCHED_STEPS:
                    s = make(cfg, bool(k))
                    s.set_timesteps(n)
                    ts = s.timesteps.numpy().astype(np.float32)
                    if len(ts) != n or len(s.sigmas) != n + 1:
                        raise SystemExit(f"{name} {kind} karras={k} n={n}: {len(ts)} timesteps")
                    tag = f"{kind}.k{k}.{n}"
                    T.append((tag + ".timesteps", ts, "f32"))
                    T.append((tag + ".sigmas", s.sigmas.numpy().astype(np.float32), "f32"))
                    T.append((tag + ".init_noise_sigma", np.asarray([float(s.init_noise_sigma)], np.float32), "f32"))
        write_gguf(os.path.join(OUT, f"sched_{name}.gguf"), meta, T)
    check_rejected()


def check_rejected():
    """Step counts diffusers 0.25 cannot run, which sampler.c refuses (tests/test_sampler.c):
    numpy's arange gives trailing spacing n + 1 timesteps for some n (61: the last one is -1), and
    DPM's leading spacing with n >= num_train_timesteps repeats one timestep (step() then starts at
    its second occurrence and runs past the end)."""
    cfg = CONFIGS["sdxl"]
    for kind, make in MAKERS.items():
        s = make(dict(cfg, timestep_spacing="trailing"), False)
        s.set_timesteps(61)
        if len(s.timesteps) != 62 or float(s.timesteps[-1]) != -1:
            raise SystemExit(f"{kind} trailing 61: expected 62 timesteps ending at -1")
    s = dpm(cfg, False)
    s.set_timesteps(1000)
    if not bool((s.timesteps == s.timesteps[0]).all()):
        raise SystemExit("dpm leading 1000: expected one repeated timestep")


def step_fixtures():
    rng = np.random.default_rng(11)
    T, meta = [], {"seedx.fixture": "sampler.steps", "seedx.fixture.torch": torch.__version__}
    cases = [("dpm", k, n) for k in (0, 1) for n in (1, 2, 3, 4, 14, 15, 20)] + \
            [("euler", 1, n) for n in (4, 20)]
    meta["fixture.cases"] = [f"{kind}.k{k}.{n}" for kind, k, n in cases]
    for kind, k, n in cases:
        s = MAKERS[kind](ref_unet.SDXL_SCHEDULER, bool(k))
        s.set_timesteps(n)
        x = torch.from_numpy((rng.standard_normal(64) * float(s.init_noise_sigma)).astype(np.float32))
        eps = (rng.standard_normal((n, 64))).astype(np.float32)
        tag = f"{kind}.k{k}.{n}"
        T.append((tag + ".x", x.numpy().copy(), "f32"))
        T.append((tag + ".eps", eps, "f32"))
        hist = []
        for i, t in enumerate(s.timesteps):
            s.scale_model_input(x, t)  # Euler asks for it before step(); it changes nothing here
            x = s.step(torch.from_numpy(eps[i]), t, x, return_dict=False)[0]
            hist.append(x.numpy().copy())
        T.append((tag + ".latents", np.stack(hist), "f32"))
    write_gguf(os.path.join(OUT, "steps.gguf"), meta, T)


def load_unets():
    base = os.path.join(UNET, "tiny_unet.gguf")
    over = os.path.join(UNET, "tiny_unet8_overlay.gguf")
    if not (os.path.exists(base) and os.path.exists(over)):
        r = subprocess.run([sys.executable, os.path.join(HERE, "fixtures_unet.py")], cwd=ROOT)
        if r.returncode != 0:
            raise SystemExit("fixtures_unet.py failed")
    m4 = ref_unet.load_unet(base)
    from diffusers import UNet2DConditionModel
    meta_o, ov = ref_unet.read_gguf(over)
    meta_b, tb = ref_unet.read_gguf(base)
    tb.update(ov)
    m8 = UNet2DConditionModel(**ref_unet._config_from_gguf(meta_o))
    m8.load_state_dict({k: torch.from_numpy(v) for k, v in tb.items()}, strict=True)
    sched_cfg = {k[len("seedx.scheduler."):]: v for k, v in meta_b.items()
                 if k.startswith("seedx.scheduler.") and k != "seedx.scheduler.class"}
    for k in ("use_karras_sigmas", "rescale_betas_zero_snr"):
        sched_cfg[k] = bool(sched_cfg[k])
    return m4, m8.eval(), sched_cfg, meta_b["seedx.unet.cross_attention_dim"]


def loop_fixtures():
    m4, m8, cfg, cross = load_unets()
    rng = np.random.default_rng(5)
    T, meta = [], {"seedx.fixture": "sampler.loops", "seedx.fixture.torch": torch.__version__}

    def add(name, a):
        T.append((name, np.ascontiguousarray(np.asarray(a, np.float32)), "f32"))

    h = w = 8
    gs, igs = 7.5, 1.5
    meta.update({"loop.gs": gs, "loop.igs": igs, "loop.h": h, "loop.w": w, "loop.T": 9})
    tids = np.asarray([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]], np.float32)
    add("time_ids", tids[0])
    conds = {}
    for tag in ("cond", "uncond"):
        ctx = rng.standard_normal((1, 9, cross)).astype(np.float32)
        pooled = rng.standard_normal((1, 32)).astype(np.float32)
        add(tag + ".ctx", ctx[0])
        add(tag + ".pooled", pooled[0])
        conds[tag] = (ctx, pooled, tids)
    noise = rng.standard_normal((1, 4, h, w)).astype(np.float32)
    img = rng.standard_normal((1, 4, h, w)).astype(np.float32)
    add("noise", noise[0])
    add("image_latent", img[0])
    cases = [("dpm", k, n) for k in (0, 1) for n in (4, 10, 20)] + [("euler", 1, 4)]
    meta["fixture.cases"] = [f"{kind}.k{k}.{n}" for kind, k, n in cases]
    for kind, k, n in cases:
        def sched():
            s = MAKERS[kind](cfg, bool(k))
            s.set_timesteps(n)
            return s
        tag = f"{kind}.k{k}.{n}"
        add(f"cfg.{tag}.latents",
            ref_unet.cfg_loop(m4, sched(), noise, conds["cond"], conds["uncond"], gs)[:, 0])
        add(f"edit.{tag}.latents",
            ref_unet.edit_loop(m8, sched(), noise, conds["cond"], conds["uncond"], img, gs, igs)[:, 0])
    write_gguf(os.path.join(OUT, "loops.gguf"), meta, T)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    sched_fixtures()
    step_fixtures()
    loop_fixtures()


if __name__ == "__main__":
    main()
