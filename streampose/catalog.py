"""Readable tables of what can run here: ``streampose models`` and ``--list-pipelines``.

A model "runs now" when its weights file is present; a pipeline runs now when
every weights file its steps name is present. Otherwise the table says how to
get the weights (from the model registry).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from .models.registry import ModelEntry, entries, entry_for_file_name


def _table(header: Sequence[str], rows: list[Sequence[str]]) -> list[str]:
    """Left-aligned columns, two spaces apart; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [f"{str(c):<{w}}" for c, w in zip(row[:-1], widths)] + [str(row[-1])]
        lines.append("  ".join(cells).rstrip())
    return lines


def model_status(entry: ModelEntry) -> str:
    """"runs now (bundled)", "runs now" or "needs weights: <how>"."""
    if entry.present:
        return "runs now (bundled)" if entry.bundled else "runs now"
    return f"needs weights: {entry.how_to_get()}"


def models_table(role: str | None = None) -> list[str]:
    """One line per registry model, starting with its name."""
    rows = []
    for e in entries(role):
        w, h = e.input_size_wh
        rows.append((e.name, e.role, e.family_info.title, f"{w}x{h}", e.keypoints or "-", e.licence,
                     e.accuracy or "-", model_status(e)))
    return _table(("name", "role", "family", "input", "keypoints", "licence", "measured", "status"), rows)


def pipeline_weights(config) -> list[str]:
    """The weights files a pipeline's steps read (given in the definition or their options' defaults)."""
    from .config import step_class

    found = []
    for stage in config.stages:
        for spec in stage.steps:
            weights = spec.get("weights")
            cls = step_class(spec)
            if weights is None and cls is not None:
                field = next((f for f in dataclasses.fields(cls.Options) if f.name == "weights"), None)
                weights = field.default if field is not None and isinstance(field.default, str) else None
            if weights:
                found.append(weights)
    return found


def missing_weights(config) -> list[str]:
    """The weights a pipeline needs that are not here, each with where to get it when the registry knows."""
    from .paths import resolve_path

    missing = []
    for weights in pipeline_weights(config):
        if not resolve_path(weights).is_file():
            entry = entry_for_file_name(weights)
            missing.append(f"{entry.source} → {weights}" if entry is not None else weights)
    return missing


def pipelines_table() -> list[str]:
    """One line per pipeline in ``pipelines/`` (name, runs now / needs weights, description); under a
    pipeline that needs weights, one line saying which files and where they come from."""
    from .config import available_pipelines, load_pipeline

    rows, notes = [], {}
    for name in available_pipelines():
        config = load_pipeline(name)
        missing = missing_weights(config)
        rows.append((name, "needs weights" if missing else "runs now", config.description or "-"))
        if missing:
            notes[name] = "get: " + "; ".join(missing)
    lines = _table(("name", "status", "description"), rows)
    out = lines[:1]
    indent = " " * (lines[0].index("status"))
    for (name, _, _), line in zip(rows, lines[1:]):
        out.append(line)
        if name in notes:
            out.append(indent + notes[name])
    return out
