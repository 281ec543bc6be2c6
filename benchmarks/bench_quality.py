"""Quality of the shipped demo model (or any checkpoint) on held-out synthetic sequences.

    .venv/bin/python benchmarks/bench_quality.py                        # shipped sam2_demo
    .venv/bin/python benchmarks/bench_quality.py --checkpoint runs/x/w.safetensors
    .venv/bin/python benchmarks/bench_quality.py --checkpoint new.safetensors --compare shipped
    .venv/bin/python benchmarks/bench_quality.py --sequences 4 --video-sequences 2   # quick look

Prints the machine, then for the model (and, with ``--baseline``, the same architecture with
random weights as the in-run reference):

* one positive click (the most interior pixel of each cell) -> mean IoU (issue 5 target 0.85);
* the cell's bounding box -> mean IoU (target 0.9);
* one click per cell on frame 0, propagated over 16 frames with ``TrackingSession`` -> mean
  J&F (target 0.8), J and F separately;
* the cell that leaves the field and comes back: share of its out-of-field frames predicted
  empty, and in how many sequences it is found again (IoU > 0.5 on the last frame);
* the held-out sets of issue 22 (``training/evaluate_cases.py``; ``--no-cases`` skips them):
  z-stacks of nuclei that start and end at their own depths (slices outside each nucleus
  predicted empty, target 0.95, and 3D IoU, target 0.75, with the plugin's early stop along z;
  the first figure also without it), textured nuclei under a stage drift of 4 px per frame
  (J&F, target 0.8), and nuclei of 12-20 px on the model's input (click IoU, target 0.75).

Each mean comes with a 95 % bootstrap interval that resamples whole sequences
(``evaluate.bootstrap_ci``). The default sets (32 sequences x 2 frames for click and box, 16
sequences for propagation; ``evaluate.IMAGE_SEQUENCES``, ``VIDEO_SEQUENCES``) are large enough
that the interval is about +-0.02; a set of 4 sequences moves by +-0.03 with the seeds drawn.
``--compare`` measures a second set of weights on the same sequences and prints the differences
with paired intervals, which are much narrower: use it to tell whether a new recipe is better.

Held-out sequences: ``make_cell_timelapse(shape=(192, 256), n_cells=6)`` with seeds from
``napari_sam2.training.evaluate.HELD_OUT_SEED``; the training run never draws them.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from napari_sam2.training.evaluate import IMAGE_SEQUENCES, VIDEO_SEQUENCES


def _machine() -> str:
    from _cpu import describe  # benchmarks/ is on sys.path when this file is run

    return f"{describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads"


def _ci(interval) -> str:
    """(low, high) -> "[low, high]" with 3 decimals."""
    return f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def _by_sequence(rows: list, key: str) -> tuple[list, list]:
    """Per-sequence means and counts of ``key`` over the detail rows of click_and_box_iou."""
    seeds = sorted({r["seed"] for r in rows})
    values = [[r[key] for r in rows if r["seed"] == s] for s in seeds]
    return [sum(v) / len(v) for v in values], [len(v) for v in values]


def _report(name: str, model, args) -> tuple[dict, dict]:
    """Measure and print one model. -> (figures for --json, per-sequence (means, counts) of
    click, box and J&F for paired comparisons)."""
    from napari_sam2.training.evaluate import bootstrap_ci, click_and_box_iou, propagation_jf

    start = time.perf_counter()
    rows: list = []
    click, box = click_and_box_iou(model, n_sequences=args.sequences, details=rows)
    t_img = time.perf_counter() - start
    start = time.perf_counter()
    q = propagation_jf(model, n_sequences=args.video_sequences, n_frames=args.frames)
    t_vid = time.perf_counter() - start
    seqs = q.per_sequence
    per_sequence = {"click": _by_sequence(rows, "click_iou"), "box": _by_sequence(rows, "box_iou"),
                    "J&F": ([(s["j"] + s["f"]) / 2 for s in seqs], [s["n"] for s in seqs])}
    click_ci, box_ci, jf_ci = (bootstrap_ci(*per_sequence[k]) for k in ("click", "box", "J&F"))
    found = round(q.reappear_found * q.reappear_count) if q.reappear_count else 0

    print(f"{name}")
    print(f"  click IoU        {click:.3f}  95% {_ci(click_ci)}  (target >= 0.85; "
          f"{len(rows)} objects, {args.sequences} sequences x 2 frames)")
    print(f"  box IoU          {box:.3f}  95% {_ci(box_ci)}  (target >= 0.90)")
    for touching in (False, True):
        part = [r for r in rows if r["touching"] == touching]
        if part:
            print(f"    {'touching another cell' if touching else 'isolated cells':22s} "
                  f"n={len(part):3d}  click {sum(r['click_iou'] for r in part) / len(part):.3f}"
                  f"  box {sum(r['box_iou'] for r in part) / len(part):.3f}")
    print(f"  propagation J&F  {q.jf:.3f}  95% {_ci(jf_ci)}  (target >= 0.80; J {q.j:.3f}, "
          f"F {q.f:.3f}, {args.video_sequences} sequences x {args.frames} frames)")
    print(f"  leaves/returns   absent-while-out {q.absent_correct:.2f}, "
          f"found again in {found} of {q.reappear_count} sequences")
    for row in seqs:
        print(f"    sequence seed {row['seed']}: J {row['j']:.3f}  F {row['f']:.3f}")
    print(f"  time: images {t_img:.1f} s, propagation {t_vid:.1f} s")
    figures = {"click_iou": round(click, 4), "click_iou_ci95": [round(v, 4) for v in click_ci],
               "box_iou": round(box, 4), "box_iou_ci95": [round(v, 4) for v in box_ci],
               "jf": round(q.jf, 4), "jf_ci95": [round(v, 4) for v in jf_ci],
               "j": round(q.j, 4), "f": round(q.f, 4), "absent_while_out": q.absent_correct,
               "found_again": q.reappear_found, "found_again_of": q.reappear_count,
               "objects": len(rows), "image_sequences": args.sequences,
               "video_sequences": args.video_sequences, "frames": args.frames}
    if args.cases:
        _cases(model, args, figures, per_sequence)
    return figures, per_sequence


def _cases(model, args, figures: dict, per_sequence: dict) -> None:
    """The held-out sets of issue 22 (training/evaluate_cases.py): nuclei that end along z,
    stage drift, small objects. Adds their figures and per-sequence means in place."""
    from napari_sam2.training.evaluate import bootstrap_ci
    from napari_sam2.training.evaluate_cases import drift_jf, small_click_iou, zstack_quality

    start = time.perf_counter()
    results = [*zstack_quality(model, n_volumes=args.case_sequences),
               zstack_quality(model, n_volumes=args.case_sequences, stop_after_absent=None)[0],
               drift_jf(model, n_sequences=args.case_sequences),
               small_click_iou(model, n_images=args.case_sequences)]
    keys = ("z empty", "z 3D IoU", "z empty, no stop", "drift J&F", "small click")
    for key, r in zip(keys, results):
        more = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in r.extra.items())
        bar = "" if r.target != r.target else f"target >= {r.target:.2f}; "
        print(f"  {r.name:58s} {r.value:.3f}  95% {_ci(bootstrap_ci(r.means, r.counts))}  "
              f"({bar}{more})")
        figures[r.name] = round(r.value, 4)
        per_sequence[key] = (r.means, r.counts)
    print(f"  time: held-out cases {time.perf_counter() - start:.1f} s "
          f"({args.case_sequences} volumes / sequences / images each)")


def _print_paired(name: str, ours: dict, other: dict) -> None:
    """Differences ours - other on the same sequences, with paired 95 % intervals."""
    from napari_sam2.training.evaluate import bootstrap_ci

    print(f"difference: this model - {name} (same sequences; 95 % paired bootstrap)")
    for key, (means, counts) in ours.items():
        diffs = [a - b for a, b in zip(means, other[key][0])]
        pooled = sum(d * n for d, n in zip(diffs, counts)) / sum(counts)
        print(f"  {key:28s} {pooled:+.3f}  95% {_ci(bootstrap_ci(diffs, counts))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="sam2_demo")
    parser.add_argument("--checkpoint", default=None, help="weights file (default: shipped)")
    parser.add_argument("--sequences", type=int, default=IMAGE_SEQUENCES,
                        help=f"sequences for click/box (default {IMAGE_SEQUENCES})")
    parser.add_argument("--video-sequences", type=int, default=VIDEO_SEQUENCES,
                        help=f"sequences for propagation (default {VIDEO_SEQUENCES})")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--no-cases", dest="cases", action="store_false",
                        help="skip the held-out sets of issue 22 (z ends, drift, small objects)")
    parser.add_argument("--case-sequences", type=int, default=12,
                        help="volumes / sequences / images in each issue-22 set (default 12)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the model's figures here")
    parser.add_argument("--compare", default=None, metavar="WEIGHTS",
                        help="also measure these weights (same variant; 'shipped' for the "
                             "shipped file) and print the paired differences")
    parser.add_argument("--baseline", action="store_true",
                        help="also measure the random-init model (in-run reference)")
    parser.add_argument("--bfloat16", action="store_true",
                        help="bfloat16 autocast on the CPU (default float32: the documented "
                             "figures and tests/training/test_shipped_quality.py are float32)")
    args = parser.parse_args()
    # the engine's default precision follows this variable (engine/device.py)
    os.environ["NAPARI_SAM2_BFLOAT16"] = "1" if args.bfloat16 else "0"
    if args.threads:
        torch.set_num_threads(args.threads)
    from napari_sam2.model import build_model, load_model

    print(f"machine: {_machine()}, {'bfloat16' if args.bfloat16 else 'float32'}")
    model = load_model(args.variant, args.checkpoint, device="cpu")
    figures, ours = _report(f"{args.variant} ({args.checkpoint or 'shipped weights'})", model,
                            args)
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    if args.compare:
        other_path = None if args.compare == "shipped" else args.compare
        name = f"{args.variant} ({other_path or 'shipped weights'})"
        _, other = _report(name, load_model(args.variant, other_path, device="cpu"), args)
        _print_paired(name, ours, other)
    if args.baseline:
        torch.manual_seed(0)
        _report(f"{args.variant} random init (baseline)", build_model(args.variant), args)


if __name__ == "__main__":
    main()
