#!/usr/bin/env python3
"""Golden data for the C schedulers (issue #6): tests/data/sched/.

Called by gen_golden.py as golden_sched.generate(data_dir, save_file_sorted_meta), or standalone:

    python3 tests/golden/golden_sched.py OUT_DATA_DIR     # writes OUT_DATA_DIR/sched/

Writes
  sched/scheduler_config.json  the Wan2.1 Diffusers scheduler/scheduler_config.json, verbatim
                               (751 bytes, flow_shift 3.0): what UniPC is built from (with
                               flow_shift replaced per case)
  sched/unipc.safetensors      diffusers UniPCMultistepScheduler.from_config(that file)
  sched/euler.safetensors      diffusers FlowMatchEulerDiscreteScheduler(shift=s)
  sched/README

Per scheduler, for every (N, s) of TABLE_CASES, after set_timesteps(N):
  table.<case>.timesteps    scheduler.timesteps (UniPC int64, Euler float32), [N]
  table.<case>.sigmas       scheduler.sigmas (float32 for both), [N+1]
  table.<case>.sigmas_f64   the float64 values diffusers computes (numpy) before its float32 cast,
                            recomputed here and asserted to give .sigmas after the cast, [N+1]
  table.<case>.t_f64        (UniPC) sigmas_f64*1000 before the int64 truncation, [N]
and for every run of RUN_CASES, the pipeline's loop (set_timesteps(N), set_begin_index(0), then
x = scheduler.step(v_k, t_k, x).prev_sample for k = 0..N-1) on a seeded random x.0 and seeded
random model outputs v.k:
  run.<case>.x.K            x.0 the initial sample, x.K+1 = step K's prev_sample, [1,16,1,2,3]
  run.<case>.v.K            model output fed to step K (float32; bfloat16 in the *_bf16 runs)
  run.<case>.timesteps, run.<case>.sigmas   the schedule of the run
  run.<case>.scalars        [N, C] float32 per-step scalars (columns in metadata scalar_columns)
  (UniPC) run.<case>.m.K    step K's converted model output (x0 prediction) x.K - sigma_K*v.K
  (UniPC) run.<case>.xc.K   step K's corrected sample (UniC output, K >= 1), the predictor's input

Case names: N<steps>_s<shift> with the shift's '.' written 'p' (s2p7 = 2.7).
"""
import ctypes
import json
import math
import os
import shutil
import sys

import numpy as np
import torch

# The Wan2.1 Diffusers scheduler/scheduler_config.json: json.dumps(this, indent=2, sort_keys=True)
# + "\n" is 751 bytes, the size spec 1.6 gives for the Hub file (diffusers' own to_json_string
# format); field values as in verbatim copies of the file (e.g. ostris/ai-toolkit
# extensions_built_in/diffusion_models/wan21/wan21.py, scheduler_configUniPC).
WAN21_UNIPC_CONFIG = {
    "_class_name": "UniPCMultistepScheduler",
    "_diffusers_version": "0.33.0.dev0",
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "disable_corrector": [],
    "dynamic_thresholding_ratio": 0.995,
    "final_sigmas_type": "zero",
    "flow_shift": 3.0,
    "lower_order_final": True,
    "num_train_timesteps": 1000,
    "predict_x0": True,
    "prediction_type": "flow_prediction",
    "rescale_betas_zero_snr": False,
    "sample_max_value": 1.0,
    "solver_order": 2,
    "solver_p": None,
    "solver_type": "bh2",
    "steps_offset": 0,
    "thresholding": False,
    "timestep_spacing": "linspace",
    "trained_betas": None,
    "use_beta_sigmas": False,
    "use_exponential_sigmas": False,
    "use_flow_sigmas": True,
    "use_karras_sigmas": False,
}
# FlowMatchEulerDiscreteScheduler: everything else at its diffusers default
EULER_CONFIG = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000,
                "shift": 3.0, "use_dynamic_shifting": False}

# (steps, shift). (3, 1.0): t_f64[2] = 333.99999999999994 -> timestep 333, not 334; (37, 1.0):
# every t_f64[k>0] is nominally an integer (999 = 27*37); (20, 2.7): a shift that float32 does not
# hold; (16, 2.002) and (16, 2.011): Euler's float32 init gives sigma_max = 1.0000001192092896 and
# 0.9999998807907104 (fl32(s) / fl32(1 + fl32(s - 1)) != 1), so its first sigma is not 1.
TABLE_CASES = [(50, 3.0), (50, 5.0), (30, 8.0), (4, 3.0), (2, 1.0), (1, 3.0), (7, 12.0),
               (3, 1.0), (37, 1.0), (20, 2.7), (40, 7.3), (16, 2.002), (16, 2.011)]
# name: (steps, shift, seed, model-output dtype)
RUN_CASES = {
    "unipc": [(1, 3.0, 6101, torch.float32), (2, 1.0, 6102, torch.float32),
              (3, 8.0, 6103, torch.float32), (4, 3.0, 6104, torch.float32),
              (10, 5.0, 6105, torch.float32), (4, 5.0, 6106, torch.bfloat16)],
    "euler": [(1, 3.0, 6201, torch.float32), (2, 1.0, 6202, torch.float32),
              (4, 3.0, 6204, torch.float32), (10, 5.0, 6205, torch.float32),
              (4, 5.0, 6206, torch.bfloat16)],
}
SHAPE = (1, 16, 1, 2, 3)  # [B, C, T, H, W] as WanPipeline's latents

UNIPC_COLUMNS = [
    "sigma_k", "sigma_next", "alpha_k", "alpha_next", "lambda_k", "lambda_next",
    # predictor (UniP) from sigma_k to sigma_next
    "p_order", "p_h", "p_phi1", "p_rk", "p_ratio", "p_coef_m0", "p_coef_res",
    # corrector (UniC) of x.k, from sigma_{k-1} to sigma_k (NaN at k = 0: no corrector)
    "c_order", "c_h", "c_phi1", "c_rk", "c_b1", "c_b2", "c_rho0", "c_rho_last", "c_ratio",
    "c_coef_m0", "c_coef_res",
]
EULER_COLUMNS = ["sigma_k", "sigma_next", "dt"]

