"""The unit of work of a pipeline, and the registry that builds steps from data.

A :class:`Step` is a plain object: the multiprocess runtime and the inline
runner both call ``start()`` once in the process that runs it (load weights,
warm Numba kernels there, never at import), then ``process(frames)`` with a
batch of one or more frames in order, then ``close()``. A step never knows
which runner it is in.

Steps are registered under a type name with a typed options dataclass; a
pipeline definition names the type and gives options, which are validated
strictly (unknown key, wrong type: :class:`ConfigError` naming the key path).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable, ClassVar

from .errors import ConfigError
from .records import EndOfStream, Frame, StreamStart


class Step:
    """Base class of every pipeline step.

    Subclasses set ``Options`` to a dataclass describing their options and
    take an instance of it in ``__init__``. ``draws`` tells the runtime the
    step writes pixels (so it must run where the frame may be modified).
    """

    Options: ClassVar[type] = type(None)
    draws: ClassVar[bool] = False
    #: what the step is, for CLI shortcuts: "detector" (``--det-model`` and
    #: ``--img-size`` set its ``weights`` / ``img_size`` options), "pose"
    #: (``--pose-model`` sets ``weights``), or "" for anything else.
    role: ClassVar[str] = ""
    #: the step needs every frame of a source, in order, in one process
    #: (a tracker or a filter carries state from frame to frame): its stage
    #: may not be replicated.
    order_dependent: ClassVar[bool] = False

    #: filled in by the registry: the type name this step was built from.
    type_name: str = ""

    def start(self) -> None:
        """Acquire resources in the process that runs the step."""

    def process(self, frames: list[Frame]) -> list[Frame]:
        """Fill in records for a batch of frames (same order out as in)."""
        raise NotImplementedError

    def start_of_stream(self, event: StreamStart) -> None:
        """A source starts; arrives before its first frame (sinks open files here)."""

    def end_of_stream(self, event: EndOfStream) -> None:
        """A source ended; per-source state (tracks, open files) may be released."""

    def close(self) -> None:
        """Finish: release resources and finalize outputs (graceful end or stop)."""

    def abort(self) -> None:
        """The run failed: release resources without publishing half-written
        outputs. Called instead of ``close()``; the default just closes."""
        self.close()


_REGISTRY: dict[str, type[Step]] = {}


def register_step(type_name: str) -> Callable[[type[Step]], type[Step]]:
    """Class decorator: make a Step buildable from a pipeline definition."""

    def decorate(cls: type[Step]) -> type[Step]:
        if type_name in _REGISTRY and _REGISTRY[type_name] is not cls:
            raise RuntimeError(f"step type {type_name!r} registered twice")
        if not dataclasses.is_dataclass(cls.Options):
            raise TypeError(f"{cls.__name__}.Options must be a dataclass")
        cls.type_name = type_name
        _REGISTRY[type_name] = cls
        return cls

    return decorate


def registered_step_types() -> dict[str, type[Step]]:
    _import_builtin_steps()
    return dict(_REGISTRY)


def build_step(spec: dict[str, Any], key_path: str = "step") -> Step:
    """Build a step from ``{"type": name, **options}``, validating every option."""
    _import_builtin_steps()
    if not isinstance(spec, dict):
        raise ConfigError(f"{key_path}: expected a table with a 'type' key, got {type(spec).__name__}")
    options = dict(spec)
    type_name = options.pop("type", None)
    if type_name is None:
        raise ConfigError(f"{key_path}.type: missing; one of {sorted(_REGISTRY)}")
    cls = _REGISTRY.get(type_name)
    if cls is None:
        raise ConfigError(f"{key_path}.type: unknown step type {type_name!r}; known: {sorted(_REGISTRY)}")
    return cls(parse_options(cls.Options, options, key_path))


def parse_options(options_cls: type, values: dict[str, Any], key_path: str) -> Any:
    """Instantiate a dataclass from a dict, rejecting unknown keys and wrong types."""
    fields = {f.name: f for f in dataclasses.fields(options_cls)}
    hints = typing.get_type_hints(options_cls)
    for key in values:
        if key not in fields:
            raise ConfigError(f"{key_path}.{key}: unknown option; allowed: {sorted(fields)}")
    kwargs = {}
    for key, value in values.items():
        kwargs[key] = _coerce(value, hints[key], f"{key_path}.{key}")
    try:
        return options_cls(**kwargs)
    except TypeError as e:  # a required option is missing
        raise ConfigError(f"{key_path}: {e}") from e
    except ValueError as e:  # the dataclass's own range checks (__post_init__)
        raise ConfigError(f"{key_path}: {e}") from e


def _coerce(value: Any, hint: Any, key_path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key_path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key_path}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key_path}: {value!r} is not one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key_path}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{key_path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key_path}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key_path}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key_path}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key_path}: expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key_path}: expected a table, got {value!r}")
        return parse_options(hint, value, key_path)
    raise TypeError(f"{key_path}: unsupported option type {hint!r}")


# Built-in steps live one family per module in ``streampose.builtin_steps``;
# they are imported on first use so that importing the package stays cheap
# and free of side effects. Step modules keep heavy imports (torch, av) inside
# ``start()`` or functions, so validating a pipeline definition stays fast.
_builtins_imported = False


def _import_builtin_steps() -> None:
    global _builtins_imported
    if _builtins_imported:
        return
    import importlib
    import pkgutil

    from . import builtin_steps

    for info in pkgutil.iter_modules(builtin_steps.__path__):
        importlib.import_module(f"{builtin_steps.__name__}.{info.name}")
    _builtins_imported = True
