#!/usr/bin/env python3
"""Golden-file generator for wanrun's tests. Run by hand; its outputs are committed.

Needs torch + safetensors from PyPI (and later diffusers, transformers, sentencepiece). Neither
the engine, its build nor CI runs this script.

    python3 tests/golden/gen_golden.py dtype      # tests/data/dtype/dtype_tables.safetensors

Each subcommand writes small safetensors files under tests/data/ whose __metadata__ records the
torch version and what was generated.
"""
import argparse
import os
import struct
import sys

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")


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
    out["bf16_to_f32"] = bits_i32(bf.float())
    out["f16_to_f32"] = bits_i32(hf.float())
    out["e4m3_to_f32"] = bits_i32(e4.float())
    out["e5m2_to_f32"] = bits_i32(e5.float())
    out["bf16_roundtrip"] = bits_i32(bf.float().to(torch.bfloat16))
    out["f16_roundtrip"] = bits_i32(hf.float().to(torch.float16))
    out["e4m3_roundtrip"] = bits_i32(e4.float().to(torch.float8_e4m3fn))
    out["e5m2_roundtrip"] = bits_i32(e5.float().to(torch.float8_e5m2))
    # f32 -> narrow on edge inputs
    x = edge_f32_inputs()
    out["edge_f32"] = bits_i32(x)
    out["edge_to_bf16"] = bits_i32(x.to(torch.bfloat16))
    out["edge_to_f16"] = bits_i32(x.to(torch.float16))
    out["edge_to_e4m3"] = bits_i32(x.to(torch.float8_e4m3fn))
    out["edge_to_e5m2"] = bits_i32(x.to(torch.float8_e5m2))
    # the same edge inputs converted one element at a time (PyTorch's scalar path), to show
    # whether the vectorised and scalar paths differ anywhere
    for name, dt in (("bf16", torch.bfloat16), ("f16", torch.float16)):
        scal = torch.stack([x[i:i + 1].to(dt)[0] for i in range(0, x.numel())])
        out["edge_to_%s_scalar" % name] = bits_i32(scal)
    meta = {"torch": torch.__version__, "generator": "tests/golden/gen_golden.py dtype",
            "layout": "every tensor is int32 holding zero-extended bit patterns; "
                      "*_to_f32[i] = torch's f32 of narrow pattern i; *_roundtrip[i] = "
                      "narrow(f32(pattern i)); edge_to_X[i] = X(edge_f32[i]) via a contiguous "
                      "tensor cast; *_scalar via one-element casts"}
    os.makedirs(os.path.join(DATA, "dtype"), exist_ok=True)
    path = os.path.join(DATA, "dtype", "dtype_tables.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, path, metadata=meta)
    print("wrote %s (%d edge inputs)" % (path, x.numel()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("dtype", help="dtype conversion tables").set_defaults(fn=gen_dtype)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
