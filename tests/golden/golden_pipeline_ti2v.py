#!/usr/bin/env python3
"""End-to-end golden for Wan2.2 TI2V (issue #18, TI2V-5B's layout): tests/data/wan22-ti2v-tiny/.

    python3 tests/golden/golden_pipeline_ti2v.py tests/data

Needs what golden_pipeline.py needs, and wan-tiny and tests/data/image (golden_image.py).
Neither the engine, its build nor CI runs this script.

wan22-ti2v-tiny is a WanPipeline directory with expand_timesteps true (a timestep per token),
the residual 2.2 VAE (AutoencoderKLWan is_residual, patch_size 2, 16x spatial compression) and a
DiT whose in/out channels are the VAE's z_dim, as TI2V-5B; tiny random weights (the VAE's
stored in bf16 to keep the files small; every run computes in float32). The text
encoder, tokenizer are wan-tiny's (links); the scheduler is wan-tiny's UniPC with flow_shift 5.0
(TI2V-5B's). Cases: text to video (WanPipeline: every token's timestep t) and image to video
(WanImageToVideoPipeline.from_pretrained(the same directory), image = tests/data/image/rgb.png
opened with PIL and converted to RGB as diffusers' load_image does: its latent is the first
latent frame, whose tokens get t = 0).
"""
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import golden_pipeline as G  # noqa: E402

NAME = "wan22-ti2v-tiny"
Z = 8
SEED_W = 2205
CASES = [
    dict(name="t2v", image=None, seed=7301, prompt="A red fox runs through fresh snow",
         negative_prompt=None, guidance_scale=5.0, num_inference_steps=4, height=64, width=32,
         num_frames=5),
    dict(name="i2v", image="rgb.png", seed=7302, prompt="The scene comes alive",
         negative_prompt="blurry", guidance_scale=4.0, num_inference_steps=4, height=32,
         width=64, num_frames=5),
    dict(name="i2v_noguide", image="rgb.png", seed=7303, prompt="Slow pan",
         negative_prompt=None, guidance_scale=1.0, num_inference_steps=3, height=32, width=32,
         num_frames=9),
]
BUDGET = 400000


def perturb(model, seed):
    g = torch.Generator("cpu").manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            std = p.double().std().item() if p.numel() > 1 else abs(p.item())
            p.add_(torch.randn(p.shape, generator=g, dtype=torch.float32) * (0.3 * (std or 0.1)))


