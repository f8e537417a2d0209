#!/usr/bin/env python3
"""Builds a TINY SEED-X (every component tiny, random weights, fixed seeds) in the
official on-disk layout the SEED-X configs and inference scripts expect:

    OUT_DIR/pretrained/
      QwenViT/qwen_vit_G.pt                      VisionTransformerWithAttnPool state dict
      seed_x_i/agent/pytorch_model.bin           input_resampler.*, output_resampler.*, patch_pos_embed
      seed_x_i/llm/                              HF Llama folder (transformers 4.30.2, sharded .bin + index)
      seed_x_edit/{agent,llm}/                   same structure, its own weights (or a copy: --share-edit)
      seed_detokenizer/first_stage/pytorch_model.bin   resampler.* + every unet.*.to_k/to_v weight
      seed_detokenizer/second_stage/pytorch_model.bin  resampler.* + a full 8-input-channel unet.*
      cvlm_llama2_tokenizer_100img_and_224loc_addpatch/ the real SEED-X tokenizer (fixtures_tokenizer)
      stable-diffusion-xl-base-1.0/{unet,vae,scheduler}/  diffusers 0.25.0 save_pretrained
    OUT_DIR/tiny_seedx.json                      every hyperparameter (the tiny counterpart of the
                                                 yaml configs under configs/ of the official repo)

    .venv/bin/python scripts/make_tiny_seedx.py OUT_DIR [--share-edit]

Dimensions are chained the way the real ones are: ViT output_dim = agent input kv_dim =
agent output embed_dim = ResamplerXLV2 embedding_dim; LLM hidden = agent input embed_dim =
output kv_dim; ResamplerXLV2 output1 + output2 = UNet cross_attention_dim, output2 = pooled
dim (UNet projection_class_embeddings_input_dim = output2 + 6 * addition_time_embed_dim).
The ViT keeps image_size 448 / patch 14 / 256 pool queries (the any-res tiling is fixed at
448) and the agents keep 64 queries (the prompt template has 64 <img_xxxxx> tokens).

Every weight is a bfloat16 value stored as float32 (what the official files hold), so
a bf16 GGUF is a lossless container for any of them. The LLM's lm_head rows of the
<loc-k>/<box_start>/<box_end> tokens are scaled up (x LOC_GAIN) so that greedy decoding of
the random model emits boxes now and then and the box parser gets exercised.
Deterministic: same OUT_DIR contents on every run (fixed seeds, CPU, float32).
"""
import json
import math
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import ref_detok  # noqa: E402
import ref_vit  # noqa: E402

# ----------------------------------------------------------------- the tiny config
VIT = dict(image_size=448, patch_size=14, width=32, layers=2, heads=2, mlp_ratio=4.9231,
           n_queries=256, output_dim=128)        # MLP width int(32*4.9231) = 157, pool heads 128//128 = 1
LLM = dict(vocab_size=32330, hidden_size=16, intermediate_size=44, num_hidden_layers=2,
           num_attention_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-5,
           initializer_range=0.2, bos_token_id=1, eos_token_id=2, pad_token_id=0)
AGENT = dict(input_resampler=dict(grid_size=8, embed_dim=LLM["hidden_size"], num_heads=2,
                                  kv_dim=VIT["output_dim"]),
             output_resampler=dict(grid_size=8, embed_dim=VIT["output_dim"], num_heads=2,
                                   kv_dim=LLM["hidden_size"]),
             add_patch_pos=True, vit_down=True)
DETOK = dict(dim=32, depth=2, dim_head=16, heads=2, num_queries=64, embedding_dim=VIT["output_dim"],
             output1_dim=32, output2_dim=32, ff_mult=4, normalize=False)
UNET = dict(sample_size=8, in_channels=4, out_channels=4,
            down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
            up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"], mid_block_type="UNetMidBlock2DCrossAttn",
            block_out_channels=[8, 16], layers_per_block=2, transformer_layers_per_block=[1, 1],
            attention_head_dim=[1, 2], cross_attention_dim=DETOK["output1_dim"] + DETOK["output2_dim"],
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=DETOK["output2_dim"] + 6 * 8, norm_num_groups=8,
            norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0, act_fn="silu")
