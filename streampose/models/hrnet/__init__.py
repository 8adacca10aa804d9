"""HRNet family: HRNet heatmap and SimDR top-down models, and the HigherHRNet bottom-up network.

- :mod:`.network`: the networks as specs + one builder (``HRNET_MODELS``);
- :mod:`.checkpoints`: reading the upstream checkpoint layouts and remapping their keys;
- :mod:`.heatmap_decode`, :mod:`.simdr_decode`, :mod:`.flip`, :mod:`.device_decode`: pure decoders;
- :mod:`.topdown`: the top-down adapters (:class:`~.topdown.HeatmapTopDownModel`, :class:`~.topdown.SimDRTopDownModel`).
"""

from __future__ import annotations


def build(entry, weights, *, device: str = "cpu", **options):
    """The registry builder.

    Top-down entries → a top-down adapter (options: ``flip_test``,
    ``use_dark``); bottom-up (HigherHRNet) entries → the network in eval mode.
    weights: a checkpoint, or None for random weights of the entry's layout.
    """
    if weights is None:
        from .network import HRNET_MODELS, build_network

        network = build_network(HRNET_MODELS[entry.name]).to(device).eval()
        if entry.role == "bottomup":
            return network
        from ..protocols import CropSpec
        from .topdown import HeatmapTopDownModel, SimDRTopDownModel

        crop = CropSpec(input_size_wh=network.spec.input_size_wh)
        cls = HeatmapTopDownModel if network.spec.head.kind == "heatmap" else SimDRTopDownModel
        return cls(network, crop, **options)
    if entry.role == "bottomup":
        from .checkpoints import load_pose_model

        return load_pose_model(weights, device=device)[0]
    from .topdown import load_topdown_model

    return load_topdown_model(weights, device=device, **options)
