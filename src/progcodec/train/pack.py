r"""A compact copy of a training set, for a machine the whole set cannot travel to.

    DATA_DIR... --(hold-out split)--> training files --> PER_IMAGE random crops, JPEG --> OUT/train/
                                  \-> held-out files --> one centre crop, PNG       --> OUT/val/

The held-out split is the one ``progcodec train`` uses, so training on
``OUT/train`` with ``--val OUT/val`` keeps the same images apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .data import center_crop, find_images, load_rgb_array, random_crop, split_holdout


def pack_crops(folders, out_dir, crop: int = 256, per_image: int = 1, quality: int = 95,
               seed: int = 0, on_progress=None) -> dict:
    """Write the crops; returns how many went where and their total bytes."""
    if crop < 64 or per_image < 1 or not 1 <= quality <= 100:
        raise ValueError("need crop >= 64, per_image >= 1 and 1 <= quality <= 100")
    train_files, held_out = split_holdout(find_images(folders))
    if not train_files:
        raise ValueError("no training images found")
    out_dir = Path(out_dir)
    (out_dir / "train").mkdir(parents=True, exist_ok=True)
    (out_dir / "val").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    total = len(train_files) + len(held_out)
    written = {"train": 0, "val": 0, "bytes": 0}
    # Files are numbered, not named after their source: names repeat across data sets.
    for i, path in enumerate(train_files):
        im = load_rgb_array(path, crop)
        for k in range(per_image):
            target = out_dir / "train" / f"{i:05d}-{k}.jpg"
            Image.fromarray(random_crop(im, crop, rng)).save(target, quality=quality)
            written["train"] += 1
            written["bytes"] += target.stat().st_size
        if on_progress:
            on_progress(i + 1, total)
    for j, path in enumerate(held_out):
        target = out_dir / "val" / f"{j:05d}.png"  # lossless: validation measures the codec, not JPEG
        Image.fromarray(center_crop(load_rgb_array(path, crop), crop)).save(target)
        written["val"] += 1
        written["bytes"] += target.stat().st_size
        if on_progress:
            on_progress(len(train_files) + j + 1, total)
    return written
