"""RTSP against a real GStreamer RTSP server on 127.0.0.1 (tests/rtsp_server.py, run by /usr/bin/python3).

Shows: frames arrive; a server killed and restarted is reconnected to and the
frames go on (counted); a hung server (SIGSTOP) is detected by the read
timeout and reconnected once it resumes (SIGCONT); a server gone for good
ends the source with a SourceError after its retries. Timeouts are kept small
so the whole module takes well under a minute.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import pytest

from servers import SYSTEM_PYTHON, RtspServer, gstreamer_problem
from streampose.errors import SourceError
from streampose.io import SourceOptions, open_source

_PROBLEM = gstreamer_problem()
pytestmark = [
    pytest.mark.rtsp,
    pytest.mark.skipif(_PROBLEM is not None, reason=f"GStreamer RTSP server not importable by {SYSTEM_PYTHON} "
                       f"({_PROBLEM}); install the Debian packages in .ci/apt-packages.txt"),
]

# Many quick attempts: a restarted server is picked up as soon as it listens, however slow it is to start.
OPTIONS = dict(open_timeout_s=2.0, read_timeout_s=1.0, reconnect_attempts=30, backoff_initial_s=0.1,
               backoff_max_s=0.5, analyzeduration_s=0.1)


class Collector(threading.Thread):
    """Reads a source's frames on a thread, recording arrival times, until asked to stop or it fails."""

    def __init__(self, source) -> None:
        super().__init__(daemon=True)
        self.source = source
        self.arrivals: list[float] = []
        self.shapes: set[tuple[int, ...]] = set()
        self.times: list[float] = []
        self.error: SourceError | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            for image, pts_s in self.source.frames():
                self.arrivals.append(time.monotonic())
                self.shapes.add(image.shape)
                self.times.append(pts_s)
                if self.stop.is_set():
                    break
        except SourceError as e:
            self.error = e
        finally:
            self.source.close()

    def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.arrivals) < count and time.monotonic() < deadline and self.is_alive():
            time.sleep(0.02)
        assert len(self.arrivals) >= count, f"only {len(self.arrivals)} of {count} frames; error: {self.error}"

    def finish(self) -> None:
        self.stop.set()
        self.join(10)
        assert not self.is_alive()


@pytest.fixture
def server():
    server = RtspServer()
    server.start()
    yield server
    server.kill()


def test_frames_arrive(server):
    started = time.monotonic()
    source = open_source(server.url, 2, SourceOptions(**OPTIONS))
    opened_s = time.monotonic() - started
    event = source.start_event
    assert (event.source_id, event.source_name, event.width, event.height) == (2, server.url, 320, 240)
    assert source.live and event.live and event.frame_count is None and event.audio_path is None
    assert event.fps == 15.0
    collector = Collector(source)
    collector.start()
    collector.wait_for(30, timeout_s=10)
    collector.finish()
    assert collector.shapes == {(240, 320, 3)} and collector.error is None
    assert all(b > a for a, b in zip(collector.times, collector.times[1:]))  # capture clock
    rate = (len(collector.arrivals) - 11) / (collector.arrivals[-1] - collector.arrivals[10])
    print(f"\nRTSP: open + first frame {opened_s:.2f} s (analyzeduration 0.1 s); steady rate {rate:.1f} frames/s")
    assert source.stats["reconnects"] == 0 and source.stats["frames_decoded"] == len(collector.arrivals)


def test_server_killed_and_restarted_is_reconnected(server, caplog):
    caplog.set_level(logging.WARNING, logger="streampose.io.stream_source")
    collector = Collector(open_source(server.url, 0, SourceOptions(**OPTIONS)))
    collector.start()
    collector.wait_for(10, timeout_s=10)
    server.kill()
    killed = time.monotonic()
    time.sleep(0.5)
    server.start()  # same port
    before = len(collector.arrivals)
    collector.wait_for(before + 15, timeout_s=15)
    collector.finish()
    gap_s, resumed = max((b - a, b) for a, b in zip(collector.arrivals, collector.arrivals[1:]))
    stats = collector.source.stats
    print(f"\nRTSP kill/restart: no frames for {gap_s:.2f} s; frames again {resumed - killed:.2f} s after the kill "
          f"(server down 0.5 s, then restarted); stats {stats}")
    assert stats["reconnects"] == 1 and collector.error is None
    assert "connection lost (the stream ended)" in caplog.text and "reconnected after" in caplog.text


def test_hung_server_is_detected_by_the_read_timeout(server, caplog):
    caplog.set_level(logging.WARNING, logger="streampose.io.stream_source")
    collector = Collector(open_source(server.url, 0, SourceOptions(**OPTIONS)))
    collector.start()
    collector.wait_for(10, timeout_s=10)
    server.pause()
    paused = time.monotonic()
    deadline = paused + 15
    while "no data within 1 s" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    detected = time.monotonic()
    assert "connection lost (no data within 1 s)" in caplog.text, "the read timeout fires"
    frames_while_hung = len(collector.arrivals)
    time.sleep(0.5)
    assert len(collector.arrivals) == frames_while_hung
    server.resume()
    resumed = time.monotonic()
    collector.wait_for(frames_while_hung + 15, timeout_s=15)
    first_after = next(t for t in collector.arrivals[frames_while_hung:])
    collector.finish()
    stats = collector.source.stats
    print(f"\nRTSP SIGSTOP: loss detected {detected - paused:.2f} s after the pause (read timeout 1 s, plus "
          f"frames already buffered); frames again {first_after - resumed:.2f} s after SIGCONT; stats {stats}")
    assert stats["reconnects"] == 1 and collector.error is None


def test_hung_server_at_open_is_a_source_error_after_its_retries(server):
    server.pause()
    options = SourceOptions(**{**OPTIONS, "open_timeout_s": 1.0, "reconnect_attempts": 1})
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"unreachable after 2 attempts \(no answer within the timeouts"):
        open_source(server.url, 0, options)
    elapsed = time.monotonic() - started
    print(f"\nRTSP hung at open: SourceError after {elapsed:.2f} s (2 attempts, open timeout 1 s, backoff 0.1 s)")
    assert elapsed < 10


def test_server_gone_for_good_ends_the_source_after_its_retries(server):
    options = SourceOptions(**{**OPTIONS, "reconnect_attempts": 3, "backoff_max_s": 0.4})
    collector = Collector(open_source(server.url, 0, options))
    collector.start()
    collector.wait_for(5, timeout_s=10)
    server.kill()
    killed = time.monotonic()
    collector.join(15)
    assert not collector.is_alive()
    assert isinstance(collector.error, SourceError)
    assert "lost (the stream ended) and not back after 4 attempts (Connection refused)" in str(collector.error)
    stats = collector.source.stats
    assert stats["connect_failures"] == 4 and stats["reconnects"] == 0
    print(f"\nRTSP gone: SourceError {time.monotonic() - killed:.2f} s after the kill (4 attempts, backoff "
          "0.1/0.2/0.4 s)")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-s", "-q"]))
