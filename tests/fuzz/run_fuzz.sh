#!/usr/bin/env bash
# run_fuzz.sh [SECONDS] [BUILD_DIR] — builds the libFuzzer targets with clang (ASan, UBSan) and
# runs each for SECONDS (default 30): fuzz_st_header (the safetensors header validator),
# fuzz_tokenizer (prompt cleaning and tokenization), fuzz_tokenizer_json (the tokenizer.json
# reader, and encoding with what it accepts), fuzz_model_config (model_index.json and
# the component configs, the loaders, the scheduler and the planner; seeds in
# tests/fuzz/seeds/model_config) and fuzz_config_opts (the --config reader and the
# flag-value parsers of src/pipeline/options.c).
#
# BUILD_DIR defaults to build-fuzz under the repository root. The seed corpus is every file
# under tests/data/bad and tests/data/good (flattened, the .tsv/.json manifests skipped),
# copied into a fresh temporary directory, so the repository is never written to (apart from
# BUILD_DIR). On a crash the reproducer is kept, its path printed, and the script exits 1;
# replay it with `BUILD_DIR/tests/fuzz/<target> PATH`.
set -euo pipefail

seconds="${1:-30}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${2:-$root/build-fuzz}"

if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 [SECONDS] [BUILD_DIR]  (SECONDS: a positive integer)" >&2
    exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/wr-fuzz.XXXXXX")"
corpus="$work/corpus"
artifacts="$work/artifacts"
mkdir "$corpus" "$artifacts"
keep=0
cleanup() {
    if [ "$keep" -eq 1 ]; then rm -rf "$corpus"; else rm -rf "$work"; fi
}
trap cleanup EXIT

cd "$root"
# a build dir configured with another C++ compiler (before the library had a C++ file) cannot
# be switched in place: start it afresh
if [ -f "$build/CMakeCache.txt" ] && ! grep -q "^CMAKE_CXX_COMPILER:.*clang++" "$build/CMakeCache.txt"; then
    rm -rf "$build"
fi
if ! CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang \
    -DCMAKE_CXX_COMPILER=clang++ -DWR_CUDA=OFF -DWR_BUILD_FUZZ=ON -DWR_BUILD_TESTS=OFF \
    -DWR_BUILD_BENCH=OFF -DWR_SANITIZE=address,undefined >"$work/configure.log" 2>&1; then
    cat "$work/configure.log" >&2
    echo "configure failed" >&2
    exit 1
fi
cmake --build "$build" --target fuzz_st_header fuzz_tokenizer fuzz_tokenizer_json \
    fuzz_model_config fuzz_config_opts -j "$(nproc)"

# fuzz TARGET CORPUS_DIR [libFuzzer flags...]: runs one target for $seconds; on a failure keeps
# the reproducer
fuzz() {
    local name=$1 corpus=$2 fuzzer="$build/tests/fuzz/$1" log="$artifacts/$1.log" rc=0
    shift 2
    "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$artifacts/$name-" "$@" "$corpus" >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        keep=1
        tail -n 60 "$log" >&2
        echo "$name FAILED (exit $rc); full log: $log" >&2
        local found=0 a
        for a in "$artifacts/$name"-crash-* "$artifacts/$name"-leak-* "$artifacts/$name"-timeout-* \
            "$artifacts/$name"-oom-* "$artifacts/$name"-slow-unit-*; do
            [ -e "$a" ] || continue
            echo "reproducer: $a" >&2
            echo "replay:     $fuzzer $a" >&2
            found=1
        done
        [ "$found" -eq 1 ] || echo "no reproducer was written; see the log" >&2
        exit 1
    fi
    local runs
    runs="$(sed -n 's/^Done \([0-9][0-9]*\) runs.*/\1/p' "$log" | tail -n 1)"
    echo "$name OK: ${runs:-?} executions in ${seconds}s, no crash"
}

