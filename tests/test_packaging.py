"""Packaging: the wheel carries the bundled weights and the pipeline definitions as package data,
and an installed copy finds them from any directory."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from streampose.models import registry

REPO = Path(__file__).resolve().parents[1]


def _setup_py_bundled_weights() -> list[str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "BUNDLED_WEIGHTS")
    return ast.literal_eval(node.value)


def test_setup_py_ships_exactly_the_bundled_weights():
    bundled = {Path(e.weights).name for e in registry.MODELS.values() if e.bundled}
    shipped = set(_setup_py_bundled_weights())
    weights = {name for name in shipped if name.endswith(".pth")}
    assert bundled <= weights
    # Besides the registry's files: companion files of bundled models (MoveNet's int8 grids).
    assert all(name in bundled or any(name.startswith(Path(b).stem) for b in bundled) for name in weights)
    assert all((REPO / "weights" / name).is_file() for name in shipped)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from a copy of the repository, installed (without dependencies) into a folder."""
    pytest.importorskip("setuptools")
    tmp = tmp_path_factory.mktemp("pkg")
    src = tmp / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "streampose", src / "streampose", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "pipelines", src / "pipelines")
    (src / "weights").mkdir()
    for name in _setup_py_bundled_weights():
        shutil.copy(REPO / "weights" / name, src / "weights" / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp / "dist")], cwd=src, check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("streampose-*.whl")
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return wheel, site


def test_the_wheel_holds_weights_and_pipelines(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for entry in registry.MODELS.values():
        if entry.bundled:
            assert f"streampose/{entry.weights}" in names
    assert {f"streampose/pipelines/{p.name}" for p in (REPO / "pipelines").glob("*.toml")} <= names
    assert not any(n.startswith("streampose/weights/") and n.endswith((".pt", ".tar")) for n in names)


def test_an_installed_copy_runs_from_another_directory(installed, tmp_path):
    _, site = installed
    code = ("import streampose, streampose.paths as p; from streampose.models import registry; "
            "from streampose.config import load_pipeline; "
            "assert str(p.data_dir('pipelines')).startswith(%r), p.data_dir('pipelines'); "
            "assert registry.get('movenet_lightning').present; load_pipeline('default'); print(streampose.__file__)"
            % str(site))
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith(str(site))
    listing = subprocess.run([sys.executable, "-m", "streampose", "--list-pipelines"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0 and "default" in listing.stdout and "runs now" in listing.stdout
