"""Sinks of single result files: ``coco_results_writer`` (``--output results.json``) and
``image_file_writer`` (``--output out.png``: the annotated image of a one-image source)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SinkError
from ..io.outputs import IMAGE_FILE_EXTENSIONS
from ..records import EndOfStream, Frame, StreamStart
from ..step import Step, register_step
from .sinks import JsonlWriterStep, SharedFileOptions

log = logging.getLogger(__name__)



@register_step("coco_results_writer")
class CocoResultsWriterStep(JsonlWriterStep):
    """COCO keypoint results (a JSON array of ``{image_id, category_id, keypoints, score}``), for pycocotools.

    ``image_id`` is the COCO number of the frame's file name when it has one, else the frame index.
    """

    what = "COCO results file"

    Options = SharedFileOptions

    def _create(self) -> Any:
        from ..io.coco_writer import CocoResultsFile

        return CocoResultsFile(self._path)


@register_step("image_file_writer")
class ImageFileWriterStep(Step):
    """The annotated image of a source that has exactly one frame, to one file (format from the extension)."""

    @dataclass
    class Options:
        """path: the image file (.png .jpg .jpeg .bmp .webp .tif .tiff); jpeg_quality: 1-100."""

        path: str
        jpeg_quality: int = 95

        def __post_init__(self) -> None:
            if Path(self.path).suffix.lower() not in IMAGE_FILE_EXTENSIONS:
                raise ValueError(f"path must end in one of {' '.join(IMAGE_FILE_EXTENSIONS)}, got {self.path!r}")
            if not 1 <= self.jpeg_quality <= 100:
                raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")

    def __init__(self, options: Options) -> None:
        self.options = options
        self._path = Path(options.path).expanduser()
        self._written = 0

    def start(self) -> None:
        from ..io.outputs import check_output_path

        check_output_path(self.options.path, "image_file_writer")

    def start_of_stream(self, event: StreamStart) -> None:
        if event.source_id > 0 or (event.frame_count is not None and event.frame_count > 1):
            raise SinkError(f"output {self.options.path!r} holds one image, but the source has more frames; "
                            "give a folder ending in / or a video file instead")

    def process(self, frames: list[Frame]) -> list[Frame]:
        import cv2

        from ..io.atomic import discard, partial_path, publish

        for frame in frames:
            if self._written:
                raise SinkError(f"output {self.options.path!r} holds one image, but a second frame arrived; "
                                "give a folder ending in / or a video file instead")
            partial = partial_path(self._path)
            jpeg = self._path.suffix.lower() in (".jpg", ".jpeg")
            params = [cv2.IMWRITE_JPEG_QUALITY, self.options.jpeg_quality] if jpeg else []
            if not cv2.imwrite(str(partial), frame.image, params):
                discard(partial)
                raise SinkError(f"cannot write image {self.options.path!r}")
            publish(partial, self._path)
            self._written += 1
        return frames

    def end_of_stream(self, event: EndOfStream) -> None:
        if self._written:
            log.info("wrote %s", self._path)
