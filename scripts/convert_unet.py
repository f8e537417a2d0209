"""unet: diffusers UNet2DConditionModel folder (+ SEED-X de-tokenizer checkpoint) -> GGUF.

    python scripts/convert.py unet UNET_DIR OUT.gguf [--detokenizer CKPT]
           [--scheduler SCHED_DIR] [--dtype f16|bf16|f32] [--resampler-out FILE]

UNET_DIR is a diffusers `unet` folder: config.json and diffusion_pytorch_model
[.fp16].safetensors (or .bin). Tensors keep their diffusers names. Matrices
and conv kernels are stored in --dtype (default f16); 1-D tensors (norms,
biases) stay f32.

--detokenizer CKPT: a SEED-X de-tokenizer pytorch_model.bin. Its `unet.<key>`
tensors replace (or add) the UNet tensor <key>: the first stage carries every
attn1/attn2 to_k/to_v weight, the second stage the full UNet with an 8-channel
conv_in (in_channels is then taken from conv_in.weight). Its `resampler.*`
tensors are written to --resampler-out FILE when given (original names), else
ignored.

--overlay (with --detokenizer): write only the checkpoint's UNet tensors, with the
complete metadata, as an overlay that unet.c loads on top of the base conversion
(sx_unet_load_files({overlay, base})).

--scheduler SCHED_DIR: a diffusers scheduler folder (scheduler_config.json);
its fields are stored as seedx.scheduler.*.

UNet metadata (seedx.unet.*): every config field the C forward needs, with
list-valued fields expanded per down block (`num_attention_heads` is the
resolved head count: diffusers 0.25 uses `attention_head_dim` as the number of
heads when `num_attention_heads` is null). Configurations the C code does not
implement are rejected here with a message naming the field.
"""
import json
import os

import sxckpt
from sxgguf import FLOAT_TYPES as DTYPES, write_gguf_stream

SUPPORTED_DOWN = ("DownBlock2D", "CrossAttnDownBlock2D")
SUPPORTED_UP = ("UpBlock2D", "CrossAttnUpBlock2D")

# diffusers 0.25.0 defaults for fields a config.json may omit
DEFAULTS = {
    "sample_size": None, "in_channels": 4, "out_channels": 4, "center_input_sample": False,
    "flip_sin_to_cos": True, "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "only_cross_attention": False, "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
    "downsample_padding": 1, "mid_block_scale_factor": 1.0, "dropout": 0.0, "act_fn": "silu",
    "norm_num_groups": 32, "norm_eps": 1e-5, "cross_attention_dim": 1280, "transformer_layers_per_block": 1,
    "reverse_transformer_layers_per_block": None, "encoder_hid_dim": None, "encoder_hid_dim_type": None,
    "attention_head_dim": 8, "num_attention_heads": None, "dual_cross_attention": False,
    "use_linear_projection": False, "class_embed_type": None, "addition_embed_type": None,
    "addition_time_embed_dim": None, "num_class_embeds": None, "upcast_attention": False,
    "resnet_time_scale_shift": "default", "resnet_skip_time_act": False, "resnet_out_scale_factor": 1.0,
    "time_embedding_type": "positional", "time_embedding_dim": None, "time_embedding_act_fn": None,
    "timestep_post_act": None, "time_cond_proj_dim": None, "conv_in_kernel": 3, "conv_out_kernel": 3,
    "projection_class_embeddings_input_dim": None, "attention_type": "default",
    "class_embeddings_concat": False, "mid_block_only_cross_attention": None,
    "cross_attention_norm": None, "addition_embed_type_num_heads": 64,
}


def add_args(p):
    p.add_argument("unet_dir", help="diffusers unet folder (config.json + weights)")
    p.add_argument("out", help="output .gguf")
    p.add_argument("--detokenizer", help="SEED-X de-tokenizer pytorch_model.bin (unet.* keys override)")
    p.add_argument("--scheduler", help="diffusers scheduler folder (scheduler_config.json)")
    p.add_argument("--dtype", choices=DTYPES, default="f16", help="type of matrices/conv kernels")
    p.add_argument("--resampler-out", help="write the de-tokenizer's resampler.* tensors here")
    p.add_argument("--overlay", action="store_true",
                   help="with --detokenizer: write only the tensors the checkpoint supplies (plus the full "
                        "metadata); load with sx_unet_load_files({OUT, base.gguf})")


def _per_block(v, n, name):
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise ValueError(f"config {name} has {len(v)} entries, expected {n} (one per down block)")
        for x in v:
            if not isinstance(x, int):
                raise ValueError(f"config {name}: nested/non-integer entries {v!r} are not supported")
        return [int(x) for x in v]
    return [int(v)] * n


