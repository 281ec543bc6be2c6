"""``TrainRun``: everything one training run (one recipe phase) needs, as a typed config.

One dataclass is the single description of the ``napari-sam2 train`` options: each field is
one option (``run_dir`` -> ``--run-dir``), its default is the option's default and its
``metadata["cli"]`` holds the help text and the argument type that checks the value. From it:

* ``add_options(parser)`` adds the options, in field order, to an argparse parser (the CLI);
* ``TrainRun.from_namespace(args)`` / ``TrainRun.from_argv(argv)`` build a run from parsed or
  raw options (the CLI; a recipe's phase, whose ``args`` are these options);
* ``run.command()`` rebuilds the ``napari-sam2 train`` command that gives the run (the options
  that differ from their defaults, in field order): the record of how weights were made;
* ``run.train_config()`` is the :class:`~napari_sam2.training.trainer.TrainConfig` it trains
  with.

``napari_sam2.training.run.run_training(run)`` runs it. Torch-free.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields

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
from napari_sam2.errors import InvalidOptionError

__all__ = ["TrainRun", "add_options"]


def _opt(default=MISSING, help: str | None = None, type=None, **more):  # noqa: A002
    """A field that is also a command-line option (help text, argument type, metavar)."""
    return field(default=default, metadata={"cli": {"help": help, "type": type, **more}})


@dataclass(frozen=True, kw_only=True)
class TrainRun:
    """One ``napari-sam2 train`` run: model, data curriculum, schedule, limits and outputs.

    Field order is the option order of ``napari-sam2 train --help`` and of ``command()``.
    """

    variant: str = _opt("sam2_demo", "model variant (default sam2_demo)", variant_name)
    run_dir: str = _opt(help="folder for checkpoint.pt and log.jsonl")
    resume: bool = _opt(False, "continue from RUN_DIR/checkpoint.pt (same settings)")
    init: str | None = _opt(None, "start from these weights (.safetensors/.pt) instead of random")
    steps: int = _opt(2000, "total optimiser steps", positive_int)
    budget_minutes: float | None = _opt(
        None, "training-time budget of the whole run: the LR schedule and the curriculum "
        "follow max(step/steps, time/budget)", positive_float)
    minutes: float | None = _opt(
        None, "stop after this many minutes of this session (then checkpoint)", positive_float)
    stop_at_minutes: float | None = _opt(
        None, "stop when the run's training time reaches this many minutes, counted over "
        "resumes (the schedule still follows --budget-minutes)", positive_float)
    lr: float = _opt(1e-3, None, positive_float)
    warmup_steps: int = _opt(50, None, non_negative_int)
    image_batch: int = _opt(4, "images per image step", positive_int)
    objects_per_image: int = _opt(6, None, positive_int)
    video_batch: int = _opt(1, "clips per video step", positive_int)
    objects_per_clip: int = _opt(4, None, positive_int)
    num_frames: int = _opt(8, "frames per video clip", positive_int)
    video_start: float = _opt(0.3, "fraction of steps before video steps begin", fraction)
    video_prob: float = _opt(0.5, "share of video steps once they begin", fraction)
    max_corrections: int = _opt(2, None, non_negative_int)
    box_noise: float = _opt(
        0.1, "training boxes: each corner jittered by this x the box side (default 0.1 as in "
        "SAM; 0 = tight boxes)", non_negative_float)
    memory_dropout: float | None = _opt(
        None, "dropout in memory attention while training (default: the model's, 0.1 as in "
        "SAM 2; 0 trains video steps ~12%% faster on CPU)", fraction_below_one)
    image_box_share: float = _opt(
        0.5, "share of box prompts on image steps (the rest are clicks)", fraction)
    cells_ramp: float = _opt(
        0.0, "curriculum: fraction of the run over which clips grow from 1-2 cells to 3-10 "
        "(0: no curriculum)", fraction)
    nuclei_fraction: float = _opt(
        0.0, "share of clips from the textured-nuclei generators (many scales, fast motion, "
        "stage drift, nuclei ending along z; training/nuclei_clips.py); 0 = the first demo "
        "model's data", fraction)
    image_size: int | None = _opt(
        None, "train at this input size instead of the variant's (same weight shapes; e.g. a "
        "fast low-resolution first phase)", positive_int)
    init_exclude: str = _opt(
        "", "comma-separated parameter-name prefixes NOT taken from --init (they keep their "
        "fresh random initialisation)")
    tie_decoder_attention: float | None = _opt(
        None, "start the mask decoder's cross-attentions with k_proj = q_proj * SCALE (see "
        "training/init.py); applied after --init", float, metavar="SCALE")
    seed: int = _opt(0, None, non_negative_int)
    device: str = _opt("auto", "auto, cpu, cuda, cuda:N or mps", device_name)
    threads: int | None = _opt(None, "torch CPU threads", positive_int)
    checkpoint_every: float = _opt(300.0, "seconds", positive_float)
    log_every: int = _opt(10, "print every N steps", positive_int)
    export: str | None = _opt(
        None, "write the final weights here (.safetensors) with a .json record")
    overwrite: bool = _opt(False, "replace --export (and its .json record) if it exists")

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> TrainRun:
        """The run of parsed options (extra attributes such as ``recipe`` are ignored)."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    @classmethod
    def from_argv(cls, argv: list[str]) -> TrainRun:
        """The run of ``napari-sam2 train`` options given as words (a recipe phase's args).

        Raises:
            InvalidOptionError: an unknown option or a value its type refuses.
        """
        parser = _RaisingParser(prog="napari-sam2 train", add_help=False)
        add_options(parser)
        return cls.from_namespace(parser.parse_args([str(a) for a in argv]))

    def command(self) -> str:
        """The ``napari-sam2 train`` command that gives this run: options that differ from
        their defaults, in field order (how the weights were made, whichever way the run was
        started: shell, ``main(argv)`` or a recipe)."""
        words = ["napari-sam2", "train"]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.default is not MISSING and value == f.default:
                continue
            words.append(_flag(f.name))
            if not isinstance(f.default, bool):  # store_true flags take no value
                words.append(str(value))
        return " ".join(words)

    def train_config(self):
        """The :class:`~napari_sam2.training.trainer.TrainConfig` of this run."""
        from napari_sam2.training.trainer import TrainConfig

        return TrainConfig(
            steps=self.steps, lr=self.lr, warmup_steps=self.warmup_steps,
            image_batch=self.image_batch, objects_per_image=self.objects_per_image,
            video_batch=self.video_batch, objects_per_clip=self.objects_per_clip,
            num_frames=self.num_frames, video_start=self.video_start,
            video_prob=self.video_prob, max_corrections=self.max_corrections, seed=self.seed,
            box_noise=self.box_noise, memory_dropout=self.memory_dropout,
            image_prompt_probs=(0.0, 1.0 - self.image_box_share, self.image_box_share),
            checkpoint_every_s=self.checkpoint_every,
            time_budget_s=None if self.budget_minutes is None else self.budget_minutes * 60)


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add one option per :class:`TrainRun` field, in field order."""
    for f in fields(TrainRun):
        cli = {k: v for k, v in f.metadata["cli"].items() if v is not None}
        if isinstance(f.default, bool):
            parser.add_argument(_flag(f.name), action="store_true", help=cli.get("help"))
        elif f.default is MISSING:
            parser.add_argument(_flag(f.name), required=True, **cli)
        else:
            parser.add_argument(_flag(f.name), default=f.default, **cli)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise InvalidOptionError(message)
