/*
 * test_backend_ops.c — every op and fused op of ops.h, and the strided copies of backend.h, on
 * every backend this machine can make, compared with the plain CPU backend (after the method of
 * ggml's test-backend-ops; our own code).
 *
 * A table of cases (odd sizes; lengths of 1, 7, 33, 257 that are not multiples of the CPU's
 * tiles, spans and attention chunks; the real widths D = 1536 / 5120, HD = 128, FF = 8960 in a
 * few cheap cases; every weight dtype; BF16 activations where a GPU keeps them) is run with
 * seeded random inputs on:
 *   - the plain CPU backend (strict = 0, async = 0): the reference;
 *   - the strict CPU mode (strict = 1: device memory the host cannot touch) and the async CPU
 *     mode (async = 1: ops on a worker thread). They run the same kernels as the plain CPU on
 *     the same values in the same order, only reached through other addresses or another
 *     thread, so their outputs must be BITWISE the plain CPU's (the contract of issue #15: the
 *     whole pipeline gives the same bits in these modes); any difference is a bug in the mode;
 *   - CUDA, where wr_backend_probe_cuda finds a device: each output within a per-op NMSE bound
 *     (g_bounds below), bitwise for data movement; an op the backend leaves NULL is counted as
 *     unsupported, not failed.
 * Whatever the backend, every tensor lives in device memory from be->iface->alloc with 4 KiB of
 * guard bytes on each side, and only wr_upload / wr_download touch it. After each op: the guards
 * are unchanged, the inputs are unchanged, every output is finite (NaN never passes; -inf only
 * where the contract gives it: the log-sum-exp of a row without keys) — outputs start as NaN, so
 * an element the op forgot to write fails too. Host arguments (a key mask, gather indices, the
 * tensor descriptors) are overwritten right after the op is issued, and the staging buffer of
 * an upload right after the upload returns: a backend that reads them later (async) fails.
 * The checker itself is tested on deliberately broken backends (test_checker_catches); the
 * NMSE bounds are held against the CPU with bf16-rounded GEMM operands (test_bf16_gemm_bounds)
 * and against one bf16 rounding at the end (test_bf16_rounding_points); k_valid is checked
 * against the same keys as a mask (test_attention_k_valid); wr_copy_3d in its three directions
 * and the memory calls against a host model, bitwise on every backend.
 *
 * Exit 77 when no backend besides the plain CPU can be made. WR_BOPS_VERBOSE=1 prints every
 * case's NMSE.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "harness.h"
#include "kernels/backend.h"
#include "kernels/cpu/conv_internal.h"
#include "kernels/ops.h"

/* ---- per-op bounds for a backend that is not the CPU code ---- */

/*
 * NMSE bounds (sum (y - y_cpu)^2 / sum y_cpu^2) for a backend that runs its own kernels (CUDA).
 * 0 means bitwise. STYLE.md's starting tolerance for CUDA bf16 against CPU f32 is 5e-4 per op;
 * it is used where a GEMM runs (the backend rounds GEMM operands to its GEMM dtype, bf16 on
 * CUDA). Measured with test_bf16_gemm_bounds (the CPU with every GEMM operand rounded to bf16,
 * a lower bound of what a bf16 GEMM does; the worst case of the table, 2-core AMD EPYC,
 * OpenBLAS 0.3.21): matmul 5.0e-6, linear_gelu 5.3e-6, linear_residual 6.0e-8 (the residual
 * dominates), patch_embed 5.3e-6, conv3d 5.2e-6, attention 2.4e-5 (q, k, v rounded) — the bound
 * leaves 20x and more for what the emulation leaves out (bf16 softmax probabilities, bf16
 * outputs, other accumulation orders); test_bf16_gemm_bounds asserts the 10x.
 * The other bounds follow from the ops' arithmetic, not from a GPU measurement (there are no
 * CUDA op kernels yet; TODO(#15): re-measure them on the CUDA kernels and tighten):
 *   - data movement and exact selections (transpose, unpatchify, upsample2x, gather_rows: a
 *     dtype conversion is exact, copy2d, clamp): bitwise;
 *   - one IEEE rounding per element (add, mul): bitwise, no device can round a + b differently;
 *   - two roundings that a device may contract into one FMA (modulate, gated_residual,
 *     channel_affine, rope): at most 2^-23 relative per element, NMSE <= ~1e-14: bound 1e-12;
 *   - device exp / tanh within a few ulp (gelu_tanh, silu) and f32 reductions where the CPU
 *     accumulates in double (layer_norm, rms_norm, rms_norm_channels, the fused norms,
 *     attn_merge): relative errors ~1e-6 at worst per element, NMSE ~1e-12: bound 1e-10.
 */
static const struct {
    const char *op;
    double nmse;
} g_bounds[] = {
    {"transpose", 0},
    {"unpatchify", 0},
    {"upsample2x", 0},
    {"gather_rows", 0},
    {"copy2d", 0},
    {"clamp", 0},
    {"add", 0},
    {"mul", 0},
    {"modulate", 1e-12},
    {"gated_residual", 1e-12},
    {"channel_affine", 1e-12},
    {"rope", 1e-12},
    {"gelu_tanh", 1e-10},
    {"silu", 1e-10},
    {"layer_norm", 1e-10},
    {"rms_norm", 1e-10},
    {"rms_norm_channels", 1e-10},
    {"layer_norm_modulate", 1e-10},
    {"rms_norm_rope", 1e-10},
    {"attn_merge", 1e-10},
    {"matmul", 5e-4},
    {"linear_gelu", 5e-4},
    {"linear_residual", 5e-4},
    {"patch_embed", 5e-4},
    {"conv3d", 5e-4},
    {"attention", 5e-4},
};
#define NOPS ((int)(sizeof g_bounds / sizeof g_bounds[0]))

/*
 * The least bound of a case with a BF16 activation (see case_bound): STYLE.md's CUDA bf16
 * per-op tolerance. One bf16 rounding of a value is NMSE ~5e-6 (8 significant bits); a backend
 * may round at other points than the CPU (measured by test_bf16_rounding_points, the CPU
 * against one rounding at the end: 0 for single ops, 5.0e-6 .. 8.3e-6 for the compositions
 * that round in between: rms_norm_rope, layer_norm_modulate, linear_gelu): ~60x.
 */
#define WR_BOPS_BF16 5e-4

static int op_index(const char *op) {
    for (int i = 0; i < NOPS; i++)
        if (strcmp(g_bounds[i].op, op) == 0) return i;
    ck_abort_msg("no bound for op %s", op);
    return -1;
}

/* ---- the case table ---- */

#define MAXT  8    /* tensors per case */
#define MAXC  256  /* cases */
#define GUARD 4096 /* guard bytes on each side of every device tensor */

enum { T_IN = 0, T_OUT, T_INOUT, T_TMP }; /* T_TMP: written by the op, not compared */
enum { H_NONE = 0, H_MASK, H_IDX };       /* host argument of the op */

typedef struct targ {
    int role;
    wr_dtype dtype;
    int ndim;
    int64_t shape[WR_MAX_DIMS];
    float lo, hi; /* inputs uniform in [lo, hi), made as f32 and converted to dtype */
    int neg_inf;  /* outputs: -inf is a legal value */
    int weight;   /* a weight (any float dtype, converted exactly), not an activation */
} targ;

typedef struct bcase bcase;
/* Issues the op on be over the device tensors t (descriptors of c->a, in order); harg is the
 * host argument (key mask or indices) or NULL. */
typedef wr_status (*run_fn)(wr_backend *be, wr_tensor *t, const bcase *c, const void *harg);

struct bcase {
    const char *op; /* the bound's name (g_bounds) */
    char desc[160];
    int nt;
    targ a[MAXT];
    run_fn run;
    float f[4];    /* eps, alpha, clamp bounds */
    int64_t i[8];  /* op parameters (see each builder) */
    int conv_impl; /* CPU conv3d implementation for this case (WR_CONV_*) */
    int hkind;     /* H_* */
    void *harg;    /* host argument, hbytes bytes (owned) */
    size_t hbytes;
    void (*fix)(const bcase *c, void **in); /* edits the random inputs (special values) */
};

static bcase g_cases[MAXC];
static int g_ncases;

static bcase *new_case(const char *op, run_fn run, const char *fmt, ...) {
    WR_ASSERT(g_ncases < MAXC);
    bcase *c = &g_cases[g_ncases++];
    memset(c, 0, sizeof *c);
    c->op = op;
    c->run = run;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->desc, sizeof c->desc, fmt, ap);
    va_end(ap);
    return c;
}

#define SHAPE(...)                                                                                 \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]) {                       \
        __VA_ARGS__                                                                                \
    }

static targ *arg(bcase *c, int role, wr_dtype dt, int ndim, const int64_t *shape) {
    WR_ASSERT(c->nt < MAXT);
    targ *a = &c->a[c->nt++];
    a->role = role;
    a->dtype = dt;
    a->ndim = ndim;
    memcpy(a->shape, shape, sizeof(int64_t) * (size_t)ndim);
    a->lo = -1.0f;
    a->hi = 1.0f;
    return a;
}

/* a weight operand (matmul / patch_embed / conv3d w, gather_rows' table) */
static targ *warg(bcase *c, wr_dtype dt, int ndim, const int64_t *shape) {
    targ *a = arg(c, T_IN, dt, ndim, shape);
    a->weight = 1;
    return a;
}

static targ *range(targ *a, float lo, float hi) {
    a->lo = lo;
    a->hi = hi;
    return a;
}

static int64_t targ_nelem(const targ *a) {
    int64_t n = 1;
    for (int d = 0; d < a->ndim; d++) n *= a->shape[d];
    return n;
}

static size_t targ_bytes(const targ *a) {
    return (size_t)targ_nelem(a) * wr_dtype_size(a->dtype);
}

/* 1 when an activation operand (not a weight) of c is BF16 */
static int has_bf16_act(const bcase *c) {
    for (int k = 0; k < c->nt; k++)
        if (!c->a[k].weight && c->a[k].dtype == WR_DTYPE_BF16) return 1;
    return 0;
}

/* A case's bound: its op's, and at least WR_BOPS_BF16 where an activation is BF16 — unless
 * the op is bitwise (exact in f32, and a round to nearest even of equal values is equal). */
static double case_bound(const bcase *c) {
    const double b = g_bounds[op_index(c->op)].nmse;
    return b > 0 && has_bf16_act(c) && b < WR_BOPS_BF16 ? WR_BOPS_BF16 : b;
}

/* Activations of c in BF16: the tensors whose bit is set in mask (bit k: tensor k). */
static void as_bf16(bcase *c, unsigned mask) {
    char *d = c->desc + strlen(c->desc);
    size_t left = sizeof c->desc - strlen(c->desc);
    int w = snprintf(d, left, " bf16:");
    for (int k = 0; k < c->nt; k++) {
        if (!(mask >> k & 1u)) continue;
        WR_ASSERT(!c->a[k].weight);
        c->a[k].dtype = WR_DTYPE_BF16;
        if (w > 0 && (size_t)w < left) w += snprintf(d + w, left - (size_t)w, " t%d", k);
    }
}

static bcase *last(void) {
    return &g_cases[g_ncases - 1];
}

