/*
 * test_model_config.c — the model-directory mutation corpus (tests/data/bad_model/MUTATIONS.tsv):
 * every config field the loaders read, mutated one case at a time on a fresh copy of the bundled
 * tiny model (tests/data/wan-tiny: JSON files copied and mutated, weight files symlinked), then
 * loaded through the entry points the CLI uses, in its order: the model directory, the
 * scheduler, the planner, the text encoder, the DiT, the VAE and a forward of the DiT and the
 * text encoder. Each case states the stage that must fail, the status and the pieces of the
 * message (the file, the field, the value); "ok" cases must pass every stage, and those that
 * change the scheduler must also give diffusers' tables and steps for the same config
 * (sched_variants.safetensors from tests/golden/golden_model_config.py).
 *
 * Tolerances: timesteps and float32 sigmas exact, every step's sample NMSE <= 1e-7, as
 * test_sched (measured there: tables bit-exact, UniPC steps ~1e-14, Euler steps bit-exact).
 */
#define _GNU_SOURCE /* realpath, symlink, strtok_r */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/modeldir.h"
#include "core/safetensors.h"
#include "harness.h"
#include "kernels/backend.h"
#include "models/dit.h"
#include "models/sched.h"
#include "models/t5.h"
#include "models/vae.h"
#include "vram/plan.h"

#define MAX_MUTS 8

typedef struct mutation {
    char file[64], field[64], value[512];
} mutation;

typedef struct mcase {
    char id[64], stage[16], status[32], message[512];
    mutation mut[MAX_MUTS];
    int nmut;
    int line;
} mcase;

static const char *const stages[] = {"open", "sched", "plan", "t5", "dit", "vae", "forward"};
#define NSTAGES ((int)(sizeof stages / sizeof stages[0]))

static wr_backend *g_be;
static wr_st_file *g_golden; /* sched_variants.safetensors */

/* ---- files ---- */

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *t = malloc((size_t)n + 1);
    ck_assert(t != NULL && fread(t, 1, (size_t)n, f) == (size_t)n);
    t[n] = '\0';
    fclose(f);
    return t;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* The JSON text with one mutation applied: FIELD removed, or set to VALUE inserted verbatim. */
static char *apply(const char *text, const mutation *m) {
    cJSON *root = cJSON_Parse(text);
    ck_assert_msg(root != NULL, "cannot parse the file to mutate (%s)", m->file);
    static const char *const ph = "@@WR_MUTATION@@";
    if (strcmp(m->value, "<delete>") == 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, m->field);
    } else if (cJSON_GetObjectItemCaseSensitive(root, m->field)) {
        cJSON_ReplaceItemInObjectCaseSensitive(root, m->field, cJSON_CreateString(ph));
    } else {
        cJSON_AddItemToObject(root, m->field, cJSON_CreateString(ph));
    }
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    char *hit = strstr(out, "\"@@WR_MUTATION@@\"");
    if (hit == NULL) return out;
    const size_t pre = (size_t)(hit - out), phl = strlen(ph) + 2;
    char *res = malloc(strlen(out) + strlen(m->value) + 1);
    memcpy(res, out, pre);
    strcpy(res + pre, m->value);
    strcat(res, hit + phl);
    cJSON_free(out);
    return res;
}

/* dst/<name> for every file of src: the config (file name `config`) written mutated, the rest
 * symlinked to their real paths. */
