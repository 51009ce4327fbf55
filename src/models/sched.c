/*
 * sched.c — UniPC (bh2, order 1 / 2, flow sigmas) and flow-match Euler, after diffusers'
 * UniPCMultistepScheduler / FlowMatchEulerDiscreteScheduler (spec §5).
 *
 * Every scalar is formed in the precision and order diffusers forms it (tables: float64 numpy,
 * then float32; step coefficients: float32 torch scalars from the float32 sigma table; tensor
 * updates: float32, scalar products first). This file is compiled with -ffp-contract=off so
 * no multiply-add is fused. UniPC's log/expm1 come from libm, torch's from its own vector
 * library: they differ by an ulp at times, so UniPC matches to ~1e-14 NMSE, not bit for bit.
 */
#include "models/sched.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct wr_sched {
    wr_sched_kind kind;
    int64_t steps, ntrain;
    float *sigma;    /* [steps + 1] float32, last 0 */
    double *sigma64; /* [steps + 1] before the cast */
    float *timestep; /* [steps] */
    /* UniPC state */
    int64_t k;      /* next step index */
    int64_t n;      /* elements per sample (fixed by the first step) */
    float *m_prev;  /* x0 prediction of step k-1 */
    float *m_prev2; /* of step k-2 */
    float *m_cur;   /* of step k (scratch) */
    float *last;    /* the (corrected) sample step k-1 started from */
    int lower_order_nums, this_order;
    int order; /* solver_order: 1 or 2 */
};

static float lambda_of(float sigma) { /* log(alpha) - log(sigma), alpha = 1 - sigma */
    return logf(1.0f - sigma) - logf(sigma);
}

/* numpy.linspace(start, stop, num)[i] (num >= 1): i * ((stop - start) / (num - 1)) + start,
 * the last element exactly stop. */
static double linspace_at(double start, double stop, int64_t num, int64_t i) {
    if (num == 1) return start;
    if (i == num - 1) return stop;
    return (double)i * ((stop - start) / (double)(num - 1)) + start;
}

static void tables_unipc(wr_sched *s, double shift) {
    const int64_t N = s->steps;
    const double step = (1.0 / (double)s->ntrain - 1.0) / (double)N; /* linspace(1, 1/T, N+1) */
    for (int64_t k = 0; k < N; k++) {
        double r = (double)k * step + 1.0;
        double sg = shift * r / (1.0 + (shift - 1.0) * r);
        if (k == 0 && fabs(sg - 1.0) < 1e-6) sg -= 1e-6; /* diffusers: avoids log(0) */
        s->sigma64[k] = sg;
        s->timestep[k] = (float)(int64_t)(sg * (double)s->ntrain); /* int64 truncation */
        s->sigma[k] = (float)sg;
    }
    s->sigma64[N] = 0.0;
    s->sigma[N] = 0.0f;
}

static void tables_euler(wr_sched *s, double shift) {
    const int64_t N = s->steps, T = s->ntrain;
    /* __init__, float32: sigmas = shift * u / (1 + (shift - 1) * u), u = (1..T) / T */
    const float sf = (float)shift, s1f = (float)(shift - 1.0);
    const float umax = (float)T / (float)T, umin = 1.0f / (float)T;
    const float smax = sf * umax / (1.0f + s1f * umax), smin = sf * umin / (1.0f + s1f * umin);
    /* set_timesteps, float64: linspace(smax*T, smin*T, N) / T, shifted again */
    for (int64_t k = 0; k < N; k++) {
        double t = linspace_at((double)smax * (double)T, (double)smin * (double)T, N, k);
        double sg = t / (double)T;
        sg = shift * sg / (1.0 + (shift - 1.0) * sg);
        s->sigma64[k] = sg;
        s->sigma[k] = (float)sg;
        s->timestep[k] = s->sigma[k] * (float)T;
    }
    s->sigma64[N] = 0.0;
    s->sigma[N] = 0.0f;
}

