"""Loading torch checkpoint files without executing anything they contain.

A YOLOv5 ``.pt`` file is a pickle of whole Python objects (the yolov5 ``Model``
and its ``nn.Module`` children). Unpickling it normally imports and calls
whatever globals the file names, so a crafted file runs arbitrary code. Here
the file is read with our own :class:`RestrictedUnpickler`:

- every global the pickle names is looked up in an explicit allow-list
  (:data:`ALLOWED_GLOBALS`); nothing is ever imported, and a name not on the
  list stops the load with a one-line :class:`CheckpointError` naming it;
- the allowed tensor rebuild functions are our own re-implementations that
  validate their arguments (storage bounds, integer shapes), not torch's;
- yolov5 and ``torch.nn`` module classes map to inert placeholders
  (:class:`PickledObject` subclasses) that only record the state the pickle
  gives them; they have no behaviour;
- storages are read by our ``persistent_load`` from the file itself: the zip
  format (torch >= 1.6, ``<archive>/data.pkl`` + ``<archive>/data/<key>``) and
  the legacy stream format (magic number, protocol, sys info, object pickle,
  storage keys, raw storages).

``torch.load`` is not used at all, so no torch code path can import or call
anything outside the allow-list.

Memory is bounded by what the file holds: the zip directory is checked
before any entry is read (:func:`streampose.models.checkpoint.check_zip_directory`),
each storage entry must be exactly as large as its id declares, a tensor
view must lie inside its storage and hold no more elements than it (so a
stride-0 view cannot be inflated by a later copy), legacy storages may not
declare more bytes than the file has, and no reads are larger than what is
left of the file. NumPy values (training metadata such as
``best_fitness``) are rebuilt by our own functions from the bytes in the
pickle, numeric dtypes only; no NumPy array constructor is callable.

Facts about the two on-disk formats are from ``torch/serialization.py``
(PyTorch, BSD-3-Clause); this module is written independently.
"""

from __future__ import annotations

import collections
import io
import pickle
import pickletools
import struct
import zipfile
from pathlib import Path
from typing import Any, Callable

from ...errors import CheckpointError
from ..checkpoint import DAMAGED, check_zip_directory, looks_truncated_zip

_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL_VERSION = 1001

_NOT_PLAIN = ("this file is not a plain YOLOv5 checkpoint (only tensors, containers and yolov5/torch.nn "
              "module classes are allowed); nothing from it was executed. Use the original .pt file from "
              "the model's release page")


# --------------------------------------------------------------------------------------------
# Inert placeholders for pickled objects
# --------------------------------------------------------------------------------------------


class _FrozenClass(type):
    """Metaclass that keeps a malicious BUILD from rewriting placeholder classes."""

    def __setattr__(cls, name: str, value: Any) -> None:
        raise CheckpointError(f"checkpoint tried to set {name!r} on class {cls.__name__}; {_NOT_PLAIN}")

    def __delattr__(cls, name: str) -> None:
        raise CheckpointError(f"checkpoint tried to delete {name!r} on class {cls.__name__}; {_NOT_PLAIN}")


class PickledObject(metaclass=_FrozenClass):
    """An object of an allowed pickled class, reduced to the data the pickle gave it.

    ``pickled_name`` is the class's ``module.Name`` in the file; ``args`` are
    the constructor arguments the pickle passed (usually none); ``state`` is
    the ``__dict__`` (for ``nn.Module``: ``_parameters``, ``_buffers``,
    ``_modules``, plain attributes such as ``yaml`` or ``stride``).
    """

    pickled_name: str = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> "PickledObject":
        self = object.__new__(cls)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "state", {})
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setattr__(self, name: str, value: Any) -> None:
        # Pickle BUILD with "slot state" calls setattr; keep it in ``state``.
        if not isinstance(name, str):
            raise CheckpointError(f"bad attribute name in pickled {self.pickled_name}; {_NOT_PLAIN}")
        self.state[name] = value

    def __setstate__(self, state: Any) -> None:
        if not isinstance(self, PickledObject):
            raise CheckpointError(f"checkpoint applied object state to a class; {_NOT_PLAIN}")
        slots = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slots = state
        for part in (state, slots):
            if part is None:
                continue
            if not isinstance(part, dict) or not all(isinstance(k, str) for k in part):
                raise CheckpointError(f"pickled {self.pickled_name} has a non-dict state; {_NOT_PLAIN}")
            self.state.update(part)

    def get(self, name: str, default: Any = None) -> Any:
        """An attribute recorded from the pickle, or ``default``."""
        return self.state.get(name, default)

    @property
    def class_name(self) -> str:
        """The bare class name, e.g. ``"Conv"`` for ``models.common.Conv``."""
        return self.pickled_name.rsplit(".", 1)[-1]

    def __repr__(self) -> str:
        return f"<pickled {self.pickled_name}>"


