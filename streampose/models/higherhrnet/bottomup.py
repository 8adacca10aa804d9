"""HigherHRNet adapter: frames in, :class:`~streampose.records.Poses` out (a
:class:`~streampose.models.protocols.BottomUpPoseModel`).

One call runs the official test pipeline of HRNet/HigherHRNet-Human-Pose-Estimation
(``tools/valid.py``): the official resize (:mod:`.resize`), the network
(:mod:`streampose.models.hrnet.network`, shared with the HRNet family), the
map aggregation with optional flip test and scales (:mod:`.aggregate`), the
parser (:mod:`.grouping`) and ``get_final_preds`` back to frame pixels. Frames
of the same size are warped and run through the network as one batch.

Example::

    from streampose.models.higherhrnet import HigherHRNetEstimator
    estimator = HigherHRNetEstimator.from_checkpoint("weights/pose_higher_hrnet_w32_512.pth")
    poses = estimator.predict(cv2.imread("people.jpg"))   # Poses: keypoints (N, K, 2) in frame pixels

COCO-17 and CrowdPose-14 models are both supported: the keypoint set (flip
index, grouping order) follows the number of joints the checkpoint has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import CheckpointError
from ...keypoint_sets import COCO_17, KEYPOINT_SETS, KeypointSet, keypoint_set_for
from ...records import Poses
from . import grouping
from .aggregate import MapAccumulator, stage_maps
from .resize import ResizeGeometry, group_by_size, multi_scale_size, normalize_to_tensor, warp_to_input

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BottomUpMaps:
    """Aggregated maps of a batch of same-size frames, on the CPU.

    heatmaps: (N, J, H, W) float32; tags: (N, J, H, W, D) float32; geometry:
    the frame → input transform the parser's coordinates are mapped back with
    (the smallest scale's, as the official loop leaves it); size_wh: (W, H).
    """

    heatmaps: np.ndarray
    tags: np.ndarray
    geometry: ResizeGeometry
    size_wh: tuple[int, int]


class HigherHRNetEstimator:
    """Bottom-up multi-person pose with a HigherHRNet network.

    network: a loaded HigherHRNet (``streampose.models.hrnet.checkpoints.load_pose_model``),
    in eval mode on ``device``; input_size: shorter-side size of the network
    input (512 / 640); flip_test: also run the mirrored frame (official
    FLIP_TEST); scales: test scale factors (official SCALE_FACTOR, 1.0 alone
    by default); params: grouping settings; filter_redundant_poses: drop
    near-duplicate poses (mean absolute keypoint difference under 3 px, the
    simple-HigherHRNet filter; off in the official evaluation); min_pose_score:
    drop people whose score is below it; keypoint_set: the network's joints
    (COCO-17 or CrowdPose-14): flip index, and the grouping order that
    ``params.joint_order`` must equal.
    """

    def __init__(self, network, *, input_size: int, device, flip_test: bool = True,
                 scales: tuple[float, ...] = (1.0,), params: grouping.ParserParams = grouping.ParserParams(),
                 filter_redundant_poses: bool = False, min_pose_score: float = 0.0,
                 keypoint_set: KeypointSet = COCO_17) -> None:
        if input_size < 64 or input_size % 64 != 0:
            raise ValueError(f"input_size must be a positive multiple of 64, got {input_size}")
        if not scales or any(s <= 0 for s in scales):
            raise ValueError(f"scales must be positive, got {scales}")
        if len(params.joint_order) != keypoint_set.num_keypoints:
            raise ValueError(f"params.joint_order must list the {keypoint_set.num_keypoints} joints of "
                             f"{keypoint_set.name}, got {len(params.joint_order)}")
        self.keypoint_set = keypoint_set
        self.network = network
        self.input_size = int(input_size)
        self.device = device
        self.flip_test = bool(flip_test)
        self.scales = tuple(sorted((float(s) for s in scales), reverse=True))
        self.params = params
        self.filter_redundant_poses = bool(filter_redundant_poses)
        self.min_pose_score = float(min_pose_score)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, input_size: int | None = None, flip_test: bool = True,
                        device: str = "auto", scales: tuple[float, ...] = (1.0,),
                        detection_threshold: float = 0.1, tag_threshold: float = 1.0, max_people: int = 30,
                        adjust: bool = True, refine: bool = True, filter_redundant_poses: bool = False,
                        min_pose_score: float = 0.0) -> "HigherHRNetEstimator":
        """Load an official HigherHRNet checkpoint (w32-512, w32-640, w48-640; fp16 wrappers too).

        input_size: None takes the model's (512 or 640). COCO-17 and
        CrowdPose-14 models (official CrowdPose w32-640, w48-640) are
        recognised from their joint count. Raises UserError for a missing
        file and CheckpointError for a checkpoint that is not a HigherHRNet of
        a known keypoint set (e.g. a top-down HRNet: use ``topdown_pose``).
        """
        from ...device import resolve_device
        from ..hrnet.checkpoints import load_pose_model

        torch_device = resolve_device(device)
        network, spec = load_pose_model(path, device=torch_device)
        estimator = cls.from_network(network, spec, source=str(path), input_size=input_size, flip_test=flip_test,
                                     device=torch_device, scales=scales, detection_threshold=detection_threshold,
                                     tag_threshold=tag_threshold, max_people=max_people, adjust=adjust,
                                     refine=refine, filter_redundant_poses=filter_redundant_poses,
                                     min_pose_score=min_pose_score)
        logger.info("HigherHRNet %s on %s, input %d, flip test %s", spec.name, torch_device, estimator.input_size,
                    flip_test)
        return estimator

    @classmethod
    def from_network(cls, network, spec, *, source: str, device, input_size: int | None = None,
                     flip_test: bool = True, scales: tuple[float, ...] = (1.0,), detection_threshold: float = 0.1,
                     tag_threshold: float = 1.0, max_people: int = 30, adjust: bool = True, refine: bool = True,
                     filter_redundant_poses: bool = False, min_pose_score: float = 0.0) -> "HigherHRNetEstimator":
        """The estimator of a built network and its :class:`~streampose.models.hrnet.network.PoseNetSpec`.

        network: on ``device``, in eval mode; source: how the network is named in
        errors (its file). Raises CheckpointError when ``spec`` is not a
        HigherHRNet of a known keypoint set.
        """
        if spec.head.kind != "higherhrnet":
            raise CheckpointError(f"{source!r} is a top-down {spec.name} checkpoint, not HigherHRNet; "
                                  "use it with the topdown_pose step or give a pose_higher_hrnet_* checkpoint")
        keypoint_set = keypoint_set_for(spec.num_joints)
        if keypoint_set.name not in KEYPOINT_SETS or spec.head.tag_dim != spec.num_joints:
            known = ", ".join(f"{s.name} ({s.num_keypoints})" for s in KEYPOINT_SETS.values())
            raise CheckpointError(f"{source!r} has {spec.num_joints} joints and {spec.head.tag_dim} tag maps; "
                                  f"only HigherHRNet with a tag per joint of a known keypoint set ({known}) "
                                  "is supported")
        params = grouping.ParserParams(detection_threshold=detection_threshold, tag_threshold=tag_threshold,
                                       max_num_people=max_people, adjust=adjust, refine=refine,
                                       joint_order=keypoint_set.joint_order)
        size = spec.input_size_wh[0] if input_size is None else input_size
        return cls(network, input_size=size, device=device, flip_test=flip_test, scales=scales,
                   params=params, filter_redundant_poses=filter_redundant_poses, min_pose_score=min_pose_score,
                   keypoint_set=keypoint_set)

    # ------------------------------------------------------------------ inference

    def predict(self, image: np.ndarray) -> Poses:
        """People in one BGR uint8 (H, W, 3) frame, in frame pixels."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: list[np.ndarray]) -> list[Poses]:
        """People in each frame; frames of equal size share one network batch. Order kept."""
        results: list[Poses | None] = [None] * len(images)
        for indices in group_by_size([_checked(image) for image in images]).values():
            maps = self.maps([images[i] for i in indices])
            for k, i in enumerate(indices):
                results[i] = self.poses_from_maps(maps.heatmaps[k], maps.tags[k], maps.geometry, maps.size_wh)
        return results  # type: ignore[return-value]

    def maps(self, images: list[np.ndarray]) -> BottomUpMaps:
        """Aggregated heatmaps and tags of frames that all have the same size."""
        import torch

        frame_hw = images[0].shape[:2]
        if any(image.shape[:2] != frame_hw for image in images):
            raise ValueError("maps() needs frames of one size; predict_batch() groups them")
        base = multi_scale_size(frame_hw, self.input_size, 1.0, min(self.scales))
        accumulator = MapAccumulator(base.size_wh)
        geometry = base
        with torch.inference_mode():
            for scale in self.scales:
                geometry = multi_scale_size(frame_hw, self.input_size, scale, min(self.scales))
                warped = np.stack([warp_to_input(image, geometry) for image in images])
                x = normalize_to_tensor(warped, self.device)
                n = x.shape[0]
                outputs = self.network(torch.cat([x, torch.flip(x, [3])]) if self.flip_test else x)
                num_joints = self.keypoint_set.num_keypoints
                heatmaps, tags = stage_maps([o[:n] for o in outputs], num_joints=num_joints)
                if self.flip_test:
                    heatmaps_flip, tags_flip = stage_maps([o[n:] for o in outputs], num_joints=num_joints,
                                                          flipped=True, flip_index=self.keypoint_set.flip_index)
                    accumulator.add(heatmaps, tags, heatmaps_flip, tags_flip)
                else:
                    accumulator.add(heatmaps, tags)
            heatmaps, tags = accumulator.result()
            heatmaps = heatmaps.float().cpu().numpy()
            tags = tags.float().cpu().numpy()
        return BottomUpMaps(heatmaps, tags, geometry, base.size_wh)

    def poses_from_maps(self, heatmaps: np.ndarray, tags: np.ndarray, geometry: ResizeGeometry,
                        size_wh: tuple[int, int]) -> Poses:
        """Group one frame's maps into people and map them to frame pixels."""
        parsed = grouping.parse(heatmaps, tags, self.params)
        final = grouping.final_preds(parsed.grouped, geometry.center, geometry.scale, size_wh)
        return self._to_poses(final, parsed.scores)

    def _to_poses(self, final: np.ndarray, scores: np.ndarray) -> Poses:
        keypoints = final[:, :, 0:2]
        keypoint_scores = final[:, :, 2]
        keep = scores >= self.min_pose_score
        if self.filter_redundant_poses:
            keep &= grouping.redundant_pose_mask(keypoints)
        keypoints, keypoint_scores, scores = keypoints[keep], keypoint_scores[keep], scores[keep]
        return Poses(keypoints, keypoint_scores, scores, grouping.boxes_from_keypoints(keypoints, keypoint_scores))

    def warmup(self) -> None:
        """Compile (or load from cache) the grouping kernels in this process."""
        warm_up_grouping()


def warm_up_grouping() -> None:
    """Run the parser once on tiny synthetic maps so later frames do not pay the JIT."""
    rng = np.random.default_rng(0)
    # The kernels are compiled per array type, not size: COCO-sized maps warm them for every keypoint set.
    det = rng.random((COCO_17.num_keypoints, 48, 64), dtype=np.float32)
    tag = rng.standard_normal((COCO_17.num_keypoints, 48, 64, 1), dtype=np.float32)
    grouping.parse(det, tag)


def _checked(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a BGR uint8 (H, W, 3) image, got "
                         f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', type(image).__name__)}")
    return image
