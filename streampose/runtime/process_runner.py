"""The multiprocess runtime: one process per source (capture) and per stage.

Topology: capture[i] → stage 0 → stage 1 → … → last stage (steps + sinks).
Every capture feeds the first stage's queue; each source has its own ring,
so a blocked offline source never holds slots a live source needs, and each
stage serves live frames first (:mod:`streampose.runtime.scheduling`), so
they never wait behind an offline backlog either. A live source the parent
could not open is started anyway: its capture keeps retrying and it joins
late (or is reported failed); the run goes on with the others.

With an observer (:mod:`streampose.runtime.telemetry`) the parent forwards
the captures' source states and the stages' telemetry to it, and a preview
channel carries watched sources' annotated frames from the last stage. A stage
with replicas runs as several processes, one input queue each; frames are
dealt to them and re-ordered after (:mod:`streampose.runtime.replicas`).
Math threads are given to the stages by their measured cost and re-balanced
while the run goes (:mod:`streampose.runtime.threads`).

The parent only coordinates: it creates rings and queues, starts the
children (spawn), unlinks the rings once every child has attached, then
watches the children's sentinels and the control queue. On a failure it
aborts everyone and, after a short grace period, kills what is left; on
SIGINT/SIGTERM or a step's StopRequested it asks the captures to end their
sources so the end of stream flows through and the sinks finalize.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.connection
import queue
import signal
import threading
import time
from typing import Any

from .. import errors as errors_module
from ..config import PipelineConfig
from ..errors import UserError
from ..records import StreamStart
from .outcome import RunResult, StageFailed
from .progress import ProgressBar
from .replicas import Dealer
from .ring import FrameRing
from ..io.urls import redact_text
from .signals import StopSignals
from .stats import RunStats, StageStats
from .threads import ThreadBalancer
from .telemetry import PreviewChannel, RunObserver, SourceInfo
from .worker import CaptureConfig, Control, StageConfig, child_main

log = logging.getLogger(__name__)

#: after an abort, children get this long to close their steps before being killed.
ABORT_GRACE_S = 0.8
#: after a graceful stop request, the sources' ends get this long to flow through.
DRAIN_TIMEOUT_S = 20.0
#: (width, height) the ring of a live source that was unreachable at start is sized for.
LATE_SOURCE_MAX_SIZE = (1920, 1080)


def default_ring_slots(pipeline: PipelineConfig) -> int:
    """Slots per source: enough for every stage process to hold a batch while the next one is queued."""
    return pipeline.ring_slots or 4 + 2 * sum(s.batch_size * s.replicas for s in pipeline.stages)


class _Child:
    def __init__(self, name: str, process: Any) -> None:
        self.name = name
        self.process = process
        self.ready = False
        self.started = name.startswith("capture")  # captures have no steps to start
        self.reported = False  # sent an error / user_error before exiting
        self.exit_seen = False


def run_processes(pipeline: PipelineConfig, stage_specs: list[list[dict]], starts: list[StreamStart | None],
                  source_specs: list[str], opener: str, source_options: Any,
                  max_frames: int | None, progress: ProgressBar | None,
                  signals: StopSignals, start_errors: dict[int, str] | None = None,
                  observer: RunObserver | None = None) -> RunResult:
    """Run the pipeline over already-probed sources; see :func:`streampose.runtime.run_pipeline`.

    A None in ``starts`` is a live source the parent could not open
    (``start_errors`` says why): its capture keeps trying, and its ring is
    sized for ``LATE_SOURCE_MAX_SIZE`` frames.
    """
    ctx = mp.get_context("spawn")
    t_start = time.monotonic()
    start_errors = start_errors or {}
    control = Control(ctx.Queue(), ctx.Event(), ctx.Event(), ctx.Event(), ctx.Event(),
                      logging.getLogger().getEffectiveLevel())
    n_sources = len(starts)
    n_slots = default_ring_slots(pipeline)
    rings: list[FrameRing] = []
    children: list[_Child] = []
    stats = RunStats(started=t_start, num_sources=n_sources)
    result = RunResult(stats, num_sources=n_sources, source_labels=source_labels(source_specs))
    preview = PreviewChannel(ctx, n_sources) if observer is not None else None
    watch = _ObserverFeed(observer, preview, source_specs, starts) if observer is not None else None
    failure: BaseException | None = None
    try:
        for start in starts:
            if start is None:
                slot_shape = (LATE_SOURCE_MAX_SIZE[1], LATE_SOURCE_MAX_SIZE[0], 3)
            else:
                slot_shape = (max(1, start.height), max(1, start.width), 3)
            rings.append(FrameRing.create(n_slots, slot_shape, free=ctx.Queue()))
        ring_specs = {i: ring.spec for i, ring in enumerate(rings)}
        maxsize = n_slots * n_sources + 2 * n_sources + 8  # never reached: slots bound the packets
        # One input queue per process of each stage (replicas each have their own).
        dealers = [Dealer([ctx.Queue(maxsize) for _ in range(stage.replicas)]) for stage in pipeline.stages]
        slots, next_slot = [], 0
        for stage in pipeline.stages:
            slots.append(list(range(next_slot, next_slot + stage.replicas)))
            next_slot += stage.replicas
        balancer = ThreadBalancer(ctx, stage_specs, slots)
        for i, stage in enumerate(pipeline.stages):
            for r in range(stage.replicas):
                name = stage.name if stage.replicas == 1 else f"{stage.name}[{r}]"
                specs = stage_specs[i]
                if stage.devices:
                    specs = stage.replica_steps(r) + specs[len(stage.steps):]
                is_last = i + 1 == len(dealers)
                cfg = StageConfig(name, i, specs, stage.batch_size, n_sources, ring_specs,
                                  dealers[i].queues[r], None if is_last else dealers[i + 1],
                                  pipeline.step_modules, threads=balancer.for_slot(slots[i][r]),
                                  upstream=pipeline.stages[i - 1].replicas if i else 1,
                                  replica=r, replicas=stage.replicas, telemetry=observer is not None,
                                  preview=preview if is_last else None)
                children.append(_Child(name, ctx.Process(target=child_main, args=("stage", cfg, control),
                                                         name=f"streampose {name}", daemon=False)))
        for i, (start, spec) in enumerate(zip(starts, source_specs)):
            name = f"capture[{i}]"
            cfg = CaptureConfig(name, i, spec, opener, source_options, start, ring_specs[i], dealers[0],
                                max_frames, pipeline.step_modules, start_error=start_errors.get(i, ""),
                                display_name=redact_text(spec))
            children.append(_Child(name, ctx.Process(target=child_main, args=("capture", cfg, control),
                                                     name=f"streampose {name}", daemon=False)))
        for child in children:
            child.process.start()
            log.debug("started %s (pid %d)", child.name, child.process.pid)
        if watch is not None:
            watch.start()
        failure = _supervise(children, control, rings, stats, result, progress, signals, balancer, watch)
    except BaseException as e:  # noqa: BLE001 - e.g. KeyboardInterrupt before handlers; abort below
        failure = e
    finally:
        if failure is not None or any(c.process.exitcode is None for c in children if c.process.pid):
            _abort(children, control, stats, result, progress, failed=failure is not None, watch=watch)
        if watch is not None:
            watch.stop()
        if failure is not None or any((c.process.exitcode or 0) < 0 for c in children if c.process.pid):
            # A sink's process that was killed could not delete its unfinished files: do it here.
            _remove_partial_files(stage_specs[-1])
        for ring in rings:
            ring.unlink()
            ring.close()
        if progress is not None:
            progress.close(final_fps=stats.fps)  # its last line agrees with the summary
        order = {c.name: i for i, c in enumerate(sorted(children, key=lambda c: not c.name.startswith("capture")))}
        stats.stages.sort(key=lambda s: order.get(s.name, len(order)))
        stats.wall_s = time.monotonic() - t_start
    if failure is not None:
        raise failure
    return result


def _supervise(children: list[_Child], control: Control, rings: list[FrameRing], stats: RunStats,
               result: RunResult, progress: ProgressBar | None, signals: StopSignals,
               balancer: ThreadBalancer, watch: "_ObserverFeed | None" = None) -> BaseException | None:
    """Watch the run until every child exited; returns the failure to raise, if any."""
    unlinked = False
    stop_deadline: float | None = None
    stop_reason: str | None = None
    while True:
        sentinels = [c.process.sentinel for c in children if not c.exit_seen]
        if sentinels:
            mp.connection.wait(sentinels, timeout=0.1)
        failure = _read_messages(children, control, stats, result, progress, watch)
        if failure is not None:
            return failure
        balancer.rebalance()
        if not unlinked and all(c.ready for c in children):
            for ring in rings:
                ring.unlink()  # every process has it mapped: from now on nothing can leak
            unlinked = True
            log.debug("all %d processes attached; rings unlinked", len(children))
        if not control.go.is_set() and all(c.started for c in children):
            control.go.set()
            log.debug("every stage started its steps; sources open now")
        # Graceful stop: a signal, or a step asked (StopRequested).
        wanted = signals.reason or ("stop_requested" if result.reason == "stop_requested" else None)
        if wanted and stop_deadline is None:
            stop_reason = wanted
            control.stop.set()
            stop_deadline = time.monotonic() + DRAIN_TIMEOUT_S
            log.info("stopping: ending the sources and finalizing the outputs (again to stop at once)")
        if stop_reason is not None:
            result.reason = signals.reason or stop_reason
        if signals.count >= 2:
            log.warning("second signal: stopping at once")
            return None
        if stop_deadline is not None and time.monotonic() > stop_deadline:
            log.warning("the pipeline did not drain within %.0f s; stopping at once", DRAIN_TIMEOUT_S)
            return None
        for child in children:
            code = child.process.exitcode
            if code is None or child.exit_seen:
                continue
            child.exit_seen = True
            if code == 0:
                continue
            # Its last message may still be in the pipe: read it before concluding.
            failure = _read_messages(children, control, stats, result, progress, watch)
            if failure is not None:
                return failure
            if not child.reported:
                if signals.reason:
                    # A terminal's Ctrl-C reaches the whole group: a child still starting up (before
                    # it ignores signals) dies of it. Part of the stop asked for, not a failure.
                    log.debug("%s ended by the signal while starting (%s)", child.name, _death(child, code))
                    return None
                return StageFailed(child.name, _death(child, code))
        if all(c.exit_seen for c in children):
            _read_messages(children, control, stats, result, progress, watch)
            return None


def _remove_partial_files(specs: list[dict]) -> None:
    from ..io.atomic import discard
    from ..io.outputs import partial_files

    for spec in specs:
        for path in partial_files(spec):
            if path.exists():
                log.debug("removing the unfinished %s", path)
                discard(path)


def _death(child: _Child, code: int) -> str:
    if code < 0:
        try:
            how = f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    return f"process {child.process.pid} {how} without reporting an error"


def _read_messages(children: list[_Child], control: Control, stats: RunStats, result: RunResult,
                   progress: ProgressBar | None, watch: "_ObserverFeed | None" = None) -> BaseException | None:
    """Handle every waiting control message; returns the first failure reported."""
    by_name = {c.name: c for c in children}
    failure: BaseException | None = None
    while True:
        try:
            message = control.ctrl.get_nowait()
        except queue.Empty:
            return failure
        except (EOFError, OSError):
            return failure
        kind, name = message[0], message[1]
        child = by_name.get(name)
        if kind == "log":
            record = message[2]
            logging.getLogger(record.name).handle(record)
        elif kind == "ready":
            if child is not None:
                child.ready = True
        elif kind == "started":
            if child is not None:
                child.started = True
        elif kind == "progress":
            if progress is not None:
                progress.update(message[2])
        elif kind == "stats":
            _merge_stats(stats, message[2])
        elif kind == "source_error":
            text, live, source_id = redact_text(message[2]), message[3], message[4]
            result.add_source_failure(source_id, text, live)
            stats.failed_sources[result.source_labels.get(source_id, f"source {source_id}")] = text
        elif kind == "source_state":
            if watch is not None:
                watch.observer.on_source_state(message[2], message[3])
        elif kind == "telemetry":
            if watch is not None:
                watch.observer.on_telemetry(name, message[2])
        elif kind == "stop_requested":
            if result.reason == "completed":
                result.reason = "stop_requested"
        elif kind in ("error", "user_error"):
            if child is not None:
                child.reported = True
            if failure is None and not control.abort.is_set():
                if kind == "error":
                    failure = StageFailed(name, message[2])
                else:
                    cls = getattr(errors_module, message[2], UserError)
                    if not (isinstance(cls, type) and issubclass(cls, UserError)):
                        cls = UserError
                    failure = cls(message[3])


def _merge_stats(stats: RunStats, payload: dict) -> None:
    stage: StageStats = payload["stage"]
    stats.stages = [s for s in stats.stages if s.name != stage.name] + [stage]
    if "latency" in payload:
        stats.latency.merge(payload["latency"])
        stats.frames_done.update(payload["frames_done"])
        stats.source_latency.update(payload.get("source_latency", {}))
        stats.first_capture = payload["first_capture"]
        stats.last_done = payload["last_done"]
        stats.warm_done = payload.get("warm_done")
        stats.warm_frames = payload.get("warm_frames", 0)


def _abort(children: list[_Child], control: Control, stats: RunStats, result: RunResult,
           progress: ProgressBar | None, failed: bool, watch: "_ObserverFeed | None" = None) -> None:
    """Stop every child now: ask, wait a short grace period, then kill what is left.

    failed: the run failed (sinks delete unfinished files) rather than being
    stopped at once by a second signal (sinks finalize what they have).
    """
    if failed:
        control.failed.set()
    control.abort.set()
    deadline = time.monotonic() + ABORT_GRACE_S
    alive = [c for c in children if c.process.pid is not None]
    while time.monotonic() < deadline and any(c.process.exitcode is None for c in alive):
        mp.connection.wait([c.process.sentinel for c in alive if c.process.exitcode is None],
                           timeout=0.05)
        _read_messages(children, control, stats, result, progress, watch)  # lets children flush and exit
    for child in alive:
        if child.process.exitcode is None:
            log.debug("killing %s (pid %d)", child.name, child.process.pid)
            child.process.kill()
    for child in alive:
        child.process.join(timeout=2.0)
    _read_messages(children, control, stats, result, progress, watch)


def source_labels(specs: list[str]) -> dict[int, str]:
    """Each source as summaries name it: its spec, password masked, ``[id]`` added when two are alike."""
    names = [redact_text(spec) for spec in specs]
    return {i: name if names.count(name) == 1 else f"{name} [{i}]" for i, name in enumerate(names)}


class _ObserverFeed:
    """Parent side of a watched run: tells the observer the sources, forwards preview frames.

    Preview frames are read on a daemon thread (the supervisor loop never
    waits for a watcher); state and telemetry messages come through
    :func:`_read_messages`.
    """

    def __init__(self, observer: RunObserver, preview: PreviewChannel, specs: list[str],
                 starts: list[StreamStart | None]) -> None:
        self.observer = observer
        self.preview = preview
        self.names = [redact_text(spec) for spec in specs]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="preview frames", daemon=True)
        observer.on_sources([SourceInfo(i, self.names[i], None if s is None else s.live)
                             for i, s in enumerate(starts)])
        set_channel = getattr(observer, "attach_preview", None)
        if set_channel is not None:
            set_channel(preview)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        set_channel = getattr(self.observer, "attach_preview", None)
        if set_channel is not None:
            set_channel(None)

    def _pump(self) -> None:
        while not self._stop.is_set():
            try:
                source_id, jpeg = self.preview.frames.get(timeout=0.1)
            except queue.Empty:
                continue
            except (EOFError, OSError, ValueError):
                return
            self.observer.on_preview(source_id, jpeg)
