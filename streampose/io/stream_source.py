"""Live sources through PyAV: network streams (RTSP, HTTP), webcams and FFmpeg's lavfi device.

Network streams are opened with FFmpeg's open timeout
(``SourceOptions.open_timeout_s``), and a hung stream (no frame for
``read_timeout_s``) is detected within that time + 0.5 s. PyAV's read
timeout alone cannot do it: on the first interruption FFmpeg returns a packet
and PyAV's timer restarts, so a hung server was noticed only after twice the
timeout, and a shorter hang never. So:

- RTSP: PyAV's read timeout is a short tick (:func:`read_tick_s`, at most
  0.15 s); every tick without data hands control back
  (``av.error.ExitError``), we compare the time since the last frame with
  ``read_timeout_s`` and either read on over the same connection (a new
  demux pass) or declare it hung: detected within ``read_timeout_s`` + two
  ticks + FFmpeg's 0.1 s polling. (FFmpeg's RTSP ``timeout`` option does not
  end a hung TCP session.) A tick that falls inside an RTP packet can break
  the TCP framing; FFmpeg then reports an I/O error and the stream reconnects.
- HTTP(S): FFmpeg's own I/O timeout (``rw_timeout`` = ``read_timeout_s``)
  ends a read with ``ETIMEDOUT``; PyAV's timeout, a second later, is a backstop.
  (Ticks would break HTTP streams: an interrupted read loses its data.)
- Webcams: PyAV's read timeout, as before.

RTSP goes
over TCP by default and is probed for ``analyzeduration_s`` only (100 ms cuts
the time to the first frame from ~1.2 s to ~0.3 s here).

A live stream that fails is reconnected inside ``frames()``: a timeout or any
FFmpeg error, and also a frame loop that simply ends (that is how PyAV reports
a server that went away). Up to ``reconnect_attempts`` attempts follow the
first immediate one, waiting ``min(backoff_initial_s * 2**(k-1), backoff_max_s)``
before attempt k; each is logged, failures are counted in
``stats["connect_failures"]``, successes in ``stats["reconnects"]``, and once
they are exhausted ``frames()`` raises :class:`SourceError`. Opening follows
the same rule, so an unreachable address fails in ``open_source`` after its
retries. A connection is only counted as made once its first frame decodes.

Live frames are stamped with the source's capture clock (seconds since the
source was opened, ``time.monotonic``), which keeps increasing across
reconnects. An ``http(s)://`` address of a finite media file (the container
reports a duration) is not live: it is read once, with the container's
timestamps, and a failure is a :class:`SourceError` (no reconnection). A
``lavfi:`` graph is live (use ``realtime`` in it to pace it) and simply ends
when the graph does.
"""

from __future__ import annotations

import errno
import logging
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from ..records import StreamStart
from .sources import Source, SourceOptions, check_frame_size
from .urls import redact_text, redact_url
from .video_source import _reason, decode_video, to_bgr, video_rate
from .pyav import load_av

log = logging.getLogger(__name__)


def read_tick_s(read_timeout_s: float) -> float:
    """PyAV's read timeout: how often a silent connection hands control back (see the module docstring)."""
    return min(0.15, read_timeout_s / 4)


