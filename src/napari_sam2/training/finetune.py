"""Fine-tune a SAM 2 model on the user's own image + label stacks.

    from napari_sam2.training.finetune import finetune
    result = finetune([(images, labels)], variant="sam2_demo", output="my_model.safetensors")
    model = load_model("sam2_demo", checkpoint="my_model.safetensors")

Frames (or z-slices) of each stack are split into training and validation blocks: the last
``val_fraction`` of every stack with at least 2 frames is held out (a single 2D image is used
for both, which the report says). Training uses the same procedure as the demo model
(``training.tracking_loop``): image steps on single frames and, for stacks with several frames,
video steps on short clips. After every epoch the validation click and box IoU are printed.
The result is a safetensors file that ``load_model(variant, checkpoint=path)`` and the plugin
load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_sam2.training.stack_io import check_pair

__all__ = ["FinetuneResult", "split_stacks", "validation_iou", "finetune"]


@dataclass
class FinetuneResult:
    output: Path
    steps: int
    seconds: float
    history: list = field(default_factory=list)  # one dict per epoch
    validated_on_training_data: bool = False


def split_stacks(stacks, val_fraction: float):
    """-> (train stacks, val stacks, whether validation reuses training frames)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    train, val, reused = [], [], False
    for images, labels in stacks:
        n = images.shape[0]
        n_val = int(round(n * val_fraction)) if n >= 2 else 0
        if val_fraction > 0 and n >= 2:
            n_val = min(max(n_val, 1), n - 1)
        if n_val:
            train.append((images[:n - n_val], labels[:n - n_val]))
            val.append((images[n - n_val:], labels[n - n_val:]))
        else:
            train.append((images, labels))
    if not val:
        val, reused = [s for s in train], True
    return train, val, reused


def validation_iou(model, stacks, *, max_objects: int = 32) -> tuple[float, float]:
    """Mean IoU of one interior click and of the box, over the objects of the stacks."""
    from napari_sam2.engine.image_predictor import ImagePredictor
    from napari_sam2.training.evaluate import interior_point, jaccard

    predictor = ImagePredictor(model)
    clicks, boxes = [], []
    for images, labels in stacks:
        for t in range(images.shape[0]):
            ids = [k for k in np.unique(labels[t]) if k != 0]
            if not ids:
                continue
            predictor.set_image(images[t])
            for k in ids:
                if len(clicks) >= max_objects:
                    break
                gt = labels[t] == k
                r, c = interior_point(gt)
                clicks.append(jaccard(predictor.predict(points=[[r, c]], labels=[1]).best, gt))
                rows, cols = np.nonzero(gt)
                box = (rows.min(), cols.min(), rows.max(), cols.max())
                boxes.append(jaccard(predictor.predict(box=box, multimask_output=False).best, gt))
    if not clicks:
        return float("nan"), float("nan")
    return float(np.mean(clicks)), float(np.mean(boxes))


def finetune(stacks, *, variant: str = "sam2_demo", checkpoint=None,
             output: str | os.PathLike = "finetuned.safetensors", epochs: int = 5,
             steps_per_epoch: int = 50, lr: float = 1e-4, val_fraction: float = 0.2,
             num_frames: int = 8, objects_per_image: int = 8, image_batch: int = 2,
             seed: int = 0, device=None, run_dir=None, overwrite: bool = False,
             log: Callable[[str], None] | None = print) -> FinetuneResult:
    """Fine-tune ``variant`` (weights from ``checkpoint``, or its usual source) on ``stacks``.

    Args:
        stacks: list of (images, labels) pairs: (H, W), (N, H, W) or RGB (…, 3) images and
            integer labels of the same shape (checked first, before loading any model).
        variant: model variant; ``checkpoint`` a local weights file (.safetensors/.pt).
        output: where to write the fine-tuned weights (.safetensors, or .pt). Its folder is
            created and checked before training; an existing file (or its .json record) is
            refused with RefusedOverwriteError unless ``overwrite``.
        epochs, steps_per_epoch: training length; validation runs after every epoch.
        val_fraction: share of the frames of each multi-frame stack held out.
        run_dir: optional folder for a resumable training checkpoint and a step log.
        log: where progress lines go (None: silent).
    """
    import torch

    from napari_sam2.model import load_model
    from napari_sam2.training.datasets import StackClips
    from napari_sam2.training.export import export_weights, save_torch_atomic
    from napari_sam2.training.outputs import prepare_folder, prepare_output
    from napari_sam2.training.trainer import TrainConfig, Trainer

    if not stacks:
        raise ValueError("finetune needs at least one (images, labels) pair")
    checked = [check_pair(im, lab, name=f"pair {i}") for i, (im, lab) in enumerate(stacks)]
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"epochs and steps_per_epoch must be >= 1, got {epochs}, "
                         f"{steps_per_epoch}")
    output = prepare_output(output, suffixes=(".safetensors", ".pt", ".pth"),
                            overwrite=overwrite)
    if run_dir is not None:
        prepare_folder(run_dir, what="--run-dir")
    train, val, reused = split_stacks(checked, val_fraction)
    say = log or (lambda _msg: None)
    model = load_model(variant, checkpoint, device=device, progress=False)
    size = model.config.image_size
    frames = min(num_frames, max(s[0].shape[0] for s in train))
    video = StackClips(train, size, num_frames=frames, max_objects=4) if frames >= 2 else None
    images = StackClips(train, size, num_frames=1, max_objects=objects_per_image)
    total = epochs * steps_per_epoch
    cfg = TrainConfig(steps=total, lr=lr, warmup_steps=max(1, min(20, total // 10)),
                      image_batch=image_batch, objects_per_image=objects_per_image,
                      num_frames=max(frames, 1), video_start=0.0,
                      video_prob=0.3 if video is not None else 0.0, seed=seed,
                      checkpoint_every_s=300.0)
    trainer = Trainer(model, cfg, image_source=images, video_source=video, run_dir=run_dir,
                      variant=variant)
    torch.manual_seed(seed)
    n_obj = sum(len(np.unique(lab)) - 1 for _, lab in train)
    say(f"fine-tuning {variant} on {sum(s[0].shape[0] for s in train)} frames "
        f"({n_obj} object-frames), validating on "
        f"{'the training frames (no held-out frames)' if reused else str(sum(s[0].shape[0] for s in val)) + ' held-out frames'}")
    model.eval()
    with torch.no_grad():
        click0, box0 = validation_iou(model, val)
    say(f"epoch 0: val click IoU {click0:.3f}  box IoU {box0:.3f}")
    history = [{"epoch": 0, "val_click_iou": click0, "val_box_iou": box0}]
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        losses = []
        trainer.train(max_steps=steps_per_epoch, progress=lambda r: losses.append(r.loss))
        model.eval()
        with torch.no_grad():
            click, box = validation_iou(model, val)
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan"),
               "val_click_iou": click, "val_box_iou": box}
        history.append(row)
        say(f"epoch {epoch}: train loss {row['train_loss']:.4f}  val click IoU {click:.3f}  "
            f"box IoU {box:.3f}")
    seconds = time.perf_counter() - start
    record = {"variant": variant, "base_checkpoint": str(checkpoint) if checkpoint else None,
              "steps": trainer.step, "seconds": round(seconds, 1), "seed": seed,
              "history": history, "validated_on_training_data": reused}
    if output.suffix == ".safetensors":
        export_weights(model, output, record)
    else:
        save_torch_atomic({"model": model.state_dict(), "record": record}, output)
    say(f"wrote {output}")
    return FinetuneResult(output=output, steps=trainer.step, seconds=seconds, history=history,
                          validated_on_training_data=reused)
