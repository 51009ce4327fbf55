#!/usr/bin/env python3
"""Generates the safetensors test corpora under tests/data/ (run by hand; outputs are committed).

    python3 tests/data/make_corpus.py            # both corpora
    python3 tests/data/make_corpus.py --bad      # only tests/data/bad (standard library only)
    python3 tests/data/make_corpus.py --good     # only tests/data/good (needs safetensors, torch)

bad/   one malformed file (or sharded folder) per validation rule of src/core/safetensors.h,
       written byte by byte with the standard library, and bad/EXPECTED.tsv:
       `path<TAB>STATUS<TAB>keyword` (the status name without ERR_, and a lowercase substring
       the error detail must contain).
good/  valid fixtures written by the reference writer (the `safetensors` PyPI package), and
       good/MANIFEST.json listing each file's tensors (name, dtype, shape) and metadata.
       Element i (row-major) of every tensor has the value (i % 7) - 3; BOOL holds i % 2 == 1;
       U8 cannot hold negatives and stores the value modulo 256 (253, 254, 255, 0, 1, 2, 3),
       which is what torch's int -> uint8 cast does. Each tensor also lists its values.

Each run empties bad/ and good/ first: everything in them comes from this script.
The output is deterministic (no timestamps, sorted keys where the format allows).
"""

import argparse
import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BAD = os.path.join(HERE, "bad")
GOOD = os.path.join(HERE, "good")

DTYPE_SIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}

# ---- byte-level helpers (standard library only) ----


def st_bytes(header_text, data=b"", header_len=None, pad=True):
    """A safetensors image: u64 little-endian length, header text, data region.

    header_text is written verbatim (so duplicate keys and malformed JSON are possible); bytes
    are taken as they are (so is text that is not UTF-8).
    pad: pad with spaces to a multiple of 8, as the reference writer does. header_len
    overrides the length field (to lie about it)."""
    h = header_text if isinstance(header_text, bytes) else header_text.encode("utf-8")
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    n = len(h) if header_len is None else header_len
    return struct.pack("<Q", n) + h + data


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def header(tensors, metadata=None):
    """JSON text of a header from an ordered list of (name, entry-dict)."""
    obj = {}
    if metadata is not None:
        obj["__metadata__"] = metadata
    for name, e in tensors:
        obj[name] = e
    return json.dumps(obj, separators=(",", ":"))


def f32_data(n):
    return b"".join(struct.pack("<f", float((i % 7) - 3)) for i in range(n))


def valid_file(tensors, metadata=None):
    """A valid image: tensors = [(name, dtype, shape)], packed in order, F32 values by rule."""
    entries, data, off = [], b"", 0
    for name, dtype, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        nbytes = n * DTYPE_SIZE[dtype]
        entries.append((name, entry(dtype, shape, off, off + nbytes)))
        data += f32_data(n) if dtype == "F32" else bytes(nbytes)
        off += nbytes
    return st_bytes(header(entries, metadata), data)


def write(path, blob):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(blob)


# ---- bad corpus ----

# (relative path, STATUS, keyword, bytes). Folder cases are added in make_bad().
# No file or folder name contains a keyword: the detail names the file, so a name holding its
# keyword would satisfy the check whatever the message said.
KEYWORDS = ["too small", "header length", "invalid json", "not a json object", "unknown dtype",
            "does not match", "past the end", "overlap", "gap", "trailing", "duplicate",
            "overflow", "shape", "data_offsets", "__metadata__", "dtype", "not found",
            "does not contain", "weight_map", "not listed", "utf-8", "nul", "hex digits",
            "surrogate", "control character", "duplicate key", "duplicate tensor name"]

