/*
 * make_wan_ckpt.c — writes a full-size random Wan2.1 transformer checkpoint (issue #2).
 *
 *   make_wan_ckpt OUTDIR --dtype f32|bf16 [--preset 1.3b|14b] [--seed S] [--dry-run]
 *
 * Produces OUTDIR/transformer/ laid out like the diffusers repository
 * (wan21-spec.md §1.1): config.json (§1.3) and either one diffusion_pytorch_model.safetensors
 * or shards diffusion_pytorch_model-0000K-of-0000N.safetensors with
 * diffusion_pytorch_model.safetensors.index.json. Tensor names and shapes are those of §2.6
 * (1.3B: 825 tensors, 1,418,996,800 parameters; 14B: 1095, 14,288,491,584).
 *
 * Sharding follows diffusers' save_pretrained(max_shard_size="5GB"), i.e. huggingface_hub's
 * split_torch_state_dict_into_shards: tensors in state-dict order go into the current shard
 * until adding one would exceed 5e9 bytes; a tensor larger than the limit gets a shard of its
 * own. Inside each shard the data is packed sorted by name, as the safetensors library itself
 * lays out a file (all tensors share one dtype here), with `__metadata__ {"format": "pt"}`.
 *
 * The values are random floats in [-0.05, 0.05] (then rounded to bf16 for --dtype bf16). One
 * buffer the size of the largest tensor is filled once and passed for every tensor (the writer
 * allows that), so the generator needs ~55 MB of memory for 1.3B fp32, not 5.7 GB.
 *
 * --dry-run checks the layout and prints the shard plan without writing anything.
 *
 * Stale outputs of an earlier run in OUTDIR/transformer (the single file, the index, shards)
 * are removed first so that the directory always holds exactly one checkpoint.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/safetensors.h"
#include "core/status.h"

#define MAX_SHARD_BYTES ((uint64_t)5000000000) /* diffusers max_shard_size="5GB" = 5e9 bytes */
#define NAME_CAP        96

/* ---- the model presets (wan21-spec.md §1.3, §2.6) ---- */

typedef struct preset {
    const char *name;
    int64_t D;      /* inner dim = heads * 128 */
    int64_t FF;     /* ffn_dim */
    int64_t layers; /* num_layers */
    int64_t heads;
    int64_t want_count;
    int64_t want_params;
} preset;

static const preset PRESETS[] = {
    {"1.3b", 1536, 8960, 30, 12, 825, INT64_C(1418996800)},
    {"14b", 5120, 13824, 40, 40, 1095, INT64_C(14288491584)},
};

typedef struct tdesc {
    char name[NAME_CAP];
    int ndim;
    int64_t shape[5];
    int64_t nelem;
    size_t nbytes;
    int shard; /* 0-based */
} tdesc;

typedef struct tlist {
    tdesc *v;
    int64_t n, cap;
} tlist;

static wr_status tlist_push(tlist *l, const char *name, int ndim, const int64_t *shape) {
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 1024;
        tdesc *v = realloc(l->v, (size_t)cap * sizeof(*v));
        if (!v) return WR_FAIL(WR_ERR_OOM_HOST, "tensor list of %" PRId64 " entries", cap);
        l->v = v;
        l->cap = cap;
    }
    tdesc *t = &l->v[l->n++];
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->ndim = ndim;
    t->nelem = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->nelem *= shape[i];
    }
    return WR_OK;
}

/* Pushes "<prefix>.weight" [out, in] and "<prefix>.bias" [out]. */
static wr_status push_linear(tlist *l, const char *prefix, int64_t out, int64_t in) {
    char name[NAME_CAP];
    snprintf(name, sizeof(name), "%s.weight", prefix);
    WR_TRY(tlist_push(l, name, 2, (int64_t[]){out, in}));
    snprintf(name, sizeof(name), "%s.bias", prefix);
    return tlist_push(l, name, 1, (int64_t[]){out});
}

/* The transformer's tensors in the order of wan21-spec.md §2.6 (the state-dict order that
 * drives the shard split). Text dim 4096, freq dim 256, 16 latent channels, patch (1, 2, 2). */
