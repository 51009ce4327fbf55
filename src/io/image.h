/*
 * image.h — the conditioning image of Wan2.2 TI2V (`--image FILE`): read as PIL reads it and
 * resized as PIL resizes it, so that the pixels wanrun encodes are the ones a diffusers user's
 * `load_image(path)` + `WanImageToVideoPipeline` (VaeImageProcessor.preprocess) encode.
 *
 * Reading: PNG through libpng, JPEG through libjpeg(-turbo), told apart by their signatures
 * (anything else is WR_ERR_FORMAT naming the file). Every image becomes 8-bit RGB as PIL's
 * Image.convert("RGB") makes it: gray replicated, a palette expanded (its transparency
 * ignored), alpha dropped (not composited), 16-bit samples cut to their high byte (libpng's
 * strip, PIL's "RGB;16B" unpacking), 1/2/4-bit gray scaled to 0..255; JPEG with libjpeg's
 * defaults (islow IDCT, fancy upsampling), as PIL decodes it. CMYK JPEGs are refused
 * (WR_ERR_UNSUPPORTED). Sides up to WR_IMAGE_MAX_SIDE.
 *
 * Resizing: wr_image_resize is PIL's Image.resize(size, Image.LANCZOS) bit for bit (Pillow's
 * Resample.c: separable Lanczos-3 with the support widened by the scale when shrinking, the
 * coefficients normalised and rounded to 22-bit fixed point, two passes each rounding to 8
 * bits and clamping). The order of the passes is Pillow 13's, measured (tests/test_image.c over
 * the four cases): when one side shrinks and the other grows, the shrinking pass first; else
 * the horizontal one first. (Pillow's own C core always runs horizontal first; 13 reorders.)
 * The same size is a copy (as PIL returns one).
 */
#ifndef WR_IO_IMAGE_H
#define WR_IO_IMAGE_H

#include <stdint.h>

#include "core/status.h"

#define WR_IMAGE_MAX_SIDE 16384

typedef struct wr_image {
    int w, h;
    uint8_t *rgb; /* [h][w][3] */
} wr_image;

/* WR_ERR_NOT_FOUND / WR_ERR_IO (the file), WR_ERR_FORMAT (not a PNG or JPEG, or corrupt: the
 * library's message), WR_ERR_UNSUPPORTED (CMYK), WR_ERR_INVALID_ARG (a side above the bound),
 * WR_ERR_OOM_HOST. */
wr_status wr_image_load(wr_image *out, const char *path);
/* out = in resized to w x h (each in [1, WR_IMAGE_MAX_SIDE]). */
wr_status wr_image_resize(wr_image *out, const wr_image *in, int w, int h);
void wr_image_free(wr_image *im);

#endif /* WR_IO_IMAGE_H */
