"""What a bench run leaves behind: results.json, rd.png, layers.png, BD-rates, rich tables.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global
backend switch). Tables are returned as rich renderables; the CLI prints them.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np

from ..weights import atomic_write_bytes
from ..metrics import ms_ssim_db


# -- results.json ---------------------------------------------------------------
def _jsonable(value):
    """NaN/inf are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def write_results(entries: list[dict], path) -> Path:
    """A JSON list of CompressAI-format entries {"name", "description", "results": {...}}."""
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(_jsonable(entries), indent=2) + "\n").encode())
    return path


# -- BD-rate --------------------------------------------------------------------
def _curve(entry: dict):
    """(rates, psnrs) with positive finite rates, sorted by PSNR, PSNR strictly increasing."""
    res = entry["results"]
    pts = sorted((p, r) for r, p in zip(res.get("bpp", []), res.get("psnr-rgb", []))
                 if r is not None and p is not None and math.isfinite(r) and math.isfinite(p) and r > 0)
    rates, psnrs = [], []
    for p, r in pts:
        if not psnrs or p > psnrs[-1]:
            psnrs.append(p)
            rates.append(r)
    return np.array(rates), np.array(psnrs)


def bd_rate(anchor: dict, test: dict) -> dict:
    """BD-rate (PSNR, pchip; the ``bjontegaard`` package) of ``test`` against ``anchor``.

    Negative means ``test`` needs fewer bits for the same PSNR. Returns
    {"anchor", "test", "bd_rate" (percent or None), "overlap" (share of the
    joint PSNR range both cover), "reason" (why None)}.
    """
    import bjontegaard as bd

    out = {"anchor": anchor["name"], "test": test["name"], "bd_rate": None, "overlap": 0.0, "reason": None}
    r1, p1 = _curve(anchor)
    r2, p2 = _curve(test)
    if len(p1) < 2 or len(p2) < 2:
        out["reason"] = "fewer than 2 usable points"
        return out
    lo, hi = max(p1.min(), p2.min()), min(p1.max(), p2.max())
    span = max(p1.max(), p2.max()) - min(p1.min(), p2.min())
    out["overlap"] = float(max(hi - lo, 0.0) / span) if span > 0 else 0.0
    if hi <= lo:
        out["reason"] = "PSNR ranges do not overlap"
        return out
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(bd.bd_rate(r1, p1, r2, p2, method="pchip", require_matching_points=False, min_overlap=0))
    except (ValueError, ZeroDivisionError, AssertionError, FloatingPointError) as e:
        out["reason"] = f"BD-rate failed: {e}"
        return out
    if not math.isfinite(value):
        out["reason"] = "BD-rate is not finite"
        return out
    out["bd_rate"] = value
    return out


def bd_rates(entries: list[dict]) -> list[dict]:
    """BD-rate of each of our entries (name ``progcodec...``) against every other
    codec, and against each of our entries listed before it."""
    ours = [e for e in entries if e["name"].startswith("progcodec")]
    others = [e for e in entries if not e["name"].startswith("progcodec")]
    return [bd_rate(anchor, test) for i, test in enumerate(ours) for anchor in ours[:i] + others]


def format_bd(row: dict) -> str:
    if row["bd_rate"] is None:
        return "n/a"
    text = f"{row['bd_rate']:+.1f} %"
    return text if row["overlap"] >= 0.75 else f"{text} (overlap {row['overlap']:.0%})"


# -- figures --------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


# Fixed colours, so that figures from different runs read the same way.
BASELINE_COLOURS = {"jpeg": "tab:orange", "jpeg2000": "tab:green", "webp": "tab:red", "avif": "tab:purple",
                    "jxl": "tab:brown"}
OUR_COLOURS = ("tab:blue", "tab:cyan", "tab:pink", "tab:olive", "tab:gray", "navy")


def _style(name: str, ours_index: int) -> dict:
    if name.startswith("progcodec"):
        return {"linestyle": "-", "marker": "o", "linewidth": 2.2, "markersize": 5, "zorder": 3,
                "color": OUR_COLOURS[ours_index % len(OUR_COLOURS)]}
    if "published" in name:
        return {"linestyle": ":", "marker": "^", "linewidth": 1.6, "markersize": 4, "color": "black", "zorder": 2}
    return {"linestyle": "--", "marker": "s", "linewidth": 1.2, "markersize": 3.5, "zorder": 1,
            "color": BASELINE_COLOURS.get(name)}


