"""Kodak BD-rate against layered JPEG 2000 versus cumulative CPU training hours (issue 13).

    python benchmarks/learning_curve.py BENCH_DIR WEIGHTS... [--curve benchmarks/results/learning_curve.json]

For each weights file, the cumulative steps and training wall time come from its
manifest (the chain of ``previous`` runs), the BD-rate from BENCH_DIR/bd_rate.json
(entry ``progcodec-STEM`` against ``jpeg2000``, all from one ``progcodec bench``
run). The points are merged into the curve file (one per weights sha256) and
plotted beside it as learning_curve.png, with a fit per model of
BD(steps) = A + B * (steps / 10^4)^-k (least squares, k on a grid): A is where the
recipe of those runs is heading, the asymptote printed and drawn dashed. Points of a later
recipe (``--recipe``) are starred and left out of the fit.
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


def power_law_fit(steps, bd) -> dict | None:
    """Least-squares A + B * (steps / 1e4)^-k over k in [0.1, 4]; None with fewer than 4 points."""
    import numpy as np

    if len(steps) < 4:
        return None
    x, y = np.asarray(steps, float) / 1e4, np.asarray(bd, float)
    best = None
    for k in np.arange(0.1, 4.0001, 0.01):
        design = np.stack([np.ones_like(x), x ** -k], 1)
        (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
        err = float(np.sum((design @ [a, b] - y) ** 2))
        if best is None or err < best["sse"]:
            best = {"asymptote": float(a), "scale": float(b), "exponent": round(float(k), 2), "sse": err}
    best["rms"] = (best.pop("sse") / len(x)) ** 0.5
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench_dir", type=Path)
    ap.add_argument("weights", type=Path, nargs="+")
    ap.add_argument("--curve", type=Path, default=Path("benchmarks/results/learning_curve.json"))
    ap.add_argument("--recipe", default=None, help="the new points' recipe, when it is not the first one "
                                                     "(the fit is over the points without one)")
    ap.add_argument("--bench-name", default=None, help="the bench folder to record (default: BENCH_DIR)")
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
                 "bench": args.bench_name or str(args.bench_dir)}
        if args.recipe:
            point["recipe"] = args.recipe
        curve = [p for p in curve if p["sha256"] != point["sha256"]] + [point]
        print(point)
    curve.sort(key=lambda p: (p["model"], p["cpu_hours"]))
    args.curve.parent.mkdir(parents=True, exist_ok=True)
    args.curve.write_text(json.dumps(curve, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4))
    for model in sorted({p["model"] for p in curve}):
        points = [p for p in curve if p["model"] == model]
        line, = ax.plot([p["cpu_hours"] for p in points], [p["bd_rate_vs_jpeg2000"] for p in points], "o-",
                        label=model)
        first = [p for p in points if "recipe" not in p]
        fit = power_law_fit([p["steps"] for p in first], [p["bd_rate_vs_jpeg2000"] for p in first])
        if fit:
            print(f"{model}: BD = {fit['asymptote']:+.1f} % + {fit['scale']:.1f} * (steps/1e4)^-{fit['exponent']} "
                  f"(rms {fit['rms']:.2f} points)")
            steps = np.linspace(first[0]["steps"], 3 * first[-1]["steps"], 50)
            hours = np.interp(steps, [p["steps"] for p in first], [p["cpu_hours"] for p in first])
            per_step = first[-1]["cpu_hours"] / first[-1]["steps"]       # beyond: the mean CPU time a step
            hours = np.where(steps > first[-1]["steps"], first[-1]["cpu_hours"]
                             + (steps - first[-1]["steps"]) * per_step, hours)
            ax.plot(hours, fit["asymptote"] + fit["scale"] * (steps / 1e4) ** -fit["exponent"], "--",
                    color=line.get_color(), lw=0.8, label=f"{model} fit: asymptote {fit['asymptote']:+.0f} %")
        for p in points:
            if "recipe" in p:
                ax.plot([p["cpu_hours"]], [p["bd_rate_vs_jpeg2000"]], "*", ms=12, color=line.get_color())
            label = f"{p['steps']} steps" + (f" ({p['recipe']})" if "recipe" in p else "")
            ax.annotate(label, (p["cpu_hours"], p["bd_rate_vs_jpeg2000"]), fontsize=7,
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
