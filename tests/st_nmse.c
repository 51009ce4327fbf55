/*
 * st_nmse.c — st_nmse A.safetensors B.safetensors TENSOR MAX: prints the NMSE of tensor TENSOR
 * of A against B (read as f32) and exits 0 when it is at most MAX, 1 when it is larger (or
 * either holds a NaN or an infinity), 2 on a usage or file error. The CLI test (test_cli.sh)
 * compares --save-latents files of runs whose results agree to a bound, not bit for bit
 * (context parallelism: tests/harness.h, WR_TEST_CP_NMSE).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"
#include "core/status.h"

static float *read_f32(wr_st_file **f, const char *path, const char *name, int64_t *n,
                       const wr_st_tensor **t) {
    if (wr_st_open(f, path) != WR_OK) {
        fprintf(stderr, "st_nmse: %s\n", wr_error_detail());
        return NULL;
    }
    *t = wr_st_find(*f, name);
    if (!*t) {
        fprintf(stderr, "st_nmse: %s: no tensor %s\n", path, name);
        return NULL;
    }
    *n = (*t)->nelem;
    float *v = malloc(sizeof(float) * (size_t)(*n > 0 ? *n : 1));
    if (!v || wr_st_read_as(*t, WR_DTYPE_F32, v, sizeof(float) * (size_t)*n) != WR_OK) {
        fprintf(stderr, "st_nmse: %s: cannot read %s: %s\n", path, name, wr_error_detail());
        free(v);
        return NULL;
    }
    return v;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: st_nmse A.safetensors B.safetensors TENSOR MAX_NMSE\n");
        return 2;
    }
    char *end = NULL;
    const double max = strtod(argv[4], &end);
    if (!end || *end || !(max >= 0)) {
        fprintf(stderr, "st_nmse: MAX_NMSE %s is not a number >= 0\n", argv[4]);
        return 2;
    }
    wr_st_file *fa = NULL, *fb = NULL;
    const wr_st_tensor *ta = NULL, *tb = NULL;
    int64_t na = 0, nb = 0;
    float *a = read_f32(&fa, argv[1], argv[3], &na, &ta);
    float *b = a ? read_f32(&fb, argv[2], argv[3], &nb, &tb) : NULL;
    int rc = 2;
    if (a && b) {
        if (na != nb || ta->ndim != tb->ndim ||
            memcmp(ta->shape, tb->shape, sizeof(int64_t) * (size_t)ta->ndim) != 0) {
            fprintf(stderr, "st_nmse: %s has another shape in the two files\n", argv[3]);
        } else {
            double num = 0, den = 0;
            int finite = 1;
            for (int64_t i = 0; i < na; i++) {
                if (!isfinite(a[i]) || !isfinite(b[i])) finite = 0;
                const double d = (double)a[i] - (double)b[i];
                num += d * d;
                den += (double)b[i] * (double)b[i];
            }
            const double e = !finite ? INFINITY : den > 0 ? num / den : num;
            printf("%s: nmse %.3g (bound %.3g)\n", argv[3], e, max);
            rc = e <= max ? 0 : 1;
        }
    }
    free(a);
    free(b);
    wr_st_close(fa);
    wr_st_close(fb);
    return rc;
}
