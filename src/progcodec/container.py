"""The ``.pgc`` container: plain Python over bytes, no torch.

Layout (all integers big-endian)::

    magic     4s   b"\\x89PGC"
    version   B    FORMAT_VERSION
    model     B + ascii          model name, at most MAX_NAME bytes
    weights   8s   first 8 bytes of the sha256 of the weights file
    width     I
    height    I
    layers    H    number of layers the encoder wrote
    checks    B + I*n            determinism checksums (what the decoder must reproduce)
    lengths   I*layers           byte length of each layer (from version 6: its span in the
                                 file, its CRC trailer included)
    crcs      I*layers           CRC32 of each layer (up to version 5; version 6 ends each
                                 layer with its CRC32 instead, see below)
    layout    B                  (version 2) bit 0: layer 1 is a preview (z alone);
                                 bit 1: the base layer also carries the first residual chunk;
                                 (version 3) bit 2: a fine ladder (progdtd: channel counts in
                                 units of 2**-16, a partial channel sent most uncertain first);
                                 bit 3: vam's residual coded with its Rate Enhancement Modules;
                                 (version 4) bit 4: tiled (see tiling.py);
                                 (version 8) bit 5: a standard ladder (below);
                                 (version 9) bit 6: the entropy parameters were computed on
                                 the weights' integer path (coding/integer_path.py)
    ladder    B + I*n            (version 2) the model's ladder: vam's cumulative residual
                                 shares in units of 2**-24, progdtd's channel counts;
                                 n = 0: the model's default ladder
    tile      H H                (version 4, tiled files only) tile height and width in pixels;
                                 each layer is then one string per tile, row by row, and the
                                 checksums live in the tiles' strings (see tiling.py); version 5
                                 writes the tiles' string tables and side information compactly
                                 (pack_varint_strings, varints), version 4 in fixed widths
    hcrc      I                  CRC32 of every header byte before it
    payload   layer 1 | layer 2 | ...; from version 6, each layer followed by its CRC32 (I)

Version 7 writes the same fields with the integers that grow with the image as
LEB128 varints (``pack_uvarints``, shortest form only): width, height and the
layer count; each layer length; the ladder's count, then its first value and
each rise from the value before (a ladder never falls); the tile's height and
width. The checksums and CRCs keep their 4 bytes. vam's default header on a
768x512 image shrinks from 166 to 116 bytes, and the preview (header and layer 1) with it.

Version 8 names a standard ladder by its length: when the ladder is
``coding.ladder.standard_ladder(n)`` (vam's default ladders, chunks equally spaced in
quality), layout bit 5 is set and the ladder field is the varint n alone. vam's
default header on a 768x512 image shrinks from 116 to 73 bytes.

Version 9 adds layout bit 6: the file's entropy parameters come from the integer
versions of the parameter networks that its weights carry, not from their float64
copies. The weights decide (weights that carry an integer path code every file on
it); the bit says so in the file, so that a decoder holding other weights stops
with a clear error, and a reader older than version 9 refuses the file by its
version rather than decoding it on the float64 path into a checksum mismatch.

Version 1 files (no layout, no ladder: the default ladder, no preview) still
parse. Version 6 moves each layer's CRC32 from the header to the end of the
layer: the header no longer grows by 4 bytes a layer, so the first picture
(the header and layer 1) comes 4 bytes a layer sooner, and a layer's bytes
carry their own check. Version 7 writes the header's sizes as varints, version 8
names standard ladders (above), version 9 marks the integer parameter path.

Version 10 changes the layers, not the header: every latent's symbols (z's excepted) are
coded grouped by CDF table (coding/grouped_rans.py), where versions up to 9 coded them one
by one with CompressAI's rANS coder. The same symbols decode either way, so a file of any
version gives the same picture; a reader older than version 10 refuses the file by its
version. New files are version 10; ``build(version=...)`` writes the header of version 9, 8,
7, 6 or the earlier layout (2 unless a fine ladder or REMs need 3, 5 when tiled) around
layers coded for it, and ``convert`` rewrites a file's header between the versions whose
layers are coded alike (up to 9, or 10). A prefix of the file that
ends on a layer boundary is a valid file with fewer layers: the header stays as written and the
parser counts complete layers.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from .coding.ladder import SHARE_UNIT, standard_ladder
from .errors import ContainerError

MAGIC = b"\x89PGC"
FORMAT_VERSION = 10            # the newest version this build writes
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
COMPACT_HEADER = 7             # from version 7 the header's sizes and lengths are varints
STANDARD_LADDER = 8            # from version 8 a standard ladder is written as its length
INTEGER_PARAMS = 9             # from version 9 a layout bit marks the integer parameter path
GROUPED_SYMBOLS = 10           # from version 10 the symbols are coded grouped by CDF table
LAYER_TRAILER = 4              # version 6: each layer ends with its CRC32
LAYOUT_PREVIEW = 1
LAYOUT_BASE_CHUNK = 2
LAYOUT_FINE_LADDER = 4         # from version 3
LAYOUT_REM = 8                 # from version 3
LAYOUT_TILED = 16              # from version 4
LAYOUT_STANDARD_LADDER = 32    # from version 8: the ladder is standard_ladder(n), its field n alone
LAYOUT_INTEGER_PARAMS = 64     # from version 9: entropy parameters from the weights' integer path
FINE_CHANNEL_UNIT = 1 << 16    # a fine ladder's channel counts are in units of 2**-16
LAYOUT_BITS = {2: LAYOUT_PREVIEW | LAYOUT_BASE_CHUNK,
               3: LAYOUT_PREVIEW | LAYOUT_BASE_CHUNK | LAYOUT_FINE_LADDER | LAYOUT_REM}
LAYOUT_BITS[4] = LAYOUT_BITS[5] = LAYOUT_BITS[6] = LAYOUT_BITS[7] = LAYOUT_BITS[3] | LAYOUT_TILED
LAYOUT_BITS[8] = LAYOUT_BITS[7] | LAYOUT_STANDARD_LADDER
LAYOUT_BITS[9] = LAYOUT_BITS[10] = LAYOUT_BITS[8] | LAYOUT_INTEGER_PARAMS
MAX_NAME = 32
MAX_LAYERS = 64
MAX_CHECKSUMS = 8
MAX_SIDE = 1 << 15
MAX_PIXELS = 1 << 24          # 16.7 megapixels: the most the codec encodes whole; a header claiming more is lying
MAX_TILED_PIXELS = 1 << 28    # 268 megapixels: the most it encodes in tiles
MAX_TILES = 1 << 14
MAX_LAYER_BYTES = 1 << 30


@dataclass(frozen=True)
class Header:
    model: str
    weights_digest: bytes
    width: int
    height: int
    checksums: tuple[int, ...]
    layer_lengths: tuple[int, ...]    # each layer's span in the file (version 6: CRC trailer included)
    layer_crcs: tuple[int, ...]       # () from version 6: each layer ends with its CRC32
    preview: bool = False
    ladder: tuple[int, ...] = ()      # () : the model's default ladder
    version: int = FORMAT_VERSION
    base_chunk: bool = False          # the base layer also holds the first residual chunk
    fine_ladder: bool = False         # progdtd: ladder in 2**-16 channels, partial channels ranked by σ
    rem: bool = False                 # vam: later chunks coded with the REMs' refined parameters
    tile: tuple[int, int] | None = None   # (height, width) of the tiles of a tiled file
    integer_params: bool = False      # entropy parameters from the weights' integer path (version 9)

    @property
    def num_layers(self) -> int:
        return len(self.layer_lengths)

    @property
    def grouped_symbols(self) -> bool:
        """Whether the layers' symbols are coded grouped by CDF table (version 10)."""
        return grouped_symbols(self.version)