static wr_status build_layout(tlist *l, const preset *p) {
    const int64_t D = p->D, FF = p->FF;
    char name[NAME_CAP], pre[NAME_CAP];
    WR_TRY(tlist_push(l, "patch_embedding.weight", 5, (int64_t[]){D, 16, 1, 2, 2}));
    WR_TRY(tlist_push(l, "patch_embedding.bias", 1, (int64_t[]){D}));
    WR_TRY(push_linear(l, "condition_embedder.time_embedder.linear_1", D, 256));
    WR_TRY(push_linear(l, "condition_embedder.time_embedder.linear_2", D, D));
    WR_TRY(push_linear(l, "condition_embedder.time_proj", 6 * D, D));
    WR_TRY(push_linear(l, "condition_embedder.text_embedder.linear_1", D, 4096));
    WR_TRY(push_linear(l, "condition_embedder.text_embedder.linear_2", D, D));
    for (int64_t b = 0; b < p->layers; b++) {
        snprintf(name, sizeof(name), "blocks.%" PRId64 ".scale_shift_table", b);
        WR_TRY(tlist_push(l, name, 3, (int64_t[]){1, 6, D}));
        for (int a = 1; a <= 2; a++) {
            static const char *proj[] = {"to_q", "to_k", "to_v", "to_out.0"};
            for (int j = 0; j < 4; j++) {
                snprintf(pre, sizeof(pre), "blocks.%" PRId64 ".attn%d.%s", b, a, proj[j]);
                WR_TRY(push_linear(l, pre, D, D));
            }
            snprintf(name, sizeof(name), "blocks.%" PRId64 ".attn%d.norm_q.weight", b, a);
            WR_TRY(tlist_push(l, name, 1, (int64_t[]){D}));
            snprintf(name, sizeof(name), "blocks.%" PRId64 ".attn%d.norm_k.weight", b, a);
            WR_TRY(tlist_push(l, name, 1, (int64_t[]){D}));
        }
        snprintf(name, sizeof(name), "blocks.%" PRId64 ".norm2.weight", b);
        WR_TRY(tlist_push(l, name, 1, (int64_t[]){D}));
        snprintf(name, sizeof(name), "blocks.%" PRId64 ".norm2.bias", b);
        WR_TRY(tlist_push(l, name, 1, (int64_t[]){D}));
        snprintf(pre, sizeof(pre), "blocks.%" PRId64 ".ffn.net.0.proj", b);
        WR_TRY(push_linear(l, pre, FF, D));
        snprintf(pre, sizeof(pre), "blocks.%" PRId64 ".ffn.net.2", b);
        WR_TRY(push_linear(l, pre, D, FF));
    }
    WR_TRY(push_linear(l, "proj_out", 64, D)); /* out_channels * prod(patch) = 16 * 4 */
    WR_TRY(tlist_push(l, "scale_shift_table", 3, (int64_t[]){1, 2, D}));
    return WR_OK;
}

/* ---- sharding, as huggingface_hub.split_state_dict_into_shards_factory ---- */

static int assign_shards(tlist *l, uint64_t max_bytes) {
    int cur = -1, nshards = 0; /* cur: the open shard, -1 before the first tensor */
    uint64_t cur_bytes = 0;
    for (int64_t i = 0; i < l->n; i++) {
        tdesc *t = &l->v[i];
        if (t->nbytes > max_bytes) { /* its own shard, the open one stays open */
            t->shard = nshards++;
            continue;
        }
        if (cur < 0 || cur_bytes + t->nbytes > max_bytes) {
            cur = nshards++;
            cur_bytes = 0;
        }
        t->shard = cur;
        cur_bytes += t->nbytes;
    }
    return nshards;
}

