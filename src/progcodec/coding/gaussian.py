"""rANS coding of Gaussian-distributed symbols, and the float64 parameter path.

Everything here that decides *which* CDF codes a symbol runs in float64 on the
CPU: rANS decodes only when the decoder's scale indexes equal the encoder's
exactly (CompressAI issue #279), and float32 results move with thread count and
device. Means and scales are rounded to a fixed grid so that the last bits of a
float64 sum cannot matter either.
"""

from __future__ import annotations

import copy
import math
import zlib

import numpy as np
import torch
from torch import nn

from .._compressai import GaussianConditional, RansDecoder, RansEncoder
from ..errors import DeterminismError
from ..precision import coding_autocast
from .grouped_rans import GroupedTables

# Entropy parameters are snapped to multiples of 2**-PARAM_GRID_BITS: far finer
# than any coding effect, far coarser than float64 round-off between machines.
PARAM_GRID_BITS = 20


def snap(t: torch.Tensor) -> torch.Tensor:
    """Round a float64 tensor onto the shared parameter grid."""
    scale = float(2**PARAM_GRID_BITS)
    return (t.double() * scale).round_().div_(scale)     # one new tensor, not three


class Float64Path:
    """A frozen float64 CPU copy of an entropy-parameter network.

    Encoder and decoder both run the copy, never the float32 original, so the
    parameters they derive agree bit for bit on any machine.
    """

    def __init__(self, module: nn.Module):
        self.module = copy.deepcopy(module).to(device="cpu", dtype=torch.float64).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, *inputs: torch.Tensor):
        """The module's output on the grid (each of them, for a module that returns a tuple)."""
        out = self.module(*(t.detach().to("cpu", torch.float64) for t in inputs))
        return tuple(snap(t) for t in out) if isinstance(out, tuple) else snap(out)


class Float32Path:
    """An entropy-parameter network as it is (float32, where it lives), its output handed on
    as float64 on the CPU like a :class:`Float64Path`'s: for values no symbol is coded with
    (a mean fill), where float64's agreement between machines buys nothing."""

    def __init__(self, module: nn.Module):
        self.module = module

    @torch.no_grad()
    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        weight = next(self.module.parameters())
        with coding_autocast(weight.device):   # pixels only: bf16 where coding_precision asks for it
            out = self.module(*(t.to(weight.device, weight.dtype) for t in inputs))
        return out.to("cpu", torch.float64)


