#!/usr/bin/env python3
"""End-to-end golden for wanrun's text-to-video pipeline (issue #6): tests/data/wan-tiny/.

Called by gen_golden.py as golden_pipeline.generate(data_dir, save_file_sorted_meta), or
standalone:

    python3 tests/golden/golden_pipeline.py tests/data     # writes tests/data/wan-tiny/

Needs torch, diffusers, transformers, safetensors, sentencepiece and protobuf from PyPI, and NOT
ftfy (diffusers' prompt_clean would apply ftfy.fix_text, which wanrun does not implement; this
script refuses to run with it). Neither the engine, its build nor CI runs this script.

wan-tiny is a complete diffusers model directory that WanPipeline.from_pretrained loads, built
from the tiny components the other goldens already committed (relative symlinks, which git
stores as links), plus a few small files:

  transformer   -> ../dit/tiny2/transformer      WanTransformer3DModel (2 heads x 16, 2 layers,
                                                 text_dim 24, 16 -> 16 channels, patch 1x2x2)
  text_encoder  -> ../t5/tiny_b/text_encoder     UMT5EncoderModel (d_model 24, 3 layers, vocab
                                                 1800, bf16 weights on disk)
  vae           -> ../vae/tiny_a/vae             AutoencoderKLWan (z_dim 16, base_dim 2; decoder
                                                 weights only: from_pretrained reports the
                                                 encoder as newly initialised, T2V never uses it)
  tokenizer/spiece.model -> ../../tokenizer/spiece.model   (1,500-piece unigram model)
  tokenizer/tokenizer_config.json   T5Tokenizer, extra_ids 300, </s> <unk> <pad> (no
                                    tokenizer.json: transformers converts spiece.model on load)
  scheduler/scheduler_config.json   copy of tests/data/sched/scheduler_config.json (Wan2.1 UniPC,
                                    flow_shift 3.0)
  model_index.json                  WanPipeline(...).save_config() of the loaded components
  golden.safetensors                the runs below (see README / __metadata__)
  README

Each case is one WanPipeline.__call__ on WanPipeline.from_pretrained(wan-tiny, vae=...,
dtype=torch.float32) (see load_pipe) in float32 on the CPU, one thread, deterministic
algorithms, with the initial noise drawn from a seeded torch.Generator and passed as latents=.
The script also checks the tokenizer against golden_tokenizer.py's, that the recipe written out
with direct component calls reproduces the pipeline bit for bit, the float32 error against a
float64 run, how far plausible slips land (SENSITIVITY), and that a fresh process reproduces
the stored outputs bit for bit.
"""
import contextlib
import copy
import json
import math
import os
import shutil
import subprocess
import sys

import torch

# component -> symlink target, relative to wan-tiny/
LINKS = {"transformer": "../dit/tiny2/transformer",
         "text_encoder": "../t5/tiny_b/text_encoder",
         "vae": "../vae/tiny_a/vae"}
SPIECE_LINK = "../../tokenizer/spiece.model"   # relative to wan-tiny/tokenizer/
EXTRA_IDS = 300
# What T5TokenizerFast.from_pretrained(dir with spiece.model, extra_ids=300) needs to be rebuilt
# from the directory alone (golden_tokenizer.py builds the tokenizer that way).
TOKENIZER_CONFIG = {"tokenizer_class": "T5Tokenizer", "extra_ids": EXTRA_IDS,
                    "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
# FlowMatchEulerDiscreteScheduler.from_config(this): as golden_sched.py's EULER_CONFIG
EULER_CONFIG = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000,
                "shift": 3.0, "use_dynamic_shifting": False}

# Sizes differ per case to stay inside the golden budget (frames dominate: 5*H*W*3*4 bytes) and
# to cover landscape (latent 4x6), square (4x4), portrait (4x2) and the smallest size (latent
# 2x2: a 1x1 DiT patch grid per frame).
CASES = [
    dict(name="unipc", scheduler="unipc", seed=6101,
         prompt="A red fox runs through fresh snow", negative_prompt=None,
         guidance_scale=5.0, num_inference_steps=4, height=32, width=48, num_frames=5),
    dict(name="euler", scheduler="euler", seed=6102,
         prompt="A red fox runs through fresh snow", negative_prompt=None,
         guidance_scale=5.0, num_inference_steps=4, height=32, width=32, num_frames=5),
    dict(name="negative", scheduler="unipc", seed=6103,
         prompt="Two cats &amp; a dog play  in the rain,\tat night",
         negative_prompt="blurry, low quality, 静止",
         guidance_scale=3.5, num_inference_steps=6, height=32, width=16, num_frames=5),
    dict(name="noguide", scheduler="unipc", seed=6104,
         prompt="A koi fish swims under the sea, slow motion", negative_prompt=None,
         guidance_scale=1.0, num_inference_steps=4, height=16, width=16, num_frames=5),
]
MAX_SEQUENCE_LENGTH = 512
BUDGET = 250000   # bytes for golden.safetensors

