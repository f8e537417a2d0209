"""PyTorch reference for unet.c / sampler.c (diffusers 0.25.0).

    load_unet(path)              -> UNet2DConditionModel (float32, eval) from a diffusers unet
                                    folder, or from one of our .gguf files (tensors + seedx.unet.*)
    run_unet(unet, sample, t, ctx, pooled, time_ids, hooks=True)
                                 -> (eps [B,C,h,w] ndarray, {module_path: output ndarray})
    euler(n_steps, sched_cfg)    -> EulerDiscreteScheduler with timesteps set
    cfg_loop(...) / edit_loop(...) -> latents after every step, with the SDXL pipeline's loop math
                                    (2-way [uncond, cond]) and the SEED-X edit pipeline's (3-way
                                    [text, image, uncond] guidance in x0 space).

Traced module paths are diffusers' own (conv_in, time_embedding, add_embedding,
down_blocks.1.attentions.0.transformer_blocks.0, mid_block, up_blocks.2.resnets.1,
conv_norm_out, conv_out, ...); unet.c writes the same names with SEEDX_TRACE=dir.
"""
import json
import os

import numpy as np
import torch

TRACED = ("conv_in", "time_embedding", "add_embedding", "mid_block", "conv_norm_out", "conv_out")


def _traced(name):
    if name in TRACED:
        return True
    parts = name.split(".")
    # down_blocks.i / up_blocks.i, their resnets.j / attentions.j / {down,up}samplers.0,
    # attentions.j.transformer_blocks.k, mid_block.{resnets,attentions}.j
    if parts[0] in ("down_blocks", "up_blocks"):
        return len(parts) in (2, 4) or (len(parts) == 6 and parts[4] == "transformer_blocks")
    if parts[0] == "mid_block":
        return len(parts) == 3 or (len(parts) == 5 and parts[3] == "transformer_blocks")
    return False


def _config_from_gguf(meta):
    def g(k, d=None):
        return meta.get("seedx.unet." + k, d)
    cfg = dict(
        in_channels=g("in_channels"), out_channels=g("out_channels"), sample_size=g("sample_size") or None,
        block_out_channels=tuple(g("block_out_channels")), down_block_types=tuple(g("down_block_types")),
        up_block_types=tuple(g("up_block_types")), mid_block_type=g("mid_block_type"),
        layers_per_block=g("layers_per_block"), transformer_layers_per_block=tuple(g("transformer_layers_per_block")),
        attention_head_dim=tuple(g("num_attention_heads")), cross_attention_dim=g("cross_attention_dim"),
        use_linear_projection=bool(g("use_linear_projection")), norm_num_groups=g("norm_num_groups"),
        norm_eps=g("norm_eps"), flip_sin_to_cos=bool(g("flip_sin_to_cos")), freq_shift=g("freq_shift"),
        conv_in_kernel=g("conv_in_kernel"), conv_out_kernel=g("conv_out_kernel"),
        downsample_padding=g("downsample_padding"))
    if g("addition_embed_type"):
        cfg.update(addition_embed_type=g("addition_embed_type"), addition_time_embed_dim=g("addition_time_embed_dim"),
                   projection_class_embeddings_input_dim=g("projection_class_embeddings_input_dim"))
    return cfg


_SCAL = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q", 11: "<q", 12: "<d"}


