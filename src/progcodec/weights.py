"""Weights on disk: ``NAME.safetensors`` plus a ``NAME.json`` manifest.

A .pgc header names its weights by id: the first 8 bytes (16 hex digits) of
their sha256. Decoding finds them by that id, searching in order::

    weights=/--weights FILE|DIR ─► $PROGCODEC_WEIGHTS (path list) ─► shipped ─► user folder
                                                                  (current and kept earlier releases)

The first file whose manifest's sha256 starts with the id wins (the file's
own sha256 is verified when it loads). Encoding by model name takes the
first ``NAME.safetensors`` in the same folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from .errors import ProgcodecError, WeightsNotFoundError

ENV_VAR = "PROGCODEC_WEIGHTS"


def shipped_weights_dir() -> Path:
    """The weights that come with progcodec: the current ones, earlier releases in ``previous/``.

    An installed package carries them as package data (``progcodec/shipped_weights/``,
    copied there by setup.py's build step); a source checkout has them in the
    repository's ``weights/``.
    """
    from importlib.resources import files

    packaged = Path(str(files("progcodec"))) / "shipped_weights"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "weights"


def user_weights_dir() -> Path:
    """Per-user weights (``progcodec weights add``), e.g. ``~/.local/share/progcodec/weights``."""
    import platformdirs

    return Path(platformdirs.user_data_dir("progcodec", appauthor=False)) / "weights"


def weights_dir() -> Path:
    """Where weights are looked up by model name first: ``$PROGCODEC_WEIGHTS``'s first entry, else shipped."""
    env = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return Path(env[0]) if env else shipped_weights_dir()


def search_path(extra=()) -> list[tuple[Path, str]]:
    """(file or folder, where it came from) in lookup order."""
    entries = [(Path(p), "--weights") for p in extra]
    entries += [(Path(p), ENV_VAR) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    entries += [(shipped_weights_dir(), "shipped"), (user_weights_dir(), "user")]
    return entries


def _weights_files(entry: Path) -> list[Path]:
    if entry.suffix == ".safetensors":
        return [entry] if entry.is_file() else []
    if entry.is_dir():
        return sorted(entry.rglob("*.safetensors"), key=lambda p: (len(p.relative_to(entry).parts), str(p)))
    return []


def read_manifest(path: Path) -> dict | None:
    """The manifest beside a weights file, or None when it is missing or unreadable."""
    try:
        manifest = json.loads(Path(path).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("sha256"), str) else None


def cumulative_steps(training: dict | None) -> int:
    """Training steps along a manifest's whole chain of runs: its record's ``cumulative_steps``,
    or, in records written before that field, its own ``steps``; 0 for no record."""
    training = training or {}
    return int(training.get("cumulative_steps", training.get("steps", 0)))


def list_weights(extra=()) -> list[dict]:
    """Every weights file on the search path: path, source, model, id, steps (first occurrence of each path)."""
    found, seen = [], set()
    for entry, source in search_path(extra):
        for path in _weights_files(entry):
            key = path.resolve()
            manifest = read_manifest(path)
            if key in seen or manifest is None:
                continue
            seen.add(key)
            training = manifest.get("training")
            found.append({"path": str(path), "source": source, "model": manifest.get("model"),
                          "id": manifest["sha256"][:16],
                          "steps": cumulative_steps(training) if training else None})
    return found


def find_weights(weights_id: bytes, model: str, extra=()) -> Path:
    """The weights file with this id (8 bytes of sha256) for ``model``; see the module docstring."""
    wanted = weights_id.hex()
    candidates = list_weights(extra)
    for entry in candidates:
        if entry["id"] == wanted and entry["model"] == model:
            return Path(entry["path"])
    ids = ", ".join(f"{e['model']} {e['id']}" for e in candidates) or "none"
    raise WeightsNotFoundError(
        f"file needs {model} weights {wanted}, not found (found: {ids}); provide them with "
        f"--weights FILE (weights= in the API), the {ENV_VAR} path list, or `progcodec weights add FILE`")


def add_weights(path: Path) -> Path:
    """Copy a weights file and its manifest into the user folder, after checking its sha256."""
    path = Path(path)
    manifest = read_manifest(path)
    if not path.is_file() or manifest is None:
        raise ProgcodecError(f"{path}: not a weights file with a readable manifest ({path.with_suffix('.json').name})")
    if sha256_of(path) != manifest["sha256"]:
        raise ProgcodecError(f"{path}: sha256 does not match its manifest (damaged or replaced weights)")
    folder = user_weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{manifest.get('model', 'model')}-{manifest['sha256'][:16]}.safetensors"
    if not (dest.exists() and sha256_of(dest) == manifest["sha256"]):
        atomic_write_bytes(dest, path.read_bytes())
    atomic_write_bytes(dest.with_suffix(".json"), path.with_suffix(".json").read_bytes())
    return dest


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
    from safetensors.torch import save_file

    save_file(state, str(tmp))
    os.replace(tmp, path)
    manifest = {"model": model.name, "config": model.config(), **manifest, "sha256": sha256_of(path)}
    atomic_write_bytes(path.with_suffix(".json"), (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def resolve_weights(model_or_path: str) -> Path:
    """A model name (the first NAME.safetensors in $PROGCODEC_WEIGHTS's folders, else
    the shipped one) or a path to a .safetensors file."""
    p = Path(model_or_path)
    if p.suffix == ".safetensors":
        return p
    for entry in [Path(e) for e in os.environ.get(ENV_VAR, "").split(os.pathsep) if e]:
        if entry.is_dir() and (entry / f"{model_or_path}.safetensors").exists():
            return entry / f"{model_or_path}.safetensors"
    return shipped_weights_dir() / f"{model_or_path}.safetensors"


def load_model(model_or_path: str, device="cpu"):
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
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))
    model.to(device).eval()
    model.prepare_inference()
    if next(model.parameters()).device.type == "cpu":
        import torch

        model.set_transform_layout(torch.channels_last)
    model.weights_digest = bytes.fromhex(digest)[:8]
    model.manifest = manifest
    return model
