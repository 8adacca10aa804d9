"""The camera fleet on a real local Ray instance: 6 paced live sources over 3 actors, one actor killed.

Five ``lavfi:`` test patterns paced by ``realtime`` and one stream from the
RTSP test server (tests/rtsp_server.py, when GStreamer is installed; a sixth
lavfi source otherwise) run through the ``passthrough`` pipeline, two per actor,
into rotated JSON lines per camera and a real mosquitto broker (one topic per
camera; when mosquitto is installed).
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
    from servers import RtspServer, gstreamer_problem

    if gstreamer_problem() is not None:
        yield None
        return
    server = RtspServer()
    server.start()
    yield server.url
    server.kill()


@pytest.fixture
def mqtt_port(tmp_path):
    """A mosquitto broker on 127.0.0.1 (None when mosquitto is not installed)."""
    from servers import MOSQUITTO, Mosquitto

    if MOSQUITTO is None:
        yield None
        return
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker.port
    broker.kill()


class TopicCounter:
    """Counts MQTT messages per topic under ``prefix/#``."""

    def __init__(self, port: int, prefix: str) -> None:
        import paho.mqtt.client as mqtt

        self.counts: dict[str, int] = {}
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{prefix}/#")
        self.client.on_subscribe = lambda c, u, mid, rc, p: subscribed.set()
        self.client.on_message = lambda c, u, m: self.counts.__setitem__(m.topic, self.counts.get(m.topic, 0) + 1)
        self.client.connect_async("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        assert subscribed.wait(10), "the subscriber could not subscribe"

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(fleet: Fleet, condition, timeout_s: float, history: list) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        snapshot = fleet.poll()
        history.append((time.monotonic(), snapshot))
        if condition(snapshot):
            return snapshot
        time.sleep(0.25)
    raise AssertionError(f"timed out; last status: {json.dumps(history[-1][1], indent=1)}")


def test_six_cameras_over_three_actors_survive_a_killed_actor(local_ray, rtsp_url, mqtt_port, tmp_path):
    cameras = [f"lavfi:testsrc2=size=160x120:rate={8 + i},realtime" for i in range(5)]
    cameras.append(rtsp_url or LAVFI)
    # Results: JSON lines per camera rotated every 2 s, and one MQTT topic per camera.
    mqtt = [{"type": "mqtt_publisher", "url": f"mqtt://127.0.0.1:{mqtt_port}/fleet/{{camera}}"}] if mqtt_port else []
    subscriber = TopicCounter(mqtt_port, "fleet") if mqtt_port else None
    options = FleetOptions(cameras_per_actor=2, num_cpus=1, rotate="2s", extra_sinks=mqtt)
    source_options = SourceOptions(open_timeout_s=5.0, read_timeout_s=2.0, reconnect_attempts=10,
                                   backoff_initial_s=0.2, backoff_max_s=1.0)
    fleet = Fleet(cameras, load_pipeline("passthrough"), tmp_path / "fleet", options, source_options)
    history: list = []
    fleet.start()
    try:
        # All six run, on three actors, and each has published its first 2 s segment.
        def published(name: str) -> bool:
            return any(not p.name.startswith(".") for p in (tmp_path / "fleet" / name).glob("*.jsonl"))

        running = _wait(fleet, lambda s: all(c["state"] == "running" and c["frames"] > 5 and published(name)
                                             for name, c in s.items()), 90, history)
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
        if subscriber is not None:
            time.sleep(0.5)  # the last messages in flight
            subscriber.stop()
    # Rotated segments are published as they fill and at the stop: the killed actor's cameras keep the
    # segments of their first session, and the new session's follow.
    for name in running:
        sessions: dict[str, list[int]] = {}
        for segment in sorted((tmp_path / "fleet" / name).glob("*.jsonl")):
            if segment.name.startswith("."):
                continue
            frames = [json.loads(line)["frame"] for line in segment.read_text().splitlines()]
            sessions.setdefault(segment.name.split(".")[0], []).extend(frames)
        assert len(sessions) == (2 if name in victims else 1), (name, sessions.keys())
        for frames in sessions.values():
            assert frames == sorted(frames) and len(set(frames)) == len(frames) and frames
        assert len(sessions[max(sessions)]) >= final[name]["frames"] > 0
    if subscriber is not None:
        assert set(subscriber.counts) == {f"fleet/{name}" for name in running}
        assert all(subscriber.counts[f"fleet/{name}"] >= final[name]["frames"] for name in running)
