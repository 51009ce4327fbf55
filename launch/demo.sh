#!/usr/bin/env bash
# demo.sh — installs what is missing, builds wanrun, and runs it on the bundled data: the
# version and build capabilities, `wanrun inspect` on a bundled sharded checkpoint, and
# `wanrun encode` of a prompt with the bundled tiny tokenizer and text encoder (the
# text-to-video pipeline arrives with issue #6; then this runs a generation on the bundled
# tiny model), once on one rank and once under `mpirun -np 2`.
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