def _placeholder(module: str, name: str) -> type[PickledObject]:
    return _FrozenClass(name, (PickledObject,), {"pickled_name": f"{module}.{name}", "__module__": __name__})


class _Function:
    """An allowed callable, wrapped so a pickle cannot set attributes on it."""

    __slots__ = ("_fn", "_name")

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_name", name)

    def __call__(self, *args: Any) -> Any:
        try:
            return self._fn(*args)
        except CheckpointError:
            raise
        except (TypeError, ValueError, RuntimeError, OverflowError, IndexError) as e:
            raise CheckpointError(f"bad arguments to {self._name} in checkpoint: {e}") from e

    def __setattr__(self, name: str, value: Any) -> None:
        raise CheckpointError(f"checkpoint tried to set {name!r} on {self._name}; {_NOT_PLAIN}")

    def __setstate__(self, state: Any) -> None:
        raise CheckpointError(f"checkpoint tried to modify {self._name}; {_NOT_PLAIN}")

    def __repr__(self) -> str:
        return f"<allowed {self._name}>"


# --------------------------------------------------------------------------------------------
# Storages and tensors
# --------------------------------------------------------------------------------------------


class _StorageType:
    """What ``torch.HalfStorage`` etc. stand for in a persistent id: an element dtype."""

    __slots__ = ("name", "dtype_name")

    def __init__(self, name: str, dtype_name: str) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype_name", dtype_name)

    @property
    def dtype(self):
        import torch

        return getattr(torch, self.dtype_name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise CheckpointError(f"checkpoint tried to modify storage type {self.name}; {_NOT_PLAIN}")

    def __setstate__(self, state: Any) -> None:
        raise CheckpointError(f"checkpoint tried to modify storage type {self.name}; {_NOT_PLAIN}")


_STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "UntypedStorage": "uint8",
}


class _Storage:
    """A storage read from the file: a flat 1-D tensor of its element dtype."""

    __slots__ = ("flat",)

    def __init__(self, flat) -> None:
        object.__setattr__(self, "flat", flat)

    def __setattr__(self, name: str, value: Any) -> None:
        raise CheckpointError(f"checkpoint tried to modify a storage; {_NOT_PLAIN}")

    def __setstate__(self, state: Any) -> None:
        raise CheckpointError(f"checkpoint tried to modify a storage; {_NOT_PLAIN}")


def _as_int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(type(v) is int for v in value):
        raise CheckpointError(f"tensor {what} in checkpoint is not a tuple of integers: {value!r}")
    return tuple(value)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any):
    """A strided view of a storage, with the bounds checked here (not by torch)."""
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"tensor in checkpoint is built from a {type(storage).__name__}, not a storage")
    if type(storage_offset) is not int or storage_offset < 0:
        raise CheckpointError(f"tensor storage offset in checkpoint is invalid: {storage_offset!r}")
    size = _as_int_tuple(size, "size")
    stride = _as_int_tuple(stride, "stride")
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise CheckpointError(f"tensor size {size} / stride {stride} in checkpoint are invalid")
    flat = storage.flat
    numel = 1
    for s in size:
        numel *= s
    if numel > flat.numel():
        # Only a zero stride can do this: a view that a copy would blow up to ``numel`` elements.
        raise CheckpointError(f"tensor of size {size} claims {numel} elements from a storage of {flat.numel()} "
                              "in checkpoint; the file is damaged or hostile")
    if numel:
        last = storage_offset + sum((s - 1) * st for s, st in zip(size, stride))
        if last >= flat.numel():
            raise CheckpointError(f"tensor of size {size} reads past the end of its storage "
                                  f"({flat.numel()} elements) in checkpoint")
    return flat.as_strided(size, stride, storage_offset)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None):
    # Hooks and metadata are dropped: nothing from the file is ever called.
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None):
    import torch

    if type(data) is not torch.Tensor:
        raise CheckpointError(f"parameter in checkpoint wraps a {type(data).__name__}, not a tensor")
    return data


