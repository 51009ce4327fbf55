/*
 * bench_tokenizer.c — prompt cleaning + tokenization time against the prompt's length (not a
 * test: it asserts nothing). For each kind of text (English, CJK, regional-indicator flags,
 * one long word, combining marks, HTML references, added tokens, ...) it encodes prompts of
 * 64 KiB .. 1 MiB (the cap, WR_TOKENIZER_MAX_PROMPT_BYTES) and prints the time per MiB: a
 * linear implementation shows a flat column.
 *
 *   build/tests/bench/bench_tokenizer [tokenizer/spiece.model or tokenizer.json]
 *
 * Default model: the bundled tests/data/tokenizer/spiece.model (path compiled in).
 *
 * Measured (issue #14; RelWithDebInfo, one core of a shared 2-core VM, so +-30 % noise): every
 * row flat from 64 KiB to 1 MiB, 8 .. 370 ms per MiB (english 70, cjk 130, one long word 330,
 * flags 105, ampersands 350). Before the fix the flags row was quadratic: 655, 2,465 and
 * 14,974 ms per MiB (the regional-indicator rule counted the whole run back at each code
 * point); all others were already flat.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "core/log.h"
#include "models/tokenizer.h"

/* `n` bytes of `unit` repeated (cut at a whole unit), NUL-terminated. */
static char *repeat(const char *unit, size_t n) {
    const size_t u = strlen(unit);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    size_t k = 0;
    while (k + u <= n) {
        memcpy(s + k, unit, u);
        k += u;
    }
    s[k] = '\0';
    return s;
}

int main(int argc, char **argv) {
    const char *model = argc > 1 ? argv[1] : WR_BENCH_SPM;
    wr_tokenizer *t = NULL;
    if (wr_tokenizer_open(&t, model) != WR_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", wr_error_detail());
        return 1;
    }
    static const struct {
        const char *name, *unit;
    } kinds[] = {
        {"english", "A cat walks on the grass, realistic, cinematic lighting. "},
        {"cjk", "\xe4\xb8\x80\xe5\x8f\xaa\xe7\x8c\xab\xe5\x9c\xa8\xe8\x8d\x89\xe5\x9c\xb0"},
        {"one long word", "abcdefghij"},
        {"flags (RI)", "\xf0\x9f\x87\xaf"},
        {"combining", "\xcc\x81"},
        {"devanagari", "\xe0\xa4\x95\xe0\xa5\x8d"},
        {"zwj emoji", "\xf0\x9f\x91\xa8\xe2\x80\x8d"},
        {"entities", "&amp;lt;&#128512;&notit;"},
        {"added tokens", "<extra_id_5></s>"},
        {"unknowns", "\xe2\x98\x83"},
        {"spaces", " \t\xe3\x80\x80"},
        {"ampersands", "&"},
        {"digits ref", "&#0000000000"},
    };
    const size_t sizes[] = {64u << 10, 256u << 10, WR_TOKENIZER_MAX_PROMPT_BYTES};
    int32_t ids[WR_TOKENIZER_MAX_LEN];
    uint8_t mask[WR_TOKENIZER_MAX_LEN];
    printf("%-14s %12s %12s %12s   (ms per MiB of prompt)\n", "text", "64 KiB", "256 KiB", "1 MiB");
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        printf("%-14s", kinds[k].name);
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            char *p = repeat(kinds[k].unit, sizes[i]);
            if (!p) return 1;
            const size_t n = strlen(p);
            int nr = 0;
            const double t0 = wr_now_s();
            const wr_status st = wr_tokenizer_encode(t, p, WR_TOKENIZER_MAX_LEN, ids, mask, &nr);
            const double dt = wr_now_s() - t0;
            if (st != WR_OK) printf(" [%s]", wr_error_detail());
            printf(" %12.1f", dt * 1e3 * (double)(1u << 20) / (double)(n ? n : 1));
            free(p);
        }
        printf("\n");
    }
    wr_tokenizer_free(t);
    return 0;
}
