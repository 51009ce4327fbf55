/*
 * wanrun.c — the command-line tool: the only main() and the only place that exits.
 *
 *   wanrun [--verbose] [--log-level L] inspect PATH [--json] [--summary]
 *   wanrun [...] encode --model DIR --prompt TEXT --out FILE [--threads N]
 *   wanrun [options] --prompt TEXT --out FILE       (generate; see usage_text)
 *   wanrun [options] --batch FILE --out-dir DIR     (many generations: batch_cmd.c)
 *   wanrun --version | --help
 *
 * Exit codes (also in --help): 0 success; 1 internal error; 2 bad usage (flag, value);
 * 3 input error (file missing, malformed, inconsistent config; a model file that changed size
 * during the run: the SIGBUS guard of safetensors.h); 4 out of memory (host or
 * device); 5 device or communication failure; 6 unsupported in this build; --batch: 7 some
 * jobs failed, 75 stopped by a signal (resumable).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/dtype.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "core/modeldir.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "kernels/backend.h"
#include "io/video.h"
#include "cli.h"
#include "models/dit.h"
#include "models/sched.h"
#include "models/t5.h"
#include "models/tokenizer.h"
#include "pipeline/options.h"
#include "vram/levels.h"
#include "vram/memprof.h"
#include "vram/plan.h"
#include "wanrun.h"
#include "wr_build_config.h"

/* A value quoted for a message (control bytes escaped, long values cut): two per message. */
static _Thread_local char g_qa[80], g_qb[80];
#define QA(s) wr_quote(g_qa, sizeof g_qa, (s))
#define QB(s) wr_quote(g_qb, sizeof g_qb, (s))

int wr_cli_exit_code(wr_status s) {
    switch (s) {
    case WR_OK:
        return EXIT_OK;
    case WR_ERR_INVALID_ARG:
        return EXIT_USAGE;
    case WR_ERR_IO:
    case WR_ERR_FORMAT:
    case WR_ERR_NOT_FOUND:
    case WR_ERR_CONFIG:
        return EXIT_INPUT;
    case WR_ERR_OOM_HOST:
    case WR_ERR_OOM_DEVICE:
        return EXIT_OOM;
    case WR_ERR_NO_DEVICE:
    case WR_ERR_DEVICE:
    case WR_ERR_COMM:
        return EXIT_DEVICE;
    case WR_ERR_UNSUPPORTED:
        return EXIT_UNSUPPORTED;
    case WR_ERR_INTERRUPTED:
        return EXIT_RESUMABLE;
    default:
        return EXIT_INTERNAL;
    }
}

