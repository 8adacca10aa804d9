"""Video files through PyAV: any container and codec FFmpeg reads, GIF included.

Frames are decoded with FFmpeg's automatic (frame + slice) threading and
converted to BGR; ``pts_s`` is the frame's presentation time from the
container. A packet that fails to decode is skipped, counted in
``stats["decode_errors"]`` and logged; a file with no decodable frame at all,
or whose demuxing fails part way or ends well short of the frame count the
container announces (truncated or corrupt), is a :class:`SourceError`. The
start event's ``audio_path`` is the file's absolute path when it has an audio
stream, so a video sink can copy that stream.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from ..records import StreamStart
from .sources import DEFAULT_MAX_PIXELS, Source, check_frame_size
from .pyav import load_av

log = logging.getLogger(__name__)

# Decode errors logged one by one before they are only counted.
_LOGGED_DECODE_ERRORS = 5


def decode_video(container: Any, stream: Any, stats: dict[str, int], name: str) -> Iterator[Any]:
    """Yield the ``av.VideoFrame``s of ``stream``, skipping (and counting) packets that fail to decode.

    Demuxing errors and PyAV timeouts (``av.error.ExitError``) propagate: for a
    file they mean truncation or corruption, for a stream a lost connection.
    """
    av = load_av()
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.ExitError:
            raise
        except av.error.FFmpegError as e:
            stats["decode_errors"] += 1
            level = logging.WARNING if stats["decode_errors"] <= _LOGGED_DECODE_ERRORS else logging.DEBUG
            log.log(level, "%s: skipped a packet that failed to decode (%s); %d so far", name, _reason(e),
                    stats["decode_errors"])
            continue
        yield from frames


def to_bgr(frame: Any) -> np.ndarray:
    """An ``av.VideoFrame`` as a C-contiguous BGR uint8 (H, W, 3) array."""
    return np.ascontiguousarray(frame.to_ndarray(format="bgr24"))


def video_rate(stream: Any) -> float | None:
    """The stream's nominal frame rate in frames per second, None when unknown."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else None


class VideoFileSource(Source):
    """A video file; an offline source (``live`` False)."""

    live = False

    def __init__(self, spec: str, path: Path, source_id: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        av = load_av()
        self._spec = spec
        try:
            self._container = av.open(str(path), mode="r")
        except av.error.FFmpegError as e:
            raise SourceError(f"cannot read {spec!r} as a video or image ({_reason(e)}): not a media file, or "
                              "corrupt/truncated; give a video file FFmpeg can play") from e
        try:
            if not self._container.streams.video:
                raise SourceError(f"{spec!r} has no video stream; give a video file or an image")
            self._stream = self._container.streams.video[0]
            codec = self._stream.codec_context
            check_frame_size(spec, codec.width or 0, codec.height or 0, max_pixels, "video")
            self._stream.thread_type = "AUTO"
            super().__init__(StreamStart(source_id=source_id, source_name=spec, width=0, height=0, fps=None,
                                         frame_count=None, live=False))
            self._decoded = decode_video(self._container, self._stream, self._stats, spec)
            self._first = self._next_frame()
            if self._first is None:
                raise SourceError(f"video {spec!r} has no decodable frame (corrupt or truncated?); "
                                  "check that it plays, or re-encode it")
        except BaseException:
            self._container.close()
            raise
        frame_count = self._stream.frames or None
        audio_path = str(path.resolve()) if self._container.streams.audio else None
        self._start_event = StreamStart(source_id=source_id, source_name=spec, width=self._first.width,
                                        height=self._first.height, fps=video_rate(self._stream),
                                        frame_count=frame_count, live=False, audio_path=audio_path)

    def _next_frame(self) -> Any:
        av = load_av()
        try:
            return next(self._decoded, None)
        except av.error.FFmpegError as e:
            raise SourceError(f"video {self._spec!r} is corrupt or truncated after frame "
                              f"{self._stats['frames_decoded']} ({_reason(e)}); re-encode or replace it") from e

    def frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        frame, self._first = self._first, None
        while frame is not None:
            self._stats["frames_decoded"] += 1
            yield to_bgr(frame), frame.time
            frame = self._next_frame()
        expected, decoded = self._start_event.frame_count, self._stats["frames_decoded"]
        # Containers may count a frame or two the decoder never outputs; more missing means truncation.
        missing = expected - decoded - self._stats["decode_errors"] if expected else 0
        if missing > max(2, expected // 100):
            raise SourceError(f"video {self._spec!r} is truncated: decoded {decoded} of its {expected} frames; "
                              "re-download or re-encode it")

    def close(self) -> None:
        self._first = None
        self._container.close()


def _reason(error: Exception) -> str:
    """FFmpeg's reason without the file name PyAV appends."""
    return getattr(error, "strerror", None) or str(error)