def grouped_symbols(version: int) -> bool:
    """Whether files of format ``version`` code their layers' symbols grouped by CDF table."""
    return version >= GROUPED_SYMBOLS


@dataclass
class PgcFile:
    header: Header
    header_size: int
    layers: list[bytes]                      # complete layers with a good CRC, in order
    problems: list[str] = field(default_factory=list)   # why fewer layers than declared

    @property
    def layer_ends(self) -> list[int]:
        """File offset at the end of each declared layer."""
        ends, pos = [], self.header_size
        for n in self.header.layer_lengths:
            pos += n
            ends.append(pos)
        return ends


def tile_count(height: int, width: int, tile: tuple[int, int]) -> int:
    """Tiles of a tiled file: its grid covers the image (padding included) row by row."""
    return -(-height // tile[0]) * -(-width // tile[1])


def crc_trailer(version: int) -> int:
    """Bytes at the end of each layer that hold its CRC32: LAYER_TRAILER from version 6, none
    before (the header holds the CRCs)."""
    return LAYER_TRAILER if version >= 6 else 0


def _check_header_fields(model: str, digest: bytes, width: int, height: int,
                         checksums, lengths, crcs, ladder=(), tile=None, version: int = FORMAT_VERSION) -> None:
    if not model or not model.isascii() or len(model) > MAX_NAME:
        raise ContainerError(f"model name must be 1..{MAX_NAME} ASCII bytes")
    if len(digest) != 8:
        raise ContainerError("weights digest must be 8 bytes")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE) or \
            width * height > (MAX_PIXELS if tile is None else MAX_TILED_PIXELS):
        raise ContainerError(f"implausible image size {width}x{height}")
    if tile is not None and (not all(64 <= side <= 1 << 12 for side in tile)
                             or tile_count(height, width, tile) > MAX_TILES):
        raise ContainerError(f"implausible tiles {tile[0]}x{tile[1]} for {width}x{height}")
    trailer = crc_trailer(version)
    if not 1 <= len(lengths) <= MAX_LAYERS or len(crcs) != (0 if trailer else len(lengths)):
        raise ContainerError(f"implausible layer count {len(lengths)}")
    if len(checksums) > MAX_CHECKSUMS:
        raise ContainerError(f"too many checksums ({len(checksums)})")
    if any(not trailer <= n <= MAX_LAYER_BYTES + trailer for n in lengths):
        raise ContainerError("implausible layer length")
    if len(ladder) > MAX_LAYERS or any(not 0 <= v < 1 << 32 for v in ladder):
        raise ContainerError("implausible ladder")


