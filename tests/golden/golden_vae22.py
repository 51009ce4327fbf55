#!/usr/bin/env python3
"""Golden data for the Wan2.2 VAE (diffusers AutoencoderKLWan with is_residual=True, patch_size 2:
TI2V-5B's 48-channel VAE) at tiny widths: tests/data/vae22/tiny/.

    python3 tests/golden/golden_vae22.py [DATA_DIR]     # default tests/data; writes DATA_DIR/vae22/

Files:
  vae22/tiny/vae/config.json                          save_pretrained (the full diffusers config)
  vae22/tiny/vae/diffusion_pytorch_model.safetensors  every tensor (encoder too), BF16
  vae22/tiny/io.safetensors                           inputs, outputs, taps; __metadata__

The structure is the real TI2V-5B one (dim_mult [1,2,4,4], num_res_blocks 2, temperal_downsample
[False,True,True], is_residual, patch_size 2, in/out_channels 12, scale factors 16 and 4,
decoder_base_dim != base_dim) at base_dim 2 / decoder_base_dim 3 / z_dim 8, so that every
shortcut case of the real model is present: DupUp3D with repeats 8 (time and space, first-chunk
drop) and 2 (space only), AvgDown3D with group 4 over space only and over time and space (with
the first chunk's zero frame in front), and the identity shortcut of the last down block.

Tensors of io.safetensors (all F32, no batch dimension):
  dec.single.z  [8,1,2,3]   dec.single.out [3,1,32,48]   vae.decode(z).sample (clamped)
  dec.multi.z   [8,3,1,2]   dec.multi.out  [3,9,16,32]
  enc.single.x  [3,1,32,32] enc.single.mean [8,1,2,2]    vae.encode(x).latent_dist.mean
  enc.multi.x   [3,5,16,32] enc.multi.mean  [8,2,1,2]
  dec.tiled.z   [8,3,3,5]   dec.tiled.out  [3,9,48,80]   with enable_tiling(32, 48, 16, 32)
  dec.tiled1.z  [8,1,4,4]   dec.tiled1.out [3,1,64,64]   with enable_tiling(48, 48, 32, 32)
  enc.tiled.x   [3,5,48,96] enc.tiled.mean [8,2,3,6]     with enable_tiling(16, 32, 16, 16)
  enc.tiled1.x  [3,1,96,64] enc.tiled1.mean [8,1,6,4]    with enable_tiling(32, 16, 16, 16)
  tap.<case>.<k>.<module>   the module's output during the k-th decoder / encoder call (latent
                            frame k / chunk k), for the modules listed in DEC_TAPS / ENC_TAPS
                            (SKIP_TAPS: not stored; "encoder": the encoder's output before
                            quant_conv)
The weights are drawn in float32 and rounded to bfloat16, so the BF16 checkpoint holds exactly
the weights the float32 reference computed with.
"""
import contextlib
import json
import math
import os
import sys

import torch
import diffusers
from diffusers import AutoencoderKLWan
from safetensors.torch import save_file

SEED = 2207
CFG = dict(base_dim=2, decoder_base_dim=3, z_dim=8, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
           attn_scales=[], temperal_downsample=[False, True, True], is_residual=True,
           in_channels=12, out_channels=12, patch_size=2, scale_factor_spatial=16,
           scale_factor_temporal=4)
DEC_CASES = {"single": (1, 2, 3), "multi": (3, 1, 2)}     # latent (T, h, w)
ENC_CASES = {"single": (1, 32, 32), "multi": (5, 16, 32)}  # video (N, H, W)
# tiled decodes (enable_tiling): latent (T, h, w), then tile_sample_min_height / _width and
# tile_sample_stride_height / _width in video pixels; edge tiles are partial in both directions
TILED_CASES = {"tiled": ((3, 3, 5), (32, 48, 16, 32)), "tiled1": ((1, 4, 4), (48, 48, 32, 32))}
# tiled encodes: video (N, H, W) and the tiling (diffusers tiles the patchified video, so a tile
# covers 2 x tile video pixels; tiling when the video is larger than tile)
TILED_ENC_CASES = {"tiled": ((5, 48, 96), (16, 32, 16, 16)), "tiled1": ((1, 96, 64), (32, 16, 16, 16))}
DEC_TAPS = ["post_quant_conv", "decoder.conv_in", "decoder.mid_block", "decoder.up_blocks.0",
            "decoder.up_blocks.1", "decoder.up_blocks.2", "decoder.up_blocks.3", "decoder"]
