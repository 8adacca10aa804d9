"""Person tracking (IoU/OKS tracker) and keypoint smoothing (One-Euro filter).

The Numba kernels load on first use of ``IoUTracker`` / ``OneEuroFilter``, so
importing the settings (``TrackerParams``, ``OneEuroParams``) stays cheap.
"""

from .params import OneEuroParams, TrackerParams

__all__ = ["IoUTracker", "OneEuroFilter", "OneEuroParams", "TrackerParams"]


def __getattr__(name: str):
    if name == "IoUTracker":
        from .iou_tracker import IoUTracker
        return IoUTracker
    if name == "OneEuroFilter":
        from .one_euro import OneEuroFilter
        return OneEuroFilter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
