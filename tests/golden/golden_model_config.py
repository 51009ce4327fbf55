#!/usr/bin/env python3
"""Golden data for the model-directory mutation corpus (tests/test_model_config.c):
tests/data/bad_model/sched_variants.safetensors.

    python3 tests/golden/golden_model_config.py        # reads tests/data/bad_model/MUTATIONS.tsv

For the baseline case and every case of MUTATIONS.tsv that mutates the scheduler and is
expected to load (stage ok), the scheduler diffusers builds from that config (the class
model_index.json names, from_config of the mutated tests/data/wan-tiny/scheduler config), after
set_timesteps(N_STEPS) and set_begin_index(0):
  <case>.timesteps   scheduler.timesteps (UniPC int64, Euler float32)       [N]
  <case>.sigmas      scheduler.sigmas (float32)                             [N+1]
  <case>.x.K         x.0 a seeded random sample, x.K+1 = step(v.K, t_K, x.K).prev_sample
  <case>.v.K         the seeded random model output of step K (float32)    [1,16,1,2,3]
It shows what those settings do in diffusers: timestep_spacing and steps_offset nothing (flow
sigmas), solver_type "midpoint" what "bh2" does, solver_order 1 its first-order steps,
flow_shift / shift their schedule. It also measures why wanrun refuses solver_type "bh1"
(metadata bh1_last_step): with flow sigmas and final_sigmas_type "zero" diffusers' last step is
NaN everywhere (B(h) = h = -inf at sigma 0, times a zero predictor residual).
"""
import json
import os
import struct
import sys

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
N_STEPS = 7
SHAPE = (1, 16, 1, 2, 3)
SEED = 1414


def read_cases():
    cases, order = {}, []
    with open(os.path.join(DATA, "bad_model", "MUTATIONS.tsv")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            cid, file, field, value, stage, status, msg = line.rstrip("\n").split("\t")
            if cid not in cases:
                cases[cid] = dict(stage=stage, muts=[])
                order.append(cid)
            if file != "-":
                cases[cid]["muts"].append((file, field, value))
    return [(c, cases[c]) for c in order]


def mutated(rel, muts):
    with open(os.path.join(DATA, "wan-tiny", rel)) as f:
        cfg = json.load(f)
    for file, field, value in muts:
        if file != rel:
            continue
        if value == "<delete>":
            cfg.pop(field, None)
        else:
            cfg[field] = json.loads(value)
    return cfg


def main():
    import diffusers
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
    diffusers.utils.logging.set_verbosity_error()
    classes = {"UniPCMultistepScheduler": UniPCMultistepScheduler,
               "FlowMatchEulerDiscreteScheduler": FlowMatchEulerDiscreteScheduler}
    out, meta = {}, {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "generator": "tests/golden/golden_model_config.py", "steps": str(N_STEPS),
                     "seed": str(SEED), "shape": json.dumps(SHAPE)}
    names = []
    for cid, case in read_cases():
        touches = any(m[0] == "scheduler/scheduler_config.json" for m in case["muts"])
        if not (cid == "baseline" or (case["stage"] == "ok" and touches)):
            continue
        index = mutated("model_index.json", case["muts"])
        cfg = mutated("scheduler/scheduler_config.json", case["muts"])
        cls = classes[index["scheduler"][1]]
        assert cfg["_class_name"] == index["scheduler"][1], cid
        sch = cls.from_config(cfg)
        sch.set_timesteps(N_STEPS)
        sch.set_begin_index(0)
        out[cid + ".timesteps"] = sch.timesteps.clone()
        out[cid + ".sigmas"] = sch.sigmas.to(torch.float32).clone()
        gen = torch.Generator().manual_seed(SEED)
        x = torch.randn(SHAPE, generator=gen, dtype=torch.float32)
        out[cid + ".x.0"] = x
        for k, t in enumerate(sch.timesteps):
            v = torch.randn(SHAPE, generator=gen, dtype=torch.float32)
            out["%s.v.%d" % (cid, k)] = v
            x = sch.step(v, t, x, return_dict=False)[0]
            out["%s.x.%d" % (cid, k + 1)] = x
        meta["config." + cid] = json.dumps(cfg, sort_keys=True)
        names.append(cid)
        print("%-24s %s timesteps %s" % (cid, cls.__name__, sch.timesteps.tolist()))
    meta["cases"] = json.dumps(names)
    # solver_type bh1 (refused by wanrun): the same run, its last sample
    cfg = mutated("scheduler/scheduler_config.json",
                  [("scheduler/scheduler_config.json", "solver_type", '"bh1"')])
    sch = UniPCMultistepScheduler.from_config(cfg)
    sch.set_timesteps(N_STEPS)
    sch.set_begin_index(0)
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(SHAPE, generator=gen, dtype=torch.float32)
    for t in sch.timesteps:
        v = torch.randn(SHAPE, generator=gen, dtype=torch.float32)
        before = x
        x = sch.step(v, t, x, return_dict=False)[0]
    nan = int(x.isnan().sum())
    assert nan == x.numel() and not before.isnan().any(), nan
    meta["bh1_last_step"] = "%d of %d values NaN (the step before: none)" % (nan, x.numel())
    print("solver_type bh1: last step %s" % meta["bh1_last_step"])
    path = os.path.join(DATA, "bad_model", "sched_variants.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, path, metadata=meta)
    # safetensors writes __metadata__ in hash order; sort it so the bytes are reproducible
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        hdr["__metadata__"] = dict(sorted(hdr["__metadata__"].items()))
        new = json.dumps(hdr, separators=(",", ":"), ensure_ascii=False).encode()
        assert len(new) <= n
        f.seek(8)
        f.write(new.ljust(n, b" "))
    print("wrote %s (%d cases)" % (path, len(names)))


if __name__ == "__main__":
    sys.exit(main())
