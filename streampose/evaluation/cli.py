"""``scripts/evaluate_coco.py``: COCO keypoint AP of a pose model on a COCO-format image set, or of a results file.

Two modes: run a model (``--images``, ``--pose-model`` / ``--pipeline``) and
score it, or score an existing COCO-format results file (``--results``);
either against COCO, CrowdPose or OCHuman annotations (``--dataset``,
:mod:`.datasets`). ``--json`` prints the stats as one JSON
object instead of the table.

Exit codes: 0 done, 2 bad input (one line ``error: ...``), 130 interrupted.
The stats table goes to stdout; progress and messages to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from ..cli_args import EXIT_USER_ERROR, OneLineErrorParser, fraction, positive_int
from ..errors import UserError
from .coco_eval import format_stats

log = logging.getLogger("streampose")

EXIT_SIGINT = 130

EXAMPLES = """\
examples:
  # the official HRNet-w32 256x192 table ("COCO-val with 56.4 detector AP")
  evaluate_coco.py --images coco/val2017 --annotations coco/annotations/person_keypoints_val2017.json \\
      --pose-model weights/pose_hrnet_w32_256x192.pth \\
      --boxes coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json

  # ground-truth boxes, no flip test, results kept
  evaluate_coco.py --images coco/val2017 --annotations person_keypoints_val2017.json \\
      --pose-model weights/pose_hrnet_w32_256x192.pth --boxes gt --no-flip --results-out results.json

  # a whole pipeline: its detector makes the boxes
  evaluate_coco.py --images coco/val2017 --annotations person_keypoints_val2017.json \\
      --pipeline topdown_hrnet_w32 --boxes detector --det-conf 0.05

  # score an existing results file on CrowdPose (easy / medium / hard too), as JSON
  evaluate_coco.py --annotations crowdpose_test.json --results results.json --dataset crowdpose --json

  # OCHuman (COCO-17 keypoints, heavy occlusion)
  evaluate_coco.py --annotations ochuman_coco_format_test_range_0.00_1.00.json --results results.json \\
      --dataset ochuman
