"""The integer entropy-parameter path: exact integer arithmetic, so the same bits on any
GEMM, thread count or batch, close to the float network it replaces, and files coded
on it that round-trip at every layer prefix."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import progcodec
from progcodec.coding import integer_path
from progcodec.coding.gaussian import snap
from progcodec.coding.integer_path import IntegerConv, IntegerNetwork, IntegerPath, int_matmul, quantize
from progcodec.models.transforms import hyper_synthesis


def _residual_params_like(channels: int = 12) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, 16, 3, padding=1), nn.LeakyReLU(),
                         nn.Conv2d(16, 16, 3, padding=1), nn.LeakyReLU(), nn.Conv2d(16, 8, 1))


@pytest.fixture(scope="module")
def networks():
    """(float network, its integer version, inputs) for a hyper-synthesis and a 3x3/1x1 stack."""
    torch.manual_seed(0)
    out = []
    for float_net, shape in [(hyper_synthesis(8, 12), (2, 8, 3, 5)), (_residual_params_like(), (2, 12, 7, 6))]:
        inputs = torch.randn(*shape, dtype=torch.float64) * torch.linspace(0.1, 20, shape[1]).reshape(1, -1, 1, 1)
        out.append((float_net.double().eval(), quantize(float_net, [inputs]), inputs))
    return out


ENGINES = {"int8": {}, "u8s8": {}, "float32": {}, "float64": {"_float32_exact": lambda: False}}


def _use_engine(m, name):
    """Route int_matmul to one engine: torch's int8 GEMM, oneDNN's u8 × s8 one, chunked float32
    GEMMs, or float64 (what float32 falls back to where torch may round float32 matmuls to bf16 or TF32)."""
    m.setattr(integer_path, "gemm_engine", lambda: "float32" if name == "float64" else name)
    for attr, value in ENGINES[name].items():
        m.setattr(integer_path, attr, value)


@pytest.mark.parametrize("engine", ENGINES)
def test_int8_gemm_is_exact_at_the_extremes(engine, monkeypatch):
    """The most negative and positive parts against the widest weights: the int32 sums equal
    int64 arithmetic exactly on every engine, also where a row against a column sums to more
    than float32's 2^24 (the float32 engine's chunks keep every partial sum below it)."""
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.choice([-128, 127, 0, 1], size=(37, 2304)).astype(np.int8))
    b = torch.from_numpy(rng.choice([-63, 63, -32, 31], size=(2304, 19)).astype(np.int8))
    narrow = b.clone()                      # the parameter path's weight parts: within [-64, 63]
    a[0], b[:, 0], a[1], b[:, 1] = -128, -128, 127, -128     # 2304 · 2^14 and 2304 · -127 · 128
    narrow[:, 0] = -64                                       # 2304 · 2^13
    with monkeypatch.context() as m:
        _use_engine(m, engine)
        for weights in (b, narrow):
            exact = a.long() @ weights.long()
            assert int(exact[0, 0]) > 2**24
            assert torch.equal(int_matmul(a, weights).long(), exact)
        assert torch.equal(int_matmul(a[:, :0], b[:0]).long(), torch.zeros(37, 19, dtype=torch.long))


@pytest.mark.skipif(not integer_path.u8s8_exact(), reason="oneDNN's quantised linear layer is missing or inexact here")
def test_u8s8_runs_where_it_is_exact_and_only_on_narrow_weights(monkeypatch):
    """The engine really runs oneDNN (not the float32 fallback) on the parameter path's weights,
    packs them once, and leaves weights wider than its pair sums allow to float32."""
    rng = np.random.default_rng(1)
    a = torch.from_numpy(rng.integers(-128, 128, size=(9, 300)).astype(np.int8))
    narrow = torch.from_numpy(rng.integers(-64, 64, size=(300, 7)).astype(np.int8))
    wide = narrow.clone()
    wide[3, 2] = -65
    calls = []
    monkeypatch.setattr(integer_path, "_float_matmul", lambda a, b: calls.append("float32") or a.int() @ b.int())
    monkeypatch.setattr(integer_path, "gemm_engine", lambda: "u8s8")
    assert torch.equal(int_matmul(a, narrow).long(), a.long() @ narrow.long()) and calls == []
    packs = narrow._progcodec_u8s8
    int_matmul(a, narrow)
    assert narrow._progcodec_u8s8 is packs                     # packed once
    narrow[0, 0] = 5                                            # written to: packed again
    assert torch.equal(int_matmul(a, narrow).long(), a.long() @ narrow.long())
    assert torch.equal(int_matmul(a, wide).long(), a.long() @ wide.long()) and calls == ["float32"]


def test_an_inexact_u8s8_is_never_chosen(monkeypatch):
    """u8s8_exact checks the kernel against int64 arithmetic; a kernel that saturates or rounds
    (simulated: one that loses the low bit) fails it, as a torch without it does, and the
    machine falls back to float32."""
    integer_path.u8s8_exact.cache_clear()
    integer_path.gemm_engine.cache_clear()
    try:
        real = integer_path._u8s8_matmul
        monkeypatch.setattr(integer_path, "_u8s8_matmul", lambda a, b, packed: real(a, b, packed) & ~1)
        monkeypatch.setattr(integer_path, "int8_gemm_supported", lambda: False)
        monkeypatch.delenv("PROGCODEC_GEMM", raising=False)
        assert not integer_path.u8s8_exact()
        assert integer_path.gemm_engine() == "float32"

        def missing(a, b, packed):
            raise AttributeError("'_OpNamespace' 'onednn' object has no attribute 'qlinear_pointwise'")

        monkeypatch.setattr(integer_path, "_u8s8_matmul", missing)     # a torch without the op
        integer_path.u8s8_exact.cache_clear()
        assert not integer_path.u8s8_exact()
        monkeypatch.setattr(integer_path, "gemm_engine", lambda: "u8s8")      # forced: still exact
        a, b = torch.full((2, 3), 7, dtype=torch.int8), torch.full((3, 2), -5, dtype=torch.int8)
        assert torch.equal(int_matmul(a, b), torch.full((2, 2), -105, dtype=torch.int32))
    finally:
        monkeypatch.undo()
        integer_path.u8s8_exact.cache_clear()
        integer_path.gemm_engine.cache_clear()


def test_gemm_engine_follows_the_cpu_and_the_environment(monkeypatch):
    integer_path.gemm_engine.cache_clear()
    try:
        for vnni, u8s8, expected in ((True, True, "int8"), (False, True, "u8s8"), (False, False, "float32")):
            monkeypatch.setattr(integer_path, "int8_gemm_supported", lambda: vnni)
            monkeypatch.setattr(integer_path, "u8s8_exact", lambda: u8s8)
            integer_path.gemm_engine.cache_clear()
            assert integer_path.gemm_engine() == expected
        monkeypatch.setenv("PROGCODEC_GEMM", "int8")
        integer_path.gemm_engine.cache_clear()
        assert integer_path.gemm_engine() == "int8"
        monkeypatch.setenv("PROGCODEC_GEMM", "fast")
        integer_path.gemm_engine.cache_clear()
        with pytest.raises(ValueError, match="PROGCODEC_GEMM"):
            integer_path.gemm_engine()
    finally:
        monkeypatch.undo()
        integer_path.gemm_engine.cache_clear()


def test_integer_network_is_close_to_the_float64_one(networks):
    for float_net, int_net, x in networks:
        with torch.no_grad():
            ref, out = float_net(x), int_net(x)
        assert out.shape == ref.shape and out.dtype == torch.float64
        assert (out - ref).abs().max() < 2e-3 * ref.abs().max()


def test_the_same_bits_with_any_gemm_thread_count_or_batch(networks, monkeypatch):
    threads = torch.get_num_threads()
    for _, int_net, x in networks:
        reference = int_net(x)
        torch.set_num_threads(2)
        try:
            assert torch.equal(int_net(x), reference)
        finally:
            torch.set_num_threads(threads)
        assert torch.equal(int_net(x[1:]), reference[1:])        # each image alone, as in the batch
        for engine in ENGINES:                                   # every GEMM engine: the same bits
            with monkeypatch.context() as m:
                _use_engine(m, engine)
                assert torch.equal(int_net(x), reference), engine
        with monkeypatch.context() as m:                         # a torch without an int8 GEMM
            m.setattr(integer_path, "gemm_engine", lambda: "int8")
            m.delattr(torch, "_int_mm")
            assert torch.equal(int_net(x), reference)


def _reference_layer(layer, x: torch.Tensor) -> torch.Tensor:
    """One IntegerConv from its buffers by plain float64 convolutions of the same integers
    ((N, C, H, W) in and out): 2^13·hi·hi' + 2^7·hi·lo' + 2^6·lo·hi', every sum an integer
    below 2^53, so exact whatever order the convolution adds in."""
    q = layer.quantize_input(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).long()
    hi, lo = (q >> 7).double(), (q & 127).double()
    k, c = layer.kernel, layer.out_ch
    w = layer.weight.long().double()
    if layer.transposed:
        w_hi, w_lo = (w.reshape(layer.in_ch, 2, k, k, c)[:, i].permute(0, 3, 1, 2) for i in (0, 1))

        def conv(a, b):
            return F.conv_transpose2d(a, b, stride=layer.stride, padding=layer.padding,
                                      output_padding=layer.output_padding)
    else:
        w_hi, w_lo = (w[..., i * c:(i + 1) * c].reshape(k, k, layer.in_ch, c).permute(3, 2, 0, 1) for i in (0, 1))

        def conv(a, b):
            return F.conv2d(a, b, padding=layer.padding)
    acc = conv(hi, w_hi) * 2.0**13 + conv(hi, w_lo) * 2.0**7 + conv(lo, w_hi) * 2.0**6
    out = acc * layer.out_scale.reshape(1, -1, 1, 1) + layer.bias.reshape(1, -1, 1, 1)
    if layer.negative_slope is not None:
        out = F.leaky_relu(out, layer.negative_slope) if layer.negative_slope else F.relu(out)
    return out


def test_every_layer_computes_exactly_the_integer_products_it_stores(networks):
    """The GEMM layout (taps side by side, weight parts rearranged for speed) is an implementation
    detail: each layer's output equals float64 convolutions of the same stored integers, bit for bit."""
    for _, int_net, x in networks:
        for layer in int_net.layers:
            expected = _reference_layer(layer, x)
            x = layer(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            assert torch.equal(x, expected)


def test_the_network_folds_each_layers_input_steps_into_the_layer_before_bit_for_bit(networks):
    """IntegerNetwork multiplies each layer's output by the next layer's input steps through the
    layer's scale and bias (powers of two, so every rounding commutes with them): the same floats
    as running the layers one by one, each quantising its own input; also for inputs far out of
    range, where clamping decides, and in inference mode (where coding runs)."""
    for _, int_net, x in networks:
        for inputs in (x, x * 1e3, -x):
            one_by_one = inputs.double().permute(0, 2, 3, 1)
            for layer in int_net.layers:
                one_by_one = layer(one_by_one)
            expected = one_by_one.permute(0, 3, 1, 2)
            assert torch.equal(int_net(inputs), expected)
            with torch.inference_mode():
                assert torch.equal(int_net(inputs), expected)
            path = IntegerPath(int_net)
            assert torch.equal(path(inputs), snap(expected))
            assert torch.equal(path(inputs[:, :3], inputs[:, 3:]), snap(expected))   # inputs side by side
            assert torch.equal(int_net(inputs, grid_bits=7), (expected * 128).round() / 128)


def test_inputs_that_do_not_add_up_to_the_networks_channels_are_refused(networks):
    _, int_net, x = networks[0]
    with pytest.raises(ValueError, match="channels"):
        int_net(x[:, 1:])
    with pytest.raises(ValueError, match="channels"):
        int_net(x, x[:, :1])


def test_weights_parts_never_saturate_a_u8_s8_pair_sum(networks):
    """Every stored int8 part is within [-63, 63], and every GEMM operand made from them
    (2·lo' among them) within [-64, 63]: two u8 x s8 products add up below 2^15 on CPUs whose
    int8 dot product saturates (AVX2's vpmaddubsw)."""
    for _, int_net, _ in networks:
        for layer in int_net.layers:
            assert int(layer.weight.abs().max()) <= 63
            for operand in layer._weights()[:2]:
                assert operand.dtype == torch.int8 and -64 <= int(operand.min()) and int(operand.max()) <= 63
    assert 255 * 64 * 2 < 2**15


def test_inputs_out_of_the_calibrated_range_are_clamped_the_same_way(networks):
    _, int_net, x = networks[1]
    wild = x * 1e6
    assert torch.isfinite(int_net(wild)).all() and torch.equal(int_net(wild), int_net(wild.clone()))
    spoiled = x.clone()
    spoiled[0, 0, 0, 0], spoiled[1, 2, 3, 4] = float("nan"), float("inf")
    zeroed = spoiled.nan_to_num(nan=0.0, posinf=1e300)
    assert torch.equal(int_net(spoiled), int_net(zeroed))        # NaN reads as 0, inf as the top


def test_an_empty_network_has_the_shapes_to_load_a_quantized_one(networks):
    float_net, int_net, x = networks[0]
    empty = IntegerNetwork.like(float_net)
    before = empty(x)                                   # zero weights: only the biases (zero) remain
    empty.load_state_dict(int_net.state_dict())         # copied into the same buffers
    assert torch.equal(empty(x), int_net(x)) and not torch.equal(before, empty(x))


# -- files coded on the integer path ---------------------------------------------------------

@pytest.fixture(scope="module")
def integer_weights(tmp_path_factory, weights_path, astronaut, coffee):
    """The seeded test weights with their integer path, calibrated on two small photos."""
    from progcodec.image import to_tensor
    from progcodec.weights import load_model, save_weights

    model = load_model(str(weights_path))
    model.calibrate_integer_params([to_tensor(im.resize((128, 128))) for im in (astronaut, coffee)])
    path = tmp_path_factory.mktemp("integer_weights") / "vam.safetensors"
    save_weights(model, path, {"note": "seeded test weights with an integer parameter path"})
    return path


def test_integer_weights_write_files_marked_so_that_round_trip_at_every_prefix(integer_weights, astronaut):
    from progcodec import container
    from progcodec.weights import load_model

    data = progcodec.encode(astronaut, model=str(integer_weights))
    meta = progcodec.info(data)
    assert meta["format_version"] == container.FORMAT_VERSION and meta["integer_params"] is True
    model = load_model(str(integer_weights))
    assert model.has_integer_params and model.config()["integer_params"] is True
    assert data == progcodec.encode(astronaut, model=model)           # a fresh load: the same bits
    count = len(meta["layers"])
    decoded = []
    for layers in range(1, count + 1):
        prefix = progcodec.truncate(data, layers=layers)
        decoded.append(np.asarray(progcodec.decode(prefix, weights=[integer_weights])))
        assert np.array_equal(decoded[-1], np.asarray(progcodec.decode(prefix, model=model)))
        assert np.array_equal(decoded[-1], np.asarray(progcodec.decode(data, layers=layers, model=model)))
    assert not np.array_equal(decoded[1], decoded[-1])      # later layers refine the picture


def test_files_are_the_same_bytes_on_every_gemm_engine(integer_weights, astronaut, monkeypatch):
    """The engine is chosen per CPU (int8 GEMMs with VNNI, u8s8 or float32 elsewhere): a file written on
    one machine decodes on the other, so both must give the same bytes and the same pictures."""
    from progcodec.weights import load_model

    model = load_model(str(integer_weights))
    files, pictures = {}, {}
    for engine in ENGINES:
        with monkeypatch.context() as m:
            _use_engine(m, engine)
            files[engine] = progcodec.encode(astronaut, model=model)
            pictures[engine] = [np.asarray(progcodec.decode(files["int8"], layers=n, model=model)) for n in (2, None)]
    assert files["float32"] == files["int8"] == files["u8s8"] == files["float64"]
    for engine in ENGINES:
        assert all(np.array_equal(a, b) for a, b in zip(pictures[engine], pictures["int8"]))


def test_integer_and_float64_files_code_the_same_image_alike(integer_weights, weights_path, astronaut):
    """The integer path approximates the float64 one: sizes within a few percent, and the full
    decodes within a fraction of a dB of each other."""
    ours = progcodec.encode(astronaut, model=str(integer_weights))
    theirs = progcodec.encode(astronaut, model=str(weights_path))
    assert not progcodec.info(theirs)["integer_params"]
    assert abs(len(ours) - len(theirs)) <= 0.05 * len(theirs)
    reference = np.asarray(astronaut, dtype=float)

    def psnr(data, weights):
        out = np.asarray(progcodec.decode(data, weights=[weights]), dtype=float)
        return 10 * np.log10(255**2 / ((out - reference) ** 2).mean())

    assert abs(psnr(ours, integer_weights) - psnr(theirs, weights_path)) < 0.3


def test_a_header_that_lies_about_the_path_is_refused(integer_weights, astronaut, fuzzlib):
    from progcodec import container
    from progcodec.container import LAYOUT_INTEGER_PARAMS
    from progcodec.errors import ProgcodecError

    data = progcodec.encode(astronaut, model=str(integer_weights))
    layout = fuzzlib.get_field(data, "layout")
    forged = fuzzlib.set_field(data, "layout", layout & ~LAYOUT_INTEGER_PARAMS)
    with pytest.raises(ProgcodecError, match="float64 path, and the vam weights it names have one"):
        progcodec.decode(forged, weights=[integer_weights])
    with pytest.raises(ProgcodecError, match="re-encode"):      # format 10's layers: no earlier version
        container.convert(data, 8)


def test_integerize_command_adds_the_path_and_keeps_the_float_weights(cli, weights_path, tmp_path):
    from PIL import Image
    from skimage import data as samples

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(samples, name)()).save(photos / f"{name}.png")
    out = tmp_path / "int" / "vam.safetensors"
    result = cli("weights", "integerize", weights_path, photos, "-o", out)
    assert result.exit_code == 0, result.output
    from safetensors.torch import load_file

    before, after = load_file(str(weights_path)), load_file(str(out))
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert {k for k in after if k not in before} and all("_integer." in k for k in after if k not in before)
    result = cli("weights", "integerize", weights_path, photos, "-o", tmp_path / "x.bin")
    assert result.exit_code != 0 and "safetensors" in result.output


