"""Recipe-weight checkpoints in upstream layouts, made once per test session.

``recipe_checkpoint("pose_higher_hrnet_w32_512")`` writes the golden recipe
weights (``scripts/make_recipe_weights.py``) of that official model as a
plain state dict in the official key layout and returns its path;
``recipe_model(name)`` loads it through our loader (``load_pose_model``).
Both are cached for the session; the files live in a temporary directory.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

from scripts.make_recipe_weights import load_layout, recipe_state_dict, to_torch

SHARED = Path(os.environ.get("STREAMPOSE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
_TMP = tempfile.TemporaryDirectory(prefix="streampose_recipe_")


@lru_cache(maxsize=None)
def recipe_checkpoint(model: str, legacy: bool = False) -> Path:
    """Path of ``recipe_<model>.json``'s weights saved as an official checkpoint (legacy serialization if asked)."""
    import torch

    layout = load_layout(SHARED / "golden" / f"recipe_{model}.json")
    path = Path(_TMP.name) / f"{model}{'_legacy' if legacy else ''}.pth"
    torch.save(to_torch(recipe_state_dict(layout)), path, _use_new_zipfile_serialization=not legacy)
    return path


@lru_cache(maxsize=None)
def recipe_model(model: str):
    """(network, spec) loaded from :func:`recipe_checkpoint` through ``load_pose_model`` (CPU)."""
    from streampose.models import load_pose_model

    return load_pose_model(recipe_checkpoint(model, legacy=model == "pose_hrnet_w32_256x192"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch work on one intra-op thread (much faster when the cores are oversubscribed)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


#: The shapes the official HigherHRNet definition (``lib/models/pose_higher_hrnet.py``) gives the head when
#: MODEL.NUM_JOINTS is 14 (CrowdPose configs, TAG_PER_JOINT, CAT_OUTPUT): everything else is as for COCO.
def crowdpose_head_shapes(width: int, joints: int = 14) -> dict[str, tuple[int, ...]]:
    tags = joints  # TAG_PER_JOINT: one tag map per joint
    return {
        "final_layers.0.weight": (joints + tags, width, 1, 1), "final_layers.0.bias": (joints + tags,),
        "final_layers.1.weight": (joints, width, 1, 1), "final_layers.1.bias": (joints,),
        "deconv_layers.0.0.0.weight": (width + joints + tags, width, 4, 4),  # features ++ 1/4 output
    }


def crowdpose_layout(width: int) -> list[tuple[str, tuple[int, ...]]]:
    """Official CrowdPose HigherHRNet-w{width}-640 layout: the COCO release's keys in order, the head reshaped."""
    coco = load_layout(SHARED / "checkpoint_formats" / f"official_pose_higher_hrnet_w{width}_640.json")
    head = crowdpose_head_shapes(width)
    return [(key, head.get(key, shape)) for key, shape in coco]


def fp16_release(state_dict: dict) -> dict:
    """As the fp16-trained 640 releases are saved: ``1.`` before every key, float16 except BatchNorm."""
    import torch

    batch_norms = {k.rsplit(".", 1)[0] for k in state_dict if k.endswith("running_mean")}
    return {f"1.{k}": (v.half() if v.is_floating_point() and k.rsplit(".", 1)[0] not in batch_norms else v)
            for k, v in state_dict.items()}


@lru_cache(maxsize=None)
def recipe_crowdpose_checkpoint(width: int) -> Path:
    """Recipe weights (the goldens' recipe) in the CrowdPose layout, saved as the official fp16 release."""
    import torch

    path = Path(_TMP.name) / f"pose_higher_hrnet_w{width}_640_crowdpose.pth.tar"
    torch.save(fp16_release(to_torch(recipe_state_dict(crowdpose_layout(width)))), path)
    return path


def one_person_frame(shared_dir: Path):
    """A fresh Frame of ../shared/coco/000000000785.jpg with one person box as its detections."""
    import cv2
    import numpy as np

    from streampose.records import Detections, Frame, FramePacket

    image = cv2.imread(str(shared_dir / "coco" / "000000000785.jpg"))
    h, w = image.shape[:2]
    frame = Frame(FramePacket(0, "test", 0, None, image.shape, 0.0), image)
    frame.packet.detections = Detections(np.array([[w * 0.2, h * 0.1, w * 0.6, h * 0.9]], np.float32),
                                         np.array([0.9], np.float32), np.zeros(1, np.int64))
    return frame
