"""Training REMs from a cache of the frozen backbone's statistics (``--rem-cache N``).

With ``--stage rem`` only the Rate Enhancement Modules learn: the analysis, the
hyperprior and the residual's parameters of a crop are the same at every step.
So they are computed once for N crops, and each step draws its batch from the
cache (random flips on the latent grid), paying for the REMs alone::

    N crops ──► g_a, h_a, h_s, residual params (once, no gradients)
                      │
                      ▼
    cache {ŷ_base, μ_r, σ_r, r} ──► batch ──► REMs ──► rate after each point

A flip of the latent is not the latent of the flipped crop, but it is a
plausible one with the same statistics, which is all the REMs see. Memory:
4 tensors of M x (crop/16)^2 float32 per crop (M=192, 256-px crops: 0.8 MB).
"""

from __future__ import annotations

import numpy as np
import torch

FIELDS = ("y_hat_base", "means", "scales", "residual")


class RemStatisticsCache:
    def __init__(self, model, crops, count: int, batch: int = 4, seed: int = 0, on_progress=None):
        """``count`` crops from ``crops`` (a RandomCrops), through ``model.rem_statistics``."""
        if count < 1:
            raise ValueError("the REM cache needs at least one crop")
        device = next(model.parameters()).device
        parts, done = [], 0
        was_training = model.training
        model.eval()
        try:
            while done < count:
                n = min(batch, count - done)
                stats = model.rem_statistics(crops.batch(n).to(device))
                parts.append({k: stats[k].float().cpu() for k in FIELDS})
                done += n
                if on_progress:
                    on_progress(done, count)
        finally:
            model.train(was_training)
        self.tensors = {k: torch.cat([p[k] for p in parts]) for k in FIELDS}
        self.device = device
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.tensors["residual"])

    def batch(self, size: int) -> dict:
        """``size`` cached crops drawn at random, each flipped left-right and up-down at random."""
        index = torch.from_numpy(self.rng.integers(len(self), size=size))
        out = {k: v[index] for k, v in self.tensors.items()}
        for dim in (-1, -2):
            flip = torch.from_numpy(self.rng.random(size) < 0.5)
            if flip.any():
                for v in out.values():
                    v[flip] = v[flip].flip(dim)
        return {k: v.to(self.device) for k, v in out.items()}
