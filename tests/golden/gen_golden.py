#!/usr/bin/env python3
"""Golden-file generator for wanrun's tests. Run by hand; its outputs are committed.

Needs torch + safetensors from PyPI (and later diffusers, transformers, sentencepiece). Neither
the engine, its build nor CI runs this script.

    python3 tests/golden/gen_golden.py dtype      # tests/data/dtype/dtype_tables.safetensors
    python3 tests/golden/gen_golden.py dit        # tests/data/dit/NAME/ (transformer/, io)
    python3 tests/golden/gen_golden.py dit --only nocross   # one case
    python3 tests/golden/gen_golden.py dit --only tokens    # per-token timesteps (Wan2.2 TI2V)
    python3 tests/golden/gen_golden.py tokenizer  # tests/data/tokenizer/ (spiece.model, ids),
                                                  # tests/data/tokenizer_json/ (tokenizer.json)
    python3 tests/golden/gen_golden.py t5         # tests/data/t5/NAME/ (text_encoder/, io)
    python3 tests/golden/gen_golden.py vae        # tests/data/vae/NAME/ (vae/, io)
    python3 tests/golden/gen_golden.py sched      # tests/data/sched/ (tables, runs)
    python3 tests/golden/gen_golden.py pipeline   # tests/data/wan-tiny/ (model dir, golden runs)
    python3 tests/golden/gen_golden.py fp8        # tests/data/{dit/tiny{2,3},t5/tiny_{a,b}}/fp8.safetensors
    python3 tests/golden/gen_golden.py bf16       # tests/data/{dit/{tiny2,tiny3,tiny2_bf16,nocross},
                                                  #   t5/tiny_{a,b}}/bf16.safetensors

`dit` and `t5` rewrite each case directory from scratch, so run `fp8` and `bf16` after them.

Each subcommand writes small safetensors files under tests/data/ whose __metadata__ records the
torch version and what was generated.
"""
import argparse
import contextlib
import copy
import json
import math
import os
import re
import shutil
import struct
import sys

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")


def bits(t):
    """Bit patterns of a float tensor as the signed integer type of its width (I32 for f32,
    I16 for f16/bf16, U8 for the fp8 types): exact, and no wider than the data."""
    width = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16,
             torch.float8_e4m3fn: torch.uint8, torch.float8_e5m2: torch.uint8}[t.dtype]
    return t.contiguous().view(width).clone()


def bits_i32(t):
    """Bit patterns of a float tensor (any width) zero-extended into int32."""
    width = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16,
             torch.float8_e4m3fn: torch.uint8, torch.float8_e5m2: torch.uint8}[t.dtype]
    b = t.contiguous().view(width).to(torch.int64)
    mask = {torch.int32: 0xFFFFFFFF, torch.int16: 0xFFFF, torch.uint8: 0xFF}[width]
    b = b & mask
    # back into int32 storage (two's complement wrap for the f32 patterns)
    b = torch.where(b >= 2**31, b - 2**32, b)
    return b.to(torch.int32)


def f32_from_bits(u32_list):
    raw = struct.pack("<%dI" % len(u32_list), *u32_list)
    return torch.frombuffer(bytearray(raw), dtype=torch.float32).clone()


