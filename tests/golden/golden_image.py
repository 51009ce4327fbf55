#!/usr/bin/env python3
"""Goldens for wanrun's --image reader and resize (src/io/image.c, issue #18): what PIL makes of
a few small PNG and JPEG files, and PIL's Image.resize(LANCZOS) of them to several sizes.

    python3 tests/golden/golden_image.py        # writes tests/data/image/

Needs Pillow and torch + safetensors (for the file). Neither the engine, its build nor CI runs
this script. diffusers' VaeImageProcessor.preprocess resizes a PIL image with
image.resize((width, height), resample=PIL.Image.LANCZOS) (its default resample "lanczos"),
after load_image's convert("RGB"): the decode tensors below are Image.open(f).convert("RGB").
"""
import json
import os
import sys

import numpy as np
import PIL
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "data", "image")
W, H = 53, 37   # odd sizes: non-integer scales everywhere
# (file, target sizes): up, down, one side only, a large shrink, the same size
SIZES = [(53, 37), (80, 48), (32, 16), (53, 20), (96, 37), (16, 16), (13, 9), (64, 32), (32, 32), (64, 37), (53, 32), (40, 80), (100, 20), (52, 36), (57, 36)]


def base_image():
    """A smooth gradient with sharp edges and noise: rounding and clamping both matter."""
    y, x = np.mgrid[0:H, 0:W]
    r = (x * 255 // (W - 1)).astype(np.int64)
    g = (y * 255 // (H - 1)).astype(np.int64)
    b = (((x // 7 + y // 5) % 2) * 255).astype(np.int64)
    rng = np.random.default_rng(1804)
    noise = rng.integers(-40, 41, size=(H, W, 3))
    img = np.stack([r, g, b], -1) + noise
    return np.clip(img, 0, 255).astype(np.uint8)


def main():
    os.makedirs(OUT, exist_ok=True)
    rgb = base_image()
    im = Image.fromarray(rgb, "RGB")
    files = {}
    files["rgb.png"] = lambda p: im.save(p)
    files["rgba.png"] = lambda p: Image.fromarray(
        np.concatenate([rgb, (rgb[..., :1] // 2 + 7)], -1), "RGBA").save(p)
    files["gray.png"] = lambda p: im.convert("L").save(p)
    files["palette.png"] = lambda p: im.convert("P", palette=Image.ADAPTIVE, colors=37).save(p)
    files["interlaced.png"] = lambda p: im.save(p, interlace=1)
    files["rgb16.png"] = lambda p: save_rgb16(p, rgb)
    files["q90.jpg"] = lambda p: im.save(p, quality=90)
    files["q75_444.jpg"] = lambda p: im.save(p, quality=75, subsampling=0)
    files["gray.jpg"] = lambda p: im.convert("L").save(p, quality=85)
    tensors, meta = {}, {}
    for name, write in files.items():
        path = os.path.join(OUT, name)
        write(path)
        dec = Image.open(path).convert("RGB")
        tensors["decode." + name] = torch.from_numpy(np.array(dec).copy())
        if name in ("rgb.png", "q90.jpg"):
            for (w, h) in SIZES:
                r = dec.resize((w, h), resample=Image.LANCZOS)
                tensors["resize.%s.%dx%d" % (name, w, h)] = torch.from_numpy(np.array(r).copy())
    meta["generator"] = "tests/golden/golden_image.py"
    meta["pillow"] = PIL.__version__
    meta["files"] = json.dumps(sorted(files))
    meta["sizes"] = json.dumps(SIZES)
    meta["decode"] = "np.array(Image.open(FILE).convert('RGB')) U8 [H, W, 3]"
    meta["resize"] = ("np.array(Image.open(FILE).convert('RGB').resize((w, h), "
                      "resample=Image.LANCZOS)) U8 [h, w, 3]")
    sys.path.insert(0, HERE)
    from gen_golden import save_file_sorted_meta
    save_file_sorted_meta(tensors, os.path.join(OUT, "golden.safetensors"), meta)
    for f in os.listdir(OUT):
        os.chmod(os.path.join(OUT, f), 0o644)
    print("wrote", OUT, sorted(os.listdir(OUT)))


def save_rgb16(path, rgb):
    """A 16-bit RGB PNG (PIL cannot write one): through the png module-free route of writing
    the chunks by hand, the low byte a function of the pixel so that strip-vs-scale shows."""
    import struct
    import zlib
    hi = rgb.astype(np.uint16)
    lo = (rgb.astype(np.uint16) * 37 + 11) % 256
    v = (hi << 8) | lo
    raw = b"".join(b"\x00" + v[y].astype(">u2").tobytes() for y in range(H))

    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", W, H, 16, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                + chunk(b"IEND", b""))


if __name__ == "__main__":
    main()
