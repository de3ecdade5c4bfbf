"""Tiled coding, measured: rate and quality against whole-image coding, and memory and time on large images.

    python benchmarks/tiling.py rd -o OUT [--size 2048x1536 --images 3 --tile 1024 --model vam]
    python benchmarks/tiling.py memory -o OUT [--size 6000x4000 --size 12000x8400]
    python benchmarks/tiling.py seams -o OUT

rd: photo mosaics from the training photos (benchmarks/large_image.py, never Kodak),
each coded whole and in tiles; bytes and PSNR of every layer (iter_decode), and the
BD-rate of the tiled ladder against the whole one (mean over images).
memory: `/usr/bin/time -v progcodec encode/decode` (a fresh process each, one thread):
wall time and peak resident memory for encode, decode of layer 1 and decode of every layer.
seams: a crop across the tile corner of a 1536x1024 mosaic of scikit-image's samples
(so it may be committed), tiled and whole, at the base layer, side by side (4x zoom).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from large_image import mosaic  # noqa: E402


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _ladder(data: bytes, original: np.ndarray, model) -> dict:
    import progcodec
    from progcodec.metrics import psnr_rgb

    ends = [layer["cumulative_bytes"] for layer in progcodec.info(data)["layers"]]
    psnrs = [psnr_rgb(original, image) for _, image in progcodec.iter_decode(data, model=model)]
    pixels = original.shape[0] * original.shape[1]
    return {"bytes": ends, "bpp": [8 * e / pixels for e in ends], "psnr": psnrs}


def rd(args) -> dict:
    import torch

    import progcodec
    from progcodec.api import get_model
    from progcodec.bench.report import bd_rate

    torch.set_num_threads(args.threads)
    model = get_model(args.model)
    width, height = _size(args.size)
    rows = []
    for seed in range(args.images):
        image = np.asarray(mosaic(width, height, seed=100 + seed))
        entry = {"seed": 100 + seed, "size": [width, height]}
        for name, tile in (("whole", 0), ("tiled", args.tile)):
            started = time.monotonic()
            data = progcodec.encode(image, model=model, tile=tile)
            entry[name] = {**_ladder(data, image, model), "encode_s": time.monotonic() - started,
                           "tiles": progcodec.info(data)["tiles"]}
        curve = lambda e, n: {"name": n, "results": {"bpp": e["bpp"], "psnr-rgb": e["psnr"]}}  # noqa: E731
        entry["bd_rate"] = bd_rate(curve(entry["whole"], "whole"), curve(entry["tiled"], "tiled"))["bd_rate"]
        rows.append(entry)
        print(f"seed {entry['seed']}: BD-rate tiled vs whole {entry['bd_rate']:+.2f} %, "
              f"full {entry['whole']['bytes'][-1]} -> {entry['tiled']['bytes'][-1]} B, "
              f"{entry['whole']['psnr'][-1]:.2f} -> {entry['tiled']['psnr'][-1]:.2f} dB", flush=True)
    return {"model": args.model, "tile": args.tile, "images": rows,
            "mean_bd_rate": float(np.mean([r["bd_rate"] for r in rows]))}


def _timed(command: list[str]) -> dict:
    """Wall seconds and peak resident MB of one command, from GNU time."""
    out = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time .*: (?:(\d+):)?(\d+):([\d.]+)", out.stderr)
    h, m, s = wall.groups()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    return {"wall_s": 3600 * int(h or 0) + 60 * int(m) + float(s), "peak_mb": rss / 1024}


def memory(args) -> dict:
    rows = []
    env_cli = [sys.executable, "-m", "progcodec"]
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.size or ["6000x4000", "12000x8400"]:
            width, height = _size(size)
            Image.MAX_IMAGE_PIXELS = None
            src, pgc = Path(tmp) / f"{size}.png", Path(tmp) / f"{size}.pgc"
            mosaic(width, height, seed=7).save(src, compress_level=1)
            row = {"size": [width, height], "megapixels": width * height / 1e6}
            row["encode"] = _timed([*env_cli, "encode", str(src), "-o", str(pgc), "--force", "--quiet",
                                    "--model", args.model])
            row["file_bytes"] = pgc.stat().st_size
            for layers, key in ((1, "decode_layer1"), (None, "decode_full")):
                extra = [] if layers is None else ["--layers", str(layers)]
                row[key] = _timed([*env_cli, "decode", str(pgc), "-o", str(Path(tmp) / "out.png"), "--force",
                                   "--quiet", *extra])
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {"model": args.model, "threads": "1 (PROGCODEC_THREADS unset: torch default)", "rows": rows}


def seams(args) -> dict:
    """The base layer around a tile corner, tiled and whole, from scikit-image's samples."""
    import progcodec
    from skimage import data as samples

    names = ["astronaut", "coffee", "rocket", "chelsea", "immunohistochemistry", "hubble_deep_field"]
    canvas = Image.new("RGB", (1536, 1024))
    for i, name in enumerate(names):
        photo = Image.fromarray(getattr(samples, name)()).convert("RGB").resize((512, 512), Image.LANCZOS)
        canvas.paste(photo, ((i % 3) * 512, (i // 3) * 512))
    # shift by 200 px so the photos' borders are not the tiles' borders
    image = np.roll(np.asarray(canvas), (200, 200), axis=(0, 1))
    tiled = progcodec.encode(image, tile=768, model=args.model)
    whole = progcodec.encode(image, tile=0, model=args.model)
    layer = 2 if progcodec.info(tiled)["preview"] else 1
    rows, cols, tile_h, tile_w = progcodec.info(tiled)["tiles"]
    y, x = tile_h - 64, tile_w - 64       # a 128x128 window centred on the first tile corner
    crops = [np.asarray(progcodec.decode(d, layers=layer))[y:y + 128, x:x + 128] for d in (tiled, whole)]
    crops.append(image[y:y + 128, x:x + 128])
    strip = Image.fromarray(np.concatenate([np.pad(c, ((0, 0), (0, 4), (0, 0)), constant_values=255)
                                            for c in crops], axis=1))
    strip = strip.resize((strip.width * 4, strip.height * 4), Image.NEAREST)
    out = Path(args.out) / "seam_crop.png"
    strip.save(out)
    info = {"picture": str(out), "layer": layer, "corner": [x + 64, y + 64], "tiles": [rows, cols, tile_h, tile_w],
            "left_to_right": ["tiled", "whole", "original"],
            "bytes": {"tiled": progcodec.info(tiled)["layers"][layer - 1]["cumulative_bytes"],
                      "whole": progcodec.info(whole)["layers"][layer - 1]["cumulative_bytes"]}}
    print(json.dumps(info))
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["rd", "memory", "seams"])
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--size", action="append", default=None)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--model", default="vam")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.mode == "rd":
        args.size = (args.size or ["2048x1536"])[0]
        result = rd(args)
    else:
        result = memory(args) if args.mode == "memory" else seams(args)
    (Path(args.out) / f"{args.mode}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
