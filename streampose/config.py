"""Pipeline definitions: loading ``pipelines/*.toml`` strictly, and CLI overrides.

A definition is data (see ``pipelines/passthrough.toml``)::

    description = "..."          # optional
    step_modules = ["my_steps"]  # optional: modules (dotted names or .py paths)
                                 # that register extra step types
    ring_slots = 8               # optional: frame slots per source
    [[stages]]
    name = "render"
    batch_size = 1               # optional, max frames per process() call
    replicas = 1                 # optional, processes running this stage side by side
    devices = ["cpu", "cpu"]     # optional, one replica per device (sets the steps' device)
    steps = [ { type = "draw" } ]

Every problem is a :class:`~streampose.errors.ConfigError` whose message
starts with the key path, e.g. ``stages[1].steps[0].img_size: expected an
integer, got '640'``. Steps are validated by building them with
:func:`streampose.step.build_step` (cheap: steps load weights in ``start()``).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib
import importlib.util
import logging
import sys
import tomllib
import types
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError, UserError
from .paths import data_dir, resolve_path
from .step import build_step, registered_step_types

logger = logging.getLogger(__name__)

PIPELINES_DIR = data_dir("pipelines")
#: the most processes one stage may run as.
MAX_REPLICAS = 16

_TOP_KEYS = {"description", "stages", "step_modules", "ring_slots"}
_STAGE_KEYS = {"name", "batch_size", "steps", "replicas", "devices"}


@dataclass
class StageConfig:
    """One stage: a name, the most frames per ``process()`` call, step specs ``{"type": ..., **options}``.

    replicas: processes running the stage side by side (frames are dealt to
    them and re-ordered after, see :mod:`streampose.runtime.replicas`);
    devices: the device of each replica (empty: the steps' own).
    """

    name: str
    steps: list[dict[str, Any]]
    batch_size: int = 1
    replicas: int = 1
    devices: list[str] = field(default_factory=list)

    def replica_steps(self, replica: int) -> list[dict[str, Any]]:
        """The step specs of one replica: its device set on every step that has a ``device`` option."""
        if not self.devices:
            return self.steps
        specs = []
        for spec in self.steps:
            cls = step_class(spec)
            if cls is not None and "device" in {f.name for f in dataclasses.fields(cls.Options)}:
                spec = {**spec, "device": self.devices[replica]}
            specs.append(spec)
        return specs


@dataclass
class PipelineConfig:
    """A validated pipeline definition (specs stay plain dicts so they pickle to stage processes)."""

    name: str
    stages: list[StageConfig]
    description: str = ""
    path: Path | None = None
    step_modules: list[str] = field(default_factory=list)
    ring_slots: int | None = None


def available_pipelines() -> list[str]:
    """Names of the definitions in ``pipelines/``."""
    return sorted(p.stem for p in PIPELINES_DIR.glob("*.toml"))


def pipeline_path(name_or_path: str | Path) -> Path:
    """``topdown_hrnet_w32`` → ``pipelines/topdown_hrnet_w32.toml``; a path is taken as a path.

    Raises ConfigError naming the known pipelines when there is no such file.
    """
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        path = resolve_path(text)
        if not path.is_file():
            raise ConfigError(f"pipeline file {text!r} not found")
        return path
    path = PIPELINES_DIR / f"{text}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown pipeline {text!r}; known: {', '.join(available_pipelines()) or 'none'} "
                          "(or give a path to a .toml file)")
    return path


def load_pipeline(name_or_path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline by name or path."""
    path = pipeline_path(name_or_path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path.name}: not valid TOML: {e}") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    return parse_pipeline(data, name=path.stem, path=path)


def parse_pipeline(data: dict[str, Any], name: str = "pipeline", path: Path | None = None) -> PipelineConfig:
    """Validate a parsed definition; raises ConfigError naming the key path of the first problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a table, got {type(data).__name__}")
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{key}: unknown key; allowed: {sorted(_TOP_KEYS)}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"description: expected a string, got {description!r}")
    step_modules = data.get("step_modules", [])
    if not isinstance(step_modules, list) or not all(isinstance(m, str) for m in step_modules):
        raise ConfigError(f"step_modules: expected a list of module names or .py paths, got {step_modules!r}")
    ring_slots = data.get("ring_slots")
    if ring_slots is not None and (isinstance(ring_slots, bool) or not isinstance(ring_slots, int)):
        raise ConfigError(f"ring_slots: expected an integer, got {ring_slots!r}")
    if ring_slots is not None and ring_slots < 2:
        raise ConfigError(f"ring_slots: must be at least 2, got {ring_slots}")
    import_step_modules(step_modules, key_path="step_modules")

    raw_stages = data.get("stages")
    if raw_stages is None:
        raise ConfigError("stages: missing; a pipeline needs at least one [[stages]] table")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise ConfigError("stages: expected a non-empty array of tables ([[stages]])")
    stages = []
    names: set[str] = set()
    for i, raw in enumerate(raw_stages):
        stages.append(_parse_stage(raw, f"stages[{i}]", names))
    config = PipelineConfig(name=name, stages=stages, description=description, path=path,
                            step_modules=list(step_modules), ring_slots=ring_slots)
    validate_steps(config)
    return config


def _parse_stage(raw: Any, key_path: str, names: set[str]) -> StageConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{key_path}: expected a table, got {raw!r}")
    for key in raw:
        if key not in _STAGE_KEYS:
            raise ConfigError(f"{key_path}.{key}: unknown key; allowed: {sorted(_STAGE_KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{key_path}.name: expected a non-empty string, got {name!r}")
    if name.startswith("capture"):
        raise ConfigError(f"{key_path}.name: {name!r} is reserved for the capture stages")
    if name in names:
        raise ConfigError(f"{key_path}.name: stage name {name!r} is used twice")
    names.add(name)
    batch_size = raw.get("batch_size", 1)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ConfigError(f"{key_path}.batch_size: expected an integer, got {batch_size!r}")
    if batch_size < 1:
        raise ConfigError(f"{key_path}.batch_size: must be at least 1, got {batch_size}")
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ConfigError(f"{key_path}.steps: expected a non-empty array of step tables")
    for j, spec in enumerate(steps):
        if not isinstance(spec, dict):
            raise ConfigError(f"{key_path}.steps[{j}]: expected a table like {{ type = \"draw\" }}, got {spec!r}")
    devices = raw.get("devices", [])
    if not isinstance(devices, list) or not all(isinstance(d, str) and d for d in devices):
        raise ConfigError(f"{key_path}.devices: expected a list of device names like [\"cuda:0\", \"cuda:1\"], "
                          f"got {devices!r}")
    replicas = raw.get("replicas", len(devices) or 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise ConfigError(f"{key_path}.replicas: expected an integer, got {replicas!r}")
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ConfigError(f"{key_path}.replicas: must be between 1 and {MAX_REPLICAS}, got {replicas}")
    if devices and replicas != len(devices):
        raise ConfigError(f"{key_path}.replicas: {replicas} replicas but {len(devices)} devices; "
                          "give one device per replica (or leave replicas out)")
    return StageConfig(name=name, steps=[dict(s) for s in steps], batch_size=batch_size, replicas=replicas,
                       devices=list(devices))


def validate_steps(config: PipelineConfig) -> None:
    """Build every step once (not started) so bad types or options fail before anything runs.

    Also refuses replicas where frames must pass through one process in
    order: the last stage (it holds the sinks) and stages with an
    order-dependent step (``Step.order_dependent``: trackers, filters).
    """
    for i, stage in enumerate(config.stages):
        for r in range(stage.replicas if stage.devices else 1):
            for j, spec in enumerate(stage.replica_steps(r)):
                build_step(spec, key_path=f"stages[{i}].steps[{j}]")
        if stage.replicas == 1:
            continue
        if i == len(config.stages) - 1:
            raise ConfigError(f"stages[{i}].replicas: the last stage ({stage.name!r}) holds the outputs, which "
                              "take every frame in order; move the replicated steps to a stage before it")
        for spec in stage.steps:
            cls = step_class(spec)
            if cls is not None and cls.order_dependent:
                raise ConfigError(f"stages[{i}].replicas: step {spec['type']!r} needs every frame of a source in "
                                  "order in one process; keep it in a stage with replicas = 1")


def step_class(spec: dict[str, Any]) -> type | None:
    """The registered class of a spec, None when its type is unknown."""
    return registered_step_types().get(spec.get("type", ""))


def apply_overrides(config: PipelineConfig, *, device: str | None = None, det_model: str | None = None,
                    pose_model: str | None = None, img_size: int | None = None, conf: float | None = None,
                    iou: float | None = None, classes: list[str] | None = None, smooth: bool | None = None,
                    batch: int | None = None, half: bool | None = None,
                    backend: str | None = None) -> PipelineConfig:
    """A copy of ``config`` with CLI shortcuts applied and re-validated.

    device: set on every step with a ``device`` option; det_model / img_size:
    ``weights`` (a file or a registry name) / ``img_size`` of every
    ``role == "detector"`` step; pose_model: ``weights`` of every
    ``role == "pose"`` step; conf / iou / classes: the detector's score
    threshold / NMS IoU / class names, whatever its step calls them; smooth:
    add (after the tracker) or remove the ``one_euro_filter`` step; batch:
    ``batch_size`` of every stage with a model step; half: fp16 in every
    step that has an fp16 mode (CUDA); backend: set on every step with a
    ``backend`` option. Raises ConfigError when the pipeline has no step the
    option applies to.
    """
    config = replace(config, stages=[replace(s, steps=copy.deepcopy(s.steps)) for s in config.stages])
    wanted = {("detector", "weights", "--det-model"): det_model,
              ("detector", "img_size", "--img-size"): img_size,
              ("pose", "weights", "--pose-model"): pose_model}
    for (role, option, flag), value in wanted.items():
        if value is None:
            continue
        hits = 0
        for stage in config.stages:
            for index, spec in enumerate(stage.steps):
                cls = step_class(spec)
                if cls is not None and cls.role == role:
                    if option == "weights":
                        stage.steps[index] = _step_for_weights(spec, role, str(value), flag)
                    else:
                        spec[option] = value
                    hits += 1
        if not hits:
            raise ConfigError(f"{flag}: pipeline {config.name!r} has no {role} step; "
                              f"pick a pipeline with one (see pipelines/)")
    for option, value in (("device", device), ("backend", backend)):
        if value is None:
            continue
        for stage in config.stages:
            for spec in stage.steps:
                cls = step_class(spec)
                if cls is not None and option in {f.name for f in dataclasses.fields(cls.Options)}:
                    spec[option] = value
    _set_detector_option(config, "--conf", conf, ("score_threshold", "conf_threshold"))
    _set_detector_option(config, "--iou", iou, ("nms_threshold", "iou_threshold"))
    _set_detector_option(config, "--classes", None if classes is None else list(classes), ("classes",))
    if half:
        _set_half(config)
    if batch is not None:
        _set_batch(config, batch)
    if smooth is not None:
        config = _set_smoothing(config, smooth)
    validate_steps(config)
    return config


def _option_names(spec: dict[str, Any]) -> set[str]:
    cls = step_class(spec)
    return set() if cls is None else {f.name for f in dataclasses.fields(cls.Options)}


def _set_detector_option(config: PipelineConfig, flag: str, value: Any, names: tuple[str, ...]) -> None:
    """Set ``value`` on every detector step, under the first of ``names`` its options have."""
    if value is None:
        return
    detectors = [spec for stage in config.stages for spec in stage.steps
                 if getattr(step_class(spec), "role", "") == "detector"]
    if not detectors:
        raise ConfigError(f"{flag}: pipeline {config.name!r} has no detector step; pick a pipeline with one")
    for spec in detectors:
        name = next((n for n in names if n in _option_names(spec)), None)
        if name is None:
            hint = "; use a multi-class detector, e.g. --det-model yolov5n" if flag == "--classes" else ""
            raise ConfigError(f"{flag}: the {spec['type']} step has no such setting{hint}")
        spec[name] = value


def _set_half(config: PipelineConfig) -> None:
    hits = 0
    for stage in config.stages:
        for spec in stage.steps:
            names = _option_names(spec)
            if "half" in names:
                spec["half"] = True
                hits += 1
            elif "precision" in names and "fp16" in _precision_choices(spec):
                spec["precision"] = "fp16"
                hits += 1
    if not hits:
        raise ConfigError(f"--half: no step of pipeline {config.name!r} has an fp16 mode (yolov5_detector and "
                          "topdown_pose do, on CUDA)")


def _precision_choices(spec: dict[str, Any]) -> tuple[str, ...]:
    """The values a step's ``precision`` option takes (its Literal)."""
    import typing

    hint = typing.get_type_hints(step_class(spec).Options).get("precision")
    return tuple(typing.get_args(hint))


def _set_batch(config: PipelineConfig, batch: int) -> None:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"--batch: must be a positive integer, got {batch!r}")
    hits = 0
    for i, stage in enumerate(config.stages):
        if any(getattr(step_class(spec), "role", "") for spec in stage.steps):
            config.stages[i] = replace(stage, batch_size=batch)
            hits += 1
    if not hits:
        raise ConfigError(f"--batch: pipeline {config.name!r} has no model stage to batch")


