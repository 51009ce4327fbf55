#!/usr/bin/env python3
"""Golden data for bf16 compute (issue #15 section 3): tests/data/dit/<case>/bf16.safetensors and
tests/data/t5/<case>/bf16.safetensors - the tiny models run by diffusers / transformers in bf16,
the way a diffusers user runs Wan (WanPipeline.from_pretrained(..., torch_dtype=torch.bfloat16)).
See tests/golden/BF16.md for what runs in f32 and the measured errors.

Called by gen_golden.py as golden_bf16.generate(data_dir, save_file_sorted_meta), after `dit` and
`t5` (it reads their committed transformer/, text_encoder/ and io.safetensors); or by itself:
python3 tests/golden/golden_bf16.py [dit|t5|all] [data_dir] (default all). It writes nothing else.

DiT (tiny2, tiny3, tiny2_bf16, nocross): WanTransformer3DModel.from_pretrained(transformer/,
torch_dtype=torch.bfloat16), which rounds the weights to bf16 except the model's
_keep_in_fp32_modules (rope, time_embedder, scale_shift_table, norm1/2/3: here the block and head
scale_shift_tables, the time_embedder Linears, the affine norm2, the RoPE tables), fed io's inputs
as WanPipeline feeds them: hidden_states and encoder_hidden_states rounded to bf16, the timestep in
the f32 golden's dtype. The file has io.safetensors' layout:
  input.hidden_states, input.encoder_hidden_states   what was fed: io's inputs rounded to bf16
                                                      (RNE), stored as float32
  input.timestep                                     as io's
  tap.<name>                                         the bf16 run's taps (io's names and shapes),
                                                      float32 (the bf16 values, exactly)
metadata: versions, the f32-kept parameters, the SDPA backend, nmse_bf16_vs_fp32.<tap> against
io's fp32 tap.<tap>.

T5 (tiny_a, tiny_b): UMT5EncoderModel.from_pretrained(text_encoder/, torch_dtype=torch.bfloat16)
(transformers 5 keeps nothing in f32 for bf16: _keep_in_fp32_modules = ["wo"] applies to float16
only), io's input.ids / input.mask: tap.embed, tap.block.<i>, tap.final_norm ([L, D], float32 of
the bf16 values); metadata as for the DiT, nmse against io's fp32 taps.

Every file is checked to reproduce itself: the fp32 run of the same from_pretrained model must give
io's tap.output bit for bit (DiT) or within 1e-5 (T5, as golden_fp8.py), and the bf16 run is
deterministic (run twice, equal).
"""
import json
import os
import sys

import torch

DIT_NAMES = ("tiny2", "tiny3", "tiny2_bf16", "nocross")
T5_NAMES = ("tiny_a", "tiny_b")


def nmse(a, ref):
    a = a.double()
    ref = ref.double()
    return float(((a - ref) ** 2).sum() / (ref ** 2).sum())


def aligned(model):
    """Loaded tensors may sit at addresses that are not 64-byte aligned, which makes CPU GEMMs take
    another path (gen_golden.dit_check_reload); run on aligned copies."""
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.clone()
        for name, b in list(model.named_buffers()):
            mod = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(mod, name.rsplit(".", 1)[-1], b.clone())
    return model


def kept_f32(model):
    return [n for n, p in list(model.named_parameters()) + list(model.named_buffers())
            if p.dtype != torch.bfloat16]


def sdpa_backend(q, mask=None):
    """The fused SDPA kernel torch picks for a bf16 [1, H, L, d] query (and an additive mask) on
    this machine (the enum name of torch._fused_sdp_choice: FLASH_ATTENTION on the CPU)."""
    choice = torch._fused_sdp_choice(q, q, q, mask)
    names = {int(v): k for k, v in vars(torch.nn.attention.SDPBackend).items()
             if isinstance(v, torch.nn.attention.SDPBackend)}
    return names.get(int(choice), str(choice))


