"""PyTorch reference for vit.c: the Qwen-VL visual encoder as SEED-X uses it
(src/models/tokenizer/qwen_visual.py `VisionTransformerWithAttnPool` with its
`Resampler` attention pool), transcribed from the official code.

Module and parameter names are the official ones, so the official state dict
(qwen_vit_G.pt) loads with strict=True and forward-hook names equal the trace
names vit.c writes (SEEDX_TRACE).

    import ref_vit
    model, cfg = ref_vit.load("qwen_vit_G.pt" | "Qwen-VL-Chat/" | "vit.gguf")
    outs = ref_vit.run(model, pixels)   # {module_path: ndarray}, see run()

Layout note: the official blocks work in LND (sequence-first) layout; run()
returns every activation batch-first ([N, T, C]) so it can be diffed with the
C trace directly.
"""
import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# The CLIP normalisation of the official image_transform (preprocessing lives in
# image code; kept here for scripts that feed real images).
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)


# ----------------------------------------------------------------- positions
def get_abs_pos(table, n_tokens):
    """A [s*s, C] table resized to n_tokens = t*t rows: bicubic (A=-0.75,
    align_corners=False) in float32 on the [C, s, s] grid, row-major back."""
    s = int(math.sqrt(table.size(0)))
    t = int(math.sqrt(n_tokens))
    if s == t:
        return table
    grid = table.float().reshape(1, s, s, -1).permute(0, 3, 1, 2)
    out = F.interpolate(grid, size=(t, t), mode="bicubic", align_corners=False)
    return out.permute(0, 2, 3, 1).flatten(0, 2).to(table.dtype)


def sincos_1d(dim, pos):
    """[M] positions -> [M, dim]: sin block then cos block (float32 numpy)."""
    omega = np.arange(dim // 2, dtype=np.float32)
    omega /= dim / 2.0
    omega = 1.0 / 10000 ** omega
    ang = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=1)


def sincos_2d(dim, grid):
    """[grid*grid, dim] fixed table of the Resampler: first half encodes the
    column (x) index, second half the row index, as the official code does
    (its meshgrid puts w first)."""
    xs, ys = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))
    return np.concatenate([sincos_1d(dim // 2, xs), sincos_1d(dim // 2, ys)], axis=1)


# ----------------------------------------------------------------- resampler
class Resampler(nn.Module):
    """One cross-attention layer: grid*grid learned queries attend to the input
    tokens. Positions go on queries (fixed grid) and keys (resized), not values."""

    def __init__(self, grid_size, embed_dim, num_heads, kv_dim=None, eps=1e-5):
        super().__init__()
        self.num_queries = grid_size ** 2
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.pos_embed = nn.Parameter(torch.from_numpy(sincos_2d(embed_dim, grid_size)).float(),
                                      requires_grad=False)
        self.query = nn.Parameter(torch.zeros(self.num_queries, embed_dim))
        if kv_dim is not None and kv_dim != embed_dim:
            self.kv_proj = nn.Linear(kv_dim, embed_dim, bias=False)
        else:
            self.kv_proj = nn.Identity()
        self.attn = nn.MultiheadAttention(embed_dim, num_heads)
        self.ln_q = nn.LayerNorm(embed_dim, eps=eps)
        self.ln_kv = nn.LayerNorm(embed_dim, eps=eps)

    def forward(self, x):
        # x: [N, L, kv_dim] -> [N, Q, E]
        key_pos = get_abs_pos(self.pos_embed, x.size(1))
        kv = self.ln_kv(self.kv_proj(x)).permute(1, 0, 2)           # [L, N, E]
        n = kv.shape[1]
        q = self.ln_q(self.query).unsqueeze(1).repeat(1, n, 1)       # [Q, N, E]
        out = self.attn(q + self.pos_embed.unsqueeze(1), kv + key_pos.unsqueeze(1), kv)[0]
        return out.permute(1, 0, 2)


# ----------------------------------------------------------------- ViT
class VisualAttention(nn.Module):
    """Self-attention with a fused in_proj whose output is viewed per head as
    [q_h | k_h | v_h] (Megatron layout), not nn.MultiheadAttention's [Q;K;V]."""

    def __init__(self, width, heads):
        super().__init__()
        assert width % heads == 0
        self.heads, self.hd = heads, width // heads
        self.in_proj = nn.Linear(width, 3 * width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x):
        # x: [T, N, W]
        T, N, W = x.shape
        mixed = self.in_proj(x).view(T, N, self.heads, 3 * self.hd)
        q, k, v = mixed.split(self.hd, dim=-1)                       # [T, N, H, hd] each
        q = q.reshape(T, N * self.heads, self.hd).transpose(0, 1)    # [N*H, T, hd]
        k = k.reshape(T, N * self.heads, self.hd).transpose(0, 1)
        v = v.reshape(T, N * self.heads, self.hd).transpose(0, 1)
        p = torch.bmm(q / math.sqrt(self.hd), k.transpose(1, 2)).softmax(dim=-1)
        ctx = torch.bmm(p, v).view(N, self.heads, T, self.hd)
        ctx = ctx.permute(2, 0, 1, 3).reshape(T, N, W)               # head-major channels
        return self.out_proj(ctx)


class Block(nn.Module):
    def __init__(self, width, heads, mlp_width, eps):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=eps)
        self.ln_2 = nn.LayerNorm(width, eps=eps)
        self.attn = VisualAttention(width, heads)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, mlp_width)),
                                              ("gelu", nn.GELU()),
                                              ("c_proj", nn.Linear(mlp_width, width))]))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, mlp_width, eps):
        super().__init__()
        self.resblocks = nn.ModuleList([Block(width, heads, mlp_width, eps) for _ in range(layers)])

    def forward(self, x):
        for b in self.resblocks:
            x = b(x)
        return x


