"""Edge policies: live drops stale packets (never events), offline keeps everything; hand-offs."""

from __future__ import annotations

import threading
import time

from streampose.records import EndOfStream, FramePacket, StreamStart
from streampose.runtime.edges import Handoff, drop_stale
from streampose.runtime.stats import LatencyHistogram


def _packet(source_id, index):
    return FramePacket(source_id, f"s{source_id}", index, None, (2, 2, 3), 0.0, slot=index)


def test_live_backlog_keeps_only_the_newest_packet_per_live_source():
    start = StreamStart(0, "s0", 2, 2, 30.0, None, True)
    items = [start, _packet(0, 0), _packet(1, 0), _packet(0, 1), _packet(1, 1), _packet(0, 2)]
    kept, dropped = drop_stale(items, live_sources={0})
    assert [(p.source_id, p.index) for p in dropped] == [(0, 0), (0, 1)]
    assert kept[0] is start
    assert [(p.source_id, p.index) for p in kept[1:]] == [(1, 0), (1, 1), (0, 2)]


def test_offline_backlog_and_events_are_never_dropped():
    end = EndOfStream(0, "s0", 3)
    items = [_packet(0, 0), _packet(0, 1), _packet(0, 2), end]
    kept, dropped = drop_stale(items, live_sources=set())
    assert kept == items and dropped == []
    kept, dropped = drop_stale(items, live_sources={0})
    assert [p.index for p in dropped] == [0, 1] and kept[-1] is end


def test_handoff_block_is_lossless_and_ordered():
    h = Handoff("block", capacity=2)
    got = []

    def consume():
        while True:
            item = h.get(1.0)
            if item == "end":
                return
            if item is not None:
                got.append(item)
                time.sleep(0.001)

    t = threading.Thread(target=consume)
    t.start()
    for i in range(200):
        assert h.put(i)
    h.put_last("end")
    t.join(10)
    assert got == list(range(200)) and h.dropped == 0


def test_handoff_newest_replaces_and_counts():
    notify = threading.Event()
    h = Handoff("newest", notify=notify)
    for i in range(5):
        h.put(i)
    assert notify.is_set()
    h.put_last("end")
    assert h.get(0) == 4 and h.get(0) == "end" and h.get(0) is None
    assert h.dropped == 4


def test_closed_handoff_releases_a_blocked_producer():
    h = Handoff("block", capacity=1)
    h.put(0)
    result = []
    t = threading.Thread(target=lambda: result.append(h.put(1)))
    t.start()
    time.sleep(0.05)
    h.close()
    t.join(2)
    assert result == [False]


def test_latency_percentiles_are_close_to_exact():
    hist, other = LatencyHistogram(), LatencyHistogram()
    values = [0.5 + 0.37 * i for i in range(1000)]
    for v in values[:600]:
        hist.add(v)
    for v in values[600:]:
        other.add(v)
    hist.merge(other)
    assert hist.count == 1000
    for q in (50, 99):
        exact = sorted(values)[int(round(q / 100 * 1000)) - 1]
        assert abs(hist.percentile(q) - exact) / exact < 0.015
    assert LatencyHistogram().percentile(50) is None