def is_standard_ladder(ladder) -> bool:
    """Whether version 8 writes ``ladder`` as its length alone (see coding.ladder.standard_ladder)."""
    return bool(ladder) and ladder[-1] == SHARE_UNIT and tuple(ladder) == standard_ladder(len(ladder))


def varint_size(value: int) -> int:
    """Bytes of ``value`` as a LEB128 varint."""
    return max(1, (int(value).bit_length() + 6) // 7)


def header_size(model: str, num_layers: int, num_checksums: int, ladder_len: int, tiled: bool = False,
                version: int = FORMAT_VERSION, *, width: int = MAX_SIDE, height: int = MAX_SIDE,
                max_length: int = MAX_LAYER_BYTES + LAYER_TRAILER, max_ladder_step: int = (1 << 32) - 1) -> int:
    """Bytes of a header as ``build`` writes it: what a rate target must leave room for
    (from version 6, with ``LAYER_TRAILER`` bytes more at the end of each layer). Version 7's
    varints depend on the values: this is its size when no layer is longer than ``max_length``
    and no ladder step larger than ``max_ladder_step`` (by default, the largest header)."""
    fixed = 4 + 2 + len(model) + 8 + 1 + 4 * num_checksums + 1 + 4
    if version >= COMPACT_HEADER:
        return (fixed + varint_size(width) + varint_size(height) + varint_size(num_layers)
                + num_layers * varint_size(max_length) + varint_size(ladder_len)
                + ladder_len * varint_size(max_ladder_step) + 2 * varint_size(1 << 12) * tiled)
    crcs = 0 if crc_trailer(version) else 4 * num_layers
    return fixed + 10 + 4 * num_layers + crcs + 1 + 4 * ladder_len + 4 * tiled


# The largest header any file can have: a client that fetches this many bytes first has it whole.
MAX_HEADER_BYTES = max(header_size("x" * MAX_NAME, MAX_LAYERS, MAX_CHECKSUMS, MAX_LAYERS, tiled=True, version=v)
                       for v in (5, COMPACT_HEADER))


def build(model: str, weights_digest: bytes, width: int, height: int,
          layers: list[bytes], checksums=(), preview: bool = False, ladder=(), base_chunk: bool = False,
          fine_ladder: bool = False, rem: bool = False, tile: tuple[int, int] | None = None,
          version: int | None = None, integer_params: bool = False) -> bytes:
    """Serialise a header and its layers into one ``.pgc`` file of ``version`` (default
    FORMAT_VERSION; 9; 8; 7; 6; or the earlier layout that expresses the file: 2, 3 for a fine
    ladder or REMs, 5 for tiles of ``tile`` = (height, width) pixels), its ``layers`` coded as that
    version codes them. A file whose parameters came from the integer path (``integer_params``)
    is version 9 or later."""
    legacy = 5 if tile else 3 if fine_ladder or rem else 2
    version = FORMAT_VERSION if version is None else version
    if version not in (legacy, 6, COMPACT_HEADER, STANDARD_LADDER, INTEGER_PARAMS, FORMAT_VERSION):
        raise ContainerError(f"this file is written as format version {legacy}, 6, {COMPACT_HEADER}, "
                             f"{STANDARD_LADDER}, {INTEGER_PARAMS} or {FORMAT_VERSION}, not {version}")
    if integer_params and version < INTEGER_PARAMS:
        raise ContainerError(f"a file coded on the integer parameter path is format version {INTEGER_PARAMS}; "
                             f"version {version} cannot say so (a version-{version} reader would decode it "
                             "on the float64 path, wrongly)")
    trailer = crc_trailer(version)
    crcs = [zlib.crc32(b) for b in layers]
    lengths = [len(b) + trailer for b in layers]
    ladder = tuple(int(v) for v in ladder)
    tile = None if tile is None else (int(tile[0]), int(tile[1]))
    _check_header_fields(model, weights_digest, width, height, checksums, lengths, () if trailer else crcs, ladder,
                         tile, version)
    name = model.encode("ascii")
    standard = version >= STANDARD_LADDER and is_standard_ladder(ladder)
    layout = ((LAYOUT_PREVIEW if preview else 0) | (LAYOUT_BASE_CHUNK if base_chunk else 0)
              | (LAYOUT_FINE_LADDER if fine_ladder else 0) | (LAYOUT_REM if rem else 0) | (LAYOUT_TILED if tile else 0)
              | (LAYOUT_STANDARD_LADDER if standard else 0) | (LAYOUT_INTEGER_PARAMS if integer_params else 0))
    checks = struct.pack(f">B{len(checksums)}I", len(checksums), *checksums)
    if version >= COMPACT_HEADER:
        steps = [b - a for a, b in zip((0,) + ladder, ladder)]
        if any(step < 0 for step in steps):
            raise ContainerError("a ladder must not fall")
        ladder_field = pack_uvarints([len(ladder)] + ([] if standard else steps))
        fields = [pack_uvarints((width, height, len(layers))), checks, pack_uvarints(lengths),
                  bytes([layout]), ladder_field, pack_uvarints(tile or ())]
    else:
        fields = [struct.pack(">IIH", width, height, len(layers)), checks,
                  struct.pack(f">{len(layers)}I", *lengths),
                  b"" if trailer else struct.pack(f">{len(layers)}I", *crcs),
                  struct.pack(f">BB{len(ladder)}I", layout, len(ladder), *ladder),
                  struct.pack(">HH", *tile) if tile else b""]
    head = b"".join([MAGIC, struct.pack(">BB", version, len(name)), name, weights_digest, *fields])
    if trailer:
        layers = [b + struct.pack(">I", crc) for b, crc in zip(layers, crcs)]
    return head + struct.pack(">I", zlib.crc32(head)) + b"".join(layers)


def convert(data: bytes, version: int) -> bytes:
    """The complete layers of a file rewritten in another format version's layout (the
    current one, or an earlier one that expresses the file): the same layers, checksums
    and ladder, for a reader that predates a version. The layers' bytes stay as they are, so
    only versions that code layers alike convert (up to 9 among themselves; 10)."""
    pgc = parse(data)
    h = pgc.header
    if h.grouped_symbols != grouped_symbols(version):
        way = "grouped by table" if h.grouped_symbols else "one by one"
        raise ContainerError(f"format {h.version} codes its layers' symbols {way}, format {version} the other "
                             f"way: re-encode the image to write it as format {version}")
    return build(h.model, h.weights_digest, h.width, h.height, pgc.layers, h.checksums, preview=h.preview,
                 ladder=h.ladder, base_chunk=h.base_chunk, fine_ladder=h.fine_ladder, rem=h.rem, tile=h.tile,
                 version=version, integer_params=h.integer_params)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ContainerError("file is truncated inside its header")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))

    def uvarints(self, count: int) -> list[int]:
        """``count`` varints in their shortest form (one encoding per header); at most 5 bytes each."""
        values = []
        for _ in range(count):
            try:
                value, end = uvarint_at(self.data, self.pos, max_bytes=5)
            except IndexError:
                raise ContainerError("file is truncated inside its header") from None
            except ValueError as e:
                raise ContainerError(f"corrupt header ({e})") from None
            values.append(value)
            self.pos = end
        return values


