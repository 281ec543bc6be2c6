"""Windows (issue 19): small cells in large fields, with windows against whole frames.

    .venv/bin/python benchmarks/bench_windows.py                      # everything, defaults
    .venv/bin/python benchmarks/bench_windows.py --sequences 3 --standard-sequences 4 \\
        --standard-video 2                                            # a quick look
    .venv/bin/python benchmarks/bench_windows.py --only huge          # the 50000 px click only
    .venv/bin/python benchmarks/bench_windows.py --only large --follow grid pixel fixed

Prints the machine (``_cpu.describe``), then, for the shipped ``sam2_demo`` (or ``--variant``
with ``--checkpoint``):

1. **Large fields** (``data.LargeFieldTimelapse``, ``--size`` px, 15-30 px cells, seeds from
   ``HELD_OUT_SEED + 500``), the same sequences and clicks for both modes: one interior click
   per cell on frames 0 and T/2 -> mean IoU; one click per cell on frame 0 propagated over
   ``--frames`` frames -> J&F (J and F on a crop around the cell and the prediction; F with
   a 1 px tolerance: the standard set's 0.008 x diagonal is 2.6 px on its 192 x 256 frames
   for 45 px cells, and these cells are half as large). Whole frame (``window=None``) and
   windows (``"auto"``; more ways of following the object with ``--follow``, faster motion
   per frame with ``--stride``).
2. **Standard set** (bench_quality's sequences, ``training.evaluate``): click, box and J&F with
   windows off and on (``"auto"``), with the paired differences.
3. **A 50000 x 50000 lazy uint16 image** (a dask array over ``LargeFieldTimelapse``, 512 px
   chunks): one ``"auto"`` click and a one-frame track in a subprocess, against a whole-frame
   and a windowed click on an in-memory 2048 px frame: time and peak extra resident memory
   (``bench_memory``'s method: RSS high-water mark after ``malloc_trim`` and a reset).

Every mean has a 95 % bootstrap interval over sequences (``evaluate.bootstrap_ci``); the paired
differences resample the same sequences.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
F_TOLERANCE_PX = 1


def _ci(interval) -> str:
    return f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def _crop_scores(pred_window, pred_crop, gt_box, gt_crop) -> tuple[float, float]:
    """J and F of a prediction (its window and mask over it; window None: whole frame) against
    a ground-truth crop, on the union of both boxes plus a margin."""
    from napari_sam2.training.evaluate import boundary_f, jaccard

    boxes = [gt_box]
    if pred_crop.any():
        rows, cols = np.nonzero(pred_crop)
        t, l = (0, 0) if pred_window is None else pred_window.box[:2]
        boxes.append((rows.min() + t, cols.min() + l, rows.max() + t + 1, cols.max() + l + 1))
    m = 8
    r0 = max(0, min(b[0] for b in boxes) - m)
    c0 = max(0, min(b[1] for b in boxes) - m)
    r1 = max(b[2] for b in boxes) + m
    c1 = max(b[3] for b in boxes) + m
    shape = (r1 - r0, c1 - c0)

    def place(box_tl, crop):
        out = np.zeros(shape, bool)
        t, l = box_tl[0] - r0, box_tl[1] - c0
        src = crop[max(0, -t):, max(0, -l):]
        t, l = max(t, 0), max(l, 0)
        h, w = min(src.shape[0], shape[0] - t), min(src.shape[1], shape[1] - l)
        out[t:t + h, l:l + w] = src[:h, :w]
        return out

    pred = place((0, 0) if pred_window is None else pred_window.box[:2], pred_crop)
    gt = place(gt_box[:2], gt_crop)
    bound = F_TOLERANCE_PX / np.hypot(*shape)
    return jaccard(pred, gt), boundary_f(pred, gt, bound_th=bound)


class _Every:
    """Every ``stride``-th frame of a ``LargeFieldTimelapse`` (faster motion per frame), with
    its ground truth."""

    def __init__(self, field, stride: int) -> None:
        self.field, self.stride = field, stride
        self.n_cells = field.n_cells
        self.shape = (-(-field.shape[0] // stride),) + field.shape[1:]
        self.dtype, self.ndim = field.dtype, 3

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        return self.field[(int(key[0]) * self.stride,) + tuple(key[1:])]

    def cell_mask(self, t, k):
        return self.field.cell_mask(t * self.stride, k)


def _large_sequence(model, seed: int, args, window) -> dict:
    """Click IoU and J, F of one large-field sequence for one window setting."""
    from napari_sam2.data import LargeFieldTimelapse
    from napari_sam2.engine import ImagePredictor, TrackingSession
    from napari_sam2.training.evaluate import interior_point

    field = LargeFieldTimelapse(shape=(args.size, args.size),
                                n_frames=(args.frames - 1) * args.stride + 1, seed=seed)
    if args.stride > 1:
        field = _Every(field, args.stride)
    cells = list(range(1, min(args.cells, field.n_cells) + 1))
    clicks = {}
    for k in cells:  # the same click in every mode
        box, gt = field.cell_mask(0, k)
        r, c = interior_point(gt)
        clicks[k] = [r + box[0], c + box[1]]
    predictor = ImagePredictor(model)
    ious = []
    for t in (0, args.frames // 2):
        predictor.set_image(field[t], window=window)
        for k in cells:
            box, gt = field.cell_mask(t, k)
            r, c = interior_point(gt)
            pred = predictor.predict(points=[[r + box[0], c + box[1]]], labels=[1])
            ious.append(_crop_scores(pred.window, pred.best, box, gt)[0])
    session = TrackingSession(model, field, window=window)
    for k in cells:
        session.add_points(0, k, [clicks[k]], [1])
    js, fs = [], []
    for result in session.propagate(0):
        if result.frame == 0:
            continue
        for k in cells:
            window_k, crop = result.crop_of(k)
            j, f = _crop_scores(window_k, crop, *field.cell_mask(result.frame, k))
            js.append(j)
            fs.append(f)
    return {"seed": seed, "click": float(np.mean(ious)), "n_click": len(ious),
            "j": float(np.mean(js)), "f": float(np.mean(fs)), "n": len(js)}


def large_fields(model, args) -> dict:
    """Section 1; returns per-mode rows."""
    from napari_sam2.engine import window_tracking
    from napari_sam2.training.evaluate import HELD_OUT_SEED, bootstrap_ci

    modes = [("whole frame", None, "grid")] + [
        (f"windows auto, follow {f}", "auto", f) for f in args.follow]
    seeds = [HELD_OUT_SEED + 500 + i for i in range(args.sequences)]
    out = {}
    print(f"large fields: {args.sequences} sequences of {args.frames} frames (every "
          f"{args.stride}), {args.size} x {args.size} px, {args.cells} cells each")
    for name, window, follow in modes:
        window_tracking.FOLLOW = follow
        start = time.perf_counter()
        rows = [_large_sequence(model, s, args, window) for s in seeds]
        took = time.perf_counter() - start
        click = bootstrap_ci([r["click"] for r in rows], [r["n_click"] for r in rows])
        jf_seq = [(r["j"] + r["f"]) / 2 for r in rows]
        counts = [r["n"] for r in rows]
        jf = sum(v * n for v, n in zip(jf_seq, counts)) / sum(counts)
        click_mean = sum(r["click"] * r["n_click"] for r in rows) / sum(
            r["n_click"] for r in rows)
        j = sum(r["j"] * r["n"] for r in rows) / sum(counts)
        f = sum(r["f"] * r["n"] for r in rows) / sum(counts)
        print(f"  {name:28s} click IoU {click_mean:.3f} 95% {_ci(click)}   J&F {jf:.3f} 95% "
              f"{_ci(bootstrap_ci(jf_seq, counts))} (J {j:.3f}, F {f:.3f})   {took:.0f} s")
        out[name] = {"click": click_mean, "click_ci": click, "jf": jf,
                     "jf_ci": bootstrap_ci(jf_seq, counts), "j": j, "f": f, "seconds": took,
                     "rows": rows}
    window_tracking.FOLLOW = "grid"
    return out


def standard_set(model, args) -> dict:
    """Section 2: bench_quality's figures with windows off and on, and the differences."""
    from napari_sam2.training.evaluate import bootstrap_ci, click_and_box_iou, propagation_jf

    print(f"standard set: {args.standard_sequences} sequences x 2 frames for click / box, "
          f"{args.standard_video} of {args.frames} frames for J&F (192 x 256, 6 cells)")
    per = {}
    for name, window in (("whole frame", None), ("windows auto", "auto")):
        start = time.perf_counter()
        rows: list = []
        click_and_box_iou(model, n_sequences=args.standard_sequences, details=rows,
                          window=window)
        q = propagation_jf(model, n_sequences=args.standard_video, n_frames=args.frames,
                           window=window)
        seeds = sorted({r["seed"] for r in rows})
        figures = {}
        for key in ("click_iou", "box_iou"):
            vals = [[r[key] for r in rows if r["seed"] == s] for s in seeds]
            figures[key] = ([float(np.mean(v)) for v in vals], [len(v) for v in vals])
        figures["J&F"] = ([(s["j"] + s["f"]) / 2 for s in q.per_sequence],
                          [s["n"] for s in q.per_sequence])
        per[name] = figures
        text = []
        for key, (means, counts) in figures.items():
            pooled = sum(m * n for m, n in zip(means, counts)) / sum(counts)
            text.append(f"{key} {pooled:.3f} {_ci(bootstrap_ci(means, counts))}")
        print(f"  {name:13s} " + "   ".join(text) +
              f"   {time.perf_counter() - start:.0f} s")
    diffs = []
    for key, (means, counts) in per["windows auto"].items():
        d = [a - b for a, b in zip(means, per["whole frame"][key][0])]
        pooled = sum(x * n for x, n in zip(d, counts)) / sum(counts)
        diffs.append(f"{key} {pooled:+.3f} {_ci(bootstrap_ci(d, counts))}")
    print("  windows - whole (paired): " + "   ".join(diffs))
    return per