README = """\
wan-tiny: a complete tiny diffusers Wan2.1 text-to-video directory and an end-to-end golden run
on it (issue #6). Regenerate: python3 tests/golden/golden_pipeline.py tests/data
(or through tests/golden/gen_golden.py). Needs no ftfy.

Components are relative symlinks to the committed tiny models of the other goldens:
  transformer  -> ../dit/tiny2/transformer     text_encoder -> ../t5/tiny_b/text_encoder
  vae          -> ../vae/tiny_a/vae (decoder weights only)
  tokenizer/spiece.model -> ../../tokenizer/spiece.model, tokenizer/tokenizer_config.json
  scheduler/scheduler_config.json (Wan2.1 UniPC, flow_shift 3.0), model_index.json
The golden was made with
  vae = AutoencoderKLWan.from_pretrained("tests/data/wan-tiny", subfolder="vae",
                                         low_cpu_mem_usage=False, dtype=torch.float32)
  pipe = WanPipeline.from_pretrained("tests/data/wan-tiny", vae=vae, dtype=torch.float32)
A plain WanPipeline.from_pretrained(dir) loads too, but (1) the VAE's missing encoder weights
stay on the meta device, so vae.device is "meta" and __call__ fails moving the latents there
before decoding (output_type="latent" works); (2) without dtype=, transformers 5 loads the text
encoder in its on-disk bf16.

golden.safetensors, per case C (unipc, euler, negative, noguide):
  C.noise           F32 [16, T, H/8, W/8]  the initial latents (passed as latents=, batch dim
                    dropped); T = (num_frames-1)/4 + 1
  C.latents         F32 [16, T, H/8, W/8]  final latents after the last scheduler step, before
                    the VAE's de-normalisation
  C.latents_step0   F32 [16, T, H/8, W/8]  the latents after the first step (one CFG DiT
                    evaluation and one scheduler step: where a slip shows first)
  C.frames          F32 [num_frames, H, W, 3]  the pipeline's output_type="np" video in [0, 1]
  C.timesteps       the schedule the DiT saw: I64 (UniPC) or F32 (Euler)            [steps]
  C.sigmas          F32 the scheduler's sigma table (last entry 0)                  [steps+1]
  C.prompt_ids      I32 [n]  token ids of prompt_clean(prompt) incl. </s> (the mask is n ones)
  C.prompt_embeds   F32 [n, 24]  rows [0, n) of the encoder_hidden_states the DiT gets (rows
                    n..511 are exact zeros)
  C.negative_ids / C.negative_embeds   the same for the negative prompt ("" when not given);
                    absent when guidance_scale <= 1 (CFG off: one DiT pass per step)
  __metadata__ case.C (JSON): prompt, negative_prompt (null: not passed, "" used),
                    guidance_scale, num_inference_steps, height, width, num_frames, seed,
                    scheduler ("unipc" | "euler"), timesteps, the exact call, fp32-vs-float64
                    errors, sensitivity (how far plausible slips land: latents NMSE, frames
                    max |diff|); top level: cases (JSON list), scheduler_config.unipc/.euler,
                    load, recipe, checks, versions.
Tolerances (issue #6): latents NMSE <= 1e-5, frames max |diff| <= 2e-3.
"""


def nmse(a, ref):
    a, ref = a.double(), ref.double()
    return (((a - ref) ** 2).sum() / (ref ** 2).sum()).item()


def maxabs(a, ref):
    return (a.double() - ref.double()).abs().max().item()


@contextlib.contextmanager
def float_keeps_f64():
    """diffusers upcasts with .float() (DiT norms and modulation, RoPE, the VAE's upsampler): let
    .float() leave float64 tensors alone so that a .double() model really runs in float64."""
    orig = torch.Tensor.float
    torch.Tensor.float = lambda t, *a, **k: t if t.dtype == torch.float64 else orig(t, *a, **k)
    try:
        yield
    finally:
        torch.Tensor.float = orig


