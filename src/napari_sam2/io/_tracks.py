"""Tracks of a label stack: per (track, frame) nodes, CTC rows, and the export-folder policy.

numpy only. A label stack (T, H, W) holds one track per label value (0 = background); the
lineage is a mapping {daughter track: parent track}. The exporters (``ctc.py``,
``geff_tracks.py``, ``tracks_csv.py``) share these functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_sam2.errors import RefusedOverwriteError

#: the file inside an export folder that says napari-sam2 wrote it (and may replace it)
MARKER = ".napari-sam2-export.json"


@dataclass(frozen=True)
class Node:
    """One track on one frame: centroid (y, x) in pixels and area in pixels."""

    track: int
    frame: int
    y: float
    x: float
    area: int


def check_stack(labels) -> np.ndarray:
    """``labels`` as a (T, H, W) integer array with no negative values, or a ValueError."""
    arr = np.asarray(labels)
    if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.integer) or arr.size == 0:
        raise ValueError(f"labels must be a non-empty (T, H, W) integer stack, got shape "
                         f"{arr.shape} dtype {arr.dtype}")
    if arr.min() < 0:
        raise ValueError("labels must not be negative (0 is background, k > 0 track k)")
    return arr


def check_parents(parents) -> dict[int, int]:
    """``parents`` ({daughter: parent}, or None) with int keys and values."""
    out = {}
    for k, v in dict(parents or {}).items():
        if v is None or int(v) == 0:
            continue
        if int(k) == int(v):
            raise ValueError(f"track {k} cannot be its own parent")
        out[int(k)] = int(v)
    return out


def nodes(labels) -> list[Node]:
    """One ``Node`` per label present on each frame, sorted by (track, frame)."""
    arr = check_stack(labels)
    h, w = arr.shape[1:]
    rows = np.broadcast_to(np.arange(h, dtype=np.float64)[:, None], (h, w)).ravel()
    cols = np.broadcast_to(np.arange(w, dtype=np.float64)[None, :], (h, w)).ravel()
    out = []
    for t in range(arr.shape[0]):
        frame = arr[t]
        ids, inverse, counts = np.unique(frame, return_inverse=True, return_counts=True)
        inverse = inverse.ravel()
        ys, xs = np.bincount(inverse, rows), np.bincount(inverse, cols)
        for i, k in enumerate(ids):
            if k > 0:
                out.append(Node(int(k), t, ys[i] / counts[i], xs[i] / counts[i], int(counts[i])))
    out.sort(key=lambda n: (n.track, n.frame))
    return out


def frames_by_track(all_nodes: list[Node]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for n in all_nodes:
        out.setdefault(n.track, []).append(n.frame)
    return out


def usable_parents(parents: dict[int, int], frames: dict[int, list[int]]) -> dict[int, int]:
    """The links whose both tracks are present; ValueError when a parent is still there on or
    after its daughter's first frame (no lineage can say that)."""
    out = {}
    for child, parent in parents.items():
        if child not in frames or parent not in frames:
            continue
        if frames[parent][-1] >= frames[child][0]:
            raise ValueError(
                f"track {child} starts on frame {frames[child][0]} but its parent {parent} is "
                f"still labelled on frame {frames[parent][-1]}; a parent must end before its "
                "daughters start: fix the labels or the lineage")
        out[child] = parent
    return out


def ctc_tracks(labels, parents=None) -> tuple[np.ndarray, np.ndarray]:
    """Labels and ``res_track.txt`` rows in CTC form.

    A track with a gap (frames where its label is missing) becomes several CTC tracks, as the
    CTC format requires: each part after a gap gets a new label (above the largest one) with
    the part before as parent; daughters hang from the last part.

    Returns:
        labels: uint16 (T, H, W); rows: int64 (N, 4) ``L B E P`` sorted by L.

    Raises:
        ValueError: a label above 65535 (CTC's 16-bit masks), or a parent still labelled on or
            after its daughter's first frame.
    """
    arr = check_stack(labels)
    frames = frames_by_track(nodes(arr))
    links = usable_parents(check_parents(parents), frames)
    out = arr.astype(np.int64, copy=True)
    next_label = max(frames, default=0) + 1
    rows, last_part = [], {}
    for track, fs in sorted(frames.items()):
        breaks = [i for i in range(1, len(fs)) if fs[i] != fs[i - 1] + 1]
        bounds = list(zip([0, *breaks], [*breaks, len(fs)]))
        label, parent = track, 0
        for i, (a, b) in enumerate(bounds):
            if i > 0:
                label, parent = next_label, label
                next_label += 1
                for t in fs[a:b]:
                    out[t][arr[t] == track] = label
            rows.append([label, fs[a], fs[b - 1], parent])
        last_part[track] = label
    for row in rows:  # daughters hang from the last part of their parent
        if row[0] in links:
            row[3] = last_part[links[row[0]]]
    if next_label - 1 > 65535:
        raise ValueError(f"CTC masks are 16-bit: labels (with parts after gaps) reach "
                         f"{next_label - 1} > 65535; renumber the tracks first")
    table = np.array(sorted(rows), np.int64).reshape(-1, 4)
    return out.astype(np.uint16), table


def _marker_kind(path: Path) -> str | None:
    try:
        return json.loads((path / MARKER).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def mark_export(folder: Path, kind: str) -> None:
    """Write ``MARKER`` into a new export folder."""
    (folder / MARKER).write_text(json.dumps({"written_by": "napari-sam2", "kind": kind}),
                                 encoding="utf-8")


def check_export_target(path: Path, kind: str) -> None:
    """Refuse to replace ``path`` unless it is missing, an empty folder, or an export of the
    same ``kind`` that napari-sam2 wrote (its ``MARKER`` says so)."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        what = "a symbolic link" if path.is_symlink() else "a file"
    elif not any(path.iterdir()) or _marker_kind(path) == kind:
        return
    elif _marker_kind(path) is not None:
        what = f"a napari-sam2 export of another kind ({_marker_kind(path)}, not {kind})"
    else:
        names = sorted(p.name for p in path.iterdir())
        what = f"a folder of other files ({len(names)} entries: {', '.join(names[:3])})"
    raise RefusedOverwriteError(
        f"Refusing to export to {path}: it is {what}, and exporting would replace it (only "
        f"empty folders and {kind} exports written by napari-sam2 are replaced). Nothing was "
        "changed. Choose another name, or move or delete it yourself first.")