def parse_header(data: bytes) -> tuple[Header, int]:
    """Read and verify the header; returns it and its size in bytes."""
    data = bytes(data)
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise ContainerError("not a .pgc file (bad magic)")
    r = _Reader(data)
    r.take(len(MAGIC))
    version, name_len = r.unpack(">BB")
    if version not in READABLE_VERSIONS:
        raise ContainerError(f"unsupported .pgc format version {version} "
                             f"(this build reads {', '.join(map(str, READABLE_VERSIONS))})")
    if not 1 <= name_len <= MAX_NAME:
        raise ContainerError("corrupt header (model name length)")
    name = r.take(name_len)
    digest = r.take(8)
    compact = version >= COMPACT_HEADER
    width, height, num_layers = r.uvarints(3) if compact else r.unpack(">IIH")
    (num_checks,) = r.unpack(">B")
    if num_checks > MAX_CHECKSUMS or not 1 <= num_layers <= MAX_LAYERS:
        raise ContainerError("corrupt header (counts out of range)")
    checksums = r.unpack(f">{num_checks}I")
    lengths = r.uvarints(num_layers) if compact else r.unpack(f">{num_layers}I")
    crcs = () if crc_trailer(version) else r.unpack(f">{num_layers}I")
    layout, ladder = 0, ()
    if version >= 2:
        (layout,) = r.unpack(">B")
        (ladder_len,) = r.uvarints(1) if compact else r.unpack(">B")
        if layout & ~LAYOUT_BITS[version] or ladder_len > MAX_LAYERS:
            raise ContainerError("corrupt header (layout or ladder)")
        if layout & LAYOUT_STANDARD_LADDER:
            if ladder_len < 1:
                raise ContainerError("corrupt header (standard ladder of no chunks)")
            ladder = standard_ladder(ladder_len)
        elif compact:    # the first value, then each rise
            ladder, total = [], 0
            for step in r.uvarints(ladder_len):
                total += step
                ladder.append(total)
        else:
            ladder = r.unpack(f">{ladder_len}I")
    tile = None
    if layout & LAYOUT_TILED:
        tile = tuple(r.uvarints(2)) if compact else r.unpack(">HH")
    (header_crc,) = r.unpack(">I")
    if zlib.crc32(data[:r.pos - 4]) != header_crc:
        raise ContainerError("corrupt header (CRC mismatch)")
    try:
        model = name.decode("ascii")
    except UnicodeDecodeError:
        raise ContainerError("corrupt header (model name)") from None
    _check_header_fields(model, digest, width, height, checksums, lengths, crcs, ladder, tile, version)
    return Header(model, digest, width, height, tuple(checksums), tuple(lengths), tuple(crcs),
                  bool(layout & LAYOUT_PREVIEW), tuple(ladder), version, bool(layout & LAYOUT_BASE_CHUNK),
                  bool(layout & LAYOUT_FINE_LADDER), bool(layout & LAYOUT_REM), tile,
                  bool(layout & LAYOUT_INTEGER_PARAMS)), r.pos


