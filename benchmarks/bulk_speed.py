"""Bulk encode throughput: a shell loop of `progcodec encode` against folder mode, local and Dask.

    python benchmarks/bulk_speed.py ../shared/data/kodak [-o benchmarks/results/bulk]

Each way encodes every image of the folder into a fresh temporary folder, timed
from the command's start to its end (start-up, model loads and, for Dask, the
LocalCluster's start included: what a user waits for):

- ``loop``: one ``progcodec encode IMG -o OUT`` process per image, as a shell loop would;
- ``jobs1`` / ``jobs2``: ``progcodec encode DIR -o OUT --jobs N``;
- ``dask2``: ``progcodec encode DIR -o OUT --engine dask --jobs 2`` (a LocalCluster of 2 workers).

All ways must write the same bytes; the script checks that, then writes
results.json with images/s per way.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WAYS = {
    "jobs1": ["--jobs", "1"],
    "jobs2": ["--jobs", "2"],
    "dask2": ["--engine", "dask", "--jobs", "2"],
}


def encode_loop(images: list[Path], out: Path) -> None:
    out.mkdir()
    for image in images:
        subprocess.run(["progcodec", "encode", str(image), "-o", str(out / (image.stem + ".pgc")), "-q"], check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("benchmarks/results/bulk"))
    args = parser.parse_args(argv)
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() == ".png")
    results = {"images": len(images), "ways": {}}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for image in images:
            shutil.copy(image, src / image.name)
        outputs = {}
        for way in ["loop", *WAYS]:
            out = Path(tmp) / way
            started = time.perf_counter()
            if way == "loop":
                encode_loop(images, out)
            else:
                subprocess.run(["progcodec", "encode", str(src), "-o", str(out), "-q", *WAYS[way]], check=True)
            seconds = time.perf_counter() - started
            outputs[way] = {p.name: p.read_bytes() for p in sorted(out.glob("*.pgc"))}
            results["ways"][way] = {"seconds": seconds, "images_per_s": len(images) / seconds}
            print(f"{way:6s} {seconds:7.1f} s  {len(images) / seconds:.2f} images/s", flush=True)
        reference = outputs["loop"]
        results["same_bytes"] = all(o == reference for o in outputs.values()) and len(reference) == len(images)
        print("same bytes from every way:", results["same_bytes"])
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps(results, indent=1))
    return 0 if results["same_bytes"] else 1


if __name__ == "__main__":
    sys.exit(main())
