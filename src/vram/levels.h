/*
 * levels.h — low_mem_level presets (configs/levels.json, compiled in; DESIGN.md §4).
 */
#ifndef WR_VRAM_LEVELS_H
#define WR_VRAM_LEVELS_H

#include "core/status.h"

typedef struct wr_mem_policy {
    int te_stream;  /* text encoder: 0 resident on the device; 1 streamed by layer, freed after
                       encoding */
    int dit_stream; /* DiT: 0 resident; 1 streamed by block, on the device only while denoising */
    int vae_tiled;  /* VAE: 1 tiled decode */
} wr_mem_policy;

/* The preset of low_mem_level 0..3; WR_ERR_INVALID_ARG otherwise. */
wr_status wr_mem_policy_of_level(int level, wr_mem_policy *out);
/* "resident" | "stream" -> 0 | 1, "tiled" | "untiled" -> 1 | 0; -1 for anything else. */
int wr_mem_policy_parse(const char *field, const char *value);

#endif /* WR_VRAM_LEVELS_H */
