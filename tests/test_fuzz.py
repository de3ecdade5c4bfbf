"""Mutation fuzzing of .pgc decoding (bounded for the default run; benchmarks/fuzz.py runs it long).

Every outcome must be a decoded PIL image of the header's size or a
``ProgcodecError``: no other exception, no hang. The mutators live in
benchmarks/fuzz.py (the ``fuzzlib`` fixture), shared with the long run.
"""

from __future__ import annotations

import os
import random
import time
import warnings
from pathlib import Path

import pytest
from PIL import Image

import progcodec
from progcodec import api, container
from progcodec.errors import ProgcodecError, ProgcodecWarning

TIME_LIMIT = 30.0      # seconds per case before it counts as a hang (a loaded 2-core machine)
MAX_SIDE = 1024        # valid sizes a mutated header may claim here; the long run allows the format's limit


def _decode(data: bytes):
    return progcodec.decode(data)


def _assert_clean(report):
    lines = [f"{o.kind}: {m} [{c}] {o.detail} ({o.seconds:.1f} s)" for c, m, o in report.failures]
    assert report.ok, "\n".join(lines)


@pytest.fixture(scope="module")
def vam_sample(fuzzlib, encoded):
    return fuzzlib.Sample.of(encoded)


@pytest.fixture(scope="module")
def progdtd_sample(fuzzlib, astronaut, weights_dir):
    return fuzzlib.Sample.of(progcodec.encode(astronaut, model="progdtd"))


def test_the_harness_tells_crashes_hangs_and_clean_errors_apart(fuzzlib, vam_sample):
    run = fuzzlib.run_case
    data = vam_sample.data

    def raises(exc):
        def decode(_):
            raise exc
        return decode

    def spins(_):
        end = time.monotonic() + 10
        while time.monotonic() < end:
            pass

    assert run(data, raises(ProgcodecError("bad")), 5).kind == "error"
    assert run(data, raises(ValueError("boom")), 5).kind == "crash"
    assert run(data, raises(IndexError("boom")), 5).kind == "crash"
    assert run(data, lambda _: Image.new("RGB", (5, 5)), 5).kind == "crash"     # wrong size
    assert run(data, lambda _: None, 5).kind == "crash"
    assert run(data, lambda _: Image.new("RGB", (96, 64)), 5).kind == "decoded"
    started = time.monotonic()
    outcome = run(data, spins, 0.3)
    assert outcome.kind == "hang" and time.monotonic() - started < 5
    assert run(b"junk", _decode, 5).kind == "error"


def test_header_helpers_round_trip(fuzzlib, vam_sample):
    data = vam_sample.data
    layout = fuzzlib.header_layout(data)
    assert layout["hcrc"][0] + 4 == vam_sample.header_size
    assert fuzzlib.fix_header_crc(data) == data
    assert fuzzlib.set_field(data, "width", vam_sample.header.width) == data
    edited = container.parse(fuzzlib.set_field(data, "width", 97))
    assert edited.header.width == 97 and edited.layers == list(vam_sample.layers)
    assert fuzzlib.Sample.of(vam_sample.rebuild()).data == data


@pytest.mark.parametrize("layout", ["preview", "trained"])
def test_every_mutator_on_a_real_file(fuzzlib, vam_sample, astronaut, layout):
    """Each mutator, a few seeds each: deterministic coverage of every kind of damage,
    on the default file (preview layer, 16 layers) and on the version-1 layer layout."""
    sample = vam_sample if layout == "preview" else fuzzlib.Sample.of(progcodec.encode(astronaut, ladder="trained"))
    report = fuzzlib.Report()
    started = time.perf_counter()
    for name, (_, mutator) in fuzzlib.MUTATORS.items():
        for i in range(5):
            data = mutator(random.Random(f"mutator:{name}:{i}"), sample, MAX_SIDE)
            assert isinstance(data, bytes)
            report.add(f"{name}:{i}", name, fuzzlib.run_case(data, _decode, TIME_LIMIT))
    _assert_clean(report)
    assert report.counts["decoded"] > 0 and report.counts["error"] > 0
    assert time.perf_counter() - started < 300