static const char usage_text[] =
    "usage: wanrun [options] --prompt TEXT --out FILE      generate a video\n"
    "       wanrun [global options] inspect PATH [--json] [--summary]\n"
    "       wanrun [global options] encode --model DIR --prompt TEXT --out FILE\n"
    "       wanrun plan (--model DIR | --preset 1.3b|14b|a14b|5b) [--size WxH] [--frames N]\n"
    "                  ...\n"
    "       wanrun [options] --batch FILE --out-dir DIR    a batch of jobs (see Batch)\n"
    "       wanrun convert --model DIR --out DIR2 --dtype bf16|fp8   narrower weights, once\n"
    "\n"
    "wanrun runs Wan text-to-video diffusion (Wan2.1 1.3B, 14B; Wan2.2 T2V-A14B's two experts)\n"
    "in C, as diffusers' WanPipeline does: prompt -> UMT5 text encoder -> DiT denoising with\n"
    "classifier-free guidance -> VAE. Under mpirun the ranks share one generation (see\n"
    "Parallel options). So far everything runs on the CPU (the CUDA kernels are written but\n"
    "have not run on a GPU yet); the memory levels and the planner (wanrun plan) work there\n"
    "with the same accounting a GPU run would use.\n"
    "\n"
    "Generation options (defaults as diffusers' WanPipeline, except with the bundled model):\n"
    "  --model DIR            diffusers model directory (model_index.json, tokenizer/,\n"
    "                         text_encoder/, transformer/, vae/, scheduler/), e.g.\n"
    "                         Wan2.1-T2V-1.3B-Diffusers; default: the bundled tiny random model\n"
    "                         (tests/data/wan-tiny: its output is noise, for trying the tool),\n"
    "                         with its own small defaults: 256x256, 17 frames, 10 steps.\n"
    "                         tokenizer/ holds spiece.model, or tokenizer.json (transformers\n"
    "                         5.x writes only that)\n"
    "  --prompt TEXT          the prompt (UTF-8, at most 1 MiB), required\n"
    "  --negative-prompt TEXT default \"\" (UTF-8, at most 1 MiB)\n"
    "  --size WxH             multiples of 16, at most 8192 (default 832x480; bundled: 256x256)\n"
    "  --frames N             4k+1, at most 4001 (default 81; bundled: 17); frames x W x H at\n"
    "                         most 2^32\n"
    "  --steps N              denoising steps, 1..1000 (default 50; bundled: 10)\n"
    "  --guidance G           classifier-free guidance scale; <= 1 turns it off (default 5.0)\n"
    "  --guidance-2 G         Wan2.2 two experts (A14B): the low-noise expert's guidance\n"
    "                         (diffusers' guidance_scale_2; default: --guidance)\n"
    "  --boundary-ratio R     Wan2.2 two experts: transformer/ runs the steps with timestep\n"
    "                         t >= R x 1000, transformer_2/ the rest (default: model_index.json's\n"
    "                         boundary_ratio, 0.875 for T2V-A14B)\n"
    "  --image FILE           Wan2.2 TI2V (expand_timesteps; its defaults 1280x704, 121 frames,\n"
    "                         24 fps): a PNG or JPEG for the first frame,\n"
    "                         read and resized to --size as diffusers' WanImageToVideoPipeline\n"
    "                         does (PIL's convert(\"RGB\") and Lanczos), VAE-encoded\n"
    "  --shift S              flow shift (default: the scheduler config's, 3.0 for Wan2.1; the\n"
    "                         Wan2.2 A14B diffusers release writes 3.0, its original repo 12)\n"
    "  --scheduler unipc|euler  default: the scheduler config's (UniPC for Wan2.1)\n"
    "  --seed N               initial noise seed, 0..2^63-1 (wanrun's generator, not PyTorch's;\n"
    "                         default 0)\n"
    "  --init-noise FILE      start from the tensor \"noise\" [16, (N-1)/4+1, H/8, W/8] of a\n"
    "                         .safetensors file instead\n"
    "  --out FILE             .mp4 (H.264), .y4m, or a directory for PNG frames; written\n"
    "                         atomically: it appears only when the run succeeded (through a\n"
    "                         hidden .NAME.wanrun-tmp.PID beside it, removed on a failure or a\n"
    "                         fatal signal; only a SIGKILL can leave one: delete it)\n"
    "  --fps F                frames per second of the video (default 16)\n"
    "  --save-latents FILE    also write the final latents (tensor \"latents\") as .safetensors,\n"
    "                         together with --out, once the run has succeeded\n"
    "  --backend auto|cpu|cuda  default auto (= cpu until the CUDA kernels have been verified\n"
    "                         on a GPU; cuda runs them: see README.md)\n"
    "  --device N             the CUDA device, 0..1023 (--backend cuda only; default: each rank\n"
    "                         the node-local rank modulo the devices visible)\n"
    "  --threads N            CPU threads (default: $OMP_NUM_THREADS or all cores)\n"
    "  --low-mem-level L      0..3: 1 decodes the video in tiles (less memory); 2 also streams\n"
    "                         the text encoder's layers through device memory and frees it\n"
    "                         after encoding; 3 also streams the DiT's blocks, the next one\n"
    "                         copied while one computes (wanrun plan shows each level's bytes)\n"
    "                         auto: the lowest level whose planned peak fits --vram-limit\n"
    "  --text-encoder resident|stream  --dit resident|stream  --vae tiled|untiled\n"
    "                         override one part of the level's preset (configs/levels.json)\n"
    "  --te-device device|cpu  where the text encoder runs (default device: resident or\n"
    "                         streamed by the level; cpu: from host memory, no device bytes)\n"
    "  --fp8 storage|compute|off  storage: the matrices of the DiT blocks and the text encoder's\n"
    "                         layers in FP8 e4m3 with a per-tensor scale, upcast per use (half\n"
    "                         of bf16's memory); compute: FP8 GEMMs (GPU only: an error on the\n"
    "                         CPU backend)\n"
    "  --compute-dtype auto|f32|bf16  the DiT's activations between GEMMs (normed hidden\n"
    "                         states, q/k/v, attention output, FFN hidden): auto (default) is\n"
    "                         bf16 with --backend cuda, f32 on the CPU; bf16 is a GPU's\n"
    "                         rounding points (the residual stream, norms, modulation, RoPE,\n"
    "                         softmax and the scheduler stay f32)\n"
    "  --disk-offload         streamed weights (text encoder at level >= 2, DiT at 3) are read\n"
    "                         from the files each time: host memory stays a few blocks\n"
    "  --vram-limit SIZE      20GiB, 512MiB, 64KiB, 1TiB or a byte count (>= 1 byte): device\n"
    "                         memory per rank; at level 3 as many DiT\n"
    "                         blocks stay resident as fit (CPU: the same accounting in RAM)\n"
    "  --mem-profile DIR      per rank, DIR/memprof.rank<R>.json (a Chrome trace for Perfetto:\n"
    "                         device memory by category and host memory over time, spans for\n"
    "                         load, encode, each step, decode) and .svg (a plot); rank 0 prints\n"
    "                         every rank's peaks and the phase of each\n"
    "  --config FILE          JSON object of options ({\"prompt\": \"...\", \"steps\": 30}): the\n"
    "                         keys are the flags' names; paths, texts and choices as strings,\n"
    "                         counts and numbers as numbers (or strings of them), switches as\n"
    "                         true/false; flags on the command line override it\n"
    "\n"
    "Parallel options (under mpirun / srun; launch/run.sh and launch/slurm/wanrun.sbatch):\n"
    "  --cfg-parallel 1|2     2: the conditional and unconditional passes on different ranks,\n"
    "                         velocities exchanged once per step (default 1)\n"
    "  --cp-size P            context-parallel ranks per replica: the DiT's tokens are split\n"
    "                         over P ranks (default: all ranks / cfg-parallel)\n"
    "  --cp auto|ulysses|ring how those ranks share attention: ulysses (all-to-all, needs the\n"
    "                         heads to divide by P), ring (any P); auto: ulysses when it can\n"
    "                         The job's ranks = replicas x cfg-parallel x cp-size; each replica\n"
    "                         generates with seed + replica and writes OUT (and --save-latents)\n"
    "                         with .rN before the extension when there are several.\n"
    "                         With --backend cuda the ranks' device buffers move over NCCL\n"
    "                         when each rank has its own GPU; ranks sharing a GPU (NCCL\n"
    "                         refuses them) or a build without NCCL move them through host\n"
    "                         memory and MPI (slower; WR_COMM_STAGED=1 forces it)\n"
    "\n"
    "Batch (many generations, the model loaded once per rank; launch/slurm/batch*.sbatch):\n"
    "  --batch FILE           run the jobs of FILE, one JSON object per line (JSONL), e.g.\n"
    "                         {\"name\": \"fox\", \"prompt\": \"a red fox\", \"steps\": 30}\n"
    "                         name: required, unique, [A-Za-z0-9._-]; a job may also set\n"
    "                         negative_prompt, size, frames, guidance, shift, scheduler, fps,\n"
    "                         init_noise, format; the options above are the jobs' defaults\n"
    "                         (model, layout and memory options: command line only). The\n"
    "                         whole file is checked first: a bad line is reported with its\n"
    "                         number and recorded as failed, the others run. The replicas\n"
    "                         (ranks / (cfg-parallel x cp-size)) take the jobs in turn, the\n"
    "                         next free one the next job; one line per finished job (ETA)\n"
    "  --out-dir DIR          required: each job writes DIR/<name>.<format> (atomically) and\n"
    "                         appends its record to DIR/results.jsonl (status, error, timings,\n"
    "                         per-rank peaks); the same command again resumes: jobs done with\n"
    "                         the same parameters are skipped, changed ones run again\n"
    "  --format y4m|mp4|png   the jobs' default output type (default y4m; png: a folder)\n"
    "  --batch-check          check the file and print each job's planned per-rank peak,\n"
    "                         without loading the model\n"
    "                         SIGTERM / SIGINT: the batch stops after the current step and\n"
    "                         exits 75 (resumable); a second signal ends it at once\n"
    "\n"
    "Commands:\n"
    "  inspect PATH        list the tensors of a .safetensors file, a *.safetensors.index.json,\n"
    "                      a component folder or a diffusers model directory (every file is\n"
    "                      validated; a malformed one is reported by file and tensor)\n"
    "      --json          machine-readable output on stdout\n"
    "      --summary       totals only, no per-tensor lines\n"
    "  encode              run the text encoder on one prompt as WanPipeline does (clean,\n"
    "                      tokenize to 512, UMT5, padded rows zeroed) and write the result\n"
    "      --model DIR     model directory with text_encoder/ and tokenizer/spiece.model (or,\n"
    "                      without it, tokenizer/tokenizer.json)\n"
    "      --prompt TEXT   the prompt (UTF-8, at most 1 MiB; may be empty)\n"
    "      --out FILE      .safetensors to write (atomically): prompt_embeds F32 [512, D],\n"
    "                      attention_mask U8 [512], input_ids I32 [512]; metadata: the prompt,\n"
    "                      the cleaned prompt, the token count\n"
    "      --threads N     CPU threads (default: $OMP_NUM_THREADS or all cores)\n"
    "                      Under mpirun, rank 0 encodes; the other ranks have nothing to do.\n"
    "  plan (or --plan)    predict the per-rank peak device and host memory of a generation for\n"
    "                      every --low-mem-level, by category, from the configs alone\n"
    "      --model DIR | --preset 1.3b|14b|a14b|5b   the model (presets: configs/; a14b:\n"
    "                      Wan2.2 T2V-A14B, two experts of 14B's shape, one on the device at a\n"
    "                      time; 5b: Wan2.2 TI2V-5B with its VAE)\n"
    "      --size WxH --frames N             the request (default 832x480, 81; TI2V 1280x704,\n"
    "                      121)\n"
    "      --image         TI2V: with an image (--image FILE), encoded before denoising\n"
    "      --np N --cfg-parallel N --cp MODE the ranks of one generation (default 1, 1, auto)\n"
    "      --fp8           FP8 storage for the DiT blocks and text encoder layers (as --fp8\n"
    "                      storage)\n"
    "      --dtype bf16|f32  weights and activations (default bf16, a GPU run; f32: the CPU\n"
    "                      backend's activations)\n"
    "      --vram SIZE     a per-rank budget: level 3 keeps as many DiT blocks resident as fit,\n"
    "                      and the lowest level that fits is recommended\n"
    "  convert             rewrite a model directory once in a narrower dtype: a complete\n"
    "                      diffusers directory (configs, tokenizer, scheduler copied), written\n"
    "                      tensor by tensor (never a whole model in memory) under a hidden\n"
    "                      temporary renamed into place at the end (nothing left on failure)\n"
    "      --model DIR     the source directory\n"
    "      --out DIR2      the new directory (must not exist)\n"
    "      --dtype bf16|fp8  bf16: every F32 tensor as BF16 (as .to(torch.bfloat16)); fp8: the\n"
    "                      DiT blocks' and text encoder layers' matrices as e4m3 with their\n"
    "                      scale (MODULE.scale_weight), the rest as it is: runs on it give --fp8\n"
    "                      storage's bits without converting at every load\n"
    "      --shard-size GB at most this many GB (1e9 bytes) per safetensors file (default 5, as\n"
    "                      diffusers' max_shard_size=\"5GB\")\n"
    "\n"
    "Global options:\n"
    "  --verbose           debug logging (same as --log-level debug)\n"
    "  --log-level L       error | warn | info | debug | trace (default: $WR_LOG_LEVEL or info)\n"
    "  --version           print the version and build capabilities, then exit\n"
    "  -h, --help          print this help, then exit\n"
    "\n"
    "Environment:\n"
    "  WR_LOG_LEVEL        default log level (as --log-level)\n"
    "  OMP_NUM_THREADS     default CPU thread count\n"
    "  WR_STRICT_DEVICE    1: the CPU backend's device memory is unreadable by host code (a\n"
    "                      host read is a crash: tests the GPU contract on the CPU); async:\n"
    "                      also runs the ops on a worker thread per stream (same results)\n"
    "  WR_COMM_STAGED      1: device collectives through host memory and MPI, never NCCL\n"
    "  WR_COMM_TIMEOUT_S   under mpirun: a rank silent this long (stopped, frozen) ends the\n"
    "                      job, exit 5; busy ranks keep answering (default 300, 0: never)\n"
    "\n"
    "Exit codes:\n"
    "  0 success            1 internal error        2 bad usage (flag or value)\n"
    "  3 input error (missing, malformed or inconsistent file or config; a model file\n"
    "    truncated or replaced during the run)\n"
    "  4 out of memory      5 device or communication failure\n"
    "  6 not supported by this build\n"
    "  7 --batch: some jobs failed (DIR/results.jsonl says which and why)\n"
    "  75 --batch: stopped by SIGTERM / SIGINT; run the same command again to finish it\n"
    "  killed by a signal: that signal's status (a shell shows 128 + N, e.g. 143 for SIGTERM)\n"
    "\n"
    "Diagnostics go to stderr, prefixed [rank/size]; results go to stdout. Under mpirun, each\n"
    "replica's first rank alone loads the text encoder and the VAE, encodes, decodes and\n"
    "writes; a failure on any rank is agreed, so every rank exits with the same code and\n"
    "message; a rank that dies ends the job (mpirun).\n";

