"""The camera fleet on a real local Ray instance: 6 paced live sources over 3 actors, one actor killed.

Five ``lavfi:`` test patterns paced by ``realtime`` and one stream from the
RTSP test server (tests/rtsp_server.py, when GStreamer is installed; a sixth
lavfi source otherwise) run through the ``passthrough`` pipeline, two per actor.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from distributed_helpers import OBJECT_STORE_BYTES

ray = pytest.importorskip("ray")

from streampose.config import load_pipeline  # noqa: E402
from streampose.distributed.fleet import Fleet, FleetOptions  # noqa: E402
from streampose.io.sources import SourceOptions  # noqa: E402

LAVFI = "lavfi:testsrc2=size=160x120:rate=10,realtime"
# A kill is noticed at the next poll; the new actor then imports torch and opens its sources.
RESUME_LIMIT_S = 30.0
# The other cameras' frames keep coming: never a gap longer than this (they run at 10 frames/s).
GAP_LIMIT_S = 5.0


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=3, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture
def rtsp_url():
    from test_rtsp import _PROBLEM, RtspServer

    if _PROBLEM is not None:
        yield None
        return
    server = RtspServer()
    server.start()
    yield server.url
    server.kill()


def _wait(fleet: Fleet, condition, timeout_s: float, history: list) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        snapshot = fleet.poll()
        history.append((time.monotonic(), snapshot))
        if condition(snapshot):
            return snapshot
        time.sleep(0.25)
    raise AssertionError(f"timed out; last status: {json.dumps(history[-1][1], indent=1)}")


def test_six_cameras_over_three_actors_survive_a_killed_actor(local_ray, rtsp_url, tmp_path):
    cameras = [f"lavfi:testsrc2=size=160x120:rate={8 + i},realtime" for i in range(5)]
    cameras.append(rtsp_url or LAVFI)
    options = FleetOptions(cameras_per_actor=2, num_cpus=1)
    source_options = SourceOptions(open_timeout_s=5.0, read_timeout_s=2.0, reconnect_attempts=10,
                                   backoff_initial_s=0.2, backoff_max_s=1.0)
    fleet = Fleet(cameras, load_pipeline("passthrough"), tmp_path / "fleet", options, source_options)
    history: list = []
    fleet.start()
    try:
        # All six run, on three actors.
        running = _wait(fleet, lambda s: all(c["state"] == "running" and c["frames"] > 5 for c in s.values()),
                        90, history)
        assert len(running) == 6
        assert len({c["actor"] for c in running.values()}) == 3

        victim_pid = next(iter(running.values()))["actor"]
        victims = {name for name, c in running.items() if c["actor"] == victim_pid}
        others = set(running) - victims
        assert len(victims) == 2
        killed_at = time.monotonic()
        os.kill(victim_pid, signal.SIGKILL)

        resumed = _wait(fleet, lambda s: all(s[n]["restarts"] == 1 and s[n]["state"] == "running"
                                             and s[n]["frames"] > 3 for n in victims), RESUME_LIMIT_S, history)
        resume_s = time.monotonic() - killed_at
        assert {resumed[n]["actor"] for n in victims} != {victim_pid}
        # ...and the other cameras never stopped: same session, frames always fresh, no restart.
        for t, snapshot in history:
            if t < killed_at:
                continue
            for name in others:
                assert snapshot[name]["restarts"] == 0 and snapshot[name]["state"] == "running"
                assert snapshot[name]["last_frame_age_s"] is not None
                assert snapshot[name]["last_frame_age_s"] < GAP_LIMIT_S, (name, snapshot[name])
            for name in others:
                assert resumed[name]["frames"] > running[name]["frames"]
        print(f"cameras of the killed actor resumed {resume_s:.1f} s after the kill")

        status = json.loads((tmp_path / "fleet" / "status.json").read_text())
        assert set(status["cameras"]) == set(running)
        metrics = (tmp_path / "fleet" / "metrics.prom").read_text()
        assert all(f'streampose_camera_frames_total{{camera="{name}"}}' in metrics for name in running)
    finally:
        final = fleet.stop()
    # A clean stop publishes each camera's session file; the killed sessions' lines stay in their partial files.
    for name in running:
        published = [p for p in (tmp_path / "fleet" / name).glob("*.jsonl") if not p.name.startswith(".")]
        assert len(published) == 1, (name, published)
        lines = published[0].read_text().splitlines()
        assert len(lines) >= final[name]["frames"] > 0
        frames = [json.loads(line)["frame"] for line in lines]
        assert frames == sorted(frames) and len(set(frames)) == len(frames)
