"""The Python API: ``streampose.predict(source)`` and the long-lived ``streampose.Pipeline``.

Runs a pipeline definition's steps in this process, one frame at a time, and
yields a :class:`Result` per frame: the detections and poses records, plus
``plot()`` (the annotated image), ``to_dict()`` (the JSON-lines record) and
``to_coco()`` (COCO keypoint results rows). The steps are the CLI's; only
the drawing steps are left out (``plot()`` draws on a copy when asked), and
sinks are not part of it (write what you need from the results).

Example::

    import streampose

    for result in streampose.predict("video.mp4"):
        print(result.frame_index, len(result.poses))

    with streampose.Pipeline(pose_model="movenet_lightning") as pipe:
        result = pipe(image_bgr)              # one numpy image
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .errors import UserError
from .records import Detections, EndOfStream, Frame, FramePacket, Poses, StreamStart

#: keyword overrides a Pipeline takes, as :func:`streampose.config.apply_overrides` names them.
OVERRIDES = ("device", "det_model", "pose_model", "img_size", "conf", "iou", "classes", "smooth", "batch", "half")


@dataclass
class Result:
    """What the pipeline found in one frame.

    image: the frame as given (BGR uint8 (H, W, 3), not drawn on); packet:
    the frame's record (source, index, time, detections, poses, timings).
    """

    packet: FramePacket
    image: np.ndarray

    @property
    def detections(self) -> Detections | None:
        """Person boxes (xyxy, source pixels), or None when the pipeline has no detector."""
        return self.packet.detections

    @property
    def poses(self) -> Poses:
        """People's keypoints (N, K, 2) in source pixels with scores; N = 0 when none."""
        return self.packet.poses if self.packet.poses is not None else Poses.empty()

    @property
    def frame_index(self) -> int:
        return self.packet.index

    def plot(self, *, boxes: bool = True, poses: bool = True) -> np.ndarray:
        """A copy of the image with boxes, skeletons and track IDs drawn (BGR uint8)."""
        from .builtin_steps.render import DrawStep

        canvas = self.image.copy()
        draw = DrawStep(DrawStep.Options(draw_info=False, draw_boxes=boxes, draw_poses=poses))
        draw.start()
        draw.draw(Frame(self.packet, canvas))
        return canvas

    def to_dict(self) -> dict[str, Any]:
        """The frame's JSON-lines record (what ``--output x.jsonl`` writes for it)."""
        from .io.results import frame_to_json

        return frame_to_json(self.packet)

    def to_coco(self, image_id: int | None = None) -> list[dict[str, Any]]:
        """COCO keypoint results rows of the frame's people (``image_id`` defaults to the frame index)."""
        from .evaluation.coco_results import keypoint_results

        return keypoint_results(self.packet.index if image_id is None else image_id, self.poses)


