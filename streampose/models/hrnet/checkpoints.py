"""Loading the checkpoints users already have for HRNet, SimDR and HigherHRNet.

Upstream families (key layouts from ``../shared/checkpoint_formats``, measured
by building the official model definitions):

- ``official_hrnet``: leoxiaobin/deep-high-resolution-net.pytorch
  ``pose_hrnet_w{32,48}_256x192.pth``: plain state dict (often the legacy,
  pre-zip serialization), keys as the official ``PoseHighResolutionNet``;
- ``official_simdr``: leeyegy/SimDR (SimDR and SA-SimDR): the same keys plus
  ``mlp_head_x.*`` and ``mlp_head_y.*``;
- ``sithu``: sithu31296/pose-estimation (``posehrnet_w32_256x192.pth``,
  ``simdr_hrnet_w32_256x192.pth``, ...): every key prefixed ``backbone.``
  except ``final_layer.*``, ``mlp_head_x.*``, ``mlp_head_y.*``;
- ``official_higher_hrnet``: HRNet/HigherHRNet-Human-Pose-Estimation
  ``pose_higher_hrnet_w32_512.pth``, ``..._w32_640.pth.tar``, ``..._w48_640.pth.tar``;
  the 640 files come from an fp16 training wrapper: a leading ``1.`` on every
  key and float16 conv weights. The CrowdPose releases (``pose_crowdpose/``
  ``pose_higher_hrnet_w{32,48}_640.pth.tar``, configs
  ``experiments/crowd_pose/higher_hrnet/w{32,48}_640_adam_lr1e-3.yaml``, also
  fp16-trained) have the same keys; ``MODEL.NUM_JOINTS: 14`` changes three
  shapes (``lib/models/pose_higher_hrnet.py``: ``_make_final_layers``,
  ``_make_deconv_layers``): ``final_layers.0.weight`` [28, W, 1, 1] (14
  heatmaps + 14 tags, ``TAG_PER_JOINT``), ``final_layers.1.weight``
  [14, W, 1, 1] and ``deconv_layers.0.0.0.weight`` [W + 28, W, 4, 4] (the
  features concatenated with the 1/4 output, ``CAT_OUTPUT``), W = 32 or 48.
  They are recognised by their 14 joints and named ``..._crowdpose``.

Any of them may be wrapped in ``{"state_dict": ...}`` or ``{"model": ...}``
and carry ``module.`` prefixes (DataParallel). Files are read with
``torch.load(weights_only=True)``: nothing in a file can run. The family,
width, head, joint count (and SimDR input size) are recognised from keys and
shapes, never from the file name; a file that fits no layout is a one-line
:class:`CheckpointError` naming the first missing and unexpected keys.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pickle
import re
import zipfile
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from ...errors import CheckpointError
from ...keypoint_sets import CROWDPOSE_14
from ...paths import existing_file
from .network import (
    CROWDPOSE_SUFFIX,
    HRNET_WIDTHS,
    HeatmapHeadSpec,
    HigherHRNetHeadSpec,
    HRNetSpec,
    PoseNetSpec,
    PoseNetwork,
    SimDRHeadSpec,
    build_network,
)

logger = logging.getLogger(__name__)

FAMILIES = ("official_hrnet", "official_simdr", "sithu", "official_higher_hrnet")

_WRAPPER_KEYS = ("state_dict", "model")
_STRIPPED_PREFIXES = ("module.", "1.")  # DataParallel; fp16 Sequential(tofp16, net, tofp32) wrapper
_DOWNLOAD_HINT = ("use an official HRNet / SimDR / HigherHRNet checkpoint or a sithu31296 pose-estimation one "
                  "(see weights/README.md)")


# --------------------------------------------------------------------------- remaps (upstream → ours)


def _split_backbone_head(state_dict: Mapping, head_prefixes: tuple[str, ...]) -> dict:
    return {
        (f"head.{k}" if k.startswith(head_prefixes) else f"backbone.{k}"): v
        for k, v in state_dict.items()
    }


def remap_official_hrnet(state_dict: Mapping) -> dict:
    """leoxiaobin PoseHighResolutionNet keys → ours (``final_layer`` is the head)."""
    return _split_backbone_head(state_dict, ("final_layer.",))


def remap_official_simdr(state_dict: Mapping) -> dict:
    """leeyegy SimDR / SA-SimDR keys → ours (``final_layer``, ``mlp_head_x``, ``mlp_head_y`` are the head)."""
    return _split_backbone_head(state_dict, ("final_layer.", "mlp_head_x.", "mlp_head_y."))


def remap_sithu(state_dict: Mapping) -> dict:
    """sithu31296/pose-estimation keys → ours: ``backbone.*`` kept, everything else is the head."""
    return {(k if k.startswith("backbone.") else f"head.{k}"): v for k, v in state_dict.items()}


def remap_official_higher_hrnet(state_dict: Mapping) -> dict:
    """HigherHRNet keys (after the ``1.`` fp16 prefix is stripped) → ours."""
    return _split_backbone_head(state_dict, ("final_layers.", "deconv_layers."))


REMAPS = {
    "official_hrnet": remap_official_hrnet,
    "official_simdr": remap_official_simdr,
    "sithu": remap_sithu,
    "official_higher_hrnet": remap_official_higher_hrnet,
}


def _upstream_key(our_key: str, family: str) -> str:
    """Our key written as the family names it (for error messages)."""
    if family == "sithu":
        return our_key[len("head."):] if our_key.startswith("head.") else our_key
    return our_key.split(".", 1)[1]


# --------------------------------------------------------------------------- reading


@dataclasses.dataclass(frozen=True)
class CheckpointContents:
    """A state dict as read from a file, with the wrappers that were peeled off."""

    state_dict: dict
    wrappers: tuple[str, ...]  # e.g. ("state_dict", "module.", "1.")
    has_fp16: bool


def read_state_dict(path: str | Path) -> CheckpointContents:
    """Read a checkpoint safely and peel ``state_dict``/``model`` wrappers and key prefixes.

    Raises CheckpointError (one line) for a file that is not a safe torch
    checkpoint or does not hold a state dict of tensors.
    """
    import torch

    file = existing_file(path, "pose checkpoint", _DOWNLOAD_HINT)
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        reason = (f"it pickles the object {found.group(1)}, e.g. a whole model or a detector checkpoint" if found
                  else "it is not a plain state dict of tensors, or not a torch file")
        raise CheckpointError(f"{path}: cannot be loaded safely ({reason}); {_DOWNLOAD_HINT}") from e
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: "
                              f"{str(e).strip().splitlines()[0][:120] if str(e).strip() else ''}); "
                              f"{_DOWNLOAD_HINT}") from e

    wrappers: list[str] = []
    while isinstance(obj, Mapping):
        inner = next((w for w in _WRAPPER_KEYS if isinstance(obj.get(w), Mapping)), None)
        if inner is None:
            break
        wrappers.append(inner)
        obj = obj[inner]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: holds {type(obj).__name__}, not a state dict; {_DOWNLOAD_HINT}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: not a state dict of tensors (entry {bad[0]!r}); {_DOWNLOAD_HINT}")

    state_dict = dict(obj)
    stripped = True
    while stripped:
        stripped = False
        for prefix in _STRIPPED_PREFIXES:
            if all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
                wrappers.append(prefix)
                stripped = True
    has_fp16 = any(v.dtype == torch.float16 for v in state_dict.values())
    return CheckpointContents(state_dict, tuple(wrappers), has_fp16)


# --------------------------------------------------------------------------- recognition


def _shape(state_dict: Mapping, key: str) -> tuple[int, ...] | None:
    value = state_dict.get(key)
    return None if value is None else tuple(value.shape)


def _backbone(width: int) -> HRNetSpec:
    return HRNET_WIDTHS.get(width) or HRNetSpec(width=width)


def identify(contents: CheckpointContents, path: str | Path = "checkpoint") -> PoseNetSpec:
    """Recognise family, width, head, joints (and input size) from keys and shapes.

    Raises CheckpointError when no head of a known family is present.
    """
    sd = contents.state_dict
    sithu = any(k.startswith("backbone.") for k in sd)
    if "final_layers.0.weight" in sd and "final_layers.1.weight" in sd:
        quarter, half = _shape(sd, "final_layers.0.weight"), _shape(sd, "final_layers.1.weight")
        joints, width = half[0], quarter[1]
        # The 640 releases are the fp16-trained ones: that wrapper, not the file name, tells them apart.
        size = 640 if ("1." in contents.wrappers or contents.has_fp16) else 512
        head = HigherHRNetHeadSpec(num_joints=joints, tag_dim=quarter[0] - joints, deconv_channels=half[1])
        suffix = CROWDPOSE_SUFFIX if joints == CROWDPOSE_14.num_keypoints else ""
        return PoseNetSpec(f"pose_higher_hrnet_w{width}_{size}{suffix}", _backbone(width), head, (size, size),
                           family="official_higher_hrnet")
    final = _shape(sd, "final_layer.weight")
    if final is None or len(final) != 4:
        _raise_unknown_layout(sd, path)
    joints, width = final[0], final[1]
    family = "sithu" if sithu else "official_hrnet"
    x_shape, y_shape = _shape(sd, "mlp_head_x.weight"), _shape(sd, "mlp_head_y.weight")
    if x_shape is None and y_shape is None:
        return PoseNetSpec(f"pose_hrnet_w{width}_256x192", _backbone(width), HeatmapHeadSpec(num_joints=joints),
                           (192, 256), family=family)
    if x_shape is None or y_shape is None or len(x_shape) != 2 or len(y_shape) != 2 or x_shape[1] != y_shape[1]:
        raise CheckpointError(f"{path}: SimDR head is incomplete (mlp_head_x.weight {x_shape}, "
                              f"mlp_head_y.weight {y_shape}); {_DOWNLOAD_HINT}")
    # bins_x * bins_y = r^2 * W * H and head_input = (W/4) * (H/4)  ⇒  r^2 = bins_x * bins_y / (16 * head_input)
    bins_x, bins_y, head_input = x_shape[0], y_shape[0], x_shape[1]
    ratio = math.sqrt(bins_x * bins_y / (16.0 * head_input))
    input_w, input_h = round(bins_x / ratio), round(bins_y / ratio)
    spec_head = SimDRHeadSpec(num_joints=joints, input_size_wh=(input_w, input_h), split_ratio=ratio)
    if spec_head.head_input != head_input or spec_head.bins_xy != (bins_x, bins_y):
        raise CheckpointError(f"{path}: SimDR head sizes {bins_x}, {bins_y} from {head_input} fit no input size; "
                              f"{_DOWNLOAD_HINT}")
    return PoseNetSpec(f"simdr_hrnet_w{width}_{input_h}x{input_w}", _backbone(width), spec_head,
                       (input_w, input_h), family="sithu" if sithu else "official_simdr")


@lru_cache(maxsize=None)
def _reference_layouts() -> dict[str, tuple[str, ...]]:
    """Upstream key sets of each family and head (w32), for naming what an unknown file lacks."""
    from .network import HRNET_MODELS

    layouts = {}
    for name, family in (("pose_hrnet_w32_256x192", "official_hrnet"), ("simdr_hrnet_w32_256x192", "official_simdr"),
                         ("pose_higher_hrnet_w32_512", "official_higher_hrnet")):
        keys = build_network(HRNET_MODELS[name], device="meta").state_dict().keys()
        layouts[f"{name} ({family})"] = tuple(_upstream_key(k, family) for k in keys)
        if family != "official_higher_hrnet":
            layouts[f"{name} (sithu)"] = tuple(_upstream_key(k, "sithu") for k in keys)
    return layouts


def _first(keys, n: int = 3) -> str:
    """``"<count>: k1, k2, k3, ..."`` of keys given in a meaningful order (layout or file order)."""
    keys = list(keys)
    shown = ", ".join(keys[:n])
    return f"{len(keys)}: {shown}{', ...' if len(keys) > n else ''}" if keys else "0"


def _raise_unknown_layout(sd: Mapping, path: str | Path) -> None:
    keys = set(sd)
    name, ref = max(_reference_layouts().items(), key=lambda item: len(keys.intersection(item[1])))
    known = set(ref)
    raise CheckpointError(
        f"{path}: fits no HRNet / SimDR / HigherHRNet layout (closest {name}: missing keys "
        f"[{_first(k for k in ref if k not in keys)}], unexpected keys [{_first(k for k in sd if k not in known)}]); "
        f"{_DOWNLOAD_HINT}")


# --------------------------------------------------------------------------- loading


def load_state_dict_strict(model: PoseNetwork, state_dict: Mapping, family: str, path: str | Path) -> None:
    """Put an already remapped state dict into ``model`` (its tensors are assigned, not copied).

    Any key or shape mismatch is a one-line CheckpointError.
    """
    import torch

    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [k for k in expected if k in state_dict and tuple(expected[k].shape) != tuple(state_dict[k].shape)]
    if missing or unexpected or mismatched:
        detail = [f"missing keys [{_first(_upstream_key(k, family) for k in missing)}]",
                  f"unexpected keys [{_first(_upstream_key(k, family) for k in unexpected)}]"]
        if mismatched:
            k = mismatched[0]
            detail.append(f"{len(mismatched)} shape mismatches (first {_upstream_key(k, family)}: file "
                          f"{list(state_dict[k].shape)}, model {list(expected[k].shape)})")
        raise CheckpointError(f"{path}: does not fit the {model.spec.name} layout ({family}): "
                              f"{', '.join(detail)}; {_DOWNLOAD_HINT}")
    # fp16 weights (HigherHRNet 640) are widened to the model's float32 explicitly.
    converted = {k: (v.to(expected[k].dtype).contiguous() if v.is_floating_point() else v)
                 for k, v in state_dict.items()}
    with torch.no_grad():
        model.load_state_dict(converted, strict=True, assign=True)


def load_pose_model(path: str | Path, device="cpu") -> tuple[PoseNetwork, PoseNetSpec]:
    """Build the network a checkpoint file describes and load it strictly.

    Returns (network in eval mode on ``device``, its spec with ``family`` set).
    Raises UserError if the file is missing, CheckpointError if it is unsafe,
    unreadable or fits no known layout.
    """
    contents = read_state_dict(path)
    spec = identify(contents, path)
    # Built on the meta device: the strict load assigns every tensor, nothing is initialised or copied twice.
    model = build_network(spec, device="meta")
    load_state_dict_strict(model, REMAPS[spec.family](contents.state_dict), spec.family, path)
    logger.info("loaded %s (%s%s) from %s", spec.name, spec.family,
                f", wrappers {'/'.join(contents.wrappers)}" if contents.wrappers else "", path)
    return model.to(device).eval(), spec
