"""``run_stream.py``: run a pipeline from sources to sinks.

A thin shell over the library: it parses the command line, configures
logging (the only place that does), resolves the pipeline and the outputs,
calls :func:`streampose.runtime.run_pipeline` and turns the outcome into an
exit code: 0 done (or stopped from the display), 1 a stage failed (named,
with its traceback), 2 bad input (one line ``error: ...``), 130 SIGINT,
143 SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from .config import PIPELINES_DIR, apply_overrides, available_pipelines, load_pipeline
from .errors import ConfigError, UserError
from .cli_args import OneLineErrorParser, attempts_count, fraction, name_list, positive_int
from .io.urls import redact_text
from .export.backends import BACKEND_CHOICES
from .runtime import EXIT_SIGINT, EXIT_STAGE_FAILED, EXIT_USER_ERROR, StageFailed, run_pipeline

log = logging.getLogger("streampose")

EXAMPLES = """\
examples:
  # annotated video and per-frame poses from a file (the default pipeline)
  run_stream.py --source video.mp4 --output annotated.mp4 --output poses.jsonl

  # a webcam in a window (q or Esc quits)
  run_stream.py --source 0 --show

  # an RTSP camera with a chosen pipeline on the GPU, one CSV row per person
  run_stream.py --source rtsp://192.168.1.10/stream --pipeline topdown_hrnet_w32 \\
      --device cuda --output people.csv --read-timeout 5 --reconnect-attempts 10

  # two sources at once; video outputs become out.src0.mp4 and out.src1.mp4
  run_stream.py --source a.mp4 --source rtsp://cam/live --output out.mp4

  # a folder of images to a folder of annotated images, first 100 only
  run_stream.py --source photos/ --output annotated/ --max-frames 100

  # the original top-down demo's flags
  run_stream.py --source video.mp4 --det-model weights/crowdhuman_yolov5m.pt \\
      --pose-model weights/pose_hrnet_w32_256x192.pth --img-size 640 --show

  # models by name (see `streampose models`), COCO keypoint results, one annotated image
  streampose --source photo.jpg --det-model yolox_nano_416 --conf 0.4 --output out.png --output results.json

  # measure which inference backend is fastest here for each model (backend = "auto" then follows it)
  streampose backends --measure

  # a service: three cameras, a status page with live views and metrics on :8080,
  # results to MQTT and to hourly JSON-lines segments, cameras retried for ever
  run_stream.py --source rtsp://cam1/live --source rtsp://cam2/live --source rtsp://cam3/live \
      --serve 8080 --output mqtt://127.0.0.1/streampose/poses --output poses.jsonl --rotate 1h \
      --reconnect-attempts inf --reconnect-max-delay 30

