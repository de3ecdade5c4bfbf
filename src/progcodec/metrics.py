"""The one place where reconstructions are scored: PSNR-RGB and MS-SSIM.

Both compare 8-bit RGB images (what a user gets from any codec), so our model
and the Pillow baselines are measured the same way. PSNR-RGB is the PSNR of
the mean squared error over all three channels (CompressAI's ``psnr-rgb``);
MS-SSIM is ``pytorch_msssim.ms_ssim`` on [0, 1] floats, data range 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from pytorch_msssim import ms_ssim

WIN_SIZE = 11


def _array(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = image.convert("RGB")
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError("expected an RGB PIL image or an HxWx3 uint8 array")
    return arr


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")


def mse_to_psnr(mse: float, peak: float = 255.0) -> float:
    return 10 * math.log10(peak * peak / max(mse, 1e-12))


def psnr_rgb(original, reconstruction) -> float:
    """PSNR in dB over the three 8-bit channels (peak 255)."""
    a, b = _array(original), _array(reconstruction)
    _same_shape(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return mse_to_psnr(mse)


def _tensor(arr: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float().div_(255).to(device)


def ms_ssim_window(height: int, width: int) -> int | None:
    """The Gaussian window MS-SSIM can use on an image this size: 11 from 161 px up.

    pytorch_msssim needs the short side above ``(win_size - 1) * 16`` (four
    halvings); smaller images get the largest odd window that fits rather
    than an error, and images under 33 px get none (MS-SSIM is then NaN).
    Kodak-sized images always get the standard 11.
    """
    side = min(height, width)
    win = WIN_SIZE
    while win >= 3 and side <= (win - 1) * 16:
        win -= 2
    return win if win >= 3 else None


def ms_ssim_rgb(original, reconstruction, device="cpu") -> float:
    """MS-SSIM (pytorch_msssim: 5 scales, Gaussian window 11, sigma 1.5) of two RGB images."""
    a, b = _array(original), _array(reconstruction)
    _same_shape(a, b)
    win = ms_ssim_window(a.shape[0], a.shape[1])
    if win is None:
        return float("nan")
    with torch.no_grad():
        value = ms_ssim(_tensor(a, device), _tensor(b, device), data_range=1.0, win_size=win)
    return float(value)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on the usual dB scale: -10 log10(1 - MS-SSIM)."""
    return -10 * math.log10(max(1.0 - value, 1e-12))


def score(original, reconstruction, device="cpu") -> dict:
    """``{"psnr-rgb": dB, "ms-ssim": [0, 1]}`` of a reconstruction against its original."""
    return {"psnr-rgb": psnr_rgb(original, reconstruction),
            "ms-ssim": ms_ssim_rgb(original, reconstruction, device)}
