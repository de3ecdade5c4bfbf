"""What every progressive model offers the codec, the trainer and the bench."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._compressai import EntropyBottleneck, EntropyModel, GaussianConditional
from ..coding.gaussian import memory_safe, tensor_checksum, verify_checksum
from ..precision import coding_autocast


def bits(likelihoods: torch.Tensor) -> torch.Tensor:
    """Estimated bits of a latent from its likelihoods (training only)."""
    return -torch.log2(likelihoods).sum()


# Scales of the Gaussian CDF tables: 64 log-spaced from 0.11 to 256, the table of
# Ballé's tensorflow-compression examples that CompressAI's models use by default.
SCALE_TABLE = torch.exp(torch.linspace(math.log(0.11), math.log(256), 64))

# Buffers an entropy model sizes when it builds its CDF tables (update()).
_TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


class EntropyCodedModel(nn.Module):
    """What the codec needs of CompressAI's ``CompressionModel``, without importing
    ``compressai.models`` (whose package pulls torch_geometric, _compressai.py):
    loading CDF tables whose size only the weights know, building them after
    training, and the hyperprior's auxiliary loss."""

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # A fresh model's tables are empty; size them like the file's before loading.
        for name, module in self.named_modules():
            if not isinstance(module, EntropyModel):
                continue
            for buffer_name in _TABLE_BUFFERS:
                buffer = getattr(module, buffer_name, None)
                stored = state_dict.get(f"{name}.{buffer_name}")
                if isinstance(buffer, torch.Tensor) and stored is not None and buffer.shape != stored.shape:
                    buffer.resize_(stored.shape)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def update(self, force: bool = False) -> bool:
        """Build the entropy models' CDF tables (after training, before coding)."""
        updated = False
        for module in self.modules():
            if isinstance(module, EntropyBottleneck):
                updated |= module.update(force=force)
            elif isinstance(module, GaussianConditional):
                updated |= module.update_scale_table(SCALE_TABLE, force=force)
        return updated

    def aux_loss(self) -> torch.Tensor:
        """The hyperprior bottlenecks' quantile loss (trained by its own optimizer)."""
        return sum(m.loss() for m in self.modules() if isinstance(m, EntropyBottleneck))


class ProgressiveModel(EntropyCodedModel):
    """A learned codec whose bitstream is a list of layers, each refining the last.

    ``compress(x, ladder, preview)`` returns ``{"layers": [bytes, ...], "checksums": [int, ...]}``;
    ``decompress(layers, latent_size, checksums, ...)`` reconstructs from any prefix
    of those layers, through ``decoder(...)``, the state that streaming decode keeps.
    ``x`` is padded to a multiple of ``stride`` by the caller.
    ``forward(x)`` returns the training losses (rate-distortion and aux).
    """

    name: str = ""
    stride: int = 64          # the image is padded to a multiple of this
    latent_stride: int = 16   # image pixels per latent element, each way
    num_checksums: int = 1    # determinism checksums stored in the header

    @property
    def num_layers(self) -> int:
        raise NotImplementedError

    def config(self) -> dict:
        """Constructor arguments: enough to rebuild the architecture."""
        raise NotImplementedError

    def prepare_inference(self) -> None:
        """Build frozen float64 parameter paths and CDF tables (after loading)."""
        raise NotImplementedError

    @torch.no_grad()
    def decompress(self, layers: list[bytes], latent_size: tuple[int, int], checksums=None,
                   ladder=(), preview: bool = False, base_chunk: bool = False,
                   fine_ladder: bool = False, rem: bool = False, grouped: bool = True) -> torch.Tensor:
        """Reconstruct from any prefix of the layers ``compress`` wrote: the model's
        ``decoder`` state, fed every layer, then one synthesis. ``checksums`` (from
        the file) are verified before each stage reads bits. ``grouped``: symbols grouped by
        table (format 10), else one by one (earlier formats)."""
        decoder = self.decoder(latent_size, checksums, ladder, preview, base_chunk, fine_ladder, rem,
                               grouped=grouped)
        for layer in layers:
            decoder.add(layer)
        return decoder.reconstruct()

    has_rem = False           # Rate Enhancement Modules in these weights (vam)
    has_integer_params = False    # entropy parameters on an integer path these weights carry (vam)

    def checksum_count(self, rem: bool = False) -> int:
        """Checksums in the header of a file written with (or without) REMs."""
        return self.num_checksums

    def decoder(self, latent_size, checksums=None, ladder=(), preview=False, base_chunk=False, fine_ladder=False,
                rem=False, context=None, grouped=True):
        """An object with ``add(layer_bytes)`` and ``reconstruct() -> image tensor``."""
        raise NotImplementedError

    # Memory layout of the float32 transforms at inference (load_model: channels_last on the CPU).
    transform_layout = torch.contiguous_format

    def set_transform_layout(self, memory_format: torch.memory_format) -> None:
        """Run g_a and g_s in ``memory_format``: channels_last, where oneDNN's convolutions are
        faster on the CPU (benchmarks/speed.py). Only the transforms: the float64 parameter path
        keeps its contiguous layout (and so its exact arithmetic), and what the transforms return
        is made contiguous again before anything derives entropy parameters from it."""
        self.transform_layout = memory_format
        for net in (self.g_a, self.g_s):
            net.to(memory_format=memory_format)

    def in_transform_layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.transform_layout)

    @torch.no_grad()
    def synthesize(self, y: torch.Tensor) -> torch.Tensor:
        """The picture from a decoded latent (any float dtype, on the CPU), by ``self.g_s``
        (under bf16 autocast inside ``coding_precision(torch.bfloat16)``)."""
        device = next(self.g_s.parameters()).device
        with coding_autocast(device):
            x_hat = self.g_s(self.in_transform_layout(y.float().to(device)))
        return x_hat.float().clamp_(0, 1).contiguous()

    def residual_window(self, hyper_around: torch.Tensor, offset: tuple[int, int]):
        """A tile's window for parameters that also depend on decoded latents (vam's residual),
        from the hyper features around it; None where the model has none (tiling.py)."""
        return None

    # -- the hyper-latent z, coded the same way by every model -------------
    def code_hyper_latent(self, z: torch.Tensor) -> tuple[bytes, torch.Tensor, int]:
        """z's rANS string, the decoder's z_hat (parameters must come from that), its checksum."""
        bottleneck = self.entropy_bottleneck
        z_string = bottleneck.compress(z)[0]
        # what decompress would return, without decoding the string again: the symbols compress
        # coded (the same function of z; rANS returns them exactly), dequantised the same way
        medians = bottleneck._get_medians().detach().reshape(1, -1, 1, 1)
        z_hat = bottleneck.dequantize(bottleneck.quantize(z, "symbols", medians), medians)
        return z_string, z_hat, tensor_checksum(z_hat)

    def decode_hyper_latent(self, z_string: bytes, latent_size: tuple[int, int],
                            checksum: int | None = None) -> torch.Tensor:
        """z_hat for a latent of ``latent_size`` (z is 4x smaller each way).

        The checksum is verified before the costly float64 hyper-synthesis, so
        a header that lies about the image size stops here, cheaply.
        """
        z_size = (latent_size[0] // 4, latent_size[1] // 4)
        channels = self.entropy_bottleneck.channels
        z_hat = self.entropy_bottleneck.decompress([memory_safe(z_string, channels * z_size[0] * z_size[1])], z_size)
        verify_checksum(z_hat, checksum, "hyper-latent")
        return z_hat