exit codes: 0 done (also when some live sources failed: the summary says how many), 1 a stage failed,
2 bad input (an offline source failed, or every source failed), 130 interrupted (SIGINT), 143 terminated (SIGTERM)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="streampose",
        description="Real-time multi-person pose estimation on live and recorded video.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    io = parser.add_argument_group("sources and outputs")
    io.add_argument("--source", action="append", default=[], metavar="SRC",
                    help="video file, image, folder of images, webcam index (0 or webcam:0), "
                         "rtsp:// or http(s):// URL, or lavfi:<filtergraph>; repeat for several sources")
    io.add_argument("--output", action="append", default=[], metavar="PATH",
                    help="sink chosen by extension: .mp4 .mkv .mov .avi .webm (annotated video, audio kept), "
                         ".jsonl (one object per frame), .csv (one row per person per frame), "
                         ".json (COCO keypoint results), .png .jpg (one annotated image), "
                         "a folder ending in / (annotated images), - (JSON lines to stdout), "
                         "mqtt://HOST[:PORT]/TOPIC (one message per frame), rtsp://HOST:PORT/PATH "
                         "(annotated H.264 to a RECORD server); repeat for several")
    io.add_argument("--copy-audio", action=argparse.BooleanOptionalAction, default=None,
                    help="copy the source's audio into video outputs (default: on)")
    io.add_argument("--overwrite", action="store_true",
                    help="replace outputs that already exist (by default an existing output is an error); "
                         "an output that is one of the inputs is always refused")
    io.add_argument("--show", action="store_true", help="show the annotated frames in a window (q/Esc quits)")
    io.add_argument("--rotate", metavar="AGE|SIZE",
                    help="rotate the .jsonl/.csv outputs: publish a numbered segment (out.000001.jsonl, ...) "
                         "every AGE (e.g. 10m, 1h) or SIZE (e.g. 100MB)")
    io.add_argument("--mqtt-qos", type=int, choices=(0, 1, 2), default=0, help="QoS of mqtt:// outputs (default 0)")
    io.add_argument("--mqtt-retain", action="store_true", help="mqtt:// outputs: the broker keeps the last message")
    svc = parser.add_argument_group("service")
    svc.add_argument("--serve", metavar="[HOST:]PORT",
                     help="serve a status page with live views, /api/status, /metrics (Prometheus) and /healthz "
                          "on HOST:PORT (HOST 127.0.0.1 unless given)")
    svc.add_argument("--serve-token", metavar="TOKEN",
                     help="token every request to --serve must carry (Authorization: Bearer TOKEN, or "
                          "?token=TOKEN); required for an address other than loopback")
    io.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames of each source")
    pipe = parser.add_argument_group("pipeline")
    pipe.add_argument("--pipeline", default="default", metavar="NAME",
                      help="a definition in pipelines/ by name (see --list-pipelines) or a path to a .toml file "
                           "(default: %(default)s)")
    pipe.add_argument("--list-pipelines", action="store_true", help="list the pipelines in pipelines/ and exit")
    pipe.add_argument("--device", metavar="DEV", help="auto, cpu, cuda or cuda:N for every model step")
    pipe.add_argument("--backend", choices=BACKEND_CHOICES,
                      help="inference backend of every model step (default: each step's own, auto: the fastest "
                           "`streampose backends --measure` measured here, else torch)")
    pipe.add_argument("--det-model", metavar="NAME|PATH",
                      help="the detector: a model name (see `streampose models`) or a weights file")
    pipe.add_argument("--pose-model", metavar="NAME|PATH",
                      help="the pose model: a model name (see `streampose models`) or a weights file")
    pipe.add_argument("--img-size", type=positive_int, metavar="N", help="input size of the detector step")
    pipe.add_argument("--conf", type=fraction, metavar="X", help="detector score threshold (0-1)")
    pipe.add_argument("--iou", type=fraction, metavar="X", help="detector NMS IoU threshold (0-1)")
    pipe.add_argument("--classes", type=name_list, metavar="A,B",
                      help="detector classes to keep, e.g. person,car (multi-class detectors such as yolov5n)")
    pipe.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=None,
                      help="smooth keypoints over time along track IDs (One-Euro filter; on in the pose pipelines)")
    pipe.add_argument("--batch", type=positive_int, metavar="N", help="frames per forward pass of the model stages")
    pipe.add_argument("--half", action="store_true", help="fp16 inference where a step supports it (CUDA)")
    pipe.add_argument("--inline", action="store_true",
                      help="run every stage in this process (debugging, profiling) instead of one process each")
    from .io.sources import SourceOptions

    defaults = SourceOptions()
    net = parser.add_argument_group("live sources")
    net.add_argument("--open-timeout", type=float, metavar="S",
                     help=f"seconds to connect to a stream (default {defaults.open_timeout_s:g})")
    net.add_argument("--read-timeout", type=float, metavar="S",
                     help="seconds without data before a stream counts as hung and is reconnected "
                          f"(default {defaults.read_timeout_s:g})")
    net.add_argument("--reconnect-attempts", type=attempts_count, metavar="N|inf",
                     help=f"reconnection attempts before a live source gives up "
                          f"(default {defaults.reconnect_attempts}); inf: keep trying for ever. A live source "
                          "that gives up, or is unreachable at start, is reported failed and the others go on")
    net.add_argument("--reconnect-max-delay", type=float, metavar="S",
                     help=f"longest wait between reconnection attempts (the wait doubles from "
                          f"{defaults.backoff_initial_s:g} s; default {defaults.backoff_max_s:g})")
    net.add_argument("--rtsp-transport", choices=("tcp", "udp"), help="RTSP transport (default tcp)")
    io.add_argument("--max-pixels", type=positive_int, metavar="N",
                    help="most pixels per frame (width x height) a source may claim; larger images, videos or "
                         f"streams are refused before decoding (default {defaults.max_pixels})")
    net.add_argument("--webcam-size", metavar="WxH", help="frame size asked from a webcam, e.g. 1280x720")
    fleet = parser.add_argument_group("camera fleet on a Ray cluster (needs the ray extra)")
    fleet.add_argument("--ray", action="store_true",
                       help="spread the --source cameras over supervised Ray actors; one --output FOLDER/ "
                            "receives per-camera JSON lines, status.json and metrics.prom")
    fleet.add_argument("--ray-address", metavar="ADDR",
                       help="join a running cluster ('auto' or HOST:PORT) instead of starting a local Ray")
    fleet.add_argument("--cameras-per-actor", type=positive_int, default=2, metavar="N",
                       help="cameras run by one actor (default %(default)s)")
    fleet.add_argument("--actor-cpus", type=float, default=1.0, metavar="N",
                       help="CPUs reserved per actor, fractions allowed (default 1)")
    fleet.add_argument("--actor-gpus", type=float, default=0.0, metavar="N",
                       help="GPUs per actor, fractions allowed (default 0)")
    out = parser.add_argument_group("messages")
    out.add_argument("-v", "--verbose", action="store_true", help="debug messages")
    out.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no summary")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


