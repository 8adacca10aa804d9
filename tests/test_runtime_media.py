"""Real media through the process pipeline: every frame of a real video once, in order,
with its exact pixels; a folder of mixed-size images likewise."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from runtime_helpers import frames_of, pipeline, read_records
from streampose.runtime import run_pipeline

VIDEO = "media/one-by-one-person-detection.mp4"


def _crc(image: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(image).data)


def test_every_frame_of_a_real_video_once_in_order(tmp_path, shared_dir):
    import av

    out = tmp_path / "rec.jsonl"
    p = pipeline(("sink", [{"type": "test_record", "path": str(out), "checksum": True}], 4))
    result = run_pipeline(p, [str(shared_dir / VIDEO)], progress=False)
    assert result.exit_code == 0
    frames = frames_of(read_records(out), 0)
    assert [f["index"] for f in frames] == list(range(1394))
    with av.open(str(shared_dir / VIDEO)) as container:
        container.streams.video[0].thread_type = "AUTO"
        expected = [_crc(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]
    assert [f["crc"] for f in frames] == expected  # the exact pixels of each frame, through the ring
    assert result.stats.frames_done == {str(shared_dir / VIDEO): 1394} and result.stats.dropped == 0
    assert max(f["batch"] for f in frames) > 1  # the stage did batch when frames were waiting


@pytest.mark.parametrize("inline", [False, True], ids=["processes", "inline"])
def test_folder_of_mixed_sizes(tmp_path, inline):
    import cv2

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    sizes = [(120, 160), (240, 320), (90, 200), (300, 100), (240, 320)]
    images = {}
    for i, (h, w) in enumerate(sizes):
        image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"img{i + 1}.png"), image)
        images[i] = image
    out = tmp_path / "rec.jsonl"
    p = pipeline(("sink", [{"type": "test_record", "path": str(out), "checksum": True}]))
    result = run_pipeline(p, [str(folder)], progress=False, inline=inline)
    records = read_records(out)
    start = next(r for r in records if r["event"] == "start")
    assert (start["width"], start["height"]) == (320, 300)  # the largest width and height
    frames = frames_of(records, 0)
    assert [f["index"] for f in frames] == list(range(5))
    assert [tuple(f["shape"]) for f in frames] == [(h, w, 3) for h, w in sizes]
    assert [f["crc"] for f in frames] == [_crc(images[i]) for i in range(5)]
    assert result.stats.total_frames == 5


@pytest.mark.parametrize("live", [True, False], ids=["live-lavfi", "offline-video"])
def test_slow_consumer_on_real_sources_live_drops_offline_does_not(tmp_path, shared_dir, live):
    out = tmp_path / "rec.jsonl"
    n = 20
    p = pipeline(("slow", [{"type": "test_sleep", "seconds": 0.1}]),
                 ("sink", [{"type": "test_record", "path": str(out)}]))
    source = "lavfi:testsrc2=size=320x240:rate=50,realtime" if live else str(shared_dir / VIDEO)
    result = run_pipeline(p, [source], max_frames=n, progress=False)
    indexes = [f["index"] for f in frames_of(read_records(out), 0)]
    stats = result.stats
    assert indexes == sorted(set(indexes))
    if live:
        # 50 frames/s into a 10 frames/s consumer: most are dropped and counted, latency stays bounded
        assert stats.dropped > n // 2 and stats.dropped + len(indexes) == n
        assert stats.latency.percentile(99) < 1000  # offline, the 20th frame would wait ~2 s
    else:
        assert indexes == list(range(n)) and stats.dropped == 0
