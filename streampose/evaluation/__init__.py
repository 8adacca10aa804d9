"""COCO keypoint evaluation: results format, OKS / OKS-NMS, pycocotools wiring, dataset runner."""

from .coco_eval import STAT_NAMES, evaluate_keypoints, format_stats
from .coco_results import KeypointResultsWriter, keypoint_results, write_keypoint_results
from .oks import COCO_KEYPOINT_SIGMAS, oks_matrix, oks_nms
from .runner import CocoEvaluation, run_coco_evaluation

__all__ = [
    "COCO_KEYPOINT_SIGMAS", "CocoEvaluation", "KeypointResultsWriter", "STAT_NAMES", "evaluate_keypoints",
    "format_stats", "keypoint_results", "oks_matrix", "oks_nms", "run_coco_evaluation", "write_keypoint_results",
]