HUGE_CHILD = r"""
import json, sys, time
sys.path.insert(0, {here!r})
import numpy as np, torch
from bench_memory import settle, peak_since_settle
torch.set_num_threads({threads})
import dask.array as da
from napari_sam2.data import LargeFieldTimelapse
from napari_sam2.engine import ImagePredictor, TrackingSession
from napari_sam2.model import load_model
from napari_sam2.training.evaluate import interior_point, jaccard
model = load_model({variant!r}, {checkpoint!r}, device="cpu")
p = ImagePredictor(model)
p.set_image(np.zeros((64, 64), np.uint16)); p.predict(points=[[32, 32]], labels=[1])
out = {{}}

def measure(name, fn):
    before = settle(); t0 = time.perf_counter(); res = fn()
    out[name] = {{"seconds": time.perf_counter() - t0,
                  "extra_mib": (peak_since_settle() - before) / 2**20}}
    return res

def click_on(field, image, window):
    k = field.n_cells // 2
    box, gt = field.cell_mask(0, k)
    r, c = interior_point(gt)
    def run():
        p.set_image(image, window=window)
        return p.predict(points=[[r + box[0], c + box[1]]], labels=[1])
    return run, (box, gt)

normal = LargeFieldTimelapse(shape=(2048, 2048), n_frames=1, seed=3)
frame = normal[0]
for name, window in (("2048 px frame, whole frame", None), ("2048 px frame, window auto", "auto")):
    run, _ = click_on(normal, frame, window)
    measure(name, run)
huge = LargeFieldTimelapse(shape=({size}, {size}), n_frames=2, seed=1, cache_tiles=0)
lazy = da.from_array(huge, chunks=(1, 512, 512), asarray=True)
run, (box, gt) = click_on(huge, lazy[0], "auto")
pred = measure("{size} px lazy frame, window auto", run)
win = pred.window
full_gt = np.zeros(win.shape, bool)
lab = huge.labels_region(0, *win.slices)
k = huge.n_cells // 2
out["{size} px lazy frame, window auto"]["iou"] = jaccard(pred.best, lab == k)
out["{size} px lazy frame, window auto"]["tiles_read"] = huge.tiles_rendered
t0 = time.perf_counter()
for w, _ in p.windowed.reads:  # the same windows read again: the source's share of the time
    np.asarray(lazy[0][w.slices])
out["{size} px lazy frame, window auto"]["read_seconds"] = time.perf_counter() - t0

def track():
    s = TrackingSession(model, lazy, window="auto")
    r, c = interior_point(gt)
    s.add_points(0, 1, [[r + box[0], c + box[1]]], [1])
    return [res for res in s.propagate(0)]
results = measure("{size} px lazy stack, click + 1 tracked frame", track)
lab1 = huge.labels_region(1, *results[-1].windows[0].slices)
out["{size} px lazy stack, click + 1 tracked frame"]["iou_frame1"] = jaccard(
    results[-1].logits[0] > 0, lab1 == k)
print(json.dumps(out))
"""