def test_sweep_and_random_mutations(fuzzlib, vam_sample):
    """Truncation at every header offset, every layer boundary +-1 and every 61st byte; then random cases."""
    report = fuzzlib.fuzz(vam_sample, _decode, cases=200, seed=1, time_limit=TIME_LIMIT, max_side=MAX_SIDE,
                          truncate_stride=61, budget_s=120)
    _assert_clean(report)
    assert report.cases >= 250, f"only {report.cases} cases within the budget"
    assert report.counts["decoded"] > 10 and report.counts["error"] > 10
    assert {"ContainerError"} <= set(report.errors)


def test_random_mutations_of_a_progdtd_file(fuzzlib, progdtd_sample):
    report = fuzzlib.fuzz(progdtd_sample, _decode, cases=60, seed=2, time_limit=TIME_LIMIT, max_side=MAX_SIDE,
                          truncate_stride=None, budget_s=60)
    _assert_clean(report)
    assert report.counts["decoded"] > 0 and report.counts["error"] > 0


def test_every_truncation_offset_of_a_real_file_parses_consistently(vam_sample):
    """Container and info at every offset (cheap): layers present = complete layers before the cut."""
    data, ends = vam_sample.data, vam_sample.layer_ends
    for n in range(len(data) + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ProgcodecWarning)
            try:
                meta = progcodec.info(data[:n])
            except ProgcodecError:
                assert n < ends[0]
                continue
        assert n >= ends[0]
        assert len(meta["layers"]) == sum(1 for e in ends if e <= n)


@pytest.mark.parametrize("preview", [True, False])
def test_hostile_layers_behind_valid_crcs_decode_or_fail_cleanly(fuzzlib, astronaut, net, preview):
    """The rANS decoders see attacker-chosen bytes: empty, all-zero, all-ones, oversized strings."""
    sample = fuzzlib.Sample.of(progcodec.encode(astronaut, ladder=10, preview=preview))
    if preview:
        z, base = sample.layers[0], sample.layers[1]
        head = lambda z, base: [z, base]  # noqa: E731
        rest = list(sample.layers[2:])
    else:
        z, base = container.unpack_strings(sample.layers[0], 2)
        head = lambda z, base: [container.pack_strings([z, base])]  # noqa: E731
        rest = list(sample.layers[1:])
    variants = []
    for blob in (b"", b"\0" * 64, b"\xff" * 64, b"\xff" * 4096, bytes(range(256)) * 8):
        variants.append(head(blob, base) + rest)
        variants.append(head(z, blob) + rest)
        variants.append(list(sample.layers[:3]) + [blob] + list(sample.layers[4:]))
        variants.append(list(sample.layers[:-1]) + [blob])
    report = fuzzlib.Report()
    for i, layers in enumerate(variants):
        report.add(str(i), "hostile_layer", fuzzlib.run_case(sample.rebuild(layers=layers), _decode, TIME_LIMIT))
    _assert_clean(report)
    assert report.counts["decoded"] > 0


def test_the_long_fuzz_script_runs(fuzzlib, monkeypatch, capsys):
    """benchmarks/fuzz.py's command line, a few cases: it prints the counts and the peak RSS."""
    monkeypatch.setenv("PROGCODEC_WEIGHTS", "unused")        # main() points it at its own weights
    try:
        status = fuzzlib.main(["--cases", "12", "--truncate-stride", "0", "--time-limit", str(TIME_LIMIT),
                               "--max-side", str(MAX_SIDE)])
    finally:
        api.get_model.cache_clear()
    out = capsys.readouterr().out
    assert status == 0, out
    for key in ("cases", "decoded", "clean errors", "crashes", "hangs", "peak RSS"):
        assert key in out
    assert "cases        12" in out


@pytest.mark.slow
def test_long_fuzz(fuzzlib, vam_sample):
    """A longer run with the format's own limits (minutes): python -m pytest -m slow."""
    report = fuzzlib.fuzz(vam_sample, _decode, cases=2000, seed=3, time_limit=120, max_side=None, truncate_stride=1)
    _assert_clean(report)


