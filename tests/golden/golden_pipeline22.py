#!/usr/bin/env python3
"""End-to-end golden for wanrun's Wan2.2 two-expert text-to-video pipeline (issue #18, T2V-A14B's
layout): tests/data/wan22-tiny/.

    python3 tests/golden/golden_pipeline22.py tests/data     # writes tests/data/wan22-tiny/

Needs what golden_pipeline.py needs (torch, diffusers, transformers, safetensors, sentencepiece,
protobuf, no ftfy) and wan-tiny's components (run golden_pipeline.py first). Neither the engine,
its build nor CI runs this script.

wan22-tiny is wan-tiny with a second expert: a WanPipeline directory whose model_index.json has
transformer_2 and boundary_ratio 0.875 (the T2V-A14B value), so that diffusers' WanPipeline runs
the high-noise expert (transformer/) for the steps with t >= 0.875 x num_train_timesteps and the
low-noise one (transformer_2/) for the rest, each with its own guidance scale (guidance_scale,
guidance_scale_2). transformer_2 is tiny2's config with other weights (tiny2's, each tensor
perturbed by seeded noise of half its standard deviation), f32, committed here; the other
components are relative symlinks into wan-tiny.

Each case is one WanPipeline.__call__ on WanPipeline.from_pretrained(wan22-tiny, vae=...,
dtype=torch.float32) in float32 on the CPU, one thread, deterministic algorithms, the initial
noise drawn from a seeded generator and passed as latents=. A case may set the boundary
(pipe.register_to_config(boundary_ratio=...), what wanrun's --boundary-ratio does) to put the
switch after the first step, before the last one, or before the first (every step low-noise).
The experts each step ran are recorded (forward hooks) and checked against the rule.
"""
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import golden_pipeline as G  # noqa: E402

NAME = "wan22-tiny"
LINKS = {"transformer": "../wan-tiny/transformer", "text_encoder": "../wan-tiny/text_encoder",
         "vae": "../wan-tiny/vae", "tokenizer": "../wan-tiny/tokenizer",
         "scheduler": "../wan-tiny/scheduler"}
BOUNDARY = 0.875
EXPERT2_SEED = 2202

# boundary: None = the directory's; "after_first" / "before_last": halfway between the two
# timesteps around the switch (computed from the case's schedule); a number = that ratio ("equal":
# a timestep exactly on the boundary, which runs the high-noise expert: t >= boundary).
CASES = [
    dict(name="mid", scheduler="unipc", seed=7201, prompt="A red fox runs through fresh snow",
         negative_prompt=None, guidance_scale=5.0, guidance_scale_2=3.0, boundary=None,
         num_inference_steps=6, height=32, width=32, num_frames=5),
    dict(name="first", scheduler="unipc", seed=7202, prompt="A lighthouse at dusk, waves",
         negative_prompt=None, guidance_scale=4.0, guidance_scale_2=2.5, boundary="after_first",
         num_inference_steps=4, height=16, width=32, num_frames=5),
    dict(name="last", scheduler="unipc", seed=7203, prompt="Two cats play in the rain",
         negative_prompt="blurry, low quality", guidance_scale=3.5, guidance_scale_2=5.5,
         boundary="before_last", num_inference_steps=4, height=16, width=32, num_frames=5),
    dict(name="euler", scheduler="euler", seed=7204, prompt="A koi fish swims under the sea",
         negative_prompt=None, guidance_scale=5.0, guidance_scale_2=None, boundary=None,
         num_inference_steps=4, height=32, width=16, num_frames=5),
    dict(name="alllow", scheduler="unipc", seed=7205, prompt="A paper boat on a puddle",
         negative_prompt=None, guidance_scale=4.0, guidance_scale_2=2.0, boundary=1.0,
         num_inference_steps=3, height=16, width=16, num_frames=5),
    dict(name="equal", scheduler="unipc", seed=7207, prompt="A kite over the dunes",
         negative_prompt=None, guidance_scale=4.5, guidance_scale_2=2.0, boundary=0.75,
         num_inference_steps=4, height=16, width=16, num_frames=5),
    dict(name="noguide", scheduler="unipc", seed=7206, prompt="Snow falls on a quiet street",
         negative_prompt=None, guidance_scale=1.0, guidance_scale_2=3.0, boundary=None,
         num_inference_steps=4, height=16, width=16, num_frames=5),
]
BUDGET = 260000

