"""Helpers shared by the runtime tests: test pipelines and reading the recorder's lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streampose.config import import_module_ref, parse_pipeline

TESTS_DIR = Path(__file__).resolve().parent
STEPS_FILE = str(TESTS_DIR / "steps_for_tests.py")
#: the test step module, imported exactly as stage processes import it (by path).
test_steps = import_module_ref(STEPS_FILE, "step_modules[0]")
OPENER = test_steps.OPENER


def pipeline(*stages: tuple[str, list[dict[str, Any]]] | tuple[str, list[dict[str, Any]], int], **top: Any):
    """A validated test pipeline from (name, steps[, batch_size]) tuples."""
    data: dict[str, Any] = {"step_modules": [STEPS_FILE], "stages": []}
    for stage in stages:
        entry = {"name": stage[0], "steps": stage[1]}
        if len(stage) > 2:
            entry["batch_size"] = stage[2]
        data["stages"].append(entry)
    data.update(top)
    return parse_pipeline(data, name="test")


def pipeline_toml(path: Path, stages: list[tuple[str, list[str]]]) -> Path:
    """Write a test pipeline file; steps are given as TOML inline tables."""
    lines = [f"step_modules = [{json.dumps(STEPS_FILE)}]"]
    for name, steps in stages:
        lines += ["[[stages]]", f"name = {json.dumps(name)}", f"steps = [{', '.join(steps)}]"]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def frames_of(records: list[dict[str, Any]], source: int) -> list[dict[str, Any]]:
    return [r for r in records if r["event"] == "frame" and r["source"] == source]
