"""MoveNet (Google): network (:mod:`.network`), in-graph decoding (:mod:`.decode`), the int8-faithful
network (:mod:`.int8`) and the top-down adapter (:mod:`.topdown`)."""

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
