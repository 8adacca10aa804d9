"""Pose estimators and detectors for evaluation, from a checkpoint or from a pipeline definition.

- :func:`estimator_from_checkpoint`: an HRNet / SimDR checkpoint → the
  library's :class:`~streampose.topdown.estimator.TopDownEstimator`, a
  HigherHRNet one → its registry model, a
  :class:`~streampose.models.protocols.BottomUpPoseModel`;
- :func:`detector_from_weights`: a YOLOv5 ``.pt`` or a YOLOX state dict
  (``.pth``) → a detector with ``predict(image) -> Detections``;
- :func:`steps_from_pipeline`: the pose (and detector) steps of a
  ``pipelines/*.toml`` definition, with the CLI shortcuts applied, wrapped so
  the runner can call them like estimators (:class:`StepPoseEstimator`,
  :class:`StepDetector`). Any registered pose step works this way, e.g. the
  MoveNet or HigherHRNet ones, without the evaluation knowing their classes.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError, UserError
from ..models.registry import FAMILIES
from ..records import Detections, Frame, FramePacket, Poses

EstimatorKind = Literal["topdown", "bottomup"]

#: Registered pose step types that see whole frames (everything else with role "pose" is top-down):
#: the steps of the registry's bottom-up families.
BOTTOM_UP_STEP_TYPES = frozenset(f.step_type for f in FAMILIES.values() if f.role == "bottomup")


def checkpoint_kind(path: str | Path) -> EstimatorKind:
    """Whether a pose checkpoint is top-down (HRNet, SimDR, MoveNet) or bottom-up (HigherHRNet).

    Raises UserError for a missing file or one that is not a pose checkpoint
    (a detector's says so and names ``--det-model``).
    """
    return _recognised(path, ("topdown", "bottomup"), "--pose-model").role  # type: ignore[return-value]


def _recognised(path: str | Path, roles: tuple[str, ...], flag: str):
    """The one recogniser's answer for a file that must be of one of ``roles``."""
    from ..models.recognise import recognise
    from ..models.registry import ROLE_FLAGS
    from ..paths import existing_file

    file = existing_file(path, "weights", "see `streampose models` for where each model's weights come from")
    found = recognise(file)
    if found is None:
        raise UserError(f"{path}: not a checkpoint of any known model family (see `streampose models`)")
    if found.role not in roles:
        raise UserError(f"{path} is {found.describe()}, not what {flag} takes; pass it with {ROLE_FLAGS[found.role]}")
    return found


def estimator_from_checkpoint(path: str | Path, *, flip_test: bool = True,
                              device: str = "auto") -> tuple[Any, EstimatorKind]:
    """The library's estimator for a pose checkpoint, and its kind.

    HRNet / SimDR / MoveNet → ``(TopDownEstimator, "topdown")``; HigherHRNet →
    ``(HigherHRNetEstimator, "bottomup")`` with the model's own input size; MoveNet
    MultiPose → ``(MoveNetMultiPoseModel, "bottomup")`` (each the registry's model of the file).
    Raises UserError / CheckpointError (one line) for a missing or unfit file.
    """
    from ..device import resolve_device
    from ..models.registry import build

    found = _recognised(path, ("topdown", "bottomup"), "--pose-model")
    if found.family == "movenet_multipose":  # no flip test: a single-shot model
        return build(found.model_name, weights=path, device=resolve_device(device)), "bottomup"
    model = build(found.model_name, weights=path, device=resolve_device(device), flip_test=flip_test)
    if found.role == "bottomup":
        return model, "bottomup"
    from ..topdown.estimator import TopDownEstimator

    return TopDownEstimator(model), "topdown"


def detector_from_weights(path: str | Path, *, img_size: int | None = None, score_threshold: float | None = None,
                          device: str = "auto"):
    """A person detector (:class:`~streampose.models.protocols.Detector`, plus ``predict(image)``) from weights.

    Any detector checkpoint the recogniser knows: a YOLOv5 ``.pt``, a converted
    YOLOX state dict. img_size, score_threshold: None keeps the detector's own defaults.
    """
    from ..device import resolve_device

    from ..models.registry import build

    found = _recognised(path, ("detector",), "--det-model")
    options = {"img_size": img_size, "score_threshold": score_threshold}
    return build(found.model_name, weights=path, device=resolve_device(device),
                 **{k: v for k, v in options.items() if v is not None})


def _frame(image: np.ndarray, index: int, detections: Detections | None = None) -> Frame:
    packet = FramePacket(source_id=0, source_name="coco-eval", index=index, pts_s=None,
                         shape=tuple(image.shape), capture_time=time.monotonic(), detections=detections)
    return Frame(packet, image)


@dataclass
class StepPoseEstimator:
    """A started pose step called like an estimator.

    Top-down: ``predict(image, xyxy, box_scores)`` puts the boxes in the
    packet's detections (class 0, person) and returns the step's poses, which
    must be one per box. Bottom-up: ``predict(image)``.
    """

    step: Any
    kind: EstimatorKind
    _index: int = field(default=0, init=False)

    @property
    def model(self) -> Any:
        """The model of the step's top-down estimator, when it has one (its crop spec sizes the OKS-NMS)."""
        return getattr(getattr(self.step, "estimator", None), "model", None)

    def predict(self, image: np.ndarray, xyxy: np.ndarray | None = None,
                box_scores: np.ndarray | None = None) -> Poses:
        detections = None
        if self.kind == "topdown":
            xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
            scores = np.ones(len(xyxy), np.float32) if box_scores is None else box_scores
            detections = Detections(xyxy, scores, np.zeros(len(xyxy), np.int64))
        frame = _frame(image, self._index, detections)
        self._index += 1
        self.step.process([frame])
        poses = frame.packet.poses
        if poses is None:
            raise RuntimeError(f"pose step {self.step.type_name!r} left packet.poses unset")
        return poses


@dataclass
class StepDetector:
    """A started detector step called like a detector: ``predict(image) -> Detections``."""

    step: Any
    _index: int = field(default=0, init=False)

    def predict(self, image: np.ndarray) -> Detections:
        frame = _frame(image, self._index)
        self._index += 1
        self.step.process([frame])
        if frame.packet.detections is None:
            raise RuntimeError(f"detector step {self.step.type_name!r} left packet.detections unset")
        return frame.packet.detections


@dataclass
class PipelineModels:
    """The started steps of a pipeline wrapped for evaluation; ``close()`` them when done."""

    pose: StepPoseEstimator
    detector: StepDetector | None
    steps: list[Any]

    def close(self) -> None:
        for step in reversed(self.steps):
            step.close()


def _has_option(cls: type, name: str) -> bool:
    return name in {f.name for f in dataclasses.fields(cls.Options)}


def steps_from_pipeline(name: str, *, pose_model: str | None = None, det_model: str | None = None,
                        img_size: int | None = None, device: str | None = None, flip_test: bool = True,
                        score_threshold: float | None = None, want_detector: bool = False) -> PipelineModels:
    """Build and start the pose step (and, if asked, the detector step) of a pipeline definition.

    pose_model, det_model, img_size, device: the CLI shortcuts (see
    :func:`streampose.config.apply_overrides`); flip_test False sets the
    pose step's ``flip_test`` option; score_threshold sets the detector
    step's ``score_threshold`` / ``conf_threshold`` option. Raises
    ConfigError when the pipeline lacks the step or the option.
    """
    from ..config import apply_overrides, load_pipeline, step_class
    from ..step import build_step

    config = apply_overrides(load_pipeline(name), device=device, det_model=det_model, pose_model=pose_model,
                             img_size=img_size)
    specs = [spec for stage in config.stages for spec in stage.steps]

    def find(role: str) -> dict[str, Any] | None:
        found = [s for s in specs if (cls := step_class(s)) is not None and cls.role == role]
        return dict(found[0]) if found else None

    pose_spec = find("pose")
    if pose_spec is None:
        raise ConfigError(f"pipeline {config.name!r} has no pose step to evaluate; pick one with a pose step")
    pose_cls = step_class(pose_spec)
    if not flip_test:
        if not _has_option(pose_cls, "flip_test"):
            raise ConfigError(f"--no-flip: pose step {pose_spec['type']!r} has no flip_test option")
        pose_spec["flip_test"] = False
    kind: EstimatorKind = "bottomup" if pose_spec["type"] in BOTTOM_UP_STEP_TYPES else "topdown"

    det_spec = None
    if want_detector and kind == "topdown":
        det_spec = find("detector")
        if det_spec is None:
            raise ConfigError(f"--boxes detector: pipeline {config.name!r} has no detector step; "
                              "give --det-model or pick a pipeline with one")
        if score_threshold is not None:
            det_cls = step_class(det_spec)
            option = next((o for o in ("score_threshold", "conf_threshold") if _has_option(det_cls, o)), None)
            if option is None:
                raise ConfigError(f"--det-conf: detector step {det_spec['type']!r} has no score threshold option")
            det_spec[option] = score_threshold

    steps: list[Any] = []
    try:
        pose_step = build_step(pose_spec, key_path="pose step")
        pose_step.start()
        steps.append(pose_step)
        detector = None
        if det_spec is not None:
            det_step = build_step(det_spec, key_path="detector step")
            det_step.start()
            steps.append(det_step)
            detector = StepDetector(det_step)
    except BaseException:
        for step in reversed(steps):
            step.close()
        raise
    return PipelineModels(StepPoseEstimator(pose_step, kind), detector, steps)
