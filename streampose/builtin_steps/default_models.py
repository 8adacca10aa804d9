"""Pipeline steps of the bundled default models: ``yolox_detector`` and ``movenet_pose``.

Both default to weights committed in ``weights/`` (see ``weights/README.md``),
so the default pipeline runs with no download::

    steps = [ { type = "yolox_detector" } ]          # light person detector, 192x192
    steps = [ { type = "movenet_pose" } ]            # MoveNet Lightning on person crops

``yolox_detector`` with ``weights = "weights/yolox_nano_416.pth"`` is
Megvii's COCO YOLOX-Nano at 416 (persons only are kept).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from typing import Literal

from ..device import check_threads, resolve_precision, set_torch_threads
from ..errors import ConfigError
from ..records import Frame, Poses
from ..step import Step, register_step

logger = logging.getLogger(__name__)

_DEFAULT_DETECTOR = "weights/light_person_detector_192.pth"
_DEFAULT_POSE = "weights/movenet_lightning.pth"


#: whether ``precision = "auto"`` runs the model in bf16 on a CPU with native bf16: yes where
#: the COCO AP lost is at most 0.005 (BENCHMARKS.md "CPU precision", scripts/bf16_accuracy.py).
BF16_DEFAULT_ON_CPU = {"yolox_detector": True, "movenet_pose": True}


def _in_precision(network, precision: str, device, bf16_default_on_cpu: bool):
    """``network`` run in the resolved precision (ConfigError where the device lacks it)."""
    from ..gpu.acceleration import accelerate_network

    return accelerate_network(network, precision=resolve_precision(precision, device, bf16_default_on_cpu))


def _check_fraction(name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: must be between 0 and 1, got {value}")


@dataclass
class YoloxDetectorOptions:
    """Options of ``yolox_detector``.

    weights: a converted YOLOX state dict (``scripts/convert_yolox.py``;
    relative paths resolve against the project root); img_size: square
    network input, a multiple of 32 (unset: the bundled file's own, 192 for
    the light person detector, 416 for YOLOX-Nano); score_threshold /
    nms_threshold: unset: the file's configuration (0.3 / 0.5 for the light
    detector, 0.3 / 0.45 for YOLOX-Nano); threads: torch CPU threads of the
    process running the step (0: the runtime's choice, by measured stage
    cost); device: auto, cpu, cuda, cuda:N; precision: "auto" (bf16 on a CPU with
    AMX or AVX512-BF16 where the model loses no accuracy in it, see
    BENCHMARKS.md "CPU precision"; else fp32), "fp32" or "bf16" (refused on
    CPUs without native bf16).
    """

    weights: str = _DEFAULT_DETECTOR
    img_size: int | None = None
    score_threshold: float | None = None
    nms_threshold: float | None = None
    threads: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    def __post_init__(self) -> None:
        if self.img_size is not None and (self.img_size < 32 or self.img_size % 32):
            raise ValueError(f"img_size: must be a positive multiple of 32, got {self.img_size}")
        _check_fraction("score_threshold", self.score_threshold)
        _check_fraction("nms_threshold", self.nms_threshold)
        check_threads(self.threads)


@register_step("yolox_detector")
class YoloxDetectorStep(Step):
    """Fill ``packet.detections`` with person boxes from a YOLOX-style detector, all frames of a batch at once."""

    Options = YoloxDetectorOptions
    role = "detector"

    def __init__(self, options: YoloxDetectorOptions) -> None:
        self.options = options
        self.detector = None

    def start(self) -> None:
        from ..device import resolve_device
        from ..models.yolox_detector import YoloxDetector

        o = self.options
        set_torch_threads(o.threads)
        self.detector = YoloxDetector.from_weights(o.weights, img_size=o.img_size, score_threshold=o.score_threshold,
                                                   nms_threshold=o.nms_threshold, device=resolve_device(o.device))
        self.detector.net = _in_precision(self.detector.net, o.precision, self.detector.device,
                                          BF16_DEFAULT_ON_CPU["yolox_detector"])

    def process(self, frames: list[Frame]) -> list[Frame]:
        if self.detector is None:
            raise RuntimeError("yolox_detector: process() called before start()")
        for frame, detections in zip(frames, self.detector.predict_batch([f.image for f in frames])):
            frame.packet.detections = detections
        return frames

    def close(self) -> None:
        self.detector = None


@dataclass
class MoveNetPoseOptions:
    """Options of ``movenet_pose``.

    weights: a converted MoveNet state dict (``scripts/convert_movenet.py``);
    flip_test: also run the mirrored crops and average (better keypoints,
    twice the time; off in the original pipeline); quantized: run the int8-faithful
    network (the TFLite runtime's keypoints exactly, about 1.6x the float
    network's time per crop; COCO AP on ../shared/coco with ground-truth
    boxes 0.532 against the float network's 0.590); needs
    ``<weights stem>_quant.pth`` beside the weights, written by the same script; max_batch: most person
    crops per forward pass (a flip test doubles it); threads: torch CPU
    threads of the process running the step (0: the runtime's choice, by
    measured stage cost); device: auto, cpu, cuda, cuda:N; precision: "auto" (bf16 on a CPU with
    AMX or AVX512-BF16 where the model loses no accuracy in it, see
    BENCHMARKS.md "CPU precision"; else fp32), "fp32" or "bf16" (refused on
    CPUs without native bf16).
    Ignored with ``quantized``.
    """

    weights: str = _DEFAULT_POSE
    flip_test: bool = False
    quantized: bool = False
    max_batch: int = 32
    threads: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch: must be at least 1, got {self.max_batch}")
        check_threads(self.threads)


@register_step("movenet_pose")
class MoveNetPoseStep(Step):
    """Fill ``packet.poses``: one MoveNet pose per detected box (top-down, square crops).

    Needs ``packet.detections`` from a detector step earlier in the pipeline.
    Poses keep the detections' order and boxes; the person score is box
    score x mean keypoint score above 0.2.
    """

    Options = MoveNetPoseOptions
    role = "pose"

    def __init__(self, options: MoveNetPoseOptions) -> None:
        self.options = options
        self.estimator = None

    def start(self) -> None:
        from ..device import resolve_device
        from ..models.movenet_topdown import load_movenet_topdown
        from ..topdown.estimator import TopDownEstimator

        o = self.options
        set_torch_threads(o.threads)
        model = load_movenet_topdown(o.weights, flip_test=o.flip_test, quantized=o.quantized,
                                     device=resolve_device(o.device))
        if not o.quantized:  # the int8-faithful network is exact by design: it stays as it is
            model.network = _in_precision(model.network, o.precision, model.device,
                                          BF16_DEFAULT_ON_CPU["movenet_pose"])
        self.estimator = TopDownEstimator(model, max_batch=o.max_batch)

    def process(self, frames: list[Frame]) -> list[Frame]:
        if self.estimator is None:
            raise RuntimeError("movenet_pose: process() called before start()")
        for frame in frames:
            if frame.packet.detections is None:
                raise ConfigError("movenet_pose: a frame arrived without detections; put a detector step "
                                  "(e.g. yolox_detector) before it")
        poses = self.estimator.predict_batch([f.image for f in frames],
                                             [f.packet.detections.xyxy for f in frames],
                                             [f.packet.detections.scores for f in frames])
        for frame, people in zip(frames, poses):
            frame.packet.poses = people if len(people) else Poses.empty(self.estimator.num_keypoints)
        return frames

    def close(self) -> None:
        self.estimator = None
