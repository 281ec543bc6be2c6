"""Cell Tracking Challenge (CTC) format: export of tracks, import of a ground truth, scores.

A CTC result folder holds ``res_track.txt`` (one line ``L B E P`` per track: label, first and
last frame, parent label or 0) and one 16-bit mask TIFF per frame, ``mask000.tif``, ... (4
digits from 1000 frames on), labels numbered by track. A ground truth folder holds
``TRA/man_track.txt`` with ``TRA/man_track000.tif``, ... and ``SEG/man_seg000.tif``, ...

* :func:`write_ctc`: labels (T, H, W) + {daughter: parent} -> a result folder (atomic; tracks
  with gaps are split as CTC requires, see ``_tracks.ctc_tracks``);
* :func:`write_ctc_ground_truth`: the same as a ground truth folder (synthetic data);
* :func:`read_ctc`: a result folder, a ``TRA`` folder or a ground truth folder -> (labels,
  rows); :func:`parents_of` turns rows into {daughter: parent};
* :func:`ctc_scores` / :func:`ctc_valid`: DET, SEG, TRA, BC(i) and the format check of
  ``py-ctcmetrics`` (``pip install py-ctcmetrics``; the ``lineage`` extra).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np

from napari_sam2._safe_write import atomic_dir
from napari_sam2.errors import DamagedFileError
from napari_sam2.io._tracks import check_export_target, ctc_tracks, mark_export

__all__ = ["ctc_scores", "ctc_valid", "parents_of", "read_ctc", "write_ctc",
           "write_ctc_ground_truth"]


def _digits(n_frames: int) -> int:
    return max(3, len(str(n_frames - 1)))


def _write_track_file(path: Path, rows: np.ndarray) -> None:
    path.write_text("".join(f"{a} {b} {c} {d}\n" for a, b, c, d in rows.tolist()),
                    encoding="utf-8")


def _write_masks(folder: Path, prefix: str, stack: np.ndarray) -> None:
    import tifffile

    n = _digits(stack.shape[0])
    for t in range(stack.shape[0]):
        tifffile.imwrite(folder / f"{prefix}{t:0{n}d}.tif", stack[t])


def write_ctc(path, labels, parents=None) -> Path:
    """Write a CTC result folder (``res_track.txt`` + ``maskNNN.tif``).

    Args:
        path: the folder; replaced only if empty or an earlier napari-sam2 export.
        labels: (T, H, W) integers, label k = track k on every frame it is present.
        parents: {daughter track: parent track}; links to tracks absent from ``labels`` are
            dropped.

    Returns:
        the folder. Raises ValueError (bad labels or lineage; nothing written),
        RefusedOverwriteError, OSError (the previous folder is intact).
    """
    path = Path(path)
    check_export_target(path, "ctc")
    stack, rows = ctc_tracks(labels, parents)

    def write(tmp: Path) -> None:
        _write_track_file(tmp / "res_track.txt", rows)
        _write_masks(tmp, "mask", stack)
        mark_export(tmp, "ctc")

    def verify(tmp: Path) -> None:
        back, back_rows = read_ctc(tmp)
        if not (np.array_equal(back_rows, rows) and np.array_equal(back[-1], stack[-1])):
            raise OSError(f"the CTC export read back from {tmp} differs from what was written")

    return atomic_dir(path, write, verify)


def write_ctc_ground_truth(path, labels, rows) -> Path:
    """Write a CTC ground truth folder (``TRA/man_track.txt``, ``TRA/man_trackNNN.tif``,
    ``SEG/man_segNNN.tif``) from labels (T, H, W) and rows (N, 4) ``L B E P`` that already
    follow the CTC rules (e.g. ``data.dividing.make_dividing_timelapse``)."""
    path = Path(path)
    check_export_target(path, "ctc ground truth")
    stack = np.asarray(labels)
    if stack.ndim != 3 or stack.max() > 65535 or stack.min() < 0:
        raise ValueError(f"labels must be (T, H, W) in 0..65535, got shape {stack.shape}")
    stack = stack.astype(np.uint16)
    table = np.asarray(rows, np.int64).reshape(-1, 4)

    def write(tmp: Path) -> None:
        (tmp / "TRA").mkdir()
        (tmp / "SEG").mkdir()
        _write_track_file(tmp / "TRA" / "man_track.txt", table)
        _write_masks(tmp / "TRA", "man_track", stack)
        _write_masks(tmp / "SEG", "man_seg", stack)
        mark_export(tmp, "ctc ground truth")

    return atomic_dir(path, write, lambda tmp: read_ctc(tmp))


def _layout(folder: Path) -> tuple[Path, str]:
    """(track file, mask file prefix) of a result, TRA or ground truth folder."""
    for track_file, prefix in ((folder / "res_track.txt", "mask"),
                               (folder / "man_track.txt", "man_track"),
                               (folder / "TRA" / "man_track.txt", "man_track")):
        if track_file.is_file():
            return track_file, prefix
    raise FileNotFoundError(f"{folder} holds no res_track.txt, man_track.txt or "
                            "TRA/man_track.txt; give a CTC result or ground truth folder")


def read_ctc(path) -> tuple[np.ndarray, np.ndarray]:
    """Read a CTC result folder, a ``TRA`` folder or a ground truth folder (its ``TRA``).

    Returns:
        labels: int32 (T, H, W); rows: int64 (N, 4) ``L B E P`` as in the track file.

    Raises:
        FileNotFoundError: no track file; DamagedFileError: a malformed track file, missing
            or unreadable masks, frames of different shapes.
    """
    import tifffile

    folder = Path(path)
    track_file, prefix = _layout(folder)
    try:
        lines = [ln.split() for ln in track_file.read_text(encoding="utf-8").splitlines()
                 if ln.strip()]
        rows = np.array([[int(v) for v in ln] for ln in lines], np.int64).reshape(-1, 4)
    except (ValueError, UnicodeDecodeError):
        raise DamagedFileError(f"{track_file} is not a CTC track file: each line must be four "
                               "integers 'L B E P'; fix or re-export it") from None
    pattern = re.compile(rf"^{prefix}(\d+)\.tif$")
    found = sorted((int(m.group(1)), p) for p in track_file.parent.iterdir()
                   if (m := pattern.match(p.name)))
    if not found or [t for t, _ in found] != list(range(len(found))):
        raise DamagedFileError(f"{track_file.parent}: the masks {prefix}NNN.tif must be "
                               f"numbered 0..T-1 without gaps; found frames "
                               f"{[t for t, _ in found][:10]}")
    frames = []
    for _, p in found:
        try:
            frames.append(np.asarray(tifffile.imread(p)))
        except Exception as exc:  # noqa: BLE001 - any reader failure means a damaged file
            raise DamagedFileError(f"{p} cannot be read as a TIFF mask ({exc}); re-export "
                                   "it") from None
    shapes = {f.shape for f in frames}
    if len(shapes) != 1 or frames[0].ndim != 2:
        raise DamagedFileError(f"{track_file.parent}: masks must be 2-D and all the same "
                               f"shape, found {sorted(shapes)}")
    labels = np.stack(frames).astype(np.int32)
    if rows.size and rows[:, 2].max() >= len(frames):
        raise DamagedFileError(f"{track_file} has tracks ending on frame {rows[:, 2].max()} "
                               f"but there are {len(frames)} masks")
    return labels, rows


def parents_of(rows) -> dict[int, int]:
    """{daughter: parent} from CTC rows (N, 4) ``L B E P``."""
    return {int(r[0]): int(r[3]) for r in np.asarray(rows).reshape(-1, 4) if r[3] != 0}


def _quiet(fn, *args, **kwargs):
    """Run a py-ctcmetrics function without its progress prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def ctc_valid(res) -> bool:
    """``py-ctcmetrics``' format check of a CTC result folder."""
    from ctc_metrics import validate_sequence

    return bool(_quiet(validate_sequence, str(res), threads=1)["Valid"])


def ctc_scores(res, gt, metrics=("DET", "SEG", "TRA", "BC")) -> dict:
    """``py-ctcmetrics``' scores of a result folder against a ground truth folder (with
    ``TRA`` and, for SEG, ``SEG``). BC gives ``BC(i)`` and ``tp_div(i)`` etc. for i = 0..3
    (divisions within i frames)."""
    from ctc_metrics import evaluate_sequence

    return _quiet(evaluate_sequence, str(res), str(gt), metrics=list(metrics), threads=1)
