"""One item of a corpus through the existing pipeline, with the models loaded once.

:class:`ItemRunner` is plain Python (no Ray): a Ray actor holds one and calls
:meth:`ItemRunner.run` per item, and tests call it inline. Each item runs with
:func:`streampose.runtime.run_pipeline` (inline runner: one process per actor,
deterministic), so a batch produces exactly what ``run_stream.py --inline``
produces for the same source string. The detector and pose steps are built
and started once and handed to every run (their ``close`` waits for the
runner's own shutdown); trackers, drawing and sinks are built afresh per item
because they keep per-stream state and files.

Outputs are written in a private work folder and moved to their final names
(atomic renames) only when the whole item succeeded, so a worker killed
mid-item leaves nothing under a final name and a retry starts clean.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import PipelineConfig
from ..errors import UserError
from ..records import EndOfStream, Frame, StreamStart
from ..runtime import StageFailed, run_pipeline
from ..step import Step, build_step

log = logging.getLogger(__name__)

#: step roles whose models are loaded once per runner and shared by its items.
KEPT_ROLES = ("detector", "pose")
WORK_FOLDER = ".work"


class _KeptStep(Step):
    """A started model step lent to one run: the run's start/close leave it loaded."""

    def __init__(self, inner: Step, lock: threading.Lock) -> None:
        self.inner = inner
        self.lock = lock
        self.type_name = inner.type_name
        self.draws = inner.draws
        self.role = inner.role

    def process(self, frames: list[Frame]) -> list[Frame]:
        with self.lock:  # runs on several threads (a fleet actor's cameras) take turns on one model
            return self.inner.process(frames)

    def start_of_stream(self, event: StreamStart) -> None:
        self.inner.start_of_stream(event)

    def end_of_stream(self, event: EndOfStream) -> None:
        self.inner.end_of_stream(event)

    def close(self) -> None:
        """The run ended; the model stays loaded for the next item."""

    def abort(self) -> None:
        """The run failed; the model stays loaded for the next item."""


@dataclass
class ItemOutcome:
    """What one run of an item gave: ``outputs`` maps published file names to SHA-256."""

    name: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    node: str = ""
    pid: int = 0
    outputs: dict[str, str] = field(default_factory=dict)


class ItemRunner:
    """Runs items of a corpus through ``pipeline``; models load on the first use (or :meth:`warm_up`)."""

    def __init__(self, pipeline: PipelineConfig) -> None:
        self.pipeline = pipeline
        self._kept: dict[str, tuple[Step, threading.Lock]] = {}
        self.node = socket.gethostname()
        self.pid = os.getpid()

    def build(self, spec: dict[str, Any], key_path: str) -> Step:
        """The step factory given to ``run_pipeline``: model steps come from this runner's loaded ones."""
        step = build_step(spec, key_path=key_path)
        if step.role not in KEPT_ROLES:
            return step
        key = json.dumps(spec, sort_keys=True, default=str)
        kept = self._kept.get(key)
        if kept is None:
            step.start()
            self._kept[key] = kept = (step, threading.Lock())
        return _KeptStep(*kept)

    def warm_up(self) -> None:
        """Load every model of the pipeline now (so the first item is not slower than the rest)."""
        for i, stage in enumerate(self.pipeline.stages):
            for j, spec in enumerate(stage.steps):
                self.build(spec, f"stages[{i}].steps[{j}]")

    def run(self, name: str, spec: str, output_dir: str, *, video: bool = False,
            opener: str | None = None) -> ItemOutcome:
        """Process one item; publish ``<name>.jsonl`` (and ``<name>.mp4``) in ``output_dir``.

        A bad item (UserError: unreadable, corrupt) gives status ``failed``
        with its one-line reason; a bug in a step (StageFailed) too, with the
        last line of its traceback. Nothing is published for a failed item.
        """
        from .manifest import count_lines, file_sha256

        t0 = time.monotonic()
        out = Path(output_dir)
        work = out / WORK_FOLDER / f"{name}.{self.pid}.{uuid.uuid4().hex[:8]}"
        work.mkdir(parents=True)
        files = [f"{name}.jsonl"] + ([f"{name}.mp4"] if video else [])
        sinks = [{"type": "jsonl_writer" if f.endswith(".jsonl") else "video_writer", "path": str(work / f)}
                 for f in files]
        outcome = ItemOutcome(name, "failed", node=self.node, pid=self.pid)
        try:
            kwargs = {"opener": opener} if opener else {}
            result = run_pipeline(self.pipeline, [spec], sinks, inline=True, progress=False,
                                  handle_signals=False, step_builder=self.build, **kwargs)
            if result.source_errors:
                outcome.error = result.source_errors[0]
            elif result.reason != "completed":
                outcome.error = f"run ended early ({result.reason})"
            else:
                outcome.frames = count_lines(work / files[0])
                for f in files:
                    outcome.outputs[f] = file_sha256(work / f)
                for f in files:
                    os.replace(work / f, out / f)
                outcome.status = "done"
        except UserError as e:
            outcome.error = " ".join(str(e).split())
        except StageFailed as e:
            last = e.details.strip().splitlines()[-1] if e.details.strip() else "no details"
            outcome.error = f"stage {e.stage!r} failed: {last}"
        finally:
            shutil.rmtree(work, ignore_errors=True)
        outcome.seconds = time.monotonic() - t0
        return outcome

    def close(self) -> None:
        """Release the kept models."""
        kept, self._kept = self._kept, {}
        for step, _ in kept.values():
            step.close()
