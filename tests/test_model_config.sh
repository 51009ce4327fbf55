#!/usr/bin/env bash
# test_model_config.sh WANRUN DATA_DIR — bad model-directory configs through the command line
# (the whole corpus runs in C: tests/test_model_config.c, tests/data/bad_model/MUTATIONS.tsv):
# each one a one-line error with the documented exit code (3 input/config, 6 unsupported), the
# file and the field named, and an existing --out left as it was. Plus a run that diffusers'
# cross_attn_norm false makes possible. Runs in a few seconds: the failures come before the work.
set -uo pipefail
WANRUN=$1
DATA=$2
pass=0
fail=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out="$work/stdout"
err="$work/stderr"
# shellcheck source=tests/cli_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"

# model NAME [COMPONENT=DIR ...]: a copy of wan-tiny in $work/NAME (JSON files copied, so that
# sed can change them, weights symlinked); COMPONENT=DIR takes that component's weights and
# config from tests/data/DIR
model() {
    local m="$work/$1" c src
    shift
    mkdir -p "$m"
    cp "$DATA/wan-tiny/model_index.json" "$m/"
    for c in transformer text_encoder vae scheduler tokenizer; do
        src="$DATA/wan-tiny/$c"
        for o in "$@"; do [ "${o%%=*}" = "$c" ] && src="$DATA/${o#*=}"; done
        mkdir "$m/$c"
        for f in "$src"/*; do
            case "$f" in
            *.json) cp "$f" "$m/$c/" ;;
            *) ln -s "$(readlink -f "$f")" "$m/$c/" ;;
            esac
        done
    done
    echo "$m"
}

gen() { # gen MODEL OUT: a small generation
    "$WANRUN" --model "$1" --prompt "a red fox" --size 32x32 --frames 5 --steps 2 --threads 1 \
        --out "$2"
}

keep="$work/keep.y4m"
echo "an existing output" >"$keep"
unchanged() { # unchanged DESCRIPTION: --out is as it was, and no temporary is left beside it
    if [ "$(cat "$keep")" = "an existing output" ] && ! ls "$work" | grep -q '\.tmp\.'; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $1: the existing --out was touched"
    fi
}

# plan without a transformer / a VAE in model_index.json: was SIGFPE / UBSan index -1
m=$(model no_transformer)
sed -i '/"transformer": \[/,/\]/d' "$m/model_index.json"
expect 3 "plan without a transformer" -- "$WANRUN" plan --model "$m"
has "$err" "ERR_CONFIG: plan: no usable transformer config" "the missing transformer named"
m=$(model no_vae)
sed -i '/"vae": \[/,/\]/d' "$m/model_index.json" # the last entry: drop the comma before it
tac "$m/model_index.json" | sed '0,/\],$/s//]/' | tac >"$m/i" && mv "$m/i" "$m/model_index.json"
expect 3 "plan without a vae" -- "$WANRUN" plan --model "$m"
has "$err" "no usable vae config" "the missing vae named"
if [ ! -s "$out" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: plan printed a table before its error"; fi

# a VAE scale factor that does not match its layers: was an abort (134) while decoding
m=$(model sfs16)
sed -i 's/"scale_factor_spatial": 8/"scale_factor_spatial": 16/' "$m/vae/config.json"
expect 3 "generate with scale_factor_spatial 16" -- gen "$m" "$keep"
has "$err" "vae/config.json: field 'scale_factor_spatial' is 16" "file, field and value named"
unchanged "scale_factor_spatial 16"

# Wan2.2 two experts: transformer_2 listed, its folder missing
m=$(model two_experts)
sed -i 's/"transformer_2": \[/"transformer_2": ["diffusers", "WanTransformer3DModel"], "x": [/' \
    "$m/model_index.json"
sed -i 's/"boundary_ratio": null/"boundary_ratio": 0.875/' "$m/model_index.json"
expect 3 "generate with transformer_2 missing" -- gen "$m" "$keep"
has "$err" "ERR_NOT_FOUND: .*/transformer_2: component folder listed in model_index.json is missing" \
    "the missing expert named"
unchanged "transformer_2 missing"
# a boundary without the low-noise expert: diffusers would call None below it
m=$(model boundary_alone)
sed -i 's/"boundary_ratio": null/"boundary_ratio": 0.875/' "$m/model_index.json"
expect 3 "generate with boundary_ratio and no transformer_2" -- gen "$m" "$keep"
has "$err" "boundary_ratio is 0.875 but there is no transformer_2" "the lone boundary named"
unchanged "boundary_ratio alone"
m=$(model boundary_range)
sed -i 's/"boundary_ratio": null/"boundary_ratio": 1.5/' "$m/model_index.json"
expect 3 "generate with boundary_ratio 1.5" -- gen "$m" "$keep"
has "$err" "field 'boundary_ratio' is 1.5; it must be null or a number in \[0, 1\]" \
    "the boundary's range named"
unchanged "boundary_ratio 1.5"
# two experts whose shapes differ (tiny3's text_dim 40 against the encoder's 24)
m=$(model experts_differ)
cp -r "$DATA/dit/tiny3/transformer" "$m/transformer_2"
sed -i 's/"transformer_2": \[/"transformer_2": ["diffusers", "WanTransformer3DModel"], "x": [/' \
    "$m/model_index.json"
sed -i 's/"boundary_ratio": null/"boundary_ratio": 0.875/' "$m/model_index.json"
expect 3 "generate with mismatched experts" -- gen "$m" "$keep"
has "$err" "transformer_2/config.json .* does not match transformer/config.json" \
    "the mismatched experts named"
unchanged "mismatched experts"

# a diverging scheduler config: was exit 2 "the model diverged?" after the whole run
m=$(model shift)
sed -i 's/"flow_shift": 3.0/"flow_shift": 1e300/' "$m/scheduler/scheduler_config.json"
expect 3 "generate with flow_shift 1e300" -- gen "$m" "$keep"
has "$err" "scheduler_config.json: field 'flow_shift' is 1e\+300" "flow_shift named"
unchanged "flow_shift 1e300"

# a setting diffusers computes and wanrun does not: unsupported (6), not silently ignored
m=$(model epsilon)
sed -i 's/"flow_prediction"/"epsilon"/' "$m/scheduler/scheduler_config.json"
expect 6 "generate with prediction_type epsilon" -- gen "$m" "$keep"
has "$err" "field 'prediction_type' is \"epsilon\"" "prediction_type named"
unchanged "prediction_type epsilon"

# num_layers 1e9: was 20-40 s of looping; a CTest timeout would catch a hang
m=$(model layers)
sed -i 's/"num_layers": 2/"num_layers": 1000000000/' "$m/transformer/config.json"
expect 3 "generate with num_layers 1e9" -- gen "$m" "$keep"
has "$err" "transformer/config.json: field 'num_layers' is 1000000000" "num_layers named"
unchanged "num_layers 1e9"

# latents_std 0: was a NaN video reported as exit 2
m=$(model std0)
sed -i 's/^\( *\)1\.9996,/\10.0,/' "$m/vae/config.json" # latents_std[0] of tests/data/vae/tiny_a
expect 3 "generate with a latents_std of 0" -- gen "$m" "$keep"
has "$err" "vae/config.json: field 'latents_std'\[0\] is 0" "latents_std named"
unchanged "latents_std 0"

# encode with a negative layer_norm_epsilon: was NaN embeddings and exit 0
m=$(model t5eps)
sed -i 's/"layer_norm_epsilon": 1e-06/"layer_norm_epsilon": -1/' "$m/text_encoder/config.json"
expect 3 "encode with layer_norm_epsilon -1" -- "$WANRUN" encode --model "$m" --prompt a \
    --out "$work/e.safetensors"
has "$err" "text_encoder/config.json: field 'layer_norm_epsilon' is -1" "epsilon named"
[ ! -e "$work/e.safetensors" ] && pass=$((pass + 1)) || {
    fail=$((fail + 1))
    echo "FAIL: encode wrote a file"
}

# inspect refuses what it cannot describe the same way (qk_norm null)
m=$(model qk)
sed -i 's/"qk_norm": "rms_norm_across_heads"/"qk_norm": null/' "$m/transformer/config.json"
expect 6 "inspect with qk_norm null" -- "$WANRUN" inspect "$m"
has "$err" "transformer/config.json: field 'qk_norm' is null" "qk_norm named"

# cross_attn_norm false (tests/data/dit/nocross): a whole run, as diffusers loads it
m=$(model nocross transformer=dit/nocross/transformer)
expect 0 "generate with a cross_attn_norm false transformer" -- gen "$m" "$work/nocross.y4m"
[ -s "$work/nocross.y4m" ] && pass=$((pass + 1)) || {
    fail=$((fail + 1))
    echo "FAIL: no video from the cross_attn_norm false model"
}

echo "model_config cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
