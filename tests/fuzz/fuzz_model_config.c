/*
 * fuzz_model_config.c — libFuzzer target for the model directory: model_index.json and the
 * component configs (modeldir.c), the loaders that read them against a checkpoint (dit.c,
 * t5.c, vae.c: the tensor inventories, the layer counts), the scheduler, the planner, and a
 * DiT forward and a text encoding of whatever loads.
 *
 * An input is up to five files separated by lines "%%": model_index.json,
 * transformer/config.json, text_encoder/config.json, vae/config.json,
 * scheduler/scheduler_config.json (a blank section: that file is absent). They are written
 * into one model directory made at start, whose weight files are symlinks to the bundled tiny
 * model's (tests/data/wan-tiny, path compiled in as WR_FUZZ_DATA), so a config that matches
 * them loads and runs. Every call must return a status (never crash, hang, leak or overflow);
 * a directory that opens must plan at two sizes and every level.
 * Seeds: tests/fuzz/seeds/model_config/ (run_fuzz.sh).
 */
#define _GNU_SOURCE /* mkdtemp, symlink, realpath, nftw */
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/modeldir.h"
#include "kernels/backend.h"
#include "models/dit.h"
#include "models/sched.h"
#include "models/t5.h"
#include "models/vae.h"
#include "vram/plan.h"

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char *const files[5] = {"model_index.json", "transformer/config.json",
                                     "text_encoder/config.json", "vae/config.json",
                                     "scheduler/scheduler_config.json"};
static char g_dir[PATH_MAX];
static wr_backend *g_be;

