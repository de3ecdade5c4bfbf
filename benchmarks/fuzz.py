#!/usr/bin/env python
"""Mutation fuzzer for ``.pgc`` decoding: every input decodes or raises ``ProgcodecError``.

    python benchmarks/fuzz.py                       # 10000 cases on a seeded, untrained model
    python benchmarks/fuzz.py --cases 50000 --seed 7
    python benchmarks/fuzz.py --weights weights     # the shipped (or any) weights folder instead
    python benchmarks/fuzz.py --model progdtd

It encodes one small natural image, then feeds ``container.parse``, ``progcodec.info``
and ``progcodec.decode`` with mutations of that file: bit flips, truncation
(every offset first, then random), header fields overwritten with and without
a recomputed header CRC, layers rewritten behind valid CRCs (hostile rANS
strings), checksums and layer lengths that lie, junk before and after, pure
noise. Outcomes are counted as decoded (a PIL image of the header's size),
clean errors (``ProgcodecError``), crashes (anything else) and hangs (a case
over ``--time-limit`` seconds). Exit status 1 when there was a crash or hang.

This file is also the library behind ``tests/test_fuzz.py`` (loaded by path):
the mutators, the header-editing helpers and ``seeded_model`` live here once.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import signal
import struct
import sys
import tempfile
import threading
import time
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from progcodec import container
from progcodec.errors import ProgcodecError, ProgcodecWarning

# -- a model that needs no trained weights -------------------------------------------------


def seeded_model(seed: int = 0, name: str = "vam", **config):
    """Model ``name`` (default arguments) from ``torch.manual_seed(seed)``, made to code real bits.

    Straight from initialisation the latents are ~0 and every predicted scale
    sits on the scale table's floor: each later layer would be a few empty
    bytes, (for vam) all ranking ties, and decoding 1 or 10 layers would give
    the same pixels. Scaling the latent heads and the scale predictors spreads
    the latents and the scale indexes, so layers carry bits and rankings are real.
    """
    import torch

    from progcodec.models import MODELS

    torch.manual_seed(seed)
    model = MODELS[name](**config)   # config: constructor arguments (N, M, ...) for a smaller net
    with torch.no_grad():
        if name == "vam":
            heads = (model.head_base, model.head_top)
            scale_layers = [(model.h_s[-1], model.M), (model.residual.residual_params.net[-1], model.M)]
        elif name == "progdtd":
            heads = (model.g_a[-1],)
            scale_layers = [(model.h_s[-2], model.M)]        # the conv before the final ReLU
        else:
            raise ValueError(f"no seeded recipe for model {name!r}")
        for head in heads:
            head.weight.mul_(5.0)
        for layer, scale_channels in scale_layers:
            layer.weight.mul_(20.0)
            layer.bias[:scale_channels].add_(1.0)    # the scale half of (scales, means)
        for rem in getattr(getattr(model, "residual", None), "rems", ()):
            rem.net[-1].weight.normal_(0, 0.02)     # an untrained REM is the identity: make it refine
            rem.net[-1].bias.normal_(0, 0.1)
    return model


def save_seeded_weights(directory: Path, seed: int = 0, name: str = "vam", **config) -> Path:
    """Save :func:`seeded_model` as ``directory/NAME.safetensors`` (+ manifest)."""
    from progcodec.weights import save_weights

    path = Path(directory) / f"{name}.safetensors"
    save_weights(seeded_model(seed, name, **config), path,
                 {"note": f"untrained, torch.manual_seed({seed}), for tests"})
    return path


def sample_image(width: int = 96, height: int = 64):
    """A small natural photo (scikit-image's astronaut), or a textured gradient without scikit-image."""
    import numpy as np
    from PIL import Image

    try:
        from skimage import data

        return Image.fromarray(data.astronaut()).resize((width, height), Image.LANCZOS)
    except ImportError:
        yy, xx = np.mgrid[0:height, 0:width]
        noise = np.random.default_rng(0).integers(0, 40, (height, width, 3))
        arr = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx ^ yy) & 255], -1)
        return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8))


