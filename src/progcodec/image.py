"""Images in and out: reading anything Pillow reads, RGB conversion, padding."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .container import MAX_TILED_PIXELS
from .errors import ImageError, ProgcodecWarning

# File suffixes that training and the bench pick up from a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def _sixteen_bit_colour(im: Image.Image) -> bool:
    """A 16-bit-per-channel colour image, which Pillow opens as 8-bit RGB(A) without a word:
    its raw mode (read before ``load()`` clears the tiles) says so, e.g. ``RGB;16B``."""
    if im.mode not in ("RGB", "RGBA"):
        return False
    for tile in getattr(im, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        rawmode = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args else "")
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


# libtiff reports damage on C stderr; a codec's callers get our clear error instead.
_native_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _native_stderr_silenced():
    """File descriptor 2 pointed at /dev/null for the block (one block at a time: it is per process)."""
    with _native_stderr_lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):
            yield
            return
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _to_rgb(im: Image.Image, sixteen_bit: bool = False) -> Image.Image:
    """RGB, warning about what the conversion drops."""
    mode = im.mode
    if sixteen_bit:
        warnings.warn(f"16-bit {mode} image reduced to 8 bits per channel", ProgcodecWarning, stacklevel=3)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        warnings.warn("the image's alpha channel was dropped (the codec stores RGB)", ProgcodecWarning, stacklevel=3)
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        warnings.warn(f"{mode} image reduced to 8 bits per channel", ProgcodecWarning, stacklevel=3)
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "CMYK":
        warnings.warn("CMYK image converted to RGB without colour management", ProgcodecWarning, stacklevel=3)
    try:
        return im.convert("RGB")
    except ValueError as e:  # a mode Pillow cannot convert to RGB (e.g. "La")
        raise ImageError(f"cannot convert a {mode} image to RGB ({e})") from None


def load_image(source) -> Image.Image:
    """An RGB ``PIL.Image`` from a path, bytes, a PIL image or an HxWx3 uint8 array.

    EXIF orientation is honoured. Unreadable, truncated or oversized inputs
    raise ``ImageError`` with a one-line reason.
    """
    sixteen_bit = False
    if isinstance(source, Image.Image):
        im = source
        sixteen_bit = _sixteen_bit_colour(im)
    elif isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3):
            raise ImageError("arrays must be HxW or HxWx3 uint8")
        try:
            im = Image.fromarray(source)
        except (TypeError, ValueError) as e:
            raise ImageError(f"arrays must be HxW or HxWx3 uint8 ({e})") from None
    else:
        name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
        try:
            fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(Path(source), "rb")
        except OSError as e:
            raise ImageError(f"cannot open {name}: {e.strerror or e}") from None
        try:
            # Pillow warns past Image.MAX_IMAGE_PIXELS (89 MP by default) and refuses past twice
            # that: the refusal stands, the warning does not (a 100 MP photo is fine in tiles)
            with fp, warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                tiff = fp.read(4) in (b"II*\0", b"MM\0*")
                fp.seek(0)
                with _native_stderr_silenced() if tiff else contextlib.nullcontext():
                    im = Image.open(fp)
                    _check_size(im)          # before the pixels are decoded
                    sixteen_bit = _sixteen_bit_colour(im)
                    im.load()
        except Image.DecompressionBombError as e:
            raise ImageError(f"{name}: image too large ({e})") from None
        except UnidentifiedImageError:
            raise ImageError(f"{name}: not an image Pillow can read") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageError(f"{name}: unreadable image ({e})") from None
    _check_size(im)
    im = ImageOps.exif_transpose(im)
    if im.width < 1 or im.height < 1:
        raise ImageError("image has no pixels")
    return _to_rgb(im, sixteen_bit)


def _check_size(im: Image.Image) -> None:
    if im.width * im.height > MAX_TILED_PIXELS:
        raise ImageError(f"image is {im.width}x{im.height}: more than the {MAX_TILED_PIXELS / 1e6:.0f} megapixels "
                         "this codec handles; downscale it first")


def to_tensor(im: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1]."""
    return to_tensor_array(np.asarray(im, dtype=np.uint8))


def to_tensor_array(pixels: np.ndarray) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1] from an H x W x 3 uint8 array."""
    return torch.from_numpy(np.array(pixels, dtype=np.uint8, order="C")).permute(2, 0, 1)[None].float() / 255


def to_pil(x: torch.Tensor) -> Image.Image:
    # the same bytes as clamp(0, 1) · 255, rounded, in fewer passes: scaled and rounded in
    # whatever layout x has, clamped in place, made contiguous only as uint8
    arr = x[0].permute(1, 2, 0).mul(255).round_().clamp_(0, 255).to(torch.uint8).contiguous().cpu().numpy()
    return Image.fromarray(arr, "RGB")


def padded_size(height: int, width: int, stride: int) -> tuple[int, int]:
    return -(-height // stride) * stride, -(-width // stride) * stride


def pad(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Pad bottom/right to a multiple of ``stride`` by edge replication (cheap to code)."""
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, w, stride)
    return F.pad(x, (0, pw - w, 0, ph - h), mode="replicate") if (ph, pw) != (h, w) else x


def crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return x[..., :height, :width]
