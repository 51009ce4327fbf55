/*
 * test_video.c — video output: the 8-bit rule and PNG frames (read back with libpng), Y4M
 * bytes (parsed here, and read back through libavformat), MP4 read back and decoded with
 * libavformat/libavcodec (frame count, size, rate, colour tags, PSNR), errors, atomicity.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>

#include "harness.h"
#include "io/video.h"
#include "wr_build_config.h"

#if WR_HAVE_FFMPEG
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
#endif

/* ---- helpers ---- */

static uint8_t *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(s, f);
    fclose(f);
}

static int file_equals(const char *path, const char *s) {
    size_t n = 0;
    uint8_t *b = read_all(path, &n);
    int eq = b != NULL && n == strlen(s) && memcmp(b, s, n) == 0;
    free(b);
    return eq;
}

static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/*
 * Synthetic video [3, N, H, W] in [0, 1]: smooth gradients that drift over time plus a
 * soft-edged saturated disc that moves across the frame, with exact 0 and 1 in the corners.
 */
static float *make_frames(int64_t n, int64_t h, int64_t w) {
    float *v = malloc(sizeof(float) * 3 * (size_t)(n * h * w));
    ck_assert_ptr_nonnull(v);
    for (int64_t f = 0; f < n; f++) {
        double cx = (0.2 + 0.6 * (double)f / (double)(n > 1 ? n - 1 : 1)) * (double)w;
        double cy = (0.3 + 0.4 * (double)f / (double)(n > 1 ? n - 1 : 1)) * (double)h;
        double rad = 0.22 * (double)(h < w ? h : w);
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++) {
                double u = (double)x / (double)(w - 1), t = (double)y / (double)(h - 1);
                double rgb[3] = {u, t, 0.5 + 0.4 * sin(6.283185307 * (u + 0.1 * (double)f))};
                double d = sqrt((x - cx) * (x - cx) + (y - cy) * (y - cy));
                double a = d < rad - 1.5 ? 1.0 : d > rad + 1.5 ? 0.0 : (rad + 1.5 - d) / 3.0;
                const double disc[3] = {1.0, 0.15, 0.05};
                for (int c = 0; c < 3; c++) rgb[c] = (1 - a) * rgb[c] + a * disc[c];
                if (x == 0 && y == 0) rgb[0] = rgb[1] = rgb[2] = 0.0;
                if (x == w - 1 && y == h - 1) rgb[0] = rgb[1] = rgb[2] = 1.0;
                for (int c = 0; c < 3; c++) v[((c * n + f) * h + y) * w + x] = (float)rgb[c];
            }
    }
    return v;
}

/* The 8-bit rule, stated independently: numpy's (x * 255).astype(np.uint8) on float32. */
static uint8_t expect_u8(float x) {
    float c = x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;
    return (uint8_t)(c * 255.0f);
}

/* Expected 8-bit RGB, [N, H, W, 3]. */
static uint8_t *expect_rgb(const float *v, int64_t n, int64_t h, int64_t w) {
    uint8_t *o = malloc(3 * (size_t)(n * h * w));
    ck_assert_ptr_nonnull(o);
    for (int64_t f = 0; f < n; f++)
        for (int64_t i = 0; i < h * w; i++)
            for (int c = 0; c < 3; c++)
                o[(f * h * w + i) * 3 + c] = expect_u8(v[(c * n + f) * h * w + i]);
    return o;
}

/* JFIF full-range YCbCr with libjpeg's (jccolor.c) fixed-point coefficients. */
static void expect_ycc(const uint8_t *rgb, uint8_t out[3]) {
    int r = rgb[0], g = rgb[1], b = rgb[2];
    int y = (19595 * r + 38470 * g + 7471 * b + 32768) >> 16;
    int cb = (-11059 * r - 21709 * g + 32768 * b + (128 << 16) + 32768) >> 16;
    int cr = (32768 * r - 27439 * g - 5329 * b + (128 << 16) + 32768) >> 16;
    out[0] = (uint8_t)(y > 255 ? 255 : y);
    out[1] = (uint8_t)(cb > 255 ? 255 : cb);
    out[2] = (uint8_t)(cr > 255 ? 255 : cr);
}

