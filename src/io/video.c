/*
 * video.c — .mp4 (FFmpeg), .y4m and PNG-directory output, written atomically. See video.h.
 */
#include "video.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>

#include "core/atomic_file.h"
#include "core/log.h"
#include "wr_build_config.h"

#if WR_HAVE_FFMPEG
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#endif

/* Sizes beyond these are a caller's bug or a corrupt config, not a video (H.264 stops at
 * 8192x4320 at level 6.2 anyway); the bounds keep every byte count far from overflow. */
#define MAX_SIDE   32768
#define MAX_FRAMES (1 << 20)
#define MAX_FPS    1000.0
#define FPS_MAXDEN 100000

/* ---- names and formats ---- */

const char *wr_video_format_name(wr_video_format fmt) {
    switch (fmt) {
    case WR_VIDEO_AUTO:
        return "auto";
    case WR_VIDEO_MP4:
        return "mp4";
    case WR_VIDEO_Y4M:
        return "y4m";
    case WR_VIDEO_PNG:
        return "png";
    default:
        return "unknown";
    }
}

wr_video_format wr_video_format_of(const char *path) {
    if (path == NULL || path[0] == '\0') return WR_VIDEO_AUTO;
    if (path[strlen(path) - 1] == '/') return WR_VIDEO_PNG;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (dot == NULL || dot == base) return WR_VIDEO_PNG; /* "out", ".hidden" */
    if (strcasecmp(dot, ".mp4") == 0) return WR_VIDEO_MP4;
    if (strcasecmp(dot, ".y4m") == 0) return WR_VIDEO_Y4M;
    return WR_VIDEO_AUTO;
}

/* wr_video_format_of, failing with the reason when the path does not say. */
static wr_status format_from_path(wr_video_format *out, const char *path) {
    *out = wr_video_format_of(path);
    if (*out != WR_VIDEO_AUTO) return WR_OK;
    const char *base = strrchr(path, '/');
    return WR_FAIL(WR_ERR_INVALID_ARG,
                   "%s: unknown output extension '%s': use .mp4 (H.264), .y4m, or a directory "
                   "(a path ending in '/' or without an extension) for PNG frames",
                   path, strrchr(base ? base + 1 : path, '.'));
}

/* ---- paths and the atomic-rename helpers ---- */

static wr_status fsync_path(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return WR_FAIL(WR_ERR_IO, "%s: cannot open to fsync: %s", path, strerror(errno));
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return WR_FAIL(WR_ERR_IO, "%s: fsync failed: %s", path, strerror(e));
    }
    close(fd);
    return WR_OK;
}

/* 1 when `dir` holds anything besides "." and "..", 0 when empty, -1 when unreadable. */
static int dir_nonempty(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return -1;
    struct dirent *e;
    int any = 0;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            any = 1;
            break;
        }
    closedir(d);
    return any;
}

