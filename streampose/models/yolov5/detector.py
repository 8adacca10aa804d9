"""YOLOv5 person (or object) detector on BGR frames: letterbox → batched forward → NMS → frame boxes.

Preprocessing, decode and NMS reproduce yolov5's ``detect.py`` (see
:mod:`.letterbox`, :mod:`.network`, :mod:`.postprocess`); checkpoints are read
with :mod:`.safe_unpickle`, so nothing from the weights file is executed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...device import check_fp16_device, resolve_device
from ...errors import ConfigError
from ...gpu.transfer import FrameUploader
from ...paths import existing_file
from ...records import Detections
from .checkpoint import load_yolov5_checkpoint
from .letterbox import MODES, boxes_to_frame, letterbox_batch
from .network import YoloV5Network, network_from_checkpoint
from .postprocess import non_max_suppression

log = logging.getLogger(__name__)

WEIGHTS_HINT = ("see weights/README.md for where to get YOLOv5 checkpoints "
                "(e.g. crowdhuman_yolov5m.pt or yolov5n.pt)")


class YoloV5Detector:
    """Detect objects of the named classes in BGR frames with a YOLOv5 network.

    img_size: letterbox size (multiple of the largest stride, 32);
    conf_threshold: minimum objectness and objectness x class probability;
    iou_threshold: NMS IoU; max_detections: per frame; classes: class names
    to keep (None keeps all); letterbox: ``"rect"`` (minimal stride-aligned
    rectangle, yolov5 ``auto=True``) or ``"square"``; half: fp16 weights and
    inputs (CUDA only: ValueError on another device, the rule of
    :data:`streampose.device.FP16_NEEDS_CUDA`).
    """

    def __init__(self, network: YoloV5Network, names: Sequence[str], *, img_size: int = 640,
                 conf_threshold: float = 0.25, iou_threshold: float = 0.45, max_detections: int = 300,
                 classes: Sequence[str] | None = ("person",), letterbox: str = "rect",
                 device: torch.device | str = "cpu", half: bool = False, source: str = "network") -> None:
        stride = int(max(network.strides))
        if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < stride or img_size % stride:
            raise ValueError(f"img_size must be a positive multiple of {stride}, got {img_size!r}")
        for name, value in (("conf_threshold", conf_threshold), ("iou_threshold", iou_threshold)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if max_detections < 1:
            raise ValueError(f"max_detections must be >= 1, got {max_detections!r}")
        if letterbox not in MODES:
            raise ValueError(f"letterbox must be one of {MODES}, got {letterbox!r}")
        self.names = tuple(names)
        if len(self.names) != network.num_classes:
            raise ValueError(f"{len(self.names)} class names for a network with {network.num_classes} classes")
        self.class_ids = self._class_ids(classes, source)
        self.img_size = img_size
        self.stride = stride
        self.conf_threshold = float(conf_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self.letterbox = letterbox
        self.device = torch.device(device)
        if half:
            check_fp16_device(self.device, "half")
        self.half = bool(half)
        self.network = network.to(self.device).eval()
        self._uploader = FrameUploader(self.device)
        if self.half:
            self.network.half()
        self._class_tensor = (None if self.class_ids is None
                              else torch.tensor(self.class_ids, dtype=torch.int64, device=self.device))

    def _class_ids(self, classes: Sequence[str] | None, source: str) -> tuple[int, ...] | None:
        if classes is None:
            return None
        if isinstance(classes, str):
            classes = (classes,)
        ids = []
        for name in classes:
            if name not in self.names:
                shown = ", ".join(self.names[:10]) + (", …" if len(self.names) > 10 else "")
                raise ConfigError(f"classes: {name!r} is not a class of {source} (its classes: {shown})")
            ids.append(self.names.index(name))
        return tuple(ids)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, img_size: int = 640, conf_threshold: float = 0.25,
                        iou_threshold: float = 0.45, max_detections: int = 300,
                        classes: Sequence[str] | None = ("person",), letterbox: str = "rect", fuse: bool = True,
                        half: bool = False, device: str = "auto") -> "YoloV5Detector":
        """Load an original yolov5 ``.pt`` file (v1-v5 Focus/SPP or v6+ Conv-stem/SPPF) safely.

        Raises UserError / CheckpointError (one line) for a missing, unsafe
        or unsupported file, ConfigError for a class name the model lacks.
        """
        torch_device = resolve_device(device)
        if half:
            check_fp16_device(torch_device, "half")  # before loading anything
        file = existing_file(path, "YOLOv5 checkpoint", WEIGHTS_HINT)
        checkpoint = load_yolov5_checkpoint(file, source=str(path))
        network = network_from_checkpoint(checkpoint)
        if fuse:
            network.fuse()
        return cls(network, checkpoint.names, img_size=img_size, conf_threshold=conf_threshold,
                   iou_threshold=iou_threshold, max_detections=max_detections, classes=classes,
                   letterbox=letterbox, device=torch_device, half=half, source=str(path))

    def preprocess(self, images: list[np.ndarray]) -> tuple[torch.Tensor, tuple[int, int]]:
        """Letterbox frames into one network input: (B, 3, H, W) float RGB in [0, 1] on the device.

        Returns the tensor and the canvas (H, W).
        """
        for k, image in enumerate(images):
            if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"image {k} must be a BGR uint8 (H, W, 3) array, got "
                                 f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}")
        batch, _ = letterbox_batch(images, self.img_size, self.letterbox, self.stride)
        x = self._uploader.upload(batch)  # pinned staging + non-blocking copy on CUDA
        x = x.permute(0, 3, 1, 2).flip(1).contiguous()  # BGR HWC → RGB CHW
        x = x.half() if self.half else x.float()
        return x / 255, (batch.shape[1], batch.shape[2])

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Decoded head output (B, N, 5 + C) float32: cx, cy, w, h (canvas pixels), objectness, class probs."""
        return self.network(x).float()

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        """One :class:`Detections` per frame (frame pixels, descending score), all frames in one forward."""
        if not images:
            return []
        x, canvas_hw = self.preprocess(images)
        return self.postprocess(self.forward(x), canvas_hw, [image.shape[:2] for image in images])

    def predict(self, image: np.ndarray) -> Detections:
        """:meth:`detect` for one frame."""
        return self.detect([image])[0]

    def postprocess(self, raw: torch.Tensor, canvas_hw: tuple[int, int],
                    frame_shapes: list[tuple[int, int]]) -> list[Detections]:
        """Confidence filter, class filter, NMS and mapping back to each frame's pixels."""
        per_image = non_max_suppression(raw, self.conf_threshold, self.iou_threshold, self.max_detections,
                                        self._class_tensor)
        results = []
        for frame_hw, rows in zip(frame_shapes, per_image):
            rows = rows.cpu().numpy()
            xyxy = boxes_to_frame(rows[:, :4], canvas_hw, frame_hw)
            results.append(Detections(xyxy, rows[:, 4], rows[:, 5].astype(np.int64)))
        return results
