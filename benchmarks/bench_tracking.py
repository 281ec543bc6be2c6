"""Tracking benchmark: peak memory against sequence length, and seconds per frame.

    .venv/bin/python benchmarks/bench_tracking.py                      # both parts
    .venv/bin/python benchmarks/bench_tracking.py --part memory --variant medsam2 --frames 32 512
    .venv/bin/python benchmarks/bench_tracking.py --part speed --speed-variant sam2.1_hiera_tiny

Memory: one session over a lazily generated stack (frames exist only when read), one object
clicked on frame 0, propagated through all frames with the results dropped as they come (a
caller that writes them to disk). Peak RSS (``ru_maxrss``) is read after each checkpoint
frame count in the same run; the target is peak(512) <= 1.1 x peak(32).

Speed: seconds per propagated frame (median over frames, first frame excluded) for 1 and for
3 objects, random-init weights (speed does not depend on the values), image encoding included.
Meta's numbers for comparison (issue 3, measured on a 2-core CPU of this kind): 3.6-3.7 s per
frame for tiny at 1024 with 1 object, 7.6-7.9 s with 3 objects.

With ``--meta-path DIR`` (a local copy of Meta's code, see ``meta_baseline.py``) Meta's
``SAM2VideoPredictor`` tracks the same frames and clicks in the same run, the two sessions
advancing in lockstep (one frame of ours, one of Meta's) so that a change of machine load hits
both alike, and the ratio ours / Meta's is printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time

import numpy as np
import torch
from _cpu import describe


class SyntheticStack:
    """(T, H, W) uint8 frames computed on demand: a few disks drifting over noise."""

    def __init__(self, n_frames: int, shape=(256, 256), seed: int = 0) -> None:
        self.shape = (n_frames, *shape)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 3
        self.seed = seed

    def __getitem__(self, key):
        t = key[0] if isinstance(key, tuple) else key
        h, w = self.shape[1:]
        rng = np.random.default_rng((self.seed, int(t)))
        img = rng.integers(0, 60, (h, w)).astype(np.uint8)
        yy, xx = np.mgrid[:h, :w]
        for k in range(3):
            cy = h * (0.25 + 0.25 * k)
            cx = (w * (0.2 + 0.3 * k) + 1.5 * t) % w
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < (h / 12) ** 2] = 200
        return img


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> str:
    return (f"{describe()}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; python {platform.python_version()}; "
            f"load average {os.getloadavg()[0]:.1f}")


def bench_memory(variant: str, checkpoints: list[int]) -> None:
    from napari_sam2.engine import TrackingSession
    from napari_sam2.model import build_model

    torch.manual_seed(0)
    model = build_model(variant).eval()
    n = max(checkpoints)
    stack = SyntheticStack(n)
    session = TrackingSession(model, stack)
    session.add_points(0, 1, [[64, 51]], [1])
    print(f"memory: {variant}, {n} frames of {stack.shape[1:]}; peak RSS after the clicks "
          f"{peak_rss_mb():.0f} MB")
    t0 = time.perf_counter()
    peaks = {}
    for i, result in enumerate(session.propagate(), start=1):
        del result  # the caller keeps nothing
        if i in checkpoints:
            peaks[i] = peak_rss_mb()
            stats = session.memory_stats()
            print(f"  after {i:4d} frames: peak RSS {peaks[i]:7.0f} MB; session outputs "
                  f"{stats['outputs'] / 2**20:.1f} MiB, memories held {stats['memories']}, "
                  f"{(time.perf_counter() - t0) / i:.2f} s/frame", flush=True)
    lo, hi = min(checkpoints), max(checkpoints)
    print(f"  ratio peak({hi}) / peak({lo}) = {peaks[hi] / peaks[lo]:.3f} (target <= 1.1)")


def _lockstep(iterators: dict) -> dict:
    """Advance the iterators one item each in turn until all are exhausted; returns the wall
    seconds of every item per name."""
    times = {name: [] for name in iterators}
    live = dict(iterators)
    while live:
        for name in list(live):
            t = time.perf_counter()
            try:
                next(live[name])
            except StopIteration:
                del live[name]
                continue
            times[name].append(time.perf_counter() - t)
    return times


def bench_speed(variant: str, n_frames: int, meta_path: str | None = None) -> None:
    from napari_sam2.engine import TrackingSession
    from napari_sam2.model import build_model

    torch.manual_seed(0)
    model = build_model(variant).eval()
    stack = SyntheticStack(n_frames)
    clicks = [[64, 51], [128, 128], [192, 205]]
    meta = None
    if meta_path:
        from meta_baseline import MetaVideo, import_meta

        meta = MetaVideo(import_meta(meta_path), variant)
        frames = np.stack([stack[t] for t in range(n_frames)])
    for n_obj in (1, 3):
        session = TrackingSession(model, stack)
        for k in range(n_obj):
            session.add_points(0, k + 1, [clicks[k]], [1])
        runs = {"ours": iter(session.propagate())}
        if meta is not None:
            runs["Meta"] = meta.propagate(frames, clicks[:n_obj])
        medians = {}
        for name, times in _lockstep(runs).items():
            # the first item is the prompted frame (already decoded): not a propagation step
            medians[name] = statistics.median(times[1:]) if len(times) > 1 else times[0]
            print(f"speed: {variant}, {n_obj} object(s), {name}: {medians[name]:.2f} s/frame "
                  f"median over {len(times) - 1} frames (encoding included)", flush=True)
        if meta is not None:
            print(f"speed: {variant}, {n_obj} object(s): ours / Meta = "
                  f"{medians['ours'] / medians['Meta']:.2f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("memory", "speed", "both"), default="both")
    p.add_argument("--variant", default="sam2_demo", help="model for the memory part")
    p.add_argument("--frames", type=int, nargs="+", default=[32, 512])
    p.add_argument("--speed-variant", default="sam2.1_hiera_tiny")
    p.add_argument("--speed-frames", type=int, default=5)
    p.add_argument("--meta-path", default=None,
                   help="local copy of Meta's sam2 code: track side by side with it")
    args = p.parse_args()
    print("machine:", machine())
    if args.part in ("memory", "both"):
        bench_memory(args.variant, sorted(args.frames))
    if args.part in ("speed", "both"):
        bench_speed(args.speed_variant, args.speed_frames, args.meta_path)


if __name__ == "__main__":
    main()
