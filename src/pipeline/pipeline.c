/*
 * pipeline.c — WanPipeline.__call__ in C (spec §6.1): text -> UMT5 embeddings -> noise ->
 * classifier-free-guided denoising with the scheduler -> VAE decode -> frames in [0, 1].
 *
 * The backend is wr_options.backend on device wr_options.device (each rank its node-local
 * rank's GPU by default); only the CPU backend has op kernels so far, so a CUDA run fails at
 * model load. On the CPU, WR_STRICT_DEVICE=1 / async makes the backend's memory unreadable by
 * host code (kernels/backend.h): what stays on the host here is the scheduler's state (the
 * latent x, the velocities v and vu, the guidance combine, the noise), the text embeddings
 * and the frames, all plain host buffers the models read and write as host tensors.
 * low_mem_level >= 1 tiles the VAE decode; 3 streams the DiT's blocks through a vram pool
 * (src/vram: accounted "device" memory, a copy thread prefetching the next block) with as
 * many blocks resident as --vram-limit allows. The rest of the vram layer (level 2's text
 * encoder offload, disk offload, FP8 storage, the planner) is still to come (issue #8).
 *
 * Wan2.2 T2V-A14B (transformer_2/ and boundary_ratio): two DiT experts, the high-noise one for
 * the steps with t >= boundary x num_train_timesteps, the low-noise one after, each with its
 * guidance (diffusers' guidance_scale / guidance_scale_2). Only one is in the pool at a time
 * (activate): the other waits in host memory, counted (count_waiting), and they are swapped
 * when the boundary is crossed: where resident blocks are device copies, the first expert's
 * last forward hands its blocks' memory over as it goes (arm_swap, wr_dit_handoff_arm), so the
 * copies overlap it; elsewhere (streamed blocks, the plain CPU backend) between the two steps.
 *
 * Wan2.2 TI2V (expand_timesteps, the residual VAE of models/vae22.h): the DiT gets a timestep
 * per token (wr_dit_forward_tokens); with wr_request.image (diffusers' WanImageToVideoPipeline)
 * the writer encodes the image (image_condition), the group receives its latent, and it is the
 * first latent frame of every DiT input and of the result, whose tokens get t = 0. The 2.2 VAE
 * encodes and decodes tiled as the level says, its weights and buffers in the pool.
 *
 * Distributed (wr_options.world of size > 1, DESIGN.md §5): the world is split into replica
 * groups of cfg x cp ranks. In a group, rank 0 (the writer) alone loads the tokenizer, the text
 * encoder and the VAE; it encodes and broadcasts the embeddings; every rank denoises its token
 * shard (the DiT's context parallelism over the cp communicator), the two CFG branches on
 * different ranks exchange their velocities once per step (an all-gather over cfg), and every
 * rank holds the whole latent, so the writer decodes without a gather. Every failure another
 * rank could wait on is agreed (wr_comm_agree) first.
 */
#include "wanrun.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/modeldir.h"
#include "core/safetensors.h"
#include "kernels/backend.h"
#include "models/dit.h"
#include "models/sched.h"
#include "io/image.h"
#include "models/t5.h"
#include "models/tokenizer.h"
#include "models/vae22.h"
#include "parallel/comm.h"
#include "vram/levels.h"
#include "vram/memprof.h"
#include "vram/plan.h"
#include "vram/vram.h"

struct wr_context {
    wr_options opt;
    wr_model_dir md;
    wr_backend *be;
    int device;        /* the CUDA device of this rank (pick_device); 0 on the CPU */
    wr_tokenizer *tok; /* writer only */
    wr_t5 *t5;         /* writer only */
    wr_dit *dit;       /* the high-noise expert with two (Wan2.2 A14B), else the only one */
    wr_dit *dit2;      /* the low-noise expert (transformer_2/), or NULL */
    int active;        /* the expert the pool holds (0 dit, 1 dit2); the other one waits */
    int attached;      /* the active expert is in the pool (levels 0-2 always; 3 while denoising) */
    int waiting;       /* the other one is counted as waiting (count_waiting) */
    int armed;         /* the active expert's last forward hands its memory over (arm_swap) */
    wr_vae *vae;       /* writer only */
    wr_vae22 *vae22;   /* writer only, instead of vae: the Wan2.2 VAE (TI2V: is_residual) */
    wr_mem_policy pol; /* the level's preset with the overrides */
    wr_vram *vram;     /* the device memory pool: the DiT's weights and activations, the VAE */
    wr_memprof *prof;  /* --mem-profile */
    int distributed;
    wr_groups groups;
    wr_role role;
};

void wr_options_defaults(wr_options *o) {
    memset(o, 0, sizeof *o);
    o->backend = WR_BACKEND_CPU;
    o->device = -1;
    o->tiling = wr_vae_tiling_default();
    o->te_stream = o->dit_stream = o->vae_tiled = -1;
}

void wr_request_defaults(wr_request *r) {
    memset(r, 0, sizeof *r);
    r->prompt = "";
    r->width = 832;
    r->height = 480;
    r->frames = 81;
    r->steps = 50;
    r->guidance = 5.0;
    r->shift = 0.0;
    r->scheduler = -1;
    r->guidance_2 = -1.0;
    r->boundary_ratio = -1.0;
}

/* The text encoder's weights in host memory (--te-device cpu): counted while it is loaded. */
static uint64_t t5_host_bytes(const wr_context *c) {
    return (uint64_t)wr_t5_layer_bytes(c->t5) * (uint64_t)wr_t5_config_of(c->t5)->num_layers +
           4 * (uint64_t)wr_t5_config_of(c->t5)->d_model;
}

/* On the device (resident, or streamed: resident = 0), or on the host with --te-device cpu. */
static wr_status t5_attach(wr_context *c, int64_t resident) {
    if (!c->opt.te_cpu) return wr_t5_set_vram(c->t5, c->vram, resident);
    wr_vram_host_account(c->vram, WR_HOST_PAGEABLE, (int64_t)t5_host_bytes(c));
    return WR_OK;
}

static void t5_free(wr_context *c) {
    if (c->t5 && c->opt.te_cpu && c->vram)
        wr_vram_host_account(c->vram, WR_HOST_PAGEABLE, -(int64_t)t5_host_bytes(c));
    wr_t5_free(c->t5);
    c->t5 = NULL;
}

/* Expert e (0: transformer/, 1: transformer_2/). */
static wr_dit *expert(const wr_context *c, int e) {
    return e ? c->dit2 : c->dit;
}

/* Wan2.2 A14B's waiting expert, counted (sign 1) or no more (-1): its blocks in host memory
 * (read from the files instead under disk offload), its embeddings and head (wr_dit_other_bytes,
 * ~2 % of a 14B expert) in device memory, where the load put them. */
static wr_status count_waiting(wr_context *c, int e, int sign) {
    const wr_dit *m = expert(c, e);
    const int64_t other = (int64_t)wr_dit_other_bytes(m);
    const int64_t blocks = (int64_t)wr_dit_block_bytes(m) * wr_dit_config_of(m)->num_layers;
    WR_TRY(wr_vram_account(c->vram, WR_MEM_WEIGHTS_RESIDENT, sign * other));
    if (!c->opt.disk_offload) wr_vram_host_account(c->vram, WR_HOST_PAGEABLE, sign * blocks);
    return WR_OK;
}

/* The device memory pool (limit --vram-limit): the DiT's weights (resident, or at level 3 set
 * per request) and activations, the VAE's buffers. */
