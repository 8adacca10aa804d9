"""Top-down pose estimation: person crops → network → decoders → keypoints in frame pixels.

``TopDownEstimator.from_checkpoint(path).predict(image, xyxy) -> Poses`` is the
entry point; :mod:`.crops` (official crop geometry) is the flow's own geometry;
what a model must provide to plug in is
:class:`streampose.models.protocols.TopDownPoseModel`, and each family's
decoders live in its package under :mod:`streampose.models`. Importing this
package does not import torch.
"""

from .crops import CropSpec
from .estimator import TopDownEstimator, person_scores
from ..models.protocols import CropKeypoints, TopDownModel

__all__ = ["CropKeypoints", "CropSpec", "TopDownEstimator", "TopDownModel", "person_scores"]
