"""Held-out figures of weights files, as training's validation computes them: the cheap check
before a Kodak bench.

    python scripts/heldout.py ../shared/data/train weights/vam.safetensors runs/a/vam.safetensors ...

The training folder's held-out slice (every 50th photo, never trained on), 32 centre crops of
256x256, float32, estimated bpp (from likelihoods, not a bitstream) and PSNR at the base and the
full operating points: the numbers a run's manifest records at its end, so weights from different
runs (and soups, which have none) compare on the same crops. About a minute a file on 2 cores.
A candidate that is not ahead here by a clear margin is not worth the bench.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from progcodec.train.integer_params import calibration_crops
from progcodec.train.loop import validate
from progcodec.weights import load_model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="the training folder (its held-out slice is used)")
    ap.add_argument("weights", type=Path, nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    crops = calibration_crops([args.data])       # the held-out centres training validates on
    for path in args.weights:
        model = load_model(str(path))
        result = {k: round(v, 4) for k, v in validate(model, crops).items()}
        print(json.dumps({"weights": str(path), **result}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
