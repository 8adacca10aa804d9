"""Pipeline steps: ``iou_tracker`` (track IDs) and ``one_euro_filter`` (keypoint smoothing).

Both keep state per source (``packet.source_id``) and release it on the
source's end of stream. Put ``iou_tracker`` after the pose step (or after the
detector in a detection-only pipeline) and ``one_euro_filter`` after
``iou_tracker``::

    steps = [ { type = "iou_tracker", min_hits = 3, max_age = 30 },
              { type = "one_euro_filter" }, { type = "draw" } ]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..keypoint_sets import COCO_17
from ..records import EndOfStream, Frame, StreamStart
from ..step import Step, register_step
from .. import tracking  # kernels load lazily, on first use in the stage process
from ..tracking.params import OneEuroParams, TrackerParams
from ..tracking.checks import check_range

logger = logging.getLogger(__name__)

#: ``packet.extras`` key: tuple of the track IDs the tracker removed at this
#: frame, so later steps (the One-Euro filter) can drop their state.
REMOVED_TRACK_IDS = "removed_track_ids"
#: ``packet.extras`` key set by the tracker on every packet it labelled, so a
#: later step can tell "no tracker ran" from "the tracker ran, nobody confirmed yet".
TRACKED_BY = "tracked_by"


@register_step("iou_tracker")
class IoUTrackerStep(Step):
    """Label people with track IDs: ``packet.poses.track_ids`` when poses are
    present, else ``packet.detections.track_ids`` (detection-only pipelines).

    Only confirmed tracks label records: a person on a track seen fewer than
    ``min_hits`` times keeps ``UNTRACKED`` (-1), and is still output. When the
    packet also has detections that are the poses' boxes one for one (top-down),
    the detections get the same IDs. A packet with neither (nothing ran) is
    passed through and does not age the tracks. IDs start at 0 per source and
    are never reused within a source, also across a restart of that source.
    """

    order_dependent = True  # tracks / filter state carry from frame to frame
    Options = TrackerParams

    def __init__(self, options: TrackerParams) -> None:
        self.options = options
        self._trackers: dict[int, "tracking.IoUTracker"] = {}
        self._next_ids: dict[int, int] = {}
        self._warned_empty = False

    def start(self) -> None:
        _warm_up_tracker(self.options)

    def process(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            packet = frame.packet
            records = packet.poses if packet.poses is not None else packet.detections
            if records is None:
                if not self._warned_empty:
                    logger.warning("iou_tracker: packet without detections or poses; put it after a "
                                   "detector or pose step")
                    self._warned_empty = True
                continue
            tracker = self._trackers.get(packet.source_id)
            if tracker is None:
                tracker = tracking.IoUTracker.from_params(self.options, first_id=self._next_ids.get(packet.source_id, 0))
                self._trackers[packet.source_id] = tracker
            if records is packet.poses:
                ids = tracker.update(records.xyxy, keypoints=records.keypoints,
                                     keypoint_scores=records.keypoint_scores)
                detections = packet.detections
                if (detections is not None and len(detections) == len(records)
                        and np.array_equal(detections.xyxy, records.xyxy)):
                    detections.track_ids = ids.copy()
            else:
                ids = tracker.update(records.xyxy, class_ids=records.class_ids)
            records.track_ids = ids
            packet.extras[TRACKED_BY] = self.type_name or "iou_tracker"
            if tracker.removed_ids:
                packet.extras[REMOVED_TRACK_IDS] = tracker.removed_ids
        return frames

    def end_of_stream(self, event: EndOfStream) -> None:
        tracker = self._trackers.pop(event.source_id, None)
        if tracker is not None:
            self._next_ids[event.source_id] = tracker.next_id

    def close(self) -> None:
        self._trackers.clear()


@dataclass(frozen=True)
class OneEuroStepOptions(OneEuroParams):
    """:class:`OneEuroParams` plus:

    fps: frame rate assumed for frames without a timestamp when the source
        does not state one (time = frame index / fps).
    max_gap_s: a track unseen for longer than this (stream time) starts afresh;
        bounds the state kept when no tracker reports removed tracks.
    """

    fps: float = 30.0
    max_gap_s: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("fps", self.fps, 0.0, 10_000.0, low_open=True)
        check_range("max_gap_s", self.max_gap_s, 0.0, None, low_open=True)
        if self.max_gap_s <= 1.0 / self.fps:
            # Otherwise every track would start afresh at every frame: no smoothing at all.
            raise ValueError(f"max_gap_s={self.max_gap_s!r} must be longer than one frame at fps={self.fps!r} "
                             f"({1.0 / self.fps:.4g} s)")


@register_step("one_euro_filter")
class OneEuroFilterStep(Step):
    """Smooth ``packet.poses.keypoints`` per track ID with One-Euro filters.

    Time is ``packet.pts_s``, or ``packet.index / fps`` without it (the
    source's fps from its StreamStart, else the ``fps`` option). Poses without a
    track ID (-1) pass through unchanged, so put ``iou_tracker`` before it.
    State of a track is dropped when the tracker reports it removed
    (``packet.extras["removed_track_ids"]``), after ``max_gap_s`` unseen, and
    at the source's end of stream. Scores and boxes are not changed.
    """

    order_dependent = True  # tracks / filter state carry from frame to frame
    Options = OneEuroStepOptions

    def __init__(self, options: OneEuroStepOptions) -> None:
        self.options = options
        self._filters: dict[int, "tracking.OneEuroFilter"] = {}
        self._source_fps: dict[int, float] = {}
        self._warned_untracked = False

    def start(self) -> None:
        _warm_up_filter(self.options)

    def start_of_stream(self, event: StreamStart) -> None:
        if event.fps:
            self._source_fps[event.source_id] = float(event.fps)

    def process(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            packet = frame.packet
            filt = self._filters.get(packet.source_id)
            if filt is None:
                filt = tracking.OneEuroFilter.from_params(self.options)
                self._filters[packet.source_id] = filt
            filt.drop(packet.extras.get(REMOVED_TRACK_IDS, ()))
            t_s = self._time_of(packet)
            poses = packet.poses
            if poses is not None and len(poses):
                # Unconfirmed tracks (-1) are normal under a tracker's min_hits: only warn when none ran.
                if (not self._warned_untracked and TRACKED_BY not in packet.extras
                        and (poses.track_ids < 0).all()):
                    logger.warning("one_euro_filter: poses have no track IDs (no tracker ran on them); "
                                   "put iou_tracker before it")
                    self._warned_untracked = True
                poses.keypoints = filt(poses.track_ids, poses.keypoints, poses.keypoint_scores, t_s)
            filt.drop_stale(t_s, self.options.max_gap_s)
        return frames

    def _time_of(self, packet) -> float:
        if packet.pts_s is not None:
            return float(packet.pts_s)
        return packet.index / self._source_fps.get(packet.source_id, self.options.fps)

    def end_of_stream(self, event: EndOfStream) -> None:
        self._filters.pop(event.source_id, None)
        self._source_fps.pop(event.source_id, None)

    def close(self) -> None:
        self._filters.clear()


def _warm_up_tracker(params: TrackerParams) -> None:
    """Compile (or load from cache) the tracker kernels in this process."""
    tracker = tracking.IoUTracker.from_params(params)
    xyxy = np.array([[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 15.0, 25.0]])
    k = COCO_17.num_keypoints  # any count compiles the same kernels
    keypoints = np.zeros((2, k, 2))
    for _ in range(2):
        tracker.update(xyxy, keypoints=keypoints, keypoint_scores=np.ones((2, k)))
    tracking.IoUTracker.from_params(params).update(xyxy, class_ids=np.zeros(2, np.int64))


def _warm_up_filter(params: OneEuroParams) -> None:
    filt = tracking.OneEuroFilter.from_params(params)
    for t_s in (0.0, 0.1):
        filt(np.array([0]), np.zeros((1, COCO_17.num_keypoints, 2)), np.ones((1, COCO_17.num_keypoints)), t_s)
