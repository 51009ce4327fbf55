/* modeldir.c — diffusers model directory and component configs. */
#include "modeldir.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *const comp_names[WR_COMP_COUNT] = {"transformer", "text_encoder", "vae",
                                                      "scheduler", "tokenizer"};

const char *wr_component_name(wr_component c) {
    return (unsigned)c < WR_COMP_COUNT ? comp_names[c] : "?";
}

void wr_model_dir_path(char *buf, size_t cap, const wr_model_dir *md, wr_component c) {
    snprintf(buf, cap, "%s/%s", md->root, wr_component_name(c));
}

/* ---- defaults ---- */

void wr_dit_config_default(wr_dit_config *c) {
    memset(c, 0, sizeof *c);
    c->patch_size.n = 3;
    c->patch_size.v[0] = 1;
    c->patch_size.v[1] = 2;
    c->patch_size.v[2] = 2;
    c->in_channels = c->out_channels = 16;
    c->text_dim = 4096;
    c->freq_dim = 256;
    c->cross_attn_norm = 1;
    strcpy(c->qk_norm, "rms_norm_across_heads");
    c->eps = 1e-6;
    c->rope_max_seq_len = 1024;
    c->image_dim = c->added_kv_proj_dim = c->pos_embed_seq_len = -1;
}

void wr_t5_config_default(wr_t5_config *c) {
    memset(c, 0, sizeof *c);
    c->relative_attention_num_buckets = 32;
    c->relative_attention_max_distance = 128;
    c->pad_token_id = 0;
    c->eos_token_id = 1;
    c->layer_norm_epsilon = 1e-6;
    strcpy(c->feed_forward_proj, "gated-gelu");
    strcpy(c->dense_act_fn, "gelu_new");
    strcpy(c->model_type, "umt5");
    c->is_gated_act = 1;
}

/* Wan2.1 latent statistics (spec §4.2), the AutoencoderKLWan defaults. */
static const double wan_latents_mean[16] = {-0.7571, -0.7089, -0.9113, 0.1075,  -0.1745, 0.9653,
                                            -0.1517, 1.5508,  0.4134,  -0.0715, 0.5517,  -0.3632,
                                            -0.1922, -0.9497, 0.2503,  -0.2921};
static const double wan_latents_std[16] = {2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708,
                                           2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579,
                                           1.6382, 1.1253, 2.8251, 1.9160};

void wr_vae_config_default(wr_vae_config *c) {
    memset(c, 0, sizeof *c);
    c->base_dim = 96;
    c->decoder_base_dim = -1;
    c->z_dim = 16;
    c->num_res_blocks = 2;
    c->dim_mult.n = 4;
    c->dim_mult.v[0] = 1;
    c->dim_mult.v[1] = 2;
    c->dim_mult.v[2] = 4;
    c->dim_mult.v[3] = 4;
    c->temperal_downsample.n = 3;
    c->temperal_downsample.v[0] = 0;
    c->temperal_downsample.v[1] = 1;
    c->temperal_downsample.v[2] = 1;
    c->latents_mean.n = c->latents_std.n = 16;
    memcpy(c->latents_mean.v, wan_latents_mean, sizeof wan_latents_mean);
    memcpy(c->latents_std.v, wan_latents_std, sizeof wan_latents_std);
    c->in_channels = c->out_channels = 3;
    c->scale_factor_temporal = 4;
    c->scale_factor_spatial = 8;
}

void wr_sched_config_default(wr_sched_config *c) {
    memset(c, 0, sizeof *c);
    strcpy(c->class_name, "UniPCMultistepScheduler");
    c->num_train_timesteps = 1000;
    c->solver_order = 2;
    strcpy(c->solver_type, "bh2");
    strcpy(c->prediction_type, "flow_prediction");
    strcpy(c->final_sigmas_type, "zero");
    strcpy(c->timestep_spacing, "linspace");
    c->use_flow_sigmas = 1;
    c->lower_order_final = 1;
    c->predict_x0 = 1;
    c->flow_shift = 3.0;
    c->shift = 1.0;
}

/* ---- field tables ---- */

