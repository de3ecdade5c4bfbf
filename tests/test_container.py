"""The .pgc container on its own: plain bytes, no model."""

from __future__ import annotations

import hashlib
import string
import struct
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from progcodec import container
from progcodec.coding.ladder import standard_ladder
from progcodec.container import (
    MAGIC, MAX_CHECKSUMS, MAX_LAYERS, MAX_NAME, MAX_PIXELS, MAX_SIDE, Header, build, pack_strings, parse, parse_header,
    prefix, unpack_strings,
)
from progcodec.errors import ContainerError, ProgcodecError

DIGEST = bytes(range(8))
LAYERS = [b"base layer: z and y_base", b"chunk one", b"", b"chunk three", b"x" * 300]
CHECKS = (0xDEADBEEF, 7)


@pytest.fixture
def sample(fuzzlib):
    return fuzzlib.Sample.of(build("vam", DIGEST, 97, 31, LAYERS, CHECKS))


def test_build_parse_round_trip():
    data = build("vam", DIGEST, 97, 31, LAYERS, CHECKS)
    pgc = parse(data)
    h = pgc.header
    assert (h.model, h.weights_digest, h.width, h.height) == ("vam", DIGEST, 97, 31)
    assert h.checksums == CHECKS
    assert h.version == container.FORMAT_VERSION == 10
    # from version 6: each layer's span ends with its CRC32, and the header holds no CRC array
    assert h.layer_lengths == tuple(len(b) + 4 for b in LAYERS) and h.layer_crcs == ()
    starts = [pgc.header_size] + pgc.layer_ends[:-1]
    for layer, start, end in zip(LAYERS, starts, pgc.layer_ends):
        assert data[start:end] == layer + struct.pack(">I", zlib.crc32(layer))
    assert pgc.layers == LAYERS
    assert pgc.problems == []
    assert pgc.layer_ends[-1] == len(data)
    assert data.startswith(MAGIC)
    assert parse_header(data) == (h, pgc.header_size)


@pytest.mark.parametrize("options, legacy", [({}, 2), ({"rem": True}, 3), ({"fine_ladder": True}, 3)])
def test_version_6_and_its_earlier_layout_hold_the_same_file(options, legacy):
    """convert() rewrites a file in the earlier layout (CRCs in the header) and back, losslessly;
    the version-6 header is 4 bytes a layer smaller, the file the same size."""
    data = build("vam", DIGEST, 97, 31, LAYERS, CHECKS, version=6, **options)
    old = container.convert(data, legacy)
    assert old == build("vam", DIGEST, 97, 31, LAYERS, CHECKS, version=legacy, **options)
    new_pgc, old_pgc = parse(data), parse(old)
    assert old_pgc.header.version == legacy and old_pgc.header.layer_crcs == tuple(zlib.crc32(b) for b in LAYERS)
    assert old_pgc.layers == new_pgc.layers == LAYERS and len(old) == len(data)
    assert new_pgc.header_size == old_pgc.header_size - 4 * len(LAYERS)
    assert container.convert(old, 6) == data
    with pytest.raises(ContainerError, match="format version"):
        build("vam", DIGEST, 97, 31, LAYERS, CHECKS, version=4, **options)


LADDER = (168859, 430386, 779539, 1190191, 16777216)    # cumulative shares in 2**-24, as vam writes them


@pytest.mark.parametrize("options", [{}, {"rem": True, "preview": True, "ladder": LADDER}, {"tile": (256, 320)}])
def test_version_7_is_version_6_with_varint_sizes(options):
    """Version 7 holds what version 6 holds (convert goes both ways byte for byte); only the
    width, height, layer count, layer lengths, ladder (first value, then each rise) and tile
    are varints, so the header is smaller by exactly what those fields save."""
    size = (5000, 4000) if "tile" in options else (97, 31)
    data = build("vam", DIGEST, *size, LAYERS, CHECKS, version=7, **options)
    v6 = container.convert(data, 6)
    assert container.convert(v6, 7) == data and parse(data).layers == parse(v6).layers == LAYERS
    h7, h6 = parse(data).header, parse(v6).header
    assert (h7.version, h6.version) == (7, 6) and h7 == Header(**{**h6.__dict__, "version": 7})
    ladder = options.get("ladder", ())
    steps = [b - a for a, b in zip((0,) + ladder, ladder)]
    varints = (container.pack_uvarints([*size, len(LAYERS), *h7.layer_lengths, len(ladder), *steps])
               + container.pack_uvarints(options.get("tile", ())))
    fixed = 10 + 4 * len(LAYERS) + 1 + 4 * len(ladder) + 4 * ("tile" in options)
    assert parse(v6).header_size - parse(data).header_size == fixed - len(varints)
    bound = container.header_size("vam", len(LAYERS), len(CHECKS), len(ladder), "tile" in options, width=size[0],
                                  height=size[1], max_length=max(h7.layer_lengths),
                                  max_ladder_step=max(steps, default=0))
    # each length and step is counted at the size of the largest: the shorter ones less
    spare = sum(container.varint_size(max(values)) - container.varint_size(v)
                for values in (h7.layer_lengths, steps) for v in values)
    assert parse(data).header_size == bound - spare


