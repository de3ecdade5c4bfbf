"""The shipped model's own results folder from a ship bench (``progcodec bench`` of the shipped
weights against candidates, baselines included), as each ship folder keeps it.

    python scripts/ship_results.py BENCH_DIR OUT_DIR --winner progcodec-vam-3 [--as progcodec-vam]

Copies ``results.json``, ``bd_rate.json`` and ``rd.png`` of BENCH_DIR to OUT_DIR, and writes
``OUT_DIR/vam/`` (the name given by ``--as`` without its ``progcodec-`` prefix): the winner's
entry renamed to ``--as`` beside every entry that is not ours (the baselines), with its BD-rates
against them. ``benchmarks/record_kodak.py`` and ``benchmarks/learning_curve.py`` read that folder.
Prints each of our entries' BD-rate against the first one (the weights shipped before) and
against layered JPEG 2000, and the per-layer changes against the first entry.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from progcodec.bench.report import bd_rate, bd_rates, write_results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path, help="the bench's output folder (results.json)")
    ap.add_argument("out", type=Path, help="the ship folder to write")
    ap.add_argument("--winner", required=True, help="the entry to ship, by its name in results.json")
    ap.add_argument("--as", dest="rename", default="progcodec-vam", help="its name in the model's own folder")
    args = ap.parse_args()

    entries = json.loads((args.bench / "results.json").read_text())
    by_name = {e["name"]: e for e in entries}
    if args.winner not in by_name:
        raise SystemExit(f"no entry {args.winner!r} in {args.bench / 'results.json'}: {sorted(by_name)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("results.json", "bd_rate.json", "rd.png"):
        if (args.bench / name).exists():
            shutil.copy2(args.bench / name, args.out / name)

    ours = [e for e in entries if e["name"].startswith("progcodec")]
    others = [e for e in entries if not e["name"].startswith("progcodec")]
    model_dir = args.out / args.rename.removeprefix("progcodec-")
    model_dir.mkdir(exist_ok=True)
    winner = {**by_name[args.winner], "name": args.rename}
    write_results([winner, *others], model_dir / "results.json")
    write_results(bd_rates([winner, *others]), model_dir / "bd_rate.json")

    first = ours[0]
    jpeg2000 = next((e for e in others if e["name"] == "jpeg2000"), None)
    for entry in ours:
        against_first = bd_rate(first, entry)["bd_rate"] if entry is not first else 0.0
        against_j2k = bd_rate(jpeg2000, entry)["bd_rate"] if jpeg2000 else None
        print(f"{entry['name']}: BD vs {first['name']} {against_first:+.2f} %"
              + (f", vs jpeg2000 {against_j2k:+.2f} %" if against_j2k is not None else ""))
        if entry is not first:
            a, b = first["results"], entry["results"]
            steps = [f"{100 * (rb / ra - 1):+.2f}/{pb - pa:+.3f}"
                     for ra, rb, pa, pb in zip(a["bpp"], b["bpp"], a["psnr-rgb"], b["psnr-rgb"])]
            print("  per layer (bpp % / dB): " + ", ".join(steps))


if __name__ == "__main__":
    main()
