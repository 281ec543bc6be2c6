"""``run_training(run)``: one training run (one recipe phase) from a :class:`TrainRun`.

The ``napari-sam2 train`` command (``training/cli.py``) parses its options into a
:class:`~napari_sam2.training.run_config.TrainRun` and calls this; a recipe
(``training/recipe.py``) builds one ``TrainRun`` per phase and calls it too. It checks every
option, file and output first (errors are raised before any model is built), then builds or
resumes the model, trains until the steps or a time limit run out, and exports the weights
with a record whose ``"command"`` is ``run.command()``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from napari_sam2.errors import RefusedOverwriteError
from napari_sam2.training.run_config import TrainRun

__all__ = ["TrainRun", "run_training"]


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


def _check_before_training(run: TrainRun, ckpt: Path) -> None:
    """Every check that can fail, before any model is built (errors are raised; the entry point
    prints them on one line)."""
    from napari_sam2.model.device import choose_device
    from napari_sam2.training.outputs import prepare_folder, prepare_output

    if run.resume and not ckpt.is_file():
        raise FileNotFoundError(f"--resume given but {ckpt} does not exist; leave out --resume "
                                "to start a new run there")
    if not run.resume and ckpt.is_file():
        raise RefusedOverwriteError(f"{ckpt} exists; pass --resume to continue it or use "
                                    "another --run-dir")
    if run.init and not run.resume and not Path(run.init).expanduser().is_file():
        raise FileNotFoundError(f"--init {run.init} does not exist; give a weights file "
                                "(.safetensors/.pt) or leave --init out to start from random")
    choose_device(run.device)
    if run.export:
        prepare_output(run.export, suffixes=(".safetensors",), overwrite=run.overwrite,
                       option="--export")
    prepare_folder(ckpt.parent, what="--run-dir")


def run_training(run: TrainRun) -> int:
    """Run ``run``; returns 0 when it stopped normally (steps or time limit), 130 when it was
    interrupted (Ctrl-C; the checkpoint in ``run.run_dir`` is saved first).

    Raises:
        InvalidOptionError, FileNotFoundError, RefusedOverwriteError: a check before training
            failed (nothing was built or trained).
    """
    import torch

    from napari_sam2.model import build_model
    from napari_sam2.model.config import get_config
    from napari_sam2.model.device import choose_device
    from napari_sam2.training.datasets import SyntheticClips
    from napari_sam2.training.export import export_weights
    from napari_sam2.training.trainer import Trainer

    run_dir = Path(run.run_dir)
    ckpt = run_dir / "checkpoint.pt"
    _check_before_training(run, ckpt)
    if run.threads:
        torch.set_num_threads(run.threads)
    variant = run.variant
    config = run.train_config()
    if run.resume:
        config, variant = Trainer.read_config(ckpt)
    device = choose_device(run.device)
    torch.manual_seed(config.seed)
    config_model = get_config(variant)
    if run.image_size:
        from dataclasses import replace

        config_model = replace(config_model, image_size=run.image_size)
    model = build_model(config_model, device=device)
    if run.init and not run.resume:
        from napari_sam2.model.checkpoint import load_weights, read_state_dict

        state = read_state_dict(run.init)
        keep = tuple(p for p in run.init_exclude.split(",") if p)
        if keep:
            own = model.state_dict()
            state = {k: (own[k] if k.startswith(keep) else v) for k, v in state.items()}
        load_weights(model, state, variant_name=variant)
    if run.tie_decoder_attention and not run.resume:
        from napari_sam2.training.init import tie_decoder_cross_attention

        tie_decoder_cross_attention(model, run.tie_decoder_attention)
    size = model.config.image_size
    images = SyntheticClips(size, num_frames=1, max_objects=config.objects_per_image,
                            volume_fraction=0.15, ramp=run.cells_ramp,
                            nuclei_fraction=run.nuclei_fraction)
    videos = SyntheticClips(size, num_frames=config.num_frames,
                            max_objects=config.objects_per_clip, volume_fraction=0.2,
                            ramp=run.cells_ramp, nuclei_fraction=run.nuclei_fraction)
    trainer = Trainer(model, config, image_source=images, video_source=videos,
                      run_dir=run_dir, variant=variant)
    if run.resume:
        trainer.load_state(ckpt)
        print(f"resumed {ckpt} at step {trainer.step}", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"training {variant} ({n_params / 1e6:.2f} M parameters) on {device}, "
          f"{torch.get_num_threads()} threads, steps {trainer.step}->{config.steps}", flush=True)
    start = time.perf_counter()
    limits = []  # seconds of this session
    if run.minutes is not None:
        limits.append(run.minutes * 60)
    if run.stop_at_minutes is not None:
        limits.append(max(run.stop_at_minutes * 60 - trainer.elapsed, 0.0))
    try:
        trainer.train(max_seconds=min(limits) if limits else None,
                      progress=_printer(max(run.log_every, 1), config.steps))
    except KeyboardInterrupt:
        trainer.save()
        print(f"interrupted: checkpoint at step {trainer.step} in {ckpt}", flush=True)
        return 130
    print(f"stopped at step {trainer.step} after {time.perf_counter() - start:.0f} s; "
          f"checkpoint {ckpt}", flush=True)
    if run.export:
        record = {"variant": variant, "command": run.command(),
                  "seed": config.seed, "steps": trainer.step,
                  "train_seconds": round(trainer.elapsed, 1), "device": str(device),
                  "threads": torch.get_num_threads(), "train_config": config.__dict__}
        path = export_weights(model.eval(), run.export, record)
        print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
    return 0
