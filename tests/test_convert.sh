#!/usr/bin/env bash
# test_convert.sh WANRUN DATA_DIR MPIEXEC — wanrun convert and the two-expert CLI (issue #18), on
# tests/data/wan22-tiny: a run on the fp8 conversion gives the bits of --fp8 storage on the
# source, at levels 0 and 3 and on 2 ranks; a sharded conversion the bits of an unsharded one
# (data movement); the errors (exit 2 / 3, nothing written); under mpirun one rank writes.
# (test_convert.c checks every converted tensor against its source.)
set -uo pipefail
WANRUN=$1
DATA=$2
MPIEXEC=$3
pass=0
fail=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out="$work/stdout"
err="$work/stderr"

# shellcheck source=tests/cli_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"
src="$DATA/wan22-tiny"

gen() { # gen MODEL OUT [FLAGS...]: a small two-expert generation, latents saved beside
    local m=$1 o=$2
    shift 2
    "$WANRUN" --model "$m" --prompt "a red fox" --size 32x32 --frames 5 --steps 4 --threads 1 \
        --guidance-2 3 --out "$o.y4m" --save-latents "$o.safetensors" "$@"
}
same() { # same A B DESCRIPTION: both outputs (video, latents) byte for byte
    if cmp -s "$1.y4m" "$2.y4m" && cmp -s "$1.safetensors" "$2.safetensors"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $3: $1 and $2 differ"
    fi
}

expect 0 "convert fp8" -- "$WANRUN" convert --model "$src" --out "$work/fp8" --dtype fp8
has "$err" "wrote .*/fp8: 278 tensors \(61 converted\)" "the summary line"
"$WANRUN" inspect "$work/fp8/transformer" --summary >"$out" 2>&1
has "$out" "F8_E4M3 x20" "the DiT's block matrices in e4m3"
for level in 0 3; do
    expect 0 "level $level on the source with --fp8 storage" -- \
        gen "$src" "$work/a$level" --fp8 storage --low-mem-level "$level"
    expect 0 "level $level on the fp8 conversion" -- \
        gen "$work/fp8" "$work/b$level" --low-mem-level "$level"
    same "$work/a$level" "$work/b$level" "fp8 conversion = --fp8 storage at level $level"
done
expect 0 "the fp8 conversion with --fp8 storage (e4m3 kept)" -- gen "$work/fp8" "$work/c0" --fp8 storage
same "$work/a0" "$work/c0" "--fp8 storage on the conversion"
if [ -x "$MPIEXEC" ]; then
    expect 0 "2 ranks (context parallel) on the fp8 conversion" -- \
        "$MPIEXEC" -n 2 --oversubscribe "$WANRUN" --model "$work/fp8" --prompt "a red fox" \
        --size 32x32 --frames 5 --steps 4 --threads 1 --guidance-2 3 --out "$work/d.y4m" \
        --save-latents "$work/d.safetensors"
    expect 0 "2 ranks on the source with --fp8 storage" -- \
        "$MPIEXEC" -n 2 --oversubscribe "$WANRUN" --model "$src" --prompt "a red fox" \
        --size 32x32 --frames 5 --steps 4 --threads 1 --guidance-2 3 --out "$work/e.y4m" \
        --save-latents "$work/e.safetensors" --fp8 storage
    same "$work/d" "$work/e" "2 ranks: fp8 conversion = --fp8 storage"
    expect 0 "convert under mpirun -n 2" -- \
        "$MPIEXEC" -n 2 --oversubscribe "$WANRUN" convert --model "$src" --out "$work/np2" \
        --dtype bf16
    n=$(grep -c "wrote .*/np2" "$err")
    if [ "$n" -eq 1 ] && [ -d "$work/np2/vae" ]; then pass=$((pass + 1)); else
        fail=$((fail + 1)); echo "FAIL: mpirun -n 2 convert: $n writers"; fi
fi

# bf16, sharded and not: the same bits
expect 0 "convert bf16" -- "$WANRUN" convert --model "$src" --out "$work/bf16" --dtype bf16
expect 0 "convert bf16 in 50 kB shards" -- \
    "$WANRUN" convert --model "$src" --out "$work/bf16s" --dtype bf16 --shard-size 0.00005
check "the sharded transformer has an index" -- \
    test -f "$work/bf16s/transformer/diffusion_pytorch_model.safetensors.index.json"
expect 0 "run on bf16" -- gen "$work/bf16" "$work/f"
expect 0 "run on sharded bf16" -- gen "$work/bf16s" "$work/g"
same "$work/f" "$work/g" "sharded = unsharded"

# errors: usage 2, input 3; nothing written, the existing directory untouched
expect 2 "convert without --dtype" -- "$WANRUN" convert --model "$src" --out "$work/x"
has "$err" "convert needs --model DIR --out DIR2 --dtype bf16\|fp8" "the missing flag named"
expect 2 "convert --dtype fp16" -- "$WANRUN" convert --model "$src" --out "$work/x" --dtype fp16
has "$err" "--dtype fp16: convert writes bf16 or fp8" "the bad dtype named"
expect 2 "convert onto an existing directory" -- \
    "$WANRUN" convert --model "$src" --out "$work/bf16" --dtype fp8
has "$err" "--out .*/bf16 exists" "the existing directory named"
expect 3 "convert a missing model" -- "$WANRUN" convert --model "$work/nope" --out "$work/x" \
    --dtype bf16