def _rebuild_parameter_with_state(data: Any, requires_grad: Any, backward_hooks: Any, state: Any):
    return _rebuild_parameter(data)


class _TensorType:
    """What ``torch.Tensor`` / ``torch.nn.Parameter`` stand for inside ``_rebuild_from_type_v2``."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise CheckpointError(f"checkpoint tried to modify a tensor type; {_NOT_PLAIN}")

    def __setstate__(self, state: Any) -> None:
        raise CheckpointError(f"checkpoint tried to modify a tensor type; {_NOT_PLAIN}")


_TENSOR_TYPE = _TensorType()


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any):
    if new_type is not _TENSOR_TYPE or func not in (_REBUILD_TENSOR, _REBUILD_TENSOR_V2, _REBUILD_PARAMETER):
        raise CheckpointError("checkpoint rebuilds a tensor subclass or with a function other than "
                              f"torch's tensor rebuilders; {_NOT_PLAIN}")
    if not isinstance(args, tuple):
        raise CheckpointError("bad tensor rebuild arguments in checkpoint")
    return func(*args)


def _codecs_encode(text: Any, encoding: Any = "utf-8"):
    # Protocol-2 pickles store bytes as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise CheckpointError(f"unexpected _codecs.encode({type(text).__name__}, {encoding!r}) in checkpoint")
    return text.encode(encoding)


def _make_set(items: Any = ()):
    if not isinstance(items, (list, tuple)):
        raise CheckpointError("set in checkpoint is not built from a list")
    return set(items)


def _make_frozenset(items: Any = ()):
    return frozenset(_make_set(items))


def _make_bytearray(*args: Any):
    if args and not isinstance(args[0], (bytes, list, str)):
        raise CheckpointError("bytearray in checkpoint is not built from bytes")
    if args and isinstance(args[0], str):
        return bytearray(_codecs_encode(*args))
    return bytearray(*args)


#: NumPy dtypes a checkpoint's metadata may use (numbers only: no objects, no structured or void types).
_NUMPY_DTYPES = ("f8", "f4", "f2", "i8", "i4", "i2", "i1", "u8", "u4", "u2", "u1", "b1")


class _NumpyDtype:
    """A NumPy dtype named in a pickle (``numpy.dtype("f8", False, True)`` + its BUILD state)."""

    __slots__ = ("dtype",)

    def __init__(self, dtype) -> None:
        object.__setattr__(self, "dtype", dtype)

    def __setstate__(self, state: Any) -> None:
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags) of a plain number type
        if (not isinstance(state, tuple) or len(state) < 5 or state[1] not in ("<", "|", "=")
                or any(part is not None for part in state[2:5])):
            raise CheckpointError(f"checkpoint gives NumPy dtype {self.dtype} an unexpected state; {_NOT_PLAIN}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise CheckpointError(f"checkpoint tried to modify a NumPy dtype; {_NOT_PLAIN}")


def _numpy_dtype(name: Any, align: Any = False, copy: Any = True) -> _NumpyDtype:
    import numpy as np

    if name not in _NUMPY_DTYPES:
        raise CheckpointError(f"NumPy dtype {str(name)[:20]!r} in checkpoint is not a plain number type; {_NOT_PLAIN}")
    return _NumpyDtype(np.dtype(name).newbyteorder("<"))


def _numpy_scalar(dtype: Any, data: Any = None):
    """``numpy.core.multiarray.scalar``: one number from exactly ``itemsize`` bytes of the pickle."""
    import numpy as np

    if not isinstance(dtype, _NumpyDtype) or not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise CheckpointError(f"NumPy scalar in checkpoint is not one plain number; {_NOT_PLAIN}")
    return np.frombuffer(data, dtype=dtype.dtype)[0]


class _NdarrayType:
    """What ``numpy.ndarray`` stands for: an argument of ``_reconstruct`` only; calling it is refused."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise CheckpointError(f"numpy.ndarray may not be called from a checkpoint (it allocates what the pickle "
                              f"asks); {_NOT_PLAIN}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise CheckpointError(f"checkpoint tried to modify numpy.ndarray; {_NOT_PLAIN}")


_NDARRAY_TYPE = _NdarrayType()


class NumpyArrayRecord:
    """A NumPy array from a checkpoint's metadata, built only from the bytes the pickle holds.

    ``array`` is the array (None until the pickle's BUILD gives its data);
    ``np.asarray(record)`` works. Element counts are checked against the
    bytes, so a pickle cannot make us allocate more than it contains.
    """

    __slots__ = ("array",)

    def __init__(self) -> None:
        object.__setattr__(self, "array", None)

    def __setstate__(self, state: Any) -> None:
        import numpy as np

        # (version, shape, dtype, is_fortran, raw bytes), as ndarray.__reduce__ writes it
        if not isinstance(state, tuple) or len(state) != 5 or self.array is not None:
            raise CheckpointError(f"NumPy array in checkpoint has an unexpected state; {_NOT_PLAIN}")
        _, shape, dtype, fortran, raw = state
        shape = _as_int_tuple(shape, "NumPy shape")
        if not isinstance(dtype, _NumpyDtype) or not isinstance(raw, bytes) or any(n < 0 for n in shape):
            raise CheckpointError(f"NumPy array in checkpoint is not a plain number array; {_NOT_PLAIN}")
        count = 1
        for n in shape:
            count *= n
        if count * dtype.dtype.itemsize != len(raw):
            raise CheckpointError(f"NumPy array of shape {shape} in checkpoint holds {len(raw)} bytes, not "
                                  f"{count * dtype.dtype.itemsize}; the file is damaged or hostile")
        array = np.frombuffer(raw, dtype=dtype.dtype).reshape(shape, order="F" if fortran else "C").copy()
        object.__setattr__(self, "array", array)

    def __array__(self, dtype=None, copy=None):
        import numpy as np

        return np.asarray(self.array, dtype=dtype)

    def __setattr__(self, name: str, value: Any) -> None:
        raise CheckpointError(f"checkpoint tried to modify a NumPy array; {_NOT_PLAIN}")

    def __repr__(self) -> str:
        return f"<pickled numpy array {None if self.array is None else self.array.shape}>"


def _numpy_reconstruct(cls: Any, shape: Any = (0,), dtype_code: Any = b"b"):
    """``numpy.core.multiarray._reconstruct``: an empty record; its data comes only from the pickle's bytes."""
    if cls is not _NDARRAY_TYPE:
        raise CheckpointError(f"checkpoint rebuilds a NumPy array of another class; {_NOT_PLAIN}")
    return NumpyArrayRecord()


_REBUILD_TENSOR = _Function(_rebuild_tensor, "torch._utils._rebuild_tensor")
_REBUILD_TENSOR_V2 = _Function(_rebuild_tensor_v2, "torch._utils._rebuild_tensor_v2")
_REBUILD_PARAMETER = _Function(_rebuild_parameter, "torch._utils._rebuild_parameter")


# --------------------------------------------------------------------------------------------
# The allow-list
# --------------------------------------------------------------------------------------------

#: yolov5 classes (as pickled by the yolov5 repository, v1.0 .. v7.0) that map to placeholders.
YOLOV5_CLASSES: dict[str, tuple[str, ...]] = {
    "models.yolo": ("Model", "DetectionModel", "BaseModel", "Detect"),
    "models.common": ("Conv", "Focus", "C3", "Bottleneck", "SPP", "SPPF", "Concat"),
}
#: torch.nn classes found inside yolov5 models that map to placeholders.
TORCH_NN_CLASSES: dict[str, tuple[str, ...]] = {
    "torch.nn.modules.conv": ("Conv2d",),
    "torch.nn.modules.batchnorm": ("BatchNorm2d",),
    "torch.nn.modules.activation": ("SiLU", "Hardswish", "LeakyReLU", "ReLU", "Sigmoid"),
    "torch.nn.modules.linear": ("Identity",),
    "torch.nn.modules.pooling": ("MaxPool2d",),
    "torch.nn.modules.upsampling": ("Upsample",),
    "torch.nn.modules.container": ("Sequential", "ModuleList"),
}
#: training metadata some checkpoints carry (e.g. ``opt``); kept as inert records.
RECORD_CLASSES: dict[str, tuple[str, ...]] = {
    "argparse": ("Namespace",),
    "pathlib": ("Path", "PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath"),
}


def _build_allow_list() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {}
    for table in (YOLOV5_CLASSES, TORCH_NN_CLASSES, RECORD_CLASSES):
        for module, names in table.items():
            for name in names:
                allowed[(module, name)] = _placeholder(module, name)
    allowed.update({
        ("torch._utils", "_rebuild_tensor"): _REBUILD_TENSOR,
        ("torch._utils", "_rebuild_tensor_v2"): _REBUILD_TENSOR_V2,
        ("torch._utils", "_rebuild_parameter"): _REBUILD_PARAMETER,
        ("torch._utils", "_rebuild_parameter_with_state"):
            _Function(_rebuild_parameter_with_state, "torch._utils._rebuild_parameter_with_state"),
        ("torch._tensor", "_rebuild_from_type_v2"):
            _Function(_rebuild_from_type_v2, "torch._tensor._rebuild_from_type_v2"),
        ("torch", "Tensor"): _TENSOR_TYPE,
        ("torch.nn.parameter", "Parameter"): _TENSOR_TYPE,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): _Function(_make_set, "builtins.set"),
        ("__builtin__", "set"): _Function(_make_set, "builtins.set"),
        ("builtins", "frozenset"): _Function(_make_frozenset, "builtins.frozenset"),
        ("__builtin__", "frozenset"): _Function(_make_frozenset, "builtins.frozenset"),
        ("builtins", "bytearray"): _Function(_make_bytearray, "builtins.bytearray"),
        ("__builtin__", "bytearray"): _Function(_make_bytearray, "builtins.bytearray"),
        ("_codecs", "encode"): _Function(_codecs_encode, "_codecs.encode"),
        # NumPy metadata through bounded re-implementations; no NumPy callable is ever reachable.
        ("numpy", "ndarray"): _NDARRAY_TYPE,
        ("numpy", "dtype"): _Function(_numpy_dtype, "numpy.dtype"),
    })
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _Function(_numpy_reconstruct, f"{module}._reconstruct")
        allowed[(module, "scalar")] = _Function(_numpy_scalar, f"{module}.scalar")
    for name, dtype_name in _STORAGE_DTYPES.items():
        allowed[("torch", name)] = _StorageType(name, dtype_name)
    for dtype_name in ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
                       "uint8", "bool"):
        allowed[("torch", dtype_name)] = _Dtype(dtype_name)
    return allowed


