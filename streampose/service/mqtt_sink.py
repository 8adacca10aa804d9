"""Publishing each frame's results to an MQTT broker (paho-mqtt, the ``serve`` extra).

``--output mqtt://[USER:PASSWORD@]HOST[:PORT]/TOPIC`` publishes one message
per frame on TOPIC, whose payload is the frame's JSON-lines record (the same
text as a ``.jsonl`` line, without the newline), with the chosen QoS and
retain flag.

The broker being down never stalls the pipeline: the client connects and
reconnects on paho's own network thread (``connect_async`` + ``loop_start``,
backoff up to ``reconnect_max_s``), and while it is not connected, or its
outgoing queue is full, a message is dropped and counted rather than waited
for. Counters: ``published``, ``dropped``, ``connected`` (0/1), ``reconnects``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..errors import SinkError
from ..io.urls import redact_text

log = logging.getLogger(__name__)

#: messages paho may hold for sending before ``publish`` drops instead.
MAX_QUEUED = 256


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    topic: str
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> "MqttTarget":
        """``mqtt://[user:pass@]host[:port]/topic`` (port 1883 by default); SinkError when malformed."""
        parts = urlsplit(url)
        topic = unquote(parts.path.lstrip("/"))
        if parts.scheme != "mqtt" or not parts.hostname or not topic:
            raise SinkError(f"output {redact_text(url)!r}: expected mqtt://HOST[:PORT]/TOPIC, e.g. "
                            "mqtt://127.0.0.1:1883/streampose/poses")
        if any(c in topic for c in "+#"):
            raise SinkError(f"output {redact_text(url)!r}: a topic to publish on cannot contain + or #")
        try:
            port = parts.port or 1883
        except ValueError as e:
            raise SinkError(f"output {redact_text(url)!r}: bad port ({e})") from e
        return cls(parts.hostname, port, topic, unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)


class MqttPublisher:
    """A connected-in-the-background MQTT client that never blocks :meth:`publish`."""

    def __init__(self, url: str, qos: int = 0, retain: bool = False, reconnect_max_s: float = 5.0,
                 client_id: str = "") -> None:
        import paho.mqtt.client as mqtt

        self.target = MqttTarget.parse(url)
        self.name = redact_text(url)
        self.qos, self.retain = qos, retain
        self.published = 0
        self.dropped = 0
        self.reconnects = 0
        self._ever_connected = False
        self._connected = threading.Event()
        self._mqtt = mqtt
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if self.target.username:
            self.client.username_pw_set(self.target.username, self.target.password)
        self.client.max_queued_messages_set(MAX_QUEUED)
        self.client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(reconnect_max_s)))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT %s refused the connection: %s", self.name, reason_code)
            return
        if self._ever_connected:
            self.reconnects += 1
            log.warning("MQTT %s: reconnected; publishing again", self.name)
        self._ever_connected = True
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set():
            log.warning("MQTT %s: connection lost (%s); messages are dropped until it is back", self.name,
                        reason_code)
        self._connected.clear()

    def start(self, wait_s: float = 2.0) -> None:
        """Start connecting (in the background) and wait up to ``wait_s`` for the first connection."""
        try:
            self.client.connect_async(self.target.host, self.target.port, keepalive=10)
        except (OSError, ValueError) as e:
            raise SinkError(f"MQTT output {self.name!r}: {e}") from e
        self.client.loop_start()
        if not self._connected.wait(wait_s):
            log.warning("MQTT %s: broker not reachable yet; messages are dropped until it is", self.name)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def publish(self, payload: str) -> bool:
        """Queue one message; False (and counted as dropped) when it cannot go now."""
        if not self._connected.is_set():
            self.dropped += 1
            return False
        info = self.client.publish(self.target.topic, payload, qos=self.qos, retain=self.retain)
        if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
            self.dropped += 1
            return False
        self.published += 1
        return True

    def counters(self) -> dict[str, int]:
        return {"published": self.published, "dropped": self.dropped, "reconnects": self.reconnects,
                "connected": int(self.connected)}

    def close(self, flush_s: float = 2.0) -> None:
        """Give queued messages up to ``flush_s`` to leave, then disconnect."""
        end = time.monotonic() + flush_s
        while self._connected.is_set() and self.client.want_write() and time.monotonic() < end:
            time.sleep(0.02)
        self.client.disconnect()
        self.client.loop_stop()
