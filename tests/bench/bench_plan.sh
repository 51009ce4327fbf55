#!/usr/bin/env bash
# bench_plan.sh [BUILD] — the memory planner's report for BENCHMARKS.md (issue #8): `wanrun
# plan` for Wan2.1 1.3B at 832x480 and 14B at 832x480 and 1280x720, 81 frames, np 1/2/4/8,
# Wan2.2 T2V-A14B (issue #18) at both sizes on 1 and 8 ranks, TI2V-5B at 1280x704, 121 frames,
# text only and with an image (--image), on 1 and 8 ranks,
# bf16 and FP8 weights, as markdown tables of the peak device MiB per rank at levels 0-3 (the
# phase of the peak) with the host MiB in brackets; then the 12 GiB recommendation for the 14B at
# 720p with FP8. A GPU run is assumed (bf16 activations, the CUDA backend's scratch and pinned
# staging): these are plans, not measurements. BUILD: a build directory holding wanrun
# (default build/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
wanrun="${1:-$root/build}/wanrun"
[ -x "$wanrun" ] || { echo "bench_plan: no $wanrun (build first: bash launch/build.sh)" >&2; exit 2; }

echo "Command: wanrun plan --preset P --size WxH --frames 81 --np N [--fp8], $(date -u '+%Y-%m-%d')"
table() { # preset size [rank counts [frames [extra flag]]]
    local name="Wan2.1 $1" nps=${3:-"1 2 4 8"} frames=${4:-81} flag=${5:-}
    [ "$1" = a14b ] && name="Wan2.2 T2V-A14B (two experts)"
    [ "$1" = 5b ] && name="Wan2.2 TI2V-5B, $([ -n "$flag" ] && echo "with an image" || echo "text only")"
    echo
    echo "**$name, ${2/x/ × }, $frames frames** — peak device MiB per rank (the phase of the peak), host MiB in brackets"
    echo
    echo "| ranks | weights | level 0 | level 1 | level 2 | level 3 |"
    echo "|---|---|---|---|---|---|"
    for np in $nps; do
        for w in bf16 fp8; do
            local extra=()
            [ "$w" = fp8 ] && extra=(--fp8)
            [ -n "$flag" ] && extra+=("$flag")
            "$wanrun" plan --preset "$1" --size "$2" --frames "$frames" --np "$np" "${extra[@]}" |
                awk -v np="$np" -v w="$w" '
                    $1 ~ /^[0-3]$/ { cell[$1] = $2 " (" $3 ") [" $9 "]" }
                    END { printf "| %s | %s | %s | %s | %s | %s |\n", np, w, cell[0], cell[1],
                          cell[2], cell[3] }'
        done
    done
}
table 1.3b 832x480
table 14b 832x480
table 14b 1280x720
table a14b 832x480 "1 8"
table a14b 1280x720 "1 8"
table 5b 1280x704 "1 8" 121
table 5b 1280x704 "1 8" 121 --image
echo
echo "With a 12 GiB budget, 14B at 1280 x 720, FP8, one rank:"
echo
echo '```'
"$wanrun" plan --preset 14b --size 1280x720 --frames 81 --fp8 --vram 12GiB
echo '```'