def parse(data: bytes) -> PgcFile:
    """Parse a whole or cut ``.pgc`` file.

    Returns the complete, CRC-verified layers; ``problems`` says why any
    declared layer is missing (cut short, damaged, trailing bytes). Raises
    ``ContainerError`` when not even the first layer is usable.
    """
    data = bytes(data)
    stream = LayerStream()
    stream.feed(data)
    if stream.header is None:
        parse_header(data)  # raises the header's own error (bad magic, truncated)
    stream.close()
    return PgcFile(stream.header, stream.header_size, stream.layers, stream.problems)


def layer_ranges(data: bytes) -> list[tuple[int, int]]:
    """[start, end) of the header, then of each declared layer, from any prefix that holds the header.

    For HTTP Range requests: fetch ``bytes=0-{MAX_HEADER_BYTES - 1}`` (or the whole
    file, if shorter), then layer k with ``bytes={start}-{end - 1}``.
    """
    header, size = parse_header(data)
    ranges, pos = [(0, size)], size
    for length in header.layer_lengths:
        ranges.append((pos, pos + length))
        pos += length
    return ranges


class LayerStream:
    """Parse a ``.pgc`` file from bytes as they arrive: ``feed`` returns the layers it completed.

    The same checks as :func:`parse`: the header CRC once the header is in, each
    layer's CRC as it completes. A damaged layer ends the stream (``problems``
    says why; later bytes are ignored); :meth:`close` reports a cut inside a layer.
    """

    def __init__(self):
        self.buffer = bytearray()
        self.header: Header | None = None
        self.header_size = 0
        self.pos = 0                  # where the next layer starts in the buffer
        self.layers: list[bytes] = []
        self.problems: list[str] = []
        self.done = False

    def feed(self, chunk: bytes) -> list[bytes]:
        if self.done:
            return []
        self.buffer += chunk
        if self.header is None:
            if not MAGIC.startswith(bytes(self.buffer[:len(MAGIC)])):
                raise ContainerError("not a .pgc file (bad magic)")
            if len(self.buffer) < len(MAGIC):
                return []
            try:
                self.header, self.header_size = parse_header(bytes(self.buffer))
            except ContainerError as e:
                if "truncated inside its header" in str(e):
                    return []        # wait for more bytes
                raise
            self.pos = self.header_size
        new = []
        while len(self.layers) < self.header.num_layers:
            index = len(self.layers)
            length = self.header.layer_lengths[index]
            if self.pos + length > len(self.buffer):
                break
            layer = bytes(self.buffer[self.pos:self.pos + length])
            if crc_trailer(self.header.version):   # the layer's CRC32 ends it
                layer, (crc,) = layer[:-LAYER_TRAILER], struct.unpack(">I", layer[-LAYER_TRAILER:])
            else:
                crc = self.header.layer_crcs[index]
            if zlib.crc32(layer) != crc:
                self.problems.append(f"layer {index + 1} is corrupt (CRC mismatch); "
                                     f"decoding the {index} layer(s) before it")
                self.done = True
                if not self.layers:
                    raise ContainerError(f"layer {index + 1} is corrupt (CRC mismatch)")
                break
            self.layers.append(layer)
            new.append(layer)
            self.pos += length
        return new

    def close(self) -> None:
        """End of input: no complete first layer is an error; a cut inside a later layer, a problem."""
        if self.header is None:
            raise ContainerError("file is truncated inside its header" if self.buffer else "empty input")
        have = len(self.buffer) - self.pos
        if not self.layers:
            raise ContainerError("file is cut inside layer 1" if have else "file holds no complete layer")
        if not self.done and have:
            if len(self.layers) < self.header.num_layers:
                self.problems.append(f"file is cut inside layer {len(self.layers) + 1}; "
                                     f"decoding {len(self.layers)} complete layer(s)")
            else:
                self.problems.append(f"ignored {have} trailing byte(s) after the last layer")
        self.done = True