def read_gguf(path):
    """Minimal GGUF v3 reader: (metadata dict, {name: float32 ndarray in PyTorch order})."""
    import struct
    buf = open(path, "rb").read()
    o = 0

    def rd(fmt):
        nonlocal o
        v = struct.unpack_from(fmt, buf, o)
        o += struct.calcsize(fmt)
        return v[0]

    def rs():
        n = rd("<Q")
        nonlocal o
        v = buf[o:o + n].decode()
        o += n
        return v

    def val(t):
        if t == 8:
            return rs()
        if t == 9:
            et, n = rd("<I"), rd("<Q")
            return [val(et) for _ in range(n)]
        return rd(_SCAL[t])

    if rd("<I") != 0x46554747 or rd("<I") != 3:
        raise ValueError(f"{path}: not a GGUF v3 file")
    nt, nkv = rd("<Q"), rd("<Q")
    meta = {}
    for _ in range(nkv):
        k = rs()
        meta[k] = val(rd("<I"))
    infos = []
    for _ in range(nt):
        name = rs()
        nd = rd("<I")
        dims = [rd("<Q") for _ in range(nd)]
        infos.append((name, tuple(reversed(dims)), rd("<I"), rd("<Q")))
    align = int(meta.get("general.alignment", 32))
    base = (o + align - 1) // align * align
    out = {}
    for name, shape, t, off in infos:
        n = int(np.prod(shape))
        if t == 0:
            a = np.frombuffer(buf, np.float32, n, base + off)
        elif t == 1:
            a = np.frombuffer(buf, np.float16, n, base + off).astype(np.float32)
        elif t == 30:
            a = (np.frombuffer(buf, np.uint16, n, base + off).astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name} has unsupported type {t}")
        out[name] = a.reshape(shape).copy()
    return meta, out


def load_unet(path):
    from diffusers import UNet2DConditionModel
    if os.path.isdir(path):
        m = UNet2DConditionModel.from_pretrained(path, torch_dtype=torch.float32)
        return m.eval()
    meta, tens = read_gguf(path)
    m = UNet2DConditionModel(**_config_from_gguf(meta))
    m.load_state_dict({k: torch.from_numpy(v) for k, v in tens.items()}, strict=True)
    return m.eval()


def run_unet(unet, sample, t, ctx, pooled, time_ids, hooks=True):
    """sample [B,C,h,w], ctx [B,T,D], pooled [B,P], time_ids [B,6] (ndarrays); t float."""
    out = {}
    hs = []
    if hooks:
        for name, mod in unet.named_modules():
            if name and _traced(name):
                def hook(_m, _i, o, name=name):
                    if isinstance(o, tuple):
                        o = o[0]
                    if hasattr(o, "sample"):
                        o = o.sample
                    out[name] = o.detach().float().numpy().copy()
                hs.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            added = None
            if unet.config.addition_embed_type == "text_time":
                added = {"text_embeds": torch.from_numpy(np.asarray(pooled, np.float32)),
                         "time_ids": torch.from_numpy(np.asarray(time_ids, np.float32))}
            eps = unet(torch.from_numpy(np.asarray(sample, np.float32)), torch.tensor(float(t)),
                       encoder_hidden_states=torch.from_numpy(np.asarray(ctx, np.float32)),
                       added_cond_kwargs=added, return_dict=False)[0]
    finally:
        for h in hs:
            h.remove()
    return eps.numpy(), out


SDXL_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                      prediction_type="epsilon", interpolation_type="linear", timestep_spacing="leading",
                      steps_offset=1, use_karras_sigmas=False)


def euler(n_steps, cfg=None):
    from diffusers import EulerDiscreteScheduler
    s = EulerDiscreteScheduler(**(cfg or SDXL_SCHEDULER))
    s.set_timesteps(n_steps)
    return s


def cfg_loop(unet, sched, noise, cond, uncond, gs):
    """StableDiffusionXLPipeline's loop (diffusers 0.25) with given noise [1,4,h,w].
    cond/uncond = (ctx [1,T,D], pooled [1,P], time_ids [1,6]). Returns [n_steps,1,4,h,w]."""
    lat = torch.from_numpy(noise) * sched.init_noise_sigma
    ctx = torch.from_numpy(np.concatenate([uncond[0], cond[0]]))
    pooled = torch.from_numpy(np.concatenate([uncond[1], cond[1]]))
    tids = torch.from_numpy(np.concatenate([uncond[2], cond[2]]))
    outs = []
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.scale_model_input(torch.cat([lat] * 2), t)
            e = unet(x, t, encoder_hidden_states=ctx, added_cond_kwargs={"text_embeds": pooled, "time_ids": tids},
                     return_dict=False)[0]
            eu, ec = e.chunk(2)
            e = eu + gs * (ec - eu)
            lat = sched.step(e, t, lat, return_dict=False)[0]
            outs.append(lat.numpy().copy())
    return np.stack(outs)


