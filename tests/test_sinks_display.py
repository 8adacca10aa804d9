"""The display sink in a real X server (Xvfb): windows open, ``q`` / Esc stop the run gracefully.

Each case runs in a child process (OpenCV's Qt GUI and the X display stay out
of the test process); the child opens a video source first, so PyAV is loaded
before OpenCV shows a window (see streampose.io.pyav). Keys are sent with xdotool.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from iohelpers import make_video

REPO = Path(__file__).resolve().parents[1]
MISSING = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"{' and '.join(MISSING)} not installed (Debian packages "
                                "xvfb, xdotool; see .ci/apt-packages.txt)")

CHILD = textwrap.dedent("""
    import sys, time
    from streampose.errors import StopRequested
    from streampose.io import open_source
    from streampose.records import Frame, FramePacket
    from streampose.step import build_step

    source = open_source(sys.argv[1], 0)
    frames = list(source.frames())
    step = build_step({"type": "display"})
    step.start()
    step.start_of_stream(source.start_event)
    deadline = time.monotonic() + 30
    try:
        i = 0
        while time.monotonic() < deadline:
            image, pts_s = frames[i % len(frames)]
            packet = FramePacket(0, source.start_event.source_name, i, pts_s, image.shape, 0.0)
            step.process([Frame(packet, image)])
            if i == 0:
                print("SHOWN", flush=True)
            i += 1
            time.sleep(0.02)
        print("NO STOP", flush=True)
    except StopRequested as e:
        print("STOP", e, flush=True)
    finally:
        step.close()
""")


@pytest.fixture(scope="module")
def x_display():
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                              pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    number = b""
    deadline = time.monotonic() + 20
    while not number.endswith(b"\n") and time.monotonic() < deadline:  # Xvfb dies of SIGPIPE if cut short
        ready, _, _ = select.select([read_fd], [], [], 1)
        chunk = os.read(read_fd, 16) if ready else b""
        if ready and not chunk:
            break
        number += chunk
    os.close(read_fd)
    number = number.decode().strip()
    if not number:
        server.kill()
        pytest.fail("Xvfb did not start")
    yield f":{number}"
    server.terminate()
    server.wait(10)


@pytest.mark.parametrize("key", ["q", "Escape"])
def test_quit_key_stops_gracefully(x_display, tmp_path, key):
    clip = make_video(tmp_path / "clip.mp4", frames=10)
    env = {**os.environ, "DISPLAY": x_display, "PYTHONPATH": str(REPO)}
    errors = tmp_path / "stderr.txt"
    with open(errors, "w") as stderr:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(clip)], stdout=subprocess.PIPE, stderr=stderr,
                                 text=True, env=env, cwd=tmp_path)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 30)
        line = child.stdout.readline() if ready else ""
        if line.strip() != "SHOWN":
            child.kill()
            pytest.fail(f"no frame shown within 30 s: {line!r} {errors.read_text()[-2000:]}")
        found = subprocess.run(["xdotool", "search", "--sync", "--name", r"streampose \[0\]"], env=env,
                               capture_output=True, text=True, timeout=20)
        assert found.returncode == 0 and found.stdout.split(), "a window named after the source exists"
        time.sleep(0.2)
        subprocess.run(["xdotool", "windowfocus", "--sync", found.stdout.split()[0], "key", key], env=env,
                       check=True, timeout=20)
        out, _ = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0
    assert out.strip() == "STOP quit key pressed in the display window"
