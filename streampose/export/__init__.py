"""Exporting models (ONNX, TensorRT engines) and running them on other inference backends.

- :mod:`.onnx_export`: a model's network → a checked ONNX file (decoders stay ours);
- :mod:`.backends`: the ``backend`` option of model steps (ONNX Runtime, OpenVINO, TensorRT);
- :mod:`.cli`: ``streampose export MODEL --format onnx --output FILE``.
"""
