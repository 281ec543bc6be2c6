"""Every source of prompts of ``napari-sam2 track``, turned into a ``SessionRecord``.

* a saved session record: a ``.json`` file, or the labels (``.zarr`` / ``.tif``) the widget
  saved with it (:func:`records_from_file`);
* a points / boxes CSV (:func:`record_from_csv`), one prompt per row, with a header:

  ======== =====================================================================
  column   meaning
  ======== =====================================================================
  obj_id   the object (an integer >= 1; its label value in the output)
  frame    the frame (index along the stack axis, from 0)
  row, col a click, in the frame's pixels (row = y, col = x)
  label    1 (default): the click is on the object; 0: on the background
  row0,    a box (top-left and bottom-right corners); at most one per object and
  col0,    frame, with or without clicks of the same object and frame
  row1,
  col1
  ======== =====================================================================

  A row gives either a click (row, col) or a box (row0 .. col1); leave the other cells empty.
  Clicks of one object on one frame are given together (in file order), as the widget does;
* seed labels of one frame (:func:`record_from_seeds`), e.g. a Cellpose or StarDist result:
  every label value becomes an object with its mask as the prompt.

Prompts are followed by one propagation (:func:`propagation_step`), so every source goes
through the same replay (``headless.runner``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from napari_sam2.engine.session_record import (
    BoxStep,
    MaskStep,
    PointsStep,
    PropagateStep,
    SessionRecord,
    load_records,
)
from napari_sam2.errors import DamagedFileError, InvalidOptionError

__all__ = [
    "automatic_seeds",
    "propagation_step",
    "record_from_csv",
    "record_from_seeds",
    "records_from_file",
]

POINT_COLUMNS = ("row", "col")
BOX_COLUMNS = ("row0", "col0", "row1", "col1")
#: the module that will segment a frame without prompts (issue 21)


def propagation_step(*, start=None, direction="both", first=None, last=None,
                     max_frames=None, stop_after_absent=None) -> PropagateStep:
    """The propagation that follows prompts from a CSV or seeds."""
    return PropagateStep(start=start, direction=direction, first=first, last=last,
                         max_frames=max_frames, stop_after_absent=stop_after_absent)


# ---------------------------------------------------------------------- CSV
def _number(row: dict, name: str, line: int, path: Path, kind=float):
    text = (row.get(name) or "").strip()
    try:
        value = kind(text) if kind is float else int(float(text))
        if kind is int and float(text) != int(float(text)):
            raise ValueError
    except ValueError:
        raise ValueError(f"{path} line {line}: {name} must be "
                         f"{'a whole number' if kind is int else 'a number'}, got "
                         f"{text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{path} line {line}: {name} must be finite, got {text!r}")
    return value


def prompt_steps_from_csv(path) -> list:
    """The ``PointsStep`` / ``BoxStep``s of a prompts CSV (see the module docstring), one per
    object and frame, in the order their first rows appear; ValueError naming the line."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            header = [c.strip() for c in (rows[0].keys() if rows else [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read the prompts CSV {path}: {exc}") from None
    if not rows:
        raise ValueError(f"the prompts CSV {path} has no rows: give a header line and one "
                         "prompt per line (columns obj_id, frame, row, col, label or row0, col0, "
                         "row1, col1)")
    rows = [{(k or "").strip(): v for k, v in r.items()} for r in rows]
    missing = [c for c in ("obj_id", "frame") if c not in header]
    has_points = all(c in header for c in POINT_COLUMNS)
    has_boxes = all(c in header for c in BOX_COLUMNS)
    if missing or not (has_points or has_boxes):
        raise ValueError(f"the prompts CSV {path} has columns {header}; it needs obj_id, frame "
                         "and either row, col (clicks, with label 1/0) or row0, col0, row1, col1 "
                         "(boxes)")
    prompts: dict[tuple[int, int], dict] = {}
    for line, row in enumerate(rows, start=2):
        obj = _number(row, "obj_id", line, path, int)
        frame = _number(row, "frame", line, path, int)
        if obj < 1 or frame < 0:
            raise ValueError(f"{path} line {line}: obj_id must be >= 1 and frame >= 0, got "
                             f"obj_id {obj}, frame {frame}")
        entry = prompts.setdefault((frame, obj), {"points": [], "labels": [], "box": None})
        point = has_points and any((row.get(c) or "").strip() for c in POINT_COLUMNS)
        box = has_boxes and any((row.get(c) or "").strip() for c in BOX_COLUMNS)
        if point == box:
            raise ValueError(f"{path} line {line}: give either a click (row, col) or a box "
                             "(row0, col0, row1, col1), and leave the other cells empty")
        if point:
            label = (row.get("label") or "1").strip() or "1"
            if label not in ("0", "1"):
                raise ValueError(f"{path} line {line}: label must be 1 (object) or 0 "
                                 f"(background), got {label!r}")
            entry["points"].append(tuple(_number(row, c, line, path) for c in POINT_COLUMNS))
            entry["labels"].append(int(label))
        else:
            if entry["box"] is not None:
                raise ValueError(f"{path} line {line}: a second box for object {obj} on frame "
                                 f"{frame}; one box per object and frame")
            entry["box"] = tuple(_number(row, c, line, path) for c in BOX_COLUMNS)
    steps = []
    for (frame, obj), e in prompts.items():
        if e["box"] is not None:
            steps.append(BoxStep(frame, obj, e["box"], tuple(e["points"]), tuple(e["labels"])))
        else:
            steps.append(PointsStep(frame, obj, tuple(e["points"]), tuple(e["labels"])))
    return steps


