"""Format 10's symbol coding: rANS grouped by CDF table (coding/grouped_rans.py)."""

from __future__ import annotations

import numpy as np
import pytest
from compressai.entropy_models import GaussianConditional
from compressai.models.google import get_scale_table
from hypothesis import given, settings
from hypothesis import strategies as st

from progcodec.coding.gaussian import GaussianSymbolCoder
from progcodec.errors import ContainerError


@pytest.fixture(scope="module")
def coder() -> GaussianSymbolCoder:
    gaussian = GaussianConditional(None)
    gaussian.update_scale_table(get_scale_table())
    gaussian.update()
    return GaussianSymbolCoder(gaussian)


def _read(coder, string: bytes, indexes: np.ndarray, pieces, grouped=True) -> np.ndarray:
    stream = coder.stream(string, len(indexes), grouped)
    edges = [0, *pieces, len(indexes)]
    import torch

    parts = [stream.read(torch.from_numpy(indexes[a:b])) for a, b in zip(edges, edges[1:])]
    return np.concatenate([p.numpy() for p in parts]).astype(np.int64)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_symbols_round_trip_in_pieces(coder, data):
    """Symbols far outside their tables (escapes, up to 2**28), in any number of pieces read
    in order, come back exactly."""
    n = data.draw(st.integers(1, 400))
    tables = len(coder.cdfs)
    indexes = np.array(data.draw(st.lists(st.integers(0, tables - 1), min_size=n, max_size=n)), dtype=np.int64)
    reach = data.draw(st.sampled_from([2, 40, 5000, 1 << 28]))
    symbols = np.array(data.draw(st.lists(st.integers(-reach, reach), min_size=n, max_size=n)), dtype=np.int64)
    pieces = sorted(set(data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=4)))) if n > 1 else []
    string = coder.encode_arrays(symbols, indexes, pieces)
    assert len(string) % 4 == 0
    assert np.array_equal(_read(coder, string, indexes, pieces), symbols)


def test_same_symbols_either_way_and_fewer_bytes_for_short_strings(coder):
    """A latent-like array: the grouped string holds what CompressAI's one-by-one string holds,
    in no more bytes (up to its final state's word)."""
    rng = np.random.default_rng(0)
    indexes = rng.integers(0, 30, 20000)
    scales = coder.gaussian.scale_table[indexes].numpy()
    symbols = np.round(rng.normal(0, scales)).astype(np.int64)
    grouped = coder.encode_arrays(symbols, indexes)
    one_by_one = coder.encode_arrays(symbols, indexes, grouped=False)
    assert np.array_equal(_read(coder, grouped, indexes, []), symbols)
    assert np.array_equal(_read(coder, one_by_one, indexes, [], grouped=False), symbols)
    assert len(grouped) <= len(one_by_one) + 4


def test_encoding_is_deterministic_and_order_matters(coder):
    rng = np.random.default_rng(1)
    indexes = rng.integers(0, 64, 3000)
    symbols = rng.integers(-6, 7, 3000)
    a, b = coder.encode_arrays(symbols, indexes), coder.encode_arrays(symbols.copy(), indexes.copy())
    assert a == b
    # the decoder groups by its own indexes: other indexes read other symbols, never the same ones
    other = (indexes + 1) % 64
    assert not np.array_equal(_read(coder, a, other, []), symbols)


def test_empty_and_bad_strings_are_clean(coder):
    assert coder.encode_arrays(np.zeros(0, np.int64), np.zeros(0, np.int64)) == b""
    with pytest.raises(ContainerError, match="32-bit words"):
        coder.stream(b"\x01\x02\x03", 5)
    with pytest.raises(ValueError, match="names no table"):
        coder.encode_arrays(np.zeros(3, np.int64), np.array([0, 1, 64]))
    with pytest.raises(ValueError, match="too far outside"):
        coder.encode_arrays(np.array([1 << 30]), np.array([3]))
    # garbage words decode to some symbols (the header checksums and layer CRCs stand before this)
    garbage = np.random.default_rng(2).integers(0, 2**32, 64, dtype=np.uint64).astype("<u4").tobytes()
    indexes = np.random.default_rng(3).integers(0, 64, 5000)
    assert _read(coder, garbage, indexes, []).shape == (5000,)


def test_a_string_no_encoder_wrote_is_a_clean_error(coder):
    """constriction refuses a stack whose last word is zero: a ContainerError, as any corrupt layer."""
    with pytest.raises(ContainerError, match="corrupt layer"):
        coder.stream(b"\x05\x00\x00\x00\x00\x00\x00\x00", 5)
