#!/usr/bin/env bash
# bench_dit.sh [WORKDIR] — one DiT forward on the CPU at the real Wan2.1-1.3B width (D=1536,
# 12 heads x 128, FFN 8960), WR_BENCH_LAYERS blocks (default 2), latent [16,5,30,52]
# (1950 tokens), 512 text rows: wanrun against diffusers with the same weights, inputs and
# threads, in one run. Prints both timings, the ratio, wanrun's GFLOP/s against the measured
# sgemm peak, and wanrun's output NMSE against diffusers'. Needs torch + diffusers (PyPI).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="${1:-/tmp/wanrun-bench/dit}"
threads="${WR_BENCH_THREADS:-$(nproc)}"
layers="${WR_BENCH_LAYERS:-2}"
repeat="${WR_BENCH_REPEAT:-3}"

WR_TARGET=bench_dit bash "$root/launch/build.sh" "$root/build-bench" -DCMAKE_BUILD_TYPE=Release \
    -DWR_CUDA=OFF -DWR_BUILD_TESTS=OFF >/dev/null
if [ ! -f "$work/io.safetensors" ]; then
    python3 "$root/tests/bench/bench_dit_diffusers.py" make "$work" --layers "$layers"
fi
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $threads threads"
py=$(python3 "$root/tests/bench/bench_dit_diffusers.py" time "$work" --threads "$threads" \
    --repeat "$repeat")
echo "$py" | grep -v '^RESULT'
c=$(OMP_NUM_THREADS=$threads "$root/build-bench/tests/bench/bench_dit" "$work/transformer" \
    "$work/io.safetensors" --threads "$threads" --repeat "$repeat")
echo "$c" | grep -v '^RESULT'
pys=$(echo "$py" | sed -n 's/^RESULT forward_s=//p')
cs=$(echo "$c" | sed -n 's/^RESULT forward_s=\([0-9.]*\).*/\1/p')
awk -v c="$cs" -v p="$pys" 'BEGIN { printf "ratio wanrun / diffusers = %.3f (%s)\n", c / p, c < p ? "wanrun faster" : "wanrun slower" }'
