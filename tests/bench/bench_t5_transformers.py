#!/usr/bin/env python3
"""The transformers side of the UMT5 text-encoder CPU benchmark (tests/bench/bench_t5.sh).

    bench_t5_transformers.py make DIR [--layers N] [--vocab V] [--prompt P]
        writes DIR/text_encoder: a UMT5EncoderModel at the real Wan2.1 text_encoder width
        (d_model 4096, 64 heads x 64, d_ff 10240, gated GELU-tanh, 32 buckets / 128) with N
        layers (default 2) and random weights from a fixed seed, as config.json +
        model.safetensors under transformers' own key names: the layer matrices and norms in
        fp32, the token embedding shared.weight [V, 4096] in bf16 (V defaults to the real
        256,384 rows: 2.1 GB, the bulk of the file). Also DIR/io.safetensors with input.ids [512]
        (I32: P random ids below min(V, 256,000), then </s> = 1, then padding 0) and input.mask
        [512] (U8).
    bench_t5_transformers.py time DIR [--threads T] [--repeat K]
        loads DIR/text_encoder with UMT5EncoderModel.from_pretrained(torch_dtype=float32), times
        model(input_ids, attention_mask).last_hidden_state (torch.inference_mode, T threads),
        median of K after one warm-up, stores the output in DIR/io.safetensors as ref.output and
        prints the time, the load time and the process's peak RSS. Each run also records the
        share of the machine's CPU time other processes took during it (/proc/stat less this
        process's getrusage; like bench_t5.c) and the median of the "clean" runs (< 5 %).

Why the file is written here and not with save_pretrained: the embedding is stored in bf16 and
everything else in fp32 in one file, which is what the point of the full-size table needs (the
engine gathers the prompt's rows from the mapped file, so its RSS stays far below the table);
`time` checks that from_pretrained loads it with no missing or unexpected keys.

Test tooling only (needs torch + transformers + safetensors from PyPI); the engine never runs
Python.
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch
from safetensors.torch import load_file, save_file

# configs/umt5-xxl.json (the Wan2.1 text_encoder), num_layers and vocab_size from the command line
# (transformers 5 forces tie_word_embeddings to true for the T5 family; the encoder ignores it)
UMT5_XXL = dict(d_model=4096, d_kv=64, num_heads=64, d_ff=10240, feed_forward_proj="gated-gelu",
                dense_act_fn="gelu_new", is_gated_act=True, relative_attention_num_buckets=32,
                relative_attention_max_distance=128, layer_norm_epsilon=1e-6, pad_token_id=0,
                eos_token_id=1, decoder_start_token_id=0, tie_word_embeddings=False,
                scalable_attention=True, dropout_rate=0.1)
SEED = 4321
L_TEXT = 512  # WanPipeline's max_sequence_length
REAL_IDS = 256000  # ids below this are the sentencepiece vocabulary (the rest: extra ids, padding)
INIT = ("parameters in HF name order from torch.Generator().manual_seed(%d): matrices "
        "N(0,1)/sqrt(fan_in), RMS-norm weights 1+0.1*N(0,1), relative attention bias 0.5*N(0,1), "
        "embedding N(0,1) rounded to bf16" % SEED)
CLEAN_SHARE = 0.05  # a run is clean when other processes took < 5 % of the machine's CPU time


def cpu_mark():
    """(wall s, this process's CPU s, all CPUs' non-idle s incl. steal) for others_share."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    busy = -1.0
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return time.perf_counter(), ru.ru_utime + ru.ru_stime, busy


def others_share(a, b):
    """Share of the machine's CPU time between marks a and b spent outside this process (the
    same measure as bench_t5.c's: other processes take cores mid-run on a shared machine)."""
    if a[2] < 0 or b[2] < 0:
        return -1.0
    return max(0.0, ((b[2] - a[2]) - (b[1] - a[1])) / ((b[0] - a[0]) * os.cpu_count()))


