/* modeldir.c — diffusers model directory and component configs. */
#include "modeldir.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *const comp_names[WR_COMP_COUNT] = {
    "transformer", "text_encoder", "vae", "scheduler", "tokenizer", "transformer_2"};

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
    c->dropout_rate = 0.1;
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
    strcpy(c->beta_schedule, "linear");
    strcpy(c->time_shift_type, "exponential");
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
    F(wr_t5_config, dropout_rate, WR_JSON_DOUBLE, 0),
    F(wr_t5_config, feed_forward_proj, WR_JSON_STRING, 0),
    F(wr_t5_config, dense_act_fn, WR_JSON_STRING, 0),
    F(wr_t5_config, model_type, WR_JSON_STRING, 0),
    F(wr_t5_config, is_gated_act, WR_JSON_BOOL, 0),
    F(wr_t5_config, is_decoder, WR_JSON_BOOL, 0),
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
    F(wr_vae_config, patch_size, WR_JSON_INT, 0),
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
    F(wr_sched_config, beta_schedule, WR_JSON_STRING, 0),
    F(wr_sched_config, time_shift_type, WR_JSON_STRING, 0),
};

#undef F
#define NFIELDS(t) ((int)(sizeof(t) / sizeof((t)[0])))

/* ---- checks shared by the readers ---- */

/* The value of `field` in doc's root, NULL when absent. */
static const cJSON *item(const wr_json_doc *doc, const char *field) {
    return cJSON_GetObjectItemCaseSensitive(doc->root, field);
}

/* 1 when `field` is present as JSON null (the table reader treats null as absent). */
static int is_null(const wr_json_doc *doc, const char *field) {
    return cJSON_IsNull(item(doc, field));
}

/* A JSON value in an error message: compact, at most ~40 characters. */
static const char *shown(char *buf, size_t cap, const cJSON *v) {
    char *txt = v ? cJSON_PrintUnformatted(v) : NULL;
    if (txt == NULL) {
        snprintf(buf, cap, "%s", v ? "?" : "absent");
    } else {
        snprintf(buf, cap, "%.40s%s", txt, strlen(txt) > 40 ? "..." : "");
        cJSON_free(txt);
    }
    return buf;
}

/* lo <= v <= hi, else WR_ERR_CONFIG naming path, field and value. */
static wr_status int_in(const char *path, const char *field, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
        return WR_FAIL(WR_ERR_CONFIG, "%s: field '%s' is %lld; wanrun accepts %lld..%lld", path,
                       field, (long long)v, (long long)lo, (long long)hi);
    return WR_OK;
}

/* a * b <= hi (both positive, already bounded), else WR_ERR_CONFIG naming both fields. */
static wr_status product_in(const char *path, const char *fa, int64_t a, const char *fb, int64_t b,
                            int64_t hi) {
    int64_t p;
    if (__builtin_mul_overflow(a, b, &p) || p > hi)
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: %s x %s = %lld x %lld is larger than wanrun accepts (%lld)", path, fa,
                       fb, (long long)a, (long long)b, (long long)hi);
    return WR_OK;
}

/* A normalisation epsilon: 0 < eps <= 1. Negative or NaN: WR_ERR_CONFIG (the norms divide by
 * the square root of a negative number); 0, inf or above 1: WR_ERR_UNSUPPORTED (the reference
 * computes something, never what a trained model needs). */
static wr_status epsilon(const char *path, const char *field, double eps) {
    if (!(eps >= 0.0))
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: field '%s' is %g; a norm's epsilon must be positive (a negative one "
                       "makes the model diverge)",
                       path, field, eps);
    if (!(eps > 0.0 && eps <= 1.0))
        return WR_FAIL(WR_ERR_UNSUPPORTED, "%s: field '%s' is %g; wanrun supports 0 < %s <= 1",
                       path, field, eps, field);
    return WR_OK;
}

/* A field wanrun does not implement, accepted only at its default (absent or null, or: */
typedef enum def_kind {
    DEF_FALSE, /* false; also 0 */
    DEF_NULL,  /* null; also false, 0 (Python: `if config.x:`) */
    DEF_EMPTY, /* [] */
} def_kind;

typedef struct default_only {
    const char *field;
    def_kind kind;
    const char *what; /* what a non-default value would switch on */
} default_only;

static wr_status check_defaults(const wr_json_doc *doc, const default_only *d, int n,
                                const char *cls) {
    for (int i = 0; i < n; i++) {
        const cJSON *v = item(doc, d[i].field);
        if (v == NULL || cJSON_IsNull(v) || cJSON_IsFalse(v)) continue;
        if (cJSON_IsNumber(v) && v->valuedouble == 0.0 && d[i].kind != DEF_EMPTY) continue;
        if (d[i].kind == DEF_EMPTY && cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0) continue;
        if (d[i].kind == DEF_FALSE && !cJSON_IsBool(v))
            return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' must be a boolean, got %s", doc->path,
                           d[i].field, cJSON_IsString(v) ? "a string" : "another value");
        if (d[i].kind == DEF_EMPTY && !cJSON_IsArray(v))
            return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' must be a list", doc->path, d[i].field);
        char b[64];
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field '%s' is %s; wanrun does not implement %s's %s (only its "
                       "default, %s)",
                       doc->path, d[i].field, shown(b, sizeof b, v), cls, d[i].what,
                       d[i].kind == DEF_FALSE   ? "false"
                       : d[i].kind == DEF_EMPTY ? "[]"
                                                : "null");
    }
    return WR_OK;
}

