/*
 * levels.c — the low_mem_level presets, parsed from configs/levels.json as compiled in.
 */
#include "vram/levels.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "wr_levels_json.h"

int wr_mem_policy_parse(const char *field, const char *v) {
    if (!strcmp(field, "vae")) return !strcmp(v, "tiled") ? 1 : !strcmp(v, "untiled") ? 0 : -1;
    return !strcmp(v, "stream") ? 1 : !strcmp(v, "resident") ? 0 : -1;
}

wr_status wr_mem_policy_of_level(int level, wr_mem_policy *out) {
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_Parse(wr_levels_json);
    const cJSON *levels = root ? cJSON_GetObjectItem(root, "levels") : NULL, *e;
    wr_status st = WR_FAIL(WR_ERR_INVALID_ARG, "--low-mem-level %d: must be 0..3 (or auto)", level);
    cJSON_ArrayForEach(e, levels) {
        const cJSON *l = cJSON_GetObjectItem(e, "level");
        if (!cJSON_IsNumber(l) || (int)l->valuedouble != level) continue;
        const char *te = cJSON_GetStringValue(cJSON_GetObjectItem(e, "text_encoder"));
        const char *dit = cJSON_GetStringValue(cJSON_GetObjectItem(e, "dit"));
        const char *vae = cJSON_GetStringValue(cJSON_GetObjectItem(e, "vae"));
        out->te_stream = te ? wr_mem_policy_parse("text_encoder", te) : -1;
        out->dit_stream = dit ? wr_mem_policy_parse("dit", dit) : -1;
        out->vae_tiled = vae ? wr_mem_policy_parse("vae", vae) : -1;
        st = out->te_stream < 0 || out->dit_stream < 0 || out->vae_tiled < 0
                 ? WR_FAIL(WR_ERR_INTERNAL, "configs/levels.json: level %d has a bad field", level)
                 : WR_OK;
        break;
    }
    cJSON_Delete(root);
    return st;
}
