"""YOLOX-style person detectors: network (:mod:`.network`), decoding (:mod:`.decode`), detector (:mod:`.detector`)."""

from __future__ import annotations

from pathlib import Path


def build(entry, weights, *, device: str = "cpu", **options):
    """The registry builder: a :class:`~.detector.YoloxDetector` for ``entry``.

    weights: a converted state dict, or None for random weights of the entry's variant.
    """
    from .detector import BUNDLED_DETECTORS, YoloxDetector

    known = BUNDLED_DETECTORS[Path(entry.weights).name]
    if weights is None:
        from .network import build_yolox

        return YoloxDetector(build_yolox(known.variant), img_size=known.img_size,
                             score_threshold=known.score_threshold, nms_threshold=known.nms_threshold, device=device)
    return YoloxDetector.from_weights(weights, device=device, **options)
