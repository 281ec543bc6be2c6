"""Write trained weights as a safetensors file plus a JSON record (how it was made), atomically.

Both files are written to hidden temporary siblings (``.<name>.tmp-XXXX``) and checked (the
safetensors header is re-read and must list every tensor with its shape and the data must be
complete; the record must be JSON, checked before anything is written) before they are renamed
over the targets one after the other. A failure at any point (a record that is not JSON, a full
disk) leaves any previous weights and record as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from pathlib import Path

from napari_sam2._safe_write import atomic_file, io_error, json_text, staged_file

__all__ = ["export_weights", "file_sha256", "save_torch_atomic"]


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write(save) -> None:
    """Run ``save()``; safetensors and torch report I/O failures (a full disk) as their own
    exception types: those become ``OSError`` so that the message names the target."""
    try:
        save()
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - SafetensorError, RuntimeError
        raise io_error(exc) from exc


def _check_safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    """Re-read the header of a safetensors file: every tensor with its shape, data complete."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    end = max((v["data_offsets"][1] for v in header.values()), default=0)
    if {k: v["shape"] for k, v in header.items()} != shapes or \
            path.stat().st_size != 8 + n + end:
        raise OSError(f"{path} does not read back as the weights written")


def export_weights(model, path: str | os.PathLike, record: dict | None = None) -> Path:
    """Save ``model.state_dict()`` (float32, contiguous) to ``path`` (.safetensors).

    If ``record`` is given, it is written beside the weights as ``<stem>.json`` with the file's
    ``sha256`` and size added (``load_model`` checks the sha256 of shipped weights). A record
    that is not JSON raises ValueError before anything is written.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"export path must end in .safetensors, got {path}")
    if record is not None:
        json_text(dict(record), f"the record for {path}")
    state = {k: v.detach().float().contiguous().clone().cpu()
             for k, v in model.state_dict().items()}
    shapes = {k: list(v.shape) for k, v in state.items()}
    with staged_file(path) as tmp:
        _write(lambda: save_file(state, str(tmp)))
        _check_safetensors(tmp, shapes)
        if record is not None:  # renamed into place just before the weights
            full = {**record, "file": path.name, "bytes": tmp.stat().st_size,
                    "sha256": file_sha256(tmp)}
            text = json_text(full, f"the record for {path}", indent=2) + "\n"
            atomic_file(path.with_suffix(".json"), lambda rec: rec.write_text(text))
    return path


def _check_torch_file(path: Path) -> None:
    """A file written by ``torch.save`` is a zip archive: its directory must be complete."""
    with zipfile.ZipFile(path) as archive:
        if not archive.namelist():
            raise OSError(f"{path} is an empty archive")


def save_torch_atomic(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` through a temporary sibling (its zip directory checked), then
    renamed over ``path``: a failure leaves any previous file intact."""
    import torch

    return atomic_file(path, lambda tmp: _write(lambda: torch.save(obj, tmp)), _check_torch_file)
