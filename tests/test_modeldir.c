/*
 * test_modeldir.c — diffusers model directories: configs in the real files' format
 * (reference/wan21-spec.md §1) read into typed structs, and every broken variant reported by
 * path, field or the disagreeing components.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/modeldir.h"
#include "harness.h"

static const char *MODEL_INDEX =
    "{\"_class_name\": \"WanPipeline\", \"_diffusers_version\": \"0.33.0.dev0\",\n"
    " \"scheduler\": [\"diffusers\", \"UniPCMultistepScheduler\"],\n"
    " \"text_encoder\": [\"transformers\", \"UMT5EncoderModel\"],\n"
    " \"tokenizer\": [\"transformers\", \"T5TokenizerFast\"],\n"
    " \"transformer\": [\"diffusers\", \"WanTransformer3DModel\"],\n"
    " \"vae\": [\"diffusers\", \"AutoencoderKLWan\"],\n"
    " \"transformer_2\": [null, null], \"boundary_ratio\": null, \"expand_timesteps\": false}\n";

/* The 1.3B transformer config (spec §1.3) */
static const char *DIT_CONFIG =
    "{\"_class_name\": \"WanTransformer3DModel\", \"_diffusers_version\": \"0.33.0.dev0\",\n"
    " \"added_kv_proj_dim\": null, \"attention_head_dim\": 128, \"cross_attn_norm\": true,\n"
    " \"eps\": 1e-06, \"ffn_dim\": 8960, \"freq_dim\": 256, \"image_dim\": null,\n"
    " \"in_channels\": 16, \"num_attention_heads\": 12, \"num_layers\": 30,\n"
    " \"out_channels\": 16, \"patch_size\": [1, 2, 2], \"qk_norm\": \"rms_norm_across_heads\",\n"
    " \"rope_max_seq_len\": 1024, \"text_dim\": 4096}\n";

static const char *T5_CONFIG =
    "{\"architectures\": [\"UMT5EncoderModel\"], \"d_ff\": 10240, \"d_kv\": 64, \"d_model\": "
    "4096,\n"
    " \"decoder_start_token_id\": 0, \"dense_act_fn\": \"gelu_new\", \"dropout_rate\": 0.1,\n"
    " \"eos_token_id\": 1, \"feed_forward_proj\": \"gated-gelu\", \"is_gated_act\": true,\n"
    " \"layer_norm_epsilon\": 1e-06, \"model_type\": \"umt5\", \"num_decoder_layers\": 24,\n"
    " \"num_heads\": 64, \"num_layers\": 24, \"pad_token_id\": 0,\n"
    " \"relative_attention_max_distance\": 128, \"relative_attention_num_buckets\": 32,\n"
    " \"scalable_attention\": true, \"tie_word_embeddings\": false, \"torch_dtype\": \"float32\",\n"
    " \"vocab_size\": 256384}\n";

static const char *VAE_CONFIG =
    "{\"_class_name\": \"AutoencoderKLWan\", \"attn_scales\": [], \"base_dim\": 96,\n"
    " \"dim_mult\": [1, 2, 4, 4], \"dropout\": 0.0, \"num_res_blocks\": 2,\n"
    " \"temperal_downsample\": [false, true, true], \"z_dim\": %d,\n"
    " \"latents_mean\": [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,\n"
    "   0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921],\n"
    " \"latents_std\": [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,\n"
    "   3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]}\n";

static const char *SCHED_CONFIG =
    "{\"_class_name\": \"UniPCMultistepScheduler\", \"num_train_timesteps\": 1000,\n"
    " \"solver_order\": 2, \"solver_type\": \"bh2\", \"prediction_type\": \"flow_prediction\",\n"
    " \"predict_x0\": true, \"use_flow_sigmas\": true, \"flow_shift\": 3.0,\n"
    " \"lower_order_final\": true, \"disable_corrector\": [], \"final_sigmas_type\": \"zero\",\n"
    " \"timestep_spacing\": \"linspace\", \"steps_offset\": 0, \"thresholding\": false,\n"
    " \"use_karras_sigmas\": false, \"beta_start\": 0.0001, \"trained_betas\": null}\n";

static char g_root[4200];

