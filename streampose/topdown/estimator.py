"""Batched top-down pose estimation: frames + person boxes → :class:`~streampose.records.Poses`.

The flow is generic over the model (:class:`~streampose.models.protocols.TopDownPoseModel`):

1. every box of every frame → official center/scale for the model's crop
   aspect and padding → frame→crop affine matrix;
2. all crops in one batch (:func:`~streampose.topdown.crops.build_crop_batch`),
   forwarded in chunks of at most ``max_batch`` crops;
3. the model decodes its output into keypoints in its output space;
4. keypoints mapped back to frame pixels (official ``transform_preds``);
5. person score = box score × mean of the keypoint scores above 0.2
   (official evaluation rescoring; 0 when none is above).

Example::

    estimator = TopDownEstimator.from_checkpoint("weights/pose_hrnet_w32_256x192.pth")
    poses = estimator.predict(image_bgr, xyxy)        # one pose per box, frame pixels
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..records import Poses
from .crops import build_crop_batch, crop_transforms, transform_preds, xyxy_to_center_scale
from ..models.protocols import TopDownPoseModel

logger = logging.getLogger(__name__)

#: Keypoints scoring at most this do not count in the person score (official ``TEST.IN_VIS_THRE``).
KEYPOINT_SCORE_THRESHOLD = 0.2


def person_scores(keypoint_scores: np.ndarray, box_scores: np.ndarray,
                  threshold: float = KEYPOINT_SCORE_THRESHOLD) -> np.ndarray:
    """Box score × mean of the keypoint scores above ``threshold`` (0 when none): (N,) float32.

    keypoint_scores: (N, K); box_scores: (N,).
    """
    keypoint_scores = np.asarray(keypoint_scores, dtype=np.float64)
    above = keypoint_scores > threshold
    counts = above.sum(axis=1)
    means = np.where(counts > 0, (keypoint_scores * above).sum(axis=1) / np.maximum(counts, 1), 0.0)
    return (means * np.asarray(box_scores, dtype=np.float64)).astype(np.float32)


def _check_image(image: np.ndarray, where: str) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{where}: expected a BGR uint8 image of shape (H, W, 3), got {desc}")


def _check_boxes(xyxy, scores, where: str) -> tuple[np.ndarray, np.ndarray]:
    xyxy = np.asarray(xyxy, dtype=np.float64)
    if xyxy.size == 0:
        xyxy = xyxy.reshape(0, 4)
    if xyxy.ndim != 2 or xyxy.shape[1] != 4:
        raise ValueError(f"{where}: boxes must have shape (N, 4) xyxy, got {xyxy.shape}")
    if scores is None:
        scores = np.ones(len(xyxy), dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if scores.shape != (len(xyxy),):
        raise ValueError(f"{where}: {len(xyxy)} boxes but {scores.shape[0]} box scores")
    return xyxy, scores


#: crops per forward when a step does not say, by device type. On the CPU the cost per crop is
#: flat or grows past ~8 crops (HRNet-w32 bf16 and MoveNet fp32 are fastest at 4-8, bigger
#: forwards only hold more memory; BENCHMARKS.md "Crops per forward", scripts/bench_crop_batch.py);
#: a GPU wants large batches to stay busy.
DEFAULT_MAX_BATCH = {"cpu": 8}
DEFAULT_MAX_BATCH_ELSEWHERE = 64


def default_max_batch(device) -> int:
    """Crops per forward for a model on ``device`` (a torch.device or a name) when the step does not say."""
    from ..device import device_type

    return DEFAULT_MAX_BATCH.get(device_type(device), DEFAULT_MAX_BATCH_ELSEWHERE)


class TopDownEstimator:
    """Poses of given person boxes, with one chunked batched forward for all people of all frames.

    model: a :class:`~streampose.models.protocols.TopDownPoseModel`; max_batch:
    most crops per forward (None: :func:`default_max_batch` for the model's
    device; a flip test runs a second forward of the same size); crops_on_device: make the crops with ``grid_sample``
    from the uploaded frame (:mod:`.gpu_crops`) instead of ``cv2.warpAffine``;
    decode_on_device: decode in torch where the network ran (models with a
    ``decode_on_device`` attribute); both None = on when the model is on CUDA.
    """

    def __init__(self, model: TopDownPoseModel, *, max_batch: int | None = None, crops_on_device: bool | None = None,
                 decode_on_device: bool | None = None):
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.model = model
        self.max_batch = max_batch if max_batch is not None else default_max_batch(model.device)
        on_cuda = getattr(model.device, "type", "cpu") == "cuda"
        # GPU fast path (streampose.topdown.gpu_crops / device_decode): automatic on CUDA, forced by True.
        self.device_crops = None
        if crops_on_device if crops_on_device is not None else on_cuda:
            from .gpu_crops import DeviceCropMaker

            self.device_crops = DeviceCropMaker(model.device)
        if hasattr(model, "decode_on_device"):
            model.decode_on_device = bool(decode_on_device if decode_on_device is not None else on_cuda)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, flip_test: bool = True, use_dark: bool = False,
                        max_batch: int | None = None, device: str = "auto", crops_on_device: bool | None = None,
                        decode_on_device: bool | None = None) -> "TopDownEstimator":
        """From an HRNet / SimDR checkpoint (official, SimDR or sithu31296 layouts).

        device: "auto" (CUDA when present), "cpu", "cuda", "cuda:N";
        crops_on_device / decode_on_device: None (on when the model is on
        CUDA), True or False.
        Raises UserError / CheckpointError (one line) for a missing or unfit file.
        """
        from ..device import resolve_device
        from ..models.hrnet.topdown import load_topdown_model

        model = load_topdown_model(path, flip_test=flip_test, use_dark=use_dark, device=resolve_device(device))
        return cls(model, max_batch=max_batch, crops_on_device=crops_on_device, decode_on_device=decode_on_device)

    @property
    def num_keypoints(self) -> int:
        return self.model.num_keypoints

    def predict(self, image: np.ndarray, xyxy: np.ndarray, box_scores: np.ndarray | None = None) -> Poses:
        """One pose per box (same order): keypoints in frame pixels.

        image: BGR uint8 (H, W, 3); xyxy: (N, 4) boxes in frame pixels;
        box_scores: (N,), default 1. Returns Poses with N rows.
        """
        return self.predict_batch([image], [xyxy], None if box_scores is None else [box_scores])[0]

    def predict_batch(self, images: Sequence[np.ndarray], boxes_per_image: Sequence[np.ndarray],
                      scores_per_image: Sequence[np.ndarray | None] | None = None) -> list[Poses]:
        """Poses for the boxes of several frames, every crop in one chunked batched forward.

        images: BGR uint8 frames; boxes_per_image: (N_i, 4) xyxy per frame;
        scores_per_image: (N_i,) box scores per frame (default 1). Returns one
        Poses per frame, rows in box order.
        """
        if len(boxes_per_image) != len(images):
            raise ValueError(f"{len(images)} images but {len(boxes_per_image)} box arrays")
        if scores_per_image is None:
            scores_per_image = [None] * len(images)
        if len(scores_per_image) != len(images):
            raise ValueError(f"{len(images)} images but {len(scores_per_image)} score arrays")
        checked = []
        for i, (image, xyxy, scores) in enumerate(zip(images, boxes_per_image, scores_per_image)):
            _check_image(image, f"images[{i}]")
            checked.append(_check_boxes(xyxy, scores, f"boxes_per_image[{i}]"))
        counts = [len(xyxy) for xyxy, _ in checked]
        k = self.num_keypoints
        if sum(counts) == 0:
            return [Poses.empty(k) for _ in images]

        xyxy = np.concatenate([b for b, _ in checked])
        box_scores = np.concatenate([s for _, s in checked])
        image_indices = np.repeat(np.arange(len(images)), counts)
        crop = self.model.crop
        centers, scales = xyxy_to_center_scale(_at_least_one_pixel(xyxy), crop)
        transforms = crop_transforms(centers, scales, crop.input_size_wh, pixel_std=crop.pixel_std)

        keypoints = np.empty((len(xyxy), k, 2), dtype=np.float32)
        keypoint_scores = np.empty((len(xyxy), k), dtype=np.float32)
        frames = self.device_crops.upload(images, image_indices) if self.device_crops is not None else None
        for start in range(0, len(xyxy), self.max_batch):
            rows = slice(start, start + self.max_batch)
            if frames is not None:
                batch = self.device_crops.crop_batch(frames, image_indices[rows], transforms[rows], crop)
            else:
                batch = build_crop_batch(images, image_indices[rows], transforms[rows], crop, self.model.device)
            decoded = self.model.infer(batch)
            keypoints[rows] = transform_preds(decoded.coords, centers[rows], scales[rows], decoded.output_size_wh,
                                              pixel_std=crop.pixel_std)
            keypoint_scores[rows] = decoded.scores

        scores = person_scores(keypoint_scores, box_scores)
        out, start = [], 0
        for n in counts:
            rows = slice(start, start + n)
            out.append(Poses(keypoints[rows], keypoint_scores[rows], scores[rows], xyxy[rows].astype(np.float32)))
            start += n
        return out


def _at_least_one_pixel(xyxy: np.ndarray) -> np.ndarray:
    """Degenerate boxes (zero or negative size) grow to 1 px so the crop matrix exists."""
    out = xyxy.copy()
    out[:, 2] = np.maximum(out[:, 2], out[:, 0] + 1.0)
    out[:, 3] = np.maximum(out[:, 3], out[:, 1] + 1.0)
    return out
