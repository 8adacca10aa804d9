"""MoveNet (Google): network (:mod:`.network`), in-graph decoding (:mod:`.decode`), the int8-faithful
network (:mod:`.int8`) and the top-down adapter (:mod:`.topdown`); MultiPose: its decoding
(:mod:`.multipose_decode`) and bottom-up adapter (:mod:`.multipose`)."""

from __future__ import annotations


def build(entry, weights, *, device: str = "cpu", **options):
    """The registry builder: a :class:`~.topdown.MoveNetTopDownModel` for ``entry``.

    weights: a converted state dict, or None for random weights of the entry's variant.
    """
    from .topdown import MoveNetTopDownModel, load_movenet_topdown

    variant = entry.name.removeprefix("movenet_")
    if weights is None:
        import torch

        from .network import build_movenet

        return MoveNetTopDownModel(build_movenet(variant).to(torch.device(device)), variant, **options)
    return load_movenet_topdown(weights, device=device, **options)


def build_multipose(entry, weights, *, device: str = "cpu", **options):
    """The registry builder of MultiPose entries: a :class:`~.multipose.MoveNetMultiPoseModel`.

    weights: a converted state dict, or None for random weights of the release's layout;
    options: ``input_size``, ``min_pose_score``.
    """
    from .multipose import MoveNetMultiPoseModel, load_movenet_multipose

    if weights is None:
        import torch

        from .network import build_movenet_multipose

        return MoveNetMultiPoseModel(build_movenet_multipose("lightning").to(torch.device(device)), **options)
    return load_movenet_multipose(weights, device=device, **options)
