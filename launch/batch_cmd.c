/*
 * batch_cmd.c — wanrun --batch FILE --out-dir DIR [--format F] [--batch-check] [options]:
 * many generations with one model load per rank, spread over the replica groups, resumable.
 *
 *   1. The whole file is checked before anything loads (pipeline/batch.h): every bad line is
 *      reported with its number and recorded as a failed job; the rest run.
 *   2. World rank 0 reads DIR/results.jsonl (pipeline/results.h) and decides which jobs are
 *      done (the last record of the name is "ok" or "skipped" with the same parameter hash,
 *      and its output exists): those are skipped, a changed one runs again and says so. The
 *      list of jobs to run is broadcast, so every rank works from the same one.
 *   3. The model loads once per rank (wr_context with independent replicas); each replica's
 *      leader takes the next job from a counter shared by the world (wr_counter: whichever
 *      replica is free first), tells its replica, and the replica generates it.
 *   4. The replica's writer puts DIR/<name>.<ext> in place atomically, then appends the job's
 *      record (one write of a whole line, fsync'd). A crash between the two leaves a file
 *      without a record: the job runs again on restart and replaces it.
 *   5. SIGTERM / SIGINT: the generation in progress stops before its next step (agreed in the
 *      replica), its record says "interrupted", nothing partial stays, and the batch exits 75
 *      (resumable); a second signal exits at once through the fatal-signal cleanup
 *      (core/atomic_file.h), which removes the temporaries.
 *   6. A job that fails (on any rank of its replica: agreed there) is recorded as failed and
 *      the replica goes on with the next job. Exit 0 when every job is done, 7 when some failed,
 *      75 when stopped by a signal (the world agrees on the largest).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "io/video.h"
#include "cli.h"
#include "parallel/comm.h"
#include "pipeline/batch.h"
#include "pipeline/results.h"
#include "wanrun.h"

#define BATCH_MAX_BYTES ((size_t)64 << 20) /* a batch file at most (about a million jobs) */

/* ---- signals ---- */

static volatile int g_stop;
static struct sigaction g_old_term, g_old_int;

/* The first SIGTERM / SIGINT asks the batch to stop after the current step; the second gives
 * the signal back to the handler before ours (the temporaries' cleanup, which re-raises it),
 * delivered as soon as this handler returns. */
static void on_stop_signal(int sig) {
    if (!g_stop) {
        g_stop = 1;
        static const char msg[] = "wanrun: signal received: the batch stops after the current "
                                  "step (send it again to exit now)\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        return;
    }
    sigaction(sig, sig == SIGTERM ? &g_old_term : &g_old_int, NULL);
    raise(sig);
}

static void stop_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &g_old_term);
    sigaction(SIGINT, &sa, &g_old_int);
    /* an ignored signal stays ignored (SIGINT in a shell's background job) */
    if (g_old_term.sa_handler == SIG_IGN) sigaction(SIGTERM, &g_old_term, NULL);
    if (g_old_int.sa_handler == SIG_IGN) sigaction(SIGINT, &g_old_int, NULL);
}

static void stop_signals_restore(void) {
    sigaction(SIGTERM, &g_old_term, NULL);
    sigaction(SIGINT, &g_old_int, NULL);
}

/* ---- helpers ---- */

static void on_step(void *ctx, int64_t step, int64_t steps, float t, double sec, double eta) {
    const char *name = ctx;
    wr_debug("%s: step %lld/%lld  t=%.1f  %.2f s  ETA %d:%02d", name, (long long)step,
             (long long)steps, (double)t, sec, (int)(eta / 60), (int)eta % 60);
}

static int path_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static wr_video_format format_of(const char *f) {
    return !strcmp(f, "mp4") ? WR_VIDEO_MP4 : !strcmp(f, "png") ? WR_VIDEO_PNG : WR_VIDEO_Y4M;
}

