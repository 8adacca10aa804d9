"""What every model family provides, by role, so steps, evaluation and the CLI never switch on families.

Three roles (the ``role`` of a :mod:`~streampose.models.registry` entry):

- ``detector``: :class:`Detector`: BGR frames in, one
  :class:`~streampose.records.Detections` per frame out (``detect(images)``).
  YOLOv5 and YOLOX implement it.
- ``topdown``: :class:`TopDownPoseModel`: says which person crops it wants
  (:class:`CropSpec`) and turns a normalised batch of crops into keypoints in
  its own output space (:class:`CropKeypoints`). The generic flow (boxes →
  crops → forward → decode → map back) is
  :class:`streampose.topdown.estimator.TopDownEstimator`. HRNet heatmap,
  SimDR and MoveNet implement it.
- ``bottomup``: :class:`BottomUpPoseModel`: whole frames in, people out
  (``predict_batch(images)``). HigherHRNet and MoveNet MultiPose implement it.

A pose model exposes its torch ``network`` and splits inference into
``forward(batch)`` (the network, what another backend such as ONNX Runtime
replaces) and ``decode(outputs)`` (pure post-processing), with
``infer(batch) = decode(forward(batch))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from ..geometry import PIXEL_STD
from ..records import Detections, Poses

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CropSpec:
    """How a top-down model wants its person crops.

    input_size_wh: crop (width, height) in pixels; padding: box enlargement
    (1.25 official); pixel_std: the official scale unit (200 px); mean, std:
    per-channel normalisation in [0, 1] units, in the channel order the
    network takes; rgb: channel order of the network input (BGR when False).
    The network input is ``(u8 / 255 - mean) / std``; e.g. mean = std = 0.5
    gives ``u8 / 127.5 - 1``.
    """

    input_size_wh: tuple[int, int] = (192, 256)
    padding: float = 1.25
    pixel_std: float = PIXEL_STD
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    rgb: bool = True

    @property
    def aspect_ratio(self) -> float:
        """Width / height of the crop (0.75 for 192x256)."""
        return self.input_size_wh[0] * 1.0 / self.input_size_wh[1]


@dataclass
class CropKeypoints:
    """Decoded keypoints of N crops in a model's output space.

    coords: (N, K, 2) float32 (x, y) in a space of ``output_size_wh`` (w, h)
    that covers the crop exactly (heatmap pixels, input pixels, or the input
    size times a normalised coordinate); scores: (N, K) float32.
    """

    coords: np.ndarray
    scores: np.ndarray
    output_size_wh: tuple[int, int]


@runtime_checkable
class Detector(Protocol):
    """A person (or object) detector: every family is called the same way."""

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """One Detections per BGR uint8 (H, W, 3) frame, in frame pixels (xyxy), best first."""


@runtime_checkable
class TopDownPoseModel(Protocol):
    """What the top-down estimator needs: the crops to make, the device, and batch → keypoints."""

    network: Any  # the torch module ``forward`` runs
    crop: CropSpec
    num_keypoints: int
    device: Any  # torch.device the input batch must be on

    def forward(self, batch) -> Any:
        """Network outputs for a (N, 3, h, w) float32 batch made by ``build_crop_batch`` for ``crop``."""

    def decode(self, outputs) -> CropKeypoints:
        """Keypoints from the outputs of :meth:`forward` (no network call)."""

    def infer(self, batch) -> CropKeypoints:
        """``decode(forward(batch))``."""


#: the name the top-down flow has always used for this protocol.
TopDownModel = TopDownPoseModel


@runtime_checkable
class BottomUpPoseModel(Protocol):
    """A bottom-up model with its grouping: whole frames in, people out."""

    network: Any

    def predict_batch(self, images: list[np.ndarray]) -> list[Poses]:
        """People in each BGR uint8 frame, keypoints in frame pixels."""
