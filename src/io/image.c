/* image.c — PNG / JPEG reading and PIL's Lanczos resize (see image.h). */
#include "io/image.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* after <stdio.h>: jpeglib.h uses FILE and size_t without including their headers */
#include <jpeglib.h>
#include <png.h>

#define WR_PI 3.14159265358979323846 /* M_PI, as Pillow uses it */

void wr_image_free(wr_image *im) {
    if (im == NULL) return;
    free(im->rgb);
    memset(im, 0, sizeof *im);
}

static wr_status alloc_rgb(wr_image *im, int w, int h, const char *path) {
    if (w < 1 || h < 1 || w > WR_IMAGE_MAX_SIDE || h > WR_IMAGE_MAX_SIDE)
        return WR_FAIL(WR_ERR_INVALID_ARG, "%s: %dx%d: each side must be in [1, %d]", path, w, h,
                       WR_IMAGE_MAX_SIDE);
    im->rgb = malloc((size_t)w * (size_t)h * 3);
    if (im->rgb == NULL)
        return WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory for %dx%d pixels", path, w, h);
    im->w = w, im->h = h;
    return WR_OK;
}

/* ---- PNG ---- */

typedef struct png_err {
    jmp_buf jb;
    char msg[200];
} png_err;

static void png_on_error(png_structp p, png_const_charp msg) {
    png_err *e = png_get_error_ptr(p);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    longjmp(e->jb, 1);
}

static void png_on_warning(png_structp p, png_const_charp msg) {
    (void)p, (void)msg; /* e.g. a bad CRC in an ancillary chunk: libpng goes on, so do we */
}

static wr_status load_png(wr_image *out, FILE *f, const char *path) {
    png_err err = {.msg = ""};
    png_structp p =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_on_error, png_on_warning);
    png_infop info = p ? png_create_info_struct(p) : NULL;
    png_bytep *rows = NULL;
    wr_image im = {0};
    volatile wr_status st = WR_OK;
    if (info == NULL) {
        png_destroy_read_struct(&p, NULL, NULL);
        return WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory", path);
    }
    if (setjmp(err.jb)) {
        st = WR_FAIL(WR_ERR_FORMAT, "%s: not a readable PNG: %s", path, err.msg);
        goto done;
    }
    png_init_io(p, f);
    png_set_user_limits(p, WR_IMAGE_MAX_SIDE, WR_IMAGE_MAX_SIDE);
    png_read_info(p, info);
    const int ct = png_get_color_type(p, info), depth = png_get_bit_depth(p, info);
    /* as PIL's convert("RGB"): 8 bits, RGB, no alpha, palette expanded, gray replicated */
    if (depth == 16) png_set_strip_16(p);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);
    if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(p);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(p);
    if (ct & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(p);
    png_set_interlace_handling(p);
    png_read_update_info(p, info);
    const int w = (int)png_get_image_width(p, info), h = (int)png_get_image_height(p, info);
    if (png_get_rowbytes(p, info) != (size_t)w * 3) {
        st = WR_FAIL(WR_ERR_FORMAT, "%s: PNG colour type %d, depth %d did not become 8-bit RGB",
                     path, ct, depth);
        goto done;
    }
    st = alloc_rgb(&im, w, h, path);
    if (st != WR_OK) goto done;
    rows = malloc(sizeof *rows * (size_t)h);
    if (rows == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory", path);
        goto done;
    }
    for (int y = 0; y < h; y++) rows[y] = im.rgb + (size_t)y * (size_t)w * 3;
    png_read_image(p, rows);
    png_read_end(p, NULL);
done:
    png_destroy_read_struct(&p, &info, NULL);
    free(rows);
    if (st != WR_OK)
        wr_image_free(&im);
    else
        *out = im;
    return st;
}

/* ---- JPEG ---- */

typedef struct jpg_err {
    struct jpeg_error_mgr mgr;
    jmp_buf jb;
} jpg_err;

static void jpg_on_error(j_common_ptr c) {
    longjmp(((jpg_err *)c->err)->jb, 1);
}

