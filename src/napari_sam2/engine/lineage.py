"""Lineage: which object (track) lives on which frames, and which one it divided from.

Standard library and numpy only (no torch), so the widget, the CLI and the exporters can use it
without loading the model.

    lin = Lineage()
    lin.add(1, start=0)                   # object 1 appears on frame 0
    lin.divide(1, frame=12, daughter_ids=[2, 3])   # 1 ends on frame 11; 2, 3 start on 12
    lin.children(1)                       # [2, 3]
    lin.to_dict()                         # JSON-able; Lineage.from_dict(d) reads it back

Frames are indices along the stack (time) axis and ranges are inclusive. ``end`` None means the
track is open (it goes on as far as it is tracked). A ``TrackingSession`` keeps one up to date
(``session.lineage``): new objects are added on their first prompt, ``session.divide`` records
divisions. The extents of a saved label stack are what exports use
(``Lineage.from_label_stack(labels, parents=lin)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_sam2.errors import DamagedFileError

__all__ = ["FORMAT", "Lineage", "TrackSegment"]

#: the ``format`` field of ``Lineage.to_dict`` (and of lineage JSON files)
FORMAT = "napari-sam2 lineage"
VERSION = 1


@dataclass
class TrackSegment:
    """One track: frames ``start .. end`` (inclusive; ``end`` None: open) and its parent."""

    track_id: int
    start: int
    end: int | None = None
    parent: int | None = None

    def to_dict(self) -> dict:
        return {"id": self.track_id, "start": self.start, "end": self.end,
                "parent": self.parent}


def _int(value, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    return int(value)


class Lineage:
    """A forest of tracks: ``tracks`` maps a track id to its ``TrackSegment``."""

    def __init__(self, tracks: dict[int, TrackSegment] | None = None) -> None:
        self.tracks: dict[int, TrackSegment] = dict(tracks or {})

    def __repr__(self) -> str:
        return f"Lineage({list(self.tracks.values())!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Lineage) and self.tracks == other.tracks

    def __contains__(self, track_id) -> bool:
        return track_id in self.tracks

    def __len__(self) -> int:
        return len(self.tracks)

    def copy(self) -> Lineage:
        return Lineage({k: TrackSegment(**vars(v)) for k, v in self.tracks.items()})

    # ------------------------------------------------------------------ changes
    def add(self, track_id: int, start: int, parent: int | None = None) -> TrackSegment:
        """A new track from ``start``; for a known track, ``start`` moves earlier if it is.

        Raises:
            ValueError: a negative start, an unknown parent, a parent that is the track
                itself, or a known track given another parent.
        """
        tid, start = _int(track_id, "track_id"), _int(start, "start")
        if start < 0:
            raise ValueError(f"start must be a frame index >= 0, got {start}")
        if parent is not None:
            parent = _int(parent, "parent")
            if parent == tid:
                raise ValueError(f"track {tid} cannot be its own parent")
            if parent not in self.tracks:
                raise ValueError(f"parent {parent} of track {tid} is unknown; known tracks: "
                                 f"{sorted(self.tracks)}")
        seg = self.tracks.get(tid)
        if seg is None:
            seg = self.tracks[tid] = TrackSegment(tid, start, None, parent)
            return seg
        if parent is not None and parent != seg.parent:
            raise ValueError(f"track {tid} already has parent {seg.parent}, not {parent}")
        seg.start = min(seg.start, start)
        return seg

    def end(self, track_id: int, frame: int | None) -> None:
        """Close ``track_id`` on ``frame`` (its last frame; None reopens it)."""
        seg = self._get(track_id)
        if frame is not None:
            frame = _int(frame, "frame")
            if frame < seg.start:
                raise ValueError(f"track {seg.track_id} starts on frame {seg.start}; it cannot "
                                 f"end before that, on frame {frame}")
        seg.end = frame

    def divide(self, parent_id: int, frame: int, daughter_ids) -> list[TrackSegment]:
        """``parent_id`` divides on ``frame``: it ends on ``frame - 1`` and each daughter
        starts on ``frame`` with it as parent. Nothing changes on error.

        Raises:
            ValueError: an unknown parent, a frame not after the parent's start, fewer than
                one daughter, a daughter id that is already a track or repeated.
        """
        seg = self._get(parent_id)
        frame = _int(frame, "frame")
        ids = [_int(d, "daughter id") for d in daughter_ids]
        if not ids:
            raise ValueError(f"a division of track {seg.track_id} needs daughter ids")
        if len(set(ids)) != len(ids):
            raise ValueError(f"daughter ids must be distinct, got {ids}")
        taken = [d for d in ids if d in self.tracks]
        if taken:
            raise ValueError(f"daughter ids {taken} are already tracks; choose new ids")
        if frame <= seg.start:
            raise ValueError(f"track {seg.track_id} starts on frame {seg.start}; it can divide "
                             f"on a later frame only, not on {frame}")
        seg.end = frame - 1
        return [self.add(d, frame, parent=seg.track_id) for d in ids]

    def remove(self, track_id: int) -> None:
        """Forget a track; its daughters become roots (parent None). Removing the last
        daughter of a division undoes it: the parent's track is open again."""
        seg = self.tracks.pop(self._get(track_id).track_id)
        for child in self.tracks.values():
            if child.parent == seg.track_id:
                child.parent = None
        if seg.parent is not None and seg.parent in self.tracks and not self.children(seg.parent):
            self.tracks[seg.parent].end = None

    def clear(self) -> None:
        self.tracks.clear()

    # ------------------------------------------------------------------ queries
    def _get(self, track_id) -> TrackSegment:
        tid = _int(track_id, "track_id")
        seg = self.tracks.get(tid)
        if seg is None:
            raise ValueError(f"unknown track {tid}; known tracks: {sorted(self.tracks)}")
        return seg

    def children(self, track_id: int) -> list[int]:
        """Ids of the tracks whose parent is ``track_id``, sorted."""
        tid = _int(track_id, "track_id")
        return sorted(k for k, s in self.tracks.items() if s.parent == tid)

    def parents(self) -> dict[int, int]:
        """{track id: parent id} of the tracks that have a parent."""
        return {k: s.parent for k, s in sorted(self.tracks.items()) if s.parent is not None}

    def divisions(self) -> list[tuple[int, int, list[int]]]:
        """(parent, first frame of the daughters, daughters) of every division, by parent."""
        out = []
        for tid in sorted(self.tracks):
            kids = self.children(tid)
            if kids:
                out.append((tid, min(self.tracks[k].start for k in kids), kids))
        return out

    def allows(self, track_id: int, frame: int) -> bool:
        """Whether ``track_id`` may have a mask on ``frame``: not after its end, and, for a
        daughter, not before its start (a root may be tracked back before its first prompt)."""
        seg = self.tracks.get(track_id)
        if seg is None:
            return True
        if seg.end is not None and frame > seg.end:
            return False
        return not (seg.parent is not None and frame < seg.start)

    # ------------------------------------------------------------------ conversions
    def to_dict(self) -> dict:
        """JSON-able: {"format", "version", "tracks": [{"id", "start", "end", "parent"}]}."""
        return {"format": FORMAT, "version": VERSION,
                "tracks": [s.to_dict() for _, s in sorted(self.tracks.items())]}

    @classmethod
    def from_dict(cls, data, source: str = "lineage record") -> Lineage:
        """Read ``to_dict``'s output; ``DamagedFileError`` naming ``source`` on bad input."""
        def bad(why: str) -> DamagedFileError:
            return DamagedFileError(f"{source} is not a valid napari-sam2 lineage: {why}; "
                                    "save the lineage again or remove the damaged record")

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise bad(f"expected a dict with format {FORMAT!r}")
        if data.get("version") != VERSION:
            raise bad(f"version {data.get('version')!r} is not supported (this reader: "
                      f"{VERSION})")
        rows = data.get("tracks")
        if not isinstance(rows, list):
            raise bad("'tracks' must be a list")
        lin = cls()
        for row in rows:
            if not isinstance(row, dict) or set(row) != {"id", "start", "end", "parent"}:
                raise bad(f"each track needs exactly id, start, end, parent; got {row!r}")
            values = [row["id"], row["start"]] + [v for v in (row["end"], row["parent"])
                                                  if v is not None]
            if any(isinstance(v, bool) or not isinstance(v, int) for v in values):
                raise bad(f"track fields must be integers (end and parent may be null): {row}")
            tid = row["id"]
            if tid < 1 or tid in lin.tracks or row["start"] < 0:
                raise bad(f"track id {tid} is repeated, < 1, or starts before frame 0")
            if row["end"] is not None and row["end"] < row["start"]:
                raise bad(f"track {tid} ends (frame {row['end']}) before it starts "
                          f"({row['start']})")
            lin.tracks[tid] = TrackSegment(tid, row["start"], row["end"], row["parent"])
        for seg in lin.tracks.values():
            if seg.parent is not None and (seg.parent not in lin.tracks or seg.parent == seg.track_id):
                raise bad(f"track {seg.track_id} has parent {seg.parent}, which is not a track")
        return lin

    @classmethod
    def from_label_stack(cls, labels, parents=None) -> Lineage:
        """Tracks from a label stack: each label's first and last frame.

        Args:
            labels: (T, H, W) integers, 0 background, label k = track k.
            parents: {track: parent} or a ``Lineage`` whose parents are kept (for tracks
                that are in ``labels``; a parent absent from ``labels`` is dropped).

        Returns:
            A Lineage with closed tracks (``end`` = last frame with the label).
        """
        stack = np.asarray(labels)
        if stack.ndim != 3 or not np.issubdtype(stack.dtype, np.integer):
            raise ValueError(f"labels must be a (T, H, W) integer stack, got shape {stack.shape} "
                             f"dtype {stack.dtype}")
        if isinstance(parents, Lineage):
            parents = parents.parents()
        parents = dict(parents or {})
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for t in range(stack.shape[0]):
            for k in np.unique(stack[t]):
                k = int(k)
                if k > 0:
                    first.setdefault(k, t)
                    last[k] = t
        lin = cls()
        for k in sorted(first):
            p = parents.get(k)
            lin.tracks[k] = TrackSegment(k, first[k], last[k], p if p in first else None)
        return lin
