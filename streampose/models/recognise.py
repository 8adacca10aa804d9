"""The one checkpoint recogniser: which family (and registry entry) a weights file holds, by its contents.

Used by the CLI shortcuts ``--det-model`` / ``--pose-model`` (to pick the step
that reads the file, or to say the file belongs to the other flag), by the
evaluation (detector or pose, top-down or bottom-up) and by ``streampose models``.
Nothing from a file is executed:

- YOLOv5 files are pickles of whole yolov5 models; their pickle names the
  module ``models.yolo``: the bytes are scanned, never unpickled here;
- everything else is read with ``torch.load(weights_only=True)`` and
  recognised by its keys and shapes: HRNet / SimDR / HigherHRNet by the
  HRNet family's own layout reader (:func:`streampose.models.hrnet.checkpoints.identify`),
  YOLOX and MoveNet (single-pose, or MultiPose by its box heads) by matching
  the shapes of their registered variants.

Recognition is bounded (issue 14): only the first ``_LEGACY_SCAN_BYTES`` of a
pickle are scanned for the yolov5 marker (never a whole ``data.pkl`` entry,
which a hostile zip can inflate to gigabytes), a zip whose directory fails
:func:`streampose.models.checkpoint.check_zip_directory` is not read at all
("unknown" here; the step that loads it says why), and torch's warnings are
logged, not printed.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from .registry import FAMILIES, MODELS, Family, ModelEntry


@dataclass(frozen=True)
class Recognised:
    """What a weights file is: its family and, when the contents pin it down, its registry entry."""

    path: Path
    family: str
    entry: ModelEntry | None = None
    #: top-down / bottom-up for the HRNet file layouts (the family's own role otherwise).
    role: str = ""

    def __post_init__(self) -> None:
        if not self.role:
            object.__setattr__(self, "role", FAMILIES[self.family].role)

    @property
    def family_info(self) -> Family:
        return FAMILIES[self.family]

    @property
    def model_name(self) -> str:
        """The registry entry to build the file with: its own, else its family's first (the builder
        reads the real layout from the file; the entry gives defaults only)."""
        if self.entry is not None:
            return self.entry.name
        return next(e.name for e in MODELS.values() if e.family == self.family)

    def describe(self) -> str:
        """E.g. "a person detector checkpoint (YOLOv5)"."""
        from .registry import ROLE_WORDS

        return f"a {ROLE_WORDS[self.role]} checkpoint ({self.family_info.title})"


_YOLOV5_MARKER = b"models.yolo"
_LEGACY_SCAN_BYTES = 1 << 20
_WRAPPER_KEYS = ("state_dict", "model")
_STRIPPED_PREFIXES = ("module.", "1.")


def recognise(path: str | Path) -> Recognised | None:
    """The family of a weights file, or None when it is missing, unreadable or of no known family.

    Never raises for a bad file: the step that loads it reports the problem.
    """
    path = Path(path)
    if not path.is_file():
        return None
    if _is_yolov5_pickle(path):
        return Recognised(path, "yolov5")
    contents = _state_dict(path)
    if contents is None:
        return None
    state, wrappers = contents
    keys = set(state)
    if "final_layer.weight" in keys or "final_layers.1.weight" in keys:
        return _recognise_hrnet(path, state, wrappers)
    if any(k.startswith("backbone.dark2.") for k in keys) and any(k.startswith("head.") for k in keys):
        return Recognised(path, "yolox", _matching_entry("yolox", state))
    if any(k.startswith("backbone.blocks.") for k in keys) and any(k.startswith("keypoint_heatmap.") for k in keys):
        # MultiPose has the single-pose heads plus person box heads.
        family = "movenet_multipose" if any(k.startswith("box_scale.") for k in keys) else "movenet"
        return Recognised(path, family, _matching_entry(family, state))
    return None


def _recognise_hrnet(path: Path, state: dict, wrappers: tuple[str, ...]) -> Recognised | None:
    import torch

    from ..errors import CheckpointError
    from .hrnet.checkpoints import CheckpointContents, identify

    has_fp16 = any(v.dtype == torch.float16 for v in state.values())
    try:
        spec = identify(CheckpointContents(state, wrappers, has_fp16), path)
    except CheckpointError:
        return None
    bottom_up = spec.head.kind == "higherhrnet"
    return Recognised(path, "higherhrnet" if bottom_up else "hrnet", MODELS.get(spec.name),
                      "bottomup" if bottom_up else "topdown")


def _matching_entry(family: str, state: dict) -> ModelEntry | None:
    """The registry entry of ``family`` whose network has exactly these keys and shapes."""
    from .registry import build_random

    for entry in MODELS.values():
        if entry.family != family:
            continue
        own = build_random(entry.name).network.state_dict()
        if set(own) == set(state) and all(tuple(own[k].shape) == tuple(state[k].shape) for k in own):
            return entry
    return None


def _zip_is_sane(path: Path) -> bool:
    from ..errors import CheckpointError
    from .checkpoint import check_zip_directory

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


def _state_dict(path: Path) -> tuple[dict, tuple[str, ...]] | None:
    """The file's ``{name: tensor}`` with wrappers and key prefixes peeled, and what was peeled."""
    import torch

    from .checkpoint import quiet_torch_load

    is_zip = zipfile.is_zipfile(path)
    if is_zip and not _zip_is_sane(path):
        return None
    try:
        obj = quiet_torch_load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception:  # noqa: BLE001 - any unreadable file is "unknown"; its step reports why
        return None
    wrappers: list[str] = []
    while isinstance(obj, dict):
        inner = next((w for w in _WRAPPER_KEYS if isinstance(obj.get(w), dict)), None)
        if inner is None:
            break
        wrappers.append(inner)
        obj = obj[inner]
    if not isinstance(obj, dict) or not obj:
        return None
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        return None
    state = dict(obj)
    for prefix in _STRIPPED_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
            wrappers.append(prefix)
    return state, tuple(wrappers)
