/*
 * test_parallel.c — the whole pipeline distributed (issue #7), under mpiexec -n 1, 2, 3, 4,
 * on the bundled tiny model (tests/data/wan-tiny: 2 heads). Every rank first generates alone
 * (its own reference, seeds s and s + 1), then with every layout the world size allows:
 * context parallelism over all ranks (Ulysses where the heads divide, ring always),
 * CFG-parallel alone and with context parallelism, and 2 replica groups. The final latents
 * must equal the reference of the replica's seed: bitwise where the ranks run the same calls on
 * the same shapes as one rank and only data moves (CFG-parallel, replicas), within
 * WR_TEST_CP_NMSE (harness.h) with context parallelism (Ulysses or ring: each rank's GEMMs
 * have L/P rows, and a BLAS kernel may change a row's bits with M). Latents of 30 and 45 tokens
 * (not divisible by 2 or 4) are used.
 *
 * Memory: with context parallelism over all ranks, the writer's measured device peak equals
 * the planner's for the same layout, at levels 0 and 3, and every other rank stays below it.
 *
 * Failures: a rank whose model directory is missing, or whose transformer config is corrupt,
 * makes every rank return the same status with the same text naming that rank.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "models/dit.h"
#include "parallel/comm.h"
#include "vram/plan.h"
#include "wanrun.h"

static wr_world g_world;
/* the model of the layout tests: wan-tiny, or wan22-tiny (Wan2.2's two experts) */
static const char *g_model = "wan-tiny";
static int g_level; /* the layouts' low_mem_level (the reference is always level 0) */

typedef struct req_case {
    int64_t w, h, frames;
} req_case;

static void make_request(wr_request *r, const req_case *rc, uint64_t seed, float *lat) {
    wr_request_defaults(r);
    r->prompt = "a red fox in the snow";
    r->negative_prompt = "blurry";
    r->width = rc->w, r->height = rc->h, r->frames = rc->frames;
    r->steps = 3;
    r->guidance = 4.0;
    if (strcmp(g_model, "wan22-tiny") == 0) r->guidance_2 = 2.5; /* 3 steps: t 999 | 857, 600 */
    if (strcmp(g_model, "wan22-ti2v-tiny") == 0) r->image = wr_test_data("image/rgb.png");
    r->seed = seed;
    r->latents_out = lat;
}

/* latents of one request on this rank alone */
static void reference(const req_case *rc, uint64_t seed, float *lat) {
    wr_options o;
    wr_options_defaults(&o);
    o.threads = 1;
    wr_context *ctx = NULL;
    ck_assert_msg(wr_context_create(&ctx, wr_test_data(g_model), &o) == WR_OK, "%s",
                  wr_error_detail());
    wr_request r;
    make_request(&r, rc, seed, lat);
    wr_video v;
    ck_assert_msg(wr_generate(ctx, &r, &v) == WR_OK, "%s", wr_error_detail());
    wr_video_free(&v);
    wr_context_free(ctx);
}