# -- reading and editing a header without validating it --------------------------------------

# name -> struct format of one element; arrays (checks, lengths, crcs) repeat it.
FIELD_FORMATS = {
    "magic": "4s", "version": ">B", "name_len": ">B", "name": None, "digest": "8s",
    "width": ">I", "height": ">I", "num_layers": ">H", "num_checks": ">B",
    "checks": ">I", "lengths": ">I", "crcs": ">I", "layout": ">B", "ladder_len": ">B", "ladder": ">I",
    "tile_h": ">H", "tile_w": ">H", "hcrc": ">I",
}
# layout, ladder_len and ladder exist from format version 2 on, tile_h and tile_w in tiled version-4 files
INT_FIELDS = ("version", "name_len", "width", "height", "num_layers", "num_checks", "layout", "ladder_len",
              "tile_h", "tile_w")
ARRAY_FIELDS = ("checks", "lengths", "crcs", "ladder")


# version 7 (container.COMPACT_HEADER) writes these as LEB128 varints
VARINT_FIELDS = ("width", "height", "num_layers", "lengths", "ladder_len", "ladder", "tile_h", "tile_w")


def _compact(data: bytes) -> bool:
    return len(data) > 4 and data[4] >= container.COMPACT_HEADER


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, end) of the varint at ``pos``, without any check: a varint cut by the data's
    end reads as far as it goes and ends one byte past it."""
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos
    return value, pos + 1


def _layout(data: bytes):
    """(``field -> (offset, size)``, ``array field -> [(offset, size)] per element``) or None."""
    data = bytes(data)
    if len(data) < 6:
        return None
    layout, elements, pos = {}, {}, 0
    compact = _compact(data)

    def put(name, size):
        nonlocal pos
        layout[name] = (pos, size)
        pos += size

    def put_int(name, fmt):
        """One integer field (a varint in version 7); its value, None past the data's end."""
        nonlocal pos
        if compact:
            value, end = _read_varint(data, pos)
            put(name, end - pos)
            return value if end <= len(data) else None
        put(name, struct.calcsize(fmt))
        return struct.unpack_from(fmt, data, pos - struct.calcsize(fmt))[0] if pos <= len(data) else None

    def put_array(name, count):
        nonlocal pos
        start, spans = pos, []
        for _ in range(count):
            end = _read_varint(data, pos)[1] if compact and name in VARINT_FIELDS else pos + 4
            spans.append((pos, end - pos))
            pos = end
        layout[name], elements[name] = (start, pos - start), spans

    put("magic", 4)
    put("version", 1)
    put("name_len", 1)
    put("name", data[5])
    put("digest", 8)
    put_int("width", ">I")
    put_int("height", ">I")
    num_layers = put_int("num_layers", ">H")
    if num_layers is None:
        return None
    num_layers = min(num_layers, 1 << 16)
    put("num_checks", 1)
    if pos > len(data):
        return None
    put_array("checks", data[pos - 1])
    put_array("lengths", num_layers)
    if not container.crc_trailer(data[4]):        # version 6 ends each layer with its CRC instead
        put_array("crcs", num_layers)
    if data[4] >= 2:
        put("layout", 1)
        ladder_len = put_int("ladder_len", ">B")
        if ladder_len is None:
            return None
        layout_byte = data[layout["layout"][0]]
        # version 8 names a standard ladder by its length alone (container.LAYOUT_STANDARD_LADDER)
        standard = data[4] >= container.STANDARD_LADDER and layout_byte & container.LAYOUT_STANDARD_LADDER
        put_array("ladder", 0 if standard else min(ladder_len, 1 << 16))
        if data[4] >= 4 and layout_byte & 16:     # a tiled file: tile height, width
            put_int("tile_h", ">H")
            put_int("tile_w", ">H")
    put("hcrc", 4)
    return layout, elements


def header_layout(data: bytes) -> dict[str, tuple[int, int]] | None:
    """``field -> (offset, size)`` as the bytes claim it, without any check.

    Counts are read from the data as they are (absurd ones included), so the
    offsets may run past the end. None when the data stops before the counts.
    """
    found = _layout(data)
    return None if found is None else found[0]


