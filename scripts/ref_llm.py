"""PyTorch reference for llama.c.

load(folder)          -> the reference model for a Hugging Face Llama folder:
                         transformers 4.30.2 LlamaForCausalLM when it can express the
                         config (plain multi-head attention, theta 10000), else RefLlama.
RefLlama(cfg, sd)     -> a plain transcription of 4.30.2's LlamaForCausalLM math that also
                         does grouped-query attention (k/v heads repeated, as later
                         transformers versions do) and any rope theta. Module names follow
                         the HF ones, so traces compare one to one.
run(model, ids=None, embeds=None) -> {module_path: ndarray} for model.embed_tokens (the
                         input embeddings), model.layers.i(.self_attn/.mlp), model.norm
                         (= hidden_states[-1]) and lm_head, via forward hooks.
decoder_layer(cfg)    -> one RefLlama decoder layer (for real-shape single-layer tests).
"""
import json
import math
import os

import numpy as np
import torch
from torch import nn


def read_cfg(folder):
    with open(os.path.join(folder, "config.json")) as f:
        c = json.load(f)
    return dict(hidden=c["hidden_size"], layers=c["num_hidden_layers"], heads=c["num_attention_heads"],
                kv_heads=c.get("num_key_value_heads") or c["num_attention_heads"],
                ffn=c["intermediate_size"], vocab=c["vocab_size"], eps=c.get("rms_norm_eps", 1e-6),
                theta=c.get("rope_theta", 10000.0), max_pos=c.get("max_position_embeddings", 2048))


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rope_cos_sin(hd, theta, n, device=None):
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2).float() / hd))
    t = torch.arange(n, dtype=inv.dtype)
    f = torch.einsum("i,j->ij", t, inv)
    e = torch.cat((f, f), dim=-1)
    return e.cos(), e.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, H, KV = cfg["hidden"], cfg["heads"], cfg["kv_heads"]
        self.H, self.KV, self.hd, self.theta = H, KV, D // H, cfg["theta"]
        self.q_proj = nn.Linear(D, H * self.hd, bias=False)
        self.k_proj = nn.Linear(D, KV * self.hd, bias=False)
        self.v_proj = nn.Linear(D, KV * self.hd, bias=False)
        self.o_proj = nn.Linear(H * self.hd, D, bias=False)

    def forward(self, x, pos0=0, past=None):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.H, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.KV, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.KV, self.hd).transpose(1, 2)
        cos, sin = rope_cos_sin(self.hd, self.theta, pos0 + T)
        cos, sin = cos[pos0:pos0 + T], sin[pos0:pos0 + T]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v)
        rep = self.H // self.KV
        kr = k.repeat_interleave(rep, dim=1)
        vr = v.repeat_interleave(rep, dim=1)
        Tk = kr.shape[2]
        w = torch.matmul(q, kr.transpose(2, 3)) / math.sqrt(self.hd)
        mask = torch.full((T, Tk), torch.finfo(w.dtype).min)
        mask = torch.triu(mask, diagonal=Tk - T + 1)
        w = torch.softmax(w + mask, dim=-1, dtype=torch.float32)
        o = torch.matmul(w, vr).transpose(1, 2).reshape(B, T, self.H * self.hd)
        return self.o_proj(o), present


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, F = cfg["hidden"], cfg["ffn"]
        self.gate_proj = nn.Linear(D, F, bias=False)
        self.up_proj = nn.Linear(D, F, bias=False)
        self.down_proj = nn.Linear(F, D, bias=False)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["hidden"], cfg["eps"])
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["hidden"], cfg["eps"])
        self.mlp = MLP(cfg)

    def forward(self, x, pos0=0, past=None):
        a, present = self.self_attn(self.input_layernorm(x), pos0, past)
        x = x + a
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, present


class Inner(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab"], cfg["hidden"])
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg["layers"])])
        self.norm = RMSNorm(cfg["hidden"], cfg["eps"])


class RefLlama(nn.Module):
    def __init__(self, cfg, sd=None):
        super().__init__()
        self.cfg = cfg
        self.model = Inner(cfg)
        self.lm_head = nn.Linear(cfg["hidden"], cfg["vocab"], bias=False)
        if sd is not None:
            sd = {k: v for k, v in sd.items() if not k.endswith("inv_freq")}
            self.load_state_dict(sd)

    def forward(self, input_ids=None, inputs_embeds=None, past=None, pos0=0):
        x = self.model.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        presents = []
        for i, L in enumerate(self.model.layers):
            x, p = L(x, pos0, past[i] if past else None)
            presents.append(p)
        h = self.model.norm(x)
        return self.lm_head(h), h, presents

    @torch.no_grad()
    def greedy(self, embeds, n, eos=None):
        """Greedy decode with the KV cache: ids and final-norm states of every input read."""
        logits, h, past = self(inputs_embeds=embeds)
        pos, ids, hs = embeds.shape[1], [], [h[0]]
        for _ in range(n):
            t = int(torch.argmax(logits[0, -1]))
            ids.append(t)
            if t == eos or len(ids) == n:
                break
            logits, h, past = self(input_ids=torch.tensor([[t]]), past=past, pos0=pos)
            hs.append(h[0])
            pos += 1
        return ids, torch.cat(hs, 0)


def decoder_layer(cfg):
    return DecoderLayer(cfg)


def load_state_dict(folder):
    from convert_llm import checkpoint_tensors  # same reader as the converter
    out = {}
    for k, t in checkpoint_tensors(folder).items():
        out[k] = torch.from_numpy(np.concatenate(list(t.slices())).reshape(t.shape))
    return out


def load(folder):
    cfg = read_cfg(folder)
    if cfg["kv_heads"] == cfg["heads"] and cfg["theta"] == 10000.0:
        from transformers import LlamaForCausalLM
        m = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
    else:
        m = RefLlama(cfg, load_state_dict(folder))
    return m.eval()


@torch.no_grad()
def run(model, ids=None, embeds=None):
    out = {}
    hooks = []

    def hook(name):
        def f(_m, _i, o):
            out[name] = (o[0] if isinstance(o, tuple) else o)[0].detach().float().numpy().copy()
        return f

    inner = model.model
    for i, L in enumerate(inner.layers):
        hooks.append(L.register_forward_hook(hook(f"model.layers.{i}")))
        hooks.append(L.self_attn.register_forward_hook(hook(f"model.layers.{i}.self_attn")))
        hooks.append(L.mlp.register_forward_hook(hook(f"model.layers.{i}.mlp")))
    hooks.append(inner.norm.register_forward_hook(hook("model.norm")))
    hooks.append(model.lm_head.register_forward_hook(hook("lm_head")))
    try:
        if embeds is None:
            embeds = inner.embed_tokens(torch.as_tensor(ids).reshape(1, -1))
        embeds = torch.as_tensor(embeds).reshape(1, -1, model.config.hidden_size
                                                 if hasattr(model, "config") else model.cfg["hidden"])
        out["model.embed_tokens"] = embeds[0].numpy().copy()
        model(inputs_embeds=embeds)
    finally:
        for h in hooks:
            h.remove()
    return out
