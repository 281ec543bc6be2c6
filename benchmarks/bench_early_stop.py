"""Early stop on a synthetic z-stack: work and time with and without ``stop_after_absent``.

Every ellipsoid of ``make_ellipsoid_volume`` is clicked at the centre of its largest slice;
then the session propagates forward from the first clicked slice to the end and backward from
the last clicked slice to slice 0 (as the plugin's *both*). For each setting it prints the
frames yielded, the object-frames computed (tracked outputs, prompts excluded), the time, and
against the true labels: the mean IoU of the objects' masks on the slices where they are, and
the object-slices with a mask where the object is not (false positives).

    .venv/bin/python benchmarks/bench_early_stop.py                       # sam2_demo, CPU
    .venv/bin/python benchmarks/bench_early_stop.py --stop 2 3 5 --shape 64 160 160
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _cpu import describe

from napari_sam2.data.synthetic import make_ellipsoid_volume
from napari_sam2.engine import TrackingSession
from napari_sam2.model import load_model


def clicks(labels: np.ndarray) -> dict[int, tuple[int, list]]:
    """obj id -> (slice, [(row, col)]): the centre of each object on its largest slice."""
    out = {}
    for k in range(1, int(labels.max()) + 1):
        z = int((labels == k).sum((1, 2)).argmax())
        rows, cols = np.nonzero(labels[z] == k)
        r, c = int(np.median(rows)), int(np.median(cols))
        if labels[z, r, c] == k:  # a concave cut could put the median outside it
            out[k] = (z, [[r, c]])
    return out


def run(model, volume, prompts, stop) -> dict:
    session = TrackingSession(model, volume)
    for k, (z, point) in prompts.items():
        session.add_points(z, k, point, [1])
    first = min(z for z, _ in prompts.values())
    last = max(z for z, _ in prompts.values())
    masks = {}  # (slice, obj) -> mask
    frames = computed = 0
    t0 = time.perf_counter()
    for start, reverse in ((first, False), (last, True)):
        for result in session.propagate(start, reverse=reverse, stop_after_absent=stop):
            frames += 1
            for k in result.obj_ids:
                if prompts[k][0] != result.frame:
                    computed += 1
                masks[result.frame, k] = result.mask_of(k)
    seconds = time.perf_counter() - t0
    return {"frames": frames, "computed": computed, "seconds": seconds, "masks": masks}


def quality(masks: dict, labels: np.ndarray, prompts) -> tuple[float, int]:
    """(mean IoU over object-slices where the object is, false-positive object-slices)."""
    ious, false_pos = [], 0
    for k in prompts:
        for z in range(labels.shape[0]):
            truth = labels[z] == k
            mask = masks.get((z, k), np.zeros_like(truth))
            if truth.any():
                ious.append((mask & truth).sum() / (mask | truth).sum())
            elif mask.any():
                false_pos += 1
    return float(np.mean(ious)), false_pos


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="sam2_demo")
    p.add_argument("--shape", type=int, nargs=3, default=(48, 160, 160))
    p.add_argument("--objects", type=int, default=6)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--stop", type=int, nargs="+", default=[3])
    args = p.parse_args(argv)
    model = load_model(args.variant, device="cpu", progress=False)
    volume, labels = make_ellipsoid_volume(shape=tuple(args.shape), n_objects=args.objects,
                                           seed=args.seed)
    prompts = clicks(labels)
    print(f"{args.variant}, volume {tuple(args.shape)}, {len(prompts)} objects clicked, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{describe()}")
    print("| stop after | frames yielded | object-frames computed | time (s) | mean IoU | "
          "false-positive object-slices |")
    print("|---|---|---|---|---|---|")
    for stop in [None, *args.stop]:
        r = run(model, volume, prompts, stop)
        iou, fp = quality(r["masks"], labels, prompts)
        print(f"| {stop or 'never'} | {r['frames']} | {r['computed']} | {r['seconds']:.1f} | "
              f"{iou:.3f} | {fp} |", flush=True)


if __name__ == "__main__":
    main()