def element_spans(data: bytes, name: str) -> list[tuple[int, int]]:
    """(offset, size) of each element of an array field (checks, lengths, crcs, ladder)."""
    found = _layout(data)
    return [] if found is None else found[1].get(name, [])


def _span(data: bytes, name: str, index: int = 0) -> tuple[int, int] | None:
    found = _layout(data)
    if found is None:
        return None
    layout, elements = found
    if name in ARRAY_FIELDS:
        spans = elements[name]
        return spans[index] if index < len(spans) else (layout[name][0] + layout[name][1], 4)
    return layout[name]


def get_field(data: bytes, name: str, index: int = 0) -> int:
    """An integer field as the bytes hold it (``index``-th element for arrays)."""
    off, size = _span(data, name, index)
    if _compact(data) and name in VARINT_FIELDS:
        return _read_varint(data, off)[0]
    return struct.unpack_from(FIELD_FORMATS[name], data, off)[0]


def fix_header_crc(data: bytes) -> bytes:
    """Recompute the header CRC where the (possibly edited) counts put it."""
    layout = header_layout(data)
    if layout is None:
        return bytes(data)
    off = layout["hcrc"][0]
    if off + 4 > len(data):
        return bytes(data)
    return bytes(data[:off]) + struct.pack(">I", zlib.crc32(data[:off])) + bytes(data[off + 4:])


def set_field(data: bytes, name: str, value, index: int = 0, fix_crc: bool = True) -> bytes:
    """Overwrite one header field (``index``-th element for arrays) in place; bytes past the end
    are dropped. A version-7 varint field is rewritten in its new length (the bytes after it move)."""
    span = _span(data, name, index)
    if span is None:
        return bytes(data)
    off, size = span
    if _compact(data) and name in VARINT_FIELDS and isinstance(value, int):
        if off >= len(data):
            return bytes(data)
        out = bytes(data[:off]) + container.pack_uvarints([value & U32]) + bytes(data[off + size:])
        return fix_header_crc(out) if fix_crc else out
    if isinstance(value, int):
        fmt = FIELD_FORMATS[name]
        value = struct.pack(fmt, value & ((1 << (8 * struct.calcsize(fmt))) - 1))
    value = bytes(value)[:size].ljust(size, b"\0")
    out = bytearray(data)
    out[off:off + size] = value[:max(0, min(size, len(out) - off))]
    out = bytes(out[:len(data)])
    return fix_header_crc(out) if fix_crc and name != "hcrc" else out


# -- mutations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """A valid file and what it holds, for mutators to work from."""

    data: bytes
    header: container.Header
    header_size: int
    layers: tuple[bytes, ...]
    layer_ends: tuple[int, ...]

    @classmethod
    def of(cls, data: bytes) -> "Sample":
        pgc = container.parse(data)
        assert not pgc.problems, pgc.problems
        return cls(bytes(data), pgc.header, pgc.header_size, tuple(pgc.layers), tuple(pgc.layer_ends))

    def rebuild(self, layers=None, checksums=None, width=None, height=None, model=None, digest=None,
                preview=None, ladder=None) -> bytes:
        """A file with valid CRCs everywhere, some parts replaced."""
        h = self.header
        return container.build(model or h.model, h.weights_digest if digest is None else digest,
                               width or h.width, height or h.height,
                               list(self.layers if layers is None else layers),
                               tuple(h.checksums if checksums is None else checksums),
                               preview=h.preview if preview is None else preview,
                               ladder=h.ladder if ladder is None else ladder,
                               base_chunk=h.base_chunk, fine_ladder=h.fine_ladder)


U32 = (1 << 32) - 1