class Pipeline:
    """A pipeline definition's steps, started once and run on frames in this process.

    pipeline: a name in ``pipelines/`` (see ``streampose --list-pipelines``)
    or a path to a ``.toml`` file; overrides: ``det_model`` / ``pose_model``
    (a registry name from ``streampose models`` or a weights file),
    ``device``, ``img_size``, ``conf``, ``iou``, ``classes``, ``smooth``,
    ``batch``, ``half``, as the CLI flags of the same names. Raises UserError
    (one line) for a bad pipeline, override or weights file.

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, pipeline: str | Path = "default", **overrides: Any) -> None:
        from .config import apply_overrides, import_step_modules, load_pipeline
        from .step import build_step

        unknown = sorted(set(overrides) - set(OVERRIDES))
        if unknown:
            raise UserError(f"unknown option(s) {', '.join(unknown)}; options: {', '.join(OVERRIDES)}")
        config = apply_overrides(load_pipeline(pipeline), **overrides)
        import_step_modules(config.step_modules)
        self.config = config
        self.steps = [step for stage in config.stages for step in
                      (build_step(spec) for spec in stage.steps) if not step.draws]
        self._started: list[Any] = []
        try:
            for step in self.steps:
                step.start()
                self._started.append(step)
        except BaseException:
            self.close()
            raise
        self._next_source = 0

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the models (idempotent)."""
        while self._started:
            self._started.pop().close()

    def __call__(self, image: np.ndarray) -> Result:
        """The result for one BGR uint8 (H, W, 3) image."""
        return next(self.predict(image))

    def predict(self, source: Any, *, max_frames: int | None = None) -> Iterator[Result]:
        """One :class:`Result` per frame of ``source``.

        source: a file, folder, URL or ``webcam:N`` string (as ``--source``), a
        webcam index (int), a BGR uint8 numpy image, or a list of images /
        image paths. max_frames: stop after that many frames.
        """
        if not self._started and self.steps:
            raise UserError("this Pipeline is closed")
        for source_name, start, frames in _open(source, self._next_source):
            self._next_source += 1
            yield from self._run(source_name, start, frames, max_frames)

    def _run(self, name: str, start: StreamStart, frames: Iterator[tuple[np.ndarray, float | None]],
             max_frames: int | None) -> Iterator[Result]:
        for step in self.steps:
            step.start_of_stream(start)
        sent = 0
        try:
            for image, pts_s in frames:
                if max_frames is not None and sent >= max_frames:
                    break
                image = _checked_image(image, f"{name} frame {sent}")
                packet = FramePacket(source_id=start.source_id, source_name=name, index=sent, pts_s=pts_s,
                                     shape=tuple(image.shape), capture_time=time.monotonic())
                batch = [Frame(packet, image)]
                for step in self.steps:
                    began = time.perf_counter()
                    batch = step.process(batch)
                    packet.timings[step.type_name] = time.perf_counter() - began
                sent += 1
                yield Result(packet, image)
        finally:
            for step in self.steps:
                step.end_of_stream(EndOfStream(start.source_id, name, sent))


def predict(source: Any, pipeline: str | Path = "default", *, max_frames: int | None = None,
            **overrides: Any) -> Iterator[Result]:
    """One :class:`Result` per frame of ``source`` through ``pipeline`` (see :class:`Pipeline`).

    The models are loaded on the first ``next()`` and released when the
    iteration ends (or the generator is closed).
    """
    with Pipeline(pipeline, **overrides) as pipe:
        yield from pipe.predict(source, max_frames=max_frames)


def _checked_image(image: Any, where: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise UserError(f"{where}: expected a BGR uint8 (H, W, 3) numpy image, got "
                        f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")
    return np.ascontiguousarray(image)


def _image_start(source_id: int, name: str, image: np.ndarray) -> StreamStart:
    h, w = image.shape[:2]
    return StreamStart(source_id, name, w, h, None, 1, False)


def _open(source: Any, source_id: int) -> Iterable[tuple[str, StreamStart, Iterator]]:
    """(name, StreamStart, frames iterator) for each source in ``source``."""
    if isinstance(source, np.ndarray):
        image = _checked_image(source, "image")
        yield "image", _image_start(source_id, "image", image), iter([(image, None)])
        return
    if isinstance(source, (list, tuple)):
        for k, item in enumerate(source):
            if isinstance(item, np.ndarray):
                image = _checked_image(item, f"image {k}")
                yield f"image{k}", _image_start(source_id + k, f"image{k}", image), iter([(image, None)])
            else:
                yield from _open(item, source_id + k)
        return
    if isinstance(source, bool) or not isinstance(source, (int, str, Path)):
        raise UserError(f"source: expected a path, URL, webcam index, numpy image or list of them, got "
                        f"{type(source).__name__}")
    spec = f"webcam:{source}" if isinstance(source, int) else str(source)
    from .io.sources import open_source

    opened = open_source(spec, source_id)

    def frames() -> Iterator[tuple[np.ndarray, float | None]]:
        with opened:
            yield from opened.frames()

    yield str(source), opened.start_event, frames()
