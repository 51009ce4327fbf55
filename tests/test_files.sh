#!/usr/bin/env bash
# test_files.sh WANRUN DATA_DIR — the files wanrun reads, from the command line, when they are
# not what they should be: a FIFO, a device or an oversized file as --config, as a model's
# JSON config and as a weights shard (a clear error, exit 3, at once: before, a FIFO blocked
# forever and /dev/zero was read until memory ran out); safetensors headers that are not UTF-8
# (refused) and names that need escaping (inspect --json stays valid JSON); and a transformer
# file truncated while a generation uses it, at level 0 and with --disk-offload at level 3
# (exit 3 naming the file, an existing --out untouched; before, SIGBUS).
#
# Every wanrun call runs under `timeout`: a hang fails the check instead of the whole test.
set -uo pipefail
WANRUN=$1
DATA=$2
pass=0
fail=0
work=$(mktemp -d "${TMPDIR:-/tmp}/wr-files.XXXXXX")
out="$work/stdout"
err="$work/stderr"
trap 'rm -rf "$work"' EXIT
CLI_LIMIT=30 # seconds for one call that must fail at once (a FIFO would block forever)
# shellcheck source=tests/cli_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"

ok() { # CONDITION-EXIT-STATUS DESCRIPTION
    if [ "$1" -eq 0 ]; then pass=$((pass + 1)); else
        fail=$((fail + 1))
        echo "FAIL: $2"
    fi
}

gen=(--prompt "a fox" --size 32x32 --frames 1 --steps 2 --out "$work/o.y4m")

# ---- --config FILE ----
mkfifo "$work/cfg.fifo"
expect 3 "--config a FIFO" -- "$WANRUN" --config "$work/cfg.fifo" "${gen[@]}"
has "$err" "cfg.fifo: not a regular file \(a FIFO\)" "--config FIFO refused by name"
expect 3 "--config /dev/zero" -- "$WANRUN" --config /dev/zero "${gen[@]}"
has "$err" "ERR_IO: --config: /dev/zero: not a regular file \(a character device\)" \
    "--config /dev/zero refused by name"
truncate -s 17M "$work/big.json" # sparse: nothing is written
expect 3 "--config over 16 MiB" -- "$WANRUN" --config "$work/big.json" "${gen[@]}"
has "$err" "big.json: 17825792 bytes, larger than the 16 MiB limit for a config" \
    "--config size cap named"
expect 3 "--config a directory" -- "$WANRUN" --config "$work" "${gen[@]}"
has "$err" "not a regular file \(a directory\)" "--config directory refused"

# ---- a model directory's files ----
model="$work/m"
cp -rL "$DATA/wan-tiny" "$model"
mv "$model/model_index.json" "$work/model_index.json.keep"
mkfifo "$model/model_index.json"
expect 3 "model_index.json a FIFO (generate)" -- "$WANRUN" --model "$model" "${gen[@]}"
has "$err" "m/model_index.json: not a regular file \(a FIFO\)" "FIFO model_index.json named"
expect 3 "model_index.json a FIFO (plan)" -- "$WANRUN" plan --model "$model"
expect 3 "model_index.json a FIFO (inspect)" -- "$WANRUN" inspect "$model"
rm "$model/model_index.json"
mv "$work/model_index.json.keep" "$model/model_index.json"

mv "$model/vae/config.json" "$work/vae.json.keep"
mkfifo "$model/vae/config.json"
expect 3 "a component config a FIFO" -- "$WANRUN" --model "$model" "${gen[@]}"
has "$err" "vae/config.json: not a regular file \(a FIFO\)" "FIFO component config named"
rm "$model/vae/config.json"
ln -s /dev/zero "$model/vae/config.json"
expect 3 "a component config -> /dev/zero" -- "$WANRUN" plan --model "$model"
has "$err" "vae/config.json: not a regular file \(a character device\)" "/dev/zero config named"
rm "$model/vae/config.json"
truncate -s 20M "$model/vae/config.json"
expect 3 "a component config over 16 MiB" -- "$WANRUN" plan --model "$model"
has "$err" "vae/config.json: .*larger than the 16 MiB limit for a config" "config cap named"
rm "$model/vae/config.json"
mv "$work/vae.json.keep" "$model/vae/config.json"

shard="$model/transformer/diffusion_pytorch_model.safetensors"
mv "$shard" "$work/shard.keep"
mkfifo "$shard"
expect 3 "a weights file a FIFO (generate)" -- "$WANRUN" --model "$model" "${gen[@]}"
has "$err" "diffusion_pytorch_model.safetensors: not a regular file \(a FIFO\)" "FIFO shard named"
expect 3 "a weights file a FIFO (inspect)" -- "$WANRUN" inspect "$shard"
rm "$shard"
mv "$work/shard.keep" "$shard"
# a sharded index whose shard is a FIFO, and an index that is one
idx="$work/idx"
mkdir "$idx"
cp "$DATA/good/sharded/"* "$idx/"
rm "$idx/model-00002-of-00002.safetensors"
mkfifo "$idx/model-00002-of-00002.safetensors"
expect 3 "an index's shard a FIFO" -- "$WANRUN" inspect "$idx"
has "$err" "model-00002-of-00002.safetensors: not a regular file \(a FIFO\)" "FIFO shard named"
rm "$idx/"*
mkfifo "$idx/model.safetensors.index.json"
expect 3 "an index a FIFO" -- "$WANRUN" inspect "$idx/model.safetensors.index.json"
has "$err" "model.safetensors.index.json: not a regular file \(a FIFO\)" "FIFO index named"

