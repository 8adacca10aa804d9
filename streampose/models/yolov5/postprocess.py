"""From decoded YOLOv5 head output to final boxes: confidence filter and class-aware NMS.

Follows yolov5's ``non_max_suppression`` with ``multi_label=False`` (facts
from ultralytics/yolov5, AGPL-3.0, ``utils/general.py``): candidates need
objectness > threshold; the score is objectness x best class probability and
must also exceed the threshold; the best class is the label; at most 30000
candidates (highest scores) enter NMS; NMS is per class
(``torchvision.ops.batched_nms``); at most ``max_detections`` are kept, in
descending score order.
"""

from __future__ import annotations

import torch

MAX_NMS_CANDIDATES = 30000


def xywh_to_xyxy(xywh: torch.Tensor) -> torch.Tensor:
    """(N, 4) centre x, y, width, height → (N, 4) x1, y1, x2, y2."""
    half = xywh[:, 2:4] / 2
    return torch.cat((xywh[:, :2] - half, xywh[:, :2] + half), 1)


def non_max_suppression(prediction: torch.Tensor, conf_threshold: float, iou_threshold: float,
                        max_detections: int, class_ids: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Per image (M, 6) float32 ``[x1, y1, x2, y2, score, class]`` in input (canvas) pixels.

    prediction: (B, N, 5 + C) as returned by ``YoloV5Network``; class_ids:
    1-D int tensor of the classes to keep (None keeps all), applied before
    NMS like yolov5's ``classes`` argument.
    """
    from torchvision.ops import batched_nms

    prediction = prediction.float()
    results = []
    for rows in prediction:
        rows = rows[rows[:, 4] > conf_threshold]
        if rows.shape[0] == 0:
            results.append(torch.zeros((0, 6), device=prediction.device))
            continue
        class_scores = rows[:, 5:] * rows[:, 4:5]
        scores, labels = class_scores.max(1)
        keep = scores > conf_threshold
        if class_ids is not None:
            keep &= torch.isin(labels, class_ids.to(labels.device))
        boxes = xywh_to_xyxy(rows[keep, :4])
        scores, labels = scores[keep], labels[keep]
        if scores.shape[0] > MAX_NMS_CANDIDATES:
            top = scores.argsort(descending=True)[:MAX_NMS_CANDIDATES]
            boxes, scores, labels = boxes[top], scores[top], labels[top]
        kept = batched_nms(boxes, scores, labels, iou_threshold)[:max_detections]
        results.append(torch.cat((boxes[kept], scores[kept, None], labels[kept, None].float()), 1))
    return results
