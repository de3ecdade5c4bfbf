"""Hostile and odd input images, through ``progcodec.encode`` and the command line."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

import progcodec
from progcodec.container import MAX_PIXELS, MAX_TILED_PIXELS
from progcodec.errors import ImageError, ProgcodecError, ProgcodecWarning
from progcodec.image import load_image


def _png(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _jpeg(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", **kw)
    return buf.getvalue()


def _png16_rgb(arr: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), from an HxWx3 uint16 array."""
    import struct
    import zlib

    h, w, _ = arr.shape
    rows = b"".join(b"\0" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- unreadable inputs: a clean ImageError, and one error line from the CLI ---------------------------------


def _unreadable_cases(astronaut):
    png, jpeg = _png(astronaut), _jpeg(astronaut, quality=90)
    return {
        "empty.png": b"",
        "png_cut_in_signature.png": png[:5],
        "png_cut_in_header.png": png[:30],
        "png_cut_in_data.png": png[:len(png) // 2],
        "png_without_end.png": png[:-30],
        "jpeg_cut_in_header.jpg": jpeg[:100],
        "jpeg_cut_in_data.jpg": jpeg[:len(jpeg) // 2],
        "text.png": b"this is not an image, whatever its name says\n",
        "html.jpg": b"<!doctype html><html><body>404</body></html>",
        "pgc_as_image.png": b"\x89PGC\x01\x03vam" + bytes(100),
    }


@pytest.mark.parametrize("name", list(_unreadable_cases(Image.new("RGB", (8, 8)))))
def test_unreadable_image_is_an_image_error(astronaut, tmp_path, name):
    data = _unreadable_cases(astronaut)[name]
    path = _write(tmp_path, name, data)
    with pytest.raises(ImageError):
        progcodec.encode(str(path))
    with pytest.raises(ImageError):
        progcodec.encode(data)


@pytest.mark.parametrize("name", ["empty.png", "png_cut_in_data.png", "jpeg_cut_in_data.jpg", "text.png"])
def test_unreadable_image_on_the_command_line(astronaut, tmp_path, cli, clean_error, listdir, name):
    path = _write(tmp_path, name, _unreadable_cases(astronaut)[name])
    before = listdir(tmp_path)
    clean_error(cli("encode", path, "-o", tmp_path / "out.pgc"), match=name)
    clean_error(cli("encode", path))
    assert listdir(tmp_path) == before


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match="cannot open"):
        progcodec.encode(str(tmp_path / "missing.png"))
    with pytest.raises(ImageError, match="cannot open"):
        progcodec.encode(str(tmp_path))


def test_every_truncation_of_a_png_is_clean(astronaut):
    """Pillow raises many exception types for cut files; load_image turns each into ImageError."""
    png = _png(astronaut.resize((24, 16)))
    for n in range(0, len(png), 3):
        try:
            image = load_image(png[:n])
        except ImageError:
            continue
        assert image.mode == "RGB" and image.size == (24, 16)


def test_every_truncation_of_a_jpeg_is_clean(astronaut):
    jpeg = _jpeg(astronaut.resize((24, 16)), quality=80)
    for n in range(0, len(jpeg), 3):
        try:
            image = load_image(jpeg[:n])
        except ImageError:
            continue
        assert image.mode == "RGB" and image.size == (24, 16)


# -- decompression bombs and the codec's own pixel limit -----------------------------------------------------


def test_decompression_bomb_is_an_image_error(astronaut, tmp_path, monkeypatch):
    """Pillow's refusal (past twice Image.MAX_IMAGE_PIXELS) stands; its warning (past
    MAX_IMAGE_PIXELS, 89 MP by default) does not, so a 100 MP photo can be coded in tiles."""
    path = _write(tmp_path, "bomb.png", _png(astronaut))     # 96x64 = 6144 px
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="too large"):
        progcodec.encode(str(path))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)
    assert load_image(str(path)).size == (96, 64)


def test_decompression_bomb_on_the_command_line(astronaut, tmp_path, monkeypatch, cli, clean_error, listdir):
    path = _write(tmp_path, "bomb.png", _png(astronaut))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    clean_error(cli("encode", path), match="too large")
    assert listdir(tmp_path) == {"bomb.png"}


