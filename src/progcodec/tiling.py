"""Tiled coding: any image size in bounded memory, progressive over the whole image.

    image ─► tiles, each with a margin ─► g_a, h_a ─► the tile's y and z (those of the whole image)
    ẑ of the whole image ─► h_s per tile, with a margin ─► the tile's entropy parameters
    per tile: z, base, chunks coded on their own;  file layer k = [layer k of tile 1 | tile 2 | ...]
                                                   (layer-major, as JPEG 2000's LRCP progression)
    decode k layers: every tile's ẑ (layer 1) ─► per tile: parameters, its first k strings ─► ŷ_tile
                     ŷ of the whole image ─► g_s tile by tile, with a margin ─► picture

The margins cover the receptive fields, so a tile's y, z, hyper features and
pixels are those of the whole image's transforms: no seam comes from them, and
the rate stays the whole image's but near tile edges, where vam's residual
parameters see their neighbours' base only at its predicted mean and the REMs
see their own tile alone. Memory is bounded by the tile; what grows with
the image is ẑ and, on the decoder, ŷ (3 bytes a pixel in float32 for M=192),
and the picture itself. A tile's first string starts with its z's determinism
checksum and its base-layer string with the others (the header cannot hold them for
hundreds of tiles) and, for vam, its chunk ends: the residual elements of all tiles are ranked as one, so each layer
spends its bytes where the whole image needs them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from .container import (FORMAT_VERSION, grouped_symbols, pack_uvarints, pack_varint_strings, unpack_strings,
                        unpack_uvarints, unpack_varint_strings)
from .errors import ContainerError

DEFAULT_TILE = 1024      # pixels; an image whose padded sides both fit is coded whole, as before tiling
MIN_TILE, MAX_TILE = 256, 4096
# Context past a tile, by receptive field: g_a (4 stride-2 5x5 convolutions) reaches 30 px;
# h_a 7 latent elements; h_s 2 elements of z; g_s under 2 latent elements. The analysis
# margin holds both g_a's and h_a's, in whole elements of z (64 px) so z's grid stays aligned.
ANALYSIS_MARGIN = 192    # pixels: 12 latent elements, of which the outer 2 are g_a's
HYPER_MARGIN = 3         # elements of z
SYNTHESIS_MARGIN = 2     # latent elements
Z_STRIDE = 4             # latent elements per element of z


@dataclass(frozen=True)
class Grid:
    """Tiles of ``tile_h`` x ``tile_w`` pixels over the padded image, row by row; the last
    row and column take what is left (every side a multiple of the model's stride)."""
    padded_h: int
    padded_w: int
    tile_h: int
    tile_w: int

    @property
    def rows(self) -> int:
        return -(-self.padded_h // self.tile_h)

    @property
    def cols(self) -> int:
        return -(-self.padded_w // self.tile_w)

    def __len__(self) -> int:
        return self.rows * self.cols

    def __iter__(self):
        """(top, left, height, width) of each tile, in pixels of the padded image."""
        for r in range(self.rows):
            for c in range(self.cols):
                top, left = r * self.tile_h, c * self.tile_w
                yield top, left, min(self.tile_h, self.padded_h - top), min(self.tile_w, self.padded_w - left)


def tile_side(padded: int, tile: int, stride: int) -> int:
    """The tile side for one axis: at most ``tile``, tiles of equal size where the stride allows
    (1152 px with 1024-px tiles is 2 x 576, not 1024 + 128)."""
    count = -(-padded // tile)
    return -(-padded // count // stride) * stride if count > 1 else padded


def plan(padded_h: int, padded_w: int, tile: int | None, stride: int) -> Grid | None:
    """The grid for an image of this padded size, or None when it is coded whole."""
    if not tile:
        return None
    if not MIN_TILE <= tile <= MAX_TILE or tile % stride:
        raise ValueError(f"tile size must be a multiple of {stride} from {MIN_TILE} to {MAX_TILE}, not {tile}")
    if padded_h <= tile and padded_w <= tile:
        return None
    return Grid(padded_h, padded_w, tile_side(padded_h, tile, stride), tile_side(padded_w, tile, stride))


def _crop_padded(pixels: np.ndarray, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    """Rows top..bottom, columns left..right of the image padded by edge replication (as image.pad)."""
    height, width = pixels.shape[:2]
    rows = np.minimum(np.arange(top, bottom), height - 1)
    cols = np.minimum(np.arange(left, right), width - 1)
    return pixels[rows[:, None], cols[None, :]]


# Side information of each tile. This build writes version 5: varint string lengths (the last
# implied), bare checksums whose count the model knows, varint gaps between chunk ends (the last
# implied); on a 3 MP image of 4 tiles that is 0.4 % of the base layer's bytes and 0.25 % of the
# file's less than version 4's fixed widths (a u32 string table, a count byte before the
# checksums, u16 + u32 chunk ends), which the decoder still reads (``compact=False``).
def _unpack_tiles(data: bytes, count: int, compact: bool) -> list[bytes]:
    return unpack_varint_strings(data, count) if compact else unpack_strings(data, count)


def _pack_checksums(checksums) -> bytes:
    """What a tile's first string starts with (z's checksum), and its base-layer string (the rest)."""
    return struct.pack(f">{len(checksums)}I", *checksums)


def _unpack_checksums(data: bytes, count: int, compact: bool) -> tuple[list[int], bytes]:
    start = 0 if compact else 1
    size = start + 4 * count
    if len(data) < size or (not compact and data[0] != count):
        raise ContainerError("corrupt layer (a tile's checksums)")
    return list(struct.unpack_from(f">{count}I", data, start)), data[size:]


def _pack_ends(ends) -> bytes:
    """What a vam tile's base-layer string carries after its checksums: its chunk ends (not in
    the preview layer, which they would make larger, and which does not need them)."""
    return pack_uvarints(b - a for a, b in zip([0, *ends[:-2]], ends[:-1]))


def _unpack_ends(data: bytes, chunks: int, elements: int, compact: bool) -> tuple[list[int], bytes]:
    if compact:
        gaps, rest = unpack_uvarints(data, chunks - 1, "a tile's chunk ends")
        ends = [*np.cumsum(gaps, dtype=np.int64).tolist(), elements]
    else:
        size = 2 + 4 * chunks
        if len(data) < size or struct.unpack_from(">H", data)[0] != chunks:
            raise ContainerError("corrupt base layer (a tile's chunk ends)")
        ends, rest = list(struct.unpack_from(f">{chunks}I", data, 2)), data[size:]
    if any(b < a for a, b in zip(ends, ends[1:])) or ends[-1] != elements:
        raise ContainerError("corrupt base layer (a tile's chunk ends)")
    return ends, rest


def _window(start: int, size: int, margin: int, limit: int) -> tuple[int, int]:
    return max(start - margin, 0), min(start + size + margin, limit)


def encode(net, pixels: np.ndarray, grid: Grid, ladder=(), preview=False, rem=False, progress=None) -> list[bytes]:
    """The file's layers for an H x W x 3 uint8 image coded tile by tile: layer k holds
    every tile's layer k; each tile's first string starts with z's checksum, its base-layer
    string with the other checksums (and, for vam, its chunk ends).

    Passes over the tiles: the first makes each tile's y and z (from a window with margin)
    and codes z, so the next can give every tile hyper features made from its neighbours' ẑ
    too; for vam, one more ranks all tiles' residual elements as one (chunk k of the file
    is the whole image's chunk k), which each tile's base-layer string records as chunk ends.
    That pass runs each tile's parameter path once more (tile_context, the residual
    parameters), which is cheaper than holding every tile's float64 parameters at once."""
    import torch

    from .coding.ranking import shared_chunk_ends
    from .image import to_tensor_array

    device = next(net.parameters()).device
    stride = net.latent_stride
    ranked = hasattr(net, "residual_index_map")
    passes = 3 if ranked else 2
    latents, coded_z, z_hat = [], [], None
    for i, (top, left, h, w) in enumerate(grid):
        (t0, b1), (l0, r1) = (_window(top, h, ANALYSIS_MARGIN, grid.padded_h),
                              _window(left, w, ANALYSIS_MARGIN, grid.padded_w))
        with torch.no_grad():
            y = net.analysis(to_tensor_array(_crop_padded(pixels, t0, l0, b1, r1)).to(device))
            z = net.hyper_analysis(y)
        dt, dl = (top - t0) // stride, (left - l0) // stride
        latents.append(y[..., dt:dt + h // stride, dl:dl + w // stride].cpu())
        zs = stride * Z_STRIDE
        dt, dl = (top - t0) // zs, (left - l0) // zs
        coded = net.code_hyper_latent(z[..., dt:dt + h // zs, dl:dl + w // zs])
        coded_z.append(coded)
        if z_hat is None:
            z_hat = torch.empty((1, z.shape[1], grid.padded_h // zs, grid.padded_w // zs))
        z_hat[..., top // zs:(top + h) // zs, left // zs:(left + w) // zs] = coded[1]
        if progress:
            progress(i + 1, passes * len(grid))
    ends = [[] for _ in grid]
    if ranked:
        histograms = []
        for i, tile in enumerate(grid):
            indexes = net.residual_index_map(latents[i], coded_z[i], tile_context(net, z_hat, tile))
            histograms.append(torch.bincount(indexes.reshape(-1).long()).tolist())
            if progress:
                progress(len(grid) + i + 1, passes * len(grid))
        ends = shared_chunk_ends(histograms, net.schedule(ladder))
    per_tile = []
    for i, tile in enumerate(grid):
        context = {**tile_context(net, z_hat, tile), "ends": ends[i] or None}
        out = net.compress_latents(latents[i].to(device), ladder, preview, rem, coded_z=coded_z[i], context=context)
        latents[i] = None
        layers, checks = list(out["layers"]), out["checksums"]
        base = int(preview)
        layers[base] = _pack_checksums(checks[1:]) + (_pack_ends(ends[i]) if ranked else b"") + layers[base]
        layers[0] = _pack_checksums(checks[:1]) + layers[0]
        per_tile.append(layers)
        if progress:
            progress((passes - 1) * len(grid) + i + 1, passes * len(grid))
    return [pack_varint_strings([layers[k] for layers in per_tile]) for k in range(len(per_tile[0]))]


RESIDUAL_MARGIN = 2      # latent elements: vam's residual parameters (two 3x3 convolutions)


def tile_context(net, z_hat, tile) -> dict:
    """What a tile's coder needs from its neighbours: ``hyper``, its hyper features (float64,
    at the latent's resolution; h_s over the tile's ẑ and HYPER_MARGIN elements of its
    neighbours'), and ``window``, for vam's residual parameters: the base latent's predicted
    mean and the hyper features over the tile and RESIDUAL_MARGIN elements, and the tile's
    offset in them (the tile's own ŷ_base goes in their middle)."""
    top, left, h, w = tile
    stride = net.latent_stride
    zs = stride * Z_STRIDE
    (a0, a1), (b0, b1) = (_window(top // zs, h // zs, HYPER_MARGIN, z_hat.shape[-2]),
                          _window(left // zs, w // zs, HYPER_MARGIN, z_hat.shape[-1]))
    hyper = net.hyper_parameters(z_hat[..., a0:a1, b0:b1])
    dt, dl = (top // zs - a0) * Z_STRIDE, (left // zs - b0) * Z_STRIDE
    lh, lw = h // stride, w // stride
    (c0, c1), (d0, d1) = _window(dt, lh, RESIDUAL_MARGIN, hyper.shape[-2]), _window(dl, lw, RESIDUAL_MARGIN,
                                                                                  hyper.shape[-1])
    return {"hyper": hyper[..., dt:dt + lh, dl:dl + lw].contiguous(),
            "window": net.residual_window(hyper[..., c0:c1, d0:d1], (dt - c0, dl - d0))}


class TiledDecoder:
    """Decoder state of a tiled file, with the model decoders' ``add``/``reconstruct``.

    Layer 1 brings every tile's z: all are decoded (and checked) at once, so each
    tile's parameters can see its neighbours'. ``keep_state`` (streaming decode):
    every tile keeps its decoder, so each new layer is entropy-decoded once. Without
    it (one decode of k layers), a tile's decoder lives only while its latent is
    made, so memory is bounded by a tile. ``reconstruct`` returns an H x W x 3 uint8 array.
    """

    def __init__(self, net, grid: Grid, height: int, width: int, keep_state: bool = False,
                 progress=None, version: int = FORMAT_VERSION, **layout):
        self.net, self.grid, self.height, self.width = net, grid, height, width
        self.compact = version >= 5     # side information in the file's version (see _unpack_tiles)
        self.grouped = grouped_symbols(version)      # how the tiles' symbols are coded
        self.layout, self.keep_state, self.progress = layout, keep_state, progress
        self.strings: list[list[bytes]] = [[] for _ in range(len(grid))]
        self.checksums: list[list[int]] = []
        self.ends: list[list[int]] = [[] for _ in range(len(grid))]
        # vam's residual chunks, each tile's ends recorded in its base-layer string (see encode)
        self.chunks = len(net.schedule(layout.get("ladder", ()))) if hasattr(net, "residual_index_map") else 0
        self.base_layer = int(layout.get("preview", False))
        self.layers = 0
        self.decoders: list | None = None
        self.z_hat = None
        self.checksum_count = net.checksum_count(layout.get("rem", False))

    def _tile_decoder(self, i: int, tile):
        """Tile i's decoder: checksums not read yet (a preview layer alone) are None, unchecked,
        and nothing past the preview is read without them."""
        stride = self.net.latent_stride
        context = {**tile_context(self.net, self.z_hat, tile), "ends": self.ends[i] or None}
        checksums = self.checksums[i] + [None] * (self.checksum_count - len(self.checksums[i]))
        return self.net.decoder((tile[2] // stride, tile[3] // stride), checksums, context=context,
                                grouped=self.grouped, **self.layout)

    def _decode_z(self, first_strings: list[bytes]) -> None:
        import torch

        zs = self.net.latent_stride * Z_STRIDE
        for i, (top, left, h, w) in enumerate(self.grid):
            z_string = self.net.first_layer_z(first_strings[i], preview=self.layout.get("preview", False),
                                              base_chunk=self.layout.get("base_chunk", False))
            z = self.net.decode_hyper_latent(z_string, (h // self.net.latent_stride, w // self.net.latent_stride),
                                             self.checksums[i][0])
            if self.z_hat is None:
                self.z_hat = torch.empty((1, z.shape[1], self.grid.padded_h // zs, self.grid.padded_w // zs))
            self.z_hat[..., top // zs:(top + h) // zs, left // zs:(left + w) // zs] = z

    def add(self, layer: bytes) -> None:
        tiles = _unpack_tiles(layer, len(self.grid), self.compact)
        if self.layers == 0:
            for i, data in enumerate(tiles):
                checks, tiles[i] = _unpack_checksums(data, 1, self.compact)
                self.checksums.append(checks)
        if self.layers == self.base_layer:
            stride = self.net.latent_stride
            for i, (data, (_, _, h, w)) in enumerate(zip(tiles, self.grid)):
                checks, tiles[i] = _unpack_checksums(data, self.checksum_count - 1, self.compact)
                self.checksums[i] += checks
                if self.chunks:
                    self.ends[i], tiles[i] = _unpack_ends(tiles[i], self.chunks,
                                                          self.net.M * (h // stride) * (w // stride), self.compact)
        if self.layers == 0:
            self._decode_z(tiles)
        self.layers += 1
        for own, data in zip(self.strings, tiles):
            own.append(data)
        # Streaming: each tile keeps its decoder from the base layer on (its checksums complete);
        # a preview layer alone is decoded afresh, which costs no entropy decoding.
        if self.keep_state and self.layers > self.base_layer:
            if self.decoders is None:
                self.decoders = [self._tile_decoder(i, tile) for i, tile in enumerate(self.grid)]
                for decoder, own in zip(self.decoders, self.strings):
                    for data in own:
                        decoder.add(data)
            else:
                for decoder, data in zip(self.decoders, tiles):
                    decoder.add(data)

    def latent(self):
        """The whole image's decoded latent (float32), assembled tile by tile."""
        import torch

        stride = self.net.latent_stride
        latent = None
        for i, tile in enumerate(self.grid):
            top, left, h, w = tile
            if self.decoders is not None:
                y = self.decoders[i].latent()
            else:
                decoder = self._tile_decoder(i, tile)
                for data in self.strings[i]:
                    decoder.add(data)
                y = decoder.latent()
                del decoder
            if latent is None:
                latent = torch.empty((1, y.shape[1], self.grid.padded_h // stride, self.grid.padded_w // stride))
            latent[..., top // stride:(top + h) // stride, left // stride:(left + w) // stride] = y
            if self.progress:
                self.progress(i + 1, 2 * len(self.grid))
        return latent

    def reconstruct(self) -> np.ndarray:
        latent = self.latent()
        return synthesize(self.net, latent, self.grid, self.height, self.width,
                          lambda i, n: self.progress and self.progress(n + i, 2 * n))


def synthesize(net, latent, grid: Grid, height: int, width: int, progress=None) -> np.ndarray:
    """g_s of the whole latent, tile by tile, each with SYNTHESIS_MARGIN latent elements of
    context, into an H x W x 3 uint8 picture (the padding cropped away)."""
    import torch

    stride, margin = net.latent_stride, SYNTHESIS_MARGIN
    lh, lw = latent.shape[-2:]
    out = np.empty((height, width, 3), dtype=np.uint8)
    for i, (top, left, h, w) in enumerate(grid):
        if top >= height or left >= width:
            continue   # a tile of padding alone (cannot happen with the grids plan() makes)
        a, b = top // stride, left // stride
        a0, b0 = max(a - margin, 0), max(b - margin, 0)
        a1, b1 = min(a + h // stride + margin, lh), min(b + w // stride + margin, lw)
        with torch.no_grad():
            x = net.synthesize(latent[..., a0:a1, b0:b1])
        dt, dl = (a - a0) * stride, (b - b0) * stride
        bottom, right = min(top + h, height), min(left + w, width)
        x = x[0, :, dt:dt + bottom - top, dl:dl + right - left]
        out[top:bottom, left:right] = (x * 255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        if progress:
            progress(i + 1, len(grid))
    return out

