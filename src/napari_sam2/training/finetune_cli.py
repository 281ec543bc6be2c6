"""Fine-tune a SAM 2 model on your own image + label stacks (TIFF, zarr or .npy).

Example::

    napari-sam2 finetune --images movie.tif --labels movie_labels.tif \
        --variant sam2_demo --output my_model.safetensors --epochs 5

Then load it in Python with ``load_model("sam2_demo", checkpoint="my_model.safetensors")`` or
choose the file in the plugin. Several pairs: repeat ``--images`` and ``--labels`` in order.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_sam2.cli_options import (
    device_name,
    fraction_below_one,
    non_negative_int,
    positive_float,
    positive_int,
    variant_name,
)
from napari_sam2.errors import InvalidOptionError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", action="append", required=True,
                        help="image file: 2D, 2D+t or 3D (first axis = frames or slices)")
    parser.add_argument("--labels", action="append", required=True,
                        help="label file of the same shape (0 = background)")
    parser.add_argument("--variant", default="sam2_demo", type=variant_name,
                        help="base model variant")
    parser.add_argument("--checkpoint", default=None,
                        help="base weights file (.safetensors/.pt); default: the variant's own")
    parser.add_argument("--output", required=True, help="fine-tuned weights (.safetensors)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --output (and its .json record) if it exists")
    parser.add_argument("--epochs", type=positive_int, default=5)
    parser.add_argument("--steps-per-epoch", type=positive_int, default=50)
    parser.add_argument("--lr", type=positive_float, default=1e-4)
    parser.add_argument("--val-fraction", type=fraction_below_one, default=0.2,
                        help="share of each stack's frames held out for validation")
    parser.add_argument("--num-frames", type=positive_int, default=8,
                        help="frames per video clip")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--device", type=device_name, default="auto",
                        help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    parser.add_argument("--run-dir", default=None, help="folder for a training checkpoint/log")


def run(args) -> int:
    """Check every option, output and input file, then fine-tune. Errors are raised (the
    ``napari-sam2`` entry point prints them on one line)."""
    from napari_sam2.training.outputs import prepare_folder, prepare_output
    from napari_sam2.training.stack_io import load_pair

    if len(args.images) != len(args.labels):
        raise InvalidOptionError(
            f"{len(args.images)} --images but {len(args.labels)} --labels; give one label file "
            "per image file, in the same order")
    prepare_output(args.output, suffixes=(".safetensors", ".pt", ".pth"),
                   overwrite=args.overwrite)
    if args.run_dir is not None:
        prepare_folder(args.run_dir, what="--run-dir")
    import torch

    from napari_sam2.model.device import choose_device

    choose_device(args.device)  # a device that is not there fails before any file is read
    # read and check every input before any model is loaded
    stacks = [load_pair(im, lab) for im, lab in zip(args.images, args.labels)]
    if args.checkpoint is not None and not Path(args.checkpoint).expanduser().is_file():
        raise FileNotFoundError(f"--checkpoint {args.checkpoint} does not exist; give the base "
                                "weights file, or leave --checkpoint out to use the variant's")
    from napari_sam2.training.finetune import finetune

    if args.threads:
        torch.set_num_threads(args.threads)
    finetune(stacks, variant=args.variant, checkpoint=args.checkpoint, output=args.output,
             epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, lr=args.lr,
             val_fraction=args.val_fraction, num_frames=args.num_frames, seed=args.seed,
             device=args.device, run_dir=args.run_dir, overwrite=args.overwrite)
    return 0