# ---- safetensors names: UTF-8 only, escaped in --json ----
expect 3 "a tensor name that is not UTF-8" -- "$WANRUN" inspect --json \
    "$DATA/bad/name_byte_ff.safetensors"
has "$err" "ERR_FORMAT: .*name_byte_ff.safetensors: tensor name 'w\\\\xFF' .*not UTF-8" \
    "non-UTF-8 name refused, file and name in the message"
[ ! -s "$out" ]
ok $? "no JSON printed for a refused file"
expect 3 "a duplicate dtype key" -- "$WANRUN" inspect "$DATA/bad/entry_type_twice.safetensors"
has "$err" "entry_type_twice.safetensors: tensor 'a': duplicate key \"dtype\"" \
    "duplicate key refused, file and tensor named"

# A file whose names and metadata need every kind of JSON escape: a quote, a backslash, a
# control character (\u0001), a two-byte and a four-byte character (a surrogate pair).
# Bytes: the u64 length, the header (padded to 8 with spaces), one U8 byte of data.
export LC_ALL=C
hdr='{"__metadata__":{"k\u0001":"v\"\\"},"q\"b\\s\u00e9\ud83d\ude00\u0001":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
while [ $((${#hdr} % 8)) -ne 0 ]; do hdr="$hdr "; done
mkfile() {
    printf "\\x$(printf %02x "${#hdr}")\\0\\0\\0\\0\\0\\0\\0" >"$1"
    printf '%s' "$hdr" >>"$1"
    printf '\x07' >>"$1"
}
mkfile "$work/names.safetensors"
expect 0 "inspect --json of names that need escapes" -- "$WANRUN" inspect --json \
    "$work/names.safetensors"
iconv -f UTF-8 -t UTF-8 "$out" >/dev/null 2>&1
ok $? "inspect --json output is UTF-8"
has "$out" '"name":[[:space:]]*"q\\"b\\\\s' "a quote and a backslash escaped"
has "$out" '\\u0001' "a control character escaped"
if command -v jq >/dev/null; then
    jq -e . "$out" >/dev/null 2>&1
    ok $? "inspect --json output parses (jq)"
    got=$(jq -j '.components[0].tensors[0].name' "$out" | od -An -tx1 | tr -d ' \n')
    want=$(printf 'q"b\\s\xc3\xa9\xf0\x9f\x98\x80\x01' | od -An -tx1 | tr -d ' \n')
    [ "$got" = "$want" ]
    ok $? "the name round-trips through inspect --json (got $got, want $want)"
fi
# a path that is not UTF-8 (Linux allows it; JSON does not): U+FFFD in the output
bad_dir="$work/dir"$'\xff'
mkdir "$bad_dir"
mkfile "$bad_dir/n.safetensors"
expect 0 "inspect --json of a path that is not UTF-8" -- "$WANRUN" inspect --json \
    "$bad_dir/n.safetensors"
iconv -f UTF-8 -t UTF-8 "$out" >/dev/null 2>&1
ok $? "inspect --json output is UTF-8 for a non-UTF-8 path"
grep -q $'dir\xef\xbf\xbd/n.safetensors' "$out"
ok $? "the byte that is not UTF-8 shows as U+FFFD"
unset LC_ALL

# ---- a model file truncated while a generation uses it ----
# The run is started with many steps; once it reports its first step (the weights are open and
# in use), the transformer's file is cut to 1000 bytes. The next step reads the mapping past
# the new end (patch_embedding is read in place even with --disk-offload; at level 3 the
# streamed blocks are pread): the run must end with exit 3 naming the file, and leave an
# existing --out as it was. (The step count only makes sure the run is still going when the
# file is cut; it stops at the step after.)
truncated_run() { # DESCRIPTION extra-options...
    local what=$1
    shift
    local m="$work/tr"
    rm -rf "$m"
    cp -rL "$DATA/wan-tiny" "$m"
    local st="$m/transformer/diffusion_pytorch_model.safetensors"
    printf 'an earlier video\n' >"$work/keep.y4m"
    # emptied here, not only by the background run's redirection, which may happen after the
    # loop below first reads it: the previous run's "step 1/1000" would cut the file before
    # this run opened it
    : >"$err"
    timeout -k 5 300 "$WANRUN" --model "$m" --prompt "a fox" --size 32x32 --frames 1 \
        --steps 1000 --out "$work/keep.y4m" "$@" >"$out" 2>"$err" </dev/null &
    local pid=$! i
    for ((i = 0; i < 1200; i++)); do # at most 60 s for loading
        grep -q "step 1/1000" "$err" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid"
        fail=$((fail + 1))
        echo "FAIL: $what: the run ended (exit $?) before the file could be cut"
        sed 's/^/  stderr: /' "$err" | tail -5
        return
    fi
    truncate -s 1000 "$st"
    wait "$pid"
    local rc=$?
    if [ "$rc" -eq 3 ]; then pass=$((pass + 1)); else
        fail=$((fail + 1))
        echo "FAIL: $what: exit $rc, expected 3 (135 is SIGBUS, 124 a hang)"
        sed 's/^/  stderr: /' "$err" | tail -5
    fi
    has "$err" "ERR_IO: .*tr/transformer/diffusion_pytorch_model.safetensors: the file changed size while in use" \
        "$what: the message names the file"
    [ "$(cat "$work/keep.y4m")" = "an earlier video" ]
    ok $? "$what: the existing --out is untouched"
    ! ls "$work"/keep.y4m.tmp.* >/dev/null 2>&1
    ok $? "$what: no temporary output left"
}
truncated_run "truncated during the run (level 0)"
truncated_run "truncated during the run (--disk-offload, level 3)" --disk-offload --low-mem-level 3

echo "test_files.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
