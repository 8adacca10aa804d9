"""Reading a source on its own thread.

A source's ``frames()`` may block (decoding, a network read that only ends
with its read timeout), so it runs on a daemon thread that hands frames to
the capture loop through a :class:`~streampose.runtime.edges.Handoff`:
lossless and blocking for offline sources, keep-newest for live ones. The
capture loop (in a capture process, or the inline runner) can then stop at
once on request, whatever the source is doing.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SourceError
from .edges import Handoff

log = logging.getLogger(__name__)


@dataclass
class CapturedFrame:
    """One frame as read: index counts every frame read from the source (from 0)."""

    index: int
    image: np.ndarray
    pts_s: float | None
    capture_time: float


@dataclass
class SourceEnd:
    """The source's frames ended: error is a one-line SourceError message, crash a traceback."""

    error: str | None = None
    crash: str | None = None


class SourceReader:
    """Runs ``source.frames()`` on a daemon thread; take frames with :meth:`get`.

    max_frames: stop after this many frames (None: until the source ends).
    The source is closed on the reader thread when its frames end.
    """

    def __init__(self, source: Any, max_frames: int | None = None,
                 notify: threading.Event | None = None, name: str = "source") -> None:
        self.source = source
        self.max_frames = max_frames
        self.live = bool(source.live)
        self.handoff = Handoff("newest" if self.live else "block", capacity=2, notify=notify)
        self.frames_read = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"reader {name}", daemon=True)

    @property
    def dropped(self) -> int:
        """Frames replaced by newer ones before the capture loop took them (live only)."""
        return self.handoff.dropped

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop reading; frames still waiting are discarded."""
        self._stop.set()
        self.handoff.close()

    def get(self, timeout: float | None) -> CapturedFrame | SourceEnd | None:
        """The next frame or the end marker; None after ``timeout`` seconds."""
        return self.handoff.get(timeout)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        end = SourceEnd()
        try:
            for image, pts_s in self.source.frames():
                if self._stop.is_set():
                    break
                frame = CapturedFrame(self.frames_read, image, pts_s, time.monotonic())
                self.frames_read += 1
                if not self.handoff.put(frame):
                    break
                if self.max_frames is not None and self.frames_read >= self.max_frames:
                    break
        except SourceError as e:
            end = SourceEnd(error=str(e))
        except Exception:  # noqa: BLE001 - a bug in the source: reported with its traceback
            end = SourceEnd(crash=traceback.format_exc())
        finally:
            try:
                self.source.close()
            except Exception:  # noqa: BLE001 - closing must not hide how the source ended
                log.warning("closing source failed:\n%s", traceback.format_exc())
        self.handoff.put_last(end)
