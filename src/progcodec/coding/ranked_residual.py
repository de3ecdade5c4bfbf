"""The ranked-residual latent codec of variance-aware masking."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._compressai import GaussianConditional
from .gaussian import Float32Path, Float64Path, GaussianSymbolCoder, ste_round, tensor_checksum, verify_checksum
from .integer_path import IntegerNetwork, exact_path
from .ladder import DEFAULT_SCHEDULE, validate_schedule
from .ranking import bounds_of, chunk_bounds, chunk_positions, rank_elements, top_fraction_mask
from .rem import RateEnhancementModule, rem_positions


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
    Rate Enhancement Modules (``rem_shares``: where in the ranked order each
    runs; see rem.py) refine (μ_r, σ_r) of the elements still to come from
    those decoded.
    """

    def __init__(self, latent_channels: int, context_channels: int, schedule=DEFAULT_SCHEDULE, rem_shares=(),
                 integer_params: bool = False):
        super().__init__()
        self.schedule = validate_schedule(schedule)
        self.rem_shares = tuple(float(s) for s in rem_shares)
        if any(not 0 < s < 1 for s in self.rem_shares):
            raise ValueError("REM shares lie strictly between 0 and 1")
        self.rems = nn.ModuleList(RateEnhancementModule(latent_channels) for _ in self.rem_shares)
        self._rems64: list[Float64Path] = []
        self.residual_params = ResidualParams(latent_channels, context_channels)
        # its integer version (integer_path.py), from the weights; None: coded on the float64 path
        self.residual_params_integer = IntegerNetwork.like(self.residual_params.net) if integer_params else None
        self.gaussian_conditional = GaussianConditional(None)
        self._params_exact = None
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
        """Freeze the exact parameter path (integer or float64) and the CDF tables for coding."""
        self._params_exact = exact_path(self.residual_params, self.residual_params_integer)
        self._rems64 = [Float64Path(rem) for rem in self.rems]
        self._coder = GaussianSymbolCoder(self.gaussian_conditional)

    def _means_and_scales(self, y_hat_base, hyper_features, window=None, exact: bool = True):
        """(μ_r, σ_r). ``window`` (a tile of a tiled file, see tiling.py): (ŷ_base, hyper features)
        over the tile and a margin, and the tile's offset in them; the margin's ŷ_base is its
        predicted mean, which encoder and decoder both know, so the tile's edges see context.
        ``exact=False`` runs the float32 network instead, where the transforms run: for a mean
        fill that no symbol is coded with, float64's agreement between machines buys nothing."""
        if self._params_exact is None:
            self.prepare_inference()
        network = self._params_exact if exact else Float32Path(self.residual_params)
        if window is None:
            scales, means = network(hyper_features, y_hat_base).chunk(2, 1)
            return means, scales
        base, hyper, (top, left) = window
        height, width = y_hat_base.shape[-2:]
        base = base.clone()
        base[..., top:top + height, left:left + width] = y_hat_base
        params = network(hyper, base)[..., top:top + height, left:left + width]
        scales, means = params.contiguous().chunk(2, 1)
        return means.contiguous(), scales.contiguous()

    def _parameters64(self, y_hat_base, hyper_features, schedule=None):
        means, scales = self._means_and_scales(y_hat_base, hyper_features)
        indexes = self._coder.indexes(scales)
        return means, indexes, chunk_positions(indexes, schedule or self.schedule)

    def index_map(self, y_hat_base, hyper_features, window=None) -> torch.Tensor:
        """The residual's scale indexes before any element: what its ranking is made of."""
        _, scales = self._means_and_scales(y_hat_base, hyper_features, window)
        return self._coder.indexes(scales)

    def mean_fill_fast(self, y_base, hyper_features, window=None):
        """ŷ_base + μ_r on the float32 network: the top latent before any residual element
        (decoding the preview or base layer), where no symbol depends on μ_r."""
        means, _ = self._means_and_scales(y_base, hyper_features, window, exact=False)
        return y_base + means

    def _start(self, y_hat_base, hyper_features, rem: bool, window=None) -> dict:
        """What encoder and decoder both hold before any residual element: the hyperprior's
        parameters, the ranking, and where the REMs run (flat tensors, float64)."""
        means, scales = self._means_and_scales(y_hat_base, hyper_features, window)
        indexes = self._coder.indexes(scales)
        n = indexes.numel()
        return {"y_hat_base": y_hat_base, "shape": means.shape, "n": n, "indexes_map": indexes,
                "order": rank_elements(indexes), "means0": means.reshape(-1), "scales0": scales.reshape(-1),
                "means": means.reshape(-1).clone(), "indexes": indexes.reshape(-1).clone(),
                "r_hat": means.reshape(-1).clone(), "received": 0,
                "rem_at": rem_positions(n, self.rem_shares) if rem else []}

    def _refine(self, state: dict, j: int) -> torch.Tensor:
        """REM ``j`` on what has been received: new (μ, σ, index) and mean fill for the rest;
        returns the refined index map (its checksum is in the header)."""
        shape, order, p = state["shape"], state["order"], state["received"]
        mask = torch.zeros(state["n"], dtype=torch.float64)
        mask[order[:p]] = 1.0
        received = mask * (state["r_hat"] - state["means0"])
        means, scales = (t.reshape(-1) for t in self._rems64[j](
            state["y_hat_base"], state["means0"].reshape(shape), state["scales0"].reshape(shape),
            received.reshape(shape), mask.reshape(shape)))
        rest = order[p:]
        state["means"][rest] = means[rest]
        state["indexes"][rest] = self._coder.indexes(scales)[rest]
        state["r_hat"][rest] = means[rest]
        return state["indexes"]

    def rank(self, y_top, y_hat_base, hyper_features, rem: bool = False, window=None) -> dict:
        """The residual's symbols and scale indexes in ranked order (most uncertain first),
        each quantised around the mean it will be decoded with (refined past a REM point),
        and the checksums of the REMs' index maps (0 for a REM with no room to run)."""
        state = self._start(y_hat_base, hyper_features, rem, window)
        order = state["order"]
        residual = (y_top - y_hat_base).double().cpu().reshape(-1)
        rem_checks = [0] * len(state["rem_at"])
        points = sorted((p, j) for j, p in enumerate(state["rem_at"]) if p is not None)
        if not points:    # one set of means for all: round, then rank (one gather, not two)
            symbols = torch.round(residual - state["means"]).index_select(0, order)
        else:
            residual = residual.index_select(0, order)                      # ranked order
            symbols = torch.empty(state["n"], dtype=torch.float64)
            for stop, j in [*points, (state["n"], None)]:
                start, segment = state["received"], order[state["received"]:stop]
                means = state["means"].index_select(0, segment)
                symbols[start:stop] = torch.round(residual[start:stop] - means)
                state["received"] = stop
                if j is not None:     # the REM refines the rest from what has been received
                    state["r_hat"][segment] = symbols[start:stop] + means
                    rem_checks[j] = tensor_checksum(self._refine(state, j))
        return {"symbols": symbols.numpy().astype(np.int64),
                "indexes_ranked": state["indexes"].index_select(0, order).numpy(),
                "indexes": state["indexes_map"], "n": state["n"], "rem_checks": rem_checks,
                "rem_at": [p for p in state["rem_at"] if p is not None]}

    def encode_range(self, ranked: dict, start: int, end: int) -> bytes:
        """The chunk of ranked elements [start, end) as one rANS string, in pieces split where a
        REM refines the parameters of the rest (a decoder reads it piece by piece)."""
        pieces = sorted(p - start for p in ranked["rem_at"] if start < p < end)
        return self._coder.encode_arrays(ranked["symbols"][start:end], ranked["indexes_ranked"][start:end], pieces)

    def decompress(self, strings, y_hat_base, hyper_features, checksum=None, schedule=None, grouped: bool = True):
        """``r_hat`` from the first ``len(strings)`` chunks, mean-filled elsewhere.

        ``checksum`` is the encoder's CRC of the residual index map; on a
        mismatch no residual bit is read.
        """
        state = self.start_decoding(y_hat_base, hyper_features, checksum, schedule, grouped=grouped)
        for string in strings:
            self.decode_chunk(state, string)
        return {"r_hat": state["r_hat"].reshape(state["shape"]), "indexes": state["indexes_map"]}

    def start_decoding(self, y_hat_base, hyper_features, checksum=None, schedule=None, rem_checks=None,
                       window=None, ends=None, grouped: bool = True) -> dict:
        """Decoder state before any chunk: the residual at its predicted mean. ``rem_checks``
        (a file written with REMs) are the checksums of the refined index maps. ``ends``
        (a tile's) are the chunks' ends in the ranked order, instead of the schedule's.
        ``grouped``: the chunks' symbols are grouped by table (format 10), else one by one."""
        state = self._start(y_hat_base, hyper_features, rem_checks is not None, window)
        verify_checksum(state["indexes_map"], checksum, "residual scale indexes")
        state["bounds"] = (chunk_bounds(state["n"], schedule or self.schedule) if ends is None
                           else bounds_of(ends))
        state["chunk"] = 0
        state["rem_checks"] = rem_checks or []
        state["grouped"] = grouped
        return state

    def decode_chunk(self, state: dict, string: bytes) -> None:
        """Entropy-decode the next chunk into ``state["r_hat"]``; a REM point inside it (or at
        its end) refines the rest, and the rANS string is read on from there."""
        start, end = state["bounds"][state["chunk"]]
        stream = self._coder.stream(string, end - start, state["grouped"])
        order = state["order"]
        while state["received"] < end:
            stops = [p for p in state["rem_at"] if p is not None and state["received"] < p < end]
            stop = min(stops, default=end)
            segment = order[state["received"]:stop]
            values = stream.read(state["indexes"].index_select(0, segment))
            state["r_hat"][segment] = values.add_(state["means"].index_select(0, segment))
            state["received"] = stop
            for j, p in enumerate(state["rem_at"]):
                if p == stop:
                    verify_checksum(self._refine(state, j), state["rem_checks"][j], "refined residual scale indexes")
        state["chunk"] += 1
