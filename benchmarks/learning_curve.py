"""Kodak BD-rate against layered JPEG 2000 versus cumulative CPU training hours (issue 13).

    python benchmarks/learning_curve.py BENCH_DIR WEIGHTS... [--curve benchmarks/results/learning_curve.json]

For each weights file, the cumulative steps and training wall time come from its
manifest (the chain of ``previous`` runs), the BD-rate from BENCH_DIR/bd_rate.json
(entry ``progcodec-STEM`` against ``jpeg2000``, all from one ``progcodec bench``
run). The points are merged into the curve file (one per weights sha256) and
plotted beside it as learning_curve.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def training_totals(manifest: dict) -> tuple[int, float]:
    """(cumulative steps, cumulative training seconds) over the chain of runs."""
    steps, seconds, run = 0, 0.0, manifest.get("training")
    while run:
        steps += int(run.get("steps", 0))
        seconds += float(run.get("wall_time_s", 0.0))
        run = run.get("previous")
    return steps, seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench_dir", type=Path)
    ap.add_argument("weights", type=Path, nargs="+")
    ap.add_argument("--curve", type=Path, default=Path("benchmarks/results/learning_curve.json"))
    args = ap.parse_args(argv)
    bd = json.loads((args.bench_dir / "bd_rate.json").read_text())
    curve = json.loads(args.curve.read_text()) if args.curve.exists() else []
    for path in args.weights:
        manifest = json.loads(path.with_suffix(".json").read_text())
        name = f"progcodec-{path.stem}"
        rows = [r for r in bd if r["test"] == name and r["anchor"] == "jpeg2000"]
        if not rows:
            raise SystemExit(f"{name} against jpeg2000 is not in {args.bench_dir}/bd_rate.json")
        steps, seconds = training_totals(manifest)
        point = {"model": manifest["model"], "sha256": manifest["sha256"], "steps": steps,
                 "cpu_hours": round(seconds / 3600, 3), "bd_rate_vs_jpeg2000": round(rows[0]["bd_rate"], 2),
                 "bench": str(args.bench_dir)}
        curve = [p for p in curve if p["sha256"] != point["sha256"]] + [point]
        print(point)
    curve.sort(key=lambda p: (p["model"], p["cpu_hours"]))
    args.curve.parent.mkdir(parents=True, exist_ok=True)
    args.curve.write_text(json.dumps(curve, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for model in sorted({p["model"] for p in curve}):
        points = [p for p in curve if p["model"] == model]
        ax.plot([p["cpu_hours"] for p in points], [p["bd_rate_vs_jpeg2000"] for p in points], "o-", label=model)
        for p in points:
            ax.annotate(f"{p['steps']} steps", (p["cpu_hours"], p["bd_rate_vs_jpeg2000"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 4))
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xlabel("cumulative CPU training hours (2 cores)")
    ax.set_ylabel("Kodak BD-rate vs layered JPEG 2000 (%)")
    ax.set_title("progcodec: quality per CPU hour")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.curve.with_suffix(".png"), dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