wr_status wr_sched_create(wr_sched **out, wr_sched_kind kind, int64_t steps, double shift,
                          int64_t num_train_timesteps) {
    *out = NULL;
    if (steps < 1 || steps > 100000)
        return WR_FAIL(WR_ERR_INVALID_ARG, "steps must be in [1, 100000], got %lld",
                       (long long)steps);
    if (!(shift > 0.0 && shift <= WR_CFG_MAX_SHIFT)) /* larger: every sigma rounds to 1 */
        return WR_FAIL(WR_ERR_INVALID_ARG, "shift must be in (0, %g], got %g", WR_CFG_MAX_SHIFT,
                       shift);
    if (num_train_timesteps < 1 || num_train_timesteps > WR_CFG_MAX_TRAIN_T)
        return WR_FAIL(WR_ERR_INVALID_ARG, "num_train_timesteps must be in [1, %d], got %lld",
                       WR_CFG_MAX_TRAIN_T, (long long)num_train_timesteps);
    wr_sched *s = calloc(1, sizeof *s);
    if (s == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    s->kind = kind;
    s->order = 2;
    s->steps = steps;
    s->ntrain = num_train_timesteps;
    s->sigma = malloc(sizeof(float) * (size_t)(steps + 1));
    s->sigma64 = malloc(sizeof(double) * (size_t)(steps + 1));
    s->timestep = malloc(sizeof(float) * (size_t)steps);
    if (!s->sigma || !s->sigma64 || !s->timestep) {
        wr_sched_free(s);
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for a %lld-step schedule",
                       (long long)steps);
    }
    if (kind == WR_SCHED_UNIPC)
        tables_unipc(s, shift);
    else
        tables_euler(s, shift);
    *out = s;
    return WR_OK;
}

void wr_sched_free(wr_sched *s) {
    if (s == NULL) return;
    free(s->sigma);
    free(s->sigma64);
    free(s->timestep);
    free(s->m_prev);
    free(s->m_prev2);
    free(s->m_cur);
    free(s->last);
    free(s);
}

wr_status wr_sched_kind_of(const wr_sched_config *c, wr_sched_kind *kind, double *shift) {
    /* wr_sched_config_read has checked every field of a file; this repeats what selects the
     * sampler, for configs built in memory */
    const int euler = strcmp(c->class_name, "FlowMatchEulerDiscreteScheduler") == 0;
    if (!euler && strcmp(c->class_name, "UniPCMultistepScheduler") != 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED, "scheduler class \"%s\" is not supported",
                       c->class_name);
    const double s = euler ? c->shift : c->flow_shift;
    if (!(s > 0.0 && s <= WR_CFG_MAX_SHIFT))
        return WR_FAIL(WR_ERR_CONFIG, "%s: field '%s' is %g; must be in (0, %g]", c->class_name,
                       euler ? "shift" : "flow_shift", s, WR_CFG_MAX_SHIFT);
    if (!euler &&
        (!c->use_flow_sigmas || strcmp(c->prediction_type, "flow_prediction") != 0 ||
         (c->solver_order != 1 && c->solver_order != 2) || strcmp(c->solver_type, "bh2") != 0 ||
         strcmp(c->final_sigmas_type, "zero") != 0 || !c->lower_order_final || !c->predict_x0))
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "UniPCMultistepScheduler: wanrun implements use_flow_sigmas true, "
                       "prediction_type \"flow_prediction\", solver_order 1 or 2, solver_type "
                       "bh2, final_sigmas_type zero, lower_order_final and predict_x0 true; "
                       "got %s, \"%s\", %lld, %s, %s, %s, %s",
                       c->use_flow_sigmas ? "true" : "false", c->prediction_type,
                       (long long)c->solver_order, c->solver_type, c->final_sigmas_type,
                       c->lower_order_final ? "true" : "false", c->predict_x0 ? "true" : "false");
    *kind = euler ? WR_SCHED_EULER : WR_SCHED_UNIPC;
    *shift = s;
    return WR_OK;
}

