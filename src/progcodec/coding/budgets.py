"""Layers cut to byte budgets: the most elements of a ranked order that fit, by bisection.

Both models send a latent as ranges of one fixed order (vam: the residual
ranked by σ; progdtd: channel by channel, each ranked by σ), so a rate target
is a question of where each range ends. Every candidate is a real rANS string:
its length is what the file will hold, never an estimate.
"""

from __future__ import annotations

from collections.abc import Callable


def fit_ranges(encode_range: Callable[[int, int], bytes], num_elements: int, fixed: int,
               budgets: list[int]) -> tuple[list[int], list[bytes]]:
    """End of each range and its string, so that ``fixed`` plus the strings so far
    lands on each cumulative budget (in bytes, rising).

    The first range shares its budget with the ``fixed`` bytes (what the first
    layer holds besides: z, a base latent, string tables). Each range holds at
    least one element: where not even one fits, it overshoots by that one
    (within the 3 % / 256 B tolerance that rate targets promise). A budget
    below ``fixed`` or beyond every element raises ``ValueError`` naming the
    limit in bytes of payload.
    """
    if budgets and budgets[0] < fixed:
        raise ValueError(f"the first target is below the base layer ({fixed} B of payload)")
    ends, strings, spent, start = [], [], fixed, 0
    for k, budget in enumerate(budgets, start=1):
        if start >= num_elements:
            raise ValueError(f"target {k} lies beyond the whole file (at most {spent} B of payload)")
        lo, hi, best = start + 1, num_elements, None   # the largest end whose range fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            string = encode_range(start, mid)
            if spent + len(string) <= budget:
                lo, best = mid, string
            else:
                hi = mid - 1
        if best is None:
            best = encode_range(start, lo)
        if lo == num_elements and spent + len(best) < budget - max(0.03 * budget, 256):
            raise ValueError(f"target {k} lies beyond the whole file (at most {spent + len(best)} B of payload)")
        ends.append(lo)
        strings.append(best)
        spent += len(best)
        start = lo
    return ends, strings
