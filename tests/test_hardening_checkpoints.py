"""Defect class 7 of issue 14: checkpoint resource bombs are refused within a memory cap.

Every hostile file of ``hostile_checkpoints.HOSTILE`` (plus a truncated copy
of the real yolov5n.pt) is loaded by the yolov5 reader, the torch
weights-only reader and the CLI's sniffing, in a subprocess whose address
space is capped at about 1 GiB above its baseline: each is refused with a
one-line CheckpointError saying why (never a MemoryError, RecursionError or
torch RuntimeError), and nothing is printed to stderr (no torch warnings).
The real yolov5n.pt loads within +64 MB of peak RSS.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hostile_checkpoints import HOSTILE, truncated_real

REPO = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("checkpoint_probe.py")
CAP_MB = 1024


def probe(files: list[Path]) -> tuple[list[dict], str]:
    env = {"OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, str(PROBE), str(CAP_MB), *map(str, files)], capture_output=True,
                            text=True, timeout=600, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory, shared_dir) -> dict[str, tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("hostile")
    table = dict(HOSTILE)
    table["truncated_yolov5n"] = (truncated_real(shared_dir / "weights" / "yolov5n.pt"),
                                  r"truncated or damaged checkpoint")
    return {name: (build(folder / f"{name}.pt"), expected) for name, (build, expected) in table.items()}


@pytest.fixture(scope="module")
def results(hostile_files) -> tuple[list[dict], str]:
    return probe([path for path, _ in hostile_files.values()])


def test_hostile_files_are_small(hostile_files):
    sizes = {name: path.stat().st_size for name, (path, _) in hostile_files.items()}
    assert max(v for k, v in sizes.items() if k != "truncated_yolov5n") < 8 << 20, sizes


@pytest.mark.parametrize("name", sorted(HOSTILE) + ["truncated_yolov5n"])
def test_every_loader_refuses_within_the_cap(results, hostile_files, name):
    rows = [r for r in results[0] if r["file"] == f"{name}.pt"]
    assert {r["loader"] for r in rows} == {"yolov5", "state_dict", "sniff"}
    by_loader = {r["loader"]: r for r in rows}
    yolo, plain, sniff = by_loader["yolov5"], by_loader["state_dict"], by_loader["sniff"]
    assert yolo["outcome"] == "refused", yolo
    assert re.search(hostile_files[name][1], yolo["message"]), yolo["message"]
    assert plain["outcome"] == "refused", plain
    assert sniff["outcome"] == "ok" and sniff["message"] in ("None", "'yolov5'"), sniff
    for row in rows:
        assert "\n" not in row["message"]
        assert not re.search(r"MemoryError|RecursionError|can't allocate|DefaultCPUAllocator", row["message"]), row
        assert row["growth_mb"] < 256, row  # far below the cap: refused before allocating, not by the cap


def test_nothing_reaches_stderr(results):
    assert results[1] == ""  # no torch warnings, no tracebacks


def test_real_yolov5n_loads_within_64_mb(shared_dir):
    rows, stderr = probe([shared_dir / "weights" / "yolov5n.pt"])
    by_loader = {r["loader"]: r for r in rows}
    assert by_loader["yolov5"]["outcome"] == "ok", by_loader["yolov5"]
    assert by_loader["yolov5"]["growth_mb"] <= 64, by_loader["yolov5"]
    assert by_loader["sniff"]["message"] == "'yolov5'"
    assert by_loader["state_dict"]["outcome"] == "refused"  # a whole pickled model is no plain state dict
    assert stderr == ""


def test_cli_hostile_detector_is_one_line(tmp_path, hostile_files):
    path, _ = hostile_files["stride_zero_view"]
    video = tmp_path / "in.mp4"
    from iohelpers import make_video

    make_video(video, frames=3)
    result = subprocess.run([sys.executable, str(REPO / "run_stream.py"), "--source", str(video), "--pipeline",
                             "detect_yolov5n", "--det-model", str(path), "--no-progress",
                             "--output", str(tmp_path / "o.jsonl")], capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("INFO")]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "claims 268435456 elements" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