wr_status wr_sched_configure(wr_sched *s, const wr_sched_config *c) {
    if (s->kind != WR_SCHED_UNIPC || strcmp(c->class_name, "UniPCMultistepScheduler") != 0)
        return WR_OK; /* Euler has no options; a UniPC run from an Euler config: the defaults */
    if (c->solver_order != 1 && c->solver_order != 2)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "UniPCMultistepScheduler: solver_order %lld; wanrun "
                       "implements 1 and 2",
                       (long long)c->solver_order);
    if (strcmp(c->solver_type, "bh2") != 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "UniPCMultistepScheduler: solver_type \"%s\"; wanrun implements bh2",
                       c->solver_type);
    if (s->k != 0) return WR_FAIL(WR_ERR_INVALID_ARG, "scheduler: configure before the first step");
    s->order = (int)c->solver_order;
    return WR_OK;
}

wr_status wr_sched_kind_parse(const char *name, wr_sched_kind *kind) {
    if (strcmp(name, "unipc") == 0) {
        *kind = WR_SCHED_UNIPC;
        return WR_OK;
    }
    if (strcmp(name, "euler") == 0) {
        *kind = WR_SCHED_EULER;
        return WR_OK;
    }
    return WR_FAIL(WR_ERR_INVALID_ARG, "--scheduler must be unipc or euler, got '%s'", name);
}

const char *wr_sched_kind_name(wr_sched_kind kind) {
    return kind == WR_SCHED_UNIPC ? "unipc" : "euler";
}

int64_t wr_sched_steps(const wr_sched *s) {
    return s->steps;
}

float wr_sched_timestep(const wr_sched *s, int64_t k) {
    WR_ASSERT(k >= 0 && k < s->steps);
    return s->timestep[k];
}

float wr_sched_sigma(const wr_sched *s, int64_t k) {
    WR_ASSERT(k >= 0 && k <= s->steps);
    return s->sigma[k];
}

double wr_sched_sigma_f64(const wr_sched *s, int64_t k) {
    WR_ASSERT(k >= 0 && k <= s->steps);
    return s->sigma64[k];
}

void wr_sched_reset(wr_sched *s) {
    s->k = 0;
    s->lower_order_nums = 0;
    s->this_order = 0;
}

/* torch.linalg.solve of [[1, 1], [rk, 1]] rho = [b1, b2] as LAPACK's LU with partial pivoting
 * does it (the row with the larger |pivot| first; reciprocals multiplied). */
static void solve2(float rk, float b1, float b2, float *rho0, float *rho1) {
    float u11, y1, l, o;
    if (fabsf(rk) <= 1.0f) {
        u11 = 1.0f, y1 = b1, l = rk, o = b2;
    } else {
        u11 = rk, y1 = b2, l = 1.0f * (1.0f / rk), o = b1;
    }
    const float u22 = 1.0f - l, y2 = o - l * y1;
    *rho1 = y2 * (1.0f / u22);
    *rho0 = (y1 - *rho1) * (1.0f / u11);
}

