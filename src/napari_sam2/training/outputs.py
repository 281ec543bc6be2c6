"""Check, before training starts, that its results can be written where the user asked.

Training can take hours; finding only at the end that the output folder cannot be created (or
that the file would replace someone's weights) throws the work away. ``prepare_output`` and
``prepare_folder`` create the folder and prove it writable up front, and refuse to replace an
existing file unless asked to. Torch-free.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from napari_sam2._safe_write import file_in_the_way
from napari_sam2.errors import InvalidOptionError, RefusedOverwriteError

__all__ = ["prepare_folder", "prepare_output", "record_of"]


def record_of(path: Path) -> Path:
    """The JSON record written beside exported ``.safetensors`` weights (``<stem>.json``)."""
    return path.with_suffix(".json")


def prepare_folder(folder: str | os.PathLike, *, what: str = "folder") -> Path:
    """Create ``folder`` (and its parents) if needed and check that a file can be written in it.

    Raises:
        InvalidOptionError: the folder cannot be created (a file is in the way, no permission)
            or is not writable; the message names it and says what to do.
    """
    folder = Path(folder).expanduser()
    blocker = file_in_the_way(folder)
    if blocker is not None:
        raise InvalidOptionError(
            f"cannot create the {what} {folder}: {blocker} is a file, not a folder; choose "
            "another path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".napari-sam2-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InvalidOptionError(
            f"cannot write in the {what} {folder} ({exc.strerror or exc}); choose a folder you "
            "can write to") from None
    return folder


def prepare_output(path: str | os.PathLike, *, suffixes: tuple[str, ...],
                   overwrite: bool = False, option: str = "--output") -> Path:
    """Check an output weights file before the work that produces it starts.

    The suffix must be one of ``suffixes``; the path must not be a folder; neither the file nor
    its ``.json`` record (for ``.safetensors``) may exist unless ``overwrite``; its folder is
    created and proved writable.

    Raises:
        InvalidOptionError: wrong suffix, a folder, or a folder that cannot be written.
        RefusedOverwriteError: the file or its record exists and ``overwrite`` is False.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise InvalidOptionError(
            f"{option} {path} is a folder; give a file name ending in {suffixes[0]}")
    if path.suffix not in suffixes:
        raise InvalidOptionError(
            f"{option} {path} must end in {' or '.join(suffixes)}; give a file name such as "
            f"{(path.stem or 'weights') + suffixes[0]}")
    targets = [path, record_of(path)] if path.suffix == ".safetensors" else [path]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise RefusedOverwriteError(
            f"{existing[0]} exists and would be replaced; choose another {option} or pass "
            "--overwrite to replace it")
    prepare_folder(path.parent, what=f"{option} folder")
    return path
