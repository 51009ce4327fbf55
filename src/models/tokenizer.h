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
 * Two sources, one engine: a checkpoint's `tokenizer/spiece.model` (SentencePiece), or, when a
 * folder has none (what `save_pretrained` writes with transformers 5.x), its
 * `tokenizer/tokenizer.json` (the `tokenizers` serialization of the same Unigram model: vocab
 * with scores, the Precompiled normalizer's char map, added tokens). Both fill the same tables,
 * so the same model gives the same ids from either file. tokenizer.json is read strictly: only
 * the layout transformers 5.x writes for T5/UMT5 (Unigram, unk_id 2, byte_fallback false;
 * normalizer Precompiled or null; pre-tokenizer Sequence[WhitespaceSplit, Metaspace('▁',
 * prepend_scheme always, split true)]; TemplateProcessing "$A </s>"; added tokens matched on
 * the raw text: lstrip, rstrip, single_word and normalized all false) is accepted; any other
 * model, component, option or value is WR_ERR_UNSUPPORTED naming the file, the JSON path and
 * the value. Its `truncation` and `padding` are not used: WanPipeline's call (padding
 * "max_length", max_length 512, truncation) replaces them, as in transformers. The `decoder`
 * is not used (wanrun does not decode). tokenizer_config.json is not read.
 *
 * Prompts: at most WR_TOKENIZER_MAX_PROMPT_BYTES bytes of UTF-8; cleaning and tokenization
 * take time and memory linear in the prompt's length (tests/bench/bench_tokenizer.c).
 *
 * Not done: ftfy, batching, pair inputs, decoding.
 *
 * Lifetime: wr_tokenizer_open() reads the model file; the handle owns its copy.
 * wr_tokenizer_free(NULL) does nothing. Threading: a handle is immutable after opening, so
 * several threads may encode with one handle at once (error details are per thread).
 */
#ifndef WR_MODELS_TOKENIZER_H
#define WR_MODELS_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* The sentinel tokens UMT5 (and Wan's tokenizer_config.json) declare. */
#define WR_TOKENIZER_EXTRA_IDS 300
/* WanPipeline's max_sequence_length (the text length the DiT cross-attends to). */
#define WR_TOKENIZER_MAX_LEN 512
/* The longest prompt accepted, in bytes of UTF-8 (1 MiB). Only the first 511 tokens reach the
 * text encoder (a few KB of text), but the whole prompt is cleaned and tokenized first, as
 * diffusers does; the cap bounds that work (linear in the length) and its memory (a few tens
 * of bytes per prompt byte). */
#define WR_TOKENIZER_MAX_PROMPT_BYTES ((size_t)1 << 20)

typedef struct wr_tokenizer wr_tokenizer;

/*
 * Opens a tokenizer model file (borrowed path): a `tokenizer.json` when the file name ends in
 * ".json", else a SentencePiece unigram model (`tokenizer/spiece.model` of a Wan checkpoint).
 * Failures: WR_ERR_NOT_FOUND (no such file), WR_ERR_IO (unreadable, not a regular file: a
 * FIFO or device is refused, never waited on), WR_ERR_FORMAT (over 64 MiB; not a SentencePiece
 * model / not valid tokenizer.json: bad JSON, a field of the wrong type or missing, bad
 * base64, an id out of range, a corrupt normalization map; not the T5 layout <pad>=0, </s>=1,
 * <unk>=2 in a spiece.model), WR_ERR_UNSUPPORTED (a
 * tokenizer.json component, option or value wanrun does not implement: see above; the detail
 * names the file, the JSON path and the value), WR_ERR_OOM_HOST. *out is NULL on failure.
 */
wr_status wr_tokenizer_open(wr_tokenizer **out, const char *path);
/*
 * The tokenizer.json reader on text in memory (`len` bytes, need not be NUL-terminated;
 * `name` labels error details). Same rules and failures as wr_tokenizer_open; for tests and
 * fuzzing.
 */
wr_status wr_tokenizer_from_json(wr_tokenizer **out, const char *text, size_t len,
                                 const char *name);
/*
 * The model file of a tokenizer folder `dir` (borrowed): DIR/spiece.model when it exists
 * (whatever it is: opening it reports a bad one), else DIR/tokenizer.json when that exists.
 * Writes the path into path[cap]. WR_ERR_NOT_FOUND naming both files when neither exists,
 * WR_ERR_INVALID_ARG when the path does not fit in cap.
 */
wr_status wr_tokenizer_locate(const char *dir, char *path, size_t cap);
/* wr_tokenizer_locate + wr_tokenizer_open. */
wr_status wr_tokenizer_open_dir(wr_tokenizer **out, const char *dir);
void wr_tokenizer_free(wr_tokenizer *t);

/* Pieces of the model + WR_TOKENIZER_EXTRA_IDS (UMT5: 256,300). */
int64_t wr_tokenizer_vocab_size(const wr_tokenizer *t);
/* The text of token `id` (borrowed, NUL-terminated; "<extra_id_N>" for sentinels), or NULL
 * when id is outside [0, vocab size). */
const char *wr_tokenizer_piece(const wr_tokenizer *t, int64_t id);

/*
 * Checks a prompt before any work: at most WR_TOKENIZER_MAX_PROMPT_BYTES bytes and valid
 * UTF-8. `what` (borrowed) names it in the detail, e.g. "--negative-prompt". Failures:
 * WR_ERR_INVALID_ARG ("--negative-prompt is not valid UTF-8 (byte 4: 0xFF)", "--prompt is
 * 2097152 bytes, more than ...").
 */
wr_status wr_prompt_check(const char *prompt, const char *what);

/*
 * diffusers' prompt_clean without ftfy: *out receives a malloc'd NUL-terminated UTF-8 string
 * (the caller frees it). `prompt` (borrowed) must be UTF-8. Failures: WR_ERR_INVALID_ARG for
 * a prompt over WR_TOKENIZER_MAX_PROMPT_BYTES bytes, for
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
 * < 1, a prompt over WR_TOKENIZER_MAX_PROMPT_BYTES, invalid UTF-8 naming the byte offset, see
 * wr_prompt_clean), WR_ERR_FORMAT (a corrupt
 * normalization map entry met in this text), WR_ERR_OOM_HOST. Outputs are untouched on
 * failure.
 */
wr_status wr_tokenizer_encode(const wr_tokenizer *t, const char *prompt, int max_len, int32_t *ids,
                              uint8_t *mask, int *n_real);

#endif /* WR_MODELS_TOKENIZER_H */
