"""Tiled coding: large images in bounded memory, progressive over the whole image."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from PIL import Image

import progcodec
from progcodec import container, tiling
from progcodec.errors import ContainerError, DeterminismError, ProgcodecError
from progcodec.image import pad, padded_size, to_tensor


@pytest.fixture(scope="module")
def wide():
    """A 400x300 photo: with 256-px tiles, a 2x2 grid of 256/192 by 192/128 pixels."""
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((400, 300), Image.LANCZOS)


@pytest.fixture(scope="module")
def tiled(wide, net):
    return progcodec.encode(wide, tile=256)


def test_the_grid_covers_the_padded_image_in_even_tiles():
    grid = tiling.plan(*padded_size(300, 400, 64), 256, 64)
    assert (grid.tile_h, grid.tile_w, grid.rows, grid.cols) == (192, 256, 2, 2)
    assert list(grid) == [(0, 0, 192, 256), (0, 256, 192, 192), (192, 0, 128, 256), (192, 256, 128, 192)]
    assert tiling.plan(1152, 64, 1024, 64).tile_h == 576           # two halves, not 1024 + 128
    assert tiling.plan(1024, 1024, 1024, 64) is None                # one tile: coded whole
    assert tiling.plan(4096, 4096, 0, 64) is None
    for bad in (100, 200, 8192):
        with pytest.raises(ValueError, match="multiple of 64"):
            tiling.plan(4096, 4096, bad, 64)


def test_tiled_analysis_and_synthesis_are_the_whole_image_transforms(wide, net):
    """The margins cover the receptive fields: each tile's latent and hyper features are
    crops of the whole image's, and the picture synthesised tile by tile is the whole synthesis."""
    grid = tiling.plan(*padded_size(300, 400, 64), 256, 64)
    x = pad(to_tensor(wide), 64)
    whole = net.analysis(x)
    pixels = np.asarray(wide)
    for top, left, h, w in grid:
        m = tiling.ANALYSIS_MARGIN
        t0, l0 = max(top - m, 0), max(left - m, 0)
        crop = tiling._crop_padded(pixels, t0, l0, min(top + h + m, grid.padded_h), min(left + w + m, grid.padded_w))
        y = net.analysis(to_tensor(Image.fromarray(crop)))
        y = y[..., (top - t0) // 16:(top - t0 + h) // 16, (left - l0) // 16:(left - l0 + w) // 16]
        assert torch.allclose(y, whole[..., top // 16:(top + h) // 16, left // 16:(left + w) // 16], atol=1e-5)
    z_hat = net.code_hyper_latent(net.hyper_analysis(whole))[1]     # and the hyper path: h_s with a margin
    hyper = net.hyper_parameters(z_hat)
    for top, left, h, w in grid:
        context = tiling.tile_context(net, z_hat, (top, left, h, w))
        assert torch.equal(context["hyper"], hyper[..., top // 16:(top + h) // 16, left // 16:(left + w) // 16])
    latent = whole[:, net.M:]
    tiled = tiling.synthesize(net, latent, grid, 300, 400)
    reference = (net.synthesize(latent)[0, :, :300, :400] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.abs(tiled.astype(int) - reference.astype(int)).max() <= 1


def test_every_layer_prefix_decodes_to_the_full_image(tiled, wide):
    header = container.parse(tiled).header
    assert header.version == container.FORMAT_VERSION and header.tile == (192, 256) and header.checksums == ()
    meta = progcodec.info(tiled)
    assert meta["tiles"] == [2, 2, 192, 256] and meta["format_version"] == container.FORMAT_VERSION
    streamed = [np.asarray(image) for _, image in progcodec.iter_decode(tiled)]
    assert len(streamed) == len(meta["layers"]) == 16
    for k, pixels in enumerate(streamed, start=1):
        assert pixels.shape == (300, 400, 3)
        cut = container.prefix(tiled, k)
        assert np.array_equal(np.asarray(progcodec.decode(cut)), pixels)       # a cut file: the same picture
    assert len({p.tobytes() for p in streamed}) == len(streamed)               # every layer changes it


@pytest.mark.parametrize("name", ["vam", "progdtd"])
def test_with_the_shipped_weights_every_layer_sharpens_the_whole_picture(wide, name, monkeypatch):
    from progcodec.metrics import psnr_rgb
    from progcodec.weights import load_model

    monkeypatch.delenv("PROGCODEC_WEIGHTS", raising=False)
    model = load_model(name)
    data = progcodec.encode(wide, model=model, tile=256, ladder=6)
    assert progcodec.info(data)["tiles"] == [2, 2, 192, 256]
    psnrs = [psnr_rgb(wide, progcodec.decode(data, layers=k, model=model)) for k in range(1, 7)]
    assert all(b > a for a, b in zip(psnrs, psnrs[1:])) and psnrs[-1] > 25, psnrs
    whole = progcodec.encode(wide, model=model, tile=0, ladder=6)      # the same image in one piece
    assert abs(psnr_rgb(wide, progcodec.decode(whole, model=model)) - psnrs[-1]) < 0.5


def test_each_layer_of_a_tiled_vam_file_is_the_whole_image_s_chunk(tiled, net):
    """All tiles' residual elements are ranked as one: the tiles' chunk ends, recorded in
    their base-layer strings, add up to the whole image's chunk ends."""
    from progcodec.coding.ranking import chunk_bounds

    header = container.parse(tiled).header
    strings = container.unpack_varint_strings(container.parse(tiled).layers[1], 4)     # the base layer
    chunks = len(net.schedule(header.ladder))
    ends = []
    for data, (_, _, h, w) in zip(strings, tiling.Grid(320, 448, *header.tile)):
        rest = data[4 * (net.checksum_count(False) - 1):]     # after the tile's base and residual checksums
        gaps, _ = container.unpack_uvarints(rest, chunks - 1)  # varint gaps; the last end is the tile's size
        ends.append([*np.cumsum(gaps).tolist(), net.M * (h // 16) * (w // 16)])
    total = net.M * (320 // 16) * (448 // 16)
    assert [sum(e) for e in zip(*ends)] == [b for _, b in chunk_bounds(total, net.schedule(header.ladder))]
    assert len({tuple(e) for e in ends}) == 4                  # not one share of every tile


def test_a_stream_fed_byte_by_byte_matches(tiled):
    ends = [layer["cumulative_bytes"] for layer in progcodec.info(tiled)["layers"]]
    data = tiled[:ends[2] + 7]
    with pytest.warns(progcodec.ProgcodecWarning, match="cut inside layer 4"):
        frames = list(progcodec.iter_decode(data[i:i + 1] for i in range(len(data))))
    assert [k for k, _ in frames] == [1, 2, 3]
    assert np.array_equal(np.asarray(frames[-1][1]), np.asarray(progcodec.decode(tiled, layers=3)))


@pytest.mark.parametrize("options", [{"model": "progdtd", "ladder": 4}, {"preview": False, "ladder": 5}])
def test_both_models_and_layouts_tile(wide, options):
    data = progcodec.encode(wide, tile=256, **options)
    meta = progcodec.info(data)
    assert meta["tiles"] == [2, 2, 192, 256] and len(meta["layers"]) == options["ladder"]
    streamed = [np.asarray(image) for _, image in progcodec.iter_decode(data)]
    for k, pixels in enumerate(streamed, start=1):
        assert pixels.shape == (300, 400, 3)
        assert np.array_equal(np.asarray(progcodec.decode(data, layers=k)), pixels)


def test_small_images_code_exactly_as_before(astronaut):
    assert progcodec.encode(astronaut) == progcodec.encode(astronaut, tile=0)
    assert container.parse(progcodec.encode(astronaut)).header.tile is None


def test_rate_targets_and_bad_tiles_are_clear_errors(wide, cli, clean_error, tmp_path):
    with pytest.raises(ProgcodecError, match="rate targets code the image whole"):
        progcodec.encode(wide, tile=256, bpp=[0.5])
    with pytest.raises(ProgcodecError, match="multiple of 64"):
        progcodec.encode(wide, tile=300)
    path = tmp_path / "wide.png"
    Image.new("RGB", (400, 300)).save(path)
    clean_error(cli("encode", path, "--tile", "100"), match="multiple of 64")


def test_a_tile_decoded_differently_is_a_determinism_error(tiled, monkeypatch):
    """Each tile's checksums travel in its first string and are verified per tile."""
    strings = container.unpack_varint_strings(container.parse(tiled).layers[0], 4)
    (check,) = struct.unpack(">I", strings[2][:4])                      # the head: z's checksum
    strings[2] = struct.pack(">I", check ^ 1) + strings[2][4:]
    with pytest.raises(DeterminismError):
        progcodec.decode(_replace_layer(tiled, 0, container.pack_varint_strings(strings)), layers=1)


def _replace_layer(data: bytes, index: int, layer: bytes) -> bytes:
    """The file with layer ``index`` replaced, its length and CRC rewritten."""
    pgc = container.parse(data)
    h = pgc.header
    layers = list(pgc.layers)
    layers[index] = layer
    return container.build(h.model, h.weights_digest, h.width, h.height, layers, h.checksums, preview=h.preview,
                           ladder=h.ladder, rem=h.rem, tile=h.tile)


def test_a_layer_with_the_wrong_tile_count_is_refused(tiled, net):
    strings = container.unpack_varint_strings(container.parse(tiled).layers[0], 4)
    with pytest.raises(ContainerError):
        progcodec.decode(_replace_layer(tiled, 0, container.pack_varint_strings(strings[:3])), layers=1)
    with pytest.raises(ContainerError, match="checksums"):
        progcodec.decode(_replace_layer(tiled, 0, container.pack_varint_strings([b""] * 4)), layers=1)
    base = container.unpack_varint_strings(container.parse(tiled).layers[1], 4)   # a chunk end past the tile
    head = 4 * (net.checksum_count(False) - 1)
    base[1] = base[1][:head] + container.pack_uvarints([1 << 30]) + base[1][head:]
    with pytest.raises(ContainerError, match="chunk ends"):
        progcodec.decode(_replace_layer(tiled, 1, container.pack_varint_strings(base)), layers=2)
    with pytest.raises(ContainerError, match="string table"):                   # a table cut inside a varint
        progcodec.decode(_replace_layer(tiled, 0, b"\xff\xff"), layers=1)


def test_hostile_tiled_headers_are_refused_before_any_work(tiled):
    h = container.parse(tiled).header
    with pytest.raises(ContainerError, match="implausible"):     # beyond the tiled limit
        container.build(h.model, h.weights_digest, 32768, 32768, [b"x"], tile=(4096, 4096))
    with pytest.raises(ContainerError, match="implausible"):     # more tiles than any image has
        container.build(h.model, h.weights_digest, 16384, 16384, [b"x"], tile=(64, 64))
    with pytest.raises(ContainerError, match="implausible"):     # untiled: the old limit stands
        container.build(h.model, h.weights_digest, 8192, 4096, [b"x"])
    # a well-formed header claiming 268 MP whose first layer holds nothing for its 16 tiles
    huge = container.build(h.model, h.weights_digest, 16384, 16384, [b"\0" * 16], tile=(4096, 4096))
    with pytest.raises(ContainerError):
        progcodec.decode(huge)
    # a tile size the model cannot have
    odd = container.build(h.model, h.weights_digest, 400, 300, [b"\0" * 16], tile=(100, 100))
    with pytest.raises(ProgcodecError, match="do not fit the model"):
        progcodec.decode(odd)
