"""The model zoo: one package per family, one registry, one checkpoint recogniser, one protocol per role.

- :mod:`.registry`: every model the project knows (``streampose models`` lists it), ``build(name)``;
- :mod:`.recognise`: which family / registry entry a weights file holds, by its contents;
- :mod:`.protocols`: ``Detector``, ``TopDownPoseModel``, ``BottomUpPoseModel``;
- family packages: :mod:`.yolov5`, :mod:`.yolox`, :mod:`.hrnet` (HRNet, SimDR), :mod:`.higherhrnet`,
  :mod:`.movenet`; each holds its network, checkpoint reading/remapping, decoders and adapter
  (HigherHRNet's network and checkpoint reader are :mod:`.hrnet`'s, which it extends);
- :mod:`.checkpoint`: safe state-dict reading shared by the families.

Importing this package is cheap: the torch-based modules are imported on
first use of the names below (``from streampose.models import load_pose_model``).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "build_model": "hrnet.network",
    "build_network": "hrnet.network",
    "HRNET_MODELS": "hrnet.network",
    "HRNET_WIDTHS": "hrnet.network",
    "PoseNetSpec": "hrnet.network",
    "PoseNetwork": "hrnet.network",
    "load_pose_model": "hrnet.checkpoints",
    "MODELS": "registry",
    "build": "registry",
    "recognise": "recognise",
    "Detector": "protocols",
    "TopDownPoseModel": "protocols",
    "BottomUpPoseModel": "protocols",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