def dit_case(data_dir, name, save):
    import diffusers
    from diffusers import WanTransformer3DModel
    from safetensors.torch import load_file
    import gen_golden
    case = os.path.join(data_dir, "dit", name)
    io = load_file(os.path.join(case, "io.safetensors"))
    t_dtype = gen_golden.DIT_CASES[name]["t_dtype"]
    tdir = os.path.join(case, "transformer")

    m32 = aligned(WanTransformer3DModel.from_pretrained(tdir, torch_dtype=torch.float32).eval())
    inp32 = {"hidden_states": io["input.hidden_states"],
             "timestep": io["input.timestep"].to(t_dtype),
             "encoder_hidden_states": io["input.encoder_hidden_states"]}
    assert torch.equal(gen_golden.dit_taps(m32, inp32)["output"], io["tap.output"]), \
        "%s: the fp32 reload does not reproduce io's tap.output" % name

    model = aligned(WanTransformer3DModel.from_pretrained(tdir, torch_dtype=torch.bfloat16).eval())
    keep = kept_f32(model)
    inp = {"hidden_states": io["input.hidden_states"].to(torch.bfloat16),
           "timestep": io["input.timestep"].to(t_dtype),
           "encoder_hidden_states": io["input.encoder_hidden_states"].to(torch.bfloat16)}
    taps = gen_golden.dit_taps(model, inp)
    again = gen_golden.dit_taps(model, inp)
    assert all(torch.equal(taps[k], again[k]) for k in taps), "%s: bf16 run not deterministic" % name
    assert taps["output"].dtype == torch.bfloat16, taps["output"].dtype
    f32_taps = ("rope_cos", "rope_sin", "time_freq")
    for k, v in taps.items():
        assert v.dtype == (torch.float32 if k in f32_taps else torch.bfloat16), (k, v.dtype)
        assert v.shape == io["tap." + k].shape, (k, v.shape, io["tap." + k].shape)
        assert torch.isfinite(v).all(), k
    # RoPE tables and the timestep sinusoid are float32 in both runs and the same
    for k in f32_taps:
        assert torch.equal(taps[k], io["tap." + k]), "%s: %s differs from the fp32 run" % (name, k)
    errs = {k: nmse(v, io["tap." + k]) for k, v in taps.items()}
    heads = model.config.num_attention_heads
    hd = model.config.attention_head_dim
    L = taps["patch_embed"].shape[1]
    backend = sdpa_backend(torch.zeros(1, heads, L, hd, dtype=torch.bfloat16))

    meta = {"generator": "tests/golden/golden_bf16.py dit", "case": name,
            "torch": torch.__version__, "diffusers": diffusers.__version__,
            "class": "diffusers.WanTransformer3DModel",
            "load": "from_pretrained(transformer/, torch_dtype=torch.bfloat16), parameters and "
                    "buffers cloned (aligned) before the forward",
            "kept_f32": json.dumps(keep),
            "inputs": "input.hidden_states / input.encoder_hidden_states: io's rounded to bf16 "
                      "(what the model was fed, stored as float32); input.timestep as io's, fed as "
                      + str(t_dtype).replace("torch.", ""),
            "taps": json.dumps(list(taps)),
            "tap_dtype": "float32 copies of the bf16 taps, except rope_cos, rope_sin, time_freq "
                         "(float32 in the bf16 run too, equal to io's)",
            "sdpa_backend": backend,
            "nmse": "nmse_bf16_vs_fp32.<tap> = sum((bf16-fp32)^2)/sum(fp32^2) against io's "
                    "tap.<tap> (diffusers fp32 on io's unrounded inputs)"}
    for k in taps:
        meta["nmse_bf16_vs_fp32." + k] = "%.3e" % errs[k]
    tensors = {"input.hidden_states": inp["hidden_states"].float(),
               "input.timestep": io["input.timestep"],
               "input.encoder_hidden_states": inp["encoder_hidden_states"].float()}
    tensors.update({"tap." + k: v.float().contiguous() for k, v in taps.items()})
    save(tensors, os.path.join(case, "bf16.safetensors"), meta)
    print("dit/%s: bf16 vs fp32 (sdpa %s), f32 kept: %s" % (name, backend, ", ".join(keep)))
    for k, v in taps.items():
        print("  tap.%-14s %-18s nmse_bf16_vs_fp32 %.3e" % (k, list(v.shape), errs[k]))


