/*
 * test_cp.c — the context-parallel DiT (issue #7) under mpiexec -n 1, 2, 3, 4: every rank
 * runs the tiny diffusers DiTs of tests/data/dit once alone (its own reference) and once
 * sharded over all ranks, and compares:
 *   - P = 1: bitwise (the same calls on the same shapes);
 *   - Ulysses and ring at P > 1: NMSE <= WR_TEST_CP_NMSE (harness.h: each rank's GEMMs have
 *     L/P rows, and a BLAS kernel may give a row other bits depending on M; ring also reorders
 *     the softmax sums through the log-sum-exp merge);
 *   - both: against diffusers' own output in io.safetensors (NMSE <= 1e-5, as test_dit).
 * Sequences where L does not divide by P, L = 1 (ranks holding only padding), heads that do
 * not divide by P (ring; Ulysses is then a clear WR_ERR_CONFIG), and the communication volume
 * of Ulysses (4 all-to-alls of the local q/k/v/out plus the head's all-gather) are covered.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"
#include "harness.h"
#include "kernels/backend.h"
#include "models/dit.h"
#include "parallel/comm.h"

static wr_backend *g_be;
static wr_world g_world;
static wr_groups g_groups;

static float frand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* One model, one latent: alone vs sharded with each mode. golden: diffusers' output or NULL. */
static void check_latent(wr_dit *m, const char *name, const wr_tensor *x, float t,
                         const wr_tensor *e, const float *golden) {
    const wr_dit_config *cfg = wr_dit_config_of(m);
    const int P = wr_comm_size(g_groups.cp);
    const int64_t n = cfg->out_channels * x->shape[1] * x->shape[2] * x->shape[3];
    float *ref = malloc(sizeof(float) * (size_t)n), *got = malloc(sizeof(float) * (size_t)n);
    wr_tensor out =
        wr_tensor_make(ref, WR_DTYPE_F32, 4,
                       (int64_t[]){cfg->out_channels, x->shape[1], x->shape[2], x->shape[3]});
    ck_assert_int_eq(wr_dit_set_parallel(m, NULL, WR_CP_AUTO), WR_OK);
    ck_assert_msg(wr_dit_forward(m, &out, x, t, e) == WR_OK, "%s", wr_error_detail());
    if (golden) {
        const double eg = wr_test_nmse(ref, golden, n);
        ck_assert_msg(eg <= 1e-5, "%s alone vs diffusers: nmse %.3g", name, eg);
    }
    const int64_t NH = cfg->num_attention_heads;
    const wr_cp_mode modes[3] = {WR_CP_AUTO, WR_CP_ULYSSES, WR_CP_RING};
    for (int k = 0; k < 3; k++) {
        wr_status st = wr_dit_set_parallel(m, g_groups.cp, modes[k]);
        if (modes[k] == WR_CP_ULYSSES && NH % P != 0) {
            ck_assert_int_eq(st, WR_ERR_CONFIG);
            ck_assert_ptr_nonnull(strstr(wr_error_detail(), "heads"));
            continue;
        }
        ck_assert_msg(st == WR_OK, "%s", wr_error_detail());
        const wr_cp_mode used = wr_dit_cp_mode(m);
        if (P > 1)
            ck_assert_int_eq(used, modes[k] != WR_CP_AUTO ? modes[k]
                                   : NH % P == 0          ? WR_CP_ULYSSES
                                                          : WR_CP_RING);
        for (int64_t i = 0; i < n; i++) got[i] = NAN;
        out.data = got;
        wr_comm_bytes_reset();
        st = wr_dit_forward(m, &out, x, t, e);
        const uint64_t sent = wr_comm_bytes_sent();
        ck_assert_msg(st == WR_OK, "%s P=%d %s: %s", name, P, wr_cp_mode_name(used),
                      wr_error_detail());
        out.data = ref;
        const double err = wr_test_nmse(got, ref, n);
        if (P == 1)
            ck_assert_msg(memcmp(got, ref, sizeof(float) * (size_t)n) == 0,
                          "%s P=1 %s: not bitwise equal to the same forward (nmse %.3g)", name,
                          wr_cp_mode_name(used), err);
        else
            ck_assert_msg(err <= WR_TEST_CP_NMSE, "%s P=%d %s: nmse %.3g vs one rank (bound %.0e)",
                          name, P, wr_cp_mode_name(used), err, WR_TEST_CP_NMSE);
        if (golden) {
            const double eg = wr_test_nmse(got, golden, n);
            ck_assert_msg(eg <= 1e-5, "%s P=%d %s vs diffusers: nmse %.3g", name, P,
                          wr_cp_mode_name(used), eg);
        }
        if (used == WR_CP_ULYSSES && P > 1) {
            /* per block 4 all-to-alls of Ls*D floats, (P-1)/P of each leaving the rank; the head's
             * all-gather sends Ls * Cout*pt*ph*pw to each of the P-1 others */
            const int64_t pt = cfg->patch_size.v[0], ph = cfg->patch_size.v[1],
                          pw = cfg->patch_size.v[2];
            const int64_t L = (x->shape[1] / pt) * (x->shape[2] / ph) * (x->shape[3] / pw);
            const int64_t Ls = (L + P - 1) / P, D = NH * cfg->attention_head_dim;
            const uint64_t want =
                (uint64_t)cfg->num_layers * 4 * (uint64_t)(Ls * D / P * (P - 1)) * 4 +
                (uint64_t)(Ls * cfg->out_channels * pt * ph * pw) * (P - 1) * 4;
            ck_assert_msg(sent == want, "%s P=%d: %llu bytes sent, want %llu", name, P,
                          (unsigned long long)sent, (unsigned long long)want);
        }
        if (wr_test_rank() == 0)
            fprintf(stderr, "%s P=%d %-7s nmse vs one rank %.3g, %llu bytes sent by rank 0\n", name,
                    P, wr_cp_mode_name(used), err, (unsigned long long)sent);
    }
    ck_assert_int_eq(wr_dit_set_parallel(m, NULL, WR_CP_AUTO), WR_OK);
    free(ref);
    free(got);
}

