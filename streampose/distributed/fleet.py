"""A camera fleet on Ray: live sources spread over actors, supervised, with status in one place.

``run_stream.py --ray --source CAM --source CAM ... --output-dir DIR`` (or
:class:`Fleet` from Python) groups the cameras ``cameras_per_actor`` at a
time; each group gets a :class:`CameraActor` (``num_cpus`` / ``num_gpus``,
spread over the nodes) that loads the pipeline's models once and runs each of
its cameras as its own inline pipeline on a thread (the cameras of an actor
take turns on its models). Results go to per-camera sinks under
``DIR/<camera>/``: a JSON-lines file per session (``<UTC start>-<pid>.jsonl``,
or numbered segments of it with ``rotate``, published as they fill; the open
file of a session cut short by a crash keeps its lines under its hidden
partial name), plus any ``extra_sinks`` (``mqtt://`` topics, ``--output
'fleet/{camera}.mp4'``) with ``{camera}`` in their options replaced by the
camera's name.

The supervisor (:meth:`Fleet.poll`, every ``poll_s``) asks every actor for
its cameras' status. An actor that does not answer because it died (process
killed, node lost) is replaced at once and its cameras start again on the new
actor; the other actors are never touched. Status and metrics of the whole
fleet are gathered by the supervisor and written, atomically, after every
poll:

- ``DIR/status.json``: per camera ``actor``, ``node``, ``state`` (``starting``,
  ``running``, ``ended``, ``failed``), ``frames`` (this session), ``fps``,
  ``last_frame_age_s``, ``restarts``, ``error``;
- ``DIR/metrics.prom``: the same numbers in the Prometheus text format
  (``streampose_camera_frames_total{camera="..."}``, ...), for node-exporter's
  textfile collector or any scraper that reads a file.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import PipelineConfig
from ..errors import StopRequested, UserError
from ..io.urls import redact_text, redact_url
from ..records import Frame
from ..step import Step, register_step
from .batch import last_line, node_id, node_label
from .corpus import output_name

log = logging.getLogger(__name__)

STATUS_NAME = "status.json"
METRICS_NAME = "metrics.prom"


@register_step("fleet_heartbeat")
class HeartbeatStep(Step):
    """Counts a camera's frames for the fleet's status and stops its run when asked.

    Added by :class:`CameraActor` after the sinks; ``camera`` names the entry
    of the actor's status table it updates.
    """

    @dataclass
    class Options:
        camera: str

    def __init__(self, options: Options) -> None:
        self.options = options
        self.counter: "CameraState | None" = None

    def process(self, frames: list[Frame]) -> list[Frame]:
        state = self.counter
        if state is not None:
            state.frames += len(frames)
            state.last_frame_at = time.time()
            if state.stop.is_set():
                raise StopRequested()
        return frames


@dataclass
class CameraState:
    """One camera inside an actor (the thread that runs it updates it)."""

    spec: str
    state: str = "starting"
    frames: int = 0
    started_at: float = field(default_factory=time.time)
    last_frame_at: float = 0.0
    error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def report(self) -> dict[str, Any]:
        now = time.time()
        running_s = max(now - self.started_at, 1e-6)
        return {"state": self.state, "frames": self.frames, "fps": round(self.frames / running_s, 2),
                "last_frame_age_s": round(now - self.last_frame_at, 3) if self.last_frame_at else None,
                "error": redact_text(self.error) if self.error else None}


class CameraActor:
    """A Ray actor (threaded: its cameras run while :meth:`status` answers) running a group of cameras."""

    def __init__(self, pipeline: PipelineConfig, output_dir: str, source_options: Any = None,
                 extra_sinks: list[dict[str, Any]] | None = None, rotate: str = "") -> None:
        from .item_runner import ItemRunner

        self.runner = ItemRunner(pipeline)
        self.output_dir = Path(output_dir)
        self.source_options = source_options
        self.extra_sinks = list(extra_sinks or [])
        self.rotate = rotate
        self.cameras: dict[str, CameraState] = {}
        self.threads: list[threading.Thread] = []

    def warm_up(self) -> dict[str, Any]:

        self.runner.warm_up()
        return {"node": node_label(), "node_id": node_id(), "pid": os.getpid()}

    def start(self, cameras: dict[str, str]) -> None:
        """Start ``{camera name: source spec}``, each on its own thread."""
        for name, spec in cameras.items():
            state = self.cameras[name] = CameraState(spec)
            thread = threading.Thread(target=self._run_camera, args=(name, state), name=f"camera {name}",
                                      daemon=True)
            thread.start()
            self.threads.append(thread)

    def _build(self, spec: dict[str, Any], key_path: str) -> Step:
        step = self.runner.build(spec, key_path)
        if isinstance(step, HeartbeatStep):
            step.counter = self.cameras[step.options.camera]
        return step

    def _run_camera(self, name: str, state: CameraState) -> None:
        from ..runtime import StageFailed, run_pipeline

        folder = self.output_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        session = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(state.started_at))
        jsonl: dict[str, Any] = {"type": "jsonl_writer", "path": str(folder / f"{session}-{os.getpid()}.jsonl")}
        if self.rotate:
            jsonl["rotate"] = self.rotate
        sinks = [jsonl]
        sinks += [per_camera(spec, name) for spec in self.extra_sinks]
        sinks.append({"type": "fleet_heartbeat", "camera": name})
        state.state = "running"
        try:
            result = run_pipeline(self.runner.pipeline, [state.spec], sinks, inline=True, progress=False,
                                  handle_signals=False, source_options=self.source_options,
                                  step_builder=self._build)
            state.error = result.source_errors[0] if result.source_errors else None
            state.state = "failed" if state.error else "ended"
        except UserError as e:
            state.state, state.error = "failed", " ".join(str(e).split())
        except StageFailed as e:
            state.state = "failed"
            state.error = f"stage {e.stage!r} failed: {e.details.strip().splitlines()[-1] if e.details.strip() else ''}"

    def status(self) -> dict[str, dict[str, Any]]:
        return {name: state.report() for name, state in self.cameras.items()}

    def stop(self, timeout_s: float = 10.0) -> dict[str, dict[str, Any]]:
        """Stop every camera (sinks finalize their files); returns the final status."""
        for state in self.cameras.values():
            state.stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.status()


@dataclass
class FleetOptions:
    """cameras_per_actor: cameras run by one actor; extra_sinks: sink specs added to every camera's run
    (besides its JSON lines), ``{camera}`` in their string options replaced by the camera's name; rotate:
    the per-camera JSON lines' rotation (``1m``, ``100MB``: numbered segments published as they fill,
    so a lost actor loses at most its open segment; "" one file per session); poll_s: supervisor period; status_timeout_s: an
    actor slower than this to answer a status call is reported ``unresponsive`` (not restarted)."""

    cameras_per_actor: int = 2
    extra_sinks: list[dict[str, Any]] = field(default_factory=list)
    rotate: str = ""
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    poll_s: float = 0.5
    status_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.cameras_per_actor < 1:
            raise ValueError(f"cameras_per_actor must be >= 1, got {self.cameras_per_actor}")
        if not self.num_cpus >= 0 or not self.num_gpus >= 0:
            raise ValueError(f"num_cpus and num_gpus must be >= 0, got {self.num_cpus}, {self.num_gpus}")
        if self.rotate:
            from ..io.live_text import Rotation

            Rotation.parse(self.rotate)
        if not self.poll_s > 0 or not self.status_timeout_s > 0:
            raise ValueError("poll_s and status_timeout_s must be > 0")


@dataclass
class _Group:
    cameras: dict[str, str]
    actor: Any = None
    ready: Any = None
    where: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    status: dict[str, dict[str, Any]] = field(default_factory=dict)


def per_camera(spec: dict[str, Any], camera: str) -> dict[str, Any]:
    """A sink spec for one camera: ``{camera}`` in its string options becomes the camera's name."""
    return {key: value.replace("{camera}", camera) if isinstance(value, str) else value
            for key, value in spec.items()}


