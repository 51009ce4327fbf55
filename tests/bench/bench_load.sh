#!/usr/bin/env bash
# bench_load.sh — the checkpoint-loading benchmark of issue #2, in one run.
#
#   tests/bench/bench_load.sh [WORKDIR]        (default /tmp/wanrun-bench; never inside the repo)
#
# 1. builds make_wan_ckpt and bench_load (CPU-only, Release) in $BUILD_DIR
#    (default /tmp/wr-build-bench);
# 2. writes WORKDIR/f32 and WORKDIR/bf16: full-size random Wan2.1-T2V-1.3B transformers with
#    the diffusers layout (skipped when already there);
# 3. for each variant measures, in this order, with the same page-cache eviction everywhere:
#      cat FILES >/dev/null           hot and cold (timed with date +%s.%N)
#      memcpy of the same bytes        1 and 2 threads (bench_load --memcpy)
#      bench_load pread / mmap         1 and 2 threads, hot and cold
#      bench_load touch                zero-copy: every page of the mapping touched once
#      safetensors.torch.load_file     hot and cold, backends mmap (default) and pread
#      cat again                       hot and cold, to show drift during the run
#    and prints one table per variant (medians of $REPEAT repeats, default 3).
#
# Environment: REPEAT (3), BUILD_DIR, VARIANTS ("f32 bf16"), PYTHON (python3),
# EXTRA ("": more bench_load arguments for every bench_load run), BIN_DIR (use the two
# executables found there instead of building).
# Raw logs: WORKDIR/log-<variant>.txt; tables: WORKDIR/table-<variant>.md.
set -euo pipefail