#define F(T, name, kind, req)                                                                      \
    { #name, kind, offsetof(T, name), req, 0 }

static const wr_json_field dit_fields[] = {
    F(wr_dit_config, patch_size, WR_JSON_INT_ARRAY, 0),
    F(wr_dit_config, num_attention_heads, WR_JSON_INT, 1),
    F(wr_dit_config, attention_head_dim, WR_JSON_INT, 1),
    F(wr_dit_config, in_channels, WR_JSON_INT, 0),
    F(wr_dit_config, out_channels, WR_JSON_INT, 0),
    F(wr_dit_config, text_dim, WR_JSON_INT, 0),
    F(wr_dit_config, freq_dim, WR_JSON_INT, 0),
    F(wr_dit_config, ffn_dim, WR_JSON_INT, 1),
    F(wr_dit_config, num_layers, WR_JSON_INT, 1),
    F(wr_dit_config, cross_attn_norm, WR_JSON_BOOL, 0),
    F(wr_dit_config, qk_norm, WR_JSON_STRING, 0),
    F(wr_dit_config, eps, WR_JSON_DOUBLE, 0),
    F(wr_dit_config, rope_max_seq_len, WR_JSON_INT, 0),
    F(wr_dit_config, image_dim, WR_JSON_INT, 0),
    F(wr_dit_config, added_kv_proj_dim, WR_JSON_INT, 0),
    F(wr_dit_config, pos_embed_seq_len, WR_JSON_INT, 0),
};

static const wr_json_field t5_fields[] = {
    F(wr_t5_config, vocab_size, WR_JSON_INT, 1),
    F(wr_t5_config, d_model, WR_JSON_INT, 1),
    F(wr_t5_config, d_kv, WR_JSON_INT, 1),
    F(wr_t5_config, num_heads, WR_JSON_INT, 1),
    F(wr_t5_config, num_layers, WR_JSON_INT, 1),
    F(wr_t5_config, d_ff, WR_JSON_INT, 1),
    F(wr_t5_config, relative_attention_num_buckets, WR_JSON_INT, 0),
    F(wr_t5_config, relative_attention_max_distance, WR_JSON_INT, 0),
    F(wr_t5_config, pad_token_id, WR_JSON_INT, 0),
    F(wr_t5_config, eos_token_id, WR_JSON_INT, 0),
    F(wr_t5_config, layer_norm_epsilon, WR_JSON_DOUBLE, 0),
    F(wr_t5_config, feed_forward_proj, WR_JSON_STRING, 0),
    F(wr_t5_config, dense_act_fn, WR_JSON_STRING, 0),
    F(wr_t5_config, model_type, WR_JSON_STRING, 0),
    F(wr_t5_config, is_gated_act, WR_JSON_BOOL, 0),
};

static const wr_json_field vae_fields[] = {
    F(wr_vae_config, base_dim, WR_JSON_INT, 0),
    F(wr_vae_config, decoder_base_dim, WR_JSON_INT, 0),
    F(wr_vae_config, z_dim, WR_JSON_INT, 0),
    F(wr_vae_config, num_res_blocks, WR_JSON_INT, 0),
    F(wr_vae_config, dim_mult, WR_JSON_INT_ARRAY, 0),
    F(wr_vae_config, attn_scales, WR_JSON_DOUBLE_ARRAY, 0),
    F(wr_vae_config, temperal_downsample, WR_JSON_BOOL_ARRAY, 0),
    F(wr_vae_config, latents_mean, WR_JSON_DOUBLE_ARRAY, 0),
    F(wr_vae_config, latents_std, WR_JSON_DOUBLE_ARRAY, 0),
    F(wr_vae_config, is_residual, WR_JSON_BOOL, 0),
    F(wr_vae_config, in_channels, WR_JSON_INT, 0),
    F(wr_vae_config, out_channels, WR_JSON_INT, 0),
    F(wr_vae_config, scale_factor_temporal, WR_JSON_INT, 0),
    F(wr_vae_config, scale_factor_spatial, WR_JSON_INT, 0),
    F(wr_vae_config, dropout, WR_JSON_DOUBLE, 0),
};

static const wr_json_field sched_fields[] = {
    {"_class_name", WR_JSON_STRING, offsetof(wr_sched_config, class_name), 1, 0},
    F(wr_sched_config, num_train_timesteps, WR_JSON_INT, 0),
    F(wr_sched_config, solver_order, WR_JSON_INT, 0),
    F(wr_sched_config, steps_offset, WR_JSON_INT, 0),
    F(wr_sched_config, solver_type, WR_JSON_STRING, 0),
    F(wr_sched_config, prediction_type, WR_JSON_STRING, 0),
    F(wr_sched_config, final_sigmas_type, WR_JSON_STRING, 0),
    F(wr_sched_config, timestep_spacing, WR_JSON_STRING, 0),
    F(wr_sched_config, use_flow_sigmas, WR_JSON_BOOL, 0),
    F(wr_sched_config, lower_order_final, WR_JSON_BOOL, 0),
    F(wr_sched_config, predict_x0, WR_JSON_BOOL, 0),
    F(wr_sched_config, flow_shift, WR_JSON_DOUBLE, 0),
    F(wr_sched_config, shift, WR_JSON_DOUBLE, 0),
};

#undef F
#define NFIELDS(t) ((int)(sizeof(t) / sizeof((t)[0])))

static wr_status read_config(void *out, const char *path, const wr_json_field *fields, int n) {
    wr_json_doc doc;
    WR_TRY(wr_json_load(&doc, path));
    wr_status st = wr_json_read_fields(out, &doc, doc.root, fields, n);
    wr_json_free(&doc);
    return st;
}

static wr_status positive(const char *path, const char *field, int64_t v) {
    if (v <= 0)
        return WR_FAIL(WR_ERR_CONFIG, "%s: field '%s' must be positive, got %lld", path, field,
                       (long long)v);
    return WR_OK;
}

wr_status wr_dit_config_read(wr_dit_config *out, const char *path) {
    wr_dit_config_default(out);
    WR_TRY(read_config(out, path, dit_fields, NFIELDS(dit_fields)));
    WR_TRY(positive(path, "num_attention_heads", out->num_attention_heads));
    WR_TRY(positive(path, "attention_head_dim", out->attention_head_dim));
    WR_TRY(positive(path, "ffn_dim", out->ffn_dim));
    WR_TRY(positive(path, "num_layers", out->num_layers));
    WR_TRY(positive(path, "in_channels", out->in_channels));
    WR_TRY(positive(path, "out_channels", out->out_channels));
    WR_TRY(positive(path, "text_dim", out->text_dim));
    WR_TRY(positive(path, "freq_dim", out->freq_dim));
    if (out->attention_head_dim % 2 != 0)
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: field 'attention_head_dim' must be even for RoPE, got "
                       "%lld",
                       path, (long long)out->attention_head_dim);
    if (out->patch_size.n != 3)
        return WR_FAIL(WR_ERR_CONFIG, "%s: field 'patch_size' must have 3 elements, got %d", path,
                       out->patch_size.n);
    for (int i = 0; i < 3; i++) WR_TRY(positive(path, "patch_size", out->patch_size.v[i]));
    if (out->image_dim > 0 || out->added_kv_proj_dim > 0)
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: an image-to-video transformer (image_dim / "
                       "added_kv_proj_dim set) is not supported; wanrun runs T2V",
                       path);
    return WR_OK;
}

