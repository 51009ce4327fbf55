/* loader.c — shared tensor lookup with problem reports, FP8 conversion, and workspace carving
 * (loader.h). */
#include "models/loader.h"

#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/status.h"

void wr_load_problem(wr_load_report *r, const char *fmt, ...) {
    if (r->problems++ >= WR_LOAD_SHOWN) return;
    size_t n = strlen(r->text);
    if (r->problems > 1 && n + 2 < sizeof r->text) {
        memcpy(r->text + n, "; ", 3);
        n += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->text + n, sizeof r->text - n, fmt, ap);
    va_end(ap);
}

const wr_st_tensor *wr_load_expect(wr_load_report *r, const wr_st_set *set, const char *key,
                                   int ndim, const int64_t *shape) {
    const wr_st_tensor *t = wr_st_set_find(set, key);
    if (t == NULL) {
        wr_load_problem(r, "%s missing", key);
        return NULL;
    }
    int ok = t->ndim == ndim && wr_dtype_is_float(t->dtype) && t->dtype != WR_DTYPE_F64;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char want[160], got[160];
        wr_load_problem(r, "%s is %s %s, expected F32/BF16/F16/F8 %s", key, wr_dtype_name(t->dtype),
                        wr_shape_str(got, sizeof got, t->ndim, t->shape),
                        wr_shape_str(want, sizeof want, ndim, shape));
        return NULL;
    }
    return t;
}

wr_status wr_load_fail(const wr_load_report *r, const char *dir, int64_t total, const char *what) {
    return WR_FAIL(WR_ERR_FORMAT, "%s: %d of %lld %s tensors missing or mis-shaped: %s%s", dir,
                   r->problems, (long long)total, what, r->text,
                   r->problems > WR_LOAD_SHOWN ? "; ..." : "");
}

int64_t wr_load_count_blocks(const wr_st_set *set, const char *prefix) {
    const size_t pl = strlen(prefix);
    int64_t n = 0;
    for (int64_t i = 0; i < wr_st_set_count(set); i++) {
        const char *name = wr_st_set_at(set, i)->name;
        if (strncmp(name, prefix, pl) != 0) continue;
        const char *d = name + pl;
        int64_t v = 0;
        int digits = 0;
        while (*d >= '0' && *d <= '9' && digits < 12) v = v * 10 + (*d++ - '0'), digits++;
        if (digits > 0 && *d == '.' && v + 1 > n) n = v + 1;
    }
    return n;
}

wr_status wr_load_check_layers(const wr_st_set *set, const char *prefix, int64_t layers,
                               const char *config_path, const char *field, const char *dir) {
    const int64_t have = wr_load_count_blocks(set, prefix);
    if (have < layers)
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: field '%s' is %lld; the checkpoint in %s holds %lld blocks "
                       "(%s0 .. %s%lld)",
                       config_path, field, (long long)layers, dir, (long long)have, prefix, prefix,
                       (long long)(have - 1));
    return WR_OK;
}

/* The product of a shape, saturated at INT64_MAX (a plan pass over absurd shapes then asks for
 * more memory than exists instead of wrapping around). */
static int64_t nelem_saturated(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || __builtin_mul_overflow(n, shape[i], &n)) return INT64_MAX;
    return n;
}

wr_tensor wr_carve_take_as(wr_carve *c, wr_dtype dt, int ndim, const int64_t *shape) {
    const size_t es = wr_dtype_size(dt);
    WR_ASSERT(es == 1 || es == 2 || es == 4);
    const int64_t n = nelem_saturated(ndim, shape);
    float *p = c->base ? c->base + c->used : NULL;
    /* n elements of es bytes in 4-byte units, rounded up to 16 of them (64-byte starts) */
    const int64_t units = n > (INT64_MAX >> 3) ? 0 : (n * (int64_t)es + 3) / 4;
    const size_t take = n > (INT64_MAX >> 3) ? SIZE_MAX / 8 : (size_t)((units + 15) & ~(int64_t)15);
    c->used = c->used > SIZE_MAX / 8 - take ? SIZE_MAX / 8 : c->used + take;
    WR_ASSERT(c->base == NULL || c->used <= c->cap);
    return wr_tensor_make(p, dt, ndim, shape);
}

wr_tensor wr_carve_take(wr_carve *c, int ndim, const int64_t *shape) {
    return wr_carve_take_as(c, WR_DTYPE_F32, ndim, shape);
}

