"""Hostile checkpoint files made byte by byte for the resource-bomb tests (issue 14, class 7).

Each builder writes one small file that, read naively, makes a loader
allocate far more than the file holds, recurse without bound, or misreport a
cut file. ``HOSTILE`` maps a name to ``(builder, expected message regex)``;
the regex is what our one-line ``CheckpointError`` must say.

Pickles are written with opcodes (protocol 2) where no Python object graph
could be pickled (20,000-deep nesting, a module containing itself); the
opcode letters are those of CPython's ``pickletools``.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Callable

#: bytes a bomb would inflate to: above the 1 GiB cap the tests run under
BOMB_BYTES = 1200 << 20
DEEP = 20_000


# ------------------------------------------------------------------ opcode helpers (protocol 2)

def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _text(value: str) -> bytes:
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value) if -(1 << 31) <= value < (1 << 31) else b"\x8a\x08" + struct.pack("<q", value)


def _obj(module: str, name: str, state: bytes, memo: int | None = None) -> bytes:
    """NEWOBJ of module.name, optionally memoised (BINPUT), then BUILD with ``state`` (a dict's opcodes)."""
    put = b"q" + bytes([memo]) if memo is not None else b""
    return _global(module, name) + b")\x81" + put + state + b"b"


def _dict(items: list[tuple[str, bytes]]) -> bytes:
    return b"}(" + b"".join(_text(k) + v for k, v in items) + b"u"


def _yolo_model(first_layer: bytes, yaml: bytes | None = None) -> bytes:
    """A pickled {'model': Model} whose layer list is [first_layer, Detect]."""
    yaml = yaml or _dict([("backbone", b"]"), ("head", b"]"), ("nc", _int(1))])
    detect = _obj("models.yolo", "Detect", _dict([("_modules", b"}")]))
    layers = _obj("torch.nn.modules.container", "Sequential",
                  _dict([("_modules", _dict([("0", first_layer), ("1", detect)]))]), memo=1)
    model = _obj("models.yolo", "Model", _dict([("yaml", yaml), ("_modules", _dict([("model", layers)]))]))
    return b"\x80\x02" + _dict([("model", model)]) + b"."


def _zip(path: Path, data_pkl: bytes, storages: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
        for key, raw in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", raw)
    return path


# ------------------------------------------------------------------ tensor pickles through the real pickler

class _Storage:
    def __init__(self, numel: int, key: str = "0") -> None:
        self.numel, self.key = numel, key


class _Tensor:
    def __init__(self, storage: _Storage, size: tuple, stride: tuple, offset: int = 0) -> None:
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        import torch

        return torch._utils._rebuild_tensor_v2, self.args


def _tensor_pickle(obj) -> bytes:
    import torch

    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, _Storage):
                return ("storage", torch.FloatStorage, o.key, "cpu", o.numel)
            return None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


# ------------------------------------------------------------------ the builders

def zip_entry_bomb(path: Path) -> Path:
    """A storage entry deflated ~1000x: 1.2 GiB of zeros in about 1 MB, its id agreeing with the inflated size."""
    numel = BOMB_BYTES // 4
    data_pkl = _tensor_pickle({"w": _Tensor(_Storage(numel), (numel,), (1,))})
    # The pickle and byteorder stored (as torch writes them); the storage deflated, the zeros streamed.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr(zipfile.ZipInfo("archive/data.pkl"), data_pkl)
        archive.writestr(zipfile.ZipInfo("archive/byteorder"), "little")
        with archive.open("archive/data/0", "w", force_zip64=True) as entry:
            chunk = bytes(16 << 20)
            for _ in range(BOMB_BYTES // len(chunk)):
                entry.write(chunk)
    return path


def data_pkl_bomb(path: Path) -> Path:
    """The object pickle itself deflated ~1000x (what the CLI's sniffing used to read in full)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("archive/data.pkl", "w", force_zip64=True) as entry:
            entry.write(b"\x80\x02}q\x00.")
            chunk = bytes(16 << 20)
            for _ in range(BOMB_BYTES // len(chunk)):
                entry.write(chunk)
        archive.writestr("archive/byteorder", "little")
    return path


def stride_zero_view(path: Path) -> Path:
    """One float stored, viewed as 2**28 elements with stride 0 (1 GiB once copied): torch.save makes it."""
    import torch

    torch.save({"w": torch.ones(1).expand(1 << 28)}, path)
    return path


def stride_zero_huge(path: Path) -> Path:
    """2**40 elements from a 1-element storage (a copy raises an uncaught RuntimeError in torch)."""
    return _zip(path, _tensor_pickle({"w": _Tensor(_Storage(1), (1 << 20, 1 << 20), (0, 0))}),
                {"0": struct.pack("<f", 1.0)})


def view_past_storage(path: Path) -> Path:
    """A view whose offset puts its end outside the storage."""
    return _zip(path, _tensor_pickle({"w": _Tensor(_Storage(4), (4,), (1,), offset=3)}), {"0": bytes(16)})


def storage_id_lies(path: Path) -> Path:
    """A storage id declaring 2**28 elements for an entry of 16 bytes."""
    return _zip(path, _tensor_pickle({"w": _Tensor(_Storage(1 << 28), (4,), (1,))}), {"0": bytes(16)})


def numpy_reconstruct_bomb(path: Path) -> Path:
    """``numpy.core.multiarray._reconstruct(numpy.ndarray, (2**30,), b'b')``: 1 GiB from a few hundred bytes."""
    call = (_global("numpy.core.multiarray", "_reconstruct") + b"(" + _global("numpy", "ndarray")
            + b"(" + _int(1 << 30) + b"t" + _text("b") + b"t" + b"R")
    return _zip(path, b"\x80\x02" + _dict([("best_fitness", call)]) + b".")


def numpy_ndarray_call(path: Path) -> Path:
    """``numpy.ndarray((2**30,))`` called straight from the pickle."""
    call = _global("numpy", "ndarray") + b"((" + _int(1 << 30) + b"tt" + b"R"
    return _zip(path, b"\x80\x02" + _dict([("x", call)]) + b".")


def numpy_array_state_lies(path: Path) -> Path:
    """An ndarray whose BUILD state claims 2**30 float64s but carries 8 bytes."""
    dtype = _global("numpy", "dtype") + b"(" + _text("f8") + b"\x89\x88" + b"t" + b"R"
    state = b"(" + _int(1) + b"(" + _int(1 << 30) + b"t" + dtype + b"\x89" + b"C\x08" + bytes(8) + b"t"
    call = (_global("numpy.core.multiarray", "_reconstruct") + b"(" + _global("numpy", "ndarray")
            + b"(" + _int(0) + b"t" + _text("b") + b"t" + b"R" + state + b"b")
    return _zip(path, b"\x80\x02" + _dict([("best_fitness", call)]) + b".")


def numpy_void_dtype(path: Path) -> Path:
    """``numpy.dtype('V1000000000')``: a 1 GB element type."""
    call = _global("numpy", "dtype") + b"(" + _text("V1000000000") + b"\x89\x88" + b"t" + b"R"
    return _zip(path, b"\x80\x02" + _dict([("x", call)]) + b".")


def deep_modules(path: Path) -> Path:
    """A yolov5 Model whose first layer nests 20,000 Conv modules deep."""
    inner = b"}"
    opening, closing = b"", b""
    for _ in range(DEEP):
        opening += _global("models.common", "Conv") + b")\x81" + b"}(" + _text("_modules") + b"}(" + _text("m")
        closing = b"uub" + closing
    return _zip(path, _yolo_model(opening + _obj("models.common", "Conv", _dict([("_modules", inner)])) + closing))


def module_contains_itself(path: Path) -> Path:
    """A layer list whose first layer is the layer list itself (memo 1)."""
    return _zip(path, _yolo_model(b"h\x01"))


def deep_yaml(path: Path) -> Path:
    """An architecture yaml nesting 20,000 lists deep (the network builder deep-copies it)."""
    nested = b"]" * DEEP + b"a" * (DEEP - 1)
    yaml = _dict([("backbone", nested), ("head", b"]"), ("nc", _int(1))])
    conv = _obj("models.common", "Conv", _dict([("_modules", b"}")]))
    return _zip(path, _yolo_model(conv, yaml))


def yaml_contains_itself(path: Path) -> Path:
    yaml = b"}q\x02(" + _text("backbone") + b"]" + _text("head") + b"h\x02" + b"u"
    conv = _obj("models.common", "Conv", _dict([("_modules", b"}")]))
    return _zip(path, _yolo_model(conv, yaml))


def huge_declared_bytes_legacy(path: Path) -> Path:
    """A legacy (pre-zip) file whose pickle declares a 2**40-byte BINBYTES8 string and holds 10 bytes."""
    header = b"".join(pickle.dumps(v, protocol=2) for v in (
        0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}))
    path.write_bytes(header + b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + bytes(10))
    return path


def truncated_real(source: Path) -> Callable[[Path], Path]:
    def build(path: Path) -> Path:
        data = source.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path
    return build


def empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "zip_entry_bomb": (zip_entry_bomb, r"inflates .*over 20x"),
    "data_pkl_bomb": (data_pkl_bomb, r"inflates .*over 20x|object pickle .* over the limit"),
    "stride_zero_view": (stride_zero_view, r"claims 268435456 elements"),
    "stride_zero_huge": (stride_zero_huge, r"claims 1099511627776 elements"),
    "view_past_storage": (view_past_storage, r"past the end of its storage|out of bounds"),
    "storage_id_lies": (storage_id_lies, r"holds 16 bytes, its id declares 1073741824"),
    "numpy_reconstruct_bomb": (numpy_reconstruct_bomb, r"not a yolov5 checkpoint|no yolov5 model|refused global"),
    "numpy_ndarray_call": (numpy_ndarray_call, r"numpy.ndarray may not be called"),
    "numpy_array_state_lies": (numpy_array_state_lies, r"holds 8 bytes, not 8589934592"),
    "numpy_void_dtype": (numpy_void_dtype, r"not a plain number type"),
    "deep_modules": (deep_modules, r"nest more than 32 deep"),
    "module_contains_itself": (module_contains_itself, r"contains itself"),
    "deep_yaml": (deep_yaml, r"nests more than 16 deep"),
    "yaml_contains_itself": (yaml_contains_itself, r"yaml contains itself"),
    "huge_declared_bytes_legacy": (huge_declared_bytes_legacy, r"truncated or damaged checkpoint"),
    "empty": (empty, r"truncated or damaged checkpoint"),
}