/* JSON null for a field whose constructor argument has no None meaning (diffusers / transformers
 * fail on it): WR_ERR_CONFIG naming the first such field of `fields` (NULL-terminated). The
 * table reader would otherwise keep the default. */
static wr_status refuse_nulls(const wr_json_doc *doc, const char *const *fields) {
    for (; *fields; fields++)
        if (is_null(doc, *fields))
            return WR_FAIL(WR_ERR_CONFIG, "%s: field '%s' is null; it needs a value", doc->path,
                           *fields);
    return WR_OK;
}

/* A boolean the reference tests for truth: null is false there (Python's None). */
static void null_is_false(const wr_json_doc *doc, const char *field, int *v) {
    if (is_null(doc, field)) *v = 0;
}

/* The first of the names in `list` (NULL-terminated) equal to s, or NULL. */
static const char *one_of(const char *s, const char *const *list) {
    for (; *list; list++)
        if (strcmp(s, *list) == 0) return *list;
    return NULL;
}

/* ---- transformer/config.json: diffusers WanTransformer3DModel.__init__ ---- */

static wr_status dit_check(wr_dit_config *c, const wr_json_doc *doc) {
    const char *p = doc->path;
    char b[64];
    static const char *const no_null[] = {"patch_size", "in_channels",      "text_dim", "freq_dim",
                                          "eps",        "rope_max_seq_len", NULL};
    WR_TRY(refuse_nulls(doc, no_null));
    null_is_false(doc, "cross_attn_norm", &c->cross_attn_norm); /* None: norm2 an Identity */
    WR_TRY(int_in(p, "num_attention_heads", c->num_attention_heads, 1, WR_CFG_MAX_HEADS));
    WR_TRY(int_in(p, "attention_head_dim", c->attention_head_dim, 2, WR_CFG_MAX_HEAD_DIM));
    if (c->attention_head_dim % 2 != 0) /* diffusers' RoPE pairs the dims: it fails too */
        return WR_FAIL(WR_ERR_CONFIG, "%s: field 'attention_head_dim' is %lld; must be even (RoPE)",
                       p, (long long)c->attention_head_dim);
    WR_TRY(product_in(p, "num_attention_heads", c->num_attention_heads, "attention_head_dim",
                      c->attention_head_dim, WR_CFG_MAX_WIDTH));
    WR_TRY(int_in(p, "ffn_dim", c->ffn_dim, 1, WR_CFG_MAX_FFN));
    WR_TRY(int_in(p, "num_layers", c->num_layers, 1, WR_CFG_MAX_LAYERS));
    WR_TRY(int_in(p, "in_channels", c->in_channels, 1, WR_CFG_MAX_CHANNELS));
    /* diffusers: out_channels = out_channels or in_channels (null and 0 follow in_channels) */
    const cJSON *oc = item(doc, "out_channels");
    if (cJSON_IsNull(oc) || c->out_channels == 0) c->out_channels = c->in_channels;
    WR_TRY(int_in(p, "out_channels", c->out_channels, 1, WR_CFG_MAX_CHANNELS));
    WR_TRY(int_in(p, "text_dim", c->text_dim, 1, WR_CFG_MAX_WIDTH));
    /* the sinusoid divides by freq_dim / 2 */
    WR_TRY(int_in(p, "freq_dim", c->freq_dim, 2, WR_CFG_MAX_WIDTH));
    if (is_null(doc, "patch_size") || c->patch_size.n != 3)
        return WR_FAIL(WR_ERR_CONFIG, "%s: field 'patch_size' is %s; needs 3 entries (t, h, w)", p,
                       shown(b, sizeof b, item(doc, "patch_size")));
    for (int i = 0; i < 3; i++)
        WR_TRY(int_in(p, "patch_size", c->patch_size.v[i], 1, WR_CFG_MAX_PATCH));
    /* diffusers' WanAttention always applies RMSNorm over all heads to q and k (qk_norm is passed
     * along and ignored; older diffusers honoured it): only the value that means that is safe */
    if (is_null(doc, "qk_norm") || strcmp(c->qk_norm, "rms_norm_across_heads") != 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'qk_norm' is %s; wanrun implements \"rms_norm_across_heads\" "
                       "(RMSNorm of q and k over all heads, as Wan2.1 ships)",
                       p, shown(b, sizeof b, item(doc, "qk_norm")));
    WR_TRY(epsilon(p, "eps", c->eps));
    /* the RoPE tables hold rope_max_seq_len positions per axis; a latent grid longer on an axis
     * is refused at the forward, as diffusers fails there */
    WR_TRY(int_in(p, "rope_max_seq_len", c->rope_max_seq_len, 1, WR_CFG_MAX_ROPE_LEN));
    /* image-to-video (Wan2.1 I2V / FLF2V): an image embedder and added K/V projections */
    const char *i2v = !is_null(doc, "image_dim") && item(doc, "image_dim") ? "image_dim"
                      : !is_null(doc, "added_kv_proj_dim") && item(doc, "added_kv_proj_dim")
                          ? "added_kv_proj_dim"
                          : NULL;
    if (i2v)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field '%s' is %s: an image-to-video transformer; wanrun runs "
                       "text-to-video (image_dim and added_kv_proj_dim null)",
                       p, i2v, shown(b, sizeof b, item(doc, i2v)));
    c->image_dim = c->added_kv_proj_dim = -1;
    c->pos_embed_seq_len = -1; /* used by the image embedder only */
    return WR_OK;
}

