"""Tracker and filter settings: plain dataclasses, importable without Numba.

Pipeline definitions are validated in the parent process before any stage
starts, so the option types must not pull in the compiled kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

from .checks import check_int, check_range


@dataclass(frozen=True)
class TrackerParams:
    """Tracker settings, validated on construction (ValueError naming argument, value, range).

    min_hits: consecutive matches before a track is confirmed and gets an ID (1 = at once).
    max_age: frames a confirmed track may go unmatched (lost) before removal.
    min_similarity: smallest similarity (IoU, or the IoU/OKS blend) that may match.
    oks_weight: weight of keypoint OKS in the similarity (0 = boxes only); used
        only when both sides have keypoints above ``keypoint_threshold``.
    keypoint_threshold: keypoints scoring below this are ignored by OKS.
    """

    min_hits: int = 3
    max_age: int = 30
    min_similarity: float = 0.3
    oks_weight: float = 0.2
    keypoint_threshold: float = 0.3

    def __post_init__(self) -> None:
        check_int("min_hits", self.min_hits, 1, 1000)
        check_int("max_age", self.max_age, 0, 100_000)
        check_range("min_similarity", self.min_similarity, 0.0, 1.0, low_open=True)
        check_range("oks_weight", self.oks_weight, 0.0, 1.0)
        check_range("keypoint_threshold", self.keypoint_threshold, 0.0, 1.0)


@dataclass(frozen=True)
class OneEuroParams:
    """One-Euro settings, validated on construction (ValueError naming argument, value, range).

    min_cutoff: cutoff frequency at rest, Hz (lower = smoother when still).
    beta: cutoff increase per pixel/second of speed (higher = less lag when moving).
    d_cutoff: cutoff frequency of the speed estimate, Hz.
    keypoint_threshold: keypoints scoring below this do not update the filter.
    """

    min_cutoff: float = 0.1
    beta: float = 0.1
    d_cutoff: float = 0.2
    keypoint_threshold: float = 0.3

    def __post_init__(self) -> None:
        check_range("min_cutoff", self.min_cutoff, 0.0, 1000.0, low_open=True)
        check_range("beta", self.beta, 0.0, 1000.0)
        check_range("d_cutoff", self.d_cutoff, 0.0, 1000.0, low_open=True)
        check_range("keypoint_threshold", self.keypoint_threshold, 0.0, 1.0)
