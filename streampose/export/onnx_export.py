"""Exporting a model's network to ONNX, checked, with the opset recorded.

Only the network is exported: the decoders stay ours (numpy / torch, see the
model families), so any backend gives the same keypoints from the same raw
outputs. Detectors export their network with the box decoding of the head
and leave confidence filtering and NMS outside; pose models export heatmaps,
SimDR vectors or MoveNet's maps, with a dynamic batch axis.

The exporter is torch's TorchScript-based ``torch.onnx.export`` (``dynamo=False``:
needs no onnxscript). Every file is checked with ``onnx.checker`` and carries
``streampose.*`` metadata: the model, the input shape, the output structure.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: the ONNX opset written (ONNX Runtime >= 1.13 and OpenVINO >= 2022.3 read it).
OPSET = 17
INPUT_NAME = "input"


@dataclass(frozen=True)
class ExportedModel:
    """An exported network: ``data`` (the ONNX bytes), its opset, input shape (batch first,
    dynamic when ``dynamic_batch``), output names, and whether the torch network returned a
    tuple/list (``output_is_sequence``) so a backend can give the same structure back."""

    data: bytes
    opset: int
    input_shape: tuple[int, ...]
    output_names: tuple[str, ...]
    output_is_sequence: bool
    dynamic_batch: bool

    def save(self, path: str | Path) -> Path:
        """Write the file; a partial file never has the final name, and none is left on failure."""
        from ..io.atomic import discard, partial_path, publish

        path = Path(path)
        partial = partial_path(path)
        try:
            partial.write_bytes(self.data)
            publish(partial, path)
        except BaseException:
            discard(partial)
            raise
        return path


def export_network(network: Any, input_shape: tuple[int, ...], *, dynamic_batch: bool = True,
                   opset: int = OPSET, model_name: str = "") -> ExportedModel:
    """Export a torch network (eval mode, CPU float32 copy) for inputs of ``input_shape`` (B, C, H, W).

    Raises ExportError (one line) when torch cannot export it or the checker refuses the file.
    """
    import onnx
    import torch

    from ..errors import ExportError

    inner = getattr(network, "inner", network)  # an AcceleratedNetwork exports its fp32 network
    cpu_net = _cpu_float_copy(inner)
    example = torch.zeros(input_shape, dtype=torch.float32)
    with torch.inference_mode():
        reference = cpu_net(example)
    is_sequence = isinstance(reference, (tuple, list))
    n_outputs = len(reference) if is_sequence else 1
    output_names = tuple(f"output{i}" for i in range(n_outputs))
    dynamic_axes = {INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in output_names}} if dynamic_batch else None
    buffer = io.BytesIO()
    try:
        torch.onnx.export(cpu_net, (example,), buffer, input_names=[INPUT_NAME], output_names=list(output_names),
                          dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True, dynamo=False)
    except Exception as e:  # noqa: BLE001 - torch raises many types; one line for the user
        raise ExportError(f"torch could not export {model_name or type(inner).__name__} to ONNX: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in (("streampose.model", model_name), ("streampose.input_shape", json.dumps(list(input_shape))),
                       ("streampose.output_is_sequence", json.dumps(is_sequence)), ("streampose.opset", str(opset))):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the ONNX file of {model_name} fails onnx.checker: {str(e).splitlines()[0]}") from e
    return ExportedModel(model.SerializeToString(), opset, tuple(input_shape), output_names, is_sequence,
                         dynamic_batch)


def _cpu_float_copy(network):
    import copy

    import torch

    net = copy.deepcopy(network).to("cpu").float().eval()
    # channels-last weights export fine, but a contiguous copy keeps the graph free of layout ops.
    return net.to(memory_format=torch.contiguous_format)
