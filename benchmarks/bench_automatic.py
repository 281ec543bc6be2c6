"""Automatic segmentation ("segment everything") and tracking of everything it finds.

    .venv/bin/python benchmarks/bench_automatic.py                 # standard sets, sam2_demo
    .venv/bin/python benchmarks/bench_automatic.py --sequences 4 --video-sequences 2   # quick
    .venv/bin/python benchmarks/bench_automatic.py --points-per-side 32 --iou-threshold 0.8

Prints the machine, then with the shipped ``sam2_demo`` on the standard held-out synthetic
cell sets of ``napari_sam2.training.evaluate`` (the ones bench_quality.py uses):

* detection on single frames (``IMAGE_SEQUENCES`` sequences x frames 0 and 8): recall and
  precision at IoU 0.5 (a ground-truth cell and a label match when their IoU > 0.5, which
  makes matches one-to-one), mean IoU of the matched cells; cells under 50 pixels (slivers at
  the border) are neither required nor counted against precision when found;
* tracking (``VIDEO_SEQUENCES`` sequences x 16 frames): segment everything on frame 0, every
  label becomes an object (its mask as prompt), ``TrackingSession.propagate``; J&F over the
  frames after 0 for the labels matched to a cell on frame 0 (``evaluate.jaccard``,
  ``evaluate.boundary_f``), with the cells never detected listed apart;
* speed: grid points per second of segment everything (encoder included), frames per second
  of the tracking.

Every mean has a 95 % bootstrap interval over whole sequences (``evaluate.bootstrap_ci``).
Targets (issue 21): recall >= 0.9, precision >= 0.9, matched IoU >= 0.85, J&F >= 0.8.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from _cpu import describe

MIN_AREA = 50  # ground-truth cells smaller than this are slivers (as evaluate.py)


def match(pred: np.ndarray, gt: np.ndarray) -> tuple[list, int, int, int]:
    """Match labels to cells at IoU > 0.5.

    Returns: ([(pred id, gt id, IoU)], cells required, labels counted, labels matching a
    sliver (not counted)).
    """
    from napari_sam2.training.evaluate import jaccard

    cells = [int(k) for k in np.unique(gt) if k]
    labels = [int(k) for k in np.unique(pred) if k]
    pairs, sliver_hits = [], 0
    big = {k for k in cells if (gt == k).sum() >= MIN_AREA}
    for p in labels:
        pm = pred == p
        under = gt[pm]
        for k in np.unique(under[under > 0]):
            iou = jaccard(pm, gt == k)
            if iou > 0.5:
                if k in big:
                    pairs.append((p, int(k), iou))
                else:
                    sliver_hits += 1
                break
    return pairs, len(big), len(labels) - sliver_hits, sliver_hits


def detection(model, args, opts) -> dict:
    from napari_sam2.engine.automatic import segment_everything
    from napari_sam2.training.evaluate import HELD_OUT_SEED, _sequence

    rows, points, seconds = [], 0, 0.0
    for i in range(args.sequences):
        images, labels = _sequence(HELD_OUT_SEED + i, 9)
        hit = req = counted = 0
        ious = []
        for t in (0, 8):
            r = segment_everything(model, images[t], options=opts)
            points += r.n_points
            seconds += r.seconds
            pairs, n_req, n_lab, _ = match(r.labels, labels[t])
            hit += len(pairs)
            req += n_req
            counted += n_lab
            ious += [p[2] for p in pairs]
        rows.append({"hit": hit, "req": req, "counted": counted, "iou": ious})
    return {"rows": rows, "points": points, "seconds": seconds}


def tracking(model, args, opts) -> dict:
    from napari_sam2.engine import TrackingSession
    from napari_sam2.engine.automatic import segment_everything
    from napari_sam2.training.evaluate import HELD_OUT_SEED, _sequence, boundary_f, jaccard

    rows, frames, seconds, objects = [], 0, 0.0, 0
    for i in range(args.video_sequences):
        images, labels = _sequence(HELD_OUT_SEED + 100 + i, args.frames)
        r = segment_everything(model, images[0], options=opts)
        pairs, n_req, _, _ = match(r.labels, labels[0])
        session = TrackingSession(model, images)
        for k in r.ids:
            session.add_mask(0, int(k), r.labels == k, others=False)
        objects += len(r.ids)
        start = time.perf_counter()
        outputs = {}
        for res in session.propagate(0):
            outputs[res.frame] = dict(zip(res.obj_ids, res.masks))
        seconds += time.perf_counter() - start
        frames += args.frames - 1
        js, fs = [], []
        for p, k, _ in pairs:
            for t in range(1, args.frames):
                pred = outputs.get(t, {}).get(p, np.zeros(labels[t].shape, bool))
                js.append(jaccard(pred, labels[t] == k))
                fs.append(boundary_f(pred, labels[t] == k))
        rows.append({"j": float(np.mean(js)) if js else float("nan"),
                     "f": float(np.mean(fs)) if fs else float("nan"), "n": len(js),
                     "missed": n_req - len(pairs)})
    return {"rows": rows, "frames": frames, "seconds": seconds, "objects": objects}


def _ci(means, counts) -> str:
    from napari_sam2.training.evaluate import bootstrap_ci

    keep = [(m, c) for m, c in zip(means, counts) if c > 0]
    lo, hi = bootstrap_ci([m for m, _ in keep], [c for _, c in keep])
    return f"[{lo:.3f}, {hi:.3f}]"


def main(argv=None) -> None:
    from napari_sam2.engine.automatic import OPTION_NAMES, AutomaticOptions
    from napari_sam2.training.evaluate import IMAGE_SEQUENCES, VIDEO_SEQUENCES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="sam2_demo")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--sequences", type=int, default=IMAGE_SEQUENCES)
    p.add_argument("--video-sequences", type=int, default=VIDEO_SEQUENCES)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--threads", type=int, default=None)
    defaults = AutomaticOptions()
    for name in OPTION_NAMES:
        v = getattr(defaults, name)
        if isinstance(v, bool):
            p.add_argument("--no-" + name.replace("_", "-"), dest=name, action="store_false")
        else:
            p.add_argument("--" + name.replace("_", "-"), type=type(v), default=v)
    args = p.parse_args(argv)
    os.environ["NAPARI_SAM2_BFLOAT16"] = "0"
    if args.threads:
        torch.set_num_threads(args.threads)
    from napari_sam2.model import load_model

    opts = AutomaticOptions(**{n: getattr(args, n) for n in OPTION_NAMES})
    model = load_model(args.variant, args.checkpoint, device="cpu", progress=False)
    print(f"machine: {describe()}; torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, float32")
    print(f"model {args.variant} ({args.checkpoint or 'shipped weights'}); options "
          + ", ".join(f"{k}={v}" for k, v in opts.as_dict().items()))

    d = detection(model, args, opts) if args.sequences else None
    if d:
        rows = d["rows"]
        hit = sum(r["hit"] for r in rows)
        req = sum(r["req"] for r in rows)
        counted = sum(r["counted"] for r in rows)
        ious = [v for r in rows for v in r["iou"]]
        print(f"detection ({args.sequences} sequences x 2 frames, {req} cells):")
        print(f"  recall     {hit / max(req, 1):.3f}  95% "
              f"{_ci([r['hit'] / max(r['req'], 1) for r in rows], [r['req'] for r in rows])}"
              "  (target >= 0.90)")
        precision = _ci([r["hit"] / max(r["counted"], 1) for r in rows],
                        [r["counted"] for r in rows])
        print(f"  precision  {hit / max(counted, 1):.3f}  95% {precision}"
              f"  (target >= 0.90; {counted} labels)")
        matched = _ci([np.mean(r["iou"]) if r["iou"] else 0 for r in rows],
                      [len(r["iou"]) for r in rows])
        print(f"  matched IoU {np.mean(ious):.3f}  95% {matched}  (target >= 0.85)")
        print(f"  speed      {d['points'] / d['seconds']:.0f} grid points/s "
              f"({d['seconds'] / (2 * args.sequences):.2f} s a frame, encoder included)")
    if args.video_sequences:
        v = tracking(model, args, opts)
        rows = v["rows"]
        n = [r["n"] for r in rows]
        j = sum(r["j"] * r["n"] for r in rows if r["n"]) / max(sum(n), 1)
        f = sum(r["f"] * r["n"] for r in rows if r["n"]) / max(sum(n), 1)
        jf = [(r["j"] + r["f"]) / 2 for r in rows]
        print(f"tracking ({args.video_sequences} sequences x {args.frames} frames, "
              f"{v['objects']} objects from segment everything):")
        print(f"  J&F        {(j + f) / 2:.3f}  95% {_ci(jf, n)}  (target >= 0.80; J {j:.3f}, "
              f"F {f:.3f}; over matched cells, {sum(r['missed'] for r in rows)} cells never "
              "detected on frame 0)")
        print(f"  speed      {v['frames'] / v['seconds']:.2f} frames/s "
              f"({v['objects'] / max(args.video_sequences, 1):.1f} objects a sequence)")


if __name__ == "__main__":
    main()
