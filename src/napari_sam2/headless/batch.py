"""One file of a batch, run on a Dask worker: the task, its model cache and its outputs.

:func:`run_job` is what each Dask task runs. It never raises: a failed file comes back as
``{"status": "failed", "error": "<one line>"}`` so the other files go on. The model is loaded
once per worker process (:func:`worker_model`, keyed by model, checkpoint and device) and
reused by every file that worker gets.

A result is written under a hidden staging name beside the output,
``.<name>.partial.zarr``, frame by frame (``headless.runner.track``), and renamed to the
output when complete: an output under its own name is always whole and marked complete (the
completion marker, written last). A rerun skips outputs that are complete for the same
prompts and settings, and resumes staging stores left by a killed run.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Job", "Settings", "run_job", "staging_path", "worker_model"]


@dataclass(frozen=True)
class Job:
    """One file: the image, its prompts (``kind``: "record", "csv" or "seeds"), the output."""

    image: str
    prompts: str
    output: str
    kind: str = "auto"


@dataclass(frozen=True)
class Settings:
    """What every file of a batch shares (plain values: sent to the workers)."""

    model: str | None = None
    checkpoint: str | None = None
    device: str = "auto"
    propagation: dict = field(default_factory=dict)
    seed_frame: int = 0
    axis: int = 0
    intensity: tuple | None = None
    name: str = "labels"
    overwrite: bool = False
    threads: int = 1


_MODELS: dict[tuple, object] = {}
_MODELS_LOCK = threading.Lock()


def worker_device(device: str) -> str:
    """``device``, with ``auto`` or ``cuda`` on a machine with several GPUs spread over the
    workers by their names (a LocalCluster names them 0, 1, ...): worker k gets
    ``cuda:k % n``."""
    if device not in ("auto", "cuda"):
        return device
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n <= 1:
        return device
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return device
    return f"cuda:{int(name) % n}" if str(name).isdigit() else device


def worker_model(name: str, checkpoint: str | None, device: str):
    """The model, loaded once per process for each (name, checkpoint, device)."""
    key = (name, checkpoint, device)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            from napari_sam2.model import load_model

            model = load_model(name, checkpoint, device=device, progress=False)
            _MODELS[key] = model
    return model


def staging_path(output: Path) -> Path:
    """The hidden name a result is built under, beside ``output``."""
    return output.with_name(f".{output.name}.partial.zarr")


def _kind(job: Job) -> str:
    if job.kind != "auto":
        return job.kind
    suffix = Path(job.prompts).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "record"
    from napari_sam2.errors import DamagedFileError
    from napari_sam2.headless.prompts import records_from_file

    try:
        records_from_file(job.prompts)
        return "record"
    except DamagedFileError as exc:
        if "no session record" in str(exc):
            return "seeds"
        raise


def build_job_record(job: Job, settings: Settings):
    """(record, stack view) of one job, as ``napari-sam2 track`` builds them."""
    from argparse import Namespace

    from napari_sam2.headless.inputs import open_image
    from napari_sam2.headless.track_cli import build_record

    kind = _kind(job)
    image = open_image(job.image)
    record_opts = dict.fromkeys(("axis", "intensity", "direction", "start", "range",
                                 "max_frames", "stop_after_absent"))
    if kind != "record":
        p = settings.propagation
        record_opts.update(axis=settings.axis, intensity=settings.intensity,
                           direction=p.get("direction"), start=p.get("start"),
                           range=p.get("range"), max_frames=p.get("max_frames"),
                           stop_after_absent=p.get("stop_after_absent"))
    args = Namespace(record=Path(job.prompts) if kind == "record" else None,
                     prompts=Path(job.prompts) if kind == "csv" else None,
                     seeds=job.prompts if kind == "seeds" else None,
                     seed_frame=settings.seed_frame, record_index=None, position=[],
                     model=settings.model, image=Path(job.image), **record_opts)
    return build_record(args, image)


def run_job(job: Job, settings: Settings) -> dict:
    """Track one file (on a worker). Returns {"image", "output", "status": "done" | "skipped"
    | "failed", "frames", "seconds", "error"}; never raises (except KeyboardInterrupt)."""
    from napari_sam2.errors import one_line

    t0 = time.perf_counter()
    out = {"image": job.image, "output": job.output, "status": "failed", "frames": 0,
           "seconds": 0.0, "error": ""}
    try:
        out.update(_run(job, settings))
    except Exception as exc:  # noqa: BLE001 - reported per file; the batch goes on
        out["error"] = one_line(exc) if str(exc) else type(exc).__name__
        out["status"] = "failed"
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _run(job: Job, settings: Settings) -> dict:
    from napari_sam2._safe_write import _swap_dir
    from napari_sam2.errors import RefusedOverwriteError
    from napari_sam2.headless.runner import TrackOutput, run_key
    from napari_sam2.headless.track_cli import output_attributes, track_one
    from napari_sam2.io._zarr_store import check_replaceable
    from napari_sam2.io.label_stream import run_state

    record, view = build_job_record(job, settings)
    final = Path(job.output)
    image_id = f"{view.dtype} {Path(job.image).resolve()}"
    key = run_key(record, view.shape[:3], image_id)
    done = run_state(final)
    if done is not None and done.get("complete") and done.get("key") == key \
            and not settings.overwrite:
        return {"status": "skipped"}
    if final.exists() and not settings.overwrite:
        raise RefusedOverwriteError(
            f"{final} exists (from other prompts or settings, or unfinished, or not written by "
            "napari-sam2); pass --overwrite to replace it (only labels napari-sam2 wrote)")
    check_replaceable(final)
    import torch

    torch.set_num_threads(max(1, int(settings.threads)))
    staging = staging_path(final)
    partial = run_state(staging)
    resume = partial is not None and partial.get("key") == key
    output = TrackOutput(staging, name=settings.name, **output_attributes(record, view),
                         provenance={"image": str(job.image)})
    model = worker_model(settings.model or record.model, settings.checkpoint,
                         worker_device(settings.device))
    summary = track_one(record, view, output, model_name=None, model=model, resume=resume,
                        image_id=image_id, progress=False)
    if final.exists():
        _swap_dir(staging, final)
    else:
        os.rename(staging, final)
    return {"status": "done", "frames": summary["frames"]}
