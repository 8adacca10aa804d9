"""A one-line progress bar with ETA on stderr, for runs whose frame count is known."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``[######----]  512/1394  37%  45.2 fps  ETA 0:19``, redrawn at most 5 times a second.

    Draws only when ``enabled`` (by default: the stream is a terminal) and
    ``total`` is known.
    """

    def __init__(self, total: int | None, stream: TextIO | None = None, enabled: bool | None = None,
                 width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled and bool(total)
        self.width = width
        self.done = 0
        self._t0 = time.monotonic()
        self._last_draw = 0.0
        self._drawn = False

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if self.enabled and (now - self._last_draw >= 0.2 or done >= (self.total or 0)):
            self._last_draw = now
            self.stream.write("\r" + self.render(now))
            self.stream.flush()
            self._drawn = True

    def render(self, now: float) -> str:
        total = self.total or 0
        frac = min(1.0, self.done / total) if total else 0.0
        filled = int(round(frac * self.width))
        elapsed = now - self._t0
        fps = self.done / elapsed if elapsed > 0 else 0.0
        if fps > 0 and self.done < total:
            eta_s = int((total - self.done) / fps)
            eta = f"ETA {eta_s // 60}:{eta_s % 60:02d}"
        else:
            eta = "ETA --:--" if self.done < total else "done     "
        return (f"[{'#' * filled}{'-' * (self.width - filled)}] {self.done:>{len(str(total))}}/{total} "
                f"{100 * frac:3.0f}%  {fps:5.1f} fps  {eta}")

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