def _set_smoothing(config: PipelineConfig, smooth: bool) -> PipelineConfig:
    """Keypoint smoothing on: a ``one_euro_filter`` right after the tracker; off: none."""
    has_filter = any(spec.get("type") == "one_euro_filter" for stage in config.stages for spec in stage.steps)
    if not smooth:
        stages = [replace(stage, steps=[s for s in stage.steps if s.get("type") != "one_euro_filter"])
                  for stage in config.stages]
        return replace(config, stages=[stage for stage in stages if stage.steps])
    if has_filter:
        return config
    for stage in config.stages:
        for index, spec in enumerate(stage.steps):
            if spec.get("type") == "iou_tracker":
                stage.steps.insert(index + 1, {"type": "one_euro_filter"})
                return config
    raise ConfigError(f"--smooth: pipeline {config.name!r} has no iou_tracker step; smoothing follows its track IDs")


# Options that carry over when a step is swapped for one that reads the given weights.
_PORTABLE_OPTIONS = ("device", "threads", "backend")


def _step_for_weights(spec: dict[str, Any], role: str, weights: str, flag: str) -> dict[str, Any]:
    """The step spec that runs ``weights`` (a registry name or a weights file) in place of ``spec``.

    The file is recognised by its contents (:mod:`streampose.models.recognise`),
    so ``--det-model crowdhuman_yolov5m.pt --pose-model pose_hrnet_w32_256x192.pth``
    works with any pipeline, as in the original top-down demo. Raises
    ConfigError for a model of the other role ("... is a person detector
    checkpoint (YOLOv5); pass it with --det-model") and UserError for a
    missing file, naming the family it is expected to be when the name says so.
    """
    from .models import registry
    from .models.recognise import recognise

    roles = ("detector",) if role == "detector" else ("topdown", "bottomup")
    if weights in registry.MODELS:
        entry = registry.MODELS[weights]
        if entry.role not in roles:
            raise ConfigError(f"{flag}: {weights!r} is a {registry.ROLE_WORDS[entry.role]} model "
                              f"({entry.family_info.title}); pass it with {registry.ROLE_FLAGS[entry.role]}")
        if not entry.present:
            raise UserError(f"{flag}: {entry.family_info.title} weights of {weights!r} not found at {entry.weights}; "
                            f"{entry.how_to_get()} ({entry.family_info.weights_help})")
        return _swapped(spec, entry.step_spec(), flag, weights)
    path = resolve_path(weights)
    if not path.is_file():
        expected = registry.entry_for_file_name(weights)
        if expected is not None:
            raise UserError(f"{flag}: {expected.family_info.title} weights {weights!r} not found; "
                            f"{expected.how_to_get()} ({expected.family_info.weights_help})")
        names = ", ".join(e.name for e in registry.entries("detector" if role == "detector" else "pose"))
        raise UserError(f"{flag}: {weights!r} is neither a weights file nor a model name; give a path or one of: "
                        f"{names} (see `streampose models`)")
    found = recognise(path)
    if found is None:
        return {**spec, "weights": weights}  # the step's loader says what is wrong with the file
    if found.role not in roles:
        raise ConfigError(f"{flag}: {weights} is {found.describe()}; pass it with {registry.ROLE_FLAGS[found.role]}")
    new_type = found.family_info.step_type
    if new_type == spec.get("type"):
        return {**spec, "weights": weights}
    return _swapped(spec, {"type": new_type, "weights": weights}, flag, weights)