static int cmp_by_name(const void *a, const void *b) {
    const tdesc *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* ---- files ---- */

#define PATH_CAP 4096

/* "<dir>/<name>" into buf[PATH_CAP]; WR_ERR_INVALID_ARG when it does not fit. */
static wr_status join_path(char *buf, const char *dir, const char *name) {
    int n = snprintf(buf, PATH_CAP, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_CAP)
        return WR_FAIL(WR_ERR_INVALID_ARG, "path %s/%s is too long", dir, name);
    return WR_OK;
}

/* mkdir -p */
static wr_status mkdir_p(const char *dir) {
    char buf[PATH_CAP];
    int n = snprintf(buf, sizeof(buf), "%s", dir);
    if (n < 0 || n >= PATH_CAP) return WR_FAIL(WR_ERR_INVALID_ARG, "path %s is too long", dir);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return WR_FAIL(WR_ERR_IO, "mkdir %s: %s", buf, strerror(errno));
        *p = c;
        if (c == '\0') break;
    }
    return WR_OK;
}

static int is_ckpt_file(const char *n) {
    static const char *base = "diffusion_pytorch_model";
    size_t bl = strlen(base);
    if (strncmp(n, base, bl) != 0) return 0;
    n += bl;
    if (!strcmp(n, ".safetensors") || !strcmp(n, ".safetensors.index.json")) return 1;
    unsigned k, m;
    char tail[32];
    return sscanf(n, "-%5u-of-%5u%31s", &k, &m, tail) == 3 && !strcmp(tail, ".safetensors");
}

static wr_status remove_stale(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return WR_FAIL(WR_ERR_IO, "opendir %s: %s", dir, strerror(errno));
    struct dirent *e;
    char path[PATH_CAP];
    wr_status st = WR_OK;
    while ((e = readdir(d)) != NULL) {
        if (!is_ckpt_file(e->d_name)) continue;
        if ((st = join_path(path, dir, e->d_name)) != WR_OK) break;
        if (unlink(path) != 0) {
            st = WR_FAIL(WR_ERR_IO, "remove stale %s: %s", path, strerror(errno));
            break;
        }
    }
    closedir(d);
    return st;
}

static void shard_name(char *buf, size_t cap, int k, int n) {
    if (n == 1)
        snprintf(buf, cap, "diffusion_pytorch_model.safetensors");
    else
        snprintf(buf, cap, "diffusion_pytorch_model-%05d-of-%05d.safetensors", k + 1, n);
}

static wr_status write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return WR_FAIL(WR_ERR_IO, "open %s: %s", path, strerror(errno));
    int ok = fputs(text, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok) return WR_FAIL(WR_ERR_IO, "write %s: %s", path, strerror(errno));
    return WR_OK;
}

static wr_status write_config(const char *dir, const preset *p) {
    char path[PATH_CAP], text[1024];
    WR_TRY(join_path(path, dir, "config.json"));
    snprintf(text, sizeof(text),
             "{\n"
             "  \"_class_name\": \"WanTransformer3DModel\",\n"
             "  \"_diffusers_version\": \"0.33.0.dev0\",\n"
             "  \"added_kv_proj_dim\": null,\n"
             "  \"attention_head_dim\": 128,\n"
             "  \"cross_attn_norm\": true,\n"
             "  \"eps\": 1e-06,\n"
             "  \"ffn_dim\": %" PRId64 ",\n"
             "  \"freq_dim\": 256,\n"
             "  \"image_dim\": null,\n"
             "  \"in_channels\": 16,\n"
             "  \"num_attention_heads\": %" PRId64 ",\n"
             "  \"num_layers\": %" PRId64 ",\n"
             "  \"out_channels\": 16,\n"
             "  \"patch_size\": [\n    1,\n    2,\n    2\n  ],\n"
             "  \"pos_embed_seq_len\": null,\n"
             "  \"qk_norm\": \"rms_norm_across_heads\",\n"
             "  \"rope_max_seq_len\": 1024,\n"
             "  \"text_dim\": 4096\n"
             "}\n",
             p->FF, p->heads, p->layers);
    return write_text(path, text);
}

