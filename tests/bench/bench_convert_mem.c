/*
 * bench_convert_mem.c — host memory per rank of N ranks on one node loading the same DiT
 * (issue #18: `wanrun convert` against converting at every load).
 *
 *   mpirun -n 8 bench_convert_mem DIR [--fp8]
 *
 * Every rank loads DIR/transformer (with --fp8: FP8 storage, each rank quantising its own copy
 * of the block matrices at load) on the CPU backend, reads every byte of every Linear weight
 * once (so that each mapped page is resident), and reports its /proc/self/smaps_rollup: Rss,
 * Pss (the rank's share of pages it shares with others: the page cache of the mapped files is
 * split between the ranks that map it) and its private memory. Rank 0 prints one line per rank
 * and the node's sum of Pss: the host memory the N ranks hold together.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kernels/backend.h"
#include "models/dit.h"
#include "parallel/comm.h"

typedef struct mem {
    int64_t rss, pss, priv, shared, anon; /* kB */
} mem;

static mem read_rollup(void) {
    mem m = {0};
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        long long v = 0;
        char key[64];
        if (sscanf(line, "%63[^:]: %lld kB", key, &v) != 2) continue;
        if (!strcmp(key, "Rss")) m.rss = v;
        if (!strcmp(key, "Pss")) m.pss = v;
        if (!strcmp(key, "Private_Clean") || !strcmp(key, "Private_Dirty")) m.priv += v;
        if (!strcmp(key, "Shared_Clean") || !strcmp(key, "Shared_Dirty")) m.shared += v;
        if (!strcmp(key, "Anonymous")) m.anon = v;
    }
    if (f) fclose(f);
    return m;
}

static uint64_t g_sum;

static void touch(void *ctx, const char *name, const wr_weight *w) {
    (void)ctx, (void)name;
    const unsigned char *p = w->t.data;
    const size_t n = wr_tensor_nbytes(&w->t);
    for (size_t i = 0; i < n; i += 512) g_sum += p[i];
}

int main(int argc, char **argv) {
    wr_world world;
    if (wr_world_init(&world, &argc, &argv) != WR_OK || argc < 2) {
        fprintf(stderr, "usage: mpirun -n N bench_convert_mem DIR [--fp8]\n");
        return 2;
    }
    const int fp8 = argc > 2 && !strcmp(argv[2], "--fp8");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/transformer", argv[1]);
    wr_backend *be = NULL;
    wr_dit *m = NULL;
    const wr_backend_opts bo = {.kind = WR_BACKEND_CPU, .threads = 1, .strict = 0, .async = 0};
    wr_status st = wr_backend_create_ex(&be, &bo);
    const double t0 = wr_now_s();
    const wr_dit_load_opts lo = {.fp8_storage = fp8};
    if (st == WR_OK) st = wr_dit_load_ex(&m, be, dir, &lo);
    if (st != WR_OK) {
        fprintf(stderr, "rank %d: %s\n", world.rank, wr_error_detail());
        return 1;
    }
    wr_dit_each_weight(m, touch, NULL);
    const double secs = wr_now_s() - t0;
    const mem me = read_rollup();
    wr_groups g;
    int64_t row[6] = {me.rss, me.pss, me.priv, me.shared, me.anon, (int64_t)(secs * 1000)};
    int64_t *all = calloc((size_t)world.size * 6, sizeof *all);
    if (world.size > 1) {
        if (wr_groups_create(&g, &world, (wr_layout){1, world.size}, -1) != WR_OK) return 1;
        wr_comm_allgather(g.world, all, row, sizeof row, WR_MEM_HOST);
        wr_groups_free(&g);
    } else {
        memcpy(all, row, sizeof row);
    }
    if (world.rank == 0) {
        printf("%s%s, %d rank(s); MiB per rank (smaps_rollup after loading and reading every "
               "weight):\n",
               dir, fp8 ? " --fp8 storage" : "", world.size);
        printf("rank      Rss      Pss  private   shared     anon  load s\n");
        int64_t pss = 0;
        for (int r = 0; r < world.size; r++) {
            const int64_t *x = all + 6 * r;
            printf("%4d %8.0f %8.0f %8.0f %8.0f %8.0f %7.1f\n", r, x[0] / 1024.0, x[1] / 1024.0,
                   x[2] / 1024.0, x[3] / 1024.0, x[4] / 1024.0, x[5] / 1000.0);
            pss += x[1];
        }
        printf("sum of Pss (the node's host memory for the %d ranks): %.0f MiB\n", world.size,
               pss / 1024.0);
    }
    (void)g_sum;
    free(all);
    wr_dit_free(m);
    wr_backend_free(be);
    wr_world_finalize(&world);
    return 0;
}
