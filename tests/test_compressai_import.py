"""progcodec._compressai: the codec reaches CompressAI's entropy models, GDN and rANS coder
without running CompressAI's package import (torch_geometric, torch._dynamo) or scipy.stats,
and a later ``import compressai`` or ``import scipy.stats`` in the same process still gets
the whole module."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from progcodec.models import MODELS
from progcodec.models.base import _TABLE_BUFFERS
from progcodec.weights import load_model, shipped_weights_dir


def _run(script: str, tmp_path) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_coding_imports_only_the_parts_and_the_package_completes_later(tmp_path, astronaut):
    astronaut.save(tmp_path / "a.png")
    out = _run(
        "import sys\n"
        "from PIL import Image\n"
        "import progcodec\n"
        "data = progcodec.encode(Image.open('a.png'), model='vam', layers=2)\n"
        "assert progcodec.decode(data).size == (96, 64)\n"
        "print(sorted(m for m in ('compressai.models', 'compressai.datasets', 'compressai.zoo',\n"
        "                         'torch_geometric', 'torch._dynamo', 'scipy.stats._stats_py') if m in sys.modules))\n"
        # what a user's script or the bench's baseline does afterwards
        "import compressai\n"
        "from compressai.models import MeanScaleHyperprior\n"
        "from compressai.zoo import bmshj2018_factorized\n"
        "print(compressai.__version__ != '', compressai.available_entropy_coders()[0],\n"
        "      compressai.get_entropy_coder(), 'datasets' in vars(compressai))\n"
        "import scipy.stats\n"
        "print(round(float(scipy.stats.norm.ppf(0.975)), 2))\n"
        "from compressai.entropy_models import GaussianConditional\n"
        "from progcodec._compressai import GaussianConditional as ours\n"
        "print(ours is GaussianConditional)\n",
        tmp_path)
    assert out.splitlines() == ["[]", "True ans ans True", "1.96", "True"]


def test_compressai_imported_first_is_used_as_it_is(tmp_path, astronaut):
    astronaut.save(tmp_path / "a.png")
    out = _run(
        "import compressai\n"
        "full = compressai\n"
        "import progcodec, sys\n"
        "from PIL import Image\n"
        "data = progcodec.encode(Image.open('a.png'), model='vam', layers=1)\n"
        "print(sys.modules['compressai'] is full, progcodec.decode(data).size)\n",
        tmp_path)
    assert out == "True (96, 64)"


# Weights exported before EntropyCodedModel existed: their tables were built by CompressAI's
# CompressionModel.update (the vam shipped since, 8987f6b2, was exported by ours).
TABLES_BY_COMPRESSAI = ("previous/vam-9d4c0074eb243692.safetensors", "progdtd.safetensors")


def test_tables_built_after_training_equal_compressais():
    """EntropyCodedModel.update (our stand-in for CompressionModel.update) builds exactly
    the CDF tables that CompressAI's built for weights exported before it, so exported
    weights keep coding the same."""
    for name in TABLES_BY_COMPRESSAI:
        path = shipped_weights_dir() / name
        shipped = load_model(str(path))
        stored = load_file(str(path))
        fresh = MODELS[shipped.manifest["model"]](**shipped.manifest["config"])
        # everything but the tables, then build them
        fresh.load_state_dict({k: v for k, v in stored.items() if k.rsplit(".", 1)[-1] not in _TABLE_BUFFERS},
                              strict=False)
        assert fresh.update(force=True)
        state = fresh.state_dict()
        tables = [k for k in stored if k.rsplit(".", 1)[-1] in _TABLE_BUFFERS]
        assert len(tables) >= 7
        for key in tables:
            assert torch.equal(state[key], stored[key]), key