/* ---- text_encoder/config.json: transformers UMT5Config (UMT5EncoderModel) ---- */

static wr_status t5_check(wr_t5_config *c, const wr_json_doc *doc) {
    const char *p = doc->path;
    static const char *const no_null[] = {"relative_attention_num_buckets",
                                          "relative_attention_max_distance",
                                          "layer_norm_epsilon",
                                          "dropout_rate",
                                          "feed_forward_proj",
                                          "dense_act_fn",
                                          NULL};
    WR_TRY(refuse_nulls(doc, no_null));
    null_is_false(doc, "is_gated_act", &c->is_gated_act);
    if (strcmp(c->model_type, "umt5") != 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'model_type' is \"%s\"; wanrun runs the UMT5 encoder (\"umt5\": "
                       "a relative position bias in every layer), as Wan2.1 ships",
                       p, c->model_type);
    WR_TRY(int_in(p, "vocab_size", c->vocab_size, 1, WR_CFG_MAX_VOCAB));
    WR_TRY(int_in(p, "d_model", c->d_model, 1, WR_CFG_MAX_WIDTH));
    WR_TRY(int_in(p, "d_kv", c->d_kv, 1, WR_CFG_MAX_HEAD_DIM));
    WR_TRY(int_in(p, "num_heads", c->num_heads, 1, WR_CFG_MAX_HEADS));
    WR_TRY(product_in(p, "num_heads", c->num_heads, "d_kv", c->d_kv, WR_CFG_MAX_WIDTH));
    WR_TRY(int_in(p, "num_layers", c->num_layers, 1, WR_CFG_MAX_LAYERS));
    WR_TRY(int_in(p, "d_ff", c->d_ff, 1, WR_CFG_MAX_FFN));
    /* transformers' bidirectional buckets: half for each direction, half of those exact */
    const int64_t nb = c->relative_attention_num_buckets, md = c->relative_attention_max_distance;
    WR_TRY(int_in(p, "relative_attention_num_buckets", nb, 4, WR_CFG_MAX_BUCKETS));
    if (nb % 2 != 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'relative_attention_num_buckets' is %lld; wanrun supports an "
                       "even bucket count",
                       p, (long long)nb);
    if (md <= nb / 4 || md > INT32_MAX)
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: field 'relative_attention_max_distance' is %lld; must be larger than "
                       "relative_attention_num_buckets / 4 (%lld) and at most %d",
                       p, (long long)md, (long long)(nb / 4), INT32_MAX);
    WR_TRY(epsilon(p, "layer_norm_epsilon", c->layer_norm_epsilon));
    if (!(c->dropout_rate >= 0.0 && c->dropout_rate <= 1.0)) /* torch.nn.Dropout refuses it */
        return WR_FAIL(WR_ERR_CONFIG, "%s: field 'dropout_rate' is %g; must be in [0, 1]", p,
                       c->dropout_rate);
    if (strcmp(c->feed_forward_proj, "gated-gelu") != 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'feed_forward_proj' is \"%s\"; wanrun supports \"gated-gelu\" "
                       "(UMT5's gated GELU-tanh feed-forward)",
                       p, c->feed_forward_proj);
    /* transformers derives both from feed_forward_proj, and the file's values override that */
    if (!c->is_gated_act)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'is_gated_act' is false (or null); wanrun implements the gated "
                       "feed-forward (wi_0, wi_1) of \"gated-gelu\"",
                       p);
    static const char *const acts[] = {"gelu_new", "gelu_pytorch_tanh", NULL};
    if (!one_of(c->dense_act_fn, acts))
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'dense_act_fn' is \"%s\"; wanrun implements \"gelu_new\" (GELU, "
                       "tanh approximation; \"gelu_pytorch_tanh\" is the same function)",
                       p, c->dense_act_fn);
    if (c->is_decoder)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'is_decoder' is true (a causal decoder stack); wanrun runs the "
                       "encoder",
                       p);
    return WR_OK;
}

/* ---- vae/config.json: diffusers AutoencoderKLWan.__init__ (the decoder) ---- */

static wr_status stats_ok(const char *p, const char *field, const wr_json_double_array *a,
                          int64_t z, int is_std) {
    if (a->n != z)
        return WR_FAIL(WR_ERR_CONFIG, "%s: field '%s' has %d values; z_dim is %lld", p, field, a->n,
                       (long long)z);
    for (int i = 0; i < a->n; i++) {
        const double v = a->v[i];
        const int ok =
            is_std ? v > 0.0 && v <= WR_CFG_MAX_LATENT_STAT : fabs(v) <= WR_CFG_MAX_LATENT_STAT;
        if (!ok)
            return WR_FAIL(WR_ERR_CONFIG, "%s: field '%s'[%d] is %g; must be %s %g", p, field, i, v,
                           is_std ? "positive and at most" : "finite, of magnitude at most",
                           WR_CFG_MAX_LATENT_STAT);
    }
    return WR_OK;
}

