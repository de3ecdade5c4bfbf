"""The Python API end to end on a seeded untrained model: determinism, progressive prefixes, guards."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import progcodec
from progcodec import api, container
from progcodec.errors import ContainerError, DeterminismError, ProgcodecError, ProgcodecWarning, WeightsMismatchError
from progcodec.weights import load_model


def pixels(im: Image.Image) -> np.ndarray:
    assert isinstance(im, Image.Image) and im.mode == "RGB"
    return np.asarray(im)


@contextlib.contextmanager
def no_warnings():
    """A ProgcodecWarning in this context fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProgcodecWarning)
        yield


MODEL_NAMES = ("vam", "progdtd")


@pytest.fixture(scope="module", params=MODEL_NAMES)
def coded(request, astronaut, weights_dir):
    """(model name, astronaut encoded by it, pixels decoded from 1..K layers)."""
    name = request.param
    data = progcodec.encode(astronaut, model=name)
    count = len(progcodec.info(data)["layers"])
    return name, data, [pixels(progcodec.decode(data, layers=L)) for L in range(1, count + 1)]


def _ends(data: bytes) -> list[int]:
    return [layer["cumulative_bytes"] for layer in progcodec.info(data)["layers"]]


# -- determinism -----------------------------------------------------------------------------------------


def test_encode_is_deterministic(astronaut, encoded, coded):
    assert progcodec.encode(astronaut) == encoded
    name, data, _ = coded
    assert progcodec.encode(astronaut, model=name) == data
    assert container.parse(data).header.model == name


def test_encode_is_the_same_from_any_input_kind(astronaut, encoded, tmp_path):
    path = tmp_path / "astronaut.png"
    astronaut.save(path)
    assert progcodec.encode(str(path)) == encoded
    assert progcodec.encode(path.read_bytes()) == encoded
    assert progcodec.encode(np.asarray(astronaut)) == encoded


def test_a_freshly_loaded_model_encodes_and_decodes_the_same(astronaut, encoded, by_layers, fresh_net):
    assert progcodec.encode(astronaut, model=fresh_net) == encoded
    assert np.array_equal(pixels(progcodec.decode(encoded, model=fresh_net)), by_layers[-1])


def test_decode_is_deterministic(coded):
    _, data, by_layers = coded
    for layers in (1, len(by_layers)):
        assert np.array_equal(pixels(progcodec.decode(data, layers=layers)), by_layers[layers - 1])


def test_the_fixture_codec_is_not_trivial(coded):
    """Layers carry bits and change pixels, so the prefix tests below compare something."""
    name, data, by_layers = coded
    net = api.get_model(name)
    assert len(by_layers) == (16 if name == "vam" else len(net.channel_groups))    # the default ladders
    lengths = [layer["bytes"] for layer in progcodec.info(data)["layers"]]
    assert min(lengths) > 0
    assert not np.array_equal(by_layers[0], by_layers[-1])
    assert sum(not np.array_equal(a, b) for a, b in zip(by_layers, by_layers[1:])) >= 5


# -- progressive prefixes ------------------------------------------------------------------------------


def test_every_layer_boundary_prefix_decodes_like_layers_l(coded):
    """progcodec.truncate(data, L) and the raw data[:cumulative_bytes] decode like decode(data, layers=L)."""
    _, data, by_layers = coded
    for L, end in enumerate(_ends(data), start=1):
        truncated = progcodec.truncate(data, L)
        assert truncated == data[:end]
        with no_warnings():
            assert np.array_equal(pixels(progcodec.decode(truncated)), by_layers[L - 1]), L
        assert len(progcodec.info(truncated)["layers"]) == L


def test_layers_argument_on_a_truncated_file(encoded, by_layers):
    data = progcodec.truncate(encoded, 4)
    assert np.array_equal(pixels(progcodec.decode(data, layers=2)), by_layers[1])
    with pytest.raises(ProgcodecError, match="between 1 and 4"):
        progcodec.decode(data, layers=5)


def test_truncate_of_a_truncated_file(encoded):
    assert progcodec.truncate(progcodec.truncate(encoded, 6), 3) == progcodec.truncate(encoded, 3)
    with pytest.raises(ContainerError):
        progcodec.truncate(progcodec.truncate(encoded, 3), 4)


@pytest.mark.parametrize("layers", [0, -1, 17])
def test_truncate_rejects_impossible_layer_counts(encoded, layers):
    with pytest.raises(ProgcodecError):
        progcodec.truncate(encoded, layers)


