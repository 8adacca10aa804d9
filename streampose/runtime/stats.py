"""Counters and timings of a run, and the end-of-run summary.

Each stage (and each capture) fills a :class:`StageStats` in its own process
and sends it to the parent at the end; the last stage also keeps a
:class:`LatencyHistogram` of capture → sink latencies. Memory is bounded:
the histogram has fixed log-spaced buckets (1 % wide), never a list of samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: frames finished before the steady-state rate is measured (first batches pay for lazy init, caches, JIT).
WARMUP_FRAMES = 10


class LatencyHistogram:
    """Log-bucketed latencies in milliseconds; percentiles accurate to about 1 %."""

    _BASE_MS = 0.01
    _GROWTH = math.log(1.01)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.min_ms = math.inf
        self.max_ms = 0.0

    def add(self, latency_ms: float) -> None:
        v = max(latency_ms, self._BASE_MS)
        bucket = int(math.log(v / self._BASE_MS) / self._GROWTH)
        self.counts[bucket] = self.counts.get(bucket, 0) + 1
        self.count += 1
        self.min_ms = min(self.min_ms, latency_ms)
        self.max_ms = max(self.max_ms, latency_ms)

    def merge(self, other: "LatencyHistogram") -> None:
        for bucket, n in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + n
        self.count += other.count
        self.min_ms = min(self.min_ms, other.min_ms)
        self.max_ms = max(self.max_ms, other.max_ms)

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0..100) in ms, None when empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(self.count * q / 100.0))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                # bucket centre, clamped to what was actually seen
                centre = self._BASE_MS * math.exp((bucket + 0.5) * self._GROWTH)
                return min(max(centre, self.min_ms), self.max_ms)
        return self.max_ms


@dataclass
class StageStats:
    """One stage's (or one capture's) counters.

    frames_in: packets received (captures: frames read from the source);
    frames_out: packets passed on (last stage: packets finished);
    dropped: packets dropped by the live policy here; wait_in_s: time blocked
    waiting for input; wait_out_s: time blocked on the next edge (captures:
    waiting for a free ring slot); busy_s: seconds per step name; extra:
    other counters (e.g. a source's reconnects).
    """

    name: str
    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    wait_in_s: float = 0.0
    wait_out_s: float = 0.0
    busy_s: dict[str, float] = field(default_factory=dict)
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def total_busy_s(self) -> float:
        return sum(self.busy_s.values())


@dataclass
class RunStats:
    """What a run did, for the summary and for benchmarks.

    frames_done: packets that went through every stage, per source name;
    started: monotonic time the run started (before processes and models);
    first_capture / last_done: monotonic times bounding the processed frames;
    warm_done / warm_frames: when the last stage had finished ``warm_frames``
    (>= WARMUP_FRAMES) frames, where the steady-state rate starts;
    wall_s: whole run, including process start-up.
    """

    stages: list[StageStats] = field(default_factory=list)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    frames_done: dict[str, int] = field(default_factory=dict)
    #: capture → sink latency per source (same keys as frames_done)
    source_latency: dict[str, LatencyHistogram] = field(default_factory=dict)
    #: one-line reasons of the sources that failed, by source label
    failed_sources: dict[str, str] = field(default_factory=dict)
    #: sources given to the run (some may never have started)
    num_sources: int = 0
    first_capture: float | None = None
    last_done: float | None = None
    wall_s: float = 0.0
    started: float | None = None
    warm_done: float | None = None
    warm_frames: int = 0

    @property
    def total_frames(self) -> int:
        return sum(self.frames_done.values())

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self.stages)

    @property
    def startup_s(self) -> float | None:
        """Seconds from the start of the run to the first frame captured (processes, models, connecting)."""
        if self.started is None or self.first_capture is None:
            return None
        return max(0.0, self.first_capture - self.started)

    @property
    def fps(self) -> float | None:
        """Steady-state frames per second: after the first ``warm_frames`` finished, to the last one.

        Short runs (fewer than 2 frames after the warm-up) fall back to the
        first capture → last finished frame. Start-up is never included.
        """
        if self.last_done is None or self.total_frames < 2:
            return None
        if self.warm_done is not None and self.total_frames - self.warm_frames >= 2:
            span = self.last_done - self.warm_done
            if span > 0:
                return (self.total_frames - self.warm_frames) / span
        if self.first_capture is None:
            return None
        span = self.last_done - self.first_capture
        return self.total_frames / span if span > 0 else None

    def stage(self, name: str) -> StageStats:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def summary_lines(self) -> list[str]:
        """A human-readable table: totals, latency, then one row per stage and step."""
        fps = self.fps
        startup = self.startup_s
        n_src = len(self.frames_done)
        timing = f"in {self.wall_s:.1f} s"
        if startup is not None:
            timing += f" (start-up {startup:.1f} s)"
        if fps:
            timing += f", {fps:.1f} fps steady state"
        lines = [f"{self.total_frames} frames from {n_src} source{'s' if n_src != 1 else ''} {timing}, "
                 f"{self.dropped} dropped"]
        p50, p99 = self.latency.percentile(50), self.latency.percentile(99)
        if p50 is not None:
            lines.append(f"latency capture->sink: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        if len(self.frames_done) > 1:
            for name, frames in self.frames_done.items():
                hist = self.source_latency.get(name)
                lat = (f", p50 {hist.percentile(50):.1f} ms, p99 {hist.percentile(99):.1f} ms"
                       if hist is not None and hist.count else "")
                lines.append(f"  {name}: {frames} frames{lat}")
        if self.failed_sources:
            n, total = len(self.failed_sources), max(len(self.failed_sources), self.num_sources, n_src)
            lines.append(f"{n} of {total} source{'s' if total != 1 else ''} failed:")
            lines += [f"  {name}: {reason}" for name, reason in self.failed_sources.items()]
        header = f"{'stage / step':<22}{'in':>8}{'out':>8}{'dropped':>9}{'ms/frame':>10}{'wait in s':>11}{'wait out s':>12}"
        lines.append(header)
        for s in self.stages:
            per = 1000.0 * s.total_busy_s / s.frames_out if s.frames_out else 0.0
            shown = {k: v for k, v in sorted(s.extra.items()) if v and k != "frames_decoded"}
            extra = "  " + " ".join(f"{k}={v}" for k, v in shown.items()) if shown else ""
            lines.append(f"{s.name:<22}{s.frames_in:>8}{s.frames_out:>8}{s.dropped:>9}{per:>10.2f}"
                         f"{s.wait_in_s:>11.2f}{s.wait_out_s:>12.2f}{extra}")
            if len(s.busy_s) > 1 or (s.busy_s and next(iter(s.busy_s)) != s.name):
                for step, busy in s.busy_s.items():
                    per = 1000.0 * busy / s.frames_out if s.frames_out else 0.0
                    lines.append(f"  {step:<20}{'':>25}{per:>10.2f}")
        return lines
