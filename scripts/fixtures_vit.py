#!/usr/bin/env python3
"""Fixtures for vit.c (tests/fixtures/vit/).

1. A tiny Qwen-VL ViT (width 64, 2 layers, 4 heads, mlp_ratio 4.9231 -> MLP
   width 315, output_dim 128 -> 1 pool head, 448 input) with random weights is
   saved the official way (torch.save of the state dict, like qwen_vit_G.pt)
   with a SEED-X-style yaml config, and converted by scripts/convert.py to
   tiny_f32.gguf (F16/BF16 conversions are made in a temp dir only). The same weights as a
   Qwen-VL-Chat folder (prefixed; sharded .bin + index, one .safetensors,
   sharded .safetensors + index)
   must convert to a byte-identical file.
2. expected.gguf: reference outputs of scripts/ref_vit.py (float32 PyTorch) for
   three inputs whose pixels the test regenerates with sxrand:
   in448 [3,3,448,448] (grid 32: positional tables resized 16 -> 32),
   in224 [2,3,224,224] (grid 16: no resize), zero [1,3,448,448] (all zeros).
   Per-module outputs keep every STRIDE-th token or query (row subset); the
   final outputs are complete.
3. realshape.gguf: one ViT-bigG block (1664, 16 heads, MLP 8192, 1024 tokens)
   and the attn_pool resampler (1664 -> 4096, 32 heads, 256 queries, 1024 keys)
   with sxrand weights (seeds in metadata), outputs as row subsets.
4. bad_*.gguf: micro models with a missing tensor / a wrong shape.
Deterministic: fixed seeds, one torch thread.
"""
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import convert  # noqa: E402
import ref_vit  # noqa: E402
import sxrand  # noqa: E402
from sxgguf import write_gguf  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "vit")
STRIDE = 16
torch.set_num_threads(1)

TINY = dict(image_size=448, patch_size=14, width=64, layers=2, heads=4, mlp_ratio=4.9231,
            output_dim=128, n_queries=256)
INPUTS = [("in448", 3, 448, 501), ("in224", 2, 224, 502), ("zero", 1, 448, 0)]


def pixels(n, s, seed):
    if seed == 0:
        return np.zeros((n, 3, s, s), np.float32)
    return sxrand.uniform(n * 3 * s * s, seed, -2.0, 2.0).reshape(n, 3, s, s)


