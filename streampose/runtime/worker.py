"""Entry points of the spawned processes: one per source (capture), one per stage.

Each child ignores SIGINT/SIGTERM (a terminal's Ctrl-C reaches the whole
process group; the parent alone decides how to stop), attaches to the rings
and reports ``ready`` at once so the parent can unlink them, then runs its
loop. It stops on its own when the parent dies. Log records are forwarded to
the parent, which hands them to whatever logging the CLI configured.

Messages to the parent, on the control queue, are tuples ``(kind, name, ...)``:
ready (rings attached), started (steps started), log, progress, stats,
error (traceback text), user_error (one line), source_error (one line,
live flag, source id), source_state (source id, SourceState), telemetry
(a stage's counters and timings, when watched), stop_requested. Captures open their source only once ``go`` is set, so frames
are not captured (and aged) while models load.
"""

from __future__ import annotations

import dataclasses
import logging
import logging.handlers
import os
import queue
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SourceError, UserError
from ..records import EndOfStream, FramePacket, StreamStart
from ..io.urls import redact_text
from .capture import SourceEnd, SourceReader
from .edges import POLL_S, Aborted, drain, get
from .replicas import Dealer, Reorderer
from .ring import FrameRing, RingSpec
from .stage import StageRunner
from .scheduling import FairScheduler
from .stats import StageStats
from .threads import StageThreads, set_process_threads
from .telemetry import PreviewChannel, PreviewEncoder, SourceState, TelemetryBuffer

log = logging.getLogger(__name__)

#: the most packets a stage takes from its input at once (its backlog for the live policy).
DRAIN_LIMIT = 256
#: seconds between progress messages from the last stage.
PROGRESS_EVERY_S = 0.25


@dataclass
class Control:
    """Shared by the parent and every child: ctrl (child → parent messages),
    go (every stage has started its steps: captures may read), stop (graceful:
    captures end their sources), abort (stop now), failed (set before abort
    when the run failed: sinks abort() instead of close())."""

    ctrl: Any
    go: Any
    stop: Any
    abort: Any
    failed: Any
    log_level: int = logging.WARNING


@dataclass
class CaptureConfig:
    name: str
    source_id: int
    spec: str
    opener: str
    options: Any
    start: StreamStart | None  # None: the parent could not open it (a live source that may join later)
    ring: RingSpec
    out: Dealer
    max_frames: int | None = None
    step_modules: list[str] = field(default_factory=list)
    #: why the parent could not open it (one line), when ``start`` is None
    start_error: str = ""
    #: the source as logs and status show it (any password masked)
    display_name: str = ""


@dataclass
class StageConfig:
    name: str
    index: int
    step_specs: list[dict]
    batch_size: int
    num_sources: int
    rings: dict[int, RingSpec]
    inq: Any
    outq: Dealer | None  # None for the last stage
    step_modules: list[str] = field(default_factory=list)
    #: this process's math threads, given by the parent (see streampose.runtime.threads).
    threads: StageThreads | None = None
    #: processes of the previous stage writing to ``inq`` (more than one: re-order after them).
    upstream: int = 1
    #: which replica of its stage this process is, of how many.
    replica: int = 0
    replicas: int = 1
    #: send telemetry messages (counters, timings) while running
    telemetry: bool = False
    #: last stage: where watched sources' annotated frames go (None: nobody can watch)
    preview: PreviewChannel | None = None


class _ControlQueueAdapter:
    """Lets a QueueHandler send records as ("log", name, record) without blocking."""

    def __init__(self, ctrl: Any, name: str) -> None:
        self.ctrl, self.name = ctrl, name

    def put_nowait(self, record: logging.LogRecord) -> None:
        try:
            self.ctrl.put_nowait(("log", self.name, record))
        except (queue.Full, ValueError, OSError):
            pass


