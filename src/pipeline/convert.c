/* convert.c — `wanrun convert` (see convert.h). */
#define _GNU_SOURCE
#include "pipeline/convert.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/log.h"
#include "core/modeldir.h"
#include "core/safetensors.h"
#include "models/loader.h"

#define PATH_CAP (WR_PATH_CAP + 512)

/* ---- files ---- */

static wr_status write_all(int fd, const void *p, size_t n, const char *path) {
    const char *c = p;
    while (n > 0) {
        const ssize_t w = write(fd, c, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return WR_FAIL(WR_ERR_IO, "%s: cannot write: %s", path,
                           w < 0 ? strerror(errno) : "no progress");
        c += w, n -= (size_t)w;
    }
    return WR_OK;
}

static wr_status finish_file(int fd, const char *path) {
    if (fsync(fd) != 0) {
        const int e = errno;
        close(fd);
        return WR_FAIL(WR_ERR_IO, "%s: fsync failed: %s", path, strerror(e));
    }
    if (close(fd) != 0) return WR_FAIL(WR_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    return WR_OK;
}

static wr_status create_file(const char *path, int *fd) {
    *fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (*fd < 0) return WR_FAIL(WR_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    return WR_OK;
}

/* A copy of the regular file src (a link followed) at dst. */
static wr_status copy_file(const char *src, const char *dst) {
    const int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return WR_FAIL(WR_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
    int out = -1;
    wr_status st = create_file(dst, &out);
    char *buf = st == WR_OK ? malloc((size_t)1 << 20) : NULL;
    if (st == WR_OK && buf == NULL) st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    while (st == WR_OK) {
        const ssize_t n = read(in, buf, (size_t)1 << 20);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) st = WR_FAIL(WR_ERR_IO, "%s: cannot read: %s", src, strerror(errno));
        if (n <= 0) break;
        st = write_all(out, buf, (size_t)n, dst);
    }
    free(buf);
    close(in);
    if (out >= 0) {
        const wr_status s2 = finish_file(out, dst);
        if (st == WR_OK) st = s2;
    }
    return st;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int ends_with(const char *s, const char *suf) {
    const size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)ftw;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static void remove_tree(const char *p) {
    nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int skip_name(const char *n) {
    return n[0] == '.'; /* ".", "..", hidden files and stale temporaries */
}

/* The weight components of md (rewritten, not copied). */
static int weight_folder(const wr_model_dir *md, const char *name) {
    const wr_component comps[] = {WR_COMP_TRANSFORMER, WR_COMP_TRANSFORMER_2, WR_COMP_TEXT_ENCODER,
                                  WR_COMP_VAE};
    for (size_t k = 0; k < sizeof comps / sizeof comps[0]; k++)
        if (md->has[comps[k]] && strcmp(name, wr_component_name(comps[k])) == 0) return 1;
    return 0;
}

/* src's files and folders (links followed) copied into the existing folder dst; weights: 1 to
 * leave out the safetensors files and indexes (they are rewritten); md: the root, whose weight
 * components are left out (NULL below it). */
static wr_status copy_tree(const char *src, const char *dst, int weights, int depth,
                           const wr_model_dir *md) {
    if (depth > 8) return WR_FAIL(WR_ERR_INVALID_ARG, "%s: folders nested too deep to copy", src);
    DIR *d = opendir(src);
    if (d == NULL) return WR_FAIL(WR_ERR_IO, "%s: cannot list: %s", src, strerror(errno));
    wr_status st = WR_OK;
    const struct dirent *e;
    char s[PATH_CAP], t[PATH_CAP];
    while (st == WR_OK && (e = readdir(d)) != NULL) {
        if (skip_name(e->d_name) || (md && weight_folder(md, e->d_name))) continue;
        if (weights && (ends_with(e->d_name, ".safetensors") ||
                        ends_with(e->d_name, ".safetensors.index.json")))
            continue;
        snprintf(s, sizeof s, "%s/%s", src, e->d_name);
        snprintf(t, sizeof t, "%s/%s", dst, e->d_name);
        if (is_dir(s)) {
            if (mkdir(t, 0755) != 0)
                st = WR_FAIL(WR_ERR_IO, "%s: cannot create: %s", t, strerror(errno));
            else
                st = copy_tree(s, t, 0, depth + 1, NULL);
        } else {
            st = copy_file(s, t);
        }
    }
    closedir(d);
    return st;
}

/* ---- one weight component ---- */

typedef enum { OUT_COPY, OUT_CAST, OUT_FP8, OUT_SCALE } out_kind;

typedef struct out_tensor {
    const wr_st_tensor *src;
    char name[192];
    wr_dtype dtype;
    out_kind kind;
    uint64_t nbytes;
    int shard;
    float scale; /* OUT_SCALE: filled when its weight is written (just before it) */
} out_tensor;

/* The matrices the loaders store in e4m3 under --fp8 storage (dit.c's dit_field: 2-D tensors
 * inside "blocks."; t5.c's is_fp8_candidate: 2-D tensors inside "encoder.block." other than the
 * relative position bias): the same rule, so that a converted directory gives --fp8 storage's
 * bits. */
static int fp8_candidate(wr_component c, const wr_st_tensor *t) {
    if (t->ndim != 2 || !wr_dtype_is_float(t->dtype) || t->dtype == WR_DTYPE_F8_E4M3 ||
        t->dtype == WR_DTYPE_F8_E5M2 || t->dtype == WR_DTYPE_F64)
        return 0;
    if (c == WR_COMP_TRANSFORMER || c == WR_COMP_TRANSFORMER_2)
        return strncmp(t->name, "blocks.", 7) == 0;
    if (c == WR_COMP_TEXT_ENCODER)
        return strncmp(t->name, "encoder.block.", 14) == 0 &&
               strstr(t->name, "relative_attention_bias") == NULL;
    return 0;
}

static wr_status write_header(int fd, const char *path, const out_tensor *v, int64_t n, int shard,
                              const char *meta) {
    cJSON *root = cJSON_CreateObject(), *md = cJSON_CreateObject();
    if (root == NULL || md == NULL) {
        cJSON_Delete(root);
        cJSON_Delete(md);
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    }
    cJSON_AddStringToObject(md, "format", "pt");
    cJSON_AddStringToObject(md, "wanrun_convert", meta);
    cJSON_AddItemToObject(root, "__metadata__", md);
    uint64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        if (v[i].shard != shard) continue;
        cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
        cJSON_AddStringToObject(e, "dtype", wr_dtype_name(v[i].dtype));
        const int nd = v[i].kind == OUT_SCALE ? 1 : v[i].src->ndim;
        for (int k = 0; k < nd; k++)
            cJSON_AddItemToArray(
                shape,
                cJSON_CreateNumber(v[i].kind == OUT_SCALE ? 1.0 : (double)v[i].src->shape[k]));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + v[i].nbytes)));
        cJSON_AddItemToObject(e, "shape", shape);
        cJSON_AddItemToObject(e, "data_offsets", offs);
        cJSON_AddItemToObject(root, v[i].name, e);
        off += v[i].nbytes;
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (text == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    const size_t len = strlen(text), padded = (len + 7) & ~(size_t)7;
    char *buf = malloc(8 + padded);
    if (buf == NULL) {
        free(text);
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    }
    const uint64_t hl = padded;
    for (int k = 0; k < 8; k++) buf[k] = (char)(hl >> (8 * k) & 0xff);
    memcpy(buf + 8, text, len);
    memset(buf + 8 + len, ' ', padded - len);
    free(text);
    const wr_status st = write_all(fd, buf, 8 + padded, path);
    free(buf);
    return st;
}

/* One tensor's output bytes into buf (cap bytes): copied, cast, or quantised (its scale into
 * the OUT_SCALE entry that follows it). */
static wr_status produce(out_tensor *v, void *buf, size_t cap) {
    switch (v->kind) {
    case OUT_COPY:
        return wr_st_read(v->src, buf, cap);
    case OUT_CAST:
        return wr_st_read_as(v->src, v->dtype, buf, cap);
    case OUT_FP8:
        return wr_load_fp8(v->src, buf, &v[1].scale);
    case OUT_SCALE:
        memcpy(buf, &v->scale, sizeof(float));
        return WR_OK;
    }
    return WR_FAIL(WR_ERR_INTERNAL, "convert: bad tensor kind");
}

static wr_status convert_component(const wr_model_dir *md, wr_component c, const char *dst,
                                   const wr_convert_opts *o, wr_convert_stats *stats) {
    wr_st_set *set = NULL;
    WR_TRY(wr_model_dir_weights(&set, md, c));
    const int64_t n = wr_st_set_count(set);
    out_tensor *v = calloc((size_t)(2 * n + 1), sizeof *v);
    wr_status st = v ? WR_OK : WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    int64_t nv = 0, nshards = 0;
    uint64_t shard_used = 0, biggest = 0;
    const uint64_t limit = o->shard_bytes ? o->shard_bytes : WR_CONVERT_SHARD_BYTES;
    for (int64_t i = 0; st == WR_OK && i < n; i++) {
        const wr_st_tensor *t = wr_st_set_at(set, i);
        if (strlen(t->name) + 16 >= sizeof v[0].name) {
            st = WR_FAIL(WR_ERR_UNSUPPORTED, "%s: tensor name %.64s... is too long to convert",
                         wr_st_set_path(set), t->name);
            break;
        }
        out_tensor *w = &v[nv];
        *w = (out_tensor){.src = t, .dtype = t->dtype, .kind = OUT_COPY};
        snprintf(w->name, sizeof w->name, "%s", t->name);
        if (o->dtype == WR_DTYPE_F8_E4M3 && fp8_candidate(c, t)) {
            w->dtype = WR_DTYPE_F8_E4M3, w->kind = OUT_FP8;
        } else if (o->dtype == WR_DTYPE_BF16 && t->dtype == WR_DTYPE_F32) {
            w->dtype = WR_DTYPE_BF16, w->kind = OUT_CAST;
        }
        w->nbytes = (uint64_t)t->nelem * wr_dtype_size(w->dtype);
        const int with_scale = w->kind == OUT_FP8;
        const uint64_t need = w->nbytes + (with_scale ? 4 : 0);
        if (shard_used > 0 && shard_used + need > limit) nshards++, shard_used = 0;
        w->shard = (int)nshards;
        shard_used += need;
        if (w->nbytes > biggest) biggest = w->nbytes;
        if (with_scale) {
            out_tensor *sc = &v[nv + 1];
            *sc = (out_tensor){.src = t,
                               .dtype = WR_DTYPE_F32,
                               .kind = OUT_SCALE,
                               .nbytes = 4,
                               .shard = w->shard,
                               .scale = 1.0f};
            wr_fp8_scale_name(sc->name, sizeof sc->name, t->name);
            if (wr_st_set_find(set, sc->name) != NULL)
                st = WR_FAIL(WR_ERR_UNSUPPORTED,
                             "%s: tensor %s already exists beside %s; the directory looks scaled "
                             "already (convert a directory that is not in FP8)",
                             wr_st_set_path(set), sc->name, t->name);
            nv++;
        }
        nv++;
    }
    if (n > 0 && st == WR_OK) nshards++;
    const char *base = c == WR_COMP_TEXT_ENCODER ? "model" : "diffusion_pytorch_model";
    char dir[PATH_CAP], path[PATH_CAP], meta[128];
    snprintf(dir, sizeof dir, "%s/%s", dst, wr_component_name(c));
    snprintf(meta, sizeof meta, "dtype %s", o->dtype == WR_DTYPE_BF16 ? "bf16" : "fp8");
    void *buf = NULL;
    if (st == WR_OK && biggest > 0 && (buf = malloc((size_t)biggest)) == NULL)
        st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for a %.1f MiB tensor",
                     (double)biggest / 1048576.0);
    int64_t i = 0, done = 0;
    for (int64_t s = 0; st == WR_OK && s < nshards; s++) {
        if (nshards == 1)
            snprintf(path, sizeof path, "%s/%s.safetensors", dir, base);
        else
            snprintf(path, sizeof path, "%s/%s-%05lld-of-%05lld.safetensors", dir, base,
                     (long long)s + 1, (long long)nshards);
        int fd = -1;
        WR_TRY_GOTO(st, create_file(path, &fd), done);
        st = write_header(fd, path, v, nv, (int)s, meta);
        for (; st == WR_OK && i < nv && v[i].shard == s; i++) {
            if (o->stop && *o->stop) {
                st = WR_FAIL(WR_ERR_INTERRUPTED, "stopped by a signal; nothing was written");
                break;
            }
            st = produce(&v[i], buf, (size_t)biggest);
            if (st == WR_OK) st = write_all(fd, buf, (size_t)v[i].nbytes, path);
            if (st == WR_OK && stats && v[i].kind != OUT_SCALE) {
                stats->tensors++;
                stats->converted += v[i].kind != OUT_COPY;
                stats->bytes_in += v[i].src->nbytes;
            }
            if (st == WR_OK && stats) stats->bytes_out += v[i].nbytes;
            if (st == WR_OK && v[i].kind != OUT_SCALE) done++;
            if (st == WR_OK && o->progress && v[i].kind != OUT_SCALE)
                o->progress(o->progress_ctx, wr_component_name(c), done, n);
        }
        const wr_status s2 = finish_file(fd, path);
        if (st == WR_OK) st = s2;
        if (st == WR_OK && stats) stats->shards++;
    }
    if (st == WR_OK) st = wr_st_check_faults(); /* a source cut short under the conversion */
    if (st == WR_OK && nshards > 1) { /* the index, as diffusers / transformers write it */
        cJSON *root = cJSON_CreateObject(), *m = cJSON_CreateObject(), *wm = cJSON_CreateObject();
        uint64_t total = 0;
        for (int64_t k = 0; k < nv; k++) {
            char f[160];
            snprintf(f, sizeof f, "%s-%05d-of-%05lld.safetensors", base, v[k].shard + 1,
                     (long long)nshards);
            cJSON_AddStringToObject(wm, v[k].name, f);
            total += v[k].nbytes;
        }
        cJSON_AddNumberToObject(m, "total_size", (double)total);
        cJSON_AddItemToObject(root, "metadata", m);
        cJSON_AddItemToObject(root, "weight_map", wm);
        char *text = cJSON_Print(root);
        cJSON_Delete(root);
        snprintf(path, sizeof path, "%s/%s.safetensors.index.json", dir, base);
        int fd = -1;
        st = text ? create_file(path, &fd) : WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
        if (st == WR_OK) st = write_all(fd, text, strlen(text), path);
        if (st == WR_OK) st = write_all(fd, "\n", 1, path);
        if (fd >= 0) {
            const wr_status s2 = finish_file(fd, path);
            if (st == WR_OK) st = s2;
        }
        free(text);
    }
done:
    free(buf);
    free(v);
    wr_st_set_close(set);
    return st;
}

/* ---- the directory ---- */

wr_status wr_convert(const char *src, const char *dst, const wr_convert_opts *o,
                     wr_convert_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (o->dtype != WR_DTYPE_BF16 && o->dtype != WR_DTYPE_F8_E4M3)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--dtype %s: convert writes bf16 or fp8",
                       wr_dtype_name(o->dtype));
    struct stat sb;
    if (lstat(dst, &sb) == 0)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--out %s exists: convert writes a new directory and never replaces one; "
                       "remove it or choose another --out",
                       dst);
    WR_TRY(wr_atomic_check(dst, WR_ATOMIC_DIR));
    wr_model_dir *md = calloc(1, sizeof *md);
    if (md == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    wr_status st = wr_model_dir_open(md, src);
    char tmp[PATH_CAP];
    int made = 0;
    if (st == WR_OK && wr_atomic_temp_name(tmp, sizeof tmp, dst, (long)getpid(), 0) < 0)
        st = WR_FAIL(WR_ERR_INVALID_ARG, "--out %s: no room for its temporary's name", dst);
    if (st == WR_OK && mkdir(tmp, 0755) != 0)
        st = WR_FAIL(WR_ERR_IO, "%s: cannot create the temporary directory: %s", tmp,
                     strerror(errno));
    made = st == WR_OK;
    if (st == WR_OK) st = copy_tree(src, tmp, 0, 0, md); /* all but the weight components */
    const wr_component comps[] = {WR_COMP_TRANSFORMER, WR_COMP_TRANSFORMER_2, WR_COMP_TEXT_ENCODER,
                                  WR_COMP_VAE};
    for (size_t k = 0; st == WR_OK && k < sizeof comps / sizeof comps[0]; k++) {
        if (!md->has[comps[k]]) continue;
        char d[PATH_CAP], sdir[PATH_CAP];
        snprintf(d, sizeof d, "%s/%s", tmp, wr_component_name(comps[k]));
        wr_model_dir_path(sdir, sizeof sdir, md, comps[k]);
        if (mkdir(d, 0755) != 0)
            st = WR_FAIL(WR_ERR_IO, "%s: cannot create: %s", d, strerror(errno));
        if (st == WR_OK) st = copy_tree(sdir, d, 1, 0, NULL); /* config.json and the like */
        if (st == WR_OK) st = convert_component(md, comps[k], tmp, o, stats);
    }
    if (st == WR_OK && rename(tmp, dst) != 0)
        st = WR_FAIL(WR_ERR_IO, "cannot rename %s to %s: %s", tmp, dst, strerror(errno));
    if (st != WR_OK && made) remove_tree(tmp);
    free(md);
    return st;
}