def build(data_dir):
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    out = os.path.join(data_dir, NAME)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "scheduler"))
    for comp in ("text_encoder", "tokenizer"):
        os.symlink("../wan-tiny/" + comp, os.path.join(out, comp))
    with open(os.path.join(data_dir, "wan-tiny", "scheduler", "scheduler_config.json")) as f:
        sc = json.load(f)
    sc["flow_shift"] = 5.0
    with open(os.path.join(out, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(sc, f, indent=2, sort_keys=True)
        f.write("\n")
    torch.manual_seed(SEED_W)
    g = torch.Generator("cpu").manual_seed(SEED_W + 1)
    vae = AutoencoderKLWan(base_dim=4, decoder_base_dim=8, z_dim=Z, dim_mult=[1, 2, 2, 2],
                           num_res_blocks=1, attn_scales=[], temperal_downsample=[False, True, True],
                           latents_mean=[round(x, 4) for x in (torch.randn(Z, generator=g) * 0.3).tolist()],
                           latents_std=[round(x, 4) for x in (torch.rand(Z, generator=g) + 0.5).tolist()],
                           is_residual=True, in_channels=12, out_channels=12, patch_size=2,
                           scale_factor_temporal=4, scale_factor_spatial=16)
    perturb(vae, SEED_W + 2)
    vae.to(torch.bfloat16).save_pretrained(os.path.join(out, "vae"), safe_serialization=True)
    dit = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16,
                                in_channels=Z, out_channels=Z, text_dim=24, freq_dim=256,
                                ffn_dim=64, num_layers=2, cross_attn_norm=True,
                                qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
    perturb(dit, SEED_W + 3)
    dit.save_pretrained(os.path.join(out, "transformer"), safe_serialization=True)
    return out


def write_model_index(out):
    import tempfile
    from diffusers import (AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline,
                           WanTransformer3DModel)
    from transformers import AutoTokenizer, UMT5EncoderModel
    pipe = WanPipeline(
        tokenizer=AutoTokenizer.from_pretrained(os.path.join(out, "tokenizer")),
        text_encoder=UMT5EncoderModel.from_pretrained(os.path.join(out, "text_encoder"),
                                                      dtype=torch.float32),
        vae=AutoencoderKLWan.from_pretrained(os.path.join(out, "vae")),
        scheduler=UniPCMultistepScheduler.from_pretrained(os.path.join(out, "scheduler")),
        transformer=WanTransformer3DModel.from_pretrained(os.path.join(out, "transformer")),
        expand_timesteps=True)
    with tempfile.TemporaryDirectory() as tmp:
        pipe.save_config(tmp)
        shutil.copyfile(os.path.join(tmp, "model_index.json"), os.path.join(out, "model_index.json"))
    with open(os.path.join(out, "model_index.json")) as f:
        return json.load(f)


def latent_shape(c):
    return (1, Z, (c["num_frames"] - 1) // 4 + 1, c["height"] // 16, c["width"] // 16)


def generate(data_dir, save_meta):
    import diffusers
    import PIL
    import transformers
    from diffusers import WanImageToVideoPipeline, WanPipeline
    from diffusers.utils.torch_utils import randn_tensor
    from PIL import Image
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    diffusers.utils.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    out = build(data_dir)
    model_index = write_model_index(out)
    # diffusers' i2v prompt_clean calls ftfy.fix_text without checking that ftfy is there (the
    # T2V pipeline skips it then): the same no-op here, for these ASCII prompts
    import types
    from diffusers.pipelines.wan import pipeline_wan_i2v
    if not hasattr(pipeline_wan_i2v, "ftfy"):
        pipeline_wan_i2v.ftfy = types.SimpleNamespace(fix_text=lambda t: t)
    t2v = WanPipeline.from_pretrained(out, dtype=torch.float32)
    i2v = WanImageToVideoPipeline.from_pretrained(out, dtype=torch.float32)
    for p in (t2v, i2v):
        assert p.config.expand_timesteps and p.vae.config.is_residual
        p.set_progress_bar_config(disable=True)
    tensors, meta = {}, {}
    for c in CASES:
        gen = torch.Generator("cpu").manual_seed(c["seed"])
        noise = randn_tensor(latent_shape(c), generator=gen, device=torch.device("cpu"),
                             dtype=torch.float32)
        kw = dict(prompt=c["prompt"], height=c["height"], width=c["width"],
                  num_frames=c["num_frames"], num_inference_steps=c["num_inference_steps"],
                  guidance_scale=c["guidance_scale"], max_sequence_length=512)
        if c["negative_prompt"] is not None:
            kw["negative_prompt"] = c["negative_prompt"]
        pipe = t2v
        if c["image"]:
            pipe = i2v
            kw["image"] = Image.open(os.path.join(data_dir, "image", c["image"])).convert("RGB")
        res = {}
        for ot in ("np", "latent"):
            pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
            res[ot] = pipe(**kw, latents=noise.clone(), output_type=ot).frames
        frames, lat = torch.from_numpy(res["np"][0].copy()), res["latent"]
        pre = c["name"] + "."
        tensors[pre + "noise"] = noise[0]
        tensors[pre + "latents"] = lat[0]
        tensors[pre + "frames"] = frames
        if c["image"]:  # the preprocessed image and its normalised latent (the condition)
            img = pipe.video_processor.preprocess(kw["image"], height=c["height"], width=c["width"])
            tensors[pre + "image"] = img[0].float()
            mean = torch.tensor(pipe.vae.config.latents_mean).view(1, Z, 1, 1, 1)
            inv_std = 1.0 / torch.tensor(pipe.vae.config.latents_std).view(1, Z, 1, 1, 1)
            z = pipe.vae.encode(img.unsqueeze(2)).latent_dist.mode()
            tensors[pre + "condition"] = ((z - mean) * inv_std)[0]
        info = {k: c[k] for k in c}
        info["pipeline"] = type(pipe).__name__
        info["timesteps"] = [int(t) for t in pipe.scheduler.timesteps]
        meta["case." + c["name"]] = json.dumps(info, sort_keys=True)
        print(c["name"], type(pipe).__name__, list(lat.shape), "frames", list(frames.shape),
              "rms %.3g" % lat.pow(2).mean().sqrt().item())
    meta.update({"generator": "tests/golden/golden_pipeline_ti2v.py", "torch": torch.__version__,
                 "diffusers": diffusers.__version__, "transformers": transformers.__version__,
                 "pillow": PIL.__version__, "cases": json.dumps([c["name"] for c in CASES]),
                 "model_index": json.dumps(model_index, sort_keys=True),
                 "layout": "C.noise / C.latents [z, T, H/16, W/16] (latents: output_type='latent',"
                           " the first frame the condition for i2v); C.frames [N, H, W, 3]; "
                           "C.image [3, H, W] in [-1, 1] (preprocess); C.condition [z, 1, H/16, "
                           "W/16] ((mode - mean) / std)"})
    path = os.path.join(out, "golden.safetensors")
    save_meta({k: v.contiguous() for k, v in tensors.items()}, path, meta)
    size = os.path.getsize(path)
    print("wrote %s (%d bytes)" % (path, size))
    assert size <= BUDGET, size
    for root, _, files in os.walk(out):
        for fn in files:
            os.chmod(os.path.join(root, fn), 0o644)


if __name__ == "__main__":
    from gen_golden import save_file_sorted_meta
    generate(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(HERE), "data"),
             save_file_sorted_meta)
