#!/usr/bin/env bash
# comm_fail.sh MODE MPIEXEC COMM_FAIL — runs tests/comm_fail.c under "MPIEXEC -n 2" and checks
# how the job ends:
#   kill   a rank killed by SIGKILL mid-job: the job exits non-zero, well within the limit
#          (no hang), and rank 1 got as far as raising the signal;
#   agree  a failure on rank 1 agreed by wr_comm_agree: both ranks print the identical
#          "agreed:" text naming rank 1 and the missing file, and the job exits with 10 + the
#          status code (ERR_NOT_FOUND = 4, so 14);
#   stop   rank 1 stops itself (SIGSTOP) while rank 0 waits for it, WR_COMM_TIMEOUT_S=3: the
#          job ends with exit 5 (WR_COMM_ABORT_EXIT) well within the limit, rank 0 having logged
#          that rank 1 has not answered, naming the call and the variable;
#   busy   rank 1 sleeps, then computes, 2.5 x WR_COMM_TIMEOUT_S=2 before each collective: the
#          job ends normally (exit 0, both ranks "busy: ok") and nobody is called silent;
#   busy-mixed  as busy (3 s), but rank 0 has WR_COMM_TIMEOUT_S=1 and rank 1 has 0 (off): the
#          ranks agree to run no heartbeat, so rank 0 does not take rank 1 for stopped.
# Every rank prints its pid ("[rank R] pid P"): whatever is left when the job has ended (a
# stopped rank, a rank spinning after a hang) is continued and killed, so nothing remains.
# Open MPI as root and oversubscription come from the environment (WR_TEST_ENV in CTest).
set -uo pipefail
mode=$1
mpiexec=$2
bin=$3
limit=${WR_COMM_FAIL_LIMIT:-50} # seconds; CTest's own TIMEOUT is 60

out=$(mktemp)
cleanup() {
    # the ranks' own pids, if still there and still ours (a pid may have been reused)
    for pid in $(sed -n 's/^\[rank [0-9]*\] pid \([0-9]*\)$/\1/p' "$out" 2>/dev/null); do
        if grep -q comm_fail "/proc/$pid/cmdline" 2>/dev/null; then
            kill -CONT "$pid" 2>/dev/null
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    rm -f "$out"
}
trap cleanup EXIT

case "$mode" in
stop) export WR_COMM_TIMEOUT_S=3 ;;
busy) export WR_COMM_TIMEOUT_S=2 ;;
busy-mixed) export WR_TEST_BUSY_S=3 ;; # the timeouts are set per rank below
esac

fail() {
    echo "FAIL (comm_fail $mode): $*"
    sed 's/^/  | /' "$out"
    exit 1
}

# The only bound on time is the hang guard: `timeout` ends a job still running after $limit s
# (exit 124, reported as a hang); the elapsed seconds are printed, never compared.
start=$(date +%s)
if [ "$mode" = busy-mixed ]; then
    timeout -k 5 "$limit" "$mpiexec" --oversubscribe \
        -n 1 -x WR_COMM_TIMEOUT_S=1 "$bin" busy : -n 1 -x WR_COMM_TIMEOUT_S=0 "$bin" busy \
        >"$out" 2>&1
else
    timeout -k 5 "$limit" "$mpiexec" -n 2 --oversubscribe "$bin" "$mode" >"$out" 2>&1
fi
rc=$?
elapsed=$(($(date +%s) - start))

case "$mode" in
kill)
    [ "$rc" -eq 124 ] && fail "the job hung: still running after ${limit} s"
    [ "$rc" -ne 0 ] || fail "the job exited 0 although rank 1 was killed"
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
stop)
    [ "$rc" -eq 124 ] && fail "the job hung: still running after ${limit} s with rank 1 stopped"
    grep -q '^\[rank 1\] stopping itself' "$out" || fail "rank 1 never stopped itself"
    grep -q 'wr_comm_agree returned' "$out" && fail "the agreement completed without rank 1"
    want='^\[0/2\] error: rank 1 has not answered for [0-9]+ s \(stopped or hung\?\) in MPI_Iallreduce \(agreeing on a status\) on the group communicator; aborting the job \(WR_COMM_TIMEOUT_S=3\)$'
    grep -Eq "$want" "$out" || fail "no line matching '$want'"
    [ "$rc" -eq 5 ] || fail "exit $rc, expected 5 (WR_COMM_ABORT_EXIT)"
    echo "stop: rank 0 named the stopped rank 1 and the job exited $rc after ${elapsed} s"
    ;;
busy | busy-mixed)
    [ "$rc" -eq 124 ] && fail "the job hung: still running after ${limit} s"
    grep -q 'has not answered' "$out" && fail "a busy rank was taken for a stopped one"
    [ "$rc" -eq 0 ] || fail "exit $rc, expected 0"
    for r in 0 1; do
        grep -q "^\[rank $r\] busy: ok" "$out" || fail "rank $r did not finish its checks"
    done
    echo "$mode: a rank busy for longer than the timeout before each collective is not aborted"
    grep '^\[rank 0\] waited' "$out"
    ;;
*)
    echo "usage: comm_fail.sh kill|agree|stop|busy|busy-mixed MPIEXEC COMM_FAIL" >&2
    exit 2
    ;;
esac