SCALAR_DOC = {
    "unipc": ("float32, NaN where not used. alpha = 1 - sigma, lambda = log(alpha) - log(sigma) "
              "(lambda_next = +inf at the last step). p_*: predictor of step k (sigma_t = "
              "sigma_next, sigma_s0 = sigma_k): p_h = lambda_next - lambda_k, p_phi1 = "
              "expm1(-p_h) (= B_h for bh2), p_rk = (lambda_{k-1} - lambda_k)/p_h (order 2 only), "
              "p_ratio = sigma_next/sigma_k, p_coef_m0 = alpha_next*p_phi1, p_coef_res = "
              "alpha_next*B_h. c_*: corrector of step k (sigma_t = sigma_k, sigma_s0 = "
              "sigma_{k-1}, order = the predictor order of step k-1): c_h = lambda_k - "
              "lambda_{k-1}, c_phi1 = expm1(-c_h), c_rk = (lambda_{k-2} - lambda_{k-1})/c_h "
              "(order 2), c_b1 = (c_phi1/(-c_h) - 1)/B_h, c_b2 = 2*((c_phi1/(-c_h) - 1)/(-c_h) "
              "- 0.5)/B_h, [c_rho0, c_rho_last] = torch.linalg.solve([[1,1],[c_rk,1]], "
              "[c_b1,c_b2]) for order 2 (c_rho0 NaN and c_rho_last = 0.5 for order 1), "
              "c_ratio = sigma_k/sigma_{k-1}, c_coef_m0 = alpha_k*c_phi1, c_coef_res = "
              "alpha_k*B_h. Values are what diffusers' float32 tensor code computes"),
    "euler": "float32: sigma_k = sigmas[k], sigma_next = sigmas[k+1], dt = sigma_next - sigma_k",
}

# ---------------------------------------------------------------------------------------------
# How the C side reproduces the numbers (stored in metadata and in the README)

RECIPE_UNIPC_TABLE = (
    "float64 (numpy) until the casts. delta = 0.001 - 1.0 (0.001 = 1/num_train_timesteps as a "
    "double); step = delta / N; for k = 0..N-1: r = (double)k*step + 1.0 (np.linspace(1, 1/1000, "
    "N+1)[:-1]: fl(fl(k*step) + start); the endpoint is dropped); sigma = (s*r) / (1.0 + "
    "(s - 1.0)*r) (s = flow_shift as a double, s - 1.0 in double; each op rounded to double, no "
    "FMA). Then if fabs(sigma[0] - 1.0) < 1e-6: sigma[0] -= 1e-6 (always taken: sigma[0] is "
    "exactly 1.0 before it, so sigma[0] = 1.0 - 1e-6 in double). t_f64[k] = sigma[k]*1000.0 "
    "(double); timesteps[k] = (int64)t_f64[k] (C cast: truncation toward zero; e.g. N=3, s=1: "
    "t_f64[2] = 333.99999999999994 -> 333). sigmas (float32) = (float)sigma[k] (round to "
    "nearest), then sigmas[N] = 0.0f (final_sigmas_type 'zero'). Nothing else is float32")
RECIPE_UNIPC_STEP = (
    "All float32 (0-dim float32 torch tensors on CPU; each op rounded to float32, no FMA "
    "contraction). Let S = sigmas (the float32 table), a(i) = 1.0f - S[i], lam(i) = logf(a(i)) - "
    "logf(S[i]) (lam(N) = +inf: logf(0) = -inf). State: M = [m_prev2, m_prev1] (f32 tensors), "
    "last (f32 tensor), this_order, lower_order_nums = 0. step k (k = 0..N-1) with model output "
    "v (f32) and sample x (f32): "
    "(1) m = x - S[k]*v (product rounded, then the difference) [bf16 v: the product is "
    "computed in bfloat16: bf16(bf16(S[k])*v), then x - (float)that in f32]. "
    "(2) corrector, only if k > 0, with p = this_order (of step k-1), m0 = M[1], xl = last: "
    "h = lam(k) - lam(k-1); hh = -h; phi1 = expm1f(hh); B = expm1f(hh) (bh2); g1 = phi1/hh - "
    "1.0f; b1 = (g1*1)/B; if p == 2: rk = (lam(k-2) - lam(k-1))/h; D1 = (M[0] - m0)/rk "
    "(elementwise, a true division by rk); g2 = g1/hh - 0.5f; b2 = (g2*2)/B; [rho0, rho1] = "
    "solve([[1,1],[rk,1]], [b1,b2]) (diffusers: torch.linalg.solve = MKL sgesv, LU with "
    "partial pivoting, float32; bit for bit: if fabsf(rk) <= 1 {u11 = 1, y1 = b1, l = rk, "
    "o = b2} else {u11 = rk, y1 = b2, l = 1*(1/rk), o = b1}; u22 = 1 - l; y2 = o - l*y1; rho1 "
    "= y2*(1/u22); rho0 = (y1 - rho1)*(1/u11), reciprocals first, then products, no FMA; the "
    "closed form rho0 = (b1-b2)/(1-rk), rho1 = b1-rho0 is within a few ulp); else rho1 = "
    "0.5f. base = (S[k]/S[k-1])*xl - (a(k)*phi1)*m0 "
    "(scalar products first: ratio = S[k]/S[k-1], c = a(k)*phi1, then ratio*xl, c*m0, "
    "subtract); inner = (p == 2 ? rho0*D1 : 0) + rho1*(m - m0); x = base - (a(k)*B)*inner. "
    "(3) M = [M[1], m]. (4) this_order = min(min(2, N - k), lower_order_nums + 1). (5) last = x "
    "(the corrected sample). (6) predictor from S[k] to S[k+1] with q = this_order, m0 = m: h = "
    "lam(k+1) - lam(k); hh = -h; phi1 = B = expm1f(hh); base = (S[k+1]/S[k])*x - "
    "(a(k+1)*phi1)*m; q == 1: x_next = base; q == 2: rk = (lam(k-1) - lam(k))/h; D1 = (M[0] - "
    "m)/rk; x_next = base - (a(k+1)*B)*(0.5f*D1). (7) lower_order_nums = min(lower_order_nums "
    "+ 1, 2). Last step (k = N-1): q = 1 and S[N] = 0 give h = +inf, phi1 = B = -1, ratio = 0, "
    "a = 1, so x_next = 0*x + m = m bit for bit (asserted): return m (the corrector of the last "
    "step only changes 'last'; it does not reach the output). m uses the sample *before* the "
    "corrector. N = 1: one step, order 1, no corrector: x.1 = x.0 - S[0]*v.0")
