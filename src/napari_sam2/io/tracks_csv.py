"""Plain CSV of tracks: one row per track and frame.

Columns ``track_id, frame, y, x, area, parent``: the centroid (y, x) and area in pixels, and
the parent track (empty for a track without one). Rows are sorted by track, then frame. A
file is replaced only if its header is exactly this one (a CSV that napari-sam2 wrote).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from napari_sam2._safe_write import write_text_atomic
from napari_sam2.errors import RefusedOverwriteError
from napari_sam2.io._tracks import check_parents, frames_by_track, nodes, usable_parents

__all__ = ["HEADER", "write_tracks_csv"]

HEADER = ["track_id", "frame", "y", "x", "area", "parent"]


def _ours(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return next(csv.reader(fh), None) == HEADER
    except (OSError, UnicodeDecodeError):
        return False


def write_tracks_csv(path, labels, parents=None) -> Path:
    """Write the tracks of ``labels`` (T, H, W) with ``parents`` ({daughter: parent}) to
    ``path`` (atomic). Raises RefusedOverwriteError for an existing file that is not ours."""
    path = Path(path)
    if path.exists() and not (path.is_file() and _ours(path)):
        raise RefusedOverwriteError(
            f"Refusing to export to {path}: it exists and is not a tracks CSV written by "
            "napari-sam2. Nothing was changed. Choose another name, or move or delete it "
            "yourself first.")
    all_nodes = nodes(labels)
    links = usable_parents(check_parents(parents), frames_by_track(all_nodes))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    for n in all_nodes:
        writer.writerow([n.track, n.frame, f"{n.y:.3f}", f"{n.x:.3f}", n.area,
                         links.get(n.track, "")])
    return write_text_atomic(path, buf.getvalue())
