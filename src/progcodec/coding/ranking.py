"""One place for ranking residual elements and splitting them into chunks."""

from __future__ import annotations

import torch

# Cumulative fractions of ranked residual elements at the end of each chunk:
# small first chunks hold the most uncertain (most informative) elements.
DEFAULT_SCHEDULE = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0)


def validate_schedule(schedule) -> tuple[float, ...]:
    schedule = tuple(float(f) for f in schedule)
    if not schedule or schedule[-1] != 1.0:
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
    ends = [round(f * num_elements) for f in validate_schedule(schedule)]
    starts = [0] + ends[:-1]
    return list(zip(starts, ends))


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
