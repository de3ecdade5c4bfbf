"""Averaging runs that started from the same weights (train/soup.py, `progcodec weights average`)."""

import json

import numpy as np
import pytest
import torch

import progcodec
from progcodec.train.loop import TrainConfig, train
from progcodec.weights import load_model

TINY = {"N": 16, "M": 24}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, photo_dir):
    """A start (2 steps) and two runs fine-tuned from it with other seeds (3 steps each), plus a
    run from scratch that shares nothing with them; tiny vam models on a few sample photos."""
    root = tmp_path_factory.mktemp("soup")

    def run(name, steps, seed, **kw):
        cfg = TrainConfig(data=[str(photo_dir)], out=str(root / name / "vam.safetensors"), steps=steps, batch=2,
                          crop=64, lr=1e-3, warmup=1, val_every=1000, threads=1, seed=seed, model_args=TINY, **kw)
        train(cfg)
        return root / name / "vam.safetensors"

    start = run("start", 2, 0)
    return {"photos": photo_dir, "start": start, "a": run("a", 3, 1, init=str(start)),
            "b": run("b", 3, 2, init=str(start)), "other": run("other", 2, 3)}


def _manifest(path):
    return json.loads(path.with_suffix(".json").read_text())


def test_the_soup_is_the_mean_of_the_runs_and_codes_every_prefix(cli, runs, tmp_path, astronaut):
    out = tmp_path / "soup" / "vam.safetensors"
    result = cli("weights", "average", runs["a"], runs["b"], "--data", runs["photos"], "-o", out)
    assert result.exit_code == 0, result.output
    soup, a, b = (dict(load_model(str(p)).named_parameters()) for p in (out, runs["a"], runs["b"]))
    assert soup.keys() == a.keys()
    assert all(torch.allclose(soup[k], (a[k] + b[k]) / 2, rtol=0, atol=1e-7) for k in soup)
    assert not all(torch.equal(a[k], b[k]) for k in a)        # the runs did move apart

    training = _manifest(out)["training"]
    start = _manifest(runs["start"])["training"]
    assert training["stage"] == "soup" and training["previous"] == start
    assert training["steps"] == 6 and training["cumulative_steps"] == 8
    assert [i["sha256"] for i in training["ingredients"]] == [_manifest(runs[k])["sha256"] for k in "ab"]
    assert all(i["runs"]["previous"] == "the soup's start" for i in training["ingredients"])

    model = load_model(str(out))
    assert model.has_integer_params            # made again from the mean, as training's export does
    image = astronaut.resize((96, 64))
    data = progcodec.encode(image, model=model)
    count = len(progcodec.info(data)["layers"])
    decoded = [np.asarray(progcodec.decode(progcodec.truncate(data, layers=k), weights=[out]))
               for k in range(1, count + 1)]
    assert np.array_equal(decoded[-1], np.asarray(progcodec.decode(data, model=model)))
    assert not np.array_equal(decoded[0], decoded[-1])


def test_a_run_averaged_with_its_start_counts_only_the_runs_steps(runs, tmp_path):
    from progcodec.train.soup import average_weights

    manifest = average_weights([runs["start"], runs["a"]], tmp_path / "vam.safetensors", [runs["photos"]])
    training = manifest["training"]
    assert training["previous"] == _manifest(runs["start"])["training"]
    assert training["steps"] == 3 and training["cumulative_steps"] == 5
    assert training["ingredients"][0]["runs"] is None


def test_weights_without_a_common_start_or_of_another_shape_are_refused(cli, runs, tmp_path, weights_path):
    out = tmp_path / "vam.safetensors"
    result = cli("weights", "average", runs["a"], runs["other"], "--data", runs["photos"], "-o", out)
    assert result.exit_code != 0 and "same weights" in result.output
    result = cli("weights", "average", runs["a"], weights_path, "--data", runs["photos"], "-o", out)
    assert result.exit_code != 0 and "different models or configurations" in result.output
    result = cli("weights", "average", runs["a"], runs["a"], "--data", runs["photos"], "-o", out)
    assert result.exit_code != 0 and "twice" in result.output
    result = cli("weights", "average", runs["a"], "-o", out)
    assert result.exit_code != 0 and "at least two" in result.output
    result = cli("weights", "average", runs["a"], runs["b"], "-o", out)
    assert result.exit_code != 0 and "calibrate" in result.output
    result = cli("weights", "average", runs["a"], runs["b"], "-o", tmp_path / "x.bin")
    assert result.exit_code != 0 and "safetensors" in result.output
    stray = tmp_path / "stray.safetensors"
    stray.write_bytes(b"not weights")
    result = cli("weights", "average", runs["a"], stray, "--data", runs["photos"], "-o", out)
    assert result.exit_code != 0 and "no readable manifest" in result.output
    damaged = tmp_path / "damaged" / "vam.safetensors"
    damaged.parent.mkdir()
    damaged.write_bytes(runs["b"].read_bytes()[:-1] + b"\0")
    damaged.with_suffix(".json").write_text(runs["b"].with_suffix(".json").read_text())
    result = cli("weights", "average", runs["a"], damaged, "--data", runs["photos"], "-o", out)
    assert result.exit_code != 0 and "sha256 does not match" in result.output
    assert not out.exists()
