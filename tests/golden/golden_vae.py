#!/usr/bin/env python3
"""Golden data for the Wan2.1 VAE decoder (diffusers AutoencoderKLWan): tests/data/vae/CASE/.

Called by gen_golden.py as golden_vae.generate(data_dir, save_file_sorted_meta), or standalone:

    python3 tests/golden/golden_vae.py OUT_DATA_DIR     # writes OUT_DATA_DIR/vae/

Per case (tiny random-weight configurations, see VAE_CASES):
  vae/config.json                          model.save_config() (the full diffusers config)
  vae/diffusion_pytorch_model.safetensors  post_quant_conv.* and decoder.* only (encoder.* and
                                           quant_conv.* are stripped: a decoder does not need them)
  io.safetensors                           model-space latents, decoded frames, taps, and in
                                           __metadata__ versions, config, tiling, f64 NMSE

What is decoded is what WanPipeline does after denoising: z_vae = z / (1/std) + mean in float32
(per channel, std/mean from config), then vae.decode(z_vae) (post_quant_conv, the per-latent-frame
causal decode with the feature cache, clamp to [-1, 1]); the tiled case calls
vae.enable_tiling(...) first.
"""
import contextlib
import copy
import json
import math
import os
import re
import shutil
import sys

import torch
from safetensors.torch import save_file

# seed: one torch.Generator per case, drawn in this order: latents_mean, latents_std, every
# parameter (sorted names), then input.single, input.multi, input.tiled.
# single/multi/tiled: latent (T, H, W) of each decode. tiling: vae.enable_tiling(**tiling).
VAE_CASES = {
    # the real structure (dim_mult, num_res_blocks, temporal flags, z_dim 16) at tiny widths
    "tiny_a": dict(seed=3101, bf16=False,
                   cfg=dict(base_dim=2, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                            temperal_downsample=[False, True, True]),
                   single=(1, 3, 4), multi=(4, 2, 3), tiled=(2, 5, 5),
                   tiling=dict(tile_sample_min_height=24, tile_sample_min_width=24,
                               tile_sample_stride_height=16, tile_sample_stride_width=16)),
    # z_dim 4, odd widths (6/3), 2 resnets per up block, conv_shortcut in up_blocks 1 and 2,
    # temporal upsampling in up_blocks 1 and 2 instead of 0 and 1, bf16 weights; tiles of
    # different height and width: latent tile 2 / stride 1 / blend 8 px in height, tile 4 /
    # stride 2 / blend 16 px in width, where the middle tile is cut by the edge (3 wide) and the
    # last one (1 wide, 8 px) is narrower than the blend
    "tiny_b": dict(seed=3102, bf16=True,
                   cfg=dict(base_dim=3, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                            temperal_downsample=[True, True, False]),
                   single=(1, 4, 3), multi=(4, 3, 2), tiled=(2, 3, 5),
                   tiling=dict(tile_sample_min_height=16, tile_sample_min_width=32,
                               tile_sample_stride_height=8, tile_sample_stride_width=16)),
}

VAE_INIT = ("every parameter (encoder included) re-initialised from "
            "torch.Generator().manual_seed(seed) in sorted name order, after drawing "
            "latents_mean = round(0.5*randn(z_dim), 4) and latents_std = "
            "round(0.5 + 2.5*rand(z_dim), 4): conv kernels randn/sqrt(fan_in); biases "
            "0.05*randn; RMS-norm gammas 1+0.1*randn; then the inputs randn (model space)")

TAP_DOC = {
    "latent_vae": "the de-normalised latent fed to vae.decode: input / (1/std) + mean computed "
                  "in float32 exactly as WanPipeline does ([z_dim,T,H,W])",
    "post_quant_conv": "post_quant_conv output (1x1x1 conv)",
    "decoder.conv_in": "decoder.conv_in output",
    "decoder.mid_block.resnets.0": "first mid-block residual block output",
    "decoder.mid_block.attentions.0": "mid-block attention output (residual added)",
    "decoder.mid_block": "mid_block output",
    "decoder.up_blocks.I.resnets": "output of the last residual block of up_blocks.I (the "
                                   "upsampler's input)",
    "decoder.up_blocks.I": "up_blocks.I output (after its upsampler, if any)",
}
# (the decoder's own output, before the clamp, is not stored: out.single = clamp(it, -1, 1) and
# only 0-0.3% of out.single is clamped)