def test_version_7_refuses_a_falling_ladder_and_long_varints(fuzzlib):
    with pytest.raises(ContainerError, match="must not fall"):
        build("vam", DIGEST, 97, 31, LAYERS, CHECKS, ladder=(5, 3))
    assert parse(build("vam", DIGEST, 97, 31, LAYERS, CHECKS, ladder=(5, 3), version=6)).header.ladder == (5, 3)
    data = build("vam", DIGEST, 97, 31, LAYERS, CHECKS)
    off = fuzzlib.header_layout(data)["width"][0]
    assert data[off:off + 1] == bytes([97])
    longer = fuzzlib.fix_header_crc(data[:off] + bytes([97 | 0x80, 0]) + data[off + 1:])   # 97 in two bytes
    with pytest.raises(ContainerError, match="shortest form"):
        parse(longer)
    endless = fuzzlib.fix_header_crc(data[:off] + b"\xff" * 6 + data[off + 1:])
    with pytest.raises(ContainerError, match="too long"):
        parse(endless)


# Every standard ladder (coding.ladder.standard_ladder) of 1..64 chunks, as version 8 names them by their length:
# a change to them changes what those files mean, so it must be a new format version.
STANDARD_LADDERS_SHA256 = "5c4dc36c32ee2d9afedfc4395dac2b8efddc01a0102227aea0fdc9d22022c54b"


def test_standard_ladders_are_pinned():
    ladders = [standard_ladder(n) for n in range(1, MAX_LAYERS + 1)]
    assert hashlib.sha256(repr(ladders).encode()).hexdigest() == STANDARD_LADDERS_SHA256
    assert ladders[13] == (168859, 430386, 779539, 1190191, 1629065, 2135190, 2765830, 3358517, 4078211, 4952128,
                           6126450, 7680548, 9628874, 1 << 24)   # vam's default 16 layers: preview, base, 14 chunks
    assert all(len(q) == n and q[-1] == 1 << 24 and all(a < b for a, b in zip(q, q[1:]))
               for n, q in enumerate(ladders, 1))


@pytest.mark.parametrize("chunks", [1, 5, 14, MAX_LAYERS])
def test_version_8_names_a_standard_ladder_by_its_length(fuzzlib, chunks):
    """Version 8 is version 7 with a standard ladder written as its length alone: convert goes
    both ways byte for byte, and the header is smaller by exactly the ladder's values."""
    ladder = standard_ladder(chunks)
    data = build("vam", DIGEST, 97, 31, LAYERS, CHECKS, preview=True, ladder=ladder, version=8)
    v7 = container.convert(data, 7)
    assert container.convert(v7, 8) == data and parse(data).layers == parse(v7).layers == LAYERS
    h8, h7 = parse(data).header, parse(v7).header
    assert (h8.version, h8.ladder) == (8, ladder) and h8 == Header(**{**h7.__dict__, "version": 8})
    assert fuzzlib.get_field(data, "layout") & container.LAYOUT_STANDARD_LADDER
    steps = [b - a for a, b in zip((0,) + ladder, ladder)]
    assert parse(v7).header_size - parse(data).header_size == len(container.pack_uvarints(steps))
    # any other ladder is written value by value, as in version 7
    other = ladder[:-1] + (ladder[-1] - 1,)
    assert len(build("vam", DIGEST, 97, 31, LAYERS, CHECKS, ladder=other)) == \
        len(build("vam", DIGEST, 97, 31, LAYERS, CHECKS, ladder=other, version=7))
    with pytest.raises(ContainerError, match="standard ladder"):
        parse(fuzzlib.set_field(data, "ladder_len", 0))
    with pytest.raises(ContainerError, match="layout"):      # the bit is version 8's
        parse(fuzzlib.set_field(v7, "layout", fuzzlib.get_field(v7, "layout") | container.LAYOUT_STANDARD_LADDER))


