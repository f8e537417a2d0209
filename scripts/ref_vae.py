"""PyTorch reference for vae.c: diffusers 0.25.0 AutoencoderKL, run the way
the SDXL / SEED-X pipelines run it (float32).

    load_vae(folder)                 -> AutoencoderKL (eval, float32)
    decode(vae, latents, tiling, tile) -> image [3, H, W] float32 (latents are the
                                        pipeline's scaled latents; / scaling_factor here;
                                        tile = tile size in pixels, 0 = config sample_size)
    encode(vae, image, tiling, tile) -> (mean, logvar) [4, h, w] (logvar clamped)
    postprocess(image)               -> uint8 [H, W, 3] via VaeImageProcessor
    run(vae, latents=None, image=None) -> {module path: output ndarray} from forward
                                        hooks (names match the C trace names)
    resnet_sxrand / attn_sxrand      -> single real-shape layers with sxrand weights
                                        (the C tests rebuild the same weights)
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sxrand  # noqa: E402


def load_vae(folder):
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(folder, torch_dtype=torch.float32)
    return vae.eval()


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]


def _set_tile(vae, tile):
    """tile: pixels per tile (0 = the config's sample_size, diffusers' default)."""
    ss = vae.config.sample_size
    ss = ss[0] if isinstance(ss, (list, tuple)) else ss
    t = tile or ss
    vae.tile_sample_min_size = t
    vae.tile_latent_min_size = int(t / (2 ** (len(vae.config.block_out_channels) - 1)))


@torch.no_grad()
def decode(vae, latents, tiling=False, tile=0):
    vae.use_tiling = bool(tiling)
    _set_tile(vae, tile)
    z = _t(latents) / vae.config.scaling_factor
    shift = getattr(vae.config, "shift_factor", None)
    if shift is not None:
        z = z + shift
    out = vae.decode(z, return_dict=False)[0]
    vae.use_tiling = False
    return out[0].numpy()


@torch.no_grad()
def encode(vae, image, tiling=False, tile=0):
    vae.use_tiling = bool(tiling)
    _set_tile(vae, tile)
    post = vae.encode(_t(image)).latent_dist
    vae.use_tiling = False
    return post.mode()[0].numpy(), post.logvar[0].numpy()


def postprocess(image):
    from diffusers.image_processor import VaeImageProcessor
    pil = VaeImageProcessor().postprocess(_t(image), output_type="pil")[0]
    return np.array(pil)


@torch.no_grad()
def run(vae, latents=None, image=None):
    """Forward hooks on every submodule; returns {name: output}."""
    outs, hooks = {}, []
    for name, m in vae.named_modules():
        if not name:
            continue

        def hook(mod, inp, out, name=name):
            if isinstance(out, torch.Tensor):
                outs[name] = out.detach().float().numpy().copy()
        hooks.append(m.register_forward_hook(hook))
    try:
        if latents is not None:
            outs["vae.decode.z"] = (_t(latents) / vae.config.scaling_factor).numpy()
            decode(vae, latents)
        if image is not None:
            encode(vae, image)
    finally:
        for h in hooks:
            h.remove()
    return outs


# ---------------------------------------------------------------- sxrand layers
# Weight k of a layer built from base seed s uses stream s + k; conv / linear
# weights are uniform(-a, a) with a = sqrt(3 / fan_in) (float32 of the double
# sqrt), norm weights uniform(0.5, 1.5), biases uniform(-0.1, 0.1).
def _bound(fan_in):
    return float(np.float32(np.sqrt(3.0 / fan_in)))


def _fill(p, seed, lo, hi):
    v = sxrand.uniform(p.numel(), seed, lo, hi).reshape(p.shape)
    p.data.copy_(torch.from_numpy(v))


def resnet_sxrand(cin, cout, seed, groups=32, eps=1e-6):
    from diffusers.models.resnet import ResnetBlock2D
    r = ResnetBlock2D(in_channels=cin, out_channels=cout, temb_channels=None, eps=eps, groups=groups,
                      dropout=0.0, time_embedding_norm="default", non_linearity="silu",
                      output_scale_factor=1.0, pre_norm=True).eval()
    _fill(r.norm1.weight, seed + 0, 0.5, 1.5)
    _fill(r.norm1.bias, seed + 1, -0.1, 0.1)
    a = _bound(cin * 9)
    _fill(r.conv1.weight, seed + 2, -a, a)
    _fill(r.conv1.bias, seed + 3, -0.1, 0.1)
    _fill(r.norm2.weight, seed + 4, 0.5, 1.5)
    _fill(r.norm2.bias, seed + 5, -0.1, 0.1)
    a = _bound(cout * 9)
    _fill(r.conv2.weight, seed + 6, -a, a)
    _fill(r.conv2.bias, seed + 7, -0.1, 0.1)
    if r.conv_shortcut is not None:
        a = _bound(cin)
        _fill(r.conv_shortcut.weight, seed + 8, -a, a)
        _fill(r.conv_shortcut.bias, seed + 9, -0.1, 0.1)
    return r


def attn_sxrand(C, seed, groups=32, eps=1e-6):
    from diffusers.models.attention_processor import Attention
    a = Attention(C, heads=1, dim_head=C, rescale_output_factor=1.0, eps=eps, norm_num_groups=groups,
                  spatial_norm_dim=None, residual_connection=True, bias=True, upcast_softmax=True,
                  _from_deprecated_attn_block=True).eval()
    _fill(a.group_norm.weight, seed + 0, 0.5, 1.5)
    _fill(a.group_norm.bias, seed + 1, -0.1, 0.1)
    b = _bound(C)
    for k, lin in enumerate([a.to_q, a.to_k, a.to_v, a.to_out[0]]):
        _fill(lin.weight, seed + 2 + 2 * k, -b, b)
        _fill(lin.bias, seed + 3 + 2 * k, -0.1, 0.1)
    return a