def peak_rss_mb():
    """MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make(a):
    from transformers import UMT5Config, UMT5EncoderModel
    config = UMT5Config(vocab_size=a.vocab, num_layers=a.layers, num_decoder_layers=a.layers,
                        architectures=["UMT5EncoderModel"], **UMT5_XXL)
    with torch.device("meta"):  # names and shapes only: nothing allocated or initialised
        meta = UMT5EncoderModel(config)
    shapes = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    shapes.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight, not stored
    gen = torch.Generator().manual_seed(SEED)
    tensors = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if name == "shared.weight":  # in row blocks: the fp32 table alone would be 4.2 GB
            t = torch.empty(shape, dtype=torch.bfloat16)
            for r0 in range(0, shape[0], 16384):
                r1 = min(shape[0], r0 + 16384)
                t[r0:r1] = torch.randn((r1 - r0, shape[1]), generator=gen).to(torch.bfloat16)
        elif "relative_attention_bias" in name:
            t = 0.5 * torch.randn(shape, generator=gen)
        elif len(shape) == 1:
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) == 2:
            t = torch.randn(shape, generator=gen) / (shape[1] ** 0.5)
        else:
            raise ValueError("no init rule for %s %s" % (name, shape))
        tensors[name] = t.contiguous()
    tdir = os.path.join(a.dir, "text_encoder")
    os.makedirs(tdir, exist_ok=True)
    config.save_pretrained(tdir)
    save_file(tensors, os.path.join(tdir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(tdir, "README.bench"), "w") as f:
        f.write("random UMT5 encoder for tests/bench/bench_t5.sh: %s\n" % INIT)

    g = torch.Generator().manual_seed(SEED + 1)
    ids = torch.zeros(L_TEXT, dtype=torch.int32)
    ids[:a.prompt] = torch.randint(2, min(REAL_IDS, a.vocab), (a.prompt,), generator=g,
                                   dtype=torch.int32)
    ids[a.prompt] = 1  # </s>
    mask = torch.zeros(L_TEXT, dtype=torch.uint8)
    mask[:a.prompt + 1] = 1
    save_file({"input.ids": ids, "input.mask": mask}, os.path.join(a.dir, "io.safetensors"),
              metadata={"init": INIT})
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    print("made %s: %d layers, vocab %d (bf16), %d tensors, %.2f GB; prompt %d tokens + </s>, "
          "padded to %d" % (a.dir, a.layers, a.vocab, len(tensors), nbytes / 1e9, a.prompt,
                            L_TEXT))


def time_it(a):
    import transformers
    from transformers import UMT5EncoderModel
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    m, info = UMT5EncoderModel.from_pretrained(os.path.join(a.dir, "text_encoder"),
                                               torch_dtype=torch.float32, output_loading_info=True)
    m.eval()
    t_load = time.perf_counter() - t0
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                         "mismatched_keys")}
    if bad:
        sys.exit("bench_t5_transformers: %s/text_encoder does not load cleanly: %s" % (a.dir, bad))
    assert m.shared.weight.dtype == torch.float32
    assert m.encoder.embed_tokens.weight.data_ptr() == m.shared.weight.data_ptr()
    io_path = os.path.join(a.dir, "io.safetensors")
    io = {k: v.clone() for k, v in load_file(io_path).items()}  # no mapping left on the file
    ids = io["input.ids"].to(torch.int64)[None]
    mask = io["input.mask"].to(torch.int64)[None]
    times, others = [], []
    with torch.inference_mode():
        for r in range(a.repeat + 1):
            c0 = cpu_mark()
            out = m(input_ids=ids, attention_mask=mask).last_hidden_state
            c1 = cpu_mark()
            if r > 0:
                times.append(c1[0] - c0[0])
                others.append(others_share(c0, c1))
    med = statistics.median(times)
    clean = [t for t, o in zip(times, others) if o < CLEAN_SHARE]
    io["ref.output"] = out[0].contiguous()
    save_file(io, io_path)
    cfg = m.config
    print("transformers: %d layers, vocab %d, threads %d, attn %s, torch %s, transformers %s, "
          "load %.2f s" % (cfg.num_layers, cfg.vocab_size, a.threads, cfg._attn_implementation,
                           torch.__version__, transformers.__version__, t_load))
    print("transformers: runs (others' CPU share): %s" %
          " ".join("%.3f(%.0f%%)" % (t, 100 * o) for t, o in zip(times, others)))
    print("transformers: forward %.3f s (median of %d), peak RSS %.0f MiB" %
          (med, a.repeat, peak_rss_mb()))
    if clean:
        print("transformers: clean runs (others < %.0f %%): %d, median forward %.3f s" %
              (100 * CLEAN_SHARE, len(clean), statistics.median(clean)))
    else:
        print("transformers: no clean run (others >= %.0f %% in all)" % (100 * CLEAN_SHARE))
    print("RESULT forward_s=%.4f maxrss_mb=%.0f min_s=%.4f clean_s=%.4f nclean=%d" %
          (med, peak_rss_mb(), min(times), statistics.median(clean) if clean else -1, len(clean)))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("dir")
    mk.add_argument("--layers", type=int, default=2)
    mk.add_argument("--vocab", type=int, default=256384)
    mk.add_argument("--prompt", type=int, default=100, help="real tokens before </s>")
    mk.set_defaults(fn=make)
    tm = sub.add_parser("time")
    tm.add_argument("dir")
    tm.add_argument("--threads", type=int, default=os.cpu_count())
    tm.add_argument("--repeat", type=int, default=3)
    tm.set_defaults(fn=time_it)
    a = ap.parse_args()
    if a.cmd == "make" and not (0 < a.prompt < L_TEXT - 1 and a.vocab > 2):
        ap.error("need 0 < --prompt < %d and --vocab > 2" % (L_TEXT - 1))
    a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