static void put(const char *rel, const char *text) {
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", g_root, rel);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    mkdir(p, 0755);
    *slash = '/';
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void make_model(int z_dim) {
    static int n;
    snprintf(g_root, sizeof g_root, "%s/model%d", wr_test_tmpdir(), n++);
    mkdir(g_root, 0755);
    char vae[2048];
    snprintf(vae, sizeof vae, VAE_CONFIG, z_dim);
    put("model_index.json", MODEL_INDEX);
    put("transformer/config.json", DIT_CONFIG);
    put("text_encoder/config.json", T5_CONFIG);
    put("vae/config.json", vae);
    put("scheduler/scheduler_config.json", SCHED_CONFIG);
    put("tokenizer/spiece.model", "not a real model; only its presence is checked here");
}

static void rm_rf(const char *p) {
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    ck_assert_int_eq(system(cmd), 0);
}

static wr_status open_expect(wr_model_dir *md, wr_status want, const char *needle) {
    wr_status s = wr_model_dir_open(md, g_root);
    ck_assert_msg(s == want, "got %s (%s), want %s", wr_status_name(s), wr_error_detail(),
                  wr_status_name(want));
    if (needle)
        ck_assert_msg(strstr(wr_error_detail(), needle) != NULL, "detail '%s' lacks '%s'",
                      wr_error_detail(), needle);
    return s;
}

START_TEST(test_valid) {
    make_model(16);
    wr_model_dir *md = calloc(1, sizeof *md);
    open_expect(md, WR_OK, NULL);
    ck_assert(md->has[WR_COMP_TRANSFORMER] && md->has[WR_COMP_TEXT_ENCODER] &&
              md->has[WR_COMP_VAE] && md->has[WR_COMP_SCHEDULER] && md->has[WR_COMP_TOKENIZER]);
    ck_assert_int_eq(md->dit.num_layers, 30);
    ck_assert_int_eq(md->dit.num_attention_heads * md->dit.attention_head_dim, 1536);
    ck_assert_int_eq(md->dit.ffn_dim, 8960);
    ck_assert_int_eq(md->dit.patch_size.v[1], 2);
    ck_assert_int_eq(md->dit.image_dim, -1);
    ck_assert(md->dit.eps == 1e-6);
    ck_assert_int_eq(md->t5.vocab_size, 256384);
    ck_assert_int_eq(md->t5.d_ff, 10240);
    ck_assert_str_eq(md->t5.feed_forward_proj, "gated-gelu");
    ck_assert_int_eq(md->vae.decoder_base_dim, 96); /* absent: follows base_dim */
    ck_assert_int_eq(md->vae.temperal_downsample.v[0], 0);
    ck_assert_int_eq(md->vae.temperal_downsample.v[2], 1);
    ck_assert(md->vae.latents_std.v[15] == 1.9160);
    ck_assert_str_eq(md->sched.class_name, "UniPCMultistepScheduler");
    ck_assert(md->sched.flow_shift == 3.0);
    ck_assert_str_eq(md->class_name[WR_COMP_TOKENIZER], "T5TokenizerFast");
    /* no weights yet: the component is named */
    wr_st_set *s = NULL;
    ck_assert_int_eq(wr_model_dir_weights(&s, md, WR_COMP_TRANSFORMER), WR_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "transformer"));
    /* with a weights file the set opens */
    char p[4400];
    snprintf(p, sizeof p, "%s/transformer/diffusion_pytorch_model.safetensors", g_root);
    wr_st_writer *w = NULL;
    float v[2] = {1, 2};
    const int64_t sh[1] = {2};
    wr_st_writer_init(&w);
    wr_st_writer_add(w, "proj_out.bias", WR_DTYPE_F32, 1, sh, v);
    ck_assert_int_eq(wr_st_writer_write(w, p), WR_OK);
    wr_st_writer_free(w);
    ck_assert_int_eq(wr_model_dir_weights(&s, md, WR_COMP_TRANSFORMER), WR_OK);
    ck_assert_ptr_nonnull(wr_st_set_find(s, "proj_out.bias"));
    wr_st_set_close(s);
    ck_assert_int_eq(wr_model_dir_weights(&s, md, WR_COMP_SCHEDULER), WR_ERR_INVALID_ARG);
    rm_rf(g_root);
    free(md);
}
END_TEST

