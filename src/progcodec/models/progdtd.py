"""ProgDTD: a scale hyperprior made progressive by double tail drop.

Hojjat, Haberer, Landsiedel, "ProgDTD: Progressive Learned Image Compression
with Double-Tail-Drop Training", CVPRW 2023. One model, top to bottom: the
transforms, the entropy models, the tail-drop training loss, the layered
bitstream.

    x ─► g_a ─► y ─────────────► GaussianConditional(0, σ) ─► y[:, groups]  (layers 1..K)
              └─► h_a(|y|) ─► z ─► EntropyBottleneck ───────► z             (layer 1)
                                 └─► h_s ─► σ

Training draws a channel count k per image and zeroes y's channels past k and
z's past k·N/M (the "double tail"), so channels sort themselves by importance
and any channel prefix decodes. No extra parameters.

Bitstream choice: z is sent whole in layer 1 (it costs ~1-2% of the file),
so every y group is coded with the scales that full-z training (k = M) taught;
layer L then holds y's channel group L. Decoding L layers zero-fills the
later channels, exactly as in training.

Rate targets need finer steps than a channel (an early channel of a Kodak
image costs ~500 bytes): a *fine ladder* counts channels in units of 2**-16,
and the channel a layer ends inside sends its elements most uncertain first
(integer scale index, ties by position), as variance-aware masking ranks its
residual. Elements not received stay zero, the mean of every y element here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._compressai import EntropyBottleneck, GaussianConditional
from ..coding.budgets import fit_ranges
from ..coding.gaussian import GaussianSymbolCoder, ste_round, tensor_checksum, verify_checksum
from ..coding.integer_path import IntegerNetwork, exact_path, quantize
from ..container import FINE_CHANNEL_UNIT, pack_strings, unpack_strings
from ..precision import coding_autocast, transform_precision
from .base import ProgressiveModel
from .transforms import GDN, conv, deconv, synthesis

# Share of y's channels at the end of each layer: fine steps first, where each
# channel matters most (for M=192: 8, 16, 24, 32, 48, 64, 96, 128, 160, 192).
DEFAULT_GROUP_FRACTIONS = (1 / 24, 1 / 12, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 5 / 6, 1.0)


class ProgDTD(ProgressiveModel):
    name = "progdtd"
    num_checksums = 2  # z_hat, then the y scale-index map

    def __init__(self, N: int = 128, M: int = 192, channel_groups=None,
                 lambda_top: float = 0.0483, lambda_base: float | None = None, integer_params: bool = False):
        """``lambda_top`` is ProgDTD's single λ; ``lambda_base`` is accepted so that
        every model trains from the same command, and unused (one λ for all prefixes)."""
        super().__init__()
        if channel_groups is None:
            channel_groups = sorted({max(1, round(f * M)) for f in DEFAULT_GROUP_FRACTIONS})
        groups = tuple(int(c) for c in channel_groups)
        # Groups may stop short of M: channels past the last group are never
        # sent (zero-filled, as in training when they were dropped).
        if groups[-1] > M or any(b <= a for a, b in zip(groups, groups[1:])) or groups[0] < 1:
            raise ValueError(f"channel groups must rise strictly, from 1 up to at most M={M}")
        self.N, self.M, self.channel_groups = N, M, groups
        self.lambda_top = lambda_top
        self.g_a = nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))
        self.g_s = synthesis(N, M)
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.ReLU(inplace=True), conv(N, N), nn.ReLU(inplace=True),
                                 conv(N, N))
        self.h_s = nn.Sequential(deconv(N, N), nn.ReLU(inplace=True), deconv(N, N), nn.ReLU(inplace=True),
                                 conv(N, M, 3, 1), nn.ReLU(inplace=True))
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        # h_s in integer arithmetic (coding/integer_path.py), from the weights; None: the float64 path
        self.h_s_integer = IntegerNetwork.like(self.h_s) if integer_params else None
        self._h_s_exact = None
        self._coder: GaussianSymbolCoder | None = None
        self.transform_dtype: torch.dtype | None = None  # training: autocast g_a/g_s

    @property
    def num_layers(self) -> int:
        return len(self.channel_groups)

    def config(self) -> dict:
        return {"N": self.N, "M": self.M, "channel_groups": list(self.channel_groups),
                "lambda_top": self.lambda_top, **({"integer_params": True} if self.has_integer_params else {})}

    @property
    def has_integer_params(self) -> bool:
        """Whether the scales are coded on the integer path (files of format 9)."""
        return self.h_s_integer is not None

    # -- training: double tail drop -------------------------------------
    def _keep_masks(self, batch: int, device, keep: torch.Tensor | None):
        """Per-image channel masks for y and z; ``keep`` is y's channel count per image."""
        if keep is None:
            choices = torch.tensor(self.channel_groups, device=device)
            keep = choices[torch.randint(len(choices), (batch,), device=device)]
        keep_z = torch.ceil(keep.float() * self.N / self.M)
        y_mask = (torch.arange(self.M, device=device)[None] < keep[:, None]).float()[..., None, None]
        z_mask = (torch.arange(self.N, device=device)[None] < keep_z[:, None]).float()[..., None, None]
        return y_mask, z_mask

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None, fraction=None) -> dict:
        """R + λ·D of a random channel prefix per image (``fraction=1`` keeps all)."""
        batch, _, height, width = x.shape
        pixels = batch * height * width
        if fraction is not None:
            keep = torch.round(fraction * self.M).clamp(1, self.M).long()
        y_mask, z_mask = self._keep_masks(batch, x.device, keep)

        with transform_precision(self.transform_dtype, x.device):
            y = self.g_a(x).float()
        z = self.h_a(torch.abs(y))
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales = self.h_s(z_hat * z_mask)
        _, y_likelihoods = self.gaussian_conditional(y, scales)
        with transform_precision(self.transform_dtype, x.device):
            x_hat = self.g_s(ste_round(y) * y_mask).float()

        bits = -(torch.log2(z_likelihoods) * z_mask).sum() - (torch.log2(y_likelihoods) * y_mask).sum()
        bpp = bits / pixels
        mse = ((x_hat - x) ** 2).mean()
        full_bpp = (-torch.log2(z_likelihoods).sum() - torch.log2(y_likelihoods).sum()) / pixels
        return {
            "loss": bpp + self.lambda_top * 255**2 * mse,
            "aux_loss": self.aux_loss(),
            "bpp_base": bpp.detach(),
            "bpp_full": full_bpp.detach(),
            "mse_base": mse.detach(),
            "mse_q": mse.detach(),
            "x_hat": x_hat,
        }

    # -- coding ----------------------------------------------------------
    @torch.no_grad()
    def calibrate_integer_params(self, images: list[torch.Tensor]) -> None:
        """Make h_s's integer version from the trained weights, its activation ranges measured on
        ``images`` (a few crops, never Kodak); it travels in the weights file from then on."""
        device = next(self.parameters()).device
        z_hats = [self.code_hyper_latent(self.hyper_analysis(self.analysis(x.to(device))))[1] for x in images]
        self.h_s_integer = quantize(self.h_s, z_hats)
        self.prepare_inference()

    def prepare_inference(self) -> None:
        self._h_s_exact = exact_path(self.h_s, self.h_s_integer)
        self._coder = GaussianSymbolCoder(self.gaussian_conditional)

    def hyper_analysis(self, y: torch.Tensor) -> torch.Tensor:
        """z from the output of :meth:`analysis`."""
        return self.h_a(torch.abs(y))

    def hyper_parameters(self, z_hat: torch.Tensor) -> torch.Tensor:
        """The predicted scales of y (float64 on the exact path)."""
        if self._h_s_exact is None:
            self.prepare_inference()
        return self._h_s_exact(z_hat)

    def _indexes(self, z_hat: torch.Tensor, hyper: torch.Tensor | None = None) -> torch.Tensor:
        hyper = self.hyper_parameters(z_hat) if hyper is None else hyper
        return self._coder.indexes(hyper)

    def first_layer_z(self, layer: bytes, **layout) -> bytes:
        """z's string in a file's first layer."""
        return unpack_strings(layer, 2)[0]

    # -- ladders: the channel count at the end of each layer ---------------
    def ladder(self, num_layers: int | None = None, preview: bool = False) -> tuple[int, ...]:
        """Channel counts for ``num_layers`` layers (None: the trained groups), up to the
        trained maximum, spaced like the trained groups (fine first)."""
        if preview:
            raise ValueError("progdtd has no preview layer (its z alone carries no image)")
        if num_layers is None:
            return self.channel_groups
        top = self.channel_groups[-1]
        if not 1 <= int(num_layers) <= min(64, top):
            raise ValueError(f"a progdtd ladder has 1 to {min(64, top)} layers, not {num_layers}")
        n = int(num_layers)
        # geometric from 1/24 of the channels to all of them, made strictly rising within [1, top]
        counts = [round(top * (1 / 24) ** (1 - k / (n - 1))) if n > 1 else top for k in range(n)]
        counts[-1] = top
        for i in range(n - 2, -1, -1):
            counts[i] = min(counts[i], counts[i + 1] - 1)
        for i in range(n):
            counts[i] = max(counts[i], i + 1 if i == 0 else counts[i - 1] + 1)
        return tuple(self.groups(counts))

    def groups(self, ladder=(), fine_ladder: bool = False) -> tuple[int, ...]:
        """Channel counts from a header ladder (in units of FINE_CHANNEL_UNIT for a fine one);
        () is the trained groups (version-1 files)."""
        if not ladder:
            if fine_ladder:
                raise ValueError("a fine ladder is always written out")
            return self.channel_groups
        ladder = tuple(int(c) for c in ladder)
        top = self.M * (FINE_CHANNEL_UNIT if fine_ladder else 1)
        if ladder[0] < 1 or ladder[-1] > top or any(b <= a for a, b in zip(ladder, ladder[1:])):
            raise ValueError(f"channel counts must rise strictly, from 1 up to at most M={self.M}")
        return ladder

    def layer_count(self, ladder=(), preview: bool = False, base_chunk: bool = False,
                    fine_ladder: bool = False) -> int:
        if preview or base_chunk:
            raise ValueError("progdtd files have neither a preview layer nor a base chunk")
        return len(self.groups(ladder, fine_ladder))

    def _element_bounds(self, per_channel: int, ladder=(), fine_ladder: bool = False) -> list[tuple[int, int]]:
        """[start, end) of each layer in the element order of :meth:`_element_order`."""
        groups = self.groups(ladder, fine_ladder)
        ends = [_fine_end(v, per_channel) for v in groups] if fine_ladder else [c * per_channel for c in groups]
        return list(zip([0] + ends[:-1], ends))

    @staticmethod
    def _element_order(indexes: torch.Tensor, fine_ladder: bool) -> torch.Tensor:
        """Flat positions in sending order: channel by channel; inside each channel, in
        memory order, or (fine ladder) most uncertain first, ties by position."""
        channels = indexes.shape[1]
        per_channel = indexes[0, 0].numel()
        if not fine_ladder:
            return torch.arange(channels * per_channel)
        flat = indexes.reshape(channels, per_channel).to(torch.int64)
        within = torch.sort(-flat, dim=1, stable=True).indices
        return (within + torch.arange(channels)[:, None] * per_channel).reshape(-1)

    @torch.no_grad()
    def compress(self, x: torch.Tensor, ladder=(), preview: bool = False, rem: bool = False) -> dict:
        return self.compress_latents(self.analysis(x), ladder, preview, rem)

    @torch.no_grad()
    def compress_latents(self, y: torch.Tensor, ladder=(), preview: bool = False, rem: bool = False,
                         coded_z=None, context=None) -> dict:
        """:meth:`compress` from the output of :meth:`analysis`; a tile (tiling.py) also brings
        its coded z (string, ẑ, checksum) and its context: scales made with its neighbours' ẑ."""
        if preview:
            raise ValueError("progdtd has no preview layer")
        if rem:
            raise ValueError("progdtd has no Rate Enhancement Modules")
        a = self._analyse(y, fine_ladder=False, coded_z=coded_z, hyper=context and context["hyper"])
        strings = [a["encode_range"](start, end) for start, end in self._element_bounds(a["per_channel"], ladder)]
        return {"layers": [pack_strings([a["z"], strings[0]])] + strings[1:], "checksums": a["checksums"]}

    @torch.no_grad()
    def compress_to_budgets(self, x: torch.Tensor, budgets: list[int], preview: bool = False,
                            rem: bool = False) -> dict:
        """Layers whose cumulative payload bytes land on ``budgets``: layer 1 holds z and as
        many channels (and ranked elements of the next) as its budget allows, each later
        layer the most that fit, by bisection over real rANS strings. Returns the layers,
        checksums and the fine ladder that reproduces them."""
        if preview:
            raise ValueError("progdtd has no preview layer")
        if rem:
            raise ValueError("progdtd has no Rate Enhancement Modules")
        a = self._analyse(self.analysis(x), fine_ladder=True)
        per_channel = a["per_channel"]
        fixed = len(a["z"]) + len(pack_strings([b"", b""]))
        ends, strings = fit_ranges(a["encode_range"], self.channel_groups[-1] * per_channel, fixed, budgets)
        ladder = tuple(_fine_value(e, per_channel) for e in ends)
        return {"layers": [pack_strings([a["z"], strings[0]])] + strings[1:], "checksums": a["checksums"],
                "ladder": ladder, "fine_ladder": True}

    @torch.no_grad()
    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """The latent y: what the coder starts from."""
        with coding_autocast(x.device):
            y = self.g_a(self.in_transform_layout(x))
        return y.float().contiguous()

    def _analyse(self, y: torch.Tensor, fine_ladder: bool, coded_z=None, hyper=None) -> dict:
        """z coded, y's symbols and scale indexes in sending order, and a coder of any range of them."""
        z_string, z_hat, z_check = coded_z or self.code_hyper_latent(self.hyper_analysis(y))
        indexes = self._indexes(z_hat, hyper)
        order = self._element_order(indexes, fine_ladder)
        symbols = torch.round(y.double().cpu()).reshape(-1)[order].numpy().astype(np.int64)
        ranked_indexes = indexes.reshape(-1)[order].cpu().numpy()

        def encode_range(start: int, end: int) -> bytes:
            return self._coder.encode_arrays(symbols[start:end], ranked_indexes[start:end])

        return {"z": z_string, "encode_range": encode_range, "per_channel": indexes[0, 0].numel(),
                "checksums": [z_check, tensor_checksum(indexes)]}

    def decoder(self, latent_size, checksums=None, ladder=(), preview: bool = False,
                base_chunk: bool = False, fine_ladder: bool = False, rem: bool = False,
                context=None, grouped: bool = True) -> "ProgDTDDecoder":
        """``context``: a tile's, see :meth:`compress_latents` (tiling.py). ``grouped``: symbols
        grouped by table (format 10), else one by one (earlier formats)."""
        self.layer_count(ladder, preview, base_chunk, fine_ladder)   # rejects layouts progdtd never writes
        if rem:
            raise ValueError("progdtd has no Rate Enhancement Modules")
        return ProgDTDDecoder(self, latent_size, checksums, ladder, fine_ladder, context and context["hyper"],
                              grouped)


