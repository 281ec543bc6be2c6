"""Memory attention on CPU: unprojected values by blocks (now) against projected values
through torch's fused kernel (before), alternating in one run.

    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src \
        .venv/bin/python benchmarks/bench_memory_attention.py          # ~2 min on 2 cores

The cross-attention of SAM 2's memory attention has one head of 256 over 64-wide memory
tokens; on CPU in inference it now attends to the 64-wide tokens and applies the value
projection afterwards (``RoPEAttention._folds_values``, docs/model.md). The old path is
restored for the baseline by switching that method off. For ``sam2.1_hiera_tiny`` at 1024
(random-init weights: speed does not depend on the values), with 1, 4 and 7 memory frames
plus 16 object pointers: the median seconds of a whole ``MemoryAttention`` call each way
(the two alternate, so a change of machine load hits both) and the largest difference of
their outputs. Then one tracked frame each way, in lockstep, over ``--frames`` frames.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_tracking import SyntheticStack, _lockstep, machine  # noqa: E402

from napari_sam2.engine import TrackingSession  # noqa: E402
from napari_sam2.model import build_model  # noqa: E402
from napari_sam2.model.transformer import RoPEAttention  # noqa: E402

FOLDED = RoPEAttention._folds_values


def use_fold(on: bool) -> None:
    RoPEAttention._folds_values = FOLDED if on else (lambda self, n_queries, n_keys, device: False)


def timed_each_way(fn, repeats: int) -> tuple[dict, dict]:
    times, outs = {"plain": [], "folded": []}, {}
    for _ in range(repeats):
        for name, seconds in times.items():
            use_fold(name == "folded")
            t = time.perf_counter()
            outs[name] = fn()
            seconds.append(time.perf_counter() - t)
    use_fold(True)
    return times, outs


def bench_calls(model, repeats: int) -> None:
    hw, side = 4096, 64
    g = torch.Generator().manual_seed(0)
    curr, curr_pos = torch.randn(1, hw, 256, generator=g), torch.randn(1, hw, 256, generator=g)
    for n_mem in (1, 4, 7):
        m = n_mem * side * side + 64
        memory, memory_pos = torch.randn(1, m, 64, generator=g), torch.randn(1, m, 64, generator=g)
        with torch.inference_mode():
            times, outs = timed_each_way(
                lambda m=memory, p=memory_pos: model.memory_attention(curr, curr_pos, m, p, 64),
                repeats)
        med = {n: statistics.median(t) for n, t in times.items()}
        diff = (outs["folded"] - outs["plain"]).abs().max().item()
        print(f"memory attention, {n_mem} memories + 16 pointers ({m} tokens): plain "
              f"{med['plain']:.3f} s, folded {med['folded']:.3f} s, ratio "
              f"{med['folded'] / med['plain']:.2f} (median of {repeats}); max |diff| "
              f"{diff:.1e} (output max |x| {outs['plain'].abs().max().item():.1f})", flush=True)


def bench_frames(model, n_frames: int) -> None:
    stack = SyntheticStack(n_frames)
    runs = {}
    for name in ("plain", "folded"):
        session = TrackingSession(model, stack)
        session.add_points(0, 1, [[64, 51]], [1])
        runs[name] = session.propagate()

    def stepping(name):
        frames = iter(runs[name])
        while True:
            use_fold(name == "folded")  # before the step computes
            try:
                item = next(frames)
            except StopIteration:
                return
            yield item

    times = _lockstep({name: stepping(name) for name in runs})
    use_fold(True)
    med = {n: statistics.median(t[1:]) for n, t in times.items()}
    print(f"tracked frame, 1 object, {n_frames - 1} propagated frames (encoding included): "
          f"plain {med['plain']:.2f} s, folded {med['folded']:.2f} s, ratio "
          f"{med['folded'] / med['plain']:.2f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--frames", type=int, default=7, help="tracked-frame part (0 skips it)")
    args = p.parse_args()
    print(f"machine: {machine()}", flush=True)
    torch.manual_seed(0)
    model = build_model("sam2.1_hiera_tiny").eval()
    bench_calls(model, args.repeats)
    if args.frames > 1:
        bench_frames(model, args.frames)


if __name__ == "__main__":
    main()
