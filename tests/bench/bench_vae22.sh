#!/usr/bin/env bash
# bench_vae22.sh [WORKDIR] — the Wan2.2 VAE (TI2V-5B's: diffusers AutoencoderKLWan with
# is_residual, patch_size 2, z_dim 48, base_dim 160, decoder_base_dim 256, dim_mult [1, 2, 4, 4];
# random weights, fp32) on the CPU, issue #18: decode and encode time, wanrun against diffusers
# with the same weights, inputs and threads, in one run:
#   decode: VAE-space latent [48, 2, 8, 8] -> 5 frames of 128 x 128 (untiled);
#   encode: one 128 x 128 image (the pipeline's image encode) -> [48, 1, 8, 8];
# wanrun's outputs' NMSE against diffusers'; the ratios; both processes' peak RSS; wanrun's
# counted peak (wr_vae22_peak_bytes) against wr_vae22_decode_bytes / wr_vae22_encode_bytes; the
# CPU share other processes took during each side's timings (NOISY above 5 %).
# Environment: WR_BENCH_THREADS (default nproc), WR_BENCH_REPEAT (default 3),
# WR_BENCH_PROFILE=1 (adds bench_vae22 --profile: one more decode and encode with per-op time).
# Needs torch + diffusers (PyPI). Writes only under WORKDIR (~2.9 GB: the f32 checkpoint) and
# build-bench/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="${1:-/tmp/wanrun-bench/vae22}"
threads="${WR_BENCH_THREADS:-$(nproc)}"
repeat="${WR_BENCH_REPEAT:-3}"
bin="$root/build-bench/tests/bench/bench_vae22"
py="$root/tests/bench/bench_vae22_diffusers.py"

WR_TARGET=bench_vae22 bash "$root/launch/build.sh" "$root/build-bench" \
    -DCMAKE_BUILD_TYPE=Release -DWR_CUDA=OFF -DWR_BUILD_TESTS=OFF >/dev/null
if [ ! -f "$work/io.safetensors" ] || [ ! -f "$work/vae/config.json" ]; then
    mkdir -p "$work"
    python3 "$py" make "$work"
fi
export OMP_NUM_THREADS=$threads
echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(lscpu | sed -n "s/^Model name: *//p")," \
    "$(getconf _NPROCESSORS_ONLN) CPUs, $threads threads, load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"

echo "-- decode and encode time (median of $repeat after one warm-up each)"
p=$(python3 "$py" time "$work" --threads "$threads" --repeat "$repeat")
echo "$p" | grep -v '^RESULT'
c=$("$bin" "$work/vae" "$work/io.safetensors" --threads "$threads" --repeat "$repeat")
echo "$c" | grep -v '^RESULT'
pr=$(echo "$p" | sed -n 's/^RESULT //p')
cr=$(echo "$c" | sed -n 's/^RESULT //p')
v() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
for op in decode encode; do
    awk -v op=$op -v c="$(v "$cr" ${op}_s)" -v p="$(v "$pr" ${op}_s)" \
        -v n="$(v "$cr" ${op}_nmse)" 'BEGIN {
        printf "%s: diffusers %.3f s, wanrun %.3f s, ratio wanrun / diffusers = %.3f (%s), " \
            "nmse %s\n", op, p, c, c / p, c < p ? "wanrun faster" : "wanrun slower", n }'
done
echo "peak RSS: diffusers $(v "$pr" maxrss_mb) MiB, wanrun $(v "$cr" maxrss_mb) MiB"
echo "counted peak vs formula: decode $(v "$cr" decode_peak_bytes) / $(v "$cr" decode_plan_bytes)" \
    "B, encode $(v "$cr" encode_peak_bytes) / $(v "$cr" encode_plan_bytes) B:" \
    "$([ "$(v "$cr" match)" = 1 ] && echo "exact match" || echo MISMATCH)"
awk -v a="$(v "$pr" others)" -v b="$(v "$cr" others)" 'BEGIN { if (a > 0.05 || b > 0.05)
    printf "NOISY: other processes used up to %.0f %% / %.0f %% of the CPUs during the" \
        " diffusers / wanrun timings; re-run when the machine is quiet\n", 100 * a, 100 * b }'
echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${WR_BENCH_PROFILE:-0}" = 1 ]; then
    echo "-- profile (one extra decode and encode with per-op timing)"
    "$bin" "$work/vae" "$work/io.safetensors" --threads "$threads" --repeat 1 --profile 2>&1 |
        grep -v '^RESULT\|^wanrun'
fi
echo "== done $(date -u '+%H:%M:%S UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