ENC_TAPS = ["encoder.conv_in", "encoder.down_blocks.0", "encoder.down_blocks.1",
            "encoder.down_blocks.2", "encoder.down_blocks.3", "encoder.mid_block", "encoder"]
# taps left out to keep the files small: the full-resolution ones of the multi decode
SKIP_TAPS = {"dec.multi": {"decoder", "decoder.up_blocks.2", "decoder.up_blocks.3"},
             "dec.single": {"decoder"}}

INIT = ("latents_mean = round(0.5*randn(z), 4), latents_std = round(0.5 + 2.5*rand(z), 4); "
        "then every parameter in sorted name order from torch.Generator().manual_seed(%d): conv "
        "kernels randn/sqrt(fan_in), biases 0.05*randn, RMS-norm "
        "gammas 1 + 0.1*randn, each rounded to bfloat16; then the inputs: dec.*.z randn, enc.*.x "
        "2*rand - 1, in the order single, multi; then dec.tiled.z, dec.tiled1.z randn; then "
        "enc.tiled.x, enc.tiled1.x 2*rand - 1" % SEED)


@contextlib.contextmanager
def float_keeps_f64():
    """WanUpsample does x.float(): keep float64 tensors float64 so a .double() model runs in f64."""
    orig = torch.Tensor.float
    torch.Tensor.float = lambda t, *a, **k: t if t.dtype == torch.float64 else orig(t, *a, **k)
    try:
        yield
    finally:
        torch.Tensor.float = orig


def nmse(a, ref):
    a, ref = a.double(), ref.double()
    return (((a - ref) ** 2).sum() / (ref ** 2).sum()).item()


def reinit(model, gen):
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
            p.copy_(v.bfloat16().float())


