"""Sources side by side: live frames first, offline frames in turns (streampose.runtime.scheduling).

The unit tests drive :class:`FairScheduler` directly. The isolation test runs
the process runtime on two paced live sources (FFmpeg ``lavfi`` graphs with
``realtime``), alone and then next to a long offline video, and compares
each live source's latency and drops; the offline video must still arrive
whole and in order.
"""

from __future__ import annotations

import json

import pytest

from iohelpers import make_video
from runtime_helpers import pipeline
from streampose.records import EndOfStream, FramePacket, StreamStart
from streampose.runtime import run_pipeline
from streampose.runtime.scheduling import FairScheduler


def _start(sid: int, live: bool) -> StreamStart:
    return StreamStart(sid, f"s{sid}", 8, 8, 10.0, None if live else 100, live)


def _packet(sid: int, index: int) -> FramePacket:
    return FramePacket(sid, f"s{sid}", index, None, (8, 8, 3), 0.0, slot=index)


def test_live_items_come_first_and_offline_gets_one_batch_per_round():
    scheduler = FairScheduler(batch_size=2)
    scheduler.add([_start(0, live=False)] + [_packet(0, i) for i in range(5)])
    scheduler.add([_start(1, live=True), _packet(1, 0), _packet(1, 1)])
    first = scheduler.next_round()
    # every waiting live item (the stage's live policy keeps the newest), then one offline batch
    assert [(type(x).__name__, x.source_id, getattr(x, "index", None)) for x in first] == [
        ("StreamStart", 1, None), ("FramePacket", 1, 0), ("FramePacket", 1, 1),
        ("StreamStart", 0, None), ("FramePacket", 0, 0), ("FramePacket", 0, 1)]
    scheduler.add([_packet(1, 2)])
    second = scheduler.next_round()
    assert [(x.source_id, x.index) for x in second] == [(1, 2), (0, 2), (0, 3)]
    third = scheduler.next_round()
    assert [(x.source_id, x.index) for x in third] == [(0, 4)]
    assert scheduler.empty() and scheduler.next_round() == []


def test_offline_sources_take_turns_and_keep_their_order():
    scheduler = FairScheduler(batch_size=3)
    for sid in (0, 1):
        scheduler.add([_start(sid, live=False)] + [_packet(sid, i) for i in range(6)]
                      + [EndOfStream(sid, f"s{sid}", 6)])
    served = []
    while not scheduler.empty():
        items = scheduler.next_round()
        assert len({x.source_id for x in items}) == 1  # one offline batch per round
        served.append(items[0].source_id)
        served_items = [x for x in items if isinstance(x, FramePacket)]
        assert len(served_items) <= 3
    assert served[:4] == [0, 1, 0, 1] or served[:4] == [1, 0, 1, 0]


def _live_run(tmp_path, sources, name):
    out = tmp_path / f"{name}.jsonl"
    # A step that costs 10 ms per frame (sleeping, so CPU contention does not blur the comparison).
    pipe = pipeline(("work", [{"type": "test_sleep", "seconds": 0.01}, {"type": "draw"}], 1))
    result = run_pipeline(pipe, sources, [{"type": "jsonl_writer", "path": str(out), "sources": len(sources)}],
                          progress=False)
    assert result.exit_code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return result, records


LIVE = ["lavfi:testsrc=size=320x240:rate=15:duration=3,realtime",
        "lavfi:testsrc2=size=320x240:rate=15:duration=3,realtime"]


def test_live_sources_are_isolated_from_an_offline_backlog(tmp_path):
    video = make_video(tmp_path / "long.mp4", frames=300, fps=30, width=320, height=240)
    alone, _ = _live_run(tmp_path, LIVE, "alone")
    mixed, records = _live_run(tmp_path, [str(video)] + LIVE, "mixed")

    offline = [r["frame"] for r in records if r["source"]["id"] == 0]
    assert offline == list(range(300)), "the offline source delivers every frame, in order"

    lines = []
    for k, spec in enumerate(LIVE):
        a, m = alone.stats.source_latency[spec], mixed.stats.source_latency[spec]
        a_frames, m_frames = alone.stats.frames_done[spec], mixed.stats.frames_done[spec]
        a_drop, m_drop = 45 - a_frames, 45 - m_frames  # the graphs make 45 frames each
        lines.append(f"{spec[6:14]}: alone p50 {a.percentile(50):.1f} p99 {a.percentile(99):.1f} ms, "
                     f"{a_frames} frames; with offline p50 {m.percentile(50):.1f} p99 {m.percentile(99):.1f} ms, "
                     f"{m_frames} frames")
        assert m.percentile(99) <= 2.0 * a.percentile(99), lines[-1]
        assert m_drop <= a_drop, lines[-1]
    print("\nisolation: " + "; ".join(lines))