static void make_component(const char *src, const char *dst, const char *config, const mcase *c,
                           const char *rel) {
    char real[PATH_MAX], p[PATH_MAX + 300], q[PATH_MAX + 300];
    ck_assert_msg(realpath(src, real) != NULL, "%s: %s", src, strerror(errno));
    ck_assert_int_eq(mkdir(dst, 0755), 0);
    DIR *d = opendir(real);
    ck_assert(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", real, e->d_name);
        snprintf(q, sizeof q, "%s/%s", dst, e->d_name);
        if (config && strcmp(e->d_name, config) == 0) continue;
        char target[PATH_MAX];
        ck_assert(realpath(p, target) != NULL);
        ck_assert_int_eq(symlink(target, q), 0);
    }
    closedir(d);
    if (config == NULL) return;
    /* the config: from wan-tiny's component, whatever folder the weights come from */
    char cfgsrc[PATH_MAX + 300];
    snprintf(cfgsrc, sizeof cfgsrc, "%s/%s/%s", wr_test_data("wan-tiny"), rel, config);
    char *text = read_text(cfgsrc);
    char relfile[160];
    snprintf(relfile, sizeof relfile, "%s/%s", rel, config);
    for (int i = 0; i < c->nmut; i++) {
        if (strcmp(c->mut[i].file, relfile) != 0 || c->mut[i].field[0] == '@') continue;
        char *t = apply(text, &c->mut[i]);
        free(text);
        text = t;
    }
    snprintf(q, sizeof q, "%s/%s", dst, config);
    write_text(q, text);
    free(text);
}

static const char *weights_of(const mcase *c, const char *rel, char *buf, size_t cap) {
    char relfile[160];
    snprintf(relfile, sizeof relfile, "%s/config.json", rel);
    snprintf(buf, cap, "%s/%s", wr_test_data("wan-tiny"), rel);
    for (int i = 0; i < c->nmut; i++)
        if (strcmp(c->mut[i].file, relfile) == 0 && strcmp(c->mut[i].field, "@weights") == 0) {
            char v[256];
            ck_assert_int_eq(sscanf(c->mut[i].value, "\"%255[^\"]\"", v), 1);
            snprintf(buf, cap, "%s", wr_test_data(v));
        }
    return buf;
}

/* A fresh mutated copy of wan-tiny in dir. */
static void make_model(const char *dir, const mcase *c) {
    char src[PATH_MAX], dst[PATH_MAX + 64];
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(src, sizeof src, "%s/model_index.json", wr_test_data("wan-tiny"));
    char *idx = read_text(src);
    for (int i = 0; i < c->nmut; i++) {
        if (strcmp(c->mut[i].file, "model_index.json") != 0) continue;
        char *t = apply(idx, &c->mut[i]);
        free(idx);
        idx = t;
    }
    snprintf(dst, sizeof dst, "%s/model_index.json", dir);
    write_text(dst, idx);
    free(idx);
    const char *const comps[][2] = {{"transformer", "config.json"},
                                    {"text_encoder", "config.json"},
                                    {"vae", "config.json"},
                                    {"scheduler", "scheduler_config.json"},
                                    {"tokenizer", NULL}};
    for (size_t k = 0; k < sizeof comps / sizeof comps[0]; k++) {
        snprintf(dst, sizeof dst, "%s/%s", dir, comps[k][0]);
        make_component(weights_of(c, comps[k][0], src, sizeof src), dst, comps[k][1], c,
                       comps[k][0]);
    }
}

static void rm_rf(const char *p) {
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    ck_assert_int_eq(system(cmd), 0);
}

/* ---- the corpus ---- */

static int read_corpus(mcase **out) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", wr_test_data("bad_model/MUTATIONS.tsv"));
    char *text = read_text(path);
    int n = 0, cap = 256, lineno = 0;
    mcase *cs = calloc((size_t)cap, sizeof *cs);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        lineno++;
        if (line[0] == '#' || line[0] == '\0') continue;
        char *f[7];
        int nf = 0;
        for (char *p = line; nf < 7; nf++) {
            f[nf] = p;
            char *tab = strchr(p, '\t');
            if (tab == NULL) {
                nf++;
                break;
            }
            *tab = '\0';
            p = tab + 1;
        }
        ck_assert_msg(nf == 7, "MUTATIONS.tsv line %d: %d fields, want 7", lineno, nf);
        mcase *c = NULL;
        if (strcmp(f[4], "+") == 0) {
            ck_assert_msg(n > 0 && strcmp(cs[n - 1].id, f[0]) == 0,
                          "MUTATIONS.tsv line %d: '+' continues a case of another id", lineno);
            c = &cs[n - 1];
        } else {
            ck_assert(n < cap);
            c = &cs[n++];
            snprintf(c->id, sizeof c->id, "%s", f[0]);
            snprintf(c->stage, sizeof c->stage, "%s", f[4]);
            snprintf(c->status, sizeof c->status, "%s", f[5]);
            snprintf(c->message, sizeof c->message, "%s", f[6]);
            c->line = lineno;
            for (int k = 0; k < n - 1; k++)
                ck_assert_msg(strcmp(cs[k].id, c->id) != 0, "MUTATIONS.tsv: id %s twice", c->id);
        }
        if (strcmp(f[1], "-") != 0) {
            ck_assert(c->nmut < MAX_MUTS);
            mutation *m = &c->mut[c->nmut++];
            snprintf(m->file, sizeof m->file, "%s", f[1]);
            snprintf(m->field, sizeof m->field, "%s", f[2]);
            snprintf(m->value, sizeof m->value, "%s", f[3]);
        }
    }
    free(text);
    *out = cs;
    return n;
}