static wr_tensor *T(wr_tensor *t, int64_t k) {
    return k >= 0 ? &t[k] : NULL;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double unif(uint64_t *s) { /* [0, 1) */
    return (double)(splitmix(s) >> 11) / 9007199254740992.0;
}

static uint64_t g_build_rng = 12345; /* host arguments of the table */

static const char *dn(wr_dtype d) {
    return wr_dtype_name(d);
}

/* ---- the ops, one run function each (tensor order = the builder's arg order) ---- */

/* y, x, w, [b]; i0: scaled (f0 = alpha) */
static wr_status run_matmul(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    wr_tensor *b = c->nt > 3 ? &t[3] : NULL;
    return c->i[0] ? wr_op_matmul_scaled(be, &t[0], &t[1], &t[2], b, c->f[0])
                   : wr_op_matmul(be, &t[0], &t[1], &t[2], b);
}

static void case_matmul(int64_t B, int64_t M, int64_t K, int64_t N, wr_dtype wd, int bias,
                        float alpha) {
    bcase *c = new_case("matmul", run_matmul, "%s[%lld, %lld] . w[%lld, %lld] %s%s alpha %g",
                        B > 1 ? "x[2, .." : "x", (long long)M, (long long)K, (long long)N,
                        (long long)K, dn(wd), bias ? " +b" : "", (double)alpha);
    c->f[0] = alpha;
    c->i[0] = alpha != 1.0f;
    if (B > 1) {
        arg(c, T_OUT, WR_DTYPE_F32, SHAPE(B, M, N));
        arg(c, T_IN, WR_DTYPE_F32, SHAPE(B, M, K));
    } else {
        arg(c, T_OUT, WR_DTYPE_F32, SHAPE(M, N));
        arg(c, T_IN, WR_DTYPE_F32, SHAPE(M, K));
    }
    warg(c, wd, SHAPE(N, K));
    if (bias) arg(c, T_IN, WR_DTYPE_F32, SHAPE(N));
}

/* y, x, [w, b]; f0 eps */
static wr_status run_layer_norm(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_layer_norm(be, &t[0], &t[1], c->nt > 2 ? &t[2] : NULL, c->nt > 3 ? &t[3] : NULL,
                            c->f[0]);
}

static void case_layer_norm(int64_t R, int64_t D, int affine, float lo, float hi, float eps) {
    bcase *c = new_case("layer_norm", run_layer_norm, "[%lld, %lld] %s x in [%g, %g) eps %g",
                        (long long)R, (long long)D, affine ? "affine" : "no affine", (double)lo,
                        (double)hi, (double)eps);
    c->f[0] = eps;
    arg(c, T_OUT, WR_DTYPE_F32, SHAPE(R, D));
    range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(R, D)), lo, hi);
    if (affine) {
        range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(D)), 0.5f, 1.5f);
        arg(c, T_IN, WR_DTYPE_F32, SHAPE(D));
    }
}

/* y, x, [w]; f0 eps */
static wr_status run_rms_norm(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_rms_norm(be, &t[0], &t[1], c->nt > 2 ? &t[2] : NULL, c->f[0]);
}

static void case_rms_norm(int64_t R, int64_t D, int weight) {
    bcase *c = new_case("rms_norm", run_rms_norm, "[%lld, %lld]%s", (long long)R, (long long)D,
                        weight ? " w" : " no w");
    c->f[0] = 1e-6f;
    arg(c, T_OUT, WR_DTYPE_F32, SHAPE(R, D));
    range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(R, D)), -2.0f, 3.0f);
    if (weight) range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(D)), 0.5f, 1.5f);
}

/* y, x (or x in place: i0); elementwise activations */
static wr_status run_gelu(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_gelu_tanh(be, &t[0], c->i[0] ? &t[0] : &t[1]);
}

static wr_status run_silu(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_silu(be, &t[0], c->i[0] ? &t[0] : &t[1]);
}

static void case_unary(const char *op, run_fn run, int64_t R, int64_t D, int inplace) {
    bcase *c =
        new_case(op, run, "[%lld, %lld]%s", (long long)R, (long long)D, inplace ? " in place" : "");
    c->i[0] = inplace;
    if (inplace) {
        range(arg(c, T_INOUT, WR_DTYPE_F32, SHAPE(R, D)), -8.0f, 8.0f);
    } else {
        arg(c, T_OUT, WR_DTYPE_F32, SHAPE(R, D));
        range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(R, D)), -8.0f, 8.0f);
    }
}

/* y, a, b (or a in place, b: i0) */
static wr_status run_add(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return c->i[0] ? wr_op_add(be, &t[0], &t[0], &t[1]) : wr_op_add(be, &t[0], &t[1], &t[2]);
}

static wr_status run_mul(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return c->i[0] ? wr_op_mul(be, &t[0], &t[0], &t[1]) : wr_op_mul(be, &t[0], &t[1], &t[2]);
}

static void case_binary(const char *op, run_fn run, int64_t R, int64_t D, int bcast, int inplace) {
    bcase *c = new_case(op, run, "[%lld, %lld] %s b%s", (long long)R, (long long)D,
                        bcast ? "[D]" : "full", inplace ? " in place" : "");
    c->i[0] = inplace;
    if (inplace) {
        arg(c, T_INOUT, WR_DTYPE_F32, SHAPE(R, D));
    } else {
        arg(c, T_OUT, WR_DTYPE_F32, SHAPE(R, D));
        arg(c, T_IN, WR_DTYPE_F32, SHAPE(R, D));
    }
    if (bcast)
        arg(c, T_IN, WR_DTYPE_F32, SHAPE(D));
    else
        arg(c, T_IN, WR_DTYPE_F32, SHAPE(R, D));
}

/* y, x, scale, shift (or x in place, scale, shift: i0) */
static wr_status run_modulate(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return c->i[0] ? wr_op_modulate(be, &t[0], &t[0], &t[1], &t[2])
                   : wr_op_modulate(be, &t[0], &t[1], &t[2], &t[3]);
}

static void case_modulate(int64_t R, int64_t D, int inplace) {
    bcase *c = new_case("modulate", run_modulate, "[%lld, %lld]%s", (long long)R, (long long)D,
                        inplace ? " in place" : "");
    c->i[0] = inplace;
    if (inplace) {
        arg(c, T_INOUT, WR_DTYPE_F32, SHAPE(R, D));
    } else {
        arg(c, T_OUT, WR_DTYPE_F32, SHAPE(R, D));
        arg(c, T_IN, WR_DTYPE_F32, SHAPE(R, D));
    }
    range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(D)), -0.5f, 0.5f);
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(D));
}

/* x (in-out), a, [gate] */
static wr_status run_gated_residual(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_gated_residual(be, &t[0], &t[1], c->nt > 2 ? &t[2] : NULL);
}

static void case_gated_residual(int64_t R, int64_t D, int gate) {
    bcase *c = new_case("gated_residual", run_gated_residual, "[%lld, %lld]%s", (long long)R,
                        (long long)D, gate ? " gate" : " no gate");
    range(arg(c, T_INOUT, WR_DTYPE_F32, SHAPE(R, D)), -4.0f, 4.0f);
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(R, D));
    if (gate) arg(c, T_IN, WR_DTYPE_F32, SHAPE(D));
}

/* x (in-out) [L, NH, HD], cos, sin [L, HD/2] */
static wr_status run_rope(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_rope(be, &t[0], &t[1], &t[2]);
}

static void case_rope(int64_t L, int64_t NH, int64_t HD) {
    bcase *c = new_case("rope", run_rope, "[%lld, %lld, %lld]", (long long)L, (long long)NH,
                        (long long)HD);
    arg(c, T_INOUT, WR_DTYPE_F32, SHAPE(L, NH, HD));
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(L, HD / 2));
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(L, HD / 2));
}

/* out, q, k, v, then lse at i5 and pos_bias at i6 (or -1); i0/i1 q/k chunk, i2 k_valid;
 * f0 scale; harg: key mask */
static wr_status run_attention(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    const wr_attn_params p = {.scale = c->f[0],
                              .key_mask = h,
                              .q_chunk = c->i[0],
                              .k_chunk = c->i[1],
                              .pos_bias = T(t, c->i[6]),
                              .k_valid = c->i[2]};
    return wr_op_attention(be, &t[0], T(t, c->i[5]), &t[1], &t[2], &t[3], &p);
}

enum { M_NONE = 0, M_HOLES, M_ALL, M_PREFIX };

static void case_attention(int64_t Lq, int64_t Lk, int64_t NH, int64_t HD, int64_t qc, int64_t kc,
                           int mask, int bias, int lse, int64_t kvalid) {
    static const char *mname[] = {"", " mask holes", " all masked", " mask prefix"};
    bcase *c = new_case("attention", run_attention,
                        "Lq %lld Lk %lld NH %lld HD %lld chunks %lld/%lld%s%s%s %s %lld",
                        (long long)Lq, (long long)Lk, (long long)NH, (long long)HD, (long long)qc,
                        (long long)kc, mname[mask], bias ? " pos_bias" : "", lse ? " lse" : "",
                        mask == M_PREFIX ? "keys" : "k_valid", (long long)kvalid);
    c->f[0] = 1.0f / sqrtf((float)HD);
    c->i[0] = qc;
    c->i[1] = kc;
    c->i[2] = kvalid;
    /* scores of std ~3 (q, k uniform in [-3, 3)): a peaked softmax, not a flat one */
    arg(c, T_OUT, WR_DTYPE_F32, SHAPE(Lq, NH, HD));
    range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(Lq, NH, HD)), -3.0f, 3.0f);
    range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(Lk, NH, HD)), -3.0f, 3.0f);
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(Lk, NH, HD));
    c->i[5] = c->i[6] = -1;
    if (lse) {
        c->i[5] = c->nt;
        arg(c, T_OUT, WR_DTYPE_F32, SHAPE(NH, Lq))->neg_inf = 1;
    }
    if (bias) {
        c->i[6] = c->nt;
        range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(NH, Lq + Lk - 1)), -2.0f, 2.0f);
    }
    if (mask != M_NONE) {
        uint8_t *m = malloc((size_t)Lk);
        for (int64_t j = 0; j < Lk; j++)
            m[j] = mask == M_HOLES ? (j % 5) != 3 && j < Lk - 3 : mask == M_PREFIX ? j < kvalid : 0;
        c->hkind = H_MASK;
        c->harg = m;
        c->hbytes = (size_t)Lk;
        if (mask == M_PREFIX) c->i[2] = 0; /* the same keys through the mask instead */
    }
}

/* y, x, w, [b]; i0 n0, i2: the _rows form */
static wr_status run_patch_embed(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    wr_tensor *b = c->nt > 3 ? &t[3] : NULL;
    return c->i[2] ? wr_op_patch_embed_rows(be, &t[0], &t[1], &t[2], b, c->i[0])
                   : wr_op_patch_embed(be, &t[0], &t[1], &t[2], b);
}

static void case_patch_embed(int64_t C, int64_t F, int64_t H, int64_t W, int64_t pt, int64_t ph,
                             int64_t pw, int64_t D, wr_dtype wd, int bias, int64_t n0, int64_t n) {
    const int64_t L = (F / pt) * (H / ph) * (W / pw);
    bcase *c = new_case(
        "patch_embed", run_patch_embed,
        "x[%lld, %lld, %lld, %lld] patch %lldx%lldx%lld D %lld w %s%s rows %lld+%lld", (long long)C,
        (long long)F, (long long)H, (long long)W, (long long)pt, (long long)ph, (long long)pw,
        (long long)D, dn(wd), bias ? " +b" : "", (long long)n0, (long long)(n < 0 ? L : n));
    c->i[0] = n0;
    c->i[2] = n >= 0;
    arg(c, T_OUT, WR_DTYPE_F32, SHAPE(n < 0 ? L : n, D));
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(C, F, H, W));
    warg(c, wd, SHAPE(D, C, pt, ph, pw));
    if (bias) arg(c, T_IN, WR_DTYPE_F32, SHAPE(D));
}

