"""Giving trained weights their integer parameter path (coding/integer_path.py).

The integer networks are made from the float weights and the activation ranges of a
few calibration crops: the centres of the training set's held-out images (never
Kodak), the same crops training validates on. Calibration only measures ranges: the
integer path approximates the float64 one on any image, and is exact (the same bits on
every machine) whatever it was calibrated on. Training does this when it exports;
``progcodec weights integerize`` does it for weights trained before.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..weights import load_model, save_weights
from .data import center_crops, find_images, split_holdout

CALIBRATION_CROP = 256
CALIBRATION_IMAGES = 32


def calibration_crops(data, crop: int = CALIBRATION_CROP, limit: int = CALIBRATION_IMAGES):
    """(N, 3, crop, crop) float tensor: the centres of the held-out images under ``data`` (of the
    first images, for a folder too small to hold any out)."""
    train_files, held_out = split_holdout(find_images(data))
    if not (held_out or train_files):
        raise ValueError(f"no images to calibrate on under {', '.join(map(str, data))}")
    return center_crops(held_out or train_files, crop, limit)


def integerize(model, crops) -> dict:
    """Give ``model`` its integer parameter path; returns what the manifest records of it."""
    if not hasattr(model, "calibrate_integer_params"):
        raise ValueError(f"{model.name} has no integer parameter path")
    model.update(force=True)      # the CDF tables that code z, as exported
    model.calibrate_integer_params([c[None] for c in crops])
    return {"calibration_crops": int(crops.shape[0]), "calibration_crop": int(crops.shape[-1])}


def integerize_weights(weights: Path, data, out: Path) -> dict:
    """Exported ``weights`` plus their integer parameter path, written to ``out``: a new release
    (new id) whose float weights are the same; files written with it are format version 9."""
    weights = Path(weights)
    manifest = json.loads(weights.with_suffix(".json").read_text())
    model = load_model(str(weights))
    record = integerize(model, calibration_crops(data))
    training = dict(manifest.get("training") or {})
    training["integer_params"] = {**record, "data": [str(d) for d in data], "from": manifest["sha256"][:16]}
    return save_weights(model, Path(out), {"training": training})