/* ---- the stages ---- */

static double nmse(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? num / den : num;
}

/* The scheduler the config describes; for a case with a golden, diffusers' tables and steps. */
static wr_status stage_sched(const wr_model_dir *md, const char *id, char *why, size_t cap) {
    if (!md->has[WR_COMP_SCHEDULER]) return WR_OK;
    wr_sched_kind kind;
    double shift;
    WR_TRY(wr_sched_kind_of(&md->sched, &kind, &shift));
    char key[128];
    snprintf(key, sizeof key, "%s.timesteps", id);
    const wr_st_tensor *ts = wr_st_find(g_golden, key);
    const int64_t n = ts ? ts->nelem : 4;
    wr_sched *s = NULL;
    WR_TRY(wr_sched_create(&s, kind, n, shift, md->sched.num_train_timesteps));
    wr_status st = wr_sched_configure(s, &md->sched); /* as the pipeline does */
    if (ts && st == WR_OK) {
        snprintf(key, sizeof key, "%s.sigmas", id);
        const wr_st_tensor *sg = wr_st_find(g_golden, key);
        const float *sv = wr_st_tensor_data(sg);
        for (int64_t k = 0; k < n && !why[0]; k++) {
            const double want = ts->dtype == WR_DTYPE_I64
                                    ? (double)((const int64_t *)wr_st_tensor_data(ts))[k]
                                    : (double)((const float *)wr_st_tensor_data(ts))[k];
            if ((double)wr_sched_timestep(s, k) != want)
                snprintf(why, cap, "timestep[%lld] %.9g, diffusers %.9g", (long long)k,
                         (double)wr_sched_timestep(s, k), want);
        }
        for (int64_t k = 0; k <= n && !why[0]; k++)
            if (wr_sched_sigma(s, k) != sv[k])
                snprintf(why, cap, "sigma[%lld] %.9g, diffusers %.9g", (long long)k,
                         (double)wr_sched_sigma(s, k), (double)sv[k]);
        snprintf(key, sizeof key, "%s.x.0", id);
        const wr_st_tensor *x0 = wr_st_find(g_golden, key);
        const int64_t ne = x0->nelem;
        float *x = malloc(sizeof(float) * (size_t)ne);
        memcpy(x, wr_st_tensor_data(x0), sizeof(float) * (size_t)ne);
        for (int64_t k = 0; k < n && !why[0] && st == WR_OK; k++) {
            snprintf(key, sizeof key, "%s.v.%lld", id, (long long)k);
            const wr_st_tensor *v = wr_st_find(g_golden, key);
            snprintf(key, sizeof key, "%s.x.%lld", id, (long long)k + 1);
            const wr_st_tensor *want = wr_st_find(g_golden, key);
            st = wr_sched_step(s, x, wr_st_tensor_data(v), ne);
            const double e = nmse(x, wr_st_tensor_data(want), ne);
            if (st == WR_OK && !(e <= 1e-7))
                snprintf(why, cap, "step %lld: sample nmse %.3e against diffusers", (long long)k,
                         e);
        }
        free(x);
    }
    wr_sched_free(s);
    return st;
}