def prefix_within(data: bytes, max_bytes: int) -> bytes:
    """The longest whole-layer prefix of at most ``max_bytes`` bytes (a valid file)."""
    pgc = parse(data)
    fitting = [k for k, end in enumerate(pgc.layer_ends[:len(pgc.layers)], start=1) if end <= max_bytes]
    if not fitting:
        raise ContainerError(f"no whole-layer prefix fits in {max_bytes} bytes: "
                             f"layer 1 ends at byte {pgc.layer_ends[0]}")
    return bytes(data[:pgc.layer_ends[fitting[-1] - 1]])


def prefix(data: bytes, num_layers: int) -> bytes:
    """The first ``num_layers`` layers of a file: itself a valid ``.pgc`` file."""
    pgc = parse(data)
    if not 1 <= num_layers <= len(pgc.layers):
        raise ContainerError(f"cannot keep {num_layers} layer(s): the file has {len(pgc.layers)} complete layer(s)")
    return bytes(data[:pgc.layer_ends[num_layers - 1]])


def pack_strings(strings: list[bytes]) -> bytes:
    """Several byte strings in one layer: u32 lengths, then the strings."""
    return struct.pack(f">{len(strings)}I", *map(len, strings)) + b"".join(strings)


def unpack_strings(data: bytes, count: int) -> list[bytes]:
    """Inverse of :func:`pack_strings`; the lengths must add up exactly."""
    head = 4 * count
    if len(data) < head:
        raise ContainerError("corrupt layer (too short for its string table)")
    lengths = struct.unpack(f">{count}I", data[:head])
    if head + sum(lengths) != len(data):
        raise ContainerError("corrupt layer (string lengths do not add up)")
    out, pos = [], head
    for n in lengths:
        out.append(bytes(data[pos:pos + n]))
        pos += n
    return out