static wr_status write_full(int fd, const void *src, size_t n, const char *path) {
    const uint8_t *p = src;
    while (n > 0) {
        ssize_t r = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return WR_FAIL(WR_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        p += r;
        n -= (size_t)r;
    }
    return WR_OK;
}

/* ---- float frames -> 8-bit RGB ---- */

/* diffusers export_to_video: (frame * 255).astype(np.uint8) on float32, i.e. a float32
 * product truncated toward zero; clamped first so out-of-range input cannot wrap. */
static inline uint8_t to_u8(float x) {
    if (!(x > 0.0f)) return 0;
    if (x >= 1.0f) return 255;
    return (uint8_t)(x * 255.0f);
}

/* Frame f of [3, N, H, W] as interleaved RGB24 rows `stride` bytes apart. */
static wr_status frame_rgb24(uint8_t *dst, size_t stride, const float *frames, int64_t n, int64_t h,
                             int64_t w, int64_t f, const char *path) {
    for (int64_t c = 0; c < 3; c++) {
        const float *plane = frames + (c * n + f) * h * w; /* [H, W] */
        for (int64_t y = 0; y < h; y++) {
            const float *src = plane + y * w;
            uint8_t *row = dst + (size_t)y * stride;
            for (int64_t x = 0; x < w; x++) {
                float v = src[x];
                if (!isfinite(v))
                    return WR_FAIL(WR_ERR_INVALID_ARG,
                                   "%s: frame %lld, channel %lld, pixel (y=%lld, x=%lld) is %s: "
                                   "the decoded video is not finite (the model diverged?); "
                                   "nothing written",
                                   path, (long long)f, (long long)c, (long long)y, (long long)x,
                                   isnan(v) ? "NaN" : "infinite");
                row[3 * x + c] = to_u8(v);
            }
        }
    }
    return WR_OK;
}

/* The fraction closest to fps with a denominator <= FPS_MAXDEN (continued fractions). */
static void fps_fraction(double fps, int *num, int *den) {
    int64_t h0 = 0, h1 = 1, k0 = 1, k1 = 0;
    double x = fps;
    for (int i = 0; i < 64; i++) {
        double a = floor(x);
        if (a > 1e9) break;
        int64_t h2 = (int64_t)a * h1 + h0, k2 = (int64_t)a * k1 + k0;
        if (k2 > FPS_MAXDEN || h2 > INT_MAX) break;
        h0 = h1, h1 = h2, k0 = k1, k1 = k2;
        double frac = x - a;
        if (frac < 1e-12) break;
        x = 1.0 / frac;
    }
    *num = (int)h1;
    *den = (int)k1;
}

/* ---- MP4 through FFmpeg ---- */

#if WR_HAVE_FFMPEG

/* FFmpeg's log lines go to wr_log at debug level; the last error line of this thread is kept
 * for the status detail. */
static _Thread_local char g_av_last_error[256];

static void av_log_to_wr(void *avcl, int level, const char *fmt, va_list vl) {
    if (level > AV_LOG_INFO) return;
    int want_log = wr_log_get_level() >= WR_LOG_DEBUG;
    if (level > AV_LOG_ERROR && !want_log) return;
    static _Thread_local int print_prefix = 1;
    char line[1024];
    va_list copy;
    va_copy(copy, vl);
    av_log_format_line2(avcl, level, fmt, copy, line, (int)sizeof line, &print_prefix);
    va_end(copy);
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    if (len == 0) return;
    if (level <= AV_LOG_ERROR) snprintf(g_av_last_error, sizeof g_av_last_error, "%s", line);
    if (want_log) wr_debug("ffmpeg: %s", line);
}

static pthread_once_t g_av_once = PTHREAD_ONCE_INIT;
static void av_init_once(void) {
    av_log_set_callback(av_log_to_wr);
}

static const char *av_msg(int ret, char *buf, size_t n) {
    char e[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(ret, e, sizeof e);
    if (g_av_last_error[0] != '\0')
        snprintf(buf, n, "%s; ffmpeg said: %s", e, g_av_last_error);
    else
        snprintf(buf, n, "%s", e);
    return buf;
}

/* H.264 encoders that run on any CPU, best first. Hardware encoders (nvenc, vaapi, qsv) need
 * a device and their own rate-control options; they are not tried. */
static const char *const k_h264_encoders[] = {"libx264", "libopenh264"};

static const AVCodec *find_h264(void) {
    for (size_t i = 0; i < sizeof k_h264_encoders / sizeof k_h264_encoders[0]; i++) {
        const AVCodec *c = avcodec_find_encoder_by_name(k_h264_encoders[i]);
        if (c != NULL) return c;
    }
    return NULL;
}

static wr_status mp4_available(const char *path) {
    if (find_h264() == NULL)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: this FFmpeg has no H.264 encoder (looked for libx264, libopenh264): "
                       "install an FFmpeg built with libx264 (Debian's libavcodec is), or write "
                       ".y4m or a PNG directory instead",
                       path);
    return WR_OK;
}

typedef struct mp4_writer {
    AVFormatContext *oc;
    AVCodecContext *enc;
    AVStream *st;
    AVPacket *pkt;
    const char *tmp;
} mp4_writer;

/* Sends one frame (NULL flushes) and muxes every packet the encoder has ready. */
static wr_status mp4_encode(mp4_writer *m, const AVFrame *frame) {
    char msg[512];
    int ret = avcodec_send_frame(m->enc, frame);
    if (ret < 0)
        return WR_FAIL(WR_ERR_INTERNAL, "%s: encoding a frame failed: %s", m->tmp,
                       av_msg(ret, msg, sizeof msg));
    for (;;) {
        ret = avcodec_receive_packet(m->enc, m->pkt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return WR_OK;
        if (ret < 0)
            return WR_FAIL(WR_ERR_INTERNAL, "%s: encoding a frame failed: %s", m->tmp,
                           av_msg(ret, msg, sizeof msg));
        if (m->pkt->duration == 0) m->pkt->duration = 1; /* one frame, in 1/fps units */
        av_packet_rescale_ts(m->pkt, m->enc->time_base, m->st->time_base);
        m->pkt->stream_index = m->st->index;
        ret = av_interleaved_write_frame(m->oc, m->pkt); /* unrefs pkt */
        if (ret < 0)
            return WR_FAIL(WR_ERR_IO, "%s: writing a packet failed: %s", m->tmp,
                           av_msg(ret, msg, sizeof msg));
    }
}

static wr_status write_mp4(const char *tmp, const char *path, const float *frames, int64_t n,
                           int64_t h, int64_t w, int fps_num, int fps_den) {
    wr_status st = WR_OK;
    char msg[512];
    int ret;
    mp4_writer m = {.tmp = tmp};
    AVDictionary *opts = NULL;
    struct SwsContext *sws = NULL;
    AVFrame *fr = NULL;
    uint8_t *rgb = NULL;

    pthread_once(&g_av_once, av_init_once);
    g_av_last_error[0] = '\0';
    const AVCodec *codec = find_h264();
    if (codec == NULL) return mp4_available(path);

    ret = avformat_alloc_output_context2(&m.oc, NULL, "mp4", tmp);
    if (ret < 0 || m.oc == NULL) {
        st = WR_FAIL(WR_ERR_INTERNAL, "%s: cannot set up the mp4 muxer: %s", path,
                     av_msg(ret, msg, sizeof msg));
        goto done;
    }
    m.st = avformat_new_stream(m.oc, NULL);
    m.enc = avcodec_alloc_context3(codec);
    m.pkt = av_packet_alloc();
    fr = av_frame_alloc();
    size_t stride = ((size_t)w * 3 + 63) & ~(size_t)63;
    rgb = av_malloc(stride * (size_t)h);
    if (m.st == NULL || m.enc == NULL || m.pkt == NULL || fr == NULL || rgb == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory setting up the encoder", path);
        goto done;
    }

    AVCodecContext *enc = m.enc;
    enc->width = (int)w;
    enc->height = (int)h;
    enc->pix_fmt = AV_PIX_FMT_YUV420P;
    enc->time_base = (AVRational){fps_den, fps_num};
    enc->framerate = (AVRational){fps_num, fps_den};
    enc->sample_aspect_ratio = (AVRational){1, 1};
    /* swscale converts with the BT.709 matrix to limited range; say so in the stream, or
     * players guess (BT.601 below 720p) and shift the colours. */
    enc->color_range = AVCOL_RANGE_MPEG;
    enc->colorspace = AVCOL_SPC_BT709;
    enc->color_primaries = AVCOL_PRI_BT709;
    enc->color_trc = AVCOL_TRC_BT709;
    if (m.oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (strcmp(codec->name, "libx264") == 0) {
        /* CRF 18: visually lossless for x264; the test measures the PSNR it gives. */
        av_dict_set(&opts, "crf", "18", 0);
        av_dict_set(&opts, "preset", "medium", 0); /* x264 then picks the High profile */
    } else {
        /* No CRF: a generous constant rate, ~0.3 bit per pixel. */
        enc->bit_rate = (int64_t)(0.3 * (double)w * (double)h * fps_num / fps_den);
        enc->max_b_frames = 0;
    }
    ret = avcodec_open2(enc, codec, &opts);
    if (ret < 0) {
        st = WR_FAIL(WR_ERR_UNSUPPORTED, "%s: the %s encoder refused %lldx%lld at %d/%d fps: %s",
                     path, codec->name, (long long)w, (long long)h, fps_num, fps_den,
                     av_msg(ret, msg, sizeof msg));
        goto done;
    }
    ret = avcodec_parameters_from_context(m.st->codecpar, enc);
    if (ret < 0) {
        st = WR_FAIL(WR_ERR_INTERNAL, "%s: cannot copy the encoder parameters: %s", path,
                     av_msg(ret, msg, sizeof msg));
        goto done;
    }
    m.st->time_base = enc->time_base;
    m.st->avg_frame_rate = enc->framerate;

    ret = avio_open(&m.oc->pb, tmp, AVIO_FLAG_WRITE);
    if (ret < 0) {
        st = WR_FAIL(WR_ERR_IO, "%s: cannot create: %s", tmp, av_msg(ret, msg, sizeof msg));
        goto done;
    }
    av_dict_free(&opts);
    av_dict_set(&opts, "movflags", "+faststart", 0); /* index first: playable while loading */
    ret = avformat_write_header(m.oc, &opts);
    if (ret < 0) {
        st = WR_FAIL(WR_ERR_IO, "%s: writing the mp4 header failed: %s", tmp,
                     av_msg(ret, msg, sizeof msg));
        goto done;
    }

    sws = sws_getContext((int)w, (int)h, AV_PIX_FMT_RGB24, (int)w, (int)h, AV_PIX_FMT_YUV420P,
                         SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, NULL, NULL, NULL);
    if (sws == NULL) {
        st = WR_FAIL(WR_ERR_INTERNAL, "%s: cannot set up RGB24 -> yuv420p conversion", path);
        goto done;
    }
    const int *bt709 = sws_getCoefficients(SWS_CS_ITU709);
    /* source: full-range RGB; destination: BT.709, limited range */
    sws_setColorspaceDetails(sws, bt709, 1, bt709, 0, 0, 1 << 16, 1 << 16);

    fr->format = AV_PIX_FMT_YUV420P;
    fr->width = (int)w;
    fr->height = (int)h;
    fr->color_range = AVCOL_RANGE_MPEG;
    fr->colorspace = AVCOL_SPC_BT709;
    fr->color_primaries = AVCOL_PRI_BT709;
    fr->color_trc = AVCOL_TRC_BT709;
    ret = av_frame_get_buffer(fr, 0);
    if (ret < 0) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "%s: cannot allocate a %lldx%lld frame: %s", path,
                     (long long)w, (long long)h, av_msg(ret, msg, sizeof msg));
        goto done;
    }
    for (int64_t f = 0; f < n; f++) {
        WR_TRY_GOTO(st, frame_rgb24(rgb, stride, frames, n, h, w, f, path), done);
        ret = av_frame_make_writable(fr); /* the encoder may still hold the last one */
        if (ret < 0) {
            st = WR_FAIL(WR_ERR_OOM_HOST, "%s: cannot allocate a frame: %s", path,
                         av_msg(ret, msg, sizeof msg));
            goto done;
        }
        const uint8_t *src[4] = {rgb, NULL, NULL, NULL};
        const int src_stride[4] = {(int)stride, 0, 0, 0};
        sws_scale(sws, src, src_stride, 0, (int)h, fr->data, fr->linesize);
        fr->pts = f;
        WR_TRY_GOTO(st, mp4_encode(&m, fr), done);
    }
    WR_TRY_GOTO(st, mp4_encode(&m, NULL), done);
    ret = av_write_trailer(m.oc);
    if (ret < 0) {
        st = WR_FAIL(WR_ERR_IO, "%s: finishing the mp4 failed: %s", tmp,
                     av_msg(ret, msg, sizeof msg));
        goto done;
    }
    ret = avio_closep(&m.oc->pb);
    if (ret < 0) {
        st = WR_FAIL(WR_ERR_IO, "%s: close failed: %s", tmp, av_msg(ret, msg, sizeof msg));
        goto done;
    }
    st = fsync_path(tmp);

done:
    /* on failure the trailer is never written: the caller removes the partial file */
    if (m.oc != NULL && m.oc->pb != NULL) avio_closep(&m.oc->pb);
    avformat_free_context(m.oc);
    avcodec_free_context(&m.enc);
    av_packet_free(&m.pkt);
    av_frame_free(&fr);
    av_free(rgb);
    sws_freeContext(sws);
    av_dict_free(&opts);
    return st;
}

#else /* !WR_HAVE_FFMPEG */

static wr_status mp4_available(const char *path) {
    return WR_FAIL(WR_ERR_UNSUPPORTED,
                   "%s: this wanrun was built without FFmpeg, so it cannot write .mp4: install "
                   "the FFmpeg development libraries (Debian: libavformat-dev libavcodec-dev "
                   "libswscale-dev libavutil-dev) and rebuild, or write .y4m or a PNG directory",
                   path);
}

static wr_status write_mp4(const char *tmp, const char *path, const float *frames, int64_t n,
                           int64_t h, int64_t w, int fps_num, int fps_den) {
    return mp4_available(path);
}

#endif /* WR_HAVE_FFMPEG */

/* ---- Y4M ---- */

/* RGB -> full-range BT.601 YCbCr (JFIF) with libjpeg's coefficients, FIX(x) = x * 2^16
 * rounded; each sum is non-negative, so the shift rounds half up. */
static void rgb_to_ycc(uint8_t *yp, uint8_t *cbp, uint8_t *crp, const uint8_t *rgb) {
    int32_t r = rgb[0], g = rgb[1], b = rgb[2];
    int32_t y = (19595 * r + 38470 * g + 7471 * b + 32768) >> 16;
    int32_t cb = (-11059 * r - 21709 * g + 32768 * b + (128 << 16) + 32768) >> 16;
    int32_t cr = (32768 * r - 27439 * g - 5329 * b + (128 << 16) + 32768) >> 16;
    *yp = (uint8_t)(y > 255 ? 255 : y);
    *cbp = (uint8_t)(cb > 255 ? 255 : cb);
    *crp = (uint8_t)(cr > 255 ? 255 : cr);
}

/* Into the temporary a->fd (left open: wr_atomic_commit closes it). */
static wr_status write_y4m(wr_atomic *a, const char *path, const float *frames, int64_t n,
                           int64_t h, int64_t w, int fps_num, int fps_den) {
    wr_status st = WR_OK;
    size_t plane = (size_t)h * (size_t)w;
    uint8_t *rgb = malloc(3 * plane);
    uint8_t *buf = malloc(6 + 3 * plane); /* "FRAME\n" Y Cb Cr */
    const int fd = a->fd;
    const char *tmp = a->tmp;
    if (rgb == NULL || buf == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory for a %lldx%lld frame", path,
                     (long long)w, (long long)h);
        goto done;
    }
    char hdr[128];
    int hl =
        snprintf(hdr, sizeof hdr, "YUV4MPEG2 W%lld H%lld F%d:%d Ip A1:1 C444 XCOLORRANGE=FULL\n",
                 (long long)w, (long long)h, fps_num, fps_den);
    WR_TRY_GOTO(st, write_full(fd, hdr, (size_t)hl, tmp), done);
    memcpy(buf, "FRAME\n", 6);
    uint8_t *yp = buf + 6, *cbp = yp + plane, *crp = cbp + plane;
    for (int64_t f = 0; f < n; f++) {
        WR_TRY_GOTO(st, frame_rgb24(rgb, 3 * (size_t)w, frames, n, h, w, f, path), done);
        for (size_t i = 0; i < plane; i++) rgb_to_ycc(yp + i, cbp + i, crp + i, rgb + 3 * i);
        WR_TRY_GOTO(st, write_full(fd, buf, 6 + 3 * plane, tmp), done);
    }
    if (fsync(fd) != 0) st = WR_FAIL(WR_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));