static wr_status vae_check(wr_vae_config *c, const wr_json_doc *doc) {
    const char *p = doc->path;
    char b[64];
    static const char *const no_null[] = {"base_dim",
                                          "z_dim",
                                          "dim_mult",
                                          "num_res_blocks",
                                          "attn_scales",
                                          "temperal_downsample",
                                          "dropout",
                                          "latents_mean",
                                          "latents_std",
                                          "in_channels",
                                          "out_channels",
                                          "scale_factor_spatial",
                                          "scale_factor_temporal",
                                          NULL};
    WR_TRY(refuse_nulls(doc, no_null));
    /* the Wan2.2 VAE (TI2V-5B): residual blocks and a patchified video (models/vae22.h checks
     * its own fields when it loads); here what the pipeline sizes the latents by */
    const int64_t patch = is_null(doc, "patch_size") ? 0 : c->patch_size;
    if (c->is_residual != (patch != 0))
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'is_residual' is %s with patch_size %s; wanrun runs the Wan2.1 "
                       "VAE (false, null) and the Wan2.2 one (true, 2)",
                       p, c->is_residual ? "true" : "false",
                       item(doc, "patch_size") ? shown(b, sizeof b, item(doc, "patch_size"))
                                               : "null");
    if (c->is_residual) {
        if (patch != 2)
            return WR_FAIL(WR_ERR_UNSUPPORTED, "%s: field 'patch_size' is %lld; wanrun supports 2",
                           p, (long long)patch);
        WR_TRY(int_in(p, "z_dim", c->z_dim, 1, WR_CFG_MAX_CHANNELS));
        WR_TRY(int_in(p, "dim_mult (its length)", c->dim_mult.n, 1, WR_VAE_MAX_UP));
        WR_TRY(stats_ok(p, "latents_mean", &c->latents_mean, c->z_dim, 0));
        WR_TRY(stats_ok(p, "latents_std", &c->latents_std, c->z_dim, 1));
        const int64_t spatial = patch << (c->dim_mult.n - 1);
        if (c->scale_factor_spatial != spatial || c->scale_factor_temporal != 4)
            return WR_FAIL(WR_ERR_CONFIG,
                           "%s: fields 'scale_factor_spatial' %lld and 'scale_factor_temporal' "
                           "%lld; the Wan2.2 VAE's layers compress by %lld and 4",
                           p, (long long)c->scale_factor_spatial,
                           (long long)c->scale_factor_temporal, (long long)spatial);
        if (c->decoder_base_dim < 0 || is_null(doc, "decoder_base_dim"))
            c->decoder_base_dim = c->base_dim;
        return WR_OK;
    }
    if (c->decoder_base_dim < 0 || is_null(doc, "decoder_base_dim"))
        c->decoder_base_dim = c->base_dim; /* diffusers: None -> base_dim */
    WR_TRY(int_in(p, "base_dim", c->base_dim, 1, WR_CFG_MAX_CHANNELS));
    WR_TRY(int_in(p, "decoder_base_dim", c->decoder_base_dim, 1, WR_CFG_MAX_CHANNELS));
    WR_TRY(int_in(p, "z_dim", c->z_dim, 1, WR_CFG_MAX_CHANNELS));
    WR_TRY(int_in(p, "in_channels", c->in_channels, 1, WR_CFG_MAX_CHANNELS)); /* the encoder's */
    if (c->out_channels != 3)                                                 /* the video is RGB */
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'out_channels' is %lld; wanrun writes RGB "
                       "video (3)",
                       p, (long long)c->out_channels);
    if (c->num_res_blocks == 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED, "%s: field 'num_res_blocks' is 0; wanrun supports 1..%d",
                       p, WR_VAE_MAX_RES - 1);
    WR_TRY(int_in(p, "num_res_blocks", c->num_res_blocks, 1, WR_VAE_MAX_RES - 1));
    WR_TRY(int_in(p, "dim_mult (its length)", c->dim_mult.n, 1, WR_VAE_MAX_UP));
    for (int i = 0; i < c->dim_mult.n; i++) {
        WR_TRY(int_in(p, "dim_mult", c->dim_mult.v[i], 1, WR_CFG_MAX_CHANNELS));
        WR_TRY(product_in(p, "base_dim", c->base_dim, "dim_mult", c->dim_mult.v[i],
                          WR_CFG_MAX_CHANNELS));
        WR_TRY(product_in(p, "decoder_base_dim", c->decoder_base_dim, "dim_mult", c->dim_mult.v[i],
                          WR_CFG_MAX_CHANNELS));
    }
    if (c->attn_scales.n > 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'attn_scales' is not empty; the Wan2.1 VAE has no attention in "
                       "the up blocks and wanrun does not implement it",
                       p);
    /* diffusers reads temperal_downsample[::-1][i] for the first len(dim_mult) - 1 up blocks */
    if (c->temperal_downsample.n != c->dim_mult.n - 1)
        return WR_FAIL(c->temperal_downsample.n < c->dim_mult.n - 1 ? WR_ERR_CONFIG
                                                                    : WR_ERR_UNSUPPORTED,
                       "%s: field 'temperal_downsample' has %d entries; dim_mult has %d, so it "
                       "needs %d",
                       p, c->temperal_downsample.n, c->dim_mult.n, c->dim_mult.n - 1);
    WR_TRY(stats_ok(p, "latents_mean", &c->latents_mean, c->z_dim, 0));
    WR_TRY(stats_ok(p, "latents_std", &c->latents_std, c->z_dim, 1));
    if (!(c->dropout >= 0.0 && c->dropout <= 1.0)) /* eval: no effect; torch refuses others */
        return WR_FAIL(WR_ERR_CONFIG, "%s: field 'dropout' is %g; must be in [0, 1]", p,
                       c->dropout);
    /* WanPipeline sizes the latents by the scale factors; the decoder's layers decide what
     * comes out: they must agree (a mismatch decodes a video of another size) */
    int ntime = 0;
    for (int i = 0; i < c->temperal_downsample.n; i++) ntime += c->temperal_downsample.v[i] != 0;
    const int64_t spatial = (int64_t)1 << (c->dim_mult.n - 1), temporal = (int64_t)1 << ntime;
    if (c->scale_factor_spatial != spatial)
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: field 'scale_factor_spatial' is %s; the decoder's %d up blocks "
                       "upsample by %lld",
                       p, shown(b, sizeof b, item(doc, "scale_factor_spatial")), c->dim_mult.n - 1,
                       (long long)spatial);
    if (c->scale_factor_temporal != temporal)
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: field 'scale_factor_temporal' is %s; temperal_downsample has %d "
                       "temporal stages, which upsample by %lld",
                       p, shown(b, sizeof b, item(doc, "scale_factor_temporal")), ntime,
                       (long long)temporal);
    if (temporal != 4) /* the pipeline's frame arithmetic: (frames - 1) / 4 + 1 latent frames */
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'scale_factor_temporal' is %lld (temperal_downsample has %d "
                       "temporal stages); wanrun supports 4 (two), as Wan2.1 ships",
                       p, (long long)temporal, ntime);
    return WR_OK;
}

