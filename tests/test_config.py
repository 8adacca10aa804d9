"""Pipeline definitions: loading, strict validation naming the key path, CLI overrides."""

from __future__ import annotations

import pytest

from runtime_helpers import STEPS_FILE, pipeline
from streampose.config import apply_overrides, available_pipelines, load_pipeline, parse_pipeline
from streampose.errors import ConfigError

DRAW = {"type": "draw"}


def test_passthrough_by_name_and_by_path():
    by_name = load_pipeline("passthrough")
    by_path = load_pipeline(str(by_name.path))
    assert by_name.name == by_path.name == "passthrough"
    assert [s.name for s in by_name.stages] == ["render"]
    assert by_name.stages[0].steps == [{"type": "draw"}] and by_name.stages[0].batch_size == 1
    assert by_name.description


@pytest.mark.parametrize("name", available_pipelines())
def test_every_shipped_pipeline_validates(name):
    assert load_pipeline(name).stages


def test_unknown_pipeline_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown pipeline 'nope'; known: .*passthrough"):
        load_pipeline("nope")
    with pytest.raises(ConfigError, match=r"pipeline file 'missing/x.toml' not found"):
        load_pipeline("missing/x.toml")


def test_toml_syntax_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[stages]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"^bad.toml: not valid TOML: ") as info:
        load_pipeline(str(bad))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("data, message", [
    ({"stagez": [], "stages": [{"name": "a", "steps": [DRAW]}]}, "stagez: unknown key"),
    ({}, "stages: missing"),
    ({"stages": []}, "stages: expected a non-empty array"),
    ({"stages": [{"steps": [DRAW]}]}, "stages[0].name: expected a non-empty string"),
    ({"stages": [{"name": "a", "steps": [DRAW]}, {"name": "a", "steps": [DRAW]}]},
     "stages[1].name: stage name 'a' is used twice"),
    ({"stages": [{"name": "capture", "steps": [DRAW]}]}, "stages[0].name: 'capture' is reserved"),
    ({"stages": [{"name": "a", "steps": [DRAW], "batch_size": "4"}]},
     "stages[0].batch_size: expected an integer, got '4'"),
    ({"stages": [{"name": "a", "steps": [DRAW], "batch_size": 0}]}, "stages[0].batch_size: must be at least 1"),
    ({"stages": [{"name": "a", "steps": [DRAW], "bogus": 1}]}, "stages[0].bogus: unknown key"),
    ({"stages": [{"name": "a", "steps": []}]}, "stages[0].steps: expected a non-empty array"),
    ({"stages": [{"name": "a", "steps": ["draw"]}]}, "stages[0].steps[0]: expected a table"),
    ({"stages": [{"name": "a", "steps": [{"type": "nope"}]}]}, "stages[0].steps[0].type: unknown step type 'nope'"),
    ({"stages": [{"name": "a", "steps": [{"colour": 1}]}]}, "stages[0].steps[0].type: missing"),
    ({"stages": [{"name": "a", "steps": [DRAW]}, {"name": "b", "steps": [{"type": "draw", "thickness": "2"}]}]},
     "stages[1].steps[0].thickness: expected an integer, got '2'"),
    ({"stages": [{"name": "a", "steps": [{"type": "draw", "colour": 1}]}]},
     "stages[0].steps[0].colour: unknown option"),
    ({"stages": [{"name": "a", "steps": [{"type": "draw", "keypoint_threshold": 1.5}]}]},
     "stages[0].steps[0]: keypoint_threshold must be in [0, 1], got 1.5"),
    ({"ring_slots": 1, "stages": [{"name": "a", "steps": [DRAW]}]}, "ring_slots: must be at least 2"),
    ({"ring_slots": "8", "stages": [{"name": "a", "steps": [DRAW]}]}, "ring_slots: expected an integer"),
    ({"description": 3, "stages": [{"name": "a", "steps": [DRAW]}]}, "description: expected a string"),
    ({"step_modules": ["nothere/steps.py"], "stages": [{"name": "a", "steps": [DRAW]}]},
     "step_modules[0]: file 'nothere/steps.py' not found"),
])
def test_bad_definitions_name_the_key_path(data, message):
    with pytest.raises(ConfigError) as info:
        parse_pipeline(data)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def _model_pipeline():
    return pipeline(("detect", [{"type": "test_detector"}], 4),
                    ("pose", [{"type": "test_pose"}, {"type": "draw"}]))


def test_overrides_reach_the_steps_with_that_role(tmp_path):
    original = _model_pipeline()
    det, pose = tmp_path / "det.pt", tmp_path / "pose.pth"
    det.write_bytes(b"weights of a step the recogniser does not know")
    pose.write_bytes(b"weights of a step the recogniser does not know")
    p = apply_overrides(original, device="cpu", det_model=str(det), img_size=320, pose_model=str(pose))
    assert p.stages[0].steps == [{"type": "test_detector", "weights": str(det), "img_size": 320,
                                  "device": "cpu"}]
    assert p.stages[1].steps == [{"type": "test_pose", "weights": str(pose), "device": "cpu"},
                                 {"type": "draw"}]  # draw has no device option
    assert original.stages[0].steps == [{"type": "test_detector"}]  # the original is untouched
    assert p.stages[0].batch_size == 4 and p.step_modules == [STEPS_FILE]


def test_override_without_a_matching_step_is_an_error():
    with pytest.raises(ConfigError, match=r"^--det-model: pipeline 'passthrough' has no detector step"):
        apply_overrides(load_pipeline("passthrough"), det_model="x.pt")
    with pytest.raises(ConfigError, match=r"^--pose-model: pipeline 'passthrough' has no pose step"):
        apply_overrides(load_pipeline("passthrough"), pose_model="x.pth")
    with pytest.raises(ConfigError, match=r"^--img-size: "):
        apply_overrides(load_pipeline("passthrough"), img_size=320)
    assert apply_overrides(load_pipeline("passthrough"), device="cuda").stages[0].steps == [{"type": "draw"}]


def test_override_values_are_validated():
    with pytest.raises(ConfigError, match=r"^stages\[0\]\.steps\[0\]\.img_size: expected an integer, got '320'"):
        apply_overrides(_model_pipeline(), img_size="320")
