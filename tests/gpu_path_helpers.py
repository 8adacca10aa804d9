"""Shared inputs of the GPU-path tests: COCO images with their ground-truth person boxes, a stand-in model."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

CUDA_REASON = "needs a CUDA device"


@lru_cache(maxsize=None)
def coco_people(shared: Path) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(image BGR uint8, xyxy (N, 4) float64 ground-truth boxes) for each of the 4 COCO images."""
    ann = json.loads((shared / "coco" / "test_coco.json").read_text())
    out = []
    for image in ann["images"]:
        frame = cv2.imread(str(shared / "coco" / image["file_name"]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        xywh = np.array([a["bbox"] for a in ann["annotations"] if a["image_id"] == image["id"]], np.float64)
        out.append((frame, np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)))
    return tuple(out)


def standin_network(seed: int = 0):
    """A small deterministic heatmap network (3 → 17 maps at 1/4 of the crop) with the HRNet ``spec`` fields used."""
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 17, 5, padding=2),
    ).eval()
    net.spec = SimpleNamespace(num_joints=17, name="standin")
    return net
