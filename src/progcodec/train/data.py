"""Random crops from folders of photos, held in memory as uint8 arrays."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..image import IMAGE_SUFFIXES



def find_images(folders) -> list[Path]:
    """Every image file below the folders, sorted; Kodak is refused."""
    files = []
    for folder in folders:
        folder = Path(folder)
        if "kodak" in str(folder.resolve()).lower():
            raise ValueError(f"{folder}: never train on Kodak, it is the evaluation set")
        if folder.is_file():
            files.append(folder)
        else:
            files.extend(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(set(files))


def split_holdout(files: list[Path], every: int = 50) -> tuple[list[Path], list[Path]]:
    """A deterministic 1-in-``every`` slice set aside for validation (by name hash)."""
    def held(p: Path) -> bool:
        return int(hashlib.sha1(p.name.encode()).hexdigest(), 16) % every == 0
    return [p for p in files if not held(p)], [p for p in files if held(p)]


def load_rgb_array(path: Path, min_side: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        if min(im.size) < min_side:  # upscale the rare tiny image so a crop fits
            s = min_side / min(im.size)
            im = im.resize((max(min_side, round(im.width * s)), max(min_side, round(im.height * s))),
                           Image.BICUBIC)
        return np.asarray(im, dtype=np.uint8).copy()


class RandomCrops:
    """Batches of random ``crop``-pixel crops with random flips, as float tensors in [0, 1]."""

    def __init__(self, files: list[Path], crop: int, seed: int = 0, on_load=None):
        if not files:
            raise ValueError("no training images found")
        self.crop = crop
        self.images = []
        for i, f in enumerate(files):
            self.images.append(load_rgb_array(f, crop))
            if on_load:
                on_load(i + 1, len(files))
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        c = self.crop
        out = np.empty((size, c, c, 3), dtype=np.uint8)
        for k, i in enumerate(self.rng.integers(len(self.images), size=size)):
            patch = random_crop(self.images[i], c, self.rng)
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            if self.rng.random() < 0.5:
                patch = patch[::-1]
            out[k] = patch
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255)


def random_crop(im: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    top = rng.integers(im.shape[0] - crop + 1)
    left = rng.integers(im.shape[1] - crop + 1)
    return im[top:top + crop, left:left + crop]


def center_crop(im: np.ndarray, crop: int) -> np.ndarray:
    top, left = (im.shape[0] - crop) // 2, (im.shape[1] - crop) // 2
    return im[top:top + crop, left:left + crop]


def center_crops(files: list[Path], crop: int, limit: int = 32) -> torch.Tensor:
    """Fixed validation batch: the centre ``crop`` of up to ``limit`` images."""
    crops = []
    for f in files[:limit]:
        crops.append(center_crop(load_rgb_array(f, crop), crop))
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255)
