"""Sources on real media (../shared/media) and media made here: frames, timestamps, start events, errors."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
from iohelpers import make_video, pattern

from streampose.errors import SourceError
from streampose.io import SourceOptions, open_source
from streampose.io.image_sources import ImageFolderSource, natural_key


def read_all(spec: str, **kw) -> tuple[object, list[np.ndarray], list[float | None]]:
    with open_source(spec, kw.pop("source_id", 0), SourceOptions(**kw)) as source:
        images, times = [], []
        for image, pts_s in source.frames():
            images.append(image)
            times.append(pts_s)
        return source, images, times


def check_bgr(image: np.ndarray, width: int, height: int) -> None:
    assert image.dtype == np.uint8 and image.shape == (height, width, 3) and image.flags.c_contiguous


# ---------------------------------------------------------------- options

@pytest.mark.parametrize("field, value", [
    ("open_timeout_s", 0), ("read_timeout_s", -1.0), ("reconnect_attempts", -1), ("backoff_initial_s", 0.0),
    ("analyzeduration_s", 61.0), ("rtsp_transport", "http"), ("webcam_size", "640*480"), ("webcam_fps", -5.0),
    ("read_timeout_s", "5"), ("reconnect_attempts", 2.5), ("reconnect_attempts", True),
])
def test_source_options_reject_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SourceOptions(**{field: value})


def test_source_options_backoff_doubles_up_to_the_cap():
    options = SourceOptions(backoff_initial_s=0.5, backoff_max_s=3.0)
    assert [options.backoff_s(k) for k in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError, match="backoff_max_s"):
        SourceOptions(backoff_initial_s=2.0, backoff_max_s=1.0)


# ---------------------------------------------------------------- files

def test_video_file_every_frame_in_order_with_container_times(shared_dir):
    spec = str(shared_dir / "media" / "one-by-one-person-detection.mp4")
    with open_source(spec, 3) as source:
        event = source.start_event
        assert (event.source_id, event.source_name, event.width, event.height) == (3, spec, 768, 432)
        assert event.fps == 10.0 and event.frame_count == 1394 and not event.live and event.audio_path is None
        assert source.live is False
        times = []
        for i, (image, pts_s) in enumerate(source.frames()):
            if i == 0:
                check_bgr(image, 768, 432)
            times.append(pts_s)
        assert len(times) == 1394
        np.testing.assert_allclose(times, np.arange(1394) / 10.0, atol=1e-6)
        assert source.stats == {"frames_decoded": 1394, "reconnects": 0, "connect_failures": 0, "decode_errors": 0}


@pytest.mark.parametrize("name, width, height, frames", [
    ("classroom.gif", 480, 270, 45), ("face-demographics-walking.gif", None, None, 35),
    ("street-demo.mp4", 960, 540, 5), ("soccer-mpeg4.mp4", 1280, 720, 5),
])
def test_real_media_decodes(shared_dir, name, width, height, frames):
    source, images, times = read_all(str(shared_dir / "media" / name))
    assert len(images) == frames == source.start_event.frame_count
    if width:
        check_bgr(images[0], width, height)
    assert all(b > a for a, b in zip(times, times[1:])), "container timestamps increase"


def test_generated_video_pixels_and_audio_path(tmp_path):
    path = make_video(tmp_path / "clip.mp4", frames=12, fps=8, audio=True)
    source, images, times = read_all(str(path))
    assert source.start_event.audio_path == str(path.resolve())
    assert source.start_event.fps == 8.0 and len(images) == 12
    np.testing.assert_allclose(times, np.arange(12) / 8.0, atol=1e-6)
    # lossy, but frame i must look like pattern i and unlike pattern i+1
    for i in (0, 5, 11):
        error = np.abs(images[i].astype(int) - pattern(i, 64, 48)).mean()
        assert error < 12, error
        assert error < np.abs(images[i].astype(int) - pattern(i + 1, 64, 48)).mean()


def test_image_file(shared_dir):
    source, images, times = read_all(str(shared_dir / "media" / "bus.jpg"))
    event = source.start_event
    assert (event.width, event.height, event.frame_count, event.fps, event.live) == (810, 1080, 1, None, False)
    assert times == [None] and len(images) == 1
    check_bgr(images[0], 810, 1080)
    np.testing.assert_array_equal(images[0], cv2.imread(str(shared_dir / "media" / "bus.jpg")))


def test_folder_of_mixed_sizes_in_natural_order(tmp_path):
    sizes = {"img10.png": (40, 30), "img2.png": (64, 20), "IMG1.png": (30, 50), "img3.jpg": (16, 16)}
    for i, (name, (w, h)) in enumerate(sizes.items()):
        cv2.imwrite(str(tmp_path / name), pattern(i, w, h))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    source, images, times = read_all(str(tmp_path))
    assert [p.name for p in source.paths] == ["IMG1.png", "img2.png", "img3.jpg", "img10.png"]
    event = source.start_event
    assert (event.width, event.height, event.frame_count) == (64, 50, 4)  # the largest width and height
    assert [im.shape[:2] for im in images] == [(50, 30), (20, 64), (16, 16), (30, 40)]  # each at its own size
    np.testing.assert_array_equal(images[0], pattern(2, 30, 50))  # PNG: lossless
    assert times == [None] * 4 and source.stats["frames_decoded"] == 4


def test_folder_size_follows_exif_orientation(tmp_path):
    from PIL import Image

    image = Image.fromarray(np.zeros((20, 60, 3), np.uint8))  # stored 60 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    source, images, _ = read_all(str(tmp_path))
    assert images[0].shape[:2] == (60, 20)  # OpenCV applies the orientation
    assert (source.start_event.width, source.start_event.height) == (20, 60)


def test_natural_key():
    assert sorted(["a10", "a2", "A1", "b"], key=natural_key) == ["A1", "a2", "a10", "b"]


def test_lavfi_is_a_paced_live_source():
    start = time.monotonic()
    source, images, times = read_all("lavfi:testsrc2=size=96x64:rate=30:duration=0.5,realtime")
    elapsed = time.monotonic() - start
    assert source.live and source.start_event.live and source.start_event.frame_count is None
    assert len(images) == 15
    check_bgr(images[0], 96, 64)
    assert elapsed >= 0.4, "realtime paces the frames"
    assert all(b > a for a, b in zip(times, times[1:])) and times[-1] >= 0.35  # capture clock


def test_http_media_file_is_read_like_a_video_file(tmp_path):
    make_video(tmp_path / "remote.mp4", frames=15, fps=10)

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = partial(QuietHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/remote.mp4"
            source, images, times = read_all(url, open_timeout_s=5, read_timeout_s=5)
        finally:
            server.shutdown()
    assert not source.live and source.start_event.frame_count == 15 and len(images) == 15
    np.testing.assert_allclose(times, np.arange(15) / 10.0, atol=1e-6)


# ---------------------------------------------------------------- errors

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _corrupt_inputs(tmp_path: Path, shared_dir: Path) -> dict[str, str]:
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    text = tmp_path / "notes.mkv"
    text.write_text("just some text\n" * 100)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    moov_last = make_video(tmp_path / "moov_last.mp4", frames=30, faststart=False)
    cut_index = tmp_path / "cut_index.mp4"  # index (moov) at the end: lost
    cut_index.write_bytes(moov_last.read_bytes()[: moov_last.stat().st_size // 2])
    real = (shared_dir / "media" / "one-by-one-person-detection.mp4").read_bytes()
    cut_data = tmp_path / "cut_data.mp4"  # index at the start: the data stops part way
    cut_data.write_bytes(real[: len(real) // 3])
    empty_dir = tmp_path / "empty_dir"
    empty_dir.mkdir()
    bad_image = tmp_path / "broken.jpg"
    bad_image.write_bytes(b"\xff\xd8 not really a jpeg")
    paths = {"noise": noise, "text": text, "empty": empty, "cut_index": cut_index, "cut_data": cut_data,
             "empty_dir": empty_dir, "bad_image": bad_image}
    return {key: str(path) for key, path in paths.items()}


@pytest.mark.parametrize("key, message", [
    ("missing", "not found; give an image, a folder of images, a video file"),
    ("noise", "cannot read .* as a video or image"),
    ("text", "cannot read .* as a video or image"),
    ("empty", "cannot read .* as a video or image"),
    ("cut_index", "cannot read .* as a video or image .*corrupt/truncated"),
    ("cut_data", r"is truncated: decoded \d+ of its 1394 frames"),
    ("empty_dir", "has no images"),
    ("bad_image", "cannot be decoded"),
    ("ftp", "unknown source form 'ftp://example.com/a.mp4'"),
    ("webcam_index", "no webcam 0: /dev/video0 does not exist"),
    ("webcam_prefixed", "no webcam 7: /dev/video7 does not exist"),
    ("webcam_bad", "expected webcam:<index>"),
    ("lavfi_bad", "lavfi graph .* check the graph"),
    ("rtsp_unreachable", r"unreachable after 3 attempts \(Connection refused\)"),
    ("http_unreachable", r"unreachable after 3 attempts \(Connection refused\)"),
])
def test_bad_sources_are_one_line_source_errors(tmp_path, shared_dir, key, message):
    specs = _corrupt_inputs(tmp_path, shared_dir)
    port = _free_port()
    specs.update(missing=str(tmp_path / "nope.mp4"), ftp="ftp://example.com/a.mp4", webcam_index="0",
                 webcam_prefixed="webcam:7", webcam_bad="webcam:front", lavfi_bad="lavfi:nosuchfilter=1",
                 rtsp_unreachable=f"rtsp://127.0.0.1:{port}/live", http_unreachable=f"http://127.0.0.1:{port}/a.mp4")
    options = SourceOptions(reconnect_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.02, open_timeout_s=2)
    with pytest.raises(SourceError, match=message) as info:
        with open_source(specs[key], 0, options) as source:
            for _ in source.frames():
                pass
    assert "\n" not in str(info.value)


def test_corrupt_packets_are_skipped_and_counted(tmp_path):
    import av

    path = make_video(tmp_path / "clip.mp4", frames=20)
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    for index in (5, 9, 13):  # break the NAL length prefix of three packets
        position = packets[index][0]
        data[position:position + 4] = b"\xff\xff\xff\xff"
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    source, images, _ = read_all(str(damaged))
    assert source.stats["decode_errors"] == 3
    assert source.stats["frames_decoded"] == len(images) == 17


def test_folder_listing_is_fixed_at_open(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), pattern(0, 8, 8))
    source = ImageFolderSource("x", tmp_path, 0)
    (tmp_path / "b.png").write_bytes(cv2.imencode(".png", pattern(1, 8, 8))[1].tobytes())
    assert len(list(source.frames())) == 1  # the listing is fixed at open: frame numbers stay stable