@contextlib.contextmanager
def float_keeps_f64():
    """WanUpsample does x.float() before interpolating: keep float64 tensors float64 so that a
    .double() model really runs in float64 (same trick as gen_golden.py's dit reference)."""
    orig = torch.Tensor.float
    torch.Tensor.float = lambda t, *a, **k: t if t.dtype == torch.float64 else orig(t, *a, **k)
    try:
        yield
    finally:
        torch.Tensor.float = orig


def nmse(a, ref):
    a, ref = a.double(), ref.double()
    return (((a - ref) ** 2).sum() / (ref ** 2).sum()).item()


def maxabs(a, ref):
    return (a.double() - ref.double()).abs().max().item()


def vae_reinit(model, gen):
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
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


def denorm(model, z):
    """WanPipeline.__call__'s de-normalisation, verbatim (float32: torch.tensor(list) is f32,
    1/std in f32, then a true division and an add). For a float64 z, mean and std are built
    from the config's values in float64."""
    cfg = model.config
    kw = dict(dtype=torch.float64) if z.dtype == torch.float64 else {}
    mean = torch.tensor(cfg.latents_mean, **kw).view(1, cfg.z_dim, 1, 1, 1).to(z.device, z.dtype)
    inv = 1.0 / torch.tensor(cfg.latents_std, **kw).view(1, cfg.z_dim, 1, 1, 1).to(z.device,
                                                                                  z.dtype)
    return z / inv + mean


def tap_modules(model, multi):
    """(name, module, tap_input) in execution order. tap_input: record the module's input
    rather than its output."""
    d = model.decoder
    if multi:
        # the low-resolution ones, up to the first block that upsamples in time
        mods = [("decoder.conv_in", d.conv_in, False), ("decoder.mid_block", d.mid_block, False)]
        for i, b in enumerate(d.up_blocks):
            mods.append(("decoder.up_blocks.%d" % i, b, False))
            if b.upsamplers is not None and b.upsamplers[0].mode == "upsample3d":
                break
        mods.append(("decoder", d, False))
        return mods
    mods = [("post_quant_conv", model.post_quant_conv, False),
            ("decoder.conv_in", d.conv_in, False),
            ("decoder.mid_block.resnets.0", d.mid_block.resnets[0], False),
            ("decoder.mid_block.attentions.0", d.mid_block.attentions[0], False),
            ("decoder.mid_block", d.mid_block, False)]
    for i, b in enumerate(d.up_blocks):
        if b.upsamplers is not None:
            mods.append(("decoder.up_blocks.%d.resnets" % i, b.upsamplers[0], True))
        mods.append(("decoder.up_blocks.%d" % i, b, False))
    mods.append(("decoder", d, False))
    return mods


def decode_with_taps(model, z, multi):
    """model.decode(denorm(z)) with forward hooks. Per-chunk outputs of a module are concatenated
    along time; batch dim dropped. Returns (out [3,N,8H,8W], taps)."""
    calls, hooks = {}, []
    mods = tap_modules(model, multi)
    for name, mod, want_in in mods:
        if want_in:
            hooks.append(mod.register_forward_pre_hook(
                lambda m, a, name=name: calls.setdefault(name, []).append(a[0].detach().clone())))
        else:
            hooks.append(mod.register_forward_hook(
                lambda m, a, o, name=name: calls.setdefault(name, []).append(o.detach().clone())))
    try:
        with torch.no_grad():
            zv = denorm(model, z)
            out = model.decode(zv, return_dict=False)[0]
    finally:
        for h in hooks:
            h.remove()
    T = z.shape[2]
    taps = {} if multi else {"latent_vae": zv}
    for name, _, _ in mods:
        want = 1 if name == "post_quant_conv" else T
        assert len(calls[name]) == want, (name, len(calls[name]), want)
        taps[name] = torch.cat(calls[name], dim=2)
    assert torch.equal(out, taps["decoder"].clamp(-1.0, 1.0))
    return out[0].contiguous(), {k: v[0].contiguous() for k, v in taps.items()}