def _fine_end(value: int, per_channel: int) -> int:
    """Elements sent up to a fine ladder value (channels in units of FINE_CHANNEL_UNIT), rounded half up."""
    return (value * per_channel + FINE_CHANNEL_UNIT // 2) // FINE_CHANNEL_UNIT


def _fine_value(end: int, per_channel: int) -> int:
    """The fine ladder value whose :func:`_fine_end` is exactly ``end``."""
    value = (2 * end * FINE_CHANNEL_UNIT + per_channel) // (2 * per_channel)
    if _fine_end(value, per_channel) != end:
        raise ValueError(f"{per_channel} elements a channel are too many for a fine ladder; "
                         "rate targets take images of up to 2**16 latent elements a channel")
    return value


class ProgDTDDecoder:
    """Decoder state of one file: each layer's channel group is entropy-decoded once;
    ``reconstruct`` runs only the synthesis (unsent channels stay zero, as in training)."""

    def __init__(self, model: ProgDTD, latent_size, checksums=None, ladder=(), fine_ladder: bool = False,
                 hyper=None, grouped=True):
        self.model, self.latent_size, self.fine_ladder = model, latent_size, fine_ladder
        self.grouped = grouped
        self.given_hyper = hyper      # a tile's: z was decoded and checked by the caller
        self.z_check, self.y_check = checksums if checksums else (None, None)
        self.bounds = model._element_bounds(latent_size[0] * latent_size[1], ladder, fine_ladder)
        self.layers = 0
        self.indexes = self.y_hat = self.order = None

    @torch.no_grad()
    def add(self, layer: bytes) -> None:
        m = self.model
        if self.layers == 0:
            z_string, layer = unpack_strings(layer, 2)
            z_hat = None if self.given_hyper is not None else m.decode_hyper_latent(z_string, self.latent_size,
                                                                                   self.z_check)
            self.indexes = m._indexes(z_hat, self.given_hyper)
            verify_checksum(self.indexes, self.y_check, "y scale indexes")
            self.y_hat = torch.zeros(self.indexes.shape, dtype=torch.float64)
            self.order = m._element_order(self.indexes, self.fine_ladder)
        a, b = self.bounds[self.layers]
        positions = self.order[a:b]
        self.y_hat.view(-1)[positions] = m._coder.decode(layer, self.indexes.reshape(-1)[positions], self.grouped)
        self.layers += 1

    def latent(self) -> torch.Tensor:
        """The latent the synthesis takes, from the layers added so far (float64, CPU)."""
        return self.y_hat

    def reconstruct(self) -> torch.Tensor:
        return self.model.synthesize(self.y_hat)