# safetensors headers. Flatten: tests/data/bad/index_wrong_shard/x.safetensors ->
# bad__index_wrong_shard__x.safetensors
nseeds=0
while IFS= read -r -d '' f; do
    rel="${f#tests/data/}"
    cp "$f" "$corpus/${rel//\//__}"
    nseeds=$((nseeds + 1))
done < <(find tests/data/bad tests/data/good -type f ! -name '*.tsv' ! -name '*.json' -print0)
echo "fuzz_st_header: seed corpus $nseeds files; fuzzing for ${seconds}s"
fuzz fuzz_st_header "$corpus"

# prompts: the golden prompt list as one seed, plus a few hand-made ones
tcorpus="$work/prompts"
mkdir "$tcorpus"
cp tests/data/tokenizer/prompts.json "$tcorpus/prompts.json"
printf 'A cat &amp;lt;3 <extra_id_5> dances\t\n' >"$tcorpus/p1"
printf '\xe4\xb8\x80\xe5\x8f\xaa\xe7\x8c\xab &#x1F3AC; &nGt; \xef\xbc\x9c\xef\xbc\x8f\xef\xbd\x93\xef\xbc\x9e' >"$tcorpus/p2"
echo "fuzz_tokenizer: seed corpus 3 files; fuzzing for ${seconds}s"
fuzz fuzz_tokenizer "$tcorpus"

# tokenizer.json: small files cut from the golden one (tests/fuzz/seeds_tokenizer_json: 42
# pieces without a char map, with a 1 KB char map, and equivalent forms; the golden file's
# 320 KB map would only slow each run), inputs up to 64 KiB
jcorpus="$work/tokenizer_json"
mkdir "$jcorpus"
cp tests/fuzz/seeds_tokenizer_json/*.json "$jcorpus/"
echo "fuzz_tokenizer_json: seed corpus $(ls "$jcorpus" | wc -l) files; fuzzing for ${seconds}s"
fuzz fuzz_tokenizer_json "$jcorpus" -dict=tests/fuzz/tokenizer_json.dict -max_len=65536

# model directories: the committed seeds (each the five config files of a directory separated
# by lines "%%"), copied so that the fuzzer's additions stay out of the repository
mcorpus="$work/model_config"
mkdir "$mcorpus"
cp tests/fuzz/seeds/model_config/* "$mcorpus/"
echo "fuzz_model_config: seed corpus $(ls "$mcorpus" | wc -l) files; fuzzing for ${seconds}s"
fuzz fuzz_model_config "$mcorpus"

# --config documents: every option once, and a few near misses
ccorpus="$work/configs"
mkdir "$ccorpus"
cat >"$ccorpus/all.json" <<'JSON'
{"model": "m", "prompt": "a red fox", "negative-prompt": "", "out": "o.mp4",
 "save-latents": "l.safetensors", "init-noise": "n.safetensors", "size": "832x480",
 "frames": 81, "steps": 50, "guidance": 5.0, "shift": 3.0, "fps": 16, "seed": 42,
 "scheduler": "unipc", "threads": 2, "low-mem-level": "auto", "vram-limit": "20GiB",
 "backend": "cpu", "cfg-parallel": 1, "cp-size": 1, "cp": "ulysses", "mem-profile": "p",
 "text-encoder": "stream", "dit": "resident", "vae": "tiled", "fp8": "off",
 "te-device": "cpu", "disk-offload": true, "verbose": false}
JSON
printf '{"prompt": "p", "out": "o.y4m", "frames": 9.0, "steps": "30", "seed": 1e19}' >"$ccorpus/c1"
printf '{"size": "16x16", "frames": 10, "vram-limit": 0.5, "steps": 2, "steps": 3}' >"$ccorpus/c2"
printf '{"prompt": "\\u00e9\\n", "out": "x", "guidance": -0, "fps": 1e-400}' >"$ccorpus/c3"
printf '\010--steps 30' >"$ccorpus/flag1"
printf '\020512MiB' >"$ccorpus/flag2"
echo "fuzz_config_opts: seed corpus 6 files; fuzzing for ${seconds}s"
fuzz fuzz_config_opts "$ccorpus"
