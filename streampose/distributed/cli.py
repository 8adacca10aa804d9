"""``streampose batch INPUT --output-dir DIR``: a corpus of videos / image folders on a Ray cluster.

Exit codes: 0 every item complete, 1 some items failed (listed, and in the
manifest), 2 bad input (one line ``error: ...``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..cli_args import OneLineErrorParser, positive_int
from ..errors import UserError
from ..runtime.outcome import EXIT_SIGINT, EXIT_USER_ERROR

EXAMPLES = """\
examples:
  # every video and image folder under corpus/, on a local Ray instance
  streampose batch corpus/ --output-dir results/

  # a glob, on a running cluster (ray start --head ...), half a GPU per actor
  streampose batch 'videos/**/*.mp4' --output-dir /shared/results --address auto --num-gpus 0.5

  # a manifest (one path or URL per line), long videos in 8 chunks each
  streampose batch list.txt --output-dir results/ --chunks 8

Re-running the same command resumes: complete items are skipped, failed and missing ones run.
"""


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="streampose batch", epilog=EXAMPLES,
                                description="Run a pipeline over a corpus of videos and image folders on Ray.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="INPUT",
                        help="a folder (its videos and image folders), a glob pattern, or a manifest file "
                             "(.txt .list .lst: one path or URL per line)")
    parser.add_argument("--output-dir", required=True, metavar="DIR",
                        help="where <item>.jsonl (and <item>.mp4) and manifest.json are written; on a "
                             "multi-machine cluster a folder every node sees under the same path")
    parser.add_argument("--pipeline", default="default", metavar="NAME",
                        help="a definition in pipelines/ or a .toml path (default: %(default)s)")
    parser.add_argument("--device", metavar="DEV", help="auto, cpu, cuda or cuda:N for every model step")
    parser.add_argument("--address", metavar="ADDR",
                        help="join a running Ray cluster: 'auto' or HOST:PORT of its head (default: start a "
                             "local Ray instance)")
    parser.add_argument("--local-cpus", type=positive_int, metavar="N",
                        help="without --address: CPUs of the local Ray instance (default: all)")
    parser.add_argument("--object-store-mb", type=positive_int, metavar="MB",
                        help="without --address: the local Ray object store's size (default: Ray's, 30%% of "
                             "memory; items move little data, so 200 is plenty)")
    parser.add_argument("--num-cpus", type=_non_negative_float, default=1.0, metavar="N",
                        help="CPUs reserved per actor (default %(default)s)")
    parser.add_argument("--num-gpus", type=_non_negative_float, default=0.0, metavar="N",
                        help="GPUs per actor; a fraction shares one GPU between actors, e.g. 0.25 (default 0)")
    parser.add_argument("--actors", type=positive_int, metavar="N",
                        help="actors in the pool (default: as many as the cluster's resources allow)")
    parser.add_argument("--video", action="store_true", help="also write an annotated <item>.mp4 per item")
    parser.add_argument("--chunks", type=positive_int, default=1, metavar="N",
                        help="split each video file into N time chunks at keyframes, run them in parallel "
                             "and stitch the results (default 1: no splitting)")
    parser.add_argument("--chunk-overlap", type=_non_negative_float, default=3.0, metavar="S",
                        help="seconds each chunk starts before its own part, to match tracks (default 3)")
    parser.add_argument("--max-attempts", type=positive_int, default=3, metavar="N",
                        help="runs of an item whose worker died before it counts as failed (default 3)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no summary")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    from ..cli import configure_logging, resolve_pipeline_name
    from ..config import apply_overrides, load_pipeline

    configure_logging(False, args.quiet)
    try:
        from .batch import BatchOptions, connect, run_batch
        from .corpus import discover_items

        try:
            options = BatchOptions(num_cpus=args.num_cpus, num_gpus=args.num_gpus, actors=args.actors,
                                   video=args.video, chunks=args.chunks, chunk_overlap_s=args.chunk_overlap,
                                   max_attempts=args.max_attempts,
                                   progress=False if args.no_progress else None)
        except ValueError as e:
            raise UserError(str(e)) from e
        pipeline = apply_overrides(load_pipeline(resolve_pipeline_name(args.pipeline)), device=args.device)
        items = discover_items(args.input)
        output_dir = Path(args.output_dir).expanduser()
        if output_dir.exists() and not output_dir.is_dir():
            raise UserError(f"--output-dir {args.output_dir!r} is a file; give a folder")
        if args.address and (args.local_cpus or args.object_store_mb):
            raise UserError("--local-cpus and --object-store-mb size a local Ray instance; drop them with --address")
        started = connect(args.address, num_cpus=args.local_cpus,
                          object_store_memory=args.object_store_mb * 2**20 if args.object_store_mb else None)
        try:
            result = run_batch(items, pipeline, output_dir, options)
        finally:
            if started:
                import ray

                ray.shutdown()
    except ModuleNotFoundError as e:
        if e.name != "ray":
            raise
        print("error: the batch command needs Ray; install it with: pip install 'streampose[ray]'", file=sys.stderr)
        return EXIT_USER_ERROR
    except UserError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return EXIT_SIGINT
    if not args.quiet:
        for line in result.summary_lines():
            print(line, file=sys.stderr)
    return result.exit_code


def run_fleet_command(args: argparse.Namespace, pipeline, source_options) -> int:
    """``run_stream.py --ray``: the main command's cameras as a supervised fleet (until Ctrl-C / SIGTERM)."""
    import signal
    import threading

    from .fleet import Fleet, FleetOptions

    from ..io.outputs import is_file_output, sink_specs

    folders = [o for o in args.output if o.endswith("/")]
    if len(folders) != 1 or args.show:
        raise UserError("--ray needs exactly one --output FOLDER/ (per-camera results, status.json, "
                        "metrics.prom) and no --show")
    extra = [o for o in args.output if not o.endswith("/")]
    if len(args.source) > 1 and any("{camera}" not in o for o in extra if is_file_output(o)):
        raise UserError("with --ray every other file --output is per camera: put {camera} in its name, "
                        "e.g. --output 'fleet/{camera}.mp4' (an mqtt:// topic may be shared or per camera)")
    Path(folders[0]).expanduser().mkdir(parents=True, exist_ok=True)
    try:
        options = FleetOptions(cameras_per_actor=args.cameras_per_actor, num_cpus=args.actor_cpus,
                               num_gpus=args.actor_gpus,
                               rotate=args.rotate or "",
                               extra_sinks=sink_specs(extra, False, overwrite=args.overwrite,
                                                      rotate=args.rotate or "", mqtt_qos=args.mqtt_qos,
                                                      mqtt_retain=args.mqtt_retain))
    except ValueError as e:
        raise UserError(f"--actor-cpus/--actor-gpus/--rotate: {e}") from e
    try:
        from .batch import connect
    except ModuleNotFoundError as e:
        if e.name != "ray":
            raise
        raise UserError("--ray needs Ray; install it with: pip install 'streampose[ray]'") from e
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = connect(args.ray_address)
    try:
        fleet = Fleet(args.source, pipeline, Path(folders[0]).expanduser(), options, source_options)
        try:
            final = fleet.run(stop=stop)
        except KeyboardInterrupt:
            final = fleet.snapshot
    finally:
        signal.signal(signal.SIGTERM, previous)
        if started:
            import ray

            ray.shutdown()
    for name, state in sorted(final.items()):
        print(f"{name}: {state.get('state')}, {state.get('frames', 0)} frames, {state.get('restarts', 0)} "
              f"restart(s){'; ' + state['error'] if state.get('error') else ''}", file=sys.stderr)
    return 1 if any(state.get("state") == "failed" for state in final.values()) else 0
