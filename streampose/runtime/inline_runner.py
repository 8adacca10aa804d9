"""The inline runner: the same steps, in order, in one process (``--inline``).

Sources are read on threads exactly as in a capture process (offline:
lossless; live: keep newest), pixels stay in-process arrays (``slot == -1``),
and every stage's :class:`StageRunner` is called in turn. Useful for tests,
debugging (a debugger or profiler sees every step) and machines where
spawning processes is undesirable.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any, Callable

import numpy as np

from ..config import PipelineConfig
from ..errors import UserError
from ..records import EndOfStream, FramePacket, StreamStart
from ..step import build_step
from .capture import SourceEnd, SourceReader
from .outcome import RunResult, StageFailed
from .progress import ProgressBar
from .signals import StopSignals
from .stage import StageRunner
from .stats import RunStats, StageStats

log = logging.getLogger(__name__)


def run_inline(pipeline: PipelineConfig, stage_specs: list[list[dict]], sources: list[Any],
               starts: list[StreamStart], max_frames: int | None, progress: ProgressBar | None,
               signals: StopSignals, build: Callable[..., Any] = build_step) -> RunResult:
    """Run over already-opened sources (closed here); see :func:`streampose.runtime.run_pipeline`.

    build: ``(spec, key_path) -> Step``, the step factory (``build_step`` unless
    the caller keeps models loaded across runs).
    """
    t_start = time.monotonic()
    stats = RunStats(started=t_start)
    result = RunResult(stats, num_sources=len(sources))
    images: dict[int, np.ndarray] = {}
    n = len(sources)
    stop_asked = threading.Event()

    def pixels(packet: FramePacket) -> np.ndarray:
        return images[id(packet)]

    def release(packet: FramePacket) -> None:
        images.pop(id(packet), None)

    runners: list[StageRunner] = []
    for i, stage in enumerate(pipeline.stages):
        steps = [build(spec, key_path=f"stages[{i}].steps[{j}]") for j, spec in enumerate(stage_specs[i])]
        runners.append(StageRunner(stage.name, steps, stage.batch_size, n, pixels, release,
                                   is_last=i == len(pipeline.stages) - 1, on_stop_request=stop_asked.set))
    capture_stats = [StageStats(f"capture[{i}]") for i in range(n)]
    wakeup = threading.Event()
    max_batch = max(s.batch_size for s in pipeline.stages)
    readers = [SourceReader(src, max_frames, notify=wakeup, name=f"capture[{i}]") for i, src in enumerate(sources)]
    for reader in readers:
        reader.handoff.capacity = max(reader.handoff.capacity, max_batch)
    sent = [0] * n
    last = runners[-1]
    active = set(range(n))
    turn = -1

    def feed(items: list[Any]) -> None:
        for runner in runners:
            try:
                items = runner.handle(items)
            except UserError:
                raise
            except Exception as e:
                raise StageFailed(runner.name, traceback.format_exc()) from e

    failed = True
    try:
        for runner in runners:
            try:
                runner.start()
            except UserError:
                raise
            except Exception as e:
                raise StageFailed(runner.name, traceback.format_exc()) from e
        feed(list(starts))
        for reader in readers:
            reader.start()
        while active:
            if signals.count >= 2:
                log.warning("second signal: stopping at once")
                break
            if signals.reason or stop_asked.is_set():
                result.reason = signals.reason or "stop_requested"
                for i in sorted(active):
                    readers[i].stop()
                    feed([EndOfStream(i, starts[i].source_name, sent[i])])
                active.clear()
                break
            batch: list[Any] = []
            order = sorted(active)
            turn = (turn + 1) % len(order)
            for i in order[turn:] + order[:turn]:  # sources take turns at opening a batch
                while len(batch) < max_batch:
                    # An offline source's batches are always full (until its end), whatever the decoding
                    # speed: batched models give last-bit differences for other batch sizes, and a run must
                    # give the same results on a busy machine or as a Ray actor as on an idle one.
                    item = readers[i].get(0 if readers[i].live else 0.1)
                    if item is None:
                        if readers[i].live or signals.reason or stop_asked.is_set():
                            break
                        continue
                    if isinstance(item, SourceEnd):
                        if item.crash:
                            raise StageFailed(f"capture[{i}]", item.crash)
                        if item.error:
                            result.add_source_failure(i, item.error, starts[i].live)
                            stats.failed_sources[last.source_label(i)] = item.error
                        batch.append(EndOfStream(i, starts[i].source_name, sent[i], item.error))
                        active.discard(i)
                        break
                    image = item.image
                    if not image.flags.writeable:
                        image = image.copy()  # steps that draw write in place
                    packet = FramePacket(i, starts[i].source_name, item.index, item.pts_s,
                                         tuple(image.shape), item.capture_time)
                    images[id(packet)] = image
                    batch.append(packet)
                    sent[i] += 1
                    capture_stats[i].frames_in += 1
                    capture_stats[i].frames_out += 1
            if batch:
                feed(batch)
                if progress is not None:
                    progress.update(sum(runners[-1].frames_done.values()))
            else:
                wakeup.wait(0.1)
                wakeup.clear()
        failed = False
    finally:
        for reader in readers:
            reader.stop()
        close_errors = []
        for runner in runners:
            close_errors += [(runner.name, step, e) for step, e in runner.close(failed=failed)]
        last = runners[-1]
        for i, reader in enumerate(readers):
            capture_stats[i].dropped = reader.dropped
            for key, value in dict(getattr(reader.source, "stats", {}) or {}).items():
                capture_stats[i].extra[key] = int(value)
        stats.stages = capture_stats + [r.stats for r in runners]
        stats.latency = last.latency
        stats.frames_done = last.frames_done_by_name()
        stats.source_latency = last.latency_by_name()
        stats.num_sources = n
        stats.first_capture, stats.last_done = last.first_capture, last.last_done
        stats.warm_done, stats.warm_frames = last.warm_done, last.warm_frames
        stats.wall_s = time.monotonic() - t_start
        if progress is not None:
            progress.close(final_fps=stats.fps)  # its last line agrees with the summary
    if close_errors:
        stage, step, error = close_errors[0]
        if isinstance(error, UserError):
            raise error
        raise StageFailed(stage, "".join(traceback.format_exception(error)))
    return result