def child_main(kind: str, config: CaptureConfig | StageConfig, control: Control) -> None:
    """Process target: run a capture (kind "capture") or a stage (kind "stage")."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(_ControlQueueAdapter(control.ctrl, config.name))]
    root.setLevel(control.log_level)

    parent_pid = os.getppid()

    def should_abort() -> bool:
        return control.abort.is_set() or os.getppid() != parent_pid

    def send(message: tuple) -> None:
        control.ctrl.put(message)

    if kind == "stage":
        if config.threads is not None:
            share_cpu_threads(config.threads.wanted())
        if config.preview is not None:
            config.preview.frames.cancel_join_thread()  # preview frames are disposable: never wait at exit
    out_queues = [config.out] if kind == "capture" else [config.outq] if config.outq is not None else []
    code = 0
    try:
        if kind == "capture":
            run_capture(config, control, should_abort, send)
        else:
            run_stage(config, control, should_abort, send)
    except Aborted:
        code = 0
    except UserError as e:
        send(("user_error", config.name, type(e).__name__, redact_text(str(e))))
        code = 2
    except BaseException:  # noqa: BLE001 - any failure is reported with its traceback
        send(("error", config.name, redact_text(traceback.format_exc())))
        code = 1
    if code or should_abort():
        # Nobody may read what is still buffered for the next stage: don't wait for it at exit.
        for q in out_queues:
            q.cancel_join_thread()
        if os.getppid() != parent_pid:
            control.ctrl.cancel_join_thread()
    sys.exit(code)


def share_cpu_threads(threads: int) -> None:
    """Give this stage process its share of the CPU cores, unless the user chose.

    Every stage process would otherwise start one math thread per core: with
    several model stages on a small CPU they spin against each other and each
    forward pass gets many times slower (measured: ~10x on 2 cores). A step's
    own ``threads`` option still overrides this in its ``start()``. The
    parent re-balances the count while the stage runs (streampose.runtime.threads).
    """
    if threads < 1 or "OMP_NUM_THREADS" in os.environ:
        return
    set_process_threads(threads)


def run_capture(cfg: CaptureConfig, control: Control, should_abort, send) -> None:
    """Read one source into ring slots and send StreamStart, packets, EndOfStream downstream.

    The source is opened on a thread (a live source may take long, or retry
    for ever), so a stop or abort is seen at once. A source the parent could
    not open (``cfg.start`` None, a live source unreachable at start) sends
    its StreamStart only when it joins; a source that never opens sends just
    its EndOfStream. Its state goes to the parent as ``source_state``
    messages (see :class:`~streampose.runtime.telemetry.SourceState`).
    """
    from ..config import import_step_modules, resolve_callable

    ring = FrameRing.attach(cfg.ring)
    send(("ready", cfg.name))
    free = cfg.ring.free
    for slot in range(cfg.ring.num_slots):
        free.put(slot)
    stats = StageStats(cfg.name, busy_s={"copy": 0.0})
    sent = 0
    error: str | None = None
    reader: SourceReader | None = None
    start = cfg.start
    live = True if start is None else start.live
    report = _StateReporter(cfg, send, stats)
    report.state = "failed" if start is None else "starting"
    report.detail = cfg.start_error

    def forward(item: Any) -> None:
        stats.wait_out_s += cfg.out.send(item, should_abort)

    if start is not None:
        forward(start)
    try:
        import_step_modules(cfg.step_modules)
        opener = resolve_callable(cfg.opener, "source opener")
        while not control.go.wait(POLL_S):
            if should_abort():
                raise Aborted()
            if control.stop.is_set():
                break
        source = None
        if not control.stop.is_set():
            opening = BackgroundOpen(lambda: opener(cfg.spec, cfg.source_id, cfg.options), cfg.name)
            while source is None and error is None:
                if should_abort():
                    raise Aborted()
                if control.stop.is_set():
                    break
                report.maybe_send()
                done, source, error = opening.wait(POLL_S)
                if done and error is None and source is None:
                    error = f"source {cfg.spec!r}: the opener returned nothing"
        if source is not None:
            if start is None:
                start = dataclasses.replace(source.start_event, source_id=cfg.source_id)
                live = start.live
                if not ring.fits((start.height, start.width, 3)):
                    source.close()
                    source = None
                    error = (f"source {cfg.spec!r}: {start.width}x{start.height} frames are larger than the "
                             f"{ring.spec.slot_shape[1]}x{ring.spec.slot_shape[0]} kept for sources that "
                             "join later; start it with the others")
                else:
                    forward(start)
                    log.warning("%s joined (%dx%d)", cfg.display_name, start.width, start.height)
        if source is not None:
            reader = SourceReader(source, cfg.max_frames, name=cfg.name)
            reader.start()
            report.state, report.detail = "running", ""
            report.source, report.reader = source, reader
        while reader is not None:
            if should_abort():
                raise Aborted()
            if control.stop.is_set():
                break
            report.maybe_send()
            item = reader.get(POLL_S)
            if item is None:
                continue
            if isinstance(item, SourceEnd):
                if item.crash:
                    raise RuntimeError(f"source {cfg.display_name!r} raised:\n{item.crash}")
                error = item.error
                break
            stats.frames_in += 1
            image = item.image
            if image.dtype != np.uint8 or not ring.fits(image.shape):
                error = (f"source {cfg.display_name!r}: frame {item.index} has shape {image.shape} {image.dtype}, "
                         f"larger than the stream's {start.width}x{start.height} or not BGR uint8")
                break
            slot = _free_slot(free, live, control, should_abort, stats)
            if slot is None:
                if control.stop.is_set():
                    break
                stats.dropped += 1  # live: every slot is busy; this frame is already stale
                continue
            t0 = time.perf_counter()
            np.copyto(ring.view(slot, image.shape), image)
            stats.busy_s["copy"] += time.perf_counter() - t0
            forward(FramePacket(cfg.source_id, start.source_name, item.index, item.pts_s,
                                tuple(image.shape), item.capture_time, slot, seq=sent))
            sent += 1
            stats.frames_out += 1
    finally:
        if reader is not None:
            reader.stop()
            report.reader = None  # its drops are counted in stats from here on
            stats.dropped += reader.dropped
            for key, value in dict(getattr(reader.source, "stats", {}) or {}).items():
                stats.extra[key] = int(value)
    name = start.source_name if start is not None else cfg.spec
    forward(EndOfStream(cfg.source_id, name, sent, error))
    if error is None and start is None:
        error = cfg.start_error or f"source {cfg.display_name!r} never opened"
    report.state, report.detail = ("failed", error) if error else ("finished", "")
    report.send_now()
    if error:
        send(("source_error", cfg.name, redact_text(error), live, cfg.source_id))
    send(("stats", cfg.name, {"stage": stats}))


class BackgroundOpen:
    """Runs a source opener on a daemon thread; :meth:`wait` polls for its outcome."""

    def __init__(self, open_fn, name: str) -> None:
        self._open = open_fn
        self._done = threading.Event()
        self.source: Any = None
        self.error: str | None = None
        self._crash: str | None = None
        threading.Thread(target=self._run, name=f"open {name}", daemon=True).start()

    def _run(self) -> None:
        try:
            self.source = self._open()
        except SourceError as e:
            self.error = str(e)
        except Exception:  # noqa: BLE001 - a bug in the opener: re-raised in the capture loop
            self._crash = traceback.format_exc()
        self._done.set()

    def wait(self, timeout_s: float) -> tuple[bool, Any, str | None]:
        """(finished, source or None, one-line error or None) after at most ``timeout_s``."""
        if not self._done.wait(timeout_s):
            return False, None, None
        if self._crash:
            raise RuntimeError(f"opening the source raised:\n{self._crash}")
        return True, self.source, self.error


class _StateReporter:
    """Sends the capture's :class:`SourceState` to the parent on change and every second."""

    EVERY_S = 1.0

    def __init__(self, cfg: CaptureConfig, send, stats: StageStats) -> None:
        self.cfg, self.send, self.stats = cfg, send, stats
        self.state = "starting"
        self.detail = ""
        self.source: Any = None
        self.reader: SourceReader | None = None
        self._last: tuple | None = None
        self._last_sent = 0.0

    def _snapshot(self) -> SourceState:
        state, detail = self.state, self.detail
        counters = dict(getattr(self.source, "stats", {}) or {})
        source_state = getattr(self.source, "state", None)
        if state == "running" and source_state == "reconnecting":
            state, detail = "reconnecting", getattr(self.source, "last_error", "") or ""
        start = getattr(self.source, "start_event", None) if self.source is not None else self.cfg.start
        dropped = self.stats.dropped + (self.reader.dropped if self.reader is not None else 0)
        return SourceState(state, redact_text(detail or ""), frames=self.stats.frames_in, dropped=dropped,
                           reconnects=int(counters.get("reconnects", 0)),
                           connect_failures=int(counters.get("connect_failures", 0)),
                           width=getattr(start, "width", 0) or 0, height=getattr(start, "height", 0) or 0,
                           live=getattr(start, "live", None))

    def maybe_send(self) -> None:
        snapshot = self._snapshot()
        key = (snapshot.state, snapshot.detail, snapshot.reconnects)
        if key != self._last or time.monotonic() - self._last_sent >= self.EVERY_S:
            self._emit(snapshot, key)

    def send_now(self) -> None:
        snapshot = self._snapshot()
        self._emit(snapshot, (snapshot.state, snapshot.detail, snapshot.reconnects))

    def _emit(self, snapshot: SourceState, key: tuple) -> None:
        self._last, self._last_sent = key, time.monotonic()
        self.send(("source_state", self.cfg.name, self.cfg.source_id, snapshot))