class VisionTransformerWithAttnPool(nn.Module):
    """cfg keys: image_size, patch_size, width, layers, heads, mlp_ratio,
    n_queries (256), output_dim; LayerNorm eps 1e-6 everywhere (incl. the pool),
    pool heads = output_dim // 128, MLP width = int(width * mlp_ratio)."""

    def __init__(self, image_size, patch_size, width, layers, heads, mlp_ratio, n_queries=256,
                 output_dim=512, eps=1e-6, mlp_width=None, **unused):
        super().__init__()
        self.image_size, self.patch_size = image_size, patch_size
        mlp_width = mlp_width or int(width * mlp_ratio)
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.positional_embedding = nn.Parameter(torch.zeros(256, width))
        self.ln_pre = nn.LayerNorm(width, eps=eps)
        self.transformer = Transformer(width, layers, heads, mlp_width, eps)
        self.attn_pool = Resampler(int(math.sqrt(n_queries)), output_dim, output_dim // 128,
                                   kv_dim=width, eps=eps)
        self.ln_post = nn.LayerNorm(output_dim, eps=eps)
        self.proj = nn.Parameter(torch.zeros(output_dim, output_dim))

    def forward(self, x):
        x = self.conv1(x)                                            # [N, W, g, g]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)   # [N, T, W]
        x = x + get_abs_pos(self.positional_embedding, x.size(1))
        x = self.ln_pre(x)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)   # blocks run in LND
        x = self.attn_pool(x)                                        # [N, Q, E]
        x = self.ln_post(x)
        return x @ self.proj