/* ---- scheduler/scheduler_config.json: UniPCMultistepScheduler / FlowMatchEuler ---- */

static const default_only unipc_defaults[] = {
    {"thresholding", DEF_FALSE, "dynamic thresholding"},
    {"use_karras_sigmas", DEF_FALSE, "Karras sigmas (they replace the flow sigmas)"},
    {"use_exponential_sigmas", DEF_FALSE, "exponential sigmas (they replace the flow sigmas)"},
    {"use_beta_sigmas", DEF_FALSE, "beta sigmas (they replace the flow sigmas)"},
    {"use_dynamic_shifting", DEF_FALSE, "dynamic shifting (WanPipeline passes no mu for it)"},
    {"shift_terminal", DEF_NULL, "terminal shift stretching"},
    {"disable_corrector", DEF_EMPTY, "disabled corrector steps"},
    {"solver_p", DEF_NULL, "external predictor"},
};

static const default_only euler_defaults[] = {
    {"use_dynamic_shifting", DEF_FALSE, "dynamic shifting (WanPipeline passes no mu for it)"},
    {"invert_sigmas", DEF_FALSE, "inverted sigmas"},
    {"stochastic_sampling", DEF_FALSE, "stochastic sampling"},
    {"shift_terminal", DEF_NULL, "terminal shift stretching"},
    {"use_karras_sigmas", DEF_FALSE, "Karras sigmas"},
    {"use_exponential_sigmas", DEF_FALSE, "exponential sigmas"},
    {"use_beta_sigmas", DEF_FALSE, "beta sigmas"},
};

static wr_status shift_ok(const char *p, const char *field, double v) {
    if (!(v > 0.0 && v <= WR_CFG_MAX_SHIFT))
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: field '%s' is %g; must be in (0, %g] (others give a degenerate or "
                       "diverging schedule)",
                       p, field, v, WR_CFG_MAX_SHIFT);
    return WR_OK;
}