static void print_version(void) {
    printf("wanrun %s\n", WR_VERSION_STRING);
    printf("build: CUDA=%d NCCL=%d OpenBLAS=%d FFmpeg=%d\n", WR_HAVE_CUDA, WR_HAVE_NCCL,
           WR_HAVE_OPENBLAS, WR_HAVE_FFMPEG);
    wr_device_info di;
    wr_status s = wr_backend_probe_cuda(&di);
    if (s == WR_OK)
        printf("cuda: %d device(s); device 0: %s (sm_%d%d, %.1f GiB)\n", di.count, di.name,
               di.cc_major, di.cc_minor, (double)di.total_bytes / (1024.0 * 1024 * 1024));
    else
        printf("cuda: unavailable (%s)\n", wr_error_detail());
    wr_error_clear();
}

/* ---- inspect ---- */

typedef struct inspect_opts {
    int json;
    int summary;
    int print; /* rank 0 prints; every rank validates */
} inspect_opts;

/* A path as a JSON string member: Linux does not require paths to be UTF-8, JSON does, so a
 * byte that is not UTF-8 becomes U+FFFD (tensor names and metadata are UTF-8 already: the
 * reader refuses any other). */
static void add_path(cJSON *o, const char *key, const char *path) {
    char *s = wr_utf8_sanitize(path);
    cJSON_AddStringToObject(o, key, s ? s : "?");
    free(s);
}

/* One set: text lines or a JSON object appended to `arr`. */
static wr_status inspect_set(const char *label, const char *path, const inspect_opts *o,
                             cJSON *arr) {
    wr_st_set *s = NULL;
    WR_TRY(wr_st_set_open(&s, path));
    int64_t n = wr_st_set_count(s), params = 0;
    uint64_t bytes = wr_st_set_nbytes(s);
    int64_t per_dtype[WR_DTYPE_COUNT] = {0};
    for (int64_t i = 0; i < n; i++) {
        const wr_st_tensor *t = wr_st_set_at(s, i);
        params += t->nelem;
        per_dtype[t->dtype]++;
    }
    if (!o->print) {
        /* nothing to show on this rank */
    } else if (o->json) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, c);
        cJSON_AddStringToObject(c, "component", label);
        add_path(c, "path", path);
        cJSON *files = cJSON_AddArrayToObject(c, "files");
        for (int64_t i = 0; i < wr_st_set_nfiles(s); i++) {
            const wr_st_file *f = wr_st_set_file(s, i);
            cJSON *fo = cJSON_CreateObject();
            add_path(fo, "path", wr_st_path(f));
            cJSON_AddNumberToObject(fo, "bytes", (double)wr_st_file_size(f));
            cJSON_AddNumberToObject(fo, "tensors", (double)wr_st_count(f));
            if (wr_st_metadata_count(f) > 0) {
                cJSON *m = cJSON_AddObjectToObject(fo, "metadata");
                for (int64_t k = 0; k < wr_st_metadata_count(f); k++) {
                    const char *key, *val;
                    wr_st_metadata_at(f, k, &key, &val);
                    cJSON_AddStringToObject(m, key, val);
                }
            }
            cJSON_AddItemToArray(files, fo);
        }
        cJSON_AddNumberToObject(c, "total_tensors", (double)n);
        cJSON_AddNumberToObject(c, "total_params", (double)params);
        cJSON_AddNumberToObject(c, "total_bytes", (double)bytes);
        cJSON *dt = cJSON_AddObjectToObject(c, "dtypes");
        for (int d = 0; d < WR_DTYPE_COUNT; d++)
            if (per_dtype[d]) cJSON_AddNumberToObject(dt, wr_dtype_name(d), (double)per_dtype[d]);
        if (!o->summary) {
            cJSON *ts = cJSON_AddArrayToObject(c, "tensors");
            for (int64_t i = 0; i < n; i++) {
                const wr_st_tensor *t = wr_st_set_at(s, i);
                cJSON *to = cJSON_CreateObject();
                cJSON_AddStringToObject(to, "name", t->name);
                cJSON_AddStringToObject(to, "dtype", wr_dtype_name(t->dtype));
                cJSON *sh = cJSON_AddArrayToObject(to, "shape");
                for (int d = 0; d < t->ndim; d++)
                    cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
                cJSON_AddNumberToObject(to, "bytes", (double)t->nbytes);
                const char *fp = wr_st_path(t->file);
                const char *slash = strrchr(fp, '/');
                add_path(to, "file", slash ? slash + 1 : fp);
                cJSON_AddItemToArray(ts, to);
            }
        }
    } else {
        printf("%s: %s (%lld file%s)\n", label, path, (long long)wr_st_set_nfiles(s),
               wr_st_set_nfiles(s) == 1 ? "" : "s");
        if (!o->summary) {
            for (int64_t i = 0; i < n; i++) {
                const wr_st_tensor *t = wr_st_set_at(s, i);
                char sh[160];
                printf("  %-56s %-8s %-24s %12zu\n", t->name, wr_dtype_name(t->dtype),
                       wr_shape_str(sh, sizeof sh, t->ndim, t->shape), t->nbytes);
            }
        }
        printf("  total: %lld tensors, %lld params, %llu bytes (%.3f GiB);", (long long)n,
               (long long)params, (unsigned long long)bytes,
               (double)bytes / (1024.0 * 1024 * 1024));
        for (int d = 0; d < WR_DTYPE_COUNT; d++)
            if (per_dtype[d]) printf(" %s x%lld", wr_dtype_name(d), (long long)per_dtype[d]);
        printf("\n");
    }
    const wr_status st = wr_st_check_faults(); /* a file cut short since it was opened */
    wr_st_set_close(s);
    return st;
}

static void print_dit(const char *name, const wr_dit_config *d) {
    printf("%s: %lld layers, %lld heads x %lld (D=%lld), ffn %lld, text_dim %lld\n", name,
           (long long)d->num_layers, (long long)d->num_attention_heads,
           (long long)d->attention_head_dim,
           (long long)(d->num_attention_heads * d->attention_head_dim), (long long)d->ffn_dim,
           (long long)d->text_dim);
}

