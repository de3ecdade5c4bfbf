"""The Pillow plugin: Image.open on .pgc, one frame per layer prefix, im.save to .pgc."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import progcodec
import progcodec.pillow  # noqa: F401  (registers the plugin)


def test_open_and_every_frame_is_a_layer_prefix(tmp_path, encoded, by_layers):
    path = tmp_path / "p.pgc"
    path.write_bytes(encoded)
    with Image.open(path) as im:
        assert (im.format, im.mode, im.size, im.n_frames) == ("PGC", "RGB", (96, 64), len(by_layers))
        assert np.array_equal(np.asarray(im), by_layers[-1])       # opens at full quality
        for k in [0, 3, 1, len(by_layers) - 1, 2]:                   # forwards and backwards
            im.seek(k)
            assert im.tell() == k
            assert np.array_equal(np.asarray(im), by_layers[k]), k
        with pytest.raises(EOFError):
            im.seek(len(by_layers))


def test_a_cut_file_opens_with_its_complete_layers(encoded, layer_ends, by_layers):
    with Image.open(io.BytesIO(encoded[:layer_ends[2]])) as im:
        assert im.n_frames == 3 and np.array_equal(np.asarray(im), by_layers[2])


def test_save_encodes(tmp_path, astronaut):
    path = tmp_path / "saved.pgc"
    astronaut.save(path, ladder=5, preview=False)
    data = path.read_bytes()
    assert data == progcodec.encode(astronaut, ladder=5, preview=False)
    assert Image.open(path).n_frames == 5


def test_image_sequence_walks_coarse_to_fine(encoded, by_layers):
    from PIL import ImageSequence

    frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(io.BytesIO(encoded)))]
    assert len(frames) == len(by_layers) and all(np.array_equal(a, b) for a, b in zip(frames, by_layers))


def test_save_with_layers(tmp_path, astronaut):
    path = tmp_path / "three.pgc"
    astronaut.save(path, layers=3)
    assert path.read_bytes() == progcodec.encode(astronaut, layers=3)


def test_junk_is_not_identified(tmp_path):
    path = tmp_path / "junk.pgc"
    path.write_bytes(b"\x89PGC" + bytes(40))
    with pytest.raises(UnidentifiedImageError):
        Image.open(path)