def pack_uvarints(values) -> bytes:
    """Unsigned integers as LEB128 varints: 7 bits a byte, low bits first."""
    out = bytearray()
    for v in values:
        v = int(v)
        if v < 0:
            raise ValueError("varints are unsigned")
        while v >= 0x80:
            out.append(v & 0x7F | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def uvarint_at(data: bytes, pos: int, max_bytes: int = 8) -> tuple[int, int]:
    """The varint at ``pos``: (value, where it ends). IndexError when the data ends inside it;
    ValueError when it runs past ``max_bytes`` or is not in its shortest form (as written)."""
    value = shift = 0
    for end in range(pos, pos + max_bytes):
        byte = data[end]
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if byte == 0 and end > pos:
                raise ValueError("varint not in its shortest form")
            return value, end + 1
    raise ValueError("varint too long")


def unpack_uvarints(data: bytes, count: int, what: str = "varints") -> tuple[list[int], bytes]:
    """``count`` varints from the start of ``data``, and the bytes after them."""
    values, pos = [], 0
    for _ in range(count):
        try:
            value, pos = uvarint_at(data, pos)
        except (IndexError, ValueError):
            raise ContainerError(f"corrupt layer ({what})") from None
        values.append(value)
    return values, bytes(data[pos:])


def pack_varint_strings(strings: list[bytes]) -> bytes:
    """Several byte strings in one layer, compactly: the lengths of all but the last as
    varints (the last runs to the layer's end), then the strings."""
    return pack_uvarints(len(s) for s in strings[:-1]) + b"".join(strings)


def unpack_varint_strings(data: bytes, count: int) -> list[bytes]:
    """Inverse of :func:`pack_varint_strings`; the lengths must fit exactly."""
    lengths, rest = unpack_uvarints(data, count - 1, "its string table")
    if sum(lengths) > len(rest):
        raise ContainerError("corrupt layer (string lengths do not add up)")
    out, pos = [], 0
    for n in lengths:
        out.append(rest[pos:pos + n])
        pos += n
    return out + [rest[pos:]]