/* Reads an 8-bit RGB PNG with libpng's simplified API; returns H*W*3 bytes (caller frees). */
static uint8_t *read_png_rgb(const char *path, int64_t *h, int64_t *w) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    ck_assert_msg(png_image_begin_read_from_file(&img, path), "%s: %s", path, img.message);
    ck_assert_int_eq(img.format & PNG_FORMAT_FLAG_COLOR, PNG_FORMAT_FLAG_COLOR);
    ck_assert_int_eq(img.format & PNG_FORMAT_FLAG_ALPHA, 0);
    img.format = PNG_FORMAT_RGB;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
    ck_assert_ptr_nonnull(buf);
    ck_assert_msg(png_image_finish_read(&img, NULL, buf, 0, NULL), "%s: %s", path, img.message);
    *h = img.height;
    *w = img.width;
    return buf;
}

/* ---- format from the path ---- */

START_TEST(test_format_of) {
    ck_assert_int_eq(wr_video_format_of("out.mp4"), WR_VIDEO_MP4);
    ck_assert_int_eq(wr_video_format_of("dir.v2/OUT.MP4"), WR_VIDEO_MP4);
    ck_assert_int_eq(wr_video_format_of("/tmp/a.y4m"), WR_VIDEO_Y4M);
    ck_assert_int_eq(wr_video_format_of("frames"), WR_VIDEO_PNG);
    ck_assert_int_eq(wr_video_format_of("runs/v1.0/frames"), WR_VIDEO_PNG); /* dot in a parent */
    ck_assert_int_eq(wr_video_format_of("frames.d/"), WR_VIDEO_PNG);
    ck_assert_int_eq(wr_video_format_of(".hidden"), WR_VIDEO_PNG);
    /* cannot tell: AUTO, and writing there fails with the reason */
    ck_assert_int_eq(wr_video_format_of("out.avi"), WR_VIDEO_AUTO);
    ck_assert_int_eq(wr_video_format_of("out.png"), WR_VIDEO_AUTO);
    ck_assert_int_eq(wr_video_format_of(""), WR_VIDEO_AUTO);
    ck_assert_int_eq(wr_video_format_of(NULL), WR_VIDEO_AUTO);
    ck_assert_int_eq(wr_video_check("out.avi", WR_VIDEO_AUTO, 8, 8), WR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "'.avi'"));
    ck_assert_int_eq(wr_video_check("", WR_VIDEO_AUTO, 8, 8), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_video_check(NULL, WR_VIDEO_PNG, 8, 8), WR_ERR_INVALID_ARG);
    ck_assert_str_eq(wr_video_format_name(WR_VIDEO_Y4M), "y4m");
    ck_assert_str_eq(wr_video_format_name(WR_VIDEO_AUTO), "auto");
}
END_TEST

/* ---- PNG: the 8-bit rule on chosen values, and a whole directory ---- */

START_TEST(test_u8_rule_png) {
    char dbuf[4096], path[4200];
    const char *dir = wr_test_dir("u8", dbuf, sizeof dbuf);
    /* One frame, 1 x 8, grey (R = G = B). 0.5 -> 127.5 and 0.9999 -> 254.97 tell truncation
     * (export_to_video) from rounding (numpy_to_pil: 128, 255); out of range clamps. */
    const float vals[8] = {0.0f, 1.0f, 0.5f, 0.9999f, 0.2f, 1e-3f, -0.5f, 1.5f};
    const uint8_t want[8] = {0, 255, 127, 254, 51, 0, 0, 255};
    float v[3 * 8];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 8; i++) v[c * 8 + i] = vals[i];
    snprintf(path, sizeof path, "%s/frames", dir);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, 1, 1, 8, 0.0), WR_OK);
    snprintf(path, sizeof path, "%s/frames/frame_00000.png", dir);
    int64_t h = 0, w = 0;
    uint8_t *img = read_png_rgb(path, &h, &w);
    ck_assert_int_eq(h, 1);
    ck_assert_int_eq(w, 8);
    for (int i = 0; i < 8; i++)
        for (int c = 0; c < 3; c++)
            ck_assert_msg(img[3 * i + c] == want[i], "x = %g: got %d, want %d", vals[i],
                          img[3 * i + c], want[i]);
    free(img);
    wr_test_rmtree(dir);
}
END_TEST

