#!/usr/bin/env python3
"""Peer measurement for issue #2: safetensors.torch.load_file on the same checkpoint.

    bench_st_python.py PATH [--cold] [--repeat K] [--backend mmap|pread|both]

PATH is a directory (holding one *.safetensors or a *.safetensors.index.json), an index, or one
.safetensors file — the same inputs bench_load takes. One repeat, the timed region, is:

    for every shard: d = safetensors.torch.load_file(shard, backend=B); tensors.update(d)
    then one byte of every 4 KiB page of every tensor is read (a strided uint8 sum),

With the default backend ("mmap"), load_file returns tensors backed by a private file mapping:
the call itself only parses the header and maps the file, and the bytes arrive on first touch.
The page-touch pass is therefore part of the timed region: it is what makes every byte resident
in this process's memory, the state bench_load's arena reaches. With backend="pread"
(safetensors >= 0.8) load_file copies every tensor into owned memory; the touch pass then costs
next to nothing. Both are reported; load_file's own time and the touch time are printed
separately.

--cold evicts the shards from the page cache before each repeat (drop_caches, else
posix_fadvise DONTNEED), like bench_load --cold. Without --cold the cache is prepared as for
every hot measurement of bench_load.sh: evict, then `cat` the shards once (the folio sizes the
first reader leaves in the page cache change the cost of mapping it by up to ~10x, see
bench_load.c), then one untimed load_file repeat. The dictionaries of the previous repeat are
freed before the next.

Prints a summary and one line per backend:
    RESULT tool=python backend=B cold=0|1 bytes=N best_s=.. median_s=.. best_gbs=.. median_gbs=..
GB/s are 1e9 tensor bytes per second.
"""
import argparse
import gc
import glob
import inspect
import json
import os
import statistics
import subprocess
import sys
import time

import safetensors
import torch
from safetensors.torch import load_file


def shard_paths(path):
    if os.path.isdir(path):
        idx = glob.glob(os.path.join(path, "*.safetensors.index.json"))
        if idx:
            path = idx[0]
        else:
            files = sorted(glob.glob(os.path.join(path, "*.safetensors")))
            if len(files) != 1:
                sys.exit(f"{path}: expected one *.safetensors or an index, found {files}")
            return files
    if path.endswith(".json"):
        with open(path) as f:
            wm = json.load(f)["weight_map"]
        d = os.path.dirname(path)
        return [os.path.join(d, s) for s in sorted(set(wm.values()))]
    return [path]


def resident(paths):
    """Percent of the shards' bytes in the page cache, from util-linux fincore; None without it."""
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", *paths],
                             capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    return 100.0 * sum(int(x) for x in out) / sum(os.path.getsize(p) for p in paths)


def evict(paths):
    """As bench_load --evict auto: fadvise(DONTNEED) on the shards, else drop_caches."""
    try:
        for p in paths:
            fd = os.open(p, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
        return "fadvise(DONTNEED)"
    except OSError:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
        return "drop_caches"


def touch_all(tensors):
    """Reads one byte of every 4 KiB page of every tensor; returns a checksum."""
    s = 0
    for t in tensors.values():
        u8 = t.reshape(-1).view(torch.uint8)
        s += int(u8[::4096].sum()) + int(u8[-1])
    return s


def one_repeat(paths, backend):
    kw = {} if backend == "default" else {"backend": backend}
    t0 = time.perf_counter()
    tensors = {}
    for p in paths:
        tensors.update(load_file(p, **kw))
    t1 = time.perf_counter()
    check = touch_all(tensors)
    t2 = time.perf_counter()
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    n = len(tensors)
    del tensors
    gc.collect()
    return t2 - t0, t1 - t0, t2 - t1, nbytes, n, check


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backend", default="both", choices=["mmap", "pread", "both"])
    a = ap.parse_args()

    has_backend = "backend" in inspect.signature(load_file).parameters
    backends = ["mmap", "pread"] if a.backend == "both" else [a.backend]
    if not has_backend:  # older safetensors: one (mmap) path only
        backends = ["default"]
    paths = shard_paths(a.path)
    print(f"safetensors {safetensors.__version__}, torch {torch.__version__}, "
          f"{len(paths)} file(s), {'cold' if a.cold else 'hot'}")
    for backend in backends:
        if not a.cold:
            how = evict(paths)
            subprocess.run(["cat", *paths], stdout=subprocess.DEVNULL, check=True)
            w = one_repeat(paths, backend)
            print(f"[{backend}] evicted with {how}, read once with cat, warm-up: {w[0]:.3f} s")
        times = []
        for r in range(a.repeat):
            if a.cold:
                how = evict(paths)
                frac = resident(paths)
                res = "residency unknown" if frac is None else f"{frac:.1f} % still resident"
            total, load, touch, nbytes, n, check = one_repeat(paths, backend)
            times.append(total)
            print(f"[{backend}] repeat {r + 1}: {total:.3f} s (load_file {load:.3f} s + touch "
                  f"{touch:.3f} s), {nbytes / total / 1e9:.2f} GB/s, {n} tensors, "
                  f"checksum {check}" + (f", evicted with {how} ({res})" if a.cold else ""))
        best, med = min(times), statistics.median(times)
        print(f"RESULT tool=python backend={backend} cold={int(a.cold)} bytes={nbytes} "
              f"best_s={best:.4f} median_s={med:.4f} best_gbs={nbytes / best / 1e9:.3f} "
              f"median_gbs={nbytes / med / 1e9:.3f}")


if __name__ == "__main__":
    main()
