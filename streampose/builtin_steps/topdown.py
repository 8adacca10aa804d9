"""Pipeline steps ``topdown_pose`` (HRNet / SimDR on detector boxes) and ``coco_detections``.

``topdown_pose`` takes the person boxes of every frame of the batch from
``packet.detections`` and runs one batched :class:`~streampose.topdown.estimator.TopDownEstimator`
call for all of them; ``packet.poses`` gets one pose per person box, in box
order, with the boxes' track IDs::

    steps = [ { type = "topdown_pose", weights = "weights/pose_hrnet_w32_256x192.pth" } ]

``coco_detections`` is a detector that reads boxes from a COCO detection
results file (e.g. ``../shared/coco/test_coco_det_AP_H_56.json``) for sources
whose frames are the COCO images, matched by image file name::

    steps = [ { type = "coco_detections", weights = "../shared/coco/test_coco_det_AP_H_56.json" } ]
"""

from __future__ import annotations

import logging
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..device import check_threads, set_torch_threads
from ..errors import ConfigError, UserError
from ..records import Detections, Frame, FramePacket
from ..step import Step, register_step

logger = logging.getLogger(__name__)

#: ``packet.extras`` key a source may set to the frame's image file name.
FILE_NAME_KEY = "file_name"


@dataclass
class TopDownPoseOptions:
    """Options of ``topdown_pose``.

    weights: HRNet or SimDR checkpoint (official, SimDR or sithu31296
    layouts; see weights/README.md); flip_test: average with the flipped
    crop (official test setting, 2x the compute); use_dark: DARK sub-pixel
    decoding instead of the quarter-pixel step (heatmap models);
    max_batch: most crops per forward pass (unset: 8 on the CPU, 64 on
    CUDA; streampose.topdown.estimator.default_max_batch); person_class_id: the detections'
    class taken as people; min_box_score: boxes scoring less are skipped;
    threads: torch CPU threads of the stage's process (0: the runtime's
    choice, by measured stage cost); device: auto, cpu, cuda, cuda:N.
    GPU fast path (streampose.gpu; see BENCHMARKS.md "GPU fast path"):
    precision: fp32, fp16 (CUDA) or bf16 autocast (CPUs: AMX or
    AVX512-BF16 only), auto: fp32; channels_last: NHWC
    convolutions (unset: on the CPU, where they are faster, off on CUDA); cudnn_benchmark: cuDNN autotuning, set in start();
    crops_on_device / decode_on_device: crops by grid_sample from the
    uploaded frame / argmax decoding in torch (unset: on with CUDA; true
    forces them on the CPU too); compile: torch.compile the network
    (CUDA graphs on CUDA; fixed shapes only, off by default);
    backend: what runs the network
    (auto: the fastest `streampose backends --measure` measured on this
    machine, torch without such a table; torch, onnxruntime, openvino on
    the CPU, tensorrt on CUDA; the others than torch run an ONNX export
    made at start, in fp32, and our decoders).
    """

    weights: str
    flip_test: bool = True
    use_dark: bool = False
    max_batch: int | None = None
    person_class_id: int = 0
    min_box_score: float = 0.0
    threads: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    backend: Literal["auto", "torch", "onnxruntime", "openvino", "tensorrt"] = "auto"
    channels_last: bool | None = None
    cudnn_benchmark: bool = False
    crops_on_device: bool | None = None
    decode_on_device: bool | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError(f"max_batch: must be at least 1, got {self.max_batch}")
        check_threads(self.threads)
        if not 0.0 <= self.min_box_score <= 1.0:
            raise ValueError(f"min_box_score: must be between 0 and 1, got {self.min_box_score}")


@register_step("topdown_pose")
class TopDownPoseStep(Step):
    """Fill ``packet.poses`` with one pose per person box of ``packet.detections``."""

    Options = TopDownPoseOptions
    role = "pose"

    def __init__(self, options: TopDownPoseOptions) -> None:
        self.options = options
        self.estimator = None

    def start(self) -> None:
        from ..topdown.estimator import TopDownEstimator

        o = self.options
        if o.precision == "fp16":  # the one fp16 rule (streampose.device), checked before loading
            from ..device import check_fp16_device, resolve_device

            try:
                check_fp16_device(resolve_device(o.device), "precision")
            except ValueError as e:
                raise ConfigError(f"topdown_pose: {e}") from e
        set_torch_threads(o.threads)
        from ..gpu.acceleration import configure_cudnn, network_in_precision

        configure_cudnn(o.cudnn_benchmark)
        self.estimator = TopDownEstimator.from_checkpoint(o.weights, flip_test=o.flip_test, use_dark=o.use_dark,
                                                          max_batch=o.max_batch, device=o.device,
                                                          crops_on_device=o.crops_on_device,
                                                          decode_on_device=o.decode_on_device)
        model = self.estimator.model
        from ..export.backend_choice import resolve_backend

        backend = resolve_backend(o.backend, "hrnet", model.device, torch_only=(
            o.precision not in ("auto", "fp32") or o.compile or o.channels_last is not None))
        if backend != "torch":
            from ..export.backends import prepare_network

            model.network = prepare_network(model.network, backend=backend, precision=o.precision,
                                            device=model.device, model_name="hrnet", threads=o.threads,
                                            input_shape_chw=(3, *model.crop.input_size_wh[::-1]))
            return
        try:  # precision auto: fp32 (HRNet bf16 AP not measured)
            model.network = network_in_precision(model.network, o.precision, model.device,
                                                 channels_last=o.channels_last, compile=o.compile)
        except (ValueError, ConfigError) as e:  # fp16 on a CPU, bf16 on a CPU without it
            raise ConfigError(f"topdown_pose: {e}") from e

    def _people(self, packet: FramePacket) -> Detections:
        if packet.detections is None:
            raise UserError("topdown_pose: frame has no detections; put a detector step (e.g. yolov5_detector or "
                            "coco_detections) before it in the pipeline")
        d = packet.detections
        return d.select((d.class_ids == self.options.person_class_id) & (d.scores >= self.options.min_box_score))

    def process(self, frames: list[Frame]) -> list[Frame]:
        if self.estimator is None:
            raise RuntimeError("topdown_pose: process() called before start()")
        people = [self._people(f.packet) for f in frames]
        results = self.estimator.predict_batch([f.image for f in frames], [p.xyxy for p in people],
                                               [p.scores for p in people])
        for frame, persons, poses in zip(frames, people, results):
            poses.track_ids = persons.track_ids.copy()
            frame.packet.poses = poses
        return frames

    def close(self) -> None:
        self.estimator = None