done:
    free(rgb);
    free(buf);
    return st;
}

/* ---- PNG frames ---- */

typedef struct png_errbuf {
    char msg[256];
} png_errbuf;

static void png_error_cb(png_structp png, png_const_charp msg) {
    png_errbuf *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg) {
    wr_debug("libpng: %s", msg);
}

/* One 8-bit RGB PNG, flushed and fsync'ed. */
static wr_status write_png(const char *file, const uint8_t *rgb, int64_t h, int64_t w) {
    FILE *fp = fopen(file, "wb");
    if (fp == NULL) return WR_FAIL(WR_ERR_IO, "%s: cannot create: %s", file, strerror(errno));
    png_errbuf err = {{0}};
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_error_cb, png_warning_cb);
    png_infop info = png != NULL ? png_create_info_struct(png) : NULL;
    if (png == NULL || info == NULL) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        return WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory in libpng", file);
    }
    /* png, info and fp are not modified after setjmp, so they survive the longjmp. */
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        return WR_FAIL(WR_ERR_IO, "%s: libpng: %s", file, err.msg);
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int64_t y = 0; y < h; y++) png_write_row(png, rgb + (size_t)y * 3 * (size_t)w);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
        int e = errno;
        fclose(fp);
        return WR_FAIL(WR_ERR_IO, "%s: write failed: %s", file, strerror(e));
    }
    if (fclose(fp) != 0) return WR_FAIL(WR_ERR_IO, "%s: close failed: %s", file, strerror(errno));
    return WR_OK;
}

