"""Defect class 1 of issue 14: an output never destroys an input, and never replaces a file unasked.

Every refusal: exit 2, one ``error:`` line, no traceback, inputs byte-for-byte
unchanged and no new file anywhere in the folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from iohelpers import make_video, pattern
from streampose.cli import main


@pytest.fixture(autouse=True)
def _restore_root_logger(restore_root_logger):
    yield


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with its content hash; symlinks by target."""
    out = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            rel = str(path.relative_to(folder))
            out[rel] = ("-> " + os.readlink(path)) if path.is_symlink() else hashlib.sha1(path.read_bytes()).hexdigest()
    return out


def run(args: list, capsys) -> tuple[int, list[str], str]:
    code = main([str(a) for a in args] + ["--pipeline", "passthrough", "--inline", "--no-progress"])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if not line.startswith("INFO")], err


def assert_refused(tmp_path: Path, args: list, capsys, *needles: str) -> None:
    before = snapshot(tmp_path)
    code, lines, err = run(args, capsys)
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert snapshot(tmp_path) == before  # nothing written, nothing replaced, no partial or probe file


@pytest.fixture
def video(tmp_path) -> Path:
    return make_video(tmp_path / "in.mp4", frames=12)


def test_output_is_the_source(tmp_path, video, capsys):
    assert_refused(tmp_path, ["--source", video, "--output", video], capsys, "is the input", "in.mp4")


def test_output_is_the_source_spelled_differently(tmp_path, video, capsys, monkeypatch):
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert_refused(tmp_path, ["--source", "../in.mp4", "--output", f"{tmp_path}/sub/../in.mp4"], capsys, "is the input")


def test_output_is_a_symlink_to_the_source(tmp_path, video, capsys):
    (tmp_path / "link.mp4").symlink_to(video)
    assert_refused(tmp_path, ["--source", video, "--output", tmp_path / "link.mp4", "--overwrite"], capsys,
                   "is the input")


def test_source_is_a_symlink_to_the_output(tmp_path, video, capsys):
    (tmp_path / "link.mp4").symlink_to(video)
    assert_refused(tmp_path, ["--source", tmp_path / "link.mp4", "--output", video, "--overwrite"], capsys,
                   "is the input")


def test_output_is_a_hard_link_to_the_source(tmp_path, video, capsys):
    os.link(video, tmp_path / "same.mkv")
    assert_refused(tmp_path, ["--source", video, "--output", tmp_path / "same.mkv", "--overwrite"], capsys,
                   "is the input")


def test_per_source_output_name_is_a_source(tmp_path, video, capsys):
    """With two sources ``out.mp4`` writes ``out.src1.mp4``: here that is a hard link to a source."""
    other = make_video(tmp_path / "other.mp4", frames=5)
    os.link(other, tmp_path / "out.src1.mp4")
    assert_refused(tmp_path, ["--source", video, "--source", other, "--output", tmp_path / "out.mp4",
                              "--overwrite"], capsys, "is the input")


def test_result_file_that_is_an_input(tmp_path, video, capsys):
    os.link(video, tmp_path / "poses.jsonl")
    assert_refused(tmp_path, ["--source", video, "--output", tmp_path / "poses.jsonl", "--overwrite"], capsys,
                   "is the input")


def test_image_folder_output_over_the_source_folder(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        cv2.imwrite(str(photos / f"img{i}.png"), pattern(i, 32, 24))
    (tmp_path / "alias").symlink_to(photos)
    for output in (f"{photos}/", f"{tmp_path}/alias/"):
        assert_refused(tmp_path, ["--source", photos, "--output", output, "--overwrite"], capsys, "source folder")


def test_image_folder_output_holding_the_source_image(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "one.png"), pattern(1, 32, 24))
    assert_refused(tmp_path, ["--source", tmp_path / "one.png", "--output", f"{tmp_path}/", "--overwrite"], capsys,
                   "one.png")


@pytest.mark.parametrize("name", ["out.mp4", "out.jsonl", "out.csv"])
def test_existing_output_is_refused_without_overwrite(tmp_path, video, capsys, name):
    out = tmp_path / name
    out.write_bytes(b"precious")
    assert_refused(tmp_path, ["--source", video, "--output", out], capsys, name, "--overwrite")
    code, _, err = run(["--source", video, "--output", out, "--overwrite", "--max-frames", "3"], capsys)
    assert code == 0, err
    assert out.read_bytes() != b"precious" and out.stat().st_size > 0


def test_existing_image_folder_with_images_needs_overwrite(tmp_path, video, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "in_000000.jpg"), pattern(0, 32, 24))
    assert_refused(tmp_path, ["--source", video, "--output", f"{frames}/"], capsys, "--overwrite")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(["--source", video, "--output", f"{empty}/", "--max-frames", "2"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in empty.iterdir()) == ["in_000000.jpg", "in_000001.jpg"]


def test_refusal_through_the_script_leaves_the_input_whole(tmp_path, video):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    digest = hashlib.sha1(video.read_bytes()).hexdigest()
    result = subprocess.run([sys.executable, str(repo / "run_stream.py"), "--source", str(video), "--output",
                             str(video), "--overwrite"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [l for l in result.stderr.splitlines() if l.startswith("error:")][0].count("is the input") == 1
    assert hashlib.sha1(video.read_bytes()).hexdigest() == digest
    assert np.array_equal(sorted(p.name for p in tmp_path.iterdir()), ["in.mp4"])