RECIPE_EULER_TABLE = (
    "Two stages. __init__ (float32 torch): u = (float)1 / 1000.0f for the last training "
    "timestep (t = 1..1000 as float32, divided in float32: true division), sf = (float)s, s1f = "
    "(float)(s - 1.0) (s - 1 in double, then cast); sig(u) = (sf*u) / (1.0f + s1f*u) in float32 "
    "(each op rounded). sigma_max = sig(1.0f) (1.0 for integer and "
    "one-decimal shifts, not always: s = 2.002 gives 1.0000001192092896), sigma_min = "
    "sig(0.001f). set_timesteps(N) (float64 numpy): start = "
    "(double)sigma_max*1000.0, stop = (double)sigma_min*1000.0; N == 1: tau = [start]; else "
    "step = (stop - start)/(N - 1), tau[i] = (double)i*step + start for i < N-1, tau[N-1] = stop "
    "(np.linspace); sigma = tau/1000.0; sigma = (s*sigma) / (1.0 + (s - 1.0)*sigma) (the shift "
    "is applied a second time, in double); sigmas[i] = (float)sigma[i], sigmas[N] = 0.0f; "
    "timesteps[i] = sigmas[i]*1000.0f in float32 (from the float32 sigma, not from the double)")
RECIPE_EULER_STEP = (
    "dt = S[k+1] - S[k] (float32); x_next = x + dt*v (float32, product rounded then the sum; "
    "no FMA). [bf16 v: dt*v is computed in bfloat16 = bf16(bf16(dt)*v); x (float32) + that "
    "in float32; then prev_sample.to(model_output.dtype) rounds x_next to bfloat16 (the loop "
    "then carries bf16 samples; step() does sample.to(float32) first)]")

SPEC_DISCREPANCIES = [
    # (spec section, spec text, installed diffusers code, comment)
    ("5.1 Dtypes", "model output may be bf16 (promoted)",
     "scheduling_unipc_multistep.py convert_model_output: `x0_pred = sample - sigma_t * "
     "model_output`",
     "sigma_t is a 0-dim float32 tensor, so sigma_t * model_output is a bfloat16 tensor: "
     "bf16(bf16(sigma)*v) (sigma rounded to bf16 first, asserted); only the subtraction from "
     "the float32 sample is float32. Not a promotion of v to float32. See run N4_s5_bf16"),
    ("5.3 step", "step: x_{k+1} = x_k + (σ_{k+1} − σ_k)·v_k       (computed in fp32)",
     "scheduling_flow_match_euler_discrete.py step: `prev_sample = sample + dt * model_output` "
     "... `prev_sample = prev_sample.to(model_output.dtype)`",
     "fp32 only for an fp32 model output. With a bf16 one, dt*v is computed in bfloat16 and the "
     "returned sample is rounded to bfloat16 (the pipeline's latents become bf16). See run "
     "N4_s5_bf16"),
    ("5.3 init / set_timesteps",
     "init:  σ_train = s·u/(1+(s−1)·u), u = linspace(1, 1000, 1000)[::-1]/1000  → σ_max = 1.0, "
     "σ_min = s·0.001/(1+(s−1)·0.001)",
     "__init__: `timesteps = np.linspace(1, num_train_timesteps, num_train_timesteps, "
     "dtype=np.float32)[::-1].copy()` ... `sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)` "
     "(float32 torch); set_timesteps: `timesteps = np.linspace(self._sigma_to_t(self.sigma_max), "
     "self._sigma_to_t(self.sigma_min), num_inference_steps)` (float64 numpy)",
     "the spec gives no precisions: the init shift is float32 (s and s-1 cast to float32) and "
     "sigma_max/sigma_min are those float32 values; sigma_max is 1.0 only when fl32(s) / "
     "fl32(1 + fl32(s-1)) == 1, true for integer and one-decimal shifts but not e.g. for s = "
     "2.002 (1.0000001192092896) or 2.011 (0.9999998807907104): tables N16_s2p002, "
     "N16_s2p011, euler_init_sigma_max_min; the second shift is float64, then the cast"),
    ("5.3 set_timesteps", "t = σ·1000 (float, NOT truncated)",
     "set_timesteps: `sigmas = torch.from_numpy(sigmas).to(dtype=torch.float32, device=device)` "
     "... `timesteps = sigmas * self.config.num_train_timesteps`",
     "t is float32(sigma_f32 * 1000) computed in float32 after the cast, not sigma_f64*1000"),
    ("5.1 corrector", "solve [[1,1],[r,1]]·[ρ0,ρ1]ᵀ = [b1,b2]ᵀ  →  ρ0 = (b1 − b2)/(1 − r),  ρ1 = "
     "b1 − ρ0",
     "multistep_uni_c_bh_update: `rhos_c = torch.linalg.solve(R, b).to(device).to(x.dtype)`",
     "algebraically the same; diffusers solves in float32 with LAPACK (LU, partial pivoting: "
     "rows swapped when |r| > 1), so the closed form can differ from it by a few float32 ulps "
     "(see recipe_check)"),
    ("5.1 schedule", "t[k]     = int64( σ[k] · 1000 )                    (truncation toward "
     "zero; these ints are what the DiT receives)",
     "set_timesteps: `timesteps = (sigmas * self.config.num_train_timesteps).copy()` ... "
     "`self.timesteps = torch.from_numpy(timesteps).to(device=device, dtype=torch.int64)`",
     "agrees; but note the product is float64 and can land just below an integer: N=3, s=1 "
     "gives 333.99999999999994 -> 333 (table N3_s1); the C code must form sigma and the "
     "product in double exactly as numpy does (no FMA, no long double)"),
    ("5.1 last step", "Implement by special-casing σ_{next}=0 ⇒ return m_k.",
     "multistep_uni_p_bh_update: `x_t_ = sigma_t / sigma_s0 * x - alpha_t * h_phi_1 * m0`",
     "agrees (0*x - (1*(-1))*m0 == m0 bit for bit, asserted); the spec does not say that m_k "
     "is formed from the sample before the corrector, so the last corrector never reaches the "
     "output"),
]


def case_name(n, s, suffix=""):
    return "N%d_s%s%s" % (n, ("%g" % s).replace(".", "p"), suffix)


def nmse(a, ref):
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(((a - ref) ** 2).sum() / (ref ** 2).sum())


def maxabs(a, ref):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(ref, np.float64)).max())


# ---- schedulers ------------------------------------------------------------------------------

def unipc(shift):
    from diffusers import UniPCMultistepScheduler
    return UniPCMultistepScheduler.from_config(dict(WAN21_UNIPC_CONFIG, flow_shift=shift))


def euler(shift):
    from diffusers import FlowMatchEulerDiscreteScheduler
    return FlowMatchEulerDiscreteScheduler.from_config(dict(EULER_CONFIG, shift=shift))


def np_linspace(start, stop, num):
    """np.linspace(start, stop, num) (endpoint=True, float64) written out as C would do it."""
    if num == 1:
        return np.array([start * 0.0 + start])
    step = (stop - start) / (num - 1)
    y = np.array([float(i) * step + start for i in range(num)])
    y[-1] = stop
    return y


