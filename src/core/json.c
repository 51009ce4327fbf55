/* json.c — cJSON documents and the typed field reader. */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WR_JSON_MAX_FILE ((size_t)64 << 20)

static const char *kind_word(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an unknown value";
}

wr_status wr_json_parse(wr_json_doc *out, const char *text, size_t len, const char *name) {
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", name);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root == NULL) {
        int line = 1;
        for (const char *p = text; end && p < end && p < text + len; p++) line += *p == '\n';
        return WR_FAIL(WR_ERR_FORMAT, "%s: invalid JSON (syntax error on line %d)", name, line);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return WR_FAIL(WR_ERR_FORMAT, "%s: top level is not a JSON object", name);
    }
    out->root = root;
    return WR_OK;
}

wr_status wr_json_load(wr_json_doc *out, const char *path) {
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return WR_FAIL(errno == ENOENT ? WR_ERR_NOT_FOUND : WR_ERR_IO, "%s: cannot open: %s", path,
                       strerror(errno));
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    wr_status st = WR_OK;
    while (buf != NULL) {
        size_t r = fread(buf + n, 1, cap - n, fp);
        n += r;
        if (n < cap) break;
        if (cap >= WR_JSON_MAX_FILE) {
            st = WR_FAIL(WR_ERR_FORMAT, "%s: larger than %zu bytes", path, WR_JSON_MAX_FILE);
            break;
        }
        char *nb = realloc(buf, cap * 2);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (buf == NULL)
        st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory reading %s", path);
    else if (st == WR_OK && ferror(fp))
        st = WR_FAIL(WR_ERR_IO, "%s: read error", path);
    fclose(fp);
    if (st == WR_OK) st = wr_json_parse(out, buf, n, path);
    free(buf);
    return st;
}

void wr_json_free(wr_json_doc *doc) {
    if (doc == NULL) return;
    cJSON_Delete(doc->root);
    doc->root = NULL;
}

/* Integral JSON number within int64 (and within 2^53, where doubles are exact). */
static int as_int(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!isfinite(d) || floor(d) != d || fabs(d) > 9007199254740992.0) return 0;
    *out = (int64_t)d;
    return 1;
}

static wr_status field_error(const wr_json_doc *doc, const wr_json_field *f, const char *want,
                             const cJSON *got) {
    return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' must be %s, got %s", doc->path, f->name, want,
                   kind_word(got));
}

static wr_status read_array(void *dst, const wr_json_doc *doc, const wr_json_field *f,
                            const cJSON *v) {
    if (!cJSON_IsArray(v)) return field_error(doc, f, "an array", v);
    int n = cJSON_GetArraySize(v);
    if (n > WR_JSON_ARR_CAP)
        return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' has %d elements (at most %d supported)",
                       doc->path, f->name, n, WR_JSON_ARR_CAP);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        if (f->kind == WR_JSON_DOUBLE_ARRAY) {
            if (!cJSON_IsNumber(it))
                return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s'[%d] must be a number, got %s",
                               doc->path, f->name, i, kind_word(it));
            ((wr_json_double_array *)dst)->v[i] = it->valuedouble;
        } else if (f->kind == WR_JSON_BOOL_ARRAY) {
            if (!cJSON_IsBool(it))
                return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s'[%d] must be a boolean, got %s",
                               doc->path, f->name, i, kind_word(it));
            ((wr_json_int_array *)dst)->v[i] = cJSON_IsTrue(it);
        } else {
            int64_t x;
            if (!as_int(it, &x))
                return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s'[%d] must be an integer, got %s",
                               doc->path, f->name, i, kind_word(it));
            ((wr_json_int_array *)dst)->v[i] = x;
        }
        i++;
    }
    if (f->kind == WR_JSON_DOUBLE_ARRAY)
        ((wr_json_double_array *)dst)->n = n;
    else
        ((wr_json_int_array *)dst)->n = n;
    return WR_OK;
}

wr_status wr_json_read_fields(void *out, const wr_json_doc *doc, const cJSON *obj,
                              const wr_json_field *fields, int nfields) {
    for (int i = 0; i < nfields; i++) {
        const wr_json_field *f = &fields[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, f->name);
        if (v == NULL || cJSON_IsNull(v)) {
            if (f->required)
                return WR_FAIL(WR_ERR_NOT_FOUND, "%s: missing required field '%s'", doc->path,
                               f->name);
            continue;
        }
        char *dst = (char *)out + f->offset;
        switch (f->kind) {
        case WR_JSON_INT: {
            int64_t x;
            if (!as_int(v, &x)) return field_error(doc, f, "an integer", v);
            memcpy(dst, &x, sizeof x);
            break;
        }
        case WR_JSON_DOUBLE: {
            if (!cJSON_IsNumber(v)) return field_error(doc, f, "a number", v);
            double d = v->valuedouble;
            memcpy(dst, &d, sizeof d);
            break;
        }
        case WR_JSON_BOOL: {
            if (!cJSON_IsBool(v)) return field_error(doc, f, "a boolean", v);
            int b = cJSON_IsTrue(v);
            memcpy(dst, &b, sizeof b);
            break;
        }
        case WR_JSON_STRING: {
            if (!cJSON_IsString(v)) return field_error(doc, f, "a string", v);
            if (strlen(v->valuestring) >= WR_JSON_STR_CAP)
                return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' is longer than %d characters",
                               doc->path, f->name, WR_JSON_STR_CAP - 1);
            strcpy(dst, v->valuestring);
            break;
        }
        case WR_JSON_INT_ARRAY:
        case WR_JSON_DOUBLE_ARRAY:
        case WR_JSON_BOOL_ARRAY:
            WR_TRY(read_array(dst, doc, f, v));
            break;
        default:
            return WR_FAIL(WR_ERR_INTERNAL, "bad field kind for '%s'", f->name);
        }
        if (f->present_offset_plus1) {
            int one = 1;
            memcpy((char *)out + f->present_offset_plus1 - 1, &one, sizeof one);
        }
    }
    return WR_OK;
}
