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