/* dst/<name> -> the real path of src/<name> */
static void link_file(const char *src, const char *dst, const char *name) {
    char p[PATH_MAX + 300], q[PATH_MAX + 300], real[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", src, name);
    snprintf(q, sizeof q, "%s/%s", dst, name);
    if (realpath(p, real) == NULL || symlink(real, q) != 0) __builtin_trap();
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void) {
    wr_backend_free(g_be);
    if (g_dir[0]) nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    wr_log_set_level(WR_LOG_ERROR); /* the loaders' warnings for every input are noise */
    snprintf(g_dir, sizeof g_dir, "%s/wr-fuzz-model.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(g_dir) == NULL) __builtin_trap();
    atexit(cleanup);
    const char *const comps[][2] = {{"transformer", "diffusion_pytorch_model.safetensors"},
                                    {"text_encoder", "model.safetensors"},
                                    {"vae", "diffusion_pytorch_model.safetensors"},
                                    {"scheduler", NULL},
                                    {"tokenizer", "spiece.model"}};
    for (size_t i = 0; i < sizeof comps / sizeof comps[0]; i++) {
        char d[PATH_MAX + 64], s[PATH_MAX + 64];
        snprintf(d, sizeof d, "%s/%s", g_dir, comps[i][0]);
        snprintf(s, sizeof s, "%s/wan-tiny/%s", WR_FUZZ_DATA, comps[i][0]);
        if (mkdir(d, 0755) != 0) __builtin_trap();
        if (comps[i][1]) link_file(s, d, comps[i][1]);
    }
    char s[PATH_MAX + 64], d[PATH_MAX + 64];
    snprintf(s, sizeof s, "%s/wan-tiny/tokenizer", WR_FUZZ_DATA);
    snprintf(d, sizeof d, "%s/tokenizer", g_dir);
    link_file(s, d, "tokenizer_config.json");
    if (wr_backend_create(&g_be, WR_BACKEND_CPU, 1) != WR_OK) __builtin_trap();
    return 0;
}

static void put(int i, const uint8_t *p, size_t n) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", g_dir, files[i]);
    size_t k = 0;
    while (k < n && (p[k] == ' ' || p[k] == '\n' || p[k] == '\t' || p[k] == '\r')) k++;
    if (k == n) { /* an empty (or blank) section: the file is absent */
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL) __builtin_trap();
    fwrite(p, 1, n, f);
    fclose(f);
}

static void plan_all(const wr_model_dir *md, int64_t w, int64_t h, int64_t frames) {
    wr_plan_in in;
    memset(&in, 0, sizeof in);
    wr_plan_in_model(&in, md);
    in.width = w, in.height = h, in.frames = frames;
    in.cp = 2, in.cfg_parallel = 1, in.cp_mode = WR_CP_AUTO;
    in.dit_wbytes = in.t5_wbytes = in.vae_wbytes = in.act_bytes = 2;
    in.scratch = wr_backend_scratch_bytes(WR_BACKEND_CPU);
    in.tiling = wr_vae_tiling_default();
    for (int level = 0; level <= 3; level++) {
        wr_plan_out o;
        const wr_status st = wr_plan_level(&in, level, (uint64_t)1 << 30, &o);
        FUZZ_CHECK(st == WR_OK || st == WR_ERR_CONFIG || st == WR_ERR_INVALID_ARG);
        FUZZ_CHECK(st != WR_OK || o.peak_device >= o.dev_total[o.peak_phase]);
    }
}

static void run_models(const wr_model_dir *md) {
    char dir[WR_PATH_CAP + 64];
    wr_t5 *t5 = NULL;
    wr_dit *dit = NULL;
    wr_vae *vae = NULL;
    if (md->has[WR_COMP_TEXT_ENCODER]) {
        wr_model_dir_path(dir, sizeof dir, md, WR_COMP_TEXT_ENCODER);
        (void)wr_t5_load(&t5, g_be, dir);
    }
    if (md->has[WR_COMP_TRANSFORMER]) {
        wr_model_dir_path(dir, sizeof dir, md, WR_COMP_TRANSFORMER);
        (void)wr_dit_load(&dit, g_be, dir);
    }
    if (md->has[WR_COMP_VAE]) {
        wr_model_dir_path(dir, sizeof dir, md, WR_COMP_VAE);
        (void)wr_vae_load(&vae, g_be, dir);
    }
    if (dit) { /* the bundled weights fix the sizes: a config that loaded matches them */
        const wr_dit_config *c = wr_dit_config_of(dit);
        const int64_t F = c->patch_size.v[0], H = 2 * c->patch_size.v[1], W = c->patch_size.v[2];
        const int64_t nin = c->in_channels * F * H * W, nout = c->out_channels * F * H * W;
        float *lat = calloc((size_t)nin, sizeof(float)), *out = calloc((size_t)nout, 4);
        float *enc = calloc((size_t)(3 * c->text_dim), sizeof(float));
        if (lat && out && enc) {
            for (int64_t i = 0; i < nin; i++) lat[i] = (float)(i % 7) - 3.0f;
            wr_tensor lt =
                wr_tensor_make(lat, WR_DTYPE_F32, 4, (int64_t[]){c->in_channels, F, H, W});
            wr_tensor ot =
                wr_tensor_make(out, WR_DTYPE_F32, 4, (int64_t[]){c->out_channels, F, H, W});
            wr_tensor et = wr_tensor_make(enc, WR_DTYPE_F32, 2, (int64_t[]){3, c->text_dim});
            (void)wr_dit_forward(dit, &ot, &lt, 500.0f, &et);
        }
        free(lat);
        free(out);
        free(enc);
    }
    if (t5) {
        const int64_t D = wr_t5_config_of(t5)->d_model;
        const int32_t ids[3] = {5, 9, 1};
        const uint8_t mask[3] = {1, 1, 1};
        float *o = calloc((size_t)(3 * D), sizeof(float));
        if (o) {
            wr_tensor t = wr_tensor_make(o, WR_DTYPE_F32, 2, (int64_t[]){3, D});
            (void)wr_t5_encode(t5, &t, ids, mask, 3, NULL);
        }
        free(o);
    }
    wr_vae_free(vae);
    wr_dit_free(dit);
    wr_t5_free(t5);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1u << 20)) return 0;
    /* split at lines "%%" */
    size_t start = 0;
    int sec = 0;
    for (size_t i = 0; i <= size && sec < 5; i++) {
        const int at_sep = i + 2 <= size && (i == 0 || data[i - 1] == '\n') && data[i] == '%' &&
                           data[i + 1] == '%' && (i + 2 == size || data[i + 2] == '\n');
        if (i == size || at_sep) {
            put(sec++, data + start, i - start);
            start = i + 3 <= size ? i + 3 : size;
            if (at_sep) i += 2;
        }
    }
    for (; sec < 5; sec++) put(sec, NULL, 0);

    wr_model_dir *md = calloc(1, sizeof *md);
    if (md == NULL) return 0;
    const wr_status st = wr_model_dir_open(md, g_dir);
    FUZZ_CHECK(st != WR_ERR_INTERNAL && st != WR_ERR_OOM_HOST);
    if (st == WR_OK) {
        if (md->has[WR_COMP_SCHEDULER]) {
            wr_sched_kind kind;
            double shift;
            if (wr_sched_kind_of(&md->sched, &kind, &shift) == WR_OK) {
                wr_sched *s = NULL;
                FUZZ_CHECK(wr_sched_create(&s, kind, 5, shift, md->sched.num_train_timesteps) ==
                           WR_OK);
                FUZZ_CHECK(wr_sched_configure(s, &md->sched) == WR_OK);
                for (int64_t k = 0; k <= 5; k++) FUZZ_CHECK(isfinite(wr_sched_sigma(s, k)));
                wr_sched_free(s);
            }
        }
        plan_all(md, 32, 32, 5);
        plan_all(md, 832, 480, 81);
        run_models(md);
    }
    free(md);
    return 0;
}
