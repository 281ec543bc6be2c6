"""Writing SAM masks into a labels array (numpy or zarr), without destroying anyone's work.

Rules (issue 4): SAM writes only the pixels of the object being segmented, on the frames being
segmented. Other objects' pixels and the user's manual edits are never overwritten (unless
``overwrite=True``), and the last SAM writes can be undone.

To tell SAM's own earlier output from the user's painting, :class:`SamPainter` remembers, per
(plane, label), the pixels SAM itself set (bit-packed). A new mask for label ``k`` on a plane:

* sets ``k`` where the mask is on and the pixel is background (or already ``k``);
* clears to 0 the pixels SAM had set to ``k`` before that the new mask no longer covers;
* leaves every other pixel alone: other labels, and ``k`` pixels painted by hand.

Each call returns a :class:`PlaneEdit` (flat indices, old and new values); edits are grouped
into undo steps by :class:`UndoStack`. Undo restores a pixel only while it still holds the
value SAM wrote, so edits made after the SAM write survive an undo too.

Huge frames (issue 19): a mask may be a ``PlacedMask`` (a crop and its place); then only the
box holding it and the pixels SAM owned before is read and written (and, with overwrite, the
label's other pixels: ``_big_labels.label_box`` finds them in a chunked array's stored
chunks). Pixels outside that box are untouched by the rules above, so the result is the same
as pasting the whole-frame mask; ownership is kept over each label's own box (``Owned``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from napari_sam2._napari._big_labels import label_box, label_planes, labels_array, max_label
from napari_sam2._napari._placed import (
    Box,
    PlacedMask,
    box_slices,
    place,
    shift,
    union,
)
from napari_sam2.engine.windows import mask_box


def _plane_id(key: tuple) -> tuple:
    return tuple(k if isinstance(k, (int, np.integer)) else None for k in key)


@dataclass(frozen=True)
class Owned:
    """The pixels SAM set to one label on one plane: bit-packed over ``box`` (their bounding
    box, (top, left, bottom, right)), so a small object of a huge frame costs its box only."""

    box: Box
    packed: np.ndarray

    def over(self, box: Box) -> np.ndarray:
        """(bottom - top, right - left) bool: the owned pixels seen through ``box``."""
        h, w = self.box[2] - self.box[0], self.box[3] - self.box[1]
        bits = np.unpackbits(self.packed, count=h * w).reshape(h, w).astype(bool)
        return place(bits, self.box, box, False)

    def __eq__(self, other) -> bool:
        return isinstance(other, Owned) and self.box == other.box \
            and bool(np.array_equal(self.packed, other.packed))

    __hash__ = None


def _owned_of(mask: np.ndarray, box: Box) -> Owned | None:
    """``mask`` (lying at ``box``) as ``Owned``, cut to its pixels (None: no pixel)."""
    tight = mask_box(mask)
    if tight is None:
        return None
    tight = shift(tight, box[0], box[1])
    return Owned(tight, np.packbits(place(mask, box, tight, False).ravel()))


@dataclass
class PlaneEdit:
    """The pixels one paste changed on one plane (flat indices into the (H, W) plane)."""

    key: tuple
    label: int
    index: np.ndarray
    old: np.ndarray
    new: np.ndarray
    owned_before: Owned | None  # None = nothing owned (restored by undo)


@dataclass
class UndoGroup:
    """One undoable SAM action (a click, a propagation run, tracking all labels).

    ``target`` is what the edits apply to (the widget keeps the Labels layer there);
    ``undone`` is called after the group was undone (e.g. a division takes back its lineage).
    """

    description: str
    edits: list[PlaneEdit] = field(default_factory=list)
    target: object = None
    undone: Callable[[], None] | None = None


def _sub_key(key: tuple, box: Box) -> tuple:
    return tuple(key[:-2]) + box_slices(box)


class SamPainter:
    """Pastes masks into one labels array and remembers which pixels SAM owns.

    A mask is an (H, W) bool array or a ``PlacedMask`` (a crop and where it lies). Only the
    box that holds the new mask and the pixels SAM owned before (with ``overwrite``: also the
    label's other pixels) is read and written, so a small object of a huge frame costs its
    box; a whole-frame mask reads and writes the plane, as it always did.
    """

    def __init__(self):
        self._owned: dict[tuple, Owned] = {}  # (plane id, label) -> pixels SAM set

    def owned(self, key: tuple, label: int, shape) -> np.ndarray:
        """(H, W) bool: the pixels SAM last set to ``label`` on this plane."""
        found = self._owned.get((_plane_id(key), int(label)))
        whole = (0, 0, int(shape[0]), int(shape[1]))
        return np.zeros(shape, bool) if found is None else found.over(whole)

    def _set_owned(self, key: tuple, label: int, mask: np.ndarray | None,
                   box: Box | None = None) -> None:
        """Own ``mask`` (lying at ``box``; default: the whole plane) for ``label``."""
        pid = (_plane_id(key), int(label))
        if box is None and mask is not None:
            box = (0, 0, *mask.shape)
        owned = None if mask is None else _owned_of(mask, box)
        if owned is None:
            self._owned.pop(pid, None)
        else:
            self._owned[pid] = owned

    def planes_with(self, label: int) -> list[tuple]:
        """Plane ids (ints for the non-spatial axes, None for y and x) where SAM set ``label``."""
        return [pid for pid, lab in self._owned if lab == int(label)]

    def forget_label(self, label: int) -> None:
        for pid in [p for p in self._owned if p[1] == int(label)]:
            del self._owned[pid]

    def paste(
        self, data, key: tuple, label: int, mask, *, overwrite: bool = False
    ) -> PlaneEdit | None:
        """Write ``mask`` as ``label`` into ``data[key]`` following the rules above.

        Args:
            data: the labels array (numpy or zarr; anything supporting ``data[key] = plane``).
            key: index selecting the (H, W) plane (see ``StackRef.plane_key``).
            label: the object's label value (> 0).
            mask: (H, W) bool, or a ``PlacedMask``: the object's new mask on that plane (may
                be empty; None is empty).
            overwrite: also take pixels that hold other labels or manual edits.

        Returns:
            The edit, or None when no pixel changed.
        """
        label = int(label)
        if label <= 0:
            raise ValueError(f"label must be a positive integer, got {label}")
        frame = tuple(int(v) for v in data.shape[-2:])
        placed = PlacedMask.of(mask, frame)
        pid = (_plane_id(key), label)
        before = self._owned.get(pid)
        if placed.covers_frame:
            box = (0, 0, *frame)
        else:
            box = union(placed.tight_box(), None if before is None else before.box,
                        label_box(data, key, label) if overwrite else None)
            if box is None:
                return None  # nothing on, nothing owned, (overwrite:) no such pixel
        sub = _sub_key(key, box)
        plane = np.array(data[sub])  # a copy: data[sub] may be a view
        mask = placed.over(box)
        owned = before.over(box) if before is not None else np.zeros(mask.shape, bool)
        is_label = plane == label
        if overwrite:
            write = mask
            remove = is_label & ~mask
        else:
            write = mask & ((plane == 0) | is_label)
            remove = is_label & owned & ~mask
        new_plane = plane.copy()
        new_plane[remove] = 0
        new_plane[write] = label
        self._set_owned(key, label, write & (~is_label | owned | overwrite), box)
        local = np.flatnonzero(new_plane != plane)
        after = self._owned.get(pid)
        if local.size == 0 and before == after:
            return None
        if local.size:
            data[sub] = new_plane
        rows, cols = np.divmod(local, plane.shape[1])
        changed = np.ravel_multi_index((rows + box[0], cols + box[1]), frame)
        return PlaneEdit(
            key=key, label=label, index=changed, old=plane.ravel()[local],
            new=new_plane.ravel()[local], owned_before=before,
        )

    def undo(self, data, group: UndoGroup) -> int:
        """Revert a group of edits; returns the number of pixels restored."""
        restored = 0
        frame = tuple(int(v) for v in data.shape[-2:])
        for edit in reversed(group.edits):
            if edit.index.size:
                rows, cols = np.unravel_index(edit.index, frame)
                box = (int(rows.min()), int(cols.min()), int(rows.max()) + 1,
                       int(cols.max()) + 1)
                sub = _sub_key(edit.key, box)
                plane = np.array(data[sub])
                at = (rows - box[0], cols - box[1])
                still = plane[at] == edit.new
                plane[at[0][still], at[1][still]] = edit.old[still]
                restored += int(still.sum())
                if still.any():
                    data[sub] = plane
            pid = (_plane_id(edit.key), edit.label)
            if edit.owned_before is None:
                self._owned.pop(pid, None)
            else:
                self._owned[pid] = edit.owned_before
        return restored


class UndoStack:
    """The last ``depth`` SAM actions, newest last."""

    def __init__(self, depth: int = 10):
        self.depth = int(depth)
        self._groups: list[UndoGroup] = []

    def push(self, group: UndoGroup) -> None:
        if not group.edits:
            return
        self._groups.append(group)
        del self._groups[: -self.depth]

    def pop(self) -> UndoGroup | None:
        return self._groups.pop() if self._groups else None

    def __len__(self) -> int:
        return len(self._groups)

    def clear(self) -> None:
        self._groups.clear()


class LabelsWriter:
    """Pastes masks into Labels targets under the rules above and keeps SAM's undo stack.

    A target is anything with an N-D ``data`` array and ``refresh()`` (a napari Labels layer,
    or a small holder of a numpy array); each has its own :class:`SamPainter`. ``overwrite``
    lets SAM take other labels' pixels (the widget's checkbox). Each of ``listeners`` is
    called with ``(target, plane key)`` after every plane that a paste or an undo changed
    (the tracks view follows the labels this way).
    """

    def __init__(self, depth: int = 10):
        self.painters: dict[int, SamPainter] = {}
        self.undo_stack = UndoStack(depth)
        self.overwrite = False
        self.listeners: list[Callable[[object, tuple], None]] = []

    def _changed(self, target, key: tuple) -> None:
        for listener in self.listeners:
            listener(target, key)

    def painter(self, target) -> SamPainter:
        return self.painters.setdefault(id(target), SamPainter())

    def paste(self, group: UndoGroup, key: tuple, label: int, mask, *, overwrite=None) -> None:
        """Paste ``mask`` ((H, W) bool or ``PlacedMask``) as ``label`` on plane ``key`` of
        ``group.target`` (its level 0 when multiscale)."""
        edit = self.painter(group.target).paste(
            labels_array(group.target), key, label, mask,
            overwrite=self.overwrite if overwrite is None else overwrite,
        )
        if edit is not None:
            group.edits.append(edit)
            self._changed(group.target, key)

    def erase(self, group: UndoGroup, label: int) -> None:
        """Clear every pixel of ``label`` in ``group.target`` (SAM's or painted) into ``group``."""
        data = labels_array(group.target)
        for key in label_planes(data, label):
            self.paste(group, key, label, PlacedMask.empty(data.shape[-2:]), overwrite=True)
        self.painter(group.target).forget_label(label)

    def undo(self, exists=lambda target: True) -> tuple[UndoGroup | None, int]:
        """Revert the last group whose target still ``exists``: (group, pixels restored)."""
        group = self.undo_stack.pop()
        if group is None or not exists(group.target):
            return None, 0
        restored = self.painter(group.target).undo(labels_array(group.target), group)
        group.target.refresh()
        for key in {_plane_id(edit.key): edit.key for edit in group.edits}.values():
            self._changed(group.target, key)
        if group.undone is not None:
            group.undone()
        return group, restored


def next_free_label(data, used=()) -> int:
    """1 + the largest label in ``data`` (numpy, zarr: its stored chunks) and in ``used``."""
    return max([max_label(data), *[int(u) for u in used]]) + 1


def labels_on_plane(plane: np.ndarray) -> list[int]:
    """The label values (> 0) present on an (H, W) plane."""
    values = np.unique(np.asarray(plane))
    return [int(v) for v in values if v > 0]
