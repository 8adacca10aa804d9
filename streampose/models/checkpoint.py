"""Loading plain state-dict checkpoints safely, with errors that say what to do.

Safe means bounded as well as inert: a hostile file must not make the loader
allocate more than the file really holds. Every torch zip checkpoint is first
checked against its own zip directory (:func:`check_zip_directory`: no entry
may inflate more than ``MAX_INFLATE_RATIO`` times, the whole archive not past
``MAX_CHECKPOINT_BYTES``, the object pickle not past ``MAX_PICKLE_BYTES``);
every tensor loaded must fit inside its storage (:func:`check_tensor_extent`:
no more elements than its storage's bytes hold, so a stride-0 view cannot
turn a few bytes into gigabytes when copied). Anything else is a one-line
:class:`CheckpointError`; torch's warnings never reach the user.
"""

from __future__ import annotations

import logging
import pickle
import warnings
import zipfile
from pathlib import Path

from ..errors import CheckpointError
from ..paths import existing_file


log = logging.getLogger(__name__)

#: torch writes zip checkpoints uncompressed; an entry that inflates more than this is hostile or damaged.
MAX_INFLATE_RATIO = 20
#: uncompressed bytes of all zip entries of one checkpoint (the largest released pose/detection models are < 1 GB).
MAX_CHECKPOINT_BYTES = 4 << 30
#: bytes of a checkpoint's object pickle (``data.pkl``; yolov5x: 0.3 MB, HRNet: < 1 MB).
MAX_PICKLE_BYTES = 64 << 20
#: the one message for a file cut short or garbled.
DAMAGED = "is a truncated or damaged checkpoint"


def check_zip_directory(archive: zipfile.ZipFile, source: str) -> None:
    """CheckpointError when the zip directory promises more than a checkpoint may inflate to.

    Checked before any entry is read: each entry's uncompressed size against
    its compressed size (``MAX_INFLATE_RATIO``, with 64 KiB of slack for tiny
    entries), pickles against ``MAX_PICKLE_BYTES``, the sum against
    ``MAX_CHECKPOINT_BYTES``. Reads of an entry stop at its directory size
    (``zipfile`` enforces it), so the directory bounds the memory.
    """
    total = 0
    for info in archive.infolist():
        total += info.file_size
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_INFLATE_RATIO * info.compress_size + (64 << 10):
            raise CheckpointError(f"{source}: zip entry {info.filename!r} inflates {info.compress_size} bytes to "
                                  f"{info.file_size} (over {MAX_INFLATE_RATIO}x); torch never compresses checkpoints, "
                                  "so the file is damaged or hostile and was not read")
        if info.filename.endswith(".pkl") and info.file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(f"{source}: its object pickle {info.filename!r} is {info.file_size} bytes, over "
                                  f"the limit of {MAX_PICKLE_BYTES >> 20} MiB; the file is damaged or hostile")
    if total > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{source}: its zip entries add up to {total} bytes, over the limit of "
                              f"{MAX_CHECKPOINT_BYTES >> 30} GiB for a checkpoint; the file is damaged or hostile")


def check_zip_file(path: Path, source: str) -> bool:
    """Whether ``path`` is a zip archive; CheckpointError when it is one whose directory fails the checks."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            check_zip_directory(archive, source)
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{source} {DAMAGED} ({e})") from e
    return True


def looks_truncated_zip(path: Path) -> bool:
    """A file that starts like a zip archive but has no readable zip directory (cut short)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04" and not zipfile.is_zipfile(path)
    except OSError:
        return False


def check_tensor_extent(tensor, name: str, source: str) -> None:
    """CheckpointError unless ``tensor`` holds no more elements than its storage's bytes.

    A strided view may share or skip storage but never multiply it: a stride-0
    view of one element claiming 2**40 elements is refused here, before any
    copy (``.float()``, ``.contiguous()``) could allocate it.
    """
    storage_bytes = tensor.untyped_storage().nbytes()
    needed = tensor.numel() * tensor.element_size()
    if needed > storage_bytes:
        raise CheckpointError(f"{source}: tensor {name!r} claims {tensor.numel()} elements of {tuple(tensor.shape)} "
                              f"from a storage of {storage_bytes} bytes; the file is damaged or hostile")


def quiet_torch_load(path: Path, **kwargs):
    """``torch.load`` with its warnings logged at debug level instead of printed to stderr."""
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return torch.load(path, **kwargs)
        finally:
            for w in caught:
                log.debug("torch.load(%s): %s", path, w.message)


def load_state_dict_file(path: str | Path, what: str, hint: str = "") -> dict:
    """Read a ``{name: tensor}`` file with ``torch.load(weights_only=True)``.

    what: e.g. "detector weights"; hint: the fix, appended to errors.
    Raises UserError (missing file) or CheckpointError (not a safe state dict).
    """
    import torch

    resolved = existing_file(path, what, hint)
    fix = f"; {hint}" if hint else ""
    is_zip = check_zip_file(resolved, f"{what} {str(path)!r}")
    if not is_zip and looks_truncated_zip(resolved):
        raise CheckpointError(f"{what} {str(path)!r} {DAMAGED} (its zip directory is missing){fix}")
    try:
        state = quiet_torch_load(resolved, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refused a global, or not a pickle at all
        raise CheckpointError(f"{what} {str(path)!r} is not a plain state dict of tensors (a pickled object, "
                              f"or not a torch file){fix}") from e
    except (EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{what} {str(path)!r} {DAMAGED} ({type(e).__name__}){fix}") from e
    except Exception as e:  # torch raises zip, EOF and runtime errors alike for bad files
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
        raise CheckpointError(f"{what} {str(path)!r} is not a readable torch file ({type(e).__name__}: {reason})"
                              + fix) from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{what} {str(path)!r} is not a plain {{name: tensor}} state dict" + fix)
    for name, tensor in state.items():
        check_tensor_extent(tensor, str(name), f"{what} {str(path)!r}")
    return state


def load_exactly(model, state: dict, path: str | Path, what: str) -> None:
    """``model.load_state_dict(state)`` with missing/unexpected/mis-shaped keys named in a CheckpointError."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:5])}" + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""))
        raise CheckpointError(f"{what} {str(path)!r} does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(state)


def shapes_match(model, state: dict) -> bool:
    """Whether ``state`` has exactly the model's keys with the same shapes."""
    own = model.state_dict()
    return set(own) == set(state) and all(tuple(own[k].shape) == tuple(state[k].shape) for k in own)
