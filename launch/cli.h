/*
 * cli.h — what the command-line tool's files share (launch/wanrun.c, launch/batch_cmd.c):
 * the exit codes, the world, the planner helpers and the batch command.
 */
#ifndef WR_LAUNCH_CLI_H
#define WR_LAUNCH_CLI_H

#include <stdint.h>

#include "core/status.h"
#include "parallel/comm.h"
#include "pipeline/options.h"

enum {
    EXIT_OK = 0,
    EXIT_INTERNAL = 1,
    EXIT_USAGE = 2,
    EXIT_INPUT = 3,
    EXIT_OOM = 4,
    EXIT_DEVICE = 5,
    EXIT_UNSUPPORTED = 6,
    EXIT_BATCH_FAILED = 7, /* --batch: some jobs failed (DIR/results.jsonl says which) */
    EXIT_RESUMABLE = 75    /* --batch stopped by SIGTERM / SIGINT: run it again to finish */
};

/* The exit code of a failure status. */
int wr_cli_exit_code(wr_status st);

/* The planned per-rank device peak of g's request at level `level` (wanrun plan's number). */
wr_status wr_cli_plan_peak(const wr_gen_opts *g, int level, uint64_t *peak);
/* --low-mem-level auto: the lowest level whose planned peak fits g->vram_limit. */
wr_status wr_cli_auto_level(const wr_gen_opts *g, int *level);

/* The model's own defaults where g's flags leave them (TI2V-5B: 1280x704, 121 frames, 24 fps);
 * a directory that does not open is left to the model load to report. */
void wr_cli_model_defaults(wr_gen_opts *g);

/* The library's options from the command line's (--low-mem-level auto resolved). */
struct wr_options;
wr_status wr_cli_options(const wr_gen_opts *g, const wr_world *world, struct wr_options *opt);

/* wanrun --batch FILE --out-dir DIR [...]: argv holds the generate command's arguments (the
 * batch flags among them). *code: the exit code when the call returns WR_OK (0, 7 or 75). */
wr_status wr_cli_batch(int argc, char **argv, const wr_world *world, int *code);

/* wanrun convert --model DIR --out DIR2 --dtype bf16|fp8 [--shard-size GB] (argv: after
 * "convert"); rank 0 converts, the others agree on its outcome. */
wr_status wr_cli_convert(int argc, char **argv, const wr_world *world);

#endif /* WR_LAUNCH_CLI_H */