class _Dtype:
    """A torch dtype named in a pickle (kept by name; nothing is looked up in torch)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "name", name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise CheckpointError(f"checkpoint tried to modify dtype {self.name}; {_NOT_PLAIN}")

    def __setstate__(self, state: Any) -> None:
        raise CheckpointError(f"checkpoint tried to modify dtype {self.name}; {_NOT_PLAIN}")


_ALLOWED: dict[tuple[str, str], Any] | None = None


def allowed_globals() -> dict[tuple[str, str], Any]:
    """The allow-list: ``(module, name)`` as written in the pickle → what it stands for."""
    global _ALLOWED
    if _ALLOWED is None:
        _ALLOWED = _build_allow_list()
    return _ALLOWED


# --------------------------------------------------------------------------------------------
# Unpickler and file formats
# --------------------------------------------------------------------------------------------


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves globals only through :func:`allowed_globals`.

    ``load_storage(pid)`` resolves persistent ids (storages); ``source`` names
    the file in error messages.
    """

    def __init__(self, file: io.BufferedIOBase, source: str,
                 load_storage: Callable[[tuple], Any] | None = None) -> None:
        super().__init__(file)
        self._source = source
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        target = allowed_globals().get((module, name))
        if target is not None:
            return target
        if module in ("__builtin__", "copy_reg"):  # protocol-2 spellings of Python 3 modules
            module = {"__builtin__": "builtins", "copy_reg": "copyreg"}[module]
        if module.startswith(("models.", "utils.")):
            supported = ", ".join(n for names in YOLOV5_CLASSES.values() for n in names)
            raise CheckpointError(
                f"refused global '{module}.{name}' in {self._source}: this yolov5 layer type is not "
                f"supported by streampose (supported: {supported})")
        raise CheckpointError(f"refused global '{module}.{name}' in {self._source}: {_NOT_PLAIN}")

    def persistent_load(self, pid: Any) -> Any:
        if (isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module" and isinstance(pid[1], type)
                and issubclass(pid[1], PickledObject)):
            # Legacy files name each nn.Module class with its source text (for a
            # "source changed" warning); the class already went through find_class.
            return pid[1]
        if self._load_storage is None:
            raise CheckpointError(f"unexpected persistent id in {self._source}: {_NOT_PLAIN}")
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise CheckpointError(f"unsupported persistent id {str(pid)[:60]!r} in {self._source}")
        return self._load_storage(pid)


