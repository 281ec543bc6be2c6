"""Quality of the shipped demo model (or any checkpoint) on held-out synthetic sequences.

    .venv/bin/python benchmarks/bench_quality.py                        # shipped sam2_demo
    .venv/bin/python benchmarks/bench_quality.py --checkpoint runs/x/w.safetensors
    .venv/bin/python benchmarks/bench_quality.py --sequences 8 --video-sequences 4 --baseline

Prints the machine, then for the model (and, with ``--baseline``, the same architecture with
random weights as the in-run reference):

* one positive click (the most interior pixel of each cell) -> mean IoU (issue 5 target 0.85);
* the cell's bounding box -> mean IoU (target 0.9);
* one click per cell on frame 0, propagated over 16 frames with ``TrackingSession`` -> mean
  J&F (target 0.8), J and F separately;
* the cell that leaves the field and comes back: share of its out-of-field frames predicted
  empty, and whether it is found again (IoU > 0.5 on the last frame).

Held-out sequences: ``make_cell_timelapse(shape=(192, 256), n_cells=6)`` with seeds from
``napari_sam2.training.evaluate.HELD_OUT_SEED``; the training run never draws them.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch


def _machine() -> str:
    return (f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads").strip()


def _report(name: str, model, args) -> dict:
    from napari_sam2.training.evaluate import click_and_box_iou, propagation_jf

    start = time.perf_counter()
    rows: list = []
    click, box = click_and_box_iou(model, n_sequences=args.sequences, details=rows)
    t_img = time.perf_counter() - start
    start = time.perf_counter()
    q = propagation_jf(model, n_sequences=args.video_sequences, n_frames=args.frames)
    t_vid = time.perf_counter() - start
    print(f"{name}")
    print(f"  click IoU        {click:.3f}   (target >= 0.85)")
    print(f"  box IoU          {box:.3f}   (target >= 0.90)")
    for touching in (False, True):
        part = [r for r in rows if r["touching"] == touching]
        if part:
            print(f"    {'touching another cell' if touching else 'isolated cells':22s} "
                  f"n={len(part):3d}  click {sum(r['click_iou'] for r in part) / len(part):.3f}"
                  f"  box {sum(r['box_iou'] for r in part) / len(part):.3f}")
    print(f"  propagation J&F  {q.jf:.3f}   (target >= 0.80; J {q.j:.3f}, F {q.f:.3f}, "
          f"{args.frames} frames)")
    print(f"  leaves/returns   absent-while-out {q.absent_correct:.2f}, "
          f"found again {q.reappear_found:.2f}")
    for row in q.per_sequence:
        print(f"    sequence seed {row['seed']}: J {row['j']:.3f}  F {row['f']:.3f}")
    print(f"  time: images {t_img:.1f} s ({args.sequences} sequences x 2 frames), "
          f"propagation {t_vid:.1f} s ({args.video_sequences} sequences)")
    return {"click_iou": round(click, 4), "box_iou": round(box, 4), "jf": round(q.jf, 4),
            "j": round(q.j, 4), "f": round(q.f, 4), "absent_while_out": q.absent_correct,
            "found_again": q.reappear_found, "image_sequences": args.sequences,
            "video_sequences": args.video_sequences, "frames": args.frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="sam2_demo")
    parser.add_argument("--checkpoint", default=None, help="weights file (default: shipped)")
    parser.add_argument("--sequences", type=int, default=4, help="sequences for click/box")
    parser.add_argument("--video-sequences", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the model's figures here")
    parser.add_argument("--baseline", action="store_true",
                        help="also measure the random-init model (in-run reference)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from napari_sam2.model import build_model, load_model

    print(f"machine: {_machine()}")
    model = load_model(args.variant, args.checkpoint, device="cpu")
    figures = _report(f"{args.variant} ({args.checkpoint or 'shipped weights'})", model, args)
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    if args.baseline:
        torch.manual_seed(0)
        _report(f"{args.variant} random init (baseline)", build_model(args.variant), args)


if __name__ == "__main__":
    main()
