"""bfloat16 for the big float32 networks, and never for the entropy parameters.

On a CPU with native bf16 (AVX512-BF16, AMX) convolutions under ``torch.autocast``
run about twice as fast. Training uses it for the transforms (``--precision``).
Coding may use it for what only shapes pixels: the analysis and synthesis
transforms (GDN included) and the float32 mean-fill networks (``coding_precision``),
and for vam's hyper-analysis, which only the encoder runs (z is sent). The
exact parameter path that gives the rANS scale indexes (integer or float64) never
sees autocast (integers and float64 are types autocast leaves alone, and no call of
it runs inside ``coding_autocast``), so a file decodes bit-exactly whatever precision wrote or
reads it; only the pixels move, by a few hundredths of a dB.
"""

from __future__ import annotations

import contextlib
import warnings
from contextvars import ContextVar
from typing import TYPE_CHECKING

from .cpu_features import bf16_supported

if TYPE_CHECKING:
    import torch

# torch is imported where it is used: the CLI reads PRECISIONS for its options, and
# `progcodec --help` must not load torch.
PRECISIONS = ("fp32", "bf16", "auto")


def transform_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a ``precision`` of fp32, bf16 or auto on ``device`` (None:
    float32). auto is bf16 on CPUs with native bf16; emulated bf16 is several times slower
    (a 5x5 convolution ten times slower on an AVX2 CPU), so asking for it there warns."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision == "fp32" or (precision == "auto" and (device.type != "cpu" or not bf16_supported())):
        return None
    if device.type == "cpu" and not bf16_supported():
        warnings.warn("bf16 on a CPU without native bf16 (AVX512-BF16 or AMX) is emulated and runs several "
                      "times slower than fp32; --precision auto picks what this CPU runs fastest", stacklevel=2)
    return torch.bfloat16


def transform_precision(dtype: torch.dtype | None, device: torch.device):
    """Context for a network call: autocast to ``dtype``, or nothing for None/float32."""
    import torch

    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


# The dtype while coding: set per call (and per thread) by the API. A context variable, not
# a model attribute, because one loaded model serves every caller.
_coding_dtype: ContextVar[torch.dtype | None] = ContextVar("progcodec_coding_dtype", default=None)


@contextlib.contextmanager
def coding_precision(dtype: torch.dtype | None):
    """Coding calls inside run their pixel-only networks under autocast to ``dtype`` (None: float32),
    and every op under ``torch.inference_mode``: no autograd bookkeeping (version counters, view
    tracking), 2 % of an encode on a 768x512 image."""
    import torch

    token = _coding_dtype.set(dtype)
    try:
        with torch.inference_mode():
            yield
    finally:
        _coding_dtype.reset(token)


def coding_dtype() -> torch.dtype | None:
    """The dtype this coding call asked for (None: float32, or not coding at all)."""
    return _coding_dtype.get()


def coding_autocast(device: torch.device):
    """The context a pixel-only network (g_a, g_s, a mean fill) runs in while coding."""
    return transform_precision(coding_dtype(), device)