def huge_click(args) -> dict:
    """Section 3, in a fresh subprocess (clean resident-memory figures)."""
    src = HUGE_CHILD.format(here=str(HERE), threads=args.threads or 2, variant=args.variant,
                            checkpoint=args.checkpoint, size=args.huge)
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the huge-image child failed:\n{proc.stderr[-3000:]}")
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"huge image ({args.huge} x {args.huge} uint16 = "
          f"{args.huge ** 2 * 2 / 2 ** 30:.1f} GiB if read whole):")
    for name, row in figures.items():
        extra = "   ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in row.items() if k not in ("seconds", "extra_mib"))
        print(f"  {name:46s} {row['seconds']:.2f} s   peak extra {row['extra_mib']:.0f} MiB"
              f"   {extra}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="sam2_demo")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--sequences", type=int, default=8, help="large-field sequences")
    parser.add_argument("--cells", type=int, default=6, help="cells clicked per sequence")
    parser.add_argument("--size", type=int, default=2048, help="large-field side (px)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--stride", type=int, default=1,
                        help="large fields: every stride-th frame (faster motion per frame)")
    parser.add_argument("--follow", nargs="+", default=["grid"],
                        choices=["grid", "pixel", "fixed"])
    parser.add_argument("--standard-sequences", type=int, default=32)
    parser.add_argument("--standard-video", type=int, default=16)
    parser.add_argument("--huge", type=int, default=50000)
    parser.add_argument("--only", choices=["large", "standard", "huge"], default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ.setdefault("NAPARI_SAM2_BFLOAT16", "0")
    import torch
    from _cpu import describe

    from napari_sam2.model import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {describe()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    model = load_model(args.variant, args.checkpoint, device="cpu")
    figures = {}
    if args.only in (None, "large"):
        figures["large"] = large_fields(model, args)
    if args.only in (None, "standard"):
        figures["standard"] = standard_set(model, args)
    if args.only in (None, "huge"):
        figures["huge"] = huge_click(args)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=float))


if __name__ == "__main__":
    main()
