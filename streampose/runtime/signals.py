"""SIGINT / SIGTERM as flags while a run is going, so the runner can stop gracefully."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class StopSignals:
    """Context manager: while active, SIGINT/SIGTERM only set :attr:`first` and :attr:`count`.

    The first signal asks for a graceful stop, a second one for an immediate
    stop. Outside the main thread (where handlers cannot be installed) it is
    inert. Previous handlers are restored on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.first: int | None = None
        self.count = 0
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.first is None:
            self.first = signum

    @property
    def reason(self) -> str | None:
        """"interrupted" (SIGINT), "terminated" (SIGTERM) or None."""
        if self.first is None:
            return None
        return "interrupted" if self.first == signal.SIGINT else "terminated"

    def __enter__(self) -> "StopSignals":
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
