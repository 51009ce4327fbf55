#!/usr/bin/env python3
"""The diffusers side of the whole-pipeline CPU benchmark (tests/bench/bench_pipeline.sh).

    bench_pipeline_diffusers.py run MODEL_DIR WORK --size WxH --frames N --steps S
                                   [--guidance G] [--threads T] [--repeat K]

Loads WanPipeline from MODEL_DIR (fp32; the VAE loaded on its own so that a decoder-only
checkpoint works), draws the initial latents with a seeded torch.Generator and writes them to
WORK/noise.safetensors (tensor "noise", for wanrun's --init-noise), then times
pipe(prompt, negative_prompt="", ..., latents=noise, output_type="np") end to end (text
encoding, denoising, VAE decode, postprocess; not the load), median of K after one warm-up,
and stores the final latents (from callback_on_step_end) in WORK/ref_latents.safetensors.
Prints `RESULT total_s=... load_s=...`.

Test tooling only (needs torch + diffusers + transformers); the engine never runs Python.
"""
import argparse
import os
import statistics
import time

import torch
from safetensors.torch import save_file

PROMPT = "A red fox runs through fresh snow at dawn, cinematic"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["run"])
    ap.add_argument("model")
    ap.add_argument("work")
    ap.add_argument("--size", default="128x128")
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    from diffusers import AutoencoderKLWan, WanPipeline
    import diffusers
    import transformers
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(a.threads)
    w, h = (int(v) for v in a.size.split("x"))
    t0 = time.perf_counter()
    # low_cpu_mem_usage=False: a decoder-only checkpoint leaves no encoder weights on "meta"
    vae = AutoencoderKLWan.from_pretrained(a.model, subfolder="vae", dtype=torch.float32,
                                           low_cpu_mem_usage=False)
    pipe = WanPipeline.from_pretrained(a.model, vae=vae, dtype=torch.float32)
    load_s = time.perf_counter() - t0
    pipe.set_progress_bar_config(disable=True)
    T = (a.frames - 1) // 4 + 1
    g = torch.Generator().manual_seed(1234)
    noise = torch.randn((1, 16, T, h // 8, w // 8), generator=g, dtype=torch.float32)
    os.makedirs(a.work, exist_ok=True)
    save_file({"noise": noise[0].contiguous()}, os.path.join(a.work, "noise.safetensors"))
    final = {}

    def grab(p, i, t, kw):
        final["latents"] = kw["latents"].detach().clone()
        return kw

    times = []
    for r in range(a.repeat + 1):
        t0 = time.perf_counter()
        with torch.inference_mode():
            pipe(prompt=PROMPT, negative_prompt="", height=h, width=w, num_frames=a.frames,
                 num_inference_steps=a.steps, guidance_scale=a.guidance, latents=noise.clone(),
                 output_type="np", callback_on_step_end=grab,
                 callback_on_step_end_tensor_inputs=["latents"])
        dt = time.perf_counter() - t0
        if r > 0:
            times.append(dt)
    save_file({"latents": final["latents"][0].contiguous()},
              os.path.join(a.work, "ref_latents.safetensors"))
    med = statistics.median(times)
    print("diffusers: %dx%d, %d frames, %d steps, guidance %g: %.3f s (median of %d: %s), "
          "threads %d, load %.1f s, torch %s, diffusers %s"
          % (w, h, a.frames, a.steps, a.guidance, med, len(times),
             " ".join("%.3f" % t for t in times), a.threads, load_s, torch.__version__,
             diffusers.__version__))
    print("RESULT total_s=%.4f load_s=%.3f min_s=%.4f" % (med, load_s, min(times)))


if __name__ == "__main__":
    main()
