"""Long videos in parallel: time chunks split at keyframes, then stitched into one result.

Planning reads the video's packets without decoding them (fast) to learn each
frame's timestamp and which frames are keyframes. Frame ``i`` is the ``i``-th
timestamp in presentation order, which is the index a plain run gives it.
The frames are split into ``n`` owned ranges whose starts are keyframes; each
chunk is *read* from an earlier keyframe, about ``overlap_s`` seconds before
its owned start, so the tracker has warmed up by the time the chunk's own
frames begin.

A chunk is opened with :func:`open_chunk_source` from a ``chunk:`` spec; it
seeks to its read start (a keyframe, so decoding is exact), yields the frames
up to its stop, and names itself after the original file, so its JSON lines
differ from a plain run's only in the frame index (local) and track IDs.

Stitching (:func:`stitch_chunks`) keeps each chunk's owned frames, in order,
with their global index, and renames each chunk's track IDs to the previous
chunk's by matching boxes on the overlapping frames (both chunks saw the same
frames with the same per-frame detections); tracks with no partner get new
IDs. The stitched file has every frame once, in order, checked against the
planned timestamps.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from ..records import StreamStart

CHUNK_PREFIX = "chunk:"


@dataclass(frozen=True)
class VideoIndex:
    """A video's frame timestamps (stream time base units, presentation order) and keyframe indices."""

    pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    time_base: float


@dataclass(frozen=True)
class Chunk:
    """Frames ``[read_from, stop)`` are decoded; ``[first, stop)`` are this chunk's own output."""

    read_from: int
    first: int
    stop: int

    def spec(self, path: str) -> str:
        return f"{CHUNK_PREFIX}{self.read_from}:{self.first}:{self.stop}:{path}"


def index_video(path: str) -> VideoIndex:
    """Timestamps and keyframes of the first video stream, from its packets (no decoding)."""
    from ..io.pyav import load_av

    av = load_av()
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise SourceError(f"{path!r} has no video stream; only videos can be split into chunks")
            stream = container.streams.video[0]
            packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.pts is not None]
            time_base = float(stream.time_base)
    except av.error.FFmpegError as e:
        raise SourceError(f"cannot read {path!r} to split it ({e}); check it plays") from e
    packets.sort()
    return VideoIndex(tuple(p for p, _ in packets), tuple(i for i, (_, key) in enumerate(packets) if key),
                      time_base)


