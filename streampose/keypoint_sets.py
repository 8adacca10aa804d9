"""Keypoint sets as data: names, skeleton, flip pairs, OKS sigmas and grouping order, in one place.

Every part of the package that needs to know what keypoint ``k`` is (records,
drawing, tracking's OKS, result-file columns, COCO results and evaluation,
flip test, the bottom-up grouping order) asks this module, by set name or by
the number of keypoints a model produces (:func:`keypoint_set_for`). It is a
low layer (numpy only), beside :mod:`streampose.records`.

Sources of the facts:

- **COCO-17**: names and skeleton from the COCO person-keypoints category;
  OKS sigmas from pycocotools ``COCOeval`` (``Params.kpt_oks_sigmas``); flip
  pairs from the HRNet / HigherHRNet configs (``FLIP_CONFIG['COCO']``);
  grouping order from HigherHRNet ``lib/core/group.py`` (``Params.joint_order``).
- **CrowdPose-14** (Li et al., CVPR 2019): names from the CrowdPose
  annotations (HigherHRNet ``lib/dataset/__init__.py``
  ``crowd_pose_part_labels``); flip pairs from HigherHRNet
  ``FLIP_CONFIG['CROWDPOSE']`` (``lib/dataset/transforms/build.py``; head and
  neck map to themselves); skeleton from its ``crowd_pose_part_orders``; OKS
  sigmas from the CrowdPose API / xtcocotools ``crowdpose`` mode (the COCO
  body sigmas, 0.079 for head and neck). The official grouping order for
  CrowdPose is the first 14 entries of the COCO order (``group.py`` loops
  ``range(NUM_JOINTS)`` over the 17-entry list), which happens to be a
  permutation of 0..13.
- **OCHuman** annotations use the COCO-17 set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class KeypointSet:
    """One keypoint convention.

    name: short id (``coco17``, ``crowdpose14``; the ``keypoints`` of the model
    registry, :mod:`streampose.models.registry`); keypoint_names: K names, 0-indexed
    order of the model outputs and files; skeleton: limbs drawn, pairs of
    indices; flip_pairs: left/right pairs swapped by a horizontal flip;
    oks_sigmas: K per-keypoint OKS sigmas; joint_order: the order the official
    associative-embedding parser visits joints (a permutation of 0..K-1).
    """

    name: str
    keypoint_names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    oks_sigmas: tuple[float, ...]
    joint_order: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        k = len(self.keypoint_names)
        if len(set(self.keypoint_names)) != k:
            raise ValueError(f"{self.name}: keypoint names repeat")
        for what, pairs in (("skeleton", self.skeleton), ("flip_pairs", self.flip_pairs)):
            if any(not (0 <= a < k and 0 <= b < k) for a, b in pairs):
                raise ValueError(f"{self.name}: {what} refers to a keypoint outside 0..{k - 1}")
        if len(self.oks_sigmas) != k:
            raise ValueError(f"{self.name}: {len(self.oks_sigmas)} OKS sigmas for {k} keypoints")
        if not self.joint_order:
            object.__setattr__(self, "joint_order", tuple(range(k)))
        if sorted(self.joint_order) != list(range(k)):
            raise ValueError(f"{self.name}: joint_order must be a permutation of 0..{k - 1}")

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def flip_index(self) -> tuple[int, ...]:
        """Index permutation equivalent to ``flip_pairs`` (keypoints without a pair map to themselves)."""
        index = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            index[a], index[b] = b, a
        return tuple(index)

    @property
    def sigmas(self) -> np.ndarray:
        """(K,) float64 OKS sigmas (a new array)."""
        return np.array(self.oks_sigmas, dtype=np.float64)


COCO_17 = KeypointSet(
    name="coco17",
    keypoint_names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12),
        (5, 6), (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2),
        (1, 3), (2, 4), (3, 5), (4, 6),
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    oks_sigmas=tuple(s / 10.0 for s in (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                                        .87, .87, .89, .89)),
    joint_order=(0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16),
)

CROWDPOSE_14 = KeypointSet(
    name="crowdpose14",
    keypoint_names=(
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
        "head", "neck",
    ),
    skeleton=(
        (12, 13), (13, 0), (13, 1), (0, 1), (0, 6), (1, 7), (6, 7), (0, 2), (2, 4),
        (1, 3), (3, 5), (6, 8), (8, 10), (7, 9), (9, 11),
    ),
    flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    oks_sigmas=tuple(s / 10.0 for s in (.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79)),
    joint_order=(0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13),
)

#: Every named set, by ``KeypointSet.name``.
KEYPOINT_SETS: dict[str, KeypointSet] = {s.name: s for s in (COCO_17, CROWDPOSE_14)}


def keypoint_set(name: str) -> KeypointSet:
    """The named set; ValueError listing the names otherwise."""
    try:
        return KEYPOINT_SETS[name]
    except KeyError:
        raise ValueError(f"unknown keypoint set {name!r}; known: {sorted(KEYPOINT_SETS)}") from None


@lru_cache(maxsize=None)
def keypoint_set_for(num_keypoints: int) -> KeypointSet:
    """The set of a model or record with ``num_keypoints`` keypoints.

    17 → COCO, 14 → CrowdPose (the named sets differ in size, so the count
    identifies them). Any other count gets a generic set: names
    ``keypoint_<i>``, no skeleton, no flip pairs, every sigma the mean COCO
    sigma (OKS still defined, nothing drawn between keypoints).
    """
    if num_keypoints < 0:
        raise ValueError(f"num_keypoints must be >= 0, got {num_keypoints}")
    for known in KEYPOINT_SETS.values():
        if known.num_keypoints == num_keypoints:
            return known
    mean_sigma = float(np.mean(COCO_17.oks_sigmas))
    return KeypointSet(name=f"generic{num_keypoints}",
                       keypoint_names=tuple(f"keypoint_{i}" for i in range(num_keypoints)),
                       skeleton=(), flip_pairs=(), oks_sigmas=(mean_sigma,) * num_keypoints)


__all__ = ["COCO_17", "CROWDPOSE_14", "KEYPOINT_SETS", "KeypointSet", "keypoint_set", "keypoint_set_for"]
