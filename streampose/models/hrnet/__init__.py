"""HRNet family: HRNet heatmap and SimDR top-down models, and the network HigherHRNet shares.

- :mod:`.network`: the networks as specs + one builder (``HRNET_MODELS``), HigherHRNet's included
  (its decoder and adapter are the :mod:`streampose.models.higherhrnet` family);
- :mod:`.checkpoints`: reading the upstream checkpoint layouts (top-down and HigherHRNet) and
  remapping their keys;
- :mod:`.heatmap_decode`, :mod:`.simdr_decode`, :mod:`.flip`, :mod:`.device_decode`: pure decoders;
- :mod:`.topdown`: the top-down adapters (:class:`~.topdown.HeatmapTopDownModel`, :class:`~.topdown.SimDRTopDownModel`).
"""

from __future__ import annotations


def build(entry, weights, *, device: str = "cpu", **options):
    """The registry builder: a top-down adapter for ``entry`` (options: ``flip_test``, ``use_dark``).

    weights: a checkpoint, or None for random weights of the entry's layout.
    """
    if weights is None:
        from ..protocols import CropSpec
        from .network import HRNET_MODELS, build_network
        from .topdown import HeatmapTopDownModel, SimDRTopDownModel

        network = build_network(HRNET_MODELS[entry.name]).to(device).eval()
        crop = CropSpec(input_size_wh=network.spec.input_size_wh)
        cls = HeatmapTopDownModel if network.spec.head.kind == "heatmap" else SimDRTopDownModel
        return cls(network, crop, **options)
    from .topdown import load_topdown_model

    return load_topdown_model(weights, device=device, **options)
