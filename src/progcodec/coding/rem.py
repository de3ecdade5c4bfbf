"""Rate Enhancement Modules: better entropy parameters for the residual still to come.

Variance-aware masking, Presta et al., WACV 2025: once the decoder holds the
first ranked elements of the residual, it knows more about the rest than the
hyperprior did. A REM reads what is known at a fixed point of the ranked order
and refines (μ, σ) of every element not yet received::

    ŷ_base ─────────────────────┐
    log σ_r (hyperprior) ───────┤
    received residual − μ_r ────┼─► 1x1 ─► 3x3 ─► 3x3 ─► (Δμ, Δlog σ) ─► μ' = μ_r + Δμ
    received mask ──────────────┘                                       σ' = σ_r · exp(Δlog σ)
                                                                        (where not received)

Elements after the point are quantised around μ' and coded with σ'; never
received, they take μ'. The ranking stays the hyperprior's, so the chunks
still partition the residual whatever the REMs do, and a point may fall inside
a chunk (its rANS string is decoded in two pieces around the refinement).
The REM runs on the float64 parameter path like the hyper-synthesis, and the
header carries a checksum of each refined index map. Its last layer starts at
zero: an untrained REM changes nothing.
"""

from __future__ import annotations

import torch
from torch import nn

SCALE_FLOOR = 0.11   # the GaussianConditional's lower bound on σ


class RateEnhancementModule(nn.Module):
    def __init__(self, latent_channels: int, hidden: int = 128):
        super().__init__()
        m = latent_channels
        self.net = nn.Sequential(
            nn.Conv2d(4 * m, hidden, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(hidden, 2 * m, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, y_hat_base, means, scales, received, mask):
        """(means, scales) refined where ``mask`` is 0; ``received`` is the residual minus
        ``means`` where ``mask`` is 1 and 0 elsewhere."""
        scales = scales.clamp_min(SCALE_FLOOR)
        d_mean, d_log_scale = self.net(torch.cat([y_hat_base, torch.log(scales), received, mask], 1)).chunk(2, 1)
        todo = 1 - mask
        return means + todo * d_mean, scales * torch.exp(todo * d_log_scale)


def rem_positions(num_elements: int, shares) -> list[int | None]:
    """Where each REM runs in the ranked order: after round(share · n) elements; None where
    nothing would be received before it or left after it (a tiny latent)."""
    positions = [round(s * num_elements) for s in shares]
    return [p if 0 < p < num_elements else None for p in positions]
