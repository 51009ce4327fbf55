/*
 * loader.h — what the model loaders share: looking tensors up with a shape and dtype check
 * that collects the first few problems into one report (so a broken checkpoint is described
 * in one error, not one run per tensor), and carving a forward's activations out of one
 * workspace planned from the shapes.
 */
#ifndef WR_MODELS_LOADER_H
#define WR_MODELS_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "core/safetensors.h"
#include "core/tensor.h"
#include "kernels/backend.h"

#define WR_LOAD_SHOWN 5 /* problems spelled out in the report; the rest are counted */

typedef struct wr_load_report {
    int problems;
    char text[768];
} wr_load_report;

/* Records one problem (printf format); the first WR_LOAD_SHOWN are kept, "; "-separated. */
void wr_load_problem(wr_load_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The tensor `key` of `set` if present, a float type other than F64, and of the given shape;
 * else NULL and a problem ("KEY missing", "KEY is BF16 [7], expected F32/BF16/F16/F8 [8]"). */
const wr_st_tensor *wr_load_expect(wr_load_report *r, const wr_st_set *set, const char *key,
                                   int ndim, const int64_t *shape);

/* WR_ERR_FORMAT: "DIR: N of TOTAL WHAT tensors missing or mis-shaped: first problems". */
wr_status wr_load_fail(const wr_load_report *r, const char *dir, int64_t total, const char *what);

/* The blocks a checkpoint holds: 1 + the largest N of a tensor named "<prefix>N.<...>" (prefix
 * e.g. "blocks."), 0 when none. Checked against the config's layer count before anything loops
 * over the layers: WR_ERR_CONFIG "CONFIG_PATH: field 'FIELD' is L; the checkpoint in DIR holds
 * N blocks" when it holds fewer (more are ignored with a warning, as diffusers does). */
int64_t wr_load_count_blocks(const wr_st_set *set, const char *prefix);
wr_status wr_load_check_layers(const wr_st_set *set, const char *prefix, int64_t layers,
                               const char *config_path, const char *field, const char *dir);

/* FP8 storage (--fp8 storage): t as float8_e4m3 of t / s into dst (t->nelem bytes), with the
 * per-tensor scale s = amax / 448 (the largest magnitude maps to e4m3's largest finite value;
 * 1 for an all-zero or non-finite tensor) returned in *scale; a matmul then uses w = s * dst. */
wr_status wr_load_fp8(const wr_st_tensor *t, uint8_t *dst, float *scale);

/*
 * A model's resident device copy of weights that live for the model's life (the non-streamed
 * ones: embeddings, heads, vectors, FP8-converted matrices). One device allocation of the
 * planned size; put() uploads a host tensor into it and rewrites *t to point there. On a
 * backend whose ops read host memory in place (be->host_visible: the plain CPU backend) put()
 * keeps *t as it is (the mapped checkpoint or a host copy, no second copy) unless `force`.
 */
typedef struct wr_dev_arena {
    wr_backend *be;
    char *base;
    size_t cap, used; /* bytes */
} wr_dev_arena;

/* bytes 0: nothing is allocated (every put() must then be in place). */
wr_status wr_dev_arena_init(wr_dev_arena *a, wr_backend *be, size_t bytes);
/* 64-byte aligned bytes a put() of n bytes takes (for the plan pass) */
size_t wr_dev_arena_need(size_t nbytes);
wr_status wr_dev_arena_put(wr_dev_arena *a, wr_tensor *t, int force);
/* nbytes of device memory from the arena (uninitialised) */
wr_status wr_dev_arena_take(wr_dev_arena *a, size_t nbytes, void **out);
void wr_dev_arena_free(wr_dev_arena *a);
/* A model's n block structs (struct_size bytes each; tensors() lists one struct's tensor
 * fields, absent ones with data NULL, at most 64) as device copies: *out a malloc'd copy of
 * the structs whose tensors point into one arena a (initialised here) that every tensor was
 * uploaded into. The caller frees both (wr_dev_arena_free, free). */
wr_status wr_dev_arena_blocks(wr_dev_arena *a, wr_backend *be, const void *blocks,
                              size_t struct_size, int64_t n, int (*tensors)(void *, wr_tensor **),
                              void **out);

/*
 * ---- weights, and the one loader skeleton of the DiT, the text encoder and the VAE ----
 *
 * A weight is what a GEMM takes: its storage tensor (the checkpoint's dtype, or e4m3 under FP8
 * storage) and the per-tensor scale its values carry (weight = scale * stored values; 1 unless
 * FP8 storage converted it). The matmul applies the scale, so the per-block upcast converts t
 * and leaves the scale. An e4m3 weight's scale is also in device memory (dscale: one float of
 * the loader's resident scale array, uploaded by wr_loader_upload, for as long as the model
 * lives, streamed blocks' weights too), which is what an FP8 GEMM reads (cuBLASLt's A/B scale
 * pointers); NULL for a weight that is not e4m3.
 */
typedef struct wr_weight {
    wr_tensor t;
    float scale;
    const float *dscale; /* device memory: the scale, for an e4m3 t; else NULL */
} wr_weight;

/* A scaled e4m3 checkpoint (what `wanrun convert --dtype fp8` writes, ComfyUI's convention):
 * beside an e4m3 weight "M.weight" an F32 one-element tensor "M.scale_weight" holds its scale
 * (weight = scale * stored values); the loader reads it (absent: 1, as diffusers' layerwise
 * casting stores plain casts). Writes the scale's name for a weight's name into dst. */
void wr_fp8_scale_name(char *dst, size_t cap, const char *weight_name);

/* A model's weights one by one (wr_dit_each_weight, wr_t5_each_weight): name, weight. */
typedef void (*wr_weight_fn)(void *ctx, const char *name, const wr_weight *w);

/* How the loader stores one expected tensor (a model's answer for its name). */
typedef struct wr_load_field {
    wr_tensor *t; /* the model's field (w->t for a weight) */
    wr_weight *w; /* the owning weight (NULL: a plain tensor, no FP8 storage, no scale) */
    int f32;      /* 1: a host f32 copy (vectors, tables, norms); 0: used in place, storage dtype */
    int flat;     /* the f32 copy as a 1-D [nelem] tensor ([C,1,1,1] gammas), not the shape */
    int fp8;      /* 1: converted to e4m3 under FP8 storage (the checkpoint's e4m3 kept as is) */
    int resident; /* 1: uploaded by wr_loader_upload, device memory for the model's life; 0: left
                     on the host (blocks: the streamer or wr_dev_arena_blocks; host-side use) */
    char key[160]; /* its key in the checkpoint; "" = the expected name */
} wr_load_field;

/* A model's walk over its expected tensors calls visit(ctx, name, ndim, shape) for each. */
typedef void (*wr_visit_fn)(void *ctx, const char *name, int ndim, const int64_t *shape);

/*
 * The loader: two passes over a model's expected tensors (the first counts the host copies,
 * the second looks each up with its shape checked, binds it into its field as the field asks,
 * and collects the problems into one report), the host arenas those copies live in, and the
 * device arena its resident tensors are uploaded into. A model keeps its loader for its life.
 */
typedef struct wr_loader {
    /* set by the model before wr_loader_run */
    const wr_st_set *set;
    const char *dir, *what; /* the report: "DIR: N of TOTAL WHAT tensors ..." */
    int fp8;                /* FP8 storage */
    void (*field)(void *model, const char *name, int ndim, wr_load_field *f); /* for visit */
    void *model;
    size_t extra_floats; /* host f32 the model takes after the run (wr_loader_scratch) */
    /* owned */
    float *vec;               /* the f32 copies */
    size_t vec_used, vec_cap; /* floats */
    uint8_t *f8;              /* the FP8-converted matrices */
    size_t f8_used, f8_cap;
    wr_tensor **res; /* the resident tensors' fields */
    int64_t nres, res_cap;
    wr_weight **w8; /* the e4m3 weights, whose scales go to the device */
    float *scales;  /* [nw8] their scales (host; what a host-visible backend's dscale reads) */
    int64_t nw8, w8_cap;
    int64_t nscale;   /* the checkpoint's scale tensors read (wr_fp8_scale_name) */
    wr_dev_arena dev; /* their device copy (nothing allocated where be->host_visible) */
    /* a run's state */
    int pass;
    wr_load_report rep;
    wr_status st;
} wr_loader;

/* Runs the two passes: walk(model, visit, ctx) must call visit(ctx, ...) once per expected
 * tensor, the same sequence both times (wr_loader_visit, which asks l->field; or the model's
 * own callback ending in wr_loader_bind). *count: the tensors walked. Failures: WR_ERR_FORMAT
 * (wr_load_fail: the first problems), WR_ERR_OOM_HOST, a read error. */
wr_status wr_loader_run(wr_loader *l, int64_t (*walk)(void *model, wr_visit_fn visit, void *ctx),
                        int64_t *count);
void wr_loader_visit(void *l, const char *name, int ndim, const int64_t *shape);
void wr_loader_bind(wr_loader *l, const char *name, int ndim, const int64_t *shape,
                    const wr_load_field *f);
/* After the run: n floats of host f32 (from extra_floats) as a [n] tensor the model fills;
 * resident: uploaded with the resident weights. */
wr_status wr_loader_scratch(wr_loader *l, int64_t n, int resident, wr_tensor *out);
/* Where the ops cannot read host memory (!be->host_visible): every resident tensor into one
 * device arena of their size, the fields rewritten to point there. Elsewhere nothing moves.
 * Both: every e4m3 weight's dscale set (into that arena, or the host scale array where the
 * backend is host-visible). */
wr_status wr_loader_upload(wr_loader *l, wr_backend *be);
/* Frees the host arenas: only once every tensor in them was uploaded (a model whose fields
 * are all resident, after wr_loader_upload on a backend that is not host-visible). */
void wr_loader_drop_host(wr_loader *l);
void wr_loader_free(wr_loader *l);

/* Activations carved from one workspace, each tensor in its own dtype and starting on a 64-byte
 * boundary; with base NULL only counts (the plan pass). used and cap count 4-byte units (a
 * workspace of `used` units is used * sizeof(float) bytes), whatever the dtypes. */
typedef struct wr_carve {
    float *base;
    size_t used, cap; /* 4-byte units */
} wr_carve;

/* An F32 tensor of the shape. */
wr_tensor wr_carve_take(wr_carve *c, int ndim, const int64_t *shape);
/* A tensor of dtype dt (a float dtype of 1, 2 or 4 bytes) of the shape. */
wr_tensor wr_carve_take_as(wr_carve *c, wr_dtype dt, int ndim, const int64_t *shape);
#define WR_TAKE(c, ...)                                                                            \
    wr_carve_take((c), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),                  \
                  (int64_t[]){__VA_ARGS__})
#define WR_TAKE_AS(c, dt, ...)                                                                     \
    wr_carve_take_as((c), (dt), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),         \
                     (int64_t[]){__VA_ARGS__})

#endif /* WR_MODELS_LOADER_H */
