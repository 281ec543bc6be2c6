"""Write trained weights as a safetensors file plus a JSON record (how it was made)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["export_weights", "file_sha256"]


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_weights(model, path: str | os.PathLike, record: dict | None = None) -> Path:
    """Save ``model.state_dict()`` (float32, contiguous) to ``path`` (.safetensors).

    If ``record`` is given, it is written beside the weights as ``<stem>.json`` with the file's
    ``sha256`` and size added (``load_model`` checks the sha256 of shipped weights).
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"export path must end in .safetensors, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous().clone().cpu()
             for k, v in model.state_dict().items()}
    save_file(state, str(path))
    if record is not None:
        full = dict(record)
        full["file"] = path.name
        full["bytes"] = path.stat().st_size
        full["sha256"] = file_sha256(path)
        path.with_suffix(".json").write_text(json.dumps(full, indent=2) + "\n")
    return path
