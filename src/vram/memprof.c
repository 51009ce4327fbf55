/*
 * memprof.c — the memory profiler (see memprof.h). Samples and spans are kept in growing
 * arrays (a generation makes a few thousand at most); the files are written at the end.
 */
#include "vram/memprof.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/log.h"

#define MAX_DEPTH 8

typedef struct sample {
    double t; /* seconds since creation */
    uint64_t dev[WR_MEM_CAT_COUNT], host, offloaded;
    int span; /* the innermost open span (index), -1: none */
} sample;

typedef struct span {
    char name[32];
    double t0, t1;
    int depth;
} span;

struct wr_memprof {
    char dir[4096];
    int rank;
    double t0;
    sample *s;
    size_t ns, caps;
    span *sp;
    size_t nsp, capsp;
    int open[MAX_DEPTH], depth;
    wr_block_event *ev; /* the block timeline, times relative to t0 */
    size_t nev, capev;
    uint64_t last_dev[WR_MEM_CAT_COUNT], last_off;
};

static uint64_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;
    if (f == NULL) return 0;
    if (fscanf(f, "%llu %llu", &size, &res) != 2) res = 0;
    fclose(f);
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void add_sample(wr_memprof *p) {
    if (p->ns == p->caps) {
        size_t cap = p->caps ? 2 * p->caps : 1024;
        sample *n = realloc(p->s, cap * sizeof *n);
        if (n == NULL) return; /* profiling degrades, the run goes on */
        p->s = n, p->caps = cap;
    }
    sample *x = &p->s[p->ns++];
    x->t = wr_now_s() - p->t0;
    memcpy(x->dev, p->last_dev, sizeof x->dev);
    x->host = rss_bytes();
    x->offloaded = p->last_off;
    x->span = p->depth > 0 ? p->open[p->depth - 1] : -1;
}

static void observe(void *ctx, const wr_vram *v) {
    wr_memprof *p = ctx;
    wr_vram_stats st;
    wr_vram_get_stats(v, &st);
    memcpy(p->last_dev, st.current, sizeof p->last_dev);
    p->last_off = st.host[WR_HOST_PINNED] + st.host[WR_HOST_PAGEABLE];
    add_sample(p);
}

