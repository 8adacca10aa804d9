"""How a run ended."""

from __future__ import annotations

from dataclasses import dataclass, field

from .stats import RunStats

#: exit codes of the CLI, by how a run ended.
EXIT_OK = 0
EXIT_STAGE_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class StageFailed(Exception):
    """A stage raised or died: ``stage`` names it, ``details`` is its traceback or how it died."""

    def __init__(self, stage: str, details: str) -> None:
        super().__init__(f"stage {stage!r} failed")
        self.stage = stage
        self.details = details


@dataclass
class RunResult:
    """reason: "completed", "stop_requested" (a step asked, e.g. the display's q key),
    "interrupted" (SIGINT) or "terminated" (SIGTERM); source_errors: one-line
    messages of sources that ended because they failed (after their retries)."""

    stats: RunStats
    reason: str = "completed"
    source_errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.reason == "interrupted":
            return EXIT_SIGINT
        if self.reason == "terminated":
            return EXIT_SIGTERM
        if self.source_errors:
            return EXIT_USER_ERROR
        return EXIT_OK
