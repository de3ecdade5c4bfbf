"""Analysis and synthesis transforms shared by the models (Ballé 2018 style).

Training on a CPU with bfloat16 support runs the convolutions of the big
transforms under ``torch.autocast`` (``progcodec.precision``), about twice as
fast. GDN's normalisation (a square, a 1x1 conv, a square root) stays in
float32 there: autocast would run its conv in bfloat16 and leave the pow/rsqrt in
whatever dtype came in, so ``GDN`` here leaves autocast and upcasts its input.
Coding at bfloat16 runs all of GDN in bfloat16 (see ``GDN``).
Entropy models, likelihoods and the loss never run under autocast.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .._compressai import GDN as _CompressAIGDN
from ..coding.subpixel import subpixel_taps
from ..precision import coding_dtype


def derived(module: nn.Module, name: str, sources, make):
    """``make()``, kept on ``module`` as ``name`` and made again when a tensor of ``sources`` is
    replaced, moved or written in place. The cache holds the tensors it was made from, so their
    memory cannot be reused by others with the same address; in-place writes (load_state_dict,
    an optimiser step) move their version."""
    now = [(t.detach(), t._version) for t in sources]
    cached = getattr(module, name, None)
    if cached is None or any(t.data_ptr() != old.data_ptr() or t.dtype != old.dtype or version != old_version
                             for (t, version), (old, old_version) in zip(now, cached[0])):
        cached = (now, make())
        setattr(module, name, cached)
    return cached[1]


class GDN(_CompressAIGDN):
    """CompressAI's GDN (same parameters), computed in float32 when training.

    Without gradients (coding) the square root runs in place on the normalisation's buffer,
    one fewer full-resolution tensor. Coding at bfloat16 (``--precision bf16``, inside
    ``coding_precision``) runs all of it in bfloat16: the normalisation sums only positive
    terms (γ, x², β >= 0), so it keeps bfloat16's relative precision (about 2^-9), no worse
    than the bfloat16 input the next convolution gets anyway, and the float32 1x1
    convolution was half of the analysis transform's time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        # coding at bf16 only: training, and its validation, keep float32 as they always had
        coding_bf16 = (not torch.is_grad_enabled() and coding_dtype() == torch.bfloat16
                       and torch.is_autocast_enabled(device))
        with torch.autocast(device, enabled=False):
            if torch.is_grad_enabled():
                return super().forward(x.float())
            dtype = torch.bfloat16 if coding_bf16 else torch.float32
            x = x.to(dtype)
            beta, gamma = self._coding_parameters(dtype)
            # torch.square: the same products as x * x, in half the time in bfloat16 (one input to read)
            norm = nn.functional.conv2d(torch.square(x), gamma, beta)
            if self.inverse:
                return torch.mul(x, norm.sqrt_())
            if coding_bf16:     # x / √n: a third faster than x · n^(-1/2) in bfloat16, as exact
                return torch.div(x, norm.sqrt_())
            return norm.rsqrt_().mul_(x)      # float32: CompressAI's GDN bit for bit

    def _coding_parameters(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(β, γ as a 1x1 kernel) in ``dtype``, one cache per dtype, made again when a parameter changes."""
        def make():
            gamma = self.gamma_reparam(self.gamma).reshape(*self.gamma.shape, 1, 1)
            return self.beta_reparam(self.beta).to(dtype), gamma.to(dtype)

        return derived(self, "_coding_" + str(dtype).removeprefix("torch."), (self.beta, self.gamma), make)


def conv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)


def deconv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(
        in_ch, out_ch, kernel, stride=stride, output_padding=stride - 1, padding=kernel // 2
    )


class SubpixelDeconv(nn.ConvTranspose2d):
    """A ConvTranspose2d (odd kernel k, stride s, padding k // 2, output padding s - 1: s times the
    input's size) that, on the CPU without gradients, runs as the same function in another form:
    one stride-1 conv to s·s·C_out channels, then a pixel shuffle (coding/subpixel.py).

    For the synthesis' last layer (128 -> 3 channels at full resolution) oneDNN's transposed conv
    is 2.5x slower than this (benchmarks/speed.py); training keeps the plain transposed conv. The
    sums are added in another order: the picture may differ in the last bits (only the entropy
    parameters must be exact, and no parameter is derived from a synthesis)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2):
        if kernel % 2 == 0:
            raise ValueError("SubpixelDeconv takes odd kernels")
        super().__init__(in_ch, out_ch, kernel, stride=stride, output_padding=stride - 1, padding=kernel // 2)

    def _subpixel_weights(self) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """(conv weight (s·s·C_out, C_in, K, K), bias, (padding before, after)), made again when
        the weights change. Taps t run over [-after, before]; conv tap a reads input m − before + a."""
        def make():
            s = self.stride[0]
            taps, (before, after) = subpixel_taps(self.weight.detach().permute(0, 2, 3, 1), s, self.padding[0])
            # conv channels in pixel_shuffle's order: output channel, phase row, phase column
            size = taps.shape[0]
            conv_w = taps.permute(5, 3, 4, 2, 0, 1).reshape(-1, self.in_channels, size, size).contiguous()
            return conv_w, self.bias.detach().repeat_interleave(s * s), (before, after)

        return derived(self, "_subpixel", (self.weight, self.bias), make)

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if torch.is_grad_enabled() or x.device.type != "cpu" or output_size is not None:
            return super().forward(x, output_size)
        weight, bias, (before, after) = self._subpixel_weights()
        if before == after:
            out = F.conv2d(x, weight, bias, padding=before)
        else:
            out = F.conv2d(F.pad(x, (before, after, before, after)), weight, bias)
        return F.pixel_shuffle(out, self.stride[0])


def analysis_trunk(n: int) -> nn.Sequential:
    """Image -> features at 1/8 resolution; a final ``conv(n, M)`` gives a latent."""
    return nn.Sequential(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n))


def synthesis(n: int, m: int) -> nn.Sequential:
    """Latent at 1/16 resolution -> image."""
    return nn.Sequential(
        deconv(m, n), GDN(n, inverse=True),
        deconv(n, n), GDN(n, inverse=True),
        deconv(n, n), GDN(n, inverse=True),
        SubpixelDeconv(n, 3),
    )


def hyper_analysis(in_ch: int, n: int) -> nn.Sequential:
    """Latent -> hyper-latent at 1/4 of the latent's resolution."""
    return nn.Sequential(
        conv(in_ch, n, 3, 1), nn.LeakyReLU(inplace=True),
        conv(n, n), nn.LeakyReLU(inplace=True),
        conv(n, n),
    )


def hyper_synthesis(n: int, out_ch: int) -> nn.Sequential:
    """Hyper-latent -> entropy-parameter features at the latent's resolution."""
    mid = (n + out_ch) // 2
    return nn.Sequential(
        deconv(n, n), nn.LeakyReLU(inplace=True),
        deconv(n, mid), nn.LeakyReLU(inplace=True),
        conv(mid, out_ch, 3, 1),
    )
