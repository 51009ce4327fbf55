#!/usr/bin/env bash
# bench_cp.sh [WORKDIR] — the context-parallel DiT (issue #7) on the CPU: one forward at the
# real Wan2.1-1.3B width (D=1536, 12 heads x 128, FFN 8960) with bench_dit.sh's generated
# checkpoint (WR_BENCH_LAYERS blocks, default 2; made by bench_dit_diffusers.py if missing,
# which needs torch + diffusers), 512 text rows, for each latent of WR_BENCH_LATENTS
# (default "io 5,60,52": io = bench_dit's io.safetensors, latent [16,5,30,52], L = 1950;
# F,H,W = seeded random latent [16,F,H,W] with random text, here L = 3900), in four
# configurations: 1 rank x 1 thread (the reference: its output is saved), 1 rank x 2 threads,
# 2 ranks x 1 thread Ulysses, 2 ranks x 1 thread ring (mpirun -np 2 --oversubscribe
# --bind-to none). Each run compares its output with the 1x1 one (bitwise for Ulysses, NMSE
# <= 1e-7 otherwise) and reports the bytes sent per block and rank next to the formula.
# Prints a summary table (speedups vs 1x1) and the GPU projection (bench_cp --plan).
# WR_BENCH_REPEAT (default 3) timed forwards after one warm-up, median; WR_BENCH_PROFILE=1
# adds a per-op profile of rank 0 to each run. Exit status 1 if any output check failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="${1:-/tmp/wanrun-bench/dit}"
layers="${WR_BENCH_LAYERS:-2}"
repeat="${WR_BENCH_REPEAT:-3}"
latents="${WR_BENCH_LATENTS:-io 5,60,52}"
prof=()
[ "${WR_BENCH_PROFILE:-0}" = 1 ] && prof=(--profile)
out="$work/cp"
bin="$root/build-bench/tests/bench/bench_cp"

WR_JOBS="${WR_JOBS:-2}" WR_TARGET=bench_cp bash "$root/launch/build.sh" "$root/build-bench" \
    -DCMAKE_BUILD_TYPE=Release -DWR_CUDA=OFF -DWR_BUILD_TESTS=OFF >/dev/null
if [ ! -f "$work/io.safetensors" ]; then
    python3 "$root/tests/bench/bench_dit_diffusers.py" make "$work" --layers "$layers"
fi
mkdir -p "$out"
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
mpi=(mpirun -np 2 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
    "$(mpirun --version | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
results=()
for lat in $latents; do
    if [ "$lat" = io ]; then
        input=("$work/io.safetensors")
        tag=io
    else
        input=(--random "$lat,512")
        tag="r${lat//,/x}"
    fi
    ref="$out/ref-$tag.safetensors"
    rm -f "$ref"
    for cfg in 1x1 1x2 2x1-ulysses 2x1-ring; do
        case $cfg in
        1x1) cmd=(env OMP_NUM_THREADS=1 "$bin" "$work/transformer" "${input[@]}" --threads 1
            --save "$ref") ;;
        1x2) cmd=(env OMP_NUM_THREADS=2 "$bin" "$work/transformer" "${input[@]}" --threads 2
            --ref "$ref") ;;
        2x1-*) cmd=("${mpi[@]}" "$bin" "$work/transformer" "${input[@]}" --threads 1
            --cp "${cfg#2x1-}" --ref "$ref") ;;
        esac
        echo "-- $cfg: ${cmd[*]} --repeat $repeat ${prof[*]}"
        rc=0
        o=$("${cmd[@]}" --repeat "$repeat" "${prof[@]}" 2>&1) || rc=$?
        echo "$o" | grep -v '^RESULT'
        r=$(echo "$o" | grep '^RESULT' || true)
        [ -n "$r" ] || r="RESULT cfg=$cfg failed rc=$rc"
        [ "$rc" -eq 0 ] || r="$r check=FAIL"
        results+=("$r")
    done
done
echo "== done $(date -u '+%H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "| L | ranks x threads | mode | forward s | s / block | speedup vs 1x1 | bytes / block / rank | theory | vs 1x1 output |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${results[@]}" | awk '
    function v(k,  i, a) { for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == k) return a[2] } return "" }
    / failed / { print "| ? | " $2 " | failed | | | | | | FAIL |"; bad = 1; next }
    {
        L = v("L"); f = v("forward_s"); if (v("ranks") == 1 && v("threads") == 1) base[L] = f
        sp = base[L] > 0 ? sprintf("%.2f", base[L] / f) : "-"
        b = v("ranks") > 1 ? sprintf("%d", v("bytes_block")) : "-"
        t = v("ranks") > 1 ? sprintf("%d", v("theory_block")) : "-"
        c = v("check") == "none" ? "(reference)" : v("bitwise") == 1 ? "bitwise" : sprintf("nmse %s", v("nmse"))
        if (v("check") == "FAIL") { c = c " FAIL"; bad = 1 }
        printf "| %s | %s x %s | %s | %.3f | %.3f | %s | %s | %s | %s |\n", L, v("ranks"), v("threads"), v("mode"), f, v("block_s"), sp, b, t, c
    }
    END { exit bad }' || fail=1

echo
"$bin" --plan
exit "${fail:-0}"