def _free_slot(free: Any, live: bool, control: Control, should_abort, stats: StageStats) -> int | None:
    """A free slot: live sources don't wait (None when all are busy); offline ones wait (None on stop)."""
    if live:
        try:
            return free.get_nowait()
        except queue.Empty:
            return None
    t0 = time.monotonic()
    try:
        while True:
            try:
                return free.get(timeout=POLL_S)
            except queue.Empty:
                if should_abort():
                    raise Aborted() from None
                if control.stop.is_set():
                    return None
    finally:
        stats.wait_out_s += time.monotonic() - t0


def run_stage(cfg: StageConfig, control: Control, should_abort, send) -> None:
    """Run a stage's steps over its input queue until every source has ended."""
    from ..config import import_step_modules
    from ..step import build_step

    rings = {sid: FrameRing.attach(spec) for sid, spec in cfg.rings.items()}
    send(("ready", cfg.name))
    import_step_modules(cfg.step_modules)
    steps = [build_step(spec, key_path=f"stages[{cfg.index}].steps[{j}]")
             for j, spec in enumerate(cfg.step_specs)]

    def pixels(packet: FramePacket) -> np.ndarray:
        return rings[packet.source_id].view(packet.slot, packet.shape)

    def release(packet: FramePacket) -> None:
        rings[packet.source_id].spec.free.put(packet.slot)

    runner = StageRunner(cfg.name, steps, cfg.batch_size, cfg.num_sources, pixels, release,
                         is_last=cfg.outq is None,
                         on_stop_request=lambda: send(("stop_requested", cfg.name)))
    reorderer = Reorderer(cfg.upstream, release, cfg.replica, cfg.replicas)
    threads = _ThreadFollower(cfg.threads)
    if cfg.telemetry:
        runner.telemetry = TelemetryBuffer()
    if cfg.preview is not None and cfg.outq is None:
        runner.preview = PreviewEncoder(cfg.preview)
    scheduler = FairScheduler(cfg.batch_size)
    last_progress = 0.0
    failed = True
    try:
        runner.start()
        send(("started", cfg.name))
        while not runner.done:
            if scheduler.empty():
                item, waited = get(cfg.inq, should_abort)
                runner.stats.wait_in_s += waited
                scheduler.add(reorderer.feed([item]))
            scheduler.add(reorderer.feed(drain(cfg.inq, DRAIN_LIMIT)))
            threads.take_up()  # the plan may have changed while this stage waited or worked
            outputs = runner.handle(scheduler.next_round())
            threads.follow(runner.stats)
            for out in outputs:
                if cfg.outq is not None:
                    runner.stats.wait_out_s += cfg.outq.send(out, should_abort)
            now = time.monotonic()
            if cfg.outq is None and now - last_progress >= PROGRESS_EVERY_S:
                last_progress = now
                send(("progress", cfg.name, sum(runner.frames_done.values())))
            if runner.telemetry is not None and runner.telemetry.due():
                send(("telemetry", cfg.name, _telemetry_payload(runner)))
        failed = False
    except Aborted:
        # Stopped from outside: a failure elsewhere (sinks abort), or a forced stop (sinks finalize).
        failed = control.failed.is_set() or not control.abort.is_set()
        raise
    finally:
        close_errors = runner.close(failed=failed)
        runner.stats.dropped += reorderer.dropped
        payload: dict[str, Any] = {"stage": runner.stats}
        if cfg.outq is None:  # the last stage knows what came out, and when
            payload.update(
                latency=runner.latency, first_capture=runner.first_capture, last_done=runner.last_done,
                frames_done=runner.frames_done_by_name(), source_latency=runner.latency_by_name(),
                warm_done=runner.warm_done, warm_frames=runner.warm_frames)
        if runner.telemetry is not None:
            send(("telemetry", cfg.name, _telemetry_payload(runner)))
        send(("stats", cfg.name, payload))
        if cfg.outq is None:
            send(("progress", cfg.name, sum(runner.frames_done.values())))
    if close_errors:
        step, error = close_errors[0]
        raise error