class _CappedReader:
    """A file whose reads never ask for more than what is left of it.

    The pickle machine reads a length the file declares in one call; without
    the cap, a declared length of 2**40 would allocate that much up front.
    """

    def __init__(self, file: Any, size: int) -> None:
        self._file = file
        self._left = size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._file.read(n)
        self._left -= len(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        limit = self._left if limit is None or limit < 0 else min(limit, self._left)
        data = self._file.readline(limit)
        self._left -= len(data)
        return data

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)[: self._left]
        n = self._file.readinto(view)
        self._left -= n
        return n

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, position: int) -> None:
        self._left += self._file.tell() - position
        self._file.seek(position)


def _prescan(data: Any, source: str) -> None:
    """Walk the pickle's opcodes once without building anything, then rewind.

    The pickle machine allocates a length-prefixed string or bytes object at
    its declared size before reading it (``BINBYTES8`` may declare 2**40
    bytes); ``pickletools.genops`` reads through our capped reader, so a
    declared length longer than what is left of the file is found here, cheaply.
    """
    start = data.tell()
    try:
        for _ in pickletools.genops(data):
            pass
    except ValueError as e:  # "expected N bytes ... but only M remain", unknown opcode, no STOP
        raise CheckpointError(f"{source} {DAMAGED} (its object pickle declares more data than the file holds, "
                              f"or ends early: {str(e)[:80]})") from e
    data.seek(start)