def t5_case(data_dir, name, save):
    import transformers
    from safetensors.torch import load_file
    from transformers import UMT5EncoderModel
    import gen_golden
    case = os.path.join(data_dir, "t5", name)
    io = load_file(os.path.join(case, "io.safetensors"))
    ids = io["input.ids"].long()[None]
    mask = io["input.mask"].long()[None]
    tdir = os.path.join(case, "text_encoder")

    m32 = aligned(UMT5EncoderModel.from_pretrained(tdir, torch_dtype=torch.float32).eval())
    ref = gen_golden.t5_taps(m32, ids, mask)
    dio = max((ref[k] - io["tap." + k]).abs().max().item() for k in ref)
    assert dio < 1e-5, "%s: the fp32 reload differs from io's taps by %g" % (name, dio)

    model = aligned(UMT5EncoderModel.from_pretrained(tdir, torch_dtype=torch.bfloat16).eval())
    keep = kept_f32(model)
    taps = gen_golden.t5_taps(model, ids, mask)
    again = gen_golden.t5_taps(model, ids, mask)
    assert all(torch.equal(taps[k], again[k]) for k in taps), "%s: bf16 run not deterministic" % name
    for k, v in taps.items():
        assert v.dtype == torch.bfloat16 and v.shape == io["tap." + k].shape, (k, v.dtype, v.shape)
        assert torch.isfinite(v).all(), k
    errs = {k: nmse(v, io["tap." + k]) for k, v in taps.items()}
    cfg = model.config
    L = ids.shape[1]
    backend = sdpa_backend(torch.zeros(1, cfg.num_heads, L, cfg.d_kv, dtype=torch.bfloat16),
                           torch.zeros(1, cfg.num_heads, L, L, dtype=torch.bfloat16))
    meta = {"generator": "tests/golden/golden_bf16.py t5", "case": name,
            "torch": torch.__version__, "transformers": transformers.__version__,
            "class": "transformers.UMT5EncoderModel",
            "attn_implementation": str(model.config._attn_implementation),
            "load": "from_pretrained(text_encoder/, torch_dtype=torch.bfloat16), parameters "
                    "cloned (aligned) before the forward",
            "kept_f32": json.dumps(keep),
            "inputs": "input.ids / input.mask: io's (batch 1)",
            "taps": json.dumps(list(taps)),
            "tap_dtype": "float32 copies of the bf16 taps ([L, D])",
            "maxabs_fp32_reload_vs_io": "%.3e" % dio,
            "sdpa_backend": backend + " (with the additive bias+mask)",
            "nmse": "nmse_bf16_vs_fp32.<tap> = sum((bf16-fp32)^2)/sum(fp32^2) against io's "
                    "tap.<tap>"}
    for k in taps:
        meta["nmse_bf16_vs_fp32." + k] = "%.3e" % errs[k]
    tensors = {"input.ids": io["input.ids"], "input.mask": io["input.mask"]}
    tensors.update({"tap." + k: v.float().contiguous() for k, v in taps.items()})
    save(tensors, os.path.join(case, "bf16.safetensors"), meta)
    print("t5/%s: bf16 vs fp32 (attn %s, sdpa %s), f32 kept: %s" % (
        name, model.config._attn_implementation, backend, ", ".join(keep) or "nothing"))
    for k, v in taps.items():
        print("  tap.%-12s %-10s nmse_bf16_vs_fp32 %.3e" % (k, list(v.shape), errs[k]))


def quiet(fn):
    """One thread, deterministic algorithms and no progress bars (as gen_golden.py ran the fp32
    references), restored afterwards."""
    def run(*a):
        import diffusers
        import transformers
        threads = torch.get_num_threads()
        det = torch.are_deterministic_algorithms_enabled()
        verbosity = transformers.logging.get_verbosity()
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        diffusers.utils.logging.set_verbosity_error()
        diffusers.utils.logging.disable_progress_bar()
        try:
            return fn(*a)
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(det)
            transformers.logging.set_verbosity(verbosity)
    return run


@quiet
def generate_dit(data_dir, save):
    for name in DIT_NAMES:
        dit_case(data_dir, name, save)


@quiet
def generate_t5(data_dir, save):
    for name in T5_NAMES:
        t5_case(data_dir, name, save)


def generate(data_dir, save):
    generate_dit(data_dir, save)
    generate_t5(data_dir, save)


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    from gen_golden import DATA, save_file_sorted_meta
    argv = sys.argv[1:]
    what = argv.pop(0) if argv and argv[0] in ("dit", "t5", "all") else "all"
    if len(argv) > 1:
        sys.exit("usage: golden_bf16.py [dit|t5|all] [data_dir]")
    fn = {"dit": generate_dit, "t5": generate_t5, "all": generate}[what]
    fn(argv[0] if argv else DATA, save_file_sorted_meta)