def _finite_xy(xs, ys):
    pairs = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None
             and math.isfinite(x) and math.isfinite(y)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_rd(entries: list[dict], path, title: str = "") -> Path:
    """PSNR-RGB vs bpp and MS-SSIM (dB) vs bpp of every entry, one figure, two panels."""
    fig = _figure(13, 5.2)
    ax_psnr, ax_ssim = fig.subplots(1, 2)
    ours = 0
    for entry in entries:
        res = entry["results"]
        style = _style(entry["name"], ours)
        ours += entry["name"].startswith("progcodec")
        x, y = _finite_xy(res.get("bpp", []), res.get("psnr-rgb", []))
        if x:
            ax_psnr.plot(x, y, label=entry["name"], **style)
        if res.get("ms-ssim"):
            db = [ms_ssim_db(v) if v is not None and math.isfinite(v) else None for v in res["ms-ssim"]]
            x, y = _finite_xy(res["bpp"], db)
            if x:
                ax_ssim.plot(x, y, label=entry["name"], **style)
    ax_psnr.set(xlabel="bits per pixel", ylabel="PSNR-RGB (dB)", title="PSNR vs rate")
    ax_ssim.set(xlabel="bits per pixel", ylabel="MS-SSIM (dB) = -10 log10(1 - MS-SSIM)", title="MS-SSIM vs rate")
    for ax in (ax_psnr, ax_ssim):
        ax.grid(True, alpha=0.3)
        ax.set_xlim(left=0)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_layers(preview, path, max_columns: int = 4) -> Path:
    """One image decoded at every layer, side by side (wrapping), each labelled with bpp and PSNR."""
    panels = [(layer["image"], f"layer {layer['layer']}: {layer['bpp']:.3f} bpp, {layer['psnr-rgb']:.2f} dB")
              for layer in preview.layers]
    panels.append((preview.original, "original"))
    cols = min(max_columns, len(panels))
    rows = -(-len(panels) // cols)
    w, h = preview.original.size
    panel_w = 4.0
    panel_h = panel_w * h / w + 0.35
    fig = _figure(cols * panel_w, rows * panel_h + 0.4)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (image, label) in zip(axes, panels):
        ax.imshow(np.asarray(image), interpolation="lanczos" if w > 400 else "nearest")
        ax.set_title(label, fontsize=9)
    fig.suptitle(f"{preview.entry}: {preview.image} decoded from each prefix of its layers")
    fig.savefig(path, dpi=110)
    return Path(path)


def write_report(result, outdir) -> dict:
    """results.json, bd_rate.json, rd.png and layers.png (first model; others: layers-NAME.png) in ``outdir``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {"results": write_results(result.entries, outdir / "results.json")}
    bd = bd_rates(result.entries)
    atomic_write_bytes(outdir / "bd_rate.json", (json.dumps(_jsonable(bd), indent=2) + "\n").encode())
    paths["bd_rate"] = outdir / "bd_rate.json"
    n = len(result.images)
    paths["rd"] = plot_rd(result.entries, outdir / "rd.png", title=f"{n} image{'s' if n != 1 else ''}")
    for i, preview in enumerate(result.previews):
        key = "layers" if i == 0 else f"layers-{preview.entry}"
        paths[key] = plot_layers(preview, outdir / f"{key}.png")
    return {"paths": paths, "bd_rate": bd}


# -- rich tables ----------------------------------------------------------------
def _num(value, fmt: str) -> str:
    return "–" if value is None or not math.isfinite(value) else format(value, fmt)


def codec_table(entry: dict):
    from rich.table import Table

    res = entry["results"]
    ours = entry["name"].startswith("progcodec")
    table = Table(title=entry["name"], title_justify="left", caption_justify="left")
    table.add_column("layer" if ours else "point", justify="right")
    for label in ("bpp", "PSNR (dB)", "MS-SSIM", "MS-SSIM (dB)", "enc (s)", "dec (s)"):
        table.add_column(label, justify="right")
    n = len(res.get("bpp", []))
    cols = {key: res.get(key) or [None] * n for key in ("bpp", "psnr-rgb", "ms-ssim", "encoding_time",
                                                          "decoding_time")}
    for i in range(n):
        ssim = cols["ms-ssim"][i]
        ssim_db = ms_ssim_db(ssim) if ssim is not None and math.isfinite(ssim) else None
        table.add_row(str(i + 1), _num(cols["bpp"][i], ".4f"), _num(cols["psnr-rgb"][i], ".2f"),
                      _num(ssim, ".4f"), _num(ssim_db, ".2f"),
                      _num(cols["encoding_time"][i], ".3f"), _num(cols["decoding_time"][i], ".3f"))
    return table


def bd_table(bd: list[dict]):
    """Rows: our entries; columns: anchors; cells: BD-rate in percent or n/a."""
    from rich.table import Table

    anchors = list(dict.fromkeys(row["anchor"] for row in bd))
    tests = list(dict.fromkeys(row["test"] for row in bd))
    table = Table(title="BD-rate (PSNR-RGB, pchip) against each anchor; negative = fewer bits",
                  title_justify="left")
    table.add_column("codec")
    for anchor in anchors:
        table.add_column(anchor, justify="right")
    cells = {(row["test"], row["anchor"]): format_bd(row) for row in bd}
    for test in tests:
        table.add_row(test, *(cells.get((test, a), "n/a") for a in anchors))
    return table
