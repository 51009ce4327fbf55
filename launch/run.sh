#!/usr/bin/env bash
# run.sh — starts wanrun under Open MPI's mpirun, one rank per GPU by default, with each rank's
# OpenMP threads bound to their own cores:
#
#   launch/run.sh [-n RANKS] [--threads N] [--hostfile FILE] [--dry-run] -- wanrun [args...]
#
#   -n, --ranks RANKS  number of ranks (default: the GPUs that `nvidia-smi -L` lists, else 1)
#   --threads N        OpenMP threads per rank, exported as OMP_NUM_THREADS
#                      (default: this machine's cores / RANKS, at least 1)
#   --hostfile FILE    passed to mpirun (multi-node; its slots decide the placement)
#   --dry-run          print the mpirun command and exit without running it
#
# Placement: when RANKS x N fits in this machine's cores, every rank gets N cores of its own
# (--map-by slot:PE=N --bind-to core); when it does not, the ranks are oversubscribed and left
# unbound (--oversubscribe --bind-to none), since binding would pile them onto the same cores.
# OMP_NUM_THREADS and every WR_* / NCCL_* / CUDA_VISIBLE_DEVICES variable set here are
# exported to the ranks (-x). As root (containers) the OMPI_ALLOW_RUN_AS_ROOT variables that
# Open MPI demands are set for mpirun, and only then. MPIRUN names another mpirun binary.
#
# The command is printed (on stderr when it runs, on stdout with --dry-run) in a form that can
# be pasted back into a shell. Exit status: mpirun's, or 2 for a usage error.
set -euo pipefail

usage() {
    # the header comment above, without the "# "
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

die() {
    echo "run.sh: $*" >&2
    exit 2
}

ranks=""
threads=""
hostfile=""
dry_run=0
while [ $# -gt 0 ]; do
    case "$1" in
    -n | --ranks)
        [ $# -ge 2 ] || die "$1 needs a number of ranks"
        ranks=$2
        shift 2
        ;;
    --threads)
        [ $# -ge 2 ] || die "--threads needs a number of threads per rank"
        threads=$2
        shift 2
        ;;
    --hostfile)
        [ $# -ge 2 ] || die "--hostfile needs a file"
        hostfile=$2
        shift 2
        ;;
    --dry-run)
        dry_run=1
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    --)
        shift
        break
        ;;
    *)
        die "unknown option '$1' (the wanrun command goes after --; see launch/run.sh --help)"
        ;;
    esac
done
[ $# -gt 0 ] || die "no command: launch/run.sh [options] -- wanrun [args...]"

is_count() {
    [[ $1 =~ ^[1-9][0-9]*$ ]]
}

if [ -z "$ranks" ]; then
    ranks=1
    if command -v nvidia-smi >/dev/null 2>&1; then
        gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
        if is_count "${gpus:-0}"; then ranks=$gpus; fi
    fi
fi
is_count "$ranks" || die "-n '$ranks' is not a positive number of ranks"

cores=$(nproc 2>/dev/null || echo 1)
if [ -z "$threads" ]; then
    threads=$((cores / ranks))
    [ "$threads" -ge 1 ] || threads=1
fi
is_count "$threads" || die "--threads '$threads' is not a positive number of threads"

cmd=("${MPIRUN:-mpirun}" -n "$ranks")
[ -z "$hostfile" ] || cmd+=(--hostfile "$hostfile")
if [ -z "$hostfile" ] && [ $((ranks * threads)) -gt "$cores" ]; then
    cmd+=(--oversubscribe --bind-to none)
else
    cmd+=(--map-by "slot:PE=$threads" --bind-to core)
fi
cmd+=(-x "OMP_NUM_THREADS=$threads")
while IFS= read -r var; do
    cmd+=(-x "$var")
done < <(compgen -e | grep -E '^(WR_[A-Za-z0-9_]*|NCCL_[A-Za-z0-9_]*|CUDA_VISIBLE_DEVICES)$' |
    sort || true)
cmd+=("$@")

env_vars=()
if [ "$(id -u)" -eq 0 ]; then
    env_vars=(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
fi

line=""
if [ ${#env_vars[@]} -gt 0 ]; then line="env ${env_vars[*]} "; fi
line+=$(printf '%q ' "${cmd[@]}")
line=${line% }

if [ "$dry_run" -eq 1 ]; then
    echo "$line"
    exit 0
fi
echo "run.sh: $line" >&2
if [ ${#env_vars[@]} -gt 0 ]; then
    exec env "${env_vars[@]}" "${cmd[@]}"
fi
exec "${cmd[@]}"
