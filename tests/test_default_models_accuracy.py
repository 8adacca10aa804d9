"""COCO keypoint AP of the default pair on the four images of ../shared/coco (14 people).

The same evaluation as ``scripts/evaluate_coco.py --pipeline default --boxes gt|detector``
(official protocol: rescoring, OKS-NMS 0.9). The int8 TFLite MoveNet scored
0.571 there with ground-truth boxes (../shared/SOURCES.md).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("boxes,minimum", [("gt", 0.50), ("detector", 0.45)])
def test_default_pipeline_coco_ap(shared_dir, boxes, minimum):
    from streampose.evaluation.estimators import steps_from_pipeline
    from streampose.evaluation.runner import run_coco_evaluation

    models = steps_from_pipeline("default", device="cpu", want_detector=boxes == "detector")
    try:
        evaluation = run_coco_evaluation(shared_dir / "coco", shared_dir / "coco" / "test_coco.json",
                                         estimator=models.pose, estimator_kind=models.pose.kind,
                                         boxes_from=models.detector if boxes == "detector" else "gt",
                                         progress=False)
    finally:
        models.close()
    # measured: 0.590 with ground-truth boxes, 0.632 with the default detector's (at 256)
    assert evaluation.stats["AP"] >= minimum
    if boxes == "detector":
        assert evaluation.num_boxes >= 10  # the detector finds most of the 14 people
