#!/usr/bin/env bash
# Build the wheel, install it outside the source tree, and round-trip an image from another
# folder: the installed package must find its own weights (no checkout, no PROGCODEC_WEIGHTS).
# Uses the current environment's dependencies (torch, compressai...).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rm -rf "$repo/build"   # setuptools builds in the tree: never package a stale copy
python -m pip wheel --no-deps --no-build-isolation -q -w "$work/dist" "$repo"
rm -rf "$repo/build"
wheel="$(ls "$work"/dist/progcodec-*.whl)"
echo "wheel: $(basename "$wheel") $(du -m "$wheel" | cut -f1) MiB"
python -m pip install -q --no-deps --target "$work/site" "$wheel"
cd "$work"
env -u PROGCODEC_WEIGHTS PYTHONPATH="$work/site" python - <<'PY'
import os, sys, progcodec, numpy as np
from PIL import Image
assert progcodec.__file__.startswith(os.getcwd()), progcodec.__file__   # the installed copy, not the checkout
from progcodec.weights import shipped_weights_dir
assert "shipped_weights" in str(shipped_weights_dir()), shipped_weights_dir()
im = Image.fromarray((np.indices((64, 96)).sum(0) % 256).astype(np.uint8)).convert("RGB")
data = progcodec.encode(im)
assert progcodec.decode(data).size == (96, 64) and progcodec.decode(data, layers=1).size == (96, 64)
print(f"wheel round trip from {os.getcwd()}: {len(data)} B, {len(progcodec.info(data)['layers'])} layers: ok")
PY
