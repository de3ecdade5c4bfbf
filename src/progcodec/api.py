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


def _coding_dtype(precision: str, device):
    """The autocast dtype (None: float32) of the API's ``precision`` (auto, bf16, fp32) on ``device``."""
    from .device import resolve_device
    from .precision import transform_dtype

    try:
        return transform_dtype(precision, resolve_device(device))
    except ValueError as e:
        raise ProgcodecError(str(e)) from None


def _check_layers(layers: int | None, available: int, what: str) -> int:
    if layers is None:
        return available
    if not 1 <= int(layers) <= available:
        raise ProgcodecError(f"--layers must be between 1 and {available} ({what}), got {layers}")
    return int(layers)


def file_ladder(net, ladder=None, preview: bool | None = None) -> tuple[tuple[int, ...], bool]:
    """(header ladder, preview) for a new file.

    ``ladder``: None, the model's default (vam: 16 layers with a preview); an
    int N, N layers spread from the first layer to the full file; "trained",
    the schedule the weights were trained with (the version-1 ladder); or the
    model's own values (vam: cumulative residual shares in (0, 1]; progdtd:
    rising channel counts). ``preview`` defaults to on where the model has one.
    """
    if preview is None:
        preview = net.name == "vam" and ladder != "trained"
    try:
        if ladder == "trained":
            return (), bool(preview)
        if ladder is None or isinstance(ladder, int):
            return tuple(net.ladder(ladder, preview=bool(preview))), bool(preview)
        values = [float(v) for v in ladder]
        if net.name == "vam":
            from .coding.ladder import schedule_to_ladder

            return schedule_to_ladder(values), bool(preview)
        return tuple(net.groups([int(v) for v in values])), bool(preview)
    except ValueError as e:
        raise ProgcodecError(f"bad ladder: {e}") from None


def encode(image, model="vam", layers: int | None = None, device: str = "auto",
           ladder=None, preview: bool | None = None, bpp=None, max_bytes=None, rem: bool | None = None,
           tile: int | None = None, progress=None, precision: str = "fp32") -> bytes:
    """Compress an image (path, bytes, PIL image or uint8 array) into ``.pgc`` bytes.

    ``layers`` keeps only the first K layers; ``ladder`` and ``preview`` choose
    them (see :func:`file_ladder`). Or rate targets: ``bpp`` or ``max_bytes``,
    rising cumulative sizes, one layer each (after vam's preview layer, if
    asked for), each met within 3 % or 256 bytes. ``rem`` (vam): code the
    residual with the weights' Rate Enhancement Modules; default, where the
    weights have them. ``model`` is a model name, a weights path or an already
    loaded model.

    Images larger than ``tile`` pixels (default 1024) on a side are coded in tiles
    (see ``progcodec.tiling``); 0 codes the image whole, up to 16.7 megapixels.
    ``progress(done, total)`` is called after each tile.

    ``precision`` runs the analysis transform in float32 (``"fp32"``), under
    bfloat16 autocast (``"bf16"``) or in bf16 where the CPU has it natively
    (``"auto"``); see :func:`decode`. The file differs a little, and decodes at
    any precision.
    """
    from .precision import coding_precision

    net = _model(model, device)
    with coding_precision(_coding_dtype(precision, next(net.parameters()).device)):
        return _encode(net, image, layers, ladder, preview, bpp, max_bytes, rem, tile, progress)


