"""Running a pipeline: sources → stages of steps → sinks.

:func:`run_pipeline` is the one entry point; it runs the stages as separate
processes joined by shared-memory frame rings (the default) or all in this
process (``inline=True``). Both use the same :class:`StageRunner` logic, so a
pipeline that works inline and fails with processes points at the runtime.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ..config import PipelineConfig, import_step_modules, resolve_callable
from ..errors import SourceError
from ..io.urls import redact_text
from ..io.sources import is_live_form
from ..step import build_step
from .outcome import EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, EXIT_STAGE_FAILED, EXIT_USER_ERROR, RunResult, StageFailed
from .progress import ProgressBar
from .signals import StopSignals
from .stats import RunStats, StageStats
from .telemetry import RunObserver, SourceInfo, SourceState

__all__ = ["run_pipeline", "RunResult", "RunStats", "StageStats", "StageFailed", "DEFAULT_OPENER",
           "RunObserver", "SourceInfo", "SourceState",
           "EXIT_OK", "EXIT_STAGE_FAILED", "EXIT_USER_ERROR", "EXIT_SIGINT", "EXIT_SIGTERM"]

log = logging.getLogger(__name__)

#: the function that opens a ``--source`` string: ``(spec, source_id, options) -> Source``.
DEFAULT_OPENER = "streampose.io.sources:open_source"


def run_pipeline(pipeline: PipelineConfig, sources: list[str], sinks: list[dict[str, Any]] | None = None, *,
                 inline: bool = False, max_frames: int | None = None, source_options: Any = None,
                 opener: str = DEFAULT_OPENER, progress: bool | None = None,
                 handle_signals: bool = True, observer: RunObserver | None = None,
                 step_builder: Any = None) -> RunResult:
    """Run ``pipeline`` over ``sources`` (``--source`` strings) into ``sinks`` (step specs).

    Sinks are appended to the last stage. Every source is opened here first, so
    a bad source fails with its one-line SourceError before any process starts;
    the process runtime then reopens each in its capture process.
    max_frames: per source. progress: draw a progress bar on stderr (None: when
    it is a terminal and the frame count is known). handle_signals: turn
    SIGINT/SIGTERM into a graceful stop (main thread only). step_builder:
    ``(spec, key_path) -> Step`` used instead of :func:`build_step` for the
    stages' steps (inline only): a long-lived caller (a Ray actor serving many
    items) hands out steps whose models it loaded once.

    Returns a RunResult (its ``exit_code`` says 0 / 130 / 143, or 2 when a
    source failed during the run). Raises UserError for bad input (exit 2),
    StageFailed when a stage raised or died (exit 1).
    """
    if not sources:
        raise ValueError("at least one source is needed")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    sinks = list(sinks or [])
    for k, spec in enumerate(sinks):
        build_step(spec, key_path=f"outputs[{k}]")
    stage_specs = [list(stage.steps) for stage in pipeline.stages]
    stage_specs[-1] = stage_specs[-1] + sinks
    import_step_modules(pipeline.step_modules)
    open_source = resolve_callable(opener, "source opener")

    if observer is not None and inline:
        raise ValueError("an observer needs the process runtime (inline=False)")
    if step_builder is not None and not inline:
        raise ValueError("step_builder needs inline=True (process stages build their own steps)")
    # Opening may take a while (a stream's retries): Ctrl-C here is a plain KeyboardInterrupt.
    opened: list[Any] = []
    start_errors: dict[int, str] = {}
    try:
        for i, spec in enumerate(sources):
            if inline or not is_live_form(spec):
                opened.append(open_source(spec, i, source_options))
                continue
            try:  # one attempt here: the capture process does the retrying
                opened.append(open_source(spec, i, _single_attempt(source_options)))
            except SourceError as e:
                if getattr(source_options, "reconnect_attempts", None) == 0 and len(sources) == 1:
                    raise  # its only attempt, and no other source to go on with: bad input, as before
                start_errors[i] = redact_text(str(e))
                opened.append(None)
                log.warning("%s; the other sources go on, and this one is retried in the background",
                            start_errors[i])
    except BaseException:
        for src in opened:
            if src is not None:
                src.close()
        raise
    starts: list[Any] = []
    for i, src in enumerate(opened):
        if src is None:
            starts.append(None)
            continue
        start = src.start_event
        if start.source_id != i:
            start = dataclasses.replace(start, source_id=i)
        starts.append(start)
    total = None
    if all(s is not None and not s.live and s.frame_count for s in starts):
        total = sum(min(s.frame_count, max_frames or s.frame_count) for s in starts)
    bar = ProgressBar(total, enabled=progress) if progress is not False else None
    if inline:
        from .inline_runner import run_inline

        with StopSignals(handle_signals) as signals:
            return run_inline(pipeline, stage_specs, opened, starts, max_frames, bar, signals,
                              build=step_builder or build_step)
    for src in opened:
        if src is not None:
            src.close()
    from .process_runner import run_processes

    with StopSignals(handle_signals) as signals:
        return run_processes(pipeline, stage_specs, starts, list(sources), opener, source_options,
                             max_frames, bar, signals, start_errors=start_errors, observer=observer)


def _single_attempt(options: Any) -> Any:
    """``options`` with no retries (the parent's probe of a live source), when it has that knob."""
    if dataclasses.is_dataclass(options) and hasattr(options, "reconnect_attempts"):
        return dataclasses.replace(options, reconnect_attempts=0)
    return options
