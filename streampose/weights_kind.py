"""Telling which model a weights file holds, without running anything from it.

Used by the CLI shortcuts ``--det-model`` / ``--pose-model``: users coming from
the original top-down demo pass a YOLOv5 ``.pt`` and an HRNet checkpoint to
whatever pipeline is the default; the pipeline's step of that role is then
swapped for the step that reads this kind of file.

Recognition looks only at the file's structure: YOLOv5 files are pickles of
whole yolov5 models (their pickle names ``models.yolo``; the bytes are scanned,
not unpickled); everything else is read with ``torch.load(weights_only=True)``
and recognised by its keys.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

#: weights kind → the registered step type that reads it.
STEP_FOR_KIND: dict[str, str] = {
    "yolov5": "yolov5_detector",
    "yolox": "yolox_detector",
    "hrnet_topdown": "topdown_pose",
    "higherhrnet": "higherhrnet_pose",
    "movenet": "movenet_pose",
}

_YOLOV5_MARKER = b"models.yolo"
_LEGACY_SCAN_BYTES = 1 << 20


def weights_kind(path: str | Path) -> str | None:
    """One of the keys of ``STEP_FOR_KIND``, or None when unknown or unreadable.

    Never raises for a bad file: the step that loads it reports the problem.
    """
    path = Path(path)
    if not path.is_file():
        return None
    if _is_yolov5_pickle(path):
        return "yolov5"
    keys = _state_dict_keys(path)
    if not keys:
        return None
    if any(k.endswith("final_layers.1.weight") for k in keys):
        return "higherhrnet"
    if any(k.endswith("final_layer.weight") for k in keys):
        return "hrnet_topdown"
    if any(k.startswith("backbone.dark2.") for k in keys) and any(k.startswith("head.") for k in keys):
        return "yolox"
    if any(k.startswith("backbone.blocks.") for k in keys) and any("heatmap" in k or "center" in k for k in keys):
        return "movenet"
    return None


def _is_yolov5_pickle(path: Path) -> bool:
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
                return any(_YOLOV5_MARKER in archive.read(n) for n in pickles)
        with open(path, "rb") as f:
            return _YOLOV5_MARKER in f.read(_LEGACY_SCAN_BYTES)
    except (OSError, zipfile.BadZipFile):
        return False


def _state_dict_keys(path: Path) -> list[str]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception:  # noqa: BLE001 - any unreadable file is "unknown"; its step reports why
        return []
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        return []
    return [k for k in obj if isinstance(k, str)]