wr_status wr_memprof_check(const char *dir) {
    struct stat sb;
    if (dir == NULL || dir[0] == '\0')
        return WR_FAIL(WR_ERR_INVALID_ARG, "an empty directory name");
    if (stat(dir, &sb) != 0) return wr_atomic_check(dir, WR_ATOMIC_DIR); /* to be created */
    if (!S_ISDIR(sb.st_mode)) return WR_FAIL(WR_ERR_IO, "%s: exists and is not a directory", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return WR_FAIL(WR_ERR_IO, "%s: cannot write in it: %s", dir, strerror(errno));
    return WR_OK;
}

wr_status wr_memprof_create(wr_memprof **out, const char *dir, int rank) {
    *out = NULL;
    wr_status cst = wr_memprof_check(dir);
    if (cst != WR_OK) {
        wr_error_prefix("--mem-profile");
        return cst;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return WR_FAIL(WR_ERR_IO, "--mem-profile %s: cannot create the directory: %s", dir,
                       strerror(errno));
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return WR_FAIL(WR_ERR_IO, "--mem-profile %s: not a directory", dir);
    wr_memprof *p = calloc(1, sizeof *p);
    if (p == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    p->rank = rank;
    p->t0 = wr_now_s();
    add_sample(p);
    *out = p;
    return WR_OK;
}

wr_status wr_memprof_restart(wr_memprof *p, const char *dir) {
    WR_TRY(wr_memprof_check(dir));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return WR_FAIL(WR_ERR_IO, "--mem-profile %s: cannot create the directory: %s", dir,
                       strerror(errno));
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    p->ns = p->nsp = p->nev = 0;
    p->depth = 0;
    p->t0 = wr_now_s();
    add_sample(p);
    return WR_OK;
}

void wr_memprof_free(wr_memprof *p) {
    if (p == NULL) return;
    free(p->ev);
    free(p->s);
    free(p->sp);
    free(p);
}

static void on_block(void *ctx, const wr_block_event *e) {
    wr_memprof *p = ctx;
    if (p->nev == p->capev) {
        size_t cap = p->capev ? 2 * p->capev : 256;
        wr_block_event *n = realloc(p->ev, cap * sizeof *n);
        if (n == NULL) return;
        p->ev = n, p->capev = cap;
    }
    wr_block_event x = *e;
    x.copy_t0 = e->copy_t0 > 0 ? e->copy_t0 - p->t0 : -1;
    x.copy_t1 = e->copy_t1 > 0 ? e->copy_t1 - p->t0 : -1;
    x.compute_t0 -= p->t0, x.compute_t1 -= p->t0;
    p->ev[p->nev++] = x;
}

size_t wr_memprof_blocks(const wr_memprof *p, const wr_block_event **out) {
    *out = p->ev;
    return p->nev;
}

void wr_memprof_attach(wr_memprof *p, wr_vram *v) {
    wr_vram_set_observer(v, observe, p);
    wr_vram_set_block_observer(v, on_block, p);
    observe(p, v);
}

void wr_memprof_begin(wr_memprof *p, const char *name) {
    if (p == NULL || p->depth >= MAX_DEPTH) return;
    if (p->nsp == p->capsp) {
        size_t cap = p->capsp ? 2 * p->capsp : 64;
        span *n = realloc(p->sp, cap * sizeof *n);
        if (n == NULL) return;
        p->sp = n, p->capsp = cap;
    }
    span *x = &p->sp[p->nsp];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->t0 = wr_now_s() - p->t0;
    x->t1 = -1;
    x->depth = p->depth;
    p->open[p->depth++] = (int)p->nsp++;
    add_sample(p);
}

void wr_memprof_end(wr_memprof *p) {
    if (p == NULL || p->depth == 0) return;
    add_sample(p);
    p->sp[p->open[--p->depth]].t1 = wr_now_s() - p->t0;
}

void wr_memprof_end_all(wr_memprof *p) {
    while (p && p->depth > 0) wr_memprof_end(p);
}

/* Writes text to DIR/name through a temporary file and rename (all or nothing;
 * core/atomic_file.h: removed on failure and on a fatal signal). */
static wr_status write_atomic(const wr_memprof *p, const char *name, const char *text) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", p->dir, name);
    wr_atomic a;
    WR_TRY(wr_atomic_begin(&a, path, WR_ATOMIC_FILE));
    const int fd = wr_atomic_take_fd(&a);
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        const int e = errno;
        close(fd);
        wr_atomic_discard(&a);
        return WR_FAIL(WR_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    const size_t n = strlen(text);
    const int ok = fwrite(text, 1, n, f) == n && fflush(f) == 0;
    const int e = errno;
    if (fclose(f) != 0 || !ok) {
        wr_atomic_discard(&a);
        return WR_FAIL(WR_ERR_IO, "%s: cannot write: %s", path, strerror(ok ? errno : e));
    }
    return wr_atomic_commit(&a);
}

static uint64_t dev_total(const sample *x) {
    uint64_t t = 0;
    for (int k = 0; k < WR_MEM_CAT_COUNT; k++) t += x->dev[k];
    return t;
}

static char *trace_json(const wr_memprof *p) {
    cJSON *root = cJSON_CreateObject(), *ev = cJSON_AddArrayToObject(root, "traceEvents");
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "ph", "M");
    cJSON_AddStringToObject(meta, "name", "process_name");
    cJSON_AddNumberToObject(meta, "pid", p->rank);
    char nm[32];
    snprintf(nm, sizeof nm, "rank %d", p->rank);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(meta, "args"), "name", nm);
    cJSON_AddItemToArray(ev, meta);
    for (size_t i = 0; i < p->ns; i++) {
        const sample *x = &p->s[i];
        cJSON *d = cJSON_CreateObject(), *h = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "ph", "C");
        cJSON_AddStringToObject(d, "name", "device memory");
        cJSON_AddNumberToObject(d, "pid", p->rank);
        cJSON_AddNumberToObject(d, "ts", x->t * 1e6);
        cJSON *a = cJSON_AddObjectToObject(d, "args");
        for (int k = 0; k < WR_MEM_CAT_COUNT; k++)
            cJSON_AddNumberToObject(a, wr_mem_cat_name((wr_mem_cat)k), (double)x->dev[k]);
        cJSON_AddItemToArray(ev, d);
        cJSON_AddStringToObject(h, "ph", "C");
        cJSON_AddStringToObject(h, "name", "host memory");
        cJSON_AddNumberToObject(h, "pid", p->rank);
        cJSON_AddNumberToObject(h, "ts", x->t * 1e6);
        cJSON *ha = cJSON_AddObjectToObject(h, "args");
        cJSON_AddNumberToObject(ha, "rss", (double)x->host);
        cJSON_AddNumberToObject(ha, "offloaded weights", (double)x->offloaded);
        cJSON_AddItemToArray(ev, h);
    }
    for (size_t i = 0; i < p->nsp; i++) {
        const span *x = &p->sp[i];
        const double t1 = x->t1 >= 0 ? x->t1 : wr_now_s() - p->t0;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "ph", "X");
        cJSON_AddStringToObject(e, "name", x->name);
        cJSON_AddNumberToObject(e, "pid", p->rank);
        cJSON_AddNumberToObject(e, "tid", 0);
        cJSON_AddNumberToObject(e, "ts", x->t0 * 1e6);
        cJSON_AddNumberToObject(e, "dur", (t1 - x->t0) * 1e6);
        cJSON_AddItemToArray(ev, e);
    }
    /* the block timeline: compute on track 1, the copy thread on track 2 */
    const char *tracks[2] = {"compute (streamed blocks)", "copy thread"};
    for (int t = 0; t < 2; t++) {
        cJSON *tn = cJSON_CreateObject();
        cJSON_AddStringToObject(tn, "ph", "M");
        cJSON_AddStringToObject(tn, "name", "thread_name");
        cJSON_AddNumberToObject(tn, "pid", p->rank);
        cJSON_AddNumberToObject(tn, "tid", t + 1);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(tn, "args"), "name", tracks[t]);
        cJSON_AddItemToArray(ev, tn);
    }
    for (size_t i = 0; i < p->nev; i++) {
        const wr_block_event *x = &p->ev[i];
        char name[64];
        snprintf(name, sizeof name, "%s block %lld", x->model, (long long)x->block);
        for (int t = 0; t < 2; t++) {
            const double a = t ? x->copy_t0 : x->compute_t0, b = t ? x->copy_t1 : x->compute_t1;
            if (a < 0 || b < a) continue;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "ph", "X");
            cJSON_AddStringToObject(e, "name", name);
            cJSON_AddNumberToObject(e, "pid", p->rank);
            cJSON_AddNumberToObject(e, "tid", t + 1);
            cJSON_AddNumberToObject(e, "ts", a * 1e6);
            cJSON_AddNumberToObject(e, "dur", (b - a) * 1e6);
            cJSON_AddItemToArray(ev, e);
        }
    }
    cJSON_AddStringToObject(root, "displayTimeUnit", "ms");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* A plain SVG: device total (blue) and host RSS (orange) over time, top-level spans shaded. */
