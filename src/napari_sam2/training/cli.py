"""Train a SAM 2 variant from scratch on synthetic microscopy data (the demo model's recipe).

Example (the command that produced the shipped ``sam2_demo`` weights is in
``napari_sam2/weights/sam2_demo.json`` and ``docs/training.md``)::

    napari-sam2 train --variant sam2_demo --run-dir runs/demo --minutes 55 \
        --export runs/demo/sam2_demo.safetensors

Stop it at any time (Ctrl-C): the checkpoint in the run folder is at most
``--checkpoint-every`` seconds old; ``--resume`` continues from it.
"""

from __future__ import annotations

import argparse

from napari_sam2.training.run_config import TrainRun, add_options

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--recipe`` and the options of one run (one per :class:`TrainRun` field)."""
    parser.add_argument("--recipe", default=None, metavar="NAME",
                        help="run every phase of a recipe (a shipped variant such as sam2_demo, "
                             "or a recipe JSON file) in RUN_DIR/phase<i>; see training/recipe.py")
    add_options(parser)


def run(args: argparse.Namespace) -> int:
    """Parsed options -> :class:`TrainRun` -> ``run_training``; or every phase of a recipe."""
    if args.recipe:
        from napari_sam2.training.recipe import run_recipe

        return run_recipe(args.recipe, args.run_dir, export=args.export, threads=args.threads,
                          device=None if args.device == "auto" else args.device,
                          overwrite=args.overwrite)
    from napari_sam2.training.run import run_training

    return run_training(TrainRun.from_namespace(args))