def _unpickle(data: Any, source: str, load_storage: Callable[[tuple], Any] | None) -> Any:
    _prescan(data, source)
    try:
        return RestrictedUnpickler(data, source, load_storage).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, KeyError, IndexError,
            RecursionError, struct.error, MemoryError) as e:
        if isinstance(e, EOFError) or (isinstance(e, pickle.UnpicklingError) and "truncated" in str(e)):
            raise CheckpointError(f"{source} {DAMAGED} (its object pickle ends early)") from e
        raise CheckpointError(f"{source} is not a readable torch checkpoint ({type(e).__name__}: {e}); "
                              "check that the file is complete") from e


def _storage_type(value: Any, source: str) -> _StorageType:
    if not isinstance(value, _StorageType):
        raise CheckpointError(f"storage in {source} has an unknown element type: {_NOT_PLAIN}")
    return value


def _flat_from_bytes(raw: bytes, dtype, numel: int, source: str):
    import torch

    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(raw) != numel * itemsize:
        raise CheckpointError(f"storage in {source} holds {len(raw)} bytes, expected {numel * itemsize}; "
                              "the file is truncated or corrupt")
    if numel == 0:
        return torch.empty(0, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=dtype)


def _load_zip(path: Path, source: str) -> Any:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{source} is a damaged torch zip checkpoint: {e}") from e
    with archive:
        check_zip_directory(archive, source)
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(f"{source} is a zip file but not a torch checkpoint (no <name>/data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        names = set(archive.namelist())
        if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder").strip() != b"little":
            raise CheckpointError(f"{source} was saved on a big-endian machine; re-save it on x86/ARM")
        storages: dict[str, Any] = {}

        def load_storage(pid: tuple) -> _Storage:
            if len(pid) != 5:
                raise CheckpointError(f"unsupported storage id of length {len(pid)} in {source}")
            _, storage_type, key, _location, numel = pid
            storage_type = _storage_type(storage_type, source)
            if not isinstance(key, str) or type(numel) is not int or numel < 0:
                raise CheckpointError(f"bad storage id in {source}")
            if key not in storages:
                entry = f"{prefix}data/{key}"
                if entry not in names:
                    raise CheckpointError(f"{source} lacks storage {entry!r}; the file is incomplete")
                import torch

                expected = numel * torch.empty((), dtype=storage_type.dtype).element_size()
                declared = archive.getinfo(entry).file_size
                if declared != expected:  # checked before reading: the id cannot make us read (or allocate) more
                    raise CheckpointError(f"storage {entry!r} in {source} holds {declared} bytes, its id declares "
                                          f"{expected}; the file is damaged or hostile")
                with archive.open(entry) as f:
                    raw = f.read(expected)
                storages[key] = _Storage(_flat_from_bytes(raw, storage_type.dtype, numel, source))
            return storages[key]

        # The object pickle is small (checked against the directory): read it whole, unpickle from memory.
        with archive.open(pickles[0]) as f:
            data = f.read()
        return _unpickle(io.BytesIO(data), source, load_storage)


def _load_legacy(path: Path, source: str) -> Any:
    import torch

    file_size = path.stat().st_size
    with open(path, "rb") as raw_file:
        f = _CappedReader(raw_file, file_size)
        magic = _unpickle(f, source, None)
        if magic != _LEGACY_MAGIC_NUMBER:
            raise CheckpointError(f"{source} is not a torch checkpoint (neither zip nor legacy format)")
        protocol = _unpickle(f, source, None)
        if protocol != _LEGACY_PROTOCOL_VERSION:
            raise CheckpointError(f"{source} uses torch serialization protocol {protocol!r}, not supported")
        sys_info = _unpickle(f, source, None)
        if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
            raise CheckpointError(f"{source} was saved on a big-endian machine; re-save it on x86/ARM")
        roots: dict[str, Any] = {}
        total_bytes = 0

        def load_storage(pid: tuple) -> _Storage:
            nonlocal total_bytes
            if len(pid) != 6:
                raise CheckpointError(f"unsupported legacy storage id of length {len(pid)} in {source}")
            _, storage_type, root_key, _location, numel, view = pid
            dtype = _storage_type(storage_type, source).dtype
            if not isinstance(root_key, str) or type(numel) is not int or numel < 0:
                raise CheckpointError(f"bad storage id in {source}")
            if root_key not in roots:
                total_bytes += numel * torch.empty((), dtype=dtype).element_size()
                if total_bytes > file_size:
                    raise CheckpointError(f"{source} declares more storage than the file holds; it is corrupt")
                roots[root_key] = torch.empty(numel, dtype=dtype)
            root = roots[root_key]
            if view is None:
                return _Storage(root)
            if (not isinstance(view, tuple) or len(view) != 3 or type(view[1]) is not int
                    or type(view[2]) is not int or view[1] < 0 or view[1] + view[2] > root.numel()):
                raise CheckpointError(f"bad storage view in {source}")
            return _Storage(root[view[1]: view[1] + view[2]])

        result = _unpickle(f, source, load_storage)
        keys = _unpickle(f, source, None)
        if not isinstance(keys, list) or set(keys) != set(roots):
            raise CheckpointError(f"{source}: storage table does not match the object pickle; the file is corrupt")
        for key in keys:
            root = roots[key]
            header = f.read(8)
            if len(header) != 8:
                raise CheckpointError(f"{source} {DAMAGED} (storage {key!r} missing)")
            (numel,) = struct.unpack("<q", header)
            if numel != root.numel():
                raise CheckpointError(f"{source}: storage {key!r} has {numel} elements, expected {root.numel()}")
            raw = f.read(numel * root.element_size())
            root.copy_(_flat_from_bytes(raw, root.dtype, numel, source))
        return result


def restricted_load(path: str | Path, source: str | None = None) -> Any:
    """Read a torch checkpoint file through the allow-list; returns plain data and placeholders.

    Tensors come back as plain ``torch.Tensor`` on the CPU (views of the
    file's storages), module objects as :class:`PickledObject`. ``source``
    is the name used in messages (default: the path as given).
    Raises :class:`CheckpointError` for a refused global or an unreadable file.
    """
    path = Path(path)
    source = source or str(path)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path, source)
        if looks_truncated_zip(path):
            raise CheckpointError(f"{source} {DAMAGED} (a zip archive without its directory: cut short?); "
                                  "download it again")
        with open(path, "rb") as f:
            head = f.read(2)
        if not head:
            raise CheckpointError(f"{source} {DAMAGED} (the file is empty)")
        if head[:1] != b"\x80":
            raise CheckpointError(f"{source} is not a torch checkpoint (not a zip archive nor a pickle); "
                                  "tar checkpoints from torch < 0.4 are not supported")
        return _load_legacy(path, source)
    except CheckpointError:
        raise
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {source}: {e}") from e
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, OverflowError, ValueError,
            struct.error, MemoryError) as e:  # damaged archive members, bad sizes, truncated legacy streams
        raise CheckpointError(f"{source} {DAMAGED} ({type(e).__name__}: {str(e)[:100]}); "
                              "check that the file is complete") from e
