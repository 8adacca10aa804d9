"""Media made in the tests, and a driver that feeds a source through sink steps without the runtime."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import cv2  # noqa: F401 - before av: see streampose.io.pyav
import av
import numpy as np

from streampose.records import EndOfStream, Frame, FramePacket, StreamStart


def pattern(index: int, width: int, height: int) -> np.ndarray:
    """A BGR frame that differs from frame to frame (moving gradient + index-coded block)."""
    x = np.arange(width, dtype=np.uint16)[None, :]
    y = np.arange(height, dtype=np.uint16)[:, None]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = (x + 4 * index) % 256
    image[..., 1] = (y + 8 * index) % 256
    image[..., 2] = (x + y) % 256
    image[: height // 4, : width // 4] = (index * 37) % 256
    return image


def make_video(path: Path, frames: int = 20, fps: int = 10, width: int = 64, height: int = 48,
               audio: bool = False, faststart: bool = True) -> Path:
    """An H.264 video (optionally with a mono AAC sine track as long as the video) written with PyAV."""
    options = {"movflags": "+faststart"} if faststart and path.suffix == ".mp4" else {}
    with av.open(str(path), "w", options=options) as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast"}
        if audio:
            sound = container.add_stream("aac", rate=16000)
            sound.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(i, width, height), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio:
            rate = 16000
            total = rate * frames // fps
            samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / rate)).astype(np.float32)
            for start in range(0, total, 1024):
                chunk = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = rate, start, Fraction(1, rate)
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path


def audio_packets(path: Path) -> list[bytes]:
    """The payloads of the first audio stream's packets, in order."""
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def video_frames(path: Path) -> tuple[list[np.ndarray], list[float], av.container.InputContainer]:
    """Decoded BGR frames and their times of a video file, plus its (closed) container for metadata."""
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
        return [f.to_ndarray(format="bgr24") for f in decoded], [f.time for f in decoded], container


def feed(steps, source, source_id: int = 0, end: bool = True, max_frames: int | None = None) -> int:
    """Drive ``steps`` with ``source``'s frames as the runtime would (start, frames, end); returns frames sent."""
    event = source.start_event
    for step in steps:
        step.start_of_stream(event)
    sent = 0
    for image, pts_s in source.frames():
        packet = FramePacket(source_id=event.source_id, source_name=event.source_name, index=sent, pts_s=pts_s,
                             shape=image.shape, capture_time=time.monotonic())
        frames = [Frame(packet, image)]
        for step in steps:
            frames = step.process(frames)
        sent += 1
        if max_frames is not None and sent >= max_frames:
            break
    if end:
        for step in steps:
            step.end_of_stream(EndOfStream(event.source_id, event.source_name, sent))
    return sent


def start_event(source_id: int = 0, name: str = "test", width: int = 64, height: int = 48, fps: float | None = 10.0,
                frame_count: int | None = None, audio_path: str | None = None) -> StreamStart:
    return StreamStart(source_id=source_id, source_name=name, width=width, height=height, fps=fps,
                       frame_count=frame_count, live=False, audio_path=audio_path)