def test_tiled_files_use_the_integer_path_too(integer_weights, fuzzlib):
    """Tiles compute their parameters over windows that reach into their neighbours: on the
    integer path as well, every prefix decodes to the same pixels as a second decoder's."""
    from progcodec.weights import load_model

    second = load_model(str(integer_weights))
    tall = fuzzlib.sample_image(40, 300)
    data = progcodec.encode(tall, model=str(integer_weights), ladder=4, tile=256)
    meta = progcodec.info(data)
    assert meta["integer_params"] and meta["tiles"][:2] == [2, 1]
    for layers in range(1, len(meta["layers"]) + 1):
        prefix = progcodec.truncate(data, layers=layers)
        first = np.asarray(progcodec.decode(prefix, weights=[integer_weights]))
        assert first.shape == (300, 40, 3)
        assert np.array_equal(first, np.asarray(progcodec.decode(prefix, model=second)))


def test_progdtd_scales_on_the_integer_path(tmp_path, coffee):
    """progdtd's hyper-synthesis ends in a ReLU: its integer version too, and its files decode
    at every prefix, the same pixels from a second model."""
    from progcodec.image import to_tensor
    from progcodec.weights import load_model, save_weights

    model = load_model("progdtd")
    model.calibrate_integer_params([to_tensor(coffee.resize((128, 128)))])
    assert model.h_s_integer.layers[-1].negative_slope == 0.0
    path = tmp_path / "progdtd.safetensors"
    save_weights(model, path, {"note": "seeded progdtd with an integer parameter path"})
    data = progcodec.encode(coffee, model=str(path))
    assert progcodec.info(data)["integer_params"]
    second = load_model(str(path))
    for layers in range(1, len(progcodec.info(data)["layers"]) + 1):
        prefix = progcodec.truncate(data, layers=layers)
        assert np.array_equal(np.asarray(progcodec.decode(prefix, weights=[path])),
                              np.asarray(progcodec.decode(prefix, model=second)))
    z = torch.randn(1, model.N, 2, 3, dtype=torch.float64)
    assert (model._h_s_exact(z) >= 0).all()          # a ReLU's output, on the grid


def test_transposed_convs_that_do_not_scale_by_their_stride_are_refused():
    """The integer transposed conv runs as phases of a stride-1 conv: it takes the layers vam's
    h_s has (odd kernel, padding k // 2, output padding s - 1), and says so for others."""
    IntegerConv(True, 4, 4, 5, 2, 2, 1)
    for kernel, stride, padding, output_padding in [(4, 2, 2, 1), (5, 2, 1, 1), (5, 2, 2, 0)]:
        with pytest.raises(ValueError, match="odd kernel"):
            IntegerConv(True, 4, 4, kernel, stride, padding, output_padding)


def test_cpu_flags_are_read_from_the_first_processor():
    from progcodec.cpu_features import parse_flags

    x86 = ("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma\n\n"
           "processor\t: 1\nflags\t\t: fpu sse2 avx2 fma avx512_vnni\n")
    assert parse_flags(x86) == {"fpu", "sse2", "avx2", "fma"}
    assert parse_flags("processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\n") == frozenset()
    assert parse_flags("") == frozenset()
