"""Pure pre- and post-processing of YOLOX-style detectors, apart from the network.

Facts from Megvii's YOLOX (github.com/Megvii-BaseDetection/YOLOX, Apache-2.0):
the input is the BGR image as float 0-255, resized keeping its aspect ratio
and pasted at the top-left of a canvas filled with 114; each output row of
anchor point (gx, gy) at stride s decodes as centre ``(dx + gx, dy + gy) * s``
and size ``exp(log_w, log_h) * s``; a box's class score is objectness x class
probability.

These functions take and return arrays / tensors only, so any backend that
produces the raw ``(B, N, 5 + C)`` output can reuse them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torchvision

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How a source image was placed on the network canvas: ``canvas = source * scale``, top-left."""

    scale: float
    source_hw: tuple[int, int]


def letterbox_top_left(image: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` (H, W, 3) uint8 to fit ``input_hw`` keeping aspect, pad 114 right/bottom.

    Returns the (h, w, 3) uint8 canvas and the transform to map boxes back.
    """
    h, w = image.shape[:2]
    in_h, in_w = input_hw
    scale = min(in_h / h, in_w / w)
    new_w, new_h = int(w * scale), int(h * scale)
    canvas = np.full((in_h, in_w, 3), PAD_VALUE, dtype=np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return canvas, Letterbox(scale, (h, w))


def anchor_grid(input_hw: tuple[int, int], strides: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor points in the network's output order.

    Returns (N, 2) float32 grid (x, y) in cells and (N, 1) float32 stride of each point.
    """
    grids, scales = [], []
    for stride in strides:
        rows, cols = input_hw[0] // stride, input_hw[1] // stride
        ys, xs = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
        grids.append(torch.stack((xs, ys), dim=-1).reshape(-1, 2))
        scales.append(torch.full((rows * cols, 1), float(stride)))
    return torch.cat(grids).float(), torch.cat(scales)


def decode_boxes(raw: torch.Tensor, grid: torch.Tensor, strides: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw head output (B, N, 5 + C) → boxes (B, N, 4) xyxy in canvas pixels and scores (B, N, C).

    grid, strides: from :func:`anchor_grid` for the same input size.
    """
    centre = (raw[..., :2] + grid) * strides
    half = torch.exp(raw[..., 2:4]) * strides / 2
    xyxy = torch.cat((centre - half, centre + half), dim=-1)
    scores = raw[..., 4:5] * raw[..., 5:]
    return xyxy, scores


def select_boxes(
    xyxy: torch.Tensor,
    scores: torch.Tensor,
    *,
    score_threshold: float,
    nms_threshold: float,
    class_ids: tuple[int, ...] | None = None,
    class_agnostic: bool = True,
    max_detections: int = 300,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Threshold and non-maximum suppression for one image.

    xyxy: (N, 4); scores: (N, C). Each box keeps its best class; boxes of the
    classes in ``class_ids`` (all when None) scoring above ``score_threshold``
    go through NMS at IoU ``nms_threshold`` (across classes when
    ``class_agnostic``). Returns xyxy (M, 4), scores (M,), class ids (M,)
    int64, best first.
    """
    best, labels = scores.max(dim=1)
    keep = best > score_threshold
    if class_ids is not None:
        keep &= torch.isin(labels, torch.as_tensor(class_ids, device=labels.device))
    xyxy, best, labels = xyxy[keep], best[keep], labels[keep]
    if class_agnostic:
        order = torchvision.ops.nms(xyxy, best, nms_threshold)
    else:
        order = torchvision.ops.batched_nms(xyxy, best, labels, nms_threshold)
    order = order[:max_detections]
    return xyxy[order], best[order], labels[order]


def boxes_to_source(xyxy: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """Canvas-pixel boxes (N, 4) → source-image pixels, clipped to the image."""
    h, w = letterbox.source_hw
    out = xyxy / letterbox.scale
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out.astype(np.float32)