static wr_status setup_pool(wr_context *c) {
    WR_TRY(wr_vram_create(&c->vram, c->be, c->opt.vram_limit));
    wr_vram_set_disk_offload(c->vram, c->opt.disk_offload);
    if (c->prof) wr_memprof_attach(c->prof, c->vram);
    /* the ops' scratch arena, from the pool for the whole run (the planner counts it) */
    WR_TRY(wr_vram_scratch_ensure(c->vram));
    /* the DiT: resident; at level 3 on the device only while denoising, streamed (the resident
     * blocks chosen per request, setup_streaming) */
    if (!c->pol.dit_stream) {
        WR_TRY(wr_dit_set_vram(c->dit, c->vram, -1));
        c->attached = 1;
    }
    if (c->dit2) { /* the low-noise expert waits */
        WR_TRY(count_waiting(c, 1, 1));
        c->waiting = 1;
    }
    if (c->vae) WR_TRY(wr_vae_set_vram(c->vae, c->vram));
    if (c->vae22) WR_TRY(wr_vae22_set_vram(c->vae22, c->vram));
    /* the text encoder: resident (levels 0, 1) or streamed layer by layer (2, 3) */
    if (c->t5) WR_TRY(t5_attach(c, c->pol.te_stream ? 0 : -1));
    return WR_OK;
}

/* This rank's share of the model: all of it alone; in a replica group the DiT everywhere,
 * the tokenizer, text encoder and VAE on the writer only. */
static wr_status load_components(wr_context *c, const char *model_dir) {
    WR_TRY(wr_model_dir_open(&c->md, model_dir));
    const wr_component need[] = {WR_COMP_TRANSFORMER, WR_COMP_TEXT_ENCODER, WR_COMP_VAE,
                                 WR_COMP_SCHEDULER, WR_COMP_TOKENIZER};
    char path[WR_PATH_CAP + 64];
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (!c->md.has[need[i]]) {
            wr_model_dir_path(path, sizeof path, &c->md, need[i]);
            return WR_FAIL(WR_ERR_NOT_FOUND,
                           "%s: the model directory has no %s component; a text-to-video run "
                           "needs tokenizer/, text_encoder/, transformer/, vae/ and scheduler/",
                           path, wr_component_name(need[i]));
        }
    }
    /* strict / async: -1, from WR_STRICT_DEVICE */
    const wr_backend_opts bo = {.kind = c->opt.backend,
                                .device = c->device,
                                .threads = c->opt.threads,
                                .strict = -1,
                                .async = -1};
    WR_TRY(wr_backend_create_ex(&c->be, &bo));
    wr_debug("backend %s%s", wr_backend_name(c->be->kind),
             c->be->kind != WR_BACKEND_CPU ? ""
             : c->be->async                ? " (async device mode)"
             : c->be->strict               ? " (strict device mode)"
                                           : "");
    if (c->role.writer) {
        wr_model_dir_path(path, sizeof path, &c->md, WR_COMP_TOKENIZER);
        WR_TRY(wr_tokenizer_open_dir(&c->tok, path)); /* spiece.model, else tokenizer.json */
        wr_model_dir_path(path, sizeof path, &c->md, WR_COMP_TEXT_ENCODER);
        const wr_t5_load_opts to = {.fp8_storage = c->opt.fp8_storage};
        WR_TRY(wr_t5_load_ex(&c->t5, c->be, path, &to));
        if (wr_tokenizer_vocab_size(c->tok) > wr_t5_config_of(c->t5)->vocab_size)
            return WR_FAIL(WR_ERR_CONFIG,
                           "%s: the tokenizer has %lld ids, the text encoder's vocabulary %lld: "
                           "they are not from the same model",
                           model_dir, (long long)wr_tokenizer_vocab_size(c->tok),
                           (long long)wr_t5_config_of(c->t5)->vocab_size);
        if (wr_t5_config_of(c->t5)->d_model != c->md.dit.text_dim)
            return WR_FAIL(WR_ERR_CONFIG,
                           "%s: the text encoder's width %lld is not the transformer's text_dim "
                           "%lld",
                           model_dir, (long long)wr_t5_config_of(c->t5)->d_model,
                           (long long)c->md.dit.text_dim);
    }
    wr_model_dir_path(path, sizeof path, &c->md, WR_COMP_TRANSFORMER);
    const wr_dit_load_opts lo = {.fp8_storage = c->opt.fp8_storage};
    WR_TRY(wr_dit_load_ex(&c->dit, c->be, path, &lo));
    if (c->opt.compute_dtype != WR_DTYPE_F32)
        WR_TRY(wr_dit_set_compute_dtype(c->dit, c->opt.compute_dtype));
    if (c->md.has[WR_COMP_TRANSFORMER_2] && c->md.boundary_ratio < 0.0) {
        wr_warn("%s: transformer_2/ is there but model_index.json's boundary_ratio is null: "
                "diffusers never runs it, and neither does wanrun (not loaded)",
                model_dir);
    } else if (c->md.has[WR_COMP_TRANSFORMER_2]) { /* Wan2.2 A14B: the low-noise expert */
        wr_model_dir_path(path, sizeof path, &c->md, WR_COMP_TRANSFORMER_2);
        WR_TRY(wr_dit_load_ex(&c->dit2, c->be, path, &lo));
        if (c->opt.compute_dtype != WR_DTYPE_F32)
            WR_TRY(wr_dit_set_compute_dtype(c->dit2, c->opt.compute_dtype));
    }
    if (c->md.expand_timesteps) { /* TI2V: the image's first frame has t = 0, the rest t */
        WR_TRY(wr_dit_set_token_timesteps(c->dit, 2));
        if (c->dit2) WR_TRY(wr_dit_set_token_timesteps(c->dit2, 2));
    }
    if (c->role.writer) {
        wr_model_dir_path(path, sizeof path, &c->md, WR_COMP_VAE);
        if (c->md.vae.is_residual)
            WR_TRY(wr_vae22_load(&c->vae22, c->be, path));
        else
            WR_TRY(wr_vae_load(&c->vae, c->be, path));
    }
    return WR_OK;
}

/* This rank's CUDA device: --device, else the node-local rank modulo the devices visible (0
 * when none are: creating the backend or the device communicators then fails, agreed, with the
 * reason). 0 on the CPU backend. */
static int pick_device(const wr_options *o) {
    if (o->backend != WR_BACKEND_CUDA) return 0;
    if (o->device >= 0) return o->device;
    const int local = o->world ? o->world->local_rank : 0;
    wr_device_info di;
    const wr_status st = wr_backend_probe_cuda(&di);
    wr_error_clear(); /* reported by whoever uses the device */
    const int dev = st == WR_OK && di.count > 0 ? local % di.count : 0;
    wr_debug("CUDA device %d (node-local rank %d, %d device(s) visible)", dev, local,
             st == WR_OK ? di.count : 0);
    return dev;
}