static void jpg_on_message(j_common_ptr c) {
    (void)c; /* warnings (e.g. premature end of data, which libjpeg pads): quiet, as PIL */
}

static wr_status load_jpeg(wr_image *out, FILE *f, const char *path) {
    struct jpeg_decompress_struct d;
    jpg_err err;
    wr_image im = {0};
    volatile wr_status st = WR_OK;
    d.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpg_on_error;
    err.mgr.output_message = jpg_on_message;
    if (setjmp(err.jb)) {
        char msg[JMSG_LENGTH_MAX];
        err.mgr.format_message((j_common_ptr)&d, msg);
        st = WR_FAIL(WR_ERR_FORMAT, "%s: not a readable JPEG: %s", path, msg);
        goto done;
    }
    jpeg_create_decompress(&d);
    jpeg_stdio_src(&d, f);
    jpeg_read_header(&d, TRUE);
    if (d.jpeg_color_space == JCS_CMYK || d.jpeg_color_space == JCS_YCCK) {
        st = WR_FAIL(WR_ERR_UNSUPPORTED, "%s: a CMYK JPEG; convert it to RGB first", path);
        goto done;
    }
    if ((int)d.image_width > WR_IMAGE_MAX_SIDE || (int)d.image_height > WR_IMAGE_MAX_SIDE) {
        st = WR_FAIL(WR_ERR_INVALID_ARG, "%s: %ux%u: each side must be at most %d", path,
                     d.image_width, d.image_height, WR_IMAGE_MAX_SIDE);
        goto done;
    }
    d.out_color_space = JCS_RGB; /* gray replicated, YCbCr converted */
    jpeg_start_decompress(&d);
    st = alloc_rgb(&im, (int)d.output_width, (int)d.output_height, path);
    if (st != WR_OK) goto done;
    while (d.output_scanline < d.output_height) {
        JSAMPROW row = im.rgb + (size_t)d.output_scanline * (size_t)im.w * 3;
        jpeg_read_scanlines(&d, &row, 1);
    }
    jpeg_finish_decompress(&d);
done:
    jpeg_destroy_decompress(&d);
    if (st != WR_OK)
        wr_image_free(&im);
    else
        *out = im;
    return st;
}

wr_status wr_image_load(wr_image *out, const char *path) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return WR_FAIL(errno == ENOENT ? WR_ERR_NOT_FOUND : WR_ERR_IO, "%s: cannot open: %s", path,
                       strerror(errno));
    unsigned char sig[8] = {0};
    const size_t n = fread(sig, 1, sizeof sig, f);
    rewind(f);
    wr_status st;
    if (n == 8 && png_sig_cmp(sig, 0, 8) == 0)
        st = load_png(out, f, path);
    else if (n >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF)
        st = load_jpeg(out, f, path);
    else
        st = WR_FAIL(WR_ERR_FORMAT, "%s: neither a PNG nor a JPEG (by its first bytes)", path);
    fclose(f);
    return st;
}

/* ---- PIL's resize (Pillow src/libImaging/Resample.c) ---- */

#define PRECISION_BITS (32 - 8 - 2)

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= WR_PI;
    return sin(x) / x;
}

static double lanczos3(double x) {
    return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0;
}

/* Per output index: the first input index and the count, and ksize coefficients in 22-bit
 * fixed point. Returns ksize, 0 on no memory. */
