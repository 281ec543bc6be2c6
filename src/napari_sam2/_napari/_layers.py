"""Writing SAM masks into a labels array (numpy only), without destroying anyone's work.

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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


def _plane_id(key: tuple) -> tuple:
    return tuple(k if isinstance(k, (int, np.integer)) else None for k in key)


@dataclass
class PlaneEdit:
    """The pixels one paste changed on one plane (flat indices into the (H, W) plane)."""

    key: tuple
    label: int
    index: np.ndarray
    old: np.ndarray
    new: np.ndarray
    owned_before: np.ndarray | None  # packed bits, None = nothing owned (restored by undo)


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


class SamPainter:
    """Pastes masks into one labels array and remembers which pixels SAM owns."""

    def __init__(self):
        self._owned: dict[tuple, np.ndarray] = {}  # (plane id, label) -> packed bits
        self._shapes: dict[tuple, tuple[int, int]] = {}

    def owned(self, key: tuple, label: int, shape) -> np.ndarray:
        """(H, W) bool: the pixels SAM last set to ``label`` on this plane."""
        packed = self._owned.get((_plane_id(key), int(label)))
        if packed is None:
            return np.zeros(shape, bool)
        return np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape).astype(bool)

    def _set_owned(self, key: tuple, label: int, mask: np.ndarray | None) -> None:
        pid = (_plane_id(key), int(label))
        if mask is None or not mask.any():
            self._owned.pop(pid, None)
        else:
            self._owned[pid] = np.packbits(mask.ravel())

    def _packed(self, key: tuple, label: int) -> np.ndarray | None:
        return self._owned.get((_plane_id(key), int(label)))

    def planes_with(self, label: int) -> list[tuple]:
        """Plane ids (ints for the non-spatial axes, None for y and x) where SAM set ``label``."""
        return [pid for pid, lab in self._owned if lab == int(label)]

    def forget_label(self, label: int) -> None:
        for pid in [p for p in self._owned if p[1] == int(label)]:
            del self._owned[pid]

    def paste(
        self, data, key: tuple, label: int, mask: np.ndarray, *, overwrite: bool = False
    ) -> PlaneEdit | None:
        """Write ``mask`` (H, W bool) as ``label`` into ``data[key]`` following the rules above.

        Args:
            data: the labels array (numpy or zarr; anything supporting ``data[key] = plane``).
            key: index selecting the (H, W) plane (see ``StackRef.plane_key``).
            label: the object's label value (> 0).
            mask: (H, W) bool, the object's new mask on that plane (may be empty).
            overwrite: also take pixels that hold other labels or manual edits.

        Returns:
            The edit, or None when no pixel changed.
        """
        label = int(label)
        if label <= 0:
            raise ValueError(f"label must be a positive integer, got {label}")
        plane = np.array(data[key])  # a copy: data[key] may be a view
        mask = np.asarray(mask, bool)
        if mask.shape != plane.shape:
            raise ValueError(f"mask shape {mask.shape} does not match the plane {plane.shape}")
        before_packed = self._packed(key, label)
        owned = self.owned(key, label, plane.shape)
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
        new_owned = write & (~is_label | owned | overwrite)
        self._set_owned(key, label, new_owned)
        changed = np.flatnonzero(new_plane != plane)
        after_packed = self._packed(key, label)
        if changed.size == 0 and _same(before_packed, after_packed):
            return None
        if changed.size:
            data[key] = new_plane
        return PlaneEdit(
            key=key, label=label, index=changed, old=plane.ravel()[changed],
            new=new_plane.ravel()[changed], owned_before=before_packed,
        )

    def undo(self, data, group: UndoGroup) -> int:
        """Revert a group of edits; returns the number of pixels restored."""
        restored = 0
        for edit in reversed(group.edits):
            plane = np.array(data[edit.key])
            flat = plane.ravel()
            still = flat[edit.index] == edit.new
            flat[edit.index[still]] = edit.old[still]
            restored += int(still.sum())
            if still.any():
                data[edit.key] = plane
            pid = (_plane_id(edit.key), edit.label)
            if edit.owned_before is None:
                self._owned.pop(pid, None)
            else:
                self._owned[pid] = edit.owned_before
        return restored


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.shape == b.shape and bool(np.array_equal(a, b))


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
        """Paste ``mask`` (H, W) bool as ``label`` on plane ``key`` of ``group.target``."""
        edit = self.painter(group.target).paste(
            group.target.data, key, label, mask,
            overwrite=self.overwrite if overwrite is None else overwrite,
        )
        if edit is not None:
            group.edits.append(edit)
            self._changed(group.target, key)

    def erase(self, group: UndoGroup, label: int) -> None:
        """Clear every pixel of ``label`` in ``group.target`` (SAM's or painted) into ``group``."""
        data = group.target.data
        empty = np.zeros(data.shape[-2:], bool)
        for key in label_planes(data, label):
            self.paste(group, key, label, empty, overwrite=True)
        self.painter(group.target).forget_label(label)

    def undo(self, exists=lambda target: True) -> tuple[UndoGroup | None, int]:
        """Revert the last group whose target still ``exists``: (group, pixels restored)."""
        group = self.undo_stack.pop()
        if group is None or not exists(group.target):
            return None, 0
        restored = self.painter(group.target).undo(group.target.data, group)
        group.target.refresh()
        for key in {_plane_id(edit.key): edit.key for edit in group.edits}.values():
            self._changed(group.target, key)
        if group.undone is not None:
            group.undone()
        return group, restored


def next_free_label(data, used=()) -> int:
    """1 + the largest label in ``data`` and in ``used``."""
    arr = np.asarray(data)
    top = int(arr.max()) if arr.size else 0
    return max([top, *[int(u) for u in used]]) + 1


def label_planes(data, label: int) -> list[tuple]:
    """Plane keys (ints for the non-spatial axes, then two full slices) where ``label`` occurs."""
    arr = np.asarray(data)
    present = (arr == int(label)).any(axis=(-2, -1))
    plane = (slice(None), slice(None))
    if arr.ndim == 2:
        return [plane] if present else []
    return [tuple(int(i) for i in idx) + plane for idx in np.argwhere(present)]


def labels_on_plane(plane: np.ndarray) -> list[int]:
    """The label values (> 0) present on an (H, W) plane."""
    values = np.unique(np.asarray(plane))
    return [int(v) for v in values if v > 0]
