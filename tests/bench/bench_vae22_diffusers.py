#!/usr/bin/env python3
"""The diffusers side of the Wan2.2 VAE CPU benchmark (tests/bench/bench_vae22.sh).

    bench_vae22_diffusers.py make DIR [--frames T --height h --width w]
                                      [--enc-frames N --enc-height H --enc-width W]
        builds diffusers' AutoencoderKLWan with the TI2V-5B VAE config (CFG below: as the
        Wan-AI/Wan2.2-TI2V-5B-Diffusers vae/config.json, base_dim 160, decoder_base_dim 256,
        z_dim 48, is_residual, patch_size 2, in/out_channels 12, scale factors 16 and 4; the 48
        latents_mean / latents_std are random here: decode and encode do not use them) and
        random weights from a fixed seed (every parameter in sorted name order: conv kernels
        randn/sqrt(fan_in), biases 0.05*randn, RMS gammas 1 + 0.1*randn, as
        tests/golden/golden_vae22.py, kept in float32), saves it to DIR/vae (save_pretrained,
        fp32), and to DIR/io.safetensors a VAE-space latent input.latent [48, T, h, w] (randn;
        default [48, 2, 8, 8] -> 5 frames of 128 x 128) and a video input.video [3, N, H, W]
        (2*rand - 1; default one 128 x 128 image, the pipeline's image encode)
    bench_vae22_diffusers.py time DIR [--threads N] [--repeat K]
        loads DIR/vae with from_pretrained (fp32), times vae.decode(latent).sample and
        vae.encode(video).latent_dist.mean (torch.inference_mode, N threads), median of K after
        one warm-up each, and stores the outputs in DIR/io.safetensors as ref.decode
        [3, 1 + 4 (T - 1), 16 h, 16 w] and ref.encode [48, 1 + (N - 1) / 4, H / 16, W / 16]
        for wanrun to compare against. Prints the peak RSS after loading and after the calls
        and the CPU share other processes took during each timed region.

Test tooling only (needs torch + diffusers from PyPI); the engine never runs Python.
"""
import argparse
import math
import os
import resource
import statistics
import sys
import time

import torch
from safetensors.torch import load_file, save_file

SEED = 2205
# Wan-AI/Wan2.2-TI2V-5B-Diffusers vae/config.json, less latents_mean / latents_std (below) and
# clip_output (a field diffusers 0.42.1's AutoencoderKLWan does not take: it always clamps)
CFG = dict(base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
           attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0, is_residual=True,
           in_channels=12, out_channels=12, patch_size=2, scale_factor_spatial=16,
           scale_factor_temporal=4)


def maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def make(a):
    from diffusers import AutoencoderKLWan
    gen = torch.Generator().manual_seed(SEED)
    z = CFG["z_dim"]
    mean = [round(v, 4) for v in (0.5 * torch.randn(z, generator=gen)).tolist()]
    std = [round(v, 4) for v in (0.5 + 2.5 * torch.rand(z, generator=gen)).tolist()]
    m = AutoencoderKLWan(**CFG, latents_mean=mean, latents_std=std)
    with torch.no_grad():
        for name, p in sorted(m.named_parameters()):
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith(".gamma"):
                v = 1.0 + 0.1 * r
            elif name.endswith(".bias"):
                v = 0.05 * r
            elif name.endswith(".weight") and p.ndim >= 4:
                v = r / math.sqrt(p[0].numel())
            else:
                raise ValueError("no init rule for %s %s" % (name, tuple(p.shape)))
            p.copy_(v)
    m.save_pretrained(os.path.join(a.dir, "vae"))
    lat = torch.randn(z, a.frames, a.height, a.width, generator=gen)
    vid = 2 * torch.rand(CFG["in_channels"] // 4, a.enc_frames, a.enc_height, a.enc_width,
                         generator=gen) - 1
    save_file({"input.latent": lat, "input.video": vid}, os.path.join(a.dir, "io.safetensors"))
    print("made %s: AutoencoderKLWan (TI2V-5B config), %d parameters (decoder %d), latent %s, "
          "video %s" % (a.dir, sum(p.numel() for p in m.parameters()),
                        sum(p.numel() for p in m.decoder.parameters()), list(lat.shape),
                        list(vid.shape)))


