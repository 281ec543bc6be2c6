"""A mask of a frame given only over a box: what the plugin pastes for huge images (issue 19).

With windows the engine gives each object's mask over its window (``FrameResult.crop_of``);
pasting it into a full (H, W) array would cost a frame's worth of memory for a few hundred
pixels (10 GB for an int32 plane of a 50000 px image). ``PlacedMask`` keeps the crop and where
it lies, and is what ``LabelsWriter`` accepts beside a plain (H, W) bool mask (numpy only).

Boxes are ``(top, left, bottom, right)`` in frame pixels, end exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_sam2.engine.windows import mask_box

Box = tuple[int, int, int, int]


@dataclass(frozen=True, eq=False)
class PlacedMask:
    """``crop`` ((h, w) bool) at (``top``, ``left``) of a frame of ``frame_shape`` (H, W);
    every pixel outside the crop is off."""

    top: int
    left: int
    crop: np.ndarray
    frame_shape: tuple[int, int]

    def __post_init__(self) -> None:
        h, w = self.crop.shape
        if self.top < 0 or self.left < 0 or self.top + h > self.frame_shape[0] \
                or self.left + w > self.frame_shape[1]:
            raise ValueError(f"a crop of shape {self.crop.shape} at ({self.top}, {self.left}) "
                             f"does not fit a frame of shape {self.frame_shape}")

    @classmethod
    def of(cls, mask, frame_shape) -> PlacedMask:
        """``mask``: a ``PlacedMask``, an (H, W) bool array (the whole frame) or None (empty)."""
        frame_shape = tuple(int(v) for v in frame_shape)
        if mask is None:
            return cls.empty(frame_shape)
        if isinstance(mask, PlacedMask):
            if tuple(mask.frame_shape) != frame_shape:
                raise ValueError(f"mask of a frame {mask.frame_shape} does not match the plane "
                                 f"{frame_shape}")
            return mask
        mask = np.asarray(mask, bool)
        if mask.shape != frame_shape:
            raise ValueError(f"mask shape {mask.shape} does not match the plane {frame_shape}")
        return cls(0, 0, mask, frame_shape)

    @classmethod
    def empty(cls, frame_shape) -> PlacedMask:
        return cls(0, 0, np.zeros((0, 0), bool), tuple(int(v) for v in frame_shape))

    @classmethod
    def from_result(cls, result, obj_id: int) -> PlacedMask:
        """One object's mask of an engine ``FrameResult``, without pasting it into a frame."""
        window, crop = result.crop_of(obj_id)
        if window is None:
            return cls(0, 0, crop, tuple(crop.shape))
        return cls(window.top, window.left, crop, tuple(int(v) for v in result.frame_shape))

    @property
    def box(self) -> Box:
        h, w = self.crop.shape
        return self.top, self.left, self.top + h, self.left + w

    @property
    def covers_frame(self) -> bool:
        return self.box == (0, 0, *self.frame_shape)

    def sum(self) -> int:
        return int(np.count_nonzero(self.crop))

    def tight_box(self) -> Box | None:
        """The bounding box of the pixels that are on (None: none is)."""
        box = mask_box(self.crop)
        return None if box is None else shift(box, self.top, self.left)

    def over(self, box: Box) -> np.ndarray:
        """The mask on ``box`` ((bottom - top, right - left) bool)."""
        return place(self.crop, self.box, box)

    def to_frame(self) -> np.ndarray:
        """The (H, W) bool mask (a frame's worth of memory: small images only)."""
        return self.over((0, 0, *self.frame_shape))


def box_slices(box: Box) -> tuple[slice, slice]:
    """(rows, cols) slices of a box."""
    return slice(box[0], box[2]), slice(box[1], box[3])


def shift(box: Box, dr: int, dc: int) -> Box:
    return box[0] + dr, box[1] + dc, box[2] + dr, box[3] + dc


def union(*boxes: Box | None) -> Box | None:
    """The smallest box holding all given boxes (None ones ignored; None when all are)."""
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def place(values: np.ndarray, where: Box, box: Box, fill=0) -> np.ndarray:
    """``values`` (lying at ``where``) seen through ``box``: ``fill`` where it does not reach."""
    out = np.full((box[2] - box[0], box[3] - box[1]), fill, values.dtype)
    r0, c0 = max(where[0], box[0]), max(where[1], box[1])
    r1, c1 = min(where[2], box[2]), min(where[3], box[3])
    if r1 > r0 and c1 > c0:
        out[r0 - box[0]:r1 - box[0], c0 - box[1]:c1 - box[1]] = \
            values[r0 - where[0]:r1 - where[0], c0 - where[1]:c1 - where[1]]
    return out


def placed_of(result, obj_id: int | None) -> PlacedMask:
    """``PropagationWrites``' ``mask_of`` for the plugin: an object's crop where it lies,
    or (``obj_id`` None) an empty mask of the frame."""
    if obj_id is not None:
        return PlacedMask.from_result(result, obj_id)
    hw = result.frame_shape if result.frame_shape is not None else result.logits.shape[-2:]
    return PlacedMask.empty(hw)
