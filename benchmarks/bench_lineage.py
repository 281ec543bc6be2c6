"""Tracking through cell divisions: TRA and divisions found, with and without division handling.

    .venv/bin/python benchmarks/bench_lineage.py                    # 16 sequences, sam2_demo
    .venv/bin/python benchmarks/bench_lineage.py --sequences 4      # quick look

Data: ``data.dividing.make_dividing_timelapse`` (32 frames, 192 x 256, ``--cells`` 4 of which
3 divide once; more cells crowd the frame and touch), seeds from ``SEED`` on. Per sequence, with the shipped ``sam2_demo`` on the CPU:
one positive click per cell on frame 0 (its most interior pixel), then one forward propagation,
nothing else, once with automatic division detection (``DivisionRule()`` defaults) and once
without (the plain session). Both runs share the image features (encoded once).

Scores, from the labels exported to CTC form (``io.write_ctc``) against the ground truth
(``io.write_ctc_ground_truth``):

* TRA, DET, SEG and BC(i) from ``py-ctcmetrics`` (BC(i): divisions found within i frames);
* divisions correct: a ground-truth division (mother M, daughters D1, D2 from frame B) counts
  when the run has a division on frame f with |f - B| <= ``--tolerance`` (default 1) whose
  parent is M's object on the frame before both (IoU > 0.5) and whose two daughters are D1's
  and D2's objects on the first frame after both (IoU > 0.5 each, distinct). Also strict
  (f == B).

Means with 95 % bootstrap intervals over sequences (``training.evaluate.bootstrap_ci``).
Targets (issue 20): TRA >= 0.9 and >= 80 % of divisions correct, with division handling.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _cpu import describe

from napari_sam2.data.dividing import make_dividing_timelapse
from napari_sam2.engine.division import DivisionRule
from napari_sam2.engine.session import TrackingSession
from napari_sam2.io.ctc import ctc_scores, parents_of, write_ctc, write_ctc_ground_truth
from napari_sam2.model import load_model
from napari_sam2.training.evaluate import bootstrap_ci, interior_point, jaccard

SEED = 2_000_003  # dividing sequences; training never draws them


def run(session: TrackingSession, rule: DivisionRule | None) -> np.ndarray:
    """(T, H, W) labels of one forward propagation from frame 0 (last result per frame)."""
    out = np.zeros((session.num_frames, *session.frame_shape), np.int32)
    for r in session.propagate(0, divisions=rule):
        frame = np.zeros(session.frame_shape, np.int32)
        for k, oid in enumerate(r.obj_ids):
            frame[r.masks[k] & (frame == 0)] = oid
        out[r.frame] = frame
    return out


def _best(pred: np.ndarray, gt: np.ndarray) -> int | None:
    """The label of ``pred`` (H, W) with IoU > 0.5 with ``gt`` (H, W) bool, or None."""
    ids = [int(k) for k in np.unique(pred[gt]) if k]
    scored = [(jaccard(pred == k, gt), k) for k in ids]
    best = max(scored, default=(0.0, None))
    return best[1] if best[0] > 0.5 else None


def divisions_correct(pred: np.ndarray, parents: dict[int, int], gt: np.ndarray,
                      rows: np.ndarray, tolerance: int) -> tuple[int, int]:
    """(correct, total) ground-truth divisions (see the module docstring)."""
    kids: dict[int, list[int]] = {}
    for child, parent in parents.items():
        kids.setdefault(parent, []).append(child)
    start = {k: int(np.flatnonzero((pred == k).any((1, 2)))[0]) for k in parents
             if (pred == k).any()}
    correct = total = 0
    for mother in sorted({int(p) for p in rows[:, 3] if p}):
        daughters = [int(r[0]) for r in rows if r[3] == mother]
        b = int(rows[rows[:, 0] == daughters[0]][0, 1])
        total += 1
        for p, ks in kids.items():
            fs = [start[k] for k in ks if k in start]
            if len(ks) != 2 or len(fs) != 2 or abs(min(fs) - b) > tolerance:
                continue
            f = min(fs)
            before, after = min(f, b) - 1, max(f, b)
            if before < 0 or _best(pred[before], gt[before] == mother) != p:
                continue
            found = {_best(pred[after], gt[after] == d) for d in daughters}
            if found == set(ks):
                correct += 1
                break
    return correct, total


def sequence(model, seed: int, tolerance: int, tmp: Path, cells: int = 4) -> dict:
    images, labels, rows = make_dividing_timelapse(n_frames=32, n_cells=cells, seed=seed)
    gt = write_ctc_ground_truth(tmp / f"{seed}_GT", labels, rows)
    cache = None
    row = {"seed": seed, "divisions": int((rows[:, 3] > 0).sum() // 2)}
    for name, rule in (("with", DivisionRule()), ("without", None)):
        session = TrackingSession(model, images, feature_cache=cache)
        cache = session.feature_cache
        for k in np.unique(labels[0])[1:]:
            session.add_points(0, int(k), [interior_point(labels[0] == k)], [1])
        t0 = time.perf_counter()
        pred = run(session, rule)
        seconds = time.perf_counter() - t0
        parents = session.lineage.parents()
        res = write_ctc(tmp / f"{seed}_{name}", pred, parents)
        scores = ctc_scores(res, gt)
        ok, total = divisions_correct(pred, parents, labels, rows, tolerance)
        strict, _ = divisions_correct(pred, parents, labels, rows, 0)
        row[name] = {"TRA": scores["TRA"], "DET": scores["DET"], "SEG": scores["SEG"],
                     "BC(0)": scores["BC(0)"], "BC(1)": scores["BC(1)"],
                     "correct": ok, "correct_strict": strict, "found": len(set(parents.values())),
                     "seconds": round(seconds, 2)}
        assert total == row["divisions"]
        assert parents_of(rows)  # the ground truth has divisions
    return row


def _summary(rows: list[dict], name: str) -> dict:
    out = {}
    ones = [1] * len(rows)
    for key in ("TRA", "DET", "SEG"):
        vals = [r[name][key] for r in rows]
        out[key] = (float(np.mean(vals)), bootstrap_ci(vals, ones))
    counts = [r["divisions"] for r in rows]
    for key in ("correct", "correct_strict"):
        fracs = [r[name][key] / r["divisions"] for r in rows]
        pooled = sum(r[name][key] for r in rows) / sum(counts)
        out[key] = (pooled, bootstrap_ci(fracs, counts))
    out["seconds"] = sum(r[name]["seconds"] for r in rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=16)
    parser.add_argument("--tolerance", type=int, default=1,
                        help="frames a division may be off and still count (default 1)")
    parser.add_argument("--cells", type=int, default=4,
                        help="cells on frame 0 (default 4; n // 2 + 1 of them divide)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    print(f"machine: {describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    model = load_model("sam2_demo", device="cpu", progress=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.sequences):
            row = sequence(model, SEED + i, args.tolerance, Path(tmp), args.cells)
            rows.append(row)
            w, wo = row["with"], row["without"]
            print(f"  seed {row['seed']}: {row['divisions']} divisions | with: TRA {w['TRA']:.3f}"
                  f" correct {w['correct']}/{row['divisions']} (strict {w['correct_strict']}),"
                  f" {w['found']} found, {w['seconds']:.1f} s | without: TRA {wo['TRA']:.3f},"
                  f" {wo['seconds']:.1f} s", flush=True)
    n_div = sum(r["divisions"] for r in rows)
    print(f"{args.sequences} sequences x 32 frames, {args.cells} cells, {n_div} divisions; sam2_demo, one click per "
          f"cell on frame 0; 95 % bootstrap intervals over sequences")
    figures = {"sequences": args.sequences, "cells": args.cells, "divisions": n_div, "tolerance": args.tolerance}
    for name, label in (("with", "with division detection"), ("without", "without divisions")):
        s = _summary(rows, name)
        figures[name] = {k: (v if k == "seconds" else [round(v[0], 4), [round(x, 4) for x in
                                                                         v[1]]])
                         for k, v in s.items()}
        print(f"  {label}:")
        for key in ("TRA", "DET", "SEG"):
            m, (lo, hi) = s[key]
            print(f"    {key:4s} {m:.3f}  95% [{lo:.3f}, {hi:.3f}]"
                  f"{'  (target >= 0.9)' if key == 'TRA' else ''}")
        m, (lo, hi) = s["correct"]
        print(f"    divisions correct (+-{args.tolerance} frame) {m:.3f}  95% [{lo:.3f}, {hi:.3f}]"
              f"  (target >= 0.80)")
        m, (lo, hi) = s["correct_strict"]
        print(f"    divisions correct (same frame)  {m:.3f}  95% [{lo:.3f}, {hi:.3f}]")
        print(f"    propagation time {s['seconds']:.1f} s in all")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": describe(), **figures,
                                               "per_sequence": rows}, indent=1))


if __name__ == "__main__":
    main()