/* Into the temporary directory of `a` (a WR_ATOMIC_DIR of frame_NNNNN.png children). */
static wr_status write_png_dir(wr_atomic *a, const char *path, const float *frames, int64_t n,
                               int64_t h, int64_t w) {
    wr_status st = WR_OK;
    uint8_t *rgb = malloc(3 * (size_t)h * (size_t)w);
    size_t fl = strlen(a->tmp) + 64;
    char *file = malloc(fl);
    if (rgb == NULL || file == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory for a %lldx%lld frame", path,
                     (long long)w, (long long)h);
        goto done;
    }
    for (int64_t f = 0; f < n; f++) {
        WR_TRY_GOTO(st, frame_rgb24(rgb, 3 * (size_t)w, frames, n, h, w, f, path), done);
        WR_TRY_GOTO(st, wr_atomic_child(a, f, file, fl), done); /* frame_%05lld.png */
        WR_TRY_GOTO(st, write_png(file, rgb, h, w), done);
    }
done:
    free(rgb);
    free(file);
    return st;
}

/* ---- checks and the public entry points ---- */

static wr_status check_sizes(const char *path, wr_video_format fmt, int64_t h, int64_t w) {
    if (h < 1 || w < 1 || h > MAX_SIDE || w > MAX_SIDE)
        return WR_FAIL(WR_ERR_INVALID_ARG, "%s: frame size %lldx%lld (W x H) is out of range 1..%d",
                       path, (long long)w, (long long)h, MAX_SIDE);
    if (fmt == WR_VIDEO_MP4 && (h % 2 != 0 || w % 2 != 0))
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "%s: frame size %lldx%lld (W x H) is odd, and H.264 4:2:0 needs even "
                       "sizes: crop to even, or write .y4m or a PNG directory",
                       path, (long long)w, (long long)h);
    return WR_OK;
}

