"""Failures and stops inside the runtime: a raising stage, a killed stage, a user error,
a step asking to stop, SIGINT/SIGTERM. Every case ends with no child process left."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time

import pytest

from runtime_helpers import OPENER, frames_of, pipeline, read_records
from streampose.errors import SinkError
from streampose.runtime import StageFailed, run_pipeline


def _wait_for_frames(path, count, timeout=60.0):
    """Records once ``count`` frame lines are in the recorder's file."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            records = read_records(path)
            if sum(r["event"] == "frame" for r in records) >= count:
                return records
        time.sleep(0.02)
    raise TimeoutError(f"fewer than {count} frames in {path}")


def _no_children_left():
    assert mp.active_children() == []


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "processes"])
def test_raising_stage_stops_everything_names_it_with_traceback(tmp_path, inline):
    out, stamp = tmp_path / "rec.jsonl", tmp_path / "raised"
    p = pipeline(("render", [{"type": "draw"}]),
                 ("faulty", [{"type": "test_raise", "at_index": 5, "stamp": str(stamp)}]),
                 ("sink", [{"type": "test_record", "path": str(out)}]))
    with pytest.raises(StageFailed) as info:
        run_pipeline(p, ["gen?n=100000&fps=500"], opener=OPENER, inline=inline, progress=False)
    stopped = time.monotonic()
    raised = float(stamp.read_text())
    assert stopped - raised < 2.0
    assert info.value.stage == "faulty"
    assert "Traceback" in info.value.details and "boom from test_raise at frame 5" in info.value.details
    assert "steps_for_tests.py" in info.value.details  # the failing step's own frame is shown
    records = read_records(out)
    assert records[-1]["event"] == "aborted"  # the sink stage aborted its steps (no half files published)
    assert all(f["index"] < 5 for f in frames_of(records, 0))
    _no_children_left()


def test_sigkill_of_a_stage_process_stops_within_2s(tmp_path):
    out = tmp_path / "rec.jsonl"
    p = pipeline(("render", [{"type": "draw"}]), ("sink", [{"type": "test_record", "path": str(out)}]))
    killed = []

    def kill_sink_stage():
        records = _wait_for_frames(out, 3)
        pid = records[0]["pid"]
        killed.append(time.monotonic())
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_sink_stage, daemon=True)
    killer.start()
    with pytest.raises(StageFailed) as info:
        run_pipeline(p, ["gen?n=100000&fps=300"], opener=OPENER, progress=False)
    assert killed and time.monotonic() - killed[0] < 2.0
    assert info.value.stage == "sink" and "SIGKILL" in info.value.details
    _no_children_left()


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "processes"])
def test_user_error_in_a_step_is_a_user_error(tmp_path, inline):
    p = pipeline(("sink", [{"type": "test_raise", "in_start": True, "user_error": True}]))
    with pytest.raises(SinkError, match=r"^test sink cannot write \(in start\)$"):
        run_pipeline(p, ["gen?n=5"], opener=OPENER, inline=inline, progress=False)
    _no_children_left()


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "processes"])
def test_stop_requested_by_a_step_is_graceful(tmp_path, inline):
    out = tmp_path / "rec.jsonl"
    p = pipeline(("render", [{"type": "test_stop", "at_index": 5}]),
                 ("sink", [{"type": "test_record", "path": str(out)}]))
    result = run_pipeline(p, ["gen?n=100000&fps=300"], opener=OPENER, inline=inline, progress=False)
    assert result.reason == "stop_requested" and result.exit_code == 0
    records = read_records(out)
    frames = frames_of(records, 0)
    indexes = [f["index"] for f in frames]
    assert indexes == list(range(len(indexes))) and 5 < len(indexes) < 1000
    end = [r for r in records if r["event"] == "end"]
    assert end == [{"event": "end", "source": 0, "frames_sent": len(frames), "error": None}]
    assert records[-1]["event"] == "closed"
    _no_children_left()


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "processes"])
@pytest.mark.parametrize("signum, reason, code", [(signal.SIGINT, "interrupted", 130),
                                                  (signal.SIGTERM, "terminated", 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_gracefully_and_finalizes(tmp_path, inline, signum, reason, code):
    out = tmp_path / "rec.jsonl"
    p = pipeline(("render", [{"type": "draw"}]), ("sink", [{"type": "test_record", "path": str(out)}]))

    def send_signal():
        _wait_for_frames(out, 5)
        os.kill(os.getpid(), signum)

    before = signal.getsignal(signum)
    threading.Thread(target=send_signal, daemon=True).start()
    result = run_pipeline(p, ["gen?n=100000&fps=300"], opener=OPENER, inline=inline, progress=False)
    assert result.reason == reason and result.exit_code == code
    records = read_records(out)
    frames = frames_of(records, 0)
    assert [f["index"] for f in frames] == list(range(len(frames)))
    assert [r for r in records if r["event"] == "end"][0]["frames_sent"] == len(frames)
    assert records[-1]["event"] == "closed"
    assert signal.getsignal(signum) is before  # the caller's handler is back
    _no_children_left()
