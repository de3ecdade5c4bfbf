"""Shared fixtures: seeded untrained weights (never the shipped ones), small natural images.

Every test session points ``PROGCODEC_WEIGHTS`` at a temporary folder holding a
model built from ``torch.manual_seed(0)``, so nothing here depends on weights
that are still being trained. Tests that need the shipped weights undo it with
``monkeypatch.delenv("PROGCODEC_WEIGHTS")``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from PIL import Image

import progcodec
from progcodec import api

ROOT = Path(__file__).resolve().parents[1]
MODEL_NAMES = ("vam", "progdtd")   # each gets seeded weights in PROGCODEC_WEIGHTS

# The machine may be busy (a training run on 2 cores): one thread per op is
# several times faster than two fighting for the same cores.
torch.set_num_threads(1)

# No .hypothesis/ folder in the checkout; no deadline on a loaded machine.
settings.register_profile("progcodec", database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("progcodec")


def _load_fuzz():
    """benchmarks/fuzz.py, loaded by path: the mutators and seeded_model live there once."""
    name = "progcodec_bench_fuzz"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "fuzz.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def fuzzlib():
    return _load_fuzz()


@pytest.fixture(scope="session", autouse=True)
def weights_dir(tmp_path_factory):
    """``PROGCODEC_WEIGHTS`` -> a folder with every model built from ``torch.manual_seed(0)``."""
    directory = tmp_path_factory.mktemp("weights")
    for name in MODEL_NAMES:
        _load_fuzz().save_seeded_weights(directory, seed=0, name=name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROGCODEC_WEIGHTS", str(directory))
        api.get_model.cache_clear()
        yield directory
    api.get_model.cache_clear()


@pytest.fixture(scope="session")
def weights_path(weights_dir) -> Path:
    return weights_dir / "vam.safetensors"


@pytest.fixture(scope="session")
def other_weights_path(tmp_path_factory) -> Path:
    """The same architecture from another seed, in another folder: other weights, other digest."""
    return _load_fuzz().save_seeded_weights(tmp_path_factory.mktemp("other_weights"), seed=1)


@pytest.fixture(scope="session")
def net(weights_dir):
    """The cached model that ``progcodec.encode``/``decode`` use by name. Do not modify it."""
    return api.get_model("vam", "auto")


@pytest.fixture
def fresh_net(weights_path):
    """A private instance of the same weights: safe to perturb."""
    from progcodec.weights import load_model

    return load_model(str(weights_path))


def _sample(name: str, size: tuple[int, int]) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB").resize(size, Image.LANCZOS)


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    return _sample("astronaut", (96, 64))


@pytest.fixture(scope="session")
def coffee() -> Image.Image:
    return _sample("coffee", (96, 64))


@pytest.fixture(scope="session")
def chelsea_portrait() -> Image.Image:
    return _sample("chelsea", (64, 96))


@pytest.fixture(scope="session")
def encoded(astronaut, net) -> bytes:
    """astronaut (96x64) encoded with every layer."""
    return progcodec.encode(astronaut)


@pytest.fixture(scope="session")
def by_layers(encoded) -> list[np.ndarray]:
    """``by_layers[L - 1]``: pixels of ``decode(encoded, layers=L)``, for every L."""
    count = len(progcodec.info(encoded)["layers"])
    return [np.asarray(progcodec.decode(encoded, layers=L)) for L in range(1, count + 1)]


@pytest.fixture(scope="session")
def layer_ends(encoded) -> list[int]:
    """Cumulative byte count at the end of each layer, from ``info``."""
    return [layer["cumulative_bytes"] for layer in progcodec.info(encoded)["layers"]]


@pytest.fixture
def cli():
    """``cli(*args, input=bytes)``: run the ``progcodec`` command in-process; stdout and stderr apart."""
    from click.testing import CliRunner

    from progcodec.cli import main

    runner = CliRunner()

    def run(*args, input=None):
        return runner.invoke(main, [str(a) for a in args], input=input)

    return run


@pytest.fixture
def clean_error():
    """``clean_error(result, match)``: exit status 1 and exactly one stderr line, ``error: ...``."""
    import re

    def check(result, match: str | None = None) -> str:
        assert result.exit_code == 1, (result.exit_code, result.stderr, result.exception)
        assert isinstance(result.exception, SystemExit), result.exception
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert result.stdout == ""
        if match:
            assert re.search(match, lines[0]), lines[0]
        return lines[0]

    return check


def files_in(directory: Path) -> set[str]:
    return {p.name for p in Path(directory).iterdir()}


@pytest.fixture
def listdir():
    """``listdir(path)``: the names in a folder (to check that failed commands leave nothing behind)."""
    return files_in


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory):
    """A few small natural images (scikit-image samples), as JPEG and PNG: a training folder."""
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea"):
        im = Image.fromarray(getattr(data, name)()).resize((160, 120))
        im.save(root / f"{name}.png")
        im.convert("L").save(root / f"{name}_gray.jpg", quality=95)
    return root