def _encode(net, image, layers, ladder, preview, bpp, max_bytes, rem, tile, progress) -> bytes:
    import numpy as np

    from . import tiling
    from .image import load_image, pad, padded_size, to_tensor

    im = load_image(image)
    rem = net.has_rem if rem is None else bool(rem)
    if rem and not net.has_rem:
        raise ProgcodecError(f"these {net.name} weights have no Rate Enhancement Modules (encode without rem)")
    try:
        grid = tiling.plan(*padded_size(im.height, im.width, net.stride),
                           tiling.DEFAULT_TILE if tile is None else int(tile), net.stride)
    except ValueError as e:
        raise ProgcodecError(str(e)) from None
    if grid is None and im.width * im.height > container.MAX_PIXELS:
        raise ProgcodecError(f"an image of {im.width}x{im.height} is coded in tiles: more than "
                             f"{container.MAX_PIXELS / 1e6:.1f} megapixels do not fit one (choose a tile size)")
    if bpp is not None or max_bytes is not None:
        if grid is not None:
            raise ProgcodecError(f"rate targets code the image whole, and {im.width}x{im.height} is coded in "
                                 f"tiles of at most {tile or tiling.DEFAULT_TILE} px: give a ladder, or tile=0")
        x = pad(to_tensor(im).to(next(net.parameters()).device), net.stride)
        return _encode_to_targets(net, im, x, bpp, max_bytes, bool(preview), ladder, layers, rem)
    header_ladder, preview = file_ladder(net, ladder, preview)
    count = net.layer_count(header_ladder, preview)
    layers = _check_layers(layers, count, f"this {net.name} ladder has {count} layers")
    if grid is None:
        out = net.compress(pad(to_tensor(im).to(next(net.parameters()).device), net.stride),
                           ladder=header_ladder, preview=preview, rem=rem)
        file_layers, checksums, tile_size = out["layers"], out["checksums"], None
    else:
        file_layers = tiling.encode(net, np.asarray(im), grid, header_ladder, preview, rem, progress)
        checksums, tile_size = (), (grid.tile_h, grid.tile_w)
    return container.build(net.name, net.weights_digest, im.width, im.height, file_layers[:layers], checksums,
                           preview=preview, ladder=header_ladder, rem=rem, tile=tile_size,
                           integer_params=net.has_integer_params)


def _encode_to_targets(net, im, x, bpp, max_bytes, preview, ladder, layers, rem) -> bytes:
    if bpp is not None and max_bytes is not None:
        raise ProgcodecError("give rate targets as bpp or as bytes, not both")
    if ladder is not None or layers is not None:
        raise ProgcodecError("rate targets choose the ladder: they go without ladder and layers")
    pixels = im.width * im.height
    targets = [float(t) * pixels / 8 for t in bpp] if bpp is not None else [float(t) for t in max_bytes]
    if not targets or any(t <= 0 for t in targets) or any(b <= a for a, b in zip(targets, targets[1:])):
        raise ProgcodecError("rate targets must be positive and rise strictly")
    count = len(targets) + int(preview)
    if count > container.MAX_LAYERS:
        raise ProgcodecError(f"at most {container.MAX_LAYERS} layers, not {count}")
    # version 7 writes lengths and ladder steps as varints: room for the longest layer and the
    # largest step a ladder can take (vam's shares and progdtd's fine channel counts are < 2**24)
    head = container.header_size(net.name, count, net.checksum_count(rem), len(targets), width=im.width,
                                 height=im.height, max_length=int(max(targets)), max_ladder_step=(1 << 24) - 1)
    unit = (lambda b: f"{b * 8 / pixels:.4f} bpp") if bpp is not None else (lambda b: f"{b:.0f} B")
    # each layer up to a target ends with its CRC32 (LAYER_TRAILER): that much less payload
    trailers = [container.crc_trailer(container.FORMAT_VERSION) * (k + 1 + int(preview)) for k in range(len(targets))]
    try:
        out = net.compress_to_budgets(x, [int(t) - head - extra for t, extra in zip(targets, trailers)],
                                      preview=preview, rem=rem)
    except ValueError as e:  # say it in the caller's units, header included
        import re

        named = re.search(r"target (\d+)", str(e))        # the layer a message is about ("the first": 1)
        extra = head + trailers[int(named.group(1)) - 1 if named else 0]
        message = re.sub(r"(\d+) B of payload", lambda m: unit(int(m.group(1)) + extra), str(e))
        raise ProgcodecError(f"bad rate targets: {message}") from None
    return container.build(net.name, net.weights_digest, im.width, im.height, out["layers"], out["checksums"],
                           preview=preview, ladder=out["ladder"], base_chunk=out.get("base_chunk", False),
                           fine_ladder=out.get("fine_ladder", False), rem=rem,
                           integer_params=net.has_integer_params)


