#!/usr/bin/env python3
"""Golden data for FP8 weight storage (issue #8): tests/data/dit/<case>/fp8.safetensors.

Called by gen_golden.py as golden_fp8.generate(data_dir, save_file_sorted_meta), after `dit`.

For the tiny DiTs tiny2 and tiny3 (their transformer/ and io.safetensors inputs), diffusers'
layerwise casting: model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn,
compute_dtype=torch.float32) - every Linear's weight and bias stored as e4m3 (a plain cast, no
scale; the default skip patterns keep patch_embedding, proj_out and the norms in float32) and
upcast per forward. Writes
  output.fp8_layerwise   the model's output for io's inputs, [1, 16, F, H, W] float32
  output.fp32            the same model without casting (as io's tap.output), for reference
metadata: torch/diffusers versions, nmse of the fp8 output against the fp32 one.
"""
import os
import sys

import torch


def nmse(a, ref):
    a = a.double()
    ref = ref.double()
    return float(((a - ref) ** 2).sum() / (ref ** 2).sum())


def one_case(data_dir, name, save):
    import diffusers
    from diffusers import WanTransformer3DModel
    from safetensors.torch import load_file
    case = os.path.join(data_dir, "dit", name)
    io = load_file(os.path.join(case, "io.safetensors"))
    inp = dict(hidden_states=io["input.hidden_states"], timestep=io["input.timestep"],
               encoder_hidden_states=io["input.encoder_hidden_states"], return_dict=False)
    model = WanTransformer3DModel.from_pretrained(os.path.join(case, "transformer"),
                                                  torch_dtype=torch.float32).eval()
    with torch.no_grad():
        ref = model(**inp)[0].float()
    model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn,
                                   compute_dtype=torch.float32)
    cast = [n for n, p in model.named_parameters() if p.dtype == torch.float8_e4m3fn]
    with torch.no_grad():
        out = model(**inp)[0].float()
    e = nmse(out, ref)
    print(f"{name}: fp8 layerwise casting vs fp32: nmse {e:.3e} ({len(cast)} tensors in e4m3)")
    meta = {"generator": "tests/golden/golden_fp8.py", "torch": torch.__version__,
            "diffusers": diffusers.__version__, "nmse_fp8_vs_fp32": f"{e:.6e}",
            "cast_tensors": str(len(cast)),
            "note": "enable_layerwise_casting(float8_e4m3fn, float32), default skip patterns"}
    save({"output.fp8_layerwise": out.contiguous(), "output.fp32": ref.contiguous()},
         os.path.join(case, "fp8.safetensors"), meta)


def generate(data_dir, save):
    for name in ("tiny2", "tiny3"):
        one_case(data_dir, name, save)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gen_golden import DATA, save_file_sorted_meta
    generate(sys.argv[1] if len(sys.argv) > 1 else DATA, save_file_sorted_meta)
