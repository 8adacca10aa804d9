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
    messages of sources that ended because they failed (after their retries);
    failed_sources: the ids of every source that failed (live ones included,
    also one still retrying when the run stopped); offline_failed: an offline
    source failed (bad input: the run fails whatever the others did);
    num_sources: sources given to the run.

    Exit code rule: 130 / 143 for a signal; otherwise 2 when an offline source
    failed or when every source failed; else 0, even when some live sources
    failed (the summary says how many).
    """

    stats: RunStats
    reason: str = "completed"
    source_errors: list[str] = field(default_factory=list)
    failed_sources: set[int] = field(default_factory=set)
    offline_failed: bool = False
    num_sources: int = 0
    #: each source's name in messages (password masked), by id
    source_labels: dict[int, str] = field(default_factory=dict)

    def add_source_failure(self, source_id: int, message: str, live: bool) -> None:
        """Record a source that failed (its one-line reason, and whether it is live)."""
        self.source_errors.append(message)
        self.failed_sources.add(source_id)
        if not live:
            self.offline_failed = True

    @property
    def all_failed(self) -> bool:
        return bool(self.failed_sources) and len(self.failed_sources) >= self.num_sources

    @property
    def exit_code(self) -> int:
        if self.reason == "interrupted":
            return EXIT_SIGINT
        if self.reason == "terminated":
            return EXIT_SIGTERM
        if self.offline_failed or self.all_failed:
            return EXIT_USER_ERROR
        if self.source_errors and not self.num_sources:  # a runner that does not count its sources
            return EXIT_USER_ERROR
        return EXIT_OK
