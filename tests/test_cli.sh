#!/usr/bin/env bash
# test_cli.sh WANRUN DATA_DIR ST_NMSE — the command line end to end: help, version, exit codes,
# error messages naming the file, inspect in text and JSON, and under mpiexec -n 2. ST_NMSE
# (tests/st_nmse.c) compares the latents of context-parallel runs with one rank's to the bound
# of tests/harness.h (WR_TEST_CP_NMSE): a BLAS kernel may change a row's bits with the number of
# rows, so those runs are not bit for bit those of one rank.
set -uo pipefail
WANRUN=$1
DATA=$2
ST_NMSE=$3
CP_NMSE=1e-9 # = WR_TEST_CP_NMSE (tests/harness.h), where the measurement is recorded
pass=0
fail=0
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
# shellcheck source=tests/cli_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"

expect 0 "--help" -- "$WANRUN" --help
has "$out" "inspect PATH" "--help lists inspect"
has "$out" "Exit codes" "--help lists the exit codes"
expect 0 "--version" -- "$WANRUN" --version
has "$out" "^wanrun [0-9]+\.[0-9]+\.[0-9]+" "--version prints the version"
has "$out" "^cuda: " "--version reports CUDA"
# --backend cuda reaches the library: a build without CUDA fails with "unsupported" (6), a CUDA
# build without a usable GPU with "no device" (5); with a GPU the generation runs (0)
cuda_code=6
if grep -q "CUDA=1" "$out"; then
    if grep -q "^cuda: unavailable" "$out"; then cuda_code=5; else cuda_code=0; fi
fi

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

# encode: the tiny tokenizer and text encoder of the goldens, as a model directory
enc=$(mktemp -d)
trap 'rm -f "$out" "$err"; rm -rf "$model" "$enc"' EXIT
mkdir -p "$enc/m"
ln -s "$DATA/tokenizer" "$enc/m/tokenizer"
ln -s "$DATA/t5/tiny_a/text_encoder" "$enc/m/text_encoder"
expect 0 "encode" -- "$WANRUN" encode --model "$enc/m" --prompt "A cat walks on the grass, realistic" \
    --out "$enc/e.safetensors" --threads 1
has "$err" "encode: 21 tokens" "encode reports the token count"
expect 0 "inspect the encoding" -- "$WANRUN" inspect "$enc/e.safetensors"
has "$out" "prompt_embeds +F32 +\[512, 32\]" "prompt_embeds [512, D]"
has "$out" "attention_mask +U8 +\[512\]" "attention mask"
expect 2 "encode without --prompt" -- "$WANRUN" encode --model "$enc/m" --out "$enc/x.safetensors"
has "$err" "--prompt TEXT is required" "missing flag named"
expect 2 "encode with a bad --threads" -- "$WANRUN" encode --model "$enc/m" --prompt a \
    --out "$enc/x.safetensors" --threads many
has "$err" "--threads" "bad threads named"
echo "keep me" >"$enc/keep.safetensors"
expect 3 "encode with a model without a tokenizer" -- "$WANRUN" encode --model "$DATA/t5/tiny_a" \
    --prompt a --out "$enc/keep.safetensors"
has "$err" "tiny_a/tokenizer/spiece.model" "missing tokenizer named"
if [ "$(cat "$enc/keep.safetensors")" = "keep me" ]; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: a failed encode touched the existing --out file"; fi
expect 2 "encode invalid UTF-8" -- "$WANRUN" encode --model "$enc/m" --prompt $'bad \xff byte' \
    --out "$enc/x.safetensors"
has "$err" "UTF-8" "invalid UTF-8 reported"
if [ -e "$enc/x.safetensors" ]; then fail=$((fail + 1)); echo "FAIL: failed encodes left a file"; else
    pass=$((pass + 1)); fi

# generate: the bundled tiny model end to end, each output format
gen=$(mktemp -d)
trap 'rm -f "$out" "$err"; rm -rf "$model" "$enc" "$gen"' EXIT
tiny="$DATA/wan-tiny"
expect 0 "generate an mp4" -- "$WANRUN" --model "$tiny" --prompt "a red fox" --size 32x32 \
    --frames 5 --steps 3 --out "$gen/a.mp4" --save-latents "$gen/lat.safetensors" --threads 1