def unipc_table_f64(n, s):
    """RECIPE_UNIPC_TABLE, scalar by scalar in float64. Returns (sigmas_f64 [n+1], t_f64 [n])."""
    delta = 1.0 / 1000 - 1.0
    step = delta / n
    sig = []
    for k in range(n + 1 - 1):  # n+1 linspace points, the last one dropped
        r = float(k) * step + 1.0
        sig.append((s * r) / (1.0 + (s - 1.0) * r))
    if math.fabs(sig[0] - 1.0) < 1e-6:
        sig[0] -= 1e-6
    t = [x * 1000.0 for x in sig]
    return np.array(sig + [0.0]), np.array(t)


def f32(x):
    return np.float32(x)


def euler_init_f32(s):
    """RECIPE_EULER_TABLE's float32 init: (sigma_max, sigma_min) as float32."""
    sf, s1f = f32(s), f32(s - 1.0)

    def sig(u):
        return (sf * u) / (f32(1.0) + s1f * u)
    return sig(f32(1000.0) / f32(1000.0)), sig(f32(1.0) / f32(1000.0))


def euler_table_f64(n, s):
    smax, smin = euler_init_f32(s)
    tau = np_linspace(float(smax) * 1000.0, float(smin) * 1000.0, n)
    sig = [(s * (x / 1000.0)) / (1.0 + (s - 1.0) * (x / 1000.0)) for x in tau]
    return np.array(sig + [0.0]), tau


def table_case(kind, n, s):
    sch = unipc(s) if kind == "unipc" else euler(s)
    sch.set_timesteps(n)
    ts, sg = sch.timesteps.clone(), sch.sigmas.clone()
    assert sg.dtype == torch.float32 and sg.shape == (n + 1,) and sg[-1].item() == 0.0
    out = {"timesteps": ts, "sigmas": sg}
    if kind == "unipc":
        assert ts.dtype == torch.int64 and ts.shape == (n,)
        sig64, t64 = unipc_table_f64(n, s)
        # the recomputation must also agree with numpy doing it the way diffusers does
        ref = np.linspace(1, 1 / 1000, n + 1)[:-1]
        ref = s * ref / (1 + (s - 1) * ref)
        ref[0] -= 1e-6
        assert np.array_equal(ref, sig64[:-1]), (kind, n, s)
        assert np.array_equal(t64.astype(np.int64), ts.numpy()), (kind, n, s)
        out["t_f64"] = torch.from_numpy(t64)
        extra = {}
    else:
        assert ts.dtype == torch.float32 and ts.shape == (n,)
        smax, smin = euler_init_f32(s)
        assert float(smax) == sch.sigma_max and float(smin) == sch.sigma_min, (s, smax, smin)
        sig64, tau = euler_table_f64(n, s)
        ref = np.linspace(sch.sigma_max * 1000, sch.sigma_min * 1000, n) / 1000
        ref = s * ref / (1 + (s - 1) * ref)
        assert np.array_equal(ref, sig64[:-1]), (kind, n, s)
        assert np.array_equal((sig64.astype(np.float32)[:-1] * np.float32(1000.0)),
                              ts.numpy()), (kind, n, s)
        extra = {"init_sigma_max_f32": repr(float(smax)), "init_sigma_min_f32": repr(float(smin))}
    assert np.array_equal(sig64.astype(np.float32), sg.numpy()), (kind, n, s)
    out["sigmas_f64"] = torch.from_numpy(sig64)
    return out, extra


# ---- runs ------------------------------------------------------------------------------------

def run_inputs(n, seed, vdt):
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(SHAPE, generator=gen, dtype=torch.float32)
    vs = [torch.randn(SHAPE, generator=gen, dtype=torch.float32).to(vdt) for _ in range(n)]
    return x0, vs


def run_diffusers(kind, n, s, x0, vs):
    """WanPipeline's loop: set_timesteps, set_begin_index(0), step(v, t, x) per timestep."""
    sch = unipc(s) if kind == "unipc" else euler(s)
    sch.set_timesteps(n)
    sch.set_begin_index(0)
    xs = [x0]
    for k, t in enumerate(sch.timesteps):
        xs.append(sch.step(vs[k], t, xs[-1], return_dict=False)[0])
    return sch, xs


def unipc_replica(sig, x0, vs):
    """The diffusers UniPC code path for this config, op for op with the same torch calls, plus
    every intermediate. Returns (xs, ms, xcs, scalars[N, C])."""
    n = len(vs)
    nan = float("nan")

    def lam(i):
        a = 1 - sig[i]
        return a, torch.log(a) - torch.log(sig[i])

    def coeffs(t, s0, order, si):
        """The shared head of multistep_uni_{p,c}_bh_update: t, s0, si sigma indices."""
        a_t, l_t = lam(t)
        _, l_s0 = lam(s0)
        h = l_t - l_s0
        rk = (lam(si)[1] - l_s0) / h if order == 2 else None
        rks = torch.stack(([rk] if order == 2 else []) + [torch.ones(())])
        hh = -h
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        fac = 1
        b_h = torch.expm1(hh)
        r_rows, b = [], []
        for i in range(1, order + 1):
            r_rows.append(torch.pow(rks, i - 1))
            b.append(h_phi_k * fac / b_h)
            fac *= i + 1
            h_phi_k = h_phi_k / hh - 1 / fac
        return dict(a_t=a_t, h=h, rk=rk, hh=hh, phi1=h_phi_1, B=b_h, R=torch.stack(r_rows),
                    b=torch.stack(b), ratio=sig[t] / sig[s0])

    xs, ms, xcs, rows = [x0], [], [None], []
    this_order, lon, last = None, 0, None
    for k in range(n):
        x, v = xs[-1], vs[k]
        row = dict.fromkeys(UNIPC_COLUMNS, nan)
        m = x - sig[k] * v
        if k > 0:
            p = this_order
            c = coeffs(k, k - 1, p, k - 2)
            m0 = ms[-1]
            if p == 2:
                d1 = (ms[-2] - m0) / c["rk"]
                rhos = torch.linalg.solve(c["R"], c["b"])
                corr = torch.einsum("k,bkc...->bc...", rhos[:-1], torch.stack([d1], dim=1))
            else:
                rhos = torch.ones(1) * 0.5
                corr = 0
            base = c["ratio"] * last - c["a_t"] * c["phi1"] * m0
            x = base - c["a_t"] * c["B"] * (corr + rhos[-1] * (m - m0))
            row.update(c_order=p, c_h=c["h"], c_phi1=c["phi1"], c_ratio=c["ratio"],
                       c_coef_m0=c["a_t"] * c["phi1"], c_coef_res=c["a_t"] * c["B"],
                       c_b1=c["b"][0], c_rho_last=rhos[-1])
            if p == 2:
                row.update(c_rk=c["rk"], c_b2=c["b"][1], c_rho0=rhos[0])
            xcs.append(x)
        ms.append(m)
        this_order = min(min(2, n - k), lon + 1)
        last = x
        c = coeffs(k + 1, k, this_order, k - 1)
        base = c["ratio"] * x - c["a_t"] * c["phi1"] * m
        if this_order == 2:
            d1 = (ms[-2] - m) / c["rk"]
            res = torch.einsum("k,bkc...->bc...", torch.ones(1) * 0.5, torch.stack([d1], dim=1))
            xn = base - c["a_t"] * c["B"] * res
            row.update(p_rk=c["rk"])
        else:
            xn = base - c["a_t"] * c["B"] * 0
        xs.append(xn.to(x.dtype))
        lon = min(lon + 1, 2)
        row.update(sigma_k=sig[k], sigma_next=sig[k + 1], alpha_k=lam(k)[0],
                   alpha_next=lam(k + 1)[0], lambda_k=lam(k)[1], lambda_next=lam(k + 1)[1],
                   p_order=this_order, p_h=c["h"], p_phi1=c["phi1"], p_ratio=c["ratio"],
                   p_coef_m0=c["a_t"] * c["phi1"], p_coef_res=c["a_t"] * c["B"])
        rows.append([float(row[c_]) for c_ in UNIPC_COLUMNS])
    return xs, ms, xcs, torch.tensor(rows, dtype=torch.float32)


