#!/usr/bin/env python3
"""PyTorch reference of the whole SEED-X inference path (CPU, float32), following the
official scripts step by step (src/inference/eval_img2text_seed_x_i.py,
eval_text2img_seed_x{,_i}.py, eval_img2edit_seed_x_edit.py, eval_seed_x_detokenizer{,_with_condition}.py;
src/models/mllm/seed_x.py ContinuousLVLM.generate, generation.py, src/inference/any_res.py,
src/models/detokenizer/adapter_modules.py and its SDXL edit pipeline).

Reused, not re-written: transformers 4.30.2 LlamaTokenizer / LlamaForCausalLM.generate,
diffusers 0.25.0 UNet2DConditionModel / AutoencoderKL / EulerDiscreteScheduler /
StableDiffusionXLPipeline / VaeImageProcessor, torchvision transforms, and the repo's
transcriptions ref_vit (ViT + Qwen Resampler), ref_detok (ResamplerXLV2), ref_unet (the
3-way edit loop), ref_vae, fixtures_seedx (the image-token logits processor).

    sx = SeedX(PRETRAINED_DIR)      # a real or tiny (make_tiny_seedx.py) pretrained/ folder
    r = sx.comprehend(pil, question, grids=ALL_GRIDS, max_new_tokens=48)
    r = sx.text2image(caption, noise, forced=False|True, steps=4, size=64)
    r = sx.edit(pil, instruction, noise, forced=True, steps=4, size=64)
    r = sx.reconstruct(pil, noise, condition=None|pil, steps=4, size=64)

Each returns a dict of every intermediate of section 10 of the spec (numpy arrays / lists /
strings). Initial latents are always injected (`noise`, the N(0,1) draw before
init_noise_sigma), since the official generators are CUDA ones.

Hyperparameters the files do not carry (ViT heads / image size, agent heads, de-tokenizer
heads...) come from PRETRAINED_DIR/../tiny_seedx.json when it exists, else the released
configs' values (configs/*.yaml of SEED-X).
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import ref_detok  # noqa: E402
import ref_vit  # noqa: E402

BOI, EOI, BOP, EOP, IMG = "<img>", "</img>", "<patch>", "</patch>", "<img_{:05d}>"
ALL_GRIDS = ["1x1", "1x2", "1x3", "2x1", "3x1", "1x4", "4x1", "2x2"]
BASE = 448
TEMPLATE_I = "[INST] {instruction} [/INST]\n"
TEMPLATE_T2I_I = "[INST] Generate an image: {caption} [/INST]\n"
TEMPLATE_T2I_BASE = "{caption}<img>"          # eval_text2img_seed_x.py: ends with <img>
TEMPLATE_BBOX = "{caption} [[ <box_start>"     # eval_img2text_seed_x.py detection

# released configs (configs/visual_encoder, clm_models/agent_seed_x*, sdxl_adapter)
REAL = dict(vit=dict(image_size=448, patch_size=14, width=1664, layers=48, heads=16, mlp_ratio=4.9231,
                     n_queries=256, output_dim=4096),
            agent=dict(input_resampler=dict(grid_size=8, embed_dim=5120, num_heads=32, kv_dim=4096),
                       output_resampler=dict(grid_size=8, embed_dim=4096, num_heads=32, kv_dim=5120)),
            detokenizer=dict(dim=1024, depth=4, dim_head=64, heads=16, num_queries=64, embedding_dim=4096,
                             output1_dim=768, output2_dim=1280, ff_mult=4, normalize=False),
            tokenizer_dir="cvlm_llama2_tokenizer_100img_and_224loc_addpatch", output_size=1024)


# ----------------------------------------------------------------- any-res (src/inference/any_res.py)
def _best_a(size, cands):
    w0, h0 = size
    best, best_eff, best_waste = None, 0, float("inf")
    for w, h in cands:
        s = min(w / w0, h / h0)
        eff = min(int(w0 * s) * int(h0 * s), w0 * h0)
        waste = w * h - eff
        if eff > best_eff or (eff == best_eff and waste < best_waste):
            best, best_eff, best_waste = (w, h), eff, waste
    return best


def _best_b(size, cands):
    w0, h0 = size
    r0, a0 = h0 / w0, w0 * h0
    best, bd, ba = None, float("inf"), float("inf")
    for w, h in cands:
        d = max(h / w, r0) / min(h / w, r0)
        a = max(w * h, a0) / min(w * h, a0)
        if d < bd or (d == bd and a < ba):
            best, bd, ba = (w, h), d, a
    return best


def select_grid(size, grids=ALL_GRIDS, base=BASE):
    cands = [(int(g.split("x")[0]) * base, int(g.split("x")[1]) * base) for g in grids]
    a, b = _best_a(size, cands), _best_b(size, cands)
    return b if a[0] * a[1] > b[0] * b[1] else a


def image_transform(size=BASE):
    """configs/processer/qwen_448_transform.yaml: clip type, keep_ratio False."""
    from torchvision import transforms
    return transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(),
                               transforms.Normalize(ref_vit.IMAGE_MEAN, ref_vit.IMAGE_STD)])


def anyres(image, grids=ALL_GRIDS, base=BASE):
    """-> (pixels [N,3,base,base], patch_pos [N,2] (x,y), (W,H) chosen). Tiles row-major,
    global thumbnail last."""
    W, H = select_grid(image.size, grids, base)
    big = image.resize((W, H))
    tiles = [big.crop((x, y, x + base, y + base)) for y in range(0, H, base) for x in range(0, W, base)]
    tiles.append(image.resize((base, base)))
    tf = image_transform(base)
    gw, gh = W // base, H // base
    pos = [((c + 0.5) / gw, (r + 0.5) / gh) for r in range(gh) for c in range(gw)] + [(0.5, 0.5)]
    return torch.stack([tf(t) for t in tiles]), torch.tensor(pos, dtype=torch.float32), (W, H)


def image_block(n, k=64):
    s = "".join(BOP + "".join(IMG.format(i) for i in range(k)) + EOP for _ in range(n - 1))
    return s + BOI + "".join(IMG.format(i) for i in range(k)) + EOI


def extract_box(text):
    """eval_img2text_seed_x_i.py: <box_start>...<box_end> spans -> loc numbers."""
    boxes = re.findall("<box_start>(.*?)<box_end>", text)
    return [[int(n) for n in re.findall(r"<loc-(\d+)>", b)] for b in boxes]


def extract_box_detect(text):
    """eval_img2text_seed_x.py (prompt ends with <box_start>): everything before each <box_end>."""
    boxes = re.findall("(.*?)<box_end>", text)
    return [[int(n) for n in re.findall(r"<loc-(\d+)>", b)] for b in boxes]


# ----------------------------------------------------------------- the logits processor
class ImageTokenProcessor:
    """generation.py AutoImageTokenGenerationProcessor (rule in fixtures_seedx.processor)."""

    def __init__(self, tok, n=64):
        s = "".join([BOI] + [IMG.format(i) for i in range(n)] + [EOI])
        self.ids = tok.encode(s, add_special_tokens=False)

    def __call__(self, input_ids, scores):
        from fixtures_seedx import processor
        for i in range(input_ids.shape[0]):
            scores[i] = processor(self.ids, int(input_ids[i, -1]), scores[i])
        return scores


# ----------------------------------------------------------------- loading
class Agent(torch.nn.Module):
    """ContinuousLVLM's own parameters (the agent pytorch_model.bin)."""

    def __init__(self, cfg, hidden):
        super().__init__()
        self.input_resampler = ref_vit.Resampler(**cfg["input_resampler"])
        self.output_resampler = ref_vit.Resampler(**cfg["output_resampler"])
        self.patch_pos_embed = torch.nn.Parameter(torch.zeros(4, hidden))