def _swapped(spec: dict[str, Any], new: dict[str, Any], flag: str, weights: str) -> dict[str, Any]:
    """``new`` plus the options of ``spec`` that carry over to any model step."""
    new_cls = registered_step_types()[new["type"]]
    option_names = {f.name for f in dataclasses.fields(new_cls.Options)}
    carried = {k: spec[k] for k in _PORTABLE_OPTIONS if k in spec and k in option_names}
    if new["type"] != spec.get("type"):
        logger.info("%s: %s runs in step %s instead of %s", flag, weights, new["type"], spec.get("type"))
    return {**new, **carried}


def import_step_modules(modules: list[str], key_path: str = "step_modules") -> None:
    """Import modules that register extra step types: dotted names, or paths to .py files.

    A path (relative ones resolve against the project root) is loaded under a
    stable module name derived from its absolute path, so the parent and every
    stage process import it exactly once under the same name.
    """
    for i, module in enumerate(modules):
        import_module_ref(module, f"{key_path}[{i}]")


def import_module_ref(module: str, key_path: str) -> types.ModuleType:
    """Import a dotted module name or a ``.py`` path (see :func:`import_step_modules`)."""
    if not (module.endswith(".py") or "/" in module):
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as e:
            raise ConfigError(f"{key_path}: cannot import {module!r}: {e}") from e
    path = resolve_path(module)
    if not path.is_file():
        raise ConfigError(f"{key_path}: file {module!r} not found")
    path = path.resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    mod_name = f"streampose_ext_{path.stem}_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{key_path}: cannot import {module!r}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[mod_name]
        raise
    return mod


def resolve_callable(ref: str, key_path: str = "callable") -> Any:
    """``"package.module:function"`` or ``"path/to/file.py:function"`` → the function."""
    module, sep, attr = ref.rpartition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"{key_path}: expected 'module:function', got {ref!r}")
    mod = import_module_ref(module, key_path)
    try:
        return getattr(mod, attr)
    except AttributeError as e:
        raise ConfigError(f"{key_path}: {module!r} has no {attr!r}") from e