static wr_status sched_check(wr_sched_config *c, const wr_json_doc *doc) {
    const char *p = doc->path;
    char b[64];
    static const char *const no_null[] = {"num_train_timesteps", "time_shift_type", NULL};
    WR_TRY(refuse_nulls(doc, no_null));
    WR_TRY(int_in(p, "num_train_timesteps", c->num_train_timesteps, 1, WR_CFG_MAX_TRAIN_T));
    if (strcmp(c->class_name, "FlowMatchEulerDiscreteScheduler") == 0) {
        WR_TRY(check_defaults(doc, euler_defaults, NFIELDS(euler_defaults),
                              "FlowMatchEulerDiscreteScheduler"));
        static const char *const euler_no_null[] = {"shift", NULL};
        WR_TRY(refuse_nulls(doc, euler_no_null));
        WR_TRY(shift_ok(p, "shift", c->shift));
        static const char *const tst[] = {"exponential", "linear", NULL}; /* diffusers checks */
        if (c->time_shift_type[0] && !one_of(c->time_shift_type, tst))
            return WR_FAIL(WR_ERR_CONFIG,
                           "%s: field 'time_shift_type' is \"%s\"; must be \"exponential\" or "
                           "\"linear\"",
                           p, c->time_shift_type);
        return WR_OK;
    }
    if (strcmp(c->class_name, "UniPCMultistepScheduler") != 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field '_class_name' is \"%s\"; wanrun supports "
                       "UniPCMultistepScheduler and FlowMatchEulerDiscreteScheduler",
                       p, c->class_name);
    WR_TRY(check_defaults(doc, unipc_defaults, NFIELDS(unipc_defaults), "UniPCMultistepScheduler"));
    static const char *const unipc_no_null[] = {
        "solver_order",     "prediction_type", "solver_type", "final_sigmas_type",
        "timestep_spacing", "flow_shift",      NULL};
    WR_TRY(refuse_nulls(doc, unipc_no_null));
    null_is_false(doc, "use_flow_sigmas", &c->use_flow_sigmas);
    null_is_false(doc, "predict_x0", &c->predict_x0);
    null_is_false(doc, "lower_order_final", &c->lower_order_final);
    if (is_null(doc, "beta_schedule") &&
        (!item(doc, "trained_betas") || is_null(doc, "trained_betas")))
        return WR_FAIL(WR_ERR_CONFIG, "%s: field 'beta_schedule' is null; it needs a value", p);
    if (!c->use_flow_sigmas)
        return WR_FAIL(
            WR_ERR_UNSUPPORTED,
            "%s: field 'use_flow_sigmas' is false (or null); wanrun implements the flow-matching "
            "UniPC of Wan2.1 (use_flow_sigmas true)",
            p);
    if (strcmp(c->prediction_type, "flow_prediction") != 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'prediction_type' is \"%s\"; wanrun implements "
                       "\"flow_prediction\" (the DiT predicts the flow velocity)",
                       p, c->prediction_type);
    if (!c->predict_x0)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'predict_x0' is false (or null); wanrun implements UniPC's data "
                       "prediction form (predict_x0 true)",
                       p);
    /* diffusers maps the DPM-Solver names to bh2 and refuses anything else */
    static const char *const as_bh2[] = {"bh2", "midpoint", "heun", "logrho", NULL};
    if (strcmp(c->solver_type, "bh1") == 0) /* measured: tests/golden/golden_model_config.py */
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: field 'solver_type' is \"bh1\": with flow sigmas ending at zero, "
                       "diffusers' last UniPC step is NaN (B(h) = h is -inf at sigma 0); use "
                       "\"bh2\"",
                       p);
    if (!one_of(c->solver_type, as_bh2))
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: field 'solver_type' is \"%s\"; diffusers knows bh1 "
                       "and bh2",
                       p, c->solver_type);
    strcpy(c->solver_type, "bh2");
    if (c->solver_order < 1)
        return WR_FAIL(WR_ERR_CONFIG, "%s: field 'solver_order' is %s; must be a positive integer",
                       p, shown(b, sizeof b, item(doc, "solver_order")));
    if (c->solver_order > 2) /* the order-3+ solves (torch.linalg.solve of R) are not written */
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'solver_order' is %lld; wanrun implements orders 1 and 2", p,
                       (long long)c->solver_order);
    if (!c->lower_order_final)
        return WR_FAIL(
            WR_ERR_UNSUPPORTED,
            "%s: field 'lower_order_final' is false (or null); wanrun implements true (the last "
            "step first order)",
            p);
    if (strcmp(c->final_sigmas_type, "zero") != 0)
        return WR_FAIL(strcmp(c->final_sigmas_type, "sigma_min") == 0 ? WR_ERR_UNSUPPORTED
                                                                      : WR_ERR_CONFIG,
                       "%s: field 'final_sigmas_type' is \"%s\"; wanrun implements \"zero\"", p,
                       c->final_sigmas_type);
    WR_TRY(shift_ok(p, "flow_shift", c->flow_shift));
    /* With flow sigmas the timesteps are sigma * num_train_timesteps whatever the spacing:
     * timestep_spacing and steps_offset have no effect (diffusers still refuses an unknown
     * spacing). The betas are computed and never used. */
    static const char *const spacing[] = {"linspace", "leading", "trailing", NULL};
    if (!one_of(c->timestep_spacing, spacing))
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: field 'timestep_spacing' is \"%s\"; diffusers knows linspace, leading "
                       "and trailing",
                       p, c->timestep_spacing);
    static const char *const betas[] = {"linear", "scaled_linear", "squaredcos_cap_v2", NULL};
    if (!one_of(c->beta_schedule, betas) &&
        !(item(doc, "trained_betas") && !is_null(doc, "trained_betas")))
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: field 'beta_schedule' is \"%s\"; diffusers knows linear, "
                       "scaled_linear and squaredcos_cap_v2",
                       p, c->beta_schedule);
    return WR_OK;
}

/* Loads path, reads the table into out, runs check (all errors name path). */
static wr_status read_config(void *out, const char *path, const wr_json_field *fields, int n,
                             wr_status (*check)(void *out, const wr_json_doc *doc)) {
    wr_json_doc doc;
    WR_TRY(wr_json_load(&doc, path));
    wr_status st = wr_json_read_fields(out, &doc, doc.root, fields, n);
    if (st == WR_OK) st = check(out, &doc);
    wr_json_free(&doc);
    return st;
}

