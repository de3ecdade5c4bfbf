"""Photo-like test images of any size, made from the training photos (never Kodak).

    python benchmarks/large_image.py 6000 4000 -o /tmp/24mp.png [--seed 0]

A mosaic of the Sun-Hays 80 scenes (about 1024x768 each), each scaled by a random
factor in [1, 2] so that edges, textures and smooth skies come at several scales,
laid in rows with offsets so that photo borders do not line up with tile borders.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "train" / "sun80"


def mosaic(width: int, height: int, seed: int = 0, source: Path = SOURCE) -> Image.Image:
    files = sorted(source.glob("*.jpg"))
    if not files:
        raise SystemExit(f"no photos under {source}")
    rng = np.random.default_rng(seed)
    canvas = Image.new("RGB", (width, height))
    y = -int(rng.integers(0, 300))
    while y < height:
        row_height = int(rng.integers(600, 1400))
        x = -int(rng.integers(0, 400))
        while x < width:
            with Image.open(files[int(rng.integers(len(files)))]) as photo:
                photo = photo.convert("RGB")
                scale = row_height / photo.height
                w = max(1, round(photo.width * scale))
                canvas.paste(photo.resize((w, row_height), Image.Resampling.LANCZOS), (x, y))
            x += w
        y += row_height
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("width", type=int)
    parser.add_argument("height", type=int)
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    Image.MAX_IMAGE_PIXELS = None
    mosaic(args.width, args.height, args.seed).save(args.out)


if __name__ == "__main__":
    main()