def test_mid_layer_cut_decodes_the_complete_layers_with_a_warning(coded):
    _, data, by_layers = coded
    layer_ends = _ends(data)
    for L in (2, 3, 7, 10):                          # the cut falls inside layer L
        for cut in (layer_ends[L - 2] + 1, layer_ends[L - 1] - 1):
            with pytest.warns(ProgcodecWarning, match=f"cut inside layer {L}"):
                image = progcodec.decode(data[:cut])
            assert np.array_equal(pixels(image), by_layers[L - 2]), (L, cut)


def test_cut_inside_the_first_layer_is_an_error(encoded, layer_ends):
    header_size = container.parse(encoded).header_size
    for cut in (0, 10, header_size - 1, header_size, header_size + 1, layer_ends[0] - 1):
        with pytest.raises(ContainerError):
            progcodec.decode(encoded[:cut])


def test_corrupt_later_layer_decodes_the_layers_before_it(encoded, by_layers, layer_ends):
    data = bytearray(encoded)
    data[layer_ends[4] + 1] ^= 0x04                  # inside layer 6
    with pytest.warns(ProgcodecWarning, match="layer 6 is corrupt"):
        image = progcodec.decode(bytes(data))
    assert np.array_equal(pixels(image), by_layers[4])


def test_corrupt_first_layer_is_an_error(encoded):
    data = bytearray(encoded)
    data[container.parse(encoded).header_size + 5] ^= 0x01
    with pytest.raises(ContainerError):
        progcodec.decode(bytes(data))


def test_junk_after_decodes_with_a_warning(encoded, by_layers):
    with pytest.warns(ProgcodecWarning, match="trailing"):
        image = progcodec.decode(encoded + b"junk")
    assert np.array_equal(pixels(image), by_layers[-1])


def test_junk_before_is_an_error(encoded):
    with pytest.raises(ContainerError):
        progcodec.decode(b"\0" + encoded)


@pytest.mark.parametrize("layers", [0, -2, 17])
def test_decode_rejects_impossible_layer_counts(encoded, layers):
    with pytest.raises(ProgcodecError, match="between 1 and 16"):
        progcodec.decode(encoded, layers=layers)


# -- sizes and layer counts ------------------------------------------------------------------------------


def _gradient(width: int, height: int) -> Image.Image:
    yy, xx = np.mgrid[0:height, 0:width]
    arr = np.stack([(xx * 7) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256], -1).astype(np.uint8)
    return Image.fromarray(arr)


@pytest.mark.parametrize("model", MODEL_NAMES)
@pytest.mark.parametrize("width, height", [(1, 1), (300, 17), (17, 300), (1, 200), (200, 1), (64, 64), (65, 63)])
def test_odd_sizes_decode_to_the_same_size(width, height, model):
    data = progcodec.encode(_gradient(width, height), model=model)
    meta = progcodec.info(data)
    assert (meta["width"], meta["height"]) == (width, height)
    for layers in (1, None):
        assert progcodec.decode(data, layers=layers).size == (width, height)


def test_portrait_photo(chelsea_portrait):
    data = progcodec.encode(chelsea_portrait)
    image = progcodec.decode(data)
    assert image.size == (64, 96)
    assert progcodec.decode(progcodec.truncate(data, 2)).size == (64, 96)


@pytest.mark.parametrize("k", [1, 2, 5, 10])
def test_encode_with_k_layers_writes_k_layers(astronaut, coded, k):
    name, _, by_layers = coded
    data = progcodec.encode(astronaut, model=name, layers=k)
    pgc = container.parse(data)
    assert pgc.header.num_layers == len(pgc.layers) == k
    assert len(progcodec.info(data)["layers"]) == k
    assert np.array_equal(pixels(progcodec.decode(data)), by_layers[k - 1])


@pytest.mark.parametrize("k", [0, -1, 17])
def test_encode_rejects_impossible_layer_counts(astronaut, k):
    with pytest.raises(ProgcodecError, match="between 1 and 16"):
        progcodec.encode(astronaut, layers=k)


def test_another_image_gives_another_file(coffee, encoded):
    data = progcodec.encode(coffee)
    assert data != encoded
    assert progcodec.decode(data).size == (96, 64)