def _parse(data: bytes) -> container.PgcFile:
    pgc = container.parse(data)
    for problem in pgc.problems:
        warnings.warn(problem, ProgcodecWarning, stacklevel=3)
    return pgc


def decode(data: bytes, layers: int | None = None, model=None, device: str = "auto", weights=(), progress=None,
           precision: str = "fp32"):
    """Reconstruct a ``PIL.Image`` from ``.pgc`` bytes using the first ``layers`` layers.

    ``layers`` defaults to every complete layer present. The weights are found
    by the id in the header (see ``progcodec.weights``); ``weights`` adds
    files or folders to search first. ``model`` overrides the search (a loaded
    model or a weights path: they must still be the weights the file was made with).
    ``progress(done, total)`` is called as the tiles of a tiled file are done.

    ``precision`` ``"bf16"`` runs the synthesis transform and the mean fills under
    bfloat16 autocast, faster on CPUs with native bf16 (AVX512-BF16, AMX);
    ``"auto"`` chooses it on such CPUs (see ``progcodec.precision``). The entropy
    parameters never leave their exact path (integer or float64), so any precision
    decodes any file.
    """
    from .precision import coding_precision

    dtype = _coding_dtype(precision, device)
    pgc = _parse(data)
    decoder, finish = _decoder_for(pgc.header, model, weights, device, keep_state=False, progress=progress)
    layers = _check_layers(layers, len(pgc.layers), f"the file holds {len(pgc.layers)} complete layer(s)")
    with coding_precision(dtype):
        for layer in pgc.layers[:layers]:
            decoder.add(layer)
        return finish(decoder.reconstruct())


def iter_decode(source, model=None, device: str = "auto", weights=(), precision: str = "fp32"):
    """Decode a ``.pgc`` stream as its bytes arrive: yields ``(layers, PIL.Image)`` each time a layer completes.

    ``source`` is bytes, a binary file object (a socket file, an HTTP response,
    stdin) or an iterable of byte chunks. Nothing is decoded twice: the header,
    hyper path, base latent and residual received so far are kept; each new
    layer is entropy-decoded once and only the synthesis runs again. A cut or
    damaged layer ends the stream with a ``ProgcodecWarning``, after the
    complete layers; no complete first layer is a ``ProgcodecError``.
    ``precision``: as in :func:`decode`.
    """
    from .precision import coding_precision

    dtype = _coding_dtype(precision, device)   # a bad precision fails before any byte is read
    stream = container.LayerStream()
    decoder = finish = None
    count = 0
    for chunk in _chunks(source):
        for layer in stream.feed(chunk):
            if decoder is None:
                decoder, finish = _decoder_for(stream.header, model, weights, device)
            with coding_precision(dtype):
                decoder.add(layer)
                image = finish(decoder.reconstruct())
            count += 1
            yield count, image
        if stream.done:
            break
    stream.close()
    for problem in stream.problems:
        warnings.warn(problem, ProgcodecWarning, stacklevel=2)


def _chunks(source, size: int = 1 << 16):
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
    elif hasattr(source, "read"):
        while chunk := source.read(size):
            yield bytes(chunk)
    else:
        for chunk in source:
            yield bytes(chunk)


