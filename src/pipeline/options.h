/*
 * options.h — the generation options of the command line and of --config, parsed and
 * checked: one table of options shared by the flags (`--steps 30`) and the keys of a --config
 * JSON object (`{"steps": 30}`), and the value parsers the other commands reuse.
 *
 * Every wrong value is WR_ERR_INVALID_ARG with a one-line detail naming the flag (as
 * "--name") and the value (quoted, control characters escaped, long values cut); a value
 * from --config is prefixed with "--config FILE: ". Nothing here reads files or the model:
 * the caller reads the --config file and passes its text (wr_gen_opts_from_json), so the
 * parser can be fuzzed (tests/fuzz/fuzz_config_opts.c).
 *
 * Ownership: string options point into argv (borrowed, must outlive the wr_gen_opts) or into
 * copies of --config values that the wr_gen_opts owns (freed by wr_gen_opts_free).
 * Not thread-safe per wr_gen_opts; no global state.
 */
#ifndef WR_PIPELINE_OPTIONS_H
#define WR_PIPELINE_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* The bundled tiny random model's own defaults (used when --model is not given and the
 * option is not either): small enough to finish in about a second on 2 cores. */
#define WR_BUNDLED_WIDTH  256
#define WR_BUNDLED_HEIGHT 256
#define WR_BUNDLED_FRAMES 17
#define WR_BUNDLED_STEPS  10

/* The options a flag or a --config key can set (bit i of wr_gen_opts.given). */
typedef enum wr_gen_opt {
    WR_OPT_MODEL,
    WR_OPT_PROMPT,
    WR_OPT_NEGATIVE_PROMPT,
    WR_OPT_OUT,
    WR_OPT_SAVE_LATENTS,
    WR_OPT_INIT_NOISE,
    WR_OPT_SIZE,
    WR_OPT_FRAMES,
    WR_OPT_STEPS,
    WR_OPT_GUIDANCE,
    WR_OPT_SHIFT,
    WR_OPT_FPS,
    WR_OPT_SEED,
    WR_OPT_SCHEDULER,
    WR_OPT_THREADS,
    WR_OPT_LOW_MEM_LEVEL,
    WR_OPT_VRAM_LIMIT,
    WR_OPT_BACKEND,
    WR_OPT_CONFIG,
    WR_OPT_CFG_PARALLEL,
    WR_OPT_CP_SIZE,
    WR_OPT_CP,
    WR_OPT_MEM_PROFILE,
    WR_OPT_TEXT_ENCODER,
    WR_OPT_DIT,
    WR_OPT_VAE,
    WR_OPT_FP8,
    WR_OPT_TE_DEVICE,
    WR_OPT_DISK_OFFLOAD,
    WR_OPT_VERBOSE,
    WR_OPT_DEVICE,
    WR_OPT_COMPUTE_DTYPE,
    WR_OPT_GUIDANCE_2,
    WR_OPT_BOUNDARY_RATIO,
    WR_OPT_IMAGE,
    WR_OPT_COUNT
} wr_gen_opt;

typedef struct wr_gen_opts {
    const char *model, *prompt, *negative, *out, *save_latents, *init_noise, *mem_profile;
    const char *image; /* Wan2.2 TI2V: the conditioning image (NULL: text to video) */
    int64_t width, height, frames, steps;
    double guidance, shift, fps; /* shift 0: the scheduler config's */
    double guidance_2;           /* Wan2.2 two experts; -1: guidance (diffusers' default) */
    double boundary_ratio;       /* Wan2.2 two experts; -1: model_index.json's */
    uint64_t seed;
    int scheduler;      /* -1: the scheduler config's; else a wr_sched_kind */
    int threads;        /* 0: $OMP_NUM_THREADS or all cores */
    int low_mem_level;  /* 0..3, -1: auto */
    int64_t vram_limit; /* bytes, 0: none */
    char backend[8];    /* auto | cpu | cuda (auto: cpu until the CUDA kernels are verified) */
    int device;         /* --device: the CUDA device index, -1: the node-local rank's */
    int cfg_parallel, cp_size, cp_mode;
    int te_stream, dit_stream, vae_tiled; /* -1: the level's (configs/levels.json) */
    int disk_offload;
    int fp8;          /* 0 off, 1 storage */
    int compute_bf16; /* --compute-dtype: 1 bf16 (the DiT's GEMM / attention activations), 0
                         f32, -1 auto (wr_gen_opts_bf16: bf16 on CUDA, f32 on the CPU) */
    int te_cpu;
    int verbose;
    int bundled;    /* set by wr_gen_opts_finish: no --model, the bundled model and defaults */
    uint64_t given; /* bit wr_gen_opt: set by a flag or a --config key */
    char **owned;   /* copies of --config strings */
    int nowned, capowned;
} wr_gen_opts;

