/*
 * fuzz_config_opts.c — libFuzzer target for the generation options (src/pipeline/options.h):
 * the --config JSON reader and the flag-value parsers.
 *
 * Each input is used three ways: (1) whole, as a --config document (wr_gen_opts_from_json),
 * then wr_gen_opts_finish; (2) its first byte picks an option and the rest, cut at the first
 * NUL, is that option's value on the command line (wr_gen_opts_set); (3) the same text goes
 * through the value parsers (i64, f64, bytes, size) and wr_quote. Accepted options must be in
 * range (the contract options.h states), a refusal must leave a one-line, non-empty detail,
 * and a finished request must pass wr_request_check_sizes. Nothing is read from disk.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/options.h"
#include "wanrun.h"

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A refusal: a status with a non-empty one-line detail. */
static void check_refusal(wr_status st) {
    FUZZ_CHECK(st != WR_OK);
    const char *d = wr_error_detail();
    FUZZ_CHECK(d[0] != '\0');
    FUZZ_CHECK(strchr(d, '\n') == NULL && strchr(d, '\r') == NULL);
}

/* Every option within what options.h promises. */
static void check_ranges(const wr_gen_opts *g) {
    FUZZ_CHECK(g->width >= 1 && g->height >= 1);
    FUZZ_CHECK(g->frames >= 1 && g->frames <= WR_REQUEST_MAX_FRAMES && (g->frames - 1) % 4 == 0);
    FUZZ_CHECK(g->steps >= 1 && g->steps <= WR_REQUEST_MAX_STEPS);
    FUZZ_CHECK(g->guidance >= 0.0 && g->guidance <= 100.0);
    FUZZ_CHECK(g->shift == 0.0 || (g->shift >= 1e-3 && g->shift <= 1000.0));
    FUZZ_CHECK(g->fps >= 0.1 && g->fps <= 1000.0);
    FUZZ_CHECK(g->seed <= (uint64_t)INT64_MAX);
    FUZZ_CHECK(g->scheduler >= -1 && g->scheduler <= 1);
    FUZZ_CHECK(g->threads >= 0 && g->threads <= 4096);
    FUZZ_CHECK(g->low_mem_level >= -1 && g->low_mem_level <= 3);
    FUZZ_CHECK(g->vram_limit >= 0);
    FUZZ_CHECK(!(g->given & ((uint64_t)1 << WR_OPT_VRAM_LIMIT)) || g->vram_limit >= 1);
    FUZZ_CHECK(g->cfg_parallel >= 0 && g->cfg_parallel <= 2);
    FUZZ_CHECK(g->cp_size >= 0 && g->cp_size <= 4096);
    FUZZ_CHECK(g->cp_mode >= 0 && g->cp_mode <= 2);
    FUZZ_CHECK(g->te_stream >= -1 && g->te_stream <= 1);
    FUZZ_CHECK(g->dit_stream >= -1 && g->dit_stream <= 1);
    FUZZ_CHECK(g->vae_tiled >= -1 && g->vae_tiled <= 1);
    FUZZ_CHECK(g->fp8 == 0 || g->fp8 == 1);
    FUZZ_CHECK(g->te_cpu == 0 || g->te_cpu == 1);
    FUZZ_CHECK(g->disk_offload == 0 || g->disk_offload == 1);
    FUZZ_CHECK(!strcmp(g->backend, "auto") || !strcmp(g->backend, "cpu") ||
               !strcmp(g->backend, "cuda"));
}

static void check_finish(wr_gen_opts *g) {
    wr_status st = wr_gen_opts_finish(g, "bundled-model");
    if (st != WR_OK) {
        check_refusal(st);
        return;
    }
    check_ranges(g);
    FUZZ_CHECK(g->prompt != NULL && g->out != NULL && g->model != NULL);
    FUZZ_CHECK(wr_request_check_sizes(g->width, g->height, g->frames) == WR_OK);
    FUZZ_CHECK(g->width * g->height * g->frames <= WR_REQUEST_MAX_PIXELS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* (1) the input as a --config document */
    wr_gen_opts g;
    wr_gen_opts_init(&g);
    wr_status st = wr_gen_opts_from_json(&g, (const char *)data, size, "fuzz.json");
    if (st == WR_OK) {
        check_ranges(&g);
        check_finish(&g);
    } else {
        check_refusal(st);
    }
    wr_gen_opts_free(&g);

    if (size == 0) return 0;
    char *text = malloc(size);
    if (text == NULL) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';

    /* (2) one option from the command line */
    static const char *const names[] = {"model",
                                        "prompt",
                                        "negative-prompt",
                                        "out",
                                        "save-latents",
                                        "init-noise",
                                        "size",
                                        "frames",
                                        "steps",
                                        "guidance",
                                        "shift",
                                        "fps",
                                        "seed",
                                        "scheduler",
                                        "threads",
                                        "low-mem-level",
                                        "vram-limit",
                                        "backend",
                                        "config",
                                        "cfg-parallel",
                                        "cp-size",
                                        "cp",
                                        "mem-profile",
                                        "text-encoder",
                                        "dit",
                                        "vae",
                                        "fp8",
                                        "te-device",
                                        "disk-offload",
                                        "verbose",
                                        "no-such-option"};
    const char *name = names[data[0] % (sizeof names / sizeof names[0])];
    wr_gen_opts_init(&g);
    st = wr_gen_opts_set(&g, name, text);
    if (st == WR_OK) {
        check_ranges(&g);
        FUZZ_CHECK(wr_gen_opt_find(name) >= 0);
        g.prompt = "p", g.out = "o.y4m";
        check_finish(&g);
    } else {
        check_refusal(st);
    }
    wr_gen_opts_free(&g);

    /* (3) the value parsers */
    int64_t i = 0, w = 0, h = 0;
    double d = 0;
    st = wr_parse_i64("n", text, -5, 1000, &i);
    if (st == WR_OK)
        FUZZ_CHECK(i >= -5 && i <= 1000);
    else
        check_refusal(st);
    st = wr_parse_f64("x", text, -1.0, 1e6, &d);
    if (st == WR_OK)
        FUZZ_CHECK(d >= -1.0 && d <= 1e6);
    else
        check_refusal(st);
    st = wr_parse_bytes("b", text, &i);
    if (st == WR_OK)
        FUZZ_CHECK(i >= 1);
    else
        check_refusal(st);
    st = wr_parse_size("s", text, &w, &h);
    if (st == WR_OK)
        FUZZ_CHECK(w >= 1 && h >= 1);
    else
        check_refusal(st);
    char q[80];
    wr_quote(q, sizeof q, text);
    FUZZ_CHECK(strlen(q) < sizeof q);
    for (const char *p = q; *p; p++) FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
    free(text);
    return 0;
}