/* o, lse (in-out), o2, lse2 */
static wr_status run_attn_merge(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_attn_merge(be, &t[0], &t[1], &t[2], &t[3]);
}

/* rows without keys on either side (lse = -inf), on both at index 1 */
static void fix_merge(const bcase *c, void **in) {
    float *l1 = in[1], *l2 = in[3];
    const int64_t n = targ_nelem(&c->a[1]);
    for (int64_t k = 0; k < n; k++) {
        if (k % 5 == 1) l1[k] = -INFINITY;
        if (k % 7 == 1) l2[k] = -INFINITY;
    }
}

static void case_attn_merge(int64_t Lq, int64_t NH, int64_t HD) {
    bcase *c = new_case("attn_merge", run_attn_merge, "[%lld, %lld, %lld]", (long long)Lq,
                        (long long)NH, (long long)HD);
    arg(c, T_INOUT, WR_DTYPE_F32, SHAPE(Lq, NH, HD));
    range(arg(c, T_INOUT, WR_DTYPE_F32, SHAPE(NH, Lq)), -5.0f, 5.0f)->neg_inf = 1;
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(Lq, NH, HD));
    range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(NH, Lq)), -5.0f, 5.0f);
    c->fix = fix_merge;
}

/* dst (in-out, rows x dld floats), src (rows x sld); i0 dld, i1 sld, i2 rows, i3 cols */
static wr_status run_copy2d(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_copy2d(be, t[0].data, c->i[0], t[1].data, c->i[1], c->i[2], c->i[3]);
}

static void case_copy2d(int64_t rows, int64_t cols, int64_t dld, int64_t sld) {
    bcase *c = new_case("copy2d", run_copy2d, "%lld x %lld, ld %lld <- %lld", (long long)rows,
                        (long long)cols, (long long)dld, (long long)sld);
    c->i[0] = dld;
    c->i[1] = sld;
    c->i[2] = rows;
    c->i[3] = cols;
    arg(c, T_INOUT, WR_DTYPE_F32, SHAPE(rows * dld));
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(rows * sld));
}

/* out, y; i0..i2 pt ph pw */
static wr_status run_unpatchify(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_unpatchify(be, &t[0], &t[1], (int)c->i[0], (int)c->i[1], (int)c->i[2]);
}

static void case_unpatchify(int64_t C, int64_t F, int64_t H, int64_t W, int64_t pt, int64_t ph,
                            int64_t pw) {
    bcase *c = new_case("unpatchify", run_unpatchify, "out[%lld, %lld, %lld, %lld] %lldx%lldx%lld",
                        (long long)C, (long long)F, (long long)H, (long long)W, (long long)pt,
                        (long long)ph, (long long)pw);
    c->i[0] = pt;
    c->i[1] = ph;
    c->i[2] = pw;
    arg(c, T_OUT, WR_DTYPE_F32, SHAPE(C, F, H, W));
    arg(c, T_IN, WR_DTYPE_F32, SHAPE((F / pt) * (H / ph) * (W / pw), pt * ph * pw * C));
}

/* y, x, w, then b at i3 and cache at i4 (or -1); i0..i2 pad_t, pad_h, pad_w */
static wr_status run_conv3d(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    const wr_conv_params p = {c->i[0], c->i[1], c->i[2]};
    return wr_op_conv3d(be, &t[0], &t[1], T(t, c->i[4]), &t[2], T(t, c->i[3]), &p);
}

static void case_conv3d(int impl, int64_t ci, int64_t co, int64_t tc, int64_t tx, int64_t h,
                        int64_t w, int64_t kt, int64_t kh, int64_t kw, int64_t pad_t, int64_t ph,
                        int64_t pw, int w2d, wr_dtype wd, int bias) {
    const int64_t To = pad_t + tc + tx - kt + 1, Ho = h + 2 * ph - kh + 1, Wo = w + 2 * pw - kw + 1;
    bcase *c = new_case("conv3d", run_conv3d,
                        "%s ci %lld co %lld cache %lld x %lld %lldx%lld k %lldx%lldx%lld%s pad "
                        "%lld/%lld/%lld w %s%s",
                        impl == WR_CONV_DIRECT ? "direct" : "gemm", (long long)ci, (long long)co,
                        (long long)tc, (long long)tx, (long long)h, (long long)w, (long long)kt,
                        (long long)kh, (long long)kw, w2d ? " (2-D w)" : "", (long long)pad_t,
                        (long long)ph, (long long)pw, dn(wd), bias ? " +b" : "");
    c->conv_impl = impl;
    c->i[0] = pad_t;
    c->i[1] = ph;
    c->i[2] = pw;
    c->i[3] = c->i[4] = -1;
    arg(c, T_OUT, WR_DTYPE_F32, SHAPE(co, To, Ho, Wo));
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(ci, tx, h, w));
    if (w2d)
        warg(c, wd, SHAPE(co, ci, kh, kw));
    else
        warg(c, wd, SHAPE(co, ci, kt, kh, kw));
    if (bias) {
        c->i[3] = c->nt;
        arg(c, T_IN, WR_DTYPE_F32, SHAPE(co));
    }
    if (tc) {
        c->i[4] = c->nt;
        arg(c, T_IN, WR_DTYPE_F32, SHAPE(ci, tc, h, w));
    }
}

/* both CPU implementations (the direct one only where the CPU has AVX-512F) */
static void case_conv3d_both(int64_t ci, int64_t co, int64_t tc, int64_t tx, int64_t h, int64_t w,
                             int64_t kt, int64_t kh, int64_t kw, int64_t pad_t, int64_t ph,
                             int64_t pw, int w2d, wr_dtype wd, int bias) {
    case_conv3d(WR_CONV_GEMM, ci, co, tc, tx, h, w, kt, kh, kw, pad_t, ph, pw, w2d, wd, bias);
    if (wr_conv_direct_supported())
        case_conv3d(WR_CONV_DIRECT, ci, co, tc, tx, h, w, kt, kh, kw, pad_t, ph, pw, w2d, wd, bias);
}

static wr_status run_upsample2x(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_upsample2x(be, &t[0], &t[1]);
}

static void case_upsample2x(int64_t C, int64_t Tn, int64_t H, int64_t W) {
    bcase *c = new_case("upsample2x", run_upsample2x, "[%lld, %lld, %lld, %lld]", (long long)C,
                        (long long)Tn, (long long)H, (long long)W);
    arg(c, T_OUT, WR_DTYPE_F32, SHAPE(C, Tn, 2 * H, 2 * W));
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(C, Tn, H, W));
}

/* y, x [C, ...], gamma [C] */
static wr_status run_rms_norm_channels(wr_backend *be, wr_tensor *t, const bcase *c,
                                       const void *h) {
    return wr_op_rms_norm_channels(be, &t[0], &t[1], &t[2]);
}

static void case_rms_norm_channels(int ndim, const int64_t *shape) {
    char s[80];
    bcase *c = new_case("rms_norm_channels", run_rms_norm_channels, "%s",
                        wr_shape_str(s, sizeof s, ndim, shape));
    arg(c, T_OUT, WR_DTYPE_F32, ndim, shape);
    range(arg(c, T_IN, WR_DTYPE_F32, ndim, shape), -3.0f, 2.0f);
    range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(shape[0])), 0.5f, 1.5f);
}

static wr_status run_transpose(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_transpose(be, &t[0], &t[1]);
}

static void case_transpose(int64_t M, int64_t N) {
    bcase *c = new_case("transpose", run_transpose, "[%lld, %lld]", (long long)M, (long long)N);
    arg(c, T_OUT, WR_DTYPE_F32, SHAPE(N, M));
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(M, N));
}

/* y, x (or x in place: i0); f0/f1 lo/hi */
static wr_status run_clamp(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_clamp(be, &t[0], c->i[0] ? &t[0] : &t[1], c->f[0], c->f[1]);
}

static void case_clamp(int64_t R, int64_t D, float lo, float hi, int inplace) {
    bcase *c = new_case("clamp", run_clamp, "[%lld, %lld] [%g, %g]%s", (long long)R, (long long)D,
                        (double)lo, (double)hi, inplace ? " in place" : "");
    c->i[0] = inplace;
    c->f[0] = lo;
    c->f[1] = hi;
    if (inplace) {
        range(arg(c, T_INOUT, WR_DTYPE_F32, SHAPE(R, D)), -2.0f, 2.0f);
    } else {
        arg(c, T_OUT, WR_DTYPE_F32, SHAPE(R, D));
        range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(R, D)), -2.0f, 2.0f);
    }
}

/* y, x, scale, shift (or x in place: i0) */
static wr_status run_channel_affine(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return c->i[0] ? wr_op_channel_affine(be, &t[0], &t[0], &t[1], &t[2])
                   : wr_op_channel_affine(be, &t[0], &t[1], &t[2], &t[3]);
}

static void case_channel_affine(int ndim, const int64_t *shape, int inplace) {
    char s[80];
    bcase *c = new_case("channel_affine", run_channel_affine, "%s%s",
                        wr_shape_str(s, sizeof s, ndim, shape), inplace ? " in place" : "");
    c->i[0] = inplace;
    if (inplace) {
        arg(c, T_INOUT, WR_DTYPE_F32, ndim, shape);
    } else {
        arg(c, T_OUT, WR_DTYPE_F32, ndim, shape);
        arg(c, T_IN, WR_DTYPE_F32, ndim, shape);
    }
    range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(shape[0])), 0.5f, 2.0f);
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(shape[0]));
}

/* y [n, D], table [V, D]; harg: n indices */
static wr_status run_gather_rows(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_gather_rows(be, &t[0], &t[1], h);
}

static void case_gather_rows(int64_t V, int64_t D, wr_dtype td, int64_t n) {
    bcase *c = new_case("gather_rows", run_gather_rows, "table[%lld, %lld] %s, %lld rows",
                        (long long)V, (long long)D, dn(td), (long long)n);
    arg(c, T_OUT, WR_DTYPE_F32, SHAPE(n, D));
    range(warg(c, td, SHAPE(V, D)), -4.0f, 4.0f);
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t k = 0; k < n; k++) idx[k] = (int32_t)(splitmix(&g_build_rng) % (uint64_t)V);
    if (n > 1) idx[n - 1] = idx[0]; /* a repeated row */
    c->hkind = H_IDX;
    c->harg = idx;
    c->hbytes = sizeof(int32_t) * (size_t)n;
}

/* y, x, scale, shift; f0 eps */
static wr_status run_layer_norm_modulate(wr_backend *be, wr_tensor *t, const bcase *c,
                                         const void *h) {
    return wr_op_layer_norm_modulate(be, &t[0], &t[1], &t[2], &t[3], c->f[0], NULL);
}

static void case_layer_norm_modulate(int64_t R, int64_t D) {
    bcase *c = new_case("layer_norm_modulate", run_layer_norm_modulate, "[%lld, %lld]",
                        (long long)R, (long long)D);
    c->f[0] = 1e-6f;
    arg(c, T_OUT, WR_DTYPE_F32, SHAPE(R, D));
    range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(R, D)), -3.0f, 5.0f);
    range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(D)), -0.5f, 0.5f);
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(D));
}