START_TEST(test_png_dir) {
    char dbuf[4096], path[4200], file[4300];
    const char *dir = wr_test_dir("png", dbuf, sizeof dbuf);
    const int64_t n = 9, h = 48, w = 64;
    float *v = make_frames(n, h, w);
    uint8_t *want = expect_rgb(v, n, h, w);
    snprintf(path, sizeof path, "%s/frames/", dir); /* trailing slash: a directory */
    ck_assert_int_eq(wr_video_check(path, WR_VIDEO_AUTO, h, w), WR_OK);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, n, h, w, 16.0), WR_OK);
    ck_assert_int_eq(wr_test_count_entries(path, ""), (int)n);
    ck_assert_int_eq(wr_test_count_entries(dir, WR_ATOMIC_TMP_TAG), 0);
    for (int64_t f = 0; f < n; f++) {
        snprintf(file, sizeof file, "%sframe_%05lld.png", path, (long long)f);
        int64_t rh = 0, rw = 0;
        uint8_t *img = read_png_rgb(file, &rh, &rw);
        ck_assert_int_eq(rh, h);
        ck_assert_int_eq(rw, w);
        ck_assert_msg(memcmp(img, want + f * h * w * 3, (size_t)(h * w * 3)) == 0,
                      "frame %lld differs from the 8-bit conversion", (long long)f);
        free(img);
    }

    /* A non-empty destination is refused; an empty directory is replaced. */
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_PNG, v, n, h, w, 16.0), WR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "not empty"));
    ck_assert_int_eq(wr_test_count_entries(path, ""), (int)n);
    snprintf(path, sizeof path, "%s/empty", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_PNG, v, 2, h, w, 16.0), WR_OK);
    ck_assert_int_eq(wr_test_count_entries(path, ".png"), 2);
    /* A file where the directory should go is refused. */
    snprintf(path, sizeof path, "%s/afile", dir);
    write_text(path, "keep");
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_PNG, v, 2, h, w, 16.0), WR_ERR_INVALID_ARG);
    ck_assert(file_equals(path, "keep"));
    ck_assert_int_eq(wr_test_count_entries(dir, WR_ATOMIC_TMP_TAG), 0);
    free(v);
    free(want);
    wr_test_rmtree(dir);
}
END_TEST

/* ---- Y4M: exact bytes, hand-computed colours ---- */

/* Parses a C444 Y4M written by wr_video_write: checks the header, returns the YCbCr planes of
 * every frame ([N][Y, Cb, Cr][H*W], caller frees). */
static uint8_t *parse_y4m(const char *path, const char *want_header, int64_t n, int64_t h,
                          int64_t w) {
    size_t len = 0;
    uint8_t *b = read_all(path, &len);
    ck_assert_ptr_nonnull(b);
    size_t hl = strlen(want_header);
    ck_assert_msg(len >= hl && memcmp(b, want_header, hl) == 0, "header is not '%s'", want_header);
    size_t fsz = 3 * (size_t)(h * w);
    ck_assert_uint_eq(len, hl + (size_t)n * (6 + fsz));
    uint8_t *planes = malloc((size_t)n * fsz);
    ck_assert_ptr_nonnull(planes);
    const uint8_t *p = b + hl;
    for (int64_t f = 0; f < n; f++) {
        ck_assert_msg(memcmp(p, "FRAME\n", 6) == 0, "frame %lld: no FRAME marker", (long long)f);
        memcpy(planes + f * fsz, p + 6, fsz);
        p += 6 + fsz;
    }
    free(b);
    return planes;
}