static void print_configs(const wr_model_dir *md) {
    if (md->has[WR_COMP_TRANSFORMER]) print_dit("transformer", &md->dit);
    if (md->has[WR_COMP_TRANSFORMER_2]) print_dit("transformer_2", &md->dit2);
    if (md->boundary_ratio >= 0.0)
        printf("two experts (Wan2.2): transformer/ for t >= %g x num_train_timesteps, "
               "transformer_2/ below\n",
               md->boundary_ratio);
    if (md->has[WR_COMP_TEXT_ENCODER])
        printf("text_encoder: %s, %lld layers, d_model %lld, %lld heads x %lld, d_ff %lld, vocab "
               "%lld\n",
               md->t5.model_type, (long long)md->t5.num_layers, (long long)md->t5.d_model,
               (long long)md->t5.num_heads, (long long)md->t5.d_kv, (long long)md->t5.d_ff,
               (long long)md->t5.vocab_size);
    if (md->has[WR_COMP_VAE])
        printf("vae: base_dim %lld, z_dim %lld, %d stages, %lld res blocks\n",
               (long long)md->vae.base_dim, (long long)md->vae.z_dim, md->vae.dim_mult.n,
               (long long)md->vae.num_res_blocks);
    if (md->has[WR_COMP_SCHEDULER])
        printf("scheduler: %s, %lld train timesteps\n", md->sched.class_name,
               (long long)md->sched.num_train_timesteps);
}

static wr_status cmd_inspect(int argc, char **argv, int rank) {
    inspect_opts o = {0, 0, rank == 0};
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            o.json = 1;
        else if (strcmp(argv[i], "--summary") == 0)
            o.summary = 1;
        else if (argv[i][0] == '-')
            return WR_FAIL(WR_ERR_INVALID_ARG, "inspect: unknown option %s (see wanrun --help)",
                           QA(argv[i]));
        else if (path == NULL)
            path = argv[i];
        else
            return WR_FAIL(WR_ERR_INVALID_ARG, "inspect: takes one PATH, got %s and %s", QA(path),
                           QB(argv[i]));
    }
    if (path == NULL)
        return WR_FAIL(WR_ERR_INVALID_ARG, "inspect: missing PATH (a .safetensors file, an index, "
                                           "or a model directory)");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return WR_FAIL(WR_ERR_NOT_FOUND, "%s: no such file or directory", path);
    wr_status st = WR_OK;
    cJSON *root = o.json ? cJSON_CreateObject() : NULL;
    cJSON *arr = o.json ? cJSON_AddArrayToObject(root, "components") : NULL;
    char mi[WR_PATH_CAP + 32];
    snprintf(mi, sizeof mi, "%s/model_index.json", path);
    struct stat mb;
    int is_model = S_ISDIR(sb.st_mode) && stat(mi, &mb) == 0;
    if (is_model) {
        wr_model_dir *md = calloc(1, sizeof *md);
        if (md == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
        st = wr_model_dir_open(md, path);
        if (st == WR_OK && !o.json && rank == 0) print_configs(md);
        const wr_component comps[] = {WR_COMP_TRANSFORMER, WR_COMP_TRANSFORMER_2,
                                      WR_COMP_TEXT_ENCODER, WR_COMP_VAE};
        for (int i = 0; st == WR_OK && i < 4; i++) {
            if (!md->has[comps[i]]) continue;
            char d[WR_PATH_CAP + 64];
            wr_model_dir_path(d, sizeof d, md, comps[i]);
            st = inspect_set(wr_component_name(comps[i]), d, &o, arr);
        }
        if (root && st == WR_OK && md->boundary_ratio >= 0.0) /* Wan2.2's two experts */
            cJSON_AddNumberToObject(root, "boundary_ratio", md->boundary_ratio);
        free(md);
    } else {
        st = inspect_set("weights", path, &o, arr);
    }
    if (st == WR_OK && o.json && rank == 0) {
        char *txt = cJSON_Print(root);
        if (txt) puts(txt);
        free(txt);
    }
    cJSON_Delete(root);
    return st;
}

/* ---- encode ---- */

/* Value of option argv[*i] (advancing *i), or an error naming the option. */
static wr_status opt_value(int argc, char **argv, int *i, const char *cmd, const char **out) {
    if (*i + 1 >= argc)
        return WR_FAIL(WR_ERR_INVALID_ARG, "%s: option %s needs a value", cmd, argv[*i]);
    *out = argv[++*i];
    return WR_OK;
}

static wr_status parse_threads(const char *cmd, const char *v, int *out) {
    int64_t n = 0;
    if (wr_parse_i64("threads", v, 1, 4096, &n) != WR_OK) {
        wr_error_prefix("%s", cmd);
        return WR_ERR_INVALID_ARG;
    }
    *out = (int)n;
    return WR_OK;
}

static wr_status cmd_encode(int argc, char **argv, int rank) {
    const char *model = NULL, *prompt = NULL, *out_path = NULL;
    int threads = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0)
            WR_TRY(opt_value(argc, argv, &i, "encode", &model));
        else if (strcmp(argv[i], "--prompt") == 0)
            WR_TRY(opt_value(argc, argv, &i, "encode", &prompt));
        else if (strcmp(argv[i], "--out") == 0)
            WR_TRY(opt_value(argc, argv, &i, "encode", &out_path));
        else if (strcmp(argv[i], "--threads") == 0) {
            const char *v = NULL;
            WR_TRY(opt_value(argc, argv, &i, "encode", &v));
            WR_TRY(parse_threads("encode", v, &threads));
        } else
            return WR_FAIL(WR_ERR_INVALID_ARG, "encode: unknown option %s (see wanrun --help)",
                           QA(argv[i]));
    }
    if (model == NULL || prompt == NULL || out_path == NULL)
        return WR_FAIL(WR_ERR_INVALID_ARG, "encode: %s is required (see wanrun --help)",
                       model == NULL    ? "--model DIR"
                       : prompt == NULL ? "--prompt TEXT"
                                        : "--out FILE");
    WR_TRY(wr_prompt_check(prompt, "--prompt"));
    /* a bad --out fails now, not after loading and encoding */
    wr_status cst = wr_atomic_check(out_path, WR_ATOMIC_FILE);
    if (cst != WR_OK) {
        wr_error_prefix("encode: --out");
        return cst;
    }
    if (rank != 0) return WR_OK;

    char tdir[WR_PATH_CAP + 16], spm[WR_PATH_CAP + 64], te[WR_PATH_CAP + 64];
    snprintf(tdir, sizeof tdir, "%s/tokenizer", model);
    WR_TRY(wr_tokenizer_locate(tdir, spm, sizeof spm)); /* spiece.model, else tokenizer.json */
    snprintf(te, sizeof te, "%s/text_encoder", model);
    wr_status st = WR_OK;
    wr_tokenizer *tok = NULL;
    wr_backend *be = NULL;
    wr_t5 *t5 = NULL;
    wr_st_writer *w = NULL;
    char *clean = NULL;
    float *emb = NULL;
    int32_t ids[WR_TOKENIZER_MAX_LEN];
    uint8_t mask[WR_TOKENIZER_MAX_LEN];
    int n_tok = 0;
    WR_TRY_GOTO(st, wr_tokenizer_open(&tok, spm), done);
    WR_TRY_GOTO(st, wr_prompt_clean(prompt, &clean), done);
    WR_TRY_GOTO(st, wr_tokenizer_encode(tok, prompt, WR_TOKENIZER_MAX_LEN, ids, mask, &n_tok),
                done);
    WR_TRY_GOTO(st, wr_backend_create(&be, WR_BACKEND_CPU, threads), done);
    WR_TRY_GOTO(st, wr_t5_load(&t5, be, te), done);
    const int64_t D = wr_t5_config_of(t5)->d_model;
    if (wr_tokenizer_vocab_size(tok) > wr_t5_config_of(t5)->vocab_size) {
        st = WR_FAIL(WR_ERR_CONFIG,
                     "%s has %lld ids but %s/config.json a vocabulary of %lld: tokenizer and "
                     "text encoder are not from the same model",
                     spm, (long long)wr_tokenizer_vocab_size(tok), te,
                     (long long)wr_t5_config_of(t5)->vocab_size);
        goto done;
    }
    emb = malloc(sizeof(float) * (size_t)(WR_TOKENIZER_MAX_LEN * D));
    if (emb == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "encode: no memory for a [%d, %lld] embedding",
                     WR_TOKENIZER_MAX_LEN, (long long)D);
        goto done;
    }
    wr_tensor et = wr_tensor_make(emb, WR_DTYPE_F32, 2, (int64_t[]){WR_TOKENIZER_MAX_LEN, D});
    int64_t n_real = 0;
    wr_log_rank0("encode: %d tokens (of %d), %lld-layer UMT5, d_model %lld", n_tok,
                 WR_TOKENIZER_MAX_LEN, (long long)wr_t5_config_of(t5)->num_layers, (long long)D);
    WR_TRY_GOTO(st, wr_t5_encode(t5, &et, ids, mask, WR_TOKENIZER_MAX_LEN, &n_real), done);
    WR_TRY_GOTO(st, wr_st_check_faults(), done); /* the weights were all there: see safetensors.h */
    /* a diverging text encoder config gives NaN / inf: refused, never written */
    for (int64_t i = 0; i < WR_TOKENIZER_MAX_LEN * D; i++)
        if (!isfinite(emb[i])) {
            st = WR_FAIL(WR_ERR_CONFIG,
                         "encode: the text encoder's output is %s (row %lld, column %lld): the "
                         "model diverged; check %s/config.json (e.g. layer_norm_epsilon); "
                         "nothing written",
                         isnan(emb[i]) ? "NaN" : "infinite", (long long)(i / D), (long long)(i % D),
                         te);
            goto done;
        }

    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)n_real);
    WR_TRY_GOTO(st, wr_st_writer_init(&w), done);
    WR_TRY_GOTO(st,
                wr_st_writer_add(w, "prompt_embeds", WR_DTYPE_F32, 2,
                                 (int64_t[]){WR_TOKENIZER_MAX_LEN, D}, emb),
                done);
    WR_TRY_GOTO(st,
                wr_st_writer_add(w, "attention_mask", WR_DTYPE_U8, 1,
                                 (int64_t[]){WR_TOKENIZER_MAX_LEN}, mask),
                done);
    WR_TRY_GOTO(
        st,
        wr_st_writer_add(w, "input_ids", WR_DTYPE_I32, 1, (int64_t[]){WR_TOKENIZER_MAX_LEN}, ids),
        done);
    WR_TRY_GOTO(st, wr_st_writer_meta(w, "prompt", prompt), done);
    WR_TRY_GOTO(st, wr_st_writer_meta(w, "prompt_clean", clean), done);
    WR_TRY_GOTO(st, wr_st_writer_meta(w, "tokens", num), done);
    WR_TRY_GOTO(st, wr_st_writer_meta(w, "model", model), done);
    WR_TRY_GOTO(st, wr_st_writer_meta(w, "wanrun", WR_VERSION_STRING), done);
    WR_TRY_GOTO(st, wr_st_writer_write(w, out_path), done);
    wr_log_rank0("encode: wrote %s (prompt_embeds [%d, %lld], %lld real rows)", out_path,
                 WR_TOKENIZER_MAX_LEN, (long long)D, (long long)n_real);
