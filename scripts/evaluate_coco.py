"""COCO keypoint evaluation of a pose model: AP, AP50, AP75, APm, APl, AR (pycocotools).

    python scripts/evaluate_coco.py --images coco/val2017 \
        --annotations coco/annotations/person_keypoints_val2017.json \
        --pose-model weights/pose_hrnet_w32_256x192.pth \
        --boxes coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json

See ``--help`` and :mod:`streampose.evaluation.cli`.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from streampose.evaluation.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
