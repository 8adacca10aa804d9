"""The progress bar and the end-of-run summary text."""

from __future__ import annotations

import io
import re

from streampose.runtime.progress import ProgressBar
from streampose.runtime.stats import RunStats, StageStats


def test_progress_bar_shows_count_rate_and_eta():
    stream = io.StringIO()
    now = [0.0]
    bar = ProgressBar(200, stream=stream, enabled=True, width=10, clock=lambda: now[0])
    for done in range(0, 51, 5):  # 25 frames per second after the warm-up
        now[0] = done / 25
        bar.update(done)
    text = stream.getvalue().split("\r")[-1]
    assert text.startswith("[##--------]  50/200  25%") or text.startswith("[###-------]  50/200  25%")
    assert " 25.0 fps" in text and "ETA 0:06" in text
    now[0] += 6
    bar.update(200)
    assert "200/200 100%" in stream.getvalue() and "done" in stream.getvalue()
    bar.close()
    assert stream.getvalue().endswith("\n")


def test_progress_bar_is_silent_without_a_terminal_or_a_frame_count():
    stream = io.StringIO()  # not a TTY
    bar = ProgressBar(100, stream=stream)
    bar.update(10)
    bar.close()
    silent = ProgressBar(None, stream=stream, enabled=True)
    silent.update(10)
    silent.close()
    assert stream.getvalue() == ""


def test_summary_lists_totals_latency_stages_and_steps():
    stats = RunStats(stages=[StageStats("capture[0]", 10, 10, 2, busy_s={"copy": 0.01}, extra={"reconnects": 1}),
                             StageStats("pose", 10, 8, 0, 0.5, 0.25, busy_s={"topdown_pose": 0.4, "draw": 0.08})],
                     frames_done={"cam": 8}, first_capture=100.0, last_done=102.0, wall_s=3.0)
    for ms in (10, 20, 30, 40):
        stats.latency.add(ms)
    text = "\n".join(stats.summary_lines())
    assert "8 frames from 1 source in 3.0 s, 4.0 fps steady state, 2 dropped" in text
    latency = re.search(r"latency capture->sink: p50 ([\d.]+) ms, p99 ([\d.]+) ms", text)
    assert abs(float(latency[1]) - 20) <= 0.2 and abs(float(latency[2]) - 40) <= 0.4  # 1 % buckets
    assert "reconnects=1" in text
    pose = next(line for line in text.splitlines() if line.startswith("pose"))
    assert pose.split()[:4] == ["pose", "10", "8", "0"] and "60.00" in pose  # 0.48 s / 8 frames
    assert any(line.strip().startswith("topdown_pose") and "50.00" in line for line in text.splitlines())
