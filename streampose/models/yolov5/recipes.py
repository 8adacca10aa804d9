"""yolov5 model yamls (layer recipes) of the registry's YOLOv5 entries, for building them with random weights.

Facts from ultralytics/yolov5: ``models/yolov5n.yaml`` of v6.x / v7.0 (6x6
Conv stem, SPPF) and ``models/yolov5m.yaml`` of v4.0 (Focus stem, SPP), which
deepakcrk/yolov5-crowdhuman trained with two classes. Real checkpoints carry
their own yaml; these exist so that a test or an export dry run can build
the official layout without the weights.
"""

from __future__ import annotations

_ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]

_V6_BACKBONE = [[-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
                [-1, 1, "Conv", [256, 3, 2]], [-1, 6, "C3", [256]], [-1, 1, "Conv", [512, 3, 2]],
                [-1, 9, "C3", [512]], [-1, 1, "Conv", [1024, 3, 2]], [-1, 3, "C3", [1024]],
                [-1, 1, "SPPF", [1024, 5]]]
_V4_BACKBONE = [[-1, 1, "Focus", [64, 3]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
                [-1, 1, "Conv", [256, 3, 2]], [-1, 9, "C3", [256]], [-1, 1, "Conv", [512, 3, 2]],
                [-1, 9, "C3", [512]], [-1, 1, "Conv", [1024, 3, 2]], [-1, 1, "SPP", [1024, [5, 9, 13]]],
                [-1, 3, "C3", [1024, False]]]
_HEAD = [[-1, 1, "Conv", [512, 1, 1]], [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
         [[-1, 6], 1, "Concat", [1]], [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [256, 1, 1]],
         [-1, 1, "nn.Upsample", ["None", 2, "nearest"]], [[-1, 4], 1, "Concat", [1]],
         [-1, 3, "C3", [256, False]], [-1, 1, "Conv", [256, 3, 2]], [[-1, 14], 1, "Concat", [1]],
         [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [512, 3, 2]], [[-1, 10], 1, "Concat", [1]],
         [-1, 3, "C3", [1024, False]], [[17, 20, 23], 1, "Detect", ["nc", "anchors"]]]

#: registry entry name → (yaml, class names).
RECIPES: dict[str, tuple[dict, tuple[str, ...]]] = {
    "yolov5n": ({"nc": 80, "depth_multiple": 0.33, "width_multiple": 0.25, "anchors": _ANCHORS,
                 "backbone": _V6_BACKBONE, "head": _HEAD},
                ("person",) + tuple(f"class{i}" for i in range(1, 80))),
    "crowdhuman_yolov5m": ({"nc": 2, "depth_multiple": 0.67, "width_multiple": 0.75, "anchors": _ANCHORS,
                            "backbone": _V4_BACKBONE, "head": _HEAD}, ("person", "head")),
}
STRIDES = (8.0, 16.0, 32.0)
