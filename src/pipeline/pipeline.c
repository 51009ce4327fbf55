/*
 * pipeline.c — WanPipeline.__call__ in C (spec §6.1): text -> UMT5 embeddings -> noise ->
 * classifier-free-guided denoising with the scheduler -> VAE decode -> frames in [0, 1].
 *
 * Everything runs on the CPU backend so far (the CUDA op kernels are not written yet); the vram
 * layer (low_mem_level 2/3, vram_limit) is issue #8. low_mem_level >= 1 tiles the VAE decode.
 */
#include "wanrun.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/modeldir.h"
#include "core/safetensors.h"
#include "kernels/backend.h"
#include "kernels/ops.h"
#include "models/dit.h"
#include "models/sched.h"
#include "models/t5.h"
#include "models/tokenizer.h"

struct wr_context {
    wr_options opt;
    wr_model_dir md;
    wr_backend *be;
    wr_tokenizer *tok;
    wr_t5 *t5;
    wr_dit *dit;
    wr_vae *vae;
};

void wr_options_defaults(wr_options *o) {
    memset(o, 0, sizeof *o);
    o->tiling = wr_vae_tiling_default();
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
    WR_TRY_GOTO(st, wr_model_dir_open(&c->md, model_dir), fail);
    const wr_component need[] = {WR_COMP_TRANSFORMER, WR_COMP_TEXT_ENCODER, WR_COMP_VAE,
                                 WR_COMP_SCHEDULER, WR_COMP_TOKENIZER};
    char path[WR_PATH_CAP + 64];
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (!c->md.has[need[i]]) {
            wr_model_dir_path(path, sizeof path, &c->md, need[i]);
            st = WR_FAIL(WR_ERR_NOT_FOUND,
                         "%s: the model directory has no %s component; a text-to-video run "
                         "needs tokenizer/, text_encoder/, transformer/, vae/ and scheduler/",
                         path, wr_component_name(need[i]));
            goto fail;
        }
    }
    WR_TRY_GOTO(st, wr_backend_create(&c->be, WR_BACKEND_CPU, c->opt.threads), fail);
    wr_model_dir_path(path, sizeof path, &c->md, WR_COMP_TOKENIZER);
    strncat(path, "/spiece.model", sizeof path - strlen(path) - 1);
    WR_TRY_GOTO(st, wr_tokenizer_open(&c->tok, path), fail);
    wr_model_dir_path(path, sizeof path, &c->md, WR_COMP_TEXT_ENCODER);
    WR_TRY_GOTO(st, wr_t5_load(&c->t5, c->be, path), fail);
    if (wr_tokenizer_vocab_size(c->tok) > wr_t5_config_of(c->t5)->vocab_size) {
        st = WR_FAIL(WR_ERR_CONFIG,
                     "%s: the tokenizer has %lld ids, the text encoder's vocabulary %lld: they "
                     "are not from the same model",
                     model_dir, (long long)wr_tokenizer_vocab_size(c->tok),
                     (long long)wr_t5_config_of(c->t5)->vocab_size);
        goto fail;
    }
    wr_model_dir_path(path, sizeof path, &c->md, WR_COMP_TRANSFORMER);
    WR_TRY_GOTO(st, wr_dit_load(&c->dit, c->be, path), fail);
    wr_model_dir_path(path, sizeof path, &c->md, WR_COMP_VAE);
    WR_TRY_GOTO(st, wr_vae_load(&c->vae, c->be, path), fail);
    *out = c;
    return WR_OK;
fail:
    wr_context_free(c);
    return st;
}

void wr_context_free(wr_context *c) {
    if (c == NULL) return;
    wr_vae_free(c->vae);
    wr_dit_free(c->dit);
    wr_t5_free(c->t5);
    wr_tokenizer_free(c->tok);
    wr_backend_free(c->be);
    free(c);
}

void wr_video_free(wr_video *v) {
    if (v == NULL) return;
    free(v->frames);
    memset(v, 0, sizeof *v);
}

