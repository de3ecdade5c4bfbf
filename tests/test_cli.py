"""The ``progcodec`` command line: encode, info, decode, truncate; errors, atomic outputs, stdin/stdout."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import progcodec


@pytest.fixture
def photo(tmp_path, astronaut):
    path = tmp_path / "photo.png"
    astronaut.save(path)
    return path


@pytest.fixture
def pgc(tmp_path, encoded):
    path = tmp_path / "photo.pgc"
    path.write_bytes(encoded)
    return path


def _png_pixels(data: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    assert im.format == "PNG"
    return np.asarray(im.convert("RGB"))


# -- the happy paths -------------------------------------------------------------------------------------------


def test_encode_default_output(cli, photo, encoded):
    result = cli("encode", photo)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()  # one summary line: path, size, layers, bpp, time
    assert len(lines) == 1 and lines[0].startswith(f"wrote {photo.with_suffix('.pgc')}: ")
    assert f"{len(encoded):,} B" in lines[0] and "16 layers" in lines[0]
    assert f"{len(encoded) * 8 / (96 * 64):.3f} bpp" in lines[0]
    assert photo.with_suffix(".pgc").read_bytes() == encoded


def test_quiet_prints_nothing(cli, photo, tmp_path):
    for args in (["encode", photo, "-q"], ["decode", photo.with_suffix(".pgc"), "-q"],
                 ["truncate", photo.with_suffix(".pgc"), "--layers", 2, "-o", tmp_path / "t.pgc", "-q"]):
        result = cli(*args)
        assert result.exit_code == 0 and result.stdout == "" and result.stderr == "", (args, result.stderr)


def test_encode_then_decode_with_default_names_keeps_the_original(cli, photo, by_layers):
    original = photo.read_bytes()
    assert cli("encode", photo).exit_code == 0
    assert cli("decode", photo.with_suffix(".pgc")).exit_code == 0
    assert cli("decode", photo.with_suffix(".pgc"), "--layers", 3).exit_code == 0
    assert photo.read_bytes() == original
    decoded = photo.with_name("photo.decoded.png")
    assert np.array_equal(np.asarray(Image.open(decoded)), by_layers[-1])
    assert np.array_equal(np.asarray(Image.open(photo.with_name("photo.L3.png"))), by_layers[2])


@pytest.mark.parametrize("command", ["encode", "decode", "truncate"])
def test_an_existing_output_needs_force(cli, clean_error, photo, pgc, tmp_path, encoded, command):
    target = tmp_path / ("existing.png" if command == "decode" else "existing.pgc")
    target.write_bytes(b"precious")
    args = {"encode": ["encode", photo], "decode": ["decode", pgc],
            "truncate": ["truncate", pgc, "--layers", 2]}[command] + ["-o", target]
    clean_error(cli(*args), match=f"{target.name} exists: pass --force")
    assert target.read_bytes() == b"precious"
    result = cli(*args, "--force")
    assert result.exit_code == 0, result.stderr
    assert target.read_bytes() != b"precious" and not list(tmp_path.glob(".*.part"))
    if command == "truncate":
        assert target.read_bytes() == progcodec.truncate(encoded, 2)
    dangling = tmp_path / ("dangling.png" if command == "decode" else "dangling.pgc")
    dangling.symlink_to(tmp_path / "nowhere")          # a link is a file the user made, too
    clean_error(cli(*args[:-1], dangling), match="exists")


def test_encode_with_output_and_layers(cli, photo, tmp_path, encoded):
    out = tmp_path / "three.pgc"
    assert cli("encode", photo, "-o", out, "--layers", 3).exit_code == 0
    assert out.read_bytes() == progcodec.encode(str(photo), layers=3)
    assert len(progcodec.info(out.read_bytes())["layers"]) == 3


def test_encode_with_a_weights_path(cli, photo, tmp_path, weights_path, encoded):
    out = tmp_path / "w.pgc"
    assert cli("encode", photo, "-o", out, "--model", weights_path, "--device", "cpu").exit_code == 0
    assert out.read_bytes() == encoded


def test_info_json(cli, pgc, encoded, by_layers):
    result = cli("info", pgc, "--json")
    assert result.exit_code == 0, result.stderr
    meta = json.loads(result.stdout)
    assert {"model", "width", "height", "layers"} <= meta.keys()
    assert (meta["model"], meta["width"], meta["height"]) == ("vam", 96, 64)
    assert len(meta["layers"]) == 16
    for layer in meta["layers"]:
        assert set(layer) == {"index", "bytes", "cumulative_bytes", "bpp"}
        assert layer["bpp"] == pytest.approx(layer["cumulative_bytes"] * 8 / (96 * 64))
    assert meta["layers"][-1]["cumulative_bytes"] == len(encoded)
    # every cumulative_bytes is a prefix length that decodes, like --layers index
    for layer in meta["layers"][::3] + meta["layers"][-1:]:
        prefix = encoded[:layer["cumulative_bytes"]]
        assert np.array_equal(np.asarray(progcodec.decode(prefix)), by_layers[layer["index"] - 1])


def test_info_text(cli, pgc):
    result = cli("info", pgc)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "vam 96x64" in lines[0] and "16 of 16 layer(s)" in lines[0] and "preview layer" in lines[0]
    assert len(lines) == 17 and lines[1].strip().startswith("layer  1:")


def test_decode_layers(cli, pgc, tmp_path, by_layers):
    for layers in (1, 4, 10):
        out = tmp_path / f"out{layers}.png"
        result = cli("decode", pgc, "--layers", layers, "-o", out)
        assert result.exit_code == 0, result.stderr
        assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), by_layers[layers - 1])


def test_decode_default_output_and_other_formats(cli, pgc, tmp_path, by_layers):
    assert cli("decode", pgc).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "photo.decoded.png")), by_layers[-1])
    for name, fmt in [("out.jpg", "JPEG"), ("out.webp", "WEBP"), ("out.bmp", "BMP"), ("out.TIFF", "TIFF")]:
        assert cli("decode", pgc, "-o", tmp_path / name, "--layers", 2).exit_code == 0
        with Image.open(tmp_path / name) as im:
            assert im.format == fmt and im.size == (96, 64)


def test_decode_of_a_cut_file_warns_once(cli, tmp_path, encoded, by_layers, layer_ends):
    cut = tmp_path / "cut.pgc"
    cut.write_bytes(encoded[:layer_ends[2] + 3])
    result = cli("decode", cut, "-o", tmp_path / "cut.png")
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("warning: ") and "cut inside layer 4" in lines[0]
    assert lines[1].startswith("wrote ") and "from 3 layer(s)" in lines[1]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "cut.png")), by_layers[2])


def test_truncate(cli, pgc, tmp_path, encoded):
    out = tmp_path / "small.pgc"
    result = cli("truncate", pgc, "--layers", 3, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == progcodec.truncate(encoded, 3)
    assert len(json.loads(cli("info", out, "--json").stdout)["layers"]) == 3


def test_version_and_help(cli):
    assert cli("--version").exit_code == 0
    result = cli("--help")
    assert result.exit_code == 0 and "encode" in result.stdout and "decode" in result.stdout


# -- stdin and stdout ------------------------------------------------------------------------------------------


def test_encode_stdin_to_stdout(cli, photo, encoded):
    result = cli("encode", "-", "-o", "-", input=photo.read_bytes())
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == encoded
    result = cli("encode", "-", input=photo.read_bytes())          # '-' in: '-' out by default
    assert result.stdout_bytes == encoded


def test_decode_stdin_to_stdout(cli, encoded, by_layers):
    result = cli("decode", "-", "-o", "-", "--layers", 2, input=encoded)
    assert result.exit_code == 0, result.stderr
    assert np.array_equal(_png_pixels(result.stdout_bytes), by_layers[1])
    result = cli("decode", "-", input=encoded)
    assert np.array_equal(_png_pixels(result.stdout_bytes), by_layers[-1])


def test_info_and_truncate_on_stdin(cli, encoded):
    result = cli("info", "-", "--json", input=encoded)
    assert json.loads(result.stdout)["width"] == 96
    result = cli("truncate", "-", "--layers", 2, "-o", "-", input=encoded)
    assert result.exit_code == 0
    assert result.stdout_bytes == progcodec.truncate(encoded, 2)


def test_a_real_pipe_through_the_installed_command(tmp_path, encoded, by_layers, weights_dir):
    """``progcodec decode - -o -`` in a subprocess: binary stdin and stdout, only the summary on stderr."""
    env = dict(os.environ, PROGCODEC_WEIGHTS=str(weights_dir), OMP_NUM_THREADS="1")
    exe = os.path.join(os.path.dirname(sys.executable), "progcodec")
    command = [exe] if os.path.exists(exe) else [sys.executable, "-m", "progcodec"]
    proc = subprocess.run(command + ["decode", "-", "-o", "-", "--layers", "3", "--device", "cpu"],
                          input=encoded, capture_output=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr.decode().startswith("wrote stdout: 96x64 from 3 layer(s)")
    assert len(proc.stderr.splitlines()) == 1
    assert np.array_equal(_png_pixels(proc.stdout), by_layers[2])
    proc = subprocess.run(command + ["decode", "-", "-o", "-"], input=b"junk", capture_output=True, env=env,
                          timeout=300)
    assert proc.returncode == 1 and proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")


# -- errors: one line, exit status 1 -----------------------------------------------------------------------------


def test_missing_input_files(cli, clean_error, tmp_path):
    missing = tmp_path / "missing.pgc"
    clean_error(cli("decode", missing), match="missing.pgc")
    clean_error(cli("info", missing), match="missing.pgc")
    clean_error(cli("truncate", missing, "--layers", 1, "-o", tmp_path / "x.pgc"), match="missing.pgc")
    clean_error(cli("encode", tmp_path / "missing.png"), match="missing.png")
    assert not (tmp_path / "x.pgc").exists()


@pytest.mark.parametrize("content", [b"", b"junk", b"\x89PGC\x01", b"\x89PNG\r\n\x1a\n" + bytes(64)])
def test_corrupt_files(cli, clean_error, listdir, tmp_path, content):
    bad = tmp_path / "bad.pgc"
    bad.write_bytes(content)
    clean_error(cli("decode", bad))
    clean_error(cli("decode", bad, "-o", tmp_path / "out.png"))
    clean_error(cli("info", bad))
    clean_error(cli("info", bad, "--json"))
    clean_error(cli("truncate", bad, "--layers", 1, "-o", tmp_path / "out.pgc"))
    assert listdir(tmp_path) == {"bad.pgc"}


def test_corrupt_header_byte(cli, clean_error, tmp_path, encoded):
    bad = tmp_path / "bad.pgc"
    data = bytearray(encoded)
    data[20] ^= 0xFF
    bad.write_bytes(bytes(data))
    clean_error(cli("decode", bad), match="header")


@pytest.mark.parametrize("layers", [0, -1, 17, 99])
def test_impossible_layer_counts(cli, clean_error, listdir, photo, pgc, tmp_path, layers):
    before = listdir(tmp_path)
    clean_error(cli("decode", pgc, "--layers", layers, "-o", tmp_path / "out.png"), match="layers")
    clean_error(cli("encode", photo, "--layers", layers, "-o", tmp_path / "out.pgc"), match="layers")
    clean_error(cli("truncate", pgc, "--layers", layers, "-o", tmp_path / "out2.pgc"), match="layer")
    assert listdir(tmp_path) == before


def test_layers_beyond_a_cut_file(cli, clean_error, tmp_path, encoded):
    cut = tmp_path / "cut.pgc"
    cut.write_bytes(progcodec.truncate(encoded, 3))
    clean_error(cli("decode", cut, "--layers", 4), match="between 1 and 3")


def test_unknown_model(cli, clean_error, photo, tmp_path):
    clean_error(cli("encode", photo, "--model", "nosuch", "-o", tmp_path / "x.pgc"), match="unknown model 'nosuch'")
    clean_error(cli("encode", photo, "--model", tmp_path / "nosuch.safetensors"), match="no weights")
    assert not (tmp_path / "x.pgc").exists() and not photo.with_suffix(".pgc").exists()


def test_file_from_other_weights(cli, clean_error, photo, tmp_path, other_weights_path, net):
    other = tmp_path / "other.pgc"
    assert cli("encode", photo, "--model", other_weights_path, "-o", other).exit_code == 0
    line = clean_error(cli("decode", other, "-o", tmp_path / "out.png"))
    assert net.weights_digest.hex() in line
    assert not (tmp_path / "out.png").exists()


def test_unknown_output_extension(cli, clean_error, listdir, pgc, tmp_path):
    before = listdir(tmp_path)
    clean_error(cli("decode", pgc, "-o", tmp_path / "out.nosuchformat"), match="format")
    clean_error(cli("decode", pgc, "-o", tmp_path / "no_extension"), match="format")
    assert listdir(tmp_path) == before


def test_unwritable_output(cli, clean_error, pgc, tmp_path):
    clean_error(cli("decode", pgc, "-o", tmp_path / "no" / "such" / "dir" / "out.png"), match="cannot write")


def test_bad_option_values_are_usage_errors(cli, pgc):
    result = cli("decode", pgc, "--layers", "two")
    assert result.exit_code == 2 and "Invalid value" in result.stderr
    result = cli("decode", pgc, "--device", "tpu")
    assert result.exit_code == 2


# -- outputs are atomic; inputs are never overwritten -----------------------------------------------------------


def test_failing_decode_leaves_an_existing_output_untouched(cli, clean_error, listdir, tmp_path):
    bad = tmp_path / "bad.pgc"
    bad.write_bytes(b"\x89PGC" + bytes(50))
    out = tmp_path / "out.png"
    out.write_bytes(b"previous content")
    clean_error(cli("decode", bad, "-o", out, "--force"))
    assert out.read_bytes() == b"previous content"
    assert listdir(tmp_path) == {"bad.pgc", "out.png"}


def test_a_write_that_fails_midway_leaves_no_partial_file(cli, clean_error, listdir, pgc, tmp_path, monkeypatch):
    import progcodec.weights

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    out = tmp_path / "out.png"
    out.write_bytes(b"previous content")
    before = listdir(tmp_path)
    monkeypatch.setattr(progcodec.weights.os, "replace", failing_replace)
    clean_error(cli("decode", pgc, "-o", out, "--force"), match="No space left")
    assert out.read_bytes() == b"previous content"
    assert listdir(tmp_path) == before      # the temporary file is gone too


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
def test_outputs_get_the_usual_permissions(cli, photo, pgc, tmp_path):
    """Atomic writes go through a private temp file; the result is still 0666 & ~umask, like any tool's."""
    umask = os.umask(0o022)
    try:
        assert cli("encode", photo, "-o", tmp_path / "p.pgc", "--layers", 1).exit_code == 0
        assert cli("decode", pgc, "-o", tmp_path / "p.png", "--layers", 1).exit_code == 0
        assert cli("truncate", pgc, "--layers", 1, "-o", tmp_path / "t.pgc").exit_code == 0
    finally:
        os.umask(umask)
    for name in ("p.pgc", "p.png", "t.pgc"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_encode_never_overwrites_its_input(cli, clean_error, listdir, photo, tmp_path):
    original = photo.read_bytes()
    clean_error(cli("encode", photo, "-o", photo), match="refusing to overwrite")
    assert photo.read_bytes() == original
    assert listdir(tmp_path) == {"photo.png"}
    link = tmp_path / "link.png"
    link.symlink_to(photo)
    clean_error(cli("encode", link, "-o", photo), match="refusing to overwrite")
    clean_error(cli("encode", photo, "-o", f"{tmp_path}/./photo.png"), match="refusing to overwrite")
    assert photo.read_bytes() == original


def test_encode_of_an_image_named_pgc_writes_beside_it(cli, photo, tmp_path):
    named = tmp_path / "image.pgc"
    named.write_bytes(photo.read_bytes())
    result = cli("encode", named)
    assert result.exit_code == 0, result.stderr
    assert named.read_bytes() == photo.read_bytes()
    assert progcodec.info((tmp_path / "image.pgc.pgc").read_bytes())["width"] == 96


def test_decode_and_truncate_never_overwrite_their_input(cli, clean_error, pgc, encoded, tmp_path):
    clean_error(cli("decode", pgc, "-o", pgc))
    alias = tmp_path / "alias.png"       # the input under an image name
    alias.symlink_to(pgc)
    clean_error(cli("decode", pgc, "-o", alias), match="refusing to overwrite")
    clean_error(cli("truncate", pgc, "--layers", 2, "-o", pgc), match="refusing to overwrite")
    clean_error(cli("truncate", alias, "--layers", 2, "-o", pgc), match="refusing to overwrite")
    assert pgc.read_bytes() == encoded


def test_help_info_and_truncate_never_import_torch(tmp_path, encoded):
    """`--help`, `info` and `truncate` are plain Python over bytes: no torch start-up cost."""
    pgc = tmp_path / "p.pgc"
    pgc.write_bytes(encoded)
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from progcodec.cli import main\n"
        "r = CliRunner()\n"
        f"for args in (['--help'], ['info', {str(pgc)!r}], ['info', '--json', {str(pgc)!r}],\n"
        f"             ['truncate', {str(pgc)!r}, '--layers', '2', '-o', {str(tmp_path / 't.pgc')!r}]):\n"
        "    assert r.invoke(main, args).exit_code == 0, args\n"
        "heavy = sorted(m for m in ('torch', 'compressai', 'numpy', 'PIL') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
    assert progcodec.info((tmp_path / "t.pgc").read_bytes())["layers"][-1]["index"] == 2
