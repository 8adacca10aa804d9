"""Pipeline steps of Google's MoveNet: ``movenet_pose`` on person crops (top-down) and
``movenet_multipose`` on whole frames (bottom-up, MultiPose Lightning, up to 6 people).

Both default to bundled weights (``weights/README.md``), so they run with no download::

    steps = [ { type = "movenet_pose" } ]            # MoveNet Lightning on person crops
    steps = [ { type = "movenet_multipose" } ]       # MoveNet MultiPose: no detector step needed
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from ..device import check_threads, set_torch_threads
from ..errors import ConfigError
from ..records import Frame, Poses
from ..step import Step, register_step

logger = logging.getLogger(__name__)

_DEFAULT_POSE = "weights/movenet_lightning.pth"
#: ``precision = "auto"`` runs MoveNet in bf16 on CPUs with native bf16: its COCO AP lost
#: is at most 0.005 (BENCHMARKS.md "CPU precision", scripts/bf16_accuracy.py).
BF16_DEFAULT_ON_CPU = True


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
    crops per forward pass (unset: 8 on the CPU, 64 on CUDA; a flip test doubles it); threads: torch CPU
    threads of the process running the step (0: the runtime's choice, by
    measured stage cost); device: auto, cpu, cuda, cuda:N; precision: "auto" (bf16 on a CPU with
    AMX or AVX512-BF16 where the model loses no accuracy in it, see
    BENCHMARKS.md "CPU precision"; else fp32), "fp32" or "bf16" (refused on
    CPUs without native bf16).
    Ignored with ``quantized``. backend: what runs the network
    (auto: the fastest `streampose backends --measure` measured on this
    machine, torch without such a table; torch, onnxruntime, openvino on
    the CPU, tensorrt on CUDA; the others than torch run an ONNX export
    made at start, in fp32, and our decoders).
    """

    weights: str = _DEFAULT_POSE
    flip_test: bool = False
    quantized: bool = False
    max_batch: int | None = None
    threads: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    backend: Literal["auto", "torch", "onnxruntime", "openvino", "tensorrt"] = "auto"

    def __post_init__(self) -> None:
        if self.max_batch is not None and self.max_batch < 1:
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
        from ..models.movenet.topdown import load_movenet_topdown
        from ..topdown.estimator import TopDownEstimator

        o = self.options
        set_torch_threads(o.threads)
        model = load_movenet_topdown(o.weights, flip_test=o.flip_test, quantized=o.quantized,
                                     device=resolve_device(o.device))
        if o.quantized and o.backend not in ("torch", "auto"):
            raise ConfigError("movenet_pose: quantized runs on the torch backend only; use backend = \"torch\"")
        if not o.quantized:  # the int8-faithful network is exact by design: it stays as it is
            from ..export.backends import prepare_network

            model.network = prepare_network(model.network, backend=o.backend, precision=o.precision,
                                            device=model.device, bf16_default_on_cpu=BF16_DEFAULT_ON_CPU,
                                            model_name="movenet", threads=o.threads,
                                            input_shape_chw=(3, *model.crop.input_size_wh[::-1]))
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


@dataclass
class MoveNetMultiPoseOptions:
    """Options of ``movenet_multipose``.

    weights: converted MultiPose weights (``scripts/convert_movenet_tfjs.py --model multipose``);
    input_size: longer side of the network input, a multiple of 32 (256, Google's
    recommendation; the other side follows the frame's aspect, padded to a multiple of 32);
    min_pose_score: people scoring less are dropped (the model always proposes 6);
    threads, device, backend: as ``movenet_pose``'s; precision: "auto" is fp32 here
    (bf16 on CPU measured at COCO AP 0.466 against fp32's 0.493 on ../shared/coco, for
    about 2x the speed: ask for it with "bf16").
    """

    weights: str = "weights/movenet_multipose_lightning.pth"
    input_size: int = 256
    min_pose_score: float = 0.2
    threads: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    backend: Literal["auto", "torch", "onnxruntime", "openvino", "tensorrt"] = "auto"

    def __post_init__(self) -> None:
        if self.input_size < 32 or self.input_size % 32:
            raise ValueError(f"input_size: must be a positive multiple of 32, got {self.input_size}")
        if not 0.0 <= self.min_pose_score <= 1.0:
            raise ValueError(f"min_pose_score: must be between 0 and 1, got {self.min_pose_score}")
        check_threads(self.threads)


@register_step("movenet_multipose")
class MoveNetMultiPoseStep(Step):
    """Fill ``packet.poses`` with the people (up to 6) MoveNet MultiPose finds in each frame.

    No detector is needed; poses carry the model's own person boxes and scores.
    Frames of the same size share one forward pass.
    """

    Options = MoveNetMultiPoseOptions
    role = "pose"

    def __init__(self, options: MoveNetMultiPoseOptions) -> None:
        self.options = options
        self.model = None

    def start(self) -> None:
        from ..device import resolve_device
        from ..export.backends import prepare_network
        from ..models.movenet.multipose import load_movenet_multipose

        o = self.options
        set_torch_threads(o.threads)
        model = load_movenet_multipose(o.weights, input_size=o.input_size, min_pose_score=o.min_pose_score,
                                       device=resolve_device(o.device))
        try:
            model.network = prepare_network(model.network, backend=o.backend, precision=o.precision,
                                            device=model.device, bf16_default_on_cpu=False,
                                            model_name="movenet_multipose", threads=o.threads)
        except ConfigError as e:  # bf16 on a CPU without it, a backend not installed
            raise ConfigError(f"movenet_multipose: {e}") from e
        self.model = model

    def process(self, frames: list[Frame]) -> list[Frame]:
        if self.model is None:
            raise RuntimeError("movenet_multipose: process() called before start()")
        for frame, poses in zip(frames, self.model.predict_batch([f.image for f in frames])):
            frame.packet.poses = poses
        return frames

    def close(self) -> None:
        self.model = None
