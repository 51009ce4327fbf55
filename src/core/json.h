/*
 * json.h — JSON documents (through cJSON) and a typed, table-driven config reader.
 *
 * A config struct is described by a table of wr_json_field (name, kind, offset, required).
 * wr_json_read_fields() fills the struct from a JSON object; every error names the file and
 * the field ("vae/config.json: field 'z_dim' must be an integer, got a string"). Fields absent
 * from the table are ignored (configs carry many we do not use); absent optional fields and
 * JSON null keep the value already in the struct (the caller's default).
 */
#ifndef WR_CORE_JSON_H
#define WR_CORE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "status.h"

#define WR_JSON_STR_CAP 64
#define WR_JSON_ARR_CAP 64 /* Wan2.2 TI2V's VAE: 48 latents_mean / latents_std entries */

typedef struct wr_json_doc {
    cJSON *root;    /* owned */
    char path[512]; /* for error details */
} wr_json_doc;

/* Reads (wr_read_small_file: a regular file of at most WR_CONFIG_MAX_BYTES, 16 MiB) and parses
 * `path`. WR_ERR_NOT_FOUND when absent, WR_ERR_IO (not a regular file, e.g. a FIFO; a read
 * error; the file changed size while read), or WR_ERR_FORMAT naming the file (larger than the
 * limit; the line of the first syntax error; a duplicate key). The root must be an object. */
wr_status wr_json_load(wr_json_doc *out, const char *path);
/* The same with another size cap (a tokenizer.json of 256k pieces is ~17 MB). */
wr_status wr_json_load_max(wr_json_doc *out, const char *path, size_t max_bytes);
/* Parses text already in memory; `name` is used in errors. A key that appears twice in any
 * object is WR_ERR_FORMAT naming it (see wr_json_duplicate_key). */
wr_status wr_json_parse(wr_json_doc *out, const char *text, size_t len, const char *name);
void wr_json_free(wr_json_doc *doc);
/* What a JSON value is, for messages: "null", "a boolean", "a number", "a string", "an array",
 * "an object" ("nothing" for NULL). Static string. */
const char *wr_json_kind_name(const cJSON *v);

/* The first member name of object `obj` (borrowed) that appears twice, or NULL (also for a
 * non-object). cJSON keeps every duplicate and its lookups return the first; Python's json
 * keeps the last: a document with both is ambiguous. *oom is set when the check could not run
 * (out of host memory). wr_json_parse refuses a duplicate in any object of a document. */
const char *wr_json_duplicate_key(const cJSON *obj, int *oom);

typedef enum wr_json_kind {
    WR_JSON_INT,          /* int64_t */
    WR_JSON_DOUBLE,       /* double; integers accepted */
    WR_JSON_BOOL,         /* int (0/1) */
    WR_JSON_STRING,       /* char[WR_JSON_STR_CAP]; longer strings are an error */
    WR_JSON_INT_ARRAY,    /* wr_json_int_array */
    WR_JSON_DOUBLE_ARRAY, /* wr_json_double_array */
    WR_JSON_BOOL_ARRAY,   /* wr_json_int_array holding 0/1 */
    WR_JSON_KIND_COUNT
} wr_json_kind;

typedef struct wr_json_int_array {
    int n;
    int64_t v[WR_JSON_ARR_CAP];
} wr_json_int_array;

typedef struct wr_json_double_array {
    int n;
    double v[WR_JSON_ARR_CAP];
} wr_json_double_array;

typedef struct wr_json_field {
    const char *name;
    wr_json_kind kind;
    size_t offset; /* offsetof(struct, member) */
    int required;
    int present_offset_plus1; /* 0, or offsetof(an int flag)+1 set to 1 when the field is read */
} wr_json_field;

/* Fills `out` from object `obj` of document `doc` by the table. Errors: WR_ERR_NOT_FOUND for a
 * required field that is absent ("... missing required field 'x'"), WR_ERR_FORMAT for a wrong
 * type or an out-of-range value. */
wr_status wr_json_read_fields(void *out, const wr_json_doc *doc, const cJSON *obj,
                              const wr_json_field *fields, int nfields);

/* ---- UTF-8 (JSON text is UTF-8; cJSON neither checks nor repairs it) ---- */

/* The length (1 to 4) of the well-formed UTF-8 sequence at p (n >= 1 bytes readable), or 0 when
 * it is not one: a stray continuation byte, an overlong form, a UTF-16 surrogate, a code point
 * past U+10FFFF, or a sequence cut short. */
size_t wr_utf8_char_len(const unsigned char *p, size_t n);
/* A malloc'd copy of `s` (borrowed, NUL-terminated) in which every byte that does not start a
 * well-formed sequence is replaced by U+FFFD, so it can be emitted as a JSON string (e.g. a file
 * path, which Linux does not require to be UTF-8). The caller frees it; NULL when out of
 * memory. */
char *wr_utf8_sanitize(const char *s);

#endif /* WR_CORE_JSON_H */
