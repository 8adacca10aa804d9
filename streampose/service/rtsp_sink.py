"""Publishing the annotated stream to an RTSP server that accepts RECORD (mediamtx, gst-rtsp-server, NVRs).

``--output rtsp://HOST:PORT/PATH`` announces an H.264 stream (libx264,
``ultrafast`` / ``zerolatency``, yuv420p) to the server with FFmpeg's RTSP
muxer over TCP (PyAV) and sends every annotated frame with the source's
timestamps (``pts_s`` on a 1/90000 s clock, counted from the first frame sent
on each connection so a reconnected stream starts at 0).

Encoding and network writes run on the publisher's own thread, fed through a
keep-newest hand-off: the pipeline only copies the frame into it and never
waits, however slow or dead the server is. Frames the thread could not take
in time, and frames that arrive while the server is away, are dropped and
counted. A lost connection (server killed, network error) is re-opened with
backoff (doubling from ``backoff_initial_s`` up to ``backoff_max_s``), as
sources do. Counters: ``sent``, ``dropped``, ``reconnects``, ``connected`` (0/1).
"""

from __future__ import annotations

import logging
import threading
import time
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import SinkError
from ..io.pyav import load_av
from ..io.urls import redact_text

log = logging.getLogger(__name__)

CLOCK = Fraction(1, 90000)


class RtspPublisher:
    """One RTSP RECORD session for one source's frames (see the module docstring)."""

    def __init__(self, url: str, width: int, height: int, fps: float | None, bitrate_kbps: int = 2000,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 5.0, open_timeout_s: float = 5.0) -> None:
        if not url.lower().startswith("rtsp://"):
            raise SinkError(f"output {redact_text(url)!r}: expected rtsp://HOST:PORT/PATH")
        self.url = url
        self.name = redact_text(url)
        self.width, self.height = width + width % 2, height + height % 2
        self.fps = fps or 30.0
        self.bitrate_kbps = bitrate_kbps
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.open_timeout_s = open_timeout_s
        self.sent = 0
        self.dropped = 0
        self.reconnects = 0
        self._connected = False
        self._ever_connected = False
        self._cond = threading.Condition()
        self._pending: tuple[np.ndarray, float | None] | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"rtsp publish {self.name}", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._connected

    def offer(self, image: np.ndarray, pts_s: float | None) -> None:
        """Hand over a frame (copied); never waits. A frame not yet taken is replaced and counted dropped."""
        with self._cond:
            if self._pending is not None:
                self.dropped += 1
            self._pending = (image.copy(), pts_s)
            self._cond.notify()

    def counters(self) -> dict[str, int]:
        return {"sent": self.sent, "dropped": self.dropped, "reconnects": self.reconnects,
                "connected": int(self._connected)}

    def close(self, timeout_s: float = 3.0) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout_s)

    # -- publisher thread -------------------------------------------------------------------
    def _take(self, timeout_s: float) -> tuple[np.ndarray, float | None] | None:
        with self._cond:
            if self._pending is None and not self._closing:
                self._cond.wait(timeout_s)
            item, self._pending = self._pending, None
            return item

    def _run(self) -> None:
        av = load_av()
        attempt = 0
        while not self._closing:
            session = None
            try:
                # FFmpeg's RTSP muxer talks to the server when the first packet goes out, so a
                # connection only counts as made once a frame was sent through it.
                session = _Session(av, self)
                while not self._closing:
                    item = self._take(0.2)
                    if item is None:
                        continue
                    session.send(*item)
                    self.sent += 1
                    if not self._connected and session.frames_muxed:
                        if self._ever_connected:
                            self.reconnects += 1
                            log.warning("RTSP output %s: reconnected", self.name)
                        self._ever_connected, self._connected, attempt = True, True, 0
            except (av.error.FFmpegError, OSError) as e:
                self.dropped += 1  # the frame being sent
                if self._connected:
                    log.warning("RTSP output %s: connection lost (%s); reconnecting", self.name, _reason(e))
                else:
                    attempt += 1
                    if attempt == 1 or attempt % 10 == 0:
                        log.warning("RTSP output %s: cannot connect (%s); retrying every %.1f s at most, frames "
                                    "are dropped meanwhile", self.name, _reason(e), self.backoff_max_s)
                    self._drop_for(min(self.backoff_initial_s * 2 ** (attempt - 1), self.backoff_max_s))
            finally:
                self._connected = False
                if session is not None:
                    session.close()

    def _drop_for(self, seconds: float) -> None:
        """Wait ``seconds`` (or until closing), dropping and counting frames that arrive."""
        end = time.monotonic() + seconds
        while not self._closing and time.monotonic() < end:
            if self._take(min(0.1, max(0.0, end - time.monotonic()))) is not None:
                self.dropped += 1


class _Session:
    """One connection: an RTSP output container with one H.264 stream."""

    def __init__(self, av: Any, publisher: RtspPublisher) -> None:
        self.av = av
        options = {"rtsp_transport": "tcp"}
        timeout = (publisher.open_timeout_s, publisher.open_timeout_s)
        self.container = av.open(publisher.url, mode="w", format="rtsp", options=options, timeout=timeout)
        try:
            stream = self.container.add_stream("libx264", rate=Fraction(publisher.fps).limit_denominator(1000))
            stream.width, stream.height, stream.pix_fmt = publisher.width, publisher.height, "yuv420p"
            stream.time_base = CLOCK
            stream.bit_rate = publisher.bitrate_kbps * 1000
            stream.options = {"preset": "ultrafast", "tune": "zerolatency",
                              "g": str(max(1, int(round(publisher.fps))))}
            self.stream = stream
            self.width, self.height = publisher.width, publisher.height
            self.fps = publisher.fps
            self.first_pts_s: float | None = None
            self.last_pts = -1
            self.frames = 0
            self.frames_muxed = 0
        except BaseException:
            self.container.close()
            raise

    def send(self, image: np.ndarray, pts_s: float | None) -> None:
        from ..io.video_writer import fit_to_canvas

        if pts_s is None:
            pts_s = self.frames / self.fps
        if self.first_pts_s is None:
            self.first_pts_s = pts_s
        pts = int(round((pts_s - self.first_pts_s) / CLOCK))
        if pts <= self.last_pts:  # a source clock that went back: keep time increasing
            pts = self.last_pts + 1
        self.last_pts = pts
        frame = self.av.VideoFrame.from_ndarray(fit_to_canvas(image, self.width, self.height), format="bgr24")
        frame.pts, frame.time_base = pts, CLOCK
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
            self.frames_muxed += 1
        self.frames += 1

    def close(self) -> None:
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        except Exception:  # noqa: BLE001 - the connection may already be gone
            pass
        try:
            self.container.close()
        except Exception as e:  # noqa: BLE001 - a dead connection may fail its teardown
            log.debug("RTSP output: error while closing: %s", e)


def _reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return " ".join(str(text).split())[:200]
