"""The live "tracks" layer: one track per object, its centroid on every frame, divisions drawn.

A napari Tracks layer is made from two things the plugin already has: the Labels layer (where
each object is, frame by frame) and the lineage (which object is the parent of which). The
centroids are computed from the labels, one plane at a time, and cached per frame, so a frame
written by SAM (a click, a streamed propagation frame, a division, an undo, a deletion) costs
the centroids of that frame only; the layer itself is rebuilt at most every ``interval``
seconds while frames stream in (``flush``), and at once when an action ends
(``flush(force=True)``).

Track ids are the object ids (a daughter is a new object with a new id); the graph is
``{daughter: [parent]}`` for parents that are shown. Only stacks along the first axis are drawn
(napari's Tracks layer takes its first coordinate as time): ``(t, y, x)`` and ``(t, z, y, x)``
tracked along t (the other axis at the stack's position), or a z-stack tracked along z.

numpy only, except :class:`TracksView`, which adds and updates the napari layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from napari_sam2._napari._big_labels import labels_array
from napari_sam2._napari._big_labels import plane_centroids as centroids_of

#: The suffix of the Tracks layer's name: "<labels layer name> tracks".
TRACKS_SUFFIX = " tracks"


def plane_centroids(plane) -> dict[int, tuple[float, float]]:
    """{label: (row, col)} centre of mass of every label > 0 on an (H, W) plane."""
    plane = np.asarray(plane)
    flat = plane.ravel()
    on = np.flatnonzero(flat > 0)
    if on.size == 0:
        return {}
    values, inverse, counts = np.unique(flat[on], return_inverse=True, return_counts=True)
    rows, cols = np.divmod(on, plane.shape[1])
    r = np.bincount(inverse, weights=rows) / counts
    c = np.bincount(inverse, weights=cols) / counts
    return {int(v): (float(a), float(b)) for v, a, b in zip(values, r, c)}


def tracks_table(points: dict[int, dict[int, tuple[float, float]]], fixed=()) -> np.ndarray:
    """napari Tracks data (N, 4 + len(fixed)): ``[track id, frame, *fixed, row, col]`` sorted
    by id then frame, from ``{frame: {obj id: (row, col)}}``; ``fixed`` are the coordinates
    of the axes between the stack axis and (y, x) (the z of a (t, z, y, x) stack)."""
    rows = [(obj, frame, *fixed, r, c) for frame, objs in points.items()
            for obj, (r, c) in objs.items()]
    table = np.asarray(rows, float).reshape(-1, 4 + len(fixed))
    return table[np.lexsort((table[:, 1], table[:, 0]))] if len(table) else table


def lineage_graph(parents: dict[int, int | None], shown) -> dict[int, list[int]]:
    """napari's ``{child: [parent]}`` for every child and parent both in ``shown`` (a Tracks
    layer refuses graph nodes it has no points for)."""
    shown = {int(s) for s in shown}
    return {int(child): [int(parent)] for child, parent in sorted(parents.items())
            if parent is not None and int(child) in shown and int(parent) in shown}


def painted_frames(atoms, stack_axis: int) -> set[int] | None:
    """The frames a napari Labels ``paint`` event's history atoms changed (``event.value``:
    masked atoms with a ``slice_key`` bounding box, or ``(indices, old, new)`` tuples); None
    when they cannot be read (then every frame counts as changed)."""
    frames: set[int] = set()
    try:
        for atom in atoms:
            box = getattr(atom, "slice_key", None)
            if box is not None:
                axis = box[stack_axis]
                frames.update(range(axis.start or 0, axis.stop) if isinstance(axis, slice)
                              else [int(axis)])
            else:
                frames.update(int(f) for f in np.unique(np.asarray(atom[0][stack_axis])))
    except (TypeError, IndexError, ValueError, AttributeError):
        return None
    return frames


def drawable(ndim: int, stack_axis: int | None) -> bool:
    """Whether a stack of an ``ndim``-D labels array along ``stack_axis`` can be a Tracks
    layer: 3-D or 4-D, along the first axis."""
    return ndim in (3, 4) and stack_axis == 0


def _source_path(layer) -> str | None:
    """The file a layer was read from (napari's ``layer.source.path``), or None."""
    source = getattr(layer, "source", None)
    return getattr(source, "path", None)


class TracksView:
    """Keeps a napari Tracks layer in step with one stack of a Labels layer and a lineage.

    Args:
        viewer: the napari viewer (``add_tracks``, ``layers``).
        parents: returns ``{track id: parent id or None}`` (the lineage) when called.
        interval: at most one rebuild of the layer per ``interval`` seconds while frames
            stream in (``flush()``); ``flush(force=True)`` rebuilds now.
    """

    def __init__(self, viewer, parents: Callable[[], dict], *, interval: float = 1.0):
        self.viewer = viewer
        self.parents = parents
        self.interval = float(interval)
        self.labels = None
        self.ref = None
        self.layer = None
        self._points: dict[int, dict[int, tuple[float, float]]] = {}
        self._dirty: set[int] = set()
        self._stale = False  # the layer differs from the cache (the graph, or dirty frames)
        self._last = 0.0
        self.rebuilds = 0  # how many times the layer was rebuilt (tests, diagnostics)

    # ------------------------------------------------------------------ what it shows
    def attach(self, labels, ref) -> None:
        """Show the stack ``ref`` (a ``StackRef``) of ``labels`` (None: show nothing more)."""
        if labels is self.labels and ref == self.ref:
            return
        self.labels, self.ref = labels, ref
        self._points, self._dirty = {}, set()
        self.layer = self._find_layer()
        if self.active:
            self._dirty = set(range(labels.data.shape[0]))
            self.flush(force=True)

    @property
    def active(self) -> bool:
        return (self.labels is not None and self.ref is not None
                and drawable(self.ref.ndim, self.ref.stack_axis))

    @property
    def name(self) -> str:
        return f"{self.labels.name}{TRACKS_SUFFIX}"

    def _find_layer(self):
        """A Tracks layer of the labels already in the viewer: opened from the same file with
        them (napari may have renamed both), or of that name."""
        if self.labels is None:
            return None
        path = _source_path(self.labels)
        for layer in self.viewer.layers:
            if type(layer).__name__ == "Tracks" and (
                    layer.name == self.name or (path is not None and _source_path(layer) == path)):
                return layer
        return None

    def _fixed(self) -> tuple:
        return tuple(float(i) for _, i in self.ref.fixed)

    # ------------------------------------------------------------------ changes
    def mark(self, target, key) -> None:
        """A plane of ``target`` changed (``key``: its index, as ``StackRef.plane_key``)."""
        if not self.active or target is not self.labels:
            return
        if any(not isinstance(key[a], (int, np.integer)) or key[a] != i
               for a, i in self.ref.fixed):
            return  # another stack of the same labels
        self._dirty.add(int(key[self.ref.stack_axis]))

    def mark_all(self) -> None:
        """Every frame may have changed (labels painted by hand, data replaced)."""
        if self.active:
            self._dirty = set(range(self.labels.data.shape[0]))

    def graph_changed(self) -> None:
        """The lineage changed (a division): rebuild at the next flush."""
        self._stale = True

    def flush(self, force: bool = False) -> bool:
        """Recompute the dirty frames' centroids and rebuild the layer, unless the last
        rebuild is less than ``interval`` s old (``force``: now). Returns whether it rebuilt."""
        if not self.active or not (self._dirty or self._stale):
            return False
        now = time.perf_counter()
        if not force and now - self._last < self.interval:
            return False
        self._last = now
        data = labels_array(self.labels)
        for frame in sorted(self._dirty):
            key = self.ref.plane_key(frame)
            found = centroids_of(data, key)  # chunked labels: their stored chunks only
            if found:
                self._points[frame] = found
            else:
                self._points.pop(frame, None)
        self._dirty.clear()
        self._stale = False
        self._show()
        return True

    # ------------------------------------------------------------------ the layer
    def table(self) -> np.ndarray:
        """The Tracks data now cached (N, 4 or 5)."""
        return tracks_table(self._points, self._fixed())

    def extents(self) -> dict[int, tuple[int, int]]:
        """{track id: (first frame, last frame)} of the labels as cached."""
        out: dict[int, tuple[int, int]] = {}
        for frame in sorted(self._points):
            for tid in self._points[frame]:
                first = out.get(tid, (frame, frame))[0]
                out[tid] = (first, frame)
        return out

    def graph(self, table: np.ndarray | None = None) -> dict[int, list[int]]:
        table = self.table() if table is None else table
        return lineage_graph(self.parents(), np.unique(table[:, 0]).astype(int))

    def _show(self) -> None:
        table = self.table()
        self.rebuilds += 1
        layer = self.layer
        if layer is not None and layer not in self.viewer.layers:
            layer = self.layer = None
        if not len(table):  # a Tracks layer cannot be empty: it goes until there are tracks
            if layer is not None:
                self.layer = None
                self.viewer.layers.remove(layer)
            return
        graph = self.graph(table)
        if layer is None:
            selection = self.viewer.layers.selection
            active, selected = selection.active, set(selection)
            self.layer = self.viewer.add_tracks(
                table, graph=graph, name=self.name,
                tail_length=max(int(self.labels.data.shape[self.ref.stack_axis]), 1),
                scale=tuple(self.labels.scale), translate=tuple(self.labels.translate),
            )
            self._keep_below_prompts()
            # a new layer becomes the selected one: give the selection back (clicks go on to
            # the layer they went to, e.g. 'SAM prompts')
            selection.clear()
            selection.update({lay for lay in selected if lay in self.viewer.layers})
            if active is not None and active in self.viewer.layers:
                selection.active = active
            return
        layer.data = table  # resets the graph
        layer.graph = graph

    def _keep_below_prompts(self) -> None:
        """Put the new layer just above the labels (the prompt layers stay on top)."""
        layers = self.viewer.layers
        if self.labels in layers:
            layers.move(layers.index(self.layer), layers.index(self.labels) + 1)


# ---------------------------------------------------------------------- lineage records
#: The key of the lineage in our record (the Labels layer's ``metadata["napari_sam2"]``,
#: saved by both writers with the rest of the record).
LINEAGE_KEY = "lineage"


def saved_parents(record: dict | None, source: str = "the lineage saved with the labels"
                  ) -> dict[int, int]:
    """{track: parent} of the lineage in a saved record (empty when there is none); a
    damaged lineage raises ``DamagedFileError`` naming ``source``."""
    from napari_sam2.engine.lineage import Lineage

    data = (record or {}).get(LINEAGE_KEY)
    if not data:
        return {}
    return Lineage.from_dict(data, source).parents()


def lineage_record(extents: dict[int, tuple[int, int]], parents: dict) -> dict:
    """The lineage of the labels as saved (``Lineage.to_dict()``): one track per label with its
    first and last frame (``extents``), the parent when that parent is a label too."""
    from napari_sam2.engine.lineage import Lineage, TrackSegment

    tracks = {}
    for tid, (first, last) in sorted(extents.items()):
        parent = parents.get(tid)
        tracks[tid] = TrackSegment(tid, first, last, parent if parent in extents else None)
    return Lineage(tracks).to_dict()
