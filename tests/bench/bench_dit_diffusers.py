#!/usr/bin/env python3
"""The diffusers side of the DiT CPU benchmark (tests/bench/bench_dit.sh).

    bench_dit_diffusers.py make DIR [--layers N] [--frames F --height H --width W --text S]
        builds WanTransformer3DModel at the real 1.3B width with N blocks and random weights
        (fixed seed), saves it to DIR/transformer (save_pretrained, fp32) and random inputs
        to DIR/io.safetensors
    bench_dit_diffusers.py time DIR [--threads T] [--repeat K]
        loads DIR/transformer with from_pretrained, times forward() on DIR/io.safetensors
        (fp32, torch.inference_mode, T threads), median of K after one warm-up, and stores
        its output in DIR/io.safetensors as ref.output for wanrun to compare against.

Test tooling only (needs torch + diffusers from PyPI); the engine never runs Python.
"""
import argparse
import os
import statistics
import sys
import time

import torch
from safetensors.torch import load_file, save_file


def make(a):
    from diffusers import WanTransformer3DModel
    torch.manual_seed(1234)
    m = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128,
                              in_channels=16, out_channels=16, text_dim=4096, freq_dim=256,
                              ffn_dim=8960, num_layers=a.layers, cross_attn_norm=True,
                              qk_norm="rms_norm_across_heads", eps=1e-6)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 1.0 / (p.shape[1] ** 0.5) if p.ndim == 2 else 0.05)
            else:
                p.normal_(0.0, 0.05)
            if "norm" in name and p.ndim == 1:
                p.add_(1.0)
    m.save_pretrained(os.path.join(a.dir, "transformer"))
    g = torch.Generator().manual_seed(99)
    io = {
        "input.hidden_states": torch.randn(1, 16, a.frames, a.height, a.width, generator=g),
        "input.timestep": torch.tensor([500.0]),
        "input.encoder_hidden_states": torch.randn(1, a.text, 4096, generator=g),
    }
    save_file(io, os.path.join(a.dir, "io.safetensors"))
    print("made %s: %d layers, latent %s, text %d rows" % (a.dir, a.layers,
          list(io["input.hidden_states"].shape), a.text))


def time_it(a):
    from diffusers import WanTransformer3DModel
    torch.set_num_threads(a.threads)
    m = WanTransformer3DModel.from_pretrained(os.path.join(a.dir, "transformer"),
                                              torch_dtype=torch.float32).eval()
    io_path = os.path.join(a.dir, "io.safetensors")
    io = load_file(io_path)
    x, e = io["input.hidden_states"], io["input.encoder_hidden_states"]
    t = io["input.timestep"].to(torch.int64)
    times = []
    with torch.inference_mode():
        for r in range(a.repeat + 1):
            t0 = time.perf_counter()
            out = m(hidden_states=x, timestep=t, encoder_hidden_states=e, return_dict=False)[0]
            dt = time.perf_counter() - t0
            if r > 0:
                times.append(dt)
    med = statistics.median(times)
    io["ref.output"] = out.contiguous()
    save_file(io, io_path)
    print("diffusers: forward %.3f s (median of %d), threads %d, torch %s" %
          (med, a.repeat, a.threads, torch.__version__))
    print("RESULT forward_s=%.4f" % med)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("dir")
    mk.add_argument("--layers", type=int, default=2)
    mk.add_argument("--frames", type=int, default=5)
    mk.add_argument("--height", type=int, default=30)
    mk.add_argument("--width", type=int, default=52)
    mk.add_argument("--text", type=int, default=512)
    mk.set_defaults(fn=make)
    tm = sub.add_parser("time")
    tm.add_argument("dir")
    tm.add_argument("--threads", type=int, default=os.cpu_count())
    tm.add_argument("--repeat", type=int, default=3)
    tm.set_defaults(fn=time_it)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
