#!/usr/bin/env bash
# bench_load.sh — the checkpoint-loading benchmark of issue #2, in one run.
#
#   tests/bench/bench_load.sh [WORKDIR]        (default /tmp/wanrun-bench; never inside the repo)
#
# 1. builds make_wan_ckpt and bench_load (CPU-only, Release) in $BUILD_DIR
#    (default /tmp/wr-build-bench);
# 2. writes WORKDIR/f32 and WORKDIR/bf16: full-size random Wan2.1-T2V-1.3B transformers with
#    the diffusers layout (skipped when already there);
# 3. for each variant measures:
#      cat FILES >/dev/null           hot at the start and at the end (timed with date +%s.%N)
#      memcpy of the same bytes        1 and 2 threads (bench_load --memcpy)
#      bench_load pread / mmap         1 and 2 threads, hot and cold
#      bench_load touch                zero-copy: every 4 KiB page of the mapping read once
#      bench_load direct               cold only: O_DIRECT preads of the whole shards into the
#                                      arena, bypassing the page cache (1 and 2 threads)
#      bench_load pread, fresh arena   hot: destination allocated inside the timed region
#                                      (4 KiB pages, and THP), like a loader that allocates
#      safetensors.torch.load_file     hot and cold, backends mmap (default) and pread
#    and prints one table per variant: medians of $REPEAT repeats (default 3).
#
# Hot: every method starts from the same state — evict, read the shards once like cat
# (bench_load --warm-only), one untimed repeat of the method — and bench_load's hot repeats
# are each followed by a memcpy of the same bytes into the same arena (--pair-memcpy): the
# "% of memcpy" column is the median of those per-repeat ratios (for load_file: the ratio of
# its median to the memcpy median, unpaired).
# Cold: every repeat of every method is paired with a `cat` of the evicted files just before
# or after it (alternating); "% of cat (paired)" is the median of the per-pair ratios (the
# disk of a shared VM drifts by 2x between consecutive runs, so a baseline taken minutes
# away says little); "% of cat (medians)" is the method's median over the median of all the
# paired cat runs. Eviction is posix_fadvise(DONTNEED) on the shards, falling back to
# drop_caches (the logs say which, and how much stayed resident).
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

# ---- helpers ----
now() { date +%s.%N; }

# median of the numbers on stdin
median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# field=value from the last RESULT line on stdin
field() { grep '^RESULT' | tail -1 | tr ' ' '\n' | sed -n "s/^$1=//p"; }

gbs() { awk -v b="$1" -v a="$2" -v e="$3" 'BEGIN {printf "%.3f\n", b / (e - a) / 1e9}'; }