/* x (in-out) [L, NH, HD], w [NH*HD], cos, sin; f0 eps */
static wr_status run_rms_norm_rope(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_rms_norm_rope(be, &t[0], &t[1], c->f[0], &t[2], &t[3]);
}

static void case_rms_norm_rope(int64_t L, int64_t NH, int64_t HD) {
    bcase *c = new_case("rms_norm_rope", run_rms_norm_rope, "[%lld, %lld, %lld]", (long long)L,
                        (long long)NH, (long long)HD);
    c->f[0] = 1e-6f;
    range(arg(c, T_INOUT, WR_DTYPE_F32, SHAPE(L, NH, HD)), -2.0f, 3.0f);
    range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(NH * HD)), 0.5f, 1.5f);
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(L, HD / 2));
    arg(c, T_IN, WR_DTYPE_F32, SHAPE(L, HD / 2));
}

/* y, x, w, [b]; f0 alpha */
static wr_status run_linear_gelu(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_linear_gelu(be, &t[0], &t[1], &t[2], c->nt > 3 ? &t[3] : NULL, c->f[0]);
}

static void case_linear_gelu(int64_t M, int64_t K, int64_t N, wr_dtype wd, int bias, float alpha) {
    bcase *c = new_case("linear_gelu", run_linear_gelu,
                        "x[%lld, %lld] . w[%lld, %lld] %s%s alpha %g", (long long)M, (long long)K,
                        (long long)N, (long long)K, dn(wd), bias ? " +b" : "", (double)alpha);
    c->f[0] = alpha;
    arg(c, T_OUT, WR_DTYPE_F32, SHAPE(M, N));
    range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(M, K)), -0.1f, 0.1f); /* pre-activations ~ N(0, 1) */
    warg(c, wd, SHAPE(N, K));
    if (bias) arg(c, T_IN, WR_DTYPE_F32, SHAPE(N));
}

/* x (in-out), a, w, tmp, then b at i0 and gate at i1 (or -1); f0 alpha */
static wr_status run_linear_residual(wr_backend *be, wr_tensor *t, const bcase *c, const void *h) {
    return wr_op_linear_residual(be, &t[0], &t[1], &t[2], T(t, c->i[0]), c->f[0], T(t, c->i[1]),
                                 &t[3]);
}

static void case_linear_residual(int64_t M, int64_t K, int64_t N, wr_dtype wd, int bias, int gate,
                                 float alpha) {
    bcase *c = new_case("linear_residual", run_linear_residual,
                        "a[%lld, %lld] . w[%lld, %lld] %s%s%s alpha %g", (long long)M, (long long)K,
                        (long long)N, (long long)K, dn(wd), bias ? " +b" : "",
                        gate ? " gate" : " no gate", (double)alpha);
    c->f[0] = alpha;
    c->i[0] = c->i[1] = -1;
    range(arg(c, T_INOUT, WR_DTYPE_F32, SHAPE(M, N)), -4.0f, 4.0f);
    range(arg(c, T_IN, WR_DTYPE_F32, SHAPE(M, K)), -0.1f, 0.1f);
    warg(c, wd, SHAPE(N, K));
    arg(c, T_TMP, WR_DTYPE_F32, SHAPE(M, N));
    if (bias) {
        c->i[0] = c->nt;
        arg(c, T_IN, WR_DTYPE_F32, SHAPE(N));
    }
    if (gate) {
        c->i[1] = c->nt;
        arg(c, T_IN, WR_DTYPE_F32, SHAPE(N));
    }
}

/* The table. Lengths 1, 7, 33, 257 are off every CPU tile (attention's 128-query chunks and
 * 512-key blocks, the 4096-element activation spans, 16-row weight panels, 32-wide transpose
 * tiles); the Wan widths (D 1536 / 5120, HD 128, FF 8960, 16 latent channels, the VAE's 96 /
 * 384) appear where a case stays cheap. */
static void build_table(void) {
    const wr_dtype F32 = WR_DTYPE_F32, BF16 = WR_DTYPE_BF16, F16 = WR_DTYPE_F16,
                   E4M3 = WR_DTYPE_F8_E4M3, E5M2 = WR_DTYPE_F8_E5M2;
    /* matmul: every weight dtype, with / without bias, scaled (FP8 storage), 3-D x */
    case_matmul(1, 1, 7, 5, F32, 1, 1.0f);
    case_matmul(1, 7, 33, 257, BF16, 0, 1.0f);
    case_matmul(1, 33, 257, 31, F16, 1, 1.0f);
    case_matmul(1, 257, 64, 96, E4M3, 1, 0.37f);
    case_matmul(1, 13, 130, 17, E5M2, 0, 2.5f);
    case_matmul(2, 7, 33, 19, F32, 1, 1.0f);
    case_matmul(1, 7, 1536, 8960, BF16, 1, 1.0f);   /* the 1.3B FFN up-projection */
    case_matmul(1, 7, 8960, 1536, E4M3, 1, 0.021f); /* its down-projection, FP8: panels of w */
    case_matmul(1, 3, 5120, 257, F32, 0, 1.0f);     /* the 14B width */
    /* layer_norm / rms_norm */
    case_layer_norm(1, 1536, 1, -1.0f, 1.0f, 1e-6f);
    case_layer_norm(7, 5120, 0, -1.0f, 1.0f, 1e-6f);
    case_layer_norm(33, 13, 1, 3.0f, 5.0f, 1e-5f); /* a mean far from 0 */
    case_layer_norm(257, 64, 0, -1.0f, 1.0f, 1e-6f);
    case_rms_norm(1, 128, 1);
    case_rms_norm(33, 5120, 1);
    case_rms_norm(7, 1536, 0);
    case_rms_norm(257, 13, 1);
    /* activations: the 4096-element span boundary, in place */
    case_unary("gelu_tanh", run_gelu, 1, 1, 0);
    case_unary("gelu_tanh", run_gelu, 1, 4097, 0);
    case_unary("gelu_tanh", run_gelu, 7, 8960, 0);
    case_unary("gelu_tanh", run_gelu, 33, 13, 1);
    case_unary("silu", run_silu, 1, 7, 0);
    case_unary("silu", run_silu, 3, 4099, 0);
    case_unary("silu", run_silu, 257, 33, 1);
    /* add / mul: full, broadcast, in place */
    case_binary("add", run_add, 1, 1, 0, 0);
    case_binary("add", run_add, 7, 33, 0, 0);
    case_binary("add", run_add, 33, 1536, 1, 0);
    case_binary("add", run_add, 257, 13, 1, 1);
    case_binary("mul", run_mul, 7, 33, 0, 0);
    case_binary("mul", run_mul, 33, 5120, 1, 0);
    case_binary("mul", run_mul, 1, 7, 0, 1);
    /* modulation, gated residual, rope */
    case_modulate(7, 33, 0);
    case_modulate(1, 1536, 0);
    case_modulate(33, 5120, 1);
    case_modulate(257, 7, 0);
    case_gated_residual(33, 1536, 1);
    case_gated_residual(7, 5120, 0);
    case_gated_residual(257, 13, 1);
    case_rope(1, 1, 2);
    case_rope(7, 12, 128);
    case_rope(33, 3, 10);
    case_rope(257, 2, 128);
    /* attention: lse, position bias, key mask, k_valid, chunks off the lengths */
    case_attention(1, 1, 1, 8, 0, 0, M_NONE, 0, 0, 0);
    case_attention(7, 33, 3, 16, 0, 0, M_NONE, 0, 1, 0);
    case_attention(33, 257, 2, 128, 0, 0, M_NONE, 0, 1, 0);
    case_attention(257, 257, 2, 128, 0, 0, M_NONE, 0, 0, 0);    /* 128 + 128 + 1 queries */
    case_attention(257, 257, 2, 128, 64, 100, M_NONE, 0, 1, 0); /* 3 key blocks */
    case_attention(37, 53, 3, 8, 5, 7, M_HOLES, 1, 1, 0);
    case_attention(37, 53, 3, 8, 1, 1, M_HOLES, 0, 1, 0);
    case_attention(33, 33, 4, 64, 16, 64, M_NONE, 1, 1, 29); /* T5: bias + padded text */
    case_attention(7, 33, 2, 64, 0, 0, M_NONE, 0, 1, 20);
    case_attention(7, 33, 2, 64, 0, 0, M_PREFIX, 0, 1, 20);  /* the same keys as a mask */
    case_attention(33, 512, 2, 128, 0, 0, M_NONE, 0, 0, 37); /* cross-attention to the text */
    case_attention(7, 512, 1, 64, 0, 0, M_NONE, 1, 1, 300);  /* T5 width, key blocks 512 */
    case_attention(7, 13, 2, 8, 4, 4, M_ALL, 1, 1, 0);       /* no keys: zeros, lse -inf */
    /* patch embedding (Wan: 16 channels, patch 1x2x2, D 1536), its rows form, unpatchify */
    case_patch_embed(16, 2, 6, 10, 1, 2, 2, 1536, BF16, 1, 0, -1);
    case_patch_embed(16, 2, 6, 10, 1, 2, 2, 1536, BF16, 1, 7, 13);
    case_patch_embed(3, 4, 6, 10, 2, 2, 2, 7, F32, 0, 0, -1);
    case_patch_embed(5, 3, 3, 5, 1, 1, 1, 33, F16, 1, 44, 1);
    case_unpatchify(16, 2, 6, 10, 1, 2, 2);
    case_unpatchify(3, 4, 6, 10, 2, 2, 2);
    case_unpatchify(1, 1, 1, 1, 1, 1, 1);
    case_attn_merge(1, 1, 8);
    case_attn_merge(7, 3, 16);
    case_attn_merge(257, 2, 128);
    case_copy2d(1, 1, 1, 1);
    case_copy2d(7, 13, 20, 15);
    case_copy2d(33, 257, 300, 257);
    /* conv3d: first frame (zero frames), cache, 2-D weights, time-only, pointwise, unequal
     * paddings, several row bands, narrow channel counts, the VAE width */
    /*             ci  co tc tx   h    w kt kh kw pt ph pw 2d  w     bias */
    case_conv3d_both(5, 7, 0, 1, 6, 9, 3, 3, 3, 2, 1, 1, 0, F32, 1);
    case_conv3d_both(13, 25, 2, 1, 5, 37, 3, 3, 3, 0, 1, 1, 0, BF16, 1);
    case_conv3d_both(8, 12, 2, 2, 3, 16, 3, 3, 3, 0, 1, 1, 0, F32, 1);
    case_conv3d_both(16, 13, 1, 2, 4, 4, 3, 1, 1, 0, 0, 0, 0, F32, 0);
    case_conv3d_both(6, 5, 0, 3, 7, 5, 1, 3, 3, 0, 1, 1, 1, F32, 1);
    case_conv3d_both(4, 3, 0, 2, 2, 2, 3, 3, 3, 4, 1, 1, 0, F16, 1);
    case_conv3d_both(9, 14, 0, 2, 5, 5, 1, 1, 1, 0, 0, 0, 0, BF16, 1);
    case_conv3d_both(3, 2, 1, 1, 4, 33, 3, 3, 3, 1, 0, 2, 0, F32, 1);
    case_conv3d_both(64, 5, 2, 1, 40, 300, 3, 3, 3, 0, 1, 1, 0, F32, 1);
    case_conv3d_both(96, 96, 2, 1, 9, 17, 3, 3, 3, 0, 1, 1, 0, BF16, 1);
    case_conv3d_both(3, 96, 0, 1, 7, 9, 3, 3, 3, 2, 1, 1, 0, F32, 1); /* the VAE's conv_in */
    case_conv3d_both(384, 7, 0, 1, 5, 7, 1, 3, 3, 0, 1, 1, 1, BF16, 1);
    /* VAE helpers */
    case_upsample2x(1, 1, 1, 1);
    case_upsample2x(3, 1, 5, 7);
    case_upsample2x(96, 2, 9, 17);
    case_rms_norm_channels(SHAPE(3, 257));
    case_rms_norm_channels(SHAPE(96, 2, 9, 17));
    case_rms_norm_channels(SHAPE(384, 1, 5, 7));
    case_rms_norm_channels(SHAPE(1, 33));
    case_transpose(1, 1);
    case_transpose(7, 33);
    case_transpose(257, 1536);
    case_transpose(33, 5120);
    case_clamp(7, 33, -0.5f, 0.5f, 0);
    case_clamp(1, 1, -1.0f, 1.0f, 0);
    case_clamp(257, 13, 0.0f, 0.0f, 1);
    case_channel_affine(SHAPE(3, 257), 0);
    case_channel_affine(SHAPE(96, 2, 9, 17), 0);
    case_channel_affine(SHAPE(7, 33), 1);
    /* gather_rows: every table dtype */
    case_gather_rows(7, 13, F32, 1);
    case_gather_rows(301, 4096, BF16, 33); /* T5's width */
    case_gather_rows(100, 1536, F16, 7);
    case_gather_rows(50, 64, E4M3, 257);
    case_gather_rows(50, 64, E5M2, 33);
    /* fused ops */
    case_layer_norm_modulate(1, 1);
    case_layer_norm_modulate(33, 1536);
    case_layer_norm_modulate(7, 5120);
    case_layer_norm_modulate(257, 13);
    case_rms_norm_rope(1, 1, 2);
    case_rms_norm_rope(7, 12, 128); /* q/k of the 1.3B: rms over D = 1536 */
    case_rms_norm_rope(33, 3, 10);
    case_rms_norm_rope(257, 2, 128);
    case_linear_gelu(7, 1536, 8960, BF16, 1, 1.0f);
    case_linear_gelu(33, 13, 31, F32, 0, 1.0f);
    case_linear_gelu(5, 64, 33, E4M3, 1, 0.5f);
    case_linear_residual(7, 8960, 1536, E5M2, 1, 1, 0.031f);
    case_linear_residual(33, 31, 13, F32, 0, 0, 1.0f);
    case_linear_residual(1, 7, 5, BF16, 1, 1, 1.0f);
    case_linear_residual(257, 64, 17, F16, 1, 0, 1.0f);
    /* BF16 activations where a GPU keeps them (the GEMM dtype: the normed hidden states, q, k,
     * v, the attention output, the FFN hidden) and a few more; the residual stream, the lse and
     * the modulation vectors stay f32. The mask's bit k is tensor k (the builder's order). */
    case_matmul(1, 7, 1536, 1536, BF16, 1, 1.0f);
    as_bf16(last(), 0x3); /* q = to_q(norm(x)): y, x */
    case_matmul(1, 33, 257, 31, E4M3, 1, 0.37f);
    as_bf16(last(), 0x2); /* x only: y f32 */
    case_layer_norm_modulate(33, 1536);
    as_bf16(last(), 0x1); /* f32 x -> bf16 y, as the DiT runs it */
    case_rms_norm_rope(7, 12, 128);
    as_bf16(last(), 0x1);
    case_rms_norm_rope(33, 3, 10);
    as_bf16(last(), 0x1);
    case_attention(33, 257, 2, 128, 0, 0, M_NONE, 0, 1, 0);
    as_bf16(last(), 0xF); /* out, q, k, v; lse f32 */
    case_attention(7, 512, 1, 64, 0, 0, M_NONE, 1, 1, 300);
    as_bf16(last(), 0xF);
    case_attention(37, 53, 3, 8, 5, 7, M_HOLES, 1, 1, 0);
    as_bf16(last(), 0xF);
    case_linear_gelu(7, 1536, 8960, BF16, 1, 1.0f);
    as_bf16(last(), 0x3); /* the FFN hidden */
    case_linear_residual(7, 8960, 1536, E5M2, 1, 1, 0.031f);
    as_bf16(last(), 0x2); /* a: the FFN hidden; x (the residual) f32 */
    case_unary("gelu_tanh", run_gelu, 7, 8960, 1);
    as_bf16(last(), 0x1);
    case_unary("silu", run_silu, 1, 7, 0);
    as_bf16(last(), 0x3);
    case_binary("add", run_add, 33, 1536, 1, 0);
    as_bf16(last(), 0x3); /* y, a; b f32 */
    case_binary("mul", run_mul, 7, 33, 0, 1);
    as_bf16(last(), 0x3); /* in place */
    case_gated_residual(33, 1536, 1);
    as_bf16(last(), 0x2); /* f32 x += bf16 a * gate */
    case_modulate(33, 5120, 0);
    as_bf16(last(), 0x1);
    case_layer_norm(7, 5120, 0, -1.0f, 1.0f, 1e-6f);
    as_bf16(last(), 0x3);
    case_rms_norm(33, 5120, 1);
    as_bf16(last(), 0x3);
    case_transpose(7, 33);
    as_bf16(last(), 0x3);
    case_clamp(7, 33, -0.5f, 0.5f, 0);
    as_bf16(last(), 0x3);
    case_gather_rows(301, 4096, BF16, 33);
    as_bf16(last(), 0x1);
}