class Taps:
    """Forward hooks: the output of each listed module, per call (chunk) of it."""

    def __init__(self, model, names):
        self.out = {}
        self.calls = {}
        mods = dict(model.named_modules())
        self.handles = [mods[n].register_forward_hook(self.hook(n)) for n in names]

    def hook(self, name):
        def f(mod, args, out):
            k = self.calls.get(name, 0)
            self.calls[name] = k + 1
            self.out[(k, name)] = out.detach().clone()
        return f

    def close(self):
        for h in self.handles:
            h.remove()


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..",
                                                              "data")
    out_dir = os.path.join(data, "vae22", "tiny")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(SEED)
    z = CFG["z_dim"]
    mean = [round(v, 4) for v in (0.5 * torch.randn(z, generator=gen)).tolist()]
    std = [round(v, 4) for v in (0.5 + 2.5 * torch.rand(z, generator=gen)).tolist()]
    model = AutoencoderKLWan(**CFG, latents_mean=mean, latents_std=std).eval()
    reinit(model, gen)

    inputs = {}
    for name, (t, h, w) in DEC_CASES.items():
        inputs["dec." + name] = torch.randn((1, z, t, h, w), generator=gen)
    for name, (n, hh, ww) in ENC_CASES.items():
        inputs["enc." + name] = 2 * torch.rand((1, 3, n, hh, ww), generator=gen) - 1
    tiling = {}
    for name, ((t, h, w), tl) in TILED_CASES.items():
        inputs["dec." + name] = torch.randn((1, z, t, h, w), generator=gen)
        tiling["dec." + name] = tl
    for name, ((n, hh, ww), tl) in TILED_ENC_CASES.items():
        inputs["enc." + name] = 2 * torch.rand((1, 3, n, hh, ww), generator=gen) - 1
        tiling["enc." + name] = tl

    tensors, meta_nmse, clamped = {}, {}, {}
    for key, x in inputs.items():
        kind = key.split(".")[0]
        tl = tiling.get(key)
        taps = Taps(model, [] if tl else DEC_TAPS if kind == "dec" else ENC_TAPS)
        with torch.no_grad():
            if tl:
                model.enable_tiling(*tl)
                y = model.decode(x).sample if kind == "dec" else model.encode(x).latent_dist.mean
                model.disable_tiling()
            elif kind == "dec":
                y = model.decode(x).sample
                # the same decode without the clamp, for the clamped fraction
                raw = torch.cat([taps.out[(k, "decoder")] for k in range(x.shape[2])], 2)
                raw = diffusers.models.autoencoders.autoencoder_kl_wan.unpatchify(raw, 2)
                clamped[key] = ((raw.abs() > 1).double().mean().item(),
                                raw.abs().max().item())
            else:
                y = model.encode(x).latent_dist.mean
        taps.close()
        tensors[key + (".z" if kind == "dec" else ".x")] = x[0].contiguous()
        tensors[key + (".out" if kind == "dec" else ".mean")] = y[0].contiguous()
        skip = SKIP_TAPS.get(key, set())
        for (k, name), t in taps.out.items():
            if name == "post_quant_conv":  # one call over every latent frame: slice per frame
                for f in range(t.shape[2]):
                    tensors["tap.%s.%d.post_quant_conv" % (key, f)] = \
                        t[0, :, f:f + 1].contiguous()
                continue
            if name in skip:
                continue
            tensors["tap.%s.%d.%s" % (key, k, name)] = t[0].contiguous()
        # fp32 against float64 (the same weights and inputs): the reference's own error
        m64 = AutoencoderKLWan(**CFG, latents_mean=mean, latents_std=std).eval()
        m64.load_state_dict(model.state_dict())
        m64 = m64.double()
        if tl:
            m64.enable_tiling(*tl)
        with torch.no_grad(), float_keeps_f64():
            y64 = (m64.decode(x.double()).sample if kind == "dec"
                   else m64.encode(x.double()).latent_dist.mean)
        meta_nmse[key] = nmse(y, y64)

    os.makedirs(os.path.join(out_dir, "vae"), exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(os.path.join(out_dir, "vae"),
                                             safe_serialization=True)
    meta = {
        "generator": "tests/golden/golden_vae22.py",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "config": json.dumps(dict(CFG, latents_mean=mean, latents_std=std)),
        "init": INIT,
        "calls": ("model = AutoencoderKLWan(**config).eval(); reinit; torch.set_num_threads(1); "
                  "torch.use_deterministic_algorithms(True); float32 on the CPU; "
                  "dec.*.out = model.decode(z[None]).sample[0]; "
                  "enc.*.mean = model.encode(x[None]).latent_dist.mean[0]; dec.tiled*: the same "
                  "between model.enable_tiling(*tiling) and model.disable_tiling(); "
                  "taps: forward hooks; "
                  "saved with model.to(torch.bfloat16).save_pretrained(vae/)"),
        "tiling": json.dumps(tiling),
        "nmse_fp32_vs_f64": json.dumps(meta_nmse),
        "decode_clamped_fraction_and_max_abs": json.dumps(clamped),
    }
    save_file(dict(sorted(tensors.items())), os.path.join(out_dir, "io.safetensors"),
              metadata=meta)
    total = 0
    for root, _, files in os.walk(out_dir):
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
            total += os.path.getsize(os.path.join(root, f))
    print("wrote %s: %d tensors, %d bytes in all" % (out_dir, len(tensors), total))
    print("fp32 vs f64 NMSE:", meta_nmse)
    print("decode clamped fraction, max |raw|:", clamped)


if __name__ == "__main__":
    main()