_LIBM = None


def libm():
    global _LIBM
    if _LIBM is None:
        _LIBM = ctypes.CDLL("libm.so.6")
        for fn in ("logf", "expm1f"):
            getattr(_LIBM, fn).restype = ctypes.c_float
            getattr(_LIBM, fn).argtypes = [ctypes.c_float]
    return _LIBM


def solve2_lapack(rk, b1, b2):
    """torch.linalg.solve([[1, 1], [rk, 1]], [b1, b2]) in float32 as MKL's sgesv does it (LU with
    partial pivoting; reciprocal-then-multiply for the pivot divisions; no FMA). Bit-exact vs
    torch (checked in check_solve2)."""
    one = f32(1.0)
    rk, b1, b2 = f32(rk), f32(b1), f32(b2)
    if abs(rk) <= one:  # pivot 1 (isamax keeps the first row on a tie)
        u11, y1, l, other = one, b1, rk * (one / one), b2
    else:  # rows swapped: pivot rk
        u11, y1, l, other = rk, b2, one * (one / rk), b1
    u22 = one - l * one
    y2 = other - l * y1
    rho1 = y2 * (one / u22)
    rho0 = (y1 - one * rho1) * (one / u11)
    return rho0, rho1


def check_solve2(count=4000, seed=6300):
    """solve2_lapack vs torch.linalg.solve on random systems of the corrector's form."""
    g = np.random.default_rng(seed)
    swapped = 0
    for _ in range(count):
        rk = f32(-g.uniform(0.05, 4.0))
        b1, b2 = f32(g.uniform(0.2, 0.7)), f32(g.uniform(0.1, 0.5))
        want = torch.linalg.solve(torch.tensor([[1.0, 1.0], [float(rk), 1.0]]),
                                  torch.tensor([float(b1), float(b2)])).numpy()
        got = solve2_lapack(rk, b1, b2)
        assert got[0] == want[0] and got[1] == want[1], (rk, b1, b2, got, want)
        swapped += int(abs(rk) > 1)
    return ("solve2_lapack == torch.linalg.solve bit for bit on %d random systems [[1,1],[rk,1]] "
            "(rk in [-4,-0.05], %d with |rk| > 1, i.e. rows swapped)" % (count, swapped))


def unipc_recipe(sig, x0, vs, mode):
    """RECIPE_UNIPC_STEP as a C program would do it: scalars as C scalars, tensors as float32
    numpy arrays (elementwise ops, each rounded to float32). mode: 'f32' (float scalars, libm
    logf/expm1f, solve2_lapack), 'f64' (double scalars (closed-form 2x2 solve) from the given sigma table,
    coefficients cast to float where they meet the tensors). sig: the sigma table (float32 for
    'f32'; float32 or the float64 table for 'f64'). Returns (xs, rho_c list)."""
    n = len(vs)
    if mode == "f32":
        S = [f32(x) for x in sig]
        one, half, log, expm1 = f32(1.0), f32(0.5), (lambda x: f32(libm().logf(float(x)))), \
            (lambda x: f32(libm().expm1f(float(x))))
    else:
        S = [float(x) for x in sig]
        one, half = 1.0, 0.5
        log = lambda x: math.log(x) if x > 0 else -math.inf  # noqa: E731
        expm1 = lambda x: -1.0 if x == -math.inf else math.expm1(x)  # noqa: E731
    T = lambda c: np.float32(c)  # noqa: E731  (a coefficient meeting a float32 tensor)

    def a(i):
        return one - S[i]

    def lam(i):
        return log(a(i)) - log(S[i]) if S[i] != 0 else math.inf

    xs = [x0.numpy()]
    vnp = [v.float().numpy() for v in vs]
    bf16 = vs[0].dtype == torch.bfloat16
    ms, rhos = [], []
    this_order, lon, last = None, 0, None
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(n):
            x = xs[-1]
            if bf16:  # bf16(bf16(sigma)*v), then the float32 difference
                sv = torch.tensor(T(S[k])) * vs[k]  # diffusers' op: 0-dim f32 * bf16
                sv2 = (torch.tensor(T(S[k])).to(torch.bfloat16).float()
                       * torch.from_numpy(vnp[k])).to(torch.bfloat16)
                assert sv.dtype == torch.bfloat16 and torch.equal(sv, sv2)
                m = x - sv.float().numpy()
            else:
                m = x - T(S[k]) * vnp[k]
            if k > 0:
                p = this_order
                m0 = ms[-1]
                h = lam(k) - lam(k - 1)
                hh = -h
                phi1 = expm1(hh)
                B = phi1
                g1 = phi1 / hh - one
                b1 = g1 / B
                base = T(S[k] / S[k - 1]) * last - T(a(k) * phi1) * m0
                if p == 2:
                    rk = (lam(k - 2) - lam(k - 1)) / h
                    d1 = (ms[-2] - m0) / T(rk)
                    g2 = g1 / hh - half
                    b2 = (g2 * 2) / B
                    if mode == "f32":
                        rho0, rho1 = solve2_lapack(rk, b1, b2)
                    else:
                        rho0 = (b1 - b2) / (one - rk)
                        rho1 = b1 - rho0
                    rhos.append((rho0, rho1))
                    inner = T(rho0) * d1 + T(rho1) * (m - m0)
                else:
                    inner = T(half) * (m - m0)
                x = base - T(a(k) * B) * inner
            ms.append(m)
            this_order = min(min(2, n - k), lon + 1)
            last = x
            if S[k + 1] == 0:
                assert this_order == 1
                xn = m
            else:
                h = lam(k + 1) - lam(k)
                phi1 = expm1(-h)
                xn = T(S[k + 1] / S[k]) * x - T(a(k + 1) * phi1) * m
                if this_order == 2:
                    rk = (lam(k - 1) - lam(k)) / h
                    xn = xn - T(a(k + 1) * phi1) * (T(half) * ((ms[-2] - m) / T(rk)))
            xs.append(xn.astype(np.float32))
            lon = min(lon + 1, 2)
    return xs, rhos


