"""Rate Enhancement Modules (vam): one coding path for encoder and decoder, checked by checksums."""

from __future__ import annotations

import numpy as np
import pytest

import progcodec
from progcodec import container
from progcodec.coding.rem import rem_positions
from progcodec.errors import DeterminismError, ProgcodecError
from progcodec.weights import save_weights


@pytest.fixture(scope="module")
def rem_weights(fuzzlib, tmp_path_factory):
    """Seeded vam weights with two REMs whose last layers are not zero (the seeded recipe
    makes them refine: an untrained REM is the identity)."""
    model = fuzzlib.seeded_model(0, "vam", rem_shares=(0.05, 0.3))
    assert all(rem.net[-1].weight.abs().sum() > 0 for rem in model.residual.rems)
    path = tmp_path_factory.mktemp("rem") / "vam.safetensors"
    save_weights(model, path, {"note": "seeded, with REMs, for tests"})
    return str(path)


def _pixels(image):
    return np.asarray(image)


@pytest.mark.parametrize("options", [{}, {"ladder": 40}, {"ladder": 5, "preview": False}, {"ladder": "trained"}])
def test_every_prefix_round_trips_with_rems(astronaut, rem_weights, options):
    data = progcodec.encode(astronaut, model=rem_weights, **options)
    header = container.parse(data).header
    assert header.rem and header.version == container.FORMAT_VERSION and len(header.checksums) == 5
    meta = progcodec.info(data)
    assert meta["rem"] is True
    streamed = [image for _, image in progcodec.iter_decode(data, model=rem_weights)]
    assert len(streamed) == len(meta["layers"])
    for layer, image in zip(meta["layers"], streamed):
        cut = data[:layer["cumulative_bytes"]]
        expected = _pixels(progcodec.decode(data, layers=layer["index"], model=rem_weights))
        assert np.array_equal(_pixels(progcodec.decode(cut, model=rem_weights)), expected)
        assert np.array_equal(_pixels(image), expected)


def test_rems_change_the_bits_and_the_mean_fill_but_not_the_first_layers(astronaut, rem_weights):
    """Before the first REM point the file is what it is without REMs; after it, later chunks
    are coded with refined parameters, and a cut file's mean fill uses them."""
    with_rem = progcodec.encode(astronaut, model=rem_weights, ladder=40)
    without = progcodec.encode(astronaut, model=rem_weights, ladder=40, rem=False)
    a, b = container.parse(with_rem), container.parse(without)
    assert not b.header.rem and b.header.version == container.FORMAT_VERSION and len(b.header.checksums) == 3
    assert a.layers[:3] == b.layers[:3] and a.layers != b.layers
    late = len(a.layers) - 3
    assert not np.array_equal(_pixels(progcodec.decode(with_rem, layers=late, model=rem_weights)),
                              _pixels(progcodec.decode(without, layers=late, model=rem_weights)))


def test_a_rate_target_file_with_rems(astronaut, rem_weights):
    plain = progcodec.info(progcodec.encode(astronaut, model=rem_weights, ladder=2, preview=False))["layers"]
    base, full = plain[0]["cumulative_bytes"], plain[-1]["cumulative_bytes"]
    targets = [base + 100, (base + full) // 2, full - 200]
    data = progcodec.encode(astronaut, model=rem_weights, max_bytes=targets)
    ends = [layer["cumulative_bytes"] for layer in progcodec.info(data)["layers"]]
    assert all(abs(e - t) <= max(0.03 * t, 256) for e, t in zip(ends, targets))
    for k in range(1, 4):
        progcodec.decode(data, layers=k, model=rem_weights)


def test_the_rem_checksum_stops_a_decoder_that_refines_differently(astronaut, rem_weights, fuzzlib):
    data = progcodec.encode(astronaut, model=rem_weights, ladder=40)
    header = container.parse(data).header
    lying = fuzzlib.set_field(data, "checks", header.checksums[3] ^ 1, index=3)
    assert progcodec.decode(lying, layers=2, model=rem_weights).size == astronaut.size   # before the REM point
    with pytest.raises(DeterminismError, match="refined residual scale indexes"):
        progcodec.decode(lying, model=rem_weights)


def test_rems_need_weights_that_have_them(astronaut, rem_weights, net, fuzzlib):
    with pytest.raises(ProgcodecError, match="no Rate Enhancement Modules"):
        progcodec.encode(astronaut, rem=True)             # the seeded test vam has none
    plain = progcodec.encode(astronaut)
    assert not container.parse(plain).header.rem
    with pytest.raises(ProgcodecError, match="REMs"):     # a header that claims REMs for weights without
        progcodec.decode(fuzzlib.set_field(plain, "layout", fuzzlib.get_field(plain, "layout") | container.LAYOUT_REM))


def test_an_untrained_rem_changes_nothing(astronaut, fuzzlib, tmp_path):
    model = fuzzlib.seeded_model(0, "vam", rem_shares=(0.1,))
    fresh = type(model.residual.rems[0])(model.M)        # as constructed: its last layer is zero
    model.residual.rems[0].load_state_dict(fresh.state_dict())
    path = tmp_path / "vam.safetensors"
    save_weights(model, path, {"note": "zero REM"})
    with_rem = container.parse(progcodec.encode(astronaut, model=str(path)))
    without = container.parse(progcodec.encode(astronaut, model=str(path), rem=False))
    assert with_rem.layers == without.layers


def test_rem_positions():
    assert rem_positions(1000, (0.05, 0.3)) == [50, 300]
    assert rem_positions(10, (0.01, 0.999)) == [None, None]
