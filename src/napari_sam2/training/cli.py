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
import math
import time
from pathlib import Path

from napari_sam2.cli_options import (
    device_name,
    fraction,
    fraction_below_one,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    variant_name,
)
from napari_sam2.errors import RefusedOverwriteError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default=None, metavar="NAME",
                        help="run every phase of a recipe (a shipped variant such as sam2_demo, "
                             "or a recipe JSON file) in RUN_DIR/phase<i>; see training/recipe.py")
    parser.add_argument("--variant", default="sam2_demo", type=variant_name,
                        help="model variant (default sam2_demo)")
    parser.add_argument("--run-dir", required=True, help="folder for checkpoint.pt and log.jsonl")
    parser.add_argument("--resume", action="store_true",
                        help="continue from RUN_DIR/checkpoint.pt (same settings)")
    parser.add_argument("--init", default=None,
                        help="start from these weights (.safetensors/.pt) instead of random")
    parser.add_argument("--steps", type=positive_int, default=2000, help="total optimiser steps")
    parser.add_argument("--budget-minutes", type=positive_float, default=None,
                        help="training-time budget of the whole run: the LR schedule and the "
                             "curriculum follow max(step/steps, time/budget)")
    parser.add_argument("--minutes", type=positive_float, default=None,
                        help="stop after this many minutes of this session (then checkpoint)")
    parser.add_argument("--stop-at-minutes", type=positive_float, default=None,
                        help="stop when the run's training time reaches this many minutes, "
                             "counted over resumes (the schedule still follows --budget-minutes)")
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    parser.add_argument("--warmup-steps", type=non_negative_int, default=50)
    parser.add_argument("--image-batch", type=positive_int, default=4, help="images per image step")
    parser.add_argument("--objects-per-image", type=positive_int, default=6)
    parser.add_argument("--video-batch", type=positive_int, default=1, help="clips per video step")
    parser.add_argument("--objects-per-clip", type=positive_int, default=4)
    parser.add_argument("--num-frames", type=positive_int, default=8, help="frames per video clip")
    parser.add_argument("--video-start", type=fraction, default=0.3,
                        help="fraction of steps before video steps begin")
    parser.add_argument("--video-prob", type=fraction, default=0.5,
                        help="share of video steps once they begin")
    parser.add_argument("--max-corrections", type=non_negative_int, default=2)
    parser.add_argument("--box-noise", type=non_negative_float, default=0.1,
                        help="training boxes: each corner jittered by this x the box side "
                             "(default 0.1 as in SAM; 0 = tight boxes)")
    parser.add_argument("--memory-dropout", type=fraction_below_one, default=None,
                        help="dropout in memory attention while training (default: the "
                             "model's, 0.1 as in SAM 2; 0 trains video steps ~12%% faster on "
                             "CPU)")
    parser.add_argument("--image-box-share", type=fraction, default=0.5,
                        help="share of box prompts on image steps (the rest are clicks)")
    parser.add_argument("--cells-ramp", type=fraction, default=0.0,
                        help="curriculum: fraction of the run over which clips grow from 1-2 "
                             "cells to 3-10 (0: no curriculum)")
    parser.add_argument("--image-size", type=positive_int, default=None,
                        help="train at this input size instead of the variant's (same weight "
                             "shapes; e.g. a fast low-resolution first phase)")
    parser.add_argument("--init-exclude", default="",
                        help="comma-separated parameter-name prefixes NOT taken from --init "
                             "(they keep their fresh random initialisation)")
    parser.add_argument("--tie-decoder-attention", type=float, default=None, metavar="SCALE",
                        help="start the mask decoder's cross-attentions with k_proj = q_proj "
                             "* SCALE (see training/init.py); applied after --init")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--device", type=device_name, default="auto",
                        help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    parser.add_argument("--checkpoint-every", type=positive_float, default=300.0, help="seconds")
    parser.add_argument("--log-every", type=positive_int, default=10, help="print every N steps")
    parser.add_argument("--export", default=None,
                        help="write the final weights here (.safetensors) with a .json record")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --export (and its .json record) if it exists")


def _config_from_args(args):
    from napari_sam2.training.trainer import TrainConfig

    return TrainConfig(
        steps=args.steps, lr=args.lr, warmup_steps=args.warmup_steps,
        image_batch=args.image_batch, objects_per_image=args.objects_per_image,
        video_batch=args.video_batch, objects_per_clip=args.objects_per_clip,
        num_frames=args.num_frames, video_start=args.video_start, video_prob=args.video_prob,
        max_corrections=args.max_corrections, seed=args.seed, box_noise=args.box_noise,
        memory_dropout=args.memory_dropout,
        image_prompt_probs=(0.0, 1.0 - args.image_box_share, args.image_box_share),
        checkpoint_every_s=args.checkpoint_every,
        time_budget_s=None if args.budget_minutes is None else args.budget_minutes * 60)