START_TEST(test_y4m_known_colours) {
    char dbuf[4096], path[4200];
    const char *dir = wr_test_dir("y4m_known", dbuf, sizeof dbuf);
    /* black, white, red, green, blue, grey 0.5 (-> 127) */
    const float rgb[6][3] = {{0, 0, 0}, {1, 1, 1}, {1, 0, 0},
                             {0, 1, 0}, {0, 0, 1}, {.5f, .5f, .5f}};
    /* JFIF by hand: Y = .299R + .587G + .114B, Cb = 128 + .5(B - Y)/(1 - .114),
     * Cr = 128 + .5(R - Y)/(1 - .299), rounded, clamped to 255 (red's Cr = 255.5). */
    const uint8_t want[3][6] = {
        {0, 255, 76, 150, 29, 127}, {128, 128, 85, 44, 255, 128}, {128, 128, 255, 21, 107, 128}};
    float v[3 * 6];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 6; i++) v[c * 6 + i] = rgb[i][c];
    snprintf(path, sizeof path, "%s/c.y4m", dir);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, 1, 1, 6, 0.0), WR_OK);
    /* fps 0 is the default 16 */
    uint8_t *pl = parse_y4m(path, "YUV4MPEG2 W6 H1 F16:1 Ip A1:1 C444 XCOLORRANGE=FULL\n", 1, 1, 6);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 6; i++)
            ck_assert_msg(pl[k * 6 + i] == want[k][i], "plane %d pixel %d: got %d, want %d", k, i,
                          pl[k * 6 + i], want[k][i]);
    free(pl);
    wr_test_rmtree(dir);
}
END_TEST

#if WR_HAVE_FFMPEG

/* ---- reading back through libavformat / libavcodec ---- */

typedef struct readback {
    int64_t frames, w, h;
    AVRational rate;
    int64_t nb_frames; /* as the container says */
    enum AVCodecID codec;
    int profile;
    int pix_fmt;
    enum AVColorRange range;
    enum AVColorSpace space;
    double min_psnr, mean_psnr; /* RGB, per frame, vs the expected 8-bit frames */
    int max_abs;
} readback;

/* Opens `path`, decodes every frame of its video stream, converts each back to RGB24 with
 * the matrix and range the stream declares (BT.601 when unspecified), and compares with
 * `want` ([N, H, W, 3]) while frames last. */
static readback read_back(const char *path, const uint8_t *want, int64_t n) {
    readback r = {.min_psnr = INFINITY};
    AVFormatContext *ic = NULL;
    ck_assert_int_eq(avformat_open_input(&ic, path, NULL, NULL), 0);
    ck_assert_int_ge(avformat_find_stream_info(ic, NULL), 0);
    int si = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    ck_assert_int_ge(si, 0);
    AVStream *st = ic->streams[si];
    r.codec = st->codecpar->codec_id;
    r.w = st->codecpar->width;
    r.h = st->codecpar->height;
    r.profile = st->codecpar->profile;
    r.pix_fmt = st->codecpar->format;
    r.range = st->codecpar->color_range;
    r.space = st->codecpar->color_space;
    r.rate = st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate;
    r.nb_frames = st->nb_frames;

    const AVCodec *dec = avcodec_find_decoder(r.codec);
    ck_assert_ptr_nonnull(dec);
    AVCodecContext *dc = avcodec_alloc_context3(dec);
    ck_assert_int_ge(avcodec_parameters_to_context(dc, st->codecpar), 0);
    dc->thread_count = 1;
    ck_assert_int_eq(avcodec_open2(dc, dec, NULL), 0);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    uint8_t *rgb = malloc(3 * (size_t)(r.w * r.h));
    double sum_psnr = 0;
    int eof = 0;
    while (!eof) {
        int ret = av_read_frame(ic, pkt);
        if (ret < 0) {
            eof = 1;
            ck_assert_int_eq(avcodec_send_packet(dc, NULL), 0);
        } else {
            if (pkt->stream_index == si) ck_assert_int_eq(avcodec_send_packet(dc, pkt), 0);
            av_packet_unref(pkt);
        }
        while (avcodec_receive_frame(dc, fr) == 0) {
            int full = fr->color_range == AVCOL_RANGE_JPEG;
            int cs = fr->colorspace == AVCOL_SPC_BT709 ? SWS_CS_ITU709 : SWS_CS_ITU601;
            struct SwsContext *sws = sws_getContext(
                fr->width, fr->height, fr->format, fr->width, fr->height, AV_PIX_FMT_RGB24,
                SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL, NULL);
            ck_assert_ptr_nonnull(sws);
            sws_setColorspaceDetails(sws, sws_getCoefficients(cs), full, sws_getCoefficients(cs), 1,
                                     0, 1 << 16, 1 << 16);
            uint8_t *dst[4] = {rgb, NULL, NULL, NULL};
            int dst_stride[4] = {3 * fr->width, 0, 0, 0};
            sws_scale(sws, (const uint8_t *const *)fr->data, fr->linesize, 0, fr->height, dst,
                      dst_stride);
            sws_freeContext(sws);
            if (r.frames < n && fr->width == r.w && fr->height == r.h) {
                const uint8_t *ref = want + r.frames * r.w * r.h * 3;
                double se = 0;
                for (int64_t i = 0; i < r.w * r.h * 3; i++) {
                    int d = (int)rgb[i] - (int)ref[i];
                    se += (double)d * d;
                    if (abs(d) > r.max_abs) r.max_abs = abs(d);
                }
                double mse = se / (double)(r.w * r.h * 3);
                double psnr = mse > 0 ? 10.0 * log10(255.0 * 255.0 / mse) : 99.0;
                sum_psnr += psnr;
                if (psnr < r.min_psnr) r.min_psnr = psnr;
            }
            r.frames++;
            av_frame_unref(fr);
        }
    }
    r.mean_psnr = r.frames ? sum_psnr / (double)(r.frames < n ? r.frames : n) : 0;
    free(rgb);
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&dc);
    avformat_close_input(&ic);
    return r;
}