wr_status wr_context_create(wr_context **out, const char *model_dir, const wr_options *opt) {
    *out = NULL;
    wr_status st = WR_OK;
    wr_context *c = calloc(1, sizeof *c);
    if (c == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    if (opt)
        c->opt = *opt;
    else
        wr_options_defaults(&c->opt);
    if (c->opt.cfg_parallel <= 0) c->opt.cfg_parallel = 1;
    if (c->opt.backend != WR_BACKEND_CPU && c->opt.backend != WR_BACKEND_CUDA) {
        st = WR_FAIL(WR_ERR_INVALID_ARG, "wr_options.backend %d: not a backend",
                     (int)c->opt.backend);
        goto fail;
    }
    c->device = pick_device(&c->opt);
    WR_TRY_GOTO(st, wr_mem_policy_of_level(c->opt.low_mem_level, &c->pol), fail);
    if (c->opt.te_stream >= 0) c->pol.te_stream = c->opt.te_stream;
    if (c->opt.dit_stream >= 0) c->pol.dit_stream = c->opt.dit_stream;
    if (c->opt.vae_tiled >= 0) c->pol.vae_tiled = c->opt.vae_tiled;
    c->role = (wr_role){.replicas = 1, .writer = 1, .cfg = 1, .cp = 1};
    const wr_world *w = c->opt.world;
    if (w && w->size > 1) {
        const int cfg = c->opt.cfg_parallel;
        const int cp = c->opt.cp_size > 0 ? c->opt.cp_size : (cfg > 0 ? w->size / cfg : 0);
        if (cfg != 1 && cfg != 2) {
            st = WR_FAIL(WR_ERR_INVALID_ARG, "--cfg-parallel %d: must be 1 or 2", cfg);
            goto fail;
        }
        if (cp < 1 || w->size % (cfg * cp) != 0) {
            st = WR_FAIL(WR_ERR_INVALID_ARG,
                         "--cfg-parallel %d x --cp-size %d = %d ranks per replica does not "
                         "divide the %d ranks of the job; pick sizes whose product divides it",
                         cfg, cp, cfg * cp, w->size);
            goto fail;
        }
        /* on CUDA, NCCL communicators on this rank's device too (the DiT's device traffic) */
        const int dev = c->opt.backend == WR_BACKEND_CUDA ? c->device : -1;
        WR_TRY_GOTO(st, wr_groups_create(&c->groups, w, (wr_layout){cfg, cp}, dev), fail);
        c->distributed = 1;
        c->role.replica = c->groups.replica;
        c->role.replicas = c->groups.replicas;
        c->role.writer = wr_comm_rank(c->groups.group) == 0;
        c->role.cfg = cfg, c->role.cp = cp;
        c->role.cfg_rank = c->groups.cfg_rank, c->role.cp_rank = c->groups.cp_rank;
    } else if (c->opt.cfg_parallel != 1 || c->opt.cp_size > 1) {
        st = WR_FAIL(WR_ERR_INVALID_ARG,
                     "--cfg-parallel %d / --cp-size %d need that many ranks: start wanrun with "
                     "mpirun -np N (see launch/run.sh)",
                     c->opt.cfg_parallel, c->opt.cp_size);
        goto fail;
    }
    /* every rank loads its part; the outcome is agreed before anyone goes on */
    if (c->opt.mem_profile_dir) {
        st = wr_memprof_create(&c->prof, c->opt.mem_profile_dir, w ? w->rank : 0);
        if (c->distributed) st = wr_comm_agree(c->groups.world, st);
        if (st != WR_OK) goto fail;
    }
    wr_memprof_begin(c->prof, "load");
    st = load_components(c, model_dir);
    if (st == WR_OK) st = setup_pool(c);
    if (st == WR_OK) st = wr_st_check_faults(); /* what loading read from the mappings */
    wr_memprof_end(c->prof);
    if (c->distributed) st = wr_comm_agree(c->groups.world, st);
    if (st != WR_OK) goto fail;
    /* device buffers on the communicators are this backend's memory */
    if (c->distributed) wr_groups_set_backend(&c->groups, c->be);
    if (c->role.cp > 1) {
        WR_TRY_GOTO(st, wr_dit_set_parallel(c->dit, c->groups.cp, (wr_cp_mode)c->opt.cp_mode),
                    fail);
        if (c->dit2) /* the same mode: what the first one resolved "auto" to */
            WR_TRY_GOTO(st, wr_dit_set_parallel(c->dit2, c->groups.cp, wr_dit_cp_mode(c->dit)),
                        fail);
        c->role.cp_mode = wr_dit_cp_mode(c->dit);
    }
    *out = c;
    return WR_OK;
fail:
    wr_context_free(c);
    return st;
}

int wr_context_experts(const wr_context *c) {
    return c->dit2 ? 2 : 1;
}

void wr_context_role(const wr_context *c, wr_role *out) {
    *out = c->role;
}

void wr_context_vram_stats(const wr_context *c, wr_vram_stats *out) {
    wr_vram_get_stats(c->vram, out);
}

wr_status wr_context_agree(wr_context *c, wr_status st) {
    return c->distributed ? wr_comm_agree(c->groups.world, st) : st;
}

const wr_groups *wr_context_groups(const wr_context *c) {
    return c->distributed ? &c->groups : NULL;
}

wr_status wr_context_agree_replica(wr_context *c, wr_status st) {
    return c->distributed ? wr_comm_agree(c->groups.group, st) : st;
}

void wr_context_reset_peaks(wr_context *c) {
    wr_vram_reset_peaks(c->vram);
}

wr_status wr_context_profile_to(wr_context *c, const char *dir) {
    return c->prof ? wr_memprof_restart(c->prof, dir) : WR_OK;
}

/* Who a generation is collective over: the world, or the replica when the replicas run
 * requests of their own (wr_options.independent_replicas). */
static wr_comm *gen_comm(const wr_context *c) {
    return c->opt.independent_replicas ? c->groups.group : c->groups.world;
}

void wr_context_free(wr_context *c) {
    if (c == NULL) return;
    wr_vae_free(c->vae);
    wr_vae22_free(c->vae22);
    if (c->dit2 && c->vram && c->waiting) (void)count_waiting(c, !c->active, -1);
    wr_dit_free(c->dit);
    wr_dit_free(c->dit2);
    t5_free(c);
    wr_vram_free_pool(c->vram);
    wr_memprof_free(c->prof);
    wr_tokenizer_free(c->tok);
    wr_backend_free(c->be);
    if (c->distributed) wr_groups_free(&c->groups);
    free(c);
}

void wr_video_free(wr_video *v) {
    if (v == NULL) return;
    free(v->frames);
    memset(v, 0, sizeof *v);
}

wr_status wr_request_check_sizes(int64_t width, int64_t height, int64_t frames) {
    if (width < 1 || height < 1 || width > WR_REQUEST_MAX_SIDE || height > WR_REQUEST_MAX_SIDE)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--size %lldx%lld: width and height must be positive multiples of 16, at "
                       "most %d",
                       (long long)width, (long long)height, WR_REQUEST_MAX_SIDE);
    if (frames < 1 || frames > WR_REQUEST_MAX_FRAMES)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--frames %lld: must be 4k+1 in [1, %d]",
                       (long long)frames, WR_REQUEST_MAX_FRAMES);
    if ((frames - 1) % 4 != 0) {
        const int64_t lo = (frames - 1) / 4 * 4 + 1, hi = lo + 4;
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--frames %lld: must be 4k+1 (1, 5, 9, ..., 81, ...); nearest: %lld or %lld",
                       (long long)frames, (long long)lo, (long long)hi);
    }
    /* each factor is bounded above, so the product cannot overflow; checked anyway */
    int64_t px = 0;
    if (__builtin_mul_overflow(width, height, &px) || __builtin_mul_overflow(px, frames, &px) ||
        px > WR_REQUEST_MAX_PIXELS)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--size %lldx%lld with --frames %lld: %.3g pixels, more than the %.3g "
                       "(2^32) a request may have; use a smaller --size or fewer --frames",
                       (long long)width, (long long)height, (long long)frames,
                       (double)width * (double)height * (double)frames,
                       (double)WR_REQUEST_MAX_PIXELS);
    return WR_OK;
}

