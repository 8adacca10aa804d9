"""Corpora, reference runs and local Ray clusters for the tests of ``streampose.distributed``.

Clusters are small on purpose (the CI machine has 2 cores and is shared):
every node gets a 100 MB object store, no dashboard, and fixtures always
shut them down.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from streampose.config import PipelineConfig, load_pipeline
from streampose.runtime import run_pipeline

REPO_ROOT = Path(__file__).resolve().parents[1]
#: light YOLOX detector + IoU tracker: deterministic on CPU and fast enough for 2 cores.
TEST_PIPELINE = REPO_ROOT / "tests" / "pipelines" / "detect_light.toml"
LONG_VIDEO = "one-by-one-person-detection.mp4"
OBJECT_STORE_BYTES = 100 * 1024 * 1024


def detect_pipeline() -> PipelineConfig:
    return load_pipeline(TEST_PIPELINE)


def write_cuts(source: Path, cuts: dict[Path, tuple[int, int]]) -> None:
    """Re-encode frames ``[first, first + count)`` of ``source`` into each path (H.264, same rate)."""
    import av
    from fractions import Fraction

    last = max(first + count for first, count in cuts.values())
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or 10)
        frames = []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= last:
                break
    for path, (first, count) in cuts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), mode="w") as out:
            video = out.add_stream("libx264", rate=rate)
            video.width, video.height = frames[0].shape[1], frames[0].shape[0]
            video.pix_fmt = "yuv420p"
            video.options = {"preset": "ultrafast", "g": "10"}
            for image in frames[first:first + count]:
                for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    out.mux(packet)
            for packet in video.encode():
                out.mux(packet)


def make_corpus(root: Path, media: Path, long_frames: int = 120) -> dict[str, Path]:
    """A corpus of 12 good items and one corrupt file; returns ``{label: path}``.

    Items: six H.264 cuts of the long video (two of ``long_frames`` frames, for
    the fault tests), copies of two short videos under the same base name in
    different folders, two GIFs, and two image folders.
    """
    source = media / LONG_VIDEO
    cuts = {root / "cuts" / f"cut{i}.mp4": (200 * i, 30) for i in range(4)}
    cuts[root / "long" / "a" / "clip.mp4"] = (600, long_frames)
    cuts[root / "long" / "b" / "clip.mp4"] = (900, long_frames)
    write_cuts(source, cuts)
    (root / "same" / "x").mkdir(parents=True)
    (root / "same" / "y").mkdir(parents=True)
    shutil.copy(media / "soccer-mpeg4.mp4", root / "same" / "x" / "video.mp4")
    shutil.copy(media / "street-demo.mp4", root / "same" / "y" / "video.mp4")
    (root / "gifs").mkdir()
    shutil.copy(media / "classroom.gif", root / "gifs" / "classroom.gif")
    shutil.copy(media / "face-demographics-walking.gif", root / "gifs" / "walking.gif")
    (root / "images" / "photos").mkdir(parents=True)
    shutil.copy(media / "bus.jpg", root / "images" / "photos" / "bus.jpg")
    shutil.copy(media / "zidane.jpg", root / "images" / "photos" / "zidane.jpg")
    frames_dir = root / "images" / "frames"
    frames_dir.mkdir()
    import av

    with av.open(str(source)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= 8:
                break
            frame.to_image().save(frames_dir / f"frame{i}.png")
    # A truncated copy: FFmpeg cannot read it (its index is at the end).
    (root / "broken").mkdir()
    (root / "broken" / "truncated.mp4").write_bytes(source.read_bytes()[:40_000])
    paths = {p.relative_to(root).as_posix(): p for p in cuts}
    paths.update({"same/x/video.mp4": root / "same" / "x" / "video.mp4",
                  "same/y/video.mp4": root / "same" / "y" / "video.mp4",
                  "gifs/classroom.gif": root / "gifs" / "classroom.gif",
                  "gifs/walking.gif": root / "gifs" / "walking.gif",
                  "images/photos": root / "images" / "photos", "images/frames": frames_dir,
                  "broken/truncated.mp4": root / "broken" / "truncated.mp4"})
    return paths


def single_machine_run(pipeline: PipelineConfig, spec: str, output: Path) -> Path:
    """The plain single-machine run of one source into ``output`` (what ``run_stream.py --inline`` does)."""
    run_pipeline(pipeline, [spec], [{"type": "jsonl_writer", "path": str(output)}], inline=True, progress=False,
                 handle_signals=False)
    return output
