"""The widget's labels, rebuilt from a session record's steps without napari.

The widget writes SAM's masks into its Labels layer through ``LabelsWriter`` (the rules of
``_napari/_layers.py``: SAM never overwrites other labels or hand-painted pixels, it clears
only the pixels it set itself, Undo reverts its last action). :class:`LabelsReplay` applies
the same writer, step by step, to a (T, H, W) label store on disk, so that a replayed record
gives the widget's labels exactly:

* points / box: the object's mask of that frame pasted (one undo group per step);
* a mask prompt: the mask painted by hand (``plane[mask] = obj``; not SAM's pixels, no undo);
* a propagation: every tracked object's mask pasted on each frame (one undo group);
* clear: an empty mask pasted for the object(s) on that frame; remove: every pixel of the
  object erased; undo: the last group reverted; overwrite: the writer's setting.

Planes are read from and written to a :class:`PlaneStore` (one plane in memory at a time).
For the long last propagation of a run, :meth:`LabelsReplay.stream` pastes without keeping
undo edits and forgets a plane's ownership once the plane is done, so memory stays flat.

``LabelsWriter`` lives in ``_napari/_layers.py`` (numpy only; importing it loads no napari).
"""

from __future__ import annotations

import numpy as np

from napari_sam2._napari._layers import LabelsWriter, UndoGroup, _plane_id
from napari_sam2.engine.session_record import (
    BoxStep,
    ClearStep,
    MaskStep,
    OverwriteStep,
    PointsStep,
    PropagateStep,
    RemoveStep,
    UndoStep,
)

__all__ = ["LabelsReplay", "PlaneStore"]

_PLANE = (slice(None), slice(None))


class PlaneStore:
    """``data`` of a writer target: planes ``data[(t, :, :)]`` of a (T, H, W) ``LabelStream``,
    with the last plane touched kept in memory until :meth:`flush` (or another plane is
    touched), so that pasting N objects on a frame writes the plane once.

    Reads of the frames in ``source_frames`` come from ``source`` (a resumed run reads the
    labels as they were before its last propagation from a scratch store) until the plane is
    written; writes always go to ``out``.
    """

    def __init__(self, out, source=None, source_frames=None) -> None:
        self.out = out
        self.source = source
        self.source_frames = set(source_frames or ())
        self.shape = out.shape
        self.dtype = out.array.dtype
        self.ndim = len(self.shape)
        self._frame: int | None = None
        self._plane: np.ndarray | None = None
        self._dirty = False

    def _load(self, frame: int) -> np.ndarray:
        if self._frame != frame:
            self.flush()
            # a plane read from the source is written out even when nothing changes on it
            stale = frame in self.source_frames
            store = self.source if stale else self.out
            self._frame, self._plane, self._dirty = frame, store.read(frame), stale
        return self._plane

    def __getitem__(self, key) -> np.ndarray:
        return self._load(int(key[0])).copy()

    def __setitem__(self, key, plane) -> None:
        frame = int(key[0])
        self._load(frame)
        self._plane = np.asarray(plane, self.dtype)
        self._dirty = True

    def flush(self) -> None:
        """Write the plane in memory if it changed."""
        if self._dirty:
            self.out.write(self._frame, self._plane)
            self.source_frames.discard(self._frame)
            self._dirty = False


class _Target:
    """What ``LabelsWriter`` pastes into: ``data`` and ``refresh()``."""

    def __init__(self, data) -> None:
        self.data = data

    def refresh(self) -> None:
        pass


class LabelsReplay:
    """Applies a record's steps and results to the labels in ``data`` (a :class:`PlaneStore`)."""

    def __init__(self, data, depth: int = 10) -> None:
        self.target = _Target(data)
        self.writer = LabelsWriter(depth)
        self.painter = self.writer.painter(self.target)
        self._group: UndoGroup | None = None
        self._group_index: int | None = None

    def _key(self, frame: int) -> tuple:
        return (int(frame),) + _PLANE

    def _close_group(self) -> None:
        if self._group is not None:
            self.writer.undo_stack.push(self._group)
        self._group = self._group_index = None

    def _group_for(self, index: int) -> UndoGroup:
        if self._group_index != index:
            self._close_group()
            self._group = UndoGroup(f"step {index}", target=self.target)
            self._group_index = index
        return self._group

    def apply(self, index: int, step, result=None, writes=()) -> None:
        """Apply step ``index`` (``step``) with one of its results and what the record says
        it pastes (``SessionRecord.writes(index, result)``); steps without results (clear,
        remove, undo, overwrite, a mask) are applied with ``result`` None."""
        if isinstance(step, (PointsStep, BoxStep, PropagateStep)) and result is not None:
            group = self._group_for(index)
            for obj, mask in writes:
                self.writer.paste(group, self._key(result.frame), obj, mask)
            return
        self._close_group()
        data = self.target.data
        if isinstance(step, MaskStep):  # the widget's layer already holds the painted mask
            key = self._key(step.frame)
            plane = np.array(data[key])
            plane[(plane == step.obj_id) & ~step.mask] = 0
            plane[step.mask] = step.obj_id
            data[key] = plane
        elif isinstance(step, ClearStep):
            key = self._key(step.frame)
            objs = [step.obj_id] if step.obj_id is not None else [
                int(v) for v in np.unique(data[key]) if v > 0]
            group = UndoGroup(f"step {index}", target=self.target)
            empty = np.zeros(data.shape[-2:], bool)
            for obj in objs:
                self.writer.paste(group, key, obj, empty)
            self.writer.undo_stack.push(group)
        elif isinstance(step, RemoveStep):
            group = UndoGroup(f"step {index}", target=self.target)
            empty = np.zeros(data.shape[-2:], bool)
            for frame in range(data.shape[0]):
                if (np.asarray(data[self._key(frame)]) == step.obj_id).any():
                    self.writer.paste(group, self._key(frame), step.obj_id, empty,
                                      overwrite=True)
            self.painter.forget_label(step.obj_id)
            self.writer.undo_stack.push(group)
        elif isinstance(step, UndoStep):
            self.writer.undo()
        elif isinstance(step, OverwriteStep):
            self.writer.overwrite = bool(step.overwrite)

    def finish(self) -> None:
        """Close the last undo group (call after the last step)."""
        self._close_group()

    def stream(self, result, writes) -> None:
        """Paste a frame of the last propagation: no undo kept, the plane's ownership
        forgotten afterwards (no later step reads it)."""
        self._close_group()
        key = self._key(result.frame)
        group = UndoGroup("stream", target=self.target)
        for obj, mask in writes:
            self.writer.paste(group, key, obj, mask)
        pid = _plane_id(key)
        for owned in [k for k in self.painter._owned if k[0] == pid]:
            del self.painter._owned[owned]
