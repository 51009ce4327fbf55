#!/usr/bin/env bash
# bench_pipeline.sh — the whole text-to-video pipeline on the CPU, wanrun against diffusers'
# WanPipeline, same model directory, initial noise, prompt, steps and threads, in one run:
#   1. the bundled tiny model (tests/data/wan-tiny);
#   2. a small real-width configuration assembled by symlinks from the other benchmarks'
#      models: the 2-block 1.3B-width DiT (bench_dit.sh), the 2-layer real-width UMT5 with the
#      real 256,384-row embedding (bench_t5.sh), the real-width VAE (bench_vae.sh), the tiny
#      tokenizer and the Wan2.1 UniPC scheduler config. Run those three benchmarks first.
# wanrun is timed as a whole process (load, text, denoising, decode, writing a .y4m); diffusers
# as the pipe() call only (its load excluded). The final latents are compared (NMSE).
# Needs torch + diffusers + transformers (PyPI).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench="${WR_BENCH_DIR:-/tmp/wanrun-bench}"
threads="${WR_BENCH_THREADS:-$(nproc)}"
repeat="${WR_BENCH_REPEAT:-3}"
WR_TARGET=wanrun bash "$root/launch/build.sh" "$root/build-bench" -DCMAKE_BUILD_TYPE=Release \
    -DWR_CUDA=OFF -DWR_BUILD_TESTS=OFF >/dev/null
wanrun="$root/build-bench/wanrun"
export OMP_NUM_THREADS=$threads

real="$bench/pipe-real"
if [ ! -e "$real/model_index.json" ]; then
    for d in "$bench/dit/transformer" "$bench/t5/text_encoder" "$bench/vae/vae"; do
        [ -d "$d" ] || { echo "bench_pipeline: $d missing: run bench_dit.sh, bench_t5.sh and bench_vae.sh first" >&2; exit 1; }
    done
    mkdir -p "$real/tokenizer" "$real/scheduler"
    ln -sfn "$bench/dit/transformer" "$real/transformer"
    ln -sfn "$bench/t5/text_encoder" "$real/text_encoder"
    ln -sfn "$bench/vae/vae" "$real/vae"
    ln -sf "$root/tests/data/tokenizer/spiece.model" "$real/tokenizer/spiece.model"
    cp "$root/tests/data/wan-tiny/tokenizer/tokenizer_config.json" "$real/tokenizer/"
    cp "$root/tests/data/wan-tiny/scheduler/scheduler_config.json" "$real/scheduler/"
    cp "$root/tests/data/wan-tiny/model_index.json" "$real/"
fi

nmse() {
    python3 - "$1" "$2" <<'PY'
import sys
from safetensors.torch import load_file
a = load_file(sys.argv[1])["latents"].double(); b = load_file(sys.argv[2])["latents"].double()
print("%.3e" % (((a - b) ** 2).sum() / (b ** 2).sum()).item())
PY
}

run() { # NAME MODEL SIZE FRAMES STEPS
    local name=$1 model=$2 size=$3 frames=$4 steps=$5 work="$bench/pipe-$1-run"
    echo "-- $name: $model, ${size}, $frames frames, $steps steps, guidance 5, $threads threads"
    py=$(python3 "$root/tests/bench/bench_pipeline_diffusers.py" run "$model" "$work" --size "$size" \
        --frames "$frames" --steps "$steps" --threads "$threads" --repeat "$repeat")
    echo "$py" | grep -v '^RESULT'
    local ts=()
    for r in $(seq 0 "$repeat"); do
        local t0 t1
        t0=$(date +%s.%N)
        "$wanrun" --log-level warn --model "$model" --prompt "A red fox runs through fresh snow at dawn, cinematic" \
            --size "$size" --frames "$frames" --steps "$steps" --guidance 5 --threads "$threads" \
            --init-noise "$work/noise.safetensors" --save-latents "$work/latents.safetensors" \
            --out "$work/out.y4m"
        t1=$(date +%s.%N)
        [ "$r" -gt 0 ] && ts+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
    done
    local med
    med=$(printf '%s\n' "${ts[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    local pys
    pys=$(echo "$py" | sed -n 's/^RESULT total_s=\([0-9.]*\).*/\1/p')
    local mn
    mn=$(printf '%s\n' "${ts[@]}" | sort -g | head -1)
    printf 'wanrun: %.3f s (median of %d: %s; fastest %.3f), whole process\n' "$med" "${#ts[@]}" \
        "${ts[*]}" "$mn"
    echo "wanrun: final latents vs diffusers: nmse $(nmse "$work/latents.safetensors" "$work/ref_latents.safetensors")"
    local pymin
    pymin=$(echo "$py" | sed -n 's/^RESULT .*min_s=\([0-9.]*\).*/\1/p')
    awk -v c="$med" -v p="$pys" -v cm="$mn" -v pm="$pymin" 'BEGIN { printf "ratio wanrun / diffusers = %.3f medians (%s), %.3f fastest runs\n", c / p, c < p ? "wanrun faster" : "wanrun slower", cm / pm }'
}

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $threads threads, load average $(cut -d' ' -f1-3 /proc/loadavg)"
run tiny "$root/tests/data/wan-tiny" "${WR_BENCH_TINY_SIZE:-64x64}" 17 8
run real "$real" "${WR_BENCH_REAL_SIZE:-128x128}" 5 4