class _ThreadFollower:
    """Reports the stage's busy time to the parent and takes up the thread count it gives back."""

    def __init__(self, shared: StageThreads | None) -> None:
        self.shared = shared
        self.busy_s = 0.0
        self.frames_out = 0

    @staticmethod
    def _current() -> int:
        torch = sys.modules.get("torch")
        return torch.get_num_threads() if torch is not None else 1

    def follow(self, stats: StageStats) -> None:
        """After a batch: report its busy time (x the threads it ran with) and the frames it passed on."""
        if self.shared is None:
            return
        busy_s = sum(stats.busy_s.values())
        self.shared.report(busy_s - self.busy_s, self._current(), stats.frames_out - self.frames_out)
        self.busy_s, self.frames_out = busy_s, stats.frames_out
        self.take_up()

    def take_up(self) -> None:
        """Use the thread count the parent gives now (cheap: one shared-memory read)."""
        if self.shared is None:
            return
        wanted = self.shared.wanted()
        if wanted and wanted != self._current():
            set_process_threads(wanted)


def _telemetry_payload(runner: StageRunner) -> dict[str, Any]:
    """The stage's telemetry report, with the counters of steps that keep some (e.g. a sink's drops)."""
    payload = runner.telemetry.take()
    counters = {}
    for step in runner.steps:
        get_counters = getattr(step, "counters", None)
        if callable(get_counters):
            counters[step.type_name or type(step).__name__] = dict(get_counters())
    if runner.preview is not None:
        counters["preview"] = {"dropped": runner.preview.dropped}
    payload["step_counters"] = counters
    return payload
