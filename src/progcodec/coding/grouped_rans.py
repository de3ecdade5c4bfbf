"""rANS by table group: format version 10's coding of a latent's symbols.

Every symbol is coded with the CDF table its scale index names (CompressAI's
``GaussianConditional`` tables, 16-bit). Up to version 9 the symbols went through
CompressAI's ``RansEncoder``/``RansDecoder`` one by one, in sending order, which
takes and returns Python lists: converting 590k symbols and their indexes to and
from lists took most of the ~30 ms that rANS cost a decode of a 768x512 image.
Both sides know every scale index before a symbol is read, so the order
inside a piece is free to choose: here the symbols of one table are coded together,
table by table, as numpy arrays through constriction's stack rANS coder
(Bamler, "Understanding entropy coding with asymmetric numeral systems", 2022)::

    piece = symbols with their table indexes (a chunk, or its part before a REM point)
      │ stable sort by table index, widest table first (decoder: same indexes, same order;
      │ a ranked residual chunk is in this order already, so nothing moves)
      ▼
    table k's symbols │ table k-1's │ ... │ escapes' raw values (sign-folded, Elias-gamma-like)
      └─ one Categorical model per table, the table's own 16-bit probabilities ─┘

A symbol outside its table's range is coded as the table's escape symbol (its last)
and its value after the piece's tables, as CompressAI does with its bypass bits. The
tables' probabilities are multiples of 2^-16 and constriction quantises to 2^-24, so
each probability is represented exactly: a string costs what CompressAI's did, give
or take the final state (a few bytes a string).
"""

from __future__ import annotations

import numpy as np

from ..errors import ContainerError

# Escapes: the bit length of the raw value (coded in 0..32, at most 30 written, so that every
# symbol fits int32), then its bits below the leading one in pieces of at most 16 bits
# (constriction's uniform model takes sizes below 2**24).
_RAW_BITS = 32
_RAW_LIMIT = 30
_PIECE_BITS = 16


class GroupedTables:
    """The Categorical model of each CDF table, and coding of symbol arrays with them.

    ``cdfs``, ``lengths``, ``offsets``: a ``GaussianConditional``'s ``quantized_cdf``
    (rows of 16-bit cumulative counts), ``cdf_length`` and ``offset``, as lists.
    """

    PRECISION = 16

    def __init__(self, cdfs: list[list[int]], lengths: list[int], offsets: list[int]):
        import constriction     # imported with the first model that codes, not with the package

        model = constriction.stream.model
        self.coder_class = constriction.stream.stack.AnsCoder
        total = float(1 << self.PRECISION)
        self.models = [model.Categorical(np.diff(np.asarray(cdf[:n], dtype=np.float64)) / total, perfect=False)
                       for cdf, n in zip(cdfs, lengths)]
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.escape = np.asarray(lengths, dtype=np.int64) - 2      # each table's last symbol
        self.uniform = model.Uniform
        self._raw_length = model.Uniform(_RAW_BITS + 1)

    def _groups(self, indexes: np.ndarray):
        """The order that puts each table's symbols together, tables from the widest (the highest
        index) down, by position within a table (None where that is already the order: a ranked
        chunk's indexes never rise), and the tables used with their symbol counts, in that order."""
        counts = np.bincount(indexes, minlength=len(self.models))
        tables = np.flatnonzero(counts)[::-1].tolist()
        # most strings that are not in order show it in their first elements: no full pass for them
        head = indexes[:1024]
        in_order = indexes.size < 2 or (not bool((head[1:] > head[:-1]).any())
                                        and bool((indexes[1:] <= indexes[:-1]).all()))
        if in_order:
            order = None
        elif len(self.models) <= 256:    # numpy's stable sort of one-byte keys is a radix sort
            order = np.argsort((len(self.models) - 1 - indexes).astype(np.uint8), kind="stable")
        else:
            order = np.argsort(-indexes, kind="stable")
        return order, tables, counts[tables].tolist()

    def encode(self, symbols: np.ndarray, indexes: np.ndarray, pieces=()) -> bytes:
        """One rANS string of integer ``symbols`` coded with the tables ``indexes`` name,
        grouped within each piece (``pieces``: where each piece after the first starts)."""
        symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
        indexes = np.asarray(indexes, dtype=np.int64).reshape(-1)
        if len(symbols) != len(indexes):
            raise ValueError(f"{len(symbols)} symbols and {len(indexes)} indexes")
        if len(symbols) == 0:
            return b""
        if indexes.min() < 0 or indexes.max() >= len(self.models):
            raise ValueError("a scale index names no table")
        coder = self.coder_class()
        edges = [0, *pieces, len(symbols)]
        # a stack: the last thing the decoder reads goes in first
        for start, end in reversed(list(zip(edges, edges[1:]))):
            self._encode_piece(coder, symbols[start:end], indexes[start:end])
        return coder.get_compressed().astype("<u4").tobytes()

    def _encode_piece(self, coder, symbols: np.ndarray, indexes: np.ndarray) -> None:
        """A piece as :meth:`GroupedStream.read` reads it: each table's symbols, then the raw
        values of the escaped ones in the same (grouped) order."""
        order, tables, counts = self._groups(indexes)
        if order is not None:
            symbols = symbols[order]
        groups, raws, start = [], [], 0
        for table, count in zip(tables, counts):   # a table's offset and escape are one number each
            values = symbols[start:start + count] - int(self.offsets[table])
            top = int(self.escape[table])
            outside = (values < 0) | (values >= top)
            if outside.any():
                odd = values[outside]
                raws.append(np.where(odd < 0, -2 * odd - 1, 2 * (odd - top)))
                values = np.where(outside, top, values)
            groups.append((table, values.astype(np.int32)))
            start += count
        raw = np.concatenate(raws) if raws else np.zeros(0, dtype=np.int64)
        if raw.size and int(raw.max()) >= 1 << _RAW_LIMIT:
            raise ValueError("a symbol too far outside its table to code")
        for value in reversed(raw.tolist()):
            self._encode_raw(coder, value)
        for table, values in reversed(groups):
            coder.encode_reverse(values, self.models[table])

    def _encode_raw(self, coder, value: int) -> None:
        """Pushed in reverse of :meth:`_decode_raw`'s reads."""
        bits = value.bit_length()
        rest = value - (1 << (bits - 1)) if bits else 0
        parts = []                                   # (size in bits, value), in reading order
        below = bits - 1
        while below > 0:
            size = min(_PIECE_BITS, below)
            below -= size
            parts.append((size, (rest >> below) & ((1 << size) - 1)))
        for size, part in reversed(parts):
            coder.encode_reverse(np.array([part], dtype=np.int32), self.uniform(1 << size))
        coder.encode_reverse(np.array([bits], dtype=np.int32), self._raw_length)

    def stream(self, string: bytes) -> "GroupedStream":
        return GroupedStream(self, string)