/* Resolves AUTO and checks everything that does not need the frames. */
static wr_status check_output(wr_video_format *fmt_io, const char *path, int64_t h, int64_t w) {
    wr_video_format fmt = *fmt_io;
    if (path == NULL || path[0] == '\0')
        return WR_FAIL(WR_ERR_INVALID_ARG, "empty output path: give a .mp4, .y4m or directory");
    if (fmt == WR_VIDEO_AUTO) WR_TRY(format_from_path(&fmt, path));
    if ((int)fmt <= WR_VIDEO_AUTO || fmt >= WR_VIDEO_FORMAT_COUNT)
        return WR_FAIL(WR_ERR_INVALID_ARG, "%s: unknown video format %d", path, (int)fmt);
    *fmt_io = fmt;
    WR_TRY(check_sizes(path, fmt, h, w));
    if (fmt == WR_VIDEO_MP4) WR_TRY(mp4_available(path));
    /* a legal name in an existing, writable directory; a file for .mp4 / .y4m */
    WR_TRY(wr_atomic_check(path, fmt == WR_VIDEO_PNG ? WR_ATOMIC_DIR : WR_ATOMIC_FILE));
    if (fmt == WR_VIDEO_PNG) {
        struct stat sb;
        char *p = strdup(path);
        if (p == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
        for (size_t len = strlen(p); len > 1 && p[len - 1] == '/'; len--) p[len - 1] = '\0';
        const int nonempty = stat(p, &sb) == 0 && dir_nonempty(p) != 0;
        free(p);
        if (nonempty)
            return WR_FAIL(WR_ERR_INVALID_ARG,
                           "%s: directory exists and is not empty (or unreadable): refusing to "
                           "mix frames; remove it or choose another path",
                           path);
    }
    return WR_OK;
}

wr_status wr_video_check(const char *path, wr_video_format fmt, int64_t h, int64_t w) {
    return check_output(&fmt, path, h, w);
}

wr_status wr_video_write_staged(wr_atomic *pending, const char *path, wr_video_format fmt,
                                const float *frames, int64_t n, int64_t h, int64_t w, double fps) {
    memset(pending, 0, sizeof *pending);
    pending->fd = pending->slot = -1;
    if (fps == 0.0) fps = WR_VIDEO_DEFAULT_FPS;
    WR_TRY(check_output(&fmt, path, h, w));
    if (frames == NULL || n < 1 || n > MAX_FRAMES)
        return WR_FAIL(WR_ERR_INVALID_ARG, "%s: %lld frames (data %s): need 1..%d frames", path,
                       (long long)n, frames ? "given" : "NULL", MAX_FRAMES);
    int num = 0, den = 1;
    if (isfinite(fps) && fps > 0.0 && fps <= MAX_FPS) fps_fraction(fps, &num, &den);
    if (num < 1)
        return WR_FAIL(WR_ERR_INVALID_ARG, "%s: frame rate %g is not in (0, %g] (--fps)", path, fps,
                       MAX_FPS);
    wr_status st = WR_OK;
    if (fmt == WR_VIDEO_PNG)
        WR_TRY(wr_atomic_begin_dir(pending, path, "frame_", ".png"));
    else
        WR_TRY(wr_atomic_begin(pending, path, WR_ATOMIC_FILE));
    switch (fmt) {
    case WR_VIDEO_MP4:
        close(wr_atomic_take_fd(pending)); /* FFmpeg opens the temporary by name */
        st = write_mp4(pending->tmp, path, frames, n, h, w, num, den);
        break;
    case WR_VIDEO_Y4M:
        st = write_y4m(pending, path, frames, n, h, w, num, den);
        break;
    default:
        st = write_png_dir(pending, path, frames, n, h, w);
        break;
    }
    if (st != WR_OK) {
        wr_atomic_discard(pending);
        return st;
    }
    wr_debug("wrote %s: %lld frames of %lldx%lld, %s, %d/%d fps (not yet in place)", pending->tmp,
             (long long)n, (long long)w, (long long)h, wr_video_format_name(fmt), num, den);
    return WR_OK;
}

wr_status wr_video_write(const char *path, wr_video_format fmt, const float *frames, int64_t n,
                         int64_t h, int64_t w, double fps) {
    wr_atomic pending;
    WR_TRY(wr_video_write_staged(&pending, path, fmt, frames, n, h, w, fps));
    return wr_atomic_commit(&pending);
}
