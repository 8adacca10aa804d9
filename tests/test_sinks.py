"""Sinks called directly (no runtime): video with audio copy, JSON lines, CSV, image folders, output specs."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from iohelpers import audio_packets, feed, make_video, pattern, start_event

from streampose.errors import ConfigError, SinkError
from streampose.io import open_source, read_csv, read_jsonl, sink_specs
from streampose.io.results import CSV_COLUMNS, CSV_PERSON_COLUMNS, csv_columns
from streampose.keypoint_sets import COCO_17, CROWDPOSE_14
from streampose.records import Detections, EndOfStream, Frame, FramePacket, Poses
from streampose.step import build_step


def leftovers(folder: Path) -> list[str]:
    """Hidden partial files left in ``folder``."""
    return sorted(p.name for p in folder.rglob(".*partial*"))


def decode(path: Path):
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return ([f.to_ndarray(format="bgr24") for f in frames], [f.time for f in frames],
                (stream.codec_context.name, stream.width, stream.height))


def first_audio_s(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        packet = next(p for p in container.demux(audio=0) if p.size)
        return float(packet.pts * packet.time_base)


# ---------------------------------------------------------------- output specs

@pytest.mark.parametrize("name, kind", [
    ("a.mp4", "video_writer"), ("a.MKV", "video_writer"), ("a.mov", "video_writer"), ("a.avi", "video_writer"),
    ("a.webm", "video_writer"), ("r.jsonl", "jsonl_writer"), ("r.csv", "csv_writer"), ("frames/", "image_writer"),
])
def test_sink_specs_by_extension(tmp_path, name, kind):
    output = str(tmp_path / name) + ("/" if name.endswith("/") else "")
    assert sink_specs([output], show=False) == [{"type": kind, "path": output}]
    assert not (tmp_path / "frames").exists(), "nothing is created before the run"


def test_sink_specs_existing_folder_several_outputs_and_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    outputs = [str(tmp_path / "o.mp4"), str(tmp_path), str(tmp_path / "o.jsonl")]
    specs = sink_specs(outputs, show=True, num_sources=2)
    assert [s["type"] for s in specs] == ["video_writer", "image_writer", "jsonl_writer", "display"]
    assert all(s["sources"] == 2 for s in specs[:3])
    for spec in specs:  # every spec builds into a step
        assert build_step(spec).type_name == spec["type"]


@pytest.mark.parametrize("output, message", [
    ("{tmp}/notes.txt", "unknown extension; use one of .avi .bmp .csv .jpeg .jpg .json .jsonl .mkv .mov .mp4"),
    ("{tmp}/missing/out.mp4", "folder .*missing' does not exist"),
    ("{tmp}/afile.txt/out.jsonl", "is not a folder"),
    ("{tmp}/afile.txt/frames/", "is a file, not a folder"),
    ("/proc/out.mp4", "is not writable"),
    ("/proc/frames/", "is not writable"),
])
def test_sink_specs_rejects_unwritable_or_unknown_outputs(tmp_path, output, message):
    (tmp_path / "afile.txt").write_text("x")
    with pytest.raises(SinkError, match=message) as info:
        sink_specs([output.format(tmp=tmp_path)], show=False)
    assert "\n" not in str(info.value)


def test_sink_specs_rejects_duplicates_and_show_without_display(tmp_path, monkeypatch):
    with pytest.raises(SinkError, match="given twice"):
        sink_specs([str(tmp_path / "a.csv"), str(tmp_path / "." / "a.csv")], show=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(SinkError, match="--show needs a display"):
        sink_specs([], show=True)
    with pytest.raises(SinkError, match="cannot open a window"):
        build_step({"type": "display"}).start()


@pytest.mark.parametrize("spec, key", [
    ({"type": "video_writer", "path": "o.mp4", "crf": 60}, "crf"),
    ({"type": "video_writer", "path": "o.mp4", "preset": "turbo"}, "preset"),
    ({"type": "video_writer", "path": "o.txt"}, "path"),
    ({"type": "video_writer", "path": "o.mp4", "fps": 0}, "fps"),
    ({"type": "image_writer", "path": "d/", "format": "gif"}, "format"),
    ({"type": "jsonl_writer", "path": "o.jsonl", "sources": 0}, "sources"),
    ({"type": "csv_writer", "path": "o.csv", "colour": 1}, "colour"),
])
def test_sink_options_are_validated(spec, key):
    with pytest.raises(ConfigError, match=key):
        build_step(spec)


# ---------------------------------------------------------------- video

@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".mov"])
def test_video_keeps_frames_timestamps_and_bit_identical_audio(tmp_path, ext):
    clip = make_video(tmp_path / "clip.mp4", frames=20, fps=10, audio=True)
    out = tmp_path / f"out{ext}"
    step = build_step({"type": "video_writer", "path": str(out), "preset": "ultrafast"})
    step.start()
    with open_source(str(clip), 0) as source:
        assert feed([step], source) == 20
    step.close()
    assert out.exists() and leftovers(tmp_path) == []
    source_audio = audio_packets(clip)
    assert len(source_audio) > 20 and audio_packets(out) == source_audio  # every packet, byte for byte
    images, times, (codec, width, height) = decode(out)
    assert (codec, width, height, len(images)) == ("h264", 64, 48, 20)
    # the source's timestamps, and audio/video sync (Matroska shifts both tracks by the AAC priming delay)
    np.testing.assert_allclose(np.array(times) - times[0], np.arange(20) / 10.0, atol=2e-3)
    _, source_times, _ = decode(clip)
    assert times[0] - first_audio_s(out) == pytest.approx(source_times[0] - first_audio_s(clip), abs=1e-3)
    for i in (0, 19):
        assert np.abs(images[i].astype(int) - pattern(i, 64, 48)).mean() < 12


def test_video_from_real_media_keeps_every_frame(shared_dir, tmp_path):
    out = tmp_path / "street.mp4"
    step = build_step({"type": "video_writer", "path": str(out), "preset": "ultrafast"})
    step.start()
    with open_source(str(shared_dir / "media" / "classroom.gif"), 0) as source:
        feed([step], source)
    step.close()
    images, times, (codec, width, height) = decode(out)
    _, source_times, _ = decode(shared_dir / "media" / "classroom.gif")
    assert (codec, width, height, len(images)) == ("h264", 480, 270, 45)
    np.testing.assert_allclose(times, source_times, atol=1e-4)


def test_graceful_stop_leaves_a_playable_file_with_the_frames_so_far(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", frames=20, fps=10, audio=True)
    out = tmp_path / "out.mp4"
    step = build_step({"type": "video_writer", "path": str(out), "preset": "ultrafast"})
    step.start()
    with open_source(str(clip), 0) as source:
        feed([step], source, end=False, max_frames=7)  # interrupted: no end of stream
    assert not out.exists() and leftovers(tmp_path) == [".out.partial.mp4"]
    step.close()  # what the runtime does on SIGINT / SIGTERM
    images, times, _ = decode(out)
    assert len(images) == 7 and leftovers(tmp_path) == []
    copied = audio_packets(out)
    assert 0 < len(copied) < len(audio_packets(clip))  # audio up to the end of the last frame only
    assert copied == audio_packets(clip)[: len(copied)]


def test_abort_leaves_nothing(tmp_path):
    out = tmp_path / "out.mp4"
    step = build_step({"type": "video_writer", "path": str(out)})
    step.start()
    with open_source(str(make_video(tmp_path / "clip.mp4")), 0) as source:
        feed([step], source, end=False, max_frames=5)
    step.abort()
    step.close()
    assert not out.exists() and leftovers(tmp_path) == []


def test_one_video_per_source_when_several(tmp_path):
    clips = [make_video(tmp_path / f"c{i}.mp4", frames=5 + i) for i in range(2)]
    step = build_step({"type": "video_writer", "path": str(tmp_path / "out.mp4"), "sources": 2})
    step.start()
    for i, clip in enumerate(clips):
        with open_source(str(clip), i) as source:
            feed([step], source)
    step.close()
    assert not (tmp_path / "out.mp4").exists()
    assert [len(decode(tmp_path / f"out.src{i}.mp4")[0]) for i in range(2)] == [5, 6]


def test_unannounced_second_source_gets_its_own_file(tmp_path, caplog):
    step = build_step({"type": "video_writer", "path": str(tmp_path / "out.mp4")})
    step.start()
    for i in range(2):
        with open_source(str(make_video(tmp_path / f"c{i}.mp4", frames=3)), i) as source:
            feed([step], source)
    step.close()
    assert (tmp_path / "out.mp4").exists() and (tmp_path / "out.src1.mp4").exists()
    assert "more sources than announced" in caplog.text


def test_video_of_mixed_and_odd_sizes(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, (w, h) in enumerate([(41, 31), (20, 12), (40, 30)]):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((h, w, 3), 200, np.uint8))
    out = tmp_path / "out.mp4"
    step = build_step({"type": "video_writer", "path": str(out), "fps": 5.0, "crf": 0})
    step.start()
    with open_source(str(folder), 0) as source:
        feed([step], source)
    step.close()
    images, times, (_, width, height) = decode(out)
    assert (width, height, len(images)) == (42, 32, 3)  # the largest size, rounded up to even
    np.testing.assert_allclose(times, [0.0, 0.2, 0.4], atol=1e-4)  # images: spaced at the fps option
    small = images[1].astype(int)
    assert small[16, 21].min() > 150 and small[1, 1].max() < 40  # centred on black


def test_live_timestamps_that_jump_back_keep_increasing(tmp_path):
    out = tmp_path / "live.mp4"
    step = build_step({"type": "video_writer", "path": str(out)})
    step.start()
    step.start_of_stream(start_event(fps=10.0))
    for index, pts_s in enumerate([5.0, 5.1, 5.2, 0.0, 0.1]):  # a reconnected stream restarts its clock
        packet = FramePacket(0, "test", index, pts_s, (48, 64, 3), time.monotonic())
        step.process([Frame(packet, pattern(index, 64, 48))])
    step.end_of_stream(EndOfStream(0, "test", 5))
    _, times, _ = decode(out)
    np.testing.assert_allclose(times, [5.0, 5.1, 5.2, 5.3, 5.4], atol=1e-4)


def test_container_that_cannot_hold_the_audio_is_a_sink_error(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", audio=True)
    step = build_step({"type": "video_writer", "path": str(tmp_path / "out.webm")})
    step.start()
    with pytest.raises(SinkError, match="cannot hold the source's aac audio.*write .mkv"):
        step.start_of_stream(start_event(audio_path=str(clip)))
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.webm").exists()
    video_only = build_step({"type": "video_writer", "path": str(tmp_path / "out.webm"), "copy_audio": False})
    video_only.start()
    with open_source(str(clip), 0) as source:
        feed([video_only], source)
    video_only.close()
    assert decode(tmp_path / "out.webm")[2][0] == "vp9"


def test_sinks_only_read_the_frames(tmp_path):
    steps = [build_step({"type": "video_writer", "path": str(tmp_path / "o.mp4")}),
             build_step({"type": "image_writer", "path": str(tmp_path / "imgs")})]
    for step in steps:
        assert step.draws is False and step.role == ""
        step.start()
        step.start_of_stream(start_event())
    image = pattern(3, 64, 48)
    before = image.copy()
    frames = [Frame(FramePacket(0, "test", 0, 0.0, image.shape, 0.0), image)]
    for step in steps:
        out = step.process(frames)
        assert out is frames or out == frames
        assert out[0].image is image
    np.testing.assert_array_equal(image, before)
    for step in steps:
        step.close()


# ---------------------------------------------------------------- JSON lines and CSV

def random_packets(rng: np.random.Generator, source_id: int, count: int,
                   num_keypoints: int = COCO_17.num_keypoints) -> list[FramePacket]:
    packets = []
    for index in range(count):
        n = index % 3  # 0, 1 or 2 people
        keypoints = rng.uniform(0, 640, (n, num_keypoints, 2)).astype(np.float32)
        keypoint_scores = rng.uniform(0, 1, (n, num_keypoints)).astype(np.float32)
        if n:
            keypoints[0, 3] = np.nan  # a keypoint a model could not place
        xyxy = np.sort(rng.uniform(0, 640, (n, 4)), axis=1).astype(np.float32)
        poses = Poses(keypoints, keypoint_scores, rng.uniform(0, 1, n), xyxy, np.arange(n) + 10 * index)
        detections = Detections(xyxy, rng.uniform(0, 1, n), np.zeros(n, np.int64))
        packet = FramePacket(source_id, f"cam{source_id}", index, 0.1 * index + 1e-7, (480, 640, 3), 0.0,
                             detections=detections, poses=poses)
        packets.append(packet)
    packets.append(FramePacket(source_id, f"cam{source_id}", count, None, (480, 640, 3), 0.0))  # no models ran
    return packets


def run_packets(step, groups: list[list[FramePacket]]) -> None:
    step.start()
    for packets in groups:
        first = packets[0]
        step.start_of_stream(start_event(first.source_id, first.source_name, 640, 480))
    for packets in zip(*groups):
        for packet in packets:
            step.process([Frame(packet, np.zeros(packet.shape, np.uint8))])
    for packets in groups:
        step.end_of_stream(EndOfStream(packets[0].source_id, packets[0].source_name, len(packets)))


def assert_same_poses(read: Poses, written: Poses) -> None:
    np.testing.assert_allclose(read.keypoints, written.keypoints, atol=5e-4)
    np.testing.assert_allclose(read.keypoint_scores, written.keypoint_scores, atol=5e-6)
    np.testing.assert_allclose(read.scores, written.scores, atol=5e-6)
    np.testing.assert_allclose(read.xyxy, written.xyxy, atol=5e-4)
    np.testing.assert_array_equal(read.track_ids, written.track_ids)


def test_jsonl_round_trip_with_two_sources(tmp_path):
    rng = np.random.default_rng(0)
    groups = [random_packets(rng, 0, 6), random_packets(rng, 1, 6)]
    path = tmp_path / "out.jsonl"
    step = build_step({"type": "jsonl_writer", "path": str(path), "sources": 2})
    run_packets(step, groups)
    assert path.exists() and leftovers(tmp_path) == []  # published when both sources ended
    read = list(read_jsonl(path))
    written = [p for pair in zip(*groups) for p in pair]
    assert len(read) == len(written) == 14
    for r, w in zip(read, written):
        assert (r.source_id, r.source_name, r.index, r.width, r.height) == (
            w.source_id, w.source_name, w.index, 640, 480)
        assert r.pts_s == (None if w.pts_s is None else round(w.pts_s, 6))
        if w.poses is None:
            assert r.poses is None and r.detections is None
            continue
        assert_same_poses(r.poses, w.poses)
        np.testing.assert_allclose(r.detections.xyxy, w.detections.xyxy, atol=5e-4)
        np.testing.assert_array_equal(r.detections.class_ids, w.detections.class_ids)
    assert np.isnan(read[2].poses.keypoints[0, 3]).all()
    step.close()


def test_jsonl_is_written_as_the_run_goes_and_abort_removes_it(tmp_path):
    path = tmp_path / "out.jsonl"
    step = build_step({"type": "jsonl_writer", "path": str(path)})
    step.start()
    step.start_of_stream(start_event(width=640, height=480))
    for packet in random_packets(np.random.default_rng(1), 0, 4)[:4]:
        step.process([Frame(packet, np.zeros(packet.shape, np.uint8))])
        partial = tmp_path / ".out.partial.jsonl"
        assert len(partial.read_text().splitlines()) == packet.index + 1  # flushed frame by frame
    assert not path.exists()
    step.abort()
    step.close()
    assert not path.exists() and leftovers(tmp_path) == []


def test_jsonl_reopens_for_a_late_source(tmp_path):
    path = tmp_path / "out.jsonl"
    rng = np.random.default_rng(2)
    step = build_step({"type": "jsonl_writer", "path": str(path)})
    run_packets(step, [random_packets(rng, 0, 2)])
    assert path.exists()
    run_packets(step, [random_packets(rng, 1, 2)])  # a source that starts after the first one ended
    step.close()
    assert [(r.source_id, r.index) for r in read_jsonl(path)] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]


def test_csv_round_trip_one_row_per_person(tmp_path):
    rng = np.random.default_rng(3)
    groups = [random_packets(rng, 0, 7), random_packets(rng, 1, 5)]
    path = tmp_path / "out.csv"
    step = build_step({"type": "csv_writer", "path": str(path), "sources": 2})
    run_packets(step, groups)
    step.close()
    lines = path.read_text().splitlines()
    assert lines[0].split(",") == list(CSV_COLUMNS)
    assert CSV_COLUMNS[:10] == ("source", "source_name", "frame", "pts", "track_id", "score", "x1", "y1", "x2", "y2")
    assert CSV_COLUMNS[10:13] == ("nose_x", "nose_y", "nose_score") and len(CSV_COLUMNS) == 10 + 3 * COCO_17.num_keypoints
    people = [p for group in groups for p in group if p.poses is not None and len(p.poses)]
    assert len(lines) - 1 == sum(len(p.poses) for p in people)
    read = {(r.source_id, r.index): r for r in read_csv(path)}
    assert sorted(read) == sorted((p.source_id, p.index) for p in people)
    for packet in people:
        result = read[(packet.source_id, packet.index)]
        assert result.source_name == packet.source_name and result.pts_s == round(packet.pts_s, 6)
        assert_same_poses(result.poses, packet.poses)


def test_csv_and_jsonl_name_crowdpose_keypoints(tmp_path):
    rng = np.random.default_rng(4)
    packets = random_packets(rng, 0, 5, num_keypoints=CROWDPOSE_14.num_keypoints)
    for kind in ("csv", "jsonl"):
        path = tmp_path / f"out.{kind}"
        step = build_step({"type": f"{kind}_writer", "path": str(path)})
        run_packets(step, [packets])
        step.close()
        read = {r.index: r for r in (read_csv(path) if kind == "csv" else read_jsonl(path))}
        for packet in packets:
            if packet.poses is not None and len(packet.poses):
                assert read[packet.index].poses.num_keypoints == 14
                assert_same_poses(read[packet.index].poses, packet.poses)
    header = (tmp_path / "out.csv").read_text().splitlines()[0].split(",")
    assert header == list(csv_columns(CROWDPOSE_14)) and len(header) == 10 + 3 * 14
    assert header[10:13] == ["left_shoulder_x", "left_shoulder_y", "left_shoulder_score"]
    assert header[-3:] == ["neck_x", "neck_y", "neck_score"]


def test_csv_refuses_a_second_keypoint_set(tmp_path):
    step = build_step({"type": "csv_writer", "path": str(tmp_path / "o.csv")})
    step.start()
    step.start_of_stream(start_event())
    for index, k in enumerate((14, 17)):
        poses = Poses(np.zeros((1, k, 2)), np.ones((1, k)), np.ones(1), np.zeros((1, 4)))
        packet = FramePacket(0, "test", index, 0.0, (48, 64, 3), 0.0, poses=poses)
        frame = Frame(packet, np.zeros((48, 64, 3), np.uint8))
        if k == 14:
            step.process([frame])
        else:
            with pytest.raises(SinkError, match="17 keypoints after 14"):
                step.process([frame])
    step.abort()
    assert leftovers(tmp_path) == []


def test_csv_without_people_has_the_person_columns(tmp_path):
    path = tmp_path / "o.csv"
    step = build_step({"type": "csv_writer", "path": str(path)})
    run_packets(step, [[FramePacket(0, "cam0", 0, 0.0, (48, 64, 3), 0.0, poses=Poses.empty())]])
    step.close()
    assert path.read_text().splitlines() == [",".join(CSV_PERSON_COLUMNS)]
    assert list(read_csv(path)) == []


# ---------------------------------------------------------------- image folders

def test_images_named_after_the_source_frames(tmp_path):
    source_dir = tmp_path / "in"
    source_dir.mkdir()
    names = ["b10.png", "b2.jpg", "a.png"]
    for i, name in enumerate(names):
        cv2.imwrite(str(source_dir / name), pattern(i, 32, 24))
    out = tmp_path / "out"
    step = build_step({"type": "image_writer", "path": str(out) + "/"})
    step.start()
    with open_source(str(source_dir), 0) as source:
        feed([step], source)
    step.close()
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    np.testing.assert_array_equal(cv2.imread(str(out / "a.png")), cv2.imread(str(source_dir / "a.png")))


def test_video_frames_as_images_and_one_folder_per_source(tmp_path):
    step = build_step({"type": "image_writer", "path": str(tmp_path / "out"), "sources": 2, "format": "png"})
    step.start()
    for i in range(2):
        with open_source(str(make_video(tmp_path / f"clip{i}.mp4", frames=3)), i) as source:
            feed([step], source)
    step.close()
    for i in range(2):
        assert sorted(p.name for p in (tmp_path / "out" / f"src{i}").iterdir()) == [
            f"clip{i}_{k:06d}.png" for k in range(3)]
    assert leftovers(tmp_path) == []


def test_image_writer_refuses_to_overwrite_the_source_folder(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), pattern(0, 8, 8))
    step = build_step({"type": "image_writer", "path": str(tmp_path)})
    step.start()
    with pytest.raises(SinkError, match="would overwrite the source images"):
        step.start_of_stream(start_event(name=str(tmp_path)))