class GroupedStream:
    """One string of :meth:`GroupedTables.encode`, read a piece at a time, in order."""

    def __init__(self, tables: GroupedTables, string: bytes):
        if len(string) % 4:
            raise ContainerError("corrupt layer (a symbol string is not whole 32-bit words)")
        self.tables = tables
        try:
            self.coder = tables.coder_class(np.frombuffer(string, dtype="<u4").astype(np.uint32))
        except ValueError as e:     # constriction checks the stack's end: a string no encoder wrote
            raise ContainerError(f"corrupt layer ({e})") from None

    def read(self, indexes: np.ndarray) -> np.ndarray:
        """The next piece's symbols (int32), one per index, in the indexes' order."""
        t = self.tables
        indexes = np.asarray(indexes).reshape(-1)
        if indexes.size == 0:
            return np.zeros(0, dtype=np.int32)
        if indexes.min() < 0 or indexes.max() >= len(t.models):
            raise ValueError("a scale index names no table")
        order, tables, counts = t._groups(indexes)
        parts, escaped, start = [], [], 0
        for table, count in zip(tables, counts):
            part = self.coder.decode(t.models[table], count)
            top, offset = int(t.escape[table]), int(t.offsets[table])
            escaped += [(start + int(i), top, offset) for i in np.flatnonzero(part == top)]
            parts.append(part + offset if offset else part)
            start += count
        grouped = np.concatenate(parts)
        for i, top, offset in escaped:       # rare: a value outside its table
            raw = self._decode_raw()
            grouped[i] = offset + (-(raw + 1) // 2 if raw & 1 else top + raw // 2)
        if order is None:
            return grouped
        values = np.empty_like(grouped)
        values[order] = grouped
        return values

    def _decode_raw(self) -> int:
        bits = int(self.coder.decode(self.tables._raw_length, 1)[0])
        if bits > _RAW_LIMIT:
            raise ContainerError("corrupt layer (a symbol's escaped value is longer than any encoder writes)")
        if bits == 0:
            return 0
        value, below = 1, bits - 1
        while below > 0:
            size = min(_PIECE_BITS, below)
            below -= size
            value = (value << size) | int(self.coder.decode(self.tables.uniform(1 << size), 1)[0])
        return value