static wr_status unipc_step(wr_sched *s, float *x, const float *v, int64_t n) {
    const int64_t k = s->k, N = s->steps;
    const float *S = s->sigma;
    /* (1) x0 prediction from the sample before any correction */
    float *m = s->m_cur;
    const float sk = S[k];
    for (int64_t i = 0; i < n; i++) m[i] = x[i] - sk * v[i];

    /* (2) UniC corrector with the previous step's order */
    if (k > 0) {
        const int p = s->this_order;
        const float lk = lambda_of(S[k]), lk1 = lambda_of(S[k - 1]);
        const float h = lk - lk1, hh = -h;
        const float phi1 = expm1f(hh), B = expm1f(hh);
        const float g1 = phi1 / hh - 1.0f, b1 = g1 * 1.0f / B;
        float rho0 = 0.0f, rho1 = 0.5f, rk = 1.0f;
        if (p == 2) {
            const float lk2 = lambda_of(S[k - 2]);
            rk = (lk2 - lk1) / h;
            const float g2 = g1 / hh - 0.5f, b2 = g2 * 2.0f / B;
            solve2(rk, b1, b2, &rho0, &rho1);
        }
        const float ratio = S[k] / S[k - 1], ak = 1.0f - S[k];
        const float c_m0 = ak * phi1, c_res = ak * B;
        const float *m0 = s->m_prev, *last = s->last;
        if (p == 2) {
            const float *m2 = s->m_prev2;
            for (int64_t i = 0; i < n; i++) {
                const float d1 = (m2[i] - m0[i]) / rk;
                const float res = rho0 * d1 + rho1 * (m[i] - m0[i]);
                x[i] = (ratio * last[i] - c_m0 * m0[i]) - c_res * res;
            }
        } else {
            for (int64_t i = 0; i < n; i++) {
                const float res = rho1 * (m[i] - m0[i]);
                x[i] = (ratio * last[i] - c_m0 * m0[i]) - c_res * res;
            }
        }
    }

    /* (3) history: m_prev2 <- m_prev <- m; (4) order; (5) last sample */
    float *t = s->m_prev2;
    s->m_prev2 = s->m_prev;
    s->m_prev = m;
    s->m_cur = t;
    const int order_cap = N - k < s->order ? (int)(N - k) : s->order; /* lower_order_final */
    s->this_order = order_cap < s->lower_order_nums + 1 ? order_cap : s->lower_order_nums + 1;
    memcpy(s->last, x, sizeof(float) * (size_t)n);

    /* (6) UniP predictor to sigma[k+1] */
    if (S[k + 1] == 0.0f) { /* final sigma zero: the x0 prediction itself */
        memcpy(x, m, sizeof(float) * (size_t)n);
    } else {
        const float lk = lambda_of(S[k]), ln = lambda_of(S[k + 1]);
        const float h = ln - lk, hh = -h, phi1 = expm1f(hh), B = expm1f(hh);
        const float ratio = S[k + 1] / S[k], an = 1.0f - S[k + 1];
        const float c_m0 = an * phi1, c_res = an * B;
        if (s->this_order == 2) {
            const float rk = (lambda_of(S[k - 1]) - lk) / h;
            const float *m1 = s->m_prev2; /* m of step k-1 */
            for (int64_t i = 0; i < n; i++) {
                const float d1 = (m1[i] - m[i]) / rk;
                x[i] = (ratio * x[i] - c_m0 * m[i]) - c_res * (0.5f * d1);
            }
        } else {
            for (int64_t i = 0; i < n; i++) x[i] = ratio * x[i] - c_m0 * m[i];
        }
    }
    if (s->lower_order_nums < s->order) s->lower_order_nums++;
    return WR_OK;
}

wr_status wr_sched_step(wr_sched *s, float *x, const float *v, int64_t n) {
    if (s->k >= s->steps)
        return WR_FAIL(WR_ERR_INVALID_ARG, "scheduler: step %lld of a %lld-step schedule",
                       (long long)s->k + 1, (long long)s->steps);
    if (s->k == 0) {
        if (s->n != n) {
            free(s->m_prev);
            free(s->m_prev2);
            free(s->m_cur);
            free(s->last);
            s->m_prev = s->m_prev2 = s->m_cur = s->last = NULL;
            s->n = 0;
        }
        if (s->kind == WR_SCHED_UNIPC && s->m_prev == NULL) {
            s->m_prev = malloc(sizeof(float) * (size_t)n);
            s->m_prev2 = malloc(sizeof(float) * (size_t)n);
            s->m_cur = malloc(sizeof(float) * (size_t)n);
            s->last = malloc(sizeof(float) * (size_t)n);
            if (!s->m_prev || !s->m_prev2 || !s->m_cur || !s->last)
                return WR_FAIL(WR_ERR_OOM_HOST, "scheduler: no memory for %lld-element history",
                               (long long)n);
        }
        s->n = n;
    } else if (n != s->n) {
        return WR_FAIL(WR_ERR_INVALID_ARG, "scheduler: sample size changed from %lld to %lld",
                       (long long)s->n, (long long)n);
    }
    if (s->kind == WR_SCHED_EULER) {
        const float dt = s->sigma[s->k + 1] - s->sigma[s->k];
        for (int64_t i = 0; i < n; i++) x[i] = x[i] + dt * v[i];
    } else {
        WR_TRY(unipc_step(s, x, v, n));
    }
    s->k++;
    return WR_OK;
}
