"""Ranking residual elements and splitting them into chunks: complementary, covering, deterministic."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from progcodec.coding.ladder import DEFAULT_SCHEDULE, validate_schedule
from progcodec.coding.ranking import chunk_bounds, chunk_positions, rank_elements, top_fraction_mask


def _covers_exactly_once(chunks: list[torch.Tensor], n: int) -> None:
    everything = torch.cat(chunks) if chunks else torch.empty(0, dtype=torch.long)
    assert everything.numel() == n
    assert torch.equal(torch.sort(everything).values, torch.arange(n))


@st.composite
def index_maps(draw):
    shape = (1, draw(st.integers(1, 6)), draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    n = shape[1] * shape[2] * shape[3]
    high = draw(st.sampled_from([1, 2, 5, 64]))   # 1: all ties
    values = draw(st.lists(st.integers(0, high - 1), min_size=n, max_size=n))
    return torch.tensor(values, dtype=torch.int32).reshape(shape)


@st.composite
def schedules(draw):
    points = draw(st.lists(st.floats(0.001, 0.999, allow_nan=False), max_size=12, unique=True))
    return tuple(sorted(points)) + (1.0,)


@settings(max_examples=300)
@given(index_maps(), st.one_of(st.just(DEFAULT_SCHEDULE), schedules()))
def test_chunks_are_complementary_and_covering(indexes, schedule):
    chunks = chunk_positions(indexes, schedule)
    assert len(chunks) == len(schedule)
    _covers_exactly_once(chunks, indexes.numel())
    # most uncertain first: no element of a later chunk outranks one of an earlier chunk
    flat = indexes.reshape(-1)
    for a, b in zip(chunks, chunks[1:]):
        if a.numel() and b.numel():
            assert flat[a].min() >= flat[b].max()


@settings(max_examples=200)
@given(index_maps())
def test_ranking_is_stable_and_deterministic(indexes):
    order = rank_elements(indexes)
    flat = indexes.reshape(-1).long()
    ranked = flat[order]
    assert torch.all(ranked[:-1] >= ranked[1:])                   # descending index
    ties = ranked[:-1] == ranked[1:]
    assert torch.all(order[:-1][ties] < order[1:][ties])          # ties broken by position
    assert torch.equal(order, rank_elements(indexes.clone()))
    # the same map in another dtype or layout ranks the same
    assert torch.equal(order, rank_elements(indexes.to(torch.int64).contiguous()))


@settings(max_examples=100)
@given(index_maps())
def test_ranking_is_the_stable_sort_of_the_negated_indexes(indexes):
    """The byte-key radix sort gives exactly torch's stable sort, the order files were written in."""
    flat = indexes.reshape(-1).to(torch.int64)
    assert torch.equal(rank_elements(indexes), torch.sort(-flat, stable=True).indices)


def test_indexes_beyond_one_byte_rank_the_same_way():
    indexes = torch.tensor([300, 5, 300, 0, 256, 255, 5, -1], dtype=torch.int32)
    assert rank_elements(indexes).tolist() == [0, 2, 4, 5, 1, 6, 3, 7]


@given(st.integers(0, 5000), st.one_of(st.just(DEFAULT_SCHEDULE), schedules()))
def test_chunk_bounds_cover_in_order(n, schedule):
    bounds = chunk_bounds(n, schedule)
    assert len(bounds) == len(schedule)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    for (a0, a1), (b0, b1) in zip(bounds, bounds[1:]):
        assert a0 <= a1 == b0 <= b1


def test_default_schedule_gives_nonempty_chunks_for_the_smallest_image():
    # a 64x64 padded image has a 4x4 latent with 192 channels: every chunk holds elements
    for n in (192 * 4 * 4, 192 * 4 * 6, 192 * 64 * 64):
        assert all(b > a for a, b in chunk_bounds(n))


@pytest.mark.parametrize("schedule", [(), (0.5,), (0.5, 0.9), (0.0, 1.0), (0.5, 0.5, 1.0), (0.6, 0.4, 1.0),
                                      (-0.1, 1.0), (0.5, 1.0, 1.0), (1.5, 1.0)])
def test_invalid_schedules_are_rejected(schedule):
    with pytest.raises(ValueError):
        validate_schedule(schedule)


def test_valid_schedules():
    assert validate_schedule([1]) == (1.0,)
    assert validate_schedule(DEFAULT_SCHEDULE) == DEFAULT_SCHEDULE


def test_all_ties_rank_by_position():
    indexes = torch.zeros(1, 2, 3, 3, dtype=torch.int32)
    assert torch.equal(rank_elements(indexes), torch.arange(18))


