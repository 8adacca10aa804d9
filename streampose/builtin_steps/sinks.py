"""Sink steps: ``video_writer``, ``jsonl_writer``, ``csv_writer``, ``image_writer``, ``display``.

They run last in the last stage, after ``draw``; they read frames and never
modify or copy them (``draws`` False). Files open in ``start_of_stream`` and
are finalized in ``end_of_stream``; ``close()`` finalizes whatever is still
open (a graceful stop leaves a playable video and complete result files),
while ``abort()`` deletes what is not finished: the runtime calls ``abort()``
instead of ``close()`` when the run fails, so no half-written file is left
under an output name.

Several sources: JSON-lines and CSV sinks write every source into one file
(each line/row names its source) and publish it when all ``sources`` have
ended; video and image sinks write one file/folder per source
(``out.src0.mp4``, ``frames/src0/``; see :mod:`streampose.io.outputs`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SinkError, StopRequested
from ..records import EndOfStream, Frame, StreamStart
from ..step import Step, register_step

log = logging.getLogger(__name__)

_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
_IMAGE_FORMATS = ("", "jpg", "png", "bmp", "tiff", "webp")


def _check_sources(sources: int) -> None:
    if sources < 1:
        raise ValueError(f"sources must be >= 1, got {sources}")


def _check_folder(path: Path, what: str) -> None:
    from ..io.atomic import check_writable_dir

    check_writable_dir(path.parent if str(path.parent) else Path("."), what)


class _PerSourceNames:
    """Output names per source: the plain name with one source, ``.srcN`` with several.

    When told ``sources = 1`` but a second source shows up, that source still
    gets its own name (and a warning) rather than overwriting the first one's.
    """

    def __init__(self, sources: int, what: str) -> None:
        self._several = sources > 1
        self._first: int | None = None
        self._what = what

    def several_for(self, source_id: int) -> bool:
        if self._several:
            return True
        if self._first is None:
            self._first = source_id
        if source_id == self._first:
            return False
        log.warning("%s: more sources than announced (sources = 1); source %d gets its own .src%d name",
                    self._what, source_id, source_id)
        return True


@register_step("video_writer")
class VideoWriterStep(Step):
    """Annotated video file(s): H.264, the source's timestamps, its audio copied unchanged."""

    @dataclass
    class Options:
        """path: output file (.mp4 .mkv .mov .avi .webm); preset: libx264 speed preset;
        crf: quality 0-51 (lower is better); copy_audio: copy the source's audio stream;
        fps: frame rate for sources that have none (images); sources: sources in the run
        (several → one file per source, ``name.srcN.ext``)."""

        path: str
        preset: str = "veryfast"
        crf: int = 23
        copy_audio: bool = True
        fps: float = 30.0
        sources: int = 1

        def __post_init__(self) -> None:
            from ..io.outputs import VIDEO_EXTENSIONS

            if Path(self.path).suffix.lower() not in VIDEO_EXTENSIONS:
                raise ValueError(f"path must end in one of {' '.join(VIDEO_EXTENSIONS)}, got {self.path!r}")
            if self.preset not in _PRESETS:
                raise ValueError(f"preset must be one of {list(_PRESETS)}, got {self.preset!r}")
            if not 0 <= self.crf <= 51:
                raise ValueError(f"crf must be in [0, 51], got {self.crf}")
            if not self.fps > 0:
                raise ValueError(f"fps must be > 0, got {self.fps}")
            _check_sources(self.sources)

    def __init__(self, options: Options) -> None:
        self.options = options
        self._path = Path(options.path).expanduser()
        self._names = _PerSourceNames(options.sources, f"video_writer {options.path}")
        self._writers: dict[int, Any] = {}
        self._starts: dict[int, StreamStart] = {}

    def start(self) -> None:
        _check_folder(self._path, f"video {self.options.path!r}")

    def start_of_stream(self, event: StreamStart) -> None:
        from ..io.outputs import per_source_path
        from ..io.video_writer import VideoFileWriter

        self._finish(event.source_id, all_audio=False)
        path = per_source_path(self._path, event.source_id, self._names.several_for(event.source_id))
        audio = event.audio_path if self.options.copy_audio else None
        self._writers[event.source_id] = VideoFileWriter(
            path, event.width, event.height, event.fps or self.options.fps, preset=self.options.preset,
            crf=self.options.crf, audio_path=audio)
        self._starts[event.source_id] = event

    def process(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            _writer(self._writers, frame, self.type_name).write(frame.image, frame.packet.pts_s)
        return frames

    def end_of_stream(self, event: EndOfStream) -> None:
        writer = self._writers.get(event.source_id)
        if writer is None:
            return
        expected = self._starts[event.source_id].frame_count
        whole = event.error is None and (expected is None or writer.frames_written >= expected)
        self._finish(event.source_id, all_audio=whole)

    def _finish(self, source_id: int, all_audio: bool) -> None:
        writer = self._writers.pop(source_id, None)
        if writer is not None:
            writer.finish(all_audio=all_audio)

    def close(self) -> None:
        for source_id in list(self._writers):
            self._finish(source_id, all_audio=False)

    def abort(self) -> None:
        """The run failed: delete the unfinished files."""
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.abort()


class _SharedFileSink(Step):
    """One result file for all sources: opened at the first start, published when all ``sources`` ended."""

    what = ""

    def __init__(self, options: Any) -> None:
        self.options = options
        self._path = Path(options.path).expanduser()
        self._file: Any = None
        self._open_sources: set[int] = set()
        self._ended = 0

    def _create(self) -> Any:
        raise NotImplementedError

    def start(self) -> None:
        if self.options.path != "-":
            _check_folder(self._path, f"{self.what} {self.options.path!r}")

    def start_of_stream(self, event: StreamStart) -> None:
        if self._file is None:
            self._file = self._create()
        elif not self._file.is_open:  # a source started after all announced ones had ended
            self._file.reopen()
        if event.live:  # live results are readable as they are made (tail -f)
            self._file.go_live()
        self._open_sources.add(event.source_id)

    def process(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            if frame.packet.source_id not in self._open_sources:
                raise RuntimeError(f"{self.type_name} got a frame of source {frame.packet.source_id} "
                                   "before its start of stream")
            self._file.write_frame(frame.packet)
        return frames

    def end_of_stream(self, event: EndOfStream) -> None:
        if event.source_id not in self._open_sources:
            return
        self._open_sources.discard(event.source_id)
        self._ended += 1
        self._file.sync()
        if not self._open_sources and self._ended >= self.options.sources:
            self._file.finish()

    def close(self) -> None:
        if self._file is not None:
            self._file.finish()

    def abort(self) -> None:
        """The run failed: delete the unfinished file."""
        if self._file is not None:
            self._file.abort()


@dataclass
class SharedFileOptions:
    """path: output file (.jsonl / .csv; ``-`` is standard output, JSON lines only); sources: sources
    in the run (the file is published when all ended; at once when a live source starts);
    rotate: "" or an age/size (``10m``, ``100MB``) after which a numbered segment is published."""

    path: str
    sources: int = 1
    rotate: str = ""

    def __post_init__(self) -> None:
        from ..io.live_text import Rotation

        _check_sources(self.sources)
        if self.rotate:
            Rotation.parse(self.rotate)
            if self.path == "-":
                raise ValueError("rotate needs a file path, not - (standard output)")


@register_step("jsonl_writer")
class JsonlWriterStep(_SharedFileSink):
    """JSON lines: one object per frame (source, frame, pts, detections, poses), flushed as it goes."""

    what = "JSON-lines file"

    Options = SharedFileOptions

    def _create(self) -> Any:
        from ..io.jsonl_writer import JsonlFileWriter

        return JsonlFileWriter(self.options.path if self.options.path == "-" else self._path,
                               rotate=self.options.rotate)


@register_step("csv_writer")
class CsvWriterStep(_SharedFileSink):
    """CSV: a header, then one row per person per frame (source, frame, pts, track, box, the keypoints)."""

    what = "CSV file"

    Options = SharedFileOptions

    def _create(self) -> Any:
        from ..io.csv_writer import CsvFileWriter

        if self.options.path == "-":
            raise SinkError("csv_writer cannot write to standard output; use JSON lines (--output -)")
        return CsvFileWriter(self._path, rotate=self.options.rotate)


@register_step("image_writer")
class ImageWriterStep(Step):
    """A folder of annotated images named after the source frames."""

    @dataclass
    class Options:
        """path: output folder (created); format: jpg, png, bmp, tiff, webp, or "" to keep the
        source image's (jpg for video frames); jpeg_quality: 1-100; sources: sources in the run
        (several → one subfolder per source, ``srcN``)."""

        path: str
        format: str = ""
        jpeg_quality: int = 95
        sources: int = 1

        def __post_init__(self) -> None:
            if self.format not in _IMAGE_FORMATS:
                raise ValueError(f"format must be one of {list(_IMAGE_FORMATS)}, got {self.format!r}")
            if not 1 <= self.jpeg_quality <= 100:
                raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
            _check_sources(self.sources)

    def __init__(self, options: Options) -> None:
        self.options = options
        self._path = Path(options.path).expanduser()
        self._names = _PerSourceNames(options.sources, f"image_writer {options.path}")
        self._writers: dict[int, Any] = {}

    def start(self) -> None:
        from ..io.outputs import check_output_path

        check_output_path(self.options.path, "image_writer")

    def start_of_stream(self, event: StreamStart) -> None:
        from ..io.image_writer import ImageFolderWriter

        several = self._names.several_for(event.source_id)
        folder = self._path / f"src{event.source_id}" if several else self._path
        self._writers[event.source_id] = ImageFolderWriter(folder, event.source_name, self.options.format,
                                                           self.options.jpeg_quality)

    def process(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            _writer(self._writers, frame, self.type_name).write(frame.image, frame.packet.index)
        return frames

    def end_of_stream(self, event: EndOfStream) -> None:
        writer = self._writers.pop(event.source_id, None)
        if writer is not None:
            log.info("wrote %d images to %s", writer.images_written, writer.folder)

    def close(self) -> None:
        self._writers.clear()

    def abort(self) -> None:
        """Images already written are complete files; nothing is left half-written."""
        self._writers.clear()


@register_step("display")
class DisplayStep(Step):
    """An OpenCV window per source; ``q`` or Esc stops the run gracefully (StopRequested)."""

    draws = False

    @dataclass
    class Options:
        """title: window title prefix."""

        title: str = "streampose"

    def __init__(self, options: Options) -> None:
        self.options = options
        self._display: Any = None
        self._names: dict[int, str] = {}

    def start(self) -> None:
        from ..io.display import Display

        self._display = Display(self.options.title)

    def start_of_stream(self, event: StreamStart) -> None:
        self._names[event.source_id] = event.source_name

    def process(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            packet = frame.packet
            name = self._names.get(packet.source_id, packet.source_name)
            if self._display.show(packet.source_id, name, frame.image):
                raise StopRequested("quit key pressed in the display window")
        return frames

    def close(self) -> None:
        if self._display is not None:
            self._display.close()

    def abort(self) -> None:
        self.close()


def _writer(writers: dict[int, Any], frame: Frame, step: str) -> Any:
    writer = writers.get(frame.packet.source_id)
    if writer is None:
        raise RuntimeError(f"{step} got a frame of source {frame.packet.source_id} before its start of stream")
    return writer
