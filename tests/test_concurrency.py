"""Concurrent use: threads and processes get the same bytes and pixels as single calls; thread counts don't matter."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import progcodec


@pytest.fixture(scope="module")
def images(astronaut, coffee, chelsea_portrait):
    return [astronaut, coffee, chelsea_portrait]


def test_eight_threads_encode_and_decode_like_single_calls(images, net):
    single = [progcodec.encode(im) for im in images]
    pixels = [np.asarray(progcodec.decode(d, layers=k)) for d in single for k in (1, 5)]

    def work(i):
        data = progcodec.encode(images[i % 3])
        return i, data, [np.asarray(progcodec.decode(data, layers=k)) for k in (1, 5)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(16)))
    for i, data, decoded in results:
        assert data == single[i % 3], i
        for j, image in enumerate(decoded):
            assert np.array_equal(image, pixels[2 * (i % 3) + j]), i


def test_threads_share_one_cached_model(net):
    with ThreadPoolExecutor(8) as pool:
        models = list(pool.map(lambda _: progcodec.api.get_model("vam"), range(8)))
    assert all(m is net for m in models)


SCRIPT = """
import sys, torch, progcodec, numpy as np
torch.set_num_threads(int(sys.argv[1]))
data = sys.stdin.buffer.read()
if sys.argv[2] == "encode":
    from PIL import Image
    import io
    sys.stdout.buffer.write(progcodec.encode(Image.open(io.BytesIO(data))))
else:
    sys.stdout.buffer.write(np.asarray(progcodec.decode(data)).tobytes())
"""


def _run(threads: int, mode: str, data: bytes, weights_dir) -> bytes:
    import os

    env = dict(os.environ, PROGCODEC_WEIGHTS=str(weights_dir))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(threads), mode], input=data, capture_output=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def test_thread_count_and_process_do_not_change_the_bits(astronaut, encoded, weights_dir):
    """Encoded with 1 torch thread or 2, in a fresh process: the same file; decoded likewise: the same pixels."""
    import io

    png = io.BytesIO()
    astronaut.save(png, "PNG")
    one, two = (_run(t, "encode", png.getvalue(), weights_dir) for t in (1, 2))
    assert one == two == encoded
    pixels = np.asarray(progcodec.decode(encoded)).tobytes()
    assert _run(1, "decode", two, weights_dir) == _run(2, "decode", one, weights_dir) == pixels
