"""Rate targets on real images: how close each layer lands, and what the search costs.

    python benchmarks/rate_targets.py ../shared/data/kodak [--model vam --bpp 0.1,0.25,0.5,1.0]
        [--model progdtd --bpp 0.1,0.25,0.5] [-o benchmarks/results/rate_targets]

For each model and image: ``progcodec.encode(image, bpp=TARGETS)`` and a plain
``encode`` of the same image, both timed (the model loaded and warmed up
first); the achieved cumulative bpp of every layer (real file bytes, header
included), its deviation from the target in bytes and in per cent, and
whether it is within the promised max(3 %, 256 bytes). A target the image
cannot meet (below its first layer, beyond its whole file) is recorded as the
error message the user would see. Writes results.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")

from PIL import Image  # noqa: E402

import progcodec  # noqa: E402
from progcodec.errors import ProgcodecError  # noqa: E402


def measure(model: str, targets: list[float], paths: list[Path]) -> dict:
    net = progcodec.api.get_model(model, "cpu")
    rows = []
    progcodec.encode(Image.open(paths[0]).convert("RGB"), model=net)      # warm-up
    for path in paths:
        im = Image.open(path).convert("RGB")
        pixels = im.width * im.height
        t0 = time.perf_counter()
        progcodec.encode(im, model=net)
        plain_s = time.perf_counter() - t0
        row = {"image": path.name, "plain_encode_s": plain_s}
        try:
            t0 = time.perf_counter()
            data = progcodec.encode(im, model=net, bpp=targets)
            row["targets_encode_s"] = time.perf_counter() - t0
        except ProgcodecError as e:
            row["error"] = str(e)
            rows.append(row)
            continue
        layers = progcodec.info(data)["layers"]
        row["layers"] = []
        for layer, target in zip(layers[len(layers) - len(targets):], targets):
            target_bytes = target * pixels / 8
            got = layer["cumulative_bytes"]
            row["layers"].append({
                "target_bpp": target, "bpp": layer["bpp"], "deviation_bytes": got - target_bytes,
                "deviation_pct": 100 * (got - target_bytes) / target_bytes,
                "within_tolerance": abs(got - target_bytes) <= max(0.03 * target_bytes, 256),
            })
        rows.append(row)
    met = [r for r in rows if "layers" in r]
    deviations = [abs(x["deviation_pct"]) for r in met for x in r["layers"]]
    return {
        "model": model, "weights": net.weights_digest.hex(), "targets_bpp": targets, "images": rows,
        "summary": {
            "images": len(rows), "met": len(met), "refused": len(rows) - len(met),
            "max_abs_deviation_pct": max(deviations) if deviations else None,
            "max_abs_deviation_bytes": max((abs(x["deviation_bytes"]) for r in met for x in r["layers"]), default=None),
            "all_within_tolerance": all(x["within_tolerance"] for r in met for x in r["layers"]),
            "median_plain_encode_s": statistics.median(r["plain_encode_s"] for r in rows),
            "median_targets_encode_s": statistics.median(r["targets_encode_s"] for r in met) if met else None,
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path)
    parser.add_argument("--model", action="append", help="model name or weights path (repeat, each with --bpp)")
    parser.add_argument("--bpp", action="append", help="comma-separated targets for the --model before it")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("-o", "--output", type=Path, default=Path("benchmarks/results/rate_targets"))
    args = parser.parse_args(argv)
    models = args.model or ["vam", "progdtd"]
    targets = args.bpp or ["0.1,0.25,0.5,1.0", "0.1,0.25,0.5"]
    if len(targets) != len(models):
        parser.error("give one --bpp list for each --model")
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})[:args.limit]
    results = []
    for model, bpp in zip(models, targets):
        result = measure(model, [float(v) for v in bpp.split(",")], paths)
        s = result["summary"]
        line = f"{model} --bpp {bpp}: {s['met']}/{s['images']} images met (refused: {s['refused']})"
        if s["met"]:
            line += (f", max |deviation| {s['max_abs_deviation_pct']:.2f} % / {s['max_abs_deviation_bytes']:.0f} B, "
                     f"all within tolerance: {s['all_within_tolerance']}, encode {s['median_targets_encode_s']:.2f} s "
                     f"against {s['median_plain_encode_s']:.2f} s plain (median)")
        print(line)
        for r in result["images"]:
            if "error" in r:
                print(f"  {r['image']}: {r['error']}")
        results.append(result)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
