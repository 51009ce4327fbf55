#!/usr/bin/env python3
"""Golden data for FP8 weight storage (issue #8): tests/data/dit/<case>/fp8.safetensors and
tests/data/t5/<case>/fp8.safetensors.

Called by gen_golden.py as golden_fp8.generate(data_dir, save_file_sorted_meta), after `dit` and
`t5`; or by itself: python3 tests/golden/golden_fp8.py [dit|t5|all] [data_dir] (default all).

DiT: for the tiny DiTs tiny2 and tiny3 (their transformer/ and io.safetensors inputs), diffusers'
layerwise casting: model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn,
compute_dtype=torch.float32) - every Linear's weight and bias stored as e4m3 (a plain cast, no
scale; the default skip patterns keep patch_embedding, proj_out and the norms in float32) and
upcast per forward. Writes
  output.fp8_layerwise   the model's output for io's inputs, [1, 16, F, H, W] float32
  output.fp32            the same model without casting (as io's tap.output), for reference
metadata: torch/diffusers versions, nmse of the fp8 output against the fp32 one.

T5: for the tiny UMT5 encoders tiny_a and tiny_b (their text_encoder/ loaded in float32, and
io.safetensors' input.ids / input.mask, batch 1), diffusers.hooks.apply_layerwise_casting(model,
float8_e4m3fn, float32, skip_modules_pattern=T5_SKIP) - exactly the Linears inside
encoder.block.* (SelfAttention q, k, v, o; DenseReluDense wi_0, wi_1, wo; no biases) stored as
e4m3 and upcast per forward. nn.Embedding is one of the hook's supported layer types, so the
token embedding (shared, the same module as encoder.embed_tokens) and every block's
relative_attention_bias are skipped by name; the RMS norms are not a supported type (and are
skipped by name as well). transformers' UMT5DenseGatedActDense casts its input to
wo.weight.dtype before calling wo (its _keep_in_fp32_modules = ["wo"] guard); with wo stored in
e4m3 that would round the activations to e4m3 and then fail in F.linear (e4m3 input, float32
weight once wo's hook has upcast it), so a forward pre-hook on each DenseReluDense upcasts wo
(exactly) before that check: wo's weight is stored in e4m3 and computed in float32 like the other
cast Linears, and the activations stay float32. Writes
  output.fp8_layerwise   last_hidden_state[0] for io's inputs, [L, D] float32 (as io's
                         tap.final_norm)
  output.fp32            the same model without casting (equal to io's tap.final_norm within
                         1e-5), for reference
metadata: torch/diffusers/transformers versions, nmse of the fp8 output against the fp32 one,
the number of e4m3 tensors, the skip pattern.
"""
import json
import os
import re
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


# Skipped by re.search on the module's dotted name: the token embedding (reached as both
# "shared" and "encoder.embed_tokens"), every block's relative_attention_bias (nn.Embedding, a
# supported layer type) and the norms. What is left of the supported types: the block Linears.
T5_SKIP = (r"^shared$", r"^encoder\.embed_tokens$", r"relative_attention_bias$", r"norm")
T5_CAST = re.compile(r"^encoder\.block\.\d+\.layer\.(0\.SelfAttention\.(q|k|v|o)|"
                     r"1\.DenseReluDense\.(wi_0|wi_1|wo))\.weight$")


def t5_upcast_wo(ff, args):
    """Forward pre-hook on a DenseReluDense: wo to float32 (exact from e4m3) before its forward
    compares its input's dtype with wo.weight.dtype; wo's own casting hook stores it back as e4m3
    after wo runs."""
    ff.wo.to(torch.float32)