/* wanrun plan --model DIR --size 32x32 --frames 5, every level (wanrun.c's inputs) */
static wr_status stage_plan(const wr_model_dir *md) {
    wr_plan_in in;
    memset(&in, 0, sizeof in);
    wr_plan_in_model(&in, md);
    in.width = 32, in.height = 32, in.frames = 5;
    in.cp = 1, in.cfg_parallel = 1;
    in.dit_wbytes = in.t5_wbytes = in.vae_wbytes = in.act_bytes = 2;
    in.scratch = wr_backend_scratch_bytes(WR_BACKEND_CPU);
    in.tiling = wr_vae_tiling_default();
    for (int level = 0; level <= 3; level++) {
        wr_plan_out o;
        WR_TRY(wr_plan_level(&in, level, 0, &o));
    }
    return WR_OK;
}

typedef struct models {
    wr_t5 *t5;
    wr_dit *dit;
    wr_vae *vae;
} models;

static wr_status stage_load(const wr_model_dir *md, int which, models *ms) {
    static const wr_component comp[3] = {WR_COMP_TEXT_ENCODER, WR_COMP_TRANSFORMER, WR_COMP_VAE};
    if (!md->has[comp[which]]) return WR_OK;
    char dir[WR_PATH_CAP + 64];
    wr_model_dir_path(dir, sizeof dir, md, comp[which]);
    if (which == 0) return wr_t5_load(&ms->t5, g_be, dir);
    if (which == 1) return wr_dit_load(&ms->dit, g_be, dir);
    return wr_vae_load(&ms->vae, g_be, dir);
}

/* One DiT forward on a [C, 2, 4, 4] latent and a text encoding of 5 ids; outputs finite. */
static wr_status stage_forward(const models *ms, char *why, size_t cap) {
    if (ms->dit) {
        const wr_dit_config *c = wr_dit_config_of(ms->dit);
        const int64_t F = 2, H = 4, W = 4, S = 8;
        float *lat = malloc(sizeof(float) * (size_t)(c->in_channels * F * H * W));
        float *out = malloc(sizeof(float) * (size_t)(c->out_channels * F * H * W));
        float *enc = calloc((size_t)(S * c->text_dim), sizeof(float));
        for (int64_t i = 0; i < c->in_channels * F * H * W; i++) lat[i] = sinf(0.37f * (float)i);
        for (int64_t i = 0; i < (S - 2) * c->text_dim; i++) enc[i] = cosf(0.11f * (float)i);
        wr_tensor lt = wr_tensor_make(lat, WR_DTYPE_F32, 4, (int64_t[]){c->in_channels, F, H, W});
        wr_tensor ot = wr_tensor_make(out, WR_DTYPE_F32, 4, (int64_t[]){c->out_channels, F, H, W});
        wr_tensor et = wr_tensor_make(enc, WR_DTYPE_F32, 2, (int64_t[]){S, c->text_dim});
        wr_status st = wr_dit_forward(ms->dit, &ot, &lt, 937.0f, &et);
        for (int64_t i = 0; st == WR_OK && i < c->out_channels * F * H * W && !why[0]; i++)
            if (!isfinite(out[i])) snprintf(why, cap, "DiT output[%lld] not finite", (long long)i);
        free(lat);
        free(out);
        free(enc);
        WR_TRY(st);
    }
    if (ms->t5) {
        const int64_t D = wr_t5_config_of(ms->t5)->d_model;
        const int32_t ids[5] = {37, 5, 211, 9, 1};
        const uint8_t mask[5] = {1, 1, 1, 1, 1};
        float *o = malloc(sizeof(float) * (size_t)(5 * D));
        wr_tensor t = wr_tensor_make(o, WR_DTYPE_F32, 2, (int64_t[]){5, D});
        wr_status st = wr_t5_encode(ms->t5, &t, ids, mask, 5, NULL);
        for (int64_t i = 0; st == WR_OK && i < 5 * D && !why[0]; i++)
            if (!isfinite(o[i])) snprintf(why, cap, "text encoding[%lld] not finite", (long long)i);
        free(o);
        WR_TRY(st);
    }
    return WR_OK;
}

/* Runs the stages in order; returns the index of the first that failed (NSTAGES: none) and its
 * status. why: a check that failed although the status was OK. */