def test_version_9_marks_the_integer_parameter_path(fuzzlib):
    """Version 9 is version 8 with layout bit 6: the entropy parameters came from the weights'
    integer path. Without the bit, convert goes both ways byte for byte; with it, no earlier
    version can hold the file, and an earlier version's header with the bit set is corrupt."""
    plain = build("vam", DIGEST, 97, 31, LAYERS, CHECKS, preview=True, version=9)
    assert parse(plain).header.version == 9 and not parse(plain).header.integer_params
    v8 = container.convert(plain, 8)
    assert container.convert(v8, 9) == plain and parse(v8).header == Header(**{**parse(plain).header.__dict__,
                                                                                 "version": 8})
    marked = build("vam", DIGEST, 97, 31, LAYERS, CHECKS, preview=True, integer_params=True, version=9)
    h = parse(marked).header
    assert h.integer_params and h == Header(**{**parse(plain).header.__dict__, "integer_params": True})
    assert fuzzlib.get_field(marked, "layout") == fuzzlib.get_field(plain, "layout") | container.LAYOUT_INTEGER_PARAMS
    assert parse(marked).layers == LAYERS
    for version in (2, 6, 7, 8):
        with pytest.raises(ContainerError, match="integer parameter path is format version 9"):
            container.convert(marked, version)
    with pytest.raises(ContainerError, match="layout"):      # the bit is version 9's
        parse(fuzzlib.set_field(v8, "layout", fuzzlib.get_field(v8, "layout") | container.LAYOUT_INTEGER_PARAMS))


def test_version_10_codes_layers_differently_and_does_not_convert_across(fuzzlib):
    """Version 10's header is version 9's; its layers' symbols are grouped by table, so its
    files do not convert to earlier versions (nor theirs to 10): the layers would be misread."""
    new = build("vam", DIGEST, 97, 31, LAYERS, CHECKS, preview=True, integer_params=True)
    old = build("vam", DIGEST, 97, 31, LAYERS, CHECKS, preview=True, integer_params=True, version=9)
    h = parse(new).header
    assert h.version == 10 and h.grouped_symbols and not parse(old).header.grouped_symbols
    assert h == Header(**{**parse(old).header.__dict__, "version": 10}) and parse(new).layers == LAYERS
    assert len(new) == len(old)     # the same fields, the version byte and the header's CRC aside
    for data, version in ((new, 9), (new, 8), (new, 2), (old, 10)):
        with pytest.raises(ContainerError, match="re-encode"):
            container.convert(data, version)
    assert container.convert(new, 10) == new and container.convert(old, 9) == old


def test_version_6_damaged_trailer_or_layer_is_caught():
    data = build("vam", DIGEST, 97, 31, LAYERS, CHECKS)
    ends = parse(data).layer_ends
    for pos in (ends[0] - 1, ends[0] - 5, ends[1] - 2):   # a CRC trailer's byte, a layer's last byte
        damaged = bytearray(data)
        damaged[pos] ^= 0x10
        pgc = parse(bytes(damaged)) if pos > ends[0] else None
        if pgc is None:
            with pytest.raises(ContainerError, match="layer 1 is corrupt"):
                parse(bytes(damaged))
        else:
            assert pgc.layers == LAYERS[:1] and "layer 2 is corrupt" in pgc.problems[0]


def test_version_6_span_shorter_than_its_trailer_is_refused(fuzzlib):
    data = fuzzlib.set_field(build("vam", DIGEST, 97, 31, LAYERS, CHECKS), "lengths", 3, index=2)
    with pytest.raises(ContainerError, match="layer length"):
        parse(data)


def test_every_layer_boundary_prefix_is_a_valid_shorter_file():
    data = build("vam", DIGEST, 97, 31, LAYERS, CHECKS)
    ends = parse(data).layer_ends
    for k in range(1, len(LAYERS) + 1):
        cut = prefix(data, k)
        assert cut == data[:ends[k - 1]]
        pgc = parse(cut)
        # version 6: even the empty layer 3 has bytes (its CRC), so each cut holds exactly k layers
        assert pgc.layers == LAYERS[:k]
        assert pgc.problems == []               # a boundary cut is not a problem
        assert pgc.header.num_layers == len(LAYERS)  # the header stays as written
        assert prefix(cut, k) == cut


