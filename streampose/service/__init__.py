"""Running streampose as a long-lived service: live status, metrics, web view, result sinks to other programs.

The pieces are usable from any supervisor, not only the CLI (e.g. one Ray
actor per camera feeding a fleet-wide page):

- :class:`ServiceStatus` (``status``): a thread-safe RunObserver; pass it to
  ``run_pipeline(..., observer=status)``; read it with ``snapshot()``.
- :class:`ServiceMetrics` (``metrics``): Prometheus metrics in a private
  registry, kept in step by a ServiceStatus built with ``metrics=``.
- :class:`WebServer` (``server``): the page, MJPEG views, ``/api/status``,
  ``/metrics``, ``/healthz`` over a ServiceStatus (Starlette + uvicorn).
- :func:`start_service`: the three together, as ``--serve`` uses them.

Sinks that publish results (MQTT, RTSP) are ordinary pipeline steps, in
:mod:`streampose.service.mqtt_sink` and :mod:`streampose.service.rtsp_sink`.
Only :mod:`.status` is imported here; the web server and prometheus_client
load when used.
"""

from __future__ import annotations

from typing import Any

from .status import ServiceStatus

__all__ = ["ServiceStatus", "start_service"]


def start_service(bind: str = "127.0.0.1:8080", token: str | None = None) -> tuple[ServiceStatus, Any]:
    """A ServiceStatus with metrics and a started WebServer on ``bind`` (``[HOST:]PORT``).

    Returns (status, server); stop the server with ``server.stop()``.
    Raises ValueError for a bad bind address or a non-loopback one without a
    token, OSError when the port cannot be listened on.
    """
    from .metrics import ServiceMetrics
    from .server import WebServer, parse_bind

    host, port = parse_bind(bind)
    metrics = ServiceMetrics()
    status = ServiceStatus(metrics=metrics)
    server = WebServer(status, metrics, host=host, port=port, token=token).start()
    return status, server
