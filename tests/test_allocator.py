"""progcodec.keep_freed_memory: glibc keeps large freed blocks; the codec's bytes and pixels do not change."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import progcodec
from progcodec import allocator

on_glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                              reason="mallopt is glibc's")


def _in_fresh_process(script: str, weights_dir, tmp_path) -> str:
    env = dict(os.environ, PROGCODEC_WEIGHTS=str(weights_dir), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@on_glibc
def test_glibc_takes_both_settings_and_a_second_call_changes_nothing(weights_dir, tmp_path):
    out = _in_fresh_process("import progcodec; print(progcodec.keep_freed_memory(), progcodec.keep_freed_memory())",
                            weights_dir, tmp_path)
    assert out == "True True"


def test_elsewhere_it_does_nothing(monkeypatch):
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert progcodec.keep_freed_memory() is False


@on_glibc
def test_the_same_file_and_pixels_with_freed_memory_kept(weights_dir, tmp_path, astronaut, encoded, by_layers):
    """Encode and decode every layer in a process that keeps freed memory: bit for bit what this one makes."""
    astronaut.save(tmp_path / "in.png")
    script = (
        "import numpy as np, progcodec, torch\n"
        "from PIL import Image\n"
        "torch.set_num_threads(1)\n"
        "assert progcodec.keep_freed_memory()\n"
        "data = progcodec.encode(Image.open('in.png'))\n"
        "open('out.pgc', 'wb').write(data)\n"
        "n = len(progcodec.info(data)['layers'])\n"
        "np.save('layers.npy', np.stack([np.asarray(progcodec.decode(data, layers=k)) for k in range(1, n + 1)]))\n"
    )
    _in_fresh_process(script, weights_dir, tmp_path)
    assert (tmp_path / "out.pgc").read_bytes() == encoded
    assert np.array_equal(np.load(tmp_path / "layers.npy"), np.stack(by_layers))


def test_every_cli_command_keeps_freed_memory(monkeypatch, cli, tmp_path, encoded):
    calls = []
    monkeypatch.setattr("progcodec.cli.keep_freed_memory", lambda: calls.append(1) or True)
    (tmp_path / "a.pgc").write_bytes(encoded)
    result = cli("info", str(tmp_path / "a.pgc"))
    assert result.exit_code == 0
    assert calls == [1]
