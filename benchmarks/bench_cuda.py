"""CUDA (issue 17): our GPU outputs against our CPU float32 outputs, and frames/s of ours
against Meta's ``SAM2VideoPredictor`` on the same GPU and frames.

    bash benchmarks/prepare_cuda_run.sh                 # here: Meta's code + wheels in .gpu/
    # on the GPU machine, from the repository root (its python3 has torch with CUDA):
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl
    PYTHONPATH=/tmp/site:src:. python3 benchmarks/bench_cuda.py --meta-path .gpu/sam2-1.1.0

About 3-5 minutes on an H100 with the defaults (``--meta-vos`` adds Meta's max-autotune
compilation of every part, several minutes more). ``--device cpu --frames 4 --variants
sam2.1_hiera_tiny --parity-frames 3`` runs the same code on the CPU as a smoke check.

Parity. The shipped ``sam2_demo`` (trained weights, meaningful masks) on a synthetic cell
time-lapse and ``sam2.1_hiera_tiny`` with the official-layout deterministic weights of
``tests/reference_weights.py``: the same clicks (centres of the 3 largest cells on frame 0)
tracked on the CPU in float32 and on the GPU in float32 and in bfloat16 (our default on
CUDA). Per frame-object IoU against the CPU float32 masks (min, median; target >= 0.99) and
the share of the same present/absent decisions.

Speed. Random-init weights of each variant (speed does not depend on the values), 1024 px,
the frames of ``bench_tracking.SyntheticStack``, 1 and 3 objects clicked on frame 0: median
seconds per propagated frame (image encoding included; the first ``--warmup`` frames left
out; CUDA synchronised after every frame) of ours in bf16 eager, ours with the image
encoder and memory attention compiled (``model.compile``; compiled on a first pass that is
not timed), and Meta's predictor under bf16 autocast with TF32 on (as its own
``sam2/benchmark.py``), optionally with ``vos_optimized=True``. Meta gets the same frames
as JPEGs (the only input it takes).
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from bench_bf16 import cell_clicks, track  # noqa: E402
from bench_tracking import SyntheticStack  # noqa: E402

from napari_sam2.data.synthetic import make_cell_timelapse  # noqa: E402
from napari_sam2.engine import TrackingSession  # noqa: E402
from napari_sam2.model import build_model, load_model  # noqa: E402
from napari_sam2.model.compile import compile_parts, uncompile_parts  # noqa: E402
from napari_sam2.training.evaluate import jaccard  # noqa: E402


def machine(device: str) -> str:
    text = f"torch {torch.__version__}; python {platform.python_version()}"
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        text += (f"; {props.name}, {props.total_memory / 2**30:.0f} GiB, "
                 f"{props.multi_processor_count} SMs; CUDA {torch.version.cuda}")
    return text


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


# --------------------------------------------------------------------------- parity
def parity(name: str, cpu_model, images, truth, device: str) -> None:
    points = cell_clicks(truth, 3)
    ref, _ = track(cpu_model, images, points, False)  # {(frame, obj): (mask, present)}
    gpu_model = copy.deepcopy(cpu_model).to(device)
    for bf16 in (False, True):
        got, _ = track(gpu_model, images, points, bf16)
        keys = sorted(ref)
        ious = [jaccard(ref[k][0], got[k][0]) for k in keys]
        same = np.mean([ref[k][1] == got[k][1] for k in keys])
        ok = min(ious) >= 0.99
        print(f"parity {name}, {device} {'bf16' if bf16 else 'fp32'} vs cpu fp32: "
              f"{len(keys)} frame-objects, IoU min {min(ious):.4f} median "
              f"{statistics.median(ious):.4f}, IoU >= 0.99 on "
              f"{100 * np.mean(np.array(ious) >= 0.99):.0f} %, same presence "
              f"{100 * same:.1f} % -> {'meets' if ok else 'MISSES'} IoU >= 0.99", flush=True)


# --------------------------------------------------------------------------- speed
def per_frame_seconds(frames_iter, device: str, warmup: int, limit: int | None = None
                      ) -> list[float]:
    """Wall seconds of each item of ``frames_iter`` (synchronised), the first item (the
    prompted frame) and the next ``warmup`` left out."""
    times = []
    while limit is None or len(times) < limit:
        t = time.perf_counter()
        try:
            next(frames_iter)
        except StopIteration:
            break
        sync(device)
        times.append(time.perf_counter() - t)
    return times[1 + warmup:]


def ours(model, stack, clicks):
    session = TrackingSession(model, stack, bfloat16=True)  # our default on CUDA
    for k, (r, c) in enumerate(clicks):
        session.add_points(0, k + 1, [[r, c]], [1])
    return iter(session.propagate())


def meta_steps(meta, frames, clicks, device: str):
    """Meta's propagation, each step under bf16 autocast (as Meta's benchmark runs it)."""
    steps = meta.propagate(frames, clicks)
    while True:
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            try:
                item = next(steps)
            except StopIteration:
                return
        yield item


def report(variant: str, n_obj: int, label: str, seconds: list[float], base: float | None
           ) -> float:
    med = statistics.median(seconds)
    ratio = f", {med / base:.2f}x Meta's time" if base else ""
    print(f"speed {variant}, {n_obj} object(s), {label}: {med * 1e3:.1f} ms/frame "
          f"({1 / med:.1f} frames/s, median of {len(seconds)}){ratio}", flush=True)
    return med


def speed(variant: str, args, build_sam) -> None:
    device = args.device
    torch.manual_seed(0)
    model = build_model(variant).to(device).eval()
    stack = SyntheticStack(args.frames)
    frames = np.stack([stack[t] for t in range(args.frames)])
    all_clicks = [[64, 51], [128, 128], [192, 205]]
    meta = None
    if build_sam is not None:
        from meta_baseline import MetaVideo

        meta = MetaVideo(build_sam, variant, device=device)
    for n_obj in (1, 3):
        clicks = all_clicks[:n_obj]
        base = None
        if meta is not None:
            base = report(variant, n_obj, "Meta bf16", per_frame_seconds(
                meta_steps(meta, frames, clicks, device), device, args.warmup), None)
        report(variant, n_obj, "ours bf16", per_frame_seconds(
            ours(model, stack, clicks), device, args.warmup), base)
        if not args.no_compile:
            compile_parts(model)
            t = time.perf_counter()
            per_frame_seconds(ours(model, stack, clicks), device, 0)  # compiles every shape
            print(f"  (compiling took {time.perf_counter() - t:.0f} s with the first pass)",
                  flush=True)
            report(variant, n_obj, "ours bf16 compiled", per_frame_seconds(
                ours(model, stack, clicks), device, args.warmup), base)
            uncompile_parts(model)
    if args.meta_vos and build_sam is not None:
        from meta_baseline import MetaVideo

        vos = MetaVideo(build_sam, variant, device=device, vos_optimized=True)
        for n_obj in (1, 3):
            clicks = all_clicks[:n_obj]
            steps = meta_steps(vos, frames, clicks, device)
            t = time.perf_counter()
            per_frame_seconds(steps, device, 0)
            print(f"  (Meta's vos_optimized first pass {time.perf_counter() - t:.0f} s)")
            report(variant, n_obj, "Meta bf16 vos_optimized", per_frame_seconds(
                meta_steps(vos, frames, clicks, device), device, args.warmup), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--meta-path", default=None, help="Meta's code (benchmarks/meta_baseline.py)")
    p.add_argument("--variants", nargs="+", default=["sam2.1_hiera_tiny",
                                                     "sam2.1_hiera_base_plus"])
    p.add_argument("--frames", type=int, default=40, help="frames of the speed stack")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--parity-frames", type=int, default=20)
    p.add_argument("--no-parity", action="store_true")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--meta-vos", action="store_true", help="also Meta's vos_optimized=True")
    args = p.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run this on a GPU machine, or --device cpu")
    print(f"machine: {machine(args.device)}", flush=True)
    if not args.no_parity:
        images, truth = make_cell_timelapse(n_frames=args.parity_frames, n_cells=6, seed=3)
        parity("sam2_demo (shipped)", load_model("sam2_demo", device="cpu").eval(), images,
               truth, args.device)
        from tests.reference_weights import reference_model

        images, truth = make_cell_timelapse(n_frames=min(args.parity_frames, 6), seed=3)
        parity("sam2.1_hiera_tiny (deterministic weights)", reference_model().eval(), images,
               truth, args.device)
    build_sam = None
    if args.meta_path:
        from meta_baseline import import_meta

        build_sam = import_meta(args.meta_path)
    if args.device.startswith("cuda"):  # as Meta's sam2/benchmark.py, for both codes
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    for variant in args.variants:
        speed(variant, args, build_sam)


if __name__ == "__main__":
    main()