def cpu_snap():
    """(machine busy CPU-s, machine total CPU-s, this process's CPU-s) — see others_share."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    hz = os.sysconf("SC_CLK_TCK")
    busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz
    r = resource.getrusage(resource.RUSAGE_SELF)
    return busy, busy + (v[3] + v[4]) / hz, r.ru_utime + r.ru_stime


def others_share(a, b):
    """Share of the machine's CPU time other processes used between snapshots a and b."""
    tot, oth = b[1] - a[1], (b[0] - a[0]) - (b[2] - a[2])
    return max(oth, 0.0) / tot if tot > 0 else 0.0


def timed(fn, repeat):
    """(last output, times of runs 1..repeat, others' CPU share over them); run 0 warms up."""
    times, c0 = [], None
    for r in range(repeat + 1):
        if r == 1:
            c0 = cpu_snap()
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        if r > 0:
            times.append(dt)
    return out, times, others_share(c0, cpu_snap())


def time_it(a):
    from diffusers import AutoencoderKLWan
    import diffusers
    torch.set_num_threads(a.threads)
    vae = AutoencoderKLWan.from_pretrained(os.path.join(a.dir, "vae"),
                                           torch_dtype=torch.float32).eval()
    io_path = os.path.join(a.dir, "io.safetensors")
    io = load_file(io_path)
    z = io["input.latent"].unsqueeze(0)
    x = io["input.video"].unsqueeze(0)
    rss_load = maxrss_mb()
    c_all = cpu_snap()
    with torch.inference_mode():
        dec, dts, doth = timed(lambda: vae.decode(z).sample, a.repeat)
        enc, ets, eoth = timed(lambda: vae.encode(x).latent_dist.mean, a.repeat)
    # the share over both timed regions, the warm-ups between them included
    oth = others_share(c_all, cpu_snap())
    rss = maxrss_mb()
    io["ref.decode"] = dec[0].contiguous()
    io["ref.encode"] = enc[0].contiguous()
    save_file(io, io_path)
    clamped = (dec.abs() >= 1).double().mean().item()
    print("diffusers: decode %s -> %s %.3f s (median of %d: %s), threads %d, torch %s, "
          "diffusers %s; other processes used %.0f %% of the CPUs meanwhile; %.2f %% of the "
          "output clamped to +-1" %
          (list(z.shape[1:]), list(dec.shape[1:]), statistics.median(dts), a.repeat,
           " ".join("%.3f" % t for t in dts), a.threads, torch.__version__, diffusers.__version__,
           100 * doth, 100 * clamped))
    print("diffusers: encode %s -> %s %.3f s (median of %d: %s); other processes used %.0f %% "
          "of the CPUs meanwhile" %
          (list(x.shape[1:]), list(enc.shape[1:]), statistics.median(ets), a.repeat,
           " ".join("%.3f" % t for t in ets), 100 * eoth))
    print("diffusers: peak RSS %.0f MiB after loading, %.0f MiB after the calls" % (rss_load, rss))
    print("RESULT decode_s=%.4f encode_s=%.4f maxrss_mb=%.0f load_rss_mb=%.0f decode_others=%.3f "
          "encode_others=%.3f others=%.3f" % (statistics.median(dts), statistics.median(ets), rss,
                                              rss_load, doth, eoth, max(doth, eoth)))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("dir")
    mk.add_argument("--frames", type=int, default=2, help="latent frames T")
    mk.add_argument("--height", type=int, default=8, help="latent h")
    mk.add_argument("--width", type=int, default=8, help="latent w")
    mk.add_argument("--enc-frames", type=int, default=1, help="video frames N (1 + 4k)")
    mk.add_argument("--enc-height", type=int, default=128, help="video H (multiple of 16)")
    mk.add_argument("--enc-width", type=int, default=128, help="video W (multiple of 16)")
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