/* ---- running a case on one backend ---- */

typedef struct tested {
    const char *name;
    wr_backend *be;
    int exact; /* the plain CPU's kernels: bitwise */
    /* per op: cases run, unsupported, worst NMSE */
    int runs[NOPS], unsupported[NOPS];
    double worst[NOPS];
} tested;

#define MAXB 4
static wr_backend *g_ref;
static tested g_bt[MAXB];
static int g_nbt;
static int g_verbose;

enum { RUN_OK = 0, RUN_UNSUPPORTED, RUN_FAIL };

static uint8_t guard_byte(size_t i, int k) {
    return (uint8_t)(0xA5u ^ (unsigned)(i * 29u + (unsigned)k * 7u));
}

/* The plain CPU's (or any backend's) results of one case: host copies of the OUT / INOUT
 * tensors, NULL elsewhere. */
typedef struct results {
    void *raw[MAXT]; /* the bytes, in the tensor's dtype */
    float *t[MAXT];  /* the same values as f32 */
} results;

static void results_free(results *r) {
    for (int k = 0; k < MAXT; k++) free(r->raw[k]), free(r->t[k]);
    memset(r, 0, sizeof *r);
}

static void fill_nan(void *p, wr_dtype dt, int64_t n) {
    if (dt == WR_DTYPE_F32) {
        const uint32_t bits = 0x7FC0DEADu; /* a quiet NaN with a payload */
        for (int64_t i = 0; i < n; i++) memcpy((char *)p + 4 * i, &bits, 4);
    } else {
        memset(p, 0xFF, (size_t)n * wr_dtype_size(dt)); /* NaN in bf16 / f16 / fp8 */
    }
}

/*
 * Runs c on be with the host inputs in[] (one per IN / INOUT tensor): device tensors with
 * guards, uploaded from a staging image that is overwritten as soon as the upload returns;
 * outputs start as NaN; the host argument and the tensor descriptors are overwritten right
 * after the op is issued. RUN_OK with out filled, RUN_UNSUPPORTED (the backend has no slot),
 * or RUN_FAIL with why.
 */
static int run_case(wr_backend *be, const bcase *c, void *const *in, results *out, char *why,
                    size_t nwhy) {
    void *dev[MAXT] = {0};
    uint8_t *img[MAXT] = {0};
    wr_tensor t[MAXT];
    void *work = NULL;
    int rc = RUN_FAIL;
    wr_status st = WR_OK;
    memset(out, 0, sizeof *out);
    why[0] = 0;
    for (int k = 0; k < c->nt; k++) {
        const targ *a = &c->a[k];
        const size_t nb = targ_bytes(a), tot = 2 * GUARD + nb;
        img[k] = malloc(tot);
        ck_assert_ptr_nonnull(img[k]);
        st = be->iface->alloc(be, &dev[k], tot);
        if (st != WR_OK) {
            snprintf(why, nwhy, "alloc of %zu bytes: %s: %s", tot, wr_status_name(st),
                     wr_error_detail());
            goto done;
        }
        for (size_t i = 0; i < GUARD; i++) {
            img[k][i] = guard_byte(i, k);
            img[k][GUARD + nb + i] = guard_byte(i + GUARD, k);
        }
        if (a->role == T_IN || a->role == T_INOUT)
            memcpy(img[k] + GUARD, in[k], nb);
        else
            fill_nan(img[k] + GUARD, a->dtype, targ_nelem(a));
        st = wr_upload(be, dev[k], img[k], tot);
        if (st != WR_OK) {
            snprintf(why, nwhy, "upload of tensor %d: %s: %s", k, wr_status_name(st),
                     wr_error_detail());
            goto done;
        }
        memset(img[k], 0x5A, tot); /* a synchronous upload has read its source */
        t[k] = wr_tensor_make((char *)dev[k] + GUARD, a->dtype, a->ndim, a->shape);
    }
    if (c->hbytes) {
        work = malloc(c->hbytes);
        memcpy(work, c->harg, c->hbytes);
    }
    st = c->run(be, t, c, work);
    if (st == WR_ERR_UNSUPPORTED) {
        snprintf(why, nwhy, "%s", wr_error_detail());
        rc = RUN_UNSUPPORTED;
        goto done;
    }
    if (st != WR_OK) {
        snprintf(why, nwhy, "the op failed: %s: %s", wr_status_name(st), wr_error_detail());
        goto done;
    }
    /* the op was issued: its arguments are the backend's business now (kernel arguments) */
    memset(t, 0, sizeof t);
    if (c->hkind == H_MASK) {
        for (size_t j = 0; j < c->hbytes; j++) ((uint8_t *)work)[j] ^= 1;
    } else if (c->hkind == H_IDX) {
        int32_t *idx = work;
        const int64_t V = c->a[1].shape[0];
        for (size_t j = 0; j < c->hbytes / sizeof(int32_t); j++)
            idx[j] = (int32_t)((idx[j] + 1) % V);
    }
    if (be->iface->sync && (st = be->iface->sync(be)) != WR_OK) {
        snprintf(why, nwhy, "sync after the op: %s: %s", wr_status_name(st), wr_error_detail());
        goto done;
    }
    for (int k = 0; k < c->nt; k++) {
        const targ *a = &c->a[k];
        const size_t nb = targ_bytes(a), tot = 2 * GUARD + nb;
        st = wr_download(be, img[k], dev[k], tot);
        if (st != WR_OK) {
            snprintf(why, nwhy, "download of tensor %d: %s: %s", k, wr_status_name(st),
                     wr_error_detail());
            goto done;
        }
        for (size_t i = 0; i < 2 * GUARD; i++) {
            const size_t at = i < GUARD ? i : nb + i;
            if (img[k][at] != guard_byte(i, k)) {
                snprintf(why, nwhy, "tensor %d: guard byte %s the data at %+lld changed", k,
                         i < GUARD ? "before" : "after",
                         i < GUARD ? (long long)i - GUARD : (long long)(i - GUARD));
                goto done;
            }
        }
        if (a->role == T_IN && memcmp(img[k] + GUARD, in[k], nb) != 0) {
            snprintf(why, nwhy, "input tensor %d was modified", k);
            goto done;
        }
        if (a->role == T_OUT || a->role == T_INOUT) {
            const int64_t n = targ_nelem(a);
            out->raw[k] = malloc(nb ? nb : 1);
            memcpy(out->raw[k], img[k] + GUARD, nb);
            out->t[k] = malloc(sizeof(float) * (size_t)(n ? n : 1));
            ck_assert_int_eq(wr_dtype_convert(out->t[k], WR_DTYPE_F32, out->raw[k], a->dtype, n),
                             WR_OK);
        }
    }
    rc = RUN_OK;
done:
    for (int k = 0; k < c->nt; k++) {
        if (dev[k]) be->iface->free(be, dev[k]);
        free(img[k]);
    }
    free(work);
    if (rc != RUN_OK) results_free(out);
    return rc;
}

