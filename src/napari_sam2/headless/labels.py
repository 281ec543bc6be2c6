"""Labels of a headless run on disk, written with the widget's paste rules.

The steps before the last propagation are replayed by ``_napari._replay.replay_labels`` (the
widget's ``LabelsWriter``: no overwriting of other labels or hand-painted pixels, SAM's pixel
ownership, undo, deletions) into a :class:`PlaneStore` over the output. The last propagation is
pasted frame by frame by :class:`StreamPainter` with the same writer and ownership, but keeps no
undo edits and forgets a plane's ownership once the plane is done (no later step reads them),
so memory stays flat however long the stack. Both are numpy only.
"""

from __future__ import annotations

import numpy as np

from napari_sam2._napari._layers import LabelsWriter, SamPainter, UndoGroup, _plane_id
from napari_sam2._napari._replay import LabelsArray
from napari_sam2._napari._stack import StackRef

__all__ = ["OUTPUT_REF", "PlaneStore", "StreamPainter"]

#: the output's planes: (T, H, W), frames along axis 0
OUTPUT_REF = StackRef(3, 0, ())


class PlaneStore:
    """A (T, H, W) ``LabelStream`` as an array of planes ``store[(t, :, :)]``, with the last
    plane touched kept in memory until :meth:`flush` (or another plane is touched), so that
    pasting N objects on a frame writes the plane once.

    Reads of the frames in ``source_frames`` come from ``source`` (a resumed run reads the
    labels as they were before its last propagation from a scratch store); such a plane is
    written to ``out`` when it is flushed, even when nothing changed on it.
    """

    def __init__(self, out, source=None, source_frames=()) -> None:
        self.out = out
        self.source = source
        self.source_frames = set(source_frames)
        self.shape = out.shape
        self.dtype = out.array.dtype
        self.ndim = len(self.shape)
        self._frame: int | None = None
        self._plane: np.ndarray | None = None
        self._dirty = False

    def _load(self, frame: int) -> np.ndarray:
        if self._frame != frame:
            self.flush()
            stale = frame in self.source_frames
            store = self.source if stale else self.out
            self._frame, self._plane, self._dirty = frame, store.read(frame), stale
        return self._plane

    def __getitem__(self, key) -> np.ndarray:
        return self._load(int(key[0]))[tuple(key[1:])].copy()

    def __setitem__(self, key, plane) -> None:
        current = self._load(int(key[0]))
        current[tuple(key[1:])] = np.asarray(plane, self.dtype)
        self._dirty = True

    def flush(self) -> None:
        """Write the plane in memory if it changed (or came from ``source``)."""
        if self._dirty:
            self.out.write(self._frame, self._plane)
            self.source_frames.discard(self._frame)
            self._dirty = False


class StreamPainter:
    """Pastes the frames of the last propagation into ``labels`` (a :class:`PlaneStore`) with
    ``writer`` and the pixel ownership its earlier replay left (``painter``)."""

    def __init__(self, writer: LabelsWriter, labels, painter: SamPainter | None = None):
        self.writer = writer
        self.target = LabelsArray(labels)
        self.painter = painter if painter is not None else SamPainter()
        writer.painters[id(self.target)] = self.painter

    def paste(self, result, writes) -> None:
        """Paste ``writes`` ([(obj_id, (H, W) bool)], ``SessionRecord.writes``) on
        ``result.frame``; its undo edits are dropped and the plane's ownership forgotten."""
        key = OUTPUT_REF.plane_key(result.frame)
        group = UndoGroup("streamed", target=self.target)
        for obj, mask in writes:
            self.writer.paste(group, key, obj, mask)
        pid = _plane_id(key)
        for owned in [k for k in self.painter._owned if k[0] == pid]:
            del self.painter._owned[owned]
