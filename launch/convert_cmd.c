/*
 * convert_cmd.c — wanrun convert --model DIR --out DIR2 --dtype bf16|fp8 (pipeline/convert.h):
 * the flags, a progress line per component on rank 0, and the signals: SIGTERM / SIGINT /
 * SIGHUP stop the conversion between two tensors, the temporary directory is removed, and the
 * process dies of the signal (128 + N). Under mpirun only rank 0 converts (the others would
 * write the same files); they wait and exit with its code.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/log.h"
#include "pipeline/convert.h"

static volatile int g_convert_stop;

static void on_signal(int sig) {
    g_convert_stop = sig;
}

static void progress(void *ctx, const char *component, int64_t done, int64_t total) {
    int64_t *last = ctx;
    if (done == total || done - *last >= 64) { /* a line now and then, and at the end */
        wr_log_rank0("%s: %lld of %lld tensors", component, (long long)done, (long long)total);
        *last = done == total ? 0 : done;
    }
}

wr_status wr_cli_convert(int argc, char **argv, const wr_world *world) {
    const char *model = NULL, *out = NULL, *dtype = NULL;
    double shard_gb = 0.0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return WR_FAIL(WR_ERR_INVALID_ARG, "convert: %s needs a value (see wanrun --help)", a);
        if (!strcmp(a, "--model"))
            model = argv[++i];
        else if (!strcmp(a, "--out"))
            out = argv[++i];
        else if (!strcmp(a, "--dtype"))
            dtype = argv[++i];
        else if (!strcmp(a, "--shard-size"))
            WR_TRY(wr_parse_f64("shard-size", argv[++i], 1e-6, 1024.0, &shard_gb));
        else
            return WR_FAIL(WR_ERR_INVALID_ARG, "convert: unknown option %s (see wanrun --help)", a);
    }
    if (model == NULL || out == NULL || dtype == NULL)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "convert needs --model DIR --out DIR2 --dtype bf16|fp8 (see wanrun --help)");
    wr_convert_opts o = {.stop = &g_convert_stop};
    if (!strcmp(dtype, "bf16"))
        o.dtype = WR_DTYPE_BF16;
    else if (!strcmp(dtype, "fp8"))
        o.dtype = WR_DTYPE_F8_E4M3;
    else
        return WR_FAIL(WR_ERR_INVALID_ARG, "--dtype %s: convert writes bf16 or fp8", dtype);
    o.shard_bytes = shard_gb > 0.0 ? (uint64_t)(shard_gb * 1e9) : 0;
    int64_t last = 0;
    o.progress = progress, o.progress_ctx = &last;
    wr_status st = WR_OK;
    if (world == NULL || world->rank == 0) {
        /* the stop flag for the three signals a user or a scheduler sends; one that is ignored
         * (a background job's SIGINT) stays ignored */
        const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
        for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++) {
            struct sigaction sa, old;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_signal;
            sigemptyset(&sa.sa_mask);
            sigaction(sigs[k], NULL, &old);
            if (old.sa_handler != SIG_IGN) sigaction(sigs[k], &sa, NULL);
        }
        wr_log_rank0("converting %s to %s (%s)", model, out, dtype);
        wr_convert_stats s;
        st = wr_convert(model, out, &o, &s);
        if (st == WR_OK)
            wr_log_rank0("wrote %s: %lld tensors (%lld converted), %.1f MiB -> %.1f MiB, %lld "
                         "safetensors file(s)",
                         out, (long long)s.tensors, (long long)s.converted,
                         (double)s.bytes_in / 1048576.0, (double)s.bytes_out / 1048576.0,
                         (long long)s.shards);
        if (g_convert_stop) { /* the temporary is gone: die of the signal */
            fprintf(stderr, "wanrun: convert stopped by signal %d; nothing was written\n",
                    g_convert_stop);
            signal(g_convert_stop, SIG_DFL);
            raise(g_convert_stop);
        }
    }
    if (world && world->size > 1) {
        wr_groups g;
        WR_TRY(wr_groups_create(&g, world, (wr_layout){1, world->size}, -1));
        st = wr_comm_agree(g.world, st);
        wr_groups_free(&g);
    }
    return st;
}
