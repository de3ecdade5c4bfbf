"""Classical codecs through Pillow, each with a quality ladder spanning ~0.1-1.5 bpp.

A ``Baseline`` turns (image, ladder step) into bytes and bytes back into an
RGB image; the runner times both and scores the result with ``metrics``.

Two settings matter for a fair comparison:

* JPEG 2000 uses the irreversible 9/7 wavelet with the colour transform
  (``irreversible=True, mct=1``): Pillow's defaults (reversible 5/3, no colour
  transform) cost about 2.5x the bits at the same PSNR.
* JPEG 2000 is measured as a layered file. Pillow 13 ignores ``im.layers = k``
  set before ``load()`` (every decode uses all layers), so step k of the
  ladder is an honest k-layer file: ``quality_mode="rates"`` with the first k
  of the ladder's rates, decoded in full. Its PSNR must rise with k; the
  runner checks that.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import PIL
from PIL import Image, features

ALL_BASELINES = ("jpeg", "jpeg2000", "webp", "avif", "jxl")

# Target bpp of the JPEG 2000 quality layers: layer k is coded at JPEG2000_BPP[k-1].
JPEG2000_BPP = (0.1, 0.15, 0.25, 0.4, 0.6, 0.9, 1.2, 1.6)


@dataclass(frozen=True)
class Baseline:
    name: str
    description: str
    ladder: tuple                     # one setting per rate point, low to high rate
    format: str                       # Pillow format name
    options: dict = field(default_factory=dict)

    def save_options(self, step: int) -> dict:
        """Pillow ``save`` keywords for ladder point ``step`` (0-based)."""
        return {**self.options, "quality": self.ladder[step]}

    def encode(self, image: Image.Image, step: int) -> bytes:
        buf = io.BytesIO()
        image.save(buf, format=self.format, **self.save_options(step))
        return buf.getvalue()

    def decode(self, data: bytes) -> Image.Image:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.convert("RGB")

    def setting(self, step: int) -> str:
        return f"q={self.ladder[step]}"


@dataclass(frozen=True)
class LayeredJpeg2000(Baseline):
    """Ladder step k (0-based) is a file of k+1 quality layers at the first k+1 target rates."""

    def save_options(self, step: int) -> dict:
        # Compression ratios against 24-bit RGB: layer i targets ladder[i] bpp.
        rates = [24.0 / bpp for bpp in self.ladder[: step + 1]]
        return {**self.options, "quality_mode": "rates", "quality_layers": rates}

    def setting(self, step: int) -> str:
        return f"{step + 1} layer(s), {self.ladder[step]} bpp"


def _pillow(description: str) -> str:
    return f"Pillow {PIL.__version__}: {description}"


def make_baseline(name: str) -> Baseline:
    if name == "jpeg":
        return Baseline("jpeg", _pillow("JPEG, progressive, optimized Huffman, 4:2:0"),
                        (3, 6, 10, 20, 35, 55, 75), "JPEG", {"progressive": True, "optimize": True})
    if name == "jpeg2000":
        return LayeredJpeg2000(
            "jpeg2000", _pillow("JPEG 2000 (OpenJPEG), 9/7 irreversible wavelet + colour transform, "
                                "k quality layers (quality_mode='rates'), LRCP"),
            JPEG2000_BPP, "JPEG2000", {"irreversible": True, "mct": 1, "progression": "LRCP"})
    if name == "webp":
        return Baseline("webp", _pillow("WebP (libwebp), lossy, method 6"),
                        (0, 5, 15, 30, 50, 70, 80), "WEBP", {"method": 6})
    if name == "avif":
        return Baseline("avif", _pillow("AVIF, speed 6, 4:2:0"),
                        (5, 15, 28, 40, 52, 62, 72), "AVIF", {"speed": 6, "subsampling": "4:2:0"})
    if name == "jxl":
        return Baseline("jxl", _pillow("JPEG XL (pillow-jxl-plugin / libjxl), effort 7"),
                        (0, 15, 30, 50, 70, 80, 86), "JXL", {"effort": 7, "lossless_jpeg": False})
    raise ValueError(f"unknown baseline {name!r}: choose from {', '.join(ALL_BASELINES)}")


def _feature(name: str) -> bool:
    try:
        return bool(features.check(name))
    except (ValueError, KeyError):
        return False


def unavailable_reason(name: str) -> str | None:
    """Why this Pillow build cannot run baseline ``name``, or None when it can."""
    if name == "jpeg":
        return None if _feature("jpg") else "Pillow was built without libjpeg"
    if name == "jpeg2000":
        return None if _feature("jpg_2000") else "Pillow was built without OpenJPEG (jpg_2000)"
    if name == "webp":
        return None if _feature("webp") else "Pillow was built without libwebp"
    if name == "avif":
        return None if _feature("avif") else "this Pillow has no AVIF support (needs Pillow >= 11.2 with libavif)"
    if name == "jxl":
        try:
            import pillow_jxl  # noqa: F401  (registers the JXL plugin)
        except ImportError:
            return "pillow-jxl-plugin is not installed (pip install pillow-jxl-plugin)"
        return None
    raise ValueError(f"unknown baseline {name!r}: choose from {', '.join(ALL_BASELINES)}")


def parse_baselines(text: str) -> list[str]:
    """``"jpeg,webp"`` -> ["jpeg", "webp"]; "" or "none" -> []. Unknown names raise ValueError."""
    names = [n.strip().lower() for n in (text or "").split(",") if n.strip()]
    if names in ([], ["none"]):
        return []
    unknown = [n for n in names if n not in ALL_BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {', '.join(unknown)}: choose from {', '.join(ALL_BASELINES)}")
    return list(dict.fromkeys(names))


def available_baselines(names) -> tuple[list[Baseline], list[str]]:
    """The runnable baselines among ``names``, and one note per skipped one."""
    runnable, notes = [], []
    for name in names:
        reason = unavailable_reason(name)
        if reason:
            notes.append(f"{name} skipped: {reason}")
        else:
            runnable.append(make_baseline(name))
    return runnable, notes