class GaussianSymbolCoder:
    """Codes chosen elements of a latent with a ``GaussianConditional``'s tables: grouped by
    table (grouped_rans.py, format version 10), or, reading files of earlier versions
    (``grouped=False``), one by one through CompressAI's rANS coder."""

    def __init__(self, gaussian: GaussianConditional):
        self.gaussian = gaussian
        self.cdfs = gaussian.quantized_cdf.tolist()
        self.cdf_lengths = gaussian.cdf_length.reshape(-1).int().tolist()
        self.offsets = gaussian.offset.reshape(-1).int().tolist()
        self.scale_boundaries = gaussian.scale_table[:-1].double()
        self._buckets = _bucket_lookup(self.scale_boundaries)
        self.grouped = GroupedTables(self.cdfs, self.cdf_lengths, self.offsets)

    def indexes(self, scales: torch.Tensor) -> torch.Tensor:
        """CompressAI's ``build_indexes``: the number of scale-table entries (but the last)
        below each scale. It counts them in one pass over the latent per entry; a binary
        search (torch.bucketize) finds the same integers in one pass.

        Faster still (1.4 ms for 295k scales against bucketize's 4): the line cut into buckets
        narrower than any gap between boundaries (:func:`_bucket_lookup`), so a scale's bucket,
        found by one exact multiply by a power of two, holds at most one boundary: the count
        below the bucket plus one comparison give bucketize's integer exactly. Scales below 0
        fall in the first bucket, beyond the last boundary (inf too) in the last; NaN, which
        counts every boundary in bucketize, is put in the last bucket, whose boundary is +inf."""
        if self._buckets is None:
            return torch.bucketize(scales.double(), self.scale_boundaries).to(torch.int32)
        per_unit, count, below, inside = self._buckets
        s = scales.double()
        bucket = (s * per_unit).nan_to_num_(nan=count - 1).clamp_(0, count - 1).to(torch.int32).reshape(-1)
        # index_select: the same gather as below[bucket], in 40 % of the time
        found = below.index_select(0, bucket).add_(s.reshape(-1) > inside.index_select(0, bucket))
        return found.reshape(s.shape)

    def encode(self, symbols: torch.Tensor, indexes: torch.Tensor) -> bytes:
        """rANS-code integer ``symbols`` (any shape) with matching ``indexes``."""
        return self.encode_arrays(symbols.reshape(-1).cpu().numpy(), indexes.reshape(-1).cpu().numpy())

    def encode_arrays(self, symbols, indexes, pieces=(), grouped: bool = True) -> bytes:
        """Integer ``symbols`` coded with the tables ``indexes`` name (arrays or sequences), grouped
        by table within each piece (``pieces``: where each piece after the first starts, as a
        decoder reads them); ``grouped=False``: one by one, the way versions up to 9 wrote them."""
        if grouped:
            return self.grouped.encode(symbols, indexes, pieces)
        return self.encode_lists(np.asarray(symbols).reshape(-1).astype(np.int64).tolist(), indexes)

    def _tables(self, indexes) -> tuple[list[int], list, list[int], list[int]]:
        """``indexes`` renumbered over the tables they use, and just those tables.

        CompressAI copies every CDF table it is handed into C++ on each call (~3 ms
        for 64 tables); a chunk of ranked elements uses a few. The same tables code
        the same symbols, so the bits are identical.
        """
        flat = np.asarray(indexes, dtype=np.int64).reshape(-1)
        # np.unique's renumbering without its sort: indexes are small table numbers
        present = np.bincount(flat, minlength=len(self.cdfs)) > 0
        renumbered = (np.cumsum(present) - 1)[flat]
        used = np.flatnonzero(present).tolist()
        return (renumbered.tolist(), [self.cdfs[i] for i in used], [self.cdf_lengths[i] for i in used],
                [self.offsets[i] for i in used])

    def encode_lists(self, symbols: list[int], indexes) -> bytes:
        """Versions up to 9: ``symbols`` a list of ints; ``indexes`` a sequence or an integer array
        (an array spares :meth:`_tables` reading a list back)."""
        if not symbols:
            return b""
        if len(symbols) == 1:
            # CompressAI 1.2.8's RansEncoder corrupts the heap ("double free or corruption")
            # on a one-symbol stream. rANS decodes in order, so a padding symbol after it,
            # coded with the same table, is never read by a decoder that asks for one.
            symbols, indexes = [symbols[0], 0], [int(indexes[0])] * 2
        renumbered, cdfs, lengths, offsets = self._tables(indexes)
        return RansEncoder().encode_with_indexes(list(symbols), renumbered, cdfs, lengths, offsets)

    def stream(self, string: bytes, num_symbols: int, grouped: bool = True):
        """A reader of ``string`` (which holds ``num_symbols``) in pieces: ``read(indexes)``
        returns the next piece's symbols as float64, shaped like ``indexes``."""
        return GroupedSymbolStream(self, string) if grouped else SymbolStream(self, string, num_symbols)

    def decode(self, string: bytes, indexes: torch.Tensor, grouped: bool = True) -> torch.Tensor:
        """Inverse of :meth:`encode`: symbols shaped like ``indexes``."""
        return self.stream(string, indexes.numel(), grouped).read(indexes)


