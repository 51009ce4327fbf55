#!/usr/bin/env bash
# bench_vae.sh [WORKDIR] — the Wan2.1 VAE decoder on the CPU at the real width (base_dim 96,
# z_dim 16, dim_mult [1, 2, 4, 4]; random weights), issue #5:
#  1. decode time, wanrun against diffusers' AutoencoderKLWan with the same weights, latent
#     (default [16, 3, 16, 16] -> 9 frames of 128 x 128) and threads, in one run; wanrun's
#     output NMSE against diffusers'; the ratio; both processes' peak RSS;
#  2. memory: wanrun's counted peak activation bytes at a few small latent sizes, untiled and
#     with the default tiling (256 px tiles, stride 192), each checked against the formula of
#     bench_vae.c (exact match expected); then the formula's peaks for 480x832 (latent 60x104)
#     and 720x1280 (latent 90x160), 81 frames (21 latent), untiled and tiled.
# Environment: WR_BENCH_THREADS (default nproc), WR_BENCH_REPEAT (default 3),
# WR_BENCH_PROFILE=1 (adds bench_vae --profile: per-op time and per-layer conv timing, with
# torch's per-layer conv timing next to it), WR_BENCH_SKIP_MEM=1 / WR_BENCH_SKIP_TIME=1.
# Needs torch + diffusers (PyPI). Writes only under WORKDIR (~0.5 GB) and build-bench/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="${1:-/tmp/wanrun-bench/vae}"
threads="${WR_BENCH_THREADS:-$(nproc)}"
repeat="${WR_BENCH_REPEAT:-3}"
bin="$root/build-bench/tests/bench/bench_vae"
py="$root/tests/bench/bench_vae_diffusers.py"

WR_TARGET=bench_vae bash "$root/launch/build.sh" "$root/build-bench" -DCMAKE_BUILD_TYPE=Release \
    -DWR_CUDA=OFF -DWR_BUILD_TESTS=OFF >/dev/null
if [ ! -f "$work/io.safetensors" ] || [ ! -f "$work/vae/config.json" ]; then
    mkdir -p "$work"
    python3 "$py" make "$work"
fi
export OMP_NUM_THREADS=$threads
echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(lscpu | sed -n "s/^Model name: *//p")," \
    "$(getconf _NPROCESSORS_ONLN) CPUs, $threads threads, load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"

if [ "${WR_BENCH_SKIP_TIME:-0}" != 1 ]; then
    echo "-- decode time (median of $repeat after one warm-up)"
    p=$(python3 "$py" time "$work" --threads "$threads" --repeat "$repeat")
    echo "$p" | grep -v '^RESULT'
    c=$("$bin" "$work/vae" "$work/io.safetensors" --threads "$threads" --repeat "$repeat")
    echo "$c" | grep -v '^RESULT'
    ps_=$(echo "$p" | sed -n 's/^RESULT decode_s=\([0-9.]*\).*/\1/p')
    cs=$(echo "$c" | sed -n 's/^RESULT decode_s=\([0-9.]*\).*/\1/p')
    po=$(echo "$p" | sed -n 's/^RESULT.* others=\([0-9.]*\).*/\1/p')
    co=$(echo "$c" | sed -n 's/^RESULT.* others=\([0-9.]*\).*/\1/p')
    awk -v c="$cs" -v p="$ps_" 'BEGIN { printf "ratio wanrun / diffusers = %.3f (%s)\n", c / p,
        c < p ? "wanrun faster" : "wanrun slower" }'
    awk -v a="$po" -v b="$co" 'BEGIN { if (a > 0.05 || b > 0.05)
        printf "NOISY: other processes used %.0f %% / %.0f %% of the CPUs during the diffusers /" \
            " wanrun timings; re-run when the machine is quiet\n", 100 * a, 100 * b }'
    echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    if [ "${WR_BENCH_PROFILE:-0}" = 1 ]; then
        echo "-- profile (one extra decode with per-op timing, then per-layer conv timing)"
        "$bin" "$work/vae" "$work/io.safetensors" --threads "$threads" --repeat 1 --profile 2>&1 |
            grep -v '^RESULT\|^wanrun'
        python3 "$py" convs --dir "$work" --threads "$threads"
    fi
fi

if [ "${WR_BENCH_SKIP_MEM:-0}" != 1 ]; then
    echo "-- memory: counted peaks (wr_vae_peak_bytes / wr_vae_blend_peak_bytes) vs the formula"
    printf '%-34s %14s %14s %14s %14s %6s %8s\n' "latent [T, H, W]" "decoder B" "formula B" \
        "blend B" "formula B" "match" "time s"
    mem_row() { # H,W,T [tiling]
        local h w t
        IFS=, read -r h w t <<<"$1"
        local args=(--mem "$1") label="[$t, $h, $w]"
        if [ -n "${2:-}" ]; then
            args+=(--tiled "$2")
            label="$label tiled $2"
        fi
        local o
        o=$("$bin" "$work/vae" "${args[@]}" --threads "$threads" | sed -n 's/^RESULT //p')
        local v
        v() { echo "$o" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
        printf '%-34s %14s %14s %14s %14s %6s %8s\n' "$label" "$(v peak_bytes)" \
            "$(v plan_decoder_bytes)" "$(v blend_bytes)" "$(v plan_blend_bytes)" \
            "$([ "$(v match)" = 1 ] && echo yes || echo NO)" "$(v decode_s)"
    }
    mem_row 8,8,1
    mem_row 8,8,2
    mem_row 8,16,2
    mem_row 16,16,2
    mem_row 16,16,3
    mem_row 40,40,2 256,192
    mem_row 80,80,1 256,192
    echo "-- the formula (bench_vae --plan), 81 frames (21 latent frames), default tiling 256/192"
    "$bin" "$work/vae" --mem 1,1,2 --plan | sed -n '1p'
    printf '%-12s %-10s %-9s %14s %14s %14s %14s\n' "video" "latent" "mode" "decoder MiB" \
        "tile buf MiB" "blend MiB" "total MiB"
    for v in 480x832:60,104 720x1280:90,160; do
        for mode in untiled tiled; do
            a=(--mem "${v#*:},21" --plan)
            [ $mode = tiled ] && a+=(--tiled 256,192)
            "$bin" "$work/vae" "${a[@]}" | sed -n 's/^RESULT //p' | tr ' =' '\n ' |
                awk -v v="${v%%:*}" -v l="${v#*:}" -v m="$mode" '{ b[$1] = $2 } END {
                    M = 1048576; d = b["plan_decoder_bytes"]; bl = b["plan_blend_bytes"]
                    printf "%-12s %-10s %-9s %14.1f %14.1f %14.1f %14.1f\n", v, l, m, d / M,
                        b["plan_tile_bytes"] / M, bl / M, (d + bl) / M }'
        done
    done
fi
echo "== done $(date -u '+%H:%M:%S UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
