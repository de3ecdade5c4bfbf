"""vam's ladder: how many of the ranked residual's elements each layer has received.

Plain Python (no torch), so the container can name a standard ladder by its length.

    schedule   cumulative shares in (0, 1]      0.01, 0.02, ..., 1.0
    ladder     the same in units of 2**-24      167772, 335544, ..., 16777216   (the header's integers)
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from functools import lru_cache

# Cumulative fractions of ranked residual elements at the end of each chunk:
# small first chunks hold the most uncertain (most informative) elements.
DEFAULT_SCHEDULE = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0)


# Files store a schedule as integers in units of 2**-24 of the residual: exact
# in binary, so round(share * n) gives the same chunk bounds on every machine.
SHARE_UNIT = 1 << 24

# Measured quality curve of the ranked residual (shipped vam, all 24 Kodak
# images, PSNR-RGB): share received -> share of the full file's PSNR gain over
# the base. Equal steps along it give layers that add similar quality.
# Format version 8 names standard_ladder(n) by n alone: changing this curve
# changes what those files mean (tests pin every standard ladder).
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


@lru_cache(maxsize=128)   # every header parse and encode asks; 2 ms of decimal math for 16 chunks
def standard_ladder(chunks: int) -> tuple[int, ...]:
    """The ladder of ``chunks`` cumulative shares ending at 1.0, equally spaced in quality along
    QUALITY_CURVE (linearly in log share between its points, linearly in share below the first).

    Computed in decimal arithmetic, whose exp and ln are correctly rounded: the same integers on
    every machine, which lets a header name this ladder by its length (format version 8)."""
    if not 1 <= chunks <= 1 << 16:
        raise ValueError(f"a standard ladder has 1 to {1 << 16} residual chunks, not {chunks}")
    curve = [(Decimal(repr(s)), Decimal(repr(g))) for s, g in QUALITY_CURVE]
    ladder = []
    with localcontext() as ctx:
        ctx.prec = 34
        for k in range(1, chunks + 1):
            gain = Decimal(k) / Decimal(chunks)
            for (s0, g0), (s1, g1) in zip(curve, curve[1:]):
                if gain <= g1:
                    t = (gain - g0) / (g1 - g0)
                    share = s0 + t * (s1 - s0) if s0 == 0 else (s0.ln() + t * (s1.ln() - s0.ln())).exp()
                    break
            q = int((share * SHARE_UNIT).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
            ladder.append(min(SHARE_UNIT, max(1, q)))
    for i in range(1, len(ladder)):      # keep strictly rising after rounding to the unit
        ladder[i] = max(ladder[i], ladder[i - 1] + 1)
    ladder[-1] = SHARE_UNIT
    return tuple(ladder)


def even_quality_schedule(chunks: int) -> tuple[float, ...]:
    """``chunks`` cumulative shares ending at 1.0, equally spaced in quality (standard_ladder)."""
    return ladder_to_schedule(standard_ladder(chunks))


def validate_schedule(schedule, complete: bool = True) -> tuple[float, ...]:
    """Cumulative shares rising strictly from above 0; ending at 1.0 unless ``complete`` is False
    (a file cut to rate targets may never send the last elements: they stay mean-filled)."""
    schedule = tuple(float(f) for f in schedule)
    if not schedule or (complete and schedule[-1] != 1.0) or schedule[-1] > 1.0:
        raise ValueError("a chunk schedule must end at 1.0")
    if any(b <= a for a, b in zip(schedule, schedule[1:])) or schedule[0] <= 0:
        raise ValueError("a chunk schedule must rise strictly from above 0 to 1.0")
    return schedule
