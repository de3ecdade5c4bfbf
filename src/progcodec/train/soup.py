"""Averaging the weights of training runs that started from the same weights: a model soup.

Wortsman et al., "Model soups: averaging weights of multiple fine-tuned models improves
accuracy without increasing inference time", ICML 2022. Runs fine-tuned from one start
stay in one basin of the loss; the mean of their weights sits nearer its floor than any
of them, at no cost when coding. On two CPU cores it turns two runs side by side (one
thread each, the fastest way to spend the cores) into one better model::

    shipped ─┬─ run a (lr, seed a) ─┐
             └─ run b (lr, seed b) ─┴─► mean of the float parameters ─► CDF tables and
                                        integer parameter path made again ─► new weights

Only the learnt parameters are averaged; what is derived from them (the entropy
bottleneck's CDF tables, the integer parameter path) is made again from the mean, as
training's export does. The manifest records each ingredient's runs back to the
weights they all started from, so the cumulative steps count every CPU step spent.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ProgcodecError
from ..weights import cumulative_steps, load_model, read_manifest, save_weights
from .integer_params import calibration_crops, integerize

METHOD = "uniform average of the float parameters (a model soup, Wortsman et al. 2022)"


def _chain(record: dict | None) -> list[dict]:
    """A training record and the ones before it (``previous``), newest first."""
    chain = []
    while record:
        chain.append(record)
        record = record.get("previous")
    return chain


def common_start(records: list[dict | None]) -> dict:
    """The newest training record that every record's chain holds and that some run continued
    (the weights all the runs started from); ValueError when there is none. Records compare as
    values: two runs alike in every recorded setting look alike, so an ingredient's own record
    is a start only when another ingredient's chain goes on past it."""
    chains = [_chain(r) for r in records]
    for candidate in chains[0]:
        if all(candidate in chain for chain in chains) and any(candidate in chain[1:] for chain in chains):
            return candidate
    raise ValueError("these weights did not start from the same weights (no training record in common): "
                     "averaging unrelated weights gives nonsense")


def _runs_since(record: dict, start: dict) -> tuple[dict | None, int, float]:
    """``record``'s runs after ``start`` (its chain cut there; None when it is the start), and
    their steps and seconds."""
    chain = _chain(record)
    runs = chain[:chain.index(start)]
    cut = "the soup's start"
    for run in reversed(runs):      # the chain again, oldest first, each run before its successor
        cut = {**run, "previous": cut}
    return (cut if runs else None, sum(int(r.get("steps", 0)) for r in runs),
            sum(float(r.get("wall_time_s", 0.0)) for r in runs))


def average_weights(paths: list[Path], out: Path, data=None) -> dict:
    """The mean of the weights ``paths`` (same model, same configuration, one common start),
    written to ``out``; its integer parameter path (when theirs have one) is calibrated on the
    held-out photos of ``data``. Returns the new manifest."""
    if len(paths) < 2:
        raise ValueError("a soup needs at least two weights files")
    manifests = [read_manifest(p) for p in paths]
    for path, manifest in zip(paths, manifests):
        if manifest is None:
            raise ValueError(f"{path}: no readable manifest beside it ({Path(path).with_suffix('.json').name})")
    if len({m.get("sha256") for m in manifests}) < len(manifests):
        raise ValueError("the same weights are given twice: a soup averages different runs")
    kinds = {(m.get("model"), json.dumps(m.get("config"), sort_keys=True)) for m in manifests}
    if len(kinds) > 1:
        raise ValueError("these weights are of different models or configurations: "
                         + "; ".join(f"{m.get('model')} {m.get('config')}" for m in manifests))
    start = common_start([m.get("training") for m in manifests])
    try:
        models = [load_model(str(p)) for p in paths]
    except ProgcodecError as e:          # damaged weights, a manifest that does not match them
        raise ValueError(str(e)) from None
    soup = models[0]
    if soup.has_integer_params and not data:
        raise ValueError("these weights have an integer parameter path: give photos to calibrate it on "
                         "(the training folder; its held-out images are used)")
    with torch.no_grad():
        ingredients = [dict(m.named_parameters()) for m in models]
        for name, p in ingredients[0].items():
            p.copy_(torch.stack([i[name] for i in ingredients]).mean(0))
    integer_params = integerize(soup.eval(), calibration_crops(data)) if soup.has_integer_params else None

    runs = [_runs_since(m["training"], start) for m in manifests]
    steps, seconds = sum(r[1] for r in runs), sum(r[2] for r in runs)
    training = {
        "stage": "soup", "method": METHOD,
        "ingredients": [{"sha256": m["sha256"], "runs": r[0]} for m, r in zip(manifests, runs)],
        "steps": steps, "wall_time_s": round(seconds, 1),
        "previous": start,
        "cumulative_steps": steps + cumulative_steps(start),
        **({"integer_params": {**integer_params, "data": [str(d) for d in data]}} if integer_params else {}),
    }
    return save_weights(soup, Path(out), {"training": training})
