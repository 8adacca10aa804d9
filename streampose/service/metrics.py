"""Prometheus metrics of a run, through ``prometheus_client`` (the ``serve`` extra).

One :class:`ServiceMetrics` owns its own ``CollectorRegistry`` (never the
global one), so several runs or actors in one process do not collide. It is
fed by :class:`~streampose.service.status.ServiceStatus` and rendered with
:meth:`ServiceMetrics.exposition` (``/metrics``). Names and labels:

- ``streampose_frames_total{source_id,source}``: frames that went through every stage;
- ``streampose_dropped_frames_total{source_id,source,stage}``: frames dropped by the live
  policy, ``stage="capture"`` at the source (the pipeline was busy) or a stage's name;
- ``streampose_reconnects_total{source_id,source}``: successful reconnections;
- ``streampose_connect_failures_total{source_id,source}``: failed connection attempts;
- ``streampose_source_state{source_id,source,state}``: 1 for the source's current state;
- ``streampose_people{source_id,source}``: people in the newest finished frame;
- ``streampose_latency_ms{source_id,source}``: histogram of capture → sink milliseconds;
- ``streampose_step_ms{stage,step}``: histogram of each step's milliseconds per frame;
- ``streampose_sink_events_total{sink,event}``: a sink step's counters (e.g. MQTT ``dropped``).

Source names have any password masked (``user:***@``) before they become labels.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..runtime.telemetry import SOURCE_STATES, SourceInfo, SourceState

LATENCY_BUCKETS_MS = (5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, float("inf"))
STEP_BUCKETS_MS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, float("inf"))


class ServiceMetrics:
    """Counters, gauges and histograms of one run (see the module docstring)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        source = ["source_id", "source"]
        self.frames = Counter("streampose_frames", "Frames that went through every stage",
                              source, registry=self.registry)
        self.dropped = Counter("streampose_dropped_frames", "Frames dropped by the live policy",
                               source + ["stage"], registry=self.registry)
        self.reconnects = Counter("streampose_reconnects", "Successful reconnections of a source",
                                  source, registry=self.registry)
        self.connect_failures = Counter("streampose_connect_failures", "Failed connection attempts of a source",
                                        source, registry=self.registry)
        self.state = Gauge("streampose_source_state", "1 for the source's current state",
                           source + ["state"], registry=self.registry)
        self.people = Gauge("streampose_people", "People in the newest finished frame", source,
                            registry=self.registry)
        self.latency = Histogram("streampose_latency_ms", "Capture to sink latency in milliseconds", source,
                                 buckets=LATENCY_BUCKETS_MS, registry=self.registry)
        self.step_ms = Histogram("streampose_step_ms", "Milliseconds per frame spent in a step",
                                 ["stage", "step"], buckets=STEP_BUCKETS_MS, registry=self.registry)
        self.sink_events = Counter("streampose_sink_events", "A sink step's counters (published, dropped, ...)",
                                   ["sink", "event"], registry=self.registry)
        self._lock = threading.Lock()
        self._last_source: dict[int, SourceState] = {}
        self._last_sink: dict[tuple[str, str], int] = {}

    @staticmethod
    def _labels(info: SourceInfo) -> tuple[str, str]:
        return str(info.source_id), info.name

    def declare_sources(self, infos: list[SourceInfo]) -> None:
        """Every source's series exist from the start (at 0), so a scraper sees them all."""
        with self._lock:
            for info in infos:
                labels = self._labels(info)
                self.frames.labels(*labels)
                self.dropped.labels(*labels, "capture")
                self.reconnects.labels(*labels)
                self.connect_failures.labels(*labels)
                self.people.labels(*labels)
                for state in SOURCE_STATES:
                    self.state.labels(*labels, state).set(1 if state == "starting" else 0)

    def source_state(self, info: SourceInfo, previous: SourceState, state: SourceState) -> None:
        labels = self._labels(info)
        with self._lock:
            last = self._last_source.get(info.source_id, SourceState("starting"))
            self._last_source[info.source_id] = state
            for name, counter in (("dropped", None), ("reconnects", self.reconnects),
                                  ("connect_failures", self.connect_failures)):
                delta = getattr(state, name) - getattr(last, name)
                if delta > 0:
                    if counter is None:
                        self.dropped.labels(*labels, "capture").inc(delta)
                    else:
                        counter.labels(*labels).inc(delta)
            for s in SOURCE_STATES:
                self.state.labels(*labels, s).set(1 if s == state.state else 0)

    def telemetry(self, stage: str, payload: dict[str, Any], infos: list[SourceInfo]) -> None:
        by_id = {info.source_id: info for info in infos}
        with self._lock:
            for sid, n in payload.get("dropped", {}).items():
                if sid in by_id and n:
                    self.dropped.labels(*self._labels(by_id[sid]), stage).inc(n)
            for sid, latencies in payload.get("latency_ms", {}).items():
                if sid not in by_id:
                    continue
                labels = self._labels(by_id[sid])
                self.frames.labels(*labels).inc(len(latencies))
                histogram = self.latency.labels(*labels)
                for ms in latencies:
                    histogram.observe(ms)
            for sid, people in payload.get("people", {}).items():
                if sid in by_id:
                    self.people.labels(*self._labels(by_id[sid])).set(people)
            for step, samples in payload.get("step_ms", {}).items():
                histogram = self.step_ms.labels(stage, step)
                for ms in samples:
                    histogram.observe(ms)
            for step, counters in payload.get("step_counters", {}).items():
                for event, value in counters.items():
                    key = (step, event)
                    delta = int(value) - self._last_sink.get(key, 0)
                    self._last_sink[key] = int(value)
                    if delta > 0:
                        self.sink_events.labels(step, event).inc(delta)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
