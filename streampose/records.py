"""Records that travel through a pipeline.

Conventions, stated once for the whole package:
- images are BGR uint8 arrays of shape (H, W, 3) at every boundary;
- coordinates are source-frame pixels; boxes are ``xyxy``;
- keypoints are 0-indexed in the order of their keypoint set (COCO-17 by
  default, CrowdPose-14 for CrowdPose models; :mod:`streampose.keypoint_sets`,
  found from the keypoint count by ``Poses.keypoint_set``);
- "empty" means N = 0 with the right trailing shape, never ``None``.

A :class:`FramePacket` is the one per-frame record: it carries a handle to the
pixels (a shared-memory ring slot in the process runtime, an in-process array
in the inline runner), the detections and poses filled in by steps, and
timings. :class:`EndOfStream` is the explicit in-band event that follows the
last packet of a source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .keypoint_sets import COCO_17, KeypointSet, keypoint_set_for

# The COCO-17 facts, named here for the many callers that mean COCO; the data lives in keypoint_sets.
COCO_KEYPOINT_NAMES: tuple[str, ...] = COCO_17.keypoint_names
NUM_KEYPOINTS = COCO_17.num_keypoints
COCO_FLIP_PAIRS: tuple[tuple[int, int], ...] = COCO_17.flip_pairs
COCO_FLIP_INDEX: tuple[int, ...] = COCO_17.flip_index
COCO_SKELETON: tuple[tuple[int, int], ...] = COCO_17.skeleton

UNTRACKED = -1


def _check(name: str, array: np.ndarray, trailing: tuple[int, ...], n: int | None) -> int:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.ndim != 1 + len(trailing) or tuple(array.shape[1:]) != trailing:
        raise ValueError(f"{name} must have shape (N, {', '.join(map(str, trailing))}), got {array.shape}"
                         if trailing else f"{name} must have shape (N,), got {array.shape}")
    if n is not None and array.shape[0] != n:
        raise ValueError(f"{name} has {array.shape[0]} rows, expected {n}")
    return array.shape[0]


@dataclass
class Detections:
    """N person (or object) boxes in frame pixels.

    xyxy: (N, 4) float32; scores: (N,) float32; class_ids: (N,) int64;
    track_ids: (N,) int64, ``UNTRACKED`` (-1) until a tracker labels them.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    track_ids: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = _check("xyxy", self.xyxy, (4,), None)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        _check("scores", self.scores, (), n)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64)
        _check("class_ids", self.class_ids, (), n)
        if self.track_ids is None:
            self.track_ids = np.full(n, UNTRACKED, dtype=np.int64)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64)
        _check("track_ids", self.track_ids, (), n)

    def __len__(self) -> int:
        return self.xyxy.shape[0]

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def select(self, index: np.ndarray) -> "Detections":
        """Rows picked by a boolean mask or an index array."""
        return Detections(self.xyxy[index], self.scores[index], self.class_ids[index], self.track_ids[index])


@dataclass
class Poses:
    """N people with K keypoints each, in frame pixels.

    keypoints: (N, K, 2) float32 (x, y); keypoint_scores: (N, K) float32;
    scores: (N,) float32 person score; xyxy: (N, 4) float32 person box;
    track_ids: (N,) int64, ``UNTRACKED`` (-1) until a tracker labels them.
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    scores: np.ndarray
    xyxy: np.ndarray
    track_ids: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        if self.keypoints.ndim != 3 or self.keypoints.shape[2] != 2:
            raise ValueError(f"keypoints must have shape (N, K, 2), got {self.keypoints.shape}")
        n, k = self.keypoints.shape[:2]
        self.keypoint_scores = np.asarray(self.keypoint_scores, dtype=np.float32)
        _check("keypoint_scores", self.keypoint_scores, (k,), n)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        _check("scores", self.scores, (), n)
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        _check("xyxy", self.xyxy, (4,), n)
        if self.track_ids is None:
            self.track_ids = np.full(n, UNTRACKED, dtype=np.int64)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64)
        _check("track_ids", self.track_ids, (), n)

    def __len__(self) -> int:
        return self.keypoints.shape[0]

    @property
    def num_keypoints(self) -> int:
        return self.keypoints.shape[1]

    @property
    def keypoint_set(self) -> KeypointSet:
        """Names, skeleton, flip pairs and OKS sigmas of these keypoints (by their count)."""
        return keypoint_set_for(self.num_keypoints)

    @classmethod
    def empty(cls, num_keypoints: int = NUM_KEYPOINTS) -> "Poses":
        return cls(np.zeros((0, num_keypoints, 2), np.float32), np.zeros((0, num_keypoints), np.float32),
                   np.zeros(0, np.float32), np.zeros((0, 4), np.float32))

    def select(self, index: np.ndarray) -> "Poses":
        """Rows picked by a boolean mask or an index array."""
        return Poses(self.keypoints[index], self.keypoint_scores[index], self.scores[index],
                     self.xyxy[index], self.track_ids[index])

    @staticmethod
    def concatenate(parts: list["Poses"], num_keypoints: int = NUM_KEYPOINTS) -> "Poses":
        """Rows of every part, in order; num_keypoints: K of the empty result when there are no parts."""
        if not parts:
            return Poses.empty(num_keypoints)
        return Poses(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                       ("keypoints", "keypoint_scores", "scores", "xyxy", "track_ids")))


@dataclass
class FramePacket:
    """Everything known about one frame except its pixels.

    source_id / source_name: which ``--source`` it came from (0-based, and the
    string the user gave); index: frame number within that source, from 0;
    pts_s: presentation time in seconds from the container (or capture clock
    for live sources); slot: ring slot holding the pixels (-1 when pixels
    travel in-process); shape: (H, W, 3) of the frame; capture_time: the
    ``time.monotonic()`` at which the frame was captured, for latency;
    timings: seconds spent per step name; extras: step-specific small data;
    seq: the capture's count of packets sent before this one (per source,
    from 0), by which replicated stages deal and re-order frames (-1 in-process).
    """

    source_id: int
    source_name: str
    index: int
    pts_s: float | None
    shape: tuple[int, int, int]
    capture_time: float
    slot: int = -1
    detections: Detections | None = None
    poses: Poses | None = None
    timings: dict[str, float] = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
    seq: int = -1


@dataclass(frozen=True)
class StreamStart:
    """In-band start of one source: precedes its first packet through every queue.

    Carries what sinks need before the first frame: frame size (the largest,
    for folders of mixed sizes), nominal frame rate, frame count when known
    (None for live sources), whether the source is live, and the path of a
    media file whose audio a video sink may copy (None when there is none).
    """

    source_id: int
    source_name: str
    width: int
    height: int
    fps: float | None
    frame_count: int | None
    live: bool
    audio_path: str | None = None


@dataclass(frozen=True)
class EndOfStream:
    """In-band end of one source: follows its last packet through every queue.

    frames_sent counts the packets the source produced before it, so the last
    stage can tell a clean end from lost frames; error is a one-line reason
    when the source ended because it failed (after its retries).
    """

    source_id: int
    source_name: str
    frames_sent: int
    error: str | None = None


@dataclass
class Frame:
    """A packet together with a view of its pixels, as steps receive it.

    ``image`` is a view into shared memory in the process runtime: a step that
    draws writes in place; a step that only reads must not copy it.
    """

    packet: FramePacket
    image: np.ndarray
