"""Choosing the torch device from configuration."""

from __future__ import annotations

from .errors import ConfigError


def resolve_device(name: str = "auto"):
    """``"auto"`` → CUDA when present, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as given.

    Raises ConfigError for an unknown name or CUDA asked for where there is none.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device: {name!r} is not a device; use auto, cpu, cuda or cuda:N") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for but CUDA is not available here; use --device cpu")
    return device
