"""Defect class 8 of issue 14: start-up and steady-state rate are reported apart; ETA from a moving window;
the progress bar's last line and the summary agree."""

from __future__ import annotations

import io
import re

import pytest

from iohelpers import make_video
from streampose.config import load_pipeline
from streampose.runtime import run_pipeline
from streampose.runtime.progress import ProgressBar
from streampose.runtime.stats import WARMUP_FRAMES, RunStats


def drive(bar: ProgressBar, now: list[float], schedule: list[tuple[float, int]]) -> None:
    for t, done in schedule:
        now[0] = t
        bar.update(done)


def eta_s(text: str) -> int:
    minutes, seconds = re.findall(r"ETA (\d+):(\d\d)", text)[-1]
    return int(minutes) * 60 + int(seconds)


@pytest.mark.parametrize("startup_s, slow_first_s", [(10.0, 0.0), (10.0, 5.0), (60.0, 20.0), (0.5, 0.0)])
def test_eta_after_startup_and_slow_first_frames(startup_s, slow_first_s):
    """1000 frames at 30 fps after a start-up and a slow warm-up: the ETA at frame 300 is the truth (23.3 s)."""
    stream, now = io.StringIO(), [0.0]
    bar = ProgressBar(1000, stream=stream, enabled=True, clock=lambda: now[0])
    schedule = [(startup_s + slow_first_s * k / WARMUP_FRAMES, k) for k in range(WARMUP_FRAMES + 1)]
    t_warm = schedule[-1][0]
    schedule += [(t_warm + (k - WARMUP_FRAMES) / 30, k) for k in range(WARMUP_FRAMES + 1, 301)]
    drive(bar, now, schedule)
    last = stream.getvalue().split("\r")[-1]
    assert abs(eta_s(last) - 700 / 30) <= 1.5, last
    assert re.search(r"\b(29\.\d|30\.\d) fps", last), last
    # What the old bar (done / time since start) showed, for the record: far off after a long start-up.
    naive_eta = 700 / (300 / now[0])
    assert startup_s + slow_first_s < 5 or naive_eta > 1.3 * (700 / 30)


def test_no_eta_before_a_steady_window():
    stream, now = io.StringIO(), [0.0]
    bar = ProgressBar(1000, stream=stream, enabled=True, clock=lambda: now[0])
    drive(bar, now, [(5.0, 1), (5.1, 2), (5.2, 3)])  # still warming up: no guess
    assert "ETA --:--" in stream.getvalue().split("\r")[-1]


def test_summary_separates_startup_from_steady_rate():
    stats = RunStats(frames_done={"a.mp4": 110}, started=90.0, first_capture=100.0, warm_done=102.0,
                     warm_frames=10, last_done=104.0, wall_s=14.5)
    assert stats.startup_s == pytest.approx(10.0)
    assert stats.fps == pytest.approx(50.0)  # 100 frames in the 2 s after the warm-up
    line = stats.summary_lines()[0]
    assert line == "110 frames from 1 source in 14.5 s (start-up 10.0 s), 50.0 fps steady state, 0 dropped"


def test_short_run_falls_back_to_first_capture():
    stats = RunStats(frames_done={"a": 6}, started=0.0, first_capture=1.0, last_done=3.0, wall_s=3.2)
    assert stats.fps == pytest.approx(3.0) and stats.warm_done is None


@pytest.mark.parametrize("inline", [True, False])
def test_progress_bar_last_line_and_summary_agree(tmp_path, capsys, inline):
    video = make_video(tmp_path / "in.mp4", frames=60)
    result = run_pipeline(load_pipeline("passthrough"), [str(video)], inline=inline, progress=True,
                          handle_signals=False)
    err = capsys.readouterr().err
    bar_fps = float(re.findall(r"([\d.]+) fps", err.split("\n")[-2])[-1])
    summary = result.stats.summary_lines()[0]
    assert "start-up" in summary and "fps steady state" in summary
    assert f"{bar_fps:.1f} fps steady state" in summary, (err.split("\n")[-2], summary)
    assert result.stats.warm_frames >= WARMUP_FRAMES and result.stats.startup_s > 0
