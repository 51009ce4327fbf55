/*
 * video.h — writes the decoded video: an H.264 .mp4, a .y4m, or a directory of PNG frames.
 *
 * Input. The frames are what the pipeline has after the VAE decoder and diffusers'
 * postprocess (x * 0.5 + 0.5, clamped): float RGB in [0, 1], channel-first [3, N, H, W].
 *
 * 8-bit rule. Each value becomes uint8 as diffusers' export_to_video does it
 * (src/diffusers/utils/export_utils.py: `(frame * 255).astype(np.uint8)` on the float32
 * frames of `output_type="np"`): u8 = (uint8_t)(x * 255.0f), a float32 product truncated
 * toward zero, after clamping x to [0, 1]. (diffusers' numpy_to_pil, used for
 * `output_type="pil"`, rounds instead; export_to_video — used by the example in diffusers'
 * pipeline_wan.py and docs/…/wan.md — truncates, and wanrun follows it so that its files
 * match what a diffusers user writes.)
 * A NaN or infinite value is rejected (WR_ERR_INVALID_ARG naming frame, channel and pixel):
 * it means the model diverged and the output would be garbage; nothing is left on disk.
 *
 * Formats (chosen from the path by wr_video_format_of, or forced):
 *   .mp4  H.264 via FFmpeg (libavformat/libavcodec/libswscale): libx264, CRF 18, preset
 *         medium, High profile, yuv420p, BT.709 limited range (converted by swscale from
 *         RGB24 and tagged so in the stream), +faststart. Falls back to libopenh264 (a
 *         constant ~0.3 bit/pixel; untested: Debian's FFmpeg has libx264) when there is no
 *         libx264. H.264 4:2:0 needs even H and W: odd sizes are refused (Wan sizes are
 *         multiples of 16), not padded. Needs a build with FFmpeg (WR_HAVE_FFMPEG).
 *   .y4m  YUV4MPEG2, "C444 XCOLORRANGE=FULL": 4:4:4, full range, BT.601 (JFIF) matrix with
 *         libjpeg's 16-bit fixed-point coefficients, no chroma subsampling — the closest to
 *         lossless a plain YCbCr format gets (FFmpeg reads it as yuv444p, full range).
 *   PNG   a directory of frame_00000.png, frame_00001.png, … (8-bit RGB, libpng). fps unused.
 *
 * Atomicity. Nothing at `path` changes unless the whole write succeeds. Files are written to
 * a temporary in the same directory, ".NAME.wanrun-tmp.<pid>" (core/atomic_file.h: the name
 * is shortened with a hash when a long NAME would not fit NAME_MAX, so any legal name works),
 * fsync'ed and renamed over `path`; a PNG directory is built as such a temporary directory
 * and renamed into place. On any failure the temporary is removed and an existing file at
 * `path` is untouched; so it is on a fatal signal once the CLI has called
 * wr_atomic_handle_signals(). (A process killed with SIGKILL can leave a stale hidden
 * ".NAME.wanrun-tmp.<pid>", never read; `path` itself is never partial.) A PNG destination
 * must be absent or an empty directory (which is replaced); a non-empty directory or a file
 * there is refused. A .mp4/.y4m destination that is an existing regular file is replaced.
 *
 * Threading: reentrant; call from one rank. The first MP4 write installs an av_log callback
 * that routes FFmpeg's messages to wr_log (debug level) instead of stderr.
 */
#ifndef WR_IO_VIDEO_H
#define WR_IO_VIDEO_H

#include <stdint.h>

#include "core/atomic_file.h"
#include "core/status.h"

#define WR_VIDEO_DEFAULT_FPS 16.0 /* Wan2.1's frame rate */

typedef enum wr_video_format {
    WR_VIDEO_AUTO = 0, /* from the path: wr_video_format_of */
    WR_VIDEO_MP4,
    WR_VIDEO_Y4M,
    WR_VIDEO_PNG, /* a directory of PNG frames */
    WR_VIDEO_FORMAT_COUNT
} wr_video_format;

/* "auto", "mp4", "y4m", "png"; "unknown" out of range. */
const char *wr_video_format_name(wr_video_format fmt);

/*
 * The format a path asks for, from the extension of its last component (case-insensitive):
 * ".mp4" → MP4, ".y4m" → Y4M; a path ending in '/' or whose last component has no '.'
 * (other than a leading one) → PNG directory. Any other extension ("out.avi", "out.png") or
 * an empty/NULL path gives WR_VIDEO_AUTO, "cannot tell": wr_video_check / wr_video_write
 * given that path and WR_VIDEO_AUTO fail with WR_ERR_INVALID_ARG naming the extension.
 * `path` is borrowed.
 */
wr_video_format wr_video_format_of(const char *path);

/*
 * Checks, without writing anything, that wr_video_write(path, fmt, …, h, w, …) can succeed
 * as far as can be known before the frames exist: the format (WR_VIDEO_AUTO resolved from
 * the path), sizes ≥ 1 (even for MP4), the name legal (within NAME_MAX), the parent directory
 * exists and is writable, a PNG destination is absent or an empty directory, a file
 * destination absent or a regular file, and for MP4 that FFmpeg and an H.264 encoder are
 * present. Meant for the CLI to fail before a long generation.
 * Failures: WR_ERR_INVALID_ARG (format, sizes, name, destination), WR_ERR_IO (parent
 * directory), WR_ERR_UNSUPPORTED (MP4 without FFmpeg or without an H.264 encoder).
 */
wr_status wr_video_check(const char *path, wr_video_format fmt, int64_t h, int64_t w);

/*
 * Writes `n` frames of H x W to `path` atomically (see above). `frames` is borrowed,
 * [3, N, H, W] float RGB in [0, 1] (values outside are clamped). `fps` > 0 is the frame rate
 * (0 means WR_VIDEO_DEFAULT_FPS); it is stored as the closest fraction with a denominator
 * ≤ 100000 (24000/1001 stays exact). Failures: those of wr_video_check, plus
 * WR_ERR_INVALID_ARG (NULL frames, n < 1, bad fps, a non-finite value), WR_ERR_IO (create,
 * write, fsync, rename; errno text), WR_ERR_UNSUPPORTED (encoder refused the settings),
 * WR_ERR_OOM_HOST, WR_ERR_INTERNAL (an FFmpeg call failed unexpectedly; its message is in
 * the detail).
 */
wr_status wr_video_write(const char *path, wr_video_format fmt, const float *frames, int64_t n,
                         int64_t h, int64_t w, double fps);

/*
 * wr_video_write without the last step: the complete, fsync'ed temporary is left in
 * *pending (registered for the signal cleanup) for the caller to wr_atomic_commit — or
 * wr_atomic_discard — when its other outputs are ready too, so that several outputs appear
 * only together. On failure nothing is left and *pending is released. Same failures.
 */
wr_status wr_video_write_staged(wr_atomic *pending, const char *path, wr_video_format fmt,
                                const float *frames, int64_t n, int64_t h, int64_t w, double fps);

#endif /* WR_IO_VIDEO_H */