@settings(max_examples=100)
@given(st.integers(1, 3), st.integers(1, 40), st.data())
def test_top_fraction_mask_keeps_the_largest_scales(batch, n, data):
    scales = torch.tensor(data.draw(st.lists(st.floats(0.1, 10, allow_nan=False), min_size=batch * n,
                                             max_size=batch * n)), dtype=torch.float32).reshape(batch, n, 1, 1)
    fraction = torch.tensor(data.draw(st.lists(st.floats(0, 1), min_size=batch, max_size=batch)))
    mask = top_fraction_mask(scales, fraction)
    assert mask.shape == scales.shape
    for i in range(batch):
        keep = int(torch.round(fraction[i] * n))
        m = mask[i].reshape(-1)
        assert int(m.sum()) == keep
        if 0 < keep < n:
            assert scales[i].reshape(-1)[m.bool()].min() >= scales[i].reshape(-1)[~m.bool()].max()


def test_real_model_chunks_are_complementary(net, astronaut):
    """The chunks of the fixture model's own residual index map cover every element once."""
    from progcodec.image import pad, to_tensor

    with torch.no_grad():
        x = pad(to_tensor(astronaut), net.stride)
        features = net.g_a(x)
        y_base = net.head_base(features)
        z = net.h_a(torch.cat([y_base, net.head_top(features)], 1))
        z_hat = net.entropy_bottleneck.decompress(net.entropy_bottleneck.compress(z), z.shape[-2:])
        hyper, means_b, _ = net._base_parameters(z_hat)
        y_hat_base = torch.round(y_base.double() - means_b) + means_b
        _, indexes, chunks = net.residual._parameters64(y_hat_base, hyper)
    assert indexes.unique().numel() > 5, "the fixture model should rank on real, varied scales"
    assert len(chunks) == net.num_layers - 1
    _covers_exactly_once(chunks, indexes.numel())
    assert all(c.numel() > 0 for c in chunks)


@pytest.mark.parametrize("symbol, index", [(2, 30), (0, 0), (-7, 10), (100, 30), (-300, 5), (3, 63)])
def test_a_one_element_chunk_codes_and_decodes(net, symbol, index):
    """A chunk of one element (rate targets where nothing more fits, long ladders on small
    images) is a one-symbol rANS stream, which CompressAI's encoder alone would crash on."""
    coder = net.residual._coder
    string = coder.encode(torch.tensor([float(symbol)]), torch.tensor([index], dtype=torch.int32))
    assert coder.decode(string, torch.tensor([index], dtype=torch.int32)).tolist() == [float(symbol)]


def test_rate_target_on_the_base_alone_sends_one_element(astronaut, net):
    """A first target of exactly the base layer (as the error for a smaller one names it):
    no residual element fits, and the first one goes anyway."""
    import re

    import progcodec
    from progcodec.errors import ProgcodecError

    full = len(progcodec.encode(astronaut, ladder=2, preview=False))
    with pytest.raises(ProgcodecError, match="below the base layer") as e:
        progcodec.encode(astronaut, max_bytes=[1, full])
    base = int(re.search(r"\((\d+) B\)", str(e.value)).group(1))
    data = progcodec.encode(astronaut, max_bytes=[base, full + 50])
    assert progcodec.info(data)["layers"][0]["cumulative_bytes"] <= base + 256
    assert progcodec.decode(data, layers=1).size == (96, 64)
    assert progcodec.decode(data).size == (96, 64)


def test_shared_chunk_ends_are_one_ranking_of_all_tiles():
    """Chunk k of every tile together is chunk k of one ranking of all their elements
    (scale index, most uncertain first, ties by tile, then by position)."""
    from progcodec.coding.ranking import shared_chunk_ends

    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        tiles = [torch.randint(0, 6, (int(torch.randint(1, 40, (1,), generator=g)),), generator=g)
                 for _ in range(int(torch.randint(1, 5, (1,), generator=g)))]
        schedule = sorted({round(float(x), 3) for x in torch.rand(3, generator=g)} - {0.0, 1.0}) + [1.0]
        ends = shared_chunk_ends([torch.bincount(t).tolist() for t in tiles], schedule)
        ranked = sorted((-int(v), tile, pos) for tile, t in enumerate(tiles) for pos, v in enumerate(t))
        for k, share in enumerate(schedule):
            top = ranked[:round(share * len(ranked))]
            for tile, t in enumerate(tiles):
                mine = sorted(pos for _, owner, pos in top if owner == tile)
                assert ends[tile][k] == len(mine)
                assert sorted(rank_elements(t)[:len(mine)].tolist()) == mine   # the tile's own ranked prefix