class Adapter(torch.nn.Module):
    """SDXLAdapter / SDXLAdapterWithLatentImage: .unet + .resampler, loaded non-strictly."""

    def __init__(self, unet, resampler, latent_image):
        super().__init__()
        self.unet, self.resampler = unet, resampler
        if latent_image:  # set_trainable(): 8-channel conv_in, zero-init, old weights in [:, :4]
            old = unet.conv_in
            new = torch.nn.Conv2d(8, old.out_channels, old.kernel_size, old.stride, old.padding)
            with torch.no_grad():
                new.weight.zero_()
                new.weight[:, :4].copy_(old.weight)
                new.bias.copy_(old.bias)
            unet.register_to_config(in_channels=8)
            unet.conv_in = new


def _cfg(pre):
    p = os.path.join(os.path.dirname(os.path.abspath(pre)), "tiny_seedx.json")
    if os.path.exists(p):
        with open(p) as f:
            return json.load(f)
    return REAL


class SeedX:
    def __init__(self, pretrained, llm="seed_x_i"):
        from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
        from transformers import LlamaForCausalLM, LlamaTokenizer
        torch.set_grad_enabled(False)
        self.pre, self.cfg = pretrained, _cfg(pretrained)
        self.tok = LlamaTokenizer.from_pretrained(os.path.join(pretrained, self.cfg["tokenizer_dir"]))
        vc = self.cfg["vit"]
        sd = torch.load(os.path.join(pretrained, "QwenViT", "qwen_vit_G.pt"), map_location="cpu")
        self.vit = ref_vit.build(sd, {k: vc[k] for k in ("image_size", "patch_size", "width", "layers", "heads",
                                                         "mlp_ratio", "n_queries", "output_dim")})
        self.vit_size = vc["image_size"]
        self.llms = {}
        self.llm_name = llm
        self._llm_cls, self._unet_cls = LlamaForCausalLM, UNet2DConditionModel
        sdxl = os.path.join(pretrained, "stable-diffusion-xl-base-1.0")
        self.sdxl = sdxl
        self.vae = AutoencoderKL.from_pretrained(os.path.join(sdxl, "vae"), torch_dtype=torch.float32).eval()
        self.sched_cls = EulerDiscreteScheduler
        self.adapters = {}

    # -- components loaded on demand (as each official script builds its own set)
    def mllm(self, name=None):
        name = name or self.llm_name
        if name not in self.llms:
            llm = self._llm_cls.from_pretrained(os.path.join(self.pre, name, "llm"), torch_dtype=torch.float32).eval()
            agent = Agent(self.cfg["agent"], llm.config.hidden_size)
            ck = torch.load(os.path.join(self.pre, name, "agent", "pytorch_model.bin"), map_location="cpu")
            agent.load_state_dict(ck, strict=True)
            self.llms[name] = (llm, agent.eval())
        return self.llms[name]

    def adapter(self, stage):
        if stage not in self.adapters:
            unet = self._unet_cls.from_pretrained(os.path.join(self.sdxl, "unet"), torch_dtype=torch.float32)
            res = ref_detok.ResamplerXLV2(**self.cfg["detokenizer"])
            ad = Adapter(unet, res, latent_image=(stage == 2))
            sub = "first_stage" if stage == 1 else "second_stage"
            ck = torch.load(os.path.join(self.pre, "seed_detokenizer", sub, "pytorch_model.bin"), map_location="cpu")
            missing, unexpected = ad.load_state_dict(ck, strict=False)
            if unexpected:
                raise ValueError(f"unexpected de-tokenizer keys: {unexpected[:4]}")
            self.adapters[stage] = ad.eval()
        return self.adapters[stage]

    def scheduler(self, steps):
        s = self.sched_cls.from_pretrained(os.path.join(self.sdxl, "scheduler"))
        s.set_timesteps(steps)
        return s

    # -- the multimodal LLM (ContinuousLVLM.generate)
    def agent_generate(self, input_ids, pixels=None, patch_pos=None, max_new_tokens=120, n_img=64, llm=None):
        from transformers import LogitsProcessorList
        model, agent = self.mllm(llm)
        tok = self.tok
        r = {}
        ids = torch.tensor([input_ids])
        embeds = model.get_input_embeddings()(ids)
        D = embeds.shape[-1]
        if pixels is not None:
            mask = torch.zeros_like(ids, dtype=torch.bool)
            openers = [tok.convert_tokens_to_ids(BOI), tok.convert_tokens_to_ids(BOP)]
            closers = [tok.convert_tokens_to_ids(EOI), tok.convert_tokens_to_ids(EOP)]
            b = [i for i, t in enumerate(input_ids) if t in openers]
            e = [i for i, t in enumerate(input_ids) if t in closers]
            for s, t in zip(b, e):
                mask[0, s + 1:t] = True
            feats = self.vit(pixels)                                      # [N, 256, E]
            lm = agent.input_resampler(feats)                             # [N, 64, D]
            rel = torch.mm(torch.cat([patch_pos, 1 - patch_pos], dim=-1) / 2, agent.patch_pos_embed)
            r.update(vit=feats.numpy(), input_resampler=lm.numpy(), rel_pos=rel.numpy())
            lm = lm + rel.unsqueeze(1)
            embeds[mask] = lm.reshape(-1, D)
            r["cmp_positions"] = torch.where(mask[0])[0].tolist()
        r["embeds"] = embeds[0].numpy().copy()
        r["prompt_logits"] = model(inputs_embeds=embeds).logits[0, -1].numpy().copy()
        out = model.generate(input_ids=ids, inputs_embeds=embeds, output_hidden_states=True,
                             return_dict_in_generate=True, output_scores=True,
                             logits_processor=LogitsProcessorList([ImageTokenProcessor(tok, n_img)]),
                             temperature=0.7, num_beams=1, max_new_tokens=max_new_tokens, top_p=0.5,
                             do_sample=False)
        P = ids.shape[1]
        gen = out.sequences[0][P:]
        r["gen_ids"] = gen.tolist()
        # margin of every greedy choice (processed scores): how robust the ids are
        margins = []
        for s in out.scores:
            top = torch.topk(s[0], 2).values
            margins.append(float(top[0] - top[1]))
        r["margins"] = margins
        hidden = torch.cat([h[-1] for h in out.hidden_states], dim=1)[0, P:]
        eoi_id, boi_id = tok.convert_tokens_to_ids(EOI), tok.convert_tokens_to_ids(BOI)
        eois = torch.where(gen == eoi_id)[0].tolist()
        keep = torch.ones_like(gen, dtype=torch.bool)
        if eois:
            g = []
            for e in eois:
                g.append(hidden[e - n_img:e])
                keep[e - n_img:e] = False
            g = torch.stack(g)
            r["gen_hidden"] = g.numpy()
            r["img_gen_feat"] = agent.output_resampler(g).numpy()
        keep[gen == boi_id] = False
        r["text_raw"] = tok.decode(gen[keep], skip_special_tokens=False)
        r["text"] = re.sub("<[^>]*>", "", r["text_raw"])
        r["has_img_output"] = bool(eois)
        return r

    def prompt_ids(self, prompt):
        return [self.tok.bos_token_id] + self.tok.encode(prompt, add_special_tokens=False)

    # -- modes
    def comprehend(self, image, question, grids=ALL_GRIDS, max_new_tokens=48, llm=None):
        pixels, pos, wh = anyres(image, grids, self.vit_size)
        prompt = TEMPLATE_I.format(instruction=image_block(pixels.shape[0]) + question)
        ids = self.prompt_ids(prompt)
        r = self.agent_generate(ids, pixels, pos, max_new_tokens=max_new_tokens, llm=llm)
        r.update(prompt=prompt, prompt_ids=ids, pixels=pixels.numpy(), patch_pos=pos.numpy(), grid=wh,
                 boxes=extract_box(r["text_raw"]))
        return r

    def ground(self, image, caption, grids=ALL_GRIDS, max_new_tokens=48, llm=None):
        """eval_img2text_seed_x.py detection: the prompt ends with <box_start>, boxes are the
        loc numbers before each generated <box_end>."""
        pixels, pos, wh = anyres(image, grids, self.vit_size)
        prompt = TEMPLATE_BBOX.format(caption=image_block(pixels.shape[0]) + caption)
        ids = self.prompt_ids(prompt)
        r = self.agent_generate(ids, pixels, pos, max_new_tokens=max_new_tokens, llm=llm)
        r.update(prompt=prompt, prompt_ids=ids, pixels=pixels.numpy(), patch_pos=pos.numpy(), grid=wh,
                 boxes=extract_box_detect(r["text_raw"]))
        return r

    def text2image(self, caption, noise, forced=False, steps=50, size=None, max_new_tokens=120):
        prompt = (TEMPLATE_T2I_BASE if forced else TEMPLATE_T2I_I).format(caption=caption)
        ids = self.prompt_ids(prompt)
        r = self.agent_generate(ids, max_new_tokens=max_new_tokens)
        r.update(prompt=prompt, prompt_ids=ids)
        if r["has_img_output"]:
            r.update(self.detokenize(1, torch.from_numpy(r["img_gen_feat"]), noise, steps, size))
        return r

    def edit(self, image, instruction, noise, forced=True, steps=50, size=None, max_new_tokens=512):
        """eval_img2edit_seed_x_edit.py (grid 1x1). forced: the prompt ends with <img> so the
        random tiny model produces an image (the real model writes <img> itself)."""
        size = size or self.cfg["output_size"]
        source = image.resize((size, size))
        pixels, pos, wh = anyres(image, ["1x1"], self.vit_size)
        prompt = TEMPLATE_I.format(instruction=image_block(pixels.shape[0]) + instruction)
        if forced:
            prompt += BOI
        ids = self.prompt_ids(prompt)
        r = self.agent_generate(ids, pixels, pos, max_new_tokens=max_new_tokens, llm="seed_x_edit")
        r.update(prompt=prompt, prompt_ids=ids, pixels=pixels.numpy(), patch_pos=pos.numpy(), grid=wh)
        if r["has_img_output"]:
            r.update(self.detokenize(2, torch.from_numpy(r["img_gen_feat"]), noise, steps, size, latent_image=source))
        return r

    def reconstruct(self, image, noise, condition=None, steps=50, size=None):
        """eval_seed_x_detokenizer.py (stage 1) / ..._with_condition.py (stage 2, condition
        resized to the output size)."""
        size = size or self.cfg["output_size"]
        if condition is not None:
            condition = condition.resize((size, size))
        return self.detokenize(2 if condition is not None else 1, None, noise, steps, size,
                               image_pil=image, latent_image=condition)

    # -- adapter.generate
    def image_embeds(self, ad, image_pil=None, image_embeds=None):
        """SDXLAdapter.get_image_embeds(return_negative=True)."""
        r = {}
        if image_pil is not None:
            x = image_transform(self.vit_size)(image_pil).unsqueeze(0)
            x = torch.cat([x, torch.zeros_like(x)])
            r["recon_pixels"] = x[0].numpy()
            emb = self.vit(x)                                     # [2, 256, E] (un-pooled)
        else:
            neg = self.vit(torch.zeros(1, 3, self.vit_size, self.vit_size))
            neg = F.avg_pool1d(neg.permute(0, 2, 1), kernel_size=4, stride=4).permute(0, 2, 1)
            emb = torch.cat([image_embeds, neg])
        r["detok_in"] = emb.numpy()
        pe, pooled = ad.resampler(emb)
        r["prompt_embeds"], r["pooled"] = pe.numpy(), pooled.numpy()      # [pos, neg]
        return pe.chunk(2), pooled.chunk(2), r

    def detokenize(self, stage, image_embeds, noise, steps, size, image_pil=None, latent_image=None):
        from diffusers import StableDiffusionXLPipeline
        from diffusers.image_processor import VaeImageProcessor
        import ref_unet
        import ref_vae
        size = size or self.cfg["output_size"]
        ad = self.adapter(stage)
        (pe, pe_neg), (pooled, pooled_neg), r = self.image_embeds(ad, image_pil, image_embeds)
        sched = self.scheduler(steps)
        r["timesteps"] = sched.timesteps.numpy().copy()
        r["sigmas"] = sched.sigmas.numpy().copy()
        r["noise"] = noise.numpy().copy()
        r["time_ids"] = np.array([size, size, 0, 0, size, size], np.float32)
        eps = []
        hook = ad.unet.register_forward_hook(lambda m, i, o: eps.append(o[0] if isinstance(o, tuple) else o.sample))
        try:
            if stage == 1:
                lat = []
                pipe = StableDiffusionXLPipeline(vae=self.vae, text_encoder=None, text_encoder_2=None, tokenizer=None,
                                                 tokenizer_2=None, unet=ad.unet, scheduler=sched)
                pipe.set_progress_bar_config(disable=True)

                def cb(p, i, t, kw):
                    lat.append(kw["latents"].numpy().copy())
                    return kw
                final = pipe(prompt_embeds=pe, negative_prompt_embeds=pe_neg, pooled_prompt_embeds=pooled,
                             negative_pooled_prompt_embeds=pooled_neg, guidance_scale=7.5, num_inference_steps=steps,
                             height=size, width=size, latents=noise.clone(), output_type="latent",
                             callback_on_step_end=cb).images
                lat = np.stack(lat)
                assert np.array_equal(lat[-1], final.numpy())
            else:
                tids = r["time_ids"][None]
                il = None
                if latent_image is not None:
                    x = VaeImageProcessor(vae_scale_factor=2 ** (len(self.vae.config.block_out_channels) - 1)
                                          ).preprocess(latent_image)
                    r["cond_pixels"] = x[0].numpy()
                    il = self.vae.encode(x.float()).latent_dist.mode().numpy()
                    r["cond_latent"] = il
                sched = self.scheduler(steps)
                lat = ref_unet.edit_loop(ad.unet, sched, noise.numpy(), (pe.numpy(), pooled.numpy(), tids),
                                         (pe_neg.numpy(), pooled_neg.numpy(), tids), il, 7.5, 1.5)
        finally:
            hook.remove()
        r["eps0"] = eps[0].numpy().copy()          # stage 1: [neg, pos]; stage 2: [text, image, uncond]
        r["latents"] = lat                          # after every step [S, 1, 4, h, w]
        img = ref_vae.decode(self.vae, lat[-1][0])
        r["image"] = img
        r["image_u8"] = ref_vae.postprocess(img)
        return r


