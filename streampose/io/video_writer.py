"""Annotated video files through PyAV, with the source's audio stream copied through unchanged.

Video is H.264 (libx264, yuv420p; VP9 for ``.webm``, whose container takes no
H.264). Frames keep the source's timestamps: ``pts_s`` of each frame, on a
1/90000 s clock (AVI, which has no per-frame timestamps, gets one tick per
frame at the nominal rate, and readers may see its frames start a tick or two
late). A source clock that jumps back (a reconnected
stream) is re-based so time keeps increasing; frames without a timestamp
(images) are spaced at the nominal rate.

The frame size is fixed when the file opens (the stream's size, rounded up to
even numbers as yuv420p needs); a frame of another size (folders of mixed
sizes, a stream that changed resolution) is scaled down to fit if larger and
centred on black. Audio packets are demuxed from the source file and muxed
as they are (no decoding): interleaved with the video as it is written, and,
when the whole source was written, every remaining packet at the end; when
the run stops early, audio up to the end of the last frame. A container that
cannot hold the source's audio codec is a :class:`SinkError` when the file opens.

Files are written under a hidden partial name and renamed when finished
(:mod:`streampose.io.atomic`); :meth:`VideoFileWriter.abort` deletes them.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SinkError
from .atomic import discard, output_error, partial_path, publish
from .pyav import load_av
from .urls import redact_url

log = logging.getLogger(__name__)

CLOCK = Fraction(1, 90000)
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def fit_to_canvas(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` itself when it is ``width`` x ``height``; else scaled down to fit if needed and centred on black."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if w > width or h > height:
        import cv2

        scale = min(width / w, height / h)
        w, h = max(1, int(w * scale)), max(1, int(h * scale))
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - h) // 2, (width - w) // 2
    canvas[top:top + h, left:left + w] = image
    return canvas


class VideoFileWriter:
    """One video file. ``write`` frames in order, then ``finish`` (or ``abort``).

    width/height: the stream size (rounded up to even); fps: nominal rate
    (> 0); preset / crf: libx264 speed preset and quality (0-51, lower is
    better); audio_path: a media file whose first audio stream is copied, or None.
    """

    def __init__(self, path: Path, width: int, height: int, fps: float, preset: str = "veryfast",
                 crf: int = 23, audio_path: str | None = None) -> None:
        av = load_av()
        if width <= 0 or height <= 0:
            raise ValueError(f"video size must be positive, got {width}x{height}")
        self.path = path
        self.frames_written = 0
        self._partial = partial_path(path)
        self._width, self._height = width + width % 2, height + height % 2
        self._rate = Fraction(fps).limit_denominator(100000)
        self._frame_s = 1.0 / fps
        cfr = path.suffix.lower() == ".avi"
        self._tick = 1 / self._rate if cfr else CLOCK
        self._last_s: float | None = None
        self._last_tick = -1
        self._offset_s = 0.0
        self._audio_in: Any = None
        self._audio_next: Any = None
        self._finished = False
        try:
            self._container = av.open(str(self._partial), mode="w")
        except (av.error.FFmpegError, OSError) as e:
            raise SinkError(f"cannot create video {str(path)!r} ({getattr(e, 'strerror', e)}); "
                            "check the folder is writable") from e
        try:
            self._video = self._add_video_stream(path.suffix.lower(), preset, crf)
            if audio_path:
                self._open_audio(audio_path)
            try:
                self._container.start_encoding()
            except av.error.FFmpegError as e:
                if self._audio_in is None or isinstance(e, OSError):  # e.g. ENOSPC writing the header
                    raise output_error("video", path, e) from e
                codec = self._audio_out.codec_context.name
                raise SinkError(f"video {str(path)!r}: a {path.suffix} file cannot hold the source's {codec} audio "
                                f"({e.strerror}); write .mkv (holds any codec) or set copy_audio = false") from e
        except BaseException:
            self.abort()
            raise

    def _add_video_stream(self, suffix: str, preset: str, crf: int) -> Any:
        if suffix == ".webm":
            stream = self._container.add_stream("libvpx-vp9", rate=self._rate)
            stream.options = {"crf": str(crf), "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
        else:
            stream = self._container.add_stream("libx264", rate=self._rate)
            stream.options = {"preset": preset, "crf": str(crf)}
        stream.width, stream.height, stream.pix_fmt = self._width, self._height, "yuv420p"
        stream.codec_context.time_base = self._tick
        stream.time_base = self._tick
        return stream

    def _open_audio(self, audio_path: str) -> None:
        av = load_av()
        try:
            source = av.open(audio_path, mode="r")
        except av.error.FFmpegError as e:
            raise SinkError(f"cannot read the audio of {redact_url(audio_path)!r} to copy it ({e.strerror}); "
                            "set copy_audio = false to write video only") from e
        if not source.streams.audio:
            source.close()
            return
        self._audio_in = source
        stream = source.streams.audio[0]
        try:
            self._audio_out = self._container.add_stream_from_template(stream)
        except ValueError as e:  # PyAV's own check that the container takes the codec
            raise SinkError(f"video {str(self.path)!r}: a {self.path.suffix} file cannot hold the source's "
                            f"{stream.codec_context.name} audio ({e}); write .mkv (holds any codec) or set "
                            "copy_audio = false") from e
        self._audio_packets = source.demux(stream)
        self._audio_next = self._next_audio_packet()

    def _next_audio_packet(self) -> Any:
        av = load_av()
        try:
            for packet in self._audio_packets:
                if packet.dts is not None and packet.size:  # skip the demuxer's empty flush packet
                    return packet
        except av.error.FFmpegError as e:
            log.warning("%s: the source's audio could not be read further (%s); audio ends here",
                        self.path, e.strerror)
        return None

    def _mux_audio_until(self, until_s: float | None) -> None:
        """Copy the audio packets that start before ``until_s`` seconds (all when None)."""
        while self._audio_next is not None:
            packet = self._audio_next
            start = packet.pts if packet.pts is not None else packet.dts
            if until_s is not None and float(start * packet.time_base) >= until_s:
                return
            packet.stream = self._audio_out
            self._container.mux(packet)
            self._audio_next = self._next_audio_packet()

    def _timestamp_s(self, pts_s: float | None) -> float:
        """The output time of a frame: the source's, kept increasing."""
        if pts_s is None:
            return 0.0 if self._last_s is None else self._last_s + self._frame_s
        if self._last_s is None:
            self._offset_s = min(0.0, pts_s)  # a negative first timestamp starts the file at 0
        out_s = pts_s - self._offset_s
        if self._last_s is not None and out_s <= self._last_s:
            log.info("%s: source time went back (%.3f s -> %.3f s); continuing from the last frame",
                     self.path, self._last_s, out_s)
            self._offset_s = pts_s - (self._last_s + self._frame_s)
            out_s = self._last_s + self._frame_s
        return out_s

    def write(self, image: np.ndarray, pts_s: float | None) -> None:
        """Encode one BGR uint8 (H, W, 3) frame shown at ``pts_s`` seconds (None: next at the nominal rate)."""
        av = load_av()
        time_s = self._timestamp_s(pts_s)
        tick = max(round(time_s / self._tick), self._last_tick + 1)
        frame = av.VideoFrame.from_ndarray(fit_to_canvas(image, self._width, self._height), format="bgr24")
        frame.pts, frame.time_base = tick, self._tick
        try:
            self._mux_audio_until(time_s)
            for packet in self._video.encode(frame):
                self._container.mux(packet)
        except (av.error.FFmpegError, OSError) as e:  # ENOSPC and other output errors
            raise output_error("video", self.path, e) from e
        self._last_s, self._last_tick = time_s, tick
        self.frames_written += 1

    def finish(self, all_audio: bool) -> Path:
        """Flush, copy the remaining audio, close and publish the file under its name; returns it.

        all_audio: copy every remaining audio packet (the whole source was
        written); else only audio up to the end of the last frame.
        """
        if self._finished:
            return self.path
        self._finished = True
        av = load_av()
        try:
            for packet in self._video.encode(None):
                self._container.mux(packet)
            end_s = None if all_audio else (0.0 if self._last_s is None else self._last_s + self._frame_s)
            self._mux_audio_until(end_s)
            self._container.close()
        except BaseException as e:
            self._close_quietly()
            discard(self._partial)
            if isinstance(e, (av.error.FFmpegError, OSError)):
                raise output_error("video", self.path, e) from e
            raise
        self._close_audio()
        publish(self._partial, self.path, "video")
        log.info("wrote %s (%d frames)", self.path, self.frames_written)
        return self.path

    def abort(self) -> None:
        """Stop and delete the partial file (nothing appears under the final name)."""
        if self._finished:
            return
        self._finished = True
        self._close_quietly()
        discard(self._partial)

    def _close_quietly(self) -> None:
        av = load_av()
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError, AttributeError) as e:  # the file is being thrown away
            log.debug("%s: closing an aborted video: %s", self.path, e)
        self._close_audio()

    def _close_audio(self) -> None:
        if self._audio_in is not None:
            self._audio_in.close()
            self._audio_in = self._audio_next = None
