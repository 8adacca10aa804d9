"""The ``draw`` step: overlays on the frame itself (no copy).

Draws, in place on the frame's pixels (a ring slot in the process runtime):
a line with the source name, the frame index and the measured processing FPS;
detection boxes; poses as the skeleton of their keypoint set (COCO-17,
CrowdPose-14, ...: :mod:`streampose.keypoint_sets`), keypoints whose
score is below ``keypoint_threshold`` left out together with their limbs.
People with a track ID (``track_ids >= 0``) get one colour per ID, the same
in every frame, and the ID written near them; untracked people are drawn
with left/right/centre limb colours.
"""

from __future__ import annotations

import collections
import colorsys
import time
from dataclasses import dataclass

import numpy as np

from ..keypoint_sets import COCO_17, KeypointSet
from ..records import Detections, EndOfStream, Frame, Poses, StreamStart
from ..step import Step, register_step
from ..io.urls import redact_url

# BGR colours for untracked people: left side, right side, centre (face, torso links).
LEFT_BGR = (255, 128, 0)
RIGHT_BGR = (0, 128, 255)
CENTRE_BGR = (0, 220, 0)
BOX_BGR = (0, 220, 0)
#: frames over which the overlay's FPS is measured.
FPS_WINDOW = 30


def track_color(track_id: int) -> tuple[int, int, int]:
    """A bright BGR colour for a track ID: the same ID always gets the same colour,
    consecutive IDs get well separated hues (golden-ratio steps)."""
    hue = (int(track_id) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _side(k: int, keypoint_set: KeypointSet) -> str:
    name = keypoint_set.keypoint_names[k]
    return "left" if name.startswith("left_") else "right" if name.startswith("right_") else "centre"


def limb_color(a: int, b: int, keypoint_set: KeypointSet = COCO_17) -> tuple[int, int, int]:
    """Colour of an untracked limb between keypoints a and b of ``keypoint_set``: left, right or centre."""
    side_a, side_b = _side(a, keypoint_set), _side(b, keypoint_set)
    if side_a == side_b == "left":
        return LEFT_BGR
    if side_a == side_b == "right":
        return RIGHT_BGR
    return CENTRE_BGR


def keypoint_color(k: int, keypoint_set: KeypointSet = COCO_17) -> tuple[int, int, int]:
    side = _side(k, keypoint_set)
    return LEFT_BGR if side == "left" else RIGHT_BGR if side == "right" else CENTRE_BGR


@register_step("draw")
class DrawStep(Step):
    """Overlay of source/frame/FPS, boxes, skeletons and track IDs, drawn in place."""

    @dataclass
    class Options:
        keypoint_threshold: float = 0.3
        draw_info: bool = True
        draw_boxes: bool = True
        draw_poses: bool = True
        thickness: int = 2
        keypoint_radius: int = 3

        def __post_init__(self) -> None:
            if not 0.0 <= self.keypoint_threshold <= 1.0:
                raise ValueError(f"keypoint_threshold must be in [0, 1], got {self.keypoint_threshold}")
            if self.thickness < 1:
                raise ValueError(f"thickness must be >= 1, got {self.thickness}")
            if self.keypoint_radius < 0:
                raise ValueError(f"keypoint_radius must be >= 0, got {self.keypoint_radius}")

    draws = True
    role = ""

    def __init__(self, options: "DrawStep.Options | None" = None) -> None:
        self.options = options or DrawStep.Options()
        self._cv2 = None
        self._times: dict[int, collections.deque] = {}  # source → times its last frames were drawn

    def start(self) -> None:
        import cv2

        self._cv2 = cv2

    def start_of_stream(self, event: StreamStart) -> None:
        self._times.pop(event.source_id, None)

    def end_of_stream(self, event: EndOfStream) -> None:
        self._times.pop(event.source_id, None)

    def process(self, frames: list[Frame]) -> list[Frame]:
        if self._cv2 is None:
            self.start()
        for frame in frames:
            self.draw(frame)
        return frames

    def fps(self, source_id: int, now: float) -> float | None:
        """Frames per second of a source over its last ``FPS_WINDOW`` frames (robust to batches)."""
        times = self._times.setdefault(source_id, collections.deque(maxlen=FPS_WINDOW))
        times.append(now)
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0])

    def draw(self, frame: Frame) -> None:
        """Draw every overlay of one frame onto ``frame.image`` in place."""
        image, packet, o = frame.image, frame.packet, self.options
        has_poses = o.draw_poses and packet.poses is not None and len(packet.poses) > 0
        if o.draw_boxes and packet.detections is not None and len(packet.detections):
            # IDs go next to the skeleton when there is one, else next to the box.
            self._draw_detections(image, packet.detections, label_ids=not has_poses)
        if has_poses:
            self._draw_poses(image, packet.poses)
        if o.draw_info:
            fps = self.fps(packet.source_id, time.monotonic())
            text = f"{redact_url(packet.source_name)}  #{packet.index}" + (f"  {fps:.1f} fps" if fps else "")
            self._label(image, text, (4, 4), (255, 255, 255), anchor_top=True)

    def _scale(self, image: np.ndarray) -> float:
        return max(0.4, min(image.shape[:2]) / 720.0 * 0.7)

    def _label(self, image: np.ndarray, text: str, xy: tuple[int, int], color: tuple[int, int, int],
               anchor_top: bool = False) -> None:
        """Text on a dark box; ``xy`` is the box's top-left (anchor_top) or bottom-left
        (then it moves below ``xy`` when there is no room above, e.g. a person at the top edge)."""
        cv2 = self._cv2
        scale = self._scale(image)
        thickness = max(1, int(round(scale * 1.5)))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        x, y = int(xy[0]), int(xy[1])
        top = y if anchor_top else y - th - base - 4
        if top < 0:
            top = y + self.options.thickness
        top = min(max(top, 0), max(image.shape[0] - th - base - 4, 0))
        x = min(max(x, 0), max(image.shape[1] - tw - 4, 0))
        cv2.rectangle(image, (x, top), (x + tw + 4, top + th + base + 4), (0, 0, 0), -1)
        cv2.putText(image, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, color,
                    thickness, cv2.LINE_AA)

    def _draw_detections(self, image: np.ndarray, detections: Detections, label_ids: bool) -> None:
        cv2 = self._cv2
        for box, track_id in zip(detections.xyxy, detections.track_ids):
            color = track_color(track_id) if track_id >= 0 else BOX_BGR
            x1, y1, x2, y2 = (int(round(float(v))) for v in box)
            cv2.rectangle(image, (x1, y1), (x2, y2), color, self.options.thickness)
            if label_ids and track_id >= 0:
                self._label(image, str(int(track_id)), (x1, y1), color)

    def _draw_poses(self, image: np.ndarray, poses: Poses) -> None:
        cv2 = self._cv2
        o = self.options
        keypoint_set = poses.keypoint_set
        for p in range(len(poses)):
            keypoints, scores = poses.keypoints[p], poses.keypoint_scores[p]
            track_id = int(poses.track_ids[p])
            visible = scores >= o.keypoint_threshold
            tracked = track_id >= 0
            color = track_color(track_id) if tracked else None
            for a, b in keypoint_set.skeleton:
                if visible[a] and visible[b]:
                    pa = tuple(int(round(float(v))) for v in keypoints[a])
                    pb = tuple(int(round(float(v))) for v in keypoints[b])
                    cv2.line(image, pa, pb, color or limb_color(a, b, keypoint_set), o.thickness, cv2.LINE_AA)
            if o.keypoint_radius:
                for k in np.flatnonzero(visible):
                    pk = tuple(int(round(float(v))) for v in keypoints[k])
                    cv2.circle(image, pk, o.keypoint_radius, color or keypoint_color(int(k), keypoint_set), -1, cv2.LINE_AA)
            if tracked:
                if visible.any():
                    x, y = keypoints[visible, 0].min(), keypoints[visible, 1].min()
                else:
                    x, y = poses.xyxy[p, 0], poses.xyxy[p, 1]
                self._label(image, str(track_id), (int(x), int(y) - 4), color)
