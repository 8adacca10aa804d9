"""The service's small pure pieces: bind checks, rotation specs, status views."""

from __future__ import annotations

import pytest

from streampose.io.live_text import Rotation
from streampose.runtime.telemetry import SourceInfo, SourceState
from streampose.service.server import check_bind, parse_bind
from streampose.service.status import ServiceStatus


@pytest.mark.parametrize("text, expected", [
    ("8080", ("127.0.0.1", 8080)), (":0", ("127.0.0.1", 0)), ("0.0.0.0:9000", ("0.0.0.0", 9000)),
    ("[::1]:80", ("::1", 80)),
])
def test_bind_addresses(text, expected):
    assert parse_bind(text) == expected


def test_bad_bind_addresses_and_the_token_rule():
    for text in ("http", "1.2.3.4:99999", "host:port"):
        with pytest.raises(ValueError):
            parse_bind(text)
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", "token")
    with pytest.raises(ValueError, match="needs a token; give --serve-token"):
        check_bind("0.0.0.0", None)


@pytest.mark.parametrize("text, rotation", [
    ("10m", Rotation(max_age_s=600)), ("30s", Rotation(max_age_s=30)), ("1h", Rotation(max_age_s=3600)),
    ("100MB", Rotation(max_bytes=100_000_000)), ("500kB", Rotation(max_bytes=500_000)),
    ("1.5GB", Rotation(max_bytes=1_500_000_000)),
])
def test_rotation_specs(text, rotation):
    assert Rotation.parse(text) == rotation


@pytest.mark.parametrize("text", ["", "10", "0m", "10 minutes", "-5MB", "5TB"])
def test_bad_rotation_specs(text):
    with pytest.raises(ValueError, match="rotate must be"):
        Rotation.parse(text)


def test_status_counts_frames_drops_and_failed_sources():
    status = ServiceStatus()
    status.on_sources([SourceInfo(0, "rtsp://u:***@cam/a", None), SourceInfo(1, "b.mp4", False)])
    status.on_source_state(0, SourceState("failed", "unreachable", live=None))
    status.on_source_state(1, SourceState("running", frames=10, dropped=0, live=False))
    status.on_telemetry("render", {"frames": {1: 3}, "dropped": {1: 2}, "latency_ms": {1: [10.0, 20.0, 30.0]},
                                   "people": {1: 4}, "step_ms": {"draw": [1.0, 3.0]}})
    snapshot = status.snapshot()
    a, b = snapshot["sources"]
    assert (a["state"], a["detail"], b["frames"], b["dropped"], b["people"]) == ("failed", "unreachable", 3, 2, 4)
    assert b["latency_p50_ms"] == 20.0 and snapshot["stages"]["render"]["step_ms"]["draw"] == 2.0
    assert snapshot["sources_failed"] == 1 and status.healthy()
    status.on_source_state(1, SourceState("failed", "gone"))
    assert not status.healthy()


def test_rotated_segments_publish_whole_lines_and_their_partial_is_known_for_cleanup(tmp_path):
    from streampose.io.live_text import RotatingFile
    from streampose.io.outputs import partial_files

    target = RotatingFile(tmp_path / "poses.jsonl", "JSON-lines file", Rotation(max_bytes=20))
    spec = {"type": "jsonl_writer", "path": str(tmp_path / "poses.jsonl"), "rotate": "20B"}
    for i in range(5):
        target.write(f'{{"frame":{i}}}\n')  # 12 bytes: one line per segment of at most 20 bytes
    assert [p.name for p in partial_files(spec)] == [".poses.000005.partial.jsonl"]
    target.finish()
    assert partial_files(spec) == []
    segments = sorted(tmp_path.glob("poses.*.jsonl"))
    assert [p.read_text() for p in segments] == [f'{{"frame":{i}}}\n' for i in range(5)]