static char *plot_svg(const wr_memprof *p) {
    const double W = 900, H = 320, L = 70, R = 20, T = 30, B = 40;
    double tmax = p->ns ? p->s[p->ns - 1].t : 1;
    uint64_t ymax = 1;
    for (size_t i = 0; i < p->ns; i++) {
        if (dev_total(&p->s[i]) > ymax) ymax = dev_total(&p->s[i]);
        if (p->s[i].host > ymax) ymax = p->s[i].host;
    }
    if (tmax <= 0) tmax = 1;
    size_t cap = 4096 + p->ns * 64 + p->nsp * 256, len = 0;
    char *s = malloc(cap);
    if (s == NULL) return NULL;
#define OUT(...) (len += len < cap ? (size_t)snprintf(s + len, cap - len, __VA_ARGS__) : 0)
    OUT("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
        "font-family=\"sans-serif\" font-size=\"11\">\n",
        W, H);
    OUT("<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    OUT("<text x=\"%.0f\" y=\"18\" font-size=\"13\">wanrun memory, rank %d (device total: "
        "blue, host RSS: orange; max %.1f MiB, %.2f s)</text>\n",
        L, p->rank, (double)ymax / 1048576.0, tmax);
    for (size_t i = 0; i < p->nsp; i++) { /* top-level spans */
        const span *x = &p->sp[i];
        if (x->depth != 0) continue;
        const double t1 = x->t1 >= 0 ? x->t1 : tmax;
        const double x0 = L + (W - L - R) * x->t0 / tmax, x1 = L + (W - L - R) * t1 / tmax;
        OUT("<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"%.0f\" fill=\"%s\"/>\n", x0, T,
            x1 - x0 > 0.5 ? x1 - x0 : 0.5, H - T - B, i % 2 ? "#f0f0f0" : "#e4ecf7");
        OUT("<text x=\"%.1f\" y=\"%.0f\">%s</text>\n", x0 + 2, H - B + 14, x->name);
    }
    OUT("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, H - B,
        W - R, H - B);
    OUT("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, T, L,
        H - B);
    OUT("<text x=\"4\" y=\"%.0f\">%.0f MiB</text>\n", T + 4, (double)ymax / 1048576.0);
    OUT("<text x=\"4\" y=\"%.0f\">0</text>\n", H - B);
    for (int series = 0; series < 2; series++) {
        OUT("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
            series ? "#e67e22" : "#2a6fdb");
        for (size_t i = 0; i < p->ns && len + 64 < cap; i++) {
            const sample *x = &p->s[i];
            const double v = series ? (double)x->host : (double)dev_total(x);
            OUT("%.1f,%.1f ", L + (W - L - R) * x->t / tmax,
                H - B - (H - T - B) * v / (double)ymax);
        }
        OUT("\"/>\n");
    }
    OUT("</svg>\n");
#undef OUT
    if (len >= cap) s[cap - 1] = '\0'; /* cannot happen with the capacity above */
    return s;
}

wr_status wr_memprof_write(wr_memprof *p, wr_memprof_peaks *out) {
    add_sample(p);
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < p->ns; i++) {
        const sample *x = &p->s[i];
        const char *at = x->span >= 0 ? p->sp[x->span].name : "";
        if (dev_total(x) > out->device) {
            out->device = dev_total(x);
            snprintf(out->device_at, sizeof out->device_at, "%s", at);
        }
        if (x->host > out->host) {
            out->host = x->host;
            snprintf(out->host_at, sizeof out->host_at, "%s", at);
        }
    }
    char name[64];
    char *json = trace_json(p);
    if (json == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for the trace");
    snprintf(name, sizeof name, "memprof.rank%d.json", p->rank);
    wr_status st = write_atomic(p, name, json);
    cJSON_free(json);
    WR_TRY(st);
    char *svg = plot_svg(p);
    if (svg == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for the plot");
    snprintf(name, sizeof name, "memprof.rank%d.svg", p->rank);
    st = write_atomic(p, name, svg);
    free(svg);
    return st;
}