def _decoder_for(header: container.Header, model, weights, device, keep_state: bool = True, progress=None):
    """The model's decoder state for a file with this header, and the function that
    turns its output into the picture; the weights are found by the header's id.
    A tiled file's decoder keeps every tile's state only with ``keep_state`` (streaming)."""
    from .image import crop, padded_size, to_pil
    from .weights import find_weights

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
    try:
        count = net.layer_count(header.ladder, header.preview, header.base_chunk, header.fine_ladder)
    except ValueError:
        raise ProgcodecError("corrupt header (its ladder does not fit the model)") from None
    expected_checksums = 0 if header.tile else net.checksum_count(header.rem)
    if header.num_layers > count or len(header.checksums) != expected_checksums:
        raise ProgcodecError("corrupt header (layer or checksum count does not fit the model)")
    if header.rem and not net.has_rem:
        raise ProgcodecError(f"corrupt header: it says REMs, and the {net.name} weights it names have none")
    if header.integer_params != net.has_integer_params:
        # the weights' sha256 is the file's: only a forged header gets here
        raise ProgcodecError(f"corrupt header: it says the entropy parameters came from "
                             f"{'an integer' if header.integer_params else 'the float64'} path, and the "
                             f"{net.name} weights it names have {'none' if header.integer_params else 'one'}")
    ph, pw = padded_size(header.height, header.width, net.stride)
    if header.tile:
        return _tiled_decoder_for(net, header, ph, pw, keep_state, progress)
    decoder = net.decoder((ph // net.latent_stride, pw // net.latent_stride), header.checksums,
                          ladder=header.ladder, preview=header.preview, base_chunk=header.base_chunk,
                          fine_ladder=header.fine_ladder, rem=header.rem, grouped=header.grouped_symbols)
    return decoder, lambda x_hat: to_pil(crop(x_hat, header.height, header.width))


def _tiled_decoder_for(net, header: container.Header, ph: int, pw: int, keep_state: bool, progress):
    from PIL import Image

    from . import tiling

    if any(side % net.stride for side in header.tile):
        raise ProgcodecError(f"corrupt header (tiles of {header.tile[0]}x{header.tile[1]} px do not fit the model)")
    grid = tiling.Grid(ph, pw, *header.tile)
    decoder = tiling.TiledDecoder(net, grid, header.height, header.width, keep_state, progress, header.version,
                                  ladder=header.ladder, preview=header.preview, base_chunk=header.base_chunk,
                                  fine_ladder=header.fine_ladder, rem=header.rem)
    return decoder, lambda pixels: Image.fromarray(pixels, "RGB")


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
        "weights": header.weights_digest.hex(), "format_version": header.version,
        "declared_layers": header.num_layers, "layers": layers,
        "preview": header.preview, "ladder": list(header.ladder) or "trained", "fine_ladder": header.fine_ladder,
        "rem": header.rem, "integer_params": header.integer_params, "tiles": _tiles(header),
    }


def _tiles(header: container.Header):
    """[rows, columns, tile height, tile width] of a tiled file, or None."""
    if not header.tile:
        return None
    return [-(-header.height // header.tile[0]), -(-header.width // header.tile[1]), *header.tile]


def truncate(data: bytes, layers: int | None = None, max_bytes: int | None = None,
             max_bpp: float | None = None) -> bytes:
    """A whole-layer prefix of a file, itself a valid ``.pgc`` file: the first
    ``layers`` layers, or the most layers that fit in ``max_bytes`` bytes (or
    ``max_bpp`` bits per pixel). Exactly one of the three."""
    if sum(v is not None for v in (layers, max_bytes, max_bpp)) != 1:
        raise ProgcodecError("truncate takes exactly one of layers, max_bytes, max_bpp")
    if layers is not None:
        return container.prefix(data, layers)
    if max_bpp is not None:
        header, _ = container.parse_header(data)
        if not max_bpp > 0:
            raise ProgcodecError(f"--bpp must be positive, got {max_bpp}")
        max_bytes = int(max_bpp * header.width * header.height / 8)
    if max_bytes < 0:
        raise ProgcodecError(f"--bytes must not be negative, got {max_bytes}")
    return container.prefix_within(data, int(max_bytes))