def sinusoid_f64(t, dim):
    """diffusers Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0), all in float64."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    ang = t.to(torch.float64)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=-1)


# ---- the directory --------------------------------------------------------------------------

def build_dir(data_dir):
    """(Re)creates data_dir/wan-tiny: links, tokenizer/, scheduler/. model_index.json is written
    later from the loaded components."""
    out = os.path.join(data_dir, "wan-tiny")
    for comp, target in LINKS.items():
        src = os.path.normpath(os.path.join(out, target))
        if not os.path.isfile(os.path.join(src, "config.json")):
            sys.exit("golden_pipeline: %s missing; generate the %s golden first" % (src, comp))
    spm = os.path.normpath(os.path.join(out, "tokenizer", SPIECE_LINK))
    sched_cfg = os.path.join(data_dir, "sched", "scheduler_config.json")
    for p in (spm, sched_cfg):
        if not os.path.isfile(p):
            sys.exit("golden_pipeline: %s missing; generate it first" % p)
    shutil.rmtree(out, ignore_errors=True)   # (rmtree unlinks symlinks, never follows them)
    os.makedirs(os.path.join(out, "tokenizer"))
    os.makedirs(os.path.join(out, "scheduler"))
    for comp, target in LINKS.items():
        os.symlink(target, os.path.join(out, comp))
    os.symlink(SPIECE_LINK, os.path.join(out, "tokenizer", "spiece.model"))
    with open(os.path.join(out, "tokenizer", "tokenizer_config.json"), "w") as f:
        json.dump(TOKENIZER_CONFIG, f, indent=2, sort_keys=True)
        f.write("\n")
    shutil.copyfile(sched_cfg, os.path.join(out, "scheduler", "scheduler_config.json"))
    with open(os.path.join(out, "README"), "w") as f:
        f.write(README)
    return out


def check_configs(out):
    """The components must fit together (no new weights are made here)."""
    def cfg(comp):
        with open(os.path.join(out, comp, "config.json")) as f:
            return json.load(f)
    dit, t5, vae = cfg("transformer"), cfg("text_encoder"), cfg("vae")
    problems = []
    if dit["text_dim"] != t5["d_model"]:
        problems.append("DiT text_dim %d != T5 d_model %d" % (dit["text_dim"], t5["d_model"]))
    if dit["in_channels"] != vae["z_dim"] or dit["out_channels"] != vae["z_dim"]:
        problems.append("DiT in/out channels %d/%d != VAE z_dim %d"
                        % (dit["in_channels"], dit["out_channels"], vae["z_dim"]))
    if t5["vocab_size"] < 1500 + EXTRA_IDS:
        problems.append("T5 vocab %d < tokenizer's %d" % (t5["vocab_size"], 1500 + EXTRA_IDS))
    if problems:
        sys.exit("golden_pipeline: incompatible components: " + "; ".join(problems))
    return ("DiT text_dim %d == T5 d_model %d; DiT in/out_channels %d/%d == VAE z_dim %d; T5 "
            "vocab_size %d == 1500 pieces + %d extra ids"
            % (dit["text_dim"], t5["d_model"], dit["in_channels"], dit["out_channels"],
               vae["z_dim"], t5["vocab_size"], EXTRA_IDS))


def check_tokenizer(out, data_dir, case_prompts):
    """The directory's tokenizer (AutoTokenizer and T5TokenizerFast) == golden_tokenizer.py's
    T5TokenizerFast.from_pretrained(dir with spiece.model, extra_ids=300), on every prompt of
    tests/data/tokenizer/prompts.json and of the cases."""
    import tempfile
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean
    from transformers import AutoTokenizer, T5TokenizerFast
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(os.path.join(data_dir, "tokenizer", "spiece.model"),
                    os.path.join(tmp, "spiece.model"))
        ref = T5TokenizerFast.from_pretrained(tmp, extra_ids=EXTRA_IDS)
    toks = {"AutoTokenizer": AutoTokenizer.from_pretrained(os.path.join(out, "tokenizer")),
            "T5TokenizerFast": T5TokenizerFast.from_pretrained(os.path.join(out, "tokenizer"))}
    with open(os.path.join(data_dir, "tokenizer", "prompts.json"), encoding="utf-8") as f:
        prompts = [c["prompt"] for c in json.load(f)["cases"]] + list(case_prompts)
    for name, tok in toks.items():
        assert type(tok) is type(ref), (name, type(tok))
        assert len(tok) == len(ref) == 1800, (name, len(tok))
        assert tok.get_vocab() == ref.get_vocab(), name
        assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2), name
        assert tok.convert_tokens_to_ids("<extra_id_0>") == 1799, name
        assert tok.convert_tokens_to_ids("<extra_id_299>") == 1500, name
        assert tok.all_special_ids == ref.all_special_ids, name
        kw = dict(padding="max_length", max_length=MAX_SEQUENCE_LENGTH, truncation=True,
                  add_special_tokens=True, return_attention_mask=True)
        for p in prompts:
            c = prompt_clean(p)
            a, b = tok(c, **kw), ref(c, **kw)
            assert a["input_ids"] == b["input_ids"], (name, p)
            assert a["attention_mask"] == b["attention_mask"], (name, p)
    return ("AutoTokenizer and T5TokenizerFast .from_pretrained(wan-tiny/tokenizer): class %s, "
            "len 1800, same vocab, special ids and ids/masks (max_length 512) as "
            "T5TokenizerFast.from_pretrained(dir with spiece.model, extra_ids=300) on %d prompts"
            % (type(ref).__name__, len(prompts)))


def write_model_index(out):
    """model_index.json as diffusers writes it: save_config of a WanPipeline built from the
    components loaded one by one."""
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
        transformer=WanTransformer3DModel.from_pretrained(os.path.join(out, "transformer")))
    with tempfile.TemporaryDirectory() as tmp:
        pipe.save_config(tmp)
        shutil.copyfile(os.path.join(tmp, "model_index.json"),
                        os.path.join(out, "model_index.json"))
    with open(os.path.join(out, "model_index.json")) as f:
        return json.load(f)


EXPECTED_CLASSES = {"tokenizer": "T5Tokenizer", "text_encoder": "UMT5EncoderModel",
                    "transformer": "WanTransformer3DModel", "vae": "AutoencoderKLWan",
                    "scheduler": "UniPCMultistepScheduler"}


def load_pipe(out):
    """WanPipeline.from_pretrained(out, vae=<the VAE loaded with low_cpu_mem_usage=False>,
    dtype=torch.float32). The VAE has decoder weights only: with the default
    low_cpu_mem_usage=True its missing encoder/quant_conv parameters stay on the meta device,
    vae.device (its first parameter, encoder.conv_in.weight) is then 'meta', and
    WanPipeline.__call__ moves the latents there before decoding (get_module_execution_device)
    and fails. low_cpu_mem_usage=False cannot be passed to the whole pipeline (the transformer
    has _keep_in_fp32_modules), hence the separate VAE load. Without dtype=float32,
    transformers 5 loads the text encoder in its on-disk bfloat16."""
    from diffusers import AutoencoderKLWan, WanPipeline
    vae = AutoencoderKLWan.from_pretrained(out, subfolder="vae", low_cpu_mem_usage=False,
                                           dtype=torch.float32)
    pipe = WanPipeline.from_pretrained(out, vae=vae, dtype=torch.float32)
    for comp, cls in EXPECTED_CLASSES.items():
        assert type(getattr(pipe, comp)).__name__ == cls, (comp, type(getattr(pipe, comp)))
    for comp in ("text_encoder", "transformer", "vae"):
        assert getattr(pipe, comp).dtype == torch.float32, (comp, getattr(pipe, comp).dtype)
        assert all(p.dtype == torch.float32 for p in getattr(pipe, comp).parameters()), comp
    assert pipe.transformer_2 is None and pipe.config.boundary_ratio is None
    assert not pipe.config.expand_timesteps
    pipe.set_progress_bar_config(disable=True)
    pipe.golden_unipc_config = copy.deepcopy(dict(pipe.scheduler.config))
    return pipe


# ---- the runs -------------------------------------------------------------------------------

def make_scheduler(pipe, kind):
    """A fresh scheduler for one call: the directory's UniPC (the config from_pretrained loaded,
    kept aside by load_pipe: pipe.scheduler itself may be an Euler by now) or the Euler."""
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
    if kind == "unipc":
        s = UniPCMultistepScheduler.from_config(pipe.golden_unipc_config)
        assert s.config.use_flow_sigmas and s.config.flow_shift == 3.0
        assert s.config.prediction_type == "flow_prediction"
        return s
    s = FlowMatchEulerDiscreteScheduler.from_config(EULER_CONFIG)
    assert s.config.shift == 3.0 and not s.config.use_dynamic_shifting
    return s


def latent_shape(c):
    return (1, 16, (c["num_frames"] - 1) // 4 + 1, c["height"] // 8, c["width"] // 8)


def draw_noise(c):
    """What prepare_latents draws for generator=torch.Generator("cpu").manual_seed(seed)."""
    from diffusers.utils.torch_utils import randn_tensor
    g = torch.Generator("cpu").manual_seed(c["seed"])
    return randn_tensor(latent_shape(c), generator=g, device=torch.device("cpu"),
                        dtype=torch.float32)


def call_kwargs(c, noise, output_type):
    kw = dict(prompt=c["prompt"], height=c["height"], width=c["width"],
              num_frames=c["num_frames"], num_inference_steps=c["num_inference_steps"],
              guidance_scale=c["guidance_scale"], latents=noise.clone(),
              output_type=output_type, max_sequence_length=MAX_SEQUENCE_LENGTH)
    if c["negative_prompt"] is not None:
        kw["negative_prompt"] = c["negative_prompt"]
    return kw


def call_text(c):
    kw = ["prompt=%s" % json.dumps(c["prompt"], ensure_ascii=False)]
    if c["negative_prompt"] is not None:
        kw.append("negative_prompt=%s" % json.dumps(c["negative_prompt"], ensure_ascii=False))
    kw += ["height=%d" % c["height"], "width=%d" % c["width"], "num_frames=%d" % c["num_frames"],
           "num_inference_steps=%d" % c["num_inference_steps"],
           "guidance_scale=%g" % c["guidance_scale"], "latents=<case>.noise[None]",
           'output_type="np"', "max_sequence_length=%d" % MAX_SEQUENCE_LENGTH]
    return "pipe(%s).frames[0]" % ", ".join(kw)


def run_pipeline(pipe, c, noise):
    """Two identical calls: output_type="np" with a callback recording the latents after every
    step, and output_type="latent". Returns (frames [N,H,W,3], final latents [1,...], per-step
    latents, timesteps, sigmas)."""
    steps, seen_t = [], []

    def cb(p, i, t, kw):
        steps.append(kw["latents"].detach().clone())
        seen_t.append(t.clone())
        return {}

    pipe.scheduler = make_scheduler(pipe, c["scheduler"])
    out = pipe(**call_kwargs(c, noise, "np"), callback_on_step_end=cb,
               callback_on_step_end_tensor_inputs=["latents"])
    frames = out.frames
    timesteps, sigmas = pipe.scheduler.timesteps.clone(), pipe.scheduler.sigmas.clone()
    assert len(steps) == c["num_inference_steps"]
    assert torch.equal(torch.stack(seen_t), timesteps)
    pipe.scheduler = make_scheduler(pipe, c["scheduler"])
    lat = pipe(**call_kwargs(c, noise, "latent")).frames
    assert torch.equal(lat, steps[-1]), "output_type='latent' != callback's last latents"
    assert frames.dtype.name == "float32" and frames.shape == (1, c["num_frames"], c["height"],
                                                               c["width"], 3), frames.shape
    return torch.from_numpy(frames[0].copy()), lat, steps, timesteps, sigmas


def prompt_rows(pipe, text):
    """(ids [n], rows [n, D]) of one prompt, and the full [512, D] embedding, as the pipeline
    computes them (WanPipeline._get_t5_prompt_embeds; tokenizer call written out for the ids)."""
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean
    enc = pipe.tokenizer(prompt_clean(text), padding="max_length",
                         max_length=MAX_SEQUENCE_LENGTH, truncation=True,
                         add_special_tokens=True, return_attention_mask=True,
                         return_tensors="pt")
    n = int(enc.attention_mask.sum())
    full = pipe._get_t5_prompt_embeds(prompt=text, max_sequence_length=MAX_SEQUENCE_LENGTH,
                                      device=torch.device("cpu"))[0]
    assert full.dtype == torch.float32 and full.shape == (MAX_SEQUENCE_LENGTH, 24)
    assert torch.all(full[n:] == 0)
    return enc.input_ids[0, :n].to(torch.int32), full[:n].clone(), full


def manual_pipeline(pipe, c, noise, dtype=torch.float32, variant=None):
    """Spec 6.1 written out with direct component calls. In float32 it must reproduce
    WanPipeline.__call__ bit for bit (checks the recipe: prompt handling, CFG formula, timestep
    handling, de-normalisation, decode, postprocess). In float64 it is the reference for the
    float32 error: every module deep-copied and .double(), RoPE tables rebuilt in float64, the
    timestep sinusoid computed in float64, the scheduler on float64 copies of its float32
    sigmas (UniPC: diffusers' own step; Euler: x + (s[k+1]-s[k]) * v in float64, since diffusers'
    Euler step casts the sample to float32). variant (float32 only): one plausible deviation,
    see SENSITIVITY."""
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed
    f64 = dtype == torch.float64
    te, tr, vae = pipe.text_encoder, pipe.transformer, pipe.vae
    if f64:
        te = copy.deepcopy(te).double()
        tr = copy.deepcopy(tr)
        cfg = tr.config
        tr.rope = WanRotaryPosEmbed(cfg.attention_head_dim, cfg.patch_size, cfg.rope_max_seq_len)
        tr = tr.double()
        vae = copy.deepcopy(vae).double()
    if variant == "te_bf16":
        te = copy.deepcopy(te).to(torch.bfloat16)
    sched = make_scheduler(pipe, c["scheduler"])
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    def embed(text):
        enc = pipe.tokenizer(prompt_clean(text), padding="max_length",
                             max_length=MAX_SEQUENCE_LENGTH, truncation=True,
                             add_special_tokens=True, return_attention_mask=True,
                             return_tensors="pt")
        n = int(enc.attention_mask.sum())
        h = te(enc.input_ids, enc.attention_mask).last_hidden_state[0]
        e = torch.zeros(MAX_SEQUENCE_LENGTH, h.shape[-1], dtype=dtype)
        e[:n] = h[:n]
        if variant == "unpadded":
            e = h.to(dtype)
        return e[None]

    g = c["guidance_scale"] + (0.5 if variant == "guidance+0.5" else 0.0)
    ctx = float_keeps_f64() if f64 else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        cond = embed(c["prompt"])
        neg = "" if variant == "negative_empty" else (c["negative_prompt"] or "")
        uncond = embed(neg) if g > 1.0 else None
        sched.set_timesteps(c["num_inference_steps"])
        sched.set_begin_index(0)
        if f64:
            sched.sigmas = sched.sigmas.to(torch.float64)
        x = noise.clone().to(dtype)
        sig = sched.sigmas
        for k, t in enumerate(sched.timesteps):
            tv = t.expand(1)
            if variant == "t_float":
                tv = (sig[k] * 1000).expand(1)
            if f64:
                h = tr.condition_embedder.time_embedder.register_forward_pre_hook(
                    lambda m, a, tv=tv: (sinusoid_f64(tv, tr.config.freq_dim),))
            v = tr(hidden_states=x.to(dtype), timestep=tv, encoder_hidden_states=cond,
                   return_dict=False)[0]
            if g > 1.0:
                vu = tr(hidden_states=x.to(dtype), timestep=tv, encoder_hidden_states=uncond,
                        return_dict=False)[0]
                v = vu + g * (v - vu)
            if f64:
                h.remove()
            if f64 and c["scheduler"] == "euler":
                x = x + (sig[k + 1] - sig[k]) * v
            else:
                x = sched.step(v, t, x, return_dict=False)[0]
        lat = x
        cfg = vae.config
        kw = dict(dtype=torch.float64) if f64 else {}
        mean = torch.tensor(cfg.latents_mean, **kw).view(1, cfg.z_dim, 1, 1, 1).to(dtype)
        inv_std = 1.0 / torch.tensor(cfg.latents_std, **kw).view(1, cfg.z_dim, 1, 1, 1).to(dtype)
        z = lat if variant == "no_denorm" else lat / inv_std + mean
        video = vae.decode(z, return_dict=False)[0]
        frames = (video * 0.5 + 0.5).clamp(0, 1)[0].permute(1, 2, 3, 0)
    assert lat.dtype == dtype and frames.dtype == dtype, (lat.dtype, frames.dtype)
    return lat, frames.contiguous(), video


SENSITIVITY = {
    "te_bf16": "the text encoder run in bfloat16 (what transformers 5 loads without dtype=)",
    "unpadded": "encoder_hidden_states rows n..511 left as the encoder's output, not zeroed",
    "negative_empty": "the negative prompt replaced by \"\" (cases with one)",
    "t_float": "the DiT given sigma*1000 as a float, not the int64 timestep (UniPC cases)",
    "guidance+0.5": "guidance_scale + 0.5",
    "no_denorm": "the VAE given the latents without z/(1/std)+mean (frames only)",
}


def sensitivity(pipe, c, noise, lat, frames):
    """How far plausible implementation slips land from the golden: NMSE of the latents, max
    |diff| of the frames."""
    res = {}
    for v in SENSITIVITY:
        if v == "negative_empty" and not (c["negative_prompt"] and c["guidance_scale"] > 1):
            continue
        if v == "t_float" and c["scheduler"] != "unipc":
            continue
        vl, vf, _ = manual_pipeline(pipe, c, noise, variant=v)
        res[v] = [float("%.2e" % nmse(vl, lat)), float("%.2e" % maxabs(vf, frames))]
    return res


def run_case(pipe, c, tensors, meta):
    name = c["name"]
    noise = draw_noise(c)
    frames, lat, steps, timesteps, sigmas = run_pipeline(pipe, c, noise)
    # the recipe reproduces the pipeline bit for bit
    mlat, mframes, video = manual_pipeline(pipe, c, noise)
    assert torch.equal(mlat, lat), name
    assert torch.equal(mframes, frames), name
    # fp32 vs float64
    rlat, rframes, rvideo = manual_pipeline(pipe, c, noise, torch.float64)
    info = {k: c[k] for k in ("prompt", "negative_prompt", "guidance_scale", "num_inference_steps",
                              "height", "width", "num_frames", "seed", "scheduler")}
    info["negative_prompt_used"] = ((c["negative_prompt"] or "")
                                    if c["guidance_scale"] > 1.0 else None)
    info["cfg"] = c["guidance_scale"] > 1.0
    info["dit_passes_per_step"] = 2 if c["guidance_scale"] > 1.0 else 1
    info["call"] = call_text(c)
    info["noise"] = ("randn_tensor(%s, generator=torch.Generator('cpu').manual_seed(%d), "
                     "dtype=torch.float32) == torch.randn(same, generator=..., "
                     "dtype=torch.float32)" % (list(latent_shape(c)), c["seed"]))
    info["latent_shape"] = list(latent_shape(c))[1:]
    info["timesteps"] = [int(t) if t.dtype == torch.int64 else float(t) for t in timesteps]
    info["timestep_dtype"] = str(timesteps.dtype).replace("torch.", "")
    info["scheduler_class"] = type(pipe.scheduler).__name__
    info["nmse_fp32_vs_f64.latents"] = float("%.3e" % nmse(lat, rlat))
    info["maxabs_fp32_vs_f64.latents"] = float("%.3e" % maxabs(lat, rlat))
    info["nmse_fp32_vs_f64.frames"] = float("%.3e" % nmse(frames, rframes))
    info["maxabs_fp32_vs_f64.frames"] = float("%.3e" % maxabs(frames, rframes))
    info["sensitivity_nmse_latents_maxabs_frames"] = sensitivity(pipe, c, noise, lat, frames)
    info["latents_rms"] = float("%.4g" % lat.double().pow(2).mean().sqrt().item())
    info["frames_clamped_fraction"] = float("%.4g" % (
        (video.abs() >= 1.0).double().mean().item()))
    info["frames_min_max_mean"] = [float("%.4g" % v) for v in
                                   (frames.min().item(), frames.max().item(),
                                    frames.double().mean().item())]
    pre = name + "."
    tensors[pre + "noise"] = noise[0]
    tensors[pre + "latents"] = lat[0]
    tensors[pre + "latents_step0"] = steps[0][0]
    tensors[pre + "frames"] = frames
    tensors[pre + "timesteps"] = timesteps
    tensors[pre + "sigmas"] = sigmas
    ids, rows, _ = prompt_rows(pipe, c["prompt"])
    tensors[pre + "prompt_ids"], tensors[pre + "prompt_embeds"] = ids, rows
    info["prompt_tokens"] = int(ids.numel())
    if c["guidance_scale"] > 1.0:
        ids, rows, _ = prompt_rows(pipe, c["negative_prompt"] or "")
        tensors[pre + "negative_ids"], tensors[pre + "negative_embeds"] = ids, rows
        info["negative_tokens"] = int(ids.numel())
    meta["case." + name] = json.dumps(info, sort_keys=True, ensure_ascii=False)
    return info


# ---- a fresh process ------------------------------------------------------------------------

FRESH = r"""
import json, sys, torch
from safetensors.torch import load_file
sys.path.insert(0, %(here)r)
import golden_pipeline as G
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
pipe = G.load_pipe(%(out)r)
gold = load_file(%(golden)r)
res = {"classes": {k: type(getattr(pipe, k)).__name__ for k in G.EXPECTED_CLASSES}}
from diffusers import WanPipeline
plain = WanPipeline.from_pretrained(%(out)r)
res["plain"] = {"classes": {k: type(getattr(plain, k)).__name__ for k in G.EXPECTED_CLASSES},
                "dtypes": {k: str(getattr(plain, k).dtype) for k in ("text_encoder",
                                                                     "transformer", "vae")},
                "vae_device": str(plain.vae.device)}
