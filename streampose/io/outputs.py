"""From ``--output`` values and ``--show`` to sink step specs, with writability checked up front.

The sink is chosen by the output's form:

- ``.mp4 .mkv .mov .avi .webm`` → ``video_writer`` (H.264; VP9 for ``.webm``);
- ``.jsonl`` → ``jsonl_writer``; ``.csv`` → ``csv_writer``;
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
SINK_BY_EXTENSION = {**{ext: "video_writer" for ext in VIDEO_EXTENSIONS}, ".jsonl": "jsonl_writer",
                     ".csv": "csv_writer"}
#: sinks that write one file or folder per source in multi-source runs
PER_SOURCE_SINKS = ("video_writer", "image_writer")


#: output forms that are not files: ``-`` and the addresses of other programs.
STREAM_OUTPUTS = {"mqtt://": "mqtt_publisher", "rtsp://": "rtsp_publisher"}


def output_kind(output: str) -> str:
    """The sink type an ``--output`` value maps to; SinkError for an unknown form."""
    if output == "-":
        return "jsonl_writer"
    for prefix, kind in STREAM_OUTPUTS.items():
        if output.lower().startswith(prefix):
            return kind
    if "://" in output:
        from .redact import mask_url

        raise SinkError(f"output {mask_url(output)!r}: unknown address form; use mqtt://HOST[:PORT]/TOPIC or "
                        "rtsp://HOST:PORT/PATH, or a file")
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
    if output == "-" or kind in STREAM_OUTPUTS.values():
        return
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


def sink_specs(outputs: list[str], show: bool, num_sources: int = 1, rotate: str = "",
               mqtt_qos: int = 0, mqtt_retain: bool = False) -> list[dict[str, Any]]:
    """Sink step specs for ``--output`` values (in order) and ``--show`` (a display last).

    num_sources: how many sources the run has; with more than one, video and
    image sinks write one file/folder per source (see the module docstring).
    Checks every path can be written before anything starts; SinkError (one
    line) for an unknown extension, an unwritable path, a duplicate output, or
    ``--show`` without a display. rotate: ``--rotate`` for the JSON-lines and
    CSV files; mqtt_qos / mqtt_retain: for ``mqtt://`` outputs.
    """
    if num_sources < 1:
        raise ValueError(f"num_sources must be >= 1, got {num_sources}")
    specs: list[dict[str, Any]] = []
    seen: set[Path] = set()
    for output in outputs:
        kind = output_kind(output)
        check_output_path(output, kind)
        resolved = output if output == "-" or "://" in output else Path(output).expanduser().resolve()
        if resolved in seen:
            from .redact import mask_url

            raise SinkError(f"output {mask_url(output)!r} given twice; give each output once")
        seen.add(resolved)
        if kind == "mqtt_publisher":
            specs.append({"type": kind, "url": output, "qos": mqtt_qos, "retain": mqtt_retain})
            continue
        if kind == "rtsp_publisher":
            spec = {"type": kind, "url": output}
        else:
            spec = {"type": kind, "path": output}
        if num_sources > 1:
            spec["sources"] = num_sources
        if rotate and kind in ("jsonl_writer", "csv_writer") and output != "-":
            spec["rotate"] = rotate
        specs.append(spec)
    if show:
        problem = display_problem()
        if problem:
            raise SinkError(f"--show needs a display: {problem}; run without --show and write an --output instead")
        specs.append({"type": "display"})
    return specs
