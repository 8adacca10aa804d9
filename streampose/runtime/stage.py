"""One stage's logic: an ordered list of steps applied to in-band events.

:class:`StageRunner` knows nothing about processes. The process runtime feeds
it what arrives on a stage's input queue; the inline runner feeds it directly.
It applies the live policy to the backlog it is given, batches packets up to
``batch_size`` (a batch never spans an event), calls the steps, times them,
and returns what must go to the next stage, in order.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import numpy as np

from ..errors import StopRequested
from ..io.urls import redact_text
from ..records import EndOfStream, Frame, FramePacket, StreamStart
from ..step import Step
from .edges import drop_stale
from .stats import WARMUP_FRAMES, LatencyHistogram, StageStats

log = logging.getLogger(__name__)


class StageRunner:
    """Runs ``steps`` over a stream of StreamStart / FramePacket / EndOfStream.

    pixels(packet) -> the frame's (H, W, 3) uint8 image (a ring view or an
    in-process array); release(packet) gives its pixels back (called for
    dropped packets, and after processing when ``is_last``). on_stop_request()
    is called once when a step raises StopRequested. ``done`` turns true once
    the end of every one of ``num_sources`` sources went through.
    telemetry (optional): a TelemetryBuffer filled as frames go (counters,
    step timings, latencies); preview (optional, last stage): a
    PreviewEncoder offered every finished, annotated frame.
    """

    def __init__(self, name: str, steps: list[Step], batch_size: int, num_sources: int,
                 pixels: Callable[[FramePacket], np.ndarray],
                 release: Callable[[FramePacket], None], is_last: bool,
                 on_stop_request: Callable[[], None] | None = None) -> None:
        self.name = name
        self.steps = steps
        self.batch_size = max(1, batch_size)
        self.num_sources = num_sources
        self.pixels = pixels
        self.release = release
        self.is_last = is_last
        self.on_stop_request = on_stop_request
        self.stats = StageStats(name, busy_s={s.type_name or type(s).__name__: 0.0 for s in steps})
        self.latency = LatencyHistogram()
        self.source_latency: dict[int, LatencyHistogram] = {}
        self.frames_done: dict[int, int] = {}
        self.source_names: dict[int, str] = {}
        self.first_capture: float | None = None
        self.last_done: float | None = None
        #: when the frames finished here first reached WARMUP_FRAMES, and how many that was (steady-state fps)
        self.warm_done: float | None = None
        self.warm_frames = 0
        self.live_sources: set[int] = set()
        self.ended_sources: set[int] = set()
        self.stop_requested = False
        self.current_step = ""
        self.telemetry: Any = None
        self.preview: Any = None
        self._started: list[Step] = []

    def source_label(self, source_id: int) -> str:
        """A source's name in summaries, password masked (``name [id]`` when two sources share a name)."""
        names = list(self.source_names.values())
        name = self.source_names.get(source_id, f"source {source_id}")
        label = redact_text(name)
        return label if names.count(name) <= 1 else f"{label} [{source_id}]"

    def frames_done_by_name(self) -> dict[str, int]:
        """Finished frames per source label (see :meth:`source_label`)."""
        return {self.source_label(sid): self.frames_done.get(sid, 0) for sid in sorted(self.source_names)}

    def latency_by_name(self) -> dict[str, LatencyHistogram]:
        """Capture → sink latencies per source label."""
        return {self.source_label(sid): h for sid, h in sorted(self.source_latency.items())}

    @property
    def done(self) -> bool:
        return len(self.ended_sources) >= self.num_sources

    def start(self) -> None:
        """Start every step in order (in the process that runs them)."""
        for step in self.steps:
            self.current_step = self._step_name(step)
            step.start()
            self._started.append(step)
        self.current_step = ""

    def handle(self, items: list[Any]) -> list[Any]:
        """Process a backlog of events and packets; return what goes downstream, in order."""
        self.stats.frames_in += sum(1 for item in items if isinstance(item, FramePacket))
        items, dropped = drop_stale(items, self.live_sources)
        for packet in dropped:
            self.release(packet)
            if self.telemetry is not None:
                self.telemetry.add_dropped(packet.source_id)
        self.stats.dropped += len(dropped)
        out: list[Any] = []
        batch: list[FramePacket] = []
        for item in items:
            if isinstance(item, FramePacket):
                batch.append(item)
                if len(batch) >= self.batch_size:
                    out.extend(self._process(batch))
                    batch = []
                continue
            if batch:
                out.extend(self._process(batch))
                batch = []
            if isinstance(item, StreamStart):
                self.source_names[item.source_id] = item.source_name
                self.frames_done.setdefault(item.source_id, 0)
                if item.live:
                    self.live_sources.add(item.source_id)
                for step in self.steps:
                    self.current_step = self._step_name(step)
                    step.start_of_stream(item)
            elif isinstance(item, EndOfStream):
                for step in self.steps:
                    self.current_step = self._step_name(step)
                    step.end_of_stream(item)
                self.ended_sources.add(item.source_id)
                self.live_sources.discard(item.source_id)
            else:
                raise TypeError(f"stage {self.name!r} got an unexpected {type(item).__name__}")
            self.current_step = ""
            out.append(item)
        if batch:
            out.extend(self._process(batch))
        return out

    def _process(self, packets: list[FramePacket]) -> list[FramePacket]:
        frames = [Frame(p, self.pixels(p)) for p in packets]
        n = len(frames)
        for step in self.steps:
            name = self._step_name(step)
            self.current_step = name
            t0 = time.perf_counter()
            try:
                result = step.process(frames)
            except StopRequested:
                result = frames
                if not self.stop_requested:
                    self.stop_requested = True
                    log.info("stage %r: step %r asked to stop", self.name, name)
                    if self.on_stop_request is not None:
                        self.on_stop_request()
            dt = time.perf_counter() - t0
            if not isinstance(result, list) or len(result) != n:
                got = len(result) if isinstance(result, list) else type(result).__name__
                raise RuntimeError(f"step {name!r} returned {got} frames for a batch of {n}; "
                                   "process() must return every frame it was given, in order")
            frames = result
            self.stats.busy_s[name] = self.stats.busy_s.get(name, 0.0) + dt
            if self.telemetry is not None:
                self.telemetry.add_step(name, 1000.0 * dt / n, n)
            for frame in frames:
                frame.packet.timings[name] = frame.packet.timings.get(name, 0.0) + dt / n
        self.current_step = ""
        self.stats.frames_out += n
        packets = [f.packet for f in frames]
        if not self.is_last:
            if self.telemetry is not None:
                for p in packets:
                    self.telemetry.add_done(p, None)
            return packets
        now = time.monotonic()
        if self.preview is not None:
            for f in frames:
                self.preview.offer(f.packet.source_id, f.image)
        for p in packets:
            latency_ms = 1000.0 * (now - p.capture_time)
            self.latency.add(latency_ms)
            self.source_latency.setdefault(p.source_id, LatencyHistogram()).add(latency_ms)
            if self.telemetry is not None:
                self.telemetry.add_done(p, latency_ms)
            self.frames_done[p.source_id] = self.frames_done.get(p.source_id, 0) + 1
            if self.first_capture is None or p.capture_time < self.first_capture:
                self.first_capture = p.capture_time
            self.release(p)
        self.last_done = now
        if self.warm_done is None:
            done = sum(self.frames_done.values())
            if done >= WARMUP_FRAMES:
                self.warm_done, self.warm_frames = now, done
        return []

    def close(self, failed: bool = False) -> list[tuple[str, BaseException]]:
        """Close every started step (each even if another fails); returns (step, error) pairs.

        failed: the run failed, so steps get ``abort()`` instead (sinks drop
        their half-written files; other steps just close).
        """
        errors = []
        for step in self._started:
            try:
                if failed:
                    step.abort()
                else:
                    step.close()
            except Exception as e:  # noqa: BLE001 - reported by the caller, others still close
                errors.append((self._step_name(step), e))
        self._started = []
        return errors

    @staticmethod
    def _step_name(step: Step) -> str:
        return step.type_name or type(step).__name__
