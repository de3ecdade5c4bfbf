"""A transposed conv as a stride-1 conv and a pixel shuffle (Shi et al., "Is the deconvolution
layer the same as a convolutional layer?", 2016).

A ConvTranspose2d with odd kernel k, stride s, padding p = k // 2 and output padding s - 1 makes
s times its input. Output m·s + r (phase r) sums input m - t through tap s·t + r + p, for the t
that keep the tap inside the kernel: so each phase is a stride-1 conv over a few input
neighbours, and all s·s phases are one conv to s·s times the channels::

    input (H, W) ──► conv, size x size taps, padded (before, after) ──► (H, W, s, s, C_out)
                                                                        └─► shuffle ─► (sH, sW)

The float synthesis (models.transforms.SubpixelDeconv) and the integer hyper-synthesis
(integer_path.IntegerConv) both take their weights from :func:`subpixel_taps`.
"""

from __future__ import annotations

import torch


def subpixel_taps(taps: torch.Tensor, stride: int, padding: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``taps`` (C_in, k, k, C_out), a transposed conv's kernel, as a stride-1 conv's:
    ((size, size, C_in, s, s, C_out), (padding before, after)); conv tap a reads input
    m - before + a, i.e. t = before - a, and taps outside the kernel are zero."""
    c_in, k, _, c_out = taps.shape
    s, p = stride, padding
    before, after = (k - 1 - p) // s, (s - 1 + p) // s
    size = before + after + 1
    out = taps.new_zeros(size, size, c_in, s, s, c_out)
    for r_row in range(s):
        for a in range(size):
            k_row = s * (before - a) + r_row + p
            for r_col in range(s):
                for b in range(size):
                    k_col = s * (before - b) + r_col + p
                    if 0 <= k_row < k and 0 <= k_col < k:
                        out[a, b, :, r_row, r_col] = taps[:, k_row, k_col]
    return out, (before, after)
