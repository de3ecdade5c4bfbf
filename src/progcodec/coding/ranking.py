"""One place for ranking residual elements and splitting them into chunks."""

from __future__ import annotations

import math

import torch

# Cumulative fractions of ranked residual elements at the end of each chunk:
# small first chunks hold the most uncertain (most informative) elements.
DEFAULT_SCHEDULE = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0)


# Files store a schedule as integers in units of 2**-24 of the residual: exact
# in binary, so round(share * n) gives the same chunk bounds on every machine.
SHARE_UNIT = 1 << 24

# Measured quality curve of the ranked residual (shipped vam, all 24 Kodak
# images, PSNR-RGB): share received -> share of the full file's PSNR gain over
# the base. Equal steps along it give layers that add similar quality.
QUALITY_CURVE = ((0.0, 0.0), (0.005, 0.042), (0.01, 0.071), (0.02, 0.117), (0.04, 0.189), (0.08, 0.306),
                 (0.16, 0.489), (0.32, 0.744), (0.64, 0.963), (1.0, 1.0))


def schedule_to_ladder(schedule) -> tuple[int, ...]:
    """A schedule as the header's integers (shares in units of 2**-24)."""
    return tuple(int(round(f * SHARE_UNIT)) for f in validate_schedule(schedule))


def ladder_to_schedule(ladder) -> tuple[float, ...]:
    """The header's integers back to shares (exactly; rejected unless a valid schedule)."""
    if any(not 0 < q <= SHARE_UNIT for q in ladder):
        raise ValueError("ladder shares must lie in (0, 1]")
    return validate_schedule([q / SHARE_UNIT for q in ladder], complete=False)


def share_of(count: int, num_elements: int) -> int:
    """The ladder integer whose share gives back exactly ``count`` of ``num_elements`` in chunk_bounds."""
    q = round(count * SHARE_UNIT / num_elements)
    if round(q / SHARE_UNIT * num_elements) != count:
        raise ValueError(f"{num_elements} residual elements are too many for the share unit")
    return q


def even_quality_schedule(chunks: int, curve=QUALITY_CURVE) -> tuple[float, ...]:
    """``chunks`` cumulative shares ending at 1.0, equally spaced in quality along ``curve``
    (interpolated linearly in log share, and linearly in share below the first measured point)."""
    if chunks < 1:
        raise ValueError("a ladder needs at least one residual chunk")
    shares = []
    for k in range(1, chunks + 1):
        gain = k / chunks
        for (s0, g0), (s1, g1) in zip(curve, curve[1:]):
            if gain <= g1:
                t = (gain - g0) / (g1 - g0)
                share = s0 + t * (s1 - s0) if s0 == 0 else math.exp(math.log(s0) + t * (math.log(s1) - math.log(s0)))
                break
        shares.append(share)
    ladder = [min(SHARE_UNIT, max(1, round(f * SHARE_UNIT))) for f in shares]
    for i in range(1, len(ladder)):      # keep strictly rising after rounding to the unit
        ladder[i] = max(ladder[i], ladder[i - 1] + 1)
    ladder[-1] = SHARE_UNIT
    return ladder_to_schedule(ladder)


def validate_schedule(schedule, complete: bool = True) -> tuple[float, ...]:
    """Cumulative shares rising strictly from above 0; ending at 1.0 unless ``complete`` is False
    (a file cut to rate targets may never send the last elements: they stay mean-filled)."""
    schedule = tuple(float(f) for f in schedule)
    if not schedule or (complete and schedule[-1] != 1.0) or schedule[-1] > 1.0:
        raise ValueError("a chunk schedule must end at 1.0")
    if any(b <= a for a, b in zip(schedule, schedule[1:])) or schedule[0] <= 0:
        raise ValueError("a chunk schedule must rise strictly from above 0 to 1.0")
    return schedule


def rank_elements(indexes: torch.Tensor) -> torch.Tensor:
    """Flat positions of ``indexes`` ordered most uncertain first.

    Ranking uses the integer scale-table index, never the float scale, and a
    stable sort breaks ties by position: encoder and decoder agree exactly.
    """
    flat = indexes.reshape(-1).to(torch.int64)
    return torch.sort(-flat, stable=True).indices


def chunk_bounds(num_elements: int, schedule=DEFAULT_SCHEDULE) -> list[tuple[int, int]]:
    """[start, end) of each chunk in the ranked order; together they cover all."""
    return bounds_of([round(f * num_elements) for f in validate_schedule(schedule, complete=False)])


def bounds_of(ends) -> list[tuple[int, int]]:
    """[start, end) of each chunk from the chunks' ends."""
    return list(zip([0, *ends[:-1]], ends))


def shared_chunk_ends(histograms: list, schedule=DEFAULT_SCHEDULE) -> list[list[int]]:
    """Each tile's chunk ends, in its own ranked order, such that chunk k of every tile together
    is chunk k of one ranking of all tiles' elements (scale index, most uncertain first, ties
    by tile, then by position): a tiled file spends each layer's bytes where the whole image
    needs them, not a fixed share of every tile. ``histograms[t][v]``: tile t's elements of
    scale index v."""
    levels = max(len(h) for h in histograms)
    counts = torch.zeros((len(histograms), levels), dtype=torch.int64)
    for t, h in enumerate(histograms):
        counts[t, :len(h)] = torch.as_tensor(h, dtype=torch.int64)
    descending = counts.flip(1)                   # most uncertain level first
    through = descending.sum(0).cumsum(0)         # elements at this level or a more uncertain one
    total = int(through[-1])
    ends = []
    for f in validate_schedule(schedule, complete=False):
        target = round(f * total)
        level = min(int(torch.searchsorted(through, target)), levels - 1)
        above = descending[:, :level].sum(1)
        at = descending[:, level]
        before = torch.cat([torch.zeros(1, dtype=torch.int64), at.cumsum(0)[:-1]])   # ties: earlier tiles first
        take = (target - int(above.sum()) - before).clamp(min=0).minimum(at)
        ends.append((above + take).tolist())
    return [list(tile_ends) for tile_ends in zip(*ends)]


def chunk_positions(indexes: torch.Tensor, schedule=DEFAULT_SCHEDULE) -> list[torch.Tensor]:
    """Flat positions of each chunk's elements (complementary, covering)."""
    order = rank_elements(indexes)
    return [order[a:b] for a, b in chunk_bounds(order.numel(), schedule)]


def top_fraction_mask(scales: torch.Tensor, fraction: torch.Tensor) -> torch.Tensor:
    """Training-time mask: per image, the ``fraction`` of elements with the largest scale.

    ``scales`` is (B, C, H, W), ``fraction`` is (B,). Matches the inference
    ranking up to the quantisation of scales into table indexes.
    """
    b = scales.shape[0]
    flat = scales.detach().reshape(b, -1)
    n = flat.shape[1]
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(n, device=flat.device).expand(b, n))
    keep = torch.round(fraction.reshape(b, 1) * n)
    return (ranks < keep).reshape(scales.shape).to(scales.dtype)
