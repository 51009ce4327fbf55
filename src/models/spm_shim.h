/*
 * spm_shim.h — a small C interface over the SentencePiece C++ library (libsentencepiece,
 * Debian's 0.1.97), for src/models/tokenizer.c.
 *
 * What it does: parses and validates a serialized SentencePiece ModelProto (the bytes of a
 * spiece.model), and answers vocabulary questions (piece count, id <-> piece, score, kind)
 * and the library's own encoding of a string. No C++ exception crosses this interface: every
 * failure is a wr_status with a detail (WR_FAIL).
 *
 * What it does not: the library's Encode is SentencePiece's pipeline (its own normalizer,
 * whitespace rules, no added tokens), which is NOT what transformers' T5TokenizerFast does;
 * tokenizer.c reproduces the latter and uses this shim for the model and its vocabulary.
 *
 * Lifetime: wr_spm_load() copies what it needs from `bytes`; the handle owns everything and
 * wr_spm_free() releases it (NULL is ignored). Returned piece pointers are borrowed and valid
 * until wr_spm_free(). Threading: a loaded handle may be read from several threads at once.
 */
#ifndef WR_MODELS_SPM_SHIM_H
#define WR_MODELS_SPM_SHIM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* status.h has no C++ guards of its own: include it with C linkage. */
#include "core/status.h"

typedef struct wr_spm wr_spm;

/*
 * Parses `nbytes` bytes of a serialized ModelProto. `name` (borrowed; the file path) only
 * labels error details. Fails with WR_ERR_FORMAT when the library rejects the bytes (the
 * library's reason is quoted), WR_ERR_OOM_HOST when out of memory. *out is NULL on failure.
 */
wr_status wr_spm_load(wr_spm **out, const void *bytes, size_t nbytes, const char *name);
void wr_spm_free(wr_spm *m);

/* Number of pieces (ids are 0 .. count-1). */
int32_t wr_spm_piece_count(const wr_spm *m);
/* The piece of `id` (UTF-8, borrowed) and its byte length in *len; NULL when out of range. */
const char *wr_spm_id_to_piece(const wr_spm *m, int32_t id, size_t *len);
/* The id of a piece, or -1 when no piece has exactly these bytes. */
int32_t wr_spm_piece_to_id(const wr_spm *m, const char *piece, size_t len);
/* The piece's score (unigram log probability) as stored in the model; 0 when out of range. */
float wr_spm_score(const wr_spm *m, int32_t id);
/* The library's unknown-piece id (-1 when the model has none). */
int32_t wr_spm_unk_id(const wr_spm *m);

/* Piece kinds the library can tell apart (ModelProto.SentencePiece.Type, where known). */
typedef enum wr_spm_kind {
    WR_SPM_KIND_NORMAL = 0, /* NORMAL or USER_DEFINED: the library does not distinguish them */
    WR_SPM_KIND_UNKNOWN,
    WR_SPM_KIND_CONTROL,
    WR_SPM_KIND_UNUSED,
    WR_SPM_KIND_BYTE,
    WR_SPM_KIND_COUNT
} wr_spm_kind;
wr_spm_kind wr_spm_piece_kind(const wr_spm *m, int32_t id);

/*
 * The library's own encoding of `len` bytes of UTF-8 `text` (SentencePiece's normalizer and
 * Viterbi; no </s>). On success *ids is malloc'd (the caller frees it; NULL when *n is 0).
 * Fails with WR_ERR_INVALID_ARG when the library rejects the input, WR_ERR_OOM_HOST.
 */
wr_status wr_spm_encode(const wr_spm *m, const char *text, size_t len, int32_t **ids, size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* WR_MODELS_SPM_SHIM_H */
