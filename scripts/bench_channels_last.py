"""Channels-last (NHWC) against the default NCHW layout for every CPU model, side by side,
and batch norms folded into the convolutions on top of it.

For each network (HRNet-w32 256x192 and HigherHRNet-w32 512 with the golden recipe
weights in the official layout, real YOLOv5n, the bundled YOLOX detector and MoveNet
Lightning), at the batch its pipeline step runs: milliseconds per forward in fp32 NCHW,
fp32 NHWC, fp32 NHWC with batch norms folded (the CPU default of the steps; a network
without batch norms left shows the same as NHWC), and, where the CPU has native bf16,
bf16 NCHW / NHWC / NHWC folded; variants alternate
round by round (median of ``--rounds``), so a shared machine's load hits them alike.
Also prints the largest output difference of NHWC against NCHW in fp32, relative to the
output's largest magnitude (the golden "net" tolerance is 1e-4).

    python scripts/bench_channels_last.py --rounds 7
    python scripts/bench_channels_last.py --only yolox --yolox-sizes 192,256,320 --threads 1 --rounds 40
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

SHARED = REPO_ROOT.parent / "shared"


def recipe_network(model: str, folder: Path):
    """The official-layout network of ``recipe_<model>.json`` loaded through our loader."""
    from scripts.make_recipe_weights import load_layout, recipe_state_dict, to_torch
    from streampose.models.hrnet.checkpoints import load_pose_model

    path = folder / f"{model}.pth"
    torch.save(to_torch(recipe_state_dict(load_layout(SHARED / "golden" / f"recipe_{model}.json"))), path)
    network, _ = load_pose_model(path, device=torch.device("cpu"))
    return network.eval()


def networks(folder: Path, yolox_sizes: list[int] = (192,),
             only: list[str] | None = None) -> dict[str, tuple[torch.nn.Module, tuple[int, ...]]]:
    """name → (fp32 NCHW network, input shape at the step's usual batch)."""
    from streampose.models import registry
    from streampose.models.yolov5.detector import YoloV5Detector

    found = {"HRNet-w32 256x192 (8 crops)": (recipe_network("pose_hrnet_w32_256x192", folder), (8, 3, 256, 192)),
             "HigherHRNet-w32 512 (1 frame)": (recipe_network("pose_higher_hrnet_w32_512", folder),
                                                (1, 3, 512, 896))}
    yolov5n = SHARED / "weights" / "yolov5n.pt"
    if yolov5n.is_file():
        detector = YoloV5Detector.from_checkpoint(yolov5n, device="cpu")
        found["YOLOv5n 640 (1 frame, 384x640)"] = (detector.network, (1, 3, 384, 640))
    if registry.get("light_person_detector_192").present:
        yolox = registry.build("light_person_detector_192")
        for size in yolox_sizes:
            found[f"bundled YOLOX {size} (1 frame)"] = (yolox.net, (1, 3, size, size))
    if registry.get("movenet_lightning").present:
        movenet = registry.build("movenet_lightning")
        found["MoveNet Lightning (16 crops)"] = (movenet.network, (16, 3, 192, 192))
    return {name: v for name, v in found.items() if not only or any(o.lower() in name.lower() for o in only)}


def plain(network: torch.nn.Module) -> torch.nn.Module:
    """An NCHW copy (some adapters convert their network to channels-last when loading)."""
    return copy.deepcopy(network).to(memory_format=torch.contiguous_format)


def largest_difference(a, b) -> float:
    """max |a - b| / max |a| over every output tensor."""
    outs_a = a if isinstance(a, (tuple, list)) else [a]
    outs_b = b if isinstance(b, (tuple, list)) else [b]
    worst = 0.0
    for x, y in zip(outs_a, outs_b):
        x, y = x.float(), y.float()
        worst = max(worst, float((x - y).abs().max() / x.abs().max().clamp_min(1e-12)))
    return worst


def measure(name: str, network: torch.nn.Module, shape: tuple[int, ...], rounds: int, bf16: bool) -> dict:
    from streampose.gpu.acceleration import accelerate_network
    from streampose.gpu.batchnorm_folding import fold_batchnorm

    nchw = plain(network)
    folded = copy.deepcopy(nchw)
    fold_batchnorm(folded)
    x = torch.randn(*shape)
    variants = {"fp32 NCHW": nchw,
                "fp32 NHWC": accelerate_network(copy.deepcopy(nchw), channels_last=True),
                "fp32 NHWC folded": accelerate_network(copy.deepcopy(folded), channels_last=True)}
    if bf16:
        variants["bf16 NCHW"] = accelerate_network(nchw, precision="bf16")
        variants["bf16 NHWC"] = accelerate_network(copy.deepcopy(nchw), precision="bf16", channels_last=True)
        variants["bf16 NHWC folded"] = accelerate_network(copy.deepcopy(folded), precision="bf16", channels_last=True)
    times: dict[str, list[float]] = {k: [] for k in variants}
    with torch.inference_mode():
        difference = largest_difference(nchw(x), variants["fp32 NHWC"](x))
        for net in variants.values():
            net(x)  # warm-up: oneDNN picks and caches its kernels
        for _ in range(rounds):
            for key, net in variants.items():
                start = time.perf_counter()
                net(x)
                times[key].append(time.perf_counter() - start)
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    base = ms["fp32 NCHW"]
    row = " | ".join(f"{ms[k]:.0f} ({base / ms[k]:.2f}x)" for k in variants)
    print(f"| {name} | {row} | {difference:.1e} |", flush=True)
    return {"ms": ms, "nhwc_vs_nchw_difference": difference}


def main(argv: list[str] | None = None) -> int:
    from streampose.cli_args import name_list, positive_int_list
    from streampose.device import cpu_bf16_support

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per variant (median)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--yolox-sizes", type=positive_int_list, default=[192],
                        help="input sizes of the bundled YOLOX rows, comma-separated (default 192)")
    parser.add_argument("--only", type=name_list, help="rows whose name contains one of these, comma-separated "
                                                       "(e.g. yolox,movenet)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16 = cpu_bf16_support() is not None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16: {cpu_bf16_support() or 'no'}")
    columns = ["fp32 NCHW", "fp32 NHWC", "fp32 NHWC folded"] + (["bf16 NCHW", "bf16 NHWC", "bf16 NHWC folded"]
                                                                if bf16 else [])
    print("| model | " + " | ".join(f"{c} ms (vs fp32 NCHW)" for c in columns) + " | NHWC - NCHW (fp32, rel.) |")
    print("|---|" + "---:|" * (len(columns) + 1))
    with tempfile.TemporaryDirectory(prefix="bench_channels_last_") as folder:
        for name, (network, shape) in networks(Path(folder), args.yolox_sizes, args.only).items():
            measure(name, network, shape, args.rounds, bf16)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