def edit_loop(unet, sched, noise, cond, uncond, image_latent, gs, igs):
    """SEED-X StableDiffusionXLText2ImageAndEditPipeline loop: batch [text, image, uncond] =
    [(cond, image latent), (uncond, image latent), (uncond, zeros)], guidance on x0 = x - sigma*eps
    (scheduler_is_in_sigma_space), then back to eps. image_latent [1,4,h,w] or None (all zeros)."""
    lat = torch.from_numpy(noise) * sched.init_noise_sigma
    ctx = torch.from_numpy(np.concatenate([cond[0], uncond[0], uncond[0]]))
    pooled = torch.from_numpy(np.concatenate([cond[1], uncond[1], uncond[1]]))
    tids = torch.from_numpy(np.concatenate([cond[2], uncond[2], uncond[2]]))
    if image_latent is None:
        img = torch.zeros((3,) + noise.shape[1:])
    else:
        il = torch.from_numpy(image_latent)
        img = torch.cat([il, il, torch.zeros_like(il)])
    outs = []
    with torch.no_grad():
        for t in sched.timesteps:
            lmi = torch.cat([lat] * 3)
            x = torch.cat([sched.scale_model_input(lmi, t), img], dim=1)
            e = unet(x, t, encoder_hidden_states=ctx, added_cond_kwargs={"text_embeds": pooled, "time_ids": tids},
                     return_dict=False)[0]
            step_index = (sched.timesteps == t).nonzero()[0].item()
            sigma = sched.sigmas[step_index]
            e = lmi - sigma * e
            et, ei, eu = e.chunk(3)
            e = eu + gs * (et - ei) + igs * (ei - eu)
            e = (e - lat) / (-sigma)
            lat = sched.step(e, t, lat, return_dict=False)[0]
            outs.append(lat.numpy().copy())
    return np.stack(outs)


def main():
    import argparse
    ap = argparse.ArgumentParser(description="diffusers 0.25 UNet forward with module traces")
    ap.add_argument("model", help="diffusers unet folder or a seedx .gguf")
    ap.add_argument("--sample", required=True, help=".npy [C,h,w] or [1,C,h,w]")
    ap.add_argument("--ctx", required=True, help=".npy [T,D] or [1,T,D]")
    ap.add_argument("--pooled", help=".npy [P] or [1,P]")
    ap.add_argument("--t", type=float, default=500.0)
    ap.add_argument("--time-ids", default="1024,1024,0,0,1024,1024")
    ap.add_argument("--trace-out", help="write <module.path>.npy for every traced module")
    ap.add_argument("--eps-out", help="write the UNet output .npy")
    a = ap.parse_args()
    m = load_unet(a.model)
    x = np.load(a.sample).astype(np.float32)
    x = x[None] if x.ndim == 3 else x
    ctx = np.load(a.ctx).astype(np.float32)
    ctx = ctx[None] if ctx.ndim == 2 else ctx
    pooled = np.load(a.pooled).astype(np.float32).reshape(1, -1) if a.pooled else None
    tids = np.asarray([[float(v) for v in a.time_ids.split(",")]], np.float32)
    eps, tr = run_unet(m, x, a.t, ctx, pooled, tids, hooks=bool(a.trace_out))
    if a.trace_out:
        os.makedirs(a.trace_out, exist_ok=True)
        with open(os.path.join(a.trace_out, "trace_order.txt"), "w") as f:
            for k, v in tr.items():
                np.save(os.path.join(a.trace_out, k + ".npy"), v)
                f.write(k + "\n")
    if a.eps_out:
        np.save(a.eps_out, eps)
    print("eps", eps.shape, "rms %.6f" % float(np.sqrt((eps.astype(np.float64) ** 2).mean())))


if __name__ == "__main__":
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