/* The first value that is not finite (-inf allowed where legal), or -1. */
static int64_t first_bad(const float *v, int64_t n, int neg_inf) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i]) && !(neg_inf && v[i] == -INFINITY)) return i;
    return -1;
}

/* NMSE over f32 values, in double; a -inf matches only a -inf (where legal); anything else
 * non-finite is INFINITY (never passes). */
static double nmse_f32(const float *got, const float *want, int64_t n, int neg_inf) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (neg_inf && (got[i] == -INFINITY || want[i] == -INFINITY)) {
            if (got[i] != want[i]) return INFINITY;
            continue;
        }
        if (!isfinite(got[i]) || !isfinite(want[i])) return INFINITY;
        const double d = (double)got[i] - (double)want[i];
        num += d * d;
        den += (double)want[i] * (double)want[i];
    }
    return den > 0 ? num / den : num;
}

/* Every output of r is finite (outputs are f32). */
static int check_finite(const bcase *c, const results *r, char *why, size_t nwhy) {
    for (int k = 0; k < c->nt; k++) {
        if (r->t[k] == NULL) continue;
        const int64_t bad = first_bad(r->t[k], targ_nelem(&c->a[k]), c->a[k].neg_inf);
        if (bad >= 0) {
            snprintf(why, nwhy, "output %d: element %lld is %g (not written, or NaN / inf)", k,
                     (long long)bad, (double)((const float *)r->t[k])[bad]);
            return 0;
        }
    }
    return 1;
}

/* got against ref: bitwise (exact, or a bound of 0), else NMSE <= the op's bound; *worst is
 * the largest NMSE over the outputs. */
static int compare(const bcase *c, const results *got, const results *ref, int exact, double *worst,
                   char *why, size_t nwhy) {
    const double bound = case_bound(c);
    *worst = 0;
    if (!check_finite(c, got, why, nwhy)) {
        *worst = INFINITY;
        return 0;
    }
    for (int k = 0; k < c->nt; k++) {
        if (ref->t[k] == NULL) continue;
        const int64_t n = targ_nelem(&c->a[k]);
        const double e = nmse_f32(got->t[k], ref->t[k], n, c->a[k].neg_inf);
        if (e > *worst) *worst = e;
        if (exact || bound == 0) {
            if (memcmp(got->raw[k], ref->raw[k], targ_bytes(&c->a[k])) != 0) {
                const float *g = got->t[k], *w = ref->t[k];
                int64_t i = 0, nd = 0;
                for (int64_t j = n - 1; j >= 0; j--)
                    if (memcmp(&g[j], &w[j], 4) != 0) i = j, nd++;
                snprintf(why, nwhy,
                         "output %d: not bitwise the plain CPU's: %lld of %lld values differ, "
                         "first [%lld] %a vs %a; nmse %.3e",
                         k, (long long)nd, (long long)n, (long long)i, (double)g[i], (double)w[i],
                         e);
                return 0;
            }
        } else if (!(e <= bound)) {
            snprintf(why, nwhy, "output %d: nmse %.3e > bound %.1e", k, e, bound);
            return 0;
        }
    }
    return 1;
}

static void make_inputs(const bcase *c, int idx, void **in) {
    uint64_t rng = 0xC0FFEEull + 7919ull * (uint64_t)idx; /* per case: independent of order */
    for (int k = 0; k < c->nt; k++) {
        const targ *a = &c->a[k];
        in[k] = NULL;
        if (a->role != T_IN && a->role != T_INOUT) continue;
        const int64_t n = targ_nelem(a);
        float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
        for (int64_t i = 0; i < n; i++) f[i] = (float)(a->lo + (a->hi - a->lo) * unif(&rng));
        if (a->dtype == WR_DTYPE_F32) {
            in[k] = f;
        } else {
            in[k] = malloc(targ_bytes(a) + 1);
            ck_assert_int_eq(wr_dtype_convert(in[k], a->dtype, f, WR_DTYPE_F32, n), WR_OK);
            free(f);
        }
    }
    if (c->fix) c->fix(c, in);
}

static void free_inputs(void **in) {
    for (int k = 0; k < MAXT; k++) {
        free(in[k]);
        in[k] = NULL;
    }
}

/* ---- the tests ---- */

START_TEST(test_op) {
    const bcase *c = &g_cases[_i];
    const int oi = op_index(c->op);
    char fail[1400] = "", why[1024];
    void *in[MAXT] = {0};
    results ref = {0}, got = {0};
    wr_conv_set_impl(c->conv_impl); /* for every backend of this case, until it is done */
    make_inputs(c, _i, in);
    if (run_case(g_ref, c, in, &ref, why, sizeof why) != RUN_OK ||
        !check_finite(c, &ref, why, sizeof why)) {
        snprintf(fail, sizeof fail, "%s %s: plain cpu: %s", c->op, c->desc, why);
        goto done;
    }
    for (int b = 0; b < g_nbt; b++) {
        tested *bt = &g_bt[b];
        const int r = run_case(bt->be, c, in, &got, why, sizeof why);
        if (r == RUN_UNSUPPORTED) {
            bt->unsupported[oi]++;
            if (g_verbose)
                fprintf(stderr, "bops %-6s %s %s: unsupported\n", bt->name, c->op, c->desc);
            continue;
        }
        double e = 0;
        if (r != RUN_OK || !compare(c, &got, &ref, bt->exact, &e, why, sizeof why)) {
            snprintf(fail, sizeof fail, "%s %s: %s: %s", c->op, c->desc, bt->name, why);
            goto done;
        }
        bt->runs[oi]++;
        if (e > bt->worst[oi]) bt->worst[oi] = e;
        if (g_verbose) fprintf(stderr, "bops %-6s %s %s: nmse %.3e\n", bt->name, c->op, c->desc, e);
        results_free(&got);
    }
done:
    wr_conv_set_impl(WR_CONV_AUTO);
    results_free(&ref);
    results_free(&got);
    free_inputs(in);
    ck_assert_msg(fail[0] == 0, "%s", fail);
}
END_TEST

/* k_valid means "keys [k_valid, Lk) are masked" (backend.h): on the plain CPU, every k_valid
 * case of the table against the same keys given as a key mask (the other backends are held to
 * the plain CPU on both forms by test_op). The CPU masks both alike (measured: bitwise); the
 * contract does not ask for bits: a kernel may stop its key loop at k_valid instead, changing
 * the block split of the sums (measured with such a variant of attention.c: at most 5.7e-14
 * on the outputs, 1.7e-15 on the lse); bound 1e-11. */
START_TEST(test_attention_k_valid) {
    int n = 0;
    for (int ci = 0; ci < g_ncases; ci++) {
        const bcase *c = &g_cases[ci];
        if (strcmp(c->op, "attention") != 0 || c->i[2] <= 0 || c->hkind != H_NONE) continue;
        bcase m = *c;
        const int64_t Lk = c->a[2].shape[0];
        uint8_t *mask = malloc((size_t)Lk);
        for (int64_t j = 0; j < Lk; j++) mask[j] = j < c->i[2];
        m.i[2] = 0;
        m.hkind = H_MASK;
        m.harg = mask;
        m.hbytes = (size_t)Lk;
        char why[1024];
        void *in[MAXT] = {0};
        results rk = {0}, rm = {0};
        make_inputs(c, ci, in);
        ck_assert_int_eq(run_case(g_ref, c, in, &rk, why, sizeof why), RUN_OK);
        ck_assert_int_eq(run_case(g_ref, &m, in, &rm, why, sizeof why), RUN_OK);
        for (int k = 0; k < c->nt; k++) {
            if (rm.t[k] == NULL) continue;
            const double e = nmse_f32(rk.t[k], rm.t[k], targ_nelem(&c->a[k]), c->a[k].neg_inf);
            if (g_verbose)
                fprintf(stderr, "bops k_valid %s: output %d: nmse %.3e\n", c->desc, k, e);
            ck_assert_msg(e <= 1e-11, "%s: output %d: k_valid against the key mask: nmse %.3e",
                          c->desc, k, e);
        }
        results_free(&rk);
        results_free(&rm);
        free_inputs(in);
        free(mask);
        n++;
    }
    ck_assert_int_ge(n, 3);
}
END_TEST

/* ---- strided copies (wr_copy_3d), bitwise on every backend, and the memory calls ---- */

typedef struct geo {
    size_t width;
    int64_t rows, planes;
    size_t dpitch, dplane, spitch, splane, doff, soff;
} geo;

static const geo g_geos[] = {
    /* width rows planes dpitch dplane spitch splane doff soff */
    {12, 5, 3, 16, 100, 20, 120, 3, 5},                    /* odd pitches and offsets */
    {1, 1, 1, 0, 0, 0, 0, 0, 0},                           /* one byte */
    {33, 1, 7, 0, 40, 0, 35, 1, 2},                        /* one run per plane: pitches unused */
    {4096, 64, 2, 4096, 4096 * 64, 4096, 4096 * 64, 0, 0}, /* contiguous */
    {68, 9, 96, 84, 84 * 13, 76, 76 * 11, 88, 4},          /* VAE margins: 17 of 21 floats */
    {7, 3, 0, 9, 40, 9, 40, 0, 0},                         /* zero planes: nothing moves */
    {256, 300, 1, 1024, 0, 260, 0, 64, 0},                 /* one plane of many rows */
};

static size_t geo_span(size_t width, int64_t rows, int64_t planes, size_t pitch, size_t plane,
                       size_t off) {
    if (planes == 0 || rows == 0) return off + 1;
    return off + (size_t)(planes - 1) * plane + (size_t)(rows - 1) * pitch + width;
}

static void copy_model(uint8_t *dst, const uint8_t *src, const geo *g) {
    for (int64_t p = 0; p < g->planes; p++)
        for (int64_t r = 0; r < g->rows; r++)
            memcpy(dst + g->doff + (size_t)p * g->dplane + (size_t)r * g->dpitch,
                   src + g->soff + (size_t)p * g->splane + (size_t)r * g->spitch, g->width);
}

/* One geometry in one direction on be; 1 when right, else why. Device buffers carry guards;
 * the model is the same copy done on host bytes. */
