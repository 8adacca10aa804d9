"""Person detection with a YOLOX-style net: image(s) in, :class:`Detections` out.

``YoloxDetector.from_weights("weights/light_person_detector_192.pth").detect([image])`` gives
the bundled default detector; the bundled files carry their input size and
thresholds in :data:`BUNDLED_DETECTORS` (facts from the configuration of
Kazuhito00/Detection-PoseEstimation-Pipeline, where the files come from).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import CheckpointError
from ...records import Detections
from ..checkpoint import load_exactly, load_state_dict_file, shapes_match
from .decode import anchor_grid, boxes_to_source, decode_boxes, letterbox_top_left, select_boxes

logger = logging.getLogger(__name__)

PERSON_CLASS_ID = 0  # in both the person-only and the COCO-80 models


@dataclass(frozen=True)
class DetectorWeights:
    """What a bundled detector file needs besides its tensors."""

    variant: str
    img_size: int
    score_threshold: float
    nms_threshold: float


# Keyed by file name under weights/.
BUNDLED_DETECTORS: dict[str, DetectorWeights] = {
    "light_person_detector_192.pth": DetectorWeights("nano_person", 192, 0.3, 0.5),
    "yolox_nano_416.pth": DetectorWeights("nano", 416, 0.3, 0.45),
}
DEFAULT_DETECTOR_WEIGHTS = "weights/light_person_detector_192.pth"


class YoloxDetector:
    """A YOLOX net plus its pre/post-processing; keeps person boxes only.

    img_size: square network input (multiple of 32); thresholds as in
    :func:`streampose.models.yolox.decode.select_boxes`.
    """

    def __init__(self, net, *, img_size: int, score_threshold: float, nms_threshold: float, device="cpu") -> None:
        import torch

        if img_size % 32:
            raise ValueError(f"img_size must be a multiple of 32, got {img_size}")
        self.device = torch.device(device)
        # Channels-last (the layout the NHWC images arrive in) is 10-15% faster on CPU.
        self.net = net.to(self.device).eval().to(memory_format=torch.channels_last)
        self.input_hw = (img_size, img_size)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        grid, strides = anchor_grid(self.input_hw, (8, 16, 32))
        self._grid, self._strides = grid.to(self.device), strides.to(self.device)

    @classmethod
    def from_weights(
        cls,
        path: str | Path = DEFAULT_DETECTOR_WEIGHTS,
        *,
        img_size: int | None = None,
        score_threshold: float | None = None,
        nms_threshold: float | None = None,
        device="cpu",
    ) -> "YoloxDetector":
        """Load a converted state dict; unset options take the bundled file's values.

        Raises UserError / CheckpointError naming the file and the fix.
        """
        from .network import VARIANTS, build_yolox

        hint = "convert an ONNX export with scripts/convert_yolox.py"
        state = load_state_dict_file(path, "detector weights", hint)
        known = BUNDLED_DETECTORS.get(Path(path).name)
        variant = known.variant if known else None
        if variant is None:
            variant = next((v for v in VARIANTS if shapes_match(build_yolox(v), state)), None)
            if variant is None:
                raise CheckpointError(f"detector weights {str(path)!r} fit no YOLOX variant ({sorted(VARIANTS)}); "
                                      f"{hint}")
        if img_size is None:
            if known is None:
                raise CheckpointError(f"detector weights {str(path)!r} are not a bundled file, so their input size "
                                      "is unknown; set img_size (--img-size)")
            img_size = known.img_size
        net = build_yolox(variant)
        load_exactly(net, state, path, "detector weights")
        return cls(net, img_size=img_size,
                   score_threshold=score_threshold if score_threshold is not None else
                   (known.score_threshold if known else 0.3),
                   nms_threshold=nms_threshold if nms_threshold is not None else
                   (known.nms_threshold if known else 0.45),
                   device=device)

    @property
    def network(self):
        """The torch module (the protocols' name for it)."""
        return self.net

    def raw_outputs(self, images: list[np.ndarray]):
        """Network outputs (B, N, 5 + C) for BGR uint8 images, and each image's letterbox."""
        import torch

        canvases, boxes = zip(*(letterbox_top_left(im, self.input_hw) for im in images))
        batch = torch.from_numpy(np.stack(canvases)).to(self.device).permute(0, 3, 1, 2).float()
        batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.net(batch), list(boxes)

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        """Person boxes for each BGR uint8 (H, W, 3) image, in source pixels, best first."""
        import torch

        if not images:
            return []
        raw, letterboxes = self.raw_outputs(images)
        results = []
        with torch.inference_mode():
            xyxy, scores = decode_boxes(raw, self._grid, self._strides)
            for i, lb in enumerate(letterboxes):
                boxes, best, labels = select_boxes(xyxy[i], scores[i], score_threshold=self.score_threshold,
                                                   nms_threshold=self.nms_threshold, class_ids=(PERSON_CLASS_ID,))
                results.append(Detections(boxes_to_source(boxes.cpu().numpy(), lb), best.cpu().numpy(),
                                          labels.cpu().numpy()))
        return results

    def predict(self, image: np.ndarray) -> Detections:
        """Person boxes for one BGR uint8 image."""
        return self.detect([image])[0]