wr_status wr_request_check(const wr_context *c, const wr_request *r) {
    const int64_t r8 = c->md.vae.scale_factor_spatial > 0 ? c->md.vae.scale_factor_spatial : 8;
    const int64_t mult = r8 * c->md.dit.patch_size.v[1]; /* 16 for Wan */
    if (r->prompt == NULL) return WR_FAIL(WR_ERR_INVALID_ARG, "--prompt is required");
    WR_TRY(wr_prompt_check(r->prompt, "--prompt")); /* length cap, UTF-8: named */
    if (r->negative_prompt) WR_TRY(wr_prompt_check(r->negative_prompt, "--negative-prompt"));
    WR_TRY(wr_request_check_sizes(r->width, r->height, r->frames));
    if (r->width < mult || r->height < mult || r->width % mult || r->height % mult)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--size %lldx%lld: width and height must be positive multiples of %lld",
                       (long long)r->width, (long long)r->height, (long long)mult);
    if (r->steps < 1 || r->steps > WR_REQUEST_MAX_STEPS)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--steps %lld: must be in [1, 1000]",
                       (long long)r->steps);
    if (!isfinite(r->guidance) || r->guidance < 0.0)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--guidance %g: must be a number >= 0", r->guidance);
    if (!isfinite(r->shift) || r->shift < 0.0)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--shift %g: must be a positive number", r->shift);
    if (!isfinite(r->guidance_2) || !isfinite(r->boundary_ratio) || r->boundary_ratio > 1.0)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--guidance-2 %g / --boundary-ratio %g: must be numbers, the boundary in "
                       "[0, 1]",
                       r->guidance_2, r->boundary_ratio);
    if (r->image && !c->md.expand_timesteps)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--image %s: %s is not an image-to-video model; --image conditions Wan2.2 "
                       "TI2V (expand_timesteps in model_index.json)",
                       r->image, c->md.root);
    if ((r->guidance_2 >= 0.0 || r->boundary_ratio >= 0.0) && c->dit2 == NULL)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--guidance-2 / --boundary-ratio: %s has one transformer; they apply to "
                       "Wan2.2's two experts (transformer_2/ and boundary_ratio in "
                       "model_index.json)",
                       c->md.root);
    return WR_OK;
}

void wr_request_latent_shape(const wr_context *c, const wr_request *r, int64_t shape[4]) {
    const int64_t r8 = c->md.vae.scale_factor_spatial > 0 ? c->md.vae.scale_factor_spatial : 8;
    shape[0] = c->md.dit.in_channels;
    shape[1] = (r->frames - 1) / 4 + 1;
    shape[2] = r->height / r8;
    shape[3] = r->width / r8;
}

/* wanrun's own normal noise: element i from splitmix64(seed, 2i), (2i+1) by Box-Muller in
 * double. Reproducible on every machine and rank; not torch's generator (use --init-noise to
 * start from PyTorch's noise). */
