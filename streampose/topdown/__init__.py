"""Top-down pose estimation: person crops → network → decoders → keypoints in frame pixels.

``TopDownEstimator.from_checkpoint(path).predict(image, xyxy) -> Poses`` is the
entry point; :mod:`.crops` (official crop geometry), :mod:`.heatmap_decode`,
:mod:`.simdr_decode` and :mod:`.flip` are pure functions it is built from, and
:mod:`.models` says what a model must provide to plug in. Importing this
package does not import torch.
"""

from .crops import CropSpec
from .estimator import TopDownEstimator, person_scores
from .models import CropKeypoints, TopDownModel

__all__ = ["CropKeypoints", "CropSpec", "TopDownEstimator", "TopDownModel", "person_scores"]
