"""Sources that come and go, through run_stream.py with --serve, against real GStreamer RTSP servers.

Three live sources: one whose server is not there at start, one whose server
is killed for good mid-run, and a paced lavfi graph. The third keeps
producing, /api/status shows each state, and the exit code follows the rule
(0 unless every source failed). With unlimited attempts, starting the first
server later makes that source join.
"""

from __future__ import annotations

import json
import time

import pytest

from servers import SYSTEM_PYTHON, RtspServer, free_port, gstreamer_problem
from service_helpers import Service, by_id, lavfi

_PROBLEM = gstreamer_problem()
pytestmark = [
    pytest.mark.rtsp,
    pytest.mark.skipif(_PROBLEM is not None, reason=f"GStreamer RTSP server not importable by {SYSTEM_PYTHON} "
                       f"({_PROBLEM}); install the Debian packages in .ci/apt-packages.txt"),
]

FAST_RETRY = ["--open-timeout", "2", "--read-timeout", "1", "--reconnect-max-delay", "0.3"]


@pytest.fixture
def servers():
    started: list[RtspServer] = []

    def make(start: bool = True) -> RtspServer:
        server = RtspServer()
        server.port = free_port()
        if start:
            server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.kill()


def _frames(path, source_id):
    return [json.loads(line) for line in path.read_text().splitlines() if f'"id":{source_id},' in line]


def test_unreachable_and_lost_sources_do_not_stop_the_others(tmp_path, servers):
    absent, doomed = servers(start=False), servers()
    with_password = absent.url.replace("rtsp://", "rtsp://viewer:s3cret@")  # never shown, never written
    service = Service(["--source", with_password, "--source", doomed.url, "--source", lavfi(7),
                       "--reconnect-attempts", "2", *FAST_RETRY, "--output", "out.jsonl"], tmp_path)
    try:
        service.wait_up()
        status = service.wait_for(lambda s: by_id(s)[0]["state"] == "failed" and by_id(s)[1]["frames"] > 5
                                  and by_id(s)[2]["frames"] > 5, 30, "source 0 failed, 1 and 2 running")
        assert by_id(status)[1]["state"] == "running" and by_id(status)[2]["state"] == "running"
        doomed.kill()
        killed = time.monotonic()
        status = service.wait_for(lambda s: by_id(s)[1]["state"] == "failed", 20, "source 1 failed")
        failed_after_s = time.monotonic() - killed
        frames_then = by_id(status)[2]["frames"]
        status = service.wait_for(lambda s: by_id(s)[2]["frames"] >= frames_then + 15, 10,
                                  "source 2 still producing")
        assert status["sources_failed"] == 2 and status["healthy"]
        assert "unreachable" in by_id(status)[0]["detail"]
        assert by_id(status)[0]["name"].startswith("rtsp://viewer:***@")
        shown = [service.get(path)[1] for path in ("/", "/api/status", "/metrics")]
        code = service.wait(60)
    finally:
        service.kill()
    err = service.stderr()
    print(f"\ncoming and going: source 1 reported failed {failed_after_s:.1f} s after its server was killed; "
          f"exit code {code}")
    assert code == 0, err
    assert "warning: 2 of 3 sources failed" in err and "2 of 3 sources failed:" in err
    survivor = _frames(tmp_path / "out.jsonl", 2)
    assert len(survivor) >= 80  # 7 s at 15 fps, a few dropped at most
    assert not _frames(tmp_path / "out.jsonl", 0)
    for text in shown + [err.encode(), (tmp_path / "out.jsonl").read_bytes()]:
        assert b"s3cret" not in text


def test_every_source_failed_exits_2(tmp_path, servers):
    absent, gone = servers(start=False), servers(start=False)
    service = Service(["--source", absent.url, "--source", gone.url, "--reconnect-attempts", "1", *FAST_RETRY],
                      tmp_path, serve=False)
    try:
        code = service.wait(60)
    finally:
        service.kill()
    err = service.stderr()
    assert code == 2, err
    assert err.rstrip().endswith("error: 2 of 2 sources failed")


def test_a_source_unreachable_at_start_joins_when_its_server_comes_up(tmp_path, servers):
    late = servers(start=False)
    service = Service(["--source", late.url, "--source", lavfi(30), "--reconnect-attempts", "inf",
                       *FAST_RETRY, "--output", "out.jsonl"], tmp_path)
    try:
        service.wait_up()
        status = service.wait_for(lambda s: by_id(s)[1]["frames"] > 10, 30, "source 1 running")
        assert by_id(status)[0]["state"] == "failed"  # reported failed, and still retrying
        late.start()
        started = time.monotonic()
        status = service.wait_for(lambda s: by_id(s)[0]["state"] == "running" and by_id(s)[0]["frames"] > 10,
                                  30, "source 0 joined")
        joined_s = time.monotonic() - started
        assert status["sources_failed"] == 0
        service.interrupt()
        code = service.wait(60)
    finally:
        service.kill()
    print(f"\nlate source joined {joined_s:.1f} s after its server came up (backoff capped at 0.3 s)")
    assert code == 130, service.stderr()
    joined = _frames(tmp_path / "out.jsonl", 0)
    assert len(joined) > 10 and joined[0]["width"] == 320
