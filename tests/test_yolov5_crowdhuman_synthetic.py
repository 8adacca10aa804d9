"""A v4-era CrowdHuman YOLOv5m checkpoint, built here the way yolov5 pickles it, loads and runs.

The file is made like deepakcrk/yolov5-crowdhuman's ``crowdhuman_yolov5m.pt``
(../shared/checkpoint_formats/yolov5m_nc2_crowdhuman.json: keys, shapes, anchors,
names, pickled classes): stand-in ``models.yolo`` / ``models.common`` modules are
put in ``sys.modules`` only while ``torch.save`` runs, so the pickle names those
classes exactly as the real file does; they are gone before we load it. The
stand-in classes also carry a v4-style forward (``anchor_grid`` in pixels), the
reference our rebuilt network must reproduce.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from streampose.models.yolov5.checkpoint import load_yolov5_checkpoint  # noqa: E402
from streampose.models.yolov5.detector import YoloV5Detector  # noqa: E402
from streampose.models.yolov5.network import network_from_checkpoint  # noqa: E402

# yolov5 v4.0 models/yolov5m.yaml with nc set to 2, as Model.__init__ stores it.
YAML = {
    "nc": 2, "depth_multiple": 0.67, "width_multiple": 0.75,
    "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
    "backbone": [[-1, 1, "Focus", [64, 3]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
                 [-1, 1, "Conv", [256, 3, 2]], [-1, 9, "C3", [256]], [-1, 1, "Conv", [512, 3, 2]],
                 [-1, 9, "C3", [512]], [-1, 1, "Conv", [1024, 3, 2]], [-1, 1, "SPP", [1024, [5, 9, 13]]],
                 [-1, 3, "C3", [1024, False]]],
    "head": [[-1, 1, "Conv", [512, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
             [[-1, 6], 1, "Concat", [1]], [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [256, 1, 1]],
             [-1, 1, "nn.Upsample", [None, 2, "nearest"]], [[-1, 4], 1, "Concat", [1]],
             [-1, 3, "C3", [256, False]], [-1, 1, "Conv", [256, 3, 2]], [[-1, 14], 1, "Concat", [1]],
             [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [512, 3, 2]], [[-1, 10], 1, "Concat", [1]],
             [-1, 3, "C3", [1024, False]], [[17, 20, 23], 1, "Detect", ["nc", "anchors"]]],
}
STRIDES = (8.0, 16.0, 32.0)


def _fake_yolov5_modules():
    """Stand-ins for yolov5 v4's ``models.common`` / ``models.yolo`` (attribute names as pickled)."""
    common = types.ModuleType("models.common")
    yolo = types.ModuleType("models.yolo")

    class Conv(nn.Module):
        def __init__(self, c1, c2, k=1, s=1):
            super().__init__()
            self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
            self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
            self.act = nn.SiLU()

        def forward(self, x):
            return self.act(self.bn(self.conv(x)))

    class Focus(nn.Module):
        def __init__(self, c1, c2, k=1):
            super().__init__()
            self.conv = Conv(c1 * 4, c2, k)

        def forward(self, x):
            return self.conv(torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1))

    class Bottleneck(nn.Module):
        def __init__(self, c1, c2, shortcut=True):
            super().__init__()
            self.cv1 = Conv(c1, c2, 1)
            self.cv2 = Conv(c2, c2, 3)
            self.add = shortcut and c1 == c2

        def forward(self, x):
            return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))

    class C3(nn.Module):
        def __init__(self, c1, c2, n=1, shortcut=True):
            super().__init__()
            c_ = c2 // 2
            self.cv1, self.cv2, self.cv3 = Conv(c1, c_), Conv(c1, c_), Conv(2 * c_, c2)
            self.m = nn.Sequential(*[Bottleneck(c_, c_, shortcut) for _ in range(n)])

        def forward(self, x):
            return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))

    class SPP(nn.Module):
        def __init__(self, c1, c2, k=(5, 9, 13)):
            super().__init__()
            c_ = c1 // 2
            self.cv1, self.cv2 = Conv(c1, c_), Conv(c_ * (len(k) + 1), c2)
            self.m = nn.ModuleList([nn.MaxPool2d(x, 1, x // 2) for x in k])

        def forward(self, x):
            x = self.cv1(x)
            return self.cv2(torch.cat([x] + [m(x) for m in self.m], 1))

    class Concat(nn.Module):
        def __init__(self, d=1):
            super().__init__()
            self.d = d

        def forward(self, x):
            return torch.cat(x, self.d)

    class Detect(nn.Module):
        def __init__(self, nc, anchors_px, ch):
            super().__init__()
            self.nc, self.no, self.nl, self.na = nc, nc + 5, len(anchors_px), len(anchors_px[0]) // 2
            self.grid = [torch.zeros(1)] * self.nl
            a = torch.tensor(anchors_px, dtype=torch.float32).view(self.nl, -1, 2)
            self.register_buffer("anchors", a)
            self.register_buffer("anchor_grid", a.clone().view(self.nl, 1, -1, 1, 1, 2))
            self.m = nn.ModuleList(nn.Conv2d(x, self.no * self.na, 1) for x in ch)
            self.export = False

        def forward(self, xs):
            z = []
            for i in range(self.nl):
                x = self.m[i](xs[i])
                bs, _, ny, nx = x.shape
                x = x.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
                yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
                grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).float()
                y = x.sigmoid()
                y[..., 0:2] = (y[..., 0:2] * 2.0 - 0.5 + grid) * self.stride[i]
                y[..., 2:4] = (y[..., 2:4] * 2) ** 2 * self.anchor_grid[i]
                z.append(y.view(bs, -1, self.no))
            return torch.cat(z, 1)

    class Model(nn.Module):
        def __init__(self, layers, save):
            super().__init__()
            self.yaml = json.loads(json.dumps(YAML))
            self.model = nn.Sequential(*layers)
            self.save = save

        def forward(self, x):
            y = []
            for m in self.model:
                if m.f != -1:
                    x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
                x = m(x)
                y.append(x if m.i in self.save else None)
            return x

    for cls in (Conv, Focus, Bottleneck, C3, SPP, Concat):
        cls.__module__, cls.__qualname__ = "models.common", cls.__name__
        setattr(common, cls.__name__, cls)
    for cls in (Detect, Model):
        cls.__module__, cls.__qualname__ = "models.yolo", cls.__name__
        setattr(yolo, cls.__name__, cls)
    return common, yolo


def _build_v4_yolov5m(common, yolo, anchors_grid: torch.Tensor) -> nn.Module:
    """yolov5m (v4.0) with 2 classes, channels written out (not derived by our parser)."""
    c = common
    layers = [
        c.Focus(3, 48, 3), c.Conv(48, 96, 3, 2), c.C3(96, 96, 2), c.Conv(96, 192, 3, 2), c.C3(192, 192, 6),
        c.Conv(192, 384, 3, 2), c.C3(384, 384, 6), c.Conv(384, 768, 3, 2), c.SPP(768, 768), c.C3(768, 768, 2, False),
        c.Conv(768, 384, 1, 1), nn.Upsample(None, 2, "nearest"), c.Concat(1), c.C3(768, 384, 2, False),
        c.Conv(384, 192, 1, 1), nn.Upsample(None, 2, "nearest"), c.Concat(1), c.C3(384, 192, 2, False),
        c.Conv(192, 192, 3, 2), c.Concat(1), c.C3(384, 384, 2, False), c.Conv(384, 384, 3, 2), c.Concat(1),
        c.C3(768, 768, 2, False), yolo.Detect(2, YAML["anchors"], (192, 384, 768)),
    ]
    rows = YAML["backbone"] + YAML["head"]
    for i, (layer, row) in enumerate(zip(layers, rows)):
        layer.i, layer.f, layer.type = i, row[0], f"models.common.{row[2]}"
    model = yolo.Model(layers, save=[4, 6, 10, 14, 17, 20, 23])
    detect = layers[-1]
    detect.stride = torch.tensor(STRIDES)
    # Model.__init__ stores anchors in grid units; anchor_grid stays in pixels (v4).
    detect.anchors.copy_(anchors_grid)
    detect.anchor_grid.copy_((anchors_grid * detect.stride.view(-1, 1, 1)).view(3, 1, 3, 1, 1, 2))
    model.stride = detect.stride
    model.names = ["person", "head"]
    model.nc = 2
    model.hyp = {"lr0": 0.01, "anchor_t": 4.0}
    model.gr = 1.0

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (1.0 / fan_in) ** 0.5)
                if module.bias is not None:  # Detect: objectness biased up so boxes come out
                    bias = torch.randn(module.bias.shape, generator=generator) * 0.5
                    bias.view(3, 7)[:, 4] += 1.0
                    module.bias.copy_(bias)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
                module.running_mean.normal_(0.0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
    return model.eval()


def _strip_newer_torch_attributes(model: nn.Module) -> None:
    """Pickles from older torch lack attributes newer torch adds; drop some to be sure we don't need them."""
    for module in model.modules():
        for name in ("_non_persistent_buffers_set", "_forward_pre_hooks_with_kwargs", "_forward_hooks_with_kwargs",
                     "_forward_hooks_always_called", "_state_dict_pre_hooks", "recompute_scale_factor",
                     "padding_mode"):
            module.__dict__.pop(name, None)


@pytest.fixture(scope="module")
def manifest(shared_dir):
    return json.loads((shared_dir / "checkpoint_formats" / "yolov5m_nc2_crowdhuman.json").read_text())


@pytest.fixture(scope="module")
def crowdhuman_file(manifest, tmp_path_factory):
    """(path, reference raw output on INPUT, anchors written) of the synthetic checkpoint."""
    anchors = torch.tensor(manifest["info"]["anchors_grid_units"], dtype=torch.float32)
    saved = {name: sys.modules.get(name) for name in ("models", "models.common", "models.yolo")}
    common, yolo = _fake_yolov5_modules()
    package = types.ModuleType("models")
    package.common, package.yolo = common, yolo
    sys.modules.update({"models": package, "models.common": common, "models.yolo": yolo})
    try:
        model = _build_v4_yolov5m(common, yolo, anchors)
        state = model.state_dict()
        expected = manifest["state_dict"]
        assert list(state) == list(expected), "the stand-in model must have the manifest's keys, in order"
        assert all(list(state[k].shape) == expected[k]["shape"] for k in state)
        # Reference output, from the same fp16-rounded weights the file holds.
        model.half().float()
        with torch.no_grad():
            reference = model(INPUT)
        model.half()
        _strip_newer_torch_attributes(model)
        path = tmp_path_factory.mktemp("crowdhuman") / "crowdhuman_yolov5m.pt"
        # As yolov5 v4 train.py saves it (torch >= 1.6: zip format).
        torch.save({"epoch": -1, "best_fitness": np.array([0.61]), "training_results": "0/99 ...",
                    "model": model, "optimizer": None, "wandb_id": None}, path)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    assert "models.yolo" not in sys.modules
    return path, reference, anchors


INPUT = torch.rand(2, 3, 128, 192, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def loaded(crowdhuman_file):
    path, _, _ = crowdhuman_file
    return load_yolov5_checkpoint(path)


def test_checkpoint_recovers_yaml_names_anchors_strides(crowdhuman_file, loaded, manifest):
    _, _, anchors = crowdhuman_file
    assert loaded.names == ("person", "head")
    assert loaded.strides == tuple(manifest["info"]["stride"])
    assert torch.allclose(loaded.anchors, anchors.half().float())
    assert loaded.bn_eps == pytest.approx(1e-3)
    assert loaded.yaml["backbone"][0][2] == "Focus" and loaded.yaml["backbone"][8][2] == "SPP"
    assert set(loaded.state_dict) == set(manifest["state_dict"])


@pytest.mark.parametrize("fuse", [False, True])
def test_rebuilt_network_reproduces_the_pickled_model(crowdhuman_file, loaded, fuse):
    _, reference, _ = crowdhuman_file
    network = network_from_checkpoint(loaded)
    if fuse:
        network.fuse()
    with torch.no_grad():
        ours = network(INPUT)
    assert ours.shape == reference.shape == (2, 3 * (16 * 24 + 8 * 12 + 4 * 6), 7)
    box_err = (ours[..., :4] - reference[..., :4]).abs().max().item()
    prob_err = (ours[..., 4:] - reference[..., 4:]).abs().max().item()
    assert box_err <= 1e-4 * reference[..., :4].abs().max().item()
    assert prob_err <= 1e-4


def _rows(d) -> np.ndarray:
    table = np.hstack([d.xyxy, d.scores[:, None], d.class_ids[:, None]])
    return table[np.lexsort(table.T[::-1])]  # canonical order: equal scores may come in any order


def test_person_class_is_the_one_kept(loaded):
    # Default classes=("person",), resolved by name against the file's names.
    detector = YoloV5Detector(network_from_checkpoint(loaded).fuse(), loaded.names, img_size=192,
                              max_detections=1000)
    assert detector.names == ("person", "head") and detector.class_ids == (0,)
    image = (np.random.default_rng(0).random((150, 220, 3)) * 255).astype(np.uint8)
    x, canvas_hw = detector.preprocess([image])
    raw = detector.forward(x)
    found = detector.postprocess(raw, canvas_hw, [image.shape[:2]])[0]
    all_classes = YoloV5Detector(detector.network, detector.names, classes=None, img_size=192, max_detections=1000)
    everything = all_classes.postprocess(raw, canvas_hw, [image.shape[:2]])[0]
    assert set(everything.class_ids.tolist()) == {0, 1}
    assert len(found) > 0 and set(found.class_ids.tolist()) == {0}
    np.testing.assert_allclose(_rows(found), _rows(everything.select(everything.class_ids == 0)), atol=1e-3)