"""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="evaluate_coco.py",
        description="COCO keypoint AP/AR of a pose model (official protocol: flip test, rescoring, OKS-NMS 0.9).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--images", metavar="DIR", help="folder of the annotated images (val2017/); to run a model")
    data.add_argument("--annotations", required=True, metavar="JSON",
                      help="person keypoints annotations (person_keypoints_val2017.json, CrowdPose or OCHuman "
                           "COCO-format json)")
    data.add_argument("--results", metavar="JSON",
                      help="score this COCO-format keypoint results file instead of running a model")
    data.add_argument("--dataset", choices=("coco", "crowdpose", "ochuman"), default="coco",
                      help="the annotations' benchmark: its keypoints, sigmas and stats (default coco)")
    data.add_argument("--max-images", type=positive_int, metavar="N",
                      help="only the first N images by id (evaluated on those alone)")
    model = parser.add_argument_group("model")
    model.add_argument("--pipeline", metavar="NAME",
                       help="evaluate the pose step (and detector step) of a pipelines/ definition")
    model.add_argument("--pose-model", metavar="CKPT",
                       help="HRNet / SimDR (top-down) or HigherHRNet (bottom-up) checkpoint; with --pipeline: "
                            "the pose step's weights")
    model.add_argument("--no-flip", action="store_true", help="no flip test (the published numbers use it)")
    model.add_argument("--device", default="auto", metavar="DEV", help="auto, cpu, cuda or cuda:N (default auto)")
    boxes = parser.add_argument_group("person boxes (top-down models)")
    boxes.add_argument("--boxes", default="gt", metavar="gt|PATH|detector",
                       help="'gt' (ground truth, box score 1), a COCO detections JSON "
                            "(e.g. COCO_val2017_detections_AP_H_56_person.json), or 'detector' (default gt)")
    boxes.add_argument("--det-model", metavar="PATH",
                       help="detector weights for --boxes detector: YOLOv5 .pt or YOLOX .pth "
                            "(with --pipeline: the detector step's weights)")
    boxes.add_argument("--img-size", type=positive_int, metavar="N", help="detector input size")
    boxes.add_argument("--det-conf", type=fraction, metavar="S",
                       help="detector score threshold (default the detector's own)")
    out = parser.add_argument_group("output")
    out.add_argument("--results-out", metavar="PATH", help="write the COCO keypoint results JSON there")
    out.add_argument("--json", action="store_true", help="print the stats as one JSON object")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    out.add_argument("-v", "--verbose", action="store_true", help="debug messages")
    return parser


def _configure_logging(verbose: bool) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                            format="%(levelname)s: %(message)s")


_MODEL_OPTIONS = ("images", "pipeline", "pose_model", "results_out", "max_images", "det_model", "img_size",
                  "det_conf")


def _score_results(args: argparse.Namespace) -> dict[str, float]:
    from .datasets import evaluate_results

    given = [f"--{name.replace('_', '-')}" for name in _MODEL_OPTIONS if getattr(args, name) is not None]
    if given or args.no_flip or args.boxes != "gt":
        flags = given + (["--no-flip"] if args.no_flip else []) + (["--boxes"] if args.boxes != "gt" else [])
        raise UserError(f"{', '.join(flags)}: not used with --results (a results file is scored as it is)")
    return evaluate_results(args.annotations, args.results, args.dataset)


def _evaluate(args: argparse.Namespace):
    from .estimators import detector_from_weights, estimator_from_checkpoint, steps_from_pipeline
    from .person_boxes import detection_file_boxes
    from .runner import check_dataset, run_coco_evaluation

    if args.pipeline is None and args.pose_model is None:
        raise UserError("give --pose-model CKPT or --pipeline NAME, or --results JSON to score a results file "
                        "(see --help)")
    if args.images is None:
        raise UserError("--images DIR: the annotated images are needed to run a model")

    boxes_from = args.boxes
    want_detector = boxes_from == "detector"
    if not want_detector and (args.det_model or args.img_size or args.det_conf is not None):
        raise UserError("--det-model, --img-size and --det-conf apply to --boxes detector")
    if want_detector and args.pipeline is None and args.det_model is None:
        raise UserError("--boxes detector needs --det-model PATH (or a --pipeline with a detector step)")
    # Check the data before any model is loaded: bad paths fail in a second.
    coco, _ = check_dataset(args.images, args.annotations, args.max_images, args.dataset)
    if boxes_from not in ("gt", "detector"):
        boxes_from = Path(boxes_from)
        detection_file_boxes(boxes_from, coco)

    pipeline = None
    detector = None
    try:
        if args.pipeline is not None:
            pipeline = steps_from_pipeline(
                args.pipeline, pose_model=args.pose_model,
                det_model=args.det_model, img_size=args.img_size,
                device=args.device, flip_test=not args.no_flip, score_threshold=args.det_conf,
                want_detector=want_detector)
            estimator, kind = pipeline.pose, pipeline.pose.kind
            detector = pipeline.detector
        else:
            estimator, kind = estimator_from_checkpoint(args.pose_model, flip_test=not args.no_flip,
                                                        device=args.device)
        if kind == "bottomup" and args.boxes != "gt":
            raise UserError(f"--boxes {args.boxes}: the pose model is bottom-up and takes whole images; "
                            "drop --boxes")
        if want_detector and kind == "topdown" and detector is None:
            detector = detector_from_weights(args.det_model, img_size=args.img_size,
                                             score_threshold=args.det_conf, device=args.device)
        return run_coco_evaluation(
            args.images, args.annotations, estimator=estimator, estimator_kind=kind,
            boxes_from=detector if want_detector else boxes_from, results_out=args.results_out,
            max_images=args.max_images, progress=not args.no_progress, dataset=args.dataset)
    finally:
        if pipeline is not None:
            pipeline.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        if args.results is not None:
            return _print_stats(_score_results(args), args.json)
        evaluation = _evaluate(args)
    except UserError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_SIGINT
    print(f"{evaluation.num_images} images, {evaluation.num_boxes} person boxes, {len(evaluation.results)} people "
          f"in the results, {evaluation.seconds:.1f} s", file=sys.stderr)
    if evaluation.results_path is not None:
        print(f"results written to {evaluation.results_path}", file=sys.stderr)
    return _print_stats(evaluation.stats, args.json)


def _print_stats(stats: dict[str, float], as_json: bool) -> int:
    import json

    from .datasets import stats_line_json

    print(json.dumps(stats_line_json(stats)) if as_json else format_stats(stats))
    return 0
