"""The web view of a run: status page, MJPEG live views, ``/api/status``, ``/metrics``, ``/healthz``.

Built on Starlette and served by uvicorn on a thread of the supervisor's
process (the ``serve`` extra); it only reads a
:class:`~streampose.service.status.ServiceStatus`, so a slow or stalled
browser can never slow the pipeline: each MJPEG client is a coroutine that
sends the newest preview frame when it can (frames it could not take in time
are simply skipped), and frames are encoded upstream only while at least one
client watches the source.

Routes: ``/`` (the page), ``/video/{id}`` (``multipart/x-mixed-replace``
MJPEG), ``/api/status`` (JSON), ``/metrics`` (Prometheus text), ``/healthz``
(200 while healthy, else 503).

Access: the server binds 127.0.0.1 unless told otherwise; any other address
needs a token (:func:`check_bind`), and then every request must carry it, as
``Authorization: Bearer TOKEN``, ``X-Streampose-Token: TOKEN`` or
``?token=TOKEN``; without it the answer is 401 and no frame.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import ipaddress
import json
import logging
import threading
import time
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from .status import ServiceStatus

log = logging.getLogger(__name__)

#: seconds an MJPEG client waits between checks for a newer frame.
MJPEG_POLL_S = 0.02
_BOUNDARY = "streamposeframe"


def parse_bind(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` → (host, port); host 127.0.0.1 when omitted. ValueError naming the problem."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host = "127.0.0.1"
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"expected [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0..65535, got {port}")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """ValueError unless ``host`` is loopback or a token protects it."""
    if not is_loopback(host) and not token:
        raise ValueError(f"serving on {host} (not a loopback address) needs a token; give --serve-token TOKEN "
                         "(every request must then carry it), or serve on 127.0.0.1")


def build_app(status: ServiceStatus, metrics: Any = None, token: str | None = None,
              closing: threading.Event | None = None) -> Starlette:
    """The Starlette application over ``status`` (and ``metrics``, a ServiceMetrics, for /metrics)."""
    closing = closing or threading.Event()

    def authorized(request: Request) -> bool:
        if not token:
            return True
        given = (request.query_params.get("token") or request.headers.get("x-streampose-token")
                 or request.headers.get("authorization", "").removeprefix("Bearer ").strip())
        return hmac.compare_digest(given.encode(), token.encode())

    def guarded(handler):
        async def endpoint(request: Request) -> Response:
            if not authorized(request):
                return PlainTextResponse("401 unauthorized: this server needs its token (?token=...)",
                                         status_code=401)
            return await handler(request)
        return endpoint

    async def page(request: Request) -> Response:
        suffix = f"?token={quote(token)}" if token else ""
        return HTMLResponse(render_page(status.snapshot(), suffix))

    async def api_status(request: Request) -> Response:
        return JSONResponse(status.snapshot())

    async def metrics_text(request: Request) -> Response:
        if metrics is None:
            return PlainTextResponse("metrics need prometheus_client (pip install streampose[serve])",
                                     status_code=404)
        return Response(metrics.exposition(), media_type=metrics.content_type)

    async def healthz(request: Request) -> Response:
        healthy = status.healthy()
        return PlainTextResponse("ok" if healthy else "unhealthy", status_code=200 if healthy else 503)

    async def video(request: Request) -> Response:
        try:
            source_id = int(request.path_params["source_id"])
        except ValueError:
            return PlainTextResponse("no such source", status_code=404)
        if not status.has_source(source_id):
            return PlainTextResponse("no such source", status_code=404)
        return StreamingResponse(_mjpeg(status, source_id, closing),
                                 media_type=f"multipart/x-mixed-replace; boundary={_BOUNDARY}",
                                 headers={"Cache-Control": "no-store"})

    routes = [Route("/", guarded(page)), Route("/api/status", guarded(api_status)),
              Route("/metrics", guarded(metrics_text)), Route("/healthz", guarded(healthz)),
              Route("/video/{source_id}", guarded(video))]
    return Starlette(routes=routes)


async def _mjpeg(status: ServiceStatus, source_id: int, closing: threading.Event):
    """The newest preview frame whenever there is a new one, as multipart parts, until closing."""
    status.watch(source_id)
    try:
        seen = -1
        while not closing.is_set():
            version, jpeg = status.latest_jpeg(source_id)
            if jpeg is None or version == seen:
                await asyncio.sleep(MJPEG_POLL_S)
                continue
            seen = version
            head = (f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n").encode()
            yield head + jpeg + b"\r\n"
    finally:
        status.unwatch(source_id)


class WebServer:
    """Runs :func:`build_app` with uvicorn on a daemon thread; :meth:`start` returns once it listens.

    port 0 picks a free port (read :attr:`port` after start).
    """

    def __init__(self, status: ServiceStatus, metrics: Any = None, host: str = "127.0.0.1", port: int = 8080,
                 token: str | None = None) -> None:
        check_bind(host, token)
        import uvicorn

        self.host = host
        self.closing = threading.Event()
        app = build_app(status, metrics, token, self.closing)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="web server", daemon=True)
        self.port = port

    def start(self, timeout_s: float = 10.0) -> "WebServer":
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise OSError(f"the web server could not listen on {self.host}:{self.port} (see the log above)")
            if time.monotonic() > deadline:
                raise OSError(f"the web server did not start within {timeout_s:g} s")
            time.sleep(0.02)
        sockets = [s for server in getattr(self._server, "servers", []) for s in server.sockets]
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("serving the status page on http://%s:%d/", _url_host(self.host), self.port)
        return self

    def stop(self) -> None:
        self.closing.set()
        self._server.should_exit = True
        self._thread.join(5.0)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def render_page(snapshot: dict[str, Any], suffix: str) -> str:
    """The status page: one card per source (live view + numbers), refreshed from /api/status."""
    cards = "\n".join(
        f'<div class="card" id="src{s["id"]}"><h2>{html.escape(s["name"])}</h2>'
        f'<img class="live" alt="live view of source {s["id"]}" src="video/{s["id"]}{suffix}">'
        f'<table class="stats" data-source="{s["id"]}"></table></div>'
        for s in snapshot["sources"])
    return _PAGE.replace("{CARDS}", cards).replace("{SUFFIX}", json.dumps(suffix))


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>streampose</title>
<style>
body { font-family: sans-serif; margin: 1em; background: #f4f4f4; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; }
.card { background: white; padding: .5em; border-radius: 6px; box-shadow: 0 1px 3px #999; }
.card h2 { font-size: 1em; margin: .2em 0 .4em; word-break: break-all; max-width: 640px; }
.live { display: block; max-width: 640px; min-width: 160px; background: #222; }
.stats td { padding: 0 .6em 0 0; font-size: .9em; }
.state-failed { color: #b00; font-weight: bold; } .state-reconnecting { color: #b60; }
</style></head>
<body><h1>streampose <small id="run"></small></h1>
<div class="grid">
{CARDS}
</div>
<script>
const suffix = {SUFFIX};
const fields = [["state", "state"], ["fps", "FPS"], ["latency_p50_ms", "latency p50 ms"],
                ["latency_p99_ms", "latency p99 ms"], ["dropped", "dropped"], ["reconnects", "reconnects"],
                ["people", "people in view"], ["frames", "frames"]];
async function refresh() {
  try {
    const r = await fetch("api/status" + suffix);
    const s = await r.json();
    document.getElementById("run").textContent = s.run + (s.sources_failed ? ", " + s.sources_failed + " failed" : "");
    for (const src of s.sources) {
      const table = document.querySelector('table[data-source="' + src.id + '"]');
      if (!table) continue;
      table.innerHTML = fields.map(([k, label]) => {
        const v = src[k] === null ? "-" : src[k];
        const cls = k === "state" ? ' class="state-' + v + '"' : "";
        return "<tr><td>" + label + "</td><td" + cls + ' data-field="' + k + '">' + v + "</td></tr>";
      }).join("") + (src.detail ? '<tr><td colspan="2">' + src.detail.replace(/</g, "&lt;") + "</td></tr>" : "");
    }
  } catch (e) { }
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
"""