/* The index as diffusers writes it: json.dumps(index, indent=2, sort_keys=True). */
static wr_status write_index(const char *dir, tdesc **sorted, int64_t n, uint64_t total,
                             int nshards) {
    char path[PATH_CAP], shard[128];
    WR_TRY(join_path(path, dir, "diffusion_pytorch_model.safetensors.index.json"));
    FILE *f = fopen(path, "w");
    if (!f) return WR_FAIL(WR_ERR_IO, "open %s: %s", path, strerror(errno));
    fprintf(f, "{\n  \"metadata\": {\n    \"total_size\": %" PRIu64 "\n  },\n", total);
    fprintf(f, "  \"weight_map\": {\n");
    for (int64_t i = 0; i < n; i++) {
        shard_name(shard, sizeof(shard), sorted[i]->shard, nshards);
        fprintf(f, "    \"%s\": \"%s\"%s\n", sorted[i]->name, shard, i + 1 < n ? "," : "");
    }
    fprintf(f, "  }\n}\n");
    int ok = !ferror(f);
    ok = (fclose(f) == 0) && ok;
    if (!ok) return WR_FAIL(WR_ERR_IO, "write %s: %s", path, strerror(errno));
    return WR_OK;
}

static wr_status write_shard(const char *dir, tdesc **sorted, int64_t n, int k, int nshards,
                             wr_dtype dt, const void *data) {
    char path[PATH_CAP], shard[128];
    shard_name(shard, sizeof(shard), k, nshards);
    WR_TRY(join_path(path, dir, shard));
    wr_st_writer *w = NULL;
    wr_status st;
    uint64_t bytes = 0;
    int64_t count = 0;
    WR_TRY_GOTO(st, wr_st_writer_init(&w), done);
    WR_TRY_GOTO(st, wr_st_writer_meta(w, "format", "pt"), done);
    for (int64_t i = 0; i < n; i++) {
        if (sorted[i]->shard != k) continue;
        WR_TRY_GOTO(
            st, wr_st_writer_add(w, sorted[i]->name, dt, sorted[i]->ndim, sorted[i]->shape, data),
            done);
        bytes += sorted[i]->nbytes;
        count++;
    }
    WR_TRY_GOTO(st, wr_st_writer_write(w, path), done);
    printf("  %s: %" PRId64 " tensors, %" PRIu64 " bytes of data\n", shard, count, bytes);
done:
    wr_st_writer_free(w);
    return st;
}

/* ---- random values ---- */