def euler_recipe(sig, x0, vs):
    S = [f32(x) for x in sig]
    xs = [x0]
    for k, v in enumerate(vs):
        dt = S[k + 1] - S[k]
        x = xs[-1].float()
        if v.dtype == torch.bfloat16:
            d = (torch.tensor(dt).to(torch.bfloat16).float() * v.float()).to(torch.bfloat16)
            xs.append(torch.from_numpy(x.numpy() + d.float().numpy()).to(torch.bfloat16))
        else:
            xs.append(torch.from_numpy(x.numpy() + dt * v.numpy()))
    return xs


def run_case(kind, n, s, seed, vdt, tensors, meta):
    name = case_name(n, s, "_bf16" if vdt == torch.bfloat16 else "")
    x0, vs = run_inputs(n, seed, vdt)
    sch, xs = run_diffusers(kind, n, s, x0, vs)
    sig = sch.sigmas.clone()
    pre = "run.%s." % name
    info = {"steps": n, "shift": s, "seed": seed, "model_output_dtype": str(vdt)[6:]}
    tensors[pre + "timesteps"] = sch.timesteps.clone()
    tensors[pre + "sigmas"] = sig
    if kind == "unipc":
        rxs, ms, xcs, scal = unipc_replica(sig, x0, vs)
        for k in range(n + 1):
            assert torch.equal(rxs[k], xs[k]), (name, k)
            assert xs[k].dtype == torch.float32
        assert torch.equal(xs[n], ms[n - 1]), name  # last step returns m bit for bit
        tensors[pre + "scalars"] = scal
        for k in range(n):
            tensors[pre + "m.%d" % k] = ms[k]
            if k > 0:
                tensors[pre + "xc.%d" % k] = xcs[k]
        orders = [(int(r[UNIPC_COLUMNS.index("p_order")]),
                   None if math.isnan(r[UNIPC_COLUMNS.index("c_order")])
                   else int(r[UNIPC_COLUMNS.index("c_order")])) for r in scal.tolist()]
        info["orders_predictor_corrector"] = orders
        gold = [x.numpy() for x in xs[1:]]
        chk = {}
        r32, rhos = unipc_recipe(sig.numpy(), x0, vs, "f32")
        chk["f32_libm"] = r32[1:]
        sig64 = unipc_table_f64(n, s)[0]
        chk["f64_scalars_f64_sigmas"] = unipc_recipe(sig64, x0, vs, "f64")[0][1:]
        chk["f64_scalars_f32_sigmas"] = unipc_recipe(sig.double().numpy(), x0, vs, "f64")[0][1:]
        for key, got in chk.items():
            info["recipe_" + key] = {
                "max_nmse": float("%.3e" % max(nmse(g, r) for g, r in zip(got, gold))),
                "max_abs": float("%.3e" % max(maxabs(g, r) for g, r in zip(got, gold))),
                "bitwise_steps": sum(int(np.array_equal(g, r)) for g, r in zip(got, gold))}
        # the closed form of spec 5.1 on diffusers' own float32 rk, b1, b2 vs its linalg.solve
        col = {c_: UNIPC_COLUMNS.index(c_) for c_ in ("c_rk", "c_b1", "c_b2", "c_rho0",
                                                       "c_rho_last")}
        ulps, swaps = [0], []
        for r in scal.numpy():
            if not np.isnan(r[col["c_rho0"]]):
                rk, b1, b2 = r[col["c_rk"]], r[col["c_b1"]], r[col["c_b2"]]
                rho0 = (b1 - b2) / (np.float32(1) - rk)
                rho1 = b1 - rho0
                for got, want in ((rho0, r[col["c_rho0"]]), (rho1, r[col["c_rho_last"]])):
                    ulps.append(int(abs(float(got) - float(want)) / float(np.spacing(want))))
                lap = solve2_lapack(rk, b1, b2)
                assert lap[0] == r[col["c_rho0"]] and lap[1] == r[col["c_rho_last"]], name
                swaps.append(int(abs(rk) > 1))
        info["closed_form_rho_vs_linalg_solve_max_ulps"] = max(ulps)
        info["corrector_order2_steps_rows_swapped"] = "%d of %d" % (sum(swaps), len(swaps))
        # rho of recipe (a) (its own lambdas from glibc logf) vs diffusers'
        info["recipe_f32_rho_vs_diffusers_max_rel"] = float("%.3e" % max(
            [abs(float(a) - float(r[col[c_]])) / abs(float(r[col[c_]]))
             for ra, r in zip(rhos, [r for r in scal.numpy() if not np.isnan(r[col["c_rho0"]])])
             for a, c_ in zip(ra, ("c_rho0", "c_rho_last"))] or [0.0]))
    else:
        scal = torch.stack([sig[:-1], sig[1:], sig[1:] - sig[:-1]], dim=1)
        tensors[pre + "scalars"] = scal
        for k in range(n + 1):
            assert xs[k].dtype == (torch.float32 if k == 0 else vdt), (name, k, xs[k].dtype)
        rec = euler_recipe(sig.numpy(), x0, vs)
        assert all(torch.equal(a, b) for a, b in zip(rec, xs)), name
        info["recipe_bitwise"] = True
    for k in range(n + 1):
        tensors[pre + "x.%d" % k] = xs[k]
    for k in range(n):
        tensors[pre + "v.%d" % k] = vs[k]
    meta["run." + name] = json.dumps(info, sort_keys=True)
    return name, info


