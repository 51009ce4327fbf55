#!/usr/bin/env bash
# comm_fail.sh MODE MPIEXEC COMM_FAIL — runs tests/comm_fail.c under "MPIEXEC -n 2" and checks
# how the job ends:
#   kill   a rank killed by SIGKILL mid-job: the job exits non-zero, well within the limit
#          (no hang), and rank 1 got as far as raising the signal;
#   agree  a failure on rank 1 agreed by wr_comm_agree: both ranks print the identical
#          "agreed:" text naming rank 1 and the missing file, and the job exits with 10 + the
#          status code (ERR_NOT_FOUND = 4, so 14).
# Open MPI as root and oversubscription come from the environment (WR_TEST_ENV in CTest).
set -uo pipefail
mode=$1
mpiexec=$2
bin=$3
limit=50 # seconds; CTest's own TIMEOUT is 60

out=$(mktemp)
trap 'rm -f "$out"' EXIT

fail() {
    echo "FAIL (comm_fail $mode): $*"
    sed 's/^/  | /' "$out"
    exit 1
}

start=$(date +%s)
timeout -k 5 "$limit" "$mpiexec" -n 2 --oversubscribe "$bin" "$mode" >"$out" 2>&1
rc=$?
elapsed=$(($(date +%s) - start))

case "$mode" in
kill)
    [ "$rc" -eq 124 ] && fail "the job hung: still running after ${limit} s"
    [ "$rc" -ne 0 ] || fail "the job exited 0 although rank 1 was killed"
    [ "$elapsed" -lt "$limit" ] || fail "took ${elapsed} s"
    grep -q '^\[rank 1\] raising SIGKILL' "$out" || fail "rank 1 never reached the kill"
    echo "kill: the job ended with exit $rc after ${elapsed} s"
    ;;
agree)
    [ "$rc" -eq 14 ] || fail "exit $rc, expected 14 (10 + ERR_NOT_FOUND)"
    want='agreed: ERR_NOT_FOUND: rank 1: /nonexistent/wanrun-comm-fail/model.safetensors: cannot open: No such file or directory'
    for r in 0 1; do
        line=$(grep "^\[rank $r\] agreed: " "$out")
        [ "${line#"[rank $r] "}" = "$want" ] || fail "rank $r printed '$line', expected '$want'"
    done
    echo "agree: both ranks printed '$want' and the job exited $rc"
    ;;
*)
    echo "usage: comm_fail.sh kill|agree MPIEXEC COMM_FAIL" >&2
    exit 2
    ;;
esac