has "$err" "step 3/3 " "a progress line per step"
has "$err" "wrote .*a.mp4 \(5 frames, 32x32, 16 fps\)" "the video is reported"
if [ -s "$gen/a.mp4" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: no mp4"; fi
expect 0 "the saved latents" -- "$WANRUN" inspect "$gen/lat.safetensors"
has "$out" "latents +F32 +\[16, 2, 4, 4\]" "latents [16, T, H/8, W/8]"
# --compute-dtype bf16: the DiT's GEMM / attention activations rounded to bf16 (a GPU's rounding
# points): other bits than f32, close to them (measured 4.41e-5 NMSE here, and 4.42e-5 at
# 256x256, 3 steps; diffusers run in bf16 is 3e-5..5e-5 from its f32 on the tiny DiTs)
expect 0 "--compute-dtype bf16" -- "$WANRUN" --model "$tiny" --prompt "a red fox" --size 32x32 \
    --frames 5 --steps 3 --out "$gen/a16.y4m" --save-latents "$gen/lat16.safetensors" --threads 1 \
    --compute-dtype bf16
if ! cmp -s "$gen/lat.safetensors" "$gen/lat16.safetensors" &&
    "$ST_NMSE" "$gen/lat16.safetensors" "$gen/lat.safetensors" latents 1e-3 >/dev/null; then
    pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: bf16 latents not within 1e-3 of f32 (or equal)"; fi
# --compute-dtype auto is f32 on the CPU backend: the same bits as the default
expect 0 "--compute-dtype auto" -- "$WANRUN" --model "$tiny" --prompt "a red fox" --size 32x32 \
    --frames 5 --steps 3 --out "$gen/aa.y4m" --save-latents "$gen/lat-auto.safetensors" \
    --threads 1 --compute-dtype auto
if cmp -s "$gen/lat.safetensors" "$gen/lat-auto.safetensors"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: --compute-dtype auto on the CPU differs from f32"; fi
expect 2 "a bad --compute-dtype" -- "$WANRUN" --prompt p --out "$gen/x16.y4m" --compute-dtype fp16
has "$err" "--compute-dtype must be auto, f32 or bf16, got 'fp16'" "--compute-dtype names the value"
cat >"$gen/cfg.json" <<'JSON'
{"prompt": "from the config", "size": "16x16", "frames": 1, "steps": 50, "scheduler": "euler"}
JSON
expect 0 "generate y4m from --config, flags override" -- "$WANRUN" --config "$gen/cfg.json" \
    --steps 2 --out "$gen/b.y4m"
has "$err" "1 frames of 16x16, 2 steps" "--config values with the flag's override"
head -c 9 "$gen/b.y4m" >"$out"
has "$out" "YUV4MPEG2" "a y4m file"
expect 0 "generate png frames" -- "$WANRUN" --prompt p --size 16x16 --frames 5 --steps 1 \
    --guidance 1 --out "$gen/frames"
n=$(ls "$gen/frames" | grep -c '^frame_0000[0-4].png$')
if [ "$n" -eq 5 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $n png frames"; fi
expect 2 "generate with a bad size" -- "$WANRUN" --prompt p --size 30x32 --out "$gen/c.mp4"
has "$err" "multiples of 16" "size rule named"
expect 2 "generate with a bad frame count" -- "$WANRUN" --prompt p --frames 6 --out "$gen/c.mp4"
has "$err" "--frames 6: must be 4k\+1.*nearest: 5 or 9" "frame rule named, with the nearest counts"
expect 2 "generate without --out" -- "$WANRUN" --prompt p
expect 2 "generate to an unknown format" -- "$WANRUN" --prompt p --out "$gen/c.avi"
# level 3: the DiT's blocks stream (all of them, or as many resident as --vram-limit allows);
# the video is the same bit for bit; a limit below the activations is a clear exit 4
l3=(--model "$tiny" --prompt "a red fox" --size 80x48 --frames 5 --steps 2 --seed 3 --threads 1)
expect 0 "generate at level 0" -- "$WANRUN" "${l3[@]}" --out "$gen/l0.y4m"
expect 0 "generate at level 3" -- "$WANRUN" "${l3[@]}" --low-mem-level 3 --out "$gen/l3.y4m"
expect 0 "generate at level 3 with a limit" -- "$WANRUN" "${l3[@]}" --low-mem-level 3 \
    --vram-limit 40MiB --out "$gen/l3b.y4m"
if cmp -s "$gen/l0.y4m" "$gen/l3.y4m" && cmp -s "$gen/l0.y4m" "$gen/l3b.y4m"; then
    pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: level 3 output differs from level 0"; fi
expect 4 "level 3 with a limit below the activations" -- "$WANRUN" "${l3[@]}" --low-mem-level 3 \
    --vram-limit 100000 --out "$gen/l3c.y4m"
has "$err" "ERR_OOM_DEVICE: .*--vram-limit" "the limit is named"
expect 3 "--mem-profile into a file" -- "$WANRUN" "${l3[@]}" --mem-profile "$gen/l0.y4m" \
    --out "$gen/l0b.y4m"
has "$err" "--mem-profile" "the flag is named"
# --low-mem-level auto and per-part overrides of the level's preset
expect 0 "auto level" -- "$WANRUN" "${l3[@]}" --low-mem-level auto --vram-limit 100MiB \
    --out "$gen/auto.y4m"
has "$err" "--low-mem-level auto: level 0" "the chosen level is said"
expect 2 "auto level without a limit" -- "$WANRUN" "${l3[@]}" --low-mem-level auto \
    --out "$gen/auto2.y4m"
expect 4 "auto level that nothing fits" -- "$WANRUN" "${l3[@]}" --low-mem-level auto \
    --vram-limit 500000 --out "$gen/auto3.y4m"
has "$err" "no level fits" "the reason is given"
echo '{"dit": "stream", "text-encoder": "stream", "vae": "untiled"}' >"$gen/pol.json"
expect 0 "overrides from --config" -- "$WANRUN" "${l3[@]}" --config "$gen/pol.json" \
    --out "$gen/pol.y4m"
if cmp -s "$gen/l0.y4m" "$gen/pol.y4m" && cmp -s "$gen/l0.y4m" "$gen/auto.y4m"; then
    pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: overrides or auto changed the video"; fi
expect 0 "disk offload at level 3" -- "$WANRUN" "${l3[@]}" --low-mem-level 3 --disk-offload \
    --out "$gen/disk.y4m"
echo '{"disk-offload": true, "low-mem-level": 2}' >"$gen/disk.json"
expect 0 "disk offload from --config" -- "$WANRUN" "${l3[@]}" --config "$gen/disk.json" \
    --out "$gen/disk2.y4m"
if cmp -s "$gen/l0.y4m" "$gen/disk.y4m" && cmp -s "$gen/l0.y4m" "$gen/disk2.y4m"; then
    pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: disk offload changed the video"; fi
expect 0 "FP8 storage at level 3" -- "$WANRUN" "${l3[@]}" --fp8 storage --low-mem-level 3 \
    --out "$gen/fp8.y4m"
if [ -s "$gen/fp8.y4m" ] && ! cmp -s "$gen/l0.y4m" "$gen/fp8.y4m"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: FP8 storage should change the video a little"; fi
expect 6 "FP8 compute on the CPU" -- "$WANRUN" "${l3[@]}" --fp8 compute --out "$gen/fp8b.y4m"
has "$err" "GPU" "why is said"
expect 0 "the text encoder on the CPU" -- "$WANRUN" "${l3[@]}" --te-device cpu --low-mem-level 2 \
    --out "$gen/tecpu.y4m"
if cmp -s "$gen/l0.y4m" "$gen/tecpu.y4m"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: --te-device cpu changed the video"; fi
expect 2 "a bad --te-device" -- "$WANRUN" "${l3[@]}" --te-device gpu0 --out "$gen/tecpu2.y4m"
expect 2 "a bad --fp8" -- "$WANRUN" "${l3[@]}" --fp8 sometimes --out "$gen/fp8c.y4m"
expect 2 "a bad override" -- "$WANRUN" "${l3[@]}" --dit sometimes --out "$gen/pol2.y4m"
has "$err" "resident or stream" "the choices are named"
# the planner
expect 0 "plan a preset" -- "$WANRUN" plan --preset 1.3b
n=$(grep -cE "^[0-3] +[0-9]+ (encode|denoise|decode)" "$out")
if [ "$n" -eq 4 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: plan printed $n level rows"; fi
expect 0 "plan 14B 720p FP8 for 12 GiB" -- "$WANRUN" --plan --preset 14b --size 1280x720 --fp8 \
    --vram 12GiB
has "$out" "recommended for 12.0 GiB: --low-mem-level 3" "a level is recommended"
expect 0 "plan a model directory" -- "$WANRUN" plan --model "$tiny" --size 80x48 --frames 9 --np 2
expect 2 "plan an unknown preset" -- "$WANRUN" plan --preset 7b
expect 2 "plan a layout that does not divide" -- "$WANRUN" plan --preset 1.3b --np 3 --cfg-parallel 2
expect 2 "generate with a bad --cp" -- "$WANRUN" --prompt p --cp zigzag --out "$gen/c.mp4"
has "$err" "auto, ulysses or ring" "the modes are named"
expect 2 "generate with --cfg-parallel 3" -- "$WANRUN" --prompt p --cfg-parallel 3 --out "$gen/c.mp4"
expect 2 "--cp-size without mpirun" -- "$WANRUN" --prompt p --size 16x16 --frames 1 --steps 1 \
    --cp-size 2 --out "$gen/c.mp4"
has "$err" "mpirun" "how to start the ranks is said"
expect 2 "generate with a bad scheduler" -- "$WANRUN" --prompt p --scheduler ddim --out "$gen/c.mp4"
expect 3 "generate from a directory missing a component" -- "$WANRUN" --model "$enc/m" \
    --prompt p --size 16x16 --frames 1 --steps 1 --out "$gen/c.mp4"
has "$err" "model_index.json|transformer" "the missing part is named"
expect $cuda_code "generate on cuda" -- "$WANRUN" --prompt p --backend cuda --out "$gen/c.mp4"
if [ "$cuda_code" -ne 0 ]; then
    has "$err" "error: ERR_(NO_DEVICE|UNSUPPORTED): .*(CUDA|cuda)" "the CUDA failure says why"
fi
expect $cuda_code "generate on CUDA device 0" -- "$WANRUN" --prompt p --backend cuda --device 0 \
    --out "$gen/c.mp4"
expect 2 "--device without --backend cuda" -- "$WANRUN" --prompt p --device 1 --out "$gen/c.mp4"
has "$err" "--device 1.*--backend cuda" "--device names what it needs"
expect 3 "generate with init noise of the wrong shape" -- "$WANRUN" --prompt p --size 16x16 \
    --frames 5 --steps 1 --init-noise "$gen/lat.safetensors" --out "$gen/c.mp4"
if [ -e "$gen/c.mp4" ] || ls -A "$gen" | grep -q 'wanrun-tmp'; then fail=$((fail + 1)); \
    echo "FAIL: a failed generation left output behind"; else pass=$((pass + 1)); fi


# ==== issue 14 §3: --frames not 4k+1: refused, with the nearest valid counts ====
expect 2 "--frames 10" -- "$WANRUN" --prompt p --frames 10 --out "$gen/c.y4m"
has "$err" "--frames 10: must be 4k\+1.*nearest: 9 or 13" "nearest counts for 10"
one_line "$err" "--frames 10 error"
expect 2 "--frames 4000" -- "$WANRUN" --prompt p --frames 4000 --out "$gen/c.y4m"
has "$err" "nearest: 3997 or 4001" "nearest counts for 4000"
expect 2 "plan --frames 10" -- "$WANRUN" plan --preset 1.3b --frames 10
has "$err" "nearest: 9 or 13" "plan gives the nearest counts"
echo '{"prompt": "p", "frames": 12}' >"$gen/f12.json"
expect 2 "--frames 12 from --config" -- "$WANRUN" --config "$gen/f12.json" --out "$gen/c.y4m"
has "$err" "--config .*f12.json: --frames 12: .*nearest: 9 or 13" "config names the file and flag"

# ==== issue 14 §4: without --model, the bundled model's own small defaults ====
expect 0 "the first command of the README" -- "$WANRUN" --prompt "a red fox in the snow" \
    --out "$gen/first.y4m" --threads 1
has "$err" "bundled tiny random model .*noise" "the bundled model is said to be random"
has "$err" "Wan2.1-T2V-1.3B-Diffusers \(model_index.json, transformer/, text_encoder/, tokenizer/, vae/, scheduler/\)" \
    "what a real model directory looks like"
n=$(grep -c "bundled tiny random model" "$err")
if [ "$n" -eq 1 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $n bundled-model lines"; fi
has "$err" "generating 17 frames of 256x256, 10 steps" "the bundled defaults"
head -c 20 "$gen/first.y4m" >"$out"
has "$out" "YUV4MPEG2 W256 H256" "a 256x256 video"
expect 0 "explicit flags win over the bundled defaults" -- "$WANRUN" --prompt p --size 32x32 \
    --steps 2 --out "$gen/first2.y4m" --threads 1
has "$err" "generating 17 frames of 32x32, 2 steps" "flags win, the rest bundled"
echo '{"frames": 5}' >"$gen/f5.json"
expect 0 "--config values win over the bundled defaults" -- "$WANRUN" --config "$gen/f5.json" \
    --prompt p --size 32x32 --steps 1 --out "$gen/first3.y4m" --threads 1
has "$err" "generating 5 frames of 32x32, 1 steps" "config wins, the rest bundled"
# with --model: diffusers' defaults (832x480, 81 frames, 50 steps); a one-element "noise"
# tensor stops the run right after the request is known (no Python: the file by hand)
hdr='{"noise":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
while [ $(( ${#hdr} % 8 )) -ne 0 ]; do hdr="$hdr "; done
printf "\\x$(printf %02x ${#hdr})\\x00\\x00\\x00\\x00\\x00\\x00\\x00%s\\x00\\x00\\x00\\x00" "$hdr" >"$gen/noise1.safetensors"
expect 2 "with --model the defaults are diffusers'" -- "$WANRUN" --model "$tiny" --prompt p \
    --init-noise "$gen/noise1.safetensors" --out "$gen/d.y4m" --threads 1
has "$err" "generating 81 frames of 832x480, 50 steps" "diffusers' defaults with --model"
has "$err" "needs \[16, 21, 60, 104\]" "the request is 832x480x81"
hasnt "$err" "bundled tiny random model" "no bundled-model line with --model"
expect 0 "--help states the bundled defaults" -- "$WANRUN" --help
has "$out" "256x256, 17 frames, 10 steps" "--help: the bundled model's defaults"
has "$out" "832x480" "--help: diffusers' defaults"

# ==== issue 14 §5: nothing written before the run has succeeded ====
bad=$(mktemp -d)
trap 'rm -f "$out" "$err"; rm -rf "$model" "$enc" "$gen" "$bad"' EXIT
cp -rL "$tiny" "$bad/m"
sed -i 's/"eps": 1e-06/"eps": -1/' "$bad/m/transformer/config.json"
echo "old latents" >"$bad/keep.safetensors"
echo "old video" >"$bad/keep.y4m"
expect 3 "a diverging run" -- "$WANRUN" --model "$bad/m" --prompt p --size 32x32 --frames 5 \
    --steps 2 --out "$bad/keep.y4m" --save-latents "$bad/keep.safetensors" --threads 1
has "$err" "ERR_CONFIG: .*(eps|diverged)" "the cause is named"
check "a failed run leaves --save-latents as it was" -- grep -qx "old latents" "$bad/keep.safetensors"
check "a failed run leaves --out as it was" -- grep -qx "old video" "$bad/keep.y4m"
hasnt <(ls -A "$bad") "wanrun-tmp" "no temporary after a failed run"
# --save-latents and --out together, after success only
expect 0 "latents and video written together" -- "$WANRUN" --prompt p --size 32x32 --frames 5 \
    --steps 2 --out "$bad/keep.y4m" --save-latents "$bad/keep.safetensors" --threads 1
check "the latents replaced" -- "$WANRUN" inspect "$bad/keep.safetensors"
expect 2 "--save-latents equal to --out" -- "$WANRUN" --prompt p --out "$bad/x.y4m" \
    --save-latents "$bad/x.y4m"
# every output path is checked before the model loads (no "generating" line, no output).
# (Not /dev/null as the non-regular file: a wanrun that renamed over it, as root, would
# replace the machine's /dev/null.)
mkfifo "$bad/fifo"
for spec in "--save-latents|$bad/no/dir/lat.safetensors|3" "--out|$bad/no/dir/v.y4m|3" \
    "--mem-profile|$bad/no/dir/prof|3" "--out|$bad|2" "--save-latents|$bad/m|2" \
    "--mem-profile|$bad/keep.y4m|3" "--save-latents|$bad/fifo|2"; do
    IFS='|' read -r flag path code <<<"$spec"
    args=(--prompt p --size 32x32 --frames 5 --steps 1 --threads 1)
    [ "$flag" = "--out" ] || args+=(--out "$bad/ok.y4m")
    expect "$code" "$flag $path checked first" -- "$WANRUN" "${args[@]}" "$flag" "$path"
    has "$err" "^\[0/1\] error: ERR_[A-Z_]+: $flag: $path" "$flag and the path named"
    hasnt "$err" "generating|step 1" "$flag $path: refused before the run"
    one_line "$err" "$flag $path error"
done
check "nothing written by the refused runs" -- test ! -e "$bad/ok.y4m"
expect 3 "encode --out into a missing directory" -- "$WANRUN" encode --model "$enc/m" --prompt p \
    --out "$bad/no/dir/e.safetensors"
has "$err" "encode: --out: .*no/dir/e.safetensors" "encode names --out and the path"
hasnt "$err" "encode: [0-9]+ tokens" "encode refused before loading"
# legal names up to 255 bytes are written (the temporary's name is shortened to fit)
n251=$(printf 'n%.0s' $(seq 251))
expect 0 "a 255-byte output name" -- "$WANRUN" --prompt p --size 32x32 --frames 1 --steps 1 \
    --threads 1 --out "$bad/$n251.y4m" --save-latents "$bad/${n251}.sft"
check "the 255-byte video exists" -- test -s "$bad/$n251.y4m"
check "the 253-byte latents exist" -- test -s "$bad/${n251}.sft"
expect 2 "a 256-byte output name" -- "$WANRUN" --prompt p --out "$bad/${n251}x.y4m"
has "$err" "--out: .*256 bytes" "the name length is said"
hasnt <(ls -A "$bad") "wanrun-tmp" "no temporaries left"
# SIGTERM during a generation: the old file stays, no temporary, the signal's exit status
echo "old video" >"$bad/sig.y4m"
"$WANRUN" --prompt p --size 64x64 --frames 17 --steps 1000 --threads 1 --out "$bad/sig.y4m" \
    --save-latents "$bad/sig.sft" >/dev/null 2>"$bad/sig.err" &
pid=$!
for _ in $(seq 600); do grep -q "step 1/" "$bad/sig.err" && break; sleep 0.1; done
kill -TERM "$pid"
wait "$pid"
rc=$?
if [ "$rc" -eq 143 ] && grep -qx "old video" "$bad/sig.y4m" && [ ! -e "$bad/sig.sft" ] &&
    ! ls -A "$bad" | grep -q wanrun-tmp; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: SIGTERM mid-run: exit $rc"; ls -A "$bad" | head; fi

# ==== issue 14 §5: wrong or unclear exit codes ====
# encode with a diverging text encoder config: exit 3, nothing written
cp -rL "$enc/m" "$bad/e"
sed -i 's/"layer_norm_epsilon": 1e-06/"layer_norm_epsilon": -1/' "$bad/e/text_encoder/config.json"
echo "old embeddings" >"$bad/e.safetensors"
expect 3 "encode with a diverging config" -- "$WANRUN" encode --model "$bad/e" --prompt "a cat" \
    --out "$bad/e.safetensors" --threads 1
has "$err" "ERR_CONFIG: .*layer_norm_epsilon" "the likely cause is named"
check "encode left the old file" -- grep -qx "old embeddings" "$bad/e.safetensors"
# the T5 FFN message says what it wants and what it got
cp -rL "$enc/m" "$bad/g"
sed -i 's/"is_gated_act": true/"is_gated_act": false/' "$bad/g/text_encoder/config.json"
expect 6 "a non-gated text encoder FFN" -- "$WANRUN" encode --model "$bad/g" --prompt a \
    --out "$bad/g.safetensors"
has "$err" "ERR_UNSUPPORTED: .*field 'is_gated_act' is false" "the message names the real cause"
# absurd request sizes: usage errors (2) naming the flag, at once (not out of memory)
for spec in "--size|99999x99999" "--size|99999999999999999999x16" "--frames|99999999999999999999" \
    "--size|8192x8192 --frames 4001" "--size|0x16" "--size|16x" "--frames|-3"; do
    IFS='|' read -r flag rest <<<"$spec"
    # shellcheck disable=SC2086
    expect 2 "absurd $flag $rest" -- "$WANRUN" --prompt p --out "$bad/abs.y4m" $flag $rest
    has "$err" "ERR_INVALID_ARG: $flag" "$flag named"
    hasnt "$err" "generating" "$flag $rest refused before loading"
done
expect 2 "--size with a leading space" -- "$WANRUN" --prompt p --out "$bad/abs.y4m" --size " 16x16"
# --seed: 0 .. INT64_MAX, never clamped
expect 2 "--seed above INT64_MAX" -- "$WANRUN" --prompt p --seed 9223372036854775808 --out "$bad/s.y4m"
has "$err" "--seed '9223372036854775808' is out of range" "the seed is refused, not clamped"
expect 2 "--seed -1" -- "$WANRUN" --prompt p --seed -1 --out "$bad/s.y4m"
expect 0 "--seed INT64_MAX" -- "$WANRUN" --prompt p --seed 9223372036854775807 --size 16x16 \
    --frames 1 --steps 1 --out "$bad/s.y4m" --threads 1
has "$err" "seed 9223372036854775807" "the largest seed is kept"
# --vram-limit: at least one byte, the accepted forms said
for v in 0.5 0 -1 1.5XB GiB 1e300 nan; do
    expect 2 "--vram-limit $v" -- "$WANRUN" --prompt p --vram-limit "$v" --out "$bad/v.y4m"
    has "$err" "--vram-limit '$v': .*20GiB.*at least 1 byte" "--vram-limit $v named with the forms"
done
expect 0 "plan --vram 1.5GiB" -- "$WANRUN" plan --preset 1.3b --vram 1.5GiB
has "$out" "for 1.5 GiB" "a fractional size"
# --config: numbers >= 2^63 (were a float-to-int cast: undefined), types, keys, repeats
for cfg in '{"seed": 1e19}' '{"steps": 9.3e18}' '{"frames": -1e300}' '{"threads": 1e300}' \
    '{"steps": 2.5}' '{"guidance": 1e300}' '{"vram-limit": 1e300}' '{"seed": -9.3e18}'; do
    echo "$cfg" >"$bad/n.json"
    expect 2 "--config $cfg" -- "$WANRUN" --config "$bad/n.json" --prompt p --out "$bad/n.y4m"
    key=$(sed 's/{"\([a-z-]*\)".*/\1/' <<<"$cfg")
    has "$err" "--config .*n.json: .*$key" "the key $key is named"
    one_line "$err" "--config $cfg error"
done
for spec in '{"steps": "x"}|--config .*: --steps must be a whole number.*got '"'"'x'"'"'' \
    '{"prompt": 5}|"prompt" must be a string, got a number' \
    '{"steps": true}|"steps" must be a number.*got true' \
    '{"steps": null}|"steps" must be a number.*got null' \
    '{"size": [16, 16]}|"size" must be a string, got an array' \
    '{"disk-offload": 1}|"disk-offload" must be true or false, got a number' \
    '{"steps": 2, "steps": 3}|"steps" is given twice' \
    '{"config": "x.json"}|"config": a config cannot name another' \
    '{"stepz": 2}|unknown option '"'"'stepz'"'"''; do
    cfg=${spec%%|*}
    want=${spec#*|}
    printf '%s\n' "$cfg" >"$bad/t.json"
    expect 2 "--config $cfg" -- "$WANRUN" --config "$bad/t.json" --prompt p --out "$bad/t.y4m"
    has "$err" "$want" "--config $cfg: message"
    one_line "$err" "--config $cfg error"
done 2>/dev/null
# a file that is not a JSON object is a malformed input: exit 3
printf '{"steps": 2' >"$bad/t.json"
expect 3 "--config with a JSON syntax error" -- "$WANRUN" --config "$bad/t.json" --prompt p \
    --out "$bad/t.y4m"
has "$err" "not valid JSON \(near byte [0-9]+\)" "where the JSON breaks"
echo '[1, 2]' >"$bad/t.json"
expect 3 "--config not an object" -- "$WANRUN" --config "$bad/t.json" --prompt p --out "$bad/t.y4m"
has "$err" "t.json: not a JSON object" "not an object"
# every flag: a wrong value is one line naming the flag and the value, exit 2; the same as a
# --config string
for spec in "size|16by16" "frames|five" "steps|0" "steps|1001" "guidance|-1" "guidance|x" \
    "shift|0" "fps|0" "fps|inf" "seed|1.5" "scheduler|ddim" "threads|0" "threads|many" \
    "low-mem-level|4" "low-mem-level|high" "vram-limit|lots" "cfg-parallel|3" "cp-size|0" \
    "cp|zigzag" "text-encoder|gpu" "dit|maybe" "vae|square" "fp8|sometimes" "te-device|gpu0" \
    "backend|tpu" "device|-1" "device|gpu1" "device|1024"; do
    flag=${spec%%|*}
    val=${spec#*|}
    expect 2 "--$flag $val" -- "$WANRUN" --prompt p --out "$bad/f.y4m" "--$flag" "$val"
    has "$err" "ERR_INVALID_ARG: --$flag.*'$val'" "--$flag $val: flag and value named"
    one_line "$err" "--$flag $val error"
    printf '{"%s": "%s"}\n' "$flag" "$val" >"$bad/f.json"
    expect 2 "--config {\"$flag\": \"$val\"}" -- "$WANRUN" --config "$bad/f.json" --prompt p \
        --out "$bad/f.y4m"
    has "$err" "ERR_INVALID_ARG: --config .*f.json: --$flag.*'$val'" "config $flag: file, key, value"
done
# plan's and encode's flags: the same one-line errors naming flag and value
for spec in "--np|0" "--np|x" "--cfg-parallel|3" "--cp|zigzag" "--dtype|f8" "--vram|0.5" \
    "--size|17x16" "--size|16x16x16" "--frames|6"; do
    flag=${spec%%|*}
    val=${spec#*|}
    expect 2 "plan $flag $val" -- "$WANRUN" plan --preset 1.3b "$flag" "$val"
    has "$err" "ERR_INVALID_ARG: .*$flag" "plan $flag named"
    one_line "$err" "plan $flag $val error"
done
expect 2 "encode --threads 0" -- "$WANRUN" encode --model "$enc/m" --prompt a --out "$bad/x.sft" \
    --threads 0
has "$err" "encode: --threads '0' is out of range" "encode --threads named"
# a value with control characters stays one line (escaped)
expect 2 "a value with a newline" -- "$WANRUN" --prompt p --steps $'1\n2' --out "$bad/f.y4m"
one_line "$err" "the newline is escaped"
has "$err" "'1\\\\x0a2'" "escaped as \\x0a"
echo '{"verbose": "loud"}' >"$bad/loud.json"
expect 2 "a switch given a value in --config" -- "$WANRUN" --prompt p --out "$bad/f.y4m" \
    --config "$bad/loud.json"

# two ranks: both validate, rank 0 prints once, both exit with the same code
if command -v mpiexec >/dev/null; then
    expect 0 "inspect under mpiexec -n 2" -- mpiexec -n 2 --oversubscribe "$WANRUN" inspect \
        "$DATA/good/all_dtypes.safetensors"
    n=$(grep -c "total:" "$out")
    if [ "$n" -eq 1 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $n total lines under -n 2"; fi
    expect 3 "malformed under mpiexec -n 2" -- mpiexec -n 2 --oversubscribe "$WANRUN" inspect \
        "$DATA/bad/name_twice.safetensors"
    has "$err" "\[1/2\] error: ERR_FORMAT" "rank 1 reports the error too"
    expect 0 "encode under mpiexec -n 2" -- mpiexec -n 2 --oversubscribe "$WANRUN" encode \
        --model "$enc/m" --prompt "two ranks" --out "$enc/e2.safetensors" --threads 1
    has "$err" "^\[0/2\] .*wrote" "rank 0 writes the encoding"

    # distributed generation (issue #7): CFG-parallel and replicas give the video of one process
    # bit for bit (the same calls on the same shapes); context parallelism its latents within
    # CP_NMSE (each rank's GEMMs have other row counts)
    par=(--model "$tiny" --prompt "a red fox" --size 80x48 --frames 5 --steps 2 --seed 3 --threads 1)
    expect 0 "generate alone" -- "$WANRUN" "${par[@]}" --out "$gen/p1.y4m" \
        --save-latents "$gen/p1.safetensors"
    expect 0 "generate context-parallel on 2 ranks" -- mpiexec -n 2 --oversubscribe "$WANRUN" \
        "${par[@]}" --out "$gen/p2.y4m" --save-latents "$gen/p2.safetensors"
    has "$err" "context-parallel 2 \(ulysses\)" "the layout is reported"
    n=$(grep -c "step 2/2" "$err")
    if [ "$n" -eq 1 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $n progress lines for the last step"; fi
    if "$ST_NMSE" "$gen/p2.safetensors" "$gen/p1.safetensors" latents "$CP_NMSE"; then
        pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: 2 ranks (ulysses) differ from 1"; fi
    expect 0 "generate CFG-parallel on 2 ranks" -- mpiexec -n 2 --oversubscribe "$WANRUN" \
        "${par[@]}" --cfg-parallel 2 --out "$gen/p3.y4m"
    if cmp -s "$gen/p1.y4m" "$gen/p3.y4m"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: CFG-parallel differs from 1 rank"; fi
    expect 0 "generate 2 replicas" -- mpiexec -n 2 --oversubscribe "$WANRUN" "${par[@]}" \
        --cp-size 1 --out "$gen/rep.y4m"
    if cmp -s "$gen/p1.y4m" "$gen/rep.r0.y4m" && [ -s "$gen/rep.r1.y4m" ] && ! cmp -s "$gen/rep.r0.y4m" "$gen/rep.r1.y4m"; then
        pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: replica files (r0 = 1 rank, r1 another seed)"; fi
    expect 2 "a layout that does not divide the ranks" -- mpiexec -n 2 --oversubscribe "$WANRUN" \
        "${par[@]}" --cp-size 3 --out "$gen/p4.y4m"
    has "$err" "\[1/2\] error: .*does not divide" "every rank gives the reason"
    # the memory profile of 2 ranks: a trace and a plot each, rank 0 prints both ranks' peaks
    expect 0 "--mem-profile on 2 ranks" -- mpiexec -n 2 --oversubscribe "$WANRUN" "${par[@]}" \
        --mem-profile "$gen/prof" --out "$gen/p6.y4m"
    if [ -s "$gen/prof/memprof.rank0.json" ] && [ -s "$gen/prof/memprof.rank1.json" ] &&
        grep -q '^<svg' "$gen/prof/memprof.rank1.svg"; then pass=$((pass + 1)); else
        fail=$((fail + 1)); echo "FAIL: profile files missing"; fi
    has "$err" "^\[0/2\]  +1  +[0-9.]+  +step" "rank 0 prints rank 1's peak and its phase"
    # level 3 (DiT blocks streamed through the vram pool) on 2 ranks: the same video
    expect 0 "generate at --low-mem-level 3 on 2 ranks" -- mpiexec -n 2 --oversubscribe "$WANRUN" \
        "${par[@]}" --low-mem-level 3 --out "$gen/p5.y4m" --save-latents "$gen/p5.safetensors"
    # level 3 on 2 ranks against level 0 on 2 ranks: the same calls, bit for bit
    if cmp -s "$gen/p2.safetensors" "$gen/p5.safetensors" &&
        "$ST_NMSE" "$gen/p5.safetensors" "$gen/p1.safetensors" latents "$CP_NMSE"; then
        pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: level 3 on 2 ranks differs"; fi
    # The device contract: the strict CPU mode (device memory the host cannot touch) and the
    # async one (every stream on its own thread) run the same kernels on the same values, so
    # every level, layout and option gives the plain backend's latents and video bit for bit.
    dm_cases=("1|--low-mem-level 0" "1|--low-mem-level 3 --disk-offload"
        "1|--fp8 storage --low-mem-level 2 --te-device cpu" "1|--vae tiled --low-mem-level 1"
        "2|--cp ring" "2|--cp ulysses --low-mem-level 3" "2|--cfg-parallel 2" "3|--cp ring"
        "4|--cp ulysses --cfg-parallel 2")
    k=0
    for c in "${dm_cases[@]}"; do
        n=${c%%|*}
        read -r -a extra <<<"${c#*|}"
        k=$((k + 1))
        for mode in 0 1 async; do
            expect 0 "np $n ${c#*|}, WR_STRICT_DEVICE=$mode" -- env WR_STRICT_DEVICE=$mode \
                mpiexec -n "$n" --oversubscribe "$WANRUN" "${par[@]}" "${extra[@]}" \
                --out "$gen/dm$k.$mode.y4m" --save-latents "$gen/dm$k.$mode.safetensors"
        done
        if cmp -s "$gen/dm$k.0.safetensors" "$gen/dm$k.1.safetensors" &&
            cmp -s "$gen/dm$k.0.safetensors" "$gen/dm$k.async.safetensors" &&
            cmp -s "$gen/dm$k.0.y4m" "$gen/dm$k.1.y4m" && cmp -s "$gen/dm$k.0.y4m" "$gen/dm$k.async.y4m"
        then pass=$((pass + 1)); else fail=$((fail + 1))
            echo "FAIL: np $n ${c#*|}: the strict / async device modes differ from the plain backend"; fi
    done
    # one rank out of memory (its address space capped; not under ASan, whose shadow memory
    # needs far more address space): every rank the same error, exit 4. The strict device
    # modes reserve their device space as address space (twice WR_STRICT_DEVICE_GIB): 1 GiB
    # of it, and the cap raised by those 2 GiB
    if ! ldd "$WANRUN" | grep libasan >/dev/null; then
    expect 4 "one rank out of memory" -- mpiexec -n 2 --oversubscribe bash -c \
        'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then
            if [ -n "${WR_STRICT_DEVICE:-}" ] && [ "$WR_STRICT_DEVICE" != 0 ]; then
                export WR_STRICT_DEVICE_GIB=1; ulimit -v 3597152
            else ulimit -v 1500000; fi
        fi; exec "$0" "$@"' \
        "$WANRUN" --model "$tiny" --prompt p --size 4096x4096 --frames 121 --steps 1 --threads 1 \
        --out "$gen/oom.y4m"
    has "$err" "\[0/2\] error: ERR_OOM_(HOST|DEVICE): rank 1: .*cannot allocate" "rank 0 names rank 1"
    has "$err" "\[1/2\] error: ERR_OOM_(HOST|DEVICE): rank 1: .*cannot allocate" "rank 1 says the same"
    fi
    # a rank killed mid-run ends the whole job, non-zero, instead of hanging (the run would take
    # hours: `timeout` 60 s, exit 124, is the hang)
    timeout 60 mpiexec -n 2 --oversubscribe bash -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then (sleep 2; kill -9 $$) & fi; exec "$0" "$@"' \
        "$WANRUN" --model "$tiny" --prompt p --size 256x256 --frames 41 --steps 1000 --threads 1 \
        --out "$gen/killed.y4m" >"$out" 2>"$err" </dev/null
    rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ ! -e "$gen/killed.y4m" ]; then
        pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: killed rank: exit $rc (124: hung)"; fi
fi

# ---- issue #14: a tokenizer folder holding tokenizer.json and no spiece.model (what
# transformers 5.x's save_pretrained writes), and the prompt checks ----
tj="$gen/tokjson"
mkdir -p "$tj/m/tokenizer" "$tj/e/tokenizer"
for c in model_index.json scheduler text_encoder transformer vae; do ln -s "$tiny/$c" "$tj/m/$c"; done
cp "$DATA"/tokenizer_json/* "$tj/m/tokenizer/"
cp "$DATA"/tokenizer_json/* "$tj/e/tokenizer/"
ln -s "$DATA/t5/tiny_a/text_encoder" "$tj/e/text_encoder"
small=(--prompt "a red fox, <extra_id_3> ＡＢＣ" --negative-prompt "blurry" --size 32x32 --frames 5
    --steps 2 --threads 1)
expect 0 "generate with tokenizer/tokenizer.json only" -- "$WANRUN" --model "$tj/m" "${small[@]}" \
    --out "$tj/json.y4m"
expect 0 "the same with tokenizer/spiece.model" -- "$WANRUN" --model "$tiny" "${small[@]}" \
    --out "$tj/spm.y4m"
if cmp -s "$tj/json.y4m" "$tj/spm.y4m"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: tokenizer.json and spiece.model give different videos"; fi
expect 0 "encode with tokenizer/tokenizer.json only" -- "$WANRUN" encode --model "$tj/e" \
    --prompt "A cat walks on the grass, realistic" --out "$tj/e.safetensors" --threads 1
has "$err" "encode: 21 tokens" "tokenizer.json: the same token count"
# the tensors (after the header, which records the model path) equal spiece.model's encoding
data_of() { local h; h=$(od -An -t u8 -N8 "$1" | tr -d ' '); tail -c +$((9 + h)) "$1"; }
if cmp -s <(data_of "$tj/e.safetensors") <(data_of "$enc/e.safetensors"); then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: encode from tokenizer.json differs from spiece.model's"; fi
sed 's/"type": "Unigram"/"type": "BPE"/' "$DATA/tokenizer_json/tokenizer.json" >"$tj/e/tokenizer/tokenizer.json"
expect 6 "encode with an unsupported tokenizer.json" -- "$WANRUN" encode --model "$tj/e" --prompt a \
    --out "$tj/x.safetensors"
has "$err" "ERR_UNSUPPORTED: .*tokenizer/tokenizer.json: field 'model.type' is \"BPE\"" \
    "unsupported model type: file, field and value named"
rm "$tj/e/tokenizer/tokenizer.json"
expect 3 "encode with neither tokenizer file" -- "$WANRUN" encode --model "$tj/e" --prompt a \
    --out "$tj/x.safetensors"
has "$err" "tokenizer/spiece.model: tokenizer model not found, nor .*tokenizer/tokenizer.json" \
    "both tokenizer files named"
# bad UTF-8 and over-long prompts: exit 2 before any work, naming the option
expect 2 "--negative-prompt not UTF-8" -- "$WANRUN" --model "$tiny" --prompt ok \
    --negative-prompt $'bad \xff' --size 32x32 --frames 5 --steps 1 --out "$tj/x.y4m"
has "$err" "--negative-prompt is not valid UTF-8 \(byte 4: 0xFF\)" "the negative prompt is named"
expect 2 "--prompt not UTF-8" -- "$WANRUN" --model "$tiny" --prompt $'bad \xff' --size 32x32 \
    --frames 5 --steps 1 --out "$tj/x.y4m"
has "$err" "--prompt is not valid UTF-8" "the prompt is named"
# config_with KEY BYTES: a --config file whose KEY is BYTES bytes of "a "
config_with() {
    { printf '{"%s": "' "$1"; head -c "$2" /dev/zero | tr '\0' a; printf '"}'; } >"$tj/cfg.json"
}
config_with prompt 1048577
expect 2 "a prompt over 1 MiB (--config)" -- "$WANRUN" --config "$tj/cfg.json" --model "$tiny" \
    --size 32x32 --frames 5 --steps 1 --out "$tj/x.y4m"
has "$err" "--prompt is 1048577 bytes, more than the 1048576" "the cap is named"
config_with negative-prompt 1048577
expect 2 "a negative prompt over 1 MiB" -- "$WANRUN" --config "$tj/cfg.json" --model "$tiny" \
    --prompt p --size 32x32 --frames 5 --steps 1 --out "$tj/x.y4m"
has "$err" "--negative-prompt is 1048577 bytes" "the negative prompt's cap is named"
# (encode has no --config, and one argv string is at most 128 KiB on Linux: its cap is
# wr_prompt_check's, tested in test_tokenizer)
expect 2 "encode: a prompt not UTF-8" -- "$WANRUN" encode --model "$enc/m" --prompt $'\xc0\xaf' \
    --out "$tj/x.safetensors"
has "$err" "--prompt is not valid UTF-8 \(byte 0: 0xC0\)" "encode: the prompt is named"
config_with prompt 1048576
expect 0 "a prompt of exactly 1 MiB" -- "$WANRUN" --config "$tj/cfg.json" --model "$tiny" \
    --size 32x32 --frames 5 --steps 1 --threads 1 --out "$tj/cap.y4m"
if [ -e "$tj/x.y4m" ] || [ -e "$tj/x.safetensors" ]; then fail=$((fail + 1)); echo "FAIL: a refused run wrote a file"; else
    pass=$((pass + 1)); fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