VAE = dict(in_channels=3, out_channels=3, latent_channels=4,
           down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
           block_out_channels=[8, 16, 16, 16], layers_per_block=2, norm_num_groups=8, act_fn="silu",
           sample_size=64, scaling_factor=0.13025, force_upcast=True)
# configs of stable-diffusion-xl-base-1.0/scheduler/scheduler_config.json
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 prediction_type="epsilon", interpolation_type="linear", timestep_spacing="leading",
                 steps_offset=1, use_karras_sigmas=False, trained_betas=None, clip_sample=False,
                 set_alpha_to_one=False, skip_prk_steps=True, sample_max_value=1.0)
OUTPUT_SIZE = 64          # tiny SDXL output (the official pipeline uses 1024)
LOC_GAIN = 1.5
BOX_GAIN = (1.0, 2.5)   # <box_start>, <box_end> rows (on top of LOC_GAIN)

TOKENIZER_DIR = "cvlm_llama2_tokenizer_100img_and_224loc_addpatch"


def config():
    return dict(vit=VIT, llm=LLM, agent=AGENT, detokenizer=DETOK, unet=UNET, vae=VAE, scheduler=SCHEDULER,
                output_size=OUTPUT_SIZE, loc_gain=LOC_GAIN, box_gain=BOX_GAIN, tokenizer_dir=TOKENIZER_DIR)


# ----------------------------------------------------------------- random weights
def bf16(t):
    return t.detach().float().to(torch.bfloat16).float()