wr_status wr_load_fp8(const wr_st_tensor *t, uint8_t *dst, float *scale) {
    float *tmp = malloc(sizeof(float) * (size_t)t->nelem);
    if (tmp == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory converting to FP8");
    const wr_status st = wr_st_read_as(t, WR_DTYPE_F32, tmp, (size_t)t->nelem * sizeof(float));
    if (st != WR_OK) {
        free(tmp);
        return st;
    }
    float amax = 0.0f;
    for (int64_t i = 0; i < t->nelem; i++) {
        const float a = fabsf(tmp[i]);
        if (a > amax) amax = a;
    }
    const float s = amax > 0.0f && isfinite(amax) ? amax / 448.0f : 1.0f;
    for (int64_t i = 0; i < t->nelem; i++) tmp[i] /= s;
    wr_dtype_convert(dst, WR_DTYPE_F8_E4M3, tmp, WR_DTYPE_F32, t->nelem);
    free(tmp);
    *scale = s;
    return WR_OK;
}

/* ---- the resident device arena ---- */

size_t wr_dev_arena_need(size_t nbytes) {
    return (nbytes + 63) & ~(size_t)63;
}

wr_status wr_dev_arena_init(wr_dev_arena *a, wr_backend *be, size_t bytes) {
    memset(a, 0, sizeof *a);
    a->be = be;
    if (bytes == 0) return WR_OK;
    void *p = NULL;
    WR_TRY(be->iface->alloc(be, &p, bytes));
    a->base = p;
    a->cap = bytes;
    return WR_OK;
}

wr_status wr_dev_arena_take(wr_dev_arena *a, size_t nbytes, void **out) {
    const size_t n = wr_dev_arena_need(nbytes);
    *out = NULL;
    if (n > a->cap - a->used)
        return WR_FAIL(WR_ERR_INTERNAL,
                       "device weight arena: %zu bytes asked, %zu of %zu left "
                       "(the plan pass missed a tensor)",
                       nbytes, a->cap - a->used, a->cap);
    *out = a->base + a->used;
    a->used += n;
    return WR_OK;
}

wr_status wr_dev_arena_put(wr_dev_arena *a, wr_tensor *t, int force) {
    if (t->data == NULL || (a->be->host_visible && !force)) return WR_OK;
    const size_t n = wr_tensor_nbytes(t);
    void *d = NULL;
    WR_TRY(wr_dev_arena_take(a, n, &d));
    WR_TRY(wr_upload(a->be, d, t->data, n));
    t->data = d;
    return WR_OK;
}

void wr_dev_arena_free(wr_dev_arena *a) {
    if (a->base) a->be->iface->free(a->be, a->base);
    memset(a, 0, sizeof *a);
}

wr_status wr_dev_arena_blocks(wr_dev_arena *a, wr_backend *be, const void *blocks,
                              size_t struct_size, int64_t n, int (*tensors)(void *, wr_tensor **),
                              void **out) {
    *out = NULL;
    memset(a, 0, sizeof *a);
    char *copy = malloc(struct_size * (size_t)(n > 0 ? n : 1));
    if (copy == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for a block table");
    memcpy(copy, blocks, struct_size * (size_t)n);
    wr_tensor *t[64];
    size_t bytes = 0;
    for (int64_t i = 0; i < n; i++) {
        const int k = tensors(copy + (size_t)i * struct_size, t);
        WR_ASSERT(k <= 64);
        for (int j = 0; j < k; j++)
            if (t[j]->data) bytes += wr_dev_arena_need(wr_tensor_nbytes(t[j]));
    }
    wr_status st = wr_dev_arena_init(a, be, bytes);
    for (int64_t i = 0; st == WR_OK && i < n; i++) {
        const int k = tensors(copy + (size_t)i * struct_size, t);
        for (int j = 0; st == WR_OK && j < k; j++) st = wr_dev_arena_put(a, t[j], 1);
    }
    if (st != WR_OK) {
        wr_dev_arena_free(a);
        free(copy);
        return st;
    }
    *out = copy;
    return WR_OK;
}

/* ---- the loader ---- */

static size_t align16f(int64_t n) {
    return (size_t)((n + 15) & ~(int64_t)15);
}

static int64_t shape_nelem(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

static wr_status push_resident(wr_loader *l, wr_tensor *t) {
    if (l->nres == l->res_cap) {
        const int64_t cap = l->res_cap ? 2 * l->res_cap : 64;
        wr_tensor **r = realloc(l->res, sizeof *r * (size_t)cap);
        if (r == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory loading %s", l->dir);
        l->res = r;
        l->res_cap = cap;
    }
    l->res[l->nres++] = t;
    return WR_OK;
}

static wr_status push_w8(wr_loader *l, wr_weight *w) {
    if (l->nw8 == l->w8_cap) {
        const int64_t cap = l->w8_cap ? 2 * l->w8_cap : 64;
        wr_weight **r = realloc(l->w8, sizeof *r * (size_t)cap);
        if (r == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory loading %s", l->dir);
        l->w8 = r;
        l->w8_cap = cap;
    }
    l->w8[l->nw8++] = w;
    return WR_OK;
}

void wr_fp8_scale_name(char *dst, size_t cap, const char *weight_name) {
    const size_t n = strlen(weight_name);
    const size_t keep = n >= 7 && strcmp(weight_name + n - 7, ".weight") == 0 ? n - 7 : n;
    snprintf(dst, cap, "%.*s.scale_weight", (int)keep, weight_name);
}

/* The scale of an e4m3 weight KEY stored beside it (KEY's module + ".scale_weight", an F32 of
 * one element, finite and > 0), 1 when there is none (diffusers' layerwise casting stores
 * plain casts); counted, so that the "extra tensors" check knows it was used. A malformed one
 * is a problem of the report. */
static wr_status checkpoint_scale(wr_loader *l, const char *key, float *scale) {
    char sk[192];
    wr_fp8_scale_name(sk, sizeof sk, key);
    const wr_st_tensor *t = wr_st_set_find(l->set, sk);
    *scale = 1.0f;
    if (t == NULL) return WR_OK;
    float v = 0.0f;
    if (t->dtype != WR_DTYPE_F32 || t->nelem != 1) {
        wr_load_problem(&l->rep, "%s is %s with %lld elements, expected one F32", sk,
                        wr_dtype_name(t->dtype), (long long)t->nelem);
        return WR_OK;
    }
    WR_TRY(wr_st_read(t, &v, sizeof v));
    if (!isfinite(v) || v <= 0.0f) {
        wr_load_problem(&l->rep, "%s is %g, expected a finite scale > 0", sk, (double)v);
        return WR_OK;
    }
    *scale = v;
    l->nscale++;
    return WR_OK;
}

void wr_loader_bind(wr_loader *l, const char *name, int ndim, const int64_t *shape,
                    const wr_load_field *f) {
    const int fp8 = l->fp8 && f->fp8 && f->w != NULL;
    if (l->pass == 0) { /* count the host copies (at most: a checkpoint e4m3 stays in place) */
        const int64_t n = shape_nelem(ndim, shape);
        if (fp8)
            l->f8_cap += wr_dev_arena_need((size_t)n);
        else if (f->f32)
            l->vec_cap += align16f(n);
        return;
    }
    if (l->st != WR_OK) return;
    const wr_st_tensor *t = wr_load_expect(&l->rep, l->set, f->key[0] ? f->key : name, ndim, shape);
    if (t == NULL) return;
    if (f->w) {
        WR_ASSERT(f->t == &f->w->t);
        f->w->scale = 1.0f;
        f->w->dscale = NULL;
    }
    if (f->w && t->dtype == WR_DTYPE_F8_E4M3) { /* a scaled e4m3 checkpoint (wanrun convert) */
        l->st = checkpoint_scale(l, t->name, &f->w->scale);
        if (l->st != WR_OK) return;
    }
    if (fp8 && t->dtype != WR_DTYPE_F8_E4M3) {
        WR_ASSERT(l->f8_used + (size_t)t->nelem <= l->f8_cap);
        uint8_t *q = l->f8 + l->f8_used;
        l->f8_used += wr_dev_arena_need((size_t)t->nelem);
        l->st = wr_load_fp8(t, q, &f->w->scale);
        *f->t = wr_tensor_make(q, WR_DTYPE_F8_E4M3, ndim, shape);
    } else if (f->f32 && !fp8) {
        float *v = l->vec + l->vec_used;
        l->vec_used += align16f(t->nelem);
        WR_ASSERT(l->vec_used <= l->vec_cap);
        l->st = wr_st_read_as(t, WR_DTYPE_F32, v, (size_t)t->nelem * sizeof(float));
        *f->t = f->flat ? wr_tensor_make(v, WR_DTYPE_F32, 1, (int64_t[]){t->nelem})
                        : wr_tensor_make(v, WR_DTYPE_F32, ndim, shape);
    } else {
        *f->t = wr_st_tensor_view(t); /* used in place, its storage dtype */
    }
    if (l->st == WR_OK && f->resident) l->st = push_resident(l, f->t);
    if (l->st == WR_OK && f->w && f->t->dtype == WR_DTYPE_F8_E4M3) l->st = push_w8(l, f->w);
}

void wr_loader_visit(void *ctx, const char *name, int ndim, const int64_t *shape) {
    wr_loader *l = ctx;
    wr_load_field f = {0};
    l->field(l->model, name, ndim, &f);
    WR_ASSERT(f.t != NULL);
    wr_loader_bind(l, name, ndim, shape, &f);
}

wr_status wr_loader_run(wr_loader *l, int64_t (*walk)(void *model, wr_visit_fn visit, void *ctx),
                        int64_t *count) {
    l->pass = 0;
    l->vec_cap = l->extra_floats;
    l->f8_cap = 0;
    walk(l->model, wr_loader_visit, l);
    l->vec = malloc(l->vec_cap * sizeof(float) + 64);
    l->f8 = l->f8_cap ? malloc(l->f8_cap + 64) : NULL;
    if (l->vec == NULL || (l->f8_cap && l->f8 == NULL))
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory loading %s", l->dir);
    l->pass = 1;
    l->st = WR_OK;
    memset(&l->rep, 0, sizeof l->rep);
    l->nscale = 0;
    const int64_t n = walk(l->model, wr_loader_visit, l);
    if (count) *count = n + l->nscale; /* the scales beside e4m3 weights are used too */
    WR_TRY(l->st);
    if (l->rep.problems) return wr_load_fail(&l->rep, l->dir, n, l->what);
    return WR_OK;
}

wr_status wr_loader_scratch(wr_loader *l, int64_t n, int resident, wr_tensor *out) {
    WR_ASSERT(l->vec != NULL && l->vec_used + align16f(n) <= l->vec_cap);
    *out = wr_tensor_make(l->vec + l->vec_used, WR_DTYPE_F32, 1, (int64_t[]){n});
    l->vec_used += align16f(n);
    return resident ? push_resident(l, out) : WR_OK;
}

wr_status wr_loader_upload(wr_loader *l, wr_backend *be) {
    /* the e4m3 weights' scales: one array, its host copy kept for the model's life */
    free(l->scales);
    l->scales = NULL;
    if (l->nw8) {
        l->scales = malloc(sizeof(float) * (size_t)l->nw8);
        if (l->scales == NULL)
            return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory loading %s", l->dir);
        for (int64_t i = 0; i < l->nw8; i++) l->scales[i] = l->w8[i]->scale;
    }
    if (be->host_visible) {
        wr_dev_arena_init(&l->dev, be, 0);
        for (int64_t i = 0; i < l->nw8; i++) l->w8[i]->dscale = l->scales + i;
        return WR_OK;
    }
    size_t bytes = l->nw8 ? wr_dev_arena_need(sizeof(float) * (size_t)l->nw8) : 0;
    for (int64_t i = 0; i < l->nres; i++)
        if (l->res[i]->data) bytes += wr_dev_arena_need(wr_tensor_nbytes(l->res[i]));
    WR_TRY(wr_dev_arena_init(&l->dev, be, bytes));
    for (int64_t i = 0; i < l->nres; i++) WR_TRY(wr_dev_arena_put(&l->dev, l->res[i], 0));
    if (l->nw8) {
        wr_tensor st = wr_tensor_make(l->scales, WR_DTYPE_F32, 1, (int64_t[]){l->nw8});
        WR_TRY(wr_dev_arena_put(&l->dev, &st, 1));
        for (int64_t i = 0; i < l->nw8; i++) l->w8[i]->dscale = (const float *)st.data + i;
    }
    return WR_OK;
}

void wr_loader_drop_host(wr_loader *l) {
    free(l->vec);
    free(l->f8);
    l->vec = NULL;
    l->f8 = NULL;
    l->vec_used = l->vec_cap = l->f8_used = l->f8_cap = 0;
}

void wr_loader_free(wr_loader *l) {
    wr_dev_arena_free(&l->dev);
    wr_loader_drop_host(l);
    free(l->res);
    free(l->w8);
    free(l->scales);
    l->res = NULL;
    l->w8 = NULL;
    l->scales = NULL;
    l->nres = l->res_cap = l->nw8 = l->w8_cap = 0;
}