def camera_names(specs: list[str]) -> dict[str, str]:
    """``{name: spec}``: names are safe, unique, and never contain a stream's password."""
    names: dict[str, str] = {}
    for i, spec in enumerate(specs):
        shown = redact_url(spec).split("://", 1)[-1].split("@", 1)[-1] if "://" in spec else spec
        names[f"cam{i}-{output_name(shown)}"] = spec
    return names


class Fleet:
    """The supervisor: start the actors, :meth:`poll` them, replace the dead ones, :meth:`stop`."""

    def __init__(self, cameras: list[str], pipeline: PipelineConfig, output_dir: Path,
                 options: FleetOptions | None = None, source_options: Any = None) -> None:
        if not cameras:
            raise UserError("the fleet has no camera; give --source once per camera")
        self.pipeline = pipeline
        self.output_dir = output_dir
        self.options = options or FleetOptions()
        self.source_options = source_options
        named = list(camera_names(cameras).items())
        per = self.options.cameras_per_actor
        self.groups = [_Group(dict(named[i:i + per])) for i in range(0, len(named), per)]
        self._lock = threading.Lock()
        self.snapshot: dict[str, dict[str, Any]] = {}

    def start(self) -> None:
        import ray

        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._actor_class = ray.remote(CameraActor)
        for group in self.groups:
            self._launch(group)

    def _launch(self, group: _Group) -> None:
        group.actor = self._actor_class.options(
            num_cpus=self.options.num_cpus, num_gpus=self.options.num_gpus, scheduling_strategy="SPREAD",
            max_concurrency=len(group.cameras) + 2).remote(self.pipeline, str(self.output_dir), self.source_options,
                                                      self.options.extra_sinks, self.options.rotate)
        group.ready = group.actor.warm_up.remote()
        group.where = {}
        group.status = {name: {"state": "starting", "frames": 0, "fps": 0.0, "last_frame_age_s": None,
                               "error": None} for name in group.cameras}

    def poll(self) -> dict[str, dict[str, Any]]:
        """Ask every actor for its cameras' status; replace dead actors. Returns the fleet's status."""
        import ray

        for group in self.groups:
            if group.ready is not None:
                done, _ = ray.wait([group.ready], timeout=0)
                if not done:
                    continue
                try:
                    group.where = ray.get(group.ready)
                except ray.exceptions.RayTaskError as e:
                    raise UserError(f"the pipeline cannot start on a fleet actor: {last_line(e)}") from e
                except ray.exceptions.RayError as e:
                    self._replace(group, e)
                    continue
                group.ready = None
                group.actor.start.remote(group.cameras)
                continue
            try:
                group.status = ray.get(group.actor.status.remote(), timeout=self.options.status_timeout_s)
            except ray.exceptions.GetTimeoutError:
                for entry in group.status.values():
                    entry["state"] = "unresponsive"
            except ray.exceptions.RayError as e:
                self._replace(group, e)
        snapshot = {}
        for group in self.groups:
            for name in group.cameras:
                snapshot[name] = dict(group.status.get(name, {}), actor=group.where.get("pid"),
                                      node=group.where.get("node"), restarts=group.restarts)
        with self._lock:
            self.snapshot = snapshot
        self._write(snapshot)
        return snapshot

    def _replace(self, group: _Group, error: BaseException) -> None:
        import ray

        log.warning("fleet actor of %s died (%s); starting a new one", ", ".join(group.cameras), last_line(error))
        try:
            ray.kill(group.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - it is dead already
            pass
        group.restarts += 1
        self._launch(group)

    def _write(self, snapshot: dict[str, dict[str, Any]]) -> None:
        status = self.output_dir / STATUS_NAME
        temporary = status.with_name(f".{status.name}.tmp")
        temporary.write_text(json.dumps({"time": time.time(), "cameras": snapshot}, indent=1) + "\n")
        os.replace(temporary, status)
        metrics = self.output_dir / METRICS_NAME
        temporary = metrics.with_name(f".{metrics.name}.tmp")
        temporary.write_text(prometheus_text(snapshot))
        os.replace(temporary, metrics)

    def run(self, duration_s: float | None = None, stop: threading.Event | None = None) -> dict[str, dict[str, Any]]:
        """Start, poll until ``duration_s`` passed, ``stop`` is set, or every camera ended; then stop."""
        stop = stop or threading.Event()
        self.start()
        t0 = time.monotonic()
        try:
            while not stop.is_set():
                snapshot = self.poll()
                if duration_s is not None and time.monotonic() - t0 >= duration_s:
                    break
                if snapshot and all(s.get("state") in ("ended", "failed") for s in snapshot.values()):
                    break
                stop.wait(self.options.poll_s)
        finally:
            final = self.stop()
        return final

    def stop(self) -> dict[str, dict[str, Any]]:
        """Stop every camera (their files are finalized) and the actors."""
        import ray

        calls = {group.actor.stop.remote(): group for group in self.groups if group.actor is not None}
        for ref, group in calls.items():
            try:
                group.status = ray.get(ref, timeout=30)
            except ray.exceptions.RayError as e:
                log.warning("fleet actor of %s did not stop cleanly (%s)", ", ".join(group.cameras), last_line(e))
            ray.kill(group.actor, no_restart=True)
            group.actor = None
        snapshot = {name: dict(group.status.get(name, {}), node=group.where.get("node"), restarts=group.restarts)
                    for group in self.groups for name in group.cameras}
        self._write(snapshot)
        return snapshot


def prometheus_text(snapshot: dict[str, dict[str, Any]]) -> str:
    """The fleet's status as Prometheus text exposition format (one series per camera)."""
    metrics = [("streampose_camera_frames_total", "counter", "frames processed in the camera's current session",
                lambda s: s.get("frames") or 0),
               ("streampose_camera_fps", "gauge", "frames per second of the current session",
                lambda s: s.get("fps") or 0.0),
               ("streampose_camera_last_frame_age_seconds", "gauge", "seconds since the camera's last frame",
                lambda s: -1 if s.get("last_frame_age_s") is None else s["last_frame_age_s"]),
               ("streampose_camera_restarts_total", "counter", "times the camera's actor was replaced",
                lambda s: s.get("restarts") or 0),
               ("streampose_camera_up", "gauge", "1 while the camera is running",
                lambda s: 1 if s.get("state") == "running" else 0)]
    lines = []
    for name, kind, help_text, value in metrics:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for camera, state in sorted(snapshot.items()):
            lines.append(f'{name}{{camera="{camera}"}} {value(state)}')
    return "\n".join(lines) + "\n"
