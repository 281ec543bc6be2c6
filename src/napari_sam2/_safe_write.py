"""Atomic saving: write beside the target, check, then swap in with a rename.

Standard library only (no numpy, torch, zarr), so ``io`` and ``training`` both use it without
breaking the one-way imports.

* :func:`atomic_file` (and the context manager :func:`staged_file`): a file is written to a
  hidden temporary sibling ``.<name>.tmp-XXXX`` in the same folder, checked, then moved over
  the target with ``os.replace`` (one atomic step).
* :func:`atomic_dir`: a folder (a zarr store) is written to a hidden temporary sibling and
  checked; the old folder is renamed aside to ``.<name>.old-XXXX``, the new one renamed into
  place, then the old one deleted. If the second rename fails the old folder is put back.
* :func:`json_text`: JSON text of a record, checked before anything is written.

On any failure (an exception in the writer or the check, a full disk) the temporary sibling is
removed and the target is exactly as it was. A crash of the whole process between the two
renames of :func:`atomic_dir` (a few microseconds) leaves the previous store under its hidden
``.old-`` name beside the target.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "atomic_dir", "atomic_file", "file_in_the_way", "io_error", "json_text", "prepare_parent",
    "staged_file", "write_text_atomic",
]


def file_in_the_way(folder: Path) -> Path | None:
    """The first of ``folder`` and its parents that exists but is not a folder (so ``folder``
    cannot be created), or None."""
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)


def prepare_parent(target: Path) -> None:
    """Create the folder that will hold ``target`` (with its parents), or raise a clear error."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(
            f"cannot save {target}: {parent} (or a folder above it) is a file, not a folder; "
            "choose another location"
        ) from None
    except PermissionError:
        raise PermissionError(
            f"cannot save {target}: no permission to create the folder {parent}; choose a "
            "folder you can write to"
        ) from None


def _temp_sibling(target: Path, kind: str, *, directory: bool) -> Path:
    """A new empty hidden file or folder ``.<name>.<kind>-XXXXXXXX`` beside ``target``, with
    the permissions a plain ``open``/``mkdir`` gives (the umask applies)."""
    for _ in range(100):
        path = target.with_name(f".{target.name}.{kind}-{secrets.token_hex(4)}")
        try:
            if directory:
                os.mkdir(path, 0o777)
            else:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:
            continue
        except PermissionError:
            raise PermissionError(
                f"cannot save {target}: no permission to write in {target.parent}; choose a "
                "folder you can write to"
            ) from None
    raise FileExistsError(f"cannot find a free temporary name beside {target}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _explain(exc: OSError, target: Path) -> OSError:
    """A write error with the target named and the reassurance that nothing was replaced."""
    full = exc.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", -1))
    hint = "free some disk space or choose another folder" if full else \
        "check that the disk is not full and the folder is writable, then try again"
    if getattr(exc, "explained", False):  # from a nested atomic write: already says it all
        return exc
    message = (f"could not save {target}: {exc.strerror or exc}; the previous file (if any) is "
               f"unchanged and nothing partial was left; {hint}")
    explained = OSError(exc.errno, message) if exc.errno is not None else OSError(message)
    explained.explained = True
    return explained


@contextlib.contextmanager
def _staged(target: Path, *, directory: bool) -> Iterator[Path]:
    """Yield a new hidden sibling of ``target``; commit it over ``target`` on a normal exit,
    remove it on an exception (an ``OSError`` reworded to name ``target``)."""
    prepare_parent(target)
    tmp = _temp_sibling(target, "tmp", directory=directory)
    try:
        if not directory and target.is_file():
            shutil.copymode(target, tmp)  # a replaced file keeps its permissions
        mode = tmp.stat().st_mode
        yield tmp
        if directory:
            _swap_dir(tmp, target)
        else:
            os.chmod(tmp, mode)  # some writers (safetensors) recreate the file owner-only
            os.replace(tmp, target)
    except OSError as exc:
        _remove(tmp)
        raise _explain(exc, target) from exc
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def staged_file(target) -> Iterator[Path]:
    """``with staged_file(target) as tmp:`` write and check ``tmp`` (an existing empty file in
    the target's folder); on a normal exit it is renamed over ``target``, on an exception it
    is removed and ``target`` is left as it was (an ``OSError`` is reworded to name it)."""
    target = Path(target)
    if target.is_dir():
        raise IsADirectoryError(
            f"cannot save {target}: a folder of that name exists; choose another file name"
        )
    with _staged(target, directory=False) as tmp:
        yield tmp


def atomic_file(
    target, write: Callable[[Path], None], verify: Callable[[Path], None] | None = None
) -> Path:
    """Write one file atomically.

    Args:
        target: the final path; its folder is created when missing.
        write: ``write(tmp)`` writes the whole file at ``tmp`` (an existing empty file).
        verify: ``verify(tmp)`` re-reads it and raises when it is not what was meant.

    Returns:
        ``target`` as a Path. On failure the exception propagates (an ``OSError`` reworded to
        name ``target``), the previous ``target`` is untouched and the temporary file is gone.
    """
    with staged_file(target) as tmp:
        write(tmp)
        if verify is not None:
            verify(tmp)
    return Path(target)


def atomic_dir(
    target, write: Callable[[Path], None], verify: Callable[[Path], None] | None = None
) -> Path:
    """Write one folder (e.g. a zarr store) atomically, replacing ``target`` if it exists.

    The caller decides beforehand that an existing ``target`` may be replaced.

    Args:
        target: the final folder path; its parent is created when missing.
        write: ``write(tmp)`` fills ``tmp`` (an existing empty folder).
        verify: ``verify(tmp)`` re-opens it and raises when it is not what was meant.

    Returns:
        ``target`` as a Path; on failure the previous folder is intact and no temporary remains.
    """
    target = Path(target)
    with _staged(target, directory=True) as tmp:
        write(tmp)
        if verify is not None:
            verify(tmp)
    return target


def _swap_dir(new: Path, target: Path) -> None:
    if not target.exists() and not target.is_symlink():
        os.rename(new, target)
        return
    backup = _temp_sibling(target, "old", directory=True)
    os.rmdir(backup)  # only the unique name was wanted
    os.rename(target, backup)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(backup, target)
        raise
    _remove(backup)


def io_error(exc: Exception) -> OSError:
    """An ``OSError`` for a write failure that a library reported as another type (safetensors'
    ``SafetensorError``, torch's ``RuntimeError``), with the errno when its message has one."""
    found = re.search(r"os error (\d+)", str(exc))
    message = f"{type(exc).__name__}: {exc}"
    return OSError(int(found.group(1)), message) if found else OSError(message)


def json_text(obj, what: str, *, indent: int | None = None, default=None) -> str:
    """``json.dumps(obj)``, or a ``ValueError`` that names ``what`` and the offending value.

    Call it before writing anything, so that a record that cannot be saved stops the save.
    """
    try:
        return json.dumps(obj, indent=indent, default=default)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{what} cannot be saved as JSON ({exc}); keep only str, int, float, bool, None, "
            "lists and dicts with str keys in it"
        ) from None


def write_text_atomic(target, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically; re-read it to check."""

    def verify(tmp: Path) -> None:
        if tmp.read_text(encoding="utf-8") != text:
            raise OSError(errno.EIO, "the file read back differs from what was written")

    return atomic_file(target, lambda tmp: tmp.write_text(text, encoding="utf-8"), verify)
