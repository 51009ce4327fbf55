/*
 * modeldir.h — a diffusers Wan2.1 model directory: model_index.json and each component's
 * config.json read into typed structs (fields: reference/wan21-spec.md §1), with consistency
 * checks across components. Weights are not opened here: wr_model_dir_weights() opens a
 * component's safetensors set lazily when a model needs it.
 *
 * Wan2.2 T2V-A14B adds DIR/transformer_2/ (the low-noise expert) and model_index.json's
 * boundary_ratio; TI2V-5B sets expand_timesteps and has the residual VAE (models/vae22.h).
 *
 * Layout:  DIR/model_index.json, DIR/transformer/config.json, DIR/text_encoder/config.json,
 *          DIR/vae/config.json, DIR/scheduler/scheduler_config.json, DIR/tokenizer/spiece.model
 *          (or, without it, DIR/tokenizer/tokenizer.json)
 * A component listed in model_index.json whose folder or config is missing is an error naming
 * the path. A directory without model_index.json can still be opened when it holds the
 * component folders (e.g. a hand-assembled directory); the index is then synthesised.
 *
 * Every field of the diffusers / transformers constructor (WanTransformer3DModel, UMT5Config,
 * AutoencoderKLWan, UniPCMultistepScheduler, FlowMatchEulerDiscreteScheduler, WanPipeline's
 * model_index.json) is either honoured as the reference does, or has no effect there for this
 * model (dropout in eval, a decoder-only field, a setting another one switches off; accepted),
 * or is refused: WR_ERR_UNSUPPORTED for a value the reference computes and wanrun does not
 * implement (e.g. solver_order 3, expand_timesteps), WR_ERR_CONFIG for a value the reference
 * refuses too or that cannot give a sane run (a size outside the bounds below, eps <= 0,
 * scale factors that do not match the layers, a non-finite latent statistic). Each error
 * names the file, the field and the value. The bounds keep every size product of the models
 * far inside int64 for any request the CLI accepts; they are 10-100x the largest Wan2.1 model.
 */
#ifndef WR_CORE_MODELDIR_H
#define WR_CORE_MODELDIR_H

#include <stdint.h>

#include "json.h"
#include "safetensors.h"
#include "status.h"

#define WR_PATH_CAP 4096

/* Bounds of the config sizes (WR_ERR_CONFIG outside; Wan2.1 14B in brackets). */
#define WR_CFG_MAX_LAYERS   1024     /* num_layers of the DiT and the text encoder [40, 24] */
#define WR_CFG_MAX_HEADS    1024     /* num_attention_heads, num_heads [40, 64] */
#define WR_CFG_MAX_HEAD_DIM 1024     /* attention_head_dim, d_kv [128, 64] */
#define WR_CFG_MAX_WIDTH    65536    /* D = heads x head dim, d_model, text_dim, freq_dim [5120] */
#define WR_CFG_MAX_FFN      1048576  /* ffn_dim, d_ff [13824, 10240] */
#define WR_CFG_MAX_CHANNELS 4096     /* in/out_channels, z_dim, VAE widths base_dim x dim_mult */
#define WR_CFG_MAX_PATCH    64       /* each patch_size entry [1, 2, 2] */
#define WR_CFG_MAX_VOCAB    16777216 /* vocab_size [256384] */
#define WR_CFG_MAX_BUCKETS  65536    /* relative_attention_num_buckets [32] */
#define WR_CFG_MAX_ROPE_LEN 1048576  /* rope_max_seq_len [1024] */
#define WR_CFG_MAX_TRAIN_T  1000000  /* num_train_timesteps [1000] */
#define WR_CFG_MAX_SHIFT                                                                           \
    1000.0                         /* flow_shift / shift [3, 5]: larger ones round every           \
                                    * sigma of a 1000-step float32 schedule to 1 */
#define WR_CFG_MAX_LATENT_STAT 1e6 /* |latents_mean|, latents_std [< 4] */
#define WR_VAE_MAX_UP          8   /* len(dim_mult) [4] */
#define WR_VAE_MAX_RES         8   /* resnets per up block, num_res_blocks + 1 [3] */

/* transformer/config.json (diffusers WanTransformer3DModel) */
typedef struct wr_dit_config {
    wr_json_int_array patch_size; /* [t, h, w] = [1, 2, 2] */
    int64_t num_attention_heads;  /* NH */
    int64_t attention_head_dim;   /* HD; D = NH * HD */
    int64_t in_channels, out_channels;
    int64_t text_dim;
    int64_t freq_dim;
    int64_t ffn_dim; /* FF */
    int64_t num_layers;
    int cross_attn_norm;
    char qk_norm[WR_JSON_STR_CAP];
    double eps;
    int64_t rope_max_seq_len;
    int64_t image_dim, added_kv_proj_dim, pos_embed_seq_len; /* -1 when null (T2V) */
} wr_dit_config;

/* text_encoder/config.json (transformers UMT5EncoderModel) */
typedef struct wr_t5_config {
    int64_t vocab_size, d_model, d_kv, num_heads, num_layers, d_ff;
    int64_t relative_attention_num_buckets, relative_attention_max_distance;
    int64_t pad_token_id, eos_token_id;
    double layer_norm_epsilon;
    double dropout_rate; /* eval: no effect; must be a probability */
    char feed_forward_proj[WR_JSON_STR_CAP];
    char dense_act_fn[WR_JSON_STR_CAP];
    char model_type[WR_JSON_STR_CAP];
    int is_gated_act;
    int is_decoder; /* true: a causal decoder stack (refused) */
} wr_t5_config;