def bad_cases():
    d8 = f32_data(2)  # 8 bytes: one F32 [2] tensor
    d16 = f32_data(4)
    d24 = f32_data(6)
    one = [("a", entry("F32", [2], 0, 8))]
    cases = []

    def add(name, status, keyword, blob):
        cases.append((name + ".safetensors", status, keyword, blob))

    # -- file and header length --
    add("empty", "FORMAT", "too small", b"")
    add("short_file", "FORMAT", "too small", b"\x10\x00\x00\x00\x00")
    add("hlen_past_file", "FORMAT", "header length",
        st_bytes(header(one), d8, header_len=1000))
    add("hlen_over_100mib", "FORMAT", "header length",
        st_bytes(header(one), d8, header_len=200 << 20))
    add("hlen_u64_max", "FORMAT", "header length",
        st_bytes(header(one), d8, header_len=(1 << 64) - 1))

    # -- JSON --
    add("bad_json", "FORMAT", "invalid json",
        st_bytes('{"a": {"dtype": "F32", "shape": [2], ', d8))
    add("bad_json_garbage_after", "FORMAT", "invalid json",
        st_bytes(header(one) + " x", d8))
    add("bad_json_zero_length", "FORMAT", "invalid json", st_bytes("", d8, pad=False))
    add("header_is_list", "FORMAT", "not a json object", st_bytes("[1, 2, 3]", d8))
    add("header_is_string", "FORMAT", "not a json object", st_bytes('"abc"', d8))

    # -- one entry --
    add("type_f33", "FORMAT", "unknown dtype",
        st_bytes(header([("a", entry("F33", [2], 0, 8))]), d8))
    add("type_lowercase", "FORMAT", "unknown dtype",
        st_bytes(header([("a", entry("f32", [2], 0, 8))]), d8))
    add("type_missing", "FORMAT", "dtype",
        st_bytes(header([("a", {"shape": [2], "data_offsets": [0, 8]})]), d8))
    add("type_is_number", "FORMAT", "dtype",
        st_bytes(header([("a", {"dtype": 7, "shape": [2], "data_offsets": [0, 8]})]), d8))
    add("dims_missing", "FORMAT", "shape",
        st_bytes(header([("a", {"dtype": "F32", "data_offsets": [0, 8]})]), d8))
    add("dims_not_array", "FORMAT", "shape",
        st_bytes(header([("a", {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]})]), d8))
    add("dims_negative", "FORMAT", "shape",
        st_bytes(header([("a", entry("F32", [-2], 0, 8))]), d8))
    add("dims_fraction", "FORMAT", "shape",
        st_bytes(header([("a", entry("F32", [1.5], 0, 8))]), d8))
    add("dims_string", "FORMAT", "shape",
        st_bytes(header([("a", entry("F32", ["2"], 0, 8))]), d8))
    add("dims_ten", "FORMAT", "shape",
        st_bytes(header([("a", entry("F32", [1] * 9 + [2], 0, 8))]), d8))
    # 2^32 * 2^32 * 16 overflows uint64; 2^32 * 2^31 = 2^63 overflows int64;
    # 2^31 * 2^31 = 2^62 elements fit int64 but 2^62 * 4 bytes do not fit 64 bits. (Every
    # dimension stays below 2^53, so a JSON parser holding numbers as doubles reads it exactly.)
    add("dims_product_u64", "FORMAT", "overflow",
        st_bytes(header([("a", entry("F32", [4294967296, 4294967296, 16], 0, 8))]), d8))
    add("dims_product_i64", "FORMAT", "overflow",
        st_bytes(header([("a", entry("F32", [4294967296, 2147483648], 0, 8))]), d8))
    add("dims_nbytes_u64", "FORMAT", "overflow",
        st_bytes(header([("a", entry("F32", [1 << 31, 1 << 31], 0, 8))]), d8))
    add("span_size_wrong", "FORMAT", "does not match",
        st_bytes(header([("a", entry("F32", [2, 2], 0, 12))]), f32_data(3)))
    add("offsets_missing", "FORMAT", "data_offsets",
        st_bytes(header([("a", {"dtype": "F32", "shape": [2]})]), d8))
    add("offsets_reversed", "FORMAT", "data_offsets",
        st_bytes(header([("a", entry("F32", [2], 8, 0))]), d8))
    add("offsets_three", "FORMAT", "data_offsets",
        st_bytes(header([("a", {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 16]})]),
                 d8))
    add("offsets_negative", "FORMAT", "data_offsets",
        st_bytes(header([("a", entry("F32", [2], -8, 0))]), d8))
    add("offsets_fraction", "FORMAT", "data_offsets",
        st_bytes(header([("a", {"dtype": "F32", "shape": [2], "data_offsets": [0, 8.5]})]),
                 d8))

    # -- spans --
    add("end_beyond_data", "FORMAT", "past the end",
        st_bytes(header([("a", entry("F32", [1024], 0, 4096))]), d16))
    add("spans_cross", "FORMAT", "overlap",
        st_bytes(header([("a", entry("F32", [4], 0, 16)), ("b", entry("F32", [4], 8, 24))]),
                 d24))
    add("spans_hole", "FORMAT", "gap",
        st_bytes(header([("a", entry("F32", [2], 0, 8)), ("b", entry("F32", [2], 16, 24))]),
                 d24))
    add("spans_hole_at_start", "FORMAT", "gap",
        st_bytes(header([("a", entry("F32", [2], 8, 16))]), d16))
    add("extra_bytes_after", "FORMAT", "trailing",
        st_bytes(header(one), d8 + b"\x00\x00\x00\x00"))
    # No tensors at all, yet a data region: every byte of it is trailing.
    add("extra_bytes_no_tensors", "FORMAT", "trailing",
        st_bytes(header([], metadata={"format": "pt"}), d8))
    # Two tensors a [0, 16), b [16, 32); the file stops 8 bytes into b.
    full = st_bytes(header([("a", entry("F32", [4], 0, 16)), ("b", entry("F32", [4], 16, 32))]),
                    f32_data(8))
    add("cut_in_data", "FORMAT", "past the end", full[:-8])

    # -- names and metadata --
    dup = ('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
           '"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}')
    add("name_twice", "FORMAT", "duplicate", st_bytes(dup, d16))
    add("meta_value_number", "FORMAT", "__metadata__",
        st_bytes(header(one, metadata={"format": 1}), d8))
    add("meta_is_list", "FORMAT", "__metadata__",
        st_bytes(header(one, metadata=["format", "pt"]), d8))
    add("entry_is_number", "FORMAT", "not a json object",
        st_bytes('{"a": 5}', b""))

    # -- strings the reference reader refuses (the header must be UTF-8) or a C string cannot
    # hold; escapes are written as JSON text, raw bytes as bytes --
    def raw_one(name_json):
        """One F32 [2] tensor whose name is the JSON string body name_json (bytes or str)."""
        n = name_json if isinstance(name_json, bytes) else name_json.encode()
        return (b'{"' + n + b'":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}')

    add("name_byte_ff", "FORMAT", "utf-8", st_bytes(raw_one(b"w\xff"), d8))
    add("name_overlong_slash", "FORMAT", "utf-8", st_bytes(raw_one(b"w\xc0\xaf"), d8))
    add("name_cesu_d800", "FORMAT", "utf-8", st_bytes(raw_one(b"w\xed\xa0\x80"), d8))
    add("name_cut_sequence", "FORMAT", "utf-8", st_bytes(raw_one(b"w\xe2\x82"), d8))
    add("meta_value_latin1", "FORMAT", "utf-8",
        st_bytes(b'{"__metadata__":{"k":"caf\xe9"},'
                 b'"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', d8))
    add("name_escape_zero", "FORMAT", "nul", st_bytes(raw_one("w\\u0000x"), d8))
    add("name_escape_zzzz", "FORMAT", "hex digits", st_bytes(raw_one("w\\uzzzz"), d8))
    add("name_lone_high", "FORMAT", "surrogate", st_bytes(raw_one("w\\ud800"), d8))
    add("name_lone_low", "FORMAT", "surrogate", st_bytes(raw_one("w\\udc00x"), d8))
    add("name_high_then_text", "FORMAT", "surrogate",
        st_bytes(raw_one("w\\ud83dx\\ude00"), d8))
    add("name_raw_tab", "FORMAT", "control character", st_bytes(raw_one(b"w\tx"), d8))
    add("kind_escape_zero", "FORMAT", "nul",
        st_bytes('{"a":{"dtype":"F32\\u0000","shape":[2],"data_offsets":[0,8]}}', d8))

    # -- duplicate keys: cJSON keeps both and finds the first, other readers take the last --
    add("entry_type_twice", "FORMAT", "duplicate key",
        st_bytes('{"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}', d8))
    add("entry_dims_twice", "FORMAT", "duplicate key",
        st_bytes('{"a":{"dtype":"F32","shape":[2],"shape":[4],"data_offsets":[0,8]}}', d8))
    add("entry_offsets_twice", "FORMAT", "duplicate key",
        st_bytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],'
                 '"data_offsets":[0,8]}}', d8))
    add("meta_key_twice", "FORMAT", "duplicate key",
        st_bytes('{"__metadata__":{"k":"1","k":"2"},'
                 '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', d8))
    add("meta_block_twice", "FORMAT", "duplicate __metadata__",
        st_bytes('{"__metadata__":{"k":"1"},"__metadata__":{"j":"2"},'
                 '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', d8))
    # The same name with the same span: without the name check this would read as an overlap.
    add("name_twice_same_span", "FORMAT", "duplicate tensor name",
        st_bytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                 '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', d8))
    add("meta_value_none", "FORMAT", "__metadata__",
        st_bytes(header(one, metadata={"format": None}), d8))
    add("meta_value_object", "FORMAT", "__metadata__",
        st_bytes(header(one, metadata={"format": {"pt": "1"}}), d8))
    return cases