class _RedactingFormatter(logging.Formatter):
    """Every log line with the passwords of the URLs in it masked (a last line of defence)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(verbose: bool, quiet: bool) -> None:
    """One stderr handler on the root logger (replacing an earlier one of ours)."""
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _StderrHandler)]
    handler = _StderrHandler()
    handler.setFormatter(_RedactingFormatter("%(levelname)s %(name)s: %(message)s" if verbose
                                           else "%(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    for noisy in ("numba", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def source_options(args: argparse.Namespace):
    """The I/O layer's SourceOptions from the live-source flags (ConfigError naming the flag)."""
    from .io.sources import SourceOptions

    given = {"open_timeout_s": ("--open-timeout", args.open_timeout),
             "read_timeout_s": ("--read-timeout", args.read_timeout),
             "reconnect_attempts": ("--reconnect-attempts", args.reconnect_attempts),
             "backoff_max_s": ("--reconnect-max-delay", args.reconnect_max_delay),
             "rtsp_transport": ("--rtsp-transport", args.rtsp_transport),
             "webcam_size": ("--webcam-size", args.webcam_size),
             "max_pixels": ("--max-pixels", args.max_pixels)}
    kwargs = {field: value for field, (_, value) in given.items() if value is not None}
    if "backoff_max_s" in kwargs:  # a short cap also shortens the first waits
        kwargs["backoff_initial_s"] = min(SourceOptions.backoff_initial_s, kwargs["backoff_max_s"])
    try:
        return SourceOptions(**kwargs)
    except ValueError as e:
        message = str(e)
        flag = next((f for field, (f, _) in given.items() if message.startswith(field)), None)
        raise ConfigError(f"{flag}: {message}" if flag else message) from e


def resolve_pipeline_name(name: str) -> str:
    """``default`` falls back to ``passthrough`` while ``pipelines/default.toml`` does not exist."""
    if name == "default" and not (PIPELINES_DIR / "default.toml").is_file():
        log.info("pipelines/default.toml does not exist yet; using the 'passthrough' pipeline (no model)")
        return "passthrough"
    return name