/* A record for a job that did not run (a bad line), or for one that did (st, the phases). */
static wr_status record(const char *results, const wr_batch_job *j, const char *status,
                        const char *error, int replica, const wr_video *v, double sec_write,
                        int nranks, const uint64_t *dev, const uint64_t *host) {
    wr_job_record r;
    memset(&r, 0, sizeof r);
    char anon[32];
    snprintf(anon, sizeof anon, "(line %d)", j->line); /* a bad line without a name */
    r.name = j->name[0] ? j->name : anon;
    r.status = status;
    r.error = error;
    r.line = j->line;
    r.replica = replica;
    r.hash = j->hash;
    r.output = !strcmp(status, "ok") || !strcmp(status, "skipped") ? j->out : NULL;
    r.sec_encode = v ? v->sec_encode : -1;
    r.sec_denoise = v ? v->sec_denoise : -1;
    r.sec_decode = v ? v->sec_decode : -1;
    r.sec_write = sec_write;
    r.nranks = nranks;
    r.peak_device = dev;
    r.peak_host = host;
    const wr_status st = wr_results_append(results, &r);
    if (st != WR_OK)
        wr_warn("%s: the record of job %s was not written: %s", results, r.name, wr_error_detail());
    return st;
}

/* The request of one job. */
static void job_request(const wr_batch_job *j, wr_request *req, const volatile int *stop) {
    wr_request_defaults(req);
    const wr_gen_opts *g = &j->g;
    req->prompt = g->prompt;
    req->negative_prompt = g->negative;
    req->width = g->width, req->height = g->height, req->frames = g->frames;
    req->steps = g->steps, req->guidance = g->guidance, req->shift = g->shift;
    req->guidance_2 = g->guidance_2, req->boundary_ratio = g->boundary_ratio;
    req->image = g->image;
    req->scheduler = g->scheduler, req->seed = g->seed, req->init_noise = g->init_noise;
    req->progress = on_step;
    req->progress_ctx = (void *)j->name;
    req->stop = stop;
}

/* ---- the command ---- */

typedef struct batch_args {
    const char *file, *out_dir, *format;
    int check;
    char **rest; /* the generation options (argv without the batch flags) */
    int nrest;
} batch_args;

static wr_status split_args(int argc, char **argv, batch_args *a) {
    memset(a, 0, sizeof *a);
    a->rest = calloc((size_t)argc + 1, sizeof *a->rest);
    if (a->rest == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        const char **slot = !strcmp(f, "--batch")     ? &a->file
                            : !strcmp(f, "--out-dir") ? &a->out_dir
                            : !strcmp(f, "--format")  ? &a->format
                                                      : NULL;
        if (slot) {
            if (i + 1 >= argc)
                return WR_FAIL(WR_ERR_INVALID_ARG, "%s needs a value (see wanrun --help)", f);
            *slot = argv[++i];
        } else if (!strcmp(f, "--batch-check")) {
            a->check = 1;
        } else {
            a->rest[a->nrest++] = argv[i];
        }
    }
    if (a->out_dir == NULL)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--batch needs --out-dir DIR: where the videos and "
                                           "results.jsonl go");
    if (a->format && strcmp(a->format, "y4m") && strcmp(a->format, "mp4") &&
        strcmp(a->format, "png"))
        return WR_FAIL(WR_ERR_INVALID_ARG, "--format must be y4m, mp4 or png, got '%s'", a->format);
    return WR_OK;
}

/* The command line's options as the batch's defaults, finished (the model, the sizes). */
static wr_status batch_defaults(wr_gen_opts *g, const batch_args *a, const char *placeholder) {
    wr_status st = WR_OK;
    for (int i = 0; i + 1 < a->nrest; i++)
        if (!strcmp(a->rest[i], "--config")) {
            char *text = NULL;
            size_t len = 0;
            st = wr_read_small_file(&text, &len, a->rest[i + 1], WR_CONFIG_MAX_BYTES, "a config");
            if (st != WR_OK) {
                wr_error_prefix("--config");
                return st;
            }
            st = wr_gen_opts_from_json(g, text, len, a->rest[i + 1]);
            free(text);
            WR_TRY(st);
        }
    WR_TRY(wr_gen_opts_parse_args(g, a->nrest, a->rest));
    if (g->given & ((uint64_t)1 << WR_OPT_OUT))
        return WR_FAIL(WR_ERR_INVALID_ARG, "--out with --batch: each job is written to "
                                           "--out-dir DIR as <name>.<format>");
    if (g->given & ((uint64_t)1 << WR_OPT_SAVE_LATENTS))
        return WR_FAIL(WR_ERR_INVALID_ARG, "--save-latents is not available with --batch");
    /* finish checks what a generation needs: a job supplies the prompt, the runner the out */
    const int had_prompt = (g->given & ((uint64_t)1 << WR_OPT_PROMPT)) != 0;
    g->out = placeholder;
    if (!had_prompt) g->prompt = "";
    st = wr_gen_opts_finish(g, WR_DEFAULT_MODEL);
    if (!had_prompt) g->prompt = NULL; /* no default prompt: each line must have one */
    return st;
}