def command_line(args) -> str:
    """The ``napari-sam2 train`` command that gives ``args`` (options that differ from their
    defaults, in the parser's order): the record of how weights were made, whichever way the
    run was started (shell, ``main(argv)`` or a recipe)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    words = ["napari-sam2", "train"]
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        words.append(action.option_strings[0])
        if action.nargs != 0:  # store_true flags take no value
            words.append(str(value))
    return " ".join(words)


def _printer(log_every: int, total: int):
    window: list = []

    def show(report) -> None:
        window.append(report)
        if report.step % log_every and report.step != total:
            return
        loss = sum(r.loss for r in window) / len(window)
        clicks = [r.click_iou for r in window if not math.isnan(r.click_iou)]
        tracked = [r.tracked_iou for r in window if not math.isnan(r.tracked_iou)]
        secs = sum(r.seconds for r in window) / len(window)
        n_video = sum(r.kind == "video" for r in window)
        parts = [f"step {report.step}/{total}", f"loss {loss:.4f}", f"lr {report.lr:.2e}",
                 f"{secs:.2f} s/step", f"video {n_video}/{len(window)}"]
        if clicks:
            parts.append(f"click IoU {sum(clicks) / len(clicks):.3f}")
        if tracked:
            parts.append(f"tracked IoU {sum(tracked) / len(tracked):.3f}")
        print("  ".join(parts), flush=True)
        window.clear()

    return show


def _check_before_training(args, ckpt: Path) -> None:
    """Every check that can fail, before any model is built (errors are raised; the entry point
    prints them on one line)."""
    from napari_sam2.model.device import choose_device
    from napari_sam2.training.outputs import prepare_folder, prepare_output

    if args.resume and not ckpt.is_file():
        raise FileNotFoundError(f"--resume given but {ckpt} does not exist; leave out --resume "
                                "to start a new run there")
    if not args.resume and ckpt.is_file():
        raise RefusedOverwriteError(f"{ckpt} exists; pass --resume to continue it or use "
                                    "another --run-dir")
    if args.init and not args.resume and not Path(args.init).expanduser().is_file():
        raise FileNotFoundError(f"--init {args.init} does not exist; give a weights file "
                                "(.safetensors/.pt) or leave --init out to start from random")
    choose_device(args.device)
    if args.export:
        prepare_output(args.export, suffixes=(".safetensors",), overwrite=args.overwrite,
                       option="--export")
    prepare_folder(ckpt.parent, what="--run-dir")


def run(args) -> int:
    if args.recipe:
        from napari_sam2.training.recipe import run_recipe

        return run_recipe(args.recipe, args.run_dir, export=args.export, threads=args.threads,
                          device=None if args.device == "auto" else args.device,
                          overwrite=args.overwrite)
    import torch

    from napari_sam2.model import build_model
    from napari_sam2.model.config import get_config
    from napari_sam2.model.device import choose_device
    from napari_sam2.training.datasets import SyntheticClips
    from napari_sam2.training.export import export_weights
    from napari_sam2.training.trainer import Trainer

    run_dir = Path(args.run_dir)
    ckpt = run_dir / "checkpoint.pt"
    _check_before_training(args, ckpt)
    if args.threads:
        torch.set_num_threads(args.threads)
    variant = args.variant
    config = _config_from_args(args)
    if args.resume:
        config, variant = Trainer.read_config(ckpt)
    device = choose_device(args.device)
    torch.manual_seed(config.seed)
    config_model = get_config(variant)
    if args.image_size:
        from dataclasses import replace

        config_model = replace(config_model, image_size=args.image_size)
    model = build_model(config_model, device=device)
    if args.init and not args.resume:
        from napari_sam2.model.checkpoint import load_weights, read_state_dict

        state = read_state_dict(args.init)
        keep = tuple(p for p in args.init_exclude.split(",") if p)
        if keep:
            own = model.state_dict()
            state = {k: (own[k] if k.startswith(keep) else v) for k, v in state.items()}
        load_weights(model, state, variant_name=variant)
    if args.tie_decoder_attention and not args.resume:
        from napari_sam2.training.init import tie_decoder_cross_attention

        tie_decoder_cross_attention(model, args.tie_decoder_attention)
    size = model.config.image_size
    images = SyntheticClips(size, num_frames=1, max_objects=config.objects_per_image,
                            volume_fraction=0.15, ramp=args.cells_ramp)
    videos = SyntheticClips(size, num_frames=config.num_frames,
                            max_objects=config.objects_per_clip, volume_fraction=0.2,
                            ramp=args.cells_ramp)
    trainer = Trainer(model, config, image_source=images, video_source=videos,
                      run_dir=run_dir, variant=variant)
    if args.resume:
        trainer.load_state(ckpt)
        print(f"resumed {ckpt} at step {trainer.step}", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"training {variant} ({n_params / 1e6:.2f} M parameters) on {device}, "
          f"{torch.get_num_threads()} threads, steps {trainer.step}->{config.steps}", flush=True)
    start = time.perf_counter()
    limits = []  # seconds of this session
    if args.minutes is not None:
        limits.append(args.minutes * 60)
    if args.stop_at_minutes is not None:
        limits.append(max(args.stop_at_minutes * 60 - trainer.elapsed, 0.0))
    try:
        trainer.train(max_seconds=min(limits) if limits else None,
                      progress=_printer(max(args.log_every, 1), config.steps))
    except KeyboardInterrupt:
        trainer.save()
        print(f"interrupted: checkpoint at step {trainer.step} in {ckpt}", flush=True)
        return 130
    print(f"stopped at step {trainer.step} after {time.perf_counter() - start:.0f} s; "
          f"checkpoint {ckpt}", flush=True)
    if args.export:
        record = {"variant": variant, "command": command_line(args),
                  "seed": config.seed, "steps": trainer.step,
                  "train_seconds": round(trainer.elapsed, 1), "device": str(device),
                  "threads": torch.get_num_threads(), "train_config": config.__dict__}
        path = export_weights(model.eval(), args.export, record)
        print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
    return 0
