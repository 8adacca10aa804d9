"""``streampose export MODEL --format onnx|engine --output FILE``: a model's network as a file.

MODEL is a registry name (``streampose models`` lists them; its weights must
be present) or a checkpoint path (recognised by its contents). The file holds
the network only: detectors without confidence filtering and NMS, pose models
without decoding (see :mod:`streampose.export.onnx_export`); pose models get a
dynamic batch axis, detectors a square input of ``--img-size`` and a dynamic
batch axis. Prints the file, the opset and the input and output shapes.

``--format engine`` builds a TensorRT engine from the ONNX export (``--fp16``
for half precision); it needs the ``tensorrt`` package and a CUDA device.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from ..errors import UserError

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streampose export", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", metavar="MODEL", help="registry name (see `streampose models`) or checkpoint path")
    parser.add_argument("--format", choices=("onnx", "engine"), default="onnx", help="default: onnx")
    parser.add_argument("--output", required=True, metavar="FILE", help="file to write (never an existing input)")
    parser.add_argument("--img-size", type=int, metavar="N", help="detectors: square input size (default: the model's)")
    parser.add_argument("--batch", type=int, default=1, metavar="N",
                        help="example batch of the export; the batch axis stays dynamic (default 1)")
    parser.add_argument("--fp16", action="store_true", help="engine: build in half precision")
    return parser


def load_model(model: str) -> tuple[Any, Any, str]:
    """(network, input shape without batch, registry name) of a registry name or a checkpoint path."""
    from ..models import registry
    from ..models.recognise import recognise
    from ..paths import resolve_path

    path = resolve_path(model)
    if model in registry.MODELS:
        entry = registry.get(model)
        built = registry.build(model)
    elif path.is_file():
        found = recognise(path)
        if found is None:
            raise UserError(f"{model}: not a checkpoint of a known model family; give a registry name "
                            "(see `streampose models`) or a YOLOv5, YOLOX, HRNet, SimDR, HigherHRNet or MoveNet file")
        entry = registry.get(found.model_name)
        built = registry.build(found.model_name, weights=path)
    else:
        raise UserError(f"{model}: no such model or file; give a registry name (see `streampose models`) "
                        "or a checkpoint path")
    network = getattr(built, "network", None) or getattr(built, "net", None) or built
    return network, entry, entry.name


def input_shape(network: Any, entry: Any, img_size: int | None) -> tuple[int, int, int]:
    """(C, H, W) the file is made for."""
    spec = getattr(network, "spec", None)
    if entry.role == "detector":
        size = img_size or entry.input_size_wh[0]
        if size % 32:
            raise UserError(f"--img-size: must be a multiple of 32, got {size}")
        return 3, size, size
    if img_size:
        raise UserError("--img-size: only detectors take it; pose models keep their input size")
    w, h = getattr(spec, "input_size_wh", None) or entry.input_size_wh
    return 3, h, w


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv or []))
    try:
        return _export(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _export(args: argparse.Namespace) -> int:
    from ..paths import resolve_path
    from .onnx_export import export_network

    if args.batch < 1:
        raise UserError(f"--batch: must be at least 1, got {args.batch}")
    output = Path(args.output)
    if args.format == "engine":
        _check_tensorrt()
    source = resolve_path(args.model)
    if source.is_file() and output.resolve() == source.resolve():
        raise UserError(f"--output: {args.output} is the model's own checkpoint; choose another file")
    if not output.parent.is_dir():
        raise UserError(f"--output: folder {str(output.parent)!r} does not exist; create it or choose another path")
    network, entry, name = load_model(args.model)
    shape = (args.batch, *input_shape(network, entry, args.img_size))
    exported = export_network(network, shape, model_name=name)
    if args.format == "onnx":
        exported.save(output)
    else:
        build_engine(exported.data, output, shape, fp16=args.fp16)
    print(f"{output}: {name} as {args.format}, ONNX opset {exported.opset}, input (batch, {', '.join(map(str, shape[1:]))}) "
          f"float32, outputs {', '.join(exported.output_names)}")
    return 0


def _check_tensorrt() -> None:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        raise UserError("--format engine needs NVIDIA TensorRT (the tensorrt package) and a CUDA device; "
                        "use --format onnx here")
    import torch

    if not torch.cuda.is_available():
        raise UserError("--format engine needs a CUDA device; use --format onnx here")


def build_engine(onnx_data: bytes, output: Path, shape: tuple[int, ...], *, fp16: bool) -> None:
    """A serialized TensorRT engine for the ONNX network, batch 1 to 4x the example batch."""
    import tensorrt as trt

    from ..errors import ExportError
    from ..io.atomic import discard, partial_path, publish

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_data):
        raise ExportError(f"TensorRT cannot parse the ONNX export: {parser.get_error(0)}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    batch = shape[0]
    profile.set_shape(network.get_input(0).name, (1, *shape[1:]), (batch, *shape[1:]), (4 * batch, *shape[1:]))
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ExportError("TensorRT could not build the engine (see its log above)")
    partial = partial_path(output)
    try:
        partial.write_bytes(bytes(engine))
        publish(partial, output)
    except BaseException:
        discard(partial)
        raise