done:
    wr_st_writer_free(w);
    free(emb);
    free(clean);
    wr_t5_free(t5);
    wr_backend_free(be);
    wr_tokenizer_free(tok);
    return st;
}

/* ---- generate (the default command) ---- */

/* --config FILE: a JSON object of options (src/pipeline/options.h); flags given on the
 * command line are applied after it and win. */
static wr_status gen_config(wr_gen_opts *g, const char *path) {
    char *text = NULL;
    size_t len = 0;
    wr_status rs = wr_read_small_file(&text, &len, path, WR_CONFIG_MAX_BYTES, "a config");
    if (rs != WR_OK) {
        wr_error_prefix("--config");
        return rs;
    }
    wr_status st = wr_gen_opts_from_json(g, text, len, path);
    free(text);
    return st;
}

static void on_progress(void *ctx, int64_t step, int64_t steps, float t, double sec, double eta) {
    (void)ctx;
    wr_log_rank0("step %lld/%lld  t=%.1f  %.2f s  ETA %d:%02d", (long long)step, (long long)steps,
                 (double)t, sec, (int)(eta / 60), (int)eta % 60);
}

/* ---- plan: the memory planner ---- */

static wr_status cmd_plan(int argc, char **argv, int rank) {
    const char *model = NULL, *preset = NULL;
    int64_t width = 832, height = 480, frames = 81, np = 1, cfgp = 1, budget = 0;
    int fp8 = 0, f32 = 0, cpm = WR_CP_AUTO, image = 0, sized = 0, framed = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--fp8") || !strcmp(a, "--image")) {
            *(a[2] == 'f' ? &fp8 : &image) = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || v == NULL)
            return WR_FAIL(WR_ERR_INVALID_ARG, "plan: %s %s (see wanrun --help)", QA(a),
                           strncmp(a, "--", 2) ? "is not an option" : "needs a value");
        i++;
        if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--preset"))
            preset = v;
        else if (!strcmp(a, "--size")) {
            sized = 1;
            WR_TRY(wr_parse_size("size", v, &width, &height));
            if (width % 16 || height % 16)
                return WR_FAIL(WR_ERR_INVALID_ARG,
                               "--size %lldx%lld: width and height must be multiples of 16",
                               (long long)width, (long long)height);
        } else if (!strcmp(a, "--frames")) {
            framed = 1;
            WR_TRY(wr_parse_i64("frames", v, 1, WR_REQUEST_MAX_FRAMES, &frames));
        } else if (!strcmp(a, "--np"))
            WR_TRY(wr_parse_i64("np", v, 1, 4096, &np));
        else if (!strcmp(a, "--cfg-parallel"))
            WR_TRY(wr_parse_i64("cfg-parallel", v, 1, 2, &cfgp));
        else if (!strcmp(a, "--cp")) {
            cpm = wr_cp_mode_parse(v);
            if (cpm < 0)
                return WR_FAIL(WR_ERR_INVALID_ARG, "--cp must be auto, ulysses or ring, got %s",
                               QA(v));
        } else if (!strcmp(a, "--vram"))
            WR_TRY(wr_parse_bytes("vram", v, &budget));
        else if (!strcmp(a, "--dtype")) {
            if (strcmp(v, "bf16") && strcmp(v, "f32"))
                return WR_FAIL(WR_ERR_INVALID_ARG, "--dtype must be bf16 or f32, got %s", QA(v));
            f32 = !strcmp(v, "f32");
        } else
            return WR_FAIL(WR_ERR_INVALID_ARG, "plan: unknown option %s (see wanrun --help)",
                           QA(a));
    }
    if (np % cfgp)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--np %lld is not a multiple of --cfg-parallel %lld",
                       (long long)np, (long long)cfgp);
    wr_plan_in in;
    memset(&in, 0, sizeof in);
    if (model) {
        wr_model_dir *md = calloc(1, sizeof *md);
        if (md == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
        wr_status st = wr_model_dir_open(md, model);
        if (st == WR_OK) wr_plan_in_model(&in, md);
        free(md);
        WR_TRY(st);
    } else {
        /* a14b: Wan2.2 T2V-A14B, two experts of Wan2.1 14B's shape; 5b: Wan2.2 TI2V-5B */
        const int a14b = preset && !strcmp(preset, "a14b"), b5 = preset && !strcmp(preset, "5b");
        if (preset == NULL || (strcmp(preset, "1.3b") && strcmp(preset, "14b") && !a14b && !b5))
            return WR_FAIL(WR_ERR_INVALID_ARG,
                           "plan needs --model DIR or --preset 1.3b|14b|a14b|5b (Wan2.1 1.3B, "
                           "14B, Wan2.2 T2V-A14B, TI2V-5B)");
        char p[4200];
        snprintf(p, sizeof p, "%s/dit-%s.json", WR_CONFIG_DIR,
                 a14b ? "14b"
                 : b5 ? "ti2v-5b"
                      : preset);
        WR_TRY(wr_dit_config_read(&in.dit, p));
        if (a14b) in.experts = 2, in.dit2 = in.dit;
        snprintf(p, sizeof p, "%s/umt5-xxl.json", WR_CONFIG_DIR);
        WR_TRY(wr_t5_config_read(&in.t5, p));
        snprintf(p, sizeof p, "%s/vae-wan%s.json", WR_CONFIG_DIR, b5 ? "22" : "21");
        WR_TRY(wr_vae_config_read(&in.vae, p));
        in.ti2v = b5;
    }
    if (in.ti2v) { /* the model's defaults, as a generation takes them */
        if (!sized) width = 1280, height = 704;
        if (!framed) frames = 121;
    } else if (image) {
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "plan --image: only a TI2V model (Wan2.2 5B: --preset 5b or its "
                       "directory) takes an image");
    }
    WR_TRY(wr_request_check_sizes(width, height, frames));
    in.image = image;
    in.width = width, in.height = height, in.frames = frames;
    in.cp = (int)(np / cfgp), in.cfg_parallel = (int)cfgp, in.cp_mode = (wr_cp_mode)cpm;
    const int wb = f32 ? 4 : 2;
    in.dit_wbytes = fp8 ? 1 : wb, in.t5_wbytes = fp8 ? 1 : wb, in.vae_wbytes = wb;
    in.act_bytes = wb, in.fp8_upcast = fp8;
    in.scratch = wr_backend_scratch_bytes(f32 ? WR_BACKEND_CPU : WR_BACKEND_CUDA);
    in.staging = f32 ? 0 : 2 * WR_VRAM_STAGING_CHUNK; /* a GPU's copy stream stages */
    in.resident_copies = !f32;
    in.tiling = wr_vae_tiling_default();
    /* every level planned before anything is printed: a bad model directory is an error alone,
     * not a table header followed by one */
    wr_plan_out plans[4];
    for (int level = 0; level <= 3; level++)
        WR_TRY(wr_plan_level(&in, level, (uint64_t)budget, &plans[level]));
    if (rank != 0) return WR_OK;
    printf("plan: %s, %lldx%lld, %lld frames, %lld rank(s) (cfg-parallel %lld x context-parallel "
           "%d), weights %s, activations %s; per rank, MiB\n",
           model ? model : preset, (long long)width, (long long)height, (long long)frames,
           (long long)np, (long long)cfgp, in.cp,
           fp8   ? "fp8"
           : f32 ? "f32"
                 : "bf16",
           f32 ? "f32" : "bf16");
    if (in.ti2v)
        printf("TI2V (Wan2.2): a timestep per token, the Wan2.2 VAE (tiled from level 1)%s\n",
               image ? "; the image is encoded (tiled from level 1) before denoising, phase image"
                     : "");
    if (in.experts == 2)
        printf("two experts (Wan2.2): one in device memory at a time, swapped at the boundary; the "
               "waiting one's blocks are in the host column%s, its embeddings and head in "
               "w-resident\n",
               in.disk_offload ? " (not with --disk-offload)" : "");
    printf("%-5s %10s %-8s %10s %10s %10s %10s %10s %10s\n", "level", "device", "at", "w-resident",
           "w-stream", "activ.", "vae", "workspace", "host");
    int recommended = -1;
    for (int level = 0; level <= 3; level++) {
        const wr_plan_out o = plans[level];
        const uint64_t *c = o.dev[o.peak_phase];
        const double M = 1048576.0;
        printf("%-5d %10.0f %-8s %10.0f %10.0f %10.0f %10.0f %10.0f %10.0f", level,
               (double)o.peak_device / M, wr_plan_phase_name(o.peak_phase),
               (double)c[WR_MEM_WEIGHTS_RESIDENT] / M, (double)c[WR_MEM_WEIGHTS_STREAMING] / M,
               (double)c[WR_MEM_ACTIVATIONS] / M, (double)c[WR_MEM_VAE] / M,
               (double)c[WR_MEM_WORKSPACE] / M, (double)o.peak_host / M);
        if (level == 3 && budget)
            printf("  (%lld DiT blocks resident)", (long long)o.resident_blocks);
        printf("\n");
        if (recommended < 0 && budget && o.peak_device <= (uint64_t)budget) recommended = level;
    }
    if (budget) {
        char b[32];
        if ((uint64_t)budget >= (1ull << 30))
            snprintf(b, sizeof b, "%.1f GiB", (double)budget / 1073741824.0);
        else
            snprintf(b, sizeof b, "%.0f MiB", (double)budget / 1048576.0);
        if (recommended >= 0)
            printf("recommended for %s: --low-mem-level %d\n", b, recommended);
        else
            printf("no level fits %s\n", b);
    }
    return WR_OK;
}