wr_status wr_t5_config_read(wr_t5_config *out, const char *path) {
    wr_t5_config_default(out);
    WR_TRY(read_config(out, path, t5_fields, NFIELDS(t5_fields)));
    WR_TRY(positive(path, "vocab_size", out->vocab_size));
    WR_TRY(positive(path, "d_model", out->d_model));
    WR_TRY(positive(path, "d_kv", out->d_kv));
    WR_TRY(positive(path, "num_heads", out->num_heads));
    WR_TRY(positive(path, "num_layers", out->num_layers));
    WR_TRY(positive(path, "d_ff", out->d_ff));
    WR_TRY(positive(path, "relative_attention_num_buckets", out->relative_attention_num_buckets));
    if (strcmp(out->feed_forward_proj, "gated-gelu") != 0)
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: field 'feed_forward_proj' is \"%s\"; only \"gated-gelu\" "
                       "(UMT5) is supported",
                       path, out->feed_forward_proj);
    return WR_OK;
}

wr_status wr_vae_config_read(wr_vae_config *out, const char *path) {
    wr_vae_config_default(out);
    WR_TRY(read_config(out, path, vae_fields, NFIELDS(vae_fields)));
    if (out->decoder_base_dim < 0) out->decoder_base_dim = out->base_dim;
    WR_TRY(positive(path, "base_dim", out->base_dim));
    WR_TRY(positive(path, "z_dim", out->z_dim));
    WR_TRY(positive(path, "num_res_blocks", out->num_res_blocks));
    if (out->dim_mult.n < 1)
        return WR_FAIL(WR_ERR_CONFIG, "%s: field 'dim_mult' must not be empty", path);
    if (out->temperal_downsample.n != out->dim_mult.n - 1)
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: field 'temperal_downsample' has %d entries; dim_mult "
                       "has %d, so it needs %d",
                       path, out->temperal_downsample.n, out->dim_mult.n, out->dim_mult.n - 1);
    if (out->latents_mean.n != out->z_dim || out->latents_std.n != out->z_dim)
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: fields 'latents_mean'/'latents_std' have %d/%d values; "
                       "z_dim is %lld",
                       path, out->latents_mean.n, out->latents_std.n, (long long)out->z_dim);
    for (int i = 0; i < out->latents_std.n; i++)
        if (!(out->latents_std.v[i] > 0.0))
            return WR_FAIL(WR_ERR_CONFIG, "%s: field 'latents_std'[%d] must be positive", path, i);
    if (out->is_residual)
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: is_residual=true is the Wan2.2 VAE; wanrun runs the "
                       "Wan2.1 VAE",
                       path);
    return WR_OK;
}

