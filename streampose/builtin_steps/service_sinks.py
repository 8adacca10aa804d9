"""Sink steps that hand results to other programs: ``mqtt_publisher`` and ``rtsp_publisher``.

Ordinary sinks (last in the last stage, after ``draw``), chosen by the output's
form: ``--output mqtt://HOST[:PORT]/TOPIC`` and ``--output rtsp://HOST:PORT/PATH``.
Neither ever stalls the pipeline: when the broker or server is away, messages
and frames are dropped and counted (``counters()``, shown in the status page
and metrics). The work lives in :mod:`streampose.service` (imported in
``start()``, so validating a pipeline does not need paho-mqtt or a server).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..records import EndOfStream, Frame, StreamStart
from ..step import Step, register_step


def _check_url(url: str, scheme: str, example: str) -> None:
    if not url.lower().startswith(f"{scheme}://"):
        raise ValueError(f"url must look like {example}, got a {url.split(':', 1)[0]!r} address")


@register_step("mqtt_publisher")
class MqttPublisherStep(Step):
    """One MQTT message per frame: the frame's JSON-lines record."""

    @dataclass
    class Options:
        """url: mqtt://[USER:PASSWORD@]HOST[:PORT]/TOPIC; qos: 0, 1 or 2; retain: the broker keeps
        the last message for new subscribers; connect_wait_s: how long start() waits for the first
        connection (the run starts anyway); reconnect_max_s: longest wait between reconnections."""

        url: str
        qos: int = 0
        retain: bool = False
        connect_wait_s: float = 2.0
        reconnect_max_s: float = 5.0

        def __post_init__(self) -> None:
            _check_url(self.url, "mqtt", "mqtt://127.0.0.1:1883/streampose/poses")
            if self.qos not in (0, 1, 2):
                raise ValueError(f"qos must be 0, 1 or 2, got {self.qos}")
            if self.connect_wait_s < 0:
                raise ValueError(f"connect_wait_s must be >= 0, got {self.connect_wait_s}")
            if not self.reconnect_max_s >= 1:
                raise ValueError(f"reconnect_max_s must be >= 1, got {self.reconnect_max_s}")

    def __init__(self, options: Options) -> None:
        self.options = options
        self._publisher: Any = None

    def start(self) -> None:
        from ..service.mqtt_sink import MqttPublisher

        self._publisher = MqttPublisher(self.options.url, self.options.qos, self.options.retain,
                                        self.options.reconnect_max_s)
        self._publisher.start(self.options.connect_wait_s)

    def process(self, frames: list[Frame]) -> list[Frame]:
        from ..io.jsonl_writer import frame_line

        for frame in frames:
            self._publisher.publish(frame_line(frame.packet))
        return frames

    def counters(self) -> dict[str, int]:
        return self._publisher.counters() if self._publisher is not None else {}

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()


@register_step("rtsp_publisher")
class RtspPublisherStep(Step):
    """The annotated frames, H.264 with the source's timestamps, to an RTSP server in RECORD mode."""

    @dataclass
    class Options:
        """url: rtsp://HOST:PORT/PATH (several sources: PATH/srcN each); bitrate_kbps: H.264 bit
        rate; backoff_max_s: longest wait between reconnections; sources: sources in the run."""

        url: str
        bitrate_kbps: int = 2000
        backoff_max_s: float = 5.0
        sources: int = 1

        def __post_init__(self) -> None:
            _check_url(self.url, "rtsp", "rtsp://127.0.0.1:8554/annotated")
            if self.bitrate_kbps < 1:
                raise ValueError(f"bitrate_kbps must be >= 1, got {self.bitrate_kbps}")
            if not self.backoff_max_s > 0:
                raise ValueError(f"backoff_max_s must be > 0, got {self.backoff_max_s}")
            if self.sources < 1:
                raise ValueError(f"sources must be >= 1, got {self.sources}")

    def __init__(self, options: Options) -> None:
        self.options = options
        self._publishers: dict[int, Any] = {}
        self._finished: dict[str, int] = {"sent": 0, "dropped": 0, "reconnects": 0}

    def url_for(self, source_id: int) -> str:
        url = self.options.url.rstrip("/")
        return f"{url}/src{source_id}" if self.options.sources > 1 else url

    def start_of_stream(self, event: StreamStart) -> None:
        from ..service.rtsp_sink import RtspPublisher

        self._end(event.source_id)
        self._publishers[event.source_id] = RtspPublisher(
            self.url_for(event.source_id), event.width, event.height, event.fps,
            bitrate_kbps=self.options.bitrate_kbps, backoff_max_s=self.options.backoff_max_s)

    def process(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            publisher = self._publishers.get(frame.packet.source_id)
            if publisher is not None:
                publisher.offer(frame.image, frame.packet.pts_s)
        return frames

    def end_of_stream(self, event: EndOfStream) -> None:
        self._end(event.source_id)

    def _end(self, source_id: int) -> None:
        publisher = self._publishers.pop(source_id, None)
        if publisher is not None:
            publisher.close()
            for key in self._finished:
                self._finished[key] += publisher.counters()[key]

    def counters(self) -> dict[str, int]:
        totals = dict(self._finished)
        connected = 0
        for publisher in self._publishers.values():
            counts = publisher.counters()
            for key in totals:
                totals[key] += counts[key]
            connected += counts["connected"]
        totals["connected"] = connected
        return totals

    def close(self) -> None:
        for source_id in list(self._publishers):
            self._end(source_id)