def randomize(model, seed):
    """Random values at scales that keep activations O(1); LayerNorm affine
    and biases non-trivial so every parameter is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "attn_pool.pos_embed":
                continue  # fixed sin-cos table, saved as is
            r = torch.randn(p.shape, generator=g)
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight",
                              "ln_q.weight", "ln_kv.weight")):
                p.copy_(1.0 + 0.2 * r)
            elif p.ndim == 1:
                p.copy_(0.2 * r)
            elif name == "conv1.weight":
                p.copy_(r / math.sqrt(p[0].numel()))
            elif name in ("positional_embedding", "attn_pool.query"):
                p.copy_(0.5 * r)
            elif name == "proj":
                p.copy_(r / math.sqrt(p.shape[0]))
            else:
                p.copy_(r / math.sqrt(p.shape[1]))


def write_yaml(path, cfg):
    with open(path, "w") as f:
        f.write("_target_: src.models.tokenizer.qwen_visual.VisionTransformerWithAttnPool.from_pretrained\n")
        for k in ("heads", "image_size", "layers", "mlp_ratio", "output_dim", "patch_size", "width"):
            f.write(f"{k}: {cfg[k]}\n")
        f.write("\npretrained_model_path: pretrained/QwenViT/qwen_vit_G.pt\n")


def make_hf_folders(tmp, sd, cfg):
    """Qwen-VL-Chat layouts (with LLM keys around the visual ones): 2 .bin shards
    + index, one model.safetensors, 2 .safetensors shards + index."""
    full = {"transformer.wte.weight": torch.zeros(8, 4)}
    full.update({"transformer.visual." + k: v for k, v in sd.items()})
    full["lm_head.weight"] = torch.zeros(8, 4)
    keys = list(full)
    a = os.path.join(tmp, "qwen_bin")
    os.makedirs(a)
    half = len(keys) // 2
    shards = {"pytorch_model-00001-of-00002.bin": keys[:half], "pytorch_model-00002-of-00002.bin": keys[half:]}
    wm = {}
    for fn, ks in shards.items():
        torch.save({k: full[k].clone() for k in ks}, os.path.join(a, fn))
        wm.update({k: fn for k in ks})
    with open(os.path.join(a, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wm}, f)
    vis = {k: cfg[k] for k in ("heads", "image_size", "layers", "mlp_ratio", "output_dim",
                               "patch_size", "width")}
    vis["image_start_id"] = 151857
    with open(os.path.join(a, "config.json"), "w") as f:
        json.dump({"model_type": "qwen", "visual": vis}, f)
    b = os.path.join(tmp, "qwen_st")
    os.makedirs(b)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in full.items()}, os.path.join(b, "model.safetensors"))
    c = os.path.join(tmp, "qwen_st_sharded")
    os.makedirs(c)
    wm = {}
    for j, ks in enumerate((keys[:half], keys[half:])):
        fn = f"model-0000{j + 1}-of-00002.safetensors"
        save_file({k: full[k].contiguous() for k in ks}, os.path.join(c, fn))
        wm.update({k: fn for k in ks})
    with open(os.path.join(c, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wm}, f)
    for d in (b, c):
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump({"model_type": "qwen", "visual": vis}, f)
    return a, b, c


def sub(a):
    """Every STRIDE-th row of the token axis (axis 1) of [N, T, C]."""
    return np.ascontiguousarray(a[:, ::STRIDE])


def tiny(tmp, T, meta):
    torch.manual_seed(0)
    model = ref_vit.VisionTransformerWithAttnPool(**TINY)
    randomize(model, 1234)
    model.eval()
    sd = model.state_dict()
    pt = os.path.join(tmp, "qwen_vit_G.pt")
    torch.save(sd, pt)
    yml = os.path.join(tmp, "qwen_vit_tiny.yaml")
    write_yaml(yml, TINY)
    # F16/BF16 conversions run here (the converter path) but are not committed:
    # tests/test_vit.c rounds the F32 model's matrices in memory the same way.
    for dt in ("f32", "f16", "bf16"):
        out = os.path.join(OUT if dt == "f32" else tmp, f"tiny_{dt}.gguf")
        assert convert.main(["vit", pt, out, "--dtype", dt, "--config", yml]) == 0
    # the Qwen-VL-Chat folder layouts must give the same bytes
    ref = open(os.path.join(OUT, "tiny_f32.gguf"), "rb").read()
    for folder in make_hf_folders(tmp, sd, TINY):
        o = os.path.join(tmp, "hf.gguf")
        assert convert.main(["vit", folder, o]) == 0
        assert open(o, "rb").read() == ref, f"{folder}: conversion differs from the .pt one"
    # a bfloat16 state dict (what reload_qwen_vit.py saves from a bf16 Qwen-VL-Chat)
    pt16 = os.path.join(tmp, "qwen_vit_G_bf16.pt")
    torch.save({k: v.bfloat16() for k, v in sd.items()}, pt16)
    o = os.path.join(tmp, "bf16src.gguf")
    assert convert.main(["vit", pt16, o, "--config", yml]) == 0
    _, back = ref_vit.read_gguf(o)
    for k, v in sd.items():
        assert np.array_equal(back[k], v.bfloat16().float().numpy()), k
    # the reference model as the converted file describes it
    m2, cfg = ref_vit.load(os.path.join(OUT, "tiny_f32.gguf"))
    for k, v in m2.state_dict().items():
        assert torch.equal(v, sd[k]), k
    meta["vit.stride"] = STRIDE
    meta["vit.inputs"] = [n for n, *_ in INPUTS]
    for name, n, s, seed in INPUTS:
        x = pixels(n, s, seed)
        meta[f"{name}.dims"] = [n, s, seed]
        outs = ref_vit.run(model, x)
        for k, v in outs.items():
            if k == "conv1":
                continue
            if k == "output":
                T.append((f"{name}.{k}", v, "f32"))
            else:
                T.append((f"{name}.{k}", sub(v), "f32"))
    return model, sd


def real_weights(shapes, seed0):
    """{name: array} from sxrand: uniform in [-a, a] with a = sqrt(3/fan_in)
    (unit-variance preserving) for matrices, LayerNorm weights in [0.5, 1.5],
    biases in [-0.1, 0.1]. Seeds seed0, seed0+1, ... in list order."""
    out = {}
    for i, (name, shape) in enumerate(shapes):
        n = int(np.prod(shape))
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_q.weight", "ln_kv.weight")):
            v = sxrand.uniform(n, seed0 + i, 0.5, 1.5)
        elif len(shape) == 1:
            v = sxrand.uniform(n, seed0 + i, -0.1, 0.1)
        elif name == "query":
            v = sxrand.uniform(n, seed0 + i, -1.0, 1.0)
        else:
            a = math.sqrt(3.0 / shape[1])
            v = sxrand.uniform(n, seed0 + i, -a, a)
        out[name] = v.reshape(shape)
    return out


def realshape(T, meta):
    W, H, M, L = 1664, 16, 8192, 1024
    blk_shapes = [("ln_1.weight", (W,)), ("ln_1.bias", (W,)), ("attn.in_proj.weight", (3 * W, W)),
                  ("attn.in_proj.bias", (3 * W,)), ("attn.out_proj.weight", (W, W)),
                  ("attn.out_proj.bias", (W,)), ("ln_2.weight", (W,)), ("ln_2.bias", (W,)),
                  ("mlp.c_fc.weight", (M, W)), ("mlp.c_fc.bias", (M,)),
                  ("mlp.c_proj.weight", (W, M)), ("mlp.c_proj.bias", (W,))]
    seed = 7000
    w = real_weights(blk_shapes, seed)
    x = sxrand.uniform(L * W, 6999, -2.0, 2.0).reshape(L, W)
    blk = ref_vit.Block(W, H, M, 1e-6)
    blk.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()}, strict=True)
    with torch.no_grad():
        y = blk(torch.from_numpy(x)[:, None])[:, 0].numpy()
        y64 = blk.double()(torch.from_numpy(x).double()[:, None])[:, 0].numpy()
    rs = 32
    meta["block.dims"] = [W, H, M, L, seed, 6999, rs]
    meta["block.names"] = [n for n, _ in blk_shapes]
    T.append(("block.y", np.ascontiguousarray(y[::rs]), "f32"))
    print(f"  real block: torch f32 vs f64 max-rel {np.abs(y - y64).max() / np.abs(y64).max():.3g}")

    E, Hp, Q, KV = 4096, 32, 256, 1664
    rs_shapes = [("query", (Q, E)), ("kv_proj.weight", (E, KV)), ("attn.in_proj_weight", (3 * E, E)),
                 ("attn.in_proj_bias", (3 * E,)), ("attn.out_proj.weight", (E, E)),
                 ("attn.out_proj.bias", (E,)), ("ln_q.weight", (E,)), ("ln_q.bias", (E,)),
                 ("ln_kv.weight", (E,)), ("ln_kv.bias", (E,))]
    seed = 8000
    w = real_weights(rs_shapes, seed)
    x = sxrand.uniform(L * KV, 7999, -2.0, 2.0).reshape(1, L, KV)
    r = ref_vit.Resampler(16, E, Hp, kv_dim=KV, eps=1e-6)
    sd = {k: torch.from_numpy(v) for k, v in w.items()}
    sd["pos_embed"] = r.pos_embed.data.clone()
    r.load_state_dict(sd, strict=True)
    with torch.no_grad():
        y = r(torch.from_numpy(x))[0].numpy()
        y64 = r.double()(torch.from_numpy(x).double())[0].numpy()
    rq = 16
    meta["resampler.dims"] = [E, Hp, Q, KV, L, seed, 7999, rq]
    meta["resampler.names"] = [n for n, _ in rs_shapes]
    T.append(("resampler.y", np.ascontiguousarray(y[::rq]), "f32"))
    print(f"  real resampler: torch f32 vs f64 max-rel {np.abs(y - y64).max() / np.abs(y64).max():.3g}")


def bad_files(tmp):
    """Micro models (n_queries 16) written directly with a defect each."""
    cfg = dict(image_size=28, patch_size=14, width=16, layers=1, heads=2, mlp_ratio=4.9231,
               output_dim=128, n_queries=16)
    torch.manual_seed(5)
    m = ref_vit.VisionTransformerWithAttnPool(**cfg)
    randomize(m, 99)
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    import convert_vit
    h = dict(cfg, mlp_width=78, pool_heads=1, pos_grid=16, ln_eps=1e-6)
    meta = convert_vit.metadata(h)

    def write(name, sd2):
        write_gguf(os.path.join(OUT, name), meta,
                   [(k, v, "f16" if v.ndim >= 2 else "f32") for k, v in sd2.items()])
    d = dict(sd)
    del d["transformer.resblocks.0.mlp.c_fc.bias"]
    write("bad_missing.gguf", d)
    d = dict(sd)
    d["transformer.resblocks.0.attn.in_proj.weight"] = sd["transformer.resblocks.0.attn.in_proj.weight"][:47]
    write("bad_shape.gguf", d)
    d = dict(sd)
    d["attn_pool.kv_proj.weight"] = sd["attn_pool.kv_proj.weight"][:, :15]
    write("bad_pool_shape.gguf", d)


def main():
    os.makedirs(OUT, exist_ok=True)
    T, meta = [], {"seedx.fixture": "vit", "seedx.fixture.torch": torch.__version__}
    tmp = tempfile.mkdtemp()
    try:
        tiny(tmp, T, meta)
        realshape(T, meta)
        bad_files(tmp)
    finally:
        shutil.rmtree(tmp)
    for name, tt in (("expected.gguf", [t for t in T if not t[0].startswith(("block.", "resampler."))]),
                     ("realshape.gguf", [t for t in T if t[0].startswith(("block.", "resampler."))])):
        keys = {k: v for k, v in meta.items()
                if (name == "realshape.gguf") == k.startswith(("block.", "resampler."))
                or k.startswith("seedx.")}
        write_gguf(os.path.join(OUT, name), keys, tt)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {OUT}: {len(os.listdir(OUT))} files, {total} bytes")


if __name__ == "__main__":
    main()
