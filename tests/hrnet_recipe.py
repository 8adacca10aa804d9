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