@pytest.mark.parametrize("k", [0, -1, len(LAYERS) + 1])
def test_prefix_rejects_impossible_layer_counts(k):
    with pytest.raises(ContainerError):
        prefix(build("vam", DIGEST, 97, 31, LAYERS, CHECKS), k)


def test_prefix_cannot_keep_more_than_the_complete_layers():
    data = build("vam", DIGEST, 97, 31, LAYERS, CHECKS)
    cut = data[:parse(data).layer_ends[0]]
    assert prefix(cut, 1) == cut
    with pytest.raises(ContainerError, match="1 complete layer"):
        prefix(cut, 2)


def test_cut_mid_layer_gives_complete_layers_and_a_problem():
    data = build("vam", DIGEST, 97, 31, LAYERS, CHECKS)
    ends = parse(data).layer_ends
    for index in (2, 4, 5):          # 1-based layer the cut falls into (layer 3 is empty)
        for cut_at in (ends[index - 2] + 1, ends[index - 1] - 1):
            pgc = parse(data[:cut_at])
            assert pgc.layers == LAYERS[:index - 1]
            assert len(pgc.problems) == 1 and f"cut inside layer {index}" in pgc.problems[0]


def test_every_truncation_offset(sample):
    """Any cut: a ContainerError up to the end of layer 1, then exactly the complete layers."""
    data, ends = sample.data, sample.layer_ends
    for n in range(len(data)):
        if n < ends[0]:
            with pytest.raises(ContainerError):
                parse(data[:n])
            continue
        pgc = parse(data[:n])
        complete = sum(1 for e in ends if e <= n)
        assert len(pgc.layers) == complete
        assert pgc.layers == list(sample.layers[:complete])
        assert bool(pgc.problems) == (n not in ends)


def test_cut_inside_header_or_first_layer_is_an_error():
    data = build("vam", DIGEST, 97, 31, LAYERS, CHECKS)
    pgc = parse(data)
    with pytest.raises(ContainerError, match="truncated inside its header"):
        parse(data[:pgc.header_size - 1])
    with pytest.raises(ContainerError, match="no complete layer"):
        parse(data[:pgc.header_size])
    with pytest.raises(ContainerError, match="cut inside layer 1"):
        parse(data[:pgc.header_size + 3])


@pytest.mark.parametrize("offset", [0, 3, 4, 5, 7, 12, 20, 24, 28, 31, 40, -1])
def test_corrupt_header_byte_is_a_container_error(offset):
    data = bytearray(build("vam", DIGEST, 97, 31, LAYERS, CHECKS))
    size = parse(bytes(data)).header_size
    data[offset % size] ^= 0x10
    with pytest.raises(ContainerError):
        parse(bytes(data))


def test_every_single_bit_flip_in_the_header_is_caught(sample):
    for i in range(sample.header_size):
        for bit in range(8):
            data = bytearray(sample.data)
            data[i] ^= 1 << bit
            with pytest.raises(ContainerError):
                parse(bytes(data))


def test_corrupt_later_layer_keeps_the_layers_before_it():
    data = bytearray(build("vam", DIGEST, 97, 31, LAYERS, CHECKS))
    ends = parse(bytes(data)).layer_ends
    data[ends[3] + 10] ^= 0x01                 # inside layer 5
    pgc = parse(bytes(data))
    assert pgc.layers == LAYERS[:4]
    assert len(pgc.problems) == 1 and "layer 5 is corrupt" in pgc.problems[0]
    data[ends[0] + 1] ^= 0x01                  # and inside layer 2: only layer 1 is left
    pgc = parse(bytes(data))
    assert pgc.layers == LAYERS[:1]
    assert "layer 2 is corrupt" in pgc.problems[0]


def test_corrupt_first_layer_is_an_error():
    data = bytearray(build("vam", DIGEST, 97, 31, LAYERS, CHECKS))
    data[parse(bytes(data)).header_size] ^= 0x80
    with pytest.raises(ContainerError, match="layer 1 is corrupt"):
        parse(bytes(data))


def test_junk_after_is_a_problem_not_an_error():
    data = build("vam", DIGEST, 97, 31, LAYERS, CHECKS)
    pgc = parse(data + b"\0junk")
    assert pgc.layers == LAYERS
    assert len(pgc.problems) == 1 and "5 trailing byte" in pgc.problems[0]