static void run_layout(const req_case *rc, int64_t nlat, float *const ref[2], int cfg, int cp,
                       wr_cp_mode mode) {
    wr_options o;
    wr_options_defaults(&o);
    o.threads = 1;
    o.world = &g_world;
    o.cfg_parallel = cfg, o.cp_size = cp, o.cp_mode = mode;
    o.low_mem_level = g_level;
    wr_context *ctx = NULL;
    wr_status st = wr_context_create(&ctx, wr_test_data(g_model), &o);
    ck_assert_msg(st == WR_OK, "cfg %d cp %d %s: %s", cfg, cp, wr_cp_mode_name(mode),
                  wr_error_detail());
    wr_role role;
    wr_context_role(ctx, &role);
    ck_assert_int_eq(role.replicas, g_world.size / (cfg * cp));
    ck_assert_int_eq(role.cfg, cfg);
    ck_assert_int_eq(role.cp, cp);
    float *lat = malloc(sizeof(float) * (size_t)nlat);
    wr_request r;
    make_request(&r, rc, 11, lat);
    wr_video v;
    st = wr_generate(ctx, &r, &v);
    ck_assert_msg(st == WR_OK, "%s", wr_error_detail());
    ck_assert_int_eq(v.frames != NULL, role.writer); /* only the writer decodes */
    ck_assert(role.replica < 2);
    const float *want = ref[role.replica];
    const int exact = cp == 1;
    const double e = wr_test_nmse(lat, want, nlat);
    if (exact)
        ck_assert_msg(memcmp(lat, want, sizeof(float) * (size_t)nlat) == 0,
                      "%lldx%lldx%lld cfg %d cp %d %s replica %d: not bitwise (nmse %.3g)",
                      (long long)rc->w, (long long)rc->h, (long long)rc->frames, cfg, cp,
                      wr_cp_mode_name((wr_cp_mode)role.cp_mode), role.replica, e);
    else
        ck_assert_msg(e <= WR_TEST_CP_NMSE, "%lldx%lldx%lld cfg %d cp %d %s replica %d: nmse %.3g",
                      (long long)rc->w, (long long)rc->h, (long long)rc->frames, cfg, cp,
                      wr_cp_mode_name((wr_cp_mode)role.cp_mode), role.replica, e);
    if (wr_test_rank() == 0)
        fprintf(stderr,
                "%s level %d %lldx%lldx%lld: %d replica(s) x cfg %d x cp %d (%s): nmse %.3g%s\n",
                g_model, g_level, (long long)rc->w, (long long)rc->h, (long long)rc->frames,
                role.replicas, cfg, cp, cp > 1 ? wr_cp_mode_name((wr_cp_mode)role.cp_mode) : "-", e,
                exact ? ", bitwise" : "");
    wr_video_free(&v);
    free(lat);
    wr_context_free(ctx);
}

/* The layouts of the request cases [k0, 2). */
static void layouts(int k0) {
    const int N = g_world.size;
    /* 48x80 x 5 frames: latent [16, 2, 6, 10], 30 tokens; 80x48 x 9 frames: 3x3x5 = 45; TI2V
     * (z 8, 16x): 64x64 x 5 frames [8, 2, 4, 4], 8 tokens; 64x32 x 9 frames: 3x2x1 = 6 */
    const int ti2v = strcmp(g_model, "wan22-ti2v-tiny") == 0;
    const req_case cases[2] = {{ti2v ? 64 : 80, ti2v ? 64 : 48, 5},
                               {ti2v ? 64 : 80, ti2v ? 32 : 48, 9}};
    const int64_t zc = ti2v ? 8 : 16, rs = ti2v ? 16 : 8;
    for (int k = k0; k < 2; k++) {
        const req_case *rc = &cases[k];
        const int64_t nlat = zc * ((rc->frames - 1) / 4 + 1) * (rc->h / rs) * (rc->w / rs);
        float *ref[2] = {malloc(sizeof(float) * (size_t)nlat),
                         malloc(sizeof(float) * (size_t)nlat)};
        reference(rc, 11, ref[0]);
        reference(rc, 12, ref[1]); /* replica 1: seed + 1 */
        /* context parallelism over everybody, each mode (Ulysses needs 2 heads % N == 0) */
        run_layout(rc, nlat, ref, 1, N, WR_CP_AUTO);
        run_layout(rc, nlat, ref, 1, N, WR_CP_RING);
        if (N <= 2) run_layout(rc, nlat, ref, 1, N, WR_CP_ULYSSES);
        if (N % 2 == 0) {
            run_layout(rc, nlat, ref, 2, N / 2, WR_CP_AUTO); /* CFG-parallel (+ CP at 4) */
            run_layout(rc, nlat, ref, 1, N / 2, WR_CP_AUTO); /* 2 replica groups */
        }
        if (N == 4) {
            run_layout(rc, nlat, ref, 2, 2, WR_CP_RING);
            run_layout(rc, nlat, ref, 2, 1, WR_CP_AUTO); /* CFG-parallel x 2 replicas */
        }
        free(ref[0]);
        free(ref[1]);
    }
}

