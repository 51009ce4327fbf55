#!/usr/bin/env bash
# demo.sh — installs what is missing, builds wanrun, and runs it on the bundled data: the
# version and build capabilities, `wanrun inspect` on a bundled sharded checkpoint, `wanrun
# encode` of a prompt, and a whole text-to-video generation on the bundled tiny random model
# (tests/data/wan-tiny: the real architecture at toy size, so the video is colourful noise),
# leaving a playable MP4 at demo-output/tiny.mp4 (WR_DEMO_OUT to change); also a generation
# shared by 2 MPI ranks (context-parallel, at --low-mem-level 3 with a memory profile) and the
# memory planner's table for the real 1.3B model. A real Wan2.1 diffusers directory works the
# same way with --model.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash launch/deps.sh
WR_TARGET=wanrun bash launch/build.sh "$root/build" >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

demo=$(mktemp -d)
trap 'rm -rf "$demo"' EXIT
mkdir -p "$demo/model"
ln -s "$root/tests/data/tokenizer" "$demo/model/tokenizer"
ln -s "$root/tests/data/t5/tiny_a/text_encoder" "$demo/model/text_encoder"

set -x
build/wanrun --version
build/wanrun inspect tests/data/good/sharded
mpirun -np 2 build/wanrun inspect --summary tests/data/good/sharded/model.safetensors.index.json
build/wanrun encode --model "$demo/model" --prompt "A red fox runs through fresh snow &amp; wind" \
    --out "$demo/emb.safetensors"
build/wanrun inspect "$demo/emb.safetensors"
mpirun -np 2 build/wanrun encode --model "$demo/model" --prompt "二匹の猫が踊る" \
    --out "$demo/emb2.safetensors"
out_dir="${WR_DEMO_OUT:-$root/demo-output}"
mkdir -p "$out_dir"
build/wanrun --prompt "A red fox runs through fresh snow at dawn" --size 64x64 --frames 17 \
    --steps 8 --seed 42 --out "$out_dir/tiny.mp4"
mpirun -np 2 build/wanrun --prompt "Two cats dance in the rain" --size 32x32 --frames 5 \
    --steps 4 --scheduler euler --low-mem-level 3 --mem-profile "$out_dir/memprof" \
    --out "$out_dir/tiny-euler.y4m"
build/wanrun plan --preset 1.3b --size 832x480 --frames 81 --vram 8GiB
set +x
echo "demo: the video is at $out_dir/tiny.mp4 (and $out_dir/tiny-euler.y4m); memory traces in" \
    "$out_dir/memprof (open the .json in ui.perfetto.dev, the .svg in a browser)"
