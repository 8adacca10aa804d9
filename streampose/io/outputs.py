"""From ``--output`` values and ``--show`` to sink step specs, with writability checked up front.

The sink is chosen by the output's form:

- ``.mp4 .mkv .mov .avi .webm`` → ``video_writer`` (H.264; VP9 for ``.webm``);
- ``.jsonl`` → ``jsonl_writer``; ``.csv`` → ``csv_writer``;
- ``.json`` → ``coco_results_writer`` (COCO keypoint results, for pycocotools);
- ``.png .jpg .jpeg .bmp .webp .tif .tiff`` → ``image_file_writer`` (one annotated image);
- an existing folder, or a path ending in ``/`` → ``image_writer``.

With several sources in one run, JSON-lines and CSV files hold every source
(each row names its source), while each source gets its own video file and
image folder: ``out.mp4`` becomes ``out.src0.mp4``, ``out.src1.mp4``, … and
``frames/`` becomes ``frames/src0/``, ``frames/src1/``, ….
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import SinkError
from .atomic import check_writable_dir

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm")
IMAGE_FILE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
SINK_BY_EXTENSION = {**{ext: "video_writer" for ext in VIDEO_EXTENSIONS}, ".jsonl": "jsonl_writer",
                     ".csv": "csv_writer", ".json": "coco_results_writer",
                     **{ext: "image_file_writer" for ext in IMAGE_FILE_EXTENSIONS}}
#: sinks that write one file or folder per source in multi-source runs
PER_SOURCE_SINKS = ("video_writer", "image_writer")


def output_kind(output: str) -> str:
    """The sink type an ``--output`` value maps to; SinkError for an unknown form."""
    if output.endswith(("/", os.sep)) or Path(output).is_dir():
        return "image_writer"
    kind = SINK_BY_EXTENSION.get(Path(output).suffix.lower())
    if kind is None:
        known = " ".join(sorted(SINK_BY_EXTENSION))
        raise SinkError(f"output {output!r}: unknown extension; use one of {known}, or a folder ending in / "
                        "for annotated images")
    return kind


def per_source_path(path: Path, source_id: int, several: bool) -> Path:
    """The file of source ``source_id``: ``path`` itself, or ``stem.srcN.ext`` when there are several sources."""
    return path.with_name(f"{path.stem}.src{source_id}{path.suffix}") if several else path


def check_output_path(output: str, kind: str) -> None:
    """SinkError unless ``output`` can be written as a ``kind`` sink (nothing is created)."""
    path = Path(output).expanduser()
    if kind == "image_writer":
        existing = path
        while not existing.exists():  # the folder is created when the run starts
            existing = existing.parent
        if not existing.is_dir():
            raise SinkError(f"output {output!r}: {str(existing)!r} is a file, not a folder; choose another path")
        check_writable_dir(existing, f"output {output!r}")
        return
    if path.is_dir():
        raise SinkError(f"output {output!r} is a folder; give a file name such as {os.path.join(output, 'out.mp4')!r}")
    check_writable_dir(path.parent if str(path.parent) else Path("."), f"output {output!r}")


def display_problem() -> str | None:
    """Why no window can be shown here (None when one can)."""
    import sys

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY is not set)"
    return None


def sink_specs(outputs: list[str], show: bool, num_sources: int = 1) -> list[dict[str, Any]]:
    """Sink step specs for ``--output`` values (in order) and ``--show`` (a display last).

    num_sources: how many sources the run has; with more than one, video and
    image sinks write one file/folder per source (see the module docstring).
    Checks every path can be written before anything starts; SinkError (one
    line) for an unknown extension, an unwritable path, a duplicate output, or
    ``--show`` without a display.
    """
    if num_sources < 1:
        raise ValueError(f"num_sources must be >= 1, got {num_sources}")
    specs: list[dict[str, Any]] = []
    seen: set[Path] = set()
    for output in outputs:
        kind = output_kind(output)
        check_output_path(output, kind)
        resolved = Path(output).expanduser().resolve()
        if resolved in seen:
            raise SinkError(f"output {output!r} given twice; give each output once")
        seen.add(resolved)
        spec: dict[str, Any] = {"type": kind, "path": output}
        if kind == "image_file_writer" and num_sources > 1:
            raise SinkError(f"output {output!r} holds one image; with {num_sources} sources give a folder "
                            "ending in / instead")
        if num_sources > 1 and kind != "image_file_writer":
            spec["sources"] = num_sources
        specs.append(spec)
    if show:
        problem = display_problem()
        if problem:
            raise SinkError(f"--show needs a display: {problem}; run without --show and write an --output instead")
        specs.append({"type": "display"})
    return specs
