"""Stage replicas: frames dealt to N processes and re-ordered after them, crashes, and the validator."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import threading
import time

import pytest

from runtime_helpers import OPENER, STEPS_FILE, frames_of, read_records
from streampose.config import parse_pipeline
from streampose.errors import ConfigError
from streampose.records import EndOfStream, FramePacket, StreamStart
from streampose.runtime import StageFailed, run_pipeline
from streampose.runtime.ring import SEGMENT_PREFIX
from streampose.runtime.replicas import Reorderer


def _pipeline(out, work: dict, replicas: int = 2, batch_size: int = 2, **stage_keys):
    return parse_pipeline({"step_modules": [STEPS_FILE], "stages": [
        {"name": "pose", "batch_size": batch_size, "replicas": replicas, "steps": [{"type": "test_work", **work}],
         **stage_keys},
        {"name": "sink", "steps": [{"type": "test_record", "path": str(out)}]}]}, name="replicas")


def _rings_left() -> set[str]:
    return {name for name in os.listdir("/dev/shm") if name.startswith(SEGMENT_PREFIX)}


def test_two_replicas_every_frame_in_order(tmp_path):
    out = tmp_path / "rec.jsonl"
    p = _pipeline(out, {"seconds": 0.004, "jitter": 3.0})
    result = run_pipeline(p, ["gen?n=120", "gen?n=50&w=32&h=24"], opener=OPENER, progress=False)
    assert result.exit_code == 0
    records = read_records(out)
    for source, n in ((0, 120), (1, 50)):
        frames = frames_of(records, source)
        assert [f["index"] for f in frames] == list(range(n))  # lossless, in order
        assert [f["tag"] for f in frames] == list(range(n))  # each with its own pixels
        assert len({f["test_work_pid"] for f in frames}) == 2  # both replicas worked
        assert {f["test_work_pid"] for f in frames[0::2]} != {f["test_work_pid"] for f in frames[1::2]}
    assert [r["event"] for r in records if r["event"] in ("start", "end")].count("end") == 2  # one each
    names = [s.name for s in result.stats.stages]
    assert "pose[0]" in names and "pose[1]" in names
    assert mp.active_children() == []


def test_devices_give_one_replica_per_device(tmp_path):
    out = tmp_path / "rec.jsonl"
    p = _pipeline(out, {"seconds": 0.0}, replicas=2, devices=["cpu", "cpu:0"])
    run_pipeline(p, ["gen?n=20"], opener=OPENER, progress=False)
    frames = frames_of(read_records(out), 0)
    assert [f["index"] for f in frames] == list(range(20))
    by_pid = {}
    for f in frames:
        by_pid.setdefault(f["test_work_pid"], set()).add(f["test_work_device"])
    assert sorted(tuple(d) for d in by_pid.values()) == [("cpu",), ("cpu:0",)]


def test_replicated_live_source_keeps_order_and_latest_frame_policy(tmp_path):
    out = tmp_path / "rec.jsonl"
    # A slow stage: the live source makes frames faster than two replicas can take them.
    p = _pipeline(out, {"seconds": 0.03}, batch_size=1)
    result = run_pipeline(p, ["gen?n=150&fps=200&live=1"], opener=OPENER, progress=False)
    indices = [f["index"] for f in frames_of(read_records(out), 0)]
    assert indices == sorted(set(indices))  # strictly increasing: never out of order, never twice
    assert 0 < len(indices) < 150  # stale frames were dropped rather than queued
    assert result.exit_code == 0


def test_sigkilled_replica_stops_the_run_within_2s_nothing_left(tmp_path):
    out = tmp_path / "rec.jsonl"
    p = _pipeline(out, {"seconds": 0.002})
    before = _rings_left()
    killed = []

    def kill_one_replica():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists():
                frames = [r for r in read_records(out) if r["event"] == "frame"]
                if len(frames) >= 5:
                    killed.append(time.monotonic())
                    os.kill(frames[-1]["test_work_pid"], signal.SIGKILL)
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_replica, daemon=True)
    killer.start()
    with pytest.raises(StageFailed) as info:
        run_pipeline(p, ["gen?n=100000&fps=300"], opener=OPENER, progress=False)
    assert killed and time.monotonic() - killed[0] < 2.0
    assert info.value.stage in ("pose[0]", "pose[1]") and "SIGKILL" in info.value.details
    assert read_records(out)[-1]["event"] == "aborted"
    assert mp.active_children() == []
    assert _rings_left() <= before


@pytest.mark.parametrize("stages, message", [
    ([{"name": "track", "replicas": 2, "steps": [{"type": "iou_tracker"}]}, {"name": "out", "steps": [{"type": "draw"}]}],
     "stages[0].replicas: step 'iou_tracker' needs every frame of a source in order in one process"),
    ([{"name": "f", "replicas": 2, "steps": [{"type": "one_euro_filter"}]}, {"name": "out", "steps": [{"type": "draw"}]}],
     "stages[0].replicas: step 'one_euro_filter' needs every frame"),
    ([{"name": "out", "replicas": 2, "steps": [{"type": "draw"}]}],
     "stages[0].replicas: the last stage ('out') holds the outputs"),
    ([{"name": "p", "replicas": 3, "devices": ["cpu", "cpu"], "steps": [{"type": "draw"}]},
      {"name": "out", "steps": [{"type": "draw"}]}], "stages[0].replicas: 3 replicas but 2 devices"),
    ([{"name": "p", "replicas": 0, "steps": [{"type": "draw"}]}, {"name": "out", "steps": [{"type": "draw"}]}],
     "stages[0].replicas: must be between 1 and 16, got 0"),
    ([{"name": "p", "devices": "cuda:0", "steps": [{"type": "draw"}]}, {"name": "out", "steps": [{"type": "draw"}]}],
     "stages[0].devices: expected a list of device names"),
])
def test_validator_refuses_replicas_where_order_matters(stages, message):
    with pytest.raises(ConfigError) as info:
        parse_pipeline({"stages": stages})
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def _packet(source, seq):
    return FramePacket(source, "s", seq, None, (1, 1, 3), 0.0, slot=seq, seq=seq)


def test_reorderer_restores_order_of_shuffled_offline_packets():
    rng = random.Random(3)
    released = []
    reorder = Reorderer(upstream=2, release=released.append)
    starts = [StreamStart(s, "s", 1, 1, 25.0, 40, False) for s in (0, 1)]
    ends = [EndOfStream(s, "s", 40) for s in (0, 1)]
    # What two replicas would send: each its own frames in order, interleaved at random.
    streams = [[starts[s]] + [_packet(s, q) for q in range(r, 40, 2)] + [ends[s]] for r in (0, 1) for s in (0, 1)]
    arrivals = []
    while any(streams):
        stream = rng.choice([st for st in streams if st])
        arrivals.append(stream.pop(0))
    out = []
    for k in range(0, len(arrivals), 5):
        out += reorder.feed(arrivals[k:k + 5])
    for s in (0, 1):
        mine = [x for x in out if x.source_id == s]
        assert isinstance(mine[0], StreamStart) and isinstance(mine[-1], EndOfStream)
        assert [x.seq for x in mine[1:-1]] == list(range(40))
    assert sum(isinstance(x, StreamStart) for x in out) == 2 and not released


def test_reorderer_for_a_replica_expects_only_its_own_frames():
    reorder = Reorderer(upstream=2, release=lambda p: None, replica=1, replicas=3)
    out = reorder.feed([StreamStart(0, "s", 1, 1, 25.0, 9, False), _packet(0, 4), _packet(0, 1), _packet(0, 7)])
    assert [x.seq for x in out[1:]] == [1, 4, 7]


def test_reorderer_drops_late_live_packets_and_releases_them():
    released = []
    reorder = Reorderer(upstream=2, release=released.append)
    out = reorder.feed([StreamStart(0, "s", 1, 1, 25.0, None, True), _packet(0, 3), _packet(0, 2), _packet(0, 5)])
    assert [x.seq for x in out[1:]] == [3, 5]
    assert [p.seq for p in released] == [2] and reorder.dropped == 1