def plan_chunks(index: VideoIndex, n: int, overlap_s: float) -> list[Chunk]:
    """At most ``n`` chunks over all frames; owned starts and read starts are keyframes.

    Fewer chunks come back when the video has too few keyframes; a read start
    never goes back past the previous chunk's owned start.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if overlap_s < 0:
        raise ValueError(f"overlap_s must be >= 0, got {overlap_s}")
    total = len(index.pts)
    keys = np.asarray(index.keyframes or (0,))
    starts = [0]
    for k in range(1, n):
        target = k * total / n
        key = int(keys[np.argmin(np.abs(keys - target))])
        if key > starts[-1]:
            starts.append(key)
    chunks = []
    for k, first in enumerate(starts):
        stop = starts[k + 1] if k + 1 < len(starts) else total
        read_from = first
        if k > 0:
            earliest = index.pts[first] - overlap_s / index.time_base
            candidates = [key for key in index.keyframes if starts[k - 1] <= key <= first and index.pts[key] <= earliest]
            read_from = max(candidates) if candidates else starts[k - 1]
        chunks.append(Chunk(read_from, first, stop))
    return chunks


def parse_chunk_spec(spec: str) -> tuple[Chunk, str]:
    if not spec.startswith(CHUNK_PREFIX):
        raise SourceError(f"not a chunk source: {spec!r}")
    try:
        read_from, first, stop, path = spec[len(CHUNK_PREFIX):].split(":", 3)
        return Chunk(int(read_from), int(first), int(stop)), path
    except ValueError as e:
        raise SourceError(f"bad chunk source {spec!r}: expected chunk:READ:FIRST:STOP:PATH") from e


class ChunkSource:
    """Frames ``[read_from, stop)`` of a video file, named after the file (an offline source)."""

    live = False

    def __init__(self, spec: str, source_id: int) -> None:
        from ..io.video_source import VideoFileSource

        self.chunk, self.path = parse_chunk_spec(spec)
        self._index = index_video(self.path)
        if not 0 <= self.chunk.read_from <= self.chunk.first < self.chunk.stop <= len(self._index.pts):
            raise SourceError(f"chunk {spec!r} is outside the video's {len(self._index.pts)} frames")
        self._video = VideoFileSource(self.path, Path(self.path), source_id)
        start = self._video.start_event
        self.start_event = StreamStart(source_id=source_id, source_name=self.path, width=start.width,
                                       height=start.height, fps=start.fps,
                                       frame_count=self.chunk.stop - self.chunk.read_from, live=False)
        self.stats = {"frames_decoded": 0}

    def frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        from ..io.video_source import decode_video, to_bgr

        video = self._video
        video._first = None  # the file's first frame was read by the opener; seeking starts afresh
        pts = self._index.pts
        container, stream = video._container, video._stream
        container.seek(pts[self.chunk.read_from], stream=stream, backward=True, any_frame=False)
        begin, end = pts[self.chunk.read_from], pts[self.chunk.stop - 1]
        expected = self.chunk.read_from
        for frame in decode_video(container, stream, video._stats, self.path):
            if frame.pts is None or frame.pts < begin:
                continue
            if frame.pts != pts[expected]:
                raise SourceError(f"{self.path!r}: frame {expected} decoded with timestamp {frame.pts}, "
                                  f"expected {pts[expected]}; the file cannot be split exactly")
            self.stats["frames_decoded"] += 1
            yield to_bgr(frame), frame.time
            expected += 1
            if frame.pts >= end:
                return
        raise SourceError(f"{self.path!r}: chunk ended at frame {expected}, expected {self.chunk.stop}")

    def close(self) -> None:
        self._video.close()


def open_chunk_source(spec: str, source_id: int, options: Any = None) -> ChunkSource:
    """The run_pipeline opener for ``chunk:READ:FIRST:STOP:PATH`` specs."""
    return ChunkSource(spec, source_id)


def _records(line: dict[str, Any]) -> list[dict[str, Any]]:
    return (line.get("detections") or []) + (line.get("poses") or [])


def _id_map(previous: dict[int, dict[str, Any]], current: dict[int, dict[str, Any]]) -> dict[int, int]:
    """Track IDs of ``current`` → IDs of ``previous``, by votes of equal boxes on shared frames (one to one)."""
    votes: Counter[tuple[int, int]] = Counter()
    for index, line in current.items():
        before = previous.get(index)
        if before is None:
            continue
        boxes = {tuple(r["box"]): r.get("track_id", -1) for r in _records(before)}
        for record in _records(line):
            old = boxes.get(tuple(record["box"]), -1)
            new = record.get("track_id", -1)
            if old is not None and new is not None and old >= 0 and new >= 0:
                votes[(new, old)] += 1
    mapping: dict[int, int] = {}
    used: set[int] = set()
    for (new, old), _ in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0])):
        if new not in mapping and old not in used:
            mapping[new] = old
            used.add(old)
    return mapping


def stitch_chunks(chunks: list[Chunk], chunk_files: list[Path], index: VideoIndex, output: Path) -> int:
    """Write the chunks' owned frames, in order, with global indices and consistent track IDs.

    Returns the frame count. Raises SourceError when a chunk's lines do not
    cover exactly its frames (a missing or duplicated frame). ``output`` is
    written under a temporary name and renamed when complete.
    """
    temporary = output.with_name(f".{output.name}.stitch")
    next_id = 0
    previous_lines: dict[int, dict[str, Any]] = {}
    written = 0
    with open(temporary, "w", encoding="utf-8", newline="") as out:
        for chunk, path in zip(chunks, chunk_files):
            lines: dict[int, dict[str, Any]] = {}
            with open(path, encoding="utf-8") as f:
                for local, text in enumerate(f):
                    line = json.loads(text)
                    global_index = chunk.read_from + line["frame"]
                    if line["frame"] != local or global_index >= chunk.stop:
                        raise SourceError(f"chunk {chunk} of {output.name}: line {local} is frame {line['frame']}")
                    line["frame"] = global_index
                    lines[global_index] = line
            if sorted(lines) != list(range(chunk.read_from, chunk.stop)):
                raise SourceError(f"chunk {chunk} of {output.name}: has {len(lines)} frames, expected "
                                  f"{chunk.stop - chunk.read_from}")
            mapping = _id_map(previous_lines, lines)
            for new in sorted({r.get("track_id", -1) for line in lines.values() for r in _records(line)}
                              - set(mapping) - {-1, None}):
                mapping[new] = next_id
                next_id += 1
            next_id = max([next_id] + [old + 1 for old in mapping.values()])
            for global_index in range(chunk.first, chunk.stop):
                line = lines[global_index]
                for record in _records(line):
                    if record.get("track_id") is not None and record["track_id"] >= 0:
                        record["track_id"] = mapping[record["track_id"]]
                out.write(json.dumps(line, separators=(",", ":"), allow_nan=False) + "\n")
                written += 1
            previous_lines = {i: lines[i] for i in range(chunk.first, chunk.stop)}
    if written != len(index.pts):
        temporary.unlink()
        raise SourceError(f"{output.name}: stitched {written} frames, the video has {len(index.pts)}")
    os.replace(temporary, output)
    return written
