/*
 * fuzz_tokenizer_json.c — libFuzzer target for the tokenizer.json reader
 * (wr_tokenizer_from_json) and the encoder on whatever it accepts.
 *
 * Each input is a tokenizer.json text. Reading must either fail with a status the header
 * documents (WR_ERR_FORMAT, WR_ERR_UNSUPPORTED, WR_ERR_OOM_HOST) leaving *out NULL, or give a
 * tokenizer that satisfies tokenizer.h's contract: at least the three T5 pieces (<pad>, </s>,
 * <unk> at 0, 1, 2), every id's piece readable, none past the end. An accepted tokenizer then
 * encodes a few fixed prompts and the input's first bytes as a prompt: WR_OK (or
 * WR_ERR_INVALID_ARG for a prompt that is not UTF-8, WR_ERR_FORMAT for a corrupt char map met
 * in the text) and, on success, n_real in [1, max_len], real ids inside the vocabulary ending
 * with </s> (1), mask ones exactly on them, pads 0. Seeds: tests/fuzz/seeds_tokenizer_json
 * (run_fuzz.sh), with tokenizer_json.dict.
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

static void check_encode(const wr_tokenizer *t, const char *prompt, int max_len) {
    int32_t ids[64];
    uint8_t mask[64];
    int n_real = -7;
    memset(ids, 0x5A, sizeof ids);
    const wr_status st = wr_tokenizer_encode(t, prompt, max_len, ids, mask, &n_real);
    FUZZ_CHECK(st == WR_OK || st == WR_ERR_INVALID_ARG || st == WR_ERR_FORMAT);
    if (st != WR_OK) {
        FUZZ_CHECK(n_real == -7 && ids[0] == 0x5A5A5A5A);
        return;
    }
    FUZZ_CHECK(n_real >= 1 && n_real <= max_len);
    FUZZ_CHECK(ids[n_real - 1] == 1);
    for (int i = 0; i < max_len; i++) {
        FUZZ_CHECK(mask[i] == (i < n_real));
        if (i < n_real)
            FUZZ_CHECK(ids[i] >= 0 && ids[i] < wr_tokenizer_vocab_size(t));
        else
            FUZZ_CHECK(ids[i] == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    wr_tokenizer *t = (wr_tokenizer *)1;
    const wr_status st = wr_tokenizer_from_json(&t, (const char *)data, size, "fuzz.json");
    if (st != WR_OK) {
        FUZZ_CHECK(st == WR_ERR_FORMAT || st == WR_ERR_UNSUPPORTED || st == WR_ERR_OOM_HOST);
        FUZZ_CHECK(t == NULL);
        return 0;
    }
    const int64_t nv = wr_tokenizer_vocab_size(t);
    FUZZ_CHECK(nv >= 3);
    FUZZ_CHECK(strcmp(wr_tokenizer_piece(t, 0), "<pad>") == 0);
    FUZZ_CHECK(strcmp(wr_tokenizer_piece(t, 1), "</s>") == 0);
    FUZZ_CHECK(strcmp(wr_tokenizer_piece(t, 2), "<unk>") == 0);
    for (int64_t id = 0; id < nv; id++) FUZZ_CHECK(wr_tokenizer_piece(t, id) != NULL);
    FUZZ_CHECK(wr_tokenizer_piece(t, nv) == NULL && wr_tokenizer_piece(t, -1) == NULL);

    static const char *const prompts[] = {
        "A cat walks on the grass, realistic",
        "<extra_id_0></s><pad><unk> \xef\xbc\xa1\xef\xbc\xa2 \xef\xac\x81\xcc\x81 \xe2\x91\xa0",
        ("\xef\xbd\xb6\xef\xbe\x9e \xe4\xb8\x80\xe5\x8f\xaa\xe7\x8c\xab \xf0\x9f\x87\xaf\xf0\x9f"
         "\x87\xb5 e\xcc\x81\xcc\x82"),
        ""};
    for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++)
        check_encode(t, prompts[i], 1 + (int)((size + i) % 64));
    /* the input's own first bytes as a prompt: its pieces and added tokens meet the encoder */
    char p[257];
    const size_t n = size < 256 ? size : 256;
    memcpy(p, data, n);
    p[n] = '\0';
    check_encode(t, p, 64);
    wr_tokenizer_free(t);
    return 0;
}
