"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Set before any test module imports numba (a fixture would run too late): the
# package directory may be read-only on CI, so Numba's cache goes elsewhere.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "streampose-numba-cache"))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STREAMPOSE_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (real media, goldens, weights); tests needing it skip when absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch with one intra-op thread for the module, restored after.

    On a shared 2-core machine two spinning OpenMP threads can make a CPU
    forward pass 10x slower than one thread; use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
