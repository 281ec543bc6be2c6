"""The training loop: AdamW with warm-up and cosine decay, image/video curriculum, checkpoints.

``Trainer`` owns the model, optimiser, schedule and random state. ``train()`` runs steps until
a step count or a wall-clock budget is reached, reporting progress through a callback, and
writes a resumable checkpoint (``checkpoint.pt``: weights, optimiser, step, random states) every
``checkpoint_every_s`` seconds and at the end, atomically, so the run can be stopped at any time
and resumed with ``Trainer.resume``.

A step is either an *image* step (clips of one frame; many objects per image share one encoder
pass) or a *video* step (clips of ``num_frames`` frames through the differentiable tracking
loop). Video steps start after ``video_start`` of the steps (a curriculum: first learn
"click -> the cell", then memory) and then make up ``video_prob`` of the steps.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from napari_sam2.training.export import save_torch_atomic
from napari_sam2.training.prompts import check_prompt_probs
from napari_sam2.training.tracking_loop import RolloutOptions, RolloutResult, rollout

__all__ = ["TrainConfig", "StepReport", "Trainer", "lr_factor"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a run (recorded in every checkpoint)."""

    steps: int = 2000
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05  # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 1.0
    image_batch: int = 4  # images per image step
    objects_per_image: int = 6
    video_batch: int = 1  # clips per video step
    objects_per_clip: int = 4
    num_frames: int = 8
    video_start: float = 0.3  # fraction of the steps that are image-only
    video_prob: float = 0.5  # share of video steps after video_start
    image_prompt_probs: tuple[float, float, float] = (0.0, 0.5, 0.5)  # mask, click, box
    video_prompt_probs: tuple[float, float, float] = (0.5, 0.25, 0.25)
    max_corrections: int = 2
    second_prompt_prob: float = 0.5
    box_noise: float = 0.1  # box corners jittered by this x the box side (SAM's 0.1)
    memory_dropout: float | None = None  # memory-attention dropout (None: the model's, 0.1)
    seed: int = 0
    checkpoint_every_s: float = 300.0
    time_budget_s: float | None = None  # if set, the schedule runs on max(step, time) progress

    def __post_init__(self) -> None:
        if self.steps < 1 or self.lr <= 0 or self.num_frames < 1:
            raise ValueError(f"TrainConfig needs steps >= 1, lr > 0, num_frames >= 1; "
                             f"got steps={self.steps}, lr={self.lr}, num_frames={self.num_frames}")
        if not 0 <= self.video_start <= 1 or not 0 <= self.video_prob <= 1:
            raise ValueError("video_start and video_prob must be in [0, 1]")
        for probs in (self.image_prompt_probs, self.video_prompt_probs):
            check_prompt_probs(probs, " (e.g. --image-box-share outside [0, 1])")
        if self.box_noise < 0:
            raise ValueError(f"box_noise must be >= 0, got {self.box_noise}")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
        return cls(**kw)


@dataclass
class StepReport:
    """What one step did (for progress output)."""

    step: int
    kind: str  # "image" or "video"
    loss: float
    terms: dict = field(default_factory=dict)
    click_iou: float = float("nan")
    tracked_iou: float = float("nan")
    lr: float = 0.0
    seconds: float = 0.0