@pytest.mark.parametrize("junk", [b"\0", b"GIF89a", MAGIC, b"\n" * 100])
def test_junk_before_is_an_error(junk):
    with pytest.raises(ContainerError, match="bad magic|version"):
        parse(junk + build("vam", DIGEST, 97, 31, LAYERS, CHECKS))


@pytest.mark.parametrize("data", [b"", b"\x89", b"\x89PG", MAGIC, MAGIC + b"\x01", b"\x89PNG\r\n\x1a\n" + bytes(40)])
def test_short_or_foreign_data_is_an_error(data):
    with pytest.raises(ContainerError):
        parse(data)


@pytest.mark.parametrize("version", [0, 11, 255])
def test_unknown_version_is_an_error(fuzzlib, sample, version):
    with pytest.raises(ContainerError, match=f"version {version} .this build reads 1, 2, 3, 4, 5, 6, 7, 8, 9, 10\\)"):
        parse(fuzzlib.set_field(sample.data, "version", version))


def _version1(model, digest, width, height, layers, checksums) -> bytes:
    """A version-1 file as that format wrote it: no layout byte, no ladder."""
    head = b"".join([MAGIC, struct.pack(">BB", 1, len(model)), model.encode(), digest,
                     struct.pack(">IIH", width, height, len(layers)),
                     struct.pack(f">B{len(checksums)}I", len(checksums), *checksums),
                     struct.pack(f">{len(layers)}I", *map(len, layers)),
                     struct.pack(f">{len(layers)}I", *map(zlib.crc32, layers))])
    return head + struct.pack(">I", zlib.crc32(head)) + b"".join(layers)


def test_version_1_files_still_parse():
    data = _version1("vam", DIGEST, 97, 31, LAYERS, CHECKS)
    pgc = parse(data)
    h = pgc.header
    assert (h.version, h.preview, h.ladder) == (1, False, ())
    assert pgc.layers == LAYERS and h.checksums == CHECKS
    assert prefix(data, 2) == data[:pgc.layer_ends[1]]
    assert parse(prefix(data, 2)).header.version == 1   # a cut file keeps its version


@pytest.mark.parametrize("preview, ladder", [(False, ()), (True, ()), (True, (1, 2, 1 << 24)), (False, (5,) * 64)])
def test_version_2_layout_and_ladder_round_trip(preview, ladder):
    for version in (2, 6, 7, 8):
        data = build("vam", DIGEST, 97, 31, LAYERS, CHECKS, preview=preview, ladder=ladder, version=version)
        h = parse(data).header
        assert (h.version, h.preview, h.ladder) == (version, preview, ladder)
        # version 7: at most the size for these values; by default, the largest any values give
        exact = {"width": 97, "height": 31, "max_length": 304, "max_ladder_step": max(ladder, default=0)}
        size = container.header_size("vam", len(LAYERS), len(CHECKS), len(ladder), version=version, **exact)
        largest = container.header_size("vam", len(LAYERS), len(CHECKS), len(ladder), version=version)
        assert parse(data).header_size == size if version < 7 else parse(data).header_size <= size <= largest


def test_version_3_is_written_only_for_a_fine_ladder():
    """In the earlier layouts, the lowest version that expresses a file: readers of version 2
    keep reading every file that needs nothing newer, and refuse a fine ladder by its version."""
    data = build("progdtd", DIGEST, 97, 31, LAYERS, CHECKS, ladder=(1 << 15, 3 << 16, 5 << 16), fine_ladder=True,
                 version=3)
    h = parse(data).header
    assert (h.version, h.fine_ladder, h.ladder, h.preview, h.base_chunk) == (3, True, (1 << 15, 3 << 16, 5 << 16),
                                                                              False, False)
    assert parse(prefix(data, 1)).header.version == 3
    assert parse(build("progdtd", DIGEST, 97, 31, LAYERS, CHECKS, ladder=(1, 3, 5), version=2)).header.version == 2
    with pytest.raises(ContainerError, match="format version 3, 6, 7, 8, 9 or 10"):
        build("progdtd", DIGEST, 97, 31, LAYERS, CHECKS, ladder=(1, 3, 5), fine_ladder=True, version=2)