wr_status wr_request_check(const wr_context *c, const wr_request *r) {
    const int64_t r8 = c->md.vae.scale_factor_spatial > 0 ? c->md.vae.scale_factor_spatial : 8;
    const int64_t mult = r8 * c->md.dit.patch_size.v[1]; /* 16 for Wan */
    if (r->prompt == NULL) return WR_FAIL(WR_ERR_INVALID_ARG, "--prompt is required");
    if (r->width < mult || r->height < mult || r->width % mult || r->height % mult)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--size %lldx%lld: width and height must be positive multiples of %lld",
                       (long long)r->width, (long long)r->height, (long long)mult);
    if (r->width > 8192 || r->height > 8192)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--size %lldx%lld: at most 8192 on a side",
                       (long long)r->width, (long long)r->height);
    if (r->frames < 1 || (r->frames - 1) % 4 != 0 || r->frames > 4001)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--frames %lld: must be 4k + 1 (1, 5, ..., 81, ...), at most 4001",
                       (long long)r->frames);
    if (r->steps < 1 || r->steps > 1000)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--steps %lld: must be in [1, 1000]",
                       (long long)r->steps);
    if (!isfinite(r->guidance) || r->guidance < 0.0)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--guidance %g: must be a number >= 0", r->guidance);
    if (!isfinite(r->shift) || r->shift < 0.0)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--shift %g: must be a positive number", r->shift);
    return WR_OK;
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

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* prompt -> [512, D] embeddings as _get_t5_prompt_embeds (padded rows zero) */
static wr_status encode_text(wr_context *c, const char *prompt, float *emb) {
    int32_t ids[WR_TOKENIZER_MAX_LEN];
    uint8_t mask[WR_TOKENIZER_MAX_LEN];
    int n = 0;
    WR_TRY(wr_tokenizer_encode(c->tok, prompt, WR_TOKENIZER_MAX_LEN, ids, mask, &n));
    const int64_t D = wr_t5_config_of(c->t5)->d_model;
    wr_tensor et = wr_tensor_make(emb, WR_DTYPE_F32, 2, (int64_t[]){WR_TOKENIZER_MAX_LEN, D});
    return wr_t5_encode(c->t5, &et, ids, mask, WR_TOKENIZER_MAX_LEN, NULL);
}