def lr_factor(step: int, progress: float, cfg: TrainConfig) -> float:
    """Linear warm-up to 1 over ``warmup_steps``, then cosine decay to ``min_lr_ratio`` as
    ``progress`` (the run's completed fraction, 0..1) goes to 1."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    p = min(max(progress, 0.0), 1.0)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))


class Trainer:
    """Trains ``model`` on clips from ``image_source`` / ``video_source``.

    Args:
        model: a ``Sam2Model`` on its device.
        config: hyper-parameters.
        image_source: object with ``sample(np.random.Generator) -> Clip`` giving 1-frame clips.
        video_source: the same for ``num_frames`` clips (None: image training only).
        run_dir: where ``checkpoint.pt`` and ``log.jsonl`` go (None: nowhere).
        variant: the model's variant name, stored in checkpoints.
    """

    def __init__(self, model, config: TrainConfig, *, image_source, video_source=None,
                 run_dir: str | os.PathLike | None = None, variant: str = "custom"):
        self.model = model
        self.config = config
        self.image_source = image_source
        self.video_source = video_source
        self.variant = variant
        if config.memory_dropout is not None:
            model.memory_attention.set_dropout(config.memory_dropout)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            keep = p.ndim <= 1 or "embed" in name or "tpos_enc" in name  # norms, biases, tokens
            (no_decay if keep else decay).append(p)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.999))
        self.step = 0
        self.rng = np.random.default_rng(config.seed)
        self.gen = torch.Generator().manual_seed(config.seed)
        self.elapsed = 0.0  # training seconds over all sessions of this run

    # one step -------------------------------------------------------------------------------
    @property
    def progress(self) -> float:
        """Completed fraction of the run: steps done, or training time if a budget is set."""
        cfg = self.config
        p = self.step / cfg.steps
        if cfg.time_budget_s:
            p = max(p, self.elapsed / cfg.time_budget_s)
        return min(p, 1.0)

    def _is_video_step(self) -> bool:
        cfg = self.config
        if self.video_source is None or cfg.num_frames < 2:
            return False
        if self.progress < cfg.video_start:
            return False
        return bool(self.rng.random() < cfg.video_prob)

    def train_step(self) -> StepReport:
        """Sample a batch, run the rollout, back-propagate, update. Returns the report."""
        cfg = self.config
        start = time.perf_counter()
        video = self._is_video_step()
        for source in (self.image_source, self.video_source):
            if hasattr(source, "set_progress"):
                source.set_progress(self.progress)
        if video:
            clips = [self.video_source.sample(self.rng) for _ in range(cfg.video_batch)]
            probs, second = cfg.video_prompt_probs, cfg.second_prompt_prob
        else:
            clips = [self.image_source.sample(self.rng) for _ in range(cfg.image_batch)]
            probs, second = cfg.image_prompt_probs, 0.0
        opts = RolloutOptions(prompt_probs=probs, max_corrections=cfg.max_corrections,
                              second_prompt_prob=second, box_noise=cfg.box_noise)
        factor = lr_factor(self.step, self.progress, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * factor
        self.model.train()
        result: RolloutResult = rollout(self.model, clips, self.gen, opts)
        self.optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.step += 1
        seconds = time.perf_counter() - start
        self.elapsed += seconds
        return StepReport(step=self.step, kind="video" if video else "image",
                          loss=float(result.loss.detach()), terms=result.terms,
                          click_iou=result.first_click_iou, tracked_iou=result.tracked_iou,
                          lr=cfg.lr * factor, seconds=seconds)

    # the loop -------------------------------------------------------------------------------
    def train(self, *, max_steps: int | None = None, max_seconds: float | None = None,
              progress: Callable[[StepReport], None] | None = None) -> int:
        """Run until the run is complete (``config.steps`` or ``config.time_budget_s``), or for
        ``max_steps`` more steps, or ``max_seconds`` of this session.

        Returns the number of steps done now. Writes checkpoints if ``run_dir`` is set.
        """
        begin = time.perf_counter()
        last_save = begin
        done = 0
        while self.progress < 1.0:
            if max_steps is not None and done >= max_steps:
                break
            if max_seconds is not None and time.perf_counter() - begin >= max_seconds:
                break
            report = self.train_step()
            done += 1
            self._log(report)
            if progress is not None:
                progress(report)
            if self.run_dir is not None and \
                    time.perf_counter() - last_save >= self.config.checkpoint_every_s:
                self.save()
                last_save = time.perf_counter()
        if self.run_dir is not None:
            self.save()
        return done

    def _log(self, report: StepReport) -> None:
        if self.run_dir is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        row = asdict(report)
        row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        with open(self.run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    # checkpoints ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write a resumable checkpoint atomically (default ``run_dir/checkpoint.pt``)."""
        if path is None:
            if self.run_dir is None:
                raise ValueError("Trainer.save needs a path when the trainer has no run_dir")
            path = self.run_dir / "checkpoint.pt"
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "variant": self.variant,
            "train_config": asdict(self.config),
            "numpy_rng": self.rng.bit_generator.state,
            "torch_gen": self.gen.get_state(),
        }
        return save_torch_atomic(state, path)

    def load_state(self, path: str | os.PathLike) -> None:
        """Restore weights, optimiser, step and random states from ``save``'s file."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if "optimizer" not in state or "step" not in state:
            raise ValueError(f"{path} is not a training checkpoint (no optimizer state); "
                             "to start from plain weights use the --init option instead")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.rng.bit_generator.state = state["numpy_rng"]
        self.gen.set_state(state["torch_gen"])

    @staticmethod
    def read_config(path: str | os.PathLike) -> tuple[TrainConfig, str]:
        """The (TrainConfig, variant) stored in a training checkpoint."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        return TrainConfig.from_dict(state["train_config"]), state.get("variant", "custom")
