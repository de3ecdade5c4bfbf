"""Weights found by the id in the header: --weights, PROGCODEC_WEIGHTS, shipped (current and kept), user folder."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import progcodec
from progcodec import weights as weights_mod
from progcodec.errors import WeightsMismatchError, WeightsNotFoundError


@pytest.fixture
def user_home(tmp_path, monkeypatch):
    """A private per-user data folder (platformdirs follows XDG_DATA_HOME)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "progcodec" / "weights"


@pytest.fixture
def foreign(astronaut, other_weights_path):
    """astronaut encoded with weights that live outside every searched folder, and their id."""
    data = progcodec.encode(astronaut, model=str(other_weights_path))
    return data, progcodec.info(data)["weights"]


def _pixels(image) -> np.ndarray:
    return np.asarray(image)


def test_the_error_names_the_id_and_the_three_fixes(foreign, user_home):
    data, weights_id = foreign
    with pytest.raises(WeightsNotFoundError) as e:
        progcodec.decode(data)
    message = str(e.value)
    assert f"needs vam weights {weights_id}" in message
    assert "--weights" in message and "PROGCODEC_WEIGHTS" in message and "weights add" in message
    found = weights_mod.list_weights()
    assert found and all(f["id"] in message for f in found)  # the ids found are listed
    assert isinstance(e.value, WeightsMismatchError)          # still caught by older handlers


def test_weights_argument_file_or_folder(foreign, other_weights_path, user_home):
    data, _ = foreign
    expected = _pixels(progcodec.decode(data, model=str(other_weights_path)))
    assert np.array_equal(_pixels(progcodec.decode(data, weights=str(other_weights_path))), expected)
    assert np.array_equal(_pixels(progcodec.decode(data, weights=[other_weights_path.parent])), expected)


def test_environment_path_list(foreign, other_weights_path, weights_dir, user_home, monkeypatch):
    data, _ = foreign
    monkeypatch.setenv("PROGCODEC_WEIGHTS", os.pathsep.join([str(weights_dir), str(other_weights_path.parent)]))
    assert progcodec.decode(data).size == (96, 64)
    # name lookup for encode still takes the first folder's vam
    reencoded = progcodec.encode(_pixels(progcodec.decode(data)))
    assert progcodec.info(reencoded)["weights"] != progcodec.info(data)["weights"]


def test_cli_weights_add_list_and_decode(cli, foreign, other_weights_path, user_home, tmp_path):
    data, weights_id = foreign
    pgc = tmp_path / "f.pgc"
    pgc.write_bytes(data)
    assert cli("decode", pgc, "-q").exit_code == 1
    result = cli("decode", pgc, "--weights", other_weights_path, "-o", tmp_path / "a.png")
    assert result.exit_code == 0, result.stderr
    result = cli("weights", "add", other_weights_path)
    assert result.exit_code == 0, result.stderr
    added = user_home / f"vam-{weights_id}.safetensors"
    assert added.exists() and json.loads(added.with_suffix(".json").read_text())["sha256"].startswith(weights_id)
    listed = json.loads(cli("weights", "list", "--json").stdout)
    mine = [e for e in listed if e["id"] == weights_id]
    assert mine and mine[0]["source"] == "user" and mine[0]["model"] == "vam"
    assert weights_id in cli("weights", "list").stdout
    result = cli("decode", pgc, "-o", tmp_path / "b.png")  # found in the user folder now
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_weights_add_refuses_damaged_weights(cli, clean_error, other_weights_path, user_home, tmp_path):
    copy = tmp_path / "copy.safetensors"
    raw = bytearray(other_weights_path.read_bytes())
    raw[-1] ^= 1
    copy.write_bytes(bytes(raw))
    shutil.copy(other_weights_path.with_suffix(".json"), copy.with_suffix(".json"))
    clean_error(cli("weights", "add", copy), match="sha256 does not match")
    assert not user_home.exists() or not list(user_home.iterdir())
    copy.with_suffix(".json").unlink()
    clean_error(cli("weights", "add", copy), match="manifest")


def test_files_of_the_previous_release_decode_after_new_weights_ship(fuzzlib, astronaut, tmp_path, user_home,
                                                                     monkeypatch):
    """Two seeded models stand for two releases: the old one kept under previous/."""
    shipped = tmp_path / "shipped"
    old = fuzzlib.save_seeded_weights(tmp_path / "release1", seed=3)
    old_file = progcodec.encode(astronaut, model=str(old))
    old_pixels = _pixels(progcodec.decode(old_file, model=str(old)))
    # release 2: new vam.safetensors; the old weights move to previous/ under their id
    fuzzlib.save_seeded_weights(shipped, seed=4)
    weights_id = progcodec.info(old_file)["weights"]
    (shipped / "previous").mkdir()
    shutil.move(old, shipped / "previous" / f"vam-{weights_id}.safetensors")
    shutil.move(old.with_suffix(".json"), shipped / "previous" / f"vam-{weights_id}.json")
    monkeypatch.setattr(weights_mod, "shipped_weights_dir", lambda: shipped)
    monkeypatch.delenv("PROGCODEC_WEIGHTS")
    progcodec.api.get_model.cache_clear()
    try:
        new_file = progcodec.encode(astronaut)          # by name: the new release
        assert progcodec.info(new_file)["weights"] != weights_id
        assert np.array_equal(_pixels(progcodec.decode(old_file)), old_pixels)
        assert progcodec.decode(new_file).size == (96, 64)
    finally:
        progcodec.api.get_model.cache_clear()
