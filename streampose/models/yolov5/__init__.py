"""YOLOv5 person detector: safe checkpoint loading, network built from the checkpoint's yaml, inference.

Use :class:`streampose.models.yolov5.detector.YoloV5Detector`.
"""