def index_json(weight_map, total_size, with_map=True):
    obj = {"metadata": {"total_size": total_size}}
    if with_map:
        obj["weight_map"] = dict(sorted(weight_map.items()))
    return json.dumps(obj, indent=2) + "\n"


def make_bad():
    shutil.rmtree(BAD, ignore_errors=True)
    os.makedirs(BAD)
    rows = []
    for rel, status, keyword, blob in bad_cases():
        write(os.path.join(BAD, rel), blob)
        rows.append((rel, status, keyword))

    s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    idx = "model.safetensors.index.json"
    sa = valid_file([("a", "F32", [2])])
    sb = valid_file([("b", "F32", [2])])

    def folder(name, files, status, keyword):
        for fname, content in files.items():
            blob = content.encode() if isinstance(content, str) else content
            write(os.path.join(BAD, name, fname), blob)
        rows.append((name + "/" + idx, status, keyword))

    # The map names shard 2, which is absent.
    folder("index_missing_shard",
           {idx: index_json({"a": s1, "b": s2}, 16), s1: sa},
           "NOT_FOUND", "not found")
    # Both shards are present and each holds what the map lists, but the map also sends "c" to
    # shard 1, which lacks it (no other rule is broken, so only this error can be reported).
    folder("index_wrong_shard",
           {idx: index_json({"a": s1, "b": s2, "c": s1}, 24), s1: sa, s2: sb},
           "FORMAT", "does not contain")
    folder("index_no_map",
           {idx: index_json({}, 16, with_map=False), s1: sa, s2: sb},
           "FORMAT", "weight_map")
    folder("index_map_is_list",
           {idx: json.dumps({"metadata": {"total_size": 16}, "weight_map": [s1, s2]}) + "\n",
            s1: sa, s2: sb},
           "FORMAT", "weight_map")
    folder("index_bad_json",
           {idx: '{"metadata": {"total_size": 16}, "weight_map": {"a": "' + s1, s1: sa},
           "FORMAT", "invalid json")
    # Shard 1 also holds "x", which the map does not list.
    folder("index_extra_tensor",
           {idx: index_json({"a": s1, "b": s2}, 16),
            s1: valid_file([("a", "F32", [2]), ("x", "F32", [2])]), s2: sb},
           "FORMAT", "not listed")
    # A shard that is itself malformed: its own error comes through the set.
    folder("index_bad_shard",
           {idx: index_json({"a": s1, "b": s2}, 16), s1: sa,
            s2: st_bytes(header([("b", entry("F32", [4], 0, 16)),
                                 ("z", entry("F32", [4], 8, 24))]), f32_data(6))},
           "FORMAT", "overlap")

    for rel, _, _ in rows:
        for kw in KEYWORDS:
            assert kw not in rel.lower(), f"{rel} contains the keyword {kw!r}"
    with open(os.path.join(BAD, "EXPECTED.tsv"), "w") as f:
        f.write("# Generated by tests/data/make_corpus.py; do not edit by hand.\n"
                "# path (relative to tests/data/bad)\tSTATUS (wr_status name without ERR_)"
                "\tkeyword (lowercase substring of the error detail)\n"
                "# '#' lines are ignored. Each detail must also name the file.\n")
        for rel, status, keyword in rows:
            f.write(f"{rel}\t{status}\t{keyword}\n")
    total = sum(os.path.getsize(os.path.join(dp, fn))
                for dp, _, fns in os.walk(BAD) for fn in fns)
    print(f"bad:  {len(rows)} cases, {total} bytes")
    if total >= 100 * 1024:
        sys.exit("bad corpus is over 100 KB")