def record_from_csv(path, propagate: PropagateStep, **geometry) -> SessionRecord:
    """A record of the CSV's prompts followed by ``propagate``; ``geometry``: the record's
    ``model``, ``image_shape``, ``stack_axis``, ``other_axes``, ``intensity_range``...."""
    return SessionRecord(steps=[*prompt_steps_from_csv(path), propagate], **geometry)


# ---------------------------------------------------------------------- seeds
def seed_masks(labels: np.ndarray, *, source: str = "seeds") -> list[tuple[int, np.ndarray]]:
    """(label value, (H, W) bool mask) of every label > 0 of a label plane, by value."""
    plane = np.asarray(labels)
    if plane.ndim != 2:
        raise ValueError(f"{source}: seed labels of one frame must be 2-D (H, W), got shape "
                         f"{plane.shape}")
    if not (np.issubdtype(plane.dtype, np.integer) or plane.dtype == bool):
        raise ValueError(f"{source}: seed labels must be integers, got {plane.dtype}; save the "
                         "segmentation as a label image")
    values = [int(v) for v in np.unique(plane) if v > 0]
    if not values:
        raise ValueError(f"{source}: the seed labels hold no object (every pixel is 0)")
    return [(v, plane == v) for v in values]


def record_from_seeds(plane: np.ndarray, frame: int, propagate: PropagateStep, *,
                      source: str = "seeds", **geometry) -> SessionRecord:
    """A record of one mask prompt per label of ``plane`` (on ``frame``), then
    ``propagate``."""
    steps = [MaskStep(int(frame), obj, mask) for obj, mask in seed_masks(plane, source=source)]
    return SessionRecord(steps=[*steps, propagate], **geometry)


def read_seed_plane(path, frame: int, frame_shape) -> np.ndarray:
    """The seed labels of ``frame`` from a label file: a 2-D plane, or a stack whose first
    axis is the frames (plane ``frame`` is used)."""
    from napari_sam2.headless.inputs import open_array

    path = Path(path)
    array = open_array(path, labels=True)
    if len(array.shape) == 2:
        plane = np.asarray(array[...])
    else:
        if not 0 <= frame < array.shape[0]:
            raise ValueError(f"--seed-frame {frame} is out of range: {path} has frames "
                             f"0..{array.shape[0] - 1}")
        plane = np.asarray(array[frame])
    if tuple(plane.shape) != tuple(frame_shape):
        raise ValueError(f"the seed labels in {path} have shape {tuple(plane.shape)}, the "
                         f"image's frames {tuple(frame_shape)}: use the segmentation of this "
                         "image")
    return plane


def automatic_seeds(frame_image: np.ndarray, model, intensity_range=None) -> np.ndarray:
    """Label plane (H, W) int32 of a frame segmented without prompts (``--seeds auto``), by
    ``napari_sam2.engine.automatic.segment_everything`` with its default options.

    ValueError when it finds no object (nothing to track)."""
    from napari_sam2.engine.automatic import segment_everything

    result = segment_everything(model, np.asarray(frame_image), intensity_range=intensity_range)
    if not len(result.ids):
        raise ValueError("--seeds auto found no object on the seed frame: check --seed-frame "
                         "and --intensity, or give --seeds LABELS or --prompts instead")
    return np.asarray(result.labels)


# ---------------------------------------------------------------------- saved records
def records_from_file(path) -> list[SessionRecord]:
    """The session records in ``path``: a ``.json`` record (or several), or the labels
    (``.zarr``, ``.tif``) the widget saved with one. DamagedFileError when there is none."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: check the path")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DamagedFileError(f"cannot read the session record {path}: {exc}") from None
        return load_records(text, source=str(path))
    if suffix in (".tif", ".tiff"):
        from napari_sam2.io import read_labels_tiff

        _, meta, *_ = read_labels_tiff(path)
        provenance = meta.provenance
    else:
        from napari_sam2.io._zarr_store import PROVENANCE_KEY, load_json, locate_label_image

        where = locate_label_image(path)
        provenance = (load_json(where / "zarr.json").get("attributes") or {}).get(
            PROVENANCE_KEY) or {}
    if provenance.get("session_records"):
        return load_records(provenance["session_records"], source=str(path))
    raise DamagedFileError(
        f"{path} holds labels but no session record (saved by an older napari-sam2, or by "
        "another program): give the prompts as a CSV (--prompts points.csv) or seed labels "
        "(--seeds) instead")