# -- the coverage-guided harness (benchmarks/atheris_fuzz.py) and the corpus it grew -------------------------

CORPUS = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz-corpus"


@pytest.fixture(scope="module")
def atheris_harness(fuzzlib, tmp_path_factory, monkeypatch_module):
    """benchmarks/atheris_fuzz.py loaded by path, its small seeded weights first on PROGCODEC_WEIGHTS
    (the committed corpus names them by id: the same seed and torch give the same weights)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("progcodec_atheris_fuzz", CORPUS.parent / "atheris_fuzz.py")
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    harness.fuzzlib = fuzzlib
    folder = tmp_path_factory.mktemp("atheris-weights")
    from progcodec.weights import sha256_of

    ids = {bytes.fromhex(sha256_of(path)[:16]) for path in harness.save_weights(folder)}
    named = {container.parse(p.read_bytes()).header.weights_digest for p in (CORPUS / "seeds").iterdir()}
    if not named <= ids:   # torch's initialisation moved: the corpus names weights this machine cannot make
        pytest.skip("the seeded weights differ from the ones the corpus was made with: "
                    "python benchmarks/atheris_fuzz.py --make-seeds, then grow the corpus again")
    monkeypatch_module.setenv("PROGCODEC_WEIGHTS", f"{folder}{os.pathsep}{os.environ.get('PROGCODEC_WEIGHTS', '')}")
    return harness


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_the_seeds_are_real_files_of_every_layout(atheris_harness):
    """The seeds decode in full: they reach the models, so mutations of them can too."""
    layouts = set()
    for path in sorted((CORPUS / "seeds").iterdir()):
        data = path.read_bytes()
        h = container.parse(data).header
        layouts.add((h.model, h.version, h.preview, h.base_chunk, h.fine_ladder))
        with warnings.catch_warnings():
            warnings.simplefilter("error", ProgcodecWarning)
            assert progcodec.decode(data).size == (h.width, h.height), path.name
    assert {v for _, v, *_ in layouts} == set(container.READABLE_VERSIONS)
    assert {m for m, *_ in layouts} == {"vam", "progdtd"}
    assert any(p for _, _, p, _, _ in layouts) and any(b for *_, b, _ in layouts) and any(f for *_, f in layouts)
    headers = [container.parse(p.read_bytes()).header for p in (CORPUS / "seeds").iterdir()]
    assert any(h.rem for h in headers) and {h.model for h in headers if h.tile} == {"vam", "progdtd"}
    assert any(h.integer_params for h in headers)


def test_repaired_crcs_let_a_mutation_reach_the_layers(atheris_harness):
    data = (CORPUS / "seeds" / "vam-default").read_bytes()
    pgc = container.parse(data)
    damaged = bytearray(data)
    damaged[pgc.layer_ends[2] - 3] ^= 0xFF                      # inside layer 3
    assert len(container.parse(bytes(damaged)).layers) == 2     # the CRC stops it ...
    repaired = atheris_harness.repair_crcs(bytes(damaged))
    assert len(container.parse(repaired).layers) == len(pgc.layers)   # ... unless repaired


def test_the_grown_corpus_decodes_or_fails_cleanly(atheris_harness):
    """Every input the coverage-guided run kept (and every finding, once fixed): a picture of
    the header's size or a ProgcodecError, parse and info agreeing."""
    paths = sorted(p for folder in ("decode", "findings") if (CORPUS / folder).is_dir()
                   for p in (CORPUS / folder).iterdir())
    assert len(paths) >= 40
    for path in paths:
        atheris_harness.check_decode(path.read_bytes())


@pytest.mark.slow
def test_the_atheris_harness_runs(tmp_path):
    """A short coverage-guided run from the seeds: no crash, no hang (python -m pytest -m slow)."""
    pytest.importorskip("atheris")
    import subprocess
    import sys

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = subprocess.run([sys.executable, str(CORPUS.parent / "atheris_fuzz.py"), "-runs=3000", "-timeout=30",
                             "-max_len=8192", str(corpus), str(CORPUS / "seeds")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 3000 runs" in result.stderr and not list(tmp_path.glob("crash-*"))