wr_status wr_cli_batch(int argc, char **argv, const wr_world *world, int *code) {
    *code = EXIT_OK;
    batch_args a;
    wr_gen_opts g;
    wr_gen_opts_init(&g);
    wr_batch b;
    memset(&b, 0, sizeof b);
    char *text = NULL, results[4300], placeholder[4300];
    int *todo = NULL;
    int64_t ntodo = 0;
    wr_context *ctx = NULL;
    wr_counter *next = NULL, *finished = NULL;
    size_t len = 0;
    wr_status st = split_args(argc, argv, &a);
    if (st != WR_OK) goto done;
    snprintf(placeholder, sizeof placeholder, "%s/job.y4m", a.out_dir);
    snprintf(results, sizeof results, "%s/results.jsonl", a.out_dir);
    if ((st = batch_defaults(&g, &a, placeholder)) != WR_OK) goto done;
    if (!g.bundled) wr_cli_model_defaults(&g); /* the jobs' defaults (one model per batch) */
    if (g.verbose) wr_log_set_level(WR_LOG_DEBUG);

    /* (1) the whole file, checked before the model loads */
    st = wr_read_small_file(&text, &len, a.file, BATCH_MAX_BYTES, "a batch file");
    if (st != WR_OK) {
        wr_error_prefix("--batch");
        goto done;
    }
    if ((st = wr_batch_parse(&b, text, len, a.file, &g, a.out_dir, a.format)) != WR_OK) goto done;
    for (int i = 0; i < b.n; i++)
        if (b.jobs[i].bad) wr_log_rank0("%s", b.jobs[i].err);
    wr_log_rank0("%s: %d job%s, %d with errors", a.file, b.n, b.n == 1 ? "" : "s", b.nbad);

    /* (2) what is done already (world rank 0 decides, the others are told) */
    todo = malloc(sizeof *todo * (size_t)(b.n > 0 ? b.n : 1));
    if (todo == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
        goto done;
    }
    if (world->rank == 0) {
        wr_results prev;
        memset(&prev, 0, sizeof prev);
        if (!a.check && mkdir(a.out_dir, 0755) != 0 && errno != EEXIST) {
            st = WR_FAIL(WR_ERR_IO, "--out-dir %s: cannot create it: %s", a.out_dir,
                         strerror(errno));
        }
        if (st == WR_OK && path_exists(results)) st = wr_results_load(results, &prev);
        for (int i = 0; st == WR_OK && i < b.n; i++) {
            const wr_batch_job *j = &b.jobs[i];
            if (j->bad) {
                if (!a.check) record(results, j, "failed", j->err, -1, NULL, -1, 0, NULL, NULL);
                continue;
            }
            const wr_results_entry *e = wr_results_last(&prev, j->name);
            const int ok = e && (!strcmp(e->status, "ok") || !strcmp(e->status, "skipped"));
            if (ok && e->hash == j->hash && path_exists(j->out)) {
                wr_info("%s: done in an earlier run: skipped", j->name);
                if (a.check) todo[ntodo++] = -1 - i; /* listed by --batch-check as done */
                if (!a.check) record(results, j, "skipped", NULL, -1, NULL, -1, 0, NULL, NULL);
                continue;
            }
            if (ok && e->hash != j->hash)
                wr_info("%s (line %d) changed since its earlier run: it runs again", j->name,
                        j->line);
            todo[ntodo++] = i;
        }
        wr_results_free(&prev);
    }
    if (world->size > 1) {
        /* the list, on a world communicator of our own: no context exists yet */
        wr_groups wg;
        wr_status gs = wr_groups_create(&wg, world, (wr_layout){1, world->size}, -1);
        if (gs == WR_OK) gs = wr_comm_agree(wg.world, st);
        if (gs == WR_OK) gs = wr_comm_bcast(wg.world, &ntodo, sizeof ntodo, 0, WR_MEM_HOST);
        if (gs == WR_OK)
            gs = wr_comm_bcast(wg.world, todo, sizeof *todo * (size_t)ntodo, 0, WR_MEM_HOST);
        wr_groups_free(&wg);
        st = gs;
    }
    if (st != WR_OK) goto done;

    if (a.check) { /* the plan: every good job, its planned per-rank peak, whether it runs */
        int level = g.low_mem_level, nrun = 0;
        if (level < 0) st = wr_cli_auto_level(&g, &level);
        for (int64_t k = 0; st == WR_OK && k < ntodo; k++) {
            const int done = todo[k] < 0;
            const wr_batch_job *j = &b.jobs[done ? -1 - todo[k] : todo[k]];
            nrun += !done;
            uint64_t peak = 0;
            wr_status ps = wr_cli_plan_peak(&j->g, level, &peak);
            if (ps != WR_OK) {
                wr_log_rank0("  line %d  %s: no plan: %s", j->line, j->name, wr_error_detail());
                wr_error_clear();
                continue;
            }
            wr_log_rank0("  line %d  %-24s %lldx%lld, %lld frames, %lld steps: planned peak "
                         "%.1f MiB per rank at level %d%s",
                         j->line, j->name, (long long)j->g.width, (long long)j->g.height,
                         (long long)j->g.frames, (long long)j->g.steps, (double)peak / 1048576.0,
                         level, done ? " (done: skipped)" : "");
        }
        wr_log_rank0("%d job(s) to run; the replica groups take them in turn as each gets "
                     "free (the next free replica the next job)",
                     nrun);
        if (st == WR_OK && b.nbad) *code = EXIT_BATCH_FAILED;
        goto done;
    }

    /* (3) the model, once per rank */
    wr_options opt;
    if ((st = wr_cli_options(&g, world, &opt)) != WR_OK) goto done;
    opt.independent_replicas = 1;
    if ((st = wr_context_create(&ctx, g.model, &opt)) != WR_OK) goto done;
    wr_role role;
    wr_context_role(ctx, &role);
    const wr_groups *gr = wr_context_groups(ctx);
    if (world->size > 1)
        wr_log_rank0("%d ranks: %d replica(s) x cfg-parallel %d x context-parallel %d take the "
                     "%lld job(s)",
                     world->size, role.replicas, role.cfg, role.cp, (long long)ntodo);
    st = gr ? wr_counter_create(&next, gr->world) : wr_counter_create(&next, NULL);
    if (st == WR_OK)
        st = gr ? wr_counter_create(&finished, gr->world) : wr_counter_create(&finished, NULL);
    if (gr) st = wr_comm_agree(gr->world, st);
    if (st != WR_OK) goto done;

    /* (4) the jobs */
    stop_signals_install();
    int failed = b.nbad > 0, interrupted = 0;
    const int leader = gr == NULL || wr_comm_rank(gr->group) == 0;
    const int nr = gr ? wr_comm_size(gr->group) : 1;
    uint64_t *peaks = calloc((size_t)nr * 2, sizeof *peaks);
    const double t0 = wr_now_s();
    while (peaks && !interrupted) {
        int64_t k = -1;
        wr_status ks = WR_OK;
        if (leader) ks = wr_counter_next(next, &k);
        if (gr) {
            ks = wr_comm_agree(gr->group, ks);
            if (ks == WR_OK) ks = wr_comm_bcast(gr->group, &k, sizeof k, 0, WR_MEM_HOST);
        }
        if (ks != WR_OK) {
            st = ks;
            break;
        }
        if (k < 0 || k >= ntodo) break;
        const wr_batch_job *j = &b.jobs[todo[k]];
        wr_request req;
        job_request(j, &req, &g_stop);
        wr_video vid;
        memset(&vid, 0, sizeof vid);
        wr_context_reset_peaks(ctx);
        wr_status ps = WR_OK; /* --mem-profile P: each job's profile in P/<name> */
        if (g.mem_profile) {
            char pd[4300];
            snprintf(pd, sizeof pd, "%s/%s", g.mem_profile, j->name);
            ps = wr_context_profile_to(ctx, pd);
        }
        if (role.writer)
            wr_info("%s: generating (line %d, %lldx%lld, %lld frames, %lld steps, seed %llu)",
                    j->name, j->line, (long long)j->g.width, (long long)j->g.height,
                    (long long)j->g.frames, (long long)j->g.steps, (unsigned long long)j->g.seed);
        if (gr) ps = wr_comm_agree(gr->group, ps);
        wr_status js = ps == WR_OK ? wr_generate(ctx, &req, &vid) : ps;
        if (js == WR_OK) js = wr_st_check_faults();
        /* the writer puts the file in place, then the record goes in */
        double tw = -1;
        if (js == WR_OK && role.writer) {
            const double w0 = wr_now_s();
            wr_atomic pend = {0};
            pend.fd = pend.slot = -1;
            js = wr_video_write_staged(&pend, j->out, format_of(j->format), vid.frames, vid.n,
                                       vid.h, vid.w, j->g.fps);
            if (js == WR_OK) js = wr_atomic_commit(&pend);
            wr_atomic_discard(&pend);
            tw = wr_now_s() - w0;
        }
        if (gr) js = wr_comm_agree(gr->group, js);
        char err[1100] = "";
        if (js != WR_OK) snprintf(err, sizeof err, "%s: %s", wr_status_name(js), wr_error_detail());
        /* every rank's peaks to the leader */
        wr_vram_stats vs;
        wr_context_vram_stats(ctx, &vs);
        const uint64_t mine[2] = {vs.total_peak, vs.host_total_peak};
        uint64_t *all = peaks;
        if (gr && wr_comm_allgather(gr->group, all, mine, sizeof mine, WR_MEM_HOST) != WR_OK)
            all = NULL;
        else if (!gr)
            memcpy(all, mine, sizeof mine);
        uint64_t dev[64], host[64];
        const int np = nr < 64 ? nr : 64;
        for (int r = 0; all && r < np; r++) dev[r] = all[2 * r], host[r] = all[2 * r + 1];
        const char *status = js == WR_OK                ? "ok"
                             : js == WR_ERR_INTERRUPTED ? "interrupted"
                                                        : "failed";
        if (js == WR_ERR_INTERRUPTED)
            interrupted = 1;
        else if (js != WR_OK)
            failed = 1;
        if (role.writer)
            record(results, j, status, js == WR_OK ? NULL : err, role.replica, &vid, tw,
                   all ? np : 0, dev, host);
        int64_t ndone = 0;
        if (leader && js != WR_ERR_INTERRUPTED) (void)wr_counter_next(finished, &ndone);
        if (leader) {
            const double el = wr_now_s() - t0,
                         eta = el / (double)(ndone + 1) * (double)(ntodo - ndone - 1);
            if (js == WR_OK)
                wr_info("%s: done -> %s (%lld/%lld finished, ETA %d:%02d)", j->name, j->out,
                        (long long)ndone + 1, (long long)ntodo, (int)(eta / 60), (int)eta % 60);
            else
                wr_warn("%s: %s: %s", j->name, status, err);
        }
        wr_video_free(&vid);
        wr_error_clear();
    }
    stop_signals_restore();
    free(peaks);
    /* (5) one exit code for the job: the largest of the ranks' */
    int64_t c = interrupted ? EXIT_RESUMABLE : failed ? EXIT_BATCH_FAILED : EXIT_OK;
    if (st == WR_OK && gr) st = wr_comm_allreduce_i64(gr->world, &c, 1, WR_REDUCE_MAX);
    if (st == WR_OK) {
        *code = (int)c;
        if (c == EXIT_RESUMABLE)
            wr_log_rank0("stopped by a signal: run the same command again to finish the batch "
                         "(exit %d)",
                         EXIT_RESUMABLE);
        else if (c == EXIT_BATCH_FAILED)
            wr_log_rank0("some jobs failed: %s says which and why (exit %d)", results,
                         EXIT_BATCH_FAILED);
    }
done:
    wr_counter_free(next);
    wr_counter_free(finished);
    wr_context_free(ctx);
    free(todo);
    wr_batch_free(&b);
    free(text);
    free(a.rest);
    wr_gen_opts_free(&g);
    return st;
}
