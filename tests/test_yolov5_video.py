"""YOLOv5n on ../shared/media/one-by-one-person-detection.mp4: an empty room until ~frame 60, then people.

The official model scores nothing in the empty room (frames 0-50) and finds
the first person from about frame 60 on. Checked twice: the detector on
decoded frames (a sample, to stay fast), and ``run_stream.py`` end to end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streampose.io.results import read_jsonl

REPO = Path(__file__).resolve().parents[1]
VIDEO = "one-by-one-person-detection.mp4"
EMPTY_ROOM = range(0, 51)
PEOPLE_FROM = 70
LAST = 100


@pytest.fixture(scope="module")
def sampled_frames(shared_dir):
    av = pytest.importorskip("av")
    wanted = set(range(0, 51, 5)) | set(range(PEOPLE_FROM, LAST + 1, 6))
    frames = {}
    with av.open(str(shared_dir / "media" / VIDEO)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                frames[index] = frame.to_ndarray(format="bgr24")
            if index >= LAST:
                break
    return frames


def test_detector_on_decoded_frames(shared_dir, sampled_frames):
    from streampose.models.yolov5.detector import YoloV5Detector

    detector = YoloV5Detector.from_checkpoint(shared_dir / "weights" / "yolov5n.pt", device="cpu")
    indices = sorted(sampled_frames)
    results = {}
    for start in range(0, len(indices), 6):
        batch = indices[start:start + 6]
        results.update(zip(batch, detector.detect([sampled_frames[i] for i in batch])))
    empty = {i: len(d) for i, d in results.items() if i in EMPTY_ROOM}
    assert len(empty) == 11 and not any(empty.values()), f"boxes in the empty room: {empty}"
    people = {i: d for i, d in results.items() if i >= PEOPLE_FROM}
    assert len(people) == 6
    for index, found in people.items():
        assert len(found) >= 1 and found.scores.max() > 0.5, f"frame {index}: no confident person"
        assert set(found.class_ids.tolist()) == {0}


@pytest.mark.slow
def test_run_stream_end_to_end(shared_dir, tmp_path):
    """The must-show command: ``run_stream.py --source VIDEO --det-model yolov5n.pt``, 90 frames to JSON lines."""
    output = tmp_path / "boxes.jsonl"
    command = [sys.executable, str(REPO / "run_stream.py"), "--source", str(shared_dir / "media" / VIDEO),
               "--pipeline", "detect_yolov5n", "--det-model", str(shared_dir / "weights" / "yolov5n.pt"),
               "--img-size", "320", "--device", "cpu", "--max-frames", "90", "--output", str(output),
               "--no-progress", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    frames = {f.index: f for f in read_jsonl(output)}
    assert sorted(frames) == list(range(90))
    boxes = {i: len(f.detections) for i, f in frames.items()}
    assert all(boxes[i] == 0 for i in EMPTY_ROOM), {i: n for i, n in boxes.items() if i in EMPTY_ROOM and n}
    assert all(boxes[i] >= 1 for i in range(PEOPLE_FROM, 90)), {i: n for i, n in boxes.items() if i >= PEOPLE_FROM}
    first = min(i for i, n in boxes.items() if n)
    assert 55 <= first <= PEOPLE_FROM
    assert all(f.detections.class_ids.tolist() == [0] * len(f.detections) for f in frames.values())
