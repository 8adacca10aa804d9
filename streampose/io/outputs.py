"""From ``--output`` values and ``--show`` to sink step specs, with writability checked up front.

The sink is chosen by the output's form:

- ``.mp4 .mkv .mov .avi .webm`` → ``video_writer`` (H.264; VP9 for ``.webm``);
- ``.jsonl`` → ``jsonl_writer``; ``.csv`` → ``csv_writer``;
- ``.json`` → ``coco_results_writer`` (COCO keypoint results, for pycocotools);
- ``.png .jpg .jpeg .bmp .webp .tif .tiff`` → ``image_file_writer`` (one annotated image);
- an existing folder, or a path ending in ``/`` → ``image_writer``;
- ``-`` → ``jsonl_writer`` on standard output;
- ``mqtt://HOST[:PORT]/TOPIC`` → ``mqtt_publisher``; ``rtsp://HOST:PORT/PATH`` →
  ``rtsp_publisher`` (see :mod:`streampose.builtin_steps.service_sinks`).

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


#: output forms that are not files: the addresses of other programs.
STREAM_OUTPUTS = {"mqtt://": "mqtt_publisher", "rtsp://": "rtsp_publisher"}


def is_file_output(output: str) -> bool:
    """Whether ``output`` names a file or folder here (not ``-`` nor another program's address)."""
    return output != "-" and "://" not in output


def output_kind(output: str) -> str:
    """The sink type an ``--output`` value maps to; SinkError for an unknown form."""
    if output == "-":
        return "jsonl_writer"
    for prefix, kind in STREAM_OUTPUTS.items():
        if output.lower().startswith(prefix):
            return kind
    if "://" in output:
        from .urls import redact_url

        raise SinkError(f"output {redact_url(output)!r}: unknown address form; use mqtt://HOST[:PORT]/TOPIC or "
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


def partial_files(spec: dict[str, Any]) -> list[Path]:
    """The partial files a sink step spec may leave if its process dies (none for other steps).

    The process that owns a sink deletes its partial files itself when a run
    fails; when that process is killed, the parent calls this to find and
    delete them (only the hidden ``.name.partial.ext`` names of
    :mod:`streampose.io.atomic`, never a published file).
    """
    from .atomic import partial_path

    kind, path = spec.get("type"), spec.get("path")
    if not isinstance(path, str):
        return []
    path_ = Path(path).expanduser()
    sources = int(spec.get("sources", 1))
    if kind in ("jsonl_writer", "csv_writer"):
        if spec.get("rotate"):  # the segment being written: .name.000007.partial.ext
            folder = path_.parent if str(path_.parent) else Path(".")
            return sorted(folder.glob(f".{path_.stem}.[0-9]*.partial{path_.suffix}"))
        return [partial_path(path_)]
    if kind == "video_writer":
        # a sink told of one source still names an unannounced extra one ``.srcN`` (see sinks.py)
        names = {path_} | {per_source_path(path_, i, True) for i in range(max(sources, 1) + 1)}
        return sorted(partial_path(p) for p in names)
    if kind == "image_writer":
        folders = [path_] + [path_ / f"src{i}" for i in range(max(sources, 1) + 1)]
        return sorted(p for folder in folders if folder.is_dir() for p in folder.glob(".*.partial.*"))
    return []


def display_problem() -> str | None:
    """Why no window can be shown here (None when one can)."""
    import sys

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY is not set)"
    return None


def local_inputs(sources: list[str]) -> list[Path]:
    """The ``--source`` values that are files or folders on this machine (not URLs, webcams, lavfi)."""
    found = []
    for spec in sources:
        if "://" in spec or spec.startswith("lavfi:") or spec.startswith("webcam:") or spec.isdigit():
            continue
        path = Path(spec).expanduser()
        if path.exists():
            found.append(path)
    return found


def _same(a: Path, b: Path) -> bool:
    """Same file or folder on disk: symlinks followed, hard links included (device + inode)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def files_written(output: str, kind: str, num_sources: int) -> list[Path]:
    """The final paths a file sink publishes (``out.mp4``, or ``out.src0.mp4`` … with several sources)."""
    path = Path(output).expanduser()
    if kind == "video_writer" and num_sources > 1:
        return [per_source_path(path, i, True) for i in range(num_sources)]
    return [path]


def check_not_an_input(output: str, kind: str, inputs: list[Path], num_sources: int = 1) -> None:
    """SinkError when ``output`` would write over an input (checked before anything is opened).

    A file output may not be (by symlink or hard link too) any source file; an
    image-folder output may not be a source folder, nor the folder a source
    image lies in (its annotated copy would take the source's name).
    """
    if kind == "image_writer":
        folder = Path(output).expanduser()
        for source in inputs:
            if source.is_dir() and _same(folder, source):
                raise SinkError(f"output {output!r} is the source folder {str(source)!r}: the annotated images "
                                "would replace the source images; choose another folder")
            if source.is_file() and _same(folder, source.parent):
                raise SinkError(f"output {output!r} holds the source image {str(source)!r}, which its annotated "
                                "copy would replace; choose another folder")
        return
    for path in files_written(output, kind, num_sources):
        for source in inputs:
            if source.is_file() and _same(path, source):
                raise SinkError(f"output {output!r} is the input {str(source)!r} (the same file on disk); writing "
                                "it would destroy the input: choose another output path")


def check_not_existing(output: str, kind: str, num_sources: int = 1) -> None:
    """SinkError when ``output`` exists already (use ``--overwrite`` to replace it).

    An image folder counts as existing output when it already holds images.
    """
    if kind == "image_writer":
        from .image_sources import IMAGE_EXTENSIONS

        folder = Path(output).expanduser()
        if folder.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir()):
            raise SinkError(f"output folder {output!r} already holds images; give --overwrite to replace them, "
                            "or choose an empty folder")
        return
    for path in files_written(output, kind, num_sources):
        if path.exists() or path.is_symlink():
            shown = output if str(path) == str(Path(output).expanduser()) else f"{output} ({path.name})"
            raise SinkError(f"output {shown!r} already exists; give --overwrite to replace it, "
                            "or choose another path")


def sink_specs(outputs: list[str], show: bool, num_sources: int = 1, *, sources: list[str] | None = None,
               overwrite: bool = False, rotate: str = "", mqtt_qos: int = 0,
               mqtt_retain: bool = False) -> list[dict[str, Any]]:
    """Sink step specs for ``--output`` values (in order) and ``--show`` (a display last).

    num_sources: how many sources the run has; with more than one, video and
    image sinks write one file/folder per source (see the module docstring).
    sources: the ``--source`` values: no output may write over one of them
    (:func:`check_not_an_input`). overwrite: replace existing outputs; when
    False an existing output is refused (:func:`check_not_existing`).
    Checks every path before anything starts; SinkError (one line) for an
    unknown extension, an unwritable path, a duplicate output, an output over
    an input, an existing output without ``overwrite``, or ``--show`` without
    a display. rotate: ``--rotate`` for the JSON-lines and CSV files (numbered
    segments, which never replace a file); mqtt_qos / mqtt_retain: for
    ``mqtt://`` outputs.
    """
    if num_sources < 1:
        raise ValueError(f"num_sources must be >= 1, got {num_sources}")
    inputs = local_inputs(list(sources or []))
    specs: list[dict[str, Any]] = []
    seen: set[Path] = set()
    for output in outputs:
        kind = output_kind(output)
        rotated = bool(rotate) and kind in ("jsonl_writer", "csv_writer") and is_file_output(output)
        if is_file_output(output):
            check_not_an_input(output, kind, inputs, num_sources)
            if not overwrite and not rotated:
                check_not_existing(output, kind, num_sources)
            check_output_path(output, kind)  # last: it probes the folder with a temporary file
        resolved = Path(output).expanduser().resolve() if is_file_output(output) else output
        if resolved in seen:
            from .urls import redact_url

            raise SinkError(f"output {redact_url(output)!r} given twice; give each output once")
        seen.add(resolved)
        if kind == "mqtt_publisher":
            specs.append({"type": kind, "url": output, "qos": mqtt_qos, "retain": mqtt_retain})
            continue
        spec: dict[str, Any] = {"type": kind, "url": output} if kind == "rtsp_publisher" else \
            {"type": kind, "path": output}
        if rotated:
            spec["rotate"] = rotate
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
