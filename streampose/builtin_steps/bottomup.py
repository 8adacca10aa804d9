"""Pipeline step ``higherhrnet_pose``: bottom-up multi-person pose with HigherHRNet.

No detector is needed: every frame of the batch goes through
:class:`~streampose.models.higherhrnet.bottomup.HigherHRNetEstimator` (frames of the
same size share a network batch) and ``packet.poses`` gets the people found,
in frame pixels, with boxes spanning their keypoints::

    steps = [ { type = "higherhrnet_pose", weights = "weights/pose_higher_hrnet_w32_512.pth" } ]

The Numba grouping kernels are compiled (or loaded from Numba's cache) in
``start()``, in the process that runs the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..device import check_threads, set_torch_threads
from ..errors import ConfigError
from ..records import Frame
from ..step import Step, register_step


@dataclass
class HigherHRNetPoseOptions:
    """Options of ``higherhrnet_pose``.

    weights: official HigherHRNet checkpoint (w32-512, w32-640, w48-640; see
    weights/README.md); input_size: shorter side of the network input, a
    multiple of 64 (unset: the model's own, 512 or 640); flip_test: also run the
    mirrored frame (official test setting, 2x the network compute); scales:
    test scale factors (official SCALE_FACTOR; several give multi-scale
    testing); detection_threshold / tag_threshold: grouping thresholds
    (official 0.1 / 1.0); max_people: peaks per joint and people a peak may
    join (official 30); adjust / refine: the official quarter-pixel adjust and
    the filling of missing joints; filter_redundant_poses: drop a pose whose
    mean absolute keypoint difference to a kept one is under 3 px (not in
    the official evaluation); min_pose_score: drop people scoring less;
    threads: torch CPU threads of the stage's process (0: the runtime's
    choice, by measured stage cost); device: auto, cpu, cuda, cuda:N;
    precision: bf16 on CPUs with AMX or AVX512-BF16 (auto: fp32, its bf16
    accuracy is not measured); backend: what runs the network
    (auto: the fastest `streampose backends --measure` measured on this
    machine, torch without such a table; torch, onnxruntime, openvino on
    the CPU, tensorrt on CUDA; the others than torch run an ONNX export
    made at start, in fp32, and our decoders).
    """

    weights: str
    input_size: int | None = None
    flip_test: bool = True
    scales: list[float] = field(default_factory=lambda: [1.0])
    detection_threshold: float = 0.1
    tag_threshold: float = 1.0
    max_people: int = 30
    adjust: bool = True
    refine: bool = True
    filter_redundant_poses: bool = False
    min_pose_score: float = 0.0
    threads: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    backend: Literal["auto", "torch", "onnxruntime", "openvino", "tensorrt"] = "auto"

    def __post_init__(self) -> None:
        check_threads(self.threads)
        if self.input_size is not None and (self.input_size < 64 or self.input_size % 64):
            raise ValueError(f"input_size: must be a positive multiple of 64 (or unset: the model's), "
                             f"got {self.input_size}")
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError(f"scales: must be a non-empty list of positive factors, got {self.scales}")
        if len(set(self.scales)) != len(self.scales):
            raise ValueError(f"scales: factors repeat in {self.scales}")
        if not 0.0 <= self.detection_threshold < 1.0:
            raise ValueError(f"detection_threshold: must be in [0, 1), got {self.detection_threshold}")
        if self.tag_threshold <= 0:
            raise ValueError(f"tag_threshold: must be > 0, got {self.tag_threshold}")
        if not 1 <= self.max_people <= 256:
            raise ValueError(f"max_people: must be between 1 and 256, got {self.max_people}")
        if not 0.0 <= self.min_pose_score <= 1.0:
            raise ValueError(f"min_pose_score: must be between 0 and 1, got {self.min_pose_score}")


@register_step("higherhrnet_pose")
class HigherHRNetPoseStep(Step):
    """Fill ``packet.poses`` with the people HigherHRNet finds in each frame."""

    Options = HigherHRNetPoseOptions
    role = "pose"

    def __init__(self, options: HigherHRNetPoseOptions) -> None:
        self.options = options
        self.estimator = None

    def start(self) -> None:
        from ..models.higherhrnet import HigherHRNetEstimator

        o = self.options
        set_torch_threads(o.threads)
        try:
            self.estimator = HigherHRNetEstimator.from_checkpoint(
                o.weights, input_size=o.input_size, flip_test=o.flip_test, device=o.device,
                scales=tuple(o.scales), detection_threshold=o.detection_threshold, tag_threshold=o.tag_threshold,
                max_people=o.max_people, adjust=o.adjust, refine=o.refine,
                filter_redundant_poses=o.filter_redundant_poses, min_pose_score=o.min_pose_score)
        except ValueError as e:  # an option the estimator rules out
            raise ConfigError(f"higherhrnet_pose: {e}") from e
        from ..export.backends import prepare_network

        try:
            self.estimator.network = prepare_network(self.estimator.network, backend=o.backend,
                                                     precision=o.precision, device=self.estimator.device,
                                                     model_name="higherhrnet", threads=o.threads)
        except ConfigError as e:  # bf16 on a CPU without it, a backend not installed
            raise ConfigError(f"higherhrnet_pose: {e}") from e
        self.estimator.warmup()

    def process(self, frames: list[Frame]) -> list[Frame]:
        if self.estimator is None:
            raise RuntimeError("higherhrnet_pose: process() called before start()")
        for frame, poses in zip(frames, self.estimator.predict_batch([f.image for f in frames])):
            frame.packet.poses = poses
        return frames

    def close(self) -> None:
        self.estimator = None