README = """\
wan22-tiny: a tiny diffusers Wan2.2 two-expert (T2V-A14B layout) text-to-video directory and
end-to-end golden runs on it (issue #18). Regenerate: python3 tests/golden/golden_pipeline22.py
tests/data (after golden_pipeline.py).

  transformer   -> ../wan-tiny/transformer   the high-noise expert (tiny2)
  transformer_2/                             the low-noise expert: tiny2's config, tiny2's
                                             weights each perturbed by N(0, (std/2)^2), seed 2202
  text_encoder, vae, tokenizer, scheduler -> ../wan-tiny/...
  model_index.json   WanPipeline(..., transformer_2=..., boundary_ratio=0.875).save_config()

golden.safetensors, per case C (see __metadata__ case.C: boundary_ratio used, guidance_scale,
guidance_scale_2, the expert of every step):
  C.noise          F32 [16, T, H/8, W/8]   initial latents (latents=, batch dropped)
  C.latents        F32 [16, T, H/8, W/8]   final latents
  C.latents_steps  F32 [steps, 16, T, H/8, W/8]  the latents after every step
  C.frames         F32 [num_frames, H, W, 3]      output_type="np" video in [0, 1]
  C.timesteps      the schedule (I64 UniPC, F32 Euler)
Tolerances as wan-tiny's: latents NMSE <= 1e-5, frames max |diff| <= 2e-3.
"""


def build_dir(data_dir):
    out = os.path.join(data_dir, NAME)
    src = os.path.join(data_dir, "wan-tiny")
    if not os.path.isfile(os.path.join(src, "golden.safetensors")):
        sys.exit("golden_pipeline22: %s missing; run golden_pipeline.py first" % src)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "transformer_2"))
    for comp, target in LINKS.items():
        os.symlink(target, os.path.join(out, comp))
    from diffusers import WanTransformer3DModel
    t1 = WanTransformer3DModel.from_pretrained(os.path.join(out, "transformer"),
                                               dtype=torch.float32)
    g = torch.Generator("cpu").manual_seed(EXPERT2_SEED)
    with torch.no_grad():
        for _, p in sorted(t1.named_parameters()):
            std = p.double().std().item() if p.numel() > 1 else abs(p.item())
            p.add_(torch.randn(p.shape, generator=g, dtype=torch.float32) * (0.5 * (std or 0.1)))
    t1.save_pretrained(os.path.join(out, "transformer_2"), safe_serialization=True)
    with open(os.path.join(out, "README"), "w") as f:
        f.write(README)
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
        transformer_2=WanTransformer3DModel.from_pretrained(os.path.join(out, "transformer_2")),
        boundary_ratio=BOUNDARY)
    with tempfile.TemporaryDirectory() as tmp:
        pipe.save_config(tmp)
        shutil.copyfile(os.path.join(tmp, "model_index.json"),
                        os.path.join(out, "model_index.json"))
    with open(os.path.join(out, "model_index.json")) as f:
        return json.load(f)


def load_pipe(out):
    from diffusers import AutoencoderKLWan, WanPipeline
    vae = AutoencoderKLWan.from_pretrained(out, subfolder="vae", low_cpu_mem_usage=False,
                                           dtype=torch.float32)
    pipe = WanPipeline.from_pretrained(out, vae=vae, dtype=torch.float32)
    assert type(pipe.transformer_2).__name__ == "WanTransformer3DModel"
    assert pipe.config.boundary_ratio == BOUNDARY and not pipe.config.expand_timesteps
    for comp in ("text_encoder", "transformer", "transformer_2", "vae"):
        assert all(p.dtype == torch.float32 for p in getattr(pipe, comp).parameters()), comp
    pipe.set_progress_bar_config(disable=True)
    import copy
    pipe.golden_unipc_config = copy.deepcopy(dict(pipe.scheduler.config))
    return pipe


def case_boundary(pipe, c):
    """The ratio this case runs with (a number), from its schedule for the symbolic ones."""
    b = c["boundary"]
    if b is None:
        return BOUNDARY
    if isinstance(b, (int, float)):
        return float(b)
    s = G.make_scheduler(pipe, c["scheduler"])
    s.set_timesteps(c["num_inference_steps"])
    ts = [float(t) for t in s.timesteps]
    i = 0 if b == "after_first" else len(ts) - 2
    return (ts[i] + ts[i + 1]) / 2.0 / 1000.0