@dataclass
class CocoDetectionsOptions:
    """Options of ``coco_detections``.

    weights: the COCO detection results file (a JSON list of ``{image_id,
    category_id, bbox: [x, y, w, h], score}``; named ``weights`` so
    ``--det-model`` can set it); annotations: optional COCO annotations file
    whose ``images`` map file names to ids (without it the id is the number
    in the file name, as COCO's ``000000000785.jpg`` → 785); score_threshold:
    boxes scoring less are dropped (official ``IMAGE_THRE`` 0.0).
    Detections get class 0 (person).
    """

    weights: str
    annotations: str = ""
    score_threshold: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold: must be between 0 and 1, got {self.score_threshold}")


def image_id_from_file_name(name: str) -> int | None:
    """COCO file naming: the digits of the stem (``000000000785.jpg`` → 785), None when there are none."""
    digits = re.findall(r"\d+", Path(name).stem)
    return int(digits[-1]) if digits else None


@register_step("coco_detections")
class CocoDetectionsStep(Step):
    """Fill ``packet.detections`` with the boxes a COCO results file gives the frame's image."""

    Options = CocoDetectionsOptions
    role = "detector"

    def __init__(self, options: CocoDetectionsOptions) -> None:
        self.options = options
        self._boxes: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
        self._ids_by_name: dict[str, int] | None = None
        self._folder_listings: dict[str, list[Path]] = {}

    def start(self) -> None:
        import json

        from ..evaluation.person_boxes import detection_file_boxes
        from ..paths import existing_file

        o = self.options
        if o.annotations:
            file = existing_file(o.annotations, "COCO annotations file", "give the annotations JSON of the images")
            with open(file, encoding="utf-8") as f:
                images = json.load(f).get("images", [])
            self._ids_by_name = {img["file_name"]: int(img["id"]) for img in images}
            ids = set(self._ids_by_name.values())
        else:
            file = existing_file(o.weights, "detections file",
                                 "give a COCO detection results file (a JSON list of {image_id, category_id, "
                                 "bbox, score})")
            try:
                with open(file, encoding="utf-8") as f:
                    records = json.load(f)
                ids = {r["image_id"] for r in records if isinstance(r, dict) and "image_id" in r}
            except (ValueError, TypeError, OSError):
                ids = set()  # detection_file_boxes names the problem
        catalogue = types.SimpleNamespace(imgs={image_id: {} for image_id in ids})
        self._boxes = detection_file_boxes(o.weights, catalogue, min_score=o.score_threshold)

    def _file_name(self, packet: FramePacket) -> str:
        """The frame's image file name: from the source when it says, else from an image or folder source."""
        name = packet.extras.get(FILE_NAME_KEY)
        if name:
            return Path(name).name
        from ..io.image_sources import IMAGE_EXTENSIONS, list_images
        from ..paths import resolve_path

        source = resolve_path(packet.source_name)
        if source.is_file() and source.suffix.lower() in IMAGE_EXTENSIONS:
            return source.name
        if source.is_dir():
            listing = self._folder_listings.get(packet.source_name)
            if listing is None:
                listing = self._folder_listings[packet.source_name] = list_images(source)
            if packet.index < len(listing):
                return listing[packet.index].name
        raise UserError(f"coco_detections: cannot tell which image frame {packet.index} of source "
                        f"{packet.source_name!r} is; use an image file or a folder of the COCO images as the source")

    def process(self, frames: list[Frame]) -> list[Frame]:
        if self._boxes is None:
            raise RuntimeError("coco_detections: process() called before start()")
        for frame in frames:
            name = self._file_name(frame.packet)
            image_id = (self._ids_by_name.get(name) if self._ids_by_name is not None
                        else image_id_from_file_name(name))
            xyxy, scores = self._boxes.get(image_id, (np.zeros((0, 4), np.float32), np.zeros(0, np.float32)))
            frame.packet.detections = Detections(xyxy.copy(), scores.copy(), np.zeros(len(xyxy), np.int64))
        return frames

    def close(self) -> None:
        self._boxes = None
