"""Bulk transcoding of folder trees: the tree kept, existing outputs skipped, failures listed, workers agree."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import progcodec
from progcodec import bulk
from progcodec.errors import ProgcodecError


@pytest.fixture
def tree(tmp_path, astronaut, coffee):
    src = tmp_path / "photos"
    (src / "trip" / "day1").mkdir(parents=True)
    astronaut.save(src / "a.png")
    coffee.save(src / "trip" / "b.jpg", quality=95)
    astronaut.save(src / "trip" / "day1" / "c.png")
    (src / "trip" / "broken.png").write_bytes(b"not a png")
    (src / "notes.txt").write_text("not an image")
    return src


def test_plan_keeps_the_tree(tree, tmp_path):
    jobs = bulk.plan(tree, tmp_path / "out", "encode")
    assert [j.target.relative_to(tmp_path / "out").as_posix() for j in jobs] == [
        "a.pgc", "trip/b.pgc", "trip/broken.pgc", "trip/day1/c.pgc"]
    with pytest.raises(ProgcodecError, match="outside"):
        bulk.plan(tree, tree / "out", "encode")


def test_cli_encode_then_decode_a_tree(cli, tree, tmp_path):
    out = tmp_path / "out"
    result = cli("encode", tree, "-o", out)
    assert result.exit_code == 1                                    # one file failed ...
    assert "broken.png" in result.stderr and "encoded 3 file(s)" in result.stderr
    assert (out / "trip" / "day1" / "c.pgc").read_bytes() == progcodec.encode(str(tree / "a.png"))
    assert not (out / "trip" / "broken.pgc").exists()               # ... and nothing was written for it
    again = cli("encode", tree, "-o", out)                          # existing outputs are skipped
    assert "encoded 0 file(s)" in again.stderr and "skipped 3 existing" in again.stderr
    forced = cli("encode", tree, "-o", out, "--force")
    assert "encoded 3 file(s)" in forced.stderr
    result = cli("decode", out, "-o", tmp_path / "png", "--layers", 2)
    assert result.exit_code == 0, result.stderr
    decoded = np.asarray(Image.open(tmp_path / "png" / "trip" / "b.png"))
    assert np.array_equal(decoded, np.asarray(progcodec.decode((out / "trip" / "b.pgc").read_bytes(), layers=2)))
    assert cli("encode", tree).exit_code == 2                       # a folder needs -o


def test_two_worker_processes_write_the_same_files(tree, tmp_path):
    jobs = [j for j in bulk.plan(tree, tmp_path / "one", "encode") if "broken" not in j.source.name]
    one = bulk.run(jobs, "encode", workers=1)
    jobs2 = [j for j in bulk.plan(tree, tmp_path / "two", "encode") if "broken" not in j.source.name]
    two = bulk.run(jobs2, "encode", workers=2)
    assert len(one.done) == len(two.done) == 3 and not one.failed and not two.failed
    for a, b in zip(jobs, jobs2):
        assert a.target.read_bytes() == b.target.read_bytes()


# -- the same on a Dask cluster (loopback only) -----------------------------------------------------------

distributed = pytest.importorskip("distributed")


def test_a_dask_local_cluster_writes_what_local_workers_write(tree, tmp_path):
    """--engine dask without a scheduler: a LocalCluster of 2 worker processes; the bytes
    travel to them and back, so the files are the ones a local run writes, failures listed."""
    local = bulk.plan(tree, tmp_path / "local", "encode")
    on_dask = bulk.plan(tree, tmp_path / "dask", "encode")
    bulk.run(local, "encode", workers=1)
    events = []
    summary = bulk.run(on_dask, "encode", workers=2, engine="dask", on_event=lambda *e: events.append(e[0]))
    assert len(summary.done) == 3 and [j.source.name for j, _ in summary.failed] == ["broken.png"]
    assert sorted(events) == ["done"] * 3 + ["failed"]
    for a, b in zip(local, on_dask):
        assert a.target.exists() == b.target.exists()
        if a.target.exists():
            assert a.target.read_bytes() == b.target.read_bytes()


def test_cli_on_an_existing_dask_scheduler(cli, tree, tmp_path):
    """--scheduler ADDRESS: the work goes to a cluster that is already running."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        result = cli("encode", tree, "-o", tmp_path / "pgc", "--engine", "dask",
                     "--scheduler", cluster.scheduler_address)
        assert result.exit_code == 1 and "broken.png" in result.stderr and "encoded 3 file(s)" in result.stderr
        result = cli("decode", tmp_path / "pgc", "-o", tmp_path / "png", "--layers", 2, "--engine", "dask",
                     "--scheduler", cluster.scheduler_address)
        assert result.exit_code == 0, result.stderr
    decoded = np.asarray(Image.open(tmp_path / "png" / "trip" / "b.png"))
    data = (tmp_path / "pgc" / "trip" / "b.pgc").read_bytes()
    assert data == progcodec.encode(str(tree / "trip" / "b.jpg"))
    assert np.array_equal(decoded, np.asarray(progcodec.decode(data, layers=2)))


def test_dask_options_are_clear_errors(cli, tree, tmp_path, clean_error, monkeypatch):
    from progcodec import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "1s")
    photo = tree / "a.png"
    result = cli("encode", photo, "-o", tmp_path / "x.pgc", "--engine", "dask")
    assert result.exit_code == 2 and "for folders" in result.stderr
    clean_error(cli("encode", tree, "-o", tmp_path / "out", "--scheduler", "tcp://127.0.0.1:1"), "engine dask")
    result = cli("encode", tree, "-o", tmp_path / "out", "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9")
    clean_error(result, "cannot reach the Dask scheduler at tcp://127.0.0.1:9")