def test_the_api_never_prints(astronaut, capfd):
    data = progcodec.encode(astronaut, layers=2)
    progcodec.decode(data)
    progcodec.info(data)
    progcodec.truncate(data, 1)
    with pytest.raises(ProgcodecError):
        progcodec.decode(b"junk")
    with pytest.warns(ProgcodecWarning):
        progcodec.decode(data + b"junk")
    assert capfd.readouterr() == ("", "")


# -- info ------------------------------------------------------------------------------------------------------


def test_info(encoded, net, layer_ends):
    meta = progcodec.info(encoded)
    assert meta["model"] == "vam" and (meta["width"], meta["height"]) == (96, 64)
    assert meta["weights"] == net.weights_digest.hex()
    assert meta["declared_layers"] == 16 and meta["format_version"] == container.FORMAT_VERSION
    assert meta["preview"] is True and len(meta["ladder"]) == 14
    assert [layer["index"] for layer in meta["layers"]] == list(range(1, 17))
    assert layer_ends[-1] == len(encoded)
    header_size = container.parse(encoded).header_size
    assert layer_ends[0] == header_size + meta["layers"][0]["bytes"]
    for layer, prev in zip(meta["layers"][1:], layer_ends):
        assert layer["cumulative_bytes"] == prev + layer["bytes"]
    for layer in meta["layers"]:
        assert layer["bpp"] == pytest.approx(layer["cumulative_bytes"] * 8 / (96 * 64))


def test_info_of_a_cut_file_lists_complete_layers(encoded, layer_ends):
    with pytest.warns(ProgcodecWarning):
        meta = progcodec.info(encoded[:layer_ends[3] + 2])
    assert len(meta["layers"]) == 4 and meta["declared_layers"] == 16


# -- weights and model guards -----------------------------------------------------------------------------


def test_other_weights_are_refused_naming_both_digests(encoded, net, other_weights_path):
    other = load_model(str(other_weights_path))
    assert other.weights_digest != net.weights_digest
    for model in (other, str(other_weights_path)):
        with pytest.raises(WeightsMismatchError) as info:
            progcodec.decode(encoded, model=model)
        message = str(info.value)
        assert net.weights_digest.hex() in message and other.weights_digest.hex() in message


def test_a_file_from_other_weights_is_refused_by_the_default_model(astronaut, net, other_weights_path):
    data = progcodec.encode(astronaut, model=str(other_weights_path))
    assert container.parse(data).header.weights_digest != net.weights_digest
    with pytest.raises(WeightsMismatchError):
        progcodec.decode(data)


def test_a_file_naming_an_unknown_model_is_refused(encoded, fuzzlib):
    data = fuzzlib.Sample.of(encoded).rebuild(model="nosuch")
    with pytest.raises(ProgcodecError, match="nosuch"):
        progcodec.decode(data)


def test_a_file_of_one_model_is_refused_by_the_other(encoded):
    with pytest.raises(WeightsMismatchError, match="vam"):
        progcodec.decode(encoded, model="progdtd")


def test_unknown_model_name(astronaut, encoded):
    with pytest.raises(ProgcodecError, match="unknown model"):
        progcodec.encode(astronaut, model="nosuch")
    with pytest.raises(ProgcodecError, match="unknown model"):
        progcodec.decode(encoded, model="nosuch")


def test_missing_weights_file(astronaut, tmp_path):
    with pytest.raises(ProgcodecError, match="no weights"):
        progcodec.encode(astronaut, model=str(tmp_path / "missing.safetensors"))


def test_damaged_weights_are_refused(astronaut, weights_path, tmp_path):
    damaged = tmp_path / "vam.safetensors"
    blob = bytearray(weights_path.read_bytes())
    blob[-1] ^= 0xFF
    damaged.write_bytes(bytes(blob))
    (tmp_path / "vam.json").write_bytes(weights_path.with_suffix(".json").read_bytes())
    with pytest.raises(ProgcodecError, match="sha256"):
        progcodec.encode(astronaut, model=str(damaged))


def test_checksum_count_that_does_not_fit_the_model(encoded, fuzzlib):
    data = fuzzlib.Sample.of(encoded).rebuild(checksums=(1,))
    with pytest.raises(ProgcodecError, match="checksum count"):
        progcodec.decode(data)


@pytest.mark.parametrize("index, stage", [(0, "hyper-latent"), (1, "base"), (2, "residual")])
def test_wrong_checksum_in_the_header_is_a_determinism_error(encoded, fuzzlib, index, stage):
    sample = fuzzlib.Sample.of(encoded)
    checks = list(sample.header.checksums)
    checks[index] ^= 1
    with pytest.raises(DeterminismError, match=stage):
        progcodec.decode(sample.rebuild(checksums=checks))


