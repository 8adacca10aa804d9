"""Telling which model a weights file holds, without running anything from it.

Used by the CLI shortcuts ``--det-model`` / ``--pose-model``: users coming from
the original top-down demo pass a YOLOv5 ``.pt`` and an HRNet checkpoint to
whatever pipeline is the default; the pipeline's step of that role is then
swapped for the step that reads this kind of file.

Recognition looks only at the file's structure: YOLOv5 files are pickles of
whole yolov5 models (their pickle names ``models.yolo``; the bytes are scanned,
not unpickled); everything else is read with ``torch.load(weights_only=True)``
and recognised by its keys.

Sniffing is bounded: only the first ``_LEGACY_SCAN_BYTES`` of a pickle are
scanned for the yolov5 marker (never a whole ``data.pkl`` entry, which a
hostile zip can inflate to gigabytes), and a zip whose directory fails
:func:`streampose.models.checkpoint.check_zip_directory` is not read at all
(it is "unknown" here; the step that loads it reports why).
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


def _zip_is_sane(path: Path) -> bool:
    from .errors import CheckpointError
    from .models.checkpoint import check_zip_directory

    try:
        with zipfile.ZipFile(path) as archive:
            check_zip_directory(archive, str(path))
    except (CheckpointError, OSError, zipfile.BadZipFile):
        return False
    return True


def _is_yolov5_pickle(path: Path) -> bool:
    try:
        if zipfile.is_zipfile(path):
            if not _zip_is_sane(path):
                return False
            with zipfile.ZipFile(path) as archive:
                pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
                for name in pickles:
                    with archive.open(name) as entry:  # a bounded prefix: the marker is near the start
                        if _YOLOV5_MARKER in entry.read(_LEGACY_SCAN_BYTES):
                            return True
                return False
        with open(path, "rb") as f:
            return _YOLOV5_MARKER in f.read(_LEGACY_SCAN_BYTES)
    except (OSError, zipfile.BadZipFile):
        return False


def _state_dict_keys(path: Path) -> list[str]:
    from .models.checkpoint import quiet_torch_load

    is_zip = zipfile.is_zipfile(path)
    if is_zip and not _zip_is_sane(path):
        return []
    try:
        obj = quiet_torch_load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception:  # noqa: BLE001 - any unreadable file is "unknown"; its step reports why
        return []
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        return []
    return [k for k in obj if isinstance(k, str)]