def decode_whole_sequence(model, z_vae):
    """Spec 4.5's 'whole-sequence view' of the chunked decode, without any feature cache: every
    causal conv over the whole time axis (2 zero frames in front); in each upsample3d, frame 0
    passes untouched and time_conv runs over frames 1..T-1 only, each output frame splitting into
    two (channel block 0 -> even, 1 -> odd). Returns the pre-clamp decoder output."""
    d = model.decoder
    with torch.no_grad():
        x = d.conv_in(model.post_quant_conv(z_vae))
        x = d.mid_block(x)
        for blk in d.up_blocks:
            for r in blk.resnets:
                x = r(x)
            if blk.upsamplers is not None:
                up = blk.upsamplers[0]
                if up.mode == "upsample3d" and x.shape[2] > 1:
                    y = up.time_conv(x[:, :, 1:])
                    b, c2, t, h, w = y.shape
                    y = y.reshape(b, 2, c2 // 2, t, h, w).permute(0, 2, 3, 1, 4, 5)
                    x = torch.cat([x[:, :, :1], y.reshape(b, c2 // 2, 2 * t, h, w)], dim=2)
                x = up(x)  # feat_cache None: the spatial step only
        return d.conv_out(d.nonlinearity(d.norm_out(x)))


def tiling_geometry(model, lat_hw):
    """How diffusers' tiled_decode derives its latent tiles from the enable_tiling values."""
    r = model.spatial_compression_ratio  # = config.scale_factor_spatial, not derived from dims
    g = {"spatial_compression_ratio": r}
    for ax, n in zip(("height", "width"), lat_hw):
        tmin = getattr(model, "tile_sample_min_" + ax)
        tstr = getattr(model, "tile_sample_stride_" + ax)
        g["tile_sample_min_" + ax] = tmin
        g["tile_sample_stride_" + ax] = tstr
        g["tile_latent_min_" + ax] = tmin // r
        g["tile_latent_stride_" + ax] = tstr // r
        g["blend_" + ax] = tmin - tstr  # pixels
        g["tile_starts_" + ax] = list(range(0, n, tstr // r))
        g["tile_sizes_" + ax] = [min(tmin // r, n - s) for s in g["tile_starts_" + ax]]
    return g


def tiled_decode_by_spec(model, z_vae, g):
    """Spec 4.9 written out independently: fresh cache per tile, per-frame decode, in-place
    raster-order blending (vertical then horizontal), keep [:stride, :stride], crop, clamp."""
    T, H, W = z_vae.shape[2:]
    rows = []
    with torch.no_grad():
        for i in g["tile_starts_height"]:
            row = []
            for j in g["tile_starts_width"]:
                model.clear_cache()
                frames = []
                for k in range(T):
                    model._conv_idx = [0]
                    t = z_vae[:, :, k:k + 1, i:i + g["tile_latent_min_height"],
                              j:j + g["tile_latent_min_width"]]
                    frames.append(model.decoder(model.post_quant_conv(t),
                                                feat_cache=model._feat_map,
                                                feat_idx=model._conv_idx, first_chunk=(k == 0)))
                row.append(torch.cat(frames, dim=2))
            rows.append(row)
        model.clear_cache()
        for i, row in enumerate(rows):
            for j, b in enumerate(row):
                if i > 0:
                    a = rows[i - 1][j]
                    e = min(a.shape[3], b.shape[3], g["blend_height"])
                    for y in range(e):
                        b[:, :, :, y] = a[:, :, :, y - e] * (1 - y / e) + b[:, :, :, y] * (y / e)
                if j > 0:
                    a = row[j - 1]
                    e = min(a.shape[4], b.shape[4], g["blend_width"])
                    for x in range(e):
                        b[..., x] = a[..., x - e] * (1 - x / e) + b[..., x] * (x / e)
        sh, sw = g["tile_sample_stride_height"], g["tile_sample_stride_width"]
        out = torch.cat([torch.cat([t[:, :, :, :sh, :sw] for t in row], dim=4) for row in rows],
                        dim=3)
        r = g["spatial_compression_ratio"]
        return out[:, :, :, :H * r, :W * r].clamp(-1.0, 1.0)


def vae_model(case, gen):
    from diffusers import AutoencoderKLWan
    z = case["cfg"]["z_dim"]
    mean = [round(v, 4) for v in (0.5 * torch.randn(z, generator=gen, dtype=torch.float64)).tolist()]
    std = [round(v, 4) for v in
           (0.5 + 2.5 * torch.rand(z, generator=gen, dtype=torch.float64)).tolist()]
    model = AutoencoderKLWan(**case["cfg"], latents_mean=mean, latents_std=std).eval()
    vae_reinit(model, gen)
    if case["bf16"]:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    assert not model.config.is_residual and not model.config.attn_scales
    return model


def vae_case(name, case, out_dir, save_meta):
    import diffusers
    gen = torch.Generator().manual_seed(case["seed"])
    model = vae_model(case, gen)
    cfg = model.config
    zd = cfg.z_dim
    inputs = {k: torch.randn((1, zd) + tuple(case[k]), generator=gen, dtype=torch.float32)
              for k in ("single", "multi", "tiled")}
    m64 = copy.deepcopy(model).double()
    r = cfg.scale_factor_spatial
    tf = cfg.scale_factor_temporal

    outs, taps, outs64, taps64 = {}, {}, {}, {}
    for k, multi in (("single", False), ("multi", True)):
        outs[k], t = decode_with_taps(model, inputs[k], multi)
        with float_keeps_f64():
            outs64[k], t64 = decode_with_taps(m64, inputs[k].double(), multi)
        T, H, W = case[k]
        assert outs[k].shape == (3, 1 + tf * (T - 1), r * H, r * W), (k, outs[k].shape)
        assert outs64[k].dtype == torch.float64
        if multi:
            # spec 4.5 whole-sequence view == diffusers' chunked decode (f32 and f64)
            ws = decode_whole_sequence(model, denorm(model, inputs[k]))[0]
            with float_keeps_f64():
                ws64 = decode_whole_sequence(m64, denorm(m64, inputs[k].double()))[0]
            ws_err = (maxabs(ws, t["decoder"]), maxabs(ws64, t64["decoder"]))
            assert ws_err[0] < 1e-4 and ws_err[1] < 1e-12, ws_err
        del t["decoder"], t64["decoder"]
        for n, v in t.items():
            taps[k + "." + n] = v
            taps64[k + "." + n] = t64[n]

    # tiled
    tiled_model = copy.deepcopy(model)
    tiled_model.enable_tiling(**case["tiling"])
    tiled64 = copy.deepcopy(m64)
    tiled64.enable_tiling(**case["tiling"])
    T, H, W = case["tiled"]
    g = tiling_geometry(tiled_model, (H, W))
    assert len(g["tile_starts_height"]) >= 3 and len(g["tile_starts_width"]) >= 3, g
    assert g["blend_height"] > 0 and g["blend_width"] > 0
    with torch.no_grad():
        zv = denorm(model, inputs["tiled"])
        outs["tiled"] = tiled_model.decode(zv, return_dict=False)[0][0].contiguous()
        untiled = model.decode(zv, return_dict=False)[0][0]
        with float_keeps_f64():
            outs64["tiled"] = tiled64.decode(denorm(m64, inputs["tiled"].double()),
                                             return_dict=False)[0][0]
    assert outs["tiled"].shape == (3, 1 + tf * (T - 1), r * H, r * W)
    tiled_vs_untiled = (nmse(outs["tiled"], untiled), maxabs(outs["tiled"], untiled))
    assert tiled_vs_untiled[1] > 1e-2, "tiling is not exercised: %r" % (tiled_vs_untiled,)
    assert torch.equal(tiled_decode_by_spec(tiled_model, zv, g)[0], outs["tiled"]), \
        "%s: spec 4.9 re-implementation differs from diffusers' tiled_decode" % name
    # dispatch: tiled_decode only when latent H > tile_latent_min_height or W > ..._width
    th, tw = g["tile_latent_min_height"], g["tile_latent_min_width"]
    with torch.no_grad():
        z_eq = denorm(model, torch.randn((1, zd, 2, th, tw), generator=torch.Generator()
                                         .manual_seed(1), dtype=torch.float32))
        assert torch.equal(tiled_model.decode(z_eq, return_dict=False)[0],
                           model.decode(z_eq, return_dict=False)[0])

    # write
    case_dir = os.path.join(out_dir, name)
    shutil.rmtree(case_dir, ignore_errors=True)
    vdir = os.path.join(case_dir, "vae")
    os.makedirs(vdir)
    model.save_config(vdir)
    wdt = torch.bfloat16 if case["bf16"] else torch.float32
    sd = {k: v.detach().to(wdt).contiguous() for k, v in model.state_dict().items()
          if k.startswith(("decoder.", "post_quant_conv."))}
    stripped = sorted(k for k in model.state_dict() if k not in sd)
    assert all(k.startswith(("encoder.", "quant_conv.")) for k in stripped)
    save_file(sd, os.path.join(vdir, "diffusion_pytorch_model.safetensors"),
              metadata={"format": "pt"})

    config = {k: v for k, v in cfg.items() if not k.startswith("_")}
    clamped = {k: (v.abs() > 1.0 - 1e-7).double().mean().item() for k, v in outs.items()}
    meta = {"torch": torch.__version__, "diffusers": diffusers.__version__,
            "generator": "tests/golden/golden_vae.py (gen_golden.py)", "case": name,
            "class": "diffusers.AutoencoderKLWan", "config": json.dumps(config, sort_keys=True),
            "seed": str(case["seed"]), "init": VAE_INIT,
            "weights": ("bf16 on disk; every output from an fp32 run with the parameters rounded "
                        "to bf16") if case["bf16"] else "fp32",
            "weights_saved": "post_quant_conv.* and decoder.* only (%d tensors); encoder.* and "
                             "quant_conv.* (%d tensors) stripped: not needed to decode"
                             % (len(sd), len(stripped)),
            "layout": "input.K: model-space latent [z_dim,T,H,W] (batch dim dropped); out.K: "
                      "vae.decode(input.K / (1/std) + mean) [3,1+4(T-1),8H,8W], clamped to "
                      "[-1,1]; tap.single.*: that decode of input.single, [C,T',H',W']; "
                      "tap.multi.*: per-chunk outputs of input.multi's decode concatenated "
                      "along time",
            "decodes": json.dumps({"single": "untiled, 1 latent frame, with taps",
                                   "multi": "untiled, %d latent frames" % case["multi"][0],
                                   "tiled": "vae.enable_tiling(**tiling) then vae.decode"}),
            "tiling": json.dumps(case["tiling"], sort_keys=True),
            "tiling_derived": json.dumps(g, sort_keys=True),
            "tiled_vs_untiled": "nmse %.3e maxabs %.3e (untiled decode of input.tiled; "
                                "not stored)" % tiled_vs_untiled,
            "whole_sequence_check": "spec 4.5 whole-sequence decode of input.multi (no cache, "
                                    "frame 0 skips time_conv) vs the chunked decode: maxabs "
                                    "%.1e in fp32, %.1e in f64" % ws_err,
            "taps": json.dumps(sorted(taps)),
            "f64_reference": "the same model deep-copied and .double(), Tensor.float() kept "
                             "float64 (WanUpsample), inputs .double(), mean/std in float64; "
                             "nmse = sum((fp32-f64)^2)/sum(f64^2)"}
    for k in outs:
        meta["clamped_fraction.out." + k] = "%.4f" % clamped[k]
    tensors = {"input." + k: v[0].contiguous() for k, v in inputs.items()}
    tensors.update({"out." + k: v for k, v in outs.items()})
    tensors.update({"tap." + k: v for k, v in taps.items()})
    for k in list(outs) + list(taps):
        pre = "out." if k in outs else "tap."
        a, ref = (outs[k], outs64[k]) if k in outs else (taps[k], taps64[k])
        meta["nmse_fp32_vs_f64." + pre + k] = "%.3e" % nmse(a, ref)
        meta["maxabs_fp32_vs_f64." + pre + k] = "%.3e" % maxabs(a, ref)
    for k in taps:
        meta["tap." + k] = TAP_DOC[re.sub(r"^(decoder\.up_blocks\.)\d+", r"\1I", k.split(".", 1)[1])]
    assert all(v.dtype == torch.float32 for v in tensors.values())
    save_meta(tensors, os.path.join(case_dir, "io.safetensors"), meta)
    vae_check_reload(name, vdir, model, inputs, outs)

    print("%s: %s" % (name, json.dumps(config, sort_keys=True)))
    print("  tiling %s -> %s" % (json.dumps(case["tiling"]), json.dumps(g)))
    print("  tiled vs untiled: nmse %.3e maxabs %.3e; whole-sequence check maxabs f32 %.1e "
          "f64 %.1e" % (tiled_vs_untiled + ws_err))
    for k in sorted(tensors):
        line = "  %-40s %-18s" % (k, list(tensors[k].shape))
        if "nmse_fp32_vs_f64." + k in meta:
            line += " nmse_vs_f64 %s  maxabs %s" % (meta["nmse_fp32_vs_f64." + k],
                                                    meta["maxabs_fp32_vs_f64." + k])
        if k.startswith("out."):
            line += "  clamped %s" % meta["clamped_fraction." + k]
        print(line)


def vae_check_reload(name, vdir, model, inputs, outs):
    """from_pretrained of what was written (encoder keys missing) must give model's decoder
    parameters and reproduce out.single and out.multi bit for bit."""
    from diffusers import AutoencoderKLWan
    m = AutoencoderKLWan.from_pretrained(vdir, torch_dtype=torch.float32).eval()
    sd, back = model.state_dict(), m.state_dict()
    for k in sd:
        if k.startswith(("decoder.", "post_quant_conv.")):
            assert torch.equal(back[k], sd[k]), (name, k)
    with torch.no_grad():
        for p in m.parameters():
            p.data = p.data.clone()  # 64-byte aligned, as in gen_golden.py's dit check
        for k in ("single", "multi"):
            got = m.decode(denorm(m, inputs[k]), return_dict=False)[0][0]
            assert torch.equal(got, outs[k]), "%s: reload differs on %s" % (name, k)


README = """\
Golden data for the Wan2.1 VAE decoder (diffusers AutoencoderKLWan), tiny random weights.
Regenerate: through tests/golden/gen_golden.py (which calls golden_vae.generate(DATA, ...)),
            or standalone: python3 tests/golden/golden_vae.py tests/data
CASE/vae/config.json                          the full diffusers config (save_config)
CASE/vae/diffusion_pytorch_model.safetensors  post_quant_conv.* and decoder.* only
                                              (encoder.*, quant_conv.* stripped)
CASE/io.safetensors  input.{single,multi,tiled}: model-space latents [z,T,H,W];
                     out.*: vae.decode(input / (1/std) + mean), clamped, [3,1+4(T-1),8H,8W]
                     (out.tiled after vae.enable_tiling(**metadata tiling));
                     tap.single.*, tap.multi.*: intermediate activations; __metadata__: config,
                     versions, tiling (and what diffusers derives from it), fp32-vs-f64 NMSE.
tiny_a: base_dim 2, z_dim 16, dim_mult [1,2,4,4], 2 res blocks, fp32 weights.
tiny_b: base_dim 3, z_dim 4, dim_mult [1,2,2,2], 1 res block, temperal_downsample
        [True,True,False] (time upsampling in up_blocks 1 and 2), bf16 weights.
Only decoder weights are stored, so from_pretrained warns that encoder weights are missing.
"""


def generate(data_dir, save_meta):
    """Write data_dir/vae/. save_meta: gen_golden.save_file_sorted_meta."""
    import diffusers
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    out_dir = os.path.join(data_dir, "vae")
    os.makedirs(out_dir, exist_ok=True)
    for name, case in VAE_CASES.items():
        vae_case(name, case, out_dir, save_meta)
    with open(os.path.join(out_dir, "README"), "w") as f:
        f.write(README)
    total = 0
    for root, _, files in sorted(os.walk(out_dir)):
        for fn in sorted(files):
            p = os.path.join(root, fn)
            total += os.path.getsize(p)
            print("  %8d  %s" % (os.path.getsize(p), os.path.relpath(p, data_dir)))
    print("vae total: %d bytes" % total)
    assert total <= 600000, "tests/data/vae over its 600 KB budget: %d bytes" % total


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: golden_vae.py OUT_DATA_DIR   (writes OUT_DATA_DIR/vae/)")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gen_golden import save_file_sorted_meta
    generate(sys.argv[1], save_file_sorted_meta)
