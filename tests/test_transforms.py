"""The synthesis' last layer: a transposed conv that codes as a stride-1 conv and a pixel shuffle."""

import pytest
import torch
import torch.nn.functional as F

from progcodec.models.transforms import SubpixelDeconv, synthesis


def _reference(layer: SubpixelDeconv, x: torch.Tensor) -> torch.Tensor:
    k, s = layer.kernel_size[0], layer.stride[0]
    return F.conv_transpose2d(x, layer.weight, layer.bias, s, k // 2, s - 1)


@pytest.mark.parametrize("kernel,stride", [(5, 2), (3, 2), (5, 4), (7, 2), (1, 2), (5, 1), (3, 3)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_subpixel_form_is_the_transposed_conv(kernel, stride, layout):
    torch.manual_seed(kernel * 10 + stride)
    layer = SubpixelDeconv(6, 3, kernel, stride)
    x = torch.randn(2, 6, 7, 9).contiguous(memory_format=layout)
    with torch.no_grad():
        out = layer(x)
    expected = _reference(layer, x)
    assert out.shape == expected.shape == (2, 3, 7 * stride, 9 * stride)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_training_runs_the_plain_transposed_conv_with_gradients():
    torch.manual_seed(0)
    layer = SubpixelDeconv(4, 3)
    x = torch.randn(1, 4, 5, 6, requires_grad=True)
    out = layer(x)
    assert torch.equal(out, _reference(layer, x))
    out.sum().backward()
    assert layer.weight.grad is not None and x.grad is not None


def test_the_subpixel_weights_follow_new_weights():
    torch.manual_seed(1)
    layer, other = SubpixelDeconv(4, 3), SubpixelDeconv(4, 3)
    x = torch.randn(1, 4, 5, 6)
    with torch.no_grad():
        before = layer(x)
        layer.load_state_dict(other.state_dict())       # copies into the same tensors
        after = layer(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, _reference(other, x), rtol=0, atol=1e-5)
    layer.weight = torch.nn.Parameter(torch.randn_like(layer.weight))   # a new tensor in its place
    layer.double()                                                       # and new memory, new dtype
    with torch.no_grad():
        moved = layer(x.double())
    assert moved.dtype == torch.float64
    torch.testing.assert_close(moved, _reference(layer, x.double()), rtol=0, atol=1e-9)


def test_weights_files_keep_their_names():
    """The last synthesis layer is still a ConvTranspose2d with weight and bias."""
    net = synthesis(8, 12)
    assert isinstance(net[-1], SubpixelDeconv) and isinstance(net[-1], torch.nn.ConvTranspose2d)
    assert set(net[-1].state_dict()) == {"weight", "bias"}


def test_even_kernels_are_refused():
    with pytest.raises(ValueError, match="odd"):
        SubpixelDeconv(4, 3, kernel=4)


def _gdn(inverse: bool):
    from progcodec.models.transforms import GDN

    torch.manual_seed(3 + inverse)
    layer = GDN(8, inverse=inverse)
    with torch.no_grad():   # away from the initial identity-like parameters
        layer.gamma.add_(0.05 * torch.rand_like(layer.gamma))
        layer.beta.add_(0.5 * torch.rand_like(layer.beta))
    return layer


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_codes_in_bf16_at_bf16_coding_precision_close_to_float32(inverse):
    """Coding at bf16 runs the whole normalisation in bf16: within bf16's relative precision of
    the float32 result (all its terms are positive). Autocast alone (training's validation) and
    float32 coding keep float32."""
    from progcodec.precision import coding_precision

    layer = _gdn(inverse)
    x = 3 * torch.randn(2, 8, 9, 11)
    with torch.no_grad():
        exact = layer(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            validating = layer(x)
            with coding_precision(torch.bfloat16):
                fast = layer(x)
                layer.beta.mul_(2.0)            # new parameters are seen at once
                changed = layer(x)
        layer.beta.div_(2.0)
    assert exact.dtype == validating.dtype == torch.float32 and torch.equal(exact, validating)
    assert fast.dtype == changed.dtype == torch.bfloat16
    torch.testing.assert_close(fast.float(), exact, rtol=2**-6, atol=1e-3)
    assert not torch.allclose(changed.float(), fast.float(), rtol=2**-6)
    torch.testing.assert_close(exact, _compressai_gdn(layer, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_trains_in_float32_under_autocast(inverse):
    layer = _gdn(inverse)
    x = torch.randn(1, 8, 5, 6, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, _compressai_gdn(layer, x), rtol=1e-6, atol=1e-6)
    out.sum().backward()
    assert layer.gamma.grad is not None and x.grad is not None


def _compressai_gdn(layer, x):
    from compressai.layers import GDN as Reference

    with torch.no_grad():
        return Reference.forward(layer, x.float())
