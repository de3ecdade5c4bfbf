"""The benchmark loop: our models layer by layer, then the Pillow baselines.

``run_bench`` returns plain data (CompressAI-format entries, notes, a preview
of one image at every layer) and never prints; progress goes to ``on_event``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .. import api
from ..device import resolve_device
from ..errors import ProgcodecError
from ..image import IMAGE_SUFFIXES, load_image
from ..models import MODELS
from .. import metrics
from .baselines import ALL_BASELINES, Baseline, LayeredJpeg2000, available_baselines

METRIC_KEYS = ("bpp", "psnr-rgb", "ms-ssim", "encoding_time", "decoding_time")

# CompressAI's published Kodak curve of bmshj2018-hyperprior (MSE models, qualities 1-8).
HYPERPRIOR_REFERENCE = {
    "name": "bmshj2018-hyperprior (published)",
    "description": "CompressAI's published Kodak results for bmshj2018-hyperprior (MSE, qualities 1-8); "
                   "reference only, not measured here",
    "results": {
        "bpp": [0.131, 0.209, 0.320, 0.478, 0.669, 0.939, 1.259, 1.660],
        "psnr-rgb": [27.58, 29.20, 30.97, 32.84, 34.53, 36.74, 38.58, 40.56],
    },
}


@dataclass
class LayerPreview:
    """One image decoded at each layer of one of our models, for layers.png."""
    entry: str                     # e.g. "progcodec-vam"
    image: str                     # file name
    original: Image.Image
    layers: list[dict] = field(default_factory=list)   # {"layer", "bpp", "psnr-rgb", "image"}


@dataclass
class BenchResult:
    entries: list[dict]            # CompressAI results format, ours first, then baselines, then the reference
    notes: list[str]               # skipped baselines, failed sanity checks
    previews: list[LayerPreview]   # one per model of ours
    images: list[str]
    per_image: dict                # entry name -> {image name -> {metric -> [per point]}}

    @property
    def ours(self) -> list[dict]:
        return [e for e in self.entries if e["name"].startswith("progcodec")]


def list_images(directory, limit: int | None = None) -> list[Path]:
    """Image files directly in ``directory`` (sorted by name), the first ``limit`` of them."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ProgcodecError(f"{directory} is not a folder")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if limit is not None:
        if limit < 1:
            raise ProgcodecError(f"--limit must be at least 1, got {limit}")
        files = files[:limit]
    if not files:
        raise ProgcodecError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {directory}")
    return files


def entry_name(model: str) -> str:
    """``progcodec-NAME`` for a registered model, ``progcodec-STEM`` for a weights file."""
    return f"progcodec-{model if model in MODELS else Path(model).stem}"


def _unique(names: list[str]) -> list[str]:
    out = []
    for name in names:
        candidate, n = name, 2
        while candidate in out:
            candidate, n = f"{name}-{n}", n + 1
        out.append(candidate)
    return out


def _mean_points(per_image: dict, points: int) -> dict:
    """Average each metric over images, point by point (NaNs, e.g. tiny-image MS-SSIM, skipped)."""
    results = {}
    for key in METRIC_KEYS:
        rows = np.array([img[key] for img in per_image.values()], dtype=np.float64).reshape(-1, points)
        with np.errstate(all="ignore"):
            col = [float(np.nanmean(c)) if np.isfinite(c).any() else float("nan") for c in rows.T]
        results[key] = col
    return results


def _empty_metrics() -> dict:
    return {key: [] for key in METRIC_KEYS}


def _timed(sync, fn, /, *args, **kwargs):
    """``fn(*args, **kwargs)`` and its wall time in seconds (CUDA work included)."""
    _sync(sync)
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    _sync(sync)
    return out, time.perf_counter() - start


def _streamed(device, data: bytes, net, precision: str = "fp32"):
    """(image, seconds from the start of the stream) for each layer of one iter_decode stream."""
    _sync(device)
    start = time.perf_counter()
    for _, image in api.iter_decode(data, model=net, device=device, precision=precision):
        _sync(device)
        yield image, time.perf_counter() - start


def _sync(device) -> None:
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def _warm_up(net, device, precision: str = "fp32") -> None:
    """One tiny encode/decode so one-off set-up costs stay out of the first image's timings."""
    tile = Image.fromarray(np.full((net.stride, net.stride, 3), 128, np.uint8))
    data = api.encode(tile, model=net, device=device, precision=precision)
    api.decode(data, model=net, device=device, precision=precision)