wr_status wr_generate(wr_context *c, const wr_request *r, wr_video *out) {
    memset(out, 0, sizeof *out);
    WR_TRY(wr_request_check(c, r));
    wr_status st = WR_OK;
    const int64_t C = c->md.dit.in_channels, D = wr_t5_config_of(c->t5)->d_model;
    const int64_t r8 = c->md.vae.scale_factor_spatial > 0 ? c->md.vae.scale_factor_spatial : 8;
    const int64_t T = (r->frames - 1) / 4 + 1, Hl = r->height / r8, Wl = r->width / r8;
    const int64_t shape[4] = {C, T, Hl, Wl}, nlat = C * T * Hl * Wl;
    const int cfg = r->guidance > 1.0;
    float *emb = NULL, *emb_neg = NULL, *x = NULL, *v = NULL, *vu = NULL;
    wr_sched *s = NULL;

    /* (1) text */
    emb = malloc(sizeof(float) * (size_t)(WR_TOKENIZER_MAX_LEN * D));
    emb_neg = cfg ? malloc(sizeof(float) * (size_t)(WR_TOKENIZER_MAX_LEN * D)) : NULL;
    x = malloc(sizeof(float) * (size_t)nlat);
    v = malloc(sizeof(float) * (size_t)nlat);
    vu = cfg ? malloc(sizeof(float) * (size_t)nlat) : NULL;
    if (!emb || !x || !v || (cfg && (!emb_neg || !vu))) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for the latents and text embeddings");
        goto done;
    }
    double t0 = now_s();
    WR_TRY_GOTO(st, encode_text(c, r->prompt, emb), done);
    if (cfg)
        WR_TRY_GOTO(st, encode_text(c, r->negative_prompt ? r->negative_prompt : "", emb_neg),
                    done);
    wr_debug("text encoded in %.2f s%s", now_s() - t0, cfg ? " (prompt and negative prompt)" : "");

    /* (2) scheduler: the config's sampler and shift unless overridden */
    wr_sched_kind kind;
    double shift;
    WR_TRY_GOTO(st, wr_sched_kind_of(&c->md.sched, &kind, &shift), done);
    if (r->scheduler >= 0) kind = (wr_sched_kind)r->scheduler;
    if (r->shift > 0.0) shift = r->shift;
    const int64_t ntrain =
        c->md.sched.num_train_timesteps > 0 ? c->md.sched.num_train_timesteps : 1000;
    WR_TRY_GOTO(st, wr_sched_create(&s, kind, r->steps, shift, ntrain), done);

    /* (3) initial noise */
    if (r->noise)
        memcpy(x, r->noise, sizeof(float) * (size_t)nlat);
    else if (r->init_noise)
        WR_TRY_GOTO(st, load_noise(x, r->init_noise, shape), done);
    else
        seeded_noise(x, nlat, r->seed);

    /* (4) denoising with classifier-free guidance: v = v_u + g (v_c - v_u) */
    wr_tensor xt = wr_tensor_make(x, WR_DTYPE_F32, 4, shape);
    wr_tensor vt = wr_tensor_make(v, WR_DTYPE_F32, 4, shape);
    wr_tensor vut = wr_tensor_make(vu, WR_DTYPE_F32, 4, shape);
    wr_tensor et = wr_tensor_make(emb, WR_DTYPE_F32, 2, (int64_t[]){WR_TOKENIZER_MAX_LEN, D});
    wr_tensor ent = wr_tensor_make(emb_neg, WR_DTYPE_F32, 2, (int64_t[]){WR_TOKENIZER_MAX_LEN, D});
    const float g = (float)r->guidance;
    const double loop0 = now_s();
    for (int64_t k = 0; k < r->steps; k++) {
        const double ts = now_s();
        const float t = wr_sched_timestep(s, k);
        WR_TRY_GOTO(st, wr_dit_forward(c->dit, &vt, &xt, t, &et), done);
        if (cfg) {
            WR_TRY_GOTO(st, wr_dit_forward(c->dit, &vut, &xt, t, &ent), done);
            for (int64_t i = 0; i < nlat; i++) v[i] = vu[i] + g * (v[i] - vu[i]);
        }
        WR_TRY_GOTO(st, wr_sched_step(s, x, v, nlat), done);
        const double dt = now_s() - ts, per = (now_s() - loop0) / (double)(k + 1);
        if (r->progress)
            r->progress(r->progress_ctx, k + 1, r->steps, t, dt, per * (double)(r->steps - k - 1));
    }

    /* (5) the final latents, if asked for */
    if (r->latents_out) memcpy(r->latents_out, x, sizeof(float) * (size_t)nlat);
    if (r->save_latents) {
        wr_st_writer *w = NULL;
        WR_TRY_GOTO(st, wr_st_writer_init(&w), done);
        st = wr_st_writer_add(w, "latents", WR_DTYPE_F32, 4, shape, x);
        if (st == WR_OK) st = wr_st_writer_meta(w, "prompt", r->prompt);
        if (st == WR_OK) st = wr_st_writer_write(w, r->save_latents);
        wr_st_writer_free(w);
        if (st != WR_OK) goto done;
    }

    /* (6) decode, then [-1, 1] -> [0, 1] as diffusers' postprocess (x * 0.5 + 0.5, clamped) */
    const int64_t N = wr_vae_frames(c->vae, T), H = Hl * r8, W = Wl * r8, oc = 3;
    out->frames = malloc(sizeof(float) * (size_t)(oc * N * H * W));
    if (out->frames == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for %lld frames of %lldx%lld",
                     (long long)N, (long long)W, (long long)H);
        goto done;
    }
    out->n = N, out->h = H, out->w = W;
    wr_tensor ft = wr_tensor_make(out->frames, WR_DTYPE_F32, 4, (int64_t[]){oc, N, H, W});
    t0 = now_s();
    WR_TRY_GOTO(st,
                wr_vae_decode(c->vae, &ft, &xt, c->opt.low_mem_level >= 1 ? &c->opt.tiling : NULL),
                done);
    wr_debug("VAE decode %.2f s", now_s() - t0);
    const float half[3] = {0.5f, 0.5f, 0.5f};
    wr_tensor hv = wr_tensor_make((void *)half, WR_DTYPE_F32, 1, (int64_t[]){3});
    wr_tensor f2 = wr_tensor_make(out->frames, WR_DTYPE_F32, 2, (int64_t[]){oc, N * H * W});
    WR_TRY_GOTO(st, wr_op_channel_affine(c->be, &f2, &f2, &hv, &hv), done);
    WR_TRY_GOTO(st, wr_op_clamp(c->be, &f2, &f2, 0.0f, 1.0f), done);
done:
    if (st != WR_OK) wr_video_free(out);
    wr_sched_free(s);
    free(emb);
    free(emb_neg);
    free(x);
    free(v);
    free(vu);
    return st;
}
