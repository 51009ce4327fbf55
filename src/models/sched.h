/*
 * sched.h — the flow-matching samplers of WanPipeline: diffusers' UniPCMultistepScheduler as
 * Wan2.1 ships it (flow sigmas, shift, bh2, order 2, lower_order_final, final sigma zero,
 * integer timesteps; also order 1, wr_sched_configure) and FlowMatchEulerDiscreteScheduler
 * (shift, no dynamic shifting).
 *
 * Tables follow diffusers' arithmetic to the bit (float64 numpy then a float32 cast; for
 * Euler a float32 init, a float64 linspace and a second shift); steps run in float32 on host
 * arrays of the latent (spec §5, tests/data/sched/README). The model output is the flow
 * velocity v; the x0 prediction is x - sigma * v.
 *
 * Usage: create with the step count and shift, then for k = 0 .. steps-1 feed the DiT
 * wr_sched_timestep(s, k) and call wr_sched_step(s, x, v, n) with its (guided) output: x
 * becomes the sample at sigma[k+1]. Not thread-safe; one sampling run per object (reset to
 * reuse).
 */
#ifndef WR_MODELS_SCHED_H
#define WR_MODELS_SCHED_H

#include <stdint.h>

#include "core/modeldir.h"
#include "core/status.h"

typedef enum wr_sched_kind { WR_SCHED_UNIPC = 0, WR_SCHED_EULER } wr_sched_kind;

typedef struct wr_sched wr_sched;

/* steps in [1, 100000], shift in (0, WR_CFG_MAX_SHIFT], num_train_timesteps in
 * [1, WR_CFG_MAX_TRAIN_T] (1000 for Wan): WR_ERR_INVALID_ARG else. */
wr_status wr_sched_create(wr_sched **out, wr_sched_kind kind, int64_t steps, double shift,
                          int64_t num_train_timesteps);
void wr_sched_free(wr_sched *s);

/* The sampler a scheduler_config.json describes and its shift (flow_shift / shift).
 * WR_ERR_UNSUPPORTED for a class or setting wanrun does not implement, WR_ERR_CONFIG for a
 * shift outside (0, WR_CFG_MAX_SHIFT]; wr_sched_config_read has already refused both for a
 * config read from a file. */
wr_status wr_sched_kind_of(const wr_sched_config *cfg, wr_sched_kind *kind, double *shift);
/* The UniPC options of a config (solver_order 1 or 2; a new scheduler has Wan2.1's 2) on s,
 * before its first step; nothing for Euler or an Euler config. WR_ERR_UNSUPPORTED for another
 * order or a solver_type other than bh2. */
wr_status wr_sched_configure(wr_sched *s, const wr_sched_config *cfg);

/* "unipc" / "euler" (for --scheduler); WR_ERR_INVALID_ARG otherwise. */
wr_status wr_sched_kind_parse(const char *name, wr_sched_kind *kind);
const char *wr_sched_kind_name(wr_sched_kind kind);

int64_t wr_sched_steps(const wr_sched *s);
/* The DiT's timestep for step k (UniPC: an integer; Euler: sigma * 1000 in float32). */
float wr_sched_timestep(const wr_sched *s, int64_t k);
/* sigma[k], k in [0, steps] (sigma[steps] = 0), as the scheduler holds it (float32). */
float wr_sched_sigma(const wr_sched *s, int64_t k);
/* The UniPC table before the int64 truncation / the float64 sigma before the cast (tests). */
double wr_sched_sigma_f64(const wr_sched *s, int64_t k);

/* Forgets the history: the next step is step 0 again. */
void wr_sched_reset(wr_sched *s);

/* One step: x [n] (the sample at sigma[k]) becomes the sample at sigma[k+1], given the model
 * output v [n] at step k. WR_ERR_INVALID_ARG past the last step or when n changes mid-run. */
wr_status wr_sched_step(wr_sched *s, float *x, const float *v, int64_t n);

#endif /* WR_MODELS_SCHED_H */