@torch.no_grad()
def randomize(module, seed, skip=()):
    """Every trainable parameter gets a deterministic random value (bf16-exact):
    matrices / conv kernels U(-a, a), a = sqrt(3 / fan_in); 1-D weights (norms)
    1 + U(-0.2, 0.2); biases U(-0.1, 0.1); other tables N(0, 0.5). Frozen
    parameters (the Resampler's sin-cos tables) keep their value, bf16-rounded."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        if any(name.endswith(s) for s in skip) or not p.requires_grad:
            p.copy_(bf16(p))
            continue
        u = torch.rand(p.shape, generator=g) * 2 - 1
        if name.endswith("bias"):
            v = 0.1 * u
        elif name.endswith("weight") and p.ndim >= 2:
            v = math.sqrt(3.0 / (p[0].numel())) * u
        elif name.endswith("weight"):
            v = 1.0 + 0.2 * u
        else:
            v = 0.5 * torch.randn(p.shape, generator=g)
        p.copy_(bf16(v))
    for name, b in module.named_buffers():
        if b.is_floating_point():
            b.copy_(bf16(b))


def make_agent(seed):
    m = torch.nn.Module()
    m.input_resampler = ref_vit.Resampler(**AGENT["input_resampler"])
    m.output_resampler = ref_vit.Resampler(**AGENT["output_resampler"])
    m.patch_pos_embed = torch.nn.Parameter(torch.zeros(4, LLM["hidden_size"]))
    randomize(m, seed)
    return m


def save_llm(folder, seed):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    m = LlamaForCausalLM(LlamaConfig(torch_dtype="float32", **LLM)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(bf16(p))
        # <loc-0>..<loc-223>, <box_start>, <box_end> = 32104..32329
        m.lm_head.weight[32104:32330] = bf16(m.lm_head.weight[32104:32330] * LOC_GAIN)
        for i, g in enumerate(BOX_GAIN):
            m.lm_head.weight[32328 + i] = bf16(m.lm_head.weight[32328 + i] * g)
    m.save_pretrained(folder, max_shard_size="3MB", safe_serialization=False)
    return m


def make_unet(in_channels, seed):
    from diffusers import UNet2DConditionModel
    m = UNet2DConditionModel(**dict(UNET, in_channels=in_channels)).eval()
    randomize(m, seed)
    return m


def build(out, share_edit=False):
    from diffusers import AutoencoderKL, EulerDiscreteScheduler
    torch.set_num_threads(2)
    pre = os.path.join(out, "pretrained")
    if os.path.exists(pre):
        shutil.rmtree(pre)
    os.makedirs(pre)

    def mk(*p):
        d = os.path.join(pre, *p)
        os.makedirs(d, exist_ok=True)
        return d

    # ViT (qwen_vit_G.pt is a plain state dict, keys without prefix)
    vit = ref_vit.VisionTransformerWithAttnPool(**VIT)
    randomize(vit, 1)
    torch.save(vit.state_dict(), os.path.join(mk("QwenViT"), "qwen_vit_G.pt"))

    # agents + LLMs (SEED-X-I and SEED-X-Edit)
    for k, (name, seed) in enumerate((("seed_x_i", 10), ("seed_x_edit", 20))):
        if share_edit and k == 1:
            for sub in ("agent", "llm"):
                shutil.copytree(os.path.join(pre, "seed_x_i", sub), os.path.join(pre, name, sub))
            continue
        agent = make_agent(seed)
        torch.save(agent.state_dict(), os.path.join(mk(name, "agent"), "pytorch_model.bin"))
        save_llm(mk(name, "llm"), seed + 1)

    # SDXL base: unet, vae, scheduler
    sd = os.path.join(pre, "stable-diffusion-xl-base-1.0")
    base = make_unet(4, 30)
    base.save_pretrained(os.path.join(sd, "unet"), safe_serialization=True)
    vae = AutoencoderKL(**VAE).eval()
    randomize(vae, 31)
    vae.save_pretrained(os.path.join(sd, "vae"), safe_serialization=True)
    os.makedirs(os.path.join(sd, "scheduler"))
    with open(os.path.join(sd, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(dict(_class_name="EulerDiscreteScheduler", _diffusers_version="0.19.0.dev0", **SCHEDULER), f,
                  indent=2, sort_keys=False)
    EulerDiscreteScheduler.from_pretrained(os.path.join(sd, "scheduler"))  # loads as the scripts do

    # de-tokenizer stage 1: resampler + every attn1/attn2 to_k / to_v of the UNet (new values)
    res1 = ref_detok.ResamplerXLV2(**DETOK)
    randomize(res1, 40)
    over = make_unet(4, 41)
    ck = {"resampler." + k: v.clone() for k, v in res1.state_dict().items()}
    for k, v in over.state_dict().items():
        if k.endswith(("to_k.weight", "to_v.weight")):
            ck["unet." + k] = v.clone()
    torch.save(ck, os.path.join(mk("seed_detokenizer", "first_stage"), "pytorch_model.bin"))

    # de-tokenizer stage 2: resampler + the full 8-channel UNet
    res2 = ref_detok.ResamplerXLV2(**DETOK)
    randomize(res2, 50)
    u8 = make_unet(8, 51)
    ck = {"resampler." + k: v.clone() for k, v in res2.state_dict().items()}
    ck.update({"unet." + k: v.clone() for k, v in u8.state_dict().items()})
    torch.save(ck, os.path.join(mk("seed_detokenizer", "second_stage"), "pytorch_model.bin"))

    # tokenizer: the real SEED-X tokenizer folder (transformers 4.30.2 save_pretrained)
    from fixtures_tokenizer import build_folders
    tmp = os.path.join(out, "_tok")
    os.makedirs(tmp, exist_ok=True)
    build_folders(tmp)
    shutil.move(os.path.join(tmp, TOKENIZER_DIR), os.path.join(pre, TOKENIZER_DIR))
    shutil.rmtree(tmp)

    with open(os.path.join(out, "tiny_seedx.json"), "w") as f:
        json.dump(config(), f, indent=1, sort_keys=True)
    return pre


def main():
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--share-edit", action="store_true",
                   help="seed_x_edit/{agent,llm} = copies of seed_x_i's (one LLM for the fixtures)")
    a = p.parse_args()
    pre = build(a.out, a.share_edit)
    print(f"wrote {pre}")


if __name__ == "__main__":
    main()