del plain
for c in G.CASES:
    noise = gold[c["name"] + ".noise"][None]
    assert torch.equal(noise, G.draw_noise(c)), c["name"]
    frames, lat, _, _, _ = G.run_pipeline(pipe, c, noise)
    res[c["name"]] = [torch.equal(lat[0], gold[c["name"] + ".latents"]),
                      torch.equal(frames, gold[c["name"] + ".frames"])]
print("FRESH " + json.dumps(res, sort_keys=True))
"""


def fresh_process_check(out, golden):
    here = os.path.dirname(os.path.abspath(__file__))
    code = FRESH % dict(here=here, out=os.path.abspath(out), golden=os.path.abspath(golden))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    line = [l for l in r.stdout.splitlines() if l.startswith("FRESH ")]
    if r.returncode != 0 or not line:
        sys.exit("fresh-process check failed:\n%s\n%s" % (r.stdout, r.stderr[-4000:]))
    res = json.loads(line[0][6:])
    assert res["classes"] == EXPECTED_CLASSES, res
    assert res["plain"]["classes"] == EXPECTED_CLASSES, res
    for c in CASES:
        assert res[c["name"]] == [True, True], res
    return ("a fresh python process: load_pipe (WanPipeline.from_pretrained(wan-tiny, vae=..., "
            "dtype=torch.float32)) loads %s; rerunning every case from the stored noise "
            "reproduces the stored latents and frames bit for bit. A plain "
            "WanPipeline.from_pretrained(wan-tiny) loads the same classes with %s"
            % (json.dumps(res["classes"], sort_keys=True),
               json.dumps({k: v for k, v in res["plain"].items() if k != "classes"},
                          sort_keys=True)))


# ---- main -----------------------------------------------------------------------------------

F64_REFERENCE = (
    "the same recipe in float64: every module deep-copied and .double(), Tensor.float() kept "
    "float64, RoPE tables rebuilt in float64, the timestep sinusoid computed in float64, the "
    "scheduler on float64 copies of its float32 sigmas (UniPC: diffusers' own step; Euler: x + "
    "(s[k+1]-s[k])*v in float64, since diffusers' Euler step casts the sample to float32); "
    "nmse = sum((fp32-f64)^2)/sum(f64^2); the noise and tokenization are shared")

RECIPE = (
    "WanPipeline.__call__ (diffusers/pipelines/wan/pipeline_wan.py) as run here: "
    "prompt_clean (html.unescape twice, strip, whitespace runs -> one space; no ftfy) -> "
    "tokenizer(padding='max_length', max_length=512, truncation=True, add_special_tokens=True, "
    "return_attention_mask=True) -> text_encoder(ids, mask).last_hidden_state (float32; the bf16 "
    "weights upcast at load) -> keep rows [0, n), zero rows n..511 -> cast to the transformer "
    "dtype (float32). CFG iff guidance_scale > 1: the negative prompt (\"\" when None) encoded "
    "the same way. scheduler.set_timesteps(steps) then scheduler.set_begin_index(0) (after "
    "prepare_latents; latents= is used as given: .to(float32), no init_noise_sigma scaling). "
    "Per step k with t = timesteps[k]: v_c = transformer(latents, t.expand(1), cond); v_u = "
    "transformer(latents, t.expand(1), uncond) (two separate batch-1 calls); v = v_u + g*(v_c - "
    "v_u) in float32; latents = scheduler.step(v, t, latents). The timestep reaches the DiT as "
    "int64 (UniPC) or float32 (Euler). Decode: z = latents / (1/std) + mean (float32; std, mean "
    "from vae/config.json; 1/std computed in float32 first), video = vae.decode(z) (float32, "
    "clamped to [-1, 1]), frames = clamp(video*0.5 + 0.5, 0, 1) permuted [B,C,F,H,W] -> "
    "[B,F,H,W,C] (np float32). The same recipe written out with direct component calls "
    "reproduces every case bit for bit.")


def config_json(cfg):
    return json.dumps({k: v for k, v in dict(cfg).items() if k != "_use_default_values"},
                      sort_keys=True)


def generate(data_dir, save_meta):
    """Write data_dir/wan-tiny/. save_meta: gen_golden.save_file_sorted_meta."""
    import diffusers
    import safetensors
    import sentencepiece
    import tokenizers
    import transformers
    from diffusers.utils import is_ftfy_available
    if is_ftfy_available():
        sys.exit("ftfy is installed: diffusers would apply ftfy.fix_text, which wanrun does not "
                 "implement; run this in an environment without ftfy")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    diffusers.utils.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.disable_progress_bar()

    out = build_dir(data_dir)
    checks = {"components": check_configs(out)}
    checks["tokenizer"] = check_tokenizer(
        out, data_dir, [c["prompt"] for c in CASES] + [c["negative_prompt"] for c in CASES
                                                        if c["negative_prompt"]])
    model_index = write_model_index(out)
    pipe = load_pipe(out)
    checks["load"] = ("WanPipeline.from_pretrained(wan-tiny, vae=..., dtype=torch.float32): %s, "
                      "all parameters float32" % json.dumps(EXPECTED_CLASSES, sort_keys=True))

    tensors, meta = {}, {}
    infos = {}
    for c in CASES:
        infos[c["name"]] = run_case(pipe, c, tensors, meta)
        i = infos[c["name"]]
        print("%-9s %-5s %dx%d steps %d g %.1f  t=%s  latents rms %.3g nmse_vs_f64 %.2e  frames "
              "maxabs_vs_f64 %.2e clamped %.3f" % (
                  c["name"], c["scheduler"], c["height"], c["width"], c["num_inference_steps"],
                  c["guidance_scale"], i["timesteps"], i["latents_rms"],
                  i["nmse_fp32_vs_f64.latents"], i["maxabs_fp32_vs_f64.frames"],
                  i["frames_clamped_fraction"]))
    checks["recipe"] = ("output_type='latent' == the np run's last callback latents (bitwise); "
                        "the recipe below with direct component calls == the pipeline's latents "
                        "and frames (bitwise), every case")
    meta.update({
        "generator": "tests/golden/golden_pipeline.py (gen_golden.py)",
        "torch": torch.__version__, "diffusers": diffusers.__version__,
        "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
        "sentencepiece": sentencepiece.__version__, "safetensors": safetensors.__version__,
        "python": sys.version.split()[0],
        "cases": json.dumps([c["name"] for c in CASES]),
        "load": "vae = AutoencoderKLWan.from_pretrained('tests/data/wan-tiny', subfolder='vae', "
                "low_cpu_mem_usage=False, dtype=torch.float32); pipe = WanPipeline."
                "from_pretrained('tests/data/wan-tiny', vae=vae, dtype=torch.float32) (see "
                "load_note); "
                "pipe.scheduler replaced before every call by a fresh "
                "UniPCMultistepScheduler.from_config(<the config from_pretrained read from "
                "scheduler/>) (unipc) or "
                "FlowMatchEulerDiscreteScheduler.from_config(%s) (euler)"
                % json.dumps(EULER_CONFIG, sort_keys=True),
        "load_note": " ".join(load_pipe.__doc__.split()),
        "run": "CPU, float32, torch.set_num_threads(1), torch.use_deterministic_algorithms(True)",
        "model_index": json.dumps(model_index, sort_keys=True),
        "components": json.dumps({k: v for k, v in LINKS.items()}, sort_keys=True),
        "recipe": RECIPE,
        "f64_reference": F64_REFERENCE,
        "checks": json.dumps(checks, sort_keys=True),
        "layout": "C.noise, C.latents, C.latents_step0 [16,T,H/8,W/8] F32 (batch dropped); "
                  "C.frames [N,H,W,3] F32; C.timesteps I64 (UniPC) / F32 (Euler); C.sigmas "
                  "F32; C.prompt_ids / C.negative_ids I32 [n]; C.prompt_embeds / "
                  "C.negative_embeds F32 [n,24] (rows n..511 of encoder_hidden_states are "
                  "zeros)",
        "tolerance": "issue #6: latents NMSE <= 1e-5, frames max abs <= 2e-3",
        "sensitivity": json.dumps(SENSITIVITY, sort_keys=True),
        # (without "_use_default_values": a list in set order, not byte-stable)
        "scheduler_config.unipc": config_json(pipe.golden_unipc_config),
        "scheduler_config.euler": config_json(make_scheduler(pipe, "euler").config),
    })
    path = os.path.join(out, "golden.safetensors")
    save_meta({k: v.contiguous() for k, v in tensors.items()}, path, meta)
    size = os.path.getsize(path)
    print("wrote %s (%d bytes)" % (path, size))
    assert size <= BUDGET, "golden.safetensors over its %d-byte budget: %d" % (BUDGET, size)
    del pipe
    checks["fresh"] = fresh_process_check(out, path)
    for k, v in checks.items():
        print("check %s: %s" % (k, v))
    total = 0
    for root, dirs, files in os.walk(out):
        for fn in sorted(dirs + files):
            p = os.path.join(root, fn)
            if os.path.islink(p):
                print("  %8s  %s -> %s" % ("link", os.path.relpath(p, data_dir), os.readlink(p)))
            elif os.path.isfile(p):
                total += os.path.getsize(p)
                print("  %8d  %s" % (os.path.getsize(p), os.path.relpath(p, data_dir)))
    print("wan-tiny total (regular files): %d bytes" % total)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: golden_pipeline.py OUT_DATA_DIR   (writes OUT_DATA_DIR/wan-tiny/)")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gen_golden import save_file_sorted_meta
    generate(sys.argv[1], save_file_sorted_meta)