#endif /* WR_HAVE_FFMPEG */

START_TEST(test_y4m_frames) {
    char dbuf[4096], path[4200];
    const char *dir = wr_test_dir("y4m", dbuf, sizeof dbuf);
    const int64_t n = 9, h = 48, w = 64;
    float *v = make_frames(n, h, w);
    uint8_t *want = expect_rgb(v, n, h, w);
    snprintf(path, sizeof path, "%s/v.y4m", dir);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, n, h, w, 16.0), WR_OK);
    uint8_t *pl =
        parse_y4m(path, "YUV4MPEG2 W64 H48 F16:1 Ip A1:1 C444 XCOLORRANGE=FULL\n", n, h, w);
    /* Exact bytes vs libjpeg's fixed-point conversion of the expected RGB, and within 1 of the
     * JFIF formula in double precision (an independent check of the coefficients). */
    int64_t hw = h * w, far = 0;
    for (int64_t f = 0; f < n; f++)
        for (int64_t i = 0; i < hw; i++) {
            const uint8_t *px = want + (f * hw + i) * 3;
            uint8_t e[3];
            expect_ycc(px, e);
            double yy = 0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2];
            double ex[3] = {yy, 128 + (px[2] - yy) / 1.772, 128 + (px[0] - yy) / 1.402};
            for (int k = 0; k < 3; k++) {
                uint8_t got = pl[f * 3 * hw + k * hw + i];
                ck_assert_msg(got == e[k], "frame %lld plane %d pixel %lld: got %d, want %d",
                              (long long)f, k, (long long)i, got, e[k]);
                double exk = ex[k] > 255 ? 255 : ex[k];
                if (fabs(got - exk) > 1.0) far++;
            }
        }
    ck_assert_int_eq(far, 0);
    free(pl);

#if WR_HAVE_FFMPEG
    /* FFmpeg reads it as full-range 4:4:4 and gets the RGB back within rounding: measured max
     * abs 1, PSNR 53 dB (8-bit YCbCr quantisation through swscale's inverse); bound 3. */
    readback r = read_back(path, want, n);
    ck_assert_int_eq(r.codec, AV_CODEC_ID_RAWVIDEO);
    ck_assert_int_eq(r.pix_fmt, AV_PIX_FMT_YUV444P);
    ck_assert_int_eq(r.range, AVCOL_RANGE_JPEG);
    ck_assert_int_eq(r.w, w);
    ck_assert_int_eq(r.h, h);
    ck_assert_int_eq(r.frames, n);
    ck_assert_int_eq(r.rate.num * 1, 16 * r.rate.den);
    fprintf(stderr, "y4m via libavformat: max abs %d, min PSNR %.2f dB\n", r.max_abs, r.min_psnr);
    ck_assert_int_le(r.max_abs, 3);
#endif
    free(v);
    free(want);
    wr_test_rmtree(dir);
}
END_TEST

/* ---- MP4 ---- */