def check_spec_examples(tables):
    """The worked examples of spec 5.1 / 5.3."""
    u = tables["unipc"][case_name(50, 3.0)]
    assert u["timesteps"].tolist() == [
        999, 993, 986, 979, 971, 964, 956, 948, 940, 931, 923, 914, 904, 895, 885, 875, 864,
        853, 842, 830, 818, 805, 792, 779, 765, 750, 735, 719, 702, 685, 667, 648, 628, 607,
        586, 563, 539, 514, 487, 459, 429, 398, 365, 329, 292, 251, 208, 162, 113, 60]
    sg = u["sigmas"].tolist()
    assert ["%.6f" % x for x in sg[:3]] == ["0.999999", "0.993250", "0.986315"], sg[:3]
    assert ["%.6f" % x for x in sg[47:]] == ["0.162959", "0.113576", "0.060405", "0.000000"]
    t5 = tables["unipc"][case_name(50, 5.0)]["timesteps"].tolist()
    assert t5[:4] == [999, 995, 991, 987] and t5[-4:] == [305, 244, 175, 96], t5
    e = tables["euler"][case_name(50, 3.0)]["timesteps"].tolist()
    assert ["%.3f" % x for x in e[:3]] == ["1000.000", "993.124", "986.057"], e[:3]
    assert "%.2f" % e[3] == "978.79"
    assert ["%.3f" % x for x in e[-4:]] == ["170.296", "120.533", "66.900", "8.929"], e[-4:]
    return ("spec 5.1 N=50 s=3 timesteps and sigma[0..2], [47..50]; N=50 s=5 first/last 4 "
            "timesteps; spec 5.3 N=50 s=3 timesteps (first 4, last 4): all reproduced")


README = """\
Golden data for the C schedulers (issue #6): diffusers UniPCMultistepScheduler as Wan2.1 ships it
and FlowMatchEulerDiscreteScheduler (shift s, no dynamic shifting).
Regenerate: through tests/golden/gen_golden.py (which calls golden_sched.generate(DATA, ...)),
            or standalone: python3 tests/golden/golden_sched.py tests/data

scheduler_config.json  the Wan2.1 Diffusers scheduler/scheduler_config.json (751 bytes, verbatim
                       fields; flow_shift 3.0). UniPC is UniPCMultistepScheduler.from_config of it
                       with flow_shift replaced by the case's shift.
unipc.safetensors, euler.safetensors:
  table.N<n>_s<s>.timesteps   after set_timesteps(n): UniPC I64, Euler F32            [n]
  table.N<n>_s<s>.sigmas      F32 (what the scheduler holds; last entry 0)            [n+1]
  table.N<n>_s<s>.sigmas_f64  F64: the values before diffusers' float32 cast          [n+1]
  table.N<n>_s<s>.t_f64       (UniPC) F64 sigma*1000 before the int64 truncation      [n]
  run.<case>.x.K              [1,16,1,2,3]; x.0 the seeded random start (F32), x.K+1 the output
                              of step K (F32; BF16 in euler's *_bf16 run)
  run.<case>.v.K              the model output given to step K (F32; BF16 in *_bf16 runs)
  run.<case>.timesteps/sigmas the run's schedule
  run.<case>.scalars          F32 [n, C] per-step scalars; columns: metadata scalar_columns
  run.<case>.m.K, .xc.K       (UniPC) x0 prediction of step K; corrected sample of step K (K>=1)
  s<s>: the shift with '.' as 'p' (s2p7 = 2.7). The loop is WanPipeline's: set_timesteps(n),
  set_begin_index(0), x = step(v_K, timesteps[K], x) for K = 0..n-1.
  Tables: (50,3) (50,5) (30,8) (4,3) (2,1) (1,3) (7,12); (3,1) and (37,1), where sigma*1000 is
  nominally an integer and float64 lands just below it (t = 333, not 334); (20,2.7) (40,7.3);
  (16,2.002) (16,2.011), where Euler's float32 sigma_max is not 1.
  Runs: UniPC n = 1, 2, 3, 4, 10 (orders 1 | 1,1 | 1,2,1 | 1,2,2,1 | 1,2x8,1) and n = 4 with a
  bf16 model output; Euler n = 1, 2, 4, 10 and n = 4 bf16.
Tolerances (issue #6): timesteps exact; sigmas NMSE <= 1e-10 vs sigmas_f64; updates NMSE <= 1e-7.
A C float32 implementation of recipe_step is ~1e-14 NMSE from these (UniPC: glibc logf/expm1f
are not torch's, so not bit-exact); Euler can be bit-exact.
__metadata__: versions, configs, per-run seeds/orders, recipe_table / recipe_step (the exact
arithmetic), recipe_check (C-like re-implementations vs diffusers), spec_discrepancies (spec 5 vs
the installed diffusers code, quoted), euler_init_sigma_max_min.
Arithmetic in short:
  UniPC table, float64: r = k*((0.001-1)/n) + 1; sigma = s*r/(1+(s-1)*r); sigma[0] -= 1e-6;
    timesteps = (int64)(sigma*1000.0) (truncation); sigmas = (float)sigma, then 0.
  UniPC step: float32 scalars from the float32 sigmas (alpha = 1-sigma, lambda =
    log(alpha)-log(sigma), h, expm1, b, rho: 2x2 solve as LAPACK) and float32 tensor ops;
    orders 1, 2, ..., 2, 1; the last step returns the x0 prediction m exactly.
  Euler table: float32 init (sigma_max, sigma_min = shift of 1 and 0.001 in float32), float64
    linspace and second shift, cast to float32; timesteps = sigma_f32*1000 in float32.
  Euler step: x + (sigma[k+1]-sigma[k])*v in float32 (bf16 v: product in bf16, result bf16).
"""


def kind_meta(kind, diffusers_version):
    meta = {"torch": torch.__version__, "diffusers": diffusers_version, "numpy": np.__version__,
            "generator": "tests/golden/golden_sched.py (gen_golden.py)",
            "shape": json.dumps(list(SHAPE)), "table_cases": json.dumps(TABLE_CASES),
            "pipeline_loop": "diffusers/pipelines/wan/pipeline_wan.py: scheduler.set_timesteps("
                             "num_inference_steps, device=device); scheduler.set_begin_index(0); "
                             "latents = scheduler.step(noise_pred, t, latents, "
                             "return_dict=False)[0] for t in scheduler.timesteps",
            "spec_discrepancies": json.dumps(
                [dict(zip(("spec", "spec_text", "diffusers_code", "comment"), d))
                 for d in SPEC_DISCREPANCIES], ensure_ascii=False)}
    if kind == "unipc":
        meta.update({
            "class": "diffusers.UniPCMultistepScheduler",
            "built_from": "UniPCMultistepScheduler.from_config(scheduler_config.json with "
                          "flow_shift = the case's shift)",
            "config_flow_shift3": json.dumps({k: v for k, v in unipc(3.0).config.items()
                                              if not k.startswith("_")}, sort_keys=True),
            "dtypes": "timesteps int64 (I64); sigmas float32 (F32), sigmas_f64 and t_f64 float64 "
                      "(F64); x, m, xc, scalars float32; v float32 (bfloat16 in *_bf16)",
            "recipe_table": RECIPE_UNIPC_TABLE, "recipe_step": RECIPE_UNIPC_STEP,
            "scalar_columns": json.dumps(UNIPC_COLUMNS), "scalars": SCALAR_DOC["unipc"]})
    else:
        meta.update({
            "class": "diffusers.FlowMatchEulerDiscreteScheduler",
            "built_from": "FlowMatchEulerDiscreteScheduler.from_config(%s with shift = the case's "
                          "shift)" % json.dumps(EULER_CONFIG, sort_keys=True),
            "config_shift3": json.dumps({k: v for k, v in euler(3.0).config.items()
                                         if not k.startswith("_")}, sort_keys=True),
            "dtypes": "timesteps float32 (F32); sigmas float32 (F32), sigmas_f64 float64 (F64); x, "
                      "scalars float32 (x.K>=1 bfloat16 in *_bf16); v float32 (bfloat16 in "
                      "*_bf16)",
            "recipe_table": RECIPE_EULER_TABLE, "recipe_step": RECIPE_EULER_STEP,
            "scalar_columns": json.dumps(EULER_COLUMNS), "scalars": SCALAR_DOC["euler"]})
    return meta