# ---- good fixtures (the reference writer) ----


def rule_values(dtype, n):
    if dtype == "BOOL":
        return [int(i % 2 == 1) for i in range(n)]
    if dtype == "U8":
        return [((i % 7) - 3) % 256 for i in range(n)]
    return [(i % 7) - 3 for i in range(n)]


def make_good():
    import torch
    from safetensors.torch import save_file

    tdt = {
        "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
        "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16,
        "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
        "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    }

    def make(dtype, shape):
        n = 1
        for d in shape:
            n *= d
        vals = rule_values(dtype, n)
        if dtype == "BOOL":
            t = torch.tensor([bool(v) for v in vals], dtype=torch.bool)
        elif dtype == "U8":
            t = torch.tensor(vals, dtype=torch.uint8)
        else:
            # float64 -> target: every value in [-3, 3] is exact in every type.
            t = torch.tensor(vals, dtype=torch.float64).to(tdt[dtype])
        t = t.reshape(shape)
        # Round trip check: the stored bits hold the rule's values.
        back = t.to(torch.float64).flatten().tolist()
        want = [float(v) for v in vals]
        assert back == want, (dtype, shape, back, want)
        return t, vals

    def describe(name, dtype, shape, vals, **extra):
        d = {"name": name, "dtype": dtype, "shape": list(shape)}
        d.update(extra)
        d["values"] = vals
        return d

    shutil.rmtree(GOOD, ignore_errors=True)
    os.makedirs(os.path.join(GOOD, "sharded"))
    files = []

    # all_dtypes.safetensors: one tensor per dtype, shapes varied ([] scalar, [0, 3] empty).
    specs = [
        ("f32", "F32", [2, 3, 4]), ("f16", "F16", [5]), ("bf16", "BF16", [2, 3, 4]),
        ("f64", "F64", []), ("i64", "I64", [5]), ("i32", "I32", [0, 3]),
        ("i16", "I16", [2, 3, 4]), ("i8", "I8", [5]), ("u8", "U8", [2, 3, 4]),
        ("bool", "BOOL", [5]), ("f8_e4m3", "F8_E4M3", [2, 3, 4]), ("f8_e5m2", "F8_E5M2", [5]),
    ]
    meta = {"format": "pt", "purpose": "wanrun test"}
    tensors, desc = {}, []
    for name, dtype, shape in specs:
        t, vals = make(dtype, shape)
        tensors[name] = t
        desc.append(describe(name, dtype, shape, vals))
    save_file(tensors, os.path.join(GOOD, "all_dtypes.safetensors"), metadata=meta)
    files.append({"path": "all_dtypes.safetensors", "metadata": meta, "tensors": desc})

    # A file with no tensors at all: a header of "{}" (padded) and an empty data region.
    save_file({}, os.path.join(GOOD, "no_tensors.safetensors"))
    files.append({"path": "no_tensors.safetensors", "metadata": {}, "tensors": []})

    # sharded/: the transformers / diffusers index layout, two shards.
    shards = {
        "model-00001-of-00002.safetensors": [
            ("blocks.0.attn1.to_q.weight", "BF16", [4, 4]),
            ("blocks.0.attn1.to_q.bias", "BF16", [4]),
            ("blocks.0.attn1.to_k.weight", "F32", [4, 4]),
        ],
        "model-00002-of-00002.safetensors": [
            ("blocks.0.ffn.net.0.proj.weight", "BF16", [8, 4]),
            ("blocks.0.norm2.weight", "F32", [4]),
            ("patch_embedding.weight", "F16", [4, 2, 1, 2, 2]),
        ],
    }
    weight_map, desc, total = {}, [], 0
    for shard, specs in shards.items():
        tensors = {}
        for name, dtype, shape in specs:
            t, vals = make(dtype, shape)
            tensors[name] = t
            weight_map[name] = shard
            total += t.numel() * t.element_size()
            desc.append(describe(name, dtype, shape, vals, shard=shard))
        save_file(tensors, os.path.join(GOOD, "sharded", shard), metadata={"format": "pt"})
    with open(os.path.join(GOOD, "sharded", "model.safetensors.index.json"), "w") as f:
        f.write(index_json(weight_map, total))
    desc.sort(key=lambda d: d["name"])
    files.append({"path": "sharded/model.safetensors.index.json", "tensors": desc})

    manifest = {
        "generator": "tests/data/make_corpus.py",
        "value_rule": "element i (row-major) = (i % 7) - 3; BOOL: i % 2 == 1; "
                      "U8: ((i % 7) - 3) mod 256; 'values' lists them",
        "files": files,
    }
    with open(os.path.join(GOOD, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"good: {len(files)} fixtures")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bad", action="store_true", help="only the malformed corpus")
    ap.add_argument("--good", action="store_true", help="only the valid fixtures")
    a = ap.parse_args()
    both = not a.bad and not a.good
    if a.bad or both:
        make_bad()
    if a.good or both:
        make_good()


if __name__ == "__main__":
    main()