def _int_values(name: str, current: int, max_side: int | None) -> list[int]:
    """Interesting values for one integer header field."""
    bits = 8 * struct.calcsize(FIELD_FORMATS[name])
    top = (1 << bits) - 1
    values = [0, 1, 2, top, top - 1, 1 << (bits - 1), current - 1, current + 1, current * 2, current // 2]
    if name in ("width", "height"):
        sides = [63, 64, 65, 127, 128, 1000, 1024, container.MAX_SIDE, container.MAX_SIDE + 1,
                 container.MAX_PIXELS, container.MAX_PIXELS + 1]
        # A valid size the decoder must actually run its hyper path on: cap it where time matters.
        values += [s for s in sides if max_side is None or s <= max_side or s > container.MAX_SIDE]
        values = [v for v in values if max_side is None or v <= max_side or v > container.MAX_SIDE]
    if name == "num_layers":
        values += [container.MAX_LAYERS, container.MAX_LAYERS + 1, 9, 11]
    if name == "num_checks":
        values += [container.MAX_CHECKSUMS, container.MAX_CHECKSUMS + 1, 3]
    if name == "name_len":
        values += [container.MAX_NAME, container.MAX_NAME + 1]
    return [v & top for v in values]


def _flip_bits(rng: random.Random, data: bytes, count: int, lo: int = 0, hi: int | None = None) -> bytes:
    out = bytearray(data)
    hi = len(out) if hi is None else min(hi, len(out))
    if hi <= lo:
        return bytes(out)
    for _ in range(count):
        i = rng.randrange(lo, hi)
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _mutate_bytes(rng: random.Random, blob: bytes) -> bytes:
    """A hostile version of one layer's bytes."""
    choice = rng.randrange(6)
    if choice == 0 and blob:
        return _flip_bits(rng, blob, rng.randint(1, 8))
    if choice == 1:
        return blob[:rng.randrange(len(blob) + 1)]
    if choice == 2:
        return blob + rng.randbytes(rng.randint(1, 256))
    if choice == 3:
        return rng.randbytes(rng.randint(0, max(1, 2 * len(blob))))
    if choice == 4:
        return bytes([rng.choice((0x00, 0xFF))]) * rng.randint(0, max(1, 2 * len(blob)))
    out = bytearray(blob)
    for _ in range(rng.randint(1, 6)):
        if out:
            out[rng.randrange(len(out))] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    return bytes(out)


def m_bitflip(rng, s: Sample, max_side):
    return _flip_bits(rng, s.data, rng.choice((1, 1, 2, 3, 8, 32)))


def m_bitflip_header(rng, s: Sample, max_side):
    return _flip_bits(rng, s.data, rng.randint(1, 3), 0, s.header_size)


def m_byte_set(rng, s: Sample, max_side):
    out = bytearray(s.data)
    for _ in range(rng.randint(1, 4)):
        out[rng.randrange(len(out))] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    return bytes(out)


def m_truncate(rng, s: Sample, max_side):
    return s.data[:rng.randrange(len(s.data))]


def m_truncate_near_boundary(rng, s: Sample, max_side):
    end = rng.choice((s.header_size,) + s.layer_ends)
    return s.data[:max(0, end + rng.choice((-2, -1, 0, 1, 2)))]


def _header_field(rng, s: Sample, fix_crc: bool, max_side) -> bytes:
    present = header_layout(s.data) or {}
    name = rng.choice([n for n in INT_FIELDS + ARRAY_FIELDS + ("magic", "name", "digest", "hcrc") if n in present])
    if name in INT_FIELDS:
        try:
            current = get_field(s.data, name)
        except (struct.error, TypeError):  # data too short for the field as its counts place it
            current = 1
        return set_field(s.data, name, rng.choice(_int_values(name, current, max_side)), fix_crc=fix_crc)
    if name in ARRAY_FIELDS:
        count = len(element_spans(s.data, name))    # a standard ladder (version 8) has no elements
        index = rng.randrange(max(count, 1))
        value = rng.choice((0, 1, U32, 1 << 31, rng.randrange(U32 + 1), container.MAX_LAYER_BYTES,
                            container.MAX_LAYER_BYTES + 1, len(s.data)))
        if name == "lengths" and index < s.header.num_layers:   # (an earlier edit may have changed the count)
            value = rng.choice((value, s.header.layer_lengths[index] + rng.choice((-1, 1, 4, -4))))
        return set_field(s.data, name, value, index, fix_crc=fix_crc)
    if name == "name":
        return set_field(s.data, name, rng.choice((b"vbm", b"\xff\xfe\xfd", b"VAM", b"\0\0\0", rng.randbytes(3))),
                         fix_crc=fix_crc)
    if name == "hcrc":
        return set_field(s.data, name, rng.randrange(U32 + 1))
    return set_field(s.data, name, rng.randbytes(struct.calcsize(FIELD_FORMATS[name])), fix_crc=fix_crc)


def m_header_field_raw(rng, s: Sample, max_side):
    return _header_field(rng, s, False, max_side)


def m_header_field_crc(rng, s: Sample, max_side):
    return _header_field(rng, s, True, max_side)


def m_header_fields_crc(rng, s: Sample, max_side):
    """Several fields at once (only when sizes are not capped: two large sides cost seconds)."""
    data = s.data
    for _ in range(rng.randint(2, 4)):
        data = _header_field(rng, Sample(data, s.header, s.header_size, s.layers, s.layer_ends), True, max_side) \
            if header_layout(data) and len(data) >= s.header_size else data
    return data


def m_size_lie_crc(rng, s: Sample, max_side):
    """A valid header (CRC and all) whose width and height lie within the format's limits."""
    limit = max_side or container.MAX_SIDE
    width = min(limit, int(2 ** rng.uniform(0, 15.01)))   # log-uniform: mostly small, sometimes the limit
    height = min(limit, container.MAX_PIXELS // width, int(2 ** rng.uniform(0, 15.01)))
    return s.rebuild(width=width, height=height)


def m_layer_payload_crc(rng, s: Sample, max_side):
    """Hostile bytes inside a layer, with CRCs that vouch for them: the rANS decoders see them."""
    layers = list(s.layers)
    i = rng.randrange(len(layers))
    layers[i] = _mutate_bytes(rng, layers[i])
    if i == 0 and not s.header.preview and rng.random() < 0.5:  # keep layer 1's string table, mutate a string
        z, base = container.unpack_strings(s.layers[0], 2)
        z, base = (_mutate_bytes(rng, z), base) if rng.random() < 0.5 else (z, _mutate_bytes(rng, base))
        layers[0] = container.pack_strings([z, base])
    return s.rebuild(layers=layers)


def m_layer_table_lie_crc(rng, s: Sample, max_side):
    """Layer 1's string table with lengths that lie (CRCs valid); with a preview layer
    (z and the base in layers of their own) the base layer is cut or padded instead."""
    if s.header.preview:
        layers = list(s.layers)
        if len(layers) > 1:
            base = layers[1]
            layers[1] = base[:rng.randrange(len(base) + 1)] if rng.random() < 0.5 else base + rng.randbytes(9)
        return s.rebuild(layers=layers)
    z, base = container.unpack_strings(s.layers[0], 2)
    lengths = [len(z), len(base)]
    lengths[rng.randrange(2)] = rng.choice((0, 1, U32, len(z) + len(base), rng.randrange(U32 + 1)))
    table = struct.pack(">2I", *lengths) if rng.random() < 0.8 else rng.randbytes(rng.randint(0, 12))
    return s.rebuild(layers=[table + z + base] + list(s.layers[1:]))


def m_layers_shuffle_crc(rng, s: Sample, max_side):
    """Layers dropped, duplicated, reordered or emptied, all with valid CRCs."""
    layers = list(s.layers)
    op = rng.randrange(4)
    if op == 0 and len(layers) > 1:
        i, j = rng.sample(range(len(layers)), 2)
        layers[i], layers[j] = layers[j], layers[i]
    elif op == 1:
        layers.insert(rng.randrange(len(layers) + 1), rng.choice(layers))
    elif op == 2 and len(layers) > 1:
        del layers[rng.randrange(len(layers))]
    else:
        layers[rng.randrange(len(layers))] = b""
    return s.rebuild(layers=layers[:container.MAX_LAYERS])


def m_checksums_crc(rng, s: Sample, max_side):
    checks = list(s.header.checksums)
    op = rng.randrange(3)
    if op == 0 and checks:
        checks[rng.randrange(len(checks))] = rng.randrange(U32 + 1)
    elif op == 1:
        checks = checks[:rng.randrange(len(checks) + 1)]
    else:
        checks = checks + [rng.randrange(U32 + 1) for _ in range(rng.randint(1, container.MAX_CHECKSUMS - len(checks)))]
    return s.rebuild(checksums=checks)


def m_model_crc(rng, s: Sample, max_side):
    """Another model name or weights digest, header CRC valid."""
    if rng.random() < 0.5:
        return s.rebuild(model=rng.choice(("vbm", "progdtd", "x" * container.MAX_NAME, "VAM", "v")))
    return s.rebuild(digest=rng.randbytes(8))


def m_junk_before(rng, s: Sample, max_side):
    junk = rng.choice((rng.randbytes(rng.randint(1, 64)), container.MAGIC, b"\0", s.data[:rng.randint(1, 40)]))
    return junk + s.data


def m_junk_after(rng, s: Sample, max_side):
    junk = rng.choice((rng.randbytes(rng.randint(1, 256)), b"\0", s.data, s.data[:rng.randint(1, 64)]))
    return s.data + junk


def m_insert_delete(rng, s: Sample, max_side):
    i = rng.randrange(len(s.data) + 1)
    if rng.random() < 0.5:
        return s.data[:i] + rng.randbytes(rng.randint(1, 16)) + s.data[i:]
    return s.data[:i] + s.data[i + rng.randint(1, 16):]


def m_noise(rng, s: Sample, max_side):
    n = rng.randint(0, 2 * len(s.data))
    if rng.random() < 0.5:
        return rng.randbytes(n)
    return container.MAGIC + bytes([container.FORMAT_VERSION]) + rng.randbytes(n)


def m_header_then_noise(rng, s: Sample, max_side):
    """The real header (valid CRC) followed by noise: CRCs of the layers must catch it."""
    return s.data[:s.header_size] + rng.randbytes(rng.randint(0, 2 * (len(s.data) - s.header_size)))


# name -> (weight, mutator); m_header_fields_crc only runs uncapped (it can lie about both sides).
MUTATORS = {
    "bitflip": (6, m_bitflip),
    "bitflip_header": (3, m_bitflip_header),
    "byte_set": (3, m_byte_set),
    "truncate": (4, m_truncate),
    "truncate_near_boundary": (2, m_truncate_near_boundary),
    "header_field_raw": (3, m_header_field_raw),
    "header_field_crc": (5, m_header_field_crc),
    "header_fields_crc": (2, m_header_fields_crc),
    "size_lie_crc": (1, m_size_lie_crc),
    "layer_payload_crc": (8, m_layer_payload_crc),
    "layer_table_lie_crc": (2, m_layer_table_lie_crc),
    "layers_shuffle_crc": (3, m_layers_shuffle_crc),
    "checksums_crc": (2, m_checksums_crc),
    "model_crc": (1, m_model_crc),
    "junk_before": (2, m_junk_before),
    "junk_after": (2, m_junk_after),
    "insert_delete": (3, m_insert_delete),
    "noise": (2, m_noise),
    "header_then_noise": (2, m_header_then_noise),
}


def case_rng(seed: int, index: int) -> random.Random:
    """The generator of case ``index``: any single case can be replayed."""
    return random.Random(f"pgc-fuzz:{seed}:{index}")


def mutate(rng: random.Random, sample: Sample, max_side: int | None = None) -> tuple[str, bytes]:
    """One random mutation of ``sample.data``: ``(mutator name, bytes)``.

    ``max_side`` caps the *valid* image sides a header may be made to claim
    (every such lie costs the decoder its hyper path at that size); None
    allows the format's own limits.
    """
    names = [n for n in MUTATORS if max_side is None or n != "header_fields_crc"]
    name = rng.choices(names, weights=[MUTATORS[n][0] for n in names])[0]
    return name, MUTATORS[name][1](rng, sample, max_side)


def sweep(sample: Sample, truncate_stride: int = 1):
    """Deterministic cases first: truncation at every ``truncate_stride``-th offset
    (every header offset and every layer boundary +-1 always), empty input, junk."""
    offsets = set(range(0, len(sample.data), truncate_stride)) | set(range(sample.header_size + 1))
    for end in sample.layer_ends:
        offsets |= {end - 1, end, end + 1}
    for n in sorted(o for o in offsets if 0 <= o < len(sample.data)):
        yield f"truncate@{n}", sample.data[:n]
    yield "junk_after_1", sample.data + b"\0"
    yield "junk_before_1", b"\0" + sample.data
    yield "doubled", sample.data + sample.data


# -- running cases -------------------------------------------------------------------------------


class Hang(BaseException):
    """A case ran over its time limit (BaseException: no ``except Exception`` in the codec swallows it)."""


@dataclass
class Outcome:
    kind: str          # "decoded" | "error" | "crash" | "hang"
    detail: str        # error class and message, or the crash traceback's last line
    seconds: float


def _alarm(signum, frame):
    raise Hang()


def run_case(data: bytes, decode, time_limit: float = 60.0) -> Outcome:
    """Parse, describe and decode ``data``; classify what happened.

    ``decode(data)`` must return a PIL image of the header's size or raise a
    ``ProgcodecError``; ``container.parse`` and ``progcodec.info`` likewise.
    A SIGALRM stops a case that runs over ``time_limit`` (Python-level loops
    stop at once, a long native call when it returns); the elapsed time is
    checked afterwards too.
    """
    import progcodec
    from PIL import Image

    use_alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGALRM, _alarm) if use_alarm else None
    start = time.perf_counter()
    stage = "parse"
    try:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, time_limit)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ProgcodecWarning)
            try:
                pgc = container.parse(data)
            except ProgcodecError:
                pgc = None
            stage = "info"
            try:
                meta = progcodec.info(data)
            except ProgcodecError:
                meta = None
            if (pgc is None) != (meta is None):
                return Outcome("crash", "container.parse and progcodec.info disagree on validity",
                               time.perf_counter() - start)
            stage = "decode"
            image = decode(data)
        if not isinstance(image, Image.Image) or image.mode != "RGB" or pgc is None \
                or image.size != (pgc.header.width, pgc.header.height):
            detail = f"decode returned {image!r}"
            if pgc is not None:
                detail += f" for a {pgc.header.width}x{pgc.header.height} header"
            return Outcome("crash", detail, time.perf_counter() - start)
        outcome = Outcome("decoded", "", time.perf_counter() - start)
    except ProgcodecError as e:
        outcome = Outcome("error", f"{type(e).__name__}: {e}", time.perf_counter() - start)
    except Hang:
        return Outcome("hang", f"over {time_limit:g} s in {stage}", time.perf_counter() - start)
    except Exception as e:  # noqa: BLE001 -- exactly what the fuzzer hunts
        return Outcome("crash", f"{stage}: {type(e).__name__}: {e}", time.perf_counter() - start)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
    if outcome.seconds > time_limit:
        return Outcome("hang", f"{outcome.seconds:.1f} s (limit {time_limit:g} s) in {stage}", outcome.seconds)
    return outcome


