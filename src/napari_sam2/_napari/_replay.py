"""A session record replayed into a labels array exactly as the widget wrote it (numpy only).

``replay_labels`` runs ``SessionRecord.run_step`` step by step on a fresh ``TrackingSession``
and pastes each result with the widget's own ``LabelsWriter`` (the no-overwrite rules, SAM's
pixel ownership, one undo group per action), so undo, the overwrite setting, cleared frames and
deleted objects have the effect they had in the widget; a division (marked by hand, or found
by a propagation) is pasted as the widget pastes it, and undoing it takes it back out of the
session as the widget's undo does. A mask used as prompt was in the labels
already (painted, or from another tool): it is put back as the user's pixels. Used to rebuild
a reopened session (``_restore.py``) and by headless replay, which then gives the widget's
labels exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from napari_sam2._napari._division import (
    division_pastes,
    found_divisions,
    revert_division,
    revert_divisions,
)
from napari_sam2._napari._layers import LabelsWriter, UndoGroup, _plane_id, label_planes
from napari_sam2._napari._placed import PlacedMask, placed_of
from napari_sam2._napari._stack import StackRef
from napari_sam2.engine.session_record import (
    ClearStep,
    DivideStep,
    MaskStep,
    OverwriteStep,
    PropagateStep,
    PropagationWrites,
    RemoveStep,
    SessionRecord,
    UndoStep,
    propagate_start,
)


class LabelsArray:
    """A labels array as a ``LabelsWriter`` target (``data`` + ``refresh``)."""

    def __init__(self, data):
        self.data = data
        self.name = "labels"

    def refresh(self) -> None:
        pass


def record_ref(record: SessionRecord, ndim: int | None = None) -> StackRef:
    """The stack of ``record`` in a labels array of ``ndim`` dims (default: the image's)."""
    ndim = len(record.image_shape) if ndim is None else int(ndim)
    if record.stack_axis is None:
        return StackRef(ndim, None, ())
    return StackRef(ndim, record.stack_axis, tuple(sorted(record.other_axes.items())))


def replay_labels(record: SessionRecord, session, labels, *, ref: StackRef | None = None,
                  writer: LabelsWriter | None = None,
                  on_frame: Callable[[int, object], None] | None = None) -> LabelsWriter:
    """Replay ``record`` on ``session`` (fresh, over the record's stack), writing into
    ``labels`` as the widget did.

    Args:
        labels: integer array of the image's non-channel shape (numpy, or zarr), normally all
            zeros; or any array whose planes ``ref`` addresses.
        ref: the record's stack in ``labels`` (default ``record_ref(record, labels.ndim)``).
        writer: the ``LabelsWriter`` to paste with (default a new one, undo depth 10 as the
            widget's).
        on_frame: called as ``on_frame(step index, FrameResult)`` after each result is pasted.

    Returns:
        The writer: its painter holds the pixels SAM owns, its undo stack the last actions.
    """
    ref = record_ref(record, np.ndim(labels)) if ref is None else ref
    writer = LabelsWriter() if writer is None else writer
    target = LabelsArray(labels)
    group: UndoGroup | None = None
    for index, step in enumerate(record.steps):
        if isinstance(step, (UndoStep, OverwriteStep, MaskStep)) and group is not None:
            writer.undo_stack.push(group)  # the action before is complete
            group = None
        if isinstance(step, UndoStep):
            writer.undo()
            continue
        if isinstance(step, OverwriteStep):
            writer.overwrite = bool(step.overwrite)
            continue
        if isinstance(step, MaskStep):
            # the mask was in the labels already (painted, or another tool's): put it back as
            # the user's pixels (not SAM's, outside SAM's undo), then use it as the prompt
            key = ref.plane_key(step.frame)
            plane = np.array(labels[key])
            plane[step.mask] = step.obj_id
            labels[key] = plane
            for result in record.run_step(session, index):
                if on_frame is not None:
                    on_frame(index, result)
            continue
        if not (isinstance(step, RemoveStep) and step.together and group is not None):
            if group is not None:
                writer.undo_stack.push(group)
            group = UndoGroup(f"step {index}", target=target)
        if isinstance(step, RemoveStep):
            _erase(writer, group, ref, step.obj_id)
        if isinstance(step, DivideStep):
            _divide(record, index, session, writer, group, ref, on_frame)
            continue
        known, run = session.obj_ids, None
        if isinstance(step, PropagateStep):  # frames may come again after a division
            run = PropagationWrites(step.obj_ids, known=known,
                                    start=propagate_start(session, step), mask_of=placed_of)
        for result in record.run_step(session, index):
            pastes = record.writes(index, result, placed_of) if run is None \
                else run(result)[0]
            for obj, mask in pastes:
                writer.paste(group, ref.plane_key(result.frame), obj, mask)
            if on_frame is not None:
                on_frame(index, result)
        if isinstance(step, PropagateStep) and step.divisions is not None:
            divided = found_divisions(session, known)
            if divided:  # the widget's undo of the run takes them back out of the session
                group.undone = lambda d=divided: revert_divisions(session, d)
        if isinstance(step, ClearStep) and step.obj_id is not None:
            empty = PlacedMask.empty(np.shape(labels)[-2:])
            writer.paste(group, ref.plane_key(step.frame), step.obj_id, empty)
    if group is not None:
        writer.undo_stack.push(group)
    return writer


def _divide(record, index, session, writer, group, ref, on_frame) -> None:
    """A ``DivideStep``: the session divides, the labels change as ``Divider`` writes them."""
    step = record.steps[index]
    daughters = step.daughter_ids
    group.undone = lambda: revert_division(session, step.parent_id, daughters)
    for result in record.run_step(session, index):
        for key, obj, mask in division_pastes(group.target.data, ref, step.parent_id,
                                              step.frame, result, daughters):
            writer.paste(group, key, obj, mask)
        if on_frame is not None:
            on_frame(index, result)


def _erase(writer: LabelsWriter, group: UndoGroup, ref: StackRef, obj_id: int) -> None:
    """The widget's delete: every pixel of ``obj_id`` cleared, here on the record's stack."""
    data = group.target.data
    empty = PlacedMask.empty(data.shape[-2:])
    planes = {_plane_id(key) for key in label_planes(data, obj_id)}
    n = 1 if ref.stack_axis is None else data.shape[ref.stack_axis]
    for frame in range(n):
        key = ref.plane_key(frame)
        if _plane_id(key) in planes:
            writer.paste(group, key, obj_id, empty, overwrite=True)
    writer.painter(group.target).forget_label(obj_id)