START_TEST(test_mp4) {
    char dbuf[4096], path[4200];
    const char *dir = wr_test_dir("mp4", dbuf, sizeof dbuf);
    /* 64x48 and 72x40 (not multiples of 16: the encoder pads and crops), at 16 and at
     * 24000/1001 fps. */
    const int64_t sizes[2][2] = {{48, 64}, {40, 72}};
    const double fps[2] = {16.0, 24000.0 / 1001.0};
    const int rate[2][2] = {{16, 1}, {24000, 1001}};
    const int64_t n = 9;
    for (int k = 0; k < 2; k++) {
        int64_t h = sizes[k][0], w = sizes[k][1];
        float *v = make_frames(n, h, w);
        uint8_t *want = expect_rgb(v, n, h, w);
        snprintf(path, sizeof path, "%s/v%d.mp4", dir, k);
#if WR_HAVE_FFMPEG
        ck_assert_int_eq(wr_video_check(path, WR_VIDEO_AUTO, h, w), WR_OK);
        ck_assert_msg(wr_video_write(path, WR_VIDEO_AUTO, v, n, h, w, fps[k]) == WR_OK, "%s",
                      wr_error_detail());
        readback r = read_back(path, want, n);
        fprintf(stderr,
                "mp4 %lldx%lld @ %d/%d: %lld frames, PSNR min %.2f mean %.2f dB, max abs %d\n",
                (long long)w, (long long)h, r.rate.num, r.rate.den, (long long)r.frames, r.min_psnr,
                r.mean_psnr, r.max_abs);
        ck_assert_int_eq(r.codec, AV_CODEC_ID_H264);
        ck_assert_int_eq(r.profile, FF_PROFILE_H264_HIGH); /* 8-bit 4:2:0: plays anywhere */
        ck_assert_int_eq(r.pix_fmt, AV_PIX_FMT_YUV420P);
        ck_assert_int_eq(r.w, w);
        ck_assert_int_eq(r.h, h);
        ck_assert_int_eq(r.frames, n);
        ck_assert_int_eq(r.nb_frames, n);
        ck_assert_int_eq((int64_t)r.rate.num * rate[k][1], (int64_t)rate[k][0] * r.rate.den);
        ck_assert_int_eq(r.range, AVCOL_RANGE_MPEG);
        ck_assert_int_eq(r.space, AVCOL_SPC_BT709);
        /* PSNR bound. Measured at CRF 18: min 35.3 dB (64x48) and 35.1 dB (72x40); these tiny
         * frames are hard on 4:2:0 (the saturated disc edge, the single black and white
         * corner pixels); the same content at 832x480 gives 46 dB, and the conversion alone
         * (lossless x264) 40-41 dB here. Broken variants measured on these frames: reading
         * back with the BT.601 matrix or the wrong range ~27 dB, frames off by one ~15 dB,
         * R and B swapped ~7 dB. 32 dB separates them with room for other x264 builds. */
        ck_assert_msg(r.min_psnr >= 32.0, "PSNR %.2f dB < 32", r.min_psnr);
#else
        ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, n, h, w, fps[k]),
                         WR_ERR_UNSUPPORTED);
        ck_assert_ptr_nonnull(strstr(wr_error_detail(), "FFmpeg"));
        (void)rate;
        (void)want;
#endif
        free(v);
        free(want);
    }
    ck_assert_int_eq(wr_test_count_entries(dir, WR_ATOMIC_TMP_TAG), 0);
    wr_test_rmtree(dir);
}
END_TEST

/* ---- errors ---- */

START_TEST(test_errors) {
    char dbuf[4096], path[4200];
    const char *dir = wr_test_dir("errors", dbuf, sizeof dbuf);
    float *v = make_frames(2, 8, 8);
    snprintf(path, sizeof path, "%s/v.y4m", dir);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, 0, 8, 8, 16), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, 2, 0, 8, 16), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, 2, 8, -1, 16), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, NULL, 2, 8, 8, 16), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, 2, 8, 8, -1), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, 2, 8, 8, NAN), WR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "--fps"));
    ck_assert_int_eq(wr_video_write(path, (wr_video_format)42, v, 2, 8, 8, 16), WR_ERR_INVALID_ARG);
    /* an unknown extension */
    snprintf(path, sizeof path, "%s/v.avi", dir);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, 2, 8, 8, 16), WR_ERR_INVALID_ARG);
    /* a parent directory that does not exist */
    snprintf(path, sizeof path, "%s/no/such/v.y4m", dir);
    ck_assert_int_eq(wr_video_check(path, WR_VIDEO_AUTO, 8, 8), WR_ERR_IO);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, 2, 8, 8, 16), WR_ERR_IO);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "does not exist"));
    /* a directory where a file should go */
    snprintf(path, sizeof path, "%s/d.y4m", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, 2, 8, 8, 16), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_test_count_entries(path, ""), 0);
    /* odd sizes: refused for MP4 (4:2:0), fine for Y4M and PNG */
    snprintf(path, sizeof path, "%s/odd.mp4", dir);
