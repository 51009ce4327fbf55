/*
 * fuzz_tokenizer.c — libFuzzer target for prompt cleaning and tokenization.
 *
 * Each input, NUL-terminated, is a prompt for wr_prompt_clean() and wr_tokenizer_encode() with
 * the bundled tiny spiece.model (path compiled in as WR_FUZZ_SPM). Either call may reject the
 * input (not UTF-8, a numeric reference too long for Python: WR_ERR_INVALID_ARG) and must then
 * leave the outputs alone; an accepted one must satisfy tokenizer.h's contract: n_real in
 * [1, max_len], the ids of the real tokens inside the vocabulary ending with </s> (1), mask
 * ones exactly on them, pads 0; cleaning gives valid UTF-8 without leading or trailing spaces.
 * Inputs with a NUL byte are cut there (as a C string or argv would be).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "models/tokenizer.h"

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static wr_tokenizer *g_tok;

static int valid_utf8(const unsigned char *s) {
    while (*s) {
        int n = *s < 0x80             ? 0
                : (*s & 0xE0) == 0xC0 ? 1
                : (*s & 0xF0) == 0xE0 ? 2
                : (*s & 0xF8) == 0xF0 ? 3
                                      : -1;
        if (n < 0) return 0;
        s++;
        for (int i = 0; i < n; i++, s++)
            if ((*s & 0xC0) != 0x80) return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (g_tok == NULL && wr_tokenizer_open(&g_tok, WR_FUZZ_SPM) != WR_OK) __builtin_trap();
    char *prompt = malloc(size + 1);
    if (prompt == NULL) return 0;
    memcpy(prompt, data, size);
    prompt[size] = '\0';

    char *clean = NULL;
    wr_status cs = wr_prompt_clean(prompt, &clean);
    FUZZ_CHECK(cs == WR_OK || cs == WR_ERR_INVALID_ARG);
    if (cs == WR_OK) {
        const size_t n = strlen(clean);
        FUZZ_CHECK(valid_utf8((const unsigned char *)clean));
        FUZZ_CHECK(n == 0 || (clean[0] != ' ' && clean[n - 1] != ' '));
    } else {
        FUZZ_CHECK(clean == NULL);
    }
    free(clean);

    const int max_len = 1 + (int)(size % 64);
    int32_t ids[64];
    uint8_t mask[64];
    int n_real = -7;
    memset(ids, 0x5A, sizeof ids);
    wr_status st = wr_tokenizer_encode(g_tok, prompt, max_len, ids, mask, &n_real);
    FUZZ_CHECK(st == cs); /* encoding fails exactly when cleaning does */
    if (st == WR_OK) {
        FUZZ_CHECK(n_real >= 1 && n_real <= max_len);
        FUZZ_CHECK(ids[n_real - 1] == 1);
        for (int i = 0; i < max_len; i++) {
            FUZZ_CHECK(mask[i] == (i < n_real));
            if (i < n_real)
                FUZZ_CHECK(ids[i] >= 0 && ids[i] < wr_tokenizer_vocab_size(g_tok));
            else
                FUZZ_CHECK(ids[i] == 0);
        }
    } else {
        FUZZ_CHECK(n_real == -7 && ids[0] == 0x5A5A5A5A);
    }
    free(prompt);
    return 0;
}