static uint64_t rng_next(uint64_t *s) { /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static void fill_random(void *buf, wr_dtype dt, int64_t nelem, uint64_t seed) {
    uint64_t s = seed ? seed : 1;
    for (int64_t i = 0; i < nelem; i++) {
        float u = (float)(rng_next(&s) >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
        float v = (u - 0.5f) * 0.1f;                                  /* [-0.05, 0.05) */
        if (dt == WR_DTYPE_F32)
            ((float *)buf)[i] = v;
        else
            ((uint16_t *)buf)[i] = wr_f32_to_bf16(v);
    }
}

/* ---- main ---- */

static void usage(void) {
    fprintf(stderr, "usage: make_wan_ckpt OUTDIR --dtype f32|bf16 [--preset 1.3b|14b] "
                    "[--seed S] [--dry-run]\n");
}

static wr_status run(const char *outdir, wr_dtype dt, const preset *p, uint64_t seed, int dry_run) {
    tlist l = {0};
    tdesc **sorted = NULL;
    void *data = NULL;
    wr_status st = WR_OK;
    char dir[PATH_CAP];

    WR_TRY_GOTO(st, build_layout(&l, p), done);
    size_t dsize = wr_dtype_size(dt), maxbytes = 0;
    int64_t params = 0;
    uint64_t total = 0;
    for (int64_t i = 0; i < l.n; i++) {
        l.v[i].nbytes = (size_t)l.v[i].nelem * dsize;
        params += l.v[i].nelem;
        total += l.v[i].nbytes;
        if (l.v[i].nbytes > maxbytes) maxbytes = l.v[i].nbytes;
    }
    printf("preset %s, dtype %s: %" PRId64 " tensors, %" PRId64 " parameters, %" PRIu64 " bytes\n",
           p->name, wr_dtype_name(dt), l.n, params, total);
    if (l.n != p->want_count || params != p->want_params) {
        st = WR_FAIL(WR_ERR_INTERNAL,
                     "layout mismatch: %" PRId64 " tensors / %" PRId64 " parameters, the spec "
                     "says %" PRId64 " / %" PRId64,
                     l.n, params, p->want_count, p->want_params);
        goto done;
    }
    int nshards = assign_shards(&l, MAX_SHARD_BYTES);
    if (dry_run) {
        for (int k = 0; k < nshards; k++) {
            uint64_t bytes = 0;
            int64_t count = 0;
            const char *first = NULL, *last = NULL;
            for (int64_t i = 0; i < l.n; i++) {
                if (l.v[i].shard != k) continue;
                if (!first) first = l.v[i].name;
                last = l.v[i].name;
                bytes += l.v[i].nbytes;
                count++;
            }
            printf("  shard %d of %d: %" PRId64 " tensors, %" PRIu64 " bytes (%s ... %s)\n", k + 1,
                   nshards, count, bytes, first, last);
        }
        goto done;
    }

    sorted = malloc((size_t)l.n * sizeof(*sorted));
    data = malloc(maxbytes);
    if (!sorted || !data) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "%zu bytes of random data", maxbytes);
        goto done;
    }
    for (int64_t i = 0; i < l.n; i++) sorted[i] = &l.v[i];
    qsort(sorted, (size_t)l.n, sizeof(*sorted), cmp_by_name);
    fill_random(data, dt, (int64_t)(maxbytes / dsize), seed);

    WR_TRY_GOTO(st, mkdir_p(outdir), done);
    WR_TRY_GOTO(st, join_path(dir, outdir, "transformer"), done);
    WR_TRY_GOTO(st, mkdir_p(dir), done);
    WR_TRY_GOTO(st, remove_stale(dir), done);
    WR_TRY_GOTO(st, write_config(dir, p), done);
    printf("writing %d shard%s to %s\n", nshards, nshards > 1 ? "s" : "", dir);
    for (int k = 0; k < nshards; k++)
        WR_TRY_GOTO(st, write_shard(dir, sorted, l.n, k, nshards, dt, data), done);
    if (nshards > 1) WR_TRY_GOTO(st, write_index(dir, sorted, l.n, total, nshards), done);
    printf("done: %" PRId64 " tensors, %" PRId64 " parameters, %" PRIu64 " bytes\n", l.n, params,
           total);
done:
    free(data);
    free(sorted);
    free(l.v);
    return st;
}

int main(int argc, char **argv) {
    const char *outdir = NULL, *dtype = NULL, *pname = "1.3b";
    uint64_t seed = 42;
    int dry_run = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
            dtype = argv[++i];
        else if (!strcmp(argv[i], "--preset") && i + 1 < argc)
            pname = argv[++i];
        else if (!strcmp(argv[i], "--dry-run"))
            dry_run = 1;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !outdir)
            outdir = argv[i];
        else {
            usage();
            return 2;
        }
    }
    if (!outdir || !dtype) {
        usage();
        return 2;
    }
    wr_dtype dt;
    if (!strcmp(dtype, "f32") || !strcmp(dtype, "fp32"))
        dt = WR_DTYPE_F32;
    else if (!strcmp(dtype, "bf16"))
        dt = WR_DTYPE_BF16;
    else {
        fprintf(stderr, "make_wan_ckpt: --dtype must be f32 or bf16, not '%s'\n", dtype);
        return 2;
    }
    const preset *p = NULL;
    for (size_t i = 0; i < sizeof(PRESETS) / sizeof(PRESETS[0]); i++)
        if (!strcmp(pname, PRESETS[i].name)) p = &PRESETS[i];
    if (!p) {
        fprintf(stderr, "make_wan_ckpt: --preset must be 1.3b or 14b, not '%s'\n", pname);
        return 2;
    }
    wr_status st = run(outdir, dt, p, seed, dry_run);
    if (st != WR_OK) {
        fprintf(stderr, "make_wan_ckpt: %s: %s\n", wr_status_name(st), wr_error_detail());
        return 1;
    }
    return 0;
}
