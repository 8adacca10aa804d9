"""The runtime end to end on generated sources: inline and process runners agree,
order and completeness, batching, several sources, mixed sizes, a failing or stalled source.
(Live vs offline policy with a slow consumer: test_runtime_media.py, on real sources.)"""

from __future__ import annotations

import pytest

from runtime_helpers import OPENER, frames_of, pipeline, read_records
from streampose.errors import SourceError
from streampose.runtime import run_pipeline

SOURCES = ["gen?n=40&w=96&h=64", "gen?n=25&w=80&h=60&mixed=1"]


@pytest.fixture(scope="module")
def two_stage_runs(tmp_path_factory):
    """The same 2-stage pipeline over two sources, inline and with processes (run once)."""
    runs = {}
    for inline in (True, False):
        out = tmp_path_factory.mktemp("rec") / "rec.jsonl"
        p = pipeline(("render", [{"type": "draw"}]),
                     ("sink", [{"type": "test_record", "path": str(out), "checksum": True}], 4))
        result = run_pipeline(p, SOURCES, opener=OPENER, inline=inline, progress=False)
        runs[inline] = (result, read_records(out))
    return runs


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "processes"])
def test_every_frame_once_in_order_with_events_around(two_stage_runs, inline):
    result, records = two_stage_runs[inline]
    assert result.reason == "completed" and result.exit_code == 0
    for source, n in ((0, 40), (1, 25)):
        frames = frames_of(records, source)
        assert [f["index"] for f in frames] == list(range(n))
        assert [f["tag"] for f in frames] == list(range(n))  # the pixels are that frame's pixels
        events = [i for i, r in enumerate(records) if r.get("source") == source and r["event"] != "frame"]
        first, last = records.index(frames[0]), records.index(frames[-1])
        assert records[events[0]]["event"] == "start" and events[0] < first
        assert records[events[-1]] == {"event": "end", "source": source, "frames_sent": n, "error": None}
        assert events[-1] > last
    assert [r["event"] for r in records].count("closed") == 1 and records[-1]["event"] == "closed"
    assert result.stats.frames_done == {SOURCES[0]: 40, SOURCES[1]: 25}
    assert result.stats.dropped == 0
    assert all(f["batch"] <= 4 for f in records if f["event"] == "frame")


def test_inline_and_processes_produce_identical_frames(two_stage_runs):
    def key(records):
        return sorted((f["source"], f["index"], f["crc"], tuple(f["shape"])) for f in records if f["event"] == "frame")

    assert key(two_stage_runs[True][1]) == key(two_stage_runs[False][1])


def test_mixed_sizes_keep_their_shape_through_the_ring(two_stage_runs):
    _, records = two_stage_runs[False]
    shapes = {f["index"]: tuple(f["shape"]) for f in frames_of(records, 1)}
    assert shapes[0] == (60, 80, 3) and shapes[1] == (30, 40, 3) and shapes[2] == (60, 80, 3)
    assert all(f["slot"] >= 0 for f in frames_of(records, 1))  # pixels came through ring slots
    assert {f["slot"] for f in frames_of(records, 0)} <= set(range(4 + 2 * 5))


def test_stats_count_every_stage(two_stage_runs):
    result, _ = two_stage_runs[False]
    stats = result.stats
    assert [s.name for s in stats.stages] == ["capture[0]", "capture[1]", "render", "sink"]
    assert stats.stage("capture[0]").frames_out == 40 and stats.stage("capture[1]").extra["generated"] == 25
    assert stats.stage("render").frames_in == 65 and stats.stage("sink").frames_out == 65
    assert stats.stage("render").busy_s["draw"] > 0
    assert stats.latency.count == 65 and 0 < stats.latency.percentile(50) <= stats.latency.percentile(99)
    text = "\n".join(stats.summary_lines())
    assert "65 frames from 2 sources" in text and "p99" in text and "test_record" in text


def test_max_frames_limits_each_source(tmp_path):
    out = tmp_path / "rec.jsonl"
    p = pipeline(("sink", [{"type": "test_record", "path": str(out)}]))
    result = run_pipeline(p, ["gen?n=50", "gen?n=3", "gen?n=50"], opener=OPENER, inline=True, max_frames=5,
                          progress=False)
    records = read_records(out)
    assert [f["index"] for f in frames_of(records, 0)] == [0, 1, 2, 3, 4]
    assert [f["index"] for f in frames_of(records, 1)] == [0, 1, 2]
    assert result.stats.frames_done == {"gen?n=50 [0]": 5, "gen?n=3": 3, "gen?n=50 [2]": 5}


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "processes"])
def test_failed_source_ends_in_band_and_the_other_goes_on(tmp_path, inline):
    out = tmp_path / "rec.jsonl"
    p = pipeline(("sink", [{"type": "test_record", "path": str(out)}]))
    result = run_pipeline(p, ["gen?n=30&fail_at=7", "gen?n=12"], opener=OPENER, inline=inline, progress=False)
    records = read_records(out)
    assert len(frames_of(records, 0)) == 7 and len(frames_of(records, 1)) == 12
    ends = {r["source"]: r for r in records if r["event"] == "end"}
    assert ends[0]["frames_sent"] == 7 and "failed at frame 7" in ends[0]["error"]
    assert ends[1]["error"] is None
    assert result.source_errors == ["generated source failed at frame 7"] and result.exit_code == 2


def test_unknown_source_fails_before_anything_starts(tmp_path):
    out = tmp_path / "rec.jsonl"
    p = pipeline(("sink", [{"type": "test_record", "path": str(out)}]))
    with pytest.raises(SourceError, match="unknown test source"):
        run_pipeline(p, ["gen?n=3", "nope"], opener=OPENER, progress=False)
    assert not out.exists()  # no stage ever started


def test_a_stalled_live_source_does_not_stall_the_others(tmp_path):
    out = tmp_path / "rec.jsonl"
    p = pipeline(("render", [{"type": "draw"}]), ("sink", [{"type": "test_record", "path": str(out)}]))
    stalled = "gen?n=6&fps=50&live=1&hang_at=3&hang_s=1.5"
    result = run_pipeline(p, [stalled, "gen?n=30&fps=50"], opener=OPENER, progress=False)
    records = read_records(out)
    hung, steady = frames_of(records, 0), frames_of(records, 1)
    assert [f["index"] for f in steady] == list(range(30))
    after = [f for f in hung if f["index"] >= 3]  # live: a stale frame may be dropped, the last never
    assert after and after[-1]["index"] == 5
    # the steady source went through completely while the live one was stalled before its frame 3
    assert steady[-1]["t"] < after[0]["t"] - 0.3
    assert result.exit_code == 0