def test_version_5_is_written_only_for_tiles():
    data = build("vam", DIGEST, 5000, 4000, LAYERS, (), preview=True, ladder=(1, 2, 3), tile=(1024, 960), version=5)
    h = parse(data).header
    assert (h.version, h.tile, h.width, h.height, h.preview, h.ladder) == (5, (1024, 960), 5000, 4000, True, (1, 2, 3))
    assert parse(prefix(data, 2)).header.tile == (1024, 960)
    assert parse(build("vam", DIGEST, 97, 31, LAYERS, CHECKS, rem=True, version=3)).header.version == 3
    assert parse(container.convert(data, 6)).header.tile == (1024, 960)
    with pytest.raises(ContainerError, match="implausible image size"):   # 20 MP is for tiles only
        build("vam", DIGEST, 5000, 4000, LAYERS, CHECKS)


def test_a_bad_layout_byte_or_ladder_is_refused(fuzzlib):
    data = build("vam", DIGEST, 97, 31, LAYERS, CHECKS, preview=True, ladder=(1, 2), version=2)
    with pytest.raises(ContainerError, match="layout"):
        parse(fuzzlib.set_field(data, "layout", 4))     # the fine-ladder bit is version 3's
    with pytest.raises(ContainerError, match="layout"):
        parse(fuzzlib.set_field(fuzzlib.set_field(data, "version", 3), "layout", 16))
    with pytest.raises(ContainerError):
        parse(fuzzlib.set_field(data, "ladder_len", MAX_LAYERS + 1))
    with pytest.raises(ContainerError):
        build("vam", DIGEST, 97, 31, LAYERS, CHECKS, ladder=(1,) * (MAX_LAYERS + 1))


def test_prefix_within_a_byte_budget():
    data = build("vam", DIGEST, 97, 31, LAYERS, CHECKS)
    ends = parse(data).layer_ends
    for budget in (ends[0], ends[0] + 1, ends[3] - 1, ends[3], len(data), len(data) + 100):
        cut = container.prefix_within(data, budget)
        assert len(cut) <= budget and len(cut) == max(e for e in ends if e <= budget)
    with pytest.raises(ContainerError, match="no whole-layer prefix fits in"):
        container.prefix_within(data, ends[0] - 1)