def t5_case(data_dir, name, save):
    import diffusers
    import transformers
    from diffusers.hooks import apply_layerwise_casting
    from diffusers.hooks.layerwise_casting import _GO_LC_SUPPORTED_PYTORCH_LAYERS
    from safetensors.torch import load_file
    from transformers import UMT5EncoderModel
    case = os.path.join(data_dir, "t5", name)
    io = load_file(os.path.join(case, "io.safetensors"))
    ids = io["input.ids"].long()[None]
    mask = io["input.mask"].long()[None]
    model = UMT5EncoderModel.from_pretrained(os.path.join(case, "text_encoder"),
                                             torch_dtype=torch.float32).eval()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).last_hidden_state[0].float()
    io_ref = io["tap.final_norm"]
    assert ref.shape == io_ref.shape, (ref.shape, io_ref.shape)
    dio = (ref - io_ref).abs().max().item()
    assert dio < 1e-5, "%s: fp32 output differs from io's tap.final_norm by %g" % (name, dio)

    assert torch.nn.Embedding in _GO_LC_SUPPORTED_PYTORCH_LAYERS
    apply_layerwise_casting(model, storage_dtype=torch.float8_e4m3fn,
                            compute_dtype=torch.float32, skip_modules_pattern=T5_SKIP)
    for blk in model.encoder.block:
        ff = blk.layer[1].DenseReluDense
        ff.register_forward_pre_hook(t5_upcast_wo)
    cast = [n for n, p in model.named_parameters() if p.dtype == torch.float8_e4m3fn]
    want = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    want = [n + ".weight" for n in want]
    assert sorted(cast) == sorted(want) and all(T5_CAST.match(n) for n in cast), (cast, want)
    assert len(cast) == 7 * model.config.num_layers, cast
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if n not in cast)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state[0].float()
    assert sorted(n for n, p in model.named_parameters()
                  if p.dtype == torch.float8_e4m3fn) == sorted(cast), "weights left upcast"
    assert torch.isfinite(out).all()
    e = nmse(out, ref)
    print(f"t5/{name}: fp32 vs io tap.final_norm: max abs {dio:.3e}; fp8 layerwise casting vs "
          f"fp32: nmse {e:.3e} ({len(cast)} tensors in e4m3), output {list(out.shape)}")
    meta = {"generator": "tests/golden/golden_fp8.py t5", "case": name,
            "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "nmse_fp8_vs_fp32": f"{e:.6e}",
            "maxabs_fp32_vs_io": f"{dio:.3e}", "cast_tensors": str(len(cast)),
            "skip_modules_pattern": json.dumps(list(T5_SKIP)),
            "inputs": "io.safetensors input.ids / input.mask, batch 1; outputs are "
                      "last_hidden_state[0], [L, D] float32",
            "note": "UMT5EncoderModel (float32 load) with diffusers.hooks.apply_layerwise_casting("
                    "storage_dtype=float8_e4m3fn, compute_dtype=float32, skip_modules_pattern="
                    "skip_modules_pattern): the weights of encoder.block.*.layer.0.SelfAttention."
                    "{q,k,v,o} and layer.1.DenseReluDense.{wi_0,wi_1,wo} stored as e4m3 (plain "
                    "cast, no scale), upcast per forward; embeddings, relative_attention_bias and "
                    "norms float32. A forward pre-hook on each DenseReluDense upcasts wo before "
                    "transformers' input.to(wo.weight.dtype) guard, so activations stay float32"}
    save({"output.fp8_layerwise": out.contiguous(), "output.fp32": ref.contiguous()},
         os.path.join(case, "fp8.safetensors"), meta)


def generate_dit(data_dir, save):
    for name in ("tiny2", "tiny3"):
        one_case(data_dir, name, save)


def generate_t5(data_dir, save):
    import transformers
    threads = torch.get_num_threads()
    verbosity = transformers.logging.get_verbosity()
    bar = transformers.logging.is_progress_bar_enabled()
    torch.set_num_threads(1)  # as gen_golden.py t5 ran the reference
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        for name in ("tiny_a", "tiny_b"):
            t5_case(data_dir, name, save)
    finally:
        torch.set_num_threads(threads)
        transformers.logging.set_verbosity(verbosity)
        if bar:
            transformers.logging.enable_progress_bar()


def generate(data_dir, save):
    generate_dit(data_dir, save)
    generate_t5(data_dir, save)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gen_golden import DATA, save_file_sorted_meta
    argv = sys.argv[1:]
    what = argv.pop(0) if argv and argv[0] in ("dit", "t5", "all") else "all"
    if len(argv) > 1:
        sys.exit("usage: golden_fp8.py [dit|t5|all] [data_dir]")
    fn = {"dit": generate_dit, "t5": generate_t5, "all": generate}[what]
    fn(argv[0] if argv else DATA, save_file_sorted_meta)
