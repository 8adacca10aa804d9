"""Milliseconds per person crop against crops per forward, for the top-down pose networks on this machine.

The top-down steps forward a frame batch's crops in chunks of at most ``max_batch``;
its default on each device comes from this table. HRNet-w32 256x192 (golden recipe
weights, official layout) and the bundled MoveNet Lightning run as their steps run
them on the CPU (channels-last, batch norms folded), in fp32 and, where the CPU has
native bf16, in bf16. Batch sizes alternate round by round (median of ``--rounds``),
so a shared machine's load hits them alike.

    python scripts/bench_crop_batch.py --rounds 5
    python scripts/bench_crop_batch.py --batches 4,8,16 --device cuda
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

from scripts.bench_channels_last import recipe_network  # noqa: E402


def networks(folder: Path) -> dict[str, tuple[torch.nn.Module, tuple[int, int]]]:
    """name → (fp32 network as loaded, crop height and width)."""
    from streampose.models import registry

    found = {"HRNet-w32 256x192": (recipe_network("pose_hrnet_w32_256x192", folder), (256, 192))}
    if registry.get("movenet_lightning").present:
        found["MoveNet Lightning"] = (registry.build("movenet_lightning").network, (192, 192))
    return found


def sweep(network, size_hw: tuple[int, int], batches: list[int], precision: str, device: torch.device,
          rounds: int) -> dict[int, float]:
    """Median milliseconds per crop at each batch size, the network prepared as the steps prepare it."""
    from streampose.gpu.acceleration import network_in_precision

    prepared = network_in_precision(copy.deepcopy(network).to(device), precision, device)
    inputs = {b: torch.randn(b, 3, *size_hw, device=device) for b in batches}
    times: dict[int, list[float]] = {b: [] for b in batches}
    with torch.inference_mode():
        for b in batches:
            prepared(inputs[b])  # warm-up: oneDNN / cuDNN pick and cache their kernels per shape
        for _ in range(rounds):
            for b in batches:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                prepared(inputs[b])
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[b].append((time.perf_counter() - start) / b)
    return {b: 1000 * statistics.median(v) for b, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    from streampose.cli_args import positive_int_list
    from streampose.device import cpu_bf16_support

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=positive_int_list, default=[1, 2, 4, 8, 16, 32, 64],
                        help="crops per forward, comma-separated (default 1,2,4,8,16,32,64)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per batch size (median)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precisions = ["fp32"]
    if device.type == "cpu" and cpu_bf16_support():
        precisions.append("bf16")
    elif device.type == "cuda":
        precisions.append("fp16")
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads; ms per crop (median of "
          f"{args.rounds}), the fastest batch in bold")
    print("| network | precision | " + " | ".join(str(b) for b in args.batches) + " |")
    print("|---|---|" + "---:|" * len(args.batches))
    with tempfile.TemporaryDirectory(prefix="bench_crop_batch_") as folder:
        for name, (network, size_hw) in networks(Path(folder)).items():
            for precision in precisions:
                ms = sweep(network, size_hw, args.batches, precision, device, args.rounds)
                best = min(ms, key=ms.get)
                cells = [f"**{ms[b]:.1f}**" if b == best else f"{ms[b]:.1f}" for b in args.batches]
                print(f"| {name} | {precision} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
