#!/usr/bin/env bash
# test_cli.sh WANRUN DATA_DIR — the command line end to end: help, version, exit codes,
# error messages naming the file, inspect in text and JSON, and under mpiexec -n 2.
set -uo pipefail
WANRUN=$1
DATA=$2
pass=0
fail=0
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

# expect CODE DESCRIPTION -- command...; then optional checks on $out / $err
expect() {
    local want=$1 what=$2
    shift 3
    "$@" >"$out" 2>"$err"
    local got=$?
    if [ "$got" -eq "$want" ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $what: exit $got, expected $want"
        sed 's/^/  stderr: /' "$err" | head -5
    fi
}

# has FILE PATTERN DESCRIPTION
has() {
    if grep -qE -- "$2" "$1"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $3: no match for '$2' in:"
        head -5 "$1" | sed 's/^/  /'
    fi
}

expect 0 "--help" -- "$WANRUN" --help
has "$out" "inspect PATH" "--help lists inspect"
has "$out" "Exit codes" "--help lists the exit codes"
expect 0 "--version" -- "$WANRUN" --version
has "$out" "^wanrun [0-9]+\.[0-9]+\.[0-9]+" "--version prints the version"
has "$out" "^cuda: " "--version reports CUDA"

expect 2 "no command" -- "$WANRUN"
has "$err" "no command given" "no command message"
expect 2 "unknown option" -- "$WANRUN" --frobnicate
has "$err" "unknown option '--frobnicate'" "unknown option is named"
expect 2 "unknown command" -- "$WANRUN" paint
has "$err" "unknown command 'paint'" "unknown command is named"
expect 2 "bad log level" -- "$WANRUN" --log-level loud inspect x
expect 2 "inspect without a path" -- "$WANRUN" inspect
expect 2 "inspect with a bad option" -- "$WANRUN" inspect --bogus "$DATA/good/all_dtypes.safetensors"

expect 0 "inspect a file" -- "$WANRUN" inspect "$DATA/good/all_dtypes.safetensors"
has "$out" "total: [0-9]+ tensors" "inspect prints totals"
has "$out" "BF16" "inspect lists dtypes"
expect 0 "inspect --json" -- "$WANRUN" inspect --json "$DATA/good/all_dtypes.safetensors"
has "$out" '"total_tensors":' "json totals"
has "$out" '"shape":' "json shapes"
expect 0 "inspect --summary" -- "$WANRUN" inspect --summary "$DATA/good/sharded"
has "$out" "\(2 files\)" "sharded set has 2 files"

expect 3 "inspect a malformed file" -- "$WANRUN" inspect "$DATA/bad/spans_cross.safetensors"
has "$err" "ERR_FORMAT: .*spans_cross.safetensors" "error names status and file"
has "$err" "^\[0/1\] error: " "errors carry the rank prefix"
expect 3 "inspect a missing path" -- "$WANRUN" inspect "$DATA/no/such.safetensors"
has "$err" "no/such.safetensors" "missing path is named"
expect 3 "inspect a missing shard" -- "$WANRUN" inspect "$DATA/bad/index_missing_shard"
has "$err" "ERR_NOT_FOUND" "missing shard status"

# a model directory: configs summarised, each component's weights totalled
model=$(mktemp -d)
trap 'rm -f "$out" "$err"; rm -rf "$model"' EXIT
mkdir -p "$model/transformer" "$model/vae"
cat >"$model/model_index.json" <<'JSON'
{"_class_name": "WanPipeline", "transformer": ["diffusers", "WanTransformer3DModel"],
 "vae": ["diffusers", "AutoencoderKLWan"]}
JSON
cat >"$model/transformer/config.json" <<'JSON'
{"num_attention_heads": 2, "attention_head_dim": 16, "ffn_dim": 64, "num_layers": 2,
 "text_dim": 32, "freq_dim": 16, "in_channels": 16, "out_channels": 16}
JSON
echo '{"base_dim": 8, "z_dim": 16}' >"$model/vae/config.json"
cp "$DATA"/good/sharded/* "$model/transformer/"
cp "$DATA/good/all_dtypes.safetensors" "$model/vae/diffusion_pytorch_model.safetensors"
expect 0 "inspect a model directory" -- "$WANRUN" inspect --summary "$model"
has "$out" "^transformer: 2 layers, 2 heads x 16 \(D=32\)" "transformer config summary"
has "$out" "^vae: base_dim 8, z_dim 16" "vae config summary"
has "$out" "^transformer: .*\(2 files\)" "transformer weights"
expect 0 "inspect a model directory as JSON" -- "$WANRUN" inspect --json "$model"
has "$out" '"component":[[:space:]]*"vae"' "json lists the vae"
echo '{"base_dim": 8, "z_dim": 4, "latents_mean": [0,0,0,0], "latents_std": [1,1,1,1]}' \
    >"$model/vae/config.json"
expect 3 "inspect an inconsistent model directory" -- "$WANRUN" inspect "$model"
has "$err" "ERR_CONFIG: .*in_channels \(16\) != vae z_dim \(4\)" "disagreeing components named"

# WR_LOG_LEVEL=error hides nothing that is an error; --verbose shows where it failed
WR_LOG_LEVEL=error expect 3 "quiet error" -- "$WANRUN" inspect "$DATA/bad/empty.safetensors"
has "$err" "too small" "error still printed at level error"
expect 3 "verbose error" -- "$WANRUN" --verbose inspect "$DATA/bad/empty.safetensors"
has "$err" "debug: failed at .*safetensors.c:[0-9]+" "--verbose shows the source position"

# two ranks: both validate, rank 0 prints once, both exit with the same code
if command -v mpiexec >/dev/null; then
    expect 0 "inspect under mpiexec -n 2" -- mpiexec -n 2 --oversubscribe "$WANRUN" inspect \
        "$DATA/good/all_dtypes.safetensors"
    n=$(grep -c "total:" "$out")
    if [ "$n" -eq 1 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $n total lines under -n 2"; fi
    expect 3 "malformed under mpiexec -n 2" -- mpiexec -n 2 --oversubscribe "$WANRUN" inspect \
        "$DATA/bad/name_twice.safetensors"
    has "$err" "\[1/2\] error: ERR_FORMAT" "rank 1 reports the error too"
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
