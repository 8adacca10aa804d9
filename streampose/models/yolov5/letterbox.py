"""YOLOv5 letterbox: resize keeping aspect ratio, pad with gray to a stride-aligned canvas.

Conventions reproduced from ultralytics/yolov5 (AGPL-3.0)
``utils/augmentations.py::letterbox`` and ``utils/general.py::scale_boxes``
(facts, our code): the scale is ``min(size / h, size / w)`` (up-scaling
allowed); the resized size is ``round(w * r), round(h * r)`` (Python
rounding); cv2 INTER_LINEAR; padding value 114 split evenly with the odd pixel
at the bottom / right; ``"rect"`` pads to the smallest multiple of the stride
(yolov5 ``auto=True``), ``"square"`` to ``size x size``. Boxes go back with
yolov5's ``scale_boxes`` formula (gain and centred padding recomputed from the
two shapes), then are clipped to the frame.

Several frames of different sizes share one canvas (the largest rect any of
them needs), each centred in it, so a batch runs as one tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD_VALUE = 114
MODES = ("rect", "square")


@dataclass(frozen=True)
class Placement:
    """Where one frame went in the canvas: resized (h, w) and top-left offset, in canvas pixels."""

    frame_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    top: int
    left: int
    ratio: float


def resized_shape(frame_hw: tuple[int, int], size: int) -> tuple[tuple[int, int], float]:
    """((h, w) after resizing, ratio) for a frame letterboxed into ``size``."""
    h, w = frame_hw
    ratio = min(size / h, size / w)
    return (int(round(h * ratio)), int(round(w * ratio))), ratio


def canvas_shape(frame_shapes: list[tuple[int, int]], size: int, mode: str, stride: int = 32) -> tuple[int, int]:
    """Canvas (H, W) for a batch: ``size x size`` or the smallest stride-aligned box fitting every frame."""
    if mode == "square":
        return size, size
    if mode != "rect":
        raise ValueError(f"letterbox mode must be one of {MODES}, got {mode!r}")
    height = width = 0
    for frame_hw in frame_shapes:
        (nh, nw), _ = resized_shape(frame_hw, size)
        height = max(height, nh + (size - nh) % stride)
        width = max(width, nw + (size - nw) % stride)
    return height, width


def place(frame_hw: tuple[int, int], canvas_hw: tuple[int, int], size: int) -> Placement:
    """Where a frame goes in a canvas: centred, the odd padding pixel at the bottom / right."""
    (nh, nw), ratio = resized_shape(frame_hw, size)
    dh, dw = (canvas_hw[0] - nh) / 2, (canvas_hw[1] - nw) / 2
    return Placement(tuple(frame_hw), (nh, nw), int(round(dh - 0.1)), int(round(dw - 0.1)), ratio)


def letterbox_batch(images: list[np.ndarray], size: int, mode: str = "rect",
                    stride: int = 32) -> tuple[np.ndarray, list[Placement]]:
    """Letterbox frames into one uint8 batch.

    images: BGR uint8 (H, W, 3) each, any sizes → canvas (B, Hc, Wc, 3) BGR
    uint8 and one :class:`Placement` per frame.
    """
    import cv2

    shapes = [tuple(im.shape[:2]) for im in images]
    canvas_hw = canvas_shape(shapes, size, mode, stride)
    batch = np.full((len(images), canvas_hw[0], canvas_hw[1], 3), PAD_VALUE, dtype=np.uint8)
    placements = []
    for k, image in enumerate(images):
        p = place(shapes[k], canvas_hw, size)
        nh, nw = p.resized_hw
        resized = image if (nh, nw) == shapes[k] else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        batch[k, p.top: p.top + nh, p.left: p.left + nw] = resized
        placements.append(p)
    return batch, placements


def boxes_to_frame(xyxy: np.ndarray, canvas_hw: tuple[int, int], frame_hw: tuple[int, int]) -> np.ndarray:
    """Boxes from canvas pixels to frame pixels, clipped to the frame (yolov5 ``scale_boxes``).

    xyxy: (N, 4) float; returns (N, 4) float32.
    """
    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4).copy()
    h0, w0 = frame_hw
    gain = min(canvas_hw[0] / h0, canvas_hw[1] / w0)
    pad_x = (canvas_hw[1] - w0 * gain) / 2
    pad_y = (canvas_hw[0] - h0 * gain) / 2
    xyxy[:, [0, 2]] -= np.float32(pad_x)
    xyxy[:, [1, 3]] -= np.float32(pad_y)
    xyxy /= np.float32(gain)
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w0)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h0)
    return xyxy
