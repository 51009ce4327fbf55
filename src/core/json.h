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
#define WR_JSON_ARR_CAP 32

typedef struct wr_json_doc {
    cJSON *root;    /* owned */
    char path[512]; /* for error details */
} wr_json_doc;

/* Reads and parses `path` (at most 64 MiB). WR_ERR_NOT_FOUND when absent, WR_ERR_IO, or
 * WR_ERR_FORMAT naming the file and the line of the first syntax error. The root must be an
 * object. */
wr_status wr_json_load(wr_json_doc *out, const char *path);
/* Parses text already in memory; `name` is used in errors. */
wr_status wr_json_parse(wr_json_doc *out, const char *text, size_t len, const char *name);
void wr_json_free(wr_json_doc *doc);

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

#endif /* WR_CORE_JSON_H */