/* "clip.mp4" -> "clip.r2.mp4" (replica 2 of several); a directory (PNG frames) gets ".r2". */
static void replica_path(char *dst, size_t cap, const char *path, int replica) {
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (dot && (!slash || dot > slash + 1))
        snprintf(dst, cap, "%.*s.r%d%s", (int)(dot - path), path, replica, dot);
    else
        snprintf(dst, cap, "%s.r%d", path, replica);
}

static wr_world g_world;

/* The bytes per element of a component's largest tensor (its storage dtype); 4 if unknown. */
static int component_wbytes(const char *model, const char *sub) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", model, sub);
    wr_st_set *set = NULL;
    if (wr_st_set_open(&set, p) != WR_OK) return 4;
    size_t best = 0;
    int wb = 4;
    for (int64_t i = 0; i < wr_st_set_count(set); i++) {
        const wr_st_tensor *t = wr_st_set_at(set, i);
        if (t->nbytes > best) best = t->nbytes, wb = (int)wr_dtype_size(t->dtype);
    }
    wr_st_set_close(set);
    return wb;
}

/* The planner's input for this model, request and layout, as this (CPU) backend holds it. */
static wr_status plan_input(const wr_gen_opts *g, wr_plan_in *inp) {
    wr_model_dir *md = calloc(1, sizeof *md);
    if (md == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    wr_status st = wr_model_dir_open(md, g->model);
    wr_plan_in in;
    memset(&in, 0, sizeof in);
    if (st == WR_OK) wr_plan_in_model(&in, md);
    free(md);
    WR_TRY(st);
    in.width = g->width, in.height = g->height, in.frames = g->frames;
    const int cfgp = g->cfg_parallel > 0 ? g->cfg_parallel : 1;
    in.cfg_parallel = cfgp;
    in.cp = g->cp_size > 0 ? g->cp_size : (g_world.size / cfgp > 0 ? g_world.size / cfgp : 1);
    in.cp_mode = (wr_cp_mode)g->cp_mode;
    in.no_cfg = g->guidance <= 1.0;
    in.te_cpu = g->te_cpu;
    in.dit_wbytes = g->fp8 ? 1 : component_wbytes(g->model, "transformer");
    in.t5_wbytes = g->fp8 ? 1 : component_wbytes(g->model, "text_encoder");
    in.vae_wbytes = component_wbytes(g->model, "vae");
    in.act_bytes = 4; /* the CPU backend computes in f32 */
    in.dit_act_bytes = wr_gen_opts_bf16(g) ? 2 : 4;
    in.scratch = wr_backend_scratch_bytes(WR_BACKEND_CPU);
    in.disk_offload = g->disk_offload;
    in.staging = g->disk_offload ? 2 * WR_VRAM_STAGING_CHUNK : 0; /* the pread target */
    in.resident_copies = wr_backend_strict_env() != 0 || !strcmp(g->backend, "cuda");
    in.tiling = wr_vae_tiling_default();
    in.image = g->image != NULL;
    *inp = in;
    return WR_OK;
}

/* The policy of level l with the --te-stream / --dit-stream / --vae-tiled overrides. */
static wr_status level_policy(const wr_gen_opts *g, int l, wr_mem_policy *pol) {
    WR_TRY(wr_mem_policy_of_level(l, pol));
    if (g->te_stream >= 0) pol->te_stream = g->te_stream;
    if (g->dit_stream >= 0) pol->dit_stream = g->dit_stream;
    if (g->vae_tiled >= 0) pol->vae_tiled = g->vae_tiled;
    return WR_OK;
}

wr_status wr_cli_plan_peak(const wr_gen_opts *g, int level, uint64_t *peak) {
    wr_plan_in in;
    WR_TRY(plan_input(g, &in));
    wr_mem_policy pol;
    WR_TRY(level_policy(g, level, &pol));
    wr_plan_out o;
    WR_TRY(wr_plan_policy(&in, &pol, 0, &o));
    *peak = o.peak_device;
    return WR_OK;
}

/* --low-mem-level auto: the lowest level (the fastest) whose planned per-rank peak fits
 * --vram-limit, for this model, request and layout, as this (CPU) backend holds it. */
wr_status wr_cli_auto_level(const wr_gen_opts *g, int *level) {
    if (g->vram_limit <= 0)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--low-mem-level auto needs --vram-limit SIZE: the "
                                           "per-rank budget the level must fit");
    wr_plan_in in;
    WR_TRY(plan_input(g, &in));
    uint64_t need3 = 0;
    for (int l = 0; l <= 3; l++) {
        wr_mem_policy pol;
        WR_TRY(level_policy(g, l, &pol));
        wr_plan_out o;
        WR_TRY(wr_plan_policy(&in, &pol, 0, &o));
        need3 = o.peak_device;
        if (o.peak_device <= (uint64_t)g->vram_limit) {
            *level = l;
            wr_log_rank0("--low-mem-level auto: level %d (planned peak %.1f MiB per rank, limit "
                         "%.1f MiB)",
                         l, (double)o.peak_device / 1048576.0, (double)g->vram_limit / 1048576.0);
            return WR_OK;
        }
    }
    return WR_FAIL(WR_ERR_OOM_DEVICE,
                   "--low-mem-level auto: no level fits --vram-limit %.1f MiB; level 3 needs "
                   "%.1f MiB per rank for this request (see wanrun plan)",
                   (double)g->vram_limit / 1048576.0, (double)need3 / 1048576.0);
}