START_TEST(test_broken) {
    wr_model_dir *md = calloc(1, sizeof *md);
    char p[4400];

    make_model(16); /* a component folder listed in the index is missing */
    snprintf(p, sizeof p, "%s/vae", g_root);
    rm_rf(p);
    open_expect(md, WR_ERR_NOT_FOUND, "/vae");
    rm_rf(g_root);

    make_model(16); /* a config file is missing */
    snprintf(p, sizeof p, "%s/text_encoder/config.json", g_root);
    unlink(p);
    open_expect(md, WR_ERR_NOT_FOUND, "text_encoder/config.json");
    rm_rf(g_root);

    make_model(16); /* a field of the wrong type */
    put("transformer/config.json", "{\"num_attention_heads\": 12, \"attention_head_dim\": 128, "
                                   "\"ffn_dim\": 8960, \"num_layers\": \"30\"}");
    open_expect(md, WR_ERR_FORMAT,
                "transformer/config.json: field 'num_layers' must be an "
                "integer, got a string");
    rm_rf(g_root);

    make_model(16); /* a required field missing */
    put("transformer/config.json", "{\"num_attention_heads\": 12, \"ffn_dim\": 8960, "
                                   "\"num_layers\": 30}");
    open_expect(md, WR_ERR_NOT_FOUND, "missing required field 'attention_head_dim'");
    rm_rf(g_root);

    make_model(8); /* components that disagree (and a latents_mean of the wrong length) */
    open_expect(md, WR_ERR_CONFIG, "latents_mean");
    rm_rf(g_root);

    make_model(16);
    put("transformer/config.json", "{\"num_attention_heads\": 12, \"attention_head_dim\": 128, "
                                   "\"ffn_dim\": 8960, \"num_layers\": 30, \"in_channels\": 36}");
    open_expect(md, WR_ERR_CONFIG, "in_channels (36) != vae z_dim (16)");
    rm_rf(g_root);

    make_model(16); /* not a Wan2.1 T2V directory */
    put("model_index.json", "{\"_class_name\": \"StableDiffusionPipeline\"}");
    open_expect(md, WR_ERR_UNSUPPORTED, "WanPipeline");
    rm_rf(g_root);

    make_model(16);
    put("scheduler/scheduler_config.json", "{\"_class_name\": \"DDIMScheduler\"}");
    open_expect(md, WR_ERR_UNSUPPORTED, "DDIMScheduler");
    rm_rf(g_root);

    make_model(16); /* the first Hub upload's Euler scheduler is accepted */
    put("scheduler/scheduler_config.json", "{\"_class_name\": \"FlowMatchEulerDiscreteScheduler\","
                                           " \"num_train_timesteps\": 1000, \"shift\": 5.0}");
    open_expect(md, WR_ERR_CONFIG, "model_index.json names the scheduler"); /* index says UniPC */
    char idx[2048];
    snprintf(idx, sizeof idx, "%s", MODEL_INDEX);
    char *u = strstr(idx, "UniPCMultistepScheduler");
    memmove(u + strlen("FlowMatchEulerDiscreteScheduler"), u + strlen("UniPCMultistepScheduler"),
            strlen(u + strlen("UniPCMultistepScheduler")) + 1);
    memcpy(u, "FlowMatchEulerDiscreteScheduler", strlen("FlowMatchEulerDiscreteScheduler"));
    put("model_index.json", idx);
    open_expect(md, WR_OK, NULL);
    ck_assert(md->sched.shift == 5.0);
    rm_rf(g_root);

    make_model(16); /* malformed JSON names the file and the line */
    put("vae/config.json", "{\n\"z_dim\": 16,\n\"base_dim\": ,\n}");
    open_expect(md, WR_ERR_FORMAT, "vae/config.json: invalid JSON (syntax error on line 3)");
    rm_rf(g_root);

    make_model(16); /* tokenizer listed but spiece.model missing */
    snprintf(p, sizeof p, "%s/tokenizer/spiece.model", g_root);
    unlink(p);
    open_expect(md, WR_ERR_NOT_FOUND, "tokenizer/spiece.model: tokenizer model not found, nor");
    ck_assert_msg(strstr(wr_error_detail(), "tokenizer/tokenizer.json"), "%s", wr_error_detail());
    /* a transformers 5.x save_pretrained folder: tokenizer.json instead */
    put("tokenizer/tokenizer.json", "{}");
    open_expect(md, WR_OK, NULL);
    ck_assert(md->has[WR_COMP_TOKENIZER]);
    rm_rf(g_root);

    snprintf(g_root, sizeof g_root, "%s/does-not-exist", wr_test_tmpdir());
    open_expect(md, WR_ERR_NOT_FOUND, "does-not-exist");
    free(md);
}
END_TEST

START_TEST(test_no_index) {
    make_model(16);
    char p[4400];
    snprintf(p, sizeof p, "%s/model_index.json", g_root);
    unlink(p);
    wr_model_dir *md = calloc(1, sizeof *md);
    open_expect(md, WR_OK, NULL);
    ck_assert(md->has[WR_COMP_TRANSFORMER] && md->has[WR_COMP_VAE]);
    rm_rf(g_root);
    mkdir(g_root, 0755); /* an empty folder is not a model */
    open_expect(md, WR_ERR_NOT_FOUND, "not a model directory");
    rm_rf(g_root);
    free(md);
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("modeldir");
    TCase *tc = tcase_create("configs");
    tcase_add_test(tc, test_valid);
    tcase_add_test(tc, test_broken);
    tcase_add_test(tc, test_no_index);
    suite_add_tcase(s, tc);
    return s;
}
