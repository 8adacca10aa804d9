"""A running service's live state: what the status page, ``/api/status`` and ``/metrics`` show.

:class:`ServiceStatus` is a :class:`~streampose.runtime.telemetry.RunObserver`:
give it to ``run_pipeline(..., observer=status)`` (or feed it the same calls
from another supervisor, e.g. a Ray actor per camera) and it keeps, per
source: state (starting / running / reconnecting / failed / finished), frames,
FPS over the last few seconds, capture → sink latency p50/p99 over the recent
frames, drops, reconnects, people in view, and the newest preview JPEG; per
stage: step timings; per sink step: its counters (e.g. MQTT drops). Every
method is thread-safe; readers get plain dicts (:meth:`snapshot`).

Watching: :meth:`watch` / :meth:`unwatch` count the viewers of a source's
live view, and only a watched source's frames are encoded (the count is
passed on to the runtime's preview channel).
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..runtime.telemetry import SourceInfo, SourceState

#: seconds of finished frames the FPS is measured over.
FPS_WINDOW_S = 3.0
#: latest latencies per source kept for p50/p99.
LATENCY_WINDOW = 512


@dataclass
class _Source:
    info: SourceInfo
    state: SourceState = field(default_factory=lambda: SourceState("starting"))
    frames: int = 0
    stage_dropped: int = 0
    people: int = 0
    done_times: collections.deque = field(default_factory=lambda: collections.deque(maxlen=4096))
    latencies_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW))
    jpeg: bytes | None = None
    jpeg_version: int = 0
    watchers: int = 0


class ServiceStatus:
    """Thread-safe live state of a run (see the module docstring).

    metrics: an optional :class:`~streampose.service.metrics.ServiceMetrics`
    kept in step with every report.
    """

    def __init__(self, metrics: Any = None) -> None:
        self.metrics = metrics
        self._lock = threading.Lock()
        self._sources: dict[int, _Source] = {}
        self._stages: dict[str, dict[str, Any]] = {}
        self._sinks: dict[str, dict[str, int]] = {}
        self._preview: Any = None
        self.started_at = time.time()
        self.run_state = "running"  # "running", then "finished" or "failed"

    # -- RunObserver -------------------------------------------------------------------------
    def on_sources(self, infos: list[SourceInfo]) -> None:
        with self._lock:
            for info in infos:
                self._sources[info.source_id] = _Source(info)
        if self.metrics is not None:
            self.metrics.declare_sources(infos)

    def on_source_state(self, source_id: int, state: SourceState) -> None:
        with self._lock:
            source = self._sources.get(source_id)
            if source is None:
                return
            previous, source.state = source.state, state
            if state.live is not None and source.info.live is None:
                source.info = SourceInfo(source.info.source_id, source.info.name, state.live)
        if self.metrics is not None:
            self.metrics.source_state(source.info, previous, state)

    def on_telemetry(self, stage: str, payload: dict[str, Any]) -> None:
        now = time.monotonic()
        with self._lock:
            for sid, n in payload.get("dropped", {}).items():
                if sid in self._sources:
                    self._sources[sid].stage_dropped += n
            for sid, latencies in payload.get("latency_ms", {}).items():
                source = self._sources.get(sid)
                if source is None:
                    continue
                source.frames += len(latencies)
                source.latencies_ms.extend(latencies)
                source.done_times.extend([now] * len(latencies))
            for sid, people in payload.get("people", {}).items():
                if sid in self._sources:
                    self._sources[sid].people = people
            stage_view = self._stages.setdefault(stage, {"frames": 0, "dropped": 0, "step_ms": {}})
            stage_view["frames"] += sum(payload.get("frames", {}).values())
            stage_view["dropped"] += sum(payload.get("dropped", {}).values())
            for step, samples in payload.get("step_ms", {}).items():
                if samples:
                    stage_view["step_ms"][step] = float(np.mean(samples))
            for step, counters in payload.get("step_counters", {}).items():
                self._sinks[step] = dict(counters)
        if self.metrics is not None:
            self.metrics.telemetry(stage, payload, self.source_infos())

    def on_preview(self, source_id: int, jpeg: bytes) -> None:
        with self._lock:
            source = self._sources.get(source_id)
            if source is not None:
                source.jpeg = jpeg
                source.jpeg_version += 1

    def attach_preview(self, channel: Any) -> None:
        """The runtime's preview channel (None when the run ends); viewers' counts go to it."""
        with self._lock:
            self._preview = channel
            if channel is not None:
                for sid, source in self._sources.items():
                    channel.set_watching(sid, source.watchers > 0)

    # -- viewers ----------------------------------------------------------------------------
    def watch(self, source_id: int) -> bool:
        """One more viewer of ``source_id``'s live view; False for an unknown source."""
        with self._lock:
            source = self._sources.get(source_id)
            if source is None:
                return False
            source.watchers += 1
            if self._preview is not None:
                self._preview.set_watching(source_id, True)
            return True

    def unwatch(self, source_id: int) -> None:
        with self._lock:
            source = self._sources.get(source_id)
            if source is None:
                return
            source.watchers = max(0, source.watchers - 1)
            if self._preview is not None and source.watchers == 0:
                self._preview.set_watching(source_id, False)

    def latest_jpeg(self, source_id: int) -> tuple[int, bytes | None]:
        """(version, JPEG bytes) of the newest preview frame; the version grows with each new frame."""
        with self._lock:
            source = self._sources.get(source_id)
            if source is None:
                return 0, None
            return source.jpeg_version, source.jpeg

    # -- reading ----------------------------------------------------------------------------
    def source_infos(self) -> list[SourceInfo]:
        with self._lock:
            return [s.info for s in self._sources.values()]

    def has_source(self, source_id: int) -> bool:
        with self._lock:
            return source_id in self._sources

    def finish(self, failed: bool = False) -> None:
        """The run ended (the server may keep answering with the final numbers)."""
        self.run_state = "failed" if failed else "finished"

    def healthy(self) -> bool:
        """Running, or ended well, with at least one source not failed."""
        with self._lock:
            states = [s.state.state for s in self._sources.values()]
        if self.run_state == "failed":
            return False
        return not states or any(state != "failed" for state in states)

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as JSON-ready dicts (``/api/status``)."""
        now = time.monotonic()
        with self._lock:
            sources = [self._source_view(s, now) for _, s in sorted(self._sources.items())]
            stages = {name: {"frames": v["frames"], "dropped": v["dropped"],
                             "step_ms": {k: round(ms, 3) for k, ms in v["step_ms"].items()}}
                      for name, v in self._stages.items()}
            sinks = {name: dict(c) for name, c in self._sinks.items()}
        failed = sum(1 for s in sources if s["state"] == "failed")
        return {"run": self.run_state, "healthy": self.healthy(), "uptime_s": round(time.time() - self.started_at, 1),
                "sources_failed": failed, "sources": sources, "stages": stages, "sinks": sinks}

    @staticmethod
    def _source_view(s: _Source, now: float) -> dict[str, Any]:
        recent = [t for t in s.done_times if now - t <= FPS_WINDOW_S]
        fps = 0.0
        if len(recent) >= 2:
            span = max(now - recent[0], 1e-3)
            fps = len(recent) / min(FPS_WINDOW_S, max(span, 1.0))
        latencies = np.asarray(s.latencies_ms, dtype=np.float64)
        p50 = round(float(np.percentile(latencies, 50)), 1) if latencies.size else None
        p99 = round(float(np.percentile(latencies, 99)), 1) if latencies.size else None
        return {"id": s.info.source_id, "name": s.info.name, "live": s.info.live, "state": s.state.state,
                "detail": s.state.detail, "frames": s.frames, "fps": round(fps, 1),
                "latency_p50_ms": p50, "latency_p99_ms": p99,
                "dropped": s.state.dropped + s.stage_dropped, "reconnects": s.state.reconnects,
                "people": s.people, "width": s.state.width, "height": s.state.height, "watchers": s.watchers}