static void run_model(const char *name) {
    char dir[4300], io_path[4300];
    snprintf(dir, sizeof dir, "%s/transformer", wr_test_data(name));
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", wr_test_data(name));
    wr_dit *m = NULL;
    ck_assert_msg(wr_dit_load(&m, g_be, dir) == WR_OK, "%s", wr_error_detail());
    wr_st_file *io = NULL;
    ck_assert_int_eq(wr_st_open(&io, io_path), WR_OK);
    const wr_st_tensor *lat = wr_st_find(io, "input.hidden_states");
    const wr_st_tensor *ts = wr_st_find(io, "input.timestep");
    const wr_st_tensor *enc = wr_st_find(io, "input.encoder_hidden_states");
    const wr_st_tensor *gold = wr_st_find(io, "tap.output");
    ck_assert(lat && ts && enc && gold && lat->ndim == 5);
    const int64_t *ls = lat->shape;
    wr_tensor x = wr_tensor_make((void *)wr_st_tensor_data(lat), WR_DTYPE_F32, 4,
                                 (int64_t[]){ls[1], ls[2], ls[3], ls[4]});
    wr_tensor e = wr_tensor_make((void *)wr_st_tensor_data(enc), WR_DTYPE_F32, 2,
                                 (int64_t[]){enc->shape[1], enc->shape[2]});
    const float t = ((const float *)wr_st_tensor_data(ts))[0];
    check_latent(m, name, &x, t, &e, wr_st_tensor_data(gold));

    /* latents of our own: L = 45 (no P in 2..4 divides it but 3) and L = 1 (the other ranks
     * hold only padding); same text */
    const int64_t shapes[2][3] = {{3, 6, 10}, {1, 2, 2}};
    for (int k = 0; k < 2; k++) {
        const int64_t C = wr_dit_config_of(m)->in_channels,
                      nx = C * shapes[k][0] * shapes[k][1] * shapes[k][2];
        float *xb = malloc(sizeof(float) * (size_t)nx);
        uint64_t seed = 0x9e3779b97f4a7c15ull + (uint64_t)k;
        for (int64_t i = 0; i < nx; i++) xb[i] = frand(&seed);
        wr_tensor x2 = wr_tensor_make(xb, WR_DTYPE_F32, 4,
                                      (int64_t[]){C, shapes[k][0], shapes[k][1], shapes[k][2]});
        char label[64];
        snprintf(label, sizeof label, "%s L=%lld", name,
                 (long long)(shapes[k][0] * shapes[k][1] * shapes[k][2] / 4));
        check_latent(m, label, &x2, 500.0f, &e, NULL);
        free(xb);
    }
    wr_st_close(io);
    wr_dit_free(m);
}

START_TEST(test_cp_tiny2) { /* 2 heads: Ulysses at P = 2, ring at 3 and 4 */
    run_model("dit/tiny2");
}
END_TEST

START_TEST(test_cp_tiny3) { /* 3 heads: Ulysses at P = 3, ring at 2 and 4 */
    run_model("dit/tiny3");
}
END_TEST

static void setup(void) {
    ck_assert_int_eq(wr_backend_create(&g_be, WR_BACKEND_CPU, 1), WR_OK);
    ck_assert_int_eq(wr_world_init(&g_world, NULL, NULL), WR_OK);
    wr_layout lay = {.cfg = 1, .cp = g_world.size};
    ck_assert_msg(wr_groups_create(&g_groups, &g_world, lay, -1) == WR_OK, "%s", wr_error_detail());
}

static void teardown(void) {
    wr_groups_free(&g_groups);
    wr_backend_free(g_be);
}

Suite *wr_test_suite(void) {
    Suite *s = suite_create("cp");
    TCase *tc = tcase_create("dit");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_cp_tiny2);
    tcase_add_test(tc, test_cp_tiny3);
    suite_add_tcase(s, tc);
    return s;
}
