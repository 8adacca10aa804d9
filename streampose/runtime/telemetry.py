"""What a run tells a watcher while it goes: source states, counters, timings, preview frames.

The runtime knows nothing about web servers or metrics formats. It reports to
a :class:`RunObserver` (anything with these methods, e.g.
:class:`streampose.service.ServiceStatus`), from the process that runs the
supervisor (the parent), on one thread:

- ``on_sources(infos)`` once at the start: one :class:`SourceInfo` per source;
- ``on_source_state(source_id, state)``: a capture's state changed, or its
  counters moved (see :class:`SourceState`);
- ``on_telemetry(stage, payload)``: a stage's counters and timing samples
  since its previous report (see :class:`TelemetryBuffer`), every
  ``TELEMETRY_EVERY_S`` and once more when the stage ends;
- ``on_preview(source_id, jpeg)``: the latest annotated frame of a source
  someone is watching, JPEG bytes.

Preview frames are encoded by the last stage only while
:meth:`PreviewChannel.set_watching` says someone watches that source, at most
``PREVIEW_MAX_FPS`` per source, and travel through a small bounded queue:
when the watcher side is slow the newest frames are simply not sent (counted
in ``preview_dropped``), so watching never slows the pipeline.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..records import FramePacket

log = logging.getLogger(__name__)

#: seconds between a stage's telemetry reports.
TELEMETRY_EVERY_S = 0.5
#: the most preview frames per second encoded for one watched source.
PREVIEW_MAX_FPS = 15.0
#: JPEG quality of preview frames.
PREVIEW_JPEG_QUALITY = 80

#: a source's states, in the words the status page uses.
SOURCE_STATES = ("starting", "running", "reconnecting", "failed", "finished")


@dataclass(frozen=True)
class SourceInfo:
    """A source as the watcher sees it: ``name`` already has any password masked."""

    source_id: int
    name: str
    live: bool | None  # None: not known yet (a live-form source that was unreachable at start)


@dataclass
class SourceState:
    """A capture's report. state: one of ``SOURCE_STATES``; detail: why (one line) when failed
    or reconnecting; frames: frames read; dropped: frames the capture dropped (live: the
    pipeline was busy); reconnects / connect_failures: the source's counters."""

    state: str
    detail: str = ""
    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    width: int = 0
    height: int = 0
    live: bool | None = None


class RunObserver(Protocol):
    def on_sources(self, infos: list[SourceInfo]) -> None: ...
    def on_source_state(self, source_id: int, state: SourceState) -> None: ...
    def on_telemetry(self, stage: str, payload: dict[str, Any]) -> None: ...
    def on_preview(self, source_id: int, jpeg: bytes) -> None: ...


def people_in(packet: FramePacket) -> int:
    """People found in a frame: poses when a step made them, else person detections."""
    if packet.poses is not None:
        return len(packet.poses)
    if packet.detections is not None:
        return len(packet.detections)
    return 0


@dataclass
class TelemetryBuffer:
    """A stage's counters and samples since its last report (filled by the StageRunner).

    frames / dropped: packets finished / dropped by the live policy here, per
    source id; step_ms: per step, the milliseconds each processed batch took
    divided by its size (one sample per frame's share); latency_ms (last
    stage): capture → sink milliseconds per finished frame, per source;
    people (last stage): people in the newest finished frame, per source.
    """

    frames: dict[int, int] = field(default_factory=dict)
    dropped: dict[int, int] = field(default_factory=dict)
    step_ms: dict[str, list[float]] = field(default_factory=dict)
    latency_ms: dict[int, list[float]] = field(default_factory=dict)
    people: dict[int, int] = field(default_factory=dict)
    last_sent: float = field(default_factory=time.monotonic)

    def add_dropped(self, source_id: int, n: int = 1) -> None:
        self.dropped[source_id] = self.dropped.get(source_id, 0) + n

    def add_step(self, step: str, per_frame_ms: float, n: int) -> None:
        self.step_ms.setdefault(step, []).extend([per_frame_ms] * n)

    def add_done(self, packet: FramePacket, latency_ms: float | None) -> None:
        sid = packet.source_id
        self.frames[sid] = self.frames.get(sid, 0) + 1
        if latency_ms is not None:
            self.latency_ms.setdefault(sid, []).append(latency_ms)
            self.people[sid] = people_in(packet)

    def due(self) -> bool:
        return time.monotonic() - self.last_sent >= TELEMETRY_EVERY_S

    def take(self) -> dict[str, Any]:
        """The report (plain dicts and lists, cheap to pickle); the buffer starts afresh."""
        payload = {"frames": self.frames, "dropped": self.dropped, "step_ms": self.step_ms,
                   "latency_ms": self.latency_ms, "people": self.people}
        self.frames, self.dropped, self.step_ms, self.latency_ms, self.people = {}, {}, {}, {}, {}
        self.last_sent = time.monotonic()
        return payload


class PreviewChannel:
    """Watch flags (parent → last stage) and preview JPEGs (last stage → parent).

    Created by the runtime with its multiprocessing context; picklable at
    spawn. ``watching`` is a shared byte array (one flag per source), ``frames``
    a bounded queue of ``(source_id, jpeg bytes)``.
    """

    def __init__(self, ctx: Any, num_sources: int) -> None:
        self.watching = ctx.Array("b", num_sources, lock=False)
        self.frames = ctx.Queue(maxsize=max(2, 2 * num_sources))

    def set_watching(self, source_id: int, watching: bool) -> None:
        if 0 <= source_id < len(self.watching):
            self.watching[source_id] = 1 if watching else 0


class PreviewEncoder:
    """Last-stage side of a :class:`PreviewChannel`: encodes watched frames, never waits."""

    def __init__(self, channel: PreviewChannel) -> None:
        self.channel = channel
        self.last_sent: dict[int, float] = {}
        self.dropped = 0
        self._cv2: Any = None

    def offer(self, source_id: int, image: Any) -> None:
        """Send ``image`` (BGR uint8) if its source is watched and its next preview is due."""
        if not (0 <= source_id < len(self.channel.watching)) or not self.channel.watching[source_id]:
            return
        now = time.monotonic()
        if now - self.last_sent.get(source_id, 0.0) < 1.0 / PREVIEW_MAX_FPS:
            return
        if self.channel.frames.full():
            self.dropped += 1  # the watcher side is behind: skip, never wait
            return
        if self._cv2 is None:
            import cv2

            self._cv2 = cv2
        ok, jpeg = self._cv2.imencode(".jpg", image, [self._cv2.IMWRITE_JPEG_QUALITY, PREVIEW_JPEG_QUALITY])
        if not ok:
            return
        try:
            self.channel.frames.put_nowait((source_id, jpeg.tobytes()))
            self.last_sent[source_id] = now
        except queue.Full:
            self.dropped += 1
