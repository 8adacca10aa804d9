"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Set before any test module imports numba (a fixture would run too late): the
# package directory may be read-only on CI, so Numba's cache goes elsewhere.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "streampose-numba-cache"))
# Steps with backend = "auto" must not follow a backend table the developer measured on this machine
# (streampose backends --measure): tests see torch unless they write a table of their own.
os.environ["STREAMPOSE_BACKEND_TABLE"] = os.path.join(tempfile.mkdtemp(prefix="streampose-tests-"), "backends.json")

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


@pytest.fixture
def restore_root_logger():
    """Undo what ``streampose.cli.main`` does to the root logger (it configures logging, as a CLI should)."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def rtsp_server():
    """A real RTSP server on 127.0.0.1 (tests/rtsp_server.py); skipped where GStreamer's is missing."""
    from test_rtsp import _PROBLEM, RtspServer

    if _PROBLEM is not None:
        pytest.skip(f"GStreamer RTSP server not available: {_PROBLEM}")
    server = RtspServer()
    server.start()
    yield server
    server.kill()
