"""The web view of a running service (``--serve``), looked at with headless Chromium and plain HTTP.

Shows: one live image per source that changes over time while the numbers
update; the drawn skeleton's colours in a screenshot of the page; /metrics
parses with prometheus_client and its counters match the run summary; a
non-loopback bind needs the token (401 without it, and no frame); ten
clients that connect to a live view and never read do not slow the pipeline.
"""

from __future__ import annotations

import shutil
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from iohelpers import make_video
from runtime_helpers import OPENER, pipeline, pipeline_toml
from service_helpers import Service, by_id, lavfi
from streampose.builtin_steps.render import LEFT_BGR, RIGHT_BGR

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _skeleton_pipeline(tmp_path: Path) -> Path:
    return pipeline_toml(tmp_path / "skeleton.toml", [("render", ['{ type = "test_skeleton" }', '{ type = "draw" }'])])


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("headless Chromium needs the Debian packages chromium and chromium-driver "
                    "(.ci/apt-packages.txt)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,700"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=DriverService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _png_to_bgr(png: bytes) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def _pixels_near(image: np.ndarray, bgr: tuple[int, int, int], tolerance: int = 40) -> int:
    return int((np.abs(image.astype(np.int16) - np.array(bgr, np.int16)).max(axis=2) <= tolerance).sum())


def test_the_page_shows_changing_live_views_skeletons_and_updating_numbers(tmp_path, browser):
    grey = "lavfi:color=c=0x808080:size=320x240:rate=15:duration=40,realtime"
    service = Service(["--pipeline", str(_skeleton_pipeline(tmp_path)), "--source", grey,
                       "--source", lavfi(40, pattern="testsrc2")], tmp_path)
    try:
        service.wait_up()
        service.wait_for(lambda s: len(s["sources"]) == 2 and all(x["frames"] > 5 for x in s["sources"]), 30,
                         "both sources running")
        browser.get(service.base + "/")
        images = browser.find_elements("css selector", "img.live")
        assert len(images) == 2
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(
                browser.execute_script("return arguments[0].naturalWidth", img) == 320 for img in images):
            time.sleep(0.1)
        first = [img.screenshot_as_png for img in images]
        frames_before = [int(browser.find_element("css selector", f'table[data-source="{i}"] '
                                                  '[data-field="frames"]').text) for i in (0, 1)]
        time.sleep(1.5)
        second = [img.screenshot_as_png for img in images]
        frames_after = [int(browser.find_element("css selector", f'table[data-source="{i}"] '
                                                 '[data-field="frames"]').text) for i in (0, 1)]
        states = [browser.find_element("css selector", f'table[data-source="{i}"] [data-field="state"]').text
                  for i in (0, 1)]
        page = _png_to_bgr(browser.get_screenshot_as_png())
        status = service.status()
        service.interrupt()
        service.wait(30)
    finally:
        service.kill()
    assert all(a != b for a, b in zip(first, second)), "each live view changes over time"
    assert all(a > b for a, b in zip(frames_after, frames_before)), (frames_before, frames_after)
    assert states == ["running", "running"]
    grey_view = _png_to_bgr(first[0])
    left, right = _pixels_near(grey_view, LEFT_BGR), _pixels_near(grey_view, RIGHT_BGR)
    print(f"\nweb view: frames {frames_before} -> {frames_after}; skeleton pixels in the grey source's view: "
          f"left colour {left}, right colour {right}; whole page: left {_pixels_near(page, LEFT_BGR)}")
    assert left > 50 and right > 50, "the skeleton's left and right limb colours are drawn"
    assert _pixels_near(page, LEFT_BGR) > 50 and _pixels_near(page, RIGHT_BGR) > 50
    assert by_id(status)[0]["people"] == 1 and by_id(status)[1]["people"] == 1


def test_metrics_parse_and_match_the_run_summary(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from streampose.runtime import run_pipeline
    from streampose.service import start_service

    status, server = start_service("127.0.0.1:0")
    try:
        pipe = pipeline(("slow", [{"type": "test_sleep", "seconds": 0.03}, {"type": "draw"}], 1))
        result = run_pipeline(pipe, ["gen?n=60&fps=60&live=1&w=64&h=48", "gen?n=20"], [], opener=OPENER,
                              observer=status, progress=False)
        status.finish()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            text = r.read().decode()
    finally:
        server.stop()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def total(name: str, **labels) -> float:
        return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    frames = {name: total("streampose_frames_total", source=name) for name in result.stats.frames_done}
    assert frames == {k: float(v) for k, v in result.stats.frames_done.items()}
    assert total("streampose_dropped_frames_total") == result.stats.dropped > 0  # the paced source lost some
    assert total("streampose_latency_ms_count") == result.stats.total_frames
    assert total("streampose_step_ms_count", step="test_sleep") == result.stats.total_frames
    assert total("streampose_source_state", state="finished") == 2
    print(f"\n/metrics: frames {frames}, dropped {result.stats.dropped} (summary: {result.stats.frames_done}, "
          f"{result.stats.dropped})")


def test_a_non_loopback_bind_needs_its_token(tmp_path):
    refused = Service(["--source", lavfi(1)], tmp_path, host="0.0.0.0")
    try:
        code = refused.wait(60)
    finally:
        refused.kill()
    assert code == 2 and "error: --serve 0.0.0.0:" in refused.stderr() and "--serve-token" in refused.stderr()

    service = Service(["--source", lavfi(30)], tmp_path, host="0.0.0.0", token="s3cret")
    service.host = "127.0.0.1"  # listening on every address; reached here through loopback
    try:
        service.wait_up()
        service.wait_for(lambda s: by_id(s)[0]["frames"] > 2, 30, "frames flowing")
        answers = {path: service.get(path) for path in ("/", "/api/status", "/metrics", "/healthz", "/video/0")}
        ok = service.get("/api/status?token=s3cret")
        request = urllib.request.Request(service.base + "/video/0", headers={"Authorization": "Bearer s3cret"})
        with urllib.request.urlopen(request, timeout=10) as r:
            head = r.read(200)
        service.interrupt()
        service.wait(30)
    finally:
        service.kill()
    for path, (code, body) in answers.items():
        assert code == 401, path
        assert b"\xff\xd8" not in body, "no frame without the token"
    assert ok[0] == 200 and b"sources" in ok[1]
    assert head.startswith(b"--streamposeframe")


def _fps_over(service: Service, seconds: float) -> float:
    start = by_id(service.status())[0]["frames"]
    t0 = time.monotonic()
    time.sleep(seconds)
    end = by_id(service.status())[0]["frames"]
    return (end - start) / (time.monotonic() - t0)


def test_ten_clients_that_never_read_do_not_slow_the_pipeline(tmp_path):
    video = make_video(tmp_path / "long.mp4", frames=900, fps=30, width=320, height=240)
    # a pipeline at a steady ~60 fps (a 15 ms step), so the comparison is not lost in CPU noise
    pipe = pipeline_toml(tmp_path / "steady.toml", [("render", ['{ type = "test_sleep", seconds = 0.015 }',
                                                               '{ type = "draw" }'])])
    service = Service(["--pipeline", str(pipe), "--source", str(video)], tmp_path)
    clients: list[socket.socket] = []
    try:
        service.wait_up()
        service.wait_for(lambda s: by_id(s)[0]["frames"] > 30, 30, "frames flowing")
        alone = _fps_over(service, 3.0)
        for _ in range(10):
            client = socket.create_connection(("127.0.0.1", service.port), timeout=5)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.sendall(b"GET /video/0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # and never read
            clients.append(client)
        service.wait_for(lambda s: by_id(s)[0]["watchers"] == 10, 10, "ten watchers")
        watched = _fps_over(service, 3.0)
        status = service.status()
        service.interrupt()
        service.wait(30)
    finally:
        for client in clients:
            client.close()
        service.kill()
    print(f"\nten stalled clients: pipeline {alone:.1f} fps without clients, {watched:.1f} fps with them "
          f"({100 * (watched / alone - 1):+.1f} %); preview frames skipped {status['sinks'].get('preview')}")
    assert watched >= 0.9 * alone