def unet_metadata(cfg):
    """Validates a diffusers UNet config and returns the seedx.unet.* metadata."""
    c = dict(DEFAULTS)
    c.update({k: v for k, v in cfg.items() if not k.startswith("_")})

    def need(field, ok, what):
        if not ok:
            raise ValueError(f"config {field} = {c.get(field)!r} is not supported ({what})")

    down, up = list(c["down_block_types"]), list(c["up_block_types"])
    n = len(down)
    need("down_block_types", all(t in SUPPORTED_DOWN for t in down), "DownBlock2D/CrossAttnDownBlock2D")
    need("up_block_types", all(t in SUPPORTED_UP for t in up) and len(up) == n,
         "UpBlock2D/CrossAttnUpBlock2D, as many as down blocks")
    need("mid_block_type", c["mid_block_type"] == "UNetMidBlock2DCrossAttn", "UNetMidBlock2DCrossAttn")
    need("block_out_channels", len(c["block_out_channels"]) == n, "one per down block")
    need("time_embedding_type", c["time_embedding_type"] == "positional", "positional")
    need("act_fn", c["act_fn"] == "silu", "silu")
    need("resnet_time_scale_shift", c["resnet_time_scale_shift"] == "default", "default")
    need("class_embed_type", c["class_embed_type"] is None, "none")
    need("encoder_hid_dim", c["encoder_hid_dim"] is None, "none")
    need("time_cond_proj_dim", c["time_cond_proj_dim"] is None, "none")
    need("time_embedding_act_fn", c["time_embedding_act_fn"] is None, "none")
    need("timestep_post_act", c["timestep_post_act"] is None, "none")
    need("addition_embed_type", c["addition_embed_type"] in (None, "text_time"), "none or text_time")
    need("only_cross_attention", c["only_cross_attention"] in (False, None) or
         (isinstance(c["only_cross_attention"], list) and not any(c["only_cross_attention"])), "false")
    need("dual_cross_attention", not c["dual_cross_attention"], "false")
    need("upcast_attention", not c["upcast_attention"], "false")
    need("attention_type", c["attention_type"] == "default", "default")
    need("center_input_sample", not c["center_input_sample"], "false")
    need("class_embeddings_concat", not c["class_embeddings_concat"], "false")
    need("resnet_out_scale_factor", float(c["resnet_out_scale_factor"]) == 1.0, "1.0")
    need("mid_block_scale_factor", float(c["mid_block_scale_factor"]) == 1.0, "1.0")
    need("cross_attention_norm", c["cross_attention_norm"] is None, "none")
    need("reverse_transformer_layers_per_block", c["reverse_transformer_layers_per_block"] is None, "none")
    need("cross_attention_dim", isinstance(c["cross_attention_dim"], int), "a single integer")
    need("conv_in_kernel", c["conv_in_kernel"] % 2 == 1, "odd")
    need("conv_out_kernel", c["conv_out_kernel"] % 2 == 1, "odd")

    heads_src = c["num_attention_heads"] if c["num_attention_heads"] is not None else c["attention_head_dim"]
    heads = _per_block(heads_src, n, "attention_head_dim/num_attention_heads")
    tl = _per_block(c["transformer_layers_per_block"], n, "transformer_layers_per_block")
    boc = [int(x) for x in c["block_out_channels"]]
    for i, (ch, h) in enumerate(zip(boc, heads)):
        if ch % h != 0:
            raise ValueError(f"block {i}: {ch} channels do not split into {h} heads")
    ted = c["time_embedding_dim"] or boc[0] * 4
    m = {
        "seedx.unet.arch": "UNet2DConditionModel",
        "seedx.unet.diffusers_version": str(cfg.get("_diffusers_version", "")),
        "seedx.unet.in_channels": int(c["in_channels"]),
        "seedx.unet.out_channels": int(c["out_channels"]),
        "seedx.unet.sample_size": int(c["sample_size"] or 0),
        "seedx.unet.block_out_channels": boc,
        "seedx.unet.down_block_types": down,
        "seedx.unet.up_block_types": up,
        "seedx.unet.mid_block_type": c["mid_block_type"],
        "seedx.unet.layers_per_block": int(c["layers_per_block"]),
        "seedx.unet.transformer_layers_per_block": tl,
        "seedx.unet.num_attention_heads": heads,
        "seedx.unet.attention_head_dim_config": _per_block(c["attention_head_dim"], n, "attention_head_dim"),
        "seedx.unet.cross_attention_dim": int(c["cross_attention_dim"]),
        "seedx.unet.use_linear_projection": bool(c["use_linear_projection"]),
        "seedx.unet.norm_num_groups": int(c["norm_num_groups"]),
        "seedx.unet.norm_eps": float(c["norm_eps"]),
        "seedx.unet.flip_sin_to_cos": bool(c["flip_sin_to_cos"]),
        "seedx.unet.freq_shift": float(c["freq_shift"]),
        "seedx.unet.time_embedding_dim": int(ted),
        "seedx.unet.conv_in_kernel": int(c["conv_in_kernel"]),
        "seedx.unet.conv_out_kernel": int(c["conv_out_kernel"]),
        "seedx.unet.downsample_padding": int(c["downsample_padding"]),
        "seedx.unet.addition_embed_type": c["addition_embed_type"] or "",
        "seedx.unet.act_fn": c["act_fn"],
    }
    if c["addition_embed_type"] == "text_time":
        if not c["addition_time_embed_dim"] or not c["projection_class_embeddings_input_dim"]:
            raise ValueError("text_time needs addition_time_embed_dim and projection_class_embeddings_input_dim")
        m["seedx.unet.addition_time_embed_dim"] = int(c["addition_time_embed_dim"])
        m["seedx.unet.projection_class_embeddings_input_dim"] = int(c["projection_class_embeddings_input_dim"])
    return m


