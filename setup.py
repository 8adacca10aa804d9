"""Package layout that pyproject.toml cannot state: the top-level ``weights/`` and ``pipelines/``
folders of the repository become the package data folders ``streampose/weights`` and
``streampose/pipelines`` of an installed streampose (everything else is in pyproject.toml).

Only the bundled weights go in (not whatever else a user downloaded into ``weights/``);
``tests/test_packaging.py`` checks this list against the model registry.
"""

from setuptools import find_packages, setup

BUNDLED_WEIGHTS = [
    "README.md",
    "LICENSE-Apache-2.0.txt",
    "light_person_detector_192.pth",
    "yolox_nano_416.pth",
    "movenet_lightning.pth",
    "movenet_lightning_quant.pth",
    "movenet_thunder.pth",
    "movenet_multipose_lightning.pth",
    "LICENSE-MIT-human-models.txt",
]

setup(
    packages=find_packages(include=["streampose", "streampose.*"]) + ["streampose.weights", "streampose.pipelines"],
    package_dir={"streampose.weights": "weights", "streampose.pipelines": "pipelines"},
    package_data={"streampose.weights": BUNDLED_WEIGHTS, "streampose.pipelines": ["*.toml"]},
)
