"""Defect class 2 of issue 14: a stream password never reaches stdout, stderr, result files or the overlay.

The real RTSP server (tests/rtsp_server.py) does not ask for credentials, so
a credentialed URL connects like a plain one; the password is a marker we
grep for everywhere the run prints or writes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runtime_helpers import STEPS_FILE
from streampose.io.urls import redact_text, redact_url

REPO = Path(__file__).resolve().parents[1]
SECRET = "S3cr3t-PW"


@pytest.mark.parametrize("url, shown", [
    ("rtsp://alice:S3cr3t@cam.local:554/live", "rtsp://alice:***@cam.local:554/live"),
    ("rtsps://alice:p@ss@cam/x?y=1", "rtsps://alice:***@cam/x?y=1"),  # unencoded @ in the password
    ("https://tok3n@example.com/a.mp4", "https://***@example.com/a.mp4"),
    ("http://u:@h/", "http://u:***@h/"),
    ("mqtt://bob:hunter2@broker:1883/topic", "mqtt://bob:***@broker:1883/topic"),
    ("RTSP://A:B@h", "RTSP://A:***@h"),
    ("rtsp://cam.local/live", "rtsp://cam.local/live"),
    ("rtsp://cam.local/a@b", "rtsp://cam.local/a@b"),  # an @ in the path is no userinfo
    ("video.mp4", "video.mp4"),
    ("lavfi:testsrc2", "lavfi:testsrc2"),
])
def test_redact_url_table(url, shown):
    assert redact_url(url) == shown
    assert redact_url(shown) == shown  # idempotent


def test_redact_text_masks_every_url_in_a_message():
    text = ("WARNING: 'rtsp://a:one@h1/x': lost; retry with http://b:two@h2:80/y, then "
            "\"https://c:three@h3\" (see rtsp://h4/z)")
    masked = redact_text(text)
    assert not any(p in masked for p in ("one", "two", "three"))
    assert "rtsp://a:***@h1/x" in masked and "http://b:***@h2:80/y" in masked and "rtsp://h4/z" in masked


def _pipeline(path: Path) -> Path:
    path.write_text(f'step_modules = ["{STEPS_FILE}"]\n[[stages]]\nname = "people"\n'
                    'steps = [ { type = "test_one_person" } ]\n[[stages]]\nname = "render"\n'
                    'steps = [ { type = "draw" } ]\n')
    return path


def _assert_no_secret(where: str, text: str) -> None:
    assert SECRET not in text, f"the password reached {where}: {text[:2000]}"


@pytest.fixture
def server(rtsp_server):
    return rtsp_server


@pytest.fixture(autouse=True)
def _restore_root_logger(restore_root_logger):
    yield


@pytest.mark.rtsp
def test_no_password_in_outputs_logs_or_overlay(server, tmp_path, capsys, monkeypatch):
    import cv2

    from streampose.cli import main

    drawn: list[str] = []
    real_put_text = cv2.putText

    def recording_put_text(image, text, *args, **kwargs):
        drawn.append(text)
        return real_put_text(image, text, *args, **kwargs)

    monkeypatch.setattr(cv2, "putText", recording_put_text)
    url = f"rtsp://alice:{SECRET}@127.0.0.1:{server.port}/live"
    jsonl, csv, video = tmp_path / "p.jsonl", tmp_path / "p.csv", tmp_path / "v.mp4"
    code = main(["--source", url, "--inline", "--max-frames", "8", "--pipeline", str(_pipeline(tmp_path / "p.toml")),
                 "--output", str(jsonl), "--output", str(csv), "--output", str(video), "-v",
                 "--open-timeout", "10", "--read-timeout", "5"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    masked = f"rtsp://alice:***@127.0.0.1:{server.port}/live"
    _assert_no_secret("stdout", captured.out)
    _assert_no_secret("stderr", captured.err)
    for path in (jsonl, csv):
        text = path.read_text()
        _assert_no_secret(path.name, text)
        assert masked in text
    assert len(drawn) >= 8 and all(SECRET not in t for t in drawn)
    assert any(masked in t for t in drawn)
    _assert_no_secret("the video file", video.read_bytes().decode("latin-1"))


@pytest.mark.parametrize("url", [
    f"rtsp://alice:{SECRET}@127.0.0.1:9/live",          # connection refused
    f"http://bob:{SECRET}@127.0.0.1:9/clip.mp4",        # http, refused
    f"ftp://carol:{SECRET}@127.0.0.1/x",                # unknown scheme
])
def test_failing_credentialed_source_error_is_masked(url, tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "run_stream.py"), "--source", url, "--pipeline", "passthrough",
                             "--open-timeout", "1", "--reconnect-attempts", "1", "--output", str(tmp_path / "o.jsonl")],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 2
    _assert_no_secret("stdout", result.stdout)
    _assert_no_secret("stderr", result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and ":***@127.0.0.1" in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.rtsp
def test_process_runtime_logs_and_files_are_masked(server, tmp_path):
    """The default multiprocess runtime: child log records and the summary travel through the parent."""
    url = f"rtsp://alice:{SECRET}@127.0.0.1:{server.port}/live"
    jsonl = tmp_path / "p.jsonl"
    result = subprocess.run([sys.executable, str(REPO / "run_stream.py"), "--source", url, "--max-frames", "5",
                             "--pipeline", str(_pipeline(tmp_path / "p.toml")), "--output", str(jsonl), "-v"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    _assert_no_secret("stderr", result.stderr)
    _assert_no_secret("stdout", result.stdout)
    _assert_no_secret("jsonl", jsonl.read_text())
    assert "alice:***@" in jsonl.read_text()


def test_window_title_is_masked(monkeypatch):
    """The display's window name (its title) as passed to OpenCV, with a display faked for the check."""
    import cv2
    import numpy as np

    from streampose.io.display import Display

    titles: list[str] = []
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(cv2, "namedWindow", lambda name, flags=0: titles.append(name))
    monkeypatch.setattr(cv2, "imshow", lambda name, image: titles.append(name))
    monkeypatch.setattr(cv2, "waitKey", lambda delay=0: -1)
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda: None)
    display = Display("streampose")
    display.show(0, f"rtsp://alice:{SECRET}@cam/live", np.zeros((4, 4, 3), np.uint8))
    display.close()
    assert titles and all(SECRET not in t and "rtsp://alice:***@cam/live" in t for t in titles)
