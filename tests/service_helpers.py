"""Running ``run_stream.py`` as a real service in a child process and reading its status over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from servers import free_port

REPO = Path(__file__).resolve().parent.parent
RUN_STREAM = REPO / "run_stream.py"
#: a small paced live source (FFmpeg's lavfi test pattern in real time)
def lavfi(seconds: float, rate: int = 15, pattern: str = "testsrc", size: str = "320x240") -> str:
    return f"lavfi:{pattern}=size={size}:rate={rate}:duration={seconds},realtime"


class Service:
    """``run_stream.py ARGS --serve 127.0.0.1:PORT`` in a child process (stdout and stderr kept)."""

    def __init__(self, args: list[str], tmp_path: Path, serve: bool = True, token: str | None = None,
                 host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.host = host
        self.token = token
        extra = ["--serve", f"{host}:{self.port}"] if serve else []
        if "--pipeline" not in args:  # the model is not the point: decode, draw, write
            extra += ["--pipeline", "passthrough"]
        if token:
            extra += ["--serve-token", token]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.stderr_path = tmp_path / f"service-{self.port}.stderr"
        self._stderr = open(self.stderr_path, "w")
        self.process = subprocess.Popen([sys.executable, str(RUN_STREAM), "--no-progress", *args, *extra],
                                        stdout=subprocess.PIPE, stderr=self._stderr, cwd=str(tmp_path), env=env)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def get(self, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=timeout_s) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wait_up(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the service exited early ({self.process.returncode}): {self.stderr()}")
            try:
                suffix = f"?token={self.token}" if self.token else ""
                if self.get("/healthz" + suffix, 1.0)[0] in (200, 503):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the service did not answer within {timeout_s} s: {self.stderr()}")

    def status(self) -> dict:
        suffix = f"?token={self.token}" if self.token else ""
        code, body = self.get("/api/status" + suffix)
        assert code == 200, body
        return json.loads(body)

    def wait_for(self, predicate, timeout_s: float, what: str) -> dict:
        deadline = time.monotonic() + timeout_s
        status = {}
        while time.monotonic() < deadline:
            try:
                status = self.status()
            except OSError:
                status = {}
            try:
                seen = bool(status) and predicate(status)
            except (KeyError, IndexError):  # the sources are not declared yet
                seen = False
            if seen:
                return status
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{what}: not seen within {timeout_s} s; last status {status}; {self.stderr()}")

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def wait(self, timeout_s: float = 60.0) -> int:
        try:
            return self.process.wait(timeout_s)
        finally:
            self._stderr.flush()

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text()[-3000:]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._stderr.close()


def by_id(status: dict) -> dict[int, dict]:
    return {s["id"]: s for s in status["sources"]}