WORK=${1:-/tmp/wanrun-bench}
REPEAT=${REPEAT:-3}
VARIANTS=${VARIANTS:-"f32 bf16"}
PYTHON=${PYTHON:-python3}
EXTRA=${EXTRA:-}
read -r -a EXTRA_ARGS <<<"$EXTRA"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD_DIR:-/tmp/wr-build-bench}

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
case "$WORK/" in
"$REPO"/*)
    echo "bench_load.sh: refusing to write checkpoints inside the repository ($WORK)" >&2
    exit 2
    ;;
esac

# ---- build ----
if [ -n "${BIN_DIR:-}" ]; then
    MAKE="$BIN_DIR/make_wan_ckpt"
    BL="$BIN_DIR/bench_load"
else
    cmake -S "$REPO" -B "$BUILD" -DWR_CUDA=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD" -j2 --target make_wan_ckpt bench_load >/dev/null
    MAKE="$BUILD/tests/bench/make_wan_ckpt"
    BL="$BUILD/tests/bench/bench_load"
fi

# ---- checkpoints ----
for v in $VARIANTS; do
    d="$WORK/$v/transformer"
    if [ -f "$d/config.json" ] && ls "$d"/*.safetensors >/dev/null 2>&1; then
        echo "checkpoint $d: present, not regenerated"
    else
        "$MAKE" "$WORK/$v" --dtype "$v"
    fi
done

now() { date +%s.%N; }

# median of the numbers on stdin
median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# field=value from the last RESULT line of a log chunk on stdin
field() { grep '^RESULT' | tail -1 | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# cat_time DIR hot|cold -> median seconds on stdout, details to the log
cat_time() {
    local dir=$1 temp=$2 t0 t1
    if [ "$temp" = hot ]; then "$BL" "$dir" --warm-only >>"$LOG"; fi # evict, read like cat
    for _ in $(seq "$REPEAT"); do
        if [ "$temp" = cold ]; then "$BL" "$dir" --evict-only >>"$LOG"; fi
        t0=$(now)
        cat "$dir"/*.safetensors >/dev/null
        t1=$(now)
        awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}' | tee -a "$LOG"
    done | median
}

for v in $VARIANTS; do
    dir="$WORK/$v/transformer"
    LOG="$WORK/log-$v.txt"
    TABLE="$WORK/table-$v.md"
    : >"$LOG"
    {
        echo "# $(date -u)  $(uname -r)  $v  REPEAT=$REPEAT EXTRA='$EXTRA'"
        uptime
    } >>"$LOG"
    fbytes=$(stat -c %s "$dir"/*.safetensors | awk '{s += $1} END {print s}')
    echo "== $v: $dir, $fbytes bytes of safetensors files"

    declare -A HOT=() COLD=()
    # cat: GB/s of the file bytes (headers included: < 0.01 % more than the tensor bytes)
    s=$(cat_time "$dir" hot)
    HOT[cat]=$(awk -v b="$fbytes" -v s="$s" 'BEGIN {printf "%.2f", b / s / 1e9}')
    s=$(cat_time "$dir" cold)
    COLD[cat]=$(awk -v b="$fbytes" -v s="$s" 'BEGIN {printf "%.2f", b / s / 1e9}')
    echo "cat: hot ${HOT[cat]} GB/s, cold ${COLD[cat]} GB/s"

    for t in 1 2; do
        HOT[memcpy-$t]=$("$BL" "$dir" --memcpy --threads $t --repeat "$REPEAT" "${EXTRA_ARGS[@]}" | tee -a "$LOG" | field median_gbs)
        echo "memcpy, $t thread(s): ${HOT[memcpy-$t]} GB/s"
    done
    for m in pread mmap touch; do
        for t in 1 2; do
            [ $m = touch ] && [ $t = 2 ] && continue
            k="$m-$t"
            HOT[$k]=$("$BL" "$dir" --mode $m --threads $t --repeat "$REPEAT" "${EXTRA_ARGS[@]}" | tee -a "$LOG" | field median_gbs)
            COLD[$k]=$("$BL" "$dir" --mode $m --threads $t --repeat "$REPEAT" --cold "${EXTRA_ARGS[@]}" | tee -a "$LOG" | field median_gbs)
            echo "bench_load $m, $t thread(s): hot ${HOT[$k]} GB/s, cold ${COLD[$k]} GB/s"
        done
    done
    for b in mmap pread; do
        k="python-$b"
        HOT[$k]=$("$PYTHON" "$HERE/bench_st_python.py" "$dir" --backend $b --repeat "$REPEAT" | tee -a "$LOG" | field median_gbs)
        COLD[$k]=$("$PYTHON" "$HERE/bench_st_python.py" "$dir" --backend $b --repeat "$REPEAT" --cold | tee -a "$LOG" | field median_gbs)
        echo "load_file backend=$b: hot ${HOT[$k]} GB/s, cold ${COLD[$k]} GB/s"
    done
    s=$(cat_time "$dir" hot)
    HOT[cat2]=$(awk -v b="$fbytes" -v s="$s" 'BEGIN {printf "%.2f", b / s / 1e9}')
    s=$(cat_time "$dir" cold)
    COLD[cat2]=$(awk -v b="$fbytes" -v s="$s" 'BEGIN {printf "%.2f", b / s / 1e9}')
    echo "cat again: hot ${HOT[cat2]} GB/s, cold ${COLD[cat2]} GB/s"
    uptime >>"$LOG"

    # ---- the table ----
    pct() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b == 0) print "—"; else printf "%.0f %%", 100 * a / b}'; }
    catc=$(awk -v a="${COLD[cat]}" -v b="${COLD[cat2]}" 'BEGIN {printf "%.2f", (a + b) / 2}')
    row() { # name key threads-for-memcpy
        local h=${HOT[$2]:-} c=${COLD[$2]:-} m=${HOT[memcpy-$3]:-}
        printf '| %s | %s | %s | %s | %s |\n' "$1" "${h:-—}" "${c:-—}" "$(pct "$h" "$m")" "$(pct "$c" "$catc")"
    }
    {
        echo "| $v: method | hot GB/s | cold GB/s | hot % of memcpy (same threads) | cold % of cat |"
        echo "|---|---|---|---|---|"
        # shellcheck disable=SC2016 # the backticks are Markdown
        printf '| `cat` (start / end of run) | %s / %s | %s / %s | — | 100 %% (mean %s) |\n' \
            "${HOT[cat]}" "${HOT[cat2]}" "${COLD[cat]}" "${COLD[cat2]}" "$catc"
        row "memcpy, 1 thread" memcpy-1 1
        row "memcpy, 2 threads" memcpy-2 2
        row "bench_load pread, 1 thread" pread-1 1
        row "bench_load pread, 2 threads" pread-2 2
        row "bench_load mmap+memcpy, 1 thread" mmap-1 1
        row "bench_load mmap+memcpy, 2 threads" mmap-2 2
        row "bench_load touch (zero-copy), 1 thread" touch-1 1
        row "load_file (backend=mmap, default) + touch" python-mmap 1
        row "load_file (backend=pread)" python-pread 1
    } >"$TABLE"
    echo
    cat "$TABLE"
    echo
    unset HOT COLD
done
echo "logs: $WORK/log-*.txt, tables: $WORK/table-*.md"