/* diffusers' WanPipeline defaults: 832x480, 81 frames, 50 steps, guidance 5.0, 16 fps. */
void wr_gen_opts_init(wr_gen_opts *g);
void wr_gen_opts_free(wr_gen_opts *g); /* the owned strings; NULL-safe */

/* The option's name ("steps") -> its id, or -1. */
int wr_gen_opt_find(const char *name);

/*
 * Sets one option from text: `name` without the dashes ("steps", "disk-offload"), `value`
 * borrowed (must outlive g). A switch (disk-offload, verbose) takes "true" or "false".
 * WR_ERR_INVALID_ARG naming "--name" and the value; WR_ERR_UNSUPPORTED for --fp8 compute.
 */
wr_status wr_gen_opts_set(wr_gen_opts *g, const char *name, const char *value);

/*
 * Applies a --config document: `text` (len bytes, need not be NUL-terminated) must be a JSON
 * object whose keys are option names; strings, numbers and booleans as each option takes
 * them (a path or prompt a string; a count a number or its digits as a string; a switch a
 * boolean). `label` (the file's path) prefixes every message. Refused, WR_ERR_INVALID_ARG:
 * not a JSON object (WR_ERR_FORMAT), an unknown or repeated key, "config" itself, a value of
 * the wrong JSON type, a number that is not an exact integer where one is needed, any value
 * the option refuses. Values are copied (g owns them).
 */
wr_status wr_gen_opts_from_json(wr_gen_opts *g, const char *text, size_t len, const char *label);

/*
 * The flags of the generate command (argv[0] is the first flag): "--name value", or the
 * switches "--verbose" and "--disk-offload" alone. "--config FILE" is skipped (the caller
 * applies --config first so that flags override it). Values are borrowed from argv.
 * WR_ERR_INVALID_ARG: an unknown option or command, a missing value, or a bad value.
 */
wr_status wr_gen_opts_parse_args(wr_gen_opts *g, int argc, char **argv);

/*
 * After the flags: without --model the bundled model `default_model` with its own small
 * defaults (WR_BUNDLED_*) for the size, frames and steps not given (g->bundled = 1); then
 * the checks that need no model: --prompt and --out present, the request sizes
 * (wr_request_check_sizes: 4k+1 frames with the nearest valid counts, bounds), --device only
 * with --backend cuda, --out and --save-latents not the same path. --backend cuda is passed on
 * (WR_ERR_NO_DEVICE from the library where no GPU can be used).
 */
wr_status wr_gen_opts_finish(wr_gen_opts *g, const char *default_model);
/* --compute-dtype resolved: 1 for bf16 (given, or auto with --backend cuda), else 0. */
int wr_gen_opts_bf16(const wr_gen_opts *g);

/* ---- value parsers (flag: the name without dashes, for the message) ---- */

/* A whole number in [lo, hi], decimal, no sign other than a leading '-', no spaces. */
wr_status wr_parse_i64(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out);
/* A finite number in [lo, hi]. */
wr_status wr_parse_f64(const char *flag, const char *v, double lo, double hi, double *out);
/* A byte count >= 1: "20GiB", "512MiB", "64KiB", "1TiB" (also G/GB, M/MB, K/KB, T/TB; all
 * powers of 1024) or a plain number of bytes; fractions allowed ("1.5GiB"), rounded down. */
wr_status wr_parse_bytes(const char *flag, const char *v, int64_t *out);
/* "WIDTHxHEIGHT", each a whole number >= 1 (the bounds: wr_request_check_sizes). */
wr_status wr_parse_size(const char *flag, const char *v, int64_t *w, int64_t *h);

/* `s` quoted for a message: at most ~60 bytes, control bytes as \xNN, "..." when cut. */
const char *wr_quote(char *dst, size_t cap, const char *s);

#endif /* WR_PIPELINE_OPTIONS_H */