@pytest.mark.parametrize("field, value", [
    ("width", 0), ("height", 0), ("width", MAX_SIDE + 1), ("height", MAX_SIDE + 1),
    ("width", 2**32 - 1), ("height", 2**32 - 1),
    ("num_layers", 0), ("num_layers", MAX_LAYERS + 1), ("num_layers", 2**16 - 1),
    ("num_checks", MAX_CHECKSUMS + 1), ("num_checks", 255),
    ("name_len", 0), ("name_len", MAX_NAME + 1), ("name_len", 255),
])
def test_absurd_header_fields_with_a_valid_crc_are_rejected_before_allocation(fuzzlib, sample, field, value):
    data = fuzzlib.set_field(sample.data, field, value)     # the header CRC is recomputed
    tracemalloc.start()
    try:
        with pytest.raises(ContainerError):
            parse(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * len(data) + (1 << 16), f"parse allocated {peak} bytes for a {len(data)}-byte input"


def test_too_many_pixels_with_a_valid_crc_is_rejected(fuzzlib, sample):
    data = fuzzlib.set_field(fuzzlib.set_field(sample.data, "width", MAX_SIDE), "height", MAX_PIXELS // MAX_SIDE + 1)
    with pytest.raises(ContainerError, match="implausible image size"):
        parse(data)
    data = fuzzlib.set_field(fuzzlib.set_field(sample.data, "width", MAX_SIDE), "height", MAX_PIXELS // MAX_SIDE)
    assert parse(data).header.width * parse(data).header.height == MAX_PIXELS    # the limit itself is fine


def test_absurd_layer_length_with_a_valid_crc_is_rejected(fuzzlib, sample):
    with pytest.raises(ContainerError, match="implausible layer length"):
        parse(fuzzlib.set_field(sample.data, "lengths", container.MAX_LAYER_BYTES + container.LAYER_TRAILER + 1,
                                index=1))
    # a length that merely overstates (valid header) reads as a cut layer
    pgc = parse(fuzzlib.set_field(sample.data, "lengths", 2**20, index=1))
    assert len(pgc.layers) == 1 and "cut inside layer 2" in pgc.problems[0]


def test_non_ascii_model_name_with_a_valid_crc_is_rejected(fuzzlib, sample):
    with pytest.raises(ContainerError, match="model name"):
        parse(fuzzlib.set_field(sample.data, "name", b"v\xe4m"))


def test_wrong_header_crc_is_rejected(fuzzlib, sample):
    layout = fuzzlib.header_layout(sample.data)
    (crc,) = struct.unpack_from(">I", sample.data, layout["hcrc"][0])
    with pytest.raises(ContainerError, match="CRC"):
        parse(fuzzlib.set_field(sample.data, "hcrc", crc ^ 1))
    with pytest.raises(ContainerError, match="CRC"):
        parse(fuzzlib.set_field(sample.data, "width", 98, fix_crc=False))


@pytest.mark.parametrize("kwargs, message", [
    (dict(model=""), "model name"),
    (dict(model="x" * (MAX_NAME + 1)), "model name"),
    (dict(model="v\u00e4m"), "model name"),
    (dict(digest=b"1234567"), "digest"),
    (dict(width=0), "image size"),
    (dict(height=MAX_SIDE + 1), "image size"),
    (dict(width=MAX_SIDE, height=MAX_SIDE), "image size"),
    (dict(layers=[]), "layer count"),
    (dict(layers=[b"x"] * (MAX_LAYERS + 1)), "layer count"),
    (dict(checksums=tuple(range(MAX_CHECKSUMS + 1))), "checksums"),
])
def test_build_rejects_invalid_fields(kwargs, message):
    args = dict(model="vam", digest=DIGEST, width=10, height=10, layers=[b"a"], checksums=())
    args.update(kwargs)
    with pytest.raises(ContainerError, match=message):
        build(args["model"], args["digest"], args["width"], args["height"], args["layers"], args["checksums"])


# -- layer string tables ----------------------------------------------------------------------------


@pytest.mark.parametrize("strings", [[], [b""], [b"", b""], [b"abc", b""], [b"z" * 1000, b"y"]])
def test_pack_unpack_strings_round_trip(strings):
    assert unpack_strings(pack_strings(strings), len(strings)) == strings


@pytest.mark.parametrize("data, count", [
    (b"", 1), (b"\0\0\0", 1), (b"\0\0\0\x05abcd", 1), (b"\0\0\0\x03abcd", 1),
    (b"\xff\xff\xff\xff" + b"\0" * 4, 2), (b"\0\0\0\x01\0\0\0\x01a", 2), (b"a", 0),
])
def test_unpack_strings_rejects_lying_lengths(data, count):
    with pytest.raises(ContainerError):
        unpack_strings(data, count)


@given(st.lists(st.binary(max_size=40), max_size=6))
def test_pack_strings_property(strings):
    packed = pack_strings(strings)
    assert unpack_strings(packed, len(strings)) == strings
    for cut in {0, len(packed) - 1, len(packed) // 2}:
        if 0 <= cut < len(packed):
            with pytest.raises(ContainerError):
                unpack_strings(packed[:cut], len(strings))
    with pytest.raises(ContainerError):
        unpack_strings(packed + b"!", len(strings))


@given(st.binary(max_size=80), st.integers(0, 6))
def test_unpack_strings_arbitrary_bytes(data, count):
    try:
        out = unpack_strings(data, count)
    except ContainerError:
        return
    assert len(out) == count and pack_strings(out) == data


# -- properties -------------------------------------------------------------------------------------------


def _check_parsed(data: bytes, pgc: container.PgcFile) -> None:
    """What any successfully parsed file must satisfy."""
    h = pgc.header
    assert 1 <= len(pgc.layers) <= h.num_layers <= MAX_LAYERS
    assert 1 <= h.width <= MAX_SIDE and 1 <= h.height <= MAX_SIDE and h.width * h.height <= MAX_PIXELS
    assert len(h.checksums) <= MAX_CHECKSUMS
    starts = [pgc.header_size] + pgc.layer_ends[:-1]
    if h.version >= 6:
        for layer, start, length in zip(pgc.layers, starts, h.layer_lengths):
            assert data[start:start + length] == layer + struct.pack(">I", zlib.crc32(layer))
    for layer, start, length, crc in zip(pgc.layers, starts, h.layer_lengths, h.layer_crcs):
        assert layer == data[start:start + length] and zlib.crc32(layer) == crc
    consumed = pgc.layer_ends[len(pgc.layers) - 1]
    assert bool(pgc.problems) == (consumed != len(data))   # silent only when it stops on the data's end


def _parse_or_container_error(data: bytes):
    """Either a ContainerError (returns None) or a parse whose every field is consistent."""
    try:
        pgc = parse(data)
    except ContainerError:
        return None
    _check_parsed(data, pgc)
    return pgc


@settings(max_examples=400)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_container_error(data):
    _parse_or_container_error(data)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_after_the_magic(tail):
    data = MAGIC + b"\x01" + tail
    _parse_or_container_error(data)


@st.composite
def raw_headers(draw):
    """Headers with any field values (absurd ones too) and a correct header CRC, then any payload."""
    name = draw(st.binary(max_size=40))
    name_len = draw(st.one_of(st.just(len(name)), st.integers(0, 255)))
    num_layers = draw(st.one_of(st.integers(0, 12), st.integers(0, 2**16 - 1)))
    num_checks = draw(st.one_of(st.integers(0, 9), st.integers(0, 255)))
    sides = st.one_of(st.integers(0, 300), st.integers(0, 2**32 - 1), st.sampled_from([MAX_SIDE, MAX_SIDE + 1]))
    head = b"".join([
        MAGIC, bytes([draw(st.sampled_from([1, 1, 1, 0, 2, 255])), name_len]), name.ljust(name_len, b"v")[:name_len],
        draw(st.binary(min_size=8, max_size=8)),
        struct.pack(">IIH", draw(sides), draw(sides), num_layers),
        bytes([num_checks]),
        draw(st.binary(min_size=4 * min(num_checks, 10), max_size=4 * min(num_checks, 10))),
        draw(st.binary(min_size=8 * min(num_layers, 70), max_size=8 * min(num_layers, 70))),
    ])
    return head + struct.pack(">I", zlib.crc32(head)) + draw(st.binary(max_size=200))


@settings(max_examples=400)
@given(raw_headers())
def test_headers_with_valid_crc_and_any_fields(data):
    _parse_or_container_error(data)


@st.composite
def files(draw):
    model = draw(st.text(alphabet=st.characters(max_codepoint=127), min_size=1, max_size=MAX_NAME))
    width = draw(st.integers(1, MAX_SIDE))
    height = draw(st.integers(1, min(MAX_SIDE, MAX_PIXELS // width)))
    layers = draw(st.lists(st.binary(max_size=50), min_size=1, max_size=MAX_LAYERS))
    checksums = tuple(draw(st.lists(st.integers(0, 2**32 - 1), max_size=MAX_CHECKSUMS)))
    digest = draw(st.binary(min_size=8, max_size=8))
    return model, digest, width, height, layers, checksums


@settings(max_examples=300)
@given(files())
def test_build_parse_round_trip_property(args):
    model, digest, width, height, layers, checksums = args
    data = build(model, digest, width, height, layers, checksums)
    pgc = parse(data)
    h = pgc.header
    assert (h.model, h.weights_digest, h.width, h.height, h.checksums) == (model, digest, width, height, checksums)
    assert pgc.layers == layers and pgc.problems == []
    assert pgc.layer_ends[-1] == len(data)
    ends = pgc.layer_ends
    for k in range(1, len(layers) + 1):
        # empty layers right after the cut are complete too: the same bytes hold them
        complete = sum(1 for e in ends if e <= ends[k - 1])
        assert parse(prefix(data, k)).layers == layers[:complete]


@settings(max_examples=300)
@given(files(), st.data())
def test_any_cut_of_a_valid_file(args, draw):
    data = build(*args)
    layers = args[4]
    n = draw.draw(st.integers(0, len(data)))
    pgc0 = parse(data)
    if n < pgc0.layer_ends[0]:
        with pytest.raises(ContainerError):
            parse(data[:n])
        return
    pgc = parse(data[:n])
    complete = sum(1 for e in pgc0.layer_ends if e <= n)
    assert pgc.layers == layers[:complete]
    assert bool(pgc.problems) == (n not in pgc0.layer_ends)


@settings(max_examples=200)
@given(files(), st.data())
def test_random_corruption_of_a_valid_file(args, draw):
    data = bytearray(build(*args))
    for _ in range(draw.draw(st.integers(1, 4))):
        i = draw.draw(st.integers(0, len(data) - 1))
        data[i] = draw.draw(st.integers(0, 255))
    data = bytes(data)
    pgc = _parse_or_container_error(data)
    if pgc is not None:
        assert pgc.layers == args[4][:len(pgc.layers)]   # CRCs let no damaged layer through


def test_container_error_is_a_progcodec_error():
    assert issubclass(ContainerError, ProgcodecError)


def test_model_names_are_ascii_only():
    for name in ["vam", string.ascii_letters[:MAX_NAME], "a-b_c.d"]:
        assert parse(build(name, DIGEST, 1, 1, [b"x"])).header.model == name