# ----------------------------------------------------------------- loading
def config_from_state_dict(sd, heads, image_size=448, mlp_ratio=None):
    """Sizes from tensor shapes; heads and image_size cannot be inferred."""
    w = sd["conv1.weight"]
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("transformer.resblocks."))
    return dict(image_size=image_size, patch_size=int(w.shape[2]), width=int(w.shape[0]),
                layers=layers, heads=heads, mlp_ratio=mlp_ratio or 0.0,
                mlp_width=int(sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
                n_queries=int(sd["attn_pool.query"].shape[0]), output_dim=int(sd["proj"].shape[0]))


def build(sd, cfg):
    """The module with the state dict loaded strictly (float32)."""
    m = VisionTransformerWithAttnPool(**cfg)
    m.load_state_dict({k: torch.as_tensor(np.asarray(v, dtype=np.float32)) if not torch.is_tensor(v)
                       else v.float() for k, v in sd.items()}, strict=True)
    return m.eval()


def read_gguf(path):
    """(metadata {key: scalar}, {name: float32 ndarray}) of a GGUF v3 file with
    F32/F16/BF16 tensors (the gguf 0.6.0 package rejects our u32 alignment key)."""
    import struct
    b = open(path, "rb").read()
    magic, ver, nt, nkv = struct.unpack_from("<IIQQ", b, 0)
    if magic != 0x46554747 or ver != 3:
        raise ValueError(f"{path}: not a GGUF v3 file")
    o = 24
    sz = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q", 11: "<q", 12: "<d"}

    def string(o):
        n, = struct.unpack_from("<Q", b, o)
        return b[o + 8:o + 8 + n].decode("utf-8"), o + 8 + n

    def value(t, o):
        if t == 8:
            return string(o)
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, o)
            o += 12
            items = []
            for _ in range(n):
                v, o = value(et, o)
                items.append(v)
            return items, o
        v, = struct.unpack_from(sz[t], b, o)
        return v, o + struct.calcsize(sz[t])
    meta = {}
    for _ in range(nkv):
        k, o = string(o)
        t, = struct.unpack_from("<I", b, o)
        meta[k], o = value(t, o + 4)
    infos = []
    for _ in range(nt):
        name, o = string(o)
        nd, = struct.unpack_from("<I", b, o)
        dims = struct.unpack_from(f"<{nd}Q", b, o + 4)
        t, off = struct.unpack_from("<IQ", b, o + 4 + 8 * nd)
        o += 4 + 8 * nd + 12
        infos.append((name, tuple(reversed(dims)), t, off))
    al = int(meta.get("general.alignment", 32))
    base = (o + al - 1) // al * al
    out = {}
    for name, shape, t, off in infos:
        n = int(np.prod(shape))
        if t == 0:
            a = np.frombuffer(b, "<f4", n, base + off)
        elif t == 1:
            a = np.frombuffer(b, "<f2", n, base + off).astype(np.float32)
        elif t == 30:
            a = (np.frombuffer(b, "<u2", n, base + off).astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: tensor '{name}' has unsupported type {t}")
        out[name] = np.array(a, dtype=np.float32).reshape(shape)
    return meta, out


def load(src, heads=None, image_size=None):
    """src: qwen_vit_G.pt, a Qwen-VL-Chat folder, or a vit GGUF from our converter."""
    if src.endswith(".gguf"):
        meta, tensors = read_gguf(src)
        cfg = dict(image_size=int(meta["seedx.vit.image_size"]), patch_size=int(meta["seedx.vit.patch_size"]),
                   width=int(meta["seedx.vit.width"]), layers=int(meta["seedx.vit.layers"]),
                   heads=int(meta["seedx.vit.heads"]), mlp_ratio=0.0,
                   mlp_width=int(meta["seedx.vit.mlp_width"]), n_queries=int(meta["seedx.vit.n_queries"]),
                   output_dim=int(meta["seedx.vit.output_dim"]), eps=float(meta["seedx.vit.ln_eps"]))
        return build(tensors, cfg), cfg
    import convert_vit
    tensors, cfg = convert_vit.read_source(src, heads=heads, image_size=image_size)
    sd = {k: t.load() for k, t in tensors.items()}
    cfg = {k: cfg[k] for k in ("image_size", "patch_size", "width", "layers", "heads",
                               "mlp_ratio", "mlp_width", "n_queries", "output_dim")}
    return build(sd, cfg), cfg


# ----------------------------------------------------------------- running
def _batch_first(name, y):
    if isinstance(y, tuple):
        y = y[0]
    y = y.detach().float()
    if name.startswith("transformer.") or name == "attn_pool.attn":
        y = y.transpose(0, 1)  # LND -> NLD
    return y.contiguous().numpy()


TRACED = ("conv1", "ln_pre", "attn_pool", "attn_pool.kv_proj", "attn_pool.ln_kv",
          "attn_pool.attn", "ln_post")


def run(model, pixels, blocks_detail=True):
    """pixels [N, 3, S, S] -> {module_path: ndarray}: conv1 [N,W,g,g], ln_pre,
    transformer.resblocks.i (+ .attn, .mlp) [N,T,W], attn_pool.* , ln_post,
    and 'output' [N, Q, output_dim]."""
    outs, hooks = {}, []
    names = list(TRACED)
    for i in range(len(model.transformer.resblocks)):
        names.append(f"transformer.resblocks.{i}")
        if blocks_detail:
            names += [f"transformer.resblocks.{i}.attn", f"transformer.resblocks.{i}.mlp"]
    mods = dict(model.named_modules())
    for n in names:
        hooks.append(mods[n].register_forward_hook(
            lambda m, i, o, n=n: outs.__setitem__(n, _batch_first(n, o))))
    try:
        with torch.no_grad():
            y = model(torch.as_tensor(np.asarray(pixels, dtype=np.float32)))
    finally:
        for h in hooks:
            h.remove()
    outs["output"] = y.float().numpy()
    return outs


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(description="run the reference ViT on random pixels")
    p.add_argument("src")
    p.add_argument("--size", type=int, default=None)
    a = p.parse_args()
    m, c = load(a.src)
    s = a.size or c["image_size"]
    x = np.random.default_rng(0).standard_normal((1, 3, s, s)).astype(np.float32)
    o = run(m, x, blocks_detail=False)["output"]
    print(o.shape, float(o.mean()), float(o.std()))
