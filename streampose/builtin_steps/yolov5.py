"""Pipeline step ``yolov5_detector``: person boxes from an original YOLOv5 ``.pt`` checkpoint.

Every frame the stage hands over (``batch_size`` of the stage) goes through
the network in one forward pass; each packet gets ``packet.detections`` in
frame pixels. The checkpoint is read without executing anything from it
(see :mod:`streampose.models.yolov5.safe_unpickle`)::

    steps = [ { type = "yolov5_detector", weights = "weights/crowdhuman_yolov5m.pt",
                img_size = 640, conf_threshold = 0.4, iou_threshold = 0.5 } ]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..device import check_threads, set_torch_threads
from ..errors import ConfigError
from ..records import Frame
from ..step import Step, register_step


#: ``precision = "auto"`` runs YOLOv5 in bf16 on CPUs with native bf16 (BENCHMARKS.md "CPU precision").
BF16_DEFAULT_ON_CPU = True


@dataclass
class YoloV5DetectorOptions:
    """Options of ``yolov5_detector``.

    weights: yolov5 ``.pt`` file (v1-v5 Focus/SPP or v6+ models; relative
    paths resolve against the project root); img_size: letterbox size, a
    multiple of 32; conf_threshold / iou_threshold: yolov5 defaults 0.25 /
    0.45 (the original top-down demo used 0.4 / 0.5); max_detections: per
    frame; classes: class names to keep (empty list: all classes);
    letterbox: "rect" (smallest multiple of 32, faster) or "square"; fuse:
    fold BatchNorm into the convolutions; half: fp16 weights and inputs, CUDA only
    (an error on the CPU, as ``precision = "fp16"`` is for pose steps); threads: torch CPU threads of the
    stage's process (0: the runtime's choice, by measured stage cost);
    device: auto, cpu, cuda, cuda:N; cudnn_benchmark: cuDNN autotuning of
    the convolutions (CUDA; set in start()); precision: CPU bf16 (AMX or
    AVX512-BF16 only; "auto": bf16 there when it loses no accuracy, see
    BENCHMARKS.md "CPU precision"), fp16 on CUDA is ``half``; backend: what runs the network
    (auto: the fastest `streampose backends --measure` measured on this
    machine, torch without such a table; torch, onnxruntime, openvino on
    the CPU, tensorrt on CUDA; the others than torch run an ONNX export
    made at start, in fp32, and our decoders).
    """

    weights: str
    img_size: int = 640
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 300
    classes: list[str] = field(default_factory=lambda: ["person"])
    letterbox: Literal["rect", "square"] = "rect"
    fuse: bool = True
    half: bool = False
    threads: int = 0
    device: str = "auto"
    cudnn_benchmark: bool = False
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    backend: Literal["auto", "torch", "onnxruntime", "openvino", "tensorrt"] = "auto"

    def __post_init__(self) -> None:
        if self.img_size < 32 or self.img_size % 32:
            raise ValueError(f"img_size: must be a positive multiple of 32, got {self.img_size}")
        for name in ("conf_threshold", "iou_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: must be between 0 and 1, got {value}")
        if self.max_detections < 1:
            raise ValueError(f"max_detections: must be at least 1, got {self.max_detections}")
        check_threads(self.threads)
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes: names repeat in {self.classes}")


@register_step("yolov5_detector")
class YoloV5DetectorStep(Step):
    """Fill ``packet.detections`` with YOLOv5 boxes of the chosen classes (default: person)."""

    Options = YoloV5DetectorOptions
    role = "detector"

    def __init__(self, options: YoloV5DetectorOptions) -> None:
        self.options = options
        self.detector = None

    def start(self) -> None:
        from ..models.yolov5.detector import YoloV5Detector

        o = self.options
        set_torch_threads(o.threads)
        from ..gpu.acceleration import configure_cudnn

        configure_cudnn(o.cudnn_benchmark)
        try:
            self.detector = YoloV5Detector.from_checkpoint(
                o.weights, img_size=o.img_size, conf_threshold=o.conf_threshold, iou_threshold=o.iou_threshold,
                max_detections=o.max_detections, classes=tuple(o.classes) or None, letterbox=o.letterbox,
                fuse=o.fuse, half=o.half, device=o.device)
        except ValueError as e:  # an option the checkpoint rules out (e.g. img_size for a stride-64 model)
            raise ConfigError(f"yolov5_detector: {e}") from e
        if not self.detector.half:
            from ..export.backends import prepare_network

            self.detector.network = prepare_network(
                self.detector.network, backend=o.backend, precision=o.precision, device=self.detector.device,
                bf16_default_on_cpu=BF16_DEFAULT_ON_CPU, model_name="yolov5", threads=o.threads)
        elif o.backend not in ("torch", "auto"):
            raise ConfigError("yolov5_detector: half runs on the torch backend only; use backend = \"torch\"")

    def process(self, frames: list[Frame]) -> list[Frame]:
        if self.detector is None:
            raise RuntimeError("yolov5_detector: process() called before start()")
        for frame, detections in zip(frames, self.detector.detect([f.image for f in frames])):
            frame.packet.detections = detections
        return frames

    def close(self) -> None:
        self.detector = None