def test_over_the_codec_pixel_limit_is_an_image_error():
    huge = Image.new("1", (16385, 16385))           # 268.5 MP in 1 bit a pixel: 34 MB
    assert huge.width * huge.height > MAX_TILED_PIXELS
    with pytest.raises(ImageError, match="megapixels"):
        load_image(huge)


def test_past_one_tile_s_limit_an_image_must_be_tiled(tmp_path, cli, clean_error, listdir):
    big = Image.new("L", (4097, 4096))
    assert big.width * big.height > MAX_PIXELS
    with pytest.raises(ProgcodecError, match="megapixels"):
        progcodec.encode(big, tile=0)
    path = tmp_path / "huge.png"
    big.save(path, compress_level=1)
    clean_error(cli("encode", path, "--tile", "0"), match="megapixels")
    assert listdir(tmp_path) == {"huge.png"}


def test_a_file_claiming_more_pixels_than_pillow_allows_is_refused_unread(tmp_path, cli, clean_error):
    """A 30000x30000 PNG header over a few bytes of data: refused before any pixel is decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    with pytest.raises(ImageError, match="too large"):
        load_image(bomb)
    clean_error(cli("encode", _write(tmp_path, "bomb.png", bomb)), match="too large")


# -- odd but readable images: encoded, with a warning where something is lost -------------------------------


def _odd_images(astronaut) -> dict[str, tuple[bytes, str | None]]:
    """name -> (file bytes, regex of the expected ProgcodecWarning or None)."""
    gray16 = (np.asarray(astronaut.convert("L"), dtype=np.uint16) * 257)
    palette = astronaut.convert("P", palette=Image.ADAPTIVE, colors=16)
    rgba = astronaut.copy()
    rgba.putalpha(128)
    return {
        "16-bit grayscale PNG": (_png(Image.fromarray(gray16)), "8 bits"),
        "16-bit RGB PNG": (_png16_rgb(np.asarray(astronaut, dtype=np.uint16) * 257), "16-bit RGB .* 8 bits"),
        "CMYK JPEG": (_jpeg(astronaut.convert("CMYK")), "CMYK"),
        "palette PNG with transparency": (_png(palette, transparency=0), "alpha"),
        "RGBA PNG": (_png(rgba), "alpha"),
        "LA PNG": (_png(rgba.convert("LA")), "alpha"),
        "RGB PNG with a transparent colour": (_png(astronaut, transparency=(0, 0, 0)), "alpha"),
        "palette PNG": (_png(palette), None),
        "grayscale JPEG": (_jpeg(astronaut.convert("L")), None),
        "1-bit PNG": (_png(astronaut.convert("1")), None),
        "progressive JPEG": (_jpeg(astronaut, progressive=True), None),
    }


@pytest.mark.parametrize("name", list(_odd_images(Image.new("RGB", (8, 8)))))
def test_odd_images_load_as_rgb(astronaut, name, recwarn):
    data, warning = _odd_images(astronaut)[name]
    image = load_image(data)
    assert image.mode == "RGB" and image.size == (96, 64)
    messages = [str(w.message) for w in recwarn if issubclass(w.category, ProgcodecWarning)]
    if warning is None:
        assert messages == []
    else:
        assert len(messages) == 1 and re.search(warning, messages[0]), messages


@pytest.mark.parametrize("name", ["16-bit grayscale PNG", "16-bit RGB PNG", "CMYK JPEG",
                                  "palette PNG with transparency", "RGBA PNG"])
def test_odd_images_encode_with_a_warning(astronaut, name):
    data, warning = _odd_images(astronaut)[name]
    with pytest.warns(ProgcodecWarning, match=warning):
        pgc = progcodec.encode(data, layers=2)
    assert progcodec.decode(pgc).size == (96, 64)


def test_sixteen_bit_values_are_scaled_not_clipped():
    ramp = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257)
    with pytest.warns(ProgcodecWarning):
        image = load_image(_png(Image.fromarray(ramp)))
    assert np.array_equal(np.asarray(image)[..., 0], np.arange(256, dtype=np.uint8).reshape(16, 16))


def test_odd_image_warning_on_the_command_line(astronaut, tmp_path, cli):
    path = _write(tmp_path, "rgba.png", _odd_images(astronaut)["RGBA PNG"][0])
    result = cli("encode", path, "--layers", "1", "--quiet")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()  # --quiet silences the summary, never a warning
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "alpha" in lines[0]
    assert (tmp_path / "rgba.pgc").exists()


@pytest.mark.parametrize("orientation, transposed", [(1, False), (3, False), (6, True), (8, True)])
def test_exif_orientation_is_honoured(orientation, transposed):
    """30x20 stored, left half red: orientation 6 shows it 20x30 with the red half on top."""
    arr = np.zeros((20, 30, 3), np.uint8)
    arr[:, :15] = (255, 0, 0)
    arr[:, 15:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _jpeg(Image.fromarray(arr), exif=exif, quality=95)
    image = np.asarray(load_image(data)).astype(int)
    expected_size = (20, 30) if transposed else (30, 20)
    assert image.shape[1::-1] == expected_size
    red = lambda px: px[0] > 200 and px[2] < 60   # noqa: E731
    if orientation == 6:
        assert red(image[2, 10]) and not red(image[-3, 10])
    if orientation == 8:
        assert red(image[-3, 10]) and not red(image[2, 10])
    if orientation == 3:
        assert red(image[10, -3]) and not red(image[10, 2])
    if orientation == 1:
        assert red(image[10, 2]) and not red(image[10, -3])
    assert progcodec.decode(progcodec.encode(data, layers=1)).size == expected_size


# -- in-memory inputs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("array", [
    np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint16), np.zeros((2, 8, 8, 3), np.uint8),
    np.zeros((8,), np.uint8), np.zeros((8, 8, 5), np.uint8), np.zeros((0, 8, 3), np.uint8), np.zeros((0, 0), np.uint8),
], ids=["float", "uint16", "4d", "1d", "5 channels", "no rows", "empty"])
def test_unusable_arrays_are_an_image_error(array):
    with pytest.raises(ImageError):
        progcodec.encode(array)


@pytest.mark.filterwarnings("ignore::progcodec.errors.ProgcodecWarning")
def test_grayscale_array_and_pil_modes_encode():
    gray = (np.arange(64 * 40) % 251).astype(np.uint8).reshape(40, 64)
    assert progcodec.decode(progcodec.encode(gray, layers=1)).size == (64, 40)
    for mode in ("L", "1", "P", "I", "F", "YCbCr", "LAB", "HSV", "RGBX"):
        assert load_image(Image.new(mode, (5, 4))).size == (5, 4)


@pytest.mark.filterwarnings("ignore::progcodec.errors.ProgcodecWarning")
def test_a_mode_pillow_cannot_convert_is_an_image_error():
    with pytest.raises(ImageError):
        load_image(Image.new("La", (5, 4)))


def test_zero_pixel_pil_image():
    with pytest.raises(ImageError, match="no pixels"):
        progcodec.encode(Image.new("RGB", (0, 0)))


def test_a_corrupt_tiff_is_one_clean_error_line_and_nothing_from_libtiff(tmp_path, astronaut):
    """libtiff reports damage on the process's own stderr (file descriptor 2, which Click's
    test runner does not see): only a real process shows that the line we print is all there is."""
    import subprocess
    import sys

    buf = io.BytesIO()
    astronaut.save(buf, "TIFF", compression="tiff_lzw")
    data = bytearray(buf.getvalue())
    data[40:60] = b"\xff" * 20
    path = _write(tmp_path, "bad.tif", bytes(data))
    result = subprocess.run([sys.executable, "-m", "progcodec", "encode", str(path)], capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: unreadable image"), result.stderr
    assert not (tmp_path / "bad.pgc").exists()


def test_native_stderr_is_given_back_after_a_tiff(tmp_path, astronaut, capfd):
    import os

    buf = io.BytesIO()
    astronaut.save(buf, "TIFF")
    assert load_image(buf.getvalue()).size == astronaut.size
    os.write(2, b"still here\n")
    assert "still here" in capfd.readouterr().err
