"""Publishing the annotated stream (``--output rtsp://``) to a real RECORD-mode RTSP server on 127.0.0.1.

The server is GStreamer's rtsp-server in RECORD mode (tests/rtsp_server.py
``--record DIR``, under the system python): it decodes what it receives and
saves every frame as a JPEG, which is what the test looks at. Shows: the
received frames are the annotated ones (the drawn skeleton's colours on a
grey source); killing the server does not stall the pipeline (frames are
dropped and counted), and publishing resumes after a restart.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from servers import SYSTEM_PYTHON, RtspServer, free_port, gstreamer_problem
from service_helpers import Service, by_id
from runtime_helpers import pipeline_toml
from streampose.builtin_steps.render import LEFT_BGR, RIGHT_BGR

_PROBLEM = gstreamer_problem()
pytestmark = [
    pytest.mark.rtsp,
    pytest.mark.skipif(_PROBLEM is not None, reason=f"GStreamer RTSP server not importable by {SYSTEM_PYTHON} "
                       f"({_PROBLEM}); install the Debian packages in .ci/apt-packages.txt"),
]


def _grey(seconds: float) -> str:
    return f"lavfi:color=c=0x808080:size=320x240:rate=15:duration={seconds},realtime"


@pytest.fixture
def record_server(tmp_path):
    folder = tmp_path / "received"
    folder.mkdir()
    server = RtspServer(extra=["--record", str(folder)], mount="/annotated")
    server.port = free_port()
    server.start()
    server.folder = folder
    yield server
    server.kill()


def _skeleton_pixels(path) -> tuple[int, int]:
    import cv2

    image = cv2.imread(str(path)).astype(np.int16)
    near = [int((np.abs(image - np.array(c, np.int16)).max(axis=2) <= 40).sum()) for c in (LEFT_BGR, RIGHT_BGR)]
    return near[0], near[1]


def _command(tmp_path, server, seconds):
    pipe = pipeline_toml(tmp_path / "skeleton.toml", [("render", ['{ type = "test_skeleton" }', '{ type = "draw" }'])])
    return ["--pipeline", str(pipe), "--source", _grey(seconds), "--output", server.url]


def test_the_server_receives_the_annotated_frames(tmp_path, record_server):
    service = Service(_command(tmp_path, record_server, 4), tmp_path, serve=False)
    try:
        code = service.wait(60)
    finally:
        service.kill()
    assert code == 0, service.stderr()
    time.sleep(0.5)
    received = sorted(record_server.folder.glob("frame*.jpg"))
    assert len(received) >= 40, f"{len(received)} frames received of 60; {service.stderr()}"
    left, right = _skeleton_pixels(received[len(received) // 2])
    print(f"\nRTSP publish: {len(received)} of 60 frames received; skeleton pixels left {left}, right {right}")
    assert left > 50 and right > 50


def test_a_server_that_goes_away_does_not_stall_the_pipeline(tmp_path, record_server):
    service = Service(_command(tmp_path, record_server, 16), tmp_path)
    folder = record_server.folder
    try:
        service.wait_up()
        service.wait_for(lambda s: s["sinks"].get("rtsp_publisher", {}).get("sent", 0) > 20, 30, "publishing")
        record_server.kill()
        before = by_id(service.status())[0]["frames"]
        time.sleep(2.0)
        during = by_id(service.status())[0]["frames"] - before
        down = service.wait_for(lambda s: s["sinks"]["rtsp_publisher"]["connected"] == 0
                                and s["sinks"]["rtsp_publisher"]["dropped"] > 0, 10, "drops counted")
        received_before = len(list(folder.glob("frame*.jpg")))
        record_server.start()
        restarted = time.monotonic()
        up = service.wait_for(lambda s: s["sinks"]["rtsp_publisher"]["reconnects"] == 1
                              and s["sinks"]["rtsp_publisher"]["connected"] == 1, 20, "reconnected")
        reconnect_s = time.monotonic() - restarted
        deadline = time.monotonic() + 15
        while len(list(folder.glob("frame*.jpg"))) < received_before + 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        received_after = len(list(folder.glob("frame*.jpg")))
        code = service.wait(60)
    finally:
        service.kill()
    print(f"\nRTSP server killed: the pipeline made {during} frames in the 2 s without a server; "
          f"{down['sinks']['rtsp_publisher']['dropped']} frames dropped and counted; reconnected "
          f"{reconnect_s:.1f} s after the restart; {received_after - received_before} frames received since")
    assert code == 0, service.stderr()
    assert during >= 20, "the pipeline kept going at about 15 fps while the server was away"
    assert received_after >= received_before + 20, "publishing resumed"
    assert up["sinks"]["rtsp_publisher"]["reconnects"] == 1
