"""Streaming decode: layers decode as their bytes arrive, each exactly like decode(data, layers=k)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

import progcodec
from progcodec import container
from progcodec.errors import ContainerError, ProgcodecError, ProgcodecWarning


def _same(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def _one_byte_at_a_time(data: bytes):
    for i in range(len(data)):
        yield data[i:i + 1]


@pytest.mark.parametrize("ladder, preview", [(None, None), ("trained", False)])
def test_one_byte_at_a_time_yields_every_layer_like_decode(encoded, astronaut, ladder, preview):
    data = encoded if ladder is None else progcodec.encode(astronaut, ladder=ladder, preview=preview)
    count = len(progcodec.info(data)["layers"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frames = list(progcodec.iter_decode(_one_byte_at_a_time(data)))
    assert [k for k, _ in frames] == list(range(1, count + 1))
    for k, image in frames:
        assert _same(image, progcodec.decode(data, layers=k)), k


@pytest.mark.parametrize("model", ["vam", "progdtd"])
def test_file_objects_and_whole_bytes(astronaut, model):
    data = progcodec.encode(astronaut, model=model)
    from_file = list(progcodec.iter_decode(io.BytesIO(data)))
    from_bytes = list(progcodec.iter_decode(data))
    assert len(from_file) == len(from_bytes) == len(progcodec.info(data)["layers"])
    for (k, a), (j, b) in zip(from_file, from_bytes):
        assert k == j and _same(a, b) and _same(a, progcodec.decode(data, layers=k))


def test_a_stream_cut_inside_a_layer_yields_the_complete_layers_and_warns(encoded, layer_ends, by_layers):
    cut = encoded[:layer_ends[4] + 3]
    with pytest.warns(ProgcodecWarning, match="cut inside layer 6"):
        frames = list(progcodec.iter_decode(_one_byte_at_a_time(cut)))
    assert [k for k, _ in frames] == [1, 2, 3, 4, 5]
    assert _same(frames[-1][1], by_layers[4])


def test_a_damaged_layer_ends_the_stream_with_a_warning(encoded, layer_ends, by_layers):
    damaged = bytearray(encoded)
    damaged[layer_ends[2] + 1] ^= 0xFF          # inside layer 4
    with pytest.warns(ProgcodecWarning, match="layer 4 is corrupt"):
        frames = list(progcodec.iter_decode(iter([bytes(damaged[:500]), bytes(damaged[500:])])))
    assert [k for k, _ in frames] == [1, 2, 3] and _same(frames[-1][1], by_layers[2])


@pytest.mark.parametrize("data, match", [(b"", "empty"), (b"\x89PNG\r\n\x1a\n", "bad magic"),
                                         (None, "truncated inside its header"), ("first", "cut inside layer 1")])
def test_no_complete_first_layer_is_an_error(encoded, layer_ends, data, match):
    if data is None:
        data = encoded[:20]
    elif data == "first":
        data = encoded[:layer_ends[0] - 1]
    with pytest.raises(ContainerError, match=match):
        list(progcodec.iter_decode(data))


def test_layer_ranges_for_range_requests(encoded, layer_ends):
    head = encoded[:container.MAX_HEADER_BYTES]          # what a client fetches first
    ranges = container.layer_ranges(head)
    assert ranges[0] == (0, container.parse(encoded).header_size)
    assert [end for _, end in ranges[1:]] == layer_ends
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    # fetching them one by one and feeding the stream gives the same file
    stream = container.LayerStream()
    for start, end in ranges:
        stream.feed(encoded[start:end])
    stream.close()
    assert stream.layers == container.parse(encoded).layers and stream.problems == []
    with pytest.raises(ContainerError):
        container.layer_ranges(encoded[:10])


def test_the_largest_possible_header_fits_max_header_bytes():
    layers = [b""] * container.MAX_LAYERS
    data = container.build("v" * container.MAX_NAME, bytes(8), 1, 1, layers, tuple(range(container.MAX_CHECKSUMS)),
                           preview=True, ladder=tuple(range(1, container.MAX_LAYERS + 1)), tile=(64, 64), version=5)
    assert container.parse(data).header_size == container.MAX_HEADER_BYTES      # versions 1-5: CRCs in the header
    assert container.parse(container.convert(data, 6)).header_size < container.MAX_HEADER_BYTES


def test_cli_each_layer_from_stdin(cli, encoded, tmp_path, by_layers):
    pattern = str(tmp_path / "frame_%02d.png")
    result = cli("decode", "-", "--each-layer", "-o", pattern, input=encoded)
    assert result.exit_code == 0, result.stderr
    assert len(result.stderr.splitlines()) == len(by_layers)
    for k, expected in enumerate(by_layers, start=1):
        assert _same(Image.open(pattern % k), expected)
    again = cli("decode", "-", "--each-layer", "-o", pattern, input=encoded)
    assert again.exit_code == 1 and "exists" in again.stderr      # no silent overwrite, frame after frame
    assert cli("decode", "-", "--each-layer", "-o", str(tmp_path / "x.png"), input=encoded).exit_code == 2
    assert cli("decode", "-", "--each-layer", input=encoded).exit_code == 2


def test_iter_decode_with_wrong_weights_is_an_error(astronaut, other_weights_path):
    data = progcodec.encode(astronaut, model=str(other_weights_path))
    with pytest.raises(ProgcodecError, match="weights"):
        next(progcodec.iter_decode(data))