# one timed `cat` of the shards; GB/s of the file bytes on stdout
cat_once() {
    local t0 t1
    t0=$(now)
    cat "$dir"/*.safetensors >/dev/null
    t1=$(now)
    gbs "$fbytes" "$t0" "$t1"
}

# cat_hot -> median GB/s of REPEAT hot cats after the common warm-up
cat_hot() {
    "$BL" "$dir" --warm-only >>"$LOG"
    for _ in $(seq "$REPEAT"); do cat_once | tee -a "$LOG"; done | median
}

# cold_pair KEY CMD...: REPEAT times {evict, time cat; run CMD (one cold repeat, it evicts
# first)}, cat first in odd repeats and second in even ones.
# Sets COLD[KEY] (median GB/s of CMD) and CATPCT[KEY] (median of CMD/cat in %).
cold_pair() {
    local key=$1 c g i pairs=""
    shift
    for i in $(seq "$REPEAT"); do
        if [ $((i % 2)) = 0 ]; then g=$("$@" | tee -a "$LOG" | field median_gbs); fi
        "$BL" "$dir" --evict-only >>"$LOG"
        c=$(cat_once)
        echo "paired cat, cold: $c GB/s" >>"$LOG"
        if [ $((i % 2)) = 1 ]; then g=$("$@" | tee -a "$LOG" | field median_gbs); fi
        pairs+="$g $c"$'\n'
        echo "$c" >>"$CATS"
    done
    COLD[$key]=$(printf '%s' "$pairs" | awk '{print $1}' | median)
    CATPCT[$key]=$(printf '%s' "$pairs" | awk '{printf "%.2f\n", 100 * $1 / $2}' | median)
}

pct() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b == 0) print "—"; else printf "%.0f %%", 100 * a / b}'; }
fmt() { if [ -n "${1:-}" ]; then awk -v x="$1" 'BEGIN {printf "%.2f", x}'; else echo "—"; fi; }
fmtpct() { if [ -n "${1:-}" ]; then awk -v x="$1" 'BEGIN {printf "%.0f %%", x}'; else echo "—"; fi; }

for v in $VARIANTS; do
    dir="$WORK/$v/transformer"
    LOG="$WORK/log-$v.txt"
    TABLE="$WORK/table-$v.md"
    CATS=$(mktemp)
    : >"$LOG"
    {
        echo "# $(date -u)  $(uname -r)  $v  REPEAT=$REPEAT EXTRA='$EXTRA'"
        uptime
    } >>"$LOG"
    fbytes=$(stat -c %s "$dir"/*.safetensors | awk '{s += $1} END {printf "%.0f", s}')
    echo "== $v: $dir, $fbytes bytes of safetensors files, $(date -u)"

    declare -A HOT=() COLD=() MEMPCT=() CATPCT=()
    HOT[cat]=$(cat_hot)
    MEMPCT[memcpy-1]=100
    MEMPCT[memcpy-2]=100
    echo "cat, hot: ${HOT[cat]} GB/s"
    for t in 1 2; do
        HOT[memcpy-$t]=$("$BL" "$dir" --memcpy --threads $t --repeat "$REPEAT" "${EXTRA_ARGS[@]}" | tee -a "$LOG" | field median_gbs)
        echo "memcpy, $t thread(s): ${HOT[memcpy-$t]} GB/s"
    done
    for m in pread mmap touch; do
        for t in 1 2; do
            [ $m = touch ] && [ $t = 2 ] && continue
            k="$m-$t"
            pair=(--pair-memcpy)
            [ $m = touch ] && pair=() # zero-copy: no memcpy to compare with
            out=$("$BL" "$dir" --mode $m --threads $t --repeat "$REPEAT" "${pair[@]}" "${EXTRA_ARGS[@]}" | tee -a "$LOG")
            HOT[$k]=$(field median_gbs <<<"$out")
            MEMPCT[$k]=$(field pct_of_memcpy <<<"$out")
            cold_pair "$k" "$BL" "$dir" --mode $m --threads $t --repeat 1 --cold "${EXTRA_ARGS[@]}"
            echo "bench_load $m, $t thread(s): hot ${HOT[$k]} GB/s (${MEMPCT[$k]} % of memcpy), cold ${COLD[$k]} GB/s (${CATPCT[$k]} % of cat)"
        done
    done
    for t in 1 2; do # O_DIRECT bypasses the page cache: cold only
        k="direct-$t"
        cold_pair "$k" "$BL" "$dir" --mode direct --threads $t --repeat 1 --cold "${EXTRA_ARGS[@]}"
        echo "bench_load direct, $t thread(s): cold ${COLD[$k]} GB/s (${CATPCT[$k]} % of cat)"
    done
    for arena in fresh fresh-thp; do
        k="pread-1-$arena"
        args=(--fresh-arena)
        [ $arena = fresh-thp ] && args+=(--hugepages)
        HOT[$k]=$("$BL" "$dir" --mode pread --repeat "$REPEAT" "${args[@]}" "${EXTRA_ARGS[@]}" | tee -a "$LOG" | field median_gbs)
        echo "bench_load pread, 1 thread, $arena arena: hot ${HOT[$k]} GB/s"
    done
    for b in mmap pread; do
        k="python-$b"
        HOT[$k]=$("$PYTHON" "$HERE/bench_st_python.py" "$dir" --backend $b --repeat "$REPEAT" | tee -a "$LOG" | field median_gbs)
        cold_pair "$k" "$PYTHON" "$HERE/bench_st_python.py" "$dir" --backend $b --repeat 1 --cold
        echo "load_file backend=$b: hot ${HOT[$k]} GB/s, cold ${COLD[$k]} GB/s (${CATPCT[$k]} % of cat)"
    done
    HOT[cat2]=$(cat_hot)
    COLD[cat]=$(median <"$CATS")
    ncat=$(wc -l <"$CATS")
    echo "cat, hot at the end: ${HOT[cat2]} GB/s; cat, cold: median ${COLD[cat]} GB/s of $ncat paired runs"
    uptime >>"$LOG"
    rm -f "$CATS"

    # ---- the table ----
    # hot row: name key memcpy-threads (for the unpaired % of the python rows)
    row() {
        local mp=${MEMPCT[$2]:-}
        if [ -z "$mp" ] && [ -n "${HOT[$2]:-}" ] && [ -n "${3:-}" ]; then
            mp=$(pct "${HOT[$2]}" "${HOT[memcpy-$3]}")
            mp="$mp (unpaired)"
        else
            mp=$(fmtpct "$mp")
        fi
        printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$(fmt "${HOT[$2]:-}")" "$(fmt "${COLD[$2]:-}")" \
            "$mp" "$(fmtpct "${CATPCT[$2]:-}")" "$(pct "${COLD[$2]:-}" "${COLD[cat]}")"
    }
    {
        echo "| $v: method | hot GB/s | cold GB/s | hot, % of memcpy | cold, % of cat (paired) | cold, % of cat (medians) |"
        echo "|---|---|---|---|---|---|"
        # shellcheck disable=SC2016 # the backticks are Markdown
        printf '| `cat` (hot: start / end; cold: median of %s paired runs) | %s / %s | %s | — | 100 %% | 100 %% |\n' \
            "$ncat" "$(fmt "${HOT[cat]}")" "$(fmt "${HOT[cat2]}")" "$(fmt "${COLD[cat]}")"
        row "memcpy, 1 thread" memcpy-1
        row "memcpy, 2 threads" memcpy-2
        row "bench_load pread, 1 thread" pread-1
        row "bench_load pread, 2 threads" pread-2
        row "bench_load mmap+memcpy, 1 thread" mmap-1
        row "bench_load mmap+memcpy, 2 threads" mmap-2
        row "bench_load touch (zero-copy), 1 thread" touch-1
        row "bench_load O_DIRECT (own fds, not the library), 1 thread" direct-1
        row "bench_load O_DIRECT (own fds, not the library), 2 threads" direct-2
        row "bench_load pread, 1 thread, fresh arena (4 KiB pages)" pread-1-fresh 1
        row "bench_load pread, 1 thread, fresh arena (THP)" pread-1-fresh-thp 1
        row "load_file, backend=mmap (default), + page touch" python-mmap 1
        row "load_file, backend=pread" python-pread 1
    } >"$TABLE"
    echo
    cat "$TABLE"
    echo
    unset HOT COLD MEMPCT CATPCT
done
echo "logs: $WORK/log-*.txt, tables: $WORK/table-*.md"
