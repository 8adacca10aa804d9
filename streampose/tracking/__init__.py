"""Person tracking (IoU/OKS tracker) and keypoint smoothing (One-Euro filter)."""

from .iou_tracker import IoUTracker, TrackerParams
from .one_euro import OneEuroFilter, OneEuroParams

__all__ = ["IoUTracker", "OneEuroFilter", "OneEuroParams", "TrackerParams"]