static wr_status dit_check_v(void *c, const wr_json_doc *d) {
    return dit_check(c, d);
}
static wr_status t5_check_v(void *c, const wr_json_doc *d) {
    return t5_check(c, d);
}
static wr_status vae_check_v(void *c, const wr_json_doc *d) {
    return vae_check(c, d);
}
static wr_status sched_check_v(void *c, const wr_json_doc *d) {
    return sched_check(c, d);
}

wr_status wr_dit_config_read(wr_dit_config *out, const char *path) {
    wr_dit_config_default(out);
    return read_config(out, path, dit_fields, NFIELDS(dit_fields), dit_check_v);
}

wr_status wr_t5_config_read(wr_t5_config *out, const char *path) {
    wr_t5_config_default(out);
    return read_config(out, path, t5_fields, NFIELDS(t5_fields), t5_check_v);
}

wr_status wr_vae_config_read(wr_vae_config *out, const char *path) {
    wr_vae_config_default(out);
    return read_config(out, path, vae_fields, NFIELDS(vae_fields), vae_check_v);
}

wr_status wr_sched_config_read(wr_sched_config *out, const char *path) {
    wr_sched_config_default(out);
    return read_config(out, path, sched_fields, NFIELDS(sched_fields), sched_check_v);
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
    {"UMT5EncoderModel", NULL},
    {"AutoencoderKLWan", NULL},
    {"UniPCMultistepScheduler", "FlowMatchEulerDiscreteScheduler"},
    {"T5TokenizerFast", "T5Tokenizer"},
    {"WanTransformer3DModel", NULL},
};

/* An entry that means "no such component": null or [null, null]. */
static int absent_entry(const cJSON *e) {
    return e == NULL || cJSON_IsNull(e) ||
           (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
            cJSON_IsNull(cJSON_GetArrayItem(e, 0)) && cJSON_IsNull(cJSON_GetArrayItem(e, 1)));
}

/* One component entry [library, class] of model_index.json. */
static wr_status index_component(wr_model_dir *md, const char *path, int c, const cJSON *e) {
    const cJSON *k = cJSON_IsArray(e) ? cJSON_GetArrayItem(e, 1) : NULL;
    if (cJSON_GetArraySize(e) != 2 || !cJSON_IsString(k))
        return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' must be [library, class]", path,
                       comp_names[c]);
    snprintf(md->class_name[c], sizeof md->class_name[c], "%s", k->valuestring);
    if (strcmp(k->valuestring, comp_classes[c][0]) == 0 ||
        (comp_classes[c][1] != NULL && strcmp(k->valuestring, comp_classes[c][1]) == 0))
        return WR_OK;
    if (c == WR_COMP_TEXT_ENCODER && strcmp(k->valuestring, "T5EncoderModel") == 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: component 'text_encoder' has class \"T5EncoderModel\" (a relative "
                       "position bias in the first layer only); wanrun runs \"UMT5EncoderModel\"",
                       path);
    return WR_FAIL(
        WR_ERR_UNSUPPORTED, "%s: component '%s' has class \"%s\"; wanrun supports \"%s\"%s%s%s",
        path, comp_names[c], k->valuestring, comp_classes[c][0], comp_classes[c][1] ? " or \"" : "",
        comp_classes[c][1] ? comp_classes[c][1] : "", comp_classes[c][1] ? "\"" : "");
}

/* model_index.json: WanPipeline's components and its registered config (boundary_ratio,
 * expand_timesteps: Wan2.2); every other entry is refused, so that a component wanrun would
 * leave out is never silently missing from the run. Keys starting with '_' are metadata. */