/* vae/config.json (diffusers AutoencoderKLWan) */
typedef struct wr_vae_config {
    int64_t base_dim, decoder_base_dim, z_dim, num_res_blocks;
    wr_json_int_array dim_mult;
    wr_json_double_array attn_scales;
    wr_json_int_array temperal_downsample; /* sic: the diffusers field name */
    wr_json_double_array latents_mean, latents_std;
    int is_residual;    /* the Wan2.2 VAE (models/vae22.h) */
    int64_t patch_size; /* 2 with is_residual, else 0 (null) */
    int64_t in_channels, out_channels, scale_factor_temporal, scale_factor_spatial;
    double dropout;
} wr_vae_config;

/* scheduler/scheduler_config.json (UniPCMultistepScheduler or FlowMatchEulerDiscreteScheduler) */
typedef struct wr_sched_config {
    char class_name[WR_JSON_STR_CAP];
    int64_t num_train_timesteps, solver_order, steps_offset;
    char solver_type[WR_JSON_STR_CAP], prediction_type[WR_JSON_STR_CAP];
    char final_sigmas_type[WR_JSON_STR_CAP], timestep_spacing[WR_JSON_STR_CAP];
    int use_flow_sigmas, lower_order_final, predict_x0;
    double flow_shift; /* UniPC */
    double shift;      /* FlowMatchEuler */
    char beta_schedule[WR_JSON_STR_CAP], time_shift_type[WR_JSON_STR_CAP];
} wr_sched_config;

typedef enum wr_component {
    WR_COMP_TRANSFORMER = 0,
    WR_COMP_TEXT_ENCODER,
    WR_COMP_VAE,
    WR_COMP_SCHEDULER,
    WR_COMP_TOKENIZER,
    WR_COMP_TRANSFORMER_2, /* Wan2.2 A14B: the low-noise expert (model_index.json) */
    WR_COMP_COUNT
} wr_component;

typedef struct wr_model_dir {
    char root[WR_PATH_CAP];
    int has[WR_COMP_COUNT];                          /* folder present and config read */
    char class_name[WR_COMP_COUNT][WR_JSON_STR_CAP]; /* from model_index.json */
    char pipeline_class[WR_JSON_STR_CAP];
    wr_dit_config dit;
    wr_dit_config dit2; /* transformer_2/config.json (has[WR_COMP_TRANSFORMER_2]) */
    /* Wan2.2 A14B (model_index.json): the high-noise expert (transformer/) denoises the steps
     * whose timestep t >= boundary_ratio x num_train_timesteps, the low-noise one
     * (transformer_2/) the others; -1 when null (one expert: Wan2.1) */
    double boundary_ratio;
    int expand_timesteps; /* Wan2.2 TI2V (model_index.json): a timestep per token */
    wr_t5_config t5;
    wr_vae_config vae;
    wr_sched_config sched;
} wr_model_dir;

/* The folder name of a component ("transformer", "text_encoder", ...). */
const char *wr_component_name(wr_component c);

/* Defaults of the 1.3B model / diffusers class defaults, used for absent optional fields. */
void wr_dit_config_default(wr_dit_config *c);
void wr_t5_config_default(wr_t5_config *c);
void wr_vae_config_default(wr_vae_config *c);
void wr_sched_config_default(wr_sched_config *c);

/* Reads one component's config file into its struct: every field checked as the header says
 * (WR_ERR_NOT_FOUND for a missing file or required field, WR_ERR_FORMAT for malformed JSON or a
 * wrong type, WR_ERR_CONFIG, WR_ERR_UNSUPPORTED), each error naming path, field and value. */
wr_status wr_dit_config_read(wr_dit_config *out, const char *path);
wr_status wr_t5_config_read(wr_t5_config *out, const char *path);
wr_status wr_vae_config_read(wr_vae_config *out, const char *path);
wr_status wr_sched_config_read(wr_sched_config *out, const char *path);

/*
 * Opens a model directory: model_index.json (when present) and every component it lists.
 * Components may be absent (a text-encoder-only directory): callers check md->has[] for what
 * they need (the pipeline, the planner). Failures: WR_ERR_NOT_FOUND (directory,
 * model_index.json component folder or config missing; the path named), WR_ERR_FORMAT
 * (malformed JSON, wrong field type), WR_ERR_UNSUPPORTED (another pipeline or component class,
 * expand_timesteps true (Wan2.2 TI2V); a component wanrun does not know; a config value as
 * above), WR_ERR_CONFIG (a config value as above, or components that disagree: DiT
 * in_channels vs VAE z_dim, DiT text_dim vs encoder d_model, the two experts' shapes, a
 * boundary_ratio without transformer_2 or outside [0, 1], the index's scheduler class vs
 * scheduler_config.json's, ...).
 */
wr_status wr_model_dir_open(wr_model_dir *out, const char *path);

/* Opens the safetensors set of a component (its folder). The caller owns *out. */
wr_status wr_model_dir_weights(wr_st_set **out, const wr_model_dir *md, wr_component c);

/* Writes DIR/<component> into buf. */
void wr_model_dir_path(char *buf, size_t cap, const wr_model_dir *md, wr_component c);

#endif /* WR_CORE_MODELDIR_H */
