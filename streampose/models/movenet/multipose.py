"""MoveNet MultiPose as a bottom-up model (:class:`~streampose.models.protocols.BottomUpPoseModel`).

Whole frames in, up to 6 people per frame out, in frame pixels:

- input: the frame resized (aspect kept) so its longer side is ``input_size``
  (256: Google's recommendation for MultiPose Lightning), then padded with
  black at the bottom / right to multiples of 32 (the graph takes any such
  size); RGB, normalised as the release does;
- :meth:`MoveNetMultiPoseModel.forward`: the network (the six head maps as
  NumPy arrays, what an ONNX Runtime session would give);
- :meth:`MoveNetMultiPoseModel.decode`: the graph's decoding
  (:func:`~streampose.models.movenet.multipose_decode.decode_multi_pose`, pure
  NumPy), then people scoring at least ``min_pose_score`` mapped back to the
  frame: keypoints, keypoint scores, the model's own person boxes.

Frames of the same size share one forward pass.

Example::

    model = load_movenet_multipose("weights/movenet_multipose_lightning.pth")
    (poses,) = model.predict_batch([cv2.imread("people.jpg")])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ...records import Poses
from ..checkpoint import load_exactly, load_state_dict_file
from .multipose_decode import BOX_COLUMNS, SCORE_COLUMN, decode_multi_pose
from .network import INPUT_MULTIPLE, build_movenet_multipose

DEFAULT_WEIGHTS = "weights/movenet_multipose_lightning.pth"
#: people scoring less are dropped (the graph always returns 6 rows, most of them empty).
DEFAULT_MIN_POSE_SCORE = 0.2


@dataclass(frozen=True)
class Placement:
    """Where a frame sits on the network input: ``input = frame * scale``, top-left, padded to ``input_hw``."""

    scale: float
    frame_hw: tuple[int, int]
    input_hw: tuple[int, int]


def placement_for(frame_hw: tuple[int, int], input_size: int) -> Placement:
    """The resize (longer side to ``input_size``) and padding (to multiples of 32) of a frame."""
    h, w = frame_hw
    scale = input_size / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    return Placement(scale, (h, w), (_round_up(new_h), _round_up(new_w)))


def _round_up(size: int) -> int:
    return -(-size // INPUT_MULTIPLE) * INPUT_MULTIPLE


def to_input(image_bgr: np.ndarray, placement: Placement) -> np.ndarray:
    """(H, W, 3) BGR uint8 frame → (h, w, 3) RGB uint8 network canvas (zeros where padded)."""
    h, w = placement.frame_hw
    new_h, new_w = max(1, round(h * placement.scale)), max(1, round(w * placement.scale))
    canvas = np.zeros((*placement.input_hw, 3), np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    return canvas


def rows_to_poses(rows: np.ndarray, placement: Placement, min_pose_score: float) -> Poses:
    """Decoded rows (6, 3K + 5) of one frame → the people scoring at least ``min_pose_score``, in frame pixels."""
    keep = rows[:, SCORE_COLUMN] >= min_pose_score
    rows = rows[keep]
    in_h, in_w = placement.input_hw
    k = (rows.shape[1] - 5) // 3
    yxs = rows[:, :3 * k].reshape(-1, k, 3)
    keypoints = np.stack((yxs[..., 1] * in_w, yxs[..., 0] * in_h), axis=-1) / placement.scale
    ymin, xmin, ymax, xmax = (rows[:, BOX_COLUMNS] * np.array([in_h, in_w, in_h, in_w], np.float32)).T
    fh, fw = placement.frame_hw
    xyxy = np.stack((xmin, ymin, xmax, ymax), axis=1) / placement.scale
    xyxy = np.clip(xyxy, 0, np.array([fw, fh, fw, fh], np.float32))
    return Poses(keypoints, yxs[..., 2], rows[:, SCORE_COLUMN], xyxy)


class MoveNetMultiPoseModel:
    """MoveNet MultiPose network + the graph's decoding: a :class:`~streampose.models.protocols.BottomUpPoseModel`.

    network: a :class:`~.network.MoveNetMultiPoseNet` (or a stand-in running its
    export on another backend); input_size: longer side of the network input,
    a multiple of 32; min_pose_score: people scoring less are dropped.
    """

    def __init__(self, network, *, input_size: int = 256, min_pose_score: float = DEFAULT_MIN_POSE_SCORE) -> None:
        import torch

        if input_size < INPUT_MULTIPLE or input_size % INPUT_MULTIPLE:
            raise ValueError(f"input_size: must be a positive multiple of {INPUT_MULTIPLE}, got {input_size}")
        if not 0.0 <= min_pose_score <= 1.0:
            raise ValueError(f"min_pose_score: must be between 0 and 1, got {min_pose_score}")
        # Channels-last runs MobileNet's depthwise convolutions faster on CPU (as for the single-pose model).
        self.network = network.eval().to(memory_format=torch.channels_last)
        self.input_size = input_size
        self.min_pose_score = min_pose_score
        self.num_keypoints = network.spec.num_keypoints
        self.device = next(network.parameters()).device

    def prepare(self, images: list[np.ndarray]) -> tuple[object, list[Placement]]:
        """Same-size BGR frames → the normalised (N, 3, h, w) float32 batch on ``device``, and their placements."""
        import torch

        placements = [placement_for(image.shape[:2], self.input_size) for image in images]
        if len({p.input_hw for p in placements}) > 1:
            raise ValueError("prepare: frames of one batch must have the same size")
        canvas = np.stack([to_input(image, p) for image, p in zip(images, placements)])
        spec = self.network.spec
        rgb = torch.from_numpy(canvas).to(self.device).permute(0, 3, 1, 2).float()
        batch = (rgb - spec.input_mean) / spec.input_std
        return batch, placements

    def forward(self, batch) -> tuple[np.ndarray, ...]:
        """The six head maps of a prepared batch as float32 NumPy arrays (:class:`~.network.MoveNetMultiPoseNet`)."""
        import torch

        with torch.inference_mode():
            maps = self.network(batch.contiguous(memory_format=torch.channels_last))
        return tuple(np.asarray(m.float().cpu().numpy() if hasattr(m, "cpu") else m, np.float32) for m in maps)

    def decode(self, outputs: tuple[np.ndarray, ...], placements: list[Placement]) -> list[Poses]:
        """People of each frame from the head maps of :meth:`forward` (no network call)."""
        rows = decode_multi_pose(*outputs)
        return [rows_to_poses(r, p, self.min_pose_score) for r, p in zip(rows, placements)]

    def predict_batch(self, images: list[np.ndarray]) -> list[Poses]:
        """People in each BGR uint8 frame, keypoints and boxes in frame pixels (frames of a size share a forward)."""
        out: list[Poses | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.shape[:2], []).append(i)
        for indices in groups.values():
            batch, placements = self.prepare([images[i] for i in indices])
            for i, poses in zip(indices, self.decode(self.forward(batch), placements)):
                out[i] = poses
        return out  # type: ignore[return-value]

    def predict(self, image: np.ndarray) -> Poses:
        """The people of one BGR uint8 frame."""
        return self.predict_batch([image])[0]


def load_movenet_multipose(path: str | Path = DEFAULT_WEIGHTS, *, input_size: int = 256,
                           min_pose_score: float = DEFAULT_MIN_POSE_SCORE, device="cpu") -> MoveNetMultiPoseModel:
    """MoveNet MultiPose Lightning from a converted state dict (``scripts/convert_movenet_tfjs.py --model multipose``).

    Raises UserError / CheckpointError (one line) for a missing or unfit file.
    """
    import torch

    hint = "convert Google's TF.js release with scripts/convert_movenet_tfjs.py --model multipose"
    state = load_state_dict_file(path, "MoveNet MultiPose weights", hint)
    network = build_movenet_multipose("lightning")
    load_exactly(network, state, path, "MoveNet MultiPose weights")
    return MoveNetMultiPoseModel(network.to(torch.device(device)), input_size=input_size,
                                 min_pose_score=min_pose_score)

