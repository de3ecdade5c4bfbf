"""Variance-aware masking on a mean-scale hyperprior (Presta et al., WACV 2025).

One model, top to bottom: the transforms, the entropy models, the
rate-distortion loss, and the layered bitstream.

    x ─► g_a ─┬─► y_base ─────────────────► GaussianConditional(μ_b, σ_b) ─► layer 1
              └─► y_top ─► r = y_top − ŷ_base ─► ranked chunks ────────────► layers 2..K
    (y_base, y_top) ─► h_a ─► z ─► EntropyBottleneck ─────────────────────► layer 1
                                 └► h_s ─► (μ_b, σ_b) and, with ŷ_base, (μ_r, σ_r)

    decode(L layers):  x̂ = g_s(ŷ_base + r̂),  r̂ = received chunks, μ_r elsewhere
"""

from __future__ import annotations

import torch

from .._compressai import EntropyBottleneck, GaussianConditional
from ..coding.budgets import fit_ranges
from ..coding.gaussian import (
    Float32Path, GaussianSymbolCoder, quantize_symbols, tensor_checksum, ste_round, verify_checksum,
)
from ..coding.integer_path import IntegerNetwork, exact_path, quantize
from ..coding.ranked_residual import RankedResidualLatentCodec
from ..coding.ladder import DEFAULT_SCHEDULE, even_quality_schedule, ladder_to_schedule, schedule_to_ladder, share_of
from ..coding.ranking import bounds_of, chunk_bounds, top_fraction_mask
from ..container import pack_strings, unpack_strings
from ..precision import coding_autocast, transform_precision
from .base import ProgressiveModel, bits
from .transforms import analysis_trunk, conv, hyper_analysis, hyper_synthesis, synthesis


# New files: a preview layer (z alone), the base, then 14 residual chunks.
DEFAULT_LAYERS = 16


