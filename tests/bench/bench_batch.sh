#!/usr/bin/env bash
# bench_batch.sh — the batch machinery (issue #17) on the CPU, in one run, with the bundled tiny
# model: 16 jobs of mixed sizes
#   A. wanrun --batch on 1 rank (1 thread)
#   B. wanrun --batch on 2 ranks as 2 replica groups (1 thread each: two "devices")
#   C. the same 16 jobs as 16 separate wanrun processes (1 thread), one after the other
# and prints the wall times, B's speed-up over A, and the per-job cost that a batch saves
# (the process start and the model load: (C - A) / 16). Each configuration runs WR_BENCH_REPEAT
# times (default 3); the median is printed. Not a test: no thresholds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
repeat="${WR_BENCH_REPEAT:-3}"
WR_TARGET=wanrun bash "$root/launch/build.sh" "$root/build-bench" -DCMAKE_BUILD_TYPE=Release \
    -DWR_CUDA=OFF -DWR_BUILD_TESTS=OFF >/dev/null
wanrun="$root/build-bench/wanrun"
model="$root/tests/data/wan-tiny"
work=$(mktemp -d "${TMPDIR:-/tmp}/wr-bench-batch.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
sizes=(128x128 192x128 128x192 256x128)
: >"$work/jobs.jsonl"
for i in $(seq 16); do
    s=${sizes[$((i % 4))]}
    f=$((4 * (i % 3) + 1))
    echo "{\"name\": \"j$i\", \"prompt\": \"job $i\", \"size\": \"$s\", \"frames\": $f, \"steps\": 20, \"seed\": $i}" >>"$work/jobs.jsonl"
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
run_a() { rm -rf "$work/a"; "$wanrun" --batch "$work/jobs.jsonl" --out-dir "$work/a" --model "$model" --threads 1 >/dev/null 2>&1; }
run_b() { rm -rf "$work/b"; mpiexec -n 2 --oversubscribe "$wanrun" --batch "$work/jobs.jsonl" --out-dir "$work/b" --model "$model" --threads 1 --cp-size 1 >/dev/null 2>&1; }
run_c() {
    rm -rf "$work/c" && mkdir -p "$work/c"
    while read -r line; do
        n=$(sed 's/.*"name": "\([^"]*\)".*/\1/' <<<"$line")
        p=$(sed 's/.*"prompt": "\([^"]*\)".*/\1/' <<<"$line")
        s=$(sed 's/.*"size": "\([^"]*\)".*/\1/' <<<"$line")
        f=$(sed 's/.*"frames": \([0-9]*\).*/\1/' <<<"$line")
        seed=$(sed 's/.*"seed": \([0-9]*\).*/\1/' <<<"$line")
        "$wanrun" --model "$model" --threads 1 --prompt "$p" --size "$s" --frames "$f" --steps 20 \
            --seed "$seed" --out "$work/c/$n.y4m" >/dev/null 2>&1
    done <"$work/jobs.jsonl"
}
for cfg in a b c; do
    : >"$work/t_$cfg"
    for _ in $(seq "$repeat"); do
        t0=$(now)
        "run_$cfg"
        echo "$(now) - $t0" | bc -l >>"$work/t_$cfg"
    done
done
ta=$(median <"$work/t_a") tb=$(median <"$work/t_b") tc=$(median <"$work/t_c")
same=1
for i in $(seq 16); do
    cmp -s "$work/a/j$i.y4m" "$work/c/j$i.y4m" && cmp -s "$work/b/j$i.y4m" "$work/c/j$i.y4m" || same=0
done
echo "machine: $(nproc --all) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F)"
echo "16 tiny-model jobs (128..256 px, 1-9 frames, 20 steps), median of $repeat:"
printf '  A  --batch, 1 rank:                 %7.2f s  (%.3f s per job)\n' "$ta" "$(echo "$ta / 16" | bc -l)"
printf '  B  --batch, 2 ranks = 2 replicas:   %7.2f s  (%.2fx A)\n' "$tb" "$(echo "$ta / $tb" | bc -l)"
printf '  C  16 processes, one per job:       %7.2f s  (%.3f s per job)\n' "$tc" "$(echo "$tc / 16" | bc -l)"
printf '  saved per job by the batch (C - A) / 16: %.3f s\n' "$(echo "($tc - $ta) / 16" | bc -l)"
echo "  outputs of A, B and C identical: $([ $same = 1 ] && echo yes || echo NO)"
