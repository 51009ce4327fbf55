# shellcheck shell=bash disable=SC2154  # out, err, pass, fail: set by the sourcing test
# cli_lib.sh — the checks shared by the command-line tests (test_cli.sh, test_files.sh,
# test_model_config.sh), sourced by them. The caller sets $out and $err (files for a command's
# stdout and stderr) and the counters pass=0 fail=0, and sets CLI_LIMIT (seconds) to run every
# expect'ed command under `timeout` (then it must be a program, not a shell function): a command
# still running after CLI_LIMIT seconds is reported as blocked instead of hanging the test.

# expect CODE DESCRIPTION -- command...; then optional checks on $out / $err
expect() {
    local want=$1 what=$2 got
    shift 3
    if [ -n "${CLI_LIMIT:-}" ]; then
        timeout -k 5 "$CLI_LIMIT" "$@" >"$out" 2>"$err" </dev/null
    else
        "$@" >"$out" 2>"$err"
    fi
    got=$?
    if [ "$got" -eq "$want" ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        if [ -n "${CLI_LIMIT:-}" ] && { [ "$got" -eq 124 ] || [ "$got" -eq 137 ]; }; then
            echo "FAIL: $what: no answer within ${CLI_LIMIT}s (blocked?)"
        else
            echo "FAIL: $what: exit $got, expected $want"
        fi
        sed 's/^/  stderr: /' "$err" | tail -5
    fi
}

# has FILE PATTERN DESCRIPTION: the extended regex matches a line of FILE
has() {
    if grep -qE -- "$2" "$1"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $3: no match for '$2' in:"
        head -5 "$1" | sed 's/^/  /'
    fi
}

# hasnt FILE PATTERN DESCRIPTION: the pattern must not match
hasnt() {
    if grep -qE -- "$2" "$1"; then
        fail=$((fail + 1))
        echo "FAIL: $3: unexpected match for '$2' in:"
        grep -E -- "$2" "$1" | head -3 | sed 's/^/  /'
    else
        pass=$((pass + 1))
    fi
}

# check DESCRIPTION -- command...: passes when the command succeeds
check() {
    local what=$1
    shift 2
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what"; fi
}

# one_line FILE DESCRIPTION: the error is one line
one_line() {
    local n
    n=$(wc -l <"$1")
    if [ "$n" -eq 1 ]; then pass=$((pass + 1)); else
        fail=$((fail + 1)); echo "FAIL: $2: $n lines on stderr"; sed 's/^/  /' "$1" | head -5; fi
}
