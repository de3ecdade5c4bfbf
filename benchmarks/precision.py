"""What bf16 transforms cost in quality while coding (the API's and CLI's ``precision``).

    python benchmarks/precision.py ../shared/data/kodak [--model vam] [--limit N] [-o out.json]

Each image is encoded with the weights' trained ladder twice, with a float32 and with a
bf16 analysis transform; every layer of each file is decoded (``iter_decode``) with a
float32 and with a bf16 synthesis. Per layer, over the images: mean bpp (file bytes) and
mean PSNR-RGB of

    fp32/fp32  encoder/decoder in float32 (the default)
    fp32/bf16  a bf16 decoder of a float32 file
    bf16/bf16  both sides in bf16

and the BD-rate of each against fp32/fp32 (``progcodec.bench.report.bd_rate``). Times are
``benchmarks/speed.py --precision``'s business; bf16 pays only on CPUs with native bf16.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")

import numpy as np  # noqa: E402

import progcodec  # noqa: E402
from progcodec import metrics  # noqa: E402
from progcodec.bench.report import bd_rate  # noqa: E402
from progcodec.bench.runner import list_images  # noqa: E402
from progcodec.image import load_image  # noqa: E402

PAIRS = (("fp32", "fp32"), ("fp32", "bf16"), ("bf16", "bf16"))


def measure_image(path: Path, model: str) -> dict:
    im = load_image(path)
    pixels = im.width * im.height
    out = {}
    files = {p: progcodec.encode(im, model=model, ladder="trained", precision=p) for p in ("fp32", "bf16")}
    for enc, dec in PAIRS:
        data = files[enc]
        ends = [layer["cumulative_bytes"] for layer in progcodec.info(data)["layers"]]
        out[f"{enc}/{dec}"] = {
            "bpp": [8 * b / pixels for b in ends],
            "psnr": [metrics.psnr_rgb(im, picture) for _, picture in progcodec.iter_decode(data, precision=dec)],
        }
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", default="vam", help="a registered name or a .safetensors file")
    parser.add_argument("--limit", type=int, default=None, help="the first N images only")
    parser.add_argument("-o", "--output", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    paths = list_images(args.folder, args.limit)
    progcodec.keep_freed_memory()
    per_image = {}
    for i, path in enumerate(paths, 1):
        per_image[path.name] = measure_image(path, args.model)
        print(f"{i}/{len(paths)} {path.name}", file=sys.stderr, flush=True)
    pairs = {}
    for pair in per_image[paths[0].name]:
        bpp = np.mean([r[pair]["bpp"] for r in per_image.values()], axis=0)
        psnr = np.mean([r[pair]["psnr"] for r in per_image.values()], axis=0)
        pairs[pair] = {"name": f"progcodec {pair}", "results": {"bpp": bpp.tolist(), "psnr-rgb": psnr.tolist()}}
    anchor = pairs["fp32/fp32"]
    report = {"images": len(paths), "model": args.model, "pairs": pairs, "per_image": per_image,
              "bd_rate_vs_fp32": {k: bd_rate(anchor, v)["bd_rate"] for k, v in pairs.items() if k != "fp32/fp32"}}
    for pair, entry in pairs.items():
        layers = zip(entry["results"]["bpp"], entry["results"]["psnr-rgb"])
        print(f"{pair}: " + ", ".join(f"{b:.3f}/{p:.2f}" for b, p in layers))
        if pair in report["bd_rate_vs_fp32"]:
            print(f"  BD-rate against fp32/fp32: {report['bd_rate_vs_fp32'][pair]:+.3f} %")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
