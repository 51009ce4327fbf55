/*
 * test_cuda_cast.c — the CUDA cast kernels against the CPU conversions (which match PyTorch,
 * see test_dtype.c), bit for bit over every narrow pattern and the f32 edge inputs. Exits 77
 * (skipped) where no GPU is usable.
 */
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/safetensors.h"
#include "harness.h"
#include "kernels/backend.h"
#include "kernels/cuda/cuda_device.h"

static void *dev(size_t n) {
    void *p = NULL;
    ck_assert_int_eq(cudaMalloc(&p, n ? n : 1), cudaSuccess);
    return p;
}

START_TEST(test_casts_match_cpu) {
    wr_st_file *tab = NULL;
    ck_assert_int_eq(wr_st_open(&tab, wr_test_data("dtype/dtype_tables.safetensors")), WR_OK);
    const wr_st_tensor *e = wr_st_find(tab, "edge_f32");
    int64_t ne = e->nelem;
    const int64_t n = ne > 65536 ? ne : 65536;
    float *h_f = malloc((size_t)n * 4), *h_back = malloc((size_t)n * 4),
          *cpu_f = malloc((size_t)n * 4);
    uint8_t *h_narrow = malloc((size_t)n * 2), *cpu_narrow = malloc((size_t)n * 2);
    void *d_narrow = dev((size_t)n * 2);
    float *d_f = dev((size_t)n * 4);
    const wr_dtype kinds[] = {WR_DTYPE_BF16, WR_DTYPE_F16, WR_DTYPE_F8_E4M3, WR_DTYPE_F8_E5M2};
    for (int k = 0; k < 4; k++) {
        wr_dtype d = kinds[k];
        size_t sz = wr_dtype_size(d);
        int64_t np = sz == 2 ? 65536 : 256;
        /* every narrow pattern -> f32 */
        for (int64_t i = 0; i < np; i++) {
            if (sz == 2)
                ((uint16_t *)h_narrow)[i] = (uint16_t)i;
            else
                h_narrow[i] = (uint8_t)i;
        }
        cudaMemcpy(d_narrow, h_narrow, (size_t)np * sz, cudaMemcpyHostToDevice);
        ck_assert_int_eq(wr_cuda_convert(d_f, WR_DTYPE_F32, d_narrow, d, np), WR_OK);
        cudaMemcpy(h_back, d_f, (size_t)np * 4, cudaMemcpyDeviceToHost);
        wr_dtype_convert(cpu_f, WR_DTYPE_F32, h_narrow, d, np);
        ck_assert_msg(memcmp(h_back, cpu_f, (size_t)np * 4) == 0, "%s -> f32 differs",
                      wr_dtype_name(d));
        /* f32 edge inputs -> narrow */
        memcpy(h_f, wr_st_tensor_data(e), (size_t)ne * 4);
        cudaMemcpy(d_f, h_f, (size_t)ne * 4, cudaMemcpyHostToDevice);
        ck_assert_int_eq(wr_cuda_convert(d_narrow, d, d_f, WR_DTYPE_F32, ne), WR_OK);
        cudaMemcpy(h_narrow, d_narrow, (size_t)ne * sz, cudaMemcpyDeviceToHost);
        wr_dtype_convert(cpu_narrow, d, h_f, WR_DTYPE_F32, ne);
        ck_assert_msg(memcmp(h_narrow, cpu_narrow, (size_t)ne * sz) == 0, "f32 -> %s differs",
                      wr_dtype_name(d));
    }
    ck_assert_int_eq(wr_cuda_convert(d_f, WR_DTYPE_F32, d_narrow, WR_DTYPE_I32, 1),
                     WR_ERR_UNSUPPORTED);
    cudaFree(d_narrow);
    cudaFree(d_f);
    free(h_f);
    free(h_back);
    free(cpu_f);
    free(h_narrow);
    free(cpu_narrow);
    wr_st_close(tab);
}
END_TEST

Suite *wr_test_suite(void) {
    wr_device_info di;
    if (wr_backend_probe_cuda(&di) != WR_OK) wr_test_skip(wr_error_detail());
    Suite *s = suite_create("cuda_cast");
    TCase *tc = tcase_create("cast");
    tcase_add_test(tc, test_casts_match_cpu);
    suite_add_tcase(s, tc);
    return s;
}
