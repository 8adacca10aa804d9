"""Sources side by side: live frames first, offline frames in turns (streampose.runtime.scheduling).

The unit tests drive :class:`FairScheduler` directly. The isolation test runs
the process runtime on two paced live sources, alone and then next to a long
offline video, and compares each live source's latency and drops; the
offline video must still arrive whole and in order. The live sources are
generated ones paced on a shared clock grid (their frames arrive together,
as from cameras in sync), so "alone" always includes one live frame waiting
for the other and the comparison does not depend on how the two sources'
phases happen to fall; a stage can never interrupt a frame it has started,
so the price of the offline video is at most one offline frame per stage.
"""

from __future__ import annotations

import json

import numpy as np

from iohelpers import make_video
from runtime_helpers import OPENER, pipeline
from streampose.records import EndOfStream, FramePacket, StreamStart
from streampose.runtime import run_pipeline
from streampose.runtime.scheduling import FairScheduler


#: frames left out of each live source's latency and drop figures: process and decoder start-up
#: (the first ~150 ms), not scheduling
WARM_UP_FRAMES = 5


def _start(sid: int, live: bool) -> StreamStart:
    return StreamStart(sid, f"s{sid}", 8, 8, 10.0, None if live else 100, live)


def _packet(sid: int, index: int) -> FramePacket:
    return FramePacket(sid, f"s{sid}", index, None, (8, 8, 3), 0.0, slot=index)


def test_live_items_come_first_and_offline_gets_a_batch_after_each_live_round():
    scheduler = FairScheduler(batch_size=2)
    scheduler.add([_start(0, live=False)] + [_packet(0, i) for i in range(5)])
    scheduler.add([_start(1, live=True), _packet(1, 0), _packet(1, 1)])

    def served():
        return [(type(x).__name__[0], x.source_id, getattr(x, "index", None)) for x in scheduler.next_round()]

    # every waiting live item (the stage's live policy keeps the newest of each source) ...
    assert served() == [("S", 1, None), ("F", 1, 0), ("F", 1, 1)]
    scheduler.add([_packet(1, 2)])
    # ... then the offline share owed (one frame per offline source), even though a live frame waits ...
    assert served() == [("S", 0, None), ("F", 0, 0)]
    # ... then live again, then the owed offline frame, then (nothing live) whole offline batches
    assert served() == [("F", 1, 2)]
    assert served() == [("F", 0, 1)]
    assert served() == [("F", 0, 2), ("F", 0, 3)]
    assert served() == [("F", 0, 4)]
    assert scheduler.empty() and scheduler.next_round() == []


def test_offline_sources_take_turns_and_keep_their_order():
    scheduler = FairScheduler(batch_size=3)
    for sid in (0, 1):
        scheduler.add([_start(sid, live=False)] + [_packet(sid, i) for i in range(6)]
                      + [EndOfStream(sid, f"s{sid}", 6)])
    served = []
    while not scheduler.empty():
        items = scheduler.next_round()
        assert len({x.source_id for x in items}) == 1  # one batch of one offline source per round
        served.append(items[0].source_id)
        served_items = [x for x in items if isinstance(x, FramePacket)]
        assert len(served_items) <= 3
    assert served[:4] == [0, 1, 0, 1] or served[:4] == [1, 0, 1, 0]


class LatencyRecorder:
    """A run observer keeping every finished frame's capture → sink latency, per source, in order."""

    def __init__(self) -> None:
        self.latency_ms: dict[int, list[float]] = {}

    def on_sources(self, infos) -> None:
        pass

    def on_source_state(self, source_id, state) -> None:
        pass

    def on_telemetry(self, stage, payload) -> None:
        for sid, values in payload["latency_ms"].items():
            self.latency_ms.setdefault(sid, []).extend(values)

    def on_preview(self, source_id, jpeg) -> None:
        pass

    def p99(self, source_id: int, skip: int = WARM_UP_FRAMES) -> float:
        return float(np.percentile(self.latency_ms[source_id][skip:], 99))


def _dropped(records, source_id: int) -> int:
    """Frames of a live source that never reached the sink, after the warm-up frames."""
    done = {r["frame"] for r in records if r["source"]["id"] == source_id}
    return sum(1 for i in range(WARM_UP_FRAMES, LIVE_FRAMES) if i not in done)


def _live_run(tmp_path, sources, name):
    out = tmp_path / f"{name}.jsonl"
    # A step that costs 5 ms per frame, sleeping (a model's time, without adding CPU contention
    # that would blur the comparison on a small machine).
    pipe = pipeline(("work", [{"type": "test_sleep", "seconds": 0.005}, {"type": "draw"}], 1))
    recorder = LatencyRecorder()
    result = run_pipeline(pipe, sources, [{"type": "jsonl_writer", "path": str(out), "sources": len(sources)}],
                          progress=False, observer=recorder, opener=OPENER)
    assert result.exit_code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return result, records, recorder


LIVE_FRAMES = 150
LIVE = [f"gen?n={LIVE_FRAMES}&fps=30&live=1&aligned=1&w=320&h=240&cam={k}" for k in (0, 1)]


def test_live_sources_are_isolated_from_an_offline_backlog(tmp_path):
    video = make_video(tmp_path / "long.mp4", frames=600, fps=30, width=320, height=240)
    alone, alone_records, alone_latency = _live_run(tmp_path, LIVE, "alone")
    mixed, records, mixed_latency = _live_run(tmp_path, [f"file:{video}"] + LIVE, "mixed")

    offline = [r["frame"] for r in records if r["source"]["id"] == 0]
    assert offline == list(range(600)), "the offline source delivers every frame, in order"

    lines = []
    for k, spec in enumerate(LIVE):
        a_p99, m_p99 = alone_latency.p99(k), mixed_latency.p99(k + 1)
        a_drop, m_drop = _dropped(alone_records, k), _dropped(records, k + 1)
        lines.append(f"live {k}: alone p99 {a_p99:.1f} ms, {a_drop} dropped; next to the offline video "
                     f"p99 {m_p99:.1f} ms, {m_drop} dropped")
        assert m_p99 <= 2.0 * a_p99, lines[-1]
        # One frame of slack in 145: a capture process not scheduled for a whole frame interval
        # (33 ms) on a busy 2-core machine; a stage that let live frames queue behind the offline
        # backlog (its 6 ring slots, 30 ms) would drop dozens.
        assert m_drop <= a_drop + 1, lines[-1] + f"; {[(s.name, s.dropped) for s in mixed.stats.stages]}"
    where = [(s.name, s.dropped) for s in mixed.stats.stages if s.dropped]
    print("\nisolation: " + "; ".join(lines) + f"; drops by place next to the offline video: {where}")