class StreamSource(Source):
    """A source read through ``av.open(url, format=..., options=...)`` that may reconnect.

    reconnect: whether a stream that fails or ends is reopened (network
    streams and webcams) or simply ends (lavfi graphs). ``live`` is decided
    once open: see the module docstring.
    """

    def __init__(self, spec: str, source_id: int, options: SourceOptions, url: str, av_format: str | None,
                 av_options: dict[str, str], reconnect: bool, kind: str = "stream",
                 hint: str = "check the address and that the server is up, or raise reconnect_attempts") -> None:
        # The real address (``url``) is only used to connect; everything shown or written names the source
        # by ``self._name``, its password masked.
        self._name = redact_url(spec)
        super().__init__(StreamStart(source_id=source_id, source_name=self._name, width=0, height=0, fps=None,
                                     frame_count=None, live=True))
        self._options = options
        self._url = url
        self._format = av_format
        self._av_options = av_options
        self._kind = kind
        self._hint = hint
        self._container: Any = None
        self._stream: Any = None
        self._ticking = False
        self._decoded: Iterator[Any] | None = None
        self._t0 = time.monotonic()
        #: "running", or "reconnecting" while a lost connection is being retried (read by the capture loop)
        self.state = "running"
        #: the latest reason a connection failed (one line, password masked)
        self.last_error = ""
        first = self._connect_with_retries(lost=None)
        duration = self._container.duration
        self.live = not (self._format is None and self._url.lower().startswith("http") and duration)
        self._reconnect = reconnect and self.live
        stream = self._container.streams.video[0]
        frame_count = None if self.live else (stream.frames or None)
        audio = None if self.live or not self._container.streams.audio else url
        self._start_event = StreamStart(source_id=source_id, source_name=self._name, width=first.width,
                                        height=first.height, fps=video_rate(stream), frame_count=frame_count,
                                        live=self.live, audio_path=audio)
        self._first: Any = first

    def _open_once(self) -> Any:
        """Open the container and decode its first frame; FFmpeg errors propagate."""
        av = load_av()
        options = self._options
        self._ticking = self._url.lower().startswith("rtsp")
        if self._format == "lavfi":  # no I/O; ``realtime`` pacing must not count as a stalled read
            timeout = None
        elif self._ticking:
            timeout = (options.open_timeout_s, read_tick_s(options.read_timeout_s))
        elif "rw_timeout" in self._av_options:  # FFmpeg times the reads out; PyAV's timer is a backstop
            timeout = (options.open_timeout_s, options.read_timeout_s + 1.0)
        else:
            timeout = (options.open_timeout_s, options.read_timeout_s)
        container = av.open(self._url, mode="r", format=self._format, options=self._av_options, timeout=timeout)
        try:
            if not container.streams.video:
                raise SourceError(f"{self._name!r} carries no video stream; give an address that serves video")
            stream = container.streams.video[0]
            codec = stream.codec_context
            check_frame_size(self._name, codec.width or 0, codec.height or 0, self._options.max_pixels, self._kind)
            stream.thread_type = "AUTO"
            self._container, self._stream = container, stream
            self._decoded = decode_video(container, stream, self._stats, self._name)
            first = self._next_frame(time.monotonic())
            if first is None:
                raise av.error.EOFError(0, "the stream ended before its first frame")
        except BaseException:
            self._container = self._stream = self._decoded = None
            container.close()
            raise
        return first

    def _next_frame(self, waiting_since: float) -> Any:
        """The next decoded frame (None when the stream ended).

        Raises ``av.error.ExitError`` once no frame came for ``read_timeout_s``
        since ``waiting_since``; shorter silences (PyAV's tick) are read through.
        """
        av = load_av()
        while True:
            try:
                return next(self._decoded, None)
            except av.error.ExitError:
                if not self._ticking or time.monotonic() - waiting_since >= self._options.read_timeout_s:
                    raise
                # A tick without data: the connection is intact, read on with a new demux pass.
                self._decoded = decode_video(self._container, self._stream, self._stats, self._name)

    def _connect_with_retries(self, lost: str | None) -> Any:
        """Connect (``lost`` None) or reconnect after ``lost``; the first frame, or SourceError."""
        av = load_av()
        options = self._options
        started = time.monotonic()
        attempts = 1 + options.reconnect_attempts
        reason = ""
        attempt = -1
        while attempt + 1 < attempts:
            attempt += 1
            if attempt:
                delay = options.backoff_s(attempt)
                log.warning("%s: %s; retry %d/%s in %.1f s", self._name, reason, attempt,
                            "inf" if options.reconnect_attempts == math.inf else options.reconnect_attempts,
                            delay)
                time.sleep(delay)
            tried = time.monotonic()
            try:
                first = self._open_once()
            except av.error.FFmpegError as e:
                self._stats["connect_failures"] += 1
                reason = self._describe(e, opening=True, waited_s=time.monotonic() - tried)
                self.last_error = reason
                continue
            if lost is not None:
                self._stats["reconnects"] += 1
                log.warning("%s: reconnected after %.1f s (reconnect #%d)", self._name,
                            time.monotonic() - started, self._stats["reconnects"])
            return first
        what = "unreachable" if lost is None else f"lost ({lost}) and not back"
        raise SourceError(f"{self._kind} {self._name!r} {what} after {attempts} attempt{'s' * (attempts > 1)} "
                          f"({reason}); {self._hint}")

    def _describe(self, error: Exception, opening: bool, waited_s: float = 0.0) -> str:
        """A short reason for a failed connection or read."""
        av = load_av()
        options = self._options
        if opening:
            # An interrupted RTSP handshake comes back as "invalid data", not as PyAV's ExitError.
            if isinstance(error, av.error.ExitError) or waited_s >= 0.95 * options.open_timeout_s:
                return (f"no answer within the timeouts (open {options.open_timeout_s:g} s, "
                        f"read {options.read_timeout_s:g} s)")
        elif isinstance(error, av.error.ExitError) or getattr(error, "errno", None) == errno.ETIMEDOUT:
            return f"no data within {options.read_timeout_s:g} s"  # our clock, PyAV's timer or FFmpeg's rw_timeout
        return redact_text(_reason(error))

    def frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        av = load_av()
        frame, self._first = self._first, None
        while frame is not None:
            self._stats["frames_decoded"] += 1
            pts_s = time.monotonic() - self._t0 if self.live else frame.time
            yield to_bgr(frame), pts_s
            try:
                frame = self._next_frame(time.monotonic())  # the silence counts from here
                lost = "the stream ended" if frame is None else None
            except av.error.FFmpegError as e:
                frame = None
                lost = self._describe(e, opening=False)
                if not self._reconnect:
                    raise SourceError(f"{self._name!r} failed after frame {self._stats['frames_decoded']} "
                                      f"({lost}); check the source") from e
            if frame is None and self._reconnect:
                log.warning("%s: connection lost (%s) after %d frames; reconnecting", self._name, lost,
                            self._stats["frames_decoded"])
                self._close_container()
                self.state, self.last_error = "reconnecting", f"connection lost ({lost})"
                frame = self._connect_with_retries(lost=lost)
                self.state = "running"

    def _close_container(self) -> None:
        container, self._container, self._decoded, self._stream = self._container, None, None, None
        if container is not None:
            try:
                container.close()
            except Exception as e:  # a dead connection may fail its teardown; the container is gone anyway
                log.debug("%s: error while closing the old connection: %s", self._name, e)

    def close(self) -> None:
        self._first = None
        self._close_container()


