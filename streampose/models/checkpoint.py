"""Loading plain state-dict checkpoints safely, with errors that say what to do."""

from __future__ import annotations

import pickle
from pathlib import Path

from ..errors import CheckpointError
from ..paths import existing_file


def load_state_dict_file(path: str | Path, what: str, hint: str = "") -> dict:
    """Read a ``{name: tensor}`` file with ``torch.load(weights_only=True)``.

    what: e.g. "detector weights"; hint: the fix, appended to errors.
    Raises UserError (missing file) or CheckpointError (not a safe state dict).
    """
    import torch

    resolved = existing_file(path, what, hint)
    try:
        state = torch.load(resolved, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refused a global, or not a pickle at all
        raise CheckpointError(f"{what} {str(path)!r} is not a plain state dict of tensors (a pickled object, "
                              f"or not a torch file)" + (f"; {hint}" if hint else "")) from e
    except Exception as e:  # torch raises zip, EOF and runtime errors alike for bad files
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
        raise CheckpointError(f"{what} {str(path)!r} is not a readable torch file ({type(e).__name__}: {reason})"
                              + (f"; {hint}" if hint else "")) from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{what} {str(path)!r} is not a plain {{name: tensor}} state dict"
                              + (f"; {hint}" if hint else ""))
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
