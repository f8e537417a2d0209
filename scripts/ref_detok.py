"""PyTorch transcription of SEED-X's ResamplerXLV2 (src/models/detokenizer/
resampler.py): PerceiverAttention with the d^-1/4 split scaling and
[x; latents] keys, FeedForward = LN, Linear (no bias), GELU, Linear (no bias),
AttentionPool2d with its mean token. build(cfg) gives the module; trace(model,
x) returns {module path: output} for scripts/compare.py."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def ffn(dim, mult):
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, int(dim * mult), bias=False), nn.GELU(),
                         nn.Linear(int(dim * mult), dim, bias=False))


class Perceiver(nn.Module):
    def __init__(self, dim, dim_head, heads):
        super().__init__()
        self.h, self.dh = heads, dim_head
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_kv = nn.Linear(dim, 2 * heads * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)

    def forward(self, x, lat):
        x, lat = self.norm1(x), self.norm2(lat)
        b, q_len, _ = lat.shape
        q = self.to_q(lat)
        k, v = self.to_kv(torch.cat([x, lat], dim=1)).chunk(2, dim=-1)
        split = lambda t: t.view(b, t.shape[1], self.h, self.dh).transpose(1, 2)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        s = 1.0 / math.sqrt(math.sqrt(self.dh))
        w = torch.softmax(((q * s) @ (k * s).transpose(-2, -1)).float(), dim=-1)
        return self.to_out((w @ v).permute(0, 2, 1, 3).reshape(b, q_len, -1))


class Pool(nn.Module):
    def __init__(self, seq, dim, heads, out):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(seq + 1, dim) / dim ** 0.5)
        self.k_proj, self.q_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.c_proj = nn.Linear(dim, out)
        self.heads = heads

    def forward(self, h):
        x = h.permute(1, 0, 2)
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0) + self.positional_embedding[:, None, :]
        o, _ = F.multi_head_attention_forward(
            query=x, key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=self.heads,
            q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight, v_proj_weight=self.v_proj.weight,
            in_proj_weight=None, in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0, out_proj_weight=self.c_proj.weight,
            out_proj_bias=self.c_proj.bias, use_separate_proj_weight=True, training=False, need_weights=False)
        return o[0]


class ResamplerXLV2(nn.Module):
    def __init__(self, dim=1024, depth=4, dim_head=64, heads=16, num_queries=64, embedding_dim=4096,
                 output1_dim=768, output2_dim=1280, ff_mult=4, normalize=False):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(1, num_queries, dim) / dim ** 0.5)
        self.normalize = normalize
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.norm_out = nn.LayerNorm(dim)
        self.layers = nn.ModuleList([nn.ModuleList([Perceiver(dim, dim_head, heads), ffn(dim, ff_mult)])
                                     for _ in range(depth)])
        self.unet_proj_1 = nn.Linear(dim, output1_dim)
        self.unet_proj_2 = nn.Linear(dim, output2_dim)
        self.unet_attnpool = Pool(num_queries, dim, heads, output2_dim)

    def forward(self, x, trace=None):
        lat = self.latents.repeat(x.size(0), 1, 1)
        if self.normalize:
            x = F.normalize(x)
        x = self.proj_in(x)
        if trace is not None:
            trace["resampler.proj_in"] = x[0]
        for i, (attn, ff) in enumerate(self.layers):
            lat = attn(x, lat) + lat
            if trace is not None:
                trace[f"resampler.layers.{i}.0"] = lat[0]
            lat = ff(lat) + lat
            if trace is not None:
                trace[f"resampler.layers.{i}.1"] = lat[0]
        h = self.norm_out(lat)
        pe = torch.cat([self.unet_proj_1(h), self.unet_proj_2(h)], dim=-1)
        pooled = self.unet_attnpool(h)
        if trace is not None:
            trace["resampler.norm_out"] = h[0]
            trace["resampler.prompt_embeds"] = pe[0]
            trace["resampler.unet_attnpool"] = pooled[0]
        return pe, pooled


def trace(model, x):
    t = {}
    with torch.no_grad():
        model(x, trace=t)
    return {k: v.detach().float().numpy() for k, v in t.items()}
