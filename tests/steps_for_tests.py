"""Test-only steps and a generated source, loaded by path in test pipelines.

Pipelines in tests name this file in ``step_modules`` (and the runtime's
``opener``), so spawned stage processes import it exactly as the parent does.

Generated source spec: ``gen?n=20&w=64&h=48`` with optional ``fps=30``
(pace frames in real time), ``live=1`` (announce a live source), ``mixed=1``
(every odd frame is half size), ``aligned=1`` (with ``fps``: frames on a grid of
the system's monotonic clock, so paced sources in different processes tick
together), ``fail_at=K`` (SourceError at frame K),
``hang_at=K&hang_s=S`` (block S seconds before frame K, like a stalled stream).
Each frame carries its index: pixel (0, 0) holds ``(index // 256, index % 256, 7)``.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import numpy as np

from streampose.errors import SinkError, SourceError, StopRequested
from streampose.records import EndOfStream, Frame, StreamStart
from streampose.step import Step, register_step

THIS_FILE = os.path.abspath(__file__)
OPENER = f"{THIS_FILE}:open_test_source"


def frame_tag(image: np.ndarray) -> int:
    """The index a generated frame carries."""
    return int(image[0, 0, 0]) * 256 + int(image[0, 0, 1])


class GeneratedSource:
    """A deterministic in-memory source following the I/O layer's Source contract."""

    def __init__(self, spec: str, source_id: int) -> None:
        query = {k: v[-1] for k, v in parse_qs(urlsplit(spec).query).items()}
        self.n = int(query.get("n", 10))
        self.w, self.h = int(query.get("w", 64)), int(query.get("h", 48))
        self.fps = float(query["fps"]) if "fps" in query else None
        self.live = query.get("live") == "1"
        self.mixed = query.get("mixed") == "1"
        self.fail_at = int(query["fail_at"]) if "fail_at" in query else None
        self.hang_at = int(query["hang_at"]) if "hang_at" in query else None
        self.hang_s = float(query.get("hang_s", 1.0))
        self.aligned = query.get("aligned") == "1"
        self.stats = {"generated": 0}
        self.start_event = StreamStart(source_id, spec, self.w, self.h, self.fps or 25.0,
                                       None if self.live else self.n, self.live)

    def frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        t0 = time.monotonic()
        if self.aligned and self.fps:
            t0 = (int(t0 * self.fps) + 1) / self.fps
        for i in range(self.n):
            if self.fail_at is not None and i == self.fail_at:
                raise SourceError(f"generated source failed at frame {i}")
            if self.hang_at is not None and i == self.hang_at:
                time.sleep(self.hang_s)
                t0 += self.hang_s
            if self.fps:
                delay = t0 + i / self.fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            h, w = (self.h // 2, self.w // 2) if self.mixed and i % 2 else (self.h, self.w)
            image = np.full((h, w, 3), (i * 37) % 256, np.uint8)
            image[0, 0] = (i // 256, i % 256, 7)
            self.stats["generated"] += 1
            yield image, i / (self.fps or 25.0)

    def close(self) -> None:
        pass


def open_test_source(spec: str, source_id: int, options: object = None) -> GeneratedSource:
    """``gen?...`` (see the module docstring), or ``file:<path>``: a media file through the real opener."""
    if spec.startswith("file:"):
        from streampose.io.sources import open_source

        return open_source(spec[len("file:"):], source_id, options)
    if not spec.startswith("gen"):
        raise SourceError(f"unknown test source {spec!r}")
    return GeneratedSource(spec, source_id)


@register_step("test_record")
class RecordStep(Step):
    """Appends one JSON line per event / frame to ``path`` (flushed at once)."""

    @dataclass
    class Options:
        path: str
        checksum: bool = False

    def __init__(self, options: "RecordStep.Options") -> None:
        self.options = options
        self._file = None

    def start(self) -> None:
        self._file = open(self.options.path, "a", encoding="utf-8")
        self._write({"event": "started", "pid": os.getpid()})

    def _write(self, obj: dict) -> None:
        self._file.write(json.dumps(obj) + "\n")
        self._file.flush()

    def start_of_stream(self, event: StreamStart) -> None:
        self._write({"event": "start", "source": event.source_id, "live": event.live,
                     "width": event.width, "height": event.height})

    def process(self, frames: list[Frame]) -> list[Frame]:
        for f in frames:
            p = f.packet
            row = {"event": "frame", "source": p.source_id, "index": p.index, "tag": frame_tag(f.image),
                   "shape": list(f.image.shape), "slot": p.slot, "batch": len(frames), "t": time.monotonic(),
                   **{k: v for k, v in p.extras.items() if k.startswith("test_")}}
            if self.options.checksum:
                row["crc"] = zlib.crc32(np.ascontiguousarray(f.image).data)
            self._write(row)
        return frames

    def end_of_stream(self, event: EndOfStream) -> None:
        self._write({"event": "end", "source": event.source_id, "frames_sent": event.frames_sent,
                     "error": event.error})

    def close(self) -> None:
        if self._file is not None:
            self._write({"event": "closed"})
            self._file.close()
            self._file = None

    def abort(self) -> None:
        """Called instead of close() when the run failed."""
        if self._file is not None:
            self._write({"event": "aborted"})
            self._file.close()
            self._file = None


@register_step("test_raise")
class RaiseStep(Step):
    """Raises RuntimeError at frame ``at_index`` (or in start() when ``in_start``)."""

    @dataclass
    class Options:
        at_index: int = 0
        in_start: bool = False
        user_error: bool = False
        stamp: str = ""  # file that receives time.monotonic() just before raising

    def __init__(self, options: "RaiseStep.Options") -> None:
        self.options = options

    def _fail(self, where: str) -> None:
        if self.options.stamp:
            with open(self.options.stamp, "w") as f:
                f.write(repr(time.monotonic()))
        if self.options.user_error:
            raise SinkError(f"test sink cannot write ({where})")
        raise RuntimeError(f"boom from test_raise {where}")

    def start(self) -> None:
        if self.options.in_start:
            self._fail("in start")

    def process(self, frames: list[Frame]) -> list[Frame]:
        for f in frames:
            if f.packet.index >= self.options.at_index:
                self._fail(f"at frame {f.packet.index}")
        return frames


@register_step("test_sleep")
class SleepStep(Step):
    """A slow consumer: sleeps ``seconds`` per call."""

    @dataclass
    class Options:
        seconds: float = 0.05

    def __init__(self, options: "SleepStep.Options") -> None:
        self.options = options

    def process(self, frames: list[Frame]) -> list[Frame]:
        time.sleep(self.options.seconds)
        return frames


@register_step("test_stop")
class StopStep(Step):
    """Asks for a graceful stop at frame ``at_index`` (like the display's q key)."""

    @dataclass
    class Options:
        at_index: int = 0

    def __init__(self, options: "StopStep.Options") -> None:
        self.options = options

    def process(self, frames: list[Frame]) -> list[Frame]:
        if any(f.packet.index >= self.options.at_index for f in frames):
            raise StopRequested()
        return frames


@register_step("test_detector")
class FakeDetectorStep(Step):
    """Stands for a detector in config tests (role "detector"); adds nothing."""

    @dataclass
    class Options:
        weights: str = "weights/none.pt"
        img_size: int = 640
        device: str = "auto"

    role = "detector"

    def __init__(self, options: "FakeDetectorStep.Options") -> None:
        self.options = options

    def process(self, frames: list[Frame]) -> list[Frame]:
        return frames


@register_step("test_pose")
class FakePoseStep(Step):
    """Stands for a pose estimator in config tests (role "pose"); adds nothing."""

    @dataclass
    class Options:
        weights: str = "weights/none.pth"
        device: str = "auto"

    role = "pose"

    def __init__(self, options: "FakePoseStep.Options") -> None:
        self.options = options

    def process(self, frames: list[Frame]) -> list[Frame]:
        return frames


@register_step("test_work")
class WorkStep(Step):
    """Stands for a model step: a ``threads`` option, ``seconds`` of work per frame
    (slower by ``jitter`` x a pseudo-random fraction, so replicas finish out of
    order), and stamps ``packet.extras`` with its process id and the math
    threads the runtime gave it (``OMP_NUM_THREADS``)."""

    @dataclass
    class Options:
        seconds: float = 0.0
        jitter: float = 0.0
        threads: int = 0
        device: str = "cpu"
        label: str = "work"

    def __init__(self, options: "WorkStep.Options") -> None:
        self.options = options

    def process(self, frames: list[Frame]) -> list[Frame]:
        o = self.options
        for f in frames:
            spin_until = time.perf_counter() + o.seconds * (1.0 + o.jitter * ((f.packet.index * 7919) % 13) / 13)
            while time.perf_counter() < spin_until:  # busy, like a forward pass (counts as stage cost)
                pass
            f.packet.extras[f"test_{o.label}_pid"] = os.getpid()
            f.packet.extras[f"test_{o.label}_threads"] = os.environ.get("OMP_NUM_THREADS")
            f.packet.extras[f"test_{o.label}_device"] = o.device
        return frames


@register_step("test_one_person")
class OnePersonStep(Step):
    """Gives every frame one detected person with a pose (untracked), so result rows and overlays exist."""

    @dataclass
    class Options:
        pass

    def __init__(self, options: "OnePersonStep.Options") -> None:
        self.options = options

    def process(self, frames: list[Frame]) -> list[Frame]:
        from streampose.records import Detections, Poses

        for f in frames:
            h, w = f.image.shape[:2]
            xyxy = np.array([[w * 0.25, h * 0.25, w * 0.75, h * 0.75]], np.float32)
            keypoints = np.tile(np.array([[[w * 0.5, h * 0.5]]], np.float32), (1, 17, 1))
            f.packet.detections = Detections(xyxy, np.ones(1, np.float32), np.zeros(1, np.int64))
            f.packet.poses = Poses(keypoints, np.ones((1, 17), np.float32), np.ones(1, np.float32), xyxy)
        return frames


@register_step("test_skeleton")
class StandingSkeletonStep(Step):
    """Puts one standing person (17 COCO keypoints, score 1) in every frame, sliding right as frames go.

    Stands for a pose model where the model is not the point (web view and
    restream tests): ``draw`` then paints a skeleton with its limb colours.
    """

    @dataclass
    class Options:
        pass

    # (x, y) of a standing person in a 100 x 200 box, COCO order.
    SHAPE = np.array([[50, 20], [45, 15], [55, 15], [40, 18], [60, 18], [30, 50], [70, 50], [22, 85],
                      [78, 85], [18, 120], [82, 120], [38, 120], [62, 120], [36, 160], [64, 160],
                      [35, 195], [65, 195]], np.float32)

    def __init__(self, options: "StandingSkeletonStep.Options") -> None:
        self.options = options

    def process(self, frames: list[Frame]) -> list[Frame]:
        from streampose.records import Poses

        for frame in frames:
            h, w = frame.image.shape[:2]
            scale = min(w / 160.0, h / 220.0)
            offset = np.array([(frame.packet.index * 3) % max(1, int(w - 100 * scale)), 10 * scale], np.float32)
            keypoints = (self.SHAPE * scale + offset)[None]
            box = np.array([[keypoints[0, :, 0].min(), keypoints[0, :, 1].min(),
                             keypoints[0, :, 0].max(), keypoints[0, :, 1].max()]], np.float32)
            frame.packet.poses = Poses(keypoints, np.ones((1, 17), np.float32), np.ones(1, np.float32), box,
                                       np.full(1, -1, np.int64))
        return frames