static int copy_case(wr_backend *be, const geo *g, wr_copy_dir dir, char *why, size_t nwhy) {
    const size_t dlen = geo_span(g->width, g->rows, g->planes, g->dpitch, g->dplane, g->doff) + 5,
                 slen = geo_span(g->width, g->rows, g->planes, g->spitch, g->splane, g->soff) + 3,
                 big = 2 * GUARD + (dlen > slen ? dlen : slen);
    uint64_t rng = 99 + (uint64_t)dir;
    uint8_t *src = malloc(slen), *dst0 = malloc(dlen), *want = malloc(dlen);
    uint8_t *hsrc = malloc(slen), *hdst = malloc(dlen), *img = malloc(big);
    void *ddev = NULL, *sdev = NULL;
    int ok = 0;
    for (size_t i = 0; i < slen; i++) src[i] = (uint8_t)splitmix(&rng);
    for (size_t i = 0; i < dlen; i++) dst0[i] = (uint8_t)splitmix(&rng);
    memcpy(want, dst0, dlen);
    copy_model(want, src, g);
    memcpy(hsrc, src, slen);
    memcpy(hdst, dst0, dlen);
    wr_status st = be->iface->alloc(be, &ddev, 2 * GUARD + dlen);
    if (st == WR_OK) st = be->iface->alloc(be, &sdev, 2 * GUARD + slen);
    if (st != WR_OK) {
        snprintf(why, nwhy, "alloc: %s", wr_error_detail());
        goto done;
    }
    for (size_t i = 0; i < GUARD; i++) img[i] = img[GUARD + dlen + i] = guard_byte(i, 0);
    memcpy(img + GUARD, dst0, dlen);
    st = wr_upload(be, ddev, img, 2 * GUARD + dlen);
    for (size_t i = 0; i < GUARD; i++) img[i] = img[GUARD + slen + i] = guard_byte(i, 1);
    memcpy(img + GUARD, src, slen);
    if (st == WR_OK) st = wr_upload(be, sdev, img, 2 * GUARD + slen);
    if (st != WR_OK) {
        snprintf(why, nwhy, "upload: %s", wr_error_detail());
        goto done;
    }
    wr_copy3d cp = {.dir = dir,
                    .width = g->width,
                    .rows = g->rows,
                    .planes = g->planes,
                    .dpitch = g->dpitch,
                    .dplane = g->dplane,
                    .spitch = g->spitch,
                    .splane = g->splane};
    cp.dst = (dir == WR_COPY_D2H ? hdst : (uint8_t *)ddev + GUARD) + g->doff;
    cp.src = (dir == WR_COPY_H2D ? hsrc : (uint8_t *)sdev + GUARD) + g->soff;
    st = wr_copy_3d(be, &cp);
    memset(hsrc, 0x77, slen); /* H2D is finished on return: its source may change now */
    if (st != WR_OK) {
        snprintf(why, nwhy, "wr_copy_3d: %s: %s", wr_status_name(st), wr_error_detail());
        goto done;
    }
    if (dir == WR_COPY_D2H) { /* finished on return: the bytes are there, nothing else moved */
        ok = memcmp(hdst, want, dlen) == 0;
        if (!ok) snprintf(why, nwhy, "the host destination differs from the model copy");
    } else {
        st = wr_download(be, img, ddev, 2 * GUARD + dlen);
        ok = st == WR_OK && memcmp(img + GUARD, want, dlen) == 0;
        for (size_t i = 0; ok && i < GUARD; i++)
            ok = img[i] == guard_byte(i, 0) && img[GUARD + dlen + i] == guard_byte(i, 0);
        if (!ok) snprintf(why, nwhy, "the device destination or its guards differ from the model");
    }
    if (ok && dir != WR_COPY_H2D) { /* the device source is unchanged */
        st = wr_download(be, img, sdev, 2 * GUARD + slen);
        ok = st == WR_OK && memcmp(img + GUARD, src, slen) == 0;
        if (!ok) snprintf(why, nwhy, "the device source changed");
    }
done:
    if (ddev) be->iface->free(be, ddev);
    if (sdev) be->iface->free(be, sdev);
    free(src), free(dst0), free(want), free(hsrc), free(hdst), free(img);
    return ok;
}

START_TEST(test_copy_3d) {
    static const char *dname[] = {"D2D", "H2D", "D2H"};
    const int ng = (int)(sizeof g_geos / sizeof g_geos[0]);
    for (int b = -1; b < g_nbt; b++) { /* the plain CPU too: against the host model */
        wr_backend *be = b < 0 ? g_ref : g_bt[b].be;
        const char *name = b < 0 ? "cpu" : g_bt[b].name;
        for (int gi = 0; gi < ng; gi++)
            for (int dir = 0; dir < 3; dir++) {
                char why[512];
                ck_assert_msg(copy_case(be, &g_geos[gi], (wr_copy_dir)dir, why, sizeof why),
                              "%s: copy3d %s geometry %d: %s", name, dname[dir], gi, why);
            }
    }
}
END_TEST

/* wr_dev_copy / wr_dev_memset0 inside a guarded buffer */
START_TEST(test_memory_calls) {
    const size_t n = 3 * GUARD + 1001;
    uint8_t *h = malloc(n), *want = malloc(n), *got = malloc(n);
    uint64_t rng = 5;
    for (size_t i = 0; i < n; i++) h[i] = (uint8_t)splitmix(&rng);
    memcpy(want, h, n);
    memmove(want + GUARD + 3, want + 2 * GUARD + 11, 777); /* dev_copy, disjoint ranges */
    memset(want + GUARD + 900, 0, 333);                    /* memset0 */
    for (int b = -1; b < g_nbt; b++) {
        wr_backend *be = b < 0 ? g_ref : g_bt[b].be;
        const char *name = b < 0 ? "cpu" : g_bt[b].name;
        void *d = NULL;
        ck_assert_int_eq(be->iface->alloc(be, &d, n), WR_OK);
        ck_assert_int_eq(wr_upload(be, d, h, n), WR_OK);
        ck_assert_int_eq(
            wr_dev_copy(be, (uint8_t *)d + GUARD + 3, (uint8_t *)d + 2 * GUARD + 11, 777), WR_OK);
        ck_assert_int_eq(wr_dev_memset0(be, (uint8_t *)d + GUARD + 900, 333), WR_OK);
        ck_assert_int_eq(wr_download(be, got, d, n), WR_OK);
        be->iface->free(be, d);
        ck_assert_msg(memcmp(got, want, n) == 0, "%s: dev_copy / memset0 bytes differ", name);
    }
    free(h), free(want), free(got);
}
END_TEST

/* ---- the checker, on deliberately broken backends ---- */

static const wr_backend_iface *g_orig; /* the plain CPU's slots */

static wr_status add_overrun(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b) {
    WR_TRY(g_orig->add(g_ref, y, a, b));
    ((float *)y->data)[wr_tensor_nelem(y)] = 0.0f; /* one float past the end: a guard byte */
    return WR_OK;
}

static wr_status gelu_hole(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    WR_TRY(g_orig->gelu_tanh(g_ref, y, x));
    ((float *)y->data)[wr_tensor_nelem(y) - 1] = NAN; /* an element left unwritten */
    return WR_OK;
}

static wr_status modulate_off(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                              const wr_tensor *scale, const wr_tensor *shift) {
    WR_TRY(g_orig->modulate(g_ref, y, x, scale, shift));
    ((float *)y->data)[wr_tensor_nelem(y) / 2] += 0.01f; /* one value off by 1e-2 */
    return WR_OK;
}

static wr_status clamp_scribble(wr_backend *be, wr_tensor *y, const wr_tensor *x, float lo,
                                float hi) {
    WR_TRY(g_orig->clamp(g_ref, y, x, lo, hi));
    if (x->data != y->data) ((float *)x->data)[0] = 0.125f; /* writes its input */
    return WR_OK;
}

/* an "async" gather that reads its host indices only at the sync */
static struct {
    wr_tensor y, table;
    const int32_t *idx;
} g_late;

static wr_status gather_late(wr_backend *be, wr_tensor *y, const wr_tensor *table,
                             const int32_t *idx) {
    g_late.y = *y;
    g_late.table = *table;
    g_late.idx = idx;
    return WR_OK;
}

static wr_status sync_late(wr_backend *be) {
    if (g_late.idx == NULL) return WR_OK;
    wr_status st = g_orig->gather_rows(g_ref, &g_late.y, &g_late.table, g_late.idx);
    g_late.idx = NULL;
    return st;
}

static int find_case(const char *op, int inplace) {
    for (int i = 0; i < g_ncases; i++)
        if (strcmp(g_cases[i].op, op) == 0 && g_cases[i].i[0] == inplace) return i;
    ck_abort_msg("no %s case", op);
    return -1;
}

/* 1 when the checker rejects the broken backend on the first case of op (in both the bitwise
 * and the NMSE comparison) */
static int rejected(const wr_backend_iface *iface, const char *op, int inplace, char *why,
                    size_t nwhy) {
    const int ci = find_case(op, inplace);
    const bcase *c = &g_cases[ci];
    wr_backend broken = *g_ref; /* its scratch arena is g_ref's (reserved), never freed here */
    broken.iface = iface;
    void *in[MAXT] = {0};
    results ref = {0}, got = {0};
    make_inputs(c, ci, in);
    ck_assert_int_eq(run_case(g_ref, c, in, &ref, why, nwhy), RUN_OK);
    int rej = 0;
    for (int exact = 0; exact < 2; exact++) {
        double e;
        const int r = run_case(&broken, c, in, &got, why, nwhy);
        rej += r == RUN_FAIL || (r == RUN_OK && !compare(c, &got, &ref, exact, &e, why, nwhy));
        results_free(&got);
    }
    results_free(&ref);
    free_inputs(in);
    return rej == 2;
}

START_TEST(test_checker_catches) {
    ck_assert_int_eq(wr_scratch_reserve(g_ref), WR_OK);
    g_orig = g_ref->iface;
    char why[1024];
    wr_backend_iface f = *g_orig;
    f.add = add_overrun;
    ck_assert_msg(rejected(&f, "add", 0, why, sizeof why) && strstr(why, "guard"),
                  "a write past the output passed: %s", why);
    f = *g_orig;
    f.gelu_tanh = gelu_hole;
    ck_assert_msg(rejected(&f, "gelu_tanh", 0, why, sizeof why), "a NaN output passed");
    f = *g_orig;
    f.modulate = modulate_off;
    ck_assert_msg(rejected(&f, "modulate", 0, why, sizeof why) && strstr(why, "nmse"),
                  "a wrong value passed: %s", why);
    f = *g_orig;
    f.clamp = clamp_scribble;
    ck_assert_msg(rejected(&f, "clamp", 0, why, sizeof why) && strstr(why, "input"),
                  "a write into an input passed: %s", why);
    f = *g_orig;
    f.gather_rows = gather_late;
    f.sync = sync_late;
    ck_assert_msg(rejected(&f, "gather_rows", 0, why, sizeof why),
                  "a late read of the host indices passed");
}
END_TEST

/* ---- the GEMM bounds against bf16 operands (a lower bound of what a bf16 GEMM does) ---- */

/* an f32 copy of t (any float dtype) rounded to bf16; *buf owns it */
static wr_tensor bf16_copy(const wr_tensor *t, float **buf) {
    const int64_t n = wr_tensor_nelem(t);
    float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
    ck_assert_int_eq(wr_dtype_convert(f, WR_DTYPE_F32, t->data, t->dtype, n), WR_OK);
    for (int64_t i = 0; i < n; i++) f[i] = wr_bf16_to_f32(wr_f32_to_bf16(f[i]));
    *buf = f;
    return wr_tensor_make(f, WR_DTYPE_F32, t->ndim, t->shape);
}

