"""Results as they happen: live JSON lines readable while the run goes, rotated segments, JSON lines on stdout.

Runs run_stream.py in a child process on a paced lavfi source (passthrough
pipeline) and reads its outputs as another program would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

from service_helpers import RUN_STREAM, Service, lavfi


def _summary_frames(stderr: str) -> int:
    match = re.search(r"^(\d+) frames from", stderr, re.M)
    assert match, stderr
    return int(match.group(1))


def test_a_reader_sees_complete_lines_within_a_second_of_their_frames(tmp_path):
    out = tmp_path / "live.jsonl"
    service = Service(["--source", lavfi(5), "--output", str(out)], tmp_path, serve=False)
    arrivals: list[tuple[float, dict]] = []
    partial_seen = False
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline and service.process.poll() is None:
            time.sleep(0.01)
        with open(out, encoding="utf-8") as f:  # like tail -f: follow the file while it grows
            buffer = ""
            while time.monotonic() < deadline:
                chunk = f.read()
                now = time.monotonic()
                if not chunk:
                    if service.process.poll() is not None:
                        break
                    time.sleep(0.01)
                    continue
                buffer += chunk
                *lines, buffer = buffer.split("\n")
                partial_seen |= bool(buffer)
                arrivals += [(now, json.loads(line)) for line in lines]
            running_when_read = sum(1 for t, _ in arrivals)
        code = service.wait(30)
    finally:
        service.kill()
    assert code == 0, service.stderr()
    assert buffer == "", "the file ends with a complete line"
    assert len(arrivals) == _summary_frames(service.stderr()) >= 60
    # A line's delay behind its frame: arrival time minus the frame's capture clock, relative to the best one.
    offsets = [t - record["pts"] for t, record in arrivals]
    lag_s = max(offsets) - min(offsets)
    print(f"\nlive JSONL: {running_when_read} lines read while the run went; worst line {lag_s * 1000:.0f} ms "
          f"behind the quickest; a partial line seen by the reader: {partial_seen}")
    assert lag_s < 1.0


def test_rotated_segments_are_complete_and_lose_or_repeat_no_frame(tmp_path):
    service = Service(["--source", lavfi(4), "--output", "seg.jsonl", "--rotate", "1s"], tmp_path, serve=False)
    seen_while_running: set[str] = set()
    try:
        while service.process.poll() is None:
            seen_while_running |= {p.name for p in tmp_path.glob("seg.*.jsonl")}
            time.sleep(0.05)
        code = service.wait(30)
    finally:
        service.kill()
    assert code == 0, service.stderr()
    segments = sorted(tmp_path.glob("seg.*.jsonl"))
    assert [p.name for p in segments] == [f"seg.{i:06d}.jsonl" for i in range(1, len(segments) + 1)]
    assert len(segments) >= 3 and seen_while_running, "segments are published while the run goes"
    assert not list(tmp_path.glob(".*partial*")) and not (tmp_path / "seg.jsonl").exists()
    frames = []
    for segment in segments:
        text = segment.read_text()
        assert text.endswith("\n")
        frames += [json.loads(line)["frame"] for line in text.splitlines()]
    assert frames == sorted(set(frames)), "no frame repeated, in order across segments"
    assert len(frames) == _summary_frames(service.stderr())
    print(f"\nrotation: {len(segments)} segments of 1 s, {len(frames)} frames, "
          f"{sorted(seen_while_running)[:2]}... published while running")


def test_size_rotation(tmp_path):
    service = Service(["--source", lavfi(2, rate=30), "--output", "seg.jsonl", "--rotate", "3kB"], tmp_path,
                      serve=False)
    try:
        code = service.wait(60)
    finally:
        service.kill()
    assert code == 0, service.stderr()
    segments = sorted(tmp_path.glob("seg.*.jsonl"))
    sizes = [p.stat().st_size for p in segments]
    assert len(segments) >= 3 and all(size <= 3000 for size in sizes), sizes
    total = sum(len(p.read_text().splitlines()) for p in segments)
    assert total == _summary_frames(service.stderr())


def test_json_lines_on_stdout_for_a_pipe(tmp_path):
    run = subprocess.run([sys.executable, str(RUN_STREAM), "--no-progress", "--pipeline", "passthrough",
                          "--source", lavfi(2), "--output", "-"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(records) == _summary_frames(run.stderr) >= 20
    assert all(r["source"]["id"] == 0 and r["width"] == 320 for r in records)
    assert "frames from 1 source" in run.stderr and "frames from" not in run.stdout  # logs go to stderr
