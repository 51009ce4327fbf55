#!/usr/bin/env bash
# bench_t5.sh [WORKDIR] — one UMT5 text-encoder forward on the CPU at the real Wan2.1 width
# (d_model 4096, 64 heads x 64, d_ff 10240, gated GELU-tanh), WR_BENCH_LAYERS layers (default 2),
# the real 256,384-row token embedding (bf16 on disk), 512 tokens (100 random ids, </s>,
# padding): wanrun against transformers' UMT5EncoderModel with the same weights, inputs and
# threads, in one run. Prints both timings, the ratio, wanrun's GFLOP/s per layer against the
# measured sgemm peak, wanrun's output NMSE against transformers' and both peak RSS. Each timed
# run is tagged with the share of the machine's CPU other processes took during it; the ratio
# is also given over the "clean" runs (< 5 %), which is the one to quote on a shared machine.
# Last, one wanrun forward from a cold page cache (weights evicted) shows what gathering the
# prompt's rows of the mapped table reads from storage.
# Needs torch + transformers + safetensors (PyPI); 3.7 GB of disk, ~10 GB of free RAM
# (transformers converts the table to fp32: its peak RSS is ~8.5 GiB).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="${1:-/tmp/wanrun-bench/t5}"
threads="${WR_BENCH_THREADS:-$(nproc)}"
layers="${WR_BENCH_LAYERS:-2}"
repeat="${WR_BENCH_REPEAT:-3}"

WR_TARGET=bench_t5 bash "$root/launch/build.sh" "$root/build-bench" -DCMAKE_BUILD_TYPE=Release \
    -DWR_CUDA=OFF -DWR_BUILD_TESTS=OFF >/dev/null
if [ ! -f "$work/io.safetensors" ] || [ ! -f "$work/text_encoder/model.safetensors" ]; then
    python3 "$root/tests/bench/bench_t5_transformers.py" make "$work" --layers "$layers"
fi
have=$(sed -n 's/^ *"num_layers": *\([0-9]*\).*/\1/p' "$work/text_encoder/config.json")
[ "$have" = "$layers" ] || echo "note: $work holds a $have-layer model (WR_BENCH_LAYERS=$layers" \
    "applies to a new WORKDIR)"
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p')," \
    "$threads threads, load average $(cut -d' ' -f1-3 /proc/loadavg)"
py=$(python3 "$root/tests/bench/bench_t5_transformers.py" time "$work" --threads "$threads" \
    --repeat "$repeat")
echo "$py" | grep -v '^RESULT'
c=$(OMP_NUM_THREADS=$threads "$root/build-bench/tests/bench/bench_t5" "$work/text_encoder" \
    "$work/io.safetensors" --threads "$threads" --repeat "$repeat" --real-rows)
echo "$c" | grep -v '^RESULT'
echo "transformers $(echo "$py" | grep '^RESULT')"
echo "wanrun $(echo "$c" | grep '^RESULT')"
field() { echo "$1" | sed -n "s/^RESULT.* $2=\([-0-9.e+]*\).*/\1/p"; }
pr=$(echo "$py" | grep '^RESULT')
cr=$(echo "$c" | grep '^RESULT')
awk -v c="$(field "$cr" forward_s)" -v p="$(field "$pr" forward_s)" \
    -v cm="$(field "$cr" min_s)" -v pm="$(field "$pr" min_s)" \
    -v cc="$(field "$cr" clean_s)" -v pc="$(field "$pr" clean_s)" \
    -v crss="$(field "$cr" maxrss_mb)" -v prss="$(field "$pr" maxrss_mb)" 'BEGIN {
    printf "ratio wanrun / transformers = %.3f (medians; %s), %.3f (fastest runs), ", c / p,
        c < p ? "wanrun faster" : "wanrun slower", cm / pm
    if (cc > 0 && pc > 0) printf "%.3f (medians of the clean runs)\n", cc / pc
    else printf "n/a (medians of the clean runs: none on one side)\n"
    printf "peak RSS wanrun %s MiB, transformers %s MiB\n", crss, prss }'
# the first use of the mapped table from a cold page cache (the weights evicted first): the
# gather's time and the bytes it made the kernel read
OMP_NUM_THREADS=$threads "$root/build-bench/tests/bench/bench_t5" "$work/text_encoder" \
    "$work/io.safetensors" --threads "$threads" --repeat 1 --cold |
    sed -n -e 's/^wanrun: runs.*; warm-up/wanrun, cold: warm-up/p' -e '/^wanrun: note/p'
