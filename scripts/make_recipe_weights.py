"""Deterministic "recipe" weights for the HRNet-family goldens, in the official key layout.

The goldens in ``../shared/golden`` were produced by the official code with
weights drawn by a documented recipe (``weight_recipe`` in any pose golden
json, or ``INDEX.md``); this module is an independent port of that recipe so
tests can rebuild the same weights, save them in an upstream layout and load
them through our checkpoint loader. It depends on numpy only (torch only to
write a ``.pth``), never on ``streampose``.

Recipe, per state-dict key K with shape S: a fresh ``RandomState(crc32(K))``;
values drawn in float64, cast to float32. A key is a BatchNorm key when
``<K without last component>.running_mean`` is a key too. First match wins:
num_batches_tracked → int64 0; running_mean → N(0,1)*0.01; running_var →
U(0.5, 1.5); BN weight → U(0.5, 1.5); BN bias → N(0,1)*0.01; ndim >= 2 →
N(0,1)*sqrt(0.4 / fan_in) (fan_in = prod(S[1:]); ConvTranspose2d weights
``deconv_layers.<i>.0.0.weight`` [in, out, kh, kw]: S[0]*S[2]*S[3]/4);
anything else → N(0,1)*0.01.

Usage (write recipe weights for a manifest from ``../shared/checkpoint_formats``
or a ``recipe_*.json`` from ``../shared/golden``)::

    python scripts/make_recipe_weights.py ../shared/golden/recipe_pose_hrnet_w32_256x192.json out.pth
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import zlib
from pathlib import Path

import numpy as np

RUNNING_MEAN_STD = 0.01
UNIFORM_RANGE = (0.5, 1.5)
BN_BIAS_STD = 0.01
WEIGHT_GAIN = 0.4
OTHER_BIAS_STD = 0.01
DECONV_FAN_IN_DIVISOR = 4
_DECONV_WEIGHT = re.compile(r"^deconv_layers\.\d+\.0\.0\.weight$")


def recipe_rule(key: str, shape: tuple[int, ...], keys: set[str] | frozenset[str]) -> str:
    """Which recipe rule applies to ``key`` (names as in the golden ``recipe_*.json``)."""
    parent, _, last = key.rpartition(".")
    is_bn = f"{parent}.running_mean" in keys
    if key.endswith("num_batches_tracked"):
        return "num_batches_tracked"
    if key.endswith("running_mean"):
        return "running_mean"
    if key.endswith("running_var"):
        return "running_var"
    if is_bn and last == "weight":
        return "bn_weight"
    if is_bn and last == "bias":
        return "bn_bias"
    if len(shape) >= 2:
        return "deconv_weight" if _DECONV_WEIGHT.match(key) else "conv_or_linear_weight"
    return "other_bias"


def fan_in(key: str, shape: tuple[int, ...]) -> float:
    if _DECONV_WEIGHT.match(key):
        return float(np.prod(np.array([shape[0], shape[2], shape[3]], dtype=np.float64))) / DECONV_FAN_IN_DIVISOR
    return float(np.prod(np.array(shape[1:], dtype=np.float64)))


def recipe_tensor(key: str, shape: tuple[int, ...], keys: set[str] | frozenset[str]) -> np.ndarray:
    """The recipe value of one key: float32 array of ``shape`` (int64 scalar for num_batches_tracked)."""
    rule = recipe_rule(key, shape, keys)
    if rule == "num_batches_tracked":
        return np.array(0, dtype=np.int64)
    rs = np.random.RandomState(zlib.crc32(key.encode("utf-8")))
    if rule in ("running_var", "bn_weight"):
        values = rs.uniform(UNIFORM_RANGE[0], UNIFORM_RANGE[1], shape)
    elif rule in ("running_mean",):
        values = rs.standard_normal(shape) * RUNNING_MEAN_STD
    elif rule == "bn_bias":
        values = rs.standard_normal(shape) * BN_BIAS_STD
    elif rule in ("conv_or_linear_weight", "deconv_weight"):
        values = rs.standard_normal(shape) * math.sqrt(WEIGHT_GAIN / fan_in(key, shape))
    else:
        values = rs.standard_normal(shape) * OTHER_BIAS_STD
    return np.asarray(values, dtype=np.float64).astype(np.float32)


def recipe_state_dict(layout: list[tuple[str, tuple[int, ...]]]) -> dict[str, np.ndarray]:
    """Recipe values for an official layout ``[(key, shape), ...]``, in that order."""
    keys = frozenset(k for k, _ in layout)
    return {key: recipe_tensor(key, tuple(shape), keys) for key, shape in layout}


def load_layout(path: str | Path) -> list[tuple[str, tuple[int, ...]]]:
    """``[(key, shape)]`` from a checkpoint-format manifest (``state_dict``) or a recipe json (``entries``)."""
    data = json.loads(Path(path).read_text())
    if "entries" in data:
        return [(e["key"], tuple(e["shape"])) for e in data["entries"]]
    return [(k, tuple(v["shape"])) for k, v in data["state_dict"].items()]


def recipe_sha256(state_dict: dict[str, np.ndarray]) -> str:
    """sha256 over sorted keys of (utf-8 key + C-order little-endian value bytes), as the goldens define it."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        value = np.asarray(state_dict[key])
        dtype = np.dtype("<i8") if value.dtype.kind in "iu" else np.dtype("<f4")
        digest.update(key.encode("utf-8"))
        digest.update(np.ascontiguousarray(value, dtype=dtype).tobytes())
    return digest.hexdigest()


def to_torch(state_dict: dict[str, np.ndarray]) -> dict:
    """The same values as torch tensors (for ``torch.save``)."""
    import torch

    return {k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", help="checkpoint_formats/*.json or golden/recipe_*.json")
    parser.add_argument("output", help=".pth file to write (plain state dict, official key layout)")
    parser.add_argument("--legacy", action="store_true", help="write the legacy (pre-zip) torch serialization")
    args = parser.parse_args(argv)
    import torch

    state_dict = recipe_state_dict(load_layout(args.manifest))
    torch.save(to_torch(state_dict), args.output, _use_new_zipfile_serialization=not args.legacy)
    print(f"{args.output}: {len(state_dict)} keys, sha256 {recipe_sha256(state_dict)}")


if __name__ == "__main__":
    main()
