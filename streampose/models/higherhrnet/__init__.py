"""HigherHRNet family: bottom-up multi-person pose, maps grouped by associative embedding.

- the network is the HRNet family's (:mod:`streampose.models.hrnet.network`:
  an HRNet backbone with the HigherHRNet deconvolution head, specs in
  ``HRNET_MODELS``), and so is the checkpoint reader
  (:func:`streampose.models.hrnet.checkpoints.load_pose_model`), which tells
  the upstream top-down and bottom-up layouts apart by their keys;
- :mod:`.resize`: the official input geometry and its inverse;
- :mod:`.aggregate`: network outputs → heatmaps and tags (flip test, scales);
- :mod:`.grouping`: the associative-embedding parser as Numba kernels, and
  ``final_preds`` back to frame pixels; :mod:`.grouping_reference`: their
  plain-Python twins;
- :mod:`.bottomup`: :class:`HigherHRNetEstimator`, the family's
  :class:`~streampose.models.protocols.BottomUpPoseModel`;
- :mod:`.synthetic`: maps rendered from known people (tests, benchmarks).

Importing this package loads nothing heavy; ``HigherHRNetEstimator`` is
resolved on first access.
"""

from __future__ import annotations

__all__ = ["HigherHRNetEstimator", "build"]


def build(entry, weights, *, device: str = "cpu", **options):
    """The registry builder: a :class:`~.bottomup.HigherHRNetEstimator` for ``entry``.

    weights: an official checkpoint, or None for random weights of the entry's
    layout; options: ``HigherHRNetEstimator.from_checkpoint``'s keyword
    options (``flip_test``, ``input_size``, grouping thresholds, ...).
    """
    from .bottomup import HigherHRNetEstimator

    if weights is not None:
        return HigherHRNetEstimator.from_checkpoint(weights, device=device, **options)
    import torch

    from ..hrnet.network import HRNET_MODELS, build_network

    torch_device = torch.device(device)
    network = build_network(HRNET_MODELS[entry.name]).to(torch_device).eval()
    return HigherHRNetEstimator.from_network(network, network.spec, source=entry.name, device=torch_device,
                                             **options)


def __getattr__(name: str):
    if name == "HigherHRNetEstimator":
        from .bottomup import HigherHRNetEstimator

        return HigherHRNetEstimator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
