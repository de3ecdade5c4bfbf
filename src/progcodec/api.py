"""The Python API: encode, decode, info, truncate. It never prints.

Problems the caller should know about (a dropped alpha channel, a damaged
later layer) are ``ProgcodecWarning`` warnings; bad input is a ``ProgcodecError``.
"""

from __future__ import annotations

import functools
import warnings

from . import container
from .errors import ProgcodecError, ProgcodecWarning, WeightsMismatchError

# torch, CompressAI and the models load on first use, not on import: `info`
# and `truncate` are plain Python over bytes, and `progcodec --help` starts at once.


def _models() -> dict:
    with warnings.catch_warnings():  # CompressAI's import warns about TorchScript: noise for a user
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
        from .models import MODELS
    return MODELS


def get_model(model: str = "vam", device: str = "auto"):
    """The pretrained model ``model`` (a name or a .safetensors path), cached per device."""
    from .device import resolve_device

    if model not in _models() and not model.endswith(".safetensors"):
        raise ProgcodecError(f"unknown model {model!r}: choose one of {', '.join(sorted(_models()))}")
    return _load_cached(model, str(resolve_device(device)))


@functools.lru_cache(maxsize=4)
def _load_cached(model: str, device: str):
    from .weights import load_model

    return load_model(model, device)


get_model.cache_clear = _load_cached.cache_clear


def _model(model, device: str = "auto"):
    import torch

    return model if isinstance(model, torch.nn.Module) else get_model(str(model), device)


def _check_layers(layers: int | None, available: int, what: str) -> int:
    if layers is None:
        return available
    if not 1 <= int(layers) <= available:
        raise ProgcodecError(f"--layers must be between 1 and {available} ({what}), got {layers}")
    return int(layers)


def encode(image, model="vam", layers: int | None = None, device: str = "auto") -> bytes:
    """Compress an image (path, bytes, PIL image or uint8 array) into ``.pgc`` bytes.

    ``layers`` keeps only the first K layers (layer 1 is the base layer).
    ``model`` is a model name, a weights path or an already loaded model.
    """
    from .image import load_image, pad, to_tensor

    net = _model(model, device)
    layers = _check_layers(layers, net.num_layers, f"{net.name} writes {net.num_layers} layers")
    im = load_image(image)
    x = to_tensor(im).to(next(net.parameters()).device)
    out = net.compress(pad(x, net.stride))
    return container.build(net.name, net.weights_digest, im.width, im.height,
                           out["layers"][:layers], out["checksums"])


def _parse(data: bytes) -> container.PgcFile:
    pgc = container.parse(data)
    for problem in pgc.problems:
        warnings.warn(problem, ProgcodecWarning, stacklevel=3)
    return pgc


def decode(data: bytes, layers: int | None = None, model=None, device: str = "auto", weights=()):
    """Reconstruct a ``PIL.Image`` from ``.pgc`` bytes using the first ``layers`` layers.

    ``layers`` defaults to every complete layer present. The weights are found
    by the id in the header (see ``progcodec.weights``); ``weights`` adds
    files or folders to search first. ``model`` overrides the search (a loaded
    model or a weights path: they must still be the weights the file was made with).
    """
    from .image import crop, padded_size, to_pil
    from .weights import find_weights

    pgc = _parse(data)
    header = pgc.header
    if model is None:
        if header.model not in _models():
            raise ProgcodecError(f"file was made by model {header.model!r}, which this build does not know")
        extra = [weights] if isinstance(weights, (str, bytes)) or hasattr(weights, "__fspath__") else list(weights)
        path = find_weights(header.weights_digest, header.model, extra)
        net = get_model(str(path), device)
    else:
        net = _model(model, device)
    if net.name != header.model or net.weights_digest != header.weights_digest:
        raise WeightsMismatchError(
            f"file was encoded with {header.model} weights {header.weights_digest.hex()}, "
            f"but the loaded weights are {net.name} {net.weights_digest.hex()}")
    if header.num_layers > net.num_layers or len(header.checksums) != net.num_checksums:
        raise ProgcodecError("corrupt header (layer or checksum count does not fit the model)")
    layers = _check_layers(layers, len(pgc.layers), f"the file holds {len(pgc.layers)} complete layer(s)")
    ph, pw = padded_size(header.height, header.width, net.stride)
    x_hat = net.decompress(pgc.layers[:layers], (ph // net.latent_stride, pw // net.latent_stride), header.checksums)
    return to_pil(crop(x_hat, header.height, header.width))


def info(data: bytes) -> dict:
    """What a ``.pgc`` file holds: model, size, and per-layer byte offsets and bpp."""
    pgc = _parse(data)
    header = pgc.header
    pixels = header.width * header.height
    layers = []
    for i, (length, end) in enumerate(zip(header.layer_lengths, pgc.layer_ends), start=1):
        if i > len(pgc.layers):
            break
        layers.append({"index": i, "bytes": length, "cumulative_bytes": end, "bpp": end * 8 / pixels})
    return {
        "model": header.model, "width": header.width, "height": header.height,
        "weights": header.weights_digest.hex(), "format_version": container.FORMAT_VERSION,
        "declared_layers": header.num_layers, "layers": layers,
    }


def truncate(data: bytes, layers: int) -> bytes:
    """The first ``layers`` layers of a file, itself a valid ``.pgc`` file."""
    return container.prefix(data, layers)
