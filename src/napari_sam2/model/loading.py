"""``load_model``: a variant with weights from a file, the package, the cache or a download."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from napari_sam2.model.checkpoint import (
    CheckpointError,
    check_checkpoint_path,
    check_state_dict,
    load_weights,
    read_state_dict,
)
from napari_sam2.model.device import choose_device
from napari_sam2.model.download import CHECKPOINT_URLS, ProgressCallback, checkpoint_path, sha256_of

if TYPE_CHECKING:
    from napari_sam2.model.sam2 import Sam2Model

#: variants whose weights ship inside the package: name -> file under ``napari_sam2/weights/``.
#: A ``<stem>.json`` record beside the file may give its ``"sha256"``, which is then checked.
SHIPPED_WEIGHTS: dict[str, str] = {"sam2_demo": "sam2_demo.safetensors"}


def load_model(
    name: str,
    checkpoint: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = "auto",
    cache_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | bool | None = None,
) -> Sam2Model:
    """Build variant ``name`` and load its weights, in eval mode, float32.

    Where the weights come from, in order: ``checkpoint`` if given (a local ``.pt``/``.pth``
    or ``.safetensors`` file); the package for shipped variants (``sam2_demo``); else the
    checkpoint cache, downloading the official file on first use (see
    :func:`napari_sam2.model.download.checkpoint_path`).

    Args:
        name: a registered variant (``napari_sam2.model.config.VARIANTS``).
        checkpoint: a local weights file, overriding the package and the download.
        device: ``"auto"`` (the default) or None: CUDA, then MPS, then CPU; or any torch
            device. (:func:`build_model` takes the same values but defaults to ``"cpu"``.)
        cache_dir: the download cache folder (default ``$NAPARI_SAM2_CACHE`` or the user cache).
        progress: download progress: ``None``/``True`` a tqdm bar, ``False`` nothing, or a
            callable ``progress(downloaded_bytes, total_bytes)``.

    Raises:
        ValueError: unknown variant, or a device that is not available.
        FileNotFoundError: ``checkpoint`` or the shipped weights file does not exist.
        CheckpointError: the file is damaged, of another variant, or does not fit the model.
        CheckpointDownloadError: the download failed (the message says where to put the file).
    """
    from napari_sam2.model import build_model
    from napari_sam2.model.config import get_config

    config = get_config(name)  # ValueError listing the known names
    target = choose_device(device)
    path = _weights_file(name, checkpoint, cache_dir=cache_dir, progress=progress)
    state_dict = read_state_dict(path)
    try:
        check_state_dict(state_dict, name)  # fail fast, before building the real model
        model = build_model(config, device=target)
        load_weights(model, state_dict, variant_name=name)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return model.eval()


def shipped_weights_path(name: str) -> Path:
    """The packaged weights file of a shipped variant (it may not exist in a source tree)."""
    if name not in SHIPPED_WEIGHTS:
        raise ValueError(f"{name!r} is not shipped in the package; shipped: "
                         f"{', '.join(SHIPPED_WEIGHTS)}.")
    return Path(str(resources.files("napari_sam2") / "weights" / SHIPPED_WEIGHTS[name]))


def _weights_file(
    name: str,
    checkpoint: str | os.PathLike | None,
    *,
    cache_dir: str | os.PathLike | None,
    progress: ProgressCallback | bool | None,
) -> Path:
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        check_checkpoint_path(path)
        return path
    if name in SHIPPED_WEIGHTS:
        path = shipped_weights_path(name)
        if not path.is_file():
            raise FileNotFoundError(
                f"The {name!r} weights are missing from this installation (expected {path}). "
                "Reinstall napari-sam2, or pass checkpoint=<file> with weights you trained."
            )
        _check_shipped_record(path)
        return path
    if name in CHECKPOINT_URLS:
        return checkpoint_path(name, cache_dir=cache_dir, progress=progress)
    raise ValueError(
        f"No weights are known for variant {name!r}: pass a file as "
        f"load_model({name!r}, checkpoint=path). Variants with weights: "
        f"{', '.join([*SHIPPED_WEIGHTS, *CHECKPOINT_URLS])}."
    )


def _check_shipped_record(path: Path) -> None:
    record = path.with_suffix(".json")
    if not record.is_file():
        return
    try:
        expected = json.loads(record.read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return  # the record is documentation; its absence or shape is not an error
    if expected and sha256_of(path) != expected:
        raise CheckpointError(
            f"The shipped weights {path} do not match the sha256 in {record}; the installation "
            "is damaged. Reinstall napari-sam2."
        )