def open_network_stream(spec: str, source_id: int, options: SourceOptions) -> StreamSource:
    """An ``rtsp(s)://`` or ``http(s)://`` address, with timeouts and reconnection."""
    av_options = {"analyzeduration": str(int(options.analyzeduration_s * 1e6))}
    if spec.lower().startswith("rtsp"):
        av_options["rtsp_transport"] = options.rtsp_transport
    else:  # http(s): FFmpeg's I/O timeout in microseconds (see the module docstring)
        av_options["rw_timeout"] = str(int(options.read_timeout_s * 1e6))
    return StreamSource(spec, source_id, options, url=spec, av_format=None, av_options=av_options, reconnect=True)


def open_lavfi(spec: str, source_id: int, options: SourceOptions) -> StreamSource:
    """``lavfi:<filtergraph>``: FFmpeg's lavfi device, e.g. ``lavfi:testsrc2=size=640x480:rate=30,realtime``."""
    graph = spec[len("lavfi:"):]
    if not graph:
        raise SourceError(f"empty lavfi graph in {spec!r}; e.g. lavfi:testsrc2=size=640x480:rate=30,realtime")
    return StreamSource(spec, source_id, SourceOptions(reconnect_attempts=0, max_pixels=options.max_pixels), url=graph, av_format="lavfi",
                        av_options={}, reconnect=False, kind="lavfi graph",
                        hint="check the graph with: ffmpeg -f lavfi -i '<graph>'")


def open_webcam(spec: str, index: int, source_id: int, options: SourceOptions) -> StreamSource:
    """A webcam by index: ``/dev/videoN`` through v4l2 on Linux, avfoundation on macOS."""
    av_options: dict[str, str] = {}
    if options.webcam_size:
        av_options["video_size"] = options.webcam_size
    if options.webcam_fps:
        av_options["framerate"] = f"{options.webcam_fps:g}"
    if sys.platform.startswith("linux"):
        device = Path(f"/dev/video{index}")
        if not device.exists():
            raise SourceError(f"no webcam {index}: {device} does not exist; connect a camera (or check its "
                              "index with v4l2-ctl --list-devices), or give a video file or stream instead")
        url, av_format = str(device), "v4l2"
    elif sys.platform == "darwin":
        url, av_format = f"{index}:none", "avfoundation"
        av_options.setdefault("framerate", "30")
    else:
        raise SourceError(f"webcam {spec!r}: webcams by index are supported on Linux and macOS only; "
                          "give a video file or stream instead")
    return StreamSource(spec, source_id, options, url=url, av_format=av_format, av_options=av_options,
                        reconnect=True, kind="webcam",
                        hint="check that no other program uses it and that webcam_size/webcam_fps suit it")