def table_meta(kind, n, s, t):
    info = {"steps": n, "shift": s,
            "sigma_nmse_f32_vs_f64": float("%.3e" % nmse(t["sigmas"], t["sigmas_f64"]))}
    if kind == "unipc":
        t64 = t["t_f64"].numpy()
        near = [k for k in range(1, n) if abs(t64[k] - round(t64[k])) < 1e-9]
        info["t_f64_nominally_integer"] = len(near)
        info["t_f64_just_below_integer_so_truncated_down"] = [k for k in near
                                                              if t64[k] < round(t64[k])]
    return info


def recipe_summary(kind, summary):
    if kind == "euler":
        return ("numpy float32 re-implementations of recipe_table and recipe_step reproduce "
                "every table and every run bit for bit")
    keys = ("f32_libm", "f64_scalars_f32_sigmas", "f64_scalars_f64_sigmas")
    r = ["%.1e / %.1e" % (max(i["recipe_" + k]["max_nmse"] for i in summary.values()),
                          max(i["recipe_" + k]["max_abs"] for i in summary.values()))
         for k in keys]
    ulps = max(i["closed_form_rho_vs_linalg_solve_max_ulps"] for i in summary.values())
    rho = max(i["recipe_f32_rho_vs_diffusers_max_rel"] for i in summary.values())
    return ("C-like re-implementations of recipe_step vs diffusers over all runs (max over steps "
            "of NMSE / max |diff|): (a) float32 scalars with glibc logf/expm1f and solve2_lapack: "
            "%s; (b) double scalars from the float32 sigmas (promoted), closed-form 2x2 solve, "
            "coefficients cast to float32 where they meet tensors: %s; (c) as (b) but from the "
            "float64 sigmas: %s. (c) is the worst because alpha_0 = 1 - sigma_0 is 1.013279e-06 "
            "from the float32 sigma_0 but 1.0000000000287557e-06 from the double one: use the "
            "float32 sigma table. torch's CPU log/expm1 are not glibc's (1 ulp apart on ~7%% of "
            "float32 inputs), so bit equality is not expected. On diffusers' own float32 rk, "
            "b1, b2: solve2_lapack reproduces its torch.linalg.solve bit for bit (asserted), the "
            "closed form rho0 = (b1-b2)/(1-rk), rho1 = b1-rho0 is within %d ulp. rho of (a) vs "
            "diffusers: max rel diff %.1e (g1 = phi1/hh - 1 and g2 = g1/hh - 0.5 cancel, so "
            "1-ulp lambda differences grow there; the effect on x is the NMSE above)"
            % (r[0], r[1], r[2], ulps, rho))


def generate(data_dir, save_meta):
    """Write data_dir/sched/. save_meta: gen_golden.save_file_sorted_meta."""
    import diffusers
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    diffusers.utils.logging.set_verbosity_error()
    out_dir = os.path.join(data_dir, "sched")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    cfg_text = json.dumps(WAN21_UNIPC_CONFIG, indent=2, sort_keys=True) + "\n"
    assert len(cfg_text.encode()) == 751, len(cfg_text.encode())
    with open(os.path.join(out_dir, "scheduler_config.json"), "w") as f:
        f.write(cfg_text)

    tables, extras = {"unipc": {}, "euler": {}}, {}
    for kind in ("unipc", "euler"):
        for n, s in TABLE_CASES:
            tables[kind][case_name(n, s)], extra = table_case(kind, n, s)
            if extra:
                extras["s=%g" % s] = extra
    spec_examples = check_spec_examples(tables)
    solve2 = check_solve2()

    for kind in ("unipc", "euler"):
        tensors = {}
        meta = kind_meta(kind, diffusers.__version__)
        meta["spec_examples"] = spec_examples
        for (n, s) in TABLE_CASES:
            name = case_name(n, s)
            t = tables[kind][name]
            for k, v in t.items():
                tensors["table.%s.%s" % (name, k)] = v
            meta["table." + name] = json.dumps(table_meta(kind, n, s, t), sort_keys=True)
        if kind == "euler":
            meta["euler_init_sigma_max_min"] = json.dumps(extras, sort_keys=True)
        summary = {}
        for n, s, seed, vdt in RUN_CASES[kind]:
            name, info = run_case(kind, n, s, seed, vdt, tensors, meta)
            summary[name] = info
        meta["recipe_check"] = recipe_summary(kind, summary)
        if kind == "unipc":
            meta["solve2_check"] = solve2
        save_meta({k: v.contiguous() for k, v in tensors.items()},
                  os.path.join(out_dir, "%s.safetensors" % kind), meta)
        for name, info in summary.items():
            print("%s %-12s %s" % (kind, name, json.dumps(info, sort_keys=True)))
        print(meta["recipe_check"])
    print(spec_examples)
    print(solve2)
    print("euler init sigma_max/min: %s" % json.dumps(extras, sort_keys=True))
    with open(os.path.join(out_dir, "README"), "w") as f:
        f.write(README)
    total = 0
    for fn in sorted(os.listdir(out_dir)):
        p = os.path.join(out_dir, fn)
        total += os.path.getsize(p)
        print("  %8d  %s" % (os.path.getsize(p), os.path.relpath(p, data_dir)))
    print("sched total: %d bytes" % total)
    assert total <= 150000, "tests/data/sched over its 150 KB budget: %d bytes" % total


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: golden_sched.py OUT_DATA_DIR   (writes OUT_DATA_DIR/sched/)")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gen_golden import save_file_sorted_meta
    generate(sys.argv[1], save_file_sorted_meta)