def edge_f32_inputs():
    """f32 inputs around every rounding, saturation and special case of bf16/f16/e4m3/e5m2."""
    vals = set()
    specials = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000,
                0x7F800001, 0x7FBFFFFF, 0xFF800001, 0x7FFFFFFF, 0x00000001, 0x807FFFFF,
                0x00800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000]
    vals.update(specials)
    # Every representable value of each narrow format, and the midpoints and +-1 ulp (f32)
    # around every midpoint: exercises ties (round to even) and neighbours.
    for fmt in (torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
        if fmt in (torch.float8_e4m3fn, torch.float8_e5m2):
            pats = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(fmt)
        else:
            pats = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(fmt)
        f = pats.float()
        f = f[torch.isfinite(f)]
        f = torch.unique(f[f >= 0])
        f = torch.sort(f).values
        mids = ((f[1:].double() + f[:-1].double()) / 2).float()
        step = 1 if fmt in (torch.float8_e4m3fn, torch.float8_e5m2) else 97
        for t in (f[::step], mids[::step]):
            b = bits_i32(t).to(torch.int64) & 0xFFFFFFFF
            for x in b.tolist():
                for d in (-1, 0, 1):
                    y = x + d
                    if 0 <= y < 0x7F800000:
                        vals.add(y)
                        vals.add(y | 0x80000000)
    # saturation neighbourhoods: e4m3 448/464/480, e5m2 57344/61440/65536, f16 65504/65520
    for v in (448.0, 464.0, 480.0, 57344.0, 61440.0, 65536.0, 65504.0, 65520.0, 1e10):
        b = struct.unpack("<I", struct.pack("<f", v))[0]
        for d in range(-3, 4):
            vals.add(b + d)
            vals.add((b + d) | 0x80000000)
    # random finite values over the whole exponent range
    g = torch.Generator().manual_seed(1234)
    r = torch.randint(0, 2**32, (4096,), generator=g, dtype=torch.int64).tolist()
    vals.update(r)
    return f32_from_bits(sorted(vals))


def gen_dtype(args):
    out = {}
    all16 = torch.arange(65536, dtype=torch.int32).to(torch.int16)
    all8 = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    bf = all16.view(torch.bfloat16)
    hf = all16.view(torch.float16)
    e4 = all8.view(torch.float8_e4m3fn)
    e5 = all8.view(torch.float8_e5m2)
    # narrow -> f32 for every bit pattern, and back (f32 -> narrow) for the same values
    out["bf16_to_f32"] = bits(bf.float())
    out["f16_to_f32"] = bits(hf.float())
    out["e4m3_to_f32"] = bits(e4.float())
    out["e5m2_to_f32"] = bits(e5.float())
    out["bf16_roundtrip"] = bits(bf.float().to(torch.bfloat16))
    out["f16_roundtrip"] = bits(hf.float().to(torch.float16))
    out["e4m3_roundtrip"] = bits(e4.float().to(torch.float8_e4m3fn))
    out["e5m2_roundtrip"] = bits(e5.float().to(torch.float8_e5m2))
    # f32 -> narrow on edge inputs
    x = edge_f32_inputs()
    out["edge_f32"] = bits(x)
    out["edge_to_bf16"] = bits(x.to(torch.bfloat16))
    out["edge_to_f16"] = bits(x.to(torch.float16))
    out["edge_to_e4m3"] = bits(x.to(torch.float8_e4m3fn))
    out["edge_to_e5m2"] = bits(x.to(torch.float8_e5m2))
    # (PyTorch's one-element casts were checked to agree with these vectorised ones on every
    # edge input when this generator was written; they are not stored.)
    meta = {"torch": torch.__version__, "generator": "tests/golden/gen_golden.py dtype",
            "layout": "bit patterns as I32 (f32), I16 (f16/bf16) or U8 (fp8); "
                      "*_to_f32[i] = torch's f32 of narrow pattern i; *_roundtrip[i] = "
                      "narrow(f32(pattern i)); edge_to_X[i] = X(edge_f32[i]) via a contiguous "
                      "tensor cast"}
    os.makedirs(os.path.join(DATA, "dtype"), exist_ok=True)
    path = os.path.join(DATA, "dtype", "dtype_tables.safetensors")
    save_file_sorted_meta({k: v.contiguous() for k, v in out.items()}, path, meta)
    print("wrote %s (%d edge inputs)" % (path, x.numel()))


# ---- dit: WanTransformer3DModel ----------------------------------------------------------------

DIT_ARCH = {
    "tiny2": dict(num_attention_heads=2, attention_head_dim=16, num_layers=2, ffn_dim=64,
                  text_dim=24, freq_dim=256),
    # odd head count, head_dim 24, ffn_dim not a multiple of 8, short sinusoid
    "tiny3": dict(num_attention_heads=3, attention_head_dim=24, num_layers=3, ffn_dim=100,
                  text_dim=40, freq_dim=32),
    # cross_attn_norm=False: each block's norm2 is an nn.Identity (no weights); small widths
    "nocross": dict(num_attention_heads=2, attention_head_dim=12, num_layers=2, ffn_dim=32,
                    text_dim=24, freq_dim=32, cross_attn_norm=False),
    # per-token timesteps (DIT_TOKEN_CASES): in/out channels 16 rather than TI2V-5B's 48, which
    # changes nothing per token and keeps the files small
    "tokens": dict(num_attention_heads=2, attention_head_dim=12, num_layers=2, ffn_dim=32,
                   text_dim=24, freq_dim=32),
}
DIT_COMMON = dict(patch_size=(1, 2, 2), in_channels=16, out_channels=16, cross_attn_norm=True,
                  qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
# One case per directory tests/data/dit/NAME. seed seeds the weights, then the inputs, from one
# generator. text_pad: rows at the end of encoder_hidden_states set to zero, as the pipeline pads.
DIT_CASES = {
    "tiny2": dict(arch="tiny2", seed=2101, latent=(1, 16, 3, 8, 8), text_len=16, text_pad=5,
                  t=937, t_dtype=torch.int64),
    # odd latent frames, non-square token grid, Euler-like non-integer timestep
    "tiny3": dict(arch="tiny3", seed=2102, latent=(1, 16, 5, 6, 10), text_len=12, text_pad=0,
                  t=455.5, t_dtype=torch.float32),
    "tiny2_sharded": dict(arch="tiny2", seed=2103, latent=(1, 16, 3, 8, 8), text_len=16,
                          text_pad=5, t=937, t_dtype=torch.int64, max_shard_size="20KB"),
    "tiny2_bf16": dict(arch="tiny2", seed=2104, latent=(1, 16, 3, 8, 8), text_len=16, text_pad=5,
                       t=937, t_dtype=torch.int64, bf16=True),
    "nocross": dict(arch="nocross", seed=2105, latent=(1, 16, 2, 4, 6), text_len=8, text_pad=2,
                    t=613, t_dtype=torch.int64),
}
# tiny3's weights under the original Wan key names; same config.json and io.safetensors as tiny3.
DIT_ORIG_CASE = ("tiny2_orig", "tiny2")
# Per-token timesteps (Wan2.2 TI2V-5B: WanPipeline with expand_timesteps=True passes timestep
# [1, L]): one model called three times (dit_tokens_case), arch "tokens".
DIT_TOKEN_CASES = {
    "tokens": dict(arch="tokens", seed=2106, latent=(1, 16, 3, 4, 6), text_len=8, text_pad=2,
                   t=812.5),
}

DIT_INIT = ("every parameter re-initialised from torch.Generator().manual_seed(seed) in sorted "
            "name order: matrices and conv kernels randn/sqrt(fan_in); biases 0.05*randn; "
            "norm weights (attn norm_q/norm_k, norm2) 1+0.1*randn; scale_shift_table 0.1*randn; "
            "then hidden_states randn, encoder_hidden_states randn with the last text_pad rows 0")

DIT_TAP_DOC = {
    "rope_cos": "rope (WanRotaryPosEmbed) output 0, returned as [1,L,1,head_dim], saved reshaped "
                "to [L,head_dim]; elements 2p and 2p+1 hold the same cos (repeat_interleave); "
                "columns t:h:w = head_dim-4*(head_dim//6) : 2*(head_dim//6) : 2*(head_dim//6)",
    "rope_sin": "rope output 1, like rope_cos",
    "patch_embed": "patch_embedding (Conv3d) output [1,D,F',H',W'] .flatten(2).transpose(1,2) "
                   "-> [1,L,D]",
    "time_freq": "time_embedder input [1,freq_dim]: the sinusoid [cos | sin] of the timestep as "
                 "diffusers computes it (exponent, angle, sin/cos in fp32)",
    "temb": "condition_embedder output 0 [1,D]: time_embedder(time_freq) (also drives the head)",
    "timestep_proj": "condition_embedder output 1, returned flat [1,6D] = time_proj(silu(temb)), "
                     "saved unflattened to [1,6,D] as the forward does (rows shift1,scale1,gate1,"
                     "shift2,scale2,gate2 before adding each block's scale_shift_table)",
    "text_proj": "condition_embedder output 2 [1,S,D]: text_embedder(encoder_hidden_states), "
                 "zero rows included",
    "block": "blocks[i] output [1,L,D]",
    "head": "proj_out output [1,L,64] (after norm_out and the scale_shift_table+temb modulation; "
            "before unpatchify)",
    "output": "the model's returned sample [1,16,F,H,W] (forward(..., return_dict=False)[0])",
}

# diffusers key -> original Wan key (spec 2.7; the inverse of diffusers' Wan rename dict).
# Note the swap: the affine cross-attention LayerNorm is diffusers norm2 but original norm3.
DIT_ORIG_RENAMES = [
    (r"^patch_embedding\.", "patch_embedding."),
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"^blocks\.(\d+)\.scale_shift_table$", r"blocks.\1.modulation"),
    (r"^blocks\.(\d+)\.attn1\.to_(q|k|v)\.", r"blocks.\1.self_attn.\2."),
    (r"^blocks\.(\d+)\.attn1\.to_out\.0\.", r"blocks.\1.self_attn.o."),
    (r"^blocks\.(\d+)\.attn1\.(norm_q|norm_k)\.", r"blocks.\1.self_attn.\2."),
    (r"^blocks\.(\d+)\.attn2\.to_(q|k|v)\.", r"blocks.\1.cross_attn.\2."),
    (r"^blocks\.(\d+)\.attn2\.to_out\.0\.", r"blocks.\1.cross_attn.o."),
    (r"^blocks\.(\d+)\.attn2\.(norm_q|norm_k)\.", r"blocks.\1.cross_attn.\2."),
    (r"^blocks\.(\d+)\.norm2\.", r"blocks.\1.norm3."),
    (r"^blocks\.(\d+)\.ffn\.net\.0\.proj\.", r"blocks.\1.ffn.0."),
    (r"^blocks\.(\d+)\.ffn\.net\.2\.", r"blocks.\1.ffn.2."),
    (r"^proj_out\.", "head.head."),
    (r"^scale_shift_table$", "head.modulation"),
]


def save_file_sorted_meta(tensors, path, metadata):
    """save_file with the __metadata__ keys in sorted order. safetensors writes them in hash-map
    order, which changes from one process to the next, and so would the file's bytes."""
    save_file(tensors, path, metadata=metadata)
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        old = f.read(n)
        hdr = json.loads(old)
        hdr["__metadata__"] = dict(sorted(hdr["__metadata__"].items()))
        new = json.dumps(hdr, separators=(",", ":"), ensure_ascii=False).encode()
        assert len(new) == len(old.rstrip(b" ")) and json.loads(new) == json.loads(old), path
        f.seek(8)
        f.write(new.ljust(n, b" "))


def dit_orig_key(key):
    hits = [re.sub(pat, rep, key) for pat, rep in DIT_ORIG_RENAMES if re.search(pat, key)]
    assert len(hits) == 1, "no single original name for %s: %s" % (key, hits)
    return hits[0]


def dit_reinit(model, gen):
    """Overwrite every parameter so that no path is tested with diffusers' zeros and ones."""
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("scale_shift_table"):
                v = 0.1 * r
            elif name.endswith(".bias"):
                v = 0.05 * r
            elif p.ndim == 1 and name.endswith(".weight"):
                v = 1.0 + 0.1 * r
            elif p.ndim >= 2 and name.endswith(".weight"):
                v = r / math.sqrt(p[0].numel())
            else:
                raise ValueError("no init rule for %s %s" % (name, tuple(p.shape)))
            p.copy_(v)


def sinusoid_f64(t, dim):
    """diffusers Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0), all in float64."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    ang = t.to(torch.float64)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=-1)


@contextlib.contextmanager
def float_keeps_f64():
    """diffusers upcasts with .float() (FP32LayerNorm, block modulation, norm_out, RoPE tables):
    let .float() leave float64 tensors alone so that a .double() model really runs in float64."""
    orig = torch.Tensor.float
    torch.Tensor.float = lambda t, *a, **k: t if t.dtype == torch.float64 else orig(t, *a, **k)
    try:
        yield
    finally:
        torch.Tensor.float = orig


def dit_taps(model, inp, time_freq=None):
    """One forward with return_dict=False; returns the taps in forward order. time_freq, if given,
    replaces the time_embedder input (the float64 reference's own sinusoid)."""
    taps = {}
    hooks = []

    def on(mod, fn):
        hooks.append(mod.register_forward_hook(lambda m, a, out: taps.update(fn(out))))

    if time_freq is not None:
        hooks.append(model.condition_embedder.time_embedder.register_forward_pre_hook(
            lambda m, a: (time_freq,)))
    hooks.append(model.condition_embedder.time_embedder.register_forward_pre_hook(
        lambda m, a: taps.update({"time_freq": a[0]})))
    on(model.rope, lambda o: {"rope_cos": o[0].reshape(o[0].shape[1], -1),
                              "rope_sin": o[1].reshape(o[1].shape[1], -1)})
    on(model.patch_embedding, lambda o: {"patch_embed": o.flatten(2).transpose(1, 2)})
    # timestep_proj: [1, 6D] (or [1, L, 6D] for a per-token timestep) -> [1, (L,) 6, D]
    on(model.condition_embedder, lambda o: {"temb": o[0], "text_proj": o[2],
                                            "timestep_proj": o[1].unflatten(-1, (6, -1))})
    for i, blk in enumerate(model.blocks):
        on(blk, lambda o, i=i: {"block.%d" % i: o})
    on(model.proj_out, lambda o: {"head": o})
    try:
        with torch.no_grad():
            out = model(hidden_states=inp["hidden_states"], timestep=inp["timestep"],
                        encoder_hidden_states=inp["encoder_hidden_states"], return_dict=False)[0]
    finally:
        for h in hooks:
            h.remove()
    taps["output"] = out
    order = ["rope_cos", "rope_sin", "patch_embed", "time_freq", "temb", "timestep_proj",
             "text_proj"] + ["block.%d" % i for i in range(len(model.blocks))] + ["head", "output"]
    assert sorted(order) == sorted(taps), sorted(taps)
    return {k: taps[k].detach().clone().contiguous() for k in order}


def dit_f64_taps(model, inp):
    """The same model and inputs in float64: weights, activations, RoPE tables and sinusoid."""
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed
    cfg = model.config
    m64 = copy.deepcopy(model)
    with float_keeps_f64():
        m64.rope = WanRotaryPosEmbed(cfg.attention_head_dim, cfg.patch_size, cfg.rope_max_seq_len)
        m64 = m64.double()
        inp64 = dict(inp, hidden_states=inp["hidden_states"].double(),
                     encoder_hidden_states=inp["encoder_hidden_states"].double())
        ts = inp["timestep"]  # [1], or [1, L]: the sinusoid [1, freq_dim] or [1, L, freq_dim]
        tf = sinusoid_f64(ts.flatten(), cfg.freq_dim).reshape(*ts.shape, -1)
        taps = dit_taps(m64, inp64, time_freq=tf)
    assert all(v.dtype == torch.float64 for v in taps.values())
    return taps


def nmse(a, ref):
    a, ref = a.double(), ref.double()
    return (((a - ref) ** 2).sum() / (ref ** 2).sum()).item()


def dit_model(arch):
    from diffusers import WanTransformer3DModel
    return WanTransformer3DModel(**dict(DIT_COMMON, **DIT_ARCH[arch])).eval()


def dit_case(name, case, out_dir):
    import diffusers
    gen = torch.Generator().manual_seed(case["seed"])
    model = dit_model(case["arch"])
    dit_reinit(model, gen)
    if case.get("bf16"):
        # Round the parameters only: model.to(bf16) would also round the RoPE buffers.
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    lat = torch.randn(case["latent"], generator=gen, dtype=torch.float32)
    ctx = torch.randn((1, case["text_len"], model.config.text_dim), generator=gen,
                      dtype=torch.float32)
    if case["text_pad"]:
        ctx[:, -case["text_pad"]:] = 0
    inp = {"hidden_states": lat, "timestep": torch.tensor([case["t"]], dtype=case["t_dtype"]),
           "encoder_hidden_states": ctx}
    taps = dit_taps(model, inp)
    ref = dit_f64_taps(model, inp)
    errs = {k: (nmse(v, ref[k]), (v.double() - ref[k]).abs().max().item()) for k, v in taps.items()}

    case_dir = os.path.join(out_dir, name)
    shutil.rmtree(case_dir, ignore_errors=True)
    tdir = os.path.join(case_dir, "transformer")
    save = copy.deepcopy(model).to(torch.bfloat16) if case.get("bf16") else model
    save.save_pretrained(tdir, safe_serialization=True,
                         max_shard_size=case.get("max_shard_size", "10GB"))

    config = {k: v for k, v in model.config.items() if not k.startswith("_")}
    meta = {"torch": torch.__version__, "diffusers": diffusers.__version__,
            "generator": "tests/golden/gen_golden.py dit", "case": name,
            "class": "diffusers.WanTransformer3DModel",
            "config": json.dumps(config, sort_keys=True),
            "seed": str(case["seed"]), "init": DIT_INIT,
            "weights": ("bf16 on disk; taps from an fp32 run with the parameters rounded to bf16 "
                        "(RoPE buffers not rounded)") if case.get("bf16") else "fp32",
            "timestep": repr(case["t"]),
            "timestep_dtype": str(case["t_dtype"]).replace("torch.", ""),
            "text_zero_rows": "%d (the last rows of %d)" % (case["text_pad"], case["text_len"]),
            "taps": json.dumps(list(taps)),
            "f64_reference": "the same model deep-copied, .double(), RoPE tables rebuilt in "
                             "float64, Tensor.float() kept float64, time_embedder input replaced "
                             "by a float64 sinusoid; nmse = sum((fp32-f64)^2)/sum(f64^2)"}
    for k in taps:
        meta["tap." + k] = DIT_TAP_DOC["block" if k.startswith("block.") else k]
        meta["nmse_fp32_vs_f64." + k] = "%.3e" % errs[k][0]
        meta["maxabs_fp32_vs_f64." + k] = "%.3e" % errs[k][1]
    tensors = {"input.hidden_states": lat, "input.timestep": inp["timestep"].to(torch.float32),
               "input.encoder_hidden_states": ctx}
    tensors.update({"tap." + k: v for k, v in taps.items()})
    save_file_sorted_meta(tensors, os.path.join(case_dir, "io.safetensors"), meta)
    dit_check_reload(name, tdir, inp, taps["output"], case, model)
    print("%s: %s" % (name, json.dumps(config, sort_keys=True)))
    for k, v in taps.items():
        print("  tap.%-14s %-18s nmse_vs_f64 %.3e  maxabs %.3e" % (k, list(v.shape), *errs[k]))
    return model


def dit_check_reload(name, tdir, inp, want, case, model):
    """from_pretrained of what was just written must give model's parameters and reproduce
    tap.output bit for bit."""
    from diffusers import WanTransformer3DModel
    from safetensors import safe_open
    files = sorted(f for f in os.listdir(tdir) if f.endswith(".safetensors"))
    if case.get("max_shard_size"):
        assert len(files) >= 2 and os.path.exists(
            os.path.join(tdir, "diffusion_pytorch_model.safetensors.index.json")), files
    else:
        assert files == ["diffusion_pytorch_model.safetensors"], files
    want_dtype = "BF16" if case.get("bf16") else "F32"
    for f in files:
        with safe_open(os.path.join(tdir, f), framework="pt") as st:
            assert all(st.get_slice(k).get_dtype() == want_dtype for k in st.keys()), f
    m = WanTransformer3DModel.from_pretrained(tdir, torch_dtype=torch.float32).eval()
    sd, back = model.state_dict(), m.state_dict()
    assert sorted(back) == sorted(sd) and all(torch.equal(back[k], sd[k]) for k in sd), name
    # Loaded tensors may sit at addresses that are not 64-byte aligned, which makes CPU GEMMs take
    # another path and differ in the last bit; run the forward on aligned copies.
    with torch.no_grad():
        for p in m.parameters():
            p.data = p.data.clone()
    assert torch.equal(dit_taps(m, inp)["output"], want), "%s: reload differs" % name


def dit_orig_case(name, src, model, out_dir):
    """Save model's weights under the original Wan names; check diffusers' own converter maps them
    back to exactly the diffusers state dict, and that the converted model reproduces tap.output."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    from safetensors.torch import load_file
    sd = model.state_dict()
    orig = {dit_orig_key(k): v.contiguous() for k, v in sd.items()}
    assert len(orig) == len(sd)
    case_dir = os.path.join(out_dir, name)
    shutil.rmtree(case_dir, ignore_errors=True)
    tdir = os.path.join(case_dir, "transformer")
    os.makedirs(tdir)
    wpath = os.path.join(tdir, "diffusion_pytorch_model.safetensors")
    save_file(orig, wpath, metadata={"format": "pt"})
    shutil.copyfile(os.path.join(out_dir, src, "transformer", "config.json"),
                    os.path.join(tdir, "config.json"))
    shutil.copyfile(os.path.join(out_dir, src, "io.safetensors"),
                    os.path.join(case_dir, "io.safetensors"))

    back = convert_wan_transformer_to_diffusers(load_file(wpath))
    assert sorted(back) == sorted(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    m = dit_model(DIT_CASES[src]["arch"])
    m.load_state_dict(back, strict=True)
    io = load_file(os.path.join(case_dir, "io.safetensors"))
    inp = {"hidden_states": io["input.hidden_states"], "timestep": io["input.timestep"].to(
        DIT_CASES[src]["t_dtype"]), "encoder_hidden_states": io["input.encoder_hidden_states"]}
    assert torch.equal(dit_taps(m, inp)["output"], io["tap.output"]), name
    print("%s: %s weights under original Wan names (%d tensors), config.json and io.safetensors "
          "copied from %s" % (name, src, len(orig), src))


def dit_tokens_case(name, case, out_dir):
    """One model, three forwards with a timestep of shape [1, L] (L = F' * H' * W' tokens in
    diffusers' order): `ti2v` as WanPipeline(expand_timesteps=True) builds it for an image-
    conditioned first frame (mask 0 on latent frame 0, (mask[0][0][:, ::2, ::2] * t).flatten()),
    `pertoken` a different random timestep for every token, `uniform` t for every token (also
    compared with the scalar timestep [t], recorded in the metadata). The t-independent taps are
    stored once (tap.*), the others per call (CALL.tap.*)."""
    import diffusers
    gen = torch.Generator().manual_seed(case["seed"])
    model = dit_model(case["arch"])
    dit_reinit(model, gen)
    lat = torch.randn(case["latent"], generator=gen, dtype=torch.float32)
    ctx = torch.randn((1, case["text_len"], model.config.text_dim), generator=gen,
                      dtype=torch.float32)
    ctx[:, -case["text_pad"]:] = 0
    pt, ph, pw = model.config.patch_size
    _, _, F, H, W = lat.shape
    L = (F // pt) * (H // ph) * (W // pw)
    t = torch.tensor(case["t"], dtype=torch.float32)
    mask = torch.ones((1, 1, F, H, W), dtype=torch.float32)  # WanPipeline.prepare_latents
    mask[:, :, 0] = 0
    ti2v = (mask[0][0][:, ::ph, ::pw] * t).flatten().unsqueeze(0)
    pert = (torch.rand((1, L), generator=gen, dtype=torch.float32) * 1000.0)
    assert ti2v.shape == (1, L) and len(set(pert.flatten().tolist())) == L
    calls = {"ti2v": ti2v, "pertoken": pert, "uniform": torch.full((1, L), case["t"])}
    shared = ["rope_cos", "rope_sin", "patch_embed", "text_proj"]
    per_call = ["temb", "timestep_proj"] + ["block.%d" % i for i in range(len(model.blocks))] + [
        "head", "output"]
    tensors = {"input.hidden_states": lat, "input.encoder_hidden_states": ctx}
    meta = {"torch": torch.__version__, "diffusers": diffusers.__version__,
            "generator": "tests/golden/gen_golden.py dit (dit_tokens_case)", "case": name,
            "class": "diffusers.WanTransformer3DModel",
            "config": json.dumps({k: v for k, v in model.config.items() if not k.startswith("_")},
                                 sort_keys=True),
            "seed": str(case["seed"]), "init": DIT_INIT + "; then pertoken's timesteps "
            "rand*1000", "calls": json.dumps(list(calls)),
            "timestep": "CALL.input.timestep [1,L] f32, L = F'*H'*W' tokens in diffusers' order",
            "ti2v": "t=%r on every token but latent frame 0's (t=0), as WanPipeline with "
                    "expand_timesteps=True builds it" % case["t"],
            "pertoken": "a different timestep per token", "uniform": "t=%r on every token" %
            case["t"], "taps.shared": json.dumps(shared), "taps.per_call": json.dumps(per_call),
            "tap.temb": "condition_embedder output 0: [1,L,D] per token",
            "tap.timestep_proj": "condition_embedder output 1 [1,L,6D] saved as [1,L,6,D]",
            "f64_reference": "as the other dit cases (dit_f64_taps), the sinusoid [1,L,freq_dim] "
                             "in float64"}
    for call, ts in calls.items():
        inp = {"hidden_states": lat, "timestep": ts, "encoder_hidden_states": ctx}
        taps = dit_taps(model, inp)
        ref = dit_f64_taps(model, inp)
        assert taps["temb"].shape[:2] == (1, L) and taps["timestep_proj"].shape[:3] == (1, L, 6)
        tensors[call + ".input.timestep"] = ts.to(torch.float32).contiguous()
        for k in shared:
            if call == "ti2v":
                tensors["tap." + k] = taps[k]
            else:
                assert torch.equal(tensors["tap." + k], taps[k]), (call, k)
        for k in per_call:
            tensors["%s.tap.%s" % (call, k)] = taps[k]
            meta["%s.nmse_fp32_vs_f64.%s" % (call, k)] = "%.3e" % nmse(taps[k], ref[k])
        print("%s %s: timestep %s, output nmse_vs_f64 %.3e" % (
            name, call, list(ts.shape), nmse(taps["output"], ref["output"])))
        if call == "ti2v":
            ti2v_inp, ti2v_out = inp, taps["output"]
    scalar = dit_taps(model, {"hidden_states": lat, "timestep": torch.tensor([case["t"]]),
                              "encoder_hidden_states": ctx})["output"]
    uni = tensors["uniform.tap.output"]
    meta["uniform_vs_scalar"] = ("bitwise equal" if torch.equal(uni, scalar) else
                                 "nmse %.3e (diffusers' per-token GEMMs have L rows, the scalar "
                                 "forward's 1)" % nmse(uni, scalar))
    print("%s: uniform per-token vs scalar timestep: %s" % (name, meta["uniform_vs_scalar"]))

    case_dir = os.path.join(out_dir, name)
    shutil.rmtree(case_dir, ignore_errors=True)
    tdir = os.path.join(case_dir, "transformer")
    model.save_pretrained(tdir, safe_serialization=True)
    save_file_sorted_meta({k: v.contiguous() for k, v in tensors.items()},
                          os.path.join(case_dir, "io.safetensors"), meta)
    dit_check_reload(name, tdir, ti2v_inp, ti2v_out, case, model)


def gen_dit(args):
    import diffusers
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    out_dir = os.path.join(DATA, "dit")
    os.makedirs(out_dir, exist_ok=True)
    only = set(args.only or [])
    unknown = only - set(DIT_CASES) - set(DIT_TOKEN_CASES) - {DIT_ORIG_CASE[0]}
    if unknown:
        sys.exit("unknown dit case(s): %s" % ", ".join(sorted(unknown)))
    models = {name: dit_case(name, case, out_dir) for name, case in DIT_CASES.items()
              if not only or name in only or (name == DIT_ORIG_CASE[1] and DIT_ORIG_CASE[0] in only)}
    if not only or DIT_ORIG_CASE[0] in only:
        dit_orig_case(DIT_ORIG_CASE[0], DIT_ORIG_CASE[1], models[DIT_ORIG_CASE[1]], out_dir)
    for name, case in DIT_TOKEN_CASES.items():
        if not only or name in only:
            dit_tokens_case(name, case, out_dir)


# ---- UMT5 text encoder (issue #4) ----

T5_COMMON = dict(feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_gated_act=True,
                 layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                 tie_word_embeddings=False, scalable_attention=True, dropout_rate=0.1)
# tiny_a: the real bucket parameters (32, 128), the vocab padded past the tokenizer's 1,800 ids
# like the real 256,384 rows; tiny_b: inner width (heads x d_kv = 18) != d_model (24), d_ff not a
# multiple of 8, other bucket parameters, bf16 weights on disk.
T5_CASES = {
    "tiny_a": dict(seed=501, bf16=False, tap_len=64, long_prompt=True,
                   cfg=dict(vocab_size=1856, d_model=32, d_kv=8, num_heads=4, num_layers=2,
                            d_ff=48, relative_attention_num_buckets=32,
                            relative_attention_max_distance=128)),
    "tiny_b": dict(seed=502, bf16=True, tap_len=48, long_prompt=False,
                   cfg=dict(vocab_size=1800, d_model=24, d_kv=6, num_heads=3, num_layers=3,
                            d_ff=36, relative_attention_num_buckets=16,
                            relative_attention_max_distance=40)),
}
T5_TAP_PROMPT = "A red fox runs through  fresh snow at dawn, cinematic &amp; slow motion"
T5_PIPE_PROMPTS = [
    "A cat walks on the grass, realistic",
    "",
    "一只可爱的小猫在草地上奔跑，阳光明媚。",
    "Café au lait &lt;3 — très bien!  \t Ça va? 🎬",
]
T5_LONG_PROMPT = " ".join("scene %d: a drone flies over mountains, rivers and old towns." % i
                          for i in range(120))
T5_INIT = ("every parameter re-initialised from torch.Generator().manual_seed(seed) in sorted "
           "name order: matrices N(0,1)/sqrt(fan_in), RMS-norm weights 1+0.1*N(0,1), the token "
           "embedding N(0,1), relative attention bias tables 0.5*N(0,1)")
T5_BUCKET_RANGE = 600  # buckets recorded for j - i in [-600, 600]


def t5_tokenizer():
    """T5TokenizerFast.from_pretrained(a folder holding spiece.model, extra_ids=300), as
    golden_tokenizer.py builds it (the vocab_file= constructor of transformers 5 does not read
    the SentencePiece model)."""
    import tempfile
    from transformers import T5TokenizerFast
    spm = os.path.join(DATA, "tokenizer", "spiece.model")
    if not os.path.exists(spm):
        sys.exit("gen_golden t5: %s missing; run `gen_golden.py tokenizer` first" % spm)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(spm, os.path.join(tmp, "spiece.model"))
        tok = T5TokenizerFast.from_pretrained(tmp, extra_ids=300)
    assert len(tok) == 1800 and tok.convert_tokens_to_ids("<extra_id_0>") == 1799, len(tok)
    return tok


def t5_reinit(model, gen):
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if "relative_attention_bias" in name:
                v = 0.5 * r
            elif name in ("shared.weight", "encoder.embed_tokens.weight"):
                v = r
            elif p.ndim == 1:
                v = 1.0 + 0.1 * r
            elif p.ndim == 2:
                v = r / math.sqrt(p.shape[1])
            else:
                raise ValueError("no init rule for %s %s" % (name, tuple(p.shape)))
            p.copy_(v)


def t5_taps(model, ids, mask):
    taps, hooks = {}, []
    enc = model.encoder
    hooks.append(enc.embed_tokens.register_forward_hook(
        lambda m, a, o: taps.update({"embed": o[0]})))
    for i, blk in enumerate(enc.block):
        hooks.append(blk.register_forward_hook(
            lambda m, a, o, i=i: taps.update({"block.%d" % i: (o[0] if isinstance(o, tuple) else o)[0]})))
    hooks.append(enc.final_layer_norm.register_forward_hook(
        lambda m, a, o: taps.update({"final_norm": o[0]})))
    try:
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask).last_hidden_state
    finally:
        for h in hooks:
            h.remove()
    assert torch.equal(out[0], taps["final_norm"])
    order = ["embed"] + ["block.%d" % i for i in range(len(enc.block))] + ["final_norm"]
    assert sorted(order) == sorted(taps), sorted(taps)
    return {k: taps[k].detach().clone().contiguous() for k in order}


def t5_pipeline_embeds(model, tok, prompt):
    """diffusers WanPipeline._get_t5_prompt_embeds itself, on a stand-in pipeline object."""
    from types import SimpleNamespace
    from diffusers import WanPipeline
    ns = SimpleNamespace(tokenizer=tok, text_encoder=model)
    text = tok([__import__("diffusers").pipelines.wan.pipeline_wan.prompt_clean(prompt)],
               padding="max_length", max_length=512, truncation=True, add_special_tokens=True,
               return_attention_mask=True, return_tensors="pt")
    with torch.no_grad():
        emb = WanPipeline._get_t5_prompt_embeds(ns, prompt=prompt, num_videos_per_prompt=1,
                                               max_sequence_length=512,
                                               device=torch.device("cpu"), dtype=torch.float32)
    return text.input_ids[0], text.attention_mask[0], emb[0]


def t5_case(name, case, tok, out_dir):
    import transformers
    from transformers import UMT5Config, UMT5EncoderModel
    gen = torch.Generator().manual_seed(case["seed"])
    config = UMT5Config(**T5_COMMON, **case["cfg"])
    model = UMT5EncoderModel(config).eval()
    t5_reinit(model, gen)
    if case["bf16"]:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    assert len(tok) <= config.vocab_size, (len(tok), config.vocab_size)

    # taps: one prompt padded to tap_len (so padded keys and queries are exercised)
    t = tok([T5_TAP_PROMPT], padding="max_length", max_length=case["tap_len"], truncation=True,
            add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    ids, mask = t.input_ids, t.attention_mask
    assert 0 < int(mask.sum()) < case["tap_len"], "the tap prompt must leave padding"
    taps = t5_taps(model, ids, mask)
    m64 = copy.deepcopy(model).double()
    ref = t5_taps(m64, ids, mask)
    errs = {k: (nmse(v, ref[k]), (v.double() - ref[k]).abs().max().item()) for k, v in taps.items()}

    # the pipeline's processed output for several prompts at max_length 512
    prompts = list(T5_PIPE_PROMPTS) + ([T5_LONG_PROMPT] if case["long_prompt"] else [])
    pipe = []
    for k, pr in enumerate(prompts):
        pids, pmask, emb = t5_pipeline_embeds(model, tok, pr)
        n = int(pmask.sum())
        assert torch.equal(pmask[:n], torch.ones(n, dtype=pmask.dtype)) and int(pmask[n:].sum()) == 0
        assert torch.count_nonzero(emb[n:]) == 0
        pipe.append((pr, pids, pmask, emb[:n].contiguous(), n))

    case_dir = os.path.join(out_dir, name)
    shutil.rmtree(case_dir, ignore_errors=True)
    tdir = os.path.join(case_dir, "text_encoder")
    save = copy.deepcopy(model).to(torch.bfloat16) if case["bf16"] else model
    save.save_pretrained(tdir, safe_serialization=True)

    # the bucket function itself, for these parameters
    rel = torch.arange(-T5_BUCKET_RANGE, T5_BUCKET_RANGE + 1)
    buckets = model.encoder.block[0].layer[0].SelfAttention._relative_position_bucket(rel)

    meta = {"torch": torch.__version__, "transformers": transformers.__version__,
            "generator": "tests/golden/gen_golden.py t5", "case": name,
            "class": "transformers.UMT5EncoderModel",
            "attn_implementation": str(model.config._attn_implementation),
            "config": json.dumps(config.to_diff_dict(), sort_keys=True),
            "seed": str(case["seed"]), "init": T5_INIT,
            "weights": ("bf16 on disk; taps from an fp32 run with the parameters rounded to bf16")
            if case["bf16"] else "fp32",
            "tap_prompt": T5_TAP_PROMPT, "tap_len": str(case["tap_len"]),
            "taps": json.dumps(list(taps)),
            "pipe_prompts": json.dumps(prompts, ensure_ascii=False),
            "pipe": "pipe.K.ids/mask: the tokenizer's input (max_length 512) for prompt K; "
                    "pipe.K.out: rows [0, n) of WanPipeline._get_t5_prompt_embeds (the rest are "
                    "exact zeros)",
            "buckets": "_relative_position_bucket(j - i) for j - i in [-%d, %d]"
                       % (T5_BUCKET_RANGE, T5_BUCKET_RANGE),
            "f64_reference": "the same model deep-copied and .double(); nmse = "
                             "sum((fp32-f64)^2)/sum(f64^2)"}
    for k in taps:
        meta["nmse_fp32_vs_f64." + k] = "%.3e" % errs[k][0]
        meta["maxabs_fp32_vs_f64." + k] = "%.3e" % errs[k][1]
    tensors = {"input.ids": ids[0].to(torch.int32), "input.mask": mask[0].to(torch.uint8),
               "buckets": buckets.to(torch.int32)}
    tensors.update({"tap." + k: v for k, v in taps.items()})
    for k, (pr, pids, pmask, emb, n) in enumerate(pipe):
        tensors["pipe.%d.ids" % k] = pids.to(torch.int32)
        tensors["pipe.%d.mask" % k] = pmask.to(torch.uint8)
        tensors["pipe.%d.out" % k] = emb
    save_file_sorted_meta(tensors, os.path.join(case_dir, "io.safetensors"), meta)
    print("%s: %s, attn %s" % (name, json.dumps(case["cfg"], sort_keys=True),
                               model.config._attn_implementation))
    print("  weights: %s" % sorted(os.listdir(tdir)))
    for k, v in taps.items():
        print("  tap.%-12s %-12s nmse_vs_f64 %.3e  maxabs %.3e" % (k, list(v.shape), *errs[k]))
    for k, (pr, pids, pmask, emb, n) in enumerate(pipe):
        print("  pipe.%d: %d real tokens, prompt %r" % (k, n, pr[:40]))


def gen_t5(args):
    import transformers
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    tok = t5_tokenizer()
    out_dir = os.path.join(DATA, "t5")
    os.makedirs(out_dir, exist_ok=True)
    for name, case in T5_CASES.items():
        t5_case(name, case, tok, out_dir)


def gen_tokenizer(args):
    """tests/golden/golden_tokenizer.py writes tests/data/tokenizer (spiece.model is trained only
    when absent) and tests/data/tokenizer_json (the same tokenizer as transformers 5.x's
    save_pretrained writes it: tokenizer.json + tokenizer_config.json)."""
    import subprocess
    subprocess.check_call([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                        "golden_tokenizer.py"),
                           os.path.join(DATA, "tokenizer"),
                           "--json-dir", os.path.join(DATA, "tokenizer_json")])


def gen_sched(args):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import golden_sched
    golden_sched.generate(DATA, save_file_sorted_meta)


def gen_pipeline(args):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import golden_pipeline
    golden_pipeline.generate(DATA, save_file_sorted_meta)


def gen_vae(args):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import golden_vae
    golden_vae.generate(DATA, save_file_sorted_meta)


def gen_fp8(args):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import golden_fp8
    golden_fp8.generate(DATA, save_file_sorted_meta)


def gen_bf16(args):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import golden_bf16
    golden_bf16.generate(DATA, save_file_sorted_meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("dtype", help="dtype conversion tables").set_defaults(fn=gen_dtype)
    p_dit = sub.add_parser("dit", help="WanTransformer3DModel weights, inputs, taps")
    p_dit.add_argument("--only", nargs="+", metavar="CASE",
                       help="write only these cases (e.g. nocross); the others stay as they are")
    p_dit.set_defaults(fn=gen_dit)
    sub.add_parser("tokenizer", help="SentencePiece model, prompts, T5TokenizerFast ids "
                   "(tests/golden/golden_tokenizer.py)").set_defaults(fn=gen_tokenizer)
    sub.add_parser("t5", help="UMT5EncoderModel weights, inputs, taps, pipeline outputs").set_defaults(
        fn=gen_t5)
    sub.add_parser("sched", help="UniPC / flow-match Euler tables and sampling runs "
                   "(tests/golden/golden_sched.py)").set_defaults(fn=gen_sched)
    sub.add_parser("pipeline", help="tests/data/wan-tiny: a tiny model directory and WanPipeline "
                   "runs on it (tests/golden/golden_pipeline.py; after the others)").set_defaults(
        fn=gen_pipeline)
    sub.add_parser("vae", help="AutoencoderKLWan decoder weights, latents, frames, taps "
                   "(tests/golden/golden_vae.py)").set_defaults(fn=gen_vae)
    sub.add_parser("fp8", help="diffusers' FP8 layerwise casting outputs of the tiny DiTs and "
                   "UMT5 encoders (tests/golden/golden_fp8.py; after dit and t5)").set_defaults(
        fn=gen_fp8)
    sub.add_parser("bf16", help="the tiny DiTs and UMT5 encoders run by diffusers/transformers in "
                   "bf16 (tests/golden/golden_bf16.py, tests/golden/BF16.md; after dit and "
                   "t5)").set_defaults(fn=gen_bf16)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