@dataclass
class Report:
    cases: int = 0
    counts: Counter = field(default_factory=Counter)        # decoded / error / crash / hang
    errors: Counter = field(default_factory=Counter)        # clean errors by class
    by_mutator: Counter = field(default_factory=Counter)    # (mutator, kind)
    failures: list = field(default_factory=list)           # (case, mutator, Outcome) for crashes and hangs
    slowest: tuple = (0.0, "", "")                          # (seconds, case, mutator)
    seconds: float = 0.0

    def add(self, case: str, mutator: str, outcome: Outcome) -> None:
        self.cases += 1
        self.counts[outcome.kind] += 1
        self.by_mutator[(mutator, outcome.kind)] += 1
        if outcome.kind == "error":
            self.errors[outcome.detail.split(":")[0]] += 1
        if outcome.kind in ("crash", "hang"):
            self.failures.append((case, mutator, outcome))
        if outcome.seconds > self.slowest[0]:
            self.slowest = (outcome.seconds, case, mutator)

    @property
    def ok(self) -> bool:
        return not self.counts["crash"] and not self.counts["hang"]


def fuzz(sample: Sample, decode, cases: int, seed: int = 0, time_limit: float = 60.0,
         max_side: int | None = None, truncate_stride: int | None = 1, budget_s: float | None = None,
         progress=None) -> Report:
    """The sweep (when ``truncate_stride``) then ``cases`` random mutations; stops early past ``budget_s``."""
    report = Report()
    start = time.perf_counter()
    jobs = []
    if truncate_stride:
        jobs.append(((name, "sweep", data) for name, data in sweep(sample, truncate_stride)))

    def random_cases():
        for i in range(cases):
            name, data = mutate(case_rng(seed, i), sample, max_side)
            yield f"seed={seed} case={i}", name, data

    jobs.append(random_cases())
    for job in jobs:
        for case, mutator, data in job:
            report.add(case, mutator, run_case(data, decode, time_limit))
            if progress:
                progress(report)
            if budget_s is not None and time.perf_counter() - start > budget_s:
                report.seconds = time.perf_counter() - start
                return report
    report.seconds = time.perf_counter() - start
    return report


