"""The resume journal of a run: the tracked outputs of the last frames of its propagation.

A folder ``.<output name>.journal`` beside the output holds one ``<pass>-<frame>.npz`` per frame
of the run's last propagation (``engine.kept_outputs.tracked_output``: a few KiB per object),
written atomically after the frame's plane, and ``key.txt`` naming the run. Entries that no
later frame can read are deleted as the run goes, so the folder stays small; the whole folder
is removed when the run completes. A resumed run restores the outputs from it and goes on
after the last frame it finds.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from napari_sam2._safe_write import atomic_file, write_text_atomic
from napari_sam2.errors import DamagedFileError

__all__ = ["Journal"]

_ENTRY = re.compile(r"^(\d+)-(\d+)\.npz$")


class Journal:
    """The journal folder of the output ``target`` (created on first write)."""

    def __init__(self, target) -> None:
        target = Path(target)
        self.folder = target.with_name(f".{target.name}.journal")

    # ------------------------------------------------------------------ whole journal
    def key(self) -> str | None:
        """The key of the run that wrote the journal, None when there is none."""
        try:
            return (self.folder / "key.txt").read_text(encoding="utf-8").strip()
        except OSError:
            return None

    def start(self, key: str) -> None:
        """Empty the journal and mark it as the journal of run ``key``."""
        self.remove()
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.folder / "key.txt", key + "\n")

    def remove(self) -> None:
        """Delete the journal (only files it writes; a folder holding others is kept)."""
        if not self.folder.is_dir():
            return
        for p in self.folder.iterdir():
            if p.name == "key.txt" or _ENTRY.match(p.name) or p.name.startswith(".") and \
                    ".tmp-" in p.name:
                p.unlink(missing_ok=True)
        try:
            self.folder.rmdir()
        except OSError:
            pass

    # ------------------------------------------------------------------ entries
    def entries(self) -> set[tuple[int, int]]:
        """(pass, frame) of every entry."""
        if not self.folder.is_dir():
            return set()
        found = (_ENTRY.match(p.name) for p in self.folder.iterdir())
        return {(int(m.group(1)), int(m.group(2))) for m in found if m}

    def _file(self, pass_index: int, frame: int) -> Path:
        return self.folder / f"{int(pass_index)}-{int(frame)}.npz"

    def put(self, pass_index: int, frame: int, arrays: dict[str, np.ndarray]) -> None:
        """Store one frame's outputs (atomically)."""
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        atomic_file(self._file(pass_index, frame), write)

    def get(self, pass_index: int, frame: int) -> dict[str, np.ndarray]:
        """One frame's outputs; DamagedFileError when the entry cannot be read."""
        file = self._file(pass_index, frame)
        try:
            with np.load(file, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise DamagedFileError(f"the resume journal entry {file} cannot be read ({exc}); "
                                   "run without --resume to start again") from None

    def drop(self, pass_index: int, frame: int) -> None:
        self._file(pass_index, frame).unlink(missing_ok=True)
