"""Batch norms folded into the convolutions before them, for inference.

In eval mode a ``BatchNorm2d`` is a per-channel affine map, so when it reads the
output of one ``Conv2d`` and nothing else does, it can live in that convolution's
weight and bias: one pass over the activations fewer per layer. HRNet has a batch
norm after every convolution; folding them measured 1.08x its CPU speed on top of
channels-last (BENCHMARKS.md "Batch norm folding", ``scripts/bench_channels_last.py``).

The pairs are found by tracing the forward with ``torch.fx``; the network is then
changed in place, module by module (each folded batch norm becomes ``nn.Identity``),
so its own attributes and methods stay as they were.
"""

from __future__ import annotations

import logging
from collections import Counter

import torch
from torch import fx, nn

log = logging.getLogger(__name__)


def fold_batchnorm(network: nn.Module) -> int:
    """Fold every eval-mode ``BatchNorm2d`` that only reads one ``Conv2d``'s output into it, in place.

    Returns how many were folded: 0 when the forward cannot be traced by
    ``torch.fx`` (Python control flow on tensor values), which leaves the
    network unchanged. Outputs change only by float rounding (~1e-6 relative).
    Raises ValueError for a network in training mode (its batch norms use batch statistics).
    """
    if network.training:
        raise ValueError("fold_batchnorm: the network is in training mode; call .eval() first")
    if not any(isinstance(m, nn.BatchNorm2d) for m in network.modules()):
        return 0
    try:
        graph = fx.Tracer().trace(network)
    except (fx.proxy.TraceError, TypeError, NotImplementedError, RuntimeError, AttributeError) as e:
        log.info("batch norms of %s not folded: torch.fx cannot trace it (%s)", type(network).__name__, e)
        return 0
    modules = dict(network.named_modules())
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    pairs = []
    for node in graph.nodes:
        norm = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(norm, nn.BatchNorm2d) or not norm.track_running_stats or len(node.args) != 1:
            continue
        source = node.args[0]
        if not (isinstance(source, fx.Node) and source.op == "call_module"
                and isinstance(modules.get(source.target), nn.Conv2d)):
            continue
        # a module called twice, or a convolution whose output is also read elsewhere, must stay as it is
        if len(source.users) == 1 and calls[source.target] == 1 and calls[node.target] == 1:
            pairs.append((source.target, node.target))
    for conv_name, norm_name in pairs:
        _fold_into(modules[conv_name], modules[norm_name])
        parent_name, _, attribute = norm_name.rpartition(".")
        setattr(network.get_submodule(parent_name) if parent_name else network, attribute, nn.Identity())
    return len(pairs)


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    scale = torch.rsqrt(norm.running_var + norm.eps)
    shift = -norm.running_mean * scale
    if norm.weight is not None:
        scale = scale * norm.weight
        shift = shift * norm.weight + norm.bias
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    conv.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter(bias * scale + shift, requires_grad=False)