START_TEST(test_layouts) {
    g_model = "wan-tiny", g_level = 0;
    layouts(0);
}
END_TEST

/* Wan2.2's two experts (the swap after the first step) against one rank at level 0: the
 * resident swap (level 0) and the streamed one (3), on the 45-token case (the suite runs in
 * three device modes and under several BLAS kernels: levels 1 and 2 swap as level 0 does, and
 * test_pipeline runs them against diffusers) */
START_TEST(test_layouts_two_experts) {
    g_model = "wan22-tiny";
    for (g_level = 0; g_level <= 3; g_level += 3) layouts(1);
    g_model = "wan-tiny", g_level = 0;
}
END_TEST

/* Wan2.2 TI2V with an image (per-token timesteps, the writer's image latent sent to the group)
 * against one rank at level 0 */
START_TEST(test_layouts_ti2v) {
    g_model = "wan22-ti2v-tiny", g_level = 0;
    layouts(0);
    g_level = 3; /* the DiT streamed, per-token timesteps in every block (the 6-token case) */
    layouts(1);
    g_model = "wan-tiny", g_level = 0;
}
END_TEST

START_TEST(test_bad_layouts) {
    const int N = g_world.size;
    wr_options o;
    wr_options_defaults(&o);
    o.world = &g_world;
    o.cp_size = N + 1; /* never divides N */
    wr_context *ctx = NULL;
    wr_status st = wr_context_create(&ctx, wr_test_data("wan-tiny"), &o);
    if (N == 1) {
        ck_assert_int_eq(st, WR_ERR_INVALID_ARG); /* needs that many ranks */
        ck_assert_ptr_nonnull(strstr(wr_error_detail(), "mpirun"));
    } else {
        ck_assert_int_eq(st, WR_ERR_INVALID_ARG);
        ck_assert_ptr_nonnull(strstr(wr_error_detail(), "does not divide"));
    }
    ck_assert_ptr_null(ctx);
    if (N > 1 && 2 % N != 0) { /* Ulysses with heads that do not divide: a clear error */
        o.cp_size = N;
        o.cp_mode = WR_CP_ULYSSES;
        st = wr_context_create(&ctx, wr_test_data("wan-tiny"), &o);
        ck_assert_int_eq(st, WR_ERR_CONFIG);
        ck_assert_ptr_nonnull(strstr(wr_error_detail(), "--cp ring"));
    }
}
END_TEST

/* a model directory whose transformer/config.json is not JSON, the rest linked to wan-tiny */
static const char *bad_model_dir(void) {
    static char dir[4200];
    snprintf(dir, sizeof dir, "%s/badmodel", wr_test_tmpdir());
    char p[4400], t[4400];
    mkdir(dir, 0755);
    const char *links[] = {"model_index.json", "scheduler", "text_encoder", "tokenizer", "vae"};
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, links[i]);
        snprintf(t, sizeof t, "%s/%s", wr_test_data("wan-tiny"), links[i]);
        ck_assert_int_eq(symlink(t, p), 0);
    }
    snprintf(p, sizeof p, "%s/transformer", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/transformer/config.json", dir);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"_class_name\": \"WanTransformer3DModel\", \"num_layers\": ", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/transformer/diffusion_pytorch_model.safetensors", dir);
    snprintf(t, sizeof t, "%s/transformer/diffusion_pytorch_model.safetensors",
             wr_test_data("wan-tiny"));
    ck_assert_int_eq(symlink(t, p), 0);
    return dir;
}