def run(pipe, c, noise, ratio, output_type):
    pipe.register_to_config(boundary_ratio=ratio)
    pipe.scheduler = G.make_scheduler(pipe, c["scheduler"])
    calls = []
    hooks = [pipe.transformer.register_forward_hook(lambda *a: calls.append(1)),
             pipe.transformer_2.register_forward_hook(lambda *a: calls.append(2))]
    steps = []

    def cb(p, i, t, kw):
        steps.append(kw["latents"].detach().clone())
        return {}

    kw = G.call_kwargs(c, noise, output_type)
    if c["guidance_scale_2"] is not None:
        kw["guidance_scale_2"] = c["guidance_scale_2"]
    try:
        out = pipe(**kw, callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"])
    finally:
        for h in hooks:
            h.remove()
        pipe.register_to_config(boundary_ratio=BOUNDARY)
    return out.frames, steps, calls, pipe.scheduler.timesteps.clone()


def generate(data_dir, save_meta):
    import diffusers
    import transformers
    from diffusers.utils import is_ftfy_available
    if is_ftfy_available():
        sys.exit("ftfy is installed: run this in an environment without it (golden_pipeline.py)")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    diffusers.utils.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    out = build_dir(data_dir)
    model_index = write_model_index(out)
    pipe = load_pipe(out)
    tensors, meta = {}, {}
    for c in CASES:
        noise = G.draw_noise(c)
        ratio = case_boundary(pipe, c)
        frames, steps, calls, ts = run(pipe, c, noise, ratio, "np")
        lat, _, _, _ = run(pipe, c, noise, ratio, "latent")
        assert torch.equal(lat, steps[-1]), c["name"]
        # the rule: t >= ratio * 1000 -> expert 1 (compared in float32, as torch does)
        cfg = c["guidance_scale"] > 1.0
        per = 2 if cfg else 1
        want = [1 if float(t.float()) >= float(torch.tensor(ratio * 1000.0, dtype=torch.float32))
                else 2 for t in ts]
        got = [calls[i * per] for i in range(len(ts))]
        assert got == want and len(calls) == per * len(ts), (c["name"], got, want, calls)
        g2 = c["guidance_scale_2"] if c["guidance_scale_2"] is not None else c["guidance_scale"]
        info = {k: c[k] for k in ("prompt", "negative_prompt", "guidance_scale",
                                  "num_inference_steps", "height", "width", "num_frames", "seed",
                                  "scheduler")}
        info.update({"guidance_scale_2": c["guidance_scale_2"], "guidance_scale_2_used": g2,
                     "boundary_ratio": ratio, "boundary_timestep": ratio * 1000.0,
                     "experts": got, "cfg": cfg,
                     "timesteps": [int(t) if t.dtype == torch.int64 else float(t) for t in ts],
                     "call": G.call_text(c) + (" with guidance_scale_2=%g" % c["guidance_scale_2"]
                                               if c["guidance_scale_2"] is not None else "")
                     + ", pipe.config.boundary_ratio = %r" % ratio})
        pre = c["name"] + "."
        tensors[pre + "noise"] = noise[0]
        tensors[pre + "latents"] = lat[0]
        tensors[pre + "latents_steps"] = torch.cat(steps, 0)
        tensors[pre + "frames"] = torch.from_numpy(frames[0].copy())
        tensors[pre + "timesteps"] = ts
        meta["case." + c["name"]] = json.dumps(info, sort_keys=True, ensure_ascii=False)
        print("%-8s %-5s %dx%d steps %d g %.1f/%.1f boundary %.4f experts %s t=%s" % (
            c["name"], c["scheduler"], c["height"], c["width"], c["num_inference_steps"],
            c["guidance_scale"], g2, ratio, got, info["timesteps"]))
    meta.update({
        "generator": "tests/golden/golden_pipeline22.py",
        "torch": torch.__version__, "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "cases": json.dumps([c["name"] for c in CASES]),
        "model_index": json.dumps(model_index, sort_keys=True),
        "run": "CPU, float32, torch.set_num_threads(1), torch.use_deterministic_algorithms(True)",
        "tolerance": "latents NMSE <= 1e-5, frames max abs <= 2e-3 (as wan-tiny)",
    })
    path = os.path.join(out, "golden.safetensors")
    save_meta({k: v.contiguous() for k, v in tensors.items()}, path, meta)
    size = os.path.getsize(path)
    print("wrote %s (%d bytes)" % (path, size))
    assert size <= BUDGET, size
    for root, _, files in os.walk(out):
        for fn in files:
            os.chmod(os.path.join(root, fn), 0o644)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: golden_pipeline22.py OUT_DATA_DIR   (writes OUT_DATA_DIR/wan22-tiny/)")
    from gen_golden import save_file_sorted_meta
    generate(sys.argv[1], save_file_sorted_meta)
