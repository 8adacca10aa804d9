"""Defect class 5 of issue 14: after a SIGKILL of a stage, no partial output file stays on disk.

The stage that owns the sinks cannot clean up when it is killed; the parent
knows every sink path and removes their hidden ``.name.partial.ext`` files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from iohelpers import make_video, pattern
from runtime_helpers import STEPS_FILE, read_records
from streampose.io.outputs import partial_files

REPO = Path(__file__).resolve().parents[1]


def partials(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*.partial.*"))


def pipeline(tmp_path: Path, rec: Path, where: str) -> Path:
    """people (one fake person per frame) → render (draw, slow, record) with the sinks after it.

    where: which stage records its pid ("people" or "render").
    """
    record = f'{{ type = "test_record", path = {json.dumps(str(rec))} }}'
    people = ['{ type = "test_one_person" }'] + [record] * (where == "people")
    render = ['{ type = "draw" }', '{ type = "test_sleep", seconds = 0.03 }'] + [record] * (where == "render")
    text = f'step_modules = [{json.dumps(STEPS_FILE)}]\n'
    for name, steps in (("people", people), ("render", render)):
        text += f'[[stages]]\nname = "{name}"\nsteps = [{", ".join(steps)}]\n'
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


def wait_for(predicate, proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.communicate()[1]}")
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError


def frames_recorded(rec: Path) -> int:
    return sum(r["event"] == "frame" for r in read_records(rec)) if rec.exists() else 0


@pytest.mark.parametrize("sources, victim", [(1, "render"), (2, "render"), (1, "people")])
def test_sigkill_of_a_stage_leaves_no_partial_file(tmp_path, sources, victim):
    out = tmp_path / "out"
    out.mkdir()
    videos = [make_video(tmp_path / f"in{i}.mp4", frames=300, width=96, height=64) for i in range(sources)]
    rec = tmp_path / "rec.jsonl"
    outputs = [out / "v.mp4", out / "v.mkv", out / "p.jsonl", out / "p.csv", f"{out / 'frames'}/"]
    args = [sys.executable, str(REPO / "run_stream.py"), "--pipeline", str(pipeline(tmp_path, rec, victim)),
            "--no-progress"]
    for v in videos:
        args += ["--source", str(v)]
    for o in outputs:
        args += ["--output", str(o)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: frames_recorded(rec) >= 10, proc)
        # The sinks are writing: their partial files exist now (this is what a crash used to leave).
        assert len([p for p in partials(out) if "frames" not in p]) == 2 * sources + 2
        stage_pid = read_records(rec)[0]["pid"]
        os.kill(stage_pid, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, stderr
    assert f"error: stage '{victim}' failed:" in stderr and "SIGKILL" in stderr
    assert partials(out) == []
    assert not any((out / n).exists() for n in ("v.mp4", "v.mkv", "p.jsonl", "p.csv", "v.src0.mp4"))


def test_partial_files_of_each_sink_spec(tmp_path):
    names = {str(p.name) for p in partial_files({"type": "video_writer", "path": str(tmp_path / "a.mp4"), "sources": 2})}
    assert {".a.partial.mp4", ".a.src0.partial.mp4", ".a.src1.partial.mp4"} <= names
    assert [p.name for p in partial_files({"type": "jsonl_writer", "path": "x/r.jsonl"})] == [".r.partial.jsonl"]
    (tmp_path / "img" / "src1").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "img" / "src1" / ".f_000001.partial.jpg"), pattern(0, 8, 8))
    cv2.imwrite(str(tmp_path / "img" / "f_000000.jpg"), pattern(0, 8, 8))  # published: never touched
    found = partial_files({"type": "image_writer", "path": str(tmp_path / "img"), "sources": 2})
    assert [p.name for p in found] == [".f_000001.partial.jpg"]
    assert partial_files({"type": "display"}) == [] and partial_files({"type": "draw", "path": 3}) == []
