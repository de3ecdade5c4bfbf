"""One place for device choice (torch is imported on first use: the CLI starts fast)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ProgcodecError

if TYPE_CHECKING:   # annotations only: torch is imported where it is used
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda`` (or a torch device) into a ``torch.device``."""
    import torch

    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ProgcodecError("--device cuda was asked for, but no CUDA device is available")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ProgcodecError(f"unknown device {device!r}: choose one of {', '.join(DEVICE_CHOICES)}")