static wr_status matmul_bf16(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                             const wr_tensor *b, float alpha) {
    float *bx, *bw;
    const wr_tensor xr = bf16_copy(x, &bx), wr = bf16_copy(w, &bw);
    const wr_status st = g_orig->matmul(g_ref, y, &xr, &wr, b, alpha);
    free(bx), free(bw);
    return st;
}

static wr_status attention_bf16(wr_backend *be, wr_tensor *out, wr_tensor *lse, const wr_tensor *q,
                                const wr_tensor *k, const wr_tensor *v, const wr_attn_params *p) {
    float *bq, *bk, *bv;
    const wr_tensor qr = bf16_copy(q, &bq), kr = bf16_copy(k, &bk), vr = bf16_copy(v, &bv);
    const wr_status st = g_orig->attention(g_ref, out, lse, &qr, &kr, &vr, p);
    free(bq), free(bk), free(bv);
    return st;
}

static wr_status patch_embed_bf16(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                  const wr_tensor *w, const wr_tensor *b, int64_t n0) {
    float *bx, *bw;
    const wr_tensor xr = bf16_copy(x, &bx), wr = bf16_copy(w, &bw);
    const wr_status st = g_orig->patch_embed(g_ref, y, &xr, &wr, b, n0);
    free(bx), free(bw);
    return st;
}

static wr_status conv3d_bf16(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                             const wr_tensor *cache, const wr_tensor *w, const wr_tensor *b,
                             const wr_conv_params *p) {
    float *bx, *bw, *bc = NULL;
    const wr_tensor xr = bf16_copy(x, &bx), wr = bf16_copy(w, &bw);
    wr_tensor cr;
    if (cache) cr = bf16_copy(cache, &bc);
    const wr_status st = g_orig->conv3d(g_ref, y, &xr, cache ? &cr : NULL, &wr, b, p);
    free(bx), free(bw), free(bc);
    return st;
}

START_TEST(test_bf16_gemm_bounds) {
    ck_assert_int_eq(wr_scratch_reserve(g_ref), WR_OK);
    g_orig = g_ref->iface;
    wr_backend_iface f = *g_orig;
    f.matmul = matmul_bf16;
    f.attention = attention_bf16;
    f.patch_embed = patch_embed_bf16;
    f.conv3d = conv3d_bf16;
    wr_backend emu = *g_ref;
    emu.iface = &f;
    static const char *gemm_ops[] = {"matmul",      "linear_gelu", "linear_residual",
                                     "patch_embed", "conv3d",      "attention"};
    for (size_t o = 0; o < sizeof gemm_ops / sizeof gemm_ops[0]; o++) {
        double worst = 0;
        int n = 0;
        for (int i = 0; i < g_ncases; i++) {
            const bcase *c = &g_cases[i];
            if (strcmp(c->op, gemm_ops[o]) != 0 || c->conv_impl == WR_CONV_DIRECT) continue;
            char why[1024];
            void *in[MAXT] = {0};
            results ref = {0}, got = {0};
            make_inputs(c, i, in);
            ck_assert_int_eq(run_case(g_ref, c, in, &ref, why, sizeof why), RUN_OK);
            ck_assert_int_eq(run_case(&emu, c, in, &got, why, sizeof why), RUN_OK);
            double e = 0;
            const int ok = compare(c, &got, &ref, 0, &e, why, sizeof why);
            ck_assert_msg(ok, "bf16 operands: %s %s: %s", c->op, c->desc, why);
            if (g_verbose) fprintf(stderr, "bops bf16   %s %s: nmse %.3e\n", c->op, c->desc, e);
            if (e > worst) worst = e;
            n++;
            results_free(&ref);
            results_free(&got);
            free_inputs(in);
        }
        const double bound = g_bounds[op_index(gemm_ops[o])].nmse;
        fprintf(stderr, "bops: bf16 GEMM operands: %-16s %2d cases, worst nmse %.2e (bound %.0e)\n",
                gemm_ops[o], n, worst, bound);
        /* the emulation really rounds, and the bound keeps a margin over it */
        ck_assert_msg(n > 0 && worst > 1e-8 && worst * 10 < bound, "%s: worst %.3e", gemm_ops[o],
                      worst);
    }
}
END_TEST

/* ---- BF16 activations: the CPU's rounding points against one rounding at the end ---- */

/*
 * A backend may round a BF16 activation at other points than the CPU's (a fused kernel keeps
 * f32 between two ops the CPU composes, and rounds once). For every case with a BF16
 * activation: the CPU's result against the same case in f32 on the same values, rounded to
 * bf16 once where the output is BF16. This is what a differently rounding backend may differ by;
 * its worst case must stay 10x under WR_BOPS_BF16.
 */
START_TEST(test_bf16_rounding_points) {
    double worst = 0;
    const char *at = "";
    int n = 0;
    for (int ci = 0; ci < g_ncases; ci++) {
        const bcase *c = &g_cases[ci];
        if (!has_bf16_act(c)) continue;
        bcase f = *c; /* the f32 twin */
        void *in[MAXT] = {0}, *fin[MAXT] = {0};
        make_inputs(c, ci, in);
        for (int k = 0; k < c->nt; k++) {
            if (c->a[k].weight || c->a[k].dtype != WR_DTYPE_BF16) {
                if (in[k]) {
                    fin[k] = malloc(targ_bytes(&c->a[k]) + 1);
                    memcpy(fin[k], in[k], targ_bytes(&c->a[k]));
                }
                continue;
            }
            f.a[k].dtype = WR_DTYPE_F32;
            if (in[k] == NULL) continue;
            const int64_t ne = targ_nelem(&c->a[k]);
            fin[k] = malloc(sizeof(float) * (size_t)(ne ? ne : 1));
            ck_assert_int_eq(wr_dtype_convert(fin[k], WR_DTYPE_F32, in[k], WR_DTYPE_BF16, ne),
                             WR_OK);
        }
        char why[1024];
        results rb = {0}, rf = {0};
        wr_conv_set_impl(c->conv_impl);
        ck_assert_msg(run_case(g_ref, c, in, &rb, why, sizeof why) == RUN_OK, "%s", why);
        ck_assert_msg(run_case(g_ref, &f, fin, &rf, why, sizeof why) == RUN_OK, "%s", why);
        wr_conv_set_impl(WR_CONV_AUTO);
        ck_assert_msg(check_finite(c, &rb, why, sizeof why), "%s %s: %s", c->op, c->desc, why);
        for (int k = 0; k < c->nt; k++) {
            if (rb.t[k] == NULL) continue;
            const int64_t ne = targ_nelem(&c->a[k]);
            if (c->a[k].dtype == WR_DTYPE_BF16)
                for (int64_t i = 0; i < ne; i++)
                    rf.t[k][i] = wr_bf16_to_f32(wr_f32_to_bf16(rf.t[k][i]));
            const double e = nmse_f32(rb.t[k], rf.t[k], ne, c->a[k].neg_inf);
            if (g_verbose)
                fprintf(stderr, "bops bf16-points %s %s: output %d: nmse %.3e\n", c->op, c->desc, k,
                        e);
            if (e > worst) worst = e, at = c->desc;
        }
        results_free(&rb);
        results_free(&rf);
        free_inputs(in);
        free_inputs(fin);
        n++;
    }
    fprintf(stderr,
            "bops: bf16 activations: %d cases, the CPU's rounding points against one rounding: "
            "worst nmse %.2e (%s)\n",
            n, worst, at);
    ck_assert_msg(n > 10 && worst * 10 < WR_BOPS_BF16, "worst %.3e at %s", worst, at);
}
END_TEST

/* ---- backends ---- */

static void summary(void) {
    for (int b = 0; b < g_nbt; b++) {
        tested *bt = &g_bt[b];
        int runs = 0, uns = 0;
        for (int o = 0; o < NOPS; o++) runs += bt->runs[o], uns += bt->unsupported[o];
        if (bt->exact) {
            fprintf(stderr, "bops: %s: %d cases bitwise equal to the plain CPU%s\n", bt->name, runs,
                    bt->be->host_visible ? " (NOTE: this build's strict/async mode is "
                                           "not implemented: it ran as the plain CPU)"
                                         : "");
            continue;
        }
        fprintf(stderr, "bops: %s: %d cases passed, %d unsupported\n", bt->name, runs, uns);
        for (int o = 0; o < NOPS; o++)
            if (bt->runs[o] || bt->unsupported[o])
                fprintf(stderr,
                        "bops:   %-20s %3d run %3d unsupported  worst nmse %.2e (bound %.0e)\n",
                        g_bounds[o].op, bt->runs[o], bt->unsupported[o], bt->worst[o],
                        g_bounds[o].nmse);
    }
}

static void teardown_all(void) {
    summary();
    for (int b = 0; b < g_nbt; b++) wr_backend_free(g_bt[b].be);
    wr_backend_free(g_ref);
    for (int i = 0; i < g_ncases; i++) free(g_cases[i].harg);
}

static void add_backend(const char *name, const wr_backend_opts *o, int exact) {
    wr_backend *be = NULL;
    const wr_status st = wr_backend_create_ex(&be, o);
    if (st != WR_OK) {
        fprintf(stderr, "bops: no %s backend: %s: %s\n", name, wr_status_name(st),
                wr_error_detail());
        return;
    }
    tested *bt = &g_bt[g_nbt++];
    memset(bt, 0, sizeof *bt);
    bt->name = name;
    bt->be = be;
    bt->exact = exact;
}

Suite *wr_test_suite(void) {
    Suite *s = suite_create("backend_ops");
    const char *v = getenv("WR_BOPS_VERBOSE");
    g_verbose = v && *v && strcmp(v, "0") != 0;
    const wr_backend_opts ref = {.kind = WR_BACKEND_CPU, .strict = 0, .async = 0};
    WR_ASSERT(wr_backend_create_ex(&g_ref, &ref) == WR_OK);
    const wr_backend_opts strict = {.kind = WR_BACKEND_CPU, .strict = 1, .async = 0};
    const wr_backend_opts async = {.kind = WR_BACKEND_CPU, .strict = 1, .async = 1};
    add_backend("strict", &strict, 1);
    add_backend("async", &async, 1);
    wr_device_info di;
    const wr_status pst = wr_backend_probe_cuda(&di);
    if (pst == WR_OK && di.count > 0) {
        const wr_backend_opts cuda = {.kind = WR_BACKEND_CUDA, .device = 0};
        add_backend("cuda", &cuda, 0);
    } else {
        fprintf(stderr, "bops: CUDA not tested: %s\n", wr_error_detail());
    }
    if (g_nbt == 0) {
        wr_test_skip("no backend besides the plain CPU could be made");
        wr_backend_free(g_ref);
        return s;
    }
    build_table();
    TCase *tc = tcase_create("backends");
    tcase_set_timeout(tc, 0);
    tcase_add_unchecked_fixture(tc, NULL, teardown_all);
    tcase_add_loop_test(tc, test_op, 0, g_ncases);
    tcase_add_test(tc, test_attention_k_valid);
    tcase_add_test(tc, test_copy_3d);
    tcase_add_test(tc, test_memory_calls);
    tcase_add_test(tc, test_checker_catches);
    tcase_add_test(tc, test_bf16_gemm_bounds);
    tcase_add_test(tc, test_bf16_rounding_points);
    suite_add_tcase(s, tc);
    return s;
}
