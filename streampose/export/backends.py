"""Running a model's network on another inference backend, behind the same call as the torch network.

A model step's ``backend`` option (``torch``, ``onnxruntime``, ``openvino``,
``tensorrt``) picks what runs the network; everything around it (crops,
letterbox, decoders, NMS) stays ours, so every backend gives the same
keypoints from the same raw outputs. :func:`on_backend` returns the network
itself for ``torch``, else a :class:`BackendNetwork`: called with a torch
tensor like the network, it returns torch tensors with the network's output
structure. The network is exported (:mod:`.onnx_export`) in memory once per
input shape (C, H, W) with a dynamic batch axis, so detectors whose letterbox
changes with the frame and bottom-up models with their frame-sized inputs work too.

Threads: a session uses the math threads the process has when it is made
(the runtime's share for the stage, see :mod:`streampose.runtime.threads`,
or the step's ``threads``).

ONNX Runtime and OpenVINO are the optional ``export`` extra
(``pip install 'streampose[export]'``); TensorRT needs its own install and a CUDA device.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ExportError

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")
#: what a step's ``backend`` option may say: a backend, or "auto" (:mod:`.backend_choice`).
BACKEND_CHOICES = ("auto", *BACKENDS)


def check_backend(backend: str, device) -> None:
    """ConfigError (one line) when ``backend`` cannot run on ``device`` here."""
    from ..device import device_type

    kind = device_type(device)
    if backend not in BACKENDS:
        raise ConfigError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return
    module = {"onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}[backend]
    import importlib.util

    if importlib.util.find_spec(module) is None:
        hint = "pip install 'streampose[export]'" if backend != "tensorrt" else "install NVIDIA TensorRT"
        raise ConfigError(f"backend: {backend} is not installed here ({hint}), or use backend = \"torch\"")
    if backend == "tensorrt" and kind != "cuda":
        raise ConfigError("backend: tensorrt needs a CUDA device; use onnxruntime or openvino on the CPU")
    if backend in ("onnxruntime", "openvino") and kind != "cpu":
        raise ConfigError(f"backend: {backend} runs on the CPU here; set device = \"cpu\" or use torch / tensorrt")


def on_backend(network: Any, backend: str, device, model_name: str = "", threads: int = 0,
               input_shape_chw: tuple[int, int, int] | None = None) -> Any:
    """``network`` for ``torch``, else a :class:`BackendNetwork` running it on ``backend``
    (made ready for ``input_shape_chw`` at once when given)."""
    check_backend(backend, device)
    if backend == "torch":
        return network
    wrapped = BackendNetwork(network, backend, model_name=model_name, threads=threads)
    if input_shape_chw is not None:
        wrapped.prepare(input_shape_chw)
    return wrapped


def prepare_network(network: Any, *, backend: str, precision: str, device, bf16_default_on_cpu: bool = False,
                    model_name: str = "", threads: int = 0, input_shape_chw: tuple[int, int, int] | None = None) -> Any:
    """What a model step runs: ``network`` in its precision on torch, or on another backend (fp32).

    backend "auto": :func:`streampose.export.backend_choice.resolve_backend` (torch
    for a precision only torch runs). Raises ConfigError (one line) for a backend
    or precision the device lacks, and for a precision other than fp32/auto on a
    backend other than torch.
    """
    from .backend_choice import resolve_backend

    backend = resolve_backend(backend, model_name, device, torch_only=precision not in ("auto", "fp32"))
    if backend == "torch":
        from ..gpu.acceleration import network_in_precision

        return network_in_precision(network, precision, device, bf16_default_on_cpu)
    if precision not in ("auto", "fp32"):
        raise ConfigError(f"precision: {precision} runs on the torch backend only; use precision = \"auto\" "
                          f"or \"fp32\" with backend = \"{backend}\"")
    return on_backend(network, backend, device, model_name, threads, input_shape_chw)


class BackendNetwork:
    """A torch network's stand-in that runs an ONNX export of it on ``backend``.

    Attributes of the torch network (``spec``, MoveNet's ``decode_rounding``)
    stay reachable. ``sessions`` holds one compiled model per input shape.
    """

    def __init__(self, network: Any, backend: str, *, model_name: str = "", threads: int = 0,
                 fp16: bool = False) -> None:
        self.torch_network = network
        self.backend = backend
        self.model_name = model_name or type(network).__name__
        self.threads = threads
        self.fp16 = fp16  # TensorRT: build the engine in half precision
        self.sessions: dict[tuple[int, ...], _Session] = {}

    def __getattr__(self, name: str):
        if name == "torch_network":  # not set yet (unpickling): never recurse
            raise AttributeError(name)
        return getattr(self.torch_network, name)

    def eval(self) -> "BackendNetwork":
        return self

    def prepare(self, input_shape_chw: tuple[int, int, int]) -> None:
        """Export and compile for inputs of this shape now (a step's ``start()``), not at the first frame."""
        key = tuple(input_shape_chw)
        if key not in self.sessions:
            self.sessions[key] = _Session.make(self, (1, *key))

    def __call__(self, x):
        import torch

        key = tuple(x.shape[1:])
        session = self.sessions.get(key)
        if session is None:
            session = self.sessions[key] = _Session.make(self, (1, *key))
        if self.backend == "tensorrt":  # inputs and outputs stay on the GPU
            tensors = session.run(x.detach().float().contiguous())
        else:
            tensors = [torch.from_numpy(o) for o in session.run(x.detach().to("cpu", torch.float32).contiguous().numpy())]
        return tuple(tensors) if session.exported.output_is_sequence else tensors[0]


class _Session:
    def __init__(self, exported, run) -> None:
        self.exported = exported
        self.run = run

    @classmethod
    def make(cls, owner: BackendNetwork, input_shape: tuple[int, ...]) -> "_Session":
        from .onnx_export import export_network

        exported = export_network(owner.torch_network, input_shape, model_name=owner.model_name)
        threads = owner.threads or _process_threads()
        log.info("%s: %s session for input %s, %d threads", owner.model_name, owner.backend, input_shape[1:], threads)
        if owner.backend == "onnxruntime":
            return cls(exported, _onnxruntime_runner(exported.data, threads))
        if owner.backend == "openvino":
            return cls(exported, _openvino_runner(exported.data, threads))
        if owner.backend == "tensorrt":
            return cls(exported, _tensorrt_runner(exported.data, input_shape, owner.fp16))
        raise ExportError(f"backend {owner.backend} cannot run exported networks in this build; "
                          "use onnxruntime or openvino, or torch")


def _process_threads() -> int:
    import torch

    return max(1, torch.get_num_threads())


def _onnxruntime_runner(data: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(x):
        return session.run(None, {input_name: x})

    return run


def _openvino_runner(data: bytes, threads: int):
    import openvino as ov

    core = ov.Core()
    with tempfile.TemporaryDirectory(prefix="streampose_ov_") as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(data)
        model = core.read_model(str(path))
        compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                     "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()

    def run(x):
        request.infer({0: x})
        return [request.get_output_tensor(i).data.copy() for i in range(len(compiled.outputs))]

    return run


#: TensorRT engines take batches up to this many inputs (the optimisation profile's maximum).
TENSORRT_MAX_BATCH = 64


def _tensorrt_runner(data: bytes, input_shape: tuple[int, ...], fp16: bool):
    """A TensorRT engine built from the ONNX export, run on torch CUDA tensors (TensorRT >= 10 API).

    Tested only where a CUDA device and TensorRT exist (scripts/gpu_check.sh).
    """
    import tensorrt as trt
    import torch

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(data):
        raise ExportError(f"TensorRT cannot parse the ONNX export: {parser.get_error(0)}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    chw = tuple(input_shape[1:])
    name = network.get_input(0).name
    profile.set_shape(name, (1, *chw), (8, *chw), (TENSORRT_MAX_BATCH, *chw))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT could not build the engine (see its log)")
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    context = engine.create_execution_context()
    outputs = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)
               if engine.get_tensor_mode(engine.get_tensor_name(i)) == trt.TensorIOMode.OUTPUT]

    def run(x):
        results = []
        for start in range(0, x.shape[0], TENSORRT_MAX_BATCH):
            chunk = x[start:start + TENSORRT_MAX_BATCH]
            context.set_input_shape(name, tuple(chunk.shape))
            context.set_tensor_address(name, chunk.data_ptr())
            out = [torch.empty(tuple(context.get_tensor_shape(o)), dtype=torch.float32, device=x.device)
                   for o in outputs]
            for o, tensor in zip(outputs, out):
                context.set_tensor_address(o, tensor.data_ptr())
            if not context.execute_async_v3(torch.cuda.current_stream(x.device).cuda_stream):
                raise ExportError("TensorRT failed to run the engine")
            results.append(out)
        return [torch.cat(parts) for parts in zip(*results)]

    return run
