"""The Ray-free parts of ``streampose.distributed``: items, names, manifest checks, chunk plans, CLI errors.

Also: the single-machine path never imports Ray.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streampose.distributed.chunks import VideoIndex, plan_chunks
from streampose.distributed.corpus import discover_items, output_name
from streampose.distributed.fleet import CameraState, camera_names, per_camera, prometheus_text
from streampose.distributed.manifest import ItemRecord, RunManifest, file_sha256
from streampose.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path):
    _touch(tmp_path / "a" / "clip.mp4")
    _touch(tmp_path / "b" / "clip.mp4")
    _touch(tmp_path / "b" / "notes.txt")
    _touch(tmp_path / "shots" / "1.jpg")
    _touch(tmp_path / "shots" / "2.png")
    _touch(tmp_path / ".hidden" / "x.mp4")
    return tmp_path


def test_folder_items_are_videos_and_image_folders_with_unique_stable_names(tree):
    items = discover_items(str(tree))
    assert [Path(i.spec).relative_to(tree).as_posix() for i in items] == ["a/clip.mp4", "b/clip.mp4", "shots"]
    names = [i.name for i in items]
    assert len(set(names)) == 3 and all(n.startswith(("clip.mp4-", "shots-")) for n in names)
    assert names == [i.name for i in discover_items(str(tree))]


def test_glob_and_manifest_inputs(tree):
    globbed = discover_items(str(tree / "**" / "*.mp4"))
    assert sorted(Path(i.spec).relative_to(tree).as_posix() for i in globbed) == ["a/clip.mp4", "b/clip.mp4"]
    listing = _touch(tree / "list.txt", b"# two items\na/clip.mp4\n\nshots\nrtsp://cam/1\n")
    specs = [i.spec for i in discover_items(str(listing))]
    assert specs == [str(tree / "a" / "clip.mp4"), str(tree / "shots"), "rtsp://cam/1"]


@pytest.mark.parametrize("make, message", [
    (lambda root: str(root / "missing"), "not found"),
    (lambda root: str(root / "nothing*.mp4"), "names no video"),
    (lambda root: str(_touch(root / "empty.txt", b"# nothing\n")), "names no video"),
    (lambda root: str(_touch(root / "twice.txt", b"a.mp4\na.mp4\n")), "twice"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, make, message):
    with pytest.raises(UserError, match=message) as error:
        discover_items(make(tmp_path))
    assert "\n" not in str(error.value)


def test_output_names_are_file_system_safe():
    name = output_name("rtsp://user:pw@cam/a b?c")
    assert "/" not in name and " " not in name and "?" not in name


def test_manifest_trusts_only_unchanged_published_files(tmp_path):
    out = _touch(tmp_path / "x.jsonl", b'{"frame":0}\n{"frame":1}\n')
    manifest = RunManifest(tmp_path)
    manifest.record("x", ItemRecord("x.mp4", "done", frames=2, outputs={"x.jsonl": file_sha256(out)}))
    manifest.record("y", ItemRecord("y.mp4", "failed", error="corrupt"))
    loaded = RunManifest.load(tmp_path)
    assert loaded.is_complete("x") and not loaded.is_complete("y") and not loaded.is_complete("z")
    out.write_bytes(b'{"frame":0}\n')
    assert not loaded.is_complete("x")
    out.unlink()
    assert not loaded.is_complete("x")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        RunManifest.load(tmp_path)


@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_chunk_plans_cover_every_frame_once_from_keyframes(n):
    index = VideoIndex(pts=tuple(range(0, 1000 * 20, 20)), keyframes=tuple(range(0, 1000, 25)), time_base=0.005)
    chunks = plan_chunks(index, n, overlap_s=3.0)
    assert len(chunks) == n
    assert chunks[0].first == 0 and chunks[-1].stop == 1000
    for before, after in zip(chunks, chunks[1:]):
        assert before.stop == after.first
        assert after.first in index.keyframes and after.read_from in index.keyframes
        assert before.first <= after.read_from <= after.first
        assert (index.pts[after.first] - index.pts[after.read_from]) * index.time_base >= 3.0


def test_camera_names_never_show_a_password_and_metrics_cover_every_camera():
    names = camera_names(["rtsp://admin:secret@10.0.0.1/live", "lavfi:testsrc2"])
    assert len(names) == 2 and not any("secret" in n for n in names)
    text = prometheus_text({n: {"state": "running", "frames": 5, "fps": 1.0, "last_frame_age_s": 0.1,
                                "restarts": 0} for n in names})
    for name in names:
        assert f'streampose_camera_frames_total{{camera="{name}"}} 5' in text
        assert f'streampose_camera_up{{camera="{name}"}} 1' in text


def test_single_machine_path_does_not_import_ray(tmp_path, shared_dir):
    out = tmp_path / "poses.jsonl"
    code = ("import sys, streampose.cli as c; "
            f"rc = c.main(['--source', {str(shared_dir / 'media' / 'zidane.jpg')!r}, '--pipeline', 'passthrough', "
            f"'--output', {str(out)!r}, '-q']); "
            "print(rc, 'ray' in sys.modules, any(m.startswith('streampose.distributed') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert result.stdout.split() == ["0", "False", "False"], result.stderr
    assert json.loads(out.read_text().splitlines()[0])["frame"] == 0


@pytest.mark.parametrize("argv, message", [
    (["batch"], "required"),
    (["batch", "in", "--output-dir", "o", "--num-gpus", "-1"], "--num-gpus"),
    (["batch", "/nonexistent/corpus", "--output-dir", "o"], "not found"),
    (["--ray", "--source", "lavfi:testsrc2", "--output", "x.jsonl"], "FOLDER/"),
    (["--ray", "--source", "lavfi:testsrc2", "--source", "lavfi:testsrc", "--output", "f/", "--output", "f/a.mp4"],
     "{camera}"),
])
def test_batch_and_fleet_errors_are_one_line_exit_2(argv, message, tmp_path):
    result = subprocess.run([sys.executable, str(REPO_ROOT / "run_stream.py"), *argv], capture_output=True,
                            text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_fleet_never_shows_a_password_and_fills_in_per_camera_sinks():
    state = CameraState("rtsp://admin:s3cret@10.0.0.1/live", error="stream 'rtsp://admin:s3cret@10.0.0.1/live' lost")
    assert state.report()["error"] == "stream 'rtsp://admin:***@10.0.0.1/live' lost"
    spec = {"type": "video_writer", "path": "fleet/{camera}.mp4", "crf": 23}
    assert per_camera(spec, "cam0") == {"type": "video_writer", "path": "fleet/cam0.mp4", "crf": 23}
