"""YOLOv5 person detector: safe checkpoint loading, network built from the checkpoint's yaml, inference.

Use :class:`streampose.models.yolov5.detector.YoloV5Detector`, or
``streampose.models.registry.build("yolov5n")``.
"""

from __future__ import annotations


def build(entry, weights, *, device: str = "cpu", **options):
    """The registry builder: a :class:`~.detector.YoloV5Detector` for ``entry``.

    weights: a yolov5 ``.pt`` file, or None for random weights of the entry's recipe.
    """
    from .detector import YoloV5Detector

    # The registry's common option names → yolov5's.
    for common, own in (("score_threshold", "conf_threshold"), ("nms_threshold", "iou_threshold")):
        if common in options:
            options[own] = options.pop(common)
    if weights is None:
        from .network import YoloV5Network
        from .recipes import RECIPES, STRIDES

        yaml, names = RECIPES[entry.name]
        return YoloV5Detector(YoloV5Network(yaml, strides=STRIDES).eval(), names, device=device, **options)
    kwargs = {"img_size": entry.input_size_wh[0], **dict(entry.options), **options}
    return YoloV5Detector.from_checkpoint(weights, device=device, **kwargs)