static int run_stages(const char *dir, const char *id, wr_status *st, char *why, size_t cap) {
    wr_model_dir *md = calloc(1, sizeof *md);
    models ms = {0};
    int i = 0;
    why[0] = '\0';
    for (; i < NSTAGES; i++) {
        switch (i) {
        case 0:
            *st = wr_model_dir_open(md, dir);
            break;
        case 1:
            *st = stage_sched(md, id, why, cap);
            break;
        case 2:
            *st = stage_plan(md);
            break;
        case 3:
        case 4:
        case 5:
            *st = stage_load(md, i - 3, &ms);
            break;
        default:
            *st = stage_forward(&ms, why, cap);
            break;
        }
        if (*st != WR_OK || why[0]) break;
    }
    wr_vae_free(ms.vae);
    wr_dit_free(ms.dit);
    wr_t5_free(ms.t5);
    free(md);
    return i;
}

/* Every '|'-separated piece of want in detail. */
static int has_all(const char *detail, const char *want) {
    if (strcmp(want, "-") == 0) return 1;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", want);
    for (char *save = NULL, *p = strtok_r(buf, "|", &save); p; p = strtok_r(NULL, "|", &save))
        if (strstr(detail, p) == NULL) return 0;
    return 1;
}

START_TEST(test_mutations) {
    mcase *cs = NULL;
    const int n = read_corpus(&cs);
    ck_assert_msg(n >= 100, "only %d cases in MUTATIONS.tsv", n);
    int bad = 0;
    for (int k = 0; k < n; k++) {
        const mcase *c = &cs[k];
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/%s", wr_test_tmpdir(), c->id);
        make_model(dir, c);
        wr_status st = WR_OK;
        char why[256];
        const int at = run_stages(dir, c->id, &st, why, sizeof why);
        const char *got_stage = at == NSTAGES ? "ok" : stages[at];
        const char *detail = st != WR_OK ? wr_error_detail() : "";
        int ok = strcmp(got_stage, c->stage) == 0 && strcmp(wr_status_name(st), c->status) == 0 &&
                 why[0] == '\0' && has_all(detail, c->message);
        if (!ok) {
            bad++;
            fprintf(stderr,
                    "FAIL %s (MUTATIONS.tsv line %d): stopped at %s with %s%s%s; want %s with %s "
                    "and \"%s\"\n  detail: %s\n",
                    c->id, c->line, got_stage, wr_status_name(st), why[0] ? ", " : "", why,
                    c->stage, c->status, c->message, detail);
        }
        rm_rf(dir);
    }
    fprintf(stderr, "%d mutation cases, %d failed\n", n, bad);
    free(cs);
    ck_assert_msg(bad == 0, "%d of %d mutation cases failed (see above)", bad, n);
}
END_TEST

/* The ok cases with a scheduler golden really are compared: one per golden case. */
START_TEST(test_golden_covers_cases) {
    const wr_st_tensor *t = wr_st_find(g_golden, "baseline.timesteps");
    ck_assert_ptr_nonnull(t);
    int golden = 0;
    for (int64_t i = 0; i < wr_st_count(g_golden); i++) {
        const char *name = wr_st_at(g_golden, i)->name;
        const size_t l = strlen(name);
        golden += l > 10 && strcmp(name + l - 10, ".timesteps") == 0;
    }
    ck_assert_msg(golden >= 7, "%d scheduler cases in sched_variants.safetensors", golden);
}
END_TEST

static void setup(void) {
    ck_assert_int_eq(wr_backend_create(&g_be, WR_BACKEND_CPU, 1), WR_OK);
    ck_assert_int_eq(wr_st_open(&g_golden, wr_test_data("bad_model/sched_variants.safetensors")),
                     WR_OK);
}

static void teardown(void) {
    wr_st_close(g_golden);
    g_golden = NULL;
    wr_backend_free(g_be);
    g_be = NULL;
}

Suite *wr_test_suite(void) {
    Suite *s = suite_create("model_config");
    TCase *tc = tcase_create("mutations");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_golden_covers_cases);
    tcase_add_test(tc, test_mutations);
    suite_add_tcase(s, tc);
    return s;
}