def run_bench(images, models=("vam",), baselines=ALL_BASELINES, device="auto",
              reference: bool = True, preview_index: int = 0, on_event=None,
              ladder=None, preview: bool | None = None, independent_decodes: bool = False,
              precision: str = "fp32") -> BenchResult:
    """Benchmark ``models`` (names or weights paths) and ``baselines`` on ``images`` (paths).

    ``ladder`` and ``preview`` choose our files' layers as in ``progcodec.encode``.
    Our layers are decoded by one ``iter_decode`` stream (the same pixels as
    ``decode(data, layers=k)``; a layer's decoding time is the stream's time to
    it), or with ``independent_decodes`` by a fresh ``decode`` per layer.
    ``precision`` is the API's (our networks that shape only pixels in fp32 or bf16).

    ``baselines`` are names (those this Pillow build lacks are skipped with a
    note) or ``Baseline`` objects. Our models: each image is encoded once,
    then decoded from every prefix of its layers; bpp comes from the real file
    prefix (header included). Each baseline: each image is encoded and decoded
    at every point of its ladder. Every point is averaged over the images.
    ``on_event(kind, info)`` receives "plan" {"total"}, "step" {"codec",
    "image", "done", "total"} and "note" {"message"}.
    """
    emit = on_event or (lambda kind, info: None)
    dev = resolve_device(device)
    metric_device = dev
    paths = [Path(p) for p in images]
    if not paths:
        raise ProgcodecError("no images to benchmark")
    notes: list[str] = []
    named = [b for b in baselines if not isinstance(b, Baseline)]
    runnable, skipped = available_baselines(named)
    baselines = [b for b in baselines if isinstance(b, Baseline)] + runnable
    notes += skipped
    for note in skipped:
        emit("note", {"message": note})
    if not models and not baselines:
        raise ProgcodecError("nothing to benchmark: no model and no runnable baseline")

    nets = [api.get_model(str(m), str(dev)) for m in models]
    names = _unique([entry_name(str(m)) for m in models])
    ladders = [api.file_ladder(net, ladder, preview) for net in nets]
    counts = [net.layer_count(*lp) for net, lp in zip(nets, ladders)]
    total = len(paths) * (sum(counts) + sum(len(b.ladder) for b in baselines))
    emit("plan", {"total": total})
    done = 0

    for net in nets:
        _warm_up(net, dev, precision)

    ours = {name: {} for name in names}
    theirs = {b.name: {} for b in baselines}
    previews = [None] * len(nets)

    for index, path in enumerate(paths):
        im = load_image(path)
        pixels = im.width * im.height
        for slot, (net, name) in enumerate(zip(nets, names)):
            row = _empty_metrics()
            data, enc_time = _timed(dev, api.encode, im, model=net, device=dev, ladder=ladder, preview=preview,
                                    precision=precision)
            layers = api.info(data)["layers"]
            if index == preview_index:
                previews[slot] = LayerPreview(name, path.name, im)
            if independent_decodes:
                decoded = (_timed(dev, api.decode, data, layers=layer["index"], model=net, device=dev,
                                  precision=precision) for layer in layers)
            else:
                decoded = _streamed(dev, data, net, precision)
            for layer, (rec, dec_time) in zip(layers, decoded):
                scores = metrics.score(im, rec, metric_device)
                row["bpp"].append(layer["cumulative_bytes"] * 8 / pixels)
                row["psnr-rgb"].append(scores["psnr-rgb"])
                row["ms-ssim"].append(scores["ms-ssim"])
                row["encoding_time"].append(enc_time)     # one encode makes every layer
                row["decoding_time"].append(dec_time)
                if index == preview_index:
                    previews[slot].layers.append({"layer": layer["index"], "bpp": row["bpp"][-1],
                                                  "psnr-rgb": scores["psnr-rgb"], "image": rec})
                done += 1
                emit("step", {"codec": name, "image": path.name, "done": done, "total": total})
            ours[name][path.name] = row

        for baseline in baselines:
            row = _empty_metrics()
            for step in range(len(baseline.ladder)):
                data, enc_time = _timed(None, baseline.encode, im, step)
                rec, dec_time = _timed(None, baseline.decode, data)
                scores = metrics.score(im, rec, metric_device)
                row["bpp"].append(len(data) * 8 / pixels)
                row["psnr-rgb"].append(scores["psnr-rgb"])
                row["ms-ssim"].append(scores["ms-ssim"])
                row["encoding_time"].append(enc_time)
                row["decoding_time"].append(dec_time)
                done += 1
                emit("step", {"codec": baseline.name, "image": path.name, "done": done, "total": total})
            theirs[baseline.name][path.name] = row

    entries = []
    for net, name, model, count, (file_ladder, file_preview) in zip(nets, names, models, counts, ladders):
        entries.append({
            "name": name,
            "description": (f"progcodec {net.name}" + ("" if str(model) == net.name else f" ({model})")
                            + f", weights {net.weights_digest.hex()}: one encode, "
                            f"decoded from each of its {count} layer prefixes"
                            f"{' (layer 1: preview)' if file_preview else ''}"
                            + (" by independent decodes" if independent_decodes
                               else " in one stream (decoding time: time to the layer)")
                            + ", ladder "
                            f"{list(file_ladder) or 'trained'}; bpp of the real file "
                            f"prefix, header included; device {dev.type}"
                            f"{'' if precision == 'fp32' else f', precision {precision}'}"),
            "results": _mean_points(ours[name], count),
        })
    for baseline in baselines:
        ladder = ", ".join(baseline.setting(i) for i in range(len(baseline.ladder)))
        entries.append({
            "name": baseline.name,
            "description": f"{baseline.description}; ladder: {ladder}",
            "results": _mean_points(theirs[baseline.name], len(baseline.ladder)),
        })
        psnr = entries[-1]["results"]["psnr-rgb"]
        if isinstance(baseline, LayeredJpeg2000) and not all(b > a for a, b in zip(psnr, psnr[1:])):
            note = (f"{baseline.name}: PSNR does not rise with the number of quality layers "
                    f"({', '.join(f'{p:.2f}' for p in psnr)}): the layered ladder is broken")
            notes.append(note)
            emit("note", {"message": note})
    if reference:
        entries.append({**HYPERPRIOR_REFERENCE,
                        "results": {k: list(v) for k, v in HYPERPRIOR_REFERENCE["results"].items()}})
    per_image = {**ours, **theirs}
    return BenchResult(entries, notes, [p for p in previews if p is not None], [p.name for p in paths], per_image)
