#!/usr/bin/env python3
"""The diffusers side of the VAE decoder CPU benchmark (tests/bench/bench_vae.sh).

    bench_vae_diffusers.py make DIR [--frames T --height H --width W]
        builds AutoencoderKLWan() with its default config (= the Wan2.1 VAE: base_dim 96,
        z_dim 16, dim_mult [1, 2, 4, 4], num_res_blocks 2, temperal_downsample
        [False, True, True]) and random weights from a fixed seed (conv kernels
        randn/sqrt(fan_in), biases 0.05*randn, RMS gammas 1 + 0.1*randn, every parameter in
        sorted name order, as tests/golden/golden_vae.py), saves it to DIR/vae
        (save_pretrained, fp32) and a random model-space latent input.latent [16, T, H, W] to
        DIR/io.safetensors (default [16, 3, 16, 16]: 9 frames of 128 x 128)
    bench_vae_diffusers.py time DIR [--threads N] [--repeat K] [--tiled TILE,STRIDE]
        loads DIR/vae with from_pretrained (fp32), de-normalises input.latent as WanPipeline
        does (latents / (1/std) + mean, float32), times vae.decode() (torch.inference_mode,
        N threads), median of K after one warm-up, and stores the frames [3, N, 8H, 8W] in
        DIR/io.safetensors as ref.output (tiled: ref.tiled.TILE_STRIDE) for wanrun to compare
        against. Prints the peak RSS after loading and after the decodes.
    bench_vae_diffusers.py convs [H,W] [--dir DIR] [--threads N]
        times, with torch, every conv shape of one steady-state latent frame at latent H x W as
        diffusers runs it (WanCausalConv3d: the 2 cached frames concatenated in front, F.pad,
        Conv3d; the upsamplers' Conv2d per frame), the same table as bench_vae --profile

Test tooling only (needs torch + diffusers from PyPI); the engine never runs Python.
"""
import argparse
import inspect
import math
import os
import resource
import statistics
import sys
import time

import torch
from safetensors.torch import load_file, save_file


def maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def make(a):
    from diffusers import AutoencoderKLWan
    m = AutoencoderKLWan()  # the default config is Wan2.1's
    gen = torch.Generator().manual_seed(5151)
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
    z = torch.randn(m.config.z_dim, a.frames, a.height, a.width, generator=gen)
    save_file({"input.latent": z}, os.path.join(a.dir, "io.safetensors"))
    print("made %s: AutoencoderKLWan base_dim %d, %d parameters, latent %s" %
          (a.dir, m.config.base_dim, sum(p.numel() for p in m.parameters()), list(z.shape)))


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


def denorm(vae, z):
    """WanPipeline.__call__'s de-normalisation (float32)."""
    c = vae.config
    mean = torch.tensor(c.latents_mean).view(1, c.z_dim, 1, 1, 1).to(z.device, z.dtype)
    inv_std = 1.0 / torch.tensor(c.latents_std).view(1, c.z_dim, 1, 1, 1).to(z.device, z.dtype)
    return z / inv_std + mean


def time_it(a):
    from diffusers import AutoencoderKLWan
    import diffusers
    torch.set_num_threads(a.threads)
    vae = AutoencoderKLWan.from_pretrained(os.path.join(a.dir, "vae"),
                                           torch_dtype=torch.float32).eval()
    key = "ref.output"
    if a.tiled:
        tile, stride = (int(v) for v in a.tiled.split(","))
        vae.enable_tiling(tile_sample_min_height=tile, tile_sample_min_width=tile,
                          tile_sample_stride_height=stride, tile_sample_stride_width=stride)
        key = "ref.tiled.%d_%d" % (tile, stride)
    io_path = os.path.join(a.dir, "io.safetensors")
    io = load_file(io_path)
    z = io["input.latent"].unsqueeze(0)
    rss_load = maxrss_mb()
    times = []
    with torch.inference_mode():
        zv = denorm(vae, z)
        for r in range(a.repeat + 1):
            if r == 1:
                c0 = cpu_snap()
            t0 = time.perf_counter()
            out = vae.decode(zv, return_dict=False)[0]
            dt = time.perf_counter() - t0
            if r > 0:
                times.append(dt)
    oth = others_share(c0, cpu_snap())
    med = statistics.median(times)
    rss = maxrss_mb()
    io[key] = out[0].contiguous()
    save_file(io, io_path)
    print("diffusers: decode %s -> %s%s %.3f s (median of %d: %s), threads %d, torch %s, "
          "diffusers %s; other processes used %.0f %% of the CPUs meanwhile" %
          (list(z.shape[1:]), list(out.shape[1:]), " tiled %s" % a.tiled if a.tiled else "", med,
           a.repeat, " ".join("%.3f" % t for t in times), a.threads, torch.__version__,
           diffusers.__version__, 100 * oth))
    print("diffusers: peak RSS %.0f MiB after loading, %.0f MiB after the decodes" %
          (rss_load, rss))
    print("RESULT decode_s=%.4f maxrss_mb=%.0f load_rss_mb=%.0f others=%.3f" %
          (med, rss, rss_load, oth))