/* Every output path, before the model loads: a bad one fails now, not after the run
 * (exit 2 for a name that cannot be an output, 3 for a missing or read-only directory). */
static wr_status check_outputs(const wr_gen_opts *g, const char *out, const char *lat) {
    wr_status st = wr_video_check(out, WR_VIDEO_AUTO, g->height, g->width);
    if (st != WR_OK) {
        wr_error_prefix("--out");
        return st;
    }
    if (lat && (st = wr_atomic_check(lat, WR_ATOMIC_FILE)) != WR_OK) {
        wr_error_prefix("--save-latents");
        return st;
    }
    if (g->mem_profile && (st = wr_memprof_check(g->mem_profile)) != WR_OK) {
        wr_error_prefix("--mem-profile");
        return st;
    }
    return WR_OK;
}

/* The final latents as a .safetensors temporary (tensor "latents", the prompt as metadata),
 * committed with the video. */
static wr_status stage_latents(wr_atomic *pending, const char *path, const float *lat,
                               const int64_t shape[4], const char *prompt) {
    wr_st_writer *w = NULL;
    WR_TRY(wr_st_writer_init(&w));
    wr_status st = wr_st_writer_add(w, "latents", WR_DTYPE_F32, 4, shape, lat);
    if (st == WR_OK) st = wr_st_writer_meta(w, "prompt", prompt);
    if (st == WR_OK) st = wr_st_writer_meta(w, "wanrun", WR_VERSION_STRING);
    if (st == WR_OK) st = wr_st_writer_stage(w, path, pending);
    wr_st_writer_free(w);
    return st;
}

/* The model's own defaults where the flags leave them: Wan2.2 TI2V-5B (expand_timesteps)
 * generates 1280x704, 121 frames at 24 fps (the Wan2.2 repository's; diffusers' example uses
 * them too); Wan2.1 and A14B keep WanPipeline's 832x480, 81 frames, 16 fps. A directory that
 * does not open is left to the model load to report. */
void wr_cli_model_defaults(wr_gen_opts *g) {
    wr_model_dir *md = calloc(1, sizeof *md);
    if (md == NULL) return;
    if (wr_model_dir_open(md, g->model) == WR_OK && md->expand_timesteps) {
        if (!(g->given & ((uint64_t)1 << WR_OPT_SIZE))) g->width = 1280, g->height = 704;
        if (!(g->given & ((uint64_t)1 << WR_OPT_FRAMES))) g->frames = 121;
        if (!(g->given & ((uint64_t)1 << WR_OPT_FPS))) g->fps = 24.0;
    }
    wr_error_clear();
    free(md);
}