check "nothing written, no temporary" -- test -z "$(ls -A "$work" | grep -E '^(x|\..*wanrun-tmp)')"

# the swap in the memory profile; --low-mem-level auto plans with both experts
expect 0 "two experts with --mem-profile" -- gen "$src" "$work/p" --mem-profile "$work/prof"
has "$work/prof/memprof.rank0.json" "swap to transformer_2" "the swap region in the profile"
has "$err" "step 3 \(t = 750\): the low-noise expert transformer_2/ takes over, guidance 3" \
    "the swap logged"
expect 0 "two experts, --low-mem-level auto" -- gen "$src" "$work/q" --low-mem-level auto \
    --vram-limit 1GiB
has "$err" "--low-mem-level auto: level 0" "auto picks level 0 for 1 GiB"
same "$work/p" "$work/q" "auto (level 0) = the default level"

# TI2V (tests/data/wan22-ti2v-tiny): --image through the CLI, the image's errors, the planner
ti2v="$DATA/wan22-ti2v-tiny"
expect 0 "TI2V with --image" -- "$WANRUN" --model "$ti2v" --prompt "The scene comes alive" \
    --size 64x32 --frames 5 --steps 2 --threads 1 --image "$DATA/image/q90.jpg" --out "$work/ti.y4m"
check "a TI2V video" -- test -s "$work/ti.y4m"
expect 2 "--image on a Wan2.1 model" -- "$WANRUN" --model "$DATA/wan-tiny" --prompt "x" \
    --size 32x32 --frames 5 --steps 1 --image "$DATA/image/rgb.png" --out "$work/x1.y4m"
has "$err" "--image .*rgb.png: .* is not an image-to-video model" "the mismatch named"
expect 3 "a missing --image" -- "$WANRUN" --model "$ti2v" --prompt "x" --size 64x32 --frames 5 \
    --steps 1 --image "$work/none.png" --out "$work/x2.y4m"
has "$err" "--image .*none.png: cannot read it" "the missing image named"
expect 3 "an --image that is not one" -- "$WANRUN" --model "$ti2v" --prompt "x" --size 64x32 \
    --frames 5 --steps 1 --image "$DATA/wan-tiny/model_index.json" --out "$work/x3.y4m"
has "$err" "neither a PNG nor a JPEG" "the bad image named"
check "no video from the failed runs" -- test ! -e "$work/x1.y4m" -a ! -e "$work/x2.y4m" -a ! -e "$work/x3.y4m"
expect 0 "plan on a TI2V directory" -- "$WANRUN" plan --model "$ti2v" --size 64x32 --frames 5
has "$out" "^TI2V \(Wan2.2\): a timestep per token" "the TI2V plan says so"
expect 0 "plan on a TI2V directory with an image" -- "$WANRUN" plan --model "$ti2v" --image \
    --size 64x32 --frames 5
has "$out" "the image is encoded \\(tiled from level 1\\) before denoising, phase image" \
    "the image's phase named"
expect 0 "plan --preset 5b" -- "$WANRUN" plan --preset 5b --image --np 8 --fp8
has "$out" "^plan: 5b, 1280x704, 121 frames, 8 rank" "TI2V-5B's defaults"
expect 2 "plan --image on a T2V model" -- "$WANRUN" plan --preset 14b --image
has "$err" "only a TI2V model" "--image refused without TI2V"
expect 0 "TI2V with --low-mem-level auto" -- "$WANRUN" --model "$ti2v" --prompt "x" --size 64x32 \
    --frames 5 --steps 1 --threads 1 --image "$DATA/image/rgb.png" --low-mem-level auto \
    --vram-limit 1GiB --out "$work/auto.y4m"
has "$err" "--low-mem-level auto: level 0 \(planned peak" "auto plans TI2V"
printf '%s\n' '{"name": "d", "prompt": "a fox"}' \
    '{"name": "s", "prompt": "a fox", "size": "64x32", "frames": 5, "image": "'"$DATA"'/image/rgb.png"}' \
    >"$work/ti2v.jsonl"
expect 0 "--batch-check of TI2V jobs" -- "$WANRUN" --model "$ti2v" --batch "$work/ti2v.jsonl" \
    --out-dir "$work/bo" --batch-check
has "$err" "d  *1280x704, 121 frames, .*planned peak" "a TI2V job's defaults are the model's"
has "$err" "s  *64x32, 5 frames, .*planned peak" "a TI2V job with an image is planned"

# inspect and plan know the two-expert layout
expect 0 "inspect a two-expert directory" -- "$WANRUN" inspect "$src" --summary
has "$out" "^transformer_2: 2 layers" "transformer_2's config shown"
has "$out" "two experts \(Wan2.2\): transformer/ for t >= 0.875" "the boundary shown"
has "$out" "^transformer_2: .*/transformer_2 \(1 file\)" "transformer_2's weights listed"
expect 0 "plan --preset a14b" -- "$WANRUN" plan --preset a14b --size 1280x720 --frames 81
has "$out" "^two experts \(Wan2.2\): one in device memory at a time" "the experts named"
expect 0 "plan --preset 14b" -- "$WANRUN" plan --preset 14b --size 1280x720 --frames 81
hasnt "$out" "two experts" "one expert"
expect 2 "plan --preset a15b" -- "$WANRUN" plan --preset a15b
has "$err" "--preset 1.3b\|14b\|a14b" "the presets listed"

echo "convert cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