#if WR_HAVE_FFMPEG
    ck_assert_int_eq(wr_video_check(path, WR_VIDEO_AUTO, 7, 8), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, 1, 8, 7, 16), WR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "even"));
#else
    ck_assert_int_eq(wr_video_check(path, WR_VIDEO_AUTO, 8, 8), WR_ERR_UNSUPPORTED);
#endif
    snprintf(path, sizeof path, "%s/odd.y4m", dir);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, 1, 7, 9, 16), WR_OK);
    snprintf(path, sizeof path, "%s/odd", dir);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, 1, 7, 9, 16), WR_OK);
    /* a frame rate given as a fraction with a small denominator stays exact */
    snprintf(path, sizeof path, "%s/r.y4m", dir);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, 1, 8, 8, 30000.0 / 1001.0), WR_OK);
    free(parse_y4m(path, "YUV4MPEG2 W8 H8 F30000:1001 Ip A1:1 C444 XCOLORRANGE=FULL\n", 1, 8, 8));
    ck_assert_int_eq(wr_test_count_entries(dir, WR_ATOMIC_TMP_TAG), 0);
    free(v);
    wr_test_rmtree(dir);
}
END_TEST

/* ---- atomicity: a failure in the last frame leaves the old file and no temporary ---- */

START_TEST(test_atomic) {
    char dbuf[4096], path[4200];
    const char *dir = wr_test_dir("atomic", dbuf, sizeof dbuf);
    const int64_t n = 5, h = 16, w = 16;
    float *v = make_frames(n, h, w);
    /* The last frame's last pixel of the blue channel is NaN: the writers have written
     * every earlier frame into the temporary by the time they meet it. */
    v[(2 * n + (n - 1)) * h * w + h * w - 1] = NAN;
    const char *names[3] = {"old.y4m", "old.mp4", "frames"};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        if (k < 2) write_text(path, "previous output");
        wr_status st = wr_video_write(path, WR_VIDEO_AUTO, v, n, h, w, 16);
#if !WR_HAVE_FFMPEG
        if (k == 1) {
            ck_assert_int_eq(st, WR_ERR_UNSUPPORTED);
            continue;
        }
#endif
        ck_assert_int_eq(st, WR_ERR_INVALID_ARG);
        ck_assert_ptr_nonnull(strstr(wr_error_detail(), "NaN"));
        ck_assert_ptr_nonnull(strstr(wr_error_detail(), "frame 4"));
        if (k < 2)
            ck_assert(file_equals(path, "previous output"));
        else
            ck_assert(!exists(path));
        ck_assert_int_eq(wr_test_count_entries(dir, WR_ATOMIC_TMP_TAG), 0);
    }
    /* +infinity is refused too */
    v[(2 * n + (n - 1)) * h * w + h * w - 1] = INFINITY;
    snprintf(path, sizeof path, "%s/old.y4m", dir);
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, n, h, w, 16), WR_ERR_INVALID_ARG);
    ck_assert(file_equals(path, "previous output"));
    /* and a good write replaces the old file */
    v[(2 * n + (n - 1)) * h * w + h * w - 1] = 0.5f;
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, v, n, h, w, 16), WR_OK);
    ck_assert(!file_equals(path, "previous output"));
    ck_assert_int_eq(wr_test_count_entries(dir, WR_ATOMIC_TMP_TAG), 0);
    free(v);
    wr_test_rmtree(dir);
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("video");
    TCase *tc = tcase_create("io");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_format_of);
    tcase_add_test(tc, test_u8_rule_png);
    tcase_add_test(tc, test_png_dir);
    tcase_add_test(tc, test_y4m_known_colours);
    tcase_add_test(tc, test_y4m_frames);
    tcase_add_test(tc, test_mp4);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_atomic);
    suite_add_tcase(s, tc);
    return s;
}
