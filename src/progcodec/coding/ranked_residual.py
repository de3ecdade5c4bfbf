"""The ranked-residual latent codec of variance-aware masking."""

from __future__ import annotations

import torch
from compressai.entropy_models import GaussianConditional
from torch import nn

from .gaussian import Float64Path, GaussianSymbolCoder, quantize_symbols, ste_round, verify_checksum
from .ranking import DEFAULT_SCHEDULE, chunk_bounds, chunk_positions, rank_elements, top_fraction_mask, validate_schedule


class ResidualParams(nn.Module):
    """(scales, means) of the residual from the hyper features and the decoded base."""

    def __init__(self, latent_channels: int, context_channels: int):
        super().__init__()
        m = latent_channels
        self.net = nn.Sequential(
            nn.Conv2d(context_channels + m, 2 * m, 3, padding=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(2 * m, 2 * m, 3, padding=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(2 * m, 2 * m, 1),
        )

    def forward(self, hyper_features: torch.Tensor, y_hat_base: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([hyper_features, y_hat_base], dim=1))


class RankedResidualLatentCodec(nn.Module):
    """Residual of two latents, ranked by predicted std and sent in chunks.

    Variance-aware masking, Presta et al., "Efficient Progressive Image
    Compression with Variance-aware Masking", WACV 2025::

               y_top ──►(−)──► r ──► rank by σ_r ──► chunk 1 │ chunk 2 │ ... │ chunk K
                         ▲                  ▲               rANS      rANS        rANS
        y_hat_base ──────┤                  │
                         └──► ResidualParams(hyper, y_hat_base) ──► (μ_r, σ_r)

    The decoder knows every residual element's (μ_r, σ_r) before it reads a
    residual bit, so it derives the same ranking and knows which elements each
    chunk holds. Elements whose chunk was not received are replaced by μ_r.
    Rate Enhancement Modules (a later issue) slot in between chunks: they
    would refine (μ_r, σ_r) of the elements still to come from those decoded.
    """

    def __init__(self, latent_channels: int, context_channels: int, schedule=DEFAULT_SCHEDULE):
        super().__init__()
        self.schedule = validate_schedule(schedule)
        self.residual_params = ResidualParams(latent_channels, context_channels)
        self.gaussian_conditional = GaussianConditional(None)
        self._params64: Float64Path | None = None
        self._coder: GaussianSymbolCoder | None = None

    @property
    def num_chunks(self) -> int:
        return len(self.schedule)

    # -- training -------------------------------------------------------
    def forward(self, y_top, y_hat_base, hyper_features, fraction):
        """Likelihoods of the whole residual and the top latent at ``fraction``.

        ``fraction`` (B,) is the share of ranked residual elements received;
        the rest take their predicted mean, as at decode time.
        """
        scales, means = self.residual_params(hyper_features, y_hat_base).chunk(2, 1)
        residual = y_top - y_hat_base
        _, likelihoods = self.gaussian_conditional(residual, scales, means=means)
        r_hat = ste_round(residual, means)
        mask = top_fraction_mask(scales, fraction)
        return {
            "likelihoods": likelihoods,
            "mask": mask,
            "y_hat_top": y_hat_base + mask * r_hat + (1 - mask) * means,
            "y_mean_top": y_hat_base + means,
        }

    def mean_fill(self, y_base_mean, hyper_features):
        """The top latent when nothing but z is known: the base at its predicted
        mean, and the residual at the mean predicted from that (training)."""
        _, means = self.residual_params(hyper_features, y_base_mean).chunk(2, 1)
        return y_base_mean + means

    # -- coding ---------------------------------------------------------
    def prepare_inference(self) -> None:
        """Freeze the float64 parameter path and the CDF tables for coding."""
        self._params64 = Float64Path(self.residual_params)
        self._coder = GaussianSymbolCoder(self.gaussian_conditional)

    def _means_and_indexes64(self, y_hat_base, hyper_features):
        if self._params64 is None:
            self.prepare_inference()
        scales, means = self._params64(hyper_features, y_hat_base).chunk(2, 1)
        return means, self._coder.indexes(scales)

    def _parameters64(self, y_hat_base, hyper_features, schedule=None):
        means, indexes = self._means_and_indexes64(y_hat_base, hyper_features)
        return means, indexes, chunk_positions(indexes, schedule or self.schedule)

    def mean_fill64(self, y_base_mean, hyper_features):
        """:meth:`mean_fill` on the float64 path (decoding the preview layer)."""
        if self._params64 is None:
            self.prepare_inference()
        _, means = self._params64(hyper_features, y_base_mean).chunk(2, 1)
        return y_base_mean + means

    def compress(self, y_top, y_hat_base, hyper_features, schedule=None):
        """One rANS string per chunk of ``schedule`` (default: the trained one).
        ``y_hat_base``/``hyper_features`` are float64."""
        ranked = self.rank(y_top, y_hat_base, hyper_features)
        bounds = chunk_bounds(ranked["n"], schedule or self.schedule)
        return {"strings": [self.encode_range(ranked, a, b) for a, b in bounds], "indexes": ranked["indexes"]}

    def rank(self, y_top, y_hat_base, hyper_features) -> dict:
        """The residual's symbols and scale indexes in ranked order (most uncertain first)."""
        means, indexes = self._means_and_indexes64(y_hat_base, hyper_features)
        order = rank_elements(indexes)
        symbols = quantize_symbols(y_top - y_hat_base, means).reshape(-1)[order]
        return {"symbols": symbols.int().tolist(), "indexes_ranked": indexes.reshape(-1)[order].tolist(),
                "indexes": indexes, "n": order.numel()}

    def encode_range(self, ranked: dict, start: int, end: int) -> bytes:
        """The chunk of ranked elements [start, end) as one rANS string."""
        return self._coder.encode_lists(ranked["symbols"][start:end], ranked["indexes_ranked"][start:end])

    def decompress(self, strings, y_hat_base, hyper_features, checksum=None, schedule=None):
        """``r_hat`` from the first ``len(strings)`` chunks, mean-filled elsewhere.

        ``checksum`` is the encoder's CRC of the residual index map; on a
        mismatch no residual bit is read.
        """
        state = self.start_decoding(y_hat_base, hyper_features, checksum, schedule)
        for string in strings:
            self.decode_chunk(state, string)
        return {"r_hat": state["r_hat"].reshape(state["shape"]), "indexes": state["indexes"]}

    def start_decoding(self, y_hat_base, hyper_features, checksum=None, schedule=None) -> dict:
        """Decoder state before any chunk: the residual at its predicted mean."""
        means, indexes, chunks = self._parameters64(y_hat_base, hyper_features, schedule)
        verify_checksum(indexes, checksum, "residual scale indexes")
        flat_means = means.reshape(-1)
        return {"r_hat": flat_means.clone(), "means": flat_means, "indexes": indexes,
                "flat_indexes": indexes.reshape(-1), "chunks": chunks, "received": 0, "shape": means.shape}

    def decode_chunk(self, state: dict, string: bytes) -> None:
        """Entropy-decode the next chunk into ``state["r_hat"]``."""
        pos = state["chunks"][state["received"]]
        state["r_hat"][pos] = self._coder.decode(string, state["flat_indexes"][pos]).to(state["r_hat"]) \
            + state["means"][pos]
        state["received"] += 1