wr_status wr_sched_config_read(wr_sched_config *out, const char *path) {
    wr_sched_config_default(out);
    WR_TRY(read_config(out, path, sched_fields, NFIELDS(sched_fields)));
    if (strcmp(out->class_name, "UniPCMultistepScheduler") != 0 &&
        strcmp(out->class_name, "FlowMatchEulerDiscreteScheduler") != 0)
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: scheduler class \"%s\" is not supported (use "
                       "UniPCMultistepScheduler or FlowMatchEulerDiscreteScheduler)",
                       path, out->class_name);
    WR_TRY(positive(path, "num_train_timesteps", out->num_train_timesteps));
    return WR_OK;
}

/* ---- the directory ---- */

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Something is there (a FIFO or a device too: the JSON reader then refuses it by name, rather
 * than the directory being taken as one without an index). */
static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Expected classes per component (model_index.json: [library, class]). */
static const char *const comp_classes[WR_COMP_COUNT][2] = {
    {"WanTransformer3DModel", NULL},
    {"UMT5EncoderModel", "T5EncoderModel"},
    {"AutoencoderKLWan", NULL},
    {"UniPCMultistepScheduler", "FlowMatchEulerDiscreteScheduler"},
    {"T5TokenizerFast", "T5Tokenizer"},
};

static wr_status read_index(wr_model_dir *md, const char *path) {
    wr_json_doc doc;
    WR_TRY(wr_json_load(&doc, path));
    wr_status st = WR_OK;
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(doc.root, "_class_name");
    if (cJSON_IsString(cls))
        snprintf(md->pipeline_class, sizeof md->pipeline_class, "%s", cls->valuestring);
    if (strcmp(md->pipeline_class, "WanPipeline") != 0) {
        st = WR_FAIL(WR_ERR_CONFIG,
                     "%s: _class_name is \"%s\"; wanrun loads \"WanPipeline\" "
                     "(Wan2.1 text-to-video) directories",
                     path, md->pipeline_class);
        goto done;
    }
    for (int c = 0; c < WR_COMP_COUNT; c++) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc.root, comp_names[c]);
        if (e == NULL || cJSON_IsNull(e)) continue;
        const cJSON *k = cJSON_IsArray(e) ? cJSON_GetArrayItem(e, 1) : NULL;
        if (cJSON_GetArraySize(e) != 2 || !cJSON_IsString(k)) {
            st = WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' must be [library, class]", path,
                         comp_names[c]);
            goto done;
        }
        if (cJSON_IsNull(cJSON_GetArrayItem(e, 0))) continue; /* [null, null]: absent */
        snprintf(md->class_name[c], sizeof md->class_name[c], "%s", k->valuestring);
        if (strcmp(k->valuestring, comp_classes[c][0]) != 0 &&
            (comp_classes[c][1] == NULL || strcmp(k->valuestring, comp_classes[c][1]) != 0)) {
            st = WR_FAIL(WR_ERR_CONFIG, "%s: component '%s' has class \"%s\"; expected \"%s\"",
                         path, comp_names[c], k->valuestring, comp_classes[c][0]);
            goto done;
        }
    }
done:
    wr_json_free(&doc);
    return st;
}

static wr_status check_consistency(const wr_model_dir *md) {
    const char *r = md->root;
    if (md->has[WR_COMP_TRANSFORMER] && md->has[WR_COMP_VAE] &&
        md->dit.in_channels != md->vae.z_dim)
        return WR_FAIL(WR_ERR_CONFIG, "%s: transformer in_channels (%lld) != vae z_dim (%lld)", r,
                       (long long)md->dit.in_channels, (long long)md->vae.z_dim);
    if (md->has[WR_COMP_TRANSFORMER] && md->has[WR_COMP_VAE] &&
        md->dit.out_channels != md->vae.z_dim)
        return WR_FAIL(WR_ERR_CONFIG, "%s: transformer out_channels (%lld) != vae z_dim (%lld)", r,
                       (long long)md->dit.out_channels, (long long)md->vae.z_dim);
    if (md->has[WR_COMP_TRANSFORMER] && md->has[WR_COMP_TEXT_ENCODER] &&
        md->dit.text_dim != md->t5.d_model)
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: transformer text_dim (%lld) != text_encoder d_model "
                       "(%lld)",
                       r, (long long)md->dit.text_dim, (long long)md->t5.d_model);
    return WR_OK;
}

