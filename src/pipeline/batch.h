/*
 * batch.h — the batch file of `wanrun --batch jobs.jsonl --out-dir DIR`: one job per line, each
 * a JSON object, parsed and checked in full before the model loads.
 *
 * A line: {"name": "cat", "prompt": "a cat", "steps": 30, ...}. "name" is required (a string,
 * unique in the file, the output's file name: 1..WR_BATCH_NAME_MAX bytes of [A-Za-z0-9._-], not
 * starting with '.', not "results" nor "results.*": DIR/results.jsonl is the batch's ledger,
 * pipeline/results.h). "format" is the output's type: "y4m", "mp4" or "png" (a folder of PNG
 * frames). The other keys are the per-job generation options by their long names, '_' or '-'
 * (negative_prompt == negative-prompt): prompt, negative-prompt, seed, size, frames, steps,
 * guidance, shift, scheduler, fps, init-noise; values as --config takes them
 * (wr_gen_opts_from_json). A job's fields override the batch defaults (the command line's).
 * Every other option fixes the model, the layout or the outputs and is batch-wide: in a line it
 * is an error ("line 4: \"model\" is batch-wide: give it on the command line").
 *
 * Blank lines (nothing or only spaces, tabs, '\r') are skipped but counted; CRLF line ends are
 * accepted; a UTF-8 byte-order mark before the first line is skipped. There are no comments
 * (JSONL has none): a line starting with '#' is a bad line.
 *
 * Every line is checked and every bad line recorded (its job has bad = 1 and err says why, with
 * the file and line number): not JSON or not one object, an unknown or repeated key, a
 * batch-wide key, a missing or unsafe name, a value of the wrong type or refused by the option,
 * no prompt (neither the line's nor a default), a prompt that wr_prompt_check refuses, what
 * wr_gen_opts_finish refuses (sizes and frames: wr_request_check_sizes), a name used by an
 * earlier line, an output path that an earlier line's output already is (name "x.mp4" as png
 * vs. name "x" as mp4). A bad job fails alone; the others run. Not checked here (they need the
 * model): width and height as multiples of the model's factor (16 for Wan), the init-noise
 * file's shape (wr_request_check, at generation time).
 *
 * Nothing here reads files or the model (the caller reads the file and passes its text, so the
 * parser can be fuzzed). Thread-safe: no global state; a wr_batch is used by one thread at a time.
 */
#ifndef WR_PIPELINE_BATCH_H
#define WR_PIPELINE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "pipeline/options.h"

/* The most jobs (non-blank lines) a batch file may hold: a job is ~5 KiB here and runs for
 * seconds to hours; a bigger batch is split into several files. */
#define WR_BATCH_MAX_JOBS 100000
/* The longest job name, in bytes (wr_batch_job.name holds it + NUL). */
#define WR_BATCH_NAME_MAX 100
/* The longest --out-dir wr_batch_parse takes, in bytes (wr_batch_job.out has room for it, '/',
 * a name and ".y4m"). */
#define WR_BATCH_DIR_MAX 4000

typedef struct wr_batch_job {
    int line;       /* 1-based line of the file */
    char name[104]; /* "" when the line has none (a bad line) */
    char format[8]; /* "y4m" | "mp4" | "png" ("" when the line's is bad) */
    char out[4200]; /* DIR/<name>.<format> (png: DIR/<name>, a folder); "" when no name */
    wr_gen_opts g;  /* the batch defaults with the line's fields applied, finished; g.out is a
                     * copy of out. Strings: the line's are owned by g (g.owned, its own
                     * array), the others borrowed from the defaults. Meaningful only when
                     * !bad. */
    uint64_t hash;  /* wr_batch_hash of the effective parameters; 0 when bad */
    int bad;        /* 1: the line is invalid (err says why); the job fails alone */
    char err[512];  /* "jobs.jsonl line 4: ..." ("" when !bad) */
} wr_batch_job;

typedef struct wr_batch {
    wr_batch_job *jobs; /* [n] in file order, one per non-blank line; owned */
    int n;
    int nbad; /* jobs with bad = 1 */
} wr_batch;

/*
 * Parses and checks a whole batch file into *b (initialised here; release with wr_batch_free,
 * also after a failure).
 *   text, len: the file's bytes (borrowed for the call; need not be NUL-terminated).
 *   label: the file's path (borrowed for the call), prefixing every message.
 *   defaults: the command line's options, already finished (wr_gen_opts_finish, so that
 *     defaults->model is set); borrowed and must outlive the batch (the jobs' g borrow its
 *     strings). Each job's g starts as a copy of it with an owned-string array of its own.
 *   out_dir: --out-dir (borrowed for the call; trailing '/' ignored), at most WR_BATCH_DIR_MAX
 *     bytes.
 *   fmt: the default format, "y4m", "mp4" or "png"; NULL means "y4m" (every build writes it).
 * Per-line problems never fail the call: they are recorded in the jobs (b->nbad counts them).
 * Failures: WR_ERR_FORMAT naming label when the file is not text (a NUL byte); WR_ERR_INVALID_ARG
 * "FILE holds no jobs" when no line is a job (empty, or blank lines only) or more than
 * WR_BATCH_MAX_JOBS lines are, and for an out_dir
 * that is empty or too long or a fmt outside the three; WR_ERR_OOM_HOST. On failure b is empty.
 */
wr_status wr_batch_parse(wr_batch *b, const char *text, size_t len, const char *label,
                         const wr_gen_opts *defaults, const char *out_dir, const char *fmt);

/* Frees the jobs (and their g's owned strings) and empties b; NULL-safe, safe to call twice. */
void wr_batch_free(wr_batch *b);

/*
 * FNV-1a 64 over a canonical text of what determines a job's output: the model path, prompt,
 * negative prompt, width, height, frames, steps, guidance, shift, fps, seed, scheduler,
 * init-noise path and format (strings length-prefixed, NULL distinct from ""; doubles printed
 * with %.17g). Two jobs with the same parameters (names aside) have the same hash. Paths are
 * hashed as given (not resolved). Batch-wide settings that may change the bits (backend,
 * compute dtype, fp8) are not included.
 */
uint64_t wr_batch_hash(const wr_batch_job *j);

#endif /* WR_PIPELINE_BATCH_H */
