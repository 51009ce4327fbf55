/* json.c — cJSON documents and the typed field reader. */
#include "json.h"

#include "fileio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *wr_json_kind_name(const cJSON *v) {
    if (v == NULL) return "nothing";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an unknown value";
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *wr_json_duplicate_key(const cJSON *obj, int *oom) {
    *oom = 0;
    if (!cJSON_IsObject(obj)) return NULL;
    const int n = cJSON_GetArraySize(obj);
    if (n < 2) return NULL;
    if (n <= 16) {
        for (const cJSON *a = obj->child; a; a = a->next)
            for (const cJSON *b = a->next; b; b = b->next)
                if (a->string && b->string && strcmp(a->string, b->string) == 0) return a->string;
        return NULL;
    }
    const char **keys = malloc((size_t)n * sizeof *keys);
    if (keys == NULL) {
        *oom = 1;
        return NULL;
    }
    int k = 0;
    for (const cJSON *a = obj->child; a && k < n; a = a->next)
        if (a->string) keys[k++] = a->string;
    qsort(keys, (size_t)k, sizeof *keys, cmp_cstr);
    const char *dup = NULL;
    for (int i = 1; i < k && dup == NULL; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) dup = keys[i];
    free(keys);
    return dup;
}

/* The first duplicate key in any object of the tree under v: its path from the top (member
 * names joined by '.', array elements as [i]) in path[cap], v's own path being path[0, len).
 * 1 when found, -1 when out of memory, 0 otherwise. */
static int find_duplicate(const cJSON *v, char *path, size_t cap, size_t len) {
    int oom = 0;
    const char *dup = wr_json_duplicate_key(v, &oom);
    if (dup != NULL) {
        snprintf(path + len, cap - len, "%s%.80s", len ? "." : "", dup);
        return 1;
    }
    if (oom) return -1;
    int i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        if (!cJSON_IsObject(c) && !cJSON_IsArray(c)) continue;
        const int n = cJSON_IsObject(v) ? snprintf(path + len, cap - len, "%s%.80s", len ? "." : "",
                                                   c->string ? c->string : "")
                                        : snprintf(path + len, cap - len, "[%d]", i);
        const size_t sub = n > 0 && (size_t)n < cap - len ? len + (size_t)n : cap - 1;
        const int r = find_duplicate(c, path, cap, sub);
        if (r != 0) return r;
        path[len] = '\0';
    }
    return 0;
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
    /* A key twice: cJSON's lookups would take the first, Python's json (so diffusers) the last;
     * which value was meant is unknowable, so neither is taken. */
    char dup[512] = "";
    const int found = find_duplicate(root, dup, sizeof dup, 0);
    if (found != 0) {
        wr_status st = found < 0 ? WR_FAIL(WR_ERR_OOM_HOST, "out of host memory reading %s", name)
                                 : WR_FAIL(WR_ERR_FORMAT,
                                           "%s: key '%s' appears twice (Python's json takes the "
                                           "last, cJSON the first): keep one",
                                           name, dup);
        cJSON_Delete(root);
        return st;
    }
    out->root = root;
    return WR_OK;
}

wr_status wr_json_load_max(wr_json_doc *out, const char *path, size_t max_bytes) {
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    size_t n = 0;
    WR_TRY(wr_read_small_file(&buf, &n, path, max_bytes, "a config"));
    wr_status st = wr_json_parse(out, buf, n, path);
    free(buf);
    return st;
}

wr_status wr_json_load(wr_json_doc *out, const char *path) {
    return wr_json_load_max(out, path, WR_CONFIG_MAX_BYTES);
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
                   wr_json_kind_name(got));
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
                               doc->path, f->name, i, wr_json_kind_name(it));
            ((wr_json_double_array *)dst)->v[i] = it->valuedouble;
        } else if (f->kind == WR_JSON_BOOL_ARRAY) {
            if (!cJSON_IsBool(it))
                return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s'[%d] must be a boolean, got %s",
                               doc->path, f->name, i, wr_json_kind_name(it));
            ((wr_json_int_array *)dst)->v[i] = cJSON_IsTrue(it);
        } else {
            int64_t x;
            if (!as_int(it, &x))
                return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s'[%d] must be an integer, got %s",
                               doc->path, f->name, i, wr_json_kind_name(it));
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

/* ---- UTF-8 ---- */

size_t wr_utf8_char_len(const unsigned char *p, size_t n) {
    const unsigned c = p[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0; /* overlong */
        if (c == 0xED) hi = 0x9F; /* U+D800..U+DFFF, the surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90; /* overlong */
        if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
    } else
        return 0; /* a continuation byte, C0/C1 (overlong), F5..FF */
    if (n < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    return len;
}

char *wr_utf8_sanitize(const char *s) {
    const size_t n = strlen(s);
    char *out = malloc(3 * n + 1); /* each byte at most U+FFFD's three */
    if (out == NULL) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        const size_t k = wr_utf8_char_len(p + i, n - i);
        if (k == 0) {
            out[o++] = (char)0xEF, out[o++] = (char)0xBF, out[o++] = (char)0xBD;
            i++;
        } else {
            memcpy(out + o, p + i, k);
            o += k, i += k;
        }
    }
    out[o] = '\0';
    return out;
}
