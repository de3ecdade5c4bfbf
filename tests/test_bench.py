"""``progcodec bench`` on two small generated images (never Kodak).

The models are conftest's seeded random weights (``PROGCODEC_WEIGHTS`` points
at them for the whole session): the numbers are meaningless, the structure is not.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

skimage_data = pytest.importorskip("skimage.data")

KEYS = ("bpp", "psnr-rgb", "ms-ssim", "encoding_time", "decoding_time")


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Two small photos: one big enough for 5-scale MS-SSIM with an 11 px window, one that is not."""
    folder = tmp_path_factory.mktemp("images")
    astronaut = Image.fromarray(skimage_data.astronaut())
    astronaut.resize((192, 176), Image.LANCZOS).save(folder / "b_astronaut.png")
    astronaut.crop((128, 32, 128 + 144, 32 + 112)).save(folder / "a_face.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_runner_and_report(image_dir, tmp_path):
    from progcodec.bench import list_images, run_bench, write_report

    events = []
    images = list_images(image_dir)
    assert [p.name for p in images] == ["a_face.png", "b_astronaut.png"]
    result = run_bench(images, models=["vam"], baselines=["jpeg", "jpeg2000"], device="cpu",
                       on_event=lambda kind, info: events.append((kind, info)))
    report = write_report(result, tmp_path / "out")

    entries = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [e["name"] for e in entries] == ["progcodec-vam", "jpeg", "jpeg2000", "bmshj2018-hyperprior (published)"]
    for entry in entries[:-1]:
        assert set(entry) == {"name", "description", "results"}
        res = entry["results"]
        assert set(res) == set(KEYS)
        assert len({len(res[k]) for k in KEYS}) == 1
        assert all(isinstance(v, float) and math.isfinite(v) for k in KEYS for v in res[k])
        assert all(0 < v <= 1 for v in res["ms-ssim"])
        assert all(v > 0 for v in res["encoding_time"] + res["decoding_time"])

    ours = entries[0]["results"]
    assert len(ours["bpp"]) == 16                       # one point per layer of the default vam ladder
    assert all(b > a for a, b in zip(ours["bpp"], ours["bpp"][1:]))
    assert len(set(ours["encoding_time"])) == 1         # one encode serves every layer

    j2k = entries[2]["results"]
    assert all(b > a for a, b in zip(j2k["psnr-rgb"], j2k["psnr-rgb"][1:])), j2k["psnr-rgb"]
    assert all(b > a for a, b in zip(j2k["bpp"], j2k["bpp"][1:]))
    assert 0.07 < j2k["bpp"][0] < 0.13 and 1.3 < j2k["bpp"][-1] < 1.8   # the layers hit their target rates

    ref = entries[-1]["results"]
    assert ref["bpp"][0] == 0.131 and ref["psnr-rgb"][-1] == 40.56

    assert (tmp_path / "out" / "rd.png").stat().st_size > 10_000
    assert (tmp_path / "out" / "layers.png").stat().st_size > 10_000
    bd = json.loads((tmp_path / "out" / "bd_rate.json").read_text())
    assert {row["anchor"] for row in bd} == {"jpeg", "jpeg2000", "bmshj2018-hyperprior (published)"}
    assert len(report["bd_rate"]) == 3

    assert result.notes == []
    assert events[0][0] == "plan" and events[0][1]["total"] == 2 * (16 + 7 + 8)
    steps = [info for kind, info in events if kind == "step"]
    assert len(steps) == events[0][1]["total"] and steps[-1]["done"] == steps[-1]["total"]
    assert len(result.previews) == 1 and len(result.previews[0].layers) == 16


def test_cli_bench_two_models(image_dir, tmp_path):
    from progcodec.cli import main

    out = tmp_path / "cli"
    res = CliRunner().invoke(main, ["bench", str(image_dir), "-o", str(out), "--limit", "1", "--model", "vam",
                                    "--model", "progdtd", "--baselines", "webp", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "progcodec-vam" in res.output and "progcodec-progdtd" in res.output and "BD-rate" in res.output
    entries = json.loads((out / "results.json").read_text())
    assert [e["name"] for e in entries] == ["progcodec-vam", "progcodec-progdtd", "webp",
                                            "bmshj2018-hyperprior (published)"]
    for entry in entries[:2]:
        bpp = entry["results"]["bpp"]
        assert all(b > a for a, b in zip(bpp, bpp[1:]))
    assert {"rd.png", "layers.png", "layers-progcodec-progdtd.png", "results.json", "bd_rate.json"} <= {
        p.name for p in out.iterdir()}


def test_cli_rejects_unknown_baseline_and_model(image_dir, tmp_path):
    from progcodec.cli import main

    res = CliRunner().invoke(main, ["bench", str(image_dir), "--baselines", "jpeg,bpg"])
    assert res.exit_code == 2 and "bpg" in res.output
    res = CliRunner().invoke(main, ["bench", str(image_dir), "-o", str(tmp_path / "x"), "--model", "nosuch"])
    assert res.exit_code == 1 and "unknown model 'nosuch'" in res.stderr
    assert not (tmp_path / "x").exists()


def test_missing_baseline_is_skipped_with_a_note(monkeypatch):
    from progcodec.bench import baselines

    monkeypatch.setattr(baselines.features, "check", lambda name: name != "avif")
    runnable, notes = baselines.available_baselines(["jpeg", "avif"])
    assert [b.name for b in runnable] == ["jpeg"]
    assert len(notes) == 1 and notes[0].startswith("avif skipped")


def test_parse_baselines():
    from progcodec.bench import parse_baselines

    assert parse_baselines("jpeg, webp,jpeg") == ["jpeg", "webp"]
    assert parse_baselines("none") == [] and parse_baselines("") == []
    with pytest.raises(ValueError):
        parse_baselines("jpeg,bpg")


def _entry(name, bpp, psnr):
    return {"name": name, "description": "", "results": {"bpp": bpp, "psnr-rgb": psnr}}


def test_bd_rate():
    from progcodec.bench.report import bd_rate, format_bd

    anchor = _entry("a", [0.1, 0.2, 0.4, 0.8], [26.0, 29.0, 32.0, 35.0])
    same = bd_rate(anchor, _entry("progcodec-x", [0.1, 0.2, 0.4, 0.8], [26.0, 29.0, 32.0, 35.0]))
    assert abs(same["bd_rate"]) < 1e-9
    half = bd_rate(anchor, _entry("progcodec-x", [0.05, 0.1, 0.2, 0.4], [26.0, 29.0, 32.0, 35.0]))
    assert abs(half["bd_rate"] + 50.0) < 1e-6         # same quality at half the bits
    apart = bd_rate(anchor, _entry("progcodec-x", [0.1, 0.2], [8.0, 9.0]))
    assert apart["bd_rate"] is None and format_bd(apart) == "n/a"
    nan = bd_rate(anchor, _entry("progcodec-x", [0.1, float("nan")], [27.0, float("nan")]))
    assert nan["bd_rate"] is None and format_bd(nan) == "n/a"


def test_metrics():
    from progcodec.metrics import ms_ssim_rgb, ms_ssim_window, psnr_rgb

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (176, 192, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + 1, 0, 255).astype(np.uint8)
    mse = np.mean((a.astype(float) - b) ** 2)
    assert abs(psnr_rgb(a, b) - 10 * np.log10(255**2 / mse)) < 1e-9
    assert abs(ms_ssim_rgb(a, a) - 1.0) < 1e-5
    assert ms_ssim_window(512, 768) == 11 and ms_ssim_window(112, 144) == 7 and ms_ssim_window(20, 20) is None
    assert math.isnan(ms_ssim_rgb(a[:20, :20], b[:20, :20]))


def test_streamed_and_independent_decodes_score_the_same(image_dir):
    from progcodec.bench.runner import list_images, run_bench

    images = list_images(image_dir)[:1]
    runs = [run_bench(images, models=["vam"], baselines=[], device="cpu", reference=False, ladder=6,
                      independent_decodes=flag) for flag in (False, True)]
    a, b = (r.entries[0]["results"] for r in runs)
    assert a["bpp"] == b["bpp"] and a["psnr-rgb"] == b["psnr-rgb"] and a["ms-ssim"] == b["ms-ssim"]
    assert a["decoding_time"] == sorted(a["decoding_time"])       # time to each layer of one stream
    assert "one stream" in runs[0].entries[0]["description"]
    assert "independent" in runs[1].entries[0]["description"]


def test_bf16_bench_codes_the_files_it_would_write(image_dir):
    """``precision="bf16"``: the bench's bytes are those of a bf16 encode, its scores those of a
    bf16 decode, and the description says so."""
    import progcodec
    from progcodec import metrics
    from progcodec.bench.runner import list_images, run_bench
    from progcodec.image import load_image

    images = list_images(image_dir)[:1]
    run = run_bench(images, models=["vam"], baselines=[], device="cpu", reference=False, ladder=4,
                    precision="bf16")
    entry = run.entries[0]
    assert "precision bf16" in entry["description"]
    im = load_image(images[0])
    data = progcodec.encode(im, ladder=4, precision="bf16")
    ends = [layer["cumulative_bytes"] * 8 / (im.width * im.height) for layer in progcodec.info(data)["layers"]]
    assert entry["results"]["bpp"] == pytest.approx(ends)
    psnr = [metrics.psnr_rgb(im, progcodec.decode(data, layers=k, precision="bf16")) for k in range(1, 5)]
    assert entry["results"]["psnr-rgb"] == pytest.approx(psnr)
