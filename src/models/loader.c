/* loader.c — shared tensor lookup with problem reports, and workspace carving (loader.h). */
#include "models/loader.h"

#include <stdarg.h>
#include <stdio.h>
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

wr_tensor wr_carve_take(wr_carve *c, int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *p = c->base ? c->base + c->used : NULL;
    c->used += (size_t)((n + 15) & ~(int64_t)15); /* 64-byte aligned starts */
    WR_ASSERT(c->base == NULL || c->used <= c->cap);
    return wr_tensor_make(p, WR_DTYPE_F32, ndim, shape);
}