START_TEST(test_agreed_failures) {
    const int N = g_world.size, last = N - 1;
    char detail[2][1100];
    wr_status got[2];
    for (int k = 0; k < 2; k++) {
        /* the last rank alone gets a missing directory (k = 0) or a corrupt config (k = 1) */
        const char *dir = wr_test_data("wan-tiny");
        if (g_world.rank == last) dir = k == 0 ? "/nonexistent/wan-model" : bad_model_dir();
        wr_options o;
        wr_options_defaults(&o);
        o.world = &g_world;
        wr_context *ctx = NULL;
        got[k] = wr_context_create(&ctx, dir, &o);
        ck_assert_ptr_null(ctx);
        snprintf(detail[k], sizeof detail[k], "%s", wr_error_detail());
    }
    ck_assert_int_eq(got[0], WR_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(detail[0], "/nonexistent/wan-model"));
    ck_assert_ptr_nonnull(strstr(detail[1], "config.json"));
    /* every rank holds the same text */
    for (int k = 0; k < 2; k++) {
        uint64_t h = 1469598103934665603ull; /* FNV-1a of the text */
        for (const char *c = detail[k]; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
        int64_t lo = (int64_t)(h >> 1), hi = lo;
        wr_groups g;
        ck_assert_int_eq(wr_groups_create(&g, &g_world, (wr_layout){1, N}, -1), WR_OK);
        ck_assert_int_eq(wr_comm_allreduce_i64(g.world, &lo, 1, WR_REDUCE_MIN), WR_OK);
        ck_assert_int_eq(wr_comm_allreduce_i64(g.world, &hi, 1, WR_REDUCE_MAX), WR_OK);
        wr_groups_free(&g);
        ck_assert_msg(lo == hi, "ranks disagree on the error: %s", detail[k]);
        if (N > 1) {
            char want[32];
            snprintf(want, sizeof want, "rank %d: ", last);
            ck_assert_msg(strstr(detail[k], want) != NULL, "no '%s' in: %s", want, detail[k]);
        }
    }
}
END_TEST

START_TEST(test_plan_per_rank) {
    const int N = g_world.size;
    for (int mi = 0; mi < 3; mi++) {
        const int two = mi == 1, ti2v = mi == 2;
        const char *model = ti2v ? "wan22-ti2v-tiny" : two ? "wan22-tiny" : "wan-tiny";
        g_model = model; /* make_request's: guidance_2, the image */
        wr_model_dir *md = calloc(1, sizeof *md);
        ck_assert_int_eq(wr_model_dir_open(md, wr_test_data(model)), WR_OK);
        const req_case rc = ti2v ? (req_case){64, 32, 9} : (req_case){80, 48, 9};
        const int64_t nlat = ti2v ? 8 * 3 * 2 * 4 : 16 * 3 * 6 * 10;
        float *ref = malloc(sizeof(float) * (size_t)nlat); /* one rank at level 0 */
        reference(&rc, 11, ref);
        /* two experts: every level, and levels 0 and 3 again with disk offload (the waiting
         * expert then is not in host memory); TI2V with an image: every level; the latents of
         * each against one rank at level 0 */
        for (int run = 0; run < (two ? 6 : ti2v ? 4 : 2); run++) {
            const int level = two    ? (run < 4 ? run : (run - 4) * 3)
                              : ti2v ? run
                                     : run * 3,
                      disk = two && run >= 4;
            wr_options o;
            wr_options_defaults(&o);
            o.threads = 1;
            o.world = &g_world;
            o.low_mem_level = level;
            o.disk_offload = disk;
            wr_context *ctx = NULL;
            ck_assert_msg(wr_context_create(&ctx, wr_test_data(model), &o) == WR_OK, "%s",
                          wr_error_detail());
            wr_role role;
            wr_context_role(ctx, &role);
            float *lat = malloc(sizeof(float) * (size_t)nlat);
            wr_request r;
            make_request(&r, &rc, 11, lat);
            wr_video v;
            ck_assert_msg(wr_generate(ctx, &r, &v) == WR_OK, "%s", wr_error_detail());
            wr_video_free(&v);
            const double e = wr_test_nmse(lat, ref, nlat);
            if (role.cp == 1)
                ck_assert_msg(memcmp(lat, ref, sizeof(float) * (size_t)nlat) == 0,
                              "%s level %d: not bitwise one rank's at level 0 (nmse %.3g)", model,
                              level, e);
            else
                ck_assert_msg(e <= WR_TEST_CP_NMSE, "%s level %d, cp %d: nmse %.3g", model, level,
                              role.cp, e);
            wr_vram_stats s;
            wr_context_vram_stats(ctx, &s);
            wr_plan_in in;
            memset(&in, 0, sizeof in);
            wr_plan_in_model(&in, md);
            in.width = ti2v ? 64 : 80, in.height = ti2v ? 32 : 48, in.frames = 9;
            in.image = ti2v;
            in.cp = role.cp, in.cfg_parallel = role.cfg, in.cp_mode = (wr_cp_mode)role.cp_mode;
            in.dit_wbytes = 4, in.t5_wbytes = 2, in.vae_wbytes = ti2v ? 2 : 4, in.act_bytes = 4;
            in.scratch = wr_backend_scratch_bytes(WR_BACKEND_CPU);
            in.tiling = wr_vae_tiling_default();
            in.disk_offload = disk;
            in.staging = disk ? 2 * WR_VRAM_STAGING_CHUNK : 0; /* the pread target */
            in.resident_copies = wr_backend_strict_env() != 0;
            wr_plan_out p;
            ck_assert_int_eq(wr_plan_level(&in, level, 0, &p), WR_OK);
            int64_t peaks[2] = {role.writer ? (int64_t)s.total_peak : 0,
                                role.writer ? 0 : (int64_t)s.total_peak};
            wr_groups g;
            ck_assert_int_eq(wr_groups_create(&g, &g_world, (wr_layout){1, N}, -1), WR_OK);
            ck_assert_int_eq(wr_comm_allreduce_i64(g.world, peaks, 2, WR_REDUCE_MAX), WR_OK);
            wr_groups_free(&g);
            if (wr_test_rank() == 0)
                fprintf(stderr,
                        "%s, %d rank(s), level %d%s: writer %lld B (planned %llu), others <= %lld "
                        "B; host %llu B (planned %llu); latents nmse %.3g\n",
                        model, N, level, disk ? " (disk offload)" : "", (long long)peaks[0],
                        (unsigned long long)p.peak_device, (long long)peaks[1],
                        (unsigned long long)s.host_total_peak, (unsigned long long)p.peak_host, e);
            ck_assert_msg((uint64_t)peaks[0] == p.peak_device,
                          "%s level %d: writer %lld vs planned %llu", model, level,
                          (long long)peaks[0], (unsigned long long)p.peak_device);
            ck_assert(peaks[1] <= peaks[0]);
            if (role.writer) /* host: the waiting expert's blocks, the streamed layers */
                ck_assert_msg(s.host_total_peak == p.peak_host,
                              "%s level %d: host %llu vs planned %llu", model, level,
                              (unsigned long long)s.host_total_peak,
                              (unsigned long long)p.peak_host);
            free(lat);
            wr_context_free(ctx);
        }
        free(ref);
        free(md);
    }
    g_model = "wan-tiny";
}
END_TEST

static void setup(void) {
    ck_assert_int_eq(wr_world_init(&g_world, NULL, NULL), WR_OK);
}

Suite *wr_test_suite(void) {
    Suite *s = suite_create("parallel");
    TCase *tc = tcase_create("pipeline");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 0);
    tcase_add_test(tc, test_layouts);
    tcase_add_test(tc, test_layouts_two_experts);
    tcase_add_test(tc, test_layouts_ti2v);
    tcase_add_test(tc, test_bad_layouts);
    tcase_add_test(tc, test_agreed_failures);
    tcase_add_test(tc, test_plan_per_rank);
    suite_add_tcase(s, tc);
    return s;
}
