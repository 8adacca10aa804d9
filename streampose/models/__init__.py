"""Network definitions and checkpoint loaders.

Importing this package is cheap: the torch-based modules are imported on
first use of the names below (``from streampose.models import load_pose_model``).

- :func:`build_model` (name → network with fresh weights; names in ``HRNET_MODELS``),
- :func:`load_pose_model` (checkpoint path → (network, spec); HRNet, SimDR, HigherHRNet),
- :class:`PoseNetSpec` (what a network is: backbone width, head, input size, upstream family).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "build_model": "hrnet",
    "build_network": "hrnet",
    "HRNET_MODELS": "hrnet",
    "HRNET_WIDTHS": "hrnet",
    "PoseNetSpec": "hrnet",
    "PoseNetwork": "hrnet",
    "load_pose_model": "hrnet_checkpoints",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