static wr_status read_index(wr_model_dir *md, const char *path) {
    wr_json_doc doc;
    WR_TRY(wr_json_load(&doc, path));
    wr_status st = WR_OK;
    char b[64];
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(doc.root, "_class_name");
    if (!cJSON_IsString(cls)) {
        st = WR_FAIL(WR_ERR_FORMAT,
                     "%s: field '_class_name' must be a string (\"WanPipeline\"), "
                     "got %s",
                     path, shown(b, sizeof b, cls));
        goto done;
    }
    snprintf(md->pipeline_class, sizeof md->pipeline_class, "%s", cls->valuestring);
    if (strcmp(md->pipeline_class, "WanPipeline") != 0) {
        st = WR_FAIL(WR_ERR_UNSUPPORTED,
                     "%s: _class_name is \"%s\"; wanrun loads \"WanPipeline\" "
                     "(Wan2.1 text-to-video) directories",
                     path, md->pipeline_class);
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, doc.root) {
        const char *key = e->string;
        if (key == NULL || key[0] == '_') continue;
        int c = 0;
        while (c < WR_COMP_COUNT && strcmp(key, comp_names[c]) != 0) c++;
        if (c < WR_COMP_COUNT) {
            if (absent_entry(e)) continue;
            WR_TRY_GOTO(st, index_component(md, path, c, e), done);
        } else if (strcmp(key, "boundary_ratio") == 0) {
            if (cJSON_IsNull(e)) continue;
            if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || e->valuedouble < 0.0 ||
                e->valuedouble > 1.0) {
                st = WR_FAIL(cJSON_IsNumber(e) ? WR_ERR_CONFIG : WR_ERR_FORMAT,
                             "%s: field 'boundary_ratio' is %s; it must be null or a number in "
                             "[0, 1] (the fraction of num_train_timesteps where the low-noise "
                             "expert takes over; 0.875 for Wan2.2 T2V-A14B)",
                             path, shown(b, sizeof b, e));
                goto done;
            }
            md->boundary_ratio = e->valuedouble;
        } else if (strcmp(key, "expand_timesteps") == 0) {
            if (cJSON_IsNull(e) || cJSON_IsFalse(e)) continue;
            if (!cJSON_IsTrue(e)) {
                st = WR_FAIL(WR_ERR_FORMAT, "%s: field 'expand_timesteps' is %s; must be a boolean",
                             path, shown(b, sizeof b, e));
                goto done;
            }
            md->expand_timesteps = 1; /* Wan2.2 TI2V: a timestep per token */
        } else {
            if (absent_entry(e)) continue;
            st = WR_FAIL(WR_ERR_UNSUPPORTED,
                         "%s: field '%s' is %s: not a component of a Wan2.1 text-to-video "
                         "WanPipeline, and wanrun does not know it",
                         path, key, shown(b, sizeof b, e));
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
    /* Wan2.2 A14B: the low-noise expert denoises the same latent with the same text, so its
     * shapes are the first one's; a boundary needs it (diffusers would call None) */
    if (md->has[WR_COMP_TRANSFORMER_2]) {
        const wr_dit_config *a = &md->dit, *b = &md->dit2;
        int same = a->in_channels == b->in_channels && a->out_channels == b->out_channels &&
                   a->text_dim == b->text_dim && a->patch_size.n == b->patch_size.n;
        for (int i = 0; same && i < a->patch_size.n; i++)
            same = a->patch_size.v[i] == b->patch_size.v[i];
        if (md->has[WR_COMP_TRANSFORMER] && !same)
            return WR_FAIL(WR_ERR_CONFIG,
                           "%s: transformer_2/config.json (in_channels %lld, out_channels %lld, "
                           "text_dim %lld, patch_size [%lld, ...]) does not match "
                           "transformer/config.json (%lld, %lld, %lld, [%lld, ...]): the two "
                           "experts denoise the same latents with the same text",
                           r, (long long)b->in_channels, (long long)b->out_channels,
                           (long long)b->text_dim, (long long)b->patch_size.v[0],
                           (long long)a->in_channels, (long long)a->out_channels,
                           (long long)a->text_dim, (long long)a->patch_size.v[0]);
    }
    /* TI2V: the DiT denoises the 2.2 VAE's latents with a timestep per token; either alone is
     * another model (diffusers would run it, wanrun was not built for it) */
    if (md->has[WR_COMP_VAE] && md->vae.is_residual != md->expand_timesteps)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: model_index.json's expand_timesteps is %s but vae/config.json's "
                       "is_residual is %s; wanrun runs Wan2.1 (false, false) and Wan2.2 TI2V "
                       "(true, true)",
                       r, md->expand_timesteps ? "true" : "false",
                       md->vae.is_residual ? "true" : "false");
    if (md->boundary_ratio >= 0.0 && !md->has[WR_COMP_TRANSFORMER_2])
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s/model_index.json: boundary_ratio is %g but there is no transformer_2: "
                       "the steps below the boundary would have no expert; set it to null or "
                       "add the low-noise expert",
                       r, md->boundary_ratio);
    /* diffusers builds the index's scheduler class from scheduler_config.json's fields */
    if (md->has[WR_COMP_SCHEDULER] && md->class_name[WR_COMP_SCHEDULER][0] &&
        strcmp(md->class_name[WR_COMP_SCHEDULER], md->sched.class_name) != 0)
        return WR_FAIL(WR_ERR_CONFIG,
                       "%s: model_index.json names the scheduler \"%s\", "
                       "scheduler/scheduler_config.json's _class_name is \"%s\"",
                       r, md->class_name[WR_COMP_SCHEDULER], md->sched.class_name);
    return WR_OK;
}

wr_status wr_model_dir_open(wr_model_dir *out, const char *path) {
    memset(out, 0, sizeof *out);
    out->boundary_ratio = -1.0;
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
        case WR_COMP_TRANSFORMER_2:
            snprintf(p, sizeof p, "%s/config.json", d);
            st = wr_dit_config_read(&out->dit2, p);
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
    if (c != WR_COMP_TRANSFORMER && c != WR_COMP_TRANSFORMER_2 && c != WR_COMP_TEXT_ENCODER &&
        c != WR_COMP_VAE)
        return WR_FAIL(WR_ERR_INVALID_ARG, "component '%s' has no weights", wr_component_name(c));
    if (!md->has[c])
        return WR_FAIL(WR_ERR_NOT_FOUND, "%s: the model directory has no %s/ component", md->root,
                       wr_component_name(c));
    char d[WR_PATH_CAP + 64];
    snprintf(d, sizeof d, "%s/%s", md->root, wr_component_name(c));
    return wr_st_set_open(out, d);
}
