"""Architecture contracts (.importlinter), checked with import-linter's ``lint-imports`` as CI does."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    found = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(found).is_file():
        pytest.fail("lint-imports not found: install the dev extra (pip install -r requirements-dev.txt)")
    return found


def test_import_contracts_are_kept():
    result = subprocess.run([_lint_imports()], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    contracts = sum(1 for section in config.sections() if section.startswith("importlinter:contract:"))
    assert f"{contracts} kept, 0 broken" in result.stdout


@pytest.mark.parametrize("contract, allowed", [("multiprocessing", "streampose.runtime"),
                                               ("ray", "streampose.distributed")])
def test_every_package_but_one_is_forbidden_the_module(contract, allowed):
    """A new top-level module must join the contract's sources (or be the allowed one), so none slips past it."""
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    sources = set(config[f"importlinter:contract:{contract}"]["source_modules"].split())
    modules = {f"streampose.{p.stem}" for p in (REPO / "streampose").iterdir()
               if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert modules - {allowed} == sources


def test_a_broken_layer_is_reported(tmp_path):
    """The checker really checks: a models module importing a flow breaks the layers contract."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "streampose", copy / "streampose", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", copy / ".importlinter")
    (copy / "streampose" / "models" / "bad.py").write_text("from ..topdown import estimator  # noqa\n")
    result = subprocess.run([_lint_imports()], cwd=copy, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "streampose.models.bad -> streampose.topdown.estimator" in result.stdout


def test_exactly_one_checkpoint_recogniser():
    """Only streampose/models/recognise.py tells what a weights file is (no suffix checks, no second sniffer)."""
    sniffing = ('b"models.yolo"', "suffix == \".pt\"", "weights_kind(")
    offenders = []
    for path in (REPO / "streampose").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if any(marker in text for marker in sniffing) and path.name != "recognise.py":
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
    assert 'b"models.yolo"' in (REPO / "streampose" / "models" / "recognise.py").read_text()
