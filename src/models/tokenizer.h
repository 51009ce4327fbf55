/*
 * tokenizer.h — the UMT5 prompt tokenizer: what diffusers' WanPipeline feeds the text
 * encoder, reproduced exactly (transformers 5.23 T5TokenizerFast on tokenizers 0.23).
 *
 * Pipeline (diffusers pipeline_wan.py `prompt_clean` + `_get_t5_prompt_embeds`):
 *   1. clean: html.unescape twice (Python's rules: HTML5 names with and without ';', longest
 *      prefix, numeric references with the Windows-1252 remap); strip str.isspace() code
 *      points at both ends (these include U+001C..U+001F); every run of Unicode White_Space
 *      (`\s` of the `regex` package: ASCII whitespace, U+0085, U+00A0, U+3000, U+2028, ...)
 *      becomes one ' '. ftfy.fix_text is NOT applied (diffusers applies it only when ftfy is
 *      installed).
 *   2. added tokens: the literal strings `<pad>`, `</s>`, `<unk>`, the model's control and
 *      user-defined pieces and `<extra_id_0>`..`<extra_id_299>` are cut out of the cleaned text
 *      first (leftmost-longest, no whitespace stripping around them) and map to their ids.
 *   3. each text segment between them: the model's precompiled NFKC char map applied per
 *      extended grapheme cluster (tokenizers' `Precompiled` normalizer, quirks included);
 *      split on Unicode whitespace; U+2581 '▁' prepended to each word lacking one; words cut
 *      before every '▁'; each piece segmented by unigram Viterbi over the whole vocabulary
 *      (sentinels and `</s>` included), consecutive unknowns fused into one `<unk>`.
 *   4. truncate to max_len - 1 tokens, append `</s>` (id 1), pad with `<pad>` (id 0) to
 *      max_len; the mask is 1 on the real tokens (including `</s>`).
 * Ids: the spiece.model pieces (UMT5: 256,000), then the 300 sentinels in reverse order:
 * `<extra_id_299>` = piece count, ..., `<extra_id_0>` = piece count + 299.
 *
 * Not done: ftfy, batching, pair inputs, decoding.
 *
 * Lifetime: wr_tokenizer_open() reads the model file; the handle owns its copy.
 * wr_tokenizer_free(NULL) does nothing. Threading: a handle is immutable after opening, so
 * several threads may encode with one handle at once (error details are per thread).
 */
#ifndef WR_MODELS_TOKENIZER_H
#define WR_MODELS_TOKENIZER_H

#include <stdint.h>

#include "core/status.h"

/* The sentinel tokens UMT5 (and Wan's tokenizer_config.json) declare. */
#define WR_TOKENIZER_EXTRA_IDS 300
/* WanPipeline's max_sequence_length (the text length the DiT cross-attends to). */
#define WR_TOKENIZER_MAX_LEN 512

typedef struct wr_tokenizer wr_tokenizer;

/*
 * Opens a SentencePiece unigram model (`tokenizer/spiece.model` of a Wan checkpoint).
 * `spiece_model_path` is borrowed. Failures: WR_ERR_NOT_FOUND (no such file), WR_ERR_IO
 * (unreadable), WR_ERR_FORMAT (not a SentencePiece model, not the T5 layout <pad>=0, </s>=1,
 * <unk>=2, or a corrupt normalization map), WR_ERR_OOM_HOST. *out is NULL on failure.
 */
wr_status wr_tokenizer_open(wr_tokenizer **out, const char *spiece_model_path);
void wr_tokenizer_free(wr_tokenizer *t);

/* Pieces of the model + WR_TOKENIZER_EXTRA_IDS (UMT5: 256,300). */
int64_t wr_tokenizer_vocab_size(const wr_tokenizer *t);
/* The text of token `id` (borrowed, NUL-terminated; "<extra_id_N>" for sentinels), or NULL
 * when id is outside [0, vocab size). */
const char *wr_tokenizer_piece(const wr_tokenizer *t, int64_t id);

/*
 * diffusers' prompt_clean without ftfy: *out receives a malloc'd NUL-terminated UTF-8 string
 * (the caller frees it). `prompt` (borrowed) must be UTF-8. Failures: WR_ERR_INVALID_ARG for
 * invalid UTF-8 (the detail names the byte offset) or for a decimal character reference with
 * more than 4,300 digits (Python raises on it, so the pipeline would fail), WR_ERR_OOM_HOST.
 * *out is NULL on failure.
 */
wr_status wr_prompt_clean(const char *prompt, char **out);

/*
 * Cleans and tokenizes `prompt` (borrowed, UTF-8) exactly as WanPipeline does with
 * max_sequence_length = max_len (use WR_TOKENIZER_MAX_LEN): ids[max_len] receives the real
 * ids, `</s>`, then `<pad>` ids; mask[max_len] 1 on the real tokens (`</s>` included) and 0 on
 * the pads; *n_real the number of ones (1 .. max_len). Prompts longer than max_len - 1 tokens
 * are truncated. ids, mask and n_real are caller-owned. Failures: WR_ERR_INVALID_ARG (max_len
 * < 1, invalid UTF-8 naming the byte offset, see wr_prompt_clean), WR_ERR_FORMAT (a corrupt
 * normalization map entry met in this text), WR_ERR_OOM_HOST. Outputs are untouched on
 * failure.
 */
wr_status wr_tokenizer_encode(const wr_tokenizer *t, const char *prompt, int max_len, int32_t *ids,
                              uint8_t *mask, int *n_real);

#endif /* WR_MODELS_TOKENIZER_H */
