#!/usr/bin/env bash
# test_launch.sh SOURCE_DIR WANRUN — the launch scripts: launch/run.sh prints the mpirun
# command it would run (--dry-run: rank count, binding or oversubscription, OMP_NUM_THREADS,
# the root-only Open MPI variables, the wanrun arguments quoted), rejects bad usage with exit
# 2, and really starts a 2-rank `wanrun --help` that exits 0 with the help printed once (rank
# 0 only). Both launch scripts pass `bash -n`, and shellcheck where it is installed.
set -uo pipefail
root=$1
wanrun=$2
run=$root/launch/run.sh
pass=0
fail=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

ok() {
    pass=$((pass + 1))
}
bad() {
    fail=$((fail + 1))
    echo "FAIL: $*"
    sed 's/^/  | /' "$out" | head -20
}

# has PATTERN DESCRIPTION: $out contains PATTERN (extended regex)
has() {
    if grep -qE -- "$1" "$out"; then ok; else bad "$2: no match for '$1'"; fi
}
lacks() {
    if grep -qE -- "$1" "$out"; then bad "$2: unexpected '$1'"; else ok; fi
}

# expect CODE DESCRIPTION -- command...
expect() {
    local want=$1 what=$2
    shift 3
    "$@" >"$out" 2>&1
    local got=$?
    if [ "$got" -eq "$want" ]; then ok; else bad "$what: exit $got, expected $want"; fi
}

for f in "$run" "$root/launch/slurm/wanrun.sbatch"; do
    expect 0 "bash -n $f" -- bash -n "$f"
    if command -v shellcheck >/dev/null 2>&1; then
        expect 0 "shellcheck $f" -- shellcheck "$f"
    fi
done

cores=$(nproc)
# the ranks fit when 2 x 1 <= cores: each rank bound to its own core
expect 0 "dry run" -- bash "$run" --dry-run -n 2 --threads 1 -- wanrun --help
has '(^|[ /])mpirun -n 2 ' "mpirun with 2 ranks"
if [ "$cores" -ge 2 ]; then
    has ' --map-by slot:PE=1 --bind-to core ' "one core per rank"
else
    has ' --oversubscribe --bind-to none ' "oversubscribed on one core"
fi
has ' -x OMP_NUM_THREADS=1 ' "OMP_NUM_THREADS exported"
has ' wanrun --help$' "the wanrun command last"
if [ "$(id -u)" -eq 0 ]; then
    has '^env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ' "root variables as root"
else
    lacks 'OMPI_ALLOW_RUN_AS_ROOT' "no root variables for a normal user"
fi
if [ "$(wc -l <"$out")" -eq 1 ]; then ok; else bad "--dry-run prints one line"; fi

# more ranks x threads than cores: oversubscribed and unbound (no WR_* variable set to be exported)
expect 0 "oversubscribed dry run" -- env -u WR_STRICT_DEVICE bash "$run" --dry-run -n $((cores + 1)) --threads 2 -- wanrun
has " -n $((cores + 1)) --oversubscribe --bind-to none -x OMP_NUM_THREADS=2 wanrun$" \
    "oversubscription"

# arguments with spaces come back quoted; WR_* variables are exported
WR_NCCL_TIMEOUT_S=30 expect 0 "quoting" -- bash "$run" --dry-run -n 1 --threads 1 -- \
    wanrun --prompt "a red fox"
has ' -x WR_NCCL_TIMEOUT_S ' "WR_* variables exported"
has ' --prompt a\\ red\\ fox$' "arguments quoted"

# default rank count: one per GPU, else 1
expect 0 "default ranks" -- bash "$run" --dry-run --threads 1 -- wanrun
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    has " -n $(nvidia-smi -L | grep -c '^GPU ') " "one rank per GPU"
else
    has ' -n 1 ' "one rank without GPUs"
fi

expect 2 "no command" -- bash "$run" -n 2
has 'no command' "no-command message"
expect 2 "bad rank count" -- bash "$run" -n zero -- wanrun
has "-n 'zero' is not a positive number" "bad-ranks message"
expect 2 "bad thread count" -- bash "$run" --threads 0 -- wanrun
expect 2 "unknown option" -- bash "$run" --bogus -- wanrun
has "unknown option '--bogus'" "unknown-option message"
expect 0 "--help" -- bash "$run" --help
has '--dry-run' "--help lists --dry-run"

# the real thing: 2 ranks of wanrun --help, exit 0, the help once (rank 0 prints it)
expect 0 "run.sh -n 2 --threads 1 -- wanrun --help" -- bash "$run" -n 2 --threads 1 -- \
    "$wanrun" --help
has '^run\.sh: .*mpirun -n 2 ' "the command is printed"
n=$(grep -c '^usage: wanrun' "$out")
if [ "$n" -eq 1 ]; then ok; else bad "help printed $n times, expected once"; fi

echo "test_launch: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
