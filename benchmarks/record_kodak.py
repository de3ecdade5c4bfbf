"""Write a bench run's per-layer Kodak figures into the shipped weights' manifests.

    progcodec bench ../shared/data/kodak -o out/ --model vam --model progdtd
    python benchmarks/record_kodak.py out/results.json

Only entries named ``progcodec-NAME`` whose weights are in ``weights/`` are
recorded, with the sha256 of the file they were measured with.
"""

import argparse
import json
from pathlib import Path

from progcodec.weights import atomic_write_bytes, resolve_weights, sha256_of


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--images", type=int, default=24, help="How many Kodak images the run covered.")
    args = parser.parse_args()
    for entry in json.loads(args.results.read_text()):
        if not entry["name"].startswith("progcodec-"):
            continue
        path = resolve_weights(entry["name"].removeprefix("progcodec-"))
        manifest_path = path.with_suffix(".json")
        if not manifest_path.exists():
            continue
        manifest = json.loads(manifest_path.read_text())
        if manifest["sha256"] != sha256_of(path):
            raise SystemExit(f"{path} changed since its manifest was written")
        results = entry["results"]
        manifest["kodak"] = {
            "images": args.images,
            "weights_sha256": manifest["sha256"],
            "bpp": [round(v, 4) for v in results["bpp"]],
            "psnr-rgb": [round(v, 3) for v in results["psnr-rgb"]],
            "ms-ssim": [round(v, 5) for v in results["ms-ssim"]],
            "bpp_note": "file bytes x 8 / pixels, header included, per layer prefix",
        }
        atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
        print(f"recorded {entry['name']} in {manifest_path}")


if __name__ == "__main__":
    main()