class VarianceAwareMasking(ProgressiveModel):
    name = "vam"
    num_checksums = 3  # z_hat, then the base and residual scale-index maps

    def __init__(self, N: int = 128, M: int = 192, schedule=DEFAULT_SCHEDULE,
                 lambda_base: float = 0.0035, lambda_top: float = 0.0483, lambda_preview: float = 0.0,
                 rem_shares=(), integer_params: bool = False):
        super().__init__()
        self.N, self.M = N, M
        self.lambda_base, self.lambda_top = lambda_base, lambda_top
        # Distortion weight of the preview point (z alone: base and residual at
        # their predicted means); 0 leaves it out of the loss.
        self.lambda_preview = lambda_preview
        # Training sets this to torch.bfloat16 to run g_a/g_s under autocast.
        self.transform_dtype: torch.dtype | None = None
        self.g_a = analysis_trunk(N)
        self.head_base = conv(N, M)
        self.head_top = conv(N, M)
        self.g_s = synthesis(N, M)
        self.h_a = hyper_analysis(2 * M, N)
        self.h_s = hyper_synthesis(N, 2 * M)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        # Rate Enhancement Modules, one per share of the ranked residual (coding/rem.py)
        self.residual = RankedResidualLatentCodec(M, 2 * M, schedule, rem_shares, integer_params)
        # h_s in integer arithmetic (coding/integer_path.py): made from the trained weights by
        # calibrate_integer_params and shipped with them; None: coded on the float64 path
        self.h_s_integer = IntegerNetwork.like(self.h_s) if integer_params else None
        self._h_s_exact = None
        self._base_coder: GaussianSymbolCoder | None = None

    @property
    def num_layers(self) -> int:
        return 1 + self.residual.num_chunks

    def config(self) -> dict:
        return {"N": self.N, "M": self.M, "schedule": list(self.residual.schedule),
                "lambda_base": self.lambda_base, "lambda_top": self.lambda_top,
                "lambda_preview": self.lambda_preview,
                **({"rem_shares": list(self.residual.rem_shares)} if self.residual.rem_shares else {}),
                **({"integer_params": True} if self.has_integer_params else {})}

    @property
    def has_integer_params(self) -> bool:
        """Whether the entropy parameters are coded on the integer path (files of format 9)."""
        return self.h_s_integer is not None

    @property
    def has_rem(self) -> bool:
        return bool(self.residual.rem_shares)

    def checksum_count(self, rem: bool = False) -> int:
        """z, base and residual index maps, then one refined map per REM (files written with REMs)."""
        return self.num_checksums + (len(self.residual.rem_shares) if rem else 0)

    # -- training: the rate-distortion loss ------------------------------
    def sample_fraction(self, batch: int, device) -> torch.Tensor:
        """Share of the residual received: U(0, 1), and the full top 1 time in 4."""
        fraction = torch.rand(batch, device=device)
        return torch.where(torch.rand(batch, device=device) < 0.25, torch.ones_like(fraction), fraction)

    def forward(self, x: torch.Tensor, fraction: torch.Tensor | None = None) -> dict:
        """Two operating points per image: the base (mean-filled top) and a
        random masking quality q, each paying its own rate, with a distortion
        weight rising geometrically from ``lambda_base`` (q=0) to ``lambda_top`` (q=1).
        With ``training_stage == "rem"``, the REMs' rate loss instead (:meth:`forward_rem`)."""
        if getattr(self, "training_stage", "full") == "rem":
            return self.forward_rem(x)
        batch, _, height, width = x.shape
        pixels = batch * height * width
        if fraction is None:
            fraction = self.sample_fraction(batch, x.device)

        with transform_precision(self.transform_dtype, x.device):
            features = self.g_a(x)
            y_base, y_top = self.head_base(features).float(), self.head_top(features).float()
        z = self.h_a(torch.cat([y_base, y_top], 1))
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        hyper = self.h_s(z_hat)
        scales_b, means_b = hyper.chunk(2, 1)
        _, base_likelihoods = self.gaussian_conditional(y_base, scales_b, means=means_b)
        y_hat_base = ste_round(y_base, means_b)
        res = self.residual(y_top, y_hat_base, hyper, fraction)

        latents = [res["y_mean_top"], res["y_hat_top"]]
        # The preview point is priced on a quarter of the batch: one more
        # synthesis on every image would cost a third more per step.
        n_preview = max(1, batch // 4) if self.lambda_preview > 0 else 0
        if n_preview:
            latents.append(self.residual.mean_fill(means_b[:n_preview], hyper[:n_preview]))
        with transform_precision(self.transform_dtype, x.device):
            x_hats = [self.g_s(y).float() for y in latents]
        x_base, x_q = x_hats[0], x_hats[1]
        mse_base = ((x_base - x) ** 2).mean(dim=(1, 2, 3))
        mse_q = ((x_q - x) ** 2).mean(dim=(1, 2, 3))
        lam_q = self.lambda_base * (self.lambda_top / self.lambda_base) ** fraction
        mse_preview = ((x_hats[2] - x[:n_preview]) ** 2).mean() if n_preview else x.new_zeros(())

        bpp_base = (bits(z_likelihoods) + bits(base_likelihoods)) / pixels
        residual_bits = -(torch.log2(res["likelihoods"]) * res["mask"]).sum()
        bpp_q = bpp_base + residual_bits / pixels
        bpp_full = bpp_base + bits(res["likelihoods"]) / pixels
        distortion = 255**2 * ((self.lambda_base * mse_base + lam_q * mse_q).mean()
                               + self.lambda_preview * mse_preview)
        return {
            "loss": bpp_base + bpp_q + distortion,
            "aux_loss": self.aux_loss(),
            "bpp_base": bpp_base.detach(),
            "bpp_full": bpp_full.detach(),
            "mse_base": mse_base.mean().detach(),
            "mse_q": mse_q.mean().detach(),
            "mse_preview": mse_preview.detach(),
            "x_hat": x_q,
        }

    @torch.no_grad()
    def rem_statistics(self, x: torch.Tensor) -> dict:
        """What the REMs learn from, from the frozen backbone: the decoded base, the residual
        and its hyperprior parameters. Training only the REMs, these never change for a crop,
        so a trainer may compute them once (train/rem_cache.py)."""
        with transform_precision(self.transform_dtype, x.device):
            features = self.g_a(x)
            y_base, y_top = self.head_base(features).float(), self.head_top(features).float()
        z_hat, _ = self.entropy_bottleneck(self.h_a(torch.cat([y_base, y_top], 1)), training=False)
        hyper = self.h_s(z_hat)
        scales_b, means_b = hyper.chunk(2, 1)
        y_hat_base = torch.round(y_base - means_b) + means_b
        scales, means = self.residual.residual_params(hyper, y_hat_base).chunk(2, 1)
        return {"y_hat_base": y_hat_base, "means": means, "scales": scales, "residual": y_top - y_hat_base}

    def forward_rem(self, x) -> dict:
        """Rate of the residual still to come at each REM point, coded with the REM's refined
        parameters (the paper's rate-only loss); everything but the REMs is frozen and runs
        without gradients. ``bpp_base`` is the same rate with the hyperprior's parameters.
        ``x`` is a batch of images or their :meth:`rem_statistics` (rate loss only).

        With ``rem_loss == "rd"`` the refined mean fill is priced too: per REM point, one
        layer further on (a share drawn between the point and the next one), decoded as it
        would be (hyperprior's parameters before the point, refined after it, refined means
        where nothing arrived) and weighted like the backbone's loss at that share. The
        gradient passes through the frozen synthesis. In eval mode the shares come from a
        fixed seed, so validation is repeatable."""
        rd = getattr(self, "rem_loss", "rate") == "rd"
        if isinstance(x, dict):
            if rd:
                raise ValueError("the rd REM loss needs the images, not only their statistics")
            stats = x
        else:
            stats = self.rem_statistics(x)
        y_hat_base, means, scales, residual = (stats[k] for k in ("y_hat_base", "means", "scales", "residual"))
        batch = residual.shape[0]
        pixels = batch * residual.shape[2] * residual.shape[3] * self.latent_stride**2
        with torch.no_grad():
            received_all = torch.round(residual - means)
        coder = self.residual.gaussian_conditional
        bits, bits_before = residual.new_zeros(()), residual.new_zeros(())
        distortion, mse_sum = residual.new_zeros(()), residual.new_zeros(())
        shares = self.residual.rem_shares
        generator = None if self.training else torch.Generator(device=residual.device).manual_seed(0)
        for j, (share, rem) in enumerate(zip(shares, self.residual.rems)):
            mask = top_fraction_mask(scales, torch.full((batch,), share, device=residual.device))
            refined_means, refined_scales = rem(y_hat_base, means, scales, mask * received_all, mask)
            # the symbols as coded: rounded around the refined mean (straight-through), not the
            # noise proxy, whose rate does not see where the mean moves the rounding
            symbols = ste_round(residual - refined_means)
            likelihoods = coder.likelihood_lower_bound(coder._likelihood(symbols, refined_scales))
            bits = bits - (torch.log2(likelihoods) * (1 - mask)).sum()
            with torch.no_grad():
                before = coder.likelihood_lower_bound(coder._likelihood(torch.round(residual - means), scales))
                bits_before = bits_before - (torch.log2(before) * (1 - mask)).sum()
            if rd:
                end = shares[j + 1] if j + 1 < len(shares) else 1.0
                fraction = share + (end - share) * torch.rand(batch, device=residual.device, generator=generator)
                later = top_fraction_mask(scales, fraction) - mask
                r_hat = (mask * (received_all + means) + later * (symbols + refined_means)
                         + (1 - mask - later) * refined_means)
                with transform_precision(self.transform_dtype, x.device):
                    x_hat = self.g_s(y_hat_base + r_hat).float()
                mse = ((x_hat - x) ** 2).mean(dim=(1, 2, 3))
                lam = self.lambda_base * (self.lambda_top / self.lambda_base) ** fraction
                distortion = distortion + 255**2 * (lam * mse).mean()
                mse_sum = mse_sum + mse.mean().detach()
        out = {"loss": bits / pixels + distortion, "aux_loss": residual.new_zeros(()),
               "bpp_full": (bits / pixels).detach(), "bpp_base": bits_before / pixels, "x_hat": None}
        if rd:
            out["mse_q"] = mse_sum / len(shares)
        return out

    # -- coding ----------------------------------------------------------
    @torch.no_grad()
    def calibrate_integer_params(self, images: list[torch.Tensor]) -> None:
        """Make the integer versions of h_s and the residual's parameter network from the trained
        weights, their activation ranges measured on ``images`` (a few crops, never Kodak); they
        travel in the weights file from then on (config ``integer_params``)."""
        self.h_s_integer = self.residual.residual_params_integer = None
        self.prepare_inference()          # the float64 path: what the integer one approximates
        z_hats, residual_inputs = [], []
        for x in images:
            latents = self.analysis(x.to(next(self.parameters()).device))
            _, z_hat, _ = self.code_hyper_latent(self.h_a(latents))
            hyper, means_b, _ = self._base_parameters(z_hat)
            y_hat_base = quantize_symbols(latents.chunk(2, 1)[0], means_b) + means_b
            z_hats.append(z_hat)
            residual_inputs.append(torch.cat([hyper, y_hat_base], 1))
        self.h_s_integer = quantize(self.h_s, z_hats)
        self.residual.residual_params_integer = quantize(self.residual.residual_params.net, residual_inputs)
        self.prepare_inference()

    def prepare_inference(self) -> None:
        self._h_s_exact = exact_path(self.h_s, self.h_s_integer)
        self._base_coder = GaussianSymbolCoder(self.gaussian_conditional)
        self.residual.prepare_inference()

    @torch.no_grad()
    def hyper_analysis(self, latents: torch.Tensor) -> torch.Tensor:
        """z from the output of :meth:`analysis`. The encoder alone runs it and z is sent, so it
        may run in bfloat16 like the analysis (``coding_precision``)."""
        with coding_autocast(latents.device):
            return self.h_a(latents).float()

    def hyper_parameters(self, z_hat: torch.Tensor) -> torch.Tensor:
        """The hyper-synthesis features at the latent's resolution (float64 on the exact path):
        everything the entropy parameters are derived from besides ŷ_base."""
        if self._h_s_exact is None:
            self.prepare_inference()
        return self._h_s_exact(z_hat)

    def residual_window(self, hyper_around: torch.Tensor, offset: tuple[int, int]):
        """(ŷ_base stand-in, hyper features, offset): the residual parameters of a tile's edge
        see its neighbours' base at its predicted mean, which both sides know."""
        return hyper_around.chunk(2, 1)[1], hyper_around, offset

    def approximate_hyper_parameters(self, z_hat: torch.Tensor) -> torch.Tensor:
        """:meth:`hyper_parameters` on the float32 hyper-synthesis: for the preview's mean fill,
        which codes no symbol."""
        return Float32Path(self.h_s)(z_hat)

    def _base_parameters(self, z_hat: torch.Tensor, hyper: torch.Tensor | None = None):
        if self._h_s_exact is None:
            self.prepare_inference()
        hyper = self.hyper_parameters(z_hat) if hyper is None else hyper
        scales_b, means_b = hyper.chunk(2, 1)
        return hyper, means_b, self._base_coder.indexes(scales_b)

    # -- ladders: which residual shares end each layer ---------------------
    def ladder(self, num_layers: int | None = None, preview: bool = True) -> tuple[int, ...]:
        """The header ladder for a file of ``num_layers`` layers (None: the default,
        DEFAULT_LAYERS), chunks spaced for similar quality steps."""
        num_layers = DEFAULT_LAYERS if num_layers is None else int(num_layers)
        chunks = num_layers - 1 - int(preview)
        if chunks < 1 or num_layers > 64:
            low = 3 if preview else 2
            raise ValueError(f"a vam ladder has {low} to 64 layers{' with a preview layer' if preview else ''}, "
                             f"not {num_layers}")
        return schedule_to_ladder(even_quality_schedule(chunks))

    def schedule(self, ladder=()) -> tuple[float, ...]:
        """Residual shares from a header ladder; () is the trained default (version-1 files)."""
        return self.residual.schedule if not ladder else ladder_to_schedule(ladder)

    def layer_count(self, ladder=(), preview: bool = False, base_chunk: bool = False,
                    fine_ladder: bool = False) -> int:
        if fine_ladder:
            raise ValueError("vam ladders are residual shares; fine channel ladders are progdtd's")
        return len(self.schedule(ladder)) + 1 + int(preview) - int(base_chunk)

    # -- coding ----------------------------------------------------------
    @torch.no_grad()
    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """The latents (y_base, y_top) stacked on the channels: what the coder starts from."""
        with coding_autocast(x.device):
            features = self.g_a(self.in_transform_layout(x))
            latents = torch.cat([self.head_base(features), self.head_top(features)], 1)
        return latents.float().contiguous()

    @torch.no_grad()
    def _analyse(self, latents: torch.Tensor, rem: bool = False, coded_z=None, context=None) -> dict:
        """Everything up to the residual's ranking: z and the base coded, the residual ranked.
        A tile brings ``coded_z`` (z's string, ẑ, checksum) and its ``context`` (tiling.py)."""
        y_base, y_top = latents.chunk(2, 1)
        z_string, z_hat, z_check = coded_z or self.code_hyper_latent(self.hyper_analysis(latents))
        hyper, means_b, indexes_b = self._base_parameters(z_hat, context and context["hyper"])
        symbols_b = quantize_symbols(y_base, means_b)
        base_string = self._base_coder.encode(symbols_b, indexes_b)
        ranked = self.residual.rank(y_top.double().cpu(), symbols_b + means_b, hyper, rem=rem,
                                    window=context and context["window"])
        return {"z": z_string, "base": base_string, "ranked": ranked,
                "checksums": [z_check, tensor_checksum(indexes_b), tensor_checksum(ranked["indexes"]),
                              *ranked["rem_checks"]]}

    @staticmethod
    def _layers(a: dict, chunks: list[bytes], preview: bool, base_chunk: bool) -> list[bytes]:
        """The file's layers from ``_analyse``'s z and base strings and the residual chunks."""
        chunks = list(chunks)
        if base_chunk:
            base = [a["base"], chunks.pop(0)]
            return [a["z"], pack_strings(base)] + chunks if preview else [pack_strings([a["z"]] + base)] + chunks
        return ([a["z"], a["base"]] if preview else [pack_strings([a["z"], a["base"]])]) + chunks

    @torch.no_grad()
    def compress(self, x: torch.Tensor, ladder=(), preview: bool = False, rem: bool = False) -> dict:
        """Layers: [z | base] or, with ``preview``, [z], [base]; then the residual chunks
        (with ``rem``, coded with the REMs' refined parameters past their points)."""
        return self.compress_latents(self.analysis(x), ladder, preview, rem)

    @torch.no_grad()
    def compress_latents(self, latents: torch.Tensor, ladder=(), preview: bool = False, rem: bool = False,
                         coded_z=None, context=None) -> dict:
        """:meth:`compress` from the output of :meth:`analysis`; a tile (tiling.py) also brings
        its coded z (string, ẑ, checksum) and its context: hyper features made with its
        neighbours' ẑ, and the window its residual parameters are computed over."""
        a = self._analyse(latents, rem, coded_z, context)
        ends = context and context.get("ends")
        bounds = (chunk_bounds(a["ranked"]["n"], self.schedule(ladder)) if ends is None
                  else bounds_of(ends))
        chunks = [self.residual.encode_range(a["ranked"], start, end) for start, end in bounds]
        return {"layers": self._layers(a, chunks, preview, False), "checksums": a["checksums"]}

    @torch.no_grad()
    def residual_index_map(self, latents: torch.Tensor, coded_z, context=None) -> torch.Tensor:
        """A tile's residual scale indexes (what its ranking is made of), for ranking all tiles as
        one (tiling.py): the encoder's path of :meth:`compress_latents` up to the ranking."""
        y_base = latents.chunk(2, 1)[0]
        hyper, means_b, _ = self._base_parameters(coded_z[1], context and context["hyper"])
        y_hat_base = quantize_symbols(y_base, means_b) + means_b
        return self.residual.index_map(y_hat_base, hyper, context and context["window"])

    @torch.no_grad()
    def compress_to_budgets(self, x: torch.Tensor, budgets: list[int], preview: bool = False,
                            rem: bool = False) -> dict:
        """Layers whose cumulative payload bytes land on ``budgets`` (one per layer after the
        preview): the base layer holds the base and as much of the residual as its budget
        allows, each later layer the most ranked elements that fit (found by bisection over
        real rANS strings). Returns the layers, checksums and the ladder that reproduces them."""
        a = self._analyse(self.analysis(x), rem)
        n = a["ranked"]["n"]
        fixed = len(a["z"]) + len(a["base"]) + len(pack_strings([b""] * (2 if preview else 3)))
        ends, chunks = fit_ranges(lambda start, end: self.residual.encode_range(a["ranked"], start, end),
                                  n, fixed, budgets)
        ladder = tuple(share_of(e, n) for e in ends)
        assert [b for _, b in chunk_bounds(n, ladder_to_schedule(ladder))] == ends
        return {"layers": self._layers(a, chunks, preview, True), "checksums": a["checksums"], "ladder": ladder,
                "base_chunk": True}

    @torch.no_grad()
    def decode_base(self, base_layer: bytes, latent_size: tuple[int, int],
                    z_check: int | None = None, base_check: int | None = None):
        """(hyper features, ŷ_base) from a packed [z | base] layer, both float64 on the CPU."""
        z_string, base_string = unpack_strings(base_layer, 2)
        return self._decode_z_and_base(z_string, base_string, latent_size, z_check, base_check)

    def first_layer_z(self, layer: bytes, preview: bool = False, base_chunk: bool = False) -> bytes:
        """z's string in a file's first layer."""
        return layer if preview else unpack_strings(layer, 3 if base_chunk else 2)[0]

    def _decode_z_and_base(self, z_string, base_string, latent_size, z_check=None, base_check=None, hyper=None,
                           z_hat=None, grouped: bool = True):
        """With ``hyper`` given (a tile), z was decoded and checked by the caller; with ``z_hat``
        given (after a preview layer), it was decoded and checked already. ``grouped``: the base's
        symbols are grouped by table (format 10), else one by one."""
        if hyper is None and z_hat is None:
            z_hat = self.decode_hyper_latent(z_string, latent_size, z_check)
        hyper, means_b, indexes_b = self._base_parameters(z_hat, hyper)
        verify_checksum(indexes_b, base_check, "base scale indexes")
        return hyper, self._base_coder.decode(base_string, indexes_b, grouped) + means_b

    def decoder(self, latent_size, checksums=None, ladder=(), preview: bool = False,
                base_chunk: bool = False, fine_ladder: bool = False, rem: bool = False,
                context=None, grouped: bool = True) -> "VamDecoder":
        """``context``: a tile's, see :meth:`compress_latents` (tiling.py). ``grouped``: symbols
        grouped by table (format 10), else one by one (earlier formats)."""
        self.layer_count(ladder, preview, base_chunk, fine_ladder)   # rejects layouts vam never writes
        if rem and not self.has_rem:
            raise ValueError("the file was written with REMs, and these weights have none")
        return VamDecoder(self, latent_size, checksums, ladder, preview, base_chunk, rem, context, grouped)


class VamDecoder:
    """Decoder state of one file: layers go in one at a time, each entropy-decoded once;
    ``reconstruct`` runs only the synthesis. ``decompress`` is this, all at once.

    From the preview layer alone, the base and the residual take their predicted
    means (the residual's predicted from the mean base).
    """

    def __init__(self, model: VarianceAwareMasking, latent_size, checksums=None, ladder=(), preview=False,
                 base_chunk=False, rem=False, context=None, grouped=True):
        self.model, self.latent_size, self.preview, self.base_chunk = model, latent_size, preview, base_chunk
        self.grouped = grouped
        self.given_hyper = context and context["hyper"]       # a tile's: z is decoded by the caller
        self.window = context and context["window"]
        self.ends = context and context.get("ends")
        checksums = list(checksums) if checksums else [None] * model.checksum_count(rem)
        self.z_check, self.base_check, self.residual_check = checksums[:3]
        self.rem_checks = checksums[3:] if rem else None
        self.schedule = model.schedule(ladder)
        self.layers = 0
        self.hyper = self.y_hat_base = self.residual = self.z_hat = None

    @torch.no_grad()
    def add(self, layer: bytes) -> None:
        m = self.model
        if self.layers == 0 and self.preview:
            self.z_string = layer
            if self.given_hyper is None:
                self.z_hat = m.decode_hyper_latent(layer, self.latent_size, self.z_check)
        elif self.layers == 0 or (self.layers == 1 and self.preview):
            # the base layer: [z |] base [| first chunk], packed unless it is the base alone
            if self.preview:
                z_string = self.z_string
                strings = unpack_strings(layer, 2) if self.base_chunk else [layer]
            else:
                z_string, *strings = unpack_strings(layer, 3 if self.base_chunk else 2)
            # after a preview layer, z is decoded already
            self.hyper, self.y_hat_base = m._decode_z_and_base(z_string, strings[0], self.latent_size,
                                                               self.z_check, self.base_check,
                                                               self.given_hyper, self.z_hat, self.grouped)
            if self.base_chunk:
                self._start_residual()
                m.residual.decode_chunk(self.residual, strings[1])
        else:
            self._start_residual()
            m.residual.decode_chunk(self.residual, layer)
        self.layers += 1

    def _start_residual(self) -> None:
        """The residual's exact parameters and ranking, when its first chunk arrives: a picture
        from the base alone takes the residual's mean on the float32 path, coding nothing."""
        if self.residual is None:
            self.residual = self.model.residual.start_decoding(
                self.y_hat_base, self.hyper, self.residual_check, self.schedule, self.rem_checks, self.window,
                self.ends, self.grouped)

    @torch.no_grad()
    def latent(self) -> torch.Tensor:
        """The latent the synthesis takes, from the layers added so far (float64, CPU)."""
        m = self.model
        if self.y_hat_base is None:   # the preview layer only: the base at its predicted mean
            hyper = self.given_hyper if self.given_hyper is not None else m.approximate_hyper_parameters(self.z_hat)
            return m.residual.mean_fill_fast(hyper.chunk(2, 1)[1], hyper, self.window)
        if self.residual is None:     # the base layer only
            return m.residual.mean_fill_fast(self.y_hat_base, self.hyper, self.window)
        return self.y_hat_base + self.residual["r_hat"].reshape(self.residual["shape"])

    def reconstruct(self) -> torch.Tensor:
        return self.model.synthesize(self.latent())