static int coeffs(int in_size, int out_size, int **bounds_out, int32_t **kk_out) {
    const double scale = (double)in_size / out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = 3.0 * filterscale;
    const int ksize = (int)ceil(support) * 2 + 1;
    double *kk = malloc(sizeof *kk * (size_t)out_size * (size_t)ksize);
    int *bounds = malloc(sizeof *bounds * (size_t)out_size * 2);
    int32_t *ik = malloc(sizeof *ik * (size_t)out_size * (size_t)ksize);
    if (kk == NULL || bounds == NULL || ik == NULL) {
        free(kk), free(bounds), free(ik);
        return 0;
    }
    for (int xx = 0; xx < out_size; xx++) {
        const double center = (xx + 0.5) * scale, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = kk + (size_t)xx * (size_t)ksize, ww = 0.0;
        int x = 0;
        for (; x < xmax; x++) {
            const double w = lanczos3((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0.0;
        bounds[2 * xx] = xmin, bounds[2 * xx + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * (size_t)ksize; i++)
        ik[i] = kk[i] < 0 ? (int32_t)(-0.5 + kk[i] * (1 << PRECISION_BITS))
                          : (int32_t)(0.5 + kk[i] * (1 << PRECISION_BITS));
    free(kk);
    *bounds_out = bounds, *kk_out = ik;
    return ksize;
}

static uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* One pass of width w_in x h_in -> w_out x h_out where only one side changes: horizontal
 * (h_in == h_out) over rows, or vertical (w_in == w_out) over columns, with the side's bounds
 * and coefficients, into out (w_out x h_out RGB). */
static void pass(uint8_t *out, const uint8_t *in, int w_in, int w_out, int h_out, int vertical,
                 const int *bounds, const int32_t *kk, int ksize) {
    for (int yy = 0; yy < h_out; yy++)
        for (int xx = 0; xx < w_out; xx++) {
            const int o = vertical ? yy : xx, lo = bounds[2 * o], n = bounds[2 * o + 1];
            const int32_t *k = kk + (size_t)o * (size_t)ksize;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int j = 0; j < n; j++) {
                const uint8_t *p = vertical
                                       ? in + ((size_t)(lo + j) * (size_t)w_in + (size_t)xx) * 3
                                       : in + ((size_t)yy * (size_t)w_in + (size_t)(lo + j)) * 3;
                s0 += p[0] * k[j], s1 += p[1] * k[j], s2 += p[2] * k[j];
            }
            uint8_t *q = out + ((size_t)yy * (size_t)w_out + (size_t)xx) * 3;
            q[0] = clip8(s0), q[1] = clip8(s1), q[2] = clip8(s2);
        }
}

wr_status wr_image_resize(wr_image *out, const wr_image *in, int w, int h) {
    memset(out, 0, sizeof *out);
    WR_TRY(alloc_rgb(out, w, h, "resize"));
    if (w == in->w && h == in->h) { /* PIL returns a copy */
        memcpy(out->rgb, in->rgb, (size_t)w * (size_t)h * 3);
        return WR_OK;
    }
    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL;
    const int ksh = coeffs(in->w, w, &bh, &kh), ksv = coeffs(in->h, h, &bv, &kv);
    wr_status st = ksh && ksv ? WR_OK : WR_FAIL(WR_ERR_OOM_HOST, "resize: out of host memory");
    const int need_h = w != in->w, need_v = h != in->h;
    /* the two passes' order as Pillow 13 runs them (measured against it, tests/test_image.c):
     * the shrinking one first when the other grows, else the horizontal one first (each pass
     * rounds to 8 bits, so the order shows in the last bit) */
    const int v_first = need_h && need_v && w > in->w && h < in->h;
    uint8_t *tmp = need_h && need_v
                       ? malloc((size_t)(v_first ? in->w : w) * (size_t)(v_first ? h : in->h) * 3)
                       : NULL;
    if (st == WR_OK && need_h && need_v && tmp == NULL)
        st = WR_FAIL(WR_ERR_OOM_HOST, "resize: out of host memory");
    if (st == WR_OK && v_first) {
        pass(tmp, in->rgb, in->w, in->w, h, 1, bv, kv, ksv);
        pass(out->rgb, tmp, in->w, w, h, 0, bh, kh, ksh);
    } else if (st == WR_OK && need_h && need_v) {
        pass(tmp, in->rgb, in->w, w, in->h, 0, bh, kh, ksh);
        pass(out->rgb, tmp, w, w, h, 1, bv, kv, ksv);
    } else if (st == WR_OK) {
        pass(out->rgb, in->rgb, in->w, w, h, need_v, need_v ? bv : bh, need_v ? kv : kh,
             need_v ? ksv : ksh);
    }
    free(tmp), free(bh), free(bv), free(kh), free(kv);
    if (st != WR_OK) wr_image_free(out);
    return st;
}