def conv_shapes(c):
    """(name, ci, co, kt, kh, s, t, cached, count) of one steady-state latent frame, as
    bench_vae.c's conv_shapes()."""
    nm, base = len(c.dim_mult), c.decoder_base_dim or c.base_dim
    dims = [base * c.dim_mult[-1]] + [base * u for u in c.dim_mult[::-1]]
    v, s, t = [], 1, 1
    v.append(("conv_in", c.z_dim, dims[0], 3, 3, s, t, True, 1))
    v.append(("mid.resnets (4 convs)", dims[0], dims[0], 3, 3, s, t, True, 4))
    nconv = 2 * (c.num_res_blocks + 1)
    for i in range(nm):
        out, inp = dims[i + 1], dims[i] // 2 if i > 0 else dims[i]
        up = i != nm - 1
        up3d = up and c.temperal_downsample[nm - 2 - i]
        if inp != out:
            v.append(("up%d.resnets.0.conv1" % i, inp, out, 3, 3, s, t, True, 1))
            v.append(("up%d.resnets.0.conv_shortcut" % i, inp, out, 1, 1, s, t, False, 1))
        k = nconv - (inp != out)
        v.append(("up%d.resnets (%d convs)" % (i, k), out, out, 3, 3, s, t, True, k))
        if up3d:
            v.append(("up%d.time_conv" % i, out, 2 * out, 3, 1, s, t, True, 1))
            t *= 2
        if up:
            s *= 2
            v.append(("up%d.resample (2-D)" % i, out, out // 2, 1, 3, s, t, False, 1))
    v.append(("conv_out", dims[nm], c.out_channels, 3, 3, s, t, True, 1))
    return v


def convs(a):
    from diffusers import AutoencoderKLWan
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    if a.hw:
        h, w = (int(x) for x in a.hw.split(","))
    else:  # the latent of DIR/io.safetensors
        h, w = load_file(os.path.join(a.dir, "io.safetensors"))["input.latent"].shape[2:]
    # the class defaults (= Wan2.1), overridden by DIR/vae/config.json when given
    cfg = {k: p.default for k, p in inspect.signature(AutoencoderKLWan.__init__).parameters.items()
           if p.default is not inspect.Parameter.empty}
    if a.dir:
        cfg.update(AutoencoderKLWan.load_config(os.path.join(a.dir, "vae")))
    c = argparse.Namespace(**cfg)
    g = torch.Generator().manual_seed(777)
    rows, tot, ftot = [], 0.0, 0.0
    with torch.inference_mode():
        for name, ci, co, kt, kh, s, t, cached, count in conv_shapes(c):
            H, W = s * h, s * w
            x = torch.randn(1, ci, t, H, W, generator=g)
            cache = torch.randn(1, ci, 2, H, W, generator=g) if cached else None
            if kt == 1 and kh == 3:  # WanUpsample's Conv2d, per frame
                conv = torch.nn.Conv2d(ci, co, 3, padding=1)
                def run():
                    return conv(x.permute(0, 2, 1, 3, 4).reshape(t, ci, H, W))
            else:  # WanCausalConv3d: cat(cache, x), pad (w, w, h, h, 2*pad_t - cached, 0)
                conv = torch.nn.Conv3d(ci, co, (kt, kh, kh))
                p = kh // 2
                def run():
                    xx = torch.cat([cache, x], 2) if cache is not None else x
                    return conv(F.pad(xx, (p, p, p, p, 0, 0)))
            conv.eval()
            r = []
            for k in range(4):
                t0 = time.perf_counter()
                y = run()
                r.append(time.perf_counter() - t0)
            dt = statistics.median(r[1:]) * count
            To = (2 if cached else 0) + t - kt + 1
            fl = 2.0 * co * ci * kt * kh * kh * To * H * W * count
            rows.append((name, ci, co, "%dx%dx%d" % (kt, kh, kh), t, "%dx%d" % (H, W), dt, fl))
            tot += dt
            ftot += fl
            del y
    print("torch %s conv per layer, one steady-state latent frame at latent %dx%d (median of 3, "
          "random data), threads %d:" % (torch.__version__, h, w, a.threads))
    print("  %-32s %5s %5s %6s %4s %9s %9s %8s %6s" % ("layer", "Ci", "Co", "kernel", "T", "H x W",
                                                     "time ms", "GFLOP/s", "share"))
    for name, ci, co, k, t, hw, dt, fl in rows:
        print("  %-32s %5d %5d %6s %4d %9s %9.1f %8.1f %5.1f%%" % (name, ci, co, k, t, hw,
                                                                 1e3 * dt, fl / dt / 1e9,
                                                                 100 * dt / tot))
    print("  %-32s %5s %5s %6s %4s %9s %9.1f %8.1f" % ("total", "", "", "", "", "", 1e3 * tot,
                                                       ftot / tot / 1e9))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("dir")
    mk.add_argument("--frames", type=int, default=3)
    mk.add_argument("--height", type=int, default=16)
    mk.add_argument("--width", type=int, default=16)
    mk.set_defaults(fn=make)
    tm = sub.add_parser("time")
    tm.add_argument("dir")
    tm.add_argument("--threads", type=int, default=os.cpu_count())
    tm.add_argument("--repeat", type=int, default=3)
    tm.add_argument("--tiled", default=None, help="TILE,STRIDE in pixels (enable_tiling)")
    tm.set_defaults(fn=time_it)
    cv = sub.add_parser("convs")
    cv.add_argument("hw", nargs="?", help="latent H,W (default: input.latent's of --dir)")
    cv.add_argument("--dir", default=None, help="take the config from DIR/vae (default: "
                    "AutoencoderKLWan's defaults = Wan2.1)")
    cv.add_argument("--threads", type=int, default=os.cpu_count())
    cv.set_defaults(fn=convs)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