def test_residual_checksum_is_checked_when_the_first_chunk_arrives(encoded, by_layers, fuzzlib):
    """The preview and base pictures code no residual symbol: a residual index map that
    disagrees with the header still lets them decode; the first residual layer stops."""
    sample = fuzzlib.Sample.of(encoded)
    checks = list(sample.header.checksums)
    checks[2] ^= 1
    damaged = sample.rebuild(checksums=checks)
    for layers in (1, 2):
        assert np.array_equal(pixels(progcodec.decode(damaged, layers=layers)), by_layers[layers - 1])
    with pytest.raises(DeterminismError, match="residual"):
        progcodec.decode(damaged, layers=3)


def test_float32_mean_fill_matches_the_float64_path(net, astronaut):
    """The preview and base pictures take the residual's mean from the float32 networks;
    the exact float64 path would give the same latent to float32 round-off."""
    from progcodec.image import pad, to_tensor

    x = pad(to_tensor(astronaut), 64)
    latents = net.analysis(x)
    z_hat = net.code_hyper_latent(net.hyper_analysis(latents))[1]
    exact = net.hyper_parameters(z_hat)
    fast = net.approximate_hyper_parameters(z_hat)
    assert torch.allclose(fast, exact, atol=1e-4)
    base_mean = exact.chunk(2, 1)[1]
    means, _ = net.residual._means_and_scales(base_mean, exact)
    fill = net.residual.mean_fill_fast(base_mean, exact)
    assert fill.dtype == torch.float64
    assert torch.allclose(fill, base_mean + means, atol=1e-4)
    assert not torch.equal(fill, base_mean)  # the residual's mean is there


@pytest.mark.parametrize("model", ["vam", "progdtd"])
def test_the_encoders_z_hat_is_the_decoders(model):
    """code_hyper_latent gives the z_hat the decoder will decode, without decoding the string:
    the same symbols, dequantised the same way; out-of-range values included (rANS bypass)."""
    net = api.get_model(model)
    torch.manual_seed(5)
    for scale in (0.5, 4.0, 300.0):
        z = scale * torch.randn(1, net.entropy_bottleneck.channels, 3, 5)
        string, z_hat, check = net.code_hyper_latent(z)
        decoded = net.decode_hyper_latent(string, (12, 20), check)     # latent 4x z's size
        assert torch.equal(z_hat, decoded) and z_hat.dtype == decoded.dtype


def test_scale_indexes_are_compressais(net):
    """The binary search gives build_indexes' integers, at and beside every table entry too."""
    net.prepare_inference()
    coder = net._base_coder
    table = coder.gaussian.scale_table.double()
    scales = torch.cat([torch.rand(20000, dtype=torch.float64) * 300, table, table.nextafter(table + 1),
                        table.nextafter(table - 1), torch.tensor([0.0, -1.0, 0.11, 1e9], dtype=torch.float64)])
    assert torch.equal(coder.indexes(scales), coder.gaussian.build_indexes(scales).int())


def test_scale_indexes_from_buckets_are_bucketizes(net):
    """The bucket lookup gives torch.bucketize's integers, the ones files were
    written with: log-uniform scales, every boundary and its float neighbours, and the odd values."""
    net.prepare_inference()
    coder = net._base_coder
    assert coder._buckets is not None
    bounds = coder.scale_boundaries
    odd = torch.tensor([0.0, -0.0, -1.0, float("nan"), float("inf"), -float("inf"), 5e-324, 1e-300, 1e300,
                        bounds[0] / 2, (bounds[0] / 2).nextafter(torch.tensor(0.0, dtype=torch.float64))],
                       dtype=torch.float64)
    scales = torch.cat([torch.exp(torch.empty(200000, dtype=torch.float64).uniform_(-4, 7)), bounds,
                        bounds.nextafter(bounds + 1), bounds.nextafter(bounds - 1), odd])
    assert torch.equal(coder.indexes(scales), torch.bucketize(scales, bounds).int())
    assert torch.equal(coder.indexes(scales.float().reshape(1, -1, 1, 1)),
                       torch.bucketize(scales.float().double(), bounds).int().reshape(1, -1, 1, 1))