SCHED_FIELDS = {
    "num_train_timesteps": int, "beta_start": float, "beta_end": float, "beta_schedule": str,
    "prediction_type": str, "interpolation_type": str, "timestep_spacing": str, "steps_offset": int,
    "use_karras_sigmas": bool, "timestep_type": str, "rescale_betas_zero_snr": bool,
}
SCHED_DEFAULTS = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02,
                  "beta_schedule": "linear", "prediction_type": "epsilon", "interpolation_type": "linear",
                  "timestep_spacing": "linspace", "steps_offset": 0, "use_karras_sigmas": False,
                  "timestep_type": "discrete", "rescale_betas_zero_snr": False}


def scheduler_metadata(d):
    p = os.path.join(d, "scheduler_config.json")
    with open(p) as f:
        cfg = json.load(f)
    if cfg.get("_class_name", "EulerDiscreteScheduler") != "EulerDiscreteScheduler":
        raise ValueError(f"{p}: _class_name {cfg.get('_class_name')!r}; only EulerDiscreteScheduler is supported")
    if cfg.get("trained_betas") is not None:
        raise ValueError(f"{p}: trained_betas is not supported")
    c = dict(SCHED_DEFAULTS)
    c.update({k: cfg[k] for k in SCHED_FIELDS if k in cfg and cfg[k] is not None})
    m = {"seedx.scheduler.class": "EulerDiscreteScheduler"}
    for k, t in SCHED_FIELDS.items():
        m["seedx.scheduler." + k] = t(c[k])
    return m


def load_unet_weights(d):
    """({name: Tensor}, weights file) for a diffusers unet folder."""
    files, _, what = sxckpt.folder_files(d, sxckpt.diffusers_layouts())
    if not files:
        raise ValueError(f"{d}: no diffusion_pytorch_model[.fp16].safetensors or .bin found")
    return sxckpt.read_folder(d, sxckpt.diffusers_layouts()), os.path.join(d, what)


def run(args):
    cfg_path = os.path.join(args.unet_dir, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    if cfg.get("_class_name", "UNet2DConditionModel") != "UNet2DConditionModel":
        raise ValueError(f"{cfg_path}: _class_name {cfg.get('_class_name')!r}, expected UNet2DConditionModel")
    meta = unet_metadata(cfg)
    sd, src = load_unet_weights(args.unet_dir)
    print(f"{src}: {len(sd)} tensors")
    if args.detokenizer:
        ck = sxckpt.read_file(args.detokenizer)  # tensor by tensor: stage 2 is a 10.5 GB pickle
        n_over = n_new = 0
        res = []
        supplied = set()
        for k, v in ck.items():
            if k.startswith("unet."):
                key = k[len("unet."):]
                shape = tuple(v.shape)
                if key in sd:
                    if key != "conv_in.weight" and tuple(sd[key].shape) != shape:
                        raise ValueError(f"{args.detokenizer}: '{k}' has shape {list(shape)}, "
                                         f"the UNet's '{key}' is {list(sd[key].shape)}")
                    n_over += 1
                else:
                    print(f"warning: {args.detokenizer}: '{k}' is not a tensor of the base UNet (added)")
                    n_new += 1
                sd[key] = v.view(name=key)
                supplied.add(key)
            elif k.startswith("resampler."):
                res.append((k, v, "f32"))
        print(f"{args.detokenizer}: {n_over} UNet tensors replaced, {n_new} added, {len(res)} resampler tensors")
        if args.resampler_out:
            if not res:
                raise ValueError(f"{args.detokenizer}: no resampler.* tensors for --resampler-out")
            write_gguf_stream(args.resampler_out,
                              {"seedx.resampler.source": os.path.basename(args.detokenizer)}, res)
            print(f"wrote {args.resampler_out}")
    if "conv_in.weight" not in sd:
        raise ValueError(f"{src}: tensor 'conv_in.weight' missing")
    cin = int(sd["conv_in.weight"].shape[1])
    if cin != meta["seedx.unet.in_channels"]:
        print(f"conv_in.weight has {cin} input channels: in_channels {meta['seedx.unet.in_channels']} -> {cin}")
        meta["seedx.unet.in_channels"] = cin
    if args.scheduler:
        meta.update(scheduler_metadata(args.scheduler))
    keys = sorted(sd)
    if args.overlay:
        if not args.detokenizer:
            raise ValueError("--overlay needs --detokenizer")
        keys = sorted(supplied)
        meta["seedx.unet.overlay"] = True
    tensors = [(k, sd[k], "f32" if len(sd[k].shape) <= 1 else args.dtype) for k in keys]
    write_gguf_stream(args.out, meta, tensors)
    print(f"wrote {args.out}: {len(tensors)} tensors, in_channels {meta['seedx.unet.in_channels']}")