def peak_rss_mib() -> float:
    """Peak resident memory of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


# -- command line ------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="random mutations after the sweep (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="vam", help="model to encode the sample with (default vam)")
    parser.add_argument("--weights", default=None,
                        help="folder holding MODEL.safetensors (default: a seeded untrained model in a temp folder)")
    parser.add_argument("--size", default="96x64", help="WxH of the encoded sample image")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--max-side", type=int, default=None,
                        help="cap the valid image sides a mutated header may claim (default: the format's limit)")
    parser.add_argument("--truncate-stride", type=int, default=1, help="sweep truncation every N bytes (0: no sweep)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)

    import torch

    import progcodec
    from progcodec import api

    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        if args.weights:
            os.environ["PROGCODEC_WEIGHTS"] = str(Path(args.weights).resolve())
        else:
            save_seeded_weights(Path(tmp), args.seed, args.model)
            os.environ["PROGCODEC_WEIGHTS"] = tmp
        api.get_model.cache_clear()
        data = progcodec.encode(sample_image(width, height), model=args.model, device=args.device)
        sample = Sample.of(data)
        print(f"sample: {args.model} {width}x{height}, {len(data)} bytes, {len(sample.layers)} layers, "
              f"header {sample.header_size} B; weights {os.environ['PROGCODEC_WEIGHTS']}", flush=True)

        def decode(blob):  # by the model name in the header, as a user would
            return progcodec.decode(blob, device=args.device)

        last = [time.perf_counter()]

        def progress(report):
            if time.perf_counter() - last[0] > 30:
                last[0] = time.perf_counter()
                print(f"  {report.cases} cases: {dict(report.counts)}  peak RSS {peak_rss_mib():.0f} MiB", flush=True)

        report = fuzz(sample, decode, args.cases, args.seed, args.time_limit, args.max_side,
                      args.truncate_stride or None, progress=progress)

    c = report.counts
    print(f"cases        {report.cases}")
    print(f"decoded      {c['decoded']}")
    print(f"clean errors {c['error']}  ({', '.join(f'{k} {v}' for k, v in report.errors.most_common())})")
    print(f"crashes      {c['crash']}")
    print(f"hangs        {c['hang']}  (limit {args.time_limit:g} s per case)")
    print(f"slowest case {report.slowest[0]:.2f} s ({report.slowest[2]}, {report.slowest[1]})")
    print(f"wall time    {report.seconds:.0f} s")
    print(f"peak RSS     {peak_rss_mib():.0f} MiB")
    for case, mutator, outcome in report.failures[:20]:
        print(f"  {outcome.kind}: {mutator} [{case}] {outcome.detail}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
