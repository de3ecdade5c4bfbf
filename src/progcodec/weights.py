"""Weights on disk: ``NAME.safetensors`` plus a ``NAME.json`` manifest."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import ProgcodecError


def weights_dir() -> Path:
    """``$PROGCODEC_WEIGHTS``, else the ``weights/`` folder of the source checkout."""
    env = os.environ.get("PROGCODEC_WEIGHTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "weights"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename: never a partial file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600 files: give the usual 0666 & ~umask instead
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_weights(model, path: Path, manifest: dict) -> dict:
    """Export a trained model: final CDF tables, safetensors, manifest with sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    model.update(force=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".safetensors.part")
    save_file(state, str(tmp))
    os.replace(tmp, path)
    manifest = {"model": model.name, "config": model.config(), **manifest, "sha256": sha256_of(path)}
    atomic_write_bytes(path.with_suffix(".json"), (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def resolve_weights(model_or_path: str) -> Path:
    """A model name (looked up in the weights folder) or a path to a .safetensors file."""
    p = Path(model_or_path)
    if p.suffix == ".safetensors":
        return p
    return weights_dir() / f"{model_or_path}.safetensors"


def load_model(model_or_path: str, device: torch.device | str = "cpu"):
    """Build the model named in the manifest, load its weights, ready to code."""
    from .models import MODELS

    path = resolve_weights(model_or_path)
    manifest_path = path.with_suffix(".json")
    if not path.exists() or not manifest_path.exists():
        raise ProgcodecError(f"no weights for {model_or_path!r} (looked for {path} and its .json manifest)")
    manifest = json.loads(manifest_path.read_text())
    digest = sha256_of(path)
    if manifest.get("sha256") != digest:
        raise ProgcodecError(f"{path}: sha256 does not match its manifest (damaged or replaced weights)")
    cls = MODELS.get(manifest.get("model"))
    if cls is None:
        raise ProgcodecError(f"{manifest_path}: unknown model {manifest.get('model')!r}")
    model = cls(**manifest["config"])
    model.load_state_dict(load_file(str(path)))
    model.to(device).eval()
    model.prepare_inference()
    model.weights_digest = bytes.fromhex(digest)[:8]
    model.manifest = manifest
    return model