def test_a_table_without_buckets_is_searched():
    from compressai.entropy_models import GaussianConditional

    from progcodec.coding.gaussian import GaussianSymbolCoder

    scales = torch.tensor([0.0, 0.15, 0.3, 4.0, 8.0, 20.0, 100.0, float("nan")], dtype=torch.float64)
    for table, bucketed in (([0.11, 0.2, 0.3, 5.0, 9.0, 40.0], True), ([0.11, 0.2, 0.2 + 1e-9, 5.0, 9.0], False)):
        gaussian = GaussianConditional(table)
        gaussian.update()
        coder = GaussianSymbolCoder(gaussian)
        assert (coder._buckets is not None) == bucketed
        assert coder.indexes(scales).tolist() == torch.bucketize(scales, coder.scale_boundaries).tolist()


def test_table_renumbering_is_np_uniques(net):
    """A chunk's indexes renumbered over the tables it uses, as np.unique would: same bits."""
    net.prepare_inference()
    coder = net._base_coder
    rng = np.random.default_rng(0)
    for indexes in (rng.integers(0, len(coder.cdfs), 5000), rng.integers(7, 12, 300), np.array([5]),
                    np.array([len(coder.cdfs) - 1, 0])):
        used, renumbered = np.unique(indexes, return_inverse=True)
        assert coder._tables(indexes) == (renumbered.tolist(), [coder.cdfs[i] for i in used],
                                          [coder.cdf_lengths[i] for i in used], [coder.offsets[i] for i in used])


def test_gdn_in_place_path_matches_compressai(net):
    """Coding runs GDN in place without gradients: bit for bit CompressAI's GDN, in both layouts."""
    from compressai.layers import GDN as CompressAIGDN

    from progcodec.models.transforms import GDN

    gdns = [m for m in net.modules() if isinstance(m, GDN)]
    assert any(m.inverse for m in gdns) and any(not m.inverse for m in gdns)
    torch.manual_seed(0)
    for gdn in gdns:
        x = 3 * torch.randn(1, gdn.beta.numel(), 12, 20)
        for layout in (torch.contiguous_format, torch.channels_last):
            inp = x.contiguous(memory_format=layout)
            with torch.no_grad():
                out = gdn(inp)
                assert torch.equal(out, CompressAIGDN.forward(gdn, inp))
            assert torch.equal(inp, x)   # the input is left as it was


@pytest.mark.parametrize("model, module, stage", [
    ("vam", "h_s", "base"), ("vam", "residual.residual_params", "residual"), ("progdtd", "h_s", "y"),
])
def test_perturbed_entropy_parameters_are_a_determinism_error(astronaut, weights_dir, model, module, stage):
    """A decoder whose float64 parameter path differs by 1e-3 stops instead of decoding garbage.

    A private instance is perturbed (not the cached one other tests use); the
    file digest still matches, so only the checksum guard can catch it.
    """
    net = load_model(str(weights_dir / f"{model}.safetensors"))
    data = progcodec.encode(astronaut, model=net)
    assert progcodec.decode(data, model=net).size == (96, 64)
    last_conv = [m for m in net.get_submodule(module).modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last_conv.bias.add_(1e-3)
    net.prepare_inference()
    with pytest.raises(DeterminismError, match=stage):
        progcodec.decode(data, model=net)


def test_the_shared_model_is_untouched(encoded, by_layers, net, weights_path):
    """The perturbation tests used private instances: the cached model still decodes."""
    assert np.array_equal(pixels(progcodec.decode(encoded)), by_layers[-1])


def test_decoding_a_lying_size_is_clean(encoded, fuzzlib):
    """A valid header claiming another (plausible) size: the checksums stop it, or it decodes at that size."""
    sample = fuzzlib.Sample.of(encoded)
    for width, height in [(97, 64), (96, 65), (200, 100), (1, 1), (1000, 30)]:
        try:
            image = progcodec.decode(sample.rebuild(width=width, height=height))
        except DeterminismError:
            continue
        assert image.size == (width, height)


def test_decoding_a_lying_maximum_size_is_clean(encoded, fuzzlib):
    """The largest size a header may claim: the hyper-latent checksum stops it
    before the costly float64 hyper-synthesis (no giant allocation)."""
    sample = fuzzlib.Sample.of(encoded)
    for width, height in [(4096, 4096), (32768, 512)]:
        with pytest.raises(DeterminismError, match="hyper-latent"):
            progcodec.decode(sample.rebuild(width=width, height=height))
