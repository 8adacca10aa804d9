"""What a YOLOv5 ``.pt`` checkpoint holds, recovered without running any of it.

A yolov5 checkpoint is a dict whose ``model`` (or ``ema``) entry is a pickled
``models.yolo.Model`` / ``DetectionModel``. Read through
:mod:`.safe_unpickle`, that object is an inert record; from it we take

- ``yaml``: the architecture dict (``nc``, ``depth_multiple``,
  ``width_multiple``, ``anchors``, ``backbone``, ``head``), as yolov5's
  ``parse_model`` reads it;
- the state dict, by walking ``_modules`` / ``_parameters`` / ``_buffers``
  the way ``nn.Module.state_dict`` does; floating tensors cast to float32
  (released checkpoints are float16);
- the anchors in grid units from the ``Detect`` layer's ``anchors`` buffer
  (the file's values win over the yaml defaults, which AutoAnchor may have
  replaced), or from the v1-v5-era ``anchor_grid`` buffer (pixels) divided
  by the strides;
- the strides (``Model.stride`` / ``Detect.stride``), class names, the
  activation of the ``Conv`` blocks and the BatchNorm epsilon (yolov5 sets
  1e-3 at construction; it is a module attribute, not in the state dict).

Pickles written by older torch lack attributes newer torch adds; nothing
here needs them, and every attribute read has a default or a clear error.

Layout facts: ultralytics/yolov5 (AGPL-3.0) ``models/yolo.py``,
``models/common.py``, ``train.py`` (checkpoint dict), read for reference only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import CheckpointError
from ..checkpoint import check_tensor_extent
from .safe_unpickle import PickledObject, restricted_load

log = logging.getLogger(__name__)

#: BatchNorm epsilon yolov5 uses (``initialize_weights``), when a pickle lacks ``eps``.
DEFAULT_BN_EPS = 1e-3

_MODEL_CLASSES = ("Model", "DetectionModel")
#: deepest module nesting accepted (yolov5 models are 4 deep: Model > Sequential > C3 > Bottleneck > Conv);
#: deeper, or a module that contains itself, is a hostile file, refused instead of a RecursionError.
MAX_MODULE_DEPTH = 32
#: deepest nesting of lists/dicts in the architecture yaml (yolov5's is 4).
MAX_YAML_DEPTH = 16


@dataclass(frozen=True)
class Activation:
    """The activation of the ``Conv`` blocks: ``name`` in silu / hardswish / leaky_relu / relu / sigmoid."""

    name: str = "silu"
    negative_slope: float = 0.1


@dataclass
class YoloV5Checkpoint:
    """Everything needed to rebuild a yolov5 detection model.

    yaml: the architecture dict; state_dict: key → float32 (or int64) CPU
    tensor with yolov5's key names (``model.<i>.…``); anchors: float32
    tensor (num_levels, num_anchors, 2) in grid units; strides: one per
    level, pixels; names: class names, index = class id; activation and
    bn_eps: as pickled in the ``Conv`` / ``BatchNorm2d`` modules.
    """

    source: str
    yaml: dict
    state_dict: dict
    anchors: Any
    strides: tuple[float, ...]
    names: tuple[str, ...]
    activation: Activation
    bn_eps: float

    @property
    def num_classes(self) -> int:
        return len(self.names)


def load_yolov5_checkpoint(path: str | Path, source: str | None = None) -> YoloV5Checkpoint:
    """Read a yolov5 ``.pt`` file safely and recover architecture, weights and metadata.

    Raises :class:`CheckpointError` (one line, naming the problem) when the
    file is unsafe, unreadable, or not a yolov5 detection checkpoint.
    """
    source = source or str(path)
    obj = restricted_load(path, source)
    model = _find_model(obj, source)
    return recover_checkpoint(model, source)


def _find_model(obj: Any, source: str) -> PickledObject:
    if isinstance(obj, PickledObject) and obj.class_name in _MODEL_CLASSES:
        return obj
    if isinstance(obj, dict):
        # yolov5's own loader prefers the EMA weights when both are present.
        for key in ("ema", "model"):
            candidate = obj.get(key)
            if isinstance(candidate, PickledObject) and candidate.class_name in _MODEL_CLASSES:
                return candidate
        if obj and all(isinstance(k, str) for k in obj) and any(k.endswith(".weight") for k in obj):
            raise CheckpointError(
                f"{source} is a bare state dict without the yolov5 model object (no architecture yaml); "
                "use the original yolov5 .pt file that pickles the whole model under 'model'")
        raise CheckpointError(f"{source} has no yolov5 model under 'model' or 'ema' "
                              f"(keys: {sorted(map(str, obj))[:8]}); is it a yolov5 detection checkpoint?")
    raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a yolov5 checkpoint dict")


def _module_dict(module: PickledObject, name: str) -> dict:
    value = module.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CheckpointError(f"pickled {module.pickled_name}.{name} is a {type(value).__name__}, not a dict")
    return value


def _children(module: PickledObject) -> list[tuple[str, PickledObject]]:
    out = []
    for name, child in _module_dict(module, "_modules").items():
        if child is None:
            continue
        if not isinstance(child, PickledObject):
            raise CheckpointError(f"submodule {name} is a {type(child).__name__}, not a module")
        out.append((str(name), child))
    return out


def _walk_modules(root: PickledObject):
    """(prefix, module) for ``root`` and every submodule, depth first in pickle order, without recursion.

    CheckpointError for nesting deeper than ``MAX_MODULE_DEPTH`` or a module
    that contains itself (a cycle), instead of a RecursionError or a loop.
    """
    stack: list[tuple[str, PickledObject, tuple[int, ...]]] = [("", root, ())]
    while stack:
        prefix, module, ancestors = stack.pop()
        if id(module) in ancestors:
            raise CheckpointError(f"pickled module {prefix.rstrip('.') or module.pickled_name} contains itself; "
                                  "the file is damaged or hostile")
        if len(ancestors) > MAX_MODULE_DEPTH:
            raise CheckpointError(f"pickled modules nest more than {MAX_MODULE_DEPTH} deep (at "
                                  f"{prefix[:80].rstrip('.')}...); the file is damaged or hostile")
        yield prefix, module
        path = ancestors + (id(module),)
        for name, child in reversed(_children(module)):
            stack.append((f"{prefix}{name}.", child, path))


def walk_state_dict(module: PickledObject, prefix: str = "") -> dict:
    """``nn.Module.state_dict()`` of a pickled module: parameters and persistent buffers, in module order."""
    import torch

    out: dict[str, Any] = {}
    for sub_prefix, sub in _walk_modules(module):
        non_persistent = sub.get("_non_persistent_buffers_set") or set()
        for kind in ("_parameters", "_buffers"):
            for name, tensor in _module_dict(sub, kind).items():
                if tensor is None or (kind == "_buffers" and name in non_persistent):
                    continue
                if type(tensor) is not torch.Tensor:
                    raise CheckpointError(f"{prefix}{sub_prefix}{name} is a {type(tensor).__name__}, not a tensor")
                out[prefix + sub_prefix + name] = tensor
    return out


def _iter_modules(module: PickledObject):
    for _, sub in _walk_modules(module):
        yield sub


def _check_plain_data(value: Any, what: str, source: str) -> None:
    """CheckpointError when ``value`` nests containers deeper than ``MAX_YAML_DEPTH`` or contains itself.

    The architecture yaml is deep-copied and walked by the network builder;
    this keeps that from hitting the recursion limit on a hostile file.
    """
    stack: list[tuple[Any, tuple[int, ...]]] = [(value, ())]
    while stack:
        item, ancestors = stack.pop()
        if not isinstance(item, (list, tuple, dict)):
            continue
        if id(item) in ancestors:
            raise CheckpointError(f"{source}: the {what} contains itself; the file is damaged or hostile")
        if len(ancestors) >= MAX_YAML_DEPTH:
            raise CheckpointError(f"{source}: the {what} nests more than {MAX_YAML_DEPTH} deep; "
                                  "the file is damaged or hostile")
        children = list(item.keys()) + list(item.values()) if isinstance(item, dict) else list(item)
        stack.extend((child, ancestors + (id(item),)) for child in children)


def _tensor_values(value: Any, what: str, source: str) -> list[float]:
    import torch

    if type(value) is torch.Tensor:
        return [float(v) for v in value.float().flatten()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return [float(v) for v in value]
    raise CheckpointError(f"{source}: {what} is a {type(value).__name__}, expected a tensor")


def recover_checkpoint(model: PickledObject, source: str) -> YoloV5Checkpoint:
    """Recover a :class:`YoloV5Checkpoint` from a pickled yolov5 ``Model`` record."""
    import torch

    yaml = model.get("yaml")
    if not isinstance(yaml, dict) or "backbone" not in yaml or "head" not in yaml:
        raise CheckpointError(f"{source}: the pickled yolov5 model has no architecture yaml "
                              "(backbone/head); it cannot be rebuilt")
    _check_plain_data(yaml, "architecture yaml", source)
    layers = _module_dict(model, "_modules").get("model")
    if not isinstance(layers, PickledObject):
        raise CheckpointError(f"{source}: the pickled yolov5 model has no layer list 'model'")
    layer_list = list(_module_dict(layers, "_modules").items())
    if not layer_list:
        raise CheckpointError(f"{source}: the pickled yolov5 model has no layers")
    detect_index, detect = layer_list[-1]
    if not isinstance(detect, PickledObject) or detect.class_name != "Detect":
        raise CheckpointError(f"{source}: the last layer is {getattr(detect, 'pickled_name', detect)!r}, "
                              "not a yolov5 Detect head (segmentation/classification models are not supported)")

    state_dict = {}
    for key, tensor in walk_state_dict(model).items():
        check_tensor_extent(tensor, key, source)  # before any copy below could inflate a view
        tensor = tensor.detach()
        state_dict[key] = tensor.float().contiguous() if tensor.is_floating_point() else tensor.clone()

    strides_value = model.get("stride", detect.get("stride"))
    if strides_value is None:
        raise CheckpointError(f"{source}: no strides recorded in the model (Model.stride / Detect.stride)")
    strides = tuple(_tensor_values(strides_value, "stride", source))

    prefix = f"model.{detect_index}."
    if prefix + "anchors" in state_dict:
        anchors = state_dict[prefix + "anchors"].clone()
    elif prefix + "anchor_grid" in state_dict:
        grid = state_dict[prefix + "anchor_grid"]
        anchors = grid.reshape(len(strides), -1, 2) / torch.tensor(strides).view(-1, 1, 1)
    else:
        raise CheckpointError(f"{source}: the Detect layer has no 'anchors' buffer")
    if anchors.ndim != 3 or anchors.shape[0] != len(strides) or anchors.shape[2] != 2:
        raise CheckpointError(f"{source}: anchors of shape {tuple(anchors.shape)} do not fit "
                              f"{len(strides)} detection levels")

    nc = yaml.get("nc", detect.get("nc"))
    names = _class_names(model.get("names", yaml.get("names")), nc, source)
    head_key = prefix + "m.0.weight"
    if head_key in state_dict:
        outputs = state_dict[head_key].shape[0]
        if outputs != anchors.shape[1] * (len(names) + 5):
            raise CheckpointError(f"{source}: head has {outputs} outputs, which does not fit {anchors.shape[1]} "
                                  f"anchors x ({len(names)} classes + 5)")

    return YoloV5Checkpoint(
        source=source, yaml=yaml, state_dict=state_dict, anchors=anchors.float(), strides=strides,
        names=names, activation=_activation(model), bn_eps=_bn_eps(model))


def _class_names(names: Any, nc: Any, source: str) -> tuple[str, ...]:
    if isinstance(names, dict):  # yolov5 >= v7 stores {index: name}
        try:
            names = [names[i] for i in range(len(names))]
        except KeyError as e:
            raise CheckpointError(f"{source}: class names are not indexed 0..{len(names) - 1}") from e
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        if isinstance(nc, int) and len(names) != nc:
            raise CheckpointError(f"{source}: {len(names)} class names for nc={nc}")
        return tuple(names)
    if isinstance(nc, int) and nc > 0:
        log.warning("%s: no class names recorded; using class indices as names", source)
        return tuple(str(i) for i in range(nc))
    raise CheckpointError(f"{source}: neither class names nor a class count (nc) are recorded")


def _activation(model: PickledObject) -> Activation:
    for module in _iter_modules(model):
        if module.class_name == "Conv" and module.pickled_name.startswith("models."):
            act = _module_dict(module, "_modules").get("act")
            if not isinstance(act, PickledObject):
                continue
            if act.class_name == "Identity":  # a Conv built with act=False says nothing about the others
                continue
            name = {"SiLU": "silu", "Hardswish": "hardswish", "LeakyReLU": "leaky_relu", "ReLU": "relu",
                    "Sigmoid": "sigmoid"}.get(act.class_name)
            if name is None:
                raise CheckpointError(f"unsupported activation {act.pickled_name} in the Conv blocks")
            slope = act.get("negative_slope", 0.1)
            return Activation(name, float(slope) if isinstance(slope, (int, float)) else 0.1)
    return Activation()


def _bn_eps(model: PickledObject) -> float:
    for module in _iter_modules(model):
        if module.class_name == "BatchNorm2d":
            eps = module.get("eps")
            if isinstance(eps, float):
                return eps
    return DEFAULT_BN_EPS