static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void seeded_noise(float *x, int64_t n, uint64_t seed) {
    const uint64_t base = splitmix64(seed);
    for (int64_t i = 0; i < n; i++) {
        const double u1 = ((double)(splitmix64(base + 2 * (uint64_t)i) >> 11) + 0.5) * 0x1p-53;
        const double u2 = (double)(splitmix64(base + 2 * (uint64_t)i + 1) >> 11) * 0x1p-53;
        x[i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

static wr_status load_noise(float *x, const char *path, const int64_t *shape) {
    wr_st_file *f = NULL;
    WR_TRY(wr_st_open(&f, path));
    wr_status st = WR_OK;
    const wr_st_tensor *t = wr_st_find(f, "noise");
    int64_t n = shape[0] * shape[1] * shape[2] * shape[3];
    if (t == NULL) {
        st = WR_FAIL(WR_ERR_NOT_FOUND, "%s: no tensor named \"noise\" (--init-noise)", path);
    } else if (t->nelem != n || (t->ndim != 4 && t->ndim != 5) ||
               (t->ndim == 5 && t->shape[0] != 1) || t->shape[t->ndim - 4] != shape[0] ||
               t->shape[t->ndim - 3] != shape[1] || t->shape[t->ndim - 2] != shape[2] ||
               t->shape[t->ndim - 1] != shape[3]) {
        char got[160];
        st = WR_FAIL(WR_ERR_INVALID_ARG,
                     "%s: tensor \"noise\" is %s; this request needs [%lld, %lld, %lld, %lld] "
                     "(16 channels, (frames-1)/4+1, height/8, width/8)",
                     path, wr_shape_str(got, sizeof got, t->ndim, t->shape), (long long)shape[0],
                     (long long)shape[1], (long long)shape[2], (long long)shape[3]);
    } else {
        st = wr_st_read_as(t, WR_DTYPE_F32, x, sizeof(float) * (size_t)n);
    }
    wr_st_close(f);
    return st;
}

/* The index of the first non-finite value of x[0..n), or -1. */
static int64_t first_nonfinite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

/* A NaN or infinity out of a model is a diverged model (a config value it cannot work with:
 * the other configs are validated at load), reported at once as a config error naming the
 * stage and the fields that can cause it, before anything is written. */
static wr_status check_finite(const float *x, int64_t n, const char *what, const char *fields) {
    const int64_t i = first_nonfinite(x, n);
    if (i < 0) return WR_OK;
    return WR_FAIL(WR_ERR_CONFIG,
                   "%s: element %lld of %lld is %s: the model diverged; check %s; nothing was "
                   "written",
                   what, (long long)i, (long long)n, isnan(x[i]) ? "NaN" : "infinite", fields);
}

/* prompt -> [512, D] embeddings as _get_t5_prompt_embeds (padded rows zero) */
static wr_status encode_text(wr_context *c, const char *prompt, float *emb) {
    int32_t ids[WR_TOKENIZER_MAX_LEN];
    uint8_t mask[WR_TOKENIZER_MAX_LEN];
    int n = 0;
    WR_TRY(wr_tokenizer_encode(c->tok, prompt, WR_TOKENIZER_MAX_LEN, ids, mask, &n));
    const int64_t D = wr_t5_config_of(c->t5)->d_model;
    wr_tensor et = wr_tensor_make(emb, WR_DTYPE_F32, 2, (int64_t[]){WR_TOKENIZER_MAX_LEN, D});
    WR_TRY(wr_t5_encode(c->t5, &et, ids, mask, WR_TOKENIZER_MAX_LEN, NULL));
    return check_finite(emb, WR_TOKENIZER_MAX_LEN * D, "the text encoder's output",
                        "text_encoder/config.json, e.g. layer_norm_epsilon");
}

/* A pool for the DiT (once per context) and the resident block count for this request's token
 * count: with a limit, what is left after the activations and two streaming slots, in whole
 * blocks; without one, none (every block streams, the level's smallest footprint). */
static wr_status setup_streaming(wr_context *c, wr_dit *m, int64_t tokens) {
    WR_TRY(wr_dit_set_vram(m, NULL, 0));
    const int64_t layers = wr_dit_config_of(m)->num_layers;
    const uint64_t blk = wr_dit_block_bytes(m);
    const uint64_t act = wr_dit_workspace_bytes(m, tokens, WR_TOKENIZER_MAX_LEN);
    const uint64_t need = act + 2 * blk + wr_dit_other_bytes(m);
    int64_t resident = 0;
    if (c->opt.vram_limit) { /* what the limit leaves beside what the pool already holds */
        const uint64_t avail = wr_vram_available(c->vram);
        if (avail < need)
            return WR_FAIL(WR_ERR_OOM_DEVICE,
                           "--vram-limit %.1f MiB: %.1f MiB are left, the DiT needs %.1f MiB for "
                           "its activations (%lld tokens), two streamed blocks (%.1f MiB each) "
                           "and its embeddings; raise the limit or use a smaller --size / "
                           "--frames",
                           (double)c->opt.vram_limit / 1048576.0, (double)avail / 1048576.0,
                           (double)need / 1048576.0, (long long)tokens, (double)blk / 1048576.0);
        resident = (int64_t)((avail - need) / (blk ? blk : 1));
    }
    WR_TRY(wr_dit_set_vram(m, c->vram, resident));
    wr_debug("low_mem_level 3: %lld of %lld DiT blocks resident, %.1f MiB per block, "
             "activations %.1f MiB",
             (long long)(resident < layers ? resident : layers), (long long)layers,
             (double)blk / 1048576.0, (double)act / 1048576.0);
    return WR_OK;
}

/* Puts expert e in the pool (the only one with one expert): the other one leaves it first and
 * waits (count_waiting), so that the pool never holds both; at level 3 the blocks stream
 * (setup_streaming), else they are all resident. */
static wr_status activate(wr_context *c, int e, int64_t tokens) {
    if (c->dit2 && e != c->active && c->armed) { /* the copies ran during the last forward */
        c->armed = 0;
        WR_TRY(count_waiting(c, e, -1));
        const wr_status st = wr_dit_take_over(expert(c, e), expert(c, c->active));
        if (st != WR_OK) { /* neither is in the pool: e waits again, the next activate
                            * attaches it the plain way */
            c->attached = 0;
            (void)count_waiting(c, e, 1);
            return st;
        }
        WR_TRY(count_waiting(c, c->active, 1));
        c->active = e;
        c->attached = 1;
        return WR_OK;
    }
    if (c->dit2 && e != c->active) {
        WR_TRY(wr_dit_set_vram(expert(c, c->active), NULL, 0));
        c->attached = 0;
        WR_TRY(count_waiting(c, e, -1)); /* first: never both counted as waiting */
        WR_TRY(count_waiting(c, c->active, 1));
        c->active = e;
    }
    if (c->attached) return WR_OK;
    if (c->pol.dit_stream)
        WR_TRY(setup_streaming(c, expert(c, c->active), tokens));
    else
        WR_TRY(wr_dit_set_vram(expert(c, c->active), c->vram, -1));
    c->attached = 1;
    return WR_OK;
}

/* Before the active expert's last forward ahead of a swap to expert `next`: the hand-over armed
 * where it applies (levels 0-2 with resident device copies: wr_dit_handoff_arm), so that the
 * copies of next's blocks overlap that forward; elsewhere activate copies between the steps (on
 * the plain CPU backend, whose resident blocks are used in place, the swap is bookkeeping). */
static void arm_swap(wr_context *c, int next) {
    if (c->armed || next == c->active || c->pol.dit_stream || !c->attached) return;
    if (wr_dit_handoff_arm(expert(c, c->active), expert(c, next)) == WR_OK) {
        c->armed = 1;
        return;
    }
    wr_debug("expert swap: no hand-over (%s); the swap copies between the steps",
             wr_error_detail());
    wr_error_clear();
}

/* The expert of timestep t: diffusers' t >= boundary_ratio * num_train_timesteps, compared in
 * float32 (torch promotes the Python float to the timestep tensor's float dtype, and an int64
 * tensor to float32). */
static int expert_of(const wr_context *c, double boundary, int64_t ntrain, float t) {
    if (c->dit2 == NULL || boundary < 0.0) return 0;
    return t >= (float)(boundary * (double)ntrain) ? 0 : 1;
}

/* Each rank writes its trace and plot; rank 0 logs every rank's peaks (collective). */
static wr_status write_profile(wr_context *c) {
    wr_memprof_peaks mine, *all = NULL;
    wr_status st = wr_memprof_write(c->prof, &mine);
    wr_comm *gc = c->distributed ? gen_comm(c) : NULL;
    const int n = gc ? wr_comm_size(gc) : 1;
    if (gc) st = wr_comm_agree(gc, st);
    WR_TRY(st);
    all = malloc(sizeof *all * (size_t)n);
    st = all ? WR_OK : WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    if (gc) st = wr_comm_agree(gc, st);
    if (st == WR_OK && gc)
        st = wr_comm_allgather(gc, all, &mine, sizeof mine, WR_MEM_HOST);
    else if (st == WR_OK)
        all[0] = mine;
    if (st == WR_OK) {
        wr_log_rank0("memory profile in %s (memprof.rank<R>.json for Perfetto, .svg plots):",
                     c->opt.mem_profile_dir);
        wr_log_rank0("  rank  peak device MiB  at          peak host MiB  at");
        for (int i = 0; i < n; i++)
            wr_log_rank0("  %4d  %15.1f  %-10s  %13.1f  %s", i, (double)all[i].device / 1048576.0,
                         all[i].device_at, (double)all[i].host / 1048576.0, all[i].host_at);
    }
    free(all);
    return st;
}

/* ---- the pipeline's host buffers ---- */

/* A host buffer (64-byte aligned, as the CPU backend's memory) whose bytes are also counted as
 * device workspace in the pool (wr_vram_account, limit-checked): on the plain CPU backend the
 * models read and write it in place, so these are device bytes; elsewhere they stand for the
 * device copies the models make of their inputs and outputs. The planner counts them so
 * (plan.c, "the pipeline's buffers"). WR_ERR_OOM_HOST / WR_ERR_OOM_DEVICE (the limit). */
static wr_status host_buf(wr_context *c, size_t bytes, float **out) {
    *out = NULL;
    WR_TRY(wr_vram_account(c->vram, WR_MEM_WORKSPACE, (int64_t)bytes));
    const size_t rounded = (bytes + 63) & ~(size_t)63;
    *out = rounded >= bytes ? aligned_alloc(64, rounded ? rounded : 64) : NULL;
    if (*out == NULL) {
        wr_vram_account(c->vram, WR_MEM_WORKSPACE, -(int64_t)bytes);
        return WR_FAIL(WR_ERR_OOM_HOST, "cannot allocate %.1f MiB of host memory",
                       (double)bytes / 1048576.0);
    }
    return WR_OK;
}

/* Frees *p (NULL: nothing) and its count; *p = NULL. */
static void host_buf_free(wr_context *c, float **p, size_t bytes) {
    if (*p == NULL) return;
    free(*p);
    wr_vram_account(c->vram, WR_MEM_WORKSPACE, -(int64_t)bytes);
    *p = NULL;
}

/* The writer encodes (after agreeing that it could), then broadcasts to its group. */
static wr_status text_embeddings(wr_context *c, const wr_request *r, int cfg, float *emb,
                                 float *emb_neg, int64_t D) {
    wr_status st = WR_OK;
    const double t0 = wr_now_s();
    if (c->role.writer) {
        if (c->t5 == NULL) { /* freed after the last encoding (level >= 2): load it again */
            char path[WR_PATH_CAP + 64];
            wr_model_dir_path(path, sizeof path, &c->md, WR_COMP_TEXT_ENCODER);
            const wr_t5_load_opts to = {.fp8_storage = c->opt.fp8_storage};
            st = wr_t5_load_ex(&c->t5, c->be, path, &to);
            if (st == WR_OK) st = t5_attach(c, 0);
        }
        if (st == WR_OK) st = encode_text(c, r->prompt, emb);
        if (st == WR_OK && cfg)
            st = encode_text(c, r->negative_prompt ? r->negative_prompt : "", emb_neg);
        if (st == WR_OK) st = wr_st_check_faults(); /* the text encoder's mapped weights */
        wr_debug("text encoded in %.2f s%s", wr_now_s() - t0,
                 cfg ? " (prompt and negative prompt)" : "");
        if (c->pol.te_stream) { /* streamed: the text encoder is freed after encoding */
            t5_free(c);
        } else if (c->t5) {
            wr_t5_release_workspace(c->t5);
        }
    }
    if (!c->distributed) return st;
    WR_TRY(wr_comm_agree(c->groups.group, st));
    const size_t bytes = sizeof(float) * (size_t)(WR_TOKENIZER_MAX_LEN * D);
    WR_TRY(wr_comm_bcast(c->groups.group, emb, bytes, 0, WR_MEM_HOST));
    if (cfg) WR_TRY(wr_comm_bcast(c->groups.group, emb_neg, bytes, 0, WR_MEM_HOST));
    return WR_OK;
}

/* TI2V's image condition on the writer: the file read and resized as diffusers' load_image +
 * VaeImageProcessor.preprocess (PIL's convert("RGB"), Lanczos to the request's size, u8 / 255
 * in float32, 2 v - 1), encoded by the VAE (latent_dist.mean == mode), normalised as
 * prepare_latents: (mean - latents_mean) * (1 / latents_std), all float32. cond [z, 1, h, w]. */
static wr_status image_condition(wr_context *c, const char *path, int64_t W, int64_t H,
                                 float *cond) {
    wr_image src = {0}, im = {0};
    WR_TRY(wr_image_load(&src, path));
    wr_status st = wr_image_resize(&im, &src, (int)W, (int)H);
    wr_image_free(&src);
    WR_TRY(st);
    const int64_t n = W * H;
    float *v = malloc(sizeof(float) * (size_t)(3 * n));
    st = v ? WR_OK : WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for the image");
    for (int64_t i = 0; st == WR_OK && i < n; i++)
        for (int k = 0; k < 3; k++)
            v[k * n + i] = 2.0f * ((float)im.rgb[3 * i + k] / 255.0f) - 1.0f;
    wr_image_free(&im);
    const wr_vae22_config *vc = wr_vae22_config_of(c->vae22);
    const int64_t z = vc->z_dim, r = vc->scale_factor_spatial, hw = (H / r) * (W / r);
    wr_tensor vt = wr_tensor_make(v, WR_DTYPE_F32, 4, (int64_t[]){3, 1, H, W});
    wr_tensor ct = wr_tensor_make(cond, WR_DTYPE_F32, 4, (int64_t[]){z, 1, H / r, W / r});
    if (st == WR_OK)
        st = wr_vae22_encode(c->vae22, &ct, &vt, c->pol.vae_tiled ? &c->opt.tiling : NULL);
    free(v);
    WR_TRY(st);
    const float *mean = wr_vae22_latents_mean(c->vae22), *std = wr_vae22_latents_std(c->vae22);
    for (int64_t k = 0; k < z; k++) {
        const float m = mean ? mean[k] : 0.0f, inv = 1.0f / (std ? std[k] : 1.0f);
        for (int64_t i = 0; i < hw; i++) cond[k * hw + i] = (cond[k * hw + i] - m) * inv;
    }
    return check_finite(cond, z * hw, "the image's latent", "vae/config.json, the encoder");
}

/* One DiT evaluation: the scalar timestep t, or one per token (t_tok, TI2V). */
static wr_status dit_step(wr_dit *m, wr_tensor *out, const wr_tensor *x, float t,
                          const float *t_tok, int64_t tokens, const wr_tensor *text, int slot) {
    return t_tok ? wr_dit_forward_tokens(m, out, x, t_tok, tokens, text, slot)
                 : wr_dit_forward_ex(m, out, x, t, text, slot);
}

/* The Wan2.2 VAE's decode of the final latents x [z, T, h, w]: de-normalised first as
 * WanPipeline does (x / (1 / latents_std) + latents_mean, float32), tiled as the level says
 * (diffusers' enable_tiling), its buffers from the pool. */
static wr_status decode22(wr_context *c, wr_tensor *frames, const float *x,
                          const int64_t shape[4]) {
    const int64_t z = shape[0], per = shape[1] * shape[2] * shape[3];
    float *zb = malloc(sizeof(float) * (size_t)(z * per));
    if (zb == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for the latents");
    const float *mean = wr_vae22_latents_mean(c->vae22), *std = wr_vae22_latents_std(c->vae22);
    for (int64_t k = 0; k < z; k++) {
        const float m = mean ? mean[k] : 0.0f, inv = 1.0f / (std ? std[k] : 1.0f);
        for (int64_t i = 0; i < per; i++) zb[k * per + i] = x[k * per + i] / inv + m;
    }
    wr_tensor zt = wr_tensor_make(zb, WR_DTYPE_F32, 4, shape);
    const wr_status st =
        wr_vae22_decode(c->vae22, frames, &zt, c->pol.vae_tiled ? &c->opt.tiling : NULL);
    free(zb);
    return st;
}

/* The first latent frame of x [C, T, hw] set to cond [C, 1, hw] (diffusers' (1 - mask) * condition
 * + mask * latents with a 0/1 mask: those values exactly). */
static void put_first_frame(float *x, const float *cond, int64_t C, int64_t T, int64_t hw) {
    for (int64_t k = 0; k < C; k++)
        memcpy(x + k * T * hw, cond + k * hw, sizeof(float) * (size_t)hw);
}

wr_status wr_generate(wr_context *c, const wr_request *r, wr_video *out) {
    memset(out, 0, sizeof *out);
    WR_TRY(wr_request_check(c, r));
    wr_status st = WR_OK;
    const int64_t C = c->md.dit.in_channels, D = c->md.dit.text_dim;
    const int64_t r8 = c->md.vae.scale_factor_spatial > 0 ? c->md.vae.scale_factor_spatial : 8;
    const int64_t T = (r->frames - 1) / 4 + 1, Hl = r->height / r8, Wl = r->width / r8;
    const int64_t shape[4] = {C, T, Hl, Wl}, nlat = C * T * Hl * Wl;
    const int cfg = r->guidance > 1.0;
    /* CFG-parallel: this rank runs one branch (0 conditional, 1 unconditional) */
    const int split = cfg && c->role.cfg == 2;
    /* host buffers (host_buf): the scheduler's state and the embeddings stay on the host */
    float *emb = NULL, *emb_neg = NULL, *x = NULL, *v = NULL, *vu = NULL;
    float *cond = NULL, *xin = NULL, *t_tok = NULL; /* TI2V */
    wr_sched *s = NULL;
    const size_t eb = sizeof(float) * (size_t)(WR_TOKENIZER_MAX_LEN * D);
    const size_t lb = sizeof(float) * (size_t)nlat, vb = split ? 2 * lb : lb;
    const int64_t pt = c->md.dit.patch_size.v[0], ph = c->md.dit.patch_size.v[1],
                  pw = c->md.dit.patch_size.v[2];
    const int64_t tokens = (T / pt) * (Hl / ph) * (Wl / pw), hw = Hl * Wl;
    const int ti2v = c->md.expand_timesteps; /* Wan2.2 TI2V: a timestep per token */
    const size_t cb = sizeof(float) * (size_t)(C * hw), tb = sizeof(float) * (size_t)tokens;

    /* (1) text: the embeddings, from encoding to the end of denoising */
    st = host_buf(c, eb, &emb);
    if (st == WR_OK && cfg) st = host_buf(c, eb, &emb_neg);
    if (st != WR_OK) wr_error_prefix("the text embeddings");
    if (c->distributed) st = wr_comm_agree(gen_comm(c), st);
    if (st != WR_OK) goto done;
    double t0 = wr_now_s();
    wr_memprof_begin(c->prof, "encode");
    WR_TRY_GOTO(st, text_embeddings(c, r, cfg, emb, emb_neg, D), done);
    wr_memprof_end(c->prof);
    out->sec_encode = wr_now_s() - t0;
    /* the latent x, the velocity v (both branches' with CFG-parallel) and the unconditional
     * one: while denoising, x until decoded */
    st = host_buf(c, lb, &x);
    if (st == WR_OK) st = host_buf(c, vb, &v);
    if (st == WR_OK && cfg) st = host_buf(c, lb, &vu);
    if (st != WR_OK) wr_error_prefix("the latents");
    if (c->distributed) st = wr_comm_agree(gen_comm(c), st);
    if (st != WR_OK) goto done;

    /* (2) scheduler: the config's sampler and shift unless overridden */
    wr_sched_kind kind;
    double shift;
    WR_TRY_GOTO(st, wr_sched_kind_of(&c->md.sched, &kind, &shift), done);
    if (r->scheduler >= 0) kind = (wr_sched_kind)r->scheduler;
    if (r->shift > 0.0) shift = r->shift;
    const int64_t ntrain =
        c->md.sched.num_train_timesteps > 0 ? c->md.sched.num_train_timesteps : 1000;
    WR_TRY_GOTO(st, wr_sched_create(&s, kind, r->steps, shift, ntrain), done);
    WR_TRY_GOTO(st, wr_sched_configure(s, &c->md.sched), done); /* solver_order, solver_type */

    /* (3) initial noise */
    if (r->noise)
        memcpy(x, r->noise, sizeof(float) * (size_t)nlat);
    else if (r->init_noise)
        WR_TRY_GOTO(st, load_noise(x, r->init_noise, shape), done);
    else /* each replica its own seed; independent replicas run their own requests */
        seeded_noise(x, nlat,
                     r->seed + (c->opt.independent_replicas ? 0 : (uint64_t)c->role.replica));

    /* (3a) TI2V: the per-token timesteps and, with an image, its latent (the writer encodes it,
     * the group receives it) and the DiT's input, whose first frame is that latent */
    if (ti2v) {
        st = host_buf(c, tb, &t_tok);
        if (st == WR_OK && r->image) st = host_buf(c, cb, &cond);
        if (st == WR_OK && r->image) st = host_buf(c, lb, &xin);
        if (st == WR_OK && r->image && c->role.writer) {
            wr_memprof_begin(c->prof, "encode image");
            st = image_condition(c, r->image, r->width, r->height, cond);
            wr_memprof_end(c->prof);
            if (st != WR_OK) wr_error_prefix("--image");
        }
        if (c->distributed) st = wr_comm_agree(gen_comm(c), st);
        if (st == WR_OK && c->distributed && r->image)
            st = wr_comm_bcast(c->groups.group, cond, cb, 0, WR_MEM_HOST);
        if (st != WR_OK) goto done;
    }
    wr_tensor xint = wr_tensor_make(xin, WR_DTYPE_F32, 4, shape);

    /* (3b) the expert of the first step in the pool (level 3: its blocks stream, as many
     * resident as the limit allows; with two experts the other one waits) */
    const double boundary = r->boundary_ratio >= 0.0 ? r->boundary_ratio : c->md.boundary_ratio;
    const float g2 = (float)(r->guidance_2 >= 0.0 ? r->guidance_2 : r->guidance);
    if (c->pol.dit_stream) c->attached = 0; /* set up for this request's tokens */
    st = activate(c, expert_of(c, boundary, ntrain, wr_sched_timestep(s, 0)), tokens);
    if (c->distributed) st = wr_comm_agree(gen_comm(c), st);
    if (st != WR_OK) goto done;

    /* (4) denoising with classifier-free guidance: v = v_u + g (v_c - v_u) */
    wr_tensor xt = wr_tensor_make(x, WR_DTYPE_F32, 4, shape);
    wr_tensor vt = wr_tensor_make(v, WR_DTYPE_F32, 4, shape);
    wr_tensor vut = wr_tensor_make(vu, WR_DTYPE_F32, 4, shape);
    wr_tensor et = wr_tensor_make(emb, WR_DTYPE_F32, 2, (int64_t[]){WR_TOKENIZER_MAX_LEN, D});
    wr_tensor ent = wr_tensor_make(emb_neg, WR_DTYPE_F32, 2, (int64_t[]){WR_TOKENIZER_MAX_LEN, D});
    const float g1 = (float)r->guidance;
    /* the text's cross-attention K/V, computed in the first step and kept (slot 0 the prompt,
     * 1 the negative prompt; with CFG-parallel each rank's own branch in slot 0); emptied when
     * the workspace is released after denoising */
    const int ntext = wr_pipeline_text_cache(c->pol.dit_stream, cfg, split ? 2 : 1);
    WR_TRY_GOTO(st, wr_dit_set_text_cache(c->dit, ntext), done);
    if (c->dit2) WR_TRY_GOTO(st, wr_dit_set_text_cache(c->dit2, ntext), done);
    const int slot_c = ntext ? 0 : -1, slot_u = ntext == 2 ? 1 : ntext ? 0 : -1;
    const double loop0 = wr_now_s();
    wr_memprof_begin(c->prof, "denoise");
    for (int64_t k = 0; k < r->steps; k++) {
        if (r->stop) { /* asked to stop (a signal): agreed before the step's collectives */
            st = *r->stop ? WR_FAIL(WR_ERR_INTERRUPTED,
                                    "stopped by a signal before step %lld of %lld; nothing "
                                    "was written",
                                    (long long)k + 1, (long long)r->steps)
                          : WR_OK;
            if (c->distributed) st = wr_comm_agree(gen_comm(c), st);
            if (st != WR_OK) goto done;
        }
        const double ts = wr_now_s();
        char step_name[32];
        snprintf(step_name, sizeof step_name, "step %lld", (long long)k + 1);
        wr_memprof_begin(c->prof, step_name);
        const float t = wr_sched_timestep(s, k);
        const int e = expert_of(c, boundary, ntrain, t);
        /* the next step's expert: when it changes, this step's last forward hands over */
        const int nxt =
            k + 1 < r->steps ? expert_of(c, boundary, ntrain, wr_sched_timestep(s, k + 1)) : e;
        if (e != c->active) { /* Wan2.2: the low-noise expert takes over */
            const int overlapped = c->armed;
            const double t_swap = wr_now_s();
            wr_memprof_begin(c->prof, e ? "swap to transformer_2" : "swap to transformer");
            st = activate(c, e, tokens);
            wr_memprof_end(c->prof);
            if (c->distributed) st = wr_comm_agree(gen_comm(c), st);
            if (st != WR_OK) goto done;
            wr_log_rank0("step %lld (t = %g): %s takes over, guidance %g (swapped in %.2f s%s)",
                         (long long)k + 1, (double)t,
                         e ? "the low-noise expert transformer_2/"
                           : "the high-noise expert transformer/",
                         (double)(e ? g2 : g1), wr_now_s() - t_swap,
                         overlapped ? ", its copies overlapped with the previous step" : "");
        }
        wr_dit *dit = expert(c, e);
        const float g = e ? g2 : g1;
        const wr_tensor *xd = &xt; /* what the DiT sees */
        if (ti2v) {                /* diffusers: mask * t per token, the image's frame 0 */
            for (int64_t i = 0; i < tokens; i++) t_tok[i] = t;
            if (cond) {
                for (int64_t i = 0; i < tokens / (T / pt); i++) t_tok[i] = 0.0f;
                memcpy(xin, x, lb);
                put_first_frame(xin, cond, C, T, hw);
                xd = &xint;
            }
        }
        if (split) { /* my branch, then both branches' velocities on both ranks: v | vu */
            if (nxt != e) arm_swap(c, nxt);
            st = dit_step(dit, &vut, xd, t, ti2v ? t_tok : NULL, tokens,
                          c->role.cfg_rank == 0 ? &et : &ent, slot_c);
            if (st == WR_OK) st = wr_st_check_faults(); /* the DiT's mapped weights */
            st = wr_comm_agree(c->groups.group, st);
            if (st == WR_OK)
                st = wr_comm_allgather(c->groups.cfg, v, vu, sizeof(float) * (size_t)nlat,
                                       WR_MEM_HOST);
            if (st != WR_OK) goto done;
            const float *vc = v, *vn = v + nlat;
            for (int64_t i = 0; i < nlat; i++) v[i] = vn[i] + g * (vc[i] - vn[i]);
        } else {
            if (nxt != e && !cfg) arm_swap(c, nxt);
            st = dit_step(dit, &vt, xd, t, ti2v ? t_tok : NULL, tokens, &et, slot_c);
            if (st == WR_OK && nxt != e && cfg) arm_swap(c, nxt);
            if (st == WR_OK && cfg)
                st = dit_step(dit, &vut, xd, t, ti2v ? t_tok : NULL, tokens, &ent, slot_u);
            if (st == WR_OK) st = wr_st_check_faults(); /* the DiT's mapped weights */
            if (c->distributed) st = wr_comm_agree(c->groups.group, st);
            if (st != WR_OK) goto done;
            if (cfg)
                for (int64_t i = 0; i < nlat; i++) v[i] = vu[i] + g * (v[i] - vu[i]);
        }
        WR_TRY_GOTO(st, wr_sched_step(s, x, v, nlat), done);
        wr_memprof_end(c->prof);
        const double dt = wr_now_s() - ts, per = (wr_now_s() - loop0) / (double)(k + 1);
        if (r->progress)
            r->progress(r->progress_ctx, k + 1, r->steps, t, dt, per * (double)(r->steps - k - 1));
    }

    wr_memprof_end(c->prof);
    out->sec_denoise = wr_now_s() - loop0;
    /* denoising is over: its activations, the velocities and the embeddings go back; at level
     * 3 the DiT leaves the device altogether */
    wr_dit_release_workspace(c->dit);
    if (c->dit2) wr_dit_release_workspace(c->dit2);
    if (c->pol.dit_stream) {
        c->attached = 0;
        WR_TRY_GOTO(st, wr_dit_set_vram(expert(c, c->active), NULL, 0), done);
    }
    host_buf_free(c, &v, vb);
    host_buf_free(c, &vu, lb);
    host_buf_free(c, &emb, eb);
    host_buf_free(c, &emb_neg, eb);
    host_buf_free(c, &xin, lb);
    host_buf_free(c, &t_tok, tb);
    if (cond) put_first_frame(x, cond, C, T, hw); /* the result's first frame: the image's */
    host_buf_free(c, &cond, cb);
    {
        wr_vram_stats vs;
        wr_vram_get_stats(c->vram, &vs);
        wr_debug("device memory peaks so far: %.1f MiB in all (weights-resident %.1f, "
                 "weights-streaming %.1f, activations %.1f MiB)",
                 (double)vs.total_peak / 1048576.0,
                 (double)vs.peak[WR_MEM_WEIGHTS_RESIDENT] / 1048576.0,
                 (double)vs.peak[WR_MEM_WEIGHTS_STREAMING] / 1048576.0,
                 (double)vs.peak[WR_MEM_ACTIVATIONS] / 1048576.0);
    }

    /* (5) the final latents: finite (every rank holds them), then handed out if asked for */
    WR_TRY_GOTO(st,
                check_finite(x, nlat, "the denoised latents",
                             "transformer/config.json (eps, qk_norm) and "
                             "scheduler/scheduler_config.json (flow_shift, shift)"),
                done);
    if (r->latents_out) memcpy(r->latents_out, x, sizeof(float) * (size_t)nlat);
    if (!c->role.writer) goto done; /* the writer decodes, saves and returns the frames */

    /* (6) decode, then [-1, 1] -> [0, 1] as diffusers' postprocess (x * 0.5 + 0.5, clamped) */
    const int64_t N = c->vae22 ? wr_vae22_frames(c->vae22, T) : wr_vae_frames(c->vae, T);
    const int64_t H = Hl * r8, W = Wl * r8, oc = 3;
    out->frames = malloc(sizeof(float) * (size_t)(oc * N * H * W));
    if (out->frames == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for %lld frames of %lldx%lld",
                     (long long)N, (long long)W, (long long)H);
        goto done;
    }
    out->n = N, out->h = H, out->w = W;
    wr_tensor ft = wr_tensor_make(out->frames, WR_DTYPE_F32, 4, (int64_t[]){oc, N, H, W});
    t0 = wr_now_s();
    wr_memprof_begin(c->prof, "decode");
    if (c->vae22)
        st = decode22(c, &ft, x, shape);
    else
        st = wr_vae_decode(c->vae, &ft, &xt, c->pol.vae_tiled ? &c->opt.tiling : NULL);
    if (st != WR_OK) goto done;
    wr_memprof_end(c->prof);
    out->sec_decode = wr_now_s() - t0;
    wr_debug("VAE decode %.2f s", out->sec_decode);
    /* before the clamp, which would hide a NaN */
    WR_TRY_GOTO(st,
                check_finite(out->frames, oc * N * H * W, "the decoded video",
                             "vae/config.json, e.g. latents_mean / latents_std"),
                done);
    /* on the host frames: x * 0.5 + 0.5, then torch.clamp's (0, 1) (the CPU backend's
     * channel_affine and clamp, the same two roundings) */
    for (int64_t i = 0, n = oc * N * H * W; i < n; i++) {
        float y = out->frames[i] * 0.5f + 0.5f;
        y = y < 0.0f ? 0.0f : y;
        out->frames[i] = y > 1.0f ? 1.0f : y;
    }
    /* (7) only now that the run has succeeded (and no model file was cut short under it): the
     * latents file, if asked for (a failed run leaves an existing file alone) */
    if (r->save_latents) {
        WR_TRY_GOTO(st, wr_st_check_faults(), done);
        wr_st_writer *w = NULL;
        WR_TRY_GOTO(st, wr_st_writer_init(&w), done);
        st = wr_st_writer_add(w, "latents", WR_DTYPE_F32, 4, shape, x);
        if (st == WR_OK) st = wr_st_writer_meta(w, "prompt", r->prompt);
        if (st == WR_OK) st = wr_st_writer_write(w, r->save_latents);
        wr_st_writer_free(w);
        if (st != WR_OK) goto done;
    }
done:
    wr_memprof_end_all(c->prof);
    if (c->armed) { /* a hand-over armed but not taken: the active expert's memory may hold the
                     * other's blocks; it leaves the pool, the next request attaches it again */
        c->armed = 0;
        (void)wr_dit_set_vram(expert(c, c->active), NULL, 0);
        c->attached = 0;
    }
    { /* a model file cut short under the run (SIGBUS guard, short pread): the cause of any other
       * failure, and no result is trusted (safetensors.h) */
        const wr_status fault = wr_st_check_faults();
        if (fault != WR_OK) st = fault;
    }
    /* every rank ends here: agree (the writer decoded alone), then the memory profile */
    if (c->distributed) st = wr_comm_agree(gen_comm(c), st);
    if (st == WR_OK && c->prof) st = write_profile(c);
    if (st != WR_OK) wr_video_free(out);
    wr_sched_free(s);
    host_buf_free(c, &emb, eb);
    host_buf_free(c, &emb_neg, eb);
    host_buf_free(c, &x, lb);
    host_buf_free(c, &v, vb);
    host_buf_free(c, &vu, lb);
    host_buf_free(c, &cond, cb);
    host_buf_free(c, &xin, lb);
    host_buf_free(c, &t_tok, tb);
    return st;
}