static wr_status cmd_generate(int argc, char **argv, int rank) {
    wr_gen_opts g;
    wr_gen_opts_init(&g);
    wr_status st = WR_OK;
    /* --config first, wherever it stands, so that the other flags override it */
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config")) {
            st = gen_config(&g, argv[++i]);
            if (st != WR_OK) goto done;
        }
    if ((st = wr_gen_opts_parse_args(&g, argc, argv)) != WR_OK) goto done;
    if (g.verbose) wr_log_set_level(WR_LOG_DEBUG);
    if ((st = wr_gen_opts_finish(&g, WR_DEFAULT_MODEL)) != WR_OK) goto done;
    if (!g.bundled) wr_cli_model_defaults(&g);
    if ((st = check_outputs(&g, g.out, g.save_latents)) != WR_OK) goto done;
    if (g.image && access(g.image, R_OK) != 0) {
        st = WR_FAIL(errno == ENOENT ? WR_ERR_NOT_FOUND : WR_ERR_IO,
                     "--image %s: cannot read it: %s", g.image, strerror(errno));
        goto done;
    }
    if (g.init_noise && access(g.init_noise, R_OK) != 0) {
        st = WR_FAIL(WR_ERR_NOT_FOUND, "--init-noise %s: cannot read it: %s", g.init_noise,
                     strerror(errno));
        goto done;
    }
    /* the prompts' length and UTF-8 now, not after loading the model */
    if ((st = wr_prompt_check(g.prompt, "--prompt")) != WR_OK ||
        (g.negative && (st = wr_prompt_check(g.negative, "--negative-prompt")) != WR_OK))
        goto done;
    (void)rank;
    if (g.bundled)
        wr_log_rank0("no --model: the bundled tiny random model (%s), whose output is noise, for "
                     "trying the tool (defaults %dx%d, %d frames, %d steps); a real model is a "
                     "diffusers directory such as Wan2.1-T2V-1.3B-Diffusers (model_index.json, "
                     "transformer/, text_encoder/, tokenizer/, vae/, scheduler/): --model DIR",
                     g.model, WR_BUNDLED_WIDTH, WR_BUNDLED_HEIGHT, WR_BUNDLED_FRAMES,
                     WR_BUNDLED_STEPS);

    wr_options opt;
    if ((st = wr_cli_options(&g, &g_world, &opt)) != WR_OK) goto done;
    wr_request req;
    wr_request_defaults(&req);
    req.prompt = g.prompt;
    req.negative_prompt = g.negative;
    req.width = g.width, req.height = g.height, req.frames = g.frames, req.steps = g.steps;
    req.guidance = g.guidance, req.shift = g.shift, req.scheduler = g.scheduler;
    req.guidance_2 = g.guidance_2, req.boundary_ratio = g.boundary_ratio;
    req.image = g.image;
    req.seed = g.seed, req.init_noise = g.init_noise;
    req.save_latents = NULL; /* written here, with the video, once both are ready */
    req.progress = on_progress;
    wr_video_format fmt = wr_video_format_of(g.out);
    wr_context *ctx = NULL;
    wr_video vid = {0};
    wr_role role = {0};
    wr_atomic vpend = {0}, lpend = {0};
    vpend.fd = vpend.slot = lpend.fd = lpend.slot = -1;
    float *lat = NULL;
    int64_t lshape[4] = {0};
    char out_path[4200], lat_path[4200];
    st = wr_context_create(&ctx, g.model, &opt);
    if (st == WR_OK) {
        wr_context_role(ctx, &role);
        snprintf(out_path, sizeof out_path, "%s", g.out);
        if (g.save_latents) snprintf(lat_path, sizeof lat_path, "%s", g.save_latents);
        if (role.replicas > 1) { /* every replica its own files (and seed + replica) */
            replica_path(out_path, sizeof out_path, g.out, role.replica);
            if (g.save_latents)
                replica_path(lat_path, sizeof lat_path, g.save_latents, role.replica);
            st = check_outputs(&g, out_path, g.save_latents ? lat_path : NULL);
        }
        if (st == WR_OK) st = wr_request_check(ctx, &req);
        if (st == WR_OK && role.writer && g.save_latents) {
            wr_request_latent_shape(ctx, &req, lshape);
            lat = malloc(sizeof(float) * (size_t)(lshape[0] * lshape[1] * lshape[2] * lshape[3]));
            if (lat == NULL) st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for the latents");
            req.latents_out = lat;
        }
        st = wr_context_agree(ctx, st); /* before the collective generation */
    }
    if (st == WR_OK) {
        wr_log_rank0("generating %lld frames of %lldx%lld, %lld steps, guidance %g, seed %llu",
                     (long long)g.frames, (long long)g.width, (long long)g.height,
                     (long long)g.steps, g.guidance, (unsigned long long)g.seed);
        if (wr_context_experts(ctx) == 2)
            wr_log_rank0("two experts (Wan2.2): transformer/ above the boundary, transformer_2/ "
                         "below it with guidance %g",
                         g.guidance_2 >= 0.0 ? g.guidance_2 : g.guidance);
        if (g_world.size > 1)
            wr_log_rank0("%d ranks: %d replica(s) x cfg-parallel %d x context-parallel %d (%s)",
                         g_world.size, role.replicas, role.cfg, role.cp,
                         role.cp > 1 ? wr_cp_mode_name((wr_cp_mode)role.cp_mode) : "off");
        st = wr_generate(ctx, &req, &vid);
    }
    if (st == WR_OK) st = wr_st_check_faults(); /* nothing is written from a cut-short model */
    /* the run has succeeded: both outputs are written to temporaries, then put in place
     * together (a failure before leaves every existing file as it was) */
    if (st == WR_OK && role.writer) {
        st = wr_video_write_staged(&vpend, out_path, fmt, vid.frames, vid.n, vid.h, vid.w, g.fps);
        if (st == WR_OK && lat) st = stage_latents(&lpend, lat_path, lat, lshape, g.prompt);
        if (st == WR_OK) st = wr_atomic_commit(&vpend);
        if (st == WR_OK && lat) st = wr_atomic_commit(&lpend);
        wr_atomic_discard(&vpend); /* after a failure; released ones are left alone */
        wr_atomic_discard(&lpend);
        if (st == WR_OK) {
            wr_info("wrote %s (%lld frames, %lldx%lld, %g fps)", out_path, (long long)vid.n,
                    (long long)vid.w, (long long)vid.h, g.fps);
            if (lat)
                wr_info("wrote %s (latents [%lld, %lld, %lld, %lld])", lat_path,
                        (long long)lshape[0], (long long)lshape[1], (long long)lshape[2],
                        (long long)lshape[3]);
        }
    }
    /* the writers' last steps (decode, write) are agreed too: one exit code for the job */
    if (ctx) st = wr_context_agree(ctx, st);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) /* each rank: what it loaded shows here */
        wr_debug("peak host memory (RSS) of this rank: %.1f MiB%s", (double)ru.ru_maxrss / 1024.0,
                 role.writer ? " (writer: text encoder and VAE loaded here)" : "");
    free(lat);
    wr_video_free(&vid);
    wr_context_free(ctx);
done:
    wr_gen_opts_free(&g);
    return st;
}

wr_status wr_cli_options(const wr_gen_opts *g, const wr_world *world, wr_options *opt) {
    wr_options_defaults(opt);
    opt->backend = strcmp(g->backend, "cuda") == 0 ? WR_BACKEND_CUDA : WR_BACKEND_CPU;
    opt->device = g->device;
    opt->threads = g->threads;
    opt->low_mem_level = g->low_mem_level;
    opt->vram_limit = (uint64_t)g->vram_limit;
    opt->te_stream = g->te_stream, opt->dit_stream = g->dit_stream, opt->vae_tiled = g->vae_tiled;
    opt->disk_offload = g->disk_offload;
    opt->fp8_storage = g->fp8;
    opt->compute_dtype = wr_gen_opts_bf16(g) ? WR_DTYPE_BF16 : WR_DTYPE_F32;
    opt->te_cpu = g->te_cpu;
    if (g->low_mem_level < 0) WR_TRY(wr_cli_auto_level(g, &opt->low_mem_level));
    opt->world = world;
    opt->cfg_parallel = g->cfg_parallel;
    opt->cp_size = g->cp_size;
    opt->cp_mode = g->cp_mode;
    opt->mem_profile_dir = g->mem_profile;
    return WR_OK;
}

/* 1 when argv holds the flag (a value of another flag aside: good enough to route) */
static int has_flag(int argc, char **argv, const char *flag) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], flag)) return 1;
    return 0;
}

int main(int argc, char **argv) {
    /* MPI starts only under an MPI launcher (mpirun/mpiexec/srun) or with WR_FORCE_MPI set: a
     * plain `wanrun ...` does not pay Open MPI's singleton start-up and is rank 0 of 1. */
    wr_status st = wr_world_init(&g_world, &argc, &argv);
    const int rank = g_world.rank;
    wr_log_set_rank(g_world.rank, g_world.size);
    wr_log_init();

    /* a fatal signal removes the output temporaries in progress (core/atomic_file.h) */
    wr_atomic_handle_signals();

    int code = EXIT_OK;
    int i = 1;
    if (st != WR_OK) goto out;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            if (rank == 0) fputs(usage_text, stdout);
            goto out;
        } else if (strcmp(argv[i], "--version") == 0) {
            if (rank == 0) print_version();
            goto out;
        } else if (strcmp(argv[i], "--verbose") == 0) {
            wr_log_set_level(WR_LOG_DEBUG);
        } else if (strcmp(argv[i], "--log-level") == 0) {
            int lv = i + 1 < argc ? wr_log_level_parse(argv[i + 1]) : -1;
            if (lv < 0) {
                st = WR_FAIL(WR_ERR_INVALID_ARG, "--log-level needs one of error|warn|info|debug|"
                                                 "trace");
                goto out;
            }
            wr_log_set_level((wr_log_level)lv);
            i++;
        } else {
            break; /* a generation option: the rest is the default command's */
        }
    }
    if (i >= argc) {
        st = WR_FAIL(WR_ERR_INVALID_ARG, "no command given (see wanrun --help)");
        goto out;
    }
    if (strcmp(argv[i], "inspect") == 0)
        st = cmd_inspect(argc - i - 1, argv + i + 1, rank);
    else if (strcmp(argv[i], "encode") == 0)
        st = cmd_encode(argc - i - 1, argv + i + 1, rank);
    else if (strcmp(argv[i], "plan") == 0 || strcmp(argv[i], "--plan") == 0)
        st = cmd_plan(argc - i - 1, argv + i + 1, rank);
    else if (strcmp(argv[i], "convert") == 0)
        st = wr_cli_convert(argc - i - 1, argv + i + 1, &g_world);
    else if (has_flag(argc - i, argv + i, "--batch")) {
        int bc = EXIT_OK;
        st = wr_cli_batch(argc - i, argv + i, &g_world, &bc);
        if (st == WR_OK) code = bc;
    } else
        st = cmd_generate(argc - i, argv + i, rank);

out:
    if (st != WR_OK) {
        if (wr_error_where()[0]) wr_debug("failed at %s", wr_error_where());
        wr_error("%s: %s", wr_status_name(st), wr_error_detail());
        code = wr_cli_exit_code(st);
    }
    fflush(stdout);
    wr_world_finalize(&g_world);
    return code;
}
