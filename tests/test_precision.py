"""bf16 while coding (``precision=``): g_a, g_s and the float32 mean-fill networks under
autocast, the float64 entropy-parameter path untouched, so a file decodes at any precision
whatever wrote it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import progcodec
from progcodec import api
from progcodec.errors import ProgcodecError
from progcodec.metrics import mse_to_psnr

MODEL_NAMES = ("vam", "progdtd")


def _psnr(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(mse_to_psnr(max(np.mean((a - b) ** 2), 1e-12)))


class ConvDtypes:
    """The dtypes the first convolution of ``g_a`` and of ``g_s`` return, call by call."""

    def __init__(self, net):
        self.seen = {"g_a": [], "g_s": []}
        self.handles = []
        for name in self.seen:
            conv = next(m for m in getattr(net, name).modules() if isinstance(m, torch.nn.modules.conv._ConvNd))
            self.handles.append(conv.register_forward_hook(
                lambda module, args, out, name=name: self.seen[name].append(out.dtype)))

    def take(self) -> dict:
        out = {name: set(dtypes) for name, dtypes in self.seen.items()}
        for dtypes in self.seen.values():
            dtypes.clear()
        return out

    def close(self):
        for h in self.handles:
            h.remove()


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_bf16_runs_the_transforms_in_bf16_and_only_inside_the_call(astronaut, model):
    net = api.get_model(model)
    dtypes = ConvDtypes(net)
    try:
        data = progcodec.encode(astronaut, model=net, precision="bf16")
        assert dtypes.take() == {"g_a": {torch.bfloat16}, "g_s": set()}
        progcodec.decode(data, model=net, precision="bf16")
        assert dtypes.take() == {"g_a": set(), "g_s": {torch.bfloat16}}
        progcodec.decode(data, model=net)     # the default is float32 again: nothing leaked out of the call
        progcodec.encode(astronaut, model=net)
        assert dtypes.take() == {"g_a": {torch.float32}, "g_s": {torch.float32}}
    finally:
        dtypes.close()


def test_vam_hyper_analysis_follows_the_encoders_precision(astronaut):
    """z is sent, so the encoder may make it in bf16 like y; the decoder never runs h_a."""
    net = api.get_model("vam")
    seen = []
    handle = net.h_a[0].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    try:
        data = progcodec.encode(astronaut, model=net, precision="bf16")
        progcodec.decode(data, model=net, precision="bf16")
        assert seen == [torch.bfloat16]
        progcodec.encode(astronaut, model=net)
        assert seen == [torch.bfloat16, torch.float32]
    finally:
        handle.remove()


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_prefix_decodes_at_either_precision_whatever_wrote_it(astronaut, model):
    """The header's checksums come from the encoder's float64 path: a bf16 decoder that let
    autocast into that path would raise DeterminismError here instead of decoding."""
    written = {p: progcodec.encode(astronaut, model=model, precision=p) for p in ("fp32", "bf16")}
    for data in written.values():
        count = len(progcodec.info(data)["layers"])
        for layers in range(1, count + 1):
            exact = progcodec.decode(data, layers=layers)
            fast = progcodec.decode(data, layers=layers, precision="bf16")
            assert fast.size == exact.size == astronaut.size
            assert _psnr(fast, exact) > 30, (model, layers)


def test_bf16_runs_the_mean_fill_networks_in_bf16(encoded, net):
    """vam's preview layer is filled from the float32 hyper-synthesis (Float32Path): bf16 too."""
    seen = []
    conv = next(m for m in net.h_s.modules() if isinstance(m, torch.nn.modules.conv._ConvNd))
    handle = conv.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    try:
        progcodec.decode(encoded, layers=1, model=net, precision="bf16")
        assert set(seen) == {torch.bfloat16}
        seen.clear()
        progcodec.decode(encoded, layers=1, model=net)
        assert set(seen) == {torch.float32}
    finally:
        handle.remove()


def test_streamed_bf16_decode_matches_whole_bf16_decodes(encoded):
    count = len(progcodec.info(encoded)["layers"])
    streamed = [np.asarray(im) for _, im in progcodec.iter_decode(encoded, precision="bf16")]
    assert len(streamed) == count
    for layers, pixels in enumerate(streamed, 1):
        assert np.array_equal(pixels, np.asarray(progcodec.decode(encoded, layers=layers, precision="bf16")))


def test_an_unknown_precision_is_a_clean_error(astronaut, encoded):
    with pytest.raises(ProgcodecError, match="precision"):
        progcodec.encode(astronaut, precision="fp16")
    with pytest.raises(ProgcodecError, match="precision"):
        progcodec.decode(encoded, precision="fp16")
    with pytest.raises(ProgcodecError, match="precision"):
        next(progcodec.iter_decode(encoded, precision="fp16"))


def test_cli_precision(cli, astronaut, tmp_path):
    astronaut.save(tmp_path / "a.png")
    assert cli("encode", tmp_path / "a.png", "-o", tmp_path / "a.pgc", "--precision", "bf16").exit_code == 0
    result = cli("decode", tmp_path / "a.pgc", "-o", tmp_path / "b.png", "--precision", "auto")
    assert result.exit_code == 0, result.output
    assert cli("decode", tmp_path / "a.pgc", "-o", tmp_path / "c.png", "--precision", "fp16").exit_code == 2