#: ``streampose NAME ...`` → the module whose ``main(argv)`` runs that command.
SUBCOMMANDS: dict[str, str] = {
    "models": "streampose.models_command",
    "export": "streampose.export.cli",
    "backends": "streampose.backends_command",  # the measured table behind backend = "auto"
    "batch": "streampose.distributed.cli",  # a corpus on a Ray cluster (the ray extra)
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    return run_command(argv)


def run_command(argv: Sequence[str]) -> int:
    """The main command: sources through a pipeline to sinks."""
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    try:
        if args.list_pipelines:
            from .catalog import pipelines_table

            print("\n".join(pipelines_table()))
            return 0
        if not args.source:
            raise UserError("no --source given; e.g. --source video.mp4 (see --help)")
        pipeline = load_pipeline(resolve_pipeline_name(args.pipeline))
        pipeline = apply_overrides(pipeline, device=args.device, det_model=args.det_model,
                                   pose_model=args.pose_model, img_size=args.img_size, conf=args.conf,
                                   iou=args.iou, classes=args.classes, smooth=args.smooth, batch=args.batch,
                                   half=args.half or None, backend=args.backend)
        options = source_options(args)
        if args.ray:
            from .distributed.cli import run_fleet_command

            return run_fleet_command(args, pipeline, options)
        from .io.outputs import sink_specs

        if args.rotate and not any(o != "-" and o.lower().endswith((".jsonl", ".csv")) for o in args.output):
            raise UserError("--rotate applies to .jsonl and .csv outputs; give one with --output")
        sinks = sink_specs(args.output, args.show, num_sources=len(args.source), sources=args.source,
                           overwrite=args.overwrite, rotate=args.rotate or "", mqtt_qos=args.mqtt_qos,
                           mqtt_retain=args.mqtt_retain)
        if args.copy_audio is not None:
            for spec in sinks:
                if spec["type"] == "video_writer":
                    spec["copy_audio"] = args.copy_audio
        if not sinks:
            log.info("no --output and no --show: frames are processed, nothing is written")
        log.debug("pipeline %r (%s), %d source(s), %s", pipeline.name, pipeline.description or "no description",
                 len(args.source), "inline" if args.inline else "one process per stage")
        service = start_service(args) if args.serve else None
        try:
            result = run_pipeline(pipeline, args.source, sinks, inline=args.inline, max_frames=args.max_frames,
                                  source_options=options, progress=False if args.no_progress else None,
                                  observer=service[0] if service else None)
        finally:
            if service is not None:
                service[0].finish()
                service[1].stop()
    except UserError as e:
        print(redact_text(f"error: {' '.join(str(e).split())}"), file=sys.stderr)
        return EXIT_USER_ERROR
    except StageFailed as e:
        print(redact_text(f"error: stage {e.stage!r} failed:\n{e.details.rstrip()}"), file=sys.stderr)
        return EXIT_STAGE_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_SIGINT
    if not args.quiet:
        for line in result.stats.summary_lines():
            print(redact_text(line), file=sys.stderr)
    if result.reason in ("interrupted", "terminated"):
        print(f"{result.reason}: outputs finalized", file=sys.stderr)
    print_failed_sources(result, args.quiet)
    return result.exit_code


def print_failed_sources(result, quiet: bool) -> None:
    """The last lines about failed sources: how many (the summary above lists why), or the one reason.

    One source that failed: ``error: <its reason>``, the one line of any bad
    input. Several: each reason when the summary was not printed (``-q``), then
    ``error: N of M sources failed`` (exit 2: every one failed) or ``warning: …``
    (the others went on, exit 0).
    """
    if not result.failed_sources:
        return
    n, total = len(result.failed_sources), max(result.num_sources, len(result.failed_sources))
    level = "error" if result.exit_code == EXIT_USER_ERROR else "warning"
    if total == 1 and result.source_errors:
        print(redact_text(f"{level}: {result.source_errors[0]}"), file=sys.stderr)
        return
    if quiet:
        for error in result.source_errors:
            print(redact_text(f"{level}: {error}"), file=sys.stderr)
    print(f"{level}: {n} of {total} sources failed", file=sys.stderr)


def start_service(args: argparse.Namespace):
    """``--serve``: (status, web server), started; UserError for a bad address or a missing token."""
    if args.inline:
        raise UserError("--serve needs the process runtime; drop --inline")
    try:
        from .service import start_service as start
    except ImportError as e:
        raise UserError(f"--serve needs the serve extra ({e.name} is missing): pip install 'streampose[serve]'") from e
    try:
        return start(args.serve, args.serve_token)
    except ImportError as e:
        raise UserError(f"--serve needs the serve extra ({e.name} is missing): pip install 'streampose[serve]'") from e
    except ValueError as e:
        raise UserError(f"--serve {args.serve}: {e}") from e
    except OSError as e:
        raise UserError(f"--serve {args.serve}: cannot listen ({e}); choose another port") from e