class GroupedSymbolStream:
    """:class:`SymbolStream`'s counterpart for version 10's grouped strings."""

    def __init__(self, coder: "GaussianSymbolCoder", string: bytes):
        self.stream = coder.grouped.stream(string)

    def read(self, indexes: torch.Tensor) -> torch.Tensor:
        symbols = self.stream.read(indexes.reshape(-1).cpu().numpy())
        return torch.from_numpy(symbols).to(torch.float64).reshape(indexes.shape)


class SymbolStream:
    """Versions up to 9: one CompressAI rANS string read in pieces (``read`` as often as needed,
    in order): what a chunk needs when a REM refines the parameters of its later elements
    halfway through."""

    def __init__(self, coder: "GaussianSymbolCoder", string: bytes, num_symbols: int):
        self.coder = coder
        self.decoder = RansDecoder()
        self.decoder.set_stream(memory_safe(string, num_symbols))

    def read(self, indexes: torch.Tensor) -> torch.Tensor:
        if indexes.numel() == 0:
            return torch.zeros(indexes.shape, dtype=torch.float64)
        renumbered, cdfs, lengths, offsets = self.coder._tables(indexes.reshape(-1).cpu().numpy())
        values = self.decoder.decode_stream(renumbered, cdfs, lengths, offsets)
        # a list of ints: numpy reads it about three times faster than torch.tensor
        symbols = np.fromiter(values, dtype=np.int32, count=len(values))
        return torch.from_numpy(symbols).to(torch.float64).reshape(indexes.shape)


def _bucket_lookup(boundaries: torch.Tensor, max_buckets: int = 1 << 17):
    """(buckets per unit, bucket count, boundaries below each bucket's start (int32), the boundary
    inside each bucket or +inf) for buckets of width 2^-k narrower than the first boundary and
    every gap, so no bucket holds two; None where the table is not positive and rising, or
    would need more than ``max_buckets`` buckets (CompressAI's: 28,975)."""
    b = boundaries.double()
    if len(b) == 0 or not float(b[0]) > 0 or not bool((b[1:] > b[:-1]).all()):
        return None
    narrowest = min([float(b[0]), *(b[1:] - b[:-1]).tolist()])
    k = math.floor(-math.log2(narrowest)) + 1
    width = 2.0 ** -k
    count = math.floor(float(b[-1]) / width) + 2           # the last bucket lies past every boundary
    if count > max_buckets:
        return None
    starts = torch.arange(count, dtype=torch.float64) * width        # exact: integers times 2^-k
    below = torch.bucketize(starts, b).to(torch.int32)
    inside = torch.full((count,), math.inf, dtype=torch.float64)
    inside[torch.floor(b / width).long()] = b
    return 2.0**k, count, below, inside


def ste_round(x: torch.Tensor, means: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Training: round around ``means`` forward, identity gradient backward."""
    return (torch.round(x - means) - (x - means)).detach() + x


def quantize_symbols(values: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Integer symbols of ``values`` around ``means`` (float64, on the grid)."""
    return torch.round(values.double().cpu() - means)


def memory_safe(string: bytes, num_symbols: int) -> bytes:
    """Zero padding past the end of a rANS string.

    CompressAI's decoder reads without bounds checks; a valid string never
    reaches the padding, while a hostile one stops in zeros instead of reading
    foreign memory (each symbol reads at most a few words).
    """
    return bytes(string) + bytes(16 * num_symbols + 64)


def tensor_checksum(t: torch.Tensor) -> int:
    """CRC32 of an index map (as int32) or a decoded latent (as float32)."""
    t = t.to(torch.float32 if t.is_floating_point() else torch.int32)
    return zlib.crc32(t.contiguous().cpu().numpy())   # the buffer itself: no copy to bytes


def verify_checksum(t: torch.Tensor, expected: int | None, what: str) -> None:
    """Stop before going on with a ``what`` that differs from the encoder's."""
    if expected is not None and tensor_checksum(t) != expected:
        raise DeterminismError(
            f"the decoder's {what} differ from the encoder's "
            "(another platform, torch build or weights, or a file that lies about its size); "
            "refusing to decode garbage"
        )