wr_status wr_model_dir_open(wr_model_dir *out, const char *path) {
    memset(out, 0, sizeof *out);
    if (strlen(path) >= WR_PATH_CAP - 64)
        return WR_FAIL(WR_ERR_INVALID_ARG, "model path is too long");
    snprintf(out->root, sizeof out->root, "%s", path);
    if (!is_dir(path))
        return WR_FAIL(WR_ERR_NOT_FOUND, "%s: model directory not found (or not a directory)",
                       path);
    char p[WR_PATH_CAP + 64];
    snprintf(p, sizeof p, "%s/model_index.json", path);
    int listed[WR_COMP_COUNT] = {0};
    if (exists(p)) {
        WR_TRY(read_index(out, p));
        for (int c = 0; c < WR_COMP_COUNT; c++) listed[c] = out->class_name[c][0] != '\0';
    } else {
        /* No index: take whichever component folders exist. */
        snprintf(out->pipeline_class, sizeof out->pipeline_class, "WanPipeline");
        int any = 0;
        for (int c = 0; c < WR_COMP_COUNT; c++) {
            char d[WR_PATH_CAP + 64];
            snprintf(d, sizeof d, "%s/%s", path, comp_names[c]);
            listed[c] = is_dir(d);
            any |= listed[c];
        }
        if (!any)
            return WR_FAIL(WR_ERR_NOT_FOUND,
                           "%s: not a model directory (no model_index.json and "
                           "none of transformer/, text_encoder/, vae/)",
                           path);
    }
    for (int c = 0; c < WR_COMP_COUNT; c++) {
        if (!listed[c]) continue;
        char d[WR_PATH_CAP + 64];
        snprintf(d, sizeof d, "%s/%s", path, comp_names[c]);
        if (!is_dir(d))
            return WR_FAIL(WR_ERR_NOT_FOUND,
                           "%s: component folder listed in model_index.json is "
                           "missing",
                           d);
        wr_status st = WR_OK;
        switch ((wr_component)c) {
        case WR_COMP_TRANSFORMER:
            snprintf(p, sizeof p, "%s/config.json", d);
            st = wr_dit_config_read(&out->dit, p);
            break;
        case WR_COMP_TEXT_ENCODER:
            snprintf(p, sizeof p, "%s/config.json", d);
            st = wr_t5_config_read(&out->t5, p);
            break;
        case WR_COMP_VAE:
            snprintf(p, sizeof p, "%s/config.json", d);
            st = wr_vae_config_read(&out->vae, p);
            break;
        case WR_COMP_SCHEDULER:
            snprintf(p, sizeof p, "%s/scheduler_config.json", d);
            st = wr_sched_config_read(&out->sched, p);
            break;
        case WR_COMP_TOKENIZER: /* spiece.model, else tokenizer.json (wr_tokenizer_locate) */
            snprintf(p, sizeof p, "%s/spiece.model", d);
            if (!is_file(p)) {
                snprintf(p, sizeof p, "%s/tokenizer.json", d);
                if (!is_file(p))
                    st = WR_FAIL(WR_ERR_NOT_FOUND,
                                 "%s/spiece.model: tokenizer model not found, nor "
                                 "%s/tokenizer.json: the tokenizer folder needs one of them",
                                 d, d);
            }
            break;
        default:
            break;
        }
        if (st != WR_OK) return st;
        out->has[c] = 1;
    }
    return check_consistency(out);
}

wr_status wr_model_dir_weights(wr_st_set **out, const wr_model_dir *md, wr_component c) {
    *out = NULL;
    if (c != WR_COMP_TRANSFORMER && c != WR_COMP_TEXT_ENCODER && c != WR_COMP_VAE)
        return WR_FAIL(WR_ERR_INVALID_ARG, "component '%s' has no weights", wr_component_name(c));
    if (!md->has[c])
        return WR_FAIL(WR_ERR_NOT_FOUND, "%s: the model directory has no %s/ component", md->root,
                       wr_component_name(c));
    char d[WR_PATH_CAP + 64];
    snprintf(d, sizeof d, "%s/%s", md->root, wr_component_name(c));
    return wr_st_set_open(out, d);
}
