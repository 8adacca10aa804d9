"""A one-line progress bar with ETA on stderr, for runs whose frame count is known.

The rate and the ETA come from a moving window of the last ``window_s``
seconds of progress, measured only once ``warmup_frames`` frames are done:
the time before the first frame (process start, model loading) and the slow
first batches would otherwise make early ETAs far too long and the final
rate far too low. Until the window holds ``min_window_s`` of steady
progress the bar shows ``--``. When the run ends, the runtime passes the
summary's steady-state rate to :meth:`ProgressBar.close`, so the bar's last
line and the summary say the same number.
"""

from __future__ import annotations

import collections
import sys
import time
from typing import TextIO

from .stats import WARMUP_FRAMES


class ProgressBar:
    """``[######----]  512/1394  37%  45.2 fps  ETA 0:19``, redrawn at most 5 times a second.

    Draws only when ``enabled`` (by default: the stream is a terminal) and
    ``total`` is known. ``clock`` is the time source (tests pass their own).
    """

    def __init__(self, total: int | None, stream: TextIO | None = None, enabled: bool | None = None,
                 width: int = 30, window_s: float = 10.0, min_window_s: float = 1.0,
                 warmup_frames: int = WARMUP_FRAMES, clock=time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled and bool(total)
        self.width = width
        self.window_s = window_s
        self.min_window_s = min_window_s
        self.warmup_frames = min(warmup_frames, max(1, (total or 0) // 2))
        self.done = 0
        self._clock = clock
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._last_draw = -1.0
        self._drawn = False

    def update(self, done: int) -> None:
        self.done = done
        now = self._clock()
        if done >= self.warmup_frames:
            self._samples.append((now, done))
            # keep one sample older than the window, so the window spans window_s once it can
            while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
                self._samples.popleft()
        if self.enabled and (now - self._last_draw >= 0.2 or done >= (self.total or 0)):
            self._last_draw = now
            self.stream.write("\r" + self.render(now))
            self.stream.flush()
            self._drawn = True

    def rate(self) -> float | None:
        """Frames per second over the moving window, None until it spans ``min_window_s``."""
        if len(self._samples) < 2:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        if t1 - t0 < self.min_window_s:
            return None
        return (n1 - n0) / (t1 - t0)

    def render(self, now: float | None = None, fps: float | None = None) -> str:
        total = self.total or 0
        frac = min(1.0, self.done / total) if total else 0.0
        filled = int(round(frac * self.width))
        fps = self.rate() if fps is None else fps
        if self.done >= total:
            eta = "done     "
        elif fps:
            eta_s = int(round((total - self.done) / fps))
            eta = f"ETA {eta_s // 60}:{eta_s % 60:02d}"
        else:
            eta = "ETA --:--"
        shown = f"{fps:5.1f} fps" if fps else "  --  fps"
        return (f"[{'#' * filled}{'-' * (self.width - filled)}] {self.done:>{len(str(total))}}/{total} "
                f"{100 * frac:3.0f}%  {shown}  {eta}")

    def close(self, final_fps: float | None = None) -> None:
        """End the bar's line; with ``final_fps`` (the summary's rate) its last line shows that rate."""
        if self._drawn:
            if final_fps:
                self.stream.write("\r" + self.render(fps=final_fps))
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
