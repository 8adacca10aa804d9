"""Pipeline step ``yolox_detector``: YOLOX-style person detectors.

Defaults to the bundled light person detector (``weights/README.md``)::

    steps = [ { type = "yolox_detector" } ]          # light person detector, 192x192

``weights = "weights/yolox_nano_416.pth"`` is Megvii's COCO YOLOX-Nano at 416
(persons only are kept).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from ..device import check_threads, set_torch_threads
from ..records import Frame
from ..step import Step, register_step

logger = logging.getLogger(__name__)

_DEFAULT_DETECTOR = "weights/light_person_detector_192.pth"
#: ``precision = "auto"`` runs the detector in bf16 on CPUs with native bf16: its COCO AP lost
#: is at most 0.005 (BENCHMARKS.md "CPU precision", scripts/bf16_accuracy.py).
BF16_DEFAULT_ON_CPU = True


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
    CPUs without native bf16); backend: what runs the network
    (auto: the fastest `streampose backends --measure` measured on this
    machine, torch without such a table; torch, onnxruntime, openvino on
    the CPU, tensorrt on CUDA; the others than torch run an ONNX export
    made at start, in fp32, and our decoders).
    """

    weights: str = _DEFAULT_DETECTOR
    img_size: int | None = None
    score_threshold: float | None = None
    nms_threshold: float | None = None
    threads: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    backend: Literal["auto", "torch", "onnxruntime", "openvino", "tensorrt"] = "auto"

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
        from ..models.yolox.detector import YoloxDetector

        o = self.options
        set_torch_threads(o.threads)
        self.detector = YoloxDetector.from_weights(o.weights, img_size=o.img_size, score_threshold=o.score_threshold,
                                                   nms_threshold=o.nms_threshold, device=resolve_device(o.device))
        from ..export.backends import prepare_network

        self.detector.net = prepare_network(self.detector.net, backend=o.backend, precision=o.precision,
                                            device=self.detector.device, bf16_default_on_cpu=BF16_DEFAULT_ON_CPU,
                                            model_name="yolox", threads=o.threads,
                                            input_shape_chw=(3, *self.detector.input_hw))

    def process(self, frames: list[Frame]) -> list[Frame]:
        if self.detector is None:
            raise RuntimeError("yolox_detector: process() called before start()")
        for frame, detections in zip(frames, self.detector.detect([f.image for f in frames])):
            frame.packet.detections = detections
        return frames

    def close(self) -> None:
        self.detector = None
