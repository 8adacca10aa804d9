"""Entry points of the spawned processes: one per source (capture), one per stage.

Each child ignores SIGINT/SIGTERM (a terminal's Ctrl-C reaches the whole
process group; the parent alone decides how to stop), attaches to the rings
and reports ``ready`` at once so the parent can unlink them, then runs its
loop. It stops on its own when the parent dies. Log records are forwarded to
the parent, which hands them to whatever logging the CLI configured.

Messages to the parent, on the control queue, are tuples ``(kind, name, ...)``:
ready (rings attached), started (steps started), log, progress, stats,
error (traceback text), user_error (one line), source_error (one line),
stop_requested. Captures open their source only once ``go`` is set, so frames
are not captured (and aged) while models load.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import signal
import sys
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
from .stats import StageStats
from .threads import StageThreads, set_process_threads

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
    start: StreamStart
    ring: RingSpec
    out: Dealer
    max_frames: int | None = None
    step_modules: list[str] = field(default_factory=list)


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

    if kind == "stage" and config.threads is not None:
        share_cpu_threads(config.threads.wanted())
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
    # Stage processes share the cores: an OpenMP thread that spins while it waits takes a core another
    # stage needs (measured on 2 cores, default pipeline: 12.5 -> 15.8 FPS with passive waits).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if threads < 1 or "OMP_NUM_THREADS" in os.environ:
        return
    set_process_threads(threads)


def run_capture(cfg: CaptureConfig, control: Control, should_abort, send) -> None:
    """Read one source into ring slots and send StreamStart, packets, EndOfStream downstream."""
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
    live = cfg.start.live

    def forward(item: Any) -> None:
        stats.wait_out_s += cfg.out.send(item, should_abort)

    forward(cfg.start)
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
            try:
                source = opener(cfg.spec, cfg.source_id, cfg.options)
            except SourceError as e:
                error = str(e)
        if source is not None:
            reader = SourceReader(source, cfg.max_frames, name=cfg.name)
            reader.start()
        while reader is not None:
            if should_abort():
                raise Aborted()
            if control.stop.is_set():
                break
            item = reader.get(POLL_S)
            if item is None:
                continue
            if isinstance(item, SourceEnd):
                if item.crash:
                    raise RuntimeError(f"source {cfg.start.source_name!r} raised:\n{item.crash}")
                error = item.error
                break
            stats.frames_in += 1
            image = item.image
            if image.dtype != np.uint8 or not ring.fits(image.shape):
                error = (f"source {cfg.start.source_name!r}: frame {item.index} has shape {image.shape} {image.dtype}, "
                         f"larger than the stream's {cfg.start.width}x{cfg.start.height} or not BGR uint8")
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
            forward(FramePacket(cfg.source_id, cfg.start.source_name, item.index, item.pts_s,
                                tuple(image.shape), item.capture_time, slot, seq=sent))
            sent += 1
            stats.frames_out += 1
    finally:
        if reader is not None:
            reader.stop()
            stats.dropped += reader.dropped
            for key, value in dict(getattr(reader.source, "stats", {}) or {}).items():
                stats.extra[key] = int(value)
    forward(EndOfStream(cfg.source_id, cfg.start.source_name, sent, error))
    if error:
        send(("source_error", cfg.name, redact_text(error)))
    send(("stats", cfg.name, {"stage": stats}))


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
    last_progress = 0.0
    failed = True
    try:
        runner.start()
        send(("started", cfg.name))
        while not runner.done:
            item, waited = get(cfg.inq, should_abort)
            runner.stats.wait_in_s += waited
            threads.take_up()  # the plan may have changed while this stage waited or worked
            outputs = runner.handle(reorderer.feed([item] + drain(cfg.inq, DRAIN_LIMIT)))
            threads.follow(runner.stats)
            for out in outputs:
                if cfg.outq is not None:
                    runner.stats.wait_out_s += cfg.outq.send(out, should_abort)
            now = time.monotonic()
            if cfg.outq is None and now - last_progress >= PROGRESS_EVERY_S:
                last_progress = now
                send(("progress", cfg.name, sum(runner.frames_done.values())))
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
                frames_done=runner.frames_done_by_name(), warm_done=runner.warm_done,
                warm_frames=runner.warm_frames)
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

    @staticmethod
    def _current() -> int:
        torch = sys.modules.get("torch")
        return torch.get_num_threads() if torch is not None else 1

    def follow(self, stats: StageStats) -> None:
        """After a batch: report its busy time (x the threads it ran with)."""
        if self.shared is None:
            return
        busy_s = sum(stats.busy_s.values())
        self.shared.report(busy_s - self.busy_s, self._current())
        self.busy_s = busy_s
        self.take_up()

    def take_up(self) -> None:
        """Use the thread count the parent gives now (cheap: one shared-memory read)."""
        if self.shared is None:
            return
        wanted = self.shared.wanted()
        if wanted and wanted != self._current():
            set_process_threads(wanted)