def main():
    import argparse
    from PIL import Image
    p = argparse.ArgumentParser(description="run one SEED-X mode with the PyTorch reference")
    p.add_argument("pretrained")
    p.add_argument("mode", choices=["comprehend", "ground", "t2i", "t2i_forced", "edit", "recon", "recon_cond"])
    p.add_argument("--image")
    p.add_argument("--cond")
    p.add_argument("--text", default="Describe this image briefly.")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--size", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the PNG here")
    a = p.parse_args()
    sx = SeedX(a.pretrained)
    size = a.size or sx.cfg["output_size"]
    noise = torch.randn((1, 4, size // 8, size // 8), generator=torch.Generator().manual_seed(a.seed))
    img = Image.open(a.image).convert("RGB") if a.image else None
    if a.mode == "comprehend":
        r = sx.comprehend(img, a.text)
    elif a.mode == "ground":
        r = sx.ground(img, a.text)
    elif a.mode in ("t2i", "t2i_forced"):
        r = sx.text2image(a.text, noise, forced=a.mode == "t2i_forced", steps=a.steps, size=size)
    elif a.mode == "edit":
        r = sx.edit(img, a.text, noise, steps=a.steps, size=size)
    else:
        cond = Image.open(a.cond).convert("RGB") if a.mode == "recon_cond" else None
        r = sx.reconstruct(img, noise, condition=cond, steps=a.steps, size=size)
    if "gen_ids" in r:
        print("ids", r["gen_ids"])
        print("text", repr(r["text"]), "min margin %.4g" % min(r["margins"]))
        print("boxes", r.get("boxes"))
    if "image_u8" in r:
        print("image", r["image_u8"].shape, r["image_u8"].mean())
        if a.out:
            Image.fromarray(r["image_u8"]).save(a.out)


if __name__ == "__main__":
    main()
