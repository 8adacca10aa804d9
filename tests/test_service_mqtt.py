"""Results to MQTT (``--output mqtt://``) against a real mosquitto broker started on 127.0.0.1.

Shows: a subscriber receives one message per frame, equal to the JSON-lines
records; killing the broker mid-run does not stall the pipeline (drops are
counted and shown in /api/status) and publishing resumes once it is back.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from servers import MOSQUITTO, Mosquitto
from service_helpers import Service, by_id, lavfi

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed "
                                "(Debian package mosquitto, see .ci/apt-packages.txt)")
TOPIC = "streampose/test/poses"


@pytest.fixture
def broker(tmp_path):
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.kill()


class Subscriber:
    """A paho subscriber on TOPIC that re-subscribes after reconnecting; keeps (arrival time, payload)."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[float, dict]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(TOPIC, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rc, p: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append((time.monotonic(), json.loads(m.payload)))
        self.client.connect_async("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the subscriber could not subscribe"

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_one_message_per_frame_equal_to_the_json_lines(tmp_path, broker):
    subscriber = Subscriber(broker.port)
    service = Service(["--source", lavfi(3), "--output", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}",
                       "--mqtt-qos", "1", "--output", "out.jsonl"], tmp_path, serve=False)
    try:
        code = service.wait(60)
        time.sleep(0.5)  # the last messages in flight
    finally:
        service.kill()
        subscriber.stop()
    assert code == 0, service.stderr()
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(records) >= 30
    assert [payload for _, payload in subscriber.messages] == records


def test_a_broker_that_goes_away_does_not_stall_the_pipeline(tmp_path, broker):
    subscriber = Subscriber(broker.port)
    service = Service(["--source", lavfi(14), "--output", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"], tmp_path)
    try:
        service.wait_up()
        service.wait_for(lambda s: len(subscriber.messages) > 15, 30, "messages arriving")
        broker.kill()
        before = by_id(service.status())[0]["frames"]
        time.sleep(2.0)
        during = by_id(service.status())[0]["frames"] - before
        status = service.wait_for(lambda s: s["sinks"].get("mqtt_publisher", {}).get("dropped", 0) > 0, 10,
                                  "drops counted")
        received_before_restart = len(subscriber.messages)
        broker.start()
        restarted = time.monotonic()
        deadline = restarted + 20
        while len(subscriber.messages) == received_before_restart and time.monotonic() < deadline:
            time.sleep(0.05)
        resumed_s = time.monotonic() - restarted
        final = service.wait_for(lambda s: s["sinks"]["mqtt_publisher"]["connected"] == 1, 10, "reconnected")
        code = service.wait(60)
    finally:
        service.kill()
        subscriber.stop()
    assert code == 0, service.stderr()
    print(f"\nMQTT broker killed: the pipeline made {during} frames in the 2 s without a broker; "
          f"{status['sinks']['mqtt_publisher']['dropped']} messages dropped and counted; messages again "
          f"{resumed_s:.1f} s after the restart")
    assert during >= 20, "the pipeline kept going at about 15 fps while the broker was away"
    assert len(subscriber.messages) > received_before_restart, "publishing resumed"
    assert final["sinks"]["mqtt_publisher"]["reconnects"] == 1
    frames = [m["frame"] for _, m in subscriber.messages]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
