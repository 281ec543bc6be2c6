"""Fine-tune a SAM 2 model on your own image + label stacks (TIFF, zarr or .npy).

Example::

    napari-sam2 finetune --images movie.tif --labels movie_labels.tif \
        --variant sam2_demo --output my_model.safetensors --epochs 5

Then load it in Python with ``load_model("sam2_demo", checkpoint="my_model.safetensors")`` or
choose the file in the plugin. Several pairs: repeat ``--images`` and ``--labels`` in order.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", action="append", required=True,
                        help="image file: 2D, 2D+t or 3D (first axis = frames or slices)")
    parser.add_argument("--labels", action="append", required=True,
                        help="label file of the same shape (0 = background)")
    parser.add_argument("--variant", default="sam2_demo", help="base model variant")
    parser.add_argument("--checkpoint", default=None,
                        help="base weights file (.safetensors/.pt); default: the variant's own")
    parser.add_argument("--output", required=True, help="fine-tuned weights (.safetensors)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="share of each stack's frames held out for validation")
    parser.add_argument("--num-frames", type=int, default=8, help="frames per video clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--run-dir", default=None, help="folder for a training checkpoint/log")


def run(args) -> int:
    from napari_sam2.training.stack_io import load_pair

    if len(args.images) != len(args.labels):
        print(f"error: {len(args.images)} --images but {len(args.labels)} --labels; give one "
              "label file per image file", file=sys.stderr)
        return 2
    try:  # read and check every input before any model is loaded
        stacks = [load_pair(im, lab) for im, lab in zip(args.images, args.labels)]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import torch

    from napari_sam2.training.finetune import finetune

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        finetune(stacks, variant=args.variant, checkpoint=args.checkpoint, output=args.output,
                 epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, lr=args.lr,
                 val_fraction=args.val_fraction, num_frames=args.num_frames, seed=args.seed,
                 device=args.device, run_dir=args.run_dir)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
